// The alarm service (<parlib/alarm.h>): every started alarm fires exactly
// once, never early, in vcore context on the vcore that started it, and in
// deadline order per vcore; stop_alarm/reset_alarm_abs racing with expiry
// keep the exactly-once accounting of dissertation 2.4.2; periodic
// re-arming, the unix-time setter and misuse.
//
// Callbacks run in vcore context: they only record into memory allocated
// beforehand (no gtest assertions, no allocation); the test thread checks
// the records afterwards.
#include <gtest/gtest.h>
#include <parlib/alarm.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "support/fifo_sched.h"

using namespace parlib_test;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t kNoVcore = 0xffffffffu;

uint64_t mono_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
uint64_t mono_us() { return mono_ns() / 1000u; }
uint64_t real_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Spins (yielding the uthread) until pred() holds or the limit passes, so a
// lost alarm fails the test instead of hanging it.
template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 10s) {
  const uint64_t end = mono_ns() + static_cast<uint64_t>(limit.count()) * 1000000u;
  while (!pred()) {
    if (mono_ns() > end) return pred();
    fifo_yield();
  }
  return true;
}

// Keeps running (yielding) for d, so that a double fire has time to show.
void settle(std::chrono::milliseconds d) {
  const uint64_t end = mono_ns() + static_cast<uint64_t>(d.count()) * 1000000u;
  while (mono_ns() < end) fifo_yield();
}

// Busy-waits without yielding until CLOCK_MONOTONIC reaches t_ns.
void spin_until_ns(uint64_t t_ns) {
  while (mono_ns() < t_ns) __builtin_ia32_pause();
}

// What one alarm's callback saw. Written in vcore context.
struct Record {
  struct alarm_waiter w;
  uint64_t deadline_us = 0;         // what the test set
  uint32_t start_vcore = kNoVcore;  // vcore_id() at start_alarm
  uint64_t started_ns = 0;          // CLOCK_MONOTONIC once start_alarm returned
  std::atomic<uint32_t> fired{0};
  uint32_t fire_vcore = kNoVcore;
  uint64_t fire_ns = 0;       // CLOCK_MONOTONIC at the callback
  uint64_t fire_real_ns = 0;  // CLOCK_REALTIME at the callback
  bool fire_in_vcore_ctx = false;
};

void record_cb(struct alarm_waiter *w) {
  auto *r = static_cast<Record *>(w->data);
  r->fire_ns = mono_ns();
  r->fire_real_ns = real_ns();
  r->fire_vcore = vcore_id();
  r->fire_in_vcore_ctx = in_vcore_context();
  // release: the fields above are visible to whoever sees the count.
  r->fired.fetch_add(1, std::memory_order_release);
}

void init_record(Record *r) {
  init_waiter(&r->w, record_cb);
  r->w.data = r;
}

// Starts r's waiter and notes the vcore it was started on (notifications
// disabled, so that the uthread cannot migrate in between).
void start_noting_vcore(Record *r) {
  uth_disable_notifs();
  r->start_vcore = vcore_id();
  start_alarm(&r->w);
  uth_enable_notifs();
  r->started_ns = mono_ns();
}

// Stops every waiter a test leaves behind when it ends early (a failed
// ASSERT): nothing may fire into freed test memory afterwards.
class StopAllOnExit {
 public:
  template <typename Range, typename Get>
  StopAllOnExit(Range &range, Get get) {
    for (auto &x : range) ws_.push_back(get(x));
  }
  StopAllOnExit(std::initializer_list<struct alarm_waiter *> ws) : ws_(ws) {}
  ~StopAllOnExit() {
    for (auto *w : ws_) stop_alarm(w);
    // Callbacks already in flight still run: give them time.
    if (::testing::Test::HasFailure()) settle(500ms);
  }

 private:
  std::vector<struct alarm_waiter *> ws_;
};

// ------------------------------------------------------------ many alarms

constexpr int kManyAlarms = 10000;
constexpr int kVcores = 2;     // starters, each on its own vcore
constexpr int kMaxVcores = 8;  // per-vcore bookkeeping (PARLIB_VCORES <= 8)

struct ManyState {
  std::vector<Record> recs = std::vector<Record>(kManyAlarms);
  // Per-vcore fire order, pre-sized: written in vcore context.
  std::vector<int> order[kMaxVcores];
  std::atomic<int> order_len[kMaxVcores] = {};
  std::atomic<int> total{0};
  std::atomic<int> bad_vcore{0};
};
ManyState *g_many = nullptr;

void many_cb(struct alarm_waiter *w) {
  record_cb(w);
  auto *r = static_cast<Record *>(w->data);
  uint32_t vc = vcore_id();
  if (vc >= static_cast<uint32_t>(kMaxVcores)) {
    g_many->bad_vcore.fetch_add(1, std::memory_order_relaxed);
  } else {
    int slot = g_many->order_len[vc].fetch_add(1, std::memory_order_relaxed);
    if (slot < kManyAlarms) g_many->order[vc][slot] = static_cast<int>(r - g_many->recs.data());
  }
  // release: publishes the order slot and the record.
  g_many->total.fetch_add(1, std::memory_order_release);
}

TEST(Alarm, TenThousandFireOnceInOrderNeverEarlyOnTheirVcore) {
  if (max_vcores() < kVcores) GTEST_SKIP() << "needs " << kVcores << " vcores (PARLIB_VCORES)";
  if (max_vcores() > kMaxVcores)
    GTEST_SKIP() << "bookkeeping for at most " << kMaxVcores << " vcores";
  auto st = std::make_unique<ManyState>();
  g_many = st.get();
  for (auto &o : st->order) o.assign(kManyAlarms, -1);

  // Deadlines in [base, base + 200 ms); base normally leaves time to start
  // them all first. Order is checked for every pair where it is defined: a
  // callback B must not follow a callback A with a later deadline on the
  // same vcore if B was already pending when A fell due (B's start_alarm
  // returned before A's deadline). Under heavy load some alarms start late;
  // those are only checked against alarms due after their start.
  const uint64_t base = mono_us() + 300000;
  std::mt19937_64 rng(12345);
  for (auto &r : st->recs) {
    init_waiter(&r.w, many_cb);
    r.w.data = &r;
    r.deadline_us = base + rng() % 200000;
    set_waiter_abs(&r.w, r.deadline_us);
  }

  // The two starters meet first (spinning, not yielding): both running at
  // once means one runs on each vcore.
  std::atomic<int> arrived{0};
  struct Half {
    Record *first;
    int n;
    std::atomic<int> *arrived;
    uint64_t done_us;
  } halves[2] = {{&st->recs[0], kManyAlarms / 2, &arrived, 0},
                 {&st->recs[kManyAlarms / 2], kManyAlarms - kManyAlarms / 2, &arrived, 0}};
  StopAllOnExit guard(st->recs, [](Record &r) { return &r.w; });
  TestThread *t[2];
  for (int i = 0; i < 2; i++) {
    t[i] = fifo_spawn(
        [](void *p) {
          auto *h = static_cast<Half *>(p);
          h->arrived->fetch_add(1, std::memory_order_relaxed);
          const uint64_t give_up = mono_ns() + 5000000000u;
          while (h->arrived->load(std::memory_order_relaxed) < 2 && mono_ns() < give_up)
            __builtin_ia32_pause();
          for (int k = 0; k < h->n; k++) {
            start_noting_vcore(&h->first[k]);
            if (k % 250 == 249) fifo_yield();  // mix the starters over the vcores
          }
          h->done_us = mono_us();
        },
        &halves[i]);
  }
  for (auto *th : t) fifo_join(th);
  const uint64_t all_started_us = std::max(halves[0].done_us, halves[1].done_us);
  if (all_started_us >= base)
    printf("note: starting took %.1f ms past the margin (a loaded machine)\n",
           static_cast<double>(all_started_us - base) / 1000.0);

  ASSERT_TRUE(
      wait_until([&] { return st->total.load(std::memory_order_acquire) >= kManyAlarms; }, 30s))
      << "only " << st->total.load() << " of " << kManyAlarms << " alarms fired";
  settle(50ms);
  EXPECT_EQ(st->total.load(std::memory_order_acquire), kManyAlarms);
  EXPECT_EQ(st->bad_vcore.load(), 0);

  int started_on[kMaxVcores] = {};
  int wrong_count = 0, early = 0, wrong_vcore = 0, not_vcore_ctx = 0;
  for (auto &r : st->recs) {
    if (r.fired.load(std::memory_order_acquire) != 1) wrong_count++;
    if (r.fire_ns < r.deadline_us * 1000u) early++;
    if (r.fire_vcore != r.start_vcore) wrong_vcore++;
    if (!r.fire_in_vcore_ctx) not_vcore_ctx++;
    if (r.start_vcore < static_cast<uint32_t>(kMaxVcores)) started_on[r.start_vcore]++;
  }
  EXPECT_EQ(wrong_count, 0) << "alarms that did not fire exactly once";
  EXPECT_EQ(early, 0) << "alarms that fired before their deadline";
  EXPECT_EQ(wrong_vcore, 0) << "alarms that fired on another vcore than their starter's";
  EXPECT_EQ(not_vcore_ctx, 0) << "callbacks that did not run in vcore context";
  EXPECT_GE(
      std::count_if(std::begin(started_on), std::end(started_on), [](int n) { return n > 0; }),
      kVcores)
      << "the test needs starters on two vcores";

  for (int vc = 0; vc < kMaxVcores; vc++) {
    int len = st->order_len[vc].load(std::memory_order_acquire);
    EXPECT_EQ(len, started_on[vc]) << "vcore " << vc;
    // Latest deadline among the callbacks so far: the earlier callback with
    // the latest deadline is the one a later callback must not undercut.
    int inversions = 0;
    uint64_t max_deadline_us = 0;
    for (int i = 0; i < std::min(len, kManyAlarms); i++) {
      const Record &cur = st->recs[st->order[vc][i]];
      if (i > 0 && max_deadline_us > cur.deadline_us && max_deadline_us * 1000u >= cur.started_ns)
        inversions++;
      max_deadline_us = std::max(max_deadline_us, cur.deadline_us);
    }
    EXPECT_EQ(inversions, 0) << "callbacks out of deadline order on vcore " << vc;
  }
  g_many = nullptr;
}

// Many alarms pending far in the future; half of them are stopped, the
// other half reset (re-keyed) to fire soon: exactly those fire, at their
// new times (heap removal and re-keying at arbitrary positions). Nothing
// here depends on how fast the machine is.
TEST(Alarm, StoppingHalfOfManyPendingFiresExactlyTheOthers) {
  constexpr int kN = 4000;
  std::vector<Record> recs(kN);
  StopAllOnExit guard(recs, [](Record &r) { return &r.w; });
  const uint64_t far = mono_us() + 600000000;  // 10 minutes
  std::mt19937_64 rng(777);
  for (auto &r : recs) {
    init_record(&r);
    set_waiter_abs(&r.w, far + rng() % 1000000);
    start_alarm(&r.w);
  }
  std::vector<bool> stopped(kN, false);
  int stops = 0;
  for (int i = 0; i < kN; i++) {
    if (rng() % 2 == 0) {
      stopped[i] = true;
      stops++;
      EXPECT_TRUE(stop_alarm(&recs[i].w)) << "alarm " << i << " was pending";
    } else {
      recs[i].deadline_us = mono_us() + 1000 + rng() % 50000;
      EXPECT_TRUE(reset_alarm_abs(&recs[i].w, recs[i].deadline_us)) << "alarm " << i;
    }
  }
  for (int i = 0; i < kN; i++) {
    if (stopped[i]) {
      EXPECT_FALSE(stop_alarm(&recs[i].w)) << "a second stop finds nothing";
    }
  }
  ASSERT_TRUE(wait_until(
      [&] {
        int n = 0;
        for (auto &r : recs) n += static_cast<int>(r.fired.load(std::memory_order_acquire));
        return n >= kN - stops;
      },
      30s));
  settle(30ms);
  int wrong = 0, early = 0;
  for (int i = 0; i < kN; i++) {
    if (recs[i].fired.load() != (stopped[i] ? 0u : 1u)) wrong++;
    if (!stopped[i] && recs[i].fire_ns < recs[i].deadline_us * 1000u) early++;
  }
  EXPECT_EQ(wrong, 0) << "stopped alarms that fired, or reset ones that did not fire once";
  EXPECT_EQ(early, 0) << "reset alarms that fired before their new deadline";
}

// More pending alarms than the heap's initial reservation (64 Ki): it
// grows, and every entry can still be found and removed.
TEST(Alarm, HeapGrowsPastItsInitialReservation) {
  constexpr int kN = 100000;
  std::vector<struct alarm_waiter> ws(kN);
  StopAllOnExit guard(ws, [](struct alarm_waiter &w) { return &w; });
  std::mt19937_64 rng(99);
  const uint64_t far = mono_us() + 600000000;  // 10 minutes: none fires
  for (auto &w : ws) {
    init_waiter(&w, record_cb);
    set_waiter_abs(&w, far + rng() % 1000000);
    start_alarm(&w);
  }
  Record probe;  // one due soon, among them all
  init_record(&probe);
  StopAllOnExit probe_guard{&probe.w};
  set_waiter_rel(&probe.w, 1000);
  start_alarm(&probe.w);
  std::vector<int> idx(kN);
  for (int i = 0; i < kN; i++) idx[i] = i;
  std::shuffle(idx.begin(), idx.end(), rng);
  int removed = 0;
  for (int i : idx) removed += stop_alarm(&ws[i]) ? 1 : 0;
  EXPECT_EQ(removed, kN);
  EXPECT_TRUE(wait_until([&] { return probe.fired.load() == 1; }, 10s));
}

// ------------------------------------------------------- races with expiry

constexpr int kRaceRounds = 1000;  // per worker; two workers

struct RaceWorker {
  Record rec;
  int trues = 0;
  int falses = 0;
  int in_flight = 0;  // false returns that came before the callback ran
  int lost = 0;       // rounds where a promised callback did not come
  int extra = 0;      // callbacks beyond the promised ones
  int early = 0;
  uint32_t seed = 0;
};

// Each round: an alarm ~50 us ahead, stop_alarm around its expiry (jitter
// 0..100 us). stop_alarm false promises one callback; true promises none.
void stop_race_worker(void *p) {
  auto *wk = static_cast<RaceWorker *>(p);
  std::minstd_rand rng(wk->seed);
  for (int round = 0; round < kRaceRounds; round++) {
    set_waiter_rel(&wk->rec.w, 50);
    const uint64_t started = mono_ns();
    start_noting_vcore(&wk->rec);
    // Odd rounds hold notifications off meanwhile: an alarm that expires
    // then stays in flight (firing) until after stop_alarm.
    const bool hold = round % 2 == 1;
    if (hold) uth_disable_notifs();
    spin_until_ns(started + (rng() % 100) * 1000u);
    const bool removed = stop_alarm(&wk->rec.w);
    const bool ran_already =
        wk->rec.fired.load(std::memory_order_acquire) > static_cast<uint32_t>(wk->falses);
    if (hold) uth_enable_notifs();
    if (removed) {
      wk->trues++;
    } else {
      wk->falses++;
      const uint32_t want = static_cast<uint32_t>(wk->falses);
      if (!ran_already) wk->in_flight++;
      if (!wait_until([&] { return wk->rec.fired.load(std::memory_order_acquire) >= want; }, 20s)) {
        wk->lost++;
        return;
      }
    }
    if (wk->rec.fired.load(std::memory_order_acquire) > static_cast<uint32_t>(wk->falses))
      wk->extra++;
  }
}

TEST(Alarm, StopRacingWithExpiryNeverDoubleFiresNorLosesOne) {
  if (max_vcores() < 2) GTEST_SKIP() << "needs 2 vcores (PARLIB_VCORES)";
  RaceWorker wk[2];
  StopAllOnExit guard{&wk[0].rec.w, &wk[1].rec.w};
  TestThread *t[2];
  for (int i = 0; i < 2; i++) {
    init_record(&wk[i].rec);
    wk[i].seed = 1000 + i;
    t[i] = fifo_spawn(stop_race_worker, &wk[i]);
  }
  for (auto *th : t) fifo_join(th);
  settle(30ms);
  for (auto &w : wk) {
    printf("stop race: %d removed (true), %d fired (false; %d of them before the callback ran)\n",
           w.trues, w.falses, w.in_flight);
    EXPECT_EQ(w.lost, 0) << "stop_alarm returned false but the callback never ran";
    EXPECT_EQ(w.extra, 0) << "a callback ran after stop_alarm returned true";
    EXPECT_EQ(w.trues + w.falses, kRaceRounds);
    EXPECT_EQ(w.rec.fired.load(), static_cast<uint32_t>(w.falses))
        << "callbacks must equal stop_alarm's false returns";
    // Both outcomes must have been exercised, or the test proves nothing.
    EXPECT_GT(w.trues, 0);
    EXPECT_GT(w.falses, 0);
  }
  EXPECT_GT(wk[0].in_flight + wk[1].in_flight, 0) << "no stop_alarm hit the firing window";
}

// Each round: an alarm ~50 us ahead, reset_alarm_abs to 50 us later around
// its expiry. Either way exactly one callback; with true it must not come
// before the new deadline.
void reset_race_worker(void *p) {
  auto *wk = static_cast<RaceWorker *>(p);
  std::minstd_rand rng(wk->seed);
  for (int round = 0; round < kRaceRounds; round++) {
    set_waiter_rel(&wk->rec.w, 50);
    const uint64_t started = mono_ns();
    start_noting_vcore(&wk->rec);
    const bool hold = round % 2 == 1;  // as in stop_race_worker
    if (hold) uth_disable_notifs();
    spin_until_ns(started + (rng() % 100) * 1000u);
    const uint64_t new_deadline = mono_us() + 50;
    const bool moved = reset_alarm_abs(&wk->rec.w, new_deadline);
    if (hold) uth_enable_notifs();
    moved ? wk->trues++ : wk->falses++;
    const uint32_t want = static_cast<uint32_t>(round + 1);
    if (!wait_until([&] { return wk->rec.fired.load(std::memory_order_acquire) >= want; }, 20s)) {
      wk->lost++;
      return;
    }
    if (moved && wk->rec.fire_ns < new_deadline * 1000u) wk->early++;
  }
}

TEST(Alarm, ResetRacingWithExpiryFiresExactlyOnceAtTheTimeItSays) {
  if (max_vcores() < 2) GTEST_SKIP() << "needs 2 vcores (PARLIB_VCORES)";
  RaceWorker wk[2];
  StopAllOnExit guard{&wk[0].rec.w, &wk[1].rec.w};
  TestThread *t[2];
  for (int i = 0; i < 2; i++) {
    init_record(&wk[i].rec);
    wk[i].seed = 2000 + i;
    t[i] = fifo_spawn(reset_race_worker, &wk[i]);
  }
  for (auto *th : t) fifo_join(th);
  settle(30ms);
  for (auto &w : wk) {
    printf("reset race: %d moved (true), %d at the old time (false)\n", w.trues, w.falses);
    EXPECT_EQ(w.lost, 0) << "a reset alarm never fired";
    EXPECT_EQ(w.early, 0)
        << "reset_alarm_abs returned true but the alarm fired before the new time";
    EXPECT_EQ(w.rec.fired.load(), static_cast<uint32_t>(kRaceRounds)) << "one callback per round";
    EXPECT_GT(w.trues, 0);
    EXPECT_GT(w.falses, 0);
  }
}

// ------------------------------------------------------ deterministic cases

TEST(Alarm, ResetPendingFiresAtTheNewTimeOnly) {
  Record r;
  init_record(&r);
  StopAllOnExit guard{&r.w};
  const uint64_t old_deadline = mono_us() + 5000000;  // 5 s: must not be used
  set_waiter_abs(&r.w, old_deadline);
  start_alarm(&r.w);
  const uint64_t new_deadline = mono_us() + 2000;
  EXPECT_TRUE(reset_alarm_abs(&r.w, new_deadline));
  ASSERT_TRUE(wait_until([&] { return r.fired.load() == 1; }, 10s));
  EXPECT_GE(r.fire_ns, new_deadline * 1000u);
  EXPECT_LT(r.fire_ns, old_deadline * 1000u);
  // Fired and idle: a reset now is the "old time" outcome and re-arms nothing.
  EXPECT_FALSE(reset_alarm_abs(&r.w, mono_us() + 1000));
  EXPECT_FALSE(stop_alarm(&r.w));
  settle(20ms);
  EXPECT_EQ(r.fired.load(), 1u);
}

TEST(Alarm, ResetToLaterAndEarlierKeepsOneCallback) {
  Record r;
  init_record(&r);
  StopAllOnExit guard{&r.w};
  set_waiter_rel(&r.w, 1000000);
  start_alarm(&r.w);
  EXPECT_TRUE(reset_alarm_abs(&r.w, mono_us() + 2000000));  // later
  const uint64_t final_deadline = mono_us() + 5000;
  EXPECT_TRUE(reset_alarm_abs(&r.w, final_deadline));  // earlier again
  ASSERT_TRUE(wait_until([&] { return r.fired.load() == 1; }, 10s));
  EXPECT_GE(r.fire_ns, final_deadline * 1000u);
  settle(30ms);
  EXPECT_EQ(r.fired.load(), 1u);
}

// While its event is in flight (the alarm expired, but its vcore runs a
// uthread with notifications disabled), stop and reset return false, and
// the callback runs once notifications are enabled again.
TEST(Alarm, StopAndResetOfAFiringAlarmReturnFalseAndItFiresOnce) {
  Record r;
  init_record(&r);
  StopAllOnExit guard{&r.w};
  // The service thread normally pops the alarm within microseconds of its
  // deadline; on a very loaded machine it may take longer than the hold,
  // and then stop_alarm rightly returns true: try again.
  bool stopped = true, reset = true;
  uint32_t fired_while_disabled = 0;
  int attempts = 0;
  while (stopped && attempts < 20) {
    attempts++;
    uth_disable_notifs();
    set_waiter_rel(&r.w, 100);
    start_noting_vcore(&r);
    spin_until_ns(mono_ns() + 100000000u);  // 100 ms: ample for the pop
    stopped = stop_alarm(&r.w);
    if (!stopped) {
      reset = reset_alarm_abs(&r.w, mono_us() + 1000);
      fired_while_disabled = r.fired.load();
      start_alarm(&r.w);  // firing: ignored with a message
    }
    uth_enable_notifs();
  }
  ASSERT_FALSE(stopped) << "the alarm was never popped in " << attempts << " tries";
  EXPECT_FALSE(reset);
  EXPECT_EQ(fired_while_disabled, 0u) << "the callback ran on a vcore with notifications disabled";
  ASSERT_TRUE(wait_until([&] { return r.fired.load() == 1; }, 10s));
  EXPECT_EQ(r.fire_vcore, r.start_vcore);
  settle(20ms);
  EXPECT_EQ(r.fired.load(), 1u);
}

// A callback that re-arms its own waiter: exact period bookkeeping.
struct Periodic {
  struct alarm_waiter w;
  static constexpr int kTicks = 10;
  static constexpr int64_t kPeriodUs = 2000;
  uint64_t first_deadline_us = 0;
  uint64_t fire_ns[kTicks] = {};
  std::atomic<int> ticks{0};
  std::atomic<int> overflow{0};
};

void periodic_cb(struct alarm_waiter *w) {
  auto *p = static_cast<Periodic *>(w->data);
  int n = p->ticks.load(std::memory_order_relaxed);
  if (n >= Periodic::kTicks) {
    p->overflow.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  p->fire_ns[n] = mono_ns();
  if (n + 1 < Periodic::kTicks) {
    set_waiter_inc(w, Periodic::kPeriodUs);
    start_alarm(w);
  }
  p->ticks.store(n + 1, std::memory_order_release);
}

TEST(Alarm, PeriodicCallbackReArmsItsOwnWaiter) {
  Periodic p;
  init_waiter(&p.w, periodic_cb);
  p.w.data = &p;
  StopAllOnExit guard{&p.w};
  p.first_deadline_us = mono_us() + 2000;
  set_waiter_abs(&p.w, p.first_deadline_us);
  start_alarm(&p.w);
  ASSERT_TRUE(
      wait_until([&] { return p.ticks.load(std::memory_order_acquire) == Periodic::kTicks; }, 10s));
  settle(20ms);
  EXPECT_EQ(p.ticks.load(), Periodic::kTicks);
  EXPECT_EQ(p.overflow.load(), 0);
  EXPECT_FALSE(stop_alarm(&p.w)) << "the last tick did not re-arm";
  for (int k = 0; k < Periodic::kTicks; k++) {
    const uint64_t due_us = p.first_deadline_us + static_cast<uint64_t>(k * Periodic::kPeriodUs);
    EXPECT_GE(p.fire_ns[k], due_us * 1000u) << "tick " << k << " early";
  }
}

TEST(Alarm, UnixTimeDeadlineIsConvertedAndNeverEarly) {
  Record r;
  init_record(&r);
  StopAllOnExit guard{&r.w};
  const uint64_t abs_unix_us = real_ns() / 1000u + 5000;
  const uint64_t mono_before = mono_ns();
  set_waiter_abs_unix(&r.w, abs_unix_us);
  start_alarm(&r.w);
  ASSERT_TRUE(wait_until([&] { return r.fired.load() == 1; }, 10s));
  EXPECT_GE(r.fire_real_ns, abs_unix_us * 1000u);
  EXPECT_GE(r.fire_ns - mono_before, 4900000u) << "fired well before 5 ms had passed";

  // A unix time in the past fires promptly.
  Record past;
  init_record(&past);
  StopAllOnExit past_guard{&past.w};
  set_waiter_abs_unix(&past.w, real_ns() / 1000u - 1000000);
  start_alarm(&past.w);
  EXPECT_TRUE(wait_until([&] { return past.fired.load() == 1; }, 10s));
}

TEST(Alarm, IncrementSaturatesAndPastDeadlinesFireAtOnce) {
  Record r;
  init_record(&r);
  StopAllOnExit guard{&r.w};
  set_waiter_abs(&r.w, 100);
  set_waiter_inc(&r.w, INT64_MIN);  // saturates at 0 (UBSan checks the arithmetic)
  start_alarm(&r.w);
  EXPECT_TRUE(wait_until([&] { return r.fired.load() == 1; }, 10s));

  Record far;
  init_record(&far);
  StopAllOnExit far_guard{&far.w};
  set_waiter_abs(&far.w, UINT64_MAX - 5);
  set_waiter_inc(&far.w, INT64_MAX);  // saturates at UINT64_MAX
  start_alarm(&far.w);
  settle(5ms);
  EXPECT_TRUE(stop_alarm(&far.w));
  EXPECT_EQ(far.fired.load(), 0u);
}

// A thread that is not a vcore starts alarms for vcore 0.
TEST(Alarm, StartedFromAPlainThreadFiresOnVcoreZero) {
  Record r;
  init_record(&r);
  StopAllOnExit guard{&r.w};
  std::thread th([&] {
    set_waiter_rel(&r.w, 1000);
    start_alarm(&r.w);
  });
  th.join();
  ASSERT_TRUE(wait_until([&] { return r.fired.load() == 1; }, 10s));
  EXPECT_EQ(r.fire_vcore, 0u);
  EXPECT_TRUE(r.fire_in_vcore_ctx);
}

// ----------------------------------------------------------------- misuse

TEST(Alarm, NullWaiterIsIgnored) {
  init_waiter(nullptr, record_cb);
  set_waiter_abs(nullptr, 1);
  set_waiter_abs_unix(nullptr, 1);
  set_waiter_rel(nullptr, 1);
  set_waiter_inc(nullptr, 1);
  start_alarm(nullptr);
  EXPECT_FALSE(stop_alarm(nullptr));
  EXPECT_FALSE(reset_alarm_abs(nullptr, 1));
}

TEST(Alarm, MisuseOfAPendingWaiterIsIgnored) {
  Record r;
  init_record(&r);
  StopAllOnExit guard{&r.w};
  const uint64_t deadline = mono_us() + 3000000;
  set_waiter_abs(&r.w, deadline);
  start_alarm(&r.w);
  start_alarm(&r.w);        // already pending: ignored
  set_waiter_abs(&r.w, 0);  // would corrupt the heap: ignored
  set_waiter_rel(&r.w, 0);
  set_waiter_inc(&r.w, -1000000000);
  init_waiter(&r.w, nullptr);  // pending: ignored
  settle(10ms);
  EXPECT_EQ(r.fired.load(), 0u) << "the expiry of a pending waiter changed";
  EXPECT_TRUE(stop_alarm(&r.w)) << "one start, one pending entry";
  EXPECT_FALSE(stop_alarm(&r.w));
}

TEST(Alarm, NeverStartedOrCallbacklessWaitersDoNothing) {
  Record r;
  init_record(&r);
  StopAllOnExit guard{&r.w};
  EXPECT_FALSE(stop_alarm(&r.w));
  EXPECT_FALSE(reset_alarm_abs(&r.w, mono_us())) << "reset does not start an idle waiter";
  struct alarm_waiter nofunc;
  init_waiter(&nofunc, nullptr);
  set_waiter_rel(&nofunc, 0);
  start_alarm(&nofunc);  // no callback: ignored
  EXPECT_FALSE(stop_alarm(&nofunc));
  settle(10ms);
  EXPECT_EQ(r.fired.load(), 0u);
}

}  // namespace

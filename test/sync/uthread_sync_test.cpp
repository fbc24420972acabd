// The blocking primitives of parlib/mutex.h, exercised by uthreads on a
// FIFO test 2LS: exact counts under contention, producer/consumer
// checksums, timeouts within a tolerance, and the POSIX error semantics.
// Every wait in these tests is bounded: a lost wakeup shows up as a failed
// timed wait or the ctest TIMEOUT, never as a silent hang.

#include <parlib/mcs.h>
#include <parlib/mutex.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "support/fifo_sched.h"
#include "sync_test_util.h"

namespace {

// Thin adapter over the FIFO test 2LS (test/support/fifo_sched.h): spawn
// takes a closure, start sets the number of vcores.
namespace sync_test {
using Thread = parlib_test::TestThread;
void start(int vcores) { parlib_test::fifo_set_target_vcores(vcores); }
Thread* spawn(std::function<void()> fn) {
  auto* heap_fn = new std::function<void()>(std::move(fn));
  return parlib_test::fifo_spawn(
      [](void* arg) {
        auto* f = static_cast<std::function<void()>*>(arg);
        (*f)();
        delete f;
      },
      heap_fn, 256 << 10);
}
void join(Thread* t) { parlib_test::fifo_join(t); }
}  // namespace sync_test

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// How late a timed wait may return. Generous on purpose: the check is that
// the deadline fires at all and not early; on a loaded 2-CPU machine the
// timer thread can lose its CPU for a few hundred ms.
constexpr long kLatenessMs = 1000;

// Runs body(i) for i in [0, n) in n uthreads on `vcores` vcores and
// joins them all.
void run_uthreads(int vcores, int n, const std::function<void(int)>& body) {
  sync_test::start(vcores);
  std::vector<sync_test::Thread*> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) threads.push_back(sync_test::spawn([&body, i] { body(i); }));
  for (auto* t : threads) sync_test::join(t);
}

struct timespec realtime_in(milliseconds d) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  const long long ns = static_cast<long long>(ts.tv_sec) * 1000000000 + ts.tv_nsec +
                       static_cast<long long>(d.count()) * 1000000;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  return ts;
}

// Yields until pred() holds; fails the test after 10 s instead of hanging.
template <typename Pred>
void wait_until(Pred pred, const char* what) {
  const auto t0 = Clock::now();
  while (!pred()) {
    parlib_test::fifo_yield();
    ASSERT_LT(Clock::now() - t0, std::chrono::seconds(10)) << "timed out waiting: " << what;
  }
}

// White box: true once some uthread is queued on q (read racily on
// purpose: the test only polls it).
bool has_waiter(const uth_sync_queue& q) {
  return __atomic_load_n(&q.head_, __ATOMIC_ACQUIRE) != nullptr;
}

// ------------------------------------------------------------- mutex

TEST(UthreadMutex, SixtyFourUthreadsOnTwoVcoresCountExactly) {
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  long counter = 0;  // plain: only the mutex protects it
  constexpr int kThreads = 64, kIters = 10000;
  run_uthreads(2, kThreads, [&](int) {
    for (int i = 0; i < kIters; ++i) {
      ASSERT_EQ(uthread_mutex_lock(&m), 0);
      ++counter;
      // Now and then hold the lock across a yield, so waiters really queue.
      if (i % 512 == 0) parlib_test::fifo_yield();
      ASSERT_EQ(uthread_mutex_unlock(&m), 0);
    }
  });
  EXPECT_EQ(counter, long{kThreads} * kIters);
  EXPECT_EQ(uthread_mutex_destroy(&m), 0);
}

TEST(UthreadMutex, RecursiveCountsLevels) {
  sync_test::start(2);
  uthread_mutex_t m;
  ASSERT_EQ(uthread_mutex_init(&m, UTHREAD_MUTEX_RECURSIVE), 0);
  EXPECT_EQ(uthread_mutex_lock(&m), 0);
  EXPECT_EQ(uthread_mutex_lock(&m), 0);
  EXPECT_EQ(uthread_mutex_trylock(&m), 0);
  int other = -1;
  run_uthreads(2, 1, [&](int) {
    other = uthread_mutex_trylock(&m);
    // Not the owner: unlock is refused.
    EXPECT_EQ(uthread_mutex_unlock(&m), EPERM);
  });
  EXPECT_EQ(other, EBUSY);
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  EXPECT_EQ(uthread_mutex_destroy(&m), EBUSY) << "still held once";
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  EXPECT_EQ(uthread_mutex_unlock(&m), EPERM) << "not held any more";
  EXPECT_EQ(uthread_mutex_destroy(&m), 0);
}

TEST(UthreadMutex, RecursiveDepthOverflowIsEagain) {
  sync_test::start(2);
  uthread_mutex_t m = UTHREAD_RECURSIVE_MUTEX_INITIALIZER;
  ASSERT_EQ(uthread_mutex_lock(&m), 0);
  m.count_ = UINT_MAX;  // white box: reaching the limit by locking takes too long
  EXPECT_EQ(uthread_mutex_lock(&m), EAGAIN);
  EXPECT_EQ(uthread_mutex_trylock(&m), EAGAIN);
  m.count_ = 1;
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
}

TEST(UthreadMutex, ErrorcheckReportsMisuse) {
  sync_test::start(2);
  uthread_mutex_t m = UTHREAD_ERRORCHECK_MUTEX_INITIALIZER;
  EXPECT_EQ(uthread_mutex_unlock(&m), EPERM) << "unlock of a free mutex";
  ASSERT_EQ(uthread_mutex_lock(&m), 0);
  EXPECT_EQ(uthread_mutex_lock(&m), EDEADLK);
  EXPECT_EQ(uthread_mutex_trylock(&m), EBUSY);
  run_uthreads(2, 1, [&](int) {
    EXPECT_EQ(uthread_mutex_unlock(&m), EPERM) << "unlock by a non-owner";
    EXPECT_EQ(uthread_mutex_trylock(&m), EBUSY);
  });
  EXPECT_EQ(uthread_mutex_destroy(&m), EBUSY);
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  EXPECT_EQ(uthread_mutex_destroy(&m), 0);
  EXPECT_EQ(uthread_mutex_lock(&m), EINVAL) << "destroyed";
}

TEST(UthreadMutex, TimedlockTimesOutOrGetsTheLock) {
  sync_test::start(2);
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  struct timespec bad = {0, 2000000000};
  EXPECT_EQ(uthread_mutex_timedlock(&m, &bad), 0) << "free: the deadline is not looked at";
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  EXPECT_EQ(uthread_mutex_timedlock(&m, nullptr), EINVAL);
  ASSERT_EQ(uthread_mutex_lock(&m), 0);
  std::atomic<int> timed_out{-1}, later{-1};
  long waited_ms = 0;
  sync_test::Thread* t = sync_test::spawn([&] {
    EXPECT_EQ(uthread_mutex_timedlock(&m, &bad), EINVAL) << "held: a bad deadline is refused";
    const struct timespec soon = realtime_in(milliseconds(40));
    const auto t0 = Clock::now();
    timed_out = uthread_mutex_timedlock(&m, &soon);
    waited_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
    const struct timespec far = realtime_in(milliseconds(10000));
    later = uthread_mutex_timedlock(&m, &far);  // the holder lets go in time
    if (later == 0) uthread_mutex_unlock(&m);
  });
  wait_until([&] { return timed_out != -1; }, "the first timedlock to time out");
  wait_until([&] { return has_waiter(m.waiters_); }, "the second timedlock to queue");
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  sync_test::join(t);
  EXPECT_EQ(timed_out.load(), ETIMEDOUT);
  EXPECT_GE(waited_ms, 39);
  EXPECT_LT(waited_ms, 40 + kLatenessMs);
  EXPECT_EQ(later.load(), 0);
  // A kernel thread that is not a uthread spins until the deadline.
  ASSERT_EQ(uthread_mutex_lock(&m), 0);
  std::thread([&] {
    const struct timespec soon = realtime_in(milliseconds(20));
    EXPECT_EQ(uthread_mutex_timedlock(&m, &soon), ETIMEDOUT);
  }).join();
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  EXPECT_EQ(uthread_mutex_destroy(&m), 0);
}

TEST(UthreadMutex, BadArgumentsAreEinval) {
  uthread_mutex_t m;
  EXPECT_EQ(uthread_mutex_init(nullptr, UTHREAD_MUTEX_NORMAL), EINVAL);
  EXPECT_EQ(uthread_mutex_init(&m, 7), EINVAL);
  EXPECT_EQ(uthread_mutex_lock(nullptr), EINVAL);
  EXPECT_EQ(uthread_mutex_trylock(nullptr), EINVAL);
  EXPECT_EQ(uthread_mutex_unlock(nullptr), EINVAL);
  EXPECT_EQ(uthread_mutex_destroy(nullptr), EINVAL);
}

// Held, or held with a queued waiter: destroy fails with EBUSY and the
// mutex keeps working.
TEST(UthreadMutex, DestroyWhileHeldOrWaitedOnIsEbusy) {
  sync_test::start(2);
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  ASSERT_EQ(uthread_mutex_lock(&m), 0);
  EXPECT_EQ(uthread_mutex_destroy(&m), EBUSY);
  sync_test::Thread* t = sync_test::spawn([&] {
    EXPECT_EQ(uthread_mutex_lock(&m), 0);
    EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  });
  wait_until([&] { return has_waiter(m.waiters_); }, "the mutex waiter to queue");
  EXPECT_EQ(uthread_mutex_destroy(&m), EBUSY);
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  sync_test::join(t);
  EXPECT_EQ(uthread_mutex_destroy(&m), 0);
}

// ---------------------------------------------------- condition variable

// A bounded buffer with one mutex and two condition variables.
struct BoundedBuffer {
  static constexpr int kCap = 16;
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  uthread_cond_t not_full = UTHREAD_COND_INITIALIZER;
  uthread_cond_t not_empty = UTHREAD_COND_INITIALIZER;
  uint64_t items[kCap];
  int head = 0, count = 0;

  void put(uint64_t v) {
    uthread_mutex_lock(&m);
    while (count == kCap) ASSERT_EQ(uthread_cond_wait(&not_full, &m), 0);
    items[(head + count) % kCap] = v;
    ++count;
    uthread_cond_signal(&not_empty);
    uthread_mutex_unlock(&m);
  }
  uint64_t get() {
    uthread_mutex_lock(&m);
    while (count == 0) EXPECT_EQ(uthread_cond_wait(&not_empty, &m), 0);
    const uint64_t v = items[head];
    head = (head + 1) % kCap;
    --count;
    uthread_cond_signal(&not_full);
    uthread_mutex_unlock(&m);
    return v;
  }
};

uint64_t item_value(uint64_t i) { return i * 0x9e3779b97f4a7c15ull + 1; }

TEST(UthreadCond, BoundedBufferMillionItemsExactChecksum) {
  struct Round {
    int producers, consumers;
  };
  constexpr uint64_t kItems = 1000000;
  for (Round round : {Round{1, 1}, Round{4, 4}, Round{8, 3}}) {
    SCOPED_TRACE(::testing::Message()
                 << round.producers << " producers, " << round.consumers << " consumers");
    BoundedBuffer buf;
    std::atomic<uint64_t> sum{0}, xored{0}, got{0};
    uint64_t want_sum = 0, want_xor = 0;
    for (uint64_t i = 0; i < kItems; ++i) {
      want_sum += item_value(i);
      want_xor ^= item_value(i);
    }
    const int n = round.producers + round.consumers;
    run_uthreads(2, n, [&](int id) {
      if (id < round.producers) {
        for (uint64_t i = static_cast<uint64_t>(id); i < kItems;
             i += static_cast<uint64_t>(round.producers))
          buf.put(item_value(i));
      } else {
        const int c = id - round.producers;
        uint64_t share = kItems / static_cast<uint64_t>(round.consumers);
        if (c == 0) share += kItems % static_cast<uint64_t>(round.consumers);
        uint64_t s = 0, x = 0;
        for (uint64_t i = 0; i < share; ++i) {
          const uint64_t v = buf.get();
          s += v;
          x ^= v;
        }
        sum += s;
        xored ^= x;
        got += share;
      }
    });
    EXPECT_EQ(got.load(), kItems);
    EXPECT_EQ(sum.load(), want_sum);
    EXPECT_EQ(xored.load(), want_xor);
    EXPECT_EQ(buf.count, 0);
    EXPECT_EQ(uthread_cond_destroy(&buf.not_full), 0);
    EXPECT_EQ(uthread_cond_destroy(&buf.not_empty), 0);
    EXPECT_EQ(uthread_mutex_destroy(&buf.m), 0);
  }
}

TEST(UthreadCond, TimedwaitTimesOutWithinTolerance) {
  sync_test::start(2);
  uthread_mutex_t m = UTHREAD_ERRORCHECK_MUTEX_INITIALIZER;
  uthread_cond_t c = UTHREAD_COND_INITIALIZER;
  ASSERT_EQ(uthread_mutex_lock(&m), 0);
  for (int ms : {20, 50, 100}) {
    const struct timespec deadline = realtime_in(milliseconds(ms));
    const auto t0 = Clock::now();
    int rc;
    do rc = uthread_cond_timedwait(&c, &m, &deadline);
    while (rc == 0);  // spurious wakeups are allowed
    const auto waited = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
    EXPECT_EQ(rc, ETIMEDOUT);
    EXPECT_GE(waited.count(), ms - 1);
    EXPECT_LT(waited.count(), ms + kLatenessMs) << "deadline overshoot";
    // The mutex is held again (errorcheck: relock is EDEADLK).
    EXPECT_EQ(uthread_mutex_lock(&m), EDEADLK);
  }
  // A deadline already past: ETIMEDOUT at once, mutex still held.
  struct timespec past = realtime_in(milliseconds(-10));
  EXPECT_EQ(uthread_cond_timedwait(&c, &m, &past), ETIMEDOUT);
  struct timespec bad = {0, 1000000000};
  EXPECT_EQ(uthread_cond_timedwait(&c, &m, &bad), EINVAL);
  EXPECT_EQ(uthread_cond_timedwait(&c, &m, nullptr), EINVAL);
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  EXPECT_EQ(uthread_cond_destroy(&c), 0);
}

TEST(UthreadCond, ClockwaitOnTheMonotonicClock) {
  sync_test::start(2);
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  uthread_cond_t c = UTHREAD_COND_INITIALIZER;
  ASSERT_EQ(uthread_mutex_lock(&m), 0);
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_nsec += 30 * 1000 * 1000;
  if (deadline.tv_nsec >= 1000000000) {
    deadline.tv_nsec -= 1000000000;
    ++deadline.tv_sec;
  }
  const auto t0 = Clock::now();
  int rc;
  do rc = uthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &deadline);
  while (rc == 0);
  const auto waited = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
  EXPECT_EQ(rc, ETIMEDOUT);
  EXPECT_GE(waited, 29);
  EXPECT_LT(waited, 30 + kLatenessMs);
  EXPECT_EQ(uthread_cond_clockwait(&c, &m, CLOCK_PROCESS_CPUTIME_ID, &deadline), EINVAL);
  EXPECT_EQ(uthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, nullptr), EINVAL);
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
}

// Signalled long before the deadline: returns 0, and the cancelled deadline
// must not fire into the (reused) stack frame later.
TEST(UthreadCond, SignalBeatsDeadlineAndDeadlineIsCancelled) {
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  uthread_cond_t c = UTHREAD_COND_INITIALIZER;
  constexpr int kWaiters = 8, kRounds = 50;
  std::atomic<int> ok{0}, waiting{0};
  bool go[kWaiters] = {};
  run_uthreads(2, kWaiters + 1, [&](int id) {
    if (id < kWaiters) {
      for (int r = 0; r < kRounds; ++r) {
        uthread_mutex_lock(&m);
        const struct timespec deadline = realtime_in(milliseconds(200));
        ++waiting;
        int rc = 0;
        while (!go[id] && rc == 0) rc = uthread_cond_timedwait(&c, &m, &deadline);
        if (go[id]) ++ok;
        go[id] = false;
        uthread_mutex_unlock(&m);
      }
    } else {
      for (int r = 0; r < kRounds; ++r) {
        while (waiting.load() < kWaiters) parlib_test::fifo_yield();
        waiting -= kWaiters;
        uthread_mutex_lock(&m);
        for (bool& g : go) g = true;
        uthread_cond_broadcast(&c);
        uthread_mutex_unlock(&m);
      }
    }
  });
  // Let any deadline that was not cancelled expire while nothing waits.
  uthread_mutex_lock(&m);
  const struct timespec later = realtime_in(milliseconds(300));
  while (uthread_cond_timedwait(&c, &m, &later) == 0) {
  }
  uthread_mutex_unlock(&m);
  // Normally every round beats its deadline; under heavy load some may
  // not, which is allowed (they then time out cleanly).
  EXPECT_GE(ok.load(), kWaiters * kRounds / 2) << "most rounds beat the 200 ms deadline";
  EXPECT_EQ(uthread_cond_destroy(&c), 0);
}

TEST(UthreadCond, SignalWakesOneBroadcastWakesAll) {
  sync_test::start(2);
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  uthread_cond_t c = UTHREAD_COND_INITIALIZER;
  constexpr int kWaiters = 10;
  int tickets = 0, woken = 0, queued = 0;
  std::vector<sync_test::Thread*> ts;
  for (int i = 0; i < kWaiters; ++i)
    ts.push_back(sync_test::spawn([&] {
      uthread_mutex_lock(&m);
      ++queued;
      while (tickets == 0) uthread_cond_wait(&c, &m);
      --tickets;
      ++woken;
      uthread_mutex_unlock(&m);
    }));
  auto wait_for = [&](int* v, int want) {
    for (;;) {
      uthread_mutex_lock(&m);
      const bool done = *v == want;
      uthread_mutex_unlock(&m);
      if (done) return;
      parlib_test::fifo_yield();
    }
  };
  wait_for(&queued, kWaiters);
  EXPECT_EQ(uthread_cond_destroy(&c), EBUSY);
  uthread_mutex_lock(&m);
  tickets = 1;
  uthread_cond_signal(&c);
  uthread_mutex_unlock(&m);
  wait_for(&woken, 1);
  uthread_mutex_lock(&m);
  tickets = kWaiters - 1;
  uthread_cond_broadcast(&c);
  uthread_mutex_unlock(&m);
  for (auto* t : ts) sync_test::join(t);
  EXPECT_EQ(woken, kWaiters);
  EXPECT_EQ(uthread_cond_destroy(&c), 0);
}

TEST(UthreadCond, WaitWithoutOwningTheMutexIsEperm) {
  sync_test::start(2);
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  uthread_cond_t c = UTHREAD_COND_INITIALIZER;
  EXPECT_EQ(uthread_cond_wait(&c, &m), EPERM);
  ASSERT_EQ(uthread_mutex_lock(&m), 0);
  run_uthreads(2, 1, [&](int) { EXPECT_EQ(uthread_cond_wait(&c, &m), EPERM); });
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  EXPECT_EQ(uthread_cond_wait(nullptr, &m), EINVAL);
  EXPECT_EQ(uthread_cond_signal(nullptr), EINVAL);
  EXPECT_EQ(uthread_cond_init(nullptr), EINVAL);
}

// A recursive mutex held twice is fully released by the wait and comes
// back at depth two.
TEST(UthreadCond, WaitRestoresRecursiveDepth) {
  sync_test::start(2);
  uthread_mutex_t m = UTHREAD_RECURSIVE_MUTEX_INITIALIZER;
  uthread_cond_t c = UTHREAD_COND_INITIALIZER;
  bool flag = false;
  uthread_mutex_lock(&m);
  uthread_mutex_lock(&m);
  sync_test::Thread* t = sync_test::spawn([&] {
    EXPECT_EQ(uthread_mutex_lock(&m), 0);  // only possible if the wait released both levels
    flag = true;
    uthread_cond_signal(&c);
    uthread_mutex_unlock(&m);
  });
  while (!flag) ASSERT_EQ(uthread_cond_wait(&c, &m), 0);
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  EXPECT_EQ(uthread_mutex_unlock(&m), 0);
  EXPECT_EQ(uthread_mutex_unlock(&m), EPERM);
  sync_test::join(t);
}

// ------------------------------------------------------------- rwlock

TEST(UthreadRwlock, ReadersNeverSeeAHalfWrittenRecord) {
  uthread_rwlock_t rw = UTHREAD_RWLOCK_INITIALIZER;
  constexpr int kFields = 8, kReaders = 12, kWriters = 4, kIters = 3000;
  uint64_t record[kFields] = {};
  std::atomic<uint64_t> torn{0}, reads{0};
  std::atomic<int> max_readers{0}, readers_in{0};
  run_uthreads(2, kReaders + kWriters, [&](int id) {
    for (int i = 0; i < kIters; ++i) {
      if (id < kWriters) {
        ASSERT_EQ(uthread_rwlock_wrlock(&rw), 0);
        EXPECT_EQ(readers_in.load(), 0) << "a writer inside with readers";
        const uint64_t v = record[0] + 1;
        for (int f = 0; f < kFields; ++f) {
          record[f] = v;
          if (f == kFields / 2 && i % 64 == 0) parlib_test::fifo_yield();
        }
        ASSERT_EQ(uthread_rwlock_unlock(&rw), 0);
      } else {
        ASSERT_EQ(uthread_rwlock_rdlock(&rw), 0);
        const int in = ++readers_in;
        int seen = max_readers.load();
        while (in > seen && !max_readers.compare_exchange_weak(seen, in)) {
        }
        const uint64_t v = record[0];
        if (i % 16 == 0) parlib_test::fifo_yield();  // readers overlap
        for (int f = 1; f < kFields; ++f)
          if (record[f] != v) ++torn;
        ++reads;
        --readers_in;
        ASSERT_EQ(uthread_rwlock_unlock(&rw), 0);
      }
    }
  });
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_EQ(reads.load(), uint64_t{kReaders} * kIters);
  EXPECT_EQ(record[0], uint64_t{kWriters} * kIters) << "every write happened once";
  EXPECT_GT(max_readers.load(), 1) << "readers shared the lock";
  EXPECT_EQ(uthread_rwlock_destroy(&rw), 0);
}

TEST(UthreadRwlock, ErrorSemantics) {
  sync_test::start(2);
  uthread_rwlock_t rw;
  ASSERT_EQ(uthread_rwlock_init(&rw), 0);
  EXPECT_EQ(uthread_rwlock_unlock(&rw), EPERM) << "not held";
  ASSERT_EQ(uthread_rwlock_wrlock(&rw), 0);
  EXPECT_EQ(uthread_rwlock_wrlock(&rw), EDEADLK);
  EXPECT_EQ(uthread_rwlock_rdlock(&rw), EDEADLK);
  EXPECT_EQ(uthread_rwlock_trywrlock(&rw), EBUSY);
  EXPECT_EQ(uthread_rwlock_tryrdlock(&rw), EBUSY);
  EXPECT_EQ(uthread_rwlock_destroy(&rw), EBUSY);
  run_uthreads(2, 1, [&](int) { EXPECT_EQ(uthread_rwlock_unlock(&rw), EPERM); });
  ASSERT_EQ(uthread_rwlock_unlock(&rw), 0);
  ASSERT_EQ(uthread_rwlock_rdlock(&rw), 0);
  ASSERT_EQ(uthread_rwlock_tryrdlock(&rw), 0);
  EXPECT_EQ(uthread_rwlock_trywrlock(&rw), EBUSY);
  EXPECT_EQ(uthread_rwlock_unlock(&rw), 0);
  EXPECT_EQ(uthread_rwlock_unlock(&rw), 0);
  EXPECT_EQ(uthread_rwlock_unlock(&rw), EPERM);
  EXPECT_EQ(uthread_rwlock_destroy(&rw), 0);
  EXPECT_EQ(uthread_rwlock_rdlock(&rw), EINVAL) << "destroyed";
  EXPECT_EQ(uthread_rwlock_init(nullptr), EINVAL);
}

// A waiting writer holds off new readers (writer preference), and gets the
// lock when the last reader leaves.
TEST(UthreadRwlock, WaitingWriterIsPreferred) {
  sync_test::start(2);
  uthread_rwlock_t rw = UTHREAD_RWLOCK_INITIALIZER;
  ASSERT_EQ(uthread_rwlock_rdlock(&rw), 0);
  std::atomic<bool> writer_in{false};
  sync_test::Thread* w = sync_test::spawn([&] {
    ASSERT_EQ(uthread_rwlock_wrlock(&rw), 0);
    writer_in = true;
    ASSERT_EQ(uthread_rwlock_unlock(&rw), 0);
  });
  // Wait until the writer is queued: then new readers are refused.
  const auto t0 = Clock::now();
  while (uthread_rwlock_tryrdlock(&rw) == 0) {
    uthread_rwlock_unlock(&rw);
    parlib_test::fifo_yield();
    ASSERT_LT(Clock::now() - t0, std::chrono::seconds(10));
  }
  EXPECT_FALSE(writer_in.load());
  ASSERT_EQ(uthread_rwlock_unlock(&rw), 0);
  sync_test::join(w);
  EXPECT_TRUE(writer_in.load());
}

// ------------------------------------------------------------- barrier

TEST(UthreadBarrier, HundredUthreadsThousandPhasesOneSerialEach) {
  constexpr int kThreads = 100, kPhases = 1000;
  uthread_barrier_t b;
  ASSERT_EQ(uthread_barrier_init(&b, kThreads), 0);
  std::vector<std::atomic<int>> arrived(kPhases), serial(kPhases);
  std::atomic<int> early{0};
  run_uthreads(2, kThreads, [&](int) {
    for (int p = 0; p < kPhases; ++p) {
      ++arrived[static_cast<size_t>(p)];
      const int rc = uthread_barrier_wait(&b);
      ASSERT_TRUE(rc == 0 || rc == UTHREAD_BARRIER_SERIAL_THREAD) << rc;
      if (rc == UTHREAD_BARRIER_SERIAL_THREAD) ++serial[static_cast<size_t>(p)];
      // Nobody leaves phase p before everyone arrived in it.
      if (arrived[static_cast<size_t>(p)].load() != kThreads) ++early;
    }
  });
  EXPECT_EQ(early.load(), 0);
  for (int p = 0; p < kPhases; ++p) ASSERT_EQ(serial[static_cast<size_t>(p)].load(), 1) << p;
  EXPECT_EQ(uthread_barrier_destroy(&b), 0);
  EXPECT_EQ(uthread_barrier_wait(&b), EINVAL) << "destroyed";
}

TEST(UthreadBarrier, ErrorSemantics) {
  sync_test::start(2);
  uthread_barrier_t b;
  EXPECT_EQ(uthread_barrier_init(&b, 0), EINVAL);
  EXPECT_EQ(uthread_barrier_init(nullptr, 2), EINVAL);
  ASSERT_EQ(uthread_barrier_init(&b, 1), 0);
  EXPECT_EQ(uthread_barrier_wait(&b), UTHREAD_BARRIER_SERIAL_THREAD) << "count 1: always serial";
  ASSERT_EQ(uthread_barrier_init(&b, 2), 0);
  sync_test::Thread* t = sync_test::spawn([&] { uthread_barrier_wait(&b); });
  wait_until([&] { return has_waiter(b.waiters_); }, "the barrier waiter to queue");
  EXPECT_EQ(uthread_barrier_destroy(&b), EBUSY);
  uthread_barrier_wait(&b);
  sync_test::join(t);
  EXPECT_EQ(uthread_barrier_destroy(&b), 0);
}

// ------------------------------------------------------------ semaphore

TEST(UthreadSem, CountsExactlyUnderContention) {
  uthread_sem_t items, slots, mutex;
  constexpr int kCap = 5, kProducers = 6, kConsumers = 6, kPerProducer = 5000;
  ASSERT_EQ(uthread_sem_init(&items, 0), 0);
  ASSERT_EQ(uthread_sem_init(&slots, kCap), 0);
  ASSERT_EQ(uthread_sem_init(&mutex, 1), 0);
  long produced = 0, consumed = 0;  // protected by the binary semaphore
  std::atomic<int> in_buffer{0}, overfull{0};
  run_uthreads(2, kProducers + kConsumers, [&](int id) {
    for (int i = 0; i < kPerProducer; ++i) {
      if (id < kProducers) {
        ASSERT_EQ(uthread_sem_wait(&slots), 0);
        if (++in_buffer > kCap) ++overfull;
        ASSERT_EQ(uthread_sem_wait(&mutex), 0);
        ++produced;
        ASSERT_EQ(uthread_sem_post(&mutex), 0);
        ASSERT_EQ(uthread_sem_post(&items), 0);
      } else {
        ASSERT_EQ(uthread_sem_wait(&items), 0);
        --in_buffer;
        ASSERT_EQ(uthread_sem_wait(&mutex), 0);
        ++consumed;
        ASSERT_EQ(uthread_sem_post(&mutex), 0);
        ASSERT_EQ(uthread_sem_post(&slots), 0);
      }
    }
  });
  EXPECT_EQ(produced, long{kProducers} * kPerProducer);
  EXPECT_EQ(consumed, produced);
  EXPECT_EQ(overfull.load(), 0);
  int v = -1;
  EXPECT_EQ(uthread_sem_getvalue(&items, &v), 0);
  EXPECT_EQ(v, 0);
  EXPECT_EQ(uthread_sem_getvalue(&slots, &v), 0);
  EXPECT_EQ(v, kCap);
  EXPECT_EQ(uthread_sem_trywait(&items), EAGAIN);
  EXPECT_EQ(uthread_sem_destroy(&items), 0);
  EXPECT_EQ(uthread_sem_destroy(&slots), 0);
  EXPECT_EQ(uthread_sem_destroy(&mutex), 0);
}

TEST(UthreadSem, TimedwaitAndLimits) {
  sync_test::start(2);
  uthread_sem_t s;
  ASSERT_EQ(uthread_sem_init(&s, 0), 0);
  EXPECT_EQ(uthread_sem_trywait(&s), EAGAIN);
  const struct timespec deadline = realtime_in(milliseconds(40));
  const auto t0 = Clock::now();
  EXPECT_EQ(uthread_sem_timedwait(&s, &deadline), ETIMEDOUT);
  const auto waited = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
  EXPECT_GE(waited, 39);
  EXPECT_LT(waited, 40 + kLatenessMs);
  struct timespec bad = {0, -1};
  EXPECT_EQ(uthread_sem_timedwait(&s, &bad), EINVAL);
  ASSERT_EQ(uthread_sem_post(&s), 0);
  EXPECT_EQ(uthread_sem_timedwait(&s, &bad), 0) << "no wait needed: timeout not looked at";
  // A post reaches a timed waiter before its deadline.
  sync_test::Thread* t = sync_test::spawn([&] {
    const struct timespec far = realtime_in(milliseconds(5000));
    EXPECT_EQ(uthread_sem_timedwait(&s, &far), 0);
  });
  wait_until([&] { return has_waiter(s.waiters_); }, "the semaphore waiter to queue");
  EXPECT_EQ(uthread_sem_destroy(&s), EBUSY) << "a waiter is queued";
  ASSERT_EQ(uthread_sem_post(&s), 0);
  sync_test::join(t);
  EXPECT_EQ(uthread_sem_destroy(&s), 0);
  EXPECT_EQ(uthread_sem_init(&s, UTHREAD_SEM_VALUE_MAX), 0);
  EXPECT_EQ(uthread_sem_post(&s), EOVERFLOW);
  EXPECT_EQ(uthread_sem_init(&s, 1u + UTHREAD_SEM_VALUE_MAX), EINVAL);
  EXPECT_EQ(uthread_sem_wait(nullptr), EINVAL);
  EXPECT_EQ(uthread_sem_getvalue(&s, nullptr), EINVAL);
}

// Timeouts racing with posts: a post either hands its unit to a waiter
// (whose wait then returns 0) or raises the value, and a waiter that times
// out consumes nothing. If a wakeup and a timeout could both win, a unit
// would be lost or counted twice, so successes + final value must equal
// the posts exactly.
TEST(UthreadSem, TimeoutsRacingWithPostsLoseNoUnit) {
  uthread_sem_t s;
  ASSERT_EQ(uthread_sem_init(&s, 0), 0);
  constexpr int kWaiters = 6, kWaits = 400, kPosters = 2, kPosts = 1000;
  std::atomic<long> successes{0}, timeouts{0}, other{0};
  run_uthreads(2, kWaiters + kPosters, [&](int id) {
    if (id < kWaiters) {
      for (int i = 0; i < kWaits; ++i) {
        // Deadlines from 0 to 1.5 ms ahead: many races land on the deadline.
        struct timespec d = realtime_in(milliseconds(0));
        d.tv_nsec += (i % 16) * 100000;
        if (d.tv_nsec >= 1000000000) {
          d.tv_nsec -= 1000000000;
          ++d.tv_sec;
        }
        const int rc = uthread_sem_timedwait(&s, &d);
        if (rc == 0)
          ++successes;
        else if (rc == ETIMEDOUT)
          ++timeouts;
        else
          ++other;
      }
    } else {
      for (int i = 0; i < kPosts; ++i) {
        ASSERT_EQ(uthread_sem_post(&s), 0);
        if (i % 4 == 0) parlib_test::fifo_yield();
      }
    }
  });
  int value = -1;
  ASSERT_EQ(uthread_sem_getvalue(&s, &value), 0);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(successes.load() + timeouts.load(), long{kWaiters} * kWaits);
  EXPECT_EQ(successes.load() + value, long{kPosters} * kPosts)
      << successes.load() << " successes, " << timeouts.load() << " timeouts";
  EXPECT_EQ(uthread_sem_destroy(&s), 0);
}

// ---------------------------------------------------------------- futex

TEST(UthreadFutex, WaitChecksTheValueAtomically) {
  sync_test::start(2);
  int word = 1;
  errno = 0;
  EXPECT_EQ(futex(&word, FUTEX_WAIT, 0, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(futex(&word, FUTEX_WAKE, 10, nullptr, nullptr, 0), 0) << "nobody waits";
  errno = 0;
  EXPECT_EQ(futex(nullptr, FUTEX_WAIT, 0, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(futex(&word, 99, 0, nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, ENOSYS);
  const struct timespec rel = {0, 30 * 1000 * 1000};
  const auto t0 = Clock::now();
  errno = 0;
  EXPECT_EQ(futex(&word, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 1, &rel, nullptr, 0), -1);
  EXPECT_EQ(errno, ETIMEDOUT);
  EXPECT_GE(Clock::now() - t0, milliseconds(29));
}

TEST(UthreadFutex, WakeReleasesExactlyTheWaitersOfThatAddress) {
  sync_test::start(2);
  int word = 0, other = 0;
  constexpr int kWaiters = 6;
  std::atomic<int> queued{0}, woken{0};
  std::vector<sync_test::Thread*> ts;
  for (int i = 0; i < kWaiters; ++i)
    ts.push_back(sync_test::spawn([&] {
      ++queued;
      while (__atomic_load_n(&word, __ATOMIC_ACQUIRE) == 0) {
        const int rc = futex(&word, FUTEX_WAIT, 0, nullptr, nullptr, 0);
        EXPECT_TRUE(rc == 0 || errno == EAGAIN);
      }
      ++woken;
    }));
  sync_test::Thread* o =
      sync_test::spawn([&] { EXPECT_EQ(futex(&other, FUTEX_WAIT, 0, nullptr, nullptr, 0), 0); });
  while (queued.load() < kWaiters) parlib_test::fifo_yield();
  for (int i = 0; i < 100; ++i) parlib_test::fifo_yield();
  EXPECT_EQ(woken.load(), 0);
  __atomic_store_n(&word, 1, __ATOMIC_RELEASE);
  int total = 0;
  const auto t0 = Clock::now();
  while (woken.load() < kWaiters) {
    total += futex(&word, FUTEX_WAKE, 2, nullptr, nullptr, 0);
    parlib_test::fifo_yield();
    ASSERT_LT(Clock::now() - t0, std::chrono::seconds(10));
  }
  for (auto* t : ts) sync_test::join(t);
  EXPECT_LE(total, kWaiters);
  // The waiter on the other word is still asleep; wake it.
  int n = 0;
  while ((n = futex(&other, FUTEX_WAKE, 1, nullptr, nullptr, 0)) == 0) parlib_test::fifo_yield();
  EXPECT_EQ(n, 1);
  sync_test::join(o);
}

// Timeouts racing with wakes: every waiter a FUTEX_WAKE counted must
// return 0 and every other one ETIMEDOUT, so the wakes' return values add
// up to exactly the waits that returned 0.
TEST(UthreadFutex, TimeoutsRacingWithWakesCountExactly) {
  int word = 0;
  constexpr int kWaiters = 6, kWaits = 300;
  std::atomic<long> woken{0}, timed_out{0}, other{0}, reported{0};
  std::atomic<int> done{0};
  run_uthreads(2, kWaiters + 1, [&](int id) {
    if (id < kWaiters) {
      for (int i = 0; i < kWaits; ++i) {
        const struct timespec rel = {0, (i % 16) * 100000 + 1000};
        const int rc = futex(&word, FUTEX_WAIT, 0, &rel, nullptr, 0);
        if (rc == 0)
          ++woken;
        else if (errno == ETIMEDOUT)
          ++timed_out;
        else
          ++other;
      }
      ++done;
    } else {
      while (done.load() < kWaiters) {
        reported += futex(&word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
        // Wake slower than the waiters wait, so that many time out (about
        // a third, measured).
        const auto until = Clock::now() + std::chrono::microseconds(300);
        while (Clock::now() < until) parlib_test::fifo_yield();
      }
    }
  });
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(woken.load() + timed_out.load(), long{kWaiters} * kWaits);
  EXPECT_EQ(reported.load(), woken.load())
      << woken.load() << " woken, " << timed_out.load() << " timed out";
}

// A futex-based lock (Drepper's mutex 2) built on our futex: exact count.
TEST(UthreadFutex, FutexLockCountsExactly) {
  int lock_word = 0;
  long counter = 0;
  auto lock = [&] {
    int c = 0;
    if (__atomic_compare_exchange_n(&lock_word, &c, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
      return;
    if (c != 2) c = __atomic_exchange_n(&lock_word, 2, __ATOMIC_ACQUIRE);
    while (c != 0) {
      futex(&lock_word, FUTEX_WAIT, 2, nullptr, nullptr, 0);
      c = __atomic_exchange_n(&lock_word, 2, __ATOMIC_ACQUIRE);
    }
  };
  auto unlock = [&] {
    if (__atomic_exchange_n(&lock_word, 0, __ATOMIC_RELEASE) == 2)
      futex(&lock_word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
  };
  constexpr int kThreads = 16, kIters = 5000;
  run_uthreads(2, kThreads, [&](int) {
    for (int i = 0; i < kIters; ++i) {
      lock();
      ++counter;
      if (i % 256 == 0) parlib_test::fifo_yield();
      unlock();
    }
  });
  EXPECT_EQ(counter, long{kThreads} * kIters);
}

// -------------------------------------------- callers that cannot block

// From vcore context (here: a uthread_yield callback) nothing may block:
// the lock calls that would have to wait and every wait return EPERM,
// the non-blocking calls work, and the pdr locks work with the vcore's
// own qnodes.
struct VcoreContextResults {
  uthread_mutex_t* held;  // held by the yielding uthread
  uthread_mutex_t* free_mutex;
  uthread_cond_t* c;
  uthread_sem_t* s;
  uthread_barrier_t* b;
  uthread_rwlock_t* rw;  // write-held by the yielding uthread
  int* word;
  bool in_vcore = false;
  int lock_held = -1, trylock_held = -1, trylock_free = -1, unlock_free = -1, cond_wait = -1,
      sem_wait = -1, sem_trywait = -1, sem_post = -1, barrier_wait = -1, rdlock = -1,
      futex_wait_rc = 0, futex_wait_errno = 0, futex_wake = -1;
  bool pdr_ok = false;
};

void vcore_context_calls(struct uthread* uth, void* arg) {
  auto* r = static_cast<VcoreContextResults*>(arg);
  r->in_vcore = in_vcore_context();
  r->lock_held = uthread_mutex_lock(r->held);
  r->trylock_held = uthread_mutex_trylock(r->held);
  r->trylock_free = uthread_mutex_trylock(r->free_mutex);
  r->unlock_free = uthread_mutex_unlock(r->free_mutex);
  r->cond_wait = uthread_cond_wait(r->c, r->free_mutex);
  r->sem_wait = uthread_sem_wait(r->s);  // value 0: would wait
  r->sem_post = uthread_sem_post(r->s);
  r->sem_trywait = uthread_sem_trywait(r->s);
  r->barrier_wait = uthread_barrier_wait(r->b);
  r->rdlock = uthread_rwlock_rdlock(r->rw);
  r->futex_wait_rc = futex(r->word, FUTEX_WAIT, 0, nullptr, nullptr, 0);
  r->futex_wait_errno = errno;
  r->futex_wake = futex(r->word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
  static spin_pdr_lock_t pdr = SPINPDR_INITIALIZER;
  static mcs_pdr_lock_t mcs = MCS_PDRLOCK_INIT;
  spin_pdr_lock(&pdr);
  mcs_pdr_lock(&mcs);
  mcs_pdr_unlock(&mcs);
  spin_pdr_unlock(&pdr);
  r->pdr_ok = true;
  uthread_paused(uth);
}

TEST(UthreadSyncOutsideUthreads, VcoreContextGetsEpermAndNeverBlocks) {
  sync_test::start(2);
  uthread_mutex_t held = UTHREAD_MUTEX_INITIALIZER, free_mutex = UTHREAD_MUTEX_INITIALIZER;
  uthread_cond_t c = UTHREAD_COND_INITIALIZER;
  uthread_sem_t s;
  uthread_sem_init(&s, 0);
  uthread_barrier_t b;
  uthread_barrier_init(&b, 2);
  uthread_rwlock_t rw = UTHREAD_RWLOCK_INITIALIZER;
  int word = 0;
  ASSERT_EQ(uthread_mutex_lock(&held), 0);
  ASSERT_EQ(uthread_rwlock_wrlock(&rw), 0);
  VcoreContextResults r{&held, &free_mutex, &c, &s, &b, &rw, &word};
  uthread_yield(true, vcore_context_calls, &r);
  EXPECT_TRUE(r.in_vcore);
  EXPECT_EQ(r.lock_held, EPERM);
  EXPECT_EQ(r.trylock_held, EBUSY);
  EXPECT_EQ(r.trylock_free, 0);
  EXPECT_EQ(r.unlock_free, 0);
  EXPECT_EQ(r.cond_wait, EPERM);
  EXPECT_EQ(r.sem_wait, EPERM);
  EXPECT_EQ(r.sem_post, 0);
  EXPECT_EQ(r.sem_trywait, 0);
  EXPECT_EQ(r.barrier_wait, EPERM);
  EXPECT_EQ(r.rdlock, EPERM);
  EXPECT_EQ(r.futex_wait_rc, -1);
  EXPECT_EQ(r.futex_wait_errno, EPERM);
  EXPECT_EQ(r.futex_wake, 0);
  EXPECT_TRUE(r.pdr_ok);
  EXPECT_EQ(uthread_mutex_unlock(&held), 0);
  EXPECT_EQ(uthread_rwlock_unlock(&rw), 0);
  EXPECT_EQ(uthread_barrier_destroy(&b), 0) << "the refused wait did not count as an arrival";
}

// A kernel thread that is not a uthread: the waits that need another
// thread's action refuse with EPERM, the lock-style calls spin and work.
TEST(UthreadSyncOutsideUthreads, PlainThreadGetsEpermOrSpins) {
  sync_test::start(2);
  uthread_mutex_t m = UTHREAD_ERRORCHECK_MUTEX_INITIALIZER;
  uthread_cond_t c = UTHREAD_COND_INITIALIZER;
  uthread_sem_t s;
  uthread_sem_init(&s, 0);
  uthread_barrier_t b;
  uthread_barrier_init(&b, 2);
  uthread_rwlock_t rw = UTHREAD_RWLOCK_INITIALIZER;
  int word = 0;
  std::thread([&] {
    EXPECT_EQ(uthread_mutex_lock(&m), 0);
    EXPECT_EQ(uthread_mutex_lock(&m), EDEADLK) << "a plain thread has an identity too";
    struct timespec ts = realtime_in(milliseconds(10));
    EXPECT_EQ(uthread_cond_wait(&c, &m), EPERM);
    EXPECT_EQ(uthread_cond_timedwait(&c, &m, &ts), EPERM);
    EXPECT_EQ(uthread_mutex_unlock(&m), 0);
    EXPECT_EQ(uthread_sem_wait(&s), EPERM);
    EXPECT_EQ(uthread_sem_post(&s), 0);
    EXPECT_EQ(uthread_sem_wait(&s), 0) << "no wait needed";
    EXPECT_EQ(uthread_barrier_wait(&b), EPERM);
    errno = 0;
    EXPECT_EQ(futex(&word, FUTEX_WAIT, 0, nullptr, nullptr, 0), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(uthread_rwlock_wrlock(&rw), 0);
    EXPECT_EQ(uthread_rwlock_unlock(&rw), 0);
  }).join();
  // A plain thread and uthreads contend on one mutex: exact count.
  long counter = 0;
  constexpr int kIters = 20000;
  std::thread plain([&] {
    sync_test_util::unpin_from_vcore();
    for (int i = 0; i < kIters; ++i) {
      uthread_mutex_lock(&m);
      ++counter;
      uthread_mutex_unlock(&m);
    }
  });
  run_uthreads(2, 4, [&](int) {
    for (int i = 0; i < kIters; ++i) {
      uthread_mutex_lock(&m);
      ++counter;
      uthread_mutex_unlock(&m);
    }
  });
  plain.join();
  EXPECT_EQ(counter, 5L * kIters);
}

}  // namespace

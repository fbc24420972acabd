// upthread's second-level scheduler (dissertation 2.6.1): per-vcore FIFO
// run queues, affinity to the last vcore, stealing by two random choices,
// preemption by per-vcore alarms, automatic vcore requests.
#include <parlib/alarm.h>
#include <parlib/event.h>
#include <parlib/spinlock.h>
#include <parlib/syscall.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>

#include "common/cache_line.h"
#include "common/clock.h"
#include "common/spinlock.h"
#include "upthread/upthread_internal.h"

namespace parlib::detail::upthread_impl {
namespace {

// The run-queue lock: the base TTAS lock (acquire: the queue links written
// by the previous holder are visible). It is always held with
// notifications disabled — vcore context has them off by definition, and
// uthread-context callers (a wakeup) disable them first (lock_anywhere) —
// so its holder is never preempted on its own vcore. Its fast path is
// inline, because the switch path takes it twice.
using QueueLock = SpinLock<>;

// Adds to a counter that only one vcore writes (others read it racily for
// statistics): a plain load and store, no locked instruction.
void bump(std::atomic<uint64_t> &counter, uint64_t by = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

// A vcore's run queue and counters, on their own cache lines.
struct alignas(kCacheLinePairSize) VcoreSched {  // see Vcore
  QueueLock lock;
  struct upthread *head = nullptr;
  struct upthread *tail = nullptr;
  std::atomic<int> length{0};
  uint64_t rng = 0;  // this vcore's xorshift state for victim choice
  // Preemption tick: armed on this vcore by its own sched_entry.
  struct alarm_waiter tick {};
  bool tick_armed = false;
  bool tick_stopping = false;  // a spare left: its tick must not re-arm
  // Set by the stuck-vcore monitor on a spare vcore it no longer needs.
  std::atomic<bool> retire{false};
  uint64_t idle_since_ns = 0;
  // Counters (written by this vcore only; read racily for stats).
  std::atomic<uint64_t> switches{0}, steals{0}, preemptions{0}, idle_ns{0};
};

VcoreSched *g_vcores = nullptr;
int g_max = 0;  // max_vcores(): the vcores requests and placement use
int g_nv = 0;   // g_max plus the spare vcores (ids g_max..g_nv-1)
// Vcores that have run: g_max plus the spares used so far (the vcore
// layer uses spares lowest id first). Loops over queues stop here.
std::atomic<int> g_slots_used{0};
std::atomic<int> g_num_queues{1};  // upthread_set_num_vcores
std::atomic<uint64_t> g_period_us{0};
std::atomic<bool> g_can_request{true};
std::atomic<bool> g_can_steal{true};
std::atomic<uint32_t> g_next_placement{0};
std::atomic<int> g_live{1};  // thread0
struct upthread g_thread0;

// The queue operations proper; the caller holds q.lock. The length is
// written under the lock and read without it only as a hint.
void push_locked(VcoreSched &q, struct upthread *t) {
  t->next = nullptr;
  if (q.tail != nullptr)
    q.tail->next = t;
  else
    q.head = t;
  q.tail = t;
  q.length.store(q.length.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

struct upthread *pop_locked(VcoreSched &q) {
  struct upthread *t = q.head;
  if (t != nullptr) {
    q.head = t->next;
    if (q.head == nullptr) q.tail = nullptr;
    q.length.store(q.length.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }
  return t;
}

// Vcore context only (notifications are off there).
void push(VcoreSched &q, struct upthread *t) {
  q.lock.lock();
  push_locked(q, t);
  q.lock.unlock();
}

// Any context: in uthread context, hold notifications off around the lock.
void push_anywhere(VcoreSched &q, struct upthread *t) {
  uth_disable_notifs();
  push(q, t);
  uth_enable_notifs();
}

struct upthread *pop(VcoreSched &q) {
  if (q.length.load(std::memory_order_relaxed) == 0) return nullptr;  // cheap look first
  q.lock.lock();
  struct upthread *t = pop_locked(q);
  q.lock.unlock();
  return t;
}

uint32_t next_random(VcoreSched &q) {
  q.rng ^= q.rng << 13;
  q.rng ^= q.rng >> 7;
  q.rng ^= q.rng << 17;
  return static_cast<uint32_t>(q.rng);
}

// Takes half of victim's queue (the older half, from the head) into
// thief's, returns one of them to run.
struct upthread *steal_half(VcoreSched &victim, VcoreSched &thief) {
  victim.lock.lock();
  int n = victim.length.load(std::memory_order_relaxed);
  int take = (n + 1) / 2;
  struct upthread *first = victim.head, *last = nullptr;
  for (int i = 0; i < take && victim.head != nullptr; ++i) {
    last = victim.head;
    victim.head = last->next;
  }
  if (victim.head == nullptr) victim.tail = nullptr;
  victim.length.store(n - take, std::memory_order_relaxed);
  victim.lock.unlock();
  if (last == nullptr) return nullptr;
  last->next = nullptr;
  struct upthread *run = first;
  for (struct upthread *t = first->next; t != nullptr;) {
    struct upthread *next = t->next;
    push(thief, t);
    t = next;
  }
  return run;
}

// Two random choices, the longer one loses half, as many tries as there
// are queues; then one deterministic pass (see below).
struct upthread *steal(uint32_t self) {
  int nq = g_slots_used.load(std::memory_order_relaxed);  // spares too: see thread_paused
  if (nq < 2) return nullptr;
  VcoreSched &me = g_vcores[self];
  for (int attempt = 0; attempt < nq; ++attempt) {
    uint32_t a = next_random(me) % static_cast<uint32_t>(nq);
    uint32_t b = next_random(me) % static_cast<uint32_t>(nq);
    if (a == self) a = (a + 1) % static_cast<uint32_t>(nq);
    if (b == self) b = (b + 1) % static_cast<uint32_t>(nq);
    VcoreSched &va = g_vcores[a], &vb = g_vcores[b];
    VcoreSched &victim =
        va.length.load(std::memory_order_relaxed) >= vb.length.load(std::memory_order_relaxed) ? va
                                                                                               : vb;
    if (victim.length.load(std::memory_order_relaxed) == 0) continue;
    if (struct upthread *t = steal_half(victim, me)) {
      bump(me.steals);
      return t;
    }
  }
  // Random choices can miss the one queue that has work (a thread woken
  // onto an offline vcore's queue); before this vcore goes idle, one pass
  // over every queue makes sure no queued thread is left behind.
  for (int i = 1; i < nq; ++i) {
    VcoreSched &victim = g_vcores[(self + static_cast<uint32_t>(i)) % static_cast<uint32_t>(nq)];
    if (victim.length.load(std::memory_order_relaxed) == 0) continue;
    if (struct upthread *t = steal_half(victim, me)) {
      bump(me.steals);
      return t;
    }
  }
  return nullptr;
}

// The preemption tick, in vcore context on the vcore it belongs to (alarm
// callbacks run where they were started). The interrupted thread goes to
// the back of this vcore's queue; vcore_entry then runs sched_entry.
void on_tick(struct alarm_waiter *w) {
  auto *vs = static_cast<VcoreSched *>(w->data);
  uint64_t period = g_period_us.load(std::memory_order_relaxed);
  if (period == 0 || vs->tick_stopping) {
    vs->tick_armed = false;
    return;
  }
  if (in_vcore_context() && current_uthread != nullptr) {
    struct uthread *uth = current_uthread;
    current_uthread = nullptr;
    uthread_paused(uth);
    bump(vs->preemptions);
  }
  set_waiter_rel(w, period);
  start_alarm(w);
}

void arm_tick(uint32_t id) {
  VcoreSched &vs = g_vcores[id];
  uint64_t period = g_period_us.load(std::memory_order_relaxed);
  if (period == 0 || vs.tick_armed) return;
  vs.tick_armed = true;
  init_waiter(&vs.tick, on_tick);
  vs.tick.data = &vs;
  set_waiter_rel(&vs.tick, period);
  start_alarm(&vs.tick);
}

// queue: where the thread was just put. Requests go to the lowest free
// vcore, so a thread queued on an offline vcore's queue also asks (that
// vcore, or one that steals from it, picks it up).
void maybe_request_vcore(uint32_t queue) {
  // A thread queued for an offline vcore: that very vcore comes back for
  // it, with requests and stealing on or off (a vcore going offline right
  // now finds it through has_queued_work instead).
  if (!vcore_is_online(queue)) {
    vcore_wake(queue);
    return;
  }
  if (!g_can_request.load(std::memory_order_relaxed)) return;
  int want = g_num_queues.load(std::memory_order_relaxed);
  // A waker that is not on a vcore always asks (see vcore.h: requests add
  // to what is wanted, so one that races with a yield is not lost).
  bool on_vcore = in_vcore_context() || uthread_self() != nullptr;
  if (!on_vcore || num_vcores() < want) vcore_request(1);
}

bool is_spare(uint32_t id) { return id >= static_cast<uint32_t>(g_max); }

// A spare vcore leaves: its queue goes to a vcore in use, and its tick
// stops (an idle spare is not woken every period).
[[noreturn]] void leave_spare(VcoreSched &vs) {
  vs.retire.store(false, std::memory_order_relaxed);
  uint32_t id = static_cast<uint32_t>(&vs - g_vcores);
  int nq = g_num_queues.load(std::memory_order_relaxed);
  VcoreSched &heir = g_vcores[id % static_cast<uint32_t>(nq)];
  while (struct upthread *t = pop(vs)) {
    push(heir, t);
    maybe_request_vcore(static_cast<uint32_t>(&heir - g_vcores));
  }
  vs.tick_stopping = true;
  if (vs.tick_armed && stop_alarm(&vs.tick)) vs.tick_armed = false;
  vs.idle_since_ns = monotonic_now_ns();
  vcore_yield();
  __builtin_unreachable();  // vcore_yield starts the vcore afresh
}

void sched_entry() {
  uint32_t id = vcore_id();
  VcoreSched &vs = g_vcores[id];
  if (vs.idle_since_ns != 0) {
    bump(vs.idle_ns, monotonic_now_ns() - vs.idle_since_ns);
    vs.idle_since_ns = 0;
  }
  bool spare = is_spare(id);
  if (spare) {
    int used = g_slots_used.load(std::memory_order_relaxed);
    while (used <= static_cast<int>(id) &&
           !g_slots_used.compare_exchange_weak(used, static_cast<int>(id) + 1)) {
    }
    if (vs.retire.exchange(false, std::memory_order_acq_rel)) leave_spare(vs);
    vs.tick_stopping = false;
  }
  arm_tick(id);
  for (;;) {
    struct upthread *t = pop(vs);
    // A spare exists to take others' threads: it steals even when
    // stealing is off.
    if (t == nullptr && (spare || g_can_steal.load(std::memory_order_relaxed))) t = steal(id);
    if (t != nullptr) {
      t->last_vcore = id;
      bump(vs.switches);
      run_uthread(&t->uth);
    }
    // Without automatic requests a vcore in use keeps its core: poll
    // (events included), as the seed's experiments do. Vcores beyond the
    // ones in use still go away.
    if (spare) leave_spare(vs);
    if (g_can_request.load(std::memory_order_relaxed) ||
        static_cast<int>(id) >= g_num_queues.load(std::memory_order_relaxed))
      break;
    __builtin_ia32_pause();
    handle_events();
  }
  vs.idle_since_ns = monotonic_now_ns();
  vcore_yield();
}

VcoreSched &home_queue(struct upthread *t) {
  int nq = g_num_queues.load(std::memory_order_relaxed);
  uint32_t v = t->last_vcore;
  if (t->placed_new) {  // a new thread goes where upthread_set_num_vcores spread it
    t->placed_new = false;
    return g_vcores[v % static_cast<uint32_t>(nq)];
  }
  // Affinity: back where it last ran, if that vcore is still in use;
  // otherwise where the waker runs.
  if (static_cast<int>(v) < nq && vcore_is_online(v)) return g_vcores[v];
  if (in_vcore_context() || uthread_self() != nullptr) {
    uint32_t here = vcore_id();
    if (static_cast<int>(here) < nq) return g_vcores[here];
  }
  return g_vcores[v % static_cast<uint32_t>(nq)];
}

void thread_runnable(struct uthread *uth) {
  VcoreSched &q = home_queue(of(uth));
  push_anywhere(q, of(uth));
  // Queued, then look at the vcore: one that is going offline looks at its
  // queue after marking itself offline (has_queued_work), so either it sees
  // this thread or maybe_request_vcore sees it offline.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  maybe_request_vcore(static_cast<uint32_t>(&q - g_vcores));
}

// vcore_set_sched_probe: a vcore about to go offline stays for its queue.
bool has_queued_work(uint32_t id) {
  return g_vcores[id].length.load(std::memory_order_seq_cst) != 0;
}

void thread_paused(struct uthread *uth) {
  struct upthread *t = of(uth);
  t->last_vcore = vcore_id();
  push(g_vcores[t->last_vcore], t);
}

void thread_blockon_sysc(struct uthread *, void *) {}
// A blocking primitive calls this under its queue's lock, just before the
// thread goes on the queue: a cancellable wait is now kickable
// (upthread_cancel's wakeup takes the same lock and finds it queued).
void thread_has_blocked(struct uthread *uth, int) {
  struct upthread *t = of(uth);
  uint32_t w = t->cwait.load(std::memory_order_relaxed);
  if (wait_state(w) == kWaitPreparing)
    t->cwait.compare_exchange_strong(w, with_state(w, kWaitBlocked), std::memory_order_acq_rel);
}

void thread_refl_fault(struct uthread *uth, int signo, int code, void *addr) {
  fprintf(stderr, "upthread: thread %p took signal %d (code %d) at %p\n", static_cast<void *>(uth),
          signo, code, addr);
  abort();
}

struct schedule_ops g_ops = {
    sched_entry,        thread_runnable,   thread_paused, thread_blockon_sysc,
    thread_has_blocked, thread_refl_fault, nullptr,       thread_sysc_interrupted};

// The process that asked for the table: a fork child runs the same atexit
// handlers, and must not print the parent's numbers again.
pid_t g_stats_pid = 0;

void print_stats() {
  if (getpid() != g_stats_pid) return;
  if (stats_mode() == StatsMode::kJson) return print_stats_json();
  fprintf(stderr, "upthread stats: vcore switches steals preemptions events syscalls idle_ms\n");
  for (int i = 0, n = vcore_slots(); i < n; ++i) {
    struct upthread_vcore_stats st {};
    upthread_get_vcore_stats(static_cast<uint32_t>(i), &st);
    if (i >= g_max && st.switches == 0) continue;  // a spare never used
    fprintf(
        stderr, "upthread stats: %5d %8llu %6llu %11llu %6llu %8llu %7.1f\n", i,
        static_cast<unsigned long long>(st.switches), static_cast<unsigned long long>(st.steals),
        static_cast<unsigned long long>(st.preemptions), static_cast<unsigned long long>(st.events),
        static_cast<unsigned long long>(st.syscalls), static_cast<double>(st.idle_ns) / 1e6);
  }
}

// After a direct switch, in the next thread's context: the previous one,
// now saved, goes to the back of the queue, whose lock the switch carried
// across (see yield_directly). The thread stays "stopped" for the library,
// which run_uthread and uthread_switch_to accept.
void requeue_and_unlock(struct uthread *prev, void *queue) {
  auto *vs = static_cast<VcoreSched *>(queue);
  push_locked(*vs, of(prev));
  vs->lock.unlock();
}

}  // namespace

bool yield_directly() {
  // Notifications off: no preemption (or migration) between choosing the
  // next thread on this vcore's queue and switching to it.
  uth_disable_notifs();
  uint32_t id = vcore_id();
  VcoreSched &vs = g_vcores[id];
  if (is_spare(id) && vs.retire.load(std::memory_order_relaxed)) {
    // A spare told to leave: through vcore context, where sched_entry
    // hands this thread and the rest of the queue on.
    uth_enable_notifs();
    uthread_yield(
        true, [](struct uthread *uth, void *) { thread_paused(uth); }, nullptr);
    return true;
  }
  if (vs.length.load(std::memory_order_relaxed) == 0) {
    uth_enable_notifs();
    return false;
  }
  // The queue lock is held across the switch and released by the next
  // thread once this one is queued (its registers saved): one lock round
  // trip per yield instead of two. Both sides have notifications off, and
  // nothing else runs on this vcore meanwhile; other vcores wait briefly.
  vs.lock.lock();
  struct upthread *next = pop_locked(vs);
  if (next == nullptr) {
    vs.lock.unlock();
    uth_enable_notifs();
    return false;
  }
  next->last_vcore = id;
  bump(vs.switches);
  uthread_switch_to(&next->uth, requeue_and_unlock, &vs);
  uth_enable_notifs();
  return true;
}

// The stuck-vcore monitor's view of the scheduler (monitor.cpp).
int vcore_slots() { return g_slots_used.load(std::memory_order_relaxed); }
uint64_t vcore_switches(uint32_t id) {
  return g_vcores[id].switches.load(std::memory_order_relaxed);
}
bool threads_queued() {
  for (int i = 0, n = vcore_slots(); i < n; ++i)
    if (g_vcores[i].length.load(std::memory_order_relaxed) != 0) return true;
  return false;
}
void move_queued(uint32_t from, uint32_t to) {
  VcoreSched &src = g_vcores[from], &dst = g_vcores[to];
  bool moved = false;
  while (struct upthread *t = pop(src)) {
    push(dst, t);  // the monitor is no uthread: no notifications to hold off
    moved = true;
  }
  if (moved) maybe_request_vcore(to);
}
void retire_spare(uint32_t id, bool retire) {
  g_vcores[id].retire.store(retire, std::memory_order_release);
}

void init() {
  g_max = max_vcores();
  if (g_max <= 0) {
    fprintf(stderr, "upthread: cannot initialise vcores (check PARLIB_VCORES)\n");
    exit(2);
  }
  g_nv = g_max + max_spare_vcores();
  g_slots_used.store(g_max);
  void *mem = aligned_alloc(alignof(VcoreSched), sizeof(VcoreSched) * static_cast<size_t>(g_nv));
  if (mem == nullptr) {
    fprintf(stderr, "upthread: out of memory\n");
    exit(2);
  }
  g_vcores = static_cast<VcoreSched *>(mem);
  for (int i = 0; i < g_nv; ++i) {
    new (&g_vcores[i]) VcoreSched;
    g_vcores[i].rng = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
  }
  g_num_queues.store(g_max);
  sched_ops = &g_ops;
  vcore_set_sched_probe(has_queued_work);
  g_thread0.is_thread0 = true;
  uthread_lib_init(&g_thread0.uth);
  g_thread0.last_vcore = vcore_id();
  if (stats_mode() == StatsMode::kText || stats_mode() == StatsMode::kJson) {
    g_stats_pid = getpid();
    atexit(print_stats);
  }
}

void enqueue_new(struct upthread *t) {
  int nq = g_num_queues.load(std::memory_order_relaxed);
  t->last_vcore =
      g_next_placement.fetch_add(1, std::memory_order_relaxed) % static_cast<uint32_t>(nq);
  t->placed_new = true;
  uthread_runnable(&t->uth);  // thread_runnable places it by last_vcore
}

void count_live(int delta) {
  if (g_live.fetch_add(delta, std::memory_order_acq_rel) + delta == 0) exit(0);
}

}  // namespace parlib::detail::upthread_impl

using namespace parlib::detail::upthread_impl;

extern "C" {

void upthread_set_sched_period(uint64_t usec) {
  g_period_us.store(usec);
  // Other vcores arm their tick as they next enter the scheduler; the
  // caller's vcore may not for a long time (a thread that only ever yields
  // to an empty queue never leaves it), so arm it here.
  if (usec != 0 && uthread_self() != nullptr) {
    uth_disable_notifs();  // stay on this vcore; its tick fields are its own
    arm_tick(vcore_id());
    uth_enable_notifs();
  }
}
void upthread_can_vcore_request(bool can) { g_can_request.store(can); }
void upthread_can_vcore_steal(bool can) { g_can_steal.store(can); }
void upthread_set_num_vcores(int num) {
  if (num < 1) num = 1;
  if (num > g_max) num = g_max;
  g_num_queues.store(num);
}

int upthread_get_vcore_stats(uint32_t vcoreid, struct upthread_vcore_stats *out) {
  if (out == nullptr || static_cast<int>(vcoreid) >= g_nv) return EINVAL;
  VcoreSched &vs = g_vcores[vcoreid];
  out->switches = vs.switches.load(std::memory_order_relaxed);
  out->steals = vs.steals.load(std::memory_order_relaxed);
  out->preemptions = vs.preemptions.load(std::memory_order_relaxed);
  out->idle_ns = vs.idle_ns.load(std::memory_order_relaxed);
  struct event_stats es {};
  out->events = event_get_stats(vcoreid, &es) == 0 ? es.handled : 0;
  struct parlib_syscall_stats ss {};
  out->syscalls = parlib_syscall_get_stats(vcoreid, &ss) == 0 ? ss.blocked + ss.offloaded : 0;
  return 0;
}

}  // extern "C"

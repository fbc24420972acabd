// The asynchronous system call service: one io_uring per vcore, the
// blocking protocol (descriptor, yield through thread_blockon_sysc,
// EV_SYSCALL delivery), the idle waiter that sleeps on the ring, and the
// helper-thread fallback. See docs/syscall.md.
#include <dlfcn.h>
#include <fcntl.h>
#include <parlib/alarm.h>
#include <parlib/event.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "common/cache_line.h"
#include "common/env.h"
#include "common/futex.h"
#include "common/raw_log.h"
#include "common/runtime_fds.h"
#include "common/sanitizer_fiber.h"
#include "common/spinlock.h"
#include "event/event_internal.h"
#include "syscall/syscall_internal.h"
#include "uthread/uthread_internal.h"
#include "vcore/vcore_internal.h"

namespace parlib::detail {

namespace {

constexpr unsigned kSqEntries = 256;
constexpr unsigned kCqEntries = 4096;
// CQE user_data that is not a descriptor (descriptors are 8-byte aligned).
constexpr uint64_t kIgnoreUserData = 0;  // cancellations
constexpr uint64_t kWakeUserData = 1;    // the idle waiter's eventfd read
// Added to a descriptor: the CQE of the timeout that bounds its operation
// (a socket's SO_RCVTIMEO/SO_SNDTIMEO), which is never its result.
constexpr uint64_t kDeadlineTag = 2;
// sc->cancel_on_first_ values.
constexpr uint32_t kCancelRest = 1;      // the first completion cancels sc's other SQEs
constexpr uint32_t kCancelDeadline = 2;  // the operation's completion cancels its deadline

enum RingStatus : int {
  kRingNone = 0,     // not created yet (only the vcore's own task creates it)
  kRingReady = 1,    // usable by the vcore's task
  kRingFailed = -1,  // creation failed: this vcore offloads instead
};

#ifdef PARLIB_ASAN
constexpr size_t kHelperStackSize = 1 << 20;
#else
constexpr size_t kHelperStackSize = 64 << 10;
#endif
constexpr int kMaxHelpers = 1024;

}  // namespace

struct alignas(kCacheLineSize) VcoreRing {
  io_uring ring;
  // Written by the vcore's own task; read by wake() on any thread.
  std::atomic<int> status{kRingNone};
  int efd = -1;                        // written by wake(), read on the ring by sleep()
  uint64_t efd_value = 0;              // the eventfd read's buffer
  bool efd_armed = false;              // an eventfd read is outstanding on the ring
  std::atomic<bool> in_kernel{false};  // the idle vcore waits in io_uring_enter
  uint32_t passes = 0;                 // passes through vcore context (owner task only)
  // Descriptors whose completions have all arrived and whose uthread is
  // blocked: delivered as EV_SYSCALL by the next reap. Owner task only.
  struct syscall *done_head = nullptr;
  struct syscall *done_tail = nullptr;
  // Descriptors whose uthread has blocked and which are not delivered yet
  // (linked through bprev_/bnext_): where an interrupt request is looked
  // for (interrupt_blocked). Owner task only.
  struct syscall *blocked_head = nullptr;
  std::atomic<uint64_t> submitted{0};
  std::atomic<uint64_t> blocked{0};
  std::atomic<uint64_t> offloaded{0};
};

namespace {

enum JobState : int {
  kJobQueued,   // in the pool's list
  kJobRunning,  // a helper (tid) runs it
  kJobDone,     // finished, or taken out of the list by an interruption
};

struct Job {
  struct syscall *sc;
  long (*fn)(void *);
  void *arg;
  Job *next;
  // Readiness to wait for, interruptibly, before fn (wait_fd < 0: none),
  // until deadline_ns (0: none; then the result is expired).
  int wait_fd;
  short wait_events;
  uint64_t deadline_ns;
  long expired;
  // Under the pool lock:
  JobState state;
  pid_t tid;         // the helper, while kJobRunning
  bool interrupted;  // the helper was sent kHelperSignal for it
};

struct AlarmSleep;
void interrupt_helper_wait(struct uthread *uth);

// A uthread's wait that is not on a ring (a helper job or an alarm), in the
// pool's list of waits under its lock from before the job is queued (the
// alarm started) until the uthread has resumed: where an interrupt request
// finds it (interrupt_helper_wait).
struct HelperWait {
  struct uthread *uth;
  Job *job;
  AlarmSleep *alarm;
  HelperWait *prev;
  HelperWait *next;
};

// The helper threads of the fallback. The lock is a spinlock taken with
// notifications disabled (uthread side) or by plain threads; its critical
// sections are a few loads and stores. Its holder may be a descheduled
// helper: a waiter gives its CPU away every 128 polls.
struct HelperPool {
  SpinLock<128> lock;
  Job *head = nullptr;
  Job *tail = nullptr;
  int queued = 0;                // jobs in the list
  int idle = 0;                  // helpers waiting for a job
  int threads = 0;               // helpers started
  std::atomic<uint32_t> seq{0};  // futex word: bumped for every new job
  HelperWait *waits = nullptr;   // every helper job and alarm sleep in progress
};

struct SyscallRuntime {
  std::atomic<int> backend{PARLIB_SYSC_NONE};
  int nr_vcores = 0;
  VcoreRing *rings = nullptr;
  std::once_flag chain_once;
  HelperPool pool;
  int (*real_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
                             void *) = nullptr;
  // The helpers' interruption signal (0: none; set once, before the first
  // helper starts) and the mask a helper waits with (only that unblocked).
  std::once_flag helper_signal_once;
  int helper_signal = 0;
  sigset_t helper_wait_mask;
};

SyscallRuntime g_sys;

// ---------------------------------------------------------------------------
// Rings.

// Tries the single-issuer flags first, newest kernels first; each step
// drops what an older kernel rejects with EINVAL.
bool create_ring(VcoreRing &r) {
  static const unsigned kFlagSets[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN |
          IORING_SETUP_TASKRUN_FLAG,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      0,
  };
  for (unsigned flags : kFlagSets) {
    io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags | IORING_SETUP_CQSIZE;
    p.cq_entries = kCqEntries;
    if (io_uring_queue_init_params(kSqEntries, &r.ring, &p) == 0) {
      // Out of the program's way (common/runtime_fds.h); the rings are
      // mapped already, and nothing but io_uring_enter uses the number.
      int fd = hide_runtime_fd(r.ring.ring_fd);
      r.ring.ring_fd = fd;
      r.ring.enter_ring_fd = fd;
      // Registered with this task (the only one that enters the ring),
      // io_uring_enter skips looking the ring's file up: a little off
      // every submission and wait. Kernels before 5.18 refuse: no matter.
      io_uring_register_ring_fd(&r.ring);
      // The ring's memory is shared with the kernel, so a fork child's copy
      // of the mapping would be the parent's ring itself: give the child
      // no mapping at all (it has no vcores and never uses the rings).
      io_uring_ring_dontfork(&r.ring);
      return true;
    }
  }
  return false;
}

// A uthread's interrupt word (uthread::sysc_intr_): kIntrRequested is set
// by parlib_syscall_interrupt and cleared by the uthread when it asks its
// 2LS; kIntrWaiting (with the ring's vcore above kIntrVcoreShift, or
// kIntrHelper) only by the uthread, for the duration of a wait.
constexpr uint32_t kIntrRequested = 1;
constexpr uint32_t kIntrWaiting = 2;
constexpr uint32_t kIntrHelper = 4;  // the wait is a helper job or an alarm
constexpr uint32_t kIntrVcoreShift = 8;

std::atomic_ref<uint32_t> intr_word(struct uthread *uth) {
  return std::atomic_ref<uint32_t>(uth->sysc_intr_);
}

// The calling uthread waits in a call of the service for the scope: an
// interrupt request now finds it (kIntrWaiting, and where: a ring's vcore
// or kIntrHelper). seq_cst on both sides: the requester sets
// kIntrRequested and then reads kIntrWaiting; the waiter sets kIntrWaiting
// and then looks for kIntrRequested (blockon_cb, the helper registry).
class IntrWait {
 public:
  explicit IntrWait(uint32_t where) : uth_(current_uthread) {
    intr_word(uth_).fetch_or(kIntrWaiting | where, std::memory_order_seq_cst);
  }
  ~IntrWait() { intr_word(uth_).fetch_and(kIntrRequested, std::memory_order_seq_cst); }
  IntrWait(const IntrWait &) = delete;
  IntrWait &operator=(const IntrWait &) = delete;

 private:
  struct uthread *uth_;
};

void link_blocked(VcoreRing &r, struct syscall *sc) {
  sc->bprev_ = nullptr;
  sc->bnext_ = r.blocked_head;
  if (r.blocked_head != nullptr) r.blocked_head->bprev_ = sc;
  r.blocked_head = sc;
}

void unlink_blocked(VcoreRing &r, struct syscall *sc) {
  if (sc->bprev_ != nullptr)
    sc->bprev_->bnext_ = sc->bnext_;
  else
    r.blocked_head = sc->bnext_;
  if (sc->bnext_ != nullptr) sc->bnext_->bprev_ = sc->bprev_;
}

// Cancels every SQE with that user_data still in flight on r (submitted
// by the next harvest or submit). Owner task only.
void cancel_user_data(VcoreRing &r, uint64_t user_data) {
  io_uring_sqe *sqe = io_uring_get_sqe(&r.ring);
  while (sqe == nullptr) {
    io_uring_submit(&r.ring);
    sqe = io_uring_get_sqe(&r.ring);
  }
  io_uring_prep_cancel64(sqe, user_data, IORING_ASYNC_CANCEL_ALL);
  sqe->user_data = kIgnoreUserData;
}

// Cancels what sc still has in flight on r, once. Owner task only.
void cancel_sc(VcoreRing &r, struct syscall *sc) {
  cancel_user_data(r, reinterpret_cast<uintptr_t>(sc));
}

void interrupt_sc(VcoreRing &r, struct syscall *sc) {
  if (sc->interrupted_ || sc->pending_ == 0) return;
  sc->interrupted_ = 1;
  cancel_sc(r, sc);
}

// The blocked descriptors of r whose uthread has an interrupt request.
void interrupt_blocked(VcoreRing &r) {
  for (struct syscall *sc = r.blocked_head; sc != nullptr; sc = sc->bnext_)
    if (intr_word(sc->uth).load(std::memory_order_seq_cst) & kIntrRequested) interrupt_sc(r, sc);
}

void enqueue_done(VcoreRing &r, struct syscall *sc) {
  sc->queued_ = 1;
  sc->next_ = nullptr;
  if (r.done_tail != nullptr)
    r.done_tail->next_ = sc;
  else
    r.done_head = sc;
  r.done_tail = sc;
}

// One completion. The descriptor's uthread is queued for delivery once
// all of its completions are in and it has blocked; before it blocks, it
// looks at pending_ itself.
void ingest(VcoreRing &r, uint64_t user_data, int res) {
  if (user_data == kIgnoreUserData) return;
  if (user_data == kWakeUserData) {
    r.efd_armed = false;
    return;
  }
  auto *sc = reinterpret_cast<struct syscall *>(user_data & ~kDeadlineTag);
  PARLIB_CHECK(sc->pending_ > 0, "syscall: completion for descriptor %p with nothing pending",
               static_cast<void *>(sc));
  sc->pending_--;
  if (user_data & kDeadlineTag) {
    // The deadline passed before the operation completed: cancel it; it
    // completes with what it has done (a partial count) or -ECANCELED.
    if (res == -ETIME && sc->ncomp_ == 0) cancel_sc(r, sc);
  } else if (sc->ncomp_++ == 0) {
    sc->retval = res;
    sc->flags |= SYSC_DONE;
    // A wait on several operations (poll sets, a wait with a timeout) ends
    // at the first: cancel the others here, on the ring that holds them.
    if (sc->cancel_on_first_ == kCancelRest && sc->pending_ > 0) cancel_sc(r, sc);
    if (sc->cancel_on_first_ == kCancelDeadline && sc->pending_ > 0)
      cancel_user_data(r, user_data | kDeadlineTag);
  }
  if (sc->blocked_ && !sc->queued_ && sc->pending_ == 0) enqueue_done(r, sc);
}

bool ring_needs_enter(VcoreRing &r) {
  unsigned kflags = IO_URING_READ_ONCE(*r.ring.sq.kflags);
  return (kflags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
}

bool ring_has_work(VcoreRing &r) {
  return r.done_head != nullptr || io_uring_cq_ready(&r.ring) != 0 || ring_needs_enter(r);
}

// Moves every available completion into the descriptors. Owner task only.
void harvest(VcoreRing &r, bool may_enter = true) {
  // With DEFER_TASKRUN (or COOP_TASKRUN) completions wait as task work
  // until the task enters the kernel; TASKRUN_FLAG says when there is some.
  if (may_enter && ring_needs_enter(r)) io_uring_get_events(&r.ring);
  for (;;) {
    unsigned head;
    unsigned n = 0;
    io_uring_cqe *cqe;
    io_uring_for_each_cqe(&r.ring, head, cqe) {
      ingest(r, cqe->user_data, cqe->res);
      ++n;
    }
    if (n == 0) break;
    io_uring_cq_advance(&r.ring, n);
  }
  if (io_uring_sq_ready(&r.ring) != 0) io_uring_submit(&r.ring);  // cancellations
}

void dispatch(VcoreRing &r) {
  while (struct syscall *sc = r.done_head) {
    r.done_head = sc->next_;
    if (r.done_head == nullptr) r.done_tail = nullptr;
    unlink_blocked(r, sc);
    deliver_sysc(sc);  // sc may be gone after this
  }
}

// The reaper: g_reap_syscalls_hook, and the tail of the chained
// handle-events hook. On a vcore (vcore context, or uthread context with
// notifications disabled).
void reap_this_vcore() {
  if (g_sys.backend.load(std::memory_order_relaxed) != PARLIB_SYSC_IO_URING) return;
  if (!in_vcore_context() && current_uthread == nullptr) return;
  VcoreRing &r = g_sys.rings[tls_vcoreid];
  // relaxed: only this task ever sets it to ready.
  if (r.status.load(std::memory_order_relaxed) != kRingReady) return;
  if (!ring_has_work(r)) return;
  harvest(r);
  dispatch(r);
}

// On every pass through vcore context of a busy vcore: completions already
// in the CQ are taken every time; entering the kernel for deferred ones
// (a system call) only every fourth pass, since every submission, every
// block and the idle loop enter anyway.
void reap_in_vcore_context() {
  if (g_sys.backend.load(std::memory_order_relaxed) != PARLIB_SYSC_IO_URING) return;
  VcoreRing &r = g_sys.rings[tls_vcoreid];
  if (r.status.load(std::memory_order_relaxed) != kRingReady) return;
  bool may_enter = (++r.passes & 3) == 0;
  if (r.done_head == nullptr && io_uring_cq_ready(&r.ring) == 0 &&
      !(may_enter && ring_needs_enter(r)))
    return;
  harvest(r, may_enter);
  dispatch(r);
}

// The event layer calls g_reap_syscalls_hook only from handle_events(),
// which its vcore-context hook runs only when events are queued. A vcore
// that is busy must still reap on every pass through vcore context, so the
// first ring adds the reaper to the uthread layer's vcore-context hooks,
// after the event layer's (added by event_lib_init, which ran before any
// ring: rings are made in uthread context only).
void add_reaper_hook() { add_vcore_context_hook(reap_in_vcore_context); }

// ---------------------------------------------------------------------------
// The idle waiter: an offline vcore sleeps in io_uring_enter on its ring,
// where both its completions and wake()'s eventfd write find it.

void wake_vcore_for_completions(uint32_t id) {
  // vcore_entry runs the vcore-context hooks first thing, the reaper among
  // them (a ring exists, so it was added), which delivers what is on the
  // done list: no detour through notif_pending and handle_events.
  vcore_bring_online(id);
}

// The vcore layer's idle poll runs this on the vcore's own task: completions
// found there bring the vcore back, and vcore_entry's chained events hook
// delivers them.
bool ring_idle_poll(uint32_t id) {
  VcoreRing &r = g_sys.rings[id];
  // relaxed: only this task ever sets its ring ready.
  if (r.status.load(std::memory_order_relaxed) != kRingReady || !ring_has_work(r)) return false;
  harvest(r);
  return r.done_head != nullptr;
}

// The vcore layer has polled (ring_idle_poll included) before calling this.
void ring_sleep(uint32_t id, std::atomic<uint32_t> *state) {
  VcoreRing &r = g_sys.rings[id];
  if (r.status.load(std::memory_order_relaxed) != kRingReady) {
    // No ring, so nothing in flight: the futex, as the vcore layer does.
    futex_wait(state, kOfflineSleeping);
    return;
  }
  // wake() writes the eventfd only once we announced the kernel wait below.
  if (!r.efd_armed) {
    io_uring_sqe *sqe = io_uring_get_sqe(&r.ring);
    if (sqe == nullptr) {
      io_uring_submit(&r.ring);
      sqe = io_uring_get_sqe(&r.ring);
    }
    io_uring_prep_read(sqe, r.efd, &r.efd_value, sizeof r.efd_value, 0);
    sqe->user_data = kWakeUserData;
    r.efd_armed = true;
    io_uring_submit(&r.ring);
  }
  // Announce the kernel wait, then look at the state (both seq_cst): a
  // granter stores the state, then looks at in_kernel; one of the two sees
  // the other, so the wait below is always woken.
  r.in_kernel.store(true, std::memory_order_seq_cst);
  if (state->load(std::memory_order_seq_cst) == kOfflineSleeping) {
    harvest(r);
    if (r.done_head == nullptr) {
      io_uring_cqe *cqe = nullptr;
      io_uring_wait_cqe(&r.ring, &cqe);  // EINTR: the caller re-checks
      harvest(r);
    }
  }
  r.in_kernel.store(false, std::memory_order_relaxed);
  if (r.done_head != nullptr) wake_vcore_for_completions(id);
}

void ring_wake(uint32_t id, std::atomic<uint32_t> *state) {
  VcoreRing &r = g_sys.rings[id];
  // Orders the caller's grant (the state CAS) before the load below.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (r.in_kernel.load(std::memory_order_seq_cst)) {
    uint64_t one = 1;
    ssize_t ignored = syscall(SYS_write, r.efd, &one, sizeof one);
    (void)ignored;
  }
  // A vcore without a ring sleeps on the futex instead.
  if (r.status.load(std::memory_order_acquire) != kRingReady) futex_wake(state, 1);
}

const IdleWaiter g_ring_waiter = {ring_sleep, ring_wake};

// ---------------------------------------------------------------------------
// Blocking.

// The yield callback of a blocking call, in vcore context on the caller's
// vcore. Its completion cannot have been delivered yet: only this vcore
// delivers it, and the uthread kept notifications disabled from the
// submission to the yield.
void blockon_cb(struct uthread *uth, void *arg) {
  auto *sc = static_cast<struct syscall *>(arg);
  uth->sysc = sc;
  uint32_t s = kUthStopped;
  uth_state(uth).compare_exchange_strong(s, kUthBlocked, std::memory_order_acq_rel);
  if (sched_ops->thread_blockon_sysc != nullptr) sched_ops->thread_blockon_sysc(uth, sc);
  if (g_sys.backend.load(std::memory_order_relaxed) != PARLIB_SYSC_IO_URING) return;
  VcoreRing &r = g_sys.rings[tls_vcoreid];
  if (r.status.load(std::memory_order_relaxed) != kRingReady) return;  // alarm or helper wait
  sc->blocked_ = 1;
  link_blocked(r, sc);
  // An interrupt request that came before this link (the vcore's
  // EV_SYSCALL_INTERRUPT handler did not see sc) is seen here: the
  // requester set the bit before it sent the event.
  if (intr_word(uth).load(std::memory_order_seq_cst) & kIntrRequested) interrupt_sc(r, sc);
  if (sc->pending_ == 0 && !sc->queued_ && sc->ncomp_ > 0) enqueue_done(r, sc);
  harvest(r);
  dispatch(r);
}

void block_on(struct syscall *sc) { uthread_yield(true, blockon_cb, sc); }

// ---------------------------------------------------------------------------
// Helper threads.

void pool_lock(HelperPool &p) { p.lock.lock(); }
void pool_unlock(HelperPool &p) { p.lock.unlock(); }

// Waits for j's descriptor to be ready with only the interruption signal
// unblocked (atomically, in ppoll: a signal sent since the job started is
// pending and ends the wait at once). -EINTR: interrupted; 0: go on.
long wait_ready(Job *j) {
  long fl = syscall(SYS_fcntl, j->wait_fd, F_GETFL);
  if (fl < 0 || (fl & O_NONBLOCK) != 0) return 0;  // the call says EBADF or EAGAIN itself
  struct pollfd p = {j->wait_fd, static_cast<short>(j->wait_events | POLLERR | POLLHUP), 0};
  for (;;) {
    struct timespec left;
    struct timespec *tmo = nullptr;
    if (j->deadline_ns != 0) {
      uint64_t now = monotonic_now_ns();
      left = ns_to_timespec(j->deadline_ns > now ? j->deadline_ns - now : 0);
      tmo = &left;
    }
    long n = syscall(SYS_ppoll, &p, 1, tmo, &g_sys.helper_wait_mask, _NSIG / 8);
    if (n == 0) return j->expired;  // the socket's timeout passed first
    if (n > 0) return 0;
    if (errno != EINTR) return 0;  // the call itself reports the error
    pool_lock(g_sys.pool);
    bool interrupted = j->interrupted;
    pool_unlock(g_sys.pool);
    if (interrupted) return -EINTR;
  }
}

// Completes sc from a thread that is not its vcore (a helper, or an
// interruption taking a queued job back): the result, then an EV_SYSCALL
// to the vcore that blocked the uthread.
void complete_off_vcore(struct syscall *sc, long result) {
  sc->retval = result;
  sc->flags |= SYSC_DONE;
  struct event_msg msg;
  memset(&msg, 0, sizeof msg);
  msg.ev_arg3 = sc;
  uint32_t vcoreid = sc->vcoreid;
  // After the send the uthread may run and its frame (sc, a job) be gone.
  while (send_event_to_any(&msg, EV_SYSCALL, vcoreid) != 0) sched_yield();  // ENOMEM: retry
}

void run_job(Job *j) {
  struct syscall *sc = j->sc;
  long r = 0;
  if (j->wait_fd >= 0 && g_sys.helper_signal != 0) r = wait_ready(j);
  if (r == 0) r = j->fn(j->arg);
  HelperPool &p = g_sys.pool;
  pool_lock(p);
  j->state = kJobDone;  // no interruption signal is sent for j from here on
  bool interrupted = j->interrupted;
  pool_unlock(p);
  if (interrupted) {
    // The signal may still be pending (blocked outside the waits): take
    // it, so that it cannot interrupt this helper's next job.
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, g_sys.helper_signal);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&s, nullptr, &zero) > 0) {
    }
  }
  complete_off_vcore(sc, r);
}

void *helper_main(void *) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // process signals go elsewhere
  HelperPool &p = g_sys.pool;
  auto me = static_cast<pid_t>(syscall(SYS_gettid));
  for (;;) {
    uint32_t seen = p.seq.load(std::memory_order_acquire);
    pool_lock(p);
    Job *j = p.head;
    if (j != nullptr) {
      p.head = j->next;
      if (p.head == nullptr) p.tail = nullptr;
      p.queued--;
      j->state = kJobRunning;
      j->tid = me;
      pool_unlock(p);
      run_job(j);
      continue;
    }
    p.idle++;
    pool_unlock(p);
    futex_wait(&p.seq, seen);
    pool_lock(p);
    p.idle--;
    pool_unlock(p);
  }
  return nullptr;
}

void on_helper_signal(int) {}

// The signal that interrupts a helper's wait for an interrupted uthread:
// SIGRTMAX, unless the program has an action for it already (then helper
// waits are not interruptible). Installed without SA_RESTART.
void install_helper_signal() {
  struct sigaction cur;
  int sig = SIGRTMAX;
  if (sigaction(sig, nullptr, &cur) != 0 || cur.sa_handler != SIG_DFL ||
      (cur.sa_flags & SA_SIGINFO)) {
    raw_log("syscall: SIGRTMAX is in use: helper threads' waits cannot be interrupted");
    return;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_helper_signal;
  sigfillset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
  sigfillset(&g_sys.helper_wait_mask);
  sigdelset(&g_sys.helper_wait_mask, sig);
  g_sys.helper_signal = sig;
}

bool start_helper() {
  std::call_once(g_sys.helper_signal_once, install_helper_signal);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kHelperStackSize);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int err = g_sys.real_pthread_create(&t, &attr, helper_main, nullptr);
  pthread_attr_destroy(&attr);
  return err == 0;
}

void link_wait(HelperPool &p, HelperWait *w) {
  w->prev = nullptr;
  w->next = p.waits;
  if (p.waits != nullptr) p.waits->prev = w;
  p.waits = w;
}

void unlink_wait(HelperWait *w) {
  HelperPool &p = g_sys.pool;
  NotifGuard guard;
  pool_lock(p);
  if (w->prev != nullptr)
    w->prev->next = w->next;
  else
    p.waits = w->next;
  if (w->next != nullptr) w->next->prev = w->prev;
  pool_unlock(p);
}

// Queues j and registers its wait w.
void pool_submit(Job *j, HelperWait *w) {
  HelperPool &p = g_sys.pool;
  pool_lock(p);
  link_wait(p, w);
  j->state = kJobQueued;
  j->interrupted = false;
  j->next = nullptr;
  if (p.tail != nullptr)
    p.tail->next = j;
  else
    p.head = j;
  p.tail = j;
  p.queued++;
  bool spawn = p.idle < p.queued && p.threads < kMaxHelpers;
  if (spawn) p.threads++;
  int threads = p.threads;
  pool_unlock(p);
  p.seq.fetch_add(1, std::memory_order_release);
  futex_wake(&p.seq, 1);
  if (spawn && !start_helper()) {
    pool_lock(p);
    p.threads--;
    threads = p.threads;
    pool_unlock(p);
    if (threads == 0) raw_fatal("syscall: cannot start a helper thread");
  }
  (void)threads;
}

void alarm_fired(struct alarm_waiter *w);

struct AlarmSleep {
  struct alarm_waiter w;  // first member: the callback gets &w
  struct syscall *sc;
};

void alarm_fired(struct alarm_waiter *w) {
  struct syscall *sc = reinterpret_cast<AlarmSleep *>(w)->sc;
  sc->retval = 0;
  sc->flags |= SYSC_DONE;
  deliver_sysc(sc);  // in vcore context, on the vcore that started it
}

// The fallback's sleep: an alarm whose callback delivers the descriptor.
// Returns 0, or -EINTR when interrupted (the alarm stopped).
long alarm_sleep_until(clockid_t clk, const struct timespec &abs) {
  struct syscall sc;
  sysc_prepare(&sc, SYS_clock_nanosleep);
  AlarmSleep as;
  init_waiter(&as.w, alarm_fired);
  as.sc = &sc;
  uint64_t deadline = timespec_to_ns(abs);
  if (clk == CLOCK_REALTIME) {
    set_waiter_abs_unix(&as.w, (deadline + 999) / 1000);
  } else {
    if (clk == CLOCK_BOOTTIME) deadline = deadline_to_monotonic_ns(CLOCK_BOOTTIME, deadline);
    set_waiter_abs(&as.w, (deadline + 999) / 1000);
  }
  HelperWait hw = {current_uthread, nullptr, &as, nullptr, nullptr};
  g_sys.rings[sc.vcoreid].blocked.fetch_add(1, std::memory_order_relaxed);
  IntrWait intr(kIntrHelper);
  pool_lock(g_sys.pool);
  link_wait(g_sys.pool, &hw);
  pool_unlock(g_sys.pool);
  start_alarm(&as.w);  // fires on this vcore, after the yield below
  if (intr_word(current_uthread).load(std::memory_order_seq_cst) & kIntrRequested)
    interrupt_helper_wait(current_uthread);
  block_on(&sc);
  unlink_wait(&hw);
  return sc.retval;
}

// Ends uth's helper job or alarm sleep: a queued job is taken out of the
// list and completed with -EINTR, a running one's helper is signalled (its
// wait ends with EINTR, a call that does not wait finishes), a pending
// alarm is stopped and its sleep completed with -EINTR. Idempotent. Any
// context: by the requester, or by uth itself before it blocks.
void interrupt_helper_wait(struct uthread *uth) {
  HelperPool &p = g_sys.pool;
  struct syscall *done = nullptr;
  NotifGuard guard;
  pool_lock(p);
  for (HelperWait *w = p.waits; w != nullptr; w = w->next) {
    if (w->uth != uth) continue;
    if (Job *j = w->job) {
      if (j->state == kJobQueued) {
        Job **link = &p.head;
        Job *prev = nullptr;
        while (*link != j) {
          prev = *link;
          link = &prev->next;
        }
        *link = j->next;
        if (p.tail == j) p.tail = prev;
        p.queued--;
        j->state = kJobDone;
        done = j->sc;
      } else if (j->state == kJobRunning && !j->interrupted && g_sys.helper_signal != 0) {
        j->interrupted = true;
        syscall(SYS_tgkill, getpid(), j->tid, g_sys.helper_signal);
      }
    } else if (w->alarm != nullptr && stop_alarm(&w->alarm->w)) {
      done = w->alarm->sc;  // the callback will never run: we complete it
    }
    break;
  }
  pool_unlock(p);
  // Outside the lock (it may allocate); nobody else completes it now, and
  // its uthread stays blocked, with the wait registered, until this does.
  if (done != nullptr) complete_off_vcore(done, -EINTR);
}

}  // namespace

// ---------------------------------------------------------------------------
// The internal interface.

NotifGuard::NotifGuard() { uth_disable_notifs(); }
NotifGuard::~NotifGuard() { uth_enable_notifs(); }

int syscall_backend() { return g_sys.backend.load(std::memory_order_acquire); }

bool can_block_async() {
  if (g_sys.backend.load(std::memory_order_relaxed) == PARLIB_SYSC_NONE) return false;
  if (tls_in_vcore_context) return false;
  struct uthread *uth = current_uthread;
  return uth != nullptr && uth->notif_disabled_depth_ == 0;
}

void sysc_prepare(struct syscall *sc, long num) {
  memset(sc, 0, sizeof *sc);
  sc->uth = current_uthread;
  sc->num = num;
  sc->vcoreid = tls_vcoreid;
}

VcoreRing *this_ring() {
  if (g_sys.backend.load(std::memory_order_relaxed) != PARLIB_SYSC_IO_URING) return nullptr;
  VcoreRing &r = g_sys.rings[tls_vcoreid];
  int s = r.status.load(std::memory_order_relaxed);
  if (s == kRingReady) return &r;
  if (s == kRingFailed) return nullptr;
  if (!create_ring(r)) {
    raw_log("vcore %u: cannot create its io_uring; its blocking calls go to helper threads",
            tls_vcoreid);
    r.status.store(kRingFailed, std::memory_order_release);
    return nullptr;
  }
  std::call_once(g_sys.chain_once, add_reaper_hook);
  // release: wake() on another thread then writes the eventfd only.
  r.status.store(kRingReady, std::memory_order_release);
  return &r;
}

io_uring_sqe *ring_sqe(VcoreRing *r, struct syscall *sc) {
  io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
  while (sqe == nullptr) {
    io_uring_submit(&r->ring);
    sqe = io_uring_get_sqe(&r->ring);
  }
  sqe->user_data = reinterpret_cast<uintptr_t>(sc);
  sc->pending_++;
  r->submitted.fetch_add(1, std::memory_order_relaxed);
  return sqe;
}

namespace {

void submit_all(VcoreRing *r) {
  // One io_uring_enter submits, tries the operations inline, and runs the
  // ring's deferred completions (GETEVENTS) so the harvest below needs no
  // second system call.
  int ret = io_uring_submit_and_get_events(&r->ring);
  while (ret == -EBUSY || ret == -EAGAIN || ret == -EINTR) {
    // The completion queue's overflow backlog is full: drain it, retry.
    harvest(*r);
    dispatch(*r);
    ret = io_uring_submit_and_get_events(&r->ring);
  }
  PARLIB_CHECK(ret >= 0, "syscall: io_uring_submit failed: %s", strerror(-ret));
  // Operations that could complete at once did so inside the submit.
  harvest(*r);
  dispatch(*r);
}

}  // namespace

namespace {

// The rest of ring_wait for an operation bounded by a socket's timeout: a
// timeout SQE with the descriptor's tagged user_data (its completion is
// never the result), which cancels the operation when it fires; the
// operation's own completion cancels the timeout (kCancelDeadline). A send
// or receive that is cancelled after moving some data completes with that
// count (io_uring keeps partial counts of cancelled socket operations).
long ring_wait_deadline(VcoreRing *r, struct syscall *sc, uint64_t deadline_ns, long expired) {
  __kernel_timespec ts = ns_to_timespec<__kernel_timespec>(deadline_ns);
  io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
  while (sqe == nullptr) {
    io_uring_submit(&r->ring);
    sqe = io_uring_get_sqe(&r->ring);
  }
  io_uring_prep_timeout(sqe, &ts, 0, IORING_TIMEOUT_ABS);
  sqe->user_data = reinterpret_cast<uintptr_t>(sc) | kDeadlineTag;
  sc->pending_++;
  sc->cancel_on_first_ = kCancelDeadline;
  submit_all(r);  // the timespec is read here
  if (sc->pending_ > 0) {
    r->blocked.fetch_add(1, std::memory_order_relaxed);
    block_on(sc);
  }
  if (sc->retval == -ECANCELED) return sc->interrupted_ ? -EINTR : expired;
  return sc->retval;
}

}  // namespace

long ring_wait(VcoreRing *r, struct syscall *sc, int nonblock_fd, SockTimeout *st) {
  IntrWait intr(static_cast<uint32_t>(r - g_sys.rings) << kIntrVcoreShift);
  submit_all(r);
  if (sc->pending_ == 0) return sc->retval;
  // It has to wait. io_uring waits even on an O_NONBLOCK descriptor, where
  // the real call returns EAGAIN: only now (the fast path never pays for
  // it) look at the descriptor's flags, and if it is non-blocking, cancel.
  // An operation that completes before the cancellation reports its own
  // result, as the real call could have.
  if (nonblock_fd >= 0) {
    long fl = syscall(SYS_fcntl, nonblock_fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK) != 0) {
      io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
      while (sqe == nullptr) {
        io_uring_submit(&r->ring);
        sqe = io_uring_get_sqe(&r->ring);
      }
      io_uring_prep_cancel64(sqe, reinterpret_cast<uintptr_t>(sc), IORING_ASYNC_CANCEL_ALL);
      sqe->user_data = kIgnoreUserData;
      submit_all(r);
      if (sc->pending_ > 0) block_on(sc);
      if (sc->retval == -ECANCELED) sc->retval = sc->interrupted_ ? -EINTR : -EAGAIN;
      return sc->retval;
    }
    if (st != nullptr) {
      uint64_t deadline = sock_deadline(st, nonblock_fd);
      if (deadline != 0) return ring_wait_deadline(r, sc, deadline, st->expired);
    }
  }
  r->blocked.fetch_add(1, std::memory_order_relaxed);
  block_on(sc);
  // Cancelled by an interrupt request; an operation that completed first
  // reports its own result.
  if (sc->interrupted_ && sc->retval == -ECANCELED) return -EINTR;
  return sc->retval;
}

long offload(long num, long (*fn)(void *), void *arg, int wait_fd, short wait_events,
             uint64_t deadline_ns, long expired) {
  struct syscall sc;
  NotifGuard guard;
  sysc_prepare(&sc, num);
  Job job{&sc, fn, arg, nullptr, wait_fd, wait_events, deadline_ns, expired, kJobQueued, 0, false};
  HelperWait hw = {current_uthread, &job, nullptr, nullptr, nullptr};
  g_sys.rings[sc.vcoreid].offloaded.fetch_add(1, std::memory_order_relaxed);
  IntrWait intr(kIntrHelper);
  pool_submit(&job, &hw);
  // A request that came before the job was registered (see IntrWait).
  if (intr_word(current_uthread).load(std::memory_order_seq_cst) & kIntrRequested)
    interrupt_helper_wait(current_uthread);
  block_on(&sc);
  unlink_wait(&hw);
  return sc.retval;
}

const sigset_t *helper_wait_mask() {
  return g_sys.helper_signal != 0 ? &g_sys.helper_wait_mask : nullptr;
}

long sleep_until(clockid_t clk, const struct timespec &abs) {
  NotifGuard guard;
  VcoreRing *r = this_ring();
  if (r == nullptr) return alarm_sleep_until(clk, abs);
  struct syscall sc;
  sysc_prepare(&sc, SYS_clock_nanosleep);
  __kernel_timespec ts;
  ts.tv_sec = abs.tv_sec;
  ts.tv_nsec = abs.tv_nsec;
  unsigned flags = IORING_TIMEOUT_ABS;
  if (clk == CLOCK_REALTIME) flags |= IORING_TIMEOUT_REALTIME;
  if (clk == CLOCK_BOOTTIME) flags |= IORING_TIMEOUT_BOOTTIME;
  io_uring_sqe *sqe = ring_sqe(r, &sc);
  io_uring_prep_timeout(sqe, &ts, 0, flags);
  // -ETIME: expired, which is all a sleep waits for.
  return ring_wait(r, &sc) == -EINTR ? -EINTR : 0;
}

int wait_any_ready(const struct pollfd *fds, nfds_t n, uint64_t deadline_ns) {
  NotifGuard guard;
  VcoreRing *r = this_ring();
  if (r == nullptr) return -1;
  struct syscall sc;
  sysc_prepare(&sc, SYS_ppoll);
  sc.cancel_on_first_ = kCancelRest;
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].fd < 0) continue;
    io_uring_sqe *sqe = ring_sqe(r, &sc);
    io_uring_prep_poll_add(sqe, fds[i].fd,
                           static_cast<unsigned>(fds[i].events) | POLLERR | POLLHUP);
  }
  __kernel_timespec ts;
  if (deadline_ns == 0 && sc.pending_ == 0) deadline_ns = monotonic_now_ns() + 3600 * kNsPerSec;
  if (deadline_ns != 0) {
    ts = ns_to_timespec<__kernel_timespec>(deadline_ns);
    io_uring_sqe *sqe = ring_sqe(r, &sc);
    io_uring_prep_timeout(sqe, &ts, 0, IORING_TIMEOUT_ABS);
  }
  return ring_wait(r, &sc) == -EINTR ? -EINTR : 0;
}

namespace {

// EV_SYSCALL_INTERRUPT, on the vcore whose ring holds an interrupted wait:
// cancel what every interrupted blocked uthread of this ring waits for.
// The message carries nothing (a descriptor could be gone by now).
void on_interrupt_event(struct event_msg *, unsigned int) {
  if (g_sys.backend.load(std::memory_order_relaxed) != PARLIB_SYSC_IO_URING) return;
  VcoreRing &r = g_sys.rings[tls_vcoreid];
  if (r.status.load(std::memory_order_relaxed) != kRingReady) return;
  interrupt_blocked(r);
  harvest(r);  // submits the cancellations
  dispatch(r);
}

}  // namespace

bool interrupt_requested() {
  struct uthread *uth = current_uthread;
  return uth != nullptr && (intr_word(uth).load(std::memory_order_relaxed) & kIntrRequested);
}

int take_interrupt() {
  struct uthread *uth = current_uthread;
  intr_word(uth).fetch_and(~kIntrRequested, std::memory_order_seq_cst);
  if (sched_ops->thread_sysc_interrupted == nullptr) return PARLIB_SYSC_INTR_EINTR;
  return sched_ops->thread_sysc_interrupted(uth);
}

void deliver_sysc(struct syscall *sc) {
  struct event_msg msg;
  memset(&msg, 0, sizeof msg);
  msg.ev_type = EV_SYSCALL;
  msg.ev_arg3 = sc;
  handle_event_t h = __atomic_load_n(&ev_handlers[EV_SYSCALL], __ATOMIC_ACQUIRE);
  if (h == nullptr) h = parlib_syscall_default_handler;
  h(&msg, EV_SYSCALL);
}

void make_wake_eventfd(VcoreRing &r) {
  int expected = -1;
  int fd = eventfd(0, EFD_CLOEXEC);  // blocking: the ring read waits on it
  if (fd < 0) raw_fatal("syscall: eventfd: %s", strerror(errno));
  fd = hide_runtime_fd(fd);
  if (!std::atomic_ref<int>(r.efd).compare_exchange_strong(expected, fd, std::memory_order_acq_rel))
    close_runtime_fd(fd);
}

void syscall_layer_init() {
  int n = max_vcores() + max_spare_vcores();  // a spare vcore has its own ring
  void *mem = aligned_alloc(alignof(VcoreRing), sizeof(VcoreRing) * static_cast<size_t>(n));
  if (mem == nullptr) raw_fatal("syscall: out of memory");
  auto *rings = static_cast<VcoreRing *>(mem);
  for (int i = 0; i < n; ++i) new (&rings[i]) VcoreRing;
  g_sys.rings = rings;
  g_sys.nr_vcores = n;
  g_sys.real_pthread_create =
      reinterpret_cast<decltype(g_sys.real_pthread_create)>(dlsym(RTLD_NEXT, "pthread_create"));
  // Under TSan, RTLD_NEXT would skip its interceptor (see timed_wait.cpp).
  if (g_sys.real_pthread_create == nullptr || san::kTsan)
    g_sys.real_pthread_create = pthread_create;
  __atomic_store_n(&ev_handlers[EV_SYSCALL], &parlib_syscall_default_handler, __ATOMIC_RELEASE);
  __atomic_store_n(&ev_handlers[EV_SYSCALL_INTERRUPT], &on_interrupt_event, __ATOMIC_RELEASE);
  g_reap_syscalls_hook = reap_this_vcore;

  int backend = PARLIB_SYSC_IO_URING;
  if (env_flag("PARLIB_NO_IO_URING")) {
    raw_log("PARLIB_NO_IO_URING is set: blocking calls of uthreads go to helper threads");
    backend = PARLIB_SYSC_THREADS;
  } else {
    io_uring probe;
    int err = io_uring_queue_init(2, &probe, 0);
    if (err != 0) {
      raw_log("io_uring unavailable (%s): blocking calls of uthreads go to helper threads",
              strerror(-err));
      backend = PARLIB_SYSC_THREADS;
    } else {
      io_uring_queue_exit(&probe);
    }
  }
  if (backend == PARLIB_SYSC_IO_URING) {
    // Spare vcores' tasks come later: each makes its eventfd as it starts,
    // before it can sleep on its ring.
    add_vcore_task_hook([](uint32_t id) { make_wake_eventfd(g_sys.rings[id]); });
    for (int i = 0; i < n; ++i)
      if (vcore_of(static_cast<uint32_t>(i)).tid.load(std::memory_order_seq_cst) != 0)
        make_wake_eventfd(rings[i]);
    add_vcore_idle_poll(ring_idle_poll);
    set_vcore_idle_waiter(&g_ring_waiter);
  }
  g_sys.backend.store(backend, std::memory_order_release);
}

// The syscall layer starts with the event layer, which runs this among its
// start hooks: EV_SYSCALL's handler is set before the first event can
// arrive. Registered at load time, before any code can call event_lib_init.
[[gnu::constructor]] static void start_with_event_layer() {
  add_event_lib_init_hook(syscall_layer_init);
}

}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

int parlib_syscall_backend(void) { return syscall_backend(); }

void parlib_syscall_default_handler(struct event_msg *msg, unsigned int) {
  PARLIB_CHECK(msg != nullptr && msg->ev_arg3 != nullptr, "EV_SYSCALL without a descriptor");
  auto *sc = static_cast<struct syscall *>(msg->ev_arg3);
  struct uthread *uth = sc->uth;
  PARLIB_CHECK(uth != nullptr, "EV_SYSCALL: descriptor %p has no uthread", static_cast<void *>(sc));
  uth->sysc = nullptr;
  uthread_runnable(uth);  // sc may be gone from here on
}

bool parlib_syscall_interrupt(struct uthread *uth) {
  if (uth == nullptr) return false;
  uint32_t w = intr_word(uth).fetch_or(kIntrRequested, std::memory_order_seq_cst);
  if (!(w & kIntrWaiting)) return false;  // its next call asks its 2LS first
  if (w & kIntrHelper) {
    interrupt_helper_wait(uth);
    return true;
  }
  // Only the ring's own task may submit the cancellation: ask it. Sent to
  // our own vcore, the event is handled when this caller's notifications
  // are back on (or in vcore context), before the waiter can run again.
  struct event_msg msg;
  memset(&msg, 0, sizeof msg);
  uint32_t vcoreid = w >> kIntrVcoreShift;
  while (send_event_to_any(&msg, EV_SYSCALL_INTERRUPT, vcoreid) != 0) sched_yield();  // ENOMEM
  return true;
}

int parlib_syscall_get_stats(uint32_t vcoreid, struct parlib_syscall_stats *out) {
  if (out == nullptr || g_sys.rings == nullptr ||
      vcoreid >= static_cast<uint32_t>(g_sys.nr_vcores)) {
    errno = EINVAL;
    return -1;
  }
  const VcoreRing &r = g_sys.rings[vcoreid];
  out->submitted = r.submitted.load(std::memory_order_relaxed);
  out->blocked = r.blocked.load(std::memory_order_relaxed);
  out->offloaded = r.offloaded.load(std::memory_order_relaxed);
  return 0;
}

}  // extern "C"

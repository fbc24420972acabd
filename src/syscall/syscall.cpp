// The asynchronous system call service: one io_uring per vcore, the
// blocking protocol (descriptor, yield through thread_blockon_sysc,
// EV_SYSCALL delivery), the idle waiter that sleeps on the ring, and the
// helper-thread fallback. See docs/syscall.md.
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/futex.h>
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

#include "common/raw_log.h"
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

struct alignas(64) VcoreRing {
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
  std::atomic<uint64_t> submitted{0};
  std::atomic<uint64_t> blocked{0};
  std::atomic<uint64_t> offloaded{0};
};

namespace {

struct Job {
  struct syscall *sc;
  long (*fn)(void *);
  void *arg;
  Job *next;
};

// The helper threads of the fallback. The lock is a spinlock taken with
// notifications disabled (uthread side) or by plain threads; its critical
// sections are a few loads and stores.
struct HelperPool {
  std::atomic_flag lock = ATOMIC_FLAG_INIT;
  Job *head = nullptr;
  Job *tail = nullptr;
  int queued = 0;                // jobs in the list
  int idle = 0;                  // helpers waiting for a job
  int threads = 0;               // helpers started
  std::atomic<uint32_t> seq{0};  // futex word: bumped for every new job
};

struct SyscallRuntime {
  std::atomic<int> backend{PARLIB_SYSC_NONE};
  int nr_vcores = 0;
  VcoreRing *rings = nullptr;
  std::once_flag chain_once;
  void (*prev_events_hook)() = nullptr;
  HelperPool pool;
  int (*real_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
                             void *) = nullptr;
};

SyscallRuntime g_sys;

long raw_futex(std::atomic<uint32_t> *word, int op, uint32_t val) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), op, val, nullptr, nullptr, 0);
}

uint64_t clock_now_ns(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

bool env_flag(const char *name) {
  const char *s = getenv(name);
  return s != nullptr && *s != '\0' && strcmp(s, "0") != 0;
}

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
    if (io_uring_queue_init_params(kSqEntries, &r.ring, &p) == 0) return true;
  }
  return false;
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
  auto *sc = reinterpret_cast<struct syscall *>(user_data);
  PARLIB_CHECK(sc->pending_ > 0, "syscall: completion for descriptor %p with nothing pending",
               static_cast<void *>(sc));
  sc->pending_--;
  if (sc->ncomp_++ == 0) {
    sc->retval = res;
    sc->flags |= SYSC_DONE;
    // A wait on several operations (poll sets, a wait with a timeout) ends
    // at the first: cancel the others here, on the ring that holds them.
    if (sc->cancel_on_first_ && sc->pending_ > 0) {
      io_uring_sqe *sqe = io_uring_get_sqe(&r.ring);
      while (sqe == nullptr) {
        io_uring_submit(&r.ring);
        sqe = io_uring_get_sqe(&r.ring);
      }
      io_uring_prep_cancel64(sqe, user_data, IORING_ASYNC_CANCEL_ALL);
      sqe->user_data = kIgnoreUserData;
    }
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
void chained_events_hook() {
  if (g_sys.prev_events_hook != nullptr) g_sys.prev_events_hook();
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
// which its vcore_entry hook runs only when events are queued. A vcore that
// is busy must still reap on every pass through vcore context, so the
// first ring puts the reaper behind the uthread layer's handle-events hook.
// By then event_lib_init has set that hook (rings are made in uthread
// context only). docs/syscall.md ("Reaping") proposes a proper hook.
void chain_events_hook() {
  g_sys.prev_events_hook = __atomic_load_n(&g_handle_events_hook, __ATOMIC_ACQUIRE);
  __atomic_store_n(&g_handle_events_hook, &chained_events_hook, __ATOMIC_RELEASE);
}

// ---------------------------------------------------------------------------
// The idle waiter: an offline vcore sleeps in io_uring_enter on its ring,
// where both its completions and wake()'s eventfd write find it.

void wake_vcore_for_completions(uint32_t id) {
  // vcore_entry's event hook handles events when notif_pending is set, and
  // the reaper behind it delivers the completions.
  vcore_of(id).notif_pending.store(true, std::memory_order_seq_cst);
  vcore_bring_online(id);
}

// How long an idle vcore polls its state word and its ring before it
// sleeps in the kernel. The vcore layer's own poll cannot see the ring, so
// with io_uring the library sets that one to 0 and polls here instead
// (PARLIB_IDLE_SPIN_US, default 50, as the vcore layer reads it).
uint32_t g_idle_spin_us = 50;

void ring_sleep(uint32_t id, std::atomic<uint32_t> *state) {
  VcoreRing &r = g_sys.rings[id];
  if (r.status.load(std::memory_order_relaxed) != kRingReady) {
    // No ring, so nothing in flight: the futex, as the vcore layer does.
    raw_futex(state, FUTEX_WAIT_PRIVATE, kOfflineSleeping);
    return;
  }
  // Poll first: a grant (state) or a completion (ring) then costs no system
  // call on either side; wake() writes the eventfd only once we announced
  // the kernel wait below.
  uint64_t deadline = clock_now_ns(CLOCK_MONOTONIC) + uint64_t{g_idle_spin_us} * 1000;
  for (unsigned i = 1;; ++i) {
    if (state->load(std::memory_order_acquire) != kOfflineSleeping) return;
    if (ring_has_work(r)) {
      harvest(r);
      if (r.done_head != nullptr) {
        wake_vcore_for_completions(id);
        return;
      }
    }
    __builtin_ia32_pause();
    if ((i & 63) == 0 && clock_now_ns(CLOCK_MONOTONIC) >= deadline) break;
  }
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
  if (r.status.load(std::memory_order_acquire) != kRingReady)
    raw_futex(state, FUTEX_WAKE_PRIVATE, 1);
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
  if (sc->pending_ == 0 && !sc->queued_ && sc->ncomp_ > 0) enqueue_done(r, sc);
  harvest(r);
  dispatch(r);
}

void block_on(struct syscall *sc) { uthread_yield(true, blockon_cb, sc); }

// ---------------------------------------------------------------------------
// Helper threads.

void pool_lock(HelperPool &p) {
  for (unsigned i = 0; p.lock.test_and_set(std::memory_order_acquire); ++i) {
    if (i >= 128)
      sched_yield();  // the holder may be a descheduled helper
    else
      __builtin_ia32_pause();
  }
}
void pool_unlock(HelperPool &p) { p.lock.clear(std::memory_order_release); }

void run_job(Job *j) {
  struct syscall *sc = j->sc;
  long r = j->fn(j->arg);
  sc->retval = r;
  sc->flags |= SYSC_DONE;
  struct event_msg msg;
  memset(&msg, 0, sizeof msg);
  msg.ev_arg3 = sc;
  uint32_t vcoreid = sc->vcoreid;
  // After send_event the uthread may run and its frame (sc, j) be gone.
  while (send_event_to_any(&msg, EV_SYSCALL, vcoreid) != 0) sched_yield();  // ENOMEM: retry
}

void *helper_main(void *) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // process signals go elsewhere
  HelperPool &p = g_sys.pool;
  for (;;) {
    uint32_t seen = p.seq.load(std::memory_order_acquire);
    pool_lock(p);
    Job *j = p.head;
    if (j != nullptr) {
      p.head = j->next;
      if (p.head == nullptr) p.tail = nullptr;
      p.queued--;
      pool_unlock(p);
      run_job(j);
      continue;
    }
    p.idle++;
    pool_unlock(p);
    raw_futex(&p.seq, FUTEX_WAIT_PRIVATE, seen);
    pool_lock(p);
    p.idle--;
    pool_unlock(p);
  }
  return nullptr;
}

bool start_helper() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kHelperStackSize);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int err = g_sys.real_pthread_create(&t, &attr, helper_main, nullptr);
  pthread_attr_destroy(&attr);
  return err == 0;
}

void pool_submit(Job *j) {
  HelperPool &p = g_sys.pool;
  pool_lock(p);
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
  raw_futex(&p.seq, FUTEX_WAKE_PRIVATE, 1);
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

uint64_t ts_ns(const struct timespec &ts) {
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// The fallback's sleep: an alarm whose callback delivers the descriptor.
void alarm_sleep_until(clockid_t clk, const struct timespec &abs) {
  struct syscall sc;
  sysc_prepare(&sc, SYS_clock_nanosleep);
  AlarmSleep as;
  init_waiter(&as.w, alarm_fired);
  as.sc = &sc;
  uint64_t deadline = ts_ns(abs);
  if (clk == CLOCK_REALTIME) {
    set_waiter_abs_unix(&as.w, (deadline + 999) / 1000);
  } else {
    if (clk == CLOCK_BOOTTIME) {
      uint64_t boot = clock_now_ns(CLOCK_BOOTTIME);
      uint64_t mono = clock_now_ns(CLOCK_MONOTONIC);
      deadline = deadline > boot ? mono + (deadline - boot) : mono;
    }
    set_waiter_abs(&as.w, (deadline + 999) / 1000);
  }
  start_alarm(&as.w);  // fires on this vcore, after the yield below
  block_on(&sc);
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

uint64_t monotonic_ns() { return clock_now_ns(CLOCK_MONOTONIC); }

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
  std::call_once(g_sys.chain_once, chain_events_hook);
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

long ring_wait(VcoreRing *r, struct syscall *sc, int nonblock_fd) {
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
      if (sc->retval == -ECANCELED) sc->retval = -EAGAIN;
      return sc->retval;
    }
  }
  r->blocked.fetch_add(1, std::memory_order_relaxed);
  block_on(sc);
  return sc->retval;
}

long offload(long num, long (*fn)(void *), void *arg) {
  struct syscall sc;
  NotifGuard guard;
  sysc_prepare(&sc, num);
  Job job{&sc, fn, arg, nullptr};
  g_sys.rings[sc.vcoreid].offloaded.fetch_add(1, std::memory_order_relaxed);
  pool_submit(&job);
  block_on(&sc);
  return sc.retval;
}

void sleep_until(clockid_t clk, const struct timespec &abs) {
  NotifGuard guard;
  VcoreRing *r = this_ring();
  if (r == nullptr) {
    alarm_sleep_until(clk, abs);
    return;
  }
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
  ring_wait(r, &sc);  // -ETIME: expired, which is all a sleep waits for
}

bool wait_any_ready(const struct pollfd *fds, nfds_t n, uint64_t deadline_ns) {
  NotifGuard guard;
  VcoreRing *r = this_ring();
  if (r == nullptr) return false;
  struct syscall sc;
  sysc_prepare(&sc, SYS_ppoll);
  sc.cancel_on_first_ = 1;
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].fd < 0) continue;
    io_uring_sqe *sqe = ring_sqe(r, &sc);
    io_uring_prep_poll_add(sqe, fds[i].fd,
                           static_cast<unsigned>(fds[i].events) | POLLERR | POLLHUP);
  }
  __kernel_timespec ts;
  if (deadline_ns == 0 && sc.pending_ == 0) deadline_ns = monotonic_ns() + 3600ull * 1000000000u;
  if (deadline_ns != 0) {
    ts.tv_sec = static_cast<long long>(deadline_ns / 1000000000u);
    ts.tv_nsec = static_cast<long long>(deadline_ns % 1000000000u);
    io_uring_sqe *sqe = ring_sqe(r, &sc);
    io_uring_prep_timeout(sqe, &ts, 0, IORING_TIMEOUT_ABS);
  }
  ring_wait(r, &sc);
  return true;
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
  if (!std::atomic_ref<int>(r.efd).compare_exchange_strong(expected, fd, std::memory_order_acq_rel))
    close(fd);
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
  if (g_sys.real_pthread_create == nullptr) g_sys.real_pthread_create = pthread_create;
  __atomic_store_n(&ev_handlers[EV_SYSCALL], &parlib_syscall_default_handler, __ATOMIC_RELEASE);
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
    const char *spin = getenv("PARLIB_IDLE_SPIN_US");
    if (spin != nullptr) {
      char *end = nullptr;
      long v = strtol(spin, &end, 10);
      if (end != spin && *end == '\0' && v >= 0 && v <= 10000000)
        g_idle_spin_us = static_cast<uint32_t>(v);
    }
    vcore_set_idle_spin_us(0);  // ring_sleep polls instead, ring included
    set_vcore_idle_waiter(&g_ring_waiter);
  }
  g_sys.backend.store(backend, std::memory_order_release);
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

// Thread lifecycle: create, exit, join, detach, self, kill; and the
// constructor that makes main thread0 before main() runs.
#include <parlib/atomic.h>
#include <parlib/spinlock.h>
#include <parlib/syscall.h>
#include <parlib/uthread.h>
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "event/foreign_call.h"
#include "upthread/upthread_internal.h"

using namespace parlib::detail::upthread_impl;

namespace parlib::detail::upthread_impl {
namespace {

struct upthread *self() {
  return of(uthread_self());
}

void thread_start() {
  struct upthread *t = self();
  run_pending_signals(t);
  upthread_exit(t->start(t->arg));
}

// Exited threads' structs, each with its stack, kept for upthread_create
// (bounded; linked through next): creating a thread with the stack size
// and guard of a cached one then allocates nothing.
constexpr int kCachedThreads = 64;
spin_pdr_lock_t g_thread_cache_lock = SPINPDR_INITIALIZER;
struct upthread *g_thread_cache = nullptr;
int g_num_cached_threads = 0;

struct upthread *take_cached_thread() {
  spin_pdr_lock(&g_thread_cache_lock);
  struct upthread *t = g_thread_cache;
  if (t != nullptr) {
    g_thread_cache = t->next;
    --g_num_cached_threads;
  }
  spin_pdr_unlock(&g_thread_cache_lock);
  return t;
}

void free_thread(struct upthread *t) {
  uthread_cleanup(&t->uth);
  spin_pdr_lock(&g_thread_cache_lock);
  bool cached = g_num_cached_threads < kCachedThreads;
  if (cached) {
    t->next = g_thread_cache;
    g_thread_cache = t;
    ++g_num_cached_threads;
  }
  spin_pdr_unlock(&g_thread_cache_lock);
  if (cached) return;
  stack_put(t->stack, t->stack_size, t->guard_size);
  t->~upthread();
  free(t);
}

// A thread struct in its initial state with a stack of the attribute's
// size and guard: a cached one (its stack reused when it fits) or a new
// one. Null when out of memory.
struct upthread *new_thread(const upthread_attr_t *attr) {
  struct upthread *t = take_cached_thread();
  void *stack = nullptr;
  if (t != nullptr) {
    if (t->stack_size == attr->stacksize && t->guard_size == attr->guardsize)
      stack = t->stack;
    else
      stack_put(t->stack, t->stack_size, t->guard_size);
    t->~upthread();
  } else {
    void *mem = aligned_alloc(alignof(struct upthread), sizeof(struct upthread));
    if (mem == nullptr) return nullptr;
    t = static_cast<struct upthread *>(mem);
  }
  if (stack == nullptr) stack = stack_get(attr->stacksize, attr->guardsize);
  if (stack == nullptr) {
    free(t);
    return nullptr;
  }
  t = new (t) struct upthread;
  t->stack = stack;
  t->stack_size = attr->stacksize;
  t->guard_size = attr->guardsize;
  return t;
}

// Vcore context, after the exiting thread's last switch: hand the thread
// to its joiner, or free it if nobody will join it.
void exit_cb(struct uthread *uth, void *) {
  struct upthread *t = of(uth);
  uintptr_t prev = t->join_state.exchange(kExited, std::memory_order_acq_rel);
  if (prev == kDetached) {
    reclaim(t);
  } else if (prev != kJoinable) {
    uthread_runnable(reinterpret_cast<struct uthread *>(prev));  // the joiner
  }
  count_live(-1);
}

// A join in progress: the target, and the joiner's cwait value while it
// prepares (see cancel_wait_begin).
struct JoinWait {
  struct upthread *target;
  struct upthread *joiner;
  uint32_t token;
};

// Vcore context: the joiner registers itself, unless the target exited
// meanwhile (then the joiner continues at once).
void join_cb(struct uthread *joiner, void *arg) {
  auto *j = static_cast<JoinWait *>(arg);
  struct upthread *t = j->target;
  uint32_t token = j->token;  // j lives on the joiner's stack: read it first
  uintptr_t expected = kJoinable;
  if (!t->join_state.compare_exchange_strong(expected, reinterpret_cast<uintptr_t>(joiner),
                                             std::memory_order_acq_rel)) {
    uthread_runnable(joiner);
    return;
  }
  // Registered: a canceller may now take the joiner back (join_kick). The
  // token makes this a no-op if the joiner was woken and has moved on.
  of(joiner)->cwait.compare_exchange_strong(token, with_state(token, kWaitBlocked),
                                            std::memory_order_acq_rel);
}

// upthread_cancel's kick of a joiner blocked in join_cb's registration:
// unregister it (the target stays joinable, as glibc leaves it) and wake
// it, unless the target's exit got there first (then exit_cb wakes it).
void join_kick(void *arg) {
  auto *j = static_cast<JoinWait *>(arg);
  auto expected = reinterpret_cast<uintptr_t>(&j->joiner->uth);
  if (j->target->join_state.compare_exchange_strong(expected, kJoinable, std::memory_order_acq_rel))
    uthread_runnable(&j->joiner->uth);
}

// Lets the thread that cancel_wakeup waits for run.
void relax() {
  if (in_vcore_context()) {
    cpu_relax();
  } else if (uthread_self() != nullptr) {
    upthread_yield();
  } else {
    sched_yield();
  }
}

// upthread_cancel's second half: if t is in a cancellable wait, end its
// block with the wait's kick (once t is really blocked; until then t is
// about to notice the request or to block).
void cancel_wakeup(struct upthread *t) {
  for (;;) {
    uint32_t w = t->cwait.load(std::memory_order_seq_cst);
    switch (wait_state(w)) {
      case kWaitNone:
      case kWaitKicking:
      case kWaitKicked:
        return;
      case kWaitBlocked:
        if (t->cwait.compare_exchange_strong(w, with_state(w, kWaitKicking),
                                             std::memory_order_acq_rel)) {
          t->cwait_kick(t->cwait_arg);
          t->cwait.store(with_state(w, kWaitKicked), std::memory_order_release);
          return;
        }
        break;
      default:  // preparing, or nested inside the preparation
        relax();
    }
  }
}

// Whether sig, sent to a thread, ends its blocking call: not when it is
// ignored (SIG_IGN, or a default action that ignores).
bool interrupts_calls(int sig) {
  struct sigaction sa;
  if (sigaction(sig, nullptr, &sa) != 0) return false;
  if (sa.sa_flags & SA_SIGINFO) return sa.sa_sigaction != nullptr;
  if (sa.sa_handler == SIG_IGN) return false;
  if (sa.sa_handler == SIG_DFL)
    return sig != SIGCHLD && sig != SIGURG && sig != SIGWINCH && sig != SIGCONT;
  return true;
}

}  // namespace

void reclaim(struct upthread *t) {
  if (!t->is_thread0) free_thread(t);
}

int run_pending_signals(struct upthread *t) {
  int verdict = PARLIB_SYSC_INTR_NONE;
  uint64_t pending = t->pending_signals.load(std::memory_order_acquire);
  while (pending != 0) {
    int sig = __builtin_ctzll(pending) + 1;
    if (sigismember(&t->sigmask, sig)) {
      pending &= pending - 1;
      continue;
    }
    t->pending_signals.fetch_and(~(uint64_t{1} << (sig - 1)), std::memory_order_acq_rel);
    struct sigaction sa;
    if (sigaction(sig, nullptr, &sa) == 0) {
      bool handler = true;
      if (sa.sa_flags & SA_SIGINFO) {
        siginfo_t info{};
        info.si_signo = sig;
        info.si_code = SI_TKILL;
        if (sa.sa_sigaction != nullptr) sa.sa_sigaction(sig, &info, nullptr);
      } else if (sa.sa_handler == SIG_DFL) {
        raise(sig);  // the default action (terminate, stop, ignore) for the process
        handler = false;
      } else if (sa.sa_handler != SIG_IGN) {
        sa.sa_handler(sig);
      } else {
        handler = false;
      }
      // An interrupted call restarts only if every handler that ran asked
      // for it (signal(7)).
      if (handler)
        verdict = std::max(verdict, (sa.sa_flags & SA_RESTART) ? PARLIB_SYSC_INTR_RESTART
                                                               : PARLIB_SYSC_INTR_EINTR);
    }
    pending = t->pending_signals.load(std::memory_order_acquire);
  }
  return verdict;
}

// A blocking call was interrupted (upthread_kill, upthread_cancel): a
// cancellation to act on ends it with EINTR, whatever the signals say
// (the shim's I/O calls then act on it: they are cancellation points).
int thread_sysc_interrupted(struct uthread *uth) {
  int verdict = run_pending_signals(of(uth));
  return cancel_due(of(uth)) ? PARLIB_SYSC_INTR_EINTR : verdict;
}

}  // namespace parlib::detail::upthread_impl

// For libupthread-preload.so (version UPTHREAD_PRIVATE): the shim's waits
// that a signal ended run the handlers on the waiting thread.
extern "C" __attribute__((visibility("default"))) int __upthread_run_signals(void) {
  struct upthread *t = upthread_self();
  return t != nullptr ? run_pending_signals(t) : PARLIB_SYSC_INTR_NONE;
}

namespace parlib::detail::upthread_impl {}  // namespace parlib::detail::upthread_impl

__attribute__((constructor)) static void upthread_library_init() {
  init();
  install_foreign_signal_hooks();
}

extern "C" {

int upthread_attr_init(upthread_attr_t *attr) {
  if (attr == nullptr) return EINVAL;
  attr->detachstate = UPTHREAD_CREATE_JOINABLE;
  attr->stacksize = UPTHREAD_STACK_DEFAULT;
  attr->guardsize = 4096;
  return 0;
}
int upthread_attr_destroy(upthread_attr_t *attr) { return attr == nullptr ? EINVAL : 0; }
int upthread_attr_setdetachstate(upthread_attr_t *attr, int state) {
  if (attr == nullptr || (state != UPTHREAD_CREATE_JOINABLE && state != UPTHREAD_CREATE_DETACHED))
    return EINVAL;
  attr->detachstate = state;
  return 0;
}
int upthread_attr_getdetachstate(const upthread_attr_t *attr, int *state) {
  if (attr == nullptr || state == nullptr) return EINVAL;
  *state = attr->detachstate;
  return 0;
}
int upthread_attr_setstacksize(upthread_attr_t *attr, size_t size) {
  if (attr == nullptr || size < UPTHREAD_STACK_MIN) return EINVAL;
  attr->stacksize = size;
  return 0;
}
int upthread_attr_getstacksize(const upthread_attr_t *attr, size_t *size) {
  if (attr == nullptr || size == nullptr) return EINVAL;
  *size = attr->stacksize;
  return 0;
}
int upthread_attr_setguardsize(upthread_attr_t *attr, size_t size) {
  if (attr == nullptr) return EINVAL;
  attr->guardsize = size;
  return 0;
}
int upthread_attr_getguardsize(const upthread_attr_t *attr, size_t *size) {
  if (attr == nullptr || size == nullptr) return EINVAL;
  *size = attr->guardsize;
  return 0;
}

int upthread_create(upthread_t *thread, const upthread_attr_t *attr, void *(*start)(void *),
                    void *arg) {
  if (thread == nullptr || start == nullptr) return EINVAL;
  if (in_vcore_context()) return EPERM;
  upthread_attr_t defaults;
  upthread_attr_init(&defaults);
  if (attr == nullptr) attr = &defaults;
  struct upthread *t = new_thread(attr);
  if (t == nullptr) return EAGAIN;
  t->start = start;
  t->arg = arg;
  if (attr->detachstate == UPTHREAD_CREATE_DETACHED) t->join_state.store(kDetached);
  if (struct upthread *me = of(uthread_self())) t->sigmask = me->sigmask;
  uthread_init(&t->uth);
  init_uthread_ctx(&t->uth, thread_start, t->stack, t->stack_size);
  *thread = t;
  count_live(1);
  enqueue_new(t);
  return 0;
}

void upthread_exit(void *retval) {
  struct upthread *t = of(uthread_self());
  if (t == nullptr) abort();  // not a upthread: nothing sensible to do
  t->retval = retval;
  t->cancel.fetch_or(kCancelExiting, std::memory_order_relaxed);  // no more cancellation points
  uthread_run_destructors();
  uthread_yield(false, exit_cb, nullptr);
  __builtin_unreachable();
}

int upthread_join(upthread_t thread, void **retval) {
  if (thread == nullptr) return ESRCH;
  if (thread == upthread_self()) return EDEADLK;
  uintptr_t state = thread->join_state.load(std::memory_order_acquire);
  if (state == kDetached) return EINVAL;
  if (state != kJoinable && state != kExited) return EINVAL;  // someone else joins it
  while (state != kExited) {
    // A cancellation point (a thread that is not a upthread has none).
    struct upthread *self = upthread_self();
    JoinWait j{thread, self, 0};
    if (self != nullptr && !cancel_wait_begin(self, join_kick, &j, &j.token))
      upthread_exit(UPTHREAD_CANCELED);
    uthread_yield(true, join_cb, &j);
    if (self == nullptr) break;
    cancel_wait_end(self);
    state = thread->join_state.load(std::memory_order_acquire);
    if (state != kExited) {
      // Taken back by join_kick (the target stays joinable): to act on a
      // cancellation, or to run a signal's handler and wait again.
      if (cancel_due(self)) upthread_exit(UPTHREAD_CANCELED);
      run_pending_signals(self);
    }
  }
  if (retval != nullptr) *retval = thread->retval;
  reclaim(thread);
  return 0;
}

int upthread_detach(upthread_t thread) {
  if (thread == nullptr) return ESRCH;
  uintptr_t expected = kJoinable;
  if (thread->join_state.compare_exchange_strong(expected, kDetached, std::memory_order_acq_rel))
    return 0;
  if (expected == kExited) {
    reclaim(thread);
    return 0;
  }
  return EINVAL;  // already detached, or being joined
}

upthread_t upthread_self(void) { return of(uthread_self()); }

int upthread_cancel(upthread_t thread) {
  if (thread == nullptr) return ESRCH;
  // seq_cst: see cancel_due.
  uint32_t prev = thread->cancel.fetch_or(kCancelPending, std::memory_order_seq_cst);
  // A repeated request changes nothing; a disabled or exiting thread is
  // not in a cancellable wait (and enabling is up to it).
  if (prev & (kCancelPending | kCancelDisabled | kCancelExiting)) return 0;
  cancel_wakeup(thread);
  // A target blocked in a call of parlib's syscall service: the call ends
  // with EINTR (thread_sysc_interrupted), where a cancellation point acts.
  if (thread != upthread_self()) parlib_syscall_interrupt(&thread->uth);
  return 0;
}

int upthread_setcancelstate(int state, int *oldstate) {
  struct upthread *t = upthread_self();
  if (t == nullptr) return EPERM;
  if (state != UPTHREAD_CANCEL_ENABLE && state != UPTHREAD_CANCEL_DISABLE) return EINVAL;
  // Only the thread writes its state bits; relaxed, since a canceller that
  // reads a stale state only skips a wakeup the thread does not need yet.
  uint32_t prev = state == UPTHREAD_CANCEL_DISABLE
                      ? t->cancel.fetch_or(kCancelDisabled, std::memory_order_relaxed)
                      : t->cancel.fetch_and(~kCancelDisabled, std::memory_order_relaxed);
  if (oldstate != nullptr)
    *oldstate = (prev & kCancelDisabled) ? UPTHREAD_CANCEL_DISABLE : UPTHREAD_CANCEL_ENABLE;
  return 0;
}

int upthread_setcanceltype(int type, int *oldtype) {
  struct upthread *t = upthread_self();
  if (t == nullptr) return EPERM;
  if (type != UPTHREAD_CANCEL_DEFERRED && type != UPTHREAD_CANCEL_ASYNCHRONOUS) return EINVAL;
  uint32_t prev = type == UPTHREAD_CANCEL_ASYNCHRONOUS
                      ? t->cancel.fetch_or(kCancelAsync, std::memory_order_relaxed)
                      : t->cancel.fetch_and(~kCancelAsync, std::memory_order_relaxed);
  if (oldtype != nullptr)
    *oldtype = (prev & kCancelAsync) ? UPTHREAD_CANCEL_ASYNCHRONOUS : UPTHREAD_CANCEL_DEFERRED;
  return 0;
}

void upthread_testcancel(void) {
  struct upthread *t = upthread_self();
  if (t != nullptr && cancel_due(t)) upthread_exit(UPTHREAD_CANCELED);
}

int upthread_equal(upthread_t a, upthread_t b) { return a == b; }

int upthread_yield(void) {
  struct upthread *self = of(current_uthread);
  if (self == nullptr || in_vcore_context()) return 0;
  // Round robin on this vcore's queue; with nothing else queued here the
  // caller simply continues (other vcores steal from their own side).
  yield_directly();
  if (self->pending_signals.load(std::memory_order_relaxed) != 0) run_pending_signals(self);
  return 0;
}

int upthread_kill(upthread_t thread, int sig) {
  if (thread == nullptr) return ESRCH;
  if (sig < 0 || sig > 64) return EINVAL;
  if (sig == 0) return 0;
  // seq_cst, first: a target entering a foreign call (its accepted hook)
  // or a cancellable wait (signal_due) after the checks below sees it.
  thread->pending_signals.fetch_or(uint64_t{1} << (sig - 1), std::memory_order_seq_cst);
  if (thread == upthread_self()) {
    run_pending_signals(thread);
    return 0;
  }
  // A target waiting in a call of the program's that parlib does not serve
  // (sigwait, pause, waitpid, ...): its task gets the signal, and the
  // kernel blocks it, hands it to the sigwait or runs the handler there.
  if (kill_in_foreign_call(thread, sig)) return 0;
  if (interrupts_calls(sig)) {
    // A target in a cancellable wait (the shim's condvar, semaphore and
    // join waits, its sleeps) or blocked in a call of parlib's syscall
    // service wakes up and runs the handler there (signal_due,
    // thread_sysc_interrupted); one that is not runs it at its next
    // scheduling point or its next such call. Its mask is looked at
    // there: a masked signal costs the wait a spurious wakeup.
    cancel_wakeup(thread);
    parlib_syscall_interrupt(&thread->uth);
  }
  return 0;
}

int upthread_sigmask(int how, const sigset_t *set, sigset_t *oldset) {
  struct upthread *t = upthread_self();
  if (t == nullptr) return EPERM;
  if (oldset != nullptr) *oldset = t->sigmask;
  if (set == nullptr) return 0;
  switch (how) {
    case SIG_BLOCK:
      sigorset(&t->sigmask, &t->sigmask, set);
      break;
    case SIG_UNBLOCK:
      for (int s = 1; s < NSIG; ++s)
        if (sigismember(set, s)) sigdelset(&t->sigmask, s);
      break;
    case SIG_SETMASK:
      t->sigmask = *set;
      break;
    default:
      return EINVAL;
  }
  run_pending_signals(t);
  return 0;
}

}  // extern "C"

// The deadline service of the sync layer (see timed_wait.h): one kernel
// thread, a deadline-sorted intrusive list, a futex word to sleep on.
//
// Sorted list rather than a heap: entries live in waiters' stack frames,
// so the structure must be intrusive and never allocate (arming happens in
// vcore context); timed waits are few at a time, so O(n) insertion is
// fine, and removal (the common case: woken before the deadline) is O(1).

#include "sync/timed_wait.h"

#include <parlib/spinlock.h>

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <mutex>

#include "common/futex.h"
#include "common/sanitizer_fiber.h"
#include "sync/sync_internal.h"

namespace parlib::detail {
namespace {

struct TimerService {
  spin_pdr_lock_t lock = SPINPDR_INITIALIZER;
  TimedWait* head = nullptr;  // earliest deadline first; guarded by lock
  // Bumped (under lock) whenever the earliest deadline moves earlier; the
  // timer thread sleeps on it, so an arm after it looked wakes it.
  std::atomic<uint32_t> seq{0};
  std::once_flag once;
  bool started = false;  // written once inside call_once
};

TimerService g_timer;

void futex_wait_word(std::atomic<uint32_t>* word, uint32_t val, const struct timespec* rel) {
  // A raw system call: this thread is a plain kernel thread and must block
  // in the kernel. EAGAIN/EINTR/ETIMEDOUT all just mean "look again".
  futex_wait(word, val, rel);
}

void futex_wake_word(std::atomic<uint32_t>* word) { futex_wake(word, 1); }

void unlink(TimerService& t, TimedWait* e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    t.head = e->next;
  if (e->next) e->next->prev = e->prev;
  e->prev = e->next = nullptr;
}

void* timer_main(void*) {
  TimerService& t = g_timer;
  for (;;) {
    spin_pdr_lock(&t.lock);
    const uint64_t now = monotonic_now_ns();
    TimedWait* e = t.head;
    if (e != nullptr && e->deadline_ns <= now) {
      unlink(t, e);
      // relaxed: cancel reads state under the same lock, or waits for
      // kIdle with acquire below.
      e->state.store(TimedWait::kFiring, std::memory_order_relaxed);
      spin_pdr_unlock(&t.lock);
      e->fire(e);
      // release: everything fire() did happens before a cancel that sees
      // kIdle returns (and lets e go out of scope). Last touch of e.
      e->state.store(TimedWait::kIdle, std::memory_order_release);
      continue;
    }
    // relaxed: read under the lock that every bump happens under.
    const uint32_t seq = t.seq.load(std::memory_order_relaxed);
    struct timespec rel;
    const struct timespec* timeout = nullptr;
    if (e != nullptr) {
      rel = ns_to_timespec(e->deadline_ns - now);
      timeout = &rel;
    }
    spin_pdr_unlock(&t.lock);
    futex_wait_word(&t.seq, seq, timeout);
  }
  return nullptr;
}

// The C library's pthread_create. Under the LD_PRELOAD shim, pthread_create
// called from a uthread (as the first timed wait is) makes an upthread,
// but the timer must be a kernel thread of its own. The shim is loaded
// before libparlib, so RTLD_NEXT from here skips it.
using PthreadCreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
PthreadCreateFn real_pthread_create() {
  // TSan's interceptor comes before libparlib, so RTLD_NEXT would skip it
  // and make a thread TSan knows nothing of (it cannot run instrumented
  // code); the shim is not used with TSan.
  if (san::kTsan) return &pthread_create;
  void* f = dlsym(RTLD_NEXT, "pthread_create");
  return f != nullptr ? reinterpret_cast<PthreadCreateFn>(f) : &pthread_create;
}

void start_thread() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  // The first timed wait runs on a vcore, whose kernel task is pinned to
  // one CPU; a thread inherits its creator's mask. Give the timer thread
  // the process's own mask (the main task keeps it) instead.
  cpu_set_t cpus;
  if (sched_getaffinity(getpid(), sizeof cpus, &cpus) == 0)
    pthread_attr_setaffinity_np(&attr, sizeof cpus, &cpus);
  // The timer thread takes no signals (notifications are for vcores).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t tid;
  const int err = real_pthread_create()(&tid, &attr, timer_main, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (err == 0) {
    pthread_setname_np(tid, "parlib-timer");
    g_timer.started = true;
  } else {
    raw_log("sync: cannot start the timer thread (error %d); timed waits fail", err);
  }
}

}  // namespace

bool timed_wait_service_start() {
  std::call_once(g_timer.once, start_thread);
  return g_timer.started;
}

void timed_wait_arm(TimedWait* e) {
  TimerService& t = g_timer;
  spin_pdr_lock(&t.lock);
  PARLIB_CHECK(e->state.load(std::memory_order_relaxed) == TimedWait::kIdle,
               "timed_wait_arm: entry already armed");
  TimedWait* prev = nullptr;
  TimedWait* cur = t.head;
  while (cur != nullptr && cur->deadline_ns <= e->deadline_ns) {
    prev = cur;
    cur = cur->next;
  }
  e->prev = prev;
  e->next = cur;
  if (cur) cur->prev = e;
  if (prev)
    prev->next = e;
  else
    t.head = e;
  // relaxed: state is read under this lock (or compared against kFiring).
  e->state.store(TimedWait::kArmed, std::memory_order_relaxed);
  const bool earliest = prev == nullptr;
  if (earliest) t.seq.fetch_add(1, std::memory_order_relaxed);  // ordered by the lock
  spin_pdr_unlock(&t.lock);
  if (earliest) futex_wake_word(&t.seq);
}

bool timed_wait_cancel(TimedWait* e) {
  TimerService& t = g_timer;
  spin_pdr_lock(&t.lock);
  if (e->state.load(std::memory_order_relaxed) == TimedWait::kArmed) {
    unlink(t, e);
    e->state.store(TimedWait::kIdle, std::memory_order_relaxed);
    spin_pdr_unlock(&t.lock);
    return true;
  }
  spin_pdr_unlock(&t.lock);
  // The timer thread owns e until it stores kIdle after fire() returns.
  // acquire: pairs with that release store.
  SpinWait wait;
  while (e->state.load(std::memory_order_acquire) == TimedWait::kFiring) wait.once();
  return false;
}

}  // namespace parlib::detail

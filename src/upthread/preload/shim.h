// Internal interface of libupthread-preload.so: the real (glibc) functions,
// the calling context, and futex waits that block a uthread or a kernel
// task as the caller requires.
#ifndef PARLIB_UPTHREAD_PRELOAD_SHIM_H
#define PARLIB_UPTHREAD_PRELOAD_SHIM_H

#include <dlfcn.h>
#include <parlib/uthread.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#define SHIM_EXPORT extern "C" __attribute__((visibility("default")))

namespace parlib::detail::preload {

// Looks name up after this library (glibc's definition). Resolved on first
// use, because the runtime's own start-up (libupthread's constructor, which
// runs before ours) already calls pthread_create and pthread_once.
void *next_symbol(const char *name);

template <class F>
F real_fn(std::atomic<void *> &slot, const char *name) {
  void *p = slot.load(std::memory_order_relaxed);
  if (p == nullptr) {
    p = next_symbol(name);
    slot.store(p, std::memory_order_relaxed);
  }
  return reinterpret_cast<F>(p);
}

// REAL(pthread_mutex_lock)(args...) calls glibc's function.
#define REAL(name)                                                    \
  ([]() {                                                             \
    static std::atomic<void *> slot_{nullptr};                        \
    return ::parlib::detail::preload::real_fn<decltype(&name)>(slot_, #name); \
  }())

// Set in a fork child: the child has one kernel task and no vcores, so
// from then on every call behaves natively (see docs/preload.md).
extern std::atomic<bool> g_native_only;

// True when the caller is a uthread (and so may block only itself); false
// in vcore context, in threads the shim did not create, before the runtime
// is up, and in a fork child.
inline bool on_uthread() {
  return !g_native_only.load(std::memory_order_relaxed) && uthread_self() != nullptr;
}

// Blocks while *word == val, until a futex_wake on word, the deadline
// (absolute, on clock; nullptr: none) or a spurious wakeup. Returns 0 or
// ETIMEDOUT; errno is preserved.
int futex_wait(int *word, int val, const timespec *abstime, clockid_t clock);
// Wakes up to n waiters of either kind on word.
void futex_wake(int *word, int n);

// Cancellation (threads.cpp, sync.cpp). futex_wait_cancellable: futex_wait
// that is a cancellation point's block: it also ends, returning ECANCELED,
// when the calling upthread has a cancellation to act on (pending before
// or arriving during the wait). The caller restores what the call promises
// (a condition wait relocks its mutex), then calls testcancel().
int futex_wait_cancellable(int *word, int val, const timespec *abstime, clockid_t clock);
// testcancel: a cancellation point: a upthread with a cancellation to act
// on exits as pthread_exit(PTHREAD_CANCELED) would (cleanup handlers and
// destructors of its frames run); otherwise returns.
void testcancel();
// cancellable_sleep: the sleeps' cancellation point. False when the sleep
// should not be one (a glibc thread, the runtime's own sleep: ret is the
// sleep call's return address; an invalid request, a clock other than
// CLOCK_REALTIME or CLOCK_MONOTONIC): the caller sleeps as it would.
// Otherwise sleeps (TIMER_ABSTIME in flags: until req) and returns true,
// or acts on a cancellation.
bool cancellable_sleep(void *ret, clockid_t clock, int flags, const timespec *req);

// An identity for the calling thread, unique among live uthreads and
// kernel tasks: its thread pointer (every uthread has its own TCB).
inline void *self_id() { return __builtin_thread_pointer(); }

// Lets the caller's vcore run something else (a uthread) or the kernel
// schedule another task.
void relax_yield();

}  // namespace parlib::detail::preload

#endif

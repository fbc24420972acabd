// Internal interface of libupthread-preload.so: the real (glibc) functions,
// the calling context, and futex waits that block a uthread or a kernel
// task as the caller requires.
#ifndef PARLIB_UPTHREAD_PRELOAD_SHIM_H
#define PARLIB_UPTHREAD_PRELOAD_SHIM_H

#include <dlfcn.h>
#include <parlib/uthread.h>
#include <pthread.h>
#include <sched.h>
#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#define SHIM_EXPORT extern "C" __attribute__((visibility("default")))

struct upthread;

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
#define REAL(name)                                                            \
  ([]() {                                                                     \
    static std::atomic<void *> slot_{nullptr};                                \
    return ::parlib::detail::preload::real_fn<decltype(&name)>(slot_, #name); \
  }())

// Whether ret (a return address) is in libparlib or libupthread: the
// runtime's own calls (its kernel threads, their masks, its sleeps) go to
// glibc (threads.cpp).
bool from_runtime(void *ret);

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
// It also ends when upthread_kill sent the caller a signal that it does not
// block: it runs the handlers and returns EINTR, or ERESTART when each of
// them has SA_RESTART (or 0 when none ran: ignored).
int futex_wait_cancellable(int *word, int val, const timespec *abstime, clockid_t clock);
// Runs the calling upthread's pending signals' handlers: EINTR, ERESTART or
// 0, as above (signals.cpp).
int run_signals();
// testcancel: a cancellation point: a upthread with a cancellation to act
// on exits as pthread_exit(PTHREAD_CANCELED) would (cleanup handlers and
// destructors of its frames run); otherwise returns.
void testcancel();
// cancellable_sleep: a upthread's sleep, a cancellation point that
// pthread_kill interrupts. -1 when the sleep should not be one (a glibc
// thread, the runtime's own sleep: ret is the sleep call's return address;
// an invalid request, a clock other than CLOCK_REALTIME or
// CLOCK_MONOTONIC): the caller sleeps as it would. Otherwise sleeps
// (TIMER_ABSTIME in flags: until req) and returns 0, or EINTR after a
// signal's handler ran (a relative sleep's time left in *rem, if given;
// sleeps are never restarted), or acts on a cancellation.
int cancellable_sleep(void *ret, clockid_t clock, int flags, const timespec *req, timespec *rem);

// An identity for the calling thread, unique among live uthreads and
// kernel tasks: its thread pointer (every uthread has its own TCB).
inline void *self_id() { return __builtin_thread_pointer(); }

// Thread ids (identity.cpp). identity_init: main (thread0) is known by the
// pid. identity_thread_created: pthread_create registers a new thread's
// handle before the thread can run (identity_thread_forget if the creation
// failed); identity_thread_start/exit: the calling upthread, at its start
// and before its handle is released. upthread_tid: ut's id (-1 when the
// shim could not find glibc's tid field). with_upthread: calls fn(ut, arg)
// on the live upthread with id tid, which cannot exit meanwhile, and
// returns 0; ESRCH if the id names a upthread that has exited; -1 if it
// names a kernel task (or the shim knows no ids).
void identity_init(pthread_t main_handle);
void identity_thread_created(pthread_t handle);
void identity_thread_forget(pthread_t handle);
void identity_thread_start(pthread_t self);
void identity_thread_exit(pthread_t self);
pid_t upthread_tid(struct upthread *ut);
int with_upthread(pid_t tid, void (*fn)(struct upthread *, void *), void *arg);
// syscall(SYS_gettid / SYS_tgkill / SYS_tkill) from the program: true with
// the result in *ret when the call concerns a upthread.
bool identity_syscall(long number, long a1, long a2, long a3, long *ret);
// sched_setaffinity/sched_getaffinity (get: nullptr for a set) on a
// upthread's id: true with the call's result in *ret.
bool affinity_by_tid(pid_t tid, size_t size, cpu_set_t *get, int *ret);

// Per-thread CPU clocks (thread_clock.cpp): starts libparlib's accounting.
void thread_clock_init(struct upthread *main_ut);

// Scheduling policy and priority of a upthread (sched_attrs.cpp): the
// kernel's view (k*) and glibc's copy in struct pthread (c*, valid once
// cached), which pthread_getschedparam reads.
struct SchedState {
  int kpolicy, kprio;
  int cpolicy, cprio;
  bool cached;
};
// Main's, from its kernel task (also what the requests are tried on).
void sched_init(SchedState *main_thread);
// A new thread's: inherited from creator (nullptr: a glibc thread's, taken
// as main's) or explicit in attr; or the kernel's error for the latter.
int sched_for_new_thread(const pthread_attr_t *attr, const SchedState *creator, SchedState *out);
// pthread_setschedparam, pthread_setschedprio, pthread_getschedparam.
int sched_set(SchedState *s, int policy, const struct sched_param *p);
int sched_set_prio(SchedState *s, int priority);
void sched_get(SchedState *s, int *policy, struct sched_param *p);
// pthread_getattr_np's policy and priority for a upthread.
void attr_set_sched(pthread_attr_t *attr, SchedState *s);
// The calling upthread's (threads.cpp).
SchedState *self_sched();

// The upthread behind a pthread_t, or nullptr for a glibc thread
// (threads.cpp); is_upthread_handle: whether t is a upthread's handle.
struct upthread *upthread_of(pthread_t t);
bool is_upthread_handle(pthread_t t);
// Ends the calling upthread as pthread_exit(retval) does (threads.cpp).
[[noreturn]] void exit_self(void *retval);

// The shim's SIGUSR1 dispatcher (signals.cpp), installed by the
// constructor once the runtime's handler is in place.
void share_usr1();

// Lets the caller's vcore run something else (a uthread) or the kernel
// schedule another task.
void relax_yield();

}  // namespace parlib::detail::preload

#endif

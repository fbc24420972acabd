// libupthread-preload.so: cancellation of upthreads: pthread_cancel, the
// cancel state and type, pthread_testcancel, and the sleeps as
// cancellation points.
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include <atomic>

#include <upthread/upthread.h>

#include "shim.h"
#include "upthread/upthread_internal.h"

using namespace parlib::detail::preload;

// Cancellation of a upthread: libupthread's request and state
// (upthread_cancel wakes a target blocked in a cancellation point); the
// shim's cancellation points act on it by unwinding (exit_self).
// PTHREAD_CANCEL_ASYNCHRONOUS is recorded and acts as deferred.
SHIM_EXPORT int pthread_cancel(pthread_t t) {
  if (!is_upthread_handle(t)) return REAL(pthread_cancel)(t);
  return upthread_cancel(upthread_of(t));
}
SHIM_EXPORT int pthread_setcancelstate(int state, int *old) {
  if (!on_uthread()) return REAL(pthread_setcancelstate)(state, old);
  return upthread_setcancelstate(state, old);
}
SHIM_EXPORT int pthread_setcanceltype(int type, int *old) {
  if (!on_uthread()) return REAL(pthread_setcanceltype)(type, old);
  return upthread_setcanceltype(type, old);
}
SHIM_EXPORT void pthread_testcancel(void) {
  if (!on_uthread()) return REAL(pthread_testcancel)();
  testcancel();
}

namespace parlib::detail::preload {

void testcancel() {
  if (!on_uthread()) return;
  struct upthread *me = upthread_self();
  if (me != nullptr && upthread_impl::cancel_due(me)) exit_self(PTHREAD_CANCELED);
}

bool cancellable_sleep(void *ret, clockid_t clock, int flags, const timespec *req) {
  if (!on_uthread() || from_runtime(ret) || (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC))
    return false;
  if (req->tv_nsec < 0 || req->tv_nsec >= 1000000000 || req->tv_sec < 0) return false;
  // With cancellation disabled (only this thread can enable it) the sleep
  // need not be interruptible: the caller's sleep on the ring will do.
  struct upthread *me = upthread_self();
  if (me == nullptr || (me->cancel.load(std::memory_order_relaxed) &
                        (upthread_impl::kCancelDisabled | upthread_impl::kCancelExiting)))
    return false;
  testcancel();
  timespec abs = *req;
  if (!(flags & TIMER_ABSTIME)) {
    // A relative sleep: the deadline on clock.
    clock_gettime(clock, &abs);
    abs.tv_sec += req->tv_sec;
    abs.tv_nsec += req->tv_nsec;
    if (abs.tv_nsec >= 1000000000) {
      abs.tv_nsec -= 1000000000;
      abs.tv_sec += 1;
    }
  }
  // A timed wait on a word nobody else wakes: only the deadline or a
  // cancellation (its kick) ends it.
  int never = 0;
  for (;;) {
    int r = futex_wait_cancellable(&never, 0, &abs, clock);
    if (r == ECANCELED) testcancel();
    if (r == ETIMEDOUT) return true;
  }
}

}  // namespace parlib::detail::preload

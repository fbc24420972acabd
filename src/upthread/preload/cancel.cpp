// libupthread-preload.so: cancellation of upthreads: pthread_cancel, the
// cancel state and type, pthread_testcancel, asynchronous cancellation,
// and the sleeps as cancellation points.
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include <upthread/upthread.h>

#include "common/clock.h"
#include "event/foreign_call.h"
#include "shim.h"
#include "upthread/upthread_internal.h"

using namespace parlib::detail::preload;

namespace parlib::detail::preload {
namespace {

// Asynchronous cancellation: a upthread with the asynchronous type acts on
// a cancellation where it is, as glibc's SIGCANCEL handler does: when its
// type or state makes one due (setcanceltype, setcancelstate), and when
// it runs again after a notification or preemption tick interrupted it at
// a safe point (parlib's resume hook; not inside the C library, the
// loader, the C++ runtime or the runtime itself, which may hold locks).
// There exit_self unwinds from the handler through the kernel's signal
// frame into the interrupted frames, running their cleanup handlers and
// destructors, as natively.
void async_cancel_point() {
  struct upthread *me = upthread_self();
  if (me != nullptr && (me->cancel.load(std::memory_order_relaxed) & upthread_impl::kCancelAsync) &&
      upthread_impl::cancel_due(me))
    exit_self(PTHREAD_CANCELED);
}

void on_resume(struct uthread *) {
  if (!g_native_only.load(std::memory_order_relaxed)) async_cancel_point();
}

__attribute__((constructor)) void install_resume_hook() { __parlib_set_resume_hook(on_resume); }

}  // namespace
}  // namespace parlib::detail::preload

// Cancellation of a upthread: libupthread's request and state
// (upthread_cancel wakes a target blocked in a cancellation point); the
// shim's cancellation points act on it by unwinding (exit_self), and so
// does an asynchronous thread where it runs (async_cancel_point).
SHIM_EXPORT int pthread_cancel(pthread_t t) {
  if (!is_upthread_handle(t)) return REAL(pthread_cancel)(t);
  return upthread_cancel(upthread_of(t));
}
SHIM_EXPORT int pthread_setcancelstate(int state, int *old) {
  if (!on_uthread()) return REAL(pthread_setcancelstate)(state, old);
  int err = upthread_setcancelstate(state, old);
  if (err == 0 && state == PTHREAD_CANCEL_ENABLE) async_cancel_point();
  return err;
}
SHIM_EXPORT int pthread_setcanceltype(int type, int *old) {
  if (!on_uthread()) return REAL(pthread_setcanceltype)(type, old);
  int err = upthread_setcanceltype(type, old);
  if (err == 0 && type == PTHREAD_CANCEL_ASYNCHRONOUS) async_cancel_point();
  return err;
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

int cancellable_sleep(void *ret, clockid_t clock, int flags, const timespec *req, timespec *rem) {
  if (!on_uthread() || from_runtime(ret) || (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC))
    return -1;
  if (!parlib::detail::timespec_is_valid(*req)) return -1;
  testcancel();
  timespec abs = *req;
  if (!(flags & TIMER_ABSTIME)) {
    // A relative sleep: the deadline on clock.
    abs = parlib::detail::timespec_add(parlib::detail::clock_now(clock), *req);
  }
  // A timed wait on a word nobody else wakes: only the deadline, a
  // cancellation or a signal (their kicks) ends it.
  int never = 0;
  for (;;) {
    int r = futex_wait_cancellable(&never, 0, &abs, clock);
    if (r == ECANCELED) testcancel();
    if (r == ETIMEDOUT) return 0;
    if (r == EINTR || r == ERESTART) {
      if (rem != nullptr && !(flags & TIMER_ABSTIME)) {
        // Modular difference read as signed: a deadline passed is 0 left.
        int64_t left = static_cast<int64_t>(parlib::detail::timespec_to_ns(abs) -
                                            parlib::detail::clock_ns(clock));
        *rem = parlib::detail::ns_to_timespec(left < 0 ? 0 : static_cast<uint64_t>(left));
      }
      return EINTR;
    }
  }
}

}  // namespace parlib::detail::preload

// libupthread-preload.so: process-shared synchronization objects
// (docs/preload.md, "Process-shared objects").
//
// A process-shared mutex, condvar, rwlock, barrier or semaphore is glibc's,
// in glibc's layout and with glibc's algorithms: the other processes may be
// native programs (or this program's fork children, which run natively),
// so the words must mean what glibc means by them, and glibc's
// initialisers (pthread_*attr_setpshared, sem_init(s, 1, n), sem_open) mark
// the objects so that the shim tells them from its own. Their waits are
// kernel futex waits on shared memory, issued by glibc's code from inside
// glibc, where only the vcore's task can wait. So a upthread's blocking call
// on one is a foreign call (event/foreign_call.h): the runtime does not
// signal the task while it waits (a notification would end glibc's timed
// futex waits with EINTR, and sem_timedwait passes that on), and the
// stuck-vcore monitor runs the vcore's other upthreads on a spare vcore
// meanwhile. The calls that do not wait (unlock, post, signal) and
// non-upthread callers go to glibc directly.
#ifndef PARLIB_UPTHREAD_PRELOAD_PSHARED_H
#define PARLIB_UPTHREAD_PRELOAD_PSHARED_H

#include "event/foreign_call.h"
#include "shim.h"

namespace parlib::detail::preload {

// Calls call() (glibc's function on a process-shared object), as a foreign
// call when the caller is a upthread. errno is the call's.
template <typename Call>
auto shared_wait(Call call) {
  if (!on_uthread()) return call();
  int token = __parlib_foreign_call_begin();
  auto r = call();
  __parlib_foreign_call_end(token);
  return r;
}

}  // namespace parlib::detail::preload

#endif

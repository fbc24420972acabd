// The library's own event handlers. Each layer that owns an event type
// registers its handler here, so that event_lib_init sets them all before
// the first event can arrive.
#include "event/event_internal.h"

#if __has_include("syscall/syscall_internal.h")
#include "syscall/syscall_internal.h"
#define PARLIB_HAVE_SYSCALL_LAYER 1
#endif

namespace parlib::detail {

void install_default_event_handlers() {
#ifdef PARLIB_HAVE_SYSCALL_LAYER
  // EV_SYSCALL (uthread_runnable on the descriptor's uthread), the
  // backend, and the idle waiter that sleeps on the vcore's ring.
  syscall_layer_init();
#endif
}

}  // namespace parlib::detail

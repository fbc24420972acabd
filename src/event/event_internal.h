// The event layer's internal interface.
#ifndef PARLIB_EVENT_EVENT_INTERNAL_H
#define PARLIB_EVENT_EVENT_INTERNAL_H

namespace parlib::detail {

// The syscall layer's completion reaper, run by handle_events().
extern void (*g_reap_syscalls_hook)();

// Installs the library's own handlers (EV_ALARM, EV_SYSCALL) where those
// layers are built in; called once by event_lib_init.
void install_default_event_handlers();

}  // namespace parlib::detail

#endif  // PARLIB_EVENT_EVENT_INTERNAL_H

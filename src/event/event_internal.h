// The event layer's internal interface.
#ifndef PARLIB_EVENT_EVENT_INTERNAL_H
#define PARLIB_EVENT_EVENT_INTERNAL_H

#include <parlib/event.h>

#include <cstdint>

namespace parlib::detail {

// send_event for any vcore, spare vcores included (send_event itself takes
// only the ids of max_vcores(), as its contract says).
int send_event_to_any(struct event_msg *msg, unsigned int ev_type, uint32_t vcoreid);

// On vcore id's own task: stops its notification retry timer. Returns
// true if it was armed (its signal may be pending on the task now).
bool disarm_retry_timer(uint32_t id);

// The syscall layer's completion reaper, run by handle_events().
extern void (*g_reap_syscalls_hook)();

// Installs the library's own handlers (EV_ALARM, EV_SYSCALL) where those
// layers are built in; called once by event_lib_init.
void install_default_event_handlers();

}  // namespace parlib::detail

#endif  // PARLIB_EVENT_EVENT_INTERNAL_H

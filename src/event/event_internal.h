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

// A layer above that owns an event type (the syscall layer: EV_SYSCALL)
// or must start with the event layer adds its start here: event_lib_init
// runs the hooks once, in the order added, after the queues exist and
// before the notification handler is installed, so that every handler is
// set before the first event can arrive. Added at load time.
void add_event_lib_init_hook(void (*hook)());

}  // namespace parlib::detail

#endif  // PARLIB_EVENT_EVENT_INTERNAL_H

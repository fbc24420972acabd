// The alarm service's internal interface (see alarm.cpp for the design).
#ifndef PARLIB_EVENT_ALARM_INTERNAL_H
#define PARLIB_EVENT_ALARM_INTERNAL_H

#include <parlib/alarm.h>
#include <parlib/event.h>

#include <cstdint>

namespace parlib::detail {

// Starts the service if it is not running: registers the EV_ALARM handler,
// creates the timerfd and the service thread. Idempotent and thread safe
// (std::call_once). start_alarm() calls it; a layer that wants the thread
// created early (outside vcore context) may call it too. Aborts with a
// message if the kernel refuses the timer or the thread.
void alarm_service_init();

// The EV_ALARM handler: runs the callback of the waiter in msg->ev_arg3.
// Vcore context (or a uthread with notifications disabled inside
// handle_events); never allocates nor blocks.
void alarm_handle_event(struct event_msg *msg, unsigned int ev_type);

// Microseconds on CLOCK_MONOTONIC, rounded down / up.
uint64_t alarm_now_usec();
uint64_t alarm_now_usec_ceil();

}  // namespace parlib::detail

#endif  // PARLIB_EVENT_ALARM_INTERNAL_H

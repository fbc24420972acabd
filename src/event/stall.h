// Stall reports (PARLIB_STALL_MS=N; docs/debugging.md): a uthread that keeps
// its vcore longer than N ms without a scheduling point is reported once per
// stall, from the notification handler on its own vcore.
#ifndef PARLIB_EVENT_STALL_H
#define PARLIB_EVENT_STALL_H

#include <parlib/uthread.h>

#include <atomic>
#include <cstdint>

namespace parlib::detail {

// Reads PARLIB_STALL_MS and, when set, starts the monitor thread. Once, from
// the event layer's initialisation, after the notification handler is in.
void init_stall_detector();

// Nonzero while the detector is on: on_notify then calls stall_report_due.
extern std::atomic<bool> g_stall_detector_on;

// The notification handler, on vcore vcoreid's own task, interrupted uth at
// a safe point: reports uth if the monitor asked for a report of it.
void stall_report_due(uint32_t vcoreid, struct uthread *uth, uintptr_t pc);

}  // namespace parlib::detail

#endif  // PARLIB_EVENT_STALL_H

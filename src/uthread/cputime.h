// Per-uthread CPU time (uthread_enable_cpu_accounting): the switch points
// of uthread.cpp charge the uthread that ran since the previous one.
#ifndef PARLIB_UTHREAD_CPUTIME_H
#define PARLIB_UTHREAD_CPUTIME_H

#include <atomic>

#include "vcore/vcore_internal.h"

namespace parlib::detail::cputime {

extern std::atomic<bool> g_on;

// Charges vc's current uthread up to now; next runs on vc from here on
// (nullptr: vcore context). exact: read the task's clock whatever its age.
void switch_point_slow(Vcore &vc, struct uthread *next, bool exact);

// Called on vc's own task at every switch, with notifications off.
inline void switch_point(Vcore &vc, struct uthread *next) {
  if (g_on.load(std::memory_order_relaxed)) switch_point_slow(vc, next, false);
}

}  // namespace parlib::detail::cputime

#endif

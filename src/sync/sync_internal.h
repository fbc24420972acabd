// Internal helpers shared by the sync layer (src/sync/). Invariant
// violations use PARLIB_CHECK / raw_fatal from common/raw_log.h.
#pragma once

#include <parlib/atomic.h>
#include <parlib/spinlock.h>

#include <cstddef>

#include "common/raw_log.h"

namespace parlib::detail {

// SpinWait: the body of every busy-wait loop in this layer. The first
// SPINLOCK_SPINS_BEFORE_YIELD calls execute `pause`; after that each call
// gives the CPU back to the kernel (sched_yield), so a lock holder or
// successor whose kernel task lost its CPU (more threads than CPUs, or a
// plain thread sharing a vcore's CPU) gets to run instead of us burning a
// whole time slice.
class SpinWait {
 public:
  void once() {
    if (spins_ < SPINLOCK_SPINS_BEFORE_YIELD) {
      ++spins_;
      cpu_relax();
    } else {
      yield_cpu();
    }
  }

 private:
  static void yield_cpu();
  unsigned spins_ = 0;
};

}  // namespace parlib::detail

// Helpers shared by the sync tests.
#pragma once

#include <sched.h>
#include <unistd.h>

namespace sync_test_util {

// A std::thread made by a uthread inherits the CPU mask of the vcore's
// kernel task, i.e. one CPU. Stress tests call this first in each plain
// thread so that their threads really run in parallel: it restores the
// process's mask (the main kernel task keeps it).
inline void unpin_from_vcore() {
  cpu_set_t cpus;
  if (sched_getaffinity(getpid(), sizeof cpus, &cpus) == 0)
    sched_setaffinity(0, sizeof cpus, &cpus);
}

}  // namespace sync_test_util

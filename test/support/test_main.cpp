// main() of every parlib test binary: the FIFO test scheduler takes over
// main (thread0), then Google Test runs on it as a uthread.
#include <gtest/gtest.h>
#include <parlib/vcore.h>

#include <cstdio>
#include <cstdlib>

#include "support/fifo_sched.h"

int main(int argc, char **argv) {
  testing::InitGoogleTest(&argc, argv);
  // Death tests re-run this binary for the dying statement instead of
  // forking a process that has several vcore tasks.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  if (vcore_lib_init() != 0) {
    perror("vcore_lib_init");
    return 2;
  }
  parlib_test::fifo_init(max_vcores());
  return RUN_ALL_TESTS();
}

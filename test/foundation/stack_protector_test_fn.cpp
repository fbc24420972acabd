// Built with -fstack-protector-all (see CMakeLists.txt): the canary check
// must pass although the function yields between storing and checking it.
#include <cstring>

#include "support/fifo_sched.h"

extern "C" int protected_function_that_yields(int n) {
  char buffer[64];
  memset(buffer, 0, sizeof buffer);
  int sum = 0;
  for (int i = 1; i <= n; ++i) {
    buffer[i % sizeof buffer] = static_cast<char>(i);
    parlib_test::fifo_yield();
    sum += i;
  }
  return sum + buffer[0] * 0;
}

// Helpers shared by the foundation tests.
#ifndef PARLIB_TEST_FOUNDATION_TEST_UTIL_H
#define PARLIB_TEST_FOUNDATION_TEST_UTIL_H

#include <chrono>

#include "support/fifo_sched.h"

namespace parlib_test {

// Spins (yielding the uthread) until pred() holds or the deadline passes;
// returns pred()'s last value, so a bug fails the test instead of hanging.
template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    fifo_yield();
  }
  return true;
}

// Sets the scheduler's vcore target for one test and restores it after.
class ScopedTargetVcores {
 public:
  explicit ScopedTargetVcores(int n) : saved_(fifo_target_vcores()) { fifo_set_target_vcores(n); }
  ~ScopedTargetVcores() { fifo_set_target_vcores(saved_); }

 private:
  int saved_;
};

}  // namespace parlib_test

#endif

// The runtime's internal spinlock: test-and-test-and-set.
//
// For the runtime's own short critical sections (a run queue, the alarm
// heap, a pool's counters), in any context: it never blocks and never
// allocates. It knows nothing of notifications: a holder in uthread
// context must keep them disabled (uth_disable_notifs) so that it is not
// switched out holding the lock and the next taker on its vcore does not
// spin forever; vcore context has them disabled already. The public
// spinlock_t/spin_pdr_lock_t (src/sync/locks.cpp) are the API's locks for
// 2LSs and applications.
//
// kSpinsBeforeYield: 0 spins on the CPU only; N gives the CPU away
// (sched_yield, which never blocks) after every N polls, for locks whose
// holder may be a descheduled kernel task (the runtime's helper threads,
// a vcore on an oversubscribed CPU) that waits for this very CPU.
// Word: the lock word's type; its size is part of the layout where a
// debugger reads the word (src/uthread/debug_registry.cpp).
#ifndef PARLIB_COMMON_SPINLOCK_H
#define PARLIB_COMMON_SPINLOCK_H

#include <sched.h>

#include <atomic>

#include "vcore/arch/arch.h"

namespace parlib::detail {

template <unsigned kSpinsBeforeYield = 0, typename Word = bool>
class SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock &) = delete;
  SpinLock &operator=(const SpinLock &) = delete;

  // Inline fast path: one exchange when the lock is free.
  void lock() noexcept {
    // acquire: the previous holder's critical section happens-before ours.
    while (word_.exchange(Word{1}, std::memory_order_acquire) != Word{0}) wait_while_held();
  }

  // Takes the lock if it is free; never spins.
  bool try_lock() noexcept {
    // relaxed: a hint only; the exchange gives the ordering.
    return word_.load(std::memory_order_relaxed) == Word{0} &&
           word_.exchange(Word{1}, std::memory_order_acquire) == Word{0};
  }

  void unlock() noexcept {
    // release: publishes the critical section to the next acquirer.
    word_.store(Word{0}, std::memory_order_release);
  }

 private:
  // Out of line: only contended acquisitions get here. Spins on a plain
  // load (relaxed: a hint; the caller's exchange orders) so that the line
  // stays shared while it is held, instead of bouncing it with writes.
  [[gnu::noinline]] void wait_while_held() noexcept {
    for (unsigned spins = 1; word_.load(std::memory_order_relaxed) != Word{0}; ++spins) {
      cpu_pause();
      if constexpr (kSpinsBeforeYield != 0) {
        if (spins % kSpinsBeforeYield == 0) sched_yield();
      }
    }
  }

  std::atomic<Word> word_{Word{0}};
};

}  // namespace parlib::detail

#endif  // PARLIB_COMMON_SPINLOCK_H

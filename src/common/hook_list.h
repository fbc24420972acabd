// A fixed list of hooks: how a lower layer lets the layers above it plug
// in (start with it, run on its paths) without knowing them.
//
// The lower layer owns a HookList and calls run() or any() where the hooks
// belong; an upper layer add()s its function, at load time (a constructor)
// or at its own initialisation. Slots fill in order and are never emptied,
// so a reader walks them without a lock and stops at the first empty one.
// Constant-initialised: usable before any constructor runs. Reading costs
// one load per registered hook (plain loads on x86-64), which is what the
// single function pointers it replaces cost.
#ifndef PARLIB_COMMON_HOOK_LIST_H
#define PARLIB_COMMON_HOOK_LIST_H

#include <atomic>

#include "common/raw_log.h"

namespace parlib::detail {

template <typename Fn, int kSlots>
class HookList {
 public:
  constexpr HookList() = default;
  HookList(const HookList &) = delete;
  HookList &operator=(const HookList &) = delete;

  // Appends fn; aborts (naming what) when all slots are taken, a static
  // limit that only a change of the code can exceed. Any thread.
  // seq_cst: a registration and a reader's later look are totally ordered
  // with the registering layer's own publications (vcore task hooks rely
  // on it, see add_vcore_task_hook); the function's code and data are
  // visible to every reader that loads it.
  void add(Fn fn, const char *what) {
    for (auto &slot : slots_) {
      Fn expected = nullptr;
      if (slot.compare_exchange_strong(expected, fn, std::memory_order_seq_cst)) return;
    }
    raw_fatal("%s: more than %d hooks", what, kSlots);
  }

  // Calls every hook, in the order they were added.
  template <typename... Args>
  void run(Args... args) const {
    for (auto &slot : slots_) {
      Fn fn = slot.load(std::memory_order_seq_cst);
      if (fn == nullptr) return;
      fn(args...);
    }
  }

  // Calls the hooks in order until one returns true; returns whether one did.
  template <typename... Args>
  bool any(Args... args) const {
    for (auto &slot : slots_) {
      Fn fn = slot.load(std::memory_order_seq_cst);
      if (fn == nullptr) return false;
      if (fn(args...)) return true;
    }
    return false;
  }

  bool empty() const { return slots_[0].load(std::memory_order_seq_cst) == nullptr; }

 private:
  std::atomic<Fn> slots_[kSlots] = {};
};

}  // namespace parlib::detail

#endif  // PARLIB_COMMON_HOOK_LIST_H

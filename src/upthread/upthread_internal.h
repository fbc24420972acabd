// upthread's internal interface: the thread type and the scheduler.
#ifndef PARLIB_UPTHREAD_UPTHREAD_INTERNAL_H
#define PARLIB_UPTHREAD_UPTHREAD_INTERNAL_H

#include <parlib/uthread.h>
#include <signal.h>
#include <upthread/upthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/cache_line.h"

// One upthread. Cache-line aligned so that two threads' hot fields (the
// uthread's saved registers, the run-queue link) never share a line.
struct alignas(parlib::detail::kCacheLineSize) upthread {
  struct uthread uth;  // first: the library sees a struct uthread
  struct upthread *next = nullptr;
  void *(*start)(void *) = nullptr;
  void *arg = nullptr;
  void *retval = nullptr;
  // kJoinable, kExited, kDetached, or the joiner's address.
  std::atomic<uintptr_t> join_state{0};
  uint32_t last_vcore = 0;
  bool is_thread0 = false;
  // Set by enqueue_new: last_vcore is a placement (round-robin over the
  // queues), to be honoured even if that vcore is not online yet.
  bool placed_new = false;
  void *stack = nullptr;
  size_t stack_size = 0;
  size_t guard_size = 0;
  sigset_t sigmask{};
  std::atomic<uint64_t> pending_signals{0};  // bit n-1: signal n, from upthread_kill
  // While in a foreign call: sigmask is the task's, which was task_mask
  // (foreign_signals.cpp).
  bool mask_loaded = false;
  sigset_t task_mask{};
  // Cancellation (threads.cpp): kCancel* bits, and the cancellable wait in
  // progress (kWait*) with how upthread_cancel wakes it: kick(kick_arg).
  std::atomic<uint32_t> cancel{0};
  std::atomic<uint32_t> cwait{0};
  void (*cwait_kick)(void *) = nullptr;
  void *cwait_arg = nullptr;
};

namespace parlib::detail::upthread_impl {

constexpr uintptr_t kJoinable = 0;
constexpr uintptr_t kExited = 1;
constexpr uintptr_t kDetached = 2;

// Cancellation bits. Pending: upthread_cancel was called. Disabled and
// Async: the thread's state and type. Exiting: the thread is on its way out
// (acting on a cancellation or exiting), so cancellation points no longer act.
constexpr uint32_t kCancelPending = 1;
constexpr uint32_t kCancelDisabled = 2;
constexpr uint32_t kCancelAsync = 4;
constexpr uint32_t kCancelExiting = 8;

// A cancellable wait's progress, in upthread::cwait: a state (low byte) and
// a generation (the rest, bumped by each wait, so that a late step of an
// old wait cannot move a new one). Only the thread itself moves it out of
// kWaitNone. Its block moves kWaitPreparing to kWaitBlocked once the thread
// is on its wait queue (thread_has_blocked, under the queue's lock; join_cb
// for a join); upthread_cancel moves kWaitBlocked to kWaitKicking, calls
// the kick, then kWaitKicked. kWaitNested: the thread blocks on something
// else inside the wait's preparation (cancel_wait_suspend).
constexpr uint32_t kWaitNone = 0;
constexpr uint32_t kWaitPreparing = 1;
constexpr uint32_t kWaitBlocked = 2;
constexpr uint32_t kWaitKicking = 3;
constexpr uint32_t kWaitKicked = 4;
constexpr uint32_t kWaitNested = 5;
constexpr uint32_t kWaitStateMask = 0xff;
inline uint32_t wait_state(uint32_t w) { return w & kWaitStateMask; }
inline uint32_t with_state(uint32_t w, uint32_t state) { return (w & ~kWaitStateMask) | state; }

// True when t has a cancellation pending that it must act on at a
// cancellation point (enabled, not already exiting).
inline bool cancel_due(const struct upthread *t) {
  // seq_cst: pairs with upthread_cancel's fetch_or and its load of cwait
  // (Dekker): either the thread sees the request here, or the canceller
  // sees the wait published by cancel_wait_begin.
  uint32_t c = t->cancel.load(std::memory_order_seq_cst);
  return (c & (kCancelPending | kCancelDisabled | kCancelExiting)) == kCancelPending;
}

// Starts a cancellable wait of t (the caller): publishes kick(arg), which
// makes the coming block end (a futex wake, ...; it may run after the wait
// has ended, so it must be harmless then). Returns false, publishing
// nothing, when a cancellation is due: the caller acts on it instead of
// waiting. The wait is published even with cancellation disabled:
// upthread_kill ends it too. *token (if given): cwait's value while this
// wait prepares.
inline bool cancel_wait_begin(struct upthread *t, void (*kick)(void *), void *arg,
                              uint32_t *token = nullptr) {
  uint32_t w =
      with_state(t->cwait.load(std::memory_order_relaxed) + (kWaitStateMask + 1), kWaitPreparing);
  if (token != nullptr) *token = w;
  t->cwait_kick = kick;
  t->cwait_arg = arg;
  t->cwait.store(w, std::memory_order_seq_cst);
  if (cancel_due(t)) {
    t->cwait.store(with_state(w, kWaitNone), std::memory_order_relaxed);
    return false;
  }
  return true;
}

// Ends the wait begun by cancel_wait_begin (after the block, however it
// ended). Waits out a canceller that is running the kick, which may still
// use the wait object.
inline void cancel_wait_end(struct upthread *t) {
  for (;;) {
    uint32_t w = t->cwait.load(std::memory_order_acquire);
    if (wait_state(w) == kWaitNone) return;
    if (wait_state(w) == kWaitKicking) {
      upthread_yield();  // the canceller may be queued on this vcore
      continue;
    }
    if (t->cwait.compare_exchange_weak(w, with_state(w, kWaitNone), std::memory_order_acq_rel))
      return;
  }
}

// Around a block inside a cancellable wait's preparation that is not the
// wait itself (a lazy initialisation, say): a canceller keeps waiting for
// the real block meanwhile. Returns what cancel_wait_resume restores.
inline uint32_t cancel_wait_suspend(struct upthread *t) {
  uint32_t w = t->cwait.load(std::memory_order_relaxed);
  if (wait_state(w) != kWaitPreparing) return 0;
  t->cwait.store(with_state(w, kWaitNested), std::memory_order_relaxed);
  return w;
}
inline void cancel_wait_resume(struct upthread *t, uint32_t saved) {
  if (saved != 0) t->cwait.store(saved, std::memory_order_relaxed);
}

// True when t has a signal pending that its mask does not block: a wait
// that upthread_kill kicked ends, and the thread runs the handlers.
// seq_cst: pairs with upthread_kill's fetch_or and its load of cwait, as
// cancel_due does with upthread_cancel's.
inline bool signal_due(const struct upthread *t) {
  for (uint64_t p = t->pending_signals.load(std::memory_order_seq_cst); p != 0; p &= p - 1)
    if (!sigismember(&t->sigmask, __builtin_ctzll(p) + 1)) return true;
  return false;
}

inline struct upthread *of(struct uthread *uth) { return reinterpret_cast<struct upthread *>(uth); }

// Set up the scheduler and make main thread0 (once, before main()).
void init();
// upthread_yield's fast path: switch straight to the next thread of this
// vcore's queue (one FS-base write, no vcore context). False if the queue
// was empty (the caller keeps running).
bool yield_directly();
// Makes a new thread runnable for the first time, placed round-robin.
void enqueue_new(struct upthread *t);
// Frees a thread that has exited and will not be joined (vcore context or
// the joiner).
void reclaim(struct upthread *t);
// Runs the signal handlers made pending by upthread_kill (uthread context).
// Returns PARLIB_SYSC_INTR_NONE if no handler ran, _RESTART if all that ran
// have SA_RESTART, _EINTR otherwise.
int run_pending_signals(struct upthread *self);
// upthread_kill of t while it waits in a foreign call (foreign_signals.cpp):
// true if the signal was left to t's task (the kernel applies t's mask).
// install_foreign_signal_hooks: at start-up.
bool kill_in_foreign_call(struct upthread *t, int sig);
void install_foreign_signal_hooks();
// schedule_ops.thread_sysc_interrupted: runs what is pending.
int thread_sysc_interrupted(struct uthread *uth);
void count_live(int delta);
// PARLIB_STATS (stats_json.cpp), read once on first use: 0 or unset, 1
// (a table at exit), json (one line of JSON at exit); anything else is
// reported once and means off (the LD_PRELOAD shim exits 2 on it).
enum class StatsMode { kOff, kText, kJson, kInvalid };
StatsMode stats_mode();
void print_stats_json();

// What the stuck-vcore monitor (monitor.cpp) reads and does. vcore_slots():
// max_vcores() plus the spare vcores that have run so far.
int vcore_slots();
uint64_t vcore_switches(uint32_t id);
bool threads_queued();
// Asks spare vcore id to leave at its next scheduling decision (or, with
// retire false, withdraws the request).
void retire_spare(uint32_t id, bool retire = true);
// Moves the threads queued on vcore from (stuck in the kernel) to vcore
// to's queue. Any thread.
void move_queued(uint32_t from, uint32_t to);

// Stacks: cached per-thread mappings with a guard, or slots of a pooled
// region (guard size 0).
void *stack_get(size_t size, size_t guard);
void stack_put(void *stack, size_t size, size_t guard);

}  // namespace parlib::detail::upthread_impl

#endif

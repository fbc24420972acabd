// upthread's internal interface: the thread type and the scheduler.
#ifndef PARLIB_UPTHREAD_UPTHREAD_INTERNAL_H
#define PARLIB_UPTHREAD_UPTHREAD_INTERNAL_H

#include <parlib/uthread.h>
#include <signal.h>
#include <upthread/upthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

// One upthread. Cache-line aligned so that two threads' hot fields (the
// uthread's saved registers, the run-queue link) never share a line.
struct alignas(64) upthread {
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
};

namespace parlib::detail::upthread_impl {

constexpr uintptr_t kJoinable = 0;
constexpr uintptr_t kExited = 1;
constexpr uintptr_t kDetached = 2;

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
void run_pending_signals(struct upthread *self);
void count_live(int delta);

// What the stuck-vcore monitor (monitor.cpp) reads and does. vcore_slots():
// max_vcores() plus the spare vcores.
int vcore_slots();
uint64_t vcore_switches(uint32_t id);
bool threads_queued();
// Asks spare vcore id to leave at its next scheduling decision.
void retire_spare(uint32_t id);

// Stacks: cached per-thread mappings with a guard, or slots of a pooled
// region (guard size 0).
void *stack_get(size_t size, size_t guard);
void stack_put(void *stack, size_t size, size_t guard);

}  // namespace parlib::detail::upthread_impl

#endif

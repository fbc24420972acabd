// A minimal FIFO second-level scheduler for the tests: one global run queue
// shared by every vcore, threads with mmap'd stacks, join, and a target
// number of vcores. It drives the vcore and uthread layers without upthread.
#ifndef PARLIB_TEST_SUPPORT_FIFO_SCHED_H
#define PARLIB_TEST_SUPPORT_FIFO_SCHED_H

#include <parlib/uthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace parlib_test {

struct TestThread {
  struct uthread uth;  // first member, as a 2LS embeds it
  TestThread *next = nullptr;
  void (*fn)(void *) = nullptr;
  void *arg = nullptr;
  void *stack = nullptr;
  size_t stack_size = 0;
  // 0: running, no joiner; 1: exited; otherwise the joiner's uthread.
  std::atomic<uintptr_t> join_state{0};
  std::atomic<uint32_t> last_vcore{0};
};

// Installs the scheduler and turns main into thread0 (uthread_lib_init).
// Call once, from main, before anything else.
void fifo_init(int target_vcores);

// The number of vcores the scheduler keeps busy while it has work (at most
// max_vcores()); idle vcores yield.
void fifo_set_target_vcores(int n);
int fifo_target_vcores();

// Creates a uthread running fn(arg) and makes it runnable. Uthread context.
TestThread *fifo_spawn(void (*fn)(void *), void *arg, size_t stack_size = 64 << 10,
                       const char *name = nullptr);
// Blocks the caller until t has exited, then frees t (its TLS and stack).
void fifo_join(TestThread *t);
// Requeues the caller at the tail of the run queue.
void fifo_yield();

// Counters, for tests that check the scheduler did what they expect.
uint64_t fifo_switches();

}  // namespace parlib_test

#endif  // PARLIB_TEST_SUPPORT_FIFO_SCHED_H

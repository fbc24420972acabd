// A per-vcore FIFO second-level scheduler for the benchmarks: one run queue
// per vcore, no stealing, no vcore requests of its own. It is the setup of
// dissertation section 2.6.3 ("per-vcore run queues ... placed the
// appropriate number of threads into each queue before starting the
// experiment"): a thread lives on its home vcore's queue and only runs
// there, so a yield never touches another vcore's cache lines.
//
// Rules the users of this scheduler follow:
//  - the benchmark asks for its vcores itself (vcore_request_total) after it
//    has queued their threads; a vcore whose queue is empty yields;
//  - the only wakeup that crosses vcores is an exiting thread waking its
//    joiner: the joiner then moves to the waker's vcore, which is online
//    by definition (its home vcore may have yielded meanwhile).
#ifndef PARLIB_BENCH_PERCORE_SCHED_H
#define PARLIB_BENCH_PERCORE_SCHED_H

#include <parlib/uthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace parlib_bench {

// Alignment of data that different vcores write: two cache lines, because
// x86's adjacent-line prefetcher fetches lines in 128-byte pairs, so data
// one line apart can still ping-pong between cores.
inline constexpr size_t kNoFalseSharing = 2 * PARLIB_CACHE_LINE_SIZE;

struct alignas(kNoFalseSharing) PcThread {
  struct uthread uth;        // first member, as a 2LS embeds it
  PcThread *next = nullptr;  // run-queue link, guarded by the queue's lock
  uint32_t home = 0;         // the vcore whose queue holds this thread
  void (*fn)(void *) = nullptr;
  void *arg = nullptr;
  void *stack = nullptr;
  size_t stack_size = 0;
  // 0: running, nobody joined; 1: exited; otherwise the joiner's PcThread.
  std::atomic<uintptr_t> join_state{0};
};

// Installs the scheduler and turns main into thread0 (uthread_lib_init),
// which stays on the vcore it starts on (returned by pcs_thread0_vcore()).
// Call once, from main, before anything else of this file.
void pcs_init();

// The vcore thread0 started on (its home vcore).
uint32_t pcs_thread0_vcore();

// Creates a uthread running fn(arg) on vcore home's queue and makes it
// runnable. Uthread context. Aborts when home >= max_vcores() or memory
// runs out.
PcThread *pcs_spawn(void (*fn)(void *), void *arg, uint32_t home, size_t stack_size = 64 << 10,
                    const char *name = nullptr);

// Blocks the caller until t has exited, then frees t. Uthread context.
void pcs_join(PcThread *t);

}  // namespace parlib_bench

#endif  // PARLIB_BENCH_PERCORE_SCHED_H

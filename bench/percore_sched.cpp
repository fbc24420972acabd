#include "percore_sched.h"

#include <parlib/vcore.h>

#include <cstdio>
#include <cstdlib>
#include <new>

namespace parlib_bench {
namespace {

// One run queue per vcore, each on its own cache lines so that vcores
// yielding side by side never share one.
struct alignas(kNoFalseSharing) RunQueue {
  std::atomic<bool> locked{false};
  PcThread *head = nullptr;
  PcThread *tail = nullptr;

  // Test-and-test-and-set: spin on a plain load so that a waiter does not
  // pull the line away from the holder with failed exchanges. Acquire on
  // the exchange pairs with the release in unlock (the queue links are
  // published by the lock). Callers in uthread context must hold
  // notifications off (lock_any_context), or a notification handler on the
  // same vcore could spin on a lock its interrupted holder never releases.
  void lock() {
    while (locked.exchange(true, std::memory_order_acquire))
      while (locked.load(std::memory_order_relaxed)) __builtin_ia32_pause();
  }
  void unlock() { locked.store(false, std::memory_order_release); }

  void push_locked(PcThread *t) {
    t->next = nullptr;
    if (tail != nullptr)
      tail->next = t;
    else
      head = t;
    tail = t;
  }
  PcThread *pop_locked() {
    PcThread *t = head;
    if (t != nullptr) {
      head = t->next;
      if (head == nullptr) tail = nullptr;
    }
    return t;
  }
};

RunQueue *g_queues = nullptr;  // max_vcores() of them, indexed by vcore id
uint32_t g_nqueues = 0;
PcThread g_thread0;

PcThread *of(struct uthread *uth) { return reinterpret_cast<PcThread *>(uth); }

// Vcore context: notifications are already off, so the bare lock will do
// (this is the yield path, where two extra library calls would show).
void push_from_vcore(PcThread *t) {
  RunQueue &q = g_queues[t->home];
  q.lock();
  q.push_locked(t);
  q.unlock();
}

// Any context: thread_runnable also runs in uthread context (a spawn, or a
// wakeup issued by a uthread), where the lock needs notifications off.
void push_any_context(PcThread *t) {
  uth_disable_notifs();
  push_from_vcore(t);
  uth_enable_notifs();
}

void sched_entry() {
  RunQueue &q = g_queues[vcore_id()];
  q.lock();
  PcThread *t = q.pop_locked();
  q.unlock();
  if (t != nullptr) run_uthread(&t->uth);
  // Nothing queued here and no stealing: give the vcore back. A thread can
  // only be queued here again by this vcore's own callbacks (see the rules
  // in percore_sched.h), so no work is stranded.
  vcore_yield();
}

void thread_runnable(struct uthread *uth) { push_any_context(of(uth)); }

void thread_paused(struct uthread *uth) { push_from_vcore(of(uth)); }

void thread_blockon_sysc(struct uthread *, void *) {}
void thread_has_blocked(struct uthread *, int) {}

void thread_refl_fault(struct uthread *uth, int signo, int code, void *addr) {
  fprintf(stderr, "percore_sched: uthread %p faulted: signal %d code %d addr %p\n",
          static_cast<void *>(uth), signo, code, addr);
  abort();
}

struct schedule_ops g_ops = {
    sched_entry,        thread_runnable,   thread_paused, thread_blockon_sysc,
    thread_has_blocked, thread_refl_fault, nullptr};

// Runs in vcore context on the exiting thread's vcore, after the thread
// stopped for good.
void exit_callback(struct uthread *uth, void *) {
  uintptr_t joiner = of(uth)->join_state.exchange(1, std::memory_order_acq_rel);
  if (joiner > 1) {
    auto *j = reinterpret_cast<PcThread *>(joiner);
    // The joiner's home vcore may have run dry and yielded; this one is
    // online and about to run sched_entry, so the joiner moves here.
    j->home = vcore_id();
    uthread_runnable(&j->uth);
  }
}

void thread_main() {
  PcThread *self = of(uthread_self());
  self->fn(self->arg);
  uthread_run_destructors();
  uthread_yield(false, exit_callback, nullptr);
}

}  // namespace

void pcs_init() {
  int n = max_vcores();
  if (n <= 0) {
    fprintf(stderr, "percore_sched: vcore_lib_init failed (check PARLIB_VCORES)\n");
    exit(1);
  }
  g_nqueues = static_cast<uint32_t>(n);
  g_queues = new RunQueue[g_nqueues];
  sched_ops = &g_ops;
  uthread_lib_init(&g_thread0.uth);
  // thread0 is never queued before it first yields, so its home is
  // simply where the library resumed it.
  g_thread0.home = vcore_id();
}

uint32_t pcs_thread0_vcore() { return g_thread0.home; }

PcThread *pcs_spawn(void (*fn)(void *), void *arg, uint32_t home, size_t stack_size,
                    const char *name) {
  if (home >= g_nqueues) {
    fprintf(stderr, "percore_sched: vcore %u does not exist (max_vcores() = %u)\n", home,
            g_nqueues);
    abort();
  }
  auto *t = new PcThread;
  t->fn = fn;
  t->arg = arg;
  t->home = home;
  t->stack_size = stack_size;
  t->stack = uthread_stack_alloc(stack_size, 4096);
  if (t->stack == nullptr) {
    perror("percore_sched: uthread_stack_alloc");
    abort();
  }
  uthread_init(&t->uth);
  uthread_set_name(&t->uth, name);
  init_uthread_ctx(&t->uth, thread_main, t->stack, stack_size);
  uthread_runnable(&t->uth);
  return t;
}

void pcs_join(PcThread *t) {
  if (t->join_state.load(std::memory_order_acquire) != 1) {
    uthread_yield(
        true,
        [](struct uthread *joiner, void *arg) {
          auto *target = static_cast<PcThread *>(arg);
          uintptr_t expected = 0;
          // Publish ourselves as the joiner unless the target exited while
          // we were switching out; then we wake ourselves here.
          if (!target->join_state.compare_exchange_strong(
                  expected, reinterpret_cast<uintptr_t>(joiner), std::memory_order_acq_rel)) {
            of(joiner)->home = vcore_id();
            uthread_runnable(joiner);
          }
        },
        t);
  }
  uthread_cleanup(&t->uth);
  uthread_stack_free(t->stack, t->stack_size, 4096);
  delete t;
}

}  // namespace parlib_bench

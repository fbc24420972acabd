#include "support/fifo_sched.h"

#include <parlib/vcore.h>

#include <cstdio>
#include <cstdlib>

namespace parlib_test {
namespace {

// The run queue. Its lock is taken with notifications disabled, because
// thread_runnable runs in uthread context too (a wakeup from a uthread).
std::atomic_flag g_lock = ATOMIC_FLAG_INIT;
TestThread *g_head = nullptr;
TestThread *g_tail = nullptr;
std::atomic<int> g_target{1};
std::atomic<uint64_t> g_switches{0};
TestThread g_thread0;

void lock() {
  uth_disable_notifs();
  while (g_lock.test_and_set(std::memory_order_acquire)) __builtin_ia32_pause();
}
void unlock() {
  g_lock.clear(std::memory_order_release);
  uth_enable_notifs();
}

TestThread *of(struct uthread *uth) { return reinterpret_cast<TestThread *>(uth); }

// Returns whether the queue was empty.
bool push(TestThread *t) {
  t->next = nullptr;
  lock();
  bool was_empty = g_head == nullptr;
  if (g_tail != nullptr)
    g_tail->next = t;
  else
    __atomic_store_n(&g_head, t, __ATOMIC_RELAXED);  // read by has_queued_work unlocked
  g_tail = t;
  unlock();
  return was_empty;
}

// Vcore context of this vcore's task: false from the moment sched_entry
// found the queue empty until it next picks a thread. Meanwhile the vcore
// is idle or on its way from vcore_entry to sched_entry, so a thread made
// runnable here (an event handler in vcore_entry's hook: a completion, an
// alarm) is the one this vcore runs next.
thread_local bool t_committed = true;

TestThread *pop() {
  lock();
  TestThread *t = g_head;
  if (t != nullptr) {
    __atomic_store_n(&g_head, t->next, __ATOMIC_RELAXED);
    if (g_head == nullptr) g_tail = nullptr;
  }
  unlock();
  return t;
}

void sched_entry() {
  if (TestThread *t = pop()) {
    t_committed = true;
    g_switches.fetch_add(1, std::memory_order_relaxed);
    t->last_vcore.store(vcore_id(), std::memory_order_relaxed);
    run_uthread(&t->uth);
  }
  t_committed = false;
  vcore_yield();
}

void thread_runnable(struct uthread *uth) {
  bool was_empty = push(of(uth));
  // A waker outside the vcores (a timer thread) always asks: its request
  // cannot be lost to a vcore that is yielding right now (see vcore.h).
  bool on_vcore = in_vcore_context() || uthread_self() != nullptr;
  // An idle vcore that wakes a thread runs it itself: asking for another
  // vcore as well would only have two race for one thread (every
  // cross-vcore wake-up of a blocked call would pay for it).
  if (in_vcore_context() && !t_committed && was_empty) return;
  // The push above, then a look at the vcores online; a yielding vcore does
  // the opposite (goes offline, then probes the queue: has_queued_work),
  // so one of the two sees the other and the thread is never left queued
  // behind idle vcores.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!on_vcore || num_vcores() < g_target.load(std::memory_order_relaxed)) vcore_request(1);
}

// vcore_set_sched_probe: an idle vcore comes back for a queued thread while
// fewer vcores than the target are online.
bool has_queued_work(uint32_t) {
  return __atomic_load_n(&g_head, __ATOMIC_SEQ_CST) != nullptr &&
         num_vcores() < g_target.load(std::memory_order_relaxed);
}

void thread_paused(struct uthread *uth) { push(of(uth)); }

void thread_blockon_sysc(struct uthread *, void *) {}
void thread_has_blocked(struct uthread *, int) {}

void thread_refl_fault(struct uthread *uth, int signo, int code, void *addr) {
  fprintf(stderr, "fifo_sched: uthread %p faulted: signal %d code %d addr %p\n",
          static_cast<void *>(uth), signo, code, addr);
  abort();
}

struct schedule_ops g_ops = {
    sched_entry,        thread_runnable,   thread_paused, thread_blockon_sysc,
    thread_has_blocked, thread_refl_fault, nullptr};

void thread_main() {
  TestThread *self = of(uthread_self());
  self->fn(self->arg);
  uthread_run_destructors();
  uthread_yield(
      false,
      [](struct uthread *uth, void *) {
        uintptr_t joiner = of(uth)->join_state.exchange(1, std::memory_order_acq_rel);
        if (joiner > 1) uthread_runnable(reinterpret_cast<struct uthread *>(joiner));
      },
      nullptr);
}

}  // namespace

void fifo_init(int target_vcores) {
  sched_ops = &g_ops;
  fifo_set_target_vcores(target_vcores);
  vcore_set_sched_probe(has_queued_work);
  uthread_lib_init(&g_thread0.uth);
}

void fifo_set_target_vcores(int n) {
  if (n < 1) n = 1;
  if (n > max_vcores()) n = max_vcores();
  g_target.store(n, std::memory_order_relaxed);
}

int fifo_target_vcores() { return g_target.load(std::memory_order_relaxed); }

TestThread *fifo_spawn(void (*fn)(void *), void *arg, size_t stack_size, const char *name) {
  auto *t = new TestThread;
  t->fn = fn;
  t->arg = arg;
  t->stack_size = stack_size;
  t->stack = uthread_stack_alloc(stack_size, 4096);
  if (t->stack == nullptr) {
    perror("fifo_spawn: uthread_stack_alloc");
    abort();
  }
  uthread_init(&t->uth);
  uthread_set_name(&t->uth, name);
  init_uthread_ctx(&t->uth, thread_main, t->stack, stack_size);
  uthread_runnable(&t->uth);
  return t;
}

void fifo_join(TestThread *t) {
  if (t->join_state.load(std::memory_order_acquire) != 1) {
    uthread_yield(
        true,
        [](struct uthread *joiner, void *arg) {
          auto *target = static_cast<TestThread *>(arg);
          uintptr_t expected = 0;
          if (!target->join_state.compare_exchange_strong(
                  expected, reinterpret_cast<uintptr_t>(joiner), std::memory_order_acq_rel))
            uthread_runnable(joiner);  // it exited meanwhile
        },
        t);
  }
  uthread_cleanup(&t->uth);
  uthread_stack_free(t->stack, t->stack_size, 4096);
  delete t;
}

void fifo_yield() { uthread_yield(true, nullptr, nullptr); }

uint64_t fifo_switches() { return g_switches.load(std::memory_order_relaxed); }

}  // namespace parlib_test

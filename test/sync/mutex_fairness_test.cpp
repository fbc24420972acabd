// The fairness bound of uthread_mutex (docs/design.md, "Mutexes"): a
// waiter gets the lock within one bound (kFairHandoffNs, 1 ms) per waiter
// queued ahead of it, plus scheduling delays.
//  - The hand-off test checks the bound where nothing else can help: one
//    vcore, no preemption, a holder that relocks back to back. Without a
//    hand-off the waiters wait for the holder's whole loop.
//  - The storms: N uthreads on two vcores take one mutex back to back (no
//    work outside the critical section: the worst case for barging). They
//    check mutual exclusion, lost updates and that every thread gets the
//    lock, and hold the longest wait to N ms plus a generous slack for a
//    shared, loaded host.
#include <gtest/gtest.h>
#include <parlib/atomic.h>
#include <parlib/mutex.h>
#include <parlib/vcore.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "support/fifo_sched.h"

namespace {

#ifdef PARLIB_ASAN
constexpr size_t kStack = 256 << 10;
#else
constexpr size_t kStack = 64 << 10;
#endif

uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

struct Storm {
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  int nthreads = 0;
  std::atomic<int> started{0};
  std::atomic<uint64_t> end_ns{0};  // the storm stops here; set by the last to start
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  long counter = 0;  // under m only
};

struct Worker {
  Storm *s;
  long ops = 0;
  uint64_t max_wait_ns = 0;
};

void work(void *arg) {
  auto *w = static_cast<Worker *>(arg);
  Storm *s = w->s;
  // Start together: the storm's clock runs from the moment every worker
  // has run once (a thread still queued behind the storm cannot take part).
  if (s->started.fetch_add(1) + 1 == s->nthreads) s->end_ns.store(now_ns() + 300ull * 1000 * 1000);
  while (s->end_ns.load() == 0) parlib_test::fifo_yield();
  const uint64_t end_ns = s->end_ns.load();
  for (;;) {
    const uint64_t t0 = now_ns();
    // At least one acquisition each, even by a worker whose vcore lost
    // its CPU for the whole storm: a lost wakeup then hangs the test.
    if (t0 >= end_ns && w->ops > 0) break;
    ASSERT_EQ(uthread_mutex_lock(&s->m), 0);
    w->max_wait_ns = std::max(w->max_wait_ns, now_ns() - t0);
    if (s->inside.fetch_add(1, std::memory_order_relaxed) != 0)
      s->overlaps.fetch_add(1, std::memory_order_relaxed);
    // A short critical section: a plain read-modify-write that a second
    // holder would corrupt, and a little time to hold the lock.
    long c = s->counter;
    for (int i = 0; i < 20; ++i) cpu_relax();
    s->counter = c + 1;
    s->inside.fetch_sub(1, std::memory_order_relaxed);
    ASSERT_EQ(uthread_mutex_unlock(&s->m), 0);
    ++w->ops;
  }
}

void storm(int nthreads) {
  ASSERT_EQ(max_vcores(), 2) << "run with PARLIB_VCORES=2";
  parlib_test::fifo_set_target_vcores(max_vcores());
  Storm s;
  // Each worker watches the clock itself: the test scheduler does not
  // preempt, so a worker that keeps winning the lock would keep its vcore
  // from ever running a stop request from main.
  s.nthreads = nthreads;
  std::vector<Worker> workers(static_cast<size_t>(nthreads), Worker{&s});
  std::vector<parlib_test::TestThread *> threads;
  for (auto &w : workers) threads.push_back(parlib_test::fifo_spawn(work, &w, kStack));
  for (auto *t : threads) parlib_test::fifo_join(t);

  long total = 0;
  uint64_t worst = 0;
  long fewest = workers[0].ops;
  for (const auto &w : workers) {
    total += w.ops;
    worst = std::max(worst, w.max_wait_ns);
    fewest = std::min(fewest, w.ops);
  }
  std::printf(
      "%d threads on %d vcores: %ld acquisitions, fewest by one thread %ld, longest wait "
      "%.2f ms\n",
      nthreads, max_vcores(), total, fewest, static_cast<double>(worst) / 1e6);
  EXPECT_EQ(s.overlaps.load(), 0) << "two holders at once";
  EXPECT_EQ(s.counter, total) << "lost updates";
  // The bound: 1 ms per thread that can be queued ahead, plus slack for a
  // loaded host: the vcores' kernel tasks lose their CPUs (stalls of over
  // 2 s were seen on a shared 2-CPU machine, old mutex and new alike). On
  // a quiet machine the longest wait stays near the first term; the
  // hand-off test below checks the bound itself where host stalls cannot
  // hide a missing hand-off.
  const uint64_t bound_ns = static_cast<uint64_t>(nthreads) * 1000000 + 3000ull * 1000000;
  EXPECT_LT(worst, bound_ns) << "a waiter waited past the fairness bound";
}

// The bound with nothing else to help: one vcore and a scheduler without
// preemption, where a holder that keeps relocking never gives its vcore up
// unless its lock call waits. Two waiters park behind it. The first is
// woken to compete (and, on this vcore, cannot run: the bound's "one
// scheduling quantum" is infinite here); the second is still queued, and
// once it has waited one bound the holder's unlock must hand it the lock,
// so the holder's next lock waits and both waiters run. (A mutex without
// hand-off lets the holder run its whole loop first.)
struct HandOff {
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  std::atomic<int> waiters_started{0};
  std::atomic<int> waiters_done{0};
  uint64_t wait_ns[2] = {0, 0};
  long holder_rounds = 0;  // relocks once both waiters waited
};

struct WaiterArg {
  HandOff *h;
  int i;
};

void handoff_waiter(void *arg) {
  auto *a = static_cast<WaiterArg *>(arg);
  HandOff *h = a->h;
  const uint64_t t0 = now_ns();
  h->waiters_started.fetch_add(1, std::memory_order_relaxed);
  ASSERT_EQ(uthread_mutex_lock(&h->m), 0);
  h->wait_ns[a->i] = now_ns() - t0;
  h->waiters_done.fetch_add(1, std::memory_order_relaxed);
  ASSERT_EQ(uthread_mutex_unlock(&h->m), 0);
}

void handoff_holder(void *arg) {
  auto *h = static_cast<HandOff *>(arg);
  ASSERT_EQ(uthread_mutex_lock(&h->m), 0);
  // Let the waiters run (this vcore's only other threads) and park on m.
  while (h->waiters_started.load(std::memory_order_relaxed) < 2) parlib_test::fifo_yield();
  parlib_test::fifo_yield();
  // Relock back to back for up to 2 s, never yielding.
  const uint64_t give_up = now_ns() + 2000ull * 1000 * 1000;
  while (h->waiters_done.load(std::memory_order_relaxed) < 2 && now_ns() < give_up) {
    ASSERT_EQ(uthread_mutex_unlock(&h->m), 0);
    ASSERT_EQ(uthread_mutex_lock(&h->m), 0);
    ++h->holder_rounds;
  }
  ASSERT_EQ(uthread_mutex_unlock(&h->m), 0);
}

TEST(MutexFairness, HolderThatNeverYieldsHandsOffAfterTheBound) {
  ASSERT_EQ(max_vcores(), 1) << "run with PARLIB_VCORES=1";
  HandOff h;
  WaiterArg args[2] = {{&h, 0}, {&h, 1}};
  parlib_test::TestThread *holder = parlib_test::fifo_spawn(handoff_holder, &h, kStack);
  parlib_test::TestThread *w0 = parlib_test::fifo_spawn(handoff_waiter, &args[0], kStack);
  parlib_test::TestThread *w1 = parlib_test::fifo_spawn(handoff_waiter, &args[1], kStack);
  parlib_test::fifo_join(holder);
  parlib_test::fifo_join(w0);
  parlib_test::fifo_join(w1);
  std::printf("waiters got the lock after %.2f and %.2f ms, %ld relocks by the holder\n",
              static_cast<double>(h.wait_ns[0]) / 1e6, static_cast<double>(h.wait_ns[1]) / 1e6,
              h.holder_rounds);
  EXPECT_EQ(h.waiters_done.load(), 2);
  // A bound or two, plus generous room for a loaded host; without hand-off
  // the waiters wait for the holder's whole 2 s.
  EXPECT_LT(std::max(h.wait_ns[0], h.wait_ns[1]), 500ull * 1000 * 1000);
}

TEST(MutexFairness, StormOfTwo) { storm(2); }
TEST(MutexFairness, StormOfEight) { storm(8); }
TEST(MutexFairness, StormOfSixtyFour) { storm(64); }

}  // namespace

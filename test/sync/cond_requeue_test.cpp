// uthread_cond_broadcast wakes one waiter and moves the others onto the
// mutex's queue: each is then woken by an unlock of the mutex in turn,
// instead of all waking at once to find the mutex held and block again
// (a thundering herd). On one vcore, with a scheduler without preemption,
// the number of thread switches shows which happened: each waiter holds
// the mutex across a yield, so under a wake-all every other woken waiter
// runs then, finds the mutex held and blocks, and must be woken again.
#include <gtest/gtest.h>
#include <parlib/mutex.h>
#include <parlib/vcore.h>

#include <cstdio>
#include <vector>

#include "support/fifo_sched.h"

namespace {

#ifdef PARLIB_ASAN
constexpr size_t kStack = 256 << 10;
#else
constexpr size_t kStack = 64 << 10;
#endif

constexpr int kWaiters = 64;

struct Shared {
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  uthread_cond_t c = UTHREAD_COND_INITIALIZER;
  bool go = false;  // under m
  int waiting = 0;  // under m
  int done = 0;     // under m
  int holders = 0;  // under m: must never exceed 1
  int worst_holders = 0;
};

void waiter(void *arg) {
  auto *s = static_cast<Shared *>(arg);
  ASSERT_EQ(uthread_mutex_lock(&s->m), 0);
  ++s->waiting;
  while (!s->go) ASSERT_EQ(uthread_cond_wait(&s->c, &s->m), 0);
  if (++s->holders > s->worst_holders) s->worst_holders = s->holders;
  parlib_test::fifo_yield();  // hold the mutex while others may run
  --s->holders;
  ++s->done;
  ASSERT_EQ(uthread_mutex_unlock(&s->m), 0);
}

void broadcast_to_waiters(Shared *s, std::vector<parlib_test::TestThread *> *threads) {
  for (int i = 0; i < kWaiters; ++i) threads->push_back(parlib_test::fifo_spawn(waiter, s, kStack));
  // Wait, without holding the mutex, until every waiter waits.
  for (;;) {
    ASSERT_EQ(uthread_mutex_lock(&s->m), 0);
    if (s->waiting == kWaiters) break;
    ASSERT_EQ(uthread_mutex_unlock(&s->m), 0);
    parlib_test::fifo_yield();
  }
  s->go = true;
  ASSERT_EQ(uthread_cond_broadcast(&s->c), 0);
  ASSERT_EQ(uthread_mutex_unlock(&s->m), 0);
  for (auto *t : *threads) parlib_test::fifo_join(t);
}

TEST(CondRequeue, BroadcastWakesWaitersOneAtATime) {
  ASSERT_EQ(max_vcores(), 1) << "run with PARLIB_VCORES=1";
  Shared s;
  std::vector<parlib_test::TestThread *> threads;
  // Count only from the broadcast on: everything before is the same for
  // both designs.
  uint64_t before = 0;
  {
    for (int i = 0; i < kWaiters; ++i)
      threads.push_back(parlib_test::fifo_spawn(waiter, &s, kStack));
    for (;;) {
      ASSERT_EQ(uthread_mutex_lock(&s.m), 0);
      if (s.waiting == kWaiters) break;
      ASSERT_EQ(uthread_mutex_unlock(&s.m), 0);
      parlib_test::fifo_yield();
    }
    before = parlib_test::fifo_switches();
    s.go = true;
    ASSERT_EQ(uthread_cond_broadcast(&s.c), 0);
    ASSERT_EQ(uthread_mutex_unlock(&s.m), 0);
    // Last first: main then waits once, not once per waiter.
    for (auto it = threads.rbegin(); it != threads.rend(); ++it) parlib_test::fifo_join(*it);
  }
  const uint64_t switches = parlib_test::fifo_switches() - before;
  std::printf("%d waiters: %llu thread switches after the broadcast\n", kWaiters,
              static_cast<unsigned long long>(switches));
  EXPECT_EQ(s.done, kWaiters);
  EXPECT_EQ(s.worst_holders, 1);
  // Each waiter runs to take the mutex and again after its yield: about 2
  // per waiter. A wake-all adds a block and a second wake for nearly every
  // waiter: about 3 per waiter.
  EXPECT_LT(switches, static_cast<uint64_t>(kWaiters) * 5 / 2);
}

// The same broadcast on two vcores: every waiter returns exactly once,
// holding the mutex alone.
TEST(CondRequeue, BroadcastOnTwoVcoresWakesEveryone) {
  if (max_vcores() < 2) GTEST_SKIP() << "needs two vcores (runs in the PARLIB_VCORES=2 entry)";
  parlib_test::fifo_set_target_vcores(2);
  for (int round = 0; round < 20; ++round) {
    Shared s;
    std::vector<parlib_test::TestThread *> threads;
    broadcast_to_waiters(&s, &threads);
    EXPECT_EQ(s.done, kWaiters);
    EXPECT_EQ(s.worst_holders, 1);
  }
}

}  // namespace

// An idle vcore polls (PARLIB_IDLE_SPIN_US) before it sleeps in the
// kernel, whether or not a uthread ever blocked in a system call on it:
// the syscall layer plugs its completion check into the vcore layer's one
// poll loop instead of replacing it. Run with a poll long enough to cover
// the whole test, so that every grant of an idle vcore finds it polling
// and no vcore task ever sleeps in the kernel (a voluntary context
// switch). Before the fix, with io_uring, a vcore without a ring went
// straight to FUTEX_WAIT: about one voluntary switch per hand-off.
#include <gtest/gtest.h>
#include <parlib/mutex.h>
#include <parlib/syscall.h>
#include <parlib/vcore.h>
#include <parlib/atomic.h>
#include <sys/resource.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include <cstdio>

#include "support/fifo_sched.h"

namespace {

long voluntary_switches() {
  // getrusage is a plain system call here (not one of the calls the
  // syscall layer takes over), so it makes no ring on the caller's vcore.
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_nvcsw;
}

struct PingPong {
  uthread_sem_t ping, pong;
  int rounds;
  std::atomic<int> pongs{0};  // rounds the ponger has reached
};

uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

TEST(IdlePoll, HandOffsBetweenTwoVcoresNeverSleepInTheKernel) {
  ASSERT_EQ(max_vcores(), 2) << "run with PARLIB_VCORES=2";
  parlib_test::fifo_set_target_vcores(2);
  constexpr int kRounds = 2000;
  PingPong pp{};
  pp.rounds = kRounds;
  uthread_sem_init(&pp.ping, 0);
  uthread_sem_init(&pp.pong, 0);
  // Two partners, so that each hand-off leaves one vcore with nothing to
  // run while the other works: main only waits for them.
  auto pinger = [](void *p) {
    auto *s = static_cast<PingPong *>(p);
    for (int i = 0; i < s->rounds; ++i) {
      uthread_sem_post(&s->ping);
      // Keep this vcore busy for a moment, so that the other one (idle)
      // is the one that runs the ponger. Bounded: if it is slow to come,
      // the ponger runs here after our wait, which the test allows.
      const uint64_t until = now_ns() + 200 * 1000;
      while (s->pongs.load(std::memory_order_acquire) <= i && now_ns() < until) cpu_relax();
      uthread_sem_wait(&s->pong);
    }
  };
  auto ponger = [](void *p) {
    auto *s = static_cast<PingPong *>(p);
    for (int i = 0; i < s->rounds; ++i) {
      uthread_sem_wait(&s->ping);
      s->pongs.store(i + 1, std::memory_order_release);
      uthread_sem_post(&s->pong);
    }
  };
  const long before = voluntary_switches();
  parlib_test::TestThread *a = parlib_test::fifo_spawn(pinger, &pp);
  parlib_test::TestThread *b = parlib_test::fifo_spawn(ponger, &pp);
  parlib_test::fifo_join(a);
  parlib_test::fifo_join(b);
  const long slept = voluntary_switches() - before;
  std::printf("backend %s: %ld voluntary context switches over %d round trips\n",
              parlib_syscall_backend() == PARLIB_SYSC_IO_URING ? "io_uring" : "helper threads",
              slept, kRounds);
  // A few for the odd page fault or mapping lock; a vcore that sleeps at
  // each hand-off makes thousands.
  EXPECT_LT(slept, kRounds / 50);
}

}  // namespace

// The vcore layer: ids, counts, requests and yields, bad arguments.
#include <gtest/gtest.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <set>
#include <vector>

#include "test_util.h"

using namespace parlib_test;

namespace {

int cpus_in_affinity_mask() {
  cpu_set_t set;
  sched_getaffinity(getpid(), sizeof set, &set);  // the parked main task keeps the process mask
  return CPU_COUNT(&set);
}

TEST(Vcore, MaxVcoresFollowsAffinityMaskOrEnvironment) {
  const char *env = getenv("PARLIB_VCORES");
  int expected = env != nullptr ? atoi(env) : cpus_in_affinity_mask();
  EXPECT_EQ(max_vcores(), expected);
  EXPECT_EQ(vcore_lib_init(), 0) << "vcore_lib_init must be idempotent";
  EXPECT_EQ(max_vcores(), expected);
}

TEST(Vcore, UthreadContextSeesItsVcore) {
  EXPECT_FALSE(in_vcore_context());
  EXPECT_LT(vcore_id(), static_cast<uint32_t>(max_vcores()));
  EXPECT_TRUE(vcore_is_online(vcore_id()));
  EXPECT_GE(num_vcores(), 1);
  EXPECT_LE(num_vcores(), max_vcores());
}

TEST(Vcore, BadArgumentsGiveEinval) {
  errno = 0;
  EXPECT_EQ(vcore_request(-1), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(vcore_request(max_vcores() + 1), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(vcore_request_total(-5), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(vcore_request_total(max_vcores() + 1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(vcore_request(0), 0);
  EXPECT_FALSE(vcore_is_online(static_cast<uint32_t>(max_vcores())));
}

// Every vcore comes online when the scheduler has enough work for all of
// them, and they go offline again (yield) when the work is done.
TEST(Vcore, RequestBringsUpEveryVcoreAndIdleOnesYield) {
  const int n = max_vcores();
  ScopedTargetVcores target(n);
  std::atomic<bool> release{false};
  std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
  struct Arg {
    std::atomic<bool> *release;
    std::vector<std::atomic<int>> *seen;
  } arg{&release, &seen};
  std::vector<TestThread *> threads;
  // Twice as many spinners as vcores: each spins (yielding) until released,
  // so the run queue stays non-empty and every vcore gets work.
  for (int i = 0; i < 2 * n; ++i) {
    threads.push_back(fifo_spawn(
        [](void *p) {
          auto *a = static_cast<Arg *>(p);
          while (!a->release->load()) {
            (*a->seen)[vcore_id()].store(1);
            fifo_yield();
          }
        },
        &arg));
  }
  bool all_seen = wait_until([&] {
    for (auto &s : seen)
      if (!s.load()) return false;
    return true;
  });
  EXPECT_TRUE(all_seen) << "not every vcore ran a uthread";
  EXPECT_EQ(num_vcores(), n);
  release.store(true);
  for (auto *t : threads) fifo_join(t);
  // With the work gone, the other vcores yield; only ours stays.
  EXPECT_TRUE(wait_until([] { return num_vcores() == 1; }))
      << "idle vcores did not yield: " << num_vcores() << " online";
}

// vcore_wake brings one particular offline vcore online (it then finds
// nothing to run and yields again); an online vcore or a bad id: false.
TEST(Vcore, WakeBringsThatVcoreOnline) {
  ScopedTargetVcores target(1);
  EXPECT_FALSE(vcore_wake(vcore_id())) << "the caller's own vcore is online";
  EXPECT_FALSE(vcore_wake(100000));
  if (max_vcores() < 2) return;
  // Any vcore but ours, once it is offline (ours may change as we yield).
  int64_t offline = -1;
  ASSERT_TRUE(wait_until([&] {
    for (int v = 0; v < max_vcores(); ++v)
      if (static_cast<uint32_t>(v) != vcore_id() && !vcore_is_online(static_cast<uint32_t>(v))) {
        offline = v;
        return true;
      }
    return false;
  }));
  EXPECT_TRUE(vcore_wake(static_cast<uint32_t>(offline)))
      << "vcore " << offline << " was offline, and nothing else grants it";
  // With nothing queued for it, the extra vcore yields again.
  EXPECT_TRUE(wait_until([] { return num_vcores() == 1; })) << num_vcores() << " online";
}

// A vcore-context callback checks the context rules.
TEST(Vcore, YieldCallbackRunsInVcoreContext) {
  struct Seen {
    bool in_vcore;
    struct uthread *current;
    uint32_t id;
  } seen{};
  uthread_yield(
      true,
      [](struct uthread *uth, void *p) {
        auto *s = static_cast<Seen *>(p);
        s->in_vcore = in_vcore_context();
        s->current = current_uthread;
        s->id = vcore_id();
        uthread_paused(uth);
      },
      &seen);
  EXPECT_TRUE(seen.in_vcore);
  EXPECT_EQ(seen.current, nullptr) << "current_uthread must be NULL after a voluntary yield";
  EXPECT_LT(seen.id, static_cast<uint32_t>(max_vcores()));
  EXPECT_FALSE(in_vcore_context());
  EXPECT_EQ(current_uthread, uthread_self());
}

TEST(VcoreDeathTest, VcoreYieldOutsideVcoreContextAborts) {
  EXPECT_DEATH(vcore_yield(), "vcore_yield outside vcore context");
}

TEST(VcoreDeathTest, RunUthreadOutsideVcoreContextAborts) {
  EXPECT_DEATH(run_uthread(uthread_self()), "run_uthread outside vcore context");
}

TEST(VcoreDeathTest, UthreadYieldFromVcoreContextAborts) {
  EXPECT_DEATH(
      uthread_yield(
          true, [](struct uthread *, void *) { uthread_yield(true, nullptr, nullptr); }, nullptr),
      "uthread_yield from vcore context");
}

}  // namespace

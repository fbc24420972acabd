// The uthread layer: concurrency on several vcores, migration, many
// uthreads without leaks, the state checks on the 2LS calls.
#include <dirent.h>
#include <gtest/gtest.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "test_util.h"

using namespace parlib_test;

namespace {

// Two uthreads that each wait for the other to have started can only both
// finish if they run at the same time, on two vcores.
TEST(Uthread, RunConcurrentlyOnTwoVcores) {
  if (max_vcores() < 2) GTEST_SKIP() << "needs 2 vcores; PARLIB_VCORES=" << max_vcores();
  ScopedTargetVcores target(2);
  struct Shared {
    std::atomic<int> started{0};
    std::atomic<bool> both_seen[2] = {false, false};
    uint32_t vcore[2] = {0, 0};
  } shared;
  struct Arg {
    Shared *s;
    int index;
  } args[2] = {{&shared, 0}, {&shared, 1}};
  TestThread *threads[2];
  for (int i = 0; i < 2; ++i) {
    threads[i] = fifo_spawn(
        [](void *p) {
          auto *a = static_cast<Arg *>(p);
          a->s->started.fetch_add(1);
          // Spin without yielding: the other uthread must run elsewhere.
          auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (a->s->started.load() < 2 && std::chrono::steady_clock::now() < deadline) {
          }
          a->s->vcore[a->index] = vcore_id();
          a->s->both_seen[a->index].store(a->s->started.load() == 2);
        },
        &args[i]);
  }
  // thread0 must not occupy a vcore meanwhile: block in join.
  for (auto *t : threads) fifo_join(t);
  EXPECT_TRUE(shared.both_seen[0].load());
  EXPECT_TRUE(shared.both_seen[1].load());
  EXPECT_NE(shared.vcore[0], shared.vcore[1]);
}

// Yield ping-pong: uthreads on 2 vcores yield back and forth through one
// run queue, so they migrate; each keeps its own stack and registers.
std::atomic<bool> g_migrated{false};

TEST(Uthread, YieldPingPongMigratesBetweenVcores) {
  ScopedTargetVcores target(2);
  g_migrated = max_vcores() < 2;
  constexpr int kThreads = 4;
  constexpr int kYields = 20000;
  struct Arg {
    uint64_t sum = 0;
    uint64_t iterations = 0;
    uint32_t vcores_seen_mask = 0;
  } args[kThreads];
  std::vector<TestThread *> threads;
  for (auto &arg : args) {
    threads.push_back(fifo_spawn(
        [](void *p) {
          auto *a = static_cast<Arg *>(p);
          uint64_t local = 0;  // lives on this uthread's stack across switches
          auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          uint64_t i = 0;
          // kYields at least, and on until some uthread migrated (vcores that
          // share a CPU may each run alone for a whole time slice).
          for (; i < kYields || (!g_migrated.load() && std::chrono::steady_clock::now() < deadline);
               ++i) {
            local += i;
            a->vcores_seen_mask |= 1u << (vcore_id() % 32);
            fifo_yield();
            a->vcores_seen_mask |= 1u << (vcore_id() % 32);
            if (__builtin_popcount(a->vcores_seen_mask) > 1) g_migrated.store(true);
          }
          a->sum = local;
          a->iterations = i;
        },
        &arg));
  }
  for (auto *t : threads) fifo_join(t);
  bool any_migrated = false;
  for (auto &arg : args) {
    EXPECT_GE(arg.iterations, uint64_t{kYields});
    EXPECT_EQ(arg.sum, arg.iterations * (arg.iterations - 1) / 2);
    any_migrated |= __builtin_popcount(arg.vcores_seen_mask) > 1;
  }
  if (max_vcores() >= 2) {
    EXPECT_TRUE(any_migrated) << "no uthread ever changed vcore";
  }
}

struct ProcessFootprint {
  long rss_kb;
  long mappings;
  long fds;
};

ProcessFootprint footprint() {
  ProcessFootprint f{0, 0, 0};
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) f.rss_kb = atol(line.c_str() + 6);
  std::ifstream maps("/proc/self/maps");
  while (std::getline(maps, line)) ++f.mappings;
  if (DIR *d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++f.fds;
    closedir(d);
  }
  return f;
}

thread_local std::string tl_payload;  // a thread_local with a destructor

// 10,000 uthreads alive at once, run to completion and cleaned up, in
// rounds: after a warm-up round, memory, mappings and descriptors must not
// grow (TLS blocks, stacks, glibc's per-thread malloc state all recycled).
TEST(Uthread, TenThousandPerRoundWithoutGrowth) {
#if defined(__SANITIZE_THREAD__)
  // Each live uthread is a TSan fiber, whose state alone is ~800 KiB.
  constexpr int kPerRound = 500;
#else
  constexpr int kPerRound = 10000;
#endif
  constexpr int kRounds = 4;
  std::atomic<long> ran{0};
  ProcessFootprint after_warmup{};
  for (int round = 0; round < kRounds; ++round) {
    std::vector<TestThread *> threads;
    threads.reserve(kPerRound);
    for (int i = 0; i < kPerRound; ++i) {
      threads.push_back(fifo_spawn(
          [](void *p) {
            // Touch malloc (glibc's per-thread cache), TLS with a
            // destructor, and errno, then yield once.
            void *block = malloc(64 + static_cast<size_t>(rand() % 512));
            tl_payload.assign(100, 'x');
            errno = EINTR;
            fifo_yield();
            free(block);
            static_cast<std::atomic<long> *>(p)->fetch_add(1);
          },
          &ran, 32 << 10));
    }
    for (auto *t : threads) fifo_join(t);
    if (round == 0) after_warmup = footprint();
  }
  ProcessFootprint end = footprint();
  EXPECT_EQ(ran.load(), long{kPerRound} * kRounds);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // ASan holds freed memory in its quarantine (256 MiB by default), TSan
  // its fibers' and its allocator's caches, so RSS says nothing about leaks
  // here; the release build checks it.
  std::cout << "note: RSS growth not checked under a sanitizer; grew "
            << end.rss_kb - after_warmup.rss_kb << " KiB\n";
#else
  EXPECT_LE(end.rss_kb - after_warmup.rss_kb, 8 * 1024)
      << "RSS grew by " << end.rss_kb - after_warmup.rss_kb << " KiB over " << kRounds - 1
      << " rounds";
#endif
#if defined(__SANITIZE_THREAD__)
  // TSan keeps each finished fiber's trace mapped for its reports.
  std::cout << "note: mappings not checked under ThreadSanitizer; grew by "
            << end.mappings - after_warmup.mappings << "\n";
#else
#if defined(__SANITIZE_ADDRESS__)
  constexpr long kMappingSlack = 32;  // ASan's allocator maps regions as it grows
#else
  constexpr long kMappingSlack = 4;
#endif
  EXPECT_LE(end.mappings - after_warmup.mappings, kMappingSlack) << "mappings leaked";
#endif
  EXPECT_EQ(end.fds, after_warmup.fds) << "file descriptors leaked";
}

TEST(Uthread, NamesAndSelf) {
  struct uthread *self = uthread_self();
  ASSERT_NE(self, nullptr);
  EXPECT_EQ(current_uthread, self);
  struct uthread *seen = nullptr;
  TestThread *t = fifo_spawn([](void *p) { *static_cast<struct uthread **>(p) = uthread_self(); },
                             &seen, 64 << 10, "worker");
  struct uthread *expected = &t->uth;
  fifo_join(t);
  EXPECT_EQ(seen, expected);
}

TEST(Uthread, StackAllocRejectsTinyStacks) {
  errno = 0;
  EXPECT_EQ(uthread_stack_alloc(100, 4096), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST(UthreadDeathTest, DoubleWakeupAborts) {
  EXPECT_DEATH(uthread_runnable(uthread_self()), "double wakeup");
}

TEST(UthreadDeathTest, EnableNotifsUnderflowAborts) {
  EXPECT_DEATH(uth_enable_notifs(), "uth_enable_notifs without uth_disable_notifs");
}

TEST(Uthread, NotifDisableNests) {
  struct uthread *self = uthread_self();
  uth_disable_notifs();
  uth_disable_notifs();
  EXPECT_EQ(self->notif_disabled_depth_, 2);
  uth_enable_notifs();
  EXPECT_EQ(self->notif_disabled_depth_, 1);
  uth_enable_notifs();
  EXPECT_EQ(self->notif_disabled_depth_, 0);
}

// Overflowing a uthread's stack ends the process with a message that names
// the uthread, instead of corrupting memory below the stack.
__attribute__((noinline)) int recurse(volatile char *prev, int depth, int limit) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (prev != nullptr) frame[1] = prev[0];
  if (depth == limit) return frame[1];
  return recurse(frame, depth + 1, limit) + frame[1];
}

TEST(UthreadDeathTest, StackOverflowIsReportedWithTheUthreadName) {
  EXPECT_DEATH(
      {
        TestThread *t = fifo_spawn([](void *) { recurse(nullptr, 0, 1 << 30); }, nullptr, 64 << 10,
                                   "overflower");
        fifo_join(t);
      },
      "stack overflow in uthread 0x[0-9a-f]+ \\(overflower\\)");
}

}  // namespace

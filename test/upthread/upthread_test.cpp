// The upthread scheduler's own behaviour: preemption gives progress to
// threads that never yield, idle vcores steal, thread_local destructors run
// at exit, upthread_kill runs the handler in the target, timed waits on
// CLOCK_MONOTONIC, attribute and argument errors. libupthread's
// constructor has made main a upthread before gtest's main runs.
#include <gtest/gtest.h>
#include <parlib/vcore.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <upthread/upthread.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct PeriodGuard {
  explicit PeriodGuard(uint64_t usec) { upthread_set_sched_period(usec); }
  ~PeriodGuard() { upthread_set_sched_period(0); }
};

// Four threads spin on a flag that only a fifth thread, queued behind them
// on one vcore, will set. Cooperatively that never ends; with a 1 ms tick
// it must, and every spinner must have been preempted.
TEST(Upthread, PreemptionLetsAQueuedThreadRunPastSpinners) {
  PeriodGuard period(1000);
  upthread_set_num_vcores(1);
  upthread_can_vcore_steal(false);
  std::atomic<bool> flag{false};
  std::atomic<int> spinners_done{0};
  auto deadline = std::chrono::steady_clock::now() + 20s;
  struct Arg {
    std::atomic<bool> *flag;
    std::atomic<int> *done;
    std::chrono::steady_clock::time_point deadline;
  } arg{&flag, &spinners_done, deadline};
  std::vector<upthread_t> threads;
  for (int i = 0; i < 4; ++i) {
    upthread_t t;
    ASSERT_EQ(upthread_create(
                  &t, nullptr,
                  [](void *p) -> void * {
                    auto *a = static_cast<Arg *>(p);
                    while (!a->flag->load() && std::chrono::steady_clock::now() < a->deadline) {
                    }
                    if (a->flag->load()) a->done->fetch_add(1);
                    return nullptr;
                  },
                  &arg),
              0);
    threads.push_back(t);
  }
  upthread_t setter;
  ASSERT_EQ(upthread_create(
                &setter, nullptr,
                [](void *p) -> void * {
                  static_cast<Arg *>(p)->flag->store(true);
                  return nullptr;
                },
                &arg),
            0);
  threads.push_back(setter);
  for (auto t : threads) ASSERT_EQ(upthread_join(t, nullptr), 0);
  upthread_can_vcore_steal(true);
  upthread_set_num_vcores(max_vcores());
  EXPECT_EQ(spinners_done.load(), 4) << "the setter never ran while spinners spun";
  uint64_t preemptions = 0;
  for (int v = 0; v < max_vcores(); ++v) {
    struct upthread_vcore_stats st {};
    ASSERT_EQ(upthread_get_vcore_stats(static_cast<uint32_t>(v), &st), 0);
    preemptions += st.preemptions;
  }
  EXPECT_GT(preemptions, 0u);
}

// All threads are placed on one queue; with stealing the other vcore takes
// work, so threads run on both vcores.
TEST(Upthread, IdleVcoresStealFromBusyOnes) {
  if (max_vcores() < 2) GTEST_SKIP() << "needs 2 vcores";
  upthread_set_num_vcores(1);  // place every new thread on queue 0
  std::vector<upthread_t> threads;
  std::atomic<uint32_t> vcores_seen{0};
  for (int i = 0; i < 64; ++i) {
    upthread_t t;
    ASSERT_EQ(upthread_create(
                  &t, nullptr,
                  [](void *p) -> void * {
                    auto *seen = static_cast<std::atomic<uint32_t> *>(p);
                    auto until = std::chrono::steady_clock::now() + 2ms;
                    while (std::chrono::steady_clock::now() < until) {
                    }
                    seen->fetch_or(1u << vcore_id());
                    return nullptr;
                  },
                  &vcores_seen),
              0);
    threads.push_back(t);
  }
  upthread_set_num_vcores(max_vcores());  // let vcore requests go to 2 again
  // Wake the other vcore: one more runnable thread asks for it.
  for (auto t : threads) ASSERT_EQ(upthread_join(t, nullptr), 0);
  EXPECT_GE(__builtin_popcount(vcores_seen.load()), 2) << "no work was stolen";
}

std::atomic<int> g_tl_destroyed{0};
struct TlCounter {
  ~TlCounter() { g_tl_destroyed.fetch_add(1); }
  int touched = 0;
};
thread_local TlCounter tl_counter;

TEST(Upthread, ThreadLocalDestructorsRunAtExit) {
  g_tl_destroyed = 0;
  std::vector<upthread_t> threads(10);
  for (auto &t : threads)
    ASSERT_EQ(upthread_create(
                  &t, nullptr,
                  [](void *) -> void * {
                    tl_counter.touched = 1;
                    return nullptr;
                  },
                  nullptr),
              0);
  for (auto t : threads) ASSERT_EQ(upthread_join(t, nullptr), 0);
  EXPECT_EQ(g_tl_destroyed.load(), 10);
}

std::atomic<upthread_t> g_handler_ran_in{nullptr};
void on_usr2(int) { g_handler_ran_in.store(upthread_self()); }

TEST(Upthread, KillRunsTheHandlerInTheTarget) {
  struct sigaction sa {};
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, nullptr);
  std::atomic<bool> stop{false};
  upthread_t t;
  ASSERT_EQ(upthread_create(
                &t, nullptr,
                [](void *p) -> void * {
                  auto *s = static_cast<std::atomic<bool> *>(p);
                  while (!s->load()) upthread_yield();
                  return nullptr;
                },
                &stop),
            0);
  ASSERT_EQ(upthread_kill(t, SIGUSR2), 0);
  auto until = std::chrono::steady_clock::now() + 10s;
  while (g_handler_ran_in.load() == nullptr && std::chrono::steady_clock::now() < until)
    upthread_yield();
  stop = true;
  ASSERT_EQ(upthread_join(t, nullptr), 0);
  EXPECT_EQ(g_handler_ran_in.load(), t);
  EXPECT_EQ(upthread_kill(t == nullptr ? nullptr : upthread_self(), 0), 0);
  EXPECT_EQ(upthread_kill(upthread_self(), 99), EINVAL);
  signal(SIGUSR2, SIG_DFL);
}

TEST(Upthread, MonotonicCondTimedwaitTimesOut) {
  upthread_condattr_t ca;
  upthread_condattr_init(&ca);
  ASSERT_EQ(upthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
  EXPECT_EQ(upthread_condattr_setclock(&ca, CLOCK_PROCESS_CPUTIME_ID), EINVAL);
  upthread_cond_t c;
  ASSERT_EQ(upthread_cond_init(&c, &ca), 0);
  upthread_mutex_t m = UPTHREAD_MUTEX_INITIALIZER;
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  timespec deadline = now;
  deadline.tv_nsec += 30 * 1000 * 1000;
  if (deadline.tv_nsec >= 1000000000) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000;
  }
  upthread_mutex_lock(&m);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(upthread_cond_timedwait(&c, &m, &deadline), ETIMEDOUT);
  auto waited = std::chrono::steady_clock::now() - t0;
  upthread_mutex_unlock(&m);
  EXPECT_GE(waited, 29ms);
  EXPECT_LT(waited, 2s);
  upthread_cond_destroy(&c);
}

TEST(Upthread, ArgumentAndStateErrors) {
  upthread_attr_t attr;
  upthread_attr_init(&attr);
  EXPECT_EQ(upthread_attr_setstacksize(&attr, 100), EINVAL);
  EXPECT_EQ(upthread_attr_setdetachstate(&attr, 7), EINVAL);
  EXPECT_EQ(upthread_create(nullptr, nullptr, nullptr, nullptr), EINVAL);
  EXPECT_EQ(upthread_join(upthread_self(), nullptr), EDEADLK);
  EXPECT_EQ(upthread_join(nullptr, nullptr), ESRCH);
  upthread_attr_setdetachstate(&attr, UPTHREAD_CREATE_DETACHED);
  std::atomic<bool> ran{false};
  upthread_t t;
  ASSERT_EQ(upthread_create(
                &t, &attr,
                [](void *p) -> void * {
                  static_cast<std::atomic<bool> *>(p)->store(true);
                  return nullptr;
                },
                &ran),
            0);
  while (!ran.load()) upthread_yield();
  upthread_barrier_t b;
  EXPECT_EQ(upthread_barrier_init(&b, nullptr, 0), EINVAL);
  upthread_key_t key;
  ASSERT_EQ(upthread_key_create(&key, nullptr), 0);
  EXPECT_EQ(upthread_setspecific(key, &ran), 0);
  EXPECT_EQ(upthread_getspecific(key), &ran);
  EXPECT_EQ(upthread_key_delete(key), 0);
}

int count_mappings() {
  FILE *f = fopen("/proc/self/maps", "r");
  if (f == nullptr) return -1;
  int n = 0;
  for (int c; (c = fgetc(f)) != EOF;) n += c == '\n';
  fclose(f);
  return n;
}

// Stacks with guard pages come from pooled regions whose guards are
// MADV_GUARD_INSTALL markers, so thousands of live threads do not cost a
// mapping or two each (vm.max_map_count, 65530 by default, would otherwise
// stop a program near 32,000 threads). Where the kernel lacks guard
// regions (before Linux 6.13) each stack is its own mapping again and the
// test says so instead of failing.
TEST(Upthread, ThousandsOfGuardedStacksTakeAFewMappings) {
  constexpr int kThreads = 3000;
  upthread_attr_t attr;
  upthread_attr_init(&attr);
  ASSERT_EQ(upthread_attr_setstacksize(&attr, 32 << 10), 0);
  ASSERT_EQ(upthread_attr_setguardsize(&attr, 4096), 0);
  struct Shared {
    upthread_mutex_t m;
    upthread_cond_t c;
    int waiting = 0;
    bool go = false;
  } sh;
  upthread_mutex_init(&sh.m, nullptr);
  upthread_cond_init(&sh.c, nullptr);
  const int before = count_mappings();
  std::vector<upthread_t> threads(kThreads);
  for (upthread_t &t : threads)
    ASSERT_EQ(upthread_create(
                  &t, &attr,
                  [](void *p) -> void * {
                    auto *s = static_cast<Shared *>(p);
                    upthread_mutex_lock(&s->m);
                    s->waiting++;
                    while (!s->go) upthread_cond_wait(&s->c, &s->m);
                    upthread_mutex_unlock(&s->m);
                    return nullptr;
                  },
                  &sh),
              0);
  for (;;) {  // every thread alive and blocked
    upthread_mutex_lock(&sh.m);
    const int waiting = sh.waiting;
    upthread_mutex_unlock(&sh.m);
    if (waiting == kThreads) break;
    upthread_yield();
  }
  const int during = count_mappings();
  upthread_mutex_lock(&sh.m);
  sh.go = true;
  upthread_cond_broadcast(&sh.c);
  upthread_mutex_unlock(&sh.m);
  for (upthread_t t : threads) ASSERT_EQ(upthread_join(t, nullptr), 0);
  std::printf("mappings: %d before, %d with %d threads alive\n", before, during, kThreads);
  struct utsname u;
  uname(&u);
  int major = 0, minor = 0;
  sscanf(u.release, "%d.%d", &major, &minor);
  if (major < 6 || (major == 6 && minor < 13)) {
    std::printf("kernel %s has no MADV_GUARD_INSTALL: one mapping per guarded stack expected\n",
                u.release);
    EXPECT_GE(during - before, kThreads);
  } else {
    EXPECT_LT(during - before, 100);
  }
}

// A thread made runnable on the queue of a vcore that is just going idle
// must not be left there while the waker spins with upthread_yield (which
// only looks at its own vcore's queue): the idle vcore stays for it, or the
// waker requests one. Round-robin placement puts every other new thread on
// the other vcore's queue, which is idle between rounds.
TEST(Upthread, AThreadQueuedOnAVcoreGoingIdleStillRuns) {
  std::atomic<bool> flag{false};
  for (int round = 0; round < 2000; ++round) {
    flag.store(false);
    upthread_t t;
    ASSERT_EQ(upthread_create(
                  &t, nullptr,
                  [](void *p) -> void * {
                    static_cast<std::atomic<bool> *>(p)->store(true);
                    return nullptr;
                  },
                  &flag),
              0);
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!flag.load() && std::chrono::steady_clock::now() < deadline) upthread_yield();
    ASSERT_TRUE(flag.load()) << "round " << round << ": the new thread never ran";
    ASSERT_EQ(upthread_join(t, nullptr), 0);
  }
}

// upthread_yield switches thread to thread directly (parlib_ctx_swap),
// which loads MXCSR and the x87 control word only when they differ: four
// threads on one queue with four different settings keep theirs.
TEST(Upthread, DirectSwitchesKeepEachThreadsFloatingPointControl) {
  upthread_set_num_vcores(1);
  upthread_can_vcore_steal(false);
  struct Arg {
    uint32_t mxcsr;
    uint16_t fpucw;
    int mismatches = 0;
  } args[4] = {{0x1f80, 0x037f}, {0x3f80, 0x027f}, {0x5f80, 0x007f}, {0x7f80, 0x0f7f}};
  std::vector<upthread_t> threads;
  for (auto &a : args) {
    upthread_t t;
    ASSERT_EQ(upthread_create(
                  &t, nullptr,
                  [](void *p) -> void * {
                    auto *a = static_cast<Arg *>(p);
                    asm volatile("ldmxcsr %0" : : "m"(a->mxcsr));
                    asm volatile("fldcw %0" : : "m"(a->fpucw));
                    for (int i = 0; i < 5000; ++i) {
                      upthread_yield();
                      uint32_t mxcsr;
                      uint16_t fpucw;
                      asm volatile("stmxcsr %0" : "=m"(mxcsr));
                      asm volatile("fnstcw %0" : "=m"(fpucw));
                      if (mxcsr != a->mxcsr || fpucw != a->fpucw) ++a->mismatches;
                    }
                    uint32_t dflt_mxcsr = 0x1f80;
                    uint16_t dflt_cw = 0x037f;
                    asm volatile("ldmxcsr %0" : : "m"(dflt_mxcsr));
                    asm volatile("fldcw %0" : : "m"(dflt_cw));
                    return nullptr;
                  },
                  &a),
              0);
    threads.push_back(t);
  }
  for (upthread_t t : threads) ASSERT_EQ(upthread_join(t, nullptr), 0);
  upthread_set_num_vcores(max_vcores());
  upthread_can_vcore_steal(true);
  for (const auto &a : args) EXPECT_EQ(a.mismatches, 0) << "MXCSR " << std::hex << a.mxcsr;
}

// --- vcores stuck in the kernel -------------------------------------------------

struct StuckCheckGuard {
  explicit StuckCheckGuard(uint64_t usec) { upthread_set_stuck_check_period(usec); }
  ~StuckCheckGuard() {
    upthread_set_stuck_check_period(0);
    upthread_set_num_vcores(max_vcores());
    upthread_can_vcore_steal(true);
  }
};

// A raw futex wait: invisible to upthread, it blocks the vcore's task.
long raw_futex_wait(std::atomic<uint32_t> *word, uint32_t val, long timeout_ms) {
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000};
  return syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT_PRIVATE, val, &ts,
                 nullptr, 0);
}

struct StuckPair {
  std::atomic<uint32_t> word{0};
  std::atomic<int> waiter_vcore{-1};
  std::atomic<bool> woken_by_value{false};
  long timeout_ms = 0;
};

// The waiter blocks its vcore in the kernel; the waker is queued behind it
// on the same (only) queue, with stealing off, so that only a spare vcore
// can run it before the waiter's timeout.
void run_stuck_pair(StuckPair *pair) {
  upthread_set_num_vcores(1);
  upthread_can_vcore_steal(false);
  upthread_t waiter, waker;
  ASSERT_EQ(upthread_create(
                &waiter, nullptr,
                [](void *p) -> void * {
                  auto *s = static_cast<StuckPair *>(p);
                  s->waiter_vcore.store(static_cast<int>(vcore_id()));
                  while (s->word.load() == 0) {
                    long r = raw_futex_wait(&s->word, 0, s->timeout_ms);
                    if (r != 0 && errno == ETIMEDOUT) return nullptr;
                  }
                  s->woken_by_value.store(true);
                  return nullptr;
                },
                pair),
            0);
  ASSERT_EQ(upthread_create(
                &waker, nullptr,
                [](void *p) -> void * {
                  auto *s = static_cast<StuckPair *>(p);
                  s->word.store(1);
                  syscall(SYS_futex, reinterpret_cast<uint32_t *>(&s->word), FUTEX_WAKE_PRIVATE, 1,
                          nullptr, nullptr, 0);
                  return nullptr;
                },
                pair),
            0);
  ASSERT_EQ(upthread_join(waiter, nullptr), 0);
  ASSERT_EQ(upthread_join(waker, nullptr), 0);
}

int spares_online() {
  int n = 0;
  for (int v = max_vcores(); v < max_vcores() + max_spare_vcores(); ++v)
    n += vcore_is_online(static_cast<uint32_t>(v));
  return n;
}

TEST(UpthreadStuckVcore, ASpareRunsTheThreadsQueuedBehindAKernelWait) {
  StuckCheckGuard check(1000);
  StuckPair pair;
  pair.timeout_ms = 20000;
  if (max_spare_vcores() == 0) {  // PARLIB_SPARE_VCORES=0: nothing can stand in
    errno = 0;
    EXPECT_EQ(vcore_request_spare(), -1);
    EXPECT_EQ(errno, EBUSY);
    pair.timeout_ms = 300;
    run_stuck_pair(&pair);
    EXPECT_FALSE(pair.woken_by_value.load()) << "the waker cannot have run: no spare, no stealing";
    return;
  }
  auto start = std::chrono::steady_clock::now();
  run_stuck_pair(&pair);
  EXPECT_TRUE(pair.woken_by_value.load()) << "the waiter timed out: no spare ran the waker";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  uint64_t spare_switches = 0;
  for (int v = max_vcores(); v < max_vcores() + max_spare_vcores(); ++v) {
    upthread_vcore_stats st{};
    ASSERT_EQ(upthread_get_vcore_stats(static_cast<uint32_t>(v), &st), 0);
    spare_switches += st.switches;
  }
  EXPECT_GT(spare_switches, 0u) << "the waker ran on a spare vcore";
  // Nothing is stuck any more: the spares leave.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (spares_online() != 0 && std::chrono::steady_clock::now() < deadline) upthread_yield();
  EXPECT_EQ(spares_online(), 0);
}

// Stress: a ring of 32 threads passes a token 50 times around, each waiting
// for it in a raw futex wait (a blocking system call upthread cannot see),
// with stealing off. Every wait holds a vcore's task, so the ring only
// turns if spares keep standing in; each hop's token value is checked.
TEST(UpthreadStuckVcore, ARingOfRawFutexWaitersKeepsTurning) {
  if (max_spare_vcores() == 0) GTEST_SKIP() << "PARLIB_SPARE_VCORES=0: no spares to stand in";
  StuckCheckGuard check(1000);
  upthread_set_num_vcores(1);
  upthread_can_vcore_steal(false);
  constexpr int kThreads = 32, kLaps = 50;
  struct Ring {
    std::atomic<uint32_t> token{0};  // hop count; thread i moves it when token % kThreads == i
    std::atomic<int> bad{0};
  } ring;
  struct Arg {
    Ring *ring;
    int index;
  } args[kThreads];
  std::vector<upthread_t> threads;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kThreads; ++i) {
    args[i] = {&ring, i};
    upthread_t t;
    ASSERT_EQ(upthread_create(
                  &t, nullptr,
                  [](void *p) -> void * {
                    auto *a = static_cast<Arg *>(p);
                    for (int lap = 0; lap < kLaps; ++lap) {
                      uint32_t mine = static_cast<uint32_t>(lap * kThreads + a->index);
                      for (;;) {
                        uint32_t t = a->ring->token.load();
                        if (t == mine) break;
                        if (t > mine) {
                          a->ring->bad.fetch_add(1);
                          return nullptr;
                        }
                        raw_futex_wait(&a->ring->token, t, 10000);
                      }
                      a->ring->token.store(mine + 1);
                      syscall(SYS_futex, reinterpret_cast<uint32_t *>(&a->ring->token),
                              FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
                    }
                    return nullptr;
                  },
                  &args[i]),
              0);
    threads.push_back(t);
  }
  for (upthread_t t : threads) ASSERT_EQ(upthread_join(t, nullptr), 0);
  EXPECT_EQ(ring.bad.load(), 0);
  EXPECT_EQ(ring.token.load(), static_cast<uint32_t>(kThreads * kLaps));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 60s);
}

TEST(UpthreadStuckVcore, WithoutTheMonitorTheQueuedThreadWaits) {
  StuckCheckGuard check(0);
  // Spares an earlier test left online are retired once the monitor is off.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (spares_online() != 0 && std::chrono::steady_clock::now() < deadline) upthread_yield();
  ASSERT_EQ(spares_online(), 0) << "turning the monitor off did not retire the spares";
  StuckPair pair;
  pair.timeout_ms = 300;
  run_stuck_pair(&pair);
  EXPECT_FALSE(pair.woken_by_value.load()) << "the waker ran while the only queue's vcore slept";
}

TEST(UpthreadStuckVcore, BlockedInKernelSeesATaskAsleepInASystemCall) {
  EXPECT_FALSE(vcore_blocked_in_kernel(vcore_id())) << "the caller's own vcore is running";
  EXPECT_FALSE(vcore_blocked_in_kernel(100000));
  StuckPair pair;
  pair.timeout_ms = 3000;
  upthread_t waiter;
  ASSERT_EQ(upthread_create(
                &waiter, nullptr,
                [](void *p) -> void * {
                  auto *s = static_cast<StuckPair *>(p);
                  s->waiter_vcore.store(static_cast<int>(vcore_id()));
                  raw_futex_wait(&s->word, 0, s->timeout_ms);
                  return nullptr;
                },
                &pair),
            0);
  bool seen = false;
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!seen && std::chrono::steady_clock::now() < deadline) {
    int v = pair.waiter_vcore.load();
    if (v >= 0 && static_cast<uint32_t>(v) != vcore_id())
      seen = vcore_blocked_in_kernel(static_cast<uint32_t>(v));
    upthread_yield();
  }
  pair.word.store(1);
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(&pair.word), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
  ASSERT_EQ(upthread_join(waiter, nullptr), 0);
  if (max_vcores() < 2) {
    // One vcore: the waiter blocked the caller's own vcore, which cannot
    // look at itself while asleep; the caller only ran after the timeout.
    EXPECT_FALSE(seen);
  } else {
    EXPECT_TRUE(seen) << "a vcore asleep in futex() was not reported";
  }
}

}  // namespace

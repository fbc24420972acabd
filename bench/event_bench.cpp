// Google Benchmark: the cost of events.
//   BM_SendHandleSameVcore     send_event to one's own vcore + handle_events
//   BM_CrossVcoreToParked/S    latency from send_event on one vcore to the
//                              handler on another that yielded 300 us ago,
//                              with an idle spin of S us: S = 0, it sleeps
//                              in the kernel (futex wake); S = 1000, it is
//                              still polling (the spin-then-sleep trade:
//                              latency for CPU burned while idle)
//   BM_CrossVcoreToBusy        latency to a vcore running a uthread that
//                              spins with notifications enabled (SIGUSR1)
// Runs on the FIFO test scheduler (test/support), main as thread0.
#include <benchmark/benchmark.h>
#include <parlib/event.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "support/fifo_sched.h"

namespace {

constexpr unsigned kEvNop = EV_FIRST_USER;
constexpr unsigned kEvStamp = EV_FIRST_USER + 1;
std::atomic<uint64_t> g_handled{0};

void nop_handler(struct event_msg *, unsigned) {
  g_handled.fetch_add(1, std::memory_order_relaxed);
}
void stamp_handler(struct event_msg *, unsigned) {
  g_handled.fetch_add(1, std::memory_order_release);
}

void BM_SendHandleSameVcore(benchmark::State &state) {
  struct event_msg msg {};
  uth_disable_notifs();  // stay on this vcore; handle_events drains it
  uint32_t self = vcore_id();
  for (auto _ : state) {
    send_event(&msg, kEvNop, self);
    handle_events();
  }
  uth_enable_notifs();
}
BENCHMARK(BM_SendHandleSameVcore);

uint32_t other_vcore() { return (vcore_id() + 1) % static_cast<uint32_t>(max_vcores()); }

// Sends one event and spins until its handler has run elsewhere.
void round_trip(uint32_t target) {
  struct event_msg msg {};
  uint64_t before = g_handled.load(std::memory_order_acquire);
  send_event(&msg, kEvStamp, target);
  while (g_handled.load(std::memory_order_acquire) == before) __builtin_ia32_pause();
}

void BM_CrossVcoreToParked(benchmark::State &state) {
  if (max_vcores() < 2) {
    state.SkipWithError("needs 2 vcores");
    return;
  }
  vcore_set_idle_spin_us(static_cast<uint32_t>(state.range(0)));
  uth_disable_notifs();  // the sender stays where it is
  uint32_t target = other_vcore();
  for (auto _ : state) {
    state.PauseTiming();
    // Let the target run dry: its vcore_entry handles the event, finds no
    // uthread, yields, polls for the idle spin, then sleeps.
    auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(300);
    while (std::chrono::steady_clock::now() < until) __builtin_ia32_pause();
    state.ResumeTiming();
    round_trip(target);
  }
  uth_enable_notifs();
  vcore_set_idle_spin_us(50);
}
BENCHMARK(BM_CrossVcoreToParked)->Arg(0)->Arg(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_CrossVcoreToBusy(benchmark::State &state) {
  if (max_vcores() < 2) {
    state.SkipWithError("needs 2 vcores");
    return;
  }
  parlib_test::fifo_set_target_vcores(2);
  std::atomic<bool> stop{false};
  std::atomic<long> spinner_vcore{-1};
  struct Arg {
    std::atomic<bool> *stop;
    std::atomic<long> *vcore;
  } arg{&stop, &spinner_vcore};
  auto *t = parlib_test::fifo_spawn(
      [](void *p) {
        auto *a = static_cast<Arg *>(p);
        uth_disable_notifs();
        a->vcore->store(vcore_id());
        uth_enable_notifs();
        while (!a->stop->load(std::memory_order_relaxed)) __builtin_ia32_pause();
      },
      &arg);
  while (spinner_vcore.load() < 0) parlib_test::fifo_yield();
  uth_disable_notifs();
  uint32_t target = static_cast<uint32_t>(spinner_vcore.load());
  if (target == vcore_id()) {
    uth_enable_notifs();
    stop = true;
    parlib_test::fifo_join(t);
    state.SkipWithError("spinner landed on the sender's vcore");
    return;
  }
  for (auto _ : state) round_trip(target);
  uth_enable_notifs();
  stop = true;
  parlib_test::fifo_join(t);
}
BENCHMARK(BM_CrossVcoreToBusy)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char **argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ev_handlers[kEvNop] = nop_handler;
  ev_handlers[kEvStamp] = stamp_handler;
  parlib_test::fifo_init(max_vcores());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

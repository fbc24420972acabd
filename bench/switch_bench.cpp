// switch_bench: microbenchmarks of the pieces of a uthread switch, each
// next to the kernel's counterpart (Google Benchmark).
//
//   BM_RawSwitch        parlib_ctx_swap ping-pong between two contexts on
//                       their own stacks: callee-saved registers, rsp, rip,
//                       MXCSR and x87 CW, nothing else. Its two sides call
//                       the swap from different places, so each resume's
//                       ret is mispredicted (~8 ns here); a scheduler's
//                       threads switch from one place and do not pay it
//   BM_SwitchFloor      the floor of a uthread-to-uthread switch: two
//                       contexts that swap from one call site in one loop
//                       (every ret predicted), with one wrfsbase per
//                       switch (fsbase:1; skipped without FSGSBASE) or
//                       none (fsbase:0). A scheduler's yield cannot do
//                       less than fsbase:1; ctxswitch's uthread figure is
//                       compared with it
//   BM_Wrfsbase         one FS-base write with the instruction (skipped
//                       when AT_HWCAP2 lacks FSGSBASE)
//   BM_ArchPrctlSetFs   the same write through arch_prctl, the fallback
//   BM_UthreadYield     uthread_yield through vcore context on one vcore
//                       with the per-vcore FIFO scheduler: alone
//                       (partners:0), ping-pong with one partner
//                       (partners:1), round robin over 8 threads
//   BM_SchedYield       sched_yield of a lone kernel task (the NPTL fast
//                       path; the two-thread NPTL switch is what ctxswitch
//                       measures)
//
// Every benchmark reports ns per operation in a counter (ns_per_switch,
// ns_per_yield), timed around the loop on the monotonic clock: one
// iteration may hold several operations.
//
// main() turns itself into thread0 (a uthread on vcore 0) before running
// anything, so that BM_UthreadYield can yield from the benchmark loop
// itself; the other benchmarks run on that vcore's pinned kernel task.
#include <benchmark/benchmark.h>

#include <parlib/uthread.h>
#include <parlib/vcore.h>

#include <asm/prctl.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "percore_sched.h"
#include "vcore/arch/x86_64/context.h"

namespace {

using parlib::detail::ArchContext;
using Clock = std::chrono::steady_clock;

// Sets the per-operation counter from a loop timed with t0/t1.
void report_ns(benchmark::State &state, const char *name, Clock::time_point t0,
               Clock::time_point t1, double ops_per_iteration) {
  double ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
  double ops = static_cast<double>(state.iterations()) * ops_per_iteration;
  if (ops > 0) state.counters[name] = ns / ops;
}

// ------------------------------------------------------------ raw switch

// The two contexts of the ping-pong. The partner lives for the whole
// process: after a run it stays suspended in its loop, and the next run
// resumes it there.
struct RawPair {
  ArchContext bench;
  ArchContext partner;
};
RawPair g_raw;

[[noreturn]] void raw_partner(void *arg) {
  auto *p = static_cast<RawPair *>(arg);
  for (;;) parlib::detail::parlib_ctx_swap(&p->partner, &p->bench);
}

void BM_RawSwitch(benchmark::State &state) {
  static bool made = [] {
    constexpr size_t kStack = 64 << 10;
    void *stack = uthread_stack_alloc(kStack, 4096);
    if (stack == nullptr) {
      perror("switch_bench: uthread_stack_alloc");
      abort();
    }
    parlib::detail::make_context(&g_raw.partner, stack, kStack, raw_partner, &g_raw);
    return true;
  }();
  (void)made;
  auto t0 = Clock::now();
  for (auto _ : state) parlib::detail::parlib_ctx_swap(&g_raw.bench, &g_raw.partner);
  auto t1 = Clock::now();
  report_ns(state, "ns_per_switch", t0, t1, 2);  // there and back
}
BENCHMARK(BM_RawSwitch);

// ------------------------------------------------------------ switch floor

bool cpu_has_fsgsbase();
void *thread_pointer();

// Two members take turns from the same call site in the same loop, so
// each swap's ret returns where the return-stack buffer says; the bench
// context only starts and ends a batch. `last` is the member that handed
// back, the one to resume next.
struct FloorRing {
  ArchContext bench, a, b;
  ArchContext *last = nullptr;
  long hops_left = 0;
  void *tp = nullptr;
  bool fsbase = false;
};
FloorRing g_floor;

[[gnu::noinline]] void floor_hop(ArchContext *from, ArchContext *to) {
  // The same value as now: the write costs what a switch's write costs.
  if (g_floor.fsbase) asm volatile("wrfsbase %0" : : "r"(g_floor.tp) : "memory");
  parlib::detail::parlib_ctx_swap(from, to);
}

[[noreturn]] void floor_member(void *arg) {
  auto *self = static_cast<ArchContext *>(arg);
  ArchContext *other = self == &g_floor.a ? &g_floor.b : &g_floor.a;
  for (;;) {
    while (g_floor.hops_left > 0) {
      --g_floor.hops_left;
      floor_hop(self, other);
    }
    g_floor.last = self;
    parlib::detail::parlib_ctx_swap(self, &g_floor.bench);
  }
}

void BM_SwitchFloor(benchmark::State &state) {
  const bool fsbase = state.range(0) != 0;
  if (fsbase && !cpu_has_fsgsbase()) {
    state.SkipWithError("AT_HWCAP2 has no FSGSBASE: the CPU or kernel forbids wrfsbase");
    return;
  }
  static bool made = [] {
    constexpr size_t kStack = 64 << 10;
    for (ArchContext *c : {&g_floor.a, &g_floor.b}) {
      void *stack = uthread_stack_alloc(kStack, 4096);
      if (stack == nullptr) {
        perror("switch_bench: uthread_stack_alloc");
        abort();
      }
      parlib::detail::make_context(c, stack, kStack, floor_member, c);
    }
    g_floor.last = &g_floor.a;
    return true;
  }();
  (void)made;
  g_floor.fsbase = fsbase;
  g_floor.tp = thread_pointer();
  constexpr long kBatch = 1000;
  auto t0 = Clock::now();
  for (auto _ : state) {
    g_floor.hops_left = kBatch;
    parlib::detail::parlib_ctx_swap(&g_floor.bench, g_floor.last);
  }
  auto t1 = Clock::now();
  report_ns(state, "ns_per_switch", t0, t1, kBatch);
}
BENCHMARK(BM_SwitchFloor)->ArgName("fsbase")->Arg(0)->Arg(1);

// --------------------------------------------------------------- FS base

bool cpu_has_fsgsbase() {
#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif
  return (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0;
}

// The current thread pointer: glibc (and parlib) keep the TCB's address in
// its first word. Writing the same value back is harmless, which is what
// lets these benchmarks run on a live thread.
void *thread_pointer() {
  void *tp;
  asm volatile("movq %%fs:0, %0" : "=r"(tp));
  return tp;
}

void BM_Wrfsbase(benchmark::State &state) {
  if (!cpu_has_fsgsbase()) {
    state.SkipWithError("AT_HWCAP2 has no FSGSBASE: the CPU or kernel forbids wrfsbase");
    return;
  }
  void *tp = thread_pointer();
  auto t0 = Clock::now();
  for (auto _ : state) asm volatile("wrfsbase %0" : : "r"(tp) : "memory");
  auto t1 = Clock::now();
  report_ns(state, "ns_per_switch", t0, t1, 1);
}
BENCHMARK(BM_Wrfsbase);

void BM_ArchPrctlSetFs(benchmark::State &state) {
  void *tp = thread_pointer();
  auto t0 = Clock::now();
  for (auto _ : state) syscall(SYS_arch_prctl, ARCH_SET_FS, tp);
  auto t1 = Clock::now();
  report_ns(state, "ns_per_switch", t0, t1, 1);
}
BENCHMARK(BM_ArchPrctlSetFs);

// --------------------------------------------------------- uthread yield

std::atomic<bool> g_partners_stop{false};

void yield_partner(void *) {
  while (!g_partners_stop.load(std::memory_order_relaxed)) uthread_yield(true, nullptr, nullptr);
}

// thread0 yields in the benchmark loop; each partner on the same vcore's
// queue gets one turn per iteration, so an iteration is 1 + partners
// yields, each one uthread -> vcore context -> next uthread.
void BM_UthreadYield(benchmark::State &state) {
  auto partners = static_cast<size_t>(state.range(0));
  uint32_t vcore = parlib_bench::pcs_thread0_vcore();
  g_partners_stop.store(false, std::memory_order_relaxed);
  std::vector<parlib_bench::PcThread *> threads;
  for (size_t i = 0; i < partners; ++i)
    threads.push_back(
        parlib_bench::pcs_spawn(yield_partner, nullptr, vcore, 64 << 10, "yield partner"));
  // Warm-up: the first run of a fresh uthread pays for its cold stack and
  // TLS; let every partner take a few turns first.
  for (int i = 0; i < 16; ++i) uthread_yield(true, nullptr, nullptr);
  auto t0 = Clock::now();
  for (auto _ : state) uthread_yield(true, nullptr, nullptr);
  auto t1 = Clock::now();
  g_partners_stop.store(true, std::memory_order_relaxed);
  for (parlib_bench::PcThread *t : threads) parlib_bench::pcs_join(t);
  report_ns(state, "ns_per_yield", t0, t1, static_cast<double>(1 + partners));
}
BENCHMARK(BM_UthreadYield)->ArgName("partners")->Arg(0)->Arg(1)->Arg(7);

// ------------------------------------------------------------ NPTL yield

void BM_SchedYield(benchmark::State &state) {
  auto t0 = Clock::now();
  for (auto _ : state) sched_yield();
  auto t1 = Clock::now();
  report_ns(state, "ns_per_yield", t0, t1, 1);
}
BENCHMARK(BM_SchedYield);

}  // namespace

int main(int argc, char **argv) {
  // First of all: main becomes thread0, on one vcore (nothing here asks
  // for more), before Google Benchmark sets up anything per thread.
  parlib_bench::pcs_init();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// Build: needs targets parlib::parlib and benchmark::benchmark, plus
// test/support/fifo_sched.cpp (the FIFO test 2LS; include dir test/) but
// NOT test/support/test_main.cpp: this file has its own main(). The same
// recipe as sync_bench.
//
// Alarm firing lateness (callback time minus deadline) for 1 ms alarms,
// measured from a uthread (thread0 after uthread_lib_init, on the FIFO test
// scheduler with two vcores), reported as counters median_us, p99_us and
// max_us:
//  - BM_AlarmLateness_BusyVcore: the uthread that started the alarm spins on
//    its vcore, so the callback interrupts it (notification, SIGUSR1);
//  - BM_AlarmLateness_IdleVcore: the uthread blocks until the callback wakes
//    it, so its vcore goes idle (polls, then sleeps in the kernel) and the
//    alarm event has to wake it;
//  - baselines: a plain kernel thread sleeping to the same deadline with
//    clock_nanosleep(TIMER_ABSTIME), and blocking on a timerfd, i.e. the
//    kernel timers the alarm service is built on, without the service
//    thread's hop and the event delivery.
// The wall time per iteration is the alarm length (~1 ms) plus lateness and
// means little; read the counters.
// Run: ./alarm_bench [--benchmark_filter=...]

#include <benchmark/benchmark.h>

#include <parlib/alarm.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>

#include <sched.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "support/fifo_sched.h"

namespace {

constexpr uint64_t kAlarmUs = 1000;

uint64_t mono_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// kAlarmUs from now, rounded up to the microsecond (as set_waiter_rel does).
uint64_t next_deadline_us() { return (mono_ns() + 999u) / 1000u + kAlarmUs; }

// Lateness samples in ns, filled by callbacks (vcore context: no allocation,
// the vector is sized before the run).
struct Samples {
  std::vector<int64_t> ns;
  size_t n = 0;
  void reset(size_t cap) {
    ns.assign(cap, 0);
    n = 0;
  }
  void add(int64_t v) {
    if (n < ns.size()) ns[n++] = v;
  }
  void report(benchmark::State &state) {
    if (n == 0) return;
    std::sort(ns.begin(), ns.begin() + static_cast<ptrdiff_t>(n));
    auto at = [&](double q) {
      size_t i = static_cast<size_t>(q * static_cast<double>(n - 1) + 0.5);
      return static_cast<double>(ns[i]) / 1000.0;
    };
    state.counters["median_us"] = at(0.5);
    state.counters["p99_us"] = at(0.99);
    state.counters["max_us"] = at(1.0);
    state.counters["samples"] = static_cast<double>(n);
  }
};
Samples g_samples;

// One alarm in flight at a time.
struct Shot {
  struct alarm_waiter w;
  uint64_t deadline_us = 0;
  std::atomic<bool> done{false};
  // Idle variant: 0, the blocked uthread, or 1 once the callback ran.
  std::atomic<uintptr_t> waiter{0};
};

void record(Shot *s) {
  g_samples.add(static_cast<int64_t>(mono_ns()) - static_cast<int64_t>(s->deadline_us * 1000u));
}

void busy_cb(struct alarm_waiter *w) {
  auto *s = static_cast<Shot *>(w->data);
  record(s);
  s->done.store(true, std::memory_order_release);
}

void BM_AlarmLateness_BusyVcore(benchmark::State &state) {
  g_samples.reset(static_cast<size_t>(state.max_iterations));
  Shot s;
  init_waiter(&s.w, busy_cb);
  s.w.data = &s;
  for (auto _ : state) {
    s.done.store(false, std::memory_order_relaxed);
    s.deadline_us = next_deadline_us();
    set_waiter_abs(&s.w, s.deadline_us);
    start_alarm(&s.w);
    while (!s.done.load(std::memory_order_acquire)) __builtin_ia32_pause();
  }
  g_samples.report(state);
}

void idle_cb(struct alarm_waiter *w) {
  auto *s = static_cast<Shot *>(w->data);
  record(s);
  // acq_rel: takes the uthread the yield published, or tells a yield that
  // has not happened yet not to block.
  uintptr_t u = s->waiter.exchange(1, std::memory_order_acq_rel);
  if (u > 1) uthread_runnable(reinterpret_cast<struct uthread *>(u));
}

void BM_AlarmLateness_IdleVcore(benchmark::State &state) {
  g_samples.reset(static_cast<size_t>(state.max_iterations));
  Shot s;
  init_waiter(&s.w, idle_cb);
  s.w.data = &s;
  for (auto _ : state) {
    s.waiter.store(0, std::memory_order_relaxed);
    s.deadline_us = next_deadline_us();
    set_waiter_abs(&s.w, s.deadline_us);
    start_alarm(&s.w);
    uthread_yield(
        true,
        [](struct uthread *uth, void *arg) {
          auto *shot = static_cast<Shot *>(arg);
          uintptr_t expected = 0;
          if (!shot->waiter.compare_exchange_strong(expected, reinterpret_cast<uintptr_t>(uth),
                                                    std::memory_order_acq_rel))
            uthread_runnable(uth);  // the callback already ran
        },
        &s);
  }
  g_samples.report(state);
}

// A thread created here (by thread0, a uthread) inherits its vcore task's
// one-CPU mask; the baselines run with the process's mask instead, like the
// alarm service thread.
void take_process_cpu_mask() {
  cpu_set_t cpus;
  if (sched_getaffinity(getpid(), sizeof cpus, &cpus) == 0)
    sched_setaffinity(0, sizeof cpus, &cpus);
}

// Baselines on a plain kernel thread (not a vcore), same deadlines.
void BM_Baseline_ClockNanosleep(benchmark::State &state) {
  g_samples.reset(static_cast<size_t>(state.max_iterations));
  std::thread th([&] {
    take_process_cpu_mask();
    for (auto _ : state) {
      const uint64_t deadline_ns = mono_ns() + kAlarmUs * 1000u;
      struct timespec ts = {static_cast<time_t>(deadline_ns / 1000000000u),
                            static_cast<long>(deadline_ns % 1000000000u)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
      }
      g_samples.add(static_cast<int64_t>(mono_ns() - deadline_ns));
    }
  });
  th.join();
  g_samples.report(state);
}

void BM_Baseline_Timerfd(benchmark::State &state) {
  g_samples.reset(static_cast<size_t>(state.max_iterations));
  std::thread th([&] {
    take_process_cpu_mask();
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    for (auto _ : state) {
      const uint64_t deadline_ns = mono_ns() + kAlarmUs * 1000u;
      struct itimerspec its = {};
      its.it_value = {static_cast<time_t>(deadline_ns / 1000000000u),
                      static_cast<long>(deadline_ns % 1000000000u)};
      timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, nullptr);
      uint64_t expirations;
      while (read(fd, &expirations, sizeof(expirations)) != sizeof(expirations)) {
      }
      g_samples.add(static_cast<int64_t>(mono_ns() - deadline_ns));
    }
    close(fd);
  });
  th.join();
  g_samples.report(state);
}

// Fixed iteration counts: each is ~1 ms of waiting, and the counters need
// enough samples for a p99.
BENCHMARK(BM_AlarmLateness_BusyVcore)
    ->Iterations(1000)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AlarmLateness_IdleVcore)
    ->Iterations(1000)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Baseline_ClockNanosleep)
    ->Iterations(1000)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Baseline_Timerfd)->Iterations(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char **argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (vcore_lib_init() != 0) return 2;
  parlib_test::fifo_init(max_vcores() < 2 ? max_vcores() : 2);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

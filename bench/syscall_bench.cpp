// syscall_bench: Google Benchmark of the asynchronous system call layer.
//
// Wake-up latency of a thread blocked in read() on a pipe when another
// thread writes to it: uthreads (the reader's read goes to its vcore's
// io_uring, the writer's write completes at once and the reader's vcore
// reaps the completion) beside NPTL threads doing the same with plain
// blocking read/write. Each iteration is one round trip, i.e. two
// wake-ups; the wake_us counter is half of it. The sweep pairs like with
// like: uthreads on two vcores (two CPUs: every wake-up crosses CPUs) and
// on one vcore, NPTL threads placed by the kernel on the process's CPUs
// and both pinned to one CPU (docs/syscall.md, "Wake-up latency").
//
// Also the cost of a call that completes at once (a read of a non-empty
// pipe) through the layer, beside the raw system call.
//
// Its own main() (not test/support/test_main.cpp): the FIFO test
// scheduler takes over main with 2 vcores, and the benchmarks run on
// thread0.
#include <benchmark/benchmark.h>
#include <parlib/syscall.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "support/fifo_sched.h"

namespace {

constexpr int kStop = 0xff;

// The echo side: reads a byte from in, writes it to out, until kStop.
struct Echo {
  int in;
  int out;
};

void echo_loop(const Echo &e) {
  for (;;) {
    unsigned char c;
    if (read(e.in, &c, 1) != 1) break;
    if (write(e.out, &c, 1) != 1) break;
    if (c == kStop) break;
  }
}

uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t blocked_total() {
  uint64_t n = 0;
  for (int v = 0; v < max_vcores(); ++v) {
    struct parlib_syscall_stats s {};
    if (parlib_syscall_get_stats(static_cast<uint32_t>(v), &s) == 0) n += s.blocked;
  }
  return n;
}

// Microseconds per wake-up: a round trip is two.
void report(benchmark::State &state, uint64_t ns, uint64_t round_trips) {
  state.counters["wake_us"] =
      round_trips == 0 ? 0.0
                       : static_cast<double>(ns) / 1e3 / (2.0 * static_cast<double>(round_trips));
}

// thread0 (a uthread) and an echo uthread, on state.range(0) vcores.
void BM_WakeLatency_Uthread(benchmark::State &state) {
  parlib_test::fifo_set_target_vcores(static_cast<int>(state.range(0)));
  int ab[2], ba[2];
  if (pipe(ab) != 0 || pipe(ba) != 0) {
    state.SkipWithError("pipe");
    return;
  }
  Echo e{ab[0], ba[1]};
  parlib_test::TestThread *t =
      parlib_test::fifo_spawn([](void *p) { echo_loop(*static_cast<Echo *>(p)); }, &e, 64 << 10);
  unsigned char c = 1;
  // Warm up: both vcores online, rings created.
  for (int i = 0; i < 100; ++i) {
    (void)!write(ab[1], &c, 1);
    (void)!read(ba[0], &c, 1);
  }
  uint64_t blocked0 = blocked_total();
  uint64_t t0 = now_ns();
  for (auto _ : state) {
    (void)!write(ab[1], &c, 1);
    (void)!read(ba[0], &c, 1);
  }
  uint64_t elapsed = now_ns() - t0;
  uint64_t blocked = blocked_total() - blocked0;
  c = kStop;
  (void)!write(ab[1], &c, 1);
  (void)!read(ba[0], &c, 1);
  parlib_test::fifo_join(t);
  for (int fd : {ab[0], ab[1], ba[0], ba[1]}) close(fd);
  report(state, elapsed, static_cast<uint64_t>(state.iterations()));
  // Two per round trip when both reads had to wait.
  state.counters["blocked_per_iter"] =
      static_cast<double>(blocked) / static_cast<double>(state.iterations());
}

// The CPUs of the process, read in main() before the vcores exist. A
// pthread made by a uthread would otherwise inherit its vcore task's
// affinity: a single CPU.
cpu_set_t g_process_cpus;

// Two NPTL threads doing the same round trips with the real calls. The
// benchmark thread is a uthread, so both sides are plain pthreads here and
// the benchmark thread only waits for them. state.range(0) == 0: both may
// run on any of the process's CPUs (where a plain program's threads are);
// 1: both pinned to the process's first CPU.
struct NptlPing {
  int ab[2], ba[2];
  long iters;
  std::atomic<uint64_t> ns{0};
};

void BM_WakeLatency_Nptl(benchmark::State &state) {
  uint64_t total_ns = 0, total_trips = 0;
  for (auto _ : state) {
    NptlPing p;
    if (pipe(p.ab) != 0 || pipe(p.ba) != 0) {
      state.SkipWithError("pipe");
      return;
    }
    p.iters = 20000;
    cpu_set_t cpus = g_process_cpus;
    if (state.range(0) == 1) {
      int first = 0;
      while (first < CPU_SETSIZE && !CPU_ISSET(first, &g_process_cpus)) ++first;
      CPU_ZERO(&cpus);
      CPU_SET(first, &cpus);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof cpus, &cpus);
    pthread_t echo, ping;
    pthread_create(
        &echo, &attr,
        [](void *a) -> void * {
          auto *q = static_cast<NptlPing *>(a);
          echo_loop(Echo{q->ab[0], q->ba[1]});
          return nullptr;
        },
        &p);
    pthread_create(
        &ping, &attr,
        [](void *a) -> void * {
          auto *q = static_cast<NptlPing *>(a);
          unsigned char c = 1;
          for (int i = 0; i < 100; ++i) {
            (void)!write(q->ab[1], &c, 1);
            (void)!read(q->ba[0], &c, 1);
          }
          uint64_t t0 = now_ns();
          for (long i = 0; i < q->iters; ++i) {
            (void)!write(q->ab[1], &c, 1);
            (void)!read(q->ba[0], &c, 1);
          }
          q->ns.store(now_ns() - t0);
          c = kStop;
          (void)!write(q->ab[1], &c, 1);
          (void)!read(q->ba[0], &c, 1);
          return nullptr;
        },
        &p);
    pthread_attr_destroy(&attr);
    while (p.ns.load() == 0) usleep(1000);  // the uthread waits, its vcore does not
    pthread_join(ping, nullptr);
    pthread_join(echo, nullptr);
    for (int fd : {p.ab[0], p.ab[1], p.ba[0], p.ba[1]}) close(fd);
    state.SetIterationTime(static_cast<double>(p.ns.load()) / 1e9 / static_cast<double>(p.iters));
    total_ns += p.ns.load();
    total_trips += static_cast<uint64_t>(p.iters);
  }
  report(state, total_ns, total_trips);
}

// A read that completes at once (the pipe holds data): the layer's fast
// path against the raw system call.
void BM_ImmediateRead_Uthread(benchmark::State &state) {
  int p[2];
  if (pipe(p) != 0) return;
  unsigned char c = 0;
  for (auto _ : state) {
    (void)!write(p[1], &c, 1);
    (void)!read(p[0], &c, 1);
  }
  close(p[0]);
  close(p[1]);
}

void BM_ImmediateRead_RawSyscall(benchmark::State &state) {
  int p[2];
  if (pipe(p) != 0) return;
  unsigned char c = 0;
  for (auto _ : state) {
    syscall(SYS_write, p[1], &c, 1);
    syscall(SYS_read, p[0], &c, 1);
  }
  close(p[0]);
  close(p[1]);
}

BENCHMARK(BM_WakeLatency_Uthread)
    ->ArgName("vcores")
    ->Arg(2)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_WakeLatency_Nptl)
    ->ArgName("one_cpu")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ImmediateRead_Uthread)->UseRealTime();
BENCHMARK(BM_ImmediateRead_RawSyscall)->UseRealTime();

}  // namespace

int main(int argc, char **argv) {
  benchmark::Initialize(&argc, argv);
  if (sched_getaffinity(0, sizeof g_process_cpus, &g_process_cpus) != 0) {
    perror("syscall_bench: sched_getaffinity");
    return 1;
  }
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  if (vcore_lib_init() != 0) {
    perror("syscall_bench: vcore_lib_init");
    return 1;
  }
  parlib_test::fifo_init(max_vcores() < 2 ? max_vcores() : 2);
  printf("syscall backend: %s\n",
         parlib_syscall_backend() == PARLIB_SYSC_IO_URING ? "io_uring" : "helper threads");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

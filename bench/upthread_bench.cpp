// Google Benchmark: upthread against NPTL, same process, same run.
//   create+join of an empty thread; condvar ping-pong (two threads taking
//   turns through one mutex and condvar) on one and two vcores; a mutex
//   contended by 2, 8 and 64 threads (bench/mutex_ratio.sh prints the ratios); a barrier round with
//   2, 8 and 64 threads.
// libupthread's constructor makes main (where Google Benchmark runs) a
// upthread, so the upthread cases start from uthread context; the NPTL
// cases use glibc's functions from the same thread (main keeps its glibc
// TCB as thread0).
#include <benchmark/benchmark.h>
#include <parlib/vcore.h>
#include <pthread.h>
#include <upthread/upthread.h>

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <vector>

namespace {

void *empty(void *arg) { return arg; }

void BM_CreateJoin_Upthread(benchmark::State &state) {
  for (auto _ : state) {
    upthread_t t;
    upthread_create(&t, nullptr, empty, nullptr);
    upthread_join(t, nullptr);
  }
}
BENCHMARK(BM_CreateJoin_Upthread);

void BM_CreateJoin_Nptl(benchmark::State &state) {
  for (auto _ : state) {
    pthread_t t;
    pthread_create(&t, nullptr, empty, nullptr);
    pthread_join(t, nullptr);
  }
}
BENCHMARK(BM_CreateJoin_Nptl);

// Ping-pong: the two sides take turns, each turn one lock, one wait and one
// signal; iterations counts round trips.
template <typename Mutex, typename Cond, auto Lock, auto Unlock, auto Wait, auto Signal>
struct PingPong {
  Mutex *m;
  Cond *c;
  int turn = 0;
  long rounds = 0;
  static void *partner(void *p) {
    auto *pp = static_cast<PingPong *>(p);
    for (long i = 0; i < pp->rounds; ++i) pp->take_turn(1);
    return nullptr;
  }
  void take_turn(int me) {
    Lock(m);
    while (turn != me) Wait(c, m);
    turn = 1 - me;
    Signal(c);
    Unlock(m);
  }
};

using UpPingPong = PingPong<upthread_mutex_t, upthread_cond_t, upthread_mutex_lock,
                            upthread_mutex_unlock, upthread_cond_wait, upthread_cond_signal>;
using NptlPingPong = PingPong<pthread_mutex_t, pthread_cond_t, pthread_mutex_lock,
                              pthread_mutex_unlock, pthread_cond_wait, pthread_cond_signal>;

void BM_CondPingPong_Upthread(benchmark::State &state) {
  // Range 0: vcores (1: both sides on one vcore; 2: one each).
  upthread_set_num_vcores(static_cast<int>(state.range(0)));
  upthread_mutex_t m = UPTHREAD_MUTEX_INITIALIZER;
  upthread_cond_t c = UPTHREAD_COND_INITIALIZER;
  UpPingPong pp{&m, &c};
  pp.rounds = state.max_iterations;
  upthread_t t;
  upthread_create(&t, nullptr, UpPingPong::partner, &pp);
  for (auto _ : state) pp.take_turn(0);
  upthread_join(t, nullptr);
  upthread_set_num_vcores(max_vcores());
}
BENCHMARK(BM_CondPingPong_Upthread)->Arg(1)->Arg(2);

void BM_CondPingPong_Nptl(benchmark::State &state) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  NptlPingPong pp{&m, &c};
  pp.rounds = state.max_iterations;
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int i = 0; i < state.range(0); ++i) CPU_SET(i, &set);
  pthread_attr_setaffinity_np(&attr, sizeof set, &set);
  pthread_create(&t, &attr, NptlPingPong::partner, &pp);
  for (auto _ : state) pp.take_turn(0);
  pthread_join(t, nullptr);
}
BENCHMARK(BM_CondPingPong_Nptl)->Arg(1)->Arg(2)->UseRealTime();

// N threads (range 0: 2, 8, 64) increment a counter under one mutex,
// 200,000 increments in all; items/s is increments per second. 8 and 64
// threads oversubscribe the CPUs (vcores for upthread, CPUs for NPTL).
constexpr long kContendedTotal = 200000;

template <typename Mutex, auto Lock, auto Unlock>
struct Contended {
  Mutex *m;
  long per_thread;
  long counter = 0;
  static void *run(void *p) {
    auto *c = static_cast<Contended *>(p);
    for (long i = 0; i < c->per_thread; ++i) {
      Lock(c->m);
      ++c->counter;
      Unlock(c->m);
    }
    return nullptr;
  }
};

void BM_MutexContended_Upthread(benchmark::State &state) {
  const int n = static_cast<int>(state.range(0));
  upthread_mutex_t m = UPTHREAD_MUTEX_INITIALIZER;
  std::vector<upthread_t> threads(static_cast<size_t>(n));
  for (auto _ : state) {
    Contended<upthread_mutex_t, upthread_mutex_lock, upthread_mutex_unlock> c{&m,
                                                                              kContendedTotal / n};
    for (auto &t : threads) upthread_create(&t, nullptr, decltype(c)::run, &c);
    for (auto t : threads) upthread_join(t, nullptr);
    if (c.counter != c.per_thread * n) state.SkipWithError("lost increments");
  }
  state.SetItemsProcessed(state.iterations() * (kContendedTotal / n) * n);
}
BENCHMARK(BM_MutexContended_Upthread)
    ->Arg(2)
    ->Arg(8)
    ->Arg(64)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_MutexContended_Nptl(benchmark::State &state) {
  const int n = static_cast<int>(state.range(0));
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  // Main runs on a vcore pinned to one CPU and threads inherit that: give
  // the pthreads the process's CPUs (the main task keeps the process mask).
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  cpu_set_t set;
  sched_getaffinity(getpid(), sizeof set, &set);
  pthread_attr_setaffinity_np(&attr, sizeof set, &set);
  std::vector<pthread_t> threads(static_cast<size_t>(n));
  for (auto _ : state) {
    Contended<pthread_mutex_t, pthread_mutex_lock, pthread_mutex_unlock> c{&m, kContendedTotal / n};
    for (auto &t : threads) pthread_create(&t, &attr, decltype(c)::run, &c);
    for (auto t : threads) pthread_join(t, nullptr);
    if (c.counter != c.per_thread * n) state.SkipWithError("lost increments");
  }
  state.SetItemsProcessed(state.iterations() * (kContendedTotal / n) * n);
}
BENCHMARK(BM_MutexContended_Nptl)
    ->Arg(2)
    ->Arg(8)
    ->Arg(64)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// A barrier round with N threads (range 0): every thread waits at the
// barrier once per iteration; time per round.
struct BarrierRun {
  long rounds;
  upthread_barrier_t ub;
  pthread_barrier_t pb;
  static void *up(void *p) {
    auto *b = static_cast<BarrierRun *>(p);
    for (long i = 0; i < b->rounds; ++i) upthread_barrier_wait(&b->ub);
    return nullptr;
  }
  static void *nptl(void *p) {
    auto *b = static_cast<BarrierRun *>(p);
    for (long i = 0; i < b->rounds; ++i) pthread_barrier_wait(&b->pb);
    return nullptr;
  }
};

void BM_BarrierRound_Upthread(benchmark::State &state) {
  int n = static_cast<int>(state.range(0));
  BarrierRun b{state.max_iterations};
  upthread_barrier_init(&b.ub, nullptr, static_cast<unsigned>(n));
  std::vector<upthread_t> threads(static_cast<size_t>(n - 1));
  for (auto &t : threads) upthread_create(&t, nullptr, BarrierRun::up, &b);
  for (auto _ : state) upthread_barrier_wait(&b.ub);
  for (auto t : threads) upthread_join(t, nullptr);
  upthread_barrier_destroy(&b.ub);
}
BENCHMARK(BM_BarrierRound_Upthread)->Arg(2)->Arg(8)->Arg(64)->UseRealTime();

void BM_BarrierRound_Nptl(benchmark::State &state) {
  int n = static_cast<int>(state.range(0));
  BarrierRun b{state.max_iterations};
  pthread_barrier_init(&b.pb, nullptr, static_cast<unsigned>(n));
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  cpu_set_t set;
  sched_getaffinity(getpid(), sizeof set, &set);  // main's vcore is pinned; threads are not
  pthread_attr_setaffinity_np(&attr, sizeof set, &set);
  std::vector<pthread_t> threads(static_cast<size_t>(n - 1));
  for (auto &t : threads) pthread_create(&t, &attr, BarrierRun::nptl, &b);
  for (auto _ : state) pthread_barrier_wait(&b.pb);
  for (auto t : threads) pthread_join(t, nullptr);
  pthread_barrier_destroy(&b.pb);
}
BENCHMARK(BM_BarrierRound_Nptl)->Arg(2)->Arg(8)->Arg(64)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

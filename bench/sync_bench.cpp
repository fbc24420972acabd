// Build: needs targets parlib::parlib and benchmark::benchmark, plus
// test/support/fifo_sched.cpp (the FIFO test 2LS; include dir test/) but
// NOT test/support/test_main.cpp: this file has its own main().
//
// Sync-layer microbenchmarks, each with its baseline in the same run:
//  - lock/unlock pairs, uncontended and contended (1..8 kernel threads):
//    spinlock, spin_pdr, MCS, MCS-PDR against pthread_mutex, and
//    uthread_mutex's uncontended fast path (one uthread);
//  - uthread_mutex against pthread_mutex with N threads hammering one lock
//    (uthreads on 2 vcores vs the same number of kernel threads);
//  - slab_cache_alloc/free against malloc/free, single pairs and batches,
//    1 and 2 threads.
// Run: ./sync_bench [--benchmark_filter=...]

#include <benchmark/benchmark.h>

#include <parlib/mcs.h>
#include <parlib/mutex.h>
#include <parlib/slab.h>
#include <parlib/spinlock.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "support/fifo_sched.h"

namespace {

// A thread made by a uthread inherits the CPU mask of its vcore's kernel
// task (one CPU). Plain benchmark threads take the process's mask back
// (the main kernel task keeps it), so that N kernel threads really spread
// over the CPUs; thread 0 of a Google Benchmark run is main, i.e. thread0,
// a uthread on vcore 0, and stays where it is.
void unpin_plain_thread() {
  if (uthread_self() != nullptr) return;
  cpu_set_t cpus;
  if (sched_getaffinity(getpid(), sizeof cpus, &cpus) == 0)
    sched_setaffinity(0, sizeof cpus, &cpus);
}

// ------------------------------------------------------------ lock pairs

struct SpinLock {
  spinlock_t l = SPINLOCK_INITIALIZER;
  void lock() { spinlock_lock(&l); }
  void unlock() { spinlock_unlock(&l); }
};
struct SpinPdr {
  spin_pdr_lock_t l = SPINPDR_INITIALIZER;
  void lock() { spin_pdr_lock(&l); }
  void unlock() { spin_pdr_unlock(&l); }
};
// MCS with the caller's qnode: the adapter keeps one per thread.
struct Mcs {
  mcs_lock l = MCS_LOCK_INIT;
  static thread_local mcs_lock_qnode q;
  void lock() { mcs_lock_lock(&l, &q); }
  void unlock() { mcs_lock_unlock(&l, &q); }
};
thread_local mcs_lock_qnode Mcs::q = MCS_QNODE_INIT;
struct McsPdr {
  mcs_pdr_lock_t l = MCS_PDRLOCK_INIT;
  void lock() { mcs_pdr_lock(&l); }
  void unlock() { mcs_pdr_unlock(&l); }
};
struct PthreadMutex {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  void lock() { pthread_mutex_lock(&m); }
  void unlock() { pthread_mutex_unlock(&m); }
};
// Only with one thread, main (thread0, a uthread): the fast path of
// uthread_mutex against pthread_mutex's.
struct UthreadMutex {
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  void lock() { uthread_mutex_lock(&m); }
  void unlock() { uthread_mutex_unlock(&m); }
};

// One lock shared by all of a benchmark's threads; a little work inside
// (a shared counter) so the critical section is not empty.
template <typename Lock>
struct SharedLock {
  static Lock lock;
  static long counter;
};
template <typename Lock>
Lock SharedLock<Lock>::lock;
template <typename Lock>
long SharedLock<Lock>::counter = 0;

template <typename Lock>
void BM_LockUnlock(benchmark::State& state) {
  unpin_plain_thread();
  for (auto _ : state) {
    SharedLock<Lock>::lock.lock();
    benchmark::DoNotOptimize(++SharedLock<Lock>::counter);
    SharedLock<Lock>::lock.unlock();
  }
  state.SetItemsProcessed(state.iterations());
}

// Threads(1) is the uncontended case; 2..8 kernel threads contend (this
// machine has 2 CPUs, so 4 and 8 are oversubscribed).
#define LOCK_BENCH(Lock) BENCHMARK_TEMPLATE(BM_LockUnlock, Lock)->ThreadRange(1, 8)->UseRealTime()
LOCK_BENCH(PthreadMutex);
LOCK_BENCH(SpinLock);
LOCK_BENCH(SpinPdr);
LOCK_BENCH(Mcs);
LOCK_BENCH(McsPdr);
BENCHMARK_TEMPLATE(BM_LockUnlock, UthreadMutex)->Threads(1)->UseRealTime();

// ------------------------------------------- uthread_mutex vs pthread_mutex

constexpr int kOpsPerThread = 100000;

struct UthreadMutexJob {
  uthread_mutex_t* m;
  long* counter;
};

void uthread_mutex_worker(void* arg) {
  auto* job = static_cast<UthreadMutexJob*>(arg);
  for (int i = 0; i < kOpsPerThread; ++i) {
    uthread_mutex_lock(job->m);
    ++*job->counter;
    uthread_mutex_unlock(job->m);
  }
}

// state.range(0) uthreads on 2 vcores each do kOpsPerThread lock/unlock
// pairs on one uthread_mutex. Runs on thread0 (uthread context).
void BM_UthreadMutexContended(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  parlib_test::fifo_set_target_vcores(2);
  uthread_mutex_t m = UTHREAD_MUTEX_INITIALIZER;
  long counter = 0;
  UthreadMutexJob job{&m, &counter};
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<parlib_test::TestThread*> ts;
    for (int i = 0; i < n; ++i) ts.push_back(parlib_test::fifo_spawn(uthread_mutex_worker, &job));
    for (auto* t : ts) parlib_test::fifo_join(t);
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (counter != static_cast<long>(state.iterations()) * n * kOpsPerThread)
    state.SkipWithError("lost updates");
  state.SetItemsProcessed(state.iterations() * n * kOpsPerThread);
}
BENCHMARK(BM_UthreadMutexContended)->Arg(1)->Arg(2)->Arg(8)->Arg(64)->UseManualTime();

// The baseline: the same work with state.range(0) kernel threads on one
// pthread_mutex (64 kernel threads on 2 CPUs, like 64 uthreads on 2
// vcores).
void BM_PthreadMutexContended(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  long counter = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    for (int i = 0; i < n; ++i)
      ts.emplace_back([&] {
        unpin_plain_thread();
        for (int k = 0; k < kOpsPerThread; ++k) {
          pthread_mutex_lock(&m);
          ++counter;
          pthread_mutex_unlock(&m);
        }
      });
    for (auto& t : ts) t.join();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (counter != static_cast<long>(state.iterations()) * n * kOpsPerThread)
    state.SkipWithError("lost updates");
  state.SetItemsProcessed(state.iterations() * n * kOpsPerThread);
}
BENCHMARK(BM_PthreadMutexContended)->Arg(1)->Arg(2)->Arg(8)->Arg(64)->UseManualTime();

// ------------------------------------------------------- slab vs malloc

constexpr size_t kObjSize = 64;

slab_cache* bench_cache() {
  static slab_cache* c = slab_cache_create("bench64", kObjSize, 0, 0, nullptr, nullptr);
  return c;
}

void BM_SlabAllocFree(benchmark::State& state) {
  unpin_plain_thread();
  slab_cache* c = bench_cache();
  for (auto _ : state) {
    void* p = slab_cache_alloc(c, 0);
    benchmark::DoNotOptimize(p);
    slab_cache_free(c, p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SlabAllocFree)->Threads(1)->Threads(2)->UseRealTime();

void BM_MallocFree(benchmark::State& state) {
  unpin_plain_thread();
  for (auto _ : state) {
    void* p = std::malloc(kObjSize);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MallocFree)->Threads(1)->Threads(2)->UseRealTime();

// Batches: state.range(0) objects live at once, then all freed.
void BM_SlabBatch(benchmark::State& state) {
  unpin_plain_thread();
  slab_cache* c = bench_cache();
  std::vector<void*> objs(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    for (auto& p : objs) p = slab_cache_alloc(c, 0);
    benchmark::DoNotOptimize(objs.data());
    for (void* p : objs) slab_cache_free(c, p);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SlabBatch)->Arg(64)->Arg(4096)->Threads(1)->Threads(2)->UseRealTime();

void BM_MallocBatch(benchmark::State& state) {
  unpin_plain_thread();
  std::vector<void*> objs(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    for (auto& p : objs) p = std::malloc(kObjSize);
    benchmark::DoNotOptimize(objs.data());
    for (void* p : objs) std::free(p);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_MallocBatch)->Arg(64)->Arg(4096)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

// main: thread0 runs the benchmarks as a uthread (the uthread_mutex
// benchmarks need uthread context); multi-threaded benchmarks use plain
// kernel threads, as Google Benchmark makes them.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (vcore_lib_init() != 0) return 2;
  parlib_test::fifo_init(max_vcores() < 2 ? max_vcores() : 2);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

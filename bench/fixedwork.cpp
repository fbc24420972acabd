// fixedwork: the scheduling-flexibility experiment of dissertation 2.6.3
// (Fig 2.8). T threads (default 1024) wait behind a barrier, then each runs
// the same busy loop; we record when each one finishes. Variants:
//   no-preempt      upthread, cooperative: threads run to completion in turn
//   preempt:USEC    upthread with a preemption tick every USEC microseconds
//   yield:N         upthread, each thread yields every N outer iterations
//   nptl            Linux NPTL threads
//   nptl-yield:N    NPTL threads calling sched_yield every N outer iterations
// ideal_ms is the single-thread loop time x T / cores, measured in the same
// run with every core busy (loaded_thread_ms). Per-thread completion times go to a CSV;
// bench/plot_fixedwork.sh draws completed threads over time for every variant, like Fig 2.8.
#include <parlib/vcore.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <upthread/upthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int threads = 1024;
  int cores = 0;         // 0: every CPU in the affinity mask
  double seconds = 2.0;  // target length of one variant at the ideal
  std::vector<std::string> variants = {
      "no-preempt", "preempt:1000000", "preempt:500000", "preempt:100000", "preempt:10000",
      "yield:1000", "yield:1",         "nptl",           "nptl-yield:1"};
  bool json = false;
  std::string csv;
};

constexpr int kOuter = 1000;  // outer iterations; yield:N counts these

struct Work {
  long inner = 1000;  // calibrated so one thread's loop takes the right time
};
Work g_work;
int g_cores = 1;
std::atomic<uint64_t> g_sink{0};

// The busy loop: kOuter x inner steps of a dependent LCG, so the compiler
// can neither vectorise nor drop it.
void busy(long inner, int yield_every, bool nptl = false) {
  uint64_t x = 88172645463325252ull;
  for (int o = 0; o < kOuter; ++o) {
    for (long i = 0; i < inner; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
    if (yield_every > 0 && (o + 1) % yield_every == 0) {
      if (nptl)
        sched_yield();
      else
        upthread_yield();
    }
  }
  g_sink.fetch_add(x, std::memory_order_relaxed);
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// One thread's loop, timed on this (thread0's) vcore, best of three.
double single_thread_ms() {
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    busy(g_work.inner, 0);
    best = std::min(best, ms_since(t0));
  }
  return best;
}

// One thread's loop with every core busy: one kernel thread pinned to each
// core runs it kLoadedLoops times at the same time (long enough to average
// out the host's noise), best of three rounds per core, averaged.
// This is the ideal's basis: a machine with all its cores loaded runs each
// loop slower than one with a single busy core (shared caches, SMT
// siblings and frequency on the host), and that is not the scheduler's.
constexpr int kLoadedLoops = 25;

double loaded_thread_ms() {
  cpu_set_t process_cpus;
  sched_getaffinity(getpid(), sizeof process_cpus, &process_cpus);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && static_cast<int>(cpus.size()) < g_cores; ++c)
    if (CPU_ISSET(c, &process_cpus)) cpus.push_back(c);
  struct Timer {
    std::atomic<int> *ready;
    std::atomic<bool> *go;
    double ms;
  };
  std::vector<double> best(cpus.size(), 1e30);
  for (int round = 0; round < 3; ++round) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<Timer> timers(cpus.size(), Timer{&ready, &go, 0});
    std::vector<pthread_t> threads(cpus.size());
    for (size_t i = 0; i < cpus.size(); ++i) {
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[i], &one);
      pthread_attr_setaffinity_np(&attr, sizeof one, &one);
      pthread_create(
          &threads[i], &attr,
          [](void *p) -> void * {
            auto *t = static_cast<Timer *>(p);
            t->ready->fetch_add(1);
            while (!t->go->load()) {
            }
            auto t0 = Clock::now();
            for (int i = 0; i < kLoadedLoops; ++i) busy(g_work.inner, 0);
            t->ms = ms_since(t0) / kLoadedLoops;
            return nullptr;
          },
          &timers[i]);
      pthread_attr_destroy(&attr);
    }
    while (ready.load() < static_cast<int>(cpus.size())) sched_yield();
    go.store(true);
    for (size_t i = 0; i < cpus.size(); ++i) {
      pthread_join(threads[i], nullptr);
      best[i] = std::min(best[i], timers[i].ms);
    }
  }
  double sum = 0;
  for (double ms : best) sum += ms;
  return sum / static_cast<double>(best.size());
}

void calibrate(double target_ms) {
  g_work.inner = 200;
  double ms = single_thread_ms();
  g_work.inner = std::max<long>(1, static_cast<long>(g_work.inner * target_ms / ms));
}

struct Run {
  std::string name;
  std::vector<double> done_ms;  // per thread, from the barrier's release
  double total_ms = 0;
};

// Shared by the threads of one run.
struct RunState {
  int yield_every = 0;
  std::atomic<int> arrived{0};
  std::atomic<bool> go{false};
  Clock::time_point t0;
  std::vector<double> *done_ms;
};

// Every thread arrives, then spins (yielding, so that cooperative upthreads
// all get to arrive) until the main thread releases them together.
void run_thread(RunState *s, int index, bool upthreads) {
  s->arrived.fetch_add(1);
  while (!s->go.load(std::memory_order_acquire)) {
    if (upthreads)
      upthread_yield();
    else
      sched_yield();
  }
  busy(g_work.inner, s->yield_every, !upthreads);
  (*s->done_ms)[static_cast<size_t>(index)] = ms_since(s->t0);
}

struct ThreadArg {
  RunState *s;
  int index;
};

void *upthread_main(void *p) {
  auto *a = static_cast<ThreadArg *>(p);
  run_thread(a->s, a->index, true);
  return nullptr;
}
void *nptl_main(void *p) {
  auto *a = static_cast<ThreadArg *>(p);
  run_thread(a->s, a->index, false);
  return nullptr;
}

Run run_variant(const std::string &name, int threads) {
  Run run;
  run.name = name;
  run.done_ms.assign(static_cast<size_t>(threads), 0);
  RunState s;
  s.done_ms = &run.done_ms;
  bool nptl = name.rfind("nptl", 0) == 0;
  uint64_t period = 0;
  if (name.rfind("preempt:", 0) == 0) period = std::stoull(name.substr(8));
  if (name.rfind("yield:", 0) == 0) s.yield_every = std::stoi(name.substr(6));
  if (name.rfind("nptl-yield:", 0) == 0) s.yield_every = std::stoi(name.substr(11));
  upthread_set_sched_period(period);
  // A thread inherits its creator's CPU mask, and main runs on a vcore
  // pinned to one CPU: give the NPTL threads the first `cores` CPUs of the
  // process's mask (the main task's, which parlib leaves untouched).
  pthread_attr_t nptl_attr;
  pthread_attr_init(&nptl_attr);
  cpu_set_t process_cpus, use;
  sched_getaffinity(getpid(), sizeof process_cpus, &process_cpus);
  CPU_ZERO(&use);
  for (int c = 0, n = 0; c < CPU_SETSIZE && n < g_cores; ++c)
    if (CPU_ISSET(c, &process_cpus)) {
      CPU_SET(c, &use);
      ++n;
    }
  pthread_attr_setaffinity_np(&nptl_attr, sizeof use, &use);
  std::vector<ThreadArg> args(static_cast<size_t>(threads));
  std::vector<upthread_t> uts(static_cast<size_t>(threads));
  std::vector<pthread_t> pts(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) {
    args[static_cast<size_t>(i)] = ThreadArg{&s, i};
    int err = nptl ? pthread_create(&pts[static_cast<size_t>(i)], &nptl_attr, nptl_main,
                                    &args[static_cast<size_t>(i)])
                   : upthread_create(&uts[static_cast<size_t>(i)], nullptr, upthread_main,
                                     &args[static_cast<size_t>(i)]);
    if (err != 0) {
      fprintf(stderr, "fixedwork: %s: thread %d: %s\n", name.c_str(), i, strerror(err));
      exit(1);
    }
  }
  while (s.arrived.load() < threads) {
    if (nptl)
      usleep(1000);
    else
      upthread_yield();
  }
  s.t0 = Clock::now();
  s.go.store(true, std::memory_order_release);
  // Joining blocks main (its vcore, for NPTL: the NPTL threads run on the
  // kernel's scheduler, not on vcores).
  for (int i = 0; i < threads; ++i) {
    if (nptl)
      pthread_join(pts[static_cast<size_t>(i)], nullptr);
    else
      upthread_join(uts[static_cast<size_t>(i)], nullptr);
  }
  upthread_set_sched_period(0);
  pthread_attr_destroy(&nptl_attr);
  run.total_ms = *std::max_element(run.done_ms.begin(), run.done_ms.end());
  return run;
}

bool valid_variant(const std::string &v) {
  auto number_after = [&](size_t pos) {
    if (pos >= v.size()) return false;
    for (size_t i = pos; i < v.size(); ++i)
      if (v[i] < '0' || v[i] > '9') return false;
    return std::stoull(v.substr(pos)) > 0;
  };
  return v == "no-preempt" || v == "nptl" || (v.rfind("preempt:", 0) == 0 && number_after(8)) ||
         (v.rfind("yield:", 0) == 0 && number_after(6)) ||
         (v.rfind("nptl-yield:", 0) == 0 && number_after(11));
}

[[noreturn]] void usage(const char *why) {
  fprintf(stderr,
          "fixedwork: %s\nusage: fixedwork [--threads T] [--cores N] [--seconds S]\n"
          "                 [--variants v1,v2,...] [--csv FILE] [--json]\n"
          "variants: no-preempt, preempt:USEC, yield:N, nptl, nptl-yield:N\n",
          why);
  exit(2);
}

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--threads") {
      o.threads = atoi(value().c_str());
      if (o.threads < 1 || o.threads > 100000) usage("--threads must be 1..100000");
    } else if (a == "--cores") {
      o.cores = atoi(value().c_str());
      if (o.cores < 1) usage("--cores must be positive");
    } else if (a == "--seconds") {
      o.seconds = atof(value().c_str());
      if (!(o.seconds > 0)) usage("--seconds must be positive");
    } else if (a == "--variants") {
      o.variants.clear();
      std::string list = value();
      size_t start = 0;
      while (start <= list.size()) {
        size_t comma = list.find(',', start);
        std::string v =
            list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!valid_variant(v)) usage(("bad variant \"" + v + "\"").c_str());
        o.variants.push_back(v);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (a == "--csv") {
      o.csv = value();
    } else if (a == "--json") {
      o.json = true;
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  return o;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[i];
}

}  // namespace

int main(int argc, char **argv) {
  Options o = parse(argc, argv);
  int cores = o.cores > 0 ? std::min(o.cores, max_vcores()) : max_vcores();
  upthread_set_num_vcores(cores);
  g_cores = cores;
  // Each thread's loop takes seconds * cores / threads at the ideal.
  calibrate(o.seconds * 1000.0 * cores / o.threads);
  double single_ms = single_thread_ms();
  // The machine's speed drifts over a run of several variants: the ideal's
  // basis is measured before and after them, and averaged.
  double loaded_before = loaded_thread_ms();
  std::vector<Run> runs;
  for (const auto &v : o.variants) runs.push_back(run_variant(v, o.threads));
  double loaded_ms = (loaded_before + loaded_thread_ms()) / 2;
  double ideal_ms = loaded_ms * o.threads / cores;

  if (!o.csv.empty()) {
    FILE *f = fopen(o.csv.c_str(), "w");
    if (f == nullptr) {
      fprintf(stderr, "fixedwork: %s: %s\n", o.csv.c_str(), strerror(errno));
      return 1;
    }
    fprintf(f, "variant,thread,completion_ms\n");
    for (const auto &r : runs)
      for (size_t i = 0; i < r.done_ms.size(); ++i)
        fprintf(f, "%s,%zu,%.3f\n", r.name.c_str(), i, r.done_ms[i]);
    fclose(f);
  }
  if (o.json) {
    printf("{\"threads\":%d,\"cores\":%d,\"single_thread_ms\":%.3f,\"loaded_thread_ms\":%.3f",
           o.threads, cores, single_ms, loaded_ms);
    for (const auto &r : runs)
      printf(
          ",\"%s\":{\"total_ms\":%.3f,\"ideal_ms\":%.3f,\"min_ms\":%.3f,\"median_ms\":%.3f,\"max_"
          "ms\":%.3f}",
          r.name.c_str(), r.total_ms, ideal_ms, percentile(r.done_ms, 0),
          percentile(r.done_ms, 0.5), percentile(r.done_ms, 1));
    printf("}\n");
  } else {
    printf(
        "fixedwork: %d threads on %d cores; one thread's loop %.3f ms alone, %.3f ms with every "
        "core busy; ideal %.1f ms\n",
        o.threads, cores, single_ms, loaded_ms, ideal_ms);
    printf("%-18s %10s %8s %10s %10s %10s\n", "variant", "total_ms", "x ideal", "min_ms",
           "median_ms", "max_ms");
    for (const auto &r : runs)
      printf("%-18s %10.1f %8.3f %10.1f %10.1f %10.1f\n", r.name.c_str(), r.total_ms,
             r.total_ms / ideal_ms, percentile(r.done_ms, 0), percentile(r.done_ms, 0.5),
             percentile(r.done_ms, 1));
  }
  return 0;
}

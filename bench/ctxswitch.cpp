// ctxswitch: the context switch experiment of Klues 2015, section 2.6.3
// (Fig 2.6/2.7), uthreads against Linux NPTL in one run.
//
// T threads per core on N cores; each thread loops on yield and counts its
// yields. After a short warm-up we read the sum of all counters, sleep S
// seconds, and read it again: switches/s = delta / elapsed, and the average
// switch latency per core = elapsed * N / delta (each core switches on its
// own, in parallel with the others). The process's CPU time over the same
// window gives a second figure, CPU ns per switch, which stays meaningful
// when other programs share the CPUs (then the wall-clock figures are
// inflated, and the report says so).
//
//  - NPTL: T pthreads pinned to each of the first N CPUs of the affinity
//    mask, looping on sched_yield(). Measured first, while the process is
//    still a plain pthread program (uthread_lib_init cannot be undone).
//  - uthreads: `ctxswitch` runs them on upthread, configured as in the
//    seed (per-vcore queues on N vcores, no stealing, no automatic vcore
//    requests: thread i on vcore i % N), looping on upthread_yield();
//    `ctxswitch_percore` runs them on the minimal per-vcore FIFO scheduler
//    of percore_sched.h (the library's floor, without upthread's checks).
//    Main (thread0) spawns them and then blocks in a join, so it holds no
//    vcore while they run; a plain pthread does the timing and raises the
//    stop flag. Linking libupthread makes main thread0 before main() runs;
//    the NPTL threads are made with glibc's pthread_create all the same,
//    from main's own (glibc) TCB, and the idle vcores sleep meanwhile.
//
// With T = 1 both sides take their fast path (sched_yield returns at once,
// a uthread yields back to itself through vcore context); T >= 2 measures
// real switches between threads.
//
// Usage: ctxswitch [--cpus N] [--tpc T] [--seconds S] [--json]
#include <parlib/uthread.h>
#include <parlib/vcore.h>

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#ifdef CTXSWITCH_UPTHREAD
#include <upthread/upthread.h>
#else
#include "percore_sched.h"
#endif

namespace {

// Long enough for every thread to be created and scheduled, for the
// caches and branch predictors to settle, and for the CPUs to leave idle.
constexpr double kWarmupSeconds = 0.2;
constexpr long kMaxThreadsPerCore = 1024;
constexpr double kMaxSeconds = 3600;
// Both sides get the same small stacks: the loop needs almost none, and
// thousands of default 8 MiB pthread stacks would only cost mappings.
constexpr size_t kStackSize = 64 << 10;

struct Options {
  int cpus = 0;  // 0 until parsed: all CPUs of the affinity mask
  int tpc = 2;
  double seconds = 2;
  bool json = false;
};

// One counter per thread, each on its own cache lines: the threads of
// different cores must not share one, or the benchmark would measure
// coherence traffic instead of switches.
// Two lines apart: adjacent-line prefetch would otherwise couple neighbours.
struct alignas(2 * PARLIB_CACHE_LINE_SIZE) Slot {
  std::atomic<uint64_t> switches{0};
};

struct Window {
  uint64_t switches = 0;
  double seconds = 0;
  double cpu_seconds = 0;  // process CPU time (user + system) over the window
};

[[noreturn]] __attribute__((format(printf, 1, 2))) void usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("ctxswitch: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (see --help)\n", stderr);
  va_end(ap);
  exit(2);
}

[[noreturn]] __attribute__((format(printf, 1, 2))) void fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("ctxswitch: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

void print_usage(int ncpus) {
  printf(
      "usage: ctxswitch [--cpus N] [--tpc T] [--seconds S] [--json]\n"
      "  --cpus N     cores to use, 1..%d (default: all CPUs of the affinity mask)\n"
      "  --tpc T      threads per core, 1..%ld (default 2)\n"
      "  --seconds S  measured time per implementation, 0 < S <= %g (default 2)\n"
      "  --json       print one JSON object instead of the report\n",
      ncpus, kMaxThreadsPerCore, kMaxSeconds);
}

long parse_long(const char *opt, const char *s, long min, long max) {
  char *end = nullptr;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
    usage_error("%s must be an integer in [%ld, %ld], not '%s'", opt, min, max, s);
  return v;
}

double parse_seconds(const char *s) {
  char *end = nullptr;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !std::isfinite(v) || v <= 0 || v > kMaxSeconds)
    usage_error("--seconds must be a number in (0, %g], not '%s'", kMaxSeconds, s);
  return v;
}

Options parse_args(int argc, char **argv, int ncpus, int nvcores) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      print_usage(ncpus);
      exit(0);
    }
    if (arg == "--json") {
      o.json = true;
      continue;
    }
    // "--opt value" and "--opt=value" both work.
    std::string name = arg, value;
    bool have_value = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      have_value = true;
    }
    if (name != "--cpus" && name != "--tpc" && name != "--seconds")
      usage_error("unknown argument '%s'", arg.c_str());
    if (!have_value) {
      if (i + 1 >= argc) usage_error("%s needs a value", name.c_str());
      value = argv[++i];
    }
    if (name == "--cpus")
      o.cpus = static_cast<int>(parse_long("--cpus", value.c_str(), 1, ncpus));
    else if (name == "--tpc")
      o.tpc = static_cast<int>(parse_long("--tpc", value.c_str(), 1, kMaxThreadsPerCore));
    else
      o.seconds = parse_seconds(value.c_str());
  }
  if (o.cpus == 0) o.cpus = ncpus;
  if (o.cpus > nvcores)
    usage_error("--cpus %d needs %d vcores, but max_vcores() is %d (PARLIB_VCORES?)", o.cpus,
                o.cpus, nvcores);
  return o;
}

// The CPUs the process may run on, in order; vcore i runs on the i-th of
// them, so NPTL thread i % N pinned to cpus[i % N] shares a CPU with the
// uthreads of vcore i % N.
std::vector<int> affinity_cpus() {
  cpu_set_t set;
  std::vector<int> cpus;
  if (sched_getaffinity(getpid(), sizeof set, &set) != 0)
    fatal("sched_getaffinity: %s", strerror(errno));
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Sleeps until the monotonic clock reads deadline (absolute, so that a
// signal that interrupts the sleep does not stretch it).
void sleep_until(double deadline) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(deadline);
  ts.tv_nsec = static_cast<long>((deadline - static_cast<double>(ts.tv_sec)) * 1e9);
  if (ts.tv_nsec >= 1000000000) ts.tv_nsec = 999999999;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

double process_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The sum of the counters, and the time it stands for: the middle of the
// reads (with thousands of threads the reads take microseconds).
struct Snapshot {
  uint64_t switches;
  double at;
  double cpu;
};
Snapshot snapshot(const Slot *slots, size_t n) {
  double before = now_s();
  double cpu = process_cpu_s();
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += slots[i].switches.load(std::memory_order_relaxed);
  return {sum, (before + now_s()) / 2, cpu};
}

// Runs on a thread that holds no CPU the workers need (it sleeps): warms
// up, then times a window of `seconds`.
Window measure(const Slot *slots, size_t n, double seconds) {
  sleep_until(now_s() + kWarmupSeconds);
  Snapshot a = snapshot(slots, n);
  sleep_until(a.at + seconds);
  Snapshot b = snapshot(slots, n);
  return {b.switches - a.switches, b.at - a.at, b.cpu - a.cpu};
}

// ------------------------------------------------------------------ NPTL

std::atomic<bool> g_nptl_stop{false};

void *nptl_worker(void *arg) {
  auto *slot = static_cast<Slot *>(arg);
  uint64_t n = 0;
  while (!g_nptl_stop.load(std::memory_order_relaxed)) {
    sched_yield();
    // A plain store (relaxed): only this thread writes the counter.
    slot->switches.store(++n, std::memory_order_relaxed);
  }
  return nullptr;
}

Window run_nptl(const Options &o, const std::vector<int> &cpus) {
  size_t n = static_cast<size_t>(o.cpus) * static_cast<size_t>(o.tpc);
  std::vector<Slot> slots(n);
  std::vector<pthread_t> threads(n);
  for (size_t i = 0; i < n; ++i) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kStackSize);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus[i % static_cast<size_t>(o.cpus)], &set);
    pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    int err = pthread_create(&threads[i], &attr, nptl_worker, &slots[i]);
    pthread_attr_destroy(&attr);
    if (err != 0) fatal("pthread_create (thread %zu of %zu): %s", i, n, strerror(err));
  }
  Window w = measure(slots.data(), n, o.seconds);
  g_nptl_stop.store(true, std::memory_order_relaxed);
  for (pthread_t t : threads) pthread_join(t, nullptr);
  return w;
}

// -------------------------------------------------------------- uthreads

std::vector<Slot> *g_uth_slots = nullptr;
double g_uth_seconds = 0;
// Futex word: thread0 sets it to 1 once the workers are queued and their
// vcores requested, which starts the timer thread.
std::atomic<uint32_t> g_timer_go{0};
Window g_uth_window;  // written by the timer thread before it raises g_uth_stop
std::atomic<bool> g_uth_stop{false};

#ifndef CTXSWITCH_UPTHREAD
void uth_worker(void *arg) {
  auto *slot = static_cast<Slot *>(arg);
  uint64_t n = 0;
  // Acquire: the stop flag also publishes g_uth_window, which thread0 reads
  // after joining us.
  while (!g_uth_stop.load(std::memory_order_acquire)) {
    uthread_yield(true, nullptr, nullptr);
    slot->switches.store(++n, std::memory_order_relaxed);
  }
}
#endif

// The timer: an ordinary pthread (glibc's pthread_create) that never runs
// on a vcore. It sleeps through the run.
void *timer_main(void *) {
  while (g_timer_go.load(std::memory_order_acquire) == 0)
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(&g_timer_go), FUTEX_WAIT_PRIVATE, 0, nullptr,
            nullptr, 0);
  g_uth_window = measure(g_uth_slots->data(), g_uth_slots->size(), g_uth_seconds);
  g_uth_stop.store(true, std::memory_order_release);
  return nullptr;
}

#ifdef CTXSWITCH_UPTHREAD
void *up_worker(void *arg) {
  auto *slot = static_cast<Slot *>(arg);
  uint64_t n = 0;
  while (!g_uth_stop.load(std::memory_order_acquire)) {
    upthread_yield();
    slot->switches.store(++n, std::memory_order_relaxed);
  }
  return nullptr;
}

Window run_uthreads(const Options &o) {
  size_t n = static_cast<size_t>(o.cpus) * static_cast<size_t>(o.tpc);
  std::vector<Slot> slots(n);
  g_uth_slots = &slots;
  g_uth_seconds = o.seconds;
  pthread_t timer;
  int err = pthread_create(&timer, nullptr, timer_main, nullptr);
  if (err != 0) fatal("pthread_create (timer): %s", strerror(err));
  pthread_detach(timer);

  // The seed's configuration: N per-vcore queues, every vcore keeps its
  // own threads (no stealing) and keeps its core (no requests or yields).
  upthread_set_num_vcores(o.cpus);
  upthread_can_vcore_steal(false);
  upthread_can_vcore_request(false);
  upthread_attr_t attr;
  upthread_attr_init(&attr);
  upthread_attr_setstacksize(&attr, kStackSize);
  std::vector<upthread_t> workers(n);
  for (size_t i = 0; i < n; ++i) {
    err = upthread_create(&workers[i], &attr, up_worker, &slots[i]);
    if (err != 0) fatal("upthread_create (thread %zu of %zu): %s", i, n, strerror(err));
  }
  if (vcore_request_total(o.cpus) != 0)
    fatal("vcore_request_total(%d): %s", o.cpus, strerror(errno));
  g_timer_go.store(1, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(&g_timer_go), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
  // thread0 blocks here (off every run queue) until the workers stop.
  for (upthread_t t : workers) upthread_join(t, nullptr);
  return g_uth_window;
}
#else
Window run_uthreads(const Options &o) {
  size_t n = static_cast<size_t>(o.cpus) * static_cast<size_t>(o.tpc);
  std::vector<Slot> slots(n);
  g_uth_slots = &slots;
  g_uth_seconds = o.seconds;
  pthread_t timer;
  int err = pthread_create(&timer, nullptr, timer_main, nullptr);
  if (err != 0) fatal("pthread_create (timer): %s", strerror(err));
  pthread_detach(timer);

  parlib_bench::pcs_init();  // from here on main is thread0, on a vcore
  if (parlib_bench::pcs_thread0_vcore() >= static_cast<uint32_t>(o.cpus))
    fatal("thread0 started on vcore %u, outside vcores 0..%d", parlib_bench::pcs_thread0_vcore(),
          o.cpus - 1);

  // Queue every worker before asking for the vcores: a vcore that came up
  // to an empty queue would yield again, and nothing here requests it back.
  std::vector<parlib_bench::PcThread *> workers(n);
  for (size_t i = 0; i < n; ++i)
    workers[i] = parlib_bench::pcs_spawn(uth_worker, &slots[i],
                                         static_cast<uint32_t>(i % static_cast<size_t>(o.cpus)),
                                         kStackSize, "ctxswitch worker");
  if (vcore_request_total(o.cpus) != 0)
    fatal("vcore_request_total(%d): %s", o.cpus, strerror(errno));
  for (int v = 0; v < o.cpus; ++v)
    if (!vcore_is_online(static_cast<uint32_t>(v)))
      fatal("vcore %d is not online after vcore_request_total(%d)", v, o.cpus);

  g_timer_go.store(1, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(&g_timer_go), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
  // thread0 blocks here (off every run queue) until the workers stop.
  for (parlib_bench::PcThread *t : workers) parlib_bench::pcs_join(t);
  return g_uth_window;
}
#endif

// ---------------------------------------------------------------- report

struct Result {
  uint64_t switches;
  double seconds;
  double per_sec;
  double ns_per_switch;      // wall clock, per core
  double cpu_ns_per_switch;  // process CPU time per switch
  double cpu_share;          // CPU time / (cores * wall time): 1 on an idle machine
};

// Below this share of their CPUs the workers were competing with other
// programs, and the wall-clock figures say more about the machine's load
// than about switches.
constexpr double kBusyShare = 0.9;

Result result_of(const Window &w, int cpus, const char *what) {
  if (w.switches == 0 || w.seconds <= 0) fatal("%s: no switches counted", what);
  double sw = static_cast<double>(w.switches);
  Result r{w.switches,
           w.seconds,
           sw / w.seconds,
           w.seconds * cpus * 1e9 / sw,
           w.cpu_seconds * 1e9 / sw,
           w.cpu_seconds / (w.seconds * cpus)};
  if (r.cpu_share < kBusyShare)
    fprintf(stderr,
            "ctxswitch: warning: the %s threads got %.0f%% of their CPUs (other programs are "
            "running); the wall-clock ns/switch is inflated, compare CPU ns/switch\n",
            what, r.cpu_share * 100);
  return r;
}

bool have_wrfsbase() {
  // Mirrors the library's choice (vcore/arch): FSGSBASE in AT_HWCAP2 and
  // not forced off by PARLIB_NO_WRFSBASE.
  const char *force = getenv("PARLIB_NO_WRFSBASE");
  if (force != nullptr && strcmp(force, "0") != 0) return false;
  return (getauxval(AT_HWCAP2) & (1ul << 1)) != 0;
}

void print_report(const Options &o, const std::vector<int> &cpus, const Result &nptl,
                  const Result &uth) {
  std::string cpu_list;
  for (int i = 0; i < o.cpus; ++i) {
    if (i > 0) cpu_list += ',';
    cpu_list += std::to_string(cpus[i]);
  }
  printf(
      "ctxswitch: %d core%s (CPU %s) x %d thread%s per core, %g s per implementation "
      "after %g s warm-up; FS base via %s\n",
      o.cpus, o.cpus == 1 ? "" : "s", cpu_list.c_str(), o.tpc, o.tpc == 1 ? "" : "s", o.seconds,
      kWarmupSeconds, have_wrfsbase() ? "wrfsbase" : "arch_prctl");
  for (auto [name, r] : {std::pair{"nptl", &nptl}, std::pair{"uthread", &uth}})
    printf(
        "  %-8s %12llu switches in %.3f s  %12.0f switches/s  %9.1f ns/switch per core"
        "  (CPU time: %.1f ns/switch, %.0f%% of %d CPU%s)\n",
        name, static_cast<unsigned long long>(r->switches), r->seconds, r->per_sec,
        r->ns_per_switch, r->cpu_ns_per_switch, r->cpu_share * 100, o.cpus, o.cpus == 1 ? "" : "s");
  printf("  ratio nptl/uthread (ns per switch): %.2fx  (CPU time: %.2fx)\n",
         nptl.ns_per_switch / uth.ns_per_switch, nptl.cpu_ns_per_switch / uth.cpu_ns_per_switch);
}

void print_json(const Options &o, const Result &nptl, const Result &uth) {
  auto impl = [](const Result &r) {
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"switches\":%llu,\"switches_per_sec\":%.1f,\"ns_per_switch\":%.3f,"
             "\"cpu_ns_per_switch\":%.3f,\"cpu_share\":%.3f}",
             static_cast<unsigned long long>(r.switches), r.per_sec, r.ns_per_switch,
             r.cpu_ns_per_switch, r.cpu_share);
    return std::string(buf);
  };
  printf(
      "{\"cpus\":%d,\"tpc\":%d,\"seconds\":%g,\"uthread\":%s,\"nptl\":%s,"
      "\"ratio_nptl_over_uthread\":%.3f,\"cpu_ratio_nptl_over_uthread\":%.3f}\n",
      o.cpus, o.tpc, o.seconds, impl(uth).c_str(), impl(nptl).c_str(),
      nptl.ns_per_switch / uth.ns_per_switch, nptl.cpu_ns_per_switch / uth.cpu_ns_per_switch);
}

}  // namespace

int main(int argc, char **argv) {
  std::vector<int> cpus = affinity_cpus();
  if (cpus.empty()) fatal("the affinity mask has no CPU");
  // max_vcores() starts the vcore tasks, which sleep in the kernel until
  // requested: they do not disturb the NPTL run.
  int nvcores = max_vcores();
  if (nvcores <= 0) fatal("vcore_lib_init failed: %s", strerror(errno));
  Options o = parse_args(argc, argv, static_cast<int>(cpus.size()), nvcores);

  Result nptl = result_of(run_nptl(o, cpus), o.cpus, "nptl");
  Result uth = result_of(run_uthreads(o), o.cpus, "uthread");
  if (o.json)
    print_json(o, nptl, uth);
  else
    print_report(o, cpus, nptl, uth);
  fflush(stdout);
  return 0;
}

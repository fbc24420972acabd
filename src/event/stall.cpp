// Stall reports. A monitor thread (a plain pthread, started only when
// PARLIB_STALL_MS is set) looks at every vcore each N/4 ms: which uthread
// runs there and how many times a uthread was started there (Vcore::running
// and Vcore::runs, two stores on the switch path). A vcore whose uthread and
// count stay the same for N ms holds a stalled uthread. The monitor then
// asks for a report and signals the vcore's task; the notification handler
// writes the report on that task, from the uthread's own stack, at a safe
// point (not inside libc or parlib, whose locks the backtrace could need),
// so the backtrace shows where the uthread spins. A report that finds an
// unsafe point is retried at the next look; one stall is reported once.
#include "event/stall.h"

#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/clock.h"
#include "common/env.h"
#include "common/raw_log.h"
#include "event/foreign_call.h"
#include "vcore/vcore_internal.h"

namespace parlib::detail {

std::atomic<bool> g_stall_detector_on{false};

namespace {

int g_stall_ms = 0;
int g_nr_vcores = 0;

// The monitor's request to vcore i: the uthread to report and for how long
// it has held the vcore. ms is written last (release) and taken with an
// exchange by the handler, so each request is reported at most once.
struct Request {
  std::atomic<struct uthread *> uth{nullptr};
  std::atomic<uint64_t> ms{0};
};
Request *g_requests = nullptr;

enum WatchState { kWatching, kRequested, kReported };
struct Watch {
  struct uthread *uth = nullptr;
  uint64_t runs = 0;
  uint64_t since_ns = 0;
  WatchState state = kWatching;
};

void *monitor(void *) {
  auto *watch = new Watch[static_cast<size_t>(g_nr_vcores)];
  const uint64_t limit_ns = static_cast<uint64_t>(g_stall_ms) * kNsPerMs;
  uint64_t period_ns = limit_ns / 4;
  if (period_ns < kNsPerMs) period_ns = kNsPerMs;
  const timespec period = ns_to_timespec(period_ns);
  for (;;) {
    // The system call itself: libparlib's nanosleep is for uthreads.
    syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &period, nullptr);
    uint64_t now = monotonic_now_ns();
    for (int i = 0; i < g_nr_vcores; ++i) {
      Vcore &vc = vcore_of(static_cast<uint32_t>(i));
      Watch &w = watch[i];
      struct uthread *uth = vc.running.load(std::memory_order_relaxed);
      uint64_t runs = vc.runs.load(std::memory_order_relaxed);
      if (uth != w.uth || runs != w.runs) {
        // A scheduling point since the last look: a new period starts, and
        // a report not yet written is withdrawn.
        if (w.state == kRequested) g_requests[i].ms.store(0, std::memory_order_relaxed);
        w = Watch{uth, runs, now, kWatching};
        continue;
      }
      if (uth == nullptr || w.state == kReported) continue;
      if (w.state == kRequested && g_requests[i].ms.load(std::memory_order_acquire) == 0) {
        w.state = kReported;  // the handler wrote it
        continue;
      }
      if (now - w.since_ns < limit_ns) continue;
      uint64_t ms = (now - w.since_ns) / kNsPerMs;
      if (w.state == kWatching) {
        g_requests[i].uth.store(uth, std::memory_order_relaxed);
        g_requests[i].ms.store(ms, std::memory_order_release);
        w.state = kRequested;
      } else {
        // Still pending: the last signal found the uthread at an unsafe
        // point. Update the duration unless the handler took the request
        // since the load above (then it is reported, once).
        uint64_t pending = g_requests[i].ms.load(std::memory_order_relaxed);
        if (pending == 0 ||
            !g_requests[i].ms.compare_exchange_strong(pending, ms, std::memory_order_acq_rel)) {
          w.state = kReported;
          continue;
        }
      }
      // The runtime's own signal (foreign_call.cpp), which on_notify tells
      // from the program's; refused while the task is in a foreign call.
      if (vc.tid.load(std::memory_order_acquire) != 0) signal_vcore_task(static_cast<uint32_t>(i));
    }
  }
  return nullptr;
}

}  // namespace

void stall_report_due(uint32_t vcoreid, struct uthread *uth, uintptr_t pc) {
  if (static_cast<int>(vcoreid) >= g_nr_vcores) return;
  Request &r = g_requests[vcoreid];
  if (r.ms.load(std::memory_order_acquire) == 0) return;
  if (r.uth.load(std::memory_order_relaxed) != uth) return;  // stale: the monitor withdraws it
  uint64_t ms = r.ms.exchange(0, std::memory_order_acq_rel);
  if (ms == 0) return;
  // Formatted here and written with the system call itself: libparlib's
  // write (which raw_log reaches) may block the uthread, and this is a
  // signal handler on its stack.
  char line[256];
  int len = snprintf(line, sizeof line,
                     "parlib: stall: uthread %u (%s) has held vcore %u for %llu ms without a "
                     "scheduling point (PARLIB_STALL_MS=%d); backtrace:\n",
                     uth->debug_id_, uth->name_ != nullptr ? uth->name_ : "unnamed", vcoreid,
                     static_cast<unsigned long long>(ms), g_stall_ms);
  if (len > static_cast<int>(sizeof line) - 1) len = static_cast<int>(sizeof line) - 1;
  if (len > 0) syscall(SYS_write, STDERR_FILENO, line, static_cast<size_t>(len));
  // From the handler through the signal frame into the uthread: start the
  // listing at the interrupted instruction.
  void *frames[48];
  int n = backtrace(frames, 48);
  int first = 0;
  for (int i = 0; i < n; ++i)
    if (reinterpret_cast<uintptr_t>(frames[i]) == pc) {
      first = i;
      break;
    }
  backtrace_symbols_fd(frames + first, n - first, STDERR_FILENO);
}

void init_stall_detector() {
  // Set but empty means off, as unset does.
  const char *env = getenv("PARLIB_STALL_MS");
  if (env == nullptr || *env == '\0') return;
  uint64_t ms = 0;
  if (env_integer("PARLIB_STALL_MS", 0, 3600 * 1000, "milliseconds", &ms) != EnvStatus::kValid ||
      ms == 0)
    return;
  g_stall_ms = static_cast<int>(ms);
  g_nr_vcores = max_vcores() + max_spare_vcores();
  g_requests = new Request[static_cast<size_t>(g_nr_vcores)];
  // backtrace() loads the unwinder (libgcc_s) on its first call, which a
  // signal handler must not do: call it once here.
  void *warm[2];
  backtrace(warm, 2);
  g_stall_detector_on.store(true, std::memory_order_release);
  // The monitor takes no signals: notifications are for vcores, and the
  // program's own signals are for its threads.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t tid;
  int err = pthread_create(&tid, nullptr, monitor, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err != 0) {
    raw_log("PARLIB_STALL_MS: cannot start the monitor thread: %s", strerror(err));
    g_stall_detector_on.store(false, std::memory_order_relaxed);
    return;
  }
  pthread_setname_np(tid, "parlib-stalls");
  pthread_detach(tid);
}

}  // namespace parlib::detail

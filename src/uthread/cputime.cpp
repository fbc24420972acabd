// Per-uthread CPU time. A uthread's CPU time is the CPU time its vcore's
// kernel task spent while the uthread ran on it: each switch point charges
// the uthread that ran since the previous one the task's clock difference.
//
// The task's clock (CLOCK_THREAD_CPUTIME_ID) has no vDSO path: reading it
// is a system call (about 1 us on the development VM, more than a whole
// uthread switch). So a switch point reads the monotonic clock (vDSO) and
// estimates the task's clock as the last reading plus the wall time since;
// only when that reading is older than kResyncNs does it read the task's
// clock again. The estimate is off only when the task was off the CPU
// (preempted by the kernel, blocked in a system call) within a run shorter
// than kResyncNs, and the next reading puts the total right again: the sum
// over the vcore's uthreads equals the task's CPU time at every reading,
// and each run is charged within kResyncNs of its true cost. A thread that
// reads its own clock takes an exact reading.
#include "uthread/cputime.h"

#include <parlib/uthread.h>
#include <sys/syscall.h>
#include <time.h>

#include <cstdint>

#include "common/clock.h"
#include "vcore/arch/arch.h"
#include "vcore/vcore_internal.h"

namespace parlib::detail::cputime {

std::atomic<bool> g_on{false};

namespace {

constexpr uint64_t kResyncNs = 50'000;

// The calling task's CPU time. A raw system call: under the preload shim
// clock_gettime(CLOCK_THREAD_CPUTIME_ID) from a uthread means the uthread's
// clock, which is computed here.
uint64_t task_cpu_ns() {
  timespec ts{};
  raw_syscall4(SYS_clock_gettime, CLOCK_THREAD_CPUTIME_ID, reinterpret_cast<long>(&ts), 0, 0);
  return timespec_to_ns(ts);
}

void sync(Vcore &vc, uint64_t wall) {
  vc.acct_sync_cpu_ns = task_cpu_ns();
  vc.acct_sync_wall_ns = wall;
}

}  // namespace

void switch_point_slow(Vcore &vc, struct uthread *next, bool exact) {
  uint64_t wall = monotonic_now_ns();
  if (exact || wall - vc.acct_sync_wall_ns >= kResyncNs) sync(vc, wall);
  uint64_t now = vc.acct_sync_cpu_ns + (wall - vc.acct_sync_wall_ns);
  if (struct uthread *u = vc.acct_uth; u != nullptr && now > vc.acct_mark_ns) {
    // Only the vcore running u writes its total; others read it.
    uint64_t total = __atomic_load_n(&u->cpu_ns_, __ATOMIC_RELAXED) + (now - vc.acct_mark_ns);
    __atomic_store_n(&u->cpu_ns_, total, __ATOMIC_RELAXED);
  }
  vc.acct_mark_ns = now;
  vc.acct_uth = next;
}

}  // namespace parlib::detail::cputime

using namespace parlib::detail;

void uthread_enable_cpu_accounting(void) {
  if (cputime::g_on.load(std::memory_order_acquire)) return;
  struct uthread *self = uthread_self();
  if (self != nullptr) uth_disable_notifs();
  cputime::g_on.store(true, std::memory_order_release);
  // The caller's vcore starts charging it now; the other vcores start at
  // their next switch (their first reading is always taken afresh).
  if (self != nullptr) {
    Vcore &vc = this_vcore();
    cputime::switch_point_slow(vc, self, true);
    uth_enable_notifs();
  }
}

uint64_t uthread_cpu_time_ns(struct uthread *uth) {
  if (uth == nullptr) return 0;
  if (uth == uthread_self() && cputime::g_on.load(std::memory_order_relaxed)) {
    // On its own vcore, which it cannot leave meanwhile.
    uth_disable_notifs();
    cputime::switch_point_slow(this_vcore(), uth, true);
    uint64_t t = __atomic_load_n(&uth->cpu_ns_, __ATOMIC_RELAXED);
    uth_enable_notifs();
    return t;
  }
  return __atomic_load_n(&uth->cpu_ns_, __ATOMIC_RELAXED);
}

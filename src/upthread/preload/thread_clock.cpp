// libupthread-preload.so: per-thread CPU time. A upthread's CPU time is
// what libparlib charges it at its switches (uthread_enable_cpu_accounting,
// uthread/cputime.cpp): the CPU time of its vcore's kernel task while it
// ran. CLOCK_THREAD_CPUTIME_ID, the clocks pthread_getcpuclockid returns
// and getrusage(RUSAGE_THREAD) report it; a glibc thread's are glibc's.
//
// A upthread's clock id is the kernel's encoding of a thread CPU clock
// (~tid << 3 | CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED) with the upthread's id
// (identity.cpp): clock_gettime and clock_getres here decode it; passed to
// a call the shim does not intercept (timer_create, clock_nanosleep) it
// names no kernel task and fails with EINVAL, as for an exited thread.
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>

#include "common/clock.h"
#include "shim.h"
#include "upthread/upthread_internal.h"

namespace parlib::detail::preload {
namespace {

constexpr clockid_t kThreadSchedClock = 4 | 2;  // CPUCLOCK_PERTHREAD_MASK | CPUCLOCK_SCHED

// thread0's CPU time before accounting started: main's kernel task ran the
// program's start-up, as main's own task does natively.
uint64_t g_main_base_ns = 0;
struct upthread *g_main_ut = nullptr;

clockid_t clock_of_tid(pid_t tid) {
  return static_cast<clockid_t>((~static_cast<uint32_t>(tid) << 3) | kThreadSchedClock);
}

// The tid in a thread CPU clock id; false for other clocks.
bool tid_of_clock(clockid_t clock, pid_t *tid) {
  if (clock >= 0 || (clock & 7) != kThreadSchedClock) return false;
  *tid = ~(clock >> 3);
  return true;
}

uint64_t cpu_ns(struct upthread *ut) {
  uint64_t t = uthread_cpu_time_ns(&ut->uth);
  return ut == g_main_ut ? t + g_main_base_ns : t;
}

// The CPU time behind `clock`: 0 with *ns set for a upthread's clock,
// EINVAL for a upthread's clock whose thread has exited, -1 for a clock
// the kernel should read.
int clock_ns(clockid_t clock, uint64_t *ns) {
  pid_t tid = 0;
  if (clock != CLOCK_THREAD_CPUTIME_ID && !tid_of_clock(clock, &tid)) return -1;
  if (tid == 0) {  // the calling thread's clock
    if (!on_uthread()) return -1;
    *ns = cpu_ns(upthread_self());
    return 0;
  }
  int err = with_upthread(
      tid, [](struct upthread *ut, void *p) { *static_cast<uint64_t *>(p) = cpu_ns(ut); }, ns);
  return err == ESRCH ? EINVAL : err;
}

}  // namespace

void thread_clock_init(struct upthread *main_ut) {
  g_main_ut = main_ut;
  timespec ts{};
  if (syscall(SYS_clock_gettime, clock_of_tid(getpid()), &ts) == 0)
    g_main_base_ns = timespec_to_ns(ts);
  uthread_enable_cpu_accounting();
}

}  // namespace parlib::detail::preload

using namespace parlib::detail::preload;

SHIM_EXPORT int clock_gettime(clockid_t clock, struct timespec *ts) {
  if (clock >= 0 && clock != CLOCK_THREAD_CPUTIME_ID) return REAL(clock_gettime)(clock, ts);
  uint64_t ns = 0;
  int err = clock_ns(clock, &ns);
  if (err < 0) return REAL(clock_gettime)(clock, ts);
  if (err != 0) {
    errno = err;
    return -1;
  }
  *ts = parlib::detail::ns_to_timespec(ns);
  return 0;
}

SHIM_EXPORT int clock_getres(clockid_t clock, struct timespec *res) {
  if (clock >= 0 && clock != CLOCK_THREAD_CPUTIME_ID) return REAL(clock_getres)(clock, res);
  uint64_t ns = 0;
  int err = clock_ns(clock, &ns);
  if (err < 0) return REAL(clock_getres)(clock, res);
  if (err != 0) {
    errno = err;
    return -1;
  }
  if (res != nullptr) *res = timespec{0, 1};  // the kernel's, for every CPU clock
  return 0;
}

SHIM_EXPORT int pthread_getcpuclockid(pthread_t t, clockid_t *clock) {
  struct upthread *ut = upthread_of(t);
  if (ut == nullptr) return REAL(pthread_getcpuclockid)(t, clock);
  pid_t tid = upthread_tid(ut);
  if (tid <= 0) return REAL(pthread_getcpuclockid)(t, clock);
  *clock = clock_of_tid(tid);
  return 0;
}

// RUSAGE_THREAD: the upthread's CPU time, split between user and system
// time in the proportion its vcore's task has so far; the other fields are
// the task's (docs/preload.md).
SHIM_EXPORT int getrusage(__rusage_who_t who, struct rusage *ru) {
  int r = REAL(getrusage)(who, ru);
  if (r != 0 || who != RUSAGE_THREAD || !on_uthread()) return r;
  uint64_t ns = cpu_ns(upthread_self());
  auto us = [](const timeval &tv) { return uint64_t(tv.tv_sec) * 1000000u + uint64_t(tv.tv_usec); };
  uint64_t task_user = us(ru->ru_utime), task_total = task_user + us(ru->ru_stime);
  uint64_t total = ns / 1000;
  uint64_t user = task_total == 0 ? total
                                  : static_cast<uint64_t>(static_cast<double>(total) *
                                                          static_cast<double>(task_user) /
                                                          static_cast<double>(task_total));
  uint64_t sys = total - user;
  ru->ru_utime =
      timeval{static_cast<time_t>(user / 1000000), static_cast<suseconds_t>(user % 1000000)};
  ru->ru_stime =
      timeval{static_cast<time_t>(sys / 1000000), static_cast<suseconds_t>(sys % 1000000)};
  return 0;
}

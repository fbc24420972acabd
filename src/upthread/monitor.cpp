// The stuck-vcore monitor: a kernel thread that samples the vcores every
// period and, while some are stuck in the kernel with threads queued,
// brings spare vcores online to run those threads; it retires the spares
// once the vcores they stand in for are back. See docs/upthread.md
// ("Vcores stuck in the kernel").
#include <parlib/vcore.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>

#include "common/futex.h"
#include "upthread/upthread_internal.h"

namespace parlib::detail::upthread_impl {
namespace {

std::atomic<uint64_t> g_check_us{0};
// Bumped by every change of the period; the monitor sleeps on it while off.
std::atomic<uint32_t> g_period_changes{0};
std::once_flag g_start_once;

// What the last sample saw of one vcore.
struct Sample {
  uint64_t switches = 0;
  bool blocked = false;
  bool stuck = false;
};

void sleep_us(uint64_t us) {
  timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>(us % 1000000) * 1000};
  clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);
}

// A vcore is stuck when two samples in a row find its task asleep in the
// kernel and it has not switched threads in between: a blocking system
// call or fault of the thread it runs, for at least one period. (An idle
// vcore goes offline before it sleeps, so it never counts.)
int count_stuck(Sample *seen) {
  int stuck = 0, slots = vcore_slots();
  for (int v = 0; v < slots; ++v) {
    auto id = static_cast<uint32_t>(v);
    uint64_t switches = vcore_switches(id);
    // procfs only for a vcore that has not moved: the common case is cheap.
    bool blocked = switches == seen[v].switches && vcore_blocked_in_kernel(id);
    bool now_stuck = blocked && seen[v].blocked;
    stuck += now_stuck;
    seen[v] = {switches, blocked, now_stuck};
  }
  return stuck;
}

// Threads queued on a stuck vcore (woken ones go back where they last ran)
// wait behind a wait in the kernel of unknown length, and vcores with work
// of their own do not steal: they go to vcores that are not blocked, in
// turn. (Go hands a P's run queue over when its M blocks in a system call.)
void rescue_queued(const Sample *seen) {
  int slots = vcore_slots();
  static int next = 0;
  for (int v = 0; v < slots; ++v) {
    if (!seen[v].stuck) continue;
    for (int i = 0; i < slots; ++i) {
      int t = (next + i) % slots;
      if (t == v || seen[t].blocked || !vcore_is_online(static_cast<uint32_t>(t))) continue;
      move_queued(static_cast<uint32_t>(v), static_cast<uint32_t>(t));
      next = t + 1;
      break;
    }
  }
}

// Ticks in a row with more spares online than vcores stuck before one
// retires: programs that block in bursts (a barrier of libgomp's, reached
// by every thread in turn) keep their spares from one burst to the next.
constexpr int kRetireAfterTicks = 16;

// Makes the number of online spares that are not blocked themselves match
// the number of stuck vcores (spares included: a stuck spare needs
// standing in for too), but asks for spares only while threads are
// queued. Returns the spares online.
int balance_spares(const Sample *seen, int stuck) {
  static int surplus_ticks = 0;
  int first = max_vcores(), slots = vcore_slots();  // spares past slots never ran
  int online = 0, helping = 0;
  for (int v = first; v < slots; ++v) {
    if (!vcore_is_online(static_cast<uint32_t>(v))) continue;
    ++online;
    helping += !seen[v].blocked;
  }
  surplus_ticks = helping > stuck ? surplus_ticks + 1 : 0;
  if (stuck > helping && threads_queued()) {
    // An offline spare may still carry a retire request it went offline
    // before acting on: it would leave again at once.
    for (int v = first; v < slots; ++v)
      if (!vcore_is_online(static_cast<uint32_t>(v))) retire_spare(static_cast<uint32_t>(v), false);
    for (int i = helping; i < stuck; ++i)
      if (vcore_request_spare() < 0) break;  // all spares out
  } else if (surplus_ticks >= kRetireAfterTicks) {
    surplus_ticks = 0;
    // Retire the idle-most: spares not stuck themselves, highest ids first.
    int excess = helping - stuck;
    for (int v = slots - 1; v >= first && excess > 0; --v) {
      if (!vcore_is_online(static_cast<uint32_t>(v)) || seen[v].blocked) continue;
      retire_spare(static_cast<uint32_t>(v));
      --excess;
    }
  }
  return online;
}

void *monitor_main(void *) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, nullptr);  // the runtime's signals are not for it
  std::unique_ptr<Sample[]> seen(
      new Sample[static_cast<size_t>(max_vcores() + max_spare_vcores())]);
  bool busy = false;
  for (;;) {
    uint32_t changes = g_period_changes.load(std::memory_order_acquire);
    uint64_t us = g_check_us.load(std::memory_order_acquire);
    if (us == 0) {
      // Turned off: nothing will retire the spares later, so all go now
      // (each at its next scheduling decision).
      for (int v = max_vcores(); v < vcore_slots(); ++v)
        if (vcore_is_online(static_cast<uint32_t>(v))) retire_spare(static_cast<uint32_t>(v));
      busy = false;
      futex_wait(&g_period_changes, changes);
      continue;
    }
    // While spares are in use, look 8 times as often: vcores get stuck in
    // bursts, and each look finds only those stuck since the last one.
    sleep_us(busy ? (us / 8 > 50 ? us / 8 : 50) : us);
    int stuck = count_stuck(seen.get());
    busy = balance_spares(seen.get(), stuck) > 0 || stuck > 0;
    if (stuck > 0) rescue_queued(seen.get());
  }
}

void start_monitor() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 << 10);
  pthread_t thread;
  int err = pthread_create(&thread, &attr, monitor_main, nullptr);
  pthread_attr_destroy(&attr);
  if (err != 0) fprintf(stderr, "upthread: cannot start the stuck-vcore monitor (error %d)\n", err);
}

}  // namespace
}  // namespace parlib::detail::upthread_impl

using namespace parlib::detail::upthread_impl;

extern "C" void upthread_set_stuck_check_period(uint64_t usec) {
  g_check_us.store(usec, std::memory_order_release);
  g_period_changes.fetch_add(1, std::memory_order_release);
  parlib::detail::futex_wake(&g_period_changes, 1);
  if (usec != 0 && max_spare_vcores() > 0) std::call_once(g_start_once, start_monitor);
}

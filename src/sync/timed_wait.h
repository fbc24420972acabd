// Deadlines for the timed waits of the sync layer (cond/sem timedwait,
// FUTEX_WAIT with a timeout).
//
// Until the alarm service (<parlib/alarm.h>) exists, deadlines are served
// by one internal kernel thread, started on first use: it keeps the armed
// entries in a list sorted by deadline, sleeps on a futex word until the
// earliest one, and calls each expired entry's fire() callback. That
// callback runs on the timer thread, a plain kernel thread that is neither
// a uthread nor a vcore: it may take spin_pdr locks (their notification
// calls are no-ops there) and call uthread_runnable(), whose 2LS callback
// must already be safe from any thread (uthread.h). The interface below is
// all the rest of the layer sees, so switching to alarms later touches
// only timed_wait.cpp.
//
// Entries are intrusive (they live in the waiter's stack frame): arming
// and cancelling never allocate, so both work in vcore context.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

#include "common/clock.h"

namespace parlib::detail {

struct TimedWait {
  enum State : int {
    kIdle,    // not armed (never armed, cancelled, or fired and done)
    kArmed,   // in the timer's list
    kFiring,  // taken off the list; fire() is running or about to
  };
  uint64_t deadline_ns = 0;  // CLOCK_MONOTONIC
  void (*fire)(TimedWait*) = nullptr;
  // Guarded by the timer's lock:
  TimedWait* prev = nullptr;
  TimedWait* next = nullptr;
  // Written under the timer's lock, except kFiring -> kIdle, which the
  // timer thread stores (release) after fire() returns; read by cancel.
  std::atomic<int> state{kIdle};
};

// Starts the timer thread if it is not running. Uthread context or plain
// threads (it may create a kernel thread): call it before blocking, so
// that timed_wait_arm() never has to. Returns false if the thread could
// not be created.
bool timed_wait_service_start();

// Arms e (state kIdle, deadline_ns and fire set): e->fire(e) will run on
// the timer thread once the deadline has passed, unless timed_wait_cancel
// removes it first. Any context; no allocation. The service must have been
// started.
void timed_wait_arm(TimedWait* e);

// Disarms e. On return e->fire is not running and will not run, so e may
// go out of scope. Returns true if it removed e before it fired. Any
// context (may spin briefly while fire() runs).
bool timed_wait_cancel(TimedWait* e);

}  // namespace parlib::detail

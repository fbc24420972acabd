// The lock word of uthread_mutex_t: barging with a short spin, a parked
// bit kept exact under the queue lock, one woken waiter at a time, and a
// direct hand-off to a waiter that has waited longer than the fairness
// bound. See docs/design.md ("Mutexes: barging with a fairness bound").
//
// Bits of the word (0: free, nobody parked, so a zeroed mutex is free):
//   kLocked  held.
//   kParked  the queue may hold waiters. Set by a waiter before it parks
//            (its park re-checks the word under the queue lock), cleared
//            only under the queue lock by an unlocker that empties it.
//   kWoken   an unlocker woke a waiter that has not taken the lock yet:
//            further unlocks wake nobody (the woken one takes the lock, or
//            parks again at the head of the queue with a timeout, keeping
//            the bit, and retries when it expires), so a burst of unlocks
//            cannot wake the whole queue to fight over one lock, and a
//            holder that keeps re-taking the lock is not made to wake its
//            loser on every unlock.
// An unlock that finds no kParked, or kWoken set, is a single CAS; only
// one that must wake someone takes the queue lock (and, with kWoken set,
// one in 64 per thread, so that the hand-off below never waits for a
// woken waiter that gets no CPU).
//
// Fairness: a waiter notes when it first parked. An unlock that finds the
// queue's head waiting for kFairHandoffNs or more hands the lock over
// instead of releasing it: kLocked stays set, so no running thread can
// barge in, and the waiter resumes owning it. Each hand-off moves the next
// head's turn to at least one bound later, so a waiter with k waiters
// ahead of it gets the lock within about (k + 1) bounds, plus scheduling
// delays (docs/design.md).
#pragma once

#include <parlib/mutex.h>

#include <cstdint>

namespace parlib::detail {

inline constexpr int kMutexLocked = 1;
inline constexpr int kMutexParked = 2;
inline constexpr int kMutexWoken = 4;

// A waiter that has waited this long gets the lock handed to it.
inline constexpr uint64_t kFairHandoffNs = 1000 * 1000;

// Takes m for a uthread, blocking while it is held. With a deadline
// (CLOCK_MONOTONIC ns, the deadline service running) gives up once it has
// passed: 0 holding m, or ETIMEDOUT.
int mutex_word_lock_blocking(uthread_mutex_t* m, const uint64_t* deadline_ns);

// For a condition waiter that resumed after mutex_word_requeue put it on
// m's queue: 0 once it holds m (it may have been handed m, or woken as
// m's one woken waiter).
int mutex_word_lock_requeued(uthread_mutex_t* m, uth_sync_waiter* w);

// Moves a blocked, dequeued, untimed condition waiter onto m's queue
// instead of waking it, marking m parked: a later unlock of m wakes it (or
// hands m to it). A broadcast wakes one waiter and requeues the rest, so
// they do not all wake to fight over m. Any context.
void mutex_word_requeue(uthread_mutex_t* m, uth_sync_waiter* w);

// Takes m by spinning: for kernel threads that are not uthreads.
int mutex_word_lock_spinning(uthread_mutex_t* m, const uint64_t* deadline_ns);

// Releases the word, waking or handing the lock to a waiter if needed.
// Any context (the condvar calls it from vcore context).
void mutex_word_unlock(uthread_mutex_t* m);

}  // namespace parlib::detail

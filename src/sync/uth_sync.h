// The blocking machinery shared by the uthread primitives of mutex.h:
// the waiter record, the FIFO wait queue, and block_uthread(), the one
// place that yields a uthread onto a primitive's queue.
//
// The protocol (see also the top of parlib/mutex.h):
//  1. In uthread context the primitive decides it must wait (under its
//     spin_pdr lock or by an atomic check), drops its lock, and calls
//     block_uthread() with a BlockRequest.
//  2. block_uthread() yields; in vcore context, after the uthread's state
//     is saved, the callback takes the primitive's lock again and asks the
//     request's must_wait() whether waiting is still needed. must_wait()
//     runs under the lock and may instead complete the operation for the
//     waiter (take the lock for it, decrement the semaphore...).
//       - No: the uthread is handed back to the 2LS (uthread_paused) and
//         block_uthread() returns false.
//       - Yes: uthread_has_blocked(), enqueue, arm the deadline if any,
//         drop the lock; then after_enqueue() (a condition wait releases
//         its mutex there). block_uthread() returns true once a waker or
//         the deadline has taken the waiter off the queue and made it
//         runnable; waiter.result says which (0 or ETIMEDOUT).
//     Because the re-check and the enqueue are one critical section, a
//     waker that changes the condition under the same lock either comes
//     before (must_wait says no) or finds the waiter queued.
//  3. Wakers, under the lock, take waiters off with dequeue() (setting
//     their result), drop the lock, then wake() them.
#pragma once

#include <parlib/mutex.h>
#include <parlib/spinlock.h>
#include <parlib/uthread.h>

#include "sync/timed_wait.h"

// A blocked uthread's entry on a primitive's queue. Lives in the frame of
// the blocking call, which cannot return before the entry is off every
// queue and its deadline is cancelled. (Global scope: the public header
// names this struct.)
struct uth_sync_waiter {
  struct uthread* uth = nullptr;
  uth_sync_waiter* next = nullptr;
  uth_sync_waiter* prev = nullptr;
  spin_pdr_lock_t* lock = nullptr;  // guards the fields below
  uth_sync_queue* queue = nullptr;  // the queue it is on while queued
  bool queued = false;
  int result = 0;             // set by whoever dequeues it
  void* token = nullptr;      // the waiter's identity (rwlock writer)
  const void* key = nullptr;  // futex address
  // Mutexes (mutex_word.cpp): when the waiter is due a hand-off, and
  // whether its waker handed it the lock (set by the waker, under lock).
  uint64_t fair_at_ns = 0;
  bool handed = false;
  // A condition waiter that a broadcast moved onto its mutex's queue: its
  // wake comes from a mutex unlock (mutex_word_requeue).
  bool requeued = false;
  parlib::detail::TimedWait timer;  // armed iff the wait has a deadline
};

namespace parlib::detail {

// Queue operations; the caller holds the queue's lock.
bool queue_empty(const uth_sync_queue* q);
void queue_push(uth_sync_queue* q, uth_sync_waiter* w);
void queue_push_front(uth_sync_queue* q, uth_sync_waiter* w);
// The first waiter, left on q; nullptr if q is empty.
inline uth_sync_waiter* queue_head(const uth_sync_queue* q) { return q->head_; }
void queue_remove(uth_sync_queue* q, uth_sync_waiter* w);
// Takes the first waiter off q and sets its result; nullptr if q is empty.
uth_sync_waiter* dequeue(uth_sync_queue* q, int result);
// Takes every waiter off q (setting result) and returns them as a list
// linked through next, for wake_all() after the lock is dropped.
uth_sync_waiter* dequeue_all(uth_sync_queue* q, int result);

// Makes a dequeued waiter runnable. Call without the queue lock. The
// waiter may run (and its entry vanish) as soon as this starts.
void wake(uth_sync_waiter* w);
// wake() for each entry of a dequeue_all() list.
void wake_all(uth_sync_waiter* list);

struct BlockRequest {
  spin_pdr_lock_t* lock;  // the primitive's lock
  uth_sync_queue* queue;  // where to wait
  uth_sync_waiter* waiter;
  // Under lock, in vcore context: true if the uthread must still wait;
  // false if not (it may complete the operation for the waiter then). NULL:
  // always wait.
  bool (*must_wait)(const BlockRequest* r) = nullptr;
  // After the enqueue and the unlock, in vcore context. NULL: nothing.
  void (*after_enqueue)(void* arg) = nullptr;
  void* arg = nullptr;  // for must_wait and after_enqueue
  bool front = false;   // queue at the head (a woken waiter keeps its place)
  bool timed = false;   // arm waiter->timer at deadline_ns
  uint64_t deadline_ns = 0;
  bool waited = false;  // out: set by block_uthread
};

// Blocks the calling uthread as described above. Uthread context only
// (the caller checked can_block()). For a timed request the deadline
// service must be running (timed_wait_service_start). Returns true if the
// uthread waited on the queue (and its deadline, if any, is now
// cancelled), false if must_wait() said no.
bool block_uthread(BlockRequest* r);

// True when the caller is a uthread in uthread context, i.e. may block.
bool can_block();

// The caller's identity for ownership: its struct uthread, or, outside
// uthreads, an address unique to the kernel thread (or vcore context).
void* self_token();

}  // namespace parlib::detail

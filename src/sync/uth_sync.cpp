// Wait queues and the blocking protocol of the uthread primitives (see
// uth_sync.h).

#include "sync/uth_sync.h"

#include <cerrno>
#include <cstddef>

#include "sync/sync_internal.h"

namespace parlib::detail {
namespace {

thread_local char t_identity;  // its address identifies a non-uthread caller

uth_sync_waiter* waiter_of(TimedWait* t) {
  return reinterpret_cast<uth_sync_waiter*>(reinterpret_cast<char*>(t) -
                                            offsetof(uth_sync_waiter, timer));
}

// The deadline passed: on the timer thread. Exactly one of this and a
// waker's dequeue() finds the waiter queued (both run under its lock).
void waiter_timed_out(TimedWait* t) {
  uth_sync_waiter* w = waiter_of(t);
  spin_pdr_lock(w->lock);
  const bool mine = w->queued;
  if (mine) {
    queue_remove(w->queue, w);
    w->result = ETIMEDOUT;
  }
  spin_pdr_unlock(w->lock);
  if (mine) wake(w);
}

// The uthread_yield callback: vcore context, the uthread's state saved.
void block_cb(struct uthread* uth, void* arg) {
  auto* r = static_cast<BlockRequest*>(arg);
  uth_sync_waiter* w = r->waiter;
  w->uth = uth;
  spin_pdr_lock(r->lock);
  if (r->must_wait != nullptr && !r->must_wait(r)) {
    spin_pdr_unlock(r->lock);
    uthread_paused(uth);
    return;  // uth may already run elsewhere: r and w are gone for us
  }
  // Tell the 2LS first: once w is queued and the lock dropped, a waker may
  // make uth runnable at any moment.
  uthread_has_blocked(uth, UTH_EXT_BLK_MUTEX);
  w->lock = r->lock;
  if (r->front)
    queue_push_front(r->queue, w);
  else
    queue_push(r->queue, w);
  if (r->timed) {
    // Armed under the queue lock, so no waker can dequeue (and the
    // uthread cannot return and cancel) before the entry is armed.
    w->timer.deadline_ns = r->deadline_ns;
    w->timer.fire = waiter_timed_out;
    timed_wait_arm(&w->timer);
  }
  // Copy what we still need: after the unlock r lives on a stack that may
  // be running again.
  void (*after)(void*) = r->after_enqueue;
  void* after_arg = r->arg;
  r->waited = true;
  spin_pdr_unlock(r->lock);
  if (after != nullptr) after(after_arg);
}

}  // namespace

bool queue_empty(const uth_sync_queue* q) { return q->head_ == nullptr; }

void queue_push(uth_sync_queue* q, uth_sync_waiter* w) {
  w->next = nullptr;
  w->prev = q->tail_;
  if (q->tail_)
    q->tail_->next = w;
  else
    q->head_ = w;
  q->tail_ = w;
  w->queue = q;
  w->queued = true;
}

void queue_push_front(uth_sync_queue* q, uth_sync_waiter* w) {
  w->prev = nullptr;
  w->next = q->head_;
  if (q->head_)
    q->head_->prev = w;
  else
    q->tail_ = w;
  q->head_ = w;
  w->queue = q;
  w->queued = true;
}

void queue_remove(uth_sync_queue* q, uth_sync_waiter* w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    q->head_ = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    q->tail_ = w->prev;
  w->next = w->prev = nullptr;
  w->queued = false;
}

uth_sync_waiter* dequeue(uth_sync_queue* q, int result) {
  uth_sync_waiter* w = q->head_;
  if (w != nullptr) {
    queue_remove(q, w);
    w->result = result;
  }
  return w;
}

uth_sync_waiter* dequeue_all(uth_sync_queue* q, int result) {
  uth_sync_waiter* list = q->head_;
  for (uth_sync_waiter* w = list; w != nullptr; w = w->next) {
    w->queued = false;
    w->result = result;
    w->prev = nullptr;
  }
  q->head_ = q->tail_ = nullptr;
  return list;
}

void wake(uth_sync_waiter* w) { uthread_runnable(w->uth); }

void wake_all(uth_sync_waiter* list) {
  while (list != nullptr) {
    // Read next first: the waiter's frame may vanish once it is runnable.
    uth_sync_waiter* next = list->next;
    wake(list);
    list = next;
  }
}

bool block_uthread(BlockRequest* r) {
  r->waited = false;  // block_cb sets it when it queues us
  uthread_yield(true, block_cb, r);
  // Resumed. Whoever dequeued us wrote the waiter before making us
  // runnable, and the 2LS's handoff orders that before this point.
  PARLIB_CHECK(!r->waiter->queued, "uthread resumed while still on a wait queue");
  if (r->waited && r->timed) timed_wait_cancel(&r->waiter->timer);
  return r->waited;
}

bool can_block() { return uthread_self() != nullptr; }

void* self_token() {
  if (struct uthread* u = uthread_self()) return u;
  return &t_identity;
}

}  // namespace parlib::detail

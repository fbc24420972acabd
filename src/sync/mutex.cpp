// uthread mutexes and condition variables (parlib/mutex.h).
//
// Mutex: the lock word of mutex_word.h (barging after a short spin, one
// woken waiter at a time, a hand-off to a waiter past the fairness bound)
// with the wait queue of uth_sync.h. This file adds types, owners and
// recursion on top.
//
// Condition variable: a FIFO of waiters under a spin_pdr lock. The waiter
// is queued on the condvar and only then, still in the yield callback,
// releases the mutex, so a signal sent by the next holder of the mutex
// cannot miss it.

#include <parlib/mutex.h>

#include <atomic>
#include <cerrno>
#include <climits>

#include "sync/mutex_word.h"
#include "sync/sync_internal.h"
#include "sync/uth_sync.h"

namespace parlib::detail {
namespace {

std::atomic_ref<int> state_of(uthread_mutex_t* m) { return std::atomic_ref<int>(m->state_); }
std::atomic_ref<void*> owner_of(uthread_mutex_t* m) { return std::atomic_ref<void*>(m->owner_); }

int mutex_type(uthread_mutex_t* m) {
  // relaxed: the type changes only at init/destroy, which must not race
  // with use.
  const int t = std::atomic_ref<int>(m->type_).load(std::memory_order_relaxed);
  return t == UTHREAD_MUTEX_NORMAL || t == UTHREAD_MUTEX_RECURSIVE || t == UTHREAD_MUTEX_ERRORCHECK
             ? t
             : -1;
}

// Takes m if it is not held (whoever is parked or woken: a trylock or a
// running locker may barge).
bool try_acquire(uthread_mutex_t* m) {
  int w = 0;
  // acquire: pairs with the release of mutex_word_unlock. relaxed on
  // failure: w is only a guess for the next try.
  while (!state_of(m).compare_exchange_weak(w, w | kMutexLocked, std::memory_order_acquire,
                                            std::memory_order_relaxed))
    if (w & kMutexLocked) return false;
  return true;
}

// Takes m, blocking the calling uthread while it is held (see
// mutex_word.h). Uthread context.
int acquire_blocking(uthread_mutex_t* m, const uint64_t* deadline_ns = nullptr) {
  if (try_acquire(m)) return 0;
  return mutex_word_lock_blocking(m, deadline_ns);
}

// Takes m by spinning: for kernel threads that are not uthreads.
int acquire_spinning(uthread_mutex_t* m, const uint64_t* deadline_ns = nullptr) {
  return mutex_word_lock_spinning(m, deadline_ns);
}

void mutex_release(uthread_mutex_t* m) { mutex_word_unlock(m); }

void set_owner(uthread_mutex_t* m, void* self, unsigned count) {
  // relaxed: only the owner compares owner_ with itself; its own writes
  // are ordered by program order (and a migration's switch).
  owner_of(m).store(self, std::memory_order_relaxed);
  m->count_ = count;
}

// A mutex_release for the yield callback of a condition wait.
void cond_release_mutex(void* m) { mutex_release(static_cast<uthread_mutex_t*>(m)); }

bool cond_valid(uthread_cond_t* c) {
  return c != nullptr && std::atomic_ref<int>(c->valid_).load(std::memory_order_relaxed) == 1;
}

// Converts an absolute deadline on clock (CLOCK_REALTIME or
// CLOCK_MONOTONIC) to CLOCK_MONOTONIC ns. EINVAL for another clock or a
// bad timespec.
int deadline_on(clockid_t clock, const struct timespec* abs, uint64_t* out) {
  if (abs == nullptr || !timespec_is_valid(*abs)) return EINVAL;
  if (clock == CLOCK_REALTIME)
    *out = realtime_deadline_to_monotonic_ns(*abs);
  else if (clock == CLOCK_MONOTONIC)
    *out = monotonic_deadline_ns(*abs);
  else
    return EINVAL;
  return 0;
}

// The condition wait; abs == nullptr: no deadline.
int cond_wait_common(uthread_cond_t* c, uthread_mutex_t* m, clockid_t clock,
                     const struct timespec* abs) {
  if (!cond_valid(c) || m == nullptr || mutex_type(m) < 0) return EINVAL;
  if (!can_block()) return EPERM;
  void* self = self_token();
  if (!(state_of(m).load(std::memory_order_relaxed) & kMutexLocked) ||
      owner_of(m).load(std::memory_order_relaxed) != self)
    return EPERM;
  uth_sync_waiter w;
  BlockRequest r{&c->qlock_, &c->waiters_, &w};
  if (abs != nullptr) {
    if (const int err = deadline_on(clock, abs, &r.deadline_ns)) return err;
    r.timed = true;
    if (r.deadline_ns <= monotonic_now_ns()) return ETIMEDOUT;
    if (!timed_wait_service_start()) return EAGAIN;
  }
  // Give up ownership now; the lock word itself is released by the yield
  // callback, after we are on the condvar's queue.
  const unsigned depth = m->count_;
  set_owner(m, nullptr, 0);
  r.after_enqueue = cond_release_mutex;
  r.arg = m;
  w.token = m;  // for a broadcast's requeue
  block_uthread(&r);
  // No deadline from here: POSIX returns holding the mutex.
  if (w.requeued)
    mutex_word_lock_requeued(m, &w);
  else
    acquire_blocking(m);
  set_owner(m, self, depth);
  return w.result;
}

// uthread_mutex_lock and uthread_mutex_timedlock (abs != nullptr).
int mutex_lock_common(uthread_mutex_t* m, const struct timespec* abs) {
  const int type = m != nullptr ? mutex_type(m) : -1;
  if (type < 0) return EINVAL;
  void* self = self_token();
  if (type != UTHREAD_MUTEX_NORMAL && owner_of(m).load(std::memory_order_relaxed) == self) {
    if (type == UTHREAD_MUTEX_ERRORCHECK) return EDEADLK;
    if (m->count_ == UINT_MAX) return EAGAIN;
    ++m->count_;
    return 0;
  }
  if (!try_acquire(m)) {
    // POSIX: the deadline is only looked at when the call has to wait.
    uint64_t deadline = 0;
    if (abs != nullptr) {
      if (const int err = deadline_on(CLOCK_REALTIME, abs, &deadline)) return err;
    }
    const uint64_t* dl = abs != nullptr ? &deadline : nullptr;
    int err;
    if (can_block()) {
      if (dl != nullptr && !timed_wait_service_start()) return EAGAIN;
      err = acquire_blocking(m, dl);
    } else if (in_vcore_context()) {
      return EPERM;
    } else {
      err = acquire_spinning(m, dl);
    }
    if (err != 0) return err;
  }
  set_owner(m, self, 1);
  return 0;
}

}  // namespace
}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

PARLIB_API int uthread_mutex_init(uthread_mutex_t* m, int type) {
  if (m == nullptr || (type != UTHREAD_MUTEX_NORMAL && type != UTHREAD_MUTEX_RECURSIVE &&
                       type != UTHREAD_MUTEX_ERRORCHECK))
    return EINVAL;
  *m = uthread_mutex_t UTHREAD_MUTEX_INITIALIZER;
  m->type_ = type;
  return 0;
}

PARLIB_API int uthread_mutex_lock(uthread_mutex_t* m) { return mutex_lock_common(m, nullptr); }

PARLIB_API int uthread_mutex_timedlock(uthread_mutex_t* m, const struct timespec* abs_realtime) {
  if (abs_realtime == nullptr) return EINVAL;
  return mutex_lock_common(m, abs_realtime);
}

PARLIB_API int uthread_mutex_trylock(uthread_mutex_t* m) {
  const int type = m != nullptr ? mutex_type(m) : -1;
  if (type < 0) return EINVAL;
  void* self = self_token();
  if (type == UTHREAD_MUTEX_RECURSIVE && owner_of(m).load(std::memory_order_relaxed) == self) {
    if (m->count_ == UINT_MAX) return EAGAIN;
    ++m->count_;
    return 0;
  }
  if (!try_acquire(m)) return EBUSY;
  set_owner(m, self, 1);
  return 0;
}

PARLIB_API int uthread_mutex_unlock(uthread_mutex_t* m) {
  const int type = m != nullptr ? mutex_type(m) : -1;
  if (type < 0) return EINVAL;
  // relaxed: a free mutex is an error whoever reads it.
  if (!(state_of(m).load(std::memory_order_relaxed) & kMutexLocked)) return EPERM;
  if (type != UTHREAD_MUTEX_NORMAL) {
    if (owner_of(m).load(std::memory_order_relaxed) != self_token()) return EPERM;
    if (type == UTHREAD_MUTEX_RECURSIVE && m->count_ > 1) {
      --m->count_;
      return 0;
    }
  }
  set_owner(m, nullptr, 0);
  mutex_release(m);
  return 0;
}

PARLIB_API int uthread_mutex_destroy(uthread_mutex_t* m) {
  if (m == nullptr || mutex_type(m) < 0) return EINVAL;
  spin_pdr_lock(&m->qlock_);
  const bool busy = (state_of(m).load(std::memory_order_relaxed) & kMutexLocked) != 0 ||
                    !queue_empty(&m->waiters_);
  if (!busy) std::atomic_ref<int>(m->type_).store(-1, std::memory_order_relaxed);
  spin_pdr_unlock(&m->qlock_);
  return busy ? EBUSY : 0;
}

PARLIB_API int uthread_cond_init(uthread_cond_t* c) {
  if (c == nullptr) return EINVAL;
  *c = uthread_cond_t UTHREAD_COND_INITIALIZER;
  return 0;
}

PARLIB_API int uthread_cond_destroy(uthread_cond_t* c) {
  if (!cond_valid(c)) return EINVAL;
  spin_pdr_lock(&c->qlock_);
  const bool busy = !queue_empty(&c->waiters_);
  if (!busy) std::atomic_ref<int>(c->valid_).store(0, std::memory_order_relaxed);
  spin_pdr_unlock(&c->qlock_);
  return busy ? EBUSY : 0;
}

PARLIB_API int uthread_cond_wait(uthread_cond_t* c, uthread_mutex_t* m) {
  return cond_wait_common(c, m, CLOCK_REALTIME, nullptr);
}

PARLIB_API int uthread_cond_timedwait(uthread_cond_t* c, uthread_mutex_t* m,
                                      const struct timespec* abs_realtime) {
  if (abs_realtime == nullptr) return EINVAL;
  return cond_wait_common(c, m, CLOCK_REALTIME, abs_realtime);
}

PARLIB_API int uthread_cond_clockwait(uthread_cond_t* c, uthread_mutex_t* m, int clock_id,
                                      const struct timespec* abs) {
  if (abs == nullptr) return EINVAL;
  return cond_wait_common(c, m, static_cast<clockid_t>(clock_id), abs);
}

PARLIB_API int uthread_cond_signal(uthread_cond_t* c) {
  if (!cond_valid(c)) return EINVAL;
  spin_pdr_lock(&c->qlock_);
  uth_sync_waiter* w = dequeue(&c->waiters_, 0);
  spin_pdr_unlock(&c->qlock_);
  if (w != nullptr) wake(w);
  return 0;
}

PARLIB_API int uthread_cond_broadcast(uthread_cond_t* c) {
  if (!cond_valid(c)) return EINVAL;
  spin_pdr_lock(&c->qlock_);
  uth_sync_waiter* list = dequeue_all(&c->waiters_, 0);
  spin_pdr_unlock(&c->qlock_);
  if (list == nullptr) return 0;
  // Wake the first waiter; move the others onto the mutex's queue, so
  // that each is woken by an unlock of the mutex (or handed it) in turn
  // instead of all waking to fight over it. A timed waiter is woken (its
  // deadline is armed against the condvar's lock), as is one that waits
  // with another mutex (POSIX leaves that undefined).
  uth_sync_waiter* first = list;
  auto* m = static_cast<uthread_mutex_t*>(first->token);
  uth_sync_waiter* rest = first->next;
  wake(first);  // first may vanish from here on; the rest stay blocked
  while (rest != nullptr) {
    uth_sync_waiter* w = rest;
    rest = w->next;  // read before w can run
    if (w->timer.deadline_ns == 0 && w->token == m)
      mutex_word_requeue(m, w);
    else
      wake(w);
  }
  return 0;
}

}  // extern "C"

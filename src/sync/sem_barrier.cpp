// uthread semaphores and barriers (parlib/mutex.h).
//
// Semaphore: value and FIFO under the spin_pdr lock; a post with waiters
// hands its unit straight to the longest waiter instead of raising the
// value, so a woken waiter never has to compete for it again.
//
// Barrier: the last arrival of a phase opens it: it resets the arrival
// count, advances the phase number and wakes everyone queued. A waiter
// remembers the phase it arrived in; its yield callback re-checks under the
// lock and does not block if that phase has already ended.

#include <parlib/mutex.h>

#include <atomic>
#include <cerrno>

#include "sync/sync_internal.h"
#include "sync/uth_sync.h"

namespace parlib::detail {
namespace {

bool sem_valid(uthread_sem_t* s) {
  // relaxed: validity changes only at init/destroy, which must not race
  // with use.
  return s != nullptr && std::atomic_ref<int>(s->valid_).load(std::memory_order_relaxed) == 1;
}

// Under the lock: takes a unit if there is one.
bool sem_take_locked(uthread_sem_t* s) {
  if (s->value_ == 0) return false;
  --s->value_;
  return true;
}

bool sem_must_wait(const BlockRequest* r) {
  return !sem_take_locked(static_cast<uthread_sem_t*>(r->arg));
}

int sem_wait_common(uthread_sem_t* s, const struct timespec* abs, bool timed) {
  if (!sem_valid(s)) return EINVAL;
  spin_pdr_lock(&s->qlock_);
  const bool got = sem_take_locked(s);
  spin_pdr_unlock(&s->qlock_);
  if (got) return 0;
  uth_sync_waiter w;
  BlockRequest r{&s->qlock_, &s->waiters_, &w};
  if (timed) {
    // POSIX: the timeout is only looked at when the call would block.
    if (abs == nullptr || !timespec_is_valid(*abs)) return EINVAL;
    r.timed = true;
    r.deadline_ns = realtime_deadline_to_monotonic_ns(*abs);
    if (r.deadline_ns <= monotonic_now_ns()) return ETIMEDOUT;
  }
  if (!can_block()) return EPERM;
  if (timed && !timed_wait_service_start()) return EAGAIN;
  r.must_wait = sem_must_wait;
  r.arg = s;
  if (!block_uthread(&r)) return 0;  // a unit appeared before we blocked
  return w.result;                   // 0: a post handed us its unit
}

struct BarrierArrival {
  uthread_barrier_t* b;
  unsigned long phase;
};

bool barrier_must_wait(const BlockRequest* r) {
  const auto* a = static_cast<const BarrierArrival*>(r->arg);
  return a->b->phase_ == a->phase;
}

}  // namespace
}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

PARLIB_API int uthread_sem_init(uthread_sem_t* s, unsigned int value) {
  if (s == nullptr || value > UTHREAD_SEM_VALUE_MAX) return EINVAL;
  *s = uthread_sem_t UTHREAD_SEM_INITIALIZER(value);
  return 0;
}

PARLIB_API int uthread_sem_destroy(uthread_sem_t* s) {
  if (!sem_valid(s)) return EINVAL;
  spin_pdr_lock(&s->qlock_);
  const bool busy = !queue_empty(&s->waiters_);
  if (!busy) std::atomic_ref<int>(s->valid_).store(0, std::memory_order_relaxed);
  spin_pdr_unlock(&s->qlock_);
  return busy ? EBUSY : 0;
}

PARLIB_API int uthread_sem_wait(uthread_sem_t* s) { return sem_wait_common(s, nullptr, false); }

PARLIB_API int uthread_sem_trywait(uthread_sem_t* s) {
  if (!sem_valid(s)) return EINVAL;
  spin_pdr_lock(&s->qlock_);
  const bool got = sem_take_locked(s);
  spin_pdr_unlock(&s->qlock_);
  return got ? 0 : EAGAIN;
}

PARLIB_API int uthread_sem_timedwait(uthread_sem_t* s, const struct timespec* abs_realtime) {
  return sem_wait_common(s, abs_realtime, true);
}

PARLIB_API int uthread_sem_post(uthread_sem_t* s) {
  if (!sem_valid(s)) return EINVAL;
  spin_pdr_lock(&s->qlock_);
  uth_sync_waiter* w = dequeue(&s->waiters_, 0);
  int err = 0;
  if (w == nullptr) {
    if (s->value_ >= UTHREAD_SEM_VALUE_MAX)
      err = EOVERFLOW;
    else
      ++s->value_;
  }
  spin_pdr_unlock(&s->qlock_);
  if (w != nullptr) wake(w);
  return err;
}

PARLIB_API int uthread_sem_getvalue(uthread_sem_t* s, int* value) {
  if (!sem_valid(s) || value == nullptr) return EINVAL;
  spin_pdr_lock(&s->qlock_);
  *value = static_cast<int>(s->value_);
  spin_pdr_unlock(&s->qlock_);
  return 0;
}

PARLIB_API int uthread_barrier_init(uthread_barrier_t* b, unsigned int count) {
  if (b == nullptr || count == 0) return EINVAL;
  *b = uthread_barrier_t{count, 0, 0, SPINPDR_INITIALIZER, UTH_SYNC_QUEUE_INIT};
  return 0;
}

PARLIB_API int uthread_barrier_wait(uthread_barrier_t* b) {
  if (b == nullptr) return EINVAL;
  if (!can_block()) return EPERM;
  spin_pdr_lock(&b->qlock_);
  if (b->count_ == 0) {
    spin_pdr_unlock(&b->qlock_);
    return EINVAL;
  }
  if (++b->arrived_ == b->count_) {
    b->arrived_ = 0;
    ++b->phase_;
    uth_sync_waiter* list = dequeue_all(&b->waiters_, 0);
    spin_pdr_unlock(&b->qlock_);
    wake_all(list);
    return UTHREAD_BARRIER_SERIAL_THREAD;
  }
  BarrierArrival arrival{b, b->phase_};
  spin_pdr_unlock(&b->qlock_);
  uth_sync_waiter w;
  BlockRequest r{&b->qlock_, &b->waiters_, &w};
  r.must_wait = barrier_must_wait;
  r.arg = &arrival;
  // Do not touch b after this: once the phase is over it may be destroyed.
  block_uthread(&r);
  return 0;
}

PARLIB_API int uthread_barrier_destroy(uthread_barrier_t* b) {
  if (b == nullptr) return EINVAL;
  spin_pdr_lock(&b->qlock_);
  int err = 0;
  if (b->count_ == 0)
    err = EINVAL;
  else if (b->arrived_ != 0 || !queue_empty(&b->waiters_))
    err = EBUSY;
  else
    b->count_ = 0;
  spin_pdr_unlock(&b->qlock_);
  return err;
}

}  // extern "C"

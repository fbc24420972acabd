// upthread's synchronization API: thin adapters from the pthread shapes to
// parlib's uthread primitives (which block through this 2LS).
#include <parlib/dtls.h>
#include <parlib/mutex.h>
#include <parlib/spinlock.h>
#include <time.h>

#include <atomic>
#include <cerrno>

#include "upthread/upthread_internal.h"

extern "C" {

int upthread_mutexattr_init(upthread_mutexattr_t *attr) {
  if (attr == nullptr) return EINVAL;
  attr->type = UPTHREAD_MUTEX_DEFAULT;
  return 0;
}
int upthread_mutexattr_destroy(upthread_mutexattr_t *attr) { return attr == nullptr ? EINVAL : 0; }
int upthread_mutexattr_settype(upthread_mutexattr_t *attr, int type) {
  if (attr == nullptr || (type != UPTHREAD_MUTEX_NORMAL && type != UPTHREAD_MUTEX_RECURSIVE &&
                          type != UPTHREAD_MUTEX_ERRORCHECK))
    return EINVAL;
  attr->type = type;
  return 0;
}
int upthread_mutexattr_gettype(const upthread_mutexattr_t *attr, int *type) {
  if (attr == nullptr || type == nullptr) return EINVAL;
  *type = attr->type;
  return 0;
}
int upthread_mutex_init(upthread_mutex_t *m, const upthread_mutexattr_t *attr) {
  return uthread_mutex_init(m, attr != nullptr ? attr->type : UPTHREAD_MUTEX_DEFAULT);
}
int upthread_mutex_destroy(upthread_mutex_t *m) { return uthread_mutex_destroy(m); }
int upthread_mutex_lock(upthread_mutex_t *m) { return uthread_mutex_lock(m); }
int upthread_mutex_trylock(upthread_mutex_t *m) { return uthread_mutex_trylock(m); }
int upthread_mutex_unlock(upthread_mutex_t *m) { return uthread_mutex_unlock(m); }

int upthread_mutex_timedlock(upthread_mutex_t *m, const struct timespec *abs_realtime) {
  return uthread_mutex_timedlock(m, abs_realtime);
}

int upthread_condattr_init(upthread_condattr_t *attr) {
  if (attr == nullptr) return EINVAL;
  attr->clock = CLOCK_REALTIME;
  return 0;
}
int upthread_condattr_destroy(upthread_condattr_t *attr) { return attr == nullptr ? EINVAL : 0; }
int upthread_condattr_setclock(upthread_condattr_t *attr, clockid_t clock) {
  if (attr == nullptr || (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC)) return EINVAL;
  attr->clock = clock;
  return 0;
}
int upthread_condattr_getclock(const upthread_condattr_t *attr, clockid_t *clock) {
  if (attr == nullptr || clock == nullptr) return EINVAL;
  *clock = attr->clock;
  return 0;
}
int upthread_cond_init(upthread_cond_t *c, const upthread_condattr_t *attr) {
  if (c == nullptr) return EINVAL;
  c->clock = attr != nullptr ? attr->clock : CLOCK_REALTIME;
  return uthread_cond_init(&c->cond);
}
int upthread_cond_destroy(upthread_cond_t *c) {
  return c == nullptr ? EINVAL : uthread_cond_destroy(&c->cond);
}
int upthread_cond_wait(upthread_cond_t *c, upthread_mutex_t *m) {
  return c == nullptr ? EINVAL : uthread_cond_wait(&c->cond, m);
}
int upthread_cond_timedwait(upthread_cond_t *c, upthread_mutex_t *m,
                            const struct timespec *abstime) {
  if (c == nullptr) return EINVAL;
  return uthread_cond_clockwait(&c->cond, m, c->clock, abstime);
}
int upthread_cond_signal(upthread_cond_t *c) {
  return c == nullptr ? EINVAL : uthread_cond_signal(&c->cond);
}
int upthread_cond_broadcast(upthread_cond_t *c) {
  return c == nullptr ? EINVAL : uthread_cond_broadcast(&c->cond);
}

int upthread_rwlock_init(upthread_rwlock_t *rw, const void *) { return uthread_rwlock_init(rw); }
int upthread_rwlock_destroy(upthread_rwlock_t *rw) { return uthread_rwlock_destroy(rw); }
int upthread_rwlock_rdlock(upthread_rwlock_t *rw) { return uthread_rwlock_rdlock(rw); }
int upthread_rwlock_tryrdlock(upthread_rwlock_t *rw) { return uthread_rwlock_tryrdlock(rw); }
int upthread_rwlock_wrlock(upthread_rwlock_t *rw) { return uthread_rwlock_wrlock(rw); }
int upthread_rwlock_trywrlock(upthread_rwlock_t *rw) { return uthread_rwlock_trywrlock(rw); }
int upthread_rwlock_unlock(upthread_rwlock_t *rw) { return uthread_rwlock_unlock(rw); }

int upthread_barrier_init(upthread_barrier_t *b, const void *, unsigned count) {
  return uthread_barrier_init(b, count);
}
int upthread_barrier_destroy(upthread_barrier_t *b) { return uthread_barrier_destroy(b); }
int upthread_barrier_wait(upthread_barrier_t *b) { return uthread_barrier_wait(b); }

int upthread_spin_init(upthread_spinlock_t *l, int) {
  if (l == nullptr) return EINVAL;
  spin_pdr_init(l);
  return 0;
}
int upthread_spin_destroy(upthread_spinlock_t *l) { return l == nullptr ? EINVAL : 0; }
int upthread_spin_lock(upthread_spinlock_t *l) {
  if (l == nullptr) return EINVAL;
  spin_pdr_lock(l);
  return 0;
}
int upthread_spin_trylock(upthread_spinlock_t *l) {
  if (l == nullptr) return EINVAL;
  return spin_pdr_trylock(l) ? 0 : EBUSY;
}
int upthread_spin_unlock(upthread_spinlock_t *l) {
  if (l == nullptr) return EINVAL;
  spin_pdr_unlock(l);
  return 0;
}

int upthread_key_create(upthread_key_t *key, void (*dtor)(void *)) {
  if (key == nullptr) return EINVAL;
  dtls_key_t k = dtls_key_create(dtor);
  if (k == nullptr) return EAGAIN;
  *key = k;
  return 0;
}
int upthread_key_delete(upthread_key_t key) {
  if (key == nullptr) return EINVAL;
  dtls_key_delete(key);
  return 0;
}
int upthread_setspecific(upthread_key_t key, const void *value) {
  if (key == nullptr) return EINVAL;
  errno = 0;
  set_dtls(key, const_cast<void *>(value));
  return errno == ENOMEM ? ENOMEM : 0;
}
void *upthread_getspecific(upthread_key_t key) { return get_dtls(key); }

// 0: not run; 1: running; 2: done. Latecomers yield until it is done.
int upthread_once(upthread_once_t *once, void (*init)(void)) {
  if (once == nullptr || init == nullptr) return EINVAL;
  std::atomic_ref<int> state(*once);
  int expected = 0;
  if (state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) {
    init();
    state.store(2, std::memory_order_release);
    return 0;
  }
  while (state.load(std::memory_order_acquire) != 2) upthread_yield();
  return 0;
}

int upsem_init(upsem_t *s, int pshared, unsigned value) {
  int err = pshared != 0 ? ENOSYS : uthread_sem_init(s, value);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return 0;
}

#define UPSEM_CALL(expr) \
  do {                   \
    int err_ = (expr);   \
    if (err_ != 0) {     \
      errno = err_;      \
      return -1;         \
    }                    \
    return 0;            \
  } while (0)

int upsem_destroy(upsem_t *s) { UPSEM_CALL(uthread_sem_destroy(s)); }
int upsem_wait(upsem_t *s) { UPSEM_CALL(uthread_sem_wait(s)); }
int upsem_trywait(upsem_t *s) { UPSEM_CALL(uthread_sem_trywait(s)); }
int upsem_timedwait(upsem_t *s, const struct timespec *abs_realtime) {
  UPSEM_CALL(uthread_sem_timedwait(s, abs_realtime));
}
int upsem_post(upsem_t *s) { UPSEM_CALL(uthread_sem_post(s)); }
int upsem_getvalue(upsem_t *s, int *value) { UPSEM_CALL(uthread_sem_getvalue(s, value)); }

}  // extern "C"

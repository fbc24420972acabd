// libupthread-preload.so: robust, priority-inheritance (PI) and
// priority-protect (PP) mutexes, on the shim's mutex (sync.cpp).
//
// Robust: glibc keeps a robust list per thread that the kernel walks when
// the thread's task dies, and marks the futex words it finds with
// FUTEX_OWNER_DIED; that needs the owner's kernel tid in the word. A
// upthread is no kernel task (and its id is no kernel tid), so the shim
// keeps the list itself: each upthread's held robust mutexes are chained
// through the mutexes (__list.__next, as glibc does) from a TLS head, and
// the upthread's exit (return, pthread_exit, cancellation) releases each
// one as owner-dead. The next locker — a waiter already blocked on it, or
// a later lock, trylock or timed lock — takes it and gets EOWNERDEAD.
//
// PI and PP: upthread has no thread priorities (its scheduler is FIFO per
// vcore), so no thread can be starved by a lower-priority holder and there
// is nothing to inherit or raise: the kernel's PI futexes (which name the
// owner by its kernel tid) are not used, and both lock as the other
// mutexes do, with their error rules (a PI mutex's unlock by a non-owner
// is EPERM, as glibc's); PP keeps its ceiling, which reads back as set.
#include <errno.h>
#include <limits.h>
#include <sched.h>

#include <atomic>

#include "mutex.h"
#include "shim.h"

namespace parlib::detail::preload {
namespace {

// The calling upthread's held robust mutexes (each uthread has its own
// static TLS).
__thread Mutex *tl_robust_head __attribute__((tls_model("initial-exec"))) = nullptr;

void unlink(Mutex *m) {
  for (Mutex **p = &tl_robust_head; *p != nullptr; p = &(*p)->robust_next) {
    if (*p == m) {
      *p = m->robust_next;
      break;
    }
  }
  m->robust_next = nullptr;
}

}  // namespace

void mutex_attr_kind(const pthread_mutexattr_t *attr, int *kind, unsigned *ceiling) {
  *ceiling = 0;
  if (attr == nullptr) return;
  int robust = PTHREAD_MUTEX_STALLED, protocol = PTHREAD_PRIO_NONE;
  pthread_mutexattr_getrobust(attr, &robust);
  pthread_mutexattr_getprotocol(attr, &protocol);
  if (robust == PTHREAD_MUTEX_ROBUST) *kind |= kRobust;
  if (protocol == PTHREAD_PRIO_INHERIT) *kind |= kPrioInherit;
  if (protocol == PTHREAD_PRIO_PROTECT) {
    *kind |= kPrioProtect;
    // glibc's default ceiling: the lowest SCHED_FIFO priority.
    int c = 0;
    pthread_mutexattr_getprioceiling(attr, &c);
    if (c == 0) c = sched_get_priority_min(SCHED_FIFO);
    *ceiling = static_cast<unsigned>(c);
  }
}

int robust_acquired(Mutex *m) {
  int state = m->robust_state;
  if (state == kRobustNotRecoverable) return ENOTRECOVERABLE;
  m->robust_next = tl_robust_head;
  tl_robust_head = m;
  if (state == kRobustOwnerDead) {
    m->robust_state = kRobustInconsistent;
    return EOWNERDEAD;
  }
  return 0;
}

void robust_releasing(Mutex *m) {
  unlink(m);
  if (m->robust_state == kRobustInconsistent) m->robust_state = kRobustNotRecoverable;
}

void robust_thread_exit() {
  while (Mutex *m = tl_robust_head) {
    tl_robust_head = m->robust_next;
    m->robust_next = nullptr;
    // Owner-dead whatever it was (an inconsistent one too, as glibc does),
    // then released the way mutex_unlock releases it.
    m->robust_state = kRobustOwnerDead;
    m->count = 0;
    std::atomic_ref<void *>(m->owner).store(nullptr, std::memory_order_relaxed);
    if (std::atomic_ref<int>(m->lock).exchange(0, std::memory_order_release) == 2)
      futex_wake(&m->lock, 1);
  }
}

}  // namespace parlib::detail::preload

using namespace parlib::detail::preload;

SHIM_EXPORT int pthread_mutex_consistent(pthread_mutex_t *pm) {
  Mutex *m = M(pm);
  if (m->kind & kPshared) return REAL(pthread_mutex_consistent)(pm);
  if (!(m->kind & kRobust) || m->robust_state != kRobustInconsistent ||
      std::atomic_ref<void *>(m->owner).load(std::memory_order_relaxed) != self_id())
    return EINVAL;
  m->robust_state = kRobustOk;
  return 0;
}

SHIM_EXPORT int pthread_mutex_getprioceiling(const pthread_mutex_t *pm, int *ceiling) {
  const Mutex *m = reinterpret_cast<const Mutex *>(pm);
  if (m->kind & kPshared) return REAL(pthread_mutex_getprioceiling)(pm, ceiling);
  if (!(m->kind & kPrioProtect)) return EINVAL;
  *ceiling = static_cast<int>(m->ceiling);
  return 0;
}

SHIM_EXPORT int pthread_mutex_setprioceiling(pthread_mutex_t *pm, int ceiling, int *old) {
  Mutex *m = M(pm);
  if (m->kind & kPshared) return REAL(pthread_mutex_setprioceiling)(pm, ceiling, old);
  if (!(m->kind & kPrioProtect) || ceiling < sched_get_priority_min(SCHED_FIFO) ||
      ceiling > sched_get_priority_max(SCHED_FIFO))
    return EINVAL;
  // POSIX: the mutex is locked (unless the caller holds it) to change it.
  bool mine = std::atomic_ref<void *>(m->owner).load(std::memory_order_relaxed) == self_id();
  if (!mine) {
    if (int err = pthread_mutex_lock(pm); err != 0) return err;
  }
  *old = static_cast<int>(m->ceiling);
  m->ceiling = static_cast<unsigned>(ceiling);
  if (!mine) pthread_mutex_unlock(pm);
  return 0;
}

// glibc's pthread and semaphore synchronization objects, reimplemented
// inside glibc's own object sizes on futex words.
//
// Why futexes and not parlib's uthread_mutex_t: the program allocated the
// object with glibc's size (40 bytes for a mutex), often statically
// initialised to zeros, and may free it without a destroy call (std::mutex
// never calls pthread_mutex_destroy), so the state must live inside those
// bytes with no side allocation. parlib's futex() blocks a uthread on a
// hashed wait queue keyed by address, which needs nothing per object. A
// caller that is not a uthread (a vcore task, the runtime's service
// threads, a thread the shim did not create) waits in the kernel instead;
// futex_wake wakes both kinds.
//
// Objects made process-shared (pthread_mutexattr_setpshared, sem_open,
// sem_init(.., 1, ..)) are handed to glibc unchanged: parlib's futex is
// process-private, and the other process may be a native one. A
// upthread's wait on one is a foreign call (pshared.h).
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include <upthread/upthread.h>

#include "common/clock.h"
#include "common/futex.h"
#include "mutex.h"
#include "pshared.h"
#include "shim.h"
#include "upthread/upthread_internal.h"

namespace parlib::detail::preload {

std::atomic<bool> g_native_only{false};

namespace {

// Kernel-task waiters currently in futex_wait; a waker pays for the
// FUTEX_WAKE system call only when there are some. seq_cst with the
// waiter's increment and the waker's store to the word (Dekker): either
// the waker sees the count, or the kernel's compare sees the new value.
std::atomic<int> g_native_waiters{0};

// Relative time left until abstime on clock; false once it has passed.
// The difference is taken modulo 2^64 and read as signed, so an abstime
// with a negative tv_sec is simply in the past.
bool time_left(const timespec *abstime, clockid_t clock, timespec *rel) {
  using parlib::detail::timespec_to_ns;
  int64_t left = static_cast<int64_t>(timespec_to_ns(*abstime) - parlib::detail::clock_ns(clock));
  if (left <= 0) return false;
  *rel = parlib::detail::ns_to_timespec(static_cast<uint64_t>(left));
  return true;
}

int kernel_wait(int *word, int val, const timespec *rel) {
  g_native_waiters.fetch_add(1, std::memory_order_seq_cst);
  parlib::detail::futex_wait(word, val, rel);
  g_native_waiters.fetch_sub(1, std::memory_order_seq_cst);
  return 0;
}

}  // namespace

namespace {

int wait_word(int *word, int val, const timespec *abstime, clockid_t clock, bool cancellable) {
  int saved_errno = errno;
  timespec rel;
  int result = 0;
  if (abstime != nullptr && !time_left(abstime, clock, &rel)) {
    result = ETIMEDOUT;
  } else if (on_uthread()) {
    // A plain wait may run inside a cancellable wait's preparation (the
    // parlib futex starting its timer service calls pthread_once): it is
    // not the block a canceller waits for (upthread_internal.h).
    struct upthread *me = upthread_self();
    uint32_t nested = cancellable ? 0 : upthread_impl::cancel_wait_suspend(me);
    int r = ::futex(word, FUTEX_WAIT, val, abstime != nullptr ? &rel : nullptr, nullptr, 0);
    upthread_impl::cancel_wait_resume(me, nested);
    if (r != 0) {
      if (errno == ETIMEDOUT) result = ETIMEDOUT;
      // EPERM: this uthread may not block now (notifications off); wait
      // as a kernel task would rather than fail the program's call.
      if (errno == EPERM) kernel_wait(word, val, abstime != nullptr ? &rel : nullptr);
    }
  } else {
    kernel_wait(word, val, abstime != nullptr ? &rel : nullptr);
  }
  errno = saved_errno;
  return result;
}

// upthread_cancel's kick for a thread in futex_wait_cancellable: wakes
// every waiter on the word (the others see a spurious wakeup). The word's
// memory is not touched (parlib's futex and the kernel only compare the
// address), so a kick after the object is gone is harmless.
void kick_futex(void *word) { futex_wake(static_cast<int *>(word), INT_MAX); }

}  // namespace

int futex_wait(int *word, int val, const timespec *abstime, clockid_t clock) {
  return wait_word(word, val, abstime, clock, false);
}

int futex_wait_cancellable(int *word, int val, const timespec *abstime, clockid_t clock) {
  struct upthread *me = on_uthread() ? upthread_self() : nullptr;
  if (me == nullptr) return wait_word(word, val, abstime, clock, false);
  if (!upthread_impl::cancel_wait_begin(me, kick_futex, word)) return ECANCELED;
  int r = upthread_impl::signal_due(me) ? 0 : wait_word(word, val, abstime, clock, true);
  upthread_impl::cancel_wait_end(me);
  if (upthread_impl::cancel_due(me)) return ECANCELED;
  return upthread_impl::signal_due(me) ? run_signals() : r;
}

void futex_wake(int *word, int n) {
  int saved_errno = errno;
  // The caller's store to the word (a release store in pthread_once) must
  // be ordered before the load of g_native_waiters below (the Dekker pair
  // with kernel_wait's increment and the kernel's compare); parlib's futex
  // call in between orders them on x86 only by accident of its locks.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!g_native_only.load(std::memory_order_relaxed))
    ::futex(word, FUTEX_WAKE, n, nullptr, nullptr, 0);
  if (g_native_only.load(std::memory_order_relaxed) ||
      g_native_waiters.load(std::memory_order_seq_cst) > 0)
    parlib::detail::futex_wake(word, n);
  errno = saved_errno;
}

void relax_yield() {
  if (on_uthread())
    upthread_yield();
  else
    REAL(sched_yield)();
}

namespace {

template <class T>
std::atomic_ref<T> at(T &x) {
  return std::atomic_ref<T>(x);
}

// ------------------------------------------------------------ mutexes

constexpr int kSpinTries = 100;  // before blocking: the holder may be on another vcore

bool pshared(const Mutex *m) { return (m->kind & kPshared) != 0; }
int type_of(const Mutex *m) {
  int t = m->kind & kTypeMask;
  return t == PTHREAD_MUTEX_ADAPTIVE_NP ? PTHREAD_MUTEX_NORMAL : t;
}

// Takes the word of a 0/1/2 lock (Drepper's "mutex 3"). as_contended: the
// caller was woken from a condition wait, so others may sleep on it too.
int lock_word(int *word, const timespec *abstime, clockid_t clock, bool as_contended) {
  int c = 0;
  if (!as_contended) {
    if (at(*word).compare_exchange_strong(c, 1, std::memory_order_acquire)) return 0;
    for (int i = 0; i < kSpinTries; ++i) {
      __builtin_ia32_pause();
      c = 0;
      if (at(*word).load(std::memory_order_relaxed) == 0 &&
          at(*word).compare_exchange_strong(c, 1, std::memory_order_acquire))
        return 0;
    }
  }
  c = at(*word).exchange(2, std::memory_order_acquire);
  while (c != 0) {
    if (futex_wait(word, 2, abstime, clock) == ETIMEDOUT) {
      // Last try: the deadline passing does not forbid a free lock.
      c = 0;
      if (at(*word).compare_exchange_strong(c, 2, std::memory_order_acquire)) return 0;
      return ETIMEDOUT;
    }
    c = at(*word).exchange(2, std::memory_order_acquire);
  }
  return 0;
}

void unlock_word(int *word) {
  if (at(*word).exchange(0, std::memory_order_release) == 2) futex_wake(word, 1);
}

// The caller has taken robust mutex m: EOWNERDEAD and ENOTRECOVERABLE
// (mutex_kinds.cpp); a not recoverable one is released again at once.
int robust_taken(Mutex *m) {
  int err = robust_acquired(m);
  if (err == ENOTRECOVERABLE) {
    at(m->owner).store(nullptr, std::memory_order_relaxed);
    unlock_word(&m->lock);
  }
  return err;
}

int mutex_lock(pthread_mutex_t *pm, const timespec *abstime, clockid_t clock, bool as_contended) {
  Mutex *m = M(pm);
  int type = type_of(m);
  void *me = self_id();
  if (type != PTHREAD_MUTEX_NORMAL && at(m->owner).load(std::memory_order_relaxed) == me) {
    if (type == PTHREAD_MUTEX_ERRORCHECK) return EDEADLK;
    if (m->count == UINT_MAX) return EAGAIN;
    ++m->count;
    return 0;
  }
  if (abstime != nullptr && (abstime->tv_nsec < 0 || abstime->tv_nsec >= 1000000000)) {
    int c = 0;
    if (at(m->lock).compare_exchange_strong(c, 1, std::memory_order_acquire)) goto got;
    return EINVAL;
  }
  if (int err = lock_word(&m->lock, abstime, clock, as_contended); err != 0) return err;
got:
  at(m->owner).store(me, std::memory_order_relaxed);
  return (m->kind & kRobust) ? robust_taken(m) : 0;
}

int mutex_unlock(pthread_mutex_t *pm) {
  Mutex *m = M(pm);
  int type = type_of(m);
  // Robust and PI mutexes check the owner whatever their type, as glibc's.
  if (type != PTHREAD_MUTEX_NORMAL || (m->kind & (kRobust | kPrioInherit))) {
    if (at(m->owner).load(std::memory_order_relaxed) != self_id()) return EPERM;
    if (m->count > 0) {
      --m->count;
      return 0;
    }
  }
  if (m->kind & kRobust) robust_releasing(m);
  at(m->owner).store(nullptr, std::memory_order_relaxed);
  unlock_word(&m->lock);
  return 0;
}

// ------------------------------------------------ condition variables

// Overlays pthread_cond_t (48 bytes). flags sits where glibc keeps its
// __wrefs, with glibc's bits: 1 process-shared, 2 CLOCK_MONOTONIC, so that
// a zeroed (PTHREAD_COND_INITIALIZER) object is a private realtime condvar
// and a shared one made by glibc's init is recognised.
struct Cond {
  int seq;           // futex word: bumped by every signal and broadcast
  unsigned waiters;  // threads between taking seq and leaving the wait
  unsigned pad[7];
  unsigned flags;  // offset 36
  unsigned pad2[2];
};
static_assert(sizeof(Cond) == sizeof(pthread_cond_t));
static_assert(offsetof(Cond, flags) == 36, "glibc's __wrefs");
constexpr unsigned kCondShared = 1, kCondMonotonic = 2;

Cond *C(pthread_cond_t *c) { return reinterpret_cast<Cond *>(c); }

int cond_wait(pthread_cond_t *pc, pthread_mutex_t *pm, const timespec *abstime, clockid_t clock) {
  Cond *c = C(pc);
  Mutex *m = M(pm);
  if (abstime != nullptr && (abstime->tv_nsec < 0 || abstime->tv_nsec >= 1000000000)) return EINVAL;
  testcancel();  // with the mutex held, as after a wait
  int seq = at(c->seq).load(std::memory_order_seq_cst);
  at(c->waiters).fetch_add(1, std::memory_order_seq_cst);
  // Release every level of a recursive mutex, and restore them after.
  unsigned depth = 0;
  if (type_of(m) != PTHREAD_MUTEX_NORMAL) {
    if (at(m->owner).load(std::memory_order_relaxed) != self_id()) {
      at(c->waiters).fetch_sub(1, std::memory_order_seq_cst);
      return EPERM;
    }
    depth = m->count;
    m->count = 0;
  }
  mutex_unlock(pm);
  int err = futex_wait_cancellable(&c->seq, seq, abstime, clock);
  if (err == EINTR || err == ERESTART) err = 0;  // a spurious wakeup, as POSIX allows
  at(c->waiters).fetch_sub(1, std::memory_order_seq_cst);
  // A robust mutex's owner may have died meanwhile: EOWNERDEAD, as glibc.
  int relock = mutex_lock(pm, nullptr, CLOCK_REALTIME, true);
  if (relock == ENOTRECOVERABLE) return relock;
  m->count = depth;
  if (relock != 0 && err != ECANCELED) err = relock;
  if (err == ECANCELED) {
    // POSIX: a cancelled waiter consumes no signal meant for others; pass
    // on the one that may have woken it. Then act, with the mutex held
    // (the cleanup handlers expect it).
    if (at(c->waiters).load(std::memory_order_seq_cst) != 0) futex_wake(&c->seq, 1);
    testcancel();
  }
  return err == ECANCELED ? 0 : err;
}

void cond_wake(pthread_cond_t *pc, int n) {
  Cond *c = C(pc);
  at(c->seq).fetch_add(1, std::memory_order_seq_cst);
  if (at(c->waiters).load(std::memory_order_seq_cst) != 0) futex_wake(&c->seq, n);
}

clockid_t cond_clock(pthread_cond_t *pc) {
  return (C(pc)->flags & kCondMonotonic) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}
bool cond_shared(pthread_cond_t *pc) { return (C(pc)->flags & kCondShared) != 0; }

// ------------------------------------------------- reader-writer locks

// Overlays pthread_rwlock_t (56 bytes). shared and flags are where glibc
// keeps __shared and __flags, which its static initialisers and
// pthread_rwlockattr_t set; flags 2 (PTHREAD_RWLOCK_PREFER_WRITER_
// NONRECURSIVE_NP) makes readers wait for waiting writers, otherwise
// readers are preferred, as glibc's default.
struct Rwlock {
  int lock;  // guards the counts (a 0/1/2 lock word)
  unsigned readers;
  unsigned writer;  // 1 while write-held
  unsigned writers_waiting;
  int rseq;  // futex word of waiting readers
  int wseq;  // futex word of waiting writers
  int unused_cur_writer;
  int shared;  // glibc's __shared (offset 28)
  unsigned readers_waiting;
  unsigned pad;
  void *writer_id;  // self_id() of the writer (offset 40)
  unsigned flags;   // glibc's __flags (offset 48)
  unsigned pad2;
};
static_assert(sizeof(Rwlock) == sizeof(pthread_rwlock_t));
static_assert(offsetof(Rwlock, shared) == 28 && offsetof(Rwlock, flags) == 48);

Rwlock *RW(pthread_rwlock_t *rw) { return reinterpret_cast<Rwlock *>(rw); }

int rw_rdlock(pthread_rwlock_t *prw, const timespec *abstime, clockid_t clock, bool try_only) {
  Rwlock *rw = RW(prw);
  if (abstime != nullptr && (abstime->tv_nsec < 0 || abstime->tv_nsec >= 1000000000)) return EINVAL;
  void *me = self_id();
  lock_word(&rw->lock, nullptr, CLOCK_REALTIME, false);
  if (rw->writer && rw->writer_id == me) {
    unlock_word(&rw->lock);
    return EDEADLK;
  }
  bool prefer_writer = rw->flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
  while (rw->writer || (prefer_writer && rw->writers_waiting > 0)) {
    if (try_only) {
      unlock_word(&rw->lock);
      return EBUSY;
    }
    int seq = at(rw->rseq).load(std::memory_order_relaxed);
    ++rw->readers_waiting;
    unlock_word(&rw->lock);
    int err = futex_wait(&rw->rseq, seq, abstime, clock);
    lock_word(&rw->lock, nullptr, CLOCK_REALTIME, false);
    --rw->readers_waiting;
    if (err == ETIMEDOUT && (rw->writer || (prefer_writer && rw->writers_waiting > 0))) {
      unlock_word(&rw->lock);
      return ETIMEDOUT;
    }
  }
  if (rw->readers == UINT_MAX) {
    unlock_word(&rw->lock);
    return EAGAIN;
  }
  ++rw->readers;
  unlock_word(&rw->lock);
  return 0;
}

int rw_wrlock(pthread_rwlock_t *prw, const timespec *abstime, clockid_t clock, bool try_only) {
  Rwlock *rw = RW(prw);
  if (abstime != nullptr && (abstime->tv_nsec < 0 || abstime->tv_nsec >= 1000000000)) return EINVAL;
  void *me = self_id();
  lock_word(&rw->lock, nullptr, CLOCK_REALTIME, false);
  if (rw->writer && rw->writer_id == me) {
    unlock_word(&rw->lock);
    return EDEADLK;
  }
  while (rw->writer || rw->readers > 0) {
    if (try_only) {
      unlock_word(&rw->lock);
      return EBUSY;
    }
    int seq = at(rw->wseq).load(std::memory_order_relaxed);
    ++rw->writers_waiting;
    unlock_word(&rw->lock);
    int err = futex_wait(&rw->wseq, seq, abstime, clock);
    lock_word(&rw->lock, nullptr, CLOCK_REALTIME, false);
    --rw->writers_waiting;
    if (err == ETIMEDOUT && (rw->writer || rw->readers > 0)) {
      // Readers held back for this writer may go now.
      bool wake_readers = rw->readers_waiting > 0 && !rw->writer;
      if (wake_readers) at(rw->rseq).fetch_add(1, std::memory_order_relaxed);
      unlock_word(&rw->lock);
      if (wake_readers) futex_wake(&rw->rseq, INT_MAX);
      return ETIMEDOUT;
    }
  }
  rw->writer = 1;
  rw->writer_id = me;
  unlock_word(&rw->lock);
  return 0;
}

int rw_unlock(pthread_rwlock_t *prw) {
  Rwlock *rw = RW(prw);
  lock_word(&rw->lock, nullptr, CLOCK_REALTIME, false);
  if (rw->writer && rw->writer_id == self_id()) {
    rw->writer = 0;
    rw->writer_id = nullptr;
  } else if (rw->readers > 0) {
    --rw->readers;
  } else {
    unlock_word(&rw->lock);
    return EPERM;
  }
  // The seq bumps happen under the lock, so a waiter that read seq under
  // the lock either sees the bump or is woken.
  bool wake_writer = rw->readers == 0 && rw->writers_waiting > 0;
  bool wake_readers = !rw->writer && rw->readers_waiting > 0;
  if (wake_writer) at(rw->wseq).fetch_add(1, std::memory_order_relaxed);
  if (wake_readers) at(rw->rseq).fetch_add(1, std::memory_order_relaxed);
  unlock_word(&rw->lock);
  if (wake_writer) futex_wake(&rw->wseq, 1);
  if (wake_readers) futex_wake(&rw->rseq, INT_MAX);
  return 0;
}

// ------------------------------------------------------------ barriers

// Overlays pthread_barrier_t (32 bytes). mark is where glibc keeps its
// 'shared' field (128 private, 0 shared); ours holds kOurBarrier instead,
// so a barrier glibc initialised (a process-shared one) goes to glibc.
struct Barrier {
  int lock;
  unsigned count;
  unsigned arrived;
  int mark;
  int phase;  // futex word
  int pad[3];
};
static_assert(sizeof(Barrier) == sizeof(pthread_barrier_t));
static_assert(offsetof(Barrier, mark) == 12, "glibc's shared");
constexpr int kOurBarrier = 0x55424152;
Barrier *B(pthread_barrier_t *b) { return reinterpret_cast<Barrier *>(b); }
bool barrier_ours(pthread_barrier_t *b) { return B(b)->mark == kOurBarrier; }

// ---------------------------------------------------------- semaphores

// Overlays sem_t (32 bytes) with glibc's own layout (value in the low word,
// waiter count in the next, then 'private'), so a semaphore from sem_open
// or a shared sem_init is told apart and left to glibc: glibc writes 0
// there for a private semaphore and FUTEX_PRIVATE_FLAG for a shared one
// (its LLL_SHARED: the flag is XORed into the futex operation). Ours are
// private and say 0 too, as does a zeroed sem_t.
struct Sem {
  int value;
  unsigned waiters;
  int priv;
  int pad[5];
};
static_assert(sizeof(Sem) == sizeof(sem_t));
Sem *S(sem_t *s) { return reinterpret_cast<Sem *>(s); }
constexpr int kSemShared = FUTEX_PRIVATE_FLAG;
bool sem_is_ours(sem_t *s) { return S(s)->priv != kSemShared; }

int sem_fail(int err) {
  errno = err;
  return -1;
}

int sem_wait_until(sem_t *ps, const timespec *abstime, clockid_t clock) {
  Sem *s = S(ps);
  testcancel();  // a cancellation point even when it would not wait
  for (;;) {
    int v = at(s->value).load(std::memory_order_relaxed);
    while (v > 0) {
      if (at(s->value).compare_exchange_weak(v, v - 1, std::memory_order_acquire)) return 0;
    }
    if (abstime != nullptr && (abstime->tv_nsec < 0 || abstime->tv_nsec >= 1000000000))
      return sem_fail(EINVAL);
    at(s->waiters).fetch_add(1, std::memory_order_seq_cst);
    int err = futex_wait_cancellable(&s->value, 0, abstime, clock);
    at(s->waiters).fetch_sub(1, std::memory_order_seq_cst);
    if (err == ECANCELED) {
      // Act without taking a unit; pass on a post that may have woken us.
      if (at(s->value).load(std::memory_order_relaxed) > 0 &&
          at(s->waiters).load(std::memory_order_seq_cst) != 0)
        futex_wake(&s->value, 1);
      testcancel();
    }
    if (err == EINTR) return sem_fail(EINTR);  // a handler without SA_RESTART ran
    if (err == ETIMEDOUT) {
      v = at(s->value).load(std::memory_order_relaxed);
      while (v > 0)
        if (at(s->value).compare_exchange_weak(v, v - 1, std::memory_order_acquire)) return 0;
      return sem_fail(ETIMEDOUT);
    }
  }
}

// ------------------------------------------- process-shared objects

// The blocking calls on glibc's process-shared objects (pshared.h). A
// mutex that is free is taken without the foreign call's cost.
int shared_mutex_lock(pthread_mutex_t *m) {
  int err = REAL(pthread_mutex_trylock)(m);
  if (err != EBUSY) return err;
  return shared_wait([&] { return REAL(pthread_mutex_lock)(m); });
}

// A condition or semaphore wait, a cancellation point: glibc acts on its
// own cancellation state, which upthread_cancel does not set, so the
// shim's point comes first (a condition wait's with the mutex held, as
// after a wait). The wait itself is not ended by a cancellation.
template <typename Call>
int shared_wait_cancellable(Call call) {
  testcancel();
  return shared_wait(call);
}

}  // namespace
}  // namespace parlib::detail::preload

using namespace parlib::detail::preload;

// ===================================================== exported ABI

SHIM_EXPORT int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr) {
  int type = PTHREAD_MUTEX_NORMAL, shared = PTHREAD_PROCESS_PRIVATE;
  if (attr != nullptr) {
    pthread_mutexattr_gettype(attr, &type);
    pthread_mutexattr_getpshared(attr, &shared);
    if (shared == PTHREAD_PROCESS_SHARED) return REAL(pthread_mutex_init)(m, attr);
  }
  std::memset(static_cast<void *>(m), 0, sizeof *m);
  int kind = type;
  unsigned ceiling = 0;
  mutex_attr_kind(attr, &kind, &ceiling);
  M(m)->kind = kind;
  M(m)->ceiling = ceiling;
  return 0;
}
SHIM_EXPORT int pthread_mutex_destroy(pthread_mutex_t *m) {
  if (pshared(M(m))) return REAL(pthread_mutex_destroy)(m);
  return at(M(m)->lock).load(std::memory_order_relaxed) != 0 ? EBUSY : 0;
}
SHIM_EXPORT int pthread_mutex_lock(pthread_mutex_t *m) {
  if (pshared(M(m))) return shared_mutex_lock(m);
  return mutex_lock(m, nullptr, CLOCK_REALTIME, false);
}
SHIM_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abstime) {
  if (pshared(M(m))) return shared_wait([&] { return REAL(pthread_mutex_timedlock)(m, abstime); });
  return mutex_lock(m, abstime, CLOCK_REALTIME, false);
}
SHIM_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock,
                                        const struct timespec *abstime) {
  if (pshared(M(m)))
    return shared_wait([&] { return REAL(pthread_mutex_clocklock)(m, clock, abstime); });
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  return mutex_lock(m, abstime, clock, false);
}
SHIM_EXPORT int pthread_mutex_trylock(pthread_mutex_t *pm) {
  Mutex *m = M(pm);
  if (pshared(m)) return REAL(pthread_mutex_trylock)(pm);
  void *me = self_id();
  if (type_of(m) == PTHREAD_MUTEX_RECURSIVE && at(m->owner).load(std::memory_order_relaxed) == me) {
    if (m->count == UINT_MAX) return EAGAIN;
    ++m->count;
    return 0;
  }
  int c = 0;
  if (!at(m->lock).compare_exchange_strong(c, 1, std::memory_order_acquire)) return EBUSY;
  at(m->owner).store(me, std::memory_order_relaxed);
  return (m->kind & kRobust) ? robust_taken(m) : 0;
}
SHIM_EXPORT int pthread_mutex_unlock(pthread_mutex_t *m) {
  if (pshared(M(m))) return REAL(pthread_mutex_unlock)(m);
  return mutex_unlock(m);
}

SHIM_EXPORT int pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *attr) {
  int shared = PTHREAD_PROCESS_PRIVATE;
  clockid_t clock = CLOCK_REALTIME;
  if (attr != nullptr) {
    pthread_condattr_getpshared(attr, &shared);
    pthread_condattr_getclock(attr, &clock);
    if (shared == PTHREAD_PROCESS_SHARED) return REAL(pthread_cond_init)(c, attr);
  }
  std::memset(static_cast<void *>(c), 0, sizeof *c);
  if (clock == CLOCK_MONOTONIC) C(c)->flags = kCondMonotonic;
  return 0;
}
SHIM_EXPORT int pthread_cond_destroy(pthread_cond_t *c) {
  if (cond_shared(c)) return REAL(pthread_cond_destroy)(c);
  return 0;
}
SHIM_EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) {
  if (cond_shared(c)) return shared_wait_cancellable([&] { return REAL(pthread_cond_wait)(c, m); });
  return cond_wait(c, m, nullptr, CLOCK_REALTIME);
}
SHIM_EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                       const struct timespec *abstime) {
  if (cond_shared(c))
    return shared_wait_cancellable([&] { return REAL(pthread_cond_timedwait)(c, m, abstime); });
  return cond_wait(c, m, abstime, cond_clock(c));
}
SHIM_EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clock,
                                       const struct timespec *abstime) {
  if (cond_shared(c)) {
    return shared_wait_cancellable(
        [&] { return REAL(pthread_cond_clockwait)(c, m, clock, abstime); });
  }
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  return cond_wait(c, m, abstime, clock);
}
SHIM_EXPORT int pthread_cond_signal(pthread_cond_t *c) {
  if (cond_shared(c)) return REAL(pthread_cond_signal)(c);
  cond_wake(c, 1);
  return 0;
}
SHIM_EXPORT int pthread_cond_broadcast(pthread_cond_t *c) {
  if (cond_shared(c)) return REAL(pthread_cond_broadcast)(c);
  cond_wake(c, INT_MAX);
  return 0;
}

SHIM_EXPORT int pthread_rwlock_init(pthread_rwlock_t *rw, const pthread_rwlockattr_t *attr) {
  int shared = PTHREAD_PROCESS_PRIVATE, kind = PTHREAD_RWLOCK_DEFAULT_NP;
  if (attr != nullptr) {
    pthread_rwlockattr_getpshared(attr, &shared);
    pthread_rwlockattr_getkind_np(attr, &kind);
    if (shared == PTHREAD_PROCESS_SHARED) return REAL(pthread_rwlock_init)(rw, attr);
  }
  std::memset(static_cast<void *>(rw), 0, sizeof *rw);
  RW(rw)->flags = static_cast<unsigned>(kind);
  return 0;
}
#define RW_SHARED_CALL(name, ...) \
  if (RW(rw)->shared != 0) return REAL(name)(__VA_ARGS__)
#define RW_SHARED_WAIT(name, ...) \
  if (RW(rw)->shared != 0) return shared_wait([&] { return REAL(name)(__VA_ARGS__); })
SHIM_EXPORT int pthread_rwlock_destroy(pthread_rwlock_t *rw) {
  RW_SHARED_CALL(pthread_rwlock_destroy, rw);
  return 0;
}
SHIM_EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *rw) {
  RW_SHARED_WAIT(pthread_rwlock_rdlock, rw);
  return rw_rdlock(rw, nullptr, CLOCK_REALTIME, false);
}
SHIM_EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t *rw) {
  RW_SHARED_CALL(pthread_rwlock_tryrdlock, rw);
  return rw_rdlock(rw, nullptr, CLOCK_REALTIME, true);
}
SHIM_EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *rw, const struct timespec *abstime) {
  RW_SHARED_WAIT(pthread_rwlock_timedrdlock, rw, abstime);
  return rw_rdlock(rw, abstime, CLOCK_REALTIME, false);
}
SHIM_EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t *rw, clockid_t clock,
                                           const struct timespec *abstime) {
  RW_SHARED_WAIT(pthread_rwlock_clockrdlock, rw, clock, abstime);
  return rw_rdlock(rw, abstime, clock, false);
}
SHIM_EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *rw) {
  RW_SHARED_WAIT(pthread_rwlock_wrlock, rw);
  return rw_wrlock(rw, nullptr, CLOCK_REALTIME, false);
}
SHIM_EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t *rw) {
  RW_SHARED_CALL(pthread_rwlock_trywrlock, rw);
  return rw_wrlock(rw, nullptr, CLOCK_REALTIME, true);
}
SHIM_EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *rw, const struct timespec *abstime) {
  RW_SHARED_WAIT(pthread_rwlock_timedwrlock, rw, abstime);
  return rw_wrlock(rw, abstime, CLOCK_REALTIME, false);
}
SHIM_EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t *rw, clockid_t clock,
                                           const struct timespec *abstime) {
  RW_SHARED_WAIT(pthread_rwlock_clockwrlock, rw, clock, abstime);
  return rw_wrlock(rw, abstime, clock, false);
}
SHIM_EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *rw) {
  RW_SHARED_CALL(pthread_rwlock_unlock, rw);
  return rw_unlock(rw);
}

SHIM_EXPORT int pthread_barrier_init(pthread_barrier_t *b, const pthread_barrierattr_t *attr,
                                     unsigned count) {
  int shared = PTHREAD_PROCESS_PRIVATE;
  if (attr != nullptr) pthread_barrierattr_getpshared(attr, &shared);
  if (shared == PTHREAD_PROCESS_SHARED) return REAL(pthread_barrier_init)(b, attr, count);
  if (count == 0 || count > INT_MAX) return EINVAL;
  std::memset(static_cast<void *>(b), 0, sizeof *b);
  B(b)->count = count;
  B(b)->mark = kOurBarrier;
  return 0;
}
SHIM_EXPORT int pthread_barrier_destroy(pthread_barrier_t *pb) {
  if (!barrier_ours(pb)) return REAL(pthread_barrier_destroy)(pb);
  Barrier *b = B(pb);
  lock_word(&b->lock, nullptr, CLOCK_REALTIME, false);
  bool busy = b->arrived != 0;
  unlock_word(&b->lock);
  return busy ? EBUSY : 0;
}
SHIM_EXPORT int pthread_barrier_wait(pthread_barrier_t *pb) {
  if (!barrier_ours(pb)) return shared_wait([&] { return REAL(pthread_barrier_wait)(pb); });
  Barrier *b = B(pb);
  lock_word(&b->lock, nullptr, CLOCK_REALTIME, false);
  int phase = b->phase;
  if (++b->arrived == b->count) {
    b->arrived = 0;
    at(b->phase).fetch_add(1, std::memory_order_release);
    unlock_word(&b->lock);
    futex_wake(&b->phase, INT_MAX);
    return PTHREAD_BARRIER_SERIAL_THREAD;
  }
  unlock_word(&b->lock);
  while (at(b->phase).load(std::memory_order_acquire) == phase)
    futex_wait(&b->phase, phase, nullptr, 0);
  return 0;
}

// Spinlocks spin briefly, then yield: a holder that was preempted runs
// again only if the spinner gives its vcore up.
SHIM_EXPORT int pthread_spin_init(pthread_spinlock_t *l, int) {
  *l = 0;
  return 0;
}
SHIM_EXPORT int pthread_spin_destroy(pthread_spinlock_t *) { return 0; }
SHIM_EXPORT int pthread_spin_trylock(pthread_spinlock_t *l) {
  int c = 0;
  return std::atomic_ref<int>(*const_cast<int *>(l))
                 .compare_exchange_strong(c, 1, std::memory_order_acquire)
             ? 0
             : EBUSY;
}
SHIM_EXPORT int pthread_spin_lock(pthread_spinlock_t *l) {
  std::atomic_ref<int> word(*const_cast<int *>(l));
  for (int spins = 0;; ++spins) {
    int c = 0;
    if (word.load(std::memory_order_relaxed) == 0 &&
        word.compare_exchange_weak(c, 1, std::memory_order_acquire))
      return 0;
    if (spins >= 1000) {
      relax_yield();
      spins = 0;
    } else {
      __builtin_ia32_pause();
    }
  }
}
SHIM_EXPORT int pthread_spin_unlock(pthread_spinlock_t *l) {
  std::atomic_ref<int>(*const_cast<int *>(l)).store(0, std::memory_order_release);
  return 0;
}

// pthread_once: 0 not run, 1 running, 2 done (glibc's DONE bit is also 2).
namespace {
struct OnceReset {
  int *state;
  bool armed = true;
  // If init throws (std::call_once with a throwing callable), the next
  // caller must run it again, as glibc's cancellation cleanup arranges.
  ~OnceReset() {
    if (armed) {
      at(*state).store(0, std::memory_order_release);
      futex_wake(state, INT_MAX);
    }
  }
};
}  // namespace
SHIM_EXPORT int pthread_once(pthread_once_t *once, void (*init)(void)) {
  int *state = once;
  for (;;) {
    int s = at(*state).load(std::memory_order_acquire);
    if (s == 2) return 0;
    if (s == 0) {
      if (!at(*state).compare_exchange_strong(s, 1, std::memory_order_acquire)) continue;
      OnceReset reset{state};
      init();
      reset.armed = false;
      at(*state).store(2, std::memory_order_release);
      futex_wake(state, INT_MAX);
      return 0;
    }
    futex_wait(state, 1, nullptr, 0);
  }
}

SHIM_EXPORT int sem_init(sem_t *s, int pshared, unsigned value) {
  if (pshared != 0) return REAL(sem_init)(s, pshared, value);
  if (value > SEM_VALUE_MAX) return sem_fail(EINVAL);
  std::memset(static_cast<void *>(s), 0, sizeof *s);
  S(s)->value = static_cast<int>(value);
  return 0;
}
SHIM_EXPORT int sem_destroy(sem_t *s) {
  if (!sem_is_ours(s)) return REAL(sem_destroy)(s);
  return 0;
}
SHIM_EXPORT int sem_wait(sem_t *s) {
  if (!sem_is_ours(s)) {
    testcancel();  // a cancellation point even when it does not wait
    int saved_errno = errno;
    if (REAL(sem_trywait)(s) == 0) return 0;
    errno = saved_errno;
    return shared_wait([&] { return REAL(sem_wait)(s); });
  }
  return sem_wait_until(s, nullptr, CLOCK_REALTIME);
}
SHIM_EXPORT int sem_timedwait(sem_t *s, const struct timespec *abstime) {
  if (!sem_is_ours(s))
    return shared_wait_cancellable([&] { return REAL(sem_timedwait)(s, abstime); });
  return sem_wait_until(s, abstime, CLOCK_REALTIME);
}
SHIM_EXPORT int sem_clockwait(sem_t *s, clockid_t clock, const struct timespec *abstime) {
  if (!sem_is_ours(s))
    return shared_wait_cancellable([&] { return REAL(sem_clockwait)(s, clock, abstime); });
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return sem_fail(EINVAL);
  return sem_wait_until(s, abstime, clock);
}
SHIM_EXPORT int sem_trywait(sem_t *ps) {
  if (!sem_is_ours(ps)) return REAL(sem_trywait)(ps);
  Sem *s = S(ps);
  int v = at(s->value).load(std::memory_order_relaxed);
  while (v > 0)
    if (at(s->value).compare_exchange_weak(v, v - 1, std::memory_order_acquire)) return 0;
  return sem_fail(EAGAIN);
}
SHIM_EXPORT int sem_post(sem_t *ps) {
  if (!sem_is_ours(ps)) return REAL(sem_post)(ps);
  Sem *s = S(ps);
  int v = at(s->value).load(std::memory_order_relaxed);
  do {
    if (v == SEM_VALUE_MAX) return sem_fail(EOVERFLOW);
  } while (!at(s->value).compare_exchange_weak(v, v + 1, std::memory_order_seq_cst));
  if (at(s->waiters).load(std::memory_order_seq_cst) != 0) futex_wake(&s->value, 1);
  return 0;
}
SHIM_EXPORT int sem_getvalue(sem_t *ps, int *value) {
  if (!sem_is_ours(ps)) return REAL(sem_getvalue)(ps, value);
  *value = at(S(ps)->value).load(std::memory_order_relaxed);
  return 0;
}

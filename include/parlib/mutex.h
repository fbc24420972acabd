/* parlib/mutex.h: blocking synchronization for uthreads: mutexes,
 * condition variables, reader-writer locks, barriers, semaphores and a
 * futex.
 *
 * These block the calling uthread, not its vcore: a waiter yields to vcore
 * context (uthread_yield), where the primitive puts it on its own wait
 * queue and tells the 2LS it blocked (uthread_has_blocked, with
 * UTH_EXT_BLK_MUTEX); a waker takes it off the queue and hands it back to
 * the 2LS (uthread_runnable). The check "must I wait?" and the enqueue
 * happen together under the primitive's spin_pdr lock, after the waiter's
 * state is saved, so a wakeup can never fall between them.
 *
 * Semantics: Mesa (a woken waiter re-checks; condition waits may wake
 * spuriously, as POSIX allows). Mutexes let a running uthread take a free
 * mutex ahead of waiters (barging), but hand it directly to a waiter that
 * has waited past a fairness bound (1 ms per waiter queued ahead of it,
 * plus scheduling delays; docs/design.md); reader-writer locks prefer writers
 * (a reader waits while a writer waits) and hand the lock directly to the
 * uthreads they wake; semaphores hand a post directly to a waiter.
 *
 * Return values: every uthread_* function returns 0 or a positive POSIX
 * error number, as the pthread functions do: EINVAL for a NULL or
 * destroyed object or a bad argument, EBUSY, EPERM, EDEADLK, ETIMEDOUT,
 * EAGAIN, EOVERFLOW as listed per function. futex() follows the Linux
 * system call: -1 with errno on failure.
 *
 * Contexts: all of these are meant for uthread context. Called where the
 * caller cannot block (vcore context, or a thread that is not a uthread,
 * e.g. before uthread_lib_init):
 *  - the non-blocking calls (trylock, unlock, signal, broadcast, post,
 *    getvalue, init, destroy, FUTEX_WAKE) work as usual;
 *  - uthread_mutex_lock and the rwlock locks spin until they get the lock
 *    in a thread that is not a uthread (nothing else to do there), and
 *    return EPERM in vcore context (spinning there could wait for a uthread
 *    that only this vcore would run);
 *  - the calls that must wait for another thread (cond waits, barrier
 *    wait, sem waits, FUTEX_WAIT) return EPERM (futex: -1, errno EPERM).
 *
 * Owner identity is the calling uthread (its struct uthread *); outside
 * uthreads, the calling kernel thread.
 *
 * Timed waits take an absolute CLOCK_REALTIME deadline (futex: a relative
 * timeout, as the system call). Deadlines are served by one internal
 * kernel thread, started by the first timed wait, that wakes expired
 * waiters; a waiter is woken either by its waker or by the timeout, never
 * both. A realtime clock step after the wait started does not move the
 * deadline. If that thread cannot be created, timed waits that would have
 * to wait return EAGAIN (futex: -1, errno EAGAIN) and say so once on
 * stderr. */
#ifndef PARLIB_MUTEX_H
#define PARLIB_MUTEX_H

#include <parlib/common.h>
#include <parlib/spinlock.h>

#include <time.h>

PARLIB_BEGIN_DECLS

struct uthread;
struct uth_sync_waiter; /* private: a blocked uthread's queue entry */

/* A FIFO of blocked uthreads (private to the library). */
struct uth_sync_queue {
	struct uth_sync_waiter *head_;
	struct uth_sync_waiter *tail_;
};

#define UTH_SYNC_QUEUE_INIT { 0, 0 }

/* ------------------------------------------------------------ mutexes */

#define UTHREAD_MUTEX_NORMAL 0
#define UTHREAD_MUTEX_RECURSIVE 1
#define UTHREAD_MUTEX_ERRORCHECK 2
#define UTHREAD_MUTEX_DEFAULT UTHREAD_MUTEX_NORMAL

typedef struct uthread_mutex {
	int state_;           /* lock word: 0 free; bits in src/sync/mutex_word.h */
	int type_;            /* UTHREAD_MUTEX_*, or -1 once destroyed */
	unsigned int count_;  /* recursion depth (held by owner_) */
	void *owner_;         /* the holder's identity, NULL when free */
	spin_pdr_lock_t qlock_;
	struct uth_sync_queue waiters_;
} uthread_mutex_t;

#define UTHREAD_MUTEX_INITIALIZER \
	{ 0, UTHREAD_MUTEX_NORMAL, 0, 0, SPINPDR_INITIALIZER, UTH_SYNC_QUEUE_INIT }
#define UTHREAD_RECURSIVE_MUTEX_INITIALIZER \
	{ 0, UTHREAD_MUTEX_RECURSIVE, 0, 0, SPINPDR_INITIALIZER, UTH_SYNC_QUEUE_INIT }
#define UTHREAD_ERRORCHECK_MUTEX_INITIALIZER \
	{ 0, UTHREAD_MUTEX_ERRORCHECK, 0, 0, SPINPDR_INITIALIZER, UTH_SYNC_QUEUE_INIT }

/* uthread_mutex_init: makes *m a free mutex of the given type. Any
 * context. Returns 0, or EINVAL (NULL m, unknown type). */
PARLIB_API int uthread_mutex_init(uthread_mutex_t *m, int type);

/* uthread_mutex_lock: takes m, blocking the uthread while another holds
 * it. Uthread context (see the top of this file for elsewhere). Returns 0;
 * EINVAL (NULL or destroyed m); EDEADLK (errorcheck mutex already held by
 * the caller); EAGAIN (recursive mutex at its maximum depth); EPERM (vcore
 * context). A normal mutex relocked by its holder deadlocks, as POSIX
 * says. */
PARLIB_API int uthread_mutex_lock(uthread_mutex_t *m);

/* uthread_mutex_timedlock: uthread_mutex_lock that gives up at
 * abs_realtime (CLOCK_REALTIME), for pthread_mutex_timedlock. As POSIX
 * says, the deadline is only looked at when the call has to wait. Uthread
 * context; a thread that is not a uthread spins until the deadline. Returns
 * as uthread_mutex_lock, plus ETIMEDOUT, and EINVAL for a NULL or bad
 * timespec (tv_nsec outside [0, 1e9)). */
PARLIB_API int uthread_mutex_timedlock(uthread_mutex_t *m, const struct timespec *abs_realtime);

/* uthread_mutex_trylock: takes m if that needs no wait. Any context.
 * Returns 0; EBUSY (held, by another or, for normal and errorcheck
 * mutexes, by the caller); EAGAIN (recursive depth at its maximum);
 * EINVAL. */
PARLIB_API int uthread_mutex_trylock(uthread_mutex_t *m);

/* uthread_mutex_unlock: releases m (one level of a recursive mutex) and
 * wakes one waiter. Any context. Returns 0; EPERM (m not held, or, for
 * recursive and errorcheck mutexes, held by another thread); EINVAL. */
PARLIB_API int uthread_mutex_unlock(uthread_mutex_t *m);

/* uthread_mutex_destroy: marks m unusable. Any context. Returns 0; EBUSY
 * (held or waited on; m stays usable); EINVAL. */
PARLIB_API int uthread_mutex_destroy(uthread_mutex_t *m);

/* -------------------------------------------------- condition variables */

typedef struct uthread_cond {
	int valid_;  /* 1, or 0 once destroyed */
	spin_pdr_lock_t qlock_;
	struct uth_sync_queue waiters_;
} uthread_cond_t;

#define UTHREAD_COND_INITIALIZER { 1, SPINPDR_INITIALIZER, UTH_SYNC_QUEUE_INIT }

/* uthread_cond_init: makes *c a condition variable with no waiters. Any
 * context. Returns 0, or EINVAL (NULL c). */
PARLIB_API int uthread_cond_init(uthread_cond_t *c);

/* uthread_cond_destroy: marks c unusable. Any context. Returns 0; EBUSY
 * (uthreads wait on it; c stays usable); EINVAL. */
PARLIB_API int uthread_cond_destroy(uthread_cond_t *c);

/* uthread_cond_wait: atomically releases m (all levels of a recursive
 * mutex) and blocks until signalled, then retakes m (restoring its depth)
 * before returning. May wake spuriously: wait in a loop over the
 * predicate. Uthread context. Returns 0; EPERM (m not held by the caller,
 * or not in uthread context); EINVAL. */
PARLIB_API int uthread_cond_wait(uthread_cond_t *c, uthread_mutex_t *m);

/* uthread_cond_timedwait: uthread_cond_wait that gives up at abs_realtime
 * (CLOCK_REALTIME). Returns 0; ETIMEDOUT (the deadline passed first; m is
 * held again, as on success); EINVAL (bad timespec: tv_nsec outside
 * [0, 1e9), or NULL); EPERM as uthread_cond_wait. */
PARLIB_API int uthread_cond_timedwait(uthread_cond_t *c, uthread_mutex_t *m,
                                      const struct timespec *abs_realtime);

/* uthread_cond_clockwait: uthread_cond_timedwait with the deadline abs on
 * clock_id, CLOCK_REALTIME or CLOCK_MONOTONIC (for condvars whose
 * attribute selects the clock, and pthread_cond_clockwait). Returns as
 * uthread_cond_timedwait; EINVAL also for another clock. */
PARLIB_API int uthread_cond_clockwait(uthread_cond_t *c, uthread_mutex_t *m, int clock_id,
                                      const struct timespec *abs);

/* uthread_cond_signal: wakes the longest waiter, if any. Any context.
 * Returns 0, or EINVAL. */
PARLIB_API int uthread_cond_signal(uthread_cond_t *c);

/* uthread_cond_broadcast: wakes every waiter. Any context. Returns 0, or
 * EINVAL. The first waiter is made runnable at once; the others wait on
 * the mutex instead, each woken by an unlock of it in turn (no thundering
 * herd). */
PARLIB_API int uthread_cond_broadcast(uthread_cond_t *c);

/* ------------------------------------------------- reader-writer locks */

typedef struct uthread_rwlock {
	int valid_;             /* 1, or 0 once destroyed */
	unsigned int readers_;  /* readers holding it */
	void *writer_;          /* the writer holding it, or NULL */
	spin_pdr_lock_t qlock_;
	struct uth_sync_queue readers_waiting_;
	struct uth_sync_queue writers_waiting_;
} uthread_rwlock_t;

#define UTHREAD_RWLOCK_INITIALIZER \
	{ 1, 0, 0, SPINPDR_INITIALIZER, UTH_SYNC_QUEUE_INIT, UTH_SYNC_QUEUE_INIT }

/* uthread_rwlock_init: makes *rw a free lock. Any context. Returns 0, or
 * EINVAL (NULL rw). */
PARLIB_API int uthread_rwlock_init(uthread_rwlock_t *rw);

/* uthread_rwlock_destroy: marks rw unusable. Any context. Returns 0; EBUSY
 * (held or waited on; rw stays usable); EINVAL. */
PARLIB_API int uthread_rwlock_destroy(uthread_rwlock_t *rw);

/* uthread_rwlock_rdlock: takes rw shared, blocking while a writer holds or
 * waits for it. Uthread context (see the top of this file for elsewhere).
 * Returns 0; EDEADLK (the caller holds it for writing); EAGAIN (too many
 * readers); EPERM (vcore context); EINVAL. A reader that takes it again
 * while a writer waits deadlocks (writer preference). */
PARLIB_API int uthread_rwlock_rdlock(uthread_rwlock_t *rw);

/* uthread_rwlock_tryrdlock: takes rw shared if that needs no wait. Any
 * context. Returns 0; EBUSY (a writer holds or waits for it); EAGAIN;
 * EINVAL. */
PARLIB_API int uthread_rwlock_tryrdlock(uthread_rwlock_t *rw);

/* uthread_rwlock_wrlock: takes rw exclusive, blocking while anyone holds
 * it. Uthread context (see the top of this file for elsewhere). Returns 0;
 * EDEADLK (the caller holds it for writing); EPERM (vcore context);
 * EINVAL. Taking it for writing while holding it for reading deadlocks
 * (readers are not tracked by identity). */
PARLIB_API int uthread_rwlock_wrlock(uthread_rwlock_t *rw);

/* uthread_rwlock_trywrlock: takes rw exclusive if it is free. Any context.
 * Returns 0; EBUSY; EINVAL. */
PARLIB_API int uthread_rwlock_trywrlock(uthread_rwlock_t *rw);

/* uthread_rwlock_unlock: releases the caller's hold (its write lock if it
 * is the writer, else one read hold) and hands the lock to waiters: a
 * waiting writer first, else every waiting reader. Any context. Returns 0;
 * EPERM (neither write-held by the caller nor read-held by anyone);
 * EINVAL. */
PARLIB_API int uthread_rwlock_unlock(uthread_rwlock_t *rw);

/* ------------------------------------------------------------ barriers */

/* Returned by uthread_barrier_wait in exactly one waiter per phase. */
#define UTHREAD_BARRIER_SERIAL_THREAD (-1)

typedef struct uthread_barrier {
	unsigned int count_;    /* waiters per phase, 0 once destroyed */
	unsigned int arrived_;  /* arrivals in the current phase */
	unsigned long phase_;   /* completed phases */
	spin_pdr_lock_t qlock_;
	struct uth_sync_queue waiters_;
} uthread_barrier_t;

/* uthread_barrier_init: makes *b a barrier for count uthreads. Any
 * context. Returns 0, or EINVAL (NULL b, count 0). */
PARLIB_API int uthread_barrier_init(uthread_barrier_t *b, unsigned int count);

/* uthread_barrier_wait: blocks until count uthreads have called it for
 * this phase; then all return, the last to arrive with
 * UTHREAD_BARRIER_SERIAL_THREAD and the others with 0. The barrier is
 * ready for the next phase at once. Uthread context. Returns EPERM (not in
 * uthread context) or EINVAL (NULL or destroyed b). */
PARLIB_API int uthread_barrier_wait(uthread_barrier_t *b);

/* uthread_barrier_destroy: marks b unusable. Any context. Returns 0; EBUSY
 * (uthreads wait on it; b stays usable); EINVAL. */
PARLIB_API int uthread_barrier_destroy(uthread_barrier_t *b);

/* ---------------------------------------------------------- semaphores */

/* The largest semaphore value. */
#define UTHREAD_SEM_VALUE_MAX 2147483647

typedef struct uthread_sem {
	int valid_;          /* 1, or 0 once destroyed */
	unsigned int value_;
	spin_pdr_lock_t qlock_;
	struct uth_sync_queue waiters_;
} uthread_sem_t;

#define UTHREAD_SEM_INITIALIZER(value) { 1, (value), SPINPDR_INITIALIZER, UTH_SYNC_QUEUE_INIT }

/* uthread_sem_init: makes *s a semaphore with the given value. Any context.
 * Returns 0, or EINVAL (NULL s, value > UTHREAD_SEM_VALUE_MAX). */
PARLIB_API int uthread_sem_init(uthread_sem_t *s, unsigned int value);

/* uthread_sem_destroy: marks s unusable. Any context. Returns 0; EBUSY
 * (uthreads wait on it; s stays usable); EINVAL. */
PARLIB_API int uthread_sem_destroy(uthread_sem_t *s);

/* uthread_sem_wait: decrements s, blocking while it is 0. Uthread context.
 * Returns 0; EPERM (it would have to wait and the caller is not in uthread
 * context); EINVAL. */
PARLIB_API int uthread_sem_wait(uthread_sem_t *s);

/* uthread_sem_trywait: decrements s if it is above 0. Any context. Returns
 * 0; EAGAIN (it is 0); EINVAL. */
PARLIB_API int uthread_sem_trywait(uthread_sem_t *s);

/* uthread_sem_timedwait: uthread_sem_wait that gives up at abs_realtime
 * (CLOCK_REALTIME). As POSIX says, the deadline is only looked at when the
 * call would have to wait. Uthread context. Returns 0; ETIMEDOUT; EINVAL
 * (also for a bad timespec: NULL, or tv_nsec outside [0, 1e9)); EPERM. */
PARLIB_API int uthread_sem_timedwait(uthread_sem_t *s, const struct timespec *abs_realtime);

/* uthread_sem_post: increments s, or hands the unit straight to the
 * longest waiter. Any context. Returns 0; EOVERFLOW (the value is at
 * UTHREAD_SEM_VALUE_MAX); EINVAL. */
PARLIB_API int uthread_sem_post(uthread_sem_t *s);

/* uthread_sem_getvalue: stores the current value in *value (a snapshot).
 * Any context. Returns 0, or EINVAL (NULL argument, destroyed s). */
PARLIB_API int uthread_sem_getvalue(uthread_sem_t *s, int *value);

/* --------------------------------------------------------------- futex */

#ifndef FUTEX_WAIT
#define FUTEX_WAIT 0
#endif
#ifndef FUTEX_WAKE
#define FUTEX_WAKE 1
#endif
#ifndef FUTEX_PRIVATE_FLAG
#define FUTEX_PRIVATE_FLAG 128
#endif

/* futex: a uthread futex on *uaddr (process-private; FUTEX_PRIVATE_FLAG is
 * accepted and ignored). uaddr2 and val3 are unused.
 *  FUTEX_WAIT: if *uaddr == val, blocks the calling uthread (not its vcore)
 *   until a FUTEX_WAKE on uaddr or until the relative timeout (NULL: none)
 *   expires. The check and the enqueue are atomic with respect to
 *   FUTEX_WAKE. Uthread context. Returns 0 when woken; -1 with errno EAGAIN
 *   (*uaddr != val), ETIMEDOUT, EINVAL (bad timeout, NULL or misaligned
 *   uaddr) or EPERM (not in uthread context).
 *  FUTEX_WAKE: wakes up to val uthreads waiting on uaddr (none for
 *   val <= 0). Any context. Returns the number woken, or -1 with errno
 *   EINVAL.
 * Other operations: -1 with errno ENOSYS, as the system call. */
PARLIB_API int futex(int *uaddr, int op, int val, const struct timespec *timeout, int *uaddr2,
                     int val3);

PARLIB_END_DECLS

#endif /* PARLIB_MUTEX_H */

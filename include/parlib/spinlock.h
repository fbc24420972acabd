/* parlib/spinlock.h: test-and-test-and-set spinlocks.
 *
 * spinlock_t is the plain spinlock: it never blocks and never touches
 * notifications. Use it where the holder cannot be interrupted by code that
 * wants the same lock (plain kernel threads, or code that already runs with
 * notifications disabled).
 *
 * spin_pdr_lock_t is the lock for data shared between uthread context and
 * vcore context (the Akaros "PDR" lock; on Linux vcores are never
 * preempted, so there is nothing to recover and it is a spinlock that
 * disables notifications while held). Acquiring it calls
 * uth_disable_notifs() first, releasing it calls uth_enable_notifs() last,
 * so a uthread that holds it is neither interrupted nor migrated, and the
 * vcore context of its vcore cannot spin on it forever. From vcore context
 * (and from threads that are not uthreads) those calls are no-ops.
 *
 * Both are unfair and spin with cpu_relax(); after a bounded number of
 * spins (SPINLOCK_SPINS_BEFORE_YIELD) a waiter gives its CPU back to the
 * kernel with sched_yield() between polls, so that a holder whose kernel
 * task was descheduled (more threads than CPUs) gets to run.
 *
 * The uncontended paths of spinlock_* are inline; the contended wait is
 * out of line (spinlock_lock_slow). */
#ifndef PARLIB_SPINLOCK_H
#define PARLIB_SPINLOCK_H

#include <parlib/common.h>
#include <parlib/atomic.h>

PARLIB_BEGIN_DECLS

/* How many cpu_relax() polls a waiter makes before it starts calling
 * sched_yield() between polls. */
#define SPINLOCK_SPINS_BEFORE_YIELD 128

/* spinlock_t: 0 free, 1 held. Access only through the functions below. */
typedef struct spinlock {
	int locked_;
} spinlock_t;

#define SPINLOCK_INITIALIZER { 0 }

/* spinlock_lock_slow: the contended part of spinlock_lock(); spins
 * (test-and-test-and-set) until it takes the lock. Any context. Not for
 * direct use. l must be valid (not checked). */
PARLIB_API void spinlock_lock_slow(spinlock_t *l);

/* spinlock_init: makes *l a free lock. Any context. l must be valid and not
 * held or waited on (not checked). */
static inline void spinlock_init(spinlock_t *l)
{
	/* relaxed: initialisation precedes publication of the lock, and
	 * whatever publishes it orders this store. */
	__atomic_store_n(&l->locked_, 0, __ATOMIC_RELAXED);
}

/* spinlock_trylock: takes the lock if it is free; returns true if it did,
 * false (at once) if it is held. Any context. l must be valid (not
 * checked). */
static inline bool spinlock_trylock(spinlock_t *l)
{
	/* relaxed test first: a held lock is answered without a locked
	 * instruction, so pollers do not pull the line exclusive. */
	if (__atomic_load_n(&l->locked_, __ATOMIC_RELAXED) != 0)
		return false;
	/* acquire: the critical section cannot start before we own it. */
	return __atomic_exchange_n(&l->locked_, 1, __ATOMIC_ACQUIRE) == 0;
}

/* spinlock_lock: takes the lock, spinning while another holds it. Any
 * context; must not be called by the holder (self-deadlock, not
 * detected). l must be valid (not checked). */
static inline void spinlock_lock(spinlock_t *l)
{
	/* acquire: pairs with the release in spinlock_unlock(). */
	if (__atomic_exchange_n(&l->locked_, 1, __ATOMIC_ACQUIRE) == 0)
		return;
	spinlock_lock_slow(l);
}

/* spinlock_unlock: releases a lock the caller holds. Any context. Unlocking
 * a lock the caller does not hold is not detected (it frees the lock). */
static inline void spinlock_unlock(spinlock_t *l)
{
	/* release: the critical section's writes are visible to the next
	 * holder before it sees the lock free. */
	__atomic_store_n(&l->locked_, 0, __ATOMIC_RELEASE);
}

/* spinlock_is_locked: true if the lock is held right now (a racy hint, for
 * assertions). Any context. */
static inline bool spinlock_is_locked(spinlock_t *l)
{
	/* relaxed: only a snapshot. */
	return __atomic_load_n(&l->locked_, __ATOMIC_RELAXED) != 0;
}

/* spin_pdr_lock_t: a spinlock that disables notifications while held (see
 * the top of this file). */
typedef struct spin_pdr_lock {
	spinlock_t lock_;
} spin_pdr_lock_t;

#define SPINPDR_INITIALIZER { SPINLOCK_INITIALIZER }

/* spin_pdr_init: makes *pdr a free lock. Any context. pdr must be valid and
 * not held (not checked). */
PARLIB_API void spin_pdr_init(spin_pdr_lock_t *pdr);

/* spin_pdr_trylock: disables notifications and takes the lock if it is
 * free: returns true holding it (notifications stay disabled until
 * spin_pdr_unlock), or false with notifications re-enabled. Any context.
 * pdr must be valid (not checked). */
PARLIB_API bool spin_pdr_trylock(spin_pdr_lock_t *pdr);

/* spin_pdr_lock: disables notifications, then takes the lock, spinning
 * while it is held. Any context; must not be called by the holder
 * (self-deadlock, not detected). pdr must be valid (not checked). */
PARLIB_API void spin_pdr_lock(spin_pdr_lock_t *pdr);

/* spin_pdr_unlock: releases the lock, then re-enables notifications (and so
 * may deliver pending ones). Any context, by the holder only: releasing a
 * lock the caller does not hold is not detected, and in uthread context
 * also unbalances its notification depth (uth_enable_notifs aborts on
 * underflow). */
PARLIB_API void spin_pdr_unlock(spin_pdr_lock_t *pdr);

/* spin_pdr_locked: true if the lock is held right now (a racy hint, for
 * assertions). Any context. */
PARLIB_API bool spin_pdr_locked(spin_pdr_lock_t *pdr);

PARLIB_END_DECLS

#endif /* PARLIB_SPINLOCK_H */

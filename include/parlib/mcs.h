/* parlib/mcs.h: MCS queue locks.
 *
 * An MCS lock is a FIFO queue of waiters, each spinning on its own cache
 * line (its qnode), so a handoff moves one line between two CPUs instead of
 * every waiter hammering the lock word. Fair (first come, first served).
 *
 * mcs_lock: the caller provides the qnode, which must stay valid and
 * untouched from mcs_lock_lock() until the matching mcs_lock_unlock() (a
 * local variable of the function that holds the lock is the usual choice).
 * One qnode per held lock; the same qnode must be passed to both calls.
 * Never notification-aware: in uthread context, use it only where the
 * holder cannot be interrupted by code wanting the same lock, or use
 * mcs_pdr.
 *
 * mcs_pdr_lock: an MCS lock that disables notifications while held (see
 * spinlock.h about "PDR") and finds its own qnode. Qnode scheme: each
 * thread of execution (every uthread, every vcore context, every plain
 * kernel thread) has a small pool of MCS_PDR_QNODES_PER_THREAD cache-aligned
 * qnodes in its thread-local storage; mcs_pdr_lock() takes a free one and
 * records it in the lock (only the holder reads that field), mcs_pdr_unlock()
 * gives it back. This works whatever vcore_id() says (plain threads all
 * report vcore 0) and costs a few hundred bytes of TLS instead of a qnode
 * per vcore in every lock. A thread may hold at most
 * MCS_PDR_QNODES_PER_THREAD mcs_pdr locks at once (more aborts with a
 * message). Notifications are disabled while it is held, so a uthread
 * neither migrates nor is interrupted meanwhile.
 *
 * Waiters poll with cpu_relax() and, after SPINLOCK_SPINS_BEFORE_YIELD polls,
 * sched_yield() between polls (see spinlock.h). The uncontended paths of
 * mcs_lock_* are inline. */
#ifndef PARLIB_MCS_H
#define PARLIB_MCS_H

#include <parlib/common.h>
#include <parlib/atomic.h>
#include <parlib/spinlock.h>

PARLIB_BEGIN_DECLS

/* A waiter's queue node; one cache line, so waiters spin on their own. */
struct mcs_lock_qnode {
	struct mcs_lock_qnode *next_;  /* our successor, once it linked itself */
	int locked_;                   /* 1 while we must wait */
} __attribute__((aligned(PARLIB_CACHE_LINE_SIZE)));

/* The lock: the tail of the waiter queue (NULL when free). */
struct mcs_lock {
	struct mcs_lock_qnode *tail_;
};

typedef struct mcs_lock mcs_lock_t;
typedef struct mcs_lock_qnode mcs_lock_qnode_t;

#define MCS_LOCK_INIT { 0 }
#define MCS_QNODE_INIT { 0, 0 }

/* mcs_lock_lock_slow / mcs_lock_unlock_slow: the contended halves of
 * mcs_lock_lock() and mcs_lock_unlock(). Not for direct use. */
PARLIB_API void mcs_lock_lock_slow(struct mcs_lock_qnode *pred,
                                   struct mcs_lock_qnode *qnode);
PARLIB_API void mcs_lock_unlock_slow(struct mcs_lock *lock, struct mcs_lock_qnode *qnode);

/* mcs_lock_init: makes *lock a free lock. Any context. lock must be valid
 * and not held (not checked). */
static inline void mcs_lock_init(struct mcs_lock *lock)
{
	/* relaxed: initialisation precedes publication of the lock. */
	__atomic_store_n(&lock->tail_, (struct mcs_lock_qnode *)0, __ATOMIC_RELAXED);
}

/* mcs_lock_lock: takes the lock using the caller's qnode, waiting in FIFO
 * order while it is held. Any context; must not be called by the holder.
 * lock and qnode must be valid, and qnode not in use (not checked). */
static inline void mcs_lock_lock(struct mcs_lock *lock, struct mcs_lock_qnode *qnode)
{
	struct mcs_lock_qnode *pred;

	/* relaxed: nobody can see qnode until the exchange below publishes
	 * it (with release). */
	__atomic_store_n(&qnode->next_, (struct mcs_lock_qnode *)0, __ATOMIC_RELAXED);
	__atomic_store_n(&qnode->locked_, 1, __ATOMIC_RELAXED);
	/* acq_rel: acquire, so that when the queue was empty we see the last
	 * holder's critical section (its release CAS of the tail); release,
	 * so that our successor, who finds qnode through this tail, sees the
	 * initialisation above before it writes qnode->next_. */
	pred = __atomic_exchange_n(&lock->tail_, qnode, __ATOMIC_ACQ_REL);
	if (pred)
		mcs_lock_lock_slow(pred, qnode);
}

/* mcs_lock_unlock: releases the lock; qnode is the one passed to
 * mcs_lock_lock(). Any context; by the holder only (not checked: passing
 * another qnode corrupts the queue). */
static inline void mcs_lock_unlock(struct mcs_lock *lock, struct mcs_lock_qnode *qnode)
{
	struct mcs_lock_qnode *expected = qnode;
	/* acquire: our successor's initialisation of its qnode (published
	 * with its release store of next_) happens before we write its
	 * locked_ flag. */
	struct mcs_lock_qnode *next = __atomic_load_n(&qnode->next_, __ATOMIC_ACQUIRE);

	if (next) {
		/* release: hands our critical section to the successor, which
		 * reads locked_ with acquire. */
		__atomic_store_n(&next->locked_, 0, __ATOMIC_RELEASE);
		return;
	}
	/* release on success: the next acquirer that finds the queue empty
	 * (acquire exchange) sees our critical section. relaxed on failure:
	 * a successor is linking itself; the slow path waits for it. */
	if (__atomic_compare_exchange_n(&lock->tail_, &expected, (struct mcs_lock_qnode *)0,
	                                false, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		return;
	mcs_lock_unlock_slow(lock, qnode);
}

/* How many mcs_pdr locks one thread of execution may hold at once. */
#define MCS_PDR_QNODES_PER_THREAD 4

/* An MCS lock that disables notifications while held; see the top of this
 * file for where its qnodes come from. */
struct mcs_pdr_lock {
	struct mcs_lock lock_;
	struct mcs_lock_qnode *holder_qnode_;  /* written and read by the holder only */
};

typedef struct mcs_pdr_lock mcs_pdr_lock_t;

#define MCS_PDRLOCK_INIT { MCS_LOCK_INIT, 0 }

/* mcs_pdr_init: makes *lock a free lock. Any context. lock must be valid
 * and not held (not checked). */
PARLIB_API void mcs_pdr_init(struct mcs_pdr_lock *lock);

/* mcs_pdr_lock: disables notifications, then takes the lock in FIFO order.
 * Any context; must not be called by the holder (self-deadlock). Aborts
 * with a message when the caller already holds MCS_PDR_QNODES_PER_THREAD
 * mcs_pdr locks. lock must be valid (not checked). */
PARLIB_API void mcs_pdr_lock(struct mcs_pdr_lock *lock);

/* mcs_pdr_unlock: releases the lock, then re-enables notifications. Any
 * context, by the thread that took it only; aborts with a message when the
 * recorded qnode is not one of the caller's (unlock by a non-holder). */
PARLIB_API void mcs_pdr_unlock(struct mcs_pdr_lock *lock);

PARLIB_END_DECLS

#endif /* PARLIB_MCS_H */

/* upthread/upthread.h: the pthread-compatible scheduler built on parlib.
 *
 * Threads are uthreads scheduled by upthread's 2LS: one run queue per vcore,
 * round-robin, affinity to the last vcore, work stealing (two random
 * choices, steal half), optional preemption by per-vcore alarms, and
 * automatic vcore requests. Loading libupthread makes main a upthread
 * (thread0) before main() runs.
 *
 * Every function returns what its pthread_* counterpart returns: 0 or a
 * positive POSIX error number (the upsem_* calls: 0, or -1 with errno).
 * All are for uthread context (the program's threads) unless noted. */
#ifndef UPTHREAD_UPTHREAD_H
#define UPTHREAD_UPTHREAD_H

#include <parlib/dtls.h>
#include <parlib/mutex.h>
#include <parlib/spinlock.h>
#include <signal.h>
#include <time.h>
/* sigset_t and clockid_t are POSIX, not ISO C: keep the header usable from
 * strict C11 too. */
#include <bits/types/clockid_t.h>
#include <bits/types/sigset_t.h>

PARLIB_BEGIN_DECLS

typedef struct upthread *upthread_t;

typedef struct upthread_attr {
	int detachstate;   /* UPTHREAD_CREATE_JOINABLE or _DETACHED */
	size_t stacksize;  /* bytes; default UPTHREAD_STACK_DEFAULT */
	size_t guardsize;  /* bytes; 0 draws the stack from a pooled region */
} upthread_attr_t;

#define UPTHREAD_CREATE_JOINABLE 0
#define UPTHREAD_CREATE_DETACHED 1
#define UPTHREAD_STACK_DEFAULT (1024 * 1024)
#define UPTHREAD_STACK_MIN (16 * 1024)
#define UPTHREAD_DESTRUCTOR_ITERATIONS 4

PARLIB_API int upthread_attr_init(upthread_attr_t *attr);
PARLIB_API int upthread_attr_destroy(upthread_attr_t *attr);
PARLIB_API int upthread_attr_setdetachstate(upthread_attr_t *attr, int state);
PARLIB_API int upthread_attr_getdetachstate(const upthread_attr_t *attr, int *state);
/* EINVAL below UPTHREAD_STACK_MIN. */
PARLIB_API int upthread_attr_setstacksize(upthread_attr_t *attr, size_t size);
PARLIB_API int upthread_attr_getstacksize(const upthread_attr_t *attr, size_t *size);
PARLIB_API int upthread_attr_setguardsize(upthread_attr_t *attr, size_t size);
PARLIB_API int upthread_attr_getguardsize(const upthread_attr_t *attr, size_t *size);

/* upthread_create: EAGAIN when no memory for the thread, its stack or its
 * TLS; EINVAL for a NULL thread or start. Any context but vcore context. */
PARLIB_API int upthread_create(upthread_t *thread, const upthread_attr_t *attr,
                               void *(*start)(void *), void *arg);
/* upthread_join: EDEADLK joining oneself, EINVAL if detached or already
 * being joined, ESRCH for NULL. A cancellation point (see upthread_cancel):
 * a cancelled joiner leaves thread joinable. */
PARLIB_API int upthread_join(upthread_t thread, void **retval);
PARLIB_API int upthread_detach(upthread_t thread);
/* upthread_exit: runs key destructors and thread_local destructors. From
 * thread0 the process lives on until the last thread exits (exit(0)). */
PARLIB_API PARLIB_NORETURN void upthread_exit(void *retval);
PARLIB_API upthread_t upthread_self(void);

/* Cancellation, deferred: a request takes effect when the target reaches a
 * cancellation point: upthread_testcancel, upthread_join (while it waits,
 * or on entry when it would wait). Acting on it is
 * upthread_exit(UPTHREAD_CANCELED) (key and thread_local destructors run;
 * this library unwinds no stack frames: pthread_cleanup_push handlers run
 * only under the LD_PRELOAD shim, docs/preload.md). The values equal
 * glibc's PTHREAD_CANCEL_* and PTHREAD_CANCELED. */
#define UPTHREAD_CANCELED ((void *)-1)
#define UPTHREAD_CANCEL_ENABLE 0
#define UPTHREAD_CANCEL_DISABLE 1
#define UPTHREAD_CANCEL_DEFERRED 0
#define UPTHREAD_CANCEL_ASYNCHRONOUS 1
/* upthread_cancel: asks thread to cancel (0; again: no effect). A target
 * blocked in a cancellation point wakes up and acts on it; with
 * cancellation disabled the request stays pending until the target enables
 * it and reaches a cancellation point. A thread that has exited (not yet
 * joined): 0. ESRCH for NULL. Uthread context or a kernel thread; not
 * vcore context (it may wait for the target to finish blocking). */
PARLIB_API int upthread_cancel(upthread_t thread);
/* upthread_setcancelstate: UPTHREAD_CANCEL_ENABLE (the default) or
 * _DISABLE for the calling thread; *oldstate (may be NULL) gets the old
 * one. Enabling does not act on a pending request by itself. EINVAL for
 * another value, EPERM when the caller is not a upthread. */
PARLIB_API int upthread_setcancelstate(int state, int *oldstate);
/* upthread_setcanceltype: UPTHREAD_CANCEL_DEFERRED (the default) or
 * _ASYNCHRONOUS, which is recorded (and read back) but acts as deferred:
 * a thread is never cancelled between cancellation points. EINVAL for
 * another value, EPERM when the caller is not a upthread. */
PARLIB_API int upthread_setcanceltype(int type, int *oldtype);
/* upthread_testcancel: a cancellation point; does not return if a request
 * is pending and enabled. A no-op outside upthreads. */
PARLIB_API void upthread_testcancel(void);
PARLIB_API int upthread_equal(upthread_t a, upthread_t b);
PARLIB_API int upthread_yield(void);

/* Mutexes: normal, recursive, errorcheck. */
typedef struct upthread_mutexattr {
	int type;
} upthread_mutexattr_t;
#define UPTHREAD_MUTEX_NORMAL UTHREAD_MUTEX_NORMAL
#define UPTHREAD_MUTEX_RECURSIVE UTHREAD_MUTEX_RECURSIVE
#define UPTHREAD_MUTEX_ERRORCHECK UTHREAD_MUTEX_ERRORCHECK
#define UPTHREAD_MUTEX_DEFAULT UTHREAD_MUTEX_DEFAULT
typedef uthread_mutex_t upthread_mutex_t;
#define UPTHREAD_MUTEX_INITIALIZER UTHREAD_MUTEX_INITIALIZER
#define UPTHREAD_RECURSIVE_MUTEX_INITIALIZER UTHREAD_RECURSIVE_MUTEX_INITIALIZER
#define UPTHREAD_ERRORCHECK_MUTEX_INITIALIZER UTHREAD_ERRORCHECK_MUTEX_INITIALIZER
PARLIB_API int upthread_mutexattr_init(upthread_mutexattr_t *attr);
PARLIB_API int upthread_mutexattr_destroy(upthread_mutexattr_t *attr);
PARLIB_API int upthread_mutexattr_settype(upthread_mutexattr_t *attr, int type);
PARLIB_API int upthread_mutexattr_gettype(const upthread_mutexattr_t *attr, int *type);
PARLIB_API int upthread_mutex_init(upthread_mutex_t *m, const upthread_mutexattr_t *attr);
PARLIB_API int upthread_mutex_destroy(upthread_mutex_t *m);
PARLIB_API int upthread_mutex_lock(upthread_mutex_t *m);
PARLIB_API int upthread_mutex_trylock(upthread_mutex_t *m);
/* upthread_mutex_timedlock: abs_realtime on CLOCK_REALTIME; ETIMEDOUT. */
PARLIB_API int upthread_mutex_timedlock(upthread_mutex_t *m, const struct timespec *abs_realtime);
PARLIB_API int upthread_mutex_unlock(upthread_mutex_t *m);

/* Condition variables, with the clock attribute (REALTIME or MONOTONIC). */
typedef struct upthread_condattr {
	clockid_t clock;
} upthread_condattr_t;
typedef struct upthread_cond {
	uthread_cond_t cond;
	clockid_t clock;
} upthread_cond_t;
#define UPTHREAD_COND_INITIALIZER { UTHREAD_COND_INITIALIZER, CLOCK_REALTIME }
PARLIB_API int upthread_condattr_init(upthread_condattr_t *attr);
PARLIB_API int upthread_condattr_destroy(upthread_condattr_t *attr);
/* EINVAL for clocks other than CLOCK_REALTIME and CLOCK_MONOTONIC. */
PARLIB_API int upthread_condattr_setclock(upthread_condattr_t *attr, clockid_t clock);
PARLIB_API int upthread_condattr_getclock(const upthread_condattr_t *attr, clockid_t *clock);
PARLIB_API int upthread_cond_init(upthread_cond_t *c, const upthread_condattr_t *attr);
PARLIB_API int upthread_cond_destroy(upthread_cond_t *c);
PARLIB_API int upthread_cond_wait(upthread_cond_t *c, upthread_mutex_t *m);
/* upthread_cond_timedwait: abstime on the condvar's clock; ETIMEDOUT. */
PARLIB_API int upthread_cond_timedwait(upthread_cond_t *c, upthread_mutex_t *m,
                                       const struct timespec *abstime);
PARLIB_API int upthread_cond_signal(upthread_cond_t *c);
PARLIB_API int upthread_cond_broadcast(upthread_cond_t *c);

/* Reader-writer locks and barriers. */
typedef uthread_rwlock_t upthread_rwlock_t;
#define UPTHREAD_RWLOCK_INITIALIZER UTHREAD_RWLOCK_INITIALIZER
PARLIB_API int upthread_rwlock_init(upthread_rwlock_t *rw, const void *attr);
PARLIB_API int upthread_rwlock_destroy(upthread_rwlock_t *rw);
PARLIB_API int upthread_rwlock_rdlock(upthread_rwlock_t *rw);
PARLIB_API int upthread_rwlock_tryrdlock(upthread_rwlock_t *rw);
PARLIB_API int upthread_rwlock_wrlock(upthread_rwlock_t *rw);
PARLIB_API int upthread_rwlock_trywrlock(upthread_rwlock_t *rw);
PARLIB_API int upthread_rwlock_unlock(upthread_rwlock_t *rw);
typedef uthread_barrier_t upthread_barrier_t;
#define UPTHREAD_BARRIER_SERIAL_THREAD UTHREAD_BARRIER_SERIAL_THREAD
/* upthread_barrier_init: EINVAL for count 0. */
PARLIB_API int upthread_barrier_init(upthread_barrier_t *b, const void *attr, unsigned count);
PARLIB_API int upthread_barrier_destroy(upthread_barrier_t *b);
PARLIB_API int upthread_barrier_wait(upthread_barrier_t *b);

/* Spinlocks: notifications stay disabled while held, so the holder is
 * never preempted. */
typedef spin_pdr_lock_t upthread_spinlock_t;
PARLIB_API int upthread_spin_init(upthread_spinlock_t *l, int pshared);
PARLIB_API int upthread_spin_destroy(upthread_spinlock_t *l);
PARLIB_API int upthread_spin_lock(upthread_spinlock_t *l);
PARLIB_API int upthread_spin_trylock(upthread_spinlock_t *l);
PARLIB_API int upthread_spin_unlock(upthread_spinlock_t *l);

/* Keys (on parlib's DTLS): destructors run at thread exit, up to
 * UPTHREAD_DESTRUCTOR_ITERATIONS passes. EAGAIN when keys run out. */
typedef dtls_key_t upthread_key_t;
PARLIB_API int upthread_key_create(upthread_key_t *key, void (*dtor)(void *));
PARLIB_API int upthread_key_delete(upthread_key_t key);
PARLIB_API int upthread_setspecific(upthread_key_t key, const void *value);
PARLIB_API void *upthread_getspecific(upthread_key_t key);

typedef int upthread_once_t;
#define UPTHREAD_ONCE_INIT 0
PARLIB_API int upthread_once(upthread_once_t *once, void (*init)(void));

/* upthread_kill: sig 0 checks the thread exists. Another signal is made
 * pending on the target and its handler runs in the target's context (its
 * stack and TLS): now if the target is the caller; at once if the target
 * is blocked where a signal interrupts it (a call of parlib's syscall
 * service; under the LD_PRELOAD shim also sleeps, semaphore, condition and
 * join waits: docs/preload.md); otherwise at the target's next yield or
 * blocking call (a preemption tick does not run it).
 * EINVAL for a bad signal number, ESRCH for NULL. */
PARLIB_API int upthread_kill(upthread_t thread, int sig);
/* upthread_sigmask: the calling thread's mask for signals sent with
 * upthread_kill (kernel-delivered signals reach whichever vcore task the
 * kernel picks). */
PARLIB_API int upthread_sigmask(int how, const sigset_t *set, sigset_t *oldset);

/* Semaphores (POSIX conventions: 0, or -1 with errno). */
typedef uthread_sem_t upsem_t;
PARLIB_API int upsem_init(upsem_t *s, int pshared, unsigned value);
PARLIB_API int upsem_destroy(upsem_t *s);
PARLIB_API int upsem_wait(upsem_t *s);
PARLIB_API int upsem_trywait(upsem_t *s);
PARLIB_API int upsem_timedwait(upsem_t *s, const struct timespec *abs_realtime);
PARLIB_API int upsem_post(upsem_t *s);
PARLIB_API int upsem_getvalue(upsem_t *s, int *value);

/* Extensions (dissertation 2.6.1). Any context. */
/* upthread_set_sched_period: preempt every usec microseconds on each vcore
 * (per-vcore alarms); 0 = cooperative, the default. */
PARLIB_API void upthread_set_sched_period(uint64_t usec);
/* upthread_can_vcore_request: request vcores when work appears and yield
 * them when they run dry (default true). When false, vcores that have work
 * once keep polling their queues. */
PARLIB_API void upthread_can_vcore_request(bool can);
/* upthread_can_vcore_steal: let an idle vcore steal (default true). */
PARLIB_API void upthread_can_vcore_steal(bool can);
/* upthread_set_num_vcores: spread threads over num queues/vcores (default
 * max_vcores()); values are clamped to 1..max_vcores(). */
PARLIB_API void upthread_set_num_vcores(int num);
/* upthread_set_stuck_check_period: every usec microseconds a monitor
 * thread looks for vcores stuck in the kernel (a system call upthread does
 * not see, such as an inline `syscall` futex wait, or a slow page fault:
 * the vcore's task sleeps and has not switched threads since the last
 * look). While some are stuck and threads wait in the run queues, it
 * brings that many spare vcores online (see max_spare_vcores() in
 * <parlib/vcore.h>) to run them, and retires the spares when the stuck
 * vcores are back. 0 = off, the default; the LD_PRELOAD shim turns it on
 * (UPTHREAD_STUCK_CHECK_US, default 1000). Any context; the first nonzero
 * call starts the monitor thread. */
PARLIB_API void upthread_set_stuck_check_period(uint64_t usec);

/* Per-vcore counters (PARLIB_STATS=1 prints them at exit): threads run,
 * steals, preemptions, events handled, system calls that blocked (on the
 * ring or offloaded), idle time. Returns 0, or EINVAL. */
struct upthread_vcore_stats {
	uint64_t switches, steals, preemptions, events, syscalls;
	uint64_t idle_ns;
};
PARLIB_API int upthread_get_vcore_stats(uint32_t vcoreid, struct upthread_vcore_stats *out);

PARLIB_END_DECLS

#endif /* UPTHREAD_UPTHREAD_H */

/* upthread/pthread.h: recompile pthread code onto upthreads.
 *
 * Include this instead of <pthread.h> (and <semaphore.h>) and link
 * libupthread: every pthread_* and sem_* name, type and initializer below
 * is mapped to its upthread counterpart. Code that passes pthread objects
 * to libraries built against glibc's pthreads must not use this header
 * (use the LD_PRELOAD shim instead). */
#ifndef UPTHREAD_PTHREAD_H
#define UPTHREAD_PTHREAD_H

#include <pthread.h>   /* first: later names then refer to upthread's */
#include <semaphore.h>
#include <upthread/upthread.h>

#define pthread_t upthread_t
#define pthread_attr_t upthread_attr_t
#define pthread_mutex_t upthread_mutex_t
#define pthread_mutexattr_t upthread_mutexattr_t
#define pthread_cond_t upthread_cond_t
#define pthread_condattr_t upthread_condattr_t
#define pthread_rwlock_t upthread_rwlock_t
#define pthread_rwlockattr_t void
#define pthread_barrier_t upthread_barrier_t
#define pthread_barrierattr_t void
#define pthread_spinlock_t upthread_spinlock_t
#define pthread_key_t upthread_key_t
#define pthread_once_t upthread_once_t
#define sem_t upsem_t

#undef PTHREAD_MUTEX_INITIALIZER
#define PTHREAD_MUTEX_INITIALIZER UPTHREAD_MUTEX_INITIALIZER
#undef PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP
#define PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP UPTHREAD_RECURSIVE_MUTEX_INITIALIZER
#undef PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP
#define PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP UPTHREAD_ERRORCHECK_MUTEX_INITIALIZER
#undef PTHREAD_COND_INITIALIZER
#define PTHREAD_COND_INITIALIZER UPTHREAD_COND_INITIALIZER
#undef PTHREAD_RWLOCK_INITIALIZER
#define PTHREAD_RWLOCK_INITIALIZER UPTHREAD_RWLOCK_INITIALIZER
#undef PTHREAD_ONCE_INIT
#define PTHREAD_ONCE_INIT UPTHREAD_ONCE_INIT
#undef PTHREAD_BARRIER_SERIAL_THREAD
#define PTHREAD_BARRIER_SERIAL_THREAD UPTHREAD_BARRIER_SERIAL_THREAD
#undef PTHREAD_DESTRUCTOR_ITERATIONS
#define PTHREAD_DESTRUCTOR_ITERATIONS UPTHREAD_DESTRUCTOR_ITERATIONS

/* The enumerators of <pthread.h> keep their values where they coincide;
 * these do not. */
#define pthread_attr_init upthread_attr_init
#define pthread_attr_destroy upthread_attr_destroy
#define pthread_attr_setdetachstate upthread_attr_setdetachstate
#define pthread_attr_getdetachstate upthread_attr_getdetachstate
#define pthread_attr_setstacksize upthread_attr_setstacksize
#define pthread_attr_getstacksize upthread_attr_getstacksize
#define pthread_attr_setguardsize upthread_attr_setguardsize
#define pthread_attr_getguardsize upthread_attr_getguardsize
#define pthread_create upthread_create
#define pthread_join upthread_join
#define pthread_detach upthread_detach
#define pthread_exit upthread_exit
#define pthread_self upthread_self
#define pthread_equal upthread_equal
#define pthread_yield upthread_yield
#define sched_yield upthread_yield
#define pthread_mutexattr_init upthread_mutexattr_init
#define pthread_mutexattr_destroy upthread_mutexattr_destroy
#define pthread_mutexattr_settype upthread_mutexattr_settype
#define pthread_mutexattr_gettype upthread_mutexattr_gettype
#define pthread_mutex_init upthread_mutex_init
#define pthread_mutex_destroy upthread_mutex_destroy
#define pthread_mutex_lock upthread_mutex_lock
#define pthread_mutex_trylock upthread_mutex_trylock
#define pthread_mutex_timedlock upthread_mutex_timedlock
#define pthread_mutex_unlock upthread_mutex_unlock
#define pthread_condattr_init upthread_condattr_init
#define pthread_condattr_destroy upthread_condattr_destroy
#define pthread_condattr_setclock upthread_condattr_setclock
#define pthread_condattr_getclock upthread_condattr_getclock
#define pthread_cond_init upthread_cond_init
#define pthread_cond_destroy upthread_cond_destroy
#define pthread_cond_wait upthread_cond_wait
#define pthread_cond_timedwait upthread_cond_timedwait
#define pthread_cond_signal upthread_cond_signal
#define pthread_cond_broadcast upthread_cond_broadcast
#define pthread_rwlock_init upthread_rwlock_init
#define pthread_rwlock_destroy upthread_rwlock_destroy
#define pthread_rwlock_rdlock upthread_rwlock_rdlock
#define pthread_rwlock_tryrdlock upthread_rwlock_tryrdlock
#define pthread_rwlock_wrlock upthread_rwlock_wrlock
#define pthread_rwlock_trywrlock upthread_rwlock_trywrlock
#define pthread_rwlock_unlock upthread_rwlock_unlock
#define pthread_barrier_init upthread_barrier_init
#define pthread_barrier_destroy upthread_barrier_destroy
#define pthread_barrier_wait upthread_barrier_wait
#define pthread_spin_init upthread_spin_init
#define pthread_spin_destroy upthread_spin_destroy
#define pthread_spin_lock upthread_spin_lock
#define pthread_spin_trylock upthread_spin_trylock
#define pthread_spin_unlock upthread_spin_unlock
#define pthread_key_create upthread_key_create
#define pthread_key_delete upthread_key_delete
#define pthread_setspecific upthread_setspecific
#define pthread_getspecific upthread_getspecific
#define pthread_once upthread_once
#define pthread_kill upthread_kill
#define pthread_cancel upthread_cancel
#define pthread_setcancelstate upthread_setcancelstate
#define pthread_setcanceltype upthread_setcanceltype
#define pthread_testcancel upthread_testcancel
#define pthread_sigmask upthread_sigmask
#define sem_init upsem_init
#define sem_destroy upsem_destroy
#define sem_wait upsem_wait
#define sem_trywait upsem_trywait
#define sem_timedwait upsem_timedwait
#define sem_post upsem_post
#define sem_getvalue upsem_getvalue

#endif /* UPTHREAD_PTHREAD_H */

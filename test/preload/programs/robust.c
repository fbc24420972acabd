/* Robust, priority-inheritance and priority-protect mutexes under the shim,
 * as natively: a plain pthread program (no parlib). A thread that exits
 * (returns, calls pthread_exit, or is cancelled) holding a robust mutex
 * makes the next locker (a waiter already blocked on it, or a later
 * lock/trylock/timedlock) get EOWNERDEAD and the mutex; the new owner may
 * make it consistent, or unlock it, after which every locker gets
 * ENOTRECOVERABLE. Robust recursive and errorcheck types keep their rules.
 * PI and PP mutexes lock, unlock, trylock and time out under contention
 * from several threads while busy threads load every CPU; unlock by a
 * non-owner is EPERM. Priority ceilings read back as set.
 *
 * Output: the results only, identical natively and under the shim. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int stop_busy;

static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
    for (volatile int k = 0; k < 20000; ++k) {
    }
    sched_yield();
  }
  return NULL;
}

static const char *err_name(int e) {
  switch (e) {
    case 0:
      return "0";
    case EOWNERDEAD:
      return "EOWNERDEAD";
    case ENOTRECOVERABLE:
      return "ENOTRECOVERABLE";
    case EBUSY:
      return "EBUSY";
    case EPERM:
      return "EPERM";
    case EINVAL:
      return "EINVAL";
    case EDEADLK:
      return "EDEADLK";
    case ETIMEDOUT:
      return "ETIMEDOUT";
    default:
      return strerror(e);
  }
}

static void init_mutex(pthread_mutex_t *m, int type, int robust, int protocol) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, type);
  if (robust) pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  if (protocol >= 0) pthread_mutexattr_setprotocol(&a, protocol);
  if (pthread_mutex_init(m, &a) != 0) exit(3);
  pthread_mutexattr_destroy(&a);
}

/* ------------------------------------------------------------ robust */

static pthread_mutex_t rm;
static atomic_int holder_locked;
static int how_to_die; /* 0 return, 1 pthread_exit, 2 cancelled */

static void *die_holding(void *arg) {
  (void)arg;
  pthread_mutex_lock(&rm);
  atomic_store(&holder_locked, 1);
  if (how_to_die == 1) pthread_exit(NULL);
  if (how_to_die == 2) {
    for (;;) {
      pthread_testcancel();
      sched_yield();
    }
  }
  return NULL;
}

static atomic_int waiter_started;
static int waiter_result;
static void *lock_waiter(void *arg) {
  (void)arg;
  atomic_store(&waiter_started, 1);
  waiter_result = pthread_mutex_lock(&rm);
  if (waiter_result == EOWNERDEAD) pthread_mutex_consistent(&rm);
  if (waiter_result == 0 || waiter_result == EOWNERDEAD) pthread_mutex_unlock(&rm);
  return NULL;
}

static void kill_holder(int how, int with_waiter) {
  how_to_die = how;
  atomic_store(&holder_locked, 0);
  atomic_store(&waiter_started, 0);
  pthread_t h, w;
  if (pthread_create(&h, NULL, die_holding, NULL) != 0) exit(3);
  while (!atomic_load(&holder_locked)) sched_yield();
  if (with_waiter) {
    if (pthread_create(&w, NULL, lock_waiter, NULL) != 0) exit(3);
    while (!atomic_load(&waiter_started)) sched_yield();
  }
  if (how == 2) pthread_cancel(h);
  pthread_join(h, NULL);
  if (with_waiter) pthread_join(w, NULL);
}

static void robust_tests(int type, const char *name) {
  const char *hows[] = {"returned", "pthread_exit", "cancelled"};
  for (int how = 0; how < 3; ++how) {
    init_mutex(&rm, type, 1, -1);
    kill_holder(how, 0);
    int r = pthread_mutex_lock(&rm);
    int again = type == PTHREAD_MUTEX_RECURSIVE ? pthread_mutex_lock(&rm) : -1;
    if (again == 0) pthread_mutex_unlock(&rm);
    int c = pthread_mutex_consistent(&rm);
    int u = pthread_mutex_unlock(&rm);
    int r2 = pthread_mutex_trylock(&rm);
    if (r2 == 0) pthread_mutex_unlock(&rm);
    printf("%s, owner %s: lock %s, consistent %s, unlock %s, next trylock %s\n", name, hows[how],
           err_name(r), err_name(c), err_name(u), err_name(r2));
    pthread_mutex_destroy(&rm);
  }
  /* A waiter already blocked when the owner dies. */
  init_mutex(&rm, type, 1, -1);
  kill_holder(0, 1);
  printf("%s, blocked waiter when the owner returned: %s\n", name, err_name(waiter_result));
  pthread_mutex_destroy(&rm);
  /* Unlock without consistent: not recoverable, for everyone after. */
  init_mutex(&rm, type, 1, -1);
  kill_holder(1, 0);
  int r = pthread_mutex_trylock(&rm);
  int u = pthread_mutex_unlock(&rm);
  int l1 = pthread_mutex_lock(&rm);
  int l2 = pthread_mutex_trylock(&rm);
  int c = pthread_mutex_consistent(&rm);
  printf(
      "%s, not made consistent: trylock %s, unlock %s, then lock %s, trylock %s, consistent %s\n",
      name, err_name(r), err_name(u), err_name(l1), err_name(l2), err_name(c));
  /* consistent on a healthy robust mutex, and unlock by a non-owner. */
  init_mutex(&rm, type, 1, -1);
  pthread_mutex_lock(&rm);
  printf("%s, healthy: consistent %s\n", name, err_name(pthread_mutex_consistent(&rm)));
  pthread_mutex_unlock(&rm);
  pthread_mutex_destroy(&rm);
}

/* -------------------------------------------------------------- PI, PP */

/* Natively, a SCHED_OTHER thread's first lock of a PP mutex fails with
 * EINVAL: glibc asks the kernel to give the thread the ceiling as a
 * SCHED_OTHER priority, which the kernel refuses, but records the ceiling
 * as reached, so later locks at that ceiling succeed. Each thread that
 * uses a PP mutex takes this first lock unprinted (under the shim it
 * succeeds: docs/preload.md). */
static void warm_up(pthread_mutex_t *m) {
  if (pthread_mutex_lock(m) == 0) pthread_mutex_unlock(m);
}

#define WORKERS 6
#define ROUNDS 300
static pthread_mutex_t pm;
static long counter;
static atomic_int trylock_busy, bad;

static void *contend(void *arg) {
  (void)arg;
  warm_up(&pm);
  for (int i = 0; i < ROUNDS; ++i) {
    int r;
    if (i % 3 == 0) {
      r = pthread_mutex_trylock(&pm);
      if (r == EBUSY) {
        atomic_fetch_add(&trylock_busy, 1);
        r = pthread_mutex_lock(&pm);
      }
    } else if (i % 3 == 1) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 10;
      r = pthread_mutex_timedlock(&pm, &ts);
    } else {
      r = pthread_mutex_lock(&pm);
    }
    if (r != 0) {
      atomic_fetch_add(&bad, 1);
      continue;
    }
    long c = counter;
    if (i % 16 == 0) sched_yield();
    counter = c + 1;
    pthread_mutex_unlock(&pm);
  }
  return NULL;
}

static atomic_int held, release_it;
static void *hold(void *arg) {
  (void)arg;
  warm_up(&pm);
  pthread_mutex_lock(&pm);
  atomic_store(&held, 1);
  while (!atomic_load(&release_it)) sched_yield();
  pthread_mutex_unlock(&pm);
  return NULL;
}

static void protocol_tests(int protocol, const char *name) {
  init_mutex(&pm, PTHREAD_MUTEX_NORMAL, 0, protocol);
  warm_up(&pm);
  counter = 0;
  atomic_store(&bad, 0);
  pthread_t w[WORKERS];
  for (int i = 0; i < WORKERS; ++i)
    if (pthread_create(&w[i], NULL, contend, NULL) != 0) exit(3);
  for (int i = 0; i < WORKERS; ++i) pthread_join(w[i], NULL);
  printf("%s: counter %ld of %d, failed locks %d\n", name, counter, WORKERS * ROUNDS,
         atomic_load(&bad));
  /* Held by another thread: trylock EBUSY, timedlock ETIMEDOUT, unlock EPERM. */
  atomic_store(&held, 0);
  atomic_store(&release_it, 0);
  pthread_t h;
  if (pthread_create(&h, NULL, hold, NULL) != 0) exit(3);
  while (!atomic_load(&held)) sched_yield();
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 50000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_nsec -= 1000000000;
    ts.tv_sec += 1;
  }
  int t = pthread_mutex_trylock(&pm);
  int tl = pthread_mutex_timedlock(&pm, &ts);
  int u = pthread_mutex_unlock(&pm);
  atomic_store(&release_it, 1);
  pthread_join(h, NULL);
  int l = pthread_mutex_lock(&pm);
  if (l == 0) pthread_mutex_unlock(&pm);
  printf("%s, held elsewhere: trylock %s, timedlock %s, unlock %s; free again: lock %s\n", name,
         err_name(t), err_name(tl), err_name(u), err_name(l));
  pthread_mutex_destroy(&pm);
  /* Errorcheck and recursive flavours. */
  init_mutex(&pm, PTHREAD_MUTEX_ERRORCHECK, 0, protocol);
  warm_up(&pm);
  pthread_mutex_lock(&pm);
  int e = pthread_mutex_lock(&pm);
  pthread_mutex_unlock(&pm);
  int e2 = pthread_mutex_unlock(&pm);
  pthread_mutex_destroy(&pm);
  init_mutex(&pm, PTHREAD_MUTEX_RECURSIVE, 0, protocol);
  warm_up(&pm);
  int r1 = pthread_mutex_lock(&pm), r2 = pthread_mutex_lock(&pm), r3 = pthread_mutex_trylock(&pm);
  pthread_mutex_unlock(&pm);
  pthread_mutex_unlock(&pm);
  int r4 = pthread_mutex_unlock(&pm), r5 = pthread_mutex_unlock(&pm);
  pthread_mutex_destroy(&pm);
  printf("%s errorcheck: relock %s, second unlock %s; recursive: %s %s %s, unlocks %s %s\n", name,
         err_name(e), err_name(e2), err_name(r1), err_name(r2), err_name(r3), err_name(r4),
         err_name(r5));
}

static void ceiling_tests(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  int c = -1;
  printf("attr default ceiling: %s", err_name(pthread_mutexattr_getprioceiling(&a, &c)));
  printf(" %d\n", c);
  pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_PROTECT);
  int max = sched_get_priority_max(SCHED_FIFO);
  printf("attr setprioceiling(max+1): %s\n",
         err_name(pthread_mutexattr_setprioceiling(&a, max + 1)));
  printf("attr setprioceiling(5): %s\n", err_name(pthread_mutexattr_setprioceiling(&a, 5)));
  pthread_mutex_t m;
  pthread_mutex_init(&m, &a);
  c = -1;
  int g = pthread_mutex_getprioceiling(&m, &c);
  printf("mutex getprioceiling: %s %d\n", err_name(g), c);
  int old = -1;
  int s = pthread_mutex_setprioceiling(&m, 7, &old);
  c = -1;
  pthread_mutex_getprioceiling(&m, &c);
  printf("mutex setprioceiling(7): %s, old %d, now %d\n", err_name(s), old, c);
  printf("mutex setprioceiling(max+1): %s\n",
         err_name(pthread_mutex_setprioceiling(&m, max + 1, &old)));
  pthread_mutex_destroy(&m);
  pthread_mutexattr_destroy(&a);
  /* Not a PP mutex: EINVAL. */
  pthread_mutex_init(&m, NULL);
  printf("normal mutex getprioceiling: %s\n", err_name(pthread_mutex_getprioceiling(&m, &c)));
  pthread_mutex_destroy(&m);
}

int main(void) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int nbusy = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (int)ncpu;
  pthread_t busies[64];
  for (int i = 0; i < nbusy; ++i)
    if (pthread_create(&busies[i], NULL, busy, NULL) != 0) return 3;

  robust_tests(PTHREAD_MUTEX_NORMAL, "robust normal");
  robust_tests(PTHREAD_MUTEX_ERRORCHECK, "robust errorcheck");
  robust_tests(PTHREAD_MUTEX_RECURSIVE, "robust recursive");
  protocol_tests(PTHREAD_PRIO_INHERIT, "PI");
  protocol_tests(PTHREAD_PRIO_PROTECT, "PP");
  ceiling_tests();

  atomic_store(&stop_busy, 1);
  for (int i = 0; i < nbusy; ++i) pthread_join(busies[i], NULL);
  return 0;
}

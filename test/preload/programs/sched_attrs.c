/* Scheduling attributes under the shim, as natively: a plain pthread
 * program (no parlib). What a program sets with pthread_attr_setsched*,
 * pthread_setschedparam, pthread_setschedprio and sched_setscheduler(0)
 * reads back as set (pthread_getschedparam, pthread_getattr_np,
 * sched_getscheduler(0), sched_getparam(0)), threads inherit their
 * creator's or take their attribute's, and invalid requests fail with the
 * native errors. The real-time policies are set only on threads that
 * block, and set back. Threads created by other threads too.
 *
 * Output: the results only, identical natively and under the shim. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *pol(int p) {
  switch (p) {
    case SCHED_OTHER:
      return "OTHER";
    case SCHED_FIFO:
      return "FIFO";
    case SCHED_RR:
      return "RR";
    case SCHED_BATCH:
      return "BATCH";
    case SCHED_IDLE:
      return "IDLE";
    default:
      return "?";
  }
}
static const char *en(int e) {
  switch (e) {
    case 0:
      return "0";
    case EINVAL:
      return "EINVAL";
    case EPERM:
      return "EPERM";
    case ENOTSUP:
      return "ENOTSUP";
    case ESRCH:
      return "ESRCH";
    default:
      return strerror(e);
  }
}

static void show(const char *what, pthread_t t) {
  int p = -1;
  struct sched_param sp = {-1};
  int r = pthread_getschedparam(t, &p, &sp);
  printf("%s: %s %s %d", what, en(r), pol(p), sp.sched_priority);
  pthread_attr_t a;
  if (pthread_getattr_np(t, &a) == 0) {
    int ap = -1;
    struct sched_param asp = {-1};
    pthread_attr_getschedpolicy(&a, &ap);
    pthread_attr_getschedparam(&a, &asp);
    printf(", getattr_np %s %d", pol(ap), asp.sched_priority);
    pthread_attr_destroy(&a);
  }
  printf("\n");
}

static void *report_self(void *arg) {
  show((const char *)arg, pthread_self());
  struct sched_param sp = {-1};
  int p = sched_getscheduler(0);
  sched_getparam(0, &sp);
  printf("%s, sched_getscheduler(0): %s %d\n", (const char *)arg, pol(p), sp.sched_priority);
  return NULL;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int release_waiter;
static void *waiter(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  while (!release_waiter) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void on(pthread_t t, const char *name) {
  struct sched_param sp;
  sp.sched_priority = 5;
  printf("%s set OTHER 5: %s\n", name, en(pthread_setschedparam(t, SCHED_OTHER, &sp)));
  sp.sched_priority = 0;
  printf("%s set policy 1234: %s\n", name, en(pthread_setschedparam(t, 1234, &sp)));
  printf("%s set FIFO 0: %s\n", name, en(pthread_setschedparam(t, SCHED_FIFO, &sp)));
  sp.sched_priority = 100;
  printf("%s set RR 100: %s\n", name, en(pthread_setschedparam(t, SCHED_RR, &sp)));
  show(name, t);
  sp.sched_priority = 20;
  printf("%s set RR 20: %s\n", name, en(pthread_setschedparam(t, SCHED_RR, &sp)));
  show(name, t);
  printf("%s setschedprio 30: %s\n", name, en(pthread_setschedprio(t, 30)));
  printf("%s setschedprio 200: %s\n", name, en(pthread_setschedprio(t, 200)));
  show(name, t);
  sp.sched_priority = 0;
  printf("%s set BATCH 0: %s\n", name, en(pthread_setschedparam(t, SCHED_BATCH, &sp)));
  show(name, t);
  printf("%s setschedprio 5 under BATCH: %s\n", name, en(pthread_setschedprio(t, 5)));
  printf("%s set IDLE 0: %s\n", name, en(pthread_setschedparam(t, SCHED_IDLE, &sp)));
  show(name, t);
  printf("%s set OTHER 0: %s\n", name, en(pthread_setschedparam(t, SCHED_OTHER, &sp)));
  show(name, t);
}

static void *creator(void *arg) {
  (void)arg;
  /* A thread made with explicit attributes, from a thread other than main. */
  pthread_attr_t a;
  pthread_attr_init(&a);
  int inh = -1;
  pthread_attr_getinheritsched(&a, &inh);
  printf("attr default inheritsched: %s\n", inh == PTHREAD_INHERIT_SCHED ? "INHERIT" : "EXPLICIT");
  printf("attr setinheritsched(42): %s\n", en(pthread_attr_setinheritsched(&a, 42)));
  printf("attr setschedpolicy(1234): %s\n", en(pthread_attr_setschedpolicy(&a, 1234)));
  pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED);
  pthread_attr_setschedpolicy(&a, SCHED_FIFO);
  struct sched_param sp = {10};
  printf("attr setschedparam(FIFO 10): %s\n", en(pthread_attr_setschedparam(&a, &sp)));
  int p = -1;
  struct sched_param got = {-1};
  pthread_attr_getschedpolicy(&a, &p);
  pthread_attr_getschedparam(&a, &got);
  printf("attr reads back: %s %d\n", pol(p), got.sched_priority);
  pthread_t t;
  int r = pthread_create(&t, &a, report_self, "explicit FIFO 10 thread");
  if (r == 0) pthread_join(t, NULL);
  printf("create explicit FIFO 10: %s\n", en(r));
  pthread_attr_setschedpolicy(&a, SCHED_BATCH);
  sp.sched_priority = 0;
  pthread_attr_setschedparam(&a, &sp);
  r = pthread_create(&t, &a, report_self, "explicit BATCH thread");
  if (r == 0) pthread_join(t, NULL);
  pthread_attr_destroy(&a);

  /* Inheritance: this thread at RR 20, then a child with default attrs. */
  sp.sched_priority = 20;
  pthread_setschedparam(pthread_self(), SCHED_RR, &sp);
  r = pthread_create(&t, NULL, report_self, "inheriting child of an RR 20 thread");
  if (r == 0) pthread_join(t, NULL);
  sp.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
  r = pthread_create(&t, NULL, report_self, "inheriting child of an OTHER thread");
  if (r == 0) pthread_join(t, NULL);

  /* sched_setscheduler(0) means the calling thread. */
  sp.sched_priority = 15;
  printf("sched_setscheduler(0, RR 15): %d\n", sched_setscheduler(0, SCHED_RR, &sp));
  show("after sched_setscheduler(0)", pthread_self());
  struct sched_param ksp = {-1};
  int kp = sched_getscheduler(0);
  sched_getparam(0, &ksp);
  printf("after sched_setscheduler(0), sched_getscheduler(0): %s %d\n", pol(kp),
         ksp.sched_priority);
  sp.sched_priority = 0;
  sched_setscheduler(0, SCHED_OTHER, &sp);
  return NULL;
}

int main(void) {
  show("main", pthread_self());
  pthread_t w;
  if (pthread_create(&w, NULL, waiter, NULL) != 0) return 3;
  on(w, "waiter");
  pthread_mutex_lock(&mu);
  release_waiter = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(w, NULL);
  pthread_t c;
  if (pthread_create(&c, NULL, creator, NULL) != 0) return 3;
  pthread_join(c, NULL);
  return 0;
}

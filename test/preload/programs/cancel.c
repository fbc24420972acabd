/* Deferred cancellation, as glibc does it: a thread blocked in a
 * cancellation point (condition wait, sleep, join, semaphore wait, their
 * timed forms) wakes up and exits with PTHREAD_CANCELED after its cleanup
 * handlers (last pushed first) and key destructors; pthread_testcancel; the
 * disabled state keeps a request pending; pthread_exit runs the handlers
 * too; a request to a thread that has exited returns 0. A plain pthread
 * program: compare.sh checks that its output equals a native run. Each
 * case runs one target at a time, so the log order is deterministic. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_log[1024];

static void say(const char *what) {
  pthread_mutex_lock(&g_log_lock);
  if (g_log[0] != '\0') strcat(g_log, " ");
  strcat(g_log, what);
  pthread_mutex_unlock(&g_log_lock);
}

/* Prints the case's log and its target's exit value, then clears the log. */
static void report(const char *name, void *ret) {
  printf("%-12s %-9s %s\n", name, ret == PTHREAD_CANCELED ? "CANCELED" : "returned", g_log);
  g_log[0] = '\0';
}

static void cleanup_say(void *what) { say(what); }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void far_deadline(struct timespec *ts) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += 60;
}

/* Posted by a target just before it blocks; the canceller then lets it
 * block (a request that arrives earlier is acted on at the same point). */
static sem_t g_ready;

static void cancel_when_ready(pthread_t t) {
  sem_wait(&g_ready);
  usleep(20000);
  if (pthread_cancel(t) != 0) printf("pthread_cancel failed\n");
}

/* ---------------------------------------------------- condition wait */

static pthread_mutex_t g_mutex;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

static void unlock_mutex(void *unused) {
  (void)unused;
  /* An error-checking mutex: 0 only if the waiter holds it again. */
  int err = pthread_mutex_unlock(&g_mutex);
  say(err == 0 ? "cleanup-unlocked-held-mutex" : "cleanup-mutex-NOT-held");
}

static void *cond_waiter(void *timed) {
  pthread_mutex_lock(&g_mutex);
  pthread_cleanup_push(unlock_mutex, NULL);
  sem_post(&g_ready);
  for (;;) {
    if (timed) {
      struct timespec ts;
      far_deadline(&ts);
      pthread_cond_timedwait(&g_cond, &g_mutex, &ts);
    } else {
      pthread_cond_wait(&g_cond, &g_mutex);
    }
  }
  pthread_cleanup_pop(0);
  return NULL;
}

static void cond_case(const char *name, void *timed) {
  pthread_t t;
  void *ret;
  pthread_create(&t, NULL, cond_waiter, timed);
  cancel_when_ready(t);
  pthread_join(t, &ret);
  /* The handler left the mutex free, and the condvar still works. */
  if (pthread_mutex_trylock(&g_mutex) == 0) {
    say("mutex-free");
    pthread_mutex_unlock(&g_mutex);
  }
  pthread_cond_broadcast(&g_cond);
  report(name, ret);
}

/* ------------------------------------------------------------- sleeps */

static void *sleeper(void *kind) {
  pthread_cleanup_push(cleanup_say, "cleanup");
  sem_post(&g_ready);
  switch ((int)(long)kind) {
    case 0:
      sleep(30);
      break;
    case 1:
      usleep(30 * 1000 * 1000);
      break;
    case 2: {
      struct timespec ts = {30, 0};
      nanosleep(&ts, NULL);
      break;
    }
    default: {
      struct timespec ts = {30, 0};
      clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
      break;
    }
  }
  say("slept-30s");
  pthread_cleanup_pop(0);
  return NULL;
}

static void sleep_case(const char *name, long kind) {
  pthread_t t;
  void *ret;
  double start = now_s();
  pthread_create(&t, NULL, sleeper, (void *)kind);
  cancel_when_ready(t);
  pthread_join(t, &ret);
  say(now_s() - start < 10 ? "promptly" : "LATE");
  report(name, ret);
}

/* --------------------------------------------------------------- join */

static sem_t g_release;

static void *joinee(void *unused) {
  (void)unused;
  sem_wait(&g_release);
  return (void *)42;
}

static void *joiner(void *target) {
  void *ret;
  pthread_cleanup_push(cleanup_say, "cleanup");
  sem_post(&g_ready);
  pthread_join(*(pthread_t *)target, &ret);
  say("joined");
  pthread_cleanup_pop(0);
  return NULL;
}

static void join_case(void) {
  pthread_t target, t;
  void *ret, *target_ret;
  pthread_create(&target, NULL, joinee, NULL);
  pthread_create(&t, NULL, joiner, &target);
  cancel_when_ready(t);
  pthread_join(t, &ret);
  /* The cancelled join left the target joinable. */
  sem_post(&g_release);
  if (pthread_join(target, &target_ret) == 0 && target_ret == (void *)42)
    say("target-still-joinable");
  report("join", ret);
}

/* ----------------------------------------------------- semaphore wait */

static sem_t g_empty;

static void *sem_waiter(void *timed) {
  pthread_cleanup_push(cleanup_say, "cleanup");
  sem_post(&g_ready);
  if (timed) {
    struct timespec ts;
    far_deadline(&ts);
    sem_timedwait(&g_empty, &ts);
  } else {
    sem_wait(&g_empty);
  }
  say("got-unit");
  pthread_cleanup_pop(0);
  return NULL;
}

static void sem_case(const char *name, void *timed) {
  pthread_t t;
  void *ret;
  int value = -1;
  pthread_create(&t, NULL, sem_waiter, timed);
  cancel_when_ready(t);
  pthread_join(t, &ret);
  sem_getvalue(&g_empty, &value);
  if (value == 0) say("value-0");
  report(name, ret);
}

/* ------------------------------------------------ pthread_testcancel */

static volatile unsigned long g_spins;

static void *spinner(void *unused) {
  (void)unused;
  pthread_cleanup_push(cleanup_say, "cleanup");
  sem_post(&g_ready);
  for (;;) {
    g_spins++;
    pthread_testcancel();
  }
  pthread_cleanup_pop(0);
  return NULL;
}

static void testcancel_case(void) {
  pthread_t t;
  void *ret;
  pthread_create(&t, NULL, spinner, NULL);
  cancel_when_ready(t);
  pthread_join(t, &ret);
  report("testcancel", ret);
}

/* ---------------------------------------------------- disabled state */

static sem_t g_cancelled;

static void *disabled(void *unused) {
  int old;
  (void)unused;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
  pthread_cleanup_push(cleanup_say, "cleanup");
  sem_post(&g_ready);
  sem_wait(&g_cancelled); /* a cancellation point, but disabled */
  usleep(1000);
  pthread_testcancel();
  say("alive-while-disabled");
  pthread_setcancelstate(old, &old);
  say(old == PTHREAD_CANCEL_DISABLE ? "enabled" : "enabled-BAD-OLD");
  pthread_testcancel();
  say("NOT-CANCELLED");
  pthread_cleanup_pop(0);
  return NULL;
}

static void disabled_case(void) {
  pthread_t t;
  void *ret;
  pthread_create(&t, NULL, disabled, NULL);
  sem_wait(&g_ready);
  pthread_cancel(t);
  sem_post(&g_cancelled);
  pthread_join(t, &ret);
  report("disabled", ret);
}

/* ------------------------ handler order, pop(1), key destructors */

static pthread_key_t g_key;

static void key_dtor(void *value) { say(value); }

static void *ordered(void *unused) {
  (void)unused;
  pthread_setspecific(g_key, "key-destructor");
  pthread_cleanup_push(cleanup_say, "h1");
  pthread_cleanup_push(cleanup_say, "h2");
  pthread_cleanup_push(cleanup_say, "h3");
  pthread_cleanup_pop(1); /* runs h3 now */
  pthread_cleanup_push(cleanup_say, "h4");
  pthread_cancel(pthread_self()); /* deferred: acted on below */
  say("after-self-cancel");
  usleep(1000);
  say("NOT-CANCELLED");
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  return NULL;
}

static void order_case(void) {
  pthread_t t;
  void *ret;
  pthread_key_create(&g_key, key_dtor);
  pthread_create(&t, NULL, ordered, NULL);
  pthread_join(t, &ret);
  report("order+key", ret);
  pthread_key_delete(g_key);
}

/* -------------------------------------- pthread_exit runs handlers too */

static void *exiter(void *unused) {
  (void)unused;
  pthread_cleanup_push(cleanup_say, "h1");
  pthread_cleanup_push(cleanup_say, "h2");
  pthread_exit((void *)9);
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  return NULL;
}

static void exit_case(void) {
  pthread_t t;
  void *ret;
  pthread_create(&t, NULL, exiter, NULL);
  pthread_join(t, &ret);
  if (ret == (void *)9) say("value-9");
  report("pthread_exit", ret);
}

/* ----------------------------------------- a thread that has exited */

static void *quick(void *unused) {
  (void)unused;
  sem_post(&g_ready);
  return (void *)5;
}

static void exited_case(void) {
  pthread_t t;
  void *ret;
  pthread_create(&t, NULL, quick, NULL);
  sem_wait(&g_ready);
  usleep(20000);
  printf("cancel of an exited thread: %d\n", pthread_cancel(t));
  pthread_join(t, &ret);
  if (ret == (void *)5) say("value-5");
  report("exited", ret);
}

int main(void) {
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_init(&g_mutex, &ma);
  sem_init(&g_ready, 0, 0);
  sem_init(&g_release, 0, 0);
  sem_init(&g_empty, 0, 0);
  sem_init(&g_cancelled, 0, 0);

  cond_case("cond_wait", NULL);
  cond_case("cond_timed", (void *)1);
  sleep_case("sleep", 0);
  sleep_case("usleep", 1);
  sleep_case("nanosleep", 2);
  sleep_case("clock_nano", 3);
  join_case();
  sem_case("sem_wait", NULL);
  sem_case("sem_timed", (void *)1);
  testcancel_case();
  disabled_case();
  order_case();
  exit_case();
  exited_case();
  return 0;
}

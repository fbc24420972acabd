/* __thread variables and errno stay per thread across yields and
 * preemption: each thread sets its own values, yields many times (and
 * spins past a preemption tick), and checks them. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NTHREADS 16

static __thread long tls_value;
static __thread char tls_buf[64] = "initial";
static int failures;

static void spin_ms(int ms) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  do clock_gettime(CLOCK_MONOTONIC, &b);
  while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
}

static void *worker(void *arg) {
  long id = (long)arg;
  if (tls_value != 0 || tls_buf[0] != 'i') __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
  tls_value = id * 1000;
  snprintf(tls_buf, sizeof tls_buf, "thread %ld", id);
  errno = (int)id + 100;
  for (int i = 0; i < 200; i++) {
    sched_yield();
    if (i % 50 == 0) spin_ms(12); /* long enough for a 10 ms preemption tick */
    char expect[64];
    snprintf(expect, sizeof expect, "thread %ld", id);
    int saved = errno;
    if (tls_value != id * 1000 || saved != (int)id + 100 || __builtin_strcmp(tls_buf, expect) != 0)
      __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
    errno = saved;
  }
  return (void *)(tls_value + errno);
}

int main(void) {
  pthread_t t[NTHREADS];
  tls_value = -1;
  errno = 7;
  for (long i = 0; i < NTHREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  long sum = 0;
  for (int i = 0; i < NTHREADS; i++) {
    void *r;
    pthread_join(t[i], &r);
    sum += (long)r;
  }
  printf("sum %ld, failures %d, main tls %ld, main errno %d\n", sum, failures, tls_value, errno);
  return failures != 0;
}

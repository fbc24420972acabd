/* Per-thread CPU time under the shim, as natively: a plain pthread program
 * (no parlib). With busy threads on every CPU (under the shim: on every
 * vcore, so they share the sleeper's), a thread that sleeps 200 ms reads
 * almost no CPU time from CLOCK_THREAD_CPUTIME_ID, from the clock
 * pthread_getcpuclockid gives for it (read by main) and from
 * getrusage(RUSAGE_THREAD); a spinning thread's CPU time grows, never
 * faster than the wall clock; clock_getres says 1 ns; main's CPU time
 * includes its own spinning; times() and CLOCK_PROCESS_CPUTIME_ID count
 * the whole process.
 *
 * Output: the results only, identical natively and under the shim. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/times.h>
#include <time.h>
#include <unistd.h>

#define SLACK_NS 20000000LL /* 20 ms */

static atomic_int stop_busy;
static atomic_int sleeper_ready, sleeper_go;

static int64_t ns(clockid_t c) {
  struct timespec ts;
  if (clock_gettime(c, &ts) != 0) return -1;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
  }
  return NULL;
}

static int64_t sleep_cpu, sleep_rusage_ns;

static void *sleeper(void *arg) {
  (void)arg;
  atomic_store(&sleeper_ready, 1);
  while (!atomic_load(&sleeper_go)) sched_yield();
  int64_t before = ns(CLOCK_THREAD_CPUTIME_ID);
  struct rusage r0, r1;
  getrusage(RUSAGE_THREAD, &r0);
  struct timespec d = {0, 200000000};
  nanosleep(&d, NULL);
  sleep_cpu = ns(CLOCK_THREAD_CPUTIME_ID) - before;
  getrusage(RUSAGE_THREAD, &r1);
  sleep_rusage_ns = ((int64_t)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1000000 +
                     (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
                     (int64_t)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1000000 +
                     (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec)) *
                    1000;
  return NULL;
}

static int spin_reached, spin_faster_than_wall;

static void *spinner(void *arg) {
  (void)arg;
  int64_t c0 = ns(CLOCK_THREAD_CPUTIME_ID), w0 = ns(CLOCK_MONOTONIC);
  int64_t c = c0, w = w0;
  /* 50 ms of its own CPU time, within 20 s of wall time. */
  while (c - c0 < 50000000 && w - w0 < 20000000000LL) {
    for (volatile int k = 0; k < 10000; ++k) {
    }
    c = ns(CLOCK_THREAD_CPUTIME_ID);
    w = ns(CLOCK_MONOTONIC);
    if (c - c0 > w - w0 + 1000000) spin_faster_than_wall = 1;
  }
  spin_reached = c - c0 >= 50000000;
  return NULL;
}

int main(void) {
  struct timespec res = {0, 0};
  int rr = clock_getres(CLOCK_THREAD_CPUTIME_ID, &res);
  printf("clock_getres(CLOCK_THREAD_CPUTIME_ID): %d %ld ns\n", rr, res.tv_nsec);

  /* main's own clock counts main's spinning. */
  int64_t m0 = ns(CLOCK_THREAD_CPUTIME_ID);
  for (volatile long k = 0; k < 20000000; ++k) {
  }
  printf("main's CPU time grows while it spins: %s\n",
         ns(CLOCK_THREAD_CPUTIME_ID) > m0 ? "yes" : "no");

  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int nbusy = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (int)ncpu;
  pthread_t busies[64], sl, sp;
  if (pthread_create(&sl, NULL, sleeper, NULL) != 0) return 3;
  while (!atomic_load(&sleeper_ready)) sched_yield();
  struct tms t0, t1;
  times(&t0);
  int64_t p0 = ns(CLOCK_PROCESS_CPUTIME_ID);
  for (int i = 0; i < nbusy; ++i)
    if (pthread_create(&busies[i], NULL, busy, NULL) != 0) return 3;
  clockid_t sl_clock;
  int r = pthread_getcpuclockid(sl, &sl_clock);
  int64_t sl0 = ns(sl_clock);
  struct timespec sl_res = {0, 0};
  int sl_rr = clock_getres(sl_clock, &sl_res);
  atomic_store(&sleeper_go, 1);
  pthread_join(sl, NULL);
  printf("pthread_getcpuclockid(sleeper): %d\n", r);
  printf("sleeper's CPU time over a 200 ms sleep < 20 ms: %s\n",
         sleep_cpu >= 0 && sleep_cpu < SLACK_NS ? "yes" : "no");
  printf("sleeper's getrusage(RUSAGE_THREAD) over the sleep < 20 ms: %s\n",
         sleep_rusage_ns >= 0 && sleep_rusage_ns < SLACK_NS ? "yes" : "no");
  printf("sleeper's clock read by main: %s, resolution %d %ld ns\n", sl0 >= 0 ? "ok" : "failed",
         sl_rr, sl_res.tv_nsec);

  if (pthread_create(&sp, NULL, spinner, NULL) != 0) return 3;
  clockid_t sp_clock;
  pthread_getcpuclockid(sp, &sp_clock);
  int64_t sp_first = ns(sp_clock);
  pthread_join(sp, NULL);
  printf("spinner reached 50 ms of CPU time: %s, ran faster than the wall clock: %s\n",
         spin_reached ? "yes" : "no", spin_faster_than_wall ? "yes" : "no");
  printf("spinner's clock read by main: %s\n", sp_first >= 0 ? "ok" : "failed");

  atomic_store(&stop_busy, 1);
  for (int i = 0; i < nbusy; ++i) pthread_join(busies[i], NULL);
  times(&t1);
  long hz = sysconf(_SC_CLK_TCK);
  clock_t ticks = (t1.tms_utime + t1.tms_stime) - (t0.tms_utime + t0.tms_stime);
  printf("times() counts the busy threads (>= 100 ms): %s\n",
         ticks * 1000 / hz >= 100 ? "yes" : "no");
  printf("CLOCK_PROCESS_CPUTIME_ID counts them too: %s\n",
         ns(CLOCK_PROCESS_CPUTIME_ID) - p0 >= 100000000 ? "yes" : "no");
  return 0;
}

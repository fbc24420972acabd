/* 100,000 threads alive at once, each blocked on a condition variable,
 * with guard size 0 (pooled stacks); then all are woken and joined.
 * Prints the peak resident set size. Upthread only: NPTL cannot have this
 * many threads here (pid_max is 32768). */
#include "common.h"

#define THREADS 100000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static pthread_cond_t all_waiting = PTHREAD_COND_INITIALIZER;
static int waiting, released;
static long finished;

static void *worker(void *arg) {
  CHECK(pthread_mutex_lock(&lock));
  if (++waiting == THREADS) CHECK(pthread_cond_signal(&all_waiting));
  while (!released) CHECK(pthread_cond_wait(&go, &lock));
  ++finished;
  CHECK(pthread_mutex_unlock(&lock));
  return arg;
}

static long peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

int main(void) {
  static pthread_t t[THREADS];
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setguardsize(&attr, 0);
  pthread_attr_setstacksize(&attr, 16 * 1024);
  for (long i = 0; i < THREADS; ++i) CHECK(pthread_create(&t[i], &attr, worker, (void *)i));
  CHECK(pthread_mutex_lock(&lock));
  while (waiting < THREADS) CHECK(pthread_cond_wait(&all_waiting, &lock));
  printf("%d threads blocked on one condition variable\n", waiting);
  released = 1;
  CHECK(pthread_cond_broadcast(&go));
  CHECK(pthread_mutex_unlock(&lock));
  long sum = 0;
  for (long i = 0; i < THREADS; ++i) {
    void *r;
    CHECK(pthread_join(t[i], &r));
    sum += (long)r;
  }
  printf("joined %ld, sum %s, peak RSS %ld MiB\n", finished,
         sum == (long)THREADS * (THREADS - 1) / 2 ? "ok" : "WRONG", peak_rss_kb() / 1024);
  return finished == THREADS ? 0 : 1;
}

/* Parallel sum in phases separated by barriers; one serial thread per phase. */
#include "common.h"

#define THREADS 8
#define N 800000
#define PHASES 20

static long data[N];
static long partial[THREADS];
static long totals[PHASES];
static int serial_count[PHASES];
static pthread_barrier_t barrier;

static void *worker(void *arg) {
  long id = (long)arg;
  for (int phase = 0; phase < PHASES; ++phase) {
    long s = 0;
    for (long i = id; i < N; i += THREADS) s += data[i] * (phase + 1);
    partial[id] = s;
    int r = pthread_barrier_wait(&barrier);
    if (r == PTHREAD_BARRIER_SERIAL_THREAD) {
      long t = 0;
      for (int k = 0; k < THREADS; ++k) t += partial[k];
      totals[phase] = t;
      serial_count[phase]++;
    } else if (r != 0) {
      fprintf(stderr, "barrier: %d\n", r);
      exit(1);
    }
    pthread_barrier_wait(&barrier);
  }
  return NULL;
}

int main(void) {
  for (long i = 0; i < N; ++i) data[i] = i % 1000;
  CHECK(pthread_barrier_init(&barrier, NULL, THREADS));
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; ++i) CHECK(pthread_create(&t[i], NULL, worker, (void *)i));
  for (int i = 0; i < THREADS; ++i) CHECK(pthread_join(t[i], NULL));
  for (int p = 0; p < PHASES; ++p)
    printf("phase %d total %ld serial %d\n", p, totals[p], serial_count[p]);
  CHECK(pthread_barrier_destroy(&barrier));
  return 0;
}

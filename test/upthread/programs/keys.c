/* Thread-specific data with destructors, including a destructor that sets
 * a value again (a second destructor pass), and once. */
#include "common.h"

#define THREADS 16

static pthread_key_t key, key2;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_runs;
static long destroyed, destroyed2;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void make_keys(void);
static void dtor(void *v) {
  pthread_mutex_lock(&lock);
  destroyed += (long)v;
  pthread_mutex_unlock(&lock);
  /* Set key2 again from a destructor: needs another pass. */
  pthread_setspecific(key2, (void *)1);
}
static void dtor2(void *v) {
  pthread_mutex_lock(&lock);
  destroyed2 += (long)v;
  pthread_mutex_unlock(&lock);
}
static void make_keys(void) {
  ++once_runs;
  CHECK(pthread_key_create(&key, dtor));
  CHECK(pthread_key_create(&key2, dtor2));
}

static void *worker(void *arg) {
  CHECK(pthread_once(&once, make_keys));
  CHECK(pthread_setspecific(key, arg));
  sched_yield();
  if (pthread_getspecific(key) != arg) {
    fprintf(stderr, "wrong value\n");
    exit(1);
  }
  return NULL;
}

int main(void) {
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; ++i) CHECK(pthread_create(&t[i], NULL, worker, (void *)(i + 1)));
  for (int i = 0; i < THREADS; ++i) CHECK(pthread_join(t[i], NULL));
  printf("once %d destroyed %ld (expected %d) second pass %ld\n", once_runs, destroyed,
         THREADS * (THREADS + 1) / 2, destroyed2);
  printf("main's value %p\n", pthread_getspecific(key));
  return 0;
}

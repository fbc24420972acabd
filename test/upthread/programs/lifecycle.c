/* 10,000 create/join pairs, detached threads, pthread_exit values, attrs. */
#include "common.h"

static sem_t done;
static long detached_runs;

static void *ret_arg(void *arg) { return arg; }
static void *exits(void *arg) {
  pthread_exit((char *)arg + 1);
  return NULL;
}
static void *detached(void *arg) {
  (void)arg;
  __atomic_fetch_add(&detached_runs, 1, __ATOMIC_RELAXED);
  sem_post(&done);
  return NULL;
}

int main(void) {
  long sum = 0;
  for (long i = 0; i < 10000; ++i) {
    pthread_t t;
    void *r;
    CHECK(pthread_create(&t, NULL, ret_arg, (void *)i));
    CHECK(pthread_join(t, &r));
    sum += (long)r;
  }
  printf("create/join 10000 sum %ld\n", sum);
  pthread_t t;
  void *r;
  CHECK(pthread_create(&t, NULL, exits, (char *)100));
  CHECK(pthread_join(t, &r));
  printf("pthread_exit value %ld\n", (long)(char *)r);
  sem_init(&done, 0, 0);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  for (int i = 0; i < 100; ++i) CHECK(pthread_create(&t, &attr, detached, NULL));
  for (int i = 0; i < 100; ++i) sem_wait(&done);
  int state;
  size_t size;
  pthread_attr_getdetachstate(&attr, &state);
  pthread_attr_getstacksize(&attr, &size);
  printf("detached ran %ld; attr detached %d stack %zu\n", detached_runs,
         state == PTHREAD_CREATE_DETACHED, size);
  printf("join self: %s\n", strerror(pthread_join(pthread_self(), NULL)));
  printf("self equal %d\n", pthread_equal(pthread_self(), pthread_self()) != 0);
  pthread_attr_destroy(&attr);
  return 0;
}

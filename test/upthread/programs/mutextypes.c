/* Recursive and error-checking mutexes, trylock, timedlock, spinlocks,
 * semaphores. */
#include "common.h"
#include <time.h>

static pthread_mutex_t rec, chk;
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static sem_t sem;
static pthread_spinlock_t spin;
static long spin_counter;

static void *other(void *arg) {
  (void)arg;
  printf("unlock recursive from another thread: %s\n", strerror(pthread_mutex_unlock(&rec)));
  printf("unlock errorcheck from another thread: %s\n", strerror(pthread_mutex_unlock(&chk)));
  printf("trylock held mutex: %s\n", strerror(pthread_mutex_trylock(&held)));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 20 * 1000 * 1000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  printf("timedlock held mutex: %s\n", strerror(pthread_mutex_timedlock(&held, &ts)));
  sem_post(&sem);
  return NULL;
}

static void *spinner(void *arg) {
  (void)arg;
  for (int i = 0; i < 100000; ++i) {
    pthread_spin_lock(&spin);
    ++spin_counter;
    pthread_spin_unlock(&spin);
  }
  return NULL;
}

int main(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  CHECK(pthread_mutex_init(&rec, &a));
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  CHECK(pthread_mutex_init(&chk, &a));
  pthread_mutexattr_destroy(&a);
  for (int i = 0; i < 10; ++i) CHECK(pthread_mutex_lock(&rec));
  CHECK(pthread_mutex_lock(&chk));
  printf("relock errorcheck: %s\n", strerror(pthread_mutex_lock(&chk)));
  CHECK(pthread_mutex_lock(&held));
  sem_init(&sem, 0, 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, other, NULL));
  sem_wait(&sem);
  CHECK(pthread_join(t, NULL));
  for (int i = 0; i < 10; ++i) CHECK(pthread_mutex_unlock(&rec));
  printf("unlock recursive once too often: %s\n", strerror(pthread_mutex_unlock(&rec)));
  CHECK(pthread_mutex_unlock(&chk));
  CHECK(pthread_mutex_unlock(&held));
  int v = -1;
  sem_getvalue(&sem, &v);
  printf("sem value %d trywait %d\n", v, sem_trywait(&sem));
  pthread_spin_init(&spin, 0);
  pthread_t s[4];
  for (int i = 0; i < 4; ++i) CHECK(pthread_create(&s[i], NULL, spinner, NULL));
  for (int i = 0; i < 4; ++i) CHECK(pthread_join(s[i], NULL));
  printf("spin counter %ld\n", spin_counter);
  return 0;
}

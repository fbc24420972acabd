/* Producer/consumer over a bounded buffer with two condition variables. */
#include "common.h"

#define CAPACITY 16
#define PRODUCERS 4
#define CONSUMERS 4
#define ITEMS_PER_PRODUCER 50000

static long buffer[CAPACITY];
static int head, count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;

static void *producer(void *arg) {
  long base = (long)arg * ITEMS_PER_PRODUCER;
  for (long i = 0; i < ITEMS_PER_PRODUCER; ++i) {
    CHECK(pthread_mutex_lock(&lock));
    while (count == CAPACITY) CHECK(pthread_cond_wait(&not_full, &lock));
    buffer[(head + count++) % CAPACITY] = base + i + 1;
    CHECK(pthread_cond_signal(&not_empty));
    CHECK(pthread_mutex_unlock(&lock));
  }
  return NULL;
}

static void *consumer(void *arg) {
  long *sum = arg;
  for (long i = 0; i < ITEMS_PER_PRODUCER * PRODUCERS / CONSUMERS; ++i) {
    CHECK(pthread_mutex_lock(&lock));
    while (count == 0) CHECK(pthread_cond_wait(&not_empty, &lock));
    *sum += buffer[head];
    head = (head + 1) % CAPACITY;
    --count;
    CHECK(pthread_cond_signal(&not_full));
    CHECK(pthread_mutex_unlock(&lock));
  }
  return NULL;
}

int main(void) {
  pthread_t p[PRODUCERS], c[CONSUMERS];
  long sums[CONSUMERS] = {0};
  for (long i = 0; i < PRODUCERS; ++i) CHECK(pthread_create(&p[i], NULL, producer, (void *)i));
  for (int i = 0; i < CONSUMERS; ++i) CHECK(pthread_create(&c[i], NULL, consumer, &sums[i]));
  for (int i = 0; i < PRODUCERS; ++i) CHECK(pthread_join(p[i], NULL));
  long total = 0;
  for (int i = 0; i < CONSUMERS; ++i) {
    CHECK(pthread_join(c[i], NULL));
    total += sums[i];
  }
  long n = (long)PRODUCERS * ITEMS_PER_PRODUCER;
  printf("items %ld checksum %ld expected %ld\n", n, total, n * (n + 1) / 2);
  return total == n * (n + 1) / 2 ? 0 : 1;
}

/* Readers and writers: writers rewrite a whole record; readers must never
 * see one half-written. */
#include "common.h"

#define READERS 6
#define WRITERS 2
#define WRITES 20000
#define FIELDS 16

static long record[FIELDS];
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static volatile int writers_done;
static long torn_reads, reads;
static pthread_mutex_t stats = PTHREAD_MUTEX_INITIALIZER;

static void *writer(void *arg) {
  long id = (long)arg;
  for (long i = 0; i < WRITES; ++i) {
    CHECK(pthread_rwlock_wrlock(&rw));
    for (int f = 0; f < FIELDS; ++f) {
      record[f] = id * 1000000 + i;
      if (f == FIELDS / 2) sched_yield(); /* invite a reader in, if the lock let it */
    }
    CHECK(pthread_rwlock_unlock(&rw));
  }
  return NULL;
}

static void *reader(void *arg) {
  (void)arg;
  long torn = 0, n = 0;
  while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE)) {
    CHECK(pthread_rwlock_rdlock(&rw));
    for (int f = 1; f < FIELDS; ++f) torn += record[f] != record[0];
    CHECK(pthread_rwlock_unlock(&rw));
    ++n;
    sched_yield();
  }
  pthread_mutex_lock(&stats);
  torn_reads += torn;
  reads += n;
  pthread_mutex_unlock(&stats);
  return NULL;
}

int main(void) {
  pthread_t r[READERS], w[WRITERS];
  for (int i = 0; i < READERS; ++i) CHECK(pthread_create(&r[i], NULL, reader, NULL));
  for (long i = 0; i < WRITERS; ++i) CHECK(pthread_create(&w[i], NULL, writer, (void *)i));
  for (int i = 0; i < WRITERS; ++i) CHECK(pthread_join(w[i], NULL));
  __atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < READERS; ++i) CHECK(pthread_join(r[i], NULL));
  printf("writes %d torn reads %ld readers saw something %s\n", WRITERS * WRITES, torn_reads,
         reads > 0 ? "yes" : "no");
  return torn_reads == 0 ? 0 : 1;
}

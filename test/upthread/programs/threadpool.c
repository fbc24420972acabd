/* A thread pool: workers take tasks from a queue guarded by a mutex and
 * two condition variables; the submitter waits for completion. */
#include "common.h"

#define WORKERS 4
#define TASKS 20000

static int queue[TASKS];
static int q_head, q_tail, done_count, shutting_down;
static long results[TASKS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t finished = PTHREAD_COND_INITIALIZER;

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    CHECK(pthread_mutex_lock(&lock));
    while (q_head == q_tail && !shutting_down) CHECK(pthread_cond_wait(&work, &lock));
    if (q_head == q_tail) {
      CHECK(pthread_mutex_unlock(&lock));
      return NULL;
    }
    int task = queue[q_head++];
    CHECK(pthread_mutex_unlock(&lock));
    long r = 0;
    for (int k = 0; k <= task % 100; ++k) r += (long)task * k;
    CHECK(pthread_mutex_lock(&lock));
    results[task] = r;
    if (++done_count == TASKS) CHECK(pthread_cond_signal(&finished));
    CHECK(pthread_mutex_unlock(&lock));
  }
}

int main(void) {
  pthread_t w[WORKERS];
  for (int i = 0; i < WORKERS; ++i) CHECK(pthread_create(&w[i], NULL, worker, NULL));
  for (int t = 0; t < TASKS; ++t) {
    CHECK(pthread_mutex_lock(&lock));
    queue[q_tail++] = t;
    CHECK(pthread_cond_signal(&work));
    CHECK(pthread_mutex_unlock(&lock));
  }
  CHECK(pthread_mutex_lock(&lock));
  while (done_count < TASKS) CHECK(pthread_cond_wait(&finished, &lock));
  shutting_down = 1;
  CHECK(pthread_cond_broadcast(&work));
  CHECK(pthread_mutex_unlock(&lock));
  for (int i = 0; i < WORKERS; ++i) CHECK(pthread_join(w[i], NULL));
  long sum = 0;
  for (int t = 0; t < TASKS; ++t) sum += results[t];
  printf("tasks %d sum %ld\n", TASKS, sum);
  return 0;
}

/* Lost wake-ups between the two kinds of waiters of the shim's objects:
 * under the shim a thread made by pthread_create is a upthread, whose
 * waits block only it (parlib's futex), while a thread glibc made itself
 * (here: the SIGEV_THREAD timer's helper thread and the threads it
 * creates) waits in the kernel. Both kinds wait on the same mutexes,
 * condition variables, semaphores, barriers and once controls, many
 * times, with busy threads on every CPU. A wake-up that reaches neither
 * waiter hangs the program (the shim's kernel waits have no time cap),
 * which alarm() turns into death by SIGALRM.
 *
 * Output: counts only, identical natively and under the shim. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KINDS 2
#define PER_KIND 3
#define N (KINDS * PER_KIND) /* threads in the rings: even ids upthreads, odd glibc's */
#define ROUNDS 50
#define COUNTS 20000
#define ONCES 300

static atomic_int stop_busy;
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_cv[N];
static int turn;
static sem_t ring_sem[N];
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static pthread_barrier_t phase;
static pthread_once_t onces[ONCES];
static atomic_int once_runs;
static sem_t glibc_started, glibc_done;

/* Keeps a CPU busy, yielding now and then: under the shim a pure spinner
 * would hold its vcore for a whole preemption period (10 ms) before a
 * woken thread queued behind it runs, and the rounds would take minutes. */
static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
    for (int i = 0; i < 2000; ++i) __asm__ volatile("pause");
    sched_yield();
  }
  return NULL;
}

static void once_init(void) {
  /* Long enough that the others find it running and wait. */
  for (int i = 0; i < 200; ++i) __asm__ volatile("pause");
  atomic_fetch_add(&once_runs, 1);
}

static void *member(void *arg) {
  int id = (int)(long)arg;
  int next = (id + 1) % N;
  /* Condition variables: a token goes round the ring; each thread waits
   * on its own condvar and signals exactly the next one. */
  for (int r = 0; r < ROUNDS; ++r) {
    pthread_mutex_lock(&ring_lock);
    while (turn % N != id) pthread_cond_wait(&ring_cv[id], &ring_lock);
    turn++;
    pthread_cond_signal(&ring_cv[next]);
    pthread_mutex_unlock(&ring_lock);
  }
  pthread_barrier_wait(&phase);
  /* Semaphores: the same ring with posts. */
  for (int r = 0; r < ROUNDS; ++r) {
    sem_wait(&ring_sem[id]);
    sem_post(&ring_sem[next]);
  }
  pthread_barrier_wait(&phase);
  /* A contended mutex. */
  for (int i = 0; i < COUNTS; ++i) {
    pthread_mutex_lock(&count_lock);
    counter++;
    pthread_mutex_unlock(&count_lock);
  }
  pthread_barrier_wait(&phase);
  /* Once controls that everyone races for. */
  for (int i = 0; i < ONCES; ++i) pthread_once(&onces[i], once_init);
  pthread_barrier_wait(&phase);
  return NULL;
}

/* Runs on the timer's helper thread, which glibc created itself: the
 * threads it creates are glibc threads under the shim too. */
static void glibc_threads(union sigval v) {
  (void)v;
  pthread_t t[PER_KIND];
  for (int i = 0; i < PER_KIND; ++i)
    if (pthread_create(&t[i], NULL, member, (void *)(long)(2 * i + 1)) != 0) exit(3);
  sem_post(&glibc_started);
  for (int i = 0; i < PER_KIND; ++i) pthread_join(t[i], NULL);
  sem_post(&glibc_done);
}

int main(void) {
  alarm(60);
  for (int i = 0; i < N; ++i) {
    pthread_cond_init(&ring_cv[i], NULL);
    sem_init(&ring_sem[i], 0, i == 0);
  }
  for (int i = 0; i < ONCES; ++i) onces[i] = PTHREAD_ONCE_INIT;
  pthread_barrier_init(&phase, NULL, N);
  sem_init(&glibc_started, 0, 0);
  sem_init(&glibc_done, 0, 0);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int nb = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (int)ncpu;
  pthread_t b[64];
  for (int i = 0; i < nb; ++i) pthread_create(&b[i], NULL, busy, NULL);

  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD;
  sev.sigev_notify_function = glibc_threads;
  timer_t timer;
  struct itimerspec its = {{0, 0}, {0, 1000}};
  if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0 ||
      timer_settime(timer, 0, &its, NULL) != 0) {
    perror("timer");
    return 3;
  }
  pthread_t t[PER_KIND];
  for (int i = 0; i < PER_KIND; ++i) pthread_create(&t[i], NULL, member, (void *)(long)(2 * i));
  sem_wait(&glibc_started);
  for (int i = 0; i < PER_KIND; ++i) pthread_join(t[i], NULL);
  sem_wait(&glibc_done);
  atomic_store(&stop_busy, 1);
  for (int i = 0; i < nb; ++i) pthread_join(b[i], NULL);
  printf("condvar ring: %d handoffs\n", turn);
  printf("mutex: %ld increments\n", counter);
  printf("once: %d runs\n", atomic_load(&once_runs));
  return 0;
}

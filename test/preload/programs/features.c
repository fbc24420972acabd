/* Every pthread feature the shim replaces, each printing a deterministic
 * line; compare.sh checks the output equals a run without the shim. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 8
#define ITERS 20000

#define CHECK(cond)                                           \
  do {                                                        \
    if (!(cond)) {                                            \
      printf("FAILED %s:%d %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                \
    }                                                         \
  } while (0)

static pthread_mutex_t normal = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t recursive = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t errorcheck = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_mutex_t adaptive = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
static long counter;

static void *mutex_worker(void *arg) {
  pthread_mutex_t *m = arg;
  for (int i = 0; i < ITERS; i++) {
    CHECK(pthread_mutex_lock(m) == 0);
    if (m == &recursive) CHECK(pthread_mutex_lock(m) == 0);
    counter++;
    if (m == &recursive) CHECK(pthread_mutex_unlock(m) == 0);
    CHECK(pthread_mutex_unlock(m) == 0);
  }
  return NULL;
}

static void run_threads(void *(*fn)(void *), void *arg, int n) {
  pthread_t t[64];
  for (int i = 0; i < n; i++) CHECK(pthread_create(&t[i], NULL, fn, arg) == 0);
  for (int i = 0; i < n; i++) CHECK(pthread_join(t[i], NULL) == 0);
}

static void test_mutexes(void) {
  pthread_mutex_t *all[] = {&normal, &recursive, &errorcheck, &adaptive};
  const char *names[] = {"normal", "recursive", "errorcheck", "adaptive"};
  for (int k = 0; k < 4; k++) {
    counter = 0;
    run_threads(mutex_worker, all[k], NTHREADS);
    printf("mutex %s: %ld\n", names[k], counter);
  }
  CHECK(pthread_mutex_lock(&errorcheck) == 0);
  printf("errorcheck relock: %s\n", pthread_mutex_lock(&errorcheck) == EDEADLK ? "EDEADLK" : "?");
  printf("errorcheck trylock: %s\n", pthread_mutex_trylock(&errorcheck) == EBUSY ? "EBUSY" : "?");
  CHECK(pthread_mutex_unlock(&errorcheck) == 0);
  printf("errorcheck unlock unheld: %s\n",
         pthread_mutex_unlock(&errorcheck) == EPERM ? "EPERM" : "?");
  CHECK(pthread_mutex_lock(&recursive) == 0);
  printf("recursive trylock by owner: %d\n", pthread_mutex_trylock(&recursive));
  CHECK(pthread_mutex_unlock(&recursive) == 0 && pthread_mutex_unlock(&recursive) == 0);
  pthread_mutexattr_t a;
  pthread_mutex_t dyn;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  CHECK(pthread_mutex_init(&dyn, &a) == 0);
  CHECK(pthread_mutex_lock(&dyn) == 0);
  printf("dynamic errorcheck relock: %s\n", pthread_mutex_lock(&dyn) == EDEADLK ? "EDEADLK" : "?");
  printf("destroy held: %s\n", pthread_mutex_destroy(&dyn) == EBUSY ? "EBUSY" : "?");
  CHECK(pthread_mutex_unlock(&dyn) == 0 && pthread_mutex_destroy(&dyn) == 0);
  pthread_mutexattr_destroy(&a);
  struct timespec ts;
  CHECK(pthread_mutex_lock(&normal) == 0);
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 20 * 1000 * 1000;
  if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
  printf("timedlock held: %s\n",
         pthread_mutex_timedlock(&normal, &ts) == ETIMEDOUT ? "ETIMEDOUT" : "?");
  CHECK(pthread_mutex_unlock(&normal) == 0);
}

/* Producer/consumer on a condition variable. */
#define QSIZE 16
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notfull = PTHREAD_COND_INITIALIZER, notempty = PTHREAD_COND_INITIALIZER;
static int queue[QSIZE], qhead, qcount;
static long consumed_sum;

static void *producer(void *arg) {
  (void)arg;
  for (int i = 1; i <= ITERS; i++) {
    pthread_mutex_lock(&qlock);
    while (qcount == QSIZE) pthread_cond_wait(&notfull, &qlock);
    queue[(qhead + qcount++) % QSIZE] = i;
    pthread_cond_signal(&notempty);
    pthread_mutex_unlock(&qlock);
  }
  return NULL;
}
static void *consumer(void *arg) {
  (void)arg;
  for (int i = 0; i < ITERS; i++) {
    pthread_mutex_lock(&qlock);
    while (qcount == 0) pthread_cond_wait(&notempty, &qlock);
    consumed_sum += queue[qhead];
    qhead = (qhead + 1) % QSIZE;
    qcount--;
    pthread_cond_signal(&notfull);
    pthread_mutex_unlock(&qlock);
  }
  return NULL;
}

static void test_condvars(void) {
  pthread_t p[4], c[4];
  for (int i = 0; i < 4; i++) {
    CHECK(pthread_create(&p[i], NULL, producer, NULL) == 0);
    CHECK(pthread_create(&c[i], NULL, consumer, NULL) == 0);
  }
  for (int i = 0; i < 4; i++) pthread_join(p[i], NULL), pthread_join(c[i], NULL);
  printf("condvar sum: %ld\n", consumed_sum);
  pthread_condattr_t ca;
  pthread_cond_t mono;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  CHECK(pthread_cond_init(&mono, &ca) == 0);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_nsec += 20 * 1000 * 1000;
  if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
  pthread_mutex_lock(&qlock);
  int err;
  do err = pthread_cond_timedwait(&mono, &qlock, &ts);
  while (err == 0);
  printf("cond timedwait (monotonic): %s\n", err == ETIMEDOUT ? "ETIMEDOUT" : "?");
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_nsec += 10 * 1000 * 1000;
  if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
  do err = pthread_cond_clockwait(&notempty, &qlock, CLOCK_MONOTONIC, &ts);
  while (err == 0);
  printf("cond clockwait: %s\n", err == ETIMEDOUT ? "ETIMEDOUT" : "?");
  pthread_mutex_unlock(&qlock);
  CHECK(pthread_cond_destroy(&mono) == 0);
  /* Broadcast: all waiters leave. */
}

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static long shared_data[4];
static void *rw_worker(void *arg) {
  long id = (long)arg;
  for (int i = 0; i < ITERS / 4; i++) {
    if (i % 8 == 0) {
      pthread_rwlock_wrlock(&rw);
      for (int k = 0; k < 4; k++) shared_data[k]++;
      pthread_rwlock_unlock(&rw);
    } else {
      pthread_rwlock_rdlock(&rw);
      for (int k = 1; k < 4; k++) CHECK(shared_data[k] == shared_data[0]);
      pthread_rwlock_unlock(&rw);
    }
  }
  (void)id;
  return NULL;
}
static void test_rwlock(void) {
  pthread_t t[NTHREADS];
  for (long i = 0; i < NTHREADS; i++) CHECK(pthread_create(&t[i], NULL, rw_worker, (void *)i) == 0);
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  printf("rwlock writes: %ld\n", shared_data[0]);
  CHECK(pthread_rwlock_rdlock(&rw) == 0);
  printf("rwlock trywrlock while read: %s\n",
         pthread_rwlock_trywrlock(&rw) == EBUSY ? "EBUSY" : "?");
  printf("rwlock tryrdlock while read: %d\n", pthread_rwlock_tryrdlock(&rw));
  pthread_rwlock_unlock(&rw);
  pthread_rwlock_unlock(&rw);
  CHECK(pthread_rwlock_wrlock(&rw) == 0);
  printf("rwlock wrlock again: %s\n", pthread_rwlock_wrlock(&rw) == EDEADLK ? "EDEADLK" : "?");
  pthread_rwlock_unlock(&rw);
}

static pthread_barrier_t barrier;
static int serial_count, phase_data[NTHREADS];
static pthread_spinlock_t spin;
static long spin_counter;
static void *barrier_worker(void *arg) {
  long id = (long)arg;
  for (int round = 0; round < 100; round++) {
    phase_data[id] = round;
    int r = pthread_barrier_wait(&barrier);
    if (r == PTHREAD_BARRIER_SERIAL_THREAD) {
      serial_count++;
      for (int k = 0; k < NTHREADS; k++) CHECK(phase_data[k] == round);
    } else {
      CHECK(r == 0);
    }
    pthread_barrier_wait(&barrier);
    pthread_spin_lock(&spin);
    spin_counter++;
    pthread_spin_unlock(&spin);
  }
  return NULL;
}
static void test_barrier_spin(void) {
  CHECK(pthread_barrier_init(&barrier, NULL, NTHREADS) == 0);
  CHECK(pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE) == 0);
  pthread_t t[NTHREADS];
  for (long i = 0; i < NTHREADS; i++)
    CHECK(pthread_create(&t[i], NULL, barrier_worker, (void *)i) == 0);
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  printf("barrier serial threads: %d, spin counter: %ld\n", serial_count, spin_counter);
  printf("barrier init 0: %s\n",
         pthread_barrier_init(&barrier, NULL, 0) == EINVAL ? "EINVAL" : "?");
  CHECK(pthread_barrier_destroy(&barrier) == 0);
  CHECK(pthread_spin_destroy(&spin) == 0);
}

static pthread_key_t key;
static int destructor_calls;
static pthread_mutex_t dlock = PTHREAD_MUTEX_INITIALIZER;
static void key_dtor(void *v) {
  pthread_mutex_lock(&dlock);
  destructor_calls++;
  pthread_mutex_unlock(&dlock);
  free(v);
}
static void *key_worker(void *arg) {
  long *v = malloc(sizeof *v);
  *v = (long)arg;
  CHECK(pthread_getspecific(key) == NULL);
  CHECK(pthread_setspecific(key, v) == 0);
  for (int i = 0; i < 100; i++) {
    sched_yield();
    CHECK(*(long *)pthread_getspecific(key) == (long)arg);
  }
  return NULL;
}
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_calls;
static void once_init(void) { once_calls++; }
static void *once_worker(void *arg) {
  pthread_once(&once, once_init);
  return arg;
}
static void test_keys_once(void) {
  CHECK(pthread_key_create(&key, key_dtor) == 0);
  pthread_t t[NTHREADS];
  for (long i = 0; i < NTHREADS; i++)
    CHECK(pthread_create(&t[i], NULL, key_worker, (void *)i) == 0);
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  printf("key destructor calls: %d\n", destructor_calls);
  CHECK(pthread_key_delete(key) == 0);
  run_threads(once_worker, NULL, NTHREADS);
  printf("once calls: %d\n", once_calls);
}

static sem_t items, slots;
static long sem_sum;
static void *sem_producer(void *arg) {
  (void)arg;
  for (int i = 1; i <= 1000; i++) {
    sem_wait(&slots);
    __atomic_add_fetch(&sem_sum, i, __ATOMIC_RELAXED);
    sem_post(&items);
  }
  return NULL;
}
static void *sem_consumer(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) {
    sem_wait(&items);
    sem_post(&slots);
  }
  return NULL;
}
static void test_semaphores(void) {
  CHECK(sem_init(&items, 0, 0) == 0 && sem_init(&slots, 0, 4) == 0);
  pthread_t t[8];
  for (int i = 0; i < 4; i++) {
    pthread_create(&t[2 * i], NULL, sem_producer, NULL);
    pthread_create(&t[2 * i + 1], NULL, sem_consumer, NULL);
  }
  for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
  int v = -1;
  sem_getvalue(&slots, &v);
  printf("sem sum: %ld, slots: %d\n", sem_sum, v);
  errno = 0;
  int rc = sem_trywait(&items);
  printf("sem trywait empty: %d errno %s\n", rc, errno == EAGAIN ? "EAGAIN" : "?");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 10 * 1000 * 1000;
  if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
  errno = 0;
  rc = sem_timedwait(&items, &ts);
  printf("sem timedwait: %d errno %s\n", rc, errno == ETIMEDOUT ? "ETIMEDOUT" : "?");
  sem_destroy(&items);
  sem_destroy(&slots);
}

static pthread_t seen[NTHREADS];
static void *self_worker(void *arg) {
  long i = (long)arg;
  seen[i] = pthread_self();
  char name[16];
  snprintf(name, sizeof name, "worker-%ld", i);
  CHECK(pthread_setname_np(pthread_self(), name) == 0);
  char got[16];
  CHECK(pthread_getname_np(pthread_self(), got, sizeof got) == 0);
  CHECK(strcmp(got, name) == 0);
  pthread_attr_t a;
  size_t size = 0;
  CHECK(pthread_getattr_np(pthread_self(), &a) == 0);
  CHECK(pthread_attr_getstacksize(&a, &size) == 0);
  void *addr;
  CHECK(pthread_attr_getstack(&a, &addr, &size) == 0);
  char local;
  CHECK((char *)addr <= &local && &local < (char *)addr + size);
  pthread_attr_destroy(&a);
  cpu_set_t set;
  CHECK(pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0);
  CHECK(pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0);
  return (void *)(i * 10);
}
static volatile sig_atomic_t got_usr2;
static void on_usr2(int sig) {
  (void)sig;
  got_usr2 = 1;
}
static void *kill_target(void *arg) {
  (void)arg;
  while (!got_usr2) sched_yield();
  return NULL;
}
static void *detached(void *arg) {
  sem_post(arg);
  return NULL;
}
static void test_threads(void) {
  pthread_t t[NTHREADS];
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 256 * 1024);
  for (long i = 0; i < NTHREADS; i++) CHECK(pthread_create(&t[i], &a, self_worker, (void *)i) == 0);
  pthread_attr_destroy(&a);
  long sum = 0;
  for (int i = 0; i < NTHREADS; i++) {
    void *r;
    CHECK(pthread_join(t[i], &r) == 0);
    sum += (long)r;
    CHECK(pthread_equal(t[i], seen[i]));
    CHECK(!pthread_equal(t[i], pthread_self()));
  }
  int distinct = 1;
  for (int i = 0; i < NTHREADS; i++)
    for (int j = i + 1; j < NTHREADS; j++)
      if (pthread_equal(seen[i], seen[j])) distinct = 0;
  printf("join values: %ld, distinct selves: %d\n", sum, distinct);
  printf("join self: %s\n", pthread_join(pthread_self(), NULL) == EDEADLK ? "EDEADLK" : "?");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  pthread_t k;
  CHECK(pthread_create(&k, NULL, kill_target, NULL) == 0);
  CHECK(pthread_kill(k, 0) == 0);
  CHECK(pthread_kill(k, SIGUSR2) == 0);
  CHECK(pthread_join(k, NULL) == 0);
  printf("pthread_kill handler ran: %d\n", (int)got_usr2);
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  CHECK(pthread_sigmask(SIG_BLOCK, &set, &old) == 0);
  CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
  sem_t s;
  sem_init(&s, 0, 0);
  for (int i = 0; i < 100; i++) {
    pthread_attr_t da;
    pthread_attr_init(&da);
    pthread_attr_setdetachstate(&da, PTHREAD_CREATE_DETACHED);
    CHECK(pthread_create(&k, &da, detached, &s) == 0);
    pthread_attr_destroy(&da);
  }
  for (int i = 0; i < 100; i++) sem_wait(&s);
  for (int i = 0; i < 100; i++) {
    CHECK(pthread_create(&k, NULL, detached, &s) == 0);
    CHECK(pthread_detach(k) == 0);
  }
  for (int i = 0; i < 100; i++) sem_wait(&s);
  printf("detached threads ran: 200\n");
  CHECK(pthread_create(&k, NULL, detached, &s) == 0);
  sem_wait(&s);
  void *r = (void *)1;
  while (pthread_tryjoin_np(k, &r) == EBUSY) sched_yield();
  printf("tryjoin value: %p\n", r);
}

int main(int argc, char **argv) {
  /* An optional bit mask selects the parts (for narrowing a failure). */
  unsigned parts = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : ~0u;
  if (parts & 1) test_mutexes();
  if (parts & 2) test_condvars();
  if (parts & 4) test_rwlock();
  if (parts & 8) test_barrier_spin();
  if (parts & 16) test_keys_once();
  if (parts & 32) test_semaphores();
  if (parts & 64) test_threads();
  printf("done\n");
  return 0;
}

/* Process-shared synchronization objects between two processes, as
 * natively: a plain pthread program (no parlib). The objects live in a
 * shared memfd mapping (and two named semaphores from sem_open); the
 * peer is, in turn, a fork child of a worker thread (no exec: under the
 * shim it runs natively), a fork+exec of this program with the
 * environment kept (under the shim, the peer runs its threads as upthreads
 * too) and a fork+exec with LD_PRELOAD removed (a native peer).
 * Each side runs its part from threads other than main, several threads
 * each, while busy threads load every CPU:
 *
 *   - mutex: NT threads per side increment one count under a pshared
 *     mutex (exclusion checked, count exact);
 *   - condvar: NT threads per side pass a turn back and forth under a
 *     pshared mutex and condvar (the sides strictly alternate);
 *   - rwlock: readers and writers per side (no reader sees a writer);
 *   - barrier: 2*NT threads meet for ROUNDS rounds (one serial thread
 *     each round, nobody leaves early);
 *   - semaphores: a token passed between the sides through two unnamed
 *     pshared semaphores (sem_init(s, 1, n)) and through two named ones.
 *
 * Probes: while one side's thread waits on each kind of object (held,
 * unposted or unreached by the other side), the other side lets it go
 * only after that side's "progress" thread has done PROBE_STEPS more
 * iterations: under the shim with one vcore, a wait that held the vcore's
 * task would stop that thread, and the probe fails after 30 s. Timed waits
 * on held objects (mutex, rwlock, condvar, semaphore) must time out with
 * ETIMEDOUT, no earlier than their deadline (not EINTR, not early).
 *
 * Output: the results only, identical natively and under the shim. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { NT = 3, ITERS = 90, ROUNDS = 20, PROBE_STEPS = 5, TIMED_MS = 30 };

struct shared {
  pthread_mutex_t m;
  pthread_mutex_t cm;
  pthread_cond_t cv;
  pthread_rwlock_t rw;
  pthread_barrier_t bar;  /* 2 * NT threads */
  pthread_barrier_t bar2; /* the probes: 2 threads */
  sem_t tok[2];           /* the token: side s waits on tok[s] */
  sem_t probe_sem;
  atomic_int phase[2];     /* each side's step in the lockstep */
  atomic_long progress[2]; /* each side's progress thread's iterations */
  atomic_int waiting[2];   /* each side's prober is about to wait */
  atomic_int failed;
  /* Under m. */
  long count;
  int inside;
  /* Under cm. */
  int turn;
  long turns[2];
  int ready;
  /* The rwlock's. */
  atomic_int readers_inside;
  atomic_int writer_inside;
  long writes;
  /* The barrier's. */
  atomic_long arrivals;
  atomic_long serials;
  /* The semaphores'. */
  long passes[2];
  long named_passes[2];
};

static struct shared *sh;
static int side;            /* 0: the first process, 1: the peer */
static sem_t *named_tok[2]; /* from sem_open */
static char named_name[2][64];
static atomic_int stop_busy, stop_progress;

static void fail(const char *what) {
  printf("FAIL side %d: %s\n", side, what);
  fflush(stdout);
  atomic_store(&sh->failed, 1);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Waits (yielding) until *v >= target; false after 60 s. */
static int wait_at_least(atomic_int *v, int target) {
  double end = now_s() + 60;
  while (atomic_load(v) < target) {
    if (now_s() > end) return 0;
    sched_yield();
  }
  return 1;
}

/* Lockstep between the two processes: both reach step n before either
 * goes on. A peer that died or hung ends the run (exit 1), not a hang. */
static int step_no;
static void step(void) {
  ++step_no;
  atomic_store(&sh->phase[side], step_no);
  if (!wait_at_least(&sh->phase[1 - side], step_no)) {
    printf("FAIL side %d: the other side never reached step %d\n", side, step_no);
    fflush(stdout);
    _exit(1);
  }
}

static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
    for (volatile int k = 0; k < 20000; ++k) {
    }
  }
  return NULL;
}

static void *progress(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_progress)) {
    atomic_fetch_add(&sh->progress[side], 1);
    sched_yield();
  }
  return NULL;
}

/* The releasing side of a probe: waits until side w's prober announced
 * itself and w's progress thread then did PROBE_STEPS iterations. */
static void await_progress(int w, const char *what) {
  if (atomic_load(&sh->failed)) return; /* one failure says it: no more waits */
  if (!wait_at_least(&sh->waiting[w], 1)) {
    fail("prober never announced itself");
    return;
  }
  long p0 = atomic_load(&sh->progress[w]);
  double end = now_s() + 30;
  while (atomic_load(&sh->progress[w]) < p0 + PROBE_STEPS) {
    if (now_s() > end) {
      char msg[128];
      snprintf(msg, sizeof msg, "no progress on side %d while it waited on %s", w, what);
      fail(msg);
      return;
    }
    sched_yield();
  }
}

static void announce(void) { atomic_store(&sh->waiting[side], 1); }
static void unannounce(void) { atomic_store(&sh->waiting[side], 0); }

/* Each probe runs twice: first side 0 waits, then side 1. */
static void probes(void) {
  for (int w = 0; w < 2; ++w) {
    int me_wait = side == w;
    /* mutex */
    if (!me_wait) pthread_mutex_lock(&sh->m);
    step();
    if (me_wait) {
      announce();
      pthread_mutex_lock(&sh->m);
      unannounce();
      pthread_mutex_unlock(&sh->m);
    } else {
      await_progress(w, "a mutex");
      pthread_mutex_unlock(&sh->m);
    }
    step();
    /* condvar */
    if (me_wait) {
      pthread_mutex_lock(&sh->cm);
      announce();
      while (!sh->ready) pthread_cond_wait(&sh->cv, &sh->cm);
      sh->ready = 0;
      unannounce();
      pthread_mutex_unlock(&sh->cm);
    } else {
      await_progress(w, "a condvar");
      pthread_mutex_lock(&sh->cm);
      sh->ready = 1;
      pthread_cond_signal(&sh->cv);
      pthread_mutex_unlock(&sh->cm);
    }
    step();
    /* rwlock */
    if (!me_wait) pthread_rwlock_wrlock(&sh->rw);
    step();
    if (me_wait) {
      announce();
      pthread_rwlock_rdlock(&sh->rw);
      unannounce();
      pthread_rwlock_unlock(&sh->rw);
    } else {
      await_progress(w, "a rwlock");
      pthread_rwlock_unlock(&sh->rw);
    }
    step();
    /* barrier */
    if (me_wait) {
      announce();
      pthread_barrier_wait(&sh->bar2);
      unannounce();
    } else {
      await_progress(w, "a barrier");
      pthread_barrier_wait(&sh->bar2);
    }
    step();
    /* unnamed semaphore */
    if (me_wait) {
      announce();
      while (sem_wait(&sh->probe_sem) != 0) fail("sem_wait failed");
      unannounce();
    } else {
      await_progress(w, "an unnamed semaphore");
      sem_post(&sh->probe_sem);
    }
    step();
    /* named semaphore (tok[w] is at 0 between the token passes) */
    if (me_wait) {
      announce();
      while (sem_wait(named_tok[w]) != 0) fail("sem_wait (named) failed");
      unannounce();
    } else {
      await_progress(w, "a named semaphore");
      sem_post(named_tok[w]);
    }
    step();
  }
}

/* Timed waits on objects the other side holds: ETIMEDOUT, not before the
 * deadline. Side w waits; the other holds m, rw (write) and keeps
 * probe_sem at 0 and the condvar unsignalled. */
static void check_timeout(int err, struct timespec *start, clockid_t clock, const char *what) {
  struct timespec t;
  clock_gettime(clock, &t);
  double waited = (double)(t.tv_sec - start->tv_sec) + (double)(t.tv_nsec - start->tv_nsec) / 1e9;
  char msg[128];
  if (err != ETIMEDOUT) {
    snprintf(msg, sizeof msg, "%s returned %s, not ETIMEDOUT", what, strerror(err));
    fail(msg);
  } else if (waited < TIMED_MS / 1e3) {
    snprintf(msg, sizeof msg, "%s timed out after %.1f ms, before its %d ms", what, waited * 1e3,
             TIMED_MS);
    fail(msg);
  }
}

static void deadline(clockid_t clock, struct timespec *start, struct timespec *abs) {
  clock_gettime(clock, start);
  *abs = *start;
  abs->tv_nsec += TIMED_MS * 1000000L;
  if (abs->tv_nsec >= 1000000000L) {
    abs->tv_nsec -= 1000000000L;
    abs->tv_sec += 1;
  }
}

static void timed_waits(void) {
  for (int w = 0; w < 2; ++w) {
    if (side != w) {
      pthread_mutex_lock(&sh->m);
      pthread_rwlock_wrlock(&sh->rw);
    }
    step();
    if (side == w) {
      struct timespec start, abs;
      deadline(CLOCK_REALTIME, &start, &abs);
      check_timeout(pthread_mutex_timedlock(&sh->m, &abs), &start, CLOCK_REALTIME,
                    "pthread_mutex_timedlock");
      deadline(CLOCK_MONOTONIC, &start, &abs);
      check_timeout(pthread_mutex_clocklock(&sh->m, CLOCK_MONOTONIC, &abs), &start, CLOCK_MONOTONIC,
                    "pthread_mutex_clocklock");
      deadline(CLOCK_REALTIME, &start, &abs);
      check_timeout(pthread_rwlock_timedrdlock(&sh->rw, &abs), &start, CLOCK_REALTIME,
                    "pthread_rwlock_timedrdlock");
      deadline(CLOCK_REALTIME, &start, &abs);
      int r = sem_timedwait(&sh->probe_sem, &abs);
      check_timeout(r == 0 ? 0 : errno, &start, CLOCK_REALTIME, "sem_timedwait");
      deadline(CLOCK_REALTIME, &start, &abs);
      r = sem_timedwait(named_tok[w], &abs);
      check_timeout(r == 0 ? 0 : errno, &start, CLOCK_REALTIME, "sem_timedwait (named)");
      pthread_mutex_lock(&sh->cm);
      deadline(CLOCK_REALTIME, &start, &abs);
      int err = 0;
      while (!sh->ready && err == 0) err = pthread_cond_timedwait(&sh->cv, &sh->cm, &abs);
      pthread_mutex_unlock(&sh->cm);
      check_timeout(err, &start, CLOCK_REALTIME, "pthread_cond_timedwait");
    }
    step();
    if (side != w) {
      pthread_rwlock_unlock(&sh->rw);
      pthread_mutex_unlock(&sh->m);
    }
  }
}

/* ------------------------------------------------- the counted parts */

static void *mutex_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < ITERS; ++i) {
    pthread_mutex_lock(&sh->m);
    if (sh->inside) fail("two holders of the mutex");
    sh->inside = 1;
    ++sh->count;
    sh->inside = 0;
    pthread_mutex_unlock(&sh->m);
  }
  return NULL;
}

static void *cond_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < ITERS / 3; ++i) {
    pthread_mutex_lock(&sh->cm);
    while (sh->turn != side) pthread_cond_wait(&sh->cv, &sh->cm);
    ++sh->turns[side];
    if (sh->turns[side] != sh->turns[1 - side] + (side == 0 ? 1 : 0))
      fail("the turns do not alternate");
    sh->turn = 1 - side;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->cm);
  }
  return NULL;
}

static void *rwlock_worker(void *arg) {
  long id = (long)arg;
  for (int i = 0; i < ITERS; ++i) {
    if ((i + id) % 4 == 0) {
      pthread_rwlock_wrlock(&sh->rw);
      if (atomic_fetch_add(&sh->writer_inside, 1) != 0 || atomic_load(&sh->readers_inside) != 0)
        fail("a writer shares the rwlock");
      ++sh->writes;
      atomic_fetch_sub(&sh->writer_inside, 1);
    } else {
      pthread_rwlock_rdlock(&sh->rw);
      atomic_fetch_add(&sh->readers_inside, 1);
      if (atomic_load(&sh->writer_inside) != 0) fail("a reader sees a writer");
      atomic_fetch_sub(&sh->readers_inside, 1);
    }
    pthread_rwlock_unlock(&sh->rw);
  }
  return NULL;
}

static void *barrier_worker(void *arg) {
  (void)arg;
  for (long r = 0; r < ROUNDS; ++r) {
    atomic_fetch_add(&sh->arrivals, 1);
    int s = pthread_barrier_wait(&sh->bar);
    if (s == PTHREAD_BARRIER_SERIAL_THREAD)
      atomic_fetch_add(&sh->serials, 1);
    else if (s != 0)
      fail("pthread_barrier_wait failed");
    if (atomic_load(&sh->arrivals) < (r + 1) * 2 * NT) fail("left the barrier early");
    /* Nobody arrives for the next round before all have left this one. */
    pthread_barrier_wait(&sh->bar);
  }
  return NULL;
}

static void *sem_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < ITERS; ++i) {
    while (sem_wait(&sh->tok[side]) != 0) fail("sem_wait failed");
    ++sh->passes[side];
    sem_post(&sh->tok[1 - side]);
  }
  return NULL;
}

static void *named_sem_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < ITERS; ++i) {
    while (sem_wait(named_tok[side]) != 0) fail("sem_wait (named) failed");
    ++sh->named_passes[side];
    sem_post(named_tok[1 - side]);
  }
  return NULL;
}

static void run_threads(void *(*fn)(void *)) {
  pthread_t t[NT];
  for (long i = 0; i < NT; ++i) pthread_create(&t[i], NULL, fn, (void *)(i + side * NT));
  for (int i = 0; i < NT; ++i) pthread_join(t[i], NULL);
  step();
}

/* One side's whole part; the same sequence on both sides. */
static void *run_side(void *arg) {
  (void)arg;
  pthread_t prog;
  atomic_store(&stop_progress, 0);
  pthread_create(&prog, NULL, progress, NULL);
  step();
  run_threads(mutex_worker);
  run_threads(cond_worker);
  run_threads(rwlock_worker);
  run_threads(barrier_worker);
  if (side == 0) sem_post(&sh->tok[0]);
  run_threads(sem_worker);
  if (side == 0) sem_wait(&sh->tok[0]); /* the token's last pass */
  step();
  if (side == 0) sem_post(named_tok[0]);
  run_threads(named_sem_worker);
  if (side == 0) sem_wait(named_tok[0]);
  step();
  probes();
  timed_waits();
  atomic_store(&stop_progress, 1);
  pthread_join(prog, NULL);
  return NULL;
}

static void run_side_from_thread(void) {
  pthread_t t;
  pthread_create(&t, NULL, run_side, NULL);
  pthread_join(t, NULL);
}

static void init_objects(void) {
  memset(sh, 0, sizeof *sh);
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&sh->m, &ma);
  pthread_mutex_init(&sh->cm, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
  pthread_cond_init(&sh->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_rwlockattr_t ra;
  pthread_rwlockattr_init(&ra);
  pthread_rwlockattr_setpshared(&ra, PTHREAD_PROCESS_SHARED);
  pthread_rwlock_init(&sh->rw, &ra);
  pthread_rwlockattr_destroy(&ra);
  pthread_barrierattr_t ba;
  pthread_barrierattr_init(&ba);
  pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
  pthread_barrier_init(&sh->bar, &ba, 2 * NT);
  pthread_barrier_init(&sh->bar2, &ba, 2);
  pthread_barrierattr_destroy(&ba);
  sem_init(&sh->tok[0], 1, 0);
  sem_init(&sh->tok[1], 1, 0);
  sem_init(&sh->probe_sem, 1, 0);
}

static void open_named(int create) {
  for (int i = 0; i < 2; ++i) {
    named_tok[i] = sem_open(named_name[i], create ? O_CREAT | O_EXCL : 0, 0600, 0);
    if (named_tok[i] == SEM_FAILED) {
      perror("sem_open");
      exit(3);
    }
  }
}

static void close_named(void) {
  for (int i = 0; i < 2; ++i) sem_close(named_tok[i]);
}

/* The peer process, started by exec: pshared peer FD NAME0 NAME1. */
static int peer_main(char **argv) {
  side = 1;
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, atoi(argv[2]), 0);
  if (sh == MAP_FAILED) return 3;
  snprintf(named_name[0], sizeof named_name[0], "%s", argv[3]);
  snprintf(named_name[1], sizeof named_name[1], "%s", argv[4]);
  open_named(0);
  run_side_from_thread();
  close_named();
  return atomic_load(&sh->failed) ? 1 : 0;
}

/* The environment without LD_PRELOAD, made before any fork (the child of
 * a threaded process should not allocate). */
static char **native_env;
static void make_native_env(void) {
  int n = 0;
  while (environ[n] != NULL) ++n;
  native_env = calloc((size_t)n + 1, sizeof *native_env);
  int k = 0;
  for (int i = 0; i < n; ++i)
    if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0) native_env[k++] = environ[i];
}

struct peer_args {
  int how; /* 0 fork, 1 fork+exec, 2 fork+exec without LD_PRELOAD */
  int fd;
  pid_t pid;
};

/* Forked from a thread other than main. */
static void *start_peer(void *arg) {
  struct peer_args *p = arg;
  p->pid = fork();
  if (p->pid == 0) {
    if (p->how == 0) {
      side = 1;
      run_side_from_thread();
      _exit(atomic_load(&sh->failed) ? 1 : 0);
    }
    char fd[16];
    snprintf(fd, sizeof fd, "%d", p->fd);
    char *args[] = {"pshared", "peer", fd, named_name[0], named_name[1], NULL};
    execve("/proc/self/exe", args, p->how == 2 ? native_env : environ);
    _exit(127);
  }
  return NULL;
}

static long expected_writes(void) {
  long n = 0;
  for (long id = 0; id < 2 * NT; ++id)
    for (int i = 0; i < ITERS; ++i) n += (i + id) % 4 == 0;
  return n;
}

static const char *peer_name(int how) {
  return how == 0 ? "fork child" : how == 1 ? "exec'd peer (environment kept)" : "native peer";
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  make_native_env();
  if (argc == 5 && strcmp(argv[1], "peer") == 0) return peer_main(argv);
  int fd = memfd_create("pshared", 0);
  if (fd < 0 || ftruncate(fd, sizeof *sh) != 0) return 3;
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (sh == MAP_FAILED) return 3;
  for (int i = 0; i < 2; ++i)
    snprintf(named_name[i], sizeof named_name[i], "/parlib-pshared-%d-%d", (int)getpid(), i);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int nbusy = (int)(cpus < 1 ? 1 : cpus);
  pthread_t busy_threads[nbusy];
  for (int i = 0; i < nbusy; ++i) pthread_create(&busy_threads[i], NULL, busy, NULL);
  int failed = 0;
  for (int how = 0; how < 3; ++how) {
    init_objects();
    open_named(1);
    step_no = 0;
    side = 0;
    struct peer_args p = {how, fd, 0};
    pthread_t t;
    pthread_create(&t, NULL, start_peer, &p);
    pthread_join(t, NULL);
    run_side_from_thread();
    int status;
    if (waitpid(p.pid, &status, 0) != p.pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      printf("FAIL: the %s ended with status %#x\n", peer_name(how), status);
      failed = 1;
    }
    printf(
        "%s: mutex count %ld, condvar turns %ld+%ld, rwlock writes %ld, barrier arrivals %ld "
        "serial %ld, token passes %ld+%ld, named %ld+%ld\n",
        peer_name(how), sh->count, sh->turns[0], sh->turns[1], sh->writes,
        atomic_load(&sh->arrivals), atomic_load(&sh->serials), sh->passes[0], sh->passes[1],
        sh->named_passes[0], sh->named_passes[1]);
    if (sh->count != 2L * NT * ITERS || sh->turns[0] != NT * (ITERS / 3) ||
        sh->turns[1] != NT * (ITERS / 3) || atomic_load(&sh->arrivals) != 2L * NT * ROUNDS ||
        atomic_load(&sh->serials) != ROUNDS || sh->writes != expected_writes() ||
        sh->passes[0] != NT * ITERS || sh->passes[1] != NT * ITERS ||
        sh->named_passes[0] != NT * ITERS || sh->named_passes[1] != NT * ITERS) {
      printf("FAIL: wrong counts\n");
      failed = 1;
    }
    if (atomic_load(&sh->failed)) failed = 1;
    close_named();
    for (int i = 0; i < 2; ++i) sem_unlink(named_name[i]);
    pthread_barrier_destroy(&sh->bar);
    pthread_barrier_destroy(&sh->bar2);
  }
  atomic_store(&stop_busy, 1);
  for (int i = 0; i < nbusy; ++i) pthread_join(busy_threads[i], NULL);
  puts(failed ? "FAILED" : "all passed");
  return failed;
}

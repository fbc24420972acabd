/* pthread_kill of a thread that waits (issue 11, item 5): a plain pthread
 * program (no parlib). The target sleeps (nanosleep, usleep: EINTR with
 * the time left), waits on a semaphore (EINTR), on a condition variable
 * (the handler runs while it waits), in read() on a pipe (EINTR without
 * SA_RESTART, the data with it), and in sigwait, sigwaitinfo and
 * sigtimedwait with the signal blocked (each receives it, no handler
 * runs; sigwaitinfo's si_code as natively). Every handler must run on
 * the target thread: pthread_self() and gettid() inside it are the
 * target's. A controller thread (not main) sends the signals while busy
 * threads keep every CPU loaded, so that the shim's preemption ticks fire
 * throughout. A wait that no signal ends leaves the process to alarm()'s
 * SIGALRM, which compare.sh reports as a different exit status. With an
 * argument, runs only the cases whose name starts with it.
 *
 * Output: the results only, identical natively and under the shim. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int stop_busy;
static pthread_t target;
static atomic_int target_tid;
static atomic_int ready, done;
static atomic_int handler_runs, handler_elsewhere;
static sem_t sem;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;
static int fds[2];

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  if (!pthread_equal(pthread_self(), target) || gettid() != atomic_load(&target_tid))
    atomic_fetch_add(&handler_elsewhere, 1);
  atomic_fetch_add(&handler_runs, 1);
  errno = saved;
}

static void install(int sig, int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
  }
  return NULL;
}

/* Each case: the target runs wait(), which records its results. */
static int result, result_errno, got_sig, got_code;
static struct timespec rem;
static sigset_t waited;

static void begin_target(void) {
  atomic_store(&target_tid, gettid());
  atomic_store(&ready, 1);
}

static void *do_nanosleep(void *a) {
  (void)a;
  begin_target();
  struct timespec req = {10, 0};
  rem = (struct timespec){-1, -1};
  errno = 0;
  result = nanosleep(&req, &rem);
  result_errno = errno;
  atomic_store(&done, 1);
  return NULL;
}
static void *do_usleep(void *a) {
  (void)a;
  begin_target();
  errno = 0;
  result = usleep(9000000);
  result_errno = errno;
  atomic_store(&done, 1);
  return NULL;
}
static void *do_sem_wait(void *a) {
  (void)a;
  begin_target();
  errno = 0;
  result = sem_wait(&sem);
  result_errno = errno;
  atomic_store(&done, 1);
  return NULL;
}
static void *do_cond_wait(void *a) {
  (void)a;
  pthread_mutex_lock(&mu);
  begin_target();
  while (!go) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  atomic_store(&done, 1);
  return NULL;
}
static void *do_read(void *a) {
  (void)a;
  begin_target();
  char buf[4] = {0};
  errno = 0;
  result = (int)read(fds[0], buf, sizeof buf);
  result_errno = errno;
  if (result == 2 && memcmp(buf, "hi", 2) != 0) result = -2;
  atomic_store(&done, 1);
  return NULL;
}
static void *do_sigwait(void *a) {
  int kind = (int)(long)a;
  pthread_sigmask(SIG_BLOCK, &waited, NULL);
  begin_target();
  siginfo_t info;
  memset(&info, 0, sizeof info);
  struct timespec ten = {10, 0};
  if (kind == 0) {
    result = sigwait(&waited, &got_sig);
  } else {
    got_sig = kind == 1 ? sigwaitinfo(&waited, &info) : sigtimedwait(&waited, &info, &ten);
    got_code = info.si_code;
    result = got_sig > 0 ? 0 : -1;
  }
  atomic_store(&done, 1);
  return NULL;
}

static void start(void *(*fn)(void *), void *arg) {
  atomic_store(&ready, 0);
  atomic_store(&done, 0);
  atomic_store(&handler_runs, 0);
  atomic_store(&handler_elsewhere, 0);
  if (pthread_create(&target, NULL, fn, arg) != 0) exit(3);
  while (!atomic_load(&ready)) pause_ms(1);
}

/* Signals the target until its wait ends: a signal that came before the
 * wait began only runs the handler. */
static void kill_until_done(int sig) {
  while (!atomic_load(&done)) {
    pthread_kill(target, sig);
    for (int i = 0; i < 20 && !atomic_load(&done); ++i) pause_ms(1);
  }
  pthread_join(target, NULL);
}

static const char *yes(int b) { return b ? "yes" : "no"; }

static const char *only;
static int want(const char *name) { return only == NULL || strncmp(name, only, strlen(only)) == 0; }

static void report(const char *what) {
  printf("%s: handler ran %s, only on the target %s\n", what, yes(atomic_load(&handler_runs) > 0),
         yes(atomic_load(&handler_elsewhere) == 0));
}

static void *controller(void *arg) {
  (void)arg;
  install(SIGUSR2, 0);
  install(SIGRTMIN, 0);

  if (want("nanosleep")) {
    start(do_nanosleep, NULL);
    kill_until_done(SIGUSR2);
    /* The kernel's time left may exceed the request by its timer slack. */
    long long left = rem.tv_sec * 1000000000LL + rem.tv_nsec;
    printf("nanosleep: -1 EINTR %s, time left in (0, 10s + slack] %s\n",
           yes(result == -1 && result_errno == EINTR), yes(left > 0 && left <= 10010000000LL));
    report("nanosleep");
  }

  if (want("usleep")) {
    start(do_usleep, NULL);
    kill_until_done(SIGRTMIN);
    printf("usleep: -1 EINTR %s\n", yes(result == -1 && result_errno == EINTR));
    report("usleep");
  }

  if (want("sem_wait")) {
    sem_init(&sem, 0, 0);
    start(do_sem_wait, NULL);
    kill_until_done(SIGUSR2);
    printf("sem_wait: -1 EINTR %s\n", yes(result == -1 && result_errno == EINTR));
    report("sem_wait");
  }

  /* The target waits on the condition variable once the controller holds
   * the mutex; the handler must run while it still waits. */
  if (want("cond")) {
    go = 0;
    start(do_cond_wait, NULL);
    pthread_mutex_lock(&mu);
    pthread_kill(target, SIGRTMIN);
    while (atomic_load(&handler_runs) == 0) pause_ms(1);
    go = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(target, NULL);
    report("pthread_cond_wait");
  }

  if (want("read")) {
    if (pipe(fds) != 0) exit(3);
    start(do_read, NULL);
    kill_until_done(SIGUSR2);
    printf("read: -1 EINTR %s\n", yes(result == -1 && result_errno == EINTR));
    report("read");
    install(SIGUSR2, SA_RESTART);
    start(do_read, NULL);
    pthread_kill(target, SIGUSR2);
    while (atomic_load(&handler_runs) == 0) pause_ms(1);
    if (write(fds[1], "hi", 2) != 2) exit(3);
    pthread_join(target, NULL);
    printf("read, SA_RESTART: the data %s\n", yes(result == 2));
    report("read, SA_RESTART");
    install(SIGUSR2, 0);
  }

  /* The signal is blocked in the target from before ready: it waits for
   * the sigwait, wherever the kill lands. */
  static const char *names[] = {"sigwait", "sigwaitinfo", "sigtimedwait"};
  for (int kind = 0; kind < 3; ++kind) {
    if (!want(names[kind])) continue;
    int sig = kind == 1 ? SIGRTMIN : SIGUSR2;
    sigemptyset(&waited);
    sigaddset(&waited, sig);
    got_sig = 0;
    got_code = 0;
    start(do_sigwait, (void *)(long)kind);
    pthread_kill(target, sig);
    pthread_join(target, NULL);
    printf("%s: received it %s, si_code %d, handler ran %s\n", names[kind],
           yes(result == 0 && got_sig == sig), got_code, yes(atomic_load(&handler_runs) > 0));
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1) only = argv[1];
  alarm(60);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1) cpus = 1;
  pthread_t busy_threads[16], ctl;
  int nbusy = cpus > 16 ? 16 : (int)cpus;
  for (int i = 0; i < nbusy; ++i)
    if (pthread_create(&busy_threads[i], NULL, busy, NULL) != 0) return 3;
  if (pthread_create(&ctl, NULL, controller, NULL) != 0) return 3;
  pthread_join(ctl, NULL);
  atomic_store(&stop_busy, 1);
  for (int i = 0; i < nbusy; ++i) pthread_join(busy_threads[i], NULL);
  return 0;
}

/* Thread ids under the shim, as natively: a plain pthread program (no
 * parlib). main's gettid() is the pid; every thread's gettid() (and
 * syscall(SYS_gettid)) is its own, unique among threads created from
 * several creator threads, and stable while the thread yields and migrates
 * (busy threads on every CPU keep preemption going). A tid passed back
 * reaches its thread (tgkill, tkill, sched_setaffinity/getaffinity) or,
 * once the thread has exited, fails with ESRCH without a signal being
 * delivered anywhere. /proc/self/task/TID: main's exists; an exited
 * thread's does not; a live thread's either does and describes that very
 * thread (natively) or does not exist (under the shim: its id is no kernel
 * task's), never another task.
 *
 * Output: the results only, identical natively and under the shim. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CREATORS 4
#define PER_CREATOR 8
#define YIELDS 50

static atomic_int stop_busy;
static pid_t tids[CREATORS * PER_CREATOR];
static atomic_int unstable;

/* Keeps a CPU busy; yields now and then, so that the others' yields do
 * not each wait out a whole preemption period behind it. */
static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
    for (volatile int k = 0; k < 20000; ++k) {
    }
    sched_yield();
  }
  return NULL;
}

static void *leaf(void *arg) {
  pid_t *slot = arg;
  pid_t t = gettid();
  if ((pid_t)syscall(SYS_gettid) != t) atomic_fetch_add(&unstable, 1);
  for (int i = 0; i < YIELDS; ++i) {
    sched_yield();
    for (volatile int k = 0; k < 1000; ++k) {
    }
    if (gettid() != t || (pid_t)syscall(SYS_gettid) != t) atomic_fetch_add(&unstable, 1);
  }
  *slot = t;
  return NULL;
}

static void *creator(void *arg) {
  pid_t *slots = arg;
  pthread_t th[PER_CREATOR];
  for (int i = 0; i < PER_CREATOR; ++i)
    if (pthread_create(&th[i], NULL, leaf, &slots[i]) != 0) exit(3);
  for (int i = 0; i < PER_CREATOR; ++i) pthread_join(th[i], NULL);
  return NULL;
}

static int cmp(const void *a, const void *b) {
  pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
  return (x > y) - (x < y);
}

/* A target thread for signals: publishes its tid, then yields until told
 * to leave. The handler records which thread it ran in. */
static atomic_int target_tid;
static atomic_int target_leave;
static atomic_int handled_in_target;
static atomic_int handled_elsewhere;

static void on_usr2(int sig) {
  (void)sig;
  if (gettid() == atomic_load(&target_tid))
    atomic_fetch_add(&handled_in_target, 1);
  else
    atomic_fetch_add(&handled_elsewhere, 1);
}

static void *target(void *arg) {
  (void)arg;
  atomic_store(&target_tid, gettid());
  while (!atomic_load(&target_leave)) sched_yield();
  return NULL;
}

static void wait_handled(int n) {
  for (long i = 0; atomic_load(&handled_in_target) < n && i < 100000000L; ++i) sched_yield();
}

/* What /proc/self/task/TID says about tid: "exists" (and names tid),
 * "absent", or "OTHER" (a different task: never acceptable). */
static const char *task_dir(pid_t tid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return errno == ENOENT ? "absent" : "error";
  int got = fgets(buf, sizeof buf, f) != NULL ? atoi(buf) : -1;
  fclose(f);
  return got == tid ? "exists" : "OTHER";
}

int main(void) {
  printf("main: gettid() == getpid(): %s\n", gettid() == getpid() ? "yes" : "no");
  printf("main: syscall(SYS_gettid) == getpid(): %s\n",
         (pid_t)syscall(SYS_gettid) == getpid() ? "yes" : "no");

  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;
  pthread_t busies[64];
  int nbusy = ncpu > 64 ? 64 : (int)ncpu;
  for (int i = 0; i < nbusy; ++i)
    if (pthread_create(&busies[i], NULL, busy, NULL) != 0) return 3;

  pthread_t creators[CREATORS];
  for (int i = 0; i < CREATORS; ++i)
    if (pthread_create(&creators[i], NULL, creator, &tids[i * PER_CREATOR]) != 0) return 3;
  for (int i = 0; i < CREATORS; ++i) pthread_join(creators[i], NULL);
  int n = CREATORS * PER_CREATOR, dup = 0, is_pid = 0;
  qsort(tids, (size_t)n, sizeof tids[0], cmp);
  for (int i = 0; i < n; ++i) {
    if (i > 0 && tids[i] == tids[i - 1]) ++dup;
    if (tids[i] == getpid() || tids[i] <= 0) ++is_pid;
  }
  printf("%d threads from %d creators: duplicate tids %d, tid == pid or <= 0: %d, unstable %d\n", n,
         CREATORS, dup, is_pid, atomic_load(&unstable));

  /* Signals by tid, to a live thread and to the same tid once exited. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, NULL);
  pthread_t t;
  if (pthread_create(&t, NULL, target, NULL) != 0) return 3;
  while (atomic_load(&target_tid) == 0) sched_yield();
  pid_t tt = atomic_load(&target_tid);
  printf("live thread: tid != pid: %s\n", tt != getpid() ? "yes" : "no");
  int r = tgkill(getpid(), tt, SIGUSR2);
  wait_handled(1);
  printf("tgkill(live tid): %d, handler ran in the target: %d\n", r,
         atomic_load(&handled_in_target));
  r = (int)syscall(SYS_tkill, tt, SIGUSR2);
  wait_handled(2);
  printf("tkill(live tid): %d, handler ran in the target: %d\n", r,
         atomic_load(&handled_in_target));
  printf("tgkill(live tid, 0): %d\n", tgkill(getpid(), tt, 0));
  cpu_set_t set;
  CPU_ZERO(&set);
  printf("sched_getaffinity(live tid): %d\n", sched_getaffinity(tt, sizeof set, &set));
  printf("sched_setaffinity(live tid, its mask): %d\n", sched_setaffinity(tt, sizeof set, &set));
  const char *live = task_dir(tt);
  printf("/proc/self/task/<live tid>: %s\n",
         strcmp(live, "exists") == 0 || strcmp(live, "absent") == 0 ? "exists or absent" : live);
  printf("/proc/self/task/<main tid>: %s\n", task_dir(getpid()));

  atomic_store(&target_leave, 1);
  pthread_join(t, NULL);
  /* Natively the joined thread's kernel task may still be on its way out
   * (its tid is released before the task is gone): wait until it is. */
  for (long i = 0; i < 10000000L && strcmp(task_dir(tt), "absent") != 0; ++i) sched_yield();
  errno = 0;
  r = tgkill(getpid(), tt, SIGUSR2);
  printf("tgkill(exited tid): %d %s\n", r, r == -1 && errno == ESRCH ? "ESRCH" : strerror(errno));
  errno = 0;
  r = (int)syscall(SYS_tgkill, getpid(), tt, SIGUSR2);
  printf("syscall(SYS_tgkill, exited tid): %d %s\n", r,
         r == -1 && errno == ESRCH ? "ESRCH" : strerror(errno));
  errno = 0;
  r = (int)syscall(SYS_tkill, tt, 0);
  printf("tkill(exited tid, 0): %d %s\n", r, r == -1 && errno == ESRCH ? "ESRCH" : strerror(errno));
  errno = 0;
  r = sched_setaffinity(tt, sizeof set, &set);
  printf("sched_setaffinity(exited tid): %d %s\n", r,
         r == -1 && errno == ESRCH ? "ESRCH" : strerror(errno));
  printf("/proc/self/task/<exited tid>: %s\n", task_dir(tt));
  /* Nothing delivered anywhere else, even later. */
  for (int i = 0; i < 1000; ++i) sched_yield();
  printf("handler runs outside the target: %d\n", atomic_load(&handled_elsewhere));

  atomic_store(&stop_busy, 1);
  for (int i = 0; i < nbusy; ++i) pthread_join(busies[i], NULL);
  return 0;
}

/* A program may close every descriptor it did not open, as daemons do at
 * start-up, and keep running: close_range(3, ~0U, 0) first thing in main,
 * later a close loop up to the descriptor limit and closefrom(3) from a
 * worker thread, and dup2 onto many numbers; after each, threads, pipe
 * I/O, sleeps, poll timeouts and timed condvar and semaphore waits must
 * still work, with busy threads on every CPU. Also: the program's first
 * open() gets 3, and a child that system() runs finds no descriptor of
 * ours but 0, 1 and 2 below 256 (a child under the shim has the runtime's
 * own, at the top of the range).
 *
 * Output: results only, identical natively and under the shim. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int stop_busy;
static char self_path[4096];

/* Keeps a CPU busy, yielding now and then (a upthread queued behind a
 * pure spinner on its vcore waits for a preemption tick; the ticks fire
 * either way). */
static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
    for (int i = 0; i < 2000; ++i) __asm__ volatile("pause");
    sched_yield();
  }
  return NULL;
}

static void *delayed_write(void *arg) {
  struct timespec ts = {0, 10 * 1000000};
  nanosleep(&ts, NULL);
  if (write(*(int *)arg, "ping", 4) != 4) exit(4);
  return NULL;
}

static void deadline_in(struct timespec *ts, long ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_nsec += ms * 1000000;
  while (ts->tv_nsec >= 1000000000) {
    ts->tv_nsec -= 1000000000;
    ts->tv_sec++;
  }
}

/* Threads, I/O, sleeps and timed waits, after label. */
static void work(const char *label) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) exit(3);
  pthread_t t;
  pthread_create(&t, NULL, delayed_write, &p[1]);
  char buf[8];
  ssize_t n = read(p[0], buf, sizeof buf);
  pthread_join(t, NULL);
  usleep(2000);
  struct pollfd pf = {p[0], POLLIN, 0};
  int pr = poll(&pf, 1, 10);
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  struct timespec dl;
  deadline_in(&dl, 20);
  pthread_mutex_lock(&m);
  int cr = pthread_cond_timedwait(&c, &m, &dl);
  pthread_mutex_unlock(&m);
  sem_t s;
  sem_init(&s, 0, 0);
  deadline_in(&dl, 20);
  int sr = sem_timedwait(&s, &dl);
  int se = errno;
  printf("%s: read %zd, poll %d, cond %s, sem %s\n", label, n, pr,
         cr == ETIMEDOUT ? "ETIMEDOUT" : "other",
         sr == -1 && se == ETIMEDOUT ? "ETIMEDOUT" : "other");
  close(p[0]);
  close(p[1]);
}

/* The descriptors below 256 other than 0, 1, 2 (and the listing's own). */
static void list_fds(const char *who) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) exit(3);
  int self = dirfd(d);
  char out[1024] = "";
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long fd = strtol(e->d_name, &end, 10);
    if (end == e->d_name || fd <= 2 || fd == self || fd >= 256) continue;
    size_t len = strlen(out);
    snprintf(out + len, sizeof out - len, " %ld", fd);
  }
  closedir(d);
  printf("%s fds:%s\n", who, out[0] ? out : " none");
  fflush(stdout);
}

static void *worker(void *arg) {
  (void)arg;
  work("after close_range");
  long max = sysconf(_SC_OPEN_MAX);
  if (max > 1 << 20) max = 1 << 20;
  for (long fd = 3; fd < max; ++fd) close((int)fd);
  work("after a close loop");
  int p[2];
  if (pipe(p) != 0) exit(3);
  int ok = 0;
  for (int fd = 3; fd < 256; ++fd)
    if (fd == p[0] || fd == p[1] || dup2(p[0], fd) == fd) ++ok;
  printf("dup2 onto 3..255: %d\n", ok);
  closefrom(3);
  work("after dup2 and closefrom");
  list_fds("parent");
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "exec '%s' --list-fds", self_path);
  fflush(stdout);
  int st = system(cmd);
  printf("system: %d\n", st);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--list-fds") == 0) {
    list_fds("child");
    return 0;
  }
  close_range(3, ~0U, 0);
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  printf("first open: %d\n", fd);
  close(fd);
  alarm(60);
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  if (n <= 0) return 3;
  self_path[n] = '\0';
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int nb = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (int)ncpu;
  pthread_t b[64];
  for (int i = 0; i < nb; ++i) pthread_create(&b[i], NULL, busy, NULL);
  pthread_t w;
  pthread_create(&w, NULL, worker, NULL);
  pthread_join(w, NULL);
  atomic_store(&stop_busy, 1);
  for (int i = 0; i < nb; ++i) pthread_join(b[i], NULL);
  return 0;
}

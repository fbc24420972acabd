/* Credentials from any thread: setgroups, setresgid and setresuid from a
 * worker, seteuid and setgroups from main, setuid from a worker, while
 * busy threads load every CPU and others wait in a read, a timed condition
 * wait and a sleep. Every kernel task of the process must take each change (Linux
 * keeps credentials per task): each /proc/self/task/TID/status must show
 * the same Uid, Gid and Groups lines, and every thread must finish. Must
 * run as root (the caller skips otherwise). A hang ends in SIGALRM. */
#define _GNU_SOURCE
#include <dirent.h>
#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_stop;
static int g_pipe[2];
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_bad;

static void *busy(void *arg) {
  (void)arg;
  volatile unsigned long n = 0;
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) n++;
  return NULL;
}

static void *reader(void *arg) {
  (void)arg;
  char c;
  return (void *)(long)read(g_pipe[0], &c, 1);
}

static void *timed_waiter(void *arg) {
  (void)arg;
  pthread_mutex_lock(&g_mutex);
  while (!atomic_load(&g_stop)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 2000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&g_cond, &g_mutex, &ts);
  }
  pthread_mutex_unlock(&g_mutex);
  return NULL;
}

static void *sleeper(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) usleep(1000);
  return NULL;
}

/* Every task's line starting with key must equal want. */
static void check_tasks(const char *phase, const char *key, const char *want) {
  DIR *d = opendir("/proc/self/task");
  if (d == NULL) {
    perror("opendir");
    exit(2);
  }
  int tasks = 0, agree = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue; /* the task ended meanwhile */
    tasks++;
    while (fgets(line, sizeof line, f) != NULL) {
      if (strncmp(line, key, strlen(key)) != 0) continue;
      line[strcspn(line, "\n")] = '\0';
      /* Groups: lines end with a blank on some kernels. */
      size_t n = strlen(line);
      while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = '\0';
      if (strcmp(line, want) == 0)
        agree++;
      else
        fprintf(stderr, "%s: task %s has \"%s\", want \"%s\"\n", phase, e->d_name, line, want);
      break;
    }
    fclose(f);
  }
  closedir(d);
  if (tasks == 0 || agree != tasks) g_bad = 1;
  printf("%s: %s every task\n", phase, agree == tasks && tasks > 0 ? "agree on" : "DIFFER in");
}

static void *first_change(void *arg) {
  (void)arg;
  gid_t groups[2] = {1234, 5678};
  int r = setgroups(2, groups);
  r |= setresgid(4321, 4322, 4323);
  r |= setresuid(8765, 8766, 0); /* saved uid 0: the next phase may go back */
  return (void *)(long)r;
}

static void *second_change(void *arg) {
  (void)arg;
  int r = seteuid(0); /* back to root: the saved uid is 0 */
  gid_t groups[1] = {2468};
  r |= setgroups(1, groups);
  return (void *)(long)r;
}

static void *third_change(void *arg) {
  (void)arg;
  return (void *)(long)setuid(8765); /* as root: real, effective and saved */
}

/* on_main: the calls run on main's thread, else on a new thread. */
static void run_phase(const char *name, void *(*fn)(void *), int on_main) {
  pthread_t t;
  void *r;
  if (on_main) {
    r = fn(NULL);
  } else {
    pthread_create(&t, NULL, fn, NULL);
    pthread_join(t, &r);
  }
  printf("%s: calls returned %ld\n", name, (long)r);
}

int main(void) {
  if (geteuid() != 0) {
    fprintf(stderr, "not root: cannot test credential changes\n");
    return 77;
  }
  alarm(30);
  if (pipe(g_pipe) != 0) return 2;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int nbusy = (int)(cpus < 1 ? 1 : cpus > 8 ? 8 : cpus) + 1;
  pthread_t t[12];
  int n = 0;
  for (int i = 0; i < nbusy; i++) pthread_create(&t[n++], NULL, busy, NULL);
  pthread_create(&t[n++], NULL, reader, NULL);
  pthread_create(&t[n++], NULL, timed_waiter, NULL);
  pthread_create(&t[n++], NULL, sleeper, NULL);
  usleep(20000); /* let the waits start (not needed for correctness) */

  run_phase("worker: setgroups, setresgid, setresuid", first_change, 0);
  check_tasks("after setresuid", "Uid:", "Uid:\t8765\t8766\t0\t8766");
  check_tasks("after setresgid", "Gid:", "Gid:\t4321\t4322\t4323\t4322");
  check_tasks("after setgroups", "Groups:", "Groups:\t1234 5678");

  run_phase("main: seteuid, setgroups", second_change, 1);
  check_tasks("after seteuid", "Uid:", "Uid:\t8765\t0\t0\t0");
  check_tasks("after setgroups", "Groups:", "Groups:\t2468");

  run_phase("worker: setuid", third_change, 0);
  check_tasks("after setuid", "Uid:", "Uid:\t8765\t8765\t8765\t8765");

  atomic_store(&g_stop, 1);
  if (write(g_pipe[1], "x", 1) != 1) return 2;
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
  printf("every thread finished\n");
  return g_bad;
}

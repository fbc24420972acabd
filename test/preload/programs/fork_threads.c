/* fork and process creation from worker threads while other threads
 * hammer malloc, stdio's locks and a mutex.
 *
 * Several forker threads (never main) fork concurrently, many times. Each
 * child allocates, printf()s through stdout (redirected to a pipe the
 * parent reads), creates and joins threads, takes the mutex the busy
 * threads use (consistent through pthread_atfork handlers) and ends with a
 * status of its own (_exit, exit, or pthread_exit: status 0), which the
 * parent checks with waitpid. Each forker also runs, from its worker
 * thread: fork + exec, vfork + exec, posix_spawn, popen and system(). Busy
 * threads keep every CPU loaded, so preemption ticks and notifications
 * fire throughout. Prints only deterministic totals; exits 1 on any
 * mismatch, with a line on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { kForkers = 3, kRounds = 6 };

static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static long g_counter;
static atomic_int g_stop;
static atomic_int g_failures;
static pthread_key_t g_key; /* each forker's value must be there in its children */

static void fail(const char *what, int forker, int round, long got) {
  fprintf(stderr, "forker %d round %d: %s (got %ld)\n", forker, round, what, got);
  atomic_fetch_add(&g_failures, 1);
}

/* A child of a worker must find the mutex free: no thread that could hold
 * it exists there. The usual discipline holds it across fork. */
static void prepare(void) { pthread_mutex_lock(&g_mutex); }
static void parent_after(void) { pthread_mutex_unlock(&g_mutex); }
static void child_after(void) { pthread_mutex_unlock(&g_mutex); }

static void *busy(void *arg) {
  FILE *sink = arg;
  unsigned n = 0;
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    /* malloc from many sizes (several bins, sometimes mmap). */
    size_t size = 16u << (n % 14);
    char *p = malloc(size);
    if (p != NULL) p[size - 1] = (char)n;
    free(p);
    pthread_mutex_lock(&g_mutex);
    g_counter++;
    pthread_mutex_unlock(&g_mutex);
    /* stdio: the list lock and a stream's lock, also stdout's. */
    fprintf(sink, "%u\n", n);
    flockfile(stdout);
    funlockfile(stdout);
    n++;
  }
  return NULL;
}

static void *child_thread(void *arg) {
  long id = (long)arg;
  char *p = malloc(1000 + (size_t)id);
  if (p == NULL) return NULL;
  memset(p, 'x', 1000);
  pthread_mutex_lock(&g_mutex);
  g_counter++;
  pthread_mutex_unlock(&g_mutex);
  free(p);
  return (void *)(id * 3);
}

static int child_status(int forker, int round) {
  return round % 3 == 2 ? 0 : 100 + forker * kRounds + round;
}

/* The forked child: everything a child of a threaded parent may do. */
static void child_main(int out, int forker, int round) {
  if (dup2(out, 1) < 0) _exit(90);
  if (pthread_getspecific(g_key) != (void *)(long)(forker + 1)) _exit(95);
  char *blocks[64];
  for (int i = 0; i < 64; i++) {
    blocks[i] = malloc(32u << (i % 12));
    if (blocks[i] == NULL) _exit(91);
  }
  for (int i = 0; i < 64; i++) free(blocks[i]);
  pthread_t t[3];
  for (long i = 0; i < 3; i++)
    if (pthread_create(&t[i], NULL, child_thread, (void *)i) != 0) _exit(92);
  long sum = 0;
  for (int i = 0; i < 3; i++) {
    void *r;
    if (pthread_join(t[i], &r) != 0) _exit(93);
    sum += (long)r;
  }
  if (pthread_mutex_lock(&g_mutex) != 0) _exit(94);
  g_counter++;
  pthread_mutex_unlock(&g_mutex);
  printf("child %d.%d sum %ld\n", forker, round, sum);
  /* Three ways to end: _exit, exit (atexit handlers, stdio flushed) and
   * pthread_exit of the only thread (the process exits with status 0). */
  switch (round % 3) {
    case 0:
      fflush(stdout);
      _exit(child_status(forker, round));
    case 1:
      exit(child_status(forker, round));
    default:
      fflush(stdout);
      pthread_exit(NULL);
  }
}

static int exit_status(pid_t pid) {
  int status;
  pid_t r;
  while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (r != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status)
                           : 1000 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void fork_round(int forker, int round) {
  int fds[2];
  if (pipe(fds) != 0) {
    fail("pipe", forker, round, errno);
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    child_main(fds[1], forker, round);
  }
  close(fds[1]);
  if (pid < 0) {
    fail("fork", forker, round, errno);
    close(fds[0]);
    return;
  }
  char buf[128], want[128];
  size_t got = 0;
  ssize_t n;
  while (got < sizeof buf - 1 && (n = read(fds[0], buf + got, sizeof buf - 1 - got)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    got += (size_t)n;
  }
  buf[got] = '\0';
  close(fds[0]);
  snprintf(want, sizeof want, "child %d.%d sum 9\n", forker, round);
  if (strcmp(buf, want) != 0) fail("child's output differs", forker, round, (long)got);
  int st = exit_status(pid);
  if (st != child_status(forker, round)) fail("fork child's status", forker, round, st);
}

static void spawn_round(int forker, int round) {
  int st;
  /* fork + exec */
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", "exit 37", (char *)NULL);
    _exit(127);
  }
  if ((st = exit_status(pid)) != 37) fail("fork+exec status", forker, round, st);
  /* vfork + exec */
  pid = vfork();
  if (pid == 0) {
    execl("/bin/true", "true", (char *)NULL);
    _exit(127);
  }
  if ((st = exit_status(pid)) != 0) fail("vfork+exec status", forker, round, st);
  /* posix_spawn */
  char *argv[] = {"sh", "-c", "exit 38", NULL};
  if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0)
    fail("posix_spawn", forker, round, errno);
  else if ((st = exit_status(pid)) != 38)
    fail("posix_spawn status", forker, round, st);
  /* popen */
  FILE *f = popen("echo popen-ok; exit 3", "r");
  char line[64] = "";
  if (f == NULL) {
    fail("popen", forker, round, errno);
  } else {
    if (fgets(line, sizeof line, f) == NULL || strcmp(line, "popen-ok\n") != 0)
      fail("popen's output", forker, round, (long)strlen(line));
    st = pclose(f);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 3) fail("pclose status", forker, round, st);
  }
  /* system */
  st = system("exit 39");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 39) fail("system status", forker, round, st);
}

static void *forker(void *arg) {
  int id = (int)(long)arg;
  pthread_setspecific(g_key, (void *)(long)(id + 1));
  for (int round = 0; round < kRounds; round++) {
    fork_round(id, round);
    if (round == 3) spawn_round(id, round);
  }
  return NULL;
}

int main(void) {
  alarm(60); /* a hang fails the test rather than waiting for ctest */
  pthread_atfork(prepare, parent_after, child_after);
  pthread_key_create(&g_key, NULL);
  FILE *sink = fopen("/dev/null", "w");
  if (sink == NULL) return 2;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int nbusy = (int)(cpus < 1 ? 1 : cpus > 8 ? 8 : cpus) + 1;
  pthread_t busy_t[9], fork_t[kForkers];
  for (int i = 0; i < nbusy; i++) pthread_create(&busy_t[i], NULL, busy, sink);
  for (long i = 0; i < kForkers; i++) pthread_create(&fork_t[i], NULL, forker, (void *)i);
  for (int i = 0; i < kForkers; i++) pthread_join(fork_t[i], NULL);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < nbusy; i++) pthread_join(busy_t[i], NULL);
  fclose(sink);
  int failures = atomic_load(&g_failures);
  printf("%d forkers x %d rounds from worker threads: %s\n", kForkers, kRounds,
         failures == 0 ? "every child ran and exited as expected" : "FAILED");
  printf("mutex used by the parent's threads: %s\n", g_counter > 0 ? "yes" : "no");
  return failures == 0 ? 0 : 1;
}

/* A program that forks children which exit normally (running the atexit
 * handlers), from main and from a worker thread's process while busy
 * threads run. Under the shim with PARLIB_STATS=1 the statistics table
 * must be printed once, by this process, not once more per child. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;

static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
  }
  return NULL;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, busy, NULL);
  int ok = 0;
  for (int i = 0; i < 3; ++i) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) exit(0); /* exit, not _exit: the atexit handlers run */
    int st;
    if (p > 0 && waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0) ++ok;
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  printf("children exited: %d\n", ok);
  return 0;
}

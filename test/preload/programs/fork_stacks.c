/* A fork child of a worker thread creates and joins more threads than
 * glibc's stack cache holds (8 at once, 8 MiB stacks each, twice: over its
 * 40 MB limit, so glibc unmaps cached stacks, among them those of the
 * parent's other threads, which fork put in the child's cache), and exits
 * normally; so does a second child forked from another worker. Under the
 * shim the child is a copy of a vcore's task, whose rseq area lies in that
 * task's TCB among those stacks.
 *
 * Output: the children's statuses, identical natively and under the shim. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

enum { THREADS = 8, ROUNDS = 2 };

static void *work(void *arg) {
  volatile char page[8192];
  page[0] = 1; /* touch the stack */
  (void)page[0];
  return arg;
}

static void *forker(void *arg) {
  (void)arg;
  pid_t pid = fork();
  if (pid == 0) {
    for (int r = 0; r < ROUNDS; ++r) {
      pthread_t t[THREADS];
      for (int i = 0; i < THREADS; ++i)
        if (pthread_create(&t[i], NULL, work, NULL) != 0) _exit(3);
      for (int i = 0; i < THREADS; ++i) pthread_join(t[i], NULL);
    }
    _exit(7);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) status = -1;
  printf("child: %s %d\n", WIFEXITED(status) ? "exit" : "signal",
         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (int i = 0; i < 2; ++i) {
    pthread_t t;
    pthread_create(&t, NULL, forker, NULL);
    pthread_join(t, NULL);
  }
  return 0;
}

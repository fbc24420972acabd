/* fork from a threaded program: the child creates and joins threads,
 * takes a mutex the parent's threads used, then execs; the parent goes on
 * with its threads and reaps the child. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static volatile int stop;

static void *busy(void *arg) {
  (void)arg;
  while (!stop) {
    pthread_mutex_lock(&m);
    counter++;
    pthread_mutex_unlock(&m);
  }
  return NULL;
}
static void *child_work(void *arg) {
  long id = (long)arg;
  pthread_mutex_lock(&m);
  counter++;
  pthread_mutex_unlock(&m);
  return (void *)(id * 2);
}

/* The usual discipline: no lock may be held across fork by a thread that
 * will not exist in the child. */
static void prepare(void) { pthread_mutex_lock(&m); }
static void release(void) { pthread_mutex_unlock(&m); }

int main(void) {
  pthread_t t[4];
  pthread_atfork(prepare, release, release);
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, busy, NULL);
  usleep(10000);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    pthread_t c[4];
    long sum = 0;
    for (long i = 0; i < 4; i++)
      if (pthread_create(&c[i], NULL, child_work, (void *)i) != 0) _exit(10);
    for (int i = 0; i < 4; i++) {
      void *r;
      if (pthread_join(c[i], &r) != 0) _exit(11);
      sum += (long)r;
    }
    printf("child: threads joined, sum %ld\n", sum);
    fflush(stdout);
    execlp("sh", "sh", "-c", "echo child: exec works; exit 7", (char *)NULL);
    _exit(12);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  stop = 1;
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  printf("parent: child exit status %d, counter positive %d\n",
         WIFEXITED(status) ? WEXITSTATUS(status) : -1, counter > 0);
  return 0;
}

/* Process exit while threads run. argv[1] picks the path:
 *   return    main returns 3 while workers spin and block
 *   exit      a worker calls exit(5) while others (and main) run
 *   mainexit  main calls pthread_exit; the workers finish and the process
 *             exits 0 after the last one
 *   abort     a worker calls abort() while others run (SIGABRT status) */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static volatile int spin_forever = 1;

static void *spinner(void *arg) {
  (void)arg;
  while (spin_forever) sched_yield();
  return NULL;
}
static void *blocker(void *arg) {
  (void)arg;
  pthread_mutex_lock(&m);
  for (;;) pthread_cond_wait(&never, &m);
  return NULL;
}
static void *exiter(void *arg) {
  (void)arg;
  usleep(20000);
  printf("worker calls exit(5)\n");
  exit(5);
}
static void *aborter(void *arg) {
  (void)arg;
  usleep(20000);
  printf("worker calls abort()\n");
  fflush(stdout);
  abort();
}
static int finished;
static void *finisher(void *arg) {
  usleep(10000 * (int)(long)arg);
  pthread_mutex_lock(&m);
  finished++;
  pthread_mutex_unlock(&m);
  return NULL;
}
static void report(void) { printf("atexit: finished %d\n", finished); }

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "return";
  pthread_t t;
  atexit(report);
  if (strcmp(mode, "mainexit") == 0) {
    for (long i = 1; i <= 4; i++) pthread_create(&t, NULL, finisher, (void *)i);
    printf("main calls pthread_exit\n");
    fflush(stdout);
    pthread_exit(NULL);
  }
  for (int i = 0; i < 4; i++) pthread_create(&t, NULL, spinner, NULL);
  for (int i = 0; i < 4; i++) pthread_create(&t, NULL, blocker, NULL);
  if (strcmp(mode, "exit") == 0 || strcmp(mode, "abort") == 0) {
    pthread_create(&t, NULL, strcmp(mode, "exit") == 0 ? exiter : aborter, NULL);
    for (;;) sleep(1); /* pause() would hold a vcore in the kernel (docs/preload.md) */
  }
  usleep(20000);
  printf("main returns 3\n");
  return 3;
}

/* The program the gdb extension's test (gdb_test.sh) debugs: named
 * uthreads, each in a known state when the spinner reaches
 * debugger_checkpoint(): blocked on a mutex, on a condition variable, in
 * read(), sleeping, thread0 (main) in upthread_join, and the spinner
 * running; it then spins for good. It never ends by itself: the test kills
 * it. */
#include <parlib/uthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <upthread/upthread.h>

static upthread_mutex_t g_mutex;
static upthread_mutex_t g_cv_mutex;
static upthread_cond_t g_cv;
static int g_pipe[2];
static upthread_t g_main;

/* The uthread's state as the library keeps it (uthread.h: state_; 2 is
 * "stopped", 4 "blocked"): the checkpoint waits on it so that each thread
 * really is off its vcore, rather than on a flag set just before it
 * blocks. upthread_join leaves its caller stopped, the other waits
 * blocked. */
static int is_blocked(upthread_t t) {
  unsigned s = __atomic_load_n(&((struct uthread *)t)->state_, __ATOMIC_ACQUIRE);
  return s == 2 || s == 4;
}

static void *locker_main(void *arg) {
  (void)arg;
  uthread_set_name(uthread_self(), "locker");
  upthread_mutex_lock(&g_mutex); /* main holds it */
  upthread_mutex_unlock(&g_mutex);
  return NULL;
}

static void *waiter_main(void *arg) {
  (void)arg;
  uthread_set_name(uthread_self(), "waiter");
  upthread_mutex_lock(&g_cv_mutex);
  upthread_cond_wait(&g_cv, &g_cv_mutex); /* never signalled */
  upthread_mutex_unlock(&g_cv_mutex);
  return NULL;
}

static void *reader_main(void *arg) {
  (void)arg;
  uthread_set_name(uthread_self(), "reader");
  char c;
  if (read(g_pipe[0], &c, 1) < 0) perror("read"); /* nothing is ever written */
  return NULL;
}

static void *sleeper_main(void *arg) {
  (void)arg;
  uthread_set_name(uthread_self(), "sleeper");
  usleep(600 * 1000 * 1000);
  return NULL;
}

/* The debugger's breakpoint. */
__attribute__((noinline)) void debugger_checkpoint(void) { __asm__ volatile("" ::: "memory"); }

__attribute__((noinline)) static void spin_forever(void) {
  for (;;) __asm__ volatile("" ::: "memory");
}

static void *spinner_main(void *arg) {
  (void)arg;
  uthread_set_name(uthread_self(), "spinner");
  /* Yield until main is blocked in its join: spinning here could keep main
   * queued behind this thread on one vcore. */
  while (!is_blocked(g_main)) upthread_yield();
  printf("gdb_target: ready\n");
  fflush(stdout);
  debugger_checkpoint();
  spin_forever();
  return NULL;
}

int main(void) {
  if (pipe(g_pipe) != 0) return 1;
  upthread_mutex_init(&g_mutex, NULL);
  upthread_mutex_init(&g_cv_mutex, NULL);
  upthread_cond_init(&g_cv, NULL);
  upthread_mutex_lock(&g_mutex);

  void *(*mains[])(void *) = {locker_main, waiter_main, reader_main, sleeper_main};
  upthread_t threads[4];
  for (int i = 0; i < 4; i++)
    if (upthread_create(&threads[i], NULL, mains[i], NULL) != 0) return 1;
  for (int i = 0; i < 4; i++)
    while (!is_blocked(threads[i])) upthread_yield();
  g_main = upthread_self();
  upthread_t spinner;
  if (upthread_create(&spinner, NULL, spinner_main, NULL) != 0) return 1;
  upthread_join(spinner, NULL); /* never returns */
  return 1;
}

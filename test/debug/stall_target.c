/* The program of the stall report's test (stall_test.sh): a uthread named
 * "hog" spins, without a scheduling point, until SIGUSR2 says the test saw
 * its report; then it sleeps 1 ms (a scheduling point) and spins again
 * until the next SIGUSR2. Each spin is one stall. Before it, a uthread
 * named "polite" runs for 300 ms, sleeping every millisecond, and must
 * never be reported. (Not at the same time: polite's wakeups would let a
 * preemptive 2LS take the hog off its vcore, which ends a stall.) */
#include <parlib/uthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <upthread/upthread.h>

static volatile sig_atomic_t g_go_on;

static void on_usr2(int sig) {
  (void)sig;
  g_go_on++;
}

/* Exported (the program links with -rdynamic) so that the report's
 * backtrace names it. */
__attribute__((noinline)) void hog_spin(int until) {
  while (g_go_on < until) __asm__ volatile("" ::: "memory");
}

static void *hog_main(void *arg) {
  (void)arg;
  uthread_set_name(uthread_self(), "hog");
  printf("stall_target: spinning\n");
  fflush(stdout);
  hog_spin(1);
  usleep(1000);
  hog_spin(2);
  return NULL;
}

static void *polite_main(void *arg) {
  (void)arg;
  uthread_set_name(uthread_self(), "polite");
  for (int i = 0; i < 300; i++) usleep(1000);
  return NULL;
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_usr2;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, NULL);
  upthread_t hog, polite;
  if (upthread_create(&polite, NULL, polite_main, NULL) != 0) return 1;
  upthread_join(polite, NULL);
  if (upthread_create(&hog, NULL, hog_main, NULL) != 0) return 1;
  upthread_join(hog, NULL);
  printf("stall_target: done\n");
  return 0;
}

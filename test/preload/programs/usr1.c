/* A program that uses SIGUSR1 itself keeps it (kill, raise, pthread_kill,
 * signal()), and the runtime keeps preempting: the spinning threads below
 * finish only if their vcores are still notified. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static volatile int arrived;

static void on_usr1(int sig) {
  (void)sig;
  got++;
}
static void on_usr1_info(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)uc;
  if (info->si_code == SI_USER) got += 100;
}
static void *spinner(void *arg) {
  __atomic_add_fetch(&arrived, 1, __ATOMIC_SEQ_CST);
  while (arrived < 9) {
  }
  return arg;
}
static void *target(void *arg) {
  (void)arg;
  while (got < 3) usleep(1000);
  return NULL;
}

int main(void) {
  struct sigaction sa, old;
  setvbuf(stdout, NULL, _IOLBF, 0); /* the last kill ends the process */
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, &old);
  printf("previous action default: %d\n", old.sa_handler == SIG_DFL);
  kill(getpid(), SIGUSR1);
  for (int i = 0; i < 5000 && got < 1; i++) usleep(1000);
  raise(SIGUSR1);
  printf("after kill and raise: %d\n", (int)got);
  pthread_t t;
  pthread_create(&t, NULL, target, NULL);
  pthread_kill(t, SIGUSR1);
  pthread_join(t, NULL);
  printf("after pthread_kill: %d\n", (int)got);
  sigaction(SIGUSR1, NULL, &old);
  printf("current action is ours: %d\n", old.sa_handler == on_usr1);
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_usr1_info;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGUSR1, &sa, NULL);
  kill(getpid(), SIGUSR1);
  for (int i = 0; i < 5000 && got < 103; i++) usleep(1000);
  printf("siginfo handler: %d\n", (int)got);
  signal(SIGUSR1, SIG_IGN);
  kill(getpid(), SIGUSR1);
  usleep(10000);
  printf("ignored: %d\n", (int)got);
  pthread_t s[8];
  for (int i = 0; i < 8; i++) pthread_create(&s[i], NULL, spinner, NULL);
  __atomic_add_fetch(&arrived, 1, __ATOMIC_SEQ_CST);
  while (arrived < 9) {
  }
  for (int i = 0; i < 8; i++) pthread_join(s[i], NULL);
  printf("spinners done: %d\n", arrived);
  signal(SIGUSR1, SIG_DFL);
  kill(getpid(), SIGUSR1);
  sleep(1);
  printf("not reached\n");
  return 0;
}

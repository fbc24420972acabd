/* Signals the program installs itself reach their handlers while threads
 * run: SIGALRM from alarm(), SIGINT from raise() and kill(), SIGCHLD from
 * a child's exit. (SIGUSR1 is the runtime's: docs/preload.md.) */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_alrm, got_int, got_chld;
static volatile int stop;

static void on_signal(int sig) {
  if (sig == SIGALRM) got_alrm++;
  if (sig == SIGINT) got_int++;
  if (sig == SIGCHLD) got_chld++;
}
static void *worker(void *arg) {
  (void)arg;
  while (!stop) usleep(1000);
  return NULL;
}
static void wait_for(volatile sig_atomic_t *flag) {
  for (int i = 0; i < 5000 && !*flag; i++) usleep(1000);
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGALRM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGCHLD, &sa, NULL);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, NULL);
  alarm(1);
  wait_for(&got_alrm);
  printf("SIGALRM handled: %d\n", (int)got_alrm);
  raise(SIGINT);
  wait_for(&got_int);
  kill(getpid(), SIGINT);
  for (int i = 0; i < 5000 && got_int < 2; i++) usleep(1000);
  printf("SIGINT handled: %d\n", (int)got_int);
  pid_t pid = fork();
  if (pid == 0) _exit(3);
  wait_for(&got_chld);
  int status;
  waitpid(pid, &status, 0);
  printf("SIGCHLD handled: %d, child status %d\n", (int)got_chld, WEXITSTATUS(status));
  stop = 1;
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  return 0;
}

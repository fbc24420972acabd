/* pthread_kill of a thread blocked in read(): a plain pthread program (no
 * parlib). A handler installed without SA_RESTART makes the read fail with
 * EINTR and runs in the reader; with SA_RESTART the read goes on and
 * returns the data written later. Under the shim the reader is a upthread
 * whose read waits on the syscall service, and pthread_kill is
 * upthread_kill. The alarm turns a read that is never interrupted into
 * death by SIGALRM, which compare.sh reports as a different exit status.
 *
 * Output: the results only, identical natively and under the shim. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fds[2];
static pthread_t reader;
static atomic_int handler_runs;
static atomic_int handler_in_reader;
static atomic_int read_done;
static ssize_t read_result;
static int read_errno;
static char buf[8];

static void on_usr2(int sig) {
  (void)sig;
  if (pthread_equal(pthread_self(), reader)) atomic_fetch_add(&handler_in_reader, 1);
  atomic_fetch_add(&handler_runs, 1);
}

static void *read_once(void *arg) {
  (void)arg;
  errno = 0;
  read_result = read(fds[0], buf, sizeof buf);
  read_errno = errno;
  atomic_store(&read_done, 1);
  return NULL;
}

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static void run(int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, NULL);
  if (pipe(fds) != 0) exit(3);
  atomic_store(&handler_runs, 0);
  atomic_store(&handler_in_reader, 0);
  atomic_store(&read_done, 0);
  memset(buf, 0, sizeof buf);
  if (pthread_create(&reader, NULL, read_once, NULL) != 0) exit(3);
  pause_ms(50);
  if (flags & SA_RESTART) {
    pthread_kill(reader, SIGUSR2);
    while (atomic_load(&handler_runs) == 0) pause_ms(1);
    pause_ms(50);
    printf("SA_RESTART: still reading after the handler: %s\n",
           atomic_load(&read_done) ? "no" : "yes");
    if (write(fds[1], "hi", 2) != 2) exit(3);
  } else {
    /* Until the read ends: a kill that came before the read started only
     * runs the handler. */
    while (!atomic_load(&read_done)) {
      pthread_kill(reader, SIGUSR2);
      pause_ms(20);
    }
  }
  pthread_join(reader, NULL);
  printf("%s: read returned %zd (%s) \"%s\", handler ran in the reader: %s\n",
         (flags & SA_RESTART) ? "SA_RESTART" : "no SA_RESTART", read_result,
         read_result < 0 ? strerror(read_errno) : "ok", buf,
         atomic_load(&handler_in_reader) > 0 ? "yes" : "no");
  close(fds[0]);
  close(fds[1]);
}

int main(void) {
  alarm(20);
  run(0);
  run(SA_RESTART);
  return 0;
}

/* The runtime's own signals never surface: a plain pthread program (no
 * parlib) whose worker threads wait in the kernel's interruptible calls
 * while busy threads keep every CPU loaded, so that under the shim
 * preemption ticks and notifications really fire during the waits.
 *
 * Natively none of these calls returns early: no handler runs on the
 * waiting threads except the one for the SIGUSR2 that main sends to end
 * sigsuspend and pause. Under the shim a handler of the runtime's running
 * on a waiting task made the kernel end the call with EINTR (or end the
 * signal wait) whatever SA_RESTART says. Each timed wait must time out,
 * no earlier than its timeout; each untimed one must still be waiting
 * when main ends it (a message, data on a socket, SIGUSR2 to the task
 * that /proc shows in sigsuspend or pause).
 *
 * Output: one line per call, identical natively and under the shim. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 300

static atomic_int stop_busy;
static atomic_int usr2_runs;
static int pipe_fds[2];
static int sock_fds[2];
static int sem_id, msg_id;

enum wait_kind {
  W_SIGTIMEDWAIT,
  W_PSELECT,
  W_PPOLL,
  W_EPOLL_PWAIT,
  W_SEMTIMEDOP,
  W_NANOSLEEP,
  W_FUTEX,
  W_TIMED_END,  // the untimed ones below are ended by main
  W_SIGSUSPEND = W_TIMED_END,
  W_PAUSE,
  W_MSGRCV,
  W_RECV,
  W_COUNT
};
static const char *const names[W_COUNT] = {
    "sigtimedwait",      "pselect",    "ppoll", "epoll_pwait", "semtimedop",       "nanosleep",
    "futex(FUTEX_WAIT)", "sigsuspend", "pause", "msgrcv",      "recv(SO_RCVTIMEO)"};

struct result {
  long ret;
  int err;
  long elapsed_ms;
  atomic_int done;
};
static struct result results[W_COUNT];

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_usr2(int sig) {
  (void)sig;
  atomic_fetch_add(&usr2_runs, 1);
}

static void *busy(void *arg) {
  (void)arg;
  volatile unsigned long spin = 0;
  while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) ++spin;
  return NULL;
}

static long do_wait(int kind) {
  struct timespec tmo = {0, TIMEOUT_MS * 1000000L};
  switch (kind) {
    case W_SIGTIMEDWAIT: {
      sigset_t set;  // a signal nobody sends
      sigemptyset(&set);
      sigaddset(&set, SIGRTMIN + 5);
      return sigtimedwait(&set, NULL, &tmo);
    }
    case W_PSELECT: {
      fd_set rd;
      FD_ZERO(&rd);
      FD_SET(pipe_fds[0], &rd);
      return pselect(pipe_fds[0] + 1, &rd, NULL, NULL, &tmo, NULL);
    }
    case W_PPOLL: {
      struct pollfd p = {pipe_fds[0], POLLIN, 0};
      return ppoll(&p, 1, &tmo, NULL);
    }
    case W_EPOLL_PWAIT: {
      int ep = epoll_create1(EPOLL_CLOEXEC);
      struct epoll_event ev = {.events = EPOLLIN};
      epoll_ctl(ep, EPOLL_CTL_ADD, pipe_fds[0], &ev);
      sigset_t none;
      sigemptyset(&none);
      long r = epoll_pwait(ep, &ev, 1, TIMEOUT_MS, &none);
      int e = errno;
      close(ep);
      errno = e;
      return r;
    }
    case W_SEMTIMEDOP: {
      struct sembuf op = {0, -1, 0};  // the value stays 0
      return semtimedop(sem_id, &op, 1, &tmo);
    }
    case W_NANOSLEEP:
      return nanosleep(&tmo, NULL);
    case W_FUTEX: {
      static int word;
      return syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &tmo, NULL, 0);
    }
    case W_SIGSUSPEND: {
      sigset_t none;
      sigemptyset(&none);
      return sigsuspend(&none);
    }
    case W_PAUSE:
      return pause();
    case W_MSGRCV: {
      struct {
        long type;
        char text[8];
      } m;
      return msgrcv(msg_id, &m, sizeof m.text, 1, 0);
    }
    case W_RECV: {
      char c;
      return recv(sock_fds[0], &c, 1, 0);
    }
  }
  return -2;
}

static void *waiter(void *arg) {
  int kind = (int)(long)arg;
  long start = now_ms();
  errno = 0;
  results[kind].ret = do_wait(kind);
  results[kind].err = errno;
  results[kind].elapsed_ms = now_ms() - start;
  atomic_store(&results[kind].done, 1);
  return NULL;
}

/* The task that is inside system call nr, from /proc/self/task/TID/syscall;
 * 0 if none is (yet). */
static pid_t task_in_syscall(long nr) {
  DIR *d = opendir("/proc/self/task");
  if (d == NULL) return 0;
  pid_t found = 0;
  struct dirent *e;
  while (found == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300], line[128];
    snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue;
    if (fgets(line, sizeof line, f) != NULL && strtol(line, NULL, 10) == nr && line[0] >= '0' &&
        line[0] <= '9')
      found = (pid_t)atoi(e->d_name);
    fclose(f);
  }
  closedir(d);
  return found;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Ends the wait of kind (in system call nr) with one SIGUSR2 to its task,
 * once /proc shows that task inside the call. */
static void signal_waiter(int kind, long nr) {
  long deadline = now_ms() + 10000;
  int sent = 0;
  while (!atomic_load(&results[kind].done)) {
    pid_t tid = sent ? 0 : task_in_syscall(nr);
    if (tid != 0) sent = syscall(SYS_tgkill, getpid(), tid, SIGUSR2) == 0;
    if (now_ms() > deadline) {
      printf("%s: not ended by SIGUSR2 within 10 s\n", names[kind]);
      exit(1);
    }
    sleep_ms(2);
  }
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sa.sa_flags = SA_RESTART;  // natively irrelevant: these calls never restart
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, NULL);
  if (pipe(pipe_fds) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sock_fds) != 0) return 3;
  struct timeval rcv = {10, 0};  // longer than the test: only data ends it
  setsockopt(sock_fds[0], SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof rcv);
  sem_id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
  msg_id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  if (sem_id < 0 || msg_id < 0) return 3;

  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int nbusy = (int)(cpus < 1 ? 1 : cpus) + 1;
  pthread_t busy_threads[nbusy], waiters[W_COUNT];
  for (int i = 0; i < nbusy; ++i) pthread_create(&busy_threads[i], NULL, busy, NULL);
  // The timed waits first, then the untimed ones: under the shim a wait
  // on a vcore's io_uring (ppoll, nanosleep, recv) completes only when
  // that vcore's task comes back from the program's call it runs, so it
  // must not be left behind one that only main ends (docs/preload.md).
  for (int k = 0; k < W_TIMED_END; ++k) pthread_create(&waiters[k], NULL, waiter, (void *)(long)k);
  for (int k = 0; k < W_TIMED_END; ++k) pthread_join(waiters[k], NULL);
  long start = now_ms();
  for (int k = W_TIMED_END; k < W_COUNT; ++k)
    pthread_create(&waiters[k], NULL, waiter, (void *)(long)k);
  // The untimed ones wait, under load, at least as long as the timed ones.
  while (now_ms() - start < TIMEOUT_MS) sleep_ms(10);
  int early = 0;
  for (int k = W_TIMED_END; k < W_COUNT; ++k)
    if (atomic_load(&results[k].done)) {
      printf("%s: returned %ld (%s) before it was ended\n", names[k], results[k].ret,
             strerror(results[k].err));
      early = 1;
    }
  signal_waiter(W_SIGSUSPEND, SYS_rt_sigsuspend);
  signal_waiter(W_PAUSE, SYS_pause);
  struct {
    long type;
    char text[8];
  } m = {1, "message"};
  msgsnd(msg_id, &m, sizeof m.text, 0);
  send(sock_fds[1], "x", 1, 0);
  for (int k = W_TIMED_END; k < W_COUNT; ++k) pthread_join(waiters[k], NULL);
  atomic_store(&stop_busy, 1);
  for (int i = 0; i < nbusy; ++i) pthread_join(busy_threads[i], NULL);
  semctl(sem_id, 0, IPC_RMID);
  msgctl(msg_id, IPC_RMID, NULL);

  int bad = early;
  for (int k = 0; k < W_COUNT; ++k) {
    struct result *r = &results[k];
    int timed = k < W_TIMED_END;
    // The result natively: timed waits time out (0 from the selects,
    // EAGAIN or ETIMEDOUT from the rest), signal waits end with EINTR after
    // main's SIGUSR2, the message and the byte arrive.
    int want_err = k == W_SIGTIMEDWAIT || k == W_SEMTIMEDOP ? EAGAIN
                   : k == W_FUTEX                           ? ETIMEDOUT
                   : k == W_SIGSUSPEND || k == W_PAUSE      ? EINTR
                                                            : 0;
    long want_ret = want_err != 0 ? -1 : k == W_MSGRCV ? 8 : k == W_RECV ? 1 : 0;
    int ok = r->ret == want_ret && (want_err == 0 || r->err == want_err);
    if (ok && timed && r->elapsed_ms < TIMEOUT_MS) ok = 0;
    if (ok) {
      printf("%s: %s\n", names[k],
             timed ? "timed out, not before its timeout" : "ended by main only");
    } else {
      printf("%s: returned %ld (%s) after %ld ms\n", names[k], r->ret, strerror(r->err),
             r->elapsed_ms);
      bad = 1;
    }
  }
  printf("SIGUSR2 handler ran %s\n",
         atomic_load(&usr2_runs) == 2 ? "twice" : "a wrong number of times");
  return bad;
}

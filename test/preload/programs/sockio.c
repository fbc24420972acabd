/* Blocking socket calls keep their native semantics: SO_RCVTIMEO and
 * SO_SNDTIMEO (EAGAIN after at least the timeout, partial counts kept),
 * O_NONBLOCK set later with fcntl or ioctl(FIONBIO), MSG_DONTWAIT,
 * MSG_WAITALL, EOF and errors. A plain pthread program (no parlib): the
 * calls run in a worker thread while busy threads load every CPU, so that
 * preemption ticks and notifications fire during the waits. Under the shim
 * they go to the syscall service (io_uring, or helper threads).
 *
 * Output: results only, identical natively and under the shim. alarm()
 * turns a call that never returns into death by SIGALRM. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 100

static atomic_int stop_busy;

/* Keeps a CPU busy, yielding now and then (a upthread queued behind a
 * pure spinner on its vcore waits for a preemption tick; the ticks fire
 * either way). */
static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
    for (int i = 0; i < 2000; ++i) __asm__ volatile("pause");
    sched_yield();
  }
  return NULL;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void set_timeout(int fd, int opt, long ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv) != 0) {
    perror("setsockopt");
    exit(3);
  }
}

static const char *err_name(long r, int err) {
  if (r >= 0) return "ok";
  switch (err) {
    case EAGAIN:
      return "EAGAIN";
    case EBADF:
      return "EBADF";
    case ENOTSOCK:
      return "ENOTSOCK";
    case EPIPE:
      return "EPIPE";
    case EINTR:
      return "EINTR";
    default:
      return "other";
  }
}

/* A call that must time out: its result and whether it waited at least
 * the timeout (and returned within a generous bound). */
#define TIMED(label, call)                                              \
  do {                                                                  \
    long t0 = now_ms();                                                 \
    errno = 0;                                                          \
    long r_ = (long)(call);                                             \
    int e_ = errno;                                                     \
    long dt = now_ms() - t0;                                            \
    printf("%s: %s, waited the timeout: %s\n", label, err_name(r_, e_), \
           dt >= TIMEOUT_MS - 1 && dt < 5000 ? "yes" : "no");           \
  } while (0)

static void pair(int sv[2]) {
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    perror("socketpair");
    exit(3);
  }
}

struct delayed {
  int fd;
  const char *data;
  size_t len;
  int chunks;
  int shut;
};

/* Writes data in chunks, pausing between them, then maybe shuts down. */
static void *writer(void *arg) {
  struct delayed *d = arg;
  size_t per = d->len / (size_t)d->chunks;
  for (int i = 0; i < d->chunks; ++i) {
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    size_t n = i == d->chunks - 1 ? d->len - per * (size_t)i : per;
    if (write(d->fd, d->data + per * (size_t)i, n) != (ssize_t)n) exit(4);
  }
  if (d->shut) shutdown(d->fd, SHUT_WR);
  return NULL;
}

static void rcvtimeo(void) {
  int sv[2];
  char buf[64];
  pair(sv);
  set_timeout(sv[0], SO_RCVTIMEO, TIMEOUT_MS);
  TIMED("recv SO_RCVTIMEO", recv(sv[0], buf, sizeof buf, 0));
  TIMED("read SO_RCVTIMEO", read(sv[0], buf, sizeof buf));
  struct msghdr m;
  struct iovec iov = {buf, sizeof buf};
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  TIMED("recvmsg SO_RCVTIMEO", recvmsg(sv[0], &m, 0));
  /* MSG_WAITALL: what came before the timeout is returned. */
  if (write(sv[1], "abc", 3) != 3) exit(4);
  long t0 = now_ms();
  ssize_t r = recv(sv[0], buf, sizeof buf, MSG_WAITALL);
  long dt = now_ms() - t0;
  printf("recv MSG_WAITALL SO_RCVTIMEO: %zd bytes, waited the timeout: %s\n", r,
         dt >= TIMEOUT_MS - 1 && dt < 5000 ? "yes" : "no");
  /* Data that arrives within the timeout is received. */
  struct delayed d = {sv[1], "xy", 2, 1, 0};
  pthread_t w;
  pthread_create(&w, NULL, writer, &d);
  set_timeout(sv[0], SO_RCVTIMEO, 3000);
  r = recv(sv[0], buf, sizeof buf, 0);
  printf("recv within the timeout: %zd\n", r);
  pthread_join(w, NULL);
  close(sv[0]);
  close(sv[1]);

  /* accept on a listening TCP socket. */
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4) != 0) {
    perror("listen");
    exit(3);
  }
  set_timeout(l, SO_RCVTIMEO, TIMEOUT_MS);
  TIMED("accept SO_RCVTIMEO", accept(l, NULL, NULL));
  TIMED("accept4 SO_RCVTIMEO", accept4(l, NULL, NULL, SOCK_CLOEXEC));
  close(l);
}

static void sndtimeo(void) {
  int sv[2];
  pair(sv);
  int small = 4096;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  set_timeout(sv[0], SO_SNDTIMEO, TIMEOUT_MS);
  size_t len = 4 << 20;
  char *big = calloc(1, len);
  long t0 = now_ms();
  ssize_t r = send(sv[0], big, len, 0);
  long dt = now_ms() - t0;
  printf("send SO_SNDTIMEO: %s, waited the timeout: %s\n",
         r > 0 && (size_t)r < len ? "partial count" : "wrong",
         dt >= TIMEOUT_MS - 1 && dt < 5000 ? "yes" : "no");
  /* The buffer is full now: nothing more goes. */
  TIMED("send SO_SNDTIMEO, full", send(sv[0], big, len, 0));
  TIMED("write SO_SNDTIMEO, full", write(sv[0], big, len));
  struct iovec iov[2] = {{big, len / 2}, {big + len / 2, len / 2}};
  TIMED("writev SO_SNDTIMEO, full", writev(sv[0], iov, 2));
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = iov;
  m.msg_iovlen = 2;
  TIMED("sendmsg SO_SNDTIMEO, full", sendmsg(sv[0], &m, 0));
  free(big);
  close(sv[0]);
  close(sv[1]);
}

static void nonblock_later(void) {
  int sv[2];
  char buf[16];
  pair(sv);
  int fl = fcntl(sv[0], F_GETFL);
  fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
  errno = 0;
  ssize_t r = recv(sv[0], buf, sizeof buf, 0);
  printf("recv after fcntl O_NONBLOCK: %s\n", err_name(r, errno));
  errno = 0;
  r = read(sv[0], buf, sizeof buf);
  printf("read after fcntl O_NONBLOCK: %s\n", err_name(r, errno));
  fcntl(sv[0], F_SETFL, fl);
  int on = 1;
  ioctl(sv[0], FIONBIO, &on);
  errno = 0;
  r = recv(sv[0], buf, sizeof buf, 0);
  printf("recv after FIONBIO: %s\n", err_name(r, errno));
  errno = 0;
  r = accept(sv[0], NULL, NULL);
  printf("accept on a non-listening socket: %s\n", r < 0 ? "fails" : "ok");
  on = 0;
  ioctl(sv[0], FIONBIO, &on);
  /* Blocking again: waits for the data. */
  struct delayed d = {sv[1], "hello", 5, 1, 0};
  pthread_t w;
  pthread_create(&w, NULL, writer, &d);
  r = recv(sv[0], buf, sizeof buf, 0);
  printf("recv after FIONBIO off: %zd\n", r);
  pthread_join(w, NULL);
  /* A full non-blocking socket: send returns EAGAIN or a partial count. */
  fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
  size_t len = 4 << 20;
  char *big = calloc(1, len);
  r = send(sv[0], big, len, 0);
  printf("send after O_NONBLOCK: %s\n", r > 0 && (size_t)r < len ? "partial count" : "wrong");
  errno = 0;
  r = send(sv[0], big, len, 0);
  printf("send after O_NONBLOCK, full: %s\n", err_name(r, errno));
  free(big);
  close(sv[0]);
  close(sv[1]);
}

static void flags_and_eof(void) {
  int sv[2];
  char buf[64];
  pair(sv);
  errno = 0;
  ssize_t r = recv(sv[0], buf, sizeof buf, MSG_DONTWAIT);
  printf("recv MSG_DONTWAIT, empty: %s\n", err_name(r, errno));
  if (write(sv[1], "12345", 5) != 5) exit(4);
  r = recv(sv[0], buf, sizeof buf, MSG_DONTWAIT);
  printf("recv MSG_DONTWAIT, data: %zd\n", r);
  /* MSG_WAITALL gathers chunks written apart. */
  static const char msg[] = "abcdefghijklmnopqrstuvwxyz0123";
  struct delayed d = {sv[1], msg, 30, 3, 0};
  pthread_t w;
  pthread_create(&w, NULL, writer, &d);
  r = recv(sv[0], buf, 30, MSG_WAITALL);
  printf("recv MSG_WAITALL: %zd %s\n", r, r == 30 && memcmp(buf, msg, 30) == 0 ? "intact" : "bad");
  pthread_join(w, NULL);
  /* MSG_WAITALL ended by EOF: the part that came. */
  struct delayed d2 = {sv[1], msg, 10, 2, 1};
  pthread_create(&w, NULL, writer, &d2);
  r = recv(sv[0], buf, 30, MSG_WAITALL);
  printf("recv MSG_WAITALL then EOF: %zd\n", r);
  pthread_join(w, NULL);
  r = recv(sv[0], buf, sizeof buf, 0);
  printf("recv at EOF: %zd\n", r);
  r = read(sv[0], buf, sizeof buf);
  printf("read at EOF: %zd\n", r);
  close(sv[1]);
  errno = 0;
  r = send(sv[0], "x", 1, MSG_NOSIGNAL);
  printf("send to a closed peer: %s\n", err_name(r, errno));
  close(sv[0]);
  errno = 0;
  r = recv(sv[0], buf, sizeof buf, 0);
  printf("recv on a closed descriptor: %s\n", err_name(r, errno));
  int p[2];
  if (pipe(p) != 0) exit(3);
  errno = 0;
  r = recv(p[0], buf, sizeof buf, 0);
  printf("recv on a pipe: %s\n", err_name(r, errno));
  close(p[0]);
  close(p[1]);
}

static void *worker(void *arg) {
  (void)arg;
  rcvtimeo();
  sndtimeo();
  nonblock_later();
  flags_and_eof();
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(60);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;
  pthread_t b[64];
  int nb = ncpu > 64 ? 64 : (int)ncpu;
  for (int i = 0; i < nb; ++i) pthread_create(&b[i], NULL, busy, NULL);
  pthread_t w;
  pthread_create(&w, NULL, worker, NULL);
  pthread_join(w, NULL);
  atomic_store(&stop_busy, 1);
  for (int i = 0; i < nb; ++i) pthread_join(b[i], NULL);
  return 0;
}

/* Blocking I/O from many threads: a plain pthread program (no parlib).
 *
 * Under the shim every read, write, recv, send, accept, connect, poll,
 * select and epoll_wait of a upthread that must wait blocks only that
 * upthread. Run with PARLIB_VCORES=1 and UPTHREAD_SCHED_PERIOD_US=0 (one
 * vcore, no preemption, nothing to steal) every part below deadlocks if a
 * blocked call holds the vcore: a reader waits in read() for a writer that
 * is queued behind it on that vcore. The alarm at the start turns a
 * deadlock into death by SIGALRM, which compare.sh reports as a different
 * exit status.
 *
 * Output: byte counts and checksums only, identical natively and under
 * the shim. Any mismatch exits with status 3 and a line on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "io.c:%d: check failed: %s (errno %d)\n", __LINE__, #cond, errno); \
      exit(3);                                                                           \
    }                                                                                    \
  } while (0)

/* Sizes the compiler cannot see (not constants: another file could change
 * them), so that a fortified build calls glibc's checking variants
 * (__read_chk, __recv_chk, __recvfrom_chk, __pread_chk, __poll_chk,
 * __ppoll_chk), which the shim must serve as well. */
size_t g_chunk = 7001;
size_t g_block = 4096;
nfds_t g_one = 1;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static pthread_t spawn(void *(*fn)(void *), void *arg) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fn, arg) == 0);
  return t;
}

/* Reads exactly n bytes (the buffer's size is known here, so a fortified
 * build calls __read_chk). */
static void read_exact(int fd, void *p, size_t n) {
  char buf[256];
  CHECK(n <= sizeof buf);
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    CHECK(r > 0);
    got += (size_t)r;
  }
  memcpy(p, buf, n);
}

static void write_exact(int fd, const void *p, size_t n) {
  CHECK(write(fd, p, n) == (ssize_t)n); /* a blocking write writes it all */
}

/* ------------------------------------------------------- token ring */

/* kRing threads in a chain of pipes: thread i reads a token from pipe i,
 * mixes its index in and writes it to pipe i + 1; main feeds pipe 0 and
 * reads pipe kRing. Every thread is blocked in read() before main writes
 * the first token. */
enum { kRing = 16, kRounds = 200 };
static int g_ring[kRing + 1][2];

static void *ring_stage(void *arg) {
  int i = (int)(intptr_t)arg;
  for (int r = 0; r < kRounds; ++r) {
    uint32_t token;
    read_exact(g_ring[i][0], &token, sizeof token);
    token = token * 31u + (uint32_t)i + 1u;
    write_exact(g_ring[i + 1][1], &token, sizeof token);
  }
  return NULL;
}

static void token_ring(void) {
  for (int i = 0; i <= kRing; ++i) CHECK(pipe(g_ring[i]) == 0);
  pthread_t t[kRing];
  for (int i = 0; i < kRing; ++i) t[i] = spawn(ring_stage, (void *)(intptr_t)i);
  usleep(20000); /* every stage is now waiting in read() */
  uint32_t sum = 0;
  for (int r = 0; r < kRounds; ++r) {
    uint32_t token = (uint32_t)r;
    write_exact(g_ring[0][1], &token, sizeof token);
    read_exact(g_ring[kRing][0], &token, sizeof token);
    sum = sum * 7u + token;
  }
  for (int i = 0; i < kRing; ++i) CHECK(pthread_join(t[i], NULL) == 0);
  for (int i = 0; i <= kRing; ++i) {
    close(g_ring[i][0]);
    close(g_ring[i][1]);
  }
  printf("token ring: %d threads, %d rounds, checksum %08x\n", kRing, kRounds, sum);
}

/* ------------------------------------------------------ bulk through a pipe */

/* 4 MiB + 12345 bytes through one pipe (64 KiB of buffer): writes of many
 * sizes, one of 1 MiB that must wait for the reader many times, and writev;
 * the reader reads and readv's in odd sizes until EOF. */
enum { kBulk = 4 * 1024 * 1024 + 12345 };
static int g_bulk[2];

static unsigned char pattern(unsigned stream, size_t i) {
  return (unsigned char)(i * 131u + stream * 7u + (i >> 9));
}

static void *bulk_writer(void *arg) {
  (void)arg;
  unsigned char *data = malloc(kBulk);
  CHECK(data != NULL);
  for (size_t i = 0; i < kBulk; ++i) data[i] = pattern(1, i);
  size_t off = 0;
  static const size_t sizes[] = {1, 100, 4096, 65536, 1048576, 70000, 3, 131072};
  for (int k = 0; off < kBulk; ++k) {
    size_t n = sizes[k % 8];
    if (n > kBulk - off) n = kBulk - off;
    if (k % 3 == 2 && n > 1) { /* the same bytes in two iovecs */
      struct iovec iov[2] = {{data + off, n / 2}, {data + off + n / 2, n - n / 2}};
      CHECK(writev(g_bulk[1], iov, 2) == (ssize_t)n);
    } else {
      CHECK(write(g_bulk[1], data + off, n) == (ssize_t)n);
    }
    off += n;
  }
  close(g_bulk[1]);
  free(data);
  return NULL;
}

static void *bulk_reader(void *arg) {
  size_t *total = arg;
  unsigned char buf[7001];
  size_t got = 0;
  for (int k = 0;; ++k) {
    ssize_t r;
    if (k % 2 == 0) {
      r = read(g_bulk[0], buf, g_chunk);
    } else {
      struct iovec iov[2] = {{buf, 1000}, {buf + 1000, 2999}};
      r = readv(g_bulk[0], iov, 2);
    }
    CHECK(r >= 0);
    if (r == 0) break;
    for (ssize_t j = 0; j < r; ++j) CHECK(buf[j] == pattern(1, got + (size_t)j));
    got += (size_t)r;
  }
  *total = got;
  return NULL;
}

static void bulk_pipe(void) {
  CHECK(pipe(g_bulk) == 0);
  size_t total = 0;
  pthread_t r = spawn(bulk_reader, &total); /* waits in read() first */
  pthread_t w = spawn(bulk_writer, NULL);
  CHECK(pthread_join(w, NULL) == 0);
  CHECK(pthread_join(r, NULL) == 0);
  close(g_bulk[0]);
  CHECK(total == kBulk);
  printf("pipe: %zu bytes written, %zu read, contents match\n", (size_t)kBulk, total);
}

/* ------------------------------------------------------------ TCP echo */

/* kConns connections to a server on 127.0.0.1 with one thread per
 * accepted connection; each client has a sender and a receiver thread
 * (a sender alone could fill both directions' buffers). */
enum { kConns = 8, kPerConn = 1024 * 1024 + 777 };
static int g_listener;
static struct sockaddr_in g_addr;

static void *echo_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[16384];
  size_t echoed = 0;
  for (int k = 0;; ++k) {
    ssize_t r = recv(fd, buf, k % 2 == 0 ? sizeof buf : g_chunk, 0);
    CHECK(r >= 0);
    if (r == 0) break;
    if (k % 2 == 0)
      CHECK(send(fd, buf, (size_t)r, 0) == r);
    else
      CHECK(write(fd, buf, (size_t)r) == r);
    echoed += (size_t)r;
  }
  CHECK(echoed == kPerConn);
  close(fd);
  return NULL;
}

static void *acceptor(void *arg) {
  pthread_t *echoers = arg;
  for (int i = 0; i < kConns; ++i) {
    int fd = (i % 2 == 0) ? accept(g_listener, NULL, NULL)
                          : accept4(g_listener, NULL, NULL, SOCK_CLOEXEC);
    CHECK(fd >= 0);
    echoers[i] = spawn(echo_conn, (void *)(intptr_t)fd);
  }
  return NULL;
}

struct client {
  unsigned id;
  int fd;
  size_t received;
};

static void *client_sender(void *arg) {
  struct client *c = arg;
  unsigned char *data = malloc(kPerConn);
  CHECK(data != NULL);
  for (size_t i = 0; i < kPerConn; ++i) data[i] = pattern(c->id, i);
  size_t off = 0;
  static const size_t sizes[] = {1, 1500, 65536, 300000, 17, 8192};
  for (int k = 0; off < kPerConn; ++k) {
    size_t n = sizes[k % 6];
    if (n > kPerConn - off) n = kPerConn - off;
    ssize_t w;
    if (k % 3 == 0) {
      w = send(c->fd, data + off, n, 0);
    } else if (k % 3 == 1) {
      w = sendto(c->fd, data + off, n, 0, NULL, 0);
    } else {
      struct iovec iov = {data + off, n};
      struct msghdr m;
      memset(&m, 0, sizeof m);
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      w = sendmsg(c->fd, &m, 0);
    }
    CHECK(w == (ssize_t)n);
    off += n;
  }
  CHECK(shutdown(c->fd, SHUT_WR) == 0);
  free(data);
  return NULL;
}

static void *client_receiver(void *arg) {
  struct client *c = arg;
  char buf[9000];
  for (int k = 0;; ++k) {
    ssize_t r;
    switch (k % 4) {
      case 0:
        r = recv(c->fd, buf, g_chunk, 0);
        break;
      case 1:
        r = read(c->fd, buf, g_chunk - 1);
        break;
      case 2: {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        r = recvfrom(c->fd, buf, g_chunk - 2, 0, (struct sockaddr *)&from, &len);
        break;
      }
      default: {
        struct iovec iov = {buf, 4000};
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        r = recvmsg(c->fd, &m, 0);
      }
    }
    CHECK(r >= 0);
    if (r == 0) break;
    for (ssize_t j = 0; j < r; ++j)
      CHECK((unsigned char)buf[j] == pattern(c->id, c->received + (size_t)j));
    c->received += (size_t)r;
  }
  return NULL;
}

static void tcp_echo(void) {
  g_listener = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(g_listener >= 0);
  memset(&g_addr, 0, sizeof g_addr);
  g_addr.sin_family = AF_INET;
  g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(g_listener, (struct sockaddr *)&g_addr, sizeof g_addr) == 0);
  socklen_t len = sizeof g_addr;
  CHECK(getsockname(g_listener, (struct sockaddr *)&g_addr, &len) == 0);
  CHECK(listen(g_listener, kConns) == 0);

  pthread_t echoers[kConns];
  pthread_t acc = spawn(acceptor, echoers);
  usleep(20000); /* the acceptor now waits in accept() */
  struct client clients[kConns];
  pthread_t send_t[kConns], recv_t[kConns];
  for (int i = 0; i < kConns; ++i) {
    clients[i].id = (unsigned)i + 2;
    clients[i].received = 0;
    clients[i].fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(clients[i].fd >= 0);
    CHECK(connect(clients[i].fd, (struct sockaddr *)&g_addr, sizeof g_addr) == 0);
    recv_t[i] = spawn(client_receiver, &clients[i]);
    send_t[i] = spawn(client_sender, &clients[i]);
  }
  CHECK(pthread_join(acc, NULL) == 0);
  size_t total = 0;
  for (int i = 0; i < kConns; ++i) {
    CHECK(pthread_join(send_t[i], NULL) == 0);
    CHECK(pthread_join(recv_t[i], NULL) == 0);
    CHECK(pthread_join(echoers[i], NULL) == 0);
    CHECK(clients[i].received == kPerConn);
    total += clients[i].received;
    close(clients[i].fd);
  }
  close(g_listener);
  printf("tcp echo: %d connections, %zu bytes each way, contents match\n", kConns, total);
}

/* ------------------------------------------------------------ readiness */

/* A thread waits for a pipe to become readable (poll, ppoll, select or
 * epoll_wait, with a 10 s timeout) while the thread that will write it,
 * after sleeping 30 ms, is queued behind it. */
struct waker {
  int fd;
  int delay_ms;
};

static void *delayed_write(void *arg) {
  struct waker *w = arg;
  usleep((useconds_t)w->delay_ms * 1000u);
  write_exact(w->fd, "x", 1);
  return NULL;
}

enum { kPoll, kPpoll, kSelect, kEpoll, kNumWaits };
static const char *const kWaitName[] = {"poll", "ppoll", "select", "epoll_wait"};

static int wait_readable(int how, int fd, int timeout_ms, int *extra) {
  switch (how) {
    case kPoll: {
      struct pollfd p[1] = {{fd, POLLIN, 0}};
      int r = poll(p, g_one, timeout_ms);
      *extra = p[0].revents;
      return r;
    }
    case kPpoll: {
      struct pollfd p[1] = {{fd, POLLIN, 0}};
      struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
      int r = ppoll(p, g_one, &ts, NULL);
      *extra = p[0].revents;
      return r;
    }
    case kSelect: {
      fd_set rd;
      FD_ZERO(&rd);
      FD_SET(fd, &rd);
      struct timeval tv = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000L};
      int r = select(fd + 1, &rd, NULL, NULL, &tv);
      /* Linux reports the time not slept: none after a timeout. */
      *extra = FD_ISSET(fd, &rd) ? POLLIN : 0;
      if (r == 0) CHECK(tv.tv_sec == 0 && tv.tv_usec == 0);
      return r;
    }
    default: {
      int ep = epoll_create1(EPOLL_CLOEXEC);
      CHECK(ep >= 0);
      struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = fd}};
      CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
      struct epoll_event out[2];
      int r = epoll_wait(ep, out, 2, timeout_ms);
      *extra = r == 1 && out[0].data.fd == fd && (out[0].events & EPOLLIN) ? POLLIN : 0;
      close(ep);
      return r;
    }
  }
}

static void readiness(void) {
  for (int how = 0; how < kNumWaits; ++how) {
    int p[2];
    CHECK(pipe(p) == 0);
    /* Nothing arrives: the timeout, and not early. */
    uint64_t t0 = now_ms();
    int ev = -1;
    int r = wait_readable(how, p[0], 60, &ev);
    uint64_t waited = now_ms() - t0;
    CHECK(r == 0 && ev == 0);
    CHECK(waited >= 60);
    /* A writer queued behind the waiter makes it readable. */
    struct waker w = {p[1], 30};
    pthread_t t = spawn(delayed_write, &w);
    t0 = now_ms();
    r = wait_readable(how, p[0], 10000, &ev);
    waited = now_ms() - t0;
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(waited < 5000);
    char c;
    CHECK(read(p[0], &c, 1) == 1 && c == 'x');
    printf("%s: timed out after >= 60 ms; woken by a writer: %d ready, %s\n", kWaitName[how], r,
           (ev & POLLIN) ? "POLLIN" : "-");
    close(p[0]);
    close(p[1]);
  }
}

/* ------------------------------------------------------- files and sleeps */

static void *file_worker(void *arg) {
  int fd = *(int *)arg;
  char block[4096], back[4096];
  for (int i = 0; i < 64; ++i) {
    memset(block, 'a' + i % 26, sizeof block);
    CHECK(pwrite(fd, block, sizeof block, (off_t)i * 4096) == (ssize_t)sizeof block);
  }
  CHECK(fsync(fd) == 0);
  CHECK(fdatasync(fd) == 0);
  size_t ok = 0;
  for (int i = 63; i >= 0; --i) {
    CHECK(pread(fd, back, g_block, (off_t)i * 4096) == (ssize_t)sizeof back);
    ok += back[0] == 'a' + i % 26 && back[4095] == 'a' + i % 26;
  }
  CHECK(ok == 64);
  return NULL;
}

static void *sleeper(void *arg) {
  int *order = arg;
  struct timespec ts = {0, 300 * 1000000L};
  CHECK(nanosleep(&ts, NULL) == 0);
  __atomic_store_n(order, 2, __ATOMIC_SEQ_CST);
  return NULL;
}

static void files_and_sleeps(void) {
  char path[] = "/tmp/preload_io_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  pthread_t t = spawn(file_worker, &fd);
  CHECK(pthread_join(t, NULL) == 0);
  close(fd);
  printf("file: 64 pwrite/pread blocks of 4096 bytes, fsync, fdatasync\n");

  /* A sleeping thread does not hold the vcore: the one queued behind it
   * runs (and finishes) first. */
  int order = 0;
  t = spawn(sleeper, &order);
  usleep(1000); /* let the sleeper start its sleep */
  CHECK(__atomic_load_n(&order, __ATOMIC_SEQ_CST) == 0);
  struct timespec ts = {0, 10 * 1000000L};
  CHECK(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == 0);
  CHECK(__atomic_load_n(&order, __ATOMIC_SEQ_CST) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(order == 2);
  printf("sleeps: nanosleep, usleep, clock_nanosleep\n");
}

/* A fork child has only the forking task and no vcores: its blocking
 * calls must be glibc's, and work (the parent's rings are not the child's). */
static void fork_child_io(void) {
  int to_child[2], from_child[2];
  CHECK(pipe(to_child) == 0 && pipe(from_child) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(to_child[1]);
    close(from_child[0]);
    char buf[8];
    struct pollfd p = {to_child[0], POLLIN, 0};
    /* Nothing is written before the child says it has looked. */
    int ok = poll(&p, 1, 10) == 0;
    ok = write(from_child[1], "r", 1) == 1 && ok;
    ok = read(to_child[0], buf, 5) == 5 && memcmp(buf, "hello", 5) == 0 && ok;
    ok = write(from_child[1], "world", 5) == 5 && ok;
    struct timespec ts = {0, 1000000};
    ok = nanosleep(&ts, NULL) == 0 && ok;
    _exit(ok ? 0 : 1);
  }
  /* The parent keeps only its own ends: should the child fail early, the
   * reads below see end-of-file instead of waiting for ever. */
  close(to_child[0]);
  close(from_child[1]);
  char buf[5];
  read_exact(from_child[0], buf, 1); /* the child has polled */
  CHECK(buf[0] == 'r');
  write_exact(to_child[1], "hello", 5);
  read_exact(from_child[0], buf, 5);
  CHECK(memcmp(buf, "world", 5) == 0);
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(to_child[1]);
  close(from_child[0]);
  printf("fork child: poll, read, write, nanosleep\n");
}

/* io [PART]: runs every part, or only PART (ring, pipe, tcp, ready, files,
 * fork). */
int main(int argc, char **argv) {
  static const struct {
    const char *name;
    void (*run)(void);
  } parts[] = {{"ring", token_ring}, {"pipe", bulk_pipe},         {"tcp", tcp_echo},
               {"ready", readiness}, {"files", files_and_sleeps}, {"fork", fork_child_io}};
  alarm(60); /* a deadlock fails the test (SIGALRM) instead of hanging it */
  setvbuf(stdout, NULL, _IOLBF, 0);
  int ran = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; ++i) {
    if (argc > 1 && strcmp(argv[1], parts[i].name) != 0) continue;
    parts[i].run();
    ++ran;
  }
  CHECK(ran > 0);
  return 0;
}

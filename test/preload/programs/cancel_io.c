/* Blocking I/O calls are cancellation points: a thread blocked in read(),
 * poll() or accept() when pthread_cancel arrives runs its cleanup handler
 * and its joiner gets PTHREAD_CANCELED; a read that has data returns it. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static sem_t g_ready;
static int g_pipe[2];
static int g_listener;

static void cleanup_say(void *what) { printf("  cleanup: %s\n", (const char *)what); }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *reader(void *unused) {
  (void)unused;
  char c;
  pthread_cleanup_push(cleanup_say, "reader");
  sem_post(&g_ready);
  ssize_t n = read(g_pipe[0], &c, 1);
  printf("  read returned %zd\n", n);
  pthread_cleanup_pop(0);
  return NULL;
}

static void *poller(void *unused) {
  (void)unused;
  struct pollfd p = {.fd = g_pipe[0], .events = POLLIN};
  pthread_cleanup_push(cleanup_say, "poller");
  sem_post(&g_ready);
  int n = poll(&p, 1, 60000);
  printf("  poll returned %d\n", n);
  pthread_cleanup_pop(0);
  return NULL;
}

static void *acceptor(void *unused) {
  (void)unused;
  pthread_cleanup_push(cleanup_say, "acceptor");
  sem_post(&g_ready);
  int fd = accept(g_listener, NULL, NULL);
  printf("  accept returned %d\n", fd);
  pthread_cleanup_pop(0);
  return NULL;
}

static void cancel_case(const char *name, void *(*fn)(void *)) {
  pthread_t t;
  void *ret;
  double start = now_s();
  printf("%s:\n", name);
  pthread_create(&t, NULL, fn, NULL);
  sem_wait(&g_ready);
  usleep(50000); /* let it block */
  pthread_cancel(t);
  pthread_join(t, &ret);
  printf("  %s, %s\n", ret == PTHREAD_CANCELED ? "CANCELED" : "returned",
         now_s() - start < 10 ? "promptly" : "LATE");
  fflush(stdout);
}

/* Data already there: the read is not a point of no return. */
static void *reader_with_data(void *unused) {
  (void)unused;
  char c = 0;
  sem_post(&g_ready);
  ssize_t n = read(g_pipe[0], &c, 1);
  printf("  read returned %zd (%c)\n", n, c);
  return NULL;
}

int main(void) {
  sem_init(&g_ready, 0, 0);
  if (pipe(g_pipe) != 0) return 1;
  g_listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(g_listener, (struct sockaddr *)&a, sizeof a) != 0 || listen(g_listener, 4) != 0)
    return 1;
  cancel_case("read", reader);
  cancel_case("poll", poller);
  cancel_case("accept", acceptor);
  printf("read with data:\n");
  if (write(g_pipe[1], "x", 1) != 1) return 1;
  pthread_t t;
  pthread_create(&t, NULL, reader_with_data, NULL);
  sem_wait(&g_ready);
  pthread_join(t, NULL);
  return 0;
}

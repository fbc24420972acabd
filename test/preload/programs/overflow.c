/* A thread overflows its stack: natively the process dies of SIGSEGV; under
 * the shim too, after parlib's message naming the thread. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static int depth(int n) {
  volatile char frame[256];
  memset((char *)frame, n, sizeof frame);
  return n < 0 ? 0 : depth(n + 1) + frame[3];
}

static void *overflow(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "overflower");
  return (void *)(long)depth(0);
}

int main(void) {
  printf("before the overflow\n");
  fflush(stdout);
  pthread_t t;
  pthread_create(&t, NULL, overflow, NULL);
  pthread_join(t, NULL);
  printf("not reached\n");
  return 0;
}

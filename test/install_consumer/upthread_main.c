/* Smoke test of an installed libupthread from C: main becomes a upthread
 * when the library loads; a second upthread runs and is joined. */
#include <upthread/upthread.h>

#include <stdio.h>
#include <string.h>

static void *worker(void *arg) {
  *(int *)arg = 42;
  return arg;
}

int main(void) {
  int value = 0;
  upthread_t t;
  int err = upthread_create(&t, NULL, worker, &value);
  if (err != 0) {
    fprintf(stderr, "upthread consumer: upthread_create: %s\n", strerror(err));
    return 1;
  }
  void *ret = NULL;
  err = upthread_join(t, &ret);
  if (err != 0 || ret != &value || value != 42) {
    fprintf(stderr, "upthread consumer: join gave %d, value %d\n", err, value);
    return 1;
  }
  printf("upthread consumer: joined a upthread\n");
  return 0;
}

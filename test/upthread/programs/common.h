/* Ordinary pthread programs, built twice: against glibc's pthreads and,
 * with -DUSE_UPTHREAD, through <upthread/pthread.h>. Both builds must print
 * the same thing. */
#ifndef PROGRAMS_COMMON_H
#define PROGRAMS_COMMON_H
#define _GNU_SOURCE 1
#ifdef USE_UPTHREAD
#include <upthread/pthread.h>
#else
#include <pthread.h>
#include <semaphore.h>
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                  \
  do {                                                                               \
    int err_ = (call);                                                               \
    if (err_ != 0) {                                                                 \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, strerror(err_)); \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)
#endif

/* parlib/common.h: definitions shared by every parlib header.
 *
 * Error conventions of the whole C API (see docs/design.md):
 *  - vcore and event calls return 0, or -1 with errno set (EINVAL for bad
 *    arguments), like system calls;
 *  - the uthread_* synchronization calls return 0 or a positive POSIX error
 *    number, like the pthread functions;
 *  - violated invariants (a call from the wrong context, corrupted state)
 *    abort with a one-line message on stderr, in release builds too. */
#ifndef PARLIB_COMMON_H
#define PARLIB_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define PARLIB_BEGIN_DECLS extern "C" {
#define PARLIB_END_DECLS }
#else
#define PARLIB_BEGIN_DECLS
#define PARLIB_END_DECLS
#endif

/* Marks a declaration as part of the exported ABI (the library is built
 * with hidden visibility; src/parlib.map lists the same names). */
#define PARLIB_API __attribute__((visibility("default")))
#define PARLIB_NORETURN __attribute__((noreturn))

/* The coherence granule: per-vcore data is padded to it. */
#define PARLIB_CACHE_LINE_SIZE 64

/* The most vcores the library manages, whatever PARLIB_VCORES says. */
#define PARLIB_MAX_VCORES 256

#endif /* PARLIB_COMMON_H */

/* parlib/dtls.h: dynamic thread-local storage.
 *
 * Keys created at run time, each with an optional destructor; every thread
 * (uthread, vcore context, or plain pthread) has its own value per key,
 * NULL until set. Unlike __thread, keys can be made by libraries loaded
 * late and deleted again. */
#ifndef PARLIB_DTLS_H
#define PARLIB_DTLS_H

#include <parlib/common.h>

PARLIB_BEGIN_DECLS

typedef struct dtls_key *dtls_key_t;

/* The most keys alive at once. */
#define DTLS_KEYS_MAX 1024

/* dtls_key_create: a new key whose destructor (may be NULL) runs on a
 * thread's non-NULL value when the thread calls destroy_dtls(). Any
 * context. Returns NULL with errno EAGAIN when DTLS_KEYS_MAX keys exist. */
PARLIB_API dtls_key_t dtls_key_create(void (*dtor)(void *));

/* dtls_key_delete: deletes key; values still set are forgotten without
 * running the destructor (as pthread_key_delete). Any context. NULL or an
 * already deleted key is ignored. */
PARLIB_API void dtls_key_delete(dtls_key_t key);

/* set_dtls: sets the caller's value for key. Any context. A NULL or deleted
 * key is ignored; if memory for the caller's value table cannot be had the
 * value is dropped and errno is ENOMEM. */
PARLIB_API void set_dtls(dtls_key_t key, void *value);

/* get_dtls: the caller's value for key, NULL if unset, deleted or NULL. */
PARLIB_API void *get_dtls(dtls_key_t key);

/* destroy_dtls: runs the destructors of the caller's non-NULL values (up to
 * 4 passes while destructors set new values, as POSIX does) and frees the
 * caller's table. uthread_run_destructors() calls it for uthreads. Any
 * context but the event/alarm paths. */
PARLIB_API void destroy_dtls(void);

PARLIB_END_DECLS

#endif /* PARLIB_DTLS_H */

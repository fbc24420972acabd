/* parlib/pool.h: a fixed-size pool of equally sized objects.
 *
 * The caller supplies the memory: a buffer of num_objects * object_size
 * bytes and an array of num_objects pointers (the pool's bookkeeping).
 * Allocation and free are O(1) and never call malloc, so a pool suits
 * vcore context and other places where malloc is not allowed. Unlike the
 * slab allocator (slab.h) a pool never grows.
 *
 * The bookkeeping array keeps one entry per object: a free object's entry
 * links to the next free object's entry, an allocated object's entry points
 * to itself. That is what lets pool_free() reject a double free and a
 * pointer that is not an object of this pool, in O(1).
 *
 * A pool is not synchronized (as in Akaros): callers that share one
 * serialize their calls, e.g. with a spin_pdr lock. All functions may be
 * called from any context. */
#ifndef PARLIB_POOL_H
#define PARLIB_POOL_H

#include <parlib/common.h>

PARLIB_BEGIN_DECLS

typedef struct pool {
	char *buffer_;       /* object i lives at buffer_ + i * object_size_ */
	void **queue_;       /* per-object bookkeeping (see above) */
	size_t size_;        /* number of objects */
	size_t object_size_;
	size_t free_;        /* objects available */
	size_t head_;        /* index of the first free object; size_ when none */
} pool_t;

/* pool_init: makes a pool of num_objects objects of object_size bytes in
 * buffer (num_objects * object_size bytes, aligned as the objects need),
 * using object_queue (num_objects pointers) for bookkeeping; all objects
 * start free. Any context. On bad input (NULL pool; NULL buffer or queue,
 * or a zero count or size, with a non-NULL pool; a size product that
 * overflows) the pool is made empty: pool_alloc() returns NULL. */
PARLIB_API void pool_init(pool_t *pool, void *buffer, void **object_queue,
                          size_t num_objects, size_t object_size);

/* pool_alloc: takes a free object; returns it, or NULL when none is left or
 * pool is NULL. The object's contents are whatever it last held. Any
 * context. */
PARLIB_API void *pool_alloc(pool_t *pool);

/* pool_free: gives obj back; returns 0, or -1 (pool unchanged) when pool or
 * obj is NULL, obj is not an object of this pool (outside the buffer or not
 * at an object boundary), or obj is already free (double free; this also
 * covers "the pool is full"). Any context. */
PARLIB_API int pool_free(pool_t *pool, void *obj);

/* pool_size: the number of objects the pool manages (free or not); 0 for
 * NULL. Any context. */
PARLIB_API size_t pool_size(pool_t *pool);

/* pool_available: the number of free objects; 0 for NULL. Any context. */
PARLIB_API size_t pool_available(pool_t *pool);

PARLIB_END_DECLS

#endif /* PARLIB_POOL_H */

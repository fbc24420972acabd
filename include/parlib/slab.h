/* parlib/slab.h: an object-caching slab allocator (Bonwick, USENIX 1994).
 *
 * A slab cache hands out objects of one size and alignment. It carves
 * them out of slabs (naturally aligned runs of pages it maps from the
 * kernel) and grows by a slab whenever it runs out. Objects are cached in
 * their constructed state: the constructor runs once per object when its
 * slab is created, the destructor once when the slab is given back to the
 * kernel (when a slab becomes entirely free while the cache already keeps
 * a free one in reserve, and at slab_cache_destroy). So a freed object must
 * be handed back in its constructed state, and slab_cache_alloc() returns
 * an object exactly as the constructor (or the last user) left it.
 *
 * A cache is safe to use concurrently from any number of uthreads, vcore
 * contexts and kernel threads (one spin_pdr lock per cache; constructors,
 * destructors and the kernel calls run outside it). Growing and shrinking
 * call mmap/munmap: allowed in uthread context and plain threads, and in
 * vcore context except on the event and alarm paths. Constructors and
 * destructors run in the context of the call that grows or shrinks. */
#ifndef PARLIB_SLAB_H
#define PARLIB_SLAB_H

#include <parlib/common.h>

PARLIB_BEGIN_DECLS

struct slab_cache;

/* Longest cache name kept (longer names are truncated), NUL included. */
#define SLAB_CACHE_NAME_LEN 32

/* A consistent snapshot of a cache's counters (slab_cache_get_stats). */
struct slab_cache_stats {
	char name[SLAB_CACHE_NAME_LEN];
	size_t obj_size;        /* as requested */
	size_t obj_stride;      /* bytes per object inside a slab */
	size_t obj_align;
	size_t slab_bytes;      /* size (and alignment) of one slab */
	size_t objs_per_slab;
	size_t nr_slabs;        /* slabs currently mapped */
	size_t nr_objs_total;   /* nr_slabs * objs_per_slab */
	size_t nr_objs_in_use;  /* allocated and not yet freed */
	uint64_t nr_allocs;     /* successful slab_cache_alloc calls */
	uint64_t nr_frees;      /* slab_cache_free calls */
	uint64_t nr_grows;      /* slabs created */
	uint64_t nr_shrinks;    /* slabs given back (destroy not counted) */
	uint64_t nr_ctor_calls;
	uint64_t nr_dtor_calls;
};

/* slab_cache_create: makes a cache of objects of obj_size bytes aligned to
 * align bytes (a power of two up to 4096, or 0 for the default: 16, or 8
 * for objects smaller than 16 bytes). flags is reserved and must be 0.
 * ctor(obj, obj_size) and dtor(obj, obj_size) may be NULL. name (may be
 * NULL) is copied, for statistics. Uthread context or plain threads (it
 * calls malloc). Returns the cache, or NULL with errno EINVAL (obj_size 0
 * or too large for a 1 GiB slab, bad align, flags != 0) or ENOMEM. */
PARLIB_API struct slab_cache *slab_cache_create(const char *name, size_t obj_size, int align,
                                                int flags, void (*ctor)(void *, size_t),
                                                void (*dtor)(void *, size_t));

/* slab_cache_alloc: returns a constructed object, growing the cache by a
 * slab if needed. flags is reserved and must be 0. Any context where mmap
 * is allowed (see above). Returns NULL with errno EINVAL (NULL cache,
 * flags != 0) or ENOMEM (the kernel refused memory). */
PARLIB_API void *slab_cache_alloc(struct slab_cache *cache, int flags);

/* slab_cache_free: gives obj (from slab_cache_alloc on this cache, in its
 * constructed state) back. Any context where munmap is allowed. NULL obj is
 * ignored. Aborts with a message when obj does not belong to this cache or
 * is already free (double free); a pointer that is not from any slab cache
 * may fault instead. */
PARLIB_API void slab_cache_free(struct slab_cache *cache, void *obj);

/* slab_cache_destroy: runs the destructor on every object and gives all
 * memory back. No other call may use the cache concurrently or afterwards.
 * Uthread context or plain threads. NULL is ignored. Aborts with a message
 * when objects are still allocated. */
PARLIB_API void slab_cache_destroy(struct slab_cache *cache);

/* slab_cache_get_stats: copies a consistent snapshot of the cache's
 * counters into *stats. Any context. Returns 0, or -1 with errno EINVAL
 * when cache or stats is NULL. */
PARLIB_API int slab_cache_get_stats(struct slab_cache *cache, struct slab_cache_stats *stats);

PARLIB_END_DECLS

#endif /* PARLIB_SLAB_H */

/* parlib/atomic.h: atomic operations, compiler and CPU barriers, cpu_relax.
 *
 * The Akaros parlib names over the GCC/Clang __atomic builtins, so that C11
 * and C++ code share one definition. Every operation states its memory
 * order:
 *  - atomic_read / atomic_set are acquire loads / release stores. On x86-64
 *    that costs nothing over a plain access and makes the common "publish a
 *    flag" pattern correct without a separate barrier.
 *  - every read-modify-write (add, inc, dec, cas, swap, ...) is sequentially
 *    consistent: a full barrier, as the locked x86 instructions behind it
 *    already are and as Akaros code using these names expects.
 *
 * All of these may be called from any context (vcore context, uthread
 * context, a plain kernel thread). Arguments must point to valid, suitably
 * aligned objects; nothing here checks (a bad pointer faults). */
#ifndef PARLIB_ATOMIC_H
#define PARLIB_ATOMIC_H

#include <parlib/common.h>

#if !defined(__x86_64__)
#error "parlib/atomic.h: cpu_relax() is only defined for x86-64 so far"
#endif

PARLIB_BEGIN_DECLS

/* atomic_t: a word that is only ever accessed with the functions below.
 * Being a struct, it cannot be read or written by accident with a plain
 * (racy) access. Initialise statically with ATOMIC_INITIALIZER(v). */
typedef struct parlib_atomic {
	long val_;
} atomic_t;

/* (No atomic_init(): C11's <stdatomic.h> defines that name as a macro. Use
 * ATOMIC_INITIALIZER or atomic_set.) */
#define ATOMIC_INITIALIZER(v) { (v) }

/* cmb: compiler barrier; keeps the compiler from moving memory accesses
 * across it, emits no instruction. Any context. */
static inline void cmb(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* mb: full memory barrier (orders earlier loads and stores before later
 * loads and stores, including store->load, i.e. an mfence-class fence).
 * Any context. */
static inline void mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* rmb: orders earlier loads before later loads and stores (acquire fence;
 * compiler-only on x86-64). Any context. */
static inline void rmb(void)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
}

/* wmb: orders earlier loads and stores before later stores (release fence;
 * compiler-only on x86-64). Any context. */
static inline void wmb(void)
{
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

/* cpu_relax: the body of every spin-wait loop: the x86 `pause` instruction
 * (saves power, yields the core to a hyperthread sibling and avoids the
 * memory-order misspeculation flush when the awaited line changes). Also a
 * compiler barrier. Any context. */
static inline void cpu_relax(void)
{
	__builtin_ia32_pause();
	cmb();
}

/* atomic_read: returns *a (acquire load). Any context. */
static inline long atomic_read(const atomic_t *a)
{
	/* acquire: later accesses cannot move above the read of a flag that
	 * announces data; free on x86-64. */
	return __atomic_load_n(&a->val_, __ATOMIC_ACQUIRE);
}

/* atomic_set: stores val in *a (release store). Any context. */
static inline void atomic_set(atomic_t *a, long val)
{
	/* release: earlier accesses are visible before the new value is;
	 * free on x86-64. */
	__atomic_store_n(&a->val_, val, __ATOMIC_RELEASE);
}

/* atomic_add: *a += val (full barrier). Any context. */
static inline void atomic_add(atomic_t *a, long val)
{
	/* seq_cst: Akaros' RMWs are full barriers (lock-prefixed). */
	__atomic_fetch_add(&a->val_, val, __ATOMIC_SEQ_CST);
}

/* atomic_inc / atomic_dec: *a += 1 / *a -= 1 (full barrier). Any context. */
static inline void atomic_inc(atomic_t *a)
{
	/* seq_cst: full barrier, like every RMW here. */
	__atomic_fetch_add(&a->val_, 1, __ATOMIC_SEQ_CST);
}

static inline void atomic_dec(atomic_t *a)
{
	/* seq_cst: full barrier, like every RMW here. */
	__atomic_fetch_sub(&a->val_, 1, __ATOMIC_SEQ_CST);
}

/* atomic_fetch_and_add: *a += val; returns the old value (full barrier).
 * Any context. */
static inline long atomic_fetch_and_add(atomic_t *a, long val)
{
	/* seq_cst: full barrier, like every RMW here. */
	return __atomic_fetch_add(&a->val_, val, __ATOMIC_SEQ_CST);
}

/* atomic_and / atomic_or: *a &= mask / *a |= mask (full barrier). Any
 * context. */
static inline void atomic_and(atomic_t *a, long mask)
{
	/* seq_cst: full barrier, like every RMW here. */
	__atomic_fetch_and(&a->val_, mask, __ATOMIC_SEQ_CST);
}

static inline void atomic_or(atomic_t *a, long mask)
{
	/* seq_cst: full barrier, like every RMW here. */
	__atomic_fetch_or(&a->val_, mask, __ATOMIC_SEQ_CST);
}

/* atomic_swap: stores val in *a; returns the old value (full barrier). Any
 * context. */
static inline long atomic_swap(atomic_t *a, long val)
{
	/* seq_cst: full barrier, like every RMW here. */
	return __atomic_exchange_n(&a->val_, val, __ATOMIC_SEQ_CST);
}

/* atomic_swap_ptr: stores val in *addr; returns the old pointer (full
 * barrier). Any context. */
static inline void *atomic_swap_ptr(void **addr, void *val)
{
	/* seq_cst: full barrier, like every RMW here. */
	return __atomic_exchange_n(addr, val, __ATOMIC_SEQ_CST);
}

/* atomic_swap_u32: stores val in *addr; returns the old value (full
 * barrier). Any context. */
static inline uint32_t atomic_swap_u32(uint32_t *addr, uint32_t val)
{
	/* seq_cst: full barrier, like every RMW here. */
	return __atomic_exchange_n(addr, val, __ATOMIC_SEQ_CST);
}

/* atomic_cas: if *a == exp_val, stores new_val and returns true; else
 * returns false and leaves *a alone (full barrier either way). Any
 * context. */
static inline bool atomic_cas(atomic_t *a, long exp_val, long new_val)
{
	/* seq_cst on success and failure: a failed CAS still orders, as the
	 * lock cmpxchg behind it does. strong: no spurious failure. */
	return __atomic_compare_exchange_n(&a->val_, &exp_val, new_val, false,
	                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* atomic_cas_ptr: atomic_cas on a pointer. Any context. */
static inline bool atomic_cas_ptr(void **addr, void *exp_val, void *new_val)
{
	/* seq_cst both ways, strong: as atomic_cas. */
	return __atomic_compare_exchange_n(addr, &exp_val, new_val, false,
	                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* atomic_cas_u32: atomic_cas on a uint32_t. Any context. */
static inline bool atomic_cas_u32(uint32_t *addr, uint32_t exp_val, uint32_t new_val)
{
	/* seq_cst both ways, strong: as atomic_cas. */
	return __atomic_compare_exchange_n(addr, &exp_val, new_val, false,
	                                   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* atomic_add_not_zero: adds val to *a unless *a is 0; returns true if it
 * added (the usual "take a reference unless the object is dying"). Full
 * barrier when it adds. Any context. */
static inline bool atomic_add_not_zero(atomic_t *a, long val)
{
	/* relaxed first read: only a guess that the CAS validates. */
	long old = __atomic_load_n(&a->val_, __ATOMIC_RELAXED);
	do {
		if (old == 0)
			return false;
		/* seq_cst on success: full barrier like every RMW; relaxed on
		 * failure: we only retry with the value it reloaded. weak: we
		 * loop anyway. */
	} while (!__atomic_compare_exchange_n(&a->val_, &old, old + val, true,
	                                      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	return true;
}

/* atomic_sub_and_test: *a -= val; returns true if the result is 0 (full
 * barrier), the "drop a reference, free on the last" pattern. Any context. */
static inline bool atomic_sub_and_test(atomic_t *a, long val)
{
	/* seq_cst: the last dropper must see every other dropper's writes to
	 * the object before it frees it (acq_rel would do; full barrier kept
	 * for uniformity). */
	return __atomic_sub_fetch(&a->val_, val, __ATOMIC_SEQ_CST) == 0;
}

PARLIB_END_DECLS

#endif /* PARLIB_ATOMIC_H */

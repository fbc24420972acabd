// Per-uthread static TLS compatible with glibc: see docs/design.md ("TLS").
#ifndef PARLIB_UTHREAD_TLS_H
#define PARLIB_UTHREAD_TLS_H

namespace parlib::detail::tls {

// Resolves glibc's TLS allocator and records what every new TCB must carry
// (stack-protector canary, pointer guard, ...). Once, on the main thread.
void init();

// A new TCB: glibc's static TLS image for every loaded module, a DTV for
// dynamic TLS with no block allocated, a self-describing tcbhead_t, the
// rest of struct pthread zeroed, errno 0. It may be a released TCB made new
// (then it carries a previous uthread's libc malloc state, see release()).
// Uthread or vcore context; aborts when out of memory.
void *allocate();

// Gives back a TCB from allocate(). With keep_libc_state (the uthread's
// destructors ran), the TCB is cached for a later allocate(), or, when the
// cache is full, freed with glibc's own per-thread block (malloc's tcache and
// arena, resolver state) kept for the next allocate() instead of being
// leaked: glibc frees that state only in threads it created itself.
// Uthread or vcore context; never on the TCB the caller runs on.
void release(void *tcb, bool keep_libc_state);

// Called by the kernel task whose own TCB is tcb before it hands that TCB
// to a uthread for good (main, handing over thread0): unregisters the
// task's rseq area, so that glibc no longer reads that task's CPU number
// from it. Touches no TLS.
void detach_from_kernel_task(void *tcb);

// Runs the calling uthread's thread_local destructors (glibc's
// __call_tls_dtors list, in the current TCB).
void run_thread_local_destructors();

}  // namespace parlib::detail::tls

#endif  // PARLIB_UTHREAD_TLS_H

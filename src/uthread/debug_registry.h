// The list of live uthreads that debuggers read (gdb/parlib_gdb.py,
// docs/debugging.md): every uthread from uthread_init (or thread0 from
// uthread_lib_init) until it exits or is cleaned up.
#ifndef PARLIB_UTHREAD_DEBUG_REGISTRY_H
#define PARLIB_UTHREAD_DEBUG_REGISTRY_H

#include <parlib/uthread.h>

#include <cstddef>

namespace parlib::detail {

// Records where a uthread's vcore id lives in its TLS (once, at init).
void debug_registry_init(ptrdiff_t tls_vcoreid_offset);
// Adds uth (its fields freshly zeroed) and gives it the next id.
void debug_registry_add(struct uthread *uth);
// Takes uth off the list if it is on it; idempotent.
void debug_registry_remove(struct uthread *uth);

}  // namespace parlib::detail

#endif  // PARLIB_UTHREAD_DEBUG_REGISTRY_H

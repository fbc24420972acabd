// The list of live uthreads for debuggers. A debugger (or a core file) has
// only memory to go on, and no debug information in a release build, so
// the list starts at an exported descriptor, parlib_debug_uthreads, that
// also states where each field it needs lies: the gdb extension
// (gdb/parlib_gdb.py) reads it with no knowledge of the build. Bump
// kVersion whenever the descriptor's layout changes.
//
// Cost: a lock and a few stores when a uthread is created and when it
// exits; nothing on the switch path.
#include "uthread/debug_registry.h"

#include <atomic>
#include <cstdint>

#include <parlib/syscall.h>

#include "common/spinlock.h"
#include "uthread/uthread_internal.h"
#include "vcore/arch/arch.h"

extern "C" {
// Read by debuggers only: every field is a 64-bit word so that a reader
// unpacks it without knowing the ABI's padding rules.
struct parlib_debug_uthreads_desc {
  uint64_t version;
  uint64_t uthread_size;
  // Offsets in struct uthread.
  uint64_t off_ctx, off_tls, off_state, off_name, off_sysc, off_id, off_next, off_flags;
  // Offsets in the saved context (ArchContext) at off_ctx.
  uint64_t ctx_rsp, ctx_rip, ctx_rbx, ctx_rbp, ctx_r12, ctx_r13, ctx_r14, ctx_r15;
  // A uthread's vcore (the one it runs on or last ran on) is the uint32_t
  // at this (signed) offset from its thread pointer, tls_.
  int64_t tls_vcoreid;
  // Offset of the system call number in struct syscall (uthread::sysc).
  uint64_t sysc_num;
  struct uthread *head;  // newest first, linked through debug_next_
  uint64_t count;
  // Nonzero while the list is being changed; a 64-bit word like the rest.
  parlib::detail::SpinLock<0, uint64_t> lock;
};
static_assert(sizeof(parlib::detail::SpinLock<0, uint64_t>) == sizeof(uint64_t),
              "the debugger reads the lock as one 64-bit word");
PARLIB_API struct parlib_debug_uthreads_desc parlib_debug_uthreads = {
    .version = 1,
    .uthread_size = sizeof(struct uthread),
    .off_ctx = offsetof(struct uthread, ctx_),
    .off_tls = offsetof(struct uthread, tls_),
    .off_state = offsetof(struct uthread, state_),
    .off_name = offsetof(struct uthread, name_),
    .off_sysc = offsetof(struct uthread, sysc),
    .off_id = offsetof(struct uthread, debug_id_),
    .off_next = offsetof(struct uthread, debug_next_),
    .off_flags = offsetof(struct uthread, flags_),
    .ctx_rsp = offsetof(parlib::detail::ArchContext, rsp),
    .ctx_rip = offsetof(parlib::detail::ArchContext, rip),
    .ctx_rbx = offsetof(parlib::detail::ArchContext, rbx),
    .ctx_rbp = offsetof(parlib::detail::ArchContext, rbp),
    .ctx_r12 = offsetof(parlib::detail::ArchContext, r12),
    .ctx_r13 = offsetof(parlib::detail::ArchContext, r13),
    .ctx_r14 = offsetof(parlib::detail::ArchContext, r14),
    .ctx_r15 = offsetof(parlib::detail::ArchContext, r15),
    .tls_vcoreid = 0,
    .sysc_num = offsetof(struct syscall, num),
    .head = nullptr,
    .count = 0,
};
}

namespace parlib::detail {
namespace {

uint32_t g_next_id = 1;  // under the lock; thread0 gets 1

// A spinlock held for a handful of stores. In uthread context the holder
// keeps notifications disabled, so it is never switched out holding it
// (vcore context has them disabled already).
void lock() {
  uth_disable_notifs();
  parlib_debug_uthreads.lock.lock();
}

void unlock() {
  parlib_debug_uthreads.lock.unlock();
  uth_enable_notifs();
}

}  // namespace

void debug_registry_init(ptrdiff_t tls_vcoreid_offset) {
  parlib_debug_uthreads.tls_vcoreid = tls_vcoreid_offset;
}

void debug_registry_add(struct uthread *uth) {
  lock();
  uth->debug_id_ = g_next_id++;
  uth->debug_prev_ = nullptr;
  uth->debug_next_ = parlib_debug_uthreads.head;
  if (uth->debug_next_ != nullptr) uth->debug_next_->debug_prev_ = uth;
  parlib_debug_uthreads.head = uth;
  parlib_debug_uthreads.count++;
  unlock();
}

void debug_registry_remove(struct uthread *uth) {
  lock();
  // On the list iff it is the head or has a predecessor.
  if (uth->debug_prev_ != nullptr || parlib_debug_uthreads.head == uth) {
    if (uth->debug_prev_ != nullptr)
      uth->debug_prev_->debug_next_ = uth->debug_next_;
    else
      parlib_debug_uthreads.head = uth->debug_next_;
    if (uth->debug_next_ != nullptr) uth->debug_next_->debug_prev_ = uth->debug_prev_;
    uth->debug_next_ = uth->debug_prev_ = nullptr;
    parlib_debug_uthreads.count--;
  }
  unlock();
}

}  // namespace parlib::detail

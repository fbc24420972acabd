// Spinlocks, PDR spinlocks and MCS locks: the out-of-line halves of
// parlib/spinlock.h and parlib/mcs.h.
//
// The lock words are plain fields of C structs (the public headers are C);
// here they are accessed through std::atomic_ref with explicit orders, the
// same orders the inline fast paths in the headers use.

#include <parlib/mcs.h>
#include <parlib/spinlock.h>
#include <parlib/uthread.h>

#include <sched.h>

#include <atomic>

#include "sync/sync_internal.h"

namespace parlib::detail {

void SpinWait::yield_cpu() { sched_yield(); }

namespace {

// spin_until_free: the test-and-test-and-set loop shared by spinlock and
// spin_pdr. Returns holding the lock.
void spin_until_free(spinlock_t* l) {
  std::atomic_ref<int> word(l->locked_);
  SpinWait wait;
  for (;;) {
    // relaxed polling: we only look for a chance; the exchange below is
    // what orders the critical section.
    while (word.load(std::memory_order_relaxed) != 0) wait.once();
    // acquire: pairs with the release store in spinlock_unlock().
    if (word.exchange(1, std::memory_order_acquire) == 0) return;
  }
}

// The per-thread qnode pool of mcs_pdr locks (see parlib/mcs.h). Zero
// initialised, trivially constructible: no TLS init guard, usable from
// vcore context. Each uthread has its own copy (its own TLS block), so the
// pool follows the thread of execution, not the vcore.
struct PdrQnodePool {
  mcs_lock_qnode nodes[MCS_PDR_QNODES_PER_THREAD];
  unsigned used_mask;  // bit i set: nodes[i] is in use; only this thread touches it
};
thread_local PdrQnodePool pdr_pool;

mcs_lock_qnode* pdr_qnode_get() {
  PdrQnodePool& pool = pdr_pool;
  for (unsigned i = 0; i < MCS_PDR_QNODES_PER_THREAD; ++i) {
    if (!(pool.used_mask & (1u << i))) {
      pool.used_mask |= 1u << i;
      return &pool.nodes[i];
    }
  }
  raw_fatal("mcs_pdr_lock: this thread already holds MCS_PDR_QNODES_PER_THREAD mcs_pdr locks");
}

void pdr_qnode_put(mcs_lock_qnode* q) {
  PdrQnodePool& pool = pdr_pool;
  const auto idx = static_cast<size_t>(q - pool.nodes);
  PARLIB_CHECK(q >= pool.nodes && idx < MCS_PDR_QNODES_PER_THREAD && (pool.used_mask & (1u << idx)),
               "mcs_pdr_unlock: lock not held by the caller");
  pool.used_mask &= ~(1u << idx);
}

}  // namespace
}  // namespace parlib::detail

using parlib::detail::SpinWait;

extern "C" {

PARLIB_API void spinlock_lock_slow(spinlock_t* l) { parlib::detail::spin_until_free(l); }

PARLIB_API void spin_pdr_init(spin_pdr_lock_t* pdr) { spinlock_init(&pdr->lock_); }

PARLIB_API bool spin_pdr_trylock(spin_pdr_lock_t* pdr) {
  // Notifications go off before we can own the lock, so we are never
  // interrupted while holding it.
  uth_disable_notifs();
  if (spinlock_trylock(&pdr->lock_)) return true;
  uth_enable_notifs();
  return false;
}

PARLIB_API void spin_pdr_lock(spin_pdr_lock_t* pdr) {
  uth_disable_notifs();
  spinlock_lock(&pdr->lock_);
}

PARLIB_API void spin_pdr_unlock(spin_pdr_lock_t* pdr) {
  // Release first, then allow notifications: a notification delivered by
  // uth_enable_notifs() may switch to vcore context, which must not find
  // the lock still held by us.
  spinlock_unlock(&pdr->lock_);
  uth_enable_notifs();
}

PARLIB_API bool spin_pdr_locked(spin_pdr_lock_t* pdr) { return spinlock_is_locked(&pdr->lock_); }

PARLIB_API void mcs_lock_lock_slow(mcs_lock_qnode* pred, mcs_lock_qnode* qnode) {
  // release: pred's holder reads next_ with acquire and must see our
  // initialised qnode (locked_ = 1) before it writes locked_ = 0.
  std::atomic_ref<mcs_lock_qnode*>(pred->next_).store(qnode, std::memory_order_release);
  std::atomic_ref<int> locked(qnode->locked_);
  SpinWait wait;
  // acquire: pairs with the predecessor's release store of locked_ = 0,
  // so its critical section happens before ours.
  while (locked.load(std::memory_order_acquire) != 0) wait.once();
}

PARLIB_API void mcs_lock_unlock_slow(mcs_lock* lock, mcs_lock_qnode* qnode) {
  (void)lock;
  // The tail CAS failed: a successor swapped itself in and is about to
  // link itself to us. Wait for the link.
  std::atomic_ref<mcs_lock_qnode*> next_ref(qnode->next_);
  mcs_lock_qnode* next;
  SpinWait wait;
  // acquire: as in mcs_lock_unlock(), the successor's qnode
  // initialisation happens before our write to it.
  while ((next = next_ref.load(std::memory_order_acquire)) == nullptr) wait.once();
  // release: hands the critical section to the successor.
  std::atomic_ref<int>(next->locked_).store(0, std::memory_order_release);
}

PARLIB_API void mcs_pdr_init(mcs_pdr_lock_t* lock) {
  mcs_lock_init(&lock->lock_);
  lock->holder_qnode_ = nullptr;
}

PARLIB_API void mcs_pdr_lock(mcs_pdr_lock_t* lock) {
  // Notifications off first: from here to the unlock this thread neither
  // migrates nor is interrupted, so its TLS qnode pool is consistent.
  uth_disable_notifs();
  mcs_lock_qnode* q = parlib::detail::pdr_qnode_get();
  mcs_lock_lock(&lock->lock_, q);
  // Plain store: only the holder reads or writes holder_qnode_, and the
  // lock's acquire/release handoff orders it between holders.
  lock->holder_qnode_ = q;
}

PARLIB_API void mcs_pdr_unlock(mcs_pdr_lock_t* lock) {
  mcs_lock_qnode* q = lock->holder_qnode_;
  // Check ownership before touching the queue: a non-holder's unlock
  // would otherwise hand the lock on from someone else's qnode.
  parlib::detail::pdr_qnode_put(q);
  mcs_lock_unlock(&lock->lock_, q);
  // As in spin_pdr_unlock: release the lock before notifications can run.
  uth_enable_notifs();
}

}  // extern "C"

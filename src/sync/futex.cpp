// A uthread futex (parlib/mutex.h): FUTEX_WAIT blocks the uthread on a
// queue chosen by hashing the address, FUTEX_WAKE takes waiters on that
// address off it. Each bucket's spin_pdr lock makes "compare *uaddr with
// val, then enqueue" atomic with respect to a wake on the same address,
// which is the whole futex contract.

#include <parlib/mutex.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "sync/sync_internal.h"
#include "sync/uth_sync.h"

namespace parlib::detail {
namespace {

constexpr size_t kFutexBuckets = 256;  // a power of two

struct alignas(PARLIB_CACHE_LINE_SIZE) FutexBucket {
  spin_pdr_lock_t lock = SPINPDR_INITIALIZER;
  uth_sync_queue waiters = UTH_SYNC_QUEUE_INIT;
};

FutexBucket g_buckets[kFutexBuckets];

FutexBucket& bucket_of(const int* uaddr) {
  // Drop the always-zero low bits, then a multiplicative hash.
  const uint64_t a = reinterpret_cast<uintptr_t>(uaddr) >> 2;
  return g_buckets[(a * 0x9e3779b97f4a7c15ull) >> 56 & (kFutexBuckets - 1)];
}

struct WaitArgs {
  const int* uaddr;
  int val;
};

bool futex_must_wait(const BlockRequest* r) {
  const auto* a = static_cast<const WaitArgs*>(r->arg);
  // relaxed: the bucket lock orders this load against a waker that changed
  // the value before taking the lock.
  if (__atomic_load_n(a->uaddr, __ATOMIC_RELAXED) == a->val) return true;
  r->waiter->result = EAGAIN;
  return false;
}

int fail(int err) {
  errno = err;
  return -1;
}

int futex_wait(int* uaddr, int val, const struct timespec* timeout) {
  // relaxed: an early answer only; the locked re-check decides.
  if (__atomic_load_n(uaddr, __ATOMIC_RELAXED) != val) return fail(EAGAIN);
  uth_sync_waiter w;
  FutexBucket& b = bucket_of(uaddr);
  BlockRequest r{&b.lock, &b.waiters, &w};
  if (timeout != nullptr) {
    if (!timespec_is_valid(*timeout)) return fail(EINVAL);
    if (timeout->tv_sec == 0 && timeout->tv_nsec == 0) return fail(ETIMEDOUT);
    r.timed = true;
    r.deadline_ns = relative_timeout_to_monotonic_ns(*timeout);
  }
  if (!can_block()) return fail(EPERM);
  if (r.timed && !timed_wait_service_start()) return fail(EAGAIN);
  WaitArgs args{uaddr, val};
  w.key = uaddr;
  r.must_wait = futex_must_wait;
  r.arg = &args;
  block_uthread(&r);
  return w.result == 0 ? 0 : fail(w.result);
}

int futex_wake(int* uaddr, int val) {
  if (val <= 0) return 0;
  FutexBucket& b = bucket_of(uaddr);
  uth_sync_waiter* list = nullptr;
  uth_sync_waiter** tail = &list;
  int n = 0;
  spin_pdr_lock(&b.lock);
  for (uth_sync_waiter* w = b.waiters.head_; w != nullptr && n < val;) {
    uth_sync_waiter* next = w->next;
    if (w->key == uaddr) {
      queue_remove(&b.waiters, w);
      w->result = 0;
      *tail = w;
      tail = &w->next;
      ++n;
    }
    w = next;
  }
  *tail = nullptr;
  spin_pdr_unlock(&b.lock);
  wake_all(list);
  return n;
}

}  // namespace
}  // namespace parlib::detail

extern "C" PARLIB_API int futex(int* uaddr, int op, int val, const struct timespec* timeout,
                                int* uaddr2, int val3) {
  (void)uaddr2;
  (void)val3;
  if (uaddr == nullptr || reinterpret_cast<uintptr_t>(uaddr) % alignof(int) != 0)
    return parlib::detail::fail(EINVAL);
  switch (op & ~FUTEX_PRIVATE_FLAG) {
    case FUTEX_WAIT:
      return parlib::detail::futex_wait(uaddr, val, timeout);
    case FUTEX_WAKE:
      return parlib::detail::futex_wake(uaddr, val);
    default:
      return parlib::detail::fail(ENOSYS);
  }
}

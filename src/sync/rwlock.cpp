// uthread reader-writer locks (parlib/mutex.h).
//
// All state (reader count, writer, two FIFOs) lives under the spin_pdr
// lock. Writers are preferred: a reader waits while a writer holds or
// waits. The lock is handed over on unlock: the waker updates the state on
// behalf of the uthreads it wakes (one writer, or every waiting reader),
// so a woken waiter owns the lock when it resumes.

#include <parlib/mutex.h>

#include <atomic>
#include <cerrno>
#include <climits>

#include "sync/sync_internal.h"
#include "sync/uth_sync.h"

namespace parlib::detail {
namespace {

bool rw_valid(uthread_rwlock_t* rw) {
  // relaxed: validity changes only at init/destroy, which must not race
  // with use.
  return rw != nullptr && std::atomic_ref<int>(rw->valid_).load(std::memory_order_relaxed) == 1;
}

// Under the lock: can a reader enter now? Then it does.
bool rd_enter_locked(uthread_rwlock_t* rw) {
  if (rw->writer_ != nullptr || !queue_empty(&rw->writers_waiting_) || rw->readers_ == UINT_MAX)
    return false;
  ++rw->readers_;
  return true;
}

// Under the lock: can this writer enter now? Then it does.
bool wr_enter_locked(uthread_rwlock_t* rw, void* self) {
  if (rw->writer_ != nullptr || rw->readers_ != 0) return false;
  rw->writer_ = self;
  return true;
}

bool rd_must_wait(const BlockRequest* r) {
  return !rd_enter_locked(static_cast<uthread_rwlock_t*>(r->arg));
}

bool wr_must_wait(const BlockRequest* r) {
  return !wr_enter_locked(static_cast<uthread_rwlock_t*>(r->arg), r->waiter->token);
}

enum class Mode { kRead, kWrite };

int rw_lock(uthread_rwlock_t* rw, Mode mode) {
  if (!rw_valid(rw)) return EINVAL;
  void* self = self_token();
  spin_pdr_lock(&rw->qlock_);
  if (rw->writer_ == self) {
    spin_pdr_unlock(&rw->qlock_);
    return EDEADLK;
  }
  if (mode == Mode::kRead && rw->readers_ == UINT_MAX) {
    spin_pdr_unlock(&rw->qlock_);
    return EAGAIN;
  }
  const bool got = mode == Mode::kRead ? rd_enter_locked(rw) : wr_enter_locked(rw, self);
  spin_pdr_unlock(&rw->qlock_);
  if (got) return 0;
  if (!can_block()) {
    if (in_vcore_context()) return EPERM;
    // A plain kernel thread: poll until it can enter.
    SpinWait wait;
    for (;;) {
      wait.once();
      spin_pdr_lock(&rw->qlock_);
      const bool in = mode == Mode::kRead ? rd_enter_locked(rw) : wr_enter_locked(rw, self);
      spin_pdr_unlock(&rw->qlock_);
      if (in) return 0;
    }
  }
  uth_sync_waiter w;
  w.token = self;
  BlockRequest r{&rw->qlock_, mode == Mode::kRead ? &rw->readers_waiting_ : &rw->writers_waiting_,
                 &w};
  r.must_wait = mode == Mode::kRead ? rd_must_wait : wr_must_wait;
  r.arg = rw;
  // Either must_wait let us in, or an unlock handed us the lock.
  block_uthread(&r);
  return 0;
}

int rw_trylock(uthread_rwlock_t* rw, Mode mode) {
  if (!rw_valid(rw)) return EINVAL;
  void* self = self_token();
  spin_pdr_lock(&rw->qlock_);
  int err = 0;
  if (mode == Mode::kRead) {
    if (rw->readers_ == UINT_MAX)
      err = EAGAIN;
    else if (!rd_enter_locked(rw))
      err = EBUSY;
  } else if (!wr_enter_locked(rw, self)) {
    err = EBUSY;
  }
  spin_pdr_unlock(&rw->qlock_);
  return err;
}

}  // namespace
}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

PARLIB_API int uthread_rwlock_init(uthread_rwlock_t* rw) {
  if (rw == nullptr) return EINVAL;
  *rw = uthread_rwlock_t UTHREAD_RWLOCK_INITIALIZER;
  return 0;
}

PARLIB_API int uthread_rwlock_destroy(uthread_rwlock_t* rw) {
  if (!rw_valid(rw)) return EINVAL;
  spin_pdr_lock(&rw->qlock_);
  const bool busy = rw->writer_ != nullptr || rw->readers_ != 0 ||
                    !queue_empty(&rw->readers_waiting_) || !queue_empty(&rw->writers_waiting_);
  if (!busy) std::atomic_ref<int>(rw->valid_).store(0, std::memory_order_relaxed);
  spin_pdr_unlock(&rw->qlock_);
  return busy ? EBUSY : 0;
}

PARLIB_API int uthread_rwlock_rdlock(uthread_rwlock_t* rw) { return rw_lock(rw, Mode::kRead); }

PARLIB_API int uthread_rwlock_tryrdlock(uthread_rwlock_t* rw) {
  return rw_trylock(rw, Mode::kRead);
}

PARLIB_API int uthread_rwlock_wrlock(uthread_rwlock_t* rw) { return rw_lock(rw, Mode::kWrite); }

PARLIB_API int uthread_rwlock_trywrlock(uthread_rwlock_t* rw) {
  return rw_trylock(rw, Mode::kWrite);
}

PARLIB_API int uthread_rwlock_unlock(uthread_rwlock_t* rw) {
  if (!rw_valid(rw)) return EINVAL;
  void* self = self_token();
  uth_sync_waiter* to_wake = nullptr;
  spin_pdr_lock(&rw->qlock_);
  if (rw->writer_ == self) {
    rw->writer_ = nullptr;
  } else if (rw->readers_ > 0) {
    --rw->readers_;
  } else {
    spin_pdr_unlock(&rw->qlock_);
    return EPERM;
  }
  if (rw->writer_ == nullptr && rw->readers_ == 0) {
    // Hand over: a waiting writer first, else all waiting readers.
    if (uth_sync_waiter* w = dequeue(&rw->writers_waiting_, 0)) {
      rw->writer_ = w->token;
      w->next = nullptr;
      to_wake = w;
    } else if (!queue_empty(&rw->readers_waiting_)) {
      to_wake = dequeue_all(&rw->readers_waiting_, 0);
      for (uth_sync_waiter* r = to_wake; r != nullptr; r = r->next) ++rw->readers_;
    }
  }
  spin_pdr_unlock(&rw->qlock_);
  wake_all(to_wake);
  return 0;
}

}  // extern "C"

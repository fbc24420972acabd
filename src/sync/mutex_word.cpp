// The lock word of uthread_mutex_t (see mutex_word.h for the protocol).
#include "sync/mutex_word.h"

#include <atomic>
#include <cerrno>

#include "sync/sync_internal.h"
#include "sync/timed_wait.h"
#include "sync/uth_sync.h"

namespace parlib::detail {
namespace {

// A would-be owner that finds the mutex held does not poll it: it parks at
// once, as NPTL's default mutex sleeps at once. Polling pays off only when
// the holder lets go and does not take the lock straight back; a thread
// that locks in a loop does take it straight back, and then every poll
// that wins moves the lock's cache line to the other vcore and back (two
// threads on two vcores ran at 0.36x NPTL's rate with a 100-pause poll,
// 0.49x without: NPTL serialises them, its loser sleeping in the kernel
// while the holder runs).

std::atomic_ref<int> word_of(uthread_mutex_t* m) { return std::atomic_ref<int>(m->state_); }

// Under the queue lock: park only while the mutex is held and marked
// parked; otherwise the waiter retries at once.
bool must_park(const BlockRequest* r) {
  constexpr int kBoth = kMutexLocked | kMutexParked;
  // relaxed: the queue lock orders this against the unlocker's update.
  return (word_of(static_cast<uthread_mutex_t*>(r->arg)).load(std::memory_order_relaxed) & kBoth) ==
         kBoth;
}

// One attempt to take a word that is not locked. acquire: pairs with the
// release of the unlock.
bool try_take(std::atomic_ref<int> word, int& w) {
  return word.compare_exchange_weak(w, w | kMutexLocked, std::memory_order_acquire,
                                    std::memory_order_relaxed);
}

// An unlock that finds a woken waiter on its way looks at the queue anyway
// once every this many times (per thread): the woken one may not get a CPU
// for a while (a scheduler without preemption never gives it one while the
// holder keeps the lock busy), and a hand-off must not wait for it.
constexpr unsigned kWokenRecheck = 64;
thread_local unsigned t_woken_unlocks = 0;

// The unlock that takes the queue lock: kParked was set. Under the queue
// lock nobody else changes kLocked (we hold it) or kParked (parkers only
// set it when clear; only queue-lock holders clear it); the woken waiter
// may clear kWoken at any time, hence the CAS loops.
void unlock_slow(uthread_mutex_t* m) {
  auto word = word_of(m);
  spin_pdr_lock(&m->qlock_);
  uth_sync_waiter* head = queue_head(&m->waiters_);
  int w = word.load(std::memory_order_relaxed);
  uth_sync_waiter* to_wake = nullptr;
  const uint64_t now = head != nullptr ? monotonic_now_ns() : 0;
  if (head != nullptr && now >= head->fair_at_ns) {
    // Its turn: hand the lock over. kLocked stays set, so nobody can barge
    // in before it runs.
    to_wake = dequeue(&m->waiters_, 0);
    to_wake->handed = true;
    uth_sync_waiter* next = queue_head(&m->waiters_);
    // The next waiter's turn comes a full bound after this one's: the
    // running threads keep most of the lock (throughput), and the queue
    // still advances one waiter per bound.
    if (next != nullptr && next->fair_at_ns < now + kFairHandoffNs)
      next->fair_at_ns = now + kFairHandoffNs;
    const int keep = next != nullptr ? ~0 : ~kMutexParked;
    // release: the critical section happens before the new owner's, which
    // learns of the hand-off through the queue lock and its wake.
    while (!word.compare_exchange_weak(w, w & keep, std::memory_order_release,
                                       std::memory_order_relaxed)) {
    }
  } else if (head == nullptr || (w & kMutexWoken)) {
    // Nobody to wake (or the woken one is still on its way): let go.
    const int keep = head != nullptr ? ~kMutexLocked : ~(kMutexLocked | kMutexParked);
    while (!word.compare_exchange_weak(w, w & keep, std::memory_order_release,
                                       std::memory_order_relaxed)) {
    }
  } else {
    // Let go and wake the longest waiter to compete for it; it is the one
    // woken waiter until it runs.
    to_wake = dequeue(&m->waiters_, 0);
    const int parked = queue_empty(&m->waiters_) ? 0 : kMutexParked;
    while (!word.compare_exchange_weak(w,
                                       (w & ~(kMutexLocked | kMutexParked)) | parked | kMutexWoken,
                                       std::memory_order_release, std::memory_order_relaxed)) {
    }
  }
  spin_pdr_unlock(&m->qlock_);
  if (to_wake != nullptr) wake(to_wake);
}

}  // namespace

namespace {

// A woken waiter that loses the race to a running thread does not wait
// for the next unlock to wake it again: with the holder re-taking the lock
// at once (the common case under contention), every unlock would wake it
// and every wake would lose, and the lock's cache line would bounce
// between vcores on every operation. It keeps kWoken instead, so unlocks
// stay single CASes, and parks with a timeout that doubles on each loss:
// the holder runs nearly uncontended, as NPTL's does while its loser sleeps
// in the kernel, and the fairness hand-off still bounds the wait.
constexpr uint64_t kBackoffFirstNs = 20 * 1000;
constexpr uint64_t kBackoffMaxNs = 500 * 1000;

// Gives up kWoken without taking m. Safe only while m is held: its holder's
// unlock then sees kParked without kWoken and wakes someone. If m is free,
// takes it instead (true) so that no parked waiter is left without a waker.
bool drop_woken_or_take(std::atomic_ref<int> word) {
  int w = word.load(std::memory_order_relaxed);
  for (;;) {
    if (!(w & kMutexLocked)) {
      if (word.compare_exchange_weak(w, (w | kMutexLocked) & ~kMutexWoken,
                                     std::memory_order_acquire, std::memory_order_relaxed))
        return true;
    } else if (word.compare_exchange_weak(w, w & ~kMutexWoken, std::memory_order_relaxed,
                                          std::memory_order_relaxed)) {
      return false;
    }
  }
}

// The lock loop. woken: the caller is the waiter an unlock just woke
// (kWoken is its to clear); fair_at: its due time if it parked before.
int lock_loop(uthread_mutex_t* m, const uint64_t* deadline_ns, bool woken, uint64_t fair_at) {
  auto word = word_of(m);
  bool requeue_front = woken;
  // kWoken is ours: the next unlocks wake nobody until we take the lock or
  // give the bit up (drop_woken_or_take).
  bool owns_woken = woken;
  uint64_t backoff_ns = kBackoffFirstNs;
  for (;;) {
    int w = word.load(std::memory_order_relaxed);
    if (!(w & kMutexLocked)) {
      const int taken = (w | kMutexLocked) & (owns_woken ? ~kMutexWoken : ~0);
      if (word.compare_exchange_weak(w, taken, std::memory_order_acquire,
                                     std::memory_order_relaxed))
        return 0;
      continue;
    }
    if (!(w & kMutexParked) &&
        !word.compare_exchange_weak(w, w | kMutexParked, std::memory_order_relaxed))
      continue;
    const uint64_t now = monotonic_now_ns();
    if (deadline_ns != nullptr && *deadline_ns <= now) {
      if (owns_woken && drop_woken_or_take(word)) return 0;
      return ETIMEDOUT;
    }
    // Without the deadline service the backoff cannot be timed: give the
    // bit back and wait for an unlock's wake, as a first-time waiter does.
    if (owns_woken && !timed_wait_service_start()) {
      owns_woken = false;
      if (drop_woken_or_take(word)) return 0;
      continue;
    }
    if (fair_at == 0) fair_at = now + kFairHandoffNs;
    uth_sync_waiter wt;
    wt.fair_at_ns = fair_at;
    BlockRequest r{&m->qlock_, &m->waiters_, &wt};
    r.must_wait = must_park;
    r.arg = m;
    // A waiter that was woken and lost the race goes back to the head: it
    // keeps its place (and its time) in the line.
    r.front = requeue_front;
    if (deadline_ns != nullptr) {
      r.timed = true;
      r.deadline_ns = *deadline_ns;
    }
    const bool backing_off =
        owns_woken && (deadline_ns == nullptr || now + backoff_ns < *deadline_ns);
    if (backing_off) {
      r.timed = true;
      r.deadline_ns = now + backoff_ns;
    }
    if (!block_uthread(&r)) continue;  // free, or no longer marked: retry
    if (wt.handed) {
      // The unlocker left it locked for us; kWoken, if ours, goes now.
      if (owns_woken) word.fetch_and(~kMutexWoken, std::memory_order_relaxed);
      return 0;
    }
    fair_at = wt.fair_at_ns;  // an unlock may have pushed our turn back
    requeue_front = true;
    if (wt.result == ETIMEDOUT) {
      if (backing_off) {
        // Our backoff ran out: try again, and wait longer if we lose.
        backoff_ns = backoff_ns * 2 < kBackoffMaxNs ? backoff_ns * 2 : kBackoffMaxNs;
        continue;
      }
      // The deadline passing does not forbid a free lock: one last try.
      if (owns_woken) return drop_woken_or_take(word) ? 0 : ETIMEDOUT;
      w = word.load(std::memory_order_relaxed);
      while (!(w & kMutexLocked))
        if (try_take(word, w)) return 0;
      return ETIMEDOUT;
    }
    // An unlock woke us: kWoken is ours now (no unlock wakes anyone while
    // another waiter owns it). One try: if the holder took the lock
    // straight back, we back off.
    owns_woken = true;
    backoff_ns = kBackoffFirstNs;
  }
}

}  // namespace

int mutex_word_lock_blocking(uthread_mutex_t* m, const uint64_t* deadline_ns) {
  return lock_loop(m, deadline_ns, false, 0);
}

int mutex_word_lock_requeued(uthread_mutex_t* m, uth_sync_waiter* w) {
  if (w->handed) return 0;
  return lock_loop(m, nullptr, true, w->fair_at_ns);
}

void mutex_word_requeue(uthread_mutex_t* m, uth_sync_waiter* w) {
  spin_pdr_lock(&m->qlock_);
  w->requeued = true;
  w->fair_at_ns = monotonic_now_ns() + kFairHandoffNs;
  w->lock = &m->qlock_;
  queue_push(&m->waiters_, w);
  // Under the queue lock, as every setter of kParked that queues: the next
  // unlock of m takes the slow path and finds w. If m is free now, the
  // waiter the broadcast woke takes it and its unlock finds w.
  word_of(m).fetch_or(kMutexParked, std::memory_order_relaxed);
  spin_pdr_unlock(&m->qlock_);
}

int mutex_word_lock_spinning(uthread_mutex_t* m, const uint64_t* deadline_ns) {
  auto word = word_of(m);
  SpinWait wait;
  for (;;) {
    int w = word.load(std::memory_order_relaxed);
    if (!(w & kMutexLocked)) {
      if (try_take(word, w)) return 0;
      continue;
    }
    if (deadline_ns != nullptr && *deadline_ns <= monotonic_now_ns()) return ETIMEDOUT;
    wait.once();
  }
}

void mutex_word_unlock(uthread_mutex_t* m) {
  auto word = word_of(m);
  // The common case first, as one read-modify-write: a load before it
  // would fetch the contended cache line twice. release: the critical
  // section happens before the next acquire.
  int w = kMutexLocked;
  if (word.compare_exchange_strong(w, 0, std::memory_order_release, std::memory_order_relaxed))
    return;
  // Nobody to wake (no one parked, or a woken waiter is on its way): just
  // let go, but look at the queue now and then (kWokenRecheck).
  while (!(w & kMutexParked) || (w & kMutexWoken)) {
    if ((w & kMutexParked) && ++t_woken_unlocks % kWokenRecheck == 0) break;
    if (word.compare_exchange_weak(w, w & ~kMutexLocked, std::memory_order_release,
                                   std::memory_order_relaxed))
      return;
  }
  unlock_slow(m);
}

}  // namespace parlib::detail

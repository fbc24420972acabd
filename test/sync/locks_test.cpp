// Spinlock, spin_pdr, MCS and MCS-PDR locks from plain kernel threads (no
// vcores, no uthreads: the pdr variants' notification calls are no-ops
// there). Each test is a stress test with a checkable invariant, in the
// style of abseil's spinlock_test_common.cc: threads repeatedly check and
// rewrite a shared array under the lock; a torn array seen inside the
// critical section, a lost increment or a final array that does not match
// is a mutual-exclusion failure.

#include <parlib/atomic.h>
#include <parlib/mcs.h>
#include <parlib/spinlock.h>

#include <gtest/gtest.h>
#include <parlib/uthread.h>

#include <array>
#include <cstdint>
#include <thread>
#include <vector>

#include "support/fifo_sched.h"
#include "sync_test_util.h"

namespace {

// Lock adapters with one shape, so the stress test is written once.
struct Spin {
  spinlock_t l = SPINLOCK_INITIALIZER;
  struct Guard {
    explicit Guard(Spin& s) : s_(s) { spinlock_lock(&s_.l); }
    ~Guard() { spinlock_unlock(&s_.l); }
    Spin& s_;
  };
};

struct SpinPdr {
  spin_pdr_lock_t l = SPINPDR_INITIALIZER;
  struct Guard {
    explicit Guard(SpinPdr& s) : s_(s) { spin_pdr_lock(&s_.l); }
    ~Guard() { spin_pdr_unlock(&s_.l); }
    SpinPdr& s_;
  };
};

struct Mcs {
  mcs_lock l = MCS_LOCK_INIT;
  struct Guard {
    explicit Guard(Mcs& s) : s_(s) { mcs_lock_lock(&s_.l, &q_); }
    ~Guard() { mcs_lock_unlock(&s_.l, &q_); }
    Mcs& s_;
    mcs_lock_qnode q_ = MCS_QNODE_INIT;
  };
};

struct McsPdr {
  mcs_pdr_lock_t l = MCS_PDRLOCK_INIT;
  struct Guard {
    explicit Guard(McsPdr& s) : s_(s) { mcs_pdr_lock(&s_.l); }
    ~Guard() { mcs_pdr_unlock(&s_.l); }
    McsPdr& s_;
  };
};

constexpr size_t kArraySize = 32;

uint32_t mix(uint32_t v, uint32_t tid) {
  v ^= tid + 0x9e3779b9u + (v << 6) + (v >> 2);
  return v * 2654435761u;
}

template <typename Lock>
struct Shared {
  Lock lock;
  // Accessed only under the lock; relaxed atomics so that a broken lock
  // shows up as a wrong value, not as undefined behaviour.
  std::array<std::atomic<uint32_t>, kArraySize> array{};
  std::atomic<uint64_t> counter{0};
  std::atomic<uint64_t> torn{0};  // critical sections that saw a torn array
};

// One thread's work: iters critical sections; in each, check that every
// entry equals the first, then replace them all with a value derived from
// the old one and the thread id, and count. Returns the product of its
// replacements' history via the final array.
template <typename Lock>
void worker(Shared<Lock>* s, uint32_t tid, int iters) {
  if (uthread_self() == nullptr) sync_test_util::unpin_from_vcore();  // a plain thread
  for (int i = 0; i < iters; ++i) {
    typename Lock::Guard g(s->lock);
    const uint32_t first = s->array[0].load(std::memory_order_relaxed);
    for (size_t k = 1; k < kArraySize; ++k)
      if (s->array[k].load(std::memory_order_relaxed) != first) {
        s->torn.fetch_add(1, std::memory_order_relaxed);
        break;
      }
    const uint32_t next = mix(first, tid);
    for (size_t k = 0; k < kArraySize; ++k) s->array[k].store(next, std::memory_order_relaxed);
    s->counter.store(s->counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

template <typename Lock>
class LockStressTest : public ::testing::Test {};

using LockTypes = ::testing::Types<Spin, SpinPdr, Mcs, McsPdr>;
class LockNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    if (std::is_same_v<T, Spin>) return "spinlock";
    if (std::is_same_v<T, SpinPdr>) return "spin_pdr";
    if (std::is_same_v<T, Mcs>) return "mcs";
    return "mcs_pdr";
  }
};
TYPED_TEST_SUITE(LockStressTest, LockTypes, LockNames);

// 2..8 kernel threads on this (2-CPU) machine: oversubscribed above 2, so
// this also exercises the waiters' fall back to sched_yield.
TYPED_TEST(LockStressTest, ThreadsHashSharedArrayExactly) {
  for (int nthreads = 2; nthreads <= 8; nthreads *= 2) {
    constexpr int kIters = 5000;
    Shared<TypeParam> s;
    std::vector<std::thread> threads;
    for (int t = 0; t < nthreads; ++t)
      threads.emplace_back(worker<TypeParam>, &s, static_cast<uint32_t>(t + 1), kIters);
    for (auto& th : threads) th.join();
    SCOPED_TRACE(::testing::Message() << nthreads << " threads");
    EXPECT_EQ(s.counter.load(), static_cast<uint64_t>(nthreads) * kIters);
    EXPECT_EQ(s.torn.load(), 0u);
    const uint32_t first = s.array[0].load();
    for (size_t k = 1; k < kArraySize; ++k) ASSERT_EQ(s.array[k].load(), first) << "entry " << k;
  }
}

template <typename Lock>
struct UthreadJob {
  Shared<Lock>* s;
  uint32_t tid;
  int iters;
};

// The same invariant from uthreads on two vcores (cooperative: a holder is
// never switched out inside its critical section). For the pdr variants
// this also checks that every lock/unlock pair leaves the uthread's
// notification depth balanced (uth_enable_notifs aborts on underflow, and
// a leaked disable would make the final fifo_join hang the vcore).
TYPED_TEST(LockStressTest, UthreadsOnTwoVcoresHashSharedArrayExactly) {
  constexpr int kUthreads = 16, kIters = 4000;
  parlib_test::fifo_set_target_vcores(2);
  Shared<TypeParam> s;
  std::vector<UthreadJob<TypeParam>> jobs;
  for (int t = 0; t < kUthreads; ++t)
    jobs.push_back(UthreadJob<TypeParam>{&s, static_cast<uint32_t>(t + 1), kIters});
  std::vector<parlib_test::TestThread*> threads;
  for (auto& job : jobs)
    threads.push_back(parlib_test::fifo_spawn(
        [](void* arg) {
          auto* j = static_cast<UthreadJob<TypeParam>*>(arg);
          worker<TypeParam>(j->s, j->tid, j->iters);
        },
        &job));
  for (auto* t : threads) parlib_test::fifo_join(t);
  EXPECT_EQ(s.counter.load(), static_cast<uint64_t>(kUthreads) * kIters);
  EXPECT_EQ(s.torn.load(), 0u);
  const uint32_t first = s.array[0].load();
  for (size_t k = 1; k < kArraySize; ++k) ASSERT_EQ(s.array[k].load(), first) << "entry " << k;
}

TEST(Spinlock, TrylockReportsHeldAndFree) {
  spinlock_t l = SPINLOCK_INITIALIZER;
  EXPECT_FALSE(spinlock_is_locked(&l));
  EXPECT_TRUE(spinlock_trylock(&l));
  EXPECT_TRUE(spinlock_is_locked(&l));
  EXPECT_FALSE(spinlock_trylock(&l));
  spinlock_unlock(&l);
  EXPECT_TRUE(spinlock_trylock(&l));
  spinlock_unlock(&l);
  spinlock_init(&l);
  EXPECT_FALSE(spinlock_is_locked(&l));
}

TEST(SpinPdr, TrylockReportsHeldAndFree) {
  spin_pdr_lock_t l;
  spin_pdr_init(&l);
  EXPECT_FALSE(spin_pdr_locked(&l));
  ASSERT_TRUE(spin_pdr_trylock(&l));
  EXPECT_TRUE(spin_pdr_locked(&l));
  bool other = true;
  std::thread([&] { other = spin_pdr_trylock(&l); }).join();
  EXPECT_FALSE(other);
  spin_pdr_unlock(&l);
  std::thread([&] {
    other = spin_pdr_trylock(&l);
    if (other) spin_pdr_unlock(&l);
  }).join();
  EXPECT_TRUE(other);
}

// A waiter must not get the lock while the holder is inside.
TEST(Spinlock, WaiterBlocksUntilUnlock) {
  spinlock_t l = SPINLOCK_INITIALIZER;
  std::atomic<int> stage{0};
  spinlock_lock(&l);
  std::thread t([&] {
    stage.store(1);
    spinlock_lock(&l);
    stage.store(2);
    spinlock_unlock(&l);
  });
  while (stage.load() != 1) cpu_relax();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(stage.load(), 1);
  spinlock_unlock(&l);
  t.join();
  EXPECT_EQ(stage.load(), 2);
}

// MCS is FIFO: waiters that queued in a known order get the lock in it.
TEST(Mcs, HandsOffInArrivalOrder) {
  mcs_lock l = MCS_LOCK_INIT;
  mcs_lock_qnode q = MCS_QNODE_INIT;
  mcs_lock_lock(&l, &q);
  constexpr int kWaiters = 4;
  std::vector<int> order;
  std::vector<std::thread> threads;
  mcs_lock_qnode* prev_tail = &q;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      mcs_lock_qnode mine = MCS_QNODE_INIT;
      mcs_lock_lock(&l, &mine);
      order.push_back(i);
      mcs_lock_unlock(&l, &mine);
    });
    // Wait until waiter i has swapped itself in as the tail before the
    // next one starts: each arrival changes the tail exactly once.
    mcs_lock_qnode* tail;
    while ((tail = __atomic_load_n(&l.tail_, __ATOMIC_ACQUIRE)) == prev_tail)
      std::this_thread::yield();
    prev_tail = tail;
  }
  mcs_lock_unlock(&l, &q);
  for (auto& t : threads) t.join();
  ASSERT_EQ(order.size(), static_cast<size_t>(kWaiters));
  for (int i = 0; i < kWaiters; ++i) EXPECT_EQ(order[i], i);
  EXPECT_EQ(__atomic_load_n(&l.tail_, __ATOMIC_ACQUIRE), nullptr);
}

// A thread may hold several mcs_pdr locks at once, released in any order.
TEST(McsPdr, NestedLocksUnlockInAnyOrder) {
  mcs_pdr_lock_t a = MCS_PDRLOCK_INIT, b = MCS_PDRLOCK_INIT, c;
  mcs_pdr_init(&c);
  for (int round = 0; round < 3; ++round) {
    mcs_pdr_lock(&a);
    mcs_pdr_lock(&b);
    mcs_pdr_lock(&c);
    mcs_pdr_unlock(&b);
    mcs_pdr_unlock(&a);
    mcs_pdr_unlock(&c);
  }
  EXPECT_EQ(a.lock_.tail_, nullptr);
  EXPECT_EQ(b.lock_.tail_, nullptr);
  EXPECT_EQ(c.lock_.tail_, nullptr);
}

void unlock_from_other_thread() {
  static mcs_pdr_lock_t l = MCS_PDRLOCK_INIT;
  mcs_pdr_lock(&l);
  std::thread([] { mcs_pdr_unlock(&l); }).join();
}

void hold_too_many() {
  static mcs_pdr_lock_t l[MCS_PDR_QNODES_PER_THREAD + 1];
  for (auto& one : l) mcs_pdr_lock(&one);
}

TEST(McsPdrDeathTest, UnlockByNonHolderAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(unlock_from_other_thread(), "mcs_pdr_unlock: lock not held by the caller");
}

TEST(McsPdrDeathTest, TooManyNestedLocksAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(hold_too_many(), "already holds");
}

TEST(Atomic, OperationsHaveTheirDocumentedResults) {
  atomic_t a = ATOMIC_INITIALIZER(5);
  EXPECT_EQ(atomic_read(&a), 5);
  atomic_set(&a, 7);
  atomic_add(&a, 3);
  atomic_inc(&a);
  atomic_dec(&a);
  EXPECT_EQ(atomic_read(&a), 10);
  EXPECT_EQ(atomic_fetch_and_add(&a, 2), 10);
  EXPECT_EQ(atomic_swap(&a, 0), 12);
  EXPECT_FALSE(atomic_add_not_zero(&a, 1));
  EXPECT_EQ(atomic_read(&a), 0);
  EXPECT_FALSE(atomic_cas(&a, 1, 2));
  EXPECT_TRUE(atomic_cas(&a, 0, 2));
  EXPECT_TRUE(atomic_add_not_zero(&a, 1));
  EXPECT_EQ(atomic_read(&a), 3);
  EXPECT_TRUE(atomic_sub_and_test(&a, 3));
  atomic_or(&a, 0x6);
  atomic_and(&a, 0x3);
  EXPECT_EQ(atomic_read(&a), 0x2);
  int x = 0, y = 0;
  void* p = &x;
  EXPECT_TRUE(atomic_cas_ptr(&p, &x, &y));
  EXPECT_EQ(atomic_swap_ptr(&p, &x), &y);
  uint32_t u = 4;
  EXPECT_FALSE(atomic_cas_u32(&u, 3, 9));
  EXPECT_EQ(atomic_swap_u32(&u, 9), 4u);
  EXPECT_EQ(u, 9u);
}

// atomic_add_not_zero under contention: a count that starts at 1 and is
// raced up by many threads ends exact.
TEST(Atomic, ConcurrentRmwIsExact) {
  atomic_t a = ATOMIC_INITIALIZER(1);
  constexpr int kThreads = 4, kIters = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      sync_test_util::unpin_from_vcore();
      for (int i = 0; i < kIters; ++i) {
        if (i % 2)
          atomic_inc(&a);
        else
          ASSERT_TRUE(atomic_add_not_zero(&a, 1));
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(atomic_read(&a), 1 + kThreads * kIters);
}

}  // namespace

// upthread_cancel and its companions: deferred cancellation acts at
// upthread_testcancel and in upthread_join (also when the joiner is already
// blocked there), respects the disabled state, runs key and thread_local
// destructors, and gives the joiner UPTHREAD_CANCELED. libupthread's
// constructor has made main a upthread before gtest's main runs.
#include <gtest/gtest.h>
#include <upthread/upthread.h>

#include <atomic>
#include <cerrno>
#include <chrono>

namespace {

// Yields until pred() holds; false after a bounded time (the test then
// fails instead of hanging).
template <class Pred>
bool yield_until(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    upthread_yield();
  }
  return true;
}

TEST(UpthreadCancel, TestcancelLoopEndsWithCanceled) {
  static std::atomic<int> spins{0};
  spins = 0;
  upthread_t t;
  ASSERT_EQ(upthread_create(&t, nullptr,
                            [](void *) -> void * {
                              for (;;) {
                                spins.fetch_add(1);
                                upthread_testcancel();
                                upthread_yield();
                              }
                            },
                            nullptr),
            0);
  ASSERT_TRUE(yield_until([] { return spins.load() > 10; }));
  EXPECT_EQ(upthread_cancel(t), 0);
  EXPECT_EQ(upthread_cancel(t), 0);  // a second request changes nothing
  void *ret = nullptr;
  ASSERT_EQ(upthread_join(t, &ret), 0);
  EXPECT_EQ(ret, UPTHREAD_CANCELED);
}

TEST(UpthreadCancel, DisabledStaysPendingUntilEnabledAndAPointIsReached) {
  static std::atomic<int> stage{0};
  static std::atomic<bool> cancelled{false};
  stage = 0;
  cancelled = false;
  upthread_t t;
  ASSERT_EQ(upthread_create(&t, nullptr,
                            [](void *) -> void * {
                              int old = -1;
                              upthread_setcancelstate(UPTHREAD_CANCEL_DISABLE, &old);
                              EXPECT_EQ(old, UPTHREAD_CANCEL_ENABLE);
                              stage = 1;
                              while (!cancelled.load()) upthread_yield();
                              upthread_testcancel();  // disabled: returns
                              stage = 2;
                              upthread_setcancelstate(UPTHREAD_CANCEL_ENABLE, &old);
                              EXPECT_EQ(old, UPTHREAD_CANCEL_DISABLE);
                              stage = 3;  // enabling alone does not act
                              upthread_testcancel();
                              stage = 4;  // not reached
                              return nullptr;
                            },
                            nullptr),
            0);
  ASSERT_TRUE(yield_until([] { return stage.load() == 1; }));
  EXPECT_EQ(upthread_cancel(t), 0);
  cancelled = true;
  void *ret = nullptr;
  ASSERT_EQ(upthread_join(t, &ret), 0);
  EXPECT_EQ(ret, UPTHREAD_CANCELED);
  EXPECT_EQ(stage.load(), 3);
}

TEST(UpthreadCancel, StateAndTypeArguments) {
  int old = -1;
  EXPECT_EQ(upthread_setcancelstate(7, &old), EINVAL);
  EXPECT_EQ(upthread_setcanceltype(7, &old), EINVAL);
  EXPECT_EQ(upthread_setcanceltype(UPTHREAD_CANCEL_ASYNCHRONOUS, &old), 0);
  EXPECT_EQ(old, UPTHREAD_CANCEL_DEFERRED);
  EXPECT_EQ(upthread_setcanceltype(UPTHREAD_CANCEL_DEFERRED, &old), 0);
  EXPECT_EQ(old, UPTHREAD_CANCEL_ASYNCHRONOUS);
  EXPECT_EQ(upthread_setcancelstate(UPTHREAD_CANCEL_ENABLE, nullptr), 0);
  EXPECT_EQ(upthread_cancel(nullptr), ESRCH);
}

TEST(UpthreadCancel, ExitedThreadReturnsZeroAndKeepsItsValue) {
  static int value = 42;
  static std::atomic<bool> returning{false};
  returning = false;
  upthread_t t;
  ASSERT_EQ(upthread_create(&t, nullptr,
                            [](void *) -> void * {
                              returning = true;
                              return &value;
                            },
                            nullptr),
            0);
  ASSERT_TRUE(yield_until([] { return returning.load(); }));
  for (int i = 0; i < 100; ++i) upthread_yield();  // let its exit finish
  EXPECT_EQ(upthread_cancel(t), 0);
  void *ret = nullptr;
  ASSERT_EQ(upthread_join(t, &ret), 0);
  EXPECT_EQ(ret, &value);  // it returned: the late request changes nothing
}

// Destructors of keys and thread_locals run when a thread acts on a
// cancellation.
std::atomic<int> g_key_dtor{0};
std::atomic<int> g_tls_dtor{0};
struct TlsProbe {
  int live = 0;
  ~TlsProbe() {
    if (live) g_tls_dtor.fetch_add(1);
  }
};
thread_local TlsProbe t_probe;

TEST(UpthreadCancel, KeyAndThreadLocalDestructorsRun) {
  g_key_dtor = 0;
  g_tls_dtor = 0;
  static upthread_key_t key;
  ASSERT_EQ(upthread_key_create(&key, [](void *) { g_key_dtor.fetch_add(1); }), 0);
  upthread_t t;
  ASSERT_EQ(upthread_create(&t, nullptr,
                            [](void *) -> void * {
                              static int dummy;
                              upthread_setspecific(key, &dummy);
                              t_probe.live = 1;
                              upthread_cancel(upthread_self());  // acted on at the next point
                              upthread_testcancel();
                              return nullptr;
                            },
                            nullptr),
            0);
  void *ret = nullptr;
  ASSERT_EQ(upthread_join(t, &ret), 0);
  EXPECT_EQ(ret, UPTHREAD_CANCELED);
  EXPECT_EQ(g_key_dtor.load(), 1);
  EXPECT_EQ(g_tls_dtor.load(), 1);
  upthread_key_delete(key);
}

// A joiner blocked in upthread_join wakes up on cancellation and acts on
// it; the thread it joined stays joinable. Repeated with the request
// landing at varying points of the joiner's way into the block, which is
// where a lost wakeup would hide.
TEST(UpthreadCancel, BlockedJoinerWakesAndTargetStaysJoinable) {
  struct Pair {
    std::atomic<bool> release{false};
    upthread_t target = nullptr;
    std::atomic<bool> joining{false};
  };
  for (int round = 0; round < 300; ++round) {
    static Pair p;
    p.release = false;
    p.joining = false;
    static int target_value = 7;
    ASSERT_EQ(upthread_create(&p.target, nullptr,
                              [](void *) -> void * {
                                while (!p.release.load()) upthread_yield();
                                return &target_value;
                              },
                              nullptr),
              0);
    upthread_t joiner;
    ASSERT_EQ(upthread_create(&joiner, nullptr,
                              [](void *) -> void * {
                                p.joining = true;
                                void *r = nullptr;
                                upthread_join(p.target, &r);
                                return r;  // not reached: cancelled in the join
                              },
                              nullptr),
              0);
    ASSERT_TRUE(yield_until([] { return p.joining.load(); }));
    for (int i = 0; i < round % 7; ++i) upthread_yield();
    ASSERT_EQ(upthread_cancel(joiner), 0);
    void *ret = nullptr;
    ASSERT_EQ(upthread_join(joiner, &ret), 0);
    ASSERT_EQ(ret, UPTHREAD_CANCELED) << "round " << round;
    p.release = true;
    ASSERT_EQ(upthread_join(p.target, &ret), 0);
    ASSERT_EQ(ret, &target_value);
  }
}

}  // namespace

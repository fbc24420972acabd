// upthread_cancel and its companions: deferred cancellation acts at
// upthread_testcancel and in upthread_join (also when the joiner is already
// blocked there), respects the disabled state, runs key and thread_local
// destructors, and gives the joiner UPTHREAD_CANCELED. libupthread's
// constructor has made main a upthread before gtest's main runs.
#include <gtest/gtest.h>
#include <upthread/upthread.h>

#include <atomic>
#include <cerrno>

namespace {

// The tests wait for each other by blocking on semaphores, not by
// spinning with upthread_yield: a spinner's vcore only switches among its
// own queue and never steals, so a thread queued on a vcore that has just
// gone idle could wait for it indefinitely.
upsem_t g_ready;

struct ReadySem : ::testing::Test {
  void SetUp() override { ASSERT_EQ(upsem_init(&g_ready, 0, 0), 0); }
  void TearDown() override { upsem_destroy(&g_ready); }
};

TEST_F(ReadySem, TestcancelLoopEndsWithCanceled) {
  upthread_t t;
  ASSERT_EQ(upthread_create(
                &t, nullptr,
                [](void *) -> void * {
                  upsem_post(&g_ready);
                  for (;;) {
                    upthread_testcancel();
                    upthread_yield();
                  }
                },
                nullptr),
            0);
  upsem_wait(&g_ready);
  EXPECT_EQ(upthread_cancel(t), 0);
  EXPECT_EQ(upthread_cancel(t), 0);  // a second request changes nothing
  void *ret = nullptr;
  ASSERT_EQ(upthread_join(t, &ret), 0);
  EXPECT_EQ(ret, UPTHREAD_CANCELED);
}

TEST_F(ReadySem, DisabledStaysPendingUntilEnabledAndAPointIsReached) {
  static std::atomic<int> stage{0};
  static upsem_t cancelled;
  stage = 0;
  ASSERT_EQ(upsem_init(&cancelled, 0, 0), 0);
  upthread_t t;
  ASSERT_EQ(upthread_create(
                &t, nullptr,
                [](void *) -> void * {
                  int old = -1;
                  upthread_setcancelstate(UPTHREAD_CANCEL_DISABLE, &old);
                  EXPECT_EQ(old, UPTHREAD_CANCEL_ENABLE);
                  stage = 1;
                  upsem_post(&g_ready);
                  upsem_wait(&cancelled);
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
  upsem_wait(&g_ready);
  EXPECT_EQ(upthread_cancel(t), 0);
  upsem_post(&cancelled);
  void *ret = nullptr;
  ASSERT_EQ(upthread_join(t, &ret), 0);
  EXPECT_EQ(ret, UPTHREAD_CANCELED);
  EXPECT_EQ(stage.load(), 3);
  upsem_destroy(&cancelled);
}

TEST_F(ReadySem, StateAndTypeArguments) {
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

TEST_F(ReadySem, ExitedThreadReturnsZeroAndKeepsItsValue) {
  static int value = 42;
  upthread_t t;
  ASSERT_EQ(upthread_create(
                &t, nullptr,
                [](void *) -> void * {
                  upsem_post(&g_ready);
                  return &value;
                },
                nullptr),
            0);
  upsem_wait(&g_ready);
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

TEST_F(ReadySem, KeyAndThreadLocalDestructorsRun) {
  g_key_dtor = 0;
  g_tls_dtor = 0;
  static upthread_key_t key;
  ASSERT_EQ(upthread_key_create(&key, [](void *) { g_key_dtor.fetch_add(1); }), 0);
  upthread_t t;
  ASSERT_EQ(upthread_create(
                &t, nullptr,
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
TEST_F(ReadySem, BlockedJoinerWakesAndTargetStaysJoinable) {
  struct Pair {
    upsem_t release;
    upthread_t target = nullptr;
  };
  static Pair p;
  ASSERT_EQ(upsem_init(&p.release, 0, 0), 0);
  for (int round = 0; round < 300; ++round) {
    static int target_value = 7;
    ASSERT_EQ(upthread_create(
                  &p.target, nullptr,
                  [](void *) -> void * {
                    upsem_wait(&p.release);
                    return &target_value;
                  },
                  nullptr),
              0);
    upthread_t joiner;
    ASSERT_EQ(upthread_create(
                  &joiner, nullptr,
                  [](void *) -> void * {
                    upsem_post(&g_ready);
                    void *r = nullptr;
                    upthread_join(p.target, &r);
                    return r;  // not reached: cancelled in the join
                  },
                  nullptr),
              0);
    upsem_wait(&g_ready);
    for (int i = 0; i < round % 7; ++i) upthread_yield();
    ASSERT_EQ(upthread_cancel(joiner), 0);
    void *ret = nullptr;
    ASSERT_EQ(upthread_join(joiner, &ret), 0);
    ASSERT_EQ(ret, UPTHREAD_CANCELED) << "round " << round;
    upsem_post(&p.release);
    ASSERT_EQ(upthread_join(p.target, &ret), 0);
    ASSERT_EQ(ret, &target_value);
  }
  upsem_destroy(&p.release);
}

}  // namespace

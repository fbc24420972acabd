// Per-uthread TLS: __thread, thread_local (with constructors and
// destructors), errno and glibc's own per-thread state stay per uthread,
// also when uthreads migrate between vcores.
#include <gtest/gtest.h>
#include <locale.h>
#include <parlib/dtls.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

using namespace parlib_test;

namespace {

__thread long tls_counter = 0;
__thread int tls_initialised = 42;  // .tdata: each uthread starts from the image

std::atomic<int> g_constructed{0};
std::atomic<int> g_destroyed{0};
struct Tracked {
  Tracked() { g_constructed.fetch_add(1); }
  ~Tracked() { g_destroyed.fetch_add(1); }
  long value = 0;
};
thread_local Tracked tl_tracked;

std::atomic<bool> g_some_migrated{false};

TEST(Tls, EachUthreadHasItsOwnCopiesAcrossMigration) {
  ScopedTargetVcores target(2);
  g_some_migrated = max_vcores() < 2;
  constexpr int kThreads = 16;
  constexpr int kIterations = 2000;
  struct Arg {
    int index;
    bool ok = true;
    int initial = 0;
    uint32_t vcores_mask = 0;
  } args[kThreads];
  int before_constructed = g_constructed.load();
  int before_destroyed = g_destroyed.load();
  std::vector<TestThread *> threads;
  for (int i = 0; i < kThreads; ++i) {
    args[i].index = i;
    threads.push_back(fifo_spawn(
        [](void *p) {
          auto *a = static_cast<Arg *>(p);
          a->initial = tls_initialised;
          // At least kIterations, and on until some uthread has migrated (when
          // vcores share a CPU one may run alone for a whole time slice).
          auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          for (int it = 0; it < kIterations ||
                           (!g_some_migrated.load() && std::chrono::steady_clock::now() < deadline);
               ++it) {
            tls_counter += a->index;
            tl_tracked.value += a->index;
            errno = 1000 + a->index;
            a->vcores_mask |= 1u << (vcore_id() % 32);
            fifo_yield();  // others run, maybe this uthread moves
            a->vcores_mask |= 1u << (vcore_id() % 32);
            if (__builtin_popcount(a->vcores_mask) > 1) g_some_migrated.store(true);
            if (errno != 1000 + a->index) a->ok = false;
            if (tls_counter != static_cast<long>(it + 1) * a->index) a->ok = false;
            if (tl_tracked.value != static_cast<long>(it + 1) * a->index) a->ok = false;
          }
        },
        &args[i]));
  }
  for (auto *t : threads) fifo_join(t);
  bool migrated = false;
  for (auto &a : args) {
    EXPECT_TRUE(a.ok) << "uthread " << a.index << " saw another's TLS or errno";
    EXPECT_EQ(a.initial, 42) << "TLS did not start from the initialisation image";
    migrated |= __builtin_popcount(a.vcores_mask) > 1;
  }
  if (max_vcores() >= 2) {
    EXPECT_TRUE(migrated);
  }
  EXPECT_EQ(g_constructed.load() - before_constructed, kThreads);
  EXPECT_EQ(g_destroyed.load() - before_destroyed, kThreads)
      << "every uthread's thread_local destructor runs exactly once at exit";
}

TEST(Tls, ThreadPointerAndGlibcSelfAreDistinctPerUthread) {
  void *mine = __builtin_thread_pointer();
  pthread_t my_self = pthread_self();
  void *theirs = nullptr;
  pthread_t their_self{};
  struct Out {
    void **tp;
    pthread_t *self;
  } out{&theirs, &their_self};
  TestThread *t = fifo_spawn(
      [](void *p) {
        auto *o = static_cast<Out *>(p);
        *o->tp = __builtin_thread_pointer();
        *o->self = pthread_self();
      },
      &out);
  fifo_join(t);
  EXPECT_NE(theirs, nullptr);
  EXPECT_NE(theirs, mine);
  EXPECT_FALSE(pthread_equal(my_self, their_self));
}

// glibc's owner-checking locks (error-checking and recursive mutexes, and
// its own dl_load_tls_lock) compare the owner's tid with the caller's, read
// from the TCB: every uthread TCB must carry an id of its own. With the 0
// a fresh TCB has, a second uthread would be taken for the owner (EDEADLK
// below, or two uthreads inside glibc's TLS lock at once).
TEST(Tls, GlibcSeesEachUthreadAsADifferentLockOwner) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_t m;
  pthread_mutex_init(&m, &attr);
  struct Seen {
    pthread_mutex_t *m;
    int trylock, unlock;
  };
  auto probe = [](void *p) {
    auto *s = static_cast<Seen *>(p);
    s->trylock = pthread_mutex_trylock(s->m);
    s->unlock = pthread_mutex_unlock(s->m);
  };
  // Held by one fresh uthread, probed by another (and by thread0).
  for (int round = 0; round < 3; ++round) {
    Seen holder{&m, -1, -1}, other{&m, -1, -1};
    TestThread *h = fifo_spawn(
        [](void *p) {
          auto *s = static_cast<Seen *>(p);
          s->trylock = pthread_mutex_lock(s->m);
        },
        &holder);
    fifo_join(h);
    ASSERT_EQ(holder.trylock, 0);
    fifo_join(fifo_spawn(probe, &other));
    EXPECT_EQ(other.trylock, EBUSY) << "another uthread was taken for the owner";
    EXPECT_EQ(other.unlock, EPERM);
    Seen self{&m, -1, -1};
    probe(&self);
    EXPECT_EQ(self.trylock, EBUSY);
    // Unlock as glibc would let the owner: reinitialise (the owner is gone).
    pthread_mutex_destroy(&m);
    pthread_mutex_init(&m, &attr);
  }
  pthread_mutex_destroy(&m);
  pthread_mutexattr_destroy(&attr);
}

// glibc reads the CPU number from the kernel task's rseq area; a uthread's
// TCB must not report a stale CPU from its own copy.
TEST(Tls, SchedGetcpuReportsTheVcoresCpu) {
  for (int i = 0; i < 50; ++i) {
    uth_disable_notifs();  // stay on this vcore while comparing
    uint32_t id = vcore_id();
    // The vcore's task is pinned to one CPU: its own mask names it.
    cpu_set_t set;
    ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    int pinned = -1;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) pinned = pinned == -1 ? c : -2;
    int cpu = sched_getcpu();
    uth_enable_notifs();
    ASSERT_GE(pinned, 0) << "vcore " << id << "'s task is not pinned to one CPU";
    EXPECT_EQ(cpu, pinned) << "vcore " << id;
    fifo_yield();
  }
}

// glibc per-thread state: a per-thread locale set with uselocale() stays
// with the uthread that set it.
TEST(Tls, UselocaleIsPerUthread) {
  locale_t c_locale = newlocale(LC_ALL_MASK, "C", nullptr);
  ASSERT_NE(c_locale, nullptr);
  struct Arg {
    locale_t loc;
    bool kept = false;
  } arg{c_locale};
  TestThread *t = fifo_spawn(
      [](void *p) {
        auto *a = static_cast<Arg *>(p);
        uselocale(a->loc);
        fifo_yield();
        a->kept = uselocale(nullptr) == a->loc;
      },
      &arg);
  fifo_yield();
  EXPECT_EQ(uselocale(nullptr), LC_GLOBAL_LOCALE) << "another uthread's locale leaked to thread0";
  fifo_join(t);
  EXPECT_TRUE(arg.kept);
  freelocale(c_locale);
}

// glibc's per-thread ctype pointers (set up by glibc only in threads it
// creates) must be valid in a new uthread: ctype macros and the printing of
// floating-point numbers go through them.
TEST(Tls, CtypeAndFloatFormattingWorkInNewUthreads) {
  struct Out {
    char text[64] = {0};
    bool ctype_ok = false;
  } out;
  TestThread *t = fifo_spawn(
      [](void *p) {
        auto *o = static_cast<Out *>(p);
        snprintf(o->text, sizeof o->text, "%.2f %g %c", 3.25, 1e300, toupper('q'));
        o->ctype_ok = isalpha('a') && !isdigit('x') && tolower('Z') == 'z';
      },
      &out);
  fifo_join(t);
  EXPECT_STREQ(out.text, "3.25 1e+300 Q");
  EXPECT_TRUE(out.ctype_ok);
}

// DTLS: values are per uthread and destructors run once per thread per key.
TEST(Dtls, ValuesArePerUthreadAndDestructorsRunOnce) {
  static std::atomic<int> destroyed{0};
  destroyed = 0;
  dtls_key_t key = dtls_key_create([](void *v) {
    destroyed.fetch_add(1);
    delete static_cast<int *>(v);
  });
  ASSERT_NE(key, nullptr);
  constexpr int kThreads = 50;
  std::atomic<int> mismatches{0};
  std::vector<TestThread *> threads;
  struct Arg {
    dtls_key_t key;
    std::atomic<int> *mismatches;
    int index;
  };
  std::vector<Arg> args;
  args.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) args.push_back(Arg{key, &mismatches, i});
  for (int i = 0; i < kThreads; ++i) {
    threads.push_back(fifo_spawn(
        [](void *p) {
          auto *a = static_cast<Arg *>(p);
          if (get_dtls(a->key) != nullptr) a->mismatches->fetch_add(1);
          set_dtls(a->key, new int(a->index));
          fifo_yield();
          auto *v = static_cast<int *>(get_dtls(a->key));
          if (v == nullptr || *v != a->index) a->mismatches->fetch_add(1);
        },
        &args[static_cast<size_t>(i)]));
  }
  for (auto *t : threads) fifo_join(t);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(destroyed.load(), kThreads);
  dtls_key_delete(key);
  EXPECT_EQ(get_dtls(key), nullptr);
}

TEST(Dtls, DeletedKeyHidesOldValues) {
  dtls_key_t key = dtls_key_create(nullptr);
  ASSERT_NE(key, nullptr);
  int value = 7;
  set_dtls(key, &value);
  EXPECT_EQ(get_dtls(key), &value);
  dtls_key_delete(key);
  EXPECT_EQ(get_dtls(key), nullptr);
  dtls_key_t again = dtls_key_create(nullptr);  // may reuse the slot
  EXPECT_EQ(get_dtls(again), nullptr) << "a new key must not see the old key's value";
  dtls_key_delete(again);
  EXPECT_EQ(get_dtls(nullptr), nullptr);
  set_dtls(nullptr, &value);  // ignored, no crash
}

}  // namespace

// The slab allocator, the fixed-size pool and the wait-free list, from plain
// kernel threads.

#include <parlib/pool.h>
#include <parlib/slab.h>
#include <parlib/waitfreelist.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "sync_test_util.h"

namespace {

// ---------------------------------------------------------------- slab

constexpr uint64_t kConstructed = 0xc0ffee0ddba11ull;

struct Obj {
  uint64_t magic;  // kConstructed while constructed
  uint64_t owner;  // 0 while free (in the cache), else the allocating thread
  char payload[40];
};

std::atomic<uint64_t> g_ctors{0}, g_dtors{0};

void obj_ctor(void* p, size_t size) {
  EXPECT_EQ(size, sizeof(Obj));
  auto* o = static_cast<Obj*>(p);
  o->magic = kConstructed;
  o->owner = 0;
  g_ctors.fetch_add(1, std::memory_order_relaxed);
}

void obj_dtor(void* p, size_t size) {
  EXPECT_EQ(size, sizeof(Obj));
  auto* o = static_cast<Obj*>(p);
  EXPECT_EQ(o->magic, kConstructed);
  EXPECT_EQ(o->owner, 0u) << "destroyed while allocated";
  o->magic = 0;
  g_dtors.fetch_add(1, std::memory_order_relaxed);
}

class SlabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_ctors = 0;
    g_dtors = 0;
  }
};

TEST_F(SlabTest, CreateRejectsBadArguments) {
  errno = 0;
  EXPECT_EQ(slab_cache_create("zero", 0, 0, 0, nullptr, nullptr), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(slab_cache_create("align3", 8, 3, 0, nullptr, nullptr), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(slab_cache_create("neg", 8, -8, 0, nullptr, nullptr), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(slab_cache_create("flags", 8, 0, 1, nullptr, nullptr), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(slab_cache_alloc(nullptr, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  slab_cache_stats st;
  EXPECT_EQ(slab_cache_get_stats(nullptr, &st), -1);
  slab_cache_free(nullptr, nullptr);  // both ignored
  slab_cache_destroy(nullptr);
}

TEST_F(SlabTest, ObjectsAreAlignedDistinctAndReused) {
  for (int align : {0, 8, 64, 256, 4096}) {
    SCOPED_TRACE(align);
    slab_cache* c = slab_cache_create("aligned", 24, align, 0, nullptr, nullptr);
    ASSERT_NE(c, nullptr);
    slab_cache_stats st;
    ASSERT_EQ(slab_cache_get_stats(c, &st), 0);
    EXPECT_STREQ(st.name, "aligned");
    const size_t want_align = align ? static_cast<size_t>(align) : 16;
    EXPECT_EQ(st.obj_align, want_align);
    // Enough objects to need three slabs.
    const size_t n = 2 * st.objs_per_slab + 1;
    std::vector<char*> objs;
    for (size_t i = 0; i < n; ++i) {
      auto* p = static_cast<char*>(slab_cache_alloc(c, 0));
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % want_align, 0u);
      std::memset(p, static_cast<int>(i), 24);  // the whole object is ours
      objs.push_back(p);
    }
    std::sort(objs.begin(), objs.end());
    for (size_t i = 1; i < n; ++i) ASSERT_GE(objs[i] - objs[i - 1], 24);
    ASSERT_EQ(slab_cache_get_stats(c, &st), 0);
    EXPECT_EQ(st.nr_slabs, 3u);
    EXPECT_EQ(st.nr_objs_in_use, n);
    EXPECT_EQ(st.nr_objs_total, 3 * st.objs_per_slab);
    for (char* p : objs) slab_cache_free(c, p);
    ASSERT_EQ(slab_cache_get_stats(c, &st), 0);
    EXPECT_EQ(st.nr_objs_in_use, 0u);
    EXPECT_EQ(st.nr_slabs, 1u) << "one empty slab stays in reserve";
    EXPECT_EQ(st.nr_shrinks, 2u);
    // A freed object is handed out again (LIFO within the reserve slab).
    void* again = slab_cache_alloc(c, 0);
    EXPECT_TRUE(std::binary_search(objs.begin(), objs.end(), static_cast<char*>(again)));
    slab_cache_free(c, again);
    slab_cache_destroy(c);
  }
}

TEST_F(SlabTest, LargeObjectsGetLargerSlabs) {
  slab_cache* c = slab_cache_create("big", 100000, 0, 0, nullptr, nullptr);
  ASSERT_NE(c, nullptr);
  slab_cache_stats st;
  ASSERT_EQ(slab_cache_get_stats(c, &st), 0);
  EXPECT_GE(st.objs_per_slab, 8u);
  void* p = slab_cache_alloc(c, 0);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0xab, 100000);
  slab_cache_free(c, p);
  slab_cache_destroy(c);
}

// Constructors run once per object when its slab is made, destructors once
// when the slab goes; objects come back exactly as they were freed.
TEST_F(SlabTest, ConstructedStateIsCached) {
  slab_cache* c = slab_cache_create("ctor", sizeof(Obj), 0, 0, obj_ctor, obj_dtor);
  ASSERT_NE(c, nullptr);
  slab_cache_stats st;
  ASSERT_EQ(slab_cache_get_stats(c, &st), 0);
  EXPECT_EQ(g_ctors.load(), 0u) << "no slab before the first alloc";
  auto* o = static_cast<Obj*>(slab_cache_alloc(c, 0));
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->magic, kConstructed);
  EXPECT_EQ(g_ctors.load(), st.objs_per_slab);
  std::strcpy(o->payload, "kept");
  slab_cache_free(c, o);
  auto* o2 = static_cast<Obj*>(slab_cache_alloc(c, 0));
  EXPECT_EQ(o2, o);
  EXPECT_STREQ(o2->payload, "kept");
  EXPECT_EQ(g_ctors.load(), st.objs_per_slab) << "no second construction";
  slab_cache_free(c, o2);
  EXPECT_EQ(g_dtors.load(), 0u);
  slab_cache_destroy(c);
  EXPECT_EQ(g_dtors.load(), st.objs_per_slab);
}

// Several threads allocate and free at random against one cache, checking
// that every object they get is constructed and not owned by anyone else.
// Counts must add up exactly afterwards.
TEST_F(SlabTest, ConcurrentStormKeepsCountsExact) {
  slab_cache* c = slab_cache_create("storm", sizeof(Obj), 0, 0, obj_ctor, obj_dtor);
  ASSERT_NE(c, nullptr);
  constexpr int kThreads = 4, kOps = 60000, kMaxHeld = 300;
  std::atomic<uint64_t> allocs{0}, frees{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      sync_test_util::unpin_from_vcore();
      std::mt19937 rng(1234 + t);
      std::vector<Obj*> held;
      const uint64_t me = static_cast<uint64_t>(t) + 1;
      for (int i = 0; i < kOps; ++i) {
        const bool do_alloc = held.empty() || (held.size() < kMaxHeld && rng() % 2);
        if (do_alloc) {
          auto* o = static_cast<Obj*>(slab_cache_alloc(c, 0));
          if (o == nullptr || o->magic != kConstructed || o->owner != 0) {
            bad.fetch_add(1);
            continue;
          }
          o->owner = me;
          held.push_back(o);
          allocs.fetch_add(1, std::memory_order_relaxed);
        } else {
          const size_t k = rng() % held.size();
          Obj* o = held[k];
          held[k] = held.back();
          held.pop_back();
          if (o->owner != me) bad.fetch_add(1);
          o->owner = 0;
          slab_cache_free(c, o);
          frees.fetch_add(1, std::memory_order_relaxed);
        }
      }
      for (Obj* o : held) {
        if (o->owner != me) bad.fetch_add(1);
        o->owner = 0;
        slab_cache_free(c, o);
        frees.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0u);
  slab_cache_stats st;
  ASSERT_EQ(slab_cache_get_stats(c, &st), 0);
  EXPECT_EQ(st.nr_allocs, allocs.load());
  EXPECT_EQ(st.nr_frees, frees.load());
  EXPECT_EQ(st.nr_allocs, st.nr_frees);
  EXPECT_EQ(st.nr_objs_in_use, 0u);
  EXPECT_EQ(st.nr_ctor_calls, g_ctors.load());
  EXPECT_EQ(st.nr_dtor_calls, g_dtors.load());
  EXPECT_EQ(st.nr_ctor_calls, st.nr_grows * st.objs_per_slab);
  EXPECT_EQ(st.nr_dtor_calls, st.nr_shrinks * st.objs_per_slab);
  EXPECT_EQ(st.nr_slabs, st.nr_grows - st.nr_shrinks);
  EXPECT_LE(st.nr_slabs, 1u);
  slab_cache_destroy(c);
  EXPECT_EQ(g_ctors.load(), g_dtors.load());
}

TEST_F(SlabTest, DoubleFreeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        slab_cache* c = slab_cache_create("df", 32, 0, 0, nullptr, nullptr);
        void* keep = slab_cache_alloc(c, 0);  // keeps the slab alive
        void* p = slab_cache_alloc(c, 0);
        slab_cache_free(c, p);
        slab_cache_free(c, p);
        (void)keep;
      },
      "double free");
}

TEST_F(SlabTest, ForeignObjectAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        slab_cache* a = slab_cache_create("a", 32, 0, 0, nullptr, nullptr);
        slab_cache* b = slab_cache_create("b", 32, 0, 0, nullptr, nullptr);
        void* p = slab_cache_alloc(a, 0);
        slab_cache_alloc(b, 0);
        slab_cache_free(b, p);
      },
      "does not belong to this cache");
  EXPECT_DEATH(
      {
        slab_cache* a = slab_cache_create("a", 32, 0, 0, nullptr, nullptr);
        char* p = static_cast<char*>(slab_cache_alloc(a, 0));
        slab_cache_free(a, p + 8);
      },
      "not an object of this cache");
}

TEST_F(SlabTest, DestroyWithLiveObjectsAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        slab_cache* a = slab_cache_create("a", 32, 0, 0, nullptr, nullptr);
        slab_cache_alloc(a, 0);
        slab_cache_destroy(a);
      },
      "still allocated");
}

// ---------------------------------------------------------------- pool

TEST(Pool, ExhaustsAndRecycles) {
  constexpr size_t kN = 16, kSize = 24;
  alignas(16) static char buffer[kN * kSize];
  void* queue[kN];
  pool_t pool;
  pool_init(&pool, buffer, queue, kN, kSize);
  EXPECT_EQ(pool_size(&pool), kN);
  EXPECT_EQ(pool_available(&pool), kN);
  std::vector<void*> got;
  for (size_t i = 0; i < kN; ++i) {
    void* p = pool_alloc(&pool);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p, buffer + i * kSize) << "handed out in address order";
    got.push_back(p);
  }
  EXPECT_EQ(pool_alloc(&pool), nullptr) << "exhausted";
  EXPECT_EQ(pool_available(&pool), 0u);
  EXPECT_EQ(pool_free(&pool, got[5]), 0);
  EXPECT_EQ(pool_free(&pool, got[9]), 0);
  EXPECT_EQ(pool_available(&pool), 2u);
  EXPECT_EQ(pool_alloc(&pool), got[9]) << "LIFO reuse";
  EXPECT_EQ(pool_alloc(&pool), got[5]);
  EXPECT_EQ(pool_alloc(&pool), nullptr);
  for (void* p : got) EXPECT_EQ(pool_free(&pool, p), 0);
  EXPECT_EQ(pool_available(&pool), kN);
  EXPECT_EQ(pool_size(&pool), kN);
}

TEST(Pool, RejectsDoubleFreeAndForeignPointers) {
  constexpr size_t kN = 4, kSize = 32;
  alignas(16) static char buffer[kN * kSize];
  void* queue[kN];
  pool_t pool;
  pool_init(&pool, buffer, queue, kN, kSize);
  void* a = pool_alloc(&pool);
  void* b = pool_alloc(&pool);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(pool_free(&pool, a), 0);
  EXPECT_EQ(pool_free(&pool, a), -1) << "double free";
  int outside = 0;
  EXPECT_EQ(pool_free(&pool, &outside), -1) << "foreign pointer";
  EXPECT_EQ(pool_free(&pool, buffer + kN * kSize), -1) << "one past the end";
  EXPECT_EQ(pool_free(&pool, static_cast<char*>(b) + 1), -1) << "not an object boundary";
  EXPECT_EQ(pool_free(&pool, nullptr), -1);
  EXPECT_EQ(pool_free(nullptr, b), -1);
  EXPECT_EQ(pool_available(&pool), 3u) << "failed frees changed nothing";
  EXPECT_EQ(pool_free(&pool, b), 0);
  // Full pool: every further free is a double free.
  EXPECT_EQ(pool_free(&pool, b), -1);
  EXPECT_EQ(pool_available(&pool), kN);
}

TEST(Pool, BadInitGivesAnEmptyPool) {
  void* queue[4];
  char buffer[64];
  pool_t pool;
  pool_init(&pool, nullptr, queue, 4, 16);
  EXPECT_EQ(pool_alloc(&pool), nullptr);
  EXPECT_EQ(pool_size(&pool), 0u);
  pool_init(&pool, buffer, queue, 0, 16);
  EXPECT_EQ(pool_alloc(&pool), nullptr);
  pool_init(&pool, buffer, queue, SIZE_MAX, 16);
  EXPECT_EQ(pool_alloc(&pool), nullptr);
  pool_init(nullptr, buffer, queue, 4, 16);  // ignored
  EXPECT_EQ(pool_alloc(nullptr), nullptr);
  EXPECT_EQ(pool_size(nullptr), 0u);
  EXPECT_EQ(pool_available(nullptr), 0u);
}

// ---------------------------------------------------------------- wfl

TEST(Wfl, SingleThreadSemantics) {
  wfl list;
  wfl_init(&list);
  EXPECT_EQ(wfl_capacity(&list), 1u);
  EXPECT_EQ(wfl_size(&list), 0u);
  EXPECT_EQ(wfl_remove(&list), nullptr);
  int a = 1, b = 2, c = 3;
  wfl_slot* sa = wfl_insert(&list, &a);
  ASSERT_NE(sa, nullptr);
  EXPECT_EQ(wfl_capacity(&list), 1u) << "the embedded slot was empty";
  wfl_slot* sb = wfl_insert(&list, &b);
  ASSERT_NE(sb, nullptr);
  EXPECT_NE(sa, sb);
  EXPECT_EQ(wfl_capacity(&list), 2u);
  EXPECT_EQ(wfl_size(&list), 2u);
  EXPECT_FALSE(wfl_insert_into(&list, sa, &c)) << "slot occupied";
  EXPECT_EQ(wfl_remove_from(&list, sa), &a);
  EXPECT_EQ(wfl_remove_from(&list, sa), nullptr);
  EXPECT_TRUE(wfl_insert_into(&list, sa, &c));
  // Two slots, both full: a third insert appends a slot.
  wfl_slot* sc = wfl_insert(&list, &c);
  ASSERT_NE(sc, nullptr);
  EXPECT_EQ(wfl_capacity(&list), 3u);
  EXPECT_EQ(wfl_size(&list), 3u);
  EXPECT_EQ(wfl_remove_all(&list, &c), 2u);
  EXPECT_EQ(wfl_size(&list), 1u);
  EXPECT_EQ(wfl_remove(&list), &b);
  EXPECT_EQ(wfl_remove(&list), nullptr);
  // Empty slots are reused before new ones are made.
  EXPECT_NE(wfl_insert(&list, &a), nullptr);
  EXPECT_NE(wfl_insert(&list, &b), nullptr);
  EXPECT_NE(wfl_insert(&list, &c), nullptr);
  EXPECT_EQ(wfl_capacity(&list), 3u);
  EXPECT_EQ(wfl_size(&list), 3u);
  // Bad input.
  EXPECT_EQ(wfl_insert(&list, nullptr), nullptr);
  EXPECT_EQ(wfl_insert(nullptr, &a), nullptr);
  EXPECT_FALSE(wfl_insert_into(&list, nullptr, &a));
  EXPECT_EQ(wfl_remove(nullptr), nullptr);
  EXPECT_EQ(wfl_remove_from(&list, nullptr), nullptr);
  EXPECT_EQ(wfl_remove_all(&list, nullptr), 0u);
  EXPECT_EQ(wfl_size(nullptr), 0u);
  EXPECT_EQ(wfl_capacity(nullptr), 0u);
  while (wfl_remove(&list) != nullptr) {
  }
  wfl_cleanup(&list);
  EXPECT_EQ(wfl_capacity(&list), 1u);
}

TEST(Wfl, StaticInitializer) {
  static wfl list = WFL_INITIALIZER(list);
  int x = 0;
  EXPECT_EQ(wfl_insert(&list, &x), &list.first_);
  EXPECT_EQ(wfl_remove(&list), &x);
  wfl_cleanup(&list);
}

// Threads insert distinct values and remove whatever they find, in bursts;
// afterwards the list is drained. Every value must have been removed
// exactly once: nothing lost, nothing duplicated.
TEST(Wfl, ConcurrentInsertRemoveLosesAndDuplicatesNothing) {
  constexpr int kThreads = 4, kPerThread = 50000;
  constexpr size_t kTotal = size_t{kThreads} * kPerThread;
  // Items are addresses into this array; the value is the index.
  static std::vector<char> items(kTotal);
  std::vector<std::atomic<uint8_t>> removed_count(kTotal);
  wfl list;
  wfl_init(&list);
  std::atomic<uint64_t> failed_inserts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      sync_test_util::unpin_from_vcore();
      std::mt19937 rng(99 + t);
      auto take = [&](void* item) {
        const auto idx = static_cast<size_t>(static_cast<char*>(item) - items.data());
        removed_count[idx].fetch_add(1, std::memory_order_relaxed);
      };
      // Bursts: insert 1..64 items, then try as many removals, so the list
      // stays short (traversals are O(slots)) while threads overlap.
      int next = 0;
      while (next < kPerThread) {
        const int burst = std::min<int>(1 + static_cast<int>(rng() % 64), kPerThread - next);
        for (int i = 0; i < burst; ++i, ++next) {
          void* item = &items[static_cast<size_t>(t) * kPerThread + next];
          if (wfl_insert(&list, item) == nullptr) failed_inserts.fetch_add(1);
        }
        for (int i = 0; i < burst; ++i)
          if (void* got = wfl_remove(&list)) take(got);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed_inserts.load(), 0u);
  const size_t left = wfl_size(&list);
  size_t drained = 0;
  while (void* got = wfl_remove(&list)) {
    removed_count[static_cast<size_t>(static_cast<char*>(got) - items.data())].fetch_add(1);
    ++drained;
  }
  EXPECT_EQ(drained, left);
  EXPECT_EQ(wfl_size(&list), 0u);
  size_t lost = 0, duplicated = 0;
  for (auto& n : removed_count) {
    if (n.load() == 0) ++lost;
    if (n.load() > 1) ++duplicated;
  }
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(duplicated, 0u);
  // A slot is only appended when no empty one was found: never more
  // slots than items ever inserted.
  EXPECT_LE(wfl_capacity(&list), kTotal);
  wfl_cleanup(&list);
}

}  // namespace

// Recycled TCBs. src/uthread/tls.cpp keeps the TCBs of exited uthreads and
// makes them new again for later ones (docs/design.md, "Per-uthread TLS").
// A uthread that runs on a TCB another uthread dirtied must see exactly
// what it would see on a fresh one: TLS initialisation images, zeroed .tbss,
// errno 0, a thread_local constructed anew, no glibc pthread key values, the
// process's stack-protector canary and pointer guard, and fresh dynamic TLS
// of dlopen'ed modules, also after modules were closed and others opened.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <parlib/uthread.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>

#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
// The sanitizer runtime's count of live heap bytes (GCC ships no
// <sanitizer/allocator_interface.h> to declare it).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

using namespace parlib_test;

extern "C" int protected_function_that_yields(int n);  // -fstack-protector-all

namespace {

__thread int tls_five = 5;      // .tdata
__thread char tls_zeroed[512];  // .tbss

std::atomic<int> g_constructed{0};
std::atomic<int> g_destroyed{0};
struct Counted {
  Counted() { g_constructed.fetch_add(1); }
  ~Counted() { g_destroyed.fetch_add(1); }
  int value = 3;
};
thread_local Counted tl_counted;

// tcbhead_t fields (glibc sysdeps/x86_64/nptl/tls.h).
constexpr size_t kStackGuard = 0x28;
constexpr size_t kPointerGuard = 0x30;
uintptr_t tcb_word(size_t offset) {
  return *reinterpret_cast<uintptr_t *>(static_cast<char *>(__builtin_thread_pointer()) + offset);
}

// Runs fn(arg) in `count` uthreads one after another (each joined before the
// next starts, so each can take the TCB its predecessor released).
void run_one_after_another(int count, void (*fn)(void *), void *arg) {
  for (int i = 0; i < count; ++i) fifo_join(fifo_spawn(fn, arg, 64 << 10));
}

struct Observations {
  pthread_key_t key;
  uintptr_t canary;
  uintptr_t pointer_guard;
  std::set<void *> thread_pointers;
  int runs = 0;
  int bad_five = 0, bad_zeroed = 0, bad_errno = 0, bad_counted = 0, bad_key = 0;
  int bad_canary = 0, bad_pointer_guard = 0, bad_self = 0, bad_protected = 0;
};

TEST(TlsRecycle, RecycledTcbLooksFresh) {
  Observations obs;
  ASSERT_EQ(pthread_key_create(&obs.key, nullptr), 0);
  obs.canary = tcb_word(kStackGuard);
  obs.pointer_guard = tcb_word(kPointerGuard);
  int constructed_before = g_constructed.load();
  int destroyed_before = g_destroyed.load();
  constexpr int kRuns = 40;
  run_one_after_another(
      kRuns,
      [](void *p) {
        auto *o = static_cast<Observations *>(p);
        ++o->runs;
        o->thread_pointers.insert(__builtin_thread_pointer());
        // What a fresh TCB shows...
        if (errno != 0) ++o->bad_errno;
        if (tls_five != 5) ++o->bad_five;
        for (char c : tls_zeroed)
          if (c != 0) {
            ++o->bad_zeroed;
            break;
          }
        if (tl_counted.value != 3) ++o->bad_counted;
        if (pthread_getspecific(o->key) != nullptr) ++o->bad_key;
        if (tcb_word(kStackGuard) != o->canary) ++o->bad_canary;
        if (tcb_word(kPointerGuard) != o->pointer_guard) ++o->bad_pointer_guard;
        if (reinterpret_cast<void *>(pthread_self()) != __builtin_thread_pointer()) ++o->bad_self;
        if (protected_function_that_yields(10) != 55) ++o->bad_protected;
        // ...and dirt for the next uthread on this TCB not to see.
        errno = EIO;
        tls_five = 99;
        memset(tls_zeroed, 0xab, sizeof tls_zeroed);
        tl_counted.value = 42;
        static int marker;
        pthread_setspecific(o->key, &marker);
      },
      &obs);
  pthread_key_delete(obs.key);
  EXPECT_EQ(obs.runs, kRuns);
  EXPECT_LT(obs.thread_pointers.size(), size_t{kRuns})
      << "no TCB was reused: this test checks nothing (is the TCB cache off?)";
  EXPECT_EQ(obs.bad_errno, 0) << "errno not reset";
  EXPECT_EQ(obs.bad_five, 0) << ".tdata not copied from its image";
  EXPECT_EQ(obs.bad_zeroed, 0) << ".tbss not zeroed";
  EXPECT_EQ(obs.bad_counted, 0) << "thread_local not constructed anew";
  EXPECT_EQ(obs.bad_key, 0) << "a glibc pthread key kept the previous uthread's value";
  EXPECT_EQ(obs.bad_canary, 0) << "stack-protector canary differs from the process's";
  EXPECT_EQ(obs.bad_pointer_guard, 0) << "pointer guard differs from the process's";
  EXPECT_EQ(obs.bad_self, 0) << "pthread_self() is not the TCB";
  EXPECT_EQ(obs.bad_protected, 0);
  EXPECT_EQ(g_constructed.load() - constructed_before, kRuns);
  EXPECT_EQ(g_destroyed.load() - destroyed_before, kRuns);
}

// A dlopen'ed module's TLS is reached through the DTV; its blocks are
// allocated by __tls_get_addr in each thread that touches them.
struct Module {
  void *handle = nullptr;
  int *(*value)() = nullptr;
  int *(*zeroed)() = nullptr;
  int initial = 0;
  int runs = 0;
  int bad = 0;
};

void open_module(Module *m, const char *path, int initial) {
  m->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(m->handle, nullptr) << dlerror();
  m->value = reinterpret_cast<int *(*)()>(dlsym(m->handle, "tls_module_value"));
  m->zeroed = reinterpret_cast<int *(*)()>(dlsym(m->handle, "tls_module_zeroed"));
  ASSERT_NE(m->value, nullptr);
  ASSERT_NE(m->zeroed, nullptr);
  m->initial = initial;
  m->runs = 0;
  m->bad = 0;
}

void touch_module(void *p) {
  auto *m = static_cast<Module *>(p);
  ++m->runs;
  int *zeroed = m->zeroed();
  bool fresh = *m->value() == m->initial;
  for (int i = 0; i < 64; ++i) fresh = fresh && zeroed[i] == 0;
  if (!fresh) ++m->bad;
  *m->value() = 1000 + m->runs;
  for (int i = 0; i < 64; ++i) zeroed[i] = -1;
}

TEST(TlsRecycle, DlopenedModuleTlsIsFreshInRecycledUthreads) {
  Module m;
  open_module(&m, TLS_MODULE_7, 7);
  *m.value() = -5;  // thread0's own copy: no uthread may see it
  run_one_after_another(16, touch_module, &m);
  EXPECT_EQ(m.runs, 16);
  EXPECT_EQ(m.bad, 0) << "a uthread saw another's copy of the module's TLS";
  EXPECT_EQ(*m.value(), -5);
  dlclose(m.handle);

  // Another module, opened after the first was closed, may get its module
  // id (and so its DTV slot): a recycled TCB must not hand it the old block.
  Module other;
  open_module(&other, TLS_MODULE_11, 11);
  run_one_after_another(16, touch_module, &other);
  EXPECT_EQ(other.runs, 16);
  EXPECT_EQ(other.bad, 0) << "stale dynamic TLS after dlclose/dlopen";

  // And the first one again, while the second is still open (a new
  // generation, a DTV that may have to grow).
  open_module(&m, TLS_MODULE_7, 7);
  run_one_after_another(16, touch_module, &m);
  EXPECT_EQ(m.bad, 0);
  dlclose(m.handle);
  dlclose(other.handle);
}

size_t heap_bytes_in_use() {
#if defined(__SANITIZE_ADDRESS__)
  return __sanitizer_get_current_allocated_bytes();
#else
  return mallinfo2().uordblks;
#endif
}

// Recycling a TCB frees the dynamic TLS blocks its last uthread allocated
// (as glibc's _dl_deallocate_tls would): 5,000 uthreads that each touch a
// module's TLS leave the heap as it was.
TEST(TlsRecycle, DynamicTlsBlocksAreFreedOnRecycle) {
  Module m;
  open_module(&m, TLS_MODULE_7, 7);
  run_one_after_another(100, touch_module, &m);  // warm up: caches, pools
  size_t before = heap_bytes_in_use();
  constexpr int kRuns = 5000;
  run_one_after_another(kRuns, touch_module, &m);
  size_t after = heap_bytes_in_use();
  EXPECT_EQ(m.bad, 0);
  // A leaked block is the module's 260 bytes of TLS plus malloc's header:
  // 5,000 of them would be well over a megabyte.
  EXPECT_LT(after > before ? after - before : 0, size_t{64 << 10})
      << "heap grew from " << before << " to " << after << " bytes";
  dlclose(m.handle);
}

}  // namespace

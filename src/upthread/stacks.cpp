// Thread stacks, carved from pooled regions of many stacks each, so that a
// million threads do not need a million mappings (vm.max_map_count is
// 65530 by default: with one mapping for a stack and one for its guard,
// NPTL stops near 32,000 threads). A stack's guard pages lie inside its
// region, made inaccessible with MADV_GUARD_INSTALL (Linux 6.13), which
// marks page-table entries instead of splitting the mapping. Where the
// kernel lacks it, a stack with a guard is a mapping of its own (guard
// below), and a few of the default size are cached for reuse, since
// create/join in a loop would otherwise pay mmap+mprotect+munmap each
// time; stacks without a guard still come from the pools.
//
// Pooled stacks are never unmapped: a freed one goes back on its class's
// list, with its pages, for the next thread of that size (glibc keeps a
// cache of thread stacks for the same reason). Memory is committed as a
// thread touches its stack, not at creation (MAP_NORESERVE).
#include <parlib/spinlock.h>
#include <parlib/uthread.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>

#include "upthread/upthread_internal.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102  // <linux/mman.h> of Linux 6.13
#endif

namespace parlib::detail::upthread_impl {
namespace {

constexpr int kCachedStacks = 64;
constexpr size_t kPoolRegionBytes = 64u << 20;

struct FreeStack {
  FreeStack *next;
};

// The pooled stacks of one size and guard; a small list of classes
// suffices (a program uses one or two stack sizes).
struct SizeClass {
  size_t size;
  size_t guard;
  FreeStack *free;
  SizeClass *next;
};

// Whether guard regions work here: unknown until the first guarded pool
// region asks the kernel; then settled for good.
enum class GuardRegions { kUnknown, kYes, kNo };

spin_pdr_lock_t g_lock = SPINPDR_INITIALIZER;
void *g_cached[kCachedStacks];
int g_num_cached = 0;
SizeClass *g_classes = nullptr;
// Written under g_lock; read without it by use_pools (relaxed: a stale
// kUnknown only means asking again under the lock).
std::atomic<GuardRegions> g_guard_regions{GuardRegions::kUnknown};

size_t page_round(size_t n) { return (n + 4095) & ~size_t{4095}; }

// Makes the guard of every slot of a new region inaccessible. False if
// the kernel has no guard regions (the first one fails with EINVAL); the
// caller then unmaps the region.
bool install_guards(char *region, size_t count, size_t slot, size_t guard) {
  for (size_t i = 0; i < count; ++i) {
    if (madvise(region + i * slot, guard, MADV_GUARD_INSTALL) != 0) {
      if (i == 0 && errno == EINVAL)
        g_guard_regions.store(GuardRegions::kNo, std::memory_order_relaxed);
      return false;
    }
  }
  g_guard_regions.store(GuardRegions::kYes, std::memory_order_relaxed);
  return true;
}

// Adds a region of stacks to c's free list. Called with g_lock held.
bool grow(SizeClass *c) {
  const size_t slot = c->size + c->guard;
  const size_t count = kPoolRegionBytes / slot < 1 ? 1 : kPoolRegionBytes / slot;
  void *mem = mmap(nullptr, count * slot, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (mem == MAP_FAILED) return false;
  auto *region = static_cast<char *>(mem);
  if (c->guard != 0 && !install_guards(region, count, slot, c->guard)) {
    munmap(mem, count * slot);
    return false;
  }
  for (size_t i = count; i-- > 0;) {
    auto *s = reinterpret_cast<FreeStack *>(region + i * slot + c->guard);
    s->next = c->free;
    c->free = s;
  }
  return true;
}

SizeClass *find_class(size_t size, size_t guard) {
  SizeClass *c = g_classes;
  while (c != nullptr && (c->size != size || c->guard != guard)) c = c->next;
  return c;
}

// A stack's lowest word holds the free-list link while it is free, so the
// stack must not be in use; callers guarantee that. nullptr when memory or
// mappings ran out, or when the kernel turned out to have no guard regions
// (use_pools then says so, and the caller maps the stack itself).
void *pooled_get(size_t size, size_t guard) {
  spin_pdr_lock(&g_lock);
  SizeClass *c = find_class(size, guard);
  if (c == nullptr) {
    c = static_cast<SizeClass *>(calloc(1, sizeof(SizeClass)));
    if (c == nullptr) {
      spin_pdr_unlock(&g_lock);
      return nullptr;
    }
    c->size = size;
    c->guard = guard;
    c->next = g_classes;
    g_classes = c;
  }
  if (c->free == nullptr && !grow(c)) {
    spin_pdr_unlock(&g_lock);
    return nullptr;
  }
  FreeStack *s = c->free;
  c->free = s->next;
  spin_pdr_unlock(&g_lock);
  return s;
}

void pooled_put(void *stack, size_t size, size_t guard) {
  spin_pdr_lock(&g_lock);
  SizeClass *c = find_class(size, guard);  // exists: the stack came from it
  auto *s = static_cast<FreeStack *>(stack);
  s->next = c->free;
  c->free = s;
  spin_pdr_unlock(&g_lock);
}

bool use_pools(size_t guard) {
  return guard == 0 || g_guard_regions.load(std::memory_order_relaxed) != GuardRegions::kNo;
}

}  // namespace

void *stack_get(size_t size, size_t guard) {
  size = page_round(size);
  guard = page_round(guard);
  if (use_pools(guard)) {
    if (void *s = pooled_get(size, guard)) return s;
    if (use_pools(guard)) return nullptr;  // out of memory or mappings
  }
  if (size == UPTHREAD_STACK_DEFAULT && guard == 4096) {
    spin_pdr_lock(&g_lock);
    void *s = g_num_cached > 0 ? g_cached[--g_num_cached] : nullptr;
    spin_pdr_unlock(&g_lock);
    if (s != nullptr) return s;
  }
  return uthread_stack_alloc(size, guard);
}

void stack_put(void *stack, size_t size, size_t guard) {
  size = page_round(size);
  guard = page_round(guard);
  // A stack keeps the kind it was made as: once the kernel said no, no
  // guarded stack is pooled.
  if (use_pools(guard)) {
    pooled_put(stack, size, guard);
    return;
  }
  if (size == UPTHREAD_STACK_DEFAULT && guard == 4096) {
    spin_pdr_lock(&g_lock);
    bool cached = g_num_cached < kCachedStacks;
    if (cached) g_cached[g_num_cached++] = stack;
    spin_pdr_unlock(&g_lock);
    if (cached) return;
  }
  uthread_stack_free(stack, size, guard);
}

}  // namespace parlib::detail::upthread_impl

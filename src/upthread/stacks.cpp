// Thread stacks. A stack with a guard is its own mapping (guard below); a
// few of the default size are cached for reuse, since create/join in a loop
// would otherwise pay mmap+mprotect+munmap each time. Guard size 0 draws
// stacks from pooled regions of many stacks each, so that 100,000 threads
// do not need 100,000 mappings (vm.max_map_count is 65530 by default).
#include <parlib/spinlock.h>
#include <parlib/uthread.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>

#include "upthread/upthread_internal.h"

namespace parlib::detail::upthread_impl {
namespace {

constexpr int kCachedStacks = 64;
constexpr size_t kPoolRegionBytes = 64u << 20;

struct FreeStack {
  FreeStack *next;
};

// The pooled stacks of one size; a small list of sizes suffices (a program
// uses one or two stack sizes).
struct SizeClass {
  size_t size;
  FreeStack *free;
  SizeClass *next;
};

spin_pdr_lock_t g_lock = SPINPDR_INITIALIZER;
void *g_cached[kCachedStacks];
int g_num_cached = 0;
SizeClass *g_classes = nullptr;

size_t page_round(size_t n) { return (n + 4095) & ~size_t{4095}; }

// A stack's lowest word holds the free-list link while it is free, so the
// stack must not be in use; callers guarantee that.
void *pooled_get(size_t size) {
  spin_pdr_lock(&g_lock);
  SizeClass *c = g_classes;
  while (c != nullptr && c->size != size) c = c->next;
  if (c == nullptr) {
    c = static_cast<SizeClass *>(calloc(1, sizeof(SizeClass)));
    if (c == nullptr) {
      spin_pdr_unlock(&g_lock);
      return nullptr;
    }
    c->size = size;
    c->next = g_classes;
    g_classes = c;
  }
  if (c->free == nullptr) {
    size_t count = kPoolRegionBytes / size < 1 ? 1 : kPoolRegionBytes / size;
    void *region = mmap(nullptr, count * size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (region == MAP_FAILED) {
      spin_pdr_unlock(&g_lock);
      return nullptr;
    }
    for (size_t i = count; i-- > 0;) {
      auto *s = reinterpret_cast<FreeStack *>(static_cast<char *>(region) + i * size);
      s->next = c->free;
      c->free = s;
    }
  }
  FreeStack *s = c->free;
  c->free = s->next;
  spin_pdr_unlock(&g_lock);
  return s;
}

void pooled_put(void *stack, size_t size) {
  spin_pdr_lock(&g_lock);
  SizeClass *c = g_classes;
  while (c != nullptr && c->size != size) c = c->next;
  auto *s = static_cast<FreeStack *>(stack);
  s->next = c->free;  // c exists: the stack came from it
  c->free = s;
  spin_pdr_unlock(&g_lock);
}

}  // namespace

void *stack_get(size_t size, size_t guard) {
  size = page_round(size);
  if (guard == 0) return pooled_get(size);
  if (size == UPTHREAD_STACK_DEFAULT && page_round(guard) == 4096) {
    spin_pdr_lock(&g_lock);
    void *s = g_num_cached > 0 ? g_cached[--g_num_cached] : nullptr;
    spin_pdr_unlock(&g_lock);
    if (s != nullptr) return s;
  }
  return uthread_stack_alloc(size, guard);
}

void stack_put(void *stack, size_t size, size_t guard) {
  size = page_round(size);
  if (guard == 0) {
    pooled_put(stack, size);
    return;
  }
  if (size == UPTHREAD_STACK_DEFAULT && page_round(guard) == 4096) {
    spin_pdr_lock(&g_lock);
    bool cached = g_num_cached < kCachedStacks;
    if (cached) g_cached[g_num_cached++] = stack;
    spin_pdr_unlock(&g_lock);
    if (cached) return;
  }
  uthread_stack_free(stack, size, guard);
}

}  // namespace parlib::detail::upthread_impl

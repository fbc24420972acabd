// The slab allocator (parlib/slab.h).
//
// Layout of a slab: slab_bytes bytes (a power of two) mapped at an address
// aligned to slab_bytes, so the slab of an object is found by masking its
// address. The Slab header sits at the start, the objects follow at the
// cache's stride. Each object slot ends with a link word outside the
// object proper, so the free list never overwrites constructed state:
//   link == kAllocated       the object is allocated
//   link == next free object (or nullptr at the end of the slab's list)
// kAllocated is not a possible object address (objects are 8-aligned), so
// a double free is caught in O(1).
//
// Every slab is on exactly one of the cache's three lists: partial (some
// objects free), full (none free), empty (all free). Allocation prefers
// partial slabs, so empty ones can be given back. The cache keeps at most
// one empty slab in reserve; a second one becomes free is unmapped.
//
// Locking: one spin_pdr lock per cache protects the lists, the slabs' free
// lists and the counters. mmap/munmap and constructors/destructors run
// outside it.

#include <parlib/slab.h>
#include <parlib/spinlock.h>

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <new>

#include "sync/sync_internal.h"

namespace parlib::detail {
namespace {

constexpr uint64_t kSlabMagic = 0x70617262736c6162ull;  // "parbslab"
constexpr size_t kMinSlabBytes = size_t{16} << 10;
constexpr size_t kMaxSlabBytes = size_t{1} << 30;
constexpr size_t kMinObjsPerSlab = 8;
constexpr size_t kMaxAlign = 4096;
void* const kAllocated = reinterpret_cast<void*>(uintptr_t{1});

constexpr size_t round_up(size_t x, size_t align) { return (x + align - 1) & ~(align - 1); }

struct SlabCache;

struct Slab {
  uint64_t magic;
  SlabCache* cache;
  Slab* prev;
  Slab* next;
  char* free_head;  // first free object, or nullptr
  size_t nr_free;
};

// An intrusive doubly linked list of slabs with its length.
struct SlabList {
  Slab* head = nullptr;
  size_t count = 0;

  void push(Slab* s) {
    s->prev = nullptr;
    s->next = head;
    if (head) head->prev = s;
    head = s;
    ++count;
  }
  void remove(Slab* s) {
    if (s->prev)
      s->prev->next = s->next;
    else
      head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = nullptr;
    --count;
  }
};

struct SlabCache {
  spin_pdr_lock_t lock = SPINPDR_INITIALIZER;
  char name[SLAB_CACHE_NAME_LEN] = {};
  size_t obj_size = 0;
  size_t align = 0;
  size_t link_off = 0;  // offset of the link word inside a slot
  size_t stride = 0;
  size_t header_bytes = 0;  // objects start here inside a slab
  size_t slab_bytes = 0;
  size_t objs_per_slab = 0;
  void (*ctor)(void*, size_t) = nullptr;
  void (*dtor)(void*, size_t) = nullptr;
  // Guarded by lock:
  SlabList partial, full, empty;
  size_t in_use = 0;
  uint64_t allocs = 0, frees = 0, grows = 0, shrinks = 0, ctor_calls = 0, dtor_calls = 0;

  void*& link(char* obj) const { return *reinterpret_cast<void**>(obj + link_off); }
  char* first_obj(Slab* s) const { return reinterpret_cast<char*>(s) + header_bytes; }
  Slab* slab_of(void* obj) const {
    return reinterpret_cast<Slab*>(reinterpret_cast<uintptr_t>(obj) & ~(uintptr_t{slab_bytes} - 1));
  }
  size_t nr_slabs() const { return partial.count + full.count + empty.count; }
};

// Maps a slab_bytes region aligned to slab_bytes: map twice the size, then
// trim the misaligned head and the tail.
void* map_aligned(size_t bytes) {
  void* raw = mmap(nullptr, 2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = round_up(start, bytes);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t tail = aligned + bytes;
  const uintptr_t end = start + 2 * bytes;
  if (end > tail) munmap(reinterpret_cast<void*>(tail), end - tail);
  return reinterpret_cast<void*>(aligned);
}

// Makes a new slab: every object free and constructed. Runs without the
// cache lock.
Slab* slab_create(SlabCache* c) {
  void* mem = map_aligned(c->slab_bytes);
  if (mem == nullptr) return nullptr;
  auto* s = static_cast<Slab*>(mem);
  s->magic = kSlabMagic;
  s->cache = c;
  s->prev = s->next = nullptr;
  s->nr_free = c->objs_per_slab;
  char* obj = c->first_obj(s);
  s->free_head = obj;
  for (size_t i = 0; i < c->objs_per_slab; ++i, obj += c->stride) {
    if (c->ctor) c->ctor(obj, c->obj_size);
    c->link(obj) = i + 1 < c->objs_per_slab ? obj + c->stride : nullptr;
  }
  return s;
}

// Destroys every object of an unlinked slab and unmaps it. Runs without the
// cache lock.
void slab_release(SlabCache* c, Slab* s) {
  if (c->dtor) {
    char* obj = c->first_obj(s);
    for (size_t i = 0; i < c->objs_per_slab; ++i, obj += c->stride) c->dtor(obj, c->obj_size);
  }
  s->magic = 0;
  munmap(s, c->slab_bytes);
}

// Takes the first free object of s and moves s to the right list. Called
// with the cache lock held; s has a free object.
char* take_object(SlabCache* c, Slab* s, SlabList& from) {
  char* obj = s->free_head;
  s->free_head = static_cast<char*>(c->link(obj));
  c->link(obj) = kAllocated;
  --s->nr_free;
  if (s->nr_free == 0) {
    from.remove(s);
    c->full.push(s);
  } else if (&from != &c->partial) {
    from.remove(s);
    c->partial.push(s);
  }
  ++c->in_use;
  ++c->allocs;
  return obj;
}

}  // namespace
}  // namespace parlib::detail

using parlib::detail::Slab;
using parlib::detail::SlabCache;

// The public type is incomplete in the header; here it is our SlabCache.
struct slab_cache : SlabCache {};

extern "C" {

PARLIB_API slab_cache* slab_cache_create(const char* name, size_t obj_size, int align, int flags,
                                         void (*ctor)(void*, size_t), void (*dtor)(void*, size_t)) {
  using namespace parlib::detail;
  if (obj_size == 0 || flags != 0 || align < 0 || static_cast<size_t>(align) > kMaxAlign ||
      (align & (align - 1)) != 0 || obj_size > kMaxSlabBytes) {
    errno = EINVAL;
    return nullptr;
  }
  size_t al = align != 0 ? static_cast<size_t>(align) : (obj_size < 16 ? 8 : 16);
  if (al < alignof(void*)) al = alignof(void*);  // the link word needs it
  const size_t link_off = round_up(obj_size, alignof(void*));
  const size_t stride = round_up(link_off + sizeof(void*), al);
  const size_t header = round_up(sizeof(Slab), al);
  size_t slab_bytes = kMinSlabBytes;
  while (slab_bytes <= kMaxSlabBytes && (slab_bytes - header) / stride < kMinObjsPerSlab)
    slab_bytes <<= 1;
  if (slab_bytes > kMaxSlabBytes) {
    errno = EINVAL;
    return nullptr;
  }
  auto* c = new (std::nothrow) slab_cache();
  if (c == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  if (name != nullptr) std::strncpy(c->name, name, SLAB_CACHE_NAME_LEN - 1);
  c->obj_size = obj_size;
  c->align = al;
  c->link_off = link_off;
  c->stride = stride;
  c->header_bytes = header;
  c->slab_bytes = slab_bytes;
  c->objs_per_slab = (slab_bytes - header) / stride;
  c->ctor = ctor;
  c->dtor = dtor;
  return c;
}

PARLIB_API void* slab_cache_alloc(slab_cache* c, int flags) {
  using namespace parlib::detail;
  if (c == nullptr || flags != 0) {
    errno = EINVAL;
    return nullptr;
  }
  spin_pdr_lock(&c->lock);
  Slab* s = c->partial.head;
  SlabList* from = &c->partial;
  if (s == nullptr) {
    s = c->empty.head;
    from = &c->empty;
  }
  if (s == nullptr) {
    // Grow without the lock: mmap and the constructors may be slow.
    spin_pdr_unlock(&c->lock);
    s = slab_create(c);
    if (s == nullptr) {
      errno = ENOMEM;
      return nullptr;
    }
    spin_pdr_lock(&c->lock);
    ++c->grows;
    c->ctor_calls += c->ctor ? c->objs_per_slab : 0;
    c->empty.push(s);
    from = &c->empty;
  }
  char* obj = take_object(c, s, *from);
  spin_pdr_unlock(&c->lock);
  return obj;
}

PARLIB_API void slab_cache_free(slab_cache* c, void* obj) {
  using namespace parlib::detail;
  if (obj == nullptr) return;
  PARLIB_CHECK(c != nullptr, "slab_cache_free: NULL cache");
  // The slab cannot go away under us: obj is (supposedly) allocated from it.
  Slab* s = c->slab_of(obj);
  const auto off = static_cast<size_t>(static_cast<char*>(obj) - c->first_obj(s));
  PARLIB_CHECK(s->magic == kSlabMagic && s->cache == c,
               "slab_cache_free: object does not belong to this cache");
  PARLIB_CHECK(static_cast<char*>(obj) >= c->first_obj(s) && off % c->stride == 0 &&
                   off / c->stride < c->objs_per_slab,
               "slab_cache_free: pointer is not an object of this cache");
  char* o = static_cast<char*>(obj);
  Slab* release = nullptr;
  spin_pdr_lock(&c->lock);
  if (c->link(o) != kAllocated) {
    spin_pdr_unlock(&c->lock);
    raw_fatal("slab_cache_free: double free");
  }
  const bool was_full = s->nr_free == 0;
  c->link(o) = s->free_head;
  s->free_head = o;
  ++s->nr_free;
  --c->in_use;
  ++c->frees;
  if (s->nr_free == c->objs_per_slab) {
    (was_full ? c->full : c->partial).remove(s);
    if (c->empty.count == 0) {
      c->empty.push(s);  // keep one empty slab in reserve
    } else {
      release = s;
      ++c->shrinks;
      c->dtor_calls += c->dtor ? c->objs_per_slab : 0;
    }
  } else if (was_full) {
    c->full.remove(s);
    c->partial.push(s);
  }
  spin_pdr_unlock(&c->lock);
  if (release != nullptr) slab_release(c, release);
}

PARLIB_API void slab_cache_destroy(slab_cache* c) {
  using namespace parlib::detail;
  if (c == nullptr) return;
  PARLIB_CHECK(c->in_use == 0, "slab_cache_destroy: objects are still allocated");
  for (SlabList* list : {&c->partial, &c->full, &c->empty}) {
    while (Slab* s = list->head) {
      list->remove(s);
      slab_release(c, s);
    }
  }
  delete c;
}

PARLIB_API int slab_cache_get_stats(slab_cache* c, slab_cache_stats* st) {
  if (c == nullptr || st == nullptr) {
    errno = EINVAL;
    return -1;
  }
  slab_cache_stats out{};
  std::memcpy(out.name, c->name, sizeof(out.name));
  out.obj_size = c->obj_size;
  out.obj_stride = c->stride;
  out.obj_align = c->align;
  out.slab_bytes = c->slab_bytes;
  out.objs_per_slab = c->objs_per_slab;
  spin_pdr_lock(&c->lock);
  out.nr_slabs = c->nr_slabs();
  out.nr_objs_in_use = c->in_use;
  out.nr_allocs = c->allocs;
  out.nr_frees = c->frees;
  out.nr_grows = c->grows;
  out.nr_shrinks = c->shrinks;
  out.nr_ctor_calls = c->ctor_calls;
  out.nr_dtor_calls = c->dtor_calls;
  spin_pdr_unlock(&c->lock);
  out.nr_objs_total = out.nr_slabs * out.objs_per_slab;
  *st = out;
  return 0;
}

}  // extern "C"

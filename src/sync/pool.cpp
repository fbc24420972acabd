// The fixed-size pool (parlib/pool.h). queue_[i] is the bookkeeping entry
// of object i: &queue_[i] itself while object i is allocated, otherwise the
// address of the next free object's entry (NULL at the end of the free
// list). A self-pointer can never be a free-list link (the list has no
// cycles), so the two states cannot be confused.

#include <parlib/pool.h>

#include <cstdint>

extern "C" {

PARLIB_API void pool_init(pool_t* pool, void* buffer, void** object_queue, size_t num_objects,
                          size_t object_size) {
  if (pool == nullptr) return;
  *pool = pool_t{};
  if (buffer == nullptr || object_queue == nullptr || num_objects == 0 || object_size == 0 ||
      num_objects > SIZE_MAX / object_size)
    return;  // an empty pool: size_ = 0, head_ = size_ = "none free"
  pool->buffer_ = static_cast<char*>(buffer);
  pool->queue_ = object_queue;
  pool->size_ = num_objects;
  pool->object_size_ = object_size;
  pool->free_ = num_objects;
  pool->head_ = 0;
  // Free list in address order: object 0 is handed out first.
  for (size_t i = 0; i + 1 < num_objects; ++i) object_queue[i] = &object_queue[i + 1];
  object_queue[num_objects - 1] = nullptr;
}

PARLIB_API void* pool_alloc(pool_t* pool) {
  if (pool == nullptr || pool->head_ >= pool->size_) return nullptr;
  const size_t i = pool->head_;
  auto* next = static_cast<void**>(pool->queue_[i]);
  pool->head_ = next != nullptr ? static_cast<size_t>(next - pool->queue_) : pool->size_;
  pool->queue_[i] = &pool->queue_[i];  // allocated: self-pointer
  --pool->free_;
  return pool->buffer_ + i * pool->object_size_;
}

PARLIB_API int pool_free(pool_t* pool, void* obj) {
  if (pool == nullptr || obj == nullptr || pool->size_ == 0) return -1;
  // Compare as integers: obj may point anywhere, and relational operators
  // on unrelated pointers are not defined.
  const auto addr = reinterpret_cast<uintptr_t>(obj);
  const auto base = reinterpret_cast<uintptr_t>(pool->buffer_);
  if (addr < base) return -1;
  const uintptr_t off = addr - base;
  if (off % pool->object_size_ != 0) return -1;
  const size_t i = off / pool->object_size_;
  if (i >= pool->size_) return -1;
  if (pool->queue_[i] != &pool->queue_[i]) return -1;  // not allocated: double free
  pool->queue_[i] = pool->head_ < pool->size_ ? &pool->queue_[pool->head_] : nullptr;
  pool->head_ = i;
  ++pool->free_;
  return 0;
}

PARLIB_API size_t pool_size(pool_t* pool) { return pool != nullptr ? pool->size_ : 0; }

PARLIB_API size_t pool_available(pool_t* pool) { return pool != nullptr ? pool->free_ : 0; }

}  // extern "C"

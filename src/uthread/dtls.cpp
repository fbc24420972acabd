// Dynamic TLS. Each thread's values live in a table reached through one
// __thread pointer; since every uthread has its own static TLS, that gives
// every uthread its own table with no help from the scheduler. A value
// remembers the generation of its key so that deleting a key and reusing
// its slot never exposes an old value.
#include <parlib/dtls.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

struct dtls_key {
  std::atomic<uint32_t> generation;  // odd while the key is alive
  std::atomic<void (*)(void *)> dtor;
};

namespace parlib::detail {
namespace {

constexpr int kDestructorPasses = 4;

dtls_key g_keys[DTLS_KEYS_MAX];
std::mutex g_keys_lock;  // serialises create/delete; lookups are lock-free

struct Value {
  uint32_t generation;
  void *value;
};
struct ValueTable {
  size_t capacity;
  Value slots[];
};

__thread ValueTable *tls_values = nullptr;

size_t index_of(dtls_key_t key) { return static_cast<size_t>(key - g_keys); }

bool is_alive(uint32_t generation) { return (generation & 1u) != 0; }

ValueTable *table_with_room_for(size_t index) {
  ValueTable *t = tls_values;
  if (t != nullptr && index < t->capacity) return t;
  size_t capacity = t != nullptr ? t->capacity : 16;
  while (capacity <= index) capacity *= 2;
  auto *grown = static_cast<ValueTable *>(calloc(1, sizeof(ValueTable) + capacity * sizeof(Value)));
  if (grown == nullptr) return nullptr;
  grown->capacity = capacity;
  if (t != nullptr) {
    memcpy(grown->slots, t->slots, t->capacity * sizeof(Value));
    free(t);
  }
  tls_values = grown;
  return grown;
}

}  // namespace
}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

dtls_key_t dtls_key_create(void (*dtor)(void *)) {
  std::lock_guard<std::mutex> guard(g_keys_lock);
  for (auto &key : g_keys) {
    uint32_t gen = key.generation.load(std::memory_order_relaxed);
    if (is_alive(gen)) continue;
    key.dtor.store(dtor, std::memory_order_relaxed);
    // release: a thread that sees the new generation also sees the dtor.
    key.generation.store(gen + 1, std::memory_order_release);
    return &key;
  }
  errno = EAGAIN;
  return nullptr;
}

void dtls_key_delete(dtls_key_t key) {
  if (key == nullptr) return;
  std::lock_guard<std::mutex> guard(g_keys_lock);
  uint32_t gen = key->generation.load(std::memory_order_relaxed);
  if (is_alive(gen)) key->generation.store(gen + 1, std::memory_order_release);
}

void set_dtls(dtls_key_t key, void *value) {
  if (key == nullptr) return;
  uint32_t gen = key->generation.load(std::memory_order_acquire);
  if (!is_alive(gen)) return;
  ValueTable *t = table_with_room_for(index_of(key));
  if (t == nullptr) {
    errno = ENOMEM;
    return;
  }
  t->slots[index_of(key)] = Value{gen, value};
}

void *get_dtls(dtls_key_t key) {
  ValueTable *t = tls_values;
  if (key == nullptr || t == nullptr || index_of(key) >= t->capacity) return nullptr;
  const Value &v = t->slots[index_of(key)];
  return v.generation == key->generation.load(std::memory_order_acquire) ? v.value : nullptr;
}

void destroy_dtls(void) {
  ValueTable *t = tls_values;
  if (t == nullptr) return;
  for (int pass = 0; pass < kDestructorPasses; ++pass) {
    bool ran_any = false;
    for (size_t i = 0; i < t->capacity; ++i) {
      Value &v = t->slots[i];
      if (v.value == nullptr) continue;
      void *value = v.value;
      v.value = nullptr;
      dtls_key &key = g_keys[i];
      if (v.generation != key.generation.load(std::memory_order_acquire)) continue;
      void (*dtor)(void *) = key.dtor.load(std::memory_order_relaxed);
      if (dtor == nullptr) continue;
      dtor(value);
      ran_any = true;
      t = tls_values;  // a destructor may have grown the table
    }
    if (!ran_any) break;
  }
  tls_values = nullptr;
  free(t);
}

}  // extern "C"

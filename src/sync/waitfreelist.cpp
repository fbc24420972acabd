// The wait-free list (parlib/waitfreelist.h).
//
// Slots are pushed at the head with a CAS and never unlinked before
// wfl_cleanup, so a traversal can follow next_ without any protection: a
// slot it has reached stays valid and its next_ never changes. Items move
// in and out of slots with a CAS (insert: NULL -> item) or an exchange
// (remove: item -> NULL), so each item is handed to exactly one remover.

#include <parlib/waitfreelist.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>

#include "sync/sync_internal.h"

namespace parlib::detail {
namespace {

std::atomic_ref<wfl_slot*> head_of(wfl* list) { return std::atomic_ref<wfl_slot*>(list->head_); }
std::atomic_ref<void*> data_of(wfl_slot* slot) { return std::atomic_ref<void*>(slot->data_); }

wfl_slot* first_slot(wfl* list) {
  // acquire: pairs with the release CAS that published the newest slot,
  // so its next_ and data_ initialisation (and, transitively, every older
  // slot's) is visible to the traversal.
  return head_of(list).load(std::memory_order_acquire);
}

bool try_fill(wfl_slot* slot, void* data) {
  void* expected = nullptr;
  // relaxed pre-check: skip full slots without a locked instruction.
  if (data_of(slot).load(std::memory_order_relaxed) != nullptr) return false;
  // release on success: whoever removes the item sees what the inserter
  // wrote into it before inserting. relaxed on failure: we move on.
  return data_of(slot).compare_exchange_strong(expected, data, std::memory_order_release,
                                               std::memory_order_relaxed);
}

void* try_take(wfl_slot* slot) {
  // relaxed pre-check: skip empty slots without a locked instruction.
  if (data_of(slot).load(std::memory_order_relaxed) == nullptr) return nullptr;
  // acquire: pairs with the inserter's release, we see the item's
  // contents. The exchange hands the item to exactly one caller.
  return data_of(slot).exchange(nullptr, std::memory_order_acquire);
}

}  // namespace
}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

PARLIB_API void wfl_init(wfl* list) {
  list->first_.next_ = nullptr;
  list->first_.data_ = nullptr;
  // release: a list shared right after init is seen initialised by anyone
  // who loads head_ with acquire.
  head_of(list).store(&list->first_, std::memory_order_release);
}

PARLIB_API void wfl_cleanup(wfl* list) {
  PARLIB_CHECK(list != nullptr, "wfl_cleanup: NULL list");
  // No concurrent users by contract: relaxed loads are enough.
  wfl_slot* slot = head_of(list).load(std::memory_order_relaxed);
  while (slot != nullptr && slot != &list->first_) {
    wfl_slot* next = slot->next_;
    std::free(slot);
    slot = next;
  }
  head_of(list).store(&list->first_, std::memory_order_relaxed);
  list->first_.next_ = nullptr;
}

PARLIB_API wfl_slot* wfl_insert(wfl* list, void* data) {
  if (list == nullptr || data == nullptr) return nullptr;
  wfl_slot* head = first_slot(list);
  for (wfl_slot* s = head; s != nullptr; s = s->next_) {
    if (try_fill(s, data)) return s;
  }
  // No empty slot: push a new one that already holds the item.
  auto* slot = static_cast<wfl_slot*>(std::malloc(sizeof(wfl_slot)));
  if (slot == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  slot->data_ = data;
  slot->next_ = head;
  // release on success: publishes the slot's next_ and data_ (and the
  // item's contents) to traversals that load head_ with acquire. relaxed
  // on failure: we only re-link to the new head and retry.
  while (!head_of(list).compare_exchange_weak(slot->next_, slot, std::memory_order_release,
                                              std::memory_order_relaxed)) {
  }
  return slot;
}

PARLIB_API bool wfl_insert_into(wfl* list, wfl_slot* slot, void* data) {
  if (list == nullptr || slot == nullptr || data == nullptr) return false;
  return try_fill(slot, data);
}

PARLIB_API void* wfl_remove(wfl* list) {
  if (list == nullptr) return nullptr;
  for (wfl_slot* s = first_slot(list); s != nullptr; s = s->next_) {
    if (void* item = try_take(s)) return item;
  }
  return nullptr;
}

PARLIB_API void* wfl_remove_from(wfl* list, wfl_slot* slot) {
  if (list == nullptr || slot == nullptr) return nullptr;
  return try_take(slot);
}

PARLIB_API size_t wfl_remove_all(wfl* list, void* data) {
  if (list == nullptr || data == nullptr) return 0;
  size_t n = 0;
  for (wfl_slot* s = first_slot(list); s != nullptr; s = s->next_) {
    void* expected = data;
    // acquire on success: as try_take. relaxed on failure: not ours.
    if (data_of(s).compare_exchange_strong(expected, nullptr, std::memory_order_acquire,
                                           std::memory_order_relaxed))
      ++n;
  }
  return n;
}

PARLIB_API size_t wfl_capacity(wfl* list) {
  if (list == nullptr) return 0;
  size_t n = 0;
  for (wfl_slot* s = first_slot(list); s != nullptr; s = s->next_) ++n;
  return n;
}

PARLIB_API size_t wfl_size(wfl* list) {
  if (list == nullptr) return 0;
  size_t n = 0;
  for (wfl_slot* s = first_slot(list); s != nullptr; s = s->next_) {
    // relaxed: a snapshot count, nothing is read through the item.
    if (data_of(s).load(std::memory_order_relaxed) != nullptr) ++n;
  }
  return n;
}

}  // extern "C"

// The per-vcore event queue: an intrusive multi-producer single-consumer
// queue (after Vyukov's design) over nodes from a lock-free pool that grows
// with mmap, so that sending never takes a user-space lock that vcore
// context could need, never frees memory, and never blocks on the receiver.
#ifndef PARLIB_EVENT_EVENT_QUEUE_H
#define PARLIB_EVENT_EVENT_QUEUE_H

#include <parlib/event.h>

#include <atomic>
#include <cstdint>

#include "common/cache_line.h"

namespace parlib::detail {

struct EventNode {
  std::atomic<EventNode *> next{nullptr};  // queue link
  uint32_t index = 0;                      // this node's pool index (1-based)
  // Pool link, as an index. Atomic (relaxed) because a pop may read it
  // while another thread that took the same node writes it (see
  // event_node_alloc).
  std::atomic<uint32_t> free_next{0};
  struct event_msg msg {};
};

// Returns a node, or nullptr when no memory can be had.
EventNode *event_node_alloc();
void event_node_free(EventNode *node);

class EventQueue {
 public:
  EventQueue() : tail_(&stub_), head_(&stub_) {}
  EventQueue(const EventQueue &) = delete;
  EventQueue &operator=(const EventQueue &) = delete;

  // Any thread.
  void push(EventNode *node) {
    node->next.store(nullptr, std::memory_order_relaxed);
    // acq_rel exchange orders producers among themselves; the release store
    // of the link publishes node's message to the consumer's acquire load.
    EventNode *prev = tail_.exchange(node, std::memory_order_acq_rel);
    prev->next.store(node, std::memory_order_release);
  }

  // The consumer only. Returns nullptr when empty, or when a producer is
  // between its two steps in push() (it will notify after finishing).
  EventNode *pop();

  // The consumer only (the vcore's own task): is anything queued?
  bool has_messages() const {
    return head_ != &stub_ || stub_.next.load(std::memory_order_seq_cst) != nullptr ||
           tail_.load(std::memory_order_seq_cst) != &stub_;
  }

 private:
  alignas(kCacheLineSize) std::atomic<EventNode *> tail_;
  alignas(kCacheLineSize) EventNode *head_;
  EventNode stub_;
};

}  // namespace parlib::detail

#endif  // PARLIB_EVENT_EVENT_QUEUE_H

#include "event/event_queue.h"

#include <sys/mman.h>

#include <cstddef>
#include <new>

#include "common/spinlock.h"

namespace parlib::detail {
namespace {

constexpr uint32_t kChunkShift = 12;
constexpr uint32_t kChunkNodes = 1u << kChunkShift;
constexpr uint32_t kMaxChunks = 4096;  // 16M messages in flight at most

EventNode *g_chunks[kMaxChunks];
std::atomic<uint32_t> g_num_chunks{0};
SpinLock<> g_grow_lock;

// The free list: a Treiber stack of node indices. The top word packs a
// generation tag with the index so that a pop racing with pop+push of the
// same node (ABA) fails its CAS. Nodes are never unmapped, so reading
// free_next of a node another thread just took is harmless, as long as the
// read is atomic: it races with that thread's own push of the node.
std::atomic<uint64_t> g_free_top{0};

EventNode *node_at(uint32_t index) {
  uint32_t i = index - 1;
  return &g_chunks[i >> kChunkShift][i & (kChunkNodes - 1)];
}

uint64_t pack(uint64_t tag, uint32_t index) { return tag << 32 | index; }

void push_chain(uint32_t first, EventNode *last) {
  uint64_t top = g_free_top.load(std::memory_order_relaxed);
  do {
    last->free_next.store(static_cast<uint32_t>(top), std::memory_order_relaxed);
    // release: the chain's links are visible to whoever pops them.
  } while (!g_free_top.compare_exchange_weak(top, pack((top >> 32) + 1, first),
                                             std::memory_order_release, std::memory_order_relaxed));
}

// Maps one more chunk of nodes. mmap is a plain system call: no user-space
// lock that an interrupted uthread could hold is involved.
bool grow() {
  g_grow_lock.lock();
  bool ok = true;
  if (static_cast<uint32_t>(g_free_top.load(std::memory_order_acquire)) == 0) {
    uint32_t chunk = g_num_chunks.load(std::memory_order_relaxed);
    void *mem = chunk < kMaxChunks
                    ? mmap(nullptr, sizeof(EventNode) * kChunkNodes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                    : MAP_FAILED;
    if (mem == MAP_FAILED) {
      ok = false;
    } else {
      auto *nodes = static_cast<EventNode *>(mem);
      for (uint32_t i = 0; i < kChunkNodes; ++i) {
        new (&nodes[i]) EventNode;
        nodes[i].index = chunk * kChunkNodes + i + 1;
        nodes[i].free_next.store(i + 1 < kChunkNodes ? nodes[i].index + 1 : 0,
                                 std::memory_order_relaxed);
      }
      g_chunks[chunk] = nodes;
      g_num_chunks.store(chunk + 1, std::memory_order_release);
      push_chain(nodes[0].index, &nodes[kChunkNodes - 1]);
    }
  }
  g_grow_lock.unlock();
  return ok;
}

}  // namespace

EventNode *event_node_alloc() {
  for (;;) {
    uint64_t top = g_free_top.load(std::memory_order_acquire);
    uint32_t index = static_cast<uint32_t>(top);
    if (index == 0) {
      if (!grow()) return nullptr;
      continue;
    }
    EventNode *node = node_at(index);
    // acquire on g_free_top (above) makes the pusher's store visible; a
    // stale value means the node was taken meanwhile, and the CAS fails.
    uint64_t next = pack((top >> 32) + 1, node->free_next.load(std::memory_order_relaxed));
    if (g_free_top.compare_exchange_weak(top, next, std::memory_order_acquire,
                                         std::memory_order_relaxed))
      return node;
  }
}

void event_node_free(EventNode *node) { push_chain(node->index, node); }

EventNode *EventQueue::pop() {
  EventNode *head = head_;
  EventNode *next = head->next.load(std::memory_order_acquire);
  if (head == &stub_) {
    if (next == nullptr) return nullptr;
    head_ = next;
    head = next;
    next = next->next.load(std::memory_order_acquire);
  }
  if (next != nullptr) {
    head_ = next;
    return head;
  }
  if (head != tail_.load(std::memory_order_acquire)) return nullptr;  // a push is half done
  // head is the last node: put the stub behind it so that head can go.
  push(&stub_);
  next = head->next.load(std::memory_order_acquire);
  if (next != nullptr) {
    head_ = next;
    return head;
  }
  return nullptr;
}

}  // namespace parlib::detail

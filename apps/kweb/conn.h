// One client connection: its socket, its read buffer (which keeps
// pipelined requests that arrived early), and where it is in the
// burst-length rotation of the connection queues.
#ifndef KWEB_CONN_H
#define KWEB_CONN_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace kweb {

// The read buffer holds one whole request head, and then some.
inline constexpr size_t kConnBufSize = 16384 + 1024;

struct Conn {
  explicit Conn(int fd_, int64_t now_ms) : fd(fd_), last_active_ms(now_ms) {}

  std::string_view pending() const { return std::string_view(buf.get() + start, end - start); }

  int fd;
  std::unique_ptr<char[]> buf{new char[kConnBufSize]};
  size_t start = 0;  // unread bytes are buf[start, end)
  size_t end = 0;
  int64_t last_active_ms;       // accepted, or last response sent: the idle clock
  int64_t head_started_ms = 0;  // first byte of the request being read; 0: none yet
  int burst = 0;                // requests served since it last went to a queue's tail
  Conn *next = nullptr;         // link in a connection queue
};

// A FIFO of connections that can also take one back at its head (the
// burst-length rule of dissertation 2.6.2). Not synchronised: the nptl and
// upthread back ends guard it with their mutex, the custom scheduler's
// per-vcore queues are only touched by their own vcore.
class ConnQueue {
 public:
  bool empty() const { return head_ == nullptr; }
  void push_back(Conn *c) {
    c->next = nullptr;
    if (tail_ != nullptr)
      tail_->next = c;
    else
      head_ = c;
    tail_ = c;
  }
  void push_front(Conn *c) {
    c->next = head_;
    head_ = c;
    if (tail_ == nullptr) tail_ = c;
  }
  Conn *pop_front() {
    Conn *c = head_;
    if (c != nullptr) {
      head_ = c->next;
      if (head_ == nullptr) tail_ = nullptr;
      c->next = nullptr;
    }
    return c;
  }

 private:
  Conn *head_ = nullptr;
  Conn *tail_ = nullptr;
};

// Puts c back after a request, at the head while its burst lasts, then at
// the tail (and starts a new burst).
inline void requeue_by_burst(ConnQueue &q, Conn *c, int burst_length) {
  if (++c->burst < burst_length) {
    q.push_front(c);
  } else {
    c->burst = 0;
    q.push_back(c);
  }
}

}  // namespace kweb

#endif  // KWEB_CONN_H

// What the three scheduler back ends share: the listening socket, the
// document root, the open connections, the accept loop of dissertation
// 2.6.2, shutdown, and the counters the /kweb/stats command prints.
#ifndef KWEB_SERVER_H
#define KWEB_SERVER_H

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "conn.h"
#include "doc_root.h"
#include "file_cache.h"
#include "options.h"

namespace kweb {

int64_t monotonic_ms();

// Counters of one worker thread, written only by it (no shared cache line
// on the request path), summed when someone asks.
struct alignas(128) WorkerStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> timeouts{0};
};

// A scheduler back end, as the url commands see it.
class Backend {
 public:
  virtual ~Backend() = default;
  // Sets the number of vcores serving requests; false with a reason where
  // the back end cannot (nptl).
  virtual bool set_vcores(int n, std::string *why) = 0;
  // One line per vcore or so, for /kweb/stats.
  virtual std::string describe() = 0;
};

class Server {
 public:
  explicit Server(const Options &opts) : opts_(opts), files_(root_, opts.file_cache_ms) {}
  ~Server();

  // Opens the root, raises the descriptor limit, binds and listens, and
  // installs the SIGINT/SIGTERM handlers. False with a message on failure.
  bool setup(std::string *error);
  // Prints "kweb listening on ADDR:PORT" (the port the kernel chose for 0).
  void announce() const;

  // The accept thread's loop: accepts until a stop is requested and hands
  // each connection to hand_off (refusing those beyond --max-conns with
  // 503). Blocks in poll, which in uthread context blocks only the uthread.
  void accept_loop(void (*hand_off)(Conn *, void *), void *arg);
  // After accept_loop: closes the listening socket and shuts the read side
  // of every open connection, so that each worker finishes the response it
  // is writing and then sees the end of its connection.
  void begin_shutdown();

  // Async-signal-safe: ends accept_loop.
  void request_stop();
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

  void close_conn(Conn *c);
  uint64_t open_conns() const { return open_.load(std::memory_order_acquire); }

  // The workers' counters, for the stats (once, before workers start).
  void set_worker_stats(const WorkerStats *stats, size_t n) {
    workers_ = stats;
    nworkers_ = n;
  }
  std::string stats_text();

  void set_backend(Backend *b) { backend_ = b; }
  Backend *backend() const { return backend_; }
  const Options &opts() const { return opts_; }
  const DocRoot &root() const { return root_; }
  FileCache &files() { return files_; }

 private:
  Options opts_;
  DocRoot root_;
  FileCache files_;  // after root_, which it refers to
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: a stop request wakes the accept loop
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> open_{0};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> refused_{0};
  // Open connections by descriptor, for begin_shutdown.
  std::unique_ptr<std::atomic<Conn *>[]> by_fd_;
  size_t by_fd_size_ = 0;
  const WorkerStats *workers_ = nullptr;
  size_t nworkers_ = 0;
  Backend *backend_ = nullptr;
};

// serve_one: reads one request from c (waiting for it up to the idle
// timeout, for the rest of its head up to the request timeout) and answers
// it. Returns true if the connection stays open for another request,
// false if the caller must close it.
bool serve_one(Server &srv, Conn &c, WorkerStats &stats);

}  // namespace kweb

#endif  // KWEB_SERVER_H

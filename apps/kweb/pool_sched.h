// The threading model of dissertation 2.6.2, written once for any
// pthread-like library (Api): the accept thread (the caller of run())
// puts each new connection at the tail of one connection queue and wakes
// a worker; a worker takes the connection at the head, serves one request
// from it, puts it back (at the head while its burst lasts, then at the
// tail) and wakes another worker, so that some thread is awake whenever a
// connection is queued.
//
// Api provides Mutex, Cond, Thread and static mutex_init, lock, unlock,
// cond_init, wait, signal, broadcast, create(Thread *, stack, fn, arg) and
// join. nptl_sched.cpp instantiates it with glibc's pthreads,
// upthread_sched.cpp with parlib's upthreads.
#ifndef KWEB_POOL_SCHED_H
#define KWEB_POOL_SCHED_H

#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "conn.h"
#include "server.h"

namespace kweb {

template <class Api>
class PoolScheduler {
 public:
  explicit PoolScheduler(Server &srv) : srv_(srv) {
    Api::mutex_init(&mu_);
    Api::cond_init(&cv_);
  }

  // Starts the workers, runs the accept loop on the calling thread until a
  // stop, then shuts down. Returns the process's exit status.
  int run() {
    int n = srv_.opts().threads;
    stats_.reset(new WorkerStats[static_cast<size_t>(n)]);
    srv_.set_worker_stats(stats_.get(), static_cast<size_t>(n));
    workers_.resize(static_cast<size_t>(n));
    args_.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      args_[static_cast<size_t>(i)] = {this, &stats_[static_cast<size_t>(i)]};
      int err = Api::create(&workers_[static_cast<size_t>(i)], kStackSize, worker_main,
                            &args_[static_cast<size_t>(i)]);
      if (err != 0) {
        fprintf(stderr, "kweb: cannot create worker %d of %d: %s\n", i + 1, n, strerror(err));
        workers_.resize(static_cast<size_t>(i));
        stop_workers();
        return 1;
      }
    }
    srv_.announce();
    srv_.accept_loop(hand_off, this);
    srv_.begin_shutdown();
    stop_workers();
    return srv_.open_conns() == 0 ? 0 : 1;
  }

 private:
  // Workers keep their state on the heap (Conn); 128 KiB is ample and lets
  // thousands of NPTL threads fit.
  static constexpr size_t kStackSize = 128 << 10;

  struct WorkerArg {
    PoolScheduler *self;
    WorkerStats *stats;
  };

  static void hand_off(Conn *c, void *arg) {
    auto *self = static_cast<PoolScheduler *>(arg);
    Api::lock(&self->mu_);
    self->queue_.push_back(c);
    Api::signal(&self->cv_);
    Api::unlock(&self->mu_);
  }

  static void *worker_main(void *p) {
    auto *a = static_cast<WorkerArg *>(p);
    a->self->work(*a->stats);
    return nullptr;
  }

  void work(WorkerStats &stats) {
    Api::lock(&mu_);
    while (true) {
      while (queue_.empty() && !stop_) Api::wait(&cv_, &mu_);
      // At a stop, the queue is drained first: every connection left in it
      // sees its end (begin_shutdown) and is closed by whoever takes it.
      if (queue_.empty()) break;
      Conn *c = queue_.pop_front();
      Api::unlock(&mu_);
      bool keep = serve_one(srv_, *c, stats);
      if (!keep) srv_.close_conn(c);
      Api::lock(&mu_);
      if (keep) {
        requeue_by_burst(queue_, c, srv_.opts().burst);
        // This thread goes back to the pool; make sure someone serves c.
        Api::signal(&cv_);
      }
    }
    Api::unlock(&mu_);
  }

  void stop_workers() {
    Api::lock(&mu_);
    stop_ = true;
    Api::broadcast(&cv_);
    Api::unlock(&mu_);
    for (auto &t : workers_) Api::join(t);
  }

  Server &srv_;
  typename Api::Mutex mu_;
  typename Api::Cond cv_;
  ConnQueue queue_;    // guarded by mu_
  bool stop_ = false;  // guarded by mu_
  std::vector<typename Api::Thread> workers_;
  std::vector<WorkerArg> args_;
  std::unique_ptr<WorkerStats[]> stats_;
};

}  // namespace kweb

#endif  // KWEB_POOL_SCHED_H

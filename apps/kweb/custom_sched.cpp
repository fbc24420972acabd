// The custom back end: kweb on its own 2LS (custom_2ls.h), as dissertation
// 2.6.2 describes it. The accept thread is main, alone on its vcore
// (vcore 0 in practice). Every other vcore in use has its own connection
// queue and its own pool of worker threads; the accept thread deals new
// connections out round-robin, and a connection stays on its vcore for
// life. A vcore's queue and pool are touched only by that vcore, so the
// request path takes no lock: the one crossing is the hand-off of a new
// connection, through a lock-free inbox.
#include <parlib/uthread.h>
#include <parlib/vcore.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "backends.h"
#include "conn.h"
#include "custom_2ls.h"

namespace kweb {
namespace {

struct alignas(128) VcoreServer {
  // Cross-vcore: new connections from the accept thread (a Treiber stack).
  std::atomic<Conn *> inbox{nullptr};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> assigned{0};  // connections dealt to this vcore
  // This vcore's only (vcore context, or its uthreads with notifications
  // disabled).
  ConnQueue conns;
  KThread *idle = nullptr;  // parked workers, a stack
  int workers = 0;          // spawned on this vcore
};

// Allocated once and never freed: idle vcores may still run poll_hook
// while the process exits, after static destructors have run.
Server *g_srv = nullptr;
VcoreServer *g_vs = nullptr;
int g_max = 0;
uint32_t g_accept_vcore = 0;
// The vcores serving requests, in round-robin order; the first g_active of
// them take new connections. Written by thread0 and the url command, read
// by the accept thread.
std::vector<uint32_t> g_order;
std::atomic<int> g_active{1};
int g_per_vcore = 1;                 // workers per vcore
WorkerStats *g_stats = nullptr;      // g_per_vcore per vcore, by vcore
std::atomic<int> g_spawned_upto{0};  // vcores of g_order with their pool spawned

struct WorkerArg {
  uint32_t vcore;
  WorkerStats *stats;
};
WorkerArg *g_args = nullptr;

void wake_one_idle(VcoreServer &vs) {
  if (KThread *t = vs.idle) {
    vs.idle = t->next;
    k2ls_wake(t);
  }
}

// Vcore context, at every scheduling decision on v: take the connections
// the accept thread left, and wake a parked worker for each (or all of
// them at a stop).
void poll_hook(uint32_t v) {
  VcoreServer &vs = g_vs[v];
  Conn *list = vs.inbox.exchange(nullptr, std::memory_order_acquire);
  Conn *rev = nullptr;  // oldest first
  while (list != nullptr) {
    Conn *n = list->next;
    list->next = rev;
    rev = list;
    list = n;
  }
  while (rev != nullptr) {
    Conn *n = rev->next;
    vs.conns.push_back(rev);
    wake_one_idle(vs);
    rev = n;
  }
  if (vs.stop.load(std::memory_order_acquire))
    while (vs.idle != nullptr) wake_one_idle(vs);
}

bool has_work_hook(uint32_t v) {
  VcoreServer &vs = g_vs[v];
  return vs.inbox.load(std::memory_order_seq_cst) != nullptr ||
         (vs.stop.load(std::memory_order_seq_cst) && vs.idle != nullptr);
}

// Vcore context: a worker found nothing to do. It parks, unless something
// arrived between its look and here (poll_hook may have run meanwhile).
void park_cb(KThread *self, void *arg) {
  VcoreServer &vs = *static_cast<VcoreServer *>(arg);
  if (!vs.conns.empty() || vs.stop.load(std::memory_order_acquire)) {
    k2ls_wake(self);
  } else {
    self->next = vs.idle;
    vs.idle = self;
  }
}

void worker_main(void *p) {
  auto *a = static_cast<WorkerArg *>(p);
  VcoreServer &vs = g_vs[a->vcore];
  int burst = g_srv->opts().burst;
  while (true) {
    uth_disable_notifs();
    Conn *c = vs.conns.pop_front();
    bool stop = vs.stop.load(std::memory_order_acquire);
    uth_enable_notifs();
    if (c == nullptr) {
      if (stop) break;
      k2ls_park(park_cb, &vs);
      continue;
    }
    bool keep = serve_one(*g_srv, *c, *a->stats);
    if (!keep) {
      g_srv->close_conn(c);
      continue;
    }
    uth_disable_notifs();
    requeue_by_burst(vs.conns, c, burst);
    // As in 2.6.2: wake another worker for it, this one goes back to the
    // pool (here: takes the next connection, or parks).
    wake_one_idle(vs);
    uth_enable_notifs();
  }
}

void spawn_pools_upto(int active) {
  for (int i = g_spawned_upto.load(); i < active; ++i) {
    uint32_t v = g_order[static_cast<size_t>(i)];
    for (int w = 0; w < g_per_vcore; ++w) {
      size_t idx = v * static_cast<size_t>(g_per_vcore) + static_cast<size_t>(w);
      g_args[idx] = {v, &g_stats[idx]};
      k2ls_spawn(worker_main, &g_args[idx], v, "kweb-worker");
    }
    g_vs[v].workers = g_per_vcore;
  }
  if (active > g_spawned_upto.load()) g_spawned_upto.store(active);
}

void hand_off(Conn *c, void *) {
  static uint64_t next = 0;  // the accept thread's own
  int active = g_active.load(std::memory_order_relaxed);
  uint32_t v = g_order[next++ % static_cast<uint64_t>(active)];
  VcoreServer &vs = g_vs[v];
  vs.assigned.fetch_add(1, std::memory_order_relaxed);
  Conn *old = vs.inbox.load(std::memory_order_relaxed);
  do {
    c->next = old;
  } while (!vs.inbox.compare_exchange_weak(old, c, std::memory_order_seq_cst,
                                           std::memory_order_relaxed));
  // The handshake with has_work_hook (see custom_2ls.h).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!vcore_is_online(v)) vcore_wake(v);
}

class CustomBackend : public Backend {
 public:
  bool set_vcores(int n, std::string *why) override {
    if (n > g_max) {
      *why = "at most " + std::to_string(g_max) + " vcores";
      return false;
    }
    // n vcores in all: the accept thread's and n - 1 serving (with one
    // vcore, it serves as well). Pools are spawned as vcores first come
    // into use; a vcore taken out of the rotation keeps its connections
    // (nothing migrates) and yields once they are gone.
    int active = n == 1 || g_max == 1 ? 1 : n - 1;
    spawn_pools_upto(active);
    g_active.store(active, std::memory_order_relaxed);
    vcore_request_total(n);
    return true;
  }
  std::string describe() override {
    char line[160];
    snprintf(line, sizeof line, "threads %d per serving vcore\n", g_per_vcore);
    std::string s = line;
    snprintf(line, sizeof line, "vcores online %d of %d, accept on vcore %u, serving on",
             num_vcores(), g_max, g_accept_vcore);
    s += line;
    for (int i = 0; i < g_active.load(); ++i) {
      snprintf(line, sizeof line, " %u", g_order[static_cast<size_t>(i)]);
      s += line;
    }
    s += "\n";
    for (int v = 0; v < g_max; ++v) {
      uint64_t n = g_vs[v].assigned.load(std::memory_order_relaxed);
      if (n == 0) continue;
      snprintf(line, sizeof line, "vcore %d connections %llu\n", v,
               static_cast<unsigned long long>(n));
      s += line;
    }
    return s;
  }
};

}  // namespace

int run_custom(Server &srv) {
  g_srv = &srv;
  k2ls_init({poll_hook, has_work_hook});
  g_max = max_vcores();
  g_vs = new VcoreServer[static_cast<size_t>(g_max)];
  g_accept_vcore = k2ls_thread0_vcore();
  for (int v = 0; v < g_max; ++v)
    if (static_cast<uint32_t>(v) != g_accept_vcore) g_order.push_back(static_cast<uint32_t>(v));
  if (g_order.empty()) g_order.push_back(g_accept_vcore);  // one vcore: it does everything
  int n = srv.opts().vcores > 0 ? srv.opts().vcores : g_max;
  if (n > g_max) {
    fprintf(stderr, "kweb: --vcores %d: at most %d vcores\n", n, g_max);
    return 2;
  }
  // Pools sized for the vcores given at start; a later url command adds
  // pools of the same size.
  int serving = n == 1 || g_max == 1 ? 1 : n - 1;
  g_per_vcore = (srv.opts().threads + serving - 1) / serving;
  size_t slots = static_cast<size_t>(g_max) * static_cast<size_t>(g_per_vcore);
  g_stats = new WorkerStats[slots];
  g_args = new WorkerArg[slots];
  srv.set_worker_stats(g_stats, slots);
  CustomBackend backend;
  srv.set_backend(&backend);
  std::string why;
  backend.set_vcores(n, &why);

  srv.announce();
  srv.accept_loop(hand_off, nullptr);
  srv.begin_shutdown();
  for (int v = 0; v < g_max; ++v) {
    g_vs[v].stop.store(true, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!vcore_is_online(static_cast<uint32_t>(v))) vcore_wake(static_cast<uint32_t>(v));
  }
  k2ls_join_all();
  srv.set_backend(nullptr);
  return srv.open_conns() == 0 ? 0 : 1;
}

}  // namespace kweb

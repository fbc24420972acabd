#include "custom_2ls.h"

#include <parlib/vcore.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace kweb {
namespace {

// Two cache lines: the adjacent-line prefetcher moves lines in pairs.
struct alignas(128) VcoreRunQueue {
  // This vcore's only.
  KThread *head = nullptr;
  KThread *tail = nullptr;
  // Threads made runnable from other vcores or kernel threads: a
  // Treiber stack, pushed with CAS, taken whole with one exchange.
  std::atomic<KThread *> inbox{nullptr};

  void push_local(KThread *t) {
    t->next = nullptr;
    if (tail != nullptr)
      tail->next = t;
    else
      head = t;
    tail = t;
  }
  KThread *pop_local() {
    KThread *t = head;
    if (t != nullptr) {
      head = t->next;
      if (head == nullptr) tail = nullptr;
    }
    return t;
  }
  void take_inbox() {
    KThread *list = inbox.exchange(nullptr, std::memory_order_acquire);
    // The stack holds them newest first; queue them oldest first.
    KThread *rev = nullptr;
    while (list != nullptr) {
      KThread *n = list->next;
      list->next = rev;
      rev = list;
      list = n;
    }
    while (rev != nullptr) {
      KThread *n = rev->next;
      push_local(rev);
      rev = n;
    }
  }
};

VcoreRunQueue *g_queues = nullptr;
uint32_t g_nqueues = 0;
K2lsHooks g_hooks{};
KThread g_thread0;
std::atomic<int> g_live{0};  // spawned threads that have not exited
std::atomic<KThread *> g_joiner{nullptr};

KThread *of(struct uthread *uth) { return reinterpret_cast<KThread *>(uth); }

void push_remote(KThread *t) {
  VcoreRunQueue &q = g_queues[t->home];
  KThread *old = q.inbox.load(std::memory_order_relaxed);
  do {
    t->next = old;
  } while (
      !q.inbox.compare_exchange_weak(old, t, std::memory_order_seq_cst, std::memory_order_relaxed));
  // The other half of vcore_set_sched_probe's handshake: the push is
  // seq_cst, so either the vcore sees it in has_work while going offline,
  // or we see it offline here and bring it back.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!vcore_is_online(t->home)) vcore_wake(t->home);
}

void thread_runnable(struct uthread *uth) {
  KThread *t = of(uth);
  // On the home vcore (its vcore context, or one of its uthreads, which
  // never migrate) the local queue will do; from anywhere else, the inbox.
  bool on_vcore = in_vcore_context() || uthread_self() != nullptr;
  if (on_vcore && vcore_id() == t->home) {
    uth_disable_notifs();  // no-op in vcore context
    g_queues[t->home].push_local(t);
    uth_enable_notifs();
  } else {
    push_remote(t);
  }
}

void sched_entry() {
  uint32_t v = vcore_id();
  VcoreRunQueue &q = g_queues[v];
  q.take_inbox();
  if (g_hooks.poll != nullptr) g_hooks.poll(v);
  if (KThread *t = q.pop_local()) run_uthread(&t->uth);
  vcore_yield();
}

bool has_work(uint32_t v) {
  if (v >= g_nqueues) return false;
  if (g_queues[v].inbox.load(std::memory_order_seq_cst) != nullptr) return true;
  return g_hooks.has_work != nullptr && g_hooks.has_work(v);
}

void thread_paused(struct uthread *uth) { g_queues[of(uth)->home].push_local(of(uth)); }
void thread_blockon_sysc(struct uthread *, void *) {}
void thread_has_blocked(struct uthread *, int) {}
void thread_refl_fault(struct uthread *uth, int signo, int code, void *addr) {
  fprintf(stderr, "kweb: uthread %p faulted: signal %d code %d addr %p\n", static_cast<void *>(uth),
          signo, code, addr);
  abort();
}

struct schedule_ops g_ops = {
    sched_entry,        thread_runnable,   thread_paused, thread_blockon_sysc,
    thread_has_blocked, thread_refl_fault, nullptr,       nullptr};

constexpr size_t kStackSize = 128 << 10;
constexpr size_t kGuardSize = 4096;

// Vcore context on the exiting thread's vcore, after it stopped for good.
void exit_cb(struct uthread *uth, void *) {
  KThread *t = of(uth);
  uthread_cleanup(&t->uth);
  uthread_stack_free(t->stack, t->stack_size, kGuardSize);
  delete t;
  // seq_cst, with k2ls_join_all's store and load: whichever side comes
  // second sees the other (a store-buffering pattern).
  if (g_live.fetch_sub(1, std::memory_order_seq_cst) == 1) {
    if (KThread *j = g_joiner.exchange(nullptr, std::memory_order_seq_cst))
      uthread_runnable(&j->uth);
  }
}

void thread_main() {
  KThread *self = of(uthread_self());
  self->fn(self->arg);
  uthread_run_destructors();
  uthread_yield(false, exit_cb, nullptr);
}

}  // namespace

void k2ls_init(K2lsHooks hooks) {
  int n = max_vcores();
  if (n <= 0) {
    fprintf(stderr, "kweb: cannot initialise vcores (check PARLIB_VCORES)\n");
    exit(1);
  }
  g_nqueues = static_cast<uint32_t>(n);
  g_queues = new VcoreRunQueue[g_nqueues];
  g_hooks = hooks;
  sched_ops = &g_ops;
  vcore_set_sched_probe(has_work);
  uthread_lib_init(&g_thread0.uth);
  // thread0 is queued nowhere before it first blocks, so its home is where
  // the library resumed it.
  g_thread0.home = vcore_id();
}

uint32_t k2ls_thread0_vcore() { return g_thread0.home; }

KThread *k2ls_spawn(void (*fn)(void *), void *arg, uint32_t home, const char *name) {
  if (home >= g_nqueues) {
    fprintf(stderr, "kweb: vcore %u does not exist\n", home);
    abort();
  }
  auto *t = new KThread;
  t->fn = fn;
  t->arg = arg;
  t->home = home;
  t->stack_size = kStackSize;
  t->stack = uthread_stack_alloc(kStackSize, kGuardSize);
  if (t->stack == nullptr) {
    perror("kweb: uthread_stack_alloc");
    abort();
  }
  uthread_init(&t->uth);
  uthread_set_name(&t->uth, name);
  init_uthread_ctx(&t->uth, thread_main, t->stack, kStackSize);
  g_live.fetch_add(1, std::memory_order_relaxed);
  uthread_runnable(&t->uth);
  return t;
}

void k2ls_park(void (*park_cb)(KThread *, void *), void *arg) {
  struct Park {
    void (*cb)(KThread *, void *);
    void *arg;
  } park{park_cb, arg};
  uthread_yield(
      true,
      [](struct uthread *uth, void *p) {
        auto *pk = static_cast<Park *>(p);
        pk->cb(of(uth), pk->arg);
      },
      &park);
}

void k2ls_wake(KThread *t) { uthread_runnable(&t->uth); }

void k2ls_join_all() {
  if (g_live.load(std::memory_order_acquire) == 0) return;
  uthread_yield(
      true,
      [](struct uthread *uth, void *) {
        // Publish ourselves, then look again: the last thread may have
        // exited before it could see us. Whoever takes g_joiner back to
        // null wakes us, exactly once.
        g_joiner.store(of(uth), std::memory_order_seq_cst);
        if (g_live.load(std::memory_order_seq_cst) == 0) {
          KThread *expected = of(uth);
          if (g_joiner.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel))
            uthread_runnable(uth);
        }
      },
      nullptr);
}

}  // namespace kweb

// Vcores on Linux: one pinned kernel task per vcore, parked on a futex word
// until the vcore is granted. See docs/design.md ("Vcores").
#include "vcore/vcore_internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "common/clock.h"
#include "common/env.h"
#include "common/futex.h"
#include "common/raw_log.h"
#include "common/runtime_fds.h"
#include "common/sanitizer_fiber.h"
#include "vcore/arch/arch.h"

namespace parlib::detail {

__thread uint32_t tls_vcoreid = 0;
__thread bool tls_in_vcore_context = false;

bool g_have_wrfsbase = false;
Vcore *g_vcore_table = nullptr;

namespace {

#ifdef PARLIB_ASAN
constexpr size_t kVcoreStackSize = 1 << 20;  // ASan frames are large
constexpr size_t kTaskStackSize = 1 << 20;
#else
constexpr size_t kVcoreStackSize = 256 << 10;
constexpr size_t kTaskStackSize = 128 << 10;
#endif
constexpr size_t kGuardSize = 4096;
constexpr uint32_t kDefaultIdleSpinUs = 50;

// The one vcore runtime object: built once by vcore_lib_init, never freed
// (vcore tasks run until the process exits).
struct VcoreRuntime {
  int max_vcores = 0;
  int max_spares = 0;              // spare vcores: ids max_vcores .. max_vcores + max_spares - 1
  std::atomic<int> num_online{0};  // not counting spares
  std::atomic<int> spares_online{0};
  // How many vcores the process wants (Akaros' amt_wanted): requests add to
  // it, a yield takes one off, and a vcore about to sleep comes back if
  // fewer than this many are online. Keeping the desire separate from the
  // grants is what makes a request that races with a yield never lost.
  std::atomic<int> wanted{0};
  std::atomic<uint32_t> idle_spin_us{kDefaultIdleSpinUs};
  Vcore *vcores = nullptr;
  std::atomic<int> tasks_ready{0};
  // Spare vcores' tasks are made on first use, in id order, under
  // spare_start_lock; spares_started of them exist.
  std::mutex spare_start_lock;
  std::atomic<int> spares_started{0};
  sigset_t task_mask{};  // the signal mask every vcore task starts with
  // Run on every vcore task made after initialisation (see
  // add_vcore_task_hook); slots fill in order, never emptied.
  static constexpr int kMaxTaskHooks = 4;
  std::atomic<void (*)(uint32_t)> task_hooks[kMaxTaskHooks] = {};
  std::atomic<bool (*)(uint32_t)> work_probe{nullptr};   // the event layer's
  std::atomic<bool (*)(uint32_t)> sched_probe{nullptr};  // the 2LS's (vcore_set_sched_probe)
  // Run by park_until_online's poll (see add_vcore_idle_poll); slots fill
  // in order, never emptied.
  static constexpr int kMaxIdlePolls = 4;
  std::atomic<bool (*)(uint32_t)> idle_polls[kMaxIdlePolls] = {};
};

VcoreRuntime g_rt;
std::once_flag g_init_once;
int g_init_errno = 0;  // 0 once vcore_lib_init succeeded

void raise_wanted_to(int n) {
  int w = g_rt.wanted.load(std::memory_order_relaxed);
  while (w < n && !g_rt.wanted.compare_exchange_weak(w, n, std::memory_order_seq_cst)) {
  }
}

void futex_sleep(uint32_t, std::atomic<uint32_t> *state) { futex_wait(state, kOfflineSleeping); }
void futex_wake_one(uint32_t, std::atomic<uint32_t> *state) { futex_wake(state, 1); }
const IdleWaiter g_futex_waiter = {futex_sleep, futex_wake_one};
std::atomic<const IdleWaiter *> g_idle_waiter{&g_futex_waiter};

bool probe_work(uint32_t id) {
  auto events = g_rt.work_probe.load(std::memory_order_acquire);
  auto sched = g_rt.sched_probe.load(std::memory_order_acquire);
  return (events != nullptr && events(id)) || (sched != nullptr && sched(id));
}

// Reads the scheduler state of the vcore's task from procfs ('S' and 'D':
// sleeping in the kernel). The file stays open: a re-read costs one pread.
bool task_sleeps_in_kernel(Vcore &vc) {
  int fd = vc.stat_fd.load(std::memory_order_acquire);
  if (fd < 0) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(vc.tid.load()));
    fd = hide_runtime_fd(
        static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC)));
    if (fd < 0) return false;
    int expected = -1;
    if (!vc.stat_fd.compare_exchange_strong(expected, fd, std::memory_order_acq_rel)) {
      close_runtime_fd(fd);
      fd = expected;
    }
  }
  // "tid (comm) S ...": comm may hold spaces and parentheses, so the state
  // is the character after the last ") ".
  char buf[256];
  long n = syscall(SYS_pread64, fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char *close = strrchr(buf, ')');
  if (close == nullptr || close[1] != ' ') return false;
  return close[2] == 'S' || close[2] == 'D';
}

bool is_spare(uint32_t id) { return id >= static_cast<uint32_t>(g_rt.max_vcores); }

// Should an offline vcore come back at once? Yes if work was sent to it, or
// if a request is outstanding that no other vcore took (requests never
// grant spares).
bool wanted_back(uint32_t id) {
  return probe_work(id) || (!is_spare(id) && g_rt.num_online.load(std::memory_order_seq_cst) <
                                                 g_rt.wanted.load(std::memory_order_seq_cst));
}

// The registered idle polls (add_vcore_idle_poll): true if one found work
// for the vcore.
bool run_idle_polls(uint32_t id) {
  for (auto &slot : g_rt.idle_polls) {
    auto poll = slot.load(std::memory_order_acquire);
    if (poll == nullptr) return false;
    if (poll(id)) return true;
  }
  return false;
}

// Waits, on the vcore's own task, until the vcore is granted again. Polls
// for up to idle_spin_us first (a grant then costs no syscall on either
// side), then sleeps through the idle waiter. This is the only idle poll:
// other layers plug their checks into it (add_vcore_idle_poll) rather than
// polling in their idle waiter, so that a vcore polls whatever the layers
// above have or have not set up yet.
void park_until_online(Vcore &vc, bool spin) {
  uint64_t spin_ns = spin ? uint64_t{g_rt.idle_spin_us.load(std::memory_order_relaxed)} * 1000 : 0;
  if (spin_ns != 0) {
    uint64_t deadline = monotonic_now_ns() + spin_ns;
    for (unsigned i = 1;; ++i) {
      if (vc.state.load(std::memory_order_acquire) == kOnline) return;
      if ((wanted_back(vc.id) || run_idle_polls(vc.id)) && vcore_bring_online(vc.id)) return;
      cpu_pause();
      if ((i & 63) == 0 && monotonic_now_ns() >= deadline) break;
    }
  }
  for (;;) {
    uint32_t expected = kOffline;
    // Announce the sleep so that a granter knows to FUTEX_WAKE us; a grant
    // racing with this CAS makes it fail and we see kOnline.
    if (!vc.state.compare_exchange_strong(expected, kOfflineSleeping, std::memory_order_acq_rel) &&
        expected == kOnline)
      return;
    // Work sent after our last probe found the vcore offline and granted
    // it; work sent before is caught here (see go_offline).
    if (wanted_back(vc.id) && vcore_bring_online(vc.id)) return;
    g_idle_waiter.load(std::memory_order_acquire)->sleep(vc.id, &vc.state);
    if (vc.state.load(std::memory_order_acquire) == kOnline) return;
  }
}

// See set_vcore_context_entry. acquire: the entry's layer was set up
// before it published the entry.
std::atomic<void (*)()> g_context_entry{nullptr};

void vcore_entry_trampoline(void *) {
  san::finish_switch(nullptr);
  Vcore &vc = this_vcore();
  san::restart_stack(vc.sanitizer_fiber, &vc.sanitizer_stack_mark);
  void (*entry)() = g_context_entry.load(std::memory_order_acquire);
  PARLIB_CHECK(entry != nullptr, "vcore %u came online before the uthread layer set its entry",
               tls_vcoreid);
  entry();
  raw_fatal("vcore context's entry returned");
}

// Starts vcore context afresh at the top of the vcore's stack.
[[noreturn]] void enter_vcore_context(Vcore &vc) {
  san::start_switch(nullptr, nullptr, vc.stack_bottom, vc.stack_size);
  parlib_call_on_stack(vc.stack_top(), vcore_entry_trampoline, nullptr);
}

void *vcore_task_main(void *arg) {
  Vcore &vc = *static_cast<Vcore *>(arg);
  // A spare's task may be made by any thread (a monitor that blocks every
  // signal, say): start from the mask of the initialising thread.
  pthread_sigmask(SIG_SETMASK, &g_rt.task_mask, nullptr);
  tls_vcoreid = vc.id;
  tls_in_vcore_context = true;
  vc.tcb = read_thread_pointer();
  // Vcore context runs as the task's own thread of execution (TSan).
  vc.sanitizer_fiber = san::current_fiber();
  san::restart_stack(vc.sanitizer_fiber, &vc.sanitizer_stack_mark);  // takes the mark
  install_fault_handler_on_this_task();
  vc.tid.store(static_cast<pid_t>(syscall(SYS_gettid)), std::memory_order_seq_cst);
  for (auto &slot : g_rt.task_hooks)
    if (auto hook = slot.load(std::memory_order_seq_cst)) hook(vc.id);
  g_rt.tasks_ready.fetch_add(1, std::memory_order_release);
  park_until_online(vc, /*spin=*/false);
  enter_vcore_context(vc);
}

// The CPUs of the affinity mask, in order.
int affinity_cpus(int *cpus, int max) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  int n = 0;
  for (int c = 0; c < CPU_SETSIZE && n < max; ++c)
    if (CPU_ISSET(c, &set)) cpus[n++] = c;
  return n;
}

// Where vcore 0 goes: the CPU this task runs on now, the one the kernel's
// balancer chose for the new process. Starting every process at the
// mask's first CPU would stack the vcore 0 of every parlib process (each
// program of a pipeline under the LD_PRELOAD shim, say) on one CPU while
// the others idle.
int first_cpu_index(const int *cpus, int ncpus) {
  const int here = sched_getcpu();
  for (int i = 0; i < ncpus; ++i)
    if (cpus[i] == here) return i;
  return 0;
}

int start_vcore_task(Vcore &vc) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kTaskStackSize);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (vc.cpu >= 0) {  // spares are not pinned: they stand in for any vcore
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(vc.cpu, &set);
    pthread_attr_setaffinity_np(&attr, sizeof set, &set);
  }
  // The vcore tasks block every signal the runtime does not handle itself
  // until they run application code; they inherit the mask of the caller.
  pthread_t thread;
  int err = pthread_create(&thread, &attr, vcore_task_main, &vc);
  pthread_attr_destroy(&attr);
  return err;
}

void init_runtime() {
  arch_init();
  san::init();
  static int cpus[CPU_SETSIZE];
  int ncpus = affinity_cpus(cpus, CPU_SETSIZE);
  if (ncpus <= 0) {
    g_init_errno = EINVAL;
    return;
  }
  uint64_t want = 0;
  uint64_t spin = kDefaultIdleSpinUs;
  uint64_t spares = 0;
  EnvStatus vcores_env = env_integer("PARLIB_VCORES", 1, PARLIB_MAX_VCORES, "a vcore count", &want);
  EnvStatus spin_env = env_integer("PARLIB_IDLE_SPIN_US", 0, 10000000, "microseconds", &spin);
  EnvStatus spares_env =
      env_integer("PARLIB_SPARE_VCORES", 0, PARLIB_MAX_VCORES, "a vcore count", &spares);
  if (vcores_env == EnvStatus::kInvalid || spin_env == EnvStatus::kInvalid ||
      spares_env == EnvStatus::kInvalid) {
    g_init_errno = EINVAL;
    return;
  }
  int max = vcores_env == EnvStatus::kValid
                ? static_cast<int>(want)
                : (ncpus < PARLIB_MAX_VCORES ? ncpus : PARLIB_MAX_VCORES);
  int nspares = spares_env == EnvStatus::kValid ? static_cast<int>(spares) : PARLIB_MAX_VCORES;
  int total = max + nspares;
  g_rt.idle_spin_us.store(static_cast<uint32_t>(spin), std::memory_order_relaxed);

  void *mem = aligned_alloc(alignof(Vcore), sizeof(Vcore) * static_cast<size_t>(total));
  if (mem == nullptr) {
    g_init_errno = ENOMEM;
    return;
  }
  Vcore *vcores = static_cast<Vcore *>(mem);
  const int first = first_cpu_index(cpus, ncpus);
  for (int i = 0; i < total; ++i) {
    Vcore *vc = new (&vcores[i]) Vcore;
    vc->id = static_cast<uint32_t>(i);
    // Oversubscribed vcores wrap around the CPUs.
    vc->cpu = i < max ? cpus[(first + i) % ncpus] : -1;
    vc->stack_size = kVcoreStackSize;
    if (i >= max) continue;  // a spare's stack comes with its task
    vc->stack_bottom = stack_map(kVcoreStackSize, kGuardSize);
    if (vc->stack_bottom == nullptr) {
      g_init_errno = ENOMEM;
      return;
    }
  }
  pthread_sigmask(SIG_SETMASK, nullptr, &g_rt.task_mask);
  g_rt.vcores = vcores;
  g_vcore_table = vcores;
  g_rt.max_vcores = max;
  g_rt.max_spares = nspares;
  install_fault_handler_on_this_task();
  for (int i = 0; i < max; ++i) {
    int err = start_vcore_task(vcores[i]);
    if (err != 0) {
      raw_log("cannot start the kernel task of vcore %d: %s", i, strerror(err));
      g_init_errno = err == EAGAIN ? EAGAIN : ENOMEM;
      return;
    }
  }
  // Wait until every task has published its tid and TCB, so that events and
  // signals can be aimed at any vcore from now on.
  while (g_rt.tasks_ready.load(std::memory_order_acquire) < max) sched_yield();
}

// Makes the task (and stack) of the next spare vcore; false if all exist or
// the system refuses.
bool start_next_spare() {
  std::lock_guard<std::mutex> guard(g_rt.spare_start_lock);
  int i = g_rt.spares_started.load(std::memory_order_relaxed);
  if (i >= g_rt.max_spares) return false;
  Vcore &vc = g_rt.vcores[g_rt.max_vcores + i];
  vc.stack_bottom = stack_map(kVcoreStackSize, kGuardSize);
  if (vc.stack_bottom == nullptr) return false;
  int ready = g_rt.tasks_ready.load(std::memory_order_acquire);
  int err = start_vcore_task(vc);
  if (err != 0) {
    raw_log("cannot start the kernel task of spare vcore %u: %s", vc.id, strerror(err));
    stack_unmap(vc.stack_bottom, kVcoreStackSize, kGuardSize);
    vc.stack_bottom = nullptr;
    return false;
  }
  // As at initialisation: granted only once its tid and TCB are known.
  while (g_rt.tasks_ready.load(std::memory_order_acquire) == ready) sched_yield();
  g_rt.spares_started.store(i + 1, std::memory_order_release);
  return true;
}

}  // namespace

void arch_init() {
#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif
  g_have_wrfsbase =
      !env_flag("PARLIB_NO_WRFSBASE") && (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0;
}

void set_vcore_context_entry(void (*entry)()) {
  g_context_entry.store(entry, std::memory_order_release);
}

void add_vcore_task_hook(void (*hook)(uint32_t id)) {
  for (auto &slot : g_rt.task_hooks) {
    void (*expected)(uint32_t) = nullptr;
    if (slot.compare_exchange_strong(expected, hook, std::memory_order_seq_cst)) return;
  }
  raw_fatal("add_vcore_task_hook: more than %d hooks", VcoreRuntime::kMaxTaskHooks);
}

bool vcore_bring_online(uint32_t id) {
  Vcore &vc = g_rt.vcores[id];
  uint32_t s = vc.state.load(std::memory_order_acquire);
  for (;;) {
    if (s == kOnline) return false;
    // acq_rel: the grant publishes whatever the granter set up for the vcore
    // (handoff, queued work) to its task, which reads state with acquire.
    if (vc.state.compare_exchange_weak(s, kOnline, std::memory_order_acq_rel)) break;
  }
  if (is_spare(id)) {
    g_rt.spares_online.fetch_add(1, std::memory_order_seq_cst);
  } else {
    int online = g_rt.num_online.fetch_add(1, std::memory_order_seq_cst) + 1;
    raise_wanted_to(online);
  }
  if (s == kOfflineSleeping) g_idle_waiter.load(std::memory_order_acquire)->wake(id, &vc.state);
  return true;
}

void grant_wanted() {
  for (int i = 0; i < g_rt.max_vcores; ++i) {
    if (g_rt.num_online.load(std::memory_order_seq_cst) >=
        g_rt.wanted.load(std::memory_order_seq_cst))
      return;
    vcore_bring_online(static_cast<uint32_t>(i));
  }
}

void set_vcore_idle_waiter(const IdleWaiter *waiter) {
  g_idle_waiter.store(waiter != nullptr ? waiter : &g_futex_waiter, std::memory_order_release);
}

void add_vcore_idle_poll(bool (*poll)(uint32_t id)) {
  for (auto &slot : g_rt.idle_polls) {
    bool (*expected)(uint32_t) = nullptr;
    if (slot.compare_exchange_strong(expected, poll, std::memory_order_acq_rel)) return;
  }
  raw_fatal("add_vcore_idle_poll: more than %d polls", VcoreRuntime::kMaxIdlePolls);
}

void set_vcore_work_probe(bool (*probe)(uint32_t)) {
  g_rt.work_probe.store(probe, std::memory_order_release);
}

ptrdiff_t tls_offset_of(const void *tls_var) {
  return static_cast<const char *>(tls_var) - static_cast<const char *>(read_thread_pointer());
}

}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

int vcore_lib_init(void) {
  std::call_once(g_init_once, init_runtime);
  if (g_init_errno != 0) {
    errno = g_init_errno;
    return -1;
  }
  return 0;
}

int max_vcores(void) { return vcore_lib_init() == 0 ? g_rt.max_vcores : 0; }

int num_vcores(void) { return g_rt.num_online.load(std::memory_order_relaxed); }

uint32_t vcore_id(void) { return tls_vcoreid; }

bool in_vcore_context(void) { return tls_in_vcore_context; }

bool vcore_is_online(uint32_t vcoreid) {
  if (g_rt.vcores == nullptr || vcoreid >= static_cast<uint32_t>(g_rt.max_vcores + g_rt.max_spares))
    return false;
  return g_rt.vcores[vcoreid].state.load(std::memory_order_relaxed) == kOnline;
}

int max_spare_vcores(void) { return vcore_lib_init() == 0 ? g_rt.max_spares : 0; }

int vcore_request_spare(void) {
  if (vcore_lib_init() != 0) return -1;
  for (;;) {
    int started = g_rt.spares_started.load(std::memory_order_acquire);
    for (int i = 0; i < started; ++i) {
      auto id = static_cast<uint32_t>(g_rt.max_vcores + i);
      if (vcore_bring_online(id)) return static_cast<int>(id);
    }
    // Every spare made so far is online: make the next one (or another
    // caller just did: look again).
    if (!start_next_spare() && g_rt.spares_started.load(std::memory_order_acquire) == started) {
      errno = EBUSY;
      return -1;
    }
  }
}

bool vcore_blocked_in_kernel(uint32_t vcoreid) {
  if (!vcore_is_online(vcoreid)) return false;
  return task_sleeps_in_kernel(g_rt.vcores[vcoreid]);
}

bool vcore_wake(uint32_t vcoreid) {
  if (vcore_lib_init() != 0 ||
      vcoreid >= static_cast<uint32_t>(g_rt.max_vcores + g_rt.spares_started.load()))
    return false;
  return vcore_bring_online(vcoreid);
}

void vcore_set_sched_probe(bool (*has_work)(uint32_t vcoreid)) {
  g_rt.sched_probe.store(has_work, std::memory_order_release);
}

void vcore_set_idle_spin_us(uint32_t usec) {
  g_rt.idle_spin_us.store(usec, std::memory_order_relaxed);
}

int vcore_request(int nr_new_vcores) {
  if (vcore_lib_init() != 0) return -1;
  if (nr_new_vcores < 0 || nr_new_vcores > g_rt.max_vcores) {
    errno = EINVAL;
    return -1;
  }
  int w = g_rt.wanted.load(std::memory_order_relaxed);
  int target;
  do {
    target = w + nr_new_vcores > g_rt.max_vcores ? g_rt.max_vcores : w + nr_new_vcores;
  } while (!g_rt.wanted.compare_exchange_weak(w, target, std::memory_order_seq_cst));
  grant_wanted();
  return 0;
}

int vcore_request_total(int nr_vcores) {
  if (vcore_lib_init() != 0) return -1;
  if (nr_vcores < 0 || nr_vcores > g_rt.max_vcores) {
    errno = EINVAL;
    return -1;
  }
  raise_wanted_to(nr_vcores);
  grant_wanted();
  return 0;
}

void vcore_yield(void) {
  PARLIB_CHECK(tls_in_vcore_context, "vcore_yield outside vcore context");
  Vcore &vc = this_vcore();
  if (is_spare(vc.id)) {
    g_rt.spares_online.fetch_sub(1, std::memory_order_seq_cst);
  } else {
    int w = g_rt.wanted.load(std::memory_order_relaxed);
    while (w > 0 && !g_rt.wanted.compare_exchange_weak(w, w - 1, std::memory_order_seq_cst)) {
    }
    g_rt.num_online.fetch_sub(1, std::memory_order_seq_cst);
  }
  // Going offline, then looking for work, all seq_cst: a sender or
  // requester does the opposite (publishes work or desire, then looks for an
  // offline vcore), so one of the two always sees the other and nothing
  // sent or requested is left behind a sleeping vcore.
  vc.state.store(kOffline, std::memory_order_seq_cst);
  if (!(wanted_back(vc.id) && vcore_bring_online(vc.id))) park_until_online(vc, /*spin=*/true);
  enter_vcore_context(vc);
}

void vcore_reenter(void (*entry)(void)) {
  PARLIB_CHECK(tls_in_vcore_context, "vcore_reenter outside vcore context");
  PARLIB_CHECK(entry != nullptr, "vcore_reenter(NULL)");
  Vcore &vc = this_vcore();
  san::start_switch(nullptr, nullptr, vc.stack_bottom, vc.stack_size);
  parlib_call_on_stack(
      vc.stack_top(),
      [](void *fn) {
        san::finish_switch(nullptr);
        Vcore &vc = this_vcore();
        san::restart_stack(vc.sanitizer_fiber, &vc.sanitizer_stack_mark);
        reinterpret_cast<void (*)(void)>(fn)();
        raw_fatal("the entry passed to vcore_reenter returned");
      },
      reinterpret_cast<void *>(entry));
}

}  // extern "C"

// Event delivery: per-vcore queues, notifications by SIGUSR1, safe points.
// See include/parlib/event.h for the contract and docs/design.md
// ("Events and notifications") for the reasoning.
#include <parlib/event.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>

#include <link.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "common/cache_line.h"
#include "common/hook_list.h"
#include "common/raw_log.h"
#include "event/event_internal.h"
#include "event/stall.h"
#include "event/event_queue.h"
#include "event/foreign_call.h"
#include "uthread/uthread_internal.h"
#include "vcore/vcore_internal.h"

extern "C" {
PARLIB_API handle_event_t ev_handlers[MAX_NR_EVENT];
}

namespace parlib::detail {

void (*g_reap_syscalls_hook)() = nullptr;

namespace {

HookList<void (*)(), 2> g_lib_init_hooks;  // add_event_lib_init_hook

// The event layer starts with the uthread layer: uthread_lib_init runs
// event_lib_init among its start hooks. Registered at load time, before
// any code can call uthread_lib_init.
[[gnu::constructor]] void start_with_uthread_layer() { add_uthread_lib_init_hook(event_lib_init); }

// Called by the notification handler once the uthread it interrupted at a
// safe point runs again (__parlib_set_resume_hook).
std::atomic<void (*)(struct uthread *)> g_resume_hook{nullptr};

constexpr int kNotifySignal = SIGUSR1;
// A notification put off at an unsafe point is retried after this long,
// doubling up to the maximum while the uthread stays there (e.g. blocked in
// a system call).
constexpr long kRetryFirstNs = 20 * 1000;
constexpr long kRetryMaxNs = 1000 * 1000;

struct alignas(kCacheLineSize) VcoreEvents {
  EventQueue queue;
  std::atomic<bool> notifs_disabled{false};  // disable_notifs(vcoreid)
  timer_t retry_timer{};
  std::atomic<bool> timer_claimed{false};  // create_retry_timer ran (or runs)
  bool have_retry_timer = false;
  // Set by arm_retry, cleared when the timer's signal arrives or a foreign
  // call disarms it; the vcore's own task only (its handler and its
  // uthreads), hence relaxed.
  std::atomic<bool> retry_armed{false};
  long retry_ns = kRetryFirstNs;  // touched only by the vcore's own task
  std::atomic<uint64_t> handled{0};
  std::atomic<uint64_t> notifications{0};
  std::atomic<uint64_t> deferred{0};
};

VcoreEvents *g_events = nullptr;
void handle_events_if_any();
bool on_a_vcore();
int g_nr_vcores = 0;
std::once_flag g_init_once;
struct sigaction g_previous_action;  // what SIGUSR1 did before us

// Code where a notification must not stop a uthread: it may hold locks of
// the C library, the dynamic linker, the C++ runtime or parlib.
struct CodeRange {
  uintptr_t begin, end;
};
constexpr int kMaxUnsafeRanges = 32;
CodeRange g_unsafe[kMaxUnsafeRanges];
int g_num_unsafe = 0;

bool name_has(const char *name, const char *part) { return strstr(name, part) != nullptr; }

int collect_unsafe_ranges(dl_phdr_info *info, size_t, void *self_addr) {
  const char *name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  bool unsafe = name_has(name, "/libc.so") || name_has(name, "/ld-linux") ||
                name_has(name, "libstdc++") || name_has(name, "libgcc_s") ||
                name_has(name, "libasan") || name_has(name, "libubsan") ||
                name_has(name, "libm.so");
  bool contains_self = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr) &ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    uintptr_t self = reinterpret_cast<uintptr_t>(self_addr);
    if (self >= begin && self < begin + ph.p_memsz) contains_self = true;
  }
  if (!unsafe && !contains_self) return 0;
  for (int i = 0; i < info->dlpi_phnum && g_num_unsafe < kMaxUnsafeRanges; ++i) {
    const ElfW(Phdr) &ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    g_unsafe[g_num_unsafe++] = CodeRange{begin, begin + ph.p_memsz};
  }
  return 0;
}

bool is_safe_point(uintptr_t pc) {
  for (int i = 0; i < g_num_unsafe; ++i)
    if (pc >= g_unsafe[i].begin && pc < g_unsafe[i].end) return false;
  return true;
}

void arm_retry(VcoreEvents &ev) {
  if (!ev.have_retry_timer) return;
  itimerspec when{};
  when.it_value.tv_nsec = ev.retry_ns;
  ev.retry_ns = ev.retry_ns * 2 > kRetryMaxNs ? kRetryMaxNs : ev.retry_ns * 2;
  ev.retry_armed.store(true, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  timer_settime(ev.retry_timer, 0, &when, nullptr);
}

void forward_to_previous(int sig, siginfo_t *info, void *uctx) {
  const struct sigaction &prev = g_previous_action;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction != nullptr) prev.sa_sigaction(sig, info, uctx);
  } else if (prev.sa_handler != SIG_IGN && prev.sa_handler != SIG_DFL) {
    prev.sa_handler(sig);
  }
}

// The notification handler. It runs on the interrupted context's stack:
// for a uthread, its own stack, where the kernel's signal frame keeps the
// full register and extended state. Interrupting the uthread is a switch to
// vcore context from inside this handler; resuming it later (on any vcore)
// switches back here, and the handler's return (rt_sigreturn) restores
// everything else exactly.
void on_notify(int sig, siginfo_t *info, void *uctx) {
  int saved_errno = errno;
  int target = runtime_signal_vcore(info);
  if (target < 0) {
    forward_to_previous(sig, info, uctx);
    errno = saved_errno;
    return;
  }
  runtime_signal_arrived(static_cast<uint32_t>(target), info);
  if (info->si_code == SI_TIMER)  // one-shot: it has expired
    g_events[target].retry_armed.store(false, std::memory_order_relaxed);
  struct uthread *uth = current_uthread;
  // Vcore context handles notif_pending before it leaves; a task that is no
  // vcore (thread0's parked main task blocks the signal) has nothing to do.
  if (tls_in_vcore_context || uth == nullptr) return;
  if (tls_vcoreid >= static_cast<uint32_t>(g_nr_vcores)) return;
  Vcore &vc = this_vcore();
  // Only a vcore's own task acts on a notification: the per-vcore retry
  // timer and state below belong to it.
  if (vc.tid.load(std::memory_order_relaxed) != static_cast<pid_t>(syscall(SYS_gettid))) return;
  VcoreEvents &ev = g_events[vc.id];
  auto *uc = static_cast<ucontext_t *>(uctx);
  const auto pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  if (g_stall_detector_on.load(std::memory_order_relaxed) && is_safe_point(pc))
    stall_report_due(vc.id, uth, pc);
  if (!vc.notif_pending.load(std::memory_order_seq_cst)) return;
  if (uth->notif_disabled_depth_ > 0 || ev.notifs_disabled.load(std::memory_order_relaxed)) {
    ev.deferred.fetch_add(1, std::memory_order_relaxed);
    return;  // re-enabling delivers it
  }
  if (!is_safe_point(pc)) {
    ev.deferred.fetch_add(1, std::memory_order_relaxed);
    arm_retry(ev);
    return;
  }
  ev.retry_ns = kRetryFirstNs;
  ev.notifications.fetch_add(1, std::memory_order_relaxed);
  for (;;) {
    uth->notif_disabled_depth_ = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    uthread_yield_interrupted(uth);
    // Resumed, maybe by another vcore's task: rt_sigreturn would install
    // the first task's alternate signal stack on this one; keep this task's.
    stack_t here;
    if (sigaltstack(nullptr, &here) == 0) uc->uc_stack = here;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    uth->notif_disabled_depth_ = 0;
    // Resumed by a direct switch: one deferred meanwhile is delivered now
    // (see deliver_deferred_notification).
    if (g_events[tls_vcoreid].notifs_disabled.load(std::memory_order_relaxed) ||
        !this_vcore().notif_pending.load(std::memory_order_seq_cst))
      break;
    g_events[tls_vcoreid].notifications.fetch_add(1, std::memory_order_relaxed);
  }
  errno = saved_errno;
  // Still a safe point, in the interrupted uthread with notifications on:
  // the hook may leave the handler for good, unwinding through the signal
  // frame into the interrupted code (asynchronous cancellation).
  if (auto hook = g_resume_hook.load(std::memory_order_relaxed)) hook(uth);
}

// A notification arrived while the calling uthread had notifications
// disabled; it re-enabled them: deliver now, as if interrupted here.
// Again after each resume: a uthread resumed by a direct switch
// (uthread_switch_to) first ran the previous thread's hand-off with
// notifications off, and a notification that came meanwhile was deferred;
// nothing else would deliver it, since notify() signals only the first
// sender after the vcore last drained, and the vcore's preemption tick
// (whose alarm re-arms only when its event is handled) would stop for good.
void deliver_deferred_notification() {
  struct uthread *uth = current_uthread;
  if (tls_in_vcore_context || uth == nullptr || uth->notif_disabled_depth_ != 0) return;
  while (!g_events[tls_vcoreid].notifs_disabled.load(std::memory_order_relaxed) &&
         this_vcore().notif_pending.load(std::memory_order_seq_cst)) {
    uth->notif_disabled_depth_ = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    g_events[tls_vcoreid].notifications.fetch_add(1, std::memory_order_relaxed);
    uthread_yield_interrupted(uth);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    uth->notif_disabled_depth_ = 0;
  }
}

bool vcore_has_events(uint32_t id) { return g_events[id].queue.has_messages(); }

void notify(uint32_t id) {
  // A vcore that is offline is simply started: vcore_entry handles events
  // first. If it is going offline right now, its yield sees the message
  // (vcore_yield probes the queue after publishing kOffline).
  if (vcore_bring_online(id)) return;
  Vcore &vc = vcore_of(id);
  // Only the first sender since the vcore last drained signals it.
  if (vc.notif_pending.exchange(true, std::memory_order_seq_cst)) return;
  if (g_events[id].notifs_disabled.load(std::memory_order_relaxed)) return;
  // On our own vcore no signal is needed: vcore context handles pending
  // events before it leaves, and a uthread (which holds notifications off
  // inside send_event) gets them when its depth returns to zero.
  if (on_a_vcore() && tls_vcoreid == id) return;
  // Not sent to a task inside a foreign call: the call's end delivers it.
  signal_vcore_task(id);
}

void create_retry_timer(uint32_t id) {
  VcoreEvents &ev = g_events[id];
  if (ev.timer_claimed.exchange(true, std::memory_order_acq_rel)) return;  // made already
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = kNotifySignal;
  sev.sigev_value.sival_ptr = runtime_signal_cookie(id);
  sev._sigev_un._tid = vcore_of(id).tid.load();
  ev.have_retry_timer = timer_create(CLOCK_MONOTONIC, &sev, &ev.retry_timer) == 0;
}

void init_events() {
  if (vcore_lib_init() != 0)
    raw_fatal("event_lib_init: vcore_lib_init failed: %s", strerror(errno));
  g_nr_vcores = max_vcores() + max_spare_vcores();  // spares get events too
  void *mem =
      aligned_alloc(alignof(VcoreEvents), sizeof(VcoreEvents) * static_cast<size_t>(g_nr_vcores));
  if (mem == nullptr) raw_fatal("event_lib_init: out of memory");
  auto *events = static_cast<VcoreEvents *>(mem);
  for (int i = 0; i < g_nr_vcores; ++i) new (&events[i]) VcoreEvents;
  foreign_gates_init(g_nr_vcores);
  g_events = events;
  // Spare vcores' tasks come later: each makes its timer as it starts.
  add_vcore_task_hook(create_retry_timer);
  for (int i = 0; i < g_nr_vcores; ++i) {
    pid_t tid = vcore_of(static_cast<uint32_t>(i)).tid.load(std::memory_order_seq_cst);
    if (tid != 0) create_retry_timer(static_cast<uint32_t>(i));
  }
  dl_iterate_phdr(collect_unsafe_ranges, reinterpret_cast<void *>(&on_notify));
  g_lib_init_hooks.run();

  struct sigaction sa {};
  sa.sa_sigaction = on_notify;
  // SA_NODEFER: the handler switches away and may not return on this task
  // for a long time, so delivery must not leave the signal blocked here. A
  // nested notification finds the handler's own code unsafe and is retried.
  // SA_RESTART: a uthread blocked in a system call is not disturbed.
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(kNotifySignal, &sa, &g_previous_action);

  set_vcore_work_probe(vcore_has_events);
  g_notif_pending_hook = deliver_deferred_notification;
  add_vcore_context_hook(handle_events_if_any);
  init_stall_detector();
}

bool on_a_vcore() { return tls_in_vcore_context || current_uthread != nullptr; }

// vcore context's check on its way into and out of the scheduler: plain
// loads unless there is something to do. A message whose notification this
// misses still reaches the vcore: its sender set notif_pending or woke the
// vcore, and vcore_yield probes the queue before sleeping.
void handle_events_if_any() {
  uint32_t id = tls_vcoreid;
  if (vcore_of(id).notif_pending.load(std::memory_order_relaxed) ||
      g_events[id].queue.has_messages())
    handle_events();
}

}  // namespace

void add_event_lib_init_hook(void (*hook)()) {
  g_lib_init_hooks.add(hook, "add_event_lib_init_hook");
}

}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

void event_lib_init(void) { std::call_once(g_init_once, init_events); }

// For libupthread-preload.so (PARLIB_PRIVATE): see g_resume_hook.
PARLIB_API void __parlib_set_resume_hook(void (*hook)(struct uthread *)) {
  g_resume_hook.store(hook, std::memory_order_relaxed);
}

int send_event(struct event_msg *msg, unsigned int ev_type, uint32_t vcoreid) {
  // The public contract: ids of the vcores the process can request. The
  // runtime's own senders reach spare vcores through send_event_to_any.
  if (vcoreid >= static_cast<uint32_t>(max_vcores())) {
    errno = EINVAL;
    return -1;
  }
  return send_event_to_any(msg, ev_type, vcoreid);
}

}  // extern "C"

bool parlib::detail::disarm_retry_timer(uint32_t id) {
  VcoreEvents &ev = g_events[id];
  if (!ev.retry_armed.load(std::memory_order_relaxed)) return false;
  itimerspec off{};
  timer_settime(ev.retry_timer, 0, &off, nullptr);
  ev.retry_armed.store(false, std::memory_order_relaxed);
  return true;
}

int parlib::detail::send_event_to_any(struct event_msg *msg, unsigned int ev_type,
                                      uint32_t vcoreid) {
  if (g_events == nullptr) event_lib_init();
  if (msg == nullptr || ev_type >= MAX_NR_EVENT ||
      __atomic_load_n(&ev_handlers[ev_type], __ATOMIC_ACQUIRE) == nullptr ||
      vcoreid >= static_cast<uint32_t>(g_nr_vcores)) {
    errno = EINVAL;
    return -1;
  }
  // A uthread must not be stopped between the two steps of push(): the
  // consumer could not get past its half-linked node until it ran again.
  uth_disable_notifs();
  EventNode *node = event_node_alloc();
  if (node == nullptr) {
    uth_enable_notifs();
    errno = ENOMEM;
    return -1;
  }
  node->msg = *msg;
  node->msg.ev_type = static_cast<uint16_t>(ev_type);
  g_events[vcoreid].queue.push(node);
  notify(vcoreid);
  uth_enable_notifs();
  return 0;
}

extern "C" {

void handle_events(void) {
  if (g_events == nullptr || !on_a_vcore()) return;
  uth_disable_notifs();  // uthread context: stay on this vcore meanwhile
  uint32_t id = tls_vcoreid;
  Vcore &vc = vcore_of(id);
  VcoreEvents &ev = g_events[id];
  // Clear first: a message queued after this point notifies again.
  if (vc.notif_pending.load(std::memory_order_relaxed))
    vc.notif_pending.store(false, std::memory_order_seq_cst);
  while (EventNode *node = ev.queue.pop()) {
    struct event_msg msg = node->msg;
    event_node_free(node);
    unsigned type = msg.ev_type;
    handle_event_t handler = __atomic_load_n(&ev_handlers[type], __ATOMIC_ACQUIRE);
    if (handler != nullptr) handler(&msg, type);
    ev.handled.fetch_add(1, std::memory_order_relaxed);
  }
  if (g_reap_syscalls_hook != nullptr) g_reap_syscalls_hook();
  uth_enable_notifs();
}

void enable_notifs(uint32_t vcoreid) {
  if (g_events == nullptr || vcoreid >= static_cast<uint32_t>(g_nr_vcores)) return;
  g_events[vcoreid].notifs_disabled.store(false, std::memory_order_seq_cst);
  Vcore &vc = vcore_of(vcoreid);
  if (!vc.notif_pending.load(std::memory_order_seq_cst)) return;
  if (on_a_vcore() && tls_vcoreid == vcoreid) {
    if (!tls_in_vcore_context) deliver_deferred_notification();
  } else {
    signal_vcore_task(vcoreid);
  }
}

void disable_notifs(uint32_t vcoreid) {
  if (g_events == nullptr || vcoreid >= static_cast<uint32_t>(g_nr_vcores)) return;
  g_events[vcoreid].notifs_disabled.store(true, std::memory_order_seq_cst);
}

int event_get_stats(uint32_t vcoreid, struct event_stats *out) {
  if (g_events == nullptr || out == nullptr || vcoreid >= static_cast<uint32_t>(g_nr_vcores)) {
    errno = EINVAL;
    return -1;
  }
  const VcoreEvents &ev = g_events[vcoreid];
  out->handled = ev.handled.load(std::memory_order_relaxed);
  out->notifications = ev.notifications.load(std::memory_order_relaxed);
  out->deferred = ev.deferred.load(std::memory_order_relaxed);
  return 0;
}

}  // extern "C"

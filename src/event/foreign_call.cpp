// The foreign-call gate (foreign_call.h; docs/design.md, "Foreign calls").
//
// One word per vcore: bit 0 says that its task is inside a system call
// made for the program; the rest counts senders that found the bit clear
// and have not yet queued their signal. A sender adds itself with a CAS
// that fails once the bit is set, so after begin() sets the bit and sees
// the count at zero, no signal of the runtime is on its way any more: each
// one sent is already pending on the task (or was delivered). begin() then
// has them delivered, while the uthread holds notifications off, by one
// cheap system call (every return to user mode delivers what is pending),
// but only when one was sent since the last time (sent != arrived) or the
// vcore's retry timer is armed; the common case costs two atomic RMWs on
// a line of the caller's own vcore, and end() one more.
//
// The notification itself is not lost: its sender set notif_pending before
// looking at the word (both seq_cst), and end() clears the bit (seq_cst)
// before uth_enable_notifs() looks at notif_pending.
//
// The program's own signals to the uthread in the call (foreign_call_hold):
// once the 2LS has loaded the uthread's signal mask into the task (the
// enter hook), begin() sets kAccepts; a sender holds the gate (a count in
// the word's top bits, taken with a CAS that needs kAccepts and then
// rechecked against the caller) while it signals the task, and end(),
// which clears kAccepts with bit 0, waits for holders before the exit hook
// takes back what the kernel kept pending and restores the task's mask.
#include "event/foreign_call.h"

#include <parlib/uthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>

#include "common/cache_line.h"
#include "common/raw_log.h"
#include "event/event_internal.h"
#include "uthread/uthread_internal.h"
#include "vcore/vcore_internal.h"

namespace parlib::detail {
namespace {

constexpr int kNotifySignal = SIGUSR1;
constexpr uint32_t kInForeignCall = 1;
constexpr uint32_t kSender = 2;  // bits 1..13: the runtime's senders
constexpr uint32_t kSenderMask = 0x3ffe;
constexpr uint32_t kAccepts = uint32_t{1} << 14;  // the program's signals may be sent
constexpr uint32_t kHolder = uint32_t{1} << 15;   // bits 15..31: their senders
constexpr uint32_t kHolderMask = ~(kHolder - 1);

struct alignas(kCacheLineSize) Gate {
  std::atomic<uint32_t> word{0};
  // The uthread inside the foreign call while bit 0 is set (else null),
  // for foreign_call_kick.
  std::atomic<::uthread *> caller{nullptr};
  // Signals queued to the task, and those whose handler started. Only
  // begin() compares them, with no sender active; it resets arrived.
  std::atomic<uint32_t> sent{0};
  std::atomic<uint32_t> arrived{0};
  // The program's signals sent to the task by holders during this call
  // (bit n-1: signal n), for the exit hook.
  std::atomic<uint64_t> program_sent{0};
};

std::atomic<const ForeignSignalHooks *> g_signal_hooks{nullptr};

Gate *g_gates = nullptr;
int g_nr_gates = 0;
pid_t g_pid = 0;

// Delivers whatever signal is pending on the calling task: the kernel
// does so on the way back from any system call (getppid: no vDSO, no
// side effect). The handler finds notifications held off and returns.
void deliver_pending_signals() { (void)getppid(); }

void wait_for_senders(Gate &g) {
  // A sender is between its CAS and its fetch_sub: one system call.
  for (int spins = 0; (g.word.load(std::memory_order_acquire) & kSenderMask) != 0; ++spins) {
    if (spins < 64)
      __builtin_ia32_pause();
    else
      syscall(SYS_sched_yield);  // it may be preempted on our CPU
  }
}

void wait_for_holders(Gate &g) {
  for (int spins = 0; (g.word.load(std::memory_order_acquire) & kHolderMask) != 0; ++spins) {
    if (spins < 64)
      __builtin_ia32_pause();
    else
      syscall(SYS_sched_yield);
  }
}

void queue_runtime_signal(Gate &g, uint32_t id) {
  g.sent.fetch_add(1, std::memory_order_relaxed);
  // rt_tgsigqueueinfo rather than tgkill: the si_value names the vcore, so
  // the handler tells the runtime's signals from the program's SIGUSR1s
  // (a tgkill of the program's has SI_TKILL and our pid too).
  siginfo_t si{};
  si.si_signo = kNotifySignal;
  si.si_code = SI_QUEUE;
  si.si_pid = g_pid;
  si.si_uid = 0;
  si.si_value.sival_ptr = &g;
  syscall(SYS_rt_tgsigqueueinfo, g_pid, vcore_of(id).tid.load(std::memory_order_acquire),
          kNotifySignal, &si);
}

}  // namespace

void foreign_gates_init(int n) {
  void *mem = aligned_alloc(alignof(Gate), sizeof(Gate) * static_cast<size_t>(n));
  if (mem == nullptr) raw_fatal("event_lib_init: out of memory");
  auto *gates = static_cast<Gate *>(mem);
  for (int i = 0; i < n; ++i) new (&gates[i]) Gate;
  g_pid = getpid();
  g_nr_gates = n;
  g_gates = gates;
}

void *runtime_signal_cookie(uint32_t id) { return &g_gates[id]; }

int runtime_signal_vcore(const siginfo_t *info) {
  if (info->si_code != SI_QUEUE && info->si_code != SI_TIMER) return -1;
  auto p = reinterpret_cast<uintptr_t>(info->si_value.sival_ptr);
  auto base = reinterpret_cast<uintptr_t>(g_gates);
  if (g_gates == nullptr || p < base ||
      p >= base + sizeof(Gate) * static_cast<size_t>(g_nr_gates) || (p - base) % sizeof(Gate) != 0)
    return -1;
  // A timer's signal comes from the kernel; a queued one names its sender.
  if (info->si_code == SI_QUEUE && info->si_pid != g_pid) return -1;
  return static_cast<int>((p - base) / sizeof(Gate));
}

void runtime_signal_arrived(uint32_t id, const siginfo_t *info) {
  if (info->si_code == SI_QUEUE) g_gates[id].arrived.fetch_add(1, std::memory_order_relaxed);
}

bool signal_vcore_task(uint32_t id) {
  Gate &g = g_gates[id];
  // seq_cst: ordered after the caller's store to notif_pending (see top).
  uint32_t w = g.word.load(std::memory_order_seq_cst);
  do {
    if (w & kInForeignCall) return false;
  } while (!g.word.compare_exchange_weak(w, w + kSender, std::memory_order_seq_cst));
  queue_runtime_signal(g, id);
  // release: begin() reads sent after it sees the sender gone.
  g.word.fetch_sub(kSender, std::memory_order_release);
  return true;
}

int foreign_call_begin() {
  if (g_gates == nullptr || tls_in_vcore_context) return 0;
  struct uthread *uth = current_uthread;
  if (uth == nullptr) return 0;
  int saved_errno = errno;  // a successful call leaves errno alone
  uth_disable_notifs();     // from here on the uthread stays on this vcore
  for (;;) {
    uint32_t id = tls_vcoreid;
    Gate &g = g_gates[id];
    // Set already: by this uthread, in an enclosing call (only the vcore's
    // current uthread sets or clears it, and it holds the vcore).
    if (g.word.load(std::memory_order_relaxed) & kInForeignCall) {
      errno = saved_errno;
      return 1;
    }
    g.word.fetch_or(kInForeignCall, std::memory_order_seq_cst);
    g.caller.store(uth, std::memory_order_release);
    wait_for_senders(g);
    bool pending = disarm_retry_timer(id);
    uint32_t sent = g.sent.load(std::memory_order_relaxed);
    if (sent != g.arrived.load(std::memory_order_relaxed)) pending = true;
    if (pending) {
      deliver_pending_signals();
      // All delivered now (one merged into a pending SIGUSR1 of the
      // program's never arrives by itself: this forgets it).
      g.arrived.store(sent, std::memory_order_relaxed);
    }
    // A notification that came first is taken before a wait that may be
    // long, when this is the outermost hold (else enabling defers it).
    if (uth->notif_disabled_depth_ != 1 ||
        !this_vcore().notif_pending.load(std::memory_order_seq_cst)) {
      if (const ForeignSignalHooks *h = g_signal_hooks.load(std::memory_order_acquire)) {
        h->enter(uth);
        // seq_cst: a sender marks its signal pending on the uthread before
        // it looks for kAccepts; accepted() looks at those after this.
        g.word.fetch_or(kAccepts, std::memory_order_seq_cst);
        h->accepted(uth, vcore_of(id).tid.load(std::memory_order_relaxed));
      }
      errno = saved_errno;
      return 2;
    }
    g.caller.store(nullptr, std::memory_order_relaxed);
    g.word.fetch_and(~kInForeignCall, std::memory_order_seq_cst);
    uth_enable_notifs();  // runs it; the uthread may come back on another vcore
    uth_disable_notifs();
  }
}

void foreign_call_end(int token) {
  if (token == 0) return;
  int saved_errno = errno;  // the call's
  if (token == 2) {
    Gate &g = g_gates[tls_vcoreid];
    g.caller.store(nullptr, std::memory_order_seq_cst);
    uint32_t w = g.word.fetch_and(~(kInForeignCall | kAccepts), std::memory_order_seq_cst);
    if (w & kAccepts) {
      // Each holder's signal is on the task once it lets go.
      if (w & kHolderMask) wait_for_holders(g);
      uint64_t sent = g.program_sent.load(std::memory_order_relaxed) != 0
                          ? g.program_sent.exchange(0, std::memory_order_acquire)
                          : 0;
      g_signal_hooks.load(std::memory_order_relaxed)->exit(current_uthread, sent);
    }
  }
  uth_enable_notifs();  // delivers a notification that came meanwhile
  errno = saved_errno;
}

pid_t foreign_call_hold(::uthread *uth, int *gate) {
  for (int i = 0; i < g_nr_gates; ++i) {
    Gate &g = g_gates[i];
    if (g.caller.load(std::memory_order_seq_cst) != uth) continue;
    uint32_t w = g.word.load(std::memory_order_seq_cst);
    do {
      if (!(w & kAccepts)) return 0;
    } while (!g.word.compare_exchange_weak(w, w + kHolder, std::memory_order_seq_cst));
    // The call seen may have ended and another begun (the word looks the
    // same): while held, the current one cannot end; is it uth's?
    if (g.caller.load(std::memory_order_seq_cst) != uth) {
      g.word.fetch_sub(kHolder, std::memory_order_release);
      return 0;
    }
    *gate = i;
    return vcore_of(static_cast<uint32_t>(i)).tid.load(std::memory_order_relaxed);
  }
  return 0;
}

void foreign_call_release(int gate, int sig) {
  Gate &g = g_gates[gate];
  if (sig > 0) g.program_sent.fetch_or(uint64_t{1} << (sig - 1), std::memory_order_relaxed);
  g.word.fetch_sub(kHolder, std::memory_order_release);
}

void foreign_call_set_signal_hooks(const ForeignSignalHooks *hooks) {
  g_signal_hooks.store(hooks, std::memory_order_release);
}

}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

PARLIB_API int __parlib_foreign_call_begin(void) { return foreign_call_begin(); }
PARLIB_API void __parlib_foreign_call_end(int token) { foreign_call_end(token); }
PARLIB_API pid_t __parlib_foreign_call_hold(::uthread *uth, int *gate) {
  return foreign_call_hold(uth, gate);
}
PARLIB_API void __parlib_foreign_call_release(int gate, int sig) {
  foreign_call_release(gate, sig);
}
PARLIB_API void __parlib_foreign_call_set_signal_hooks(const ForeignSignalHooks *hooks) {
  foreign_call_set_signal_hooks(hooks);
}
PARLIB_API int __parlib_is_runtime_signal(const siginfo_t *info) {
  return runtime_signal_vcore(info) >= 0;
}

}  // extern "C"

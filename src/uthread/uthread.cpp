// Uthreads: creation, the switch into and out of vcore context, and the
// calls into the 2LS. See docs/design.md ("Uthreads", "Context switch").
//
// A yield from uthread A to uthread B goes A -> vcore context -> B: two
// register switches and two FS-base writes, because vcore context runs on
// the vcore's own TLS (where the 2LS keeps its per-vcore state) and that
// TLS differs from A's and B's. Everything else on the path is plain loads
// and stores; see bench/ctxswitch for the measured cost.
#include <linux/futex.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "common/hook_list.h"
#include "common/raw_log.h"
#include "common/sanitizer_fiber.h"
#include "uthread/cputime.h"
#include "uthread/debug_registry.h"
#include "uthread/setxid.h"
#include "uthread/tls.h"
#include "uthread/uthread_internal.h"
#include "vcore/vcore_internal.h"

extern "C" {
void __ctype_init(void);  // glibc (GLIBC_PRIVATE), what start_thread calls
PARLIB_API struct schedule_ops *sched_ops = nullptr;
PARLIB_API __thread struct uthread *current_uthread = nullptr;
void destroy_dtls(void);
}

namespace parlib::detail {

void (*g_notif_pending_hook)() = nullptr;

namespace {

// The hooks of the layers above (see uthread_internal.h).
HookList<void (*)(), 2> g_lib_init_hooks;
HookList<void (*)(), 4> g_vcore_context_hooks;

constexpr size_t kMinUthreadStack = 16 << 10;

std::atomic<bool> g_uthread_lib_started{false};

// Offsets of this library's TLS variables from the thread pointer, used to
// set them in a uthread's TCB before it runs.
ptrdiff_t g_off_current_uthread = 0;
ptrdiff_t g_off_vcoreid = 0;

// The main kernel task parks on this stack once thread0 has moved to a
// vcore; it never runs application code again.
#ifdef PARLIB_ASAN
constexpr size_t kParkStackSize = 256 << 10;
#else
constexpr size_t kParkStackSize = 32 << 10;
#endif
alignas(64) char g_park_stack[kParkStackSize];

struct YieldRequest {
  struct uthread *uth;
  void (*func)(struct uthread *, void *);
  void *arg;
  bool saved;
  // A notification (or a deferred one at uth_enable_notifs) stopped uth:
  // it stays current_uthread, and vcore_entry resumes it after the events.
  bool interrupted;
};

const char *state_name(uint32_t s) {
  switch (s) {
    case kUthCreated:
      return "created";
    case kUthRunning:
      return "running";
    case kUthStopped:
      return "stopped";
    case kUthRunnable:
      return "runnable";
    case kUthBlocked:
      return "blocked";
    case kUthExited:
      return "exited";
  }
  return "corrupt";
}

const char *name_of(struct uthread *uth) { return uth->name_ != nullptr ? uth->name_ : "unnamed"; }

bool describe_current_stack(StackDescription *out) {
  if (tls_in_vcore_context) return false;
  struct uthread *uth = current_uthread;
  if (uth == nullptr || uth->stack_bottom_ == nullptr) return false;
  *out = StackDescription{uth->stack_bottom_, uth->stack_size_, uth, name_of(uth)};
  return true;
}

// In the child of a fork made by a uthread, the only task is a copy of the
// vcore's task, and its rseq registration (inherited) names the area in
// that task's own TCB, at the top of the stack glibc gave it. glibc's fork
// hands every other thread's stack to the child's stack cache, the vcore
// task's included (its TCB is not the running one: the uthread's is), and
// unmaps cached stacks once they pass its limit (40 MB): the kernel's next
// write of the CPU number into the area then kills the child with SIGSEGV.
// So the child unregisters it (the uthread's TCB says "not registered", and
// sched_getcpu() asks the kernel).
void forget_vcore_rseq_in_child() {
  if (tls_in_vcore_context || current_uthread == nullptr) return;
  tls::detach_from_kernel_task(this_vcore().tcb);
}

void init_uthread_layer() {
  tls::init();
  setxid::init();
  pthread_atfork(nullptr, nullptr, forget_vcore_rseq_in_child);
  g_off_current_uthread = tls_offset_of(&current_uthread);
  g_off_vcoreid = tls_offset_of(&tls_vcoreid);
  debug_registry_init(g_off_vcoreid);
  set_stack_describer(describe_current_stack);
  // Vcore context starts in vcore_entry from now on.
  set_vcore_context_entry(vcore_entry);
}

// Runs on the park stack of the main kernel task: hands thread0 (saved just
// before) to a vcore and parks the task for good.
[[noreturn]] void hand_over_thread0(void *arg) {
  san::finish_switch(nullptr);
  auto *thread0 = static_cast<struct uthread *>(arg);
  // This task keeps thread0's TCB loaded while thread0 runs elsewhere, so it
  // must never run a signal handler again (but glibc's SIGSETXID handler,
  // which no mask blocks: setxid.cpp sees to it).
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, nullptr);
  tls::detach_from_kernel_task(thread0->tls_);
  uth_state(thread0).store(kUthStopped, std::memory_order_release);
  for (uint32_t id = 0;; id = (id + 1) % static_cast<uint32_t>(max_vcores())) {
    Vcore &vc = vcore_of(id);
    vc.handoff.store(thread0, std::memory_order_release);
    if (vcore_bring_online(id)) break;
    // Already online: take the handoff back unless its vcore_entry got it.
    if (vc.handoff.exchange(nullptr, std::memory_order_acq_rel) == nullptr) break;
  }
  setxid::park_main_task();
}

// A uthread starts running on vc: a scheduling point for the stall
// detector, unless uth merely resumes after a notification interrupted it
// (it never left: vc.running still names it). Plain stores: only vc's own
// task writes these.
inline void note_running(Vcore &vc, struct uthread *uth) {
  if (vc.running.load(std::memory_order_relaxed) == uth) return;
  vc.running.store(uth, std::memory_order_relaxed);
  vc.runs.store(vc.runs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

[[noreturn]] void switch_to_uthread(Vcore &vc, struct uthread *uth) {
  note_running(vc, uth);
  san::start_switch(nullptr, uth->sanitizer_, uth->stack_bottom_, uth->stack_size_);
  san::move_tls(vc.tcb, uth->tls_);
  write_thread_pointer(uth->tls_);
  parlib_ctx_restore(arch_ctx(uth));
}

// The second half of a yield, in vcore context proper: the FS base already
// points at the vcore's TLS. Kept out of line so that no TLS address
// computed under the uthread's FS base is reused here.
[[noreturn]] __attribute__((noinline)) void finish_yield(YieldRequest req) {
  san::finish_switch(nullptr);
  if constexpr (san::kTsan) {
    Vcore &vc = this_vcore();
    san::restart_stack(vc.sanitizer_fiber, &vc.sanitizer_stack_mark);
  }
  if (req.interrupted) {
    current_uthread = req.uth;
    uth_state(req.uth).store(kUthStopped, std::memory_order_release);
    vcore_entry();
  }
  current_uthread = nullptr;
  // An exiting uthread leaves the debuggers' list while it is still ours.
  if (!req.saved) debug_registry_remove(req.uth);
  uth_state(req.uth).store(req.saved ? kUthStopped : kUthExited, std::memory_order_release);
  // From here on req.uth may be made runnable and run on another vcore: this
  // vcore must not touch it after the callback.
  if (req.func != nullptr)
    req.func(req.uth, req.arg);
  else
    uthread_paused(req.uth);
  vcore_entry();
}

// First half of a yield, on the vcore's stack but still on the uthread's TLS.
__attribute__((noinline)) void yield_on_vcore_stack(void *p) {
  // Copy the request: once the callback publishes the uthread, its stack
  // (where *p lives) may be running again on another vcore.
  YieldRequest req = *static_cast<YieldRequest *>(p);
  Vcore &vc = this_vcore();
  cputime::switch_point(vc, nullptr);  // before the callback publishes req.uth
  // The uthread gave the vcore up (a notification's interruption does not
  // count: the stall detector still sees it here).
  if (!req.interrupted) vc.running.store(nullptr, std::memory_order_relaxed);
  san::move_tls(req.uth->tls_, vc.tcb);
  write_thread_pointer(vc.tcb);
  finish_yield(req);
}

// Runs what a direct switch (uthread_switch_to) left for the uthread now
// running on this vcore: every way a uthread resumes passes here.
inline void finish_direct_switch() {
  Vcore &vc = this_vcore();
  void (*after)(struct uthread *, void *) = vc.switch_after;
  if (after == nullptr) return;
  vc.switch_after = nullptr;
  struct uthread *self = current_uthread;
  // The 2LS's callback takes its queue locks: hold notifications off (a
  // fresh uthread starts with them enabled).
  self->notif_disabled_depth_++;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  after(vc.switch_prev, vc.switch_arg);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  self->notif_disabled_depth_--;
}

// Switches register state and TLS from prev to next. Out of line, with no
// TLS access between the FS-base write and the switch.
__attribute__((noinline)) void direct_switch(ArchContext *save, const ArchContext *load,
                                             void *tls) {
  write_thread_pointer(tls);
  parlib_ctx_swap(save, load);
}

void uthread_start(void *arg) {
  san::finish_switch(nullptr);
  auto *uth = static_cast<struct uthread *>(arg);
  finish_direct_switch();
  // A notification that came during a direct switch to this fresh uthread
  // was left pending (the switching thread had them off); nothing else
  // would deliver it before this thread next switches (a preemption tick,
  // for one, whose alarm re-arms only when its event is handled).
  if (g_notif_pending_hook != nullptr && this_vcore().notif_pending.load(std::memory_order_relaxed))
    g_notif_pending_hook();
  // glibc points each new thread's ctype TLS (the tables behind isalpha,
  // toupper, and the printing of floating-point numbers) at the locale's
  // tables in start_thread; a fresh TCB has them NULL until this call.
  __ctype_init();
  uth->entry_();
  raw_fatal(
      "uthread %p (%s): its entry function returned; a 2LS exits a uthread with "
      "uthread_yield(false, ...)",
      static_cast<void *>(uth), name_of(uth));
}

}  // namespace

void uthread_yield_interrupted(struct uthread *uth) {
  // The caller set notif_disabled_depth_ for the switch; the resume path
  // below restores it.
  Vcore &vc = this_vcore();
  YieldRequest req{uth, nullptr, nullptr, true, true};
  san::start_switch(&uth->sanitizer_, vc.sanitizer_fiber, vc.stack_bottom, vc.stack_size);
  parlib_ctx_save_and_call(arch_ctx(uth), vc.stack_top(), yield_on_vcore_stack, &req);
  san::finish_switch(uth->sanitizer_);
  finish_direct_switch();
}

namespace {

void check_state(struct uthread *uth, uint32_t allowed, const char *what) {
  uint32_t s = uth_state(uth).load(std::memory_order_relaxed);
  if (s > kUthExited || !(allowed & (1u << s)))
    raw_fatal("%s: uthread %p (%s) is %s", what, static_cast<void *>(uth), name_of(uth),
              state_name(s));
}

// Moves uth from one of the states in allowed (a bit mask of 1 << state) to
// next; aborts naming the call and the state when uth is in another.
void transition(struct uthread *uth, uint32_t allowed, uint32_t next, const char *what) {
  std::atomic_ref<uint32_t> state = uth_state(uth);
  uint32_t s = state.load(std::memory_order_acquire);
  do {
    if (s > kUthExited || !(allowed & (1u << s)))
      raw_fatal("%s: uthread %p (%s) is %s", what, static_cast<void *>(uth), name_of(uth),
                state_name(s));
  } while (!state.compare_exchange_weak(s, next, std::memory_order_acq_rel));
}

}  // namespace
}  // namespace parlib::detail

namespace parlib::detail {

void add_uthread_lib_init_hook(void (*hook)()) {
  g_lib_init_hooks.add(hook, "add_uthread_lib_init_hook");
}
void add_vcore_context_hook(void (*hook)()) {
  g_vcore_context_hooks.add(hook, "add_vcore_context_hook");
}

}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

void uthread_lib_init(struct uthread *thread0) {
  PARLIB_CHECK(thread0 != nullptr, "uthread_lib_init(NULL)");
  PARLIB_CHECK(sched_ops != nullptr, "set sched_ops before calling uthread_lib_init");
  PARLIB_CHECK(!in_vcore_context(), "uthread_lib_init from vcore context");
  bool expected = false;
  PARLIB_CHECK(g_uthread_lib_started.compare_exchange_strong(expected, true),
               "uthread_lib_init called twice");
  if (vcore_lib_init() != 0) raw_fatal("vcore_lib_init failed: %s", strerror(errno));
  init_uthread_layer();
  g_lib_init_hooks.run();

  memset(thread0, 0, sizeof *thread0);
  thread0->tls_ = read_thread_pointer();
  thread0->flags_ = kUthFlagThread0;
  thread0->name_ = "thread0";
  debug_registry_add(thread0);
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &thread0->stack_bottom_, &thread0->stack_size_);
    pthread_attr_destroy(&attr);
  }
  current_uthread = thread0;  // main's TLS is thread0's from now on
  uth_state(thread0).store(kUthRunning, std::memory_order_relaxed);
  thread0->notif_disabled_depth_ = 1;
  // TSan: the main task's own state goes on as thread0's fiber; the main
  // task parks on a fiber of its own.
  thread0->sanitizer_ = san::current_fiber();
  san::start_switch(&thread0->sanitizer_, san::create_fiber(), g_park_stack, kParkStackSize);
  parlib_ctx_save_and_call(arch_ctx(thread0), g_park_stack + kParkStackSize, hand_over_thread0,
                           thread0);
  // Here thread0 runs on a vcore.
  san::finish_switch(thread0->sanitizer_);
  thread0->notif_disabled_depth_ = 0;
}

void uthread_init(struct uthread *uth) {
  PARLIB_CHECK(uth != nullptr, "uthread_init(NULL)");
  PARLIB_CHECK(g_uthread_lib_started.load(std::memory_order_acquire),
               "uthread_init before uthread_lib_init");
  memset(uth, 0, sizeof *uth);
  uth->tls_ = tls::allocate();
  uth->tls_owned_ = 1;
  tls_var_in<struct uthread *>(uth->tls_, g_off_current_uthread) = uth;
  uth->sanitizer_ = san::create_fiber();
  uth_state(uth).store(kUthCreated, std::memory_order_release);
  debug_registry_add(uth);
}

void init_uthread_ctx(struct uthread *uth, void (*entry)(void), void *stack_bottom,
                      size_t stack_size) {
  PARLIB_CHECK(uth != nullptr && entry != nullptr, "init_uthread_ctx: NULL uthread or entry");
  PARLIB_CHECK(stack_bottom != nullptr && stack_size >= kMinUthreadStack,
               "init_uthread_ctx: stack %p of %zu bytes (need at least %zu)", stack_bottom,
               stack_size, kMinUthreadStack);
  uint32_t s = uth_state(uth).load(std::memory_order_acquire);
  PARLIB_CHECK(s != kUthRunning, "init_uthread_ctx on a running uthread");
  uth->stack_bottom_ = stack_bottom;
  uth->stack_size_ = stack_size;
  uth->entry_ = entry;
  make_context(arch_ctx(uth), stack_bottom, stack_size, uthread_start, uth);
}

void uthread_cleanup(struct uthread *uth) {
  PARLIB_CHECK(uth != nullptr, "uthread_cleanup(NULL)");
  uint32_t s = uth_state(uth).load(std::memory_order_acquire);
  PARLIB_CHECK(s != kUthRunning, "uthread_cleanup: uthread %p (%s) is running",
               static_cast<void *>(uth), name_of(uth));
  debug_registry_remove(uth);
  // thread0's fiber is the main task's own state, not ours to end.
  if (san::kTsan && !(uth->flags_ & kUthFlagThread0)) {
    san::destroy_fiber(uth->sanitizer_);
    uth->sanitizer_ = nullptr;
  }
  if (uth->tls_owned_ && uth->tls_ != nullptr)
    tls::release(uth->tls_, (uth->flags_ & kUthFlagRanDestructors) != 0);
  uth->tls_ = nullptr;
  uth->tls_owned_ = 0;
}

void run_uthread(struct uthread *uth) {
  PARLIB_CHECK(tls_in_vcore_context, "run_uthread outside vcore context");
  PARLIB_CHECK(uth != nullptr, "run_uthread(NULL)");
  // Events that arrived while this vcore was in vcore context are handled
  // before it leaves it (their notification found it there and left them).
  // Before uth is marked running: a handler may pause the vcore's current
  // uthread (a preemption tick), and if that is uth (run_current_uthread),
  // the 2LS has it queued now, so this vcore starts over.
  if (!g_vcore_context_hooks.empty()) {
    bool was_current = current_uthread == uth;
    g_vcore_context_hooks.run();
    if (was_current && current_uthread != uth) vcore_reenter(vcore_entry);
  }
  // The 2LS owns uth here (it took it from its queue), so the state needs
  // no read-modify-write: the check catches a 2LS running a thread twice.
  check_state(uth, 1u << kUthCreated | 1u << kUthStopped | 1u << kUthRunnable | 1u << kUthBlocked,
              "run_uthread");
  uth_state(uth).store(kUthRunning, std::memory_order_relaxed);
  Vcore &vc = this_vcore();
  current_uthread = uth;
  tls_var_in<uint32_t>(uth->tls_, g_off_vcoreid) = vc.id;
  cputime::switch_point(vc, uth);
  switch_to_uthread(vc, uth);
}

void run_current_uthread(void) {
  PARLIB_CHECK(tls_in_vcore_context, "run_current_uthread outside vcore context");
  struct uthread *uth = current_uthread;
  PARLIB_CHECK(uth != nullptr, "run_current_uthread: no current uthread");
  run_uthread(uth);
}

void vcore_entry(void) {
  PARLIB_CHECK(tls_in_vcore_context, "vcore_entry outside vcore context");
  Vcore &vc = this_vcore();
  // Only uthread_lib_init hands a uthread over; look before the exchange so
  // the common path pays a plain load, not a locked instruction.
  if (vc.handoff.load(std::memory_order_relaxed) != nullptr)
    if (struct uthread *handed = vc.handoff.exchange(nullptr, std::memory_order_acq_rel)) {
      // TSan finds the running fiber through thread0's TCB, which the main
      // task still has loaded until it parks: thread0 runs once the main
      // task no longer runs TSan-instrumented code.
      if constexpr (san::kTsan)
        while (!setxid::main_task_parked()) cpu_pause();
      current_uthread = handed;
    }
  g_vcore_context_hooks.run();
  if (current_uthread != nullptr) run_current_uthread();
  PARLIB_CHECK(sched_ops != nullptr && sched_ops->sched_entry != nullptr,
               "vcore %u started without a scheduler (sched_ops)", vc.id);
  sched_ops->sched_entry();
  vcore_yield();
  __builtin_unreachable();
}

void uthread_yield(bool save_state, void (*yield_func)(struct uthread *, void *), void *yield_arg) {
  PARLIB_CHECK(!tls_in_vcore_context, "uthread_yield from vcore context");
  struct uthread *uth = current_uthread;
  PARLIB_CHECK(uth != nullptr, "uthread_yield outside a uthread");
  // No notification may interrupt the switch; run_uthread's resume path
  // brings the depth back.
  uth->notif_disabled_depth_++;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  Vcore &vc = this_vcore();
  YieldRequest req{uth, yield_func, yield_arg, save_state, false};
  san::start_switch(save_state ? &uth->sanitizer_ : nullptr, vc.sanitizer_fiber, vc.stack_bottom,
                    vc.stack_size);
  if (!save_state) parlib_call_on_stack(vc.stack_top(), yield_on_vcore_stack, &req);
  parlib_ctx_save_and_call(arch_ctx(uth), vc.stack_top(), yield_on_vcore_stack, &req);
  // Resumed by run_uthread, perhaps on another vcore, or by a direct switch.
  san::finish_switch(uth->sanitizer_);
  finish_direct_switch();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (--uth->notif_disabled_depth_ == 0 && g_notif_pending_hook != nullptr &&
      this_vcore().notif_pending.load(std::memory_order_relaxed))
    g_notif_pending_hook();
}

void uthread_switch_to(struct uthread *next, void (*after)(struct uthread *, void *), void *arg) {
  PARLIB_CHECK(!tls_in_vcore_context, "uthread_switch_to from vcore context");
  struct uthread *self = current_uthread;
  PARLIB_CHECK(self != nullptr, "uthread_switch_to outside a uthread");
  PARLIB_CHECK(next != nullptr && next != self, "uthread_switch_to: bad target %p",
               static_cast<void *>(next));
  // No notification may interrupt the switch; the resume path restores it.
  self->notif_disabled_depth_++;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  check_state(next, 1u << kUthCreated | 1u << kUthStopped | 1u << kUthRunnable | 1u << kUthBlocked,
              "uthread_switch_to");
  uth_state(next).store(kUthRunning, std::memory_order_relaxed);
  Vcore &vc = this_vcore();
  vc.switch_after = after;
  vc.switch_prev = self;
  vc.switch_arg = arg;
  // Nobody else can reach self until after() publishes it, which happens
  // only once its registers are saved below.
  uth_state(self).store(kUthStopped, std::memory_order_release);
  tls_var_in<uint32_t>(next->tls_, g_off_vcoreid) = vc.id;
  // Vcore context's view of what runs here, should a notification enter it.
  tls_var_in<struct uthread *>(vc.tcb, g_off_current_uthread) = next;
  cputime::switch_point(vc, next);
  note_running(vc, next);
  san::start_switch(&self->sanitizer_, next->sanitizer_, next->stack_bottom_, next->stack_size_);
  san::move_tls(self->tls_, next->tls_);
  direct_switch(arch_ctx(self), arch_ctx(next), next->tls_);
  // Resumed (by any of the ways a uthread resumes).
  san::finish_switch(self->sanitizer_);
  finish_direct_switch();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (--self->notif_disabled_depth_ == 0 && g_notif_pending_hook != nullptr &&
      this_vcore().notif_pending.load(std::memory_order_relaxed))
    g_notif_pending_hook();
}

void uthread_has_blocked(struct uthread *uth, int flags) {
  PARLIB_CHECK(uth != nullptr, "uthread_has_blocked(NULL)");
  // A waker may already have made uth runnable (the 2LS published it before
  // calling us); then the state stays as the waker left it.
  uint32_t s = kUthStopped;
  uth_state(uth).compare_exchange_strong(s, kUthBlocked, std::memory_order_acq_rel);
  PARLIB_CHECK(s != kUthRunning || uth != current_uthread || tls_in_vcore_context,
               "uthread_has_blocked on the calling uthread");
  if (sched_ops->thread_has_blocked != nullptr) sched_ops->thread_has_blocked(uth, flags);
}

void uthread_paused(struct uthread *uth) {
  PARLIB_CHECK(uth != nullptr, "uthread_paused(NULL)");
  // Only the vcore that stopped uth (or its creator) pauses it: no race.
  check_state(uth, 1u << kUthStopped | 1u << kUthCreated, "uthread_paused");
  uth_state(uth).store(kUthRunnable, std::memory_order_relaxed);
  sched_ops->thread_paused(uth);
}

void uthread_runnable(struct uthread *uth) {
  PARLIB_CHECK(uth != nullptr, "uthread_runnable(NULL)");
  transition(uth, 1u << kUthCreated | 1u << kUthStopped | 1u << kUthBlocked, kUthRunnable,
             "uthread_runnable (double wakeup?)");
  sched_ops->thread_runnable(uth);
}

void uth_disable_notifs(void) {
  if (tls_in_vcore_context) return;
  struct uthread *uth = current_uthread;
  if (uth == nullptr) return;  // a plain pthread: there are no notifications to hold off
  uth->notif_disabled_depth_++;
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

void uth_enable_notifs(void) {
  if (tls_in_vcore_context) return;
  struct uthread *uth = current_uthread;
  if (uth == nullptr) return;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  PARLIB_CHECK(uth->notif_disabled_depth_ > 0, "uth_enable_notifs without uth_disable_notifs");
  if (--uth->notif_disabled_depth_ == 0 && g_notif_pending_hook != nullptr &&
      this_vcore().notif_pending.load(std::memory_order_relaxed))
    g_notif_pending_hook();
}

void uthread_run_destructors(void) {
  PARLIB_CHECK(!tls_in_vcore_context, "uthread_run_destructors from vcore context");
  struct uthread *uth = current_uthread;
  PARLIB_CHECK(uth != nullptr, "uthread_run_destructors outside a uthread");
  tls::run_thread_local_destructors();
  destroy_dtls();
  // The TCB's libc state may be handed to a later uthread (tls.cpp): leave
  // no per-thread locale behind.
  uselocale(LC_GLOBAL_LOCALE);
  uth->flags_ |= kUthFlagRanDestructors;
}

void uthread_set_name(struct uthread *uth, const char *name) {
  if (uth == nullptr) return;
  uth->name_ = name;
  if (san::kTsan) san::name_fiber(uth->sanitizer_, name);
}

struct uthread *uthread_self(void) {
  return tls_in_vcore_context ? nullptr : current_uthread;
}

void *uthread_stack_alloc(size_t stack_size, size_t guard_size) {
  if (stack_size < kMinUthreadStack) {
    errno = EINVAL;
    return nullptr;
  }
  return stack_map(stack_size, guard_size);
}

void uthread_stack_free(void *stack_bottom, size_t stack_size, size_t guard_size) {
  stack_unmap(stack_bottom, stack_size, guard_size);
}

}  // extern "C"

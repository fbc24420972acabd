// A upthread's signals while it waits in a foreign call (a system call made
// for the program that the runtime does not turn into a uthread block:
// event/foreign_call.h). Its task is its own for the length of the call,
// so the kernel can deliver and block as it would for that thread: the
// call's start loads the upthread's mask into the task and hands the task
// what is pending on the upthread; upthread_kill of the upthread signals
// the task; the call's end takes back what the mask kept pending there and
// puts the task's mask back. A handler the kernel runs meanwhile runs on
// the upthread (it is the task's current uthread), and the call ends with
// EINTR or restarts, as natively.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "event/foreign_call.h"
#include "upthread/upthread_internal.h"

namespace parlib::detail::upthread_impl {
namespace {

// Raw calls: glibc's wrappers of these may be the program's (an LD_PRELOAD
// shim interposes the signal calls) and must not start a foreign call here.
void set_task_mask(const sigset_t *set, sigset_t *old) {
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, set, old, _NSIG / 8);
}

void enter(struct uthread *uth) {
  struct upthread *t = of(uth);
  // An empty mask is the task's own (vcore tasks block none of the
  // program's signals): nothing to load, and nothing to restore.
  t->mask_loaded = !sigisemptyset(&t->sigmask);
  if (t->mask_loaded) set_task_mask(&t->sigmask, &t->task_mask);
}

void accepted(struct uthread *uth, pid_t task) {
  struct upthread *t = of(uth);
  // seq_cst: after the gate accepts senders (see upthread_kill). Each bit
  // is moved once, by whoever clears it: this or a sender.
  if (t->pending_signals.load(std::memory_order_seq_cst) == 0) return;
  uint64_t pending = t->pending_signals.exchange(0, std::memory_order_seq_cst);
  pid_t pid = getpid();
  for (; pending != 0; pending &= pending - 1) {
    // Unblocked ones are delivered on the way back from tgkill: before the
    // call, as they would have been natively.
    syscall(SYS_tgkill, pid, task, __builtin_ctzll(pending) + 1);
  }
}

void exit(struct uthread *uth, uint64_t sent) {
  struct upthread *t = of(uth);
  if (!t->mask_loaded) return;
  // Signals sent during the call that the mask kept pending on the task
  // (the call consumed the others, or a handler ran): back to the
  // upthread, before another uthread runs on this task.
  for (uint64_t keep = sent; keep != 0; keep &= keep - 1) {
    int sig = __builtin_ctzll(keep) + 1;
    if (!sigismember(&t->sigmask, sig)) continue;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    timespec now{0, 0};
    if (syscall(SYS_rt_sigtimedwait, &one, nullptr, &now, _NSIG / 8) == sig)
      t->pending_signals.fetch_or(uint64_t{1} << (sig - 1), std::memory_order_relaxed);
  }
  set_task_mask(&t->task_mask, nullptr);
  t->mask_loaded = false;
}

const ForeignSignalHooks g_hooks = {enter, accepted, exit};

}  // namespace

void install_foreign_signal_hooks() { __parlib_foreign_call_set_signal_hooks(&g_hooks); }

bool kill_in_foreign_call(struct upthread *t, int sig) {
  int gate = 0;
  pid_t task = __parlib_foreign_call_hold(&t->uth, &gate);
  if (task <= 0) return false;
  uint64_t bit = uint64_t{1} << (sig - 1);
  // The caller marked it pending first; unless the call's start moved it
  // to the task already, send it there now.
  bool mine = (t->pending_signals.fetch_and(~bit, std::memory_order_seq_cst) & bit) != 0;
  if (mine) syscall(SYS_tgkill, getpid(), task, sig);
  __parlib_foreign_call_release(gate, mine ? sig : 0);
  return true;
}

}  // namespace parlib::detail::upthread_impl

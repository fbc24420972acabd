// The foreign-call gate: the runtime never signals a vcore whose task is
// inside a system call that the runtime did not issue (docs/design.md,
// "Foreign calls"). Whenever any handler runs on a task, the kernel ends
// the interruptible waits (the sigwait family, pause, sigsuspend, the
// p-selects, SysV IPC, the sleeps, timed futex waits, sockets with
// timeouts) with EINTR whatever SA_RESTART says; a notification sent to a
// uthread blocked in one of the program's calls would be visible.
#ifndef PARLIB_EVENT_FOREIGN_CALL_H
#define PARLIB_EVENT_FOREIGN_CALL_H

#include <signal.h>

#include <sys/types.h>

#include <cstdint>

struct uthread;  // <parlib/uthread.h>

namespace parlib::detail {

// Event layer start-up: gates for n vcores (spares included).
void foreign_gates_init(int n);

// Sends the runtime's notification signal to vcore id's task, unless that
// task is inside a foreign call: then nothing is sent, and the call's end
// delivers the notification (the caller has set the vcore's notif_pending
// before). Returns true if a signal was sent. Any context.
bool signal_vcore_task(uint32_t id);

// The vcore that a signal of the runtime was meant for, or -1 for any
// other signal (the program's SIGUSR1s: its kill, tgkill, sigqueue and
// timers). Async-signal-safe.
int runtime_signal_vcore(const siginfo_t *info);

// The si_value of the signals for vcore id (queued ones and its retry
// timer's).
void *runtime_signal_cookie(uint32_t id);

// The handler's first step for a signal that runtime_signal_vcore
// attributed to vcore id: counts it as arrived.
void runtime_signal_arrived(uint32_t id, const siginfo_t *info);

// Around a system call made for the program by a uthread. begin() holds
// the uthread's notifications off (it stays on its vcore), marks the
// vcore's task as inside a foreign call and makes sure no signal of the
// runtime is on its way to the task; end() clears the mark and delivers
// a notification that came meanwhile. Outside uthread context both do
// nothing. begin() returns the token that end() takes.
int foreign_call_begin();
void foreign_call_end(int token);

// The program's signals to a uthread inside a foreign call go to its task,
// where the kernel applies the uthread's mask (issue 11, item 5). The 2LS
// keeps each uthread's mask and pending set; its hooks run, with the
// uthread's notifications held off: enter() as a call begins (load the
// uthread's mask into the task), accepted(uth, task) once senders may
// signal the task (move what is pending on the uthread to the task), and
// exit(uth, sent) as the call ends, after every sender has finished (take
// back the signals of sent, bit n-1 for signal n, that the mask kept
// pending on the task; restore the task's mask).
struct ForeignSignalHooks {
  void (*enter)(::uthread *uth);
  void (*accepted)(::uthread *uth, pid_t task);
  void (*exit)(::uthread *uth, uint64_t sent);
};
void foreign_call_set_signal_hooks(const ForeignSignalHooks *hooks);

// A sender of a signal to uth: if uth is inside a foreign call (and its
// mask is loaded), holds that call open and returns the task's id, and the
// gate in *gate; else 0. The sender then signals the task (or not) and
// calls foreign_call_release with the signal sent (0: none). Any context.
pid_t foreign_call_hold(::uthread *uth, int *gate);
void foreign_call_release(int gate, int sig);

// The RAII form, nestable.
class ForeignCall {
 public:
  ForeignCall() : token_(foreign_call_begin()) {}
  ~ForeignCall() { foreign_call_end(token_); }
  ForeignCall(const ForeignCall &) = delete;
  ForeignCall &operator=(const ForeignCall &) = delete;

 private:
  int token_;
};

}  // namespace parlib::detail

// The same for libupthread-preload.so, under private names (version
// PARLIB_PRIVATE in src/parlib.map). Not an API.
extern "C" {
int __parlib_foreign_call_begin(void);
void __parlib_foreign_call_end(int token);
// foreign_call_hold, _release and _set_signal_hooks, for libupthread.
pid_t __parlib_foreign_call_hold(::uthread *uth, int *gate);
void __parlib_foreign_call_release(int gate, int sig);
void __parlib_foreign_call_set_signal_hooks(const parlib::detail::ForeignSignalHooks *hooks);
// Sets the function that the notification handler calls, in the uthread
// it interrupted at a safe point, once that uthread runs again; the
// function may unwind out of the handler (event.cpp).
void __parlib_set_resume_hook(void (*hook)(struct uthread *));
// Nonzero if info is one of the runtime's own signals.
int __parlib_is_runtime_signal(const siginfo_t *info);
}

#endif  // PARLIB_EVENT_FOREIGN_CALL_H

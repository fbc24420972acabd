// libupthread-preload.so: the program's signals: SIGUSR1 shared with the
// runtime (a dispatcher in front of the runtime's handler, the program's
// action in a shadow), pthread_kill and raise to a upthread, and a
// upthread's pthread_sigmask.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>

#include <parlib/syscall.h>
#include <upthread/upthread.h>

#include "event/foreign_call.h"
#include "shim.h"

using namespace parlib::detail::preload;

extern "C" int __upthread_run_signals(void);  // libupthread, UPTHREAD_PRIVATE

namespace parlib::detail::preload {
int run_signals() {
  switch (__upthread_run_signals()) {
    case PARLIB_SYSC_INTR_EINTR:
      return EINTR;
    case PARLIB_SYSC_INTR_RESTART:
      return ERESTART;
    default:
      return 0;
  }
}
}  // namespace parlib::detail::preload

SHIM_EXPORT int pthread_kill(pthread_t t, int sig) {
  if (!is_upthread_handle(t)) return REAL(pthread_kill)(t, sig);
  return upthread_kill(upthread_of(t), sig);
}

SHIM_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
  if (!on_uthread() || from_runtime(__builtin_return_address(0)))
    return REAL(pthread_sigmask)(how, set, old);
  return upthread_sigmask(how, set, old);
}

// ============================================================= SIGUSR1

// The runtime notifies vcores with SIGUSR1 (queued with a cookie naming
// the vcore, from this process or its retry timers). A program that
// installs its own SIGUSR1 handler must not take that away, and must still
// get the SIGUSR1s sent to it. The shim puts a dispatcher in front of the
// runtime's handler: the runtime's signals (event/foreign_call.h's test)
// go to it, others to the program's action, which sigaction() and signal()
// keep in a shadow.
namespace parlib::detail::preload {
namespace {
struct sigaction g_runtime_usr1;
std::atomic<bool> g_usr1_shared{false};
// The program's action. A plain struct written by sigaction() and read by
// the dispatcher: programs set handlers before raising signals, and a torn
// read here would be a torn read under glibc too.
struct sigaction g_program_usr1;
// glibc's functions the dispatcher needs, looked up before any signal can
// arrive (dlsym is not async-signal-safe).
decltype(&sigaction) g_real_sigaction = nullptr;
decltype(&pthread_sigmask) g_real_sigmask = nullptr;

void usr1_dispatch(int sig, siginfo_t *info, void *uctx) {
  if (__parlib_is_runtime_signal(info)) {
    g_runtime_usr1.sa_sigaction(sig, info, uctx);
    return;
  }
  const struct sigaction &p = g_program_usr1;
  if (p.sa_flags & SA_SIGINFO) {
    if (p.sa_sigaction != nullptr) p.sa_sigaction(sig, info, uctx);
  } else if (p.sa_handler == SIG_DFL) {
    // SIGUSR1's default action: terminate, with the signal as the status.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    g_real_sigaction(SIGUSR1, &dfl, nullptr);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    g_real_sigmask(SIG_UNBLOCK, &s, nullptr);
    kill(getpid(), SIGUSR1);
  } else if (p.sa_handler != SIG_IGN) {
    p.sa_handler(sig);
  }
}

}  // namespace

// Called from the constructor: the runtime's handler is installed by now.
void share_usr1() {
  g_real_sigaction = REAL(sigaction);
  g_real_sigmask = REAL(pthread_sigmask);
  struct sigaction cur;
  if (g_real_sigaction(SIGUSR1, nullptr, &cur) != 0 || !(cur.sa_flags & SA_SIGINFO) ||
      cur.sa_sigaction == nullptr)
    return;
  g_runtime_usr1 = cur;
  g_program_usr1 = {};
  g_program_usr1.sa_handler = SIG_DFL;
  struct sigaction mine = cur;
  mine.sa_sigaction = usr1_dispatch;
  g_real_sigaction(SIGUSR1, &mine, nullptr);
  g_usr1_shared.store(true, std::memory_order_release);
}
}  // namespace parlib::detail::preload

SHIM_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  if (sig != SIGUSR1 || !g_usr1_shared.load(std::memory_order_acquire) ||
      from_runtime(__builtin_return_address(0)))
    return REAL(sigaction)(sig, act, old);
  if (old != nullptr) *old = g_program_usr1;
  if (act != nullptr) g_program_usr1 = *act;
  return 0;
}

SHIM_EXPORT sighandler_t signal(int sig, sighandler_t handler) {
  if (sig != SIGUSR1 || !g_usr1_shared.load(std::memory_order_acquire))
    return REAL(signal)(sig, handler);
  if (handler == SIG_ERR) {
    errno = EINVAL;
    return SIG_ERR;
  }
  // glibc's signal() has BSD semantics: SA_RESTART, handler kept.
  struct sigaction act {
  }, old{};
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  sigaction(sig, &act, &old);
  return (old.sa_flags & SA_SIGINFO)
             ? reinterpret_cast<sighandler_t>(reinterpret_cast<void *>(old.sa_sigaction))
             : old.sa_handler;
}

// raise() is tgkill to the calling task, which would look like one of the
// runtime's notifications; from a upthread it is upthread_kill of itself
// (the handler runs before raise returns, as POSIX asks).
SHIM_EXPORT int raise(int sig) {
  if (struct upthread *me = on_uthread() && sig == SIGUSR1 ? upthread_self() : nullptr) {
    int err = upthread_kill(me, sig);
    if (err != 0) {
      errno = err;
      return -1;
    }
    return 0;
  }
  return REAL(raise)(sig);
}

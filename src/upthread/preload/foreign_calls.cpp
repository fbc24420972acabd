// libupthread-preload.so: the program's blocking calls that go to glibc
// (foreign_calls.def) as foreign calls. A upthread's call holds its vcore's
// task in the kernel; the runtime's notifications and preemption ticks
// would run a handler there and the kernel would end the call with EINTR
// (docs/preload.md, "The runtime's signals"). Inside a foreign call the
// runtime does not signal the task: what it had to say waits for the
// call's end, and the stuck-vcore monitor's spare vcores run the other
// threads meanwhile. Other callers go straight to glibc.
#undef _FORTIFY_SOURCE  // this file defines __open_2 and open
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "event/foreign_call.h"
#include "shim.h"

// glibc's checking entry points for open (declared only under fortify).
extern "C" {
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dir, const char *path, int flags);
int __openat64_2(int dir, const char *path, int flags);
}

using namespace parlib::detail::preload;

namespace {

// Runs call (glibc's function) for the caller, as a foreign call when it
// is a upthread.
template <typename Call>
auto call_foreign(Call call) {
  if (!on_uthread()) return call();
  int token = __parlib_foreign_call_begin();
  auto r = call();
  __parlib_foreign_call_end(token);  // keeps errno
  return r;
}

}  // namespace

#define FOREIGN_UNPAREN(...) __VA_ARGS__

#define FOREIGN_CALL(ret, name, params, args)                                      \
  SHIM_EXPORT ret name params {                                                    \
    static std::atomic<void *> slot{nullptr};                                      \
    return call_foreign([&] { return real_fn<ret(*) params>(slot, #name) args; }); \
  }

// The variadic ones pass on one argument of type va whether or not the
// caller gave it, as glibc's own fcntl does (x86-64: the register save
// area holds something either way, and glibc reads it only when needed).
#define FOREIGN_CALL_VA(ret, name, params, args, last, va)                                    \
  SHIM_EXPORT ret name(FOREIGN_UNPAREN params, ...) {                                         \
    va_list ap;                                                                               \
    va_start(ap, last);                                                                       \
    va extra = va_arg(ap, va);                                                                \
    va_end(ap);                                                                               \
    static std::atomic<void *> slot{nullptr};                                                 \
    return call_foreign([&] {                                                                 \
      return real_fn<ret (*)(FOREIGN_UNPAREN params, ...)>(slot, #name)(FOREIGN_UNPAREN args, \
                                                                        extra);               \
    });                                                                                       \
  }

#include "foreign_calls.def"

#undef FOREIGN_CALL
#undef FOREIGN_CALL_VA

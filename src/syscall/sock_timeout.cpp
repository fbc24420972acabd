// SO_RCVTIMEO and SO_SNDTIMEO for the calls the service makes: a blocking
// socket call natively waits at most that long and then returns what it
// has done, or EAGAIN (EINPROGRESS for connect). io_uring's operations
// ignore both options (they wait for readiness with no bound), and so does
// a helper's readiness wait, so the service reads the option itself, only
// when a call has to wait (the fast path never pays for it), and bounds
// the wait with it. See docs/syscall.md ("Socket timeouts").
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>

#include "syscall/syscall_internal.h"

namespace parlib::detail {

uint64_t sock_deadline(SockTimeout *t, int fd) {
  if (t->known) return t->deadline_ns;
  t->known = true;
  struct timeval tv = {0, 0};
  socklen_t len = sizeof tv;
  int saved = errno;
  // Not a socket (ENOTSOCK: a pipe's read), a bad descriptor: no bound;
  // the operation itself reports EBADF.
  long r = syscall(SYS_getsockopt, fd, SOL_SOCKET, t->optname, &tv, &len);
  t->not_socket = r != 0 && errno == ENOTSOCK;
  errno = saved;
  if (r != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0)) return 0;
  t->deadline_ns = monotonic_now_ns() + timeval_to_ns(tv);
  return t->deadline_ns;
}

bool sock_deadline_passed(const SockTimeout *t) {
  return t != nullptr && t->known && t->deadline_ns != 0 && monotonic_now_ns() >= t->deadline_ns;
}

}  // namespace parlib::detail

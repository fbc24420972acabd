// libupthread-preload.so: the blocking calls of parlib's syscall service
// (docs/syscall.md): read write pread pwrite readv writev recv recvfrom
// recvmsg send sendto sendmsg accept accept4 connect poll ppoll select
// epoll_wait sleep usleep nanosleep clock_nanosleep fsync fdatasync, plus
// pread64/pwrite64 and the _FORTIFY_SOURCE variants that reach them.
//
// libparlib defines these names too, but under LD_PRELOAD it is a
// dependency of the shim and comes after the C library in the search
// order: the program binds to glibc's. The shim comes before the C library,
// so it exports them (unversioned, satisfying the program's read@GLIBC_*
// references) and forwards a upthread's call to libparlib's implementation
// (syscall/interpose.h); that decides, as for a program linked with it,
// whether the caller may block asynchronously (uthread context,
// notifications enabled) and otherwise calls glibc's function. A call that
// waits goes to the vcore's io_uring and only the upthread blocks.
//
// Everything else goes straight to glibc: glibc threads (the runtime's
// vcore tasks and service threads among them), vcore context (uthread_self()
// is null there) and a fork child, where there are no vcores and the
// inherited rings belong to the parent (on_uthread() is false there).
#undef _FORTIFY_SOURCE  // this file defines read etc.: no inline wrappers
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"
#include "syscall/interpose.h"

// glibc's checking entry points, which a program built with
// _FORTIFY_SOURCE calls instead of read, recv, poll, ... when the buffer
// size is known at compile time (declared by glibc only under fortify).
extern "C" {
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *addr,
                       socklen_t *addrlen);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask,
                size_t fdslen);
}

// pread64 is pread on this ABI.
static_assert(sizeof(off64_t) == sizeof(off_t));

using namespace parlib::detail::preload;

namespace {

// Every call below is a cancellation point (POSIX: read, write, poll, ...;
// glibc also makes ppoll, accept4 and epoll_wait ones). A pending
// cancellation is acted on before the call; one that arrives while the
// call waits ends the wait (upthread_cancel interrupts it, and the call
// fails with EINTR) and is acted on then. A call that completed keeps its
// result: cancellation is only acted on where the call did nothing.
template <typename Call>
auto cancellation_point(Call call) {
  testcancel();
  auto r = call();
  if (r == -1 && errno == EINTR) testcancel();
  return r;
}

}  // namespace

// ======================================================== descriptors

SHIM_EXPORT ssize_t read(int fd, void *buf, size_t n) {
  if (!on_uthread()) return REAL(read)(fd, buf, n);
  return cancellation_point([&] { return __parlib_read(fd, buf, n); });
}

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t n) {
  if (!on_uthread()) return REAL(write)(fd, buf, n);
  return cancellation_point([&] { return __parlib_write(fd, buf, n); });
}

SHIM_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off) {
  if (!on_uthread()) return REAL(pread)(fd, buf, n, off);
  return cancellation_point([&] { return __parlib_pread(fd, buf, n, off); });
}

SHIM_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off) {
  if (!on_uthread()) return REAL(pread64)(fd, buf, n, off);
  return cancellation_point([&] { return __parlib_pread(fd, buf, n, off); });
}

SHIM_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  if (!on_uthread()) return REAL(pwrite)(fd, buf, n, off);
  return cancellation_point([&] { return __parlib_pwrite(fd, buf, n, off); });
}

SHIM_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
  if (!on_uthread()) return REAL(pwrite64)(fd, buf, n, off);
  return cancellation_point([&] { return __parlib_pwrite(fd, buf, n, off); });
}

SHIM_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt) {
  if (!on_uthread()) return REAL(readv)(fd, iov, cnt);
  return cancellation_point([&] { return __parlib_readv(fd, iov, cnt); });
}

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  if (!on_uthread()) return REAL(writev)(fd, iov, cnt);
  return cancellation_point([&] { return __parlib_writev(fd, iov, cnt); });
}

SHIM_EXPORT int fsync(int fd) {
  if (!on_uthread()) return REAL(fsync)(fd);
  return cancellation_point([&] { return __parlib_fsync(fd); });
}

SHIM_EXPORT int fdatasync(int fd) {
  if (!on_uthread()) return REAL(fdatasync)(fd);
  return cancellation_point([&] { return __parlib_fdatasync(fd); });
}

// ============================================================ sockets

SHIM_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags) {
  if (!on_uthread()) return REAL(recv)(fd, buf, n, flags);
  return cancellation_point([&] { return __parlib_recv(fd, buf, n, flags); });
}

SHIM_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                             socklen_t *addrlen) {
  if (!on_uthread()) return REAL(recvfrom)(fd, buf, n, flags, addr, addrlen);
  return cancellation_point([&] { return __parlib_recvfrom(fd, buf, n, flags, addr, addrlen); });
}

SHIM_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  if (!on_uthread()) return REAL(recvmsg)(fd, msg, flags);
  return cancellation_point([&] { return __parlib_recvmsg(fd, msg, flags); });
}

SHIM_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags) {
  if (!on_uthread()) return REAL(send)(fd, buf, n, flags);
  return cancellation_point([&] { return __parlib_send(fd, buf, n, flags); });
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                           const struct sockaddr *addr, socklen_t addrlen) {
  if (!on_uthread()) return REAL(sendto)(fd, buf, n, flags, addr, addrlen);
  return cancellation_point([&] { return __parlib_sendto(fd, buf, n, flags, addr, addrlen); });
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  if (!on_uthread()) return REAL(sendmsg)(fd, msg, flags);
  return cancellation_point([&] { return __parlib_sendmsg(fd, msg, flags); });
}

SHIM_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *addrlen) {
  if (!on_uthread()) return REAL(accept)(fd, addr, addrlen);
  return cancellation_point([&] { return __parlib_accept(fd, addr, addrlen); });
}

SHIM_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags) {
  if (!on_uthread()) return REAL(accept4)(fd, addr, addrlen, flags);
  return cancellation_point([&] { return __parlib_accept4(fd, addr, addrlen, flags); });
}

SHIM_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  if (!on_uthread()) return REAL(connect)(fd, addr, len);
  return cancellation_point([&] { return __parlib_connect(fd, addr, len); });
}

// ======================================================= readiness

SHIM_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout) {
  if (!on_uthread()) return REAL(poll)(fds, n, timeout);
  return cancellation_point([&] { return __parlib_poll(fds, n, timeout); });
}

SHIM_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
                      const sigset_t *mask) {
  if (!on_uthread()) return REAL(ppoll)(fds, n, tmo, mask);
  return cancellation_point([&] { return __parlib_ppoll(fds, n, tmo, mask); });
}

SHIM_EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv) {
  if (!on_uthread()) return REAL(select)(nfds, rd, wr, ex, tv);
  return cancellation_point([&] { return __parlib_select(nfds, rd, wr, ex, tv); });
}

SHIM_EXPORT int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
  if (!on_uthread()) return REAL(epoll_wait)(epfd, events, maxevents, timeout);
  return cancellation_point([&] { return __parlib_epoll_wait(epfd, events, maxevents, timeout); });
}

// ============================================================= sleeps

// A sleeping upthread does not hold its vcore. A sleep is a cancellation
// point and pthread_kill interrupts it (EINTR, with the time left): it is
// a timed futex wait that either can end (cancellable_sleep, cancel.cpp).
// The runtime's own sleeps, and clocks other than CLOCK_REALTIME and
// CLOCK_MONOTONIC, are libparlib's (a timeout on the vcore's ring, or an
// alarm with the helper-thread backend), which no signal interrupts.
SHIM_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem) {
  if (!on_uthread()) return REAL(nanosleep)(req, rem);
  int r = cancellable_sleep(__builtin_return_address(0), CLOCK_MONOTONIC, 0, req, rem);
  if (r == 0) {
    if (rem != nullptr) *rem = timespec{0, 0};
    return 0;
  }
  if (r == EINTR) {
    errno = EINTR;
    return -1;
  }
  return __parlib_nanosleep(req, rem);
}

SHIM_EXPORT int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                                struct timespec *rem) {
  if (!on_uthread()) return REAL(clock_nanosleep)(clock, flags, req, rem);
  int r = cancellable_sleep(__builtin_return_address(0), clock, flags, req, rem);
  if (r == 0) {
    if (rem != nullptr && !(flags & TIMER_ABSTIME)) *rem = timespec{0, 0};
    return 0;
  }
  if (r == EINTR) return EINTR;
  return __parlib_clock_nanosleep(clock, flags, req, rem);
}

SHIM_EXPORT int usleep(useconds_t usec) {
  if (!on_uthread()) return REAL(usleep)(usec);
  timespec rel{static_cast<time_t>(usec / 1000000), static_cast<long>(usec % 1000000) * 1000};
  int r = cancellable_sleep(__builtin_return_address(0), CLOCK_MONOTONIC, 0, &rel, nullptr);
  if (r == 0) return 0;
  if (r == EINTR) {
    errno = EINTR;
    return -1;
  }
  return __parlib_usleep(usec);
}

SHIM_EXPORT unsigned sleep(unsigned seconds) {
  if (!on_uthread()) return REAL(sleep)(seconds);
  timespec rel{static_cast<time_t>(seconds), 0}, rem{0, 0};
  int r = cancellable_sleep(__builtin_return_address(0), CLOCK_MONOTONIC, 0, &rel, &rem);
  if (r == 0) return 0;
  // The seconds left, rounded up as glibc's sleep does.
  if (r == EINTR) return static_cast<unsigned>(rem.tv_sec) + (rem.tv_nsec != 0 ? 1 : 0);
  return __parlib_sleep(seconds);
}

// ================================================= _FORTIFY_SOURCE

// Each checks the size as glibc's does; on overflow it lets glibc's own
// function report it and abort, so the message and status are glibc's.

SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen) {
  if (!on_uthread() || n > buflen) return REAL(__read_chk)(fd, buf, n, buflen);
  return cancellation_point([&] { return __parlib_read(fd, buf, n); });
}

SHIM_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen) {
  if (!on_uthread() || n > buflen) return REAL(__pread_chk)(fd, buf, n, off, buflen);
  return cancellation_point([&] { return __parlib_pread(fd, buf, n, off); });
}

SHIM_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen) {
  if (!on_uthread() || n > buflen) return REAL(__pread64_chk)(fd, buf, n, off, buflen);
  return cancellation_point([&] { return __parlib_pread(fd, buf, n, off); });
}

SHIM_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags) {
  if (!on_uthread() || n > buflen) return REAL(__recv_chk)(fd, buf, n, buflen, flags);
  return cancellation_point([&] { return __parlib_recv(fd, buf, n, flags); });
}

SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                                   struct sockaddr *addr, socklen_t *addrlen) {
  if (!on_uthread() || n > buflen)
    return REAL(__recvfrom_chk)(fd, buf, n, buflen, flags, addr, addrlen);
  return cancellation_point([&] { return __parlib_recvfrom(fd, buf, n, flags, addr, addrlen); });
}

SHIM_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen) {
  if (!on_uthread() || fdslen / sizeof *fds < n) return REAL(__poll_chk)(fds, n, timeout, fdslen);
  return cancellation_point([&] { return __parlib_poll(fds, n, timeout); });
}

SHIM_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
                            const sigset_t *mask, size_t fdslen) {
  if (!on_uthread() || fdslen / sizeof *fds < n)
    return REAL(__ppoll_chk)(fds, n, tmo, mask, fdslen);
  return cancellation_point([&] { return __parlib_ppoll(fds, n, tmo, mask); });
}

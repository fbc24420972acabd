// The interposed C library functions of interpose.cpp under private names,
// for libupthread-preload.so. Not part of the API.
//
// libparlib exports read, write, ... so that a program linked with it binds
// its calls to them. Under LD_PRELOAD libparlib is only a dependency of the
// shim and comes after the C library in the search order, so the shim
// exports those names itself and forwards a upthread's calls here. Each
// __parlib_NAME is the same function as libparlib's NAME (an alias): it
// decides by itself whether the caller may block asynchronously and calls
// glibc's function otherwise. Exported under version PARLIB_PRIVATE
// (src/parlib.map), so that nothing binds to them by accident.
#ifndef PARLIB_SYSCALL_INTERPOSE_H
#define PARLIB_SYSCALL_INTERPOSE_H

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

extern "C" {
ssize_t __parlib_read(int fd, void *buf, size_t n);
ssize_t __parlib_write(int fd, const void *buf, size_t n);
ssize_t __parlib_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __parlib_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __parlib_readv(int fd, const struct iovec *iov, int cnt);
ssize_t __parlib_writev(int fd, const struct iovec *iov, int cnt);
ssize_t __parlib_recv(int fd, void *buf, size_t n, int flags);
ssize_t __parlib_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                          socklen_t *addrlen);
ssize_t __parlib_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t __parlib_send(int fd, const void *buf, size_t n, int flags);
ssize_t __parlib_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
                        socklen_t addrlen);
ssize_t __parlib_sendmsg(int fd, const struct msghdr *msg, int flags);
int __parlib_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
int __parlib_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
int __parlib_connect(int fd, const struct sockaddr *addr, socklen_t len);
int __parlib_poll(struct pollfd *fds, nfds_t n, int timeout);
int __parlib_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
                   const sigset_t *sigmask);
int __parlib_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv);
int __parlib_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
unsigned __parlib_sleep(unsigned seconds);
int __parlib_usleep(useconds_t usec);
int __parlib_nanosleep(const struct timespec *req, struct timespec *rem);
int __parlib_clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                             struct timespec *rem);
int __parlib_fsync(int fd);
int __parlib_fdatasync(int fd);
}

#endif  // PARLIB_SYSCALL_INTERPOSE_H

// The interposed C library functions. Each one is glibc's (reached through
// dlsym(RTLD_NEXT)) unless the caller is a uthread that may block; then the
// operation goes to the vcore's io_uring (or a helper thread) and only the
// uthread waits. See docs/syscall.md for the per-call details.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/raw_log.h"
#include "event/foreign_call.h"
#include "syscall/interpose.h"
#include "syscall/syscall_internal.h"

namespace parlib::detail {
namespace {

// glibc's definitions, resolved on first use (dlsym is thread-safe; a race
// only resolves the same address twice). RTLD_NEXT finds the next
// definition after libparlib (the C library's, or a sanitizer's
// interceptor chain). When libparlib comes after the C library in the
// search order (it was loaded as a dependency of an LD_PRELOADed library)
// there is none after it, and the C library is asked directly.
//
// No function-local static here: its guard (__cxa_guard_acquire) waits
// with syscall(SYS_futex), which the LD_PRELOAD shim turns into a uthread
// futex wait, and uthreads making their first blocking calls at once were
// seen to stay blocked on it for good (memcached -t 4: a worker's first
// epoll_wait). A race only opens libc twice (RTLD_NOLOAD: the same handle).
void *libc_handle() {
  static std::atomic<void *> handle{nullptr};
  void *h = handle.load(std::memory_order_acquire);
  if (h == nullptr) {
    h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    handle.store(h, std::memory_order_release);
  }
  return h;
}

template <typename Fn>
Fn real(std::atomic<Fn> &slot, const char *name) {
  Fn f = slot.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
    if (f == nullptr && libc_handle() != nullptr)
      f = reinterpret_cast<Fn>(dlsym(libc_handle(), name));
    if (f == nullptr) {
      // Not raw_log: it writes with write(), which may be this very call.
      static const char msg[] = "parlib: fatal: the C library's blocking calls cannot be found\n";
      syscall(SYS_write, 2, msg, sizeof msg - 1);
      abort();
    }
    slot.store(f, std::memory_order_release);
  }
  return f;
}

#define PARLIB_REAL_SLOT(name, type) std::atomic<type> g_real_##name{nullptr};
PARLIB_REAL_SLOT(read, ssize_t (*)(int, void *, size_t))
PARLIB_REAL_SLOT(write, ssize_t (*)(int, const void *, size_t))
PARLIB_REAL_SLOT(pread, ssize_t (*)(int, void *, size_t, off_t))
PARLIB_REAL_SLOT(pwrite, ssize_t (*)(int, const void *, size_t, off_t))
PARLIB_REAL_SLOT(readv, ssize_t (*)(int, const struct iovec *, int))
PARLIB_REAL_SLOT(writev, ssize_t (*)(int, const struct iovec *, int))
PARLIB_REAL_SLOT(recv, ssize_t (*)(int, void *, size_t, int))
PARLIB_REAL_SLOT(recvfrom, ssize_t (*)(int, void *, size_t, int, struct sockaddr *, socklen_t *))
PARLIB_REAL_SLOT(recvmsg, ssize_t (*)(int, struct msghdr *, int))
PARLIB_REAL_SLOT(send, ssize_t (*)(int, const void *, size_t, int))
PARLIB_REAL_SLOT(sendto,
                 ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))
PARLIB_REAL_SLOT(sendmsg, ssize_t (*)(int, const struct msghdr *, int))
PARLIB_REAL_SLOT(accept, int (*)(int, struct sockaddr *, socklen_t *))
PARLIB_REAL_SLOT(accept4, int (*)(int, struct sockaddr *, socklen_t *, int))
PARLIB_REAL_SLOT(connect, int (*)(int, const struct sockaddr *, socklen_t))
PARLIB_REAL_SLOT(poll, int (*)(struct pollfd *, nfds_t, int))
PARLIB_REAL_SLOT(ppoll, int (*)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *))
PARLIB_REAL_SLOT(select, int (*)(int, fd_set *, fd_set *, fd_set *, struct timeval *))
PARLIB_REAL_SLOT(epoll_wait, int (*)(int, struct epoll_event *, int, int))
PARLIB_REAL_SLOT(sleep, unsigned (*)(unsigned))
PARLIB_REAL_SLOT(usleep, int (*)(useconds_t))
PARLIB_REAL_SLOT(nanosleep, int (*)(const struct timespec *, struct timespec *))
PARLIB_REAL_SLOT(clock_nanosleep,
                 int (*)(clockid_t, int, const struct timespec *, struct timespec *))
PARLIB_REAL_SLOT(fsync, int (*)(int))
PARLIB_REAL_SLOT(fdatasync, int (*)(int))
#undef PARLIB_REAL_SLOT

// A uthread's call of glibc's function is a foreign call: its task must
// not get the runtime's signals meanwhile (event/foreign_call.h).
template <typename R, typename... A>
auto foreign(R (*f)(A...)) {
  return [f](A... a) -> R {
    ForeignCall guard;
    return f(a...);
  };
}

#define REAL(name) foreign(real(g_real_##name, #name))

// -errno convention of the backends back to the C library's.
long set_errno(long r) {
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

// Descriptors the program made non-blocking keep their semantics: the real
// call returns EAGAIN. A bad descriptor also goes to the real call, which
// fails with EBADF exactly as it would have.
bool must_call_real(int fd) {
  long fl = syscall(SYS_fcntl, fd, F_GETFL);
  return fl < 0 || (fl & O_NONBLOCK) != 0;
}

// pread/pwrite on pipes and sockets fail with ESPIPE (io_uring would not).
bool is_stream(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return true;  // EBADF: the real call says so
  return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
}

// io_uring's send operations never raise SIGPIPE; the blocking call does
// unless MSG_NOSIGNAL, on the calling thread, before it returns.
void raise_sigpipe_if(long r, int flags) {
  if (r == -EPIPE && (flags & MSG_NOSIGNAL) == 0)
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGPIPE);
}

// Runs fn() (the real blocking call, returning -errno) on a helper thread
// while the calling uthread waits (see offload for wait_fd and events).
// st: the socket timeout that bounds the helper's readiness wait.
template <typename Fn>
long offload_call(long num, Fn fn, int wait_fd = -1, short events = 0, SockTimeout *st = nullptr) {
  uint64_t deadline = 0;
  long expired = 0;
  if (st != nullptr && wait_fd >= 0) {
    deadline = sock_deadline(st, wait_fd);
    expired = st->expired;
    // recv on a pipe fails at once with ENOTSOCK: no readiness wait first.
    if (st->not_socket && st->socket_call) wait_fd = -1;
  }
  return offload(
      num, [](void *arg) -> long { return (*static_cast<Fn *>(arg))(); }, &fn, wait_fd, events,
      deadline, expired);
}

// The start of a call that may wait: an interrupt request that came before
// it (a signal sent while the uthread ran) is taken first, so that its
// handler runs before the call, as the kernel delivers a pending signal.
void take_early_interrupt() {
  if (interrupt_requested()) take_interrupt();
}

// Runs one operation for the calling uthread: on its vcore's ring, with
// prep filling the SQE, or else on a helper thread with fallback (the real
// blocking call, returning -errno). Returns >= 0 or -errno.
// fd >= 0: an operation on that descriptor whose O_NONBLOCK flag is
// honoured lazily (ring_wait looks only when it would wait; a helper
// thread's real call honours it by itself). events (POLLIN, POLLOUT): what
// a helper waits for, interruptibly, before the call.
// st: the socket timeout (SO_RCVTIMEO, SO_SNDTIMEO) that bounds the
// wait, kept across restarts.
// Interrupted (parlib_syscall_interrupt) before it completed, the
// operation is restarted unless the 2LS says EINTR (a handler without
// SA_RESTART ran).
template <typename Prep, typename Fallback>
long async_op(long num, Prep prep, Fallback fallback, int fd = -1, short events = 0,
              SockTimeout *st = nullptr) {
  take_early_interrupt();
  for (;;) {
    long r;
    {
      NotifGuard guard;
      VcoreRing *ring = this_ring();
      if (ring != nullptr) {
        struct syscall sc;
        sysc_prepare(&sc, num);
        prep(ring_sqe(ring, &sc));
        r = ring_wait(ring, &sc, fd, st);
      }
      if (ring == nullptr) r = INT64_MIN;
    }
    if (r == INT64_MIN) r = offload_call(num, fallback, events != 0 ? fd : -1, events, st);
    if (r != -EINTR || take_interrupt() == PARLIB_SYSC_INTR_EINTR) return r;
  }
}

unsigned clamp_len(size_t n) { return static_cast<unsigned>(n > UINT_MAX ? UINT_MAX : n); }

bool is_nonblocking(int fd) {
  long fl = syscall(SYS_fcntl, fd, F_GETFL);
  return fl < 0 || (fl & O_NONBLOCK) != 0;
}

// A write that needs no waiting is one system call, as the real call is:
// pwritev2 with RWF_NOWAIT at the file position (offset -1, as writev)
// writes what it can without waiting. The ring would make the same
// non-blocking attempt inline, after more work on both sides (an SQE,
// io_uring_enter, a CQE): about twice a plain write here, and the first
// half of every cross-vcore wake-up (docs/syscall.md, "Wake-up latency").
// Returns the count or an error that the real call gives as well, or
// kUseRing where the attempt says nothing: EAGAIN (only waiting could do
// more), EOPNOTSUPP (the file has no non-blocking writes: ext4's buffered
// writes, eventfds), EINVAL, EINTR, ENOSYS; the ring then makes the write
// and has the last word. errno is left as it was.
constexpr long kUseRing = LONG_MIN;
std::atomic<bool> g_no_pwritev2{false};  // ENOSYS seen (seccomp): stop trying

long write_now(int fd, const struct iovec *iov, int cnt) {
  if (g_no_pwritev2.load(std::memory_order_relaxed)) return kUseRing;
  int saved = errno;
  long r = syscall(SYS_pwritev2, fd, iov, cnt, -1L, -1L, RWF_NOWAIT);
  if (r >= 0) return r;
  int err = errno;
  errno = saved;
  switch (err) {
    case ENOSYS:
      g_no_pwritev2.store(true, std::memory_order_relaxed);
      return kUseRing;
    case EAGAIN:
    case EOPNOTSUPP:
    case EINVAL:
    case EINTR:
      return kUseRing;
    default:
      return -err;
  }
}

// A blocking write to a pipe, socket or terminal returns only when all of
// it is written; io_uring completes those with what the first attempt
// wrote. step(done) writes from offset done and returns >= 0 or -errno;
// this goes on until n bytes are written, as the blocking call does (a
// failure after some progress reports the progress), or until the socket's
// timeout st has passed (the blocking call returns its progress then).
template <typename Step>
long write_all(int fd, size_t n, const SockTimeout *st, Step step) {
  size_t done = 0;
  for (;;) {
    long r = step(done);
    if (r < 0) return done > 0 ? static_cast<long>(done) : r;
    done += static_cast<size_t>(r);
    if (done >= n || r == 0 || sock_deadline_passed(st) || is_nonblocking(fd))
      return static_cast<long>(done);
  }
}

// The timeouts of the calls that receive (and accept) and that send.
// socket_call: the call fails on other descriptors (recv, not read).
SockTimeout rcv_timeout(bool socket_call) { return SockTimeout{SO_RCVTIMEO, -EAGAIN, socket_call}; }
SockTimeout snd_timeout(bool socket_call) { return SockTimeout{SO_SNDTIMEO, -EAGAIN, socket_call}; }

// Copies iov[0..cnt) into out, less its first skip bytes; returns the
// number of entries.
int iov_advance(const struct iovec *iov, int cnt, size_t skip, struct iovec *out) {
  int k = 0;
  for (int i = 0; i < cnt; ++i) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    out[k].iov_base = static_cast<char *>(iov[i].iov_base) + skip;
    out[k].iov_len = iov[i].iov_len - skip;
    skip = 0;
    ++k;
  }
  return k;
}

// Room for the rest of an iovec array: inline for a few entries, malloc'd
// beyond (only a short write of a long array needs it).
class IovBuf {
 public:
  IovBuf() = default;
  IovBuf(const IovBuf &) = delete;
  IovBuf &operator=(const IovBuf &) = delete;
  ~IovBuf() {
    if (heap_ != nullptr) free(heap_);
  }
  struct iovec *get(int cnt) {
    if (cnt <= kInline) return inline_;
    if (heap_ == nullptr)
      heap_ = static_cast<struct iovec *>(malloc(sizeof(struct iovec) * static_cast<size_t>(cnt)));
    return heap_;
  }

 private:
  static constexpr int kInline = 8;
  struct iovec inline_[kInline];
  struct iovec *heap_ = nullptr;
};

size_t iov_total(const struct iovec *iov, int cnt) {
  size_t t = 0;
  for (int i = 0; i < cnt; ++i) t += iov[i].iov_len;
  return t;
}

long neg_errno(long r) { return r < 0 ? -errno : r; }

// Sleeps the calling uthread until the deadline on clk. Interrupted, it
// sleeps on if no handler ran (the 2LS says PARLIB_SYSC_INTR_NONE) and
// otherwise returns -EINTR (sleeps are never restarted); else 0.
long sleep_abs(clockid_t clk, const struct timespec &deadline) {
  take_early_interrupt();
  for (;;) {
    if (sleep_until(clk, deadline) == 0) return 0;
    if (take_interrupt() != PARLIB_SYSC_INTR_NONE) return -EINTR;
  }
}

// A relative sleep for the calling uthread (CLOCK_MONOTONIC, as Linux
// measures nanosleep). Interrupted (-EINTR), it writes the time not slept
// to *rem if rem is not null.
long sleep_rel(const struct timespec &rel, struct timespec *rem) {
  uint64_t now = monotonic_now_ns();
  uint64_t d = timespec_to_ns(rel);
  uint64_t deadline = d > UINT64_MAX - now ? UINT64_MAX : now + d;
  long r = sleep_abs(CLOCK_MONOTONIC, ns_to_timespec(deadline));
  if (r == -EINTR && rem != nullptr) {
    uint64_t end = monotonic_now_ns();
    *rem = ns_to_timespec(deadline > end ? deadline - end : 0);
  }
  return r;
}

// A zero-timeout readiness call from a uthread. The runtime's notification
// and preemption signals land on the vcore's task at any time, and a signal
// handled during poll, select or epoll_wait makes it fail with EINTR even
// with a zero timeout (SA_RESTART does not restart them). Those signals
// are not meant for the uthread (a signal sent to it interrupts its call
// through parlib_syscall_interrupt instead), so ask again; a handler of the
// program's has run by then.
template <typename Check>
int check_now(Check check) {
  for (;;) {
    int r = check();
    if (r >= 0 || errno != EINTR) return r;
  }
}

// The poll-like calls: asks the kernel with a zero timeout, and until it
// answers or the deadline passes, waits for readiness on the ring.
// check() is that zero-timeout call; returns its result.
template <typename Check>
int poll_loop(const struct pollfd *fds, nfds_t n, int64_t timeout_ns, Check check) {
  int r = check_now(check);
  if (r != 0 || timeout_ns == 0) return r;
  uint64_t deadline = timeout_ns < 0 ? 0 : monotonic_now_ns() + static_cast<uint64_t>(timeout_ns);
  take_early_interrupt();
  for (;;) {
    int w = wait_any_ready(fds, n, deadline);
    if (w == -1) return INT_MIN;  // no ring
    // Interrupted: a handler that ran ends the call (never restarted).
    if (w == -EINTR && take_interrupt() != PARLIB_SYSC_INTR_NONE) {
      errno = EINTR;
      return -1;
    }
    r = check_now(check);
    if (r != 0) return r;
    if (deadline != 0 && monotonic_now_ns() >= deadline) return 0;
  }
}

// The poll family on a helper thread: call(left_ns) is the real call with
// that timeout (-1: none) and helper_wait_mask(). Interrupted with no
// handler run, it is made again with the time left. Returns the call's
// result, -1 with errno.
template <typename Call>
int poll_offload(long num, int64_t timeout_ns, Call call) {
  uint64_t deadline = timeout_ns < 0 ? 0 : monotonic_now_ns() + static_cast<uint64_t>(timeout_ns);
  take_early_interrupt();
  for (;;) {
    int64_t left = -1;
    if (timeout_ns >= 0) {
      uint64_t now = monotonic_now_ns();
      left = deadline > now ? static_cast<int64_t>(deadline - now) : 0;
    }
    long r = offload_call(num, [&] { return call(left); });
    if (r != -EINTR || take_interrupt() != PARLIB_SYSC_INTR_NONE)
      return static_cast<int>(set_errno(r));
  }
}

}  // namespace
}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

PARLIB_API ssize_t read(int fd, void *buf, size_t n) {
  if (!can_block_async()) return REAL(read)(fd, buf, n);
  SockTimeout st = rcv_timeout(false);
  return set_errno(async_op(
      SYS_read,
      [&](io_uring_sqe *s) {
        io_uring_prep_read(s, fd, buf, clamp_len(n), static_cast<uint64_t>(-1));
      },
      [&] { return neg_errno(REAL(read)(fd, buf, n)); }, fd, POLLIN, &st));
}

PARLIB_API ssize_t write(int fd, const void *buf, size_t n) {
  if (!can_block_async()) return REAL(write)(fd, buf, n);
  const char *p = static_cast<const char *>(buf);
  SockTimeout st = snd_timeout(false);
  return set_errno(write_all(fd, n, &st, [&](size_t done) {
    take_early_interrupt();
    struct iovec rest = {const_cast<char *>(p + done), n - done};
    long now = write_now(fd, &rest, 1);
    if (now != kUseRing) return now;
    return async_op(
        SYS_write,
        [&](io_uring_sqe *s) {
          io_uring_prep_write(s, fd, p + done, clamp_len(n - done), static_cast<uint64_t>(-1));
        },
        [&] { return neg_errno(REAL(write)(fd, p + done, n - done)); }, fd, POLLOUT, &st);
  }));
}

PARLIB_API ssize_t pread(int fd, void *buf, size_t n, off_t off) {
  if (!can_block_async() || off < 0 || must_call_real(fd) || is_stream(fd))
    return REAL(pread)(fd, buf, n, off);
  return set_errno(async_op(
      SYS_pread64,
      [&](io_uring_sqe *s) {
        io_uring_prep_read(s, fd, buf, clamp_len(n), static_cast<uint64_t>(off));
      },
      [&] { return neg_errno(REAL(pread)(fd, buf, n, off)); }));
}

PARLIB_API ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  if (!can_block_async() || off < 0 || must_call_real(fd) || is_stream(fd))
    return REAL(pwrite)(fd, buf, n, off);
  return set_errno(async_op(
      SYS_pwrite64,
      [&](io_uring_sqe *s) {
        io_uring_prep_write(s, fd, buf, clamp_len(n), static_cast<uint64_t>(off));
      },
      [&] { return neg_errno(REAL(pwrite)(fd, buf, n, off)); }));
}

PARLIB_API ssize_t readv(int fd, const struct iovec *iov, int cnt) {
  if (!can_block_async() || cnt < 0 || cnt > IOV_MAX) return REAL(readv)(fd, iov, cnt);
  SockTimeout st = rcv_timeout(false);
  return set_errno(async_op(
      SYS_readv,
      [&](io_uring_sqe *s) {
        io_uring_prep_readv(s, fd, iov, static_cast<unsigned>(cnt), static_cast<uint64_t>(-1));
      },
      [&] { return neg_errno(REAL(readv)(fd, iov, cnt)); }, fd, POLLIN, &st));
}

PARLIB_API ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  if (!can_block_async() || cnt < 0 || cnt > IOV_MAX) return REAL(writev)(fd, iov, cnt);
  size_t total = iov_total(iov, cnt);
  IovBuf buf;
  SockTimeout st = snd_timeout(false);
  return set_errno(write_all(fd, total, &st, [&](size_t done) -> long {
    const struct iovec *v = iov;
    int k = cnt;
    if (done > 0) {
      struct iovec *rest = buf.get(cnt);
      if (rest == nullptr) return -ENOMEM;
      k = iov_advance(iov, cnt, done, rest);
      v = rest;
    }
    take_early_interrupt();
    long now = write_now(fd, v, k);
    if (now != kUseRing) return now;
    return async_op(
        SYS_writev,
        [&](io_uring_sqe *s) {
          io_uring_prep_writev(s, fd, v, static_cast<unsigned>(k), static_cast<uint64_t>(-1));
        },
        [&] { return neg_errno(REAL(writev)(fd, v, k)); }, fd, POLLOUT, &st);
  }));
}

PARLIB_API ssize_t recv(int fd, void *buf, size_t n, int flags) {
  if (!can_block_async() || (flags & MSG_DONTWAIT)) return REAL(recv)(fd, buf, n, flags);
  SockTimeout st = rcv_timeout(true);
  return set_errno(async_op(
      SYS_recvfrom, [&](io_uring_sqe *s) { io_uring_prep_recv(s, fd, buf, n, flags); },
      [&] { return neg_errno(REAL(recv)(fd, buf, n, flags)); }, fd, POLLIN, &st));
}

PARLIB_API ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  if (!can_block_async() || (flags & MSG_DONTWAIT)) return REAL(recvmsg)(fd, msg, flags);
  SockTimeout st = rcv_timeout(true);
  return set_errno(async_op(
      SYS_recvmsg,
      [&](io_uring_sqe *s) { io_uring_prep_recvmsg(s, fd, msg, static_cast<unsigned>(flags)); },
      [&] { return neg_errno(REAL(recvmsg)(fd, msg, flags)); }, fd, POLLIN, &st));
}

PARLIB_API ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                            socklen_t *addrlen) {
  if (addr == nullptr) return recv(fd, buf, n, flags);
  if (!can_block_async() || (flags & MSG_DONTWAIT) || addrlen == nullptr)
    return REAL(recvfrom)(fd, buf, n, flags, addr, addrlen);
  struct iovec iov = {buf, n};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = addr;
  msg.msg_namelen = *addrlen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t r = recvmsg(fd, &msg, flags);
  if (r >= 0) *addrlen = msg.msg_namelen;
  return r;
}

// The send family: io_uring never raises SIGPIPE (MSG_NOSIGNAL is passed
// either way), the library does when the caller did not ask for
// MSG_NOSIGNAL. A blocking send on a stream socket sends everything.
PARLIB_API ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  if (!can_block_async() || (flags & MSG_DONTWAIT) || msg == nullptr || msg->msg_iovlen > IOV_MAX)
    return REAL(sendmsg)(fd, msg, flags);
  int cnt = static_cast<int>(msg->msg_iovlen);
  size_t total = iov_total(msg->msg_iov, cnt);
  IovBuf buf;
  SockTimeout st = snd_timeout(true);
  long r = write_all(fd, total, &st, [&](size_t done) -> long {
    struct msghdr m = *msg;
    if (done > 0) {  // the rest of the data; ancillary data went with the first part
      struct iovec *rest = buf.get(cnt);
      if (rest == nullptr) return -ENOMEM;
      m.msg_iovlen = static_cast<size_t>(iov_advance(msg->msg_iov, cnt, done, rest));
      m.msg_iov = rest;
      m.msg_control = nullptr;
      m.msg_controllen = 0;
    }
    return async_op(
        SYS_sendmsg,
        [&](io_uring_sqe *s) {
          io_uring_prep_sendmsg(s, fd, &m, static_cast<unsigned>(flags | MSG_NOSIGNAL));
        },
        [&] { return neg_errno(REAL(sendmsg)(fd, &m, flags | MSG_NOSIGNAL)); }, fd, POLLOUT, &st);
  });
  raise_sigpipe_if(r, flags);
  return set_errno(r);
}

PARLIB_API ssize_t send(int fd, const void *buf, size_t n, int flags) {
  if (!can_block_async() || (flags & MSG_DONTWAIT)) return REAL(send)(fd, buf, n, flags);
  const char *p = static_cast<const char *>(buf);
  SockTimeout st = snd_timeout(true);
  long r = write_all(fd, n, &st, [&](size_t done) {
    return async_op(
        SYS_sendto,
        [&](io_uring_sqe *s) {
          io_uring_prep_send(s, fd, p + done, n - done, flags | MSG_NOSIGNAL);
        },
        [&] { return neg_errno(REAL(send)(fd, p + done, n - done, flags | MSG_NOSIGNAL)); }, fd,
        POLLOUT, &st);
  });
  raise_sigpipe_if(r, flags);
  return set_errno(r);
}

PARLIB_API ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
                          socklen_t addrlen) {
  if (addr == nullptr) return send(fd, buf, n, flags);
  if (!can_block_async() || (flags & MSG_DONTWAIT))
    return REAL(sendto)(fd, buf, n, flags, addr, addrlen);
  struct iovec iov = {const_cast<void *>(buf), n};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = const_cast<struct sockaddr *>(addr);
  msg.msg_namelen = addrlen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  return sendmsg(fd, &msg, flags);
}

PARLIB_API int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags) {
  if (!can_block_async() || must_call_real(fd)) return REAL(accept4)(fd, addr, addrlen, flags);
  SockTimeout st = rcv_timeout(true);
  return static_cast<int>(set_errno(async_op(
      SYS_accept4, [&](io_uring_sqe *s) { io_uring_prep_accept(s, fd, addr, addrlen, flags); },
      [&] { return neg_errno(REAL(accept4)(fd, addr, addrlen, flags)); }, fd, POLLIN, &st)));
}

PARLIB_API int accept(int fd, struct sockaddr *addr, socklen_t *addrlen) {
  if (!can_block_async() || must_call_real(fd)) return REAL(accept)(fd, addr, addrlen);
  SockTimeout st = rcv_timeout(true);
  return static_cast<int>(set_errno(async_op(
      SYS_accept, [&](io_uring_sqe *s) { io_uring_prep_accept(s, fd, addr, addrlen, 0); },
      [&] { return neg_errno(REAL(accept)(fd, addr, addrlen)); }, fd, POLLIN, &st)));
}

PARLIB_API int connect(int fd, const struct sockaddr *addr, socklen_t len) {
  if (!can_block_async() || must_call_real(fd)) return REAL(connect)(fd, addr, len);
  return static_cast<int>(set_errno(async_op(
      SYS_connect, [&](io_uring_sqe *s) { io_uring_prep_connect(s, fd, addr, len); },
      [&] { return neg_errno(REAL(connect)(fd, addr, len)); })));
}

PARLIB_API int fsync(int fd) {
  if (!can_block_async()) return REAL(fsync)(fd);
  return static_cast<int>(set_errno(async_op(
      SYS_fsync, [&](io_uring_sqe *s) { io_uring_prep_fsync(s, fd, 0); },
      [&] { return neg_errno(REAL(fsync)(fd)); })));
}

PARLIB_API int fdatasync(int fd) {
  if (!can_block_async()) return REAL(fdatasync)(fd);
  return static_cast<int>(set_errno(async_op(
      SYS_fdatasync, [&](io_uring_sqe *s) { io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC); },
      [&] { return neg_errno(REAL(fdatasync)(fd)); })));
}

// The poll family: a zero-timeout call first; then, on the ring, waits for
// readiness and asks again, until it answers or the timeout passes. With
// helper threads the whole call runs there.
PARLIB_API int poll(struct pollfd *fds, nfds_t n, int timeout) {
  if (!can_block_async()) return REAL(poll)(fds, n, timeout);
  if (timeout == 0) return check_now([&] { return REAL(poll)(fds, n, 0); });
  int64_t tns = timeout < 0 ? -1 : int64_t{timeout} * 1000000;
  if (syscall_backend() == PARLIB_SYSC_IO_URING) {
    int r = poll_loop(fds, n, tns, [&] { return REAL(poll)(fds, n, 0); });
    if (r != INT_MIN) return r;
  }
  return poll_offload(SYS_poll, tns, [&](int64_t left) {
    struct timespec ts = ns_to_timespec(static_cast<uint64_t>(left));
    return neg_errno(REAL(ppoll)(fds, n, left < 0 ? nullptr : &ts, helper_wait_mask()));
  });
}

PARLIB_API int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
                     const sigset_t *sigmask) {
  // An invalid timeout fails at once in the real call. The signal mask is
  // not applied in uthread context (see docs/syscall.md).
  if (!can_block_async() || (tmo != nullptr && !timespec_is_valid(tmo)))
    return REAL(ppoll)(fds, n, tmo, sigmask);
  if (tmo != nullptr && tmo->tv_sec == 0 && tmo->tv_nsec == 0)
    return check_now([&] { return REAL(ppoll)(fds, n, tmo, sigmask); });
  int64_t tns = -1;
  if (tmo != nullptr)
    tns = tmo->tv_sec > INT64_MAX / int64_t{kNsPerSec} - 1
              ? INT64_MAX / 2
              : static_cast<int64_t>(timespec_to_ns(*tmo));
  if (syscall_backend() == PARLIB_SYSC_IO_URING) {
    struct timespec zero = {0, 0};
    int r = poll_loop(fds, n, tns, [&] { return REAL(ppoll)(fds, n, &zero, nullptr); });
    if (r != INT_MIN) return r;
  }
  return poll_offload(SYS_ppoll, tns, [&](int64_t left) {
    struct timespec ts = ns_to_timespec(static_cast<uint64_t>(left));
    return neg_errno(REAL(ppoll)(fds, n, left < 0 ? nullptr : &ts, helper_wait_mask()));
  });
}

PARLIB_API int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
  if (!can_block_async()) return REAL(epoll_wait)(epfd, events, maxevents, timeout);
  if (timeout == 0) return check_now([&] { return REAL(epoll_wait)(epfd, events, maxevents, 0); });
  int64_t tns = timeout < 0 ? -1 : int64_t{timeout} * 1000000;
  if (syscall_backend() == PARLIB_SYSC_IO_URING) {
    struct pollfd pfd = {epfd, POLLIN, 0};
    int r = poll_loop(&pfd, 1, tns, [&] { return REAL(epoll_wait)(epfd, events, maxevents, 0); });
    if (r != INT_MIN) return r;
  }
  return poll_offload(SYS_epoll_wait, tns, [&](int64_t left) {
    int ms = left < 0 ? -1 : static_cast<int>((left + 999999) / 1000000);
    const sigset_t *mask = helper_wait_mask();
    if (mask == nullptr) return neg_errno(REAL(epoll_wait)(epfd, events, maxevents, ms));
    return neg_errno(epoll_pwait(epfd, events, maxevents, ms, mask));
  });
}

PARLIB_API int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv) {
  if (!can_block_async() || nfds < 0 || nfds > FD_SETSIZE ||
      (tv != nullptr && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)))
    return REAL(select)(nfds, rd, wr, ex, tv);
  // Interrupted, select leaves the sets alone: asking again is safe.
  if (tv != nullptr && tv->tv_sec == 0 && tv->tv_usec == 0)
    return check_now([&] { return REAL(select)(nfds, rd, wr, ex, tv); });
  if (syscall_backend() == PARLIB_SYSC_IO_URING) {
    // The sets the caller passed, to ask again after every wake-up.
    fd_set in_rd, in_wr, in_ex;
    FD_ZERO(&in_rd);
    FD_ZERO(&in_wr);
    FD_ZERO(&in_ex);
    if (rd != nullptr) in_rd = *rd;
    if (wr != nullptr) in_wr = *wr;
    if (ex != nullptr) in_ex = *ex;
    struct pollfd pfds[FD_SETSIZE];
    nfds_t n = 0;
    for (int fd = 0; fd < nfds; ++fd) {
      short ev = 0;
      if (FD_ISSET(fd, &in_rd)) ev |= POLLIN;
      if (FD_ISSET(fd, &in_wr)) ev |= POLLOUT;
      if (FD_ISSET(fd, &in_ex)) ev |= POLLPRI;
      if (ev != 0) pfds[n++] = {fd, ev, 0};
    }
    uint64_t start = monotonic_now_ns();
    int64_t tns = tv == nullptr ? -1 : static_cast<int64_t>(timeval_to_ns(*tv));
    int r = poll_loop(pfds, n, tns, [&] {
      if (rd != nullptr) *rd = in_rd;
      if (wr != nullptr) *wr = in_wr;
      if (ex != nullptr) *ex = in_ex;
      struct timeval zero = {0, 0};
      return REAL(select)(nfds, rd, wr, ex, &zero);
    });
    if (r != INT_MIN) {
      if (tv != nullptr) {  // Linux reports the time not slept
        int64_t left = tns - static_cast<int64_t>(monotonic_now_ns() - start);
        if (left < 0) left = 0;
        *tv = ns_to_timeval(static_cast<uint64_t>(left));
      }
      return r;
    }
    if (rd != nullptr) *rd = in_rd;
    if (wr != nullptr) *wr = in_wr;
    if (ex != nullptr) *ex = in_ex;
  }
  // pselect leaves the sets alone when it fails (EINTR), and does not
  // report the time left: that is done here, as Linux's select does.
  int64_t tns = tv == nullptr ? -1 : static_cast<int64_t>(timeval_to_ns(*tv));
  uint64_t start = monotonic_now_ns();
  int r = poll_offload(SYS_select, tns, [&](int64_t left) {
    struct timespec ts = ns_to_timespec(static_cast<uint64_t>(left));
    return neg_errno(pselect(nfds, rd, wr, ex, left < 0 ? nullptr : &ts, helper_wait_mask()));
  });
  if (tv != nullptr) {
    int64_t left = tns - static_cast<int64_t>(monotonic_now_ns() - start);
    if (left < 0 || r == 0) left = 0;
    *tv = ns_to_timeval(static_cast<uint64_t>(left));
  }
  return r;
}

// The sleeps: a timeout on the ring (an alarm with helper threads). An
// interrupted sleep whose handler ran fails with EINTR (never restarted)
// and a relative one reports the time not slept in rem.
PARLIB_API int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                               struct timespec *rem) {
  bool supported = clk == CLOCK_REALTIME || clk == CLOCK_MONOTONIC || clk == CLOCK_BOOTTIME;
  if (!can_block_async() || !supported || !timespec_is_valid(req))
    return REAL(clock_nanosleep)(clk, flags, req, rem);
  if (flags & TIMER_ABSTIME) return static_cast<int>(-sleep_abs(clk, *req));
  uint64_t deadline = clock_ns(clk) + timespec_to_ns(*req);
  if (sleep_abs(clk, ns_to_timespec(deadline)) == 0) return 0;
  if (rem != nullptr) {
    uint64_t end = clock_ns(clk);
    *rem = ns_to_timespec(deadline > end ? deadline - end : 0);
  }
  return EINTR;
}

PARLIB_API int nanosleep(const struct timespec *req, struct timespec *rem) {
  if (!can_block_async() || !timespec_is_valid(req)) return REAL(nanosleep)(req, rem);
  return static_cast<int>(set_errno(sleep_rel(*req, rem)));
}

PARLIB_API int usleep(useconds_t usec) {
  if (!can_block_async()) return REAL(usleep)(usec);
  struct timespec ts = {static_cast<time_t>(usec / 1000000),
                        static_cast<long>(usec % 1000000) * 1000};
  return static_cast<int>(set_errno(sleep_rel(ts, nullptr)));
}

PARLIB_API unsigned sleep(unsigned seconds) {
  if (!can_block_async()) return REAL(sleep)(seconds);
  struct timespec ts = {static_cast<time_t>(seconds), 0};
  struct timespec rem;
  if (sleep_rel(ts, &rem) == 0) return 0;
  // glibc's rounding of the time left.
  return static_cast<unsigned>(rem.tv_sec) + (rem.tv_nsec >= 500000000 ? 1 : 0);
}

// The same functions under private names for libupthread-preload.so
// (syscall/interpose.h). An alias, not a wrapper: no extra call, and a
// declaration that disagrees with the definition does not compile.
#define PARLIB_PRIVATE_ALIAS(name) \
  PARLIB_API __typeof__(name) __parlib_##name __attribute__((alias(#name)));
PARLIB_PRIVATE_ALIAS(read)
PARLIB_PRIVATE_ALIAS(write)
PARLIB_PRIVATE_ALIAS(pread)
PARLIB_PRIVATE_ALIAS(pwrite)
PARLIB_PRIVATE_ALIAS(readv)
PARLIB_PRIVATE_ALIAS(writev)
PARLIB_PRIVATE_ALIAS(recv)
PARLIB_PRIVATE_ALIAS(recvfrom)
PARLIB_PRIVATE_ALIAS(recvmsg)
PARLIB_PRIVATE_ALIAS(send)
PARLIB_PRIVATE_ALIAS(sendto)
PARLIB_PRIVATE_ALIAS(sendmsg)
PARLIB_PRIVATE_ALIAS(accept)
PARLIB_PRIVATE_ALIAS(accept4)
PARLIB_PRIVATE_ALIAS(connect)
PARLIB_PRIVATE_ALIAS(poll)
PARLIB_PRIVATE_ALIAS(ppoll)
PARLIB_PRIVATE_ALIAS(select)
PARLIB_PRIVATE_ALIAS(epoll_wait)
PARLIB_PRIVATE_ALIAS(sleep)
PARLIB_PRIVATE_ALIAS(usleep)
PARLIB_PRIVATE_ALIAS(nanosleep)
PARLIB_PRIVATE_ALIAS(clock_nanosleep)
PARLIB_PRIVATE_ALIAS(fsync)
PARLIB_PRIVATE_ALIAS(fdatasync)
#undef PARLIB_PRIVATE_ALIAS

}  // extern "C"

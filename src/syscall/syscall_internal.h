// The syscall layer's internal interface: the blocking protocol shared by
// the interposed functions (interpose.cpp) and the two backends
// (syscall.cpp: io_uring rings and helper threads). See docs/syscall.md.
#ifndef PARLIB_SYSCALL_SYSCALL_INTERNAL_H
#define PARLIB_SYSCALL_SYSCALL_INTERNAL_H

#include <liburing.h>
#include <parlib/syscall.h>
#include <poll.h>
#include <sys/types.h>
#include <time.h>

#include <cstdint>

#include "common/clock.h"

namespace parlib::detail {

// Called once by install_default_event_handlers(): resolves glibc's
// functions, picks the backend, registers the EV_SYSCALL handler and the
// idle waiter.
void syscall_layer_init();

// PARLIB_SYSC_* of the running process.
int syscall_backend();

// True when the caller is a uthread that may block asynchronously: the
// layer is initialised, the caller is in uthread context and it has
// notifications enabled (a uthread holding a pdr lock must not yield).
bool can_block_async();

// A vcore's ring, opaque outside syscall.cpp.
struct VcoreRing;

// Notifications disabled for the scope: the uthread stays on its vcore,
// which is what makes it the only user of that vcore's ring.
class NotifGuard {
 public:
  NotifGuard();
  ~NotifGuard();
  NotifGuard(const NotifGuard &) = delete;
  NotifGuard &operator=(const NotifGuard &) = delete;
};

// The calling uthread's vcore's ring, created on first use (on the vcore's
// own task, as a single-issuer ring requires). nullptr when the backend is
// not io_uring or the ring cannot be had. Call under a NotifGuard.
VcoreRing *this_ring();

// Fills sc for a call of system call num by the calling uthread.
void sysc_prepare(struct syscall *sc, long num);

// The next SQE of r for sc (its user_data set, sc->pending_ counted). Never
// returns nullptr: submits to make room when the SQ is full.
io_uring_sqe *ring_sqe(VcoreRing *r, struct syscall *sc);

// The bound a socket option puts on one blocking call's wait (SO_RCVTIMEO
// for receiving and accept, SO_SNDTIMEO for sending and connect), kept for
// the whole call: across the restarts of an interrupted call and the parts
// of a write that the library completes (sock_timeout.cpp).
struct SockTimeout {
  int optname;               // SO_RCVTIMEO or SO_SNDTIMEO
  long expired;              // the result when it expires with nothing done: -EAGAIN
  bool socket_call;          // recv, send, accept...: fails at once (ENOTSOCK) on others
  bool known = false;        // deadline_ns has been read
  bool not_socket = false;   // the descriptor is no socket (getsockopt said ENOTSOCK)
  uint64_t deadline_ns = 0;  // CLOCK_MONOTONIC; 0: no timeout (or not a socket)
};

// The deadline of t's call on fd: read from the socket (getsockopt, errno
// kept) the first time it is asked for, i.e. when the call first has to
// wait, as the kernel starts its timer when the call starts to sleep.
// 0: no timeout.
uint64_t sock_deadline(SockTimeout *t, int fd);

// t's deadline was read and has passed.
bool sock_deadline_passed(const SockTimeout *t);

// Submits what was prepared and waits until every completion of sc has
// arrived; the uthread blocks (yields through thread_blockon_sysc) if they
// do not arrive at once. Returns sc->retval (first completion's result).
// nonblock_fd >= 0: the operation is on that descriptor, and if it must
// wait while the descriptor is O_NONBLOCK, it is cancelled and -EAGAIN
// returned (unless it completed meanwhile), as the real call would.
// st (with nonblock_fd): the wait ends at the socket's timeout; the
// operation is then cancelled and returns what it had done (a partial
// count) or st->expired.
// Under the NotifGuard that this_ring() was called under.
long ring_wait(VcoreRing *r, struct syscall *sc, int nonblock_fd = -1, SockTimeout *st = nullptr);

// Runs fn(arg) (a blocking call that returns >= 0 or -errno) on a helper
// thread while the calling uthread blocks; returns its result, or -EINTR
// when interrupted. wait_fd >= 0: the helper first waits, interruptibly,
// until wait_fd has wait_events (POLLIN, POLLOUT); a call that then still
// blocks is not interruptible. deadline_ns (CLOCK_MONOTONIC, 0: none): that
// wait ends there and the job returns expired without calling fn.
long offload(long num, long (*fn)(void *), void *arg, int wait_fd = -1, short wait_events = 0,
             uint64_t deadline_ns = 0, long expired = 0);

// On a helper thread: the signal mask to wait with (ppoll, pselect,
// epoll_pwait) so that an interruption ends the wait; nullptr when helper
// waits cannot be interrupted.
const sigset_t *helper_wait_mask();

// Sleeps the calling uthread until the deadline (absolute on clk, one of
// CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME) without blocking its
// vcore. Uthread context, can_block_async(). Returns 0, or -EINTR when
// interrupted.
long sleep_until(clockid_t clk, const struct timespec &abs_deadline);

// Blocks the calling uthread until one of fds may be ready (as POLL_ADD
// says) or the CLOCK_MONOTONIC deadline passes (deadline_ns 0: none). The
// caller then asks the kernel for the exact answer with a zero timeout.
// io_uring backend only. Returns 0, -EINTR when interrupted, or -1 if no
// ring could be had.
int wait_any_ready(const struct pollfd *fds, nfds_t n, uint64_t deadline_ns);

// Calls the EV_SYSCALL handler for sc as if its event had arrived.
void deliver_sysc(struct syscall *sc);

// Interruption (parlib_syscall_interrupt). A wait of the service that was
// interrupted returns -EINTR (ring_wait, offload, sleep_until,
// wait_any_ready). interrupt_requested(): the
// calling uthread has a request (uthread context). take_interrupt():
// clears it and asks the 2LS what to do (runs its handlers): one of
// PARLIB_SYSC_INTR_*. Uthread context, notifications enabled.
bool interrupt_requested();
int take_interrupt();

}  // namespace parlib::detail

#endif  // PARLIB_SYSCALL_SYSCALL_INTERNAL_H

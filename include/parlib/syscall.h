/* parlib/syscall.h: asynchronous system calls (dissertation 2.4.1, on
 * io_uring).
 *
 * Linking libparlib interposes these C library functions: read write pread
 * pwrite readv writev recv recvfrom recvmsg send sendto sendmsg accept
 * accept4 connect poll ppoll select epoll_wait sleep usleep nanosleep
 * clock_nanosleep fsync fdatasync. Called from uthread context, an
 * operation that cannot complete at once is submitted to the io_uring of
 * the caller's vcore; the uthread blocks (the 2LS hears of it through
 * thread_blockon_sysc with the struct syscall below), other uthreads run on
 * the vcore, and the completion arrives as an EV_SYSCALL event on that
 * vcore whose message carries the descriptor in ev_arg3. The library's
 * default EV_SYSCALL handler makes the uthread runnable with
 * uthread_runnable(); a 2LS may install its own handler in
 * ev_handlers[EV_SYSCALL] instead (it must then call uthread_runnable on
 * sysc->uth itself).
 *
 * Called from anywhere else (vcore context, plain pthreads, before
 * uthread_lib_init, or a uthread that has notifications disabled) the
 * functions are glibc's. Return values, partial counts and errno are those
 * of the blocking call. Where io_uring is unavailable, or PARLIB_NO_IO_URING=1
 * is set, blocking calls go to a pool of helper threads instead (one line on
 * stderr says so). docs/syscall.md has the details and the limits. */
#ifndef PARLIB_SYSCALL_H
#define PARLIB_SYSCALL_H

#include <parlib/common.h>

PARLIB_BEGIN_DECLS

struct uthread;
struct event_msg;

/* The descriptor of one blocking call, on the blocked uthread's stack. It is
 * valid from thread_blockon_sysc until the EV_SYSCALL handler makes the
 * uthread runnable: a handler must read what it needs before calling
 * uthread_runnable(sysc->uth). */
struct syscall {
	struct uthread *uth;  /* the uthread waiting for it */
	long num;             /* Linux system call number (SYS_read, ...) */
	long retval;          /* when SYSC_DONE: result, >= 0 or -errno */
	uint32_t vcoreid;     /* the vcore its EV_SYSCALL is delivered to */
	uint32_t flags;       /* SYSC_* */
	/* Private to the library. */
	struct syscall *next_;
	uint32_t pending_;    /* submissions whose completion is outstanding */
	uint32_t ncomp_;      /* completions received */
	uint32_t blocked_;    /* the uthread yielded for it */
	uint32_t queued_;     /* on its vcore's completed list */
	uint32_t cancel_on_first_; /* a wait on any of several submissions */
	uint32_t interrupted_; /* cancelled by parlib_syscall_interrupt */
	struct syscall *bprev_; /* on its ring's list of blocked descriptors */
	struct syscall *bnext_;
};

/* Bits of struct syscall.flags. */
#define SYSC_DONE 0x1u /* retval is valid */

/* The ways blocking calls are served, as parlib_syscall_backend() says. */
#define PARLIB_SYSC_NONE 0     /* not initialised: every call is glibc's */
#define PARLIB_SYSC_IO_URING 1 /* one io_uring per vcore */
#define PARLIB_SYSC_THREADS 2  /* helper threads (io_uring unavailable) */

/* parlib_syscall_backend: which of PARLIB_SYSC_* serves blocking calls.
 * Any context; PARLIB_SYSC_NONE before event_lib_init(). */
PARLIB_API int parlib_syscall_backend(void);

/* parlib_syscall_default_handler: the library's EV_SYSCALL handler: calls
 * uthread_runnable(((struct syscall *)msg->ev_arg3)->uth). Vcore context on
 * the receiving vcore (or the uthread that reaps, with notifications
 * disabled), like every event handler. A 2LS that installs its own handler
 * may call this one from it. Aborts on a NULL msg or descriptor. */
PARLIB_API void parlib_syscall_default_handler(struct event_msg *msg, unsigned int ev_type);

/* parlib_syscall_interrupt: asks uth's blocking call to end early, as a
 * signal ends a system call: the pending operation is cancelled (one that
 * completed first reports its own result), uth resumes in the call and
 * asks its 2LS (schedule_ops.thread_sysc_interrupted) whether to go on,
 * restart or fail with EINTR. If uth is not in a blocking call of this
 * service, the request waits for its next one, which first asks the 2LS
 * (a stale request costs that call nothing else). Any context; uth must
 * be a live uthread. Returns true if uth was waiting in a call. */
PARLIB_API bool parlib_syscall_interrupt(struct uthread *uth);

/* What schedule_ops.thread_sysc_interrupted returns. */
#define PARLIB_SYSC_INTR_NONE 0    /* nothing ran: the call goes on */
#define PARLIB_SYSC_INTR_RESTART 1 /* restart (read, write, ...) or EINTR (poll, sleeps) */
#define PARLIB_SYSC_INTR_EINTR 2   /* fail with EINTR */

/* Per-vcore counters, for diagnostics and tests. */
struct parlib_syscall_stats {
	uint64_t submitted; /* operations submitted to the vcore's ring */
	uint64_t blocked;   /* calls whose uthread had to block */
	uint64_t offloaded; /* calls served by a helper thread */
};

/* parlib_syscall_get_stats: copies vcoreid's counters to *out. Any
 * context. Returns 0, or -1 with errno EINVAL for a NULL out or vcoreid >=
 * max_vcores() (or before event_lib_init). */
PARLIB_API int parlib_syscall_get_stats(uint32_t vcoreid, struct parlib_syscall_stats *out);

PARLIB_END_DECLS

#endif /* PARLIB_SYSCALL_H */

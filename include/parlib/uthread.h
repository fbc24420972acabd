/* parlib/uthread.h: user-level threads and the second-level scheduler (2LS)
 * interface.
 *
 * A 2LS embeds struct uthread as the first member of its own thread type,
 * installs its struct schedule_ops in sched_ops, and calls
 * uthread_lib_init() once from main. From then on main runs as "thread0", a
 * uthread, on a vcore. Every uthread has its own glibc-compatible TLS
 * (errno, __thread, thread_local and glibc's per-thread state), its own
 * stack, and saved registers; vcore context runs the 2LS callbacks.
 *
 * Contexts (see vcore.h): "uthread context" is code running on a uthread;
 * "vcore context" is vcore_entry() and everything it calls. */
#ifndef PARLIB_UTHREAD_H
#define PARLIB_UTHREAD_H

#include <parlib/common.h>
#include <parlib/vcore.h>

PARLIB_BEGIN_DECLS

/* The registers a cooperative switch preserves (callee-saved registers, rsp,
 * rip, MXCSR, x87 control word). Layout private to the library. */
struct uthread_context {
	uint64_t opaque_[9];
};

/* The library's part of a thread. All fields are private to the library;
 * a 2LS reads them only through the functions below. */
struct uthread {
	struct uthread_context ctx_;  /* saved registers, valid when not running */
	void *tls_;                   /* thread pointer (TCB) for the FS base */
	void *stack_bottom_;          /* lowest address of the stack */
	size_t stack_size_;
	void *sysc;                   /* syscall this uthread is blocked on, if any */
	uint32_t state_;              /* enum uthread_state (uthread.cpp) */
	uint32_t flags_;              /* UTHREAD_F_* (uthread.cpp) */
	int32_t notif_disabled_depth_;
	uint32_t tls_owned_;          /* nonzero: uthread_cleanup frees tls_ */
	void *interrupted_ctx_;       /* full state of a notification-interrupted run */
	void *sanitizer_;             /* ASan fake stack or TSan fiber (sanitizer_fiber.h) */
	const char *name_;            /* for diagnostics; may be NULL */
	void (*entry_)(void);         /* where a fresh context starts */
	uint32_t sysc_intr_;          /* syscall service: interrupt request, wait (syscall.cpp) */
	uint32_t debug_id_;           /* its number for debuggers (docs/debugging.md) */
	uint64_t cpu_ns_;             /* CPU time charged so far (cputime.cpp) */
	struct uthread *debug_next_;  /* the list of live uthreads that debuggers read */
	struct uthread *debug_prev_;
};

/* The callbacks a 2LS provides. Unless noted, they run in vcore context. */
struct schedule_ops {
	/* Picks a uthread and run_uthread()s it, or vcore_yield()s. Must not
	 * return (if it does, the library yields the vcore). */
	void (*sched_entry)(void);
	/* A uthread became runnable (newly created, or woken). Called
	 * synchronously from uthread_runnable(), i.e. from vcore OR uthread
	 * context: it must take its queue lock with notifications disabled. */
	void (*thread_runnable)(struct uthread *);
	/* A uthread stopped running but stays runnable (it yielded, or was
	 * interrupted and its vcore needs it off the CPU). */
	void (*thread_paused)(struct uthread *);
	/* A uthread is blocked on the asynchronous syscall sysc (syscall.h);
	 * its completion arrives as an EV_SYSCALL event. */
	void (*thread_blockon_sysc)(struct uthread *, void *sysc);
	/* A uthread blocked on something external (UTH_EXT_BLK_*); whoever
	 * blocked it will call uthread_runnable() later. */
	void (*thread_has_blocked)(struct uthread *, int flags);
	/* A uthread took a fault the library could not handle. */
	void (*thread_refl_fault)(struct uthread *, int signo, int code, void *addr);
	/* Optional (may be NULL): this vcore is about to be preempted. Never
	 * called on Linux, where vcores are not revoked. */
	void (*preempt_pending)(void);
	/* Optional (may be NULL). Uthread context, notifications enabled: the
	 * calling uthread's blocking call (syscall.h) was interrupted by
	 * parlib_syscall_interrupt(). The 2LS runs what made it interrupt (a
	 * signal handler, say) and returns PARLIB_SYSC_INTR_NONE (nothing ran:
	 * the call goes on), PARLIB_SYSC_INTR_RESTART (the call restarts where
	 * POSIX restarts it after an SA_RESTART handler) or PARLIB_SYSC_INTR_EINTR
	 * (it fails with EINTR). NULL: every interruption is EINTR. */
	int (*thread_sysc_interrupted)(struct uthread *);
};

/* The active 2LS. Set it before uthread_lib_init(). */
PARLIB_API extern struct schedule_ops *sched_ops;
/* The uthread running on this vcore (uthread context: the caller itself;
 * vcore context: the uthread the vcore was running when it was interrupted,
 * or NULL). */
PARLIB_API extern __thread struct uthread *current_uthread;

/* Reasons passed to thread_has_blocked. */
#define UTH_EXT_BLK_MUTEX 1
#define UTH_EXT_BLK_EVENTQ 2
#define UTH_EXT_BLK_YIELD 3
#define UTH_EXT_BLK_MISC 4

/* uthread_lib_init: initialises vcores and events, turns the caller (main)
 * into thread0 backed by *thread0 (which the 2LS allocated and may embed in
 * a larger struct), requests one vcore and resumes thread0 on it directly
 * (not through thread_runnable). Call once, from main, with sched_ops set.
 * Aborts with a message when sched_ops is NULL, thread0 is NULL, or it is
 * called twice. */
PARLIB_API void uthread_lib_init(struct uthread *thread0);

/* uthread_init: prepares uth's library state: a fresh TLS block (glibc's
 * static TLS image, the process's stack-protector canary and pointer guard)
 * and bookkeeping. Any context (vcore context included: it allocates, so
 * not from the event/alarm paths). Aborts when memory for the TLS block
 * cannot be had. Call before init_uthread_ctx(). */
PARLIB_API void uthread_init(struct uthread *uth);

/* init_uthread_ctx: makes uth start at entry() on the given stack the next
 * time it runs. entry must not return (a 2LS's exit path yields for good);
 * if it does, the process aborts naming the uthread. stack_size must leave
 * room for a signal frame (at least 16 KiB); the stack is the caller's to
 * free. Any context. Aborts on a NULL or too-small stack. */
PARLIB_API void init_uthread_ctx(struct uthread *uth, void (*entry)(void),
                                 void *stack_bottom, size_t stack_size);

/* uthread_cleanup: releases what uthread_init() allocated (the TLS block)
 * and takes uth off the list of live uthreads that debuggers read (a
 * uthread leaves it by itself when it exits). uth must not be running. Any
 * context. Call it before freeing or reusing the memory of a uthread that
 * was initialised but has not exited. */
PARLIB_API void uthread_cleanup(struct uthread *uth);

/* run_uthread: vcore context only; switches to uth (restoring its TLS,
 * registers and stack) on this vcore. Never returns. */
PARLIB_API PARLIB_NORETURN void run_uthread(struct uthread *uth);

/* run_current_uthread: vcore context only; resumes current_uthread (the one
 * this vcore was running when it was interrupted). Aborts if there is none. */
PARLIB_API PARLIB_NORETURN void run_current_uthread(void);

/* uthread_yield: uthread context only (aborts elsewhere). Saves the caller
 * (if save_state; a thread that is exiting passes false and never runs
 * again), switches to vcore context and calls yield_func(self, yield_arg)
 * there, then enters the scheduler (sched_entry). yield_func decides what
 * becomes of the caller: re-queue it, block it on a queue, or free it. It
 * may be NULL (then thread_paused is called). Returns when another vcore
 * context run_uthread()s the caller again. */
PARLIB_API void uthread_yield(bool save_state,
                              void (*yield_func)(struct uthread *, void *),
                              void *yield_arg);

/* uthread_switch_to: uthread context only (aborts elsewhere); switches
 * from the caller straight to next, without passing through vcore context:
 * one register switch and one FS-base write, where uthread_yield needs two
 * of each. next must not be running (aborts if it is) and must be owned by
 * the caller's 2LS (taken off its run queue). after(prev, arg) then runs in
 * next's context, on the same vcore, with notifications disabled, before
 * next continues: that is where the 2LS publishes prev (e.g.
 * uthread_paused(prev)), whose context is saved by then. after may be NULL
 * only if the 2LS keeps track of prev otherwise. Returns when prev is run
 * again. */
PARLIB_API void uthread_switch_to(struct uthread *next,
                                  void (*after)(struct uthread *prev, void *arg),
                                  void *arg);

/* uthread_has_blocked: tells the 2LS that uth blocked (thread_has_blocked).
 * Vcore or uthread context. */
PARLIB_API void uthread_has_blocked(struct uthread *uth, int flags);

/* uthread_paused: tells the 2LS that uth stopped but is runnable. */
PARLIB_API void uthread_paused(struct uthread *uth);

/* uthread_runnable: makes uth runnable through thread_runnable. Vcore
 * context, uthread context, or a kernel thread that is not a vcore (a timer
 * or helper thread): a 2LS's thread_runnable must then ask for a vcore
 * itself (vcore_request), since no vcore may be awake to notice. Aborts if
 * uth is already runnable or running (a double wakeup is a bug in the
 * caller). */
PARLIB_API void uthread_runnable(struct uthread *uth);

/* uth_disable_notifs: uthread context; disables notifications for the
 * caller (nests: each call needs one uth_enable_notifs) and keeps it on its
 * vcore meanwhile. No-op in vcore context. */
PARLIB_API void uth_disable_notifs(void);
/* uth_enable_notifs: undoes one uth_disable_notifs; at depth 0 delivers any
 * notification that arrived meanwhile. Aborts on underflow. */
PARLIB_API void uth_enable_notifs(void);

/* uthread_run_destructors: uthread context; runs the caller's thread_local
 * destructors (glibc's __cxa_thread_atexit list) and its DTLS destructors.
 * A 2LS calls it on its exit path, before the final uthread_yield. */
PARLIB_API void uthread_run_destructors(void);

/* Extensions. */

/* uthread_set_name: a name for diagnostics (stack overflow reports, stats).
 * The string is not copied; it must outlive the uthread. */
PARLIB_API void uthread_set_name(struct uthread *uth, const char *name);

/* uthread_self: the calling uthread, NULL in vcore context or before
 * uthread_lib_init. */
PARLIB_API struct uthread *uthread_self(void);

/* uthread_stack_alloc / uthread_stack_free: mmap'd stacks with a guard page
 * below (guard_size bytes, rounded up to pages; 0 for none). A fault in the
 * guard ends the process with a message naming the uthread. Any context but
 * the event/alarm paths. Return NULL with errno on failure. */
PARLIB_API void *uthread_stack_alloc(size_t stack_size, size_t guard_size);
PARLIB_API void uthread_stack_free(void *stack_bottom, size_t stack_size, size_t guard_size);

/* Per-uthread CPU time. Off until uthread_enable_cpu_accounting(); from
 * then on each uthread is charged the CPU time its vcore's kernel task
 * spends while it runs (not vcore context's), measured at every switch.
 * Reading the task's clock costs a system call, so a switch reads the
 * monotonic clock and takes the task's own clock only when the last reading
 * is older than a resynchronisation interval (50 us): a run that is shorter
 * than that is charged its wall time, and the next reading corrects the
 * total (docs/design.md, "CPU time per uthread"). Any context; once on, it
 * stays on. */
PARLIB_API void uthread_enable_cpu_accounting(void);
/* uthread_cpu_time_ns: the CPU time charged to uth. For the calling
 * uthread, exact up to now (it reads its task's clock); for another, as of
 * its last switch. 0 while accounting is off. */
PARLIB_API uint64_t uthread_cpu_time_ns(struct uthread *uth);

PARLIB_END_DECLS

#endif /* PARLIB_UTHREAD_H */

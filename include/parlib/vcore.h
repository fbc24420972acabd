/* parlib/vcore.h: virtual cores.
 *
 * A vcore is a core the process asked for. On Linux each vcore is one
 * kernel task pinned to one CPU of the process's affinity mask; while the
 * vcore is not in use its task sleeps in the kernel. The code a vcore runs
 * when it starts, or when it is woken for events, is vcore_entry(), on the
 * vcore's own stack and with the vcore's own TLS ("vcore context"). Vcore
 * context has notifications disabled and never returns: it runs a uthread
 * (run_uthread) or gives the vcore back (vcore_yield).
 *
 * Vcore ids are 0..max_vcores()-1. Requests are additive, as on Akaros.
 * On Linux a vcore is never revoked. */
#ifndef PARLIB_VCORE_H
#define PARLIB_VCORE_H

#include <parlib/common.h>

PARLIB_BEGIN_DECLS

/* vcore_lib_init: sets up the vcore table (max_vcores(), stacks, the kernel
 * tasks are made on first use). Any context; idempotent and thread safe.
 * Returns 0, or -1 with errno: EINVAL when PARLIB_VCORES is malformed,
 * ENOMEM when the table cannot be allocated. */
PARLIB_API int vcore_lib_init(void);

/* vcore_request: asks for nr_new_vcores more vcores. Requests add to the
 * number of vcores the process wants (capped at max_vcores()); free vcores
 * are started at vcore_entry() until that many are online, and a vcore
 * yield takes one off. A request that finds no free vcore stays
 * outstanding: the next vcore that yields comes straight back, so a request
 * racing with a yield is never lost. Any context. Returns 0, or -1 with
 * errno EINVAL when nr_new_vcores < 0 or > max_vcores(), or when the
 * library could not be initialised. */
PARLIB_API int vcore_request(int nr_new_vcores);

/* vcore_request_total: raises the number of vcores wanted to at least
 * nr_vcores (an absolute target; it never takes vcores away) and starts
 * free vcores until that many are online. Any context. Returns 0, or -1
 * with errno EINVAL when nr_vcores < 0 or > max_vcores(). */
PARLIB_API int vcore_request_total(int nr_vcores);

/* vcore_yield: gives the calling vcore back. Vcore context only (aborts
 * elsewhere). It does not return to its caller: the vcore sleeps until it is
 * requested again or an event is sent to it, and then starts afresh at
 * vcore_entry(). If an event is already pending it re-enters vcore_entry()
 * at once instead of sleeping. */
PARLIB_API void vcore_yield(void);

/* vcore_reenter: discards the current vcore context and calls entry at the
 * top of the vcore's stack. Vcore context only (aborts elsewhere). */
PARLIB_API PARLIB_NORETURN void vcore_reenter(void (*entry)(void));

/* vcore_id: the id of the vcore the caller runs on. In uthread context the
 * answer can be stale as soon as it is read unless notifications are
 * disabled (the uthread may migrate). Returns 0 for callers that are not on
 * a vcore (e.g. main before uthread_lib_init). */
PARLIB_API uint32_t vcore_id(void);

/* max_vcores: how many vcores the process may have: the CPUs in its
 * affinity mask, or PARLIB_VCORES if set (it may exceed the CPU count, in
 * which case vcores share CPUs), capped at PARLIB_MAX_VCORES. Any context;
 * initialises the library if needed (0 if that fails). */
PARLIB_API int max_vcores(void);

/* num_vcores: how many vcores are online now. Racy by design: a vcore may
 * come or go right after it is read. Any context. */
PARLIB_API int num_vcores(void);

/* in_vcore_context: true when the caller runs in vcore context. */
PARLIB_API bool in_vcore_context(void);

/* vcore_entry: the single entry point into vcore context. Handles events;
 * resumes current_uthread if the vcore was interrupted while running one;
 * otherwise calls sched_ops->sched_entry(); yields the vcore if that
 * returns. Called by the library on a fresh vcore stack; a 2LS may call it
 * through vcore_reenter(vcore_entry). Never returns. */
PARLIB_API PARLIB_NORETURN void vcore_entry(void);

/* Extensions. */

/* vcore_set_idle_spin_us: how long an idle vcore polls for work before it
 * sleeps in the kernel (default 50 us, or PARLIB_IDLE_SPIN_US). Polling
 * makes cross-vcore wakeups cost ~1 us instead of a futex wake (~25 us) at
 * the price of CPU burned while idle. Any context. */
PARLIB_API void vcore_set_idle_spin_us(uint32_t usec);

/* vcore_is_online: true while vcoreid is online (racy, like num_vcores). */
PARLIB_API bool vcore_is_online(uint32_t vcoreid);

/* vcore_set_sched_probe: a 2LS that queues threads for a particular vcore
 * registers has_work so that one queued while that vcore is going offline
 * is not left behind it. A vcore that gives itself up marks itself offline
 * (seq_cst) and then calls has_work(its id) (and again before it sleeps);
 * true brings it straight back to vcore_entry(). The 2LS's side is the
 * mirror image: queue the thread, a seq_cst fence, then vcore_is_online()
 * (and request a vcore if it is offline). has_work runs on the vcore's
 * task, in vcore context; it must be quick and must not block. NULL
 * removes it. Any context. */
PARLIB_API void vcore_set_sched_probe(bool (*has_work)(uint32_t vcoreid));

/* vcore_wake: brings vcoreid online if it is offline, so that it runs
 * vcore_entry() and finds what was queued for it: for a 2LS that queued a
 * thread on that vcore's own queue and found it offline (the other half of
 * vcore_set_sched_probe's handshake). Like a vcore woken by an event, it
 * counts as wanted until it yields. Any context. Returns true if this call
 * brought it online; false if it was online already or vcoreid is not a
 * vcore (a spare counts once it has been granted before). */
PARLIB_API bool vcore_wake(uint32_t vcoreid);

/* Spare vcores. A vcore's kernel task can block in the kernel where parlib
 * cannot see it coming: a system call made with an inline `syscall`
 * instruction (libgomp's futex waits), a page fault on a slow file, a lock
 * wait inside the C library. The uthreads queued behind it then wait too.
 * For that the vcore layer keeps max_spare_vcores() more vcores, with ids
 * max_vcores() .. max_vcores() + max_spare_vcores() - 1. vcore_request and
 * vcore_request_total never grant them and num_vcores() does not count
 * them: a 2LS that finds one of its vcores stuck (vcore_blocked_in_kernel)
 * grants one with vcore_request_spare(), and the spare leaves with
 * vcore_yield() like any vcore. A spare's task is not pinned: it stands in
 * for whichever vcore is stuck. Events may be sent to spare ids.
 * PARLIB_SPARE_VCORES sets the number, 0..PARLIB_MAX_VCORES (default
 * PARLIB_MAX_VCORES); a spare's kernel task and stack are made the first
 * time it is granted, and afterwards sleep while it is offline. */

/* max_spare_vcores: how many spare vcores there are. Any context. */
PARLIB_API int max_spare_vcores(void);

/* vcore_request_spare: grants one offline spare vcore, which starts at
 * vcore_entry(); spares are used lowest id first. Any context but a signal
 * handler (the first grant of a spare makes its kernel task). Returns its
 * id, or -1 with errno EBUSY when every spare is online (or none exist, or
 * the system refuses another task). */
PARLIB_API int vcore_request_spare(void);

/* vcore_blocked_in_kernel: true when vcoreid is online and its kernel task
 * is asleep in the kernel right now (procfs state 'S' or 'D'): a snapshot,
 * for a monitor that samples it. An online vcore never sleeps in the
 * kernel on parlib's behalf (an idle vcore goes offline first), so this
 * means a system call or fault of the code it runs. Costs a pread of
 * procfs (a few microseconds). Any context; false for bad ids. */
PARLIB_API bool vcore_blocked_in_kernel(uint32_t vcoreid);

PARLIB_END_DECLS

#endif /* PARLIB_VCORE_H */

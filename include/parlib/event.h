/* parlib/event.h: asynchronous events delivered to vcores.
 *
 * Every vcore has one multi-producer single-consumer queue. send_event()
 * copies a message into the target vcore's queue and then makes sure that
 * vcore runs handle_events() soon: it is woken if it sleeps, interrupted
 * with a notification (SIGUSR1 to its kernel task) if it runs a uthread
 * with notifications enabled, or, when notifications are disabled or it is
 * in vcore context, marked notif_pending so that it handles the event as
 * soon as it re-enables them or leaves vcore context. Every message sent is
 * handled exactly once, on the vcore it was sent to, by the handler
 * registered for its type in ev_handlers.
 *
 * A notification never interrupts a uthread at an unsafe point: while its
 * notifications are disabled (uth_disable_notifs, pdr locks), nor while it
 * executes code of the C library, the dynamic linker, the C++ runtime or
 * parlib itself (which may hold their internal locks). There it is
 * deferred and retried shortly after (docs/design.md, "Safe points"). */
#ifndef PARLIB_EVENT_H
#define PARLIB_EVENT_H

#include <parlib/common.h>

PARLIB_BEGIN_DECLS

struct event_msg {
	uint16_t ev_type;
	uint16_t ev_arg1;
	uint32_t ev_arg2;
	void *ev_arg3;
	uint64_t ev_arg4;
};

#define EV_NONE 0
#define EV_SYSCALL 1
#define EV_ALARM 2
#define EV_USER_IPI 3
#define EV_SYSCALL_INTERRUPT 4 /* the library's: look for interrupted calls (syscall.h) */
#define EV_FIRST_USER 16 /* applications use EV_FIRST_USER..MAX_NR_EVENT-1 */
#define MAX_NR_EVENT 64

/* A handler runs on the receiving vcore, normally in vcore context (or in
 * the uthread that called handle_events() itself, with notifications
 * disabled). It must not block or yield. msg is valid only during the call. */
typedef void (*handle_event_t)(struct event_msg *msg, unsigned int ev_type);

/* The handler of each event type. Set entries before sending events of that
 * type; the library sets EV_SYSCALL and EV_ALARM itself. */
PARLIB_API extern handle_event_t ev_handlers[MAX_NR_EVENT];

/* event_lib_init: initialises the event queues and the notification signal
 * (SIGUSR1). Any context; idempotent; uthread_lib_init calls it. Aborts
 * when the vcore layer cannot be initialised. */
PARLIB_API void event_lib_init(void);

/* send_event: copies *msg (its ev_type field is set to ev_type) into
 * vcoreid's queue and notifies that vcore. Any context, also threads that
 * are not vcores; never blocks on the receiver. Returns 0, or -1 with errno
 * EINVAL for a NULL msg, ev_type >= MAX_NR_EVENT or without a handler, or
 * vcoreid >= max_vcores(); ENOMEM if no memory for the message could be
 * had. Nothing is queued on error. */
PARLIB_API int send_event(struct event_msg *msg, unsigned int ev_type, uint32_t vcoreid);

/* handle_events: runs the handlers of every message queued for the calling
 * vcore, and reaps its pending syscall completions, so that a vcore that
 * never idles still gets them. Vcore context, or uthread context (then with
 * notifications disabled for the duration). Outside any vcore: no-op. */
PARLIB_API void handle_events(void);

/* enable_notifs / disable_notifs: the vcore-level switch (Akaros'
 * VC_CAN_RCV_MSG analogue): while a vcore's notifications are disabled, no
 * notification interrupts any uthread on it; events still queue and are
 * handled at the next handle_events(). enable_notifs delivers what is
 * pending if called on the caller's own vcore. Any context; an out of
 * range vcoreid is ignored. */
PARLIB_API void enable_notifs(uint32_t vcoreid);
PARLIB_API void disable_notifs(uint32_t vcoreid);

/* Extensions. */

/* event_stats: counters of the calling vcore (or of vcoreid), for
 * diagnostics and tests. */
struct event_stats {
	uint64_t handled;        /* messages handled on this vcore */
	uint64_t notifications;  /* uthreads interrupted to handle events */
	uint64_t deferred;       /* notifications put off at an unsafe point */
};
PARLIB_API int event_get_stats(uint32_t vcoreid, struct event_stats *out);

PARLIB_END_DECLS

#endif /* PARLIB_EVENT_H */

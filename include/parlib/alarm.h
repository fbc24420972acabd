/* parlib/alarm.h: the alarm service (dissertation 2.4.2).
 *
 * An alarm_waiter is a one-shot timer with microsecond resolution. Set its
 * expiry with one of the set_waiter_* calls, then start_alarm() it; once
 * the expiry has passed, its callback runs exactly once, in vcore context,
 * on the vcore that started it, delivered there as an EV_ALARM event
 * (event.h). Deadlines are kept on CLOCK_MONOTONIC in microseconds.
 *
 * All alarms of the process share one kernel timer (a timerfd armed to the
 * earliest deadline) and one service kernel thread, created by the first
 * start_alarm(); pending alarms live in a binary min-heap, so starting,
 * stopping or resetting one costs O(log n) with thousands pending.
 *
 * Exactly-once bookkeeping: stop_alarm() returns true only if the callback
 * will never run, false if it has run, is running or is about to run (its
 * event is in flight); reset_alarm_abs() returns true only if the callback
 * will run at the new time, false if it runs (or ran) at the old one. In
 * each case exactly one code path accounts for the alarm.
 *
 * Lifetime: a waiter must stay valid while it is pending and, after a
 * stop_alarm()/reset_alarm_abs() that returned false, until its callback
 * has run (the callback may free it). A callback may re-arm its own waiter
 * (set_waiter_inc + start_alarm: periodic alarms).
 *
 * Misuse is never a crash: calls with a NULL waiter do nothing (and return
 * false); starting a waiter that is already pending or whose callback is in
 * flight, changing the expiry of a pending waiter, or re-initialising a
 * pending or firing waiter are ignored with a one-line message on stderr
 * ("parlib: alarm: ..."). */
#ifndef PARLIB_ALARM_H
#define PARLIB_ALARM_H

#include <parlib/common.h>

PARLIB_BEGIN_DECLS

/* One alarm. Allocate it anywhere (it is intrusive: the service never
 * allocates per alarm) and init_waiter() it before any other use. Only
 * `data` is the caller's; the other fields are private to the library. */
struct alarm_waiter {
	uint64_t wake_up_time_;                /* expiry, CLOCK_MONOTONIC usec */
	void (*func_)(struct alarm_waiter *);  /* the callback */
	void *data;                            /* for the caller's use */
	uint64_t heap_idx_;                    /* position in the heap while pending */
	uint32_t state_;                       /* idle, pending or firing (alarm.cpp) */
	uint32_t vcoreid_;                     /* where the callback runs */
	uint64_t reserved_[2];
};

/* init_waiter: makes w an idle alarm that will call func(w) when it fires;
 * its expiry is 0 until set. Any context. A NULL w does nothing; a w that is
 * pending or firing is left untouched (message on stderr). A NULL func is
 * accepted, but such a waiter cannot be started. */
PARLIB_API void init_waiter(struct alarm_waiter *w, void (*func)(struct alarm_waiter *));

/* set_waiter_abs: sets w's expiry to abs_usec microseconds on
 * CLOCK_MONOTONIC (a time in the past fires at once when started). Any
 * context. NULL w: nothing; pending w: ignored (message on stderr). */
PARLIB_API void set_waiter_abs(struct alarm_waiter *w, uint64_t abs_usec);

/* set_waiter_abs_unix: sets w's expiry to abs_usec microseconds since the
 * Epoch (CLOCK_REALTIME), converted once, now, to CLOCK_MONOTONIC: later
 * steps of the wall clock do not move it. Any context. NULL or pending w:
 * as set_waiter_abs. */
PARLIB_API void set_waiter_abs_unix(struct alarm_waiter *w, uint64_t abs_usec);

/* set_waiter_rel: sets w's expiry to usec microseconds from now (rounded up
 * to the next microsecond, so never early). Any context. NULL or pending w:
 * as set_waiter_abs. */
PARLIB_API void set_waiter_rel(struct alarm_waiter *w, uint64_t usec);

/* set_waiter_inc: adds usec (which may be negative) to w's current expiry,
 * saturating at 0 and UINT64_MAX; a periodic callback calls it with its
 * period before re-starting its own waiter. Any context. NULL or pending w:
 * as set_waiter_abs. */
PARLIB_API void set_waiter_inc(struct alarm_waiter *w, int64_t usec);

/* start_alarm: arms w; its callback runs once its expiry has passed, on the
 * vcore of the caller (in uthread context, the vcore the caller runs on at
 * the call; from a thread that is not a vcore, vcore 0). Any context,
 * including the callback of w itself. The first call in the process creates
 * the service thread (allocates: make it from uthread context or a plain
 * thread, not from an event handler) and aborts with a message if the
 * kernel refuses the timer or the thread. NULL w: nothing; w already
 * pending or firing, or without a callback: ignored (message on stderr). */
PARLIB_API void start_alarm(struct alarm_waiter *w);

/* stop_alarm: disarms w. Returns true if w was pending and is now removed:
 * its callback will never run. Returns false if it was not pending: its
 * callback has already run, is running, or its event is in flight and it
 * will run exactly once (or w was never started). Any context; never
 * waits for a callback. NULL w: false. */
PARLIB_API bool stop_alarm(struct alarm_waiter *w);

/* reset_alarm_abs: moves a pending w to expire at abs_usec (CLOCK_MONOTONIC
 * usec) instead. Returns true if w was pending: its callback will run once,
 * at the new time. Returns false if it was not: the callback runs (or ran)
 * at the old time, and w is not re-armed nor its expiry changed. Any
 * context. NULL w: false. */
PARLIB_API bool reset_alarm_abs(struct alarm_waiter *w, uint64_t abs_usec);

PARLIB_END_DECLS

#endif /* PARLIB_ALARM_H */

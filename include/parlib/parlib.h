/* parlib/parlib.h: the whole parlib C API. */
#ifndef PARLIB_PARLIB_H
#define PARLIB_PARLIB_H

#include <parlib/common.h>
#include <parlib/vcore.h>
#include <parlib/uthread.h>
#include <parlib/dtls.h>
#if __has_include(<parlib/atomic.h>)
#include <parlib/atomic.h>
#endif
#if __has_include(<parlib/spinlock.h>)
#include <parlib/spinlock.h>
#endif
#if __has_include(<parlib/mcs.h>)
#include <parlib/mcs.h>
#endif
#if __has_include(<parlib/mutex.h>)
#include <parlib/mutex.h>
#endif
#if __has_include(<parlib/slab.h>)
#include <parlib/slab.h>
#endif
#if __has_include(<parlib/pool.h>)
#include <parlib/pool.h>
#endif
#if __has_include(<parlib/waitfreelist.h>)
#include <parlib/waitfreelist.h>
#endif
#if __has_include(<parlib/event.h>)
#include <parlib/event.h>
#endif
#if __has_include(<parlib/alarm.h>)
#include <parlib/alarm.h>
#endif
#if __has_include(<parlib/syscall.h>)
#include <parlib/syscall.h>
#endif

#endif /* PARLIB_PARLIB_H */

// The uthread layer's internal interface, for the layers above it.
#ifndef PARLIB_UTHREAD_UTHREAD_INTERNAL_H
#define PARLIB_UTHREAD_UTHREAD_INTERNAL_H

#include <parlib/uthread.h>

#include <atomic>
#include <cstdint>

#include "vcore/arch/arch.h"

namespace parlib::detail {

// A uthread's life as the library sees it. Every change goes through
// set_state()/transition() in uthread.cpp.
enum UthreadState : uint32_t {
  kUthCreated = 0,   // uthread_init done; has never run
  kUthRunning = 1,   // on a vcore now
  kUthStopped = 2,   // off the vcore, context saved; its 2LS decides next
  kUthRunnable = 3,  // handed to thread_runnable/thread_paused
  kUthBlocked = 4,   // handed to thread_has_blocked/thread_blockon_sysc
  kUthExited = 5,    // yielded for good (save_state == false)
};

enum UthreadFlags : uint32_t {
  kUthFlagThread0 = 1u << 0,        // main's thread: TLS and stack not ours
  kUthFlagRanDestructors = 1u << 1, // uthread_run_destructors ran in it
};

inline ArchContext *arch_ctx(struct uthread *uth) {
  static_assert(sizeof(struct uthread_context) >= sizeof(ArchContext));
  return reinterpret_cast<ArchContext *>(&uth->ctx_);
}

inline std::atomic_ref<uint32_t> uth_state(struct uthread *uth) {
  return std::atomic_ref<uint32_t>(uth->state_);
}

// The event layer's hooks, nullptr until it initialises: handling this
// vcore's events (top of vcore_entry, and run_uthread when notif_pending),
// and delivering a notification deferred while the caller had them
// disabled (uth_enable_notifs / end of uthread_yield at depth 0).
extern void (*g_handle_events_hook)();
extern void (*g_notif_pending_hook)();

// Switches the calling uthread, uth, into vcore context as if a
// notification had interrupted it: it stays current_uthread, vcore_entry
// handles events and then resumes it (unless the 2LS took it off the vcore).
// The caller has raised uth->notif_disabled_depth_ for the switch.
void uthread_yield_interrupted(struct uthread *uth);

}  // namespace parlib::detail

#endif  // PARLIB_UTHREAD_UTHREAD_INTERNAL_H

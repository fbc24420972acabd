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
  kUthFlagThread0 = 1u << 0,         // main's thread: TLS and stack not ours
  kUthFlagRanDestructors = 1u << 1,  // uthread_run_destructors ran in it
};

inline ArchContext *arch_ctx(struct uthread *uth) {
  static_assert(sizeof(struct uthread_context) >= sizeof(ArchContext));
  return reinterpret_cast<ArchContext *>(&uth->ctx_);
}

inline std::atomic_ref<uint32_t> uth_state(struct uthread *uth) {
  return std::atomic_ref<uint32_t>(uth->state_);
}

// Where the layers above plug into this one (docs/design.md, "Layers"):
//
// Start hooks run in uthread_lib_init, after this layer and the vcores are
// set up and before thread0 moves onto vcore 0, in the order added: the
// event layer starts there (it registers at load time, so before any
// uthread_lib_init can run).
void add_uthread_lib_init_hook(void (*hook)());
// Vcore-context hooks run, in the order added, at the top of vcore_entry
// and in run_uthread before the uthread runs: the event layer handles the
// vcore's events there (added when it initialises), the syscall layer
// reaps the vcore's ring (added with the first ring). In vcore context;
// they must not block.
void add_vcore_context_hook(void (*hook)());
// The event layer's, nullptr until it initialises: delivers a notification
// deferred while the caller had them disabled (uth_enable_notifs / end of
// uthread_yield at depth 0).
extern void (*g_notif_pending_hook)();

// Switches the calling uthread, uth, into vcore context as if a
// notification had interrupted it: it stays current_uthread, vcore_entry
// handles events and then resumes it (unless the 2LS took it off the vcore).
// The caller has raised uth->notif_disabled_depth_ for the switch.
void uthread_yield_interrupted(struct uthread *uth);

}  // namespace parlib::detail

#endif  // PARLIB_UTHREAD_UTHREAD_INTERNAL_H

// What the sanitizers must be told about parlib's context switches, in one
// place: every switch between contexts (uthread, vcore context, the parked
// main task) and every change of stack calls the functions below and no
// sanitizer API directly. Compile-time only: in a build without ASan or
// TSan (PARLIB_ASAN / PARLIB_TSAN, set by cmake/ParlibFlags.cmake) every
// function here is an empty inline function and the switch path is the same
// code as before.
//
// AddressSanitizer needs each change of stack announced (start_switch, with
// the new stack) and acknowledged on the new stack (finish_switch), or it
// takes the new stack for an overflow of the old one. The "slot" of a
// context holds what ASan gives back for it (its fake-stack handle).
//
// ThreadSanitizer keeps one state per thread of execution: each uthread,
// each vcore context (its task's own state) and the parked main task is a
// TSan fiber, and start_switch moves the running kernel task onto the
// fiber of the context it switches to. That switch also makes everything
// the old context did happen before what the new one does (TSan's default
// fiber switch, a release and an acquire on the fiber): it is how the
// hand-off of a uthread's saved context from one vcore to another is seen
// (the vcore that stops a uthread switches from it, the 2LS's queue carries
// it, the vcore that resumes it switches to it). The slot of a uthread holds
// its fiber. See docs/debugging.md ("ThreadSanitizer").
//
// TSan finds its per-task state through a pointer in its own static TLS
// block, at a fixed offset from the thread pointer; parlib gives every
// uthread a TCB of its own, so that pointer is carried to the TCB a switch
// loads (move_tls, as ASan's TLS is).
#ifndef PARLIB_COMMON_SANITIZER_FIBER_H
#define PARLIB_COMMON_SANITIZER_FIBER_H

#include <cstddef>

#if defined(PARLIB_ASAN) && defined(PARLIB_TSAN)
#error "ASan and TSan cannot be combined"
#endif
#if defined(PARLIB_ASAN)
#include <sanitizer/common_interface_defs.h>
#elif defined(PARLIB_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace parlib::detail::san {

#if defined(PARLIB_ASAN)
// Copies ASan's static TLS and pthread-key slots from the TCB being left to
// the one about to be loaded (uthread/tls.cpp).
void move_tls_slow(void *from_tcb, void *to_tcb);
#endif
#if defined(PARLIB_TSAN)
// Where TSan's TLS block keeps its pointer to the running fiber, from the
// thread pointer (sanitizer_fiber.cpp).
extern ptrdiff_t g_tsan_current_offset;
void restart_stack_slow(void *fiber, void **mark);
#endif

// Finds what the sanitizer runtime keeps per task (TSan: see
// sanitizer_fiber.cpp); aborts, saying so, on a runtime it does not know.
// Once, on the initial thread, before any vcore task starts.
#if defined(PARLIB_TSAN)
void init();
#else
inline void init() {}
#endif

// True in a TSan build (for the few steps only TSan needs).
#if defined(PARLIB_TSAN)
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif

// Before leaving the running context. save: the running context's slot,
// filled for its resumption (nullptr: it never resumes). to_fiber: the TSan
// fiber of the context switched to (nullptr: the same context on another
// stack). [to_stack, to_stack + to_size): the stack switched to.
inline void start_switch(void **save, void *to_fiber, const void *to_stack, size_t to_size) {
#if defined(PARLIB_ASAN)
  (void)to_fiber;
  __sanitizer_start_switch_fiber(save, to_stack, to_size);
#elif defined(PARLIB_TSAN)
  (void)save, (void)to_stack, (void)to_size;
  if (to_fiber != nullptr) __tsan_switch_to_fiber(to_fiber, 0);
#else
  (void)save, (void)to_fiber, (void)to_stack, (void)to_size;
#endif
}

// First thing on the stack switched to, and where a context resumes.
// saved: the slot start_switch filled (nullptr for a fresh stack).
inline void finish_switch(void *saved) {
#if defined(PARLIB_ASAN)
  __sanitizer_finish_switch_fiber(saved, nullptr, nullptr);
#else
  (void)saved;
#endif
}

// Between start_switch and the write of the thread pointer: the TCB loaded
// so far and the one about to be.
inline void move_tls(void *from_tcb, void *to_tcb) {
#if defined(PARLIB_ASAN)
  move_tls_slow(from_tcb, to_tcb);
#elif defined(PARLIB_TSAN)
  // The word names the fiber start_switch has just switched to.
  *reinterpret_cast<void **>(static_cast<char *>(to_tcb) + g_tsan_current_offset) =
      *reinterpret_cast<void **>(static_cast<char *>(from_tcb) + g_tsan_current_offset);
#else
  (void)from_tcb, (void)to_tcb;
#endif
}

// TSan keeps a shadow call stack per fiber for its reports. Vcore context
// starts afresh at the top of its stack each time it is entered, leaving
// the frames of its previous run unreturned: at each fresh start it puts
// its fiber's shadow stack back to where it was at the first (*mark,
// nullptr until then), or that stack would grow by a few frames per switch
// until it overflows.
inline void restart_stack(void *fiber, void **mark) {
#if defined(PARLIB_TSAN)
  restart_stack_slow(fiber, mark);
#else
  (void)fiber, (void)mark;
#endif
}

// The TSan fiber running now (nullptr in other builds).
inline void *current_fiber() {
#if defined(PARLIB_TSAN)
  return __tsan_get_current_fiber();
#else
  return nullptr;
#endif
}

// A new fiber for a new context; everything the caller did so far happens
// before it (nullptr in other builds).
inline void *create_fiber() {
#if defined(PARLIB_TSAN)
  return __tsan_create_fiber(0);
#else
  return nullptr;
#endif
}

// Ends a fiber from create_fiber that no longer runs; nullptr is ignored.
inline void destroy_fiber(void *fiber) {
#if defined(PARLIB_TSAN)
  if (fiber != nullptr) __tsan_destroy_fiber(fiber);
#else
  (void)fiber;
#endif
}

// The name TSan's reports give the fiber (TSan copies it).
inline void name_fiber(void *fiber, const char *name) {
#if defined(PARLIB_TSAN)
  if (fiber != nullptr && name != nullptr) __tsan_set_fiber_name(fiber, name);
#else
  (void)fiber, (void)name;
#endif
}

}  // namespace parlib::detail::san

#endif  // PARLIB_COMMON_SANITIZER_FIBER_H

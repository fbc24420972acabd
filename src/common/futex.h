// Futex wrappers: the one place the runtime asks the kernel to sleep on a
// word or to wake its sleepers.
//
// Process-private futexes only (FUTEX_*_PRIVATE): every word the runtime
// sleeps on lives in this process. The calls are raw system calls: they
// never touch errno or any other TLS, so they are safe on a kernel task
// whose FS base is a uthread's TCB or which shares its TCB with a uthread
// running elsewhere (setxid.cpp's main task), in signal handlers and in
// vcore context; and they bypass the LD_PRELOAD shim's syscall(), which
// has nothing to do with the runtime's own waits. They block the calling
// kernel task: a uthread waits through uth_sync (src/sync/) instead.
#ifndef PARLIB_COMMON_FUTEX_H
#define PARLIB_COMMON_FUTEX_H

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include "vcore/arch/arch.h"

namespace parlib::detail {

// Sleeps while *word == val, at most rel (nullptr: no bound) on
// CLOCK_MONOTONIC. Returns 0 when woken (or spuriously), -EAGAIN when
// *word != val already, -EINTR after a signal handler ran, -ETIMEDOUT.
// Callers re-check their condition in any case.
inline long futex_wait(std::atomic<uint32_t> *word, uint32_t val,
                       const struct timespec *rel = nullptr) {
  return raw_syscall4(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAIT_PRIVATE,
                      static_cast<long>(val), reinterpret_cast<long>(rel));
}

// Wakes at most n tasks sleeping on word. Returns how many woke, or -errno.
inline long futex_wake(std::atomic<uint32_t> *word, int n) {
  return raw_syscall4(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAKE_PRIVATE, n, 0);
}

// The same for a plain int word (one of the C structs the LD_PRELOAD shim
// lays out for glibc's pthread types), which the caller accesses through
// std::atomic_ref.
inline long futex_wait(int *word, int val, const struct timespec *rel = nullptr) {
  return raw_syscall4(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAIT_PRIVATE, val,
                      reinterpret_cast<long>(rel));
}
inline long futex_wake(int *word, int n) {
  return raw_syscall4(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAKE_PRIVATE, n, 0);
}

}  // namespace parlib::detail

#endif  // PARLIB_COMMON_FUTEX_H

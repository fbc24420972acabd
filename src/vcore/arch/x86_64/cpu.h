// x86-64 CPU helpers: spin-wait hint and the thread pointer (FS base).
#ifndef PARLIB_ARCH_X86_64_CPU_H
#define PARLIB_ARCH_X86_64_CPU_H

#include <asm/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace parlib::detail {

inline void cpu_pause() { __builtin_ia32_pause(); }

// A system call that never touches errno (or any other TLS): for tasks that
// share their TCB with a uthread running elsewhere. Returns -errno on error.
inline long raw_syscall4(long nr, long a1, long a2, long a3, long a4) {
  long ret;
  register long r10 asm("r10") = a4;
  asm volatile("syscall"
               : "=a"(ret)
               : "0"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
               : "rcx", "r11", "memory");
  return ret;
}

// The thread pointer. glibc keeps the TCB's own address in its first word
// (tcbhead_t::tcb), and every TCB parlib makes does too, so one load reads
// it whichever way the FS base was set.
inline void *read_thread_pointer() {
  void *tp;
  asm volatile("movq %%fs:0, %0" : "=r"(tp));
  return tp;
}

// Chosen once at start-up (tls.cpp): wrfsbase when CPU and kernel allow it
// (AT_HWCAP2 & HWCAP2_FSGSBASE), arch_prctl otherwise.
extern bool g_have_wrfsbase;

// Points FS at a new TCB. The "memory" clobber keeps the compiler from
// moving TLS accesses across the write; callers still must not reuse TLS
// addresses computed before it (see uthread.cpp).
inline void write_thread_pointer(void *tp) {
  if (__builtin_expect(g_have_wrfsbase, 1)) {
    asm volatile("wrfsbase %0" : : "r"(tp) : "memory");
  } else {
    syscall(SYS_arch_prctl, ARCH_SET_FS, tp);
  }
}

}  // namespace parlib::detail

#endif  // PARLIB_ARCH_X86_64_CPU_H

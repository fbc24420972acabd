// The one selection point for architecture-specific code. Each architecture
// provides context.h (the saved-context layout and switch primitives, with
// the asm in switch.S) and cpu.h (cpu_relax, thread-pointer access).
#ifndef PARLIB_ARCH_ARCH_H
#define PARLIB_ARCH_ARCH_H

#if defined(__x86_64__)
#include "x86_64/context.h"
#include "x86_64/cpu.h"
#else
#error "parlib: unsupported architecture (add src/vcore/arch/<arch>/)"
#endif

#endif  // PARLIB_ARCH_ARCH_H

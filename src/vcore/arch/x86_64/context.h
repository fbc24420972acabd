// Layout of a cooperatively saved context on x86-64 (SysV ABI), shared by
// switch.S (through the PARLIB_CTX_* macros) and C++ (through the struct,
// with a static_assert per field). Only what a function call must preserve
// is saved: a switch is a call, so the caller-saved registers are dead.
#ifndef PARLIB_ARCH_X86_64_CONTEXT_H
#define PARLIB_ARCH_X86_64_CONTEXT_H

#define PARLIB_CTX_RSP 0
#define PARLIB_CTX_RIP 8
#define PARLIB_CTX_RBX 16
#define PARLIB_CTX_RBP 24
#define PARLIB_CTX_R12 32
#define PARLIB_CTX_R13 40
#define PARLIB_CTX_R14 48
#define PARLIB_CTX_R15 56
#define PARLIB_CTX_MXCSR 64
#define PARLIB_CTX_FPUCW 68
#define PARLIB_CTX_SIZE 72

#ifndef __ASSEMBLER__
#include <cstddef>
#include <cstdint>

namespace parlib::detail {

struct ArchContext {
  uint64_t rsp;
  uint64_t rip;
  uint64_t rbx;
  uint64_t rbp;
  uint64_t r12;
  uint64_t r13;
  uint64_t r14;
  uint64_t r15;
  uint32_t mxcsr;  // SSE control/status: rounding mode, exception masks
  uint16_t fpucw;  // x87 control word: precision and rounding
  uint16_t pad_;
};

static_assert(offsetof(ArchContext, rsp) == PARLIB_CTX_RSP);
static_assert(offsetof(ArchContext, rip) == PARLIB_CTX_RIP);
static_assert(offsetof(ArchContext, rbx) == PARLIB_CTX_RBX);
static_assert(offsetof(ArchContext, rbp) == PARLIB_CTX_RBP);
static_assert(offsetof(ArchContext, r12) == PARLIB_CTX_R12);
static_assert(offsetof(ArchContext, r13) == PARLIB_CTX_R13);
static_assert(offsetof(ArchContext, r14) == PARLIB_CTX_R14);
static_assert(offsetof(ArchContext, r15) == PARLIB_CTX_R15);
static_assert(offsetof(ArchContext, mxcsr) == PARLIB_CTX_MXCSR);
static_assert(offsetof(ArchContext, fpucw) == PARLIB_CTX_FPUCW);
static_assert(sizeof(ArchContext) == PARLIB_CTX_SIZE);

extern "C" {
// Saves the caller's context into *save, switches to new_sp (16-byte
// aligned) and calls fn(arg) there, which must not return. Resuming *save
// later (parlib_ctx_restore) returns from this call.
void parlib_ctx_save_and_call(ArchContext *save, void *new_sp, void (*fn)(void *), void *arg);
// Loads *ctx and continues there. Never returns.
[[noreturn]] void parlib_ctx_restore(const ArchContext *ctx);
// Saves the caller's context into *save and loads *load: a plain switch.
void parlib_ctx_swap(ArchContext *save, const ArchContext *load);
// Discards the current stack: switches to new_sp (16-byte aligned) and
// calls fn(arg) there, which must not return.
[[noreturn]] void parlib_call_on_stack(void *new_sp, void (*fn)(void *), void *arg);
// First code of a fresh context made by make_context: calls the entry held
// in rbx with the argument held in r12 (see arch.h).
void parlib_ctx_start(void);
}

// Prepares *ctx so that restoring it calls entry(arg) on the given stack,
// with the alignment a call gives (rsp = 8 mod 16 at entry), the caller's
// MXCSR and x87 control word, and a return into parlib_ctx_start's abort
// path should entry return.
void make_context(ArchContext *ctx, void *stack_bottom, size_t stack_size, void (*entry)(void *),
                  void *arg);

}  // namespace parlib::detail

#endif  // __ASSEMBLER__
#endif  // PARLIB_ARCH_X86_64_CONTEXT_H

#include "vcore/arch/x86_64/context.h"

#include <cstdint>

#include "common/raw_log.h"

namespace parlib::detail {

void make_context(ArchContext *ctx, void *stack_bottom, size_t stack_size, void (*entry)(void *),
                  void *arg) {
  uintptr_t top = reinterpret_cast<uintptr_t>(stack_bottom) + stack_size;
  // parlib_ctx_start runs with rsp 16-aligned and calls the entry, which
  // therefore starts with rsp = 8 (mod 16), as after any call.
  ctx->rsp = top & ~uintptr_t{15};
  ctx->rip = reinterpret_cast<uint64_t>(&parlib_ctx_start);
  ctx->rbx = reinterpret_cast<uint64_t>(entry);
  ctx->r12 = reinterpret_cast<uint64_t>(arg);
  ctx->rbp = 0;
  ctx->r13 = ctx->r14 = ctx->r15 = 0;
  // A new context inherits the creator's floating-point control state, as a
  // new kernel thread inherits it across clone().
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  ctx->mxcsr = mxcsr;
  ctx->fpucw = fpucw;
  ctx->pad_ = 0;
}

extern "C" [[noreturn]] __attribute__((visibility("hidden"))) void parlib_ctx_entry_returned(
    void *arg) {
  raw_fatal("the entry function of context %p returned (uthread entries must not return)", arg);
}

}  // namespace parlib::detail

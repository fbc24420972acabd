// Stacks for vcore context and uthreads, and the report of a stack
// overflow: every stack has a PROT_NONE guard below it, and a SIGSEGV
// handler running on a per-task alternate stack turns a fault in a guard
// into a message naming the overflowing uthread.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>

#include "common/raw_log.h"
#include "vcore/vcore_internal.h"

namespace parlib::detail {
namespace {

constexpr size_t kAltStackSize = 64 << 10;
// A fault this far below a stack's bottom still counts as its overflow (a
// frame larger than the guard can jump over it, but rarely by more).
constexpr uintptr_t kOverflowReach = 64 << 10;

std::atomic<bool (*)(StackDescription *)> g_describer{nullptr};
struct sigaction g_previous_segv;
struct sigaction g_previous_bus;
std::once_flag g_handler_once;

size_t page_round(size_t n) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (n + page - 1) & ~(page - 1);
}

bool is_overflow_of(const StackDescription &d, uintptr_t addr) {
  uintptr_t bottom = reinterpret_cast<uintptr_t>(d.bottom);
  return addr < bottom && addr + kOverflowReach >= bottom;
}

void on_fault(int sig, siginfo_t *info, void *uctx) {
  uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  StackDescription d{};
  auto describe = g_describer.load(std::memory_order_acquire);
  bool known = false;
  if (describe != nullptr && describe(&d)) known = true;
  if (!known && tls_in_vcore_context) {
    Vcore &vc = this_vcore();
    d = StackDescription{vc.stack_bottom, vc.stack_size, nullptr, "vcore context"};
    known = vc.stack_bottom != nullptr;
  }
  if (known && is_overflow_of(d, addr)) {
    if (d.uthread != nullptr) {
      raw_log("fatal: stack overflow in uthread %p (%s) on vcore %u: fault at %p, stack [%p, %p)",
              d.uthread, d.name != nullptr ? d.name : "unnamed", tls_vcoreid, info->si_addr,
              d.bottom, static_cast<const char *>(d.bottom) + d.size);
    } else {
      raw_log("fatal: stack overflow in %s of vcore %u: fault at %p, stack [%p, %p)",
              d.name != nullptr ? d.name : "vcore context", tls_vcoreid, info->si_addr, d.bottom,
              static_cast<const char *>(d.bottom) + d.size);
    }
    // Then die of the fault itself, as a thread's overflow does natively
    // (status and core dump of SIGSEGV): the access faults again on return.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, nullptr);
    return;
  }
  // Not ours: hand the fault to whoever handled it before us (a sanitizer,
  // or the default action) by restoring that and letting it re-fault.
  const struct sigaction &prev = sig == SIGBUS ? g_previous_bus : g_previous_segv;
  if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction != nullptr) {
    prev.sa_sigaction(sig, info, uctx);
    return;
  }
  sigaction(sig, &prev, nullptr);
}

void install_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_previous_segv);
  sigaction(SIGBUS, &sa, &g_previous_bus);
}

}  // namespace

void *stack_map(size_t size, size_t guard) {
  size = page_round(size);
  guard = page_round(guard);
  void *base = mmap(nullptr, size + guard, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  if (guard != 0 && mprotect(base, guard, PROT_NONE) != 0) {
    int err = errno;
    munmap(base, size + guard);
    errno = err;
    return nullptr;
  }
  return static_cast<char *>(base) + guard;
}

void stack_unmap(void *bottom, size_t size, size_t guard) {
  if (bottom == nullptr) return;
  size = page_round(size);
  guard = page_round(guard);
  munmap(static_cast<char *>(bottom) - guard, size + guard);
}

void install_fault_handler_on_this_task() {
  std::call_once(g_handler_once, install_handler);
  stack_t current;
  if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return;
  void *mem = stack_map(kAltStackSize, 4096);
  if (mem == nullptr) return;  // overflows are then reported by the default action
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = kAltStackSize;
  sigaltstack(&ss, nullptr);
}

void set_stack_describer(bool (*describe)(StackDescription *out)) {
  g_describer.store(describe, std::memory_order_release);
}

}  // namespace parlib::detail

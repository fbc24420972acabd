// The context switch: floating-point control state per uthread, the ABI
// stack alignment on every fresh stack, stack-protector canaries and C++
// exceptions across switches.
#include <gtest/gtest.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>
#include <xmmintrin.h>

#include <cfenv>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "test_util.h"

using namespace parlib_test;

// Returns rsp mod 16 as seen right after a call: 8 when the caller's stack
// was aligned as the SysV ABI requires.
extern "C" uint64_t rsp_mod16_at_entry(void);
asm(R"(
  .text
  .globl rsp_mod16_at_entry
  .type rsp_mod16_at_entry, @function
rsp_mod16_at_entry:
  movq %rsp, %rax
  andq $15, %rax
  ret
  .size rsp_mod16_at_entry, .-rsp_mod16_at_entry
)");

// Defined in stack_protector_test_fn.cpp, compiled with -fstack-protector-all.
extern "C" int protected_function_that_yields(int n);

namespace {

uint32_t read_mxcsr() { return _mm_getcsr(); }
uint16_t read_fpucw() {
  uint16_t cw;
  asm volatile("fnstcw %0" : "=m"(cw));
  return cw;
}
void write_fpucw(uint16_t cw) { asm volatile("fldcw %0" : : "m"(cw)); }

TEST(Switch, FreshUthreadEntryHasCallAlignment) {
  std::vector<uint64_t> seen(8, 99);
  std::vector<TestThread *> threads;
  for (size_t i = 0; i < seen.size(); ++i) {
    // Stacks of odd sizes: the alignment must not depend on the top.
    threads.push_back(
        fifo_spawn([](void *p) { *static_cast<uint64_t *>(p) = rsp_mod16_at_entry(); }, &seen[i],
                   (64 << 10) + i * 8));
  }
  for (auto *t : threads) fifo_join(t);
  for (uint64_t v : seen) EXPECT_EQ(v, 8u);
}

// Aligned SSE stores to the stack (what a modern compiler emits for local
// vectors) must work in every new uthread.
TEST(Switch, AlignedSseStoresOnAFreshStack) {
  float out = 0;
  TestThread *t = fifo_spawn(
      [](void *p) {
        alignas(16) float v[4];
        __m128 x = _mm_set_ps(4, 3, 2, 1);
        _mm_store_ps(v, x);  // movaps: faults if the frame is misaligned
        *static_cast<float *>(p) = v[0] + v[1] + v[2] + v[3];
      },
      &out);
  fifo_join(t);
  EXPECT_EQ(out, 10.0f);
}

// Each uthread sets its own rounding mode (MXCSR) and x87 precision, yields
// many times while the others run with different settings, and must find
// its own settings every time.
TEST(Switch, FloatingPointControlStateIsPerUthread) {
  ScopedTargetVcores target(2);
  static const uint32_t kRounding[4] = {_MM_ROUND_NEAREST, _MM_ROUND_DOWN, _MM_ROUND_UP,
                                        _MM_ROUND_TOWARD_ZERO};
  static const uint16_t kPrecision[4] = {0x037f, 0x027f, 0x007f, 0x0f7f};
  struct Arg {
    int index;
    int mismatches = 0;
  } args[8];
  std::vector<TestThread *> threads;
  for (int i = 0; i < 8; ++i) {
    args[i].index = i;
    threads.push_back(fifo_spawn(
        [](void *p) {
          auto *a = static_cast<Arg *>(p);
          uint32_t mxcsr = (read_mxcsr() & ~uint32_t{_MM_ROUND_MASK}) | kRounding[a->index % 4];
          uint16_t cw = kPrecision[(a->index / 2) % 4];
          _mm_setcsr(mxcsr);
          write_fpucw(cw);
          for (int it = 0; it < 2000; ++it) {
            fifo_yield();
            if (read_mxcsr() != mxcsr || read_fpucw() != cw) ++a->mismatches;
          }
          // Leave the defaults behind for whatever runs next on this stack.
          _mm_setcsr(0x1f80);
          write_fpucw(0x037f);
        },
        &args[i]));
  }
  for (auto *t : threads) fifo_join(t);
  for (auto &a : args) EXPECT_EQ(a.mismatches, 0) << "uthread " << a.index;
  EXPECT_EQ(read_mxcsr() & _MM_ROUND_MASK, uint32_t{_MM_ROUND_NEAREST});
}

TEST(Switch, NewUthreadInheritsCreatorsFloatingPointControl) {
  uint32_t saved = read_mxcsr();
  _mm_setcsr((saved & ~uint32_t{_MM_ROUND_MASK}) | _MM_ROUND_UP);
  uint32_t seen = 0;
  TestThread *t = fifo_spawn([](void *p) { *static_cast<uint32_t *>(p) = read_mxcsr(); }, &seen);
  _mm_setcsr(saved);
  fifo_join(t);
  EXPECT_EQ(seen & _MM_ROUND_MASK, uint32_t{_MM_ROUND_UP});
}

// A function built with -fstack-protector-all stores the canary from
// %fs:0x28 on entry and checks it on return; it yields in the middle and
// may return on another vcore. Every TCB carries the process's canary, so
// the check passes wherever it resumes.
TEST(Switch, StackProtectedFunctionSpanningYieldsReturns) {
  ScopedTargetVcores target(2);
  std::vector<int> results(6, 0);
  std::vector<TestThread *> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.push_back(fifo_spawn(
        [](void *p) { *static_cast<int *>(p) = protected_function_that_yields(50); }, &results[i]));
  }
  EXPECT_EQ(protected_function_that_yields(50), 50 * 51 / 2);  // thread0 too
  for (auto *t : threads) fifo_join(t);
  for (int r : results) EXPECT_EQ(r, 50 * 51 / 2);
}

__attribute__((noinline)) void throw_after_yield(int depth) {
  if (depth == 0) {
    fifo_yield();
    throw std::runtime_error("from a uthread");
  }
  throw_after_yield(depth - 1);
}

TEST(Switch, ExceptionsUnwindAcrossYields) {
  std::vector<int> caught(4, 0);
  std::vector<TestThread *> threads;
  for (auto &c : caught) {
    threads.push_back(fifo_spawn(
        [](void *p) {
          try {
            throw_after_yield(10);
          } catch (const std::runtime_error &e) {
            *static_cast<int *>(p) = std::string(e.what()) == "from a uthread";
          }
        },
        &c));
  }
  for (auto *t : threads) fifo_join(t);
  for (int c : caught) EXPECT_EQ(c, 1);
}

}  // namespace

// uthread_switch_to: two uthreads hand the CPU to each other directly,
// never through vcore context (the scheduler sees no switch), each keeping
// its own TLS, stack and floating-point control state.
namespace direct {

__thread long tls_turns = 0;
constexpr int kRounds = 20000;

struct PingPong {
  struct uthread *a = nullptr;
  struct uthread b {};
  long b_turns = 0;
  bool b_tls_ok = true;
  int after_calls = 0;
};
PingPong *g_pp = nullptr;

void count_after(struct uthread *, void *arg) { ++*static_cast<int *>(arg); }

void b_main() {
  PingPong *pp = g_pp;
  _mm_setcsr((_mm_getcsr() & ~uint32_t{_MM_ROUND_MASK}) | _MM_ROUND_DOWN);
  for (;;) {
    ++tls_turns;
    ++pp->b_turns;
    if (tls_turns != pp->b_turns || (_mm_getcsr() & _MM_ROUND_MASK) != _MM_ROUND_DOWN)
      pp->b_tls_ok = false;
    uthread_switch_to(pp->a, count_after, &pp->after_calls);
  }
}

TEST(Switch, DirectSwitchPingPongBypassesVcoreContext) {
  PingPong pp;
  g_pp = &pp;
  pp.a = uthread_self();
  const size_t stack_size = 64 << 10;
  void *stack = uthread_stack_alloc(stack_size, 4096);
  ASSERT_NE(stack, nullptr);
  uthread_init(&pp.b);
  init_uthread_ctx(&pp.b, b_main, stack, stack_size);
  tls_turns = 1000;  // thread0's copy; b's starts at 0
  uint64_t sched_before = fifo_switches();
  uth_disable_notifs();  // keep both on this vcore: nothing else may run them
  for (int i = 0; i < kRounds; ++i) uthread_switch_to(&pp.b, count_after, &pp.after_calls);
  uth_enable_notifs();
  uint64_t sched_after = fifo_switches();
  EXPECT_EQ(pp.b_turns, kRounds);
  EXPECT_TRUE(pp.b_tls_ok);
  EXPECT_EQ(tls_turns, 1000) << "thread0's TLS changed";
  EXPECT_EQ(_mm_getcsr() & _MM_ROUND_MASK, uint32_t{_MM_ROUND_NEAREST});
  EXPECT_EQ(pp.after_calls, 2 * kRounds) << "every switch runs its callback once";
  EXPECT_EQ(sched_after, sched_before) << "the ping-pong went through the scheduler";
  uthread_cleanup(&pp.b);  // b is stopped for good; its stack can go
  uthread_stack_free(stack, stack_size, 4096);
}

TEST(SwitchDeathTest, DirectSwitchToSelfOrRunningAborts) {
  EXPECT_DEATH(uthread_switch_to(uthread_self(), nullptr, nullptr), "bad target");
}

}  // namespace direct

// ThreadSanitizer's per-task state, as parlib must find it: see
// sanitizer_fiber.h. Empty in builds without TSan.
#include "common/sanitizer_fiber.h"

#if defined(PARLIB_TSAN)
#include <link.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/raw_log.h"
#include "vcore/arch/arch.h"

// What instrumented code calls at each function's entry and exit: not in
// TSan's public header, declared as GCC's builtins are (TSan's exit takes
// no argument and ignores the one passed).
extern "C" void __tsan_func_entry(void *call_pc);
extern "C" void __tsan_func_exit(void *unused);

namespace parlib::detail::san {

ptrdiff_t g_tsan_current_offset = 0;

namespace {

// Where a fiber's state keeps the top of its shadow call stack (the frames
// TSan's reports print), as an offset into the state; -1: unknown.
ptrdiff_t g_stack_top_offset = -1;
char *g_block_end = nullptr;  // the end of TSan's static TLS block (this task's)

int find_tsan_block(dl_phdr_info *info, size_t, void *) {
  if (info->dlpi_tls_data == nullptr || info->dlpi_name == nullptr ||
      strstr(info->dlpi_name, "libtsan") == nullptr)
    return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_TLS)
      g_block_end = static_cast<char *>(info->dlpi_tls_data) + info->dlpi_phdr[i].p_memsz;
  return 1;
}

// TSan reads the running fiber from a word of its TLS block that
// __tsan_get_current_fiber returns and __tsan_switch_to_fiber sets. On a
// task that has not switched yet, that word points to the block's own
// state; it is the word that then follows a switch to a new fiber and back.
bool find_current_word() {
  char *tp = static_cast<char *>(read_thread_pointer());
  auto *own = static_cast<char *>(__tsan_get_current_fiber());
  for (size_t k = 0; k < 256; k += sizeof(void *)) {
    auto *word = reinterpret_cast<void *const volatile *>(own + k);
    if (*word != own) continue;
    void *probe = __tsan_create_fiber(0);
    __tsan_switch_to_fiber(probe, 0);
    bool follows = *word == probe;
    __tsan_switch_to_fiber(own, 0);
    __tsan_destroy_fiber(probe);
    if (follows && *word == own) {
      g_tsan_current_offset = own + k - tp;
      return true;
    }
  }
  return false;
}

// The word of the running fiber's state that grows at __tsan_func_entry
// and shrinks back at __tsan_func_exit. The state may hold its shadow stack
// inline, so the word may lie far into it: the whole state, up to the end
// of TSan's TLS block, is searched (once).
bool find_stack_top() {
  constexpr int kDepth = 3;
  auto *state = static_cast<uintptr_t *>(__tsan_get_current_fiber());
  if (g_block_end == nullptr || g_block_end <= reinterpret_cast<char *>(state)) return false;
  size_t words =
      static_cast<size_t>(g_block_end - reinterpret_cast<char *>(state)) / sizeof(uintptr_t);
  auto *before = static_cast<uintptr_t *>(malloc(words * sizeof(uintptr_t)));
  if (before == nullptr) return false;
  // Word by word: memcpy would be TSan's interceptor, a frame of its own.
  const volatile uintptr_t *live = state;
  for (size_t i = 0; i < words; ++i) before[i] = live[i];
  for (int d = 0; d < kDepth; ++d) __tsan_func_entry(__builtin_return_address(0));
  // The word grew by whole frames and points into the state (at its
  // inline stack); it must be the only such word, and shrink back.
  auto inside = [&](uintptr_t v) {
    return v >= reinterpret_cast<uintptr_t>(state) &&
           v < reinterpret_cast<uintptr_t>(state + words);
  };
  ptrdiff_t found = -1;
  for (size_t i = 0; i < words && found != -2; ++i) {
    uintptr_t v = live[i];
    uintptr_t grew = v - before[i];
    if (v > before[i] && grew <= kDepth * sizeof(uintptr_t) && grew % sizeof(uintptr_t) == 0 &&
        inside(v))
      found = found == -1 ? static_cast<ptrdiff_t>(i) : -2;
  }
  for (int d = 0; d < kDepth; ++d) __tsan_func_exit(nullptr);
  bool back = found >= 0 && live[found] == before[found];
  free(before);
  if (!back) return false;
  g_stack_top_offset = found * static_cast<ptrdiff_t>(sizeof(uintptr_t));
  return true;
}

}  // namespace

void init() {
  dl_iterate_phdr(find_tsan_block, nullptr);
  if (!find_current_word() || !find_stack_top())
    raw_fatal(
        "this ThreadSanitizer runtime keeps its per-task state in a way parlib does not "
        "know (see src/common/sanitizer_fiber.cpp)");
}

void restart_stack_slow(void *fiber, void **mark) {
  if (fiber == nullptr || g_stack_top_offset < 0) return;
  auto &top = *reinterpret_cast<void **>(static_cast<char *>(fiber) + g_stack_top_offset);
  if (*mark == nullptr)
    *mark = top;
  else
    top = *mark;
}

}  // namespace parlib::detail::san
#endif

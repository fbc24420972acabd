// Diagnostics that are safe anywhere: in vcore context, in signal handlers,
// with locks held. They format into a stack buffer and write(2) it; they
// never allocate.
#ifndef PARLIB_COMMON_RAW_LOG_H
#define PARLIB_COMMON_RAW_LOG_H

namespace parlib::detail {

// Writes "parlib: <message>\n" to stderr.
void raw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Writes "parlib: fatal: <message>\n" to stderr and aborts.
[[noreturn]] void raw_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Reports a failed PARLIB_CHECK and aborts.
[[noreturn]] void check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

}  // namespace parlib::detail

// An invariant that stays checked in release builds: on failure names the
// place, the condition and the message (printf-style), then aborts.
#define PARLIB_CHECK(cond, ...)                                               \
  do {                                                                        \
    if (__builtin_expect(!(cond), 0))                                         \
      ::parlib::detail::check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__); \
  } while (0)

#endif  // PARLIB_COMMON_RAW_LOG_H

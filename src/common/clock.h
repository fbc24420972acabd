// Clocks and timespec arithmetic: the one place the runtime turns a clock
// reading, a timespec or a timeval into nanoseconds and back.
//
// Every layer keeps time as uint64_t nanoseconds on CLOCK_MONOTONIC (a
// deadline of 0 meaning "none" where a layer says so) and converts at its
// edges, where POSIX hands it a timespec or a timeval. All functions are
// inline, allocate nothing and may be called from any context: vcore
// context, signal handlers, the runtime's own kernel threads.
#ifndef PARLIB_COMMON_CLOCK_H
#define PARLIB_COMMON_CLOCK_H

#include <sys/time.h>
#include <time.h>

#include <cstdint>

namespace parlib::detail {

inline constexpr uint64_t kNsPerSec = 1'000'000'000;
inline constexpr uint64_t kNsPerMs = 1'000'000;
inline constexpr uint64_t kNsPerUs = 1'000;

// A timespec in nanoseconds. The timespec must be valid (see
// timespec_is_valid); tv_sec beyond ~584 years wraps.
constexpr uint64_t timespec_to_ns(const struct timespec &ts) {
  return static_cast<uint64_t>(ts.tv_sec) * kNsPerSec + static_cast<uint64_t>(ts.tv_nsec);
}

// Nanoseconds as a timespec, or as any struct with tv_sec and tv_nsec
// (io_uring's __kernel_timespec, whose fields are long long).
template <typename Timespec = struct timespec>
constexpr Timespec ns_to_timespec(uint64_t ns) {
  Timespec ts{};
  ts.tv_sec = static_cast<decltype(ts.tv_sec)>(ns / kNsPerSec);
  ts.tv_nsec = static_cast<decltype(ts.tv_nsec)>(ns % kNsPerSec);
  return ts;
}

// A timeval in nanoseconds (valid timeval: tv_usec in [0, 1e6)).
constexpr uint64_t timeval_to_ns(const struct timeval &tv) {
  return static_cast<uint64_t>(tv.tv_sec) * kNsPerSec +
         static_cast<uint64_t>(tv.tv_usec) * kNsPerUs;
}

// Nanoseconds as a timeval, rounded down to the microsecond.
constexpr struct timeval ns_to_timeval(uint64_t ns) {
  struct timeval tv {};
  tv.tv_sec = static_cast<time_t>(ns / kNsPerSec);
  tv.tv_usec = static_cast<suseconds_t>((ns % kNsPerSec) / kNsPerUs);
  return tv;
}

// What POSIX calls a valid timeout: tv_sec >= 0 and tv_nsec in [0, 1e9).
constexpr bool timespec_is_valid(const struct timespec &ts) {
  return ts.tv_sec >= 0 && ts.tv_nsec >= 0 && static_cast<uint64_t>(ts.tv_nsec) < kNsPerSec;
}
// The same for a pointer; a null one is not valid.
constexpr bool timespec_is_valid(const struct timespec *ts) {
  return ts != nullptr && timespec_is_valid(*ts);
}

// a + b, with one carry from tv_nsec into tv_sec: for valid timespecs the
// result is normalised (tv_nsec below 1e9).
constexpr struct timespec timespec_add(const struct timespec &a, const struct timespec &b) {
  struct timespec sum {};
  sum.tv_sec = a.tv_sec + b.tv_sec;
  sum.tv_nsec = a.tv_nsec + b.tv_nsec;
  if (sum.tv_nsec >= static_cast<long>(kNsPerSec)) {
    sum.tv_nsec -= static_cast<long>(kNsPerSec);
    sum.tv_sec += 1;
  }
  return sum;
}

// The time on clk, as a timespec. clock_gettime is a vDSO call for the
// clocks the runtime reads (no system call, no errno on a valid clock).
inline struct timespec clock_now(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return ts;
}

// The time on clk in nanoseconds.
inline uint64_t clock_ns(clockid_t clk) { return timespec_to_ns(clock_now(clk)); }

// Nanoseconds on CLOCK_MONOTONIC: the runtime's time base.
inline uint64_t monotonic_now_ns() { return clock_ns(CLOCK_MONOTONIC); }

// An absolute deadline on CLOCK_REALTIME or CLOCK_BOOTTIME (abs_ns, in
// nanoseconds on that clock) as CLOCK_MONOTONIC nanoseconds, as of now:
// later steps of that clock do not move it. A deadline that has passed
// maps to now.
inline uint64_t deadline_to_monotonic_ns(clockid_t clk, uint64_t abs_ns) {
  const uint64_t mono = monotonic_now_ns();
  const uint64_t other = clock_ns(clk);
  return abs_ns <= other ? mono : mono + (abs_ns - other);
}

// The POSIX timed calls' deadlines as CLOCK_MONOTONIC nanoseconds; the
// timespec must be valid. An absolute CLOCK_REALTIME deadline (as of now);
inline uint64_t realtime_deadline_to_monotonic_ns(const struct timespec &abs_realtime) {
  return deadline_to_monotonic_ns(CLOCK_REALTIME, timespec_to_ns(abs_realtime));
}
// an absolute CLOCK_MONOTONIC one;
constexpr uint64_t monotonic_deadline_ns(const struct timespec &abs_monotonic) {
  return timespec_to_ns(abs_monotonic);
}
// a timeout relative to now.
inline uint64_t relative_timeout_to_monotonic_ns(const struct timespec &rel) {
  return monotonic_now_ns() + timespec_to_ns(rel);
}

}  // namespace parlib::detail

#endif  // PARLIB_COMMON_CLOCK_H

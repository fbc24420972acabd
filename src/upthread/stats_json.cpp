// PARLIB_STATS=json: the counters of PARLIB_STATS=1 as one JSON object on
// one line of stderr, for tools (docs/upthread.md):
//   {"pid":P,"vcores":[{"vcore":0,"spare":false,"switches":N,"steals":N,
//    "preemptions":N,"events":N,"syscalls":N,"idle_ms":X},...],
//    "spare_vcores_used":N}
// A spare vcore that never ran is left out, as in the table.
#include <parlib/vcore.h>
#include <unistd.h>
#include <upthread/upthread.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/env.h"
#include "upthread/upthread_internal.h"

namespace parlib::detail::upthread_impl {

StatsMode stats_mode() {
  // Parsed once (a function-local static: thread-safe, and first used in
  // libupthread's constructor).
  static const StatsMode mode = [] {
    const char *v = getenv("PARLIB_STATS");
    if (v == nullptr || strcmp(v, "0") == 0) return StatsMode::kOff;
    if (strcmp(v, "1") == 0) return StatsMode::kText;
    if (strcmp(v, "json") == 0) return StatsMode::kJson;
    env_report_invalid("PARLIB_STATS", v, "0, 1 or json");
    return StatsMode::kInvalid;
  }();
  return mode;
}

void print_stats_json() {
  // One fprintf per vcore into a buffered stream, flushed once: the object
  // reaches stderr as one write unless it is larger than the buffer.
  char buf[16384];
  FILE *out = fmemopen(buf, sizeof buf, "w");
  if (out == nullptr) return;
  fprintf(out, "{\"pid\":%ld,\"vcores\":[", static_cast<long>(getpid()));
  int spares_used = 0;
  const char *sep = "";
  for (int i = 0, n = vcore_slots(); i < n; ++i) {
    struct upthread_vcore_stats st {};
    if (upthread_get_vcore_stats(static_cast<uint32_t>(i), &st) != 0) continue;
    bool spare = i >= max_vcores();
    if (spare && st.switches == 0) continue;  // a spare never used
    if (spare) ++spares_used;
    fprintf(out,
            "%s{\"vcore\":%d,\"spare\":%s,\"switches\":%llu,\"steals\":%llu,"
            "\"preemptions\":%llu,\"events\":%llu,\"syscalls\":%llu,\"idle_ms\":%.1f}",
            sep, i, spare ? "true" : "false", static_cast<unsigned long long>(st.switches),
            static_cast<unsigned long long>(st.steals),
            static_cast<unsigned long long>(st.preemptions),
            static_cast<unsigned long long>(st.events),
            static_cast<unsigned long long>(st.syscalls), static_cast<double>(st.idle_ns) / 1e6);
    sep = ",";
  }
  fprintf(out, "],\"spare_vcores_used\":%d}\n", spares_used);
  long len = ftell(out);
  fclose(out);
  // A truncated object is worse than none for a tool: say so instead.
  if (len <= 0 || len >= static_cast<long>(sizeof buf) - 1) {
    fprintf(stderr, "upthread stats: too many vcores for the JSON buffer\n");
    return;
  }
  fwrite(buf, 1, static_cast<size_t>(len), stderr);
  fflush(stderr);
}

}  // namespace parlib::detail::upthread_impl

// For libupthread-preload.so (UPTHREAD_PRIVATE): PARLIB_STATS as parsed
// here, so that the shim refuses a malformed value without reading it again.
extern "C" __attribute__((visibility("default"))) int __upthread_stats_mode_invalid(void) {
  using parlib::detail::upthread_impl::StatsMode;
  return parlib::detail::upthread_impl::stats_mode() == StatsMode::kInvalid;
}

#include "common/env.h"

#include <cstdio>
#include <cstdlib>

#include "common/raw_log.h"

namespace parlib::detail {

void env_report_invalid(const char *name, const char *value, const char *want) {
  raw_log("%s=\"%s\": want %s", name, value, want);
}

EnvStatus env_integer(const char *name, uint64_t min, uint64_t max, const char *what,
                      uint64_t *out) {
  const char *s = getenv(name);
  if (s == nullptr) return EnvStatus::kUnset;
  uint64_t v = 0;
  bool ok = *s != '\0';
  for (const char *p = s; ok && *p != '\0'; ++p) {
    ok = *p >= '0' && *p <= '9';
    // Stops before v can overflow: max is below UINT64_MAX / 10 for every knob.
    if (ok) v = v * 10 + static_cast<uint64_t>(*p - '0');
    ok = ok && v <= max;
  }
  if (!ok || v < min) {
    char want[96];
    snprintf(want, sizeof want, "%s in %llu..%llu", what, static_cast<unsigned long long>(min),
             static_cast<unsigned long long>(max));
    env_report_invalid(name, s, want);
    return EnvStatus::kInvalid;
  }
  *out = v;
  return EnvStatus::kValid;
}

bool env_flag(const char *name) {
  const char *s = getenv(name);
  return s != nullptr && *s != '\0' && !(s[0] == '0' && s[1] == '\0');
}

}  // namespace parlib::detail

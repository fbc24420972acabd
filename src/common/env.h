// Environment knobs: the one parser and the one error format for every
// PARLIB_* and UPTHREAD_* variable.
//
// Each knob is read once, by the layer that owns it, at that layer's
// initialisation (README.md lists them all); other layers ask the owner
// for the value instead of reading the variable again. A malformed value
// is reported on stderr in one line that names the variable:
//   parlib: NAME="VALUE": want WHAT
// and the owner decides what follows (vcore_lib_init fails with EINVAL,
// the LD_PRELOAD shim exits 2, the stall detector stays off).
#ifndef PARLIB_COMMON_ENV_H
#define PARLIB_COMMON_ENV_H

#include <cstdint>

namespace parlib::detail {

enum class EnvStatus { kUnset, kValid, kInvalid };

// NAME as a decimal integer in [min, max]: decimal digits only (no sign,
// no spaces; an empty value is malformed). kInvalid has been reported
// ("want <what> in MIN..MAX"); *out is written only for kValid. Not
// async-signal-safe (getenv); allocates nothing.
EnvStatus env_integer(const char *name, uint64_t min, uint64_t max, const char *what,
                      uint64_t *out);

// True when NAME is set to anything but "" or "0" (PARLIB_NO_IO_URING=1).
bool env_flag(const char *name);

// Reports a malformed value in the one format: "NAME="VALUE": want WHAT".
void env_report_invalid(const char *name, const char *value, const char *want);

}  // namespace parlib::detail

#endif  // PARLIB_COMMON_ENV_H

#include "options.h"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace kweb {
namespace {

bool parse_int(const char *s, long lo, long hi, int *out) {
  if (s == nullptr || *s == '\0') return false;
  char *end = nullptr;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  *out = static_cast<int>(v);
  return true;
}

// Seconds, possibly fractional (tests use short timeouts), to milliseconds.
bool parse_seconds(const char *s, int *out_ms) {
  if (s == nullptr || *s == '\0') return false;
  char *end = nullptr;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v) || v <= 0 || v > 86400) return false;
  *out_ms = static_cast<int>(std::ceil(v * 1000));
  return true;
}

}  // namespace

const char *sched_name(SchedKind kind) {
  switch (kind) {
    case SchedKind::kNptl:
      return "nptl";
    case SchedKind::kUpthread:
      return "upthread";
    case SchedKind::kCustom:
      return "custom";
  }
  return "?";
}

const char *usage() {
  return "usage: kweb --root DIR --port PORT [--sched nptl|upthread|custom] [--listen ADDR]\n"
         "            [--vcores N] [--threads N] [--burst N] [--max-conns N]\n"
         "            [--idle-timeout SEC] [--request-timeout SEC] [--file-cache SEC]\n"
         "            [--admin]\n";
}

bool parse_options(int argc, char **argv, Options *out, std::string *error, bool *help) {
  *help = false;
  for (int i = 1; i < argc; ++i) {
    std::string opt = argv[i];
    if (opt == "--help" || opt == "-h") {
      *help = true;
      return true;
    }
    if (opt == "--admin") {
      out->admin = true;
      continue;
    }
    // Every other option takes a value, as "--opt VALUE" or "--opt=VALUE".
    const char *val = nullptr;
    size_t eq = opt.find('=');
    if (eq != std::string::npos) {
      val = argv[i] + eq + 1;
      opt.resize(eq);
    } else if (i + 1 < argc) {
      val = argv[++i];
    }
    auto bad = [&](const char *what) {
      *error = opt + ": " + what;
      return false;
    };
    if (opt != "--root" && opt != "--listen" && opt != "--port" && opt != "--sched" &&
        opt != "--vcores" && opt != "--threads" && opt != "--burst" && opt != "--max-conns" &&
        opt != "--idle-timeout" && opt != "--request-timeout" && opt != "--file-cache") {
      *error = "unknown option " + opt + " (see --help)";
      return false;
    }
    if (val == nullptr) return bad("missing value");
    if (opt == "--root") {
      if (*val == '\0') return bad("empty directory");
      out->root = val;
    } else if (opt == "--listen") {
      out->listen = val;
    } else if (opt == "--port") {
      if (!parse_int(val, 0, 65535, &out->port)) return bad("expected a port number 0..65535");
    } else if (opt == "--sched") {
      if (strcmp(val, "nptl") == 0)
        out->sched = SchedKind::kNptl;
      else if (strcmp(val, "upthread") == 0)
        out->sched = SchedKind::kUpthread;
      else if (strcmp(val, "custom") == 0)
        out->sched = SchedKind::kCustom;
      else
        return bad("expected nptl, upthread or custom");
    } else if (opt == "--vcores") {
      if (!parse_int(val, 1, 4096, &out->vcores)) return bad("expected a number 1..4096");
    } else if (opt == "--threads") {
      if (!parse_int(val, 1, 100000, &out->threads)) return bad("expected a number 1..100000");
    } else if (opt == "--burst") {
      if (!parse_int(val, 1, 1000000, &out->burst)) return bad("expected a number >= 1");
    } else if (opt == "--max-conns") {
      if (!parse_int(val, 1, 1000000, &out->max_conns)) return bad("expected a number >= 1");
    } else if (opt == "--idle-timeout") {
      if (!parse_seconds(val, &out->idle_timeout_ms)) return bad("expected seconds > 0");
    } else if (opt == "--request-timeout") {
      if (!parse_seconds(val, &out->request_timeout_ms)) return bad("expected seconds > 0");
    } else if (opt == "--file-cache") {
      if (strcmp(val, "0") == 0)
        out->file_cache_ms = 0;
      else if (!parse_seconds(val, &out->file_cache_ms))
        return bad("expected seconds >= 0");
    }
  }
  if (out->root.empty()) {
    *error = "--root DIR is required";
    return false;
  }
  if (out->port < 0) {
    *error = "--port PORT is required";
    return false;
  }
  return true;
}

}  // namespace kweb

#include "common/raw_log.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace parlib::detail {
namespace {

void vlog(const char *prefix, const char *fmt, va_list ap) {
  // vsnprintf with %s/%d/%p/%x formats does not allocate in glibc.
  char buf[512];
  int saved_errno = errno;
  int n = snprintf(buf, sizeof buf, "parlib: %s", prefix);
  if (n < 0) n = 0;
  int m = vsnprintf(buf + n, sizeof buf - static_cast<size_t>(n), fmt, ap);
  size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : static_cast<size_t>(m));
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, buf, len);
  (void)ignored;
  errno = saved_errno;
}

}  // namespace

void raw_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog("", fmt, ap);
  va_end(ap);
}

void raw_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog("fatal: ", fmt, ap);
  va_end(ap);
  abort();
}

void check_failed(const char *file, int line, const char *cond, const char *fmt, ...) {
  char message[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  raw_fatal("%s:%d: %s (check failed: %s)", file, line, message, cond);
}

}  // namespace parlib::detail

// The runtime's own descriptors are not the program's (common/runtime_fds.h):
// a program may close every descriptor it did not open -- a daemon's
// close_range(3, ~0U, 0), closefrom(3), a close loop up to the limit, or
// one over /proc/self/fd -- and keep running. close, close_range and
// closefrom skip them, as if those numbers were not open; dup2 and dup3
// refuse to replace one (EBUSY, as Linux's dup2 may answer) and to copy
// one (EBADF). The check is one load and a compare for descriptors below
// the runtime's, which sit at the top of the range. See docs/preload.md.
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/runtime_fds.h"
#include "shim.h"

namespace {

int fail(int err) {
  errno = err;
  return -1;
}

}  // namespace

SHIM_EXPORT int close(int fd) {
  if (__parlib_is_runtime_fd(fd)) return fail(EBADF);  // not open, as far as the program knows
  return REAL(close)(fd);
}

SHIM_EXPORT int close_range(unsigned first, unsigned last, int flags) {
  if (first > last) return REAL(close_range)(first, last, flags);  // EINVAL
  // The runtime's descriptors cut [first, last] into pieces; each piece is
  // one close_range (the first one unshares the table if asked to, the
  // others then act on the unshared one).
  unsigned lo = first;
  for (;;) {
    int r = __parlib_next_runtime_fd(lo > INT_MAX ? INT_MAX : static_cast<int>(lo));
    if (r < 0 || static_cast<unsigned>(r) > last || static_cast<unsigned>(r) < lo)
      return REAL(close_range)(lo, last, flags);
    if (static_cast<unsigned>(r) > lo &&
        REAL(close_range)(lo, static_cast<unsigned>(r) - 1, flags) != 0)
      return -1;
    if (static_cast<unsigned>(r) >= last) return 0;
    lo = static_cast<unsigned>(r) + 1;
  }
}

SHIM_EXPORT void closefrom(int lowfd) {
  if (lowfd < 0) lowfd = 0;
  if (close_range(static_cast<unsigned>(lowfd), ~0U, 0) == 0) return;
  // No close_range (before Linux 5.9): what /proc/self/fd lists, as glibc
  // does.
  DIR *d = opendir("/proc/self/fd");
  if (d == nullptr) return;
  int self = dirfd(d);
  while (struct dirent *e = readdir(d)) {
    char *end = nullptr;
    long fd = strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd < lowfd || fd == self) continue;
    close(static_cast<int>(fd));
  }
  closedir(d);
}

SHIM_EXPORT int dup2(int oldfd, int newfd) {
  if (__parlib_is_runtime_fd(oldfd)) return fail(EBADF);
  if (__parlib_is_runtime_fd(newfd)) return fail(EBUSY);
  return REAL(dup2)(oldfd, newfd);
}

SHIM_EXPORT int dup3(int oldfd, int newfd, int flags) {
  if (__parlib_is_runtime_fd(oldfd)) return fail(EBADF);
  if (__parlib_is_runtime_fd(newfd)) return fail(EBUSY);
  return REAL(dup3)(oldfd, newfd, flags);
}

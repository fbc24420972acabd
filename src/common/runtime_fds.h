// The runtime's own file descriptors (io_uring rings, eventfds, the alarm
// timerfd, procfs files): moved to the top of the descriptor range and
// remembered, so that a program that closes every descriptor it did not
// open (close_range(3, ~0U, 0), a close loop, closefrom) or counts on
// getting 3 from its first open() sees no difference. The LD_PRELOAD shim
// skips them in close, close_range, closefrom, dup2 and dup3
// (src/upthread/preload/descriptors.cpp). See docs/preload.md.
#ifndef PARLIB_COMMON_RUNTIME_FDS_H
#define PARLIB_COMMON_RUNTIME_FDS_H

#include <parlib/common.h>

namespace parlib::detail {

// Takes fd (a descriptor the runtime just opened, close-on-exec) to the
// top of the range and remembers it; returns the descriptor to use from
// now on. fd itself when it cannot be moved (nothing free up there).
// errno is preserved.
int hide_runtime_fd(int fd);

// Closes a descriptor that hide_runtime_fd returned, with the raw system
// call (the shim's close would refuse it).
void close_runtime_fd(int fd);

bool is_runtime_fd(int fd);

}  // namespace parlib::detail

extern "C" {
// For libupthread-preload.so (version PARLIB_PRIVATE). Any thread, any
// context, lock-free.
// 1 if fd is one of the runtime's descriptors, else 0.
PARLIB_API int __parlib_is_runtime_fd(int fd);
// The smallest runtime descriptor >= fd, or -1.
PARLIB_API int __parlib_next_runtime_fd(int fd);
}

#endif  // PARLIB_COMMON_RUNTIME_FDS_H

// The runtime's descriptors at the top of the range (runtime_fds.h).
//
// Where: the lowest free number at or above base, base = the soft
// RLIMIT_NOFILE (kCeiling at most) less kReserve (at least half of it),
// taken once. Not higher than kCeiling: the kernel sizes a process's
// descriptor table for its highest descriptor, and fork copies the table
// (under a limit of 2^20, a descriptor near it costs 8 MiB per process and
// that much copying per fork). A program
// sees its own descriptors numbered from 3 as natively, and a program that
// opens descriptors up to its limit runs out after as many as before (the
// runtime's count against the limit wherever they are). Which: a bitmap of
// kSpan numbers from base, read without locks, so that the shim's close()
// costs one load and a compare for a program's usual small descriptors.
#include "common/runtime_fds.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>

namespace parlib::detail {
namespace {

constexpr int kReserve = 256;
constexpr long kCeiling = 4096;
constexpr int kSpan = 4096;

std::atomic<int> g_base{-1};
// The lowest runtime descriptor ever marked (INT_MAX: none): below it the
// answer is "no" after one load.
std::atomic<int> g_lowest{INT_MAX};
std::atomic<uint64_t> g_bits[kSpan / 64];

int base() {
  int b = g_base.load(std::memory_order_acquire);
  if (b >= 0) return b;
  struct rlimit rl;
  long soft = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    soft = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > static_cast<rlim_t>(kCeiling)
               ? kCeiling
               : static_cast<long>(rl.rlim_cur);
  long want = soft - kReserve;
  if (want < soft / 2) want = soft / 2;
  if (want < 3) want = 3;
  int expected = -1;
  // Every caller computes the same value; the first store wins.
  g_base.compare_exchange_strong(expected, static_cast<int>(want), std::memory_order_acq_rel);
  return g_base.load(std::memory_order_acquire);
}

void mark(int fd, bool on) {
  int idx = fd - g_base.load(std::memory_order_acquire);
  if (idx < 0 || idx >= kSpan) return;
  uint64_t bit = uint64_t{1} << (idx % 64);
  if (on) {
    g_bits[idx / 64].fetch_or(bit, std::memory_order_release);
    int low = g_lowest.load(std::memory_order_relaxed);
    while (fd < low && !g_lowest.compare_exchange_weak(low, fd, std::memory_order_release)) {
    }
  } else {
    g_bits[idx / 64].fetch_and(~bit, std::memory_order_release);
  }
}

}  // namespace

int hide_runtime_fd(int fd) {
  if (fd < 0) return fd;
  int saved = errno;
  int b = base();
  int moved = fd;
  if (fd < b) {
    long n = syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, b);
    if (n >= 0) {
      syscall(SYS_close, fd);
      moved = static_cast<int>(n);
    }
  }
  mark(moved, true);
  errno = saved;
  return moved;
}

void close_runtime_fd(int fd) {
  if (fd < 0) return;
  mark(fd, false);
  int saved = errno;
  syscall(SYS_close, fd);
  errno = saved;
}

bool is_runtime_fd(int fd) {
  if (fd < g_lowest.load(std::memory_order_relaxed)) return false;
  int idx = fd - g_base.load(std::memory_order_acquire);
  if (idx < 0 || idx >= kSpan) return false;
  return (g_bits[idx / 64].load(std::memory_order_acquire) >> (idx % 64)) & 1;
}

}  // namespace parlib::detail

using namespace parlib::detail;

extern "C" {

int __parlib_is_runtime_fd(int fd) { return is_runtime_fd(fd) ? 1 : 0; }

int __parlib_next_runtime_fd(int fd) {
  int low = g_lowest.load(std::memory_order_relaxed);
  if (low == INT_MAX) return -1;
  if (fd < low) fd = low;
  int b = g_base.load(std::memory_order_acquire);
  for (int idx = fd - b; idx >= 0 && idx < kSpan; ++idx) {
    uint64_t w = g_bits[idx / 64].load(std::memory_order_acquire) >> (idx % 64);
    if (w != 0) return b + idx + __builtin_ctzll(w);
    idx |= 63;  // the rest of this word is empty
  }
  return -1;
}

}  // extern "C"

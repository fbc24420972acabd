// The cache-line constants: the one place the runtime says how far apart
// data written by different CPUs must be.
#ifndef PARLIB_COMMON_CACHE_LINE_H
#define PARLIB_COMMON_CACHE_LINE_H

#include <parlib/common.h>

#include <cstddef>

namespace parlib::detail {

// The coherence granule (PARLIB_CACHE_LINE_SIZE, the public headers'
// padding): two fields written by different CPUs belong on different lines.
inline constexpr std::size_t kCacheLineSize = PARLIB_CACHE_LINE_SIZE;

// Two lines: x86-64's adjacent-line prefetcher fetches lines in aligned
// pairs, so per-vcore structs written on the switch path are aligned to a
// pair, or neighbouring vcores would still be coupled.
inline constexpr std::size_t kCacheLinePairSize = 2 * kCacheLineSize;

}  // namespace parlib::detail

#endif  // PARLIB_COMMON_CACHE_LINE_H

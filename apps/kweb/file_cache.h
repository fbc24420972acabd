// An open-file cache, as nginx's open_file_cache: a file a request opened
// stays open, with its stat and type, for --file-cache SEC seconds, so
// that the next requests for it skip openat2, fstat and close (three of
// the 8.6 system calls a request cost; docs/kweb.md). A file changed,
// replaced or removed within that time is served as it was when it was
// opened, as nginx does; --file-cache 0 opens the file on every request.
#ifndef KWEB_FILE_CACHE_H
#define KWEB_FILE_CACHE_H

#include <sys/stat.h>

#include <parlib/spinlock.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "doc_root.h"

namespace kweb {

// A regular file opened beneath the root; closed when the last request
// that uses it and the cache have let it go.
struct OpenFile {
  OpenFile(int fd_, const struct stat &st_, std::string type_name_, std::string bytes_)
      : fd(fd_), st(st_), type_name(std::move(type_name_)), bytes(std::move(bytes_)) {}
  ~OpenFile();
  OpenFile(const OpenFile &) = delete;
  OpenFile &operator=(const OpenFile &) = delete;
  const int fd;
  const struct stat st;
  const std::string type_name;  // whose extension gives the Content-Type
  // A cached file of at most kSmallFile bytes, read when it was opened:
  // its response is the head and these bytes in one send, without the
  // second call and the splice path of sendfile. Empty otherwise (and
  // for an empty file).
  const std::string bytes;
};

inline constexpr size_t kSmallFile = 8192;

class FileCache {
 public:
  // valid_ms 0: no caching.
  FileCache(const DocRoot &root, int64_t valid_ms) : root_(root), valid_ms_(valid_ms) {}

  // The file for rel (as decode_target made it; a directory means its
  // index.html), or nullptr when there is no such regular file.
  std::shared_ptr<const OpenFile> get(const std::string &rel);

 private:
  struct Entry {
    std::shared_ptr<const OpenFile> file;
    int64_t opened_ms;
  };
  // Shards keep the lock's line from bouncing between vcores that serve
  // different files. The lock is a spin_pdr lock: held for a map lookup
  // and a reference count, with notifications off, so a holder on a vcore
  // is never preempted by the upthread or custom scheduler (a preempted
  // holder would leave the others spinning); for NPTL it is a spinlock.
  static constexpr size_t kShards = 16;
  static constexpr size_t kMaxPerShard = 256;
  struct alignas(64) Shard {
    spin_pdr_lock_t lock = SPINPDR_INITIALIZER;
    std::unordered_map<std::string, Entry> map;
  };
  // keep_bytes: read a small file's bytes too (only for the cache).
  std::shared_ptr<const OpenFile> open_uncached(const std::string &rel, bool keep_bytes) const;

  const DocRoot &root_;
  const int64_t valid_ms_;
  Shard shards_[kShards];
};

}  // namespace kweb

#endif  // KWEB_FILE_CACHE_H

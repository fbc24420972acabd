// The open-file cache (file_cache.h).
#include "file_cache.h"

#include <unistd.h>

#include <functional>
#include <vector>

#include "server.h"

namespace kweb {

OpenFile::~OpenFile() { close(fd); }

std::shared_ptr<const OpenFile> FileCache::open_uncached(const std::string &rel,
                                                         bool keep_bytes) const {
  struct stat st;
  std::string type_name;
  int fd = root_.open_file(rel, &st, &type_name);
  if (fd < 0) return nullptr;
  std::string bytes;
  if (keep_bytes && st.st_size > 0 && static_cast<uint64_t>(st.st_size) <= kSmallFile) {
    bytes.resize(static_cast<size_t>(st.st_size));
    // All of it or nothing: a file that changed size meanwhile is sent
    // with sendfile, whose short count ends the connection.
    if (pread(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()))
      bytes.clear();
  }
  return std::make_shared<const OpenFile>(fd, st, std::move(type_name), std::move(bytes));
}

std::shared_ptr<const OpenFile> FileCache::get(const std::string &rel) {
  if (valid_ms_ == 0) return open_uncached(rel, false);
  Shard &sh = shards_[std::hash<std::string>{}(rel) % kShards];
  const int64_t now = monotonic_ms();
  spin_pdr_lock(&sh.lock);
  auto it = sh.map.find(rel);
  if (it != sh.map.end() && now - it->second.opened_ms < valid_ms_) {
    std::shared_ptr<const OpenFile> f = it->second.file;
    spin_pdr_unlock(&sh.lock);
    return f;
  }
  spin_pdr_unlock(&sh.lock);
  // Opened outside the lock: a slow path lookup must not hold up the
  // requests for other files of the shard. Two requests that miss at once
  // both open; the later insert wins and the other copy closes with its
  // last request.
  std::shared_ptr<const OpenFile> f = open_uncached(rel, true);
  if (f == nullptr) return nullptr;  // errors are not cached: a new file is seen at once
  // What the cache lets go is closed after the unlock: a close may be a
  // call into parlib's system call service, which must not happen with
  // the lock held.
  std::vector<std::shared_ptr<const OpenFile>> dropped;
  spin_pdr_lock(&sh.lock);
  auto [pos, fresh] = sh.map.try_emplace(rel, Entry{f, now});
  if (!fresh) {
    dropped.push_back(std::move(pos->second.file));
    pos->second = Entry{f, now};
  } else if (sh.map.size() > kMaxPerShard) {
    // Full: forget the expired entries, or, if none is, this one (it is
    // served all the same).
    for (auto e = sh.map.begin(); e != sh.map.end();) {
      if (now - e->second.opened_ms < valid_ms_) {
        ++e;
        continue;
      }
      dropped.push_back(std::move(e->second.file));
      e = sh.map.erase(e);
    }
    if (sh.map.size() > kMaxPerShard) {
      dropped.push_back(std::move(pos->second.file));
      sh.map.erase(pos);
    }
  }
  spin_pdr_unlock(&sh.lock);
  return f;
}

}  // namespace kweb

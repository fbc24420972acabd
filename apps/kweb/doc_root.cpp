#include "doc_root.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace kweb {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Whether openat2 exists here (Linux >= 5.6); learnt at the first call.
std::atomic<bool> g_no_openat2{false};

}  // namespace

bool decode_target(std::string_view target, std::string *rel) {
  size_t q = target.find_first_of("?#");
  if (q != std::string_view::npos) target = target.substr(0, q);
  rel->clear();
  std::string segment;
  auto flush = [&]() {
    if (segment.empty() || segment == ".") {
      segment.clear();
      return true;
    }
    if (segment == "..") return false;
    if (!rel->empty()) rel->push_back('/');
    rel->append(segment);
    segment.clear();
    return true;
  };
  for (size_t i = 0; i < target.size(); ++i) {
    char c = target[i];
    if (c == '%') {
      int hi = i + 2 < target.size() ? hex_value(target[i + 1]) : -1;
      int lo = i + 2 < target.size() ? hex_value(target[i + 2]) : -1;
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
      if (c == '\0') return false;
      // An encoded '/' still separates segments: decoding first and
      // splitting afterwards is what makes "%2e%2e%2f" a ".." segment.
    }
    if (c == '/') {
      if (!flush()) return false;
    } else {
      segment.push_back(c);
    }
  }
  return flush();
}

bool DocRoot::open(const char *dir) {
  dirfd_ = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return dirfd_ >= 0;
}

DocRoot::~DocRoot() {
  if (dirfd_ >= 0) close(dirfd_);
}

int DocRoot::open_beneath(const char *rel) const {
  if (!g_no_openat2.load(std::memory_order_relaxed)) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    // O_NONBLOCK: a FIFO planted in the root must not hang the opener.
    how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
    // The kernel resolves the whole path with the root as a fence: a ".."
    // or a symbolic link (absolute or relative) that would leave it fails
    // with EXDEV, and /proc magic links are refused.
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(syscall(SYS_openat2, dirfd_, rel, &how, sizeof how));
    if (fd >= 0 || errno != ENOSYS) return fd;
    g_no_openat2.store(true, std::memory_order_relaxed);
  }
  return open_by_walk(rel);
}

// Without openat2: walk the segments one openat at a time and follow no
// symbolic link at all (stricter than openat2, which allows links that stay
// inside).
int DocRoot::open_by_walk(const char *rel) const {
  int cur = dirfd_;
  std::string path(rel);
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string seg =
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    bool last = slash == std::string::npos;
    int flags = O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (last ? O_RDONLY : O_PATH | O_DIRECTORY);
    int next = openat(cur, seg.empty() ? "." : seg.c_str(), flags);
    int saved = errno;
    if (cur != dirfd_) close(cur);
    if (next < 0) {
      errno = saved;
      return -1;
    }
    if (last) return next;
    cur = next;
    start = slash + 1;
  }
}

int DocRoot::open_file(const std::string &rel, struct stat *st, std::string *type_name) const {
  int fd = open_beneath(rel.empty() ? "." : rel.c_str());
  if (fd < 0) return -1;
  if (fstat(fd, st) != 0) {
    close(fd);
    return -1;
  }
  *type_name = rel;
  if (S_ISDIR(st->st_mode)) {
    close(fd);
    std::string index = rel.empty() ? "index.html" : rel + "/index.html";
    fd = open_beneath(index.c_str());
    if (fd < 0) return -1;
    if (fstat(fd, st) != 0) {
      close(fd);
      return -1;
    }
    *type_name = index;
  }
  if (!S_ISREG(st->st_mode)) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace kweb

// The document root: turning a request target into an open regular file
// beneath it, with no way out of it (no "..", encoded or not, no NUL, no
// symbolic link that leads outside).
#ifndef KWEB_DOC_ROOT_H
#define KWEB_DOC_ROOT_H

#include <sys/stat.h>

#include <string>
#include <string_view>

namespace kweb {

// decode_target: the path of a request target (query dropped),
// percent-decoded and split into segments, joined with '/' and relative to
// the root ("" for the root itself). "." and empty segments are dropped.
// False for a malformed escape, an encoded NUL or a ".." segment: a path
// that tries to climb is refused outright, not clamped at the root.
bool decode_target(std::string_view target, std::string *rel);

class DocRoot {
 public:
  // Opens dir; false with errno on failure.
  bool open(const char *dir);
  ~DocRoot();

  // open_file: opens rel (as decode_target made it) beneath the root,
  // following symbolic links only while they stay beneath it; a directory
  // means its index.html. Returns the descriptor (O_RDONLY | O_CLOEXEC) of
  // a regular file with *st filled and *type_name set to the name whose
  // extension gives the Content-Type, or -1 when there is no such file.
  int open_file(const std::string &rel, struct stat *st, std::string *type_name) const;

 private:
  int open_beneath(const char *rel) const;
  int open_by_walk(const char *rel) const;
  int dirfd_ = -1;
};

}  // namespace kweb

#endif  // KWEB_DOC_ROOT_H

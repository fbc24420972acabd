// Writing HTTP/1.1 response heads: status lines, the Date cache, content
// types by file extension, and the small bodies of error responses.
#ifndef KWEB_HTTP_RESPONSE_H
#define KWEB_HTTP_RESPONSE_H

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string_view>

namespace kweb {

// A response head under construction, in a fixed buffer (a head is a few
// hundred bytes; kCapacity leaves room for long Content-Types).
class ResponseHead {
 public:
  static constexpr size_t kCapacity = 1024;

  // Status line, Server and Date.
  explicit ResponseHead(int status);
  void add(std::string_view name, std::string_view value);
  void add_number(std::string_view name, uint64_t value);
  void add_date(std::string_view name, time_t t);
  // Ends the head with Connection (keep-alive for HTTP/1.0 clients that
  // asked for it, close when closing) and the empty line.
  std::string_view finish(bool keep_alive, bool http10);

 private:
  void append(std::string_view s);
  char buf_[kCapacity];
  size_t len_ = 0;
};

// The reason phrase of status.
const char *reason_phrase(int status);

// The Content-Type for a file name, by its extension.
std::string_view content_type_for(std::string_view path);

// format_http_date: t as an IMF-fixdate into out (30 bytes with the NUL).
void format_http_date(time_t t, char out[30]);

}  // namespace kweb

#endif  // KWEB_HTTP_RESPONSE_H

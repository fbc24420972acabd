// Parsing one HTTP/1.x request head (request line and header fields) out
// of a connection's read buffer. Only what a static file server needs is
// kept; everything is checked against RFC 9112's grammar, and anything
// this server cannot frame safely is an error, never a guess.
#ifndef KWEB_HTTP_REQUEST_H
#define KWEB_HTTP_REQUEST_H

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string_view>

namespace kweb {

// Limits on a request head. A request line longer than kMaxRequestLine is
// answered 414, a head (line and fields) longer than kMaxRequestHead 431.
inline constexpr size_t kMaxRequestLine = 8192;
inline constexpr size_t kMaxRequestHead = 16384;
// The largest body a request may announce (this server reads none; it
// closes the connection after answering one that has a body).
inline constexpr uint64_t kMaxRequestBody = 1 << 20;

enum class Method { kGet, kHead, kOther };

struct Request {
  Method method = Method::kOther;
  std::string_view target;  // as sent (origin form), views into the buffer
  int version_minor = 1;    // HTTP/1.minor
  bool keep_alive = true;   // after the Connection field and the version
  bool has_host = false;
  bool has_body = false;  // Content-Length > 0
  uint64_t content_length = 0;
  bool chunked = false;  // any Transfer-Encoding
  bool has_ims = false;  // If-Modified-Since, parsed
  time_t if_modified_since = 0;
};

// What parse_request found: a request, or the status to refuse it with.
enum class ParseStatus {
  kOk,
  kBadRequest,           // 400
  kBodyTooLarge,         // 413
  kVersionNotSupported,  // 505
};

// find_head_end: the length of the request head at the start of buf
// (through its terminating empty line), or 0 if it is not complete yet.
size_t find_head_end(std::string_view buf);

// parse_request: parses head (as find_head_end delimited it) into *req,
// whose views point into head.
ParseStatus parse_request(std::string_view head, Request *req);

// parse_http_date: an HTTP date in any of the three forms RFC 9110 says a
// recipient must accept; false if it is none of them.
bool parse_http_date(std::string_view s, time_t *out);

}  // namespace kweb

#endif  // KWEB_HTTP_REQUEST_H

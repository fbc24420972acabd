#include "http_request.h"

#include <strings.h>

#include <cstring>
#include <string>

namespace kweb {
namespace {

// tchar of RFC 9110 5.6.2: what a method or a field name consists of.
bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Does the comma-separated list (a Connection field) hold token?
bool list_has(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim_ows(list.substr(0, comma));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

ParseStatus parse_request_line(std::string_view line, Request *req) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return ParseStatus::kBadRequest;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return ParseStatus::kBadRequest;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return ParseStatus::kBadRequest;
  // HTTP-version = "HTTP/" DIGIT "." DIGIT. A major version other than 1
  // is well formed but not ours: 505.
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
    return ParseStatus::kBadRequest;
  if (target.empty() || target.front() != '/') return ParseStatus::kBadRequest;
  for (unsigned char c : target)
    if (c <= ' ' || c == 0x7f) return ParseStatus::kBadRequest;
  if (version[5] != '1') return ParseStatus::kVersionNotSupported;
  req->method = method == "GET" ? Method::kGet : method == "HEAD" ? Method::kHead : Method::kOther;
  req->target = target;
  req->version_minor = version[7] - '0';
  return ParseStatus::kOk;
}

}  // namespace

size_t find_head_end(std::string_view buf) {
  size_t pos = buf.find("\r\n\r\n");
  return pos == std::string_view::npos ? 0 : pos + 4;
}

ParseStatus parse_request(std::string_view head, Request *req) {
  *req = Request{};
  size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return ParseStatus::kBadRequest;
  ParseStatus st = parse_request_line(head.substr(0, eol), req);
  if (st != ParseStatus::kOk) return st;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool have_length = false;
  std::string_view rest = head.substr(eol + 2);
  while (true) {
    eol = rest.find("\r\n");
    if (eol == std::string_view::npos) return ParseStatus::kBadRequest;
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    if (line.empty()) break;  // the head's terminating empty line
    // No obsolete line folding, no whitespace before the colon, no bare
    // CR or LF or NUL inside a field (RFC 9112 5.1, 5.2).
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
      return ParseStatus::kBadRequest;
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim_ows(line.substr(colon + 1));
    for (unsigned char c : value)
      if (c == '\r' || c == '\n' || c == '\0') return ParseStatus::kBadRequest;
    if (iequals(name, "host")) {
      if (req->has_host) return ParseStatus::kBadRequest;  // RFC 9112 3.2: exactly one
      req->has_host = true;
    } else if (iequals(name, "connection")) {
      conn_close = conn_close || list_has(value, "close");
      conn_keep_alive = conn_keep_alive || list_has(value, "keep-alive");
    } else if (iequals(name, "content-length")) {
      if (value.empty() || value.size() > 19) return ParseStatus::kBadRequest;
      uint64_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return ParseStatus::kBadRequest;
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      // Two different lengths make the framing ambiguous (request smuggling).
      if (have_length && n != req->content_length) return ParseStatus::kBadRequest;
      have_length = true;
      req->content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      req->chunked = true;
    } else if (iequals(name, "if-modified-since")) {
      time_t t;
      // An invalid date is ignored, as RFC 9110 13.1.3 says.
      if (parse_http_date(value, &t)) {
        req->has_ims = true;
        req->if_modified_since = t;
      }
    }
  }
  if (req->version_minor >= 1 && !req->has_host) return ParseStatus::kBadRequest;
  // A body this server will not read must at least be framed: with
  // Transfer-Encoding it cannot be skipped reliably either way.
  if (req->chunked && have_length) return ParseStatus::kBadRequest;
  if (req->content_length > kMaxRequestBody) return ParseStatus::kBodyTooLarge;
  req->has_body = req->chunked || req->content_length > 0;
  if (req->version_minor == 0)
    req->keep_alive = conn_keep_alive && !conn_close;
  else
    req->keep_alive = !conn_close;
  return ParseStatus::kOk;
}

bool parse_http_date(std::string_view s, time_t *out) {
  std::string str(s);  // strptime needs a terminated string
  // IMF-fixdate, obsolete RFC 850 and asctime forms (RFC 9110 5.6.7).
  static const char *const kFormats[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                         "%a %b %e %H:%M:%S %Y"};
  for (const char *fmt : kFormats) {
    struct tm tm {};
    const char *end = strptime(str.c_str(), fmt, &tm);
    if (end != nullptr && *end == '\0') {
      *out = timegm(&tm);
      return *out != static_cast<time_t>(-1);
    }
  }
  return false;
}

}  // namespace kweb

#include "http_response.h"

#include <strings.h>

#include <cstdio>
#include <cstring>

namespace kweb {
namespace {

// The Date field changes once a second; formatting it per response would
// cost a gmtime and a strftime each. Each thread (each uthread: they have
// their own TLS) keeps the last second it formatted.
struct DateCache {
  time_t second = -1;
  char text[30];
};
thread_local DateCache t_date;

std::string_view current_date() {
  time_t now = time(nullptr);
  if (now != t_date.second) {
    format_http_date(now, t_date.text);
    t_date.second = now;
  }
  return t_date.text;
}

}  // namespace

const char *reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
  }
  return "Unknown";
}

void format_http_date(time_t t, char out[30]) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 30, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

std::string_view content_type_for(std::string_view path) {
  struct Entry {
    const char *ext;
    const char *type;
  };
  static const Entry kTypes[] = {
      {"html", "text/html"},      {"htm", "text/html"},         {"css", "text/css"},
      {"js", "text/javascript"},  {"mjs", "text/javascript"},   {"json", "application/json"},
      {"txt", "text/plain"},      {"xml", "application/xml"},   {"png", "image/png"},
      {"jpg", "image/jpeg"},      {"jpeg", "image/jpeg"},       {"gif", "image/gif"},
      {"svg", "image/svg+xml"},   {"ico", "image/x-icon"},      {"webp", "image/webp"},
      {"pdf", "application/pdf"}, {"wasm", "application/wasm"}, {"woff2", "font/woff2"},
      {"mp4", "video/mp4"},       {"gz", "application/gzip"},
  };
  size_t slash = path.rfind('/');
  size_t dot = path.rfind('.');
  if (dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash)) {
    std::string_view ext = path.substr(dot + 1);
    for (const Entry &e : kTypes)
      if (ext.size() == strlen(e.ext) && strncasecmp(ext.data(), e.ext, ext.size()) == 0)
        return e.type;
  }
  return "application/octet-stream";
}

ResponseHead::ResponseHead(int status) {
  char line[64];
  int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
  append(std::string_view(line, static_cast<size_t>(n)));
  add("Server", "kweb");
  add("Date", current_date());
}

void ResponseHead::append(std::string_view s) {
  // Heads are built from bounded pieces (the longest is a Content-Type
  // from the table above); truncation would be a bug here, not input.
  size_t n = s.size() < kCapacity - len_ ? s.size() : kCapacity - len_;
  memcpy(buf_ + len_, s.data(), n);
  len_ += n;
}

void ResponseHead::add(std::string_view name, std::string_view value) {
  append(name);
  append(": ");
  append(value);
  append("\r\n");
}

void ResponseHead::add_number(std::string_view name, uint64_t value) {
  char num[24];
  int n = snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(value));
  add(name, std::string_view(num, static_cast<size_t>(n)));
}

void ResponseHead::add_date(std::string_view name, time_t t) {
  char text[30];
  format_http_date(t, text);
  add(name, text);
}

std::string_view ResponseHead::finish(bool keep_alive, bool http10) {
  if (!keep_alive)
    add("Connection", "close");
  else if (http10)
    add("Connection", "keep-alive");
  append("\r\n");
  return std::string_view(buf_, len_);
}

}  // namespace kweb

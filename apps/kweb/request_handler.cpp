// serve_one: one request of one connection, from its first byte to the
// last byte of its response. All socket I/O is non-blocking and every wait
// is a poll() with the time left to a deadline: on NPTL that blocks the
// kernel thread; on uthreads parlib's syscall service serves the poll from
// the vcore's io_uring, so only the uthread waits, and the deadline is the
// slow-client timeout without relying on SO_RCVTIMEO.
#include <fcntl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "admin.h"
#include "http_request.h"
#include "http_response.h"
#include "server.h"

namespace kweb {
namespace {

enum class Wait { kReady, kTimeout, kError };

Wait wait_for(int fd, short events, int64_t deadline_ms) {
  while (true) {
    int64_t left = deadline_ms - monotonic_ms();
    if (left <= 0) return Wait::kTimeout;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r > 0) return Wait::kReady;  // POLLERR/POLLHUP too: the next call reports it
    if (r < 0 && errno != EINTR) return Wait::kError;
  }
}

// Sends all of data; each wait for room may last the request timeout.
bool send_all(const Server &srv, int fd, std::string_view data, bool more) {
  while (!data.empty()) {
    ssize_t n =
        send(fd, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_for(fd, POLLOUT, monotonic_ms() + srv.opts().request_timeout_ms) != Wait::kReady)
        return false;
    } else if (!(n < 0 && errno == EINTR)) {
      return false;
    }
  }
  return true;
}

// The file's bytes straight from the page cache to the socket. The socket
// is non-blocking, so sendfile never parks the vcore's kernel task on a
// full send buffer; the wait is a poll like every other.
bool sendfile_all(const Server &srv, int sock, int file, uint64_t size) {
  off_t off = 0;
  while (static_cast<uint64_t>(off) < size) {
    size_t chunk = size - static_cast<uint64_t>(off) > (1u << 30)
                       ? (1u << 30)
                       : size - static_cast<uint64_t>(off);
    ssize_t n = sendfile(sock, file, &off, chunk);
    if (n > 0) continue;
    if (n == 0) return false;  // the file shrank under us: the framing is lost
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (wait_for(sock, POLLOUT, monotonic_ms() + srv.opts().request_timeout_ms) != Wait::kReady)
        return false;
    } else if (errno != EINTR) {
      return false;
    }
  }
  return true;
}

// A response with a short text body (errors, url commands). Sends it and
// says whether the connection stays open.
bool send_text(const Server &srv, Conn &c, int status, std::string_view body, bool head_only,
               bool keep_alive, bool http10, std::string_view extra_name = {},
               std::string_view extra_value = {}) {
  ResponseHead head(status);
  head.add("Content-Type", "text/plain");
  head.add_number("Content-Length", body.size());
  if (!extra_name.empty()) head.add(extra_name, extra_value);
  std::string msg(head.finish(keep_alive, http10));
  if (!head_only) msg.append(body);
  return send_all(srv, c.fd, msg, false) && keep_alive;
}

bool send_error(const Server &srv, Conn &c, int status) {
  std::string body = std::to_string(status) + " " + reason_phrase(status) + "\n";
  // After a malformed or oversized request the rest of the stream cannot
  // be framed: answer and close.
  return send_text(srv, c, status, body, false, false, false);
}

// Waits until c's buffer holds a whole request head. Returns its length,
// or 0 after answering or dropping the connection (the caller closes).
size_t read_head(Server &srv, Conn &c, WorkerStats &stats) {
  while (true) {
    std::string_view pending = c.pending();
    // Too long? The request line alone has its own limit (414), the whole
    // head a larger one (431); checked before the end of the head is
    // looked for, since a long head may arrive in one piece.
    size_t line_end = pending.find("\r\n");
    if (line_end == std::string_view::npos ? pending.size() > kMaxRequestLine
                                           : line_end > kMaxRequestLine) {
      send_error(srv, c, 414);
      return 0;
    }
    size_t head_len = find_head_end(pending);
    if (head_len > kMaxRequestHead || (head_len == 0 && pending.size() >= kMaxRequestHead)) {
      send_error(srv, c, 431);
      return 0;
    }
    if (head_len != 0) return head_len;
    if (c.end == kConnBufSize) {  // make room: move what is left to the front
      memmove(c.buf.get(), c.buf.get() + c.start, c.end - c.start);
      c.end -= c.start;
      c.start = 0;
    }
    ssize_t n = recv(c.fd, c.buf.get() + c.end, kConnBufSize - c.end, MSG_DONTWAIT);
    if (n > 0) {
      if (c.start == c.end) c.head_started_ms = monotonic_ms();
      c.end += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return 0;  // the client closed (or begin_shutdown shut our side)
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return 0;
    // Between requests the idle timeout applies; once a request has begun,
    // the whole head must arrive within the request timeout however slowly
    // its bytes trickle in.
    bool started = c.start != c.end;
    int64_t deadline = started ? c.head_started_ms + srv.opts().request_timeout_ms
                               : c.last_active_ms + srv.opts().idle_timeout_ms;
    Wait w = wait_for(c.fd, POLLIN, deadline);
    if (w == Wait::kTimeout) {
      stats.timeouts.fetch_add(1, std::memory_order_relaxed);
      if (started) send_error(srv, c, 408);
      return 0;
    }
    if (w == Wait::kError) return 0;
  }
}

bool serve_file(Server &srv, Conn &c, const Request &req, const std::string &rel, bool keep_alive) {
  bool http10 = req.version_minor == 0;
  bool head_only = req.method == Method::kHead;
  std::shared_ptr<const OpenFile> file = srv.files().get(rel);
  if (file == nullptr) {
    std::string body = "404 Not Found\n";
    return send_text(srv, c, 404, body, head_only, keep_alive, http10);
  }
  const struct stat &st = file->st;
  time_t mtime = st.st_mtim.tv_sec;
  bool not_modified = req.has_ims && mtime <= req.if_modified_since;
  ResponseHead head(not_modified ? 304 : 200);
  if (!not_modified) {
    head.add("Content-Type", content_type_for(file->type_name));
    head.add_number("Content-Length", static_cast<uint64_t>(st.st_size));
  }
  head.add_date("Last-Modified", mtime);
  std::string_view h = head.finish(keep_alive, http10);
  bool body = !not_modified && !head_only && st.st_size > 0;
  if (body && !file->bytes.empty()) {  // a small cached file: one send
    std::string whole;
    whole.reserve(h.size() + file->bytes.size());
    whole.append(h).append(file->bytes);
    return send_all(srv, c.fd, whole, false) && keep_alive;
  }
  // MSG_MORE holds the head back so that it leaves with the file's first
  // bytes (nginx's tcp_nopush).
  bool ok = send_all(srv, c.fd, h, body) &&
            (!body || sendfile_all(srv, c.fd, file->fd, static_cast<uint64_t>(st.st_size)));
  return ok && keep_alive;
}

}  // namespace

bool serve_one(Server &srv, Conn &c, WorkerStats &stats) {
  size_t head_len = read_head(srv, c, stats);
  if (head_len == 0) return false;
  std::string_view head(c.buf.get() + c.start, head_len);
  Request req;
  ParseStatus ps = parse_request(head, &req);
  stats.requests.fetch_add(1, std::memory_order_relaxed);
  // The head is consumed now; the views in req stay valid until the buffer
  // is next written, which is after this request.
  c.start += head_len;
  if (c.start == c.end) c.start = c.end = 0;
  c.head_started_ms = c.start != c.end ? monotonic_ms() : 0;  // a pipelined one has begun
  bool keep = false;
  switch (ps) {
    case ParseStatus::kBadRequest:
      return send_error(srv, c, 400);
    case ParseStatus::kBodyTooLarge:
      return send_error(srv, c, 413);
    case ParseStatus::kVersionNotSupported:
      return send_error(srv, c, 505);
    case ParseStatus::kOk:
      break;
  }
  if (req.chunked) return send_error(srv, c, 501);
  // This server reads no bodies: after a request that has one, close.
  bool keep_alive = req.keep_alive && !req.has_body;
  bool http10 = req.version_minor == 0;
  if (req.method == Method::kOther) {
    keep = send_text(srv, c, 405, "405 Method Not Allowed\n", false, keep_alive, http10, "Allow",
                     "GET, HEAD");
  } else {
    std::string rel;
    if (!decode_target(req.target, &rel)) return send_error(srv, c, 400);
    std::string_view path = req.target.substr(0, req.target.find('?'));
    if (srv.opts().admin && path.substr(0, 6) == "/kweb/") {
      AdminReply r = run_admin_command(srv, req.target);
      keep = send_text(srv, c, r.status, r.body, req.method == Method::kHead,
                       keep_alive && !r.terminate, http10);
      if (r.terminate) srv.request_stop();
    } else {
      keep = serve_file(srv, c, req, rel, keep_alive);
    }
  }
  c.last_active_ms = monotonic_ms();
  return keep;
}

}  // namespace kweb

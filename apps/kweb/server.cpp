#include "server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "http_response.h"

namespace kweb {
namespace {

// The server the signal handlers stop (one per process).
std::atomic<Server *> g_signal_target{nullptr};

void on_stop_signal(int) {
  Server *s = g_signal_target.load(std::memory_order_acquire);
  if (s != nullptr) s->request_stop();
}

// The 503 a connection beyond --max-conns gets before it is closed.
void refuse(int fd) {
  ResponseHead head(503);
  head.add("Content-Type", "text/plain");
  static const char kBody[] = "too many connections\n";
  head.add_number("Content-Length", sizeof kBody - 1);
  std::string_view h = head.finish(false, false);
  std::string msg(h);
  msg.append(kBody);
  // Best effort and never waiting: the accept thread must not block on a
  // client. A fresh socket's send buffer takes these few hundred bytes.
  (void)send(fd, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  shutdown(fd, SHUT_WR);
  // Unread request bytes would turn the close into a reset that can
  // overtake the 503; take what has arrived.
  char sink[4096];
  while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
  close(fd);
}

}  // namespace

int64_t monotonic_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Server::~Server() {
  if (g_signal_target.load() == this) g_signal_target.store(nullptr);
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

bool Server::setup(std::string *error) {
  if (!root_.open(opts_.root.c_str())) {
    *error = "--root " + opts_.root + ": " + strerror(errno);
    return false;
  }
  // Every connection is a descriptor: take all the kernel allows.
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  by_fd_size_ = rl.rlim_cur > (1u << 20) ? (1u << 20) : rl.rlim_cur;
  by_fd_.reset(new std::atomic<Conn *>[by_fd_size_]);
  for (size_t i = 0; i < by_fd_size_; ++i) by_fd_[i].store(nullptr, std::memory_order_relaxed);

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(opts_.port));
  if (inet_pton(AF_INET, opts_.listen.c_str(), &addr.sin_addr) != 1) {
    *error = "--listen " + opts_.listen + ": not an IPv4 address";
    return false;
  }
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (listen_fd_ < 0 || setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(listen_fd_, reinterpret_cast<struct sockaddr *>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 4096) != 0) {
    *error = "cannot listen on " + opts_.listen + ":" + std::to_string(opts_.port) + ": " +
             strerror(errno);
    return false;
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<struct sockaddr *>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    *error = std::string("eventfd: ") + strerror(errno);
    return false;
  }

  g_signal_target.store(this, std::memory_order_release);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A client that goes away mid-response is an EPIPE to handle, not a
  // reason to die (sendfile cannot take MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);
  return true;
}

void Server::announce() const {
  printf("kweb listening on %s:%d\n", opts_.listen.c_str(), port_);
  fflush(stdout);
}

void Server::request_stop() {
  stopping_.store(true, std::memory_order_release);
  uint64_t one = 1;
  // The raw system call: this runs in a signal handler, possibly on a
  // vcore in the middle of the syscall service, which must not be entered
  // again from here.
  (void)syscall(SYS_write, wake_fd_, &one, sizeof one);
}

void Server::accept_loop(void (*hand_off)(Conn *, void *), void *arg) {
  struct pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (!stopping()) {
    fds[0].revents = fds[1].revents = 0;
    if (poll(fds, 2, -1) < 0 && errno != EINTR) {
      perror("kweb: poll");
      break;
    }
    if (stopping()) break;
    // Take everything that is waiting (nginx's multi_accept), but in
    // bounded rounds so a stop request is seen under a flood.
    for (int i = 0; i < 256; ++i) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
          // Out of descriptors: the backlog keeps the clients until some
          // close; do not spin on the readable listener meanwhile.
          struct pollfd w = {wake_fd_, POLLIN, 0};
          poll(&w, 1, 10);
        }
        break;
      }
      if (open_.load(std::memory_order_relaxed) >= static_cast<uint64_t>(opts_.max_conns) ||
          static_cast<size_t>(fd) >= by_fd_size_) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        refuse(fd);
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      Conn *c = new Conn(fd, monotonic_ms());
      by_fd_[fd].store(c, std::memory_order_release);
      open_.fetch_add(1, std::memory_order_relaxed);
      accepted_.fetch_add(1, std::memory_order_relaxed);
      hand_off(c, arg);
    }
  }
}

void Server::begin_shutdown() {
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
  // A worker may close a connection while this runs; its descriptor
  // number can then be reused only by a file the worker opens, and
  // shutdown() on a file just fails with ENOTSOCK.
  for (size_t fd = 0; fd < by_fd_size_; ++fd)
    if (by_fd_[fd].load(std::memory_order_acquire) != nullptr)
      shutdown(static_cast<int>(fd), SHUT_RD);
}

void Server::close_conn(Conn *c) {
  by_fd_[c->fd].store(nullptr, std::memory_order_release);
  close(c->fd);
  delete c;
  open_.fetch_sub(1, std::memory_order_release);
}

std::string Server::stats_text() {
  uint64_t requests = 0, timeouts = 0;
  for (size_t i = 0; i < nworkers_; ++i) {
    requests += workers_[i].requests.load(std::memory_order_relaxed);
    timeouts += workers_[i].timeouts.load(std::memory_order_relaxed);
  }
  std::string s = "sched " + std::string(sched_name(opts_.sched)) + "\n";
  s += "accepted " + std::to_string(accepted_.load()) + "\n";
  s += "refused " + std::to_string(refused_.load()) + "\n";
  s += "open " + std::to_string(open_.load()) + "\n";
  s += "requests " + std::to_string(requests) + "\n";
  s += "timeouts " + std::to_string(timeouts) + "\n";
  if (backend_ != nullptr) s += backend_->describe();
  return s;
}

}  // namespace kweb

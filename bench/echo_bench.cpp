// echo_bench: a thread-per-connection TCP echo over loopback (the shape of
// the dissertation's webserver experiment), on uthreads and on NPTL
// threads, with an event-driven epoll baseline, in the same run.
//
// Each of --conns clients connects to a server of its own and does
// request/response round trips of --msg bytes until --seconds have passed;
// the program reports requests/s and the latency percentiles of a round
// trip for each variant, then the uthread variant's ratio to the others.
//
//   echo_bench [--conns N] [--seconds S] [--msg BYTES] [--vcores V]
//              [--only uthread|nptl|epoll] [--json]
//
// uthread: a thread per client and per server connection; their blocking
// recv/send go to the vcores' io_uring rings (src/syscall).
// nptl:    the same threads as kernel threads.
// epoll:   no threads per connection: one event loop per core (V loops,
//          each a kernel thread pinned to its own CPU) drives the
//          non-blocking client and server sockets of its share of the
//          connections: what a tuned single-threaded-per-core server
//          (nginx, memcached) does, so the honest I/O baseline.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <parlib/syscall.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "support/fifo_sched.h"

namespace {

struct Options {
  int conns = 1000;
  double seconds = 2.0;
  size_t msg = 64;
  int vcores = 2;
  std::string only;
  bool json = false;
};

uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

[[noreturn]] void usage(const char *why) {
  fprintf(stderr, "echo_bench: %s\n", why);
  fprintf(stderr,
          "usage: echo_bench [--conns N] [--seconds S] [--msg BYTES] [--vcores V] "
          "[--only uthread|nptl|epoll] [--json]\n");
  exit(2);
}

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char * {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    char *end = nullptr;
    if (a == "--conns") {
      long v = strtol(value(), &end, 10);
      if (*end != '\0' || v < 1 || v > 20000) usage("--conns must be in 1..20000");
      o.conns = static_cast<int>(v);
    } else if (a == "--seconds") {
      o.seconds = strtod(value(), &end);
      if (*end != '\0' || !(o.seconds > 0 && o.seconds <= 600))
        usage("--seconds must be in (0, 600]");
    } else if (a == "--msg") {
      long v = strtol(value(), &end, 10);
      if (*end != '\0' || v < 1 || v > 65536) usage("--msg must be in 1..65536");
      o.msg = static_cast<size_t>(v);
    } else if (a == "--vcores") {
      long v = strtol(value(), &end, 10);
      if (*end != '\0' || v < 1 || v > 256) usage("--vcores must be in 1..256");
      o.vcores = static_cast<int>(v);
    } else if (a == "--only") {
      o.only = value();
      if (o.only != "uthread" && o.only != "nptl" && o.only != "epoll")
        usage("--only takes uthread, nptl or epoll");
    } else if (a == "--json") {
      o.json = true;
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  return o;
}

// What both runtimes share: the listening socket, the stop flag, the
// per-client results.
struct Run {
  const Options *opt;
  int listen_fd = -1;
  uint16_t port = 0;
  std::atomic<bool> stop{false};
  std::atomic<int> connected{0};
  std::atomic<long> errors{0};
  std::vector<std::vector<uint32_t>> lat_ns;  // per client, round-trip latencies
  std::vector<long> requests;
};

int make_listener(uint16_t *port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || listen(s, 65535) != 0) {
    perror("echo_bench: listen");
    exit(1);
  }
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr *>(&a), &len);
  *port = ntohs(a.sin_port);
  return s;
}

// One server connection: echo until the client closes.
void serve(int fd, size_t msg) {
  std::vector<char> buf(msg);
  for (;;) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = send(fd, buf.data() + off, static_cast<size_t>(n - off), 0);
      if (w <= 0) break;
      off += w;
    }
  }
  close(fd);
}

// One client: connect, then round trips until told to stop.
void client(Run *run, int id) {
  const size_t msg = run->opt->msg;
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(run->port);
  if (connect(c, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
    run->errors++;
    close(c);
    return;
  }
  run->connected++;
  std::vector<char> out(msg, static_cast<char>('a' + id % 26));
  std::vector<char> in(msg);
  std::vector<uint32_t> &lat = run->lat_ns[static_cast<size_t>(id)];
  long done = 0;
  while (!run->stop.load(std::memory_order_relaxed)) {
    uint64_t t0 = now_ns();
    if (send(c, out.data(), msg, 0) != static_cast<ssize_t>(msg)) {
      run->errors++;
      break;
    }
    size_t got = 0;
    while (got < msg) {
      ssize_t n = recv(c, in.data() + got, msg - got, 0);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    if (got != msg || memcmp(in.data(), out.data(), msg) != 0) {
      run->errors++;
      break;
    }
    uint64_t dt = now_ns() - t0;
    lat.push_back(dt > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(dt));
    ++done;
  }
  run->requests[static_cast<size_t>(id)] = done;
  close(c);
}

struct Result {
  double seconds = 0;
  long requests = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0;
  long errors = 0;
};

Result summarize(Run &run, double seconds) {
  Result r;
  r.seconds = seconds;
  std::vector<uint32_t> all;
  for (size_t i = 0; i < run.lat_ns.size(); ++i) {
    r.requests += run.requests[i];
    all.insert(all.end(), run.lat_ns[i].begin(), run.lat_ns[i].end());
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    if (all.empty()) return 0.0;
    size_t k = static_cast<size_t>(p * static_cast<double>(all.size() - 1));
    return all[k] / 1000.0;
  };
  r.p50_us = pct(0.50);
  r.p99_us = pct(0.99);
  r.p999_us = pct(0.999);
  r.errors = run.errors.load();
  return r;
}

void prepare(Run &run, const Options &o) {
  run.opt = &o;
  run.listen_fd = make_listener(&run.port);
  run.lat_ns.assign(static_cast<size_t>(o.conns), {});
  for (auto &v : run.lat_ns) v.reserve(4096);
  run.requests.assign(static_cast<size_t>(o.conns), 0);
}

// --- uthreads ---------------------------------------------------------------

struct UthArg {
  Run *run;
  int id;
  int fd;
};

Result run_uthreads(const Options &o) {
  using namespace parlib_test;
  fifo_set_target_vcores(o.vcores);
  Run run;
  prepare(run, o);
  std::vector<UthArg> args(static_cast<size_t>(o.conns));
  std::vector<UthArg> server_args(static_cast<size_t>(o.conns));
  std::vector<TestThread *> servers;
  struct AcceptCtx {
    Run *run;
    std::vector<UthArg> *server_args;
    std::vector<TestThread *> *servers;
  } actx{&run, &server_args, &servers};
  TestThread *acceptor = fifo_spawn(
      [](void *p) {
        auto *c = static_cast<AcceptCtx *>(p);
        for (int i = 0; i < c->run->opt->conns; ++i) {
          int fd = accept4(c->run->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (fd < 0) {
            c->run->errors++;
            break;
          }
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          (*c->server_args)[static_cast<size_t>(i)] = UthArg{c->run, i, fd};
          c->servers->push_back(parlib_test::fifo_spawn(
              [](void *q) {
                auto *s = static_cast<UthArg *>(q);
                serve(s->fd, s->run->opt->msg);
              },
              &(*c->server_args)[static_cast<size_t>(i)], 64 << 10));
        }
      },
      &actx, 64 << 10);
  uint64_t t0 = now_ns();
  std::vector<TestThread *> clients;
  for (int i = 0; i < o.conns; ++i) {
    args[static_cast<size_t>(i)] = UthArg{&run, i, -1};
    clients.push_back(fifo_spawn(
        [](void *p) {
          auto *a = static_cast<UthArg *>(p);
          client(a->run, a->id);
        },
        &args[static_cast<size_t>(i)], 64 << 10));
  }
  usleep(static_cast<useconds_t>(o.seconds * 1e6));  // a uthread: only it sleeps
  run.stop = true;
  uint64_t t1 = now_ns();
  for (TestThread *t : clients) fifo_join(t);
  fifo_join(acceptor);
  for (TestThread *t : servers) fifo_join(t);
  close(run.listen_fd);
  return summarize(run, static_cast<double>(t1 - t0) / 1e9);
}

// --- NPTL -------------------------------------------------------------------

pthread_t start_pthread(void *(*fn)(void *), void *arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 << 10);
  pthread_t t;
  int err = pthread_create(&t, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    fprintf(stderr, "echo_bench: pthread_create: %s\n", strerror(err));
    exit(1);
  }
  return t;
}

// On a plain thread, once the clients run: lets them run for --seconds,
// tells them to stop and returns when the measured time ended.
uint64_t measure_then_stop(Run &run) {
  const double seconds = run.opt->seconds;
  struct timespec d;
  d.tv_sec = static_cast<time_t>(seconds);
  d.tv_nsec = static_cast<long>((seconds - static_cast<double>(d.tv_sec)) * 1e9);
  nanosleep(&d, nullptr);
  run.stop = true;
  return now_ns();
}

// Runs a variant whose whole run happens on a plain thread (main_fn on a
// Ctx with run, t0 and t1), from this uthread: it waits without blocking
// its vcore (a uthread's usleep), then joins.
template <typename Ctx>
Result run_on_plain_thread(const Options &o, void *(*main_fn)(void *)) {
  Run run;
  prepare(run, o);
  Ctx ctx;
  ctx.run = &run;
  pthread_t t = start_pthread(main_fn, &ctx);
  while (ctx.t1 == 0) usleep(10000);
  pthread_join(t, nullptr);
  close(run.listen_fd);
  return summarize(run, static_cast<double>(ctx.t1.load() - ctx.t0) / 1e9);
}

struct NptlCtx {
  Run *run;
  std::vector<UthArg> args;
  std::vector<pthread_t> servers;
  std::vector<pthread_t> clients;
  std::vector<UthArg> server_args;
  uint64_t t0 = 0;
  std::atomic<uint64_t> t1{0};
};

// The whole NPTL run happens on a plain thread: the caller is a uthread,
// whose blocking calls would otherwise be the uthread runtime's.
void *nptl_main(void *p) {
  auto *ctx = static_cast<NptlCtx *>(p);
  Run &run = *ctx->run;
  const Options &o = *run.opt;
  ctx->server_args.resize(static_cast<size_t>(o.conns));
  pthread_t acceptor = start_pthread(
      [](void *q) -> void * {
        auto *c = static_cast<NptlCtx *>(q);
        for (int i = 0; i < c->run->opt->conns; ++i) {
          int fd = accept4(c->run->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (fd < 0) {
            c->run->errors++;
            break;
          }
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c->server_args[static_cast<size_t>(i)] = UthArg{c->run, i, fd};
          c->servers.push_back(start_pthread(
              [](void *r) -> void * {
                auto *s = static_cast<UthArg *>(r);
                serve(s->fd, s->run->opt->msg);
                return nullptr;
              },
              &c->server_args[static_cast<size_t>(i)]));
        }
        return nullptr;
      },
      ctx);
  ctx->args.resize(static_cast<size_t>(o.conns));
  ctx->t0 = now_ns();
  for (int i = 0; i < o.conns; ++i) {
    ctx->args[static_cast<size_t>(i)] = UthArg{&run, i, -1};
    ctx->clients.push_back(start_pthread(
        [](void *q) -> void * {
          auto *a = static_cast<UthArg *>(q);
          client(a->run, a->id);
          return nullptr;
        },
        &ctx->args[static_cast<size_t>(i)]));
  }
  ctx->t1 = measure_then_stop(run);
  for (pthread_t t : ctx->clients) pthread_join(t, nullptr);
  pthread_join(acceptor, nullptr);
  for (pthread_t t : ctx->servers) pthread_join(t, nullptr);
  return nullptr;
}

Result run_nptl(const Options &o) { return run_on_plain_thread<NptlCtx>(o, nptl_main); }

// --- epoll ------------------------------------------------------------------

// One end of a connection as an event loop sees it: a client end, which
// sends a request, times the round trip and sends the next, or a server
// end, which echoes what it reads. Both keep what they could not write yet
// and wait for EPOLLOUT meanwhile.
struct EpollEnd {
  int fd = -1;
  int id = 0;  // the client's index into Run's per-client results
  bool client = false;
  std::vector<char> out;  // client: the request; server: the bytes to echo
  size_t out_len = 0;     // bytes of `out` to write
  size_t out_done = 0;    // ... of which written
  std::vector<char> in;   // client: the reply so far
  size_t in_len = 0;
  uint64_t t0 = 0;  // client: when the request went out
  long done = 0;
};

struct EpollLoop {
  Run *run = nullptr;
  int cpu = -1;
  std::vector<EpollEnd> ends;
  std::atomic<long> errors{0};
};

void epoll_watch(int ep, EpollEnd &e, bool want_out) {
  struct epoll_event ev {};
  ev.events = want_out ? EPOLLOUT : EPOLLIN;
  ev.data.ptr = &e;
  epoll_ctl(ep, EPOLL_CTL_MOD, e.fd, &ev);
}

// Writes what is left of e.out; false on an error.
bool epoll_flush(int ep, EpollEnd &e) {
  while (e.out_done < e.out_len) {
    ssize_t w = send(e.fd, e.out.data() + e.out_done, e.out_len - e.out_done, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) {
      epoll_watch(ep, e, true);
      return true;
    }
    if (w <= 0) return false;
    e.out_done += static_cast<size_t>(w);
  }
  return true;
}

void epoll_send_request(int ep, EpollEnd &e) {
  e.t0 = now_ns();
  e.out_done = 0;
  e.in_len = 0;
  if (!epoll_flush(ep, e)) e.fd = -1;
}

// Readable (or writable again): returns false when the end failed.
bool epoll_step(int ep, EpollEnd &e, uint32_t events, Run &run) {
  const size_t msg = run.opt->msg;
  if (events & EPOLLOUT) {
    if (!epoll_flush(ep, e)) return false;
    if (e.out_done == e.out_len) epoll_watch(ep, e, false);
    return true;
  }
  if (!e.client) {
    // Echo: read only what can be written back before reading again, as
    // the thread-per-connection server does.
    ssize_t n = recv(e.fd, e.out.data(), msg, 0);
    if (n < 0 && errno == EAGAIN) return true;
    if (n <= 0) return false;
    e.out_len = static_cast<size_t>(n);
    e.out_done = 0;
    return epoll_flush(ep, e);
  }
  ssize_t n = recv(e.fd, e.in.data() + e.in_len, msg - e.in_len, 0);
  if (n < 0 && errno == EAGAIN) return true;
  if (n <= 0) return false;
  e.in_len += static_cast<size_t>(n);
  if (e.in_len < msg) return true;
  if (memcmp(e.in.data(), e.out.data(), msg) != 0) return false;
  uint64_t dt = now_ns() - e.t0;
  run.lat_ns[static_cast<size_t>(e.id)].push_back(dt > UINT32_MAX ? UINT32_MAX
                                                                  : static_cast<uint32_t>(dt));
  ++e.done;
  if (!run.stop.load(std::memory_order_relaxed)) epoll_send_request(ep, e);
  return e.fd >= 0;
}

void *epoll_loop(void *p) {
  auto *loop = static_cast<EpollLoop *>(p);
  Run &run = *loop->run;
  if (loop->cpu >= 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(loop->cpu, &one);
    sched_setaffinity(0, sizeof one, &one);
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (EpollEnd &e : loop->ends) {
    struct epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.ptr = &e;
    epoll_ctl(ep, EPOLL_CTL_ADD, e.fd, &ev);
  }
  for (EpollEnd &e : loop->ends)
    if (e.client) epoll_send_request(ep, e);
  std::vector<struct epoll_event> evs(512);
  while (!run.stop.load(std::memory_order_relaxed)) {
    int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 10);
    for (int i = 0; i < n; ++i) {
      auto *e = static_cast<EpollEnd *>(evs[static_cast<size_t>(i)].data.ptr);
      if (e->fd < 0) continue;
      if (!epoll_step(ep, *e, evs[static_cast<size_t>(i)].events, run)) {
        loop->errors++;
        epoll_ctl(ep, EPOLL_CTL_DEL, e->fd, nullptr);
        e->fd = -1;  // closed with the rest below
      }
    }
  }
  close(ep);
  return nullptr;
}

// The whole epoll run happens on plain threads, as the NPTL one does.
struct EpollCtx {
  Run *run = nullptr;
  std::vector<EpollLoop> loops;
  std::vector<int> fds;
  uint64_t t0 = 0;
  std::atomic<uint64_t> t1{0};
};

void *epoll_main(void *p) {
  auto *ctx = static_cast<EpollCtx *>(p);
  Run &run = *ctx->run;
  const Options &o = *run.opt;
  // One loop per vcore's worth of CPUs, each pinned to a CPU of its own.
  cpu_set_t allowed;
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
    for (int c = 0; c < CPU_SETSIZE && static_cast<int>(cpus.size()) < o.vcores; ++c)
      if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  const size_t nloops = static_cast<size_t>(o.vcores);
  ctx->loops = std::vector<EpollLoop>(nloops);
  for (size_t l = 0; l < nloops; ++l) {
    ctx->loops[l].run = &run;
    ctx->loops[l].cpu = l < cpus.size() ? cpus[l] : -1;
    ctx->loops[l].ends.reserve(2 * static_cast<size_t>(o.conns) / nloops + 2);
  }
  // Connect every client first. A connection's server end goes to another
  // loop than its client end (when there are several): a server's clients
  // are not on its core, and the thread variants place their two threads
  // freely too.
  for (int i = 0; i < o.conns; ++i) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(run.port);
    if (connect(c, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
      run.errors++;
      close(c);
      break;
    }
    int s = accept4(run.listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (s < 0) {
      run.errors++;
      close(c);
      break;
    }
    fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ctx->fds.push_back(c);
    ctx->fds.push_back(s);
    run.connected++;
    EpollEnd client;
    client.fd = c;
    client.id = i;
    client.client = true;
    client.out.assign(o.msg, static_cast<char>('a' + i % 26));
    client.out_len = o.msg;
    client.in.resize(o.msg);
    ctx->loops[static_cast<size_t>(i) % nloops].ends.push_back(std::move(client));
    EpollEnd server;
    server.fd = s;
    server.id = i;
    server.out.resize(o.msg);
    ctx->loops[(static_cast<size_t>(i) + nloops / 2) % nloops].ends.push_back(std::move(server));
  }
  ctx->t0 = now_ns();
  std::vector<pthread_t> threads;
  for (EpollLoop &loop : ctx->loops) threads.push_back(start_pthread(epoll_loop, &loop));
  ctx->t1 = measure_then_stop(run);
  for (pthread_t t : threads) pthread_join(t, nullptr);
  for (EpollLoop &loop : ctx->loops) {
    run.errors += loop.errors.load();
    for (const EpollEnd &e : loop.ends)
      if (e.client) run.requests[static_cast<size_t>(e.id)] = e.done;
  }
  for (int fd : ctx->fds) close(fd);
  return nullptr;
}

Result run_epoll(const Options &o) { return run_on_plain_thread<EpollCtx>(o, epoll_main); }

void print(const char *name, const Result &r, bool json, bool last) {
  double rps = r.seconds > 0 ? static_cast<double>(r.requests) / r.seconds : 0;
  if (json) {
    printf(
        "\"%s\":{\"requests_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
        "\"errors\":%ld}%s",
        name, rps, r.p50_us, r.p99_us, r.p999_us, r.errors, last ? "" : ",");
  } else {
    printf("%-8s %12.0f req/s   p50 %8.1f us   p99 %8.1f us   p99.9 %8.1f us   errors %ld\n", name,
           rps, r.p50_us, r.p99_us, r.p999_us, r.errors);
  }
}

}  // namespace

int main(int argc, char **argv) {
  Options o = parse(argc, argv);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (vcore_lib_init() != 0) {
    perror("echo_bench: vcore_lib_init");
    return 1;
  }
  if (o.vcores > max_vcores()) o.vcores = max_vcores();
  parlib_test::fifo_init(o.vcores);
  const char *backend = parlib_syscall_backend() == PARLIB_SYSC_IO_URING ? "io_uring" : "threads";
  struct Variant {
    const char *name;
    Result (*run)(const Options &);
    bool done = false;
    Result r;
  } variants[] = {{"uthread", run_uthreads}, {"nptl", run_nptl}, {"epoll", run_epoll}};
  for (Variant &v : variants) {
    if (!o.only.empty() && o.only != v.name) continue;
    v.r = v.run(o);
    v.done = true;
  }
  auto rps = [](const Result &r) {
    return r.seconds > 0 ? static_cast<double>(r.requests) / r.seconds : 0.0;
  };
  const Variant &u = variants[0];
  if (o.json)
    printf("{\"conns\":%d,\"vcores\":%d,\"msg\":%zu,\"backend\":\"%s\"", o.conns, o.vcores, o.msg,
           backend);
  else
    printf("echo_bench: %d connections, %zu-byte messages, %.1f s each, %d vcores (%s)\n", o.conns,
           o.msg, o.seconds, o.vcores, backend);
  for (const Variant &v : variants) {
    if (!v.done) continue;
    if (o.json) printf(",");
    print(v.name, v.r, o.json, true);
  }
  for (size_t k = 1; k < std::size(variants); ++k) {
    const Variant &v = variants[k];
    if (!u.done || !v.done || rps(v.r) <= 0) continue;
    if (o.json)
      printf(",\"ratio_uthread_over_%s\":%.2f", v.name, rps(u.r) / rps(v.r));
    else
      printf("ratio uthread/%s: %.2f\n", v.name, rps(u.r) / rps(v.r));
  }
  if (o.json) printf("}\n");
  bool failed = false;
  for (const Variant &v : variants) failed |= v.done && v.r.errors != 0;
  return failed ? 1 : 0;
}

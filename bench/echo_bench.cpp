// echo_bench: a thread-per-connection TCP echo over loopback (the shape of
// the dissertation's webserver experiment), on uthreads and on NPTL
// threads in the same run.
//
// Each of --conns client threads connects to a server thread of its own
// and does request/response round trips of --msg bytes until --seconds
// have passed; the program reports requests/s and the latency percentiles
// of a round trip for both runtimes, then their ratio.
//
//   echo_bench [--conns N] [--seconds S] [--msg BYTES] [--vcores V]
//              [--only uthread|nptl] [--json]
//
// On uthreads, the blocking recv/send of every thread go to the vcores'
// io_uring rings (src/syscall); on NPTL they block kernel threads.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <parlib/syscall.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>
#include <pthread.h>
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
          "[--only uthread|nptl] [--json]\n");
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
      if (o.only != "uthread" && o.only != "nptl") usage("--only takes uthread or nptl");
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
  struct timespec d;
  d.tv_sec = static_cast<time_t>(o.seconds);
  d.tv_nsec = static_cast<long>((o.seconds - static_cast<double>(d.tv_sec)) * 1e9);
  nanosleep(&d, nullptr);
  run.stop = true;
  ctx->t1 = now_ns();
  for (pthread_t t : ctx->clients) pthread_join(t, nullptr);
  pthread_join(acceptor, nullptr);
  for (pthread_t t : ctx->servers) pthread_join(t, nullptr);
  return nullptr;
}

Result run_nptl(const Options &o) {
  Run run;
  prepare(run, o);
  NptlCtx ctx;
  ctx.run = &run;
  pthread_t t = start_pthread(nptl_main, &ctx);
  // Wait without blocking this vcore (a uthread's usleep), then join.
  while (ctx.t1 == 0) usleep(10000);
  pthread_join(t, nullptr);
  close(run.listen_fd);
  return summarize(run, static_cast<double>(ctx.t1.load() - ctx.t0) / 1e9);
}

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
  Result u, n;
  bool do_u = o.only.empty() || o.only == "uthread";
  bool do_n = o.only.empty() || o.only == "nptl";
  if (do_u) u = run_uthreads(o);
  if (do_n) n = run_nptl(o);
  if (o.json) {
    printf("{\"conns\":%d,\"vcores\":%d,\"msg\":%zu,\"backend\":\"%s\",", o.conns, o.vcores, o.msg,
           backend);
    if (do_u) print("uthread", u, true, !do_n);
    if (do_n) print("nptl", n, true, true);
    if (do_u && do_n && n.requests > 0)
      printf(",\"ratio_uthread_over_nptl\":%.2f",
             (static_cast<double>(u.requests) / u.seconds) /
                 (static_cast<double>(n.requests) / n.seconds));
    printf("}\n");
  } else {
    printf("echo_bench: %d connections, %zu-byte messages, %.1f s each, %d vcores (%s)\n", o.conns,
           o.msg, o.seconds, o.vcores, backend);
    if (do_u) print("uthread", u, false, false);
    if (do_n) print("nptl", n, false, true);
    if (do_u && do_n && n.requests > 0)
      printf("ratio uthread/nptl: %.2f\n", (static_cast<double>(u.requests) / u.seconds) /
                                               (static_cast<double>(n.requests) / n.seconds));
  }
  return (u.errors != 0 || n.errors != 0) ? 1 : 0;
}

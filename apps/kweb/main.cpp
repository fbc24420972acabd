// kweb: the thread-based web server of dissertation 2.6.2, serving static
// files over HTTP/1.1 on one of three schedulers chosen at start: Linux
// NPTL, parlib's upthread, or a scheduler of its own on parlib's
// schedule_ops. docs/kweb.md describes the design.
#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "backends.h"
#include "options.h"
#include "server.h"

int main(int argc, char **argv) {
  kweb::Options opts;
  std::string error;
  bool help = false;
  if (!kweb::parse_options(argc, argv, &opts, &error, &help)) {
    fprintf(stderr, "kweb: %s\n", error.c_str());
    return 2;
  }
  if (help) {
    fputs(kweb::usage(), stdout);
    return 0;
  }
  // The listening socket and the root come first, on the plain main
  // thread: a bad --root or a busy port is a one-line error before any
  // scheduler starts.
  kweb::Server srv(opts);
  if (!srv.setup(&error)) {
    fprintf(stderr, "kweb: %s\n", error.c_str());
    return 2;
  }
  // Too many vcores is a bad option too, refused before a scheduler takes
  // the process: as many as parlib will make (PARLIB_VCORES, else the
  // CPUs of the affinity mask).
  if (opts.sched != kweb::SchedKind::kNptl && opts.vcores > 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    int most = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    if (const char *env = getenv("PARLIB_VCORES")) most = atoi(env) > 0 ? atoi(env) : most;
    if (opts.vcores > most) {
      fprintf(stderr, "kweb: --vcores %d: at most %d vcores\n", opts.vcores, most);
      return 2;
    }
  }
  switch (opts.sched) {
    case kweb::SchedKind::kNptl:
      return kweb::run_nptl(srv);
    case kweb::SchedKind::kUpthread:
      return kweb::run_upthread(srv);
    case kweb::SchedKind::kCustom:
      return kweb::run_custom(srv);
  }
  return 2;
}

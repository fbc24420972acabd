// kweb: the thread-based web server of dissertation 2.6.2, serving static
// files over HTTP/1.1 on one of three schedulers chosen at start: Linux
// NPTL, parlib's upthread, or a scheduler of its own on parlib's
// schedule_ops. docs/kweb.md describes the design.
#include <cstdio>
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
  switch (opts.sched) {
    case kweb::SchedKind::kNptl: return kweb::run_nptl(srv);
    case kweb::SchedKind::kUpthread: return kweb::run_upthread(srv);
    case kweb::SchedKind::kCustom: return kweb::run_custom(srv);
  }
  return 2;
}

// kweb's command line: what the server serves, where, and on which of its
// three schedulers.
#ifndef KWEB_OPTIONS_H
#define KWEB_OPTIONS_H

#include <string>

namespace kweb {

enum class SchedKind { kNptl, kUpthread, kCustom };

const char *sched_name(SchedKind kind);

struct Options {
  std::string root;                  // document root (required)
  std::string listen = "127.0.0.1";  // IPv4 address to bind
  int port = -1;                     // required; 0 picks an ephemeral port
  SchedKind sched = SchedKind::kUpthread;
  int vcores = 0;                  // 0: every CPU the process may use
  int threads = 1024;              // worker threads in all (custom: split over its vcores)
  int burst = 10;                  // requests a connection gets before it goes to the tail
  int max_conns = 1024;            // open connections; more are refused with 503
  int idle_timeout_ms = 15000;     // keep-alive connection without a request
  int request_timeout_ms = 10000;  // a request's header from first byte to end; each write wait
  bool admin = false;              // serve the /kweb/ url commands
  int file_cache_ms = 0;           // keep opened files this long (file_cache.h); 0: off
};

// parse_options: fills *out from argv. On a bad or missing option returns
// false with a one-line message in *error; --help sets *help instead.
bool parse_options(int argc, char **argv, Options *out, std::string *error, bool *help);

// The usage text for --help.
const char *usage();

}  // namespace kweb

#endif  // KWEB_OPTIONS_H

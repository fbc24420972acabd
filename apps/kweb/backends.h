// The three scheduler back ends. Each runs the server on the calling
// thread (main) and returns the process's exit status.
#ifndef KWEB_BACKENDS_H
#define KWEB_BACKENDS_H

#include "server.h"

namespace kweb {

// Linux NPTL: kernel threads, restricted to --vcores CPUs like taskset.
int run_nptl(Server &srv);
// parlib's upthread, loaded at start (dlopen) so that the other back ends
// can install their own 2LS in the same program.
int run_upthread(Server &srv);
// kweb's own 2LS on parlib's schedule_ops.
int run_custom(Server &srv);

}  // namespace kweb

#endif  // KWEB_BACKENDS_H

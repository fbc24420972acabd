// kweb's url commands (dissertation 2.6.2's url_cmd): requests under
// /kweb/ that act on the server instead of naming a file. Only with
// --admin; they exist for experiments, not for a server on a network.
//
//   /kweb/stats            counters and the scheduler's state, as text
//   /kweb/vcores?n=N       serve on N vcores (upthread and custom)
//   /kweb/terminate        answer, then shut down as on SIGTERM
#ifndef KWEB_ADMIN_H
#define KWEB_ADMIN_H

#include <string>
#include <string_view>

namespace kweb {

class Server;

struct AdminReply {
  int status = 200;
  std::string body;
  bool terminate = false;  // stop the server once the reply is sent
};

AdminReply run_admin_command(Server &srv, std::string_view target);

}  // namespace kweb

#endif  // KWEB_ADMIN_H

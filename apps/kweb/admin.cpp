#include "admin.h"

#include <cstdlib>

#include "server.h"

namespace kweb {

AdminReply run_admin_command(Server &srv, std::string_view target) {
  AdminReply r;
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  if (path == "/kweb/stats") {
    r.body = srv.stats_text();
  } else if (path == "/kweb/terminate") {
    r.body = "terminating\n";
    r.terminate = true;
  } else if (path == "/kweb/vcores") {
    std::string value(query.substr(0, 2) == "n=" ? query.substr(2) : std::string_view());
    char *end = nullptr;
    long n = value.empty() ? 0 : strtol(value.c_str(), &end, 10);
    std::string why;
    if (value.empty() || *end != '\0' || n < 1 || n > 4096) {
      r.status = 400;
      r.body = "usage: /kweb/vcores?n=N\n";
    } else if (!srv.backend()->set_vcores(static_cast<int>(n), &why)) {
      r.status = 400;
      r.body = why + "\n";
    } else {
      r.body = "vcores " + std::to_string(n) + "\n";
    }
  } else {
    r.status = 404;
    r.body = "unknown command; try /kweb/stats, /kweb/vcores?n=N, /kweb/terminate\n";
  }
  return r;
}

}  // namespace kweb

// upthread-run [-n VCORES] [--sched-period USEC] [--stall-ms MS] [--stats] -- prog args...
//
// Sets the shim's environment and LD_PRELOAD (the shim's absolute path:
// beside this binary in the build tree, or in the install's lib folder)
// and execs prog. The shim itself checks the values (exit status 2).
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

namespace parlib::detail::upthread_run {
namespace {

constexpr const char *kShim = "libupthread-preload.so";

[[noreturn]] void usage(const char *msg) {
  if (msg != nullptr) fprintf(stderr, "upthread-run: %s\n", msg);
  fprintf(stderr,
          "usage: upthread-run [-n VCORES] [--sched-period USEC] [--stall-ms MS] [--stats] -- "
          "prog [args...]\n"
          "  -n VCORES            vcores to use (PARLIB_VCORES; default: CPUs in the mask)\n"
          "  --sched-period USEC  preemption period, 0 = cooperative (UPTHREAD_SCHED_PERIOD_US;\n"
          "                       default 10000)\n"
          "  --stall-ms MS        report a thread that keeps its vcore MS ms without a\n"
          "                       scheduling point (PARLIB_STALL_MS)\n"
          "  --stats              per-vcore counters at exit (PARLIB_STATS=1)\n");
  exit(2);
}

bool readable(const std::string &path) { return access(path.c_str(), R_OK) == 0; }

// The shim next to this executable (build tree) or in ../<libdir>
// (installed); an absolute path, since the program may chdir or be setuid-
// unrelated to our working directory.
std::string find_shim() {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return {};
  exe[n] = '\0';
  std::string dir(exe);
  dir.resize(dir.rfind('/'));
  for (std::string candidate : {dir + "/" + kShim, dir + "/../" UPTHREAD_RUN_LIBDIR "/" + kShim}) {
    if (!readable(candidate)) continue;
    char real[PATH_MAX];
    if (realpath(candidate.c_str(), real) != nullptr) return real;
  }
  return {};
}

bool all_digits(const char *s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; ++s)
    if (*s < '0' || *s > '9') return false;
  return true;
}

int run(int argc, char **argv) {
  int i = 1;
  for (; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      ++i;
      break;
    }
    if (strcmp(a, "-n") == 0 || strcmp(a, "--vcores") == 0) {
      if (++i >= argc || !all_digits(argv[i])) usage("-n wants a vcore count");
      setenv("PARLIB_VCORES", argv[i], 1);
    } else if (strcmp(a, "--sched-period") == 0) {
      if (++i >= argc || !all_digits(argv[i])) usage("--sched-period wants microseconds");
      setenv("UPTHREAD_SCHED_PERIOD_US", argv[i], 1);
    } else if (strcmp(a, "--stall-ms") == 0) {
      if (++i >= argc || !all_digits(argv[i])) usage("--stall-ms wants milliseconds");
      setenv("PARLIB_STALL_MS", argv[i], 1);
    } else if (strcmp(a, "--stats") == 0) {
      setenv("PARLIB_STATS", "1", 1);
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(nullptr);
    } else if (a[0] == '-') {
      usage((std::string("unknown option ") + a).c_str());
    } else {
      break;  // the program, without a "--"
    }
  }
  if (i >= argc) usage("no program given");
  std::string shim = find_shim();
  if (shim.empty()) {
    fprintf(stderr, "upthread-run: cannot find %s beside %s or in ../%s\n", kShim, argv[0],
            UPTHREAD_RUN_LIBDIR);
    return 127;
  }
  // Keep preloads already asked for (a sanitizer runtime must stay first).
  std::string preload = shim;
  if (const char *old = getenv("LD_PRELOAD"); old != nullptr && *old != '\0')
    preload = std::string(old) + ":" + shim;
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(argv[i], argv + i);
  fprintf(stderr, "upthread-run: cannot run %s: %s\n", argv[i], strerror(errno));
  return 127;
}

}  // namespace
}  // namespace parlib::detail::upthread_run

int main(int argc, char **argv) { return parlib::detail::upthread_run::run(argc, argv); }

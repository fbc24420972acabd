// The upthread back end: the same 2.6.2 code as nptl (pool_sched.h) on
// parlib's upthread. libupthread makes main its thread0 in a constructor,
// which would take the process before --sched is read; kweb therefore
// does not link it but loads it here, once the choice is made. The
// constructor then runs on main (inside dlopen) exactly as it would have
// before main, and kweb calls upthread_* through the symbols it looks up.
#include <dlfcn.h>
#include <unistd.h>
#include <parlib/vcore.h>
#include <upthread/upthread.h>

#include <cstdio>
#include <string>

#include "backends.h"
#include "pool_sched.h"

namespace kweb {
namespace {

// libupthread's entry points, resolved once by load_upthread().
struct UpthreadSyms {
  int (*attr_init)(upthread_attr_t *);
  int (*attr_setstacksize)(upthread_attr_t *, size_t);
  int (*create)(upthread_t *, const upthread_attr_t *, void *(*)(void *), void *);
  int (*join)(upthread_t, void **);
  int (*mutex_init)(upthread_mutex_t *, const upthread_mutexattr_t *);
  int (*mutex_lock)(upthread_mutex_t *);
  int (*mutex_unlock)(upthread_mutex_t *);
  int (*cond_init)(upthread_cond_t *, const upthread_condattr_t *);
  int (*cond_wait)(upthread_cond_t *, upthread_mutex_t *);
  int (*cond_signal)(upthread_cond_t *);
  int (*cond_broadcast)(upthread_cond_t *);
  void (*set_num_vcores)(int);
  int (*get_vcore_stats)(uint32_t, struct upthread_vcore_stats *);
};
UpthreadSyms g_up;

bool load_upthread(std::string *error) {
  // The soname first: LD_LIBRARY_PATH, then kweb's RUNPATH (the build
  // tree's src/upthread, or the install's lib directory). A sanitizer's
  // dlopen interceptor makes the call from its own runtime, whose RUNPATH
  // is not kweb's, so the same two places follow by absolute path: the
  // installed layout next to this executable, and the build tree.
  std::string candidates[3] = {"libupthread.so.0", "", KWEB_UPTHREAD_BUILD_DIR "/libupthread.so.0"};
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    std::string dir(exe);
    dir.resize(dir.rfind('/'));
    candidates[1] = dir + "/../" KWEB_INSTALL_LIBDIR "/libupthread.so.0";
  }
  void *lib = nullptr;
  std::string first_error;
  for (const std::string &c : candidates) {
    if (c.empty()) continue;
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (lib != nullptr) break;
    if (first_error.empty()) first_error = dlerror();
  }
  if (lib == nullptr) {
    *error = "cannot load libupthread: " + first_error;
    return false;
  }
  bool ok = true;
  auto sym = [&](auto &fn, const char *name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
    if (fn == nullptr) {
      *error = std::string("libupthread lacks ") + name;
      ok = false;
    }
  };
  sym(g_up.attr_init, "upthread_attr_init");
  sym(g_up.attr_setstacksize, "upthread_attr_setstacksize");
  sym(g_up.create, "upthread_create");
  sym(g_up.join, "upthread_join");
  sym(g_up.mutex_init, "upthread_mutex_init");
  sym(g_up.mutex_lock, "upthread_mutex_lock");
  sym(g_up.mutex_unlock, "upthread_mutex_unlock");
  sym(g_up.cond_init, "upthread_cond_init");
  sym(g_up.cond_wait, "upthread_cond_wait");
  sym(g_up.cond_signal, "upthread_cond_signal");
  sym(g_up.cond_broadcast, "upthread_cond_broadcast");
  sym(g_up.set_num_vcores, "upthread_set_num_vcores");
  sym(g_up.get_vcore_stats, "upthread_get_vcore_stats");
  return ok;
}

struct UpthreadApi {
  using Mutex = upthread_mutex_t;
  using Cond = upthread_cond_t;
  using Thread = upthread_t;
  static void mutex_init(Mutex *m) { g_up.mutex_init(m, nullptr); }
  static void cond_init(Cond *c) { g_up.cond_init(c, nullptr); }
  static void lock(Mutex *m) { g_up.mutex_lock(m); }
  static void unlock(Mutex *m) { g_up.mutex_unlock(m); }
  static void wait(Cond *c, Mutex *m) { g_up.cond_wait(c, m); }
  static void signal(Cond *c) { g_up.cond_signal(c); }
  static void broadcast(Cond *c) { g_up.cond_broadcast(c); }
  static int create(Thread *t, size_t stack, void *(*fn)(void *), void *arg) {
    upthread_attr_t attr;
    g_up.attr_init(&attr);
    g_up.attr_setstacksize(&attr, stack);
    return g_up.create(t, &attr, fn, arg);
  }
  static void join(Thread t) { g_up.join(t, nullptr); }
};

class UpthreadBackend : public Backend {
 public:
  explicit UpthreadBackend(int threads) : threads_(threads) {}
  bool set_vcores(int n, std::string *why) override {
    if (n > max_vcores()) {
      *why = "at most " + std::to_string(max_vcores()) + " vcores";
      return false;
    }
    // New threads and woken ones spread over n queues, and a thread made
    // runnable asks for a vcore while fewer than n are online; vcores
    // beyond n run dry and yield.
    g_up.set_num_vcores(n);
    vcore_request_total(n);
    return true;
  }
  std::string describe() override {
    std::string s = "threads " + std::to_string(threads_) + "\nvcores online " +
                    std::to_string(num_vcores()) + " of " + std::to_string(max_vcores()) + "\n";
    for (int i = 0; i < max_vcores(); ++i) {
      struct upthread_vcore_stats st {};
      if (g_up.get_vcore_stats(static_cast<uint32_t>(i), &st) != 0) continue;
      s += "vcore " + std::to_string(i) + " switches " + std::to_string(st.switches) + " steals " +
           std::to_string(st.steals) + " syscalls " + std::to_string(st.syscalls) + "\n";
    }
    return s;
  }

 private:
  int threads_;
};

}  // namespace

int run_upthread(Server &srv) {
  std::string error;
  if (!load_upthread(&error)) {
    fprintf(stderr, "kweb: %s\n", error.c_str());
    return 1;
  }
  UpthreadBackend backend(srv.opts().threads);
  std::string why;
  if (srv.opts().vcores > 0 && !backend.set_vcores(srv.opts().vcores, &why)) {
    fprintf(stderr, "kweb: --vcores %d: %s\n", srv.opts().vcores, why.c_str());
    return 2;
  }
  srv.set_backend(&backend);
  PoolScheduler<UpthreadApi> pool(srv);
  int rc = pool.run();
  srv.set_backend(nullptr);
  return rc;
}

}  // namespace kweb

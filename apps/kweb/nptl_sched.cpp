// The nptl back end: the 2.6.2 model on glibc's pthreads. parlib is linked
// into kweb but never initialised here, so its interposed calls (poll,
// recv, send, accept) are glibc's and block kernel threads.
#include <pthread.h>
#include <sched.h>

#include <cstdio>
#include <string>

#include "backends.h"
#include "pool_sched.h"

namespace kweb {
namespace {

struct PthreadApi {
  using Mutex = pthread_mutex_t;
  using Cond = pthread_cond_t;
  using Thread = pthread_t;
  static void mutex_init(Mutex *m) { pthread_mutex_init(m, nullptr); }
  static void cond_init(Cond *c) { pthread_cond_init(c, nullptr); }
  static void lock(Mutex *m) { pthread_mutex_lock(m); }
  static void unlock(Mutex *m) { pthread_mutex_unlock(m); }
  static void wait(Cond *c, Mutex *m) { pthread_cond_wait(c, m); }
  static void signal(Cond *c) { pthread_cond_signal(c); }
  static void broadcast(Cond *c) { pthread_cond_broadcast(c); }
  static int create(Thread *t, size_t stack, void *(*fn)(void *), void *arg) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack);
    int err = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return err;
  }
  static void join(Thread t) { pthread_join(t, nullptr); }
};

class NptlBackend : public Backend {
 public:
  NptlBackend(int threads, int cpus) : threads_(threads), cpus_(cpus) {}
  bool set_vcores(int, std::string *why) override {
    *why = "nptl has no vcores (restrict its CPUs with --vcores or taskset)";
    return false;
  }
  std::string describe() override {
    return "threads " + std::to_string(threads_) + "\ncpus " + std::to_string(cpus_) + "\n";
  }

 private:
  int threads_;
  int cpus_;
};

}  // namespace

int run_nptl(Server &srv) {
  // --vcores N: the first N CPUs of the affinity mask, as the dissertation
  // ran NPTL under taskset. Threads created later inherit the mask.
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  int cpus = CPU_COUNT(&set);
  if (srv.opts().vcores > 0 && srv.opts().vcores < cpus) {
    cpu_set_t use;
    CPU_ZERO(&use);
    for (int cpu = 0, taken = 0; cpu < CPU_SETSIZE && taken < srv.opts().vcores; ++cpu)
      if (CPU_ISSET(cpu, &set)) {
        CPU_SET(cpu, &use);
        ++taken;
      }
    sched_setaffinity(0, sizeof use, &use);
    cpus = srv.opts().vcores;
  }
  NptlBackend backend(srv.opts().threads, cpus);
  srv.set_backend(&backend);
  PoolScheduler<PthreadApi> pool(srv);
  int rc = pool.run();
  srv.set_backend(nullptr);
  return rc;
}

}  // namespace kweb

// Cancellation and pthread_exit in C++: glibc unwinds the thread with a
// forced unwind, so destructors of stack objects run (innermost first),
// catch (abi::__forced_unwind &) sees it and must rethrow, the cleanup
// handlers of <pthread.h>'s C++ form run, and thread_local destructors run
// after. A plain pthread program: compare.sh checks that its output equals
// a native run.
#include <cxxabi.h>
#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>

namespace {

std::mutex g_log_lock;
std::string g_log;

void say(const std::string &what) {
  std::lock_guard<std::mutex> lock(g_log_lock);
  if (!g_log.empty()) g_log += ' ';
  g_log += what;
}

void report(const char *name, void *ret) {
  std::printf("%-14s %-9s %s\n", name, ret == PTHREAD_CANCELED ? "CANCELED" : "returned",
              g_log.c_str());
  g_log.clear();
}

struct Noisy {
  std::string name;
  explicit Noisy(std::string n) : name(std::move(n)) {}
  ~Noisy() { say("~" + name); }
};

struct TlsNoisy {
  bool live = false;
  ~TlsNoisy() {
    if (live) say("~thread_local");
  }
};
thread_local TlsNoisy t_noisy;

sem_t g_ready;

void cleanup_say(void *what) { say(static_cast<const char *>(what)); }

void inner_sleep() {
  Noisy inner("inner");
  sem_post(&g_ready);
  sleep(30);
  say("slept-30s");
}

void *sleeper(void *) {
  t_noisy.live = true;
  Noisy outer("outer");
  pthread_cleanup_push(cleanup_say, const_cast<char *>("cleanup-handler"));
  try {
    Noisy in_try("in-try");
    inner_sleep();
  } catch (abi::__forced_unwind &) {
    say("caught-forced-unwind");
    throw;  // must: swallowing it aborts the process
  }
  pthread_cleanup_pop(0);
  return nullptr;
}

void *exiter(void *) {
  t_noisy.live = true;
  Noisy outer("outer");
  {
    Noisy inner("inner");
    pthread_exit(reinterpret_cast<void *>(7));
  }
  return nullptr;
}

}  // namespace

int main() {
  sem_init(&g_ready, 0, 0);
  pthread_t t;
  void *ret;

  pthread_create(&t, nullptr, sleeper, nullptr);
  sem_wait(&g_ready);
  usleep(20000);
  pthread_cancel(t);
  pthread_join(t, &ret);
  report("cancel", ret);

  pthread_create(&t, nullptr, exiter, nullptr);
  pthread_join(t, &ret);
  if (ret == reinterpret_cast<void *>(7)) say("value-7");
  report("pthread_exit", ret);
  return 0;
}

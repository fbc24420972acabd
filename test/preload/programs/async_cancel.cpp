// Asynchronous cancellation of computing threads (issue 11, item 6): a
// plain pthread program (no parlib). Each target sets
// PTHREAD_CANCEL_ASYNCHRONOUS, pushes a cleanup handler, holds an object
// with a destructor, and computes in a function of its own (no
// cancellation point) until cancelled. A controller thread (not main)
// cancels the targets while busy threads load every CPU: each must end
// promptly with PTHREAD_CANCELED, its cleanup handler and destructor run.
// Also: a pending cancellation acts as soon as the type becomes
// asynchronous, and as soon as the state becomes enabled with the
// asynchronous type. A target that is never cancelled leaves the process
// to alarm()'s SIGALRM, which compare.sh reports as a different status.
//
// Output: the results only, identical natively and under the shim.
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

namespace {

constexpr int kTargets = 4;
std::atomic<bool> stop_busy{false};
std::atomic<int> started{0};
std::atomic<int> destructors{0};
std::atomic<int> cleanups{0};
volatile unsigned long sink;

void *busy(void *) {
  while (!stop_busy.load(std::memory_order_relaxed)) {
  }
  return nullptr;
}

struct Guard {
  ~Guard() { destructors.fetch_add(1); }
};

void cleanup(void *) { cleanups.fetch_add(1); }

// Computes forever: no calls, no cancellation point, nothing to unwind in
// this frame (the cancellation lands here, between call sites).
__attribute__((noinline)) void compute() {
  started.fetch_add(1);
  for (unsigned long i = 0;; ++i) sink = sink * 31 + i;
}

void *target(void *arg) {
  int how = static_cast<int>(reinterpret_cast<long>(arg));
  Guard guard;
  pthread_cleanup_push(cleanup, nullptr);
  if (how == 0) {
    pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, nullptr);
  } else {
    // Cancelled before it becomes asynchronous (1) or enabled (2): the
    // call that makes it due acts on it at once.
    if (how == 2) pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
    started.fetch_add(1);
    while (started.load() != 1000) {
    }
    if (how == 1) {
      pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, nullptr);
    } else {
      pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, nullptr);
      pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, nullptr);
    }
    started.fetch_add(1);  // not reached
  }
  compute();
  pthread_cleanup_pop(0);
  return nullptr;
}

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void pause_ms(long ms) {
  timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, nullptr);
}

void reset() {
  started.store(0);
  destructors.store(0);
  cleanups.store(0);
}

void *controller(void *) {
  // Computing targets, cancelled together.
  reset();
  pthread_t t[kTargets];
  for (auto &x : t)
    if (pthread_create(&x, nullptr, target, nullptr) != 0) return nullptr;
  while (started.load() != kTargets) pause_ms(1);
  pause_ms(30);  // a few preemption periods of computing
  double t0 = now_s();
  for (auto &x : t) pthread_cancel(x);
  int canceled = 0;
  for (auto &x : t) {
    void *ret = nullptr;
    pthread_join(x, &ret);
    if (ret == PTHREAD_CANCELED) ++canceled;
  }
  double took = now_s() - t0;
  printf("computing: %d of %d cancelled, destructors %d, cleanup handlers %d\n", canceled, kTargets,
         destructors.load(), cleanups.load());
  // A few 10 ms preemption periods are enough (20-40 ms on an idle
  // machine); the bound is generous for a loaded one.
  printf("computing: cancelled within 20 s: %s\n", took < 20.0 ? "yes" : "no");

  for (long how = 1; how <= 2; ++how) {
    reset();
    pthread_t x;
    if (pthread_create(&x, nullptr, target, reinterpret_cast<void *>(how)) != 0) return nullptr;
    while (started.load() != 1) pause_ms(1);
    pthread_cancel(x);
    started.store(1000);
    void *ret = nullptr;
    pthread_join(x, &ret);
    printf("%s: cancelled %s, destructor %d, cleanup handler %d\n",
           how == 1 ? "pending, then asynchronous" : "pending, then enabled",
           ret == PTHREAD_CANCELED ? "yes" : "no", destructors.load(), cleanups.load());
  }
  return nullptr;
}

}  // namespace

int main() {
  alarm(60);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int nbusy = cpus < 1 ? 1 : cpus > 16 ? 16 : static_cast<int>(cpus);
  pthread_t b[16], ctl;
  for (int i = 0; i < nbusy; ++i)
    if (pthread_create(&b[i], nullptr, busy, nullptr) != 0) return 3;
  if (pthread_create(&ctl, nullptr, controller, nullptr) != 0) return 3;
  pthread_join(ctl, nullptr);
  stop_busy.store(true);
  for (int i = 0; i < nbusy; ++i) pthread_join(b[i], nullptr);
  return 0;
}

// C++ threading on top of pthreads: std::thread, std::mutex,
// std::condition_variable (with timeouts), std::async/std::future,
// thread_local with destructors, std::shared_mutex, std::counting_semaphore
// and std::atomic::wait (libstdc++ waits with the futex system call).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <mutex>
#include <numeric>
#include <queue>
#include <semaphore>
#include <shared_mutex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

static std::atomic<int> tl_destroyed{0};
struct Tracker {
  int id = -1;
  ~Tracker() {
    if (id >= 0) tl_destroyed.fetch_add(1);
  }
};
thread_local Tracker tracker;

int main() {
  // std::thread + std::mutex
  std::mutex m;
  long counter = 0;
  {
    std::vector<std::thread> ts;
    for (int i = 0; i < 8; ++i)
      ts.emplace_back([&, i] {
        tracker.id = i;
        for (int k = 0; k < 20000; ++k) {
          std::lock_guard<std::mutex> g(m);
          ++counter;
        }
      });
    for (auto &t : ts) t.join();
  }
  std::printf("mutex counter %ld, thread_local destructors %d\n", counter, tl_destroyed.load());

  // producer/consumer on std::condition_variable
  std::condition_variable cv;
  std::queue<int> q;
  bool closed = false;
  long consumed = 0;
  std::thread consumer([&] {
    std::unique_lock<std::mutex> lk(m);
    for (;;) {
      cv.wait(lk, [&] { return !q.empty() || closed; });
      if (q.empty()) break;
      consumed += q.front();
      q.pop();
    }
  });
  for (int i = 1; i <= 10000; ++i) {
    std::lock_guard<std::mutex> g(m);
    q.push(i);
    cv.notify_one();
  }
  {
    std::lock_guard<std::mutex> g(m);
    closed = true;
  }
  cv.notify_all();
  consumer.join();
  std::printf("condition_variable sum %ld\n", consumed);
  {
    std::unique_lock<std::mutex> lk(m);
    bool timed_out = cv.wait_for(lk, 20ms) == std::cv_status::timeout;
    std::printf("wait_for timeout %d\n", timed_out);
  }

  // std::async / futures
  std::vector<std::future<long>> fs;
  for (int i = 0; i < 16; ++i)
    fs.push_back(std::async(std::launch::async, [i] {
      long s = 0;
      for (int k = 0; k <= i * 1000; ++k) s += k;
      return s;
    }));
  long total = 0;
  for (auto &f : fs) total += f.get();
  std::promise<int> p;
  auto pf = p.get_future();
  std::thread setter([&] {
    std::this_thread::sleep_for(5ms);
    p.set_value(42);
  });
  bool not_ready = pf.wait_for(1ms) == std::future_status::timeout;
  std::printf("async total %ld, promise %d (not ready at first: %d)\n", total, pf.get(), not_ready);
  setter.join();

  // std::shared_mutex
  std::shared_mutex sm;
  long data[4] = {0, 0, 0, 0};
  std::atomic<int> bad{0};
  {
    std::vector<std::thread> ts;
    for (int i = 0; i < 6; ++i)
      ts.emplace_back([&, i] {
        for (int k = 0; k < 5000; ++k) {
          if ((k + i) % 10 == 0) {
            std::unique_lock<std::shared_mutex> g(sm);
            for (long &d : data) ++d;
          } else {
            std::shared_lock<std::shared_mutex> g(sm);
            if (data[0] != data[3]) bad.fetch_add(1);
          }
        }
      });
    for (auto &t : ts) t.join();
  }
  std::printf("shared_mutex writes %ld, torn reads %d\n", data[0], bad.load());

  // counting_semaphore and atomic wait/notify
  std::counting_semaphore<8> sem(0);
  std::atomic<int> flag{0};
  std::thread waiter([&] {
    for (int i = 0; i < 1000; ++i) sem.acquire();
    flag.store(1);
    flag.notify_one();
  });
  for (int i = 0; i < 1000; ++i) sem.release();
  flag.wait(0);
  waiter.join();
  std::printf("semaphore and atomic wait done, flag %d\n", flag.load());

  // std::timed_mutex and recursive_mutex
  std::timed_mutex tm;
  std::recursive_mutex rm;
  tm.lock();
  bool got = true;
  std::thread other([&] { got = tm.try_lock_for(10ms); });
  other.join();
  tm.unlock();
  rm.lock();
  rm.lock();
  rm.unlock();
  rm.unlock();
  std::printf("timed_mutex try_lock_for while held: %d\n", got);
  std::printf("hardware_concurrency > 0: %d\n", std::thread::hardware_concurrency() > 0);
  return 0;
}

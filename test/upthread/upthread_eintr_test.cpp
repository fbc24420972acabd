// upthread_kill of a thread blocked in a call of parlib's syscall service
// (read, poll, nanosleep, ...): the call ends as POSIX says for a signal
// handled during a system call (signal(7)): EINTR without SA_RESTART, a
// restart with it (never for poll and the sleeps), nothing for an ignored
// signal, and an operation that completed first keeps its result. Runs with
// io_uring and with the helper threads (PARLIB_NO_IO_URING=1).
#include <gtest/gtest.h>
#include <parlib/syscall.h>
#include <parlib/vcore.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <upthread/upthread.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>

using namespace std::chrono_literals;

namespace {

std::atomic<upthread_t> g_handler_thread{nullptr};
std::atomic<int> g_handler_runs{0};

void on_usr2(int) {
  g_handler_thread.store(upthread_self());
  g_handler_runs.fetch_add(1);
}

// Installs the test's SIGUSR2 action for the scope.
class Usr2Action {
 public:
  explicit Usr2Action(int flags, void (*handler)(int) = on_usr2) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, &old_);
    g_handler_thread = nullptr;
    g_handler_runs = 0;
  }
  ~Usr2Action() { sigaction(SIGUSR2, &old_, nullptr); }

 private:
  struct sigaction old_;
};

// Calls that had to wait so far, over all vcores: on the ring or an alarm
// (blocked) or on a helper thread (offloaded). A thread counted here is waiting in its
// call or about to; a request from then on finds it.
uint64_t waits_so_far() {
  uint64_t n = 0;
  struct parlib_syscall_stats st;
  for (uint32_t v = 0; parlib_syscall_get_stats(v, &st) == 0; ++v) n += st.blocked + st.offloaded;
  return n;
}

bool wait_for(const std::function<bool()> &cond, std::chrono::milliseconds limit = 5000ms) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > until) return false;
    usleep(1000);
  }
  return true;
}

// A thread that runs one call (fn returns its result, errno saved) and
// publishes the outcome.
struct Caller {
  std::function<long()> fn;
  std::atomic<bool> done{false};
  long result = 0;
  int err = 0;
  upthread_t thread = nullptr;

  void start(std::function<long()> f) {
    fn = std::move(f);
    ASSERT_EQ(upthread_create(
                  &thread, nullptr,
                  [](void *p) -> void * {
                    auto *c = static_cast<Caller *>(p);
                    errno = 0;
                    c->result = c->fn();
                    c->err = errno;
                    c->done.store(true);
                    return nullptr;
                  },
                  this),
              0);
  }
  void join() { ASSERT_EQ(upthread_join(thread, nullptr), 0); }
};

// Starts c with fn and returns once c waits in its call.
void start_waiting(Caller &c, std::function<long()> fn) {
  uint64_t before = waits_so_far();
  c.start(std::move(fn));
  ASSERT_TRUE(wait_for([&] { return waits_so_far() > before; })) << "the call never waited";
}

struct Pipe {
  int fd[2];
  Pipe() { EXPECT_EQ(pipe(fd), 0); }
  ~Pipe() {
    close(fd[0]);
    close(fd[1]);
  }
};

TEST(UpthreadEintr, ReadFailsWithEintrAndTheHandlerRanInTheReader) {
  Usr2Action action(0);
  Pipe p;
  char buf[4];
  Caller c;
  start_waiting(c, [&] { return read(p.fd[0], buf, sizeof buf); });
  ASSERT_EQ(upthread_kill(c.thread, SIGUSR2), 0);
  bool ended = wait_for([&] { return c.done.load(); });
  if (!ended) {
    ASSERT_EQ(write(p.fd[1], "x", 1), 1);  // let it go, then fail
  }
  c.join();
  EXPECT_TRUE(ended);
  EXPECT_EQ(c.result, -1);
  EXPECT_EQ(c.err, EINTR);
  EXPECT_EQ(g_handler_runs.load(), 1);
  EXPECT_EQ(g_handler_thread.load(), c.thread);
}

TEST(UpthreadEintr, ReadWithSaRestartGoesOnAndReturnsTheDataWrittenLater) {
  Usr2Action action(SA_RESTART);
  Pipe p;
  char buf[4] = {};
  Caller c;
  start_waiting(c, [&] { return read(p.fd[0], buf, sizeof buf); });
  ASSERT_EQ(upthread_kill(c.thread, SIGUSR2), 0);
  ASSERT_TRUE(wait_for([] { return g_handler_runs.load() == 1; }));
  EXPECT_EQ(g_handler_thread.load(), c.thread);
  usleep(50 * 1000);
  EXPECT_FALSE(c.done.load()) << "the read ended: " << c.result << " errno " << c.err;
  ASSERT_EQ(write(p.fd[1], "ab", 2), 2);
  c.join();
  EXPECT_EQ(c.result, 2);
  EXPECT_EQ(buf[0], 'a');
  EXPECT_EQ(buf[1], 'b');
}

TEST(UpthreadEintr, PollWithATimeoutFailsWithEintrEvenWithSaRestart) {
  Usr2Action action(SA_RESTART);
  Pipe p;
  Caller c;
  auto start = std::chrono::steady_clock::now();
  start_waiting(c, [&] {
    struct pollfd pfd = {p.fd[0], POLLIN, 0};
    return poll(&pfd, 1, 20000);
  });
  ASSERT_EQ(upthread_kill(c.thread, SIGUSR2), 0);
  bool ended = wait_for([&] { return c.done.load(); });
  if (!ended) {
    ASSERT_EQ(write(p.fd[1], "x", 1), 1);
  }
  c.join();
  EXPECT_TRUE(ended);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(c.result, -1);
  EXPECT_EQ(c.err, EINTR);
  EXPECT_EQ(g_handler_thread.load(), c.thread);
}

TEST(UpthreadEintr, NanosleepFailsWithEintrAndReportsTheTimeLeft) {
  Usr2Action action(SA_RESTART);
  Caller c;
  struct timespec rem = {-1, -1};
  start_waiting(c, [&] {
    struct timespec req = {10, 0};
    return nanosleep(&req, &rem);
  });
  auto killed = std::chrono::steady_clock::now();
  ASSERT_EQ(upthread_kill(c.thread, SIGUSR2), 0);
  ASSERT_TRUE(wait_for([&] { return c.done.load(); }, 8000ms));
  c.join();
  EXPECT_EQ(c.result, -1);
  EXPECT_EQ(c.err, EINTR);
  // At most the 10 s asked for, and at least what was left when the kill
  // came less the time the interruption may have taken.
  auto waited = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now() - killed);
  int64_t rem_ns = int64_t{rem.tv_sec} * 1000000000 + rem.tv_nsec;
  EXPECT_LE(rem_ns, 10'000'000'000);
  EXPECT_GE(rem_ns, 10'000'000'000 - 2'000'000'000 - waited.count());
  EXPECT_GE(rem.tv_nsec, 0);
  EXPECT_LT(rem.tv_nsec, 1000000000);
  EXPECT_EQ(g_handler_thread.load(), c.thread);
}

TEST(UpthreadEintr, AnIgnoredSignalDoesNotInterrupt) {
  for (int sig : {SIGUSR2, SIGURG}) {
    SCOPED_TRACE(sig);
    struct sigaction ign {
    }, old;
    ign.sa_handler = sig == SIGUSR2 ? SIG_IGN : SIG_DFL;  // SIGURG's default ignores
    sigaction(sig, &ign, &old);
    Pipe p;
    char buf[4];
    Caller c;
    start_waiting(c, [&] { return read(p.fd[0], buf, sizeof buf); });
    ASSERT_EQ(upthread_kill(c.thread, sig), 0);
    usleep(100 * 1000);
    EXPECT_FALSE(c.done.load()) << "the read ended: " << c.result << " errno " << c.err;
    ASSERT_EQ(write(p.fd[1], "z", 1), 1);
    c.join();
    EXPECT_EQ(c.result, 1);
    sigaction(sig, &old, nullptr);
  }
}

// The data and the signal arrive together (in both orders): either the read
// returns the byte, or it fails with EINTR and the byte is still in the pipe.
TEST(UpthreadEintr, AReadThatCompletedIsNotLost) {
  Usr2Action action(0);
  Pipe p;
  int completed = 0, interrupted = 0;
  for (int i = 0; i < 200; ++i) {
    char buf[1] = {0};
    Caller c;
    start_waiting(c, [&] { return read(p.fd[0], buf, 1); });
    char b = static_cast<char>('a' + i % 26);
    if (i % 2 == 0) {
      ASSERT_EQ(write(p.fd[1], &b, 1), 1);
      ASSERT_EQ(upthread_kill(c.thread, SIGUSR2), 0);
    } else {
      ASSERT_EQ(upthread_kill(c.thread, SIGUSR2), 0);
      ASSERT_EQ(write(p.fd[1], &b, 1), 1);
    }
    c.join();
    if (c.result == 1) {
      EXPECT_EQ(buf[0], b);
      ++completed;
    } else {
      ASSERT_EQ(c.result, -1);
      ASSERT_EQ(c.err, EINTR);
      char again = 0;
      ASSERT_EQ(read(p.fd[0], &again, 1), 1) << "iteration " << i;
      EXPECT_EQ(again, b);
      ++interrupted;
    }
  }
  printf("completed %d, interrupted %d\n", completed, interrupted);
}

}  // namespace

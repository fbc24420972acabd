// The alarm service (<parlib/alarm.h>, dissertation 2.4.2).
//
// Design
// ------
// One kernel timer for the whole process: a CLOCK_MONOTONIC timerfd, armed
// (absolute) to the earliest pending deadline. One service kernel thread,
// made with pthread_create on first use, blocks in read() on it. Pending
// waiters sit in a binary min-heap keyed by deadline; each waiter keeps its
// heap index, so removal and reset are O(log n). When the timer expires the
// service thread pops every due waiter (deadline <= now), marks it firing,
// and sends it as an EV_ALARM event to the vcore that started it; that
// vcore's handler (alarm_handle_event) marks it idle and calls the
// callback, in vcore context. The Linux port of the dissertation used one
// sleeping helper thread per alarm; here the number of kernel threads and
// timers is constant however many alarms are pending.
//
// Waiter states (alarm_waiter::state_), all transitions under g_svc.lock:
//   kIdle    -> kPending  start_alarm (pushed on the heap)
//   kPending -> kIdle     stop_alarm (removed; returns true)
//   kPending -> kPending  reset_alarm_abs (re-keyed; returns true)
//   kPending -> kFiring   the service thread (popped; its event is sent)
//   kFiring  -> kIdle     alarm_handle_event, just before the callback
// stop_alarm/reset_alarm_abs on a firing or idle waiter return false: the
// callback runs (or ran) exactly once, at the old time. Because kFiring ->
// kIdle happens before the callback, the callback may re-arm its waiter.
//
// Timer invariant: whenever the lock is free and the heap is not empty,
// the timerfd is armed at or before the earliest deadline (g_svc.armed_usec
// <= top). start_alarm re-arms only when it inserts a deadline earlier than
// what is armed; stop/reset leave an earlier arming in place (one spurious
// wakeup is cheaper than a syscall per stop); the service thread re-arms to
// the new top after each batch. Arming happens under the lock, so two
// re-arms can never be applied out of order.
//
// The lock is taken from uthread context (with notifications disabled, so
// the holder is neither interrupted by a handler on its own vcore, which
// would spin forever on it, nor migrated), from vcore context and from the
// service thread (uth_disable_notifs is a no-op in the last two).
//
// No allocation on the handler path: the heap is an mmap'd array of
// pointers, reserved for kInitialCapacity waiters (virtual memory only:
// pages are touched as the heap grows) and grown with mremap (a system
// call that takes no user-level lock) when that is exceeded, so even a
// callback that re-arms never calls malloc. Only the first start_alarm
// allocates (the thread), once.
#include <parlib/alarm.h>
#include <parlib/event.h>
#include <parlib/uthread.h>
#include <parlib/vcore.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>

#include "common/clock.h"
#include "common/raw_log.h"
#include "common/runtime_fds.h"
#include "common/spinlock.h"
#include "event/alarm_internal.h"
#include "event/event_internal.h"

namespace parlib::detail {
namespace {

// Waiter states. Distinctive values, so that a waiter that was never
// init_waiter()ed is unlikely to look pending or firing by chance.
enum WaiterState : uint32_t {
  kIdle = 0,
  kPending = 0x50454e44,  // "PEND": on the heap
  kFiring = 0x46495245,   // "FIRE": popped, its EV_ALARM event is in flight
};

constexpr uint64_t kNotArmed = std::numeric_limits<uint64_t>::max();
constexpr size_t kInitialCapacity = size_t{1} << 16;  // 512 KiB of address space
constexpr int kBatch = 64;                    // waiters sent per locked pass of the service thread
constexpr unsigned kSpinsBeforeYield = 4096;  // lock spins between sched_yield calls

// The service lock: the base TTAS lock (acquire/release: the holder's heap
// and waiter writes happen-before the next holder's), notifications
// disabled while held in uthread context. Critical sections are a few heap
// operations and at most one timerfd_settime or mremap. A holder that
// stays long was descheduled by the kernel (the service thread, or a vcore
// on an oversubscribed CPU): a waiter gives its CPU away now and then, in
// case the holder waits for this very CPU. sched_yield never blocks, so
// this is allowed in vcore context too.
class ServiceLock {
 public:
  void lock() {
    uth_disable_notifs();
    lock_.lock();
  }
  void unlock() {
    lock_.unlock();
    uth_enable_notifs();
  }

 private:
  SpinLock<kSpinsBeforeYield> lock_;
};

class Guard {
 public:
  explicit Guard(ServiceLock &l) : l_(l) { l_.lock(); }
  ~Guard() { l_.unlock(); }
  Guard(const Guard &) = delete;
  Guard &operator=(const Guard &) = delete;

 private:
  ServiceLock &l_;
};

struct Service {
  ServiceLock lock;
  // Guarded by lock:
  struct alarm_waiter **heap = nullptr;  // heap[0] has the earliest deadline
  size_t size = 0;
  size_t capacity = 0;
  uint64_t armed_usec = kNotArmed;  // what the timerfd is armed to
  // Written once by alarm_service_init (before the thread exists):
  int tfd = -1;
  // Set (release) at the end of init; start_alarm's fast path reads it
  // (acquire) so that it sees tfd and heap once it sees true.
  std::atomic<bool> ready{false};
  std::once_flag once;
};

constinit Service g_svc;  // constant-initialised: usable before any constructor runs

// ------------------------------------------------------------------ time

uint64_t sat_add(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max()
                                                      : a + b;
}

// ------------------------------------------------------------------ heap
// All heap functions run under g_svc.lock.

bool earlier(const struct alarm_waiter *a, const struct alarm_waiter *b) {
  return a->wake_up_time_ < b->wake_up_time_;
}

void place(size_t i, struct alarm_waiter *w) {
  g_svc.heap[i] = w;
  w->heap_idx_ = i;
}

void sift_up(size_t i) {
  struct alarm_waiter *w = g_svc.heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(w, g_svc.heap[parent])) break;
    place(i, g_svc.heap[parent]);
    i = parent;
  }
  place(i, w);
}

void sift_down(size_t i) {
  struct alarm_waiter *w = g_svc.heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= g_svc.size) break;
    if (child + 1 < g_svc.size && earlier(g_svc.heap[child + 1], g_svc.heap[child])) child++;
    if (!earlier(g_svc.heap[child], w)) break;
    place(i, g_svc.heap[child]);
    i = child;
  }
  place(i, w);
}

// True if w is really on the heap (not just a waiter whose state field
// happens to say so).
bool is_pending(const struct alarm_waiter *w) {
  return w->state_ == kPending && w->heap_idx_ < g_svc.size && g_svc.heap[w->heap_idx_] == w;
}

// Grows the heap array with mremap: no malloc, no user-level lock, so it is
// allowed in vcore context (a callback that re-arms).
void grow_heap() {
  size_t old_bytes = g_svc.capacity * sizeof(struct alarm_waiter *);
  void *p = mremap(g_svc.heap, old_bytes, old_bytes * 2, MREMAP_MAYMOVE);
  if (p == MAP_FAILED)
    raw_fatal("alarm: cannot grow the heap to %zu waiters: errno %d", g_svc.capacity * 2, errno);
  g_svc.heap = static_cast<struct alarm_waiter **>(p);
  g_svc.capacity *= 2;
}

void heap_push(struct alarm_waiter *w) {
  if (g_svc.size == g_svc.capacity) grow_heap();
  g_svc.heap[g_svc.size] = w;
  w->heap_idx_ = g_svc.size;
  g_svc.size++;
  sift_up(w->heap_idx_);
}

void heap_remove(struct alarm_waiter *w) {
  size_t i = w->heap_idx_;
  g_svc.size--;
  if (i != g_svc.size) {
    struct alarm_waiter *last = g_svc.heap[g_svc.size];
    place(i, last);
    // The moved element may belong above or below its new slot.
    if (i > 0 && earlier(last, g_svc.heap[(i - 1) / 2]))
      sift_up(i);
    else
      sift_down(i);
  }
  g_svc.heap[g_svc.size] = nullptr;
}

// Re-keys a waiter that is on the heap.
void heap_update(struct alarm_waiter *w, uint64_t usec) {
  uint64_t old = w->wake_up_time_;
  w->wake_up_time_ = usec;
  if (usec < old)
    sift_up(w->heap_idx_);
  else
    sift_down(w->heap_idx_);
}

// ----------------------------------------------------------------- timer

void arm_timer(uint64_t usec) {
  struct itimerspec its = {};
  its.it_value.tv_sec = static_cast<time_t>(usec / 1000000u);
  its.it_value.tv_nsec = static_cast<long>((usec % 1000000u) * 1000u);
  // A zero it_value would disarm; deadline 0 is simply "long ago".
  if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
  int rc = timerfd_settime(g_svc.tfd, TFD_TIMER_ABSTIME, &its, nullptr);
  PARLIB_CHECK(rc == 0, "alarm: timerfd_settime failed: errno %d", errno);
  g_svc.armed_usec = usec;
}

// Keeps the timer invariant after an insertion or re-key of deadline usec.
void arm_if_earlier(uint64_t usec) {
  if (usec < g_svc.armed_usec) arm_timer(usec);
}

// ------------------------------------------------------------ the thread

struct Due {
  struct alarm_waiter *w;
  uint32_t vcoreid;
};

void send_alarm_event(const Due &d) {
  struct event_msg msg = {};
  msg.ev_arg3 = d.w;
  bool reported = false;
  // The waiter is kFiring: nothing else touches it until the handler runs,
  // so retrying is safe. Only ENOMEM is transient; anything else means the
  // event layer refuses EV_ALARM, and the callback would be lost silently.
  while (send_event_to_any(&msg, EV_ALARM, d.vcoreid) != 0) {
    int err = errno;
    if (err != ENOMEM)
      raw_fatal("alarm: send_event(EV_ALARM, vcore %u) failed: errno %d", d.vcoreid, err);
    if (!reported) raw_log("alarm: send_event out of memory; retrying");
    reported = true;
    usleep(100);
  }
}

// One locked pass: pops up to kBatch due waiters and re-arms the timer to
// the new earliest deadline. Returns how many it popped.
int collect_due(Due (&batch)[kBatch]) {
  int n = 0;
  Guard g(g_svc.lock);
  const uint64_t now = alarm_now_usec();
  while (n < kBatch && g_svc.size > 0 && g_svc.heap[0]->wake_up_time_ <= now) {
    struct alarm_waiter *w = g_svc.heap[0];
    heap_remove(w);
    w->state_ = kFiring;
    batch[n++] = Due{w, w->vcoreid_};
  }
  // The timerfd is one-shot and has expired (or this is a spurious
  // wakeup): arm it to what is now earliest. A top already due (batch
  // full) is armed in the past and expires at once.
  if (g_svc.size > 0)
    arm_timer(g_svc.heap[0]->wake_up_time_);
  else
    g_svc.armed_usec = kNotArmed;
  return n;
}

void *service_main(void *) {
  // Plain timer expiries, no slack wanted.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  for (;;) {
    uint64_t expirations;
    // A raw read: the syscall layer must not treat this thread as one of
    // its callers (it is neither a vcore nor a uthread).
    long rc = syscall(SYS_read, g_svc.tfd, &expirations, sizeof(expirations));
    if (rc < 0) {
      PARLIB_CHECK(errno == EINTR || errno == EAGAIN, "alarm: read(timerfd) failed: errno %d",
                   errno);
      continue;
    }
    Due batch[kBatch];
    int n;
    do {
      n = collect_due(batch);
      // Sent in deadline order, outside the lock (send_event may allocate
      // here: this is a plain kernel thread). After send_event the waiter
      // belongs to its vcore's handler: do not touch it again.
      for (int i = 0; i < n; i++) send_alarm_event(batch[i]);
    } while (n == kBatch);
  }
  return nullptr;
}

void do_init() {
  event_lib_init();
  ev_handlers[EV_ALARM] = alarm_handle_event;

  g_svc.tfd = hide_runtime_fd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
  if (g_svc.tfd < 0) raw_fatal("alarm: timerfd_create failed: errno %d", errno);

  void *heap = mmap(nullptr, kInitialCapacity * sizeof(struct alarm_waiter *),
                    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (heap == MAP_FAILED) raw_fatal("alarm: cannot map the heap: errno %d", errno);
  g_svc.heap = static_cast<struct alarm_waiter **>(heap);
  g_svc.capacity = kInitialCapacity;

  // The service thread takes no signals: process-directed signals belong
  // to the application's threads, and it must never run a handler that
  // expects a vcore or a uthread.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 << 10);  // room for sanitizer builds
  // A thread inherits its creator's CPU mask, and the first start_alarm
  // usually runs on a vcore, whose kernel task is pinned to one CPU: the
  // service thread would then compete with that vcore (a uthread spinning
  // there delays every expiry by a kernel timeslice). Give it the
  // process's mask, which the main task keeps, instead.
  cpu_set_t cpus;
  if (sched_getaffinity(getpid(), sizeof cpus, &cpus) == 0)
    pthread_attr_setaffinity_np(&attr, sizeof cpus, &cpus);
  pthread_t tid;
  int err = pthread_create(&tid, &attr, service_main, nullptr);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err != 0) raw_fatal("alarm: cannot create the service thread: errno %d", err);
  pthread_setname_np(tid, "parlib-alarm");

  g_svc.ready.store(true, std::memory_order_release);
}

void ensure_init() {
  // acquire: pairs with the release at the end of do_init.
  if (__builtin_expect(g_svc.ready.load(std::memory_order_acquire), 1)) return;
  alarm_service_init();
}

// What a locked operation found, reported after unlocking (raw_log writes
// to stderr; not under the lock).
enum class Misuse { kNone, kPending, kFiring, kNoFunc };

const char *misuse_text(Misuse m) {
  switch (m) {
    case Misuse::kPending:
      return "is pending";
    case Misuse::kFiring:
      return "is firing";
    case Misuse::kNoFunc:
      return "has no callback";
    case Misuse::kNone:
      break;
  }
  return "";
}

void report(const char *fn, const struct alarm_waiter *w, Misuse m) {
  if (m != Misuse::kNone)
    raw_log("alarm: %s(%p): the waiter %s; ignored", fn, static_cast<const void *>(w),
            misuse_text(m));
}

// Sets w's expiry unless it is pending (under the lock, so that a pending
// waiter's heap key never changes behind the heap's back).
template <typename F>
void set_expiry(const char *fn, struct alarm_waiter *w, F compute) {
  if (w == nullptr) return;
  Misuse m = Misuse::kNone;
  {
    Guard g(g_svc.lock);
    if (is_pending(w))
      m = Misuse::kPending;
    else
      w->wake_up_time_ = compute(w->wake_up_time_);
  }
  report(fn, w, m);
}

}  // namespace

uint64_t alarm_now_usec() { return monotonic_now_ns() / 1000u; }
uint64_t alarm_now_usec_ceil() { return (monotonic_now_ns() + 999u) / 1000u; }

void alarm_service_init() { std::call_once(g_svc.once, do_init); }

void alarm_handle_event(struct event_msg *msg, unsigned int) {
  auto *w = static_cast<struct alarm_waiter *>(msg->ev_arg3);
  PARLIB_CHECK(w != nullptr, "alarm: EV_ALARM without a waiter");
  void (*func)(struct alarm_waiter *);
  {
    Guard g(g_svc.lock);
    PARLIB_CHECK(w->state_ == kFiring, "alarm: EV_ALARM for waiter %p in state %#x",
                 static_cast<void *>(w), w->state_);
    // Idle before the callback: it may re-arm w, and from here on a
    // stop_alarm returns false (the callback is running).
    w->state_ = kIdle;
    func = w->func_;
  }
  func(w);
}

}  // namespace parlib::detail

using namespace parlib::detail;

void init_waiter(struct alarm_waiter *w, void (*func)(struct alarm_waiter *)) {
  if (w == nullptr) return;
  Misuse m = Misuse::kNone;
  {
    Guard g(g_svc.lock);
    if (is_pending(w)) {
      m = Misuse::kPending;
    } else if (w->state_ == kFiring) {
      m = Misuse::kFiring;
    } else {
      w->wake_up_time_ = 0;
      w->func_ = func;
      w->heap_idx_ = 0;
      w->state_ = kIdle;
      w->vcoreid_ = 0;
    }
  }
  report("init_waiter", w, m);
}

void set_waiter_abs(struct alarm_waiter *w, uint64_t abs_usec) {
  set_expiry("set_waiter_abs", w, [abs_usec](uint64_t) { return abs_usec; });
}

void set_waiter_abs_unix(struct alarm_waiter *w, uint64_t abs_usec) {
  if (w == nullptr) return;
  // Realtime first, then monotonic (rounded up): both errors make the
  // converted deadline later, never earlier.
  const uint64_t real_us = clock_ns(CLOCK_REALTIME) / 1000u;
  const uint64_t mono_us = alarm_now_usec_ceil();
  uint64_t deadline;
  if (abs_usec >= real_us)
    deadline = sat_add(mono_us, abs_usec - real_us);
  else
    deadline = real_us - abs_usec > mono_us ? 0 : mono_us - (real_us - abs_usec);
  set_expiry("set_waiter_abs_unix", w, [deadline](uint64_t) { return deadline; });
}

void set_waiter_rel(struct alarm_waiter *w, uint64_t usec) {
  if (w == nullptr) return;
  const uint64_t deadline = sat_add(alarm_now_usec_ceil(), usec);
  set_expiry("set_waiter_rel", w, [deadline](uint64_t) { return deadline; });
}

void set_waiter_inc(struct alarm_waiter *w, int64_t usec) {
  set_expiry("set_waiter_inc", w, [usec](uint64_t t) {
    if (usec >= 0) return sat_add(t, static_cast<uint64_t>(usec));
    uint64_t dec = static_cast<uint64_t>(-(usec + 1)) + 1;  // |usec| without overflow
    return t < dec ? 0 : t - dec;
  });
}

void start_alarm(struct alarm_waiter *w) {
  if (w == nullptr) return;
  ensure_init();
  Misuse m = Misuse::kNone;
  {
    Guard g(g_svc.lock);
    if (is_pending(w)) {
      m = Misuse::kPending;
    } else if (w->state_ == kFiring) {
      m = Misuse::kFiring;
    } else if (w->func_ == nullptr) {
      m = Misuse::kNoFunc;
    } else {
      // Notifications are disabled (or we are not a uthread): the vcore
      // cannot change under us. Not a vcore at all: vcore_id() is 0.
      w->vcoreid_ = vcore_id();
      w->state_ = kPending;
      heap_push(w);
      arm_if_earlier(w->wake_up_time_);
    }
  }
  report("start_alarm", w, m);
}

bool stop_alarm(struct alarm_waiter *w) {
  if (w == nullptr) return false;
  Guard g(g_svc.lock);
  if (!is_pending(w)) return false;  // idle (fired or never started) or firing
  heap_remove(w);
  w->state_ = kIdle;
  // The timer may stay armed for w's deadline: one spurious wakeup.
  return true;
}

bool reset_alarm_abs(struct alarm_waiter *w, uint64_t abs_usec) {
  if (w == nullptr) return false;
  Guard g(g_svc.lock);
  if (!is_pending(w)) return false;  // fires (or fired) at the old time
  heap_update(w, abs_usec);
  arm_if_earlier(abs_usec);
  return true;
}

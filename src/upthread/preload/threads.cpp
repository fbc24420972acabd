// libupthread-preload.so: thread lifecycle, keys, affinity, the futex
// system call, fork, and the start-up environment (signals: signals.cpp;
// cancellation: cancel.cpp).
//
// A thread is a upthread when a uthread created it (main is one from
// libupthread's constructor on); a thread created elsewhere (by the
// runtime itself, from vcore context, by a thread the shim did not make)
// is a glibc thread, and every call on it goes to glibc.
#include <errno.h>
#include <link.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <new>

#include <parlib/dtls.h>
#include <parlib/vcore.h>
#include <upthread/upthread.h>

#include "common/clock.h"
#include "common/env.h"
#include "common/spinlock.h"
#include "event/foreign_call.h"
#include "mutex.h"
#include "shim.h"
#include "upthread/upthread_internal.h"

namespace parlib::detail::preload {

void *next_symbol(const char *name) {
  void *p = dlsym(RTLD_NEXT, name);
  if (p == nullptr) {
    // Without glibc's function the program cannot go on sensibly.
    fprintf(stderr, "libupthread-preload: no next definition of %s\n", name);
    abort();
  }
  return p;
}

namespace {

// The executable ranges of libparlib and libupthread. The runtime creates
// its own kernel threads (vcore tasks, the alarm and timer services) with
// pthread_create, sometimes lazily from a uthread, and sets their signal
// masks with pthread_sigmask: those calls must reach glibc, so the calls
// that depend on the caller look at their return address.
struct Range {
  uintptr_t lo, hi;
};
constexpr int kMaxRanges = 4;
// Published once: the ranges are written first, then their count with
// release; -1 until then. A reader that finds the count sees the ranges.
Range g_runtime[kMaxRanges];
std::atomic<int> g_num_runtime{-1};

struct Collect {
  uintptr_t bases[2];
  Range ranges[kMaxRanges];
  int n;
};

int collect_ranges(struct dl_phdr_info *info, size_t, void *arg) {
  auto *c = static_cast<Collect *>(arg);
  if (info->dlpi_addr != c->bases[0] && info->dlpi_addr != c->bases[1]) return 0;
  for (int i = 0; i < info->dlpi_phnum && c->n < kMaxRanges; ++i) {
    const ElfW(Phdr) &ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
      c->ranges[c->n++] = {info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz};
  }
  return 0;
}

// Finds the ranges once. The first caller collects them into a local
// table and publishes it whole; a concurrent first caller waits for that
// (it must not answer "not the runtime" from a half-filled table: the
// runtime's pthread_create would make a upthread). The wait is a plain
// spin: sched_yield is interposed and asks from_runtime itself.
int find_runtime_ranges() {
  Dl_info a{}, b{};
  dladdr(reinterpret_cast<void *>(&vcore_id), &a);
  dladdr(reinterpret_cast<void *>(&upthread_yield), &b);
  static parlib::detail::SpinLock<> busy;
  busy.lock();
  int n = g_num_runtime.load(std::memory_order_acquire);
  if (n < 0) {
    Collect c{{reinterpret_cast<uintptr_t>(a.dli_fbase), reinterpret_cast<uintptr_t>(b.dli_fbase)},
              {},
              0};
    dl_iterate_phdr(collect_ranges, &c);
    for (int i = 0; i < c.n; ++i) g_runtime[i] = c.ranges[i];
    n = c.n;
    g_num_runtime.store(n, std::memory_order_release);
  }
  busy.unlock();
  return n;
}

}  // namespace

bool from_runtime(void *ret) {
  int n = g_num_runtime.load(std::memory_order_acquire);
  if (n < 0) n = find_runtime_ranges();
  auto pc = reinterpret_cast<uintptr_t>(ret);
  for (int i = 0; i < n; ++i)
    if (pc >= g_runtime[i].lo && pc < g_runtime[i].hi) return true;
  return false;
}

namespace {

// The handle a program sees as pthread_t for a upthread. Its first word is
// kMagic; the first word of glibc's struct pthread (a pthread_t of a glibc
// thread) is its own address (tcbhead_t.tcb), never kMagic.
constexpr uint64_t kMagic = 0x55505448'52454144ull;  // "UPTHREAD"

struct ShimThread {
  uint64_t magic = kMagic;
  upthread_t ut = nullptr;
  void *(*start)(void *) = nullptr;
  void *arg = nullptr;
  // One reference for the thread itself, one for whoever joins or
  // detaches it; the last to let go frees the handle.
  std::atomic<int> refs{2};
  int done = 0;  // futex word: 1 once the thread has finished its start routine
  char name[16] = {};
  // pthread_exit and cancellation unwind the thread's frames down to
  // trampoline's buffer (while unwinds), which then finishes with retval.
  bool unwinds = false;
  void *retval = nullptr;
  SchedState sched{};  // sched_attrs.cpp
};

ShimThread g_main_thread;

// The calling upthread's handle (every uthread has its own static TLS; the
// shim is loaded at start-up, so initial-exec is allowed and cheap).
__thread ShimThread *tl_self __attribute__((tls_model("initial-exec"))) = nullptr;

ShimThread *as_shim(pthread_t t) {
  auto *s = reinterpret_cast<ShimThread *>(t);
  return (s != nullptr && s->magic == kMagic) ? s : nullptr;
}

void release(ShimThread *s) {
  if (s == &g_main_thread) return;
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    s->magic = 0;
    s->~ShimThread();
    free(s);
  }
}

// Ends the calling upthread: destructors first (they may still use
// pthread_self()), then the handle reference, then the thread.
[[noreturn]] void finish(ShimThread *s, void *retval) {
  uthread_run_destructors();
  // In a fork child this is the thread that forked, with no scheduler to
  // exit to: end the process, as glibc's start_thread does when the last
  // thread ends (threads the child started and left running end with it,
  // docs/preload.md).
  if (g_native_only.load(std::memory_order_relaxed)) exit(0);
  robust_thread_exit();
  identity_thread_exit(reinterpret_cast<pthread_t>(s));
  std::atomic_ref<int>(s->done).store(1, std::memory_order_release);
  futex_wake(&s->done, INT_MAX);
  release(s);
  tl_self = nullptr;
  upthread_exit(retval);
}

// glibc's cleanup-handler chain (pthread_cleanup_push in C, <pthread.h>)
// and its forced unwind. The chain's head lives in the TCB, which is per
// uthread, so each upthread has its own chain. Declared here because
// <pthread.h> declares them for C only.
extern "C" {
void __pthread_register_cancel(__pthread_unwind_buf_t *buf);
void __pthread_unregister_cancel(__pthread_unwind_buf_t *buf);
[[noreturn]] void __pthread_unwind_next(__pthread_unwind_buf_t *buf);
}

// A upthread's bottom frame. Its buffer ends glibc's cleanup chain the way
// start_thread's does in a glibc thread: a forced unwind (pthread_exit,
// cancellation) runs the C++ destructors and the C cleanup handlers of the
// frames above, then longjmps here.
void *trampoline(void *p) {
  auto *s = static_cast<ShimThread *>(p);
  tl_self = s;
  identity_thread_start(reinterpret_cast<pthread_t>(s));
  __pthread_unwind_buf_t base;
  if (__sigsetjmp(reinterpret_cast<struct __jmp_buf_tag *>(base.__cancel_jmp_buf), 0) != 0) {
    ShimThread *me = tl_self;  // not s: locals are unreliable after a longjmp
    __pthread_unregister_cancel(&base);
    me->unwinds = false;
    finish(me, me->retval);
  }
  __pthread_register_cancel(&base);
  s->unwinds = true;
  void *ret = s->start(s->arg);
  __pthread_unregister_cancel(&base);
  s->unwinds = false;
  finish(s, ret);
}

// Ends the calling upthread as glibc's pthread_exit does: cleanup handlers
// and destructors of its frames first (a forced unwind to trampoline),
// then key and thread_local destructors (finish). thread0 has no frame of
// ours at its bottom (glibc's chain ends in __libc_start_call_main, which
// would end the kernel task): it finishes without unwinding.
[[noreturn]] void exit_thread(ShimThread *s, void *retval) {
  // No cancellation points act from here on (cleanup handlers may wait).
  if (struct upthread *me = upthread_self())
    me->cancel.fetch_or(upthread_impl::kCancelExiting, std::memory_order_relaxed);
  if (s == nullptr) upthread_exit(retval);
  if (!s->unwinds) finish(s, retval);
  s->retval = retval;
  // __pthread_unwind_next(b) unwinds to the buffer registered before b:
  // register one here to unwind to the chain's current head.
  __pthread_unwind_buf_t top;
  __pthread_register_cancel(&top);
  __pthread_unwind_next(&top);
}

// ---------------------------------------------------------------- keys

// A key is glibc's key (for glibc threads: the runtime's own, vcore
// context, threads the shim did not create) paired with a DTLS key (for
// upthreads, whose destructors parlib runs at upthread exit).
std::atomic<dtls_key_t> g_dtls[PTHREAD_KEYS_MAX];

// ------------------------------------------------------- environment

void child_after_fork() {
  // The forking thread's key values move from its DTLS to glibc's keys,
  // which are what its pthread_getspecific reads from now on (in the
  // child it runs on its own TCB as glibc's only thread).
  if (on_uthread()) {
    for (pthread_key_t k = 0; k < PTHREAD_KEYS_MAX; ++k) {
      dtls_key_t d = g_dtls[k].load(std::memory_order_acquire);
      void *v = d != nullptr ? get_dtls(d) : nullptr;
      if (v == nullptr) continue;
      REAL(pthread_setspecific)(k, v);
      set_dtls(d, nullptr);
    }
  }
  // The child has only the forking task: no vcores, no alarm service. Its
  // threads from now on are glibc threads (docs/preload.md).
  g_native_only.store(true, std::memory_order_relaxed);
}

}  // namespace
}  // namespace parlib::detail::preload

using namespace parlib::detail::preload;

// Runs after libupthread's constructor (a dependency initialises first),
// so main is already thread0; _exit(2) keeps a bad value from reaching
// main.
extern "C" int __upthread_stats_mode_invalid(void);  // libupthread, UPTHREAD_PRIVATE

__attribute__((constructor)) static void preload_init() {
  // A malformed value has been reported (common/env.h) and exits 2. The
  // vcore layer's variables (PARLIB_VCORES, ...) were checked by
  // libupthread's constructor, which exits 2 on them.
  using parlib::detail::env_integer;
  using parlib::detail::EnvStatus;
  uint64_t period = 10000;  // unmodified programs may spin-wait: preempt
  if (env_integer("UPTHREAD_SCHED_PERIOD_US", 0, 10'000'000, "microseconds (0 = cooperative)",
                  &period) == EnvStatus::kInvalid ||
      __upthread_stats_mode_invalid())
    _exit(2);
  // Unmodified programs block in the kernel where the shim cannot see it
  // (libgomp's inline futex calls): spare vcores stand in (docs/preload.md).
  uint64_t stuck_check = 1000;
  if (env_integer("UPTHREAD_STUCK_CHECK_US", 0, 10'000'000, "microseconds (0 = off)",
                  &stuck_check) == EnvStatus::kInvalid)
    _exit(2);
  upthread_set_sched_period(period);
  upthread_set_stuck_check_period(stuck_check);
  if (uthread_self() != nullptr) {
    tl_self = &g_main_thread;
    g_main_thread.ut = upthread_self();
    g_main_thread.refs.store(INT_MAX / 2);
    sched_init(&g_main_thread.sched);
    identity_init(reinterpret_cast<pthread_t>(&g_main_thread));
    thread_clock_init(g_main_thread.ut);
    // A vcore arms its preemption tick when it enters the scheduler, and
    // main's vcore entered it before the period was set: pass through it
    // once, or main (and the threads queued behind it) could run unpreempted.
    if (period != 0) upthread_yield();
  }
  pthread_atfork(nullptr, nullptr, child_after_fork);
  share_usr1();
}

// ================================================== thread lifecycle

SHIM_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                               void *(*start)(void *), void *arg) {
  if (!on_uthread() || from_runtime(__builtin_return_address(0)))
    return REAL(pthread_create)(thread, attr, start, arg);
  upthread_attr_t ua;
  upthread_attr_init(&ua);
  // glibc's default stack size (RLIMIT_STACK, usually 8 MiB), not
  // upthread's 1 MiB: programs are sized for it. Untouched pages cost
  // nothing.
  pthread_attr_t defaults;
  const pthread_attr_t *a = attr;
  if (a == nullptr && pthread_getattr_default_np(&defaults) == 0) a = &defaults;
  if (a != nullptr) {
    int detach = PTHREAD_CREATE_JOINABLE;
    size_t size = 0, guard = 0;
    pthread_attr_getdetachstate(a, &detach);
    if (pthread_attr_getstacksize(a, &size) == 0 && size != 0)
      ua.stacksize = size < UPTHREAD_STACK_MIN ? UPTHREAD_STACK_MIN : size;
    if (pthread_attr_getguardsize(a, &guard) == 0) ua.guardsize = guard == 0 ? 4096 : guard;
    ua.detachstate =
        detach == PTHREAD_CREATE_DETACHED ? UPTHREAD_CREATE_DETACHED : UPTHREAD_CREATE_JOINABLE;
  }
  SchedState sched;
  int sched_err = sched_for_new_thread(a, tl_self != nullptr ? &tl_self->sched : nullptr, &sched);
  if (a == &defaults) pthread_attr_destroy(&defaults);
  if (sched_err != 0) return sched_err;
  void *mem = malloc(sizeof(ShimThread));
  if (mem == nullptr) return EAGAIN;
  auto *s = new (mem) ShimThread;
  s->sched = sched;
  s->start = start;
  s->arg = arg;
  if (ua.detachstate == UPTHREAD_CREATE_DETACHED) s->refs.store(1);
  // Publish the handle before the thread can run (it may exit at once).
  *thread = reinterpret_cast<pthread_t>(s);
  identity_thread_created(*thread);
  int err = upthread_create(&s->ut, &ua, trampoline, s);
  if (err != 0) {
    identity_thread_forget(*thread);
    s->~ShimThread();
    free(mem);
  }
  return err;
}

SHIM_EXPORT void pthread_exit(void *retval) {
  if (ShimThread *s = tl_self; s != nullptr && on_uthread()) exit_thread(s, retval);
  REAL(pthread_exit)(retval);
  __builtin_unreachable();
}

SHIM_EXPORT pthread_t pthread_self(void) {
  if (ShimThread *s = tl_self) return reinterpret_cast<pthread_t>(s);
  return REAL(pthread_self)();
}

SHIM_EXPORT int pthread_equal(pthread_t a, pthread_t b) { return a == b; }

SHIM_EXPORT int pthread_join(pthread_t t, void **retval) {
  ShimThread *s = as_shim(t);
  if (s == nullptr) return REAL(pthread_join)(t, retval);
  if (s == tl_self) return EDEADLK;
  if (!on_uthread()) {
    // A glibc thread cannot block in upthread_join; wait on the handle's
    // done word in the kernel, then collect (the exit is then imminent).
    while (std::atomic_ref<int>(s->done).load(std::memory_order_acquire) == 0)
      futex_wait(&s->done, 0, nullptr, 0);
    while (s->ut->join_state.load(std::memory_order_acquire) !=
           parlib::detail::upthread_impl::kExited)
      sched_yield();
    int err = upthread_join(s->ut, retval);
    if (err == 0) release(s);
    return err;
  }
  // A cancellation point: wait for the thread's end where a cancellation
  // can interrupt and unwind us (upthread_join would act on it without
  // unwinding), then collect it with cancellation off (the exit is then
  // imminent).
  int state = std::atomic_ref<int>(s->done).load(std::memory_order_acquire);
  if (state == 0 &&
      s->ut->join_state.load(std::memory_order_acquire) == parlib::detail::upthread_impl::kDetached)
    return EINVAL;
  while (state == 0) {
    if (futex_wait_cancellable(&s->done, 0, nullptr, 0) == ECANCELED) testcancel();
    state = std::atomic_ref<int>(s->done).load(std::memory_order_acquire);
  }
  int old_state;
  upthread_setcancelstate(UPTHREAD_CANCEL_DISABLE, &old_state);
  int err = upthread_join(s->ut, retval);
  upthread_setcancelstate(old_state, nullptr);
  if (err == 0) release(s);
  return err;
}

SHIM_EXPORT int pthread_tryjoin_np(pthread_t t, void **retval) {
  ShimThread *s = as_shim(t);
  if (s == nullptr) return REAL(pthread_tryjoin_np)(t, retval);
  if (std::atomic_ref<int>(s->done).load(std::memory_order_acquire) == 0) return EBUSY;
  return pthread_join(t, retval);
}

SHIM_EXPORT int pthread_clockjoin_np(pthread_t t, void **retval, clockid_t clock,
                                     const struct timespec *abstime) {
  ShimThread *s = as_shim(t);
  if (s == nullptr) return REAL(pthread_clockjoin_np)(t, retval, clock, abstime);
  if (abstime != nullptr) {
    while (std::atomic_ref<int>(s->done).load(std::memory_order_acquire) == 0) {
      int r = futex_wait_cancellable(&s->done, 0, abstime, clock);
      if (r == ECANCELED) testcancel();  // a cancellation point, as pthread_join
      if (r == ETIMEDOUT && std::atomic_ref<int>(s->done).load(std::memory_order_acquire) == 0)
        return ETIMEDOUT;
    }
  }
  return pthread_join(t, retval);
}

SHIM_EXPORT int pthread_timedjoin_np(pthread_t t, void **retval, const struct timespec *abstime) {
  if (as_shim(t) == nullptr) return REAL(pthread_timedjoin_np)(t, retval, abstime);
  return pthread_clockjoin_np(t, retval, CLOCK_REALTIME, abstime);
}

SHIM_EXPORT int pthread_detach(pthread_t t) {
  ShimThread *s = as_shim(t);
  if (s == nullptr) return REAL(pthread_detach)(t);
  int err = upthread_detach(s->ut);
  if (err == 0) release(s);
  return err;
}

SHIM_EXPORT int pthread_getattr_np(pthread_t t, pthread_attr_t *attr) {
  ShimThread *s = as_shim(t);
  // thread0 runs on main's own stack and TCB: glibc describes it.
  if (s == nullptr) return REAL(pthread_getattr_np)(t, attr);
  int err = s == &g_main_thread ? REAL(pthread_getattr_np)(REAL(pthread_self)(), attr)
                                : pthread_attr_init(attr);
  if (err != 0) return err;
  attr_set_sched(attr, &s->sched);
  if (s == &g_main_thread) return 0;
  struct upthread *u = s->ut;
  pthread_attr_setstack(attr, u->stack, u->stack_size);
  pthread_attr_setguardsize(attr, u->guard_size);
  uintptr_t js = u->join_state.load(std::memory_order_relaxed);
  pthread_attr_setdetachstate(attr, js == parlib::detail::upthread_impl::kDetached
                                        ? PTHREAD_CREATE_DETACHED
                                        : PTHREAD_CREATE_JOINABLE);
  return 0;
}

SHIM_EXPORT int pthread_setname_np(pthread_t t, const char *name) {
  ShimThread *s = as_shim(t);
  if (s == nullptr) return REAL(pthread_setname_np)(t, name);
  if (strlen(name) >= sizeof s->name) return ERANGE;
  strcpy(s->name, name);
  uthread_set_name(&s->ut->uth, s->name);
  return 0;
}

SHIM_EXPORT int pthread_getname_np(pthread_t t, char *buf, size_t len) {
  ShimThread *s = as_shim(t);
  if (s == nullptr) return REAL(pthread_getname_np)(t, buf, len);
  if (strlen(s->name) >= len) return ERANGE;
  strcpy(buf, s->name);
  return 0;
}

namespace parlib::detail::preload {
struct upthread *upthread_of(pthread_t t) {
  ShimThread *s = as_shim(t);
  // Read racily by identity.cpp while upthread_create stores it.
  return s != nullptr ? __atomic_load_n(&s->ut, __ATOMIC_ACQUIRE) : nullptr;
}
bool is_upthread_handle(pthread_t t) { return as_shim(t) != nullptr; }
void exit_self(void *retval) { exit_thread(tl_self, retval); }
}  // namespace parlib::detail::preload

// Affinity and scheduling parameters of a upthread: it is not a kernel
// task, so requests are accepted and reads describe the process.
SHIM_EXPORT int pthread_setaffinity_np(pthread_t t, size_t size, const cpu_set_t *set) {
  if (as_shim(t) == nullptr) return REAL(pthread_setaffinity_np)(t, size, set);
  return 0;
}
SHIM_EXPORT int pthread_getaffinity_np(pthread_t t, size_t size, cpu_set_t *set) {
  if (as_shim(t) == nullptr) return REAL(pthread_getaffinity_np)(t, size, set);
  return sched_getaffinity(0, size, set) == 0 ? 0 : errno;
}
SHIM_EXPORT int sched_setaffinity(pid_t pid, size_t size, const cpu_set_t *set) {
  // pid 0 from a upthread would pin the vcore's task, not the thread.
  if (pid == 0 && on_uthread()) return 0;
  if (int r; affinity_by_tid(pid, size, nullptr, &r)) return r;
  return REAL(sched_setaffinity)(pid, size, set);
}
SHIM_EXPORT int pthread_setschedparam(pthread_t t, int policy, const struct sched_param *p) {
  ShimThread *s = as_shim(t);
  if (s == nullptr) return REAL(pthread_setschedparam)(t, policy, p);
  return sched_set(&s->sched, policy, p);
}
SHIM_EXPORT int pthread_getschedparam(pthread_t t, int *policy, struct sched_param *p) {
  ShimThread *s = as_shim(t);
  if (s == nullptr) return REAL(pthread_getschedparam)(t, policy, p);
  sched_get(&s->sched, policy, p);
  return 0;
}
SHIM_EXPORT int pthread_setschedprio(pthread_t t, int prio) {
  ShimThread *s = as_shim(t);
  if (s == nullptr) return REAL(pthread_setschedprio)(t, prio);
  return sched_set_prio(&s->sched, prio);
}
namespace parlib::detail::preload {
SchedState *self_sched() { return tl_self != nullptr ? &tl_self->sched : nullptr; }
}  // namespace parlib::detail::preload

SHIM_EXPORT int sched_yield(void) {
  // The runtime yields the CPU to a descheduled kernel task on purpose.
  if (on_uthread() && !from_runtime(__builtin_return_address(0))) return upthread_yield();
  return REAL(sched_yield)();
}

// ================================================================ keys

SHIM_EXPORT int pthread_key_create(pthread_key_t *key, void (*dtor)(void *)) {
  int err = REAL(pthread_key_create)(key, dtor);
  if (err != 0) return err;
  dtls_key_t d = dtls_key_create(dtor);
  if (d == nullptr) {
    REAL(pthread_key_delete)(*key);
    return EAGAIN;
  }
  g_dtls[*key].store(d, std::memory_order_release);
  return 0;
}
SHIM_EXPORT int pthread_key_delete(pthread_key_t key) {
  int err = REAL(pthread_key_delete)(key);
  if (err != 0) return err;
  if (dtls_key_t d = g_dtls[key].exchange(nullptr)) dtls_key_delete(d);
  return 0;
}
SHIM_EXPORT void *pthread_getspecific(pthread_key_t key) {
  if (key < PTHREAD_KEYS_MAX && on_uthread()) {
    dtls_key_t d = g_dtls[key].load(std::memory_order_acquire);
    return d != nullptr ? get_dtls(d) : nullptr;
  }
  return REAL(pthread_getspecific)(key);
}
SHIM_EXPORT int pthread_setspecific(pthread_key_t key, const void *value) {
  if (key < PTHREAD_KEYS_MAX && on_uthread()) {
    dtls_key_t d = g_dtls[key].load(std::memory_order_acquire);
    if (d == nullptr) return EINVAL;
    int saved = errno;
    errno = 0;
    set_dtls(d, const_cast<void *>(value));
    int err = errno == ENOMEM ? ENOMEM : 0;
    errno = saved;
    return err;
  }
  return REAL(pthread_setspecific)(key, value);
}

// ======================================================= futex syscall

// libstdc++ (std::future, std::atomic<T>::wait, std::counting_semaphore)
// and others wait with syscall(SYS_futex, ...). From a upthread that would
// block the whole vcore; turn the plain wait/wake operations into
// parlib futex operations (wakes reach kernel waiters too).
SHIM_EXPORT long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
  long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
  va_end(ap);
  // Thread ids: the program's own (identity.cpp); the runtime's are real.
  if ((number == SYS_gettid || number == SYS_tgkill || number == SYS_tkill) &&
      !from_runtime(__builtin_return_address(0))) {
    if (long r; identity_syscall(number, a1, a2, a3, &r)) return r;
  }
  // The runtime's own futex calls are kernel futexes on purpose; some are
  // made with a parlib futex bucket lock held (timed_wait_arm inside a
  // blocking futex wait), where a parlib wake could take the same lock.
  if (number == SYS_futex && !g_native_only.load(std::memory_order_relaxed) &&
      !from_runtime(__builtin_return_address(0))) {
    int *word = reinterpret_cast<int *>(a1);
    int op = static_cast<int>(a2) & ~FUTEX_PRIVATE_FLAG;
    int val = static_cast<int>(a3);
    bool any_bits = static_cast<uint32_t>(a6) == FUTEX_BITSET_MATCH_ANY;
    if ((op == FUTEX_WAKE || (op == FUTEX_WAKE_BITSET && any_bits))) {
      ::futex(word, FUTEX_WAKE, val, nullptr, nullptr, 0);
      return REAL(syscall)(number, a1, a2, a3, a4, a5, a6);
    }
    bool bitset_wait = (op & ~FUTEX_CLOCK_REALTIME) == FUTEX_WAIT_BITSET && any_bits;
    if ((op == FUTEX_WAIT || bitset_wait) && on_uthread()) {
      if (std::atomic_ref<int>(*word).load(std::memory_order_seq_cst) != val) {
        errno = EAGAIN;
        return -1;
      }
      const auto *ts = reinterpret_cast<const timespec *>(a4);
      timespec abs;
      clockid_t clock = CLOCK_MONOTONIC;
      if (ts != nullptr && op == FUTEX_WAIT) {
        // relative timeout: make it a monotonic deadline
        abs = parlib::detail::timespec_add(parlib::detail::clock_now(CLOCK_MONOTONIC), *ts);
      } else if (ts != nullptr) {
        abs = *ts;
        if (op & FUTEX_CLOCK_REALTIME) clock = CLOCK_REALTIME;
      }
      if (futex_wait(word, val, ts != nullptr ? &abs : nullptr, clock) == ETIMEDOUT) {
        errno = ETIMEDOUT;
        return -1;
      }
      return 0;
    }
  }
  // Any other call of the program's may wait in the kernel (libgomp's
  // futex waits with a timeout, other libraries' raw calls): a foreign call.
  if (on_uthread() && !from_runtime(__builtin_return_address(0))) {
    int token = __parlib_foreign_call_begin();
    long r = REAL(syscall)(number, a1, a2, a3, a4, a5, a6);
    __parlib_foreign_call_end(token);
    return r;
  }
  return REAL(syscall)(number, a1, a2, a3, a4, a5, a6);
}

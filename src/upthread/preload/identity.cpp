// libupthread-preload.so: thread ids. Every upthread has an id of its own,
// stable for its life, and main's is the process id, as under NPTL:
// gettid() and syscall(SYS_gettid) return it, and a tid passed back
// (tgkill, tkill, sched_setaffinity, sched_getaffinity) reaches the
// upthread it names, or fails with ESRCH as for a thread that has exited.
//
// The ids are those libparlib writes in each uthread's TCB for glibc's lock
// owner checks (uthread/tls.cpp): from PID_MAX_LIMIT (2^22, the most
// pid_max can be set to on 64-bit Linux) up to 2^28, so no kernel task can
// have one, and the kernel's encoding of thread CPU clock ids holds them. Main (thread0) runs on
// main's own TCB, whose id is the pid. A call the shim does not see (a raw syscall instruction, a
// /proc path) therefore names no task at all and fails as for an exited thread (ESRCH, ENOENT); it
// can never reach an unrelated task. docs/preload.md lists what differs.
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

#include <parlib/spinlock.h>

#include "shim.h"

namespace parlib::detail::preload {
namespace {

constexpr pid_t kFirstInventedTid = 1 << 22;  // uthread/tls.cpp's first id

// struct pthread's tid: where libthread_db says it is, trusted only if
// main's TCB holds the pid there (checked in identity_init). -1: unknown,
// and gettid() stays glibc's.
ptrdiff_t g_tid_offset = -1;
pid_t g_pid = 0;

// Live upthreads by tid: a fixed table of chained buckets, and a list of
// threads whose id is not known yet. pthread_create registers a thread
// before it can run (its id comes with its TCB, inside upthread_create),
// and the thread files itself under its id when it starts; so a thread is
// found from the moment its creator or it could tell anyone its id until
// it exits. The lock is held while a signal is sent to an entry's thread,
// and a thread unregisters (under the lock) before its handle can go
// away, so a sender never uses a stale handle.
struct Entry {
  pid_t tid;  // 0 while pending
  pthread_t handle;
  Entry *next;
};
constexpr unsigned kBuckets = 1024;
Entry *g_buckets[kBuckets];
Entry *g_pending = nullptr;
spin_pdr_lock_t g_lock = SPINPDR_INITIALIZER;

Entry *&bucket(pid_t tid) { return g_buckets[static_cast<unsigned>(tid) % kBuckets]; }

pid_t tid_in(void *tcb) {
  return *reinterpret_cast<pid_t *>(static_cast<char *>(tcb) + g_tid_offset);
}

Entry *find_locked(pid_t tid) {
  for (Entry *e = bucket(tid); e != nullptr; e = e->next)
    if (e->tid == tid) return e;
  // A thread created but not started: its upthread (and TCB) exist as soon
  // as its creator's upthread_create has stored it.
  for (Entry *e = g_pending; e != nullptr; e = e->next) {
    struct upthread *ut = upthread_of(e->handle);
    if (ut != nullptr && tid_in(reinterpret_cast<struct uthread *>(ut)->tls_) == tid) return e;
  }
  return nullptr;
}

// Unlinks and returns the entry of handle from list *head (nullptr if none).
Entry *unlink_locked(Entry **head, pthread_t handle) {
  for (Entry **p = head; *p != nullptr; p = &(*p)->next) {
    if (pthread_equal((*p)->handle, handle)) {
      Entry *e = *p;
      *p = e->next;
      return e;
    }
  }
  return nullptr;
}

// A tid that names a upthread rather than a kernel task: an invented id,
// or the pid (main, which is thread0; the kernel's main task is parked).
bool names_upthread(pid_t tid) {
  return g_tid_offset >= 0 && !g_native_only.load(std::memory_order_relaxed) &&
         (tid >= kFirstInventedTid || tid == g_pid);
}

int fail(int err) {
  errno = err;
  return -1;
}

}  // namespace

void identity_init(pthread_t main_handle) {
  g_pid = getpid();
  void *tp = __builtin_thread_pointer();
  auto *desc = static_cast<const uint32_t *>(dlsym(RTLD_DEFAULT, "_thread_db_pthread_tid"));
  if (desc == nullptr || desc[0] != 32 || desc[2] + sizeof(pid_t) > 4096) return;
  g_tid_offset = desc[2];
  if (tid_in(tp) != g_pid) {
    g_tid_offset = -1;
    return;
  }
  auto *e = static_cast<Entry *>(malloc(sizeof(Entry)));
  if (e == nullptr) return;
  *e = Entry{g_pid, main_handle, bucket(g_pid)};
  bucket(g_pid) = e;
}

void identity_thread_created(pthread_t handle) {
  if (g_tid_offset < 0) return;
  auto *e = static_cast<Entry *>(malloc(sizeof(Entry)));
  if (e == nullptr) return;  // the thread then fails lookups as if exited
  spin_pdr_lock(&g_lock);
  *e = Entry{0, handle, g_pending};
  g_pending = e;
  spin_pdr_unlock(&g_lock);
}

void identity_thread_forget(pthread_t handle) {
  if (g_tid_offset < 0) return;
  spin_pdr_lock(&g_lock);
  Entry *e = unlink_locked(&g_pending, handle);
  spin_pdr_unlock(&g_lock);
  free(e);
}

void identity_thread_start(pthread_t self) {
  if (g_tid_offset < 0) return;
  pid_t tid = tid_in(__builtin_thread_pointer());
  spin_pdr_lock(&g_lock);
  if (Entry *e = unlink_locked(&g_pending, self)) {
    e->tid = tid;
    e->next = bucket(tid);
    bucket(tid) = e;
  }
  spin_pdr_unlock(&g_lock);
}

void identity_thread_exit(pthread_t self) {
  if (g_tid_offset < 0) return;
  pid_t tid = tid_in(__builtin_thread_pointer());
  spin_pdr_lock(&g_lock);
  Entry *e = unlink_locked(&bucket(tid), self);
  if (e == nullptr) e = unlink_locked(&g_pending, self);
  spin_pdr_unlock(&g_lock);
  free(e);
}

pid_t upthread_tid(struct upthread *ut) {
  if (g_tid_offset < 0 || ut == nullptr) return -1;
  return tid_in(reinterpret_cast<struct uthread *>(ut)->tls_);
}

int with_upthread(pid_t tid, void (*fn)(struct upthread *, void *), void *arg) {
  if (!names_upthread(tid)) return -1;
  spin_pdr_lock(&g_lock);
  Entry *e = find_locked(tid);
  struct upthread *ut = e != nullptr ? upthread_of(e->handle) : nullptr;
  if (ut != nullptr) fn(ut, arg);
  spin_pdr_unlock(&g_lock);
  return ut != nullptr ? 0 : ESRCH;
}

pid_t shim_gettid() {
  if (g_tid_offset < 0 || !on_uthread()) return static_cast<pid_t>(REAL(syscall)(SYS_gettid));
  return tid_in(__builtin_thread_pointer());
}

// tgkill(g_pid, tid, sig) / tkill(tid, sig) to a upthread: what
// pthread_kill does for its handle; to the caller itself, what raise does
// (synchronous, the kernel's default actions). Returns -1 with errno, as
// the system calls do.
int signal_upthread(pid_t tid, int sig) {
  if (sig < 0 || sig >= NSIG) return fail(EINVAL);
  if (on_uthread() && tid == shim_gettid()) return sig == 0 ? 0 : raise(sig);
  spin_pdr_lock(&g_lock);
  Entry *e = find_locked(tid);
  int err = e == nullptr ? ESRCH : pthread_kill(e->handle, sig);
  spin_pdr_unlock(&g_lock);
  return err == 0 ? 0 : fail(err);
}

bool identity_syscall(long number, long a1, long a2, long a3, long *ret) {
  if (number == SYS_gettid && on_uthread()) {
    *ret = shim_gettid();
    return true;
  }
  if (number == SYS_tgkill && a1 == g_pid && names_upthread(static_cast<pid_t>(a2))) {
    *ret = signal_upthread(static_cast<pid_t>(a2), static_cast<int>(a3));
    return true;
  }
  if (number == SYS_tkill && names_upthread(static_cast<pid_t>(a1))) {
    *ret = signal_upthread(static_cast<pid_t>(a1), static_cast<int>(a2));
    return true;
  }
  return false;
}

// Affinity by tid: a upthread is not a kernel task, so as for
// pthread_setaffinity_np on its handle the request is accepted and reads
// describe the process; an exited upthread's tid fails with ESRCH.
bool affinity_by_tid(pid_t tid, size_t size, cpu_set_t *get, int *ret) {
  if (tid == 0) return false;
  int err = with_upthread(
      tid, [](struct upthread *, void *) {}, nullptr);
  if (err < 0) return false;
  if (err != 0) {
    *ret = fail(err);
    return true;
  }
  // The process's mask: main's kernel task keeps the one it started with.
  *ret = get != nullptr ? REAL(sched_getaffinity)(g_pid, size, get) : 0;
  return true;
}

}  // namespace parlib::detail::preload

using namespace parlib::detail::preload;

SHIM_EXPORT pid_t gettid(void) { return shim_gettid(); }

SHIM_EXPORT int tgkill(pid_t tgid, pid_t tid, int sig) {
  if (tgid == g_pid && names_upthread(tid)) return signal_upthread(tid, sig);
  return REAL(tgkill)(tgid, tid, sig);
}

SHIM_EXPORT int sched_getaffinity(pid_t pid, size_t size, cpu_set_t *set) {
  if (int r; affinity_by_tid(pid, size, set, &r)) return r;
  return REAL(sched_getaffinity)(pid, size, set);
}

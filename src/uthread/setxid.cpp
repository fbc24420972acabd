// Process-wide credential changes (setuid, setgid, setgroups, ...) while
// uthreads run: glibc's SIGSETXID broadcast, made to see each kernel task
// on its own TCB. See docs/preload.md ("Credentials").
//
// Linux keeps credentials per task, so glibc's set*id/setgroups in a
// process with several threads (__nptl_setxid) marks every other thread on
// its lists (stack_used, stack_user: every kernel task of the process, the
// runtime's own among them), sends each one's tid SIGSETXID and waits until
// each handler, having made the system call on its task, clears the mark
// in its TCB: THREAD_SELF, the TCB its FS base points to. A task that runs
// uthreads has some uthread's TCB loaded, so its handler cleared the mark
// in the wrong TCB and the caller signalled it again, forever.
//
// In front of glibc's handler we put one that loads the task's own TCB (the
// one on glibc's list with the task's tid) for the length of glibc's
// handler, every signal blocked, then puts back the TCB it found. glibc
// holds its stack-list lock for the whole broadcast, so the lists are
// stable while handlers look them up.
//
// One task has no list entry of its own: main's, parked for good, whose
// entry is its original TCB, which thread0 runs on. When thread0 makes the
// call, glibc skips that entry as the caller's own, and no one signals the
// main task. The caller's vcore task is signalled, though (its own TCB is
// on the list), by the caller itself: its handler finds that the code it
// interrupted has just sent this very signal (the caller is on this task)
// with thread0's TCB loaded. It then has the parked main task copy its new
// credentials (park_main_task below) and waits until it has, while the
// caller cannot go on.
#include "uthread/setxid.h"

#include <dlfcn.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/futex.h"
#include "common/raw_log.h"
#include "vcore/arch/arch.h"

namespace parlib::detail::setxid {
namespace {

constexpr int kSigSetxid = 33;  // glibc's SIGSETXID (__SIGRTMIN + 1)

// The kernel's struct sigaction (rt_sigaction takes this, not glibc's).
struct KernelSigaction {
  void (*handler)(int, siginfo_t *, void *);
  unsigned long flags;
  void (*restorer)();
  uint64_t mask;
};

struct ListLink {
  ListLink *next, *prev;
};

using Handler = void (*)(int, siginfo_t *, void *);
Handler g_glibc_handler = nullptr;
// Heads of glibc's two thread lists (in ld.so's _rtld_global) and where a
// thread's link and tid are in its struct pthread.
ListLink *g_lists[2] = {nullptr, nullptr};
ptrdiff_t g_list_offset = 0;
ptrdiff_t g_tid_offset = 0;

// libthread_db's descriptor of a field or of a member of _rtld_global:
// {bits, count, offset}.
const uint32_t *descriptor(const char *name) {
  return static_cast<const uint32_t *>(dlsym(RTLD_DEFAULT, name));
}

void *tcb_of_task(int tid) {
  for (ListLink *head : g_lists) {
    for (ListLink *l = head->next; l != head; l = l->next) {
      char *pd = reinterpret_cast<char *>(l) - g_list_offset;
      if (*reinterpret_cast<int *>(pd + g_tid_offset) == tid) return pd;
    }
  }
  return nullptr;
}

void set_thread_pointer(void *tp) {
  // No errno and no libc: the FS base may not be this task's TCB.
  if (g_have_wrfsbase)
    asm volatile("wrfsbase %0" : : "r"(tp) : "memory");
  else
    raw_syscall4(SYS_arch_prctl, ARCH_SET_FS, reinterpret_cast<long>(tp), 0, 0);
}

// The parked main task's credentials job. Only raw system calls: that task
// shares its TCB with thread0, so it must not touch TLS (not even errno).
// The ids are what a task that has taken the new credentials reads back.
constexpr int kMaxGroups = 65536;  // the kernel's NGROUPS_MAX
struct Credentials {
  uint32_t uid[3], gid[3];  // real, effective, saved
  long ngroups;
  uint32_t groups[kMaxGroups];
};
Credentials g_wanted;
std::atomic<uint32_t> g_job_posted{0};  // futex word: jobs posted
std::atomic<uint32_t> g_job_done{0};    // futex word: jobs the main task finished
std::atomic<bool> g_main_serving{false};
std::atomic<bool> g_main_parked{false};  // the main task runs park_main_task's loop
void *g_main_tcb = nullptr;              // the main task's list entry (thread0's TCB)
uint32_t g_scratch_groups[kMaxGroups];   // the main task's own groups

long raw(long nr, long a1 = 0, long a2 = 0, long a3 = 0) { return raw_syscall4(nr, a1, a2, a3, 0); }
template <typename T>
long addr(T *p) {
  return reinterpret_cast<long>(p);
}

void read_credentials(Credentials *c) {
  raw(SYS_getresuid, addr(&c->uid[0]), addr(&c->uid[1]), addr(&c->uid[2]));
  raw(SYS_getresgid, addr(&c->gid[0]), addr(&c->gid[1]), addr(&c->gid[2]));
  c->ngroups = raw(SYS_getgroups, kMaxGroups, addr(c->groups));
}

// On the main task: takes the posted credentials. Groups and gids first,
// while the task may still have the privilege to change them; each only
// if it differs, so that a change the task is not privileged for (groups
// after uid 0 was dropped) is never asked for when nothing changed.
void take_credentials() {
  const Credentials &w = g_wanted;
  if (w.ngroups >= 0) {
    long n = raw(SYS_getgroups, kMaxGroups, addr(g_scratch_groups));
    bool same = n == w.ngroups;
    for (long i = 0; same && i < n; ++i) same = g_scratch_groups[i] == w.groups[i];
    if (!same) raw(SYS_setgroups, w.ngroups, addr(w.groups));
  }
  uint32_t ids[3];
  raw(SYS_getresgid, addr(&ids[0]), addr(&ids[1]), addr(&ids[2]));
  if (ids[0] != w.gid[0] || ids[1] != w.gid[1] || ids[2] != w.gid[2])
    raw(SYS_setresgid, w.gid[0], w.gid[1], w.gid[2]);
  raw(SYS_getresuid, addr(&ids[0]), addr(&ids[1]), addr(&ids[2]));
  if (ids[0] != w.uid[0] || ids[1] != w.uid[1] || ids[2] != w.uid[2])
    raw(SYS_setresuid, w.uid[0], w.uid[1], w.uid[2]);
}

// On the caller's task, when the caller is thread0 (so the main task was
// skipped): has the main task copy this task's new credentials. Only one
// broadcast runs at a time (glibc's lock), and its caller waits for us.
void sync_main_task() {
  if (!g_main_serving.load(std::memory_order_acquire)) return;
  read_credentials(&g_wanted);
  uint32_t job = g_job_posted.load(std::memory_order_relaxed) + 1;
  g_job_posted.store(job, std::memory_order_release);
  futex_wake(&g_job_posted, 1);
  for (uint32_t done; (done = g_job_done.load(std::memory_order_acquire)) != job;)
    futex_wait(&g_job_done, done);
}

void (*g_restorer)() = nullptr;  // glibc's __restore_rt: a signal frame's return address

// True when the code this handler interrupted has just returned from
// tgkill(pid, tid, SIGSETXID): the broadcast's caller runs on this task.
// Another signal may have been delivered at the same return, its frame set
// up first (the kernel delivers lower numbers first): then the interrupted
// code is that handler's first instruction, with the frame's return address
// at the stack pointer and the context it interrupted just above.
bool sent_by_interrupted_code(const ucontext_t *uc, long pid, long tid) {
  for (int depth = 0; depth < 8 && uc != nullptr; ++depth) {
    const greg_t *g = uc->uc_mcontext.gregs;
    const auto *ip = reinterpret_cast<const uint8_t *>(g[REG_RIP]);
    if (g[REG_RDI] == pid && g[REG_RSI] == tid && g[REG_RDX] == kSigSetxid && ip[-2] == 0x0f &&
        ip[-1] == 0x05)  // syscall
      return true;
    auto *const *sp = reinterpret_cast<void *const *>(g[REG_RSP]);
    if (sp == nullptr || *sp != reinterpret_cast<void *>(g_restorer)) return false;
    uc = reinterpret_cast<const ucontext_t *>(sp + 1);  // struct rt_sigframe { pretcode; uc; ... }
  }
  return false;
}

void on_setxid(int sig, siginfo_t *si, void *ctx) {
  void *loaded = read_thread_pointer();
  void *own = nullptr;
  long pid = raw(SYS_getpid), tid = raw(SYS_gettid);
  // Only glibc's broadcast (a tgkill from this process) holds the list
  // lock; glibc's handler ignores anything else, and so do we.
  if (si->si_code == SI_TKILL && si->si_pid == pid) own = tcb_of_task(static_cast<int>(tid));
  bool swap = own != nullptr && own != loaded;
  if (swap) set_thread_pointer(own);
  g_glibc_handler(sig, si, ctx);
  if (swap) set_thread_pointer(loaded);
  if (swap && loaded == g_main_tcb &&
      sent_by_interrupted_code(static_cast<ucontext_t *>(ctx), pid, tid))
    sync_main_task();
}

// A fork child has no parked main task.
void child_after_fork() { g_main_serving.store(false, std::memory_order_relaxed); }

}  // namespace

void init() {
  KernelSigaction old{};
  if (raw_syscall4(SYS_rt_sigaction, kSigSetxid, 0, reinterpret_cast<long>(&old), 8) != 0) return;
  auto handler = reinterpret_cast<uintptr_t>(old.handler);
  // glibc installs its handler at start-up; without one there is nothing
  // to wrap (and no broadcast that could hang).
  if (handler == reinterpret_cast<uintptr_t>(SIG_DFL) ||
      handler == reinterpret_cast<uintptr_t>(SIG_IGN) || (old.flags & SA_SIGINFO) == 0)
    return;
  const uint32_t *list = descriptor("_thread_db_pthread_list");
  const uint32_t *tid = descriptor("_thread_db_pthread_tid");
  const uint32_t *used = descriptor("_thread_db_rtld_global__dl_stack_used");
  const uint32_t *user = descriptor("_thread_db_rtld_global__dl_stack_user");
  auto *rtld_global = static_cast<char *>(dlsym(RTLD_DEFAULT, "_rtld_global"));
  if (list == nullptr || tid == nullptr || used == nullptr || user == nullptr ||
      rtld_global == nullptr) {
    raw_log("cannot find glibc's thread lists: set*id and setgroups may hang while uthreads run");
    return;
  }
  g_list_offset = list[2];
  g_tid_offset = tid[2];
  g_lists[0] = reinterpret_cast<ListLink *>(rtld_global + used[2]);
  g_lists[1] = reinterpret_cast<ListLink *>(rtld_global + user[2]);
  // The calling (initial) thread must be found on them, under its tid.
  if (tcb_of_task(static_cast<int>(raw_syscall4(SYS_gettid, 0, 0, 0, 0))) !=
      read_thread_pointer()) {
    raw_log(
        "unexpected layout of glibc's thread lists: set*id and setgroups may hang while "
        "uthreads run");
    return;
  }
  g_main_tcb = read_thread_pointer();
  g_restorer = old.restorer;
  pthread_atfork(nullptr, nullptr, child_after_fork);
  g_glibc_handler = old.handler;
  KernelSigaction ours = old;
  ours.handler = on_setxid;
  // Nothing may interrupt the handler while another TCB is loaded: the
  // runtime's own handlers read the current uthread from TLS.
  ours.mask = ~uint64_t{0};
  raw_syscall4(SYS_rt_sigaction, kSigSetxid, reinterpret_cast<long>(&ours), 0, 8);
}

[[noreturn]] void park_main_task() {
  uint32_t done = g_job_done.load(std::memory_order_relaxed);
  g_main_serving.store(g_glibc_handler != nullptr, std::memory_order_release);
  g_main_parked.store(true, std::memory_order_release);
  for (;;) {
    uint32_t job = g_job_posted.load(std::memory_order_acquire);
    if (job == done) {
      futex_wait(&g_job_posted, job);
      continue;
    }
    take_credentials();
    done = job;
    g_job_done.store(done, std::memory_order_release);
    futex_wake(&g_job_done, 1);
  }
}

bool main_task_parked() { return g_main_parked.load(std::memory_order_acquire); }

}  // namespace parlib::detail::setxid

// The vcore layer's internal interface, used by the layers above it.
#ifndef PARLIB_VCORE_VCORE_INTERNAL_H
#define PARLIB_VCORE_VCORE_INTERNAL_H

#include <parlib/vcore.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/cache_line.h"

struct uthread;

namespace parlib::detail {

// A vcore's life, one word so that every transition is a single atomic
// step (see vcore.cpp: the only transitions are the CASes in bring_online,
// the store in go_offline and the CAS to kOfflineSleeping in park).
enum VcoreState : uint32_t {
  kOffline = 0,          // not granted; its task polls for a grant
  kOfflineSleeping = 1,  // not granted; its task sleeps on the futex word
  kOnline = 2,           // granted: it runs vcore context or a uthread
};

// Aligned to a pair of lines: the switch path writes to its own vcore's
// struct, and the adjacent-line prefetcher would otherwise couple
// neighbouring vcores.
struct alignas(kCacheLinePairSize) Vcore {
  std::atomic<uint32_t> state{kOffline};  // VcoreState, also the futex word
  uint32_t id = 0;
  int cpu = -1;                  // CPU it is pinned to
  std::atomic<pid_t> tid{0};     // its kernel task (0 until the task runs)
  void *tcb = nullptr;           // vcore context's TLS: the task's own TCB
  void *stack_bottom = nullptr;  // vcore context's stack
  size_t stack_size = 0;
  void *sanitizer_fiber = nullptr;       // vcore context's TSan fiber (sanitizer_fiber.h)
  void *sanitizer_stack_mark = nullptr;  // its shadow stack at a fresh start (TSan)
  // Set before bringing the vcore online to have vcore_entry resume this
  // uthread at once (uthread_lib_init hands thread0 over this way).
  std::atomic<struct uthread *> handoff{nullptr};
  // A notification arrived while notifications were disabled; delivered
  // when they are enabled again (event layer).
  std::atomic<bool> notif_pending{false};
  // A direct uthread-to-uthread switch (uthread_switch_to) leaves its 2LS
  // callback here; the uthread switched to runs it first thing, on this
  // same vcore and task, so plain fields suffice.
  void (*switch_after)(struct uthread *prev, void *arg) = nullptr;
  struct uthread *switch_prev = nullptr;
  void *switch_arg = nullptr;
  // Its task's /proc stat file, opened on first use (vcore_blocked_in_kernel).
  std::atomic<int> stat_fd{-1};
  // CPU-time accounting (uthread/cputime.cpp), touched only by this vcore:
  // the uthread charged since the last switch (nullptr: vcore context), the
  // task's CPU time estimated at that switch, and the last reading of the
  // task's clock with the monotonic time it was taken.
  struct uthread *acct_uth = nullptr;
  uint64_t acct_mark_ns = 0;
  uint64_t acct_sync_cpu_ns = 0;
  uint64_t acct_sync_wall_ns = 0;
  // What the stall detector (event/stall.cpp) watches, written only by this
  // vcore's switch path: the uthread running here (null in vcore context)
  // and how many times a uthread was started or switched to here.
  std::atomic<struct uthread *> running{nullptr};
  std::atomic<uint64_t> runs{0};

  void *stack_top() const { return static_cast<char *>(stack_bottom) + stack_size; }
};

// The vcore table (vcore_lib_init fills it; never freed). Read on every
// switch, so the accessors below are inline.
extern Vcore *g_vcore_table;

// The function vcore context starts in, at the top of the vcore's stack,
// whenever a vcore comes online: the uthread layer sets vcore_entry() when
// it initialises, before it requests any vcore (the vcore layer does not
// call up into it by name). A vcore granted before that aborts.
void set_vcore_context_entry(void (*entry)());

// Makes vcore id run vcore_entry() soon: grants it if it is offline.
// Returns true if this call granted it. Any context, any thread.
bool vcore_bring_online(uint32_t id);

// Vcore tasks made after initialisation (spare vcores, on first use) run
// hook(id) on themselves, with their tid published, before the vcore can be
// granted. A layer that keeps per-task state registers a hook and then sets
// up the tasks that already exist (tid != 0): the hook's registration and
// the tid's publication are both seq_cst, so every task is seen by one of
// the two, maybe both (the layer makes its set-up idempotent).
void add_vcore_task_hook(void (*hook)(uint32_t id));

// The event layer registers a probe so that a vcore about to sleep notices
// work that was sent to it concurrently (and so is never lost).
void set_vcore_work_probe(bool (*probe)(uint32_t vcoreid));

// An idle vcore polls, for up to PARLIB_IDLE_SPIN_US (vcore_set_idle_spin_us),
// before it sleeps through the IdleWaiter; a layer with its own source of
// work for the vcore (the syscall layer's completion ring) plugs a check
// into that one poll loop instead of polling itself. poll(id) runs on
// vcore id's own task while the vcore is offline and must be cheap; it
// returns true when it found work, and the vcore then grants itself.
// Slots fill in order, never emptied.
void add_vcore_idle_poll(bool (*poll)(uint32_t id));

// How an idle vcore sleeps in the kernel. The default sleeps on the state
// word (FUTEX_WAIT); the syscall layer installs one that sleeps on the
// vcore's io_uring instead, so completions wake it too.
struct IdleWaiter {
  // On vcore id's own task, with its state kOfflineSleeping: blocks until
  // woken by wake(), a completion, or spuriously; the caller re-checks.
  void (*sleep)(uint32_t id, std::atomic<uint32_t> *state);
  // By whoever grants a vcore that announced it sleeps. Any thread.
  void (*wake)(uint32_t id, std::atomic<uint32_t> *state);
};
void set_vcore_idle_waiter(const IdleWaiter *waiter);

// Offset of a variable of this library's static TLS from the thread
// pointer: the same in every TCB, so another thread's copy is at tcb+offset.
ptrdiff_t tls_offset_of(const void *tls_var);
template <typename T>
T &tls_var_in(void *tcb, ptrdiff_t offset) {
  return *reinterpret_cast<T *>(static_cast<char *>(tcb) + offset);
}

// This library's per-TLS-block state. In a vcore's TCB it describes the
// vcore; every uthread TCB has its own copy, which run_uthread() keeps up to
// date (vcore id) so that vcore_id() works in uthread context.
extern __thread uint32_t tls_vcoreid;
extern __thread bool tls_in_vcore_context;

inline Vcore &vcore_of(uint32_t id) { return g_vcore_table[id]; }
// The vcore the caller runs on (vcore or uthread context).
inline Vcore &this_vcore() { return g_vcore_table[tls_vcoreid]; }

// Stacks: mmap'd with a guard region below; see stack.cpp.
void *stack_map(size_t size, size_t guard);
void stack_unmap(void *bottom, size_t size, size_t guard);
// Gives the calling kernel task an alternate signal stack so that a stack
// overflow can be reported (and installs the fault handler once).
void install_fault_handler_on_this_task();
// The uthread layer tells the fault handler how to name the faulting
// context's stack: returns false if it cannot describe it.
struct StackDescription {
  const void *bottom;
  size_t size;
  const void *uthread;
  const char *name;
};
void set_stack_describer(bool (*describe)(StackDescription *out));

// Architecture set-up (thread-pointer access method), done once.
void arch_init();

}  // namespace parlib::detail

#endif  // PARLIB_VCORE_VCORE_INTERNAL_H

// kweb's application-specific second-level scheduler (dissertation 2.6.2)
// on parlib's schedule_ops. Every thread has a home vcore and runs only
// there: no stealing, no migration. A vcore's run queue is touched only by
// that vcore (its vcore context, and its uthreads with notifications
// disabled, which keeps vcore context off the vcore meanwhile), so it
// needs no lock; a thread made runnable from elsewhere (spawned by the
// accept thread, or woken at shutdown) goes through a lock-free inbox that
// the home vcore empties in sched_entry.
//
// The application plugs in through two hooks (set before k2ls_init):
// poll(v) runs in vcore context on vcore v at every scheduling decision,
// before a thread is picked; has_work(v) tells a vcore that is giving
// itself up that poll(v) would find something (the handshake of
// vcore_set_sched_probe, so work queued for a vcore going idle is seen).
#ifndef KWEB_CUSTOM_2LS_H
#define KWEB_CUSTOM_2LS_H

#include <parlib/uthread.h>

#include <cstddef>
#include <cstdint>

namespace kweb {

struct KThread {
  struct uthread uth;       // first member, as a 2LS embeds it
  KThread *next = nullptr;  // run queue, inbox or the application's lists
  uint32_t home = 0;
  void (*fn)(void *) = nullptr;
  void *arg = nullptr;
  void *stack = nullptr;
  size_t stack_size = 0;
};

struct K2lsHooks {
  void (*poll)(uint32_t vcoreid);
  bool (*has_work)(uint32_t vcoreid);
};

// Installs the scheduler with hooks and makes main thread0 (on the vcore
// k2ls_thread0_vcore() returns, which it never leaves). From main, once.
void k2ls_init(K2lsHooks hooks);
uint32_t k2ls_thread0_vcore();

// Creates a thread running fn(arg) on vcore home and makes it runnable.
// Uthread context. Aborts on home >= max_vcores() or when out of memory.
KThread *k2ls_spawn(void (*fn)(void *), void *arg, uint32_t home, const char *name);

// The calling thread stops; park_cb(self, arg) then runs in vcore context
// on its vcore and must either keep self somewhere to wake later
// (k2ls_wake) or wake it at once. Uthread context.
void k2ls_park(void (*park_cb)(KThread *self, void *arg), void *arg);

// Makes a parked thread runnable on its home vcore. Any context.
void k2ls_wake(KThread *t);

// Blocks thread0 until every thread spawned so far has returned from fn
// (their stacks are freed as they exit). Uthread context, thread0 only.
void k2ls_join_all();

}  // namespace kweb

#endif  // KWEB_CUSTOM_2LS_H

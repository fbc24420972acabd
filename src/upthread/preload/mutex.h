// The shim's pthread_mutex_t (sync.cpp), shared with mutex_kinds.cpp
// (robust, priority-inheritance and priority-protect mutexes).
#ifndef PARLIB_UPTHREAD_PRELOAD_MUTEX_H
#define PARLIB_UPTHREAD_PRELOAD_MUTEX_H

#include <pthread.h>

#include <cstddef>

namespace parlib::detail::preload {

// Overlays glibc's pthread_mutex_t (x86-64, 40 bytes). __kind keeps glibc's
// meaning, because the static initialisers and pthread_mutexattr_t
// (handled by glibc) speak it.
struct Mutex {
  int lock;          // __lock: 0 free, 1 held, 2 held and maybe waited on
  unsigned count;    // __count: extra depth of a recursive mutex
  int robust_state;  // __owner: kRobust* (robust mutexes only)
  unsigned ceiling;  // __nusers: the priority ceiling (PP mutexes only)
  int kind;          // __kind: type in the low 2 bits, and glibc's flag bits
  short spins, elision;
  void *owner;         // __list.__prev: the holder's self_id()
  Mutex *robust_next;  // __list.__next: the holder's next robust mutex
};
static_assert(sizeof(Mutex) == sizeof(pthread_mutex_t));
static_assert(offsetof(Mutex, kind) == 16, "glibc's __kind");

constexpr int kTypeMask = 3;      // PTHREAD_MUTEX_KIND_MASK_NP
constexpr int kRobust = 16;       // PTHREAD_MUTEX_ROBUST_NORMAL_NP
constexpr int kPrioInherit = 32;  // PTHREAD_MUTEX_PRIO_INHERIT_NP
constexpr int kPrioProtect = 64;  // PTHREAD_MUTEX_PRIO_PROTECT_NP
constexpr int kPshared = 128;     // PTHREAD_MUTEX_PSHARED_BIT

// A robust mutex's state. OwnerDead: its holder exited holding it (the next
// to take it gets EOWNERDEAD); Inconsistent: held after EOWNERDEAD, not yet
// made consistent; NotRecoverable: unlocked while inconsistent.
constexpr int kRobustOk = 0;
constexpr int kRobustOwnerDead = 1;
constexpr int kRobustInconsistent = 2;
constexpr int kRobustNotRecoverable = 3;

inline Mutex *M(pthread_mutex_t *m) { return reinterpret_cast<Mutex *>(m); }

// mutex_kinds.cpp. The kind bits and ceiling for pthread_mutex_init.
void mutex_attr_kind(const pthread_mutexattr_t *attr, int *kind, unsigned *ceiling);
// The caller has just taken m's lock word (and set the owner): a robust
// mutex goes on the caller's list. Returns 0, EOWNERDEAD (the caller holds
// it, inconsistent) or ENOTRECOVERABLE (the caller must release the word).
int robust_acquired(Mutex *m);
// The owner is about to release m's lock word: off its list; unlocked while
// inconsistent, it becomes not recoverable.
void robust_releasing(Mutex *m);
// At upthread exit (threads.cpp): every robust mutex the caller holds is
// released as owner-dead.
void robust_thread_exit();

}  // namespace parlib::detail::preload

#endif

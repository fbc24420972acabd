// libupthread-preload.so: scheduling policy and priority of upthreads.
//
// upthread schedules its threads FIFO per vcore and has no priorities, so
// what a program sets is recorded, not acted on; it reads back as set, and
// a request fails exactly when the kernel would refuse it for a thread of
// this process: the shim asks the kernel to apply it to main's kernel task,
// which is parked for good once main has become thread0 (it never runs
// again), then puts that task back as it was. The errors (EINVAL for a bad
// policy or priority, EPERM without the privilege for a real-time policy)
// are thus the kernel's own.
//
// glibc keeps two views of a thread's scheduling, and programs can see the
// difference: the kernel's (sched_getscheduler, sched_getparam) and a copy
// in struct pthread (pthread_getschedparam, pthread_getattr_np), filled on
// first read and afterwards changed only by pthread_setschedparam and
// pthread_setschedprio — sched_setscheduler(0, ...) changes the first
// only. SchedState keeps both, with the same rules.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "shim.h"

namespace parlib::detail::preload {
namespace {

pid_t g_main_task = 0;
SchedState g_main_task_sched;

int base_policy(int policy) { return policy & ~SCHED_RESET_ON_FORK; }

// The kernel's verdict on (policy, priority) for a thread of this process.
int probe(int policy, int priority) {
  if (g_main_task == 0) return 0;
  struct sched_param sp = {priority};
  if (REAL(sched_setscheduler)(g_main_task, policy, &sp) != 0) return errno;
  sp.sched_priority = g_main_task_sched.kprio;
  REAL(sched_setscheduler)(g_main_task, g_main_task_sched.kpolicy, &sp);
  return 0;
}

}  // namespace

void sched_init(SchedState *main_thread) {
  g_main_task = getpid();
  struct sched_param sp = {0};
  int policy = REAL(sched_getscheduler)(g_main_task);
  if (policy < 0 || REAL(sched_getparam)(g_main_task, &sp) != 0) {
    g_main_task = 0;  // no probing: requests are accepted as given
    policy = SCHED_OTHER;
    sp.sched_priority = 0;
  }
  g_main_task_sched = SchedState{policy, sp.sched_priority, policy, sp.sched_priority, false};
  *main_thread = g_main_task_sched;
}

int sched_for_new_thread(const pthread_attr_t *attr, const SchedState *creator, SchedState *out) {
  int inherit = PTHREAD_INHERIT_SCHED;
  if (attr != nullptr) pthread_attr_getinheritsched(attr, &inherit);
  if (inherit == PTHREAD_INHERIT_SCHED) {
    *out = creator != nullptr ? *creator : g_main_task_sched;
    return 0;
  }
  int policy = SCHED_OTHER;
  struct sched_param sp = {0};
  pthread_attr_getschedpolicy(attr, &policy);
  pthread_attr_getschedparam(attr, &sp);
  if (int err = probe(policy, sp.sched_priority); err != 0) return err;
  *out = SchedState{policy, sp.sched_priority, policy, sp.sched_priority, true};
  return 0;
}

int sched_set(SchedState *s, int policy, const struct sched_param *p) {
  if (int err = probe(policy, p->sched_priority); err != 0) return err;
  *s = SchedState{base_policy(policy), p->sched_priority, base_policy(policy), p->sched_priority,
                  true};
  return 0;
}

int sched_set_prio(SchedState *s, int priority) {
  if (int err = probe(s->kpolicy, priority); err != 0) return err;
  s->kprio = priority;
  if (!s->cached) s->cpolicy = s->kpolicy;
  s->cprio = priority;
  s->cached = true;
  return 0;
}

void sched_get(SchedState *s, int *policy, struct sched_param *p) {
  if (!s->cached) {
    s->cpolicy = s->kpolicy;
    s->cprio = s->kprio;
    s->cached = true;
  }
  *policy = s->cpolicy;
  p->sched_priority = s->cprio;
}

void attr_set_sched(pthread_attr_t *attr, SchedState *s) {
  // glibc's pthread_getattr_np writes the policy into the attribute
  // directly (pthread_attr_setschedpolicy refuses SCHED_BATCH and
  // SCHED_IDLE): struct pthread_attr starts { struct sched_param
  // schedparam; int schedpolicy; ... } (nptl/internaltypes.h).
  struct GlibcAttr {
    struct sched_param schedparam;
    int schedpolicy;
  };
  auto *a = reinterpret_cast<GlibcAttr *>(attr);
  sched_get(s, &a->schedpolicy, &a->schedparam);
}

}  // namespace parlib::detail::preload

using namespace parlib::detail::preload;

// The kernel's view, for the calling upthread (pid 0 or its own id).
namespace {
SchedState *own_sched(pid_t pid) {
  if (!on_uthread() || (pid != 0 && pid != gettid())) return nullptr;
  return self_sched();
}
}  // namespace

SHIM_EXPORT int sched_setscheduler(pid_t pid, int policy, const struct sched_param *p) {
  SchedState *s = own_sched(pid);
  if (s == nullptr) return REAL(sched_setscheduler)(pid, policy, p);
  if (p == nullptr) {
    errno = EINVAL;
    return -1;
  }
  if (int err = probe(policy, p->sched_priority); err != 0) {
    errno = err;
    return -1;
  }
  s->kpolicy = base_policy(policy);
  s->kprio = p->sched_priority;
  return 0;
}

SHIM_EXPORT int sched_setparam(pid_t pid, const struct sched_param *p) {
  SchedState *s = own_sched(pid);
  if (s == nullptr) return REAL(sched_setparam)(pid, p);
  if (p == nullptr) {
    errno = EINVAL;
    return -1;
  }
  if (int err = probe(s->kpolicy, p->sched_priority); err != 0) {
    errno = err;
    return -1;
  }
  s->kprio = p->sched_priority;
  return 0;
}

SHIM_EXPORT int sched_getscheduler(pid_t pid) {
  SchedState *s = own_sched(pid);
  if (s == nullptr) return REAL(sched_getscheduler)(pid);
  return s->kpolicy;
}

SHIM_EXPORT int sched_getparam(pid_t pid, struct sched_param *p) {
  SchedState *s = own_sched(pid);
  if (s == nullptr) return REAL(sched_getparam)(pid, p);
  if (p == nullptr) {
    errno = EINVAL;
    return -1;
  }
  p->sched_priority = s->kprio;
  return 0;
}

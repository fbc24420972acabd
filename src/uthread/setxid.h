// Credential changes from any thread while uthreads run: see setxid.cpp.
#ifndef PARLIB_UTHREAD_SETXID_H
#define PARLIB_UTHREAD_SETXID_H

namespace parlib::detail::setxid {

// Puts a handler in front of glibc's SIGSETXID handler that runs it on the
// receiving task's own TCB, so that glibc's set*id/setgroups broadcast
// completes on every kernel task of the process. Once, on the initial
// thread, before any uthread runs; does nothing (with a line on stderr
// when glibc's lists cannot be found) where glibc has no such handler.
void init();

// The main kernel task, parked for good once it has handed its TCB to
// thread0: sleeps, and takes the new credentials whenever a set*id call
// made by thread0 (which glibc's broadcast then skips) asks it to. Raw
// system calls only: touches no TLS.
[[noreturn]] void park_main_task();

// Whether the main task has reached park_main_task's loop (from then on it
// runs only this file's code, which a TSan build does not instrument: see
// src/uthread/CMakeLists.txt).
bool main_task_parked();

}  // namespace parlib::detail::setxid

#endif  // PARLIB_UTHREAD_SETXID_H

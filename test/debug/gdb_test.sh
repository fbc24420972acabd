#!/usr/bin/env bash
# The gdb extension (gdb/parlib_gdb.py) on gdb_target, live and from a core
# file: `info uthreads` must list each named uthread with its state and the
# call it waits in, and `uthread bt` / `uthread ID` must unwind a blocked
# uthread's saved context down to its thread function. Exit 77 (a skip,
# with the reason printed) where gdb is missing or may not trace.
#
#   gdb_test.sh GDB TARGET LIBDIR
set -uo pipefail
gdb=$1 target=$(realpath "$2") libdir=$3
skip() { echo "SKIP: $*"; exit 77; }
command -v "${gdb}" >/dev/null || skip "no gdb (Debian package gdb)"
tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT
export PARLIB_VCORES=2

# What every session checks, given the output of the commands below.
check() {
  local what=$1 out=$2 fail=0
  expect() {
    if ! grep -Eq "$1" <<<"${out}"; then
      echo "FAIL (${what}): no line matching: $1"
      fail=1
    fi
  }
  expect '^1 +thread0 +stopped +[01] +.*join'
  expect '^[0-9]+ +locker +blocked +[01] +.*mutex_lock'
  expect '^[0-9]+ +waiter +blocked +[01] +.*cond_wait'
  expect '^[0-9]+ +reader +blocked +[01] +read \(system call read\)'
  expect '^[0-9]+ +sleeper +blocked +[01] +.*sleep'
  expect '^[0-9]+ +spinner +running +[01] +running \(gdb thread [0-9]+\)'
  # uthread bt of the blocked ones: from the switch to the thread function.
  expect '^=== bt locker'
  expect '^#[0-9]+ +0x[0-9a-f]+ in .*mutex_lock'
  expect '^#[0-9]+ +0x[0-9a-f]+ in locker_main'
  expect '^#[0-9]+ +0x[0-9a-f]+ in .*cond_wait'
  expect '^#[0-9]+ +0x[0-9a-f]+ in waiter_main'
  expect '^#[0-9]+ +0x[0-9a-f]+ in reader_main'
  expect '^#[0-9]+ +0x[0-9a-f]+ in sleeper_main'
  # The running spinner: the backtrace of the kernel task that runs it.
  # (Frame 0 at a breakpoint has no address when there is line information.)
  [[ ${what} == live ]] && expect '^#0 +(0x[0-9a-f]+ in )?debugger_checkpoint'
  expect '^#[0-9]+ +0x[0-9a-f]+ in spinner_main'
  # uthread ID: gdb's selected frame is then the uthread's, and `up` walks it.
  expect '^=== frame waiter'
  expect '^up: #[0-9]+ +0x[0-9a-f]+ in .*cond_wait'
  expect '^up: #[0-9]+ +0x[0-9a-f]+ in waiter_main'
  ((fail == 0)) || { printf '%s\n' "--- gdb output (${what}):" "${out}"; return 1; }
  echo "ok (${what})"
  [[ -z ${GDB_TEST_VERBOSE:-} ]] || printf "%s\n" "${out}"
}

# Prints `info uthreads`, then each uthread's backtrace and a walk up from
# `uthread ID`, finding the ids by name.
cat >"${tmp}/inspect.gdb" <<'GDB'
info uthreads
python
import re
ids = {}
for line in gdb.execute("info uthreads", to_string=True).splitlines()[1:]:
    f = line.split()
    ids[f[1]] = f[0]
for name in ("locker", "waiter", "reader", "sleeper", "spinner"):
    print("=== bt " + name)
    gdb.execute("uthread bt " + ids[name])
print("=== frame waiter")
gdb.execute("uthread " + ids["waiter"])
# gdb prints the frames `up` selects past to_string: name them here.
for i in range(12):
    f = gdb.selected_frame()
    print("up: #%d 0x%x in %s" % (f.level(), f.pc(), f.name()))
    try:
        gdb.execute("up", to_string=True)
    except gdb.error:
        break
gdb.execute("uthread none")
end
GDB

common=(-nx -batch -iex "add-auto-load-safe-path ${libdir}" -iex "set debuginfod enabled off"
        -ex "set pagination off" -ex "set confirm off")

# Live: run to the checkpoint and inspect.
live=$(timeout 120 "${gdb}" "${common[@]}" -ex "break debugger_checkpoint" -ex run \
       -x "${tmp}/inspect.gdb" -ex kill "${target}" 2>&1)
if grep -Eq "ptrace: Operation not permitted|Could not trace the inferior|Couldn't get registers" \
     <<<"${live}"; then
  skip "ptrace is not permitted here"
fi
status=0
check live "${live}" || status=1

# A core file from the kernel (gdb's gcore cannot read upthread's stack
# pools, whose guards are MADV_GUARD_INSTALL regions, and would write zeros
# for them): the program runs to its checkpoint, then SIGABRT dumps it.
pattern=$(cat /proc/sys/kernel/core_pattern 2>/dev/null)
if ldd "${target}" 2>/dev/null | grep -q libasan; then
  # ASan turns core dumps off (disable_coredump: its shadow is terabytes).
  echo "SKIP (core): an AddressSanitizer build writes no core file"
  exit "${status}"
fi
if [[ ${pattern} == "|"* || ${pattern} == */* ]]; then
  echo "SKIP (core): the kernel's core_pattern (${pattern}) does not write a core file here"
  exit "${status}"
fi
(
  cd "${tmp}" && ulimit -c unlimited &&
    exec "${target}" >"${tmp}/target.out" 2>&1
) &
pid=$!
for ((i = 0; i < 300; i++)); do
  grep -q 'gdb_target: ready' "${tmp}/target.out" 2>/dev/null && break
  sleep 0.1
done
kill -ABRT "${pid}"
wait "${pid}" 2>/dev/null
corefile=$(ls "${tmp}"/core* 2>/dev/null | head -n1)
if [[ -z ${corefile} ]]; then
  echo "FAIL: no core file in ${tmp} (core_pattern ${pattern})"
  exit 1
fi
core=$(timeout 120 "${gdb}" "${common[@]}" -x "${tmp}/inspect.gdb" "${target}" "${corefile}" 2>&1)
check core "${core}" || status=1
exit "${status}"

#!/usr/bin/env bash
# PARLIB_STALL_MS: stall_target's "hog" spins twice without a scheduling
# point; each spin must be reported exactly once on stderr (id, name,
# vcore, and a backtrace through hog_spin), and "polite", which sleeps
# every millisecond, never. The test moves the hog on (SIGUSR2) only once
# it has seen the report, and waits 4 stall periods more before the first
# move to catch a second report of the same stall.
#
#   stall_test.sh TARGET [VCORES]
set -uo pipefail
target=$1
export PARLIB_VCORES=${2:-2} PARLIB_STALL_MS=50
tmp=$(mktemp -d)
pid=
trap '[[ -n ${pid} ]] && kill -9 "${pid}" 2>/dev/null; rm -rf "${tmp}"' EXIT
"${target}" >"${tmp}/out" 2>"${tmp}/err" &
pid=$!

reports() { grep -c 'parlib: stall: uthread [0-9]* (hog) has held vcore [0-9]* for [0-9]* ms' "${tmp}/err"; }
# Waits (up to 30 s: the machine may be loaded) for n reports.
wait_reports() {
  for ((i = 0; i < 300; i++)); do
    (($(reports) >= $1)) && return 0
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL: expected $1 stall report(s), saw $(reports)"
  cat "${tmp}/err"
  exit 1
}

wait_reports 1
sleep 0.2
(($(reports) == 1)) || { echo "FAIL: one stall reported $(reports) times"; cat "${tmp}/err"; exit 1; }
kill -USR2 "${pid}"
wait_reports 2
kill -USR2 "${pid}"
wait "${pid}"
status=$?
pid=
cat "${tmp}/err"
fail=0
((status == 0)) || { echo "FAIL: exit status ${status}"; fail=1; }
(($(reports) == 2)) || { echo "FAIL: $(reports) reports for two stalls"; fail=1; }
grep -q 'hog_spin' "${tmp}/err" || { echo "FAIL: no hog_spin in the backtrace"; fail=1; }
if grep -q '(polite)' "${tmp}/err"; then echo "FAIL: polite was reported"; fail=1; fi
grep -q 'stall_target: done' "${tmp}/out" || { echo "FAIL: the program did not finish"; fail=1; }
((fail == 0)) && echo "ok"
exit "${fail}"

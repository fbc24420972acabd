#!/bin/sh
# launcher.sh UPTHREAD_RUN PROG: upthread-run runs PROG under the shim with
# the options it was given, and bad settings exit 2 before main.
set -u
run=$1
prog=$2
fail() { echo "FAILED: $*"; exit 1; }

expected=$("$prog") || fail "native run"
out=$("$run" -n 2 --sched-period 5000 -- "$prog") || fail "upthread-run -n 2"
[ "$out" = "$expected" ] || fail "output differs: $out"
out=$("$run" --stats -n 1 -- "$prog" 2>&1 >/dev/null) || fail "upthread-run --stats"
echo "$out" | grep -q "upthread stats" || fail "--stats printed no counters"
# The shim is really loaded: its maps show in /proc/self/maps.
"$run" -- cat /proc/self/maps | grep -q libupthread-preload.so || fail "shim not preloaded"

for bad in "UPTHREAD_SCHED_PERIOD_US=abc" "UPTHREAD_SCHED_PERIOD_US=-1" "PARLIB_STATS=yes" \
           "PARLIB_VCORES=0" "PARLIB_VCORES=x" "UPTHREAD_STUCK_CHECK_US=soon" \
           "PARLIB_SPARE_VCORES=999"; do
  var=${bad%%=*}
  err=$(env "$bad" "$run" -- "$prog" 2>&1 >/dev/null)
  rc=$?
  [ "$rc" = 2 ] || fail "$bad: exit status $rc, expected 2"
  echo "$err" | grep -q "$var" || fail "$bad: message does not name $var: $err"
  echo "$err" | grep -q "sum" && fail "$bad: main ran"
done
"$run" -n x -- "$prog" >/dev/null 2>&1
[ $? = 2 ] || fail "-n x accepted"
"$run" >/dev/null 2>&1
[ $? = 2 ] || fail "no program accepted"
echo "upthread-run: options, environment and bad values behave"

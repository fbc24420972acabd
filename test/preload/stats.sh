#!/bin/sh
# stats.sh SHIM PROG [ARGS...]: runs PROG with SHIM preloaded and
# PARLIB_STATS=1; it must exit 0, and the per-vcore table printed at exit
# must count blocked system calls (the "syscalls" column, summed over the
# vcores), i.e. the program's blocking calls went to the syscall service.
set -u
shim=$1
shift
err_file=$(mktemp)
trap 'rm -f "$err_file"' EXIT
PARLIB_STATS=1 LD_PRELOAD="$shim" "$@" >/dev/null 2>"$err_file"
rc=$?
if [ "$rc" != 0 ]; then
  echo "exit status $rc"; cat "$err_file"; exit 1
fi
# The header names the columns; the rows start with the vcore number.
sum=$(awk '
  $1 == "upthread" && $2 == "stats:" && $3 == "vcore" {
    for (i = 3; i <= NF; ++i) if ($i == "syscalls") col = i
    next
  }
  $1 == "upthread" && $2 == "stats:" && col && $3 ~ /^[0-9]+$/ { sum += $col }
  END { if (!col) print "none"; else print sum + 0 }' "$err_file")
cat "$err_file"
case $sum in
  none) echo "no stats table with a syscalls column on stderr"; exit 1 ;;
  0) echo "syscalls: 0 (the blocking calls did not reach the syscall service)"; exit 1 ;;
esac
echo "syscalls: $sum blocked or offloaded calls"

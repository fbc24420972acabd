#!/bin/sh
# compare.sh SHIM PROG [ARGS...]: runs PROG natively and with SHIM
# preloaded; both must exit with the same status and print exactly the
# same on stdout. RUNS (default 1) repeats the shim run.
set -u
shim=$1
shift
err_file=$(mktemp)
trap 'rm -f "$err_file"' EXIT
native_out=$("$@" 2>/dev/null)
native_rc=$?
runs=${RUNS:-1}
i=0
while [ "$i" -lt "$runs" ]; do
  shim_out=$(LD_PRELOAD="$shim" "$@" 2>"$err_file")
  shim_rc=$?
  if [ "$native_rc" != "$shim_rc" ] || [ "$native_out" != "$shim_out" ]; then
    echo "differ (run $i): native exit $native_rc, shim exit $shim_rc"
    echo "--- native"; printf '%s\n' "$native_out"
    echo "--- shim"; printf '%s\n' "$shim_out"
    echo "--- shim stderr"; cat "$err_file"
    exit 1
  fi
  i=$((i + 1))
done
printf '%s\n' "$shim_out"
echo "same output and exit status ($native_rc) natively and under the shim, $runs run(s)"

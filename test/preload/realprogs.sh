#!/bin/sh
# realprogs.sh SHIM pigz|sysbench: Debian programs under the shim, checked
# against native runs. Exit 77 (skipped) when the program is not installed
# (apt-get install -y pigz sysbench).
set -u
shim=$1
fail() { echo "FAILED: $*"; exit 1; }
case $2 in
pigz)
  command -v pigz >/dev/null || { echo "pigz not installed: skipped"; exit 77; }
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  # ~100 MB of compressible, reproducible text.
  awk 'BEGIN { srand(7); for (i = 0; i < 1900000; i++) {
         printf "%08d line %d of the preload test, value %.6f\n", i, i * 7 % 1000, rand() } }' \
    > "$dir/in" || fail "generating input"
  pigz -p 8 -c "$dir/in" > "$dir/native.gz" || fail "native pigz"
  LD_PRELOAD=$shim pigz -p 8 -c "$dir/in" > "$dir/shim.gz" || fail "pigz under the shim"
  cmp -s "$dir/native.gz" "$dir/shim.gz" || fail "compressed outputs differ"
  LD_PRELOAD=$shim pigz -p 8 -dc "$dir/shim.gz" > "$dir/out" || fail "pigz -d under the shim"
  cmp -s "$dir/in" "$dir/out" || fail "round trip differs"
  echo "pigz -p 8: $(wc -c < "$dir/in") bytes, same compressed bytes as native, round trip exact"
  ;;
sysbench)
  command -v sysbench >/dev/null || { echo "sysbench not installed: skipped"; exit 77; }
  # Fixed event counts, so the totals must match exactly.
  for t in "threads --threads=8 --thread-locks=4 --events=4000 --time=0" \
           "threads --threads=32 --events=4000 --time=0" \
           "mutex --threads=8 --mutex-num=64 --mutex-locks=20000"; do
    n=$(sysbench $t run 2>&1 | awk '/total number of events/ {print $NF}')
    s=$(LD_PRELOAD=$shim sysbench $t run 2>&1 | awk '/total number of events/ {print $NF}')
    [ -n "$n" ] && [ "$n" = "$s" ] || fail "sysbench $t: native $n events, shim $s"
    echo "sysbench $t: $s events natively and under the shim"
  done
  ;;
*) fail "unknown program $2" ;;
esac

#!/bin/sh
# mutex_ratio.sh BUILD_DIR [RUNS]: contended mutex, upthread (and parlib's
# uthread_mutex) against NPTL at 2, 8 and 64 threads, both sides in the same
# process run. Prints, per thread count, each run's ratio (items/s of
# upthread ÷ items/s of NPTL; > 1 means faster than NPTL) and the best and
# median over RUNS runs: on a shared machine only same-run ratios compare.
set -eu
build=${1:?usage: mutex_ratio.sh path/to/build [runs]}
runs=${2:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$runs" ]; do
  i=$((i + 1))
  "$build/bench/upthread_bench" --benchmark_filter='BM_MutexContended_' --benchmark_min_time=0.3 2>/dev/null |
    awk -v run="$i" -v src=upthread_bench '
      { for (f = 1; f <= NF; f++) if ($f ~ /^items_per_second=/) { v = $f; sub(/items_per_second=/, "", v)
          m = 1; if (v ~ /k\/s$/) m = 1e3; else if (v ~ /M\/s$/) m = 1e6; else if (v ~ /G\/s$/) m = 1e9
          sub(/[kMG]?\/s$/, "", v); rate = v * m } }
      $1 ~ /^BM_MutexContended_Upthread\// { split($1, p, "/"); up[p[2]] = rate }
      $1 ~ /^BM_MutexContended_Nptl\// { split($1, p, "/"); np[p[2]] = rate }
      END { for (n in up) if (n in np) printf "%s threads=%s run=%d ratio=%.3f\n", src, n, run, up[n] / np[n] }'
  "$build/bench/sync_bench" --benchmark_filter='Bm_none|MutexContended/(2|8|64)/' --benchmark_min_time=0.3 2>/dev/null |
    awk -v run="$i" -v src=sync_bench '
      { for (f = 1; f <= NF; f++) if ($f ~ /^items_per_second=/) { v = $f; sub(/items_per_second=/, "", v)
          m = 1; if (v ~ /k\/s$/) m = 1e3; else if (v ~ /M\/s$/) m = 1e6; else if (v ~ /G\/s$/) m = 1e9
          sub(/[kMG]?\/s$/, "", v); rate = v * m } }
      $1 ~ /^BM_UthreadMutexContended\// { split($1, p, "/"); up[p[2]] = rate }
      $1 ~ /^BM_PthreadMutexContended\// { split($1, p, "/"); np[p[2]] = rate }
      END { for (n in up) if (n in np) printf "%s threads=%s run=%d ratio=%.3f\n", src, n, run, up[n] / np[n] }'
done > "$out"
sort -t= -k2,2n "$out"
echo "ratio upthread/NPTL (items/s), $runs runs, $(nproc) CPUs:"
awk '{ split($2, t, "="); split($4, r, "="); key = $1 " " t[2]; v[key] = v[key] " " r[2] }
     END { for (k in v) print k, v[k] }' "$out" | sort -k1,1 -k2,2n |
  while read -r src n vals; do
    printf '%s' "$vals" | tr ' ' '\n' | grep . | sort -g | awk -v src="$src" -v n="$n" '
      { r[NR] = $1 } END { med = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
        printf "  %-15s %2s threads: best %.2fx  median %.2fx\n", src, n, r[NR], med }'
  done

#!/bin/sh
# upthread_bench_ratio.sh BENCH [RUNS] [REPS]: the create+join speed-up of
# upthread over NPTL, each ratio from one process run (both sides measured
# in it, REPS repetitions each, their medians compared: wall-clock time).
# Prints one line per run, then the best and the median ratio: on a shared
# machine only ratios from the same run compare.
set -eu
bench=${1:?usage: upthread_bench_ratio.sh path/to/upthread_bench [runs] [reps]}
runs=${2:-5}
reps=${3:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$runs" ]; do
  i=$((i + 1))
  "$bench" --benchmark_filter='BM_CreateJoin_' --benchmark_repetitions="$reps" \
    --benchmark_report_aggregates_only=true --benchmark_min_time=0.5 2>/dev/null |
    awk -v run="$i" '
      $1 == "BM_CreateJoin_Upthread_median" { up = $2 }
      $1 == "BM_CreateJoin_Nptl_median" { nptl = $2 }
      END {
        if (up == "" || nptl == "") { print "run " run ": no result" > "/dev/stderr"; exit 1 }
        printf "run %d: upthread %s ns, nptl %s ns, ratio %.1f\n", run, up, nptl, nptl / up
      }'
done | tee "$out"
sed 's/.*ratio //' "$out" | sort -g | awk '
  { r[NR] = $1 }
  END { printf "best %.1f  median %.1f  (%d runs)\n", r[NR], (NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2), NR }'

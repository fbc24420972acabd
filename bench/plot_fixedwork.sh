#!/bin/sh
# plot_fixedwork.sh CSV PNG: threads completed over time for every variant
# of a fixedwork run (dissertation Fig 2.8). Needs gnuplot (Debian:
# gnuplot-nox).
set -eu
csv=${1:?usage: plot_fixedwork.sh fixedwork.csv out.png}
png=${2:?usage: plot_fixedwork.sh fixedwork.csv out.png}
command -v gnuplot >/dev/null || { echo "plot_fixedwork.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# One file per variant: completion times sorted, with the running count.
variants=$(tail -n +2 "$csv" | cut -d, -f1 | awk '!seen[$0]++')
plot=""
n=0
for v in $variants; do
  f="$dir/$(echo "$v" | tr ':' '_').dat"
  grep "^$v," "$csv" | cut -d, -f3 | sort -g | awk '{ print $1, NR }' > "$f"
  # NPTL's variants dashed, so that they stay apart when colours repeat.
  case "$v" in nptl*) dash=2 ;; *) dash=1 ;; esac
  n=$((n + 1))
  plot="$plot${plot:+, }'$f' using 1:2 with lines linewidth 2 linecolor $n dashtype $dash title '$v'"
done
gnuplot <<GP
set terminal pngcairo size 1000,650 noenhanced
set output '$png'
set title 'fixedwork: threads completed over time'
set xlabel 'time since barrier release (ms)'
set ylabel 'threads completed'
set key left top
set grid
plot $plot
GP
echo "wrote $png"

#!/bin/bash
# preload_compare.sh [SHIM]: runs real threaded programs natively and under
# libupthread-preload.so in the same run and prints one line per program:
# native and shim wall times (seconds, best of REPS) and shim/native.
# For sysbench the figure is events per second (higher is better) and the
# ratio is shim/native throughput.
#
# SHIM defaults to the shim of build/release; PARLIB_VCORES and
# UPTHREAD_SCHED_PERIOD_US pass through. Programs that are not installed
# (scripts/deps.sh test installs them) are skipped with a message.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
shim=${1:-$here/build/release/src/upthread/preload/libupthread-preload.so}
reps=${REPS:-3}
size_mb=${SIZE_MB:-100}
if [ ! -r "$shim" ]; then
  echo "preload_compare: no shim at $shim (build it, or pass its path)" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# best_wall CMD...: the smallest wall time of $reps runs, in seconds.
best_wall() {
  local best="" t
  for _ in $(seq "$reps"); do
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "FAIL"; return; }
    e=$(date +%s.%N)
    t=$(awk -v s="$s" -v e="$e" 'BEGIN {print e - s}')
    if [ -z "$best" ] || awk -v t="$t" -v b="$best" 'BEGIN {exit !(t < b)}'; then best=$t; fi
  done
  printf '%.3f' "$best"
}

line() {  # name native shim unit
  local ratio="-"
  if [ "$2" != FAIL ] && [ "$3" != FAIL ]; then ratio=$(awk -v a="$3" -v b="$2" 'BEGIN {printf "%.2f", a / b}'); fi
  printf '%-40s native %9s  shim %9s  %-5s shim/native %s\n' "$1" "$2" "$3" "$4" "$ratio"
}

echo "shim: $shim"
echo "machine: $(nproc) CPUs; PARLIB_VCORES=${PARLIB_VCORES:-default} UPTHREAD_SCHED_PERIOD_US=${UPTHREAD_SCHED_PERIOD_US:-default}; best of $reps"

if command -v pigz >/dev/null; then
  # Compressible but not trivial input, generated once.
  head -c $((size_mb * 1024 * 1024 * 3 / 4)) /dev/urandom | base64 -w 76 > "$work/in"
  pigz -p 8 -c "$work/in" > "$work/in.gz"
  line "pigz -p 8 compress ${size_mb} MB" \
    "$(best_wall sh -c "pigz -p 8 -c '$work/in' > '$work/n.gz'")" \
    "$(best_wall sh -c "LD_PRELOAD='$shim' pigz -p 8 -c '$work/in' > '$work/s.gz'")" "s"
  line "pigz -p 8 decompress" \
    "$(best_wall sh -c "pigz -p 8 -dc '$work/in.gz' > '$work/n.out'")" \
    "$(best_wall sh -c "LD_PRELOAD='$shim' pigz -p 8 -dc '$work/in.gz' > '$work/s.out'")" "s"
  if ! cmp -s "$work/n.gz" "$work/s.gz" || ! cmp -s "$work/in" "$work/s.out"; then
    echo "pigz: output under the shim differs from native"
  fi
else
  echo "pigz: not installed, skipped (apt-get install -y pigz)"
fi

# events/s of a sysbench run (its own fixed time).
sysbench_rate() {
  local out ev t
  out=$("$@" 2>&1) || { echo FAIL; return; }
  ev=$(echo "$out" | awk '/total number of events/ {print $NF}')
  t=$(echo "$out" | awk '/total time:/ {sub("s", "", $NF); print $NF}')
  awk -v e="$ev" -v t="$t" 'BEGIN {printf "%.0f", e / t}'
}
if command -v sysbench >/dev/null; then
  for test in "threads --threads=8 --thread-locks=4" \
              "threads --threads=32 --thread-locks=8"; do
    line "sysbench $test" \
      "$(sysbench_rate sysbench $test --time=3 run)" \
      "$(sysbench_rate env LD_PRELOAD="$shim" sysbench $test --time=3 run)" "ev/s"
  done
  line "sysbench mutex --threads=8" \
    "$(best_wall sysbench mutex --threads=8 run)" \
    "$(best_wall env LD_PRELOAD="$shim" sysbench mutex --threads=8 run)" "s"
else
  echo "sysbench: not installed, skipped (apt-get install -y sysbench)"
fi

# pair NAME CMD: CMD is a shell command line; it runs as it is and with
# only its first program preloaded (the shell and redirections stay
# native), best of $reps each.
pair() {
  line "$1" "$(best_wall sh -c "$2")" "$(best_wall sh -c "LD_PRELOAD='$shim' $2")" "s"
}
have() {
  command -v "$1" >/dev/null && return 0
  echo "$1: not installed, skipped (scripts/deps.sh test)"
  return 1
}
# CPU-bound, threads that mostly compute: the shim's goal is native speed.
if [ -r "$work/in" ]; then in=$work/in; else
  head -c $((size_mb * 1024 * 1024 * 3 / 4)) /dev/urandom | base64 -w 76 > "$work/in"; in=$work/in
fi
head -c $((16 * 1024 * 1024)) "$in" > "$work/in16"
have xz && pair "xz -T4 compress 16 MB" "xz -T4 --block-size=2MiB -c '$work/in16' > '$work/o'"
have zstd && pair "zstd -T4 -9 compress ${size_mb} MB" "zstd -q -T4 -9 -c '$in' > '$work/o'"
have pbzip2 && pair "pbzip2 -p4 compress 16 MB" "pbzip2 -p4 -c '$work/in16' > '$work/o'"
have plzip && pair "plzip -n4 compress 16 MB" "plzip -n4 -B 2MiB -c '$work/in16' > '$work/o'"
have lbzip2 && pair "lbzip2 -n4 compress 16 MB" "lbzip2 -n4 -c '$work/in16' > '$work/o'"
have sort && pair "sort --parallel=4 ${size_mb} MB" "sort --parallel=4 -S 64M '$in' > '$work/o'"
# Threads that start processes and wait for them.
if have /usr/bin/python3; then
  pair "python3 subprocess x400 from 8 threads" "/usr/bin/python3 -c '
import concurrent.futures, subprocess
def job(i): return subprocess.run([\"true\"]).returncode
with concurrent.futures.ThreadPoolExecutor(8) as p: assert sum(p.map(job, range(400))) == 0
'"
fi
if have git; then
  repo=$work/repo
  git init -q "$repo" && (cd "$repo" && for i in $(seq 20); do
      seq "$i" 20000 | sed "s/^/line $i /" > "f$((i % 5)).txt"
      git add . && git -c user.email=t@x -c user.name=t commit -qm "c$i"
    done)
  pair "git repack -adf --threads=4" "git -C '$repo' -c pack.threads=4 repack -adfq"
  pair "git grep --threads=4" "git -C '$repo' grep -c --threads=4 -e ' 1[0-9]*7$' > '$work/o'"
fi

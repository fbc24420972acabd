#!/usr/bin/env bash
# kweb_vs_nginx.sh: the "Kweb Throughput" experiment of dissertation 2.6.3
# (Fig 2.10): kweb on NPTL, on upthread and on its own scheduler against
# an optimised nginx, all serving the same document root on the same
# cores, driven by wrk pinned to the remaining cores over 127.0.0.1.
#
#   bench/kweb_vs_nginx.sh [--kweb PATH] [--duration S] [--warmup S] [--runs N]
#                          [--conns "100 1000"] [--files "empty 1k"]
#                          [--servers "nginx kweb-nptl kweb-upthread kweb-custom"]
#                          [--cores "1 2 4"] [--json FILE] [--plot FILE.png]
#
# For every server core count (default: 1 on a 2-core machine; 1, 2, 4, ...
# up to all but one CPU on larger ones, as Fig 2.10 sweeps cores), every
# server, file and connection count: a warm-up run, then --runs measured
# runs of wrk, of which the best req/s is kept (with that run's p99
# latency). The server gets CPUs 0..n-1 (taskset; kweb also --vcores n;
# nginx worker_processes n), wrk the remaining ones, one wrk thread each.
# Prints a table and the ratios the issue's targets are about; --json
# writes {"runs": [{"server", "file", "conns", "cores", "req_s", "p99_ms",
# "errors"}, ...]}; --plot draws req/s per server with gnuplot.
#
# Installs nginx, wrk (and gnuplot-nox for --plot) with apt-get if they
# are missing. nginx runs in the foreground under a temporary prefix (its
# own conf, pid, logs and temp paths), listening on 127.0.0.1 only, and
# is stopped at the end. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."

kweb=build/release/apps/kweb/kweb
duration=10
warmup=3
runs=3
conns_list="100 1000"
files_list="empty 1k"
servers="nginx kweb-nptl kweb-upthread kweb-custom"
cores_list=""
json=""
plot=""

die() { echo "kweb_vs_nginx.sh: $*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --kweb) kweb=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --conns) conns_list=$2; shift 2 ;;
    --files) files_list=$2; shift 2 ;;
    --servers) servers=$2; shift 2 ;;
    --cores) cores_list=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --plot) plot=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $duration =~ ^[1-9][0-9]*$ && $warmup =~ ^[0-9]+$ && $runs =~ ^[1-9][0-9]*$ ]] ||
  die "--duration and --runs take whole numbers >= 1, --warmup >= 0"
[[ -x $kweb ]] || die "$kweb is not built (cmake --build --preset release --target kweb)"
for f in $files_list; do [[ $f == empty || $f == 1k ]] || die "--files: empty and/or 1k"; done
for s in $servers; do
  [[ $s =~ ^(nginx|kweb-nptl|kweb-upthread|kweb-custom)$ ]] || die "--servers: unknown $s"
done

# ------------------------------------------------------------- packages
need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
if [[ -n $plot ]] && ! command -v gnuplot >/dev/null; then need+=(gnuplot-nox); fi
if ((${#need[@]})); then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "installing: ${need[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# ---------------------------------------------------------------- cores
mapfile -t cpus < <(taskset -cp $$ | sed 's/.*: //' | tr ',' '\n' |
  awk -F- '{ if (NF == 2) for (i = $1; i <= $2; i++) print i; else print $1 }')
ncpu=${#cpus[@]}
((ncpu >= 2)) || die "needs at least 2 CPUs (server and wrk on separate cores); have $ncpu"
if [[ -z $cores_list ]]; then
  cores_list=""
  for ((n = 1; n < ncpu; n *= 2)); do cores_list+="$n "; done
fi
for n in $cores_list; do ((n >= 1 && n < ncpu)) || die "--cores: 1..$((ncpu - 1)) on this machine"; done
cpu_range() { local IFS=,; echo "${*}"; }  # the CPUs given, comma-separated

# The 1000-connection runs need descriptors beyond the usual 1024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------ the root
tmp=$(mktemp -d /tmp/kweb-bench.XXXXXX)
server_pid=""
stop_server() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() { stop_server; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/root"
: > "$tmp/root/empty"
head -c 1024 /dev/urandom > "$tmp/root/1k"
# nginx's workers run as an unprivileged user when it is started as root.
chmod 755 "$tmp" "$tmp/root"
chmod 644 "$tmp/root/empty" "$tmp/root/1k"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --------------------------------------------------------------- nginx
# The configuration the dissertation describes (epoll, sendfile, no
# logging, file cache, multi_accept), plus tcp_nopush/tcp_nodelay and
# keep-alive without a request limit, one worker per server core.
start_nginx() {  # cores cpu_list
  local n=$1 cpu_list=$2 port
  port=$(free_port)
  mkdir -p "$tmp/nginx/logs" "$tmp/nginx/temp"
  cat > "$tmp/nginx/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes $n;
worker_cpu_affinity auto;
worker_rlimit_nofile 65536;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events {
  use epoll;
  worker_connections 8192;
  multi_accept on;
}
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 100000000;
  open_file_cache max=1000 inactive=60s;
  open_file_cache_valid 60s;
  open_file_cache_min_uses 1;
  open_file_cache_errors on;
  default_type application/octet-stream;
  client_body_temp_path $tmp/nginx/temp/body;
  proxy_temp_path $tmp/nginx/temp/proxy;
  fastcgi_temp_path $tmp/nginx/temp/fastcgi;
  uwsgi_temp_path $tmp/nginx/temp/uwsgi;
  scgi_temp_path $tmp/nginx/temp/scgi;
  server {
    listen 127.0.0.1:$port backlog=4096;
    root $tmp/root;
  }
}
CONF
  taskset -c "$cpu_list" "$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
    -e "$tmp/nginx/logs/error.log" &
  server_pid=$!
  server_port=$port
}

# kweb keeps opened files as long as nginx's open_file_cache above does.
start_kweb() {  # sched cores cpu_list
  local sched=$1 n=$2 cpu_list=$3
  taskset -c "$cpu_list" "$kweb" --root "$tmp/root" --port 0 --sched "$sched" --vcores "$n" \
    --file-cache 60 \
    > "$tmp/kweb.out" 2> "$tmp/kweb.err" &
  server_pid=$!
  for _ in $(seq 200); do
    grep -q '^kweb listening on' "$tmp/kweb.out" 2>/dev/null && break
    sleep 0.05
  done
  server_port=$(sed -n 's/^kweb listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/kweb.out")
  [[ -n $server_port ]] || { cat "$tmp/kweb.err" >&2; die "kweb --sched $sched did not start"; }
}

wait_ready() {  # checks both files are served with 200
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$server_port/empty" 2>/dev/null; then break; fi
    sleep 0.05
  done
  for f in empty 1k; do
    curl -fsS -o /dev/null "http://127.0.0.1:$server_port/$f" || die "$1 does not serve /$f"
  done
}

# One wrk run: prints "req_s p99_ms errors".
wrk_run() {  # secs conns file wrk_cpus nthreads
  local out
  out=$(taskset -c "$4" wrk -t"$5" -c"$2" -d"$1"s --latency "http://127.0.0.1:$server_port/$3" 2>&1) || true
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v + 0
    }
    /Requests\/sec:/ { rps = $2 }
    $1 == "99%" { p99 = ms($2) }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $5 }
    END { printf "%s %s %d\n", (rps == "" ? 0 : rps), (p99 == "" ? 0 : p99), err }' <<<"$out"
}

results="$tmp/results.txt"  # server file conns cores req_s p99_ms errors
: > "$results"
for n in $cores_list; do
  server_cpus=$(cpu_range "${cpus[@]:0:n}")
  wrk_cpus=$(cpu_range "${cpus[@]:n}")
  wrk_threads=$((ncpu - n))
  echo "== server on CPUs $server_cpus, wrk ($wrk_threads threads) on CPUs $wrk_cpus"
  for server in $servers; do
    case $server in
      nginx) start_nginx "$n" "$server_cpus" ;;
      kweb-*) start_kweb "${server#kweb-}" "$n" "$server_cpus" ;;
    esac
    wait_ready "$server"
    for file in $files_list; do
      for c in $conns_list; do
        ((warmup > 0)) && wrk_run "$warmup" "$c" "$file" "$wrk_cpus" "$wrk_threads" > /dev/null
        best="0 0 0"
        for ((r = 0; r < runs; r++)); do
          cur=$(wrk_run "$duration" "$c" "$file" "$wrk_cpus" "$wrk_threads")
          best=$(awk -v a="$best" -v b="$cur" 'BEGIN { split(a, x, " "); split(b, y, " ");
            print (y[1] + 0 > x[1] + 0) ? b : a }')
          errs=$(awk '{ print $3 }' <<<"$cur")
          # Errors of any run count, not only the best one's.
          total_err=$(( ${total_err:-0} + errs ))
        done
        read -r rps p99 _ <<<"$best"
        printf '%-14s %-6s %5d conns %2d cores  %10.0f req/s  p99 %8.2f ms  errors %d\n' \
          "$server" "$file" "$c" "$n" "$rps" "$p99" "${total_err:-0}"
        echo "$server $file $c $n $rps $p99 ${total_err:-0}" >> "$results"
        total_err=0
      done
    done
    stop_server
  done
done

# ------------------------------------------------------------- report
echo
printf '| %-14s | %-5s | %5s | %5s | %10s | %8s | %6s |\n' server file conns cores "req/s" "p99 ms" errors
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ---------------- ------- ------- ------- ------------ ---------- --------
while read -r s f c n r p e; do
  printf '| %-14s | %-5s | %5d | %5d | %10.0f | %8.2f | %6d |\n' "$s" "$f" "$c" "$n" "$r" "$p" "$e"
done < "$results"
echo
# The ratios the issue's targets name, for each file, connection count and core count.
awk '
  { key = $2 " " $3 " " $4; rps[$1, key] = $5; keys[key] = 1 }
  END {
    for (k in keys) {
      split(k, p, " ")
      line = sprintf("%s file, %d conns, %d cores:", p[1], p[2], p[3])
      if (rps["nginx", k] > 0) {
        if (("kweb-custom", k) in rps) line = line sprintf("  custom/nginx %.2f", rps["kweb-custom", k] / rps["nginx", k])
        if (("kweb-upthread", k) in rps) line = line sprintf("  upthread/nginx %.2f", rps["kweb-upthread", k] / rps["nginx", k])
      }
      if (rps["kweb-nptl", k] > 0 && ("kweb-upthread", k) in rps)
        line = line sprintf("  upthread/nptl %.2f", rps["kweb-upthread", k] / rps["kweb-nptl", k])
      print line
    }
  }' "$results" | sort

if [[ -n $json ]]; then
  awk 'BEGIN { printf "{\"runs\": [" }
       { printf "%s{\"server\": \"%s\", \"file\": \"%s\", \"conns\": %d, \"cores\": %d, \"req_s\": %.1f, \"p99_ms\": %.3f, \"errors\": %d}",
                (NR > 1 ? ", " : ""), $1, $2, $3, $4, $5, $6, $7 }
       END { print "]}" }' "$results" > "$json"
  echo "wrote $json"
fi

if [[ -n $plot ]]; then
  ncores=$(wc -w <<<"$cores_list")
  data="$tmp/plot.dat"
  if ((ncores == 1)); then
    # One core count: clustered bars, one cluster per file and connection
    # count, one bar per server.
    {
      printf 'case'; for s in $servers; do printf ' %s' "$s"; done; echo
      for f in $files_list; do for c in $conns_list; do
        printf '%s/%s' "$f" "$c"
        for s in $servers; do
          printf ' %s' "$(awk -v s="$s" -v f="$f" -v c="$c" '$1 == s && $2 == f && $3 == c { print $5 }' "$results")"
        done
        echo
      done; done
    } > "$data"
    nserv=$(wc -w <<<"$servers")
    gnuplot <<GP
set terminal pngcairo size 900,540 noenhanced
set output "$plot"
set title "kweb vs nginx: req/s, server on $cores_list core(s), wrk on the rest (best of $runs x ${duration}s)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "requests/s"
set yrange [0:*]
set key top left
set grid ytics
plot for [i=2:$((nserv + 1))] "$data" using i:xtic(1) title columnhead
GP
  else
    # A core sweep (Fig 2.10): req/s against server cores, one line per
    # server, one panel per file and connection count.
    panels=$(( $(wc -w <<<"$files_list") * $(wc -w <<<"$conns_list") ))
    {
      echo "set terminal pngcairo size 900,$((360 * panels)) noenhanced"
      echo "set output \"$plot\""
      echo "set multiplot layout $panels,1"
      for f in $files_list; do for c in $conns_list; do
        echo "set title \"$f file, $c connections\""
        echo "set xlabel \"server cores\"; set ylabel \"requests/s\"; set yrange [0:*]; set grid; set key top left"
        printf 'plot '
        first=1
        for s in $servers; do
          awk -v s="$s" -v f="$f" -v c="$c" '$1 == s && $2 == f && $3 == c { print $4, $5 }' "$results" \
            > "$tmp/plot.$s.$f.$c"
          ((first)) || printf ', '
          printf '"%s" using 1:2 with linespoints title "%s"' "$tmp/plot.$s.$f.$c" "$s"
          first=0
        done
        echo
      done; done
      echo "unset multiplot"
    } | gnuplot
  fi
  echo "wrote $plot"
fi

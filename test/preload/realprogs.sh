#!/bin/sh
# realprogs.sh SHIM PROGRAM: a Debian program under the shim, checked
# against its native run: the same output and the same exit status. Exit 77
# (skipped, with the reason) when the program is not installed
# (scripts/deps.sh test installs them all).
set -u
shim=$1
fail() { echo "FAILED: $*"; exit 1; }
need() {
  for p in "$@"; do
    command -v "$p" >/dev/null || { echo "$p not installed: skipped (scripts/deps.sh test)"; exit 77; }
  done
}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
: > "$dir/stdin"

# text MB: about MB megabytes of compressible, reproducible text in $dir/in.
text() {
  awk -v n=$(($1 * 19000)) 'BEGIN { srand(7); for (i = 0; i < n; i++)
         printf "%08d line %d of the preload test, value %.6f\n", (i * 7919) % n, i * 7 % 1000, rand() }' \
    > "$dir/in" || fail "generating input"
}

# same LABEL CMD...: runs CMD natively and under the shim (only CMD itself
# is preloaded) with stdin from $dir/stdin; stdout and the exit status must
# be identical.
same() {
  label=$1
  shift
  "$@" < "$dir/stdin" > "$dir/native.out" 2> "$dir/native.err"
  native_rc=$?
  LD_PRELOAD=$shim "$@" < "$dir/stdin" > "$dir/shim.out" 2> "$dir/shim.err"
  shim_rc=$?
  if [ "$native_rc" != "$shim_rc" ]; then
    cat "$dir/shim.err"
    fail "$label: exit status $native_rc natively, $shim_rc under the shim"
  fi
  cmp -s "$dir/native.out" "$dir/shim.out" || { cat "$dir/shim.err"; fail "$label: output differs from native"; }
  echo "$label: same output ($(wc -c < "$dir/shim.out") bytes) and exit status ($shim_rc) as native"
}

# roundtrip LABEL COMPRESS... -- DECOMPRESS...: compresses $dir/in natively
# and under the shim (byte-identical results required), then decompresses
# the shim's result under the shim and natively: both give the input back.
roundtrip() {
  what=$1
  shift
  comp=""
  while [ "$1" != "--" ]; do comp="$comp $1"; shift; done
  shift
  cp "$dir/in" "$dir/stdin"
  # shellcheck disable=SC2086  # the command words are meant to be split
  same "$what compress" $comp
  cp "$dir/shim.out" "$dir/stdin"
  same "$what decompress" "$@"
  cmp -s "$dir/in" "$dir/shim.out" || fail "$what: the round trip under the shim does not give the input back"
  : > "$dir/stdin"
}

case $2 in
pigz)
  need pigz
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
  need sysbench
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
xz)
  # Small blocks, so that four threads really compress in parallel.
  need xz
  text 3
  roundtrip "xz -T4" xz -T4 --block-size=512KiB -c -- xz -T4 -dc
  ;;
zstd)
  need zstd
  text 6
  roundtrip "zstd -T4" zstd -q -T4 -B1MiB -c -- zstd -q -T4 -dc
  ;;
lbzip2)
  # Its main thread waits in sigsuspend for its workers' SIGUSR2: a
  # spurious return (the runtime's own signals) made it fail outright.
  need lbzip2
  text 6
  roundtrip "lbzip2 -n4" lbzip2 -n4 -c -- lbzip2 -n4 -dc
  ;;
pbzip2)
  need pbzip2
  text 6
  roundtrip "pbzip2 -p4" pbzip2 -p4 -b5 -c -- pbzip2 -p4 -dc
  ;;
plzip)
  need plzip
  text 6
  roundtrip "plzip -n4" plzip -n4 -B 1MiB -c -- plzip -n4 -dc
  ;;
sort)
  # A small buffer makes sort spill to temporary files and merge them with
  # its threads.
  need sort
  text 4
  same "sort --parallel=4" sort --parallel=4 -S 512K "$dir/in"
  same "sort -n --parallel=4" sort -n -k3 --parallel=4 -S 512K "$dir/in"
  ;;
python3)
  # Worker threads of a thread pool each start and wait for child
  # processes (fork/exec or vfork from threads other than main) and read
  # their output through pipes.
  need /usr/bin/python3
  same "python3 subprocess from 8 threads" /usr/bin/python3 -c '
import concurrent.futures, subprocess, threading
def job(i):
    out = subprocess.run(["sh", "-c", "echo $0 $$", str(i)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    total = sum(pool.map(job, range(200)))
print(total, threading.active_count())
'
  ;;
python3-mp)
  # Process-shared semaphores: multiprocessing's Lock and Semaphore are
  # POSIX semaphores from sem_open, shared by the main process and three
  # children, each running three threads that take the semaphore and then
  # the lock to increment a shared count; children made by fork (they run
  # natively under the shim) and by spawn (new interpreters, under the
  # shim too).
  need /usr/bin/python3
  cat > "$dir/mp.py" <<'PY'
import multiprocessing as mp, threading
def worker(lock, sem, count, n):
    def body():
        for _ in range(n):
            with sem:
                with lock:
                    count.value += 1
    threads = [threading.Thread(target=body) for _ in range(3)]
    for t in threads: t.start()
    for t in threads: t.join()
if __name__ == "__main__":
    for method in ("fork", "spawn"):
        ctx = mp.get_context(method)
        lock, sem, count = ctx.Lock(), ctx.Semaphore(2), ctx.Value("i", 0, lock=False)
        procs = [ctx.Process(target=worker, args=(lock, sem, count, 300)) for _ in range(3)]
        for p in procs: p.start()
        worker(lock, sem, count, 300)
        for p in procs: p.join()
        print(method, count.value, [p.exitcode for p in procs])
PY
  same "python3 multiprocessing Lock and Semaphore, 4 processes x 3 threads" /usr/bin/python3 "$dir/mp.py"
  ;;
git)
  # A repository with some history; then the threaded commands: pack
  # objects with four threads, grep with four threads, verify the packs.
  need git
  export GIT_CONFIG_NOSYSTEM=1 HOME="$dir" GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" \
    GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
  repo="$dir/repo"
  git init -q "$repo" && cd "$repo" || fail "git init"
  git config user.email t@example.invalid && git config user.name test
  i=0
  while [ "$i" -lt 12 ]; do
    seq "$i" 2000 | sed "s/^/file $i line /" > "f$((i % 7)).txt"
    git add . && git commit -qm "commit $i" || fail "git commit"
    i=$((i + 1))
  done
  same "git repack -adf --threads=4" git -c pack.threads=4 repack -adfq
  same "git grep --threads=4" git grep -n --threads=4 -e "line 1.7"
  same "git fsck --strict" git fsck --strict --no-progress
  same "git log --stat" git log --stat --format=%s
  ;;
curl)
  # curl resolves names on a thread of its own (the threaded resolver),
  # then fetches from a local server over 127.0.0.1.
  need curl /usr/bin/python3
  text 1
  mkdir "$dir/www" && cp "$dir/in" "$dir/www/file"
  /usr/bin/python3 -m http.server 0 --bind 127.0.0.1 --directory "$dir/www" > "$dir/server.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$dir/server.log" | head -n1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || fail "the local http server did not start"
  same "curl (threaded resolver)" curl -sS --max-time 20 "http://localhost:$port/file"
  cmp -s "$dir/shim.out" "$dir/in" || fail "curl under the shim fetched other bytes"
  ;;
memcached)
  need memcached bash
  [ "$(id -u)" = 0 ] || { echo "not root (memcached -u needs root): skipped"; exit 77; }
  nobody=$(id -u nobody) || fail "no user nobody"
  # session's output is captured: its failures go to stderr.
  session_fail() { echo "FAILED: $*" >&2; exit 1; }
  # memcached -u nobody -t 4: setgroups, setgid and setuid with its threads
  # (and, under the shim, the runtime's) running; one set and get over
  # 127.0.0.1; every task must then have nobody's uid. Prints the session.
  session() {
    try=0
    while [ "$try" -lt 3 ]; do
      port=$((20000 + ($$ * 7 + try * 1013) % 40000))
      env ${1:+LD_PRELOAD=$1} memcached -u nobody -t 4 -U 0 -l 127.0.0.1 -p "$port" &
      pid=$!
      out=
      # Up to 20 s in all (a memcached stuck in setgroups may have its port
      # bound already, so a connection succeeds but nothing answers).
      end=$(($(date +%s) + 20))
      while [ "$(date +%s)" -lt "$end" ] && kill -0 "$pid" 2>/dev/null; do
        out=$(bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
                       printf "set k 0 0 5\r\nhello\r\nget k\r\nquit\r\n" >&3
                       timeout 3 cat <&3' "$port" 2>/dev/null | tr -d '\r') && [ -n "$out" ] && break
        out=
        sleep 0.1
      done
      stuck=
      [ -n "$out" ] || ! kill -0 "$pid" 2>/dev/null || stuck=1
      if [ -n "$out" ]; then
        # memcached hands connections to its -t 4 workers in turn: 8 more,
        # one at a time, reach each worker twice, and each must answer.
        # (A worker whose first epoll_wait stayed blocked in the runtime
        # answered nothing, while connections handed to the others did.)
        for c in 1 2 3 4 5 6 7 8; do
          more=$(bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
                          printf "get k\r\nquit\r\n" >&3
                          timeout 10 cat <&3' "$port" 2>/dev/null | tr -d '\r')
          [ -n "$more" ] || { kill -KILL "$pid"; wait "$pid"
                              session_fail "memcached${1:+ under the shim}: connection $c after the first got no answer in 10 s"; }
        done
        uids=$(cat /proc/"$pid"/task/*/status | awk '/^Uid:/ {print $2, $3, $4, $5}' | sort -u)
        kill "$pid"
        wait "$pid"
        [ "$uids" = "$nobody $nobody $nobody $nobody" ] || session_fail "memcached's tasks' uids: $uids"
        printf '%s\n' "$out"
        return 0
      fi
      kill -KILL "$pid" 2>/dev/null  # a stuck memcached ignores SIGTERM
      wait "$pid"
      [ -z "$stuck" ] || break
      try=$((try + 1))  # the port may be taken: another one
    done
    session_fail "memcached ${1:+under the shim }never served${stuck:+ in 20 s}"
  }
  native=$(session "") || exit 1
  shim_out=$(session "$shim") || exit 1
  [ "$native" = "$shim_out" ] || fail "sessions differ: native '$native', shim '$shim_out'"
  echo "memcached -u nobody -t 4: same session natively and under the shim, every task uid $nobody:"
  printf '%s\n' "$shim_out"
  ;;
*) fail "unknown program $2" ;;
esac

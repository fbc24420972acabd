#!/bin/sh
# kweb's bad options: each is one line on stderr and exit status 2, before
# anything is served.
kweb=$1
root=$(mktemp -d) || exit 1
trap 'rm -rf "$root"' EXIT
status=0
try() {
  err=$("$kweb" "$@" 2>&1 >/dev/null)
  rc=$?
  lines=$(printf '%s\n' "$err" | wc -l)
  case "$err" in kweb:*) prefix=ok ;; *) prefix=bad ;; esac
  if [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ] || [ "$prefix" != ok ]; then
    echo "FAIL: kweb $* -> status $rc, stderr: $err"
    status=1
  else
    echo "ok: kweb $* -> $err"
  fi
}
try --port 0
try --root "$root"
try --root "$root" --port 0 --sched fibers
try --root "$root" --port 70000
try --root "$root" --port x
try --root "$root" --port 0 --threads 0
try --root "$root" --port 0 --burst
try --root "$root" --port 0 --idle-timeout -1
try --root "$root" --port 0 --bogus
try --root "$root/missing" --port 0
try --root "$root" --port 0 --listen 300.1.1.1
try --root "$root" --port 0 --sched upthread --vcores 4096
try --root "$root" --port 0 --sched custom --vcores 4096
exit $status

#!/usr/bin/env bash
# Checks the README's quick start as a newcomer meets it: clones this
# repository's HEAD into a temporary directory and runs the first command
# (scripts/quickstart.sh) there in a clean environment (env -i: no ccache,
# no CMAKE_* or PARLIB_* variables, a fresh HOME), then checks that the
# benchmark printed its result. With --tests it also runs the second
# command (scripts/test-all.sh) in the release preset.
#
# What it cannot check is a machine with nothing installed: run it on a
# fresh Debian 12 (a container with git) for that; on any other machine
# scripts/deps.sh finds the packages present and installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=false
[[ ${1:-} == --tests ]] && tests=true

tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT
git clone --quiet --no-hardlinks . "${tmp}/parlib"
mkdir "${tmp}/home"
clean=(env -i HOME="${tmp}/home" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
       LANG=C.UTF-8 TERM=dumb)

echo "=== fresh clone of $(git rev-parse --short HEAD) in ${tmp}/parlib: scripts/quickstart.sh"
out=$(cd "${tmp}/parlib" && "${clean[@]}" scripts/quickstart.sh --cpus 1 --tpc 2 --seconds 0.3 2>&1) || {
  printf '%s\n' "${out}"
  echo "check-fresh-clone: the quick start failed" >&2
  exit 1
}
printf '%s\n' "${out}" | tail -n 15
# The benchmark's summary line: the ratio of uthread to NPTL switch rates.
if ! grep -Eq 'ratio.*[0-9]' <<<"${out}"; then
  echo "check-fresh-clone: the benchmark printed no ratio" >&2
  exit 1
fi
if ${tests}; then
  echo "=== scripts/test-all.sh release"
  (cd "${tmp}/parlib" && "${clean[@]}" scripts/test-all.sh release)
fi
echo "check-fresh-clone: ok"

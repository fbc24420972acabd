#!/usr/bin/env bash
# Installs the Debian packages parlib needs that are missing, with apt-get
# (through sudo when not root). The one list of them: the README's two
# commands and .ci/run all come here.
#
#   scripts/deps.sh build    # configure and build (the quick start)
#   scripts/deps.sh test     # build, plus what the tests run (gdb, ...)
#
# Where it cannot install (no apt-get, not root and no sudo, or apt-get
# fails), it prints one line naming the missing packages and exits 1.
set -euo pipefail

group=${1:-build}
# make: the presets use the Unix Makefiles generator, and cmake only
# recommends make (apt-get below does not install recommends).
build=(cmake make g++ pkg-config liburing-dev libgtest-dev libbenchmark-dev)
# gdb: the debugger extension's tests (test/debug). clang-format: CI's
# layout check (scripts/check-format.sh). The rest: real programs
# the LD_PRELOAD shim's tests run against their native runs
# (test/preload/realprogs.sh). Each test skips, visibly, where its program
# is missing.
test=(gdb clang-format pigz sysbench xz-utils zstd pbzip2 lbzip2 plzip git curl python3 memcached)
case ${group} in
  build) packages=("${build[@]}") ;;
  test) packages=("${build[@]}" "${test[@]}") ;;
  *) echo "usage: $0 [build|test]" >&2; exit 2 ;;
esac

missing=()
if command -v dpkg-query >/dev/null; then
  for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("${pkg}")
    fi
  done
else
  echo "parlib: not a Debian system (no dpkg-query); make sure these are installed: ${packages[*]}" >&2
  exit 0
fi
((${#missing[@]})) || exit 0

cannot() {
  echo "parlib: missing Debian packages: ${missing[*]} ($1); install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
}
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || cannot "not root and no sudo"
  # -n: fail at once instead of prompting when sudo needs a password that
  # no one will type (CI); an interactive user gets the prompt.
  if [[ -t 0 ]]; then sudo=(sudo); else sudo=(sudo -n); fi
fi
command -v apt-get >/dev/null || cannot "no apt-get"
echo "parlib: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null || cannot "apt-get update failed"
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
  cannot "apt-get install failed"

#!/usr/bin/env bash
# The README's first command: installs what is missing (scripts/deps.sh),
# configures and builds the release preset's context switch benchmark and
# runs it on one core with two threads (uthreads against NPTL).
# Arguments go to the benchmark (default: --cpus 1 --tpc 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake --preset release >/dev/null
cmake --build --preset release --target ctxswitch
if (($# == 0)); then set -- --cpus 1 --tpc 2; fi
exec ./build/release/bench/ctxswitch "$@"

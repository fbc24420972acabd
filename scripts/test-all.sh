#!/usr/bin/env bash
# Builds and runs every test in the release, asan and ubsan presets (or in the
# presets named on the command line): installs the Debian packages that are
# missing (scripts/deps.sh), then configure, build, the layering check
# (scripts/check-layers.sh), ctest. This is the test
# command of README.md and the core of .ci/run.
#
#   scripts/test-all.sh              # release, asan, then ubsan
#   scripts/test-all.sh debug        # any presets of CMakePresets.json
#   scripts/test-all.sh tsan         # ThreadSanitizer (not in the default set:
#                                    # it takes longer than the others together)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test

presets=("$@")
if ((${#presets[@]} == 0)); then
  presets=(release asan ubsan)
fi

for preset in "${presets[@]}"; do
  echo "=== preset ${preset}"
  cmake --preset "${preset}"
  cmake --build --preset "${preset}"
  # No layer uses one above it, by #include or by symbol (docs/design.md).
  scripts/check-layers.sh "build/${preset}"
  ctest --preset "${preset}"
  if [[ ${preset} == tsan ]]; then
    # The preset leaves out the tests labelled no_tsan: say which.
    echo "=== tsan: not run under ThreadSanitizer (label no_tsan; docs/debugging.md says why):"
    ctest --test-dir build/tsan -N -L no_tsan | sed -n 's/^ *Test *#[0-9]*: /  /p'
  fi
done

#!/usr/bin/env bash
# check-format.sh [--fix]: every C and C++ source of the project is as
# clang-format (.clang-format at the root) lays it out. Exits 1 naming the
# files that are not; --fix reformats them instead. The public C headers
# (include/) keep the Akaros parlib layout (tabs, hand-aligned member
# comments), which clang-format cannot express: include/.clang-format turns
# formatting off there.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || {
  echo "check-format: clang-format is not installed (Debian package clang-format)" >&2
  exit 1
}
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' '*.cc' | grep -v '^include/')
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  echo "check-format: not formatted (run scripts/check-format.sh --fix): ${bad[*]}" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted as .clang-format says ($(clang-format --version | sed 's/.*version //'))"

#!/usr/bin/env bash
# The layering check: a file under src/X/ may use only its own layer and
# the layers below X (docs/design.md, "Layers"). Fails when a new upward
# dependency appears; the known ones are in ALLOWED below, each with why.
#
#   scripts/check-layers.sh               # #include lines of src/
#   scripts/check-layers.sh build/release # also the symbols each layer's
#                                         # object files leave undefined
#
# Layers, bottom up (a level may use its own and lower levels):
#   0 base      src/common/ and src/vcore/arch/ (they use each other: the
#               arch headers are dependency-free, arch's context.cpp
#               reports through common's raw_log)
#   1 vcore     src/vcore/
#   2 uthread   src/uthread/
#   3 event     src/event/
#   4 sync      src/sync/
#   5 syscall   src/syscall/
#   6 upthread  src/upthread/
#   7 preload   src/upthread/preload/ (the LD_PRELOAD shim)
# A public header (include/parlib/*.h, include/upthread/*.h) belongs to the
# layer that implements it (PUBLIC below): including <parlib/event.h> from
# src/uthread/ is as much an upward dependency as including an event-layer
# internal header.
#
# The symbol check reads `nm` of every object file in the build tree: an
# undefined symbol that an object of a higher layer defines is an upward
# call (or data reference), however it was declared. Symbols the C library
# defines are left out: the syscall layer and the shim define C library
# functions (read, pthread_create, ...) that every layer calls as libc's.
set -euo pipefail
cd "$(dirname "$0")/.."

# The upward dependencies that remain, as "FILE -> TARGET" (TARGET: an
# included header, or a symbol for the symbol check), each with its reason.
# A new entry needs a reason that a reviewer accepts; removing a dependency
# means removing its entry (a stale entry fails the check too).
ALLOWED=(
  # The uthread struct records the system call a uthread blocks in (struct
  # syscall *sysc, Akaros' API), and the debugger descriptor gives gdb the
  # offset of the call's number in it: a type, no call into the layer.
  "src/uthread/debug_registry.cpp -> parlib/syscall.h"
)

# Level of each layer folder (longest prefix wins).
declare -A LEVEL=(
  [src/common]=0 [src/vcore/arch]=0 [src/vcore]=1 [src/uthread]=2 [src/event]=3
  [src/sync]=4 [src/syscall]=5 [src/upthread]=6 [src/upthread/preload]=7
)
# Level of each public header. A new header must be added here.
declare -A PUBLIC=(
  [parlib/common.h]=0 [parlib/atomic.h]=0
  [parlib/vcore.h]=1
  [parlib/uthread.h]=2 [parlib/dtls.h]=2
  [parlib/event.h]=3 [parlib/alarm.h]=3
  [parlib/spinlock.h]=4 [parlib/mcs.h]=4 [parlib/mutex.h]=4 [parlib/pool.h]=4
  [parlib/slab.h]=4 [parlib/waitfreelist.h]=4
  [parlib/syscall.h]=5
  [parlib/parlib.h]=6
)

fail=0
declare -A used_allowance=()
problem() {
  echo "check-layers: $*" >&2
  fail=1
}

# The layer folder of a path under src/ (longest matching prefix), or "".
layer_of() {
  local path=$1 best="" prefix
  for prefix in "${!LEVEL[@]}"; do
    if [[ ${path} == "${prefix}"/* && ${#prefix} -gt ${#best} ]]; then best=${prefix}; fi
  done
  echo "${best}"
}

# Reports FILE -> TARGET when TARGET_LEVEL is above FILE's layer.
check_edge() {
  local file=$1 target=$2 target_level=$3 layer=$4
  ((target_level > LEVEL[${layer}])) || return 0
  local edge="${file} -> ${target}" allowed
  for allowed in "${ALLOWED[@]}"; do
    if [[ ${allowed} == "${edge}" ]]; then
      used_allowance[${edge}]=1
      return 0
    fi
  done
  problem "${edge}: ${layer#src/} (level ${LEVEL[${layer}]}) uses a layer above it (level ${target_level});" \
    "use a registration hook in the lower layer (docs/design.md, \"Layers\") or, if it must stay," \
    "add it to ALLOWED in $0 with the reason"
}

for header in include/parlib/*.h; do
  [[ -n ${PUBLIC[${header#include/}]+set} ]] || problem "${header}: no layer in PUBLIC of $0"
done

# ------------------------------------------------------------ #include lines
while IFS= read -r file; do
  layer=$(layer_of "${file}")
  [[ -n ${layer} ]] || { problem "${file}: not under a layer folder listed in LEVEL of $0"; continue; }
  while IFS= read -r inc; do
    case ${inc} in
      \"*\")
        inc=${inc#\"}; inc=${inc%\"}
        # Relative to src/ (the include root) or to the including file.
        if [[ -e src/${inc} ]]; then target=src/${inc}; else target=$(dirname "${file}")/${inc}; fi
        tlayer=$(layer_of "${target}")
        [[ -n ${tlayer} ]] && check_edge "${file}" "${inc}" "${LEVEL[${tlayer}]}" "${layer}"
        ;;
      \<parlib/*\>)
        inc=${inc#<}; inc=${inc%>}
        check_edge "${file}" "${inc}" "${PUBLIC[${inc}]:-6}" "${layer}"
        ;;
      \<upthread/*\>)
        inc=${inc#<}; inc=${inc%>}
        check_edge "${file}" "${inc}" 6 "${layer}"
        ;;
    esac
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*\([<"][^>"]*[>"]\).*/\1/p' "${file}")
done < <(find src -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.S' -o -name '*.def' \) | sort)

# ------------------------------------------------------------------ symbols
build=${1:-}
if [[ -n ${build} ]]; then
  [[ -d ${build}/src ]] || { echo "check-layers: ${build}/src: no build tree" >&2; exit 2; }
  command -v nm >/dev/null || { echo "check-layers: nm not found (binutils)" >&2; exit 2; }
  libc=$(gcc -print-file-name=libc.so.6)
  tmp=$(mktemp -d)
  trap 'rm -rf "${tmp}"' EXIT
  nm -D --defined-only "${libc}" | awk '{ sub(/@.*/, "", $3); print $3 }' | sort -u > "${tmp}/libc"
  # Object file -> its source's layer folder. CMake names objects after
  # their sources: <target>.dir/<path from the target's folder>.o.
  : > "${tmp}/defs"
  : > "${tmp}/undef"
  while IFS= read -r obj; do
    rel=${obj#"${build}"/}
    dir=${rel%%/CMakeFiles/*}                # src, src/upthread, ...
    src=${rel#*/CMakeFiles/*.dir/}           # vcore/vcore.cpp.o, sched.cpp.o, ...
    src=${dir}/${src%.o}
    # An object left behind by a source that is gone is not part of the build.
    [[ -e ${src} ]] || continue
    layer=$(layer_of "${src}")
    [[ -n ${layer} ]] || continue
    # Strong definitions only: weak ones (inline functions, templates) are
    # emitted in every object that uses them.
    nm --defined-only "${obj}" | awk -v s="${src}" -v l="${layer}" \
      '$2 ~ /^[TDBR]$/ { print $3, l, s }' >> "${tmp}/defs"
    nm -u "${obj}" | awk -v s="${src}" -v l="${layer}" '{ print $2, l, s }' >> "${tmp}/undef"
  done < <(find "${build}/src" -path '*/CMakeFiles/*.dir/*' -name '*.o' | sort)
  sort -k1,1 -o "${tmp}/defs" "${tmp}/defs"
  sort -k1,1 -o "${tmp}/undef" "${tmp}/undef"
  # symbol, user layer, user source, definer layer, definer source
  join "${tmp}/undef" "${tmp}/defs" | sort -u > "${tmp}/edges"
  while read -r sym ulayer usrc dlayer dsrc; do
    grep -qxF -- "${sym}" "${tmp}/libc" && continue
    ((LEVEL[${dlayer}] > LEVEL[${ulayer}])) || continue
    pretty=$(echo "${sym}" | c++filt)
    check_edge "${usrc}" "${pretty%%(*}" "${LEVEL[${dlayer}]}" "${ulayer}"
  done < "${tmp}/edges"
fi

# An allowance nothing needs any more must go (symbol entries are only
# checked when a build tree was given).
for allowed in "${ALLOWED[@]}"; do
  [[ -n ${used_allowance[${allowed}]+set} ]] && continue
  target=${allowed#* -> }
  if [[ ${target} == *.h || -n ${build} ]]; then
    problem "stale ALLOWED entry '${allowed}': the dependency is gone, remove the entry"
  fi
done

if ((fail)); then exit 1; fi
echo "check-layers: ok (${#ALLOWED[@]} allowed upward dependencies)"

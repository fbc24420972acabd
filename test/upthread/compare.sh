#!/bin/sh
# compare.sh NATIVE UPTHREAD: both builds of a pthread program must succeed
# and print exactly the same.
set -u
native_out=$("$1") || { echo "native build failed: $1"; exit 1; }
upthread_out=$("$2") || { echo "upthread build failed: $2"; printf '%s\n' "$upthread_out"; exit 1; }
if [ "$native_out" != "$upthread_out" ]; then
  echo "outputs differ"; echo "--- native"; printf '%s\n' "$native_out"
  echo "--- upthread"; printf '%s\n' "$upthread_out"; exit 1
fi
printf '%s\n' "$upthread_out"

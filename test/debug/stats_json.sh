#!/usr/bin/env bash
# PARLIB_STATS=json: the program prints, at exit, exactly one line on
# stderr holding one JSON object with one entry per vcore (PARLIB_VCORES=2,
# no spare used) and the counters named in docs/upthread.md; the vcores
# switched threads (the program is a producer/consumer on upthread).
#
#   stats_json.sh PROGRAM
set -uo pipefail
err=$(PARLIB_STATS=json PARLIB_VCORES=2 PARLIB_SPARE_VCORES=0 "$1" 2>&1 >/dev/null)
status=$?
printf '%s\n' "${err}"
((status == 0)) || { echo "FAIL: exit status ${status}"; exit 1; }
num='[0-9]+'
vcore="\\{\"vcore\":${num},\"spare\":(true|false),\"switches\":${num},\"steals\":${num},\"preemptions\":${num},\"events\":${num},\"syscalls\":${num},\"idle_ms\":${num}\\.${num}\\}"
object="^\\{\"pid\":${num},\"vcores\":\\[${vcore}(,${vcore})*\\],\"spare_vcores_used\":${num}\\}$"
lines=$(grep -c '"pid"' <<<"${err}")
((lines == 1)) || { echo "FAIL: ${lines} JSON objects on stderr, want 1"; exit 1; }
line=$(grep '"pid"' <<<"${err}")
grep -Eq "${object}" <<<"${line}" || { echo "FAIL: not the documented object"; exit 1; }
entries=$(grep -o '"vcore":' <<<"${line}" | wc -l)
((entries == 2)) || { echo "FAIL: ${entries} vcores, want 2"; exit 1; }
switches=$(grep -Eo '"switches":[0-9]+' <<<"${line}" | cut -d: -f2 | awk '{s += $1} END {print s + 0}')
((switches > 0)) || { echo "FAIL: no switches counted"; exit 1; }
if grep -q 'upthread stats:' <<<"${err}"; then echo "FAIL: the text table too"; exit 1; fi
echo "ok"

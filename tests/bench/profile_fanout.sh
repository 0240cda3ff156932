#!/usr/bin/env bash
# Where rotor spends its time in a fan-out: a short fanout run (memory engine, workers: 1)
# three times, each on a fresh rotor:
#   1. plain, with per-thread context switches from /proc/<pid>/task/*/status (wakeups);
#   2. under `strace -f -c` (syscalls per delivery; strace slows rotor, counts stay exact);
#   3. under `valgrind --tool=callgrind` (instructions per function, inclusive and self).
# perf is not used: the machine has no hardware counters (`perf stat -e instructions true`
# says <not supported>).
#
# Usage: tests/bench/profile_fanout.sh       (about 1.5 minutes)
# Environment: ROTOR_BIN [build/rotor], LOADGEN [compiled from loadgen.c], SUBS [200],
#   PUBS (publications/s) [50], DUR (s) [5], SERVER_CPU [0], LOADGEN_CPU [1], KEEP=1 keeps
#   the temp dir (callgrind.out is in it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
SUBS=${SUBS:-200}
PUBS=${PUBS:-50}
DUR=${DUR:-5}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
tmp=$(mktemp -d /tmp/rotor-prof.XXXXXX)
rotor_pid=
cleanup() {
    if [[ -n $rotor_pid ]] && kill -0 "$rotor_pid" 2>/dev/null; then
        kill -TERM "$rotor_pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$rotor_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$rotor_pid" 2>/dev/null || true
    fi
    [[ ${KEEP:-0} == 1 ]] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT

rotor=${ROTOR_BIN:-$repo/build/rotor}
cp "$rotor" "$tmp/rotor"
loadgen=${LOADGEN:-}
if [[ -z $loadgen ]]; then
    loadgen=$tmp/loadgen
    cc -O2 -o "$loadgen" "$here/loadgen.c"
fi
port=$((20000 + RANDOM % 10000))
cat >"$tmp/rotor.json" <<EOF
{
  "http_server": {"address": "127.0.0.1", "port": $port},
  "workers": 1,
  "log": {"level": "warn"},
  "client": {"insecure": true},
  "http_api": {"key": "k"},
  "health": {"enabled": true},
  "channel": {"namespaces": [{"name": "bench", "allow_subscribe_for_client": true}]}
}
EOF

start() { # start [wrapper...]: rotor on SERVER_CPU, waits for /health (up to 60 s)
    taskset -c "$SERVER_CPU" "$@" "$tmp/rotor" -c "$tmp/rotor.json" >"$tmp/rotor.log" 2>&1 &
    rotor_pid=$!
    for _ in $(seq 600); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/health" && return 0
        sleep 0.1
    done
    echo "rotor did not start" >&2
    exit 1
}
stop() { # strace does not pass SIGTERM on: signal its tracee (rotor) directly
    local child
    child=$(pgrep -P "$rotor_pid" || true)
    kill -TERM ${child:-$rotor_pid}
    wait "$rotor_pid" || true
    rotor_pid=
}
load() { # load PID: the fan-out, prints deliveries
    taskset -c "$LOADGEN_CPU" "$loadgen" -p "$port" -K k -n "$SUBS" -c 1 -R "$PUBS" -d "$DUR" \
        -D 5 -r 1000 -P "$1" 2>/dev/null | awk -F= '$1 == "deliveries" { print $2 }'
}
ctxt() { # ctxt PID: voluntary+involuntary switches summed over threads, "name=count" per thread
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s=%s ' "$(cat "$t/comm")" \
            "$(awk '/ctxt_switches/ { s += $2 } END { print s }' "$t/status")"
    done
}

echo "== 1. wakeups ($SUBS subscribers x $PUBS/s for ${DUR}s, JSON)"
start
before=$(ctxt "$rotor_pid")
d=$(load "$rotor_pid")
after=$(ctxt "$rotor_pid")
echo "deliveries $d; publications $((PUBS * DUR))"
echo "context switches per thread before: $before"
echo "context switches per thread after:  $after"
stop

echo "== 2. syscalls (strace -f -c)"
start strace -f -c -o "$tmp/strace.txt"
d=$(load "$rotor_pid")
stop
echo "deliveries $d"
head -n 25 "$tmp/strace.txt"
awk -v d="$d" 'NR > 2 && $NF != "total" && $4 ~ /^[0-9]+$/ { printf "  %-14s %8.4f per delivery\n", $NF, $4 / d }' \
    "$tmp/strace.txt" | sort -k2 -nr | head -n 8

echo "== 3. callgrind"
start valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out" --dump-instr=no
sleep 1
d=$(load "$rotor_pid")
stop
echo "deliveries $d"
callgrind_annotate "$tmp/callgrind.out" 2>/dev/null | head -n 40
echo "-- inclusive"
callgrind_annotate --inclusive=yes "$tmp/callgrind.out" 2>/dev/null | sed -n '1,45p' | tail -n 28
tot=$(callgrind_annotate "$tmp/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
[[ -z $tot || -z $d || $d == 0 ]] || echo "instructions per delivery (whole process, setup included): $((tot / d))"

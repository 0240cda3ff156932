#!/usr/bin/env bash
# Memory per idle WebSocket connection: starts rotor on a free loopback port, reads its RSS,
# opens N connections with bench_wsclients (each connected in insecure mode and subscribed
# to one of 100 channels bench:0..99), reads RSS again and prints
# (loaded - baseline) / N bytes per connection.
#
# Usage: tests/bench/idle_rss.sh [N]          N connections, 1..15000 [10000]
# Environment:
#   ROTOR_BIN  rotor binary [build-bench/rotor, built with CMake RelWithDebInfo if missing]
#   WSCLIENTS  client binary [build-bench/tests/bench/bench_wsclients if built, else compiled
#              into the temp dir with: cc -O2 -o "$tmp/wsclients" tests/bench/wsclients.c]
#   HOLD       seconds the client holds the connections once all are subscribed [40]; the
#              default spans a full ping cycle (25 s interval + 8 s pong timeout), so a client
#              that lost its pongs would be gone by the steady sample
#   RATE       new connections per second [2000]
#   SETTLE     seconds between the last subscribe and the loaded sample [2]
#
# Samples: baseline (after /health answers, before any client), loaded (SETTLE s after the
# client printed READY), steady (5 s before the hold ends, after at least one server ping
# per connection). RSS is VmRSS from /proc/<pid>/status: user-space memory only; kernel
# socket buffers are not in it. RssAnon (heap, stacks) is printed too: VmRSS also counts
# file pages of the binary and libraries, which grow a little as new code paths run. Prints nothing else and stops everything at the end.
set -euo pipefail

N=${1:-10000}
HOLD=${HOLD:-40}
RATE=${RATE:-2000}
SETTLE=${SETTLE:-2}
if ! [[ $N =~ ^[0-9]+$ ]] || ((N < 1 || N > 15000)); then
    echo "usage: $0 [N]  (1 <= N <= 15000)" >&2
    exit 2
fi
if ! [[ $HOLD =~ ^[0-9]+$ ]] || ((HOLD < SETTLE + 6 || HOLD > 120)); then
    echo "HOLD must be $((SETTLE + 6))..120 seconds" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/rotor-bench.XXXXXX)
rotor_pid=
client_pid=

cleanup() {
    if [[ -n $client_pid ]] && kill -0 "$client_pid" 2>/dev/null; then
        kill -TERM "$client_pid" 2>/dev/null || true
        wait "$client_pid" 2>/dev/null || true
    fi
    if [[ -n $rotor_pid ]] && kill -0 "$rotor_pid" 2>/dev/null; then
        kill -TERM "$rotor_pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$rotor_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$rotor_pid" 2>/dev/null || true
        wait "$rotor_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "idle_rss: $*" >&2
    if [[ -s $tmp/rotor.log ]]; then
        echo "--- rotor log (last 20 lines)" >&2
        tail -n 20 "$tmp/rotor.log" >&2
    fi
    if [[ -s $tmp/client.out ]]; then
        echo "--- client output (last 10 lines)" >&2
        tail -n 10 "$tmp/client.out" >&2
    fi
    exit 1
}

# --- binaries
rotor=${ROTOR_BIN:-$repo/build-bench/rotor}
if [[ ! -x $rotor ]]; then
    [[ -z ${ROTOR_BIN:-} ]] || die "ROTOR_BIN=$ROTOR_BIN is not executable"
    echo "building rotor in $repo/build-bench (RelWithDebInfo)"
    cmake -S "$repo" -B "$repo/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$repo/build-bench" --target rotor -j2 >/dev/null
fi
client=${WSCLIENTS:-$repo/build-bench/tests/bench/bench_wsclients}
if [[ ! -x $client ]]; then
    [[ -z ${WSCLIENTS:-} ]] || die "WSCLIENTS=$WSCLIENTS is not executable"
    client=$tmp/wsclients
    cc -O2 -o "$client" "$here/wsclients.c" || die "cannot compile wsclients.c"
fi

# --- a free port below the ephemeral range, so the client's own sockets cannot take it
port=
for _ in $(seq 50); do
    p=$((20000 + RANDOM % 10000))
    if ! ss -Htln "sport = :$p" | grep -q .; then
        port=$p
        break
    fi
done
[[ -n $port ]] || die "no free port found"

cat >"$tmp/config.json" <<EOF
{
  "http_server": {"address": "127.0.0.1", "port": $port},
  "workers": 2,
  "log": {"level": "warn"},
  "client": {"insecure": true},
  "health": {"enabled": true},
  "prometheus": {"enabled": true},
  "channel": {"namespaces": [{"name": "bench", "allow_subscribe_for_client": true}]}
}
EOF

status_kib() { # status_kib FIELD -> value in KiB from /proc/<rotor>/status
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$rotor_pid/status"
}
num_clients() {
    curl -sf "http://127.0.0.1:$port/metrics" | awk '$1 == "centrifugo_node_num_clients" { print $2 }'
}

# --- rotor
"$rotor" -c "$tmp/config.json" >"$tmp/rotor.log" 2>&1 &
rotor_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$rotor_pid" 2>/dev/null || die "rotor exited at start"
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || die "rotor /health did not answer"
sleep 1
base_rss=$(status_kib VmRSS)
base_anon=$(status_kib RssAnon)

# --- clients
"$client" -p "$port" -n "$N" -t "$HOLD" -r "$RATE" >"$tmp/client.out" 2>"$tmp/client.err" &
client_pid=$!
setup_limit=$((N / RATE + 40))
start=$SECONDS
until grep -q '^READY' "$tmp/client.out"; do
    kill -0 "$client_pid" 2>/dev/null || die "client exited before all connections subscribed: $(cat "$tmp/client.err")"
    ((SECONDS - start < setup_limit)) || die "not all connections subscribed within ${setup_limit}s"
    sleep 0.2
done
sleep "$SETTLE"
load_rss=$(status_kib VmRSS)
load_hwm=$(status_kib VmHWM)
load_anon=$(status_kib RssAnon)
load_clients=$(num_clients)

sleep $((HOLD - SETTLE - 5))
steady_rss=$(status_kib VmRSS)
steady_clients=$(num_clients)

# --- stop: the client exits by itself at the end of the hold, then rotor gets SIGTERM
client_rc=0
wait "$client_pid" || client_rc=$?
client_pid=
kill -TERM "$rotor_pid"
rotor_rc=0
wait "$rotor_pid" || rotor_rc=$?
rotor_pid=

per_conn=$(((load_rss - base_rss) * 1024 / N))
anon_per_conn=$(((load_anon - base_anon) * 1024 / N))
steady_per_conn=$(((steady_rss - base_rss) * 1024 / N))
echo "machine          nproc=$(nproc) mem=$(free -h | awk '/^Mem:/ { print $2 }') kernel=$(uname -r)"
echo "rotor            $("$rotor" version 2>/dev/null | head -n 1) binary=$rotor workers=2"
echo "client           $(grep '^READY' "$tmp/client.out")"
echo "client           $(grep '^DONE' "$tmp/client.out" || echo 'no DONE line')"
echo "connections      $N"
echo "baseline_rss     $base_rss KiB   (RssAnon $base_anon KiB)"
echo "loaded_rss       $load_rss KiB   (RssAnon $load_anon KiB, VmHWM $load_hwm KiB, ${SETTLE}s after READY)"
echo "steady_rss       $steady_rss KiB   ($((HOLD - 5))s after READY)"
echo "bytes_per_conn   $per_conn   (loaded - baseline) / N"
echo "anon_per_conn    $anon_per_conn   (loaded - baseline RssAnon) / N: heap and stacks only"
echo "steady_per_conn  $steady_per_conn   (steady - baseline) / N"
echo "num_clients      $load_clients loaded, $steady_clients steady (centrifugo_node_num_clients)"
echo "exit             client=$client_rc rotor=$rotor_rc"
if grep -v -e 'open files limit is' -e 'no http_api.key configured' "$tmp/rotor.log" | grep -q .; then
    echo "--- rotor log (warn and above, start-up notices filtered out)"
    grep -v -e 'open files limit is' -e 'no http_api.key configured' "$tmp/rotor.log" | head -n 40
fi
if [[ -s $tmp/client.err ]]; then
    echo "--- client stderr"
    head -n 20 "$tmp/client.err"
fi
((client_rc == 0 && rotor_rc == 0 && load_clients == N && steady_clients == N))

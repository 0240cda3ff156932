#!/usr/bin/env bash
# The Redis commands one rotor node sends per client action: starts redis-server (free
# loopback port, no persistence) with `redis-cli MONITOR` attached, then one rotor node
# (engine redis, namespace "hist" with history 100 / 300s, presence and allow_positioning,
# namespace "plain" without either), runs redis_commands_client.mjs (one WebSocket client:
# connect, positioned subscribe, API publish with and without history, unsubscribe +
# subscribe with recovery, disconnect, then a second client that stays subscribed while rotor
# is stopped with SIGTERM). The client sends
# `ECHO phase:<name>` to Redis before each action, which splits the MONITOR log into phases.
#
# Prints per phase the commands in order, as `+ms [conn] COMMAND args` (ms since the phase
# marker): conn is "pubsub" (the connection that sent SUBSCRIBE), "presence" (a command
# connection that ran presence scripts), "cmd" (any other command connection) or "lua" (run
# inside a script, listed under the EVAL/EVALSHA that ran it). Long arguments are cut to 48 bytes of MONITOR's escaped form with
# their length appended. Periodic traffic is background and is listed separately (counted
# per phase, not mixed into the phase lists): PUBLISH rotor.control carrying a "node"
# command (node heartbeat, every 3 s; other control commands stay in their phase), PING (connection health checks) and PSUBSCRIBE __rds_probe__ (PUB/SUB connection
# liveness probe).
#
# Usage: tests/bench/redis_commands.sh
# Environment: ROTOR_BIN [build-pbench/rotor, built with CMake RelWithDebInfo if missing].
# Needs redis-server, redis-cli, node (the ws package from tests/integration/node_modules;
# run `npm ci` in tests/integration if it is missing). Only 127.0.0.1 is used.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/rotor-rcmds.XXXXXX)
API_KEY=bench-api-key
redis_pid=
monitor_pid=
rotor_pid=
client_pid=

stop_pid() { # stop_pid PID: SIGTERM, up to 10 s, then SIGKILL
    local pid=$1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$client_pid"
    stop_pid "$rotor_pid"
    stop_pid "$monitor_pid"
    stop_pid "$redis_pid"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "redis_commands: $*" >&2
    if [[ -s $tmp/rotor.log ]]; then
        echo "--- rotor log (last 20 lines)" >&2
        tail -n 20 "$tmp/rotor.log" >&2
    fi
    exit 1
}

rotor=${ROTOR_BIN:-$repo/build-pbench/rotor}
if [[ ! -x $rotor ]]; then
    [[ -z ${ROTOR_BIN:-} ]] || die "ROTOR_BIN=$ROTOR_BIN is not executable"
    echo "building rotor in $repo/build-pbench (RelWithDebInfo)"
    cmake -S "$repo" -B "$repo/build-pbench" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$repo/build-pbench" --target rotor -j2 >/dev/null
fi
[[ -d $repo/tests/integration/node_modules/ws ]] ||
    die "tests/integration/node_modules/ws missing (run npm ci in tests/integration)"

free_port() { # a free port below the ephemeral range; $1 is excluded
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 10000))
        [[ $p != "${1:-}" ]] || continue
        if ! ss -Htln "sport = :$p" | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

redis_port=$(free_port) || die "no free port found"
rotor_port=$(free_port "$redis_port") || die "no free port found"
(cd "$tmp" && exec redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
    --appendonly no --daemonize no >"$tmp/redis.log" 2>&1) &
redis_pid=$!
for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG || die "redis-server did not start"

redis-cli -p "$redis_port" monitor >"$tmp/monitor.log" 2>&1 &
monitor_pid=$!
for _ in $(seq 50); do
    redis-cli -p "$redis_port" ECHO phase:startup >/dev/null
    grep -q 'phase:startup' "$tmp/monitor.log" && break
    sleep 0.1
done
grep -q 'phase:startup' "$tmp/monitor.log" || die "MONITOR did not attach"

cat >"$tmp/config.json" <<EOF
{
  "http_server": {"address": "127.0.0.1", "port": $rotor_port},
  "workers": 2,
  "log": {"level": "warn"},
  "client": {"insecure": true},
  "http_api": {"key": "$API_KEY"},
  "health": {"enabled": true},
  "engine": {"type": "redis", "redis": {"address": "127.0.0.1:$redis_port"}},
  "channel": {"namespaces": [
    {"name": "hist", "allow_subscribe_for_client": true, "history_size": 100,
     "history_ttl": "300s", "presence": true, "allow_positioning": true, "allow_recovery": true},
    {"name": "plain", "allow_subscribe_for_client": true}
  ]}
}
EOF
"$rotor" -c "$tmp/config.json" >"$tmp/rotor.log" 2>&1 &
rotor_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$rotor_port/ready" >/dev/null 2>&1 && break
    kill -0 "$rotor_pid" 2>/dev/null || die "rotor exited at start"
    sleep 0.1
done
curl -sf "http://127.0.0.1:$rotor_port/ready" >/dev/null || die "rotor /ready did not answer"
sleep 0.5

node "$here/redis_commands_client.mjs" "$rotor_port" "$redis_port" "$API_KEY" >"$tmp/client.out" &
client_pid=$!
start=$SECONDS
until grep -q '^HOLDING' "$tmp/client.out"; do
    kill -0 "$client_pid" 2>/dev/null || die "client failed: $(cat "$tmp/client.out")"
    ((SECONDS - start < 30)) || die "client did not reach HOLDING in 30 s"
    sleep 0.1
done
sleep 0.2
kill -TERM "$rotor_pid"
rotor_rc=0
wait "$rotor_pid" || rotor_rc=$?
rotor_pid=
client_rc=0
wait "$client_pid" || client_rc=$?
client_pid=
((client_rc == 0)) || die "client failed: $(cat "$tmp/client.out")"
sleep 0.3
redis-cli -p "$redis_port" ECHO phase:end >/dev/null
for _ in $(seq 20); do
    grep -q 'phase:end' "$tmp/monitor.log" && break
    sleep 0.1
done
stop_pid "$monitor_pid"
monitor_pid=

echo "redis    $(redis-server --version | awk '{ print $3 }') port=$redis_port; $("$rotor" version 2>/dev/null | head -n 1)"
echo "--- client"
grep -v '^HOLDING' "$tmp/client.out"

# MONITOR lines: <ts> [<db> <addr>|lua] "CMD" "arg" ... ; the redis-cli markers and probes
# (ECHO, and the MONITOR connection itself) come from redis-cli's own address.
cli_addrs=$(awk '/"ECHO" "phase:/ { print $3 }' "$tmp/monitor.log" | tr -d ']' | sort -u | tr '\n' ' ')
pubsub_addrs=$(awk '/"SUBSCRIBE"|"subscribe"/ && !/lua\]/ { print $3 }' "$tmp/monitor.log" | tr -d ']' | sort -u | tr '\n' ' ')
pres_addrs=$(awk '/"rotor\.presence\./ && !/lua\]/ { print $3 }' "$tmp/monitor.log" | tr -d ']' | sort -u | tr '\n' ' ')
awk -v cli="$cli_addrs" -v ps="$pubsub_addrs" -v pr="$pres_addrs" '
function shorten(a,    n) {
    n = length(a)
    if (n <= 50) return a
    return substr(a, 1, 48) "...\"(" n - 2 "b)"
}
BEGIN {
    ncli = split(cli, t, " "); for (i = 1; i <= ncli; i++) iscli[t[i]] = 1
    nps = split(ps, t, " "); for (i = 1; i <= nps; i++) isps[t[i]] = 1
    npr = split(pr, t, " "); for (i = 1; i <= npr; i++) ispr[t[i]] = 1
    phase = "before-startup"; order[++np] = phase
}
/^[0-9.]+ \[/ {
    line = $0
    ts = $1 + 0
    sub(/^[0-9.]+ \[/, "", line)
    hdr = substr(line, 1, index(line, "]") - 1)
    rest = substr(line, index(line, "]") + 2)
    if (hdr ~ /lua/) conn = "lua"
    else {
        split(hdr, h, " ")
        addr = h[2]
        if (addr in iscli) conn = "cli"
        else if (addr in isps) conn = "pubsub"
        else if (addr in ispr) conn = "presence"
        else conn = "cmd"
    }
    # split the quoted arguments
    out = ""; cmd = ""; first = ""; second = ""; n = 0
    while (match(rest, /"([^"\\]|\\.)*"/)) {
        a = substr(rest, RSTART, RLENGTH)
        rest = substr(rest, RSTART + RLENGTH)
        n++
        if (n == 1) { cmd = toupper(substr(a, 2, length(a) - 2)); out = cmd; continue }
        if (n == 2) first = substr(a, 2, length(a) - 2)
        if (n == 3) second = a
        out = out " " shorten(a)
    }
    if (cmd == "ECHO" && first ~ /^phase:/) {
        phase = substr(first, 7); order[++np] = phase; t0 = ts; next
    }
    if (conn == "cli") next
    # A control PUBLISH is background only when it is the periodic "node" announcement.
    if (cmd == "PING" || (cmd == "PUBLISH" && first ~ /\.control$/ && index(second, "\\xa4node")) ||
        (cmd == "PSUBSCRIBE" && first == "__rds_probe__")) {
        bg[phase] = bg[phase] + 1
        bgkind["[" conn "] " (cmd == "PING" ? cmd : cmd " " first)] += 1
        next
    }
    cnt[phase] = cnt[phase] + 1
    lines[phase, cnt[phase]] = sprintf("%+6.0fms %s[%s] %s", (ts - t0) * 1000,
                                       conn == "lua" ? "    " : "", conn, out)
    if (conn != "lua") top[phase] = top[phase] + 1
}
END {
    for (i = 1; i <= np; i++) {
        p = order[i]
        if (p == "end" || (p == "before-startup" && cnt[p] + bg[p] == 0)) continue
        printf "\n=== %s: %d commands (%d sent by rotor, %d inside Lua); background %d\n", p, cnt[p] + 0, top[p] + 0, cnt[p] - top[p], bg[p] + 0
        for (j = 1; j <= cnt[p]; j++) print "  " lines[p, j]
    }
    printf "\n=== background (all phases, not listed above)\n"
    for (k in bgkind) printf "  %5d  %s\n", bgkind[k], k
}' "$tmp/monitor.log"
echo
echo "exit     rotor=$rotor_rc"
if grep -v -e 'open files limit is' -e 'broker not ready' "$tmp/rotor.log" | grep -q .; then
    echo "--- rotor log (warn and above, start-up notices filtered out)"
    grep -v -e 'open files limit is' -e 'broker not ready' "$tmp/rotor.log" | head -n 20
fi
((rotor_rc == 0))

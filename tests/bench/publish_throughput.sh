#!/usr/bin/env bash
# Server API publish throughput through one rotor node, Redis engine against memory engine.
#
# Starts redis-server (free loopback port, no persistence) and, per engine, one rotor node
# (2 workers, log warn, http_api.key, namespace "bench" with history_size 100 / history_ttl
# 300s, namespace "plain" without history). wrk then drives POST /api/publish over C
# keep-alive connections for DURATION seconds per run, channels rotating over 100 names:
#   a  plain:<i>   no history (Redis: one PUBLISH)
#   b  bench:<i>   with history (Redis: the history Lua script, XADD + PUBLISH)
#   c  bench:<i>   with history and SUBS WebSocket subscribers (bench_wsclients, connection
#                  j subscribed to bench:<j % 100>), so every publication is delivered to
#                  SUBS/100 clients
# For each run: requests/s, p50/p99 latency, errors (non-200 replies, 200 replies carrying
# an API error, socket errors and timeouts), messages delivered to clients per second
# (delta of centrifugo_transport_messages_sent, read 1 s after the load stops so queued
# deliveries count) and its ratio to the expected publishes x SUBS/100, Redis commands per
# publish (delta of INFO commandstats; commands run inside Lua scripts are counted too), and
# CPU as a share of one core over the run: rotor (whole process, and per thread: main =
# engine loop, then the two workers), redis-server, wrk, the subscriber client, softirq
# (loopback TCP; partly also charged to the processes, so the columns do not add up) and the
# whole machine (nproc x 100% = saturated). Taken from /proc/<pid>/stat
# and /proc/stat deltas; `ps -o %cpu` would give lifetime averages instead.
#
# Usage: tests/bench/publish_throughput.sh
# Environment:
#   ROTOR_BIN   rotor binary [build-pbench/rotor, built with CMake RelWithDebInfo if missing]
#   WSCLIENTS   client binary [build-pbench/tests/bench/bench_wsclients if built, else
#               compiled into the temp dir from tests/bench/wsclients.c]
#   DURATION    seconds of load per run, 5..25 [20]; with setup and drain a run stays < 30 s
#   CONNS       concurrent connections (= requests in flight) per run ["16 64"]
#   ENGINES     ["memory redis"]
#   SCENARIOS   ["a b c"]
#   SUBS        WebSocket subscribers in scenario c, 100..15000 [1000]
#   THREADS     wrk threads [2]
# Needs wrk (Debian: apt-get install -y wrk), redis-server, curl. Only 127.0.0.1 is used;
# everything it starts is stopped at the end, the temp directory is removed.
set -euo pipefail

DURATION=${DURATION:-20}
CONNS=${CONNS:-"16 64"}
ENGINES=${ENGINES:-"memory redis"}
SCENARIOS=${SCENARIOS:-"a b c"}
SUBS=${SUBS:-1000}
THREADS=${THREADS:-2}
API_KEY=bench-api-key
WARMUP=2
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 5 || DURATION > 25)); then
    echo "DURATION must be 5..25 seconds" >&2
    exit 2
fi
if ! [[ $SUBS =~ ^[0-9]+$ ]] || ((SUBS < 100 || SUBS > 15000)); then
    echo "SUBS must be 100..15000" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/rotor-pbench.XXXXXX)
redis_pid=
rotor_pid=
client_pid=
wrk_pid=

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
    stop_pid "$wrk_pid"
    stop_pid "$client_pid"
    stop_pid "$rotor_pid"
    stop_pid "$redis_pid"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "publish_throughput: $*" >&2
    if [[ -s $tmp/rotor.log ]]; then
        echo "--- rotor log (last 20 lines)" >&2
        tail -n 20 "$tmp/rotor.log" >&2
    fi
    exit 1
}

# --- tools and binaries
command -v wrk >/dev/null || die "wrk not found (Debian: apt-get install -y wrk)"
command -v redis-server >/dev/null || die "redis-server not found"
rotor=${ROTOR_BIN:-$repo/build-pbench/rotor}
if [[ ! -x $rotor ]]; then
    [[ -z ${ROTOR_BIN:-} ]] || die "ROTOR_BIN=$ROTOR_BIN is not executable"
    echo "building rotor in $repo/build-pbench (RelWithDebInfo)"
    cmake -S "$repo" -B "$repo/build-pbench" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$repo/build-pbench" --target rotor -j2 >/dev/null
fi
client=${WSCLIENTS:-$repo/build-pbench/tests/bench/bench_wsclients}
if [[ ! -x $client ]]; then
    [[ -z ${WSCLIENTS:-} ]] || die "WSCLIENTS=$WSCLIENTS is not executable"
    client=$tmp/wsclients
    cc -O2 -o "$client" "$here/wsclients.c" || die "cannot compile wsclients.c"
fi

# A free port below the ephemeral range, so client sockets cannot take it; $1 is excluded.
free_port() {
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

# --- Redis
redis_port=$(free_port) || die "no free port found"
(cd "$tmp" && exec redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
    --appendonly no --daemonize no >"$tmp/redis.log" 2>&1) &
redis_pid=$!
for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG || die "redis-server did not start"

# --- measurement helpers
proc_ticks() { # proc_ticks PID -> utime+stime (clock ticks) of the process or thread
    sed 's/^.*) //' "$1" | awk '{ print $12 + $13 }'
}
thread_ticks() { # thread_ticks PID -> "tid:ticks ..." for every thread, main thread first
    local t out=""
    for t in $(ls "/proc/$1/task" | sort -n); do
        out+="$t:$(proc_ticks "/proc/$1/task/$t/stat") "
    done
    echo "$out"
}
machine_ticks() { # -> "busy softirq total" (clock ticks, all CPUs) from /proc/stat
    awk '/^cpu / { total = 0; for (i = 2; i <= 9; i++) total += $i; print total - $5 - $6, $8, total }' /proc/stat
}

metric_sum() { # metric_sum NAME -> sum of all series of a counter on /metrics
    curl -sf "http://127.0.0.1:$rotor_port/metrics" |
        awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%d\n", s }'
}
redis_cmdstats() { # -> "cmd calls" lines from INFO commandstats
    redis-cli -p "$redis_port" info commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' | sort
}
hz=$(getconf CLK_TCK)

start_rotor() { # start_rotor ENGINE
    local engine_json=""
    rotor_port=$(free_port "$redis_port") || die "no free port found"
    if [[ $1 == redis ]]; then
        engine_json="\"engine\": {\"type\": \"redis\", \"redis\": {\"address\": \"127.0.0.1:$redis_port\"}},"
    fi
    cat >"$tmp/config-$1.json" <<EOF
{
  "http_server": {"address": "127.0.0.1", "port": $rotor_port},
  "workers": 2,
  "log": {"level": "warn"},
  "client": {"insecure": true},
  "http_api": {"key": "$API_KEY"},
  "health": {"enabled": true},
  "prometheus": {"enabled": true},
  $engine_json
  "channel": {"namespaces": [
    {"name": "bench", "allow_subscribe_for_client": true, "history_size": 100, "history_ttl": "300s"},
    {"name": "plain", "allow_subscribe_for_client": true}
  ]}
}
EOF
    "$rotor" -c "$tmp/config-$1.json" >"$tmp/rotor.log" 2>&1 &
    rotor_pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$rotor_port/health" >/dev/null 2>&1 && break
        kill -0 "$rotor_pid" 2>/dev/null || die "rotor exited at start"
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$rotor_port/health" >/dev/null || die "rotor /health did not answer"
    # /ready turns green once the Redis connections are up; publishing before that fails.
    for _ in $(seq 50); do
        curl -sf "http://127.0.0.1:$rotor_port/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -sf -H "X-API-Key: $API_KEY" -d '{"channel":"bench:0","data":{}}' \
        "http://127.0.0.1:$rotor_port/api/publish" | grep -q '"result"' ||
        die "first publish through $1 engine failed"
}

stop_rotor() {
    kill -TERM "$rotor_pid"
    local rc=0
    wait "$rotor_pid" || rc=$?
    rotor_pid=
    rotor_rc+=" $engine=$rc"
    if grep -v -e 'open files limit is' -e 'broker not ready' "$tmp/rotor.log" | grep -q .; then
        echo "--- rotor log, $engine engine (warn and above, start-up notices filtered out)"
        grep -v -e 'open files limit is' -e 'broker not ready' "$tmp/rotor.log" | head -n 20
    fi
}

# run_wrk NS CONNS SECONDS OUTFILE: runs wrk and sets wrk_ticks to its CPU time, read from
# /proc every 0.1 s while it runs (the last read, at most 0.1 s before it exits, counts).
run_wrk() {
    NS=$1 API_KEY=$API_KEY CHANNELS=100 wrk -t "$THREADS" -c "$2" -d "${3}s" --timeout 5s \
        -s "$here/publish.lua" "http://127.0.0.1:$rotor_port/" >"$4" 2>&1 &
    wrk_pid=$!
    wrk_ticks=0
    local st
    while st=$(sed 's/^.*) //' "/proc/$wrk_pid/stat" 2>/dev/null | awk '{ print $1, $12 + $13 }'); do
        [[ -n $st ]] || break
        wrk_ticks=${st#* }
        [[ ${st%% *} != Z ]] || break
        sleep 0.1
    done
    wait "$wrk_pid" || die "wrk failed: $(cat "$4")"
    wrk_pid=
}

field() { # field NAME LINE -> value of NAME=value
    sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"
}

# One measured run; appends a row to $tmp/rows.
run_one() { # run_one ENGINE SCENARIO CONNS
    local engine=$1 scen=$2 conns=$3 ns=plain subs=0
    [[ $scen == a ]] || ns=bench
    if [[ $scen == c ]]; then
        subs=$SUBS
        "$client" -p "$rotor_port" -n "$SUBS" -t $((DURATION + 3)) -r 5000 \
            >"$tmp/client.out" 2>"$tmp/client.err" &
        client_pid=$!
        local start=$SECONDS
        until grep -q '^READY' "$tmp/client.out"; do
            kill -0 "$client_pid" 2>/dev/null || die "client exited early: $(cat "$tmp/client.err")"
            ((SECONDS - start < 15)) || die "subscribers not ready within 15 s"
            sleep 0.1
        done
        sleep 0.5
    fi

    local sent0 m0 r0 t0 c0=0
    sent0=$(metric_sum centrifugo_transport_messages_sent)
    [[ $engine == redis ]] && redis_cmdstats >"$tmp/cmd0"
    m0=$(machine_ticks)
    r0=$(thread_ticks "$rotor_pid")
    t0=$(proc_ticks "/proc/$redis_pid/stat")
    [[ -z $client_pid ]] || c0=$(proc_ticks "/proc/$client_pid/stat")

    run_wrk "$ns" "$conns" "$DURATION" "$tmp/wrk.out"

    local m1 r1 t1 c1=0
    m1=$(machine_ticks)
    r1=$(thread_ticks "$rotor_pid")
    t1=$(proc_ticks "/proc/$redis_pid/stat")
    [[ -z $client_pid ]] || c1=$(proc_ticks "/proc/$client_pid/stat")
    # Deliveries still queued when wrk stops belong to this run: let them drain.
    sleep 1
    local sent1
    sent1=$(metric_sum centrifugo_transport_messages_sent)
    [[ $engine == redis ]] && redis_cmdstats >"$tmp/cmd1"

    local line
    line=$(grep '^RESULT' "$tmp/wrk.out") || die "no RESULT from wrk: $(cat "$tmp/wrk.out")"
    local req dur rps p50 p99 ok errs
    req=$(field requests "$line")
    dur=$(field duration_s "$line")
    rps=$(field rps "$line")
    p50=$(field p50_ms "$line")
    p99=$(field p99_ms "$line")
    ok=$(field ok "$line")
    errs=$(($(field bad_status "$line") + $(field api_errors "$line") + $(field connect_err "$line") +
        $(field read_err "$line") + $(field write_err "$line") + $(field timeouts "$line")))

    # Shares of one core over the run; the run length comes from /proc/stat itself.
    local m0a=($m0) m1a=($m1) secs
    secs=$(awk -v d=$((m1a[2] - m0a[2])) -v n="$(nproc)" -v hz="$hz" 'BEGIN { print d / n / hz }')
    pct() { awk -v d="$1" -v s="$secs" -v hz="$hz" 'BEGIN { printf "%.0f%%", 100 * d / hz / s }'; }
    local cpu_machine cpu_softirq cpu_rotor cpu_threads="" cpu_redis cpu_wrk cpu_client="-"
    cpu_machine=$(pct $((m1a[0] - m0a[0])))
    cpu_softirq=$(pct $((m1a[1] - m0a[1])))
    local tot=0 x tid before after
    for x in $r1; do
        tid=${x%%:*}
        after=${x#*:}
        before=$(tr ' ' '\n' <<<"$r0" | sed -n "s/^$tid://p")
        before=${before:-0}
        cpu_threads+="$(pct $((after - before)) | tr -d %)/"
        tot=$((tot + after - before))
    done
    cpu_threads=${cpu_threads%/}
    cpu_rotor=$(pct "$tot")
    cpu_redis=$(pct $((t1 - t0)))
    cpu_wrk=$(pct "$wrk_ticks")
    [[ -z $client_pid ]] || cpu_client=$(pct $((c1 - c0)))

    local delivered="-" expect="-" cmds="-"
    if ((subs > 0)); then
        delivered=$(awk -v d=$((sent1 - sent0)) -v s="$dur" 'BEGIN { printf "%.0f", d / s }')
        expect=$(awk -v d=$((sent1 - sent0)) -v e=$((ok * subs / 100)) \
            'BEGIN { printf "%.3f", e ? d / e : 0 }')
    fi
    if [[ $engine == redis ]]; then
        cmds=$(join -a 2 -e 0 -o 0,1.2,2.2 "$tmp/cmd0" "$tmp/cmd1" |
            awk -v n="$req" '{ d = $3 - $2; if (d >= n / 100) { printf "%s%s=%.2f", sep, $1, d / n; sep = " " } }')
    fi

    local client_done="-"
    if [[ $scen == c ]]; then
        local crc=0
        wait "$client_pid" || crc=$?
        client_pid=
        client_done=$(grep '^DONE' "$tmp/client.out" | awk '{ print $2 }')
        [[ $crc == 0 ]] || client_done="failed(rc=$crc)"
        grep '^DONE' "$tmp/client.out" | sed "s/^/client $engine $scen c=$conns: /" >>"$tmp/clients"
    fi
    printf '| %-6s | %s | %3d | %8s | %7s | %7s | %6d | %9s | %6s | %-4s |\n' \
        "$engine" "$scen" "$conns" "$rps" "$p50" "$p99" "$errs" "$delivered" "$expect" \
        "$client_done" >>"$tmp/rows"
    printf '| %-6s | %s | %3d | %5s (%s) | %5s | %5s | %5s | %7s | %7s | %s |\n' \
        "$engine" "$scen" "$conns" "$cpu_rotor" "$cpu_threads" "$cpu_redis" "$cpu_wrk" "$cpu_client" \
        "$cpu_softirq" "$cpu_machine" "$cmds" >>"$tmp/cpurows"
    echo "done: $engine $scen c=$conns rps=$rps errors=$errs" >&2
}

rotor_rc=""
: >"$tmp/rows"
: >"$tmp/cpurows"
: >"$tmp/clients"
for engine in $ENGINES; do
    [[ $engine == memory || $engine == redis ]] || die "unknown engine $engine"
    start_rotor "$engine"
    # Warm-up (not reported): first-touch allocations, Lua script load, history streams.
    run_wrk bench 16 "$WARMUP" "$tmp/wrk.out"
    run_wrk plain 16 "$WARMUP" "$tmp/wrk.out"
    for scen in $SCENARIOS; do
        for c in $CONNS; do
            run_one "$engine" "$scen" "$c"
        done
    done
    stop_rotor
done

echo "machine  nproc=$(nproc) mem=$(free -h | awk '/^Mem:/ { print $2 }') kernel=$(uname -r) cpu=$(
    awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "rotor    $("$rotor" version 2>/dev/null | head -n 1) binary=$rotor workers=2"
echo "redis    $(redis-server --version | awk '{ print $3 }') port=$redis_port"
echo "load     wrk -t $THREADS -c C -d ${DURATION}s --timeout 5s -s tests/bench/publish.lua; 100 channels; scenario c: $SUBS subscribers"
echo
echo "| engine | s |   C |    req/s | p50 ms  | p99 ms  | errors | deliv/s   | d/exp  | subs |"
echo "|--------|---|----:|---------:|--------:|--------:|-------:|----------:|-------:|------|"
cat "$tmp/rows"
echo
echo "| engine | s |   C | rotor (main/w1/w2) | redis | wrk   | subs  | softirq | machine | redis calls per publish |"
echo "|--------|---|----:|--------------------|------:|------:|------:|--------:|--------:|-------------------------|"
cat "$tmp/cpurows"
if [[ -s $tmp/clients ]]; then
    echo
    cat "$tmp/clients"
fi
echo
echo "exit     rotor:$rotor_rc"
# The overcommit warning is a host setting that only matters for background saves (off).
if grep -v 'Memory overcommit must be enabled' "$tmp/redis.log" | grep -q -e '# WARNING' -e 'rror'; then
    echo "--- redis warnings"
    grep -v 'Memory overcommit must be enabled' "$tmp/redis.log" | grep -e '# WARNING' -e 'rror' | head -n 5
fi

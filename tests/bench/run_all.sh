#!/usr/bin/env bash
# rotor beside Nchan: every scenario of issue 6 against rotor (memory, Redis) and Nchan
# (memory store, Redis store), each run on a freshly started server, then one table with
# rotor, Nchan and the ratio rotor/Nchan for every figure. See README.md here.
#
# Usage: tests/bench/run_all.sh            (about 12 minutes; bounded by MAX_TOTAL_S)
# Environment:
#   ROTOR_BIN   rotor binary [build/rotor]; copied into the temp dir so a rebuild during the
#               run does not change it
#   LOADGEN     bench_loadgen binary [compiled from loadgen.c into the temp dir]
#   SERVER_CPU  core for the server (and redis-server) [0]; LOADGEN_CPU core for the generator [1]
#   TARGETS     subset of "rotor-mem nchan-mem rotor-redis nchan-redis rotor-nagle"; rotor-nagle
#               is rotor-mem with client.tcp_nodelay false (Nchan's WebSocket subscribers run
#               without TCP_NODELAY too)
#   SCENARIOS   subset of "absorb idle1k idle15k fanout1k-100 fanout1k-1000 fanout10k-100
#               fanout1k-100-pb many churn recovery"
#   OUT         directory for the raw outputs [a temp dir, removed at the end unless KEEP=1]
#   MAX_TOTAL_S hard bound for the whole run [1140]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
TARGETS=${TARGETS:-"rotor-mem nchan-mem rotor-redis nchan-redis rotor-nagle"}
SCENARIOS=${SCENARIOS:-"absorb idle1k idle15k fanout1k-100 fanout1k-1000 fanout10k-100 fanout1k-100-pb many churn recovery"}
MAX_TOTAL_S=${MAX_TOTAL_S:-1140}
API_KEY=bench-api-key
tmp=$(mktemp -d /tmp/rotor-benchall.XXXXXX)
OUT=${OUT:-$tmp/out}
mkdir -p "$OUT"
server_pids=()
redis_pid=
t_start=$SECONDS

stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL after 5 s
    local p=$1
    kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
stop_servers() {
    local p
    for p in "${server_pids[@]}"; do stop_pid "$p"; done
    server_pids=()
    [[ -z $redis_pid ]] || stop_pid "$redis_pid"
    redis_pid=
}
cleanup() {
    stop_servers
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "raw outputs kept in $OUT" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() {
    echo "run_all: $*" >&2
    exit 1
}

free_port() { # a free port below the ephemeral range
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 10000))
        ss -Htln "sport = :$p" | grep -q . || {
            echo "$p"
            return 0
        }
    done
    return 1
}
wait_http() { # wait_http URL: up to 10 s
    for _ in $(seq 100); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    return 1
}

# --- binaries
command -v nginx >/dev/null || die "nginx missing (apt-get install libnginx-mod-nchan)"
[[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]] || die "Nchan missing (apt-get install libnginx-mod-nchan)"
command -v redis-server >/dev/null || die "redis-server missing"
src_rotor=${ROTOR_BIN:-$repo/build/rotor}
[[ -x $src_rotor ]] || die "rotor binary $src_rotor not found (cmake --build build)"
cp "$src_rotor" "$tmp/rotor"
rotor=$tmp/rotor
loadgen=${LOADGEN:-}
if [[ -z $loadgen ]]; then
    loadgen=$tmp/loadgen
    cc -O2 -o "$loadgen" "$here/loadgen.c" || die "cannot compile loadgen.c"
fi

# --- servers
start_redis() {
    local port
    port=$(free_port) || die "no free port"
    taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --save "" \
        --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
    redis_pid=$!
    for _ in $(seq 50); do
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
    redis_port=$port
}

# start_rotor mem|redis [nodelay]: sets port and server_pids (workers: 1, pinned with the
# server). nodelay: client.tcp_nodelay [true].
start_rotor() {
    local engine="" nodelay=${2:-true}
    port=$(free_port) || die "no free port"
    if [[ $1 == redis ]]; then
        start_redis
        engine="\"engine\": {\"type\": \"redis\", \"redis\": {\"address\": \"127.0.0.1:$redis_port\"}},"
    fi
    cat >"$tmp/rotor.json" <<EOF
{
  "http_server": {"address": "127.0.0.1", "port": $port},
  "workers": 1,
  "log": {"level": "warn"},
  "client": {"insecure": true, "tcp_nodelay": $nodelay},
  "http_api": {"key": "$API_KEY"},
  "health": {"enabled": true},
  $engine
  "channel": {"namespaces": [
    {"name": "bench", "allow_subscribe_for_client": true},
    {"name": "rec", "allow_subscribe_for_client": true, "history_size": 200,
     "history_ttl": "300s", "force_recovery": true}
  ]}
}
EOF
    taskset -c "$SERVER_CPU" "$rotor" -c "$tmp/rotor.json" >"$tmp/rotor.log" 2>&1 &
    server_pids=($!)
    wait_http "http://127.0.0.1:$port/health" || die "rotor did not start: $(tail -5 "$tmp/rotor.log")"
    [[ $1 != redis ]] || wait_http "http://127.0.0.1:$port/ready" || die "rotor not ready"
    pid_list=${server_pids[0]}
}

# start_nchan mem|redis: nginx master + 1 worker, both in pid_list.
start_nchan() {
    local up="" store="" d=$tmp/nginx
    port=$(free_port) || die "no free port"
    rm -rf "$d" && mkdir -p "$d"
    if [[ $1 == redis ]]; then
        start_redis
        up="    upstream redis_server { nchan_redis_server redis://127.0.0.1:$redis_port; }"
        store="            nchan_redis_pass redis_server;"
    fi
    sed -e "s#@TMP@#$d#g" -e "s#@PORT@#$port#" -e "s#@UPSTREAM@#$up#" -e "s#@STORE@#$store#" \
        "$here/nchan/nchan.conf.in" >"$d/nginx.conf"
    taskset -c "$SERVER_CPU" nginx -c "$d/nginx.conf" -p "$d" >"$d/stdout.log" 2>&1 &
    server_pids=($!)
    wait_http "http://127.0.0.1:$port/health" || die "nginx did not start: $(tail -5 "$d/nginx-error.log")"
    local w
    w=$(pgrep -P "${server_pids[0]}" | tr '\n' ',' | sed 's/,$//')
    pid_list=${server_pids[0]},$w
    # Redis store: the first publish of a channel creates it; give the connection a moment.
    [[ $1 != redis ]] || sleep 1
}

start_target() { # start_target TARGET
    case $1 in
    rotor-mem) start_rotor mem ;;
    rotor-nagle) start_rotor mem false ;;
    rotor-redis) start_rotor redis ;;
    nchan-mem) start_nchan mem ;;
    nchan-redis) start_nchan redis ;;
    esac
}

# scenario_args SCENARIO TARGET -> loadgen arguments (empty: scenario not run for the target)
scenario_args() {
    local wire=json key="-K $API_KEY"
    [[ $2 == nchan-* ]] && wire=nchan && key=""
    case $1 in
    idle1k) echo "-w $wire -n 1000 -r 2000 -c 100 -t 3" ;;
    idle15k) echo "-w $wire -n 15000 -r 3000 -c 100 -t 3" ;;
    fanout1k-100) echo "-w $wire $key -n 1000 -r 2000 -c 1 -R 100 -d 10 -D 3" ;;
    fanout1k-1000) echo "-w $wire $key -n 1000 -r 2000 -c 1 -R 1000 -d 5 -D 10" ;;
    fanout10k-100) echo "-w $wire $key -n 10000 -r 3000 -c 1 -R 100 -d 5 -D 15" ;;
    fanout1k-100-pb) [[ $2 == rotor-* ]] && echo "-w pb $key -n 1000 -r 2000 -c 1 -R 100 -d 10 -D 3" ;;
    many) echo "-w $wire $key -n 10000 -r 3000 -c 1000 -R 2000 -Z -k 8 -d 10 -D 3" ;;
    churn) echo "-w $wire $key -n 1000 -r 1000 -c 100 -R 100 -N 1500 -L 1000 -d 10 -D 3" ;;
    recovery) [[ $2 == rotor-* ]] && echo "-w json $key -x rec: -n 1000 -r 20000 -c 100 -R 5000 -k 8 -y -M 100 -D 1" ;;
    esac
    return 0
}

run_case() { # run_case SCENARIO TARGET
    local args f=$OUT/$2.$1.txt
    args=$(scenario_args "$1" "$2")
    [[ -n $args ]] || return 0
    ((SECONDS - t_start < MAX_TOTAL_S)) || {
        echo "skipped (time bound)" >"$f"
        return 0
    }
    start_target "$2"
    local aux=""
    [[ -z $redis_pid ]] || aux="-Q $redis_pid"
    # shellcheck disable=SC2086
    timeout 120 taskset -c "$LOADGEN_CPU" "$loadgen" -p "$port" -P "$pid_list" $aux $args \
        >"$f" 2>"$f.log" || true
    stop_servers
    printf '%-12s %-16s %s\n' "$2" "$1" "$(grep -E '^(ok|deliv_per_s|lost|lat_p99_us|rss_per_conn_b)=' "$f" | tr '\n' ' ')" >&2
}

run_absorb() { # the generator against a trivial sender: what it absorbs on one core
    local f=$OUT/absorb.txt p
    p=$(free_port) || die "no free port"
    taskset -c "$SERVER_CPU" "$loadgen" -p "$p" -T 400 >"$OUT/absorb-sender.out" 2>/dev/null &
    local spid=$!
    sleep 0.3
    timeout 60 taskset -c "$LOADGEN_CPU" "$loadgen" -p "$p" -w nchan -n 1000 -r 5000 -t 5 \
        >"$f" 2>"$f.log" || true
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    echo "absorb: $(grep -E '^(deliveries|self_cpu_s|window_s)=' "$f" | tr '\n' ' ')" >&2
}

echo "machine: nproc=$(nproc) $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); rotor $("$rotor" version 2>/dev/null | head -n 1); $(nginx -v 2>&1); nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null)" >&2
for s in $SCENARIOS; do
    if [[ $s == absorb ]]; then
        run_absorb
        continue
    fi
    for t in $TARGETS; do run_case "$s" "$t"; done
done
echo "total ${SECONDS}s" >&2
python3 "$here/report.py" "$OUT"

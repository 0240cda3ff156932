#!/usr/bin/env bash
# Connection churn soak (issue 7): 10,000 WebSocket connections opened and closed per second
# for a bounded time (60 s by default) against one rotor, next to 200 steady subscribers
# that receive a steady publication stream. Checks that rotor stays up, that the steady
# subscribers are unaffected (all stayed subscribed, no publication lost or duplicated), and
# that no file descriptor leaks (/proc/<pid>/fd back to its baseline after the churn).
#
# Not part of `make test` (it runs for a minute and loads both cores). Run:
#   tests/soak/churn.sh                      # 60 s at 10,000 connections/s
# Environment:
#   ROTOR_BIN  rotor binary [build/rotor]
#   LOADGEN    load generator [build/tests/bench/bench_loadgen, else compiled from
#              tests/bench/loadgen.c into the temp dir]
#   DURATION   churn seconds, 5..300 [60]
#   RATE       new connections per second, 1..20000 [10000]
#   MIN_RATE   fail when the achieved churn_per_s is below this [90% of RATE]; a 2-core
#              VM shared with other jobs reached 9,749-9,948/s of 10,000 (DURATION=10)
#   LIFETIME   milliseconds each churn connection lives once subscribed [50]
#   SLOTS      concurrent churn connections [2000]
#   PUB_RATE   publications per second to the steady subscribers [200]
#
# Uses bench_loadgen's churn mode (-L/-N): each churn connection does the WebSocket upgrade,
# connect and subscribe, lives LIFETIME ms, is closed by the client and its slot reopened,
# paced by RATE; source addresses rotate over 127.0.0.2..65 so TIME_WAIT does not exhaust
# ephemeral ports. Prints one KEY=VALUE line per figure; exit 0 only if every check held.
set -euo pipefail

DURATION=${DURATION:-60}
RATE=${RATE:-10000}
LIFETIME=${LIFETIME:-50}
SLOTS=${SLOTS:-2000}
PUB_RATE=${PUB_RATE:-200}
STEADY=200
num() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3)); }
num "$DURATION" 5 300 || { echo "DURATION must be 5..300" >&2; exit 2; }
num "$RATE" 1 20000 || { echo "RATE must be 1..20000" >&2; exit 2; }
num "$LIFETIME" 1 10000 || { echo "LIFETIME must be 1..10000 ms" >&2; exit 2; }
num "$SLOTS" 1 15000 || { echo "SLOTS must be 1..15000" >&2; exit 2; }
num "$PUB_RATE" 1 5000 || { echo "PUB_RATE must be 1..5000" >&2; exit 2; }
MIN_RATE=${MIN_RATE:-$((RATE * 9 / 10))}
num "$MIN_RATE" 0 "$RATE" || { echo "MIN_RATE must be 0..RATE ($RATE)" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/rotor-soak.XXXXXX)
rotor_pid=
gen_pid=
sampler_pid=

cleanup() {
    for p in "$sampler_pid" "$gen_pid"; do
        if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
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
    echo "churn: $*" >&2
    [[ -s $tmp/rotor.log ]] && { echo "--- rotor log (last 20 lines)" >&2; tail -n 20 "$tmp/rotor.log" >&2; }
    [[ -s $tmp/gen.err ]] && { echo "--- loadgen stderr (last 10 lines)" >&2; tail -n 10 "$tmp/gen.err" >&2; }
    exit 1
}

rotor=${ROTOR_BIN:-$repo/build/rotor}
[[ -x $rotor ]] || die "rotor binary $rotor not found: build it (make build) or set ROTOR_BIN"
gen=${LOADGEN:-$repo/build/tests/bench/bench_loadgen}
if [[ ! -x $gen ]]; then
    [[ -z ${LOADGEN:-} ]] || die "LOADGEN=$LOADGEN is not executable"
    gen=$tmp/loadgen
    cc -O2 -o "$gen" "$repo/tests/bench/loadgen.c" || die "cannot compile tests/bench/loadgen.c"
fi

port=
for _ in $(seq 50); do
    p=$((20000 + RANDOM % 10000))
    if ! ss -Htln "sport = :$p" | grep -q .; then
        port=$p
        break
    fi
done
[[ -n $port ]] || die "no free port found"
key=soak-api-key
cat >"$tmp/config.json" <<JSON
{
  "http_server": {"address": "127.0.0.1", "port": $port},
  "workers": 2,
  "log": {"level": "warn"},
  "client": {"insecure": true},
  "http_api": {"key": "$key"},
  "health": {"enabled": true},
  "channel": {"namespaces": [{"name": "bench", "allow_subscribe_for_client": true}]}
}
JSON

# ROTOR_BIN is ours, not rotor's (it warns about unknown ROTOR_* variables).
env -u ROTOR_BIN "$rotor" -c "$tmp/config.json" >"$tmp/rotor.log" 2>&1 &
rotor_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$rotor_pid" 2>/dev/null || die "rotor exited at start"
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || die "rotor /health did not answer"
sleep 1
fds() { find "/proc/$rotor_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$rotor_pid/status"; }
base_fds=$(fds)
base_rss=$(rss)

# fd and RSS samples every second while the churn runs: the peak shows it really churned.
(
    while kill -0 "$rotor_pid" 2>/dev/null; do
        echo "$(fds) $(rss)"
        sleep 1
    done
) >"$tmp/samples" &
sampler_pid=$!

# -n steady subscribers on 20 channels, -R publications/s to them for -d seconds, churn
# connections (-L/-N) paced by -r the whole time.
"$gen" -p "$port" -K "$key" -n "$STEADY" -c 20 -R "$PUB_RATE" -d "$DURATION" -D 2 \
    -L "$LIFETIME" -N "$SLOTS" -r "$RATE" -s 64 -P "$rotor_pid" >"$tmp/gen.out" 2>"$tmp/gen.err" &
gen_pid=$!
gen_rc=0
wait "$gen_pid" || gen_rc=$?
gen_pid=
kill -0 "$rotor_pid" 2>/dev/null || die "rotor died during the churn"

# Every churn connection is gone once the server has seen the closes: fds back to baseline.
end_fds=
for _ in $(seq 100); do
    end_fds=$(fds)
    ((end_fds <= base_fds + 2)) && break
    sleep 0.1
done
sleep 2
end_fds=$(fds)
end_rss=$(rss)
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=
health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || echo 000)

get() { awk -F= -v k="$1" '$1 == k { print $2 }' "$tmp/gen.out"; }
peak_fds=$(awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { print m }' "$tmp/samples")
peak_rss=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$tmp/samples")
churn_cycles=$(get churn_cycles)
churn_per_s=$(get churn_per_s)
subscribed=$(get subscribed)
lost=$(get lost)
dup=$(get dup)

echo "machine=nproc $(nproc), kernel $(uname -r)"
echo "duration_s=$DURATION"
echo "target_rate=$RATE"
echo "min_rate=$MIN_RATE"
echo "churn_cycles=$churn_cycles"
echo "churn_per_s=$churn_per_s"
echo "steady_subscribed=$subscribed/$STEADY"
echo "pub_ok=$(get pub_ok) pub_err=$(get pub_err)"
echo "deliveries=$(get deliveries) expected=$(get expected) lost=$lost dup=$dup"
echo "lat_p50_us=$(get lat_p50_us) lat_p99_us=$(get lat_p99_us) lat_max_us=$(get lat_max_us)"
echo "connect_fail=$(get connect_fail) upgrade_fail=$(get upgrade_fail) server_closes=$(get server_closes) resets=$(get resets) reply_errors=$(get reply_errors)"
echo "srv_cpu_s=$(get srv_cpu_s)"
echo "fds_base=$base_fds fds_peak=$peak_fds fds_end=$end_fds"
echo "rss_base_kib=$base_rss rss_peak_kib=$peak_rss rss_end_kib=$end_rss"
echo "health=$health loadgen_rc=$gen_rc"

ok=1
[[ $health == 200 ]] || { echo "FAIL: /health answered $health" >&2; ok=0; }
((gen_rc == 0)) || { echo "FAIL: loadgen exit $gen_rc (a steady subscriber dropped)" >&2; ok=0; }
[[ $subscribed == "$STEADY" ]] || { echo "FAIL: steady subscribers $subscribed/$STEADY" >&2; ok=0; }
[[ $lost == 0 && $dup == 0 ]] || { echo "FAIL: steady subscribers lost $lost, dup $dup" >&2; ok=0; }
((end_fds <= base_fds + 2)) || { echo "FAIL: fd leak: $end_fds open vs $base_fds at the start" >&2; ok=0; }
((peak_fds > base_fds + 100)) || { echo "FAIL: churn did not open connections (peak fds $peak_fds)" >&2; ok=0; }
# churn_per_s is an integer from the loadgen; empty or non-numeric counts as 0.
[[ $churn_per_s =~ ^[0-9]+$ ]] || churn_per_s=0
((churn_per_s >= MIN_RATE)) ||
    { echo "FAIL: churn rate $churn_per_s/s below MIN_RATE $MIN_RATE/s (target $RATE/s)" >&2; ok=0; }
if grep -v -e 'open files limit is' "$tmp/rotor.log" | grep -q .; then
    echo "--- rotor log (warn and above)"
    grep -v -e 'open files limit is' "$tmp/rotor.log" | head -n 20
fi
((ok == 1)) && echo "RESULT=ok" || { echo "RESULT=fail"; exit 1; }

#!/usr/bin/env bash
# Memory per idle connection for every transport: runs tests/bench/idle_transports.mjs, which
# starts a fresh rotor per transport (websocket JSON, websocket Protobuf, http_stream, sse,
# uni_websocket, uni_sse, uni_http_stream, uni_grpc), opens N idle subscribed connections and
# prints (loaded - baseline) / N for VmRSS and RssAnon as one Markdown table. See README.md
# here, section "Memory per idle connection, every transport".
#
# Usage: tests/bench/idle_transports.sh            (builds nothing)
# Environment:
#   ROTOR_BIN   rotor binary [build/rotor]
#   N           connections per transport, 2..15000 [2000]
#   TRANSPORTS  comma list of the transports above [all]
#   RATE        connects per second [1000]; SETTLE seconds before a sample [2]
#   CHANNELS    channels bench:0.. the connections spread over [100]
#   GRPC_STREAMS_PER_CONN  gRPC streams per HTTP/2 connection, 1..100 [50]
#   TRANSPORT_TIMEOUT      seconds per transport [60]
# Needs node >= 20 and the npm packages of tests/integration (npm ci there).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
rotor=${ROTOR_BIN:-$repo/build/rotor}
[[ -x $rotor ]] || { echo "idle_transports: $rotor is not executable (set ROTOR_BIN)" >&2; exit 2; }
rotor=$(cd "$(dirname "$rotor")" && pwd)/$(basename "$rotor")
[[ -d $repo/tests/integration/node_modules/ws ]] ||
    { echo "idle_transports: run npm ci in tests/integration first" >&2; exit 2; }

# N sockets in the client and N in rotor: raise the soft open-files limit to the hard one
# (rotor raises its own too).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ntransports=8
[[ -z ${TRANSPORTS:-} ]] || ntransports=$(tr ',' '\n' <<<"$TRANSPORTS" | grep -c .)
per=${TRANSPORT_TIMEOUT:-60}
limit=$((ntransports * (per + 5) + 15))
echo "load      $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) before the run; open-files limit $(ulimit -n)"
# The script bounds each transport itself; timeout is the backstop (node stops rotor on SIGTERM).
exec timeout --kill-after=15 "$limit" node "$here/idle_transports.mjs" "$rotor"

#!/bin/bash
# The docker-compose cluster for real, on a private Docker engine started by hand.
#
#  1. dockerd with its own exec root and unix socket under a temp dir (its own containerd
#     too), no iptables rules and no default bridge: nothing on the host's firewall or
#     network changes. Compose's own bridge network gives the containers their names
#     (redis, rotor1..3), and ports are published by docker-proxy. Its data root (images
#     and build cache only) is kept in $ROTOR_DOCKER_CACHE/engine so reruns only
#     recompile rotor; one run at a time holds it (flock).
#  2. No registry: a Debian 12 minbase root filesystem from debootstrap (cached as a tar
#     in $ROTOR_DOCKER_CACHE), imported as rotor-test/debian:bookworm; stand-ins for the
#     redis and nginx images are built from it with Debian's packages, and rotor's image
#     from deploy/Dockerfile with both base-image ARGs pointing at it.
#  3. docker-compose.yml (+ compose.test.yml: node ports on loopback) up, client.mjs
#     through nginx, a node stopped with SIGTERM must exit 0, down.
#  4. Everything it started is removed on exit: compose project, containers, networks,
#     dockerd and containerd, mounts, the temp dir; images superseded by this run's.
#     `rm -rf $ROTOR_DOCKER_CACHE` (or ROTOR_DOCKER_FRESH=1) starts from scratch.
#
# Exit: 0 pass, 77 (ctest SKIP_RETURN_CODE) when no Docker engine can be started here,
# anything else is a failure.
# Env: ROTOR_DOCKER_CACHE [${XDG_CACHE_HOME:-$HOME/.cache}/rotor-docker],
#      ROTOR_DOCKER_FRESH=1 (drop the cached engine data root and base tar first),
#      ROTOR_DOCKER_MIRROR [http://deb.debian.org/debian],
#      ROTOR_DOCKER_DEADLINE [720: seconds for everything but the cleanup; ctest's
#      TIMEOUT is above it], ROTOR_DOCKER_KEEP=1 (keep the
#      temp dir and engine for debugging), DOCKERD, DOCKER, DOCKER_COMPOSE (binaries).
set -euo pipefail

SKIP=77
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${ROTOR_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rotor-docker}
MIRROR=${ROTOR_DOCKER_MIRROR:-http://deb.debian.org/debian}
BASE_TAR=$CACHE/debian-bookworm-minbase.tar
DATA_ROOT=$CACHE/engine
BASE_IMAGE=rotor-test/debian:bookworm
ROTOR_IMAGE=rotor-test/rotor:test
REDIS_IMAGE=rotor-test/redis:test
NGINX_IMAGE=rotor-test/nginx:test
PROJECT=rotortest$$
START=$SECONDS
DEADLINE=$((START + ${ROTOR_DOCKER_DEADLINE:-720}))

log() { printf '[docker-test %3ds] %s\n' $((SECONDS - START)) "$*"; }
skip() {
    printf '\n*** SKIP: docker-compose test: %s ***\n\n' "$*" >&2
    exit $SKIP
}
fail() {
    printf '\n*** FAIL: docker-compose test: %s ***\n\n' "$*" >&2
    exit 1
}
# bounded <seconds> <command...>: at most that long, and never past the run's deadline
# (so the cleanup always gets to run before ctest's TIMEOUT).
bounded() {
    local max=$1 left=$((DEADLINE - SECONDS))
    shift
    [ "$left" -gt 0 ] || fail "out of time (ROTOR_DOCKER_DEADLINE) before: $*"
    [ "$left" -ge "$max" ] || max=$left
    timeout "$max" "$@"
}

# ---- preconditions: what is missing means no engine can run here -------------------------
DOCKERD=${DOCKERD:-$(command -v dockerd || true)}
# Debian's client matches Debian's engine (20.10); another docker on PATH may be newer.
DOCKER=${DOCKER:-$([ -x /usr/bin/docker ] && echo /usr/bin/docker || command -v docker || true)}
DOCKER_COMPOSE=${DOCKER_COMPOSE:-$(command -v docker-compose || true)}
[ -n "$DOCKERD" ] || skip "dockerd not found (Debian package docker.io)"
[ -n "$DOCKER" ] || skip "docker client not found (Debian package docker.io)"
[ -n "$DOCKER_COMPOSE" ] || skip "docker-compose not found (Debian package docker-compose)"
[ "$(id -u)" -eq 0 ] || skip "dockerd needs root (running as uid $(id -u))"
command -v debootstrap >/dev/null || fail "debootstrap not found (Debian package debootstrap)"
command -v node >/dev/null || fail "node not found"
[ -d "$ROOT/tests/integration/node_modules" ] ||
    fail "tests/integration/node_modules is missing: run make npm"

# ---- private engine ----------------------------------------------------------------------
# Short path: containerd's and the shims' unix sockets live under it (108-byte limit).
TMP=$(mktemp -d /tmp/rtdk.XXXXXX)
export DOCKER_HOST=unix://$TMP/docker.sock
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
DOCKERD_PID=""
COMPOSE_UP=""
# dockerd always creates /run/docker/plugins; removed again if this run created it.
RUN_DOCKER_EXISTED=$([ -e /run/docker ] && echo 1 || true)
COMPOSE=("$DOCKER_COMPOSE" -p "$PROJECT" --project-directory "$ROOT"
         -f "$ROOT/docker-compose.yml" -f "$HERE/compose.test.yml")

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ -n "${ROTOR_DOCKER_KEEP:-}" ]; then
        log "ROTOR_DOCKER_KEEP set: leaving dockerd (pid $DOCKERD_PID) and $TMP"
        exit $rc
    fi
    if [ -n "$COMPOSE_UP" ]; then
        [ $rc -eq 0 ] || { log "compose logs (last 40 lines per service):";
                           timeout 30 "${COMPOSE[@]}" logs --no-color --tail 40; }
        timeout 60 "${COMPOSE[@]}" down -v --remove-orphans -t 10 >/dev/null 2>&1
    fi
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        local ids
        ids=$(timeout 10 "$DOCKER" ps -aq 2>/dev/null)
        [ -z "$ids" ] || timeout 30 "$DOCKER" rm -f $ids >/dev/null 2>&1
        kill -TERM "$DOCKERD_PID"
        for _ in $(seq 1 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$DOCKERD_PID" 2>/dev/null
        wait "$DOCKERD_PID" 2>/dev/null
    fi
    # Anything still running from this engine (containerd, shims) is named by our temp dir.
    local left
    left=$(pgrep -f -- "$TMP/" || true)
    [ -z "$left" ] || { log "killing leftover engine processes: $left"; kill -KILL $left; }
    # Overlay and netns mounts the engine left behind, deepest first.
    awk -v t="$TMP/" -v d="$DATA_ROOT/" 'index($2, t) == 1 || index($2, d) == 1 { print $2 }' \
        /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$TMP"
    [ -n "$RUN_DOCKER_EXISTED" ] || rmdir /run/docker/plugins /run/docker 2>/dev/null
    log "cleaned up (rc=$rc)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_engine() {
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock -w $((DEADLINE - SECONDS)) 9 || fail "$CACHE/.lock held by another run until our deadline"
    if [ -n "${ROTOR_DOCKER_FRESH:-}" ]; then
        log "ROTOR_DOCKER_FRESH: dropping $DATA_ROOT and $BASE_TAR"
        rm -rf "$DATA_ROOT" "$BASE_TAR"
    fi
    mkdir -p "$DATA_ROOT" "$TMP/exec"
    echo '{}' >"$TMP/daemon.json"
    log "starting dockerd (data root $DATA_ROOT)"
    "$DOCKERD" --config-file "$TMP/daemon.json" --data-root "$DATA_ROOT" \
        --exec-root "$TMP/exec" --pidfile "$TMP/dockerd.pid" -H "$DOCKER_HOST" \
        --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
        --log-level warn >"$TMP/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 1 150); do
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            tail -20 "$TMP/dockerd.log" >&2
            skip "dockerd exited at start-up (log above)"
        fi
        if "$DOCKER" version >/dev/null 2>&1; then
            # Left by a run that was killed before its cleanup.
            local stale
            stale=$("$DOCKER" ps -aq)
            [ -z "$stale" ] || "$DOCKER" rm -f $stale >/dev/null
            "$DOCKER" network prune -f >/dev/null
            return 0
        fi
        sleep 0.2
    done
    tail -20 "$TMP/dockerd.log" >&2
    skip "dockerd did not answer on $DOCKER_HOST within 30 s (log above)"
}

# debootstrap once into the cache tar, imported once into the cached engine.
base_image() {
    if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE cached in $DATA_ROOT"
    elif [ ! -s "$BASE_TAR" ]; then
        log "debootstrap --variant=minbase bookworm from $MIRROR (first run only)"
        local rootfs=$TMP/rootfs
        bounded 600 debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" \
            >"$TMP/debootstrap.log" 2>&1 ||
            { tail -20 "$TMP/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" --numeric-owner -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
        rm -rf "$rootfs"
    else
        log "base root filesystem from cache: $BASE_TAR"
    fi
    "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1 ||
        "$DOCKER" import --change 'CMD ["bash"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
    # An engine that cannot run a container is no engine.
    "$DOCKER" run --rm --network none "$BASE_IMAGE" true 2>"$TMP/run.err" ||
        { cat "$TMP/run.err" >&2; skip "dockerd started but cannot run a container (above)"; }
}

# build <tag> <dockerfile> <build args...>: apt inside builds needs the host's network.
build() {
    local tag=$1 file=$2
    shift 2
    log "docker build $tag ($(basename "$file"))"
    bounded 600 "$DOCKER" build --network host -q -t "$tag" -f "$file" "$@" "$ROOT" \
        >"$TMP/build.log" 2>&1 || { tail -40 "$TMP/build.log" >&2; fail "docker build $tag failed"; }
}

free_port() {
    node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# (node rather than curl: node is needed anyway, curl may not be installed)
wait_http_200() {
    local url=$1 secs=$2
    node -e '
        const [url, secs] = process.argv.slice(1);
        const deadline = Date.now() + secs * 1000;
        (async () => {
            for (;;) {
                try {
                    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
                    if (r.status === 200) process.exit(0);
                } catch {}
                if (Date.now() > deadline) process.exit(1);
                await new Promise((res) => setTimeout(res, 200));
            }
        })();' "$url" "$secs" || fail "$url did not answer 200 within ${secs}s"
}

start_engine
base_image
build "$REDIS_IMAGE" "$HERE/redis.Dockerfile" --build-arg BASE_IMAGE="$BASE_IMAGE"
build "$NGINX_IMAGE" "$HERE/nginx.Dockerfile" --build-arg BASE_IMAGE="$BASE_IMAGE"
# The build stage's packages are tagged so the prune at the end keeps them cached.
build "$ROTOR_IMAGE-build-deps" "$ROOT/deploy/Dockerfile" --target build-deps \
    --build-arg BUILD_IMAGE="$BASE_IMAGE" --build-arg RUNTIME_IMAGE="$BASE_IMAGE"
build "$ROTOR_IMAGE" "$ROOT/deploy/Dockerfile" \
    --build-arg BUILD_IMAGE="$BASE_IMAGE" --build-arg RUNTIME_IMAGE="$BASE_IMAGE"

LB_PORT=$(free_port)
TOKEN_SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
API_KEY=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
export ROTOR_IMAGE REDIS_IMAGE NGINX_IMAGE
export ROTOR_PUBLISHED_PORT=$LB_PORT ROTOR_TOKEN_SECRET=$TOKEN_SECRET ROTOR_API_KEY=$API_KEY
# Containers cannot get a hard limit above the engine's own without CAP_SYS_RESOURCE
# (which some sandboxes withhold): the compose default 65536, or the hard limit if lower.
ROTOR_NOFILE=65536
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge $ROTOR_NOFILE ] || ROTOR_NOFILE=$hard
export ROTOR_NOFILE

log "docker-compose up (project $PROJECT, nginx on 127.0.0.1:$LB_PORT)"
COMPOSE_UP=1
bounded 240 "${COMPOSE[@]}" up -d --no-build >"$TMP/up.log" 2>&1 ||
    { cat "$TMP/up.log" >&2; fail "docker-compose up failed"; }
wait_http_200 "http://127.0.0.1:$LB_PORT/ready" 30

NODE_PORTS=""
for n in rotor1 rotor2 rotor3; do
    addr=$("${COMPOSE[@]}" port "$n" 8000)
    NODE_PORTS="$NODE_PORTS ${addr##*:}"
    # The image's user and the compose file's nofile limit, as the node sees them.
    uid=$("${COMPOSE[@]}" exec -T "$n" id -u)
    [ "$uid" = 10001 ] || fail "$n runs as uid $uid, not the image's rotor user (10001)"
    nofile=$("${COMPOSE[@]}" exec -T "$n" bash -c 'ulimit -n')
    [ "$nofile" = "$ROTOR_NOFILE" ] || fail "$n has nofile $nofile, not ROTOR_NOFILE=$ROTOR_NOFILE"
done
log "nodes on loopback ports$NODE_PORTS, uid 10001, nofile $ROTOR_NOFILE"

# The image's own HEALTHCHECK (compose's asks /ready instead), run as Docker would.
hc=$("$DOCKER" inspect -f '{{json .Config.Healthcheck.Test}}' "$ROTOR_IMAGE" |
     node -e 'const t=JSON.parse(require("fs").readFileSync(0,"utf8")); if (t[0]!=="CMD") process.exit(1); console.log(JSON.stringify(t.slice(1)))') ||
    fail "$ROTOR_IMAGE has no exec-form HEALTHCHECK"
readarray -t hc_argv < <(node -e 'for (const a of JSON.parse(process.argv[1])) console.log(a)' "$hc")
"${COMPOSE[@]}" exec -T rotor1 "${hc_argv[@]}" || fail "the image's HEALTHCHECK fails on rotor1"
# A token as README tells users to make one, for the first client.
GEN_TOKEN=$("${COMPOSE[@]}" exec -T rotor1 rotor gentoken -u docker-user-0 | tail -1 | tr -d '\r')
log "image HEALTHCHECK passes; token from \`docker-compose exec rotor1 rotor gentoken\`"

log "centrifuge-js clients through nginx"
LB_PORT=$LB_PORT NODE_PORTS=$NODE_PORTS TOKEN_SECRET=$TOKEN_SECRET API_KEY=$API_KEY GEN_TOKEN=$GEN_TOKEN \
    bounded 90 node "$HERE/client.mjs" || fail "client check through nginx failed"

# STOPSIGNAL SIGTERM reaches rotor (PID 1) and it drains and exits 0 well before the
# grace period would end in SIGKILL (exit 137).
log "docker-compose stop rotor2 (SIGTERM)"
t0=$SECONDS
bounded 60 "${COMPOSE[@]}" stop -t 30 rotor2 >/dev/null 2>&1 || fail "docker-compose stop rotor2 failed"
code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$("${COMPOSE[@]}" ps -q rotor2)")
[ "$code" = 0 ] || fail "rotor2 exited with $code after SIGTERM (137 = killed at the grace period)"
log "rotor2 exited 0 after $((SECONDS - t0))s; nginx still ready with two nodes"
wait_http_200 "http://127.0.0.1:$LB_PORT/ready" 10

log "docker-compose down"
bounded 60 "${COMPOSE[@]}" down -v --remove-orphans -t 10 >/dev/null 2>&1 || fail "docker-compose down failed"
COMPOSE_UP=""
# The previous run's images (now untagged) and their layers.
"$DOCKER" image prune -f >/dev/null
log "PASS"

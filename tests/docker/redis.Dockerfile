# Stand-in for the official redis image, built from the local Debian 12 base when no
# registry is reachable (tests/docker/run.sh). Same contract as the compose file expects:
# `redis-server` on PATH, listening on every interface, redis-cli for the health check.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
# No config file: Redis binds every interface; protected mode off as in the official image
# (the container network is the boundary).
CMD ["redis-server", "--protected-mode", "no"]

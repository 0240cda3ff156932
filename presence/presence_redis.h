/* Presence in Redis (SERVER.md §3.8): per-channel hash of client id -> ClientInfo with a
 * sorted-set expiry index (or hash-field TTLs), refreshed by every node, stale entries
 * removed lazily; optionally a per-user connection count for cheap stats. Engine loop
 * only. Channels map to shards exactly as in the Redis broker. */
#ifndef RT_PRESENCE_REDIS_H
#define RT_PRESENCE_REDIS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/rds.h"
#include "presence/presence.h"

/* The configured mode cannot work on a shard (e.g. hash-field TTL on Redis < 7.4). reason
 * is borrowed for the call and names the option and what it needs. Engine loop; at most
 * once per presence. */
typedef void (*presence_redis_fatal_cb)(const char *reason, void *ud);

typedef struct presence_redis_opts {
    const char *prefix; /* key prefix, as the broker's (copied); NULL or "" = "rotor" */
    int64_t ttl_ms;     /* entries not re-added within it vanish; <= 0 = [60000] */
    /* engine.redis.presence_user_mapping: P.presence.user.clients.C (user -> connection
     * count) and its expiry index are kept too, and stats reads two hash lengths instead
     * of every entry. */
    bool user_mapping;
    /* engine.redis.presence_hash_field_ttl: HEXPIRE per field instead of the zset indexes
     * (Redis >= 7.4). Every shard is probed with one HEXPIRE once it is reachable; a shard
     * that refuses it calls on_fatal. */
    bool hash_field_ttl;
    /* NULL: log the reason at ERROR and end the process with status 1 (_exit), which is
     * how a node refuses to start on a Redis without HEXPIRE. Otherwise called instead;
     * it may destroy the presence. */
    presence_redis_fatal_cb on_fatal;
    void *fatal_ud;
} presence_redis_opts_t;

/* shards (copied; > 0), opts (copied). Never fails; requests while a shard is down fail
 * with RT_ECLOSED. Requests sent before the hash-field-TTL probe answered run anyway (on a
 * Redis without HEXPIRE they fail with RT_EREDIS until on_fatal ends the process). */
presence_t *presence_redis_new(struct ev_loop *loop, const rds_addr_t *shards, size_t nshards,
                               const presence_redis_opts_t *opts);

#endif

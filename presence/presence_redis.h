/* Presence in Redis (SERVER.md §3.8): per-channel hash of client id -> ClientInfo with a
 * sorted-set expiry index, refreshed by every node, stale entries removed lazily. Engine
 * loop only. Channels map to shards exactly as in the Redis broker. */
#ifndef RT_PRESENCE_REDIS_H
#define RT_PRESENCE_REDIS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/rds.h"
#include "presence/presence.h"

/* shards (copied), prefix as the broker's, ttl_ms: entries not re-added within it vanish
 * [60000]. Never fails; requests while a shard is down fail with RT_ECLOSED. */
presence_t *presence_redis_new(struct ev_loop *loop, const rds_addr_t *shards, size_t nshards,
                               const char *prefix, int64_t ttl_ms);

#endif

/* The Redis broker (SERVER.md §3.3-3.7, §3.10-3.13): history streams and publish scripts,
 * one PUB/SUB subscription per channel per node, the control channel between nodes, and
 * channels spread over several Redis shards by consistent hashing (broker/rds_shard.h).
 * Engine loop only. */
#ifndef RT_BROKER_REDIS_H
#define RT_BROKER_REDIS_H

#include <ev.h>

#include "broker/broker.h"
#include "broker/rds.h"

typedef struct broker_redis_opts {
    const rds_addr_t *shards; /* nshards addresses (borrowed for the call, copied) */
    size_t nshards;
    const char *prefix;   /* key and channel prefix [rotor] */
    const char *node_uid; /* this node: P.node.<uid> control channel, own messages ignored */
    /* engine.redis.sharded_pubsub [false]: on Redis Cluster shards, channels use SPUBLISH
     * and SSUBSCRIBE on a connection to the master owning their slot (SERVER.md §3.14);
     * the control channels stay on classic PUB/SUB. Ignored for other shards. */
    bool sharded_pubsub;
} broker_redis_opts_t;

/* Creates the broker and starts connecting to every shard. sink copied. Never fails:
 * unreachable shards make broker_ready() false until they connect. */
broker_t *broker_redis_new(struct ev_loop *loop, const broker_sink_t *sink,
                           const broker_redis_opts_t *opts);

#endif

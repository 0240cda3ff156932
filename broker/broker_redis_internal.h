/* Redis broker internals shared with its tests (and, later, node/ metrics if the lead
 * moves the stats into broker_redis.h). Engine loop only. */
#ifndef RT_BROKER_REDIS_INTERNAL_H
#define RT_BROKER_REDIS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "node/base/str.h"

typedef struct broker_redis_stats {
    uint64_t malformed;    /* PUB/SUB messages and stream entries that failed to decode */
    uint64_t unsubscribed; /* messages for channels no longer subscribed (dropped) */
    uint64_t resubscribes; /* PUB/SUB connections that came back after being down */
} broker_redis_stats_t;

/* Copies the counters of b (from broker_redis_new()) into out. */
void broker_redis__stats(broker_t *b, broker_redis_stats_t *out);

/* Reply decoders, apart from their callbacks so the fuzz target (fuzz_redis_reply) can
 * feed them any reply tree a hostile or broken Redis could send. */
struct redisReply;

/* The publish script's reply [offset, epoch, idempotent hit, version hit] (SERVER.md §3.5):
 * *pos (epoch borrowed from r) and whether the publication was suppressed. Returns 0, or
 * RT_EREDIS for any other shape (*pos zero then). */
int broker_redis__decode_publish(const struct redisReply *r, broker_pos_t *pos, bool *suppressed);

/* The history script's reply [top offset, epoch, entries or nil] (SERVER.md §3.6) for
 * channel: *top (epoch borrowed from r) and *n publications in a new array *pubs (unref each
 * and rt_free the array). Entries that do not decode are skipped and counted in *malformed.
 * Returns 0, or RT_EREDIS for a reply of another shape (nothing allocated then). */
int broker_redis__decode_history(const struct redisReply *r, rt_str_t channel, broker_pos_t *top,
                                 broker_pub_t ***pubs, size_t *n, uint64_t *malformed);

#endif

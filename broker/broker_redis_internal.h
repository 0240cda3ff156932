/* Redis broker internals shared with its tests (and, later, node/ metrics if the lead
 * moves the stats into broker_redis.h). Engine loop only. */
#ifndef RT_BROKER_REDIS_INTERNAL_H
#define RT_BROKER_REDIS_INTERNAL_H

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

#endif

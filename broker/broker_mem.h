/* The embedded memory broker: history, offsets, epochs and idempotency in process memory.
 * Single-node only. Owned by the engine loop. */
#ifndef RT_BROKER_MEM_H
#define RT_BROKER_MEM_H

#include <ev.h>

#include "broker/broker.h"

/* Creates a memory broker on loop delivering to sink (copied). Destroy with
 * broker_destroy(); pending callbacks then run with RT_ECANCELED. */
broker_t *broker_mem_new(struct ev_loop *loop, const broker_sink_t *sink);

typedef struct broker_mem_stats {
    size_t channels;         /* channels with state (a stream or a subscription) */
    size_t subscribed;       /* channels this node subscribed to */
    size_t idempotency_keys; /* remembered publish results (5-minute window) */
} broker_mem_stats_t;

/* Fills out with the current counts. b must come from broker_mem_new(). Engine loop. */
void broker_mem_stats(broker_t *b, broker_mem_stats_t *out);

#endif

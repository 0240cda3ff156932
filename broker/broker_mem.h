/* The embedded memory broker: history, offsets, epochs and idempotency in process memory.
 * Single-node only. Owned by the engine loop. */
#ifndef RT_BROKER_MEM_H
#define RT_BROKER_MEM_H

#include <ev.h>

#include "broker/broker.h"

/* Creates a memory broker on loop delivering to sink (copied). Destroy with
 * broker_destroy(); pending callbacks then run with RT_ECANCELED. */
broker_t *broker_mem_new(struct ev_loop *loop, const broker_sink_t *sink);

#endif

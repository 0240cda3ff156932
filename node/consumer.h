/* Async consumers (SERVER.md §4): server API commands pulled from Redis Streams instead of
 * received over HTTP ("publish via Redis", DESIGN.md).
 *
 * Threads. The consumers live on the engine loop: every Redis connection, the read and
 * reclaim loops and the acknowledgements. An entry is copied into a mail for a worker
 * (round-robin), which decodes it and runs it through the same server API code as HTTP
 * (node_api_exec); the result code comes back to the engine as a node_op_t, which then
 * acknowledges the entry (XACK) unless the code is 100 (retryable: the entry stays pending
 * and any node reclaims it after visibility_timeout). Across the gap the mails carry the
 * consumer and stream indexes and the entry id, never pointers into engine state.
 *
 * Redis connections: per stream one command client dedicated to the blocking XREADGROUP
 * (its io_timeout is raised above the BLOCK time), per consumer one client for XGROUP,
 * XAUTOCLAIM and XACK, so acknowledgements never wait behind a blocked read. */
#ifndef RT_NODE_CONSUMER_H
#define RT_NODE_CONSUMER_H

#include <stdatomic.h>
#include <stdint.h>

#include "node/base/buf.h"
#include "node/base/str.h"

typedef struct node_engine node_engine_t;
typedef struct node_worker node_worker_t;
typedef struct node_consumers node_consumers_t;

/* Engine thread, from node_engine_new() once the broker exists: starts every enabled
 * consumer of e->node->cfg (type redis_stream) and stores the set in e->consumers (owned by
 * the engine; NULL when none is enabled). Never fails: an unreachable Redis is retried with
 * backoff and logged at WARN with the consumer name. */
void node_consumers_start(node_engine_t *e);

/* Engine thread, from node_engine_free() after the workers were joined and before the
 * engine mailbox is cleaned up: closes every consumer connection (pending replies are
 * cancelled) and frees e->consumers. Entries read but not acknowledged stay pending in
 * Redis and are reclaimed by another node (or the next start) after visibility_timeout.
 * Result mails still queued in the engine mailbox are plain node_op_t and are freed by the
 * mailbox cleanup. Safe when e->consumers is NULL. */
void node_consumers_stop(node_engine_t *e);

/* Any thread (the /metrics worker): appends the centrifugo_consumers_messages_processed_total
 * and centrifugo_consumers_errors_total series, one per configured consumer, in Prometheus
 * text format. cs may be NULL (nothing appended). The counters are relaxed atomics written by
 * the engine; cs lives until node_consumers_stop(), which runs after the workers ended.
 * processed: entries finished with (acknowledged: applied, failed with a non-retryable
 * error, or skipped as malformed). errors: entries that failed (malformed, any API error
 * code, retryable or not) plus failed Redis commands. */
void node_consumers_render_metrics(node_consumers_t *cs, rt_buf_t *out);

/* api.c, worker thread: runs one server API command, as POST /api/<method> with payload as
 * the body would, through the same method code. method and payload are borrowed for the call
 * (payload: the JSON request object). done runs exactly once on w's thread, possibly before
 * node_api_exec returns, with code 0 or the Centrifugo API error code of the command (107
 * for a payload that is not a JSON object, 104 for an unknown method or batch; broadcast:
 * 100 if any channel failed with 100, else the first channel error, else 0). */
void node_api_exec(node_worker_t *w, rt_str_t method, rt_str_t payload,
                   void (*done)(void *ud, int code), void *ud);

#endif

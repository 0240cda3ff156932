/* Per-worker transport context: buffer pools, the flush-before-sleep pass (held for a few
 * passes under request load) and deferred frees of closed connections. One per worker
 * loop; touched only by that worker. */
#ifndef RT_TRANSPORTS_LOOP_H
#define RT_TRANSPORTS_LOOP_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/pool.h"

typedef struct tr_conn tr_conn_t; /* private: transports/conn_internal.h */

/* Longest a flush waits for in-flight requests under load (see tr_loop_t.holds). */
#define TR_FLUSH_HOLD_MAX_S 0.001

typedef struct tr_limits {
    size_t read_buf_bytes;      /* pooled read buffer size [16384] */
    size_t max_header_bytes;    /* request line + headers [16384] => 431 */
    size_t max_body_bytes;      /* request body [65536] => 413 */
    size_t max_queue_bytes;     /* pending output per connection [1048576] */
    double http_idle_timeout_s; /* keep-alive idle / slow request limit [30] */
    double write_timeout_s;     /* queued output not progressing for this long => close [1] */
    bool upgraded_nodelay;      /* keep TCP_NODELAY after a WebSocket upgrade or stream [true] */
    int flush_holds;            /* passes the flush may wait while requests keep coming [4] */
} tr_limits_t;

/* Fills defaults (values in brackets above). */
void tr_limits_default(tr_limits_t *l);

typedef struct tr_stats {
    uint64_t conns_open;     /* currently open TCP connections */
    uint64_t conns_accepted; /* total */
    uint64_t bytes_in, bytes_out;
    uint64_t frames_out;
    uint64_t writes; /* write system calls (one per connection per flush) */
} tr_stats_t;

typedef struct tr_loop {
    struct ev_loop *loop; /* borrowed */
    tr_limits_t limits;
    rt_pool_t read_pool; /* read buffers, limits.read_buf_bytes each */
    ev_prepare flush_watcher;
    /* Coalescing under load: a pass that dispatched HTTP requests (a pipelined backlog, or
     * many API clients) leaves its output queued for up to limits.flush_holds more passes,
     * so the fan-outs those requests cause reach each connection in one write. A held
     * pass that dispatched requests is followed at once (hold_idle keeps the loop
     * from sleeping); one that did not may sleep while requests are still with their
     * handlers (a Redis round trip), never past TR_FLUSH_HOLD_MAX_S after the last
     * dispatching pass (hold_timer). */
    ev_idle hold_idle;
    ev_timer hold_timer;
    ev_tstamp hold_since; /* loop time of the last held pass that dispatched requests */
    unsigned dispatched;  /* HTTP requests dispatched since the last flush decision */
    unsigned in_flight;   /* HTTP requests with their handlers now */
    int holds;            /* consecutive passes that held the flush */
    tr_conn_t *dirty;     /* connections with output to write this iteration */
    tr_conn_t *closed;    /* connections to free in the before-sleep pass */
    tr_stats_t stats;
} tr_loop_t;

void tr_loop_init(tr_loop_t *tl, struct ev_loop *loop, const tr_limits_t *limits);
/* Closes nothing: the caller closes its servers and connections first. */
void tr_loop_cleanup(tr_loop_t *tl);

#endif

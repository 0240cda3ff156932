/* client.connection_rate_limit (SERVER.md §2.4): new-connection requests per second per node,
 * answered with 503 (UNAVAILABLE on uni_grpc) above the rate, before any upgrade or stream.
 *
 * Each worker holds its own token bucket with rate / nworkers tokens per second and as many
 * of burst, so no connection attempt touches another thread's state. The kernel spreads
 * SO_REUSEPORT accepts over the workers by connection hash, so the node-wide rate is the
 * configured one to within that spread. Only accepted attempts take a token: a refused
 * flood does not starve the clients that come after it. */
#ifndef RT_NODE_RATELIMIT_H
#define RT_NODE_RATELIMIT_H

#include <stdbool.h>

typedef struct node_worker node_worker_t;

/* A token bucket in caller storage. Not thread-safe: one thread owns it. */
typedef struct node_ratelimit {
    double rate_per_s; /* tokens added per second; 0 = unlimited */
    double burst;      /* capacity in tokens, >= 1 when limited */
    double tokens;     /* available now, in [0, burst] */
    double last_s;     /* loop time (ev_now) of the last refill */
} node_ratelimit_t;

/* Starts full at now_s with capacity max(1, rate_per_s) (one second's worth).
 * rate_per_s <= 0 makes node_ratelimit_take() always succeed. */
void node_ratelimit_init(node_ratelimit_t *rl, double rate_per_s, double now_s);
/* Refills for the time since the last call, then takes one token if there is one.
 * Returns true when the event may proceed. now_s going backwards refills nothing. */
bool node_ratelimit_take(node_ratelimit_t *rl, double now_s);

/* Worker thread: true when this new-connection request exceeds w's share of
 * client.connection_rate_limit, and the caller must answer 503 / UNAVAILABLE without
 * creating anything. false takes a token. Call after the cheaper checks that refuse the
 * request anyway (method, origin, connection_limit). */
bool node_connection_rate_limited(node_worker_t *w);

#endif

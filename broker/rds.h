/* Redis plumbing (library rt_rds): addresses, a pipelined command connection and a PUB/SUB
 * connection, both on hiredis' async API with its libev adapter, owned by the engine loop.
 *
 * hiredis 0.14 (Debian 12) has no async timeouts and no TLS: every command here carries
 * its own ev_timer, and a timed-out command tears its connection down (a silently dead
 * socket must not hold callbacks forever); `rediss://` is refused at parse time.
 *
 * Callback rules as everywhere (STYLE.md §3): exactly once, on the loop, never inside the
 * initiating call; RT_ECANCELED when the object is freed first. Replies are borrowed for
 * the duration of the callback only (hiredis frees them when it returns). */
#ifndef RT_BROKER_RDS_H
#define RT_BROKER_RDS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "node/base/buf.h"
#include "node/base/str.h"

/* How the address is reached (SERVER.md §3.2, §3.14, §3.15). */
typedef enum rds_mode {
    RDS_MODE_STANDALONE = 0, /* host:port (or unix_path) is the server */
    RDS_MODE_CLUSTER,        /* seeds are Redis Cluster nodes; commands routed by slot */
    RDS_MODE_SENTINEL,       /* seeds are Sentinels; the master is asked from them */
} rds_mode_t;

/* One Redis server. All strings owned (heap, NUL-terminated, "" when unset). */
typedef struct rds_addr {
    rds_mode_t mode;
    char **seeds; /* cluster/sentinel: "host:port" entries (owned), NULL otherwise */
    size_t nseeds;
    char *sentinel_master;      /* sentinel: master name (sentinel_master_name) */
    char *sentinel_user;        /* sentinel: ACL user for the Sentinels themselves */
    char *sentinel_password;    /* sentinel: password for the Sentinels */
    char *host;                 /* "" for unix sockets */
    int port;                   /* [6379] */
    char *unix_path;            /* "" for TCP */
    char *user;                 /* ACL user ("" = default user) */
    char *password;             /* "" = no AUTH */
    int db;                     /* SELECT index [0] */
    int64_t connect_timeout_ms; /* [1000] */
    int64_t io_timeout_ms;      /* per command [4000] */
} rds_addr_t;

/* Parses "host:port", "redis://[user[:password]@]host[:port][/db][?opts]", "tcp://...",
 * "unix://[user[:password]@]/path" (SERVER.md §3.2; opts connect_timeout, io_timeout as Go
 * durations, db). *out is initialised in every case; release with rds_addr_cleanup().
 * Returns 0, or RT_EINVAL with a message in err (rediss:// and cluster/sentinel URLs are
 * refused here with a message saying so). */
int rds_addr_parse(const char *url, rds_addr_t *out, rt_buf_t *err);
void rds_addr_cleanup(rds_addr_t *a);
/* "host:port" or the socket path, for logs (static per thread buffer). */
const char *rds_addr_name(const rds_addr_t *a);

/* Reply status: 0 (reply set, not an error reply), RT_EREDIS (reply is a Redis error
 * reply: reply->str), RT_ETIMEOUT, RT_ECLOSED (connection lost before the reply),
 * RT_ECANCELED (client freed). reply is NULL unless status is 0 or RT_EREDIS. */
typedef void (*rds_reply_cb)(int status, const redisReply *reply, void *ud);

/* Called when the connection becomes usable (up = true: connected, authenticated, db
 * selected) or is lost (up = false). */
typedef void (*rds_state_cb)(bool up, void *ud);

typedef struct rds_client rds_client_t;

typedef struct rds_client_opts {
    size_t max_inflight;      /* commands sent and not answered [16384] => RT_ELIMIT */
    int64_t reconnect_min_ms; /* backoff after a failure [100], doubling ... */
    int64_t reconnect_max_ms; /* ... up to [5000], with jitter */
    rds_state_cb on_state;    /* may be NULL */
    void *ud;
} rds_client_opts_t;

void rds_client_opts_default(rds_client_opts_t *o);

/* Creates a command connection to addr (copied) and starts connecting. Never fails; a
 * failure to connect is retried with backoff and reported through on_state. */
rds_client_t *rds_client_new(struct ev_loop *loop, const rds_addr_t *addr,
                             const rds_client_opts_t *opts);
/* Pending commands get RT_ECANCELED (before this returns, which is allowed here only). */
void rds_client_free(rds_client_t *c);
bool rds_client_ready(const rds_client_t *c);

/* Sends one command (argv borrowed for the call; binary safe). Commands are pipelined in
 * order. Returns 0 (cb will run), RT_ECLOSED when not connected (fail fast: the caller
 * reports the broker unavailable), or RT_ELIMIT past max_inflight; cb does not run then. */
int rds_client_command(rds_client_t *c, rds_reply_cb cb, void *ud, int argc, const char **argv,
                       const size_t *argvlen);

/* A Lua script, embedded at build time. sha is computed once (SHA-1 of src). */
typedef struct rds_script {
    const char *name;
    const char *src;
    char sha[41];
} rds_script_t;

/* Fills s->sha. */
void rds_script_init(rds_script_t *s, const char *name, const char *src);
/* EVALSHA sha nkeys keys... args...; on a NOSCRIPT error reply the same call is retried
 * once with EVAL src (the script cache was flushed or this server never saw it). argv are
 * the keys followed by the args. Same returns as rds_client_command. */
int rds_client_eval(rds_client_t *c, const rds_script_t *s, int nkeys, int argc, const char **argv,
                    const size_t *argvlen, rds_reply_cb cb, void *ud);

/* A dedicated PUB/SUB connection. It keeps the set of subscribed channels, batches
 * SUBSCRIBE/UNSUBSCRIBE issued within one loop iteration into one command each, and after
 * a reconnect resubscribes the whole set before reporting up. It PINGs every
 * probe_interval_ms and treats a missing PONG within io_timeout as a dead connection. */
typedef struct rds_pubsub rds_pubsub_t;

typedef struct rds_pubsub_handler {
    /* A message on channel; both borrowed for the call. */
    void (*on_message)(void *ud, rt_str_t channel, rt_str_t payload);
    /* up: every channel of the set is subscribed again; down: the connection was lost
     * (messages may have been missed in between: callers re-check stream positions). */
    void (*on_state)(void *ud, bool up);
    void *ud;
} rds_pubsub_handler_t;

rds_pubsub_t *rds_pubsub_new(struct ev_loop *loop, const rds_addr_t *addr,
                             const rds_pubsub_handler_t *h, int64_t probe_interval_ms);
void rds_pubsub_free(rds_pubsub_t *p);
bool rds_pubsub_ready(const rds_pubsub_t *p);
/* Adds/removes channel (copied) to/from the set; the command goes out at the end of the
 * loop iteration (or after reconnecting). Returns 0, or RT_ECLOSED while down for
 * subscribe (the set still remembers it and it is subscribed on reconnect). */
int rds_pubsub_subscribe(rds_pubsub_t *p, rt_str_t channel);
int rds_pubsub_unsubscribe(rds_pubsub_t *p, rt_str_t channel);
size_t rds_pubsub_count(const rds_pubsub_t *p);

#endif

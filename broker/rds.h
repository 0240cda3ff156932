/* Redis plumbing (library rt_rds): addresses, a pipelined command connection and a PUB/SUB
 * connection, both on hiredis' async API with its libev adapter, owned by the engine loop.
 *
 * hiredis 0.14 (Debian 12) has no async timeouts and no TLS: every command here carries
 * its own ev_timer, and a timed-out command tears its connection down (a silently dead
 * socket must not hold callbacks forever); a TLS address (`rediss://`) is dialled through
 * an in-process relay (rds_tls.h): hiredis talks plain RESP to a private Unix socket and
 * the relay speaks TLS to the server.
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

/* TLS settings of one kind of connection (SERVER.md §2.4 TLS object, §3.2). All strings
 * owned (heap, NUL-terminated, "" when unset). A *_pem field wins over its *_file twin. */
typedef struct rds_tls {
    bool enabled;              /* dial through TLS */
    bool insecure_skip_verify; /* accept any server certificate (tests, dev only) */
    char *server_name;         /* SNI and the name verified; "" = the host dialled */
    char *ca_pem;              /* CAs trusted for the server certificate (PEM text) ... */
    char *ca_file;             /* ... or a PEM file; neither: the system store */
    char *cert_pem;            /* client certificate chain for mTLS (PEM text) ... */
    char *cert_file;           /* ... or a PEM file; "" both: no client certificate */
    char *key_pem;             /* its private key (PEM text) ... */
    char *key_file;            /* ... or a PEM file */
} rds_tls_t;

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
    rds_tls_t tls;              /* the server itself (and, in a cluster, every node; with
                                   Sentinel, the master it names) */
    rds_tls_t sentinel_tls;     /* sentinel: the connections to the Sentinels */
} rds_addr_t;

/* Parses "host:port", "redis://[user[:password]@]host[:port][/db][?opts]", "tcp://...",
 * "unix://[user[:password]@]/path" (SERVER.md §3.2; opts connect_timeout, io_timeout as Go
 * durations, db, tls_enabled, sentinel_tls_enabled), "rediss://..." (tls.enabled), and:
 *   redis+cluster://[user[:password]@]host:port[?addr=h2:p2&addr=...]  mode CLUSTER; seeds =
 *     host:port then every addr, in order; db must be 0.
 *   redis+sentinel://[user[:password]@]host:port[/db]?sentinel_master_name=m[&addr=...]
 *     [&sentinel_user=u&sentinel_password=p]  mode SENTINEL; seeds = the Sentinels; user,
 *     password and db are for the master, sentinel_user/sentinel_password for the Sentinels.
 * rediss+cluster:// and rediss+sentinel:// are the same with tls.enabled (with Sentinel
 * for the master: the Sentinels use TLS only with sentinel_tls_enabled=true). tls_enabled
 * and sentinel_tls_enabled take Go ParseBool values. TLS over unix:// is refused. The
 * certificates come from the configuration (the TLS object), never from the URL.
 * host/port are the first seed in both. A plain address parses as STANDALONE; whether a
 * cluster node is behind it is asked of the server by rds_addr_detect_cluster(). *out is
 * initialised in every case; release with rds_addr_cleanup().
 * Returns 0, or RT_EINVAL with a message in err. */
int rds_addr_parse(const char *url, rds_addr_t *out, rt_buf_t *err);
/* The old explicit keys (cluster_address, sentinel_address): list is comma-separated
 * "host:port" seeds (spaces around them ignored, port required as in Centrifugo), mode is
 * CLUSTER or SENTINEL. *out gets the defaults, the seeds, and host/port of the first seed;
 * the caller fills credentials, db, timeouts and, for SENTINEL, sentinel_master (required:
 * a link with an empty master name never connects). *out is initialised in every case.
 * Returns 0, or RT_EINVAL with a message in err. */
int rds_addr_from_seeds(const char *list, rds_mode_t mode, rds_addr_t *out, rt_buf_t *err);
/* Idempotent. */
void rds_addr_cleanup(rds_addr_t *a);
/* TLS settings on their own: rds_tls_init gives the defaults (off, every string ""),
 * rds_tls_copy a deep copy (dst overwritten, not cleaned up first), rds_tls_cleanup is
 * idempotent. rds_addr_* call them for both members. */
void rds_tls_init(rds_tls_t *t);
void rds_tls_copy(rds_tls_t *dst, const rds_tls_t *src);
void rds_tls_cleanup(rds_tls_t *t);
/* Splits a seed ("host:port" or "[v6]:port", as in rds_addr_t.seeds) into *host (owned by
 * the caller, rt_free) and *port. Returns 0, or RT_EINVAL (*host NULL). */
int rds_addr_seed_split(const char *seed, char **host, int *port);
/* *out = a STANDALONE copy of base aimed at host:port (copied): same user, password, db,
 * timeouts and TLS settings, no seeds, no unix path. Release with rds_addr_cleanup(). */
void rds_addr_derive(rds_addr_t *out, const rds_addr_t *base, const char *host, int port);
/* "host:port" or the socket path ("sentinel:<master name>" in Sentinel mode, which has no
 * fixed server), for logs (static per thread buffer). */
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
    int64_t reconnect_max_ms; /* ... up to [2000], with jitter */
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
/* The same connection for Redis Cluster sharded PUB/SUB (SERVER.md §3.14): every channel
 * is SSUBSCRIBEd (SUNSUBSCRIBEd) and "smessage" pushes are delivered through on_message.
 * addr must be the master owning the channels' slots. Each channel also holds a classic
 * SUBSCRIBE of the same name on this connection (hiredis 0.14 routes PUB/SUB replies only
 * by names it subscribed itself), so classic PUBLISHes to the name arrive too; barriers
 * and the resubscribe count those confirmations, which Redis sends after the SSUBSCRIBE's.
 * A channel the server refuses (slot not served here, e.g. a stale slot table) is simply
 * not delivered: callers re-check ownership after a slot table refresh. */
/* on_lost (may be NULL): the server dropped channel (borrowed for the call) on its own
 * because its slot moved to another master; it is out of the set already. Called with
 * h->ud; must not free the connection. */
rds_pubsub_t *rds_pubsub_new_sharded(struct ev_loop *loop, const rds_addr_t *addr,
                                     const rds_pubsub_handler_t *h, int64_t probe_interval_ms,
                                     void (*on_lost)(void *ud, rt_str_t channel));
void rds_pubsub_free(rds_pubsub_t *p);
bool rds_pubsub_ready(const rds_pubsub_t *p);
/* Adds/removes channel (copied) to/from the set; the command goes out at the end of the
 * loop iteration (or after reconnecting). Returns 0, or RT_ECLOSED while down for
 * subscribe (the set still remembers it and it is subscribed on reconnect). */
int rds_pubsub_subscribe(rds_pubsub_t *p, rt_str_t channel);
int rds_pubsub_unsubscribe(rds_pubsub_t *p, rt_str_t channel);
size_t rds_pubsub_count(const rds_pubsub_t *p);
/* cb(0) once every SUBSCRIBE issued so far (including channels added in this loop
 * iteration) is confirmed by Redis, so messages published from then on reach us; cb with
 * RT_ECLOSED if the connection drops first, RT_ECANCELED on free. Never inside this call.
 * Returns RT_ECLOSED (cb does not run) while the connection is not up. */
int rds_pubsub_barrier(rds_pubsub_t *p, void (*cb)(int status, void *ud), void *ud);

/* ---- Redis Cluster (SERVER.md §3.14; rds_cluster.c) ---- */

#define RDS_CLUSTER_SLOTS 16384

/* CRC16-CCITT (XMODEM), the Redis Cluster key hash: "123456789" -> 0x31C3. */
uint16_t rds_crc16(const void *p, size_t n);
/* Hash slot of key (0..16383): CRC16 of the bytes between the first '{' and the first '}'
 * after it when that tag is non-empty, else of the whole key. */
unsigned rds_key_slot(rt_str_t key);

/* A command router over one Redis Cluster: a 16384-slot table from CLUSTER SLOTS, one
 * rds_client per master (created when the table names it, reused), MOVED followed once
 * (slot updated, full refresh scheduled) and ASK once (ASKING + the command on the named
 * node); connection losses and CLUSTERDOWN refresh the table. Callback rules as
 * rds_client's; a command already redirected to a node that is still connecting waits
 * for it up to io_timeout. */
typedef struct rds_cluster rds_cluster_t;

/* addr: mode CLUSTER with seeds (or any address: its host:port is the only seed); copied.
 * opts as for rds_client_new (on_state/ud are not used). Never fails: it keeps asking
 * the seeds, then the known masters, for the slot table. */
rds_cluster_t *rds_cluster_new(struct ev_loop *loop, const rds_addr_t *addr,
                               const rds_client_opts_t *opts);
/* Pending commands get RT_ECANCELED (before this returns). */
void rds_cluster_free(rds_cluster_t *cl);
/* The slot table is loaded and every master's connection is up. */
bool rds_cluster_ready(const rds_cluster_t *cl);
/* Sends a command to the master of key's slot. Same returns as rds_client_command
 * (RT_ECLOSED also while the table is not loaded or the slot has no master). */
int rds_cluster_command(rds_cluster_t *cl, rt_str_t key, rds_reply_cb cb, void *ud, int argc,
                        const char **argv, const size_t *argvlen);
/* rds_client_eval routed by KEYS[1] (any master when nkeys is 0); all keys of one call must
 * share a slot (hash tags). */
int rds_cluster_eval(rds_cluster_t *cl, const rds_script_t *s, int nkeys, int argc,
                     const char **argv, const size_t *argvlen, rds_reply_cb cb, void *ud);
/* Number of known nodes (masters of the table, then the seeds), >= 1, and the address of
 * node i mod that number, STANDALONE (release with rds_addr_cleanup); for connections
 * that any node serves, e.g. classic PUB/SUB. */
size_t rds_cluster_node_count(const rds_cluster_t *cl);
void rds_cluster_node_addr(const rds_cluster_t *cl, size_t i, rds_addr_t *out);

typedef struct rds_cluster_stats {
    uint64_t refreshes; /* slot tables loaded */
    uint64_t moved;     /* MOVED redirections followed */
    uint64_t asked;     /* ASK redirections followed */
} rds_cluster_stats_t;
void rds_cluster_stats(const rds_cluster_t *cl, rds_cluster_stats_t *out);

/* Tests: the "host:port" the slot is routed to ("" when none; static per thread buffer),
 * and overriding one table entry (a wrong one makes the next command follow MOVED). */
const char *rds_cluster__slot_node(const rds_cluster_t *cl, unsigned slot);
void rds_cluster__set_slot(rds_cluster_t *cl, unsigned slot, const char *host, int port);

/* ---- one address, either kind (rds_cluster.c) ---- */

/* A Redis Cluster behind a plain address (SERVER.md §3.2: detected, as Centrifugo does).
 * For a STANDALONE TCP address: connects once on a private loop, blocking for at most the
 * connect timeout (to be connected) plus io_timeout (for the answer), and asks INFO cluster,
 * which every server answers, cluster or not. On "cluster_enabled:1", *a becomes mode
 * CLUSTER with its own host:port as the only seed (the router learns the other masters
 * from CLUSTER SLOTS) and the call returns true. Anything else (a standalone server,
 * another mode, a unix socket, no answer: logged at WARN) leaves *a as it was and returns
 * false. Call it before making routers of *a: the broker and presence choose key and
 * channel names by mode once, when they are created. */
bool rds_addr_detect_cluster(rds_addr_t *a);

/* What the broker and presence hold per configured address: an rds_client for STANDALONE
 * and SENTINEL addresses, an rds_cluster for CLUSTER ones. */
typedef struct rds_router rds_router_t;

rds_router_t *rds_router_new(struct ev_loop *loop, const rds_addr_t *addr,
                             const rds_client_opts_t *opts);
void rds_router_free(rds_router_t *r);
bool rds_router_ready(const rds_router_t *r);
/* Keys need hash tags ({channel}) and the PUB/SUB may go to any node. */
bool rds_router_is_cluster(const rds_router_t *r);
/* key routes the command in a cluster and is ignored otherwise. */
int rds_router_command(rds_router_t *r, rt_str_t key, rds_reply_cb cb, void *ud, int argc,
                       const char **argv, const size_t *argvlen);
int rds_router_eval(rds_router_t *r, const rds_script_t *s, int nkeys, int argc, const char **argv,
                    const size_t *argvlen, rds_reply_cb cb, void *ud);
/* Address for the PUB/SUB connection, attempt-th choice (a cluster cycles through its
 * nodes; otherwise always the configured address). Release with rds_addr_cleanup. */
void rds_router_pubsub_addr(const rds_router_t *r, size_t attempt, rds_addr_t *out);

/* Sharded PUB/SUB (SERVER.md §3.14), cluster routers only. rds_router_slot_addr: *out =
 * the master owning key's slot, STANDALONE (release with rds_addr_cleanup); returns 0, or
 * RT_ECLOSED (*out untouched) when r is not a cluster, the table is not loaded or the slot
 * has no master. rds_router_master_count/rds_router_master_addr: the masters of the
 * current table (0 when not a cluster), node i (< count) as for rds_router_slot_addr.
 * rds_router_refresh: reload the slot table soon (no-op when not a cluster). */
int rds_router_slot_addr(const rds_router_t *r, rt_str_t key, rds_addr_t *out);
size_t rds_router_master_count(const rds_router_t *r);
void rds_router_master_addr(const rds_router_t *r, size_t i, rds_addr_t *out);
void rds_router_refresh(rds_router_t *r);

#endif

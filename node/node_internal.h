/* Internal structures of node/: the node, its engine loop, worker loops, client sessions,
 * subscriptions and the operations that travel between workers and the engine.
 *
 * Threads (STYLE.md §6): a worker's clients, subscriptions, hub shard and API requests are
 * touched only by that worker's thread. The engine owns the broker, presence and the
 * channel -> workers interest table. Workers and engine talk only through mailboxes; an
 * operation (node_op_t) is posted to the engine, executed there, and posted back to the
 * worker that asked with its result filled in: one allocation per round trip. Across that
 * gap the op carries ids (client id, subscription serial, API request id), never pointers
 * into worker state. */
#ifndef RT_NODE_INTERNAL_H
#define RT_NODE_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "node/base/buf.h"
#include "node/base/mailbox.h"
#include "node/codec.h"
#include "node/config.h"
#include "node/jwt.h"
#include "node/map.h"
#include "node/proto.h"
#include "node/ratelimit.h"
#include "node/wire.h"
#include "presence/presence.h"
#include "transports/grpc.h"
#include "transports/http.h"
#include "transports/loop.h"
#include "transports/stream.h"
#include "transports/ws.h"

#define NODE_MAX_WORKERS  64
#define NODE_EPOCH_MAX    32 /* bytes kept of an epoch (memory broker: 8 letters) */
#define NODE_VERSION_TEXT RT_VERSION " rotor"

typedef struct node node_t;
typedef struct node_worker node_worker_t;
typedef struct node_engine node_engine_t;
typedef struct node_client node_client_t;
typedef struct node_sub node_sub_t;
typedef struct node_hub_chan node_hub_chan_t;
typedef struct node_op node_op_t;
typedef struct node_control node_control_t;
typedef struct node_survey node_survey_t;

/* broker_pub_t.frames holds one cached frame per wire form, indexed by node_wire_t. */
_Static_assert(NODE_WIRE_COUNT <= BROKER_PUB_FRAME_SLOTS, "a frame slot per wire form");

/* ---------------------------------------------------------------------------------------
 * Metrics: counters written by workers with relaxed atomics, read by /metrics.
 */
typedef struct node_metrics {
    /* By wire form (node_wire_t); /metrics sums the forms of one transport. */
    _Atomic uint64_t connections_accepted[NODE_WIRE_COUNT];
    _Atomic uint64_t messages_sent[NODE_WIRE_COUNT];     /* frames written to clients */
    _Atomic uint64_t messages_received[NODE_WIRE_COUNT]; /* frames received from clients */
    _Atomic uint64_t publications;                       /* publications accepted by the broker */
    _Atomic uint64_t api_commands;
    _Atomic uint64_t api_errors;
    _Atomic uint64_t reply_errors;
    _Atomic uint64_t disconnects[16]; /* by code slot, see node_metrics_disconnect_slot */
    _Atomic uint64_t recover_ok;
    _Atomic uint64_t recover_fail;
    _Atomic uint64_t emulation_forwarded; /* /emulation frames sent on to another node */
} node_metrics_t;

/* ---------------------------------------------------------------------------------------
 * The node.
 */
struct node {
    const node_config_t *cfg; /* borrowed; read-only after start */
    char uid[37];             /* random per start */
    int nworkers;
    node_worker_t **workers;           /* owned */
    node_engine_t *engine;             /* owned */
    node_jwt_verifier_t *verifier;     /* connection tokens; owned */
    node_jwt_verifier_t *sub_verifier; /* subscription tokens (== verifier unless separate) */
    _Atomic int draining;              /* 1: shutting down, /ready answers 503 */
    _Atomic uint32_t nclients;         /* clients of every worker (client.connection_limit) */
    int64_t start_ms;
    node_metrics_t metrics;
};

/* ---------------------------------------------------------------------------------------
 * Operations between workers and the engine.
 */
typedef enum node_op_kind {
    NODE_OP_HUB_SUB,   /* the worker has subscribers of channel now (no reply) */
    NODE_OP_HUB_UNSUB, /* the worker has none any more (no reply) */
    NODE_OP_HUB_WAIT,  /* answers once the broker delivers channel's publications here */
    NODE_OP_PUBLISH,
    NODE_OP_HISTORY,
    NODE_OP_HISTORY_REMOVE,
    NODE_OP_PRESENCE_ADD,
    NODE_OP_PRESENCE_REMOVE,
    NODE_OP_PRESENCE_GET,
    NODE_OP_PRESENCE_STATS,
    NODE_OP_JOIN,
    NODE_OP_LEAVE,
    NODE_OP_CONTROL,     /* apply a control command on every worker (no result) */
    NODE_OP_SURVEY,      /* collect counts/channels from every worker */
    NODE_OP_USER_ADD,    /* count a connection of user (channel = user); RT_ELIMIT over limit */
    NODE_OP_USER_REMOVE, /* uncount it (no reply) */
    NODE_OP_EMULATION,   /* forward an /emulation frame to the node holding the session */
} node_op_kind_t;

/* Runs on the worker that posted the op, which then frees it. */
typedef void (*node_op_done_fn)(node_worker_t *w, node_op_t *op);

typedef struct node_blob node_blob_t;
struct node_blob {
    node_blob_t *next;
    char bytes[];
};

typedef struct node_survey_result {
    uint32_t num_clients;
    uint32_t num_subs;
    node_map_t users;    /* user -> (void *)(count + 1); keys owned below */
    node_map_t channels; /* channel -> (void *)(num_clients + 1); keys owned below */
    node_blob_t *keys;   /* owned storage of the map keys */
} node_survey_result_t;

struct node_op {
    rt_mail_t mail;
    node_op_kind_t kind;
    int worker;            /* index of the worker to answer */
    node_op_done_fn done;  /* NULL: nothing to answer, the engine frees the op */
    uint64_t ref_id;       /* client id or API request id, looked up on completion */
    uint64_t sub_serial;   /* subscription serial for subscribe-flow ops */
    uint32_t cmd_id;       /* protocol command id or API batch slot */
    node_blob_t *blobs;    /* owned copies behind the slices below */
    node_engine_t *engine; /* set while the op is on the engine (broker callbacks need it) */

    /* request */
    rt_str_t channel;
    broker_publish_req_t pub;  /* PUBLISH; slices point into blobs */
    broker_history_req_t hist; /* HISTORY; channel points into blobs */
    rt_client_info_t info;     /* PRESENCE_ADD, JOIN, LEAVE; slices into blobs */
    node_control_t *control;   /* CONTROL; owned reference */
    char pattern[256];         /* SURVEY channels: glob pattern ("" = all) */
    bool want_channels;        /* SURVEY */

    /* result */
    int status;
    uint64_t offset;
    char epoch[NODE_EPOCH_MAX];
    bool suppressed;
    broker_pub_t **pubs; /* owned references */
    size_t npubs;
    rt_client_info_t *entries; /* PRESENCE_GET; slices into blobs */
    size_t nentries;
    uint32_t num_clients;
    uint32_t num_users;
    node_survey_result_t *survey; /* SURVEY: merged result, owned */
    struct node_info *nodes;      /* SURVEY info: other live nodes from the registry, owned */
    size_t nnodes;
    /* Ops the engine runs for itself (heartbeats, remote surveys): called on the engine
     * instead of answering a worker. */
    void (*engine_done)(node_engine_t *e, node_op_t *op);
    /* EMULATION: target node uid in remote_uid, session in channel, frame in emu_data. */
    rt_str_t emu_data;
    uint64_t remote_id; /* engine-internal: survey id of the requesting node */
    char remote_uid[37];
};

/* New op of kind that answers `done` on worker w (done NULL = no answer). */
node_op_t *node_op_new(node_op_kind_t kind, node_worker_t *w, node_op_done_fn done);
/* Copies s into the op; the slice lives as long as the op. */
rt_str_t node_op_copy(node_op_t *op, rt_str_t s);
void node_op_free(node_op_t *op);
/* Any worker thread: hands op to the engine (takes ownership). */
void node_engine_post(node_engine_t *e, node_op_t *op);

void node_survey_result_init(node_survey_result_t *r);
void node_survey_result_cleanup(node_survey_result_t *r);
/* Adds key (copied) with n to the map (summing). */
void node_survey_result_add(node_survey_result_t *r, node_map_t *m, rt_str_t key, uintptr_t n);

/* ---------------------------------------------------------------------------------------
 * Control commands (server API subscribe/unsubscribe/disconnect/refresh by user), shared
 * read-only by every worker: atomic refcount, one allocation per string.
 */
typedef enum node_control_kind {
    NODE_CONTROL_SUBSCRIBE,
    NODE_CONTROL_UNSUBSCRIBE,
    NODE_CONTROL_DISCONNECT,
    NODE_CONTROL_REFRESH,
} node_control_kind_t;

struct node_control {
    _Atomic uint32_t refs;
    node_control_kind_t kind;
    char *user;       /* owned */
    char *client;     /* owned; "" = any */
    char *session;    /* owned; "" = any */
    char *channel;    /* owned; unsubscribe "" = all channels */
    char **whitelist; /* owned, NULL-terminated; disconnect: client ids to spare */
    int code;         /* disconnect */
    char *reason;     /* owned */
    /* subscribe */
    rt_buf_t info; /* chan info bytes */
    rt_buf_t data; /* subscribe push data */
    bool has_recover_since;
    uint64_t recover_offset;
    char recover_epoch[NODE_EPOCH_MAX];
    int64_t expire_at; /* subscribe / refresh */
    node_jwt_override_t override;
    /* refresh */
    bool expired;
    bool has_expire_at;
    bool has_info;
};

node_control_t *node_control_new(node_control_kind_t kind);
node_control_t *node_control_ref(node_control_t *c);
void node_control_unref(node_control_t *c);

/* ---------------------------------------------------------------------------------------
 * Engine.
 */
struct node_engine {
    node_t *node;         /* borrowed */
    struct ev_loop *loop; /* owned by the engine thread (the main thread) */
    rt_mailbox_t mailbox;
    broker_t *broker;          /* owned */
    presence_t *presence;      /* owned */
    node_map_t channels;       /* channel -> node_eng_chan_t (workers with subscribers) */
    node_map_t users;          /* user -> eng_user_t (connections, for user_connection_limit) */
    node_map_t registry;       /* uid -> eng_node_t: other nodes heard from (SERVER.md §3.10) */
    node_map_t remote_surveys; /* survey id -> eng_rsurvey_t waiting for other nodes */
    uint64_t next_survey_id;
    ev_timer heartbeat;   /* node announcement and registry clean-up */
    ev_timer ready_timer; /* samples broker readiness for /ready */
    _Atomic int broker_ok;
    /* Why not ready: a string owned by the broker, alive until the engine is freed (after
     * the workers stopped reading it). */
    _Atomic(const char *) broker_reason;
    node_survey_t *surveys; /* in progress (freed at exit if workers never answered) */
    ev_timer unsub_timer;   /* drops idle channel subscriptions after a delay */
    _Atomic uint64_t num_channels;
    struct node_consumers *consumers; /* owned (node/consumer.h); NULL when none enabled */
};

node_engine_t *node_engine_new(node_t *node, struct ev_loop *loop);
/* True for a mail that carries an answered op to a worker (node_op_free frees it). */
bool node_engine_is_answer(const rt_mail_t *mail);
/* Engine thread: hands a finished op to its worker (or frees / runs engine_done). */
void node_engine_answer(node_engine_t *e, node_op_t *op);

/* cluster.c (engine thread): registry, control messages, surveys across nodes. */
void node_cluster_start(node_engine_t *e);
void node_cluster_stop(node_engine_t *e);
void node_cluster_shutdown(node_engine_t *e); /* tells the other nodes we leave */
void node_cluster_on_control(void *ud, rt_str_t data);
void node_cluster_on_resubscribed(void *ud);
void node_cluster_publish_command(node_engine_t *e, node_control_t *c);
/* EMULATION op: sends the frame to the node named in op->remote_uid. 0, RT_ENOTFOUND for a
 * node not in the registry, or the broker's error. */
int node_cluster_emulation(node_engine_t *e, node_op_t *op);
/* A local survey finished: extend it to other nodes (channels), attach the registry
 * (info), or answer. */
void node_cluster_local_survey_done(node_engine_t *e, node_op_t *op);
void node_engine_free(node_engine_t *e);
/* Engine thread: a worker finished its part of a survey (see worker.c). */
void node_engine_survey_part(node_engine_t *e, node_survey_t *s, int worker,
                             node_survey_result_t *part);

/* ---------------------------------------------------------------------------------------
 * Hub shard of a worker: channel -> local subscriptions.
 */
struct node_hub_chan {
    char *name; /* owned */
    size_t len;
    bool confirmed;   /* the broker confirmed the subscription (HUB_WAIT answered) */
    node_sub_t *subs; /* first subscription (doubly linked through chan_prev/chan_next) */
    size_t nsubs;
};

typedef enum node_sub_state {
    NODE_SUB_SUBSCRIBING, /* ops in flight, publications buffered */
    NODE_SUB_SUBSCRIBED,
} node_sub_state_t;

typedef enum node_sub_origin {
    NODE_SUB_CLIENT,      /* subscribe command: answered with a subscribe reply */
    NODE_SUB_CONNECT,     /* server-side at connect: part of the connect reply */
    NODE_SUB_SERVER_PUSH, /* server-side later (API subscribe): subscribe push */
} node_sub_origin_t;

struct node_sub {
    node_client_t *client; /* borrowed back-pointer; the client owns the sub */
    node_hub_chan_t *chan; /* borrowed; the hub channel we are linked into */
    node_sub_t *chan_prev, *chan_next;
    node_sub_t *next; /* in the client's list */
    uint64_t serial;  /* unique in the worker: ops find the sub by it */
    char *channel;    /* owned */
    size_t channel_len;
    node_sub_state_t state;
    node_sub_origin_t origin;
    uint32_t cmd_id; /* subscribe command to answer */
    int pending_ops; /* ops of the subscribe flow still in flight */
    int failed_code; /* error to answer when the flow completes (0 = ok) */
    bool positioned;
    bool recoverable;
    bool recover;            /* the request asked to recover from (offset, epoch) */
    bool reject_unrecovered; /* flag bit 2 */
    bool presence;           /* has a presence entry */
    bool emit_join_leave;    /* publish join/leave for this subscriber */
    bool push_join_leave;    /* receive join/leave pushes */
    uint64_t offset;         /* tracked position (positioned) */
    char epoch[NODE_EPOCH_MAX];
    uint64_t req_offset; /* recover request position */
    char req_epoch[NODE_EPOCH_MAX];
    int64_t expire_at;  /* Unix s; 0 = never */
    rt_str_t chan_info; /* owned bytes (chan_info_buf) */
    char *chan_info_buf;
    char *data_buf; /* subscribe result data (owned) */
    size_t data_len;
    broker_pub_t **buffered; /* live publications received while subscribing (owned refs) */
    size_t nbuffered, buffered_cap;
    broker_pub_t **history; /* history/recovery read result (owned refs) */
    size_t nhistory;
    uint64_t top_offset; /* stream top from the read */
    char top_epoch[NODE_EPOCH_MAX];
    double last_seen; /* ev_now of the last delivered publication or check */
};

/* ---------------------------------------------------------------------------------------
 * Client sessions.
 */
typedef enum node_client_state {
    NODE_CLIENT_CONNECTING, /* waiting for connect */
    NODE_CLIENT_AUTHING,    /* connect accepted, server-side subscriptions in flight */
    NODE_CLIENT_CONNECTED,
    NODE_CLIENT_FAILED, /* connect got an error reply: every further command is 3501 */
    NODE_CLIENT_CLOSING,
} node_client_state_t;

struct node_client {
    node_worker_t *w;           /* borrowed */
    uint64_t id;                /* worker-unique id (map key) */
    char uuid[37];              /* protocol client id */
    node_wire_t wire;           /* how messages travel to this client */
    const node_codec_t *codec;  /* the wire's encoding */
    void *tr;                   /* borrowed transport object for wire (tr_ws_t, tr_stream_t,
                                 * tr_grpc_call_t); NULL once closed */
    char session[40];           /* emulation/unidirectional session id; "" = none */
    node_client_t *prev, *next; /* worker's client list */
    node_client_state_t state;
    char *user;      /* owned, "" anonymous */
    char *conn_info; /* owned bytes or NULL */
    size_t conn_info_len;
    char name[17];
    char version[65];
    int64_t expire_at;   /* Unix s; 0 = never */
    bool client_refresh; /* expiry refreshed by the client (JWT) */
    uint32_t connect_cmd_id;
    int connect_pending; /* server-side subscribe flows before the connect reply */
    node_sub_t *subs;    /* owned list */
    int nsubs;
    ev_timer timer;  /* next of: stale, ping, pong deadline, expiry */
    double stale_at; /* ev time; 0 = none */
    double ping_at;
    double pong_deadline; /* 0 = no ping outstanding */
    double expire_close_at;
    bool insecure;          /* client.insecure: every operation allowed */
    bool native_ping;       /* WebSocket ping frames (cf_ws_frame_ping_pong=true, uni WS) */
    bool app_ping;          /* protocol pings ({} / empty message) */
    bool counted_user;      /* counted by the engine for user_connection_limit */
    char *token_channels;   /* owned: channels granted by the connect token (see client.c) */
    int inflight;           /* commands waiting for an engine answer */
    int pending_disconnect; /* code to close with once inflight reaches 0 (0 = none) */
    rt_buf_t deferred;      /* commands received while AUTHING, processed after connect */
};

/* ---------------------------------------------------------------------------------------
 * Worker.
 */
typedef struct node_api_req node_api_req_t;

struct node_worker {
    node_t *node; /* borrowed */
    int index;
    pthread_t thread;     /* unused when shares_loop */
    struct ev_loop *loop; /* owned, unless shares_loop */
    /* With a single worker it runs on the engine's loop, in the main thread: a publish then
     * goes worker -> engine -> worker without a thread switch or a syscall per hop. */
    bool shares_loop;
    bool finished; /* shares_loop: the drain is over (the threaded worker's loop just ends) */
    rt_mailbox_t mailbox;
    tr_loop_t tl;
    tr_http_server_t *http;          /* owned */
    tr_grpc_server_t *grpc;          /* owned; NULL unless uni_grpc is enabled */
    tr_http_server_t *internal_http; /* owned; NULL unless the internal listener is separate */
    node_ratelimit_t conn_rate;      /* this worker's share of client.connection_rate_limit */
    node_map_t clients;              /* id -> client */
    node_client_t *client_list;      /* all clients */
    uint32_t nclients;
    node_map_t hub;      /* channel -> node_hub_chan_t */
    node_map_t sessions; /* session id -> client (emulation transports) */
    node_map_t waits;    /* id -> node_http_wait_t: requests waiting for the engine */
    node_map_t api_reqs; /* id -> node_api_req_t */
    uint64_t next_id;
    uint64_t num_subs;
    rt_buf_t scratch; /* encoding buffer, reset before each use */
    ev_timer tick;    /* presence refresh, expiry and position checks */
    ev_timer trim;    /* gives freed heap back to the kernel after many clients left */
    uint32_t gone_since_trim;
    ev_async stop;  /* asks the loop to drain clients (shutdown) */
    int stop_phase; /* 0 running, 1 disconnecting clients */
    ev_timer close_window;
    uint32_t close_batch; /* clients disconnected per close_window tick */
};

/* shared_loop: NULL for a worker with a loop and thread of its own, or the engine's loop
 * (main thread) for the only worker. */
node_worker_t *node_worker_new(node_t *node, int index, struct ev_loop *shared_loop);
/* Opens the worker's listener and attaches its watchers without starting a thread (tests
 * drive the loop themselves). Returns 0 or RT_EIO. */
int node_worker_listen(node_worker_t *w);
/* node_worker_listen, then the worker thread. Returns 0 or RT_EIO. */
int node_worker_start(node_worker_t *w);
/* Any thread: stop accepting and disconnect every client with 3001; the loop ends when
 * no connection is left. */
void node_worker_request_stop(node_worker_t *w);
/* Main thread: true once the worker is done; a threaded one is joined then. */
bool node_worker_try_join(node_worker_t *w);
void node_worker_join(node_worker_t *w);
void node_worker_free(node_worker_t *w);
/* Worker thread: post to the engine. */
static inline void node_worker_post(node_worker_t *w, node_op_t *op)
{
    node_engine_post(w->node->engine, op);
}
uint64_t node_worker_next_id(node_worker_t *w);
/* A client of w was freed (client.c): after many, freed heap is returned to the kernel. */
void node_worker_client_gone(node_worker_t *w);

/* Engine -> worker mails. */
void node_worker_deliver_pub(node_worker_t *w, broker_pub_t *pub); /* takes a ref */
void node_worker_deliver_join(node_worker_t *w, rt_str_t channel, const rt_client_info_t *info,
                              bool leave);                             /* copies */
void node_worker_deliver_control(node_worker_t *w, node_control_t *c); /* takes a ref */
void node_worker_survey(node_worker_t *w, node_survey_t *s, bool want_channels,
                        const char *pattern);
/* The broker's subscriptions were restored: check every positioned subscription. */
void node_worker_recheck_positions(node_worker_t *w);

/* hub.c (worker thread) */
/* Links sub into its channel (creating it and telling the engine on first use). Returns
 * true while the broker has not confirmed the channel yet: the caller waits for a
 * NODE_OP_HUB_WAIT before answering the subscribe. */
bool node_hub_attach(node_worker_t *w, node_sub_t *sub);
void node_hub_detach(node_worker_t *w, node_sub_t *sub);
/* Fan-out of one publication to the local subscribers of its channel. pub borrowed. */
void node_hub_fanout(node_worker_t *w, broker_pub_t *pub);
void node_hub_fanout_join(node_worker_t *w, rt_str_t channel, const rt_client_info_t *info,
                          bool leave);
/* The shared frame of pub on wire (encoded once per publication and wire form, cached in
 * it). Returns NULL when pub cannot be encoded for the wire (binary data to JSON).
 * Borrowed. */
rt_shared_t *node_hub_pub_frame(broker_pub_t *pub, node_wire_t wire);
/* Counts of encodes done by node_hub_pub_frame (for tests). */
uint64_t node_hub_encode_count(void);

/* client.c (worker thread) */
/* A new session on wire; returns the transport handler context. The caller sets c->tr once
 * the transport object exists. */
node_client_t *node_client_new(node_worker_t *w, node_wire_t wire);
/* Transport events (link.c calls these; emulation.c hands /emulation frames to on_frame). */
void node_client_on_frame(node_client_t *c, const uint8_t *data, size_t len);
void node_client_on_native_pong(node_client_t *c);
void node_client_on_link_closed(node_client_t *c);
/* A unidirectional connect request, already decoded. */
void node_client_uni_connect(node_client_t *c, const node_cmd_t *cmd);
/* The same from a bare JSON ConnectRequest; malformed => disconnect 3501. */
void node_client_uni_connect_json(node_client_t *c, const uint8_t *p, size_t n);

/* link.c (worker thread): the client's transport. */
extern const tr_ws_handler_t node_link_ws_handler;
extern const tr_stream_handler_t node_link_stream_handler;
int node_link_send(node_client_t *c, rt_bytes_t *frame);
/* Ends the transport the way the wire signals a disconnect (PROTOCOL.md §6.4). discard:
 * queued output is dropped first (slow clients). */
void node_link_close(node_client_t *c, int code, const char *reason, bool discard);
void node_link_native_ping(node_client_t *c);
size_t node_link_queued_bytes(const node_client_t *c);
const char *node_link_remote(const node_client_t *c);
void node_client_disconnect(node_client_t *c, int code, const char *reason);
/* Delivers a live publication to one subscription (positioning, buffering). frame: the
 * shared view of this publication for the client's wire in this worker (borrowed), NULL if
 * not encodable. */
void node_client_on_pub(node_sub_t *s, broker_pub_t *pub, rt_bytes_t *frame);
void node_client_send_frame(node_client_t *c, rt_bytes_t *frame);
/* Frames w->scratch (one encoded message) for the client's wire and sends it. */
void node_client_send_scratch(node_client_t *c);
void node_client_apply_control(node_client_t *c, const node_control_t *ctl);
void node_client_tick(node_client_t *c, double now);
/* Compares every positioned subscription with the stream top (insufficient state if
 * publications were missed). */
void node_client_check_positions(node_client_t *c);

/* http_transports.c, emulation.c (worker thread) */
bool node_origin_allowed(const node_config_t *cfg, const tr_http_req_t *req);
/* Appends the CORS response headers for req's Origin when it is allowed (nothing otherwise). */
void node_cors_headers(const node_config_t *cfg, const tr_http_req_t *req, rt_buf_t *out);
bool node_connection_limit_reached(node_worker_t *w);
/* The checks before any WebSocket upgrade (upgrade request, Origin, connection limit and
 * rate): answers req (400/403/503) and returns false when it may not proceed. */
bool node_websocket_admit(node_worker_t *w, tr_http_req_t *req);
/* The worker index a session id names, or -1. */
int node_session_worker(rt_str_t session, int nworkers);
void node_handle_http_stream(node_worker_t *w, tr_http_req_t *req);
/* grpc_uni.c: the worker's uni_grpc listener. 0 or RT_EIO. */
int node_grpc_uni_listen(node_worker_t *w);
void node_handle_sse(node_worker_t *w, tr_http_req_t *req);
void node_handle_emulation(node_worker_t *w, tr_http_req_t *req);
void node_handle_uni_websocket(node_worker_t *w, tr_http_req_t *req);
void node_handle_uni_sse(node_worker_t *w, tr_http_req_t *req);
void node_handle_uni_http_stream(node_worker_t *w, tr_http_req_t *req);
/* The JSON /emulation envelope {"session":S,"node":N,"data":"<frame as a JSON string>"}:
 * appends the unescaped fields to the buffers. 0 or RT_EPROTO. */
int node_emulation_decode_json(rt_str_t body, rt_buf_t *node, rt_buf_t *session, rt_buf_t *data);
/* Delivers an emulation frame to the session (here or on the node named), answers req. */
void node_emulation_route(node_worker_t *w, tr_http_req_t *req, rt_str_t node, rt_str_t session,
                          rt_str_t data);
/* Any thread: hands an emulation frame to the worker holding session (copied). */
void node_worker_deliver_emulation(node_worker_t *w, rt_str_t session, rt_str_t data);

/* api.c (worker thread) */
void node_api_handle(node_worker_t *w, tr_http_req_t *req, rt_str_t method);
void node_api_handle_legacy(node_worker_t *w, tr_http_req_t *req);

/* metrics.c */
void node_metrics_render(node_worker_t *w, tr_http_req_t *req);
void node_metrics_count_disconnect(node_t *node, int code);

/* Permission helpers (client.c) shared with api.c. */
bool node_data_format_ok(const node_ns_opts_t *ns, rt_str_t data, bool binary);

#endif

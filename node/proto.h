/* Client protocol v2, JSON format (PROTOCOL.md §1-§5): a Command decoder that walks one
 * transport frame, and encoders for every Reply and Push the server sends.
 *
 * Decoding follows the reference decoder: a line that does not decode as a Command (wrong
 * JSON types for known fields included) fails the whole frame (disconnect 3501); unknown keys
 * are ignored; a key present with `null` counts as absent; key order is irrelevant.
 *
 * Encoders append exactly one JSON message (no newline) to a caller's rt_buf_t, with keys in
 * field-number order, `id` first, proto3 defaults omitted except for the always-present fields
 * of §1.2, result objects always present even when empty. Raw values (data, info, ...) go out
 * byte for byte minus raw CR/LF. Single-threaded per call; no state besides the arguments. */
#ifndef RT_NODE_PROTO_H
#define RT_NODE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/pub.h"
#include "node/base/buf.h"
#include "node/base/json.h"
#include "node/base/str.h"

/* ------------------------------------------------------------------------------------------
 * Commands (client -> server)
 */

typedef enum node_cmd_type {
    NODE_CMD_PONG, /* id == 0 and no `send`, whatever else the command holds (§5) */
    NODE_CMD_CONNECT,
    NODE_CMD_SUBSCRIBE,
    NODE_CMD_UNSUBSCRIBE,
    NODE_CMD_PUBLISH,
    NODE_CMD_PRESENCE,
    NODE_CMD_PRESENCE_STATS,
    NODE_CMD_HISTORY,
    NODE_CMD_RPC,
    NODE_CMD_SEND, /* any id; never replied to */
    NODE_CMD_REFRESH,
    NODE_CMD_SUB_REFRESH,
    NODE_CMD_UNKNOWN, /* id > 0 and none of the request fields (obsolete `ping` too): 3501 */
} node_cmd_type_t;

/* One entry of connect.subs (server-side subscription to resume). Slices borrowed like
 * node_cmd_t's. */
typedef struct node_sub_recover {
    rt_str_t channel; /* map key, unescaped; never duplicated within one command */
    bool recover;
    uint64_t offset;
    rt_str_t epoch;
    rt_str_t delta; /* "" or "fossil"; other values are the caller's 3501 */
} node_sub_recover_t;

/* A decoded Command. Only the fields of `type` are meaningful; the rest are zero/empty.
 * Every slice is borrowed from the frame or from the reader's scratch, valid until the next
 * node_json_reader_next()/node_json_reader_cleanup() on the same reader. Strings are
 * unescaped UTF-8; `data` is the raw JSON text of the value (any JSON type), empty when the
 * key was absent or null. */
typedef struct node_cmd {
    uint32_t id;
    node_cmd_type_t type;
    /* channel: subscribe, unsubscribe, publish, presence, presence_stats, history,
     * sub_refresh. token: connect, subscribe, refresh, sub_refresh. data: connect, subscribe,
     * publish, rpc, send. name, version: connect. method: rpc. epoch, offset, recover, delta,
     * positioned, recoverable, join_leave, flag: subscribe (flag also connect). */
    rt_str_t channel;
    rt_str_t token;
    rt_str_t data;
    rt_str_t name;
    rt_str_t version;
    rt_str_t method;
    rt_str_t epoch;
    rt_str_t delta;
    bool recover;
    bool positioned;
    bool recoverable;
    bool join_leave;
    uint64_t offset; /* subscribe offset, or history since.offset */
    int64_t flag;
    /* Extensions (Appendix A) the caller must refuse: subscribe.type (4 => 108, 1-3 => 103),
     * publish.type (!= 0 => 108), subscribe.tf present (=> 107). */
    int32_t ext_type;
    bool has_tf;
    /* history */
    bool reverse;
    bool has_limit; /* limit given (centrifuge-js omits it for "position only") */
    int32_t limit;
    bool has_since; /* since given (non-null object) */
    rt_str_t since_epoch;
    /* connect.subs; nsubs == 0 => subs may be NULL. Owned by the reader. */
    const node_sub_recover_t *subs;
    size_t nsubs;
} node_cmd_t;

/* Walks the lines of one JSON frame. Owns the parse tree of the current line and a scratch
 * buffer for unescaped strings; borrows the frame, which must outlive the reader. */
typedef struct node_json_reader {
    const char *frame; /* borrowed */
    size_t len;
    size_t pos;               /* start of the next line */
    size_t ncmds;             /* commands returned so far */
    bool failed;              /* sticky: RT_EPROTO returned once, every later call repeats it */
    rt_json_doc_t doc;        /* owned; tree of the last line */
    rt_buf_t scratch;         /* owned; unescaped strings of the last command */
    node_sub_recover_t *subs; /* owned; connect.subs of the last command */
    size_t subs_cap;
} node_json_reader_t;

/* Starts reading frame[0..len) (borrowed until cleanup). Never fails. */
void node_json_reader_init(node_json_reader_t *r, const uint8_t *frame, size_t len);
/* Decodes the next command of the frame into *cmd (whose slices stay valid until the next
 * call or cleanup). Returns 1 when *cmd is filled, 0 when the frame is exhausted, RT_EPROTO
 * when the next line is not a valid Command or the frame holds no command at all (reported
 * on the first call) — the caller disconnects with 3501 after processing the commands already
 * returned. Blank lines and a trailing "\n" are allowed. RT_EPROTO is sticky. */
int node_json_reader_next(node_json_reader_t *r, node_cmd_t *cmd);
void node_json_reader_cleanup(node_json_reader_t *r);
/* A bare ConnectRequest (unidirectional transports send one instead of a Command): fills
 * *cmd as NODE_CMD_CONNECT with id 0, slices valid as for reader_next. Empty input or
 * `null` is an empty request. r must be initialised (any frame). Returns 0 or RT_EPROTO. */
int node_json_decode_connect_request(node_json_reader_t *r, const uint8_t *p, size_t n,
                                     node_cmd_t *cmd);

/* ------------------------------------------------------------------------------------------
 * Replies (server -> client, bidirectional)
 *
 * Functions returning int return 0, or RT_EINVAL when a payload (publication data/info,
 * connect/subscribe data, ClientInfo conn_info/chan_info) is not JSON, e.g. published with
 * b64data for Protobuf clients: the caller must disconnect the JSON client with 3506
 * (inappropriate protocol). On RT_EINVAL the buffer holds a partial message: truncate it back
 * to its length before the call.
 */

/* {"id":N,"error":{"code":C,"message":M,"temporary":true}}. message NULL => the table's text
 * (node_error_message); temporary false is omitted. */
void node_json_reply_error(rt_buf_t *b, uint32_t id, int code, const char *message, bool temporary);
/* {"id":N,"<result_field>":{}}: unsubscribe, publish, or subscribe/sub_refresh/refresh
 * results that carry nothing. result_field is a static name. */
void node_json_reply_empty(rt_buf_t *b, uint32_t id, const char *result_field);

/* SubscribeResult (also the values of ConnectResult.subs and the Subscribe push). Borrowed
 * throughout. */
typedef struct node_sub_result {
    bool expires;
    uint32_t ttl; /* seconds; written only with expires */
    bool recoverable;
    rt_str_t epoch;
    broker_pub_t *const *pubs; /* recovered publications, ascending offset; borrowed */
    size_t npubs;
    bool recovered;
    uint64_t offset;
    bool positioned;
    rt_str_t data; /* raw JSON; empty = absent */
    bool was_recovering;
} node_sub_result_t;

/* ConnectResult, and the Connect push of unidirectional transports. Borrowed throughout. */
typedef struct node_connect_result {
    rt_str_t client;
    rt_str_t version;
    bool expires;
    uint32_t ttl;                  /* seconds */
    rt_str_t data;                 /* raw JSON; empty = absent */
    const rt_str_t *sub_channels;  /* nsubs channel names (ConnectResult.subs keys) */
    const node_sub_result_t *subs; /* nsubs results, same order */
    size_t nsubs;
    uint32_t ping; /* seconds; 0 = no pings, omitted */
    bool pong;
    rt_str_t session;
    rt_str_t node;
    int64_t time_ms; /* 0 = omitted */
} node_connect_result_t;

int node_json_reply_connect(rt_buf_t *b, uint32_t id, const node_connect_result_t *r);
int node_json_reply_subscribe(rt_buf_t *b, uint32_t id, const node_sub_result_t *r);
/* {"id":N,"presence":{"presence":{"<client>":ClientInfo,...}}}, the map always present. */
int node_json_reply_presence(rt_buf_t *b, uint32_t id, const rt_client_info_t *e, size_t n);
/* Both counts always written. */
void node_json_reply_presence_stats(rt_buf_t *b, uint32_t id, uint32_t clients, uint32_t users);
/* publications (maybe []), epoch (maybe "") and offset (maybe 0) always written. */
int node_json_reply_history(rt_buf_t *b, uint32_t id, broker_pub_t *const *pubs, size_t n,
                            rt_str_t epoch, uint64_t offset);
/* {"id":N,"rpc":{"data":D}}; data raw JSON, empty => {"id":N,"rpc":{}}. */
int node_json_reply_rpc(rt_buf_t *b, uint32_t id, rt_str_t data);
/* field: "refresh" or "sub_refresh"; ttl written only with expires. The reference never sets
 * RefreshResult.client/version (§3.10), neither do we. */
void node_json_reply_refresh(rt_buf_t *b, uint32_t id, const char *field, bool expires,
                             uint32_t ttl);
/* Server ping / expected pong: {} */
void node_json_ping(rt_buf_t *b);

/* ------------------------------------------------------------------------------------------
 * Pushes: every node_json_push_* writes the bidirectional form {"push":P}. Unidirectional
 * transports send P bare: see node_json_push_bare().
 */

/* {"push":{"channel":C,"pub":Publication}} with the publication's own channel. */
int node_json_push_pub(rt_buf_t *b, const broker_pub_t *pub);
/* {"push":{"channel":C,"join":{"info":I}}} ("leave" when leave). */
int node_json_push_join(rt_buf_t *b, rt_str_t channel, const rt_client_info_t *info, bool leave);
/* reason NULL => the table's text (node_unsubscribe_reason). */
void node_json_push_unsubscribe(rt_buf_t *b, rt_str_t channel, int code, const char *reason);
/* Server-side subscribe: Subscribe{recoverable, epoch, offset, positioned, data} of r. */
int node_json_push_subscribe(rt_buf_t *b, rt_str_t channel, const node_sub_result_t *r);
/* {"push":{"message":{"data":D}}}; data raw JSON. */
int node_json_push_message(rt_buf_t *b, rt_str_t data);
/* reason NULL => the table's text (node_disconnect_reason). */
void node_json_push_disconnect(rt_buf_t *b, int code, const char *reason);
void node_json_push_refresh(rt_buf_t *b, bool expires, uint32_t ttl);
/* Connect push (unidirectional transports, always their first message); Connect field
 * order, which differs from ConnectResult. */
int node_json_push_connect(rt_buf_t *b, const node_connect_result_t *r);

/* The bare Push P inside msg = {"push":P} as produced by node_json_push_*; borrowed from
 * msg. */
static inline rt_str_t node_json_push_bare(rt_str_t msg)
{
    return rt_str_from(msg.p + 8, msg.n - 9);
}

/* ------------------------------------------------------------------------------------------
 * Shared objects, also used by the server API (SERVER.md §1.4).
 */

/* Publication: data, info (if has_info), offset (if > 0), tags (if any); never epoch, time
 * or channel. api: server-API flavour, where binary data goes out base64 as "b64data"
 * (SERVER.md §7.3) instead of failing. Returns RT_EINVAL when data is binary and !api, or
 * when info's conn_info/chan_info is not JSON (either flavour: the reference fails then). */
int node_json_write_pub(rt_buf_t *b, const broker_pub_t *pub, bool api);
/* ClientInfo: user and client always, conn_info/chan_info when non-empty. RT_EINVAL when
 * conn_info or chan_info is not JSON. */
int node_json_write_client_info(rt_buf_t *b, const rt_client_info_t *info);

#endif

/* Client protocol v2, Protobuf format (PROTOCOL.md §1.3-§1.4, messages of §2 in
 * node/proto/client.proto): the twin of node/proto.h with the same contract, so node/client.c
 * can pick a codec per connection through a table of function pointers.
 *
 * Decoding uses the protobuf-c code generated from node/proto/client.proto. A frame is a
 * sequence of varint-length-prefixed Commands. Unknown fields are skipped; a known field of
 * the wrong wire type, a group (never used by proto3; protobuf-c refuses them), a broken
 * varint, a length past the end of the frame or of a message fails the frame (disconnect
 * 3501; the reference ends the frame silently on a broken length varint, we fail it). node_cmd_t is
 * filled exactly as node_json_reader_next() fills it for the same command, with these Protobuf
 * specifics:
 *   - data fields carry the raw bytes (any bytes, not necessarily JSON); absent = empty.
 *   - proto3 cannot tell a default from an absent scalar: history `limit` 0 and no limit are
 *     the same (has_limit = limit != 0). The reference does the same: it copies req.Limit,
 *     and 0 means "no publications, current position only"; node/client.c treats !has_limit
 *     as limit 0, so both codecs behave alike. Message fields keep their presence: has_since
 *     and has_tf are set for an empty `since`/`tf` too.
 *   - strings are checked to be UTF-8 (the JSON reader guarantees it for what it hands out;
 *     channel names, tokens and epochs reach JSON clients, Redis keys and logs): invalid
 *     UTF-8 in a string we surface fails the frame. protobuf-c keeps strings NUL-terminated
 *     without their length, so a string is read up to its first NUL byte.
 *
 * Encoders append exactly one encoded `Reply` (no length prefix: the transport frames it with
 * node_pb_put_varint()) with fields in field-number order and proto3 defaults omitted, except
 * result messages, which are always written, even empty (Reply{id:2, subscribe:{}} is
 * 08 02 32 00). data/info bytes go out as they are. The encoders are hand-written (no
 * intermediate protobuf-c structs: those need NUL-terminated copies of every string, and
 * node_pb_push_pub runs once per publication on the fan-out path). Single-threaded per call;
 * no state besides the arguments. */
#ifndef RT_NODE_PROTO_PB_H
#define RT_NODE_PROTO_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/pub.h"
#include "node/base/buf.h"
#include "node/base/str.h"
#include "node/proto.h"

struct ProtobufCMessage;

/* Walks the delimited Commands of one frame. Owns the unpacked message of the last command
 * (every string slice of node_cmd_t points into it) and the connect.subs array; borrows the
 * frame, which must outlive the reader. */
typedef struct node_pb_reader {
    const uint8_t *frame; /* borrowed */
    size_t len;
    size_t pos;                   /* start of the next length prefix */
    size_t ncmds;                 /* commands returned so far */
    bool failed;                  /* sticky: RT_EPROTO returned once, every later call repeats it */
    struct ProtobufCMessage *msg; /* owned; the last unpacked Command or ConnectRequest */
    node_sub_recover_t *subs;     /* owned; connect.subs of the last command */
    size_t subs_cap;
} node_pb_reader_t;

/* Starts reading frame[0..len) (borrowed until cleanup). Never fails. */
void node_pb_reader_init(node_pb_reader_t *r, const uint8_t *frame, size_t len);
/* Decodes the next command of the frame into *cmd (whose slices stay valid until the next
 * call or cleanup on r). Returns 1 when *cmd is filled, 0 when the frame is exhausted,
 * RT_EPROTO when the next length prefix or Command does not decode, or the frame holds no
 * command at all (reported on the first call): the caller disconnects with 3501 after
 * processing the commands already returned. RT_EPROTO is sticky. An empty Command (the single
 * byte 00 of a frame) is a pong. */
int node_pb_reader_next(node_pb_reader_t *r, node_cmd_t *cmd);
void node_pb_reader_cleanup(node_pb_reader_t *r);

/* A bare ConnectRequest p[0..n) (the unidirectional gRPC request, not a Command): fills *cmd
 * as a NODE_CMD_CONNECT with id 0, like the connect field of a Command. Slices point into r
 * (any initialised reader; its frame position is untouched) and stay valid until the next
 * call on r or its cleanup. Returns 0, or RT_EPROTO when p does not decode (*cmd then an
 * empty connect), as node_json_decode_connect_request(). */
int node_pb_decode_connect_request(node_pb_reader_t *r, const uint8_t *p, size_t n,
                                   node_cmd_t *cmd);

/* EmulationRequest{node, session, data} (body of a Protobuf POST to /emulation, §10.3).
 * The slices point into p (no allocation); absent fields are empty. Returns 0, or RT_EPROTO
 * when p is not a valid EmulationRequest (bad wire format, node/session not UTF-8); the
 * outputs are then empty. */
int node_pb_decode_emulation(const uint8_t *p, size_t n, rt_str_t *node, rt_str_t *session,
                             rt_str_t *data);

/* ------------------------------------------------------------------------------------------
 * Replies (server -> client, bidirectional). Same parameters as the node_json_* twins; the
 * int-returning ones always return 0 (binary payloads are fine in Protobuf).
 */

/* Reply{id, error{code, message, temporary}}. message NULL => the table's text. */
void node_pb_reply_error(rt_buf_t *b, uint32_t id, int code, const char *message, bool temporary);
/* Reply{id, <result_field>:{}}. result_field is one of the static names "unsubscribe",
 * "publish", "subscribe", "sub_refresh", "refresh" (any Reply result name is accepted). */
void node_pb_reply_empty(rt_buf_t *b, uint32_t id, const char *result_field);
int node_pb_reply_connect(rt_buf_t *b, uint32_t id, const node_connect_result_t *r);
int node_pb_reply_subscribe(rt_buf_t *b, uint32_t id, const node_sub_result_t *r);
/* PresenceResult always written; one map entry per client. */
int node_pb_reply_presence(rt_buf_t *b, uint32_t id, const rt_client_info_t *e, size_t n);
void node_pb_reply_presence_stats(rt_buf_t *b, uint32_t id, uint32_t clients, uint32_t users);
int node_pb_reply_history(rt_buf_t *b, uint32_t id, broker_pub_t *const *pubs, size_t n,
                          rt_str_t epoch, uint64_t offset);
int node_pb_reply_rpc(rt_buf_t *b, uint32_t id, rt_str_t data);
/* field: "refresh" or "sub_refresh"; ttl written only with expires. */
void node_pb_reply_refresh(rt_buf_t *b, uint32_t id, const char *field, bool expires, uint32_t ttl);
/* Server ping / expected pong: an empty Reply, i.e. nothing is appended (the delimited
 * framing turns it into the single byte 00). */
void node_pb_ping(rt_buf_t *b);

/* ------------------------------------------------------------------------------------------
 * Pushes: every node_pb_push_* writes Reply{push: P}. Unidirectional transports send P bare:
 * see node_pb_push_bare().
 */

/* Publication: data, info (if has_info), offset (if > 0), tags; never epoch, time or channel
 * inside the publication (Push.channel carries the channel). */
int node_pb_push_pub(rt_buf_t *b, const broker_pub_t *pub);
int node_pb_push_join(rt_buf_t *b, rt_str_t channel, const rt_client_info_t *info, bool leave);
/* reason NULL => the table's text (node_unsubscribe_reason). */
void node_pb_push_unsubscribe(rt_buf_t *b, rt_str_t channel, int code, const char *reason);
int node_pb_push_subscribe(rt_buf_t *b, rt_str_t channel, const node_sub_result_t *r);
int node_pb_push_message(rt_buf_t *b, rt_str_t data);
/* reason NULL => the table's text (node_disconnect_reason). */
void node_pb_push_disconnect(rt_buf_t *b, int code, const char *reason);
void node_pb_push_refresh(rt_buf_t *b, bool expires, uint32_t ttl);
/* Connect push (unidirectional transports, always their first message). */
int node_pb_push_connect(rt_buf_t *b, const node_connect_result_t *r);

/* The bare Push inside msg = an encoded Reply{push: P} as produced by node_pb_push_*: the
 * bytes of P (skips the field-4 tag and its length). Borrowed from msg. */
rt_str_t node_pb_push_bare(rt_str_t msg);

/* Appends v as an unsigned LEB128 varint (delimited framing: the length before a message). */
void node_pb_put_varint(rt_buf_t *b, uint64_t v);
/* The same into out; returns its length (1..10). */
size_t node_pb_varint_write(uint8_t out[10], uint64_t v);

#endif

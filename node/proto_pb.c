#include "node/proto_pb.h"

#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/utf8.h"
#include "node/codes.h"
#include "node/proto/client.pb-c.h"

typedef Centrifugal__Centrifuge__Protocol__Command pb_command_t;
typedef Centrifugal__Centrifuge__Protocol__ConnectRequest pb_connect_t;
typedef Centrifugal__Centrifuge__Protocol__SubscribeRequest pb_subscribe_t;
typedef Centrifugal__Centrifuge__Protocol__HistoryRequest pb_history_t;

/* Protobuf wire types (only those proto3 uses; groups are refused). */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* Field numbers of the messages we write (node/proto/client.proto). */
enum {
    REPLY_ID = 1,
    REPLY_ERROR = 2,
    REPLY_PUSH = 4,
    REPLY_CONNECT = 5,
    REPLY_SUBSCRIBE = 6,
    REPLY_UNSUBSCRIBE = 7,
    REPLY_PUBLISH = 8,
    REPLY_PRESENCE = 9,
    REPLY_PRESENCE_STATS = 10,
    REPLY_HISTORY = 11,
    REPLY_RPC = 13,
    REPLY_REFRESH = 14,
    REPLY_SUB_REFRESH = 15,
};

enum {
    PUSH_CHANNEL = 2,
    PUSH_PUB = 4,
    PUSH_JOIN = 5,
    PUSH_LEAVE = 6,
    PUSH_UNSUBSCRIBE = 7,
    PUSH_MESSAGE = 8,
    PUSH_SUBSCRIBE = 9,
    PUSH_CONNECT = 10,
    PUSH_DISCONNECT = 11,
    PUSH_REFRESH = 12,
};

/* ------------------------------------------------------------------------------------------
 * Wire primitives
 */

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Writes v at q (varint_size(v) bytes). */
static void varint_write(uint8_t *q, uint64_t v)
{
    while (v >= 0x80) {
        *q++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *q = (uint8_t)v;
}

/* Reads a varint from p[0..n). Returns the bytes it takes, or 0 when it is cut short or does
 * not fit 64 bits (more than 10 bytes, or a 10th byte above 1). */
static size_t varint_read(const uint8_t *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        if (i == 9 && p[i] > 1)
            return 0;
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (p[i] < 0x80) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

size_t node_pb_varint_write(uint8_t out[10], uint64_t v)
{
    varint_write(out, v);
    return varint_size(v);
}

void node_pb_put_varint(rt_buf_t *b, uint64_t v)
{
    uint8_t tmp[10];
    rt_buf_append(b, tmp, node_pb_varint_write(tmp, v));
}

/* Reads one field at p[*pos..n): its number, wire type and, for length-delimited fields, the
 * bytes. Advances *pos past the field. Returns 0 or RT_EPROTO. */
static int wire_field(const uint8_t *p, size_t n, size_t *pos, uint32_t *field, unsigned *wt,
                      rt_str_t *bytes)
{
    uint64_t key, v;
    size_t k = varint_read(p + *pos, n - *pos, &key);
    if (k == 0 || key >> 3 == 0 || key >> 3 > 0x1fffffff)
        return RT_EPROTO;
    *pos += k;
    *field = (uint32_t)(key >> 3);
    *wt = (unsigned)(key & 7);
    size_t rest = n - *pos;
    switch (*wt) {
    case WT_VARINT:
        k = varint_read(p + *pos, rest, &v);
        if (k == 0)
            return RT_EPROTO;
        *pos += k;
        return 0;
    case WT_I64:
    case WT_I32: {
        size_t width = *wt == WT_I64 ? 8 : 4;
        if (rest < width)
            return RT_EPROTO;
        *pos += width;
        return 0;
    }
    case WT_LEN:
        k = varint_read(p + *pos, rest, &v);
        if (k == 0 || v > rest - k)
            return RT_EPROTO;
        *bytes = rt_str_from((const char *)p + *pos + k, (size_t)v);
        *pos += k + (size_t)v;
        return 0;
    default: /* groups (3, 4) and the undefined 6, 7 */
        return RT_EPROTO;
    }
}

/* ------------------------------------------------------------------------------------------
 * Decoder
 */

static void *pb_alloc(void *allocator_data, size_t size)
{
    return rt_malloc(size);
}

static void pb_free(void *allocator_data, void *p)
{
    rt_free(p);
}

/* Built on the stack at each use: protobuf-c does not keep it, and a shared one would be a
 * mutable global (its API takes a non-const pointer). */
static ProtobufCAllocator pb_allocator(void)
{
    return (ProtobufCAllocator){.alloc = pb_alloc, .free = pb_free, .allocator_data = NULL};
}

static void drop_msg(node_pb_reader_t *r)
{
    if (r->msg == NULL)
        return;
    ProtobufCAllocator a = pb_allocator();
    protobuf_c_message_free_unpacked(r->msg, &a);
    r->msg = NULL;
}

/* A decoded string, up to its NUL (protobuf-c NUL-terminates and drops the length). Must be
 * UTF-8. */
static int dec_str(const char *s, rt_str_t *out)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n > 0 && !rt_utf8_valid(s, n))
        return RT_EPROTO;
    *out = rt_str_from(n > 0 ? s : NULL, n);
    return 0;
}

static rt_str_t dec_bytes(ProtobufCBinaryData d)
{
    return rt_str_from(d.len > 0 ? (const char *)d.data : NULL, d.len);
}

/* Fields shared by SubscribeRequest as a command and as a connect.subs value. */
static int dec_subscribe(const pb_subscribe_t *m, node_cmd_t *c)
{
    int rc = dec_str(m->channel, &c->channel);
    if (rc == 0)
        rc = dec_str(m->token, &c->token);
    if (rc == 0)
        rc = dec_str(m->epoch, &c->epoch);
    if (rc == 0)
        rc = dec_str(m->delta, &c->delta);
    if (rc != 0)
        return rc;
    c->recover = m->recover;
    c->offset = m->offset;
    c->data = dec_bytes(m->data);
    c->positioned = m->positioned;
    c->recoverable = m->recoverable;
    c->join_leave = m->join_leave;
    c->has_tf = m->tf != NULL;
    c->flag = m->flag;
    c->ext_type = m->type;
    return 0;
}

static node_sub_recover_t *find_sub(node_sub_recover_t *subs, size_t n, rt_str_t channel)
{
    for (size_t i = 0; i < n; i++) {
        if (rt_str_eq(subs[i].channel, channel))
            return &subs[i];
    }
    return NULL;
}

/* connect.subs: map channel -> SubscribeRequest, one entry per channel (a repeated key: the
 * later entry wins, as in the reference's map decoding). */
static int dec_connect_subs(node_pb_reader_t *r, const pb_connect_t *m, node_cmd_t *c)
{
    if (m->n_subs > r->subs_cap) {
        rt_free(r->subs);
        r->subs = rt_calloc(m->n_subs, sizeof(*r->subs));
        r->subs_cap = m->n_subs;
    }
    size_t n = 0;
    for (size_t i = 0; i < m->n_subs; i++) {
        const Centrifugal__Centrifuge__Protocol__ConnectRequest__SubsEntry *entry = m->subs[i];
        rt_str_t channel;
        node_cmd_t sub = {0};
        int rc = dec_str(entry->key, &channel);
        /* An entry without a value is an empty SubscribeRequest. */
        if (rc == 0 && entry->value != NULL)
            rc = dec_subscribe(entry->value, &sub);
        if (rc != 0)
            return rc;
        node_sub_recover_t *e = find_sub(r->subs, n, channel);
        if (e == NULL) {
            RT_ASSERT(n < r->subs_cap);
            e = &r->subs[n++];
        }
        *e = (node_sub_recover_t){.channel = channel,
                                  .recover = sub.recover,
                                  .offset = sub.offset,
                                  .epoch = sub.epoch,
                                  .delta = sub.delta};
    }
    c->subs = n > 0 ? r->subs : NULL;
    c->nsubs = n;
    return 0;
}

static int dec_connect(node_pb_reader_t *r, const pb_connect_t *m, node_cmd_t *c)
{
    int rc = dec_str(m->token, &c->token);
    if (rc == 0)
        rc = dec_str(m->name, &c->name);
    if (rc == 0)
        rc = dec_str(m->version, &c->version);
    if (rc == 0)
        rc = dec_connect_subs(r, m, c);
    if (rc != 0)
        return rc;
    c->data = dec_bytes(m->data);
    c->flag = m->flag;
    return 0;
}

static int dec_history(const pb_history_t *m, node_cmd_t *c)
{
    int rc = dec_str(m->channel, &c->channel);
    if (rc != 0)
        return rc;
    /* proto3: limit 0 and no limit are the same bytes (see proto_pb.h). */
    c->has_limit = m->limit != 0;
    c->limit = m->limit;
    c->reverse = m->reverse;
    if (m->since != NULL) {
        c->has_since = true;
        c->offset = m->since->offset;
        rc = dec_str(m->since->epoch, &c->since_epoch);
    }
    return rc;
}

/* The request the reference dispatches: the first present field in its order (§1.1). The
 * obsolete ping never selects a type. */
static node_cmd_type_t request_type(const pb_command_t *m)
{
    if (m->connect != NULL)
        return NODE_CMD_CONNECT;
    if (m->subscribe != NULL)
        return NODE_CMD_SUBSCRIBE;
    if (m->unsubscribe != NULL)
        return NODE_CMD_UNSUBSCRIBE;
    if (m->publish != NULL)
        return NODE_CMD_PUBLISH;
    if (m->presence != NULL)
        return NODE_CMD_PRESENCE;
    if (m->presence_stats != NULL)
        return NODE_CMD_PRESENCE_STATS;
    if (m->history != NULL)
        return NODE_CMD_HISTORY;
    if (m->rpc != NULL)
        return NODE_CMD_RPC;
    if (m->send != NULL)
        return NODE_CMD_SEND;
    if (m->refresh != NULL)
        return NODE_CMD_REFRESH;
    if (m->sub_refresh != NULL)
        return NODE_CMD_SUB_REFRESH;
    return NODE_CMD_UNKNOWN;
}

static int dec_command(node_pb_reader_t *r, const pb_command_t *m, node_cmd_t *c)
{
    memset(c, 0, sizeof(*c));
    c->id = m->id;
    if (m->id == 0 && m->send == NULL) {
        c->type = NODE_CMD_PONG;
        return 0;
    }
    c->type = request_type(m);
    switch (c->type) {
    case NODE_CMD_CONNECT:
        return dec_connect(r, m->connect, c);
    case NODE_CMD_SUBSCRIBE:
        return dec_subscribe(m->subscribe, c);
    case NODE_CMD_UNSUBSCRIBE:
        return dec_str(m->unsubscribe->channel, &c->channel);
    case NODE_CMD_PUBLISH:
        c->data = dec_bytes(m->publish->data);
        c->ext_type = m->publish->type;
        return dec_str(m->publish->channel, &c->channel);
    case NODE_CMD_PRESENCE:
        return dec_str(m->presence->channel, &c->channel);
    case NODE_CMD_PRESENCE_STATS:
        return dec_str(m->presence_stats->channel, &c->channel);
    case NODE_CMD_HISTORY:
        return dec_history(m->history, c);
    case NODE_CMD_RPC:
        c->data = dec_bytes(m->rpc->data);
        return dec_str(m->rpc->method, &c->method);
    case NODE_CMD_SEND:
        c->data = dec_bytes(m->send->data);
        return 0;
    case NODE_CMD_REFRESH:
        return dec_str(m->refresh->token, &c->token);
    case NODE_CMD_SUB_REFRESH: {
        int rc = dec_str(m->sub_refresh->channel, &c->channel);
        return rc == 0 ? dec_str(m->sub_refresh->token, &c->token) : rc;
    }
    case NODE_CMD_PONG:
    case NODE_CMD_UNKNOWN:
        break;
    }
    return 0;
}

void node_pb_reader_init(node_pb_reader_t *r, const uint8_t *frame, size_t len)
{
    memset(r, 0, sizeof(*r));
    r->frame = frame;
    r->len = len;
}

int node_pb_reader_next(node_pb_reader_t *r, node_cmd_t *cmd)
{
    if (r->failed)
        return RT_EPROTO;
    drop_msg(r);
    if (r->pos == r->len) {
        if (r->ncmds == 0)
            goto fail;
        return 0;
    }
    uint64_t n;
    size_t k = varint_read(r->frame + r->pos, r->len - r->pos, &n);
    if (k == 0 || n > r->len - r->pos - k)
        goto fail;
    const uint8_t *p = r->frame + r->pos + k;
    r->pos += k + (size_t)n;

    ProtobufCAllocator a = pb_allocator();
    r->msg = protobuf_c_message_unpack(&centrifugal__centrifuge__protocol__command__descriptor, &a,
                                       (size_t)n, p);
    if (r->msg == NULL || dec_command(r, (const pb_command_t *)r->msg, cmd) != 0)
        goto fail;
    r->ncmds++;
    return 1;

fail:
    r->failed = true;
    drop_msg(r);
    memset(cmd, 0, sizeof(*cmd));
    return RT_EPROTO;
}

void node_pb_reader_cleanup(node_pb_reader_t *r)
{
    drop_msg(r);
    rt_free(r->subs);
    r->subs = NULL;
    r->subs_cap = 0;
}

int node_pb_decode_connect_request(node_pb_reader_t *r, const uint8_t *p, size_t n, node_cmd_t *cmd)
{
    drop_msg(r);
    memset(cmd, 0, sizeof(*cmd));
    ProtobufCAllocator a = pb_allocator();
    r->msg = protobuf_c_message_unpack(
        &centrifugal__centrifuge__protocol__connect_request__descriptor, &a, n, p);
    cmd->type = NODE_CMD_CONNECT;
    if (r->msg != NULL && dec_connect(r, (const pb_connect_t *)r->msg, cmd) == 0)
        return 0;
    drop_msg(r);
    memset(cmd, 0, sizeof(*cmd));
    cmd->type = NODE_CMD_CONNECT;
    return RT_EPROTO;
}

int node_pb_decode_emulation(const uint8_t *p, size_t n, rt_str_t *node, rt_str_t *session,
                             rt_str_t *data)
{
    rt_str_t *fields[] = {NULL, node, session, data}; /* by field number */
    size_t pos = 0;

    *node = *session = *data = RT_STR_NULL;
    while (pos < n) {
        uint32_t field;
        unsigned wt;
        rt_str_t v = RT_STR_NULL;
        if (wire_field(p, n, &pos, &field, &wt, &v) != 0)
            goto fail;
        if (field > 3)
            continue; /* unknown: skipped */
        if (wt != WT_LEN)
            goto fail;
        *fields[field] = v; /* a repeated field: the last one wins */
    }
    if (rt_utf8_valid(node->p, node->n) && rt_utf8_valid(session->p, session->n))
        return 0;

fail:
    *node = *session = *data = RT_STR_NULL;
    return RT_EPROTO;
}

/* ------------------------------------------------------------------------------------------
 * Encoder
 *
 * A sub-message is written as its tag, a one-byte length placeholder and the body; msg_end()
 * stores the length, moving the body up when the length needs more than one byte. Most
 * messages are shorter than 128 bytes, so most bodies never move, and nothing is written
 * twice to learn sizes in advance.
 */

static void put_tag(rt_buf_t *b, unsigned field, unsigned wt)
{
    node_pb_put_varint(b, (uint64_t)field << 3 | wt);
}

/* uint32/uint64/int32/int64/bool: varint, omitted when 0 (negative values take 10 bytes). */
static void put_uint(rt_buf_t *b, unsigned field, uint64_t v)
{
    if (v == 0)
        return;
    put_tag(b, field, WT_VARINT);
    node_pb_put_varint(b, v);
}

static void put_int(rt_buf_t *b, unsigned field, int64_t v)
{
    put_uint(b, field, (uint64_t)v);
}

static void put_bool(rt_buf_t *b, unsigned field, bool v)
{
    put_uint(b, field, v ? 1 : 0);
}

/* string/bytes, written even when empty (map entries). */
static void put_len(rt_buf_t *b, unsigned field, rt_str_t s)
{
    put_tag(b, field, WT_LEN);
    node_pb_put_varint(b, s.n);
    if (s.n > 0)
        rt_buf_append(b, s.p, s.n);
}

/* string/bytes, omitted when empty. */
static void put_bytes(rt_buf_t *b, unsigned field, rt_str_t s)
{
    if (s.n > 0)
        put_len(b, field, s);
}

/* Starts sub-message `field`; returns the offset of its body for msg_end(). */
static size_t msg_begin(rt_buf_t *b, unsigned field)
{
    put_tag(b, field, WT_LEN);
    rt_buf_append_byte(b, 0);
    return b->len;
}

static void msg_end(rt_buf_t *b, size_t body)
{
    size_t n = b->len - body;
    size_t extra = varint_size(n) - 1;
    if (extra > 0) {
        rt_buf_reserve(b, extra);
        memmove(b->p + body + extra, b->p + body, n);
        b->len += extra;
    }
    varint_write(b->p + body - 1, n);
}

/* Reply{id, <field>: ...}: the caller writes the result's fields, then msg_end(). */
static size_t reply_begin(rt_buf_t *b, uint32_t id, unsigned field)
{
    put_uint(b, REPLY_ID, id);
    return msg_begin(b, field);
}

typedef struct push_mark {
    size_t push; /* body of Reply.push */
    size_t body; /* body of the Push field */
} push_mark_t;

/* Reply{push: Push{channel, <field>: ...}}; channel empty => absent. */
static push_mark_t push_begin(rt_buf_t *b, rt_str_t channel, unsigned field)
{
    push_mark_t m;
    m.push = msg_begin(b, REPLY_PUSH);
    put_bytes(b, PUSH_CHANNEL, channel);
    m.body = msg_begin(b, field);
    return m;
}

/* Inner first: its move only touches bytes after the outer body's start. */
static void push_end(rt_buf_t *b, push_mark_t m)
{
    msg_end(b, m.body);
    msg_end(b, m.push);
}

static void write_client_info(rt_buf_t *b, unsigned field, const rt_client_info_t *info)
{
    size_t m = msg_begin(b, field);
    put_bytes(b, 1, info->user);
    put_bytes(b, 2, info->client);
    put_bytes(b, 3, info->conn_info);
    put_bytes(b, 4, info->chan_info);
    msg_end(b, m);
}

/* Publication: data 4, info 5, offset 6, tags 7 (map entries: key 1, value 2). */
static void write_pub(rt_buf_t *b, unsigned field, const broker_pub_t *pub)
{
    size_t m = msg_begin(b, field);
    put_bytes(b, 4, pub->data);
    if (pub->has_info)
        write_client_info(b, 5, &pub->info);
    put_uint(b, 6, pub->offset);
    for (size_t i = 0; i < pub->ntags; i++) {
        size_t e = msg_begin(b, 7);
        put_len(b, 1, pub->tags[i].key);
        put_len(b, 2, pub->tags[i].value);
        msg_end(b, e);
    }
    msg_end(b, m);
}

/* SubscribeResult (field numbers of §2.3). */
static void write_sub_result(rt_buf_t *b, unsigned field, const node_sub_result_t *r)
{
    size_t m = msg_begin(b, field);
    put_bool(b, 1, r->expires);
    if (r->expires)
        put_uint(b, 2, r->ttl);
    put_bool(b, 3, r->recoverable);
    put_bytes(b, 6, r->epoch);
    for (size_t i = 0; i < r->npubs; i++)
        write_pub(b, 7, r->pubs[i]);
    put_bool(b, 8, r->recovered);
    put_uint(b, 9, r->offset);
    put_bool(b, 10, r->positioned);
    put_bytes(b, 11, r->data);
    put_bool(b, 12, r->was_recovering);
    msg_end(b, m);
}

/* map<string, SubscribeResult> entries of ConnectResult.subs / Connect.subs. */
static void write_connect_subs(rt_buf_t *b, unsigned field, const node_connect_result_t *r)
{
    for (size_t i = 0; i < r->nsubs; i++) {
        size_t e = msg_begin(b, field);
        put_len(b, 1, r->sub_channels[i]);
        write_sub_result(b, 2, &r->subs[i]);
        msg_end(b, e);
    }
}

static unsigned result_field(const char *name)
{
    static const struct {
        const char *name;
        unsigned field;
    } fields[] = {
        {"connect", REPLY_CONNECT},         {"subscribe", REPLY_SUBSCRIBE},
        {"unsubscribe", REPLY_UNSUBSCRIBE}, {"publish", REPLY_PUBLISH},
        {"presence", REPLY_PRESENCE},       {"presence_stats", REPLY_PRESENCE_STATS},
        {"history", REPLY_HISTORY},         {"rpc", REPLY_RPC},
        {"refresh", REPLY_REFRESH},         {"sub_refresh", REPLY_SUB_REFRESH},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strcmp(fields[i].name, name) == 0)
            return fields[i].field;
    }
    RT_ASSERT(!"unknown Reply result field");
    return 0;
}

void node_pb_reply_error(rt_buf_t *b, uint32_t id, int code, const char *message, bool temporary)
{
    size_t m = reply_begin(b, id, REPLY_ERROR);
    put_uint(b, 1, (uint32_t)code);
    put_bytes(b, 2, rt_str_c(message != NULL ? message : node_error_message(code)));
    put_bool(b, 3, temporary);
    msg_end(b, m);
}

void node_pb_reply_empty(rt_buf_t *b, uint32_t id, const char *result_field_name)
{
    msg_end(b, reply_begin(b, id, result_field(result_field_name)));
}

int node_pb_reply_connect(rt_buf_t *b, uint32_t id, const node_connect_result_t *r)
{
    size_t m = reply_begin(b, id, REPLY_CONNECT);
    put_bytes(b, 1, r->client);
    put_bytes(b, 2, r->version);
    put_bool(b, 3, r->expires);
    if (r->expires)
        put_uint(b, 4, r->ttl);
    put_bytes(b, 5, r->data);
    write_connect_subs(b, 6, r);
    put_uint(b, 7, r->ping);
    put_bool(b, 8, r->pong);
    put_bytes(b, 9, r->session);
    put_bytes(b, 10, r->node);
    put_int(b, 11, r->time_ms);
    msg_end(b, m);
    return 0;
}

int node_pb_reply_subscribe(rt_buf_t *b, uint32_t id, const node_sub_result_t *r)
{
    put_uint(b, REPLY_ID, id);
    write_sub_result(b, REPLY_SUBSCRIBE, r);
    return 0;
}

int node_pb_reply_presence(rt_buf_t *b, uint32_t id, const rt_client_info_t *e, size_t n)
{
    size_t m = reply_begin(b, id, REPLY_PRESENCE);
    for (size_t i = 0; i < n; i++) {
        size_t entry = msg_begin(b, 1);
        put_len(b, 1, e[i].client);
        write_client_info(b, 2, &e[i]);
        msg_end(b, entry);
    }
    msg_end(b, m);
    return 0;
}

void node_pb_reply_presence_stats(rt_buf_t *b, uint32_t id, uint32_t clients, uint32_t users)
{
    size_t m = reply_begin(b, id, REPLY_PRESENCE_STATS);
    put_uint(b, 1, clients);
    put_uint(b, 2, users);
    msg_end(b, m);
}

int node_pb_reply_history(rt_buf_t *b, uint32_t id, broker_pub_t *const *pubs, size_t n,
                          rt_str_t epoch, uint64_t offset)
{
    size_t m = reply_begin(b, id, REPLY_HISTORY);
    for (size_t i = 0; i < n; i++)
        write_pub(b, 1, pubs[i]);
    put_bytes(b, 2, epoch);
    put_uint(b, 3, offset);
    msg_end(b, m);
    return 0;
}

int node_pb_reply_rpc(rt_buf_t *b, uint32_t id, rt_str_t data)
{
    size_t m = reply_begin(b, id, REPLY_RPC);
    put_bytes(b, 1, data);
    msg_end(b, m);
    return 0;
}

void node_pb_reply_refresh(rt_buf_t *b, uint32_t id, const char *field, bool expires, uint32_t ttl)
{
    unsigned reply_field = result_field(field);
    /* RefreshResult starts with client/version (never set, §3.10); SubRefreshResult does
     * not. */
    unsigned first = reply_field == REPLY_REFRESH ? 3 : 1;
    size_t m = reply_begin(b, id, reply_field);
    put_bool(b, first, expires);
    if (expires)
        put_uint(b, first + 1, ttl);
    msg_end(b, m);
}

void node_pb_ping(rt_buf_t *b)
{
    /* An empty Reply is zero bytes. */
}

int node_pb_push_pub(rt_buf_t *b, const broker_pub_t *pub)
{
    size_t m = msg_begin(b, REPLY_PUSH);
    put_bytes(b, PUSH_CHANNEL, pub->channel);
    write_pub(b, PUSH_PUB, pub);
    msg_end(b, m);
    return 0;
}

int node_pb_push_join(rt_buf_t *b, rt_str_t channel, const rt_client_info_t *info, bool leave)
{
    push_mark_t m = push_begin(b, channel, leave ? PUSH_LEAVE : PUSH_JOIN);
    write_client_info(b, 1, info);
    push_end(b, m);
    return 0;
}

void node_pb_push_unsubscribe(rt_buf_t *b, rt_str_t channel, int code, const char *reason)
{
    push_mark_t m = push_begin(b, channel, PUSH_UNSUBSCRIBE);
    put_uint(b, 2, (uint32_t)code);
    put_bytes(b, 3, rt_str_c(reason != NULL ? reason : node_unsubscribe_reason(code)));
    push_end(b, m);
}

int node_pb_push_subscribe(rt_buf_t *b, rt_str_t channel, const node_sub_result_t *r)
{
    push_mark_t m = push_begin(b, channel, PUSH_SUBSCRIBE);
    put_bool(b, 1, r->recoverable);
    put_bytes(b, 4, r->epoch);
    put_uint(b, 5, r->offset);
    put_bool(b, 6, r->positioned);
    put_bytes(b, 7, r->data);
    push_end(b, m);
    return 0;
}

int node_pb_push_message(rt_buf_t *b, rt_str_t data)
{
    push_mark_t m = push_begin(b, RT_STR_NULL, PUSH_MESSAGE);
    put_bytes(b, 1, data);
    push_end(b, m);
    return 0;
}

void node_pb_push_disconnect(rt_buf_t *b, int code, const char *reason)
{
    push_mark_t m = push_begin(b, RT_STR_NULL, PUSH_DISCONNECT);
    put_uint(b, 1, (uint32_t)code);
    put_bytes(b, 2, rt_str_c(reason != NULL ? reason : node_disconnect_reason(code)));
    push_end(b, m);
}

void node_pb_push_refresh(rt_buf_t *b, bool expires, uint32_t ttl)
{
    push_mark_t m = push_begin(b, RT_STR_NULL, PUSH_REFRESH);
    put_bool(b, 1, expires);
    if (expires)
        put_uint(b, 2, ttl);
    push_end(b, m);
}

int node_pb_push_connect(rt_buf_t *b, const node_connect_result_t *r)
{
    push_mark_t m = push_begin(b, RT_STR_NULL, PUSH_CONNECT);
    put_bytes(b, 1, r->client);
    put_bytes(b, 2, r->version);
    put_bytes(b, 3, r->data);
    write_connect_subs(b, 4, r);
    put_bool(b, 5, r->expires);
    if (r->expires)
        put_uint(b, 6, r->ttl);
    put_uint(b, 7, r->ping);
    put_bool(b, 8, r->pong);
    put_bytes(b, 9, r->session);
    put_bytes(b, 10, r->node);
    put_int(b, 11, r->time_ms);
    push_end(b, m);
    return 0;
}

rt_str_t node_pb_push_bare(rt_str_t msg)
{
    const uint8_t *p = (const uint8_t *)msg.p;
    uint64_t n = 0;
    RT_ASSERT(msg.n >= 2 && p[0] == (REPLY_PUSH << 3 | WT_LEN));
    size_t k = varint_read(p + 1, msg.n - 1, &n);
    RT_ASSERT(k > 0 && n == msg.n - 1 - k);
    return rt_str_from(msg.p + 1 + k, (size_t)n);
}

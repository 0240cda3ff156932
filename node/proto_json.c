#include "node/proto.h"

#include <string.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/b64.h"
#include "node/base/err.h"
#include "node/codes.h"

/* ------------------------------------------------------------------------------------------
 * Decoder
 *
 * Strings with escapes are unescaped into the reader's scratch buffer. The buffer is reserved
 * to the line length before a line is decoded: every unescaped string comes from a distinct
 * span of the line and is never longer than that span, so the buffer never moves while
 * slices into it are handed out.
 */

typedef struct dec {
    node_json_reader_t *r;
    const uint8_t *scratch_base; /* scratch.p after the reservation, to assert it stays put */
} dec_t;

static bool key_is(const rt_json_t *m, const char *key)
{
    return rt_json_key_eq(m, rt_str_c(key));
}

static int dec_string(dec_t *d, const rt_json_t *v, rt_str_t *out)
{
    int rc = rt_json_string_slice(v, out);
    if (rc != RT_EAGAIN)
        return rc == 0 ? 0 : RT_EPROTO;
    rt_buf_t *s = &d->r->scratch;
    size_t off = s->len;
    if (rt_json_get_string(v, s) != 0)
        return RT_EPROTO;
    RT_ASSERT(s->p == d->scratch_base);
    *out = rt_str_from((const char *)s->p + off, s->len - off);
    return 0;
}

static rt_str_t dec_key(dec_t *d, const rt_json_t *m)
{
    if (!m->key_escaped)
        return m->key;
    rt_buf_t *s = &d->r->scratch;
    size_t off = s->len;
    rt_json_get_key(m, s);
    RT_ASSERT(s->p == d->scratch_base);
    return rt_str_from((const char *)s->p + off, s->len - off);
}

static int dec_bool(const rt_json_t *v, bool *out)
{
    return rt_json_get_bool(v, out) == 0 ? 0 : RT_EPROTO;
}

static int dec_u64(const rt_json_t *v, uint64_t *out)
{
    return rt_json_get_uint64(v, out) == 0 ? 0 : RT_EPROTO;
}

static int dec_u32(const rt_json_t *v, uint32_t *out)
{
    uint64_t u;
    if (rt_json_get_uint64(v, &u) != 0 || u > UINT32_MAX)
        return RT_EPROTO;
    *out = (uint32_t)u;
    return 0;
}

static int dec_i64(const rt_json_t *v, int64_t *out)
{
    return rt_json_get_int64(v, out) == 0 ? 0 : RT_EPROTO;
}

static int dec_i32(const rt_json_t *v, int32_t *out)
{
    int64_t i;
    if (rt_json_get_int64(v, &i) != 0 || i < INT32_MIN || i > INT32_MAX)
        return RT_EPROTO;
    *out = (int32_t)i;
    return 0;
}

static int dec_object(const rt_json_t *v)
{
    return v->type == RT_JSON_OBJECT ? 0 : RT_EPROTO;
}

/* bytes fields keep the raw JSON text of whatever value was sent. */
static int dec_raw(const rt_json_t *v, rt_str_t *out)
{
    *out = v->raw;
    return 0;
}

/* Iterates obj's members, skipping nulls (the reference decoder treats a null member as
 * absent). Later duplicates overwrite earlier ones, like the reference. */
#define FOR_MEMBERS(m, obj)                                                                        \
    for (const rt_json_t *m = (obj)->child; m != NULL; m = m->next)                                \
        if (m->type != RT_JSON_NULL)

/* Fields shared by SubscribeRequest as a command and as a connect.subs value. */
static int dec_subscribe(dec_t *d, const rt_json_t *obj, node_cmd_t *c)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    FOR_MEMBERS(m, obj)
    {
        if (key_is(m, "channel")) {
            rc = dec_string(d, m, &c->channel);
        } else if (key_is(m, "token")) {
            rc = dec_string(d, m, &c->token);
        } else if (key_is(m, "recover")) {
            rc = dec_bool(m, &c->recover);
        } else if (key_is(m, "epoch")) {
            rc = dec_string(d, m, &c->epoch);
        } else if (key_is(m, "offset")) {
            rc = dec_u64(m, &c->offset);
        } else if (key_is(m, "data")) {
            rc = dec_raw(m, &c->data);
        } else if (key_is(m, "positioned")) {
            rc = dec_bool(m, &c->positioned);
        } else if (key_is(m, "recoverable")) {
            rc = dec_bool(m, &c->recoverable);
        } else if (key_is(m, "join_leave")) {
            rc = dec_bool(m, &c->join_leave);
        } else if (key_is(m, "delta")) {
            rc = dec_string(d, m, &c->delta);
        } else if (key_is(m, "tf")) {
            rc = dec_object(m);
            c->has_tf = true;
        } else if (key_is(m, "flag")) {
            rc = dec_i64(m, &c->flag);
        } else if (key_is(m, "type")) {
            rc = dec_i32(m, &c->ext_type);
        }
        if (rc != 0)
            return rc;
    }
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

/* connect.subs: map channel -> SubscribeRequest. store: fill the reader's subs array
 * (otherwise only validate). */
static int dec_connect_subs(dec_t *d, const rt_json_t *obj, node_cmd_t *c, bool store)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    node_json_reader_t *r = d->r;
    size_t n = 0;
    if (store && obj->count > r->subs_cap) {
        rt_free(r->subs);
        r->subs = rt_calloc(obj->count, sizeof(*r->subs));
        r->subs_cap = obj->count;
    }
    for (const rt_json_t *m = obj->child; m != NULL; m = m->next) {
        node_cmd_t sub = {0};
        rt_str_t channel = dec_key(d, m);
        /* A null map value decodes as an empty SubscribeRequest. */
        if (m->type != RT_JSON_NULL && (rc = dec_subscribe(d, m, &sub)) != 0)
            return rc;
        if (!store)
            continue;
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
    if (store) {
        c->subs = n > 0 ? r->subs : NULL;
        c->nsubs = n;
    }
    return 0;
}

static int dec_headers(const rt_json_t *obj)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    FOR_MEMBERS(m, obj)
    {
        if (m->type != RT_JSON_STRING)
            return RT_EPROTO;
    }
    return 0;
}

static int dec_connect(dec_t *d, const rt_json_t *obj, node_cmd_t *c, bool store)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    FOR_MEMBERS(m, obj)
    {
        if (key_is(m, "token"))
            rc = dec_string(d, m, &c->token);
        else if (key_is(m, "data"))
            rc = dec_raw(m, &c->data);
        else if (key_is(m, "subs"))
            rc = dec_connect_subs(d, m, c, store);
        else if (key_is(m, "name"))
            rc = dec_string(d, m, &c->name);
        else if (key_is(m, "version"))
            rc = dec_string(d, m, &c->version);
        else if (key_is(m, "headers"))
            rc = dec_headers(m);
        else if (key_is(m, "flag"))
            rc = dec_i64(m, &c->flag);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* unsubscribe, presence, presence_stats: only a channel. */
static int dec_channel_only(dec_t *d, const rt_json_t *obj, node_cmd_t *c)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    FOR_MEMBERS(m, obj)
    {
        if (key_is(m, "channel") && (rc = dec_string(d, m, &c->channel)) != 0)
            return rc;
    }
    return 0;
}

static int dec_publish(dec_t *d, const rt_json_t *obj, node_cmd_t *c)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    FOR_MEMBERS(m, obj)
    {
        if (key_is(m, "channel"))
            rc = dec_string(d, m, &c->channel);
        else if (key_is(m, "data"))
            rc = dec_raw(m, &c->data);
        else if (key_is(m, "type"))
            rc = dec_i32(m, &c->ext_type);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int dec_since(dec_t *d, const rt_json_t *obj, node_cmd_t *c)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    c->has_since = true;
    FOR_MEMBERS(m, obj)
    {
        if (key_is(m, "offset"))
            rc = dec_u64(m, &c->offset);
        else if (key_is(m, "epoch"))
            rc = dec_string(d, m, &c->since_epoch);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int dec_history(dec_t *d, const rt_json_t *obj, node_cmd_t *c)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    FOR_MEMBERS(m, obj)
    {
        if (key_is(m, "channel")) {
            rc = dec_string(d, m, &c->channel);
        } else if (key_is(m, "limit")) {
            rc = dec_i32(m, &c->limit);
            c->has_limit = true;
        } else if (key_is(m, "since")) {
            rc = dec_since(d, m, c);
        } else if (key_is(m, "reverse")) {
            rc = dec_bool(m, &c->reverse);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int dec_rpc(dec_t *d, const rt_json_t *obj, node_cmd_t *c)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    FOR_MEMBERS(m, obj)
    {
        if (key_is(m, "data"))
            rc = dec_raw(m, &c->data);
        else if (key_is(m, "method"))
            rc = dec_string(d, m, &c->method);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int dec_send(dec_t *d, const rt_json_t *obj, node_cmd_t *c)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    FOR_MEMBERS(m, obj)
    {
        if (key_is(m, "data") && (rc = dec_raw(m, &c->data)) != 0)
            return rc;
    }
    return 0;
}

/* refresh and sub_refresh (refresh has no channel; an extra one is harmless). */
static int dec_refresh(dec_t *d, const rt_json_t *obj, node_cmd_t *c)
{
    int rc = dec_object(obj);
    if (rc != 0)
        return rc;
    FOR_MEMBERS(m, obj)
    {
        if (key_is(m, "channel"))
            rc = dec_string(d, m, &c->channel);
        else if (key_is(m, "token"))
            rc = dec_string(d, m, &c->token);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Request fields of Command in the reference's dispatch order (§1.1), then the obsolete
 * ping, which never selects a type. */
static const struct {
    const char *key;
    node_cmd_type_t type;
} requests[] = {
    {"connect", NODE_CMD_CONNECT},
    {"subscribe", NODE_CMD_SUBSCRIBE},
    {"unsubscribe", NODE_CMD_UNSUBSCRIBE},
    {"publish", NODE_CMD_PUBLISH},
    {"presence", NODE_CMD_PRESENCE},
    {"presence_stats", NODE_CMD_PRESENCE_STATS},
    {"history", NODE_CMD_HISTORY},
    {"rpc", NODE_CMD_RPC},
    {"send", NODE_CMD_SEND},
    {"refresh", NODE_CMD_REFRESH},
    {"sub_refresh", NODE_CMD_SUB_REFRESH},
    {"ping", NODE_CMD_UNKNOWN},
};
#define NREQUESTS (sizeof(requests) / sizeof(requests[0]))

static int dec_request(dec_t *d, node_cmd_type_t type, const rt_json_t *obj, node_cmd_t *c,
                       bool store)
{
    switch (type) {
    case NODE_CMD_CONNECT:
        return dec_connect(d, obj, c, store);
    case NODE_CMD_SUBSCRIBE:
        return dec_subscribe(d, obj, c);
    case NODE_CMD_UNSUBSCRIBE:
    case NODE_CMD_PRESENCE:
    case NODE_CMD_PRESENCE_STATS:
        return dec_channel_only(d, obj, c);
    case NODE_CMD_PUBLISH:
        return dec_publish(d, obj, c);
    case NODE_CMD_HISTORY:
        return dec_history(d, obj, c);
    case NODE_CMD_RPC:
        return dec_rpc(d, obj, c);
    case NODE_CMD_SEND:
        return dec_send(d, obj, c);
    case NODE_CMD_REFRESH:
    case NODE_CMD_SUB_REFRESH:
        return dec_refresh(d, obj, c);
    case NODE_CMD_PONG:
    case NODE_CMD_UNKNOWN:
        break;
    }
    return dec_object(obj); /* PingRequest: empty, unknown keys ignored */
}

static int dec_command(dec_t *d, const rt_json_t *root, node_cmd_t *cmd)
{
    const rt_json_t *present[NREQUESTS] = {0};
    uint32_t id = 0;
    int rc;

    if (root->type != RT_JSON_OBJECT)
        return RT_EPROTO;
    FOR_MEMBERS(m, root)
    {
        if (key_is(m, "id")) {
            if ((rc = dec_u32(m, &id)) != 0)
                return rc;
            continue;
        }
        for (size_t i = 0; i < NREQUESTS; i++) {
            if (key_is(m, requests[i].key)) {
                present[i] = m;
                break;
            }
        }
    }

    size_t chosen = NREQUESTS;
    bool has_send = false;
    for (size_t i = 0; i < NREQUESTS; i++) {
        if (present[i] == NULL)
            continue;
        has_send |= requests[i].type == NODE_CMD_SEND;
        if (chosen == NREQUESTS && requests[i].type != NODE_CMD_UNKNOWN)
            chosen = i;
    }

    memset(cmd, 0, sizeof(*cmd));
    cmd->id = id;
    if (id == 0 && !has_send)
        cmd->type = NODE_CMD_PONG;
    else if (chosen == NREQUESTS)
        cmd->type = NODE_CMD_UNKNOWN;
    else
        cmd->type = requests[chosen].type;

    /* Every request field must decode, selected or not: the reference decodes the whole
     * Command before dispatching, so a bad type anywhere is a bad request. */
    for (size_t i = 0; i < NREQUESTS; i++) {
        if (present[i] == NULL)
            continue;
        bool mine = i == chosen && cmd->type != NODE_CMD_PONG;
        node_cmd_t scratch_cmd = {0};
        rc = dec_request(d, requests[i].type, present[i], mine ? cmd : &scratch_cmd, mine);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void node_json_reader_init(node_json_reader_t *r, const uint8_t *frame, size_t len)
{
    memset(r, 0, sizeof(*r));
    r->frame = (const char *)frame;
    r->len = len;
    rt_buf_init(&r->scratch);
}

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    }
    return true;
}

int node_json_reader_next(node_json_reader_t *r, node_cmd_t *cmd)
{
    if (r->failed)
        return RT_EPROTO;
    rt_json_doc_cleanup(&r->doc);
    while (r->pos < r->len) {
        const char *line = r->frame + r->pos;
        size_t rest = r->len - r->pos;
        const char *nl = memchr(line, '\n', rest);
        size_t n = nl != NULL ? (size_t)(nl - line) : rest;
        r->pos += nl != NULL ? n + 1 : n;
        if (blank(line, n))
            continue;

        if (rt_json_parse(&r->doc, line, n, 0) != 0)
            goto fail;
        rt_buf_reset(&r->scratch);
        rt_buf_reserve(&r->scratch, n);
        dec_t d = {.r = r, .scratch_base = r->scratch.p};
        if (dec_command(&d, r->doc.root, cmd) != 0)
            goto fail;
        r->ncmds++;
        return 1;
    }
    if (r->ncmds == 0)
        goto fail;
    return 0;

fail:
    r->failed = true;
    rt_json_doc_cleanup(&r->doc);
    memset(cmd, 0, sizeof(*cmd));
    return RT_EPROTO;
}

int node_json_decode_connect_request(node_json_reader_t *r, const uint8_t *p, size_t n,
                                     node_cmd_t *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->type = NODE_CMD_CONNECT;
    rt_json_doc_cleanup(&r->doc);
    if (blank((const char *)p, n))
        return 0;
    if (rt_json_parse(&r->doc, (const char *)p, n, 0) != 0)
        return RT_EPROTO;
    if (r->doc.root->type == RT_JSON_NULL)
        return 0;
    rt_buf_reset(&r->scratch);
    rt_buf_reserve(&r->scratch, n);
    dec_t d = {.r = r, .scratch_base = r->scratch.p};
    int rc = dec_connect(&d, r->doc.root, cmd, true);
    if (rc != 0) {
        memset(cmd, 0, sizeof(*cmd));
        cmd->type = NODE_CMD_CONNECT;
    }
    return rc;
}

void node_json_reader_cleanup(node_json_reader_t *r)
{
    rt_json_doc_cleanup(&r->doc);
    rt_buf_cleanup(&r->scratch);
    rt_free(r->subs);
    r->subs = NULL;
    r->subs_cap = 0;
}

/* ------------------------------------------------------------------------------------------
 * Encoder
 */

typedef struct obj {
    rt_buf_t *b;
    bool any; /* a member was written: the next needs a comma */
} obj_t;

static obj_t obj_begin(rt_buf_t *b)
{
    rt_buf_append_byte(b, '{');
    return (obj_t){b, false};
}

static void obj_end(obj_t *o)
{
    rt_buf_append_byte(o->b, '}');
}

/* key is a static identifier that needs no escaping. */
static void obj_key(obj_t *o, const char *key)
{
    if (o->any)
        rt_buf_append_byte(o->b, ',');
    o->any = true;
    rt_buf_append_byte(o->b, '"');
    rt_buf_append_cstr(o->b, key);
    rt_buf_append(o->b, "\":", 2);
}

static void obj_str_key(obj_t *o, rt_str_t key)
{
    if (o->any)
        rt_buf_append_byte(o->b, ',');
    o->any = true;
    rt_json_write_string(o->b, key);
    rt_buf_append_byte(o->b, ':');
}

static void put_u64(obj_t *o, const char *key, uint64_t v)
{
    if (v == 0)
        return;
    obj_key(o, key);
    rt_buf_append_u64(o->b, v);
}

static void put_i64(obj_t *o, const char *key, int64_t v)
{
    if (v == 0)
        return;
    obj_key(o, key);
    rt_buf_append_i64(o->b, v);
}

static void put_true(obj_t *o, const char *key, bool v)
{
    if (!v)
        return;
    obj_key(o, key);
    rt_buf_append(o->b, "true", 4);
}

static void put_str(obj_t *o, const char *key, rt_str_t s)
{
    if (s.n == 0)
        return;
    obj_key(o, key);
    rt_json_write_string(o->b, s);
}

/* A bytes field from a source that does not mark binary payloads: checked here, because a
 * non-JSON value would corrupt the whole stream. */
static int put_raw_checked(obj_t *o, const char *key, rt_str_t raw)
{
    if (raw.n == 0)
        return 0;
    if (!rt_json_valid(raw.p, raw.n))
        return RT_EINVAL;
    obj_key(o, key);
    rt_json_write_raw(o->b, raw);
    return 0;
}

/* Reply envelope: {"id":N,"<field>": — the caller writes the value and reply_end(). */
static obj_t reply_begin(rt_buf_t *b, uint32_t id, const char *field)
{
    obj_t o = obj_begin(b);
    put_u64(&o, "id", id);
    obj_key(&o, field);
    return o;
}

/* Push envelope: {"push":{["channel":C,]"<field>": */
static void push_begin(rt_buf_t *b, obj_t *outer, obj_t *push, rt_str_t channel, const char *field)
{
    *outer = obj_begin(b);
    obj_key(outer, "push");
    *push = obj_begin(b);
    put_str(push, "channel", channel);
    obj_key(push, field);
}

static void push_end(obj_t *outer, obj_t *push)
{
    obj_end(push);
    obj_end(outer);
}

int node_json_write_client_info(rt_buf_t *b, const rt_client_info_t *info)
{
    obj_t o = obj_begin(b);
    obj_key(&o, "user");
    rt_json_write_string(b, info->user);
    obj_key(&o, "client");
    rt_json_write_string(b, info->client);
    int rc = put_raw_checked(&o, "conn_info", info->conn_info);
    if (rc == 0)
        rc = put_raw_checked(&o, "chan_info", info->chan_info);
    obj_end(&o);
    return rc;
}

int node_json_write_pub(rt_buf_t *b, const broker_pub_t *pub, bool api)
{
    obj_t o = obj_begin(b);
    if (pub->data_binary) {
        if (!api)
            return RT_EINVAL;
        if (pub->data.n > 0) {
            obj_key(&o, "b64data");
            rt_buf_append_byte(b, '"');
            rt_b64_encode(b, pub->data.p, pub->data.n, false, true);
            rt_buf_append_byte(b, '"');
        }
    } else if (pub->data.n > 0) {
        obj_key(&o, "data");
        rt_json_write_raw(b, pub->data);
    }
    if (pub->has_info) {
        obj_key(&o, "info");
        int rc = node_json_write_client_info(b, &pub->info);
        if (rc != 0)
            return rc;
    }
    put_u64(&o, "offset", pub->offset);
    if (pub->ntags > 0) {
        obj_key(&o, "tags");
        obj_t t = obj_begin(b);
        for (size_t i = 0; i < pub->ntags; i++) {
            obj_str_key(&t, pub->tags[i].key);
            rt_json_write_string(b, pub->tags[i].value);
        }
        obj_end(&t);
    }
    obj_end(&o);
    return 0;
}

static int write_pubs(rt_buf_t *b, broker_pub_t *const *pubs, size_t n)
{
    rt_buf_append_byte(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            rt_buf_append_byte(b, ',');
        int rc = node_json_write_pub(b, pubs[i], false);
        if (rc != 0)
            return rc;
    }
    rt_buf_append_byte(b, ']');
    return 0;
}

static int write_sub_result(rt_buf_t *b, const node_sub_result_t *r)
{
    obj_t o = obj_begin(b);
    put_true(&o, "expires", r->expires);
    if (r->expires)
        put_u64(&o, "ttl", r->ttl);
    put_true(&o, "recoverable", r->recoverable);
    put_str(&o, "epoch", r->epoch);
    if (r->npubs > 0) {
        obj_key(&o, "publications");
        int rc = write_pubs(b, r->pubs, r->npubs);
        if (rc != 0)
            return rc;
    }
    put_true(&o, "recovered", r->recovered);
    put_u64(&o, "offset", r->offset);
    put_true(&o, "positioned", r->positioned);
    int rc = put_raw_checked(&o, "data", r->data);
    if (rc != 0)
        return rc;
    put_true(&o, "was_recovering", r->was_recovering);
    obj_end(&o);
    return 0;
}

static int write_connect_subs(obj_t *o, const char *key, const node_connect_result_t *r)
{
    if (r->nsubs == 0)
        return 0;
    obj_key(o, key);
    obj_t m = obj_begin(o->b);
    for (size_t i = 0; i < r->nsubs; i++) {
        obj_str_key(&m, r->sub_channels[i]);
        int rc = write_sub_result(o->b, &r->subs[i]);
        if (rc != 0)
            return rc;
    }
    obj_end(&m);
    return 0;
}

void node_json_reply_error(rt_buf_t *b, uint32_t id, int code, const char *message, bool temporary)
{
    obj_t o = reply_begin(b, id, "error");
    obj_t e = obj_begin(b);
    obj_key(&e, "code");
    rt_buf_append_u64(b, (uint64_t)(uint32_t)code);
    put_str(&e, "message", rt_str_c(message != NULL ? message : node_error_message(code)));
    put_true(&e, "temporary", temporary);
    obj_end(&e);
    obj_end(&o);
}

void node_json_reply_empty(rt_buf_t *b, uint32_t id, const char *result_field)
{
    obj_t o = reply_begin(b, id, result_field);
    rt_buf_append(b, "{}", 2);
    obj_end(&o);
}

int node_json_reply_connect(rt_buf_t *b, uint32_t id, const node_connect_result_t *r)
{
    obj_t o = reply_begin(b, id, "connect");
    obj_t c = obj_begin(b);
    put_str(&c, "client", r->client);
    put_str(&c, "version", r->version);
    put_true(&c, "expires", r->expires);
    if (r->expires)
        put_u64(&c, "ttl", r->ttl);
    int rc = put_raw_checked(&c, "data", r->data);
    if (rc == 0)
        rc = write_connect_subs(&c, "subs", r);
    if (rc != 0)
        return rc;
    put_u64(&c, "ping", r->ping);
    put_true(&c, "pong", r->pong);
    put_str(&c, "session", r->session);
    put_str(&c, "node", r->node);
    put_i64(&c, "time", r->time_ms);
    obj_end(&c);
    obj_end(&o);
    return 0;
}

int node_json_reply_subscribe(rt_buf_t *b, uint32_t id, const node_sub_result_t *r)
{
    obj_t o = reply_begin(b, id, "subscribe");
    int rc = write_sub_result(b, r);
    if (rc != 0)
        return rc;
    obj_end(&o);
    return 0;
}

int node_json_reply_presence(rt_buf_t *b, uint32_t id, const rt_client_info_t *e, size_t n)
{
    obj_t o = reply_begin(b, id, "presence");
    obj_t p = obj_begin(b);
    obj_key(&p, "presence");
    obj_t m = obj_begin(b);
    for (size_t i = 0; i < n; i++) {
        obj_str_key(&m, e[i].client);
        int rc = node_json_write_client_info(b, &e[i]);
        if (rc != 0)
            return rc;
    }
    obj_end(&m);
    obj_end(&p);
    obj_end(&o);
    return 0;
}

void node_json_reply_presence_stats(rt_buf_t *b, uint32_t id, uint32_t clients, uint32_t users)
{
    obj_t o = reply_begin(b, id, "presence_stats");
    obj_t s = obj_begin(b);
    obj_key(&s, "num_clients");
    rt_buf_append_u64(b, clients);
    obj_key(&s, "num_users");
    rt_buf_append_u64(b, users);
    obj_end(&s);
    obj_end(&o);
}

int node_json_reply_history(rt_buf_t *b, uint32_t id, broker_pub_t *const *pubs, size_t n,
                            rt_str_t epoch, uint64_t offset)
{
    obj_t o = reply_begin(b, id, "history");
    obj_t h = obj_begin(b);
    obj_key(&h, "publications");
    int rc = write_pubs(b, pubs, n);
    if (rc != 0)
        return rc;
    obj_key(&h, "epoch");
    rt_json_write_string(b, epoch);
    obj_key(&h, "offset");
    rt_buf_append_u64(b, offset);
    obj_end(&h);
    obj_end(&o);
    return 0;
}

int node_json_reply_rpc(rt_buf_t *b, uint32_t id, rt_str_t data)
{
    obj_t o = reply_begin(b, id, "rpc");
    obj_t r = obj_begin(b);
    int rc = put_raw_checked(&r, "data", data);
    if (rc != 0)
        return rc;
    obj_end(&r);
    obj_end(&o);
    return 0;
}

void node_json_reply_refresh(rt_buf_t *b, uint32_t id, const char *field, bool expires,
                             uint32_t ttl)
{
    obj_t o = reply_begin(b, id, field);
    obj_t r = obj_begin(b);
    put_true(&r, "expires", expires);
    if (expires)
        put_u64(&r, "ttl", ttl);
    obj_end(&r);
    obj_end(&o);
}

void node_json_ping(rt_buf_t *b)
{
    rt_buf_append(b, "{}", 2);
}

int node_json_push_pub(rt_buf_t *b, const broker_pub_t *pub)
{
    obj_t outer, push;
    push_begin(b, &outer, &push, pub->channel, "pub");
    int rc = node_json_write_pub(b, pub, false);
    if (rc != 0)
        return rc;
    push_end(&outer, &push);
    return 0;
}

int node_json_push_join(rt_buf_t *b, rt_str_t channel, const rt_client_info_t *info, bool leave)
{
    obj_t outer, push;
    push_begin(b, &outer, &push, channel, leave ? "leave" : "join");
    obj_t j = obj_begin(b);
    obj_key(&j, "info");
    int rc = node_json_write_client_info(b, info);
    if (rc != 0)
        return rc;
    obj_end(&j);
    push_end(&outer, &push);
    return 0;
}

void node_json_push_unsubscribe(rt_buf_t *b, rt_str_t channel, int code, const char *reason)
{
    obj_t outer, push;
    push_begin(b, &outer, &push, channel, "unsubscribe");
    obj_t u = obj_begin(b);
    /* Always written: centrifuge-js reads a missing code as "resubscribe". */
    obj_key(&u, "code");
    rt_buf_append_u64(b, (uint64_t)(uint32_t)code);
    put_str(&u, "reason", rt_str_c(reason != NULL ? reason : node_unsubscribe_reason(code)));
    obj_end(&u);
    push_end(&outer, &push);
}

int node_json_push_subscribe(rt_buf_t *b, rt_str_t channel, const node_sub_result_t *r)
{
    obj_t outer, push;
    push_begin(b, &outer, &push, channel, "subscribe");
    obj_t s = obj_begin(b);
    put_true(&s, "recoverable", r->recoverable);
    put_str(&s, "epoch", r->epoch);
    put_u64(&s, "offset", r->offset);
    put_true(&s, "positioned", r->positioned);
    int rc = put_raw_checked(&s, "data", r->data);
    if (rc != 0)
        return rc;
    obj_end(&s);
    push_end(&outer, &push);
    return 0;
}

int node_json_push_message(rt_buf_t *b, rt_str_t data)
{
    obj_t outer, push;
    push_begin(b, &outer, &push, RT_STR_NULL, "message");
    obj_t m = obj_begin(b);
    int rc = put_raw_checked(&m, "data", data);
    if (rc != 0)
        return rc;
    obj_end(&m);
    push_end(&outer, &push);
    return 0;
}

void node_json_push_disconnect(rt_buf_t *b, int code, const char *reason)
{
    obj_t outer, push;
    push_begin(b, &outer, &push, RT_STR_NULL, "disconnect");
    obj_t d = obj_begin(b);
    put_u64(&d, "code", (uint32_t)code);
    put_str(&d, "reason", rt_str_c(reason != NULL ? reason : node_disconnect_reason(code)));
    obj_end(&d);
    push_end(&outer, &push);
}

void node_json_push_refresh(rt_buf_t *b, bool expires, uint32_t ttl)
{
    obj_t outer, push;
    push_begin(b, &outer, &push, RT_STR_NULL, "refresh");
    obj_t r = obj_begin(b);
    put_true(&r, "expires", expires);
    if (expires)
        put_u64(&r, "ttl", ttl);
    obj_end(&r);
    push_end(&outer, &push);
}

int node_json_push_connect(rt_buf_t *b, const node_connect_result_t *r)
{
    obj_t outer, push;
    push_begin(b, &outer, &push, RT_STR_NULL, "connect");
    obj_t c = obj_begin(b);
    put_str(&c, "client", r->client);
    put_str(&c, "version", r->version);
    int rc = put_raw_checked(&c, "data", r->data);
    if (rc == 0)
        rc = write_connect_subs(&c, "subs", r);
    if (rc != 0)
        return rc;
    put_true(&c, "expires", r->expires);
    if (r->expires)
        put_u64(&c, "ttl", r->ttl);
    put_u64(&c, "ping", r->ping);
    put_true(&c, "pong", r->pong);
    put_str(&c, "session", r->session);
    put_str(&c, "node", r->node);
    put_i64(&c, "time", r->time_ms);
    obj_end(&c);
    push_end(&outer, &push);
    return 0;
}

/* MessagePack encoding of control messages (control.h). */
#include "node/control.h"

#include <msgpack.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/err.h"

static int buf_write(void *data, const char *p, size_t n)
{
    rt_buf_append(data, p, n);
    return 0;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str_with_body(pk, s, n);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    pack_str(pk, s, strlen(s));
}

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    pack_cstr(pk, k);
    pack_cstr(pk, v);
}

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pack_cstr(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void pack_kv_i64(msgpack_packer *pk, const char *k, int64_t v)
{
    pack_cstr(pk, k);
    msgpack_pack_int64(pk, v);
}

static void pack_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
    pack_cstr(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

static void pack_kv_bin(msgpack_packer *pk, const char *k, const rt_buf_t *b)
{
    pack_cstr(pk, k);
    msgpack_pack_bin_with_body(pk, b->p ? b->p : (const uint8_t *)"", b->len);
}

static const char *const control_names[] = {"subscribe", "unsubscribe", "disconnect", "refresh"};

static void pack_command(msgpack_packer *pk, const node_control_t *c)
{
    msgpack_pack_map(pk, 17);
    pack_kv_str(pk, "user", c->user);
    pack_kv_str(pk, "client", c->client);
    pack_kv_str(pk, "session", c->session);
    pack_kv_str(pk, "channel", c->channel);
    pack_kv_i64(pk, "code", c->code);
    pack_kv_str(pk, "reason", c->reason);
    pack_kv_bin(pk, "channel_info", &c->info);
    pack_kv_bin(pk, "data", &c->data);
    pack_kv_bool(pk, "has_recover_since", c->has_recover_since);
    pack_kv_u64(pk, "recover_offset", c->recover_offset);
    pack_kv_str(pk, "recover_epoch", c->recover_epoch);
    pack_kv_i64(pk, "expire_at", c->expire_at);
    pack_kv_bool(pk, "has_expire_at", c->has_expire_at);
    pack_kv_bool(pk, "expired", c->expired);
    pack_kv_bool(pk, "has_info", c->has_info);
    pack_cstr(pk, "override");
    const node_jwt_bool_t ov[5] = {c->override.presence, c->override.join_leave,
                                   c->override.force_push_join_leave, c->override.force_recovery,
                                   c->override.force_positioning};
    msgpack_pack_array(pk, 5);
    for (int i = 0; i < 5; i++)
        msgpack_pack_int(pk, (int)ov[i]);
    pack_cstr(pk, "whitelist");
    size_t nw = 0;
    while (c->whitelist && c->whitelist[nw])
        nw++;
    msgpack_pack_array(pk, nw);
    for (size_t i = 0; i < nw; i++)
        pack_cstr(pk, c->whitelist[i]);
}

void node_ctl_msg_init(node_ctl_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    rt_buf_init(&m->survey_data);
}

void node_ctl_msg_cleanup(node_ctl_msg_t *m)
{
    rt_buf_cleanup(&m->survey_data);
    m->control = NULL;
}

void node_ctl_encode(rt_buf_t *out, const node_ctl_msg_t *m)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    msgpack_pack_map(&pk, 2);
    pack_kv_str(&pk, "uid", m->uid);
    switch (m->type) {
    case NODE_CTL_NODE:
        pack_cstr(&pk, "node");
        msgpack_pack_map(&pk, 8);
        pack_kv_str(&pk, "uid", m->node.uid);
        pack_kv_str(&pk, "name", m->node.name);
        pack_kv_str(&pk, "version", m->node.version);
        pack_kv_u64(&pk, "num_clients", m->node.num_clients);
        pack_kv_u64(&pk, "num_users", m->node.num_users);
        pack_kv_u64(&pk, "num_channels", m->node.num_channels);
        pack_kv_u64(&pk, "num_subs", m->node.num_subs);
        pack_kv_i64(&pk, "uptime", m->node.uptime_s);
        break;
    case NODE_CTL_SHUTDOWN:
        pack_cstr(&pk, "shutdown");
        msgpack_pack_map(&pk, 0);
        break;
    case NODE_CTL_COMMAND:
        pack_cstr(&pk, control_names[m->control->kind]);
        pack_command(&pk, m->control);
        break;
    case NODE_CTL_SURVEY_REQ:
    case NODE_CTL_SURVEY_RESP:
        pack_cstr(&pk, m->type == NODE_CTL_SURVEY_REQ ? "survey_request" : "survey_response");
        msgpack_pack_map(&pk, 3);
        pack_kv_u64(&pk, "id", m->survey_id);
        if (m->type == NODE_CTL_SURVEY_REQ)
            pack_kv_str(&pk, "op", m->survey_op);
        else
            pack_kv_i64(&pk, "code", m->survey_code);
        pack_kv_bin(&pk, "data", &m->survey_data);
        break;
    case NODE_CTL_EMULATION:
        pack_cstr(&pk, "emulation");
        msgpack_pack_map(&pk, 2);
        pack_kv_str(&pk, "session", m->session);
        pack_kv_bin(&pk, "data", &m->survey_data);
        break;
    }
}

/* ---- decoding ---- */

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* True if p[0..n) is exactly one MessagePack object whose declared lengths all fit in the
 * input. msgpack-c reserves memory for a container from its header before checking that
 * the bytes exist, so a 5-byte header from a hostile Redis could ask for gigabytes: every
 * input is checked with this walk first. Each pending element needs at least one byte,
 * which bounds the element count by the input size. */
static bool mp_fits(const uint8_t *p, size_t n)
{
    size_t pos = 0;
    uint64_t pending = 1;
    while (pending > 0) {
        if (pos >= n)
            return false;
        pending--;
        uint8_t b = p[pos++];
        size_t hdr = 0;  /* length bytes after the type byte */
        size_t skip = 0; /* fixed payload bytes */
        uint64_t items = 0;
        bool is_len = false; /* hdr bytes hold a payload length */
        int items_mul = 0;   /* hdr bytes hold an element count (1 array, 2 map) */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            continue;
        } else if (b >= 0x80 && b <= 0x8f) {
            items = 2u * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            items = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9:
                hdr = 1;
                is_len = true;
                break;
            case 0xc5:
            case 0xda:
                hdr = 2;
                is_len = true;
                break;
            case 0xc6:
            case 0xdb:
                hdr = 4;
                is_len = true;
                break;
            case 0xc7:
                hdr = 1;
                is_len = true;
                skip = 1;
                break; /* ext: + type byte */
            case 0xc8:
                hdr = 2;
                is_len = true;
                skip = 1;
                break;
            case 0xc9:
                hdr = 4;
                is_len = true;
                skip = 1;
                break;
            case 0xca:
                skip = 4;
                break;
            case 0xcb:
                skip = 8;
                break;
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xd4:
                skip = 2;
                break;
            case 0xd5:
                skip = 3;
                break;
            case 0xd6:
                skip = 5;
                break;
            case 0xd7:
                skip = 9;
                break;
            case 0xd8:
                skip = 17;
                break;
            case 0xdc:
                hdr = 2;
                items_mul = 1;
                break;
            case 0xdd:
                hdr = 4;
                items_mul = 1;
                break;
            case 0xde:
                hdr = 2;
                items_mul = 2;
                break;
            case 0xdf:
                hdr = 4;
                items_mul = 2;
                break;
            default:
                return false; /* 0xc1 is never used */
            }
        }
        if (hdr) {
            if (n - pos < hdr)
                return false;
            uint64_t v = be(p + pos, hdr);
            pos += hdr;
            if (is_len)
                skip += v;
            else
                items = v * (uint64_t)items_mul;
        }
        if (skip > n - pos)
            return false;
        pos += skip;
        pending += items;
        if (pending > n - pos)
            return false;
    }
    return pos == n;
}

static bool key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

static int get_cstr(const msgpack_object *v, char *dst, size_t cap)
{
    if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= cap)
        return RT_EINVAL;
    memcpy(dst, v->via.str.ptr, v->via.str.size);
    dst[v->via.str.size] = '\0';
    return 0;
}

static int get_heap_str(const msgpack_object *v, char **dst)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return RT_EINVAL;
    rt_free(*dst);
    *dst = rt_strndup(v->via.str.ptr, v->via.str.size);
    return 0;
}

static int get_u64(const msgpack_object *v, uint64_t *out)
{
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return RT_EINVAL;
    *out = v->via.u64;
    return 0;
}

static int get_i64(const msgpack_object *v, int64_t *out)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX) {
        *out = (int64_t)v->via.u64;
        return 0;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return 0;
    }
    return RT_EINVAL;
}

static int get_bool(const msgpack_object *v, bool *out)
{
    if (v->type != MSGPACK_OBJECT_BOOLEAN)
        return RT_EINVAL;
    *out = v->via.boolean;
    return 0;
}

static int get_bin(const msgpack_object *v, rt_buf_t *out)
{
    if (v->type != MSGPACK_OBJECT_BIN)
        return RT_EINVAL;
    rt_buf_reset(out);
    rt_buf_append(out, v->via.bin.ptr, v->via.bin.size);
    return 0;
}

static int get_u32(const msgpack_object *v, uint32_t *out)
{
    uint64_t x;
    if (get_u64(v, &x) != 0 || x > UINT32_MAX)
        return RT_EINVAL;
    *out = (uint32_t)x;
    return 0;
}

static int decode_node(const msgpack_object *o, node_info_t *n)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return RT_EINVAL;
    int rc = 0;
    for (uint32_t i = 0; i < o->via.map.size && rc == 0; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (key_is(k, "uid"))
            rc = get_cstr(v, n->uid, sizeof(n->uid));
        else if (key_is(k, "name"))
            rc = get_cstr(v, n->name, sizeof(n->name));
        else if (key_is(k, "version"))
            rc = get_cstr(v, n->version, sizeof(n->version));
        else if (key_is(k, "num_clients"))
            rc = get_u32(v, &n->num_clients);
        else if (key_is(k, "num_users"))
            rc = get_u32(v, &n->num_users);
        else if (key_is(k, "num_channels"))
            rc = get_u32(v, &n->num_channels);
        else if (key_is(k, "num_subs"))
            rc = get_u32(v, &n->num_subs);
        else if (key_is(k, "uptime"))
            rc = get_i64(v, &n->uptime_s);
    }
    return rc;
}

static int decode_command(const msgpack_object *o, node_control_t *c)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return RT_EINVAL;
    int rc = 0;
    for (uint32_t i = 0; i < o->via.map.size && rc == 0; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        int64_t code = 0;
        if (key_is(k, "user"))
            rc = get_heap_str(v, &c->user);
        else if (key_is(k, "client"))
            rc = get_heap_str(v, &c->client);
        else if (key_is(k, "session"))
            rc = get_heap_str(v, &c->session);
        else if (key_is(k, "channel"))
            rc = get_heap_str(v, &c->channel);
        else if (key_is(k, "reason"))
            rc = get_heap_str(v, &c->reason);
        else if (key_is(k, "code")) {
            rc = get_i64(v, &code);
            if (rc == 0 && (code < 0 || code > 65535))
                rc = RT_EINVAL;
            c->code = (int)code;
        } else if (key_is(k, "channel_info"))
            rc = get_bin(v, &c->info);
        else if (key_is(k, "data"))
            rc = get_bin(v, &c->data);
        else if (key_is(k, "has_recover_since"))
            rc = get_bool(v, &c->has_recover_since);
        else if (key_is(k, "recover_offset"))
            rc = get_u64(v, &c->recover_offset);
        else if (key_is(k, "recover_epoch"))
            rc = get_cstr(v, c->recover_epoch, sizeof(c->recover_epoch));
        else if (key_is(k, "expire_at"))
            rc = get_i64(v, &c->expire_at);
        else if (key_is(k, "has_expire_at"))
            rc = get_bool(v, &c->has_expire_at);
        else if (key_is(k, "expired"))
            rc = get_bool(v, &c->expired);
        else if (key_is(k, "has_info"))
            rc = get_bool(v, &c->has_info);
        else if (key_is(k, "override")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != 5)
                return RT_EINVAL;
            node_jwt_bool_t *dst[5] = {&c->override.presence, &c->override.join_leave,
                                       &c->override.force_push_join_leave,
                                       &c->override.force_recovery, &c->override.force_positioning};
            for (int j = 0; j < 5 && rc == 0; j++) {
                int64_t b = 0;
                rc = get_i64(&v->via.array.ptr[j], &b);
                if (rc == 0 && (b < -1 || b > 1))
                    rc = RT_EINVAL;
                *dst[j] = (node_jwt_bool_t)b;
            }
        } else if (key_is(k, "whitelist")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > 65536)
                return RT_EINVAL;
            uint32_t n = v->via.array.size;
            c->whitelist = rt_calloc(n + 1, sizeof(char *));
            for (uint32_t j = 0; j < n && rc == 0; j++)
                rc = get_heap_str(&v->via.array.ptr[j], &c->whitelist[j]);
        }
    }
    return rc;
}

int node_ctl_decode(const uint8_t *p, size_t n, node_ctl_msg_t *m)
{
    node_ctl_msg_init(m);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = RT_EINVAL;
    if (!mp_fits(p, n) ||
        msgpack_unpack_next(&u, (const char *)p, n, &off) != MSGPACK_UNPACK_SUCCESS || off != n ||
        u.data.type != MSGPACK_OBJECT_MAP)
        goto out;
    const msgpack_object_map *top = &u.data.via.map;
    const msgpack_object *body = NULL, *kind = NULL;
    bool have_uid = false;
    for (uint32_t i = 0; i < top->size; i++) {
        const msgpack_object *k = &top->ptr[i].key;
        if (key_is(k, "uid")) {
            if (get_cstr(&top->ptr[i].val, m->uid, sizeof(m->uid)) != 0)
                goto out;
            have_uid = true;
        } else if (k->type == MSGPACK_OBJECT_STR) {
            kind = k;
            body = &top->ptr[i].val;
        }
    }
    if (!have_uid || body == NULL)
        goto out;
    if (key_is(kind, "node")) {
        m->type = NODE_CTL_NODE;
        rc = decode_node(body, &m->node);
    } else if (key_is(kind, "shutdown")) {
        m->type = NODE_CTL_SHUTDOWN;
        rc = 0;
    } else if (key_is(kind, "survey_request") || key_is(kind, "survey_response")) {
        m->type = key_is(kind, "survey_request") ? NODE_CTL_SURVEY_REQ : NODE_CTL_SURVEY_RESP;
        if (body->type != MSGPACK_OBJECT_MAP)
            goto out;
        rc = 0;
        for (uint32_t i = 0; i < body->via.map.size && rc == 0; i++) {
            const msgpack_object *k = &body->via.map.ptr[i].key, *v = &body->via.map.ptr[i].val;
            int64_t code = 0;
            if (key_is(k, "id")) {
                rc = get_u64(v, &m->survey_id);
            } else if (key_is(k, "op")) {
                rc = get_cstr(v, m->survey_op, sizeof(m->survey_op));
            } else if (key_is(k, "code")) {
                rc = get_i64(v, &code);
                m->survey_code = (int)code;
            } else if (key_is(k, "data")) {
                rc = get_bin(v, &m->survey_data);
            }
        }
    } else if (key_is(kind, "emulation")) {
        m->type = NODE_CTL_EMULATION;
        if (body->type != MSGPACK_OBJECT_MAP)
            goto out;
        rc = 0;
        for (uint32_t i = 0; i < body->via.map.size && rc == 0; i++) {
            const msgpack_object *k = &body->via.map.ptr[i].key, *v = &body->via.map.ptr[i].val;
            if (key_is(k, "session"))
                rc = get_cstr(v, m->session, sizeof(m->session));
            else if (key_is(k, "data"))
                rc = get_bin(v, &m->survey_data);
        }
    } else {
        int kindix = -1;
        for (int i = 0; i < 4; i++) {
            if (key_is(kind, control_names[i]))
                kindix = i;
        }
        if (kindix < 0)
            goto out;
        m->type = NODE_CTL_COMMAND;
        m->control = node_control_new((node_control_kind_t)kindix);
        rc = decode_command(body, m->control);
        if (rc != 0) {
            node_control_unref(m->control);
            m->control = NULL;
        }
    }
out:
    msgpack_unpacked_destroy(&u);
    return rc;
}

void node_ctl_encode_channels(rt_buf_t *out, const node_map_t *channels)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    msgpack_pack_map(&pk, channels->count);
    for (node_map_iter_t it = node_map_iter(channels); node_map_next(&it);) {
        pack_str(&pk, it.entry->key.p, it.entry->key.n);
        msgpack_pack_uint64(&pk, (uintptr_t)it.entry->val - 1);
    }
}

int node_ctl_decode_channels(const uint8_t *p, size_t n, node_survey_result_t *r)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = RT_EINVAL;
    if (mp_fits(p, n) &&
        msgpack_unpack_next(&u, (const char *)p, n, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        rc = 0;
        const msgpack_object_map *m = &u.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                v->via.u64 > UINT32_MAX) {
                rc = RT_EINVAL;
                break;
            }
            node_survey_result_add(r, &r->channels, rt_str_from(k->via.str.ptr, k->via.str.size),
                                   (uintptr_t)v->via.u64);
        }
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* Encoding uses msgpack-c's packer. Decoding is a small bounds-checked reader instead of
 * msgpack_unpack: the payload comes from Redis (any writer on the prefix), and msgpack-c
 * allocates container arrays from a length header before checking that the bytes exist,
 * so a 5-byte "array of 4 billion" would be a multi-gigabyte allocation. Here nothing is
 * allocated from a length without first checking it against the bytes left. */
#include "broker/pubcodec.h"

#include <string.h>

#include <msgpack.h>

#include "node/base/alloc.h"
#include "node/base/err.h"

/* ---- encoding ---- */

static int buf_write(void *data, const char *p, size_t n)
{
    if (n > 0)
        rt_buf_append(data, p, n);
    return 0;
}

static void pack_bin(msgpack_packer *pk, rt_str_t s)
{
    msgpack_pack_bin(pk, s.n);
    msgpack_pack_bin_body(pk, s.p, s.n);
}

static void pack_str(msgpack_packer *pk, rt_str_t s)
{
    msgpack_pack_str(pk, s.n);
    msgpack_pack_str_body(pk, s.p, s.n);
}

static void pack_info(msgpack_packer *pk, const broker_client_info_t *info)
{
    size_t n = (info->user.n > 0) + (info->client.n > 0) + (info->conn_info.n > 0) +
               (info->chan_info.n > 0);
    msgpack_pack_map(pk, n);
    if (info->user.n > 0) {
        msgpack_pack_uint8(pk, BROKER_PC_INFO_USER);
        pack_str(pk, info->user);
    }
    if (info->client.n > 0) {
        msgpack_pack_uint8(pk, BROKER_PC_INFO_CLIENT);
        pack_str(pk, info->client);
    }
    if (info->conn_info.n > 0) {
        msgpack_pack_uint8(pk, BROKER_PC_INFO_CONN_INFO);
        pack_bin(pk, info->conn_info);
    }
    if (info->chan_info.n > 0) {
        msgpack_pack_uint8(pk, BROKER_PC_INFO_CHAN_INFO);
        pack_bin(pk, info->chan_info);
    }
}

void broker_pc_encode_info(rt_buf_t *out, const broker_client_info_t *info)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    pack_info(&pk, info);
}

void broker_pc_encode_pub(rt_buf_t *out, const broker_pub_fields_t *f)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    size_t n = (f->data.n > 0) + (f->info != NULL) + (f->ntags > 0) + f->delta + (f->time_ms != 0) +
               f->data_binary;
    msgpack_pack_map(&pk, n);
    if (f->data.n > 0) {
        msgpack_pack_uint8(&pk, BROKER_PC_PUB_DATA);
        pack_bin(&pk, f->data);
    }
    if (f->info != NULL) {
        msgpack_pack_uint8(&pk, BROKER_PC_PUB_INFO);
        pack_info(&pk, f->info);
    }
    if (f->ntags > 0) {
        msgpack_pack_uint8(&pk, BROKER_PC_PUB_TAGS);
        msgpack_pack_map(&pk, f->ntags);
        for (size_t i = 0; i < f->ntags; i++) {
            pack_str(&pk, f->tags[i].key);
            pack_str(&pk, f->tags[i].value);
        }
    }
    if (f->delta) {
        msgpack_pack_uint8(&pk, BROKER_PC_PUB_DELTA);
        msgpack_pack_true(&pk);
    }
    if (f->time_ms != 0) {
        msgpack_pack_uint8(&pk, BROKER_PC_PUB_TIME);
        msgpack_pack_int64(&pk, f->time_ms);
    }
    if (f->data_binary) {
        msgpack_pack_uint8(&pk, BROKER_PC_PUB_DATA_BINARY);
        msgpack_pack_true(&pk);
    }
}

void broker_pc_encode_join(rt_buf_t *out, const broker_client_info_t *info)
{
    rt_buf_append(out, "__j__", 5);
    broker_pc_encode_info(out, info);
}

void broker_pc_encode_leave(rt_buf_t *out, const broker_client_info_t *info)
{
    rt_buf_append(out, "__l__", 5);
    broker_pc_encode_info(out, info);
}

void broker_pc_encode_positioned(rt_buf_t *out, uint64_t offset, rt_str_t epoch,
                                 const broker_pub_fields_t *f)
{
    rt_buf_append(out, "__p1:", 5);
    rt_buf_append_u64(out, offset);
    rt_buf_append_byte(out, ':');
    rt_buf_append_str(out, epoch);
    rt_buf_append(out, "__", 2);
    broker_pc_encode_pub(out, f);
}

/* ---- decoding ---- */

typedef struct rd {
    const uint8_t *p;   /* next byte; borrowed from the input */
    const uint8_t *end; /* one past the input */
} rd_t;

enum vtype { V_NIL, V_BOOL, V_UINT, V_INT, V_FLOAT, V_STR, V_BIN, V_EXT, V_ARRAY, V_MAP };

/* One MessagePack header. Scalars and str/bin/ext bodies are consumed with it; for arrays
 * and maps n is the element (pair) count and the elements follow. */
typedef struct val {
    enum vtype t;
    bool b;
    uint64_t u; /* V_UINT */
    int64_t i;  /* V_INT (negative values only; non-negative integers are V_UINT) */
    const char *s;
    uint64_t n; /* body length (str/bin/ext) or element count */
} val_t;

static size_t left(const rd_t *r)
{
    return (size_t)(r->end - r->p);
}

static int take(rd_t *r, size_t n, const uint8_t **out)
{
    if (left(r) < n)
        return RT_EPROTO;
    *out = r->p;
    r->p += n;
    return 0;
}

static int be(rd_t *r, size_t n, uint64_t *out)
{
    const uint8_t *q;
    if (take(r, n, &q) != 0)
        return RT_EPROTO;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | q[i];
    *out = v;
    return 0;
}

static int body(rd_t *r, val_t *v, enum vtype t, uint64_t n)
{
    const uint8_t *q;
    v->t = t;
    v->n = n;
    if (n > left(r) || take(r, (size_t)n, &q) != 0)
        return RT_EPROTO;
    v->s = (const char *)q;
    return 0;
}

static int sized(rd_t *r, val_t *v, enum vtype t, size_t width)
{
    uint64_t n;
    if (be(r, width, &n) != 0)
        return RT_EPROTO;
    if (t == V_ARRAY || t == V_MAP) {
        v->t = t;
        v->n = n;
        return 0;
    }
    return body(r, v, t, n);
}

static int signed_be(rd_t *r, val_t *v, size_t width)
{
    uint64_t u;
    if (be(r, width, &u) != 0)
        return RT_EPROTO;
    int shift = (int)(64 - 8 * width);
    int64_t x = shift ? (int64_t)(u << shift) >> shift : (int64_t)u;
    if (x >= 0) {
        v->t = V_UINT;
        v->u = (uint64_t)x;
    } else {
        v->t = V_INT;
        v->i = x;
    }
    return 0;
}

static int rd_next(rd_t *r, val_t *v)
{
    const uint8_t *q;
    memset(v, 0, sizeof(*v));
    if (take(r, 1, &q) != 0)
        return RT_EPROTO;
    uint8_t c = *q;
    if (c <= 0x7f) {
        v->t = V_UINT;
        v->u = c;
        return 0;
    }
    if (c >= 0xe0) {
        v->t = V_INT;
        v->i = (int8_t)c;
        return 0;
    }
    if ((c & 0xf0) == 0x80) {
        v->t = V_MAP;
        v->n = c & 0x0f;
        return 0;
    }
    if ((c & 0xf0) == 0x90) {
        v->t = V_ARRAY;
        v->n = c & 0x0f;
        return 0;
    }
    if ((c & 0xe0) == 0xa0)
        return body(r, v, V_STR, c & 0x1f);
    switch (c) {
    case 0xc0:
        v->t = V_NIL;
        return 0;
    case 0xc2:
    case 0xc3:
        v->t = V_BOOL;
        v->b = c == 0xc3;
        return 0;
    case 0xc4:
        return sized(r, v, V_BIN, 1);
    case 0xc5:
        return sized(r, v, V_BIN, 2);
    case 0xc6:
        return sized(r, v, V_BIN, 4);
    case 0xc7:
    case 0xc8:
    case 0xc9: {
        uint64_t n;
        if (be(r, c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4, &n) != 0 || n == UINT64_MAX)
            return RT_EPROTO;
        return body(r, v, V_EXT, n + 1); /* type byte + data */
    }
    case 0xca:
        v->t = V_FLOAT;
        return take(r, 4, &q);
    case 0xcb:
        v->t = V_FLOAT;
        return take(r, 8, &q);
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        v->t = V_UINT;
        return be(r, (size_t)1 << (c - 0xcc), &v->u);
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
        return signed_be(r, v, (size_t)1 << (c - 0xd0));
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        return body(r, v, V_EXT, 1 + ((uint64_t)1 << (c - 0xd4)));
    case 0xd9:
        return sized(r, v, V_STR, 1);
    case 0xda:
        return sized(r, v, V_STR, 2);
    case 0xdb:
        return sized(r, v, V_STR, 4);
    case 0xdc:
        return sized(r, v, V_ARRAY, 2);
    case 0xdd:
        return sized(r, v, V_ARRAY, 4);
    case 0xde:
        return sized(r, v, V_MAP, 2);
    case 0xdf:
        return sized(r, v, V_MAP, 4);
    default:
        return RT_EPROTO; /* 0xc1 is never used */
    }
}

/* Skips the elements of the container header v just read. Iterative: nesting depth costs
 * nothing, and every element consumes at least one byte, so the loop ends with the input. */
static int skip_children(rd_t *r, const val_t *v)
{
    uint64_t pending = v->t == V_MAP ? 2 * v->n : v->t == V_ARRAY ? v->n : 0;
    while (pending > 0) {
        if (pending > left(r))
            return RT_EPROTO;
        val_t c;
        if (rd_next(r, &c) != 0)
            return RT_EPROTO;
        pending--;
        if (c.t == V_MAP)
            pending += 2 * c.n;
        else if (c.t == V_ARRAY)
            pending += c.n;
    }
    return 0;
}

/* Reads a map key: returns the integer key, or -1 for any other key (skipped). */
static int read_key(rd_t *r, int64_t *key)
{
    val_t k;
    if (rd_next(r, &k) != 0 || skip_children(r, &k) != 0)
        return RT_EPROTO;
    *key = k.t == V_UINT && k.u <= 1000 ? (int64_t)k.u : -1;
    return 0;
}

static int skip_value(rd_t *r)
{
    val_t v;
    if (rd_next(r, &v) != 0)
        return RT_EPROTO;
    return skip_children(r, &v);
}

static int read_typed(rd_t *r, enum vtype t, rt_str_t *out)
{
    val_t v;
    if (rd_next(r, &v) != 0 || v.t != t)
        return RT_EPROTO;
    *out = rt_str_from(v.s, (size_t)v.n);
    return 0;
}

static int read_bool(rd_t *r, bool *out)
{
    val_t v;
    if (rd_next(r, &v) != 0 || v.t != V_BOOL)
        return RT_EPROTO;
    *out = v.b;
    return 0;
}

static int read_map_header(rd_t *r, uint64_t *n)
{
    val_t v;
    if (rd_next(r, &v) != 0 || v.t != V_MAP)
        return RT_EPROTO;
    /* Every pair takes at least two bytes. */
    if (v.n > left(r) / 2)
        return RT_EPROTO;
    *n = v.n;
    return 0;
}

static int seen_once(uint32_t *seen, int bit)
{
    if (*seen & (UINT32_C(1) << bit))
        return RT_EPROTO;
    *seen |= UINT32_C(1) << bit;
    return 0;
}

static int read_info(rd_t *r, broker_client_info_t *info)
{
    uint64_t n;
    uint32_t seen = 0;
    memset(info, 0, sizeof(*info));
    if (read_map_header(r, &n) != 0)
        return RT_EPROTO;
    for (uint64_t i = 0; i < n; i++) {
        int64_t key;
        int rc;
        if (read_key(r, &key) != 0)
            return RT_EPROTO;
        switch (key) {
        case BROKER_PC_INFO_USER:
            rc = read_typed(r, V_STR, &info->user);
            break;
        case BROKER_PC_INFO_CLIENT:
            rc = read_typed(r, V_STR, &info->client);
            break;
        case BROKER_PC_INFO_CONN_INFO:
            rc = read_typed(r, V_BIN, &info->conn_info);
            break;
        case BROKER_PC_INFO_CHAN_INFO:
            rc = read_typed(r, V_BIN, &info->chan_info);
            break;
        default:
            rc = skip_value(r);
            key = 0;
            break;
        }
        if (rc != 0 || (key > 0 && seen_once(&seen, (int)key) != 0))
            return RT_EPROTO;
    }
    return 0;
}

static int read_tags(rd_t *r, broker_pc_pub_t *out)
{
    uint64_t n;
    if (read_map_header(r, &n) != 0)
        return RT_EPROTO;
    if (n == 0)
        return 0;
    out->tags = rt_malloc((size_t)n * sizeof(*out->tags));
    out->fields.tags = out->tags;
    for (uint64_t i = 0; i < n; i++) {
        broker_tag_t *t = &out->tags[i];
        if (read_typed(r, V_STR, &t->key) != 0 || read_typed(r, V_STR, &t->value) != 0)
            return RT_EPROTO;
        out->fields.ntags = (size_t)i + 1;
    }
    return 0;
}

static int read_time(rd_t *r, int64_t *out)
{
    val_t v;
    if (rd_next(r, &v) != 0)
        return RT_EPROTO;
    if (v.t == V_UINT && v.u <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v.u;
        return 0;
    }
    if (v.t == V_INT) {
        *out = v.i;
        return 0;
    }
    return RT_EPROTO;
}

static int bit_of(int64_t key)
{
    return key == BROKER_PC_PUB_DATA_BINARY ? 31 : (int)key;
}

static int read_pub(rd_t *r, broker_pc_pub_t *out)
{
    uint64_t n;
    uint32_t seen = 0;
    if (read_map_header(r, &n) != 0)
        return RT_EPROTO;
    for (uint64_t i = 0; i < n; i++) {
        int64_t key;
        int rc;
        if (read_key(r, &key) != 0)
            return RT_EPROTO;
        switch (key) {
        case BROKER_PC_PUB_DATA:
            rc = read_typed(r, V_BIN, &out->fields.data);
            break;
        case BROKER_PC_PUB_INFO:
            rc = read_info(r, &out->info);
            out->fields.info = &out->info;
            break;
        case BROKER_PC_PUB_TAGS:
            rc = seen_once(&seen, bit_of(key));
            if (rc == 0)
                rc = read_tags(r, out);
            key = 0; /* already marked: a second tags map must not leak the first */
            break;
        case BROKER_PC_PUB_DELTA:
            rc = read_bool(r, &out->fields.delta);
            break;
        case BROKER_PC_PUB_TIME:
            rc = read_time(r, &out->fields.time_ms);
            break;
        case BROKER_PC_PUB_DATA_BINARY:
            rc = read_bool(r, &out->fields.data_binary);
            break;
        default:
            rc = skip_value(r);
            key = 0;
            break;
        }
        if (rc != 0 || (key > 0 && seen_once(&seen, bit_of(key)) != 0))
            return RT_EPROTO;
    }
    return 0;
}

int broker_pc_decode_pub(rt_str_t in, broker_pc_pub_t *out)
{
    memset(out, 0, sizeof(*out));
    rd_t r = {(const uint8_t *)in.p, (const uint8_t *)in.p + in.n};
    if (in.n == 0 || read_pub(&r, out) != 0 || left(&r) != 0) {
        broker_pc_pub_cleanup(out);
        return RT_EPROTO;
    }
    return 0;
}

void broker_pc_pub_cleanup(broker_pc_pub_t *p)
{
    rt_free(p->tags);
    memset(p, 0, sizeof(*p));
}

int broker_pc_decode_info(rt_str_t in, broker_client_info_t *out)
{
    rd_t r = {(const uint8_t *)in.p, (const uint8_t *)in.p + in.n};
    if (in.n == 0 || read_info(&r, out) != 0 || left(&r) != 0) {
        memset(out, 0, sizeof(*out));
        return RT_EPROTO;
    }
    return 0;
}

/* ---- framing ---- */

/* Parses decimal digits of s from *i up to the byte stop; at least one digit, no overflow. */
static int parse_u64(rt_str_t s, size_t *i, char stop, uint64_t *out)
{
    uint64_t v = 0;
    size_t start = *i;
    while (*i < s.n && s.p[*i] != stop) {
        char c = s.p[*i];
        if (c < '0' || c > '9')
            return RT_EPROTO;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return RT_EPROTO;
        v = v * 10 + d;
        (*i)++;
    }
    if (*i == start || *i == s.n)
        return RT_EPROTO;
    (*i)++; /* the stop byte */
    *out = v;
    return 0;
}

static bool epoch_ok(rt_str_t e)
{
    if (e.n == 0 || e.n > BROKER_PC_MAX_EPOCH)
        return false;
    for (size_t i = 0; i < e.n; i++) {
        if (e.p[i] == ':' || e.p[i] == '_')
            return false;
    }
    return true;
}

/* "p1:<offset>:<epoch>__<pub>" after the leading "__". */
static int parse_p1(rt_str_t s, broker_pc_msg_t *m)
{
    size_t i = 3;
    if (parse_u64(s, &i, ':', &m->offset) != 0)
        return RT_EPROTO;
    size_t e = i;
    while (e + 1 < s.n && !(s.p[e] == '_' && s.p[e + 1] == '_'))
        e++;
    if (e + 1 >= s.n)
        return RT_EPROTO;
    m->epoch = rt_str_from(s.p + i, e - i);
    if (!epoch_ok(m->epoch))
        return RT_EPROTO;
    return broker_pc_decode_pub(rt_str_from(s.p + e + 2, s.n - e - 2), &m->pub);
}

/* "d1:<offset>:<epoch>:<plen>:<prev>:<len>:<pub>" after the leading "__". */
static int parse_d1(rt_str_t s, broker_pc_msg_t *m)
{
    size_t i = 3;
    uint64_t plen, len;
    if (parse_u64(s, &i, ':', &m->offset) != 0)
        return RT_EPROTO;
    size_t e = i;
    while (e < s.n && s.p[e] != ':')
        e++;
    if (e == s.n)
        return RT_EPROTO;
    m->epoch = rt_str_from(s.p + i, e - i);
    if (!epoch_ok(m->epoch))
        return RT_EPROTO;
    i = e + 1;
    if (parse_u64(s, &i, ':', &plen) != 0 || plen > s.n - i)
        return RT_EPROTO;
    m->prev = rt_str_from(s.p + i, (size_t)plen);
    i += (size_t)plen;
    if (i >= s.n || s.p[i] != ':')
        return RT_EPROTO;
    i++;
    if (parse_u64(s, &i, ':', &len) != 0 || len != s.n - i)
        return RT_EPROTO;
    return broker_pc_decode_pub(rt_str_from(s.p + i, (size_t)len), &m->pub);
}

int broker_pc_decode_msg(rt_str_t s, broker_pc_msg_t *m)
{
    int rc;
    memset(m, 0, sizeof(*m));
    if (s.n < 2 || s.p[0] != '_' || s.p[1] != '_') {
        m->kind = BROKER_PC_PUBLICATION;
        rc = broker_pc_decode_pub(s, &m->pub);
    } else if (rt_str_starts_with(s, RT_STR("__p1:"))) {
        m->kind = BROKER_PC_PUBLICATION;
        m->positioned = true;
        rc = parse_p1(rt_str_from(s.p + 2, s.n - 2), m);
    } else if (rt_str_starts_with(s, RT_STR("__d1:"))) {
        m->kind = BROKER_PC_PUBLICATION;
        m->positioned = true;
        rc = parse_d1(rt_str_from(s.p + 2, s.n - 2), m);
    } else if (rt_str_starts_with(s, RT_STR("__j__"))) {
        m->kind = BROKER_PC_JOIN;
        rc = broker_pc_decode_info(rt_str_from(s.p + 5, s.n - 5), &m->info);
    } else if (rt_str_starts_with(s, RT_STR("__l__"))) {
        m->kind = BROKER_PC_LEAVE;
        rc = broker_pc_decode_info(rt_str_from(s.p + 5, s.n - 5), &m->info);
    } else {
        rc = RT_EPROTO;
    }
    if (rc != 0) {
        broker_pc_msg_cleanup(m);
        return RT_EPROTO;
    }
    m->pub.fields.offset = m->offset;
    m->pub.fields.epoch = m->epoch;
    return 0;
}

void broker_pc_msg_cleanup(broker_pc_msg_t *m)
{
    broker_pc_pub_cleanup(&m->pub);
    memset(m, 0, sizeof(*m));
}

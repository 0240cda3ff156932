#include "broker/rds_mp.h"

#include <string.h>

#include <msgpack.h>

#include "node/base/err.h"

/* ---- writing ---- */

static int buf_write(void *data, const char *p, size_t n)
{
    if (n > 0)
        rt_buf_append(data, p, n);
    return 0;
}

/* msgpack-c's packer holds no bytes of its own: each call below writes straight through to
 * out, so values appended by separate calls follow each other exactly. */
static msgpack_packer packer_of(rt_buf_t *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    return pk;
}

void rds_mp_put_map(rt_buf_t *out, size_t npairs)
{
    msgpack_packer pk = packer_of(out);
    msgpack_pack_map(&pk, npairs);
}

void rds_mp_put_uint(rt_buf_t *out, uint64_t v)
{
    msgpack_packer pk = packer_of(out);
    msgpack_pack_uint64(&pk, v);
}

void rds_mp_put_int(rt_buf_t *out, int64_t v)
{
    msgpack_packer pk = packer_of(out);
    msgpack_pack_int64(&pk, v);
}

void rds_mp_put_bool(rt_buf_t *out, bool v)
{
    msgpack_packer pk = packer_of(out);
    if (v)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
}

void rds_mp_put_str(rt_buf_t *out, rt_str_t s)
{
    msgpack_packer pk = packer_of(out);
    msgpack_pack_str(&pk, s.n);
    msgpack_pack_str_body(&pk, s.p, s.n);
}

void rds_mp_put_bin(rt_buf_t *out, rt_str_t s)
{
    msgpack_packer pk = packer_of(out);
    msgpack_pack_bin(&pk, s.n);
    msgpack_pack_bin_body(&pk, s.p, s.n);
}

/* ---- reading ---- */

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

void rds_mp_reader_init(rds_mp_reader_t *r, rt_str_t in)
{
    r->p = (const uint8_t *)in.p;
    r->end = (const uint8_t *)in.p + in.n;
}

size_t rds_mp_left(const rds_mp_reader_t *r)
{
    return (size_t)(r->end - r->p);
}
static int take(rds_mp_reader_t *r, size_t n, const uint8_t **out)
{
    if (rds_mp_left(r) < n)
        return RT_EPROTO;
    *out = r->p;
    r->p += n;
    return 0;
}

static int be(rds_mp_reader_t *r, size_t n, uint64_t *out)
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

static int body(rds_mp_reader_t *r, val_t *v, enum vtype t, uint64_t n)
{
    const uint8_t *q;
    v->t = t;
    v->n = n;
    if (n > rds_mp_left(r) || take(r, (size_t)n, &q) != 0)
        return RT_EPROTO;
    v->s = (const char *)q;
    return 0;
}

static int sized(rds_mp_reader_t *r, val_t *v, enum vtype t, size_t width)
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

static int signed_be(rds_mp_reader_t *r, val_t *v, size_t width)
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

static int rd_next(rds_mp_reader_t *r, val_t *v)
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
static int skip_children(rds_mp_reader_t *r, const val_t *v)
{
    uint64_t pending = v->t == V_MAP ? 2 * v->n : v->t == V_ARRAY ? v->n : 0;
    while (pending > 0) {
        if (pending > rds_mp_left(r))
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

int rds_mp_skip(rds_mp_reader_t *r)
{
    val_t v;
    if (rd_next(r, &v) != 0)
        return RT_EPROTO;
    return skip_children(r, &v);
}

int rds_mp_read_key(rds_mp_reader_t *r, int64_t *key)
{
    val_t k;
    if (rd_next(r, &k) != 0 || skip_children(r, &k) != 0)
        return RT_EPROTO;
    *key = k.t == V_UINT && k.u <= RDS_MP_MAX_KEY ? (int64_t)k.u : -1;
    return 0;
}

static int read_typed(rds_mp_reader_t *r, enum vtype t, rt_str_t *out)
{
    val_t v;
    if (rd_next(r, &v) != 0 || v.t != t)
        return RT_EPROTO;
    *out = rt_str_from(v.s, (size_t)v.n);
    return 0;
}

int rds_mp_read_str(rds_mp_reader_t *r, rt_str_t *out)
{
    return read_typed(r, V_STR, out);
}

int rds_mp_read_bin(rds_mp_reader_t *r, rt_str_t *out)
{
    return read_typed(r, V_BIN, out);
}

int rds_mp_read_bool(rds_mp_reader_t *r, bool *out)
{
    val_t v;
    if (rd_next(r, &v) != 0 || v.t != V_BOOL)
        return RT_EPROTO;
    *out = v.b;
    return 0;
}

int rds_mp_read_int(rds_mp_reader_t *r, int64_t *out)
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

int rds_mp_read_map(rds_mp_reader_t *r, uint64_t *npairs)
{
    val_t v;
    if (rd_next(r, &v) != 0 || v.t != V_MAP)
        return RT_EPROTO;
    /* Every pair takes at least two bytes. */
    if (v.n > rds_mp_left(r) / 2)
        return RT_EPROTO;
    *npairs = v.n;
    return 0;
}

int rds_mp_seen_once(uint32_t *seen, int bit)
{
    if (*seen & (UINT32_C(1) << bit))
        return RT_EPROTO;
    *seen |= UINT32_C(1) << bit;
    return 0;
}

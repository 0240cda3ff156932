/* The publication layer over broker/rds_mp.h (MessagePack in Redis) and broker/rds_info.h
 * (the embedded ClientInfo); the framing parser below is plain byte work. */
#include "broker/pubcodec.h"

#include <string.h>

#include "broker/rds_info.h"
#include "broker/rds_mp.h"
#include "node/base/alloc.h"
#include "node/base/err.h"

/* ---- encoding ---- */

void broker_pc_encode_pub(rt_buf_t *out, const broker_pub_fields_t *f)
{
    size_t n = (f->data.n > 0) + (f->info != NULL) + (f->ntags > 0) + f->delta + (f->time_ms != 0) +
               f->data_binary;
    rds_mp_put_map(out, n);
    if (f->data.n > 0) {
        rds_mp_put_uint(out, BROKER_PC_PUB_DATA);
        rds_mp_put_bin(out, f->data);
    }
    if (f->info != NULL) {
        rds_mp_put_uint(out, BROKER_PC_PUB_INFO);
        rds_info_encode(out, f->info);
    }
    if (f->ntags > 0) {
        rds_mp_put_uint(out, BROKER_PC_PUB_TAGS);
        rds_mp_put_map(out, f->ntags);
        for (size_t i = 0; i < f->ntags; i++) {
            rds_mp_put_str(out, f->tags[i].key);
            rds_mp_put_str(out, f->tags[i].value);
        }
    }
    if (f->delta) {
        rds_mp_put_uint(out, BROKER_PC_PUB_DELTA);
        rds_mp_put_bool(out, true);
    }
    if (f->time_ms != 0) {
        rds_mp_put_uint(out, BROKER_PC_PUB_TIME);
        rds_mp_put_int(out, f->time_ms);
    }
    if (f->data_binary) {
        rds_mp_put_uint(out, BROKER_PC_PUB_DATA_BINARY);
        rds_mp_put_bool(out, true);
    }
}

void broker_pc_encode_join(rt_buf_t *out, const rt_client_info_t *info)
{
    rt_buf_append(out, "__j__", 5);
    rds_info_encode(out, info);
}

void broker_pc_encode_leave(rt_buf_t *out, const rt_client_info_t *info)
{
    rt_buf_append(out, "__l__", 5);
    rds_info_encode(out, info);
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

static int read_tags(rds_mp_reader_t *r, broker_pc_pub_t *out)
{
    uint64_t n;
    if (rds_mp_read_map(r, &n) != 0)
        return RT_EPROTO;
    if (n == 0)
        return 0;
    out->tags = rt_malloc((size_t)n * sizeof(*out->tags));
    out->fields.tags = out->tags;
    for (uint64_t i = 0; i < n; i++) {
        broker_tag_t *t = &out->tags[i];
        if (rds_mp_read_str(r, &t->key) != 0 || rds_mp_read_str(r, &t->value) != 0)
            return RT_EPROTO;
        out->fields.ntags = (size_t)i + 1;
    }
    return 0;
}

static int bit_of(int64_t key)
{
    return key == BROKER_PC_PUB_DATA_BINARY ? 31 : (int)key;
}

static int read_pub(rds_mp_reader_t *r, broker_pc_pub_t *out)
{
    uint64_t n;
    uint32_t seen = 0;
    if (rds_mp_read_map(r, &n) != 0)
        return RT_EPROTO;
    for (uint64_t i = 0; i < n; i++) {
        int64_t key;
        int rc;
        if (rds_mp_read_key(r, &key) != 0)
            return RT_EPROTO;
        switch (key) {
        case BROKER_PC_PUB_DATA:
            rc = rds_mp_read_bin(r, &out->fields.data);
            break;
        case BROKER_PC_PUB_INFO:
            rc = rds_info_read(r, &out->info);
            out->fields.info = &out->info;
            break;
        case BROKER_PC_PUB_TAGS:
            rc = rds_mp_seen_once(&seen, bit_of(key));
            if (rc == 0)
                rc = read_tags(r, out);
            key = 0; /* already marked: a second tags map must not leak the first */
            break;
        case BROKER_PC_PUB_DELTA:
            rc = rds_mp_read_bool(r, &out->fields.delta);
            break;
        case BROKER_PC_PUB_TIME:
            rc = rds_mp_read_int(r, &out->fields.time_ms);
            break;
        case BROKER_PC_PUB_DATA_BINARY:
            rc = rds_mp_read_bool(r, &out->fields.data_binary);
            break;
        default:
            rc = rds_mp_skip(r);
            key = 0;
            break;
        }
        if (rc != 0 || (key > 0 && rds_mp_seen_once(&seen, bit_of(key)) != 0))
            return RT_EPROTO;
    }
    return 0;
}

int broker_pc_decode_pub(rt_str_t in, broker_pc_pub_t *out)
{
    memset(out, 0, sizeof(*out));
    rds_mp_reader_t r;
    rds_mp_reader_init(&r, in);
    if (in.n == 0 || read_pub(&r, out) != 0 || rds_mp_left(&r) != 0) {
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
        rc = rds_info_decode(rt_str_from(s.p + 5, s.n - 5), &m->info);
    } else if (rt_str_starts_with(s, RT_STR("__l__"))) {
        m->kind = BROKER_PC_LEAVE;
        rc = rds_info_decode(rt_str_from(s.p + 5, s.n - 5), &m->info);
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

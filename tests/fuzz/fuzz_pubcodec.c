/* Redis PUB/SUB payloads and stream entries (broker/pubcodec.h) and presence values
 * (broker/rds_info.h): decode arbitrary bytes as a channel message, a bare publication or a
 * ClientInfo (first byte selects), and check that whatever decodes re-encodes to something
 * that decodes to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/pubcodec.h"
#include "broker/rds_info.h"
#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static const char *in_lo, *in_hi;

static void check_inside(rt_str_t s)
{
    check(s.n == 0 || (s.p >= in_lo && s.p + s.n <= in_hi));
}

static void check_info_inside(const rt_client_info_t *i)
{
    check_inside(i->user);
    check_inside(i->client);
    check_inside(i->conn_info);
    check_inside(i->chan_info);
}

static bool info_eq(const rt_client_info_t *a, const rt_client_info_t *b)
{
    return rt_str_eq(a->user, b->user) && rt_str_eq(a->client, b->client) &&
           rt_str_eq(a->conn_info, b->conn_info) && rt_str_eq(a->chan_info, b->chan_info);
}

static void check_pub(const broker_pub_fields_t *f)
{
    check_inside(f->data);
    if (f->info != NULL)
        check_info_inside(f->info);
    for (size_t i = 0; i < f->ntags; i++) {
        check_inside(f->tags[i].key);
        check_inside(f->tags[i].value);
    }
    rt_buf_t b = RT_BUF_INIT;
    broker_pc_encode_pub(&b, f);
    broker_pc_pub_t again;
    check(broker_pc_decode_pub(rt_buf_str(&b), &again) == 0);
    const broker_pub_fields_t *g = &again.fields;
    check(rt_str_eq(g->data, f->data) && g->data_binary == f->data_binary && g->delta == f->delta &&
          g->time_ms == f->time_ms && g->ntags == f->ntags);
    check((g->info == NULL) == (f->info == NULL));
    check(f->info == NULL || info_eq(g->info, f->info));
    for (size_t i = 0; i < f->ntags; i++)
        check(rt_str_eq(g->tags[i].key, f->tags[i].key) &&
              rt_str_eq(g->tags[i].value, f->tags[i].value));
    broker_pc_pub_cleanup(&again);
    rt_buf_cleanup(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int mode = data[0] % 3;
    /* An exact-size copy so a read past the end is caught. */
    char *copy = rt_malloc(size);
    memcpy(copy, data + 1, size - 1);
    rt_str_t in = rt_str_from(copy, size - 1);
    in_lo = copy;
    in_hi = copy + size - 1;

    if (mode == 0) {
        broker_pc_msg_t m;
        if (broker_pc_decode_msg(in, &m) == 0) {
            if (m.kind == BROKER_PC_PUBLICATION) {
                check_inside(m.epoch);
                check_inside(m.prev);
                check(m.pub.fields.offset == m.offset);
                check_pub(&m.pub.fields);
            } else {
                check(m.kind == BROKER_PC_JOIN || m.kind == BROKER_PC_LEAVE);
                check_info_inside(&m.info);
            }
        }
        broker_pc_msg_cleanup(&m);
    } else if (mode == 1) {
        broker_pc_pub_t p;
        if (broker_pc_decode_pub(in, &p) == 0)
            check_pub(&p.fields);
        broker_pc_pub_cleanup(&p);
    } else {
        rt_client_info_t info;
        if (rds_info_decode(in, &info) == 0) {
            check_info_inside(&info);
            rt_buf_t b = RT_BUF_INIT;
            rds_info_encode(&b, &info);
            rt_client_info_t again;
            check(rds_info_decode(rt_buf_str(&b), &again) == 0);
            check(info_eq(&info, &again));
            rt_buf_cleanup(&b);
        }
    }
    rt_free(copy);
    return 0;
}

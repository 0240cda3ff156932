#include "broker/rds_info.h"

#include <string.h>

#include "node/base/err.h"

static void put_field(rt_buf_t *out, int key, rt_str_t v, bool binary)
{
    if (v.n == 0)
        return;
    rds_mp_put_uint(out, (uint64_t)key);
    if (binary)
        rds_mp_put_bin(out, v);
    else
        rds_mp_put_str(out, v);
}

void rds_info_encode(rt_buf_t *out, const rt_client_info_t *info)
{
    size_t n = (info->user.n > 0) + (info->client.n > 0) + (info->conn_info.n > 0) +
               (info->chan_info.n > 0);
    rds_mp_put_map(out, n);
    put_field(out, RDS_INFO_USER, info->user, false);
    put_field(out, RDS_INFO_CLIENT, info->client, false);
    put_field(out, RDS_INFO_CONN_INFO, info->conn_info, true);
    put_field(out, RDS_INFO_CHAN_INFO, info->chan_info, true);
}

static int read_field(rds_mp_reader_t *r, int64_t key, rt_client_info_t *info)
{
    switch (key) {
    case RDS_INFO_USER:
        return rds_mp_read_str(r, &info->user);
    case RDS_INFO_CLIENT:
        return rds_mp_read_str(r, &info->client);
    case RDS_INFO_CONN_INFO:
        return rds_mp_read_bin(r, &info->conn_info);
    case RDS_INFO_CHAN_INFO:
        return rds_mp_read_bin(r, &info->chan_info);
    default:
        return rds_mp_skip(r);
    }
}

static bool known_key(int64_t key)
{
    return key >= RDS_INFO_USER && key <= RDS_INFO_CHAN_INFO;
}

int rds_info_read(rds_mp_reader_t *r, rt_client_info_t *info)
{
    uint64_t n;
    uint32_t seen = 0;
    memset(info, 0, sizeof(*info));
    if (rds_mp_read_map(r, &n) != 0)
        return RT_EPROTO;
    for (uint64_t i = 0; i < n; i++) {
        int64_t key;
        if (rds_mp_read_key(r, &key) != 0 || read_field(r, key, info) != 0)
            return RT_EPROTO;
        if (known_key(key) && rds_mp_seen_once(&seen, (int)key) != 0)
            return RT_EPROTO;
    }
    return 0;
}

int rds_info_decode(rt_str_t in, rt_client_info_t *out)
{
    rds_mp_reader_t r;
    rds_mp_reader_init(&r, in);
    if (in.n == 0 || rds_info_read(&r, out) != 0 || rds_mp_left(&r) != 0) {
        memset(out, 0, sizeof(*out));
        return RT_EPROTO;
    }
    return 0;
}

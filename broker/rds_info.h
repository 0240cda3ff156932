/* ClientInfo as stored in Redis (library rt_rds; SERVER.md §3.4, §3.8): the one definition
 * of its MessagePack form, shared by the Redis broker (join/leave messages, publications'
 * info) and Redis presence (the values of P.presence.data.C).
 *
 * ClientInfo = map {1 user str, 2 client str, 3 conn_info bin, 4 chan_info bin}, empty
 * fields omitted. Decoders accept unknown map keys of any type (skipped) and reject wrong
 * types for known keys, duplicate known keys, trailing bytes and truncation. Decoded slices
 * borrow the input; nothing is allocated. Any thread; no state. */
#ifndef RT_BROKER_RDS_INFO_H
#define RT_BROKER_RDS_INFO_H

#include "broker/rds_mp.h"
#include "node/base/buf.h"
#include "node/base/client_info.h"
#include "node/base/str.h"

enum {
    RDS_INFO_USER = 1,
    RDS_INFO_CLIENT = 2,
    RDS_INFO_CONN_INFO = 3,
    RDS_INFO_CHAN_INFO = 4,
};

/* Appends the encoding of info to out. Also how an enclosing map embeds one: append the
 * key, then call this. */
void rds_info_encode(rt_buf_t *out, const rt_client_info_t *info);

/* Decodes one ClientInfo occupying all of in. *out is zeroed on error. Returns 0 or
 * RT_EPROTO. */
int rds_info_decode(rt_str_t in, rt_client_info_t *out);

/* Reads one ClientInfo map at r, for decoders of maps that embed one (the publication's
 * info field). *out is zeroed first. Returns 0 or RT_EPROTO (r then unusable). */
int rds_info_read(rds_mp_reader_t *r, rt_client_info_t *out);

#endif

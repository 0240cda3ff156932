/* What travels through Redis for a channel (SERVER.md §3.4, §7.2): the one place that
 * defines rotor's MessagePack layout of publications, and the framing of messages on a
 * channel's PUB/SUB (`P.client.C`).
 *
 * Publication = MessagePack map with integer keys (Protobuf field numbers of Centrifugo's
 * protocol.Publication), empty/false fields omitted:
 *
 *     4   data         bin          payload bytes
 *     5   info         map          ClientInfo (client-side publications)
 *     7   tags         map str->str
 *     8   delta        bool         publisher asked for delta delivery
 *     9   time         int          Unix ms when the broker accepted it
 *     100 data_binary  bool         rotor only: data came as b64data and is not JSON
 *
 * ClientInfo, here and in join/leave, is broker/rds_info.h's encoding (shared with Redis
 * presence). Offsets and epochs are never inside the publication: they come from the
 * `__p1`/`__d1` header or the stream entry ID and the stream meta.
 *
 * A map always starts with 0x80-0x8f/0xde/0xdf, so an encoded publication can never start
 * with "__" and the framing stays unambiguous:
 *
 *     <pub>                                        no stream position
 *     __p1:<offset>:<epoch>__<pub>                 with position (the publish script)
 *     __d1:<offset>:<epoch>:<plen>:<prev>:<len>:<pub>   with the previous publication
 *     __j__<info> / __l__<info>                    join / leave
 *
 * Decoders accept unknown map keys of any type (skipped) and reject wrong types for known
 * keys, duplicate known keys, trailing bytes and truncation. They never allocate except the
 * tags array, whose length is bounded by the input length. Any thread; no state. */
#ifndef RT_BROKER_PUBCODEC_H
#define RT_BROKER_PUBCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/pub.h"
#include "node/base/buf.h"
#include "node/base/client_info.h"
#include "node/base/str.h"

enum {
    BROKER_PC_PUB_DATA = 4,
    BROKER_PC_PUB_INFO = 5,
    BROKER_PC_PUB_TAGS = 7,
    BROKER_PC_PUB_DELTA = 8,
    BROKER_PC_PUB_TIME = 9,
    BROKER_PC_PUB_DATA_BINARY = 100,
};

/* Longest epoch a decoder accepts in a header (the scripts write 8 letters). */
#define BROKER_PC_MAX_EPOCH 64

/* Appends the publication encoding of f's data, data_binary, info, tags, delta and time_ms
 * to out (channel, offset and epoch are not encoded). */
void broker_pc_encode_pub(rt_buf_t *out, const broker_pub_fields_t *f);

/* Framing helpers: append "__j__"/"__l__" + info, and "__p1:<offset>:<epoch>__" + pub. */
void broker_pc_encode_join(rt_buf_t *out, const rt_client_info_t *info);
void broker_pc_encode_leave(rt_buf_t *out, const rt_client_info_t *info);
void broker_pc_encode_positioned(rt_buf_t *out, uint64_t offset, rt_str_t epoch,
                                 const broker_pub_fields_t *f);

/* A decoded publication. Every slice borrows the input bytes; fields.info points at info
 * below when present, so the struct must not be copied or moved while in use. tags is
 * owned (rt_malloc) and released by broker_pc_pub_cleanup(). */
typedef struct broker_pc_pub {
    broker_pub_fields_t fields; /* channel, offset and epoch left for the caller */
    rt_client_info_t info;
    broker_tag_t *tags; /* owned array of fields.ntags; NULL when none */
} broker_pc_pub_t;

/* Decodes one publication occupying all of in. *out is initialised in every case and must
 * be released with broker_pc_pub_cleanup(). Returns 0 or RT_EPROTO. */
int broker_pc_decode_pub(rt_str_t in, broker_pc_pub_t *out);
void broker_pc_pub_cleanup(broker_pc_pub_t *p);

typedef enum broker_pc_kind {
    BROKER_PC_PUBLICATION = 1,
    BROKER_PC_JOIN,
    BROKER_PC_LEAVE,
} broker_pc_kind_t;

/* One decoded PUB/SUB message. Slices borrow the payload; same no-copy rule as above. */
typedef struct broker_pc_msg {
    broker_pc_kind_t kind;
    bool positioned;       /* PUBLICATION came with a __p1/__d1 header */
    uint64_t offset;       /* header offset (0 when not positioned) */
    rt_str_t epoch;        /* header epoch (empty when not positioned) */
    rt_str_t prev;         /* __d1 only: the previous publication's encoding (may be empty) */
    broker_pc_pub_t pub;   /* PUBLICATION */
    rt_client_info_t info; /* JOIN/LEAVE */
} broker_pc_msg_t;

/* Parses a payload received on P.client.C. *out is initialised in every case; release it
 * with broker_pc_msg_cleanup(). Returns 0 or RT_EPROTO (unknown prefix, bad header, bad
 * msgpack). For a publication pub.fields.offset/epoch are set from the header; the caller
 * sets pub.fields.channel. */
int broker_pc_decode_msg(rt_str_t payload, broker_pc_msg_t *out);
void broker_pc_msg_cleanup(broker_pc_msg_t *m);

#endif

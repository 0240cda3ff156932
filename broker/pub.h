/* Publications: immutable, cross-thread, reference-counted.
 *
 * A publication is created by a broker once its stream position is known, then shared by
 * the engine and every worker that has subscribers of its channel. All strings live in the
 * same allocation as the struct. The frame slots let node/ cache each wire encoding once
 * per publication (DESIGN.md, fan-out path); brokers never touch them. */
#ifndef RT_BROKER_PUB_H
#define RT_BROKER_PUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/bytes.h"
#include "node/base/client_info.h"
#include "node/base/str.h"

typedef struct broker_tag {
    rt_str_t key;
    rt_str_t value;
} broker_tag_t;

#define BROKER_PUB_FRAME_SLOTS 10

typedef struct broker_pub {
    _Atomic uint32_t refs;
    rt_str_t channel;
    rt_str_t data;    /* payload bytes */
    bool data_binary; /* published with b64data: not JSON, cannot go to JSON clients */
    bool has_info;    /* info below is set (client publications) */
    rt_client_info_t info;
    uint64_t offset; /* stream offset, 0 = channel without history */
    rt_str_t epoch;  /* stream epoch; empty without history */
    int64_t time_ms; /* Unix ms when the broker accepted it */
    size_t ntags;
    broker_tag_t *tags; /* points into the same allocation */
    bool delta;         /* publisher asked for delta delivery (not negotiated yet) */
    /* Wire encodings cached by node/ (owned references, set once with compare-exchange). */
    _Atomic(rt_shared_t *) frames[BROKER_PUB_FRAME_SLOTS];
} broker_pub_t;

/* What a broker needs to create a publication. Everything is borrowed and copied. */
typedef struct broker_pub_fields {
    rt_str_t channel;
    rt_str_t data;
    bool data_binary;
    const rt_client_info_t *info; /* NULL = no info */
    const broker_tag_t *tags;
    size_t ntags;
    bool delta;
    uint64_t offset;
    rt_str_t epoch;
    int64_t time_ms;
} broker_pub_fields_t;

/* Copies the fields into one allocation. One reference. Any thread. */
broker_pub_t *broker_pub_new(const broker_pub_fields_t *f);
broker_pub_t *broker_pub_ref(broker_pub_t *p);
/* Drops a reference; at zero frees the publication and its cached frames. NULL ok. */
void broker_pub_unref(broker_pub_t *p);

/* Returns the cached frame of slot, or NULL (none yet, being encoded, or not encodable).
 * The reference stays with the publication. */
rt_shared_t *broker_pub_frame(broker_pub_t *p, int slot);

/* Encodes p for a slot: a new frame (ownership passes to the publication), or NULL when p
 * cannot take that form. */
typedef rt_shared_t *(*broker_pub_encode_fn)(const broker_pub_t *p, int slot, void *ud);
/* The frame of slot, encoded exactly once per publication whatever the number of threads
 * asking at the same time: the first caller claims the slot and runs encode, the others
 * wait for its result (encoding takes microseconds). Returns the cached frame (borrowed)
 * or NULL when encode returned NULL (remembered: later calls do not encode again). */
rt_shared_t *broker_pub_frame_get(broker_pub_t *p, int slot, broker_pub_encode_fn encode, void *ud);

#endif

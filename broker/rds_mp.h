/* MessagePack for what rotor stores in Redis (library rt_rds): the writer and the bounded
 * reader behind the publication (broker/pubcodec.h) and ClientInfo (broker/rds_info.h)
 * encodings, so the broker and presence read and write one format with one parser.
 *
 * Writing appends to an rt_buf_t through msgpack-c's packer, always in the shortest form.
 * Reading is a small bounds-checked reader instead of msgpack_unpack: the bytes come from
 * Redis (any writer on the prefix), and msgpack-c allocates container arrays from a length
 * header before checking that the bytes exist, so a 5-byte "array of 4 billion" would be a
 * multi-gigabyte allocation. The reader never allocates; every length is checked against
 * the bytes left before anything relies on it. Any thread; no state beyond the reader. */
#ifndef RT_BROKER_RDS_MP_H
#define RT_BROKER_RDS_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/buf.h"
#include "node/base/str.h"

/* ---- writing: each call appends one value (or a map header) to out ---- */

/* A map header; the caller then appends npairs keys and values. */
void rds_mp_put_map(rt_buf_t *out, size_t npairs);
void rds_mp_put_uint(rt_buf_t *out, uint64_t v);
void rds_mp_put_int(rt_buf_t *out, int64_t v);
void rds_mp_put_bool(rt_buf_t *out, bool v);
void rds_mp_put_str(rt_buf_t *out, rt_str_t s);
void rds_mp_put_bin(rt_buf_t *out, rt_str_t s);

/* ---- reading ---- */

/* A cursor over borrowed input. Every read either consumes one whole value and returns 0,
 * or returns RT_EPROTO (wrong type, truncation, impossible length) leaving the cursor
 * somewhere inside the input: after an error the caller gives up on the input. */
typedef struct rds_mp_reader {
    const uint8_t *p;   /* next byte; borrowed from the input */
    const uint8_t *end; /* one past the input */
} rds_mp_reader_t;

/* Largest integer map key rds_mp_read_key() reports; larger or non-integer keys are
 * "unknown". Keys of our formats are Protobuf field numbers, all well below. */
#define RDS_MP_MAX_KEY 1000

void rds_mp_reader_init(rds_mp_reader_t *r, rt_str_t in);
/* Bytes not consumed yet; 0 after a value that occupied the whole input. */
size_t rds_mp_left(const rds_mp_reader_t *r);

/* Reads a map header. *npairs is already checked against the bytes left (every pair takes
 * at least two), so a caller may size an array from it. */
int rds_mp_read_map(rds_mp_reader_t *r, uint64_t *npairs);
/* Reads a map key of any type: *key is the integer key in 0..RDS_MP_MAX_KEY, or -1 for any
 * other key (consumed whole, containers included). */
int rds_mp_read_key(rds_mp_reader_t *r, int64_t *key);
/* Read a value that must be of the named type. Slices borrow the input. */
int rds_mp_read_str(rds_mp_reader_t *r, rt_str_t *out);
int rds_mp_read_bin(rds_mp_reader_t *r, rt_str_t *out);
int rds_mp_read_bool(rds_mp_reader_t *r, bool *out);
/* Any integer form that fits int64_t. */
int rds_mp_read_int(rds_mp_reader_t *r, int64_t *out);
/* Skips one value of any type. Iterative: nesting depth costs no stack. */
int rds_mp_skip(rds_mp_reader_t *r);

/* Duplicate-key guard for decoders: marks bit in *seen, RT_EPROTO if it was already set.
 * bit in 0..31. */
int rds_mp_seen_once(uint32_t *seen, int bit);

#endif

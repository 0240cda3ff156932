/* Which Redis shard owns a channel (library rt_rds; SERVER.md §3.13): the placement rule
 * the Redis broker and Redis presence must agree on, so a channel's stream, PUB/SUB and
 * presence keys all live on one shard. Pure functions; any thread. */
#ifndef RT_BROKER_RDS_SHARD_H
#define RT_BROKER_RDS_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "node/base/str.h"

/* Index of the shard that owns channel among n: jump consistent hash of the channel's
 * FNV-1a 64-bit hash, so going from n to n+1 shards moves a channel only to the new one.
 * 0 when n <= 1. */
size_t rds_shard_of(rt_str_t channel, size_t n);

/* FNV-1a 64-bit of s, the key rds_shard_of() hashes; exposed for the spec's vectors. */
uint64_t rds_shard_fnv1a64(rt_str_t s);

#endif

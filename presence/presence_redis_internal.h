/* Presence-in-Redis reply decoders, apart from their callbacks so the fuzz target
 * (fuzz_redis_reply) can feed them any reply tree a hostile or broken Redis could send. */
#ifndef RT_PRESENCE_REDIS_INTERNAL_H
#define RT_PRESENCE_REDIS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "node/base/client_info.h"

struct redisReply;

/* The get script's reply (flat array: client id, ClientInfo, ...) into *out (rt_free it;
 * slices borrowed from reply). Malformed entries are skipped, so a foreign or corrupt one
 * cannot hide the rest of the channel. Returns 0, or RT_EPROTO for another shape. */
int presence_redis__decode_get(const struct redisReply *reply, rt_client_info_t **out, size_t *n);

/* Distinct users among entries; "" (anonymous) counts as one user. */
uint32_t presence_redis__count_users(const rt_client_info_t *entries, size_t n);

#endif

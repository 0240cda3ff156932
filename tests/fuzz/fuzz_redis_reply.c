/* Reply trees from Redis (SERVER.md §3.5, §3.6, §3.8): hiredis parses the bytes (RESP2),
 * our decoders walk the trees. A hostile or corrupted Redis must not crash a node, whatever
 * shape, type or size it answers with (array headers are bounded as on rotor's connections,
 * RDS_MAX_REPLY_ELEMENTS). Each reply the input yields goes through the publish,
 * history and presence decoders; what they accept is checked for consistency. */
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker_redis_internal.h"
#include "broker/pub.h"
#include "broker/rds_internal.h"
#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "presence/presence_redis_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_all(const redisReply *r)
{
    broker_pos_t pos;
    bool suppressed;
    if (broker_redis__decode_publish(r, &pos, &suppressed) != 0)
        RT_ASSERT(pos.offset == 0 && !suppressed);

    broker_pub_t **pubs;
    size_t n;
    uint64_t malformed = 0;
    if (broker_redis__decode_history(r, rt_str_c("ch"), &pos, &pubs, &n, &malformed) == 0) {
        size_t entries = r->elements > 2 ? r->element[2]->elements : 0;
        RT_ASSERT(n + malformed == entries);
        for (size_t i = 0; i < n; i++)
            broker_pub_unref(pubs[i]);
        rt_free(pubs);
    } else {
        RT_ASSERT(pubs == NULL && n == 0);
    }

    rt_client_info_t *infos;
    if (presence_redis__decode_get(r, &infos, &n) == 0) {
        RT_ASSERT(n <= r->elements / 2);
        RT_ASSERT(presence_redis__count_users(infos, n) <= n);
        rt_free(infos);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd = redisReaderCreate();
    RT_ASSERT(rd != NULL);
    rds__reader_bound(rd); /* as every rotor connection: no giant array headers */
    redisReaderFeed(rd, (const char *)data, size);
    void *reply = NULL;
    /* A few replies per input are enough to reach every decoder path; the bound keeps an
     * input of many tiny replies from being slow. */
    for (int i = 0; i < 16 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL; i++) {
        decode_all(reply);
        freeReplyObject(reply);
        reply = NULL;
    }
    redisReaderFree(rd);
    return 0;
}

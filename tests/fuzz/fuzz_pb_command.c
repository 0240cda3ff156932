/* Protobuf Command reader (node/proto_pb.h): decode the input as a delimited frame to its
 * end, as a bare ConnectRequest and as an EmulationRequest; check every decoded value, then
 * encode replies and pushes made of the decoded values and decode them back with the
 * protobuf-c generated code, which must find the same values. No crash, no leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/utf8.h"
#include "node/proto.h"
#include "node/proto/client.pb-c.h"
#include "node/proto_pb.h"

#define PB(name) Centrifugal__Centrifuge__Protocol__##name

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_str(rt_str_t s)
{
    check(s.n == 0 || s.p != NULL);
    check(rt_utf8_valid(s.p, s.n));
}

static void check_in(rt_str_t s, const uint8_t *p, size_t n)
{
    check(s.n == 0 || ((const uint8_t *)s.p >= p && (const uint8_t *)s.p + s.n <= p + n));
}

static void check_cmd(const node_cmd_t *c)
{
    check(c->type <= NODE_CMD_UNKNOWN);
    check(c->type != NODE_CMD_PONG || c->id == 0);
    check(c->type != NODE_CMD_UNKNOWN || c->id != 0);
    rt_str_t strs[] = {c->channel, c->token, c->name,  c->version,
                       c->method,  c->epoch, c->delta, c->since_epoch};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        check_str(strs[i]);
        /* protobuf-c strings end at a NUL */
        check(strs[i].n == 0 || memchr(strs[i].p, 0, strs[i].n) == NULL);
    }
    check(c->data.n == 0 || c->data.p != NULL);
    check(c->has_limit == (c->limit != 0));
    check(c->nsubs == 0 || c->subs != NULL);
    for (size_t i = 0; i < c->nsubs; i++) {
        check_str(c->subs[i].channel);
        check_str(c->subs[i].epoch);
        check_str(c->subs[i].delta);
        for (size_t k = 0; k < i; k++)
            check(!rt_str_eq(c->subs[i].channel, c->subs[k].channel));
    }
}

static bool same_bytes(ProtobufCBinaryData d, rt_str_t s)
{
    return d.len == s.n && (s.n == 0 || memcmp(d.data, s.p, s.n) == 0);
}

static bool same_str(const char *got, rt_str_t want)
{
    return strlen(got) == want.n && (want.n == 0 || memcmp(got, want.p, want.n) == 0);
}

static PB(Reply) * unpack(const rt_buf_t *b)
{
    PB(Reply) *r = centrifugal__centrifuge__protocol__reply__unpack(NULL, b->len, b->p);
    check(r != NULL);
    check(r->base.n_unknown_fields == 0);
    return r;
}

static void check_info(const PB(ClientInfo) * ci, const rt_client_info_t *want)
{
    check(ci != NULL);
    check(same_str(ci->user, want->user));
    check(same_str(ci->client, want->client));
    check(same_bytes(ci->conn_info, want->conn_info));
    check(same_bytes(ci->chan_info, want->chan_info));
}

static void round_trip(const node_cmd_t *c)
{
    rt_buf_t out = RT_BUF_INIT;
    PB(Reply) * r;

    /* A publication made of decoded values. */
    broker_tag_t tag = {c->channel, c->epoch};
    broker_pub_t pub;
    memset(&pub, 0, sizeof(pub));
    pub.channel = c->channel;
    pub.data = c->data;
    pub.offset = c->offset;
    pub.has_info = true;
    pub.info = (rt_client_info_t){c->token, c->name, c->data, c->data};
    pub.tags = &tag;
    pub.ntags = 1;
    check(node_pb_push_pub(&out, &pub) == 0);
    r = unpack(&out);
    check(r->id == 0 && r->push != NULL && r->push->pub != NULL);
    check(same_str(r->push->channel, c->channel));
    check(same_bytes(r->push->pub->data, c->data));
    check(r->push->pub->offset == c->offset);
    check_info(r->push->pub->info, &pub.info);
    check(r->push->pub->n_tags == 1);
    check(same_str(r->push->pub->tags[0]->key, c->channel));
    check(same_str(r->push->pub->tags[0]->value, c->epoch));
    centrifugal__centrifuge__protocol__reply__free_unpacked(r, NULL);
    rt_str_t bare = node_pb_push_bare(rt_buf_str(&out));
    PB(Push) *push =
        centrifugal__centrifuge__protocol__push__unpack(NULL, bare.n, (const uint8_t *)bare.p);
    check(push != NULL && push->pub != NULL);
    centrifugal__centrifuge__protocol__push__free_unpacked(push, NULL);
    rt_buf_reset(&out);

    /* Results carrying decoded strings and data. */
    broker_pub_t *pubs[] = {&pub, &pub};
    node_sub_result_t sr = {.expires = c->recover,
                            .ttl = (uint32_t)c->offset,
                            .recoverable = c->recoverable,
                            .epoch = c->epoch,
                            .pubs = pubs,
                            .npubs = c->positioned ? 2 : 0,
                            .offset = c->offset,
                            .data = c->data,
                            .was_recovering = c->recover};
    check(node_pb_reply_subscribe(&out, c->id, &sr) == 0);
    r = unpack(&out);
    check(r->id == c->id && r->subscribe != NULL);
    check(same_str(r->subscribe->epoch, c->epoch));
    check(same_bytes(r->subscribe->data, c->data));
    check(r->subscribe->n_publications == sr.npubs);
    check(r->subscribe->offset == c->offset);
    centrifugal__centrifuge__protocol__reply__free_unpacked(r, NULL);
    rt_buf_reset(&out);
    check(node_pb_push_subscribe(&out, c->channel, &sr) == 0);
    r = unpack(&out);
    check(r->push != NULL && r->push->subscribe != NULL);
    check(same_str(r->push->channel, c->channel));
    centrifugal__centrifuge__protocol__reply__free_unpacked(r, NULL);
    rt_buf_reset(&out);

    size_t n = c->nsubs;
    rt_str_t *chans = rt_calloc(n + 1, sizeof(*chans));
    node_sub_result_t *subs = rt_calloc(n + 1, sizeof(*subs));
    for (size_t i = 0; i < n; i++) {
        chans[i] = c->subs[i].channel;
        subs[i] = (node_sub_result_t){.epoch = c->subs[i].epoch, .offset = c->subs[i].offset};
    }
    node_connect_result_t cr = {.client = c->token,
                                .version = c->version,
                                .data = c->data,
                                .sub_channels = chans,
                                .subs = subs,
                                .nsubs = n,
                                .session = c->name,
                                .time_ms = c->flag};
    check(node_pb_reply_connect(&out, c->id, &cr) == 0);
    r = unpack(&out);
    check(r->connect != NULL && r->connect->n_subs == n);
    for (size_t i = 0; i < n; i++) {
        check(same_str(r->connect->subs[i]->key, chans[i]));
        check(r->connect->subs[i]->value != NULL);
        check(r->connect->subs[i]->value->offset == subs[i].offset);
    }
    check(r->connect->time == c->flag);
    centrifugal__centrifuge__protocol__reply__free_unpacked(r, NULL);
    rt_buf_reset(&out);
    check(node_pb_push_connect(&out, &cr) == 0);
    r = unpack(&out);
    check(r->push != NULL && r->push->connect != NULL && r->push->connect->n_subs == n);
    centrifugal__centrifuge__protocol__reply__free_unpacked(r, NULL);
    rt_buf_reset(&out);
    rt_free(chans);
    rt_free(subs);

    /* The rest, concatenated: each must be one decodable Reply. */
    char *msg = rt_str_dup(c->method);
    size_t marks[12];
    size_t k = 0;
    marks[k++] = out.len;
    check(node_pb_reply_history(&out, c->id, pubs, 2, c->since_epoch, c->offset) == 0);
    marks[k++] = out.len;
    check(node_pb_reply_presence(&out, c->id, &pub.info, 1) == 0);
    marks[k++] = out.len;
    check(node_pb_reply_rpc(&out, c->id, c->data) == 0);
    marks[k++] = out.len;
    check(node_pb_push_message(&out, c->data) == 0);
    marks[k++] = out.len;
    check(node_pb_push_join(&out, c->channel, &pub.info, c->reverse) == 0);
    marks[k++] = out.len;
    node_pb_reply_error(&out, c->id, (int)(c->offset % 2000), msg, c->recover);
    marks[k++] = out.len;
    node_pb_push_unsubscribe(&out, c->channel, 2000, msg);
    marks[k++] = out.len;
    node_pb_push_disconnect(&out, 3000 + (int)(c->offset % 1000), msg);
    marks[k++] = out.len;
    node_pb_reply_refresh(&out, c->id, c->recover ? "refresh" : "sub_refresh", c->recoverable,
                          (uint32_t)c->offset);
    marks[k++] = out.len;
    rt_free(msg);
    for (size_t i = 0; i + 1 < k; i++) {
        rt_buf_t one = RT_BUF_INIT;
        rt_buf_append(&one, out.p + marks[i], marks[i + 1] - marks[i]);
        r = unpack(&one);
        centrifugal__centrifuge__protocol__reply__free_unpacked(r, NULL);
        rt_buf_cleanup(&one);
    }
    rt_buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    node_pb_reader_t r;
    node_cmd_t cmd;
    int rc;
    size_t ncmds = 0;

    node_pb_reader_init(&r, data, size);
    while ((rc = node_pb_reader_next(&r, &cmd)) == 1) {
        ncmds++;
        check_cmd(&cmd);
        round_trip(&cmd);
    }
    check(rc == 0 || rc == RT_EPROTO);
    check(rc != 0 || ncmds > 0);
    check(node_pb_reader_next(&r, &cmd) == rc);

    /* The same bytes as a bare ConnectRequest (unidirectional gRPC), on the used reader. */
    if (node_pb_decode_connect_request(&r, data, size, &cmd) == 0) {
        check(cmd.type == NODE_CMD_CONNECT && cmd.id == 0);
        check_cmd(&cmd);
        round_trip(&cmd);
    }
    node_pb_reader_cleanup(&r);

    rt_str_t node, session, body;
    if (node_pb_decode_emulation(data, size, &node, &session, &body) == 0) {
        check_str(node);
        check_str(session);
        check_in(node, data, size);
        check_in(session, data, size);
        check_in(body, data, size);
    }
    return 0;
}

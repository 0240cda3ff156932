/* JSON Command reader: decode a frame to its end, check every decoded slice, and push the
 * decoded values back out through the encoders, which must produce valid JSON that carries
 * them unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "node/base/utf8.h"
#include "node/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* out must hold exactly one valid JSON value; returns its tree in doc. */
static void check_json(rt_json_doc_t *doc, const rt_buf_t *out)
{
    check(rt_json_parse(doc, (const char *)out->p, out->len, 0) == 0);
    check(memchr(out->p, '\n', out->len) == NULL);
}

static void check_str(rt_str_t s)
{
    check(s.n == 0 || s.p != NULL);
    check(rt_utf8_valid(s.p, s.n));
}

/* Raw value as written: the input bytes without CR/LF. */
static bool same_raw(rt_str_t written, rt_str_t in)
{
    size_t j = 0;
    for (size_t i = 0; i < in.n; i++) {
        if (in.p[i] == '\r' || in.p[i] == '\n')
            continue;
        if (j >= written.n || written.p[j] != in.p[i])
            return false;
        j++;
    }
    return j == written.n;
}

static void check_cmd(const node_cmd_t *c)
{
    check(c->type <= NODE_CMD_UNKNOWN);
    check(c->type != NODE_CMD_PONG || c->id == 0);
    check(c->type != NODE_CMD_UNKNOWN || c->id != 0);
    rt_str_t strs[] = {c->channel, c->token, c->name,  c->version,
                       c->method,  c->epoch, c->delta, c->since_epoch};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        check_str(strs[i]);
    if (c->data.n > 0)
        check(rt_json_valid(c->data.p, c->data.n));
    for (size_t i = 0; i < c->nsubs; i++) {
        check_str(c->subs[i].channel);
        check_str(c->subs[i].epoch);
        check_str(c->subs[i].delta);
        for (size_t k = 0; k < i; k++)
            check(!rt_str_eq(c->subs[i].channel, c->subs[k].channel));
    }
}

static void round_trip(const node_cmd_t *c)
{
    rt_buf_t out = RT_BUF_INIT;
    rt_json_doc_t doc;

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
    check(node_json_push_pub(&out, &pub) == 0);
    check_json(&doc, &out);
    const rt_json_t *push = rt_json_get(doc.root, "push");
    check(push != NULL);
    rt_buf_t ch = RT_BUF_INIT;
    if (c->channel.n > 0) {
        check(rt_json_get_string(rt_json_get(push, "channel"), &ch) == 0);
        check(rt_str_eq(rt_buf_str(&ch), c->channel));
    }
    const rt_json_t *p = rt_json_get(push, "pub");
    if (c->data.n > 0)
        check(same_raw(rt_json_get(p, "data")->raw, c->data));
    rt_json_doc_cleanup(&doc);
    rt_buf_cleanup(&ch);
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
    check(node_json_reply_subscribe(&out, c->id, &sr) == 0);
    check_json(&doc, &out);
    rt_json_doc_cleanup(&doc);
    rt_buf_reset(&out);
    check(node_json_push_subscribe(&out, c->channel, &sr) == 0);
    check_json(&doc, &out);
    rt_json_doc_cleanup(&doc);
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
    check(node_json_reply_connect(&out, c->id, &cr) == 0);
    check_json(&doc, &out);
    rt_json_doc_cleanup(&doc);
    rt_buf_reset(&out);
    check(node_json_push_connect(&out, &cr) == 0);
    check_json(&doc, &out);
    rt_json_doc_cleanup(&doc);
    rt_buf_reset(&out);
    rt_free(chans);
    rt_free(subs);

    check(node_json_reply_history(&out, c->id, pubs, 2, c->since_epoch, c->offset) == 0);
    check(node_json_reply_presence(&out, c->id, &pub.info, 1) == 0);
    check(node_json_reply_rpc(&out, c->id, c->data) == 0);
    check(node_json_push_message(&out, c->data) == 0);
    check(node_json_push_join(&out, c->channel, &pub.info, c->reverse) == 0);
    char *msg = rt_str_dup(c->method);
    node_json_reply_error(&out, c->id, (int)(c->offset % 2000), msg, c->recover);
    node_json_push_unsubscribe(&out, c->channel, 2000, msg);
    node_json_push_disconnect(&out, 3000 + (int)(c->offset % 1000), msg);
    rt_free(msg);
    /* Concatenated messages: each is one value, so the whole is not; just no newline. */
    check(memchr(out.p, '\n', out.len) == NULL);
    rt_buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    node_json_reader_t r;
    node_cmd_t cmd;
    int rc;
    size_t ncmds = 0;

    node_json_reader_init(&r, data, size);
    while ((rc = node_json_reader_next(&r, &cmd)) == 1) {
        ncmds++;
        check_cmd(&cmd);
        round_trip(&cmd);
    }
    check(rc == 0 || rc == RT_EPROTO);
    check(rc != 0 || ncmds > 0);
    check(node_json_reader_next(&r, &cmd) == rc);
    node_json_reader_cleanup(&r);
    return 0;
}

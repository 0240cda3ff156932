/* The hub shard of a worker: channel -> local subscriptions, and the fan-out path.
 *
 * Fan-out (DESIGN.md): a publication's JSON WebSocket frame is encoded once per
 * publication and cached in it (shared by every worker); each worker wraps it in one
 * plain-counted view, and every subscriber's write queue takes a reference to that view.
 * No allocation, copy or encoding per subscriber. */
#include <stdatomic.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/log.h"
#include "node/node_internal.h"

static _Atomic uint64_t encode_count;

uint64_t node_hub_encode_count(void)
{
    return atomic_load(&encode_count);
}

static void post_interest(node_worker_t *w, const node_hub_chan_t *ch, node_op_kind_t kind)
{
    node_op_t *op = node_op_new(kind, w, NULL);
    op->channel = node_op_copy(op, (rt_str_t){ch->name, ch->len});
    node_worker_post(w, op);
}

bool node_hub_attach(node_worker_t *w, node_sub_t *sub)
{
    rt_str_t name = {sub->channel, sub->channel_len};
    node_hub_chan_t *ch = node_map_get(&w->hub, name);
    if (ch == NULL) {
        ch = RT_NEW(node_hub_chan_t);
        ch->name = rt_str_dup(name);
        ch->len = name.n;
        node_map_put(&w->hub, (rt_str_t){ch->name, ch->len}, ch);
        /* The engine learns about the interest before any op this subscription posts
         * next (same mailbox, FIFO), so history reads see every later publication live. */
        post_interest(w, ch, NODE_OP_HUB_SUB);
    }
    sub->chan = ch;
    sub->chan_prev = NULL;
    sub->chan_next = ch->subs;
    if (ch->subs)
        ch->subs->chan_prev = sub;
    ch->subs = sub;
    ch->nsubs++;
    w->num_subs++;
    return !ch->confirmed;
}

void node_hub_detach(node_worker_t *w, node_sub_t *sub)
{
    node_hub_chan_t *ch = sub->chan;
    if (ch == NULL)
        return;
    if (sub->chan_prev)
        sub->chan_prev->chan_next = sub->chan_next;
    else
        ch->subs = sub->chan_next;
    if (sub->chan_next)
        sub->chan_next->chan_prev = sub->chan_prev;
    sub->chan = NULL;
    sub->chan_prev = sub->chan_next = NULL;
    ch->nsubs--;
    w->num_subs--;
    if (ch->nsubs == 0) {
        node_map_del(&w->hub, (rt_str_t){ch->name, ch->len});
        post_interest(w, ch, NODE_OP_HUB_UNSUB);
        rt_free(ch->name);
        rt_free(ch);
    }
}

rt_shared_t *node_hub_pub_frame_json(broker_pub_t *pub)
{
    rt_shared_t *frame = broker_pub_frame(pub, NODE_FRAME_JSON_WS);
    if (frame)
        return frame;
    rt_buf_t b = RT_BUF_INIT;
    int rc = node_json_push_pub(&b, pub);
    if (rc != 0) {
        rt_buf_cleanup(&b);
        return NULL;
    }
    frame = tr_ws_frame_new_shared(TR_WS_OP_TEXT, b.p, b.len);
    rt_buf_cleanup(&b);
    atomic_fetch_add_explicit(&encode_count, 1, memory_order_relaxed);
    return broker_pub_set_frame(pub, NODE_FRAME_JSON_WS, frame);
}

void node_hub_fanout(node_worker_t *w, broker_pub_t *pub)
{
    node_hub_chan_t *ch = node_map_get(&w->hub, pub->channel);
    if (ch == NULL)
        return;
    rt_shared_t *shared = node_hub_pub_frame_json(pub);
    rt_bytes_t *view = shared ? rt_bytes_view(shared) : NULL;
    /* A delivery may disconnect its client; disconnects are deferred (the client is
     * cleaned up from its transport's close callback), so the list stays valid. The next
     * pointer is read first anyway because a subscription of another client is never
     * removed by this one's delivery. */
    for (node_sub_t *s = ch->subs, *next; s != NULL; s = next) {
        next = s->chan_next;
        node_client_on_pub(s, pub, view);
    }
    rt_bytes_unref(view);
}

void node_hub_fanout_join(node_worker_t *w, rt_str_t channel, const broker_client_info_t *info,
                          bool leave)
{
    node_hub_chan_t *ch = node_map_get(&w->hub, channel);
    if (ch == NULL)
        return;
    rt_bytes_t *frame = NULL;
    for (node_sub_t *s = ch->subs, *next; s != NULL; s = next) {
        next = s->chan_next;
        if (!s->push_join_leave || s->state != NODE_SUB_SUBSCRIBED)
            continue;
        if (frame == NULL) {
            rt_buf_t b = RT_BUF_INIT;
            if (node_json_push_join(&b, channel, info, leave) != 0) {
                rt_buf_cleanup(&b);
                return; /* binary info cannot reach JSON clients; skip the event */
            }
            frame = tr_ws_frame_new(TR_WS_OP_TEXT, b.p, b.len);
            rt_buf_cleanup(&b);
        }
        node_client_send_frame(s->client, frame);
    }
    rt_bytes_unref(frame);
}

/* The hub shard of a worker: channel -> local subscriptions, and the fan-out path.
 *
 * Fan-out (DESIGN.md): a publication's frame is encoded once per publication and wire
 * form (JSON WebSocket, Protobuf WebSocket, SSE, ...) and cached in it (shared by every
 * worker); each worker wraps it in one plain-counted view per wire form in use, and every
 * subscriber's write queue takes a reference to that view. No allocation, copy or
 * encoding per subscriber. */
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

/* broker_pub_encode_fn: pub as a push message in the wire's codec, framed for the wire. */
static rt_shared_t *encode_pub(const broker_pub_t *pub, int slot, void *ud)
{
    node_wire_t wire = (node_wire_t)slot;
    rt_buf_t b = RT_BUF_INIT;
    rt_shared_t *frame = NULL;
    if (node_codec_of_wire(wire)->push_pub(&b, pub) == 0)
        frame = node_wire_frame_shared(wire, rt_buf_str(&b));
    rt_buf_cleanup(&b);
    atomic_fetch_add_explicit(&encode_count, 1, memory_order_relaxed);
    return frame;
}

rt_shared_t *node_hub_pub_frame(broker_pub_t *pub, node_wire_t wire)
{
    return broker_pub_frame_get(pub, (int)wire, encode_pub, NULL);
}

/* The frames of one fan-out, made on first use per wire form. */
typedef struct fanout_frames {
    rt_bytes_t *view[NODE_WIRE_COUNT];
    bool done[NODE_WIRE_COUNT];
} fanout_frames_t;

static rt_bytes_t *pub_view(fanout_frames_t *f, broker_pub_t *pub, node_wire_t wire)
{
    if (!f->done[wire]) {
        f->done[wire] = true;
        rt_shared_t *shared = node_hub_pub_frame(pub, wire);
        f->view[wire] = shared ? rt_bytes_view(shared) : NULL;
    }
    return f->view[wire];
}

static void fanout_frames_release(fanout_frames_t *f)
{
    for (int i = 0; i < NODE_WIRE_COUNT; i++)
        rt_bytes_unref(f->view[i]);
}

void node_hub_fanout(node_worker_t *w, broker_pub_t *pub)
{
    node_hub_chan_t *ch = node_map_get(&w->hub, pub->channel);
    if (ch == NULL)
        return;
    fanout_frames_t frames = {0};
    /* A delivery may disconnect its client; disconnects are deferred (the client is
     * cleaned up from its transport's close callback), so the list stays valid. The next
     * pointer is read first anyway because a subscription of another client is never
     * removed by this one's delivery. */
    for (node_sub_t *s = ch->subs, *next; s != NULL; s = next) {
        next = s->chan_next;
        node_client_on_pub(s, pub, pub_view(&frames, pub, s->client->wire));
    }
    fanout_frames_release(&frames);
}

void node_hub_fanout_join(node_worker_t *w, rt_str_t channel, const rt_client_info_t *info,
                          bool leave)
{
    node_hub_chan_t *ch = node_map_get(&w->hub, channel);
    if (ch == NULL)
        return;
    fanout_frames_t frames = {0};
    for (node_sub_t *s = ch->subs, *next; s != NULL; s = next) {
        next = s->chan_next;
        if (!s->push_join_leave || s->state != NODE_SUB_SUBSCRIBED)
            continue;
        node_wire_t wire = s->client->wire;
        if (!frames.done[wire]) {
            frames.done[wire] = true;
            rt_buf_t b = RT_BUF_INIT;
            if (s->client->codec->push_join(&b, channel, info, leave) == 0)
                frames.view[wire] = node_wire_frame(wire, rt_buf_str(&b));
            rt_buf_cleanup(&b);
        }
        /* Binary info cannot reach JSON clients: they miss the event. */
        if (frames.view[wire])
            node_client_send_frame(s->client, frames.view[wire]);
    }
    fanout_frames_release(&frames);
}

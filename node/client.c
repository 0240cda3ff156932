/* Client sessions (PROTOCOL.md §3-§9) on any transport and either encoding: command
 * handling, the subscribe flow with positioning and recovery, pings, expiry, and
 * disconnects. The session encodes through c->codec and frames through c->wire; link.c
 * owns the transport object. Worker thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/base/rand.h"
#include "node/base/time.h"
#include "node/base/utf8.h"
#include "node/codes.h"
#include "node/node_internal.h"

#define CLOG_DEBUG(c, fmt, ...)                                                                    \
    RT_LOG_DEBUG(fmt " worker=%d client=%s user=%s remote=%s", __VA_ARGS__, (c)->w->index,         \
                 (c)->uuid, (c)->user, node_link_remote(c))

static void arm_timer(node_client_t *c);
static void sub_begin(node_sub_t *s);
static void sub_remove(node_sub_t *s, bool unsubscribe_push, int code);
static void process_frame(node_client_t *c, const uint8_t *data, size_t len);
static char *token_channel_set(const node_jwt_claims_t *claims);

static const node_config_t *cfg_of(const node_client_t *c)
{
    return c->w->node->cfg;
}

static rt_str_t user_of(const node_client_t *c)
{
    return rt_str_c(c->user);
}

static rt_client_info_t info_of(const node_client_t *c, const node_sub_t *s)
{
    rt_client_info_t info = {
        .user = user_of(c),
        .client = rt_str_c(c->uuid),
        .conn_info = {c->conn_info, c->conn_info_len},
        .chan_info = s ? s->chan_info : RT_STR_NULL,
    };
    return info;
}

static void copy_epoch(char *dst, rt_str_t epoch)
{
    size_t n = epoch.n < NODE_EPOCH_MAX - 1 ? epoch.n : NODE_EPOCH_MAX - 1;
    if (n)
        memcpy(dst, epoch.p, n);
    dst[n] = '\0';
}

/* ---------------------------------------------------------------------------------------
 * Output.
 */

void node_client_send_frame(node_client_t *c, rt_bytes_t *frame)
{
    if (c->state == NODE_CLIENT_CLOSING || c->tr == NULL)
        return;
    int rc = node_link_send(c, frame);
    if (rc == RT_ELIMIT) {
        node_client_disconnect(c, NODE_DISCONNECT_SLOW, NULL);
        return;
    }
    if (rc == 0)
        atomic_fetch_add_explicit(&c->w->node->metrics.messages_sent[c->wire], 1,
                                  memory_order_relaxed);
}

void node_client_send_scratch(node_client_t *c)
{
    rt_buf_t *b = &c->w->scratch;
    rt_bytes_t *frame = node_wire_frame(c->wire, rt_buf_str(b));
    node_client_send_frame(c, frame);
    rt_bytes_unref(frame);
}

static void send_error(node_client_t *c, uint32_t id, int code)
{
    rt_buf_t *b = &c->w->scratch;
    rt_buf_reset(b);
    c->codec->reply_error(b, id, code, NULL, node_error_temporary(code));
    node_client_send_scratch(c);
    atomic_fetch_add_explicit(&c->w->node->metrics.reply_errors, 1, memory_order_relaxed);
}

static void send_empty(node_client_t *c, uint32_t id, const char *field)
{
    rt_buf_t *b = &c->w->scratch;
    rt_buf_reset(b);
    c->codec->reply_empty(b, id, field);
    node_client_send_scratch(c);
}

/* Sends scratch unless encoding failed, in which case the payload was binary. */
static void send_encoded(node_client_t *c, int rc)
{
    if (rc != 0) {
        node_client_disconnect(c, NODE_DISCONNECT_INAPPROPRIATE_PROTOCOL, NULL);
        return;
    }
    node_client_send_scratch(c);
}

/* Commands whose replies are still in flight (engine round trips). A malformed line after
 * them closes the connection only once they are answered: the commands before a bad line
 * are processed and answered, as the reference (which handles them synchronously) does. */
static void inflight_begin(node_client_t *c)
{
    c->inflight++;
}

static void inflight_end(node_client_t *c)
{
    if (c->inflight > 0 && --c->inflight == 0 && c->pending_disconnect &&
        c->state != NODE_CLIENT_CLOSING)
        node_client_disconnect(c, c->pending_disconnect, NULL);
}

/* ---------------------------------------------------------------------------------------
 * Lifecycle.
 */

node_client_t *node_client_new(node_worker_t *w, node_wire_t wire)
{
    node_client_t *c = RT_NEW(node_client_t);
    c->w = w;
    c->wire = wire;
    c->codec = node_codec_of_wire(wire);
    c->app_ping = true;
    c->id = node_worker_next_id(w);
    rt_uuid4(c->uuid);
    c->user = rt_strdup("");
    c->state = NODE_CLIENT_CONNECTING;
    c->next = w->client_list;
    if (w->client_list)
        w->client_list->prev = c;
    w->client_list = c;
    w->nclients++;
    atomic_fetch_add(&w->node->nclients, 1);
    node_map_put_id(&w->clients, c->id, c);
    ev_init(&c->timer, NULL);
    c->stale_at = ev_now(w->loop) + (double)cfg_of(c)->stale_close_delay_ms / 1000.0;
    arm_timer(c);
    return c;
}

static void client_free(node_client_t *c)
{
    node_worker_t *w = c->w;
    while (c->subs)
        sub_remove(c->subs, false, 0);
    if (c->counted_user) {
        node_op_t *op = node_op_new(NODE_OP_USER_REMOVE, w, NULL);
        op->channel = node_op_copy(op, user_of(c)); /* the user travels in channel */
        node_worker_post(w, op);
    }
    ev_timer_stop(w->loop, &c->timer);
    if (c->session[0])
        node_map_del(&w->sessions, rt_str_c(c->session));
    if (c->prev)
        c->prev->next = c->next;
    else
        w->client_list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nclients--;
    atomic_fetch_sub(&w->node->nclients, 1);
    node_map_del_id(&w->clients, c->id);
    rt_free(c->user);
    rt_free(c->conn_info);
    rt_free(c->token_channels);
    rt_buf_cleanup(&c->deferred);
    rt_free(c);
    node_worker_client_gone(w);
}

void node_client_disconnect(node_client_t *c, int code, const char *reason)
{
    if (c->state == NODE_CLIENT_CLOSING)
        return;
    c->state = NODE_CLIENT_CLOSING;
    ev_timer_stop(c->w->loop, &c->timer);
    if (c->tr == NULL) {
        client_free(c);
        return;
    }
    if (code > 0)
        node_metrics_count_disconnect(c->w->node, code);
    CLOG_DEBUG(c, "disconnect code=%d", code);
    const char *why = reason ? reason : node_disconnect_reason(code);
    node_link_close(c, code, why, code == NODE_DISCONNECT_SLOW);
}

void node_client_on_link_closed(node_client_t *c)
{
    c->tr = NULL;
    c->state = NODE_CLIENT_CLOSING;
    client_free(c);
}

void node_client_on_frame(node_client_t *c, const uint8_t *data, size_t len)
{
    if (c->state == NODE_CLIENT_CLOSING || c->pending_disconnect)
        return;
    if (node_wire_unidirectional(c->wire)) {
        /* A unidirectional client says one thing, its connect request (uni WebSocket: the
         * first message unless cf_connect had it); the rest is read and discarded (§10.5). */
        if (c->state == NODE_CLIENT_CONNECTING)
            node_client_uni_connect_json(c, data, len);
        return;
    }
    atomic_fetch_add_explicit(&c->w->node->metrics.messages_received[c->wire], 1,
                              memory_order_relaxed);
    process_frame(c, data, len);
}

/* Native pong (cf_ws_frame_ping_pong mode, uni WebSocket): answers the outstanding native
 * ping. */
void node_client_on_native_pong(node_client_t *c)
{
    if (c->native_ping && c->pong_deadline > 0) {
        c->pong_deadline = 0;
        arm_timer(c);
    }
}

/* ---------------------------------------------------------------------------------------
 * Timers: one per client for the nearest of stale, ping, pong and expiry deadlines.
 */

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    node_client_t *c = t->data;
    const node_config_t *cfg = cfg_of(c);
    double now = ev_now(loop);
    if (c->stale_at > 0 && now >= c->stale_at) {
        node_client_disconnect(c, NODE_DISCONNECT_STALE, NULL);
        return;
    }
    if (c->pong_deadline > 0 && now >= c->pong_deadline) {
        node_client_disconnect(c, NODE_DISCONNECT_NO_PONG, NULL);
        return;
    }
    if (c->expire_close_at > 0 && now >= c->expire_close_at) {
        node_client_disconnect(c, NODE_DISCONNECT_EXPIRED, NULL);
        return;
    }
    if (c->ping_at > 0 && now >= c->ping_at) {
        if (c->native_ping)
            node_link_native_ping(c);
        if (c->app_ping) {
            rt_buf_t *b = &c->w->scratch;
            rt_buf_reset(b);
            c->codec->ping(b);
            node_client_send_scratch(c);
        }
        if (c->state == NODE_CLIENT_CLOSING)
            return;
        /* Pongs: protocol pongs on bidirectional transports, native ones on WebSocket
         * (unidirectional WebSocket gets interval + pong timeout to answer). */
        bool expect_pong = !node_wire_unidirectional(c->wire) || c->native_ping;
        double wait = (double)cfg->pong_timeout_ms / 1000.0;
        if (node_wire_unidirectional(c->wire))
            wait += (double)cfg->ping_interval_ms / 1000.0;
        if (expect_pong && cfg->pong_timeout_ms > 0 && c->pong_deadline == 0)
            c->pong_deadline = now + wait;
        c->ping_at = now + (double)cfg->ping_interval_ms / 1000.0;
    }
    arm_timer(c);
}

static void arm_timer(node_client_t *c)
{
    double next = 0;
    double cands[4] = {c->stale_at, c->pong_deadline, c->expire_close_at, c->ping_at};
    for (int i = 0; i < 4; i++) {
        if (cands[i] > 0 && (next == 0 || cands[i] < next))
            next = cands[i];
    }
    struct ev_loop *loop = c->w->loop;
    ev_timer_stop(loop, &c->timer);
    if (next == 0)
        return;
    double after = next - ev_now(loop);
    ev_timer_init(&c->timer, on_timer, after > 0 ? after : 0, 0);
    c->timer.data = c;
    ev_timer_start(loop, &c->timer);
}

static void set_expiry(node_client_t *c, int64_t expire_at)
{
    c->expire_at = expire_at;
    if (expire_at <= 0) {
        c->expire_close_at = 0;
        return;
    }
    /* Wall-clock expiry mapped onto the loop clock. */
    double delta =
        (double)(expire_at - rt_time_s()) + (double)cfg_of(c)->expired_close_delay_ms / 1000.0;
    c->expire_close_at = ev_now(c->w->loop) + (delta > 0 ? delta : 0);
}

/* ---------------------------------------------------------------------------------------
 * Permissions (SERVER.md §2.3).
 */

static bool anon_ok(const node_client_t *c, bool allow_anonymous)
{
    return c->user[0] != '\0' || allow_anonymous;
}

static node_sub_t *find_sub(const node_client_t *c, rt_str_t channel)
{
    for (node_sub_t *s = c->subs; s; s = s->next) {
        if (s->channel_len == channel.n && memcmp(s->channel, channel.p, channel.n) == 0)
            return s;
    }
    return NULL;
}

static node_sub_t *find_sub_serial(const node_client_t *c, uint64_t serial)
{
    for (node_sub_t *s = c->subs; s; s = s->next) {
        if (s->serial == serial)
            return s;
    }
    return NULL;
}

static bool history_allowed(const node_client_t *c, const node_ns_opts_t *ns, bool subscribed)
{
    if (c->insecure)
        return true;
    if (ns->allow_history_for_client && anon_ok(c, ns->allow_history_for_anonymous))
        return true;
    return ns->allow_history_for_subscriber && subscribed &&
           anon_ok(c, ns->allow_history_for_anonymous);
}

static bool presence_allowed(const node_client_t *c, const node_ns_opts_t *ns, bool subscribed)
{
    if (c->insecure)
        return true;
    if (ns->allow_presence_for_client && anon_ok(c, ns->allow_presence_for_anonymous))
        return true;
    return ns->allow_presence_for_subscriber && subscribed &&
           anon_ok(c, ns->allow_presence_for_anonymous);
}

bool node_data_format_ok(const node_ns_opts_t *ns, rt_str_t data, bool binary)
{
    switch (ns->publication_data_format) {
    case NODE_DATA_FORMAT_BINARY:
        return true;
    case NODE_DATA_FORMAT_JSON:
        return !binary && data.n > 0 && rt_json_valid(data.p, data.n);
    case NODE_DATA_FORMAT_JSON_OBJECT: {
        if (binary || data.n == 0 || !rt_json_valid(data.p, data.n))
            return false;
        size_t i = 0;
        while (i < data.n &&
               (data.p[i] == ' ' || data.p[i] == '\t' || data.p[i] == '\n' || data.p[i] == '\r'))
            i++;
        return i < data.n && data.p[i] == '{';
    }
    case NODE_DATA_FORMAT_ANY_NONEMPTY:
    default:
        return data.n > 0;
    }
}

static bool override_or(node_jwt_bool_t o, bool v)
{
    return o == NODE_JWT_UNSET ? v : o == NODE_JWT_TRUE;
}

/* ---------------------------------------------------------------------------------------
 * Subscriptions.
 */

static node_sub_t *sub_new(node_client_t *c, rt_str_t channel, node_sub_origin_t origin,
                           uint32_t cmd_id)
{
    node_sub_t *s = RT_NEW(node_sub_t);
    s->client = c;
    s->serial = node_worker_next_id(c->w);
    s->channel = rt_str_dup(channel);
    s->channel_len = channel.n;
    s->origin = origin;
    s->cmd_id = cmd_id;
    s->state = NODE_SUB_SUBSCRIBING;
    s->next = c->subs;
    c->subs = s;
    c->nsubs++;
    return s;
}

static void sub_set_chan_info(node_sub_t *s, rt_str_t info)
{
    rt_free(s->chan_info_buf);
    s->chan_info_buf = info.n ? rt_memdup(info.p, info.n) : NULL;
    s->chan_info = (rt_str_t){s->chan_info_buf, info.n};
}

static void sub_set_data(node_sub_t *s, rt_str_t data)
{
    rt_free(s->data_buf);
    s->data_buf = data.n ? rt_memdup(data.p, data.n) : NULL;
    s->data_len = data.n;
}

static void release_pubs(broker_pub_t ***arr, size_t *n, size_t *cap)
{
    for (size_t i = 0; i < *n; i++)
        broker_pub_unref((*arr)[i]);
    rt_free(*arr);
    *arr = NULL;
    *n = 0;
    if (cap)
        *cap = 0;
}

static void post_info_op(node_client_t *c, node_sub_t *s, node_op_kind_t kind, node_op_done_fn done)
{
    node_op_t *op = node_op_new(kind, c->w, done);
    op->ref_id = c->id;
    op->sub_serial = s->serial;
    op->channel = node_op_copy(op, (rt_str_t){s->channel, s->channel_len});
    rt_client_info_t info = info_of(c, s);
    op->info.user = node_op_copy(op, info.user);
    op->info.client = node_op_copy(op, info.client);
    op->info.conn_info = node_op_copy(op, info.conn_info);
    op->info.chan_info = node_op_copy(op, info.chan_info);
    node_worker_post(c->w, op);
}

/* Removes a subscription: hub, presence, leave. unsubscribe_push: tell the client. */
static void sub_remove(node_sub_t *s, bool unsubscribe_push, int code)
{
    node_client_t *c = s->client;
    if (unsubscribe_push && c->state != NODE_CLIENT_CLOSING) {
        rt_buf_t *b = &c->w->scratch;
        rt_buf_reset(b);
        c->codec->push_unsubscribe(b, (rt_str_t){s->channel, s->channel_len}, code, NULL);
        node_client_send_scratch(c);
    }
    node_hub_detach(c->w, s);
    if (s->presence)
        post_info_op(c, s, NODE_OP_PRESENCE_REMOVE, NULL);
    if (s->emit_join_leave && s->state == NODE_SUB_SUBSCRIBED)
        post_info_op(c, s, NODE_OP_LEAVE, NULL);
    for (node_sub_t **pp = &c->subs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    c->nsubs--;
    release_pubs(&s->buffered, &s->nbuffered, &s->buffered_cap);
    release_pubs(&s->history, &s->nhistory, NULL);
    rt_free(s->chan_info_buf);
    rt_free(s->data_buf);
    rt_free(s->channel);
    rt_free(s);
}

/* Insufficient state on a live subscription (PROTOCOL.md §8.2). */
static void sub_insufficient(node_sub_t *s)
{
    node_client_t *c = s->client;
    if (s->origin == NODE_SUB_CLIENT)
        sub_remove(s, true, NODE_UNSUB_INSUFFICIENT);
    else
        node_client_disconnect(c, NODE_DISCONNECT_INSUFFICIENT_STATE, NULL);
}

/* Delivers one publication on a SUBSCRIBED subscription with positioning. Returns false
 * when the subscription or the client is gone. */
static bool sub_deliver(node_sub_t *s, broker_pub_t *pub, rt_bytes_t *frame)
{
    node_client_t *c = s->client;
    if (s->positioned && pub->offset > 0) {
        if (s->epoch[0] == '\0') {
            copy_epoch(s->epoch, pub->epoch);
        } else if (!rt_str_eq(pub->epoch, rt_str_c(s->epoch))) {
            sub_insufficient(s);
            return false;
        }
        if (pub->offset <= s->offset)
            return true; /* already delivered (recovered or buffered twice) */
        if (pub->offset > s->offset + 1) {
            sub_insufficient(s);
            return false;
        }
        s->offset = pub->offset;
    }
    s->last_seen = ev_now(c->w->loop);
    if (frame == NULL) {
        node_client_disconnect(c, NODE_DISCONNECT_INAPPROPRIATE_PROTOCOL, NULL);
        return false;
    }
    node_client_send_frame(c, frame);
    return c->state != NODE_CLIENT_CLOSING;
}

void node_client_on_pub(node_sub_t *s, broker_pub_t *pub, rt_bytes_t *frame)
{
    if (s->client->state == NODE_CLIENT_CLOSING)
        return;
    if (s->state == NODE_SUB_SUBSCRIBING) {
        /* The reply must precede every push of the channel (PROTOCOL.md §1.1); keep what
         * arrives meanwhile and merge it when the flow completes (§8.3-8.4). */
        if (s->nbuffered == s->buffered_cap) {
            s->buffered_cap = s->buffered_cap ? s->buffered_cap * 2 : 8;
            s->buffered = rt_realloc(s->buffered, s->buffered_cap * sizeof(*s->buffered));
        }
        s->buffered[s->nbuffered++] = broker_pub_ref(pub);
        return;
    }
    sub_deliver(s, pub, frame);
}

static int cmp_offset(const void *a, const void *b)
{
    const broker_pub_t *x = *(broker_pub_t *const *)a, *y = *(broker_pub_t *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Moves to SUBSCRIBED and delivers the buffered live publications after the reply. */
static void sub_activate(node_sub_t *s)
{
    node_client_t *c = s->client;
    s->state = NODE_SUB_SUBSCRIBED;
    s->last_seen = ev_now(c->w->loop);
    release_pubs(&s->history, &s->nhistory, NULL);
    broker_pub_t **buf = s->buffered;
    size_t n = s->nbuffered;
    s->buffered = NULL;
    s->nbuffered = s->buffered_cap = 0;
    if (s->positioned && n > 1)
        qsort(buf, n, sizeof(*buf), cmp_offset);
    uint64_t serial = s->serial;
    for (size_t i = 0; i < n; i++) {
        if (c->state == NODE_CLIENT_CLOSING || find_sub_serial(c, serial) == NULL)
            break;
        rt_shared_t *shared = node_hub_pub_frame(buf[i], c->wire);
        rt_bytes_t *view = shared ? rt_bytes_view(shared) : NULL;
        sub_deliver(s, buf[i], view);
        rt_bytes_unref(view);
    }
    for (size_t i = 0; i < n; i++)
        broker_pub_unref(buf[i]);
    rt_free(buf);
    if (c->state != NODE_CLIENT_CLOSING && find_sub_serial(c, serial) && s->emit_join_leave)
        post_info_op(c, s, NODE_OP_JOIN, NULL);
}

/* Result of a subscribe flow, computed when its ops are done (PROTOCOL.md §8.3). *pubs_out
 * receives the merged recovered list (owned by the caller). Returns 0, an error code, or
 * -1 for "disconnect with insufficient state". */
static int sub_result(node_sub_t *s, node_sub_result_t *r, broker_pub_t ***pubs_out,
                      size_t *npubs_out)
{
    const node_config_t *cfg = cfg_of(s->client);
    memset(r, 0, sizeof(*r));
    *pubs_out = NULL;
    *npubs_out = 0;
    r->positioned = s->positioned;
    r->recoverable = s->recoverable;
    r->data = (rt_str_t){s->data_buf, s->data_len};
    if (s->expire_at > 0) {
        int64_t ttl = s->expire_at - rt_time_s();
        r->expires = true;
        r->ttl = ttl > 0 ? (uint32_t)ttl : 1;
    }
    if (!s->positioned && !s->recoverable) {
        r->was_recovering = s->recover;
        return 0;
    }
    r->epoch = rt_str_c(s->top_epoch);
    r->offset = s->top_offset;
    copy_epoch(s->epoch, r->epoch);
    s->offset = s->top_offset;
    if (!s->recover) {
        return 0;
    }
    r->was_recovering = true;
    if (!s->recoverable)
        return 0;
    uint64_t n_req = s->req_offset;
    bool epoch_ok = s->req_epoch[0] == '\0' || strcmp(s->req_epoch, s->top_epoch) == 0;
    bool recovered = false;
    if (epoch_ok) {
        if (s->nhistory == 0)
            recovered = s->top_offset == n_req;
        else
            recovered = s->history[0]->offset == n_req + 1 &&
                        s->history[s->nhistory - 1]->offset == s->top_offset;
    }
    atomic_fetch_add_explicit(recovered ? &s->client->w->node->metrics.recover_ok
                                        : &s->client->w->node->metrics.recover_fail,
                              1, memory_order_relaxed);
    if (!recovered) {
        if (s->reject_unrecovered)
            return NODE_ERR_UNRECOVERABLE_POSITION;
        return 0;
    }
    /* Merge the history read with live publications buffered meanwhile: sorted,
     * de-duplicated, contiguous from N+1. */
    size_t cap = s->nhistory + s->nbuffered;
    broker_pub_t **merged = cap ? rt_malloc(cap * sizeof(*merged)) : NULL;
    size_t m = 0;
    for (size_t i = 0; i < s->nhistory; i++)
        merged[m++] = broker_pub_ref(s->history[i]);
    for (size_t i = 0; i < s->nbuffered; i++) {
        broker_pub_t *p = s->buffered[i];
        if (p->offset > n_req && rt_str_eq(p->epoch, rt_str_c(s->top_epoch)))
            merged[m++] = broker_pub_ref(p);
    }
    if (m > 1)
        qsort(merged, m, sizeof(*merged), cmp_offset);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (k > 0 && merged[k - 1]->offset == merged[i]->offset) {
            broker_pub_unref(merged[i]);
            continue;
        }
        merged[k++] = merged[i];
    }
    for (size_t i = 0; i < k; i++) {
        if (merged[i]->offset != n_req + 1 + i) {
            for (size_t j = 0; j < k; j++)
                broker_pub_unref(merged[j]);
            rt_free(merged);
            return -1;
        }
    }
    if (k > (size_t)cfg->recovery_max_publication_limit &&
        cfg->recovery_max_publication_limit > 0) {
        /* Too much to replay: honest "not recovered" (the client re-syncs itself). */
        for (size_t j = 0; j < k; j++)
            broker_pub_unref(merged[j]);
        rt_free(merged);
        return s->reject_unrecovered ? NODE_ERR_UNRECOVERABLE_POSITION : 0;
    }
    r->recovered = true;
    r->offset = n_req;
    r->pubs = merged;
    r->npubs = k;
    s->offset = k ? merged[k - 1]->offset : n_req;
    *pubs_out = merged;
    *npubs_out = k;
    return 0;
}

static void connect_finish(node_client_t *c);

/* All ops of a subscribe flow are done: answer according to the origin. */
static void sub_complete_inner(node_sub_t *s);

static void sub_complete(node_sub_t *s)
{
    node_client_t *c = s->client;
    bool client_cmd = s->origin == NODE_SUB_CLIENT;
    sub_complete_inner(s); /* may free s */
    if (client_cmd)
        inflight_end(c);
}

static void sub_complete_inner(node_sub_t *s)
{
    node_client_t *c = s->client;
    if (s->origin == NODE_SUB_CONNECT) {
        /* The connect reply carries every server-side result at once. */
        if (--c->connect_pending == 0)
            connect_finish(c);
        return;
    }
    if (s->failed_code) {
        uint32_t id = s->cmd_id;
        int code = s->failed_code;
        node_sub_origin_t origin = s->origin;
        sub_remove(s, false, 0);
        if (origin == NODE_SUB_CLIENT)
            send_error(c, id, code);
        return;
    }
    node_sub_result_t r;
    broker_pub_t **pubs;
    size_t npubs;
    int rc = sub_result(s, &r, &pubs, &npubs);
    if (rc == -1) {
        node_client_disconnect(c, NODE_DISCONNECT_INSUFFICIENT_STATE, NULL);
        return;
    }
    if (rc > 0) {
        uint32_t id = s->cmd_id;
        sub_remove(s, false, 0);
        send_error(c, id, rc);
        return;
    }
    rt_buf_t *b = &c->w->scratch;
    rt_buf_reset(b);
    int erc = s->origin == NODE_SUB_CLIENT
                  ? c->codec->reply_subscribe(b, s->cmd_id, &r)
                  : c->codec->push_subscribe(b, (rt_str_t){s->channel, s->channel_len}, &r);
    send_encoded(c, erc);
    for (size_t i = 0; i < npubs; i++)
        broker_pub_unref(pubs[i]);
    rt_free(pubs);
    if (c->state != NODE_CLIENT_CLOSING)
        sub_activate(s);
}

static void sub_op_done(node_worker_t *w, node_op_t *op)
{
    node_client_t *c = node_map_get_id(&w->clients, op->ref_id);
    if (c == NULL || c->state == NODE_CLIENT_CLOSING)
        return;
    node_sub_t *s = find_sub_serial(c, op->sub_serial);
    if (s == NULL)
        return;
    if (op->status != 0) {
        RT_LOG_WARN("subscribe flow failed channel=%s op=%d err=%s", s->channel, op->kind,
                    rt_strerror(op->status));
        s->failed_code = NODE_ERR_INTERNAL;
    } else if (op->kind == NODE_OP_HUB_WAIT) {
        if (s->chan)
            s->chan->confirmed = true;
    } else if (op->kind == NODE_OP_HISTORY) {
        s->top_offset = op->offset;
        copy_epoch(s->top_epoch, rt_str_c(op->epoch));
        s->history = op->pubs;
        s->nhistory = op->npubs;
        op->pubs = NULL;
        op->npubs = 0;
    }
    if (--s->pending_ops == 0)
        sub_complete(s);
}

/* Starts the flow: hub interest first (so no publication after the history read is
 * missed), then presence and the stream position read, all in one FIFO to the engine. */
static void sub_begin(node_sub_t *s)
{
    node_client_t *c = s->client;
    const node_ns_opts_t *ns =
        node_config_resolve(cfg_of(c), s->channel, s->channel_len, NULL, NULL);
    s->pending_ops = 1; /* guard until every op is posted */
    if (node_hub_attach(c->w, s)) {
        /* Answer only once publications of the channel reach this node (Redis confirmed
         * the SUBSCRIBE): a publish right after the reply must arrive. */
        node_op_t *op = node_op_new(NODE_OP_HUB_WAIT, c->w, sub_op_done);
        op->ref_id = c->id;
        op->sub_serial = s->serial;
        op->channel = node_op_copy(op, (rt_str_t){s->channel, s->channel_len});
        s->pending_ops++;
        node_worker_post(c->w, op);
    }
    if (s->presence) {
        s->pending_ops++;
        post_info_op(c, s, NODE_OP_PRESENCE_ADD, sub_op_done);
    }
    if (s->positioned || s->recoverable) {
        node_op_t *op = node_op_new(NODE_OP_HISTORY, c->w, sub_op_done);
        op->ref_id = c->id;
        op->sub_serial = s->serial;
        op->hist.channel = node_op_copy(op, (rt_str_t){s->channel, s->channel_len});
        if (s->recover && s->recoverable) {
            op->hist.has_since = true;
            op->hist.since_offset = s->req_offset;
            op->hist.limit = cfg_of(c)->recovery_max_publication_limit + 1;
        } else {
            op->hist.limit = 0;
        }
        if (ns) {
            op->hist.history_size = ns->history_size;
            op->hist.history_ttl_ms = ns->history_ttl_ms;
            op->hist.history_meta_ttl_ms = ns->history_meta_ttl_ms;
        }
        s->pending_ops++;
        node_worker_post(c->w, op);
    }
    if (--s->pending_ops == 0)
        sub_complete(s);
}

/* Options of a subscription from namespace + overrides + what the client asked. */
static void sub_options(node_client_t *c, node_sub_t *s, const node_ns_opts_t *ns,
                        const node_cmd_t *cmd, const node_jwt_override_t *ov)
{
    node_jwt_override_t none = {NODE_JWT_UNSET, NODE_JWT_UNSET, NODE_JWT_UNSET, NODE_JWT_UNSET,
                                NODE_JWT_UNSET};
    if (ov == NULL)
        ov = &none;
    bool hist = history_allowed(c, ns, true);
    bool pres = presence_allowed(c, ns, true);
    s->presence = override_or(ov->presence, ns->presence);
    s->emit_join_leave = override_or(ov->join_leave, ns->join_leave);
    bool ask_jl = cmd && cmd->join_leave;
    s->push_join_leave = override_or(ov->force_push_join_leave, ns->force_push_join_leave) ||
                         (ask_jl && s->emit_join_leave && pres);
    bool ask_pos = cmd && cmd->positioned;
    bool ask_rec = cmd && cmd->recoverable;
    s->positioned = override_or(ov->force_positioning, ns->force_positioning) ||
                    (ask_pos && (ns->allow_positioning || hist));
    s->recoverable = override_or(ov->force_recovery, ns->force_recovery) ||
                     (ask_rec && (ns->allow_recovery || hist));
    if (s->recoverable)
        s->positioned = true;
}

/* ---------------------------------------------------------------------------------------
 * Commands.
 */

static void handle_subscribe(node_client_t *c, const node_cmd_t *cmd)
{
    const node_config_t *cfg = cfg_of(c);
    rt_str_t ch = cmd->channel;
    if (ch.n == 0) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return;
    }
    if (cmd->ext_type == 4) {
        send_error(c, cmd->id, NODE_ERR_NOT_AVAILABLE);
        return;
    }
    if (cmd->ext_type != 0) {
        send_error(c, cmd->id, NODE_ERR_PERMISSION_DENIED);
        return;
    }
    if (cmd->delta.n && !rt_str_eq_c(cmd->delta, "fossil")) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return;
    }
    if (cmd->has_tf) {
        send_error(c, cmd->id, NODE_ERR_BAD_REQUEST);
        return;
    }
    if ((int64_t)ch.n > cfg->channel_max_length) {
        send_error(c, cmd->id, NODE_ERR_BAD_REQUEST);
        return;
    }
    if (find_sub(c, ch)) {
        send_error(c, cmd->id, NODE_ERR_ALREADY_SUBSCRIBED);
        return;
    }
    if (cfg->channel_limit > 0 && c->nsubs >= cfg->channel_limit) {
        send_error(c, cmd->id, NODE_ERR_LIMIT_EXCEEDED);
        return;
    }
    const char *rest;
    size_t rest_len;
    const node_ns_opts_t *ns = node_config_resolve(cfg, ch.p, ch.n, &rest, &rest_len);
    if (ns == NULL) {
        send_error(c, cmd->id, NODE_ERR_UNKNOWN_CHANNEL);
        return;
    }
    if (node_channel_validate_name(cfg, ns, ch, rt_str_from(rest, rest_len)) != 0) {
        send_error(c, cmd->id, NODE_ERR_BAD_REQUEST);
        return;
    }
    node_jwt_claims_t claims;
    bool have_claims = false;
    int64_t expire_at = 0;
    if (cmd->token.n > 0) {
        int rc =
            node_jwt_verify_subscribe(c->w->node->sub_verifier, cmd->token, rt_time_s(), &claims);
        have_claims = true;
        if (rc == RT_EEXPIRED) {
            node_jwt_claims_cleanup(&claims);
            send_error(c, cmd->id, NODE_ERR_TOKEN_EXPIRED);
            return;
        }
        if (rc != 0) {
            node_jwt_claims_cleanup(&claims);
            send_error(c, cmd->id, NODE_ERR_PERMISSION_DENIED);
            return;
        }
        if (!rt_str_eq(claims.channel, ch) || !rt_str_eq(claims.user, user_of(c)) ||
            (claims.client.n > 0 && !rt_str_eq(claims.client, rt_str_c(c->uuid)))) {
            node_jwt_claims_cleanup(&claims);
            node_client_disconnect(c, NODE_DISCONNECT_INVALID_TOKEN, NULL);
            return;
        }
        expire_at = claims.expire_s;
        if (expire_at > 0 && expire_at <= rt_time_s()) {
            node_jwt_claims_cleanup(&claims);
            send_error(c, cmd->id, NODE_ERR_EXPIRED);
            return;
        }
    } else {
        bool allowed = false;
        if (node_channel_is_private(cfg, ch)) {
            send_error(c, cmd->id, NODE_ERR_PERMISSION_DENIED);
            return;
        }
        bool user_limited = node_channel_is_user_limited(cfg, ns, ch);
        if (user_limited && c->user[0] && node_channel_user_allowed(cfg, ns, ch, user_of(c)))
            allowed = true;
        else if (!user_limited && ns->allow_subscribe_for_client &&
                 anon_ok(c, ns->allow_subscribe_for_anonymous))
            allowed = true;
        else if (c->insecure)
            allowed = true;
        if (!allowed) {
            send_error(c, cmd->id, NODE_ERR_PERMISSION_DENIED);
            return;
        }
    }
    node_sub_t *s = sub_new(c, ch, NODE_SUB_CLIENT, cmd->id);
    sub_options(c, s, ns, cmd, have_claims && claims.has_override ? &claims.override : NULL);
    if (have_claims) {
        sub_set_chan_info(s, claims.info);
        sub_set_data(s, claims.data);
        s->expire_at = expire_at;
        node_jwt_claims_cleanup(&claims);
    }
    s->recover = cmd->recover;
    s->req_offset = cmd->offset;
    copy_epoch(s->req_epoch, cmd->epoch);
    s->reject_unrecovered = (cmd->flag & 2) != 0;
    inflight_begin(c); /* ended when the flow answers (sub_complete) */
    sub_begin(s);
}

static void handle_unsubscribe(node_client_t *c, const node_cmd_t *cmd)
{
    if (cmd->channel.n == 0) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return;
    }
    node_sub_t *s = find_sub(c, cmd->channel);
    if (s)
        sub_remove(s, false, 0);
    send_empty(c, cmd->id, "unsubscribe");
}

/* Common checks for publish/presence/history: 3501 for an empty channel (returns NULL
 * after disconnecting), 102, 107. */
static const node_ns_opts_t *channel_checks(node_client_t *c, const node_cmd_t *cmd)
{
    const node_config_t *cfg = cfg_of(c);
    if (cmd->channel.n == 0) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return NULL;
    }
    const char *rest;
    size_t rest_len;
    const node_ns_opts_t *ns =
        node_config_resolve(cfg, cmd->channel.p, cmd->channel.n, &rest, &rest_len);
    if (ns == NULL) {
        send_error(c, cmd->id, NODE_ERR_UNKNOWN_CHANNEL);
        return NULL;
    }
    if (node_channel_validate_name(cfg, ns, cmd->channel, rt_str_from(rest, rest_len)) != 0) {
        send_error(c, cmd->id, NODE_ERR_BAD_REQUEST);
        return NULL;
    }
    return ns;
}

static node_client_t *op_client(node_worker_t *w, const node_op_t *op)
{
    node_client_t *c = node_map_get_id(&w->clients, op->ref_id);
    if (c == NULL || c->state == NODE_CLIENT_CLOSING)
        return NULL;
    return c;
}

static void publish_done_reply(node_client_t *c, node_worker_t *w, node_op_t *op);

static void publish_done(node_worker_t *w, node_op_t *op)
{
    node_client_t *c = op_client(w, op);
    if (c == NULL)
        return;
    publish_done_reply(c, w, op);
    inflight_end(c);
}

static void publish_done_reply(node_client_t *c, node_worker_t *w, node_op_t *op)
{
    if (op->status != 0) {
        send_error(c, op->cmd_id, NODE_ERR_INTERNAL);
        return;
    }
    send_empty(c, op->cmd_id, "publish");
}

static void handle_publish(node_client_t *c, const node_cmd_t *cmd)
{
    if (cmd->channel.n == 0) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return;
    }
    if (cmd->ext_type != 0) {
        send_error(c, cmd->id, NODE_ERR_NOT_AVAILABLE);
        return;
    }
    const node_ns_opts_t *ns = channel_checks(c, cmd);
    if (ns == NULL)
        return;
    if (!node_data_format_ok(ns, cmd->data, false)) {
        send_error(c, cmd->id, NODE_ERR_BAD_REQUEST);
        return;
    }
    node_sub_t *s = find_sub(c, cmd->channel);
    bool subscribed = s && s->state == NODE_SUB_SUBSCRIBED;
    bool allowed = c->insecure ||
                   (ns->allow_publish_for_client && anon_ok(c, ns->allow_publish_for_anonymous)) ||
                   (ns->allow_publish_for_subscriber && subscribed &&
                    anon_ok(c, ns->allow_publish_for_anonymous));
    if (!allowed) {
        send_error(c, cmd->id, NODE_ERR_PERMISSION_DENIED);
        return;
    }
    node_op_t *op = node_op_new(NODE_OP_PUBLISH, c->w, publish_done);
    op->ref_id = c->id;
    op->cmd_id = cmd->id;
    rt_client_info_t info = info_of(c, subscribed ? s : NULL);
    op->info.user = node_op_copy(op, info.user);
    op->info.client = node_op_copy(op, info.client);
    op->info.conn_info = node_op_copy(op, info.conn_info);
    op->info.chan_info = node_op_copy(op, info.chan_info);
    op->pub.fields.channel = node_op_copy(op, cmd->channel);
    op->pub.fields.data = node_op_copy(op, cmd->data);
    op->pub.fields.info = &op->info;
    op->pub.opts.history_size = ns->history_size;
    op->pub.opts.history_ttl_ms = ns->history_ttl_ms;
    op->pub.opts.history_meta_ttl_ms = ns->history_meta_ttl_ms;
    op->pub.fields.delta = ns->delta_publish;
    inflight_begin(c);
    node_worker_post(c->w, op);
}

static void presence_done_reply(node_client_t *c, node_worker_t *w, node_op_t *op);

static void presence_done(node_worker_t *w, node_op_t *op)
{
    node_client_t *c = op_client(w, op);
    if (c == NULL)
        return;
    presence_done_reply(c, w, op);
    inflight_end(c);
}

static void presence_done_reply(node_client_t *c, node_worker_t *w, node_op_t *op)
{
    if (op->status != 0) {
        send_error(c, op->cmd_id, NODE_ERR_INTERNAL);
        return;
    }
    rt_buf_t *b = &w->scratch;
    rt_buf_reset(b);
    int rc = 0;
    if (op->kind == NODE_OP_PRESENCE_GET)
        rc = c->codec->reply_presence(b, op->cmd_id, op->entries, op->nentries);
    else
        c->codec->reply_presence_stats(b, op->cmd_id, op->num_clients, op->num_users);
    send_encoded(c, rc);
}

static void handle_presence(node_client_t *c, const node_cmd_t *cmd, bool stats)
{
    const node_ns_opts_t *ns = channel_checks(c, cmd);
    if (ns == NULL)
        return;
    if (!ns->presence) {
        send_error(c, cmd->id, NODE_ERR_NOT_AVAILABLE);
        return;
    }
    node_sub_t *s = find_sub(c, cmd->channel);
    if (!presence_allowed(c, ns, s && s->state == NODE_SUB_SUBSCRIBED)) {
        send_error(c, cmd->id, NODE_ERR_PERMISSION_DENIED);
        return;
    }
    node_op_t *op =
        node_op_new(stats ? NODE_OP_PRESENCE_STATS : NODE_OP_PRESENCE_GET, c->w, presence_done);
    op->ref_id = c->id;
    op->cmd_id = cmd->id;
    op->channel = node_op_copy(op, cmd->channel);
    inflight_begin(c);
    node_worker_post(c->w, op);
}

static void history_done_reply(node_client_t *c, node_worker_t *w, node_op_t *op);

static void history_done(node_worker_t *w, node_op_t *op)
{
    node_client_t *c = op_client(w, op);
    if (c == NULL)
        return;
    history_done_reply(c, w, op);
    inflight_end(c);
}

static void history_done_reply(node_client_t *c, node_worker_t *w, node_op_t *op)
{
    if (op->status != 0) {
        send_error(c, op->cmd_id, NODE_ERR_INTERNAL);
        return;
    }
    if (op->hist.since_epoch.n > 0 && !rt_str_eq(op->hist.since_epoch, rt_str_c(op->epoch))) {
        send_error(c, op->cmd_id, NODE_ERR_UNRECOVERABLE_POSITION);
        return;
    }
    rt_buf_t *b = &w->scratch;
    rt_buf_reset(b);
    int rc = c->codec->reply_history(b, op->cmd_id, op->pubs, op->npubs, rt_str_c(op->epoch),
                                     op->offset);
    send_encoded(c, rc);
}

static void handle_history(node_client_t *c, const node_cmd_t *cmd)
{
    const node_config_t *cfg = cfg_of(c);
    const node_ns_opts_t *ns = channel_checks(c, cmd);
    if (ns == NULL)
        return;
    if (ns->history_size <= 0 || ns->history_ttl_ms <= 0) {
        send_error(c, cmd->id, NODE_ERR_NOT_AVAILABLE);
        return;
    }
    node_sub_t *s = find_sub(c, cmd->channel);
    if (!history_allowed(c, ns, s && s->state == NODE_SUB_SUBSCRIBED)) {
        send_error(c, cmd->id, NODE_ERR_PERMISSION_DENIED);
        return;
    }
    if (cmd->reverse && cmd->has_since && cmd->offset == 0) {
        send_error(c, cmd->id, NODE_ERR_BAD_REQUEST);
        return;
    }
    int64_t limit = cmd->has_limit ? cmd->limit : 0;
    int64_t max = cfg->history_max_publication_limit;
    if (max > 0 && (limit < 0 || limit > max))
        limit = max;
    node_op_t *op = node_op_new(NODE_OP_HISTORY, c->w, history_done);
    op->ref_id = c->id;
    op->cmd_id = cmd->id;
    op->hist.channel = node_op_copy(op, cmd->channel);
    op->hist.has_since = cmd->has_since;
    op->hist.since_offset = cmd->offset;
    op->hist.since_epoch = node_op_copy(op, cmd->since_epoch);
    op->hist.limit = limit;
    op->hist.reverse = cmd->reverse;
    op->hist.history_size = ns->history_size;
    op->hist.history_ttl_ms = ns->history_ttl_ms;
    op->hist.history_meta_ttl_ms = ns->history_meta_ttl_ms;
    inflight_begin(c);
    node_worker_post(c->w, op);
}

static void handle_refresh(node_client_t *c, const node_cmd_t *cmd)
{
    if (cmd->token.n == 0) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return;
    }
    node_jwt_claims_t claims;
    int rc = node_jwt_verify_connect(c->w->node->verifier, cmd->token, rt_time_s(), &claims);
    if (rc == RT_EEXPIRED) {
        node_jwt_claims_cleanup(&claims);
        node_client_disconnect(c, NODE_DISCONNECT_EXPIRED, NULL);
        return;
    }
    if (rc != 0 || !rt_str_eq(claims.user, user_of(c))) {
        node_jwt_claims_cleanup(&claims);
        node_client_disconnect(c, NODE_DISCONNECT_INVALID_TOKEN, NULL);
        return;
    }
    int64_t exp = claims.expire_s;
    if (exp > 0 && exp <= rt_time_s()) {
        node_jwt_claims_cleanup(&claims);
        send_error(c, cmd->id, NODE_ERR_EXPIRED);
        return;
    }
    char *set = token_channel_set(&claims);
    bool same = strcmp(set, c->token_channels ? c->token_channels : "") == 0;
    rt_free(set);
    if (!same) {
        node_jwt_claims_cleanup(&claims);
        node_client_disconnect(c, NODE_DISCONNECT_INSUFFICIENT_STATE, NULL);
        return;
    }
    if (claims.info.p) {
        rt_free(c->conn_info);
        c->conn_info = claims.info.n ? rt_memdup(claims.info.p, claims.info.n) : NULL;
        c->conn_info_len = claims.info.n;
    }
    node_jwt_claims_cleanup(&claims);
    set_expiry(c, exp);
    c->client_refresh = exp > 0;
    arm_timer(c);
    int64_t ttl = exp > 0 ? exp - rt_time_s() : 0;
    rt_buf_t *b = &c->w->scratch;
    rt_buf_reset(b);
    c->codec->reply_refresh(b, cmd->id, "refresh", exp > 0, (uint32_t)(ttl > 0 ? ttl : 0));
    node_client_send_scratch(c);
}

static void handle_sub_refresh(node_client_t *c, const node_cmd_t *cmd)
{
    if (cmd->channel.n == 0) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return;
    }
    node_sub_t *s = find_sub(c, cmd->channel);
    if (s == NULL) {
        send_error(c, cmd->id, NODE_ERR_PERMISSION_DENIED);
        return;
    }
    if (cmd->token.n == 0) {
        send_error(c, cmd->id, NODE_ERR_BAD_REQUEST);
        return;
    }
    node_jwt_claims_t claims;
    int rc = node_jwt_verify_subscribe(c->w->node->sub_verifier, cmd->token, rt_time_s(), &claims);
    if (rc == RT_EEXPIRED) {
        /* Documented intent over the library's current code (PROTOCOL.md §3.11). */
        node_jwt_claims_cleanup(&claims);
        node_client_disconnect(c, NODE_DISCONNECT_EXPIRED, NULL);
        return;
    }
    if (rc != 0 || !rt_str_eq(claims.channel, cmd->channel) ||
        !rt_str_eq(claims.user, user_of(c)) ||
        (claims.client.n > 0 && !rt_str_eq(claims.client, rt_str_c(c->uuid)))) {
        node_jwt_claims_cleanup(&claims);
        node_client_disconnect(c, NODE_DISCONNECT_INVALID_TOKEN, NULL);
        return;
    }
    int64_t exp = claims.expire_s;
    if (claims.info.p)
        sub_set_chan_info(s, claims.info);
    node_jwt_claims_cleanup(&claims);
    if (exp > 0 && exp <= rt_time_s()) {
        send_error(c, cmd->id, NODE_ERR_EXPIRED);
        return;
    }
    s->expire_at = exp;
    int64_t ttl = exp > 0 ? exp - rt_time_s() : 0;
    rt_buf_t *b = &c->w->scratch;
    rt_buf_reset(b);
    c->codec->reply_refresh(b, cmd->id, "sub_refresh", exp > 0, (uint32_t)(ttl > 0 ? ttl : 0));
    node_client_send_scratch(c);
}

/* ---------------------------------------------------------------------------------------
 * Connect (PROTOCOL.md §3.1, §7).
 */

static void connect_fail(node_client_t *c, uint32_t id, int code)
{
    if (node_wire_unidirectional(c->wire)) {
        /* No error replies there: a failed connect is a disconnect (PROTOCOL.md §6.3). */
        node_client_disconnect(c, node_disconnect_from_error(code), NULL);
        return;
    }
    send_error(c, id, code);
    if (c->state != NODE_CLIENT_CLOSING)
        c->state = NODE_CLIENT_FAILED;
}

static void connect_finish(node_client_t *c)
{
    const node_config_t *cfg = cfg_of(c);
    node_worker_t *w = c->w;
    size_t n = 0;
    for (node_sub_t *s = c->subs; s; s = s->next)
        n++;
    rt_str_t *names = n ? rt_calloc(n, sizeof(*names)) : NULL;
    node_sub_result_t *results = n ? rt_calloc(n, sizeof(*results)) : NULL;
    broker_pub_t ***owned = n ? rt_calloc(n, sizeof(*owned)) : NULL;
    size_t *nowned = n ? rt_calloc(n, sizeof(*nowned)) : NULL;
    size_t i = 0;
    int fail = 0;
    for (node_sub_t *s = c->subs; s; s = s->next, i++) {
        names[i] = (rt_str_t){s->channel, s->channel_len};
        if (s->failed_code) {
            fail = s->failed_code;
            continue;
        }
        int rc = sub_result(s, &results[i], &owned[i], &nowned[i]);
        if (rc != 0)
            fail = rc;
    }
    if (fail == 0) {
        node_connect_result_t r = {
            .client = rt_str_c(c->uuid),
            .version = rt_str_c(NODE_VERSION_TEXT),
            .sub_channels = names,
            .subs = results,
            .nsubs = n,
        };
        if (c->expire_at > 0 && c->client_refresh) {
            int64_t ttl = c->expire_at - rt_time_s();
            r.expires = true;
            r.ttl = ttl > 0 ? (uint32_t)ttl : 1;
        }
        bool uni = node_wire_unidirectional(c->wire);
        if (cfg->ping_interval_ms > 0 && c->app_ping) {
            r.ping = (uint32_t)(cfg->ping_interval_ms / 1000);
            if (r.ping == 0)
                r.ping = 1;
            r.pong = cfg->pong_timeout_ms > 0 && !uni;
        }
        if (cfg->connect_include_server_time)
            r.time_ms = rt_time_ms();
        if (c->session[0]) {
            r.session = rt_str_c(c->session);
            if (node_wire_emulated(c->wire))
                r.node = rt_str_c(w->node->uid);
        }
        rt_buf_reset(&w->scratch);
        int erc = uni ? c->codec->push_connect(&w->scratch, &r)
                      : c->codec->reply_connect(&w->scratch, c->connect_cmd_id, &r);
        send_encoded(c, erc);
    }
    for (i = 0; i < n; i++) {
        for (size_t k = 0; k < nowned[i]; k++)
            broker_pub_unref(owned[i][k]);
        rt_free(owned[i]);
    }
    rt_free(owned);
    rt_free(nowned);
    rt_free(names);
    rt_free(results);
    if (c->state == NODE_CLIENT_CLOSING)
        return;
    if (fail == -1) {
        node_client_disconnect(c, NODE_DISCONNECT_INSUFFICIENT_STATE, NULL);
        return;
    }
    if (fail > 0) {
        connect_fail(c, c->connect_cmd_id, fail);
        return;
    }
    c->state = NODE_CLIENT_CONNECTED;
    c->stale_at = 0;
    if (cfg->ping_interval_ms > 0) {
        /* First ping at a random moment in [interval/2, interval): spreads storms. */
        double iv = (double)cfg->ping_interval_ms / 1000.0;
        double jitter = (double)(rt_random_u64() % 1000000) / 1000000.0;
        c->ping_at = ev_now(w->loop) + iv / 2 + jitter * iv / 2;
    }
    arm_timer(c);
    for (node_sub_t *s = c->subs, *next; s; s = next) {
        next = s->next;
        if (s->state == NODE_SUB_SUBSCRIBING && s->origin == NODE_SUB_CONNECT) {
            s->origin = NODE_SUB_SERVER_PUSH; /* later flows of this sub are pushes */
            sub_activate(s);
            if (c->state == NODE_CLIENT_CLOSING)
                return;
        }
    }
    if (c->deferred.len) {
        rt_buf_t held = c->deferred;
        rt_buf_init(&c->deferred);
        process_frame(c, held.p, held.len);
        rt_buf_cleanup(&held);
    }
}

static void user_limit_done(node_worker_t *w, node_op_t *op)
{
    node_client_t *c = node_map_get_id(&w->clients, op->ref_id);
    if (op->status == 0 && (c == NULL || c->state == NODE_CLIENT_CLOSING)) {
        /* Counted for a connection that is already gone. */
        node_op_t *rm = node_op_new(NODE_OP_USER_REMOVE, w, NULL);
        rm->channel = node_op_copy(rm, op->channel);
        node_worker_post(w, rm);
        return;
    }
    if (c == NULL || c->state == NODE_CLIENT_CLOSING)
        return;
    if (op->status != 0) {
        node_client_disconnect(c, NODE_DISCONNECT_CONNECTION_LIMIT, NULL);
        return;
    }
    c->counted_user = true;
    if (--c->connect_pending == 0)
        connect_finish(c);
}

/* Adds a server-side subscription requested at connect. Returns 0 or an error code (102). */
static int add_connect_sub(node_client_t *c, rt_str_t ch, const node_jwt_sub_opts_t *opts,
                           const node_cmd_t *cmd)
{
    const node_config_t *cfg = cfg_of(c);
    const node_ns_opts_t *ns = node_config_resolve(cfg, ch.p, ch.n, NULL, NULL);
    if (ns == NULL)
        return NODE_ERR_UNKNOWN_CHANNEL;
    if (find_sub(c, ch))
        return 0;
    node_sub_t *s = sub_new(c, ch, NODE_SUB_CONNECT, 0);
    sub_options(c, s, ns, NULL, opts ? &opts->override : NULL);
    if (opts) {
        sub_set_chan_info(s, opts->info);
        sub_set_data(s, opts->data);
    }
    for (size_t i = 0; cmd && i < cmd->nsubs; i++) {
        if (rt_str_eq(cmd->subs[i].channel, ch) && cmd->subs[i].recover) {
            s->recover = true;
            s->req_offset = cmd->subs[i].offset;
            copy_epoch(s->req_epoch, cmd->subs[i].epoch);
        }
    }
    return 0;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The channels a connection token grants (subs keys, else channels), sorted and joined
 * by '\n': a refresh whose token grants another set ends the connection with 3010
 * (PROTOCOL.md §3.10), since server-side subscriptions are fixed at connect. Owned. */
static char *token_channel_set(const node_jwt_claims_t *claims)
{
    const rt_json_t *src = claims->subs && claims->subs->count ? claims->subs : claims->channels;
    size_t n = src ? src->count : 0;
    char **names = n ? rt_calloc(n, sizeof(*names)) : NULL;
    size_t k = 0;
    for (const rt_json_t *e = src ? src->child : NULL; e; e = e->next) {
        rt_buf_t b = RT_BUF_INIT;
        if (src == claims->subs)
            rt_json_get_key(e, &b);
        else if (rt_json_get_string(e, &b) != 0)
            rt_buf_reset(&b);
        names[k++] = rt_str_dup(rt_buf_str(&b));
        rt_buf_cleanup(&b);
    }
    if (k > 1)
        qsort(names, k, sizeof(*names), cmp_cstr);
    rt_buf_t out = RT_BUF_INIT;
    for (size_t i = 0; i < k; i++) {
        if (i)
            rt_buf_append_byte(&out, '\n');
        rt_buf_append_cstr(&out, names[i]);
        rt_free(names[i]);
    }
    rt_free(names);
    char *set = rt_str_dup(rt_buf_str(&out));
    rt_buf_cleanup(&out);
    return set;
}

static int connect_subs_from_token(node_client_t *c, const node_jwt_claims_t *claims,
                                   const node_cmd_t *cmd)
{
    if (claims->subs && claims->subs->count > 0) {
        for (const rt_json_t *m = claims->subs->child; m; m = m->next) {
            rt_buf_t key = RT_BUF_INIT;
            rt_json_get_key(m, &key);
            node_jwt_sub_opts_t opts;
            int prc = node_jwt_sub_opts_parse(m, &opts);
            int rc = prc == 0 ? add_connect_sub(c, rt_buf_str(&key), &opts, cmd) : 0;
            node_jwt_sub_opts_cleanup(&opts);
            rt_buf_cleanup(&key);
            if (rc)
                return rc;
        }
    } else if (claims->channels) {
        for (const rt_json_t *e = claims->channels->child; e; e = e->next) {
            rt_buf_t name = RT_BUF_INIT;
            int rc = 0;
            if (rt_json_get_string(e, &name) == 0 && name.len > 0)
                rc = add_connect_sub(c, rt_buf_str(&name), NULL, cmd);
            rt_buf_cleanup(&name);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Returns true when processing of the frame may continue synchronously. */
static bool handle_connect(node_client_t *c, const node_cmd_t *cmd)
{
    const node_config_t *cfg = cfg_of(c);
    node_t *node = c->w->node;
    if (c->state != NODE_CLIENT_CONNECTING) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return false;
    }
    c->connect_cmd_id = cmd->id;
    if (cmd->name.n) {
        snprintf(c->name, sizeof(c->name), "%.*s", (int)cmd->name.n, cmd->name.p);
    }
    if (cmd->version.n) {
        snprintf(c->version, sizeof(c->version), "%.*s", (int)cmd->version.n, cmd->version.p);
    }
    node_jwt_claims_t claims;
    bool have_claims = false;
    if (cmd->token.n == 0) {
        if (!cfg->client_insecure && !cfg->allow_anonymous_connect_without_token) {
            node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
            return false;
        }
        c->insecure = cfg->client_insecure;
    } else {
        int rc = node_jwt_verify_connect(node->verifier, cmd->token, rt_time_s(), &claims);
        have_claims = true;
        if (rc == RT_EEXPIRED) {
            node_jwt_claims_cleanup(&claims);
            connect_fail(c, cmd->id, NODE_ERR_TOKEN_EXPIRED);
            return false;
        }
        if (rc != 0) {
            node_jwt_claims_cleanup(&claims);
            CLOG_DEBUG(c, "invalid connection token err=%s", rt_strerror(rc));
            node_client_disconnect(c, NODE_DISCONNECT_INVALID_TOKEN, NULL);
            return false;
        }
        if (claims.user.n == 0 && cfg->disallow_anonymous_connection_tokens) {
            node_jwt_claims_cleanup(&claims);
            node_client_disconnect(c, NODE_DISCONNECT_PERMISSION_DENIED, NULL);
            return false;
        }
        c->insecure = cfg->client_insecure;
        rt_free(c->user);
        c->user = rt_str_dup(claims.user);
        if (claims.info.p && claims.info.n) {
            c->conn_info = rt_memdup(claims.info.p, claims.info.n);
            c->conn_info_len = claims.info.n;
        }
        int64_t exp = claims.expire_s;
        if (exp > 0 && exp <= rt_time_s()) {
            node_jwt_claims_cleanup(&claims);
            connect_fail(c, cmd->id, NODE_ERR_EXPIRED);
            return false;
        }
        set_expiry(c, exp);
        c->client_refresh = exp > 0;
    }
    int rc = 0;
    if (have_claims) {
        c->token_channels = token_channel_set(&claims);
        rc = connect_subs_from_token(c, &claims, cmd);
    }
    if (have_claims)
        node_jwt_claims_cleanup(&claims);
    if (rc == 0 && cfg->personal_channel_enabled && c->user[0]) {
        char name[512];
        if (cfg->personal_channel_namespace[0])
            snprintf(name, sizeof(name), "%s%c%c%s", cfg->personal_channel_namespace,
                     cfg->namespace_boundary, cfg->user_boundary, c->user);
        else
            snprintf(name, sizeof(name), "%c%s", cfg->user_boundary, c->user);
        rc = add_connect_sub(c, rt_str_c(name), NULL, cmd);
    }
    if (rc == 0) {
        /* connect.subs: channels the client could subscribe to without a token. */
        for (size_t i = 0; i < cmd->nsubs; i++) {
            rt_str_t ch = cmd->subs[i].channel;
            if (find_sub(c, ch) || ch.n == 0)
                continue;
            const char *rest;
            size_t rest_len;
            const node_ns_opts_t *ns = node_config_resolve(cfg, ch.p, ch.n, &rest, &rest_len);
            if (ns == NULL) {
                node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
                return false;
            }
            if (node_channel_is_private(cfg, ch) ||
                node_channel_validate_name(cfg, ns, ch, rt_str_from(rest, rest_len)) != 0 ||
                !(c->insecure || (ns->allow_subscribe_for_client &&
                                  anon_ok(c, ns->allow_subscribe_for_anonymous))))
                continue;
            rc = add_connect_sub(c, ch, NULL, cmd);
            if (rc)
                break;
        }
    }
    if (rc != 0) {
        while (c->subs)
            sub_remove(c->subs, false, 0);
        connect_fail(c, cmd->id, rc);
        return false;
    }
    if (cfg->channel_limit > 0 && c->nsubs > cfg->channel_limit) {
        node_client_disconnect(c, NODE_DISCONNECT_CHANNEL_LIMIT, NULL);
        return false;
    }
    c->state = NODE_CLIENT_AUTHING;
    c->connect_pending = 1;
    if (cfg->user_connection_limit > 0 && c->user[0]) {
        /* The limit is per node: the engine counts every worker's connections. */
        node_op_t *op = node_op_new(NODE_OP_USER_ADD, c->w, user_limit_done);
        op->ref_id = c->id;
        op->channel = node_op_copy(op, user_of(c));
        c->connect_pending++;
        node_worker_post(c->w, op);
    }
    for (node_sub_t *s = c->subs; s; s = s->next) {
        c->connect_pending++;
        sub_begin(s);
    }
    if (--c->connect_pending == 0)
        connect_finish(c);
    return c->state == NODE_CLIENT_CONNECTED || c->state == NODE_CLIENT_AUTHING;
}

/* ---------------------------------------------------------------------------------------
 * Frames.
 */

/* Returns false when the rest of the frame must not be processed. */
static bool dispatch(node_client_t *c, const node_cmd_t *cmd)
{
    if (c->state == NODE_CLIENT_CONNECTING && cmd->type != NODE_CMD_CONNECT) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return false;
    }
    if (c->state == NODE_CLIENT_FAILED) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return false;
    }
    switch (cmd->type) {
    case NODE_CMD_CONNECT:
        return handle_connect(c, cmd);
    case NODE_CMD_PONG:
        if (c->pong_deadline == 0) {
            /* A pong with no ping outstanding is a protocol violation (§5). */
            node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
            return false;
        }
        c->pong_deadline = 0;
        arm_timer(c);
        break;
    case NODE_CMD_SUBSCRIBE:
        handle_subscribe(c, cmd);
        break;
    case NODE_CMD_UNSUBSCRIBE:
        handle_unsubscribe(c, cmd);
        break;
    case NODE_CMD_PUBLISH:
        handle_publish(c, cmd);
        break;
    case NODE_CMD_PRESENCE:
        handle_presence(c, cmd, false);
        break;
    case NODE_CMD_PRESENCE_STATS:
        handle_presence(c, cmd, true);
        break;
    case NODE_CMD_HISTORY:
        handle_history(c, cmd);
        break;
    case NODE_CMD_RPC:
        /* No RPC proxy in this build: "not available" like Centrifugo without a proxy. */
        send_error(c, cmd->id, NODE_ERR_NOT_AVAILABLE);
        break;
    case NODE_CMD_SEND:
        node_client_disconnect(c, NODE_DISCONNECT_NOT_AVAILABLE, NULL);
        return false;
    case NODE_CMD_REFRESH:
        handle_refresh(c, cmd);
        break;
    case NODE_CMD_SUB_REFRESH:
        handle_sub_refresh(c, cmd);
        break;
    case NODE_CMD_UNKNOWN:
    default:
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return false;
    }
    return c->state != NODE_CLIENT_CLOSING;
}

/* While a connect waits for its server-side subscriptions (an engine round trip), the
 * commands after it wait too, so replies keep the order clients expect: the rest of the
 * frame and later frames are kept as bytes and processed when the connect completes. */
static void defer_bytes(node_client_t *c, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    if ((int64_t)(c->deferred.len + n) > cfg_of(c)->websocket_message_size_limit * 4) {
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
        return;
    }
    /* JSON frames join with a newline; delimited Protobuf messages simply concatenate. */
    if (c->deferred.len && !c->codec->protobuf)
        rt_buf_append_byte(&c->deferred, '\n');
    rt_buf_append(&c->deferred, p, n);
}

static void process_frame(node_client_t *c, const uint8_t *data, size_t len)
{
    if (c->state == NODE_CLIENT_AUTHING) {
        defer_bytes(c, data, len);
        return;
    }
    node_cmd_reader_t r;
    node_cmd_reader_init(&r, c->codec->protobuf, data, len);
    node_cmd_t cmd;
    int rc;
    while ((rc = node_cmd_reader_next(&r, &cmd)) == 1) {
        if (!dispatch(c, &cmd))
            break;
        if (c->state == NODE_CLIENT_AUTHING) {
            size_t pos = node_cmd_reader_pos(&r);
            defer_bytes(c, data + pos, pos < len ? len - pos : 0);
            break;
        }
    }
    if (rc == RT_EPROTO && c->state != NODE_CLIENT_CLOSING) {
        CLOG_DEBUG(c, "malformed frame len=%zu", len);
        if (c->inflight > 0)
            c->pending_disconnect = NODE_DISCONNECT_BAD_REQUEST;
        else
            node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
    }
    node_cmd_reader_cleanup(&r);
}

void node_client_uni_connect_json(node_client_t *c, const uint8_t *p, size_t n)
{
    node_json_reader_t r;
    node_json_reader_init(&r, NULL, 0);
    node_cmd_t cmd;
    if (node_json_decode_connect_request(&r, p, n, &cmd) != 0)
        node_client_disconnect(c, NODE_DISCONNECT_BAD_REQUEST, NULL);
    else
        node_client_uni_connect(c, &cmd);
    node_json_reader_cleanup(&r);
}

void node_client_uni_connect(node_client_t *c, const node_cmd_t *cmd)
{
    if (c->state != NODE_CLIENT_CONNECTING)
        return;
    atomic_fetch_add_explicit(&c->w->node->metrics.messages_received[c->wire], 1,
                              memory_order_relaxed);
    dispatch(c, cmd);
}

/* ---------------------------------------------------------------------------------------
 * Server-side control (API) and periodic work.
 */

void node_client_apply_control(node_client_t *c, const node_control_t *ctl)
{
    const node_config_t *cfg = cfg_of(c);
    switch (ctl->kind) {
    case NODE_CONTROL_DISCONNECT:
        node_client_disconnect(c, ctl->code ? ctl->code : NODE_DISCONNECT_FORCE_DISCONNECT,
                               ctl->reason[0] ? ctl->reason : NULL);
        return;
    case NODE_CONTROL_UNSUBSCRIBE:
        for (node_sub_t *s = c->subs, *next; s; s = next) {
            next = s->next;
            if (ctl->channel[0] == '\0' || strcmp(ctl->channel, s->channel) == 0)
                sub_remove(s, true, NODE_UNSUB_SERVER);
        }
        return;
    case NODE_CONTROL_SUBSCRIBE: {
        rt_str_t ch = rt_str_c(ctl->channel);
        if (find_sub(c, ch))
            return;
        const node_ns_opts_t *ns = node_config_resolve(cfg, ch.p, ch.n, NULL, NULL);
        if (ns == NULL)
            return;
        if (cfg->channel_limit > 0 && c->nsubs >= cfg->channel_limit) {
            node_client_disconnect(c, NODE_DISCONNECT_CHANNEL_LIMIT, NULL);
            return;
        }
        node_sub_t *s = sub_new(c, ch, NODE_SUB_SERVER_PUSH, 0);
        sub_options(c, s, ns, NULL, &ctl->override);
        sub_set_chan_info(s, rt_buf_str(&ctl->info));
        sub_set_data(s, rt_buf_str(&ctl->data));
        s->expire_at = ctl->expire_at;
        if (ctl->has_recover_since) {
            s->recover = true;
            s->req_offset = ctl->recover_offset;
            snprintf(s->req_epoch, sizeof(s->req_epoch), "%s", ctl->recover_epoch);
        }
        sub_begin(s);
        return;
    }
    case NODE_CONTROL_REFRESH: {
        if (ctl->expired) {
            node_client_disconnect(c, NODE_DISCONNECT_EXPIRED, NULL);
            return;
        }
        if (ctl->has_info) {
            rt_free(c->conn_info);
            c->conn_info_len = ctl->info.len;
            c->conn_info = ctl->info.len ? rt_memdup(ctl->info.p, ctl->info.len) : NULL;
        }
        int64_t exp = ctl->has_expire_at ? ctl->expire_at : 0;
        set_expiry(c, exp);
        c->client_refresh = false;
        arm_timer(c);
        int64_t ttl = exp > 0 ? exp - rt_time_s() : 0;
        rt_buf_t *b = &c->w->scratch;
        rt_buf_reset(b);
        c->codec->push_refresh(b, exp > 0, (uint32_t)(ttl > 0 ? ttl : 0));
        node_client_send_scratch(c);
        return;
    }
    }
}

static void position_done(node_worker_t *w, node_op_t *op)
{
    node_client_t *c = node_map_get_id(&w->clients, op->ref_id);
    if (c == NULL || c->state != NODE_CLIENT_CONNECTED || op->status != 0)
        return;
    node_sub_t *s = find_sub_serial(c, op->sub_serial);
    if (s == NULL || s->state != NODE_SUB_SUBSCRIBED || !s->positioned)
        return;
    /* A top beyond what was delivered means publications were lost on the way (PUB/SUB is
     * at most once); a publication still in flight can also look like that, and the
     * resulting resubscribe with recovery is harmless (PROTOCOL.md §8.2). */
    if (strcmp(op->epoch, s->epoch) != 0 || op->offset > s->offset) {
        CLOG_DEBUG(c, "position check failed channel=%s top=%llu tracked=%llu", s->channel,
                   (unsigned long long)op->offset, (unsigned long long)s->offset);
        sub_insufficient(s);
        return;
    }
    s->last_seen = ev_now(w->loop);
}

static void check_position(node_client_t *c, node_sub_t *s)
{
    const node_ns_opts_t *ns =
        node_config_resolve(cfg_of(c), s->channel, s->channel_len, NULL, NULL);
    node_op_t *op = node_op_new(NODE_OP_HISTORY, c->w, position_done);
    op->ref_id = c->id;
    op->sub_serial = s->serial;
    op->hist.channel = node_op_copy(op, (rt_str_t){s->channel, s->channel_len});
    op->hist.limit = 0;
    if (ns) {
        op->hist.history_size = ns->history_size;
        op->hist.history_ttl_ms = ns->history_ttl_ms;
        op->hist.history_meta_ttl_ms = ns->history_meta_ttl_ms;
    }
    s->last_seen = ev_now(c->w->loop); /* one check in flight at a time */
    node_worker_post(c->w, op);
}

void node_client_check_positions(node_client_t *c)
{
    if (c->state != NODE_CLIENT_CONNECTED)
        return;
    for (node_sub_t *s = c->subs; s; s = s->next) {
        if (s->state == NODE_SUB_SUBSCRIBED && s->positioned)
            check_position(c, s);
    }
}

void node_client_tick(node_client_t *c, double now)
{
    if (c->state != NODE_CLIENT_CONNECTED)
        return;
    const node_config_t *cfg = cfg_of(c);
    int64_t now_s = rt_time_s();
    for (node_sub_t *s = c->subs, *next; s; s = next) {
        next = s->next;
        if (s->state != NODE_SUB_SUBSCRIBED)
            continue;
        if (s->expire_at > 0 &&
            now_s * 1000 > s->expire_at * 1000 + cfg->expired_sub_close_delay_ms) {
            if (s->origin == NODE_SUB_CLIENT) {
                sub_remove(s, true, NODE_UNSUB_EXPIRED);
                continue;
            }
            node_client_disconnect(c, NODE_DISCONNECT_SUB_EXPIRED, NULL);
            return;
        }
        if (s->presence)
            post_info_op(c, s, NODE_OP_PRESENCE_ADD, NULL);
        /* A quiet positioned subscription is compared with the stream top now and then
         * (client.channel_position_check_delay). */
        if (s->positioned &&
            now - s->last_seen >= (double)cfg->channel_position_check_delay_ms / 1000.0)
            check_position(c, s);
    }
}

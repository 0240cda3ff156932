/* Worker loops: each owns a libev loop, its SO_REUSEPORT listener, its connections and its
 * hub shard. Routes HTTP requests, upgrades WebSockets, receives engine mails. */
#include <fnmatch.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/codes.h"
#include "node/node_internal.h"
#include "node/ratelimit.h"

/* ---------------------------------------------------------------------------------------
 * Engine -> worker mails.
 */

typedef struct pub_mail {
    rt_mail_t mail;
    broker_pub_t *pub; /* owned reference */
} pub_mail_t;

typedef struct join_mail {
    rt_mail_t mail;
    bool leave;
    rt_str_t channel;      /* into bytes */
    rt_client_info_t info; /* into bytes */
    char bytes[];
} join_mail_t;

typedef struct control_mail {
    rt_mail_t mail;
    node_control_t *control; /* owned reference */
} control_mail_t;

typedef struct survey_mail {
    rt_mail_t mail;
    node_survey_t *survey; /* engine's; passed back untouched */
    int worker;
    bool want_channels;
    char pattern[256];
    node_survey_result_t part; /* filled by the worker, merged by the engine */
} survey_mail_t;

static void on_pub_mail(rt_mail_t *m, void *ctx)
{
    pub_mail_t *pm = (pub_mail_t *)m;
    node_hub_fanout(ctx, pm->pub);
    broker_pub_unref(pm->pub);
    rt_free(pm);
}

void node_worker_deliver_pub(node_worker_t *w, broker_pub_t *pub)
{
    pub_mail_t *pm = rt_malloc(sizeof(*pm));
    pm->mail.fn = on_pub_mail;
    pm->pub = broker_pub_ref(pub);
    rt_mailbox_post(&w->mailbox, &pm->mail);
}

static void on_join_mail(rt_mail_t *m, void *ctx)
{
    join_mail_t *jm = (join_mail_t *)m;
    node_hub_fanout_join(ctx, jm->channel, &jm->info, jm->leave);
    rt_free(jm);
}

static rt_str_t place(char **cursor, rt_str_t s)
{
    rt_str_t out = {*cursor, s.n};
    if (s.n)
        memcpy(*cursor, s.p, s.n);
    *cursor += s.n;
    return out;
}

void node_worker_deliver_join(node_worker_t *w, rt_str_t channel, const rt_client_info_t *info,
                              bool leave)
{
    size_t n = channel.n + info->user.n + info->client.n + info->conn_info.n + info->chan_info.n;
    join_mail_t *jm = rt_malloc(sizeof(*jm) + n + 1);
    jm->mail.fn = on_join_mail;
    jm->leave = leave;
    char *cur = jm->bytes;
    jm->channel = place(&cur, channel);
    jm->info.user = place(&cur, info->user);
    jm->info.client = place(&cur, info->client);
    jm->info.conn_info = place(&cur, info->conn_info);
    jm->info.chan_info = place(&cur, info->chan_info);
    rt_mailbox_post(&w->mailbox, &jm->mail);
}

static bool control_matches(const node_control_t *ctl, const node_client_t *c)
{
    if (c->state == NODE_CLIENT_CLOSING || c->state == NODE_CLIENT_CONNECTING ||
        c->state == NODE_CLIENT_FAILED)
        return false;
    if (strcmp(ctl->user, c->user) != 0)
        return false;
    if (ctl->client[0] && strcmp(ctl->client, c->uuid) != 0)
        return false;
    /* Sessions exist only on emulation transports; a WebSocket client has none. */
    if (ctl->session[0])
        return false;
    if (ctl->whitelist) {
        for (char **p = ctl->whitelist; *p; p++) {
            if (strcmp(*p, c->uuid) == 0)
                return false;
        }
    }
    return true;
}

static void on_control_mail(rt_mail_t *m, void *ctx)
{
    node_worker_t *w = ctx;
    control_mail_t *cm = (control_mail_t *)m;
    for (node_client_t *c = w->client_list, *next; c; c = next) {
        next = c->next;
        if (control_matches(cm->control, c))
            node_client_apply_control(c, cm->control);
    }
    node_control_unref(cm->control);
    rt_free(cm);
}

void node_worker_deliver_control(node_worker_t *w, node_control_t *ctl)
{
    control_mail_t *cm = rt_malloc(sizeof(*cm));
    cm->mail.fn = on_control_mail;
    cm->control = node_control_ref(ctl);
    rt_mailbox_post(&w->mailbox, &cm->mail);
}

static void on_survey_part(rt_mail_t *m, void *ctx)
{
    survey_mail_t *sm = (survey_mail_t *)m;
    node_engine_survey_part(ctx, sm->survey, sm->worker, &sm->part);
    node_survey_result_cleanup(&sm->part);
    rt_free(sm);
}

static void on_survey_mail(rt_mail_t *m, void *ctx)
{
    node_worker_t *w = ctx;
    survey_mail_t *sm = (survey_mail_t *)m;
    node_survey_result_t *r = &sm->part;
    node_survey_result_init(r);
    for (node_client_t *c = w->client_list; c; c = c->next) {
        if (c->state != NODE_CLIENT_CONNECTED)
            continue;
        r->num_clients++;
        r->num_subs += (uint32_t)c->nsubs;
        node_survey_result_add(r, &r->users, rt_str_c(c->user), 1);
    }
    if (sm->want_channels) {
        for (node_map_iter_t it = node_map_iter(&w->hub); node_map_next(&it);) {
            node_hub_chan_t *ch = it.entry->val;
            if (sm->pattern[0] && fnmatch(sm->pattern, ch->name, 0) != 0)
                continue;
            node_survey_result_add(r, &r->channels, (rt_str_t){ch->name, ch->len}, ch->nsubs);
        }
    }
    sm->mail.fn = on_survey_part;
    rt_mailbox_post(&w->node->engine->mailbox, &sm->mail);
}

void node_worker_survey(node_worker_t *w, node_survey_t *s, bool want_channels, const char *pattern)
{
    survey_mail_t *sm = RT_NEW(survey_mail_t);
    sm->mail.fn = on_survey_mail;
    sm->survey = s;
    sm->worker = w->index;
    sm->want_channels = want_channels;
    snprintf(sm->pattern, sizeof(sm->pattern), "%s", pattern ? pattern : "");
    rt_mailbox_post(&w->mailbox, &sm->mail);
}

static void on_recheck_mail(rt_mail_t *m, void *ctx)
{
    node_worker_t *w = ctx;
    for (node_client_t *c = w->client_list, *next; c; c = next) {
        next = c->next;
        node_client_check_positions(c);
    }
    rt_free(m);
}

void node_worker_recheck_positions(node_worker_t *w)
{
    rt_mail_t *m = rt_malloc(sizeof(*m));
    m->fn = on_recheck_mail;
    rt_mailbox_post(&w->mailbox, m);
}

uint64_t node_worker_next_id(node_worker_t *w)
{
    return ((uint64_t)w->index << 56) | ++w->next_id;
}

/* ---------------------------------------------------------------------------------------
 * HTTP routing.
 */

static bool path_is(rt_str_t path, const char *prefix)
{
    return prefix[0] && rt_str_eq_c(path, prefix);
}

static void respond_json(tr_http_req_t *req, int status, const char *body)
{
    tr_http_respond(req, status, "application/json", rt_str_c(body), NULL);
}

static bool wants_protobuf(tr_http_req_t *req)
{
    rt_str_t offered = tr_ws_offered_protocols(req);
    if (offered.p && memmem(offered.p, offered.n, "centrifuge-protobuf", 19) != NULL)
        return true;
    rt_buf_t v = RT_BUF_INIT;
    bool pb = false;
    if (tr_http_req_query_param(req, "format", &v) == 0 && rt_str_eq_c(rt_buf_str(&v), "protobuf"))
        pb = true;
    rt_buf_reset(&v);
    if (tr_http_req_query_param(req, "cf_protocol", &v) == 0 &&
        rt_str_eq_c(rt_buf_str(&v), "protobuf"))
        pb = true;
    rt_buf_cleanup(&v);
    return pb;
}

static void handle_websocket(node_worker_t *w, tr_http_req_t *req)
{
    const node_config_t *cfg = w->node->cfg;
    if (!node_websocket_admit(w, req))
        return;
    bool pb = wants_protobuf(req);
    rt_str_t offered = tr_ws_offered_protocols(req);
    /* The offered subprotocol must be echoed or browsers fail the handshake (§1.5). */
    const char *subprotocol = NULL;
    if (offered.p && memmem(offered.p, offered.n, "centrifuge-protobuf", 19))
        subprotocol = "centrifuge-protobuf";
    else if (offered.p && memmem(offered.p, offered.n, "centrifuge-json", 15))
        subprotocol = "centrifuge-json";
    tr_ws_opts_t opts = {
        .max_message_bytes = (size_t)cfg->websocket_message_size_limit,
        .subprotocol = subprotocol,
        .check_utf8 = !pb, /* Protobuf frames carry bytes whatever their opcode */
    };
    node_client_t *c = node_client_new(w, pb ? NODE_WIRE_WS_PB : NODE_WIRE_WS_JSON);
    rt_buf_t v = RT_BUF_INIT;
    /* Debug mode for wscat/Postman (PROTOCOL.md §5): native pings instead of {} frames. */
    c->native_ping = tr_http_req_query_param(req, "cf_ws_frame_ping_pong", &v) == 0 &&
                     rt_str_eq_c(rt_buf_str(&v), "true");
    c->app_ping = !c->native_ping;
    rt_buf_cleanup(&v);
    tr_ws_t *ws = NULL;
    if (tr_ws_upgrade(req, &opts, &node_link_ws_handler, c, &ws) != 0) {
        node_client_disconnect(c, 0, NULL); /* frees the never-connected client */
        return;
    }
    c->tr = ws;
    atomic_fetch_add_explicit(&w->node->metrics.connections_accepted[c->wire], 1,
                              memory_order_relaxed);
    if (atomic_load(&w->node->draining))
        node_client_disconnect(c, NODE_DISCONNECT_SHUTDOWN, NULL);
}

static void handle_ready(node_worker_t *w, tr_http_req_t *req)
{
    if (atomic_load(&w->node->draining)) {
        respond_json(req, 503, "{\"status\":\"unavailable\",\"reason\":\"shutting down\"}");
        return;
    }
    if (!atomic_load(&w->node->engine->broker_ok)) {
        const char *why = atomic_load(&w->node->engine->broker_reason);
        rt_buf_t b = RT_BUF_INIT;
        rt_buf_append_cstr(&b, "{\"status\":\"unavailable\",\"reason\":");
        rt_json_write_string(&b, rt_str_c(why ? why : "broker unavailable"));
        rt_buf_append_byte(&b, '}');
        tr_http_respond(req, 503, "application/json", rt_buf_str(&b), NULL);
        rt_buf_cleanup(&b);
        return;
    }
    respond_json(req, 200, "{}");
}

/* Which endpoints a listener serves (SERVER.md §2.4): the public one has the connection
 * endpoints, the internal one the server API, /health, /ready and /metrics; without a
 * separate internal listener the public one has everything. http_api.external moves the API
 * to the public listener (and off the internal one), as Centrifugo does. */
typedef enum listener_role {
    LISTENER_ALL,
    LISTENER_PUBLIC,
    LISTENER_INTERNAL,
} listener_role_t;

static bool serves_api(const node_config_t *cfg, listener_role_t role)
{
    if (cfg->http_api_disabled)
        return false;
    return role == LISTENER_ALL || (role == LISTENER_PUBLIC) == cfg->http_api_external;
}

/* The server API, /health, /ready and /metrics. Returns false when path is none of them. */
static bool route_internal(node_worker_t *w, tr_http_req_t *req, rt_str_t path,
                           listener_role_t role)
{
    const node_config_t *cfg = w->node->cfg;
    if (serves_api(cfg, role)) {
        rt_str_t prefix = rt_str_c(cfg->http_api_prefix);
        if (rt_str_eq(path, prefix)) {
            node_api_handle_legacy(w, req);
            return true;
        }
        if (path.n > prefix.n + 1 && rt_str_starts_with(path, prefix) && path.p[prefix.n] == '/') {
            node_api_handle(w, req, rt_str_from(path.p + prefix.n + 1, path.n - prefix.n - 1));
            return true;
        }
    }
    if (role == LISTENER_PUBLIC)
        return false;
    if (path_is(path, cfg->health_prefix) || rt_str_eq_c(path, "/health")) {
        respond_json(req, 200, "{}");
        return true;
    }
    if (rt_str_eq_c(path, "/ready")) {
        handle_ready(w, req);
        return true;
    }
    if (cfg->prometheus_enabled && path_is(path, cfg->prometheus_prefix)) {
        node_metrics_render(w, req);
        return true;
    }
    return false;
}

/* The connection endpoints. Returns false when path is none of them. */
static bool route_connections(node_worker_t *w, tr_http_req_t *req, rt_str_t path)
{
    const node_config_t *cfg = w->node->cfg;
    if (!cfg->websocket_disabled && path_is(path, cfg->websocket_prefix)) {
        handle_websocket(w, req);
        return true;
    }
    if (cfg->http_stream_enabled && path_is(path, cfg->http_stream_prefix)) {
        node_handle_http_stream(w, req);
        return true;
    }
    if (cfg->sse_enabled && path_is(path, cfg->sse_prefix)) {
        node_handle_sse(w, req);
        return true;
    }
    if ((cfg->sse_enabled || cfg->http_stream_enabled) && path_is(path, cfg->emulation_prefix)) {
        node_handle_emulation(w, req);
        return true;
    }
    if (cfg->uni_websocket_enabled && path_is(path, cfg->uni_websocket_prefix)) {
        node_handle_uni_websocket(w, req);
        return true;
    }
    if (cfg->uni_sse_enabled && path_is(path, cfg->uni_sse_prefix)) {
        node_handle_uni_sse(w, req);
        return true;
    }
    if (cfg->uni_http_stream_enabled && path_is(path, cfg->uni_http_stream_prefix)) {
        node_handle_uni_http_stream(w, req);
        return true;
    }
    return false;
}

static void route(node_worker_t *w, tr_http_req_t *req, listener_role_t role)
{
    rt_str_t path = tr_http_req_path(req);
    if (role != LISTENER_INTERNAL && route_connections(w, req, path))
        return;
    if (route_internal(w, req, path, role))
        return;
    tr_http_respond_error(req, 404, "not found");
}

static void on_public_request(tr_http_req_t *req, void *ud)
{
    node_worker_t *w = ud;
    route(w, req, w->internal_http ? LISTENER_PUBLIC : LISTENER_ALL);
}

static void on_internal_request(tr_http_req_t *req, void *ud)
{
    route(ud, req, LISTENER_INTERNAL);
}

/* ---------------------------------------------------------------------------------------
 * Lifecycle.
 */

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    node_worker_t *w = t->data;
    double now = ev_now(loop);
    for (node_client_t *c = w->client_list, *next; c; c = next) {
        next = c->next;
        node_client_tick(c, now);
    }
}

#define CLOSE_TICK_MS 50

/* Disconnects the next batch of clients, then ends the loop once every
 * connection and API request is gone. */
static void on_close_window(struct ev_loop *loop, ev_timer *t, int revents)
{
    node_worker_t *w = t->data;
    uint32_t n = 0;
    for (node_client_t *c = w->client_list, *next; c && n < w->close_batch; c = next) {
        next = c->next;
        if (c->state == NODE_CLIENT_CLOSING)
            continue;
        node_client_disconnect(c, NODE_DISCONNECT_SHUTDOWN, NULL);
        n++;
    }
    if (w->nclients == 0 && w->api_reqs.count == 0) {
        if (!w->shares_loop) {
            ev_break(loop, EVBREAK_ALL);
            return;
        }
        /* The loop is the engine's: it keeps running, the server sees `finished`. */
        ev_timer_stop(loop, &w->close_window);
        ev_timer_stop(loop, &w->tick);
        w->finished = true;
    }
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
    node_worker_t *w = a->data;
    if (w->stop_phase)
        return;
    w->stop_phase = 1;
    if (w->http)
        tr_http_server_stop(w->http);
    if (w->internal_http)
        tr_http_server_stop(w->internal_http);
    if (w->grpc)
        tr_grpc_server_stop(w->grpc);
    /* Spread the 3001s over shutdown.disconnect_window: the clients' reconnects reach the
     * other nodes as a ramp rather than a storm. */
    uint64_t ticks = (uint64_t)w->node->cfg->shutdown_disconnect_window_ms / CLOSE_TICK_MS;
    uint64_t batch = ticks ? (w->nclients + ticks - 1) / ticks : UINT32_MAX;
    w->close_batch = batch ? (uint32_t)batch : 1;
    ev_timer_init(&w->close_window, on_close_window, 0, CLOSE_TICK_MS / 1000.0);
    w->close_window.data = w;
    ev_timer_start(loop, &w->close_window);
}

/* Memory after a spike: closed connections free everything, but glibc keeps the freed,
 * scattered chunks of the worker arenas resident (neither the heap-top trim nor
 * trim_threshold releases them). Once many clients have gone, and the churn has calmed for
 * a moment, malloc_trim() hands the free pages back (a few ms, at most every TRIM_DELAY_S). */
#define TRIM_AFTER_CLIENTS 256
#define TRIM_DELAY_S       2.0

static void on_trim(struct ev_loop *loop, ev_timer *t, int revents)
{
    node_worker_t *w = t->data;
    w->gone_since_trim = 0;
    malloc_trim(0);
}

void node_worker_client_gone(node_worker_t *w)
{
    if (++w->gone_since_trim >= TRIM_AFTER_CLIENTS && !ev_is_active(&w->trim)) {
        ev_timer_set(&w->trim, TRIM_DELAY_S, 0.);
        ev_timer_start(w->loop, &w->trim);
    }
}

node_worker_t *node_worker_new(node_t *node, int index, struct ev_loop *shared_loop)
{
    node_worker_t *w = RT_NEW(node_worker_t);
    w->node = node;
    w->index = index;
    w->shares_loop = shared_loop != NULL;
    w->loop = shared_loop ? shared_loop : ev_loop_new(EVFLAG_AUTO);
    RT_ASSERT(w->loop != NULL);
    rt_mailbox_init(&w->mailbox, w->loop, w);
    if (w->shares_loop)
        rt_mailbox_set_owner(&w->mailbox); /* the caller's thread runs shared_loop */
    /* Started here, before any worker thread or listener exists: workers post to each other
     * (the metrics gather visits every worker), and libev creates the loop's eventfd on the
     * first ev_async_start. */
    rt_mailbox_start(&w->mailbox);
    tr_limits_t limits;
    tr_limits_default(&limits);
    limits.max_queue_bytes = (size_t)node->cfg->queue_max_size;
    limits.write_timeout_s = (double)node->cfg->websocket_write_timeout_ms / 1000.0;
    limits.upgraded_nodelay = node->cfg->tcp_nodelay;
    if (limits.max_body_bytes < 1048576)
        limits.max_body_bytes = 1048576; /* API bodies (batch) may exceed client frames */
    tr_loop_init(&w->tl, w->loop, &limits);
    node_map_init(&w->clients);
    node_map_init(&w->hub);
    node_map_init(&w->sessions);
    node_map_init(&w->waits);
    node_map_init(&w->api_reqs);
    rt_buf_init(&w->scratch);
    double tick = (double)node->cfg->presence_update_interval_ms / 1000.0;
    if (tick <= 0 || tick > 25)
        tick = tick <= 0 ? 25 : tick;
    ev_timer_init(&w->tick, on_tick, tick, tick);
    ev_init(&w->trim, on_trim);
    w->trim.data = w;
    w->tick.data = w;
    ev_async_init(&w->stop, on_stop);
    w->stop.data = w;
    /* ev_now before the loop first runs is the creation time: the bucket starts full. */
    int nworkers = node->nworkers > 0 ? node->nworkers : 1;
    node_ratelimit_init(&w->conn_rate, (double)node->cfg->connection_rate_limit / (double)nworkers,
                        ev_now(w->loop));
    return w;
}

static void *worker_main(void *arg)
{
    node_worker_t *w = arg;
    ev_run(w->loop, 0);
    return NULL;
}

/* http_server.internal_port names a listener of its own unless it is the public one. */
static bool internal_listener_separate(const node_config_t *cfg, const char **addr)
{
    *addr = cfg->http_internal_address[0] ? cfg->http_internal_address : cfg->http_address;
    return cfg->http_internal_port != 0 &&
           (cfg->http_internal_port != cfg->http_port || strcmp(*addr, cfg->http_address) != 0);
}

int node_worker_listen(node_worker_t *w)
{
    const node_config_t *cfg = w->node->cfg;
    const char *internal_addr;
    if (internal_listener_separate(cfg, &internal_addr)) {
        tr_http_handler_t ih = {.on_request = on_internal_request, .ud = w};
        int rc =
            tr_http_listen(&w->tl, internal_addr, cfg->http_internal_port, &ih, &w->internal_http);
        if (rc != 0)
            return rc;
    }
    tr_http_handler_t h = {.on_request = on_public_request, .ud = w};
    int rc = tr_http_listen(&w->tl, cfg->http_address, cfg->http_port, &h, &w->http);
    if (rc != 0)
        return rc;
    if (cfg->uni_grpc_enabled && (rc = node_grpc_uni_listen(w)) != 0)
        return rc;
    ev_timer_start(w->loop, &w->tick);
    ev_async_start(w->loop, &w->stop);
    return 0;
}

int node_worker_start(node_worker_t *w)
{
    int rc = node_worker_listen(w);
    if (rc != 0 || w->shares_loop)
        return rc;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return RT_EIO;
    return 0;
}

void node_worker_request_stop(node_worker_t *w)
{
    ev_async_send(w->loop, &w->stop);
}

bool node_worker_try_join(node_worker_t *w)
{
    if (w->shares_loop)
        return w->finished;
    return pthread_tryjoin_np(w->thread, NULL) == 0;
}

void node_worker_join(node_worker_t *w)
{
    if (!w->shares_loop)
        pthread_join(w->thread, NULL);
}

static void free_mail(rt_mail_t *m)
{
    if (m->fn == on_pub_mail)
        broker_pub_unref(((pub_mail_t *)m)->pub);
    else if (m->fn == on_control_mail)
        node_control_unref(((control_mail_t *)m)->control);
    if (node_engine_is_answer(m)) {
        node_op_free((node_op_t *)m);
        return;
    }
    rt_free(m);
}

void node_worker_free(node_worker_t *w)
{
    if (w == NULL)
        return;
    if (w->http)
        tr_http_server_free(w->http);
    tr_http_server_free(w->internal_http); /* NULL is a no-op */
    tr_grpc_server_free(w->grpc);
    rt_mailbox_stop(&w->mailbox);
    rt_mailbox_cleanup(&w->mailbox, free_mail);
    ev_timer_stop(w->loop, &w->tick);
    ev_timer_stop(w->loop, &w->trim);
    ev_timer_stop(w->loop, &w->close_window);
    ev_async_stop(w->loop, &w->stop);
    tr_loop_cleanup(&w->tl);
    node_map_cleanup(&w->clients);
    node_map_cleanup(&w->hub);
    node_map_cleanup(&w->sessions);
    node_map_cleanup(&w->waits);
    node_map_cleanup(&w->api_reqs);
    rt_buf_cleanup(&w->scratch);
    if (!w->shares_loop)
        ev_loop_destroy(w->loop);
    rt_free(w);
}

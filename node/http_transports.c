/* HTTP entry points of every transport but the bidirectional WebSocket (PROTOCOL.md §10.3,
 * §10.5-10.7, §10.9): HTTP-streaming and SSE sessions with their /emulation half, and the
 * unidirectional WebSocket, SSE and HTTP-streaming endpoints. Each request is checked
 * (method, size, origin), becomes a session on the right wire, and hands its first frame
 * or connect request to the session. Worker thread only. */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "node/base/log.h"
#include "node/base/rand.h"
#include "node/codes.h"
#include "node/node_internal.h"
#include "node/ratelimit.h"

/* "Connection: close": the connection ends with the stream, so a client must not put it back
 * in its keep-alive pool (undici did, and its next request failed with "other side closed"). */
#define STREAM_HEADERS                                                                             \
    "Cache-Control: private, no-cache, no-store, must-revalidate, max-age=0\r\n"                   \
    "Pragma: no-cache\r\nExpire: 0\r\nX-Accel-Buffering: no\r\nConnection: close\r\n"
#define SSE_CONTENT_TYPE "Content-Type: text/event-stream; charset=utf-8\r\n"

/* ---------------------------------------------------------------------------------------
 * Origin checks and CORS (§10.9).
 */

bool node_origin_allowed(const node_config_t *cfg, const tr_http_req_t *req)
{
    rt_str_t origin = tr_http_req_header(req, "Origin");
    if (origin.p == NULL)
        return true;
    char lower[512];
    if (origin.n >= sizeof(lower))
        return false;
    for (size_t i = 0; i < origin.n; i++) {
        char ch = origin.p[i];
        lower[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    lower[origin.n] = '\0';
    for (size_t i = 0; i < cfg->allowed_origins_count; i++) {
        const char *pattern = cfg->allowed_origins[i];
        if (strcmp(pattern, "*") == 0 || fnmatch(pattern, lower, 0) == 0)
            return true;
    }
    return false;
}

void node_cors_headers(const node_config_t *cfg, const tr_http_req_t *req, rt_buf_t *out)
{
    rt_str_t origin = tr_http_req_header(req, "Origin");
    if (origin.p == NULL || !node_origin_allowed(cfg, req))
        return;
    rt_buf_printf(out, "Access-Control-Allow-Origin: %.*s\r\n", (int)origin.n, origin.p);
    rt_buf_append_cstr(out, "Access-Control-Allow-Credentials: true\r\n");
    rt_str_t want = tr_http_req_header(req, "Access-Control-Request-Headers");
    if (want.p && want.n && !rt_str_eq_c(want, "null"))
        rt_buf_printf(out, "Access-Control-Allow-Headers: %.*s\r\n", (int)want.n, want.p);
}

static void respond_preflight(const node_config_t *cfg, tr_http_req_t *req)
{
    rt_buf_t h = RT_BUF_INIT;
    node_cors_headers(cfg, req, &h);
    rt_buf_append_cstr(&h, "Access-Control-Max-Age: 300\r\n"
                           "Access-Control-Allow-Methods: POST, OPTIONS\r\n");
    rt_buf_append_byte(&h, '\0');
    tr_http_respond(req, 204, NULL, RT_STR_NULL, (const char *)h.p);
    rt_buf_cleanup(&h);
}

/* Answers with a JSON error carrying the CORS headers, so a browser can read it. */
static void respond_error(const node_config_t *cfg, tr_http_req_t *req, int status,
                          const char *message)
{
    rt_buf_t h = RT_BUF_INIT, body = RT_BUF_INIT;
    node_cors_headers(cfg, req, &h);
    rt_buf_append_byte(&h, '\0');
    rt_buf_append_cstr(&body, "{\"error\":");
    rt_json_write_string(&body, rt_str_c(message));
    rt_buf_append_byte(&body, '}');
    tr_http_respond(req, status, "application/json", rt_buf_str(&body), (const char *)h.p);
    rt_buf_cleanup(&h);
    rt_buf_cleanup(&body);
}

static bool method_is(const tr_http_req_t *req, const char *m)
{
    return rt_str_eq_c(tr_http_req_method(req), m);
}

static bool content_type_is(const tr_http_req_t *req, const char *type)
{
    rt_str_t ct = tr_http_req_header(req, "Content-Type");
    size_t n = strlen(type);
    return ct.p && ct.n >= n && strncasecmp(ct.p, type, n) == 0;
}

/* ---------------------------------------------------------------------------------------
 * Sessions on HTTP streams.
 */

/* client.connection_limit against the node-wide count of clients (node_client_new() and
 * client_free() keep it), so a worker never refuses while the node has room, however the
 * kernel spread the connections over the SO_REUSEPORT listeners. The check runs before the
 * client exists: two workers admitting at the same instant can each pass it at limit - 1,
 * as Centrifugo's own check (hub count >= limit) can. */
bool node_connection_limit_reached(node_worker_t *w)
{
    const node_config_t *cfg = w->node->cfg;
    return cfg->connection_limit > 0 &&
           (int64_t)atomic_load(&w->node->nclients) >= (int64_t)cfg->connection_limit;
}

/* Session ids name their worker ("<32 hex>.<worker>") so an /emulation request reaching
 * another worker of this node goes straight to the right one. */
static void new_session_id(node_worker_t *w, char *out, size_t n)
{
    uint64_t a = rt_random_u64(), b = rt_random_u64();
    snprintf(out, n, "%016llx%016llx.%d", (unsigned long long)a, (unsigned long long)b, w->index);
}

int node_session_worker(rt_str_t session, int nworkers)
{
    const char *dot = memrchr(session.p, '.', session.n);
    if (dot == NULL || dot + 1 == session.p + session.n || session.p + session.n - dot > 4)
        return -1;
    int k = 0;
    for (const char *p = dot + 1; p < session.p + session.n; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        k = k * 10 + (*p - '0');
    }
    return k < nworkers ? k : -1;
}

/* Starts the streaming response and the session. Returns the client, or NULL when the
 * request was answered otherwise (req consumed either way). */
static node_client_t *start_stream_session(node_worker_t *w, tr_http_req_t *req, node_wire_t wire)
{
    const node_config_t *cfg = w->node->cfg;
    if (node_connection_limit_reached(w)) {
        respond_error(cfg, req, 503, "connection limit reached");
        return NULL;
    }
    if (node_connection_rate_limited(w)) {
        respond_error(cfg, req, 503, "connection rate limit reached");
        return NULL;
    }
    rt_buf_t h = RT_BUF_INIT;
    rt_buf_append_cstr(&h, STREAM_HEADERS);
    if (wire == NODE_WIRE_SSE || wire == NODE_WIRE_UNI_SSE)
        rt_buf_append_cstr(&h, SSE_CONTENT_TYPE);
    node_cors_headers(cfg, req, &h);
    rt_buf_append_byte(&h, '\0');
    node_client_t *c = node_client_new(w, wire);
    tr_stream_t *st = NULL;
    int rc = tr_stream_start(req, 200, (const char *)h.p, &node_link_stream_handler, c, &st);
    rt_buf_cleanup(&h);
    if (rc != 0) {
        node_client_disconnect(c, 0, NULL); /* frees the never-connected client */
        return NULL;
    }
    c->tr = st;
    new_session_id(w, c->session, sizeof(c->session));
    if (node_wire_emulated(wire))
        node_map_put(&w->sessions, rt_str_c(c->session), c);
    atomic_fetch_add_explicit(&w->node->metrics.connections_accepted[c->wire], 1,
                              memory_order_relaxed);
    if (wire == NODE_WIRE_SSE || wire == NODE_WIRE_UNI_SSE) {
        /* The reference opens SSE bodies with an empty line, flushed at once. */
        rt_bytes_t *first = rt_bytes_copy("2\r\n\r\n\r\n", 7);
        tr_stream_send(st, first);
        rt_bytes_unref(first);
    }
    if (atomic_load(&w->node->draining)) {
        node_client_disconnect(c, NODE_DISCONNECT_SHUTDOWN, NULL);
        return NULL;
    }
    return c;
}

/* Body (POST) or the cf_connect query parameter (GET): the first frame / connect request.
 * Returns 0, or answers req and returns an error. */
static int request_payload(const node_config_t *cfg, tr_http_req_t *req, int64_t max, bool get_ok,
                           bool required, rt_buf_t *out)
{
    if (method_is(req, "GET") && get_ok) {
        if (tr_http_req_query_param(req, "cf_connect", out) != 0 && required) {
            respond_error(cfg, req, 400, "cf_connect query parameter required");
            return RT_EINVAL;
        }
    } else {
        rt_str_t body = tr_http_req_body(req);
        rt_buf_append(out, body.p, body.n);
    }
    if ((int64_t)out->len > max) {
        respond_error(cfg, req, 413, "request body too large");
        return RT_ELIMIT;
    }
    return 0;
}

void node_handle_http_stream(node_worker_t *w, tr_http_req_t *req)
{
    const node_config_t *cfg = w->node->cfg;
    if (method_is(req, "OPTIONS")) {
        respond_preflight(cfg, req);
        return;
    }
    if (!method_is(req, "POST")) {
        respond_error(cfg, req, 405, "method not allowed");
        return;
    }
    rt_buf_t frame = RT_BUF_INIT;
    if (request_payload(cfg, req, cfg->http_stream_max_body, false, false, &frame) == 0) {
        bool pb = content_type_is(req, "application/octet-stream");
        node_client_t *c =
            start_stream_session(w, req, pb ? NODE_WIRE_STREAM_PB : NODE_WIRE_STREAM_JSON);
        if (c)
            node_client_on_frame(c, (const uint8_t *)frame.p, frame.len);
    }
    rt_buf_cleanup(&frame);
}

void node_handle_sse(node_worker_t *w, tr_http_req_t *req)
{
    const node_config_t *cfg = w->node->cfg;
    if (!method_is(req, "GET") && !method_is(req, "POST")) {
        respond_error(cfg, req, 405, "method not allowed");
        return;
    }
    rt_buf_t frame = RT_BUF_INIT;
    if (request_payload(cfg, req, cfg->sse_max_body, true, true, &frame) == 0) {
        node_client_t *c = start_stream_session(w, req, NODE_WIRE_SSE);
        if (c)
            node_client_on_frame(c, (const uint8_t *)frame.p, frame.len);
    }
    rt_buf_cleanup(&frame);
}

/* ---------------------------------------------------------------------------------------
 * Unidirectional.
 */

/* A connect request given before the session starts must decode, else HTTP 400. */
static bool connect_request_valid(const rt_buf_t *p)
{
    node_json_reader_t r;
    node_json_reader_init(&r, NULL, 0);
    node_cmd_t cmd;
    bool ok = node_json_decode_connect_request(&r, (const uint8_t *)p->p, p->len, &cmd) == 0;
    node_json_reader_cleanup(&r);
    return ok;
}

static void handle_uni_stream(node_worker_t *w, tr_http_req_t *req, node_wire_t wire)
{
    const node_config_t *cfg = w->node->cfg;
    bool sse = wire == NODE_WIRE_UNI_SSE;
    if (!sse && method_is(req, "OPTIONS")) {
        respond_preflight(cfg, req);
        return;
    }
    if (!method_is(req, "POST") && !(sse && method_is(req, "GET"))) {
        respond_error(cfg, req, 405, "method not allowed");
        return;
    }
    int64_t max = sse ? cfg->uni_sse_max_body : cfg->uni_http_stream_max_body;
    rt_buf_t payload = RT_BUF_INIT;
    if (request_payload(cfg, req, max, sse, false, &payload) == 0) {
        if (!connect_request_valid(&payload)) {
            respond_error(cfg, req, 400, "malformed connect request");
        } else {
            node_client_t *c = start_stream_session(w, req, wire);
            if (c)
                node_client_uni_connect_json(c, (const uint8_t *)payload.p, payload.len);
        }
    }
    rt_buf_cleanup(&payload);
}

void node_handle_uni_sse(node_worker_t *w, tr_http_req_t *req)
{
    handle_uni_stream(w, req, NODE_WIRE_UNI_SSE);
}

void node_handle_uni_http_stream(node_worker_t *w, tr_http_req_t *req)
{
    handle_uni_stream(w, req, NODE_WIRE_UNI_STREAM);
}

/* Uni WebSocket: the connect request is in cf_connect or the first message (the session
 * decodes it, see node_client_on_frame). */
bool node_websocket_admit(node_worker_t *w, tr_http_req_t *req)
{
    if (!tr_ws_is_upgrade(req)) {
        tr_http_respond_error(req, 400, "websocket upgrade required");
        return false;
    }
    if (!node_origin_allowed(w->node->cfg, req)) {
        tr_http_respond_error(req, 403, "origin not allowed");
        return false;
    }
    if (node_connection_limit_reached(w)) {
        tr_http_respond_error(req, 503, "connection limit reached");
        return false;
    }
    if (node_connection_rate_limited(w)) {
        tr_http_respond_error(req, 503, "connection rate limit reached");
        return false;
    }
    return true;
}

void node_handle_uni_websocket(node_worker_t *w, tr_http_req_t *req)
{
    const node_config_t *cfg = w->node->cfg;
    if (!node_websocket_admit(w, req))
        return;
    rt_buf_t connect = RT_BUF_INIT;
    bool have_connect = tr_http_req_query_param(req, "cf_connect", &connect) == 0;
    if (have_connect && !connect_request_valid(&connect)) {
        rt_buf_cleanup(&connect);
        tr_http_respond_error(req, 400, "malformed cf_connect");
        return;
    }
    tr_ws_opts_t opts = {
        .max_message_bytes = (size_t)cfg->uni_websocket_message_size_limit,
        .check_utf8 = true,
    };
    node_client_t *c = node_client_new(w, NODE_WIRE_UNI_WS);
    c->native_ping = true; /* in addition to {} pushes (§10.5) */
    tr_ws_t *ws = NULL;
    if (tr_ws_upgrade(req, &opts, &node_link_ws_handler, c, &ws) != 0) {
        rt_buf_cleanup(&connect);
        node_client_disconnect(c, 0, NULL);
        return;
    }
    c->tr = ws;
    new_session_id(w, c->session, sizeof(c->session));
    atomic_fetch_add_explicit(&w->node->metrics.connections_accepted[c->wire], 1,
                              memory_order_relaxed);
    if (atomic_load(&w->node->draining))
        node_client_disconnect(c, NODE_DISCONNECT_SHUTDOWN, NULL);
    else if (have_connect)
        node_client_uni_connect_json(c, (const uint8_t *)connect.p, connect.len);
    rt_buf_cleanup(&connect);
}

/* ---------------------------------------------------------------------------------------
 * /emulation (§10.3).
 */

int node_emulation_decode_json(rt_str_t body, rt_buf_t *node, rt_buf_t *session, rt_buf_t *data)
{
    rt_json_doc_t doc;
    if (rt_json_parse(&doc, body.p, body.n, 0) != 0)
        return RT_EPROTO;
    int rc = doc.root->type == RT_JSON_OBJECT ? 0 : RT_EPROTO;
    for (const rt_json_t *m = doc.root->child; rc == 0 && m; m = m->next) {
        rt_buf_t key = RT_BUF_INIT;
        rt_json_get_key(m, &key);
        rt_str_t k = rt_buf_str(&key);
        rt_buf_t *dst = rt_str_eq_c(k, "session") ? session
                        : rt_str_eq_c(k, "node")  ? node
                        : rt_str_eq_c(k, "data")  ? data
                                                  : NULL;
        if (dst && rt_json_get_string(m, dst) != 0)
            rc = RT_EPROTO;
        rt_buf_cleanup(&key);
    }
    rt_json_doc_cleanup(&doc);
    return rc;
}

void node_handle_emulation(node_worker_t *w, tr_http_req_t *req)
{
    const node_config_t *cfg = w->node->cfg;
    if (method_is(req, "OPTIONS")) {
        respond_preflight(cfg, req);
        return;
    }
    if (!method_is(req, "POST")) {
        respond_error(cfg, req, 405, "method not allowed");
        return;
    }
    rt_str_t body = tr_http_req_body(req);
    if ((int64_t)body.n > cfg->emulation_max_body) {
        respond_error(cfg, req, 413, "request body too large");
        return;
    }
    rt_buf_t node = RT_BUF_INIT, session = RT_BUF_INIT, data = RT_BUF_INIT;
    int rc;
    if (content_type_is(req, "application/octet-stream")) {
        rt_str_t n, s, d;
        rc = node_pb_decode_emulation((const uint8_t *)body.p, body.n, &n, &s, &d);
        if (rc == 0) {
            rt_buf_append(&node, n.p, n.n);
            rt_buf_append(&session, s.p, s.n);
            rt_buf_append(&data, d.p, d.n);
        }
    } else {
        rc = node_emulation_decode_json(body, &node, &session, &data);
    }
    if (rc != 0 || session.len == 0) {
        respond_error(cfg, req, 400, "malformed emulation request");
    } else {
        node_emulation_route(w, req, rt_buf_str(&node), rt_buf_str(&session), rt_buf_str(&data));
    }
    rt_buf_cleanup(&node);
    rt_buf_cleanup(&session);
    rt_buf_cleanup(&data);
}

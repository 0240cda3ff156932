/* Server API request bodies through a real node: one worker and the engine on two libev
 * loops driven from this thread, the request over a socketpair adopted by the worker's HTTP
 * server. First byte b: b % 15 picks the path (see paths[]); bit 0 of b / 15 asks for the
 * transport error mode, bit 1 first connects a WebSocket client (anonymous, insecure,
 * subscribed to "news") so control commands, fan-out, presence and channels find a live
 * connection. The rest is the body. The response must be complete HTTP/1.1 with an
 * expected status and a JSON body of the expected shape; afterwards no connection, API
 * request or client may remain on the worker. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "node/base/alloc.h"
#include "node/base/json.h"
#include "node/base/log.h"
#include "node/base/rand.h"
#include "node/base/time.h"
#include "node/config.h"
#include "node/node_internal.h"
#include "transports/http_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY     65536
#define MAX_ROUNDS   2000
#define RESPONSE_CAP (1u << 22)

static const char *const paths[] = {
    "/api/publish",     "/api/broadcast",      "/api/batch",     "/api",
    "/api/history",     "/api/presence",       "/api/subscribe", "/api/disconnect",
    "/api/refresh",     "/api/channels",       "/api/info",      "/api/history_remove",
    "/api/unsubscribe", "/api/presence_stats", "/api/rpc",
};
#define NPATHS (sizeof(paths) / sizeof(paths[0]))

static struct {
    node_config_t cfg;
    node_t node;
    node_worker_t *workers[1];
    struct ev_loop *engine_loop;
    node_worker_t *w;
    bool verbose; /* FUZZ_API_VERBOSE set: print every response (seed debugging) */
} g;

/* Stops the run with a message: libFuzzer reports abort() as a crash with the input. */
static void fail(const char *what, const char *resp, size_t n)
{
    fprintf(stderr, "fuzz_api: %s\n%.*s\n", what, (int)(n > 2000 ? 2000 : n), resp ? resp : "");
    abort();
}

static void pump(void)
{
    ev_run(g.w->loop, EVRUN_NOWAIT);
    ev_run(g.engine_loop, EVRUN_NOWAIT);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rt_log_set_level(RT_LOG_NONE);
    g.verbose = getenv("FUZZ_API_VERBOSE") != NULL;
    node_config_t *cfg = &g.cfg;
    node_config_defaults(cfg);
    rt_free(cfg->http_api_key);
    cfg->http_api_key = rt_strdup("k");
    rt_free(cfg->http_address);
    cfg->http_address = rt_strdup("127.0.0.1");
    cfg->http_port = 0; /* the listener is unused: requests come over socketpairs */
    cfg->client_insecure = true;
    cfg->without_namespace.history_size = 10;
    cfg->without_namespace.history_ttl_ms = 60000;
    cfg->without_namespace.history_meta_ttl_ms = cfg->channel_history_meta_ttl_ms;
    cfg->without_namespace.presence = true;
    cfg->without_namespace.join_leave = true;
    cfg->without_namespace.force_push_join_leave = true;

    g.node.cfg = cfg;
    rt_uuid4(g.node.uid);
    g.node.start_ms = rt_time_ms();
    g.node.nworkers = 1;
    g.node.workers = g.workers;
    g.engine_loop = ev_loop_new(EVFLAG_AUTO);
    g.node.engine = node_engine_new(&g.node, g.engine_loop);
    g.workers[0] = node_worker_new(&g.node, 0, NULL);
    g.w = g.workers[0];
    if (node_worker_listen(g.w) != 0)
        fail("node_worker_listen failed", NULL, 0);
    rt_buf_t err = RT_BUF_INIT;
    if (node_jwt_verifier_new(&cfg->token, false, &g.node.verifier, &err) != 0)
        fail("node_jwt_verifier_new failed", (const char *)err.p, err.len);
    rt_buf_cleanup(&err);
    g.node.sub_verifier = g.node.verifier;
    return 0;
}

/* A socketpair whose server end the worker's HTTP server adopts; returns the client end
 * (non-blocking). */
static int open_conn(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        fail("socketpair failed", NULL, 0);
    tr__http_server_adopt(g.w->http, sv[0], "fuzz");
    return sv[1];
}

/* Writes all of p[0..n) to fd, pumping the loops while the socket buffer is full. */
static void send_all(int fd, const char *p, size_t n)
{
    int rounds = 0;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL); /* EPIPE, not SIGPIPE */
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (++rounds > MAX_ROUNDS)
            fail("request write stalled", NULL, 0);
        pump();
    }
}

/* Reads what is there; returns false on EOF or error. */
static bool read_some(int fd, rt_buf_t *into)
{
    char tmp[16384];
    for (;;) {
        ssize_t k = read(fd, tmp, sizeof(tmp));
        if (k == 0)
            return false;
        if (k < 0)
            return true; /* EAGAIN; a reset shows up as EOF on the next read */
        if (into)
            rt_buf_append(into, tmp, (size_t)k);
        if (into && into->len > RESPONSE_CAP)
            fail("response too large", (const char *)into->p, into->len);
    }
}

/* ---------------------------------------------------------------------------------------
 * Optional WebSocket client.
 */

static size_t client_frame(uint8_t *out, const char *payload)
{
    size_t n = strlen(payload);
    static const uint8_t mask[4] = {1, 2, 3, 4};
    out[0] = 0x81;
    out[1] = (uint8_t)(0x80 | n);
    memcpy(out + 2, mask, 4);
    for (size_t i = 0; i < n; i++)
        out[6 + i] = (uint8_t)payload[i] ^ mask[i % 4];
    return 6 + n;
}

static bool client_ready(void)
{
    node_client_t *c = g.w->client_list;
    return c && c->state == NODE_CLIENT_CONNECTED && c->nsubs == 1 &&
           c->subs->state == NODE_SUB_SUBSCRIBED;
}

static int open_ws(void)
{
    int fd = open_conn();
    static const char hs[] = "GET /connection/websocket HTTP/1.1\r\nHost: x\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\n\r\n";
    uint8_t buf[512];
    memcpy(buf, hs, sizeof(hs) - 1);
    size_t n = sizeof(hs) - 1;
    n += client_frame(buf + n,
                      "{\"connect\":{},\"id\":1}\n{\"subscribe\":{\"channel\":\"news\"},\"id\":2}");
    send_all(fd, (const char *)buf, n);
    for (int i = 0; i < MAX_ROUNDS && !client_ready(); i++) {
        pump();
        read_some(fd, NULL);
    }
    if (!client_ready())
        fail("WebSocket client did not connect and subscribe", NULL, 0);
    return fd;
}

/* ---------------------------------------------------------------------------------------
 * Response checks.
 */

/* Index just past the header block, or 0 while incomplete. */
static size_t head_end(const rt_buf_t *b)
{
    const char *p = (const char *)b->p;
    for (size_t i = 0; i + 3 < b->len; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return i + 4;
    }
    return 0;
}

static long content_length(const char *head, size_t n)
{
    static const char key[] = "\r\ncontent-length:";
    for (size_t i = 0; i + sizeof(key) - 1 <= n; i++) {
        if (strncasecmp(head + i, key, sizeof(key) - 1) == 0)
            return strtol(head + i + sizeof(key) - 1, NULL, 10);
    }
    return -1;
}

static bool json_ok(const char *p, size_t n, rt_json_type_t want)
{
    rt_json_doc_t doc;
    /* Results embed request JSON (data, info) a few levels deeper than it was. */
    bool ok = rt_json_parse(&doc, p, n, RT_JSON_MAX_DEPTH + 16) == 0 && doc.root->type == want;
    rt_json_doc_cleanup(&doc);
    return ok;
}

static void check_body(const char *path, int status, const char *body, size_t n)
{
    if (status != 200) {
        if (!json_ok(body, n, RT_JSON_OBJECT))
            fail("error response body is not a JSON object", body, n);
        return;
    }
    if (strcmp(path, "/api") != 0) {
        if (!json_ok(body, n, RT_JSON_OBJECT))
            fail("response body is not a JSON object", body, n);
        return;
    }
    /* Legacy: one object per command, joined by "\n" (JSON strings never hold a raw LF). */
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && body[i] != '\n')
            continue;
        if (!json_ok(body + start, i - start, RT_JSON_OBJECT))
            fail("legacy reply line is not a JSON object", body, n);
        start = i + 1;
    }
}

static void check_response(const char *path, bool transport, const rt_buf_t *r, size_t hend)
{
    const char *p = (const char *)r->p;
    if (hend < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0)
        fail("not an HTTP/1.1 response", p, r->len);
    int status = atoi(p + 9);
    bool ok = status == 200 || status == 400 || status == 404 || status == 413;
    /* Transport mode maps 112 to 416 and internal/other codes to 500 (SERVER.md §1.3). */
    if (transport)
        ok = ok || status == 416 || status == 500;
    if (!ok)
        fail("unexpected status", p, r->len);
    check_body(path, status, p + hend, r->len - hend);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_BODY)
        return 0;
    const char *path = paths[data[0] % NPATHS];
    unsigned flags = data[0] / NPATHS;
    bool transport = flags & 1;
    bool with_ws = flags & 2;
    const char *body = (const char *)data + 1;
    size_t blen = size - 1;

    int ws = with_ws ? open_ws() : -1;

    rt_buf_t req = RT_BUF_INIT;
    rt_buf_printf(&req,
                  "POST %s HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\n%sContent-Length: %zu\r\n\r\n",
                  path, transport ? "X-Centrifugo-Error-Mode: transport\r\n" : "", blen);
    rt_buf_append(&req, body, blen);
    int fd = open_conn();
    send_all(fd, (const char *)req.p, req.len);
    rt_buf_cleanup(&req);

    rt_buf_t resp = RT_BUF_INIT;
    size_t hend = 0;
    bool done = false;
    for (int i = 0; i < MAX_ROUNDS && !done; i++) {
        pump();
        if (ws >= 0 && !read_some(ws, NULL)) {
            close(ws); /* disconnected by the request: fine */
            ws = -1;
        }
        bool open = read_some(fd, &resp);
        hend = hend ? hend : head_end(&resp);
        if (hend) {
            long cl = content_length((const char *)resp.p, hend);
            if (cl < 0)
                fail("response without Content-Length", (const char *)resp.p, resp.len);
            done = resp.len >= hend + (size_t)cl;
            if (resp.len > hend + (size_t)cl)
                fail("bytes after the response", (const char *)resp.p, resp.len);
        }
        if (!open && !done)
            fail("connection closed before a complete response", (const char *)resp.p, resp.len);
    }
    if (!done)
        fail("no complete response", (const char *)resp.p, resp.len);
    check_response(path, transport, &resp, hend);
    if (g.verbose)
        fprintf(stderr, "%s -> %.*s\n", path, (int)resp.len, (const char *)resp.p);
    rt_buf_cleanup(&resp);

    close(fd);
    if (ws >= 0)
        close(ws);
    for (int i = 0; i < MAX_ROUNDS &&
                    (g.w->tl.stats.conns_open > 0 || g.w->nclients > 0 || g.w->api_reqs.count > 0);
         i++)
        pump();
    if (g.w->tl.stats.conns_open > 0 || g.w->nclients > 0 || g.w->api_reqs.count > 0)
        fail("connections or API requests left on the worker", NULL, 0);
    return 0;
}

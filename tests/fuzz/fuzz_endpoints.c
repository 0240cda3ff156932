/* Raw client bytes into a real node's HTTP server: the handshakes of every client endpoint
 * (WebSocket upgrade with Origin, subprotocol and format checks, SSE and HTTP-streaming
 * emulation, unidirectional WebSocket/SSE/HTTP-streaming connect requests, /emulation,
 * /health, /ready, /metrics) and whatever follows them on the same connection. One worker
 * and the engine run on two libev loops driven from this thread; the connection is a
 * socketpair adopted by the worker's HTTP server. Anonymous connects are allowed
 * (client.insecure), so sessions reach subscribe, publish, presence and history.
 *
 * First byte b: bits 0-2 the write size (0: all at once, k: 1 << k bytes per loop turn, so
 * every parser sees partial input), bit 3 half-closes our side after the input (otherwise
 * the connection stays open for a few turns, then closes), bit 4 reads nothing until the
 * input is written (output piles up against the queue limits). The rest is the bytes.
 *
 * Whatever the server sends must start with an HTTP/1.1 status line; after the client
 * closes, no connection, client, session or waiting request may remain on the worker. */
#include <errno.h>
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
#include "node/base/log.h"
#include "node/base/rand.h"
#include "node/base/time.h"
#include "node/config.h"
#include "node/node_internal.h"
#include "transports/http_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT  65536
#define MAX_ROUNDS 2000
/* Turns the connection stays open after the input when we do not half-close. */
#define LINGER_ROUNDS 8

static struct {
    node_config_t cfg;
    node_t node;
    node_worker_t *workers[1];
    struct ev_loop *engine_loop;
    node_worker_t *w;
    bool verbose; /* FUZZ_ENDPOINTS_VERBOSE set: print what the server sent (seed debugging) */
} g;

/* Stops the run with a message: libFuzzer reports abort() as a crash with the input. */
static void fail(const char *what, const uint8_t *resp, size_t n)
{
    fprintf(stderr, "fuzz_endpoints: %s\n%.*s\n", what, (int)(n > 2000 ? 2000 : n),
            resp ? (const char *)resp : "");
    abort();
}

static void pump(void)
{
    ev_run(g.w->loop, EVRUN_NOWAIT);
    ev_run(g.engine_loop, EVRUN_NOWAIT);
}

/* Every client endpoint on, browser origins limited to two patterns so both the allowed
 * and the refused paths of the Origin check run. */
static void configure(node_config_t *cfg)
{
    node_config_defaults(cfg);
    rt_free(cfg->http_address);
    cfg->http_address = rt_strdup("127.0.0.1");
    cfg->http_port = 0; /* the listener is unused: requests come over socketpairs */
    cfg->client_insecure = true;
    cfg->http_stream_enabled = true;
    cfg->sse_enabled = true;
    cfg->uni_websocket_enabled = true;
    cfg->uni_sse_enabled = true;
    cfg->uni_http_stream_enabled = true;
    cfg->prometheus_enabled = true;
    cfg->health_enabled = true;
    rt_free(cfg->allowed_origins);
    cfg->allowed_origins = rt_calloc(3, sizeof(char *));
    cfg->allowed_origins[0] = rt_strdup("https://ok.example.com");
    cfg->allowed_origins[1] = rt_strdup("http://*.test");
    cfg->allowed_origins_count = 2;
    cfg->without_namespace.history_size = 10;
    cfg->without_namespace.history_ttl_ms = 60000;
    cfg->without_namespace.history_meta_ttl_ms = cfg->channel_history_meta_ttl_ms;
    cfg->without_namespace.presence = true;
    cfg->without_namespace.join_leave = true;
    cfg->without_namespace.allow_publish_for_client = true;
    cfg->without_namespace.allow_subscribe_for_client = true;
    cfg->without_namespace.allow_history_for_client = true;
    cfg->without_namespace.allow_presence_for_client = true;
    cfg->without_namespace.allow_subscribe_for_anonymous = true;
    cfg->without_namespace.allow_publish_for_anonymous = true;
    cfg->without_namespace.allow_history_for_anonymous = true;
    cfg->without_namespace.allow_presence_for_anonymous = true;
    cfg->without_namespace.allow_recovery = true;
    cfg->without_namespace.allow_positioning = true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    rt_log_set_level(RT_LOG_NONE);
    g.verbose = getenv("FUZZ_ENDPOINTS_VERBOSE") != NULL;
    configure(&g.cfg);
    g.node.cfg = &g.cfg;
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
    if (node_jwt_verifier_new(&g.cfg.token, false, &g.node.verifier, &err) != 0)
        fail("node_jwt_verifier_new failed", err.p, err.len);
    rt_buf_cleanup(&err);
    g.node.sub_verifier = g.node.verifier;
    return 0;
}

/* Reads what is there into out (bytes past cap are dropped, only the start is checked);
 * returns false on EOF or a reset. */
static bool drain(int fd, rt_buf_t *out, size_t cap)
{
    uint8_t tmp[16384];
    for (;;) {
        ssize_t k = read(fd, tmp, sizeof(tmp));
        if (k == 0)
            return false;
        if (k < 0)
            return errno == EAGAIN || errno == EINTR;
        if (out->len < cap)
            rt_buf_append(out, tmp, (size_t)k < cap - out->len ? (size_t)k : cap - out->len);
    }
}

static bool worker_empty(void)
{
    return g.w->tl.stats.conns_open == 0 && g.w->nclients == 0 && g.w->sessions.count == 0 &&
           g.w->waits.count == 0 && g.w->api_reqs.count == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_INPUT)
        return 0;
    unsigned bits = data[0] & 7;
    size_t step = bits ? (size_t)1 << bits : MAX_INPUT;
    bool half_close = data[0] & 8;
    bool lazy_reader = data[0] & 16;
    const uint8_t *in = data + 1;
    size_t n = size - 1;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        fail("socketpair failed", NULL, 0);
    tr__http_server_adopt(g.w->http, sv[0], "fuzz");
    int fd = sv[1];

    rt_buf_t resp = RT_BUF_INIT;
    size_t off = 0;
    bool open = true;
    int linger = 0;
    for (int i = 0; i < MAX_ROUNDS && open; i++) {
        if (off < n) {
            size_t want = n - off < step ? n - off : step;
            /* MSG_NOSIGNAL: the server may have closed already (EPIPE, not SIGPIPE). */
            ssize_t k = send(fd, in + off, want, MSG_NOSIGNAL);
            if (k > 0)
                off += (size_t)k;
            else if (k < 0 && errno != EAGAIN)
                break; /* the server closed: nothing more to say */
            if (off == n && half_close)
                shutdown(fd, SHUT_WR);
        } else if (!half_close && ++linger > LINGER_ROUNDS) {
            break;
        }
        pump();
        if (!lazy_reader || off == n)
            open = drain(fd, &resp, g.verbose ? 65536 : 64);
    }
    if (resp.len > 0 && (resp.len < 9 || memcmp(resp.p, "HTTP/1.1 ", 9) != 0))
        fail("the first bytes are not an HTTP/1.1 status line", resp.p, resp.len);
    if (g.verbose)
        fprintf(stderr, "---\n%.*s\n", (int)resp.len, (const char *)resp.p);
    rt_buf_cleanup(&resp);

    close(fd);
    for (int i = 0; i < MAX_ROUNDS && !worker_empty(); i++)
        pump();
    if (!worker_empty())
        fail("connections, clients or requests left on the worker after the client closed", NULL,
             0);
    return 0;
}

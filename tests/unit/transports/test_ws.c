#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "node/base/alloc.h"
#include "node/base/err.h"
#include "tr_test.h"
#include "transports/http_internal.h"
#include "transports/ws.h"
#include "transports/ws_internal.h"

#define MAX_CONNS 16

typedef struct wx {
    tt_env_t env;
    tr_http_server_t *srv;
    tr_ws_opts_t opts;
    bool echo;
    tr_ws_t *ws[MAX_CONNS];
    int nws;
    int closes;
    int close_code;
    int pongs;
    char msgs[8192]; /* "t:<text>;" or "b:<len>;" per message */
} wx_t;

static void on_message(tr_ws_t *ws, const uint8_t *data, size_t len, bool binary, void *ud)
{
    wx_t *x = ud;
    size_t at = strlen(x->msgs);
    if (binary)
        snprintf(x->msgs + at, sizeof(x->msgs) - at, "b:%zu;", len);
    else
        snprintf(x->msgs + at, sizeof(x->msgs) - at, "t:%.*s;", (int)len, (const char *)data);
    if (x->echo) {
        rt_bytes_t *f = tr_ws_frame_new(binary ? TR_WS_OP_BINARY : TR_WS_OP_TEXT, data, len);
        assert_int_equal(tr_ws_send(ws, f), 0);
        rt_bytes_unref(f);
    }
}

static void on_pong(tr_ws_t *ws, void *ud)
{
    ((wx_t *)ud)->pongs++;
}

static void on_close(tr_ws_t *ws, int code, void *ud)
{
    wx_t *x = ud;
    x->closes++;
    x->close_code = code;
    for (int i = 0; i < x->nws; i++)
        if (x->ws[i] == ws)
            x->ws[i] = NULL;
}

static void on_request(tr_http_req_t *req, void *ud)
{
    wx_t *x = ud;
    if (!tr_ws_is_upgrade(req)) {
        tr_http_respond_error(req, 404, "not found");
        return;
    }
    tr_ws_handler_t h = {on_message, on_pong, on_close};
    tr_ws_t *ws = NULL;
    if (tr_ws_upgrade(req, &x->opts, &h, x, &ws) == 0)
        x->ws[x->nws++] = ws;
}

static wx_t *wx_new(const tr_limits_t *lim)
{
    wx_t *x = calloc(1, sizeof(*x));
    tt_env_init(&x->env, lim);
    tr_http_handler_t h = {on_request, x};
    x->srv = tr__http_server_new(&x->env.tl, &h);
    x->opts.max_message_bytes = 1000;
    x->opts.check_utf8 = true;
    x->echo = true;
    return x;
}

static void wx_free(wx_t *x)
{
    tr_http_server_free(x->srv);
    tt_env_cleanup(&x->env);
    free(x);
}

static const char handshake[] = "GET /connection/websocket HTTP/1.1\r\nHost: x\r\n"
                                "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Protocol: json, protobuf\r\n"
                                "Sec-WebSocket-Version: 13\r\n\r\n";

typedef struct want_bytes {
    tt_client_t *cl;
    size_t n;
} want_bytes_t;

static bool cond_bytes(void *arg)
{
    want_bytes_t *w = arg;
    return w->cl->in.len >= w->n;
}

static bool cond_closed(void *arg)
{
    return ((wx_t *)arg)->closes > 0;
}

/* Connects and completes the handshake; the 101 response is consumed. */
static void ws_connect(wx_t *x, tt_client_t *cl)
{
    tt_client_open(cl, x->srv);
    tt_write_str(cl, handshake);
    size_t off = 0;
    tt_resp_t r;
    double end = tt_now() + 3;
    while (!tt_parse_resp(&cl->in, &off, &r)) {
        tt_spin(&x->env, cl, 1);
        assert_true(tt_now() < end);
    }
    assert_int_equal(r.status, 101);
    assert_non_null(strstr(r.head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strstr(r.head, "Upgrade: websocket\r\n"));
    rt_buf_consume(&cl->in, off);
}

/* A masked client frame. */
static size_t client_frame(uint8_t *out, int fin_op, const void *payload, size_t len)
{
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = 0;
    out[h++] = (uint8_t)fin_op;
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = ((const uint8_t *)payload)[i] ^ mask[i % 4];
    return h + len;
}

/* Parses one server frame at in[*off]; false if incomplete. */
static bool server_frame(const rt_buf_t *in, size_t *off, int *op, const uint8_t **payload,
                         size_t *len)
{
    const uint8_t *p = in->p + *off;
    size_t n = in->len - *off;
    if (n < 2)
        return false;
    assert_int_equal(p[1] & 0x80, 0); /* server frames are unmasked */
    size_t h = 2, l = p[1] & 0x7f;
    if (l == 126) {
        if (n < 4)
            return false;
        l = ((size_t)p[2] << 8) | p[3];
        h = 4;
    } else if (l == 127) {
        if (n < 10)
            return false;
        l = 0;
        for (int i = 0; i < 8; i++)
            l = (l << 8) | p[2 + i];
        h = 10;
    }
    if (n < h + l)
        return false;
    *op = p[0] & 0x0f;
    assert_true(p[0] & 0x80);
    *payload = p + h;
    *len = l;
    *off += h + l;
    return true;
}

static void expect_close_frame(wx_t *x, tt_client_t *cl, int code)
{
    want_bytes_t w = {cl, 4};
    assert_true(tt_run_until(&x->env, cl, cond_bytes, &w, 3));
    size_t off = 0, len;
    int op;
    const uint8_t *pl;
    /* Skip frames before the close. */
    for (;;) {
        while (!server_frame(&cl->in, &off, &op, &pl, &len))
            tt_spin(&x->env, cl, 1);
        if (op == TR_WS_OP_CLOSE)
            break;
    }
    assert_true(len >= 2);
    assert_int_equal((pl[0] << 8) | pl[1], code);
}

static void test_handshake_and_echo(void **state)
{
    wx_t *x = wx_new(NULL);
    x->opts.subprotocol = "json";
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, handshake);
    want_bytes_t w = {&cl, 20};
    assert_true(tt_run_until(&x->env, &cl, cond_bytes, &w, 3));
    tt_spin(&x->env, &cl, 3);
    assert_non_null(strstr((const char *)cl.in.p, "Sec-WebSocket-Protocol: json\r\n"));
    assert_non_null(strstr((const char *)cl.in.p, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    tt_client_close(&cl);
    tt_spin(&x->env, NULL, 3);
    assert_int_equal(x->closes, 1);
    assert_int_equal(x->close_code, TR_WS_CLOSED_ABNORMAL);
    wx_free(x);
}

/* TCP_NODELAY of our end of cl's connection: the descriptor whose peer is cl's address. */
static int server_nodelay(const tt_client_t *cl)
{
    struct sockaddr_storage mine, peer;
    socklen_t n = sizeof(mine);
    assert_int_equal(getsockname(cl->fd, (struct sockaddr *)&mine, &n), 0);
    for (int fd = 0; fd < 4096; fd++) {
        socklen_t m = sizeof(peer);
        if (fd == cl->fd || getpeername(fd, (struct sockaddr *)&peer, &m) != 0 || m != n ||
            memcmp(&peer, &mine, n) != 0)
            continue;
        int on = -1;
        socklen_t l = sizeof(on);
        assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &l), 0);
        return on;
    }
    fail_msg("no server socket for the client");
    return -1;
}

/* Accepted TCP sockets have TCP_NODELAY; upgraded_nodelay = false hands a WebSocket's small
 * pushes to Nagle (client.tcp_nodelay). Over a real loopback listener: socketpairs have no
 * TCP options. */
static void test_nodelay_after_upgrade(void **state)
{
    for (int keep = 0; keep < 2; keep++) {
        tr_limits_t lim;
        tr_limits_default(&lim);
        lim.upgraded_nodelay = keep;
        wx_t *x = wx_new(&lim);
        tr_http_handler_t h = {on_request, x};
        tr_http_server_t *tcp = NULL;
        assert_int_equal(tr_http_listen(&x->env.tl, "127.0.0.1", 0, &h, &tcp), 0);
        tt_client_t cl = {.fd = socket(AF_INET, SOCK_STREAM, 0), .in = RT_BUF_INIT};
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)tr__http_server_port(tcp))};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(cl.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        fcntl(cl.fd, F_SETFL, O_NONBLOCK);
        tt_spin(&x->env, &cl, 3);                 /* accepted */
        assert_int_equal(server_nodelay(&cl), 1); /* before the upgrade: requests */
        tt_write_str(&cl, handshake);
        want_bytes_t w = {&cl, 20};
        assert_true(tt_run_until(&x->env, &cl, cond_bytes, &w, 3));
        assert_int_equal(x->nws, 1);
        assert_int_equal(server_nodelay(&cl) != 0, keep);
        tt_client_close(&cl);
        tt_spin(&x->env, NULL, 2);
        tr_http_server_free(tcp);
        wx_free(x);
    }
}

static void test_bad_handshake(void **state)
{
    wx_t *x = wx_new(NULL);
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 8\r\n\r\n");
    size_t off = 0;
    tt_resp_t r;
    double end = tt_now() + 3;
    while (!tt_parse_resp(&cl.in, &off, &r)) {
        tt_spin(&x->env, &cl, 1);
        assert_true(tt_now() < end);
    }
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.head, "Sec-WebSocket-Version: 13\r\n"));
    assert_non_null(strstr(r.body, "\"error\""));
    assert_true(tt_run_until(&x->env, &cl, tt_cond_eof, &cl, 3));
    tt_client_close(&cl);
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n");
    off = 0;
    end = tt_now() + 3;
    while (!tt_parse_resp(&cl.in, &off, &r)) {
        tt_spin(&x->env, &cl, 1);
        assert_true(tt_now() < end);
    }
    assert_int_equal(r.status, 400);
    tt_client_close(&cl);
    tt_spin(&x->env, NULL, 3);
    assert_int_equal(x->nws, 0);
    wx_free(x);
}

/* text "hello", ping "p1", binary of 300 bytes, fragmented text "Hel" + ping + "lo". */
static size_t build_stream(uint8_t *out)
{
    uint8_t big[300];
    memset(big, 0xab, sizeof(big));
    size_t n = 0;
    n += client_frame(out + n, 0x81, "hello", 5);
    n += client_frame(out + n, 0x89, "p1", 2);
    n += client_frame(out + n, 0x82, big, sizeof(big));
    n += client_frame(out + n, 0x01, "Hel", 3);
    n += client_frame(out + n, 0x89, "p2", 2);
    n += client_frame(out + n, 0x80, "lo", 2);
    n += client_frame(out + n, 0x81, "", 0);
    return n;
}

static const char stream_msgs[] = "t:hello;b:300;t:Hello;t:;";

/* The server's answer to build_stream(): echoes and pongs, in order. */
static void check_stream_reply(wx_t *x, tt_client_t *cl)
{
    static const int ops[] = {1, 10, 2, 10, 1, 1};
    static const size_t lens[] = {5, 2, 300, 2, 5, 0};
    size_t off = 0;
    for (int i = 0; i < 6; i++) {
        int op;
        const uint8_t *pl;
        size_t len;
        double end = tt_now() + 3;
        while (!server_frame(&cl->in, &off, &op, &pl, &len)) {
            tt_spin(&x->env, cl, 1);
            assert_true(tt_now() < end);
        }
        assert_int_equal(op, ops[i]);
        assert_int_equal(len, lens[i]);
    }
    assert_int_equal(off, cl->in.len);
    rt_buf_reset(&cl->in);
}

static void test_frames_split_every_offset(void **state)
{
    uint8_t stream[1024];
    size_t n = build_stream(stream);
    wx_t *x = wx_new(NULL);
    for (size_t cut = 0; cut <= n; cut++) {
        tt_client_t cl;
        ws_connect(x, &cl);
        x->msgs[0] = '\0';
        tt_write(&cl, stream, cut);
        tt_spin(&x->env, &cl, 2);
        tt_write(&cl, stream + cut, n - cut);
        check_stream_reply(x, &cl);
        assert_string_equal(x->msgs, stream_msgs);
        tt_spin(&x->env, &cl, 2);
        /* Idle again: no read buffer, no wslay context. */
        assert_int_equal(x->env.tl.read_pool.in_use, 0);
        assert_false(tr__ws_has_parser(x->ws[x->nws - 1]));
        tt_client_close(&cl);
        tt_spin(&x->env, NULL, 2);
        x->nws = 0;
    }
    assert_int_equal(x->closes, (int)n + 1);
    wx_free(x);
}

static void test_frames_byte_by_byte(void **state)
{
    uint8_t stream[1024];
    size_t n = build_stream(stream);
    wx_t *x = wx_new(NULL);
    tt_client_t cl;
    ws_connect(x, &cl);
    for (size_t i = 0; i < n; i++) {
        tt_write(&cl, stream + i, 1);
        tt_spin(&x->env, &cl, 1);
    }
    check_stream_reply(x, &cl);
    assert_string_equal(x->msgs, stream_msgs);
    tt_spin(&x->env, &cl, 2);
    assert_int_equal(x->env.tl.read_pool.in_use, 0);
    assert_false(tr__ws_has_parser(x->ws[0]));
    /* Server ping, client pong. */
    tr_ws_ping(x->ws[0]);
    want_bytes_t w = {&cl, 2};
    assert_true(tt_run_until(&x->env, &cl, cond_bytes, &w, 3));
    assert_int_equal(cl.in.p[0], 0x89);
    uint8_t f[16];
    tt_write(&cl, f, client_frame(f, 0x8a, NULL, 0));
    tt_spin(&x->env, &cl, 3);
    assert_int_equal(x->pongs, 1);
    tt_client_close(&cl);
    tt_spin(&x->env, NULL, 2);
    wx_free(x);
}

static void test_peer_close(void **state)
{
    wx_t *x = wx_new(NULL);
    tt_client_t cl;
    ws_connect(x, &cl);
    uint8_t f[64];
    tt_write(&cl, f,
             client_frame(f, 0x88,
                          "\x0f\xa0"
                          "bye",
                          5)); /* 4000 "bye" */
    expect_close_frame(x, &cl, 4000);
    assert_true(tt_run_until(&x->env, &cl, tt_cond_eof, &cl, 3));
    tt_client_close(&cl);
    assert_true(tt_run_until(&x->env, NULL, cond_closed, x, 3));
    assert_int_equal(x->close_code, 4000);
    wx_free(x);
}

static void test_local_close(void **state)
{
    wx_t *x = wx_new(NULL);
    tt_client_t cl;
    ws_connect(x, &cl);
    rt_bytes_t *f = tr_ws_frame_new(TR_WS_OP_TEXT, "before", 6);
    assert_int_equal(tr_ws_send(x->ws[0], f), 0);
    char reason[200];
    memset(reason, 'r', sizeof(reason));
    tr_ws_close(x->ws[0], 3001, rt_str_from(reason, sizeof(reason)), false);
    tr_ws_close(x->ws[0], 3002, RT_STR("again"), false);
    assert_int_equal(tr_ws_send(x->ws[0], f), RT_ECLOSED);
    rt_bytes_unref(f);
    want_bytes_t w = {&cl, 8 + 4 + 123};
    assert_true(tt_run_until(&x->env, &cl, cond_bytes, &w, 3));
    assert_int_equal(cl.in.p[0], 0x81); /* the queued text frame first */
    expect_close_frame(x, &cl, 3001);
    assert_int_equal(cl.in.len, 8 + 4 + 123);
    assert_int_equal(x->closes, 0);
    uint8_t cf[64];
    tt_write(&cl, cf, client_frame(cf, 0x88, "\x0b\xb9", 2));
    assert_true(tt_run_until(&x->env, &cl, tt_cond_eof, &cl, 3));
    tt_client_close(&cl);
    assert_true(tt_run_until(&x->env, NULL, cond_closed, x, 3));
    assert_int_equal(x->close_code, TR_WS_CLOSED_LOCAL);
    wx_free(x);
}

static void test_local_close_discard_no_reply(void **state)
{
    wx_t *x = wx_new(NULL);
    tt_client_t cl;
    ws_connect(x, &cl);
    rt_bytes_t *f = tr_ws_frame_new(TR_WS_OP_TEXT, "dropped", 7);
    assert_int_equal(tr_ws_send(x->ws[0], f), 0);
    rt_bytes_unref(f);
    tr_ws_close(x->ws[0], 3008, RT_STR("slow"), true);
    expect_close_frame(x, &cl, 3008);
    assert_int_equal(cl.in.p[0], 0x88); /* the text frame was discarded */
    /* The peer never answers: TCP is dropped after the close wait. */
    double t0 = tt_now();
    assert_true(tt_run_until(&x->env, &cl, cond_closed, x, 7));
    assert_true(tt_now() - t0 > 4.0);
    assert_int_equal(x->close_code, TR_WS_CLOSED_LOCAL);
    tt_client_close(&cl);
    wx_free(x);
}

static void error_close_case(wx_t *x, const uint8_t *frame, size_t n, int code)
{
    tt_client_t cl;
    x->closes = 0;
    ws_connect(x, &cl);
    tt_write(&cl, frame, n);
    expect_close_frame(x, &cl, code);
    /* The client answers the close; the server then finishes. */
    uint8_t cf[16];
    tt_write(&cl, cf, client_frame(cf, 0x88, "\x03\xe8", 2));
    assert_true(tt_run_until(&x->env, &cl, tt_cond_eof, &cl, 3));
    tt_client_close(&cl);
    assert_true(tt_run_until(&x->env, NULL, cond_closed, x, 3));
    assert_int_equal(x->close_code, code);
    assert_int_equal(x->msgs[0], '\0');
}

static void test_error_closes(void **state)
{
    wx_t *x = wx_new(NULL);
    uint8_t f[4096];
    uint8_t big[1001];
    memset(big, 'a', sizeof(big));
    error_close_case(x, f, client_frame(f, 0x82, big, sizeof(big)), TR_WS_CLOSED_TOO_BIG);
    /* Over the limit across fragments. */
    size_t n = client_frame(f, 0x02, big, 600);
    n += client_frame(f + n, 0x80, big, 401);
    error_close_case(x, f, n, TR_WS_CLOSED_TOO_BIG);
    error_close_case(x, f, client_frame(f, 0x81, "\xc3\x28", 2), TR_WS_CLOSED_BAD_UTF8);
    /* Unmasked client frame. */
    static const uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};
    error_close_case(x, unmasked, sizeof(unmasked), TR_WS_CLOSED_PROTOCOL);
    /* Continuation without a start. */
    error_close_case(x, f, client_frame(f, 0x80, "x", 1), TR_WS_CLOSED_PROTOCOL);
    wx_free(x);
}

static void test_utf8_unchecked(void **state)
{
    wx_t *x = wx_new(NULL);
    x->opts.check_utf8 = false;
    x->echo = false;
    tt_client_t cl;
    ws_connect(x, &cl);
    uint8_t f[64];
    tt_write(&cl, f, client_frame(f, 0x81, "\xff", 1));
    tt_spin(&x->env, &cl, 5);
    assert_string_equal(x->msgs, "t:\xff;");
    tt_client_close(&cl);
    tt_spin(&x->env, NULL, 3);
    wx_free(x);
}

static void test_queue_limit_and_write_timeout(void **state)
{
    tr_limits_t lim;
    tr_limits_default(&lim);
    lim.max_queue_bytes = 3 * 1024 * 1024;
    lim.write_timeout_s = 0.2;
    wx_t *x = wx_new(&lim);
    tt_client_t cl;
    ws_connect(x, &cl);
    static uint8_t payload[65536];
    rt_bytes_t *f = tr_ws_frame_new(TR_WS_OP_BINARY, payload, sizeof(payload));
    int sent = 0, rc;
    while ((rc = tr_ws_send(x->ws[0], f)) == 0)
        sent++;
    assert_int_equal(rc, RT_ELIMIT);
    assert_int_equal(sent, (int)(lim.max_queue_bytes / f->len));
    assert_true(tr_ws_queued_bytes(x->ws[0]) <= lim.max_queue_bytes);
    rt_bytes_unref(f);
    /* The client never reads: the socket fills and output stops making progress. */
    assert_true(tt_run_until(&x->env, NULL, cond_closed, x, 3));
    assert_int_equal(x->close_code, TR_WS_CLOSED_WRITE_TIMEOUT);
    tt_client_close(&cl);
    wx_free(x);
}

static void test_shared_frame(void **state)
{
    wx_t *x = wx_new(NULL);
    tt_client_t cl[MAX_CONNS];
    for (int i = 0; i < MAX_CONNS; i++)
        ws_connect(x, &cl[i]);
    tt_spin(&x->env, NULL, 2);
    rt_bytes_t *f = tr_ws_frame_new(TR_WS_OP_TEXT, "{\"push\":1}", 10);
    uint64_t allocs = rt_alloc_count();
    for (int i = 0; i < MAX_CONNS; i++)
        assert_int_equal(tr_ws_send(x->ws[i], f), 0);
    assert_int_equal(rt_alloc_count(), allocs);
    assert_int_equal(f->refs, MAX_CONNS + 1);
    rt_bytes_unref(f);
    for (int i = 0; i < MAX_CONNS; i++) {
        want_bytes_t w = {&cl[i], 12};
        assert_true(tt_run_until(&x->env, &cl[i], cond_bytes, &w, 3));
        assert_memory_equal(cl[i].in.p, "\x81\x0a{\"push\":1}", 12);
    }
    assert_int_equal(x->env.tl.stats.frames_out >= MAX_CONNS * 2, 1);
    for (int i = 0; i < MAX_CONNS; i++)
        tt_client_close(&cl[i]);
    assert_true(tt_run_until(&x->env, NULL, NULL, NULL, 0.05) == false);
    assert_int_equal(x->closes, MAX_CONNS);
    assert_int_equal(x->env.tl.stats.conns_open, 0);
    wx_free(x);
}

static void test_frame_builders(void **state)
{
    assert_int_equal(tr_ws_frame_header_len(0), 2);
    assert_int_equal(tr_ws_frame_header_len(125), 2);
    assert_int_equal(tr_ws_frame_header_len(126), 4);
    assert_int_equal(tr_ws_frame_header_len(65535), 4);
    assert_int_equal(tr_ws_frame_header_len(65536), 10);
    uint8_t h[10];
    tr_ws_frame_header_write(h, TR_WS_OP_BINARY, 65536);
    static const uint8_t want[] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0};
    assert_memory_equal(h, want, 10);
    tr_ws_frame_header_write(h, TR_WS_OP_TEXT, 300);
    assert_memory_equal(h, "\x81\x7e\x01\x2c", 4);
    rt_shared_t *s = tr_ws_frame_new_shared(TR_WS_OP_TEXT, "abc", 3);
    assert_int_equal(s->len, 5);
    assert_memory_equal(s->data,
                        "\x81\x03"
                        "abc",
                        5);
    rt_bytes_t *v = rt_bytes_view(s);
    rt_shared_unref(s);
    assert_int_equal(v->len, 5);
    rt_bytes_unref(v);
}

int run_ws(void);
int run_ws(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_builders),
        cmocka_unit_test(test_handshake_and_echo),
        cmocka_unit_test(test_nodelay_after_upgrade),
        cmocka_unit_test(test_bad_handshake),
        cmocka_unit_test(test_frames_split_every_offset),
        cmocka_unit_test(test_frames_byte_by_byte),
        cmocka_unit_test(test_peer_close),
        cmocka_unit_test(test_local_close),
        cmocka_unit_test(test_local_close_discard_no_reply),
        cmocka_unit_test(test_error_closes),
        cmocka_unit_test(test_utf8_unchecked),
        cmocka_unit_test(test_queue_limit_and_write_timeout),
        cmocka_unit_test(test_shared_frame),
    };
    return cmocka_run_group_tests_name("transports_ws", tests, NULL, NULL);
}

/* gRPC transport over real loopback TCP, driven by an nghttp2 client session written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "node/base/err.h"
#include "tr_test.h"
#include "transports/grpc.h"

#define MAX_STREAMS 8
#define MAX_CALLS   16
#define MAX_CLIENTS 4

static const char consume_path[] = "/centrifugal.centrifugo.unistream.CentrifugoUniStream/Consume";

/* ---- client ---- */

typedef struct cstream {
    int32_t id;
    int http_status;
    char content_type[64];
    int grpc_status; /* -1 until seen */
    char grpc_message[256];
    rt_buf_t data; /* DATA payload received */
    bool closed;
    uint32_t close_code;
    /* Request body and how the client cuts it into DATA frames. */
    const uint8_t *body;
    size_t body_len, body_off;
    size_t first_chunk, chunk; /* bytes per frame: the first, then each; 0 = no limit */
    bool no_end_stream;        /* do not half-close after the body */
} cstream_t;

typedef struct cli {
    int fd;
    nghttp2_session *s;
    cstream_t st[MAX_STREAMS];
    int nst;
    rt_buf_t out; /* produced by nghttp2, not yet written */
    bool eof;
    bool goaway;
    bool no_read; /* stop reading the socket (slow reader) */
} cli_t;

static ssize_t cli_body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                             uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    cstream_t *st = src->ptr;
    size_t n = st->body_len - st->body_off;
    size_t limit = st->body_off == 0 && st->first_chunk ? st->first_chunk : st->chunk;
    if (limit && n > limit)
        n = limit;
    if (n > length)
        n = length;
    memcpy(buf, st->body + st->body_off, n);
    st->body_off += n;
    if (st->body_off == st->body_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->no_end_stream)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
}

static int cli_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                         const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    cstream_t *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (st == NULL)
        return 0;
    char v[256];
    size_t n = vl < sizeof(v) - 1 ? vl : sizeof(v) - 1;
    memcpy(v, value, n);
    v[n] = '\0';
    if (nl == 7 && memcmp(name, ":status", 7) == 0)
        st->http_status = atoi(v);
    else if (nl == 12 && memcmp(name, "content-type", 12) == 0)
        memcpy(st->content_type, v, n < sizeof(st->content_type) ? n + 1 : 0);
    else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
        st->grpc_status = atoi(v);
    else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0)
        memcpy(st->grpc_message, v, n + 1);
    return 0;
}

static int cli_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                       size_t len, void *ud)
{
    cstream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (st)
        rt_buf_append(&st->data, data, len);
    return 0;
}

static int cli_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    cstream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (st) {
        st->closed = true;
        st->close_code = code;
    }
    return 0;
}

static int cli_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type == NGHTTP2_GOAWAY)
        ((cli_t *)ud)->goaway = true;
    return 0;
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    assert_true(rc == 0 || errno == EINPROGRESS);
    return fd;
}

/* big_windows: advertise 2^31-1 stream and connection windows (a fast consumer). */
static void cli_open(cli_t *c, int port, bool big_windows)
{
    memset(c, 0, sizeof(*c));
    c->fd = tcp_connect(port);
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cli_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cli_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cli_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cli_on_frame);
    assert_int_equal(nghttp2_session_client_new(&c->s, cbs, c), 0);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0x7fffffff}};
    assert_int_equal(nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, big_windows ? 1 : 0), 0);
    if (big_windows)
        assert_int_equal(
            nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, 0x7fffffff), 0);
}

static void cli_close(cli_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    nghttp2_session_del(c->s);
    c->s = NULL;
    rt_buf_cleanup(&c->out);
    for (int i = 0; i < c->nst; i++)
        rt_buf_cleanup(&c->st[i].data);
}

static void cli_pump(cli_t *c)
{
    if (c->fd < 0)
        return;
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(c->s, &p);
        assert_true(n >= 0);
        if (n == 0)
            break;
        rt_buf_append(&c->out, p, (size_t)n);
    }
    while (c->out.len > 0) {
        ssize_t w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        rt_buf_consume(&c->out, (size_t)w);
    }
    if (c->no_read || c->eof)
        return;
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n > 0) {
            assert_int_equal(nghttp2_session_mem_recv(c->s, buf, (size_t)n), n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            c->eof = true;
        return;
    }
}

/* A framed request message (5-byte prefix + payload) in out. */
static size_t frame_req(uint8_t *out, const void *payload, size_t len)
{
    out[0] = 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
    memcpy(out + 5, payload, len);
    return len + 5;
}

typedef struct req_opts {
    const char *method;       /* NULL = POST */
    const char *content_type; /* NULL = application/grpc */
    const char *path;         /* NULL = consume_path */
} req_opts_t;

/* Starts a call with body (borrowed until sent). Returns the stream. */
static cstream_t *cli_call(cli_t *c, const req_opts_t *o, const uint8_t *body, size_t len)
{
    cstream_t *st = &c->st[c->nst++];
    memset(st, 0, sizeof(*st));
    st->grpc_status = -1;
    st->body = body;
    st->body_len = len;
    const char *method = o && o->method ? o->method : "POST";
    const char *ct = o && o->content_type ? o->content_type : "application/grpc";
    const char *path = o && o->path ? o->path : consume_path;
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
        {(uint8_t *)":authority", (uint8_t *)"localhost", 10, 9, 0},
        {(uint8_t *)"content-type", (uint8_t *)ct, 12, strlen(ct), 0},
        {(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0},
    };
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = cli_body_read};
    st->id =
        nghttp2_submit_request(c->s, NULL, nv, sizeof(nv) / sizeof(nv[0]), body ? &prd : NULL, st);
    assert_true(st->id > 0);
    return st;
}

/* gRPC messages in st->data: payloads appended to out separated by '|'. Returns the count;
 * -1 if the data is not whole messages. */
static int parse_msgs(const cstream_t *st, rt_buf_t *out)
{
    const uint8_t *p = st->data.p;
    size_t n = st->data.len, off = 0;
    int count = 0;
    while (off < n) {
        if (n - off < 5 || p[off] != 0)
            return -1;
        size_t len = (size_t)p[off + 1] << 24 | (size_t)p[off + 2] << 16 | (size_t)p[off + 3] << 8 |
                     p[off + 4];
        if (n - off - 5 < len)
            return -1;
        if (count > 0)
            rt_buf_append_byte(out, '|');
        rt_buf_append(out, p + off + 5, len);
        off += 5 + len;
        count++;
    }
    return count;
}

/* ---- server fixture ---- */

enum {
    MODE_KEEP = 0,     /* the test drives the call */
    MODE_UNIMPL = 1,   /* finish at once with UNIMPLEMENTED */
    MODE_SEND3 = 2,    /* send three messages and finish from on_call */
    MODE_CLOSE_CB = 3, /* on_close finishes the next open call */
};

typedef struct gx {
    tt_env_t env;
    tr_grpc_server_t *srv;
    int mode;
    tr_grpc_call_t *calls[MAX_CALLS];
    int ncalls;
    int closes[MAX_CALLS];
    char tag[MAX_CALLS]; /* first byte of each call's request */
    int total_closes;
    char path[256];
    uint8_t msg[70000];
    size_t msg_len;
    cli_t *cl[MAX_CLIENTS];
    int ncl;
} gx_t;

static void on_call(tr_grpc_call_t *call, rt_str_t path, const uint8_t *msg, size_t len, void *ud)
{
    gx_t *x = ud;
    assert_true(x->ncalls < MAX_CALLS);
    int idx = x->ncalls++;
    x->calls[idx] = call;
    tr_grpc_call_set_ud(call, (void *)(intptr_t)(idx + 1));
    snprintf(x->path, sizeof(x->path), "%.*s", (int)path.n, path.p);
    assert_true(len <= sizeof(x->msg));
    memcpy(x->msg, msg, len);
    x->msg_len = len;
    x->tag[idx] = len > 0 ? (char)msg[0] : 0;
    if (x->mode == MODE_UNIMPL) {
        tr_grpc_finish(call, TR_GRPC_UNIMPLEMENTED, "no such method: \xc3\xa9 100%");
    } else if (x->mode == MODE_SEND3) {
        static const char *m[3] = {"one", "two", "three"};
        for (int i = 0; i < 3; i++) {
            rt_bytes_t *b = tr_grpc_msg_new(m[i], strlen(m[i]));
            assert_int_equal(tr_grpc_send(call, b), 0);
            rt_bytes_unref(b);
        }
        tr_grpc_finish(call, TR_GRPC_OK, NULL);
    }
}

static gx_t *g_x; /* on_close has only call_ud: the fixture of the running test */

static void on_close_real(tr_grpc_call_t *call, void *call_ud)
{
    gx_t *x = g_x;
    int idx = (int)(intptr_t)call_ud - 1;
    assert_true(idx >= 0 && idx < x->ncalls);
    assert_ptr_equal(x->calls[idx], call);
    x->closes[idx]++;
    x->total_closes++;
    x->calls[idx] = NULL;
    if (x->mode == MODE_CLOSE_CB) {
        for (int i = 0; i < x->ncalls; i++) {
            if (x->calls[i]) {
                tr_grpc_finish(x->calls[i], TR_GRPC_OK, "peer gone");
                break;
            }
        }
    }
}

static gx_t *gx_new(const tr_limits_t *lim, const tr_grpc_opts_t *opts)
{
    gx_t *x = calloc(1, sizeof(*x));
    g_x = x;
    tt_env_init(&x->env, lim);
    tr_grpc_handler_t h = {on_call, on_close_real, x};
    assert_int_equal(tr_grpc_listen(&x->env.tl, "127.0.0.1", 0, opts, &h, &x->srv), 0);
    assert_true(tr__grpc_server_port(x->srv) > 0);
    return x;
}

static void gx_free(gx_t *x)
{
    tr_grpc_server_free(x->srv);
    for (int i = 0; i < 20; i++)
        ev_run(x->env.loop, EVRUN_NOWAIT);
    tt_env_cleanup(&x->env);
    g_x = NULL;
    free(x);
}

static cli_t *gx_client(gx_t *x, bool big_windows)
{
    cli_t *c = calloc(1, sizeof(*c));
    cli_open(c, tr__grpc_server_port(x->srv), big_windows);
    x->cl[x->ncl++] = c;
    return c;
}

static void gx_client_free(gx_t *x, cli_t *c)
{
    cli_close(c);
    for (int i = 0; i < x->ncl; i++)
        if (x->cl[i] == c)
            x->cl[i] = NULL;
    free(c);
}

static bool gx_run_until(gx_t *x, bool (*cond)(void *), void *arg, double timeout_s)
{
    double end = tt_now() + timeout_s;
    for (;;) {
        ev_run(x->env.loop, EVRUN_NOWAIT);
        for (int i = 0; i < x->ncl; i++)
            if (x->cl[i])
                cli_pump(x->cl[i]);
        if (cond && cond(arg))
            return true;
        if (tt_now() > end)
            return false;
        usleep(100);
    }
}

static bool cond_closed(void *arg)
{
    return ((cstream_t *)arg)->closed;
}

typedef struct want_calls {
    gx_t *x;
    int n;
} want_calls_t;

static bool cond_calls(void *arg)
{
    want_calls_t *w = arg;
    return w->x->ncalls >= w->n;
}

static bool cond_closes(void *arg)
{
    want_calls_t *w = arg;
    return w->x->total_closes >= w->n;
}

static bool cond_no_conns(void *arg)
{
    return ((gx_t *)arg)->env.tl.stats.conns_open == 0;
}

static bool cond_goaway(void *arg)
{
    return ((cli_t *)arg)->goaway;
}

static void send_text(tr_grpc_call_t *call, const char *s)
{
    rt_bytes_t *b = tr_grpc_msg_new(s, strlen(s));
    assert_int_equal(tr_grpc_send(call, b), 0);
    rt_bytes_unref(b);
}

static void wait_calls(gx_t *x, int n)
{
    want_calls_t w = {x, n};
    assert_true(gx_run_until(x, cond_calls, &w, 3));
}

static void wait_closes(gx_t *x, int n)
{
    want_calls_t w = {x, n};
    assert_true(gx_run_until(x, cond_closes, &w, 3));
}

/* ---- tests ---- */

static void test_msg_builders(void **state)
{
    rt_bytes_t *b = tr_grpc_msg_new("abc", 3);
    assert_int_equal(b->len, 8);
    assert_memory_equal(b->data, "\0\0\0\0\3abc", 8);
    rt_bytes_unref(b);
    b = tr_grpc_msg_new(NULL, 0);
    assert_int_equal(b->len, 5);
    assert_memory_equal(b->data, "\0\0\0\0\0", 5);
    rt_bytes_unref(b);
    rt_shared_t *s = tr_grpc_msg_new_shared("x", 1);
    assert_int_equal(s->len, 6);
    assert_memory_equal(s->data, "\0\0\0\0\1x", 6);
    rt_shared_unref(s);
    uint8_t big[70000];
    memset(big, 'z', sizeof(big));
    b = tr_grpc_msg_new(big, 66000);
    assert_memory_equal(b->data, "\0\0\1\x01\xd0", 5);
    rt_bytes_unref(b);
}

static void test_stream_and_finish(void **state)
{
    gx_t *x = gx_new(NULL, NULL);
    cli_t *c = gx_client(x, false);
    uint8_t body[64];
    size_t n = frame_req(body, "hello", 5);
    cstream_t *st = cli_call(c, NULL, body, n);
    wait_calls(x, 1);
    assert_string_equal(x->path, consume_path);
    assert_int_equal(x->msg_len, 5);
    assert_memory_equal(x->msg, "hello", 5);
    assert_true(strncmp(tr_grpc_remote(x->calls[0]), "127.0.0.1:", 10) == 0);

    /* Three messages; the middle one is bigger than a DATA frame (16384), so it is split
     * and copied, the others go out as shared bytes. */
    static uint8_t big[40000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)('a' + i % 26);
    send_text(x->calls[0], "first");
    rt_bytes_t *b = tr_grpc_msg_new(big, sizeof(big));
    assert_int_equal(tr_grpc_send(x->calls[0], b), 0);
    rt_bytes_unref(b);
    send_text(x->calls[0], "third");
    assert_true(tr_grpc_queued_bytes(x->calls[0]) >= 40000);
    tr_grpc_call_t *call = x->calls[0];
    tr_grpc_finish(call, TR_GRPC_OK, NULL);
    tr_grpc_finish(call, TR_GRPC_INTERNAL, "ignored"); /* idempotent */
    b = tr_grpc_msg_new("late", 4);
    assert_int_equal(tr_grpc_send(call, b), RT_ECLOSED);
    rt_bytes_unref(b);
    assert_int_equal(x->closes[0], 0); /* never from inside finish */

    assert_true(gx_run_until(x, cond_closed, st, 3));
    assert_int_equal(st->http_status, 200);
    assert_string_equal(st->content_type, "application/grpc");
    assert_int_equal(st->grpc_status, 0);
    assert_string_equal(st->grpc_message, "");
    assert_int_equal(st->close_code, NGHTTP2_NO_ERROR);
    rt_buf_t got = RT_BUF_INIT;
    assert_int_equal(parse_msgs(st, &got), 3);
    assert_int_equal(got.len, 5 + 1 + sizeof(big) + 1 + 5);
    assert_memory_equal(got.p, "first|", 6);
    assert_memory_equal(got.p + 6, big, sizeof(big));
    assert_memory_equal(got.p + 6 + sizeof(big), "|third", 6);
    rt_buf_cleanup(&got);
    wait_closes(x, 1);
    assert_int_equal(x->closes[0], 1);

    /* The connection stays usable for the next call; sends from on_call work too. */
    x->mode = MODE_SEND3;
    cstream_t *st2 = cli_call(c, NULL, body, n);
    assert_true(gx_run_until(x, cond_closed, st2, 3));
    got = (rt_buf_t)RT_BUF_INIT;
    assert_int_equal(parse_msgs(st2, &got), 3);
    assert_int_equal(got.len, strlen("one|two|three"));
    assert_memory_equal(got.p, "one|two|three", got.len);
    rt_buf_cleanup(&got);
    assert_int_equal(st2->grpc_status, 0);
    wait_closes(x, 2);
    assert_int_equal(x->closes[1], 1);
    gx_client_free(x, c);
    gx_free(x);
}

static void test_unimplemented_trailers_only(void **state)
{
    gx_t *x = gx_new(NULL, NULL);
    x->mode = MODE_UNIMPL;
    cli_t *c = gx_client(x, false);
    uint8_t body[16];
    size_t n = frame_req(body, "", 0);
    req_opts_t o = {.path = "/nope.Service/Method"};
    cstream_t *st = cli_call(c, &o, body, n);
    assert_true(gx_run_until(x, cond_closed, st, 3));
    assert_string_equal(x->path, "/nope.Service/Method");
    assert_int_equal(x->msg_len, 0);
    assert_int_equal(st->http_status, 200);
    assert_string_equal(st->content_type, "application/grpc");
    assert_int_equal(st->grpc_status, TR_GRPC_UNIMPLEMENTED);
    assert_string_equal(st->grpc_message, "no such method: %C3%A9 100%25");
    assert_int_equal(st->data.len, 0);
    wait_closes(x, 1);
    assert_int_equal(x->closes[0], 1);
    gx_client_free(x, c);
    gx_free(x);
}

static void test_oversized_request(void **state)
{
    tr_grpc_opts_t opts = {.max_recv_message_bytes = 100};
    gx_t *x = gx_new(NULL, &opts);
    cli_t *c = gx_client(x, false);
    static uint8_t payload[70000], body[70010];
    memset(payload, 'p', sizeof(payload));

    size_t n = frame_req(body, payload, 101);
    cstream_t *st = cli_call(c, NULL, body, n);
    assert_true(gx_run_until(x, cond_closed, st, 3));
    assert_int_equal(st->grpc_status, TR_GRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(st->grpc_message, "grpc: received message larger than max (101 vs. 100)");
    assert_int_equal(x->ncalls, 0);

    /* At the limit it passes. */
    static uint8_t body2[200];
    size_t n2 = frame_req(body2, payload, 100);
    cstream_t *ok = cli_call(c, NULL, body2, n2);
    wait_calls(x, 1);
    assert_int_equal(x->msg_len, 100);
    tr_grpc_finish(x->calls[0], TR_GRPC_OK, NULL);
    assert_true(gx_run_until(x, cond_closed, ok, 3));
    assert_int_equal(ok->grpc_status, 0);
    gx_client_free(x, c);
    gx_free(x);

    /* Default limit 65536; a 70000-byte request is refused while the client still sends:
     * the stream is reset after the status, the connection stays fine. */
    x = gx_new(NULL, NULL);
    c = gx_client(x, false);
    n = frame_req(body, payload, 70000);
    st = cli_call(c, NULL, body, n);
    assert_true(gx_run_until(x, cond_closed, st, 3));
    assert_int_equal(st->grpc_status, TR_GRPC_RESOURCE_EXHAUSTED);
    assert_int_equal(x->ncalls, 0);
    n2 = frame_req(body2, "ok", 2);
    ok = cli_call(c, NULL, body2, n2);
    wait_calls(x, 1);
    assert_int_equal(x->msg_len, 2);
    gx_client_free(x, c);
    wait_closes(x, 1);
    gx_free(x);
}

static void test_bad_requests(void **state)
{
    gx_t *x = gx_new(NULL, NULL);
    cli_t *c = gx_client(x, false);
    uint8_t body[16];
    size_t n = frame_req(body, "m", 1);

    req_opts_t get = {.method = "GET"};
    cstream_t *a = cli_call(c, &get, NULL, 0);
    req_opts_t json = {.content_type = "application/json"};
    cstream_t *b = cli_call(c, &json, body, n);
    cstream_t *empty = cli_call(c, NULL, NULL, 0); /* half-closed without a message */
    static uint8_t partial[4] = {0, 0, 0, 0};
    cstream_t *part = cli_call(c, NULL, partial, sizeof(partial));
    static uint8_t compressed[6] = {1, 0, 0, 0, 1, 'x'};
    cstream_t *comp = cli_call(c, NULL, compressed, sizeof(compressed));
    req_opts_t plus = {.content_type = "application/grpc+proto"};
    cstream_t *good = cli_call(c, &plus, body, n);

    assert_true(gx_run_until(x, cond_closed, a, 3));
    assert_true(gx_run_until(x, cond_closed, b, 3));
    assert_true(gx_run_until(x, cond_closed, empty, 3));
    assert_true(gx_run_until(x, cond_closed, part, 3));
    assert_true(gx_run_until(x, cond_closed, comp, 3));
    assert_int_equal(a->http_status, 405);
    assert_int_equal(a->grpc_status, TR_GRPC_INTERNAL);
    assert_int_equal(b->http_status, 415);
    assert_int_equal(b->grpc_status, TR_GRPC_INVALID_ARGUMENT);
    assert_int_equal(empty->http_status, 200);
    assert_int_equal(empty->grpc_status, TR_GRPC_INTERNAL);
    assert_int_equal(part->grpc_status, TR_GRPC_INTERNAL);
    assert_int_equal(comp->grpc_status, TR_GRPC_UNIMPLEMENTED);
    /* Only the well-formed call reached the handler. */
    wait_calls(x, 1);
    assert_int_equal(x->ncalls, 1);
    assert_int_equal(x->msg_len, 1);
    tr_grpc_finish(x->calls[0], TR_GRPC_OK, NULL);
    assert_true(gx_run_until(x, cond_closed, good, 3));
    assert_int_equal(good->grpc_status, 0);
    wait_closes(x, 1);
    gx_client_free(x, c);
    gx_free(x);
}

/* The request message cut into DATA frames at every offset, and one byte per frame. */
static void test_request_split(void **state)
{
    gx_t *x = gx_new(NULL, NULL);
    x->mode = MODE_UNIMPL;
    cli_t *c = gx_client(x, false);
    static const char payload[] = "split me, please";
    uint8_t body[64];
    size_t n = frame_req(body, payload, sizeof(payload) - 1);
    for (size_t k = 0; k <= n; k++) {
        cstream_t *st = cli_call(c, NULL, body, n);
        st->first_chunk = k ? k : 1; /* k == 0: one byte per frame */
        st->chunk = k ? 0 : 1;
        assert_true(gx_run_until(x, cond_closed, st, 3));
        assert_int_equal(st->grpc_status, TR_GRPC_UNIMPLEMENTED);
        wait_closes(x, 1);
        assert_int_equal(x->ncalls, 1);
        assert_int_equal(x->msg_len, sizeof(payload) - 1);
        assert_memory_equal(x->msg, payload, x->msg_len);
        /* Done with this stream and call: reuse the slots. */
        rt_buf_cleanup(&st->data);
        c->nst = 0;
        x->ncalls = 0;
        x->total_closes = 0;
        memset(x->closes, 0, sizeof(x->closes));
        memset(x->msg, 0, sizeof(payload));
    }
    gx_client_free(x, c);
    gx_free(x);
}

static void test_client_cancel(void **state)
{
    gx_t *x = gx_new(NULL, NULL);
    cli_t *c = gx_client(x, false);
    uint8_t body[16];
    size_t n = frame_req(body, "c", 1);
    cstream_t *st = cli_call(c, NULL, body, n);
    wait_calls(x, 1);
    send_text(x->calls[0], "hi");
    assert_true(gx_run_until(x, NULL, NULL, 0.05) == false);
    assert_int_equal(nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL), 0);
    wait_closes(x, 1);
    assert_int_equal(x->closes[0], 1);
    assert_null(x->calls[0]);
    assert_true(gx_run_until(x, NULL, NULL, 0.05) == false);
    assert_int_equal(x->closes[0], 1);
    /* The connection still serves calls. */
    x->mode = MODE_SEND3;
    cstream_t *st2 = cli_call(c, NULL, body, n);
    assert_true(gx_run_until(x, cond_closed, st2, 3));
    assert_int_equal(st2->grpc_status, 0);
    wait_closes(x, 2);
    gx_client_free(x, c);
    gx_free(x);
}

static void test_connection_drop(void **state)
{
    gx_t *x = gx_new(NULL, NULL);
    cli_t *c1 = gx_client(x, false);
    cli_t *c2 = gx_client(x, false);
    uint8_t body[16];
    size_t n = frame_req(body, "d", 1);
    cli_call(c1, NULL, body, n);
    cli_call(c1, NULL, body, n);
    wait_calls(x, 2);
    cstream_t *other = cli_call(c2, NULL, body, n);
    wait_calls(x, 3);
    for (int i = 0; i < 3; i++)
        send_text(x->calls[i], "x");
    assert_true(gx_run_until(x, NULL, NULL, 0.05) == false);
    gx_client_free(x, c1);
    wait_closes(x, 2);
    assert_int_equal(x->closes[0], 1);
    assert_int_equal(x->closes[1], 1);
    assert_int_equal(x->closes[2], 0);
    assert_int_equal(x->env.tl.stats.conns_open, 1);
    /* The other connection's call is unaffected. */
    send_text(x->calls[2], "still here");
    tr_grpc_finish(x->calls[2], TR_GRPC_OK, NULL);
    assert_true(gx_run_until(x, cond_closed, other, 3));
    rt_buf_t got = RT_BUF_INIT;
    assert_int_equal(parse_msgs(other, &got), 2);
    assert_memory_equal(got.p, "x|still here", got.len);
    rt_buf_cleanup(&got);
    wait_closes(x, 3);
    gx_client_free(x, c2);
    gx_free(x);
}

static void test_two_concurrent_calls(void **state)
{
    gx_t *x = gx_new(NULL, NULL);
    cli_t *c = gx_client(x, false);
    uint8_t body1[16], body2[16];
    size_t n1 = frame_req(body1, "A", 1), n2 = frame_req(body2, "B", 1);
    cstream_t *a = cli_call(c, NULL, body1, n1);
    cstream_t *b = cli_call(c, NULL, body2, n2);
    wait_calls(x, 2);
    /* Calls are numbered by arrival; find them by their request. */
    int ia = x->tag[0] == 'A' ? 0 : 1;
    tr_grpc_call_t *ca = x->calls[ia], *cb = x->calls[1 - ia];
    /* One message shared by both calls: each queue holds its own reference. */
    rt_bytes_t *shared = tr_grpc_msg_new("both", 4);
    assert_int_equal(tr_grpc_send(ca, shared), 0);
    assert_int_equal(tr_grpc_send(cb, shared), 0);
    assert_int_equal(shared->refs, 3);
    rt_bytes_unref(shared);
    send_text(ca, "a1");
    send_text(cb, "b1");
    send_text(ca, "a2");
    tr_grpc_finish(cb, TR_GRPC_UNAVAILABLE, "bye");
    assert_true(gx_run_until(x, cond_closed, b, 3));
    assert_false(a->closed);
    send_text(ca, "a3");
    tr_grpc_finish(ca, TR_GRPC_OK, NULL);
    assert_true(gx_run_until(x, cond_closed, a, 3));
    rt_buf_t ga = RT_BUF_INIT, gb = RT_BUF_INIT;
    cstream_t *sa = a, *sb = b;
    assert_int_equal(parse_msgs(sa, &ga), 4);
    assert_int_equal(parse_msgs(sb, &gb), 2);
    assert_memory_equal(ga.p, "both|a1|a2|a3", ga.len);
    assert_memory_equal(gb.p, "both|b1", gb.len);
    assert_int_equal(sa->grpc_status, 0);
    assert_int_equal(sb->grpc_status, TR_GRPC_UNAVAILABLE);
    assert_string_equal(sb->grpc_message, "bye");
    rt_buf_cleanup(&ga);
    rt_buf_cleanup(&gb);
    wait_closes(x, 2);
    gx_client_free(x, c);
    gx_free(x);
}

static bool cond_elimit_or_closed(void *arg)
{
    gx_t *x = arg;
    return x->total_closes > 0;
}

/* A reader that stops reading: the socket fills, tr_grpc_send reports RT_ELIMIT, and the
 * write timeout drops the connection with on_close. */
static void test_slow_reader(void **state)
{
    tr_limits_t lim;
    tr_limits_default(&lim);
    lim.max_queue_bytes = 256 * 1024;
    lim.write_timeout_s = 0.2;
    gx_t *x = gx_new(&lim, NULL);
    cli_t *c = gx_client(x, true);
    int small = 4096;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    uint8_t body[16];
    size_t n = frame_req(body, "s", 1);
    cli_call(c, NULL, body, n);
    wait_calls(x, 1);
    c->no_read = true;
    static uint8_t chunk[16000];
    memset(chunk, 'q', sizeof(chunk));
    rt_bytes_t *m = tr_grpc_msg_new(chunk, sizeof(chunk));
    int rc = 0;
    double end = tt_now() + 5;
    while (rc == 0 && tt_now() < end) {
        rc = tr_grpc_send(x->calls[0], m);
        gx_run_until(x, NULL, NULL, 0);
    }
    rt_bytes_unref(m);
    assert_int_equal(rc, RT_ELIMIT);
    assert_true(tr_grpc_queued_bytes(x->calls[0]) > lim.max_queue_bytes - sizeof(chunk) - 5);
    assert_true(gx_run_until(x, cond_elimit_or_closed, x, 3));
    assert_int_equal(x->closes[0], 1);
    assert_int_equal(x->env.tl.stats.conns_open, 0);
    gx_client_free(x, c);
    gx_free(x);
}

static void test_stop_and_free(void **state)
{
    gx_t *x = gx_new(NULL, NULL);
    cli_t *c = gx_client(x, false);
    uint8_t body[16];
    size_t n = frame_req(body, "g", 1);
    cstream_t *st = cli_call(c, NULL, body, n);
    wait_calls(x, 1);
    tr_grpc_server_stop(x->srv);
    assert_int_equal(tr__grpc_server_port(x->srv), -1);
    assert_true(gx_run_until(x, cond_goaway, c, 3));
    /* The open call goes on after GOAWAY. */
    send_text(x->calls[0], "after stop");
    tr_grpc_finish(x->calls[0], TR_GRPC_OK, NULL);
    assert_true(gx_run_until(x, cond_closed, st, 3));
    assert_int_equal(st->grpc_status, 0);
    wait_closes(x, 1);
    /* No streams left after GOAWAY: the server closes the connection. */
    assert_true(gx_run_until(x, cond_goaway, c, 0) && gx_run_until(x, NULL, NULL, 0.1) == false);
    assert_true(c->eof);
    /* The server lingers for our EOF before it closes its side. */
    gx_client_free(x, c);
    assert_true(gx_run_until(x, cond_no_conns, x, 3));

    /* Free with open calls: on_close for each, from inside free; the client sees GOAWAY. */
    gx_t *y = gx_new(NULL, NULL);
    cli_t *d = gx_client(y, false);
    cstream_t *s1 = cli_call(d, NULL, body, n);
    cli_call(d, NULL, body, n);
    wait_calls(y, 2);
    send_text(y->calls[0], "m");
    tr_grpc_server_free(y->srv);
    y->srv = NULL;
    assert_int_equal(y->total_closes, 2);
    for (int i = 0; i < 50 && !d->eof; i++) {
        ev_run(y->env.loop, EVRUN_NOWAIT);
        cli_pump(d);
        usleep(1000);
    }
    assert_true(d->goaway);
    assert_true(d->eof);
    assert_false(s1->grpc_status == 0);
    gx_client_free(y, d);
    assert_true(gx_run_until(y, cond_no_conns, y, 3));
    g_x = y;
    gx_free(y);
    g_x = x;
    gx_free(x);
}

/* on_close may finish other calls of the same connection; finish runs no callback itself. */
static void test_close_callback_reentry(void **state)
{
    gx_t *x = gx_new(NULL, NULL);
    cli_t *c = gx_client(x, false);
    uint8_t body[16];
    size_t n = frame_req(body, "r", 1);
    cstream_t *s1 = cli_call(c, NULL, body, n);
    cstream_t *s2 = cli_call(c, NULL, body, n);
    wait_calls(x, 2);
    x->mode = MODE_CLOSE_CB;
    /* Cancel one call; its on_close finishes the other. */
    assert_int_equal(nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, s1->id, NGHTTP2_CANCEL), 0);
    wait_closes(x, 2);
    assert_true(gx_run_until(x, cond_closed, s2, 3));
    assert_int_equal(s2->grpc_status, 0);
    assert_string_equal(s2->grpc_message, "peer gone");
    gx_client_free(x, c);
    gx_free(x);
}

int run_grpc(void);
int run_grpc(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_builders),
        cmocka_unit_test(test_stream_and_finish),
        cmocka_unit_test(test_unimplemented_trailers_only),
        cmocka_unit_test(test_oversized_request),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_request_split),
        cmocka_unit_test(test_client_cancel),
        cmocka_unit_test(test_connection_drop),
        cmocka_unit_test(test_two_concurrent_calls),
        cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_stop_and_free),
        cmocka_unit_test(test_close_callback_reentry),
    };
    return cmocka_run_group_tests_name("transports_grpc", tests, NULL, NULL);
}

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "node/base/alloc.h"
#include "node/base/err.h"
#include "tr_test.h"
#include "transports/http.h"

/* Records requests; answers "<method> <path>?<query> body=<body>" unless async. */
typedef struct hx {
    tt_env_t env;
    tr_http_server_t *srv;
    int nreq;
    char log[8192];      /* "path;" per request in dispatch order */
    tr_http_req_t *held; /* async request not yet answered */
    bool async_slow;     /* hold requests for /slow */
    int aborts;
} hx_t;

static void on_request(tr_http_req_t *req, void *ud)
{
    hx_t *x = ud;
    rt_str_t path = tr_http_req_path(req);
    x->nreq++;
    snprintf(x->log + strlen(x->log), sizeof(x->log) - strlen(x->log), RT_STR_FMT ";",
             RT_STR_ARG(path));
    if (x->async_slow && rt_str_eq_c(path, "/slow")) {
        x->held = req;
        return;
    }
    rt_buf_t b = RT_BUF_INIT;
    rt_str_t m = tr_http_req_method(req), q = tr_http_req_query(req), body = tr_http_req_body(req);
    rt_buf_printf(&b, RT_STR_FMT " " RT_STR_FMT "?" RT_STR_FMT " body=" RT_STR_FMT, RT_STR_ARG(m),
                  RT_STR_ARG(path), RT_STR_ARG(q), RT_STR_ARG(body));
    rt_str_t xt = tr_http_req_header(req, "x-test");
    if (xt.p)
        rt_buf_printf(&b, " x=" RT_STR_FMT, RT_STR_ARG(xt));
    tr_http_respond(req, 200, "text/plain", rt_buf_str(&b), "X-Extra: 1\r\n");
    rt_buf_cleanup(&b);
}

static hx_t *hx_new(const tr_limits_t *lim)
{
    hx_t *x = calloc(1, sizeof(*x));
    tt_env_init(&x->env, lim);
    tr_http_handler_t h = {on_request, x};
    x->srv = tr__http_server_new(&x->env.tl, &h);
    return x;
}

static void hx_free(hx_t *x)
{
    tr_http_server_free(x->srv);
    tt_env_cleanup(&x->env);
    free(x);
}

typedef struct want_resp {
    tt_client_t *cl;
    size_t off;
    int count; /* responses wanted */
    tt_resp_t r[4];
    int got;
} want_resp_t;

static bool cond_resp(void *arg)
{
    want_resp_t *w = arg;
    while (w->got < w->count && tt_parse_resp(&w->cl->in, &w->off, &w->r[w->got]))
        w->got++;
    return w->got == w->count;
}

static want_resp_t *expect_resp(hx_t *x, tt_client_t *cl, int count)
{
    static want_resp_t w;
    memset(&w, 0, sizeof(w));
    w.cl = cl;
    w.count = count;
    assert_true(tt_run_until(&x->env, cl, cond_resp, &w, 3));
    rt_buf_consume(&cl->in, w.off);
    return &w;
}

static const char req_post[] = "POST /echo?a=1 HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\n"
                               "Content-Length: 5\r\n\r\nhello";

static void check_echo(const tt_resp_t *r)
{
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "POST /echo?a=1 body=hello x=yes");
    assert_non_null(strstr(r->head, "Connection: keep-alive\r\n"));
    assert_non_null(strstr(r->head, "X-Extra: 1\r\n"));
    assert_non_null(strstr(r->head, "Content-Type: text/plain\r\n"));
}

static void test_whole(void **state)
{
    hx_t *x = hx_new(NULL);
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, req_post);
    want_resp_t *w = expect_resp(x, &cl, 1);
    check_echo(&w->r[0]);
    /* Keep-alive: the same connection answers again. */
    tt_write_str(&cl, "GET /two HTTP/1.1\r\nHost: x\r\n\r\n");
    w = expect_resp(x, &cl, 1);
    assert_string_equal(w->r[0].body, "GET /two? body=");
    assert_false(cl.eof);
    tt_spin(&x->env, &cl, 3);
    assert_int_equal(x->env.tl.read_pool.in_use, 0);
    tt_client_close(&cl);
    hx_free(x);
}

static void test_byte_by_byte(void **state)
{
    hx_t *x = hx_new(NULL);
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    for (size_t i = 0; i < strlen(req_post); i++) {
        tt_write(&cl, req_post + i, 1);
        tt_spin(&x->env, &cl, 1);
    }
    want_resp_t *w = expect_resp(x, &cl, 1);
    check_echo(&w->r[0]);
    assert_int_equal(x->env.tl.read_pool.in_use, 0);
    tt_client_close(&cl);
    hx_free(x);
}

static const char req_chunked[] =
    "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";

static void split_case(const char *req, const char *want_body)
{
    size_t n = strlen(req);
    hx_t *x = hx_new(NULL);
    for (size_t cut = 1; cut < n; cut++) {
        tt_client_t cl;
        tt_client_open(&cl, x->srv);
        tt_write(&cl, req, cut);
        tt_spin(&x->env, &cl, 2);
        tt_write(&cl, req + cut, n - cut);
        want_resp_t *w = expect_resp(x, &cl, 1);
        assert_int_equal(w->r[0].status, 200);
        assert_string_equal(w->r[0].body, want_body);
        tt_client_close(&cl);
        tt_spin(&x->env, NULL, 2);
    }
    assert_int_equal(x->env.tl.stats.conns_open, 0);
    hx_free(x);
}

static void test_split_every_offset(void **state)
{
    split_case(req_post, "POST /echo?a=1 body=hello x=yes");
    split_case(req_chunked, "POST /c? body=abcdefg");
}

static void test_pipelined_async(void **state)
{
    hx_t *x = hx_new(NULL);
    x->async_slow = true;
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /b?q=2 HTTP/1.1\r\nHost: x\r\n\r\n");
    tt_spin(&x->env, &cl, 20);
    /* Only the first request is with the handler; nothing is answered yet. */
    assert_string_equal(x->log, "/slow;");
    assert_int_equal(cl.in.len, 0);
    assert_non_null(x->held);
    tr_http_respond(x->held, 202, NULL, RT_STR("late"), NULL);
    x->held = NULL;
    want_resp_t *w = expect_resp(x, &cl, 3);
    assert_int_equal(w->r[0].status, 202);
    assert_string_equal(w->r[0].body, "late");
    assert_string_equal(w->r[1].body, "GET /a? body=");
    assert_string_equal(w->r[2].body, "GET /b?q=2 body=");
    assert_string_equal(x->log, "/slow;/a;/b;");
    tt_client_close(&cl);
    hx_free(x);
}

/* Coalescing under load (tr_loop hold): each request puts one frame on a subscriber
 * connection and is answered on the next pass, the way a publish is (the broker defers
 * its fan-out and callback), so a pipelined backlog yields one request per pass. */
typedef struct coalesce {
    hx_t *x;
    tr_conn_t *sub; /* the subscriber's server side */
    ev_timer answer;
    tr_http_req_t *pending[16];
    int npending;
} coalesce_t;

static void coalesce_answer(struct ev_loop *loop, ev_timer *w, int revents)
{
    coalesce_t *co = w->data;
    for (int i = 0; i < co->npending; i++) {
        char frame[16];
        int n = snprintf(frame, sizeof(frame), "f%d;", co->x->nreq - co->npending + i);
        tr__conn_enqueue_copy(co->sub, frame, (size_t)n);
        tr_http_respond(co->pending[i], 200, "text/plain", RT_STR("ok"), NULL);
    }
    co->npending = 0;
}

static void coalesce_request(tr_http_req_t *req, void *ud)
{
    coalesce_t *co = ud;
    co->x->nreq++;
    co->pending[co->npending++] = req;
    ev_timer_set(&co->answer, 0., 0.);
    ev_timer_start(co->x->env.loop, &co->answer);
}

static bool cond_sub_frames(void *arg)
{
    tt_client_t *sub = arg;
    return sub->in.len >= 8 * 3; /* "f0;" .. "f7;" */
}

static void sink_input(tr_conn_t *c)
{
    c->roff = c->rlen;
}

static void sink_drop(tr_conn_t *c, int reason)
{
}

static void sink_free(tr_conn_t *c)
{
}

/* Runs 8 pipelined requests with flush_holds; returns the write calls they took. */
static uint64_t coalesce_run(int flush_holds)
{
    tr_limits_t lim;
    tr_limits_default(&lim);
    lim.flush_holds = flush_holds;
    coalesce_t co = {0};
    co.x = hx_new(&lim);
    tr_http_server_free(co.x->srv);
    tr_http_handler_t h = {coalesce_request, &co};
    co.x->srv = tr__http_server_new(&co.x->env.tl, &h);
    ev_timer_init(&co.answer, coalesce_answer, 0., 0.);
    co.answer.data = &co;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    tt_client_t sub = {.fd = sv[0], .in = RT_BUF_INIT};
    static const tr_conn_ops_t sink_ops = {sink_input, sink_drop, sink_free};
    co.sub = tr__conn_new(&co.x->env.tl, sv[1], "sub", &sink_ops, NULL);
    ev_io_stop(co.x->env.loop, &co.sub->rio); /* it only writes */

    tt_client_t cl;
    tt_client_open(&cl, co.x->srv);
    uint64_t w0 = co.x->env.tl.stats.writes;
    char reqs[1024] = "";
    for (int i = 0; i < 8; i++)
        strcat(reqs, "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    tt_write_str(&cl, reqs);
    want_resp_t *w = expect_resp(co.x, &cl, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(w->r[i].status, 200);
    w = expect_resp(co.x, &cl, 4);
    assert_true(tt_run_until(&co.x->env, &sub, cond_sub_frames, &sub, 3));
    uint64_t writes = co.x->env.tl.stats.writes - w0;
    rt_buf_append_byte(&sub.in, 0);
    assert_string_equal((const char *)sub.in.p, "f0;f1;f2;f3;f4;f5;f6;f7;");
    tr__conn_drop(co.sub, 0);
    tt_client_close(&sub);
    tt_client_close(&cl);
    ev_timer_stop(co.x->env.loop, &co.answer);
    hx_free(co.x);
    return writes;
}

static void test_flush_coalesces_under_load(void **state)
{
    uint64_t each_pass = coalesce_run(0);
    uint64_t held = coalesce_run(4);
    /* Without holds every pass writes the subscriber and the client once: 16 writes. With
     * up to 4 holds the 8 frames and responses leave in at most 2 flushes each, in order. */
    assert_int_equal(each_pass, 16);
    assert_true(held <= 4);
}

/* With no request in the pass there is nothing to wait for: a lone answer is written in
 * the pass after it was produced, and the loop never sleeps on held output. */
static void on_client_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    tt_client_read(w->data);
}

/* Writes req from a client the loop itself reads, then runs blocking passes (at most 16)
 * until an answer arrives; returns the seconds that took. Output held in a way that let the
 * loop sleep would wait for the 30 s idle timeout, since nothing else happens. */
static double first_answer_s(hx_t *x, tt_client_t *cl, const char *req)
{
    ev_io cw;
    ev_io_init(&cw, on_client_readable, cl->fd, EV_READ);
    cw.data = cl;
    ev_io_start(x->env.loop, &cw);
    tt_write_str(cl, req);
    double t0 = tt_now();
    for (int i = 0; i < 16 && cl->in.len == 0; i++)
        ev_run(x->env.loop, EVRUN_ONCE);
    ev_io_stop(x->env.loop, &cw);
    assert_true(cl->in.len > 0);
    return tt_now() - t0;
}

static void test_flush_hold_never_sleeps(void **state)
{
    hx_t *x = hx_new(NULL);
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    assert_true(first_answer_s(x, &cl, req_post) < 1.0);
    tt_client_close(&cl);
    hx_free(x);
}

/* Output held while a request is still with its handler (a Redis round trip) waits at most
 * TR_FLUSH_HOLD_MAX_S: here /slow is never answered, and /a's answer must still leave. */
static void test_flush_hold_bounded_by_in_flight_wait(void **state)
{
    hx_t *x = hx_new(NULL);
    x->async_slow = true;
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    assert_true(first_answer_s(x, &cl,
                               "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n") < 0.5);
    assert_string_equal(x->log, "/a;/slow;");
    assert_non_null(x->held);
    tr_http_respond(x->held, 200, NULL, RT_STR("late"), NULL);
    x->held = NULL;
    tt_client_close(&cl);
    hx_free(x);
}

static void test_connection_close(void **state)
{
    hx_t *x = hx_new(NULL);
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      "GET /never HTTP/1.1\r\n\r\n");
    want_resp_t *w = expect_resp(x, &cl, 1);
    assert_non_null(strstr(w->r[0].head, "Connection: close\r\n"));
    assert_true(tt_run_until(&x->env, &cl, tt_cond_eof, &cl, 3));
    assert_string_equal(x->log, "/x;");
    tt_client_close(&cl);
    /* HTTP/1.0 without keep-alive closes too. */
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "GET /old HTTP/1.0\r\n\r\n");
    w = expect_resp(x, &cl, 1);
    assert_non_null(strstr(w->r[0].head, "Connection: close\r\n"));
    assert_true(tt_run_until(&x->env, &cl, tt_cond_eof, &cl, 3));
    tt_client_close(&cl);
    hx_free(x);
}

/* An error answer for bad, while a second connection keeps working. */
static void error_case(const tr_limits_t *lim, const char *bad, size_t bad_len, int status,
                       const char *json)
{
    hx_t *x = hx_new(lim);
    tt_client_t good, cl;
    tt_client_open(&good, x->srv);
    tt_client_open(&cl, x->srv);
    tt_write(&cl, bad, bad_len);
    want_resp_t *w = expect_resp(x, &cl, 1);
    assert_int_equal(w->r[0].status, status);
    assert_string_equal(w->r[0].body, json);
    assert_non_null(strstr(w->r[0].head, "Connection: close\r\n"));
    assert_non_null(strstr(w->r[0].head, "Content-Type: application/json\r\n"));
    assert_true(tt_run_until(&x->env, &cl, tt_cond_eof, &cl, 3));
    assert_int_equal(x->nreq, 0);
    tt_write_str(&good, "GET /ok HTTP/1.1\r\n\r\n");
    w = expect_resp(x, &good, 1);
    assert_int_equal(w->r[0].status, 200);
    tt_client_close(&cl);
    tt_client_close(&good);
    tt_spin(&x->env, NULL, 2);
    hx_free(x);
}

static void test_errors(void **state)
{
    tr_limits_t lim;
    tr_limits_default(&lim);
    lim.max_body_bytes = 10;
    lim.max_header_bytes = 200;
    static const char garbage[] = "\x01\x02 NOT HTTP\r\n\r\n";
    error_case(&lim, garbage, sizeof(garbage) - 1, 400, "{\"error\":\"bad request\"}");
    static const char big[] = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";
    error_case(&lim, big, sizeof(big) - 1, 413, "{\"error\":\"request body too large\"}");
    static const char big_chunked[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n";
    error_case(&lim, big_chunked, sizeof(big_chunked) - 1, 413,
               "{\"error\":\"request body too large\"}");
    char hdr[600];
    snprintf(hdr, sizeof(hdr), "GET / HTTP/1.1\r\nX-Big: %0300d\r\n\r\n", 7);
    error_case(&lim, hdr, strlen(hdr), 431, "{\"error\":\"request header too large\"}");
}

static void test_query_param(void **state)
{
    hx_t *x = hx_new(NULL);
    x->async_slow = true;
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "GET /slow?a=1&cf%5Fp=x%2By+z&empty=&flag&bad=%zz%4 HTTP/1.1\r\n\r\n");
    tt_spin(&x->env, &cl, 10);
    assert_non_null(x->held);
    rt_buf_t v = RT_BUF_INIT;
    assert_int_equal(tr_http_req_query_param(x->held, "cf_p", &v), 0);
    assert_true(rt_str_eq_c(rt_buf_str(&v), "x+y z"));
    rt_buf_reset(&v);
    assert_int_equal(tr_http_req_query_param(x->held, "a", &v), 0);
    assert_true(rt_str_eq_c(rt_buf_str(&v), "1"));
    rt_buf_reset(&v);
    assert_int_equal(tr_http_req_query_param(x->held, "empty", &v), 0);
    assert_int_equal(v.len, 0);
    assert_int_equal(tr_http_req_query_param(x->held, "flag", &v), 0);
    assert_int_equal(tr_http_req_query_param(x->held, "bad", &v), 0);
    assert_true(rt_str_eq_c(rt_buf_str(&v), "%zz%4"));
    assert_int_equal(tr_http_req_query_param(x->held, "missing", &v), RT_ENOTFOUND);
    assert_true(rt_str_eq_c(tr_http_req_path(x->held), "/slow"));
    assert_null(tr_http_req_header(x->held, "nope").p);
    assert_string_equal(tr_http_req_remote(x->held), "test");
    rt_buf_cleanup(&v);
    tr_http_respond_error(x->held, 404, "not \"found\"");
    x->held = NULL;
    want_resp_t *w = expect_resp(x, &cl, 1);
    assert_int_equal(w->r[0].status, 404);
    assert_string_equal(w->r[0].body, "{\"error\":\"not \\\"found\\\"\"}");
    tt_client_close(&cl);
    hx_free(x);
}

static void on_abort(void *ud)
{
    ((hx_t *)ud)->aborts++;
}

static void test_abort_and_idle(void **state)
{
    tr_limits_t lim;
    tr_limits_default(&lim);
    lim.http_idle_timeout_s = 0.1;
    hx_t *x = hx_new(&lim);
    x->async_slow = true;
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "GET /slow HTTP/1.1\r\n\r\n");
    tt_spin(&x->env, &cl, 5);
    assert_non_null(x->held);
    tr_http_req_on_abort(x->held, on_abort, x);
    /* A pending request is not subject to the idle timeout. */
    usleep(150000);
    tt_spin(&x->env, &cl, 5);
    assert_int_equal(x->aborts, 0);
    tt_client_close(&cl);
    tt_spin(&x->env, NULL, 5);
    assert_int_equal(x->aborts, 1);
    x->held = NULL;
    /* Idle keep-alive connection: closed after the timeout. */
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "GET /a HTTP/1.1\r\n\r\n");
    expect_resp(x, &cl, 1);
    double t0 = tt_now();
    assert_true(tt_run_until(&x->env, &cl, tt_cond_eof, &cl, 3));
    assert_true(tt_now() - t0 >= 0.05);
    tt_client_close(&cl);
    /* A half-sent request is cut off as well. */
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "GET /a HTTP/1.1\r\nHo");
    assert_true(tt_run_until(&x->env, &cl, tt_cond_eof, &cl, 3));
    assert_int_equal(cl.in.len, 0);
    tt_client_close(&cl);
    tt_spin(&x->env, NULL, 2);
    assert_int_equal(x->env.tl.read_pool.in_use, 0);
    hx_free(x);
}

static void test_orphan_response(void **state)
{
    hx_t *x = hx_new(NULL);
    x->async_slow = true;
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "GET /slow HTTP/1.1\r\n\r\n");
    tt_spin(&x->env, &cl, 5);
    assert_non_null(x->held);
    tt_client_close(&cl);
    tt_spin(&x->env, NULL, 5);
    /* No abort callback: the late answer goes nowhere and frees the request. */
    tr_http_respond(x->held, 200, NULL, RT_STR("x"), NULL);
    x->held = NULL;
    tt_spin(&x->env, NULL, 2);
    hx_free(x);
}

static void test_expect_continue_and_head(void **state)
{
    hx_t *x = hx_new(NULL);
    tt_client_t cl;
    tt_client_open(&cl, x->srv);
    tt_write_str(&cl, "POST /e HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    tt_spin(&x->env, &cl, 5);
    assert_true(cl.in.len >= 25);
    assert_memory_equal(cl.in.p, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    tt_write_str(&cl, "ok");
    want_resp_t *w = expect_resp(x, &cl, 2);
    assert_int_equal(w->r[1].status, 200);
    assert_string_equal(w->r[1].body, "POST /e? body=ok");
    tt_client_close(&cl);
    hx_free(x);
}

static void test_listen_loopback(void **state)
{
    hx_t *x = calloc(1, sizeof(*x));
    tt_env_init(&x->env, NULL);
    tr_http_handler_t h = {on_request, x};
    assert_int_equal(tr_http_listen(&x->env.tl, "127.0.0.1", 0, &h, &x->srv), 0);
    int port = tr__http_server_port(x->srv);
    assert_true(port > 0);
    tt_client_t cl = {.fd = socket(AF_INET, SOCK_STREAM, 0), .in = RT_BUF_INIT};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(cl.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    fcntl(cl.fd, F_SETFL, O_NONBLOCK);
    tt_write_str(&cl, req_post);
    want_resp_t *w = expect_resp(x, &cl, 1);
    check_echo(&w->r[0]);
    assert_int_equal(x->env.tl.stats.conns_accepted, 1);
    /* Server free closes the idle keep-alive connection. */
    tr_http_server_stop(x->srv);
    tr_http_server_free(x->srv);
    x->srv = NULL;
    assert_true(tt_run_until(&x->env, &cl, tt_cond_eof, &cl, 3));
    tt_client_close(&cl);
    tt_spin(&x->env, NULL, 2);
    tt_env_cleanup(&x->env);
    free(x);
}

int run_http(void);
int run_http(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_split_every_offset),
        cmocka_unit_test(test_pipelined_async),
        cmocka_unit_test(test_flush_coalesces_under_load),
        cmocka_unit_test(test_flush_hold_never_sleeps),
        cmocka_unit_test(test_flush_hold_bounded_by_in_flight_wait),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_query_param),
        cmocka_unit_test(test_abort_and_idle),
        cmocka_unit_test(test_orphan_response),
        cmocka_unit_test(test_expect_continue_and_head),
        cmocka_unit_test(test_listen_loopback),
    };
    return cmocka_run_group_tests_name("transports_http", tests, NULL, NULL);
}

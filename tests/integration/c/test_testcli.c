/* Self-test of the C harness (tests/support) against a scripted fake server on loopback,
 * so a failure of test_hostile points at rotor, not at the client. The fake server runs in
 * a thread, uses the same library on its side of the socket (unmasked frames) and records
 * what it saw; the main thread asserts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "node/base/b64.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "tests/support/rt_testcli.h"

typedef struct fake {
    int lfd;           /* owned listening socket */
    int port;          /* its port */
    bool byte_by_byte; /* write every response byte separately */
    void (*script)(struct fake *f, rt_tc_conn_t *peer);
    pthread_t thread;
    /* Recorded by the script for the main thread (read after join). */
    rt_buf_t seen; /* owned; request bytes or a log of client frames */
    int frames_ok; /* number of client frames that passed the script's checks */
    bool failed;   /* the script saw something unexpected */
} fake_t;

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) {
        f->failed = true;
        return NULL;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    rt_tc_conn_t peer;
    memset(&peer, 0, sizeof(peer));
    peer.fd = fd;
    rt_buf_init(&peer.in);
    rt_buf_init(&peer.msgs);
    f->script(f, &peer);
    rt_tc_close(&peer);
    return NULL;
}

static void fake_start(fake_t *f, void (*script)(fake_t *, rt_tc_conn_t *), bool byte_by_byte)
{
    struct sockaddr_in sa = {0};
    socklen_t len = sizeof(sa);

    memset(f, 0, sizeof(*f));
    rt_buf_init(&f->seen);
    f->script = script;
    f->byte_by_byte = byte_by_byte;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 4), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sa, &len), 0);
    f->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_join(fake_t *f)
{
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    close(f->lfd);
}

static void fake_write(fake_t *f, rt_tc_conn_t *peer, const void *p, size_t n)
{
    const uint8_t *b = p;
    if (!f->byte_by_byte) {
        if (rt_tc_send(peer, b, n, 2000) != 0)
            f->failed = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (rt_tc_send(peer, b + i, 1, 2000) != 0) {
            f->failed = true;
            return;
        }
        if (i % 512 == 0)
            usleep(200); /* let the client see partial input */
    }
}

/* Reads the request head into f->seen. */
static void fake_read_head(fake_t *f, rt_tc_conn_t *peer)
{
    while (peer->in.len == 0 || memmem(peer->in.p, peer->in.len, "\r\n\r\n", 4) == NULL) {
        if (rt_tc_fill(peer, 2000) != 0) {
            f->failed = true;
            return;
        }
    }
    const uint8_t *end = memmem(peer->in.p, peer->in.len, "\r\n\r\n", 4);
    size_t n = (size_t)(end - peer->in.p) + 4;
    rt_buf_append(&f->seen, peer->in.p, n);
    rt_buf_consume(&peer->in, n);
}

/* ---- HTTP ---- */

static const char http_stream[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  v1 \r\n\r\nhello"
                                  "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n"
                                  "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n"
                                  "HTTP/1.1 204 No Content\r\n\r\n"
                                  "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nbye";

static void script_http(fake_t *f, rt_tc_conn_t *peer)
{
    fake_read_head(f, peer);
    fake_write(f, peer, http_stream, sizeof(http_stream) - 1);
}

static void run_http(bool byte_by_byte)
{
    fake_t f;
    rt_tc_conn_t c;
    rt_tc_http_resp_t r;

    fake_start(&f, script_http, byte_by_byte);
    rt_tc_http_resp_init(&r);
    assert_int_equal(rt_tc_connect(&c, f.port, 0), 0);
    assert_int_equal(rt_tc_http_send(&c, "POST", "/x?y=1", "X-K: v\r\n", "{}", 2), 0);
    assert_int_equal(rt_tc_http_read(&c, &r, 5000), 0);
    assert_int_equal(r.status, 200);
    assert_true(rt_str_eq(rt_buf_str(&r.body), RT_STR("hello")));
    assert_true(rt_str_eq(rt_tc_http_header(&r, "x-a"), RT_STR("v1")));
    assert_null(rt_tc_http_header(&r, "X-Missing").p);
    assert_false(r.conn_close);
    assert_int_equal(rt_tc_http_read(&c, &r, 5000), 0);
    assert_int_equal(r.status, 404);
    assert_true(rt_str_eq(rt_buf_str(&r.body), RT_STR("abcde")));
    assert_int_equal(rt_tc_http_read(&c, &r, 5000), 0);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body.len, 0);
    assert_int_equal(rt_tc_http_read(&c, &r, 5000), 0);
    assert_int_equal(r.status, 400);
    assert_true(r.conn_close);
    assert_true(rt_str_eq(rt_buf_str(&r.body), RT_STR("bye")));
    assert_int_equal(rt_tc_http_read(&c, &r, 500), RT_ECLOSED);
    rt_tc_close(&c);
    fake_join(&f);
    assert_false(f.failed);
    static const char want[] = "POST /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                               "X-K: v\r\n\r\n";
    assert_true(rt_str_eq(rt_buf_str(&f.seen), RT_STR(want)));
    rt_buf_cleanup(&f.seen);
    rt_tc_http_resp_cleanup(&r);
}

static void t_http_whole(void **state)
{
    run_http(false);
}

static void t_http_byte_by_byte(void **state)
{
    run_http(true);
}

/* ---- WebSocket ---- */

static void fake_accept_ws(fake_t *f, rt_tc_conn_t *peer)
{
    static const char kh[] = "Sec-WebSocket-Key: ";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    rt_buf_t in = RT_BUF_INIT;
    rt_buf_t resp = RT_BUF_INIT;

    fake_read_head(f, peer);
    const char *k = memmem(f->seen.p, f->seen.len, kh, sizeof(kh) - 1);
    if (k == NULL) {
        f->failed = true;
        return;
    }
    k += sizeof(kh) - 1;
    const char *e = strstr(k, "\r\n");
    rt_buf_append(&in, k, (size_t)(e - k));
    rt_buf_append_cstr(&in, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    (void)EVP_Digest(in.p, in.len, md, &md_len, EVP_sha1(), NULL);
    rt_buf_append_cstr(&resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    rt_b64_encode(&resp, md, md_len, false, true);
    rt_buf_append_cstr(&resp, "\r\n\r\n");
    fake_write(f, peer, resp.p, resp.len);
    rt_buf_cleanup(&in);
    rt_buf_cleanup(&resp);
}

/* Builds an unmasked server frame. */
static void frame(rt_buf_t *out, bool fin, int op, const void *p, size_t n)
{
    rt_tc_ws_frame_encode(out, fin, op, p, n, false);
}

static rt_buf_t g_script_out; /* frames the WebSocket script sends, built by the test */

static void script_ws(fake_t *f, rt_tc_conn_t *peer)
{
    rt_tc_ws_frame_t fr;

    fake_accept_ws(f, peer);
    fake_write(f, peer, g_script_out.p, g_script_out.len);
    /* Expect, in order: pong text {}, control pong "pp", close 1000. All masked. */
    rt_tc_ws_frame_init(&fr);
    for (int i = 0; i < 3; i++) {
        if (rt_tc_ws_read_frame(peer, &fr, 3000) != 0 || !fr.masked || !fr.fin) {
            f->failed = true;
            break;
        }
        bool ok = false;
        if (i == 0)
            ok = fr.opcode == RT_TC_WS_TEXT && rt_str_eq(rt_buf_str(&fr.payload), RT_STR("{}"));
        else if (i == 1)
            ok = fr.opcode == RT_TC_WS_PONG && rt_str_eq(rt_buf_str(&fr.payload), RT_STR("pp"));
        else
            ok = fr.opcode == RT_TC_WS_CLOSE && fr.close_code == 1000 &&
                 rt_str_eq(fr.reason, RT_STR("ok"));
        if (!ok) {
            f->failed = true;
            break;
        }
        f->frames_ok++;
    }
    rt_tc_ws_frame_cleanup(&fr);
}

static void run_ws(bool byte_by_byte)
{
    fake_t f;
    rt_tc_conn_t c;
    rt_buf_t line = RT_BUF_INIT;
    rt_buf_t big = RT_BUF_INIT;

    rt_buf_init(&g_script_out);
    frame(&g_script_out, true, RT_TC_WS_TEXT, "{\"id\":1}\n{\"id\":2}", 17);
    frame(&g_script_out, true, RT_TC_WS_TEXT, "{}", 2);
    frame(&g_script_out, false, RT_TC_WS_TEXT, "{\"push\"", 7);
    frame(&g_script_out, true, RT_TC_WS_PING, "pp", 2);
    frame(&g_script_out, true, RT_TC_WS_CONT, ":1}", 3);
    rt_buf_reserve(&big, 70000);
    memset(big.p, 'q', 70000);
    big.len = 70000;
    frame(&g_script_out, true, RT_TC_WS_TEXT, big.p, big.len);
    frame(&g_script_out, true, RT_TC_WS_CLOSE,
          "\x0d\xad"
          "bad request",
          13);

    fake_start(&f, script_ws, byte_by_byte);
    assert_int_equal(rt_tc_connect(&c, f.port, 0), 0);
    assert_int_equal(rt_tc_ws_handshake(&c, "/connection/websocket", NULL, NULL), 0);
    assert_int_equal(rt_tc_cf_next(&c, &line, 5000), 0);
    assert_string_equal((const char *)line.p, "{\"id\":1}");
    assert_int_equal(rt_tc_cf_next(&c, &line, 5000), 0);
    assert_string_equal((const char *)line.p, "{\"id\":2}");
    assert_int_equal(rt_tc_cf_next(&c, &line, 5000), 0);
    assert_string_equal((const char *)line.p, "{\"push\":1}");
    assert_int_equal(rt_tc_cf_next(&c, &line, 5000), 0);
    assert_int_equal(line.len, 70000);
    assert_int_equal(rt_tc_cf_next(&c, &line, 5000), RT_ECLOSED);
    assert_int_equal(c.close_code, 3501);
    assert_int_equal(rt_tc_ws_send_close(&c, 1000, "ok"), 0);
    fake_join(&f);
    assert_false(f.failed);
    assert_int_equal(f.frames_ok, 3);
    assert_int_equal(rt_tc_wait_eof(&c, 2000), 0);
    rt_tc_close(&c);
    rt_buf_cleanup(&line);
    rt_buf_cleanup(&big);
    rt_buf_cleanup(&f.seen);
    rt_buf_cleanup(&g_script_out);
}

static void t_ws_whole(void **state)
{
    run_ws(false);
}

static void t_ws_byte_by_byte(void **state)
{
    run_ws(true);
}

/* Server sends a close frame, then the test reads it with rt_tc_ws_wait_close. */
static void script_close_only(fake_t *f, rt_tc_conn_t *peer)
{
    fake_accept_ws(f, peer);
    fake_write(f, peer, g_script_out.p, g_script_out.len);
    usleep(100000);
}

static void t_ws_wait_close(void **state)
{
    fake_t f;
    rt_tc_conn_t c;
    rt_buf_t reason = RT_BUF_INIT;
    int code = 0;

    rt_buf_init(&g_script_out);
    frame(&g_script_out, true, RT_TC_WS_TEXT, "{}", 2);
    frame(&g_script_out, true, RT_TC_WS_CLOSE,
          "\x0d\xae"
          "stale",
          7);
    fake_start(&f, script_close_only, false);
    assert_int_equal(rt_tc_connect(&c, f.port, 0), 0);
    assert_int_equal(rt_tc_ws_handshake(&c, "/", NULL, NULL), 0);
    assert_int_equal(rt_tc_ws_wait_close(&c, &code, &reason, 3000), 0);
    assert_int_equal(code, 3502);
    assert_string_equal((const char *)reason.p, "stale");
    /* After the script ends the socket closes: no close frame any more. */
    assert_int_equal(rt_tc_ws_wait_close(&c, &code, &reason, 3000), RT_ECLOSED);
    assert_int_equal(code, 1006);
    fake_join(&f);
    rt_tc_close(&c);
    rt_buf_cleanup(&reason);
    rt_buf_cleanup(&f.seen);
    rt_buf_cleanup(&g_script_out);
}

/* A wrong Sec-WebSocket-Accept is refused. */
static void script_bad_accept(fake_t *f, rt_tc_conn_t *peer)
{
    static const char r[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
    fake_read_head(f, peer);
    fake_write(f, peer, r, sizeof(r) - 1);
}

static void t_ws_bad_accept(void **state)
{
    fake_t f;
    rt_tc_conn_t c;
    rt_tc_http_resp_t r;

    rt_tc_http_resp_init(&r);
    fake_start(&f, script_bad_accept, false);
    assert_int_equal(rt_tc_connect(&c, f.port, 0), 0);
    assert_int_equal(rt_tc_ws_handshake(&c, "/", NULL, &r), RT_EPROTO);
    assert_int_equal(r.status, 101);
    fake_join(&f);
    rt_tc_close(&c);
    rt_tc_http_resp_cleanup(&r);
    rt_buf_cleanup(&f.seen);
}

/* ---- pure helpers ---- */

static void t_jwt_vector(void **state)
{
    rt_buf_t t = RT_BUF_INIT;
    rt_tc_jwt_hs256(&t, "secret", "{\"sub\":\"42\"}");
    /* Computed independently with Python's hmac + base64.urlsafe_b64encode. */
    assert_string_equal((const char *)t.p, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiJ9."
                                           "79CVgMIG_JB921dVUeJDWNJubJojFodH3-XtC_1C408");
    rt_buf_cleanup(&t);
}

static void t_uuid_and_client_id(void **state)
{
    rt_buf_t id = RT_BUF_INIT;
    assert_true(rt_tc_is_uuid(RT_STR("5b9a3c0e-6f3a-4f2b-9a1e-2d1c7a6b8e11")));
    assert_false(rt_tc_is_uuid(RT_STR("5b9a3c0e-6f3a-4f2b-9a1e-2d1c7a6b8e1")));
    assert_false(rt_tc_is_uuid(RT_STR("5B9A3C0E-6f3a-4f2b-9a1e-2d1c7a6b8e11")));
    assert_false(rt_tc_is_uuid(RT_STR("5b9a3c0e_6f3a-4f2b-9a1e-2d1c7a6b8e11")));
    assert_int_equal(rt_tc_cf_client_id(RT_STR("{\"id\":1,\"connect\":{\"client\":\"abc\"}}"), &id),
                     0);
    assert_string_equal((const char *)id.p, "abc");
    assert_int_equal(rt_tc_cf_client_id(RT_STR("{\"id\":1}"), &id), RT_EPROTO);
    rt_buf_cleanup(&id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_http_whole),    cmocka_unit_test(t_http_byte_by_byte),
        cmocka_unit_test(t_ws_whole),      cmocka_unit_test(t_ws_byte_by_byte),
        cmocka_unit_test(t_ws_wait_close), cmocka_unit_test(t_ws_bad_accept),
        cmocka_unit_test(t_jwt_vector),    cmocka_unit_test(t_uuid_and_client_id),
    };
    return cmocka_run_group_tests_name("testcli", tests, NULL, NULL) ? 1 : 0;
}

/* TLS to Redis through the relay (broker/rds_tls.h): real redis-server processes with
 * TLS only on their TCP port and throwaway certificates made by the openssl CLI. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/rds_tls.h"
#include "node/base/alloc.h"
#include "rds_test.h"
#include "tests/support/rt_redis.h"

typedef struct fixture {
    struct ev_loop *loop;
    rt_redis_tls_t tls;
    rt_redis_t redis;  /* TLS, no client certificates */
    rt_redis_t mredis; /* TLS, client certificate required */
    char *ca_pem;      /* tls.ca as text */
    char *other_ca_pem;
    char *client_cert_pem;
    char *client_key_pem;
} fixture_t;

static fixture_t fx;

static int group_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    fx.loop = ev_loop_new(EVFLAG_AUTO);
    int rc = rt_redis_tls_make(&fx.tls);
    if (rc == 0)
        rc = rt_redis_start_tls(&fx.redis, &fx.tls, false, NULL);
    if (rc == 0)
        rc = rt_redis_start_tls(&fx.mredis, &fx.tls, true, NULL);
    if (rc != 0) {
        print_error("cannot set up TLS redis-server: %s\n", rt_strerror(rc));
        return -1;
    }
    fx.ca_pem = rt_redis_read_file(fx.tls.ca);
    fx.other_ca_pem = rt_redis_read_file(fx.tls.other_ca);
    fx.client_cert_pem = rt_redis_read_file(fx.tls.client_cert);
    fx.client_key_pem = rt_redis_read_file(fx.tls.client_key);
    return fx.ca_pem && fx.other_ca_pem && fx.client_cert_pem && fx.client_key_pem ? 0 : -1;
}

static int group_teardown(void **state)
{
    rt_redis_stop(&fx.redis);
    rt_redis_stop(&fx.mredis);
    rt_redis_tls_cleanup(&fx.tls);
    rt_free(fx.ca_pem);
    rt_free(fx.other_ca_pem);
    rt_free(fx.client_cert_pem);
    rt_free(fx.client_key_pem);
    ev_loop_destroy(fx.loop);
    return 0;
}

static void set_field(char **field, const char *v)
{
    rt_free(*field);
    *field = rt_strdup(v);
}

/* rediss://127.0.0.1:<port> trusting ca_pem (NULL: no CA text). */
static void tls_addr(rds_addr_t *a, const rt_redis_t *r, const char *ca_pem)
{
    rds_test_addr(a, "rediss://127.0.0.1:%d?connect_timeout=500ms", r->port);
    assert_true(a->tls.enabled);
    if (ca_pem != NULL)
        set_field(&a->tls.ca_pem, ca_pem);
}

static rds_client_t *client_new(const rds_addr_t *a, rds_test_state_t *st)
{
    rds_client_opts_t o;
    rds_client_opts_default(&o);
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 200;
    o.on_state = rds_test_on_state;
    o.ud = st;
    memset(st, 0, sizeof(*st));
    return rds_client_new(fx.loop, a, &o);
}

static rds_client_t *up_client(const rds_addr_t *a, rds_test_state_t *st)
{
    rds_client_t *c = client_new(a, st);
    RUN_UNTIL(fx.loop, st->ups == 1, 3000);
    assert_int_equal(st->ups, 1);
    assert_true(rds_client_ready(c));
    return c;
}

/* SET key val then GET key over c; val may hold any bytes. */
static void set_get(rds_client_t *c, const char *key, const char *val, size_t n)
{
    const char *argv[3] = {"SET", key, val};
    size_t lens[3] = {3, strlen(key), n};
    rds_test_res_t set;
    memset(&set, 0, sizeof(set));
    assert_int_equal(rds_client_command(c, rds_test_on_reply, &set, 3, argv, lens), 0);
    RUN_UNTIL(fx.loop, set.calls == 1, 3000);
    assert_int_equal(set.status, 0);
    assert_string_equal(set.str, "OK");

    /* GET's reply may exceed rds_test_res_t's copy: compare the length and a prefix. */
    rds_test_res_t get;
    assert_int_equal(rds_test_cmd(c, &get, "GET", key, NULL), 0);
    RUN_UNTIL(fx.loop, get.calls == 1, 3000);
    assert_int_equal(get.status, 0);
    assert_int_equal(get.type, REDIS_REPLY_STRING);
    assert_int_equal(get.len, n);
    size_t cmp = n < sizeof(get.str) - 1 ? n : sizeof(get.str) - 1;
    assert_memory_equal(get.str, val, cmp);
}

/* Captures what the code under test logs (stderr) between start and end. */
typedef struct capture {
    int saved;
    char path[64];
} capture_t;

static void capture_start(capture_t *cap)
{
    fflush(stderr);
    snprintf(cap->path, sizeof(cap->path), "/tmp/rt_tls_log.XXXXXX");
    int fd = mkstemp(cap->path);
    assert_true(fd >= 0);
    cap->saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *capture_end(capture_t *cap)
{
    fflush(stderr);
    dup2(cap->saved, 2);
    close(cap->saved);
    char *text = rt_redis_read_file(cap->path);
    unlink(cap->path);
    assert_non_null(text);
    return text;
}

static void test_roundtrip_with_ca(void **state)
{
    rds_addr_t a;
    tls_addr(&a, &fx.redis, fx.ca_pem);
    rds_test_state_t st;
    rds_client_t *c = up_client(&a, &st);
    set_get(c, "tls:k", "v\0\r\nw", 5);
    /* Larger than the relay's buffers both ways: backpressure and partial writes. */
    size_t big_n = 3 * RDS_TLS_BUF_BYTES + 123;
    char *big = rt_malloc(big_n);
    for (size_t i = 0; i < big_n; i++)
        big[i] = (char)(i * 7 + 1);
    set_get(c, "tls:big", big, big_n);
    rt_free(big);
    rds_client_free(c);
    rds_addr_cleanup(&a);
}

static void test_ca_file_and_server_name(void **state)
{
    rds_addr_t a;
    tls_addr(&a, &fx.redis, NULL);
    set_field(&a.tls.ca_file, fx.tls.ca);
    set_field(&a.tls.server_name, "localhost"); /* the DNS SAN */
    rds_test_state_t st;
    rds_client_t *c = up_client(&a, &st);
    set_get(c, "tls:file", "x", 1);
    rds_client_free(c);

    /* A name the certificate does not carry. */
    set_field(&a.tls.server_name, "redis.example.com");
    c = client_new(&a, &st);
    RUN_UNTIL(fx.loop, st.ups > 0, 1000);
    assert_int_equal(st.ups, 0);
    rds_client_free(c);
    rds_addr_cleanup(&a);
}

static void test_wrong_ca_fails_then_insecure_works(void **state)
{
    rds_addr_t a;
    tls_addr(&a, &fx.redis, fx.other_ca_pem);
    rds_test_state_t st;
    capture_t cap;
    capture_start(&cap);
    rds_client_t *c = client_new(&a, &st);
    RUN_UNTIL(fx.loop, st.ups > 0, 1500);
    rds_client_free(c);
    char *log = capture_end(&cap);
    assert_int_equal(st.ups, 0);
    if (strstr(log, "certificate verify failed") == NULL)
        fail_msg("no clear log line about the certificate:\n%s", log);
    assert_non_null(strstr(log, "redis connect failed"));
    rt_free(log);

    a.tls.insecure_skip_verify = true;
    c = up_client(&a, &st);
    set_get(c, "tls:insecure", "y", 1);
    rds_client_free(c);
    rds_addr_cleanup(&a);
}

static void test_mtls(void **state)
{
    rds_addr_t a;
    tls_addr(&a, &fx.mredis, fx.ca_pem);
    rds_test_state_t st;

    /* No client certificate: the server refuses (TLS 1.3 tells only after the handshake,
     * so the link sees its first reply fail). */
    rds_client_t *c = client_new(&a, &st);
    RUN_UNTIL(fx.loop, st.ups > 0, 1500);
    assert_int_equal(st.ups, 0);
    rds_client_free(c);

    set_field(&a.tls.cert_pem, fx.client_cert_pem);
    set_field(&a.tls.key_pem, fx.client_key_pem);
    c = up_client(&a, &st);
    set_get(c, "mtls:pem", "z", 1);
    rds_client_free(c);

    set_field(&a.tls.cert_pem, "");
    set_field(&a.tls.key_pem, "");
    set_field(&a.tls.cert_file, fx.tls.client_cert);
    set_field(&a.tls.key_file, fx.tls.client_key);
    c = up_client(&a, &st);
    set_get(c, "mtls:file", "z", 1);
    rds_client_free(c);
    rds_addr_cleanup(&a);
}

typedef struct sub_rec {
    int ups;
    int msgs;
    char last[64];
} sub_rec_t;

static void on_message(void *ud, rt_str_t channel, rt_str_t payload)
{
    sub_rec_t *s = ud;
    s->msgs++;
    snprintf(s->last, sizeof(s->last), RT_STR_FMT "=" RT_STR_FMT, RT_STR_ARG(channel),
             RT_STR_ARG(payload));
}

static void on_sub_state(void *ud, bool up)
{
    sub_rec_t *s = ud;
    if (up)
        s->ups++;
}

static void test_pubsub(void **state)
{
    rds_addr_t a;
    tls_addr(&a, &fx.redis, fx.ca_pem);
    sub_rec_t sub = {0};
    rds_pubsub_handler_t h = {on_message, on_sub_state, &sub};
    rds_pubsub_t *ps = rds_pubsub_new(fx.loop, &a, &h, 1000);
    rds_pubsub_subscribe(ps, RT_STR("tls.ch"));
    rds_test_state_t st;
    rds_client_t *c = up_client(&a, &st);
    RUN_UNTIL(fx.loop, sub.ups == 1, 3000);
    assert_int_equal(sub.ups, 1);
    rds_test_res_t res;
    assert_int_equal(rds_test_cmd(c, &res, "PUBLISH", "tls.ch", "hello", NULL), 0);
    RUN_UNTIL(fx.loop, res.calls == 1 && sub.msgs == 1, 3000);
    assert_int_equal(res.integer, 1);
    assert_int_equal(sub.msgs, 1);
    assert_string_equal(sub.last, "tls.ch=hello");
    rds_client_free(c);
    rds_pubsub_free(ps);
    rds_addr_cleanup(&a);
}

static void test_restart_reconnects(void **state)
{
    rt_redis_t r;
    assert_int_equal(rt_redis_start_tls(&r, &fx.tls, false, NULL), 0);
    rds_addr_t a;
    tls_addr(&a, &r, fx.ca_pem);
    rds_test_state_t st;
    rds_client_t *c = up_client(&a, &st);
    set_get(c, "tls:before", "1", 1);
    assert_int_equal(rt_redis_restart(&r), 0);
    RUN_UNTIL(fx.loop, st.ups == 2, 5000);
    assert_int_equal(st.ups, 2);
    assert_int_equal(st.downs, 1);
    assert_false(st.bad_transition);
    set_get(c, "tls:after", "2", 1);
    rds_client_free(c);
    rds_addr_cleanup(&a);
    rt_redis_stop(&r);
}

static void test_check_settings(void **state)
{
    rds_tls_t t;
    rds_tls_init(&t);
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(rds_tls_check(&t, &err), 0); /* system store */
    set_field(&t.ca_pem, "not a certificate");
    assert_int_equal(rds_tls_check(&t, &err), RT_EINVAL);
    assert_non_null(memmem(err.p, err.len, "server CA", 9));
    set_field(&t.ca_pem, fx.ca_pem);
    set_field(&t.cert_pem, fx.client_cert_pem);
    rt_buf_reset(&err);
    assert_int_equal(rds_tls_check(&t, &err), RT_EINVAL); /* no key */
    set_field(&t.key_pem, fx.client_key_pem);
    assert_int_equal(rds_tls_check(&t, NULL), 0);
    set_field(&t.ca_file, "/nonexistent/ca.pem");
    set_field(&t.ca_pem, "");
    assert_int_equal(rds_tls_check(&t, NULL), RT_EINVAL);
    rt_buf_cleanup(&err);
    rds_tls_cleanup(&t);
}

static void test_relay_socket_is_private(void **state)
{
    rds_tls_t t;
    rds_tls_init(&t);
    rds_tls_relay_t *r = NULL;
    assert_int_equal(rds_tls_relay_new(fx.loop, &t, "127.0.0.1", fx.redis.port, 500, &r, NULL), 0);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s", rds_tls_relay_path(r));
    *strrchr(dir, '/') = '\0';
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(sb.st_uid, getuid());
    rds_tls_relay_free(r);
    assert_int_not_equal(stat(dir, &sb), 0);
    rds_tls_cleanup(&t);
}

int run_rds_tls(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_with_ca),
        cmocka_unit_test(test_ca_file_and_server_name),
        cmocka_unit_test(test_wrong_ca_fails_then_insecure_works),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_pubsub),
        cmocka_unit_test(test_restart_reconnects),
        cmocka_unit_test(test_check_settings),
        cmocka_unit_test(test_relay_socket_is_private),
    };
    return cmocka_run_group_tests_name("rds_tls", tests, group_setup, group_teardown);
}

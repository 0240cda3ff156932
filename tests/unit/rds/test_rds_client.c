#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rds_test.h"
#include "tests/support/rt_redis.h"

typedef struct fixture {
    struct ev_loop *loop;
    rt_redis_t redis;
} fixture_t;

static fixture_t fx;

static int group_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    fx.loop = ev_loop_new(EVFLAG_AUTO);
    int rc = rt_redis_start(&fx.redis, NULL);
    if (rc != 0)
        print_error("cannot start redis-server: %s\n", rt_strerror(rc));
    return rc == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    rt_redis_stop(&fx.redis);
    ev_loop_destroy(fx.loop);
    return 0;
}

/* A client on fx.redis (or r) with short backoff, run until up. */
static rds_client_t *new_client(const rt_redis_t *r, const char *query, rds_test_state_t *st,
                                size_t max_inflight)
{
    rds_addr_t a;
    rds_test_addr(&a, "redis://127.0.0.1:%d%s", r->port, query ? query : "");
    rds_client_opts_t o;
    rds_client_opts_default(&o);
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 200;
    o.on_state = rds_test_on_state;
    o.ud = st;
    if (max_inflight > 0)
        o.max_inflight = max_inflight;
    memset(st, 0, sizeof(*st));
    rds_client_t *c = rds_client_new(fx.loop, &a, &o);
    rds_addr_cleanup(&a);
    return c;
}

static rds_client_t *up_client(const rt_redis_t *r, const char *query, rds_test_state_t *st)
{
    rds_client_t *c = new_client(r, query, st, 0);
    assert_false(rds_client_ready(c));
    RUN_UNTIL(fx.loop, st->ups == 1, 3000);
    assert_int_equal(st->ups, 1);
    assert_true(rds_client_ready(c));
    return c;
}

static void test_roundtrip_binary(void **state)
{
    rds_test_state_t st;
    rds_client_t *c = up_client(&fx.redis, NULL, &st);
    const char val[] = "a\0b\0\r\nc";
    const char *argv[3] = {"SET", "bin\0key", val};
    size_t lens[3] = {3, 7, sizeof(val) - 1};
    rds_test_res_t set, get, bad;
    memset(&set, 0, sizeof(set));
    assert_int_equal(rds_client_command(c, rds_test_on_reply, &set, 3, argv, lens), 0);
    const char *gargv[2] = {"GET", "bin\0key"};
    size_t glens[2] = {3, 7};
    memset(&get, 0, sizeof(get));
    assert_int_equal(rds_client_command(c, rds_test_on_reply, &get, 2, gargv, glens), 0);
    assert_int_equal(rds_test_cmd(c, &bad, "NOSUCHCOMMAND", "x", NULL), 0);
    /* Never synchronously inside the call. */
    assert_int_equal(set.calls + get.calls + bad.calls, 0);
    RUN_UNTIL(fx.loop, bad.calls == 1, 2000);
    assert_int_equal(set.calls, 1);
    assert_int_equal(set.status, 0);
    assert_string_equal(set.str, "OK");
    assert_int_equal(get.calls, 1);
    assert_int_equal(get.type, REDIS_REPLY_STRING);
    assert_int_equal(get.len, sizeof(val) - 1);
    assert_memory_equal(get.str, val, sizeof(val) - 1);
    assert_int_equal(bad.status, RT_EREDIS);
    assert_int_equal(bad.type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(bad.str, "unknown command"));
    rds_client_free(c);
    assert_false(st.bad_transition);
}

typedef struct seq {
    long long next;
    int calls;
    int errors;
} seq_t;

static void on_incr(int status, const redisReply *r, void *ud)
{
    seq_t *s = ud;
    s->calls++;
    if (status != 0 || r->type != REDIS_REPLY_INTEGER || r->integer != ++s->next)
        s->errors++;
}

static void test_pipeline_10000(void **state)
{
    rds_test_state_t st;
    rds_client_t *c = up_client(&fx.redis, NULL, &st);
    rds_test_res_t del;
    assert_int_equal(rds_test_cmd(c, &del, "DEL", "pipe", NULL), 0);
    seq_t s = {0, 0, 0};
    const char *argv[2] = {"INCR", "pipe"};
    size_t lens[2] = {4, 4};
    for (int i = 0; i < 10000; i++)
        assert_int_equal(rds_client_command(c, on_incr, &s, 2, argv, lens), 0);
    RUN_UNTIL(fx.loop, s.calls == 10000, 10000);
    assert_int_equal(s.calls, 10000);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.next, 10000);
    rds_client_free(c);
}

static void test_inflight_limit(void **state)
{
    rds_test_state_t st;
    rds_client_t *c = new_client(&fx.redis, NULL, &st, 10);
    RUN_UNTIL(fx.loop, st.ups == 1, 3000);
    rds_test_res_t res[11];
    for (int i = 0; i < 10; i++)
        assert_int_equal(rds_test_cmd(c, &res[i], "PING", NULL), 0);
    assert_int_equal(rds_test_cmd(c, &res[10], "PING", NULL), RT_ELIMIT);
    RUN_UNTIL(fx.loop, res[9].calls == 1, 2000);
    for (int i = 0; i < 10; i++)
        assert_int_equal(res[i].calls, 1);
    assert_int_equal(res[10].calls, 0);
    assert_int_equal(rds_test_cmd(c, &res[10], "PING", NULL), 0);
    RUN_UNTIL(fx.loop, res[10].calls == 1, 2000);
    assert_int_equal(res[10].status, 0);
    rds_client_free(c);
}

static void test_select_db(void **state)
{
    rds_test_state_t st3, st0;
    rds_client_t *c3 = up_client(&fx.redis, "/3", &st3);
    rds_client_t *c0 = up_client(&fx.redis, NULL, &st0);
    rds_test_res_t set, get3, get0;
    assert_int_equal(rds_test_cmd(c3, &set, "SET", "dbkey", "three", NULL), 0);
    assert_int_equal(rds_test_cmd(c3, &get3, "GET", "dbkey", NULL), 0);
    RUN_UNTIL(fx.loop, get3.calls == 1, 2000);
    assert_int_equal(rds_test_cmd(c0, &get0, "GET", "dbkey", NULL), 0);
    RUN_UNTIL(fx.loop, get0.calls == 1, 2000);
    assert_string_equal(get3.str, "three");
    assert_int_equal(get0.status, 0);
    assert_int_equal(get0.type, REDIS_REPLY_NIL);
    rds_client_free(c3);
    rds_client_free(c0);
}

static void test_unix_socket(void **state)
{
    rds_addr_t a;
    rds_test_addr(&a, "unix://%s?db=1", fx.redis.sock);
    rds_test_state_t st = {0};
    rds_client_opts_t o;
    rds_client_opts_default(&o);
    o.on_state = rds_test_on_state;
    o.ud = &st;
    rds_client_t *c = rds_client_new(fx.loop, &a, &o);
    rds_addr_cleanup(&a);
    RUN_UNTIL(fx.loop, st.ups == 1, 3000);
    assert_int_equal(st.ups, 1);
    rds_test_res_t ping;
    assert_int_equal(rds_test_cmd(c, &ping, "PING", NULL), 0);
    RUN_UNTIL(fx.loop, ping.calls == 1, 2000);
    assert_string_equal(ping.str, "PONG");
    rds_client_free(c);
}

static void test_auth(void **state)
{
    const char *args[] = {"--requirepass", "s3cr:et", NULL};
    rt_redis_t r;
    assert_int_equal(rt_redis_start(&r, args), 0);
    rds_test_state_t good, good_user, bad, none;
    rds_addr_t a;

    rds_test_addr(&a, "redis://:s3cr%%3Aet@127.0.0.1:%d/2", r.port);
    rds_client_opts_t o;
    rds_client_opts_default(&o);
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 50;
    o.on_state = rds_test_on_state;
    memset(&good, 0, sizeof(good));
    o.ud = &good;
    rds_client_t *c1 = rds_client_new(fx.loop, &a, &o);
    rds_addr_cleanup(&a);

    rds_test_addr(&a, "redis://default:s3cr%%3Aet@127.0.0.1:%d", r.port);
    memset(&good_user, 0, sizeof(good_user));
    o.ud = &good_user;
    rds_client_t *c2 = rds_client_new(fx.loop, &a, &o);
    rds_addr_cleanup(&a);

    rds_test_addr(&a, "redis://:wrong@127.0.0.1:%d", r.port);
    memset(&bad, 0, sizeof(bad));
    o.ud = &bad;
    rds_client_t *c3 = rds_client_new(fx.loop, &a, &o);
    rds_addr_cleanup(&a);

    rds_test_addr(&a, "redis://127.0.0.1:%d", r.port);
    memset(&none, 0, sizeof(none));
    o.ud = &none;
    rds_client_t *c4 = rds_client_new(fx.loop, &a, &o);
    rds_addr_cleanup(&a);

    RUN_UNTIL(fx.loop, good.ups == 1 && good_user.ups == 1, 3000);
    assert_int_equal(good.ups, 1);
    assert_int_equal(good_user.ups, 1);
    rds_test_res_t ping;
    assert_int_equal(rds_test_cmd(c1, &ping, "PING", NULL), 0);
    RUN_UNTIL(fx.loop, ping.calls == 1, 2000);
    assert_string_equal(ping.str, "PONG");
    /* Several retries' worth of time: a refused handshake never reports up. */
    RUN_UNTIL(fx.loop, false, 400);
    assert_int_equal(bad.ups, 0);
    assert_int_equal(none.ups, 0);
    assert_false(rds_client_ready(c3));
    assert_int_equal(rds_test_cmd(c3, &ping, "PING", NULL), RT_ECLOSED);
    rds_client_free(c1);
    rds_client_free(c2);
    rds_client_free(c3);
    rds_client_free(c4);
    rt_redis_stop(&r);
}

static void test_eval_fallback(void **state)
{
    rds_test_state_t st;
    rds_client_t *c = up_client(&fx.redis, NULL, &st);
    rds_script_t s;
    rds_script_init(&s, "concat", "return ARGV[1] .. KEYS[1]");
    assert_string_equal(s.sha, "facee73595c1e83e3ea47cba8d250fc2710fd050");
    rds_test_res_t flush, res, exists;
    assert_int_equal(rds_test_cmd(c, &flush, "SCRIPT", "FLUSH", NULL), 0);
    RUN_UNTIL(fx.loop, flush.calls == 1, 2000);

    const char *argv[2] = {"key", "val\0ue"};
    size_t lens[2] = {3, 6};
    for (int round = 0; round < 3; round++) {
        memset(&res, 0, sizeof(res));
        /* Round 0: not cached (EVALSHA fails, EVAL runs); 1: cached; 2: flushed again. */
        assert_int_equal(rds_client_eval(c, &s, 1, 2, argv, lens, rds_test_on_reply, &res), 0);
        assert_int_equal(res.calls, 0);
        RUN_UNTIL(fx.loop, res.calls >= 1, 2000);
        RUN_UNTIL(fx.loop, false, 20);
        assert_int_equal(res.calls, 1);
        assert_int_equal(res.status, 0);
        assert_int_equal(res.len, 9);
        assert_memory_equal(res.str, "val\0uekey", 9);
        assert_int_equal(rds_test_cmd(c, &exists, "SCRIPT", "EXISTS", s.sha, NULL), 0);
        RUN_UNTIL(fx.loop, exists.calls == 1, 2000);
        assert_int_equal(exists.type, REDIS_REPLY_ARRAY);
        if (round == 1)
            assert_int_equal(rds_test_cmd(c, &flush, "SCRIPT", "FLUSH", NULL), 0);
    }

    /* A script error is the final outcome, passed through. */
    rds_script_t bad;
    rds_script_init(&bad, "bad", "return redis.call('NOSUCH')");
    memset(&res, 0, sizeof(res));
    assert_int_equal(rds_client_eval(c, &bad, 0, 0, NULL, NULL, rds_test_on_reply, &res), 0);
    RUN_UNTIL(fx.loop, res.calls == 1, 2000);
    assert_int_equal(res.status, RT_EREDIS);
    assert_null(strstr(res.str, "NOSCRIPT"));
    rds_client_free(c);
}

typedef struct order {
    int seq[8];
    int n;
} order_t;

static order_t order_log;

static void on_ordered(int status, const redisReply *r, void *ud)
{
    (void)r;
    (void)ud;
    if (order_log.n < 8)
        order_log.seq[order_log.n++] = status;
}

static void on_state_ordered(bool up, void *ud)
{
    rds_test_on_state(up, ud);
    if (!up && order_log.n < 8)
        order_log.seq[order_log.n++] = 100;
}

static void test_command_timeout(void **state)
{
    rds_test_state_t st = {0};
    rds_addr_t a;
    rds_test_addr(&a, "redis://127.0.0.1:%d?io_timeout=300ms", fx.redis.port);
    rds_client_opts_t o;
    rds_client_opts_default(&o);
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 100;
    o.on_state = on_state_ordered;
    o.ud = &st;
    rds_client_t *c = rds_client_new(fx.loop, &a, &o);
    rds_addr_cleanup(&a);
    RUN_UNTIL(fx.loop, st.ups == 1, 3000);
    assert_int_equal(st.ups, 1);

    memset(&order_log, 0, sizeof(order_log));
    const char *sleep_argv[3] = {"DEBUG", "SLEEP", "1"};
    size_t sleep_lens[3] = {5, 5, 1};
    const char *ping_argv[1] = {"PING"};
    size_t ping_lens[1] = {4};
    assert_int_equal(rds_client_command(c, on_ordered, NULL, 3, sleep_argv, sleep_lens), 0);
    assert_int_equal(rds_client_command(c, on_ordered, NULL, 1, ping_argv, ping_lens), 0);
    int64_t t0 = rt_mono_ms();
    RUN_UNTIL(fx.loop, st.downs == 1, 2000);
    int64_t took = rt_mono_ms() - t0;
    assert_int_equal(st.downs, 1);
    assert_true(took >= 250 && took < 900);
    assert_int_equal(order_log.n, 3);
    assert_int_equal(order_log.seq[0], RT_ETIMEOUT);
    assert_int_equal(order_log.seq[1], RT_ECLOSED);
    assert_int_equal(order_log.seq[2], 100);
    /* Fail fast while down. */
    assert_int_equal(rds_client_command(c, on_ordered, NULL, 1, ping_argv, ping_lens), RT_ECLOSED);
    assert_int_equal(order_log.n, 3);

    RUN_UNTIL(fx.loop, st.ups == 2, 5000);
    assert_int_equal(st.ups, 2);
    rds_test_res_t ping;
    assert_int_equal(rds_test_cmd(c, &ping, "PING", NULL), 0);
    RUN_UNTIL(fx.loop, ping.calls == 1, 2000);
    assert_string_equal(ping.str, "PONG");
    assert_false(st.bad_transition);
    rds_client_free(c);
}

static void test_kill_restart(void **state)
{
    rt_redis_t r;
    assert_int_equal(rt_redis_start(&r, NULL), 0);
    rds_test_state_t st;
    rds_client_t *c = up_client(&r, NULL, &st);
    rds_test_res_t blocked, ping;
    assert_int_equal(rds_test_cmd(c, &blocked, "BLPOP", "nothing", "0", NULL), 0);
    RUN_UNTIL(fx.loop, false, 50); /* written to the server */
    rt_redis_kill(&r);
    RUN_UNTIL(fx.loop, st.downs == 1, 2000);
    assert_int_equal(st.downs, 1);
    assert_int_equal(blocked.calls, 1);
    assert_int_equal(blocked.status, RT_ECLOSED);
    assert_false(rds_client_ready(c));
    assert_int_equal(rds_test_cmd(c, &ping, "PING", NULL), RT_ECLOSED);
    RUN_UNTIL(fx.loop, false, 300); /* failed attempts against the dead port */
    assert_int_equal(st.ups, 1);

    assert_int_equal(rt_redis_restart(&r), 0);
    RUN_UNTIL(fx.loop, st.ups == 2, 3000);
    assert_int_equal(st.ups, 2);
    assert_int_equal(rds_test_cmd(c, &ping, "PING", NULL), 0);
    RUN_UNTIL(fx.loop, ping.calls == 1, 2000);
    assert_string_equal(ping.str, "PONG");
    assert_false(st.bad_transition);
    rds_client_free(c);
    rt_redis_stop(&r);
}

/* A frozen server (SIGSTOP) is noticed by the idle keep-alive alone. */
static void test_keepalive_detects_stopped_server(void **state)
{
    rt_redis_t r;
    assert_int_equal(rt_redis_start(&r, NULL), 0);
    rds_test_state_t st;
    rds_client_t *c = up_client(&r, "?io_timeout=300ms", &st);
    kill(r.pid, SIGSTOP);
    RUN_UNTIL(fx.loop, st.downs == 1, 2500);
    kill(r.pid, SIGCONT);
    assert_int_equal(st.downs, 1);
    RUN_UNTIL(fx.loop, st.ups == 2, 3000);
    assert_int_equal(st.ups, 2);
    rds_client_free(c);
    rt_redis_stop(&r);
}

static void test_refused_never_up(void **state)
{
    rt_redis_t r;
    assert_int_equal(rt_redis_start(&r, NULL), 0);
    rt_redis_kill(&r);
    rds_test_state_t st;
    rds_client_t *c = new_client(&r, "?connect_timeout=100ms", &st, 0);
    RUN_UNTIL(fx.loop, false, 300);
    assert_int_equal(st.ups, 0);
    assert_int_equal(st.downs, 0);
    rds_client_free(c);
    rt_redis_stop(&r);
}

/* A loopback listener on a free port (*sa receives its address). */
static int listen_loopback(int backlog, struct sockaddr_in *sa)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t sl = sizeof(*sa);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    assert_int_equal(listen(lfd, backlog), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)sa, &sl), 0);
    return lfd;
}

/* A client of the server at sa, reconnecting every 20-40 ms, not run. */
static rds_client_t *client_at(const struct sockaddr_in *sa, int64_t connect_timeout_ms,
                               rds_test_state_t *st)
{
    rds_addr_t a;
    rds_test_addr(&a, "127.0.0.1:%d", ntohs(sa->sin_port));
    a.connect_timeout_ms = connect_timeout_ms;
    rds_client_opts_t o;
    rds_client_opts_default(&o);
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 40;
    o.on_state = rds_test_on_state;
    o.ud = st;
    rds_client_t *c = rds_client_new(fx.loop, &a, &o);
    rds_addr_cleanup(&a);
    return c;
}

/* A listener whose accept queue is full drops SYNs: connect() hangs until our timeout. */
static void test_connect_timeout(void **state)
{
    struct sockaddr_in sa;
    int lfd = listen_loopback(0, &sa);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
    }
    rds_test_state_t st = {0};
    rds_client_t *c = client_at(&sa, 100, &st);
    RUN_UNTIL(fx.loop, false, 400);
    assert_int_equal(st.ups, 0);
    assert_false(rds_client_ready(c));
    rds_client_free(c);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

/* A server that answers whatever it reads with an absurd multi-bulk header. */
typedef struct huge_server {
    ev_io accept_w, conn_w;
    int conn_fd;
    int accepted;
    int64_t accepted_ms[8];
} huge_server_t;

static void huge_on_conn(struct ev_loop *loop, ev_io *w, int revents)
{
    huge_server_t *hs = w->data;
    char buf[512];
    ssize_t n = read(hs->conn_fd, buf, sizeof(buf));
    if (n > 0) {
        static const char huge[] = "*467440094\r\n";
        assert_int_equal(write(hs->conn_fd, huge, sizeof(huge) - 1), (ssize_t)sizeof(huge) - 1);
        return;
    }
    ev_io_stop(loop, w);
    close(hs->conn_fd);
    hs->conn_fd = -1;
}

static void huge_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    huge_server_t *hs = w->data;
    int fd = accept(w->fd, NULL, NULL);
    if (fd < 0)
        return;
    if (hs->conn_fd >= 0) { /* the previous attempt's socket, if the client left it open */
        ev_io_stop(loop, &hs->conn_w);
        close(hs->conn_fd);
    }
    if (hs->accepted < 8)
        hs->accepted_ms[hs->accepted] = rt_mono_ms();
    hs->accepted++;
    hs->conn_fd = fd;
    ev_io_init(&hs->conn_w, huge_on_conn, fd, EV_READ);
    hs->conn_w.data = hs;
    ev_io_start(loop, &hs->conn_w);
}

/* hiredis 0.14 allocates a reply's element array when it reads the header. A server
 * announcing 467 M elements must fail the connection at once (RDS_MAX_REPLY_ELEMENTS), not
 * have us calloc 3.7 GB and wait for elements until the handshake times out. */
static void test_huge_array_header_drops_link(void **state)
{
    struct sockaddr_in sa;
    int lfd = listen_loopback(8, &sa);
    huge_server_t hs = {.conn_fd = -1};
    ev_io_init(&hs.accept_w, huge_on_accept, lfd, EV_READ);
    hs.accept_w.data = &hs;
    ev_io_start(fx.loop, &hs.accept_w);

    rds_test_state_t st = {0};
    rds_client_t *c = client_at(&sa, 3000, &st); /* 3 s also bounds the handshake */
    RUN_UNTIL(fx.loop, hs.accepted >= 3, 2500);
    assert_true(hs.accepted >= 3);
    /* Reconnects come after the backoff, not after the 3 s handshake timeout. */
    assert_true(hs.accepted_ms[2] - hs.accepted_ms[0] < 1000);
    assert_int_equal(st.ups, 0);
    rds_client_free(c);
    ev_io_stop(fx.loop, &hs.accept_w);
    if (hs.conn_fd >= 0) {
        ev_io_stop(fx.loop, &hs.conn_w);
        close(hs.conn_fd);
    }
    close(lfd);
}

typedef struct cancel_ctx {
    rds_client_t *c;
    int calls[6];
    int status[6];
} cancel_ctx_t;

static cancel_ctx_t cx;

static void on_cancel(int status, const redisReply *r, void *ud)
{
    int i = (int)(intptr_t)ud;
    cx.calls[i]++;
    cx.status[i] = status;
}

static void on_free_inside(int status, const redisReply *r, void *ud)
{
    on_cancel(status, r, ud);
    rds_client_free(cx.c);
    cx.c = NULL;
}

static void test_free_pending(void **state)
{
    rds_test_state_t st;
    const char *argv[3] = {"BLPOP", "never", "0"};
    size_t lens[3] = {5, 5, 1};

    /* Freed by the owner with commands on the wire. */
    memset(&cx, 0, sizeof(cx));
    rds_client_t *c = up_client(&fx.redis, NULL, &st);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rds_client_command(c, on_cancel, (void *)(intptr_t)i, 3, argv, lens), 0);
    RUN_UNTIL(fx.loop, false, 30);
    rds_client_free(c);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cx.calls[i], 1);
        assert_int_equal(cx.status[i], RT_ECANCELED);
    }

    /* Freed inside a reply callback, with more commands behind it. */
    memset(&cx, 0, sizeof(cx));
    cx.c = up_client(&fx.redis, NULL, &st);
    const char *ping[1] = {"PING"};
    size_t plen[1] = {4};
    assert_int_equal(rds_client_command(cx.c, on_free_inside, (void *)(intptr_t)0, 1, ping, plen),
                     0);
    for (int i = 1; i < 4; i++)
        assert_int_equal(rds_client_command(cx.c, on_cancel, (void *)(intptr_t)i, 3, argv, lens),
                         0);
    RUN_UNTIL(fx.loop, cx.c == NULL, 2000);
    RUN_UNTIL(fx.loop, false, 50);
    assert_int_equal(cx.calls[0], 1);
    assert_int_equal(cx.status[0], 0);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(cx.calls[i], 1);
        assert_int_equal(cx.status[i], RT_ECANCELED);
    }

    /* Freed before it ever connected. */
    rds_client_t *c2 = new_client(&fx.redis, NULL, &st, 0);
    rds_client_free(c2);
    RUN_UNTIL(fx.loop, false, 20);
    assert_int_equal(st.ups, 0);
}

int run_rds_client(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_binary),
        cmocka_unit_test(test_pipeline_10000),
        cmocka_unit_test(test_inflight_limit),
        cmocka_unit_test(test_select_db),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_eval_fallback),
        cmocka_unit_test(test_command_timeout),
        cmocka_unit_test(test_kill_restart),
        cmocka_unit_test(test_keepalive_detects_stopped_server),
        cmocka_unit_test(test_refused_never_up),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_huge_array_header_drops_link),
        cmocka_unit_test(test_free_pending),
    };
    return cmocka_run_group_tests_name("rds_client", tests, group_setup, group_teardown);
}

/* The Redis broker against real redis-server processes on free loopback ports (temp dirs,
 * stopped at the end). The same observable behaviour as the memory broker is checked where
 * broker.h defines it; on top: several nodes on one Redis, control messages, two shards,
 * and an outage with reconnect. A second group runs the broker on a 3-master Redis Cluster
 * (tests/unit/rds/rds_cluster_fixture.h). Skipped when redis-server is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <hiredis/hiredis.h>

#include "broker/broker_redis.h"
#include "broker/broker_redis_internal.h"
#include "broker/rds_shard.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/base/time.h"
#include "tests/unit/rds/rds_cluster_fixture.h"

#define MAXREC 64

/* ---- redis-server processes ---- */

typedef struct redis_proc {
    pid_t pid; /* 0 when stopped */
    int port;
    char dir[64]; /* mkdtemp */
} redis_proc_t;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &n) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool redis_installed(void)
{
    return access("/usr/bin/redis-server", X_OK) == 0;
}

static redisContext *redis_sync(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c != NULL && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Starts redis-server on r->port (a free one when 0) and waits until it answers PING. */
static int redis_start(redis_proc_t *r)
{
    if (r->dir[0] == '\0') {
        snprintf(r->dir, sizeof(r->dir), "/tmp/rt_redis_XXXXXX");
        if (mkdtemp(r->dir) == NULL)
            return -1;
    }
    if (r->port == 0)
        r->port = free_port();
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl("/usr/bin/redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", r->dir,
              (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 500; i++) {
        redisContext *c = redis_sync(r->port);
        if (c != NULL) {
            redisReply *rep = redisCommand(c, "PING");
            bool ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
            freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return 0;
        }
        usleep(10000);
    }
    return -1;
}

static void redis_kill(redis_proc_t *r, int sig)
{
    if (r->pid > 0) {
        kill(r->pid, sig);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

static void redis_stop(redis_proc_t *r)
{
    redis_kill(r, SIGTERM);
    if (r->dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", r->dir);
        r->dir[0] = '\0';
    }
}

/* Runs one command on a fresh synchronous connection; returns the reply (free it). */
static redisReply *redis_cmd(int port, const char *fmt, ...)
{
    redisContext *c = redis_sync(port);
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(rep);
    return rep;
}

static long long redis_int(int port, const char *fmt, const char *arg)
{
    redisReply *rep = redis_cmd(port, fmt, arg);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    return v;
}

static long long numsub(int port, const char *ps_channel)
{
    redisReply *rep = redis_cmd(port, "PUBSUB NUMSUB %s", ps_channel);
    long long v = -1;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2)
        v = rep->element[1]->integer;
    freeReplyObject(rep);
    return v;
}

/* ---- sinks and fixture ---- */

typedef struct sink_rec {
    int npubs;
    broker_pub_t *pubs[MAXREC]; /* owned references */
    int njoins, nleaves, ncontrols, nresub;
    char last_join[96]; /* "channel|user|client|conn_info|chan_info" */
    char last_leave[96];
    char last_control[64];
} sink_rec_t;

typedef struct node {
    broker_t *b;
    sink_rec_t sink;
} node_t;

typedef struct group {
    redis_proc_t redis[2];
} group_t;

typedef struct fix {
    struct ev_loop *loop;
    group_t *g;
    rcl_t *rcl; /* the cluster group's cluster; NULL in the standalone group */
    rds_addr_t addr[2];
    node_t a, b;
    ev_timer tick; /* keeps EV_RUN_ONCE from sleeping longer than 5 ms */
} fix_t;

static void format_info(char *out, size_t cap, rt_str_t ch, const rt_client_info_t *i)
{
    snprintf(out, cap, RT_STR_FMT "|" RT_STR_FMT "|" RT_STR_FMT "|" RT_STR_FMT "|" RT_STR_FMT,
             RT_STR_ARG(ch), RT_STR_ARG(i->user), RT_STR_ARG(i->client), RT_STR_ARG(i->conn_info),
             RT_STR_ARG(i->chan_info));
}

static void sink_pub(void *ud, broker_pub_t *pub)
{
    sink_rec_t *s = ud;
    assert_true(s->npubs < MAXREC);
    s->pubs[s->npubs++] = broker_pub_ref(pub);
}

static void sink_join(void *ud, rt_str_t channel, const rt_client_info_t *info)
{
    sink_rec_t *s = ud;
    s->njoins++;
    format_info(s->last_join, sizeof(s->last_join), channel, info);
}

static void sink_leave(void *ud, rt_str_t channel, const rt_client_info_t *info)
{
    sink_rec_t *s = ud;
    s->nleaves++;
    format_info(s->last_leave, sizeof(s->last_leave), channel, info);
}

static void sink_control(void *ud, rt_str_t data)
{
    sink_rec_t *s = ud;
    s->ncontrols++;
    snprintf(s->last_control, sizeof(s->last_control), RT_STR_FMT, RT_STR_ARG(data));
}

static void sink_resub(void *ud)
{
    sink_rec_t *s = ud;
    s->nresub++;
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
}

static broker_t *node_new(fix_t *f, node_t *n, size_t nshards, const char *uid)
{
    broker_sink_t sink = {.on_publication = sink_pub,
                          .on_join = sink_join,
                          .on_leave = sink_leave,
                          .on_control = sink_control,
                          .on_resubscribed = sink_resub,
                          .ud = &n->sink};
    broker_redis_opts_t o = {
        .shards = f->addr, .nshards = nshards, .prefix = "rotor", .node_uid = uid};
    n->b = broker_redis_new(f->loop, &sink, &o);
    return n->b;
}

static void node_free(node_t *n)
{
    broker_destroy(n->b);
    n->b = NULL;
    for (int i = 0; i < n->sink.npubs; i++)
        broker_pub_unref(n->sink.pubs[i]);
    memset(&n->sink, 0, sizeof(n->sink));
}

/* Runs the loop until *counter >= want or timeout; returns whether it got there. */
static bool run_until(fix_t *f, const int *counter, int want, int timeout_ms)
{
    int64_t deadline = rt_mono_ms() + timeout_ms;
    while (*counter < want && rt_mono_ms() < deadline)
        ev_run(f->loop, EVRUN_ONCE);
    return *counter >= want;
}

static void run_ms(fix_t *f, int ms)
{
    int never = 0;
    run_until(f, &never, 1, ms);
}

static bool run_until_ready(fix_t *f, broker_t *b, bool want, int timeout_ms)
{
    int64_t deadline = rt_mono_ms() + timeout_ms;
    while (broker_ready(b, NULL) != want && rt_mono_ms() < deadline)
        ev_run(f->loop, EVRUN_ONCE);
    return broker_ready(b, NULL) == want;
}

static int saved_log_level;

static int group_setup(void **state)
{
    /* Connection logs of every test at INFO would bury cmocka's output. */
    saved_log_level = atomic_load(&rt_log_level_);
    rt_log_set_level(RT_LOG_WARN);
    if (!redis_installed())
        return 0;
    group_t *g = calloc(1, sizeof(*g));
    for (int i = 0; i < 2; i++)
        assert_int_equal(redis_start(&g->redis[i]), 0);
    *state = g;
    return 0;
}

static int group_teardown(void **state)
{
    rt_log_set_level(saved_log_level);
    group_t *g = *state;
    if (g == NULL)
        return 0;
    for (int i = 0; i < 2; i++)
        redis_stop(&g->redis[i]);
    free(g);
    return 0;
}

static void parse_addr(rds_addr_t *a, int port)
{
    char url[64];
    rt_buf_t err = RT_BUF_INIT;
    snprintf(url, sizeof(url), "127.0.0.1:%d", port);
    assert_int_equal(rds_addr_parse(url, a, &err), 0);
    rt_buf_cleanup(&err);
}

static int setup(void **state)
{
    group_t *g = *state;
    if (g == NULL)
        return 0;
    fix_t *f = calloc(1, sizeof(*f));
    f->g = g;
    f->loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer_init(&f->tick, on_tick, 0.005, 0.005);
    ev_timer_start(f->loop, &f->tick);
    for (int i = 0; i < 2; i++) {
        freeReplyObject(redis_cmd(g->redis[i].port, "FLUSHALL"));
        parse_addr(&f->addr[i], g->redis[i].port);
    }
    node_new(f, &f->a, 1, "node-a");
    assert_true(run_until_ready(f, f->a.b, true, 5000));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    if (f == NULL || f->loop == NULL)
        return 0;
    group_t *g = f->g;
    node_free(&f->a);
    node_free(&f->b);
    ev_timer_stop(f->loop, &f->tick);
    for (int i = 0; i < 2; i++)
        rds_addr_cleanup(&f->addr[i]);
    ev_loop_destroy(f->loop);
    free(f);
    *state = g;
    return 0;
}

#define NEED_REDIS(f)                                                                              \
    do {                                                                                           \
        if ((f) == NULL) {                                                                         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- request helpers ---- */

typedef struct res {
    int calls;
    int status;
    uint64_t offset;
    char epoch[16];
    bool suppressed;
    size_t n;
    uint64_t offsets[MAXREC];
    char data[MAXREC][16];
} res_t;

static void publish_cb(int status, const broker_pos_t *pos, bool suppressed, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    assert_non_null(pos);
    r->offset = pos->offset;
    snprintf(r->epoch, sizeof(r->epoch), RT_STR_FMT, RT_STR_ARG(pos->epoch));
    r->suppressed = suppressed;
}

static void history_cb(int status, broker_pub_t *const *pubs, size_t n, const broker_pos_t *top,
                       void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    assert_non_null(top);
    r->offset = top->offset;
    snprintf(r->epoch, sizeof(r->epoch), RT_STR_FMT, RT_STR_ARG(top->epoch));
    r->n = n;
    for (size_t i = 0; i < n && i < MAXREC; i++) {
        r->offsets[i] = pubs[i]->offset;
        snprintf(r->data[i], sizeof(r->data[i]), RT_STR_FMT, RT_STR_ARG(pubs[i]->data));
        assert_true(rt_str_eq(pubs[i]->epoch, top->epoch));
    }
}

static void done_cb(int status, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
}

static broker_publish_opts_t hist_opts(int64_t size, int64_t ttl_ms, int64_t meta_ttl_ms)
{
    return (broker_publish_opts_t){
        .history_size = size, .history_ttl_ms = ttl_ms, .history_meta_ttl_ms = meta_ttl_ms};
}

static res_t pub_on(fix_t *f, broker_t *b, const char *ch, const char *data,
                    broker_publish_opts_t opts)
{
    res_t r = {0};
    broker_publish_req_t req = {.fields = {.channel = rt_str_c(ch), .data = rt_str_c(data)},
                                .opts = opts};
    assert_int_equal(broker_publish(b, &req, publish_cb, &r), 0);
    assert_int_equal(r.calls, 0); /* never synchronous */
    assert_true(run_until(f, &r.calls, 1, 5000));
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    return r;
}

static res_t pub_opts(fix_t *f, const char *ch, const char *data, broker_publish_opts_t opts)
{
    return pub_on(f, f->a.b, ch, data, opts);
}

static res_t pub_hist(fix_t *f, const char *ch, const char *data)
{
    return pub_opts(f, ch, data, hist_opts(100, 60000, 0));
}

static res_t history_full(fix_t *f, const char *ch, bool has_since, uint64_t since, int64_t limit,
                          bool reverse, int64_t size)
{
    res_t r = {0};
    broker_history_req_t req = {.channel = rt_str_c(ch),
                                .has_since = has_since,
                                .since_offset = since,
                                .limit = limit,
                                .reverse = reverse,
                                .history_ttl_ms = 60000,
                                .history_size = size};
    assert_int_equal(broker_history(f->a.b, &req, history_cb, &r), 0);
    assert_int_equal(r.calls, 0);
    assert_true(run_until(f, &r.calls, 1, 5000));
    assert_int_equal(r.status, 0);
    return r;
}

static res_t history(fix_t *f, const char *ch, bool has_since, uint64_t since, int64_t limit,
                     bool reverse)
{
    return history_full(f, ch, has_since, since, limit, reverse, 100);
}

static void expect_offsets(const res_t *r, size_t n, const uint64_t *want)
{
    assert_int_equal(r->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(r->offsets[i], want[i]);
}

#define EXPECT(r, ...)                                                                             \
    do {                                                                                           \
        const uint64_t want_[] = {__VA_ARGS__};                                                    \
        expect_offsets(&(r), sizeof(want_) / sizeof(want_[0]), want_);                             \
    } while (0)

/* Subscribes b and waits until Redis counts want subscribers of the channel. */
static void subscribe_wait(fix_t *f, broker_t *b, int port, const char *ch, long long want)
{
    char name[128];
    snprintf(name, sizeof(name), "rotor.client.%s", ch);
    assert_int_equal(broker_subscribe(b, rt_str_c(ch)), 0);
    int64_t deadline = rt_mono_ms() + 5000;
    while (numsub(port, name) < want && rt_mono_ms() < deadline)
        run_ms(f, 5);
    assert_int_equal(numsub(port, name), want);
}

static int port0(fix_t *f)
{
    return f->g->redis[0].port;
}

/* ---- tests ---- */

static void test_publish_without_history(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    subscribe_wait(f, f->a.b, port0(f), "ch", 1);
    res_t r = pub_opts(f, "ch", "{\"x\":1}", (broker_publish_opts_t){0});
    assert_int_equal(r.offset, 0);
    assert_string_equal(r.epoch, "");
    assert_false(r.suppressed);
    assert_true(run_until(f, &f->a.sink.npubs, 1, 5000));
    broker_pub_t *p = f->a.sink.pubs[0];
    assert_int_equal(p->offset, 0);
    assert_int_equal(p->epoch.n, 0);
    assert_true(rt_str_eq_c(p->channel, "ch"));
    assert_true(rt_str_eq_c(p->data, "{\"x\":1}"));
    assert_true(p->time_ms > 1000000000000LL);
    /* size without ttl (or the reverse) is no history either: nothing is stored. */
    r = pub_opts(f, "ch", "{}", hist_opts(10, 0, 0));
    assert_int_equal(r.offset, 0);
    r = pub_opts(f, "ch", "{}", hist_opts(0, 1000, 0));
    assert_int_equal(r.offset, 0);
    assert_int_equal(redis_int(port0(f), "EXISTS %s", "rotor.stream.ch"), 0);
    assert_int_equal(redis_int(port0(f), "EXISTS %s", "rotor.stream.meta.ch"), 0);
}

static void test_offsets_and_epoch(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    subscribe_wait(f, f->a.b, port0(f), "ch", 1);
    char epoch[16] = "";
    for (uint64_t i = 1; i <= 3; i++) {
        res_t r = pub_hist(f, "ch", "{}");
        assert_int_equal(r.offset, i);
        assert_false(r.suppressed);
        assert_int_equal(strlen(r.epoch), 8);
        if (i == 1)
            strcpy(epoch, r.epoch);
        assert_string_equal(r.epoch, epoch);
    }
    assert_true(run_until(f, &f->a.sink.npubs, 3, 5000));
    for (int i = 0; i < 3; i++) {
        broker_pub_t *p = f->a.sink.pubs[i];
        assert_int_equal(p->offset, (uint64_t)i + 1);
        assert_true(rt_str_eq_c(p->epoch, epoch));
        assert_true(rt_str_eq_c(p->channel, "ch"));
    }
    res_t o = pub_hist(f, "other", "{}");
    assert_int_equal(o.offset, 1);
    assert_string_not_equal(o.epoch, epoch);
}

static void test_publish_all_fields(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    subscribe_wait(f, f->a.b, port0(f), "chan", 1);
    rt_client_info_t info = {RT_STR("u"), RT_STR("c"), RT_STR("{}"), RT_STR("\x01\x02")};
    broker_tag_t tag = {RT_STR("tk"), RT_STR("tv")};
    broker_publish_req_t req = {.fields = {.channel = RT_STR("chan"),
                                           .data = RT_STR("\x00\xff"),
                                           .data_binary = true,
                                           .info = &info,
                                           .tags = &tag,
                                           .ntags = 1,
                                           .delta = true,
                                           .offset = 999,
                                           .epoch = RT_STR("bogus"),
                                           .time_ms = 1},
                                .opts = hist_opts(10, 10000, 0)};
    res_t r = {0};
    assert_int_equal(broker_publish(f->a.b, &req, publish_cb, &r), 0);
    assert_true(run_until(f, &r.calls, 1, 5000));
    assert_true(run_until(f, &f->a.sink.npubs, 1, 5000));
    broker_pub_t *p = f->a.sink.pubs[0];
    assert_true(rt_str_eq_c(p->channel, "chan"));
    assert_true(rt_str_eq(p->data, RT_STR("\x00\xff")));
    assert_true(p->data_binary);
    assert_true(p->has_info);
    assert_true(rt_str_eq_c(p->info.user, "u"));
    assert_true(rt_str_eq_c(p->info.client, "c"));
    assert_true(rt_str_eq_c(p->info.conn_info, "{}"));
    assert_true(rt_str_eq(p->info.chan_info, RT_STR("\x01\x02")));
    assert_int_equal(p->ntags, 1);
    assert_true(rt_str_eq_c(p->tags[0].key, "tk"));
    assert_true(rt_str_eq_c(p->tags[0].value, "tv"));
    assert_true(p->delta);
    assert_int_equal(p->offset, 1);
    assert_true(rt_str_eq_c(p->epoch, r.epoch));
    assert_true(p->time_ms > 1000000000000LL);
    /* The history copy decodes to the same. */
    res_t h = history(f, "chan", false, 0, -1, false);
    EXPECT(h, 1);
}

static void fill(fix_t *f, const char *ch, int n)
{
    for (int i = 0; i < n; i++) {
        char data[16];
        snprintf(data, sizeof(data), "d%d", i + 1);
        pub_hist(f, ch, data);
    }
}

static void test_history_table(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    fill(f, "ch", 10);
    char epoch[16];
    res_t r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
    assert_string_equal(r.data[0], "d1");
    assert_string_equal(r.data[9], "d10");
    assert_int_equal(r.offset, 10);
    strcpy(epoch, r.epoch);
    r = history(f, "ch", false, 0, -1, true);
    EXPECT(r, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
    r = history(f, "ch", true, 5, -1, false);
    EXPECT(r, 6, 7, 8, 9, 10);
    r = history(f, "ch", true, 10, -1, false);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.offset, 10);
    r = history(f, "ch", true, 0, -1, false);
    EXPECT(r, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
    r = history(f, "ch", true, 5, -1, true);
    EXPECT(r, 4, 3, 2, 1);
    r = history(f, "ch", true, 1, -1, true);
    assert_int_equal(r.n, 0);
    r = history(f, "ch", true, 0, -1, true);
    assert_int_equal(r.n, 0);
    r = history(f, "ch", true, 11, -1, true);
    EXPECT(r, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
    r = history(f, "ch", true, 1000, -1, false);
    assert_int_equal(r.n, 0);
    r = history(f, "ch", true, UINT64_MAX, -1, false);
    assert_int_equal(r.n, 0);
    assert_string_equal(r.epoch, epoch);
    assert_int_equal(r.offset, 10);
}

static void test_history_limit(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    fill(f, "ch", 10);
    res_t r = history(f, "ch", false, 0, 0, false);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.offset, 10);
    assert_int_equal(strlen(r.epoch), 8);
    r = history(f, "ch", true, 3, 0, true);
    assert_int_equal(r.n, 0);
    r = history(f, "ch", false, 0, 3, false);
    EXPECT(r, 1, 2, 3);
    r = history(f, "ch", false, 0, 3, true);
    EXPECT(r, 10, 9, 8);
    r = history(f, "ch", true, 5, 2, false);
    EXPECT(r, 6, 7);
    r = history(f, "ch", true, 5, 2, true);
    EXPECT(r, 4, 3);
    r = history(f, "ch", true, 8, 50, false);
    EXPECT(r, 9, 10);
    r = history(f, "ch", false, 0, -5, true);
    assert_int_equal(r.n, 10);
}

static void test_history_size_trim(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    for (int i = 0; i < 7; i++)
        pub_opts(f, "ch", "{}", hist_opts(3, 60000, 0));
    assert_int_equal(redis_int(port0(f), "XLEN %s", "rotor.stream.ch"), 3);
    res_t r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 5, 6, 7);
    assert_int_equal(r.offset, 7);
    r = history(f, "ch", true, 1, -1, false);
    EXPECT(r, 5, 6, 7);
    r = history(f, "ch", true, 6, -1, true);
    EXPECT(r, 5);
    pub_opts(f, "ch", "{}", hist_opts(2, 60000, 0));
    r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 7, 8);
    for (int i = 0; i < 5; i++)
        pub_opts(f, "ch", "{}", hist_opts(50, 60000, 0));
    r = history(f, "ch", false, 0, -1, true);
    EXPECT(r, 13, 12, 11, 10, 9, 8, 7);
    /* A read with a smaller size sees only the newest size entries, as the memory broker. */
    r = history_full(f, "ch", false, 0, -1, false, 3);
    EXPECT(r, 11, 12, 13);
    r = history_full(f, "ch", false, 0, 2, false, 3);
    EXPECT(r, 11, 12);
    r = history_full(f, "ch", false, 0, -1, true, 3);
    EXPECT(r, 13, 12, 11);
    r = history_full(f, "ch", true, 12, -1, true, 3);
    EXPECT(r, 11);
    r = history_full(f, "ch", true, 11, -1, true, 3);
    assert_int_equal(r.n, 0);
    r = history_full(f, "ch", true, 2, -1, false, 3);
    EXPECT(r, 11, 12, 13);
}

static void test_history_creates_meta(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    res_t r = history(f, "fresh", false, 0, -1, false);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.offset, 0);
    assert_int_equal(strlen(r.epoch), 8);
    r = history(f, "fresh", false, 0, -1, true);
    assert_int_equal(r.n, 0);
    res_t again = history(f, "fresh", true, 0, 10, false);
    assert_string_equal(again.epoch, r.epoch);
    res_t p = pub_hist(f, "fresh", "{}");
    assert_int_equal(p.offset, 1);
    assert_string_equal(p.epoch, r.epoch);
}

static void test_meta_ttl_new_epoch(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    /* Redis TTLs are whole seconds: 1 ms rounds up to 1 s. */
    res_t a = pub_opts(f, "ch", "{}", hist_opts(10, 1, 1));
    assert_int_equal(redis_int(port0(f), "TTL %s", "rotor.stream.meta.ch"), 1);
    assert_int_equal(redis_int(port0(f), "TTL %s", "rotor.stream.ch"), 1);
    run_ms(f, 1300);
    res_t b = pub_opts(f, "ch", "{}", hist_opts(10, 1, 1));
    assert_int_equal(b.offset, 1);
    assert_string_not_equal(b.epoch, a.epoch);
    /* Without a meta TTL the meta never expires. */
    pub_hist(f, "keep", "{}");
    assert_int_equal(redis_int(port0(f), "TTL %s", "rotor.stream.meta.keep"), -1);
    assert_int_equal(redis_int(port0(f), "TTL %s", "rotor.stream.keep"), 60);
}

static void test_idempotency(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    subscribe_wait(f, f->a.b, port0(f), "ch", 1);
    subscribe_wait(f, f->a.b, port0(f), "nohist", 1);
    broker_publish_opts_t o = hist_opts(10, 60000, 0);
    o.idempotency_key = RT_STR("key-1");
    res_t a = pub_opts(f, "ch", "{\"n\":1}", o);
    assert_int_equal(a.offset, 1);
    assert_false(a.suppressed);
    pub_hist(f, "ch", "{}");
    res_t dup = pub_opts(f, "ch", "{\"n\":2}", o);
    assert_true(dup.suppressed);
    assert_int_equal(dup.offset, 1);
    assert_string_equal(dup.epoch, a.epoch);
    res_t r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 1, 2);
    assert_int_equal(redis_int(port0(f), "TTL %s", "rotor.result.ch.key-1"), 300);

    res_t other = pub_opts(f, "ch2", "{}", o);
    assert_false(other.suppressed);
    assert_int_equal(other.offset, 1);

    broker_publish_opts_t nh = {.idempotency_key = RT_STR("k")};
    res_t x = pub_opts(f, "nohist", "{}", nh);
    assert_false(x.suppressed);
    res_t y = pub_opts(f, "nohist", "{}", nh);
    assert_true(y.suppressed);
    assert_int_equal(y.offset, 0);
    assert_string_equal(y.epoch, "");
    /* Delivered once each: 2 on ch, 1 on nohist. */
    assert_true(run_until(f, &f->a.sink.npubs, 3, 5000));
    run_ms(f, 100);
    assert_int_equal(f->a.sink.npubs, 3);
}

static res_t pub_version(fix_t *f, uint64_t version, const char *version_epoch)
{
    broker_publish_opts_t o = hist_opts(10, 60000, 0);
    o.version = version;
    o.version_epoch = rt_str_c(version_epoch);
    return pub_opts(f, "ch", "{}", o);
}

static void test_version_suppression(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    subscribe_wait(f, f->a.b, port0(f), "ch", 1);
    res_t r = pub_version(f, 5, "");
    assert_false(r.suppressed);
    assert_int_equal(r.offset, 1);
    r = pub_version(f, 5, "");
    assert_true(r.suppressed);
    assert_int_equal(r.offset, 1);
    r = pub_version(f, 4, "");
    assert_true(r.suppressed);
    r = pub_version(f, 6, "");
    assert_false(r.suppressed);
    assert_int_equal(r.offset, 2);
    pub_hist(f, "ch", "{}");
    r = pub_version(f, 6, "");
    assert_true(r.suppressed);
    assert_int_equal(r.offset, 3);
    r = pub_version(f, 1, "e2");
    assert_false(r.suppressed);
    assert_int_equal(r.offset, 4);
    r = pub_version(f, 1, "e2");
    assert_true(r.suppressed);
    r = pub_version(f, 1, "");
    assert_true(r.suppressed);
    r = pub_version(f, 2, "e2");
    assert_false(r.suppressed);
    assert_int_equal(r.offset, 5);
    /* Exact beyond 2^53, where a Lua number would round. */
    r = pub_version(f, 18446744073709551614ULL, "big");
    assert_false(r.suppressed);
    r = pub_version(f, 18446744073709551615ULL, "big");
    assert_false(r.suppressed);
    r = pub_version(f, 18446744073709551614ULL, "big");
    assert_true(r.suppressed);
    assert_true(run_until(f, &f->a.sink.npubs, 7, 5000));
    run_ms(f, 100);
    assert_int_equal(f->a.sink.npubs, 7);
}

static void test_history_remove_keeps_top(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    fill(f, "ch", 3);
    res_t before = history(f, "ch", false, 0, -1, false);
    res_t d = {0};
    assert_int_equal(broker_history_remove(f->a.b, RT_STR("ch"), done_cb, &d), 0);
    assert_int_equal(d.calls, 0);
    assert_true(run_until(f, &d.calls, 1, 5000));
    assert_int_equal(d.status, 0);
    res_t r = history(f, "ch", false, 0, -1, false);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.offset, 3);
    assert_string_equal(r.epoch, before.epoch);
    res_t p = pub_hist(f, "ch", "{}");
    assert_int_equal(p.offset, 4);
    assert_string_equal(p.epoch, before.epoch);
    r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 4);
    d.calls = 0;
    assert_int_equal(broker_history_remove(f->a.b, RT_STR("nothing"), done_cb, &d), 0);
    assert_true(run_until(f, &d.calls, 1, 5000));
    assert_int_equal(d.status, 0);
}

static void test_bad_requests(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    res_t r = {0};
    broker_publish_req_t req = {.fields = {.data = RT_STR("{}")}};
    assert_int_equal(broker_publish(f->a.b, &req, publish_cb, &r), RT_EINVAL);
    broker_history_req_t h = {.limit = -1};
    assert_int_equal(broker_history(f->a.b, &h, history_cb, &r), RT_EINVAL);
    assert_int_equal(broker_history_remove(f->a.b, RT_STR_NULL, done_cb, &r), RT_EINVAL);
    assert_int_equal(broker_subscribe(f->a.b, RT_STR_NULL), RT_EINVAL);
    assert_int_equal(broker_publish_join(f->a.b, RT_STR("x"), NULL), RT_EINVAL);
    run_ms(f, 20);
    assert_int_equal(r.calls, 0);
    const char *reason = "x";
    assert_true(broker_ready(f->a.b, &reason));
    assert_null(reason);
}

static void test_two_nodes(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    node_new(f, &f->b, 1, "node-b");
    assert_true(run_until_ready(f, f->b.b, true, 5000));
    /* Subscribe is idempotent: one Redis subscription per channel per node. */
    subscribe_wait(f, f->b.b, port0(f), "room", 1);
    assert_int_equal(broker_subscribe(f->b.b, RT_STR("room")), 0);
    run_ms(f, 50);
    assert_int_equal(numsub(port0(f), "rotor.client.room"), 1);

    res_t r = pub_hist(f, "room", "{\"hello\":1}");
    assert_true(run_until(f, &f->b.sink.npubs, 1, 5000));
    broker_pub_t *p = f->b.sink.pubs[0];
    assert_int_equal(p->offset, 1);
    assert_true(rt_str_eq_c(p->epoch, r.epoch));
    assert_true(rt_str_eq_c(p->data, "{\"hello\":1}"));
    assert_int_equal(f->a.sink.npubs, 0); /* A is not subscribed */

    rt_client_info_t info = {RT_STR("u1"), RT_STR("c1"), RT_STR("{\"a\":1}"), RT_STR("[]")};
    assert_int_equal(broker_publish_join(f->a.b, RT_STR("room"), &info), 0);
    info.user = RT_STR("u2");
    info.conn_info = RT_STR_NULL;
    assert_int_equal(broker_publish_leave(f->a.b, RT_STR("room"), &info), 0);
    assert_true(run_until(f, &f->b.sink.nleaves, 1, 5000));
    assert_int_equal(f->b.sink.njoins, 1);
    assert_string_equal(f->b.sink.last_join, "room|u1|c1|{\"a\":1}|[]");
    assert_string_equal(f->b.sink.last_leave, "room|u2|c1||[]");
    assert_int_equal(f->a.sink.njoins, 0);

    /* After unsubscribe nothing more arrives. */
    assert_int_equal(broker_unsubscribe(f->b.b, RT_STR("room")), 0);
    assert_int_equal(broker_unsubscribe(f->b.b, RT_STR("room")), 0);
    assert_int_equal(broker_unsubscribe(f->b.b, RT_STR("never")), 0);
    int64_t deadline = rt_mono_ms() + 5000;
    while (numsub(port0(f), "rotor.client.room") != 0 && rt_mono_ms() < deadline)
        run_ms(f, 5);
    pub_hist(f, "room", "{}");
    run_ms(f, 100);
    assert_int_equal(f->b.sink.npubs, 1);
}

static void test_malformed_dropped(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    subscribe_wait(f, f->a.b, port0(f), "ch", 1);
    const char *bad[] = {"garbage", "__p1:abc", "__x__", "__j__", "__p1:1:e__\xc1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        freeReplyObject(redis_cmd(port0(f), "PUBLISH rotor.client.ch %s", bad[i]));
    pub_hist(f, "ch", "ok");
    assert_true(run_until(f, &f->a.sink.npubs, 1, 5000));
    assert_true(rt_str_eq_c(f->a.sink.pubs[0]->data, "ok"));
    broker_redis_stats_t st;
    broker_redis__stats(f->a.b, &st);
    assert_int_equal(st.malformed, 5);
    assert_int_equal(f->a.sink.njoins, 0);
    /* A corrupt stream entry is skipped by history reads, the rest is returned. */
    freeReplyObject(redis_cmd(port0(f), "XADD rotor.stream.ch 5-0 d junk"));
    freeReplyObject(redis_cmd(port0(f), "XADD rotor.stream.ch 6-0 x y"));
    res_t r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 1);
    broker_redis__stats(f->a.b, &st);
    assert_int_equal(st.malformed, 7);
}

static void test_control(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    node_new(f, &f->b, 1, "node-b");
    assert_true(run_until_ready(f, f->b.b, true, 5000));
    assert_int_equal(numsub(port0(f), "rotor.control"), 2);
    assert_int_equal(numsub(port0(f), "rotor.node.node-b"), 1);

    /* Broadcast: every node hears it, the sender too (node/ drops its own by uid). */
    assert_int_equal(broker_control_publish(f->a.b, RT_STR_NULL, RT_STR("to-all")), 0);
    assert_true(run_until(f, &f->b.sink.ncontrols, 1, 5000));
    assert_true(run_until(f, &f->a.sink.ncontrols, 1, 5000));
    assert_string_equal(f->b.sink.last_control, "to-all");
    /* To one node. */
    assert_int_equal(broker_control_publish(f->a.b, RT_STR("node-b"), RT_STR("\x01to-b")), 0);
    assert_true(run_until(f, &f->b.sink.ncontrols, 2, 5000));
    assert_string_equal(f->b.sink.last_control, "\x01to-b");
    run_ms(f, 50);
    assert_int_equal(f->a.sink.ncontrols, 1);
    assert_int_equal(broker_control_publish(f->b.b, RT_STR("node-a"), RT_STR("to-a")), 0);
    assert_true(run_until(f, &f->a.sink.ncontrols, 2, 5000));
    assert_string_equal(f->a.sink.last_control, "to-a");
    assert_int_equal(f->b.sink.ncontrols, 2);
}

static const char *channel_on_shard(size_t shard, int k, char *buf, size_t cap)
{
    for (int i = 0;; i++) {
        snprintf(buf, cap, "s%d-%d", k, i);
        if (rds_shard_of(rt_str_c(buf), 2) == shard)
            return buf;
    }
}

static void test_two_shards(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    node_free(&f->a);
    node_new(f, &f->a, 2, "node-a");
    node_new(f, &f->b, 2, "node-b");
    assert_true(run_until_ready(f, f->a.b, true, 5000));
    assert_true(run_until_ready(f, f->b.b, true, 5000));
    for (int s = 0; s < 2; s++) {
        int port = f->g->redis[s].port;
        assert_int_equal(numsub(port, "rotor.control"), 2);
        assert_int_equal(numsub(port, "rotor.node.node-a"), 1);
    }

    char ch[2][16];
    for (int s = 0; s < 2; s++) {
        channel_on_shard((size_t)s, s, ch[s], sizeof(ch[s]));
        subscribe_wait(f, f->b.b, f->g->redis[s].port, ch[s], 1);
    }
    for (int s = 0; s < 2; s++) {
        res_t r = pub_hist(f, ch[s], ch[s]);
        assert_int_equal(r.offset, 1);
        char key[64];
        snprintf(key, sizeof(key), "rotor.stream.%s", ch[s]);
        assert_int_equal(redis_int(f->g->redis[s].port, "EXISTS %s", key), 1);
        assert_int_equal(redis_int(f->g->redis[1 - s].port, "EXISTS %s", key), 0);
        res_t h = history(f, ch[s], false, 0, -1, false);
        EXPECT(h, 1);
        assert_string_equal(h.data[0], ch[s]);
    }
    assert_true(run_until(f, &f->b.sink.npubs, 2, 5000));
    assert_true(rt_str_eq_c(f->b.sink.pubs[0]->channel, ch[0]));
    assert_true(rt_str_eq_c(f->b.sink.pubs[1]->channel, ch[1]));

    /* Control messages rotate over the shards; each arrives exactly once. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(broker_control_publish(f->a.b, RT_STR("node-b"), RT_STR("x")), 0);
    assert_true(run_until(f, &f->b.sink.ncontrols, 4, 5000));
    run_ms(f, 50);
    assert_int_equal(f->b.sink.ncontrols, 4);
}

static void test_never_synchronous(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")},
                                .opts = hist_opts(10, 60000, 0)};
    broker_publish_req_t plain = {.fields = {.channel = RT_STR("p"), .data = RT_STR("{}")}};
    broker_history_req_t hreq = {.channel = RT_STR("ch"), .limit = -1};
    res_t p1 = {0}, p2 = {0}, h = {0}, d = {0};
    assert_int_equal(broker_publish(f->a.b, &req, publish_cb, &p1), 0);
    assert_int_equal(broker_publish(f->a.b, &plain, publish_cb, &p2), 0);
    assert_int_equal(broker_history(f->a.b, &hreq, history_cb, &h), 0);
    assert_int_equal(broker_history_remove(f->a.b, RT_STR("x"), done_cb, &d), 0);
    assert_int_equal(p1.calls + p2.calls + h.calls + d.calls, 0);
    assert_true(run_until(f, &d.calls, 1, 5000));
    assert_int_equal(p1.calls + p2.calls + h.calls, 3);
    /* Commands are pipelined in order on one connection: the read sees the publish. */
    EXPECT(h, 1);
}

static void test_destroy_cancels_pending(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")},
                                .opts = hist_opts(10, 60000, 0)};
    broker_history_req_t hreq = {.channel = RT_STR("ch"), .limit = -1};
    res_t p = {0}, h = {0}, d = {0};
    assert_int_equal(broker_publish(f->a.b, &req, publish_cb, &p), 0);
    assert_int_equal(broker_history(f->a.b, &hreq, history_cb, &h), 0);
    assert_int_equal(broker_history_remove(f->a.b, RT_STR("ch"), done_cb, &d), 0);
    node_free(&f->a);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.status, RT_ECANCELED);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.status, RT_ECANCELED);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, RT_ECANCELED);
    run_ms(f, 50);
    assert_int_equal(p.calls + h.calls + d.calls, 3);
}

typedef struct reissue {
    fix_t *f;
    int calls;
    int status;
    int reissue_status;
} reissue_t;

static void reissue_cb(int status, const broker_pos_t *pos, bool suppressed, void *ud)
{
    reissue_t *k = ud;
    k->calls++;
    k->status = status;
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")}};
    k->reissue_status = broker_publish(k->f->a.b, &req, reissue_cb, k);
}

static void test_request_during_destroy(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    reissue_t k = {f, 0, 0, 0};
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")}};
    assert_int_equal(broker_publish(f->a.b, &req, reissue_cb, &k), 0);
    broker_destroy(f->a.b);
    assert_int_equal(k.calls, 1);
    assert_int_equal(k.status, RT_ECANCELED);
    assert_int_equal(k.reissue_status, RT_ECLOSED);
    f->a.b = NULL;
}

typedef struct killer {
    fix_t *f;
    int calls;
    int statuses[4];
} killer_t;

static void killer_cb(int status, const broker_pos_t *pos, bool suppressed, void *ud)
{
    killer_t *k = ud;
    k->statuses[k->calls++] = status;
    if (k->calls == 1)
        node_free(&k->f->a);
}

static void killer_hist_cb(int status, broker_pub_t *const *pubs, size_t n, const broker_pos_t *top,
                           void *ud)
{
    killer_t *k = ud;
    k->statuses[k->calls++] = status;
}

static void test_destroy_from_callback(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    killer_t k = {f, 0, {0}};
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")},
                                .opts = hist_opts(10, 60000, 0)};
    broker_history_req_t hreq = {.channel = RT_STR("ch"), .limit = -1};
    assert_int_equal(broker_publish(f->a.b, &req, killer_cb, &k), 0);
    assert_int_equal(broker_publish(f->a.b, &req, killer_cb, &k), 0);
    assert_int_equal(broker_history(f->a.b, &hreq, killer_hist_cb, &k), 0);
    assert_true(run_until(f, &k.calls, 3, 5000));
    run_ms(f, 50);
    assert_int_equal(k.calls, 3);
    assert_int_equal(k.statuses[0], 0);
    /* Both replies may already have been read in the same batch; either way once each. */
    assert_true(k.statuses[1] == RT_ECANCELED || k.statuses[1] == 0);
    assert_true(k.statuses[2] == RT_ECANCELED || k.statuses[2] == 0);
}

static void test_outage_and_resubscribe(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    /* A private server: this test kills and restarts it. */
    redis_proc_t r = {0};
    assert_int_equal(redis_start(&r), 0);
    rds_addr_t addr;
    parse_addr(&addr, r.port);
    node_free(&f->a);
    rds_addr_cleanup(&f->addr[0]);
    f->addr[0] = addr;
    node_new(f, &f->a, 1, "node-a");
    assert_true(run_until_ready(f, f->a.b, true, 5000));
    subscribe_wait(f, f->a.b, r.port, "ch", 1);
    pub_hist(f, "ch", "before");
    assert_true(run_until(f, &f->a.sink.npubs, 1, 5000));

    redis_kill(&r, SIGKILL);
    assert_true(run_until_ready(f, f->a.b, false, 5000));
    const char *reason = NULL;
    assert_false(broker_ready(f->a.b, &reason));
    char want[64];
    snprintf(want, sizeof(want), "redis 127.0.0.1:%d unavailable", r.port);
    assert_string_equal(reason, want);

    /* Requests fail at once without a callback, or call back with an error. */
    res_t p = {0};
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("x")},
                                .opts = hist_opts(10, 60000, 0)};
    int rc = broker_publish(f->a.b, &req, publish_cb, &p);
    if (rc == 0) {
        assert_true(run_until(f, &p.calls, 1, 10000));
        assert_int_not_equal(p.status, 0);
    } else {
        assert_int_equal(rc, RT_ECLOSED);
        run_ms(f, 20);
        assert_int_equal(p.calls, 0);
    }
    assert_int_equal(broker_subscribe(f->a.b, RT_STR("other")), RT_ECLOSED);
    assert_int_equal(broker_control_publish(f->a.b, RT_STR_NULL, RT_STR("x")), RT_ECLOSED);
    assert_int_equal(f->a.sink.nresub, 0);

    assert_int_equal(redis_start(&r), 0); /* same port, empty data */
    assert_true(run_until_ready(f, f->a.b, true, 15000));
    assert_true(run_until(f, &f->a.sink.nresub, 1, 5000));
    /* The subscription made before the outage is back without the node doing anything. */
    assert_int_equal(numsub(r.port, "rotor.client.ch"), 1);
    res_t after = pub_hist(f, "ch", "after");
    assert_int_equal(after.offset, 1); /* the restarted server lost the stream: new epoch */
    assert_true(run_until(f, &f->a.sink.npubs, 2, 5000));
    assert_true(rt_str_eq_c(f->a.sink.pubs[1]->data, "after"));
    assert_int_equal(numsub(r.port, "rotor.control"), 1);
    assert_int_equal(numsub(r.port, "rotor.client.other"), 0);

    node_free(&f->a);
    redis_stop(&r);
}

/* ---- Redis Cluster ---- */

static int cl_group_setup(void **state)
{
    saved_log_level = atomic_load(&rt_log_level_);
    rt_log_set_level(RT_LOG_ERROR);
    if (!rcl_installed())
        return 0;
    rcl_t *c = calloc(1, sizeof(*c));
    if (rcl_start(c) != 0) {
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static int cl_group_teardown(void **state)
{
    rt_log_set_level(saved_log_level);
    rcl_t *c = *state;
    if (c != NULL) {
        rcl_stop(c);
        free(c);
    }
    return 0;
}

/* Cluster URL listing node `first` first: its PUB/SUB connection starts there. */
static void cl_addr(rds_addr_t *a, const rcl_t *c, int first)
{
    char url[256];
    snprintf(url, sizeof(url), "redis+cluster://127.0.0.1:%d?addr=127.0.0.1:%d&addr=127.0.0.1:%d",
             c->port[first], c->port[(first + 1) % RCL_NODES], c->port[(first + 2) % RCL_NODES]);
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(rds_addr_parse(url, a, &err), 0);
    rt_buf_cleanup(&err);
    assert_int_equal(a->mode, RDS_MODE_CLUSTER);
}

static broker_t *cl_node_new_mode(fix_t *f, node_t *n, const rds_addr_t *addr, const char *uid,
                                  bool sharded)
{
    broker_sink_t sink = {.on_publication = sink_pub,
                          .on_join = sink_join,
                          .on_leave = sink_leave,
                          .on_control = sink_control,
                          .on_resubscribed = sink_resub,
                          .ud = &n->sink};
    broker_redis_opts_t o = {.shards = addr,
                             .nshards = 1,
                             .prefix = "rotor",
                             .node_uid = uid,
                             .sharded_pubsub = sharded};
    n->b = broker_redis_new(f->loop, &sink, &o);
    return n->b;
}

static broker_t *cl_node_new(fix_t *f, node_t *n, const rds_addr_t *addr, const char *uid)
{
    return cl_node_new_mode(f, n, addr, uid, false);
}

static int cl_setup(void **state)
{
    rcl_t *c = *state;
    if (c == NULL)
        return 0;
    fix_t *f = calloc(1, sizeof(*f));
    f->rcl = c;
    f->loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer_init(&f->tick, on_tick, 0.005, 0.005);
    ev_timer_start(f->loop, &f->tick);
    rcl_flush(c);
    cl_addr(&f->addr[0], c, 0);
    cl_addr(&f->addr[1], c, 1);
    cl_node_new(f, &f->a, &f->addr[0], "node-a");
    assert_true(run_until_ready(f, f->a.b, true, 5000));
    *state = f;
    return 0;
}

static int cl_teardown(void **state)
{
    fix_t *f = *state;
    if (f == NULL)
        return 0;
    rcl_t *c = f->rcl;
    node_free(&f->a);
    if (f->b.b != NULL)
        node_free(&f->b);
    ev_timer_stop(f->loop, &f->tick);
    for (int i = 0; i < 2; i++)
        rds_addr_cleanup(&f->addr[i]);
    ev_loop_destroy(f->loop);
    free(f);
    *state = c;
    return 0;
}

/* Port of the master owning channel's keys (hash tag {channel}). */
static int cl_port_of(fix_t *f, const char *ch)
{
    return rcl_slot_port(f->rcl, rds_key_slot(rt_str_c(ch)));
}

/* Subscribes b and waits until the cluster node its PUB/SUB uses counts it. */
static void cl_subscribe_wait(fix_t *f, broker_t *b, int port, const char *ch)
{
    char name[128];
    snprintf(name, sizeof(name), "rotor.client.{%s}", ch);
    assert_int_equal(broker_subscribe(b, rt_str_c(ch)), 0);
    int64_t deadline = rt_mono_ms() + 5000;
    while (numsub(port, name) < 1 && rt_mono_ms() < deadline)
        run_ms(f, 5);
    assert_int_equal(numsub(port, name), 1);
}

static void test_cl_publish_history(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    const char *chans[] = {"chat:1", "news", "user#42", "a", "room:x", "b"};
    int nchans = (int)(sizeof(chans) / sizeof(chans[0]));
    int masters[RCL_NODES] = {0};
    for (int i = 0; i < nchans; i++) {
        const char *ch = chans[i];
        cl_subscribe_wait(f, f->a.b, f->rcl->port[0], ch);
        res_t r1 = pub_hist(f, ch, "one");
        res_t r2 = pub_hist(f, ch, "two");
        res_t r3 = pub_hist(f, ch, "three");
        assert_int_equal(r1.offset, 1);
        assert_int_equal(r2.offset, 2);
        assert_int_equal(r3.offset, 3);
        assert_string_equal(r1.epoch, r3.epoch);
        res_t h = history(f, ch, false, 0, -1, false);
        EXPECT(h, 1, 2, 3);
        assert_string_equal(h.data[2], "three");
        assert_string_equal(h.epoch, r1.epoch);
        res_t since = history(f, ch, true, 1, -1, false);
        EXPECT(since, 2, 3);

        /* The tagged keys sit on the master owning the channel's slot. */
        int port = cl_port_of(f, ch);
        char key[128];
        snprintf(key, sizeof(key), "rotor.stream.{%s}", ch);
        assert_int_equal(redis_int(port, "EXISTS %s", key), 1);
        snprintf(key, sizeof(key), "rotor.stream.meta.{%s}", ch);
        assert_int_equal(redis_int(port, "HLEN %s", key), 2);
        for (int k = 0; k < RCL_NODES; k++)
            masters[k] += f->rcl->port[k] == port;

        res_t done = {0};
        assert_int_equal(broker_history_remove(f->a.b, rt_str_c(ch), done_cb, &done), 0);
        assert_true(run_until(f, &done.calls, 1, 5000));
        assert_int_equal(done.status, 0);
        res_t top = history(f, ch, false, 0, 0, false);
        assert_int_equal(top.offset, 3);
        assert_int_equal(top.n, 0);
        assert_string_equal(top.epoch, r1.epoch);
    }
    int used = 0;
    for (int k = 0; k < RCL_NODES; k++)
        used += masters[k] > 0;
    assert_true(used >= 2);
    /* Every positioned publication arrived, each channel's in order (channels published
     * through different masters may interleave on the subscriber's node). */
    assert_true(run_until(f, &f->a.sink.npubs, 3 * nchans, 5000));
    for (int i = 0; i < nchans; i++) {
        uint64_t next = 1;
        for (int k = 0; k < f->a.sink.npubs; k++) {
            if (rt_str_eq_c(f->a.sink.pubs[k]->channel, chans[i]))
                assert_int_equal(f->a.sink.pubs[k]->offset, next++);
        }
        assert_int_equal(next, 4);
    }
    /* Without history: one plain PUBLISH on the tagged name. */
    res_t plain = pub_opts(f, "chat:1", "plain", (broker_publish_opts_t){0});
    assert_int_equal(plain.offset, 0);
    assert_true(run_until(f, &f->a.sink.npubs, 3 * nchans + 1, 5000));
    assert_true(rt_str_eq_c(f->a.sink.pubs[3 * nchans]->data, "plain"));
}

static void test_cl_idempotency_and_version(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    cl_subscribe_wait(f, f->a.b, f->rcl->port[0], "ch");
    cl_subscribe_wait(f, f->a.b, f->rcl->port[0], "nohist");
    broker_publish_opts_t o = hist_opts(10, 60000, 0);
    o.idempotency_key = RT_STR("key-1");
    res_t a = pub_opts(f, "ch", "{\"n\":1}", o);
    assert_int_equal(a.offset, 1);
    assert_false(a.suppressed);
    res_t dup = pub_opts(f, "ch", "{\"n\":2}", o);
    assert_true(dup.suppressed);
    assert_int_equal(dup.offset, 1);
    assert_string_equal(dup.epoch, a.epoch);
    assert_int_equal(redis_int(cl_port_of(f, "ch"), "TTL %s", "rotor.result.{ch}.key-1"), 300);

    broker_publish_opts_t nh = {.idempotency_key = RT_STR("k")};
    assert_false(pub_opts(f, "nohist", "{}", nh).suppressed);
    assert_true(pub_opts(f, "nohist", "{}", nh).suppressed);
    assert_int_equal(redis_int(cl_port_of(f, "nohist"), "EXISTS %s", "rotor.result.{nohist}.k"), 1);

    broker_publish_opts_t v = hist_opts(10, 60000, 0);
    v.version = 5;
    res_t v5 = pub_opts(f, "ch", "{}", v);
    assert_false(v5.suppressed);
    assert_int_equal(v5.offset, 2);
    res_t again = pub_opts(f, "ch", "{}", v);
    assert_true(again.suppressed);
    assert_int_equal(again.offset, 2);
    v.version = 6;
    res_t v6 = pub_opts(f, "ch", "{}", v);
    assert_false(v6.suppressed);
    assert_int_equal(v6.offset, 3);
    /* Delivered: 1 + 2 on ch, 1 on nohist. */
    assert_true(run_until(f, &f->a.sink.npubs, 4, 5000));
    run_ms(f, 100);
    assert_int_equal(f->a.sink.npubs, 4);
}

static void test_cl_two_nodes(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    /* B's PUB/SUB sits on another cluster node than A's: classic PUBLISH crosses the bus. */
    cl_node_new(f, &f->b, &f->addr[1], "node-b");
    assert_true(run_until_ready(f, f->b.b, true, 5000));
    const char *chans[] = {"room", "chat:1", "news", "a"};
    for (int i = 0; i < 4; i++)
        cl_subscribe_wait(f, f->b.b, f->rcl->port[1], chans[i]);
    for (int i = 0; i < 4; i++) {
        res_t r = pub_hist(f, chans[i], chans[i]);
        assert_int_equal(r.offset, 1);
    }
    assert_true(run_until(f, &f->b.sink.npubs, 4, 5000));
    /* Channels on different masters may arrive in any order. */
    for (int i = 0; i < 4; i++) {
        int found = 0;
        for (int k = 0; k < 4; k++) {
            broker_pub_t *p = f->b.sink.pubs[k];
            if (rt_str_eq_c(p->channel, chans[i])) {
                found++;
                assert_true(rt_str_eq_c(p->data, chans[i]));
                assert_int_equal(p->offset, 1);
            }
        }
        assert_int_equal(found, 1);
    }
    assert_int_equal(f->a.sink.npubs, 0);

    rt_client_info_t info = {RT_STR("u1"), RT_STR("c1"), RT_STR("{}"), RT_STR("")};
    assert_int_equal(broker_publish_join(f->a.b, RT_STR("room"), &info), 0);
    assert_int_equal(broker_publish_leave(f->a.b, RT_STR("room"), &info), 0);
    assert_true(run_until(f, &f->b.sink.nleaves, 1, 5000));
    assert_int_equal(f->b.sink.njoins, 1);
    assert_string_equal(f->b.sink.last_join, "room|u1|c1|{}|");

    /* Control channels are untagged and reach both ways. */
    assert_int_equal(numsub(f->rcl->port[1], "rotor.node.node-b"), 1);
    assert_int_equal(broker_control_publish(f->a.b, RT_STR("node-b"), RT_STR("to-b")), 0);
    assert_true(run_until(f, &f->b.sink.ncontrols, 1, 5000));
    assert_string_equal(f->b.sink.last_control, "to-b");
    assert_int_equal(broker_control_publish(f->b.b, RT_STR_NULL, RT_STR("to-all")), 0);
    assert_true(run_until(f, &f->a.sink.ncontrols, 1, 5000));
    assert_string_equal(f->a.sink.last_control, "to-all");

    assert_int_equal(broker_unsubscribe(f->b.b, RT_STR("room")), 0);
    int64_t deadline = rt_mono_ms() + 5000;
    while (numsub(f->rcl->port[1], "rotor.client.{room}") != 0 && rt_mono_ms() < deadline)
        run_ms(f, 5);
    pub_hist(f, "room", "late");
    run_ms(f, 100);
    assert_int_equal(f->b.sink.npubs, 4);
}

static long long shardnumsub(int port, const char *ps_channel)
{
    redisReply *rep = redis_cmd(port, "PUBSUB SHARDNUMSUB %s", ps_channel);
    long long v = -1;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2)
        v = rep->element[1]->integer;
    freeReplyObject(rep);
    return v;
}

/* Waits until SHARDNUMSUB of ps_channel on port is want. */
static bool cl_shardnumsub_wait(fix_t *f, int port, const char *ps_channel, long long want)
{
    int64_t deadline = rt_mono_ms() + 5000;
    while (shardnumsub(port, ps_channel) != want && rt_mono_ms() < deadline)
        run_ms(f, 5);
    return shardnumsub(port, ps_channel) == want;
}

/* Both nodes sharded: A's broker replaced by a sharded one, B sharded too. */
static void cl_sharded_pair(fix_t *f)
{
    node_free(&f->a);
    cl_node_new_mode(f, &f->a, &f->addr[0], "node-a", true);
    cl_node_new_mode(f, &f->b, &f->addr[1], "node-b", true);
    assert_true(run_until_ready(f, f->a.b, true, 5000));
    assert_true(run_until_ready(f, f->b.b, true, 5000));
}

/* engine.redis.sharded_pubsub: SSUBSCRIBE on the owning master, SPUBLISH from the plain,
 * idempotent and history publishes and from join/leave. */
static void test_cl_sharded(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    cl_sharded_pair(f);
    const char *chans[] = {"room", "chat:1", "news", "a"};
    for (int i = 0; i < 4; i++) {
        char name[128];
        snprintf(name, sizeof(name), "rotor.client.{%s}", chans[i]);
        assert_int_equal(broker_subscribe(f->b.b, rt_str_c(chans[i])), 0);
        assert_true(cl_shardnumsub_wait(f, cl_port_of(f, chans[i]), name, 1));
    }
    for (int i = 0; i < 4; i++) {
        res_t r = pub_hist(f, chans[i], chans[i]);
        assert_int_equal(r.offset, 1);
    }
    assert_true(run_until(f, &f->b.sink.npubs, 4, 5000));
    for (int i = 0; i < 4; i++) {
        res_t r = pub_opts(f, chans[i], "plain", (broker_publish_opts_t){0});
        assert_int_equal(r.offset, 0);
    }
    assert_true(run_until(f, &f->b.sink.npubs, 8, 5000));
    broker_publish_opts_t idem = {.idempotency_key = RT_STR("k1")};
    pub_opts(f, "room", "idem", idem);
    assert_true(run_until(f, &f->b.sink.npubs, 9, 5000));
    for (int i = 0; i < 4; i++) {
        int found = 0;
        for (int k = 0; k < 4; k++) {
            broker_pub_t *p = f->b.sink.pubs[k];
            if (rt_str_eq_c(p->channel, chans[i])) {
                found++;
                assert_true(rt_str_eq_c(p->data, chans[i]));
                assert_int_equal(p->offset, 1);
            }
        }
        assert_int_equal(found, 1);
    }
    assert_true(rt_str_eq_c(f->b.sink.pubs[8]->data, "idem"));
    assert_int_equal(f->a.sink.npubs, 0);

    rt_client_info_t info = {RT_STR("u1"), RT_STR("c1"), RT_STR("{}"), RT_STR("")};
    assert_int_equal(broker_publish_join(f->a.b, RT_STR("room"), &info), 0);
    assert_int_equal(broker_publish_leave(f->a.b, RT_STR("room"), &info), 0);
    assert_true(run_until(f, &f->b.sink.nleaves, 1, 5000));
    assert_int_equal(f->b.sink.njoins, 1);

    /* Control channels stay classic. */
    assert_int_equal(broker_control_publish(f->a.b, RT_STR("node-b"), RT_STR("to-b")), 0);
    assert_true(run_until(f, &f->b.sink.ncontrols, 1, 5000));

    assert_int_equal(broker_unsubscribe(f->b.b, RT_STR("room")), 0);
    assert_true(cl_shardnumsub_wait(f, cl_port_of(f, "room"), "rotor.client.{room}", 0));
    pub_hist(f, "room", "late");
    run_ms(f, 100);
    assert_int_equal(f->b.sink.npubs, 9);
}

static void cl_node_id(int port, char *out, size_t n)
{
    redisReply *r = redis_cmd(port, "CLUSTER MYID");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(out, n, "%s", r->str);
    freeReplyObject(r);
}

/* Reassigns an empty slot from the master on port `from` to the one on port `to` the way
 * redis-cli --cluster reshard does. */
static void cl_move_slot(fix_t *f, unsigned slot, int from, int to)
{
    char from_id[64], to_id[64];
    cl_node_id(from, from_id, sizeof(from_id));
    cl_node_id(to, to_id, sizeof(to_id));
    freeReplyObject(redis_cmd(to, "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id));
    freeReplyObject(redis_cmd(from, "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id));
    freeReplyObject(redis_cmd(to, "CLUSTER SETSLOT %u NODE %s", slot, to_id));
    freeReplyObject(redis_cmd(from, "CLUSTER SETSLOT %u NODE %s", slot, to_id));
    for (int i = 0; i < RCL_NODES; i++) {
        if (f->rcl->port[i] != from && f->rcl->port[i] != to)
            freeReplyObject(redis_cmd(f->rcl->port[i], "CLUSTER SETSLOT %u NODE %s", slot, to_id));
    }
}

/* A slot that moves to another master: its node drops the SSUBSCRIBE, the broker follows
 * the refreshed slot table and reports a resubscribe. */
static void test_cl_sharded_slot_moves(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    cl_sharded_pair(f);
    const char *ch = "migrating";
    const char *name = "rotor.client.{migrating}";
    unsigned slot = rds_key_slot(rt_str_c(name));
    int from = cl_port_of(f, ch);
    int to = f->rcl->port[0] == from ? f->rcl->port[1] : f->rcl->port[0];
    assert_int_equal(broker_subscribe(f->b.b, rt_str_c(ch)), 0);
    assert_true(cl_shardnumsub_wait(f, from, name, 1));

    cl_move_slot(f, slot, from, to);
    assert_true(cl_shardnumsub_wait(f, from, name, 0));
    assert_true(cl_shardnumsub_wait(f, to, name, 1));
    assert_true(run_until(f, &f->b.sink.nresub, 1, 5000));
    pub_opts(f, ch, "after", (broker_publish_opts_t){0});
    assert_true(run_until(f, &f->b.sink.npubs, 1, 5000));
    assert_true(rt_str_eq_c(f->b.sink.pubs[0]->data, "after"));

    cl_move_slot(f, slot, to, from);
    assert_true(cl_shardnumsub_wait(f, from, name, 1));
    int64_t deadline = rt_mono_ms() + 5000;
    while (rcl_slot_port(f->rcl, slot) != from && rt_mono_ms() < deadline)
        run_ms(f, 10);
}

/* A PUB/SUB connection whose node does not answer moves to another cluster node. */
static void test_cl_pubsub_moves(void **state)
{
    fix_t *f = *state;
    NEED_REDIS(f);
    char url[256];
    snprintf(url, sizeof(url),
             "redis+cluster://127.0.0.1:%d?addr=127.0.0.1:%d&connect_timeout=200ms",
             rcl_free_port(), f->rcl->port[2]);
    rds_addr_t a;
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(rds_addr_parse(url, &a, &err), 0);
    rt_buf_cleanup(&err);
    cl_node_new(f, &f->b, &a, "node-b");
    rds_addr_cleanup(&a);
    assert_true(run_until_ready(f, f->b.b, true, 8000));
    assert_int_equal(broker_subscribe(f->b.b, RT_STR("moved")), 0);
    run_ms(f, 100);
    pub_hist(f, "moved", "hello");
    assert_true(run_until(f, &f->b.sink.npubs, 1, 5000));
    assert_true(rt_str_eq_c(f->b.sink.pubs[0]->data, "hello"));
}

int run_broker_redis(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_publish_without_history),
        T(test_offsets_and_epoch),
        T(test_publish_all_fields),
        T(test_history_table),
        T(test_history_limit),
        T(test_history_size_trim),
        T(test_history_creates_meta),
        T(test_meta_ttl_new_epoch),
        T(test_idempotency),
        T(test_version_suppression),
        T(test_history_remove_keeps_top),
        T(test_bad_requests),
        T(test_two_nodes),
        T(test_malformed_dropped),
        T(test_control),
        T(test_two_shards),
        T(test_never_synchronous),
        T(test_destroy_cancels_pending),
        T(test_request_during_destroy),
        T(test_destroy_from_callback),
        T(test_outage_and_resubscribe),
    };
    const struct CMUnitTest cluster_tests[] = {
        cmocka_unit_test_setup_teardown(test_cl_publish_history, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_cl_idempotency_and_version, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_cl_two_nodes, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_cl_pubsub_moves, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_cl_sharded, cl_setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_cl_sharded_slot_moves, cl_setup, cl_teardown),
    };
#undef T
    int failed = cmocka_run_group_tests_name("broker_redis", tests, group_setup, group_teardown);
    return failed + cmocka_run_group_tests_name("broker_redis_cluster", cluster_tests,
                                                cl_group_setup, cl_group_teardown);
}

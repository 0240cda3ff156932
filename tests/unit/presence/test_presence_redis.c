/* Redis presence against real redis-server processes (started here on free loopback ports
 * in temp dirs, stopped at the end). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <hiredis/hiredis.h>

#include "broker/rds.h"
#include "node/base/err.h"
#include "presence/presence_redis.h"

#define MAXREC 16

/* ---- redis-server processes ---- */

typedef struct srv {
    pid_t pid;
    int port;
    char dir[128];
    redisContext *ctl; /* synchronous connection for checks */
} srv_t;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* port 0: a free one. */
static bool srv_start_port(srv_t *s, int port)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/rt_presence_redis.XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return false;
    s->port = port > 0 ? port : free_port();
    if (s->port <= 0)
        return false;
    char port_arg[16];
    snprintf(port_arg, sizeof(port_arg), "%d", s->port);
    s->pid = fork();
    if (s->pid < 0)
        return false;
    if (s->pid == 0) {
        /* A crashing test must not leave servers behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char log[200];
        snprintf(log, sizeof(log), "%s/redis.log", s->dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (chdir(s->dir) != 0)
            _exit(127);
        execlp("redis-server", "redis-server", "--port", port_arg, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--daemonize", "no", "--dir", s->dir, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 250; i++) {
        redisContext *c = redisConnect("127.0.0.1", s->port);
        if (c != NULL && c->err == 0) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            if (ok) {
                s->ctl = c;
                return true;
            }
        }
        redisFree(c);
        sleep_ms(20);
    }
    return false;
}

static bool srv_start(srv_t *s)
{
    return srv_start_port(s, 0);
}

static void srv_stop(srv_t *s)
{
    if (s->ctl != NULL) {
        redisFree(s->ctl);
        s->ctl = NULL;
    }
    if (s->pid > 0) {
        kill(s->pid, SIGCONT); /* a test may have stopped it */
        kill(s->pid, SIGTERM);
        int status;
        for (int i = 0; i < 250 && waitpid(s->pid, &status, WNOHANG) == 0; i++)
            sleep_ms(20);
        if (kill(s->pid, 0) == 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
        }
        s->pid = 0;
    }
    if (s->dir[0] != '\0') {
        char path[200];
        snprintf(path, sizeof(path), "%s/redis.log", s->dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/dump.rdb", s->dir);
        unlink(path);
        rmdir(s->dir);
        s->dir[0] = '\0';
    }
}

static long long srv_int(srv_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(s->ctl, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void srv_flush(srv_t *s)
{
    redisReply *r = redisCommand(s->ctl, "FLUSHALL");
    assert_non_null(r);
    freeReplyObject(r);
}

/* ---- fixture ---- */

typedef struct fix {
    struct ev_loop *loop;
    srv_t srv[3]; /* [0], [1]: for every test; [2]: killed by test_redis_down */
} fix_t;

typedef struct ent {
    char user[64], client[64], conn[300], chan[300];
    size_t user_n, client_n, conn_n, chan_n;
} ent_t;

typedef struct res {
    int calls;
    int status;
    size_t n;
    ent_t e[MAXREC]; /* sorted by client */
    uint32_t clients, users;
} res_t;

static int group_setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    signal(SIGPIPE, SIG_IGN);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    for (int i = 0; i < 2; i++) {
        if (!srv_start(&f->srv[i])) {
            fprintf(stderr, "cannot start redis-server\n");
            srv_stop(&f->srv[0]);
            srv_stop(&f->srv[1]);
            return -1;
        }
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fix_t *f = *state;
    for (int i = 0; i < 3; i++)
        srv_stop(&f->srv[i]);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static int setup(void **state)
{
    fix_t *f = *state;
    srv_flush(&f->srv[0]);
    srv_flush(&f->srv[1]);
    return 0;
}

static void on_wait(struct ev_loop *loop, ev_timer *w, int revents)
{
    *(bool *)w->data = true;
}

/* Runs the loop until *calls reaches want or timeout_ms passes (rds timers keep the loop
 * alive, so ev_run never returns by itself). Returns whether it got there. */
static bool run_until(fix_t *f, const int *calls, int want, int timeout_ms)
{
    bool fired = false;
    ev_timer t;
    ev_timer_init(&t, on_wait, timeout_ms / 1000.0, 0.);
    t.data = &fired;
    ev_timer_start(f->loop, &t);
    while (!fired && (calls == NULL || *calls < want))
        ev_run(f->loop, EVRUN_ONCE);
    ev_timer_stop(f->loop, &t);
    return calls == NULL || *calls >= want;
}

static void wait_ms(fix_t *f, int ms)
{
    run_until(f, NULL, 0, ms);
}

static void done_cb(int status, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
}

static void copy(char *dst, size_t cap, size_t *n, rt_str_t s)
{
    assert_true(s.n <= cap);
    if (s.n)
        memcpy(dst, s.p, s.n);
    *n = s.n;
}

static int cmp_ent(const void *a, const void *b)
{
    const ent_t *x = a, *y = b;
    return strcmp(x->client, y->client);
}

static void get_cb(int status, const rt_client_info_t *entries, size_t n, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    r->n = n;
    assert_true(n <= MAXREC);
    for (size_t i = 0; i < n; i++) {
        ent_t *e = &r->e[i];
        memset(e, 0, sizeof(*e));
        copy(e->user, sizeof(e->user) - 1, &e->user_n, entries[i].user);
        copy(e->client, sizeof(e->client) - 1, &e->client_n, entries[i].client);
        copy(e->conn, sizeof(e->conn), &e->conn_n, entries[i].conn_info);
        copy(e->chan, sizeof(e->chan), &e->chan_n, entries[i].chan_info);
    }
    qsort(r->e, n, sizeof(r->e[0]), cmp_ent);
}

static void stats_cb(int status, uint32_t clients, uint32_t users, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    r->clients = clients;
    r->users = users;
}

static presence_t *make_opts(fix_t *f, const int *srv_idx, size_t n,
                             const presence_redis_opts_t *opts)
{
    rds_addr_t addrs[2];
    assert_true(n <= 2);
    for (size_t i = 0; i < n; i++) {
        char url[64];
        snprintf(url, sizeof(url), "127.0.0.1:%d", f->srv[srv_idx[i]].port);
        assert_int_equal(rds_addr_parse(url, &addrs[i], NULL), 0);
    }
    presence_t *p = presence_redis_new(f->loop, addrs, n, opts);
    for (size_t i = 0; i < n; i++)
        rds_addr_cleanup(&addrs[i]);
    return p;
}

static presence_t *make(fix_t *f, const int *srv_idx, size_t n, int64_t ttl_ms)
{
    rds_addr_t addrs[2];
    assert_true(n <= 2);
    for (size_t i = 0; i < n; i++) {
        char url[64];
        snprintf(url, sizeof(url), "127.0.0.1:%d", f->srv[srv_idx[i]].port);
        assert_int_equal(rds_addr_parse(url, &addrs[i], NULL), 0);
    }
    presence_redis_opts_t opts = {.ttl_ms = ttl_ms};
    presence_t *p = presence_redis_new(f->loop, addrs, n, &opts);
    for (size_t i = 0; i < n; i++)
        rds_addr_cleanup(&addrs[i]);
    return p;
}

/* Waits until p accepts requests on channel's shard (rds connects asynchronously). */
static void wait_ready(fix_t *f, presence_t *p, const char *ch)
{
    for (int i = 0; i < 300; i++) {
        res_t r = {0};
        int rc = presence_stats(p, rt_str_c(ch), stats_cb, &r);
        if (rc == 0) {
            assert_true(run_until(f, &r.calls, 1, 5000));
            if (r.status == 0)
                return;
        } else {
            assert_int_equal(rc, RT_ECLOSED);
        }
        wait_ms(f, 10);
    }
    fail_msg("presence never became ready");
}

static void add(fix_t *f, presence_t *p, const char *ch, const char *user, const char *client)
{
    rt_client_info_t info = {rt_str_c(user), rt_str_c(client), RT_STR_NULL, RT_STR_NULL};
    res_t r = {0};
    assert_int_equal(presence_add(p, rt_str_c(ch), &info, done_cb, &r), 0);
    assert_int_equal(r.calls, 0); /* never synchronous */
    assert_true(run_until(f, &r.calls, 1, 5000));
    wait_ms(f, 1); /* a second callback would show up here */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
}

static void remove_client(fix_t *f, presence_t *p, const char *ch, const char *user,
                          const char *client)
{
    res_t r = {0};
    assert_int_equal(
        presence_remove(p, rt_str_c(ch), rt_str_c(client), rt_str_c(user), done_cb, &r), 0);
    assert_int_equal(r.calls, 0);
    assert_true(run_until(f, &r.calls, 1, 5000));
    assert_int_equal(r.status, 0);
}

static res_t get(fix_t *f, presence_t *p, const char *ch)
{
    res_t r = {0};
    assert_int_equal(presence_get(p, rt_str_c(ch), get_cb, &r), 0);
    assert_int_equal(r.calls, 0);
    assert_true(run_until(f, &r.calls, 1, 5000));
    wait_ms(f, 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    return r;
}

static res_t stats(fix_t *f, presence_t *p, const char *ch)
{
    res_t r = {0};
    assert_int_equal(presence_stats(p, rt_str_c(ch), stats_cb, &r), 0);
    assert_int_equal(r.calls, 0);
    assert_true(run_until(f, &r.calls, 1, 5000));
    wait_ms(f, 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    return r;
}

static const ent_t *find(const res_t *r, const char *client)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->e[i].client, client) == 0)
            return &r->e[i];
    return NULL;
}

static void assert_ent(const res_t *r, const char *client, const char *user, const char *conn,
                       const char *chan)
{
    const ent_t *e = find(r, client);
    assert_non_null(e);
    assert_int_equal(e->user_n, strlen(user));
    assert_memory_equal(e->user, user, e->user_n);
    assert_int_equal(e->conn_n, strlen(conn));
    assert_memory_equal(e->conn, conn, e->conn_n);
    assert_int_equal(e->chan_n, strlen(chan));
    assert_memory_equal(e->chan, chan, e->chan_n);
}

static const int ONE[1] = {0};

/* ---- tests ---- */

static void test_add_get_stats(void **state)
{
    fix_t *f = *state;
    presence_t *p = make(f, ONE, 1, 0);
    wait_ready(f, p, "room");

    res_t r = get(f, p, "room");
    assert_int_equal(r.n, 0);
    r = stats(f, p, "room");
    assert_int_equal(r.clients, 0);
    assert_int_equal(r.users, 0);

    char user[] = "u1", client[] = "c1", ci[] = "{\"a\":1}", chi[] = "{\"b\":2}";
    rt_client_info_t info = {rt_str_c(user), rt_str_c(client), rt_str_c(ci), rt_str_c(chi)};
    res_t d = {0};
    assert_int_equal(presence_add(p, RT_STR("room"), &info, done_cb, &d), 0);
    /* Everything is copied at the call. */
    memset(user, 'x', 2);
    memset(client, 'x', 2);
    memset(ci, 'x', sizeof(ci) - 1);
    memset(chi, 'x', sizeof(chi) - 1);
    assert_true(run_until(f, &d.calls, 1, 5000));
    assert_int_equal(d.status, 0);
    add(f, p, "room", "u1", "c2");
    add(f, p, "room", "u2", "c3");
    add(f, p, "room", "", "c4");
    add(f, p, "room", "", "c5");
    add(f, p, "other", "u9", "c9");

    r = get(f, p, "room");
    assert_int_equal(r.n, 5);
    assert_ent(&r, "c1", "u1", "{\"a\":1}", "{\"b\":2}");
    assert_ent(&r, "c2", "u1", "", "");
    assert_ent(&r, "c3", "u2", "", "");
    assert_ent(&r, "c4", "", "", "");
    assert_ent(&r, "c5", "", "", "");
    r = stats(f, p, "room");
    assert_int_equal(r.clients, 5);
    assert_int_equal(r.users, 3); /* u1, u2 and the anonymous user */
    r = get(f, p, "other");
    assert_int_equal(r.n, 1);
    assert_ent(&r, "c9", "u9", "", "");

    /* The keys of SERVER.md §3.3 with the default prefix. */
    assert_int_equal(srv_int(&f->srv[0], "HLEN rotor.presence.data.room"), 5);
    assert_int_equal(srv_int(&f->srv[0], "ZCARD rotor.presence.expire.room"), 5);
    long long ttl = srv_int(&f->srv[0], "TTL rotor.presence.data.room");
    assert_true(ttl > 55 && ttl <= 60);
    presence_destroy(p);
}

static void test_remove(void **state)
{
    fix_t *f = *state;
    presence_t *p = make(f, ONE, 1, 0);
    wait_ready(f, p, "room");
    add(f, p, "room", "u1", "c1");
    add(f, p, "room", "u2", "c2");
    add(f, p, "room", "u2", "c3");

    remove_client(f, p, "room", "u2", "c2");
    remove_client(f, p, "room", "", "nobody"); /* absent: still fine */
    remove_client(f, p, "nowhere", "u1", "c1");
    /* Fire and forget. */
    assert_int_equal(presence_remove(p, RT_STR("room"), RT_STR("c3"), RT_STR(""), NULL, NULL), 0);
    res_t r = get(f, p, "room"); /* same shard, pipelined: runs after the remove */
    assert_int_equal(r.n, 1);
    assert_ent(&r, "c1", "u1", "", "");
    r = stats(f, p, "room");
    assert_int_equal(r.clients, 1);
    assert_int_equal(r.users, 1);
    assert_int_equal(srv_int(&f->srv[0], "ZCARD rotor.presence.expire.room"), 1);

    remove_client(f, p, "room", "u1", "c1");
    r = stats(f, p, "room");
    assert_int_equal(r.clients, 0);
    assert_int_equal(r.users, 0);
    assert_int_equal(srv_int(&f->srv[0], "EXISTS rotor.presence.data.room"), 0);

    /* Invalid arguments are refused without a callback. */
    assert_int_equal(presence_remove(p, RT_STR(""), RT_STR("c1"), RT_STR(""), NULL, NULL),
                     RT_EINVAL);
    assert_int_equal(presence_remove(p, RT_STR("room"), RT_STR(""), RT_STR(""), NULL, NULL),
                     RT_EINVAL);
    rt_client_info_t anon = {0};
    assert_int_equal(presence_add(p, RT_STR("room"), &anon, NULL, NULL), RT_EINVAL);
    assert_int_equal(presence_get(p, RT_STR(""), get_cb, NULL), RT_EINVAL);
    assert_int_equal(presence_stats(p, RT_STR("room"), NULL, NULL), RT_EINVAL);
    presence_destroy(p);
}

static void test_readd_updates(void **state)
{
    fix_t *f = *state;
    presence_t *p = make(f, ONE, 1, 0);
    wait_ready(f, p, "room");
    rt_client_info_t info = {RT_STR("u1"), RT_STR("c1"), RT_STR("{\"v\":1}"), RT_STR("old")};
    assert_int_equal(presence_add(p, RT_STR("room"), &info, NULL, NULL), 0);
    info.conn_info = RT_STR("{\"v\":2}");
    info.chan_info = RT_STR("new");
    res_t d = {0};
    assert_int_equal(presence_add(p, RT_STR("room"), &info, done_cb, &d), 0);
    assert_true(run_until(f, &d.calls, 1, 5000));
    res_t r = get(f, p, "room");
    assert_int_equal(r.n, 1);
    assert_ent(&r, "c1", "u1", "{\"v\":2}", "new");

    /* A flushed script cache costs one NOSCRIPT round trip, nothing else. */
    redisReply *rep = redisCommand(f->srv[0].ctl, "SCRIPT FLUSH");
    assert_non_null(rep);
    freeReplyObject(rep);

    /* The same client under another user moves between users; absent infos vanish. */
    add(f, p, "room", "u2", "c1");
    r = get(f, p, "room");
    assert_int_equal(r.n, 1);
    assert_ent(&r, "c1", "u2", "", "");
    r = stats(f, p, "room");
    assert_int_equal(r.clients, 1);
    assert_int_equal(r.users, 1);
    presence_destroy(p);
}

static void test_expiry(void **state)
{
    fix_t *f = *state;
    presence_t *p = make(f, ONE, 1, 1000);
    wait_ready(f, p, "room");
    add(f, p, "room", "u1", "a");
    add(f, p, "room", "u2", "b");
    assert_int_equal(get(f, p, "room").n, 2);

    wait_ms(f, 700);
    add(f, p, "room", "u2", "b"); /* refreshed: expires 0.7 s after a */
    wait_ms(f, 600);
    res_t r = get(f, p, "room");
    assert_int_equal(r.n, 1);
    assert_ent(&r, "b", "u2", "", "");
    /* The get cleaned the index and the hash, not just the result. */
    assert_int_equal(srv_int(&f->srv[0], "ZCARD rotor.presence.expire.room"), 1);
    assert_int_equal(srv_int(&f->srv[0], "HLEN rotor.presence.data.room"), 1);

    wait_ms(f, 900);
    r = get(f, p, "room");
    assert_int_equal(r.n, 0);
    r = stats(f, p, "room");
    assert_int_equal(r.clients, 0);
    assert_int_equal(r.users, 0);

    /* Stats alone (no get before it) drops expired entries too. */
    add(f, p, "room2", "u1", "c");
    wait_ms(f, 1500);
    r = stats(f, p, "room2");
    assert_int_equal(r.clients, 0);
    assert_int_equal(r.users, 0);
    /* Nothing of the channel is left in Redis. */
    assert_int_equal(srv_int(&f->srv[0], "EXISTS rotor.presence.data.room2"), 0);
    presence_destroy(p);
}

static void test_two_nodes(void **state)
{
    fix_t *f = *state;
    presence_t *p1 = make(f, ONE, 1, 0);
    presence_t *p2 = make(f, ONE, 1, 0);
    wait_ready(f, p1, "room");
    wait_ready(f, p2, "room");
    add(f, p1, "room", "u1", "n1-c1");
    add(f, p2, "room", "u1", "n2-c1");
    add(f, p2, "room", "u2", "n2-c2");

    res_t r1 = get(f, p1, "room"), r2 = get(f, p2, "room");
    assert_int_equal(r1.n, 3);
    assert_int_equal(r2.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(r1.e[i].client, r2.e[i].client);
    res_t s = stats(f, p1, "room");
    assert_int_equal(s.clients, 3);
    assert_int_equal(s.users, 2);

    /* A node may remove another node's entry (e.g. after a client moved). */
    remove_client(f, p2, "room", "u1", "n1-c1");
    r1 = get(f, p1, "room");
    assert_int_equal(r1.n, 2);
    assert_null(find(&r1, "n1-c1"));
    presence_destroy(p1);
    presence_destroy(p2);
}

static void test_two_shards(void **state)
{
    fix_t *f = *state;
    const int both[2] = {0, 1};
    presence_t *p = make(f, both, 2, 0);
    /* SERVER.md §3.13 vectors for n = 2: chat:index -> 0; news, user#42, a -> 1. */
    wait_ready(f, p, "chat:index");
    wait_ready(f, p, "news");
    add(f, p, "chat:index", "u1", "c1");
    add(f, p, "news", "u2", "c2");
    add(f, p, "user#42", "u3", "c3");
    add(f, p, "a", "u4", "c4");

    assert_int_equal(srv_int(&f->srv[0], "EXISTS rotor.presence.data.chat:index"), 1);
    assert_int_equal(srv_int(&f->srv[0], "EXISTS rotor.presence.expire.chat:index"), 1);
    assert_int_equal(srv_int(&f->srv[1], "EXISTS rotor.presence.data.chat:index"), 0);
    const char *on1[] = {"news", "user#42", "a"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(srv_int(&f->srv[1], "EXISTS rotor.presence.data.%s", on1[i]), 1);
        assert_int_equal(srv_int(&f->srv[1], "EXISTS rotor.presence.expire.%s", on1[i]), 1);
        assert_int_equal(srv_int(&f->srv[0], "EXISTS rotor.presence.data.%s", on1[i]), 0);
    }
    assert_int_equal(srv_int(&f->srv[0], "DBSIZE"), 2);
    assert_int_equal(srv_int(&f->srv[1], "DBSIZE"), 6);

    res_t r = get(f, p, "news");
    assert_int_equal(r.n, 1);
    assert_ent(&r, "c2", "u2", "", "");
    r = get(f, p, "chat:index");
    assert_int_equal(r.n, 1);
    assert_ent(&r, "c1", "u1", "", "");
    remove_client(f, p, "a", "u4", "c4");
    assert_int_equal(srv_int(&f->srv[1], "EXISTS rotor.presence.data.a"), 0);
    presence_destroy(p);
}

static void test_binary_round_trip(void **state)
{
    fix_t *f = *state;
    presence_t *p = make(f, ONE, 1, 0);
    wait_ready(f, p, "bin");
    char conn[256], chan[4] = {0, (char)0xff, '_', 0};
    for (int i = 0; i < 256; i++)
        conn[i] = (char)(255 - i);
    rt_client_info_t info = {RT_STR("\xc3\xa9l\xc3\xa8ve"), RT_STR("c-1"),
                             rt_str_from(conn, sizeof(conn)), rt_str_from(chan, 4)};
    res_t d = {0};
    assert_int_equal(presence_add(p, RT_STR("bin"), &info, done_cb, &d), 0);
    assert_true(run_until(f, &d.calls, 1, 5000));
    assert_int_equal(d.status, 0);
    res_t r = get(f, p, "bin");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.e[0].conn_n, sizeof(conn));
    assert_memory_equal(r.e[0].conn, conn, sizeof(conn));
    assert_int_equal(r.e[0].chan_n, 4);
    assert_memory_equal(r.e[0].chan, chan, 4);
    assert_int_equal(r.e[0].user_n, info.user.n);
    assert_memory_equal(r.e[0].user, info.user.p, info.user.n);
    assert_string_equal(r.e[0].client, "c-1");
    presence_destroy(p);
}

static void test_malformed_entry_skipped(void **state)
{
    fix_t *f = *state;
    presence_t *p = make(f, ONE, 1, 0);
    wait_ready(f, p, "room");
    add(f, p, "room", "u1", "good");
    /* A value that is not a ClientInfo map, e.g. from a foreign writer on the prefix. */
    redisReply *rep =
        redisCommand(f->srv[0].ctl, "HSET rotor.presence.data.room bad %b", "\xc1", (size_t)1);
    assert_non_null(rep);
    freeReplyObject(rep);
    res_t r = get(f, p, "room");
    assert_int_equal(r.n, 1);
    assert_ent(&r, "good", "u1", "", "");
    r = stats(f, p, "room");
    assert_int_equal(r.clients, 1);
    assert_int_equal(r.users, 1);
    presence_destroy(p);
}

static void test_destroy_cancels(void **state)
{
    fix_t *f = *state;
    presence_t *p = make(f, ONE, 1, 0);
    wait_ready(f, p, "room");
    res_t a = {0}, g = {0}, s = {0};
    rt_client_info_t info = {RT_STR("u"), RT_STR("c"), RT_STR_NULL, RT_STR_NULL};
    assert_int_equal(presence_add(p, RT_STR("room"), &info, done_cb, &a), 0);
    assert_int_equal(presence_get(p, RT_STR("room"), get_cb, &g), 0);
    assert_int_equal(presence_stats(p, RT_STR("room"), stats_cb, &s), 0);
    assert_int_equal(presence_remove(p, RT_STR("room"), RT_STR("c"), RT_STR(""), NULL, NULL), 0);
    presence_destroy(p);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, RT_ECANCELED);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, RT_ECANCELED);
    assert_int_equal(g.n, 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, RT_ECANCELED);
    wait_ms(f, 20);
    assert_int_equal(a.calls + g.calls + s.calls, 3);
}

typedef struct destroyer {
    presence_t *p;
    res_t r;
} destroyer_t;

static void destroy_from_get_cb(int status, const rt_client_info_t *entries, size_t n, void *ud)
{
    destroyer_t *d = ud;
    d->r.calls++;
    d->r.status = status;
    presence_destroy(d->p);
    d->p = NULL;
}

static void test_destroy_from_callback(void **state)
{
    fix_t *f = *state;
    presence_t *p = make(f, ONE, 1, 0);
    wait_ready(f, p, "room");
    add(f, p, "room", "u", "c");
    destroyer_t d = {.p = p};
    res_t later = {0};
    assert_int_equal(presence_get(p, RT_STR("room"), destroy_from_get_cb, &d), 0);
    assert_int_equal(presence_stats(p, RT_STR("room"), stats_cb, &later), 0);
    assert_true(run_until(f, &later.calls, 1, 5000));
    assert_int_equal(d.r.calls, 1);
    assert_int_equal(d.r.status, 0);
    assert_null(d.p);
    /* Answered or cancelled, but exactly once. */
    assert_int_equal(later.calls, 1);
    assert_true(later.status == 0 || later.status == RT_ECANCELED);
    wait_ms(f, 20);
    assert_int_equal(later.calls, 1);
}

static void test_redis_down(void **state)
{
    fix_t *f = *state;
    rds_addr_t addr;
    char url[64];
    rt_client_info_t info = {RT_STR("u"), RT_STR("c"), RT_STR_NULL, RT_STR_NULL};

    /* Nothing listens: fail fast, no callback. */
    int port = free_port();
    snprintf(url, sizeof(url), "127.0.0.1:%d", port);
    assert_int_equal(rds_addr_parse(url, &addr, NULL), 0);
    presence_redis_opts_t opts = {.prefix = "t", .ttl_ms = 1000};
    presence_t *p = presence_redis_new(f->loop, &addr, 1, &opts);
    rds_addr_cleanup(&addr);
    wait_ms(f, 100);
    res_t r = {0};
    assert_int_equal(presence_add(p, RT_STR("room"), &info, done_cb, &r), RT_ECLOSED);
    assert_int_equal(presence_remove(p, RT_STR("room"), RT_STR("c"), RT_STR(""), NULL, NULL),
                     RT_ECLOSED);
    assert_int_equal(presence_get(p, RT_STR("room"), get_cb, &r), RT_ECLOSED);
    assert_int_equal(presence_stats(p, RT_STR("room"), stats_cb, &r), RT_ECLOSED);
    wait_ms(f, 50);
    assert_int_equal(r.calls, 0);
    presence_destroy(p);
    assert_int_equal(r.calls, 0);

    /* Redis dies with requests in flight: each either fails fast or calls back once with
     * an error; later requests fail fast; nothing crashes. */
    srv_t *s = &f->srv[2];
    assert_true(srv_start(s));
    snprintf(url, sizeof(url), "127.0.0.1:%d", s->port);
    assert_int_equal(rds_addr_parse(url, &addr, NULL), 0);
    addr.io_timeout_ms = 300;
    opts = (presence_redis_opts_t){0};
    p = presence_redis_new(f->loop, &addr, 1, &opts);
    rds_addr_cleanup(&addr);
    wait_ready(f, p, "room");
    add(f, p, "room", "u", "c");

    /* A hung server: the request times out (rds then reconnects). */
    kill(s->pid, SIGSTOP);
    res_t t = {0};
    assert_int_equal(presence_get(p, RT_STR("room"), get_cb, &t), 0);
    assert_true(run_until(f, &t.calls, 1, 3000));
    assert_int_equal(t.status, RT_ETIMEOUT);
    assert_int_equal(t.n, 0);
    kill(s->pid, SIGCONT);
    wait_ready(f, p, "room");
    assert_int_equal(get(f, p, "room").n, 1);

    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    res_t g = {0}, st = {0}, a = {0};
    int rc_g = presence_get(p, RT_STR("room"), get_cb, &g);
    int rc_s = presence_stats(p, RT_STR("room"), stats_cb, &st);
    int rc_a = presence_add(p, RT_STR("room"), &info, done_cb, &a);
    int expect = (rc_g == 0) + (rc_s == 0) + (rc_a == 0);
    for (int i = 0; i < 500 && g.calls + st.calls + a.calls < expect; i++)
        wait_ms(f, 10);
    assert_int_equal(g.calls + st.calls + a.calls, expect);
    if (rc_g == 0)
        assert_int_not_equal(g.status, 0);
    else
        assert_int_equal(rc_g, RT_ECLOSED);
    if (rc_s == 0)
        assert_int_not_equal(st.status, 0);
    else
        assert_int_equal(rc_s, RT_ECLOSED);
    if (rc_a == 0)
        assert_int_not_equal(a.status, 0);
    else
        assert_int_equal(rc_a, RT_ECLOSED);
    wait_ms(f, 50);
    assert_int_equal(presence_get(p, RT_STR("room"), get_cb, &g), RT_ECLOSED);
    assert_int_equal(presence_remove(p, RT_STR("room"), RT_STR("c"), RT_STR(""), NULL, NULL),
                     RT_ECLOSED);
    presence_destroy(p);
    assert_int_equal(g.calls + st.calls + a.calls, expect);
    srv_stop(s);
}

/* ---- user mapping and hash-field TTL (SERVER.md §3.8) ---- */

/* The reply of a command as an integer, or -1 for a nil reply. */
static long long srv_int_or_nil(srv_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(s->ctl, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    long long v = -1;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    else
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    return v;
}

static void assert_stats(fix_t *f, presence_t *p, const char *ch, uint32_t clients, uint32_t users)
{
    res_t r = stats(f, p, ch);
    assert_int_equal(r.clients, clients);
    assert_int_equal(r.users, users);
}

static void test_user_mapping(void **state)
{
    fix_t *f = *state;
    srv_t *s = &f->srv[0];
    presence_redis_opts_t opts = {.user_mapping = true};
    presence_t *p = make_opts(f, ONE, 1, &opts);
    wait_ready(f, p, "room");
    assert_stats(f, p, "room", 0, 0);

    add(f, p, "room", "u1", "c1");
    add(f, p, "room", "u1", "c2");
    add(f, p, "room", "u2", "c3");
    add(f, p, "room", "u1", "c1"); /* a refresh does not count the user again */
    assert_stats(f, p, "room", 3, 2);
    assert_int_equal(srv_int_or_nil(s, "HGET rotor.presence.user.clients.room u1"), 2);
    assert_int_equal(srv_int_or_nil(s, "HGET rotor.presence.user.clients.room u2"), 1);
    assert_int_equal(srv_int(s, "ZCARD rotor.presence.user.expire.room"), 2);
    assert_int_equal(srv_int(s, "ZCARD rotor.presence.expire.room"), 3);
    const char *keys[] = {"data", "expire", "user.clients", "user.expire"};
    for (size_t i = 0; i < 4; i++) {
        long long ttl = srv_int(s, "TTL rotor.presence.%s.room", keys[i]);
        assert_true(ttl > 55 && ttl <= 60);
    }
    assert_int_equal(get(f, p, "room").n, 3);

    remove_client(f, p, "room", "u1", "c1");
    assert_int_equal(srv_int_or_nil(s, "HGET rotor.presence.user.clients.room u1"), 1);
    assert_stats(f, p, "room", 2, 2);
    /* Removing an absent client touches no count. */
    remove_client(f, p, "room", "u1", "c1");
    remove_client(f, p, "room", "u2", "nobody");
    assert_int_equal(srv_int_or_nil(s, "HGET rotor.presence.user.clients.room u1"), 1);
    assert_int_equal(srv_int_or_nil(s, "HGET rotor.presence.user.clients.room u2"), 1);

    remove_client(f, p, "room", "u1", "c2");
    assert_int_equal(srv_int(s, "HEXISTS rotor.presence.user.clients.room u1"), 0);
    assert_int_equal(srv_int_or_nil(s, "ZSCORE rotor.presence.user.expire.room u1"), -1);
    assert_stats(f, p, "room", 1, 1);

    /* Stats reads the hash lengths, not the entries: a user only the hash knows counts. */
    assert_int_equal(srv_int(s, "HSET rotor.presence.user.clients.room ghost 1"), 1);
    assert_stats(f, p, "room", 1, 2);

    remove_client(f, p, "room", "u2", "c3");
    assert_int_equal(srv_int(s, "EXISTS rotor.presence.data.room"), 0);
    assert_int_equal(srv_int(s, "HEXISTS rotor.presence.user.clients.room u2"), 0);
    presence_destroy(p);
}

static void test_user_mapping_anonymous(void **state)
{
    fix_t *f = *state;
    presence_redis_opts_t opts = {.user_mapping = true};
    presence_t *p = make_opts(f, ONE, 1, &opts);
    wait_ready(f, p, "room");
    add(f, p, "room", "", "a1");
    add(f, p, "room", "", "a2");
    assert_stats(f, p, "room", 2, 1); /* the anonymous user counts once, as without mapping */
    assert_int_equal(srv_int_or_nil(&f->srv[0], "HGET rotor.presence.user.clients.room %s", ""), 2);
    remove_client(f, p, "room", "", "a1");
    remove_client(f, p, "room", "", "a2");
    assert_stats(f, p, "room", 0, 0);
    presence_destroy(p);
}

static void test_user_mapping_expiry(void **state)
{
    fix_t *f = *state;
    srv_t *s = &f->srv[0];
    presence_redis_opts_t opts = {.ttl_ms = 1000, .user_mapping = true};
    presence_t *p = make_opts(f, ONE, 1, &opts);
    wait_ready(f, p, "room");
    add(f, p, "room", "u1", "a");
    add(f, p, "room", "u2", "b");
    assert_stats(f, p, "room", 2, 2);

    wait_ms(f, 700);
    add(f, p, "room", "u2", "b"); /* refreshed: expires 0.7 s after a */
    wait_ms(f, 600);
    assert_stats(f, p, "room", 1, 1);
    /* The stats cleaned both indexes and both hashes. */
    assert_int_equal(srv_int(s, "HLEN rotor.presence.data.room"), 1);
    assert_int_equal(srv_int(s, "HEXISTS rotor.presence.user.clients.room u1"), 0);
    assert_int_equal(srv_int(s, "ZCARD rotor.presence.user.expire.room"), 1);

    wait_ms(f, 900);
    assert_stats(f, p, "room", 0, 0);
    const char *keys[] = {"data", "expire", "user.clients", "user.expire"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(srv_int(s, "EXISTS rotor.presence.%s.room", keys[i]), 0);
    presence_destroy(p);
}

/* Redis version of s as major * 100 + minor (7.0.15 -> 700). */
static int srv_version(srv_t *s)
{
    redisReply *r = redisCommand(s->ctl, "INFO server");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    const char *v = strstr(r->str, "redis_version:");
    assert_non_null(v);
    int major = 0, minor = 0;
    assert_int_equal(sscanf(v, "redis_version:%d.%d", &major, &minor), 2);
    freeReplyObject(r);
    return major * 100 + minor;
}

typedef struct fatal_rec {
    int calls;
    char reason[512];
} fatal_rec_t;

static void on_fatal(const char *reason, void *ud)
{
    fatal_rec_t *rec = ud;
    rec->calls++;
    snprintf(rec->reason, sizeof(rec->reason), "%s", reason);
}

/* Below 7.4 the probe refuses the mode with a reason naming the option and the version;
 * from 7.4 on the mode works: fields expire in Redis, no zset is written. */
static void test_hash_field_ttl(void **state)
{
    fix_t *f = *state;
    srv_t *s = &f->srv[0];
    fatal_rec_t rec = {0};
    presence_redis_opts_t opts = {.ttl_ms = 1000,
                                  .user_mapping = true,
                                  .hash_field_ttl = true,
                                  .on_fatal = on_fatal,
                                  .fatal_ud = &rec};
    presence_t *p = make_opts(f, ONE, 1, &opts);
    if (srv_version(s) < 704) {
        assert_true(run_until(f, &rec.calls, 1, 5000));
        assert_non_null(strstr(rec.reason, "engine.redis.presence_hash_field_ttl"));
        assert_non_null(strstr(rec.reason, "Redis >= 7.4"));
        assert_non_null(strstr(rec.reason, "HEXPIRE"));
        wait_ms(f, 300); /* once only: the probe timer stopped */
        assert_int_equal(rec.calls, 1);
        presence_destroy(p);
        return;
    }
    wait_ready(f, p, "room");
    add(f, p, "room", "u1", "a");
    add(f, p, "room", "u1", "b");
    assert_stats(f, p, "room", 2, 1);
    assert_int_equal(srv_int(s, "EXISTS rotor.presence.expire.room"), 0);
    assert_int_equal(srv_int(s, "EXISTS rotor.presence.user.expire.room"), 0);
    remove_client(f, p, "room", "u1", "a");
    assert_int_equal(srv_int_or_nil(s, "HGET rotor.presence.user.clients.room u1"), 1);
    wait_ms(f, 2200); /* HEXPIRE has whole seconds */
    assert_stats(f, p, "room", 0, 0);
    assert_int_equal(get(f, p, "room").n, 0);
    assert_int_equal(rec.calls, 0);
    presence_destroy(p);
}

static void destroy_on_fatal(const char *reason, void *ud)
{
    destroyer_t *d = ud;
    d->r.calls++;
    presence_destroy(d->p);
    d->p = NULL;
}

/* The probe waits for an unreachable shard, and on_fatal may destroy the presence. */
static void test_hash_field_ttl_probe_waits(void **state)
{
    fix_t *f = *state;
    srv_t *s = &f->srv[2];
    assert_true(srv_start(s));
    int version = srv_version(s);
    int port = s->port;
    srv_stop(s);

    rds_addr_t addr;
    char url[64];
    snprintf(url, sizeof(url), "127.0.0.1:%d", port);
    assert_int_equal(rds_addr_parse(url, &addr, NULL), 0);
    destroyer_t d = {0};
    presence_redis_opts_t opts = {
        .hash_field_ttl = true, .on_fatal = destroy_on_fatal, .fatal_ud = &d};
    d.p = presence_redis_new(f->loop, &addr, 1, &opts);
    rds_addr_cleanup(&addr);
    wait_ms(f, 300);
    assert_int_equal(d.r.calls, 0); /* nothing to ask yet */

    /* The same port again: the probe gets through once rds reconnects. */
    assert_true(srv_start_port(s, port));
    if (version < 704) {
        assert_true(run_until(f, &d.r.calls, 1, 5000));
        assert_null(d.p);
    } else {
        wait_ms(f, 500);
        assert_int_equal(d.r.calls, 0);
        presence_destroy(d.p);
    }
    srv_stop(s);
}

int run_presence_redis(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_add_get_stats, setup),
        cmocka_unit_test_setup(test_remove, setup),
        cmocka_unit_test_setup(test_readd_updates, setup),
        cmocka_unit_test_setup(test_expiry, setup),
        cmocka_unit_test_setup(test_two_nodes, setup),
        cmocka_unit_test_setup(test_two_shards, setup),
        cmocka_unit_test_setup(test_binary_round_trip, setup),
        cmocka_unit_test_setup(test_malformed_entry_skipped, setup),
        cmocka_unit_test_setup(test_destroy_cancels, setup),
        cmocka_unit_test_setup(test_destroy_from_callback, setup),
        cmocka_unit_test_setup(test_redis_down, setup),
        cmocka_unit_test_setup(test_user_mapping, setup),
        cmocka_unit_test_setup(test_user_mapping_anonymous, setup),
        cmocka_unit_test_setup(test_user_mapping_expiry, setup),
        cmocka_unit_test_setup(test_hash_field_ttl, setup),
        cmocka_unit_test_setup(test_hash_field_ttl_probe_waits, setup),
    };
    return cmocka_run_group_tests_name("presence_redis", tests, group_setup, group_teardown);
}

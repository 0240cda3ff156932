/* Sentinel mode of the rds link against real processes: a password-protected master, its
 * replica and one redis-sentinel (own password), plus an in-loop fake Sentinel whose answer
 * the test steers (ROLE check, re-check). The failover test SIGKILLs the master. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/rds_internal.h"
#include "rds_test.h"
#include "tests/support/rt_redis.h"
#include "tests/support/rt_testproc.h"

#define MASTER_PW   "mpw"
#define SENTINEL_PW "spw"
#define MASTER_NAME "m"

/* A redis-sentinel process: the config file must be its first argument, which rt_redis
 * cannot express. srv carries only the port and password for rt_redis_cmd(). */
typedef struct sentinel_proc {
    pid_t pid;
    rt_redis_t srv;
    char dir[256];
    char conf[300];
    char log[300];
} sentinel_proc_t;

typedef struct fixture {
    struct ev_loop *loop;
    rt_redis_t master;
    rt_redis_t replica;
    sentinel_proc_t sentinel;
} fixture_t;

static fixture_t fx;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls cmd on r until its reply contains want, up to ms. */
static bool wait_reply(const rt_redis_t *r, int argc, const char **argv, const char *want, int ms)
{
    int64_t deadline = rt_mono_ms() + ms;
    char out[8192];
    while (rt_mono_ms() < deadline) {
        if (rt_redis_cmd(r, out, sizeof(out), argc, argv) >= 0 && strstr(out, want) != NULL)
            return true;
        sleep_ms(50);
    }
    return false;
}

static int sentinel_start(sentinel_proc_t *s, int master_port)
{
    memset(s, 0, sizeof(*s));
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof(s->dir), "%s/rt_sentinel.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(s->dir) == NULL)
        return RT_EIO;
    snprintf(s->conf, sizeof(s->conf), "%s/sentinel.conf", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/sentinel.log", s->dir);
    s->srv.port = rt_tp_free_port();
    snprintf(s->srv.password, sizeof(s->srv.password), "%s", SENTINEL_PW);
    FILE *f = fopen(s->conf, "w");
    if (f == NULL || s->srv.port <= 0)
        return RT_EIO;
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndir %s\nrequirepass %s\n"
            "sentinel monitor %s 127.0.0.1 %d 1\nsentinel auth-pass %s %s\n"
            "sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 3000\n",
            s->srv.port, s->dir, SENTINEL_PW, MASTER_NAME, master_port, MASTER_NAME, MASTER_PW,
            MASTER_NAME, MASTER_NAME);
    fclose(f);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return RT_EIO;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", s->conf, "--sentinel", (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    const char *ping[] = {"PING"};
    return wait_reply(&s->srv, 1, ping, "PONG", 5000) ? 0 : RT_ETIMEOUT;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void sentinel_stop(sentinel_proc_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    if (s->dir[0] != '\0') {
        nftw(s->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        s->dir[0] = '\0';
    }
}

static int group_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    fx.loop = ev_loop_new(EVFLAG_AUTO);
    const char *margs[] = {"--requirepass", MASTER_PW, NULL};
    const char *stage = "master";
    int rc = rt_redis_start(&fx.master, margs);
    char mport[16];
    snprintf(mport, sizeof(mport), "%d", fx.master.port);
    const char *rargs[] = {"--replicaof", "127.0.0.1",     mport,     "--masterauth",
                           MASTER_PW,     "--requirepass", MASTER_PW, NULL};
    if (rc == 0) {
        stage = "replica";
        rc = rt_redis_start(&fx.replica, rargs);
    }
    const char *info[] = {"INFO", "replication"};
    if (rc == 0) {
        stage = "replication link";
        if (!wait_reply(&fx.replica, 2, info, "master_link_status:up", 10000))
            rc = RT_ETIMEOUT;
    }
    if (rc == 0) {
        stage = "sentinel";
        rc = sentinel_start(&fx.sentinel, fx.master.port);
    }
    /* The Sentinel learns about the replica from the master's INFO; only then can it fail
     * over. */
    const char *ask[] = {"SENTINEL", "replicas", MASTER_NAME};
    if (rc == 0) {
        stage = "sentinel sees the replica";
        if (!wait_reply(&fx.sentinel.srv, 3, ask, "*1", 10000))
            rc = RT_ETIMEOUT;
    }
    if (rc != 0)
        print_error("cannot start the sentinel setup (%s): %s\n", stage, rt_strerror(rc));
    return rc == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    sentinel_stop(&fx.sentinel);
    rt_redis_stop(&fx.replica);
    rt_redis_stop(&fx.master);
    ev_loop_destroy(fx.loop);
    return 0;
}

static rds_client_t *new_client(const char *url, rds_test_state_t *st)
{
    rds_addr_t a;
    rds_test_addr(&a, "%s", url);
    assert_int_equal(a.mode, RDS_MODE_SENTINEL);
    rds_client_opts_t o;
    rds_client_opts_default(&o);
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 300;
    o.on_state = rds_test_on_state;
    o.ud = st;
    memset(st, 0, sizeof(*st));
    rds_client_t *c = rds_client_new(fx.loop, &a, &o);
    rds_addr_cleanup(&a);
    return c;
}

static void sentinel_url(char *out, size_t n, const char *extra)
{
    snprintf(out, n,
             "redis+sentinel://:" MASTER_PW "@127.0.0.1:%d?sentinel_master_name=" MASTER_NAME
             "&sentinel_password=" SENTINEL_PW "&connect_timeout=300ms&io_timeout=1s%s",
             fx.sentinel.srv.port, extra ? extra : "");
}

/* SET key val then GET key through c; true when both worked. */
static bool set_get(rds_client_t *c, const char *key, const char *val)
{
    rds_test_res_t set, get;
    if (rds_test_cmd(c, &set, "SET", key, val, NULL) != 0)
        return false;
    if (rds_test_cmd(c, &get, "GET", key, NULL) != 0)
        return false;
    RUN_UNTIL(fx.loop, get.calls == 1, 2000);
    return set.calls == 1 && set.status == 0 && get.status == 0 && strcmp(get.str, val) == 0;
}

static void test_commands_through_sentinel(void **state)
{
    char url[512];
    /* A dead Sentinel first: the next one is asked. */
    int dead = rt_tp_free_port();
    char extra[64];
    snprintf(extra, sizeof(extra), "&addr=127.0.0.1:%d", fx.sentinel.srv.port);
    snprintf(url, sizeof(url),
             "redis+sentinel://:" MASTER_PW "@127.0.0.1:%d/2?sentinel_master_name=" MASTER_NAME
             "&sentinel_password=" SENTINEL_PW "&connect_timeout=300ms&io_timeout=1s%s",
             dead, extra);
    rds_test_state_t st;
    rds_client_t *c = new_client(url, &st);
    RUN_UNTIL(fx.loop, st.ups == 1, 5000);
    assert_int_equal(st.ups, 1);
    assert_true(set_get(c, "sentinel:k", "v1"));
    /* It is the master, db 2. */
    const char *get[] = {"GET", "sentinel:k"};
    char out[64];
    assert_true(rt_redis_cmd(&fx.master, out, sizeof(out), 2, get) >= 0);
    assert_string_not_equal(out, "v1"); /* rt_redis_cmd uses db 0 */
    rds_test_res_t role;
    assert_int_equal(rds_test_cmd(c, &role, "ROLE", NULL), 0);
    RUN_UNTIL(fx.loop, role.calls == 1, 2000);
    assert_int_equal(role.type, REDIS_REPLY_ARRAY);
    rds_test_res_t db;
    assert_int_equal(rds_test_cmd(c, &db, "CLIENT", "INFO", NULL), 0);
    RUN_UNTIL(fx.loop, db.calls == 1, 2000);
    assert_non_null(strstr(db.str, " db=2 "));
    char port[32];
    snprintf(port, sizeof(port), "laddr=127.0.0.1:%d ", fx.master.port);
    assert_non_null(strstr(db.str, port));
    rds_client_free(c);
}

static void test_bad_credentials_or_name_never_up(void **state)
{
    int sp = fx.sentinel.srv.port;
    char urls[3][512];
    /* wrong Sentinel password */
    snprintf(urls[0], sizeof(urls[0]),
             "redis+sentinel://:" MASTER_PW "@127.0.0.1:%d?sentinel_master_name=" MASTER_NAME
             "&sentinel_password=nope&connect_timeout=300ms&io_timeout=1s",
             sp);
    /* unknown master name: the Sentinel answers nil */
    snprintf(urls[1], sizeof(urls[1]),
             "redis+sentinel://:" MASTER_PW "@127.0.0.1:%d?sentinel_master_name=other"
             "&sentinel_password=" SENTINEL_PW "&connect_timeout=300ms&io_timeout=1s",
             sp);
    /* wrong master password: the handshake with the master fails */
    snprintf(urls[2], sizeof(urls[2]),
             "redis+sentinel://:bad@127.0.0.1:%d?sentinel_master_name=" MASTER_NAME
             "&sentinel_password=" SENTINEL_PW "&connect_timeout=300ms&io_timeout=1s",
             sp);
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        rds_test_state_t st;
        rds_client_t *c = new_client(urls[i], &st);
        RUN_UNTIL(fx.loop, st.ups > 0, 800);
        assert_int_equal(st.ups, 0);
        rds_test_res_t r;
        assert_int_equal(rds_test_cmd(c, &r, "PING", NULL), RT_ECLOSED);
        rds_client_free(c);
    }
}

/* ---- a fake Sentinel in the test's loop ------------------------------------------------ */

typedef struct fake_conn {
    ev_io io;
    struct fake_sentinel *fs;
    char buf[1024];
    size_t len;
} fake_conn_t;

typedef struct fake_sentinel {
    int fd;
    int port;
    ev_io accept_io;
    int answer_port; /* the "master" it names */
    int asked;
    fake_conn_t *conns[64];
    size_t nconns;
} fake_sentinel_t;

static void fake_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    fake_conn_t *c = (fake_conn_t *)w;
    ssize_t n = recv(w->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
    if (n <= 0) {
        ev_io_stop(loop, w);
        close(w->fd);
        w->fd = -1;
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    char *hit = strstr(c->buf, "get-master-addr-by-name");
    if (hit == NULL)
        return;
    /* The name follows; the request is complete once its trailing CRLF arrived. */
    char *name_end = strstr(hit + 25, "\r\n");
    if (name_end == NULL || strstr(name_end + 2, "\r\n") == NULL)
        return;
    c->fs->asked++;
    char port[16], reply[128];
    int pn = snprintf(port, sizeof(port), "%d", c->fs->answer_port);
    int rn = snprintf(reply, sizeof(reply), "*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n", pn, port);
    (void)!send(w->fd, reply, (size_t)rn, MSG_NOSIGNAL);
    c->len = 0;
}

static void fake_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    fake_sentinel_t *fs = w->data;
    int fd = accept(fs->fd, NULL, NULL);
    if (fd < 0)
        return;
    if (fs->nconns == sizeof(fs->conns) / sizeof(fs->conns[0])) {
        close(fd);
        return;
    }
    fake_conn_t *c = calloc(1, sizeof(*c));
    c->fs = fs;
    ev_io_init(&c->io, fake_on_read, fd, EV_READ);
    ev_io_start(loop, &c->io);
    fs->conns[fs->nconns++] = c;
}

static void fake_start(fake_sentinel_t *fs, int answer_port)
{
    memset(fs, 0, sizeof(*fs));
    fs->answer_port = answer_port;
    fs->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fs->fd >= 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fs->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fs->fd, 16), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fs->fd, (struct sockaddr *)&sa, &sl), 0);
    fs->port = ntohs(sa.sin_port);
    ev_io_init(&fs->accept_io, fake_on_accept, fs->fd, EV_READ);
    fs->accept_io.data = fs;
    ev_io_start(fx.loop, &fs->accept_io);
}

static void fake_stop(fake_sentinel_t *fs)
{
    ev_io_stop(fx.loop, &fs->accept_io);
    close(fs->fd);
    for (size_t i = 0; i < fs->nconns; i++) {
        if (fs->conns[i]->io.fd >= 0) {
            ev_io_stop(fx.loop, &fs->conns[i]->io);
            close(fs->conns[i]->io.fd);
        }
        free(fs->conns[i]);
    }
}

static void fake_url(char *out, size_t n, const fake_sentinel_t *fs)
{
    snprintf(out, n,
             "redis+sentinel://:" MASTER_PW "@127.0.0.1:%d?sentinel_master_name=" MASTER_NAME
             "&connect_timeout=300ms&io_timeout=1s",
             fs->port);
}

/* A Sentinel naming a replica (its view lags a failover) must not get the link up, and
 * every retry asks again. */
static void test_replica_is_refused(void **state)
{
    fake_sentinel_t fs;
    fake_start(&fs, fx.replica.port);
    char url[256];
    fake_url(url, sizeof(url), &fs);
    rds_test_state_t st;
    rds_client_t *c = new_client(url, &st);
    RUN_UNTIL(fx.loop, fs.asked >= 3, 3000);
    assert_true(fs.asked >= 3);
    assert_int_equal(st.ups, 0);
    /* Once it names the master the link comes up. */
    fs.answer_port = fx.master.port;
    RUN_UNTIL(fx.loop, st.ups == 1, 3000);
    assert_int_equal(st.ups, 1);
    assert_true(set_get(c, "fake:k", "v"));
    rds_client_free(c);
    fake_stop(&fs);
}

/* While up, the Sentinels are asked again; a new master drops the link, which follows. */
static void test_recheck_follows_new_master(void **state)
{
    fake_sentinel_t fs;
    fake_start(&fs, fx.master.port);
    char url[256];
    fake_url(url, sizeof(url), &fs);
    rds_test_state_t st;
    rds_client_t *c = new_client(url, &st);
    RUN_UNTIL(fx.loop, st.ups == 1, 3000);
    assert_int_equal(st.ups, 1);
    int asked = fs.asked;
    /* The same answer changes nothing. */
    RUN_UNTIL(fx.loop, fs.asked > asked, RDS_SENTINEL_RECHECK_MS + 2000);
    assert_true(fs.asked > asked);
    RUN_UNTIL(fx.loop, false, 100);
    assert_int_equal(st.downs, 0);
    /* A different one drops the link; the replica is then refused by ROLE. */
    fs.answer_port = fx.replica.port;
    RUN_UNTIL(fx.loop, st.downs == 1, RDS_SENTINEL_RECHECK_MS + 2000);
    assert_int_equal(st.downs, 1);
    RUN_UNTIL(fx.loop, false, 300);
    assert_false(rds_client_ready(c));
    fs.answer_port = fx.master.port;
    RUN_UNTIL(fx.loop, st.ups == 2, 3000);
    assert_int_equal(st.ups, 2);
    assert_false(st.bad_transition);
    rds_client_free(c);
    fake_stop(&fs);
}

/* ---- failover ------------------------------------------------------------------------- */

typedef struct sub_state {
    int ups, downs, msgs;
    char last[64];
} sub_state_t;

static void on_message(void *ud, rt_str_t channel, rt_str_t payload)
{
    sub_state_t *s = ud;
    s->msgs++;
    snprintf(s->last, sizeof(s->last), RT_STR_FMT, RT_STR_ARG(payload));
}

static void on_sub_state(void *ud, bool up)
{
    sub_state_t *s = ud;
    if (up)
        s->ups++;
    else
        s->downs++;
}

static void test_failover(void **state)
{
    char url[512];
    sentinel_url(url, sizeof(url), NULL);
    rds_test_state_t st;
    rds_client_t *c = new_client(url, &st);
    rds_addr_t a;
    rds_test_addr(&a, "%s", url);
    sub_state_t ss = {0};
    rds_pubsub_handler_t h = {on_message, on_sub_state, &ss};
    rds_pubsub_t *p = rds_pubsub_new(fx.loop, &a, &h, 1000);
    rds_addr_cleanup(&a);
    assert_int_equal(rds_pubsub_subscribe(p, rt_str_c("fo:ch")), RT_ECLOSED);
    RUN_UNTIL(fx.loop, st.ups == 1 && ss.ups == 1, 5000);
    assert_int_equal(st.ups, 1);
    assert_int_equal(ss.ups, 1);
    assert_true(set_get(c, "fo:before", "1"));
    rds_test_res_t pub;
    assert_int_equal(rds_test_cmd(c, &pub, "PUBLISH", "fo:ch", "m1", NULL), 0);
    RUN_UNTIL(fx.loop, ss.msgs == 1, 2000);
    assert_int_equal(ss.msgs, 1);

    int64_t t0 = rt_mono_ms();
    rt_redis_kill(&fx.master);
    RUN_UNTIL(fx.loop, st.downs == 1 && ss.downs == 1, 3000);
    assert_int_equal(st.downs, 1);
    assert_int_equal(ss.downs, 1);

    /* Bounded: the Sentinel notices after 1 s and promotes the replica. */
    RUN_UNTIL(fx.loop, st.ups == 2 && ss.ups == 2, 12000);
    assert_int_equal(st.ups, 2);
    assert_int_equal(ss.ups, 2);
    print_message("failover followed in %lld ms\n", (long long)(rt_mono_ms() - t0));
    assert_true(set_get(c, "fo:after", "2"));
    /* The write went to the promoted replica. */
    char out[64];
    const char *get[] = {"GET", "fo:after"};
    assert_true(rt_redis_cmd(&fx.replica, out, sizeof(out), 2, get) >= 0);
    assert_string_equal(out, "2");
    /* PUB/SUB resubscribed on the new master. */
    assert_int_equal(rds_test_cmd(c, &pub, "PUBLISH", "fo:ch", "m2", NULL), 0);
    RUN_UNTIL(fx.loop, ss.msgs == 2, 2000);
    assert_int_equal(ss.msgs, 2);
    assert_string_equal(ss.last, "m2");
    assert_false(st.bad_transition);
    rds_pubsub_free(p);
    rds_client_free(c);
}

int run_rds_sentinel(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands_through_sentinel),
        cmocka_unit_test(test_bad_credentials_or_name_never_up),
        cmocka_unit_test(test_replica_is_refused),
        cmocka_unit_test(test_recheck_follows_new_master),
        /* Last: it kills the master. */
        cmocka_unit_test(test_failover),
    };
    return cmocka_run_group_tests_name("rds_sentinel", tests, group_setup, group_teardown);
}

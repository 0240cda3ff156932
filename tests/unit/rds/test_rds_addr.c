#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/rds.h"
#include "broker/rds_internal.h"
#include "node/base/alloc.h"
#include "node/base/err.h"

typedef struct valid_case {
    const char *url;
    const char *host;
    int port;
    const char *unix_path;
    const char *user;
    const char *password;
    int db;
    int64_t connect_ms;
    int64_t io_ms;
    const char *name;
} valid_case_t;

static const valid_case_t valid[] = {
    {"localhost:6379", "localhost", 6379, "", "", "", 0, 1000, 4000, "localhost:6379"},
    {"127.0.0.1", "127.0.0.1", 6379, "", "", "", 0, 1000, 4000, "127.0.0.1:6379"},
    {"10.0.0.5:7000", "10.0.0.5", 7000, "", "", "", 0, 1000, 4000, "10.0.0.5:7000"},
    {"[::1]:7001", "::1", 7001, "", "", "", 0, 1000, 4000, "[::1]:7001"},
    {"redis://localhost", "localhost", 6379, "", "", "", 0, 1000, 4000, "localhost:6379"},
    {"REDIS://h:1", "h", 1, "", "", "", 0, 1000, 4000, "h:1"},
    {"redis://h:1234/3", "h", 1234, "", "", "", 3, 1000, 4000, "h:1234"},
    {"redis://h:1234/", "h", 1234, "", "", "", 0, 1000, 4000, "h:1234"},
    {"redis://[::1]:6390/2", "::1", 6390, "", "", "", 2, 1000, 4000, "[::1]:6390"},
    {"redis://user:p%40ss@h:1/2?connect_timeout=250ms&io_timeout=2s", "h", 1, "", "user", "p@ss", 2,
     250, 2000, "h:1"},
    {"redis://:secret@h", "h", 6379, "", "", "secret", 0, 1000, 4000, "h:6379"},
    {"redis://u@h", "h", 6379, "", "u", "", 0, 1000, 4000, "h:6379"},
    {"redis://u:a:b@c@h:2", "h", 2, "", "u", "a:b@c", 0, 1000, 4000, "h:2"},
    {"tcp://h:6380?db=5", "h", 6380, "", "", "", 5, 1000, 4000, "h:6380"},
    {"redis://h?io_timeout=1m30s&force_resp2=true&tls_enabled=false", "h", 6379, "", "", "", 0,
     1000, 90000, "h:6379"},
    {"redis://h:1/1?db=4", "h", 1, "", "", "", 4, 1000, 4000, "h:1"},
    {"unix:///tmp/redis.sock", "", 6379, "/tmp/redis.sock", "", "", 0, 1000, 4000,
     "/tmp/redis.sock"},
    {"unix://u:pw@/var/run/r.sock?db=1&connect_timeout=3s", "", 6379, "/var/run/r.sock", "u", "pw",
     1, 3000, 4000, "/var/run/r.sock"},
    {"unix://:pw@/r%20s.sock", "", 6379, "/r s.sock", "", "pw", 0, 1000, 4000, "/r s.sock"},
};

typedef struct invalid_case {
    const char *url;
    const char *msg; /* expected substring of the error */
} invalid_case_t;

static const invalid_case_t invalid[] = {
    {"", "empty"},
    {"redis://h?tls_enabled=yes", "bad tls_enabled \"yes\""},
    {"rediss://h?tls_enabled=", "bad tls_enabled"},
    {"rediss+sentinel://h:1?sentinel_master_name=m&sentinel_tls_enabled=2", "sentinel_tls_enabled"},
    {"unix:///s?tls_enabled=true", "not supported over unix://"},
    {"rediss+cluster://h:1/2", "only db 0"},
    {"rediss+sentinel://h:1", "needs sentinel_master_name"},
    {"rediss://", "host"},
    {"redis+cluster://h:1/2?addr=h2:2", "only db 0"},
    {"redis+cluster://h:1?addr=h2:2&db=1", "only db 0"},
    {"redis+cluster://h:1?addr=h2:0", "port"},
    {"redis+cluster://h:1?addr=", "host"},
    {"redis+cluster://h:1?addr=%zz", "percent"},
    {"redis+cluster://h:1?sentinel_master_name=m", "only for redis+sentinel://"},
    {"redis+cluster://", "host"},
    {"redis+sentinel://h:26379", "needs sentinel_master_name"},
    {"redis+sentinel://h:26379?sentinel_master_name=", "needs sentinel_master_name"},
    {"redis+sentinel://h:26379?sentinel_master_name=m&addr=x:y", "port"},
    {"redis+sentinel://h:26379?sentinel_master_name=m&sentinel_password=%", "percent"},
    {"redis://h?sentinel_master_name=m", "only for redis+sentinel://"},
    {"redis://h?sentinel_user=u", "only for redis+sentinel://"},
    {"unix:///s?addr=h:1", "only for redis+cluster:// and redis+sentinel://"},
    {"http://h:1", "unknown scheme"},
    {"h:0", "port"},
    {"h:65536", "port"},
    {"h:abc", "port"},
    {"h:", "port"},
    {":6379", "host"},
    {"redis://", "host"},
    {"redis://:pw@:1", "host"},
    {"redis://h:1/x", "db"},
    {"redis://h:1/-1", "db"},
    {"redis://h:1/99999999999", "db"},
    {"redis://h?db=", "db"},
    {"redis://h?io_timeout=abc", "io_timeout"},
    {"redis://h?io_timeout=0", "io_timeout"},
    {"redis://h?connect_timeout=-1s", "connect_timeout"},
    {"redis://h?bogus=1", "unsupported option"},
    {"redis://h?addr=h2:1", "only for redis+cluster://"},
    {"unix://relative.sock", "absolute"},
    {"unix://", "absolute"},
    {"::1:6379", "brackets"},
    {"[::1", "unterminated"},
    {"[::1]x", "junk"},
    {"redis://p%zz@h", "percent"},
    {"redis://u:p%00@h", "percent"},
    {"h/0", "neither"},
    {"u@h:1", "neither"},
    {"redis://h h:1", "host"},
};

typedef struct mode_case {
    const char *url;
    rds_mode_t mode;
    const char *seeds[4]; /* NULL-terminated */
    const char *master, *sentinel_user, *sentinel_password;
    const char *user, *password;
    int db;
    int64_t connect_ms;
} mode_case_t;

static const mode_case_t modes[] = {
    {"redis+cluster://h1:7000?addr=h2:7001&addr=%5B::1%5D:7002",
     RDS_MODE_CLUSTER,
     {"h1:7000", "h2:7001", "[::1]:7002"},
     "",
     "",
     "",
     "",
     "",
     0,
     1000},
    {"REDIS+CLUSTER://u:pw@[::1]:7000/0?connect_timeout=2s",
     RDS_MODE_CLUSTER,
     {"[::1]:7000"},
     "",
     "",
     "",
     "u",
     "pw",
     0,
     2000},
    {"redis+cluster://h1?addr=h2",
     RDS_MODE_CLUSTER,
     {"h1:6379", "h2:6379"},
     "",
     "",
     "",
     "",
     "",
     0,
     1000},
    {"redis+sentinel://s1:26379?sentinel_master_name=mymaster&addr=s2:26380&addr=s3:26381",
     RDS_MODE_SENTINEL,
     {"s1:26379", "s2:26380", "s3:26381"},
     "mymaster",
     "",
     "",
     "",
     "",
     0,
     1000},
    {"redis+sentinel://mu:m%40p@s1:26379/3?sentinel_master_name=m%20x&sentinel_user=su&"
     "sentinel_password=sp&sentinel_tls_enabled=false&replica_client_enabled=true",
     RDS_MODE_SENTINEL,
     {"s1:26379"},
     "m x",
     "su",
     "sp",
     "mu",
     "m@p",
     3,
     1000},
    {"redis+sentinel://s1?db=2&sentinel_master_name=m",
     RDS_MODE_SENTINEL,
     {"s1:6379"},
     "m",
     "",
     "",
     "",
     "",
     2,
     1000},
    {"redis://h:1", RDS_MODE_STANDALONE, {NULL}, "", "", "", "", "", 0, 1000},
};

static void check_mode(const mode_case_t *m)
{
    rds_addr_t a;
    rt_buf_t err = RT_BUF_INIT;
    int rc = rds_addr_parse(m->url, &a, &err);
    if (rc != 0)
        print_error("%s: %.*s\n", m->url, (int)err.len, (const char *)err.p);
    assert_int_equal(rc, 0);
    assert_int_equal(a.mode, m->mode);
    size_t n = 0;
    while (n < 4 && m->seeds[n] != NULL)
        n++;
    assert_int_equal(a.nseeds, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(a.seeds[i], m->seeds[i]);
    if (n == 0)
        assert_null(a.seeds);
    assert_string_equal(a.sentinel_master, m->master);
    assert_string_equal(a.sentinel_user, m->sentinel_user);
    assert_string_equal(a.sentinel_password, m->sentinel_password);
    assert_string_equal(a.user, m->user);
    assert_string_equal(a.password, m->password);
    assert_int_equal(a.db, m->db);
    assert_int_equal(a.connect_timeout_ms, m->connect_ms);
    if (n > 0) {
        /* host/port are the first seed. */
        char *host;
        int port;
        assert_int_equal(rds_addr_seed_split(a.seeds[0], &host, &port), 0);
        assert_string_equal(host, a.host);
        assert_int_equal(port, a.port);
        rt_free(host);
    }

    rds_addr_t c;
    rds__addr_copy(&c, &a);
    assert_int_equal(c.mode, a.mode);
    assert_int_equal(c.nseeds, a.nseeds);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(c.seeds[i], a.seeds[i]);
        assert_ptr_not_equal(c.seeds[i], a.seeds[i]);
    }
    assert_string_equal(c.sentinel_master, a.sentinel_master);
    assert_ptr_not_equal(c.sentinel_master, a.sentinel_master);
    assert_string_equal(c.sentinel_password, a.sentinel_password);

    rds_addr_t d;
    rds_addr_derive(&d, &a, "10.1.2.3", 6390);
    assert_int_equal(d.mode, RDS_MODE_STANDALONE);
    assert_int_equal(d.nseeds, 0);
    assert_null(d.seeds);
    assert_string_equal(d.host, "10.1.2.3");
    assert_int_equal(d.port, 6390);
    assert_string_equal(d.user, m->user);
    assert_string_equal(d.password, m->password);
    assert_int_equal(d.db, m->db);
    assert_string_equal(rds_addr_name(&d), "10.1.2.3:6390");

    rds_addr_cleanup(&d);
    rds_addr_cleanup(&c);
    rds_addr_cleanup(&a);
    rds_addr_cleanup(&a);
    rt_buf_cleanup(&err);
}

static void test_modes(void **state)
{
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        check_mode(&modes[i]);
}

static void test_seed_split(void **state)
{
    char *host;
    int port;
    assert_int_equal(rds_addr_seed_split("[::1]:7000", &host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7000);
    rt_free(host);
    assert_int_equal(rds_addr_seed_split("h", &host, &port), 0);
    assert_string_equal(host, "h");
    assert_int_equal(port, 6379);
    rt_free(host);
    assert_int_equal(rds_addr_seed_split("h:x", &host, &port), RT_EINVAL);
    assert_null(host);
    assert_int_equal(rds_addr_seed_split("", &host, &port), RT_EINVAL);
    assert_null(host);
}

static void test_from_seeds(void **state)
{
    rds_addr_t a;
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(
        rds_addr_from_seeds("h1:7000, h2:7001 ,[::1]:7002", RDS_MODE_CLUSTER, &a, &err), 0);
    assert_int_equal(a.mode, RDS_MODE_CLUSTER);
    assert_int_equal(a.nseeds, 3);
    assert_string_equal(a.seeds[0], "h1:7000");
    assert_string_equal(a.seeds[1], "h2:7001");
    assert_string_equal(a.seeds[2], "[::1]:7002");
    assert_string_equal(a.host, "h1");
    assert_int_equal(a.port, 7000);
    assert_int_equal(a.connect_timeout_ms, 1000);
    assert_string_equal(a.sentinel_master, "");
    rds_addr_cleanup(&a);

    assert_int_equal(rds_addr_from_seeds("s1:26379", RDS_MODE_SENTINEL, &a, &err), 0);
    assert_int_equal(a.mode, RDS_MODE_SENTINEL);
    assert_int_equal(a.nseeds, 1);
    assert_string_equal(a.host, "s1");
    assert_int_equal(a.port, 26379);
    rds_addr_cleanup(&a);

    static const char *const bad[] = {"",    "h1",    "h1:1,", ",h1:1",       "h1:1,,h2:2",
                                      "h:x", "[::1]", "::1:5", "redis://h:1", "h:1,h2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.len = 0;
        if (rds_addr_from_seeds(bad[i], RDS_MODE_SENTINEL, &a, &err) != RT_EINVAL)
            print_error("accepted seeds \"%s\"\n", bad[i]);
        assert_true(err.len > 0);
        assert_int_equal(a.nseeds, 0);
        assert_null(a.seeds);
        assert_string_equal(a.host, "");
        rds_addr_cleanup(&a);
    }
    err.len = 0;
    assert_int_equal(rds_addr_from_seeds("h1", RDS_MODE_CLUSTER, &a, &err), RT_EINVAL);
    rt_buf_append_byte(&err, 0);
    assert_non_null(strstr((const char *)err.p, "malformed Redis Cluster address"));
    rds_addr_cleanup(&a);
    rt_buf_cleanup(&err);
}

static void check_valid(const valid_case_t *v)
{
    rds_addr_t a;
    rt_buf_t err = RT_BUF_INIT;
    int rc = rds_addr_parse(v->url, &a, &err);
    if (rc != 0)
        print_error("%s: %.*s\n", v->url, (int)err.len, (const char *)err.p);
    assert_int_equal(rc, 0);
    assert_int_equal(err.len, 0);
    assert_string_equal(a.host, v->host);
    assert_int_equal(a.port, v->port);
    assert_string_equal(a.unix_path, v->unix_path);
    assert_string_equal(a.user, v->user);
    assert_string_equal(a.password, v->password);
    assert_int_equal(a.db, v->db);
    assert_int_equal(a.connect_timeout_ms, v->connect_ms);
    assert_int_equal(a.io_timeout_ms, v->io_ms);
    assert_int_equal(a.mode, RDS_MODE_STANDALONE);
    assert_int_equal(a.nseeds, 0);
    assert_string_equal(rds_addr_name(&a), v->name);
    rds_addr_cleanup(&a);
    rds_addr_cleanup(&a); /* idempotent */
    rt_buf_cleanup(&err);
}

static void test_valid(void **state)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        check_valid(&valid[i]);
}

static void test_invalid(void **state)
{
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        rds_addr_t a;
        rt_buf_t err = RT_BUF_INIT;
        int rc = rds_addr_parse(invalid[i].url, &a, &err);
        if (rc != RT_EINVAL)
            print_error("accepted: %s\n", invalid[i].url);
        assert_int_equal(rc, RT_EINVAL);
        rt_buf_append_byte(&err, 0);
        if (strstr((const char *)err.p, invalid[i].msg) == NULL)
            print_error("%s: message \"%s\" lacks \"%s\"\n", invalid[i].url, (const char *)err.p,
                        invalid[i].msg);
        assert_non_null(strstr((const char *)err.p, invalid[i].msg));
        /* *out is initialised on failure too. */
        assert_string_equal(a.host, "");
        assert_string_equal(a.password, "");
        assert_int_equal(a.port, 6379);
        rds_addr_cleanup(&a);
        rt_buf_cleanup(&err);
    }
}

typedef struct tls_case {
    const char *url;
    rds_mode_t mode;
    const char *host;
    int port;
    bool tls;
    bool sentinel_tls;
    size_t nseeds;
} tls_case_t;

static const tls_case_t tls_cases[] = {
    {"rediss://h:6380", RDS_MODE_STANDALONE, "h", 6380, true, false, 0},
    {"REDISS://u:p@h/2", RDS_MODE_STANDALONE, "h", 6379, true, false, 0},
    {"rediss://h?tls_enabled=false", RDS_MODE_STANDALONE, "h", 6379, false, false, 0},
    {"redis://h:1?tls_enabled=true", RDS_MODE_STANDALONE, "h", 1, true, false, 0},
    {"redis://h:1?tls_enabled=1", RDS_MODE_STANDALONE, "h", 1, true, false, 0},
    {"tcp://h:1?tls_enabled=T", RDS_MODE_STANDALONE, "h", 1, true, false, 0},
    {"h:1", RDS_MODE_STANDALONE, "h", 1, false, false, 0},
    {"redis://[::1]:7?tls_enabled=True", RDS_MODE_STANDALONE, "::1", 7, true, false, 0},
    {"rediss+cluster://h1:7000?addr=h2:7001", RDS_MODE_CLUSTER, "h1", 7000, true, false, 2},
    {"redis+cluster://h1:7000?tls_enabled=true", RDS_MODE_CLUSTER, "h1", 7000, true, false, 1},
    {"rediss+sentinel://s:26379?sentinel_master_name=m", RDS_MODE_SENTINEL, "s", 26379, true, false,
     1},
    {"rediss+sentinel://s:26379?sentinel_master_name=m&sentinel_tls_enabled=true&addr=s2:1",
     RDS_MODE_SENTINEL, "s", 26379, true, true, 2},
    {"redis+sentinel://s:26379?sentinel_master_name=m&sentinel_tls_enabled=true", RDS_MODE_SENTINEL,
     "s", 26379, false, true, 1},
    {"redis://h?sentinel_tls_enabled=false", RDS_MODE_STANDALONE, "h", 6379, false, false, 0},
};

static void assert_tls_defaults(const rds_tls_t *t)
{
    assert_false(t->insecure_skip_verify);
    const char *fields[] = {t->server_name, t->ca_pem,  t->ca_file, t->cert_pem,
                            t->cert_file,   t->key_pem, t->key_file};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        assert_string_equal(fields[i], "");
}

static void test_tls_schemes(void **state)
{
    for (size_t i = 0; i < sizeof(tls_cases) / sizeof(tls_cases[0]); i++) {
        const tls_case_t *c = &tls_cases[i];
        rds_addr_t a;
        rt_buf_t err = RT_BUF_INIT;
        int rc = rds_addr_parse(c->url, &a, &err);
        if (rc != 0)
            print_error("%s: %.*s\n", c->url, (int)err.len, (const char *)err.p);
        assert_int_equal(rc, 0);
        if (a.tls.enabled != c->tls || a.sentinel_tls.enabled != c->sentinel_tls)
            print_error("%s: tls %d sentinel_tls %d\n", c->url, a.tls.enabled,
                        a.sentinel_tls.enabled);
        assert_int_equal(a.mode, c->mode);
        assert_string_equal(a.host, c->host);
        assert_int_equal(a.port, c->port);
        assert_int_equal(a.tls.enabled, c->tls);
        assert_int_equal(a.sentinel_tls.enabled, c->sentinel_tls);
        assert_int_equal(a.nseeds, c->nseeds);
        assert_tls_defaults(&a.tls);
        assert_tls_defaults(&a.sentinel_tls);
        rds_addr_cleanup(&a);
        rt_buf_cleanup(&err);
    }
}

static void set_field(char **field, const char *v)
{
    rt_free(*field);
    *field = rt_strdup(v);
}

/* Cluster nodes and Sentinel-named masters are derived: they must keep TLS. */
static void test_tls_derive_and_copy(void **state)
{
    rds_addr_t a;
    assert_int_equal(rds_addr_parse("rediss+sentinel://s:1?sentinel_master_name=m&"
                                    "sentinel_tls_enabled=true",
                                    &a, NULL),
                     0);
    a.tls.insecure_skip_verify = true;
    set_field(&a.tls.server_name, "redis.internal");
    set_field(&a.tls.ca_pem, "CA");
    set_field(&a.tls.ca_file, "/ca");
    set_field(&a.tls.cert_pem, "CERT");
    set_field(&a.tls.cert_file, "/cert");
    set_field(&a.tls.key_pem, "KEY");
    set_field(&a.tls.key_file, "/key");
    set_field(&a.sentinel_tls.ca_pem, "SCA");

    rds_addr_t d;
    rds_addr_derive(&d, &a, "10.0.0.9", 6390);
    assert_int_equal(d.mode, RDS_MODE_STANDALONE);
    assert_true(d.tls.enabled);
    assert_true(d.tls.insecure_skip_verify);
    assert_string_equal(d.tls.server_name, "redis.internal");
    assert_string_equal(d.tls.ca_pem, "CA");
    assert_string_equal(d.tls.ca_file, "/ca");
    assert_string_equal(d.tls.cert_pem, "CERT");
    assert_string_equal(d.tls.cert_file, "/cert");
    assert_string_equal(d.tls.key_pem, "KEY");
    assert_string_equal(d.tls.key_file, "/key");
    assert_true(d.sentinel_tls.enabled);
    assert_string_equal(d.sentinel_tls.ca_pem, "SCA");
    /* Deep copies: the original can go first. */
    assert_ptr_not_equal(d.tls.ca_pem, a.tls.ca_pem);
    rds_addr_cleanup(&a);

    rds_addr_t c;
    rds__addr_copy(&c, &d);
    rds_addr_cleanup(&d);
    assert_true(c.tls.enabled);
    assert_string_equal(c.tls.key_pem, "KEY");
    assert_string_equal(c.sentinel_tls.ca_pem, "SCA");
    rds_addr_cleanup(&c);
    rds_addr_cleanup(&c); /* idempotent */

    rds_tls_t t;
    rds_tls_init(&t);
    assert_false(t.enabled);
    assert_tls_defaults(&t);
    rds_tls_cleanup(&t);
    rds_tls_cleanup(&t);
}

/* Every prefix of every URL, valid or not, parses or fails cleanly (ASan: no overreads). */
static void test_prefixes(void **state)
{
    const char *all[sizeof(valid) / sizeof(valid[0]) + sizeof(invalid) / sizeof(invalid[0]) +
                    sizeof(modes) / sizeof(modes[0]) + sizeof(tls_cases) / sizeof(tls_cases[0])];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(tls_cases) / sizeof(tls_cases[0]); i++)
        all[n++] = tls_cases[i].url;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        all[n++] = modes[i].url;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        all[n++] = valid[i].url;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        all[n++] = invalid[i].url;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(all[i]);
        for (size_t k = 0; k <= len; k++) {
            char buf[256];
            memcpy(buf, all[i], k);
            buf[k] = '\0';
            rds_addr_t a;
            int rc = rds_addr_parse(buf, &a, NULL);
            assert_true(rc == 0 || rc == RT_EINVAL);
            rds_addr_cleanup(&a);
        }
    }
}

int run_rds_addr(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),       cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_prefixes),    cmocka_unit_test(test_modes),
        cmocka_unit_test(test_seed_split),  cmocka_unit_test(test_from_seeds),
        cmocka_unit_test(test_tls_schemes), cmocka_unit_test(test_tls_derive_and_copy),
    };
    return cmocka_run_group_tests_name("rds_addr", tests, NULL, NULL);
}

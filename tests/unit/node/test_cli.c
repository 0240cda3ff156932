#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/base/log.h"
#include "node/cli.h"
#include "node/config.h"
#include "node/jwt.h"

static char *const no_env[] = {NULL};

typedef struct run {
    int rc;
    bool serve;
    char *out; /* owned (open_memstream) */
    char *err; /* owned */
} run_t;

/* Runs the CLI in-process with argv (NULL-terminated) and captures both streams. */
static run_t cli_exec(char *const *envp, node_config_t *cfg, char **argv)
{
    run_t r = {0};
    size_t on = 0, en = 0;
    FILE *out = open_memstream(&r.out, &on);
    FILE *err = open_memstream(&r.err, &en);
    assert_non_null(out);
    assert_non_null(err);
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    node_config_t local;
    r.rc = node_cli_run(argc, argv, envp ? envp : no_env, out, err, &r.serve, cfg ? cfg : &local);
    fclose(out);
    fclose(err);
    if (cfg == NULL && r.serve)
        node_config_cleanup(&local);
    return r;
}

static void run_free(run_t *r)
{
    free(r->out);
    free(r->err);
}

#define RUN(envp, cfg, ...) cli_exec(envp, cfg, (char *[]){"rotor", __VA_ARGS__, NULL})

typedef struct fixture {
    char dir[64];
    char config[128]; /* a valid config with an HMAC key */
    char nokey[128];  /* valid config without token keys */
    char bad[128];    /* invalid config */
    char generated[128];
} fixture_t;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    rt_log_set_level(RT_LOG_ERROR);
    fixture_t *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/rotor_cli_XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->config, sizeof(fx->config), "%s/config.json", fx->dir);
    snprintf(fx->nokey, sizeof(fx->nokey), "%s/nokey.json", fx->dir);
    snprintf(fx->bad, sizeof(fx->bad), "%s/bad.json", fx->dir);
    snprintf(fx->generated, sizeof(fx->generated), "%s/gen.json", fx->dir);
    write_file(fx->config,
               "{\"client\":{\"token\":{\"hmac_secret_key\":\"secret\"},"
               "\"subscription_token\":{\"enabled\":true,\"hmac_secret_key\":\"subsecret\"}},"
               "\"http_server\":{\"port\":8100}}");
    write_file(fx->nokey, "{}");
    write_file(fx->bad, "{\"client\":{\"ping_interval\":\"5s\",\"pong_timeout\":\"6s\"}}");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    unlink(fx->config);
    unlink(fx->nokey);
    unlink(fx->bad);
    unlink(fx->generated);
    rmdir(fx->dir);
    free(fx);
    rt_log_set_level(RT_LOG_INFO);
    return 0;
}

static void test_version_and_help(void **state)
{
    run_t r = RUN(NULL, NULL, "version");
    assert_int_equal(r.rc, 0);
    assert_false(r.serve);
    assert_string_equal(r.out, "rotor " RT_VERSION "\n");
    run_free(&r);

    r = RUN(NULL, NULL, "--help");
    assert_int_equal(r.rc, 0);
    assert_false(r.serve);
    assert_non_null(strstr(r.out, "Usage: rotor"));
    assert_non_null(strstr(r.out, "gensubtoken"));
    run_free(&r);

    r = RUN(NULL, NULL, "checkconfig", "-h");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "Usage: rotor"));
    run_free(&r);

    r = RUN(NULL, NULL, "frobnicate");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "frobnicate"));
    run_free(&r);

    r = RUN(NULL, NULL, "--nope");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "--nope"));
    run_free(&r);

    r = RUN(NULL, NULL, "-p");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "needs a value"));
    run_free(&r);

    r = RUN(NULL, NULL, "version", "extra");
    assert_int_equal(r.rc, 2);
    run_free(&r);
}

static void test_serve_flags(void **state)
{
    fixture_t *fx = *state;
    char *env[] = {"CENTRIFUGO_HTTP_SERVER_PORT=9000", "CENTRIFUGO_LOG_LEVEL=warn",
                   "ROTOR_HTTP_SERVER_ADDRESS=10.0.0.1", NULL};
    node_config_t cfg;
    run_t r = RUN(env, &cfg, "-c", fx->config, "-p", "9200", "--client.insecure",
                  "--log.level=debug", "--workers", "3", "--prometheus.enabled=true",
                  "--health.enabled", "--http_api.insecure=false", "--engine.type", "memory");
    assert_int_equal(r.rc, 0);
    assert_true(r.serve);
    assert_int_equal(cfg.http_port, 9200);
    assert_string_equal(cfg.http_address, "10.0.0.1");
    assert_true(cfg.client_insecure);
    assert_int_equal(cfg.log_level, RT_LOG_DEBUG);
    assert_int_equal(cfg.workers, 3);
    assert_true(cfg.prometheus_enabled);
    assert_true(cfg.health_enabled);
    assert_false(cfg.http_api_insecure);
    assert_string_equal(cfg.token.hmac_secret_key, "secret");
    node_config_cleanup(&cfg);
    run_free(&r);

    /* "serve" spelled out, short -a and --flag=value forms; env wins over the file. */
    r = RUN(env, &cfg, "serve", "--config=", "-a=127.0.0.1");
    assert_int_equal(r.rc, 1); /* empty path: no such file */
    assert_false(r.serve);
    run_free(&r);

    r = RUN(env, &cfg, "serve", "--config", fx->config, "-a=127.0.0.1");
    assert_int_equal(r.rc, 0);
    assert_true(r.serve);
    assert_int_equal(cfg.http_port, 9000);
    assert_string_equal(cfg.http_address, "127.0.0.1");
    node_config_cleanup(&cfg);
    run_free(&r);

    r = RUN(env, &cfg, "-c", fx->config, "--http_server.port=abc");
    assert_int_equal(r.rc, 1);
    assert_false(r.serve);
    assert_non_null(strstr(r.err, "http_server.port"));
    run_free(&r);

    r = RUN(env, &cfg, "-c", fx->bad);
    assert_int_equal(r.rc, 1);
    assert_false(r.serve);
    assert_non_null(strstr(r.err, "client.ping_interval"));
    run_free(&r);

    r = RUN(NULL, &cfg, "-c", fx->config, "-u", "42");
    assert_int_equal(r.rc, 2);
    run_free(&r);
}

static void test_genconfig_checkconfig(void **state)
{
    fixture_t *fx = *state;
    run_t r = RUN(NULL, NULL, "genconfig", "-c", fx->generated);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, fx->generated));
    struct stat st;
    assert_int_equal(stat(fx->generated, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    run_free(&r);

    r = RUN(NULL, NULL, "genconfig", "-c", fx->generated);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "already exists"));
    run_free(&r);

    r = RUN(NULL, NULL, "checkconfig", "-c", fx->generated);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "valid"));
    run_free(&r);

    r = RUN(NULL, NULL, "checkconfig", "--config", fx->bad);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "client.ping_interval: must be greater"));
    run_free(&r);

    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.json", fx->dir);
    r = RUN(NULL, NULL, "checkconfig", "-c", missing);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "missing.json"));
    run_free(&r);

    /* Flags and env take part in checkconfig too. */
    char *env[] = {"CENTRIFUGO_CLIENT_PONG_TIMEOUT=1s", NULL};
    r = RUN(env, NULL, "checkconfig", "-c", fx->bad);
    assert_int_equal(r.rc, 0);
    run_free(&r);

    char *warn_env[] = {"CENTRIFUGO_UNKNOWN_THING=1", NULL};
    r = RUN(warn_env, NULL, "checkconfig", "-c", fx->generated);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "1 warning"));
    run_free(&r);

    /* Without -c, genconfig and checkconfig use config.json in the working directory. */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(fx->dir), 0);
    r = RUN(NULL, NULL, "genconfig");
    assert_int_equal(r.rc, 1); /* the fixture's config.json exists */
    run_free(&r);
    r = RUN(NULL, NULL, "checkconfig");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "config.json: valid"));
    run_free(&r);
    assert_int_equal(chdir(cwd), 0);
}

static void test_defaultenv(void **state)
{
    run_t r = RUN(NULL, NULL, "defaultenv");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "CENTRIFUGO_HTTP_SERVER_PORT=8000\n"));
    assert_non_null(strstr(r.out, "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY=\n"));
    run_free(&r);
}

static char *last_line(const char *s)
{
    const char *end = s + strlen(s);
    while (end > s && end[-1] == '\n')
        end--;
    const char *start = end;
    while (start > s && start[-1] != '\n')
        start--;
    return strndup(start, (size_t)(end - start));
}

static void test_tokens(void **state)
{
    fixture_t *fx = *state;
    run_t r = RUN(NULL, NULL, "gentoken", "-u", "42", "-t", "3600", "-c", fx->config);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "user \"42\""));
    assert_non_null(strstr(r.out, "3600s"));
    char *token = last_line(r.out);
    assert_int_equal(strncmp(token, "eyJ", 3), 0);
    run_free(&r);

    r = RUN(NULL, NULL, "checktoken", token, "-c", fx->config);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "valid connection token for user \"42\""));
    assert_non_null(strstr(r.out, "expires at"));
    assert_non_null(strstr(r.out, "claims: {\"sub\":\"42\""));
    run_free(&r);

    /* The subscription key does not verify connection tokens. */
    char *env[] = {"ROTOR_CLIENT_TOKEN_HMAC_SECRET_KEY=other", NULL};
    r = RUN(env, NULL, "checktoken", token, "-c", fx->config);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "invalid token"));
    run_free(&r);
    free(token);

    r = RUN(NULL, NULL, "checktoken", "not.a.token", "-c", fx->config);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "invalid token"));
    run_free(&r);

    r = RUN(NULL, NULL, "checktoken", "-c", fx->config);
    assert_int_equal(r.rc, 2);
    run_free(&r);

    r = RUN(NULL, NULL, "checktoken", "x", "-c", fx->nokey);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "no token key configured"));
    run_free(&r);

    /* Anonymous token without expiration. */
    r = RUN(NULL, NULL, "gentoken", "-t", "0", "-c", fx->config);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "anonymous user"));
    token = last_line(r.out);
    run_free(&r);
    r = RUN(NULL, NULL, "checktoken", token, "-c", fx->config);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "never expires"));
    run_free(&r);
    free(token);

    r = RUN(NULL, NULL, "gentoken", "-u", "42", "-c", fx->nokey);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "client.token.hmac_secret_key is not set"));
    run_free(&r);

    r = RUN(NULL, NULL, "gentoken", "-u", "42", "-t", "-5", "-c", fx->config);
    assert_int_equal(r.rc, 2);
    run_free(&r);

    r = RUN(NULL, NULL, "gentoken", "--user=\xff", "-c", fx->config);
    assert_int_equal(r.rc, 2);
    run_free(&r);

    /* Subscription tokens use client.subscription_token when it is enabled. */
    r = RUN(NULL, NULL, "gensubtoken", "-u", "7", "-s", "chat:x", "--ttl=60", "-c", fx->config);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "channel \"chat:x\""));
    token = last_line(r.out);
    run_free(&r);
    r = RUN(NULL, NULL, "checksubtoken", token, "-c", fx->config);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "subscription token for user \"7\" and channel \"chat:x\""));
    run_free(&r);
    r = RUN(NULL, NULL, "checktoken", token, "-c", fx->config);
    assert_int_equal(r.rc, 1); /* signed with the subscription key; also has a channel */
    run_free(&r);
    free(token);

    r = RUN(NULL, NULL, "gensubtoken", "-u", "7", "-c", fx->config);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "-s CHANNEL"));
    run_free(&r);

    /* An expired token is reported as such. */
    rt_buf_t old = RT_BUF_INIT;
    assert_int_equal(
        node_jwt_sign("HS256", RT_STR("secret"), RT_STR("{\"sub\":\"42\",\"exp\":1}"), &old), 0);
    rt_buf_append_byte(&old, 0);
    r = RUN(NULL, NULL, "checktoken", (char *)old.p, "-c", fx->config);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "token expired"));
    run_free(&r);
    rt_buf_cleanup(&old);
}

int run_cli(void);
int run_cli(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_help),
        cmocka_unit_test(test_serve_flags),
        cmocka_unit_test(test_genconfig_checkconfig),
        cmocka_unit_test(test_defaultenv),
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests_name("cli", tests, setup, teardown);
}

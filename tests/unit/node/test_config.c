#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/rds.h"
#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/config.h"

static char *const no_env[] = {NULL};

static int load_json(node_config_t *cfg, const char *json, char *const *envp, rt_buf_t *err)
{
    rt_buf_reset(err);
    return node_config_load_buffer(cfg, "test.json", json, json ? strlen(json) : 0,
                                   envp ? envp : no_env, NULL, 0, err);
}

/* Loads json expecting RT_EINVAL with an error message containing want. */
static void expect_error(const char *json, char *const *envp, const char *want)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    int rc = load_json(&cfg, json, envp, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != RT_EINVAL || strstr((const char *)err.p, want) == NULL)
        fail_msg("json %s: rc %d, err \"%s\", want \"%s\"", json ? json : "(none)", rc,
                 (const char *)err.p, want);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static int quiet_setup(void **state)
{
    rt_log_set_level(RT_LOG_ERROR);
    return 0;
}

static int quiet_teardown(void **state)
{
    rt_log_set_level(RT_LOG_INFO);
    return 0;
}

static void test_defaults(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(load_json(&cfg, NULL, NULL, &err), 0);
    assert_int_equal(cfg.http_port, 8000);
    assert_string_equal(cfg.http_address, "");
    assert_int_equal(cfg.http_internal_port, 0);
    assert_int_equal(cfg.log_level, RT_LOG_INFO);
    assert_string_equal(cfg.engine_type, "memory");
    assert_int_equal(cfg.redis_addresses_count, 1);
    assert_string_equal(cfg.redis_addresses[0], "redis://127.0.0.1:6379");
    assert_null(cfg.redis_addresses[1]);
    assert_string_equal(cfg.redis_prefix, "rotor");
    assert_string_equal(cfg.redis_user, "");
    assert_string_equal(cfg.redis_password, "");
    assert_int_equal(cfg.redis_db, 0);
    assert_int_equal(cfg.redis_connect_timeout_ms, 1000);
    assert_int_equal(cfg.redis_io_timeout_ms, 4000);
    assert_int_equal(cfg.redis_presence_ttl_ms, 60000);
    assert_int_equal(cfg.consumers_count, 0);
    assert_true(cfg.workers >= 1);
    assert_non_null(cfg.allowed_origins);
    assert_null(cfg.allowed_origins[0]);
    assert_int_equal(cfg.allowed_origins_count, 0);
    assert_string_equal(cfg.token.hmac_secret_key, "");
    assert_false(cfg.client_insecure);
    assert_true(cfg.tcp_nodelay);
    assert_int_equal(cfg.ping_interval_ms, 25000);
    assert_int_equal(cfg.pong_timeout_ms, 8000);
    assert_int_equal(cfg.queue_max_size, 1048576);
    assert_int_equal(cfg.channel_limit, 128);
    assert_int_equal(cfg.stale_close_delay_ms, 10000);
    assert_int_equal(cfg.expired_close_delay_ms, 25000);
    assert_int_equal(cfg.expired_sub_close_delay_ms, 25000);
    assert_int_equal(cfg.presence_update_interval_ms, 27000);
    assert_int_equal(cfg.channel_position_check_delay_ms, 40000);
    assert_int_equal(cfg.history_max_publication_limit, 300);
    assert_int_equal(cfg.recovery_max_publication_limit, 300);
    assert_int_equal(cfg.channel_history_meta_ttl_ms, 720LL * 3600 * 1000);
    assert_int_equal(cfg.without_namespace.history_meta_ttl_ms, 720LL * 3600 * 1000);
    assert_int_equal(cfg.channel_max_length, 255);
    assert_int_equal(cfg.private_prefix, '$');
    assert_int_equal(cfg.namespace_boundary, ':');
    assert_int_equal(cfg.user_boundary, '#');
    assert_int_equal(cfg.user_separator, ',');
    assert_int_equal(cfg.namespaces_count, 0);
    assert_string_equal(cfg.http_api_prefix, "/api");
    assert_string_equal(cfg.websocket_prefix, "/connection/websocket");
    assert_int_equal(cfg.websocket_message_size_limit, 65536);
    assert_int_equal(cfg.websocket_write_timeout_ms, 1000);
    assert_string_equal(cfg.prometheus_prefix, "/metrics");
    assert_string_equal(cfg.health_prefix, "/health");
    assert_int_equal(cfg.shutdown_timeout_ms, 30000);
    assert_int_equal(cfg.shutdown_drain_delay_ms, 0);
    assert_string_equal(cfg.config_path, "");
    char host[256] = "";
    gethostname(host, sizeof(host));
    char want[300];
    snprintf(want, sizeof(want), "%s_8000", host);
    assert_string_equal(cfg.node_name, want);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static const char full_v6[] =
    "{\n"
    "  \"http_server\": {\"address\": \"127.0.0.1\", \"port\": 9000,\n"
    "                  \"internal_address\": \"127.0.0.2\", \"internal_port\": \"9001\"},\n"
    "  \"log\": {\"level\": \"debug\"},\n"
    "  \"engine\": {\"type\": \"memory\"},\n"
    "  \"workers\": 3,\n"
    "  \"client\": {\n"
    "    \"token\": {\"hmac_secret_key\": \"S\", \"audience\": \"aud\", \"issuer\": \"iss\",\n"
    "              \"hmac_previous_secret_key\": \"P\",\n"
    "              \"hmac_previous_secret_key_valid_until\": 1900000000},\n"
    "    \"subscription_token\": {\"enabled\": true, \"hmac_secret_key\": \"SUB\"},\n"
    "    \"allowed_origins\": [\"http://LOCALHOST:3000\", \"https://*.example.com\"],\n"
    "    \"allow_anonymous_connect_without_token\": true,\n"
    "    \"ping_interval\": \"20s\", \"pong_timeout\": \"5s\",\n"
    "    \"queue_max_size\": 2048, \"channel_limit\": 10, \"user_connection_limit\": 2,\n"
    "    \"connection_limit\": 1000, \"stale_close_delay\": \"3s\",\n"
    "    \"expired_close_delay\": \"4s\", \"expired_sub_close_delay\": \"6s\",\n"
    "    \"presence_update_interval\": \"7s\", \"channel_position_check_delay\": \"8s\",\n"
    "    \"history_max_publication_limit\": 50, \"recovery_max_publication_limit\": 60,\n"
    "    \"connect_include_server_time\": true, \"tcp_nodelay\": false,\n"
    "    \"subscribe_to_user_personal_channel\": {\"enabled\": true,\n"
    "      \"personal_channel_namespace\": \"personal\", \"single_connection\": true}\n"
    "  },\n"
    "  \"http_api\": {\"key\": \"K\", \"error_mode\": \"transport\", \"external\": true,\n"
    "               \"handler_prefix\": \"/capi\"},\n"
    "  \"websocket\": {\"message_size_limit\": 1024, \"write_timeout\": \"2s\"},\n"
    "  \"channel\": {\n"
    "    \"history_meta_ttl\": \"24h\", \"publication_data_format\": \"json\",\n"
    "    \"max_length\": 100,\n"
    "    \"without_namespace\": {\"presence\": true, \"allow_subscribe_for_client\": true},\n"
    "    \"namespaces\": [\n"
    "      {\"name\": \"chat\", \"presence\": true, \"join_leave\": true,\n"
    "       \"history_size\": 100, \"history_ttl\": \"300s\", \"force_recovery\": true,\n"
    "       \"force_recovery_mode\": \"cache\", \"allowed_delta_types\": [\"fossil\"],\n"
    "       \"allow_subscribe_for_client\": true, \"allow_history_for_subscriber\": true,\n"
    "       \"allow_presence_for_subscriber\": true, \"publication_data_format\": \"binary\",\n"
    "       \"channel_regex\": \"^[a-z0-9_]+$\", \"subscription_type\": \"stream\"},\n"
    "      {\"name\": \"personal\", \"presence\": true, \"history_meta_ttl\": \"48h\",\n"
    "       \"allow_user_limited_channels\": true}\n"
    "    ]\n"
    "  },\n"
    "  \"prometheus\": {\"enabled\": true}, \"health\": {\"enabled\": true},\n"
    "  \"node\": {\"name\": \"n1\"},\n"
    "  \"shutdown\": {\"timeout\": \"5s\", \"drain_delay\": \"1500ms\"}\n"
    "}\n";

static void check_full(const node_config_t *cfg)
{
    assert_string_equal(cfg->http_address, "127.0.0.1");
    assert_int_equal(cfg->http_port, 9000);
    assert_string_equal(cfg->http_internal_address, "127.0.0.2");
    assert_int_equal(cfg->http_internal_port, 9001);
    assert_int_equal(cfg->log_level, RT_LOG_DEBUG);
    assert_int_equal(cfg->workers, 3);
    assert_string_equal(cfg->token.hmac_secret_key, "S");
    assert_string_equal(cfg->token.hmac_previous_secret_key, "P");
    assert_int_equal(cfg->token.hmac_previous_secret_key_valid_until, 1900000000);
    assert_string_equal(cfg->token.audience, "aud");
    assert_string_equal(cfg->token.issuer, "iss");
    assert_true(cfg->subscription_token_enabled);
    assert_string_equal(cfg->subscription_token.hmac_secret_key, "SUB");
    assert_int_equal(cfg->allowed_origins_count, 2);
    assert_string_equal(cfg->allowed_origins[0], "http://localhost:3000");
    assert_string_equal(cfg->allowed_origins[1], "https://*.example.com");
    assert_null(cfg->allowed_origins[2]);
    assert_true(cfg->allow_anonymous_connect_without_token);
    assert_int_equal(cfg->ping_interval_ms, 20000);
    assert_int_equal(cfg->pong_timeout_ms, 5000);
    assert_int_equal(cfg->queue_max_size, 2048);
    assert_int_equal(cfg->channel_limit, 10);
    assert_int_equal(cfg->user_connection_limit, 2);
    assert_int_equal(cfg->connection_limit, 1000);
    assert_int_equal(cfg->stale_close_delay_ms, 3000);
    assert_int_equal(cfg->expired_close_delay_ms, 4000);
    assert_int_equal(cfg->expired_sub_close_delay_ms, 6000);
    assert_int_equal(cfg->presence_update_interval_ms, 7000);
    assert_int_equal(cfg->channel_position_check_delay_ms, 8000);
    assert_int_equal(cfg->history_max_publication_limit, 50);
    assert_int_equal(cfg->recovery_max_publication_limit, 60);
    assert_true(cfg->connect_include_server_time);
    assert_false(cfg->tcp_nodelay);
    assert_true(cfg->personal_channel_enabled);
    assert_string_equal(cfg->personal_channel_namespace, "personal");
    assert_true(cfg->personal_single_connection);
    assert_string_equal(cfg->http_api_key, "K");
    assert_true(cfg->http_api_error_mode_transport);
    assert_true(cfg->http_api_external);
    assert_string_equal(cfg->http_api_prefix, "/capi");
    assert_int_equal(cfg->websocket_message_size_limit, 1024);
    assert_int_equal(cfg->websocket_write_timeout_ms, 2000);
    assert_int_equal(cfg->channel_history_meta_ttl_ms, 24 * 3600 * 1000);
    assert_int_equal(cfg->channel_max_length, 100);
    assert_true(cfg->without_namespace.presence);
    assert_true(cfg->without_namespace.allow_subscribe_for_client);
    assert_int_equal(cfg->without_namespace.publication_data_format, NODE_DATA_FORMAT_JSON);
    assert_int_equal(cfg->namespaces_count, 2);
    const node_ns_opts_t *chat = &cfg->namespaces[0];
    assert_string_equal(chat->name, "chat");
    assert_true(chat->presence && chat->join_leave && chat->force_recovery);
    assert_int_equal(chat->history_size, 100);
    assert_int_equal(chat->history_ttl_ms, 300000);
    assert_int_equal(chat->history_meta_ttl_ms, 24 * 3600 * 1000);
    assert_true(chat->force_recovery_mode_cache);
    assert_true(chat->allow_fossil_delta);
    assert_true(chat->allow_subscribe_for_client);
    assert_true(chat->allow_history_for_subscriber);
    assert_true(chat->allow_presence_for_subscriber);
    assert_false(chat->allow_publish_for_client);
    assert_int_equal(chat->publication_data_format, NODE_DATA_FORMAT_BINARY);
    assert_true(chat->has_regex);
    const node_ns_opts_t *personal = &cfg->namespaces[1];
    assert_int_equal(personal->history_meta_ttl_ms, 48 * 3600 * 1000);
    assert_int_equal(personal->publication_data_format, NODE_DATA_FORMAT_JSON);
    assert_true(personal->allow_user_limited_channels);
    assert_true(cfg->prometheus_enabled);
    assert_true(cfg->health_enabled);
    assert_string_equal(cfg->node_name, "n1");
    assert_int_equal(cfg->shutdown_timeout_ms, 5000);
    assert_int_equal(cfg->shutdown_drain_delay_ms, 1500);
    assert_int_equal(cfg->warnings, 0);
}

static void test_full_v6(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    int rc = load_json(&cfg, full_v6, NULL, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    check_full(&cfg);
    assert_string_equal(cfg.config_path, "test.json");
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

/* The file is not a stream, but a truncated file must fail cleanly at every length. */
static void test_truncated_at_every_offset(void **state)
{
    size_t n = strlen(full_v6);
    rt_buf_t err = RT_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i == n - 1)
            break; /* only the trailing newline is missing: still a whole document */
        node_config_t cfg;
        rt_buf_reset(&err);
        int rc = node_config_load_buffer(&cfg, "t.json", full_v6, i, no_env, NULL, 0, &err);
        if (rc != RT_EINVAL)
            fail_msg("prefix %zu: rc %d", i, rc);
        node_config_cleanup(&cfg);
    }
    node_config_t cfg;
    assert_int_equal(node_config_load_buffer(&cfg, "t.json", full_v6, n, no_env, NULL, 0, &err), 0);
    check_full(&cfg);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void test_file_on_disk(void **state)
{
    char dir[] = "/tmp/rotor_cfg_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(full_v6, f);
    fclose(f);

    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(node_config_load(&cfg, path, no_env, NULL, 0, &err), 0);
    check_full(&cfg);
    assert_string_equal(cfg.config_path, path);
    node_config_cleanup(&cfg);

    char missing[160];
    snprintf(missing, sizeof(missing), "%s/nope.json", dir);
    rt_buf_reset(&err);
    assert_int_equal(node_config_load(&cfg, missing, no_env, NULL, 0, &err), RT_ENOTFOUND);
    rt_buf_append_byte(&err, 0);
    assert_non_null(strstr((const char *)err.p, "nope.json"));
    node_config_cleanup(&cfg);

    const char *yamls[] = {"config.yaml", "c.YML", "x.toml"};
    for (size_t i = 0; i < 3; i++) {
        rt_buf_reset(&err);
        assert_int_equal(node_config_load(&cfg, yamls[i], no_env, NULL, 0, &err), RT_EINVAL);
        rt_buf_append_byte(&err, 0);
        assert_non_null(strstr((const char *)err.p, yamls[i]));
        assert_non_null(strstr((const char *)err.p, "not supported"));
        node_config_cleanup(&cfg);
    }

    /* Without a path, config.json in the working directory is used when it exists. */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    rt_buf_reset(&err);
    assert_int_equal(node_config_load(&cfg, NULL, no_env, NULL, 0, &err), 0);
    assert_int_equal(cfg.http_port, 9000);
    assert_string_equal(cfg.config_path, "config.json");
    node_config_cleanup(&cfg);
    unlink(path);
    assert_int_equal(node_config_load(&cfg, NULL, no_env, NULL, 0, &err), 0);
    assert_int_equal(cfg.http_port, 8000);
    node_config_cleanup(&cfg);
    assert_int_equal(chdir(cwd), 0);
    rmdir(dir);
    rt_buf_cleanup(&err);
}

static void test_env_overrides(void **state)
{
    char *env[] = {
        "CENTRIFUGO_HTTP_SERVER_PORT=9000",
        "ROTOR_HTTP_SERVER_PORT=9001",
        "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS=http://a.com  HTTP://B.com",
        "CENTRIFUGO_CLIENT_INSECURE=t",
        "ROTOR_LOG_LEVEL=",
        "CENTRIFUGO_LOG_LEVEL=warn",
        "CENTRIFUGO_CLIENT_PING_INTERVAL=30s",
        "ROTOR_CLIENT_TOKEN_HMAC_SECRET_KEY=rotor-secret",
        "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY=centrifugo-secret",
        "CENTRIFUGO_HTTP_API_KEY=api",
        "CENTRIFUGO_CHANNEL_NAMESPACES=[{\"name\":\"chat\",\"presence\":true},"
        "{\"name\":\"my-ns.x\"}]",
        "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_JOIN_LEAVE=true",
        "ROTOR_CHANNEL_NAMESPACES_CHAT_HISTORY_SIZE=10",
        "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_HISTORY_TTL=60s",
        "CENTRIFUGO_CHANNEL_NAMESPACES_MY_NS_X_ALLOW_PUBLISH_FOR_CLIENT=1",
        "ROTOR_CHANNEL_WITHOUT_NAMESPACE_PRESENCE=TRUE",
        "CENTRIFUGO_WORKERS=2",
        "CENTRIFUGO_SHUTDOWN_DRAIN_DELAY=2s",
        "HOME=/root",
        NULL,
    };
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    int rc = load_json(&cfg, "{\"http_server\":{\"port\":7000},\"log\":{\"level\":\"error\"}}", env,
                       &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_int_equal(cfg.http_port, 9001);
    assert_int_equal(cfg.allowed_origins_count, 2);
    assert_string_equal(cfg.allowed_origins[0], "http://a.com");
    assert_string_equal(cfg.allowed_origins[1], "http://b.com");
    assert_true(cfg.client_insecure);
    assert_int_equal(cfg.log_level, RT_LOG_WARN);
    assert_int_equal(cfg.ping_interval_ms, 30000);
    assert_string_equal(cfg.token.hmac_secret_key, "rotor-secret");
    assert_string_equal(cfg.http_api_key, "api");
    assert_int_equal(cfg.namespaces_count, 2);
    assert_true(cfg.namespaces[0].presence);
    assert_true(cfg.namespaces[0].join_leave);
    assert_int_equal(cfg.namespaces[0].history_size, 10);
    assert_int_equal(cfg.namespaces[0].history_ttl_ms, 60000);
    assert_string_equal(cfg.namespaces[1].name, "my-ns.x");
    assert_true(cfg.namespaces[1].allow_publish_for_client);
    assert_true(cfg.without_namespace.presence);
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.shutdown_drain_delay_ms, 2000);
    assert_int_equal(cfg.warnings, 0);
    char host[256] = "";
    gethostname(host, sizeof(host));
    char want[300];
    snprintf(want, sizeof(want), "%s_9001", host);
    assert_string_equal(cfg.node_name, want);
    node_config_cleanup(&cfg);

    /* Space-separated names create empty namespaces. */
    char *env2[] = {"ROTOR_CHANNEL_NAMESPACES=ab  cd", NULL};
    assert_int_equal(load_json(&cfg, NULL, env2, &err), 0);
    assert_int_equal(cfg.namespaces_count, 2);
    assert_string_equal(cfg.namespaces[1].name, "cd");
    assert_false(cfg.namespaces[1].presence);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void test_env_errors_name_key(void **state)
{
    char *e1[] = {"CENTRIFUGO_CLIENT_INSECURE=yes", NULL};
    expect_error(NULL, e1, "client.insecure (env CENTRIFUGO_CLIENT_INSECURE)");
    char *e2[] = {"ROTOR_CLIENT_PONG_TIMEOUT=abc", NULL};
    expect_error(NULL, e2, "client.pong_timeout (env ROTOR_CLIENT_PONG_TIMEOUT)");
    char *e3[] = {"CENTRIFUGO_CHANNEL_NAMESPACES=[{\"name\":1}]", NULL};
    expect_error(NULL, e3, "channel.namespaces[0].name");
    char *e4[] = {"CENTRIFUGO_CHANNEL_NAMESPACES=[{", NULL};
    expect_error(NULL, e4, "channel.namespaces (env CENTRIFUGO_CHANNEL_NAMESPACES)");
    char *e5[] = {"CENTRIFUGO_UNI_WEBSOCKET_JOIN_PUSH_MESSAGES=true", NULL};
    expect_error(NULL, e5, "CENTRIFUGO_UNI_WEBSOCKET_JOIN_PUSH_MESSAGES");
    char *e6[] = {"CENTRIFUGO_CLIENT_TOKEN_JWKS_PUBLIC_ENDPOINT=https://x/jwks", NULL};
    expect_error(NULL, e6, "client.token.jwks_public_endpoint");
    char *e7[] = {"CENTRIFUGO_CHANNEL_NAMESPACES=ab",
                  "CENTRIFUGO_CHANNEL_NAMESPACES_AB_HISTORY_SIZE=-1", NULL};
    expect_error(NULL, e7, "channel.namespaces[0].history_size");
    char *e8[] = {"CENTRIFUGO_ENGINE_TYPE=tarantool", NULL};
    expect_error(NULL, e8, "engine.type");
}

static void test_flags_win(void **state)
{
    char *env[] = {"CENTRIFUGO_HTTP_SERVER_PORT=9000", "ROTOR_LOG_LEVEL=debug", NULL};
    char *flags[] = {"http_server.port=9100", "client.insecure=true", "log.level=error",
                     "channel.namespaces=[{\"name\":\"fl\"}]"};
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    const char *file = "{\"http_server\":{\"port\":1}}";
    int rc = node_config_load_buffer(&cfg, "f.json", file, strlen(file), env, flags, 4, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_int_equal(cfg.http_port, 9100);
    assert_true(cfg.client_insecure);
    assert_int_equal(cfg.log_level, RT_LOG_ERROR);
    assert_int_equal(cfg.namespaces_count, 1);
    node_config_cleanup(&cfg);

    char *bad[] = {"no_such.key=1"};
    rt_buf_reset(&err);
    assert_int_equal(node_config_load_buffer(&cfg, NULL, NULL, 0, no_env, bad, 1, &err), RT_EINVAL);
    rt_buf_append_byte(&err, 0);
    assert_non_null(strstr((const char *)err.p, "no_such.key"));
    node_config_cleanup(&cfg);

    char *bad2[] = {"http_server.port=x"};
    rt_buf_reset(&err);
    assert_int_equal(node_config_load_buffer(&cfg, NULL, NULL, 0, no_env, bad2, 1, &err),
                     RT_EINVAL);
    rt_buf_append_byte(&err, 0);
    assert_non_null(strstr((const char *)err.p, "http_server.port (flag)"));
    node_config_cleanup(&cfg);

    char *bad3[] = {"uni_websocket.join_push_messages=true"};
    rt_buf_reset(&err);
    assert_int_equal(node_config_load_buffer(&cfg, NULL, NULL, 0, no_env, bad3, 1, &err),
                     RT_EINVAL);
    rt_buf_append_byte(&err, 0);
    assert_non_null(strstr((const char *)err.p, "uni_websocket.join_push_messages"));
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void test_validation_errors(void **state)
{
    static const struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"[]", "top level must be a JSON object"},
        {"{\"a\":}", "test.json: invalid JSON"},
        {"{\"http_server\":{\"port\":\"x\"}}", "http_server.port"},
        {"{\"http_server\":{\"port\":70000}}", "http_server.port"},
        {"{\"http_server\":{\"port\":-1}}", "http_server.port"},
        {"{\"http_server\":5}", "http_server: must be an object"},
        {"{\"log\":{\"level\":\"loud\"}}", "log.level"},
        {"{\"engine\":{\"type\":\"tarantool\"}}", "engine.type: unknown engine"},
        {"{\"workers\":0}", "workers: must be >= 1"},
        {"{\"client\":{\"insecure\":\"true\"}}", "client.insecure: must be a boolean"},
        {"{\"client\":{\"allowed_origins\":\"*\"}}", "client.allowed_origins"},
        {"{\"client\":{\"allowed_origins\":[1]}}", "client.allowed_origins"},
        {"{\"client\":{\"ping_interval\":\"10s\",\"pong_timeout\":\"10s\"}}",
         "client.ping_interval: must be greater than client.pong_timeout"},
        {"{\"client\":{\"ping_interval\":\"0s\"}}", "client.ping_interval: must not be 0"},
        {"{\"client\":{\"ping_interval\":\"soon\"}}", "client.ping_interval: invalid duration"},
        {"{\"client\":{\"ping_interval\":true}}", "client.ping_interval"},
        {"{\"client\":{\"channel_limit\":-1}}", "client.channel_limit: must not be negative"},
        {"{\"client\":{\"queue_max_size\":0}}", "client.queue_max_size"},
        {"{\"client\":{\"queue_max_size\":1.5}}", "client.queue_max_size: must be an integer"},
        {"{\"client\":{\"stale_close_delay\":\"-1s\"}}", "client.stale_close_delay"},
        {"{\"client\":{\"presence_update_interval\":\"0s\"}}", "client.presence_update_interval"},
        {"{\"client\":{\"token\":{\"hmac_secret_key\":5}}}", "client.token.hmac_secret_key"},
        {"{\"client\":{\"subscribe_to_user_personal_channel\":{\"enabled\":true,"
         "\"personal_channel_namespace\":\"nope\"}}}",
         "client.subscribe_to_user_personal_channel.personal_channel_namespace"},
        {"{\"client\":{\"subscribe_to_user_personal_channel\":{\"enabled\":true,"
         "\"single_connection\":true}}}",
         "client.subscribe_to_user_personal_channel.single_connection"},
        {"{\"channel\":{\"max_length\":0}}", "channel.max_length"},
        {"{\"channel\":{\"namespace_boundary\":\"::\"}}", "channel.namespace_boundary"},
        {"{\"channel\":{\"publication_data_format\":\"xml\"}}", "channel.publication_data_format"},
        {"{\"channel\":{\"history_meta_ttl\":\"1500ms\"}}",
         "channel.history_meta_ttl: must be a whole"},
        {"{\"channel\":{\"without_namespace\":{\"history_size\":10}}}",
         "channel.without_namespace.history_ttl"},
        {"{\"channel\":{\"without_namespace\":{\"history_ttl\":\"10s\"}}}",
         "channel.without_namespace.history_size"},
        {"{\"channel\":{\"without_namespace\":{\"force_recovery\":true}}}",
         "channel.without_namespace.force_recovery"},
        {"{\"channel\":{\"without_namespace\":[]}}",
         "channel.without_namespace: must be an object"},
        {"{\"channel\":{\"namespaces\":{}}}", "channel.namespaces: must be an array"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ok\"},{\"name\":\"ab\",\"history_size\":1,"
         "\"history_ttl\":\"2h\",\"history_meta_ttl\":\"1h\"}]}}",
         "channel.namespaces[1].history_ttl: must be <= history_meta_ttl"},
        {"{\"channel\":{\"history_meta_ttl\":\"1h\",\"namespaces\":[{\"name\":\"ab\","
         "\"history_size\":1,\"history_ttl\":\"2h\"}]}}",
         "channel.namespaces[0].history_ttl: must be <= history_meta_ttl"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"history_size\":-1}]}}",
         "channel.namespaces[0].history_size: must not be negative"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"history_ttl\":\"1.5s\","
         "\"history_size\":1}]}}",
         "channel.namespaces[0].history_ttl: must be a whole number of seconds"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"a\"}]}}", "channel.namespaces[0].name"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"a b\"}]}}", "channel.namespaces[0].name"},
        {"{\"channel\":{\"namespaces\":[{}]}}", "channel.namespaces[0].name"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\"},{\"name\":\"ab\"}]}}",
         "channel.namespaces[1].name: duplicate"},
        {"{\"channel\":{\"namespaces\":[5]}}", "channel.namespaces[0]: must be an object"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"channel_regex\":\"([a-z\"}]}}",
         "channel.namespaces[0].channel_regex: invalid regular expression"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"subscription_type\":\"map\"}]}}",
         "channel.namespaces[0].subscription_type"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"subscription_type\":\"x\"}]}}",
         "channel.namespaces[0].subscription_type: unknown"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"force_recovery_mode\":\"x\"}]}}",
         "channel.namespaces[0].force_recovery_mode"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"allowed_delta_types\":[\"xd\"]}]}}",
         "channel.namespaces[0].allowed_delta_types"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"publication_data_format\":\"x\"}]}}",
         "channel.namespaces[0].publication_data_format"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"subscribe_proxy_enabled\":true}]}}",
         "channel.namespaces[0].subscribe_proxy_enabled: not supported by rotor yet"},
        {"{\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"subscribe_cel\":\"x\"}]}}",
         "channel.namespaces[0].subscribe_cel"},
        {"{\"http_api\":{\"error_mode\":\"grpc\"}}", "http_api.error_mode"},
        {"{\"http_api\":{\"handler_prefix\":\"api\"}}", "http_api.handler_prefix"},
        {"{\"websocket\":{\"write_timeout\":\"-5s\"}}", "websocket.write_timeout"},
        {"{\"shutdown\":{\"timeout\":\"x\"}}", "shutdown.timeout"},
        {"{\"uni_websocket\":{\"join_push_messages\":true}}",
         "uni_websocket.join_push_messages: not supported by rotor yet"},
        {"{\"http_server\":{\"tls\":{\"enabled\":true}}}", "http_server.tls.enabled"},
        {"{\"rpc\":{\"ping\":{\"enabled\":true}}}", "rpc.ping.enabled"},
        {"{\"consumers\":[{\"name\":\"c\",\"enabled\":true}]}", "consumers[0].name"},
        {"{\"client\":{\"proxy\":{\"connect\":{\"enabled\":true}}}}",
         "client.proxy.connect.enabled"},
        {"{\"client\":{\"user_id_http_header\":\"X-User\"}}", "client.user_id_http_header"},
        {"{\"log\":{\"file\":\"/var/log/x\"}}", "log.file"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].json, NULL, cases[i].want);
}

static void test_unknown_and_unsupported_warn(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(
        load_json(&cfg,
                  "{\"foo\":1,\"client\":{\"bar\":true,\"token\":{\"baz\":\"\"}},"
                  "\"channel\":{\"namespaces\":[{\"name\":\"ab\",\"qux\":1}],"
                  "\"without_namespace\":{\"name\":\"x\"}},\"http_server\":{\"port\":8001}}",
                  NULL, &err),
        0);
    assert_int_equal(cfg.warnings, 5);
    assert_int_equal(cfg.http_port, 8001);
    node_config_cleanup(&cfg);

    assert_int_equal(
        load_json(&cfg,
                  "{\"webtransport\":{\"enabled\":false},\"admin\":{\"password\":\"p\"},"
                  "\"proxies\":[],\"engine\":{\"redis\":{\"client_name\":\"x\"}},"
                  "\"channel\":{\"namespaces\":[{\"name\":\"ab\","
                  "\"keep_latest_publication\":true,\"map\":{}}]},"
                  "\"uni_websocket\":null}",
                  NULL, &err),
        0);
    assert_int_equal(cfg.warnings, 6);
    node_config_cleanup(&cfg);

    char *env[] = {"CENTRIFUGO_FOO=1",
                   "ROTOR_BAR_BAZ=2",
                   "CENTRIFUGO_SERVICE_HOST=10.0.0.1",
                   "CENTRIFUGO_PORT_8000_TCP=tcp://10.0.0.1:8000",
                   "CENTRIFUGO_REDIS_SERVICE_PORT=6379",
                   "CENTRIFUGO_VAR_SECRET=x",
                   "CENTRIFUGO_WEBTRANSPORT_ENABLED=false",
                   "CENTRIFUGO_EMPTY=",
                   "OTHER=1",
                   NULL};
    assert_int_equal(load_json(&cfg, NULL, env, &err), 0);
    assert_int_equal(cfg.warnings, 3);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void test_durations(void **state)
{
    static const struct {
        const char *value;
        int64_t ms;
    } ok[] = {
        {"\"100ms\"", 100},  {"30", 30000},      {"\"1m30s\"", 90000},
        {"\"1h\"", 3600000}, {"\"1.5s\"", 1500}, {"\"-1s\"", -1000},
        {"-2", -2000},       {"\"25\"", 25000},  {"\"2h45m\"", 9900000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char json[128];
        snprintf(json, sizeof(json), "{\"client\":{\"ping_interval\":%s,\"pong_timeout\":\"-1s\"}}",
                 ok[i].value);
        node_config_t cfg;
        rt_buf_t err = RT_BUF_INIT;
        int rc = load_json(&cfg, json, NULL, &err);
        rt_buf_append_byte(&err, 0);
        if (rc != 0)
            fail_msg("%s: %s", ok[i].value, (const char *)err.p);
        assert_int_equal(cfg.ping_interval_ms, ok[i].ms);
        node_config_cleanup(&cfg);
        rt_buf_cleanup(&err);
    }
    static const char *const bad[] = {"\"\"",    "\"s\"",    "\"0x10s\"", "\"1e3s\"", "\"10 s\"",
                                      "\"10d\"", "\"--1s\"", "1.5",       "[]",       "\"1s \""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[128];
        snprintf(json, sizeof(json), "{\"shutdown\":{\"timeout\":%s}}", bad[i]);
        expect_error(json, NULL, "shutdown.timeout");
    }
}

static const char ns_json[] = "{\"channel\":{\"namespaces\":[{\"name\":\"chat\"},"
                              "{\"name\":\"dialogs\",\"allow_user_limited_channels\":true},"
                              "{\"name\":\"re\",\"channel_regex\":\"^[a-z]+$\"},"
                              "{\"name\":\"any\",\"channel_regex\":\"^.+$\"}],"
                              "\"max_length\":20}}";

static const node_ns_opts_t *resolve(const node_config_t *cfg, const char *ch, const char **rest,
                                     size_t *rest_len)
{
    return node_config_resolve(cfg, ch, strlen(ch), rest, rest_len);
}

static void test_resolution(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(load_json(&cfg, ns_json, NULL, &err), 0);
    const char *rest;
    size_t rn;

    assert_ptr_equal(resolve(&cfg, "news", &rest, &rn), &cfg.without_namespace);
    assert_int_equal(rn, 4);
    assert_memory_equal(rest, "news", 4);

    const node_ns_opts_t *ns = resolve(&cfg, "chat:index", &rest, &rn);
    assert_non_null(ns);
    assert_string_equal(ns->name, "chat");
    assert_int_equal(rn, 5);
    assert_memory_equal(rest, "index", 5);

    ns = resolve(&cfg, "$chat:secret", &rest, &rn);
    assert_non_null(ns);
    assert_string_equal(ns->name, "chat");
    assert_int_equal(rn, 6);
    assert_memory_equal(rest, "secret", 6);

    ns = resolve(&cfg, "dialogs:dlg#42,43", &rest, &rn);
    assert_non_null(ns);
    assert_string_equal(ns->name, "dialogs");
    assert_int_equal(rn, 9);

    assert_null(resolve(&cfg, "xxx:y", &rest, &rn));
    assert_null(resolve(&cfg, "$xxx:y", &rest, &rn));
    /* First boundary only. */
    ns = resolve(&cfg, "chat:a:b", &rest, &rn);
    assert_string_equal(ns->name, "chat");
    assert_int_equal(rn, 3);
    assert_memory_equal(rest, "a:b", 3);
    /* Only one private prefix is removed. */
    assert_null(resolve(&cfg, "$$chat:x", &rest, &rn));
    /* Private without namespace: rest is the whole channel. */
    assert_ptr_equal(resolve(&cfg, "$news", &rest, &rn), &cfg.without_namespace);
    assert_int_equal(rn, 5);
    /* Empty namespace name means no namespace. */
    assert_ptr_equal(resolve(&cfg, ":x", &rest, &rn), &cfg.without_namespace);
    assert_int_equal(rn, 1);
    assert_ptr_equal(resolve(&cfg, "", &rest, &rn), &cfg.without_namespace);
    /* Namespace names are case-sensitive; "chatx" is not "chat". */
    assert_null(resolve(&cfg, "Chat:x", &rest, &rn));
    assert_null(resolve(&cfg, "chatx:x", &rest, &rn));
    assert_null(resolve(&cfg, "cha:x", &rest, &rn));

    assert_true(node_channel_is_private(&cfg, RT_STR("$chat:x")));
    assert_false(node_channel_is_private(&cfg, RT_STR("chat:$x")));
    assert_false(node_channel_is_private(&cfg, RT_STR("")));
    node_config_cleanup(&cfg);

    /* Custom special characters, and a disabled boundary. */
    assert_int_equal(load_json(&cfg,
                               "{\"channel\":{\"namespace_boundary\":\"/\",\"private_prefix\":\"\","
                               "\"namespaces\":[{\"name\":\"ns\"}]}}",
                               NULL, &err),
                     0);
    ns = resolve(&cfg, "ns/x", &rest, &rn);
    assert_non_null(ns);
    assert_string_equal(ns->name, "ns");
    assert_ptr_equal(resolve(&cfg, "ns:x", &rest, &rn), &cfg.without_namespace);
    assert_null(resolve(&cfg, "$ns/x", &rest, &rn));
    assert_false(node_channel_is_private(&cfg, RT_STR("$x")));
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void test_user_limited(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(load_json(&cfg, ns_json, NULL, &err), 0);
    const char *rest;
    size_t rn;
    const node_ns_opts_t *dialogs = resolve(&cfg, "dialogs:dlg#42,43", &rest, &rn);
    const node_ns_opts_t *chat = resolve(&cfg, "chat:x", &rest, &rn);
    rt_str_t ch = RT_STR("dialogs:dlg#42,43");

    assert_true(node_channel_is_user_limited(&cfg, dialogs, ch));
    assert_false(node_channel_is_user_limited(&cfg, chat, RT_STR("chat:dlg#42")));
    assert_false(node_channel_is_user_limited(&cfg, dialogs, RT_STR("dialogs:dlg")));
    assert_true(node_channel_user_allowed(&cfg, dialogs, ch, RT_STR("42")));
    assert_true(node_channel_user_allowed(&cfg, dialogs, ch, RT_STR("43")));
    assert_false(node_channel_user_allowed(&cfg, dialogs, ch, RT_STR("4")));
    assert_false(node_channel_user_allowed(&cfg, dialogs, ch, RT_STR("42,43")));
    assert_false(node_channel_user_allowed(&cfg, dialogs, ch, RT_STR("")));
    assert_false(node_channel_user_allowed(&cfg, dialogs, RT_STR("dialogs:dlg"), RT_STR("42")));
    assert_false(node_channel_user_allowed(&cfg, chat, RT_STR("chat:#42"), RT_STR("42")));
    /* After the last boundary only. */
    rt_str_t two = RT_STR("dialogs:a#b#42");
    assert_true(node_channel_user_allowed(&cfg, dialogs, two, RT_STR("42")));
    assert_false(node_channel_user_allowed(&cfg, dialogs, two, RT_STR("b")));
    assert_false(node_channel_user_allowed(&cfg, dialogs, RT_STR("dialogs:#"), RT_STR("")));
    assert_true(node_channel_user_allowed(&cfg, dialogs, RT_STR("dialogs:#7"), RT_STR("7")));
    assert_true(node_channel_user_allowed(&cfg, dialogs, RT_STR("dialogs:#,7"), RT_STR("7")));
    node_config_cleanup(&cfg);

    /* Personal channel without namespace, user-limited top level. */
    assert_int_equal(load_json(&cfg,
                               "{\"channel\":{\"user_boundary\":\"@\",\"user_separator\":\";\","
                               "\"without_namespace\":{\"allow_user_limited_channels\":true}}}",
                               NULL, &err),
                     0);
    assert_true(
        node_channel_user_allowed(&cfg, &cfg.without_namespace, RT_STR("x@1;2"), RT_STR("2")));
    assert_false(
        node_channel_user_allowed(&cfg, &cfg.without_namespace, RT_STR("x#1,2"), RT_STR("2")));
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void test_validate_name(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(load_json(&cfg, ns_json, NULL, &err), 0);
    const char *rest;
    size_t rn;
    const node_ns_opts_t *w = &cfg.without_namespace;
    assert_int_equal(node_channel_validate_name(&cfg, w, RT_STR("news"), RT_STR("news")), 0);
    assert_int_equal(
        node_channel_validate_name(&cfg, w, RT_STR("n\xc3\xa9ws"), RT_STR("n\xc3\xa9ws")),
        RT_EINVAL);
    /* 20 is the limit. */
    assert_int_equal(node_channel_validate_name(&cfg, w, RT_STR("01234567890123456789"),
                                                RT_STR("01234567890123456789")),
                     0);
    assert_int_equal(node_channel_validate_name(&cfg, w, RT_STR("012345678901234567890"),
                                                RT_STR("012345678901234567890")),
                     RT_EINVAL);

    const node_ns_opts_t *re = resolve(&cfg, "re:abc", &rest, &rn);
    assert_int_equal(node_channel_validate_name(&cfg, re, RT_STR("re:abc"), rt_str_from(rest, rn)),
                     0);
    assert_int_equal(node_channel_validate_name(&cfg, re, RT_STR("re:aBc"), RT_STR("aBc")),
                     RT_EINVAL);
    assert_int_equal(node_channel_validate_name(&cfg, re, RT_STR("re:"), RT_STR("")), RT_EINVAL);
    assert_int_equal(node_channel_validate_name(&cfg, re, RT_STR("re:a\0b"), RT_STR("a\0b")),
                     RT_EINVAL);
    /* The regex replaces the ASCII check. */
    const node_ns_opts_t *any = resolve(&cfg, "any:x", &rest, &rn);
    assert_int_equal(
        node_channel_validate_name(&cfg, any, RT_STR("any:\xc3\xa9"), RT_STR("\xc3\xa9")), 0);
    node_config_cleanup(&cfg);

    /* A long rest goes through the heap copy. */
    assert_int_equal(load_json(&cfg,
                               "{\"channel\":{\"max_length\":2000,\"namespaces\":[{\"name\":"
                               "\"re\",\"channel_regex\":\"^a+$\"}]}}",
                               NULL, &err),
                     0);
    char big[1200];
    memset(big, 'a', sizeof(big));
    re = &cfg.namespaces[0];
    assert_int_equal(node_channel_validate_name(&cfg, re, rt_str_from(big, sizeof(big)),
                                                rt_str_from(big, sizeof(big))),
                     0);
    big[600] = 'b';
    assert_int_equal(node_channel_validate_name(&cfg, re, rt_str_from(big, sizeof(big)),
                                                rt_str_from(big, sizeof(big))),
                     RT_EINVAL);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

/* ---- engine.redis ---------------------------------------------------------------------- */

static const char redis_doc[] =
    "{\"engine\": {\"type\": \"redis\", \"redis\": {\n"
    "  \"address\": [\"redis://10.0.0.1:6379\", \"10.0.0.2:6380\",\n"
    "              \"redis://u2:p2@10.0.0.3:6381/5?connect_timeout=3s&io_timeout=7s\"],\n"
    "  \"prefix\": \"app\", \"user\": \"u\", \"password\": \"p\", \"db\": 2,\n"
    "  \"connect_timeout\": \"2s\", \"io_timeout\": \"500ms\", \"presence_ttl\": \"30s\",\n"
    "  \"force_resp2\": true, \"history_use_lists\": false, \"cluster_address\": [],\n"
    "  \"tls\": {\"enabled\": false}}},\n"
    " \"consumers\": [{\"name\": \"api_stream\", \"type\": \"redis_stream\",\n"
    "   \"redis_stream\": {\"address\": [\"redis://10.0.0.9:6379/1\"], \"password\": \"cp\",\n"
    "     \"streams\": [\"s1\", \"s2\"], \"consumer_group\": \"g\", \"num_workers\": 4,\n"
    "     \"visibility_timeout\": \"10s\", \"payload_value\": \"pl\", \"method_value\": \"m\",\n"
    "     \"publication_data_mode\": {\"enabled\": true, \"channels_value\": \"ch\",\n"
    "       \"idempotency_key_value\": \"ik\", \"delta_value\": \"d\", \"version_value\": \"v\",\n"
    "       \"version_epoch_value\": \"ve\", \"tags_value_prefix\": \"t-\"}}}]}\n";

static void check_redis_doc(const node_config_t *cfg)
{
    assert_string_equal(cfg->engine_type, "redis");
    assert_int_equal(cfg->redis_addresses_count, 3);
    assert_string_equal(cfg->redis_addresses[0], "redis://10.0.0.1:6379");
    assert_string_equal(cfg->redis_addresses[1], "10.0.0.2:6380");
    assert_null(cfg->redis_addresses[3]);
    assert_string_equal(cfg->redis_prefix, "app");
    assert_string_equal(cfg->redis_user, "u");
    assert_string_equal(cfg->redis_password, "p");
    assert_int_equal(cfg->redis_db, 2);
    assert_int_equal(cfg->redis_connect_timeout_ms, 2000);
    assert_int_equal(cfg->redis_io_timeout_ms, 500);
    assert_int_equal(cfg->redis_presence_ttl_ms, 30000);
    assert_true(cfg->redis_force_resp2);
    assert_int_equal(cfg->consumers_count, 1);
    const node_consumer_t *c = &cfg->consumers[0];
    assert_string_equal(c->name, "api_stream");
    assert_false(c->enabled);
    assert_string_equal(c->type, "redis_stream");
    assert_int_equal(c->type_id, NODE_CONSUMER_REDIS_STREAM);
    const node_redis_stream_consumer_t *r = &c->redis_stream;
    assert_string_equal(r->address, "redis://10.0.0.9:6379/1");
    assert_string_equal(r->password, "cp");
    assert_string_equal(r->user, "");
    assert_int_equal(r->streams_count, 2);
    assert_string_equal(r->streams[1], "s2");
    assert_null(r->streams[2]);
    assert_string_equal(r->consumer_group, "g");
    assert_int_equal(r->num_workers, 4);
    assert_int_equal(r->visibility_timeout_ms, 10000);
    assert_int_equal(r->connect_timeout_ms, 1000);
    assert_int_equal(r->io_timeout_ms, 4000);
    assert_string_equal(r->payload_value, "pl");
    assert_string_equal(r->method_value, "m");
    assert_true(r->publication_data_mode);
    assert_string_equal(r->channels_value, "ch");
    assert_string_equal(r->idempotency_key_value, "ik");
    assert_string_equal(r->delta_value, "d");
    assert_string_equal(r->version_value, "v");
    assert_string_equal(r->version_epoch_value, "ve");
    assert_string_equal(r->tags_value_prefix, "t-");
}

static void test_redis_file(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    int rc = load_json(&cfg, redis_doc, NULL, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    check_redis_doc(&cfg);
    /* history_use_lists: false is a warning only (an empty cluster_address is fine). */
    assert_int_equal(cfg.warnings, 1);
    node_config_cleanup(&cfg);

    /* A single string is one shard. */
    assert_int_equal(load_json(&cfg,
                               "{\"engine\":{\"type\":\"redis\",\"redis\":"
                               "{\"address\":\"redis://127.0.0.1:7000\"}}}",
                               NULL, &err),
                     0);
    assert_int_equal(cfg.redis_addresses_count, 1);
    assert_string_equal(cfg.redis_addresses[0], "redis://127.0.0.1:7000");
    assert_string_equal(cfg.redis_prefix, "rotor");
    assert_int_equal(cfg.warnings, 0);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

/* The document must fail cleanly at every truncation and load whole. */
static void test_redis_truncated_at_every_offset(void **state)
{
    size_t n = strlen(redis_doc);
    rt_buf_t err = RT_BUF_INIT;
    for (size_t i = 0; i + 1 < n; i++) {
        node_config_t cfg;
        rt_buf_reset(&err);
        int rc = node_config_load_buffer(&cfg, "t.json", redis_doc, i, no_env, NULL, 0, &err);
        if (rc != RT_EINVAL)
            fail_msg("prefix %zu: rc %d", i, rc);
        node_config_cleanup(&cfg);
    }
    node_config_t cfg;
    assert_int_equal(node_config_load_buffer(&cfg, "t.json", redis_doc, n, no_env, NULL, 0, &err),
                     0);
    check_redis_doc(&cfg);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void test_redis_env(void **state)
{
    char *env[] = {
        "CENTRIFUGO_ENGINE_TYPE=redis",
        "CENTRIFUGO_ENGINE_REDIS_ADDRESS=redis://centrifugo:1",
        "ROTOR_ENGINE_REDIS_ADDRESS= redis://10.0.0.1:6379  10.0.0.2:6380 ",
        "ROTOR_ENGINE_REDIS_PREFIX=envp",
        "CENTRIFUGO_ENGINE_REDIS_PASSWORD=pw",
        "CENTRIFUGO_ENGINE_REDIS_USER=usr",
        "CENTRIFUGO_ENGINE_REDIS_DB=3",
        "CENTRIFUGO_ENGINE_REDIS_CONNECT_TIMEOUT=250ms",
        "CENTRIFUGO_ENGINE_REDIS_IO_TIMEOUT=2s",
        "CENTRIFUGO_ENGINE_REDIS_PRESENCE_TTL=90s",
        "CENTRIFUGO_ENGINE_REDIS_HISTORY_USE_LISTS=false",
        NULL,
    };
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    int rc =
        load_json(&cfg, "{\"engine\":{\"redis\":{\"address\":\"redis://file:1\"}}}", env, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_string_equal(cfg.engine_type, "redis");
    assert_int_equal(cfg.redis_addresses_count, 2);
    assert_string_equal(cfg.redis_addresses[0], "redis://10.0.0.1:6379");
    assert_string_equal(cfg.redis_addresses[1], "10.0.0.2:6380");
    assert_null(cfg.redis_addresses[2]);
    assert_string_equal(cfg.redis_prefix, "envp");
    assert_string_equal(cfg.redis_password, "pw");
    assert_string_equal(cfg.redis_user, "usr");
    assert_int_equal(cfg.redis_db, 3);
    assert_int_equal(cfg.redis_connect_timeout_ms, 250);
    assert_int_equal(cfg.redis_io_timeout_ms, 2000);
    assert_int_equal(cfg.redis_presence_ttl_ms, 90000);
    node_config_cleanup(&cfg);

    /* Flags win over the environment. */
    char *flags[] = {"engine.type=redis", "engine.redis.address=redis://flag:1 redis://flag:2"};
    rt_buf_reset(&err);
    rc = node_config_load_buffer(&cfg, NULL, NULL, 0, env, flags, 2, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_int_equal(cfg.redis_addresses_count, 2);
    assert_string_equal(cfg.redis_addresses[1], "redis://flag:2");
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

/* engine.redis.presence_user_mapping / presence_hash_field_ttl (SERVER.md §2.4, §3.8): off
 * by default, booleans in the file, ROTOR_ / CENTRIFUGO_ variables like every key. */
static void test_redis_presence_modes(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(load_json(&cfg, "{}", NULL, &err), 0);
    assert_false(cfg.redis_presence_user_mapping);
    assert_false(cfg.redis_presence_hash_field_ttl);
    node_config_cleanup(&cfg);

    int rc = load_json(&cfg,
                       "{\"engine\":{\"type\":\"redis\",\"redis\":{\"presence_user_mapping\":true,"
                       "\"presence_hash_field_ttl\":true}}}",
                       NULL, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_true(cfg.redis_presence_user_mapping);
    assert_true(cfg.redis_presence_hash_field_ttl);
    assert_int_equal(cfg.warnings, 0);
    node_config_cleanup(&cfg);

    char *env[] = {"CENTRIFUGO_ENGINE_REDIS_PRESENCE_USER_MAPPING=true",
                   "CENTRIFUGO_ENGINE_REDIS_PRESENCE_HASH_FIELD_TTL=true",
                   "ROTOR_ENGINE_REDIS_PRESENCE_HASH_FIELD_TTL=0", NULL};
    rc = load_json(&cfg, "{}", env, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_true(cfg.redis_presence_user_mapping);
    assert_false(cfg.redis_presence_hash_field_ttl); /* ROTOR_ wins */
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void test_redis_errors(void **state)
{
    static const struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"address\":[\"redis://a:1\",\"redis://"
         "b:x\"]}}}",
         "engine.redis.address[1]: "},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"address\":\"http://a:1\"}}}",
         "engine.redis.address[0]: "},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"address\":\"redis://"
         "a:1?tls_enabled=maybe\"}}}",
         "engine.redis.address[0]: "},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"address\":[]}}}",
         "engine.redis.address: must not be empty"},
        {"{\"engine\":{\"redis\":{\"address\":[1]}}}", "engine.redis.address: must be a string"},
        {"{\"engine\":{\"redis\":{\"address\":{}}}}", "engine.redis.address: must be a string"},
        {"{\"engine\":{\"redis\":{\"prefix\":\"\"}}}", "engine.redis.prefix: must not be empty"},
        {"{\"engine\":{\"redis\":{\"db\":-1}}}", "engine.redis.db: must not be negative"},
        {"{\"engine\":{\"redis\":{\"db\":\"1\"}}}", "engine.redis.db: must be an integer"},
        {"{\"engine\":{\"redis\":{\"connect_timeout\":\"0s\"}}}",
         "engine.redis.connect_timeout: must be positive"},
        {"{\"engine\":{\"redis\":{\"io_timeout\":\"x\"}}}", "engine.redis.io_timeout"},
        {"{\"engine\":{\"redis\":{\"presence_ttl\":\"-1s\"}}}", "engine.redis.presence_ttl"},
        {"{\"engine\":{\"redis\":5}}", "engine.redis: must be an object"},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"cluster_address\":[\"a:1,b:2\","
         "\"c:1,d\"]}}}",
         "engine.redis.cluster_address[1]: redis address: malformed Redis Cluster address \"d\""},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"cluster_address\":[\"\"]}}}",
         "engine.redis.cluster_address[0]: redis address: malformed Redis Cluster address"},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"db\":1,\"cluster_address\":[\"a:1\"]}}}",
         "engine.redis.cluster_address[0]: Redis Cluster has only db 0"},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"db\":1,\"address\":"
         "\"redis+cluster://a:1\"}}}",
         "engine.redis.address[0]: Redis Cluster has only db 0"},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"address\":"
         "\"redis+sentinel://a:1\"}}}",
         "engine.redis.address[0]: redis address: redis+sentinel:// needs sentinel_master_name"},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"sentinel_address\":[\"a:26379\"]}}}",
         "engine.redis.sentinel_address[0]: engine.redis.sentinel_master_name must be set"},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"sentinel_master_name\":\"m\","
         "\"sentinel_address\":[\"a\"]}}}",
         "engine.redis.sentinel_address[0]: redis address: malformed Redis Sentinel address"},
        {"{\"engine\":{\"redis\":{\"sentinel_master_name\":5}}}",
         "engine.redis.sentinel_master_name: must be a string"},
        {"{\"engine\":{\"redis\":{\"sentinel_address\":{}}}}",
         "engine.redis.sentinel_address: must be a string or an array of strings"},
        {"{\"engine\":{\"redis\":{\"history_use_lists\":true}}}",
         "engine.redis.history_use_lists: list history (history_use_lists) is not supported by "
         "this rotor build yet"},
        {"{\"engine\":{\"type\":\"redis\",\"redis\":{\"address\":\"rediss://a:1\","
         "\"tls\":{\"server_ca_pem\":\"/nonexistent\"}}}}",
         "engine.redis.tls.server_ca_pem: neither PEM"},
        {"{\"engine\":{\"redis\":{\"presence_user_mapping\":\"yes\"}}}",
         "engine.redis.presence_user_mapping"},
        {"{\"engine\":{\"redis\":{\"presence_hash_field_ttl\":1}}}",
         "engine.redis.presence_hash_field_ttl"},
        {"{\"broker\":{\"enabled\":true,\"type\":\"redis\"}}",
         "broker.enabled: separate broker / presence_manager sections are not supported yet"},
        {"{\"presence_manager\":{\"enabled\":true}}",
         "presence_manager.enabled: separate broker / presence_manager sections are not "
         "supported yet"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].json, NULL, cases[i].want);

    char *e1[] = {"CENTRIFUGO_ENGINE_TYPE=redis", "CENTRIFUGO_ENGINE_REDIS_CLUSTER_ADDRESS=a:1 b",
                  NULL};
    expect_error(NULL, e1, "engine.redis.cluster_address[1]: redis address: malformed");
    char *e2[] = {"CENTRIFUGO_ENGINE_TYPE=redis", "ROTOR_ENGINE_REDIS_SENTINEL_ADDRESS=a:26379",
                  NULL};
    expect_error(NULL, e2, "engine.redis.sentinel_address[0]: engine.redis.sentinel_master_name");
    char *e3[] = {"CENTRIFUGO_ENGINE_REDIS_HISTORY_USE_LISTS=true", NULL};
    expect_error(NULL, e3, "engine.redis.history_use_lists (env");
    char *e4[] = {"CENTRIFUGO_ENGINE_TYPE=redis", "CENTRIFUGO_ENGINE_REDIS_ADDRESS=a:1 b:c", NULL};
    expect_error(NULL, e4, "engine.redis.address[1]: ");
    char *e5[] = {"CENTRIFUGO_ENGINE_REDIS_ADDRESS=   ", NULL};
    expect_error(NULL, e5, "engine.redis.address (env CENTRIFUGO_ENGINE_REDIS_ADDRESS): must not");
    char *e6[] = {"CENTRIFUGO_BROKER_ENABLED=true", NULL};
    expect_error(NULL, e6, "separate broker / presence_manager sections are not supported yet");
    /* An address rds_addr_parse refuses: its message comes through. */
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT, direct = RT_BUF_INIT;
    rds_addr_t a;
    assert_int_equal(rds_addr_parse("redis://h:6379?tls_enabled=maybe", &a, &direct), RT_EINVAL);
    rds_addr_cleanup(&a);
    rt_buf_append_byte(&direct, 0);
    assert_int_equal(load_json(&cfg,
                               "{\"engine\":{\"type\":\"redis\",\"redis\":{\"address\":\"redis://"
                               "h:6379?tls_enabled=maybe\"}}}",
                               NULL, &err),
                     RT_EINVAL);
    rt_buf_append_byte(&err, 0);
    assert_true(direct.len > 1);
    assert_non_null(strstr((const char *)err.p, (const char *)direct.p));
    node_config_cleanup(&cfg);

    /* A memory node does not dial engine.redis, so a bad leftover address is not an error. */
    assert_int_equal(
        load_json(&cfg, "{\"engine\":{\"redis\":{\"address\":\"redis://h?tls_enabled=maybe\"}}}",
                  NULL, &err),
        0);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
    rt_buf_cleanup(&direct);
}

static void test_redis_shards(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    int rc = load_json(&cfg, redis_doc, NULL, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    rds_addr_t *a = NULL;
    size_t n = 0;
    rt_buf_reset(&err);
    assert_int_equal(node_config_redis_shards(&cfg, &a, &n, &err), 0);
    assert_int_equal(n, 3);
    /* engine.redis.* applied where the URL says nothing */
    assert_string_equal(a[0].host, "10.0.0.1");
    assert_int_equal(a[0].port, 6379);
    assert_string_equal(a[0].user, "u");
    assert_string_equal(a[0].password, "p");
    assert_int_equal(a[0].db, 2);
    assert_int_equal(a[0].connect_timeout_ms, 2000);
    assert_int_equal(a[0].io_timeout_ms, 500);
    assert_string_equal(a[1].host, "10.0.0.2");
    assert_int_equal(a[1].port, 6380);
    assert_string_equal(a[1].password, "p");
    assert_int_equal(a[1].db, 2);
    /* the URL's own values win */
    assert_string_equal(a[2].user, "u2");
    assert_string_equal(a[2].password, "p2");
    assert_int_equal(a[2].db, 5);
    assert_int_equal(a[2].connect_timeout_ms, 3000);
    assert_int_equal(a[2].io_timeout_ms, 7000);
    for (size_t i = 0; i < n; i++)
        rds_addr_cleanup(&a[i]);
    rt_free(a);

    /* db given as a query option, and an explicit default value, both win too. */
    node_config_cleanup(&cfg);
    assert_int_equal(
        load_json(
            &cfg,
            "{\"engine\":{\"type\":\"redis\",\"redis\":{\"db\":4,"
            "\"io_timeout\":\"9s\",\"address\":["
            "\"redis://h:1?db=0&io_timeout=4s\",\"redis://h:2/0\","
            "\"unix:///tmp/r.sock\",\"redis://:a@b@h:3?dial_timeout=5s\",\"REDIS://h:4/7\"]}}}",
            NULL, &err),
        0);
    assert_int_equal(node_config_redis_shards(&cfg, &a, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_int_equal(a[0].db, 0);
    assert_int_equal(a[0].io_timeout_ms, 4000);
    assert_int_equal(a[1].db, 0);
    assert_int_equal(a[1].io_timeout_ms, 9000);
    assert_string_equal(a[2].unix_path, "/tmp/r.sock");
    assert_int_equal(a[2].db, 4);
    assert_string_equal(a[3].host, "h");
    assert_string_equal(a[3].password, "a@b");
    assert_int_equal(a[3].db, 4);
    assert_int_equal(a[3].connect_timeout_ms, 5000);
    assert_int_equal(a[3].io_timeout_ms, 9000);
    assert_int_equal(a[4].db, 7);
    for (size_t i = 0; i < n; i++)
        rds_addr_cleanup(&a[i]);
    rt_free(a);

    /* A config built by hand (not loaded) still gets a message naming the element. */
    rt_free(cfg.redis_addresses[1]);
    cfg.redis_addresses[1] = rt_strdup("redis://h:2?tls_enabled=maybe");
    rt_buf_reset(&err);
    rds_addr_t dummy;
    a = &dummy; /* must be reset on failure */
    assert_int_equal(node_config_redis_shards(&cfg, &a, &n, &err), RT_EINVAL);
    assert_null(a);
    assert_int_equal(n, 0);
    rt_buf_append_byte(&err, 0);
    assert_non_null(strstr((const char *)err.p, "engine.redis.address[1]: "));
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void free_shards(rds_addr_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rds_addr_cleanup(&a[i]);
    rt_free(a);
}

static void test_redis_cluster_sentinel_shards(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    rds_addr_t *a = NULL;
    size_t n = 0;

    /* cluster_address wins over sentinel_address and address; one element per shard. */
    int rc = load_json(&cfg,
                       "{\"engine\":{\"type\":\"redis\",\"redis\":{\"address\":\"redis://x:1\","
                       "\"user\":\"u\",\"password\":\"p\",\"io_timeout\":\"2s\","
                       "\"cluster_address\":[\"c1:7000,c2:7001\",\" c3:7002 \"],"
                       "\"sentinel_address\":[\"s:26379\"],\"sentinel_master_name\":\"m\"}}}",
                       NULL, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_int_equal(cfg.redis_cluster_addresses_count, 2);
    assert_string_equal(cfg.redis_cluster_addresses[1], " c3:7002 ");
    assert_int_equal(cfg.warnings, 0);
    assert_int_equal(node_config_redis_shards(&cfg, &a, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(a[0].mode, RDS_MODE_CLUSTER);
    assert_int_equal(a[0].nseeds, 2);
    assert_string_equal(a[0].seeds[0], "c1:7000");
    assert_string_equal(a[0].seeds[1], "c2:7001");
    assert_string_equal(a[0].host, "c1");
    assert_int_equal(a[0].port, 7000);
    assert_string_equal(a[0].user, "u");
    assert_string_equal(a[0].password, "p");
    assert_int_equal(a[0].io_timeout_ms, 2000);
    assert_int_equal(a[0].db, 0);
    assert_int_equal(a[1].nseeds, 1);
    assert_string_equal(a[1].seeds[0], "c3:7002");
    free_shards(a, n);
    node_config_cleanup(&cfg);

    /* sentinel_address over address, with the sentinel_* keys; db applies to the master. */
    rt_buf_reset(&err);
    rc = load_json(&cfg,
                   "{\"engine\":{\"type\":\"redis\",\"redis\":{\"address\":\"redis://x:1\","
                   "\"password\":\"mp\",\"db\":3,\"sentinel_address\":[\"s1:26379,s2:26380\","
                   "\"s3:26381\"],\"sentinel_master_name\":\"mymaster\",\"sentinel_user\":\"su\","
                   "\"sentinel_password\":\"sp\",\"sentinel_client_name\":\"x\"}}}",
                   NULL, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_int_equal(cfg.warnings, 1); /* sentinel_client_name: ignored */
    assert_string_equal(cfg.redis_sentinel_master_name, "mymaster");
    assert_int_equal(node_config_redis_shards(&cfg, &a, &n, &err), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].mode, RDS_MODE_SENTINEL);
        assert_string_equal(a[i].sentinel_master, "mymaster");
        assert_string_equal(a[i].sentinel_user, "su");
        assert_string_equal(a[i].sentinel_password, "sp");
        assert_string_equal(a[i].password, "mp");
        assert_string_equal(a[i].user, "");
        assert_int_equal(a[i].db, 3);
    }
    assert_int_equal(a[0].nseeds, 2);
    assert_string_equal(a[0].seeds[1], "s2:26380");
    assert_string_equal(a[1].seeds[0], "s3:26381");
    free_shards(a, n);
    node_config_cleanup(&cfg);

    /* URLs in address: engine-wide values fill what the URL leaves unset. */
    rt_buf_reset(&err);
    rc = load_json(&cfg,
                   "{\"engine\":{\"type\":\"redis\",\"redis\":{\"password\":\"mp\",\"db\":2,"
                   "\"address\":[\"redis+sentinel://s1:26379?sentinel_master_name=m&addr=s2:1&"
                   "sentinel_password=sp\",\"redis+cluster://c1:1/0?addr=c2:2\"]}}}",
                   NULL, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_int_equal(node_config_redis_shards(&cfg, &a, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(a[0].mode, RDS_MODE_SENTINEL);
    assert_int_equal(a[0].nseeds, 2);
    assert_string_equal(a[0].password, "mp");
    assert_string_equal(a[0].sentinel_password, "sp");
    assert_int_equal(a[0].db, 2);
    assert_int_equal(a[1].mode, RDS_MODE_CLUSTER);
    assert_int_equal(a[1].db, 0);
    assert_string_equal(a[1].seeds[1], "c2:2");
    free_shards(a, n);
    node_config_cleanup(&cfg);

    /* Environment: space-separated shards, comma-separated seeds. */
    char *env[] = {"CENTRIFUGO_ENGINE_TYPE=redis",
                   "CENTRIFUGO_ENGINE_REDIS_SENTINEL_ADDRESS=a:1,b:2 c:3",
                   "CENTRIFUGO_ENGINE_REDIS_SENTINEL_MASTER_NAME=mm", NULL};
    rt_buf_reset(&err);
    rc = node_config_load_buffer(&cfg, NULL, NULL, 0, env, NULL, 0, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_int_equal(node_config_redis_shards(&cfg, &a, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(a[0].nseeds, 2);
    assert_string_equal(a[1].seeds[0], "c:3");
    assert_string_equal(a[1].sentinel_master, "mm");
    free_shards(a, n);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

/* ---- consumers ------------------------------------------------------------------------- */

static void test_consumers(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    /* Defaults of a bare element; other types are kept (never enabled). */
    int rc = load_json(&cfg,
                       "{\"consumers\":[{\"name\":\"a1\",\"type\":\"redis_stream\"},"
                       "{\"name\":\"k1\",\"type\":\"kafka\",\"kafka\":{\"brokers\":[\"x\"]}}]}",
                       NULL, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_int_equal(cfg.consumers_count, 2);
    const node_consumer_t *c = &cfg.consumers[0];
    assert_false(c->enabled);
    assert_int_equal(c->type_id, NODE_CONSUMER_REDIS_STREAM);
    assert_string_equal(c->redis_stream.address, "redis://127.0.0.1:6379");
    assert_int_equal(c->redis_stream.streams_count, 0);
    assert_non_null(c->redis_stream.streams);
    assert_null(c->redis_stream.streams[0]);
    assert_string_equal(c->redis_stream.consumer_group, "");
    assert_int_equal(c->redis_stream.visibility_timeout_ms, 30000);
    assert_int_equal(c->redis_stream.num_workers, 1);
    assert_int_equal(c->redis_stream.db, 0);
    assert_string_equal(c->redis_stream.payload_value, "payload");
    assert_string_equal(c->redis_stream.method_value, "method");
    assert_false(c->redis_stream.publication_data_mode);
    assert_string_equal(c->redis_stream.channels_value, "centrifugo-channels");
    assert_string_equal(c->redis_stream.idempotency_key_value, "centrifugo-idempotency-key");
    assert_string_equal(c->redis_stream.delta_value, "centrifugo-delta");
    assert_string_equal(c->redis_stream.version_value, "centrifugo-version");
    assert_string_equal(c->redis_stream.version_epoch_value, "centrifugo-version-epoch");
    assert_string_equal(c->redis_stream.tags_value_prefix, "centrifugo-tag-");
    assert_int_equal(cfg.consumers[1].type_id, NODE_CONSUMER_OTHER);
    assert_string_equal(cfg.consumers[1].type, "kafka");
    assert_int_equal(cfg.warnings, 1); /* the kafka object */
    node_config_cleanup(&cfg);

    /* Environment: the array as JSON, then per-element overrides by name. */
    char *env[] = {
        "CENTRIFUGO_CONSUMERS=[{\"name\":\"my_stream\",\"type\":\"redis_stream\"}]",
        "CENTRIFUGO_CONSUMERS_MY_STREAM_REDIS_STREAM_STREAMS=s1 s2",
        "ROTOR_CONSUMERS_MY_STREAM_REDIS_STREAM_CONSUMER_GROUP=grp",
        "CENTRIFUGO_CONSUMERS_MY_STREAM_REDIS_STREAM_ADDRESS=redis://r:1",
        "CENTRIFUGO_CONSUMERS_MY_STREAM_REDIS_STREAM_NUM_WORKERS=3",
        "CENTRIFUGO_CONSUMERS_MY_STREAM_REDIS_STREAM_PUBLICATION_DATA_MODE_ENABLED=true",
        "CENTRIFUGO_CONSUMERS_MY_STREAM_REDIS_STREAM_PUBLICATION_DATA_MODE_CHANNELS_VALUE=chv",
        NULL,
    };
    rc = load_json(&cfg, NULL, env, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    assert_int_equal(cfg.consumers_count, 1);
    c = &cfg.consumers[0];
    assert_string_equal(c->name, "my_stream");
    assert_int_equal(c->redis_stream.streams_count, 2);
    assert_string_equal(c->redis_stream.streams[0], "s1");
    assert_string_equal(c->redis_stream.consumer_group, "grp");
    assert_string_equal(c->redis_stream.address, "redis://r:1");
    assert_int_equal(c->redis_stream.num_workers, 3);
    assert_true(c->redis_stream.publication_data_mode);
    assert_string_equal(c->redis_stream.channels_value, "chv");
    assert_int_equal(cfg.warnings, 0);
    node_config_cleanup(&cfg);

    /* Space-separated names create empty elements (a type is then required). */
    char *env2[] = {"CENTRIFUGO_CONSUMERS=ab cd", "CENTRIFUGO_CONSUMERS_AB_TYPE=redis_stream",
                    "CENTRIFUGO_CONSUMERS_CD_TYPE=aws_sqs", NULL};
    assert_int_equal(load_json(&cfg, NULL, env2, &err), 0);
    assert_int_equal(cfg.consumers_count, 2);
    assert_string_equal(cfg.consumers[1].name, "cd");
    assert_int_equal(cfg.consumers[1].type_id, NODE_CONSUMER_OTHER);
    node_config_cleanup(&cfg);

    /* An enabled, valid consumer loads (node/consumer.c runs it). */
    const char *on = "{\"consumers\":[{\"name\":\"on\",\"enabled\":true,\"type\":\"redis_stream\","
                     "\"redis_stream\":{\"streams\":[\"s\"],\"consumer_group\":\"g\"}}]}";
    assert_int_equal(load_json(&cfg, on, NULL, &err), 0);
    assert_true(cfg.consumers[0].enabled);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void test_consumer_errors(void **state)
{
    static const struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"{\"consumers\":{}}", "consumers: must be an array"},
        {"{\"consumers\":[1]}", "consumers[0]: must be an object"},
        {"{\"consumers\":[{\"name\":\"a-b\",\"type\":\"redis_stream\"}]}",
         "consumers[0].name: invalid consumer name"},
        {"{\"consumers\":[{\"type\":\"redis_stream\"}]}", "consumers[0].name"},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"kafka\"},{\"name\":\"ab\",\"type\":"
         "\"kafka\"}]}",
         "consumers[1].name: duplicate"},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"redis\"}]}",
         "consumers[0].type: unknown consumer type \"redis\""},
        {"{\"consumers\":[{\"name\":\"ab\"}]}", "consumers[0].type: unknown consumer type \"\""},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"kafka\",\"enabled\":true}]}",
         "consumers[0].type: \"kafka\" consumers are not supported by rotor yet"},
        {"{\"consumers\":[{\"name\":\"ab\",\"enabled\":\"yes\"}]}",
         "consumers[0].enabled: must be a boolean"},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":[]}]}",
         "consumers[0].redis_stream: must be an object"},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"redis_stream\",\"enabled\":true}]}",
         "consumers[0].redis_stream.streams: required"},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"redis_stream\",\"enabled\":true,"
         "\"redis_stream\":{\"streams\":[\"\"]}}]}",
         "consumers[0].redis_stream.streams: stream keys must not be empty"},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"redis_stream\",\"enabled\":true,"
         "\"redis_stream\":{\"streams\":[\"s\"]}}]}",
         "consumers[0].redis_stream.consumer_group: required"},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"redis_stream\",\"enabled\":true,"
         "\"redis_stream\":{\"streams\":[\"s\"],\"consumer_group\":\"g\","
         "\"publication_data_mode\":{\"enabled\":true,\"channels_value\":\"\"}}}]}",
         "consumers[0].redis_stream.publication_data_mode.channels_value: required"},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"redis_stream\",\"enabled\":true,"
         "\"redis_stream\":{\"streams\":[\"s\"],\"consumer_group\":\"g\","
         "\"address\":\"redis://x:1?tls_enabled=maybe\"}}]}",
         "consumers[0].redis_stream.address: "},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":{\"address\":[\"a:1\",\"b:2\"]}}]}",
         "consumers[0].redis_stream.address: must be exactly one address"},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":{\"address\":[]}}]}",
         "consumers[0].redis_stream.address: must be exactly one address"},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":{\"num_workers\":0}}]}",
         "consumers[0].redis_stream.num_workers: must be >= 1"},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":{\"visibility_timeout\":\"0s\"}}]}",
         "consumers[0].redis_stream.visibility_timeout: must be positive"},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":{\"payload_value\":\"\"}}]}",
         "consumers[0].redis_stream.payload_value: must not be empty"},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":{\"streams\":[1]}}]}",
         "consumers[0].redis_stream.streams: must be a string or an array of strings"},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":{\"force_resp2\":1}}]}",
         "consumers[0].redis_stream.force_resp2: must be a boolean"},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":{\"cluster_address\":[\"a:1\"]}}]}",
         "consumers[0].redis_stream.cluster_address: Redis Cluster is not supported"},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":{\"sentinel_address\":[\"a:1\"]}}]}",
         "consumers[0].redis_stream.sentinel_address: Redis Sentinel keys are not supported for "
         "consumers"},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"redis_stream\","
         "\"enabled\":true,\"redis_stream\":{\"address\":\"redis+cluster://a:1\","
         "\"streams\":[\"s\"],\"consumer_group\":\"g\"}}]}",
         "consumers[0].redis_stream.address: Redis Cluster is not supported for consumers"},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"redis_stream\",\"enabled\":true,"
         "\"redis_stream\":{\"streams\":[\"s\"],\"consumer_group\":\"g\","
         "\"tls\":{\"enabled\":true,\"server_ca_pem\":\"/nonexistent/ca.pem\"}}}]}",
         "consumers[ab].redis_stream.tls.server_ca_pem: neither PEM, base64 PEM nor a readable "
         "file"},
        {"{\"consumers\":[{\"name\":\"ab\",\"type\":\"redis_stream\",\"enabled\":true,"
         "\"redis_stream\":{\"streams\":[\"s\"],\"consumer_group\":\"g\","
         "\"address\":\"unix:///tmp/r.sock\",\"tls\":{\"enabled\":true}}}]}",
         "TLS is not supported over unix:// sockets (consumers[ab].redis_stream.tls)"},
        {"{\"consumers\":[{\"name\":\"ab\",\"redis_stream\":{\"tls\":{\"enabled\":1}}}]}",
         "consumers[0].redis_stream.tls.enabled: must be a boolean"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i].json, NULL, cases[i].want);

    char *e1[] = {"CENTRIFUGO_CONSUMERS=[{", NULL};
    expect_error(NULL, e1, "consumers (env CENTRIFUGO_CONSUMERS): invalid JSON array");
    char *e2[] = {"CENTRIFUGO_CONSUMERS=ab", "CENTRIFUGO_CONSUMERS_AB_TYPE=redis_stream",
                  "CENTRIFUGO_CONSUMERS_AB_REDIS_STREAM_NUM_WORKERS=x", NULL};
    expect_error(NULL, e2,
                 "consumers[0].redis_stream.num_workers (env "
                 "CENTRIFUGO_CONSUMERS_AB_REDIS_STREAM_NUM_WORKERS)");
    char *e3[] = {"CENTRIFUGO_CONSUMERS=ab", "CENTRIFUGO_CONSUMERS_AB_TYPE=redis_stream",
                  "CENTRIFUGO_CONSUMERS_AB_REDIS_STREAM_ADDRESS=a:1 b:2", NULL};
    expect_error(NULL, e3, "consumers[0].redis_stream.address (env");
    char *e4[] = {"CENTRIFUGO_CONSUMERS=ab", "CENTRIFUGO_CONSUMERS_AB_TYPE=redis_stream",
                  "CENTRIFUGO_CONSUMERS_AB_REDIS_STREAM_SENTINEL_ADDRESS=a:1", NULL};
    expect_error(NULL, e4, "consumers[0].redis_stream.sentinel_address (env");
}

static void test_consumer_redis_addr(void **state)
{
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    int rc = load_json(&cfg, redis_doc, NULL, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("load: %s", (const char *)err.p);
    rds_addr_t a;
    assert_int_equal(node_consumer_redis_addr(&cfg.consumers[0], &a, &err), 0);
    assert_string_equal(a.host, "10.0.0.9");
    assert_int_equal(a.db, 1);
    assert_string_equal(a.password, "cp");
    assert_string_equal(a.user, "");
    assert_int_equal(a.connect_timeout_ms, 1000);
    assert_false(a.tls.enabled);
    rds_addr_cleanup(&a);

    /* The consumer's tls object applies as engine.redis.tls does; rediss:// turns TLS on. */
    node_tls_opts_t *t = &cfg.consumers[0].redis_stream.tls;
    t->enabled = true;
    rt_free(t->server_name);
    t->server_name = rt_strdup("redis.internal");
    assert_int_equal(node_consumer_redis_addr(&cfg.consumers[0], &a, &err), 0);
    assert_true(a.tls.enabled);
    assert_string_equal(a.tls.server_name, "redis.internal");
    rds_addr_cleanup(&a);
    t->enabled = false;
    rt_free(cfg.consumers[0].redis_stream.address);
    cfg.consumers[0].redis_stream.address = rt_strdup("rediss://10.0.0.9:6390");
    assert_int_equal(node_consumer_redis_addr(&cfg.consumers[0], &a, &err), 0);
    assert_true(a.tls.enabled);
    assert_int_equal(a.port, 6390);
    rds_addr_cleanup(&a);

    rt_free(cfg.consumers[0].redis_stream.address);
    cfg.consumers[0].redis_stream.address = rt_strdup("redis://x?tls_enabled=maybe");
    rt_buf_reset(&err);
    assert_int_equal(node_consumer_redis_addr(&cfg.consumers[0], &a, &err), RT_EINVAL);
    rds_addr_cleanup(&a);
    rt_buf_append_byte(&err, 0);
    assert_non_null(strstr((const char *)err.p, "consumers[api_stream].redis_stream.address: "));
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

static void test_generate(void **state)
{
    rt_buf_t a = RT_BUF_INIT, b = RT_BUF_INIT, err = RT_BUF_INIT;
    node_config_generate(&a);
    node_config_generate(&b);
    assert_false(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
    node_config_t cfg;
    assert_int_equal(
        node_config_load_buffer(&cfg, "gen.json", (const char *)a.p, a.len, no_env, NULL, 0, &err),
        0);
    assert_int_equal(strlen(cfg.token.hmac_secret_key), 64);
    assert_int_equal(strlen(cfg.http_api_key), 36);
    assert_int_equal(cfg.warnings, 0);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&a);
    rt_buf_cleanup(&b);
    rt_buf_cleanup(&err);
}

/* defaultenv output, fed back as the environment, loads cleanly to the defaults. */
static void test_default_env_round_trip(void **state)
{
    rt_buf_t out = RT_BUF_INIT, err = RT_BUF_INIT;
    node_config_default_env(&out);
    rt_buf_append_byte(&out, 0);
    char *text = (char *)out.p;
    assert_non_null(strstr(text, "CENTRIFUGO_HTTP_SERVER_PORT=8000\n"));
    assert_non_null(strstr(text, "CENTRIFUGO_CLIENT_PING_INTERVAL=25s\n"));
    assert_non_null(strstr(text, "CENTRIFUGO_CHANNEL_HISTORY_META_TTL=720h\n"));
    assert_non_null(strstr(text, "CENTRIFUGO_LOG_LEVEL=info\n"));
    assert_non_null(strstr(text, "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_PRESENCE=false\n"));
    assert_non_null(strstr(text, "CENTRIFUGO_SHUTDOWN_DRAIN_DELAY=0s\n"));
    assert_non_null(strstr(text, "CENTRIFUGO_ENGINE_REDIS_ADDRESS=redis://127.0.0.1:6379\n"));
    assert_non_null(strstr(text, "CENTRIFUGO_ENGINE_REDIS_PREFIX=rotor\n"));
    assert_non_null(strstr(text, "CENTRIFUGO_ENGINE_REDIS_IO_TIMEOUT=4s\n"));
    assert_non_null(strstr(text, "CENTRIFUGO_ENGINE_REDIS_PRESENCE_TTL=1m\n"));
    assert_non_null(strstr(text, "CENTRIFUGO_CONSUMERS=\n"));

    char *env[256];
    size_t n = 0;
    for (char *line = strtok(text, "\n"); line != NULL && n < 255; line = strtok(NULL, "\n"))
        env[n++] = line;
    env[n] = NULL;
    assert_true(n > 60);
    node_config_t cfg;
    int rc = node_config_load_buffer(&cfg, NULL, NULL, 0, env, NULL, 0, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("defaultenv does not load: %s", (const char *)err.p);
    assert_int_equal(cfg.warnings, 0);
    assert_int_equal(cfg.http_port, 8000);
    assert_int_equal(cfg.ping_interval_ms, 25000);
    assert_int_equal(cfg.channel_history_meta_ttl_ms, 720LL * 3600 * 1000);
    assert_int_equal(cfg.private_prefix, '$');
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&out);
    rt_buf_cleanup(&err);
}

static void test_example_file(void **state)
{
    /* The sample config lives at <repo>/deploy; __FILE__ is <repo>/tests/unit/node/... */
    char path[4096];
    snprintf(path, sizeof(path), "%s", __FILE__);
    char *t = strstr(path, "tests/unit/node/test_config.c");
    if (t == NULL)
        skip();
    snprintf(t, sizeof(path) - (size_t)(t - path), "deploy/config.example.json");
    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    int rc = node_config_load(&cfg, path, no_env, NULL, 0, &err);
    rt_buf_append_byte(&err, 0);
    if (rc != 0)
        fail_msg("example: %s", (const char *)err.p);
    assert_int_equal(cfg.warnings, 0);
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
}

int run_config(void);
int run_config(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_v6),
        cmocka_unit_test(test_truncated_at_every_offset),
        cmocka_unit_test(test_file_on_disk),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_env_errors_name_key),
        cmocka_unit_test(test_flags_win),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_unknown_and_unsupported_warn),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_resolution),
        cmocka_unit_test(test_user_limited),
        cmocka_unit_test(test_validate_name),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_default_env_round_trip),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_redis_file),
        cmocka_unit_test(test_redis_truncated_at_every_offset),
        cmocka_unit_test(test_redis_env),
        cmocka_unit_test(test_redis_errors),
        cmocka_unit_test(test_redis_presence_modes),
        cmocka_unit_test(test_redis_shards),
        cmocka_unit_test(test_redis_cluster_sentinel_shards),
        cmocka_unit_test(test_consumers),
        cmocka_unit_test(test_consumer_errors),
        cmocka_unit_test(test_consumer_redis_addr),
    };
    return cmocka_run_group_tests_name("config", tests, quiet_setup, quiet_teardown);
}

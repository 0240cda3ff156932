#include "node/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/rds.h"
#include "broker/rds_tls.h"
#include "node/base/alloc.h"
#include "node/base/b64.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "node/base/log.h"
#include "node/base/rand.h"
#include "node/base/time.h"

extern char **environ;

/* Config files are small; anything larger is a mistake, not a config. */
#define MAX_FILE_BYTES (16u << 20)

/* ---- key tables ------------------------------------------------------------------------ */

typedef enum kind {
    K_BOOL,
    K_INT,      /* int field, [min, max] */
    K_I64,      /* int64_t field, [min, max] */
    K_DUR,      /* int64_t ms, >= min; F_SECONDS: whole seconds */
    K_STR,      /* char * */
    K_PREFIX,   /* char *, must start with '/' */
    K_CHAR,     /* char from a string of length 0 or 1 */
    K_PORT,     /* int 0..65535 from a number or a numeric string */
    K_ORIGINS,  /* client.allowed_origins */
    K_LOGLEVEL, /* int RT_LOG_* */
    K_DATAFMT,  /* node_data_format_t */
    K_ERRMODE,  /* bool: error_mode == "transport" */
    K_RECMODE,  /* bool: force_recovery_mode == "cache" */
    K_DELTA,    /* bool: allowed_delta_types contains "fossil" */
    K_SUBTYPE,  /* subscription_type: validated, nothing stored */
    K_STRV,     /* char ** (NULL-terminated) at off + size_t count at off2, >= min elements;
                   file: a string or an array of strings; env/flag: space-separated */
    K_ADDR1,    /* char *: one string, or an array of exactly one string */
    K_IGNBOOL,  /* a boolean, validated, nothing stored */
} kind_t;

#define F_SECONDS  1u
#define F_NONEMPTY 2u /* K_STR: "" is refused */

typedef struct key_def {
    const char *path; /* dotted path; relative to the namespace object for ns keys */
    kind_t kind;
    size_t off; /* into node_config_t, or node_ns_opts_t for ns keys */
    int64_t min;
    int64_t max;
    unsigned flags;
    size_t off2; /* K_STRV: the count field */
} key_def_t;

#define C_(path, kind, field, min, max, flags)                                                     \
    {                                                                                              \
        path, kind, offsetof(node_config_t, field), min, max, flags, 0                             \
    }
#define CB(path, field)      C_(path, K_BOOL, field, 0, 0, 0)
#define CS(path, field)      C_(path, K_STR, field, 0, 0, 0)
#define CP(path, field)      C_(path, K_PREFIX, field, 0, 0, 0)
#define CI(path, field, min) C_(path, K_I64, field, min, INT64_MAX, 0)
#define CD(path, field, min) C_(path, K_DUR, field, min, 0, 0)
#define CC(path, field)      C_(path, K_CHAR, field, 0, 0, 0)
#define CV(path, field, count, min)                                                                \
    {                                                                                              \
        path, K_STRV, offsetof(node_config_t, field), min, 0, 0, offsetof(node_config_t, count)    \
    }

#define TOKEN_KEYS(pre, f)                                                                         \
    CS(pre ".hmac_secret_key", f.hmac_secret_key),                                                 \
        CS(pre ".hmac_previous_secret_key", f.hmac_previous_secret_key),                           \
        CI(pre ".hmac_previous_secret_key_valid_until", f.hmac_previous_secret_key_valid_until,    \
           0),                                                                                     \
        CS(pre ".rsa_public_key", f.rsa_public_key),                                               \
        CS(pre ".ecdsa_public_key", f.ecdsa_public_key), CS(pre ".audience", f.audience),          \
        CS(pre ".audience_regex", f.audience_regex), CS(pre ".issuer", f.issuer),                  \
        CS(pre ".issuer_regex", f.issuer_regex), CS(pre ".user_id_claim", f.user_id_claim)

/* A TLS object (SERVER.md §2.4). */
#define TLS_KEYS(pre, f)                                                                           \
    CB(pre ".enabled", f.enabled), CB(pre ".insecure_skip_verify", f.insecure_skip_verify),        \
        CS(pre ".server_name", f.server_name), CS(pre ".cert_pem", f.cert_pem),                    \
        CS(pre ".key_pem", f.key_pem), CS(pre ".server_ca_pem", f.server_ca_pem),                  \
        CS(pre ".client_ca_pem", f.client_ca_pem)

static const key_def_t top_keys[] = {
    CS("http_server.address", http_address),
    C_("http_server.port", K_PORT, http_port, 0, 65535, 0),
    CS("http_server.internal_address", http_internal_address),
    C_("http_server.internal_port", K_PORT, http_internal_port, 0, 65535, 0),
    C_("log.level", K_LOGLEVEL, log_level, 0, 0, 0),
    CS("engine.type", engine_type),
    CV("engine.redis.address", redis_addresses, redis_addresses_count, 1),
    CV("engine.redis.cluster_address", redis_cluster_addresses, redis_cluster_addresses_count, 0),
    CV("engine.redis.sentinel_address", redis_sentinel_addresses, redis_sentinel_addresses_count,
       0),
    CS("engine.redis.sentinel_master_name", redis_sentinel_master_name),
    CS("engine.redis.sentinel_user", redis_sentinel_user),
    CS("engine.redis.sentinel_password", redis_sentinel_password),
    C_("engine.redis.prefix", K_STR, redis_prefix, 0, 0, F_NONEMPTY),
    CS("engine.redis.user", redis_user),
    CS("engine.redis.password", redis_password),
    C_("engine.redis.db", K_I64, redis_db, 0, INT_MAX, 0),
    CD("engine.redis.connect_timeout", redis_connect_timeout_ms, 1),
    CD("engine.redis.io_timeout", redis_io_timeout_ms, 1),
    CD("engine.redis.presence_ttl", redis_presence_ttl_ms, 1),
    CB("engine.redis.presence_user_mapping", redis_presence_user_mapping),
    CB("engine.redis.presence_hash_field_ttl", redis_presence_hash_field_ttl),
    CB("engine.redis.force_resp2", redis_force_resp2),
    CB("engine.redis.sharded_pubsub", redis_sharded_pubsub),
    TLS_KEYS("engine.redis.tls", redis_tls),
    TLS_KEYS("engine.redis.sentinel_tls", redis_sentinel_tls),
    C_("workers", K_INT, workers, 1, 4096, 0),
    C_("client.allowed_origins", K_ORIGINS, allowed_origins, 0, 0, 0),
    TOKEN_KEYS("client.token", token),
    CB("client.subscription_token.enabled", subscription_token_enabled),
    TOKEN_KEYS("client.subscription_token", subscription_token),
    CB("client.allow_anonymous_connect_without_token", allow_anonymous_connect_without_token),
    CB("client.disallow_anonymous_connection_tokens", disallow_anonymous_connection_tokens),
    CB("client.insecure", client_insecure),
    CB("client.insecure_skip_token_signature_verify", insecure_skip_token_signature_verify),
    CB("client.tcp_nodelay", tcp_nodelay),
    CD("client.ping_interval", ping_interval_ms, INT64_MIN),
    CD("client.pong_timeout", pong_timeout_ms, INT64_MIN),
    CI("client.queue_max_size", queue_max_size, 1),
    CI("client.channel_limit", channel_limit, 0),
    CI("client.user_connection_limit", user_connection_limit, 0),
    CI("client.connection_limit", connection_limit, 0),
    CI("client.connection_rate_limit", connection_rate_limit, 0),
    CD("client.stale_close_delay", stale_close_delay_ms, 0),
    CD("client.expired_close_delay", expired_close_delay_ms, 0),
    CD("client.expired_sub_close_delay", expired_sub_close_delay_ms, 0),
    CD("client.presence_update_interval", presence_update_interval_ms, 1),
    CD("client.channel_position_check_delay", channel_position_check_delay_ms, 0),
    CI("client.history_max_publication_limit", history_max_publication_limit, 0),
    CI("client.recovery_max_publication_limit", recovery_max_publication_limit, 0),
    CB("client.connect_include_server_time", connect_include_server_time),
    CB("client.subscribe_to_user_personal_channel.enabled", personal_channel_enabled),
    CS("client.subscribe_to_user_personal_channel.personal_channel_namespace",
       personal_channel_namespace),
    CB("client.subscribe_to_user_personal_channel.single_connection", personal_single_connection),
    C_("channel.history_meta_ttl", K_DUR, channel_history_meta_ttl_ms, 0, 0, F_SECONDS),
    C_("channel.publication_data_format", K_DATAFMT, publication_data_format, 0, 0, 0),
    CI("channel.max_length", channel_max_length, 1),
    CC("channel.private_prefix", private_prefix),
    CC("channel.namespace_boundary", namespace_boundary),
    CC("channel.user_boundary", user_boundary),
    CC("channel.user_separator", user_separator),
    CB("http_api.disabled", http_api_disabled),
    CP("http_api.handler_prefix", http_api_prefix),
    CS("http_api.key", http_api_key),
    CB("http_api.insecure", http_api_insecure),
    C_("http_api.error_mode", K_ERRMODE, http_api_error_mode_transport, 0, 0, 0),
    CB("http_api.external", http_api_external),
    CB("websocket.disabled", websocket_disabled),
    CP("websocket.handler_prefix", websocket_prefix),
    CI("websocket.message_size_limit", websocket_message_size_limit, 1),
    CD("websocket.write_timeout", websocket_write_timeout_ms, 0),
    CB("http_stream.enabled", http_stream_enabled),
    CP("http_stream.handler_prefix", http_stream_prefix),
    CI("http_stream.max_request_body_size", http_stream_max_body, 1),
    CB("sse.enabled", sse_enabled),
    CP("sse.handler_prefix", sse_prefix),
    CI("sse.max_request_body_size", sse_max_body, 1),
    CP("emulation.handler_prefix", emulation_prefix),
    CI("emulation.max_request_body_size", emulation_max_body, 1),
    CB("uni_websocket.enabled", uni_websocket_enabled),
    CP("uni_websocket.handler_prefix", uni_websocket_prefix),
    CI("uni_websocket.message_size_limit", uni_websocket_message_size_limit, 1),
    CB("uni_sse.enabled", uni_sse_enabled),
    CP("uni_sse.handler_prefix", uni_sse_prefix),
    CI("uni_sse.max_request_body_size", uni_sse_max_body, 1),
    CB("uni_http_stream.enabled", uni_http_stream_enabled),
    CP("uni_http_stream.handler_prefix", uni_http_stream_prefix),
    CI("uni_http_stream.max_request_body_size", uni_http_stream_max_body, 1),
    CB("uni_grpc.enabled", uni_grpc_enabled),
    CS("uni_grpc.address", uni_grpc_address),
    C_("uni_grpc.port", K_PORT, uni_grpc_port, 0, 65535, 0),
    CI("uni_grpc.max_receive_message_size", uni_grpc_max_message, 1),
    CB("prometheus.enabled", prometheus_enabled),
    CP("prometheus.handler_prefix", prometheus_prefix),
    CB("health.enabled", health_enabled),
    CP("health.handler_prefix", health_prefix),
    CS("node.name", node_name),
    CD("shutdown.timeout", shutdown_timeout_ms, 0),
    CD("shutdown.drain_delay", shutdown_drain_delay_ms, 0),
    CD("shutdown.disconnect_window", shutdown_disconnect_window_ms, 0),
};

#define N_(path, kind, field, min, flags)                                                          \
    {                                                                                              \
        path, kind, offsetof(node_ns_opts_t, field), min, INT64_MAX, flags, 0                      \
    }
#define NB(path) N_(#path, K_BOOL, path, 0, 0)

static const key_def_t ns_keys[] = {
    NB(presence),
    NB(join_leave),
    NB(force_push_join_leave),
    N_("history_size", K_I64, history_size, 0, 0),
    N_("history_ttl", K_DUR, history_ttl_ms, 0, F_SECONDS),
    N_("history_meta_ttl", K_DUR, history_meta_ttl_ms, 0, F_SECONDS),
    NB(force_positioning),
    NB(allow_positioning),
    NB(force_recovery),
    NB(allow_recovery),
    N_("force_recovery_mode", K_RECMODE, force_recovery_mode_cache, 0, 0),
    NB(auto_cache_recover),
    N_("allowed_delta_types", K_DELTA, allow_fossil_delta, 0, 0),
    NB(delta_publish),
    NB(allow_tags_filter),
    N_("publication_data_format", K_DATAFMT, publication_data_format, 0, 0),
    NB(allow_subscribe_for_client),
    NB(allow_subscribe_for_anonymous),
    NB(allow_publish_for_subscriber),
    NB(allow_publish_for_client),
    NB(allow_publish_for_anonymous),
    NB(allow_presence_for_subscriber),
    NB(allow_presence_for_client),
    NB(allow_presence_for_anonymous),
    NB(allow_history_for_subscriber),
    NB(allow_history_for_client),
    NB(allow_history_for_anonymous),
    NB(allow_user_limited_channels),
    N_("channel_regex", K_STR, channel_regex, 0, 0),
    N_("subscription_type", K_SUBTYPE, name, 0, 0),
};

#define R_(path, kind, field, min, max, flags)                                                     \
    {                                                                                              \
        path, kind, offsetof(node_consumer_t, field), min, max, flags, 0                           \
    }
#define RS(path, field) R_("redis_stream." path, K_STR, redis_stream.field, 0, 0, 0)
#define RD(path, field) R_("redis_stream." path, K_DUR, redis_stream.field, 1, 0, 0)

#define CONSUMER_TLS_KEYS(pre, f)                                                                  \
    R_(pre ".enabled", K_BOOL, redis_stream.f.enabled, 0, 0, 0),                                   \
        R_(pre ".insecure_skip_verify", K_BOOL, redis_stream.f.insecure_skip_verify, 0, 0, 0),     \
        R_(pre ".server_name", K_STR, redis_stream.f.server_name, 0, 0, 0),                        \
        R_(pre ".cert_pem", K_STR, redis_stream.f.cert_pem, 0, 0, 0),                              \
        R_(pre ".key_pem", K_STR, redis_stream.f.key_pem, 0, 0, 0),                                \
        R_(pre ".server_ca_pem", K_STR, redis_stream.f.server_ca_pem, 0, 0, 0),                    \
        R_(pre ".client_ca_pem", K_STR, redis_stream.f.client_ca_pem, 0, 0, 0)

/* Relative to a consumers[] element. */
static const key_def_t consumer_keys[] = {
    R_("name", K_STR, name, 0, 0, 0),
    R_("enabled", K_BOOL, enabled, 0, 0, 0),
    R_("type", K_STR, type, 0, 0, 0),
    R_("redis_stream.address", K_ADDR1, redis_stream.address, 0, 0, 0),
    RS("user", user),
    RS("password", password),
    R_("redis_stream.db", K_I64, redis_stream.db, 0, INT_MAX, 0),
    RD("connect_timeout", connect_timeout_ms),
    RD("io_timeout", io_timeout_ms),
    /* hiredis 0.14 only speaks RESP2, so this is honoured either way (offset unused) */
    R_("redis_stream.force_resp2", K_IGNBOOL, enabled, 0, 0, 0),
    {"redis_stream.streams", K_STRV, offsetof(node_consumer_t, redis_stream.streams), 0, 0, 0,
     offsetof(node_consumer_t, redis_stream.streams_count)},
    RS("consumer_group", consumer_group),
    RD("visibility_timeout", visibility_timeout_ms),
    R_("redis_stream.num_workers", K_I64, redis_stream.num_workers, 1, 1024, 0),
    R_("redis_stream.payload_value", K_STR, redis_stream.payload_value, 0, 0, F_NONEMPTY),
    RS("method_value", method_value),
    R_("redis_stream.publication_data_mode.enabled", K_BOOL, redis_stream.publication_data_mode, 0,
       0, 0),
    RS("publication_data_mode.channels_value", channels_value),
    RS("publication_data_mode.idempotency_key_value", idempotency_key_value),
    RS("publication_data_mode.delta_value", delta_value),
    RS("publication_data_mode.version_value", version_value),
    RS("publication_data_mode.version_epoch_value", version_epoch_value),
    RS("publication_data_mode.tags_value_prefix", tags_value_prefix),
    CONSUMER_TLS_KEYS("redis_stream.tls", tls),
    CONSUMER_TLS_KEYS("redis_stream.sentinel_tls", sentinel_tls),
};

/* Keys Centrifugo knows and rotor does not implement. */
#define U_ERR_SET 1u /* a non-empty / true / non-zero value is an error */
#define U_PRO     2u /* Centrifugo PRO option */

typedef struct unsup_def {
    const char *path;
    unsigned flags;
    const char *why; /* the error message; NULL = "not supported by rotor yet" */
} unsup_def_t;

#define WHY_CLUSTER                                                                                \
    "Redis Cluster is not supported for consumers (give the consumer one standalone address)"
#define WHY_SENTINEL                                                                               \
    "Redis Sentinel keys are not supported for consumers (use a redis+sentinel:// address)"
#define WHY_SPLIT                                                                                  \
    "separate broker / presence_manager sections are not supported yet (configure engine.type "    \
    "and engine.redis)"
#define REDIS_UNSUP(pre)                                                                           \
    {pre ".cluster_address", U_ERR_SET, WHY_CLUSTER},                                              \
        {pre ".sentinel_address", U_ERR_SET, WHY_SENTINEL},                                        \
        {pre ".sentinel_master_name", U_ERR_SET, WHY_SENTINEL},                                    \
        {pre ".sentinel_user", U_ERR_SET, WHY_SENTINEL},                                           \
        {pre ".sentinel_password", U_ERR_SET, WHY_SENTINEL},                                       \
        {pre ".sentinel_client_name", U_ERR_SET, WHY_SENTINEL},                                    \
    {                                                                                              \
        pre ".client_name", 0, NULL                                                                \
    }

/* The engine dials Cluster and Sentinel itself; only these side keys remain. */
#define REDIS_ENGINE_UNSUP(pre)                                                                    \
    {pre ".sentinel_client_name", 0, NULL},                                                        \
    {                                                                                              \
        pre ".client_name", 0, NULL                                                                \
    }

static const unsup_def_t top_unsup[] = {
    {"http_server.tls", 0, NULL},
    {"http_server.tls_autocert", 0, NULL},
    {"http_server.tls_external", 0, NULL},
    {"http_server.internal_tls", 0, NULL},
    {"http_server.http3", 0, NULL},
    {"http_server.h2c_external", U_ERR_SET, NULL},
    {"log.file", U_ERR_SET, NULL},
    REDIS_ENGINE_UNSUP("engine.redis"),
    {"engine.redis.history_use_lists", U_ERR_SET,
     "list history (history_use_lists) is not supported by this rotor build yet (history uses "
     "streams)"},
    {"broker", 0, WHY_SPLIT},
    {"presence_manager", 0, WHY_SPLIT},
    {"client.token.jwks_public_endpoint", U_ERR_SET, NULL},
    {"client.token.insecure_skip_jwks_endpoint_safety_check", 0, NULL},
    {"client.subscription_token.jwks_public_endpoint", U_ERR_SET, NULL},
    {"client.subscription_token.insecure_skip_jwks_endpoint_safety_check", 0, NULL},
    {"client.channel_position_max_time_lag", U_ERR_SET, NULL},
    {"client.user_id_http_header", U_ERR_SET, NULL},
    {"client.concurrency", 0, NULL},
    {"client.proxy", 0, NULL},
    {"client.connect_code_to_unidirectional_disconnect", 0, NULL},
    {"channel.proxy", 0, NULL},
    {"rpc", 0, NULL},
    {"proxies", 0, NULL},
    {"grpc_api", 0, NULL},
    {"websocket.compression", 0, NULL},
    {"websocket.compression_min_size", 0, NULL},
    {"websocket.compression_level", 0, NULL},
    {"websocket.read_buffer_size", 0, NULL},
    {"websocket.write_buffer_size", 0, NULL},
    {"websocket.use_write_buffer_pool", 0, NULL},
    {"uni_websocket.join_push_messages", U_ERR_SET, NULL},
    {"uni_websocket.disable_disconnect_push", U_ERR_SET, NULL},
    {"uni_sse.connect_code_to_http_response", 0, NULL},
    {"uni_http_stream.connect_code_to_http_response", 0, NULL},
    {"uni_grpc.tls", 0, NULL},
    {"webtransport", 0, NULL},
    {"init", 0, NULL},
    {"admin", 0, NULL},
    {"prometheus.instrument_http_handlers", 0, NULL},
    {"prometheus.recovered_publications_histogram", 0, NULL},
    {"prometheus.native_histograms", 0, NULL},
    {"swagger", 0, NULL},
    {"debug", 0, NULL},
    {"node.info_metrics_aggregate_interval", 0, NULL},
    {"opentelemetry", 0, NULL},
    {"graphite", 0, NULL},
    {"usage_stats", 0, NULL},
    {"pid_file", U_ERR_SET, NULL},
    {"enable_unreleased_features", 0, NULL},
    {"controller", 0, NULL},
    {"map_broker", 0, NULL},
    {"shared_poll", 0, NULL},
};

/* Relative to a consumers[] element: the other consumer types' objects and the Redis
 * connection keys rotor does not have. */
static const unsup_def_t consumer_unsup[] = {
    REDIS_UNSUP("redis_stream"),    {"postgresql", 0, NULL},     {"kafka", 0, NULL},
    {"nats_jetstream", 0, NULL},    {"google_pub_sub", 0, NULL}, {"aws_sqs", 0, NULL},
    {"azure_service_bus", 0, NULL},
};

static const unsup_def_t ns_unsup[] = {
    {"subscribe_proxy_enabled", 0, NULL},
    {"subscribe_proxy_name", 0, NULL},
    {"publish_proxy_enabled", 0, NULL},
    {"publish_proxy_name", 0, NULL},
    {"sub_refresh_proxy_enabled", 0, NULL},
    {"sub_refresh_proxy_name", 0, NULL},
    {"subscribe_stream_proxy_enabled", 0, NULL},
    {"subscribe_stream_proxy_name", 0, NULL},
    {"subscribe_stream_proxy_bidirectional", 0, NULL},
    {"map", 0, NULL},
    {"shared_poll", 0, NULL},
    {"map_clients_presence_channel_prefix", 0, NULL},
    {"map_users_presence_channel_prefix", 0, NULL},
    /* An ignored CEL expression would grant access it was written to deny. */
    {"subscribe_cel", U_PRO | U_ERR_SET, NULL},
    {"publish_cel", U_PRO | U_ERR_SET, NULL},
    {"presence_cel", U_PRO | U_ERR_SET, NULL},
    {"history_cel", U_PRO | U_ERR_SET, NULL},
    {"state_events", U_PRO, NULL},
    {"state_proxy_enabled", U_PRO, NULL},
    {"cache_empty_proxy_enabled", U_PRO, NULL},
    {"cache_empty_proxy_name", U_PRO, NULL},
    {"shared_position_sync", U_PRO, NULL},
    {"batch_max_size", U_PRO, NULL},
    {"batch_max_delay", U_PRO, NULL},
    {"batch_flush_latest", U_PRO, NULL},
    {"allow_channel_compaction", U_PRO, NULL},
    {"keep_latest_publication", U_PRO, NULL},
    {"broker_name", U_PRO, NULL},
    {"presence_manager_name", U_PRO, NULL},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const key_def_t *find_key(const key_def_t *t, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].path, path) == 0)
            return &t[i];
    }
    return NULL;
}

static const unsup_def_t *find_unsup(const unsup_def_t *t, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].path, path) == 0)
            return &t[i];
    }
    return NULL;
}

static bool has_prefix_dot(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 && s[n] == '.';
}

/* The unsupported key equal to path or containing it ("sse" for "sse.enabled"). */
static const unsup_def_t *find_unsup_below(const char *path)
{
    for (size_t i = 0; i < COUNT(top_unsup); i++) {
        if (strcmp(top_unsup[i].path, path) == 0 || has_prefix_dot(path, top_unsup[i].path))
            return &top_unsup[i];
    }
    return NULL;
}

/* A section is an object whose members are keys we know (e.g. "client.token"). */
static bool is_section(const char *path)
{
    for (size_t i = 0; i < COUNT(top_keys); i++) {
        if (has_prefix_dot(top_keys[i].path, path))
            return true;
    }
    for (size_t i = 0; i < COUNT(top_unsup); i++) {
        if (has_prefix_dot(top_unsup[i].path, path))
            return true;
    }
    return strcmp(path, "channel") == 0;
}

/* ---- loader state and messages --------------------------------------------------------- */

typedef struct env_var {
    const char *name;  /* borrowed from envp: whole "NAME=value" entry */
    size_t name_len;   /* bytes before '=' */
    const char *value; /* borrowed: after '=' */
    bool used;
} env_var_t;

typedef struct loader {
    node_config_t *cfg; /* borrowed */
    rt_buf_t *err;      /* borrowed; may be NULL */
    env_var_t *env;     /* owned array of the CENTRIFUGO_ / ROTOR_ variables */
    size_t env_count;
} loader_t;

/* A value from the file (j) or from the environment or a flag (s). */
typedef struct val {
    const rt_json_t *j; /* borrowed; NULL for string sources */
    const char *s;      /* borrowed; used when j == NULL */
    const char *src;    /* "" for the file, else " (env NAME)" / " (flag)" for messages */
} val_t;

static int fail(loader_t *L, const char *path, val_t v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(loader_t *L, const char *path, val_t v, const char *fmt, ...)
{
    if (L->err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        rt_buf_printf(L->err, "%s%s: ", path, v.src ? v.src : "");
        rt_buf_vprintf(L->err, fmt, ap);
        va_end(ap);
    }
    return RT_EINVAL;
}

static const val_t no_val = {NULL, NULL, ""};

static void warn_key(loader_t *L, const char *path, const char *src, const char *what)
{
    L->cfg->warnings++;
    RT_LOG_WARN("config: %s%s: %s", path, src ? src : "", what);
}

/* ---- scalar parsing -------------------------------------------------------------------- */

/* Go strconv.ParseBool. */
static int parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < COUNT(t); i++) {
        if (strcmp(s, t[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, f[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return RT_EINVAL;
}

static int parse_i64(const char *s, int64_t *out)
{
    if (*s == '\0')
        return RT_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s)
        return RT_EINVAL;
    *out = v;
    return 0;
}

/* Go time.ParseDuration subset: optional sign, then number+unit groups. The character
 * check keeps strtod (inside rt_parse_duration_ms) away from hex and exponent forms. */
static int parse_duration(const char *s, int64_t *out)
{
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    for (const char *p = s; *p; p++) {
        if (strchr("0123456789.nsumh", *p) == NULL)
            return RT_EINVAL;
    }
    int64_t ms;
    if (rt_parse_duration_ms(s, &ms) != 0)
        return RT_EINVAL;
    *out = neg ? -ms : ms;
    return 0;
}

/* The value as a NUL-terminated string: a JSON string is unescaped into tmp. */
static int val_string(const val_t *v, rt_buf_t *tmp, const char **out)
{
    if (v->j == NULL) {
        *out = v->s;
        return 0;
    }
    if (v->j->type != RT_JSON_STRING)
        return RT_EINVAL;
    rt_buf_reset(tmp);
    if (rt_json_get_string(v->j, tmp) != 0)
        return RT_EINVAL;
    if (tmp->len > 0 && memchr(tmp->p, '\0', tmp->len) != NULL)
        return RT_EINVAL;
    rt_buf_append_byte(tmp, 0);
    *out = (const char *)tmp->p;
    return 0;
}

static void set_str(char **field, const char *s)
{
    rt_free(*field);
    *field = rt_strdup(s);
}

static void free_strv(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p != NULL; p++)
        rt_free(*p);
    rt_free(v);
}

/* Collects a []string value: a JSON array of strings, or a space-separated string. */
static int val_strv(const val_t *v, char ***out, size_t *count)
{
    size_t n = 0, cap = 4;
    char **arr = rt_calloc(cap + 1, sizeof(char *));
    int rc = 0;
    if (v->j != NULL) {
        if (v->j->type != RT_JSON_ARRAY) {
            rc = RT_EINVAL;
            goto out;
        }
        for (const rt_json_t *e = v->j->child; e != NULL; e = e->next) {
            char *s;
            if (e->type != RT_JSON_STRING || rt_json_get_string_dup(e, &s) != 0) {
                rc = RT_EINVAL;
                goto out;
            }
            if (n == cap) {
                cap *= 2;
                arr = rt_realloc(arr, (cap + 1) * sizeof(char *));
            }
            arr[n++] = s;
            arr[n] = NULL;
        }
    } else {
        const char *p = v->s;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
                p++;
            const char *start = p;
            while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                p++;
            if (p == start)
                break;
            if (n == cap) {
                cap *= 2;
                arr = rt_realloc(arr, (cap + 1) * sizeof(char *));
            }
            arr[n++] = rt_strndup(start, (size_t)(p - start));
            arr[n] = NULL;
        }
    }
out:
    if (rc != 0) {
        free_strv(arr);
        return rc;
    }
    *out = arr;
    *count = n;
    return 0;
}

static int parse_data_format(const char *s, node_data_format_t *out)
{
    if (strcmp(s, "") == 0)
        *out = NODE_DATA_FORMAT_ANY_NONEMPTY;
    else if (strcmp(s, "json") == 0)
        *out = NODE_DATA_FORMAT_JSON;
    else if (strcmp(s, "json_object") == 0)
        *out = NODE_DATA_FORMAT_JSON_OBJECT;
    else if (strcmp(s, "binary") == 0)
        *out = NODE_DATA_FORMAT_BINARY;
    else
        return RT_EINVAL;
    return 0;
}

/* Stores one value into base (a node_config_t or node_ns_opts_t) per def. A JSON null
 * leaves the field unchanged. */
static int set_value(loader_t *L, const key_def_t *def, void *base, const char *path, val_t v)
{
    if (v.j != NULL && v.j->type == RT_JSON_NULL)
        return 0;
    char *field = (char *)base + def->off;
    rt_buf_t tmp = RT_BUF_INIT;
    const char *s = NULL;
    int rc = 0;

    switch (def->kind) {
    case K_BOOL:
    case K_IGNBOOL: {
        bool b;
        if (v.j != NULL) {
            if (rt_json_get_bool(v.j, &b) != 0) {
                rc = fail(L, path, v, "must be a boolean");
                break;
            }
        } else if (parse_bool(v.s, &b) != 0) {
            rc = fail(L, path, v, "must be a boolean (true/false/1/0/t/f), got \"%s\"", v.s);
            break;
        }
        if (def->kind == K_BOOL)
            *(bool *)field = b;
        break;
    }
    case K_INT:
    case K_I64: {
        int64_t x;
        if (v.j != NULL ? rt_json_get_int64(v.j, &x) != 0 : parse_i64(v.s, &x) != 0) {
            rc = fail(L, path, v, "must be an integer");
            break;
        }
        if (x < def->min) {
            rc = def->min == 0 ? fail(L, path, v, "must not be negative")
                               : fail(L, path, v, "must be >= %" PRId64, def->min);
            break;
        }
        if (x > def->max) {
            rc = fail(L, path, v, "must be <= %" PRId64, def->max);
            break;
        }
        if (def->kind == K_INT)
            *(int *)field = (int)x;
        else
            *(int64_t *)field = x;
        break;
    }
    case K_PORT: {
        int64_t x = 0;
        if (v.j != NULL && v.j->type == RT_JSON_NUMBER) {
            if (rt_json_get_int64(v.j, &x) != 0) {
                rc = fail(L, path, v, "must be a port number");
                break;
            }
        } else if (val_string(&v, &tmp, &s) != 0 || (*s != '\0' && parse_i64(s, &x) != 0)) {
            rc = fail(L, path, v, "must be a port number");
            break;
        }
        if (x < 0 || x > 65535) {
            rc = fail(L, path, v, "must be a port number between 0 and 65535");
            break;
        }
        *(int *)field = (int)x;
        break;
    }
    case K_DUR: {
        int64_t ms;
        if (v.j != NULL && v.j->type == RT_JSON_NUMBER) {
            int64_t sec;
            if (rt_json_get_int64(v.j, &sec) != 0 || sec > INT64_MAX / 1000 ||
                sec < INT64_MIN / 1000) {
                rc = fail(L, path, v, "must be a duration string such as \"25s\"");
                break;
            }
            ms = sec * 1000;
        } else if (val_string(&v, &tmp, &s) != 0) {
            rc = fail(L, path, v, "must be a duration string such as \"25s\"");
            break;
        } else {
            int64_t sec;
            if (parse_duration(s, &ms) != 0) {
                if (parse_i64(s, &sec) != 0 || sec > INT64_MAX / 1000 || sec < INT64_MIN / 1000) {
                    rc = fail(L, path, v, "invalid duration \"%s\" (use e.g. \"25s\", \"100ms\")",
                              s);
                    break;
                }
                ms = sec * 1000;
            }
        }
        if (ms < def->min) {
            rc = def->min == 0 ? fail(L, path, v, "must not be negative")
                               : fail(L, path, v, "must be positive");
            break;
        }
        if ((def->flags & F_SECONDS) && ms % 1000 != 0) {
            rc = fail(L, path, v, "must be a whole number of seconds");
            break;
        }
        *(int64_t *)field = ms;
        break;
    }
    case K_STR:
    case K_PREFIX:
        if (val_string(&v, &tmp, &s) != 0) {
            rc = fail(L, path, v, "must be a string");
            break;
        }
        if (def->kind == K_PREFIX && s[0] != '/') {
            rc = fail(L, path, v, "must start with '/'");
            break;
        }
        if ((def->flags & F_NONEMPTY) && s[0] == '\0') {
            rc = fail(L, path, v, "must not be empty");
            break;
        }
        set_str((char **)field, s);
        break;
    case K_STRV:
    case K_ADDR1: {
        char **arr;
        size_t n;
        if (v.j != NULL && v.j->type == RT_JSON_STRING) {
            if (val_string(&v, &tmp, &s) != 0) {
                rc = fail(L, path, v, "must be a string or an array of strings");
                break;
            }
            arr = rt_calloc(2, sizeof(char *));
            arr[0] = rt_strdup(s);
            n = 1;
        } else if (val_strv(&v, &arr, &n) != 0) {
            rc = fail(L, path, v, "must be a string or an array of strings");
            break;
        }
        if (def->kind == K_ADDR1) {
            if (n != 1)
                rc = fail(L, path, v,
                          "must be exactly one address (a consumer reads one Redis shard)");
            else
                set_str((char **)field, arr[0]);
            free_strv(arr);
            break;
        }
        if ((int64_t)n < def->min) {
            free_strv(arr);
            rc = fail(L, path, v, "must not be empty");
            break;
        }
        free_strv(*(char ***)field);
        *(char ***)field = arr;
        *(size_t *)((char *)base + def->off2) = n;
        break;
    }
    case K_CHAR:
        if (val_string(&v, &tmp, &s) != 0 || strlen(s) > 1 || (unsigned char)s[0] >= 0x80) {
            rc = fail(L, path, v, "must be a single ASCII character (or empty)");
            break;
        }
        *field = s[0];
        break;
    case K_ORIGINS: {
        char **arr;
        size_t n;
        if (val_strv(&v, &arr, &n) != 0) {
            rc = fail(L, path, v, "must be an array of strings");
            break;
        }
        for (size_t i = 0; i < n; i++) {
            for (char *c = arr[i]; *c; c++) {
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
            }
        }
        node_config_t *cfg = base;
        free_strv(cfg->allowed_origins);
        cfg->allowed_origins = arr;
        cfg->allowed_origins_count = n;
        break;
    }
    case K_LOGLEVEL: {
        int level;
        if (val_string(&v, &tmp, &s) != 0 || rt_log_parse_level(s, &level) != 0) {
            rc = fail(L, path, v, "must be one of trace, debug, info, warn, error, fatal, none");
            break;
        }
        *(int *)field = level;
        break;
    }
    case K_DATAFMT:
        if (val_string(&v, &tmp, &s) != 0 ||
            parse_data_format(s, (node_data_format_t *)(void *)field) != 0) {
            rc = fail(L, path, v,
                      "unknown publication data format (use \"\", \"json\", \"json_object\" "
                      "or \"binary\")");
        }
        break;
    case K_ERRMODE:
        if (val_string(&v, &tmp, &s) != 0 || (strcmp(s, "") != 0 && strcmp(s, "transport") != 0)) {
            rc = fail(L, path, v, "unknown error mode (use \"\" or \"transport\")");
            break;
        }
        *(bool *)field = strcmp(s, "transport") == 0;
        break;
    case K_RECMODE:
        if (val_string(&v, &tmp, &s) != 0 ||
            (strcmp(s, "") != 0 && strcmp(s, "stream") != 0 && strcmp(s, "cache") != 0)) {
            rc = fail(L, path, v, "unknown recovery mode (use \"stream\" or \"cache\")");
            break;
        }
        *(bool *)field = strcmp(s, "cache") == 0;
        break;
    case K_DELTA: {
        char **arr;
        size_t n;
        if (val_strv(&v, &arr, &n) != 0) {
            rc = fail(L, path, v, "must be an array of strings");
            break;
        }
        bool fossil = false;
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (strcmp(arr[i], "fossil") == 0)
                fossil = true;
            else
                rc = fail(L, path, v, "unknown delta type \"%s\" (only \"fossil\")", arr[i]);
        }
        free_strv(arr);
        if (rc == 0)
            *(bool *)field = fossil;
        break;
    }
    case K_SUBTYPE:
        if (val_string(&v, &tmp, &s) != 0) {
            rc = fail(L, path, v, "must be a string");
        } else if (strcmp(s, "map") == 0 || strcmp(s, "map_clients") == 0 ||
                   strcmp(s, "map_users") == 0 || strcmp(s, "shared_poll") == 0) {
            rc = fail(L, path, v,
                      "subscription type \"%s\" is not supported by rotor (only stream)", s);
        } else if (strcmp(s, "") != 0 && strcmp(s, "stream") != 0) {
            rc = fail(L, path, v, "unknown subscription type \"%s\"", s);
        }
        break;
    }
    rt_buf_cleanup(&tmp);
    return rc;
}

/* ---- unsupported keys ------------------------------------------------------------------ */

static bool is_enable_key(const char *key)
{
    size_t n = strlen(key);
    return strcmp(key, "enabled") == 0 || (n > 8 && strcmp(key + n - 8, "_enabled") == 0);
}

static bool json_truthy(const rt_json_t *j)
{
    switch (j->type) {
    case RT_JSON_TRUE:
        return true;
    case RT_JSON_STRING:
        return j->raw.n > 2;
    case RT_JSON_NUMBER: {
        double d;
        return rt_json_get_double(j, &d) == 0 && d != 0;
    }
    case RT_JSON_ARRAY:
    case RT_JSON_OBJECT:
        return j->count > 0;
    default:
        return false;
    }
}

static const char *unsup_why(const unsup_def_t *u)
{
    return u->why != NULL ? u->why : "not supported by rotor yet";
}

/* Finds "enabled": true / "*_enabled": true anywhere below an unsupported key. */
static int check_enabled_json(loader_t *L, const unsup_def_t *u, rt_buf_t *path, const char *key,
                              const rt_json_t *j)
{
    if (j->type == RT_JSON_TRUE && is_enable_key(key)) {
        rt_buf_append_byte(path, 0);
        return fail(L, (const char *)path->p, no_val, "%s", unsup_why(u));
    }
    size_t len = path->len;
    size_t i = 0;
    rt_buf_t k = RT_BUF_INIT;
    int rc = 0;
    for (const rt_json_t *c = j->child; c != NULL && rc == 0; c = c->next, i++) {
        path->len = len;
        rt_buf_reset(&k);
        if (j->type == RT_JSON_OBJECT) {
            rt_json_get_key(c, &k);
            rt_buf_append_byte(&k, 0);
            rt_buf_append_byte(path, '.');
            rt_buf_append_cstr(path, (const char *)k.p);
            rc = check_enabled_json(L, u, path, (const char *)k.p, c);
        } else {
            rt_buf_printf(path, "[%zu]", i);
            rc = check_enabled_json(L, u, path, "", c);
        }
    }
    path->len = len;
    rt_buf_cleanup(&k);
    return rc;
}

/* path: the key as written (may lie below u->path, e.g. a flag "sse.enabled"). */
static int unsup_value(loader_t *L, const unsup_def_t *u, const char *path, val_t v)
{
    const char *last = strrchr(path, '.');
    last = last ? last + 1 : path;
    if (v.j != NULL) {
        if (v.j->type == RT_JSON_NULL)
            return 0;
        if ((u->flags & U_ERR_SET) && json_truthy(v.j))
            return fail(L, path, v, "%s", unsup_why(u));
        rt_buf_t p = RT_BUF_INIT;
        rt_buf_append_cstr(&p, path);
        int rc = check_enabled_json(L, u, &p, last, v.j);
        rt_buf_cleanup(&p);
        if (rc != 0)
            return rc;
    } else {
        bool b = false;
        bool is_false = parse_bool(v.s, &b) == 0 && !b;
        if ((u->flags & U_ERR_SET) && !is_false)
            return fail(L, path, v, "%s", unsup_why(u));
        /* env/flag names under an unsupported section: "..._ENABLED" / "....enabled" */
        size_t n = strlen(v.src);
        bool enable_name = n >= 9 && (strncasecmp(v.src + n - 9, "_enabled)", 9) == 0 ||
                                      strncasecmp(v.src + n - 9, ".enabled)", 9) == 0);
        if ((is_enable_key(last) || enable_name) && parse_bool(v.s, &b) == 0 && b)
            return fail(L, path, v, "%s", unsup_why(u));
    }
    warn_key(L, path, v.src,
             (u->flags & U_PRO) ? "Centrifugo PRO option, not supported by rotor (ignored)"
                                : "not supported by rotor yet (ignored)");
    return 0;
}

/* ---- namespaces ------------------------------------------------------------------------ */

static void ns_init(node_ns_opts_t *ns, const char *name)
{
    memset(ns, 0, sizeof(*ns));
    ns->name = rt_strdup(name);
    ns->channel_regex = rt_strdup("");
}

static void ns_cleanup(node_ns_opts_t *ns)
{
    rt_free(ns->name);
    rt_free(ns->channel_regex);
    if (ns->has_regex)
        regfree(&ns->regex);
    memset(ns, 0, sizeof(*ns));
}

static void free_namespaces(node_config_t *cfg)
{
    for (size_t i = 0; i < cfg->namespaces_count; i++)
        ns_cleanup(&cfg->namespaces[i]);
    rt_free(cfg->namespaces);
    cfg->namespaces = NULL;
    cfg->namespaces_count = 0;
}

static void key_cstr(const rt_json_t *member, rt_buf_t *out)
{
    rt_buf_reset(out);
    rt_json_get_key(member, out);
    rt_buf_append_byte(out, 0);
}

/* Applies the members of a channel-options object. allow_name: a namespace element. */
static int walk_ns(loader_t *L, node_ns_opts_t *ns, const rt_json_t *obj, const char *path,
                   bool allow_name, const char *src)
{
    if (obj->type == RT_JSON_NULL)
        return 0;
    val_t whole = {obj, NULL, src};
    if (obj->type != RT_JSON_OBJECT)
        return fail(L, path, whole, "must be an object");
    rt_buf_t key = RT_BUF_INIT, full = RT_BUF_INIT, tmp = RT_BUF_INIT;
    int rc = 0;
    for (const rt_json_t *m = obj->child; m != NULL && rc == 0; m = m->next) {
        key_cstr(m, &key);
        const char *k = (const char *)key.p;
        rt_buf_reset(&full);
        rt_buf_printf(&full, "%s.%s", path, k);
        rt_buf_append_byte(&full, 0);
        const char *fp = (const char *)full.p;
        val_t v = {m, NULL, src};
        const key_def_t *def;
        const unsup_def_t *u;
        if (strlen(k) != key.len - 1) {
            warn_key(L, fp, src, "unknown key (ignored)");
        } else if (allow_name && strcmp(k, "name") == 0) {
            const char *s;
            if (val_string(&v, &tmp, &s) != 0)
                rc = fail(L, fp, v, "must be a string");
            else
                set_str(&ns->name, s);
        } else if ((def = find_key(ns_keys, COUNT(ns_keys), k)) != NULL) {
            rc = set_value(L, def, ns, fp, v);
        } else if ((u = find_unsup(ns_unsup, COUNT(ns_unsup), k)) != NULL) {
            rc = unsup_value(L, u, fp, v);
        } else {
            warn_key(L, fp, src, "unknown key (ignored)");
        }
    }
    rt_buf_cleanup(&key);
    rt_buf_cleanup(&full);
    rt_buf_cleanup(&tmp);
    return rc;
}

/* Replaces cfg->namespaces with the elements of a JSON array. */
static int set_namespaces_json(loader_t *L, const rt_json_t *arr, const char *src)
{
    val_t v = {arr, NULL, src};
    if (arr->type == RT_JSON_NULL)
        return 0;
    if (arr->type != RT_JSON_ARRAY)
        return fail(L, "channel.namespaces", v, "must be an array of objects");
    free_namespaces(L->cfg);
    L->cfg->namespaces = rt_calloc(arr->count ? arr->count : 1, sizeof(node_ns_opts_t));
    char path[64];
    size_t i = 0;
    for (const rt_json_t *e = arr->child; e != NULL; e = e->next, i++) {
        ns_init(&L->cfg->namespaces[i], "");
        L->cfg->namespaces_count = i + 1;
        snprintf(path, sizeof(path), "channel.namespaces[%zu]", i);
        int rc = walk_ns(L, &L->cfg->namespaces[i], e, path, true, src);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* An array-of-objects key from an environment variable or flag (SERVER.md §2.5): a JSON
 * array, or space-separated names that create empty elements. */
static int set_array_str(loader_t *L, const char *s, const char *src, const char *key,
                         int (*set_json)(loader_t *L, const rt_json_t *arr, const char *src),
                         void (*set_names)(loader_t *L, char **names, size_t n))
{
    const char *p = s;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    if (*p == '[') {
        rt_json_doc_t doc = {0};
        int rc;
        if (rt_json_parse(&doc, s, strlen(s), 0) != 0) {
            val_t v = {NULL, s, src};
            rc = fail(L, key, v, "invalid JSON array");
        } else {
            rc = set_json(L, doc.root, src);
        }
        rt_json_doc_cleanup(&doc);
        return rc;
    }
    val_t v = {NULL, s, src};
    char **names;
    size_t n;
    if (val_strv(&v, &names, &n) != 0)
        return fail(L, key, v, "invalid value");
    set_names(L, names, n);
    free_strv(names);
    return 0;
}

static void set_namespace_names(loader_t *L, char **names, size_t n)
{
    free_namespaces(L->cfg);
    L->cfg->namespaces = rt_calloc(n ? n : 1, sizeof(node_ns_opts_t));
    for (size_t i = 0; i < n; i++)
        ns_init(&L->cfg->namespaces[i], names[i]);
    L->cfg->namespaces_count = n;
}

/* channel.namespaces from an environment variable or flag. */
static int set_namespaces_str(loader_t *L, const char *s, const char *src)
{
    return set_array_str(L, s, src, "channel.namespaces", set_namespaces_json, set_namespace_names);
}

/* ---- consumers ------------------------------------------------------------------------- */

static void tls_opts_init(node_tls_opts_t *t);
static void tls_opts_cleanup(node_tls_opts_t *t);
static int apply_tls_opts(const char *key, const node_tls_opts_t *o, rds_tls_t *t, rt_buf_t *why);

static void consumer_init(node_consumer_t *c, const char *name)
{
    memset(c, 0, sizeof(*c));
    c->name = rt_strdup(name);
    c->type = rt_strdup("");
    node_redis_stream_consumer_t *r = &c->redis_stream;
    r->address = rt_strdup("redis://127.0.0.1:6379");
    r->user = rt_strdup("");
    r->password = rt_strdup("");
    r->connect_timeout_ms = 1000;
    r->io_timeout_ms = 4000;
    r->streams = rt_calloc(1, sizeof(char *));
    r->consumer_group = rt_strdup("");
    r->visibility_timeout_ms = 30000;
    r->num_workers = 1;
    r->payload_value = rt_strdup("payload");
    r->method_value = rt_strdup("method");
    r->channels_value = rt_strdup("centrifugo-channels");
    r->idempotency_key_value = rt_strdup("centrifugo-idempotency-key");
    r->delta_value = rt_strdup("centrifugo-delta");
    r->version_value = rt_strdup("centrifugo-version");
    r->version_epoch_value = rt_strdup("centrifugo-version-epoch");
    r->tags_value_prefix = rt_strdup("centrifugo-tag-");
    tls_opts_init(&r->tls);
    tls_opts_init(&r->sentinel_tls);
}

static void consumer_cleanup(node_consumer_t *c)
{
    node_redis_stream_consumer_t *r = &c->redis_stream;
    rt_free(c->name);
    rt_free(c->type);
    rt_free(r->address);
    rt_free(r->user);
    rt_free(r->password);
    free_strv(r->streams);
    rt_free(r->consumer_group);
    rt_free(r->payload_value);
    rt_free(r->method_value);
    rt_free(r->channels_value);
    rt_free(r->idempotency_key_value);
    rt_free(r->delta_value);
    rt_free(r->version_value);
    rt_free(r->version_epoch_value);
    rt_free(r->tags_value_prefix);
    tls_opts_cleanup(&r->tls);
    tls_opts_cleanup(&r->sentinel_tls);
    memset(c, 0, sizeof(*c));
}

static void free_consumers(node_config_t *cfg)
{
    for (size_t i = 0; i < cfg->consumers_count; i++)
        consumer_cleanup(&cfg->consumers[i]);
    rt_free(cfg->consumers);
    cfg->consumers = NULL;
    cfg->consumers_count = 0;
}

/* true if rel names an object that holds keys of t ("redis_stream" for
 * "redis_stream.streams"). */
static bool is_subsection(const key_def_t *t, size_t n, const char *rel)
{
    for (size_t i = 0; i < n; i++) {
        if (has_prefix_dot(t[i].path, rel))
            return true;
    }
    return false;
}

/* Applies the members of one consumers[] element (obj), or of one of its sub-objects when
 * rel is not "" ("redis_stream"). path: the element's name in messages ("consumers[0]"). */
static int walk_consumer(loader_t *L, node_consumer_t *c, const rt_json_t *obj, const char *path,
                         const char *rel, const char *src)
{
    rt_buf_t key = RT_BUF_INIT, r = RT_BUF_INIT, full = RT_BUF_INIT;
    int rc = 0;
    for (const rt_json_t *m = obj->child; m != NULL && rc == 0; m = m->next) {
        key_cstr(m, &key);
        rt_buf_reset(&r);
        if (*rel)
            rt_buf_printf(&r, "%s.", rel);
        rt_buf_append_cstr(&r, (const char *)key.p);
        rt_buf_append_byte(&r, 0);
        const char *rp = (const char *)r.p;
        rt_buf_reset(&full);
        rt_buf_printf(&full, "%s.%s", path, rp);
        rt_buf_append_byte(&full, 0);
        const char *fp = (const char *)full.p;
        val_t v = {m, NULL, src};
        const key_def_t *def;
        const unsup_def_t *u;
        if (strlen((const char *)key.p) != key.len - 1) {
            warn_key(L, fp, src, "unknown key (ignored)");
        } else if ((def = find_key(consumer_keys, COUNT(consumer_keys), rp)) != NULL) {
            rc = set_value(L, def, c, fp, v);
        } else if ((u = find_unsup(consumer_unsup, COUNT(consumer_unsup), rp)) != NULL) {
            rc = unsup_value(L, u, fp, v);
        } else if (is_subsection(consumer_keys, COUNT(consumer_keys), rp)) {
            if (m->type == RT_JSON_OBJECT)
                rc = walk_consumer(L, c, m, path, rp, src);
            else if (m->type != RT_JSON_NULL)
                rc = fail(L, fp, v, "must be an object");
        } else {
            warn_key(L, fp, src, "unknown key (ignored)");
        }
    }
    rt_buf_cleanup(&key);
    rt_buf_cleanup(&r);
    rt_buf_cleanup(&full);
    return rc;
}

/* Replaces cfg->consumers with the elements of a JSON array. */
static int set_consumers_json(loader_t *L, const rt_json_t *arr, const char *src)
{
    val_t v = {arr, NULL, src};
    if (arr->type == RT_JSON_NULL)
        return 0;
    if (arr->type != RT_JSON_ARRAY)
        return fail(L, "consumers", v, "must be an array of objects");
    free_consumers(L->cfg);
    L->cfg->consumers = rt_calloc(arr->count ? arr->count : 1, sizeof(node_consumer_t));
    char path[64];
    size_t i = 0;
    for (const rt_json_t *e = arr->child; e != NULL; e = e->next, i++) {
        consumer_init(&L->cfg->consumers[i], "");
        L->cfg->consumers_count = i + 1;
        snprintf(path, sizeof(path), "consumers[%zu]", i);
        val_t ev = {e, NULL, src};
        if (e->type != RT_JSON_OBJECT)
            return fail(L, path, ev, "must be an object");
        int rc = walk_consumer(L, &L->cfg->consumers[i], e, path, "", src);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void set_consumer_names(loader_t *L, char **names, size_t n)
{
    free_consumers(L->cfg);
    L->cfg->consumers = rt_calloc(n ? n : 1, sizeof(node_consumer_t));
    for (size_t i = 0; i < n; i++)
        consumer_init(&L->cfg->consumers[i], names[i]);
    L->cfg->consumers_count = n;
}

/* consumers from an environment variable or flag. */
static int set_consumers_str(loader_t *L, const char *s, const char *src)
{
    return set_array_str(L, s, src, "consumers", set_consumers_json, set_consumer_names);
}

/* ---- the file -------------------------------------------------------------------------- */

static int walk_object(loader_t *L, const rt_json_t *obj, const char *prefix);

static int apply_file_value(loader_t *L, const char *path, const rt_json_t *j)
{
    val_t v = {j, NULL, ""};
    const key_def_t *def;
    const unsup_def_t *u;
    if (strcmp(path, "channel.without_namespace") == 0)
        return walk_ns(L, &L->cfg->without_namespace, j, path, false, "");
    if (strcmp(path, "channel.namespaces") == 0)
        return set_namespaces_json(L, j, "");
    if (strcmp(path, "consumers") == 0)
        return set_consumers_json(L, j, "");
    if ((def = find_key(top_keys, COUNT(top_keys), path)) != NULL)
        return set_value(L, def, L->cfg, path, v);
    if ((u = find_unsup(top_unsup, COUNT(top_unsup), path)) != NULL)
        return unsup_value(L, u, path, v);
    if (is_section(path)) {
        if (j->type == RT_JSON_NULL)
            return 0;
        if (j->type != RT_JSON_OBJECT)
            return fail(L, path, v, "must be an object");
        return walk_object(L, j, path);
    }
    warn_key(L, path, "", "unknown key (ignored)");
    return 0;
}

static int walk_object(loader_t *L, const rt_json_t *obj, const char *prefix)
{
    rt_buf_t key = RT_BUF_INIT, full = RT_BUF_INIT;
    int rc = 0;
    for (const rt_json_t *m = obj->child; m != NULL && rc == 0; m = m->next) {
        key_cstr(m, &key);
        rt_buf_reset(&full);
        if (*prefix)
            rt_buf_printf(&full, "%s.", prefix);
        rt_buf_append_cstr(&full, (const char *)key.p);
        rt_buf_append_byte(&full, 0);
        if (strlen((const char *)key.p) != key.len - 1)
            warn_key(L, (const char *)full.p, "", "unknown key (ignored)");
        else
            rc = apply_file_value(L, (const char *)full.p, m);
    }
    rt_buf_cleanup(&key);
    rt_buf_cleanup(&full);
    return rc;
}

static bool unsupported_extension(const char *name)
{
    static const char *const exts[] = {".yaml", ".yml", ".toml"};
    size_t n = strlen(name);
    for (size_t i = 0; i < COUNT(exts); i++) {
        size_t e = strlen(exts[i]);
        if (n >= e && strcasecmp(name + n - e, exts[i]) == 0)
            return true;
    }
    return false;
}

static int apply_buffer(loader_t *L, const char *name, const char *p, size_t n)
{
    if (unsupported_extension(name)) {
        if (L->err)
            rt_buf_printf(L->err,
                          "%s: YAML and TOML configuration files are not supported by rotor; "
                          "use JSON",
                          name);
        return RT_EINVAL;
    }
    rt_json_doc_t doc = {0};
    int rc = rt_json_parse(&doc, p, n, 0);
    if (rc != 0) {
        if (L->err)
            rt_buf_printf(L->err, "%s: %s", name,
                          rc == RT_ELIMIT ? "JSON nested too deeply" : "invalid JSON");
        rt_json_doc_cleanup(&doc);
        return RT_EINVAL;
    }
    if (doc.root->type != RT_JSON_OBJECT) {
        if (L->err)
            rt_buf_printf(L->err, "%s: the top level must be a JSON object", name);
        rc = RT_EINVAL;
    } else {
        rc = walk_object(L, doc.root, "");
    }
    rt_json_doc_cleanup(&doc);
    return rc;
}

static int read_file(const char *path, rt_buf_t *out, rt_buf_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (err)
            rt_buf_printf(err, "%s: %s", path, strerror(e));
        return e == ENOENT ? RT_ENOTFOUND : RT_EIO;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (err)
            rt_buf_printf(err, "%s: not a regular file", path);
        rc = RT_EIO;
        goto out;
    }
    for (;;) {
        if (out->len > MAX_FILE_BYTES) {
            if (err)
                rt_buf_printf(err, "%s: larger than %u bytes", path, MAX_FILE_BYTES);
            rc = RT_EINVAL;
            goto out;
        }
        rt_buf_reserve(out, 65536);
        ssize_t r = read(fd, out->p + out->len, out->cap - out->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            if (err)
                rt_buf_printf(err, "%s: %s", path, strerror(errno));
            rc = RT_EIO;
            goto out;
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
    }
out:
    close(fd);
    return rc;
}

/* ---- environment and flags ------------------------------------------------------------- */

/* CENTRIFUGO_/ROTOR_ suffix for a dotted path: '.', '-' -> '_', upper-cased. */
static void env_suffix(rt_buf_t *out, const char *path)
{
    for (const char *p = path; *p; p++) {
        char c = *p;
        if (c == '.' || c == '-')
            c = '_';
        else if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        rt_buf_append_byte(out, (uint8_t)c);
    }
}

static const char *const env_prefixes[] = {"ROTOR_", "CENTRIFUGO_"};

/* The variable's name without its prefix, or NULL when it has neither prefix. */
static rt_str_t env_name_suffix(const env_var_t *e)
{
    for (size_t i = 0; i < COUNT(env_prefixes); i++) {
        size_t pl = strlen(env_prefixes[i]);
        if (e->name_len >= pl && strncmp(e->name, env_prefixes[i], pl) == 0)
            return rt_str_from(e->name + pl, e->name_len - pl);
    }
    return RT_STR_NULL;
}

/* Value for suffix: ROTOR_ wins over CENTRIFUGO_; both are marked used. src receives
 * " (env NAME)". */
static const char *env_lookup(loader_t *L, rt_str_t suffix, rt_buf_t *src)
{
    const env_var_t *found[COUNT(env_prefixes)] = {NULL};
    for (size_t i = 0; i < L->env_count; i++) {
        env_var_t *e = &L->env[i];
        for (size_t k = 0; k < COUNT(env_prefixes); k++) {
            size_t pl = strlen(env_prefixes[k]);
            if (e->name_len == pl + suffix.n && strncmp(e->name, env_prefixes[k], pl) == 0 &&
                memcmp(e->name + pl, suffix.p, suffix.n) == 0) {
                e->used = true;
                found[k] = e;
            }
        }
    }
    for (size_t k = 0; k < COUNT(env_prefixes); k++) {
        if (found[k] != NULL) {
            rt_buf_reset(src);
            rt_buf_printf(src, " (env %.*s)", (int)found[k]->name_len, found[k]->name);
            rt_buf_append_byte(src, 0);
            return found[k]->value;
        }
    }
    return NULL;
}

/* The variables env_base + <key> for every key of the element tables t and u; base is the
 * element (node_ns_opts_t or node_consumer_t), path its name in messages. */
static int env_table(loader_t *L, const key_def_t *t, size_t nt, const unsup_def_t *u, size_t nu,
                     void *base, const char *env_base, const char *path)
{
    rt_buf_t suf = RT_BUF_INIT, src = RT_BUF_INIT, full = RT_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < nt && rc == 0; i++) {
        rt_buf_reset(&suf);
        rt_buf_append_cstr(&suf, env_base);
        env_suffix(&suf, t[i].path);
        const char *s = env_lookup(L, rt_buf_str(&suf), &src);
        if (s == NULL)
            continue;
        rt_buf_reset(&full);
        rt_buf_printf(&full, "%s.%s", path, t[i].path);
        rt_buf_append_byte(&full, 0);
        val_t v = {NULL, s, (const char *)src.p};
        rc = set_value(L, &t[i], base, (const char *)full.p, v);
    }
    for (size_t i = 0; i < nu && rc == 0; i++) {
        rt_buf_reset(&suf);
        rt_buf_append_cstr(&suf, env_base);
        env_suffix(&suf, u[i].path);
        const char *s = env_lookup(L, rt_buf_str(&suf), &src);
        if (s == NULL)
            continue;
        rt_buf_reset(&full);
        rt_buf_printf(&full, "%s.%s", path, u[i].path);
        rt_buf_append_byte(&full, 0);
        val_t v = {NULL, s, (const char *)src.p};
        rc = unsup_value(L, &u[i], (const char *)full.p, v);
    }
    rt_buf_cleanup(&suf);
    rt_buf_cleanup(&src);
    rt_buf_cleanup(&full);
    return rc;
}

static int env_ns(loader_t *L, node_ns_opts_t *ns, const char *env_base, const char *path)
{
    return env_table(L, ns_keys, COUNT(ns_keys), ns_unsup, COUNT(ns_unsup), ns, env_base, path);
}

static bool kubernetes_name(rt_str_t suffix)
{
    /* Service links: <SVC>_PORT, <SVC>_PORT_8000_TCP..., <SVC>_SERVICE_HOST/PORT. */
    for (size_t i = 0; i + 4 <= suffix.n; i++) {
        if (memcmp(suffix.p + i, "PORT", 4) == 0 && (i == 0 || suffix.p[i - 1] == '_'))
            return true;
        if (i + 8 <= suffix.n && memcmp(suffix.p + i, "SERVICE_", 8) == 0 &&
            (i == 0 || suffix.p[i - 1] == '_'))
            return true;
    }
    return false;
}

static int apply_env(loader_t *L)
{
    rt_buf_t suf = RT_BUF_INIT, src = RT_BUF_INIT;
    int rc = 0;

    for (size_t i = 0; i < COUNT(top_keys) && rc == 0; i++) {
        rt_buf_reset(&suf);
        env_suffix(&suf, top_keys[i].path);
        const char *s = env_lookup(L, rt_buf_str(&suf), &src);
        if (s != NULL) {
            val_t v = {NULL, s, (const char *)src.p};
            rc = set_value(L, &top_keys[i], L->cfg, top_keys[i].path, v);
        }
    }
    if (rc == 0) {
        const char *s = env_lookup(L, RT_STR("CHANNEL_NAMESPACES"), &src);
        if (s != NULL)
            rc = set_namespaces_str(L, s, (const char *)src.p);
    }
    if (rc == 0)
        rc = env_ns(L, &L->cfg->without_namespace, "CHANNEL_WITHOUT_NAMESPACE_",
                    "channel.without_namespace");
    for (size_t i = 0; i < L->cfg->namespaces_count && rc == 0; i++) {
        rt_buf_reset(&suf);
        rt_buf_append_cstr(&suf, "CHANNEL_NAMESPACES_");
        env_suffix(&suf, L->cfg->namespaces[i].name);
        rt_buf_append_cstr(&suf, "_");
        rt_buf_append_byte(&suf, 0);
        char path[64];
        snprintf(path, sizeof(path), "channel.namespaces[%zu]", i);
        rc = env_ns(L, &L->cfg->namespaces[i], (const char *)suf.p, path);
    }
    if (rc == 0) {
        const char *s = env_lookup(L, RT_STR("CONSUMERS"), &src);
        if (s != NULL)
            rc = set_consumers_str(L, s, (const char *)src.p);
    }
    for (size_t i = 0; i < L->cfg->consumers_count && rc == 0; i++) {
        rt_buf_reset(&suf);
        rt_buf_append_cstr(&suf, "CONSUMERS_");
        env_suffix(&suf, L->cfg->consumers[i].name);
        rt_buf_append_cstr(&suf, "_");
        rt_buf_append_byte(&suf, 0);
        char path[64];
        snprintf(path, sizeof(path), "consumers[%zu]", i);
        rc = env_table(L, consumer_keys, COUNT(consumer_keys), consumer_unsup,
                       COUNT(consumer_unsup), &L->cfg->consumers[i], (const char *)suf.p, path);
    }
    /* Variables under an unsupported key: exact name, or a deeper key below it. */
    for (size_t i = 0; i < COUNT(top_unsup) && rc == 0; i++) {
        rt_buf_reset(&suf);
        env_suffix(&suf, top_unsup[i].path);
        for (size_t k = 0; k < L->env_count && rc == 0; k++) {
            env_var_t *e = &L->env[k];
            rt_str_t name = env_name_suffix(e);
            if (e->used || name.p == NULL || !rt_str_starts_with(name, rt_buf_str(&suf)) ||
                (name.n > suf.len && name.p[suf.len] != '_'))
                continue;
            e->used = true;
            rt_buf_reset(&src);
            rt_buf_printf(&src, " (env %.*s)", (int)e->name_len, e->name);
            rt_buf_append_byte(&src, 0);
            unsup_def_t u = top_unsup[i];
            if (name.n > suf.len)
                u.flags &= ~U_ERR_SET;
            val_t v = {NULL, e->value, (const char *)src.p};
            rc = unsup_value(L, &u, top_unsup[i].path, v);
        }
    }
    for (size_t k = 0; k < L->env_count && rc == 0; k++) {
        env_var_t *e = &L->env[k];
        rt_str_t name = env_name_suffix(e);
        if (e->used || rt_str_starts_with(name, RT_STR("VAR_")) || kubernetes_name(name))
            continue;
        rt_buf_reset(&src);
        rt_buf_printf(&src, "%.*s", (int)e->name_len, e->name);
        rt_buf_append_byte(&src, 0);
        warn_key(L, (const char *)src.p, "", "unknown environment variable (ignored)");
    }
    rt_buf_cleanup(&suf);
    rt_buf_cleanup(&src);
    return rc;
}

static int apply_flags(loader_t *L, char *const *flag_kv, size_t nflags)
{
    rt_buf_t path = RT_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < nflags && rc == 0; i++) {
        const char *kv = flag_kv[i];
        const char *eq = strchr(kv, '=');
        rt_buf_reset(&path);
        rt_buf_append(&path, kv, eq ? (size_t)(eq - kv) : strlen(kv));
        rt_buf_append_byte(&path, 0);
        const char *p = (const char *)path.p;
        val_t v = {NULL, eq ? eq + 1 : "", " (flag)"};
        const key_def_t *def;
        const unsup_def_t *u;
        if (eq == NULL)
            rc = fail(L, p, v, "flag needs a value");
        else if (strcmp(p, "channel.namespaces") == 0)
            rc = set_namespaces_str(L, v.s, v.src);
        else if (strcmp(p, "consumers") == 0)
            rc = set_consumers_str(L, v.s, v.src);
        else if ((def = find_key(top_keys, COUNT(top_keys), p)) != NULL)
            rc = set_value(L, def, L->cfg, p, v);
        else if ((u = find_unsup_below(p)) != NULL)
            rc = unsup_value(L, u, p, v);
        else
            rc = fail(L, p, v, "unknown flag");
    }
    rt_buf_cleanup(&path);
    return rc;
}

/* ---- validation ------------------------------------------------------------------------ */

static bool valid_ns_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return n >= 2;
}

static int finalize_ns(loader_t *L, node_ns_opts_t *ns, const char *path)
{
    node_config_t *cfg = L->cfg;
    char key[128];
    if (ns->history_meta_ttl_ms == 0)
        ns->history_meta_ttl_ms = cfg->channel_history_meta_ttl_ms;
    if (ns->publication_data_format == NODE_DATA_FORMAT_ANY_NONEMPTY)
        ns->publication_data_format = cfg->publication_data_format;
    bool history = ns->history_size > 0 && ns->history_ttl_ms > 0;
    if ((ns->history_size > 0) != (ns->history_ttl_ms > 0)) {
        snprintf(key, sizeof(key), "%s.%s", path,
                 ns->history_size > 0 ? "history_ttl" : "history_size");
        return fail(L, key, no_val, "history_size and history_ttl must both be set for history");
    }
    if (ns->history_ttl_ms > ns->history_meta_ttl_ms) {
        snprintf(key, sizeof(key), "%s.history_ttl", path);
        return fail(L, key, no_val, "must be <= history_meta_ttl");
    }
    if (ns->force_recovery && !history) {
        snprintf(key, sizeof(key), "%s.force_recovery", path);
        return fail(L, key, no_val, "requires history (history_size and history_ttl)");
    }
    if (ns->auto_cache_recover && !(ns->force_recovery && ns->force_recovery_mode_cache)) {
        snprintf(key, sizeof(key), "%s.auto_cache_recover", path);
        warn_key(L, key, "",
                 "has no effect without force_recovery and force_recovery_mode \"cache\"");
    }
    if (ns->channel_regex[0] != '\0') {
        int rc = regcomp(&ns->regex, ns->channel_regex, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &ns->regex, msg, sizeof(msg));
            snprintf(key, sizeof(key), "%s.channel_regex", path);
            return fail(L, key, no_val, "invalid regular expression: %s", msg);
        }
        ns->has_regex = true;
    }
    return 0;
}

static const node_ns_opts_t *find_ns(const node_config_t *cfg, const char *p, size_t n)
{
    for (size_t i = 0; i < cfg->namespaces_count; i++) {
        const char *name = cfg->namespaces[i].name;
        if (strlen(name) == n && memcmp(name, p, n) == 0)
            return &cfg->namespaces[i];
    }
    return NULL;
}

/* Checks url with rds_addr_parse(); on failure the message names key. */
static int check_addr(loader_t *L, const char *key, const char *url)
{
    rds_addr_t a;
    rt_buf_t m = RT_BUF_INIT;
    int rc = rds_addr_parse(url, &a, &m);
    bool cluster = a.mode == RDS_MODE_CLUSTER;
    rds_addr_cleanup(&a);
    if (rc != 0)
        rc = fail(L, key, no_val, "%.*s", (int)m.len, m.p ? (const char *)m.p : "");
    else if (cluster)
        rc = fail(L, key, no_val, "%s", WHY_CLUSTER);
    rt_buf_cleanup(&m);
    return rc;
}

static int redis_shards(const node_config_t *cfg, rds_addr_t **out, size_t *n, char *key,
                        size_t key_size, rt_buf_t *why);

/* Builds the shards once to validate every address key. */
static int check_shards(loader_t *L)
{
    rds_addr_t *a;
    size_t n;
    char key[64];
    rt_buf_t m = RT_BUF_INIT;
    int rc = redis_shards(L->cfg, &a, &n, key, sizeof(key), &m);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            rds_addr_cleanup(&a[i]);
        rt_free(a);
    } else {
        rc = fail(L, key, no_val, "%.*s", (int)m.len, m.p ? (const char *)m.p : "");
    }
    rt_buf_cleanup(&m);
    return rc;
}

static bool valid_consumer_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return n >= 2;
}

static const char *const consumer_types[] = {
    "postgresql",     "kafka",   "nats_jetstream",    "redis_stream",
    "google_pub_sub", "aws_sqs", "azure_service_bus",
};

/* Name and type rules of every element (Centrifugo's Consumers.Validate), then what an
 * enabled redis_stream consumer needs to run. */
static int finalize_consumer(loader_t *L, size_t i)
{
    node_consumer_t *c = &L->cfg->consumers[i];
    node_redis_stream_consumer_t *r = &c->redis_stream;
    char key[128];
    snprintf(key, sizeof(key), "consumers[%zu].name", i);
    if (!valid_consumer_name(c->name))
        return fail(L, key, no_val, "invalid consumer name \"%s\" (must match ^[a-zA-Z0-9_]{2,}$)",
                    c->name);
    for (size_t k = 0; k < i; k++) {
        if (strcmp(L->cfg->consumers[k].name, c->name) == 0)
            return fail(L, key, no_val, "duplicate consumer name \"%s\"", c->name);
    }
    snprintf(key, sizeof(key), "consumers[%zu].type", i);
    bool known = false;
    for (size_t k = 0; k < COUNT(consumer_types); k++)
        known = known || strcmp(c->type, consumer_types[k]) == 0;
    if (!known)
        return fail(L, key, no_val, "unknown consumer type \"%s\"", c->type);
    c->type_id =
        strcmp(c->type, "redis_stream") == 0 ? NODE_CONSUMER_REDIS_STREAM : NODE_CONSUMER_OTHER;
    if (!c->enabled)
        return 0;
    if (c->type_id != NODE_CONSUMER_REDIS_STREAM)
        return fail(L, key, no_val,
                    "\"%s\" consumers are not supported by rotor yet (only redis_stream)", c->type);
    snprintf(key, sizeof(key), "consumers[%zu].redis_stream.streams", i);
    if (r->streams_count == 0)
        return fail(L, key, no_val, "required: a non-empty array of stream keys");
    for (size_t k = 0; k < r->streams_count; k++) {
        if (r->streams[k][0] == '\0')
            return fail(L, key, no_val, "stream keys must not be empty");
    }
    snprintf(key, sizeof(key), "consumers[%zu].redis_stream.consumer_group", i);
    if (r->consumer_group[0] == '\0')
        return fail(L, key, no_val, "required");
    snprintf(key, sizeof(key), "consumers[%zu].redis_stream.publication_data_mode.channels_value",
             i);
    if (r->publication_data_mode && r->channels_value[0] == '\0')
        return fail(L, key, no_val, "required when publication_data_mode is enabled");
    snprintf(key, sizeof(key), "consumers[%zu].redis_stream.address", i);
    int rc = check_addr(L, key, r->address);
    if (rc != 0)
        return rc;
    /* The TLS objects too (their PEM files read), as the consumer will dial it. */
    rds_addr_t a;
    rt_buf_t why = RT_BUF_INIT;
    rc = node_consumer_redis_addr(c, &a, &why);
    rds_addr_cleanup(&a);
    if (rc != 0 && L->err != NULL)
        rt_buf_append(L->err, why.p, why.len);
    rt_buf_cleanup(&why);
    return rc;
}

static int finalize(loader_t *L)
{
    node_config_t *cfg = L->cfg;
    int rc;

    if (strcmp(cfg->engine_type, "redis") == 0) {
        /* Only a Redis engine dials these; a memory node ignores a leftover block. */
        if ((rc = check_shards(L)) != 0)
            return rc;
    } else if (strcmp(cfg->engine_type, "memory") != 0) {
        return fail(L, "engine.type", no_val, "unknown engine \"%s\" (use \"memory\" or \"redis\")",
                    cfg->engine_type);
    }
    for (size_t i = 0; i < cfg->consumers_count; i++) {
        if ((rc = finalize_consumer(L, i)) != 0)
            return rc;
    }
    if (cfg->ping_interval_ms == 0)
        return fail(L, "client.ping_interval", no_val,
                    "must not be 0 (use a negative value to disable pings)");
    if (cfg->pong_timeout_ms == 0)
        return fail(L, "client.pong_timeout", no_val,
                    "must not be 0 (use a negative value to disable)");
    if (cfg->ping_interval_ms > 0 && cfg->pong_timeout_ms > 0 &&
        cfg->ping_interval_ms <= cfg->pong_timeout_ms)
        return fail(L, "client.ping_interval", no_val, "must be greater than client.pong_timeout");

    if ((rc = finalize_ns(L, &cfg->without_namespace, "channel.without_namespace")) != 0)
        return rc;
    for (size_t i = 0; i < cfg->namespaces_count; i++) {
        node_ns_opts_t *ns = &cfg->namespaces[i];
        char path[64];
        snprintf(path, sizeof(path), "channel.namespaces[%zu]", i);
        char key[80];
        snprintf(key, sizeof(key), "%s.name", path);
        if (!valid_ns_name(ns->name))
            return fail(L, key, no_val,
                        "invalid namespace name \"%s\" (must match ^[-a-zA-Z0-9_.]{2,}$)",
                        ns->name);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(cfg->namespaces[k].name, ns->name) == 0)
                return fail(L, key, no_val, "duplicate namespace name \"%s\"", ns->name);
        }
        if ((rc = finalize_ns(L, ns, path)) != 0)
            return rc;
    }

    if (cfg->personal_channel_enabled) {
        const char *name = cfg->personal_channel_namespace;
        const node_ns_opts_t *ns = &cfg->without_namespace;
        if (name[0] != '\0' && (ns = find_ns(cfg, name, strlen(name))) == NULL)
            return fail(L, "client.subscribe_to_user_personal_channel.personal_channel_namespace",
                        no_val, "unknown namespace \"%s\"", name);
        if (cfg->personal_single_connection && !ns->presence)
            return fail(L, "client.subscribe_to_user_personal_channel.single_connection", no_val,
                        "requires presence in the personal channel's namespace");
    }

    for (size_t i = 0; i < cfg->allowed_origins_count; i++) {
        if (strcmp(cfg->allowed_origins[i], "*") == 0) {
            RT_LOG_WARN("config: client.allowed_origins contains \"*\": every origin is "
                        "allowed, which is insecure in production");
            break;
        }
    }

    if (cfg->node_name[0] == '\0') {
        char host[256];
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        char name[300];
        snprintf(name, sizeof(name), "%s_%d", host, cfg->http_port);
        set_str(&cfg->node_name, name);
    }
    return 0;
}

/* ---- TLS objects (engine.redis.tls, .sentinel_tls) --------------------------------------- */

static void tls_opts_init(node_tls_opts_t *t)
{
    memset(t, 0, sizeof(*t));
    t->server_name = rt_strdup("");
    t->cert_pem = rt_strdup("");
    t->key_pem = rt_strdup("");
    t->server_ca_pem = rt_strdup("");
    t->client_ca_pem = rt_strdup("");
}

static void tls_opts_cleanup(node_tls_opts_t *t)
{
    rt_free(t->server_name);
    rt_free(t->cert_pem);
    rt_free(t->key_pem);
    rt_free(t->server_ca_pem);
    rt_free(t->client_ca_pem);
    memset(t, 0, sizeof(*t));
}

/* A TLS object's PEM value (SERVER.md §2.4): raw PEM, base64 PEM or a file path, tried in
 * that order. *field (rds_tls_t, owned) receives the PEM text; "" stays "". The file is
 * read here, before the loops run. Returns 0, or RT_EINVAL with the reason in why. */
static int resolve_pem(const char *key, const char *v, char **field, rt_buf_t *why)
{
    static const char begin[] = "-----BEGIN";
    if (v[0] == '\0' || strstr(v, begin) != NULL) {
        set_str(field, v);
        return 0;
    }
    rt_buf_t b = RT_BUF_INIT;
    int rc = rt_b64_decode(&b, v, strlen(v), false);
    if (rc != 0 || b.len == 0 || memmem(b.p, b.len, begin, sizeof(begin) - 1) == NULL) {
        rt_buf_reset(&b);
        rt_buf_t err = RT_BUF_INIT;
        rc = read_file(v, &b, &err);
        if (rc != 0)
            rt_buf_printf(why, "%s: neither PEM, base64 PEM nor a readable file (%.*s)", key,
                          (int)err.len, err.p ? (const char *)err.p : "");
        rt_buf_cleanup(&err);
    }
    if (rc == 0) {
        rt_free(*field);
        *field = rt_str_dup(rt_str_from((const char *)b.p, b.len));
    }
    rt_buf_cleanup(&b);
    return rc == 0 ? 0 : RT_EINVAL;
}

/* o (key names it) onto t: enabled adds to what the URL said (rediss://); every other
 * setting applies as given. Checked with rds_tls_check() when TLS ends up on. */
static int apply_tls_opts(const char *key, const node_tls_opts_t *o, rds_tls_t *t, rt_buf_t *why)
{
    char k[160];
    t->enabled = t->enabled || o->enabled;
    t->insecure_skip_verify = o->insecure_skip_verify;
    set_str(&t->server_name, o->server_name);
    snprintf(k, sizeof(k), "%s.server_ca_pem", key);
    int rc = resolve_pem(k, o->server_ca_pem, &t->ca_pem, why);
    snprintf(k, sizeof(k), "%s.cert_pem", key);
    if (rc == 0)
        rc = resolve_pem(k, o->cert_pem, &t->cert_pem, why);
    snprintf(k, sizeof(k), "%s.key_pem", key);
    if (rc == 0)
        rc = resolve_pem(k, o->key_pem, &t->key_pem, why);
    if (rc == 0 && t->enabled && rds_tls_check(t, why) != 0) {
        rt_buf_printf(why, " (%s)", key);
        rc = RT_EINVAL;
    }
    return rc;
}

/* engine.redis.tls and .sentinel_tls onto one shard's address. */
static int apply_redis_tls(const node_config_t *cfg, rds_addr_t *a, rt_buf_t *why)
{
    int rc = apply_tls_opts("engine.redis.tls", &cfg->redis_tls, &a->tls, why);
    if (rc == 0 && a->tls.enabled && a->unix_path[0] != '\0') {
        rt_buf_printf(why, "TLS is not supported over unix:// sockets (engine.redis.tls)");
        rc = RT_EINVAL;
    }
    if (rc == 0)
        rc = apply_tls_opts("engine.redis.sentinel_tls", &cfg->redis_sentinel_tls, &a->sentinel_tls,
                            why);
    return rc;
}

/* ---- public ---------------------------------------------------------------------------- */

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > 4096 ? 4096 : (int)n;
}

void node_config_defaults(node_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->http_address = rt_strdup("");
    cfg->http_port = 8000;
    cfg->http_internal_address = rt_strdup("");
    cfg->log_level = RT_LOG_INFO;
    cfg->engine_type = rt_strdup("memory");
    cfg->redis_addresses = rt_calloc(2, sizeof(char *));
    cfg->redis_addresses[0] = rt_strdup("redis://127.0.0.1:6379");
    cfg->redis_addresses_count = 1;
    cfg->redis_cluster_addresses = rt_calloc(1, sizeof(char *));
    cfg->redis_sentinel_addresses = rt_calloc(1, sizeof(char *));
    cfg->redis_sentinel_master_name = rt_strdup("");
    cfg->redis_sentinel_user = rt_strdup("");
    cfg->redis_sentinel_password = rt_strdup("");
    tls_opts_init(&cfg->redis_tls);
    tls_opts_init(&cfg->redis_sentinel_tls);
    cfg->redis_prefix = rt_strdup("rotor");
    cfg->redis_user = rt_strdup("");
    cfg->redis_password = rt_strdup("");
    cfg->redis_connect_timeout_ms = 1000;
    cfg->redis_io_timeout_ms = 4000;
    cfg->redis_presence_ttl_ms = 60000;
    cfg->workers = cpu_count();
    cfg->allowed_origins = rt_calloc(1, sizeof(char *));
    node_token_config_t *toks[] = {&cfg->token, &cfg->subscription_token};
    for (size_t i = 0; i < COUNT(toks); i++) {
        node_token_config_t *t = toks[i];
        t->hmac_secret_key = rt_strdup("");
        t->hmac_previous_secret_key = rt_strdup("");
        t->rsa_public_key = rt_strdup("");
        t->ecdsa_public_key = rt_strdup("");
        t->audience = rt_strdup("");
        t->audience_regex = rt_strdup("");
        t->issuer = rt_strdup("");
        t->issuer_regex = rt_strdup("");
        t->user_id_claim = rt_strdup("");
    }
    cfg->tcp_nodelay = true;
    cfg->ping_interval_ms = 25000;
    cfg->pong_timeout_ms = 8000;
    cfg->queue_max_size = 1048576;
    cfg->channel_limit = 128;
    cfg->stale_close_delay_ms = 10000;
    cfg->expired_close_delay_ms = 25000;
    cfg->expired_sub_close_delay_ms = 25000;
    cfg->presence_update_interval_ms = 27000;
    cfg->channel_position_check_delay_ms = 40000;
    cfg->history_max_publication_limit = 300;
    cfg->recovery_max_publication_limit = 300;
    cfg->personal_channel_namespace = rt_strdup("");
    ns_init(&cfg->without_namespace, "");
    cfg->channel_history_meta_ttl_ms = 720LL * 3600 * 1000;
    cfg->channel_max_length = 255;
    cfg->private_prefix = '$';
    cfg->namespace_boundary = ':';
    cfg->user_boundary = '#';
    cfg->user_separator = ',';
    cfg->http_api_prefix = rt_strdup("/api");
    cfg->http_api_key = rt_strdup("");
    cfg->websocket_prefix = rt_strdup("/connection/websocket");
    cfg->http_stream_prefix = rt_strdup("/connection/http_stream");
    cfg->http_stream_max_body = 65536;
    cfg->sse_prefix = rt_strdup("/connection/sse");
    cfg->sse_max_body = 65536;
    cfg->emulation_prefix = rt_strdup("/emulation");
    cfg->emulation_max_body = 65536;
    cfg->uni_websocket_prefix = rt_strdup("/connection/uni_websocket");
    cfg->uni_websocket_message_size_limit = 65536;
    cfg->uni_sse_prefix = rt_strdup("/connection/uni_sse");
    cfg->uni_sse_max_body = 65536;
    cfg->uni_http_stream_prefix = rt_strdup("/connection/uni_http_stream");
    cfg->uni_http_stream_max_body = 65536;
    cfg->uni_grpc_address = rt_strdup("");
    cfg->uni_grpc_port = 11000;
    cfg->uni_grpc_max_message = 65536;
    cfg->websocket_message_size_limit = 65536;
    cfg->websocket_write_timeout_ms = 1000;
    cfg->prometheus_prefix = rt_strdup("/metrics");
    cfg->health_prefix = rt_strdup("/health");
    cfg->node_name = rt_strdup("");
    cfg->shutdown_timeout_ms = 30000;
    cfg->shutdown_disconnect_window_ms = 1000;
    cfg->config_path = rt_strdup("");
}

void node_config_cleanup(node_config_t *cfg)
{
    rt_free(cfg->http_address);
    rt_free(cfg->http_internal_address);
    rt_free(cfg->engine_type);
    free_strv(cfg->redis_addresses);
    free_strv(cfg->redis_cluster_addresses);
    free_strv(cfg->redis_sentinel_addresses);
    rt_free(cfg->redis_sentinel_master_name);
    rt_free(cfg->redis_sentinel_user);
    rt_free(cfg->redis_sentinel_password);
    tls_opts_cleanup(&cfg->redis_tls);
    tls_opts_cleanup(&cfg->redis_sentinel_tls);
    rt_free(cfg->redis_prefix);
    rt_free(cfg->redis_user);
    rt_free(cfg->redis_password);
    free_consumers(cfg);
    free_strv(cfg->allowed_origins);
    node_token_config_t *toks[] = {&cfg->token, &cfg->subscription_token};
    for (size_t i = 0; i < COUNT(toks); i++) {
        node_token_config_t *t = toks[i];
        rt_free(t->hmac_secret_key);
        rt_free(t->hmac_previous_secret_key);
        rt_free(t->rsa_public_key);
        rt_free(t->ecdsa_public_key);
        rt_free(t->audience);
        rt_free(t->audience_regex);
        rt_free(t->issuer);
        rt_free(t->issuer_regex);
        rt_free(t->user_id_claim);
    }
    rt_free(cfg->personal_channel_namespace);
    ns_cleanup(&cfg->without_namespace);
    free_namespaces(cfg);
    rt_free(cfg->http_api_prefix);
    rt_free(cfg->http_api_key);
    rt_free(cfg->websocket_prefix);
    rt_free(cfg->http_stream_prefix);
    rt_free(cfg->sse_prefix);
    rt_free(cfg->emulation_prefix);
    rt_free(cfg->uni_websocket_prefix);
    rt_free(cfg->uni_sse_prefix);
    rt_free(cfg->uni_http_stream_prefix);
    rt_free(cfg->uni_grpc_address);
    rt_free(cfg->prometheus_prefix);
    rt_free(cfg->health_prefix);
    rt_free(cfg->node_name);
    rt_free(cfg->config_path);
    memset(cfg, 0, sizeof(*cfg));
}

/* What a Redis URL sets itself among the options the engine.redis keys also give.
 * rds_addr_parse() fills its defaults in, so its output cannot tell "unset" from "set to
 * the default"; a URL's own value must win, as in the reference. */
typedef struct url_opts {
    bool db;
    bool connect_timeout;
    bool io_timeout;
} url_opts_t;

/* Mirrors rds_addr_parse()'s split: the query starts at the first '?', the authority ends
 * at the first '/', userinfo ends at the authority's last '@', and a redis:// or tcp://
 * path is the db. Only called on a URL that parsed. */
static url_opts_t scan_url_opts(const char *url)
{
    url_opts_t o = {false, false, false};
    const char *p = strstr(url, "://");
    if (p == NULL)
        return o; /* host:port sets nothing */
    bool is_unix = strncasecmp(url, "unix://", 7) == 0;
    p += 3;
    const char *q = strchr(p, '?');
    const char *end = q != NULL ? q : p + strlen(p);
    const char *auth_end = memchr(p, '/', (size_t)(end - p));
    if (auth_end == NULL)
        auth_end = end;
    for (const char *c = p; c < auth_end; c++) {
        if (*c == '@')
            p = c + 1;
    }
    if (!is_unix) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        o.db = slash != NULL && slash + 1 < end;
    }
    for (const char *k = q; k != NULL && *k != '\0';) {
        k++;
        size_t n = strcspn(k, "=&");
        if (n == 2 && strncmp(k, "db", 2) == 0)
            o.db = true;
        else if ((n == 15 && strncmp(k, "connect_timeout", 15) == 0) ||
                 (n == 12 && strncmp(k, "dial_timeout", 12) == 0))
            o.connect_timeout = true;
        else if (n == 10 && strncmp(k, "io_timeout", 10) == 0)
            o.io_timeout = true;
        k = strchr(k, '&');
    }
    return o;
}

/* The engine-wide defaults for what a URL (or a seed list) does not set. */
typedef struct addr_defaults {
    const char *user;
    const char *password;
    int64_t db;
    int64_t connect_timeout_ms;
    int64_t io_timeout_ms;
} addr_defaults_t;

static void apply_defaults(rds_addr_t *a, const addr_defaults_t *d, url_opts_t o)
{
    if (a->user[0] == '\0' && d->user[0] != '\0')
        set_str(&a->user, d->user);
    if (a->password[0] == '\0' && d->password[0] != '\0')
        set_str(&a->password, d->password);
    if (!o.db)
        a->db = (int)d->db;
    if (!o.connect_timeout)
        a->connect_timeout_ms = d->connect_timeout_ms;
    if (!o.io_timeout)
        a->io_timeout_ms = d->io_timeout_ms;
}

/* A cluster has no other database; an engine-wide db would otherwise slip into it. */
static int check_cluster_db(const rds_addr_t *a, rt_buf_t *why)
{
    if (a->mode != RDS_MODE_CLUSTER || a->db == 0)
        return 0;
    rt_buf_printf(why, "Redis Cluster has only db 0 (engine.redis.db is %d)", a->db);
    return RT_EINVAL;
}

/* rds_addr_parse(url) with the defaults applied where the URL has none. why gets the bare
 * reason (no key). */
static int resolve_addr(const char *url, const addr_defaults_t *d, rds_addr_t *out, rt_buf_t *why)
{
    int rc = rds_addr_parse(url, out, why);
    if (rc != 0)
        return rc;
    apply_defaults(out, d, scan_url_opts(url));
    return check_cluster_db(out, why);
}

static int resolve_seeds(const node_config_t *cfg, const char *list, rds_mode_t mode,
                         const addr_defaults_t *d, rds_addr_t *out, rt_buf_t *why)
{
    int rc = rds_addr_from_seeds(list, mode, out, why);
    if (rc != 0)
        return rc;
    apply_defaults(out, d, (url_opts_t){0});
    if (mode == RDS_MODE_CLUSTER)
        return check_cluster_db(out, why);
    if (cfg->redis_sentinel_master_name[0] == '\0') {
        rt_buf_printf(why, "engine.redis.sentinel_master_name must be set when using Redis "
                           "Sentinel");
        return RT_EINVAL;
    }
    set_str(&out->sentinel_master, cfg->redis_sentinel_master_name);
    set_str(&out->sentinel_user, cfg->redis_sentinel_user);
    set_str(&out->sentinel_password, cfg->redis_sentinel_password);
    return 0;
}

/* On failure key receives the offending key and why the reason. */
static int redis_shards(const node_config_t *cfg, rds_addr_t **out, size_t *n, char *key,
                        size_t key_size, rt_buf_t *why)
{
    const addr_defaults_t d = {cfg->redis_user, cfg->redis_password, cfg->redis_db,
                               cfg->redis_connect_timeout_ms, cfg->redis_io_timeout_ms};
    /* Centrifugo's order: cluster_address, then sentinel_address, then address. */
    char **list = cfg->redis_addresses;
    size_t count = cfg->redis_addresses_count;
    const char *name = "address";
    rds_mode_t mode = RDS_MODE_STANDALONE;
    if (cfg->redis_cluster_addresses_count > 0) {
        list = cfg->redis_cluster_addresses;
        count = cfg->redis_cluster_addresses_count;
        name = "cluster_address";
        mode = RDS_MODE_CLUSTER;
    } else if (cfg->redis_sentinel_addresses_count > 0) {
        list = cfg->redis_sentinel_addresses;
        count = cfg->redis_sentinel_addresses_count;
        name = "sentinel_address";
        mode = RDS_MODE_SENTINEL;
    }
    rds_addr_t *a = rt_calloc(count ? count : 1, sizeof(rds_addr_t));
    for (size_t i = 0; i < count; i++) {
        int rc = mode == RDS_MODE_STANDALONE ? resolve_addr(list[i], &d, &a[i], why)
                                             : resolve_seeds(cfg, list[i], mode, &d, &a[i], why);
        if (rc == 0)
            rc = apply_redis_tls(cfg, &a[i], why);
        if (rc != 0) {
            snprintf(key, key_size, "engine.redis.%s[%zu]", name, i);
            for (size_t k = 0; k <= i; k++)
                rds_addr_cleanup(&a[k]);
            rt_free(a);
            *out = NULL;
            *n = 0;
            return rc;
        }
    }
    *out = a;
    *n = count;
    return 0;
}

int node_config_redis_shards(const node_config_t *cfg, rds_addr_t **out, size_t *n, rt_buf_t *err)
{
    char key[64];
    rt_buf_t why = RT_BUF_INIT;
    int rc = redis_shards(cfg, out, n, key, sizeof(key), &why);
    if (rc != 0 && err != NULL)
        rt_buf_printf(err, "%s: %.*s", key, (int)why.len, why.p ? (const char *)why.p : "");
    rt_buf_cleanup(&why);
    return rc;
}

int node_consumer_redis_addr(const node_consumer_t *c, rds_addr_t *out, rt_buf_t *err)
{
    const node_redis_stream_consumer_t *r = &c->redis_stream;
    const addr_defaults_t d = {r->user, r->password, r->db, r->connect_timeout_ms,
                               r->io_timeout_ms};
    rt_buf_t why = RT_BUF_INIT;
    int rc = resolve_addr(r->address, &d, out, &why);
    if (rc == 0 && out->mode == RDS_MODE_CLUSTER) {
        rt_buf_append_cstr(&why, WHY_CLUSTER);
        rc = RT_EINVAL;
    }
    if (rc != 0) {
        if (err != NULL)
            rt_buf_printf(err, "consumers[%s].redis_stream.address: %.*s", c->name, (int)why.len,
                          why.p ? (const char *)why.p : "");
        rt_buf_cleanup(&why);
        return rc;
    }
    /* TLS errors name their key themselves (consumers[<name>].redis_stream.tls.*). */
    char key[128];
    snprintf(key, sizeof(key), "consumers[%s].redis_stream.tls", c->name);
    rc = apply_tls_opts(key, &r->tls, &out->tls, &why);
    if (rc == 0 && out->tls.enabled && out->unix_path[0] != '\0') {
        rt_buf_printf(&why, "TLS is not supported over unix:// sockets (%s)", key);
        rc = RT_EINVAL;
    }
    snprintf(key, sizeof(key), "consumers[%s].redis_stream.sentinel_tls", c->name);
    if (rc == 0)
        rc = apply_tls_opts(key, &r->sentinel_tls, &out->sentinel_tls, &why);
    if (rc != 0 && err != NULL)
        rt_buf_append(err, why.p, why.len);
    rt_buf_cleanup(&why);
    return rc;
}

static void collect_env(loader_t *L, char *const *envp)
{
    size_t n = 0;
    for (char *const *e = envp; *e != NULL; e++)
        n++;
    L->env = rt_calloc(n ? n : 1, sizeof(env_var_t));
    for (char *const *e = envp; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || eq[1] == '\0')
            continue; /* empty counts as unset */
        env_var_t v = {*e, (size_t)(eq - *e), eq + 1, false};
        if (env_name_suffix(&v).p == NULL)
            continue;
        L->env[L->env_count++] = v;
    }
}

static int load(node_config_t *cfg, const char *name, const char *p, size_t n, char *const *envp,
                char *const *flag_kv, size_t nflags, rt_buf_t *err)
{
    loader_t L = {cfg, err, NULL, 0};
    int rc = 0;
    if (p != NULL) {
        set_str(&cfg->config_path, name);
        rc = apply_buffer(&L, name, p, n);
    }
    if (rc == 0) {
        collect_env(&L, envp != NULL ? envp : environ);
        rc = apply_env(&L);
    }
    if (rc == 0)
        rc = apply_flags(&L, flag_kv, flag_kv != NULL ? nflags : 0);
    if (rc == 0)
        rc = finalize(&L);
    rt_free(L.env);
    return rc;
}

int node_config_load_buffer(node_config_t *cfg, const char *name, const char *p, size_t n,
                            char *const *envp, char *const *flag_kv, size_t nflags, rt_buf_t *err)
{
    node_config_defaults(cfg);
    return load(cfg, name != NULL ? name : "<buffer>", p, n, envp, flag_kv, nflags, err);
}

int node_config_load(node_config_t *cfg, const char *path, char *const *envp, char *const *flag_kv,
                     size_t nflags, rt_buf_t *err)
{
    node_config_defaults(cfg);
    if (path == NULL) {
        if (access("config.json", F_OK) != 0)
            return load(cfg, NULL, NULL, 0, envp, flag_kv, nflags, err);
        path = "config.json";
    }
    if (unsupported_extension(path)) {
        loader_t L = {cfg, err, NULL, 0};
        return apply_buffer(&L, path, "", 0);
    }
    rt_buf_t data = RT_BUF_INIT;
    int rc = read_file(path, &data, err);
    if (rc == 0)
        rc = load(cfg, path, data.p ? (const char *)data.p : "", data.len, envp, flag_kv, nflags,
                  err);
    rt_buf_cleanup(&data);
    return rc;
}

const node_ns_opts_t *node_config_resolve(const node_config_t *cfg, const char *channel, size_t len,
                                          const char **rest, size_t *rest_len)
{
    const char *rest_tmp;
    size_t rest_len_tmp;
    if (rest == NULL)
        rest = &rest_tmp; /* callers that only need the options */
    if (rest_len == NULL)
        rest_len = &rest_len_tmp;
    const char *p = channel;
    size_t n = len;
    if (cfg->private_prefix != '\0' && n > 0 && p[0] == cfg->private_prefix) {
        p++;
        n--;
    }
    const char *b =
        cfg->namespace_boundary != '\0' && n > 0 ? memchr(p, cfg->namespace_boundary, n) : NULL;
    if (b != NULL) {
        size_t name_len = (size_t)(b - p);
        *rest = b + 1;
        *rest_len = n - name_len - 1;
        /* Like the reference (container.go), an empty name means "no namespace". */
        if (name_len == 0)
            return &cfg->without_namespace;
        return find_ns(cfg, p, name_len);
    }
    *rest = channel;
    *rest_len = len;
    return &cfg->without_namespace;
}

bool node_channel_is_private(const node_config_t *cfg, rt_str_t channel)
{
    return cfg->private_prefix != '\0' && channel.n > 0 && channel.p[0] == cfg->private_prefix;
}

bool node_channel_is_user_limited(const node_config_t *cfg, const node_ns_opts_t *ns,
                                  rt_str_t channel)
{
    return ns->allow_user_limited_channels && cfg->user_boundary != '\0' && channel.n > 0 &&
           memchr(channel.p, cfg->user_boundary, channel.n) != NULL;
}

bool node_channel_user_allowed(const node_config_t *cfg, const node_ns_opts_t *ns, rt_str_t channel,
                               rt_str_t user)
{
    if (user.n == 0 || !node_channel_is_user_limited(cfg, ns, channel))
        return false;
    const char *b = memrchr(channel.p, cfg->user_boundary, channel.n);
    const char *p = b + 1;
    const char *end = channel.p + channel.n;
    while (p <= end) {
        const char *sep =
            cfg->user_separator != '\0' ? memchr(p, cfg->user_separator, (size_t)(end - p)) : NULL;
        const char *stop = sep != NULL ? sep : end;
        if ((size_t)(stop - p) == user.n && memcmp(p, user.p, user.n) == 0)
            return true;
        p = stop + 1;
    }
    return false;
}

int node_channel_validate_name(const node_config_t *cfg, const node_ns_opts_t *ns, rt_str_t channel,
                               rt_str_t rest)
{
    if ((int64_t)channel.n > cfg->channel_max_length)
        return RT_EINVAL;
    if (ns->has_regex) {
        /* regexec needs a C string; a NUL inside could only end the match early. */
        if (rest.n > 0 && memchr(rest.p, '\0', rest.n) != NULL)
            return RT_EINVAL;
        char stack[512];
        char *s = rest.n < sizeof(stack) ? stack : rt_malloc(rest.n + 1);
        if (rest.n > 0)
            memcpy(s, rest.p, rest.n);
        s[rest.n] = '\0';
        int rc = regexec(&ns->regex, s, 0, NULL, 0);
        if (s != stack)
            rt_free(s);
        return rc == 0 ? 0 : RT_EINVAL;
    }
    for (size_t i = 0; i < channel.n; i++) {
        if ((unsigned char)channel.p[i] >= 0x80)
            return RT_EINVAL;
    }
    return 0;
}

void node_config_generate(rt_buf_t *out)
{
    uint8_t raw[32];
    rt_random_fill(raw, sizeof(raw));
    char secret[65];
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(secret + 2 * i, 3, "%02x", raw[i]);
    char key[37];
    rt_uuid4(key);
    rt_buf_printf(out,
                  "{\n"
                  "  \"client\": {\n"
                  "    \"token\": {\n"
                  "      \"hmac_secret_key\": \"%s\"\n"
                  "    },\n"
                  "    \"allowed_origins\": []\n"
                  "  },\n"
                  "  \"http_api\": {\n"
                  "    \"key\": \"%s\"\n"
                  "  }\n"
                  "}\n",
                  secret, key);
}

static void format_duration(rt_buf_t *out, int64_t ms)
{
    if (ms < 0) {
        rt_buf_append_byte(out, '-');
        ms = -ms;
    }
    if (ms == 0)
        rt_buf_append_cstr(out, "0s");
    else if (ms % 3600000 == 0)
        rt_buf_printf(out, "%" PRId64 "h", ms / 3600000);
    else if (ms % 60000 == 0)
        rt_buf_printf(out, "%" PRId64 "m", ms / 60000);
    else if (ms % 1000 == 0)
        rt_buf_printf(out, "%" PRId64 "s", ms / 1000);
    else
        rt_buf_printf(out, "%" PRId64 "ms", ms);
}

static const char *data_format_name(node_data_format_t f)
{
    switch (f) {
    case NODE_DATA_FORMAT_JSON:
        return "json";
    case NODE_DATA_FORMAT_JSON_OBJECT:
        return "json_object";
    case NODE_DATA_FORMAT_BINARY:
        return "binary";
    default:
        return "";
    }
}

static void format_value(rt_buf_t *out, const key_def_t *def, const void *base)
{
    const char *field = (const char *)base + def->off;
    static const char *const levels[] = {"trace", "debug", "info", "warn", "error", "none"};
    switch (def->kind) {
    case K_BOOL:
        rt_buf_append_cstr(out, *(const bool *)field ? "true" : "false");
        break;
    case K_IGNBOOL:
        rt_buf_append_cstr(out, "false");
        break;
    case K_STRV:
        for (char *const *p = *(char **const *)field; p != NULL && *p != NULL; p++) {
            if (p != *(char **const *)field)
                rt_buf_append_byte(out, ' ');
            rt_buf_append_cstr(out, *p);
        }
        break;
    case K_ERRMODE:
    case K_RECMODE:
    case K_DELTA:
    case K_ORIGINS:
    case K_SUBTYPE:
        break; /* every default is the empty value */
    case K_LOGLEVEL:
        rt_buf_append_cstr(out, levels[*(const int *)field]);
        break;
    case K_INT:
        rt_buf_append_i64(out, *(const int *)field);
        break;
    case K_PORT:
        if (*(const int *)field != 0) /* internal_port: "" = same listener */
            rt_buf_append_i64(out, *(const int *)field);
        break;
    case K_I64:
        rt_buf_append_i64(out, *(const int64_t *)field);
        break;
    case K_DUR:
        format_duration(out, *(const int64_t *)field);
        break;
    case K_ADDR1:
    case K_STR:
    case K_PREFIX:
        rt_buf_append_cstr(out, *(char *const *)field);
        break;
    case K_CHAR:
        if (*field != '\0')
            rt_buf_append_byte(out, (uint8_t)*field);
        break;
    case K_DATAFMT:
        rt_buf_append_cstr(out, data_format_name(*(const node_data_format_t *)(const void *)field));
        break;
    }
}

void node_config_default_env(rt_buf_t *out)
{
    node_config_t cfg;
    node_config_defaults(&cfg);
    for (size_t i = 0; i < COUNT(top_keys); i++) {
        rt_buf_append_cstr(out, "CENTRIFUGO_");
        env_suffix(out, top_keys[i].path);
        rt_buf_append_byte(out, '=');
        format_value(out, &top_keys[i], &cfg);
        rt_buf_append_byte(out, '\n');
    }
    rt_buf_append_cstr(out, "CENTRIFUGO_CHANNEL_NAMESPACES=\n");
    rt_buf_append_cstr(out, "CENTRIFUGO_CONSUMERS=\n");
    for (size_t i = 0; i < COUNT(ns_keys); i++) {
        rt_buf_append_cstr(out, "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_");
        env_suffix(out, ns_keys[i].path);
        rt_buf_append_byte(out, '=');
        format_value(out, &ns_keys[i], &cfg.without_namespace);
        rt_buf_append_byte(out, '\n');
    }
    node_config_cleanup(&cfg);
}

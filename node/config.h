/* Node configuration: Centrifugo v6 keys (SERVER.md §2.4) from a JSON file, overridden by
 * ROTOR_* / CENTRIFUGO_* environment variables and command-line flags (§2.5).
 *
 * The loaded config is read-only after start and shared by every thread. All strings are
 * owned by the config (heap, NUL-terminated, never NULL: "" when unset). Durations are
 * milliseconds.
 *
 * Value syntax. File: JSON only (strict, node/base/json.h); a .yaml/.yml/.toml path is an
 * error. Durations are Go duration strings ("25s", "720h", "100ms", "-1s"); a plain JSON
 * integer is also accepted and means seconds (a rotor leniency; Centrifugo wants strings).
 * null leaves a key at its current value. Environment and flags: Go ParseBool booleans,
 * decimal integers, durations as above, []string space-separated, channel.namespaces as a
 * JSON array string (or space-separated names creating empty namespaces).
 * channel_regex is compiled as a POSIX extended regex (REG_EXTENDED | REG_NOSUB), not RE2:
 * Perl classes such as \d are not available.
 *
 * engine.redis.address and consumers[].redis_stream.streams also take a single string in
 * the file; consumers (like channel.namespaces) take a JSON array string or names in the
 * environment, plus CENTRIFUGO_CONSUMERS_<NAME>_<OPTION> per element.
 *
 * Keys Centrifugo has but rotor does not implement (proxies, uni_*, sse, Redis TLS,
 * history_use_lists, Cluster/Sentinel keys of consumers, separate broker/presence_manager sections,
 * http_stream, grpc_api, admin, TLS, ...) are accepted with a warning "not supported by
 * rotor yet", except when they would switch a feature on (any "enabled"/"*_enabled": true
 * inside them, or a non-empty value of a key such as client.token.jwks_public_endpoint,
 * log.file, *_cel): that is an RT_EINVAL error naming the key, never a silent fallback. */
#ifndef RT_NODE_CONFIG_H
#define RT_NODE_CONFIG_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/buf.h"
#include "node/base/str.h"

/* broker/rds.h defines it; a repeated typedef is valid C11 and keeps hiredis and libev out
 * of every file that reads the config. */
typedef struct rds_addr rds_addr_t;

/* A TLS object (SERVER.md §2.4) as written; engine.redis.tls and .sentinel_tls. The PEM
 * values may be raw PEM, base64 PEM or a file path, resolved (file read) when the Redis
 * shards are built. Strings owned, never NULL, [""]. */
typedef struct node_tls_opts {
    bool enabled;              /* [false] TLS for every address (as rediss:// does) */
    bool insecure_skip_verify; /* [false] */
    char *server_name;         /* SNI and verified name; "" = the host dialled */
    char *cert_pem;            /* client certificate (mTLS) */
    char *key_pem;             /* its key */
    char *server_ca_pem;       /* CAs for the server certificate; "" = system store */
    char *client_ca_pem;       /* accepted; only servers use it */
} node_tls_opts_t;

typedef enum node_data_format {
    NODE_DATA_FORMAT_ANY_NONEMPTY = 0, /* "" : reject empty data */
    NODE_DATA_FORMAT_JSON,
    NODE_DATA_FORMAT_JSON_OBJECT,
    NODE_DATA_FORMAT_BINARY,
} node_data_format_t;

/* Options of channel.without_namespace and of each channel.namespaces element (§2.2). */
typedef struct node_ns_opts {
    char *name; /* namespace name; "" for without_namespace */
    bool presence;
    bool join_leave;
    bool force_push_join_leave;
    int64_t history_size;
    int64_t history_ttl_ms;
    int64_t history_meta_ttl_ms; /* effective: namespace value or channel.history_meta_ttl */
    bool force_positioning;
    bool allow_positioning;
    bool force_recovery;
    bool allow_recovery;
    bool force_recovery_mode_cache; /* force_recovery_mode: "cache" */
    bool auto_cache_recover;
    bool delta_publish;
    bool allow_fossil_delta; /* allowed_delta_types contains "fossil" */
    bool allow_tags_filter;
    node_data_format_t publication_data_format; /* effective (falls back to channel.*) */
    bool allow_subscribe_for_client;
    bool allow_subscribe_for_anonymous;
    bool allow_publish_for_subscriber;
    bool allow_publish_for_client;
    bool allow_publish_for_anonymous;
    bool allow_presence_for_subscriber;
    bool allow_presence_for_client;
    bool allow_presence_for_anonymous;
    bool allow_history_for_subscriber;
    bool allow_history_for_client;
    bool allow_history_for_anonymous;
    bool allow_user_limited_channels;
    char *channel_regex; /* "" = none; matched against the part after "ns:" */
    bool has_regex;
    regex_t regex; /* compiled channel_regex (POSIX ERE) when has_regex */
} node_ns_opts_t;

typedef struct node_token_config {
    char *hmac_secret_key;
    char *hmac_previous_secret_key;
    int64_t hmac_previous_secret_key_valid_until; /* Unix s, 0 = no deadline */
    char *rsa_public_key;                         /* PEM */
    char *ecdsa_public_key;                       /* PEM */
    char *audience;
    char *audience_regex;
    char *issuer;
    char *issuer_regex;
    char *user_id_claim; /* "" = sub */
} node_token_config_t;

typedef enum node_consumer_type {
    NODE_CONSUMER_REDIS_STREAM = 1, /* "redis_stream" (SERVER.md §4.2) */
    NODE_CONSUMER_OTHER,            /* another Centrifugo type; never enabled (load refuses) */
} node_consumer_type_t;

/* consumers[].redis_stream (SERVER.md §4.2). Strings owned, never NULL. */
typedef struct node_redis_stream_consumer {
    char *address;              /* one shard: raw URL [redis://127.0.0.1:6379]; parsed by
                                   node_consumer_redis_addr() */
    char *user;                 /* applied where the URL sets none */
    char *password;             /* applied where the URL sets none */
    int64_t db;                 /* [0]; applied when the URL has no db */
    int64_t connect_timeout_ms; /* [1s]; applied when the URL has no connect_timeout */
    int64_t io_timeout_ms;      /* [4s]; applied when the URL has no io_timeout */
    char **streams;             /* owned, NULL-terminated; keys used verbatim (no prefix);
                                   non-empty when enabled */
    size_t streams_count;
    char *consumer_group;          /* non-empty when enabled */
    int64_t visibility_timeout_ms; /* [30s] > 0 */
    int64_t num_workers;           /* [1] >= 1, per stream */
    char *payload_value;           /* [payload] entry field with the JSON payload */
    char *method_value;            /* [method] entry field with the method */
    bool publication_data_mode;    /* publication_data_mode.enabled [false] */
    /* publication_data_mode.*: entry field names */
    char *channels_value;         /* [centrifugo-channels] non-empty when the mode is on */
    char *idempotency_key_value;  /* [centrifugo-idempotency-key] */
    char *delta_value;            /* [centrifugo-delta] */
    char *version_value;          /* [centrifugo-version] */
    char *version_epoch_value;    /* [centrifugo-version-epoch] */
    char *tags_value_prefix;      /* [centrifugo-tag-] */
    node_tls_opts_t tls;          /* redis_stream.tls: the Redis server (as engine.redis.tls) */
    node_tls_opts_t sentinel_tls; /* redis_stream.sentinel_tls: Sentinels of a
                                     redis+sentinel:// address */
} node_redis_stream_consumer_t;

/* One element of the top-level consumers array (SERVER.md §4.1). */
typedef struct node_consumer {
    char *name;                   /* ^[a-zA-Z0-9_]{2,}$, unique; owned */
    bool enabled;                 /* [false]; true only for redis_stream (load refuses
                                     other enabled types) */
    char *type;                   /* as configured ("redis_stream", "kafka", ...); owned */
    node_consumer_type_t type_id; /* from type */
    node_redis_stream_consumer_t redis_stream; /* filled (defaults) for every element */
} node_consumer_t;

typedef struct node_config {
    /* http_server */
    char *http_address; /* "" = all interfaces */
    int http_port;      /* [8000] */
    char *http_internal_address;
    int http_internal_port; /* 0 = same listener as http_port */

    /* log */
    int log_level; /* RT_LOG_* [info] */

    /* engine */
    char *engine_type; /* "memory" or "redis" */

    /* engine.redis (SERVER.md §3.2), used when engine_type is "redis"; then every address
     * has been checked with rds_addr_parse(). Strings owned, never NULL. */
    char **redis_addresses; /* owned, NULL-terminated raw URLs, one per shard (>= 1)
                               [redis://127.0.0.1:6379] */
    size_t redis_addresses_count;
    /* Older explicit keys (§3.2): when cluster_address has elements it wins over everything,
     * else sentinel_address over address (Centrifugo's order). One element per shard, each
     * comma-separated "host:port" seeds. Owned, NULL-terminated, [] by default. */
    char **redis_cluster_addresses;
    size_t redis_cluster_addresses_count;
    char **redis_sentinel_addresses;
    size_t redis_sentinel_addresses_count;
    char *redis_sentinel_master_name; /* [""]; required with sentinel_address */
    char *redis_sentinel_user;        /* [""]; AUTH user for the Sentinels */
    char *redis_sentinel_password;    /* [""]; AUTH password for the Sentinels */
    char *redis_prefix;               /* [rotor] key and channel prefix (§7.1) */
    char *redis_user;                 /* [""]; applied where a URL sets no user */
    char *redis_password;             /* [""]; applied where a URL sets no password */
    int64_t redis_db;                 /* [0]; applied where a URL sets no db */
    int64_t redis_connect_timeout_ms; /* [1s] > 0; applied where a URL sets none */
    int64_t redis_io_timeout_ms;      /* [4s] > 0; applied where a URL sets none */
    int64_t redis_presence_ttl_ms;    /* [60s] > 0 */
    bool redis_force_resp2;           /* accepted; hiredis 0.14 always speaks RESP2 */
    bool redis_sharded_pubsub;        /* [false] SPUBLISH/SSUBSCRIBE on Redis Cluster (§3.14) */
    /* [false] per-user connection counts in Redis: cheap presence_stats (§3.8) */
    bool redis_presence_user_mapping;
    /* [false] HEXPIRE per hash field instead of the zset indexes; needs Redis >= 7.4,
     * probed at start-up */
    bool redis_presence_hash_field_ttl;
    node_tls_opts_t redis_tls;          /* engine.redis.tls: the Redis servers */
    node_tls_opts_t redis_sentinel_tls; /* engine.redis.sentinel_tls: the Sentinels */

    /* workers: number of worker loops [CPU count, sysconf]; >= 1; key "workers" (rotor
     * extension) */
    int workers;

    /* client */
    char **allowed_origins; /* NULL-terminated array of lower-cased glob patterns */
    size_t allowed_origins_count;
    node_token_config_t token;
    bool subscription_token_enabled;
    node_token_config_t subscription_token; /* used when subscription_token_enabled */
    bool allow_anonymous_connect_without_token;
    bool disallow_anonymous_connection_tokens;
    bool client_insecure;
    bool insecure_skip_token_signature_verify;
    /* TCP_NODELAY on client connections (WebSocket, streams) [true]. false lets the kernel
     * coalesce pushes written while earlier ones are unacknowledged (Nagle): fewer segments
     * when a client gets many messages per round trip, up to one delayed-ACK interval of
     * added latency for a client that is itself sending. */
    bool tcp_nodelay;
    int64_t ping_interval_ms;                /* [25s]; < 0 disables; 0 rejected; > pong_timeout */
    int64_t pong_timeout_ms;                 /* [8s]; < 0 disables; 0 rejected */
    int64_t queue_max_size;                  /* bytes [1048576] */
    int64_t channel_limit;                   /* [128] */
    int64_t user_connection_limit;           /* [0] */
    int64_t connection_limit;                /* [0] */
    int64_t connection_rate_limit;           /* [0] new connections/s per node; 0 = off */
    int64_t stale_close_delay_ms;            /* [10s] */
    int64_t expired_close_delay_ms;          /* [25s] */
    int64_t expired_sub_close_delay_ms;      /* [25s] */
    int64_t presence_update_interval_ms;     /* [27s] */
    int64_t channel_position_check_delay_ms; /* [40s] */
    int64_t history_max_publication_limit;   /* [300] */
    int64_t recovery_max_publication_limit;  /* [300] */
    bool connect_include_server_time;
    bool personal_channel_enabled;    /* client.subscribe_to_user_personal_channel.enabled */
    char *personal_channel_namespace; /* ...personal_channel_namespace */
    bool personal_single_connection;  /* ...single_connection */

    /* channel */
    node_ns_opts_t without_namespace;
    node_ns_opts_t *namespaces;
    size_t namespaces_count;
    int64_t channel_history_meta_ttl_ms; /* [720h] */
    int64_t channel_max_length;          /* [255] */
    /* Single characters; '\0' (configured as "") disables the feature. */
    char private_prefix;     /* [$] */
    char namespace_boundary; /* [:] */
    char user_boundary;      /* [#] */
    char user_separator;     /* [,] */

    /* rpc: OSS without proxies has no handlers; kept for completeness */

    /* http_api */
    bool http_api_disabled;
    char *http_api_prefix; /* [/api] */
    char *http_api_key;
    bool http_api_insecure;
    bool http_api_error_mode_transport; /* error_mode: "transport" */
    bool http_api_external;

    /* websocket */
    bool websocket_disabled;
    char *websocket_prefix;               /* [/connection/websocket] */
    int64_t websocket_message_size_limit; /* [65536] */
    int64_t websocket_write_timeout_ms;   /* [1000] */
    /* bidirectional emulation (PROTOCOL.md §10.3) */
    bool http_stream_enabled;
    char *http_stream_prefix;     /* [/connection/http_stream] */
    int64_t http_stream_max_body; /* http_stream.max_request_body_size [65536] */
    bool sse_enabled;
    char *sse_prefix;           /* [/connection/sse] */
    int64_t sse_max_body;       /* sse.max_request_body_size [65536] */
    char *emulation_prefix;     /* [/emulation]; served when sse or http_stream is on */
    int64_t emulation_max_body; /* emulation.max_request_body_size [65536] */
    /* unidirectional (PROTOCOL.md §10.5-10.8) */
    bool uni_websocket_enabled;
    char *uni_websocket_prefix;               /* [/connection/uni_websocket] */
    int64_t uni_websocket_message_size_limit; /* [65536] */
    bool uni_sse_enabled;
    char *uni_sse_prefix;     /* [/connection/uni_sse] */
    int64_t uni_sse_max_body; /* [65536] */
    bool uni_http_stream_enabled;
    char *uni_http_stream_prefix;     /* [/connection/uni_http_stream] */
    int64_t uni_http_stream_max_body; /* [65536] */
    bool uni_grpc_enabled;
    char *uni_grpc_address;       /* [""] = every interface */
    int uni_grpc_port;            /* [11000] */
    int64_t uni_grpc_max_message; /* uni_grpc.max_receive_message_size [65536] */

    /* prometheus / health */
    bool prometheus_enabled;
    char *prometheus_prefix; /* [/metrics] */
    bool health_enabled;
    char *health_prefix; /* [/health] */
    /* readiness endpoint is always served at /ready (rotor extension, SERVER.md §7.9) */

    /* node / shutdown */
    char *node_name;             /* [hostname_port] */
    int64_t shutdown_timeout_ms; /* [30s] */
    int64_t
        shutdown_drain_delay_ms; /* rotor: shutdown.drain_delay [0]: /ready 503 before closing */
    /* rotor: shutdown.disconnect_window [1s]: clients are disconnected (3001) spread over
     * this window, so they do not all reconnect elsewhere in the same instant. */
    int64_t shutdown_disconnect_window_ms;

    node_data_format_t publication_data_format; /* channel.publication_data_format [""]; the
                                                   fallback of every namespace */

    /* consumers (SERVER.md §4): every element, in file order */
    node_consumer_t *consumers; /* owned array */
    size_t consumers_count;

    char *config_path; /* file actually read; "" when none */
    unsigned warnings; /* warnings logged by the load (unknown or unsupported keys) */
} node_config_t;

/* Fills every field with its default. */
void node_config_defaults(node_config_t *cfg);

/* Builds the configuration into cfg (caller storage; its previous content is overwritten,
 * not freed): defaults, then the file (path NULL = config.json if it
 * exists, else nothing), then environment (envp, NULL = environ), then flags already
 * parsed into flag_kv ("key=value" dotted paths, e.g. "http_server.port=9000"; may be
 * NULL). Unknown keys log a warning. On an invalid value returns RT_EINVAL and appends a
 * message naming the key to err. cfg is caller storage and needs node_config_cleanup()
 * afterwards whatever the result (on error it holds a partial config: do not use it).
 * Errors: RT_EINVAL (invalid value, unknown flag key, YAML/TOML file, invalid JSON),
 * RT_ENOTFOUND (an explicit path that does not exist), RT_EIO (file unreadable), each with
 * a message in err. Does not change the log level: the caller applies cfg->log_level. */
int node_config_load(node_config_t *cfg, const char *path, char *const *envp, char *const *flag_kv,
                     size_t nflags, rt_buf_t *err);
/* As node_config_load, with the file's bytes given in p[0..n) (borrowed); name appears in
 * messages and in cfg->config_path (NULL = "<buffer>"). p NULL means "no file". */
int node_config_load_buffer(node_config_t *cfg, const char *name, const char *p, size_t n,
                            char *const *envp, char *const *flag_kv, size_t nflags, rt_buf_t *err);
/* Frees everything the config owns; safe on a defaulted, loaded or failed config. */
void node_config_cleanup(node_config_t *cfg);

/* The Redis shards of engine.redis: *out receives an rt_malloc'ed array of *n parsed
 * addresses, one per element of cluster_address (mode CLUSTER), else of sentinel_address
 * (mode SENTINEL, with sentinel_master_name/user/password), else of address (whatever
 * each URL says, redis+cluster:// and redis+sentinel:// included), each with redis_user,
 * redis_password, redis_db and the timeouts applied where its URL did not set them. The
 * caller owns the result: rds_addr_cleanup() on each element, then rt_free(*out). Pure,
 * any thread. Returns 0, or RT_EINVAL with a message naming the key (e.g.
 * engine.redis.address[i]) in err (*out is NULL and *n 0 then). */
int node_config_redis_shards(const node_config_t *cfg, rds_addr_t **out, size_t *n, rt_buf_t *err);
/* The Redis server of a redis_stream consumer, as node_config_redis_shards does for one
 * address (the consumer's user/password/db/timeouts applied). *out is initialised in every
 * case; release it with rds_addr_cleanup(). The consumer's tls and sentinel_tls objects
 * apply as engine.redis.tls does to a shard. Returns 0, or RT_EINVAL with a message naming
 * consumers[<name>].redis_stream in err. */
int node_consumer_redis_addr(const node_consumer_t *c, rds_addr_t *out, rt_buf_t *err);

/* Namespace options for a channel (§2.1 resolution): one leading private prefix is
 * ignored for the lookup, the namespace is the text before the first boundary. Returns
 * NULL for an unknown namespace (error 102); an empty name (":x") means without_namespace,
 * as in the reference. *rest receives the part after "ns:" (or the whole, unmodified
 * channel when there is no boundary); it borrows from channel. Pure, any thread. */
const node_ns_opts_t *node_config_resolve(const node_config_t *cfg, const char *channel, size_t len,
                                          const char **rest, size_t *rest_len);

/* Channel-name helpers (§2.1, PROTOCOL.md §7.3). All arguments are borrowed. */
/* true if channel starts with the private prefix ($). */
bool node_channel_is_private(const node_config_t *cfg, rt_str_t channel);
/* true if ns allows user-limited channels and channel contains the user boundary (#). */
bool node_channel_is_user_limited(const node_config_t *cfg, const node_ns_opts_t *ns,
                                  rt_str_t channel);
/* true if the channel is user-limited and user is one of the IDs after its last user
 * boundary (split by the user separator). An empty user is never allowed (the reference
 * server would let anonymous users into "ns:#"; rotor does not). */
bool node_channel_user_allowed(const node_config_t *cfg, const node_ns_opts_t *ns, rt_str_t channel,
                               rt_str_t user);
/* Client-side name check (error 107 when it fails): length <= channel_max_length, then
 * rest (from node_config_resolve) must match ns->channel_regex when set, else every byte
 * of channel must be ASCII. Returns 0 or RT_EINVAL. */
int node_channel_validate_name(const node_config_t *cfg, const node_ns_opts_t *ns, rt_str_t channel,
                               rt_str_t rest);

/* Appends a minimal JSON configuration with a fresh random client.token.hmac_secret_key and
 * http_api.key (genconfig) to out. */
void node_config_generate(rt_buf_t *out);
/* Appends every supported key as CENTRIFUGO_<KEY>=<default> lines (defaultenv); each name
 * also works with the ROTOR_ prefix. */
void node_config_default_env(rt_buf_t *out);

#endif

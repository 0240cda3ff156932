#include "node/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "node/base/time.h"
#include "node/base/utf8.h"
#include "node/jwt.h"

extern char **environ;

/* gentoken / gensubtoken default lifetime, as in Centrifugo: one week. */
#define DEFAULT_TOKEN_TTL_S (7 * 24 * 3600)

typedef struct flag_def {
    const char *shrt; /* "-p" or NULL */
    const char *lng;  /* "--http_server.port" */
    const char *path; /* config key the value goes to */
    bool boolean;     /* takes no separate argument; "--x=false" still works */
} flag_def_t;

static const flag_def_t config_flags[] = {
    {"-p", "--http_server.port", "http_server.port", false},
    {"-a", "--http_server.address", "http_server.address", false},
    {NULL, "--http_server.internal_address", "http_server.internal_address", false},
    {NULL, "--http_server.internal_port", "http_server.internal_port", false},
    {NULL, "--log.level", "log.level", false},
    {NULL, "--engine.type", "engine.type", false},
    {NULL, "--workers", "workers", false},
    {NULL, "--client.insecure", "client.insecure", true},
    {NULL, "--http_api.insecure", "http_api.insecure", true},
    {NULL, "--http_api.external", "http_api.external", true},
    {NULL, "--prometheus.enabled", "prometheus.enabled", true},
    {NULL, "--health.enabled", "health.enabled", true},
};

typedef enum cmd {
    CMD_SERVE,
    CMD_VERSION,
    CMD_GENCONFIG,
    CMD_CHECKCONFIG,
    CMD_DEFAULTENV,
    CMD_GENTOKEN,
    CMD_GENSUBTOKEN,
    CMD_CHECKTOKEN,
    CMD_CHECKSUBTOKEN,
} cmd_t;

static const char *const cmd_names[] = {
    "serve",    "version",     "genconfig",  "checkconfig",   "defaultenv",
    "gentoken", "gensubtoken", "checktoken", "checksubtoken",
};

typedef struct cli_opts {
    cmd_t cmd;
    const char *config;  /* borrowed from argv; NULL = default */
    const char *user;    /* -u; "" when absent */
    const char *channel; /* -s; NULL when absent */
    int64_t ttl_s;       /* -t */
    const char *token;   /* positional of checktoken / checksubtoken */
    char **flag_kv;      /* owned array of owned "path=value" strings */
    size_t nflags;
    bool help;
} cli_opts_t;

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void usage(FILE *f)
{
    fputs("Usage: rotor [command] [flags]\n"
          "\n"
          "Commands:\n"
          "  serve                         run the server (default)\n"
          "  version                       print the version\n"
          "  genconfig [-c FILE]           write a new config (default config.json) with random\n"
          "                                client.token.hmac_secret_key and http_api.key\n"
          "  checkconfig [-c FILE]         validate a config file\n"
          "  defaultenv                    print every supported environment variable\n"
          "  gentoken -u USER [-t TTL]     HS256 connection token (TTL seconds, default 604800,\n"
          "                                0 = no exp)\n"
          "  gensubtoken -u USER -s CHANNEL [-t TTL]\n"
          "                                HS256 subscription token\n"
          "  checktoken TOKEN              verify a connection token\n"
          "  checksubtoken TOKEN           verify a subscription token\n"
          "\n"
          "Flags (--flag VALUE or --flag=VALUE; they override environment and file):\n"
          "  -c, --config FILE             JSON config file [config.json]\n"
          "  -p, --http_server.port PORT   [8000]\n"
          "  -a, --http_server.address ADDR\n"
          "      --http_server.internal_address ADDR\n"
          "      --http_server.internal_port PORT\n"
          "      --log.level LEVEL         trace|debug|info|warn|error|none [info]\n"
          "      --engine.type TYPE        memory\n"
          "      --workers N               worker threads [CPU count]\n"
          "      --client.insecure[=BOOL]\n"
          "      --http_api.insecure[=BOOL]\n"
          "      --http_api.external[=BOOL]\n"
          "      --prometheus.enabled[=BOOL]\n"
          "      --health.enabled[=BOOL]\n"
          "  -h, --help\n"
          "\n"
          "Environment: ROTOR_<KEY> or CENTRIFUGO_<KEY> (e.g. CENTRIFUGO_HTTP_SERVER_PORT);\n"
          "ROTOR_ wins when both are set.\n",
          f);
}

static void add_flag(cli_opts_t *o, const char *path, const char *value)
{
    size_t n = strlen(path) + 1 + strlen(value) + 1;
    char *kv = rt_malloc(n);
    snprintf(kv, n, "%s=%s", path, value);
    o->flag_kv = rt_realloc(o->flag_kv, (o->nflags + 1) * sizeof(char *));
    o->flag_kv[o->nflags++] = kv;
}

static void opts_cleanup(cli_opts_t *o)
{
    for (size_t i = 0; i < o->nflags; i++)
        rt_free(o->flag_kv[i]);
    rt_free(o->flag_kv);
}

static bool name_is(const char *name, const char *shrt, const char *lng)
{
    return (shrt != NULL && strcmp(name, shrt) == 0) || strcmp(name, lng) == 0;
}

/* Parses argv into o. Returns 0 or 2 (usage error, message already written). */
static int parse_args(int argc, char **argv, cli_opts_t *o, FILE *errf)
{
    int i = 1;
    o->cmd = CMD_SERVE;
    o->user = "";
    o->ttl_s = DEFAULT_TOKEN_TTL_S;
    if (argc > 1 && argv[1][0] != '-') {
        size_t k = 0;
        while (k < COUNT(cmd_names) && strcmp(argv[1], cmd_names[k]) != 0)
            k++;
        if (k == COUNT(cmd_names)) {
            fprintf(errf, "rotor: unknown command \"%s\" (see rotor --help)\n", argv[1]);
            return 2;
        }
        o->cmd = (cmd_t)k;
        i = 2;
    }
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0') {
            if ((o->cmd == CMD_CHECKTOKEN || o->cmd == CMD_CHECKSUBTOKEN) && o->token == NULL) {
                o->token = arg;
                continue;
            }
            fprintf(errf, "rotor: unexpected argument \"%s\"\n", arg);
            return 2;
        }
        char name[128];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof(name)) {
            fprintf(errf, "rotor: unknown flag \"%s\"\n", arg);
            return 2;
        }
        memcpy(name, arg, nlen);
        name[nlen] = '\0';

        if (name_is(name, "-h", "--help")) {
            o->help = true;
            continue;
        }
        const flag_def_t *fd = NULL;
        for (size_t k = 0; k < COUNT(config_flags); k++) {
            if (name_is(name, config_flags[k].shrt, config_flags[k].lng))
                fd = &config_flags[k];
        }
        if (fd != NULL && fd->boolean) {
            add_flag(o, fd->path, eq ? eq + 1 : "true");
            continue;
        }
        const char *value = NULL;
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(errf, "rotor: flag %s needs a value\n", name);
            return 2;
        }
        bool tok = o->cmd == CMD_GENTOKEN || o->cmd == CMD_GENSUBTOKEN;
        if (fd != NULL) {
            add_flag(o, fd->path, value);
        } else if (name_is(name, "-c", "--config")) {
            o->config = value;
        } else if (tok && name_is(name, "-u", "--user")) {
            o->user = value;
        } else if (o->cmd == CMD_GENSUBTOKEN && name_is(name, "-s", "--channel")) {
            o->channel = value;
        } else if (tok && name_is(name, "-t", "--ttl")) {
            char *end;
            errno = 0;
            long long ttl = strtoll(value, &end, 10);
            if (errno != 0 || *value == '\0' || *end != '\0' || ttl < 0 ||
                ttl > 100LL * 365 * 24 * 3600) {
                fprintf(errf, "rotor: %s: invalid TTL \"%s\" (seconds)\n", name, value);
                return 2;
            }
            o->ttl_s = ttl;
        } else {
            fprintf(errf, "rotor: unknown flag \"%s\" for %s (see rotor --help)\n", name,
                    cmd_names[o->cmd]);
            return 2;
        }
    }
    return 0;
}

/* Loads the config for a command; prints the error and returns 1 on failure. */
static int load_config(const cli_opts_t *o, const char *path, char *const *envp, FILE *errf,
                       node_config_t *cfg)
{
    rt_buf_t err = RT_BUF_INIT;
    int rc = node_config_load(cfg, path, envp, o->flag_kv, o->nflags, &err);
    if (rc != 0) {
        fprintf(errf, "rotor: configuration error: %.*s\n", (int)err.len,
                err.p ? (const char *)err.p : "");
        node_config_cleanup(cfg);
    }
    rt_buf_cleanup(&err);
    return rc == 0 ? 0 : 1;
}

static int cmd_genconfig(const cli_opts_t *o, FILE *out, FILE *errf)
{
    const char *path = o->config ? o->config : "config.json";
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            fprintf(errf, "rotor: genconfig: %s already exists; not overwriting it\n", path);
        else
            fprintf(errf, "rotor: genconfig: %s: %s\n", path, strerror(errno));
        return 1;
    }
    rt_buf_t b = RT_BUF_INIT;
    node_config_generate(&b);
    size_t off = 0;
    int rc = 0;
    while (off < b.len) {
        ssize_t w = write(fd, b.p + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            fprintf(errf, "rotor: genconfig: %s: %s\n", path, strerror(errno));
            rc = 1;
            break;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 && rc == 0) {
        fprintf(errf, "rotor: genconfig: %s: %s\n", path, strerror(errno));
        rc = 1;
    }
    rt_buf_cleanup(&b);
    if (rc == 0)
        fprintf(out, "wrote %s\n", path);
    return rc;
}

static int cmd_checkconfig(const cli_opts_t *o, char *const *envp, FILE *out, FILE *errf)
{
    const char *path = o->config ? o->config : "config.json";
    node_config_t cfg;
    if (load_config(o, path, envp, errf, &cfg) != 0)
        return 1;
    if (cfg.warnings > 0)
        fprintf(out, "%s: valid (%u warning%s, see above)\n", path, cfg.warnings,
                cfg.warnings == 1 ? "" : "s");
    else
        fprintf(out, "%s: valid\n", path);
    node_config_cleanup(&cfg);
    return 0;
}

static int cmd_gentoken(const cli_opts_t *o, bool sub, char *const *envp, FILE *out, FILE *errf)
{
    const char *name = sub ? "gensubtoken" : "gentoken";
    if (sub && (o->channel == NULL || o->channel[0] == '\0')) {
        fprintf(errf, "rotor: gensubtoken: -s CHANNEL is required\n");
        return 2;
    }
    if (!rt_utf8_valid(o->user, strlen(o->user)) ||
        (sub && !rt_utf8_valid(o->channel, strlen(o->channel)))) {
        fprintf(errf, "rotor: %s: user and channel must be valid UTF-8\n", name);
        return 2;
    }
    node_config_t cfg;
    if (load_config(o, o->config, envp, errf, &cfg) != 0)
        return 1;
    bool own = sub && cfg.subscription_token_enabled;
    const char *key_name =
        own ? "client.subscription_token.hmac_secret_key" : "client.token.hmac_secret_key";
    const char *key = own ? cfg.subscription_token.hmac_secret_key : cfg.token.hmac_secret_key;
    int rc = 0;
    if (key[0] == '\0') {
        fprintf(errf, "rotor: %s: %s is not set; %s signs HS256 tokens with it\n", name, key_name,
                name);
        rc = 1;
        goto out;
    }
    int64_t now = rt_time_s();
    rt_buf_t payload = RT_BUF_INIT, token = RT_BUF_INIT;
    rt_buf_append_cstr(&payload, "{\"sub\":");
    rt_json_write_string(&payload, rt_str_c(o->user));
    if (sub) {
        rt_buf_append_cstr(&payload, ",\"channel\":");
        rt_json_write_string(&payload, rt_str_c(o->channel));
    }
    if (o->ttl_s > 0)
        rt_buf_printf(&payload, ",\"exp\":%" PRId64, now + o->ttl_s);
    rt_buf_printf(&payload, ",\"iat\":%" PRId64 "}", now);
    if (node_jwt_sign("HS256", rt_str_c(key), rt_buf_str(&payload), &token) != 0) {
        fprintf(errf, "rotor: %s: signing failed\n", name);
        rc = 1;
    } else {
        fprintf(out, "HMAC SHA-256 JWT for %s%s%s%s%s%s", o->user[0] ? "user \"" : "anonymous user",
                o->user, o->user[0] ? "\"" : "", sub ? " and channel \"" : "",
                sub ? o->channel : "", sub ? "\"" : "");
        if (o->ttl_s > 0)
            fprintf(out, " with expiration TTL %" PRId64 "s:\n", o->ttl_s);
        else
            fprintf(out, " without expiration:\n");
        fprintf(out, "%.*s\n", (int)token.len, (const char *)token.p);
    }
    rt_buf_cleanup(&payload);
    rt_buf_cleanup(&token);
out:
    node_config_cleanup(&cfg);
    return rc;
}

static bool token_keys_set(const node_token_config_t *t)
{
    return t->hmac_secret_key[0] || t->rsa_public_key[0] || t->ecdsa_public_key[0];
}

static int cmd_checktoken(const cli_opts_t *o, bool sub, char *const *envp, FILE *out, FILE *errf)
{
    const char *name = sub ? "checksubtoken" : "checktoken";
    if (o->token == NULL) {
        fprintf(errf, "rotor: %s: TOKEN argument is required\n", name);
        return 2;
    }
    node_config_t cfg;
    if (load_config(o, o->config, envp, errf, &cfg) != 0)
        return 1;
    const node_token_config_t *tc =
        sub && cfg.subscription_token_enabled ? &cfg.subscription_token : &cfg.token;
    node_jwt_verifier_t *v = NULL;
    node_jwt_claims_t claims;
    memset(&claims, 0, sizeof(claims));
    rt_buf_t err = RT_BUF_INIT;
    int rc = 1;
    if (!cfg.insecure_skip_token_signature_verify && !token_keys_set(tc)) {
        fprintf(errf,
                "rotor: %s: no token key configured (%s.hmac_secret_key, "
                ".rsa_public_key or .ecdsa_public_key)\n",
                name, tc == &cfg.token ? "client.token" : "client.subscription_token");
        goto out;
    }
    if (node_jwt_verifier_new(tc, cfg.insecure_skip_token_signature_verify, &v, &err) != 0) {
        fprintf(errf, "rotor: %s: %.*s\n", name, (int)err.len, err.p ? (const char *)err.p : "");
        goto out;
    }
    rt_str_t token = rt_str_c(o->token);
    int vr = sub ? node_jwt_verify_subscribe(v, token, rt_time_s(), &claims)
                 : node_jwt_verify_connect(v, token, rt_time_s(), &claims);
    if (vr == RT_EEXPIRED) {
        fprintf(errf, "rotor: %s: token expired\n", name);
        goto out;
    }
    if (vr != 0) {
        fprintf(errf, "rotor: %s: invalid token\n", name);
        goto out;
    }
    fprintf(out, "valid %s token for %s%.*s%s", sub ? "subscription" : "connection",
            claims.user.n ? "user \"" : "anonymous user", RT_STR_ARG(claims.user),
            claims.user.n ? "\"" : "");
    if (sub)
        fprintf(out, " and channel \"%.*s\"", RT_STR_ARG(claims.channel));
    if (claims.expire_s == 0) {
        fprintf(out, ", never expires\n");
    } else {
        time_t t = (time_t)claims.expire_s;
        struct tm tm;
        char when[64] = "?";
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(out, ", expires at %s (%" PRId64 ")\n", when, claims.expire_s);
    }
    fprintf(out, "claims: %.*s\n", (int)claims.payload.len, (const char *)claims.payload.p);
    rc = 0;
out:
    node_jwt_claims_cleanup(&claims);
    node_jwt_verifier_free(v);
    rt_buf_cleanup(&err);
    node_config_cleanup(&cfg);
    return rc;
}

int node_cli_run(int argc, char **argv, char *const *envp, FILE *out, FILE *errf, bool *serve,
                 node_config_t *cfg)
{
    cli_opts_t o;
    memset(&o, 0, sizeof(o));
    *serve = false;
    int rc = parse_args(argc, argv, &o, errf);
    if (rc != 0) {
        opts_cleanup(&o);
        return rc;
    }
    if (o.help) {
        usage(out);
        opts_cleanup(&o);
        return 0;
    }
    switch (o.cmd) {
    case CMD_SERVE:
        rc = load_config(&o, o.config, envp, errf, cfg);
        *serve = rc == 0;
        break;
    case CMD_VERSION:
        fprintf(out, "rotor %s\n", RT_VERSION);
        break;
    case CMD_GENCONFIG:
        rc = cmd_genconfig(&o, out, errf);
        break;
    case CMD_CHECKCONFIG:
        rc = cmd_checkconfig(&o, envp, out, errf);
        break;
    case CMD_DEFAULTENV: {
        rt_buf_t b = RT_BUF_INIT;
        node_config_default_env(&b);
        fwrite(b.p, 1, b.len, out);
        rt_buf_cleanup(&b);
        break;
    }
    case CMD_GENTOKEN:
    case CMD_GENSUBTOKEN:
        rc = cmd_gentoken(&o, o.cmd == CMD_GENSUBTOKEN, envp, out, errf);
        break;
    case CMD_CHECKTOKEN:
    case CMD_CHECKSUBTOKEN:
        rc = cmd_checktoken(&o, o.cmd == CMD_CHECKSUBTOKEN, envp, out, errf);
        break;
    }
    fflush(out);
    opts_cleanup(&o);
    return rc;
}

int node_cli_main(int argc, char **argv, bool *serve, node_config_t *cfg)
{
    return node_cli_run(argc, argv, environ, stdout, stderr, serve, cfg);
}

/* Redis address parsing (SERVER.md §3.2, §3.14, §3.15): "host:port", redis:// / tcp:// /
 * unix:// URLs, redis+cluster:// seeds and redis+sentinel:// Sentinels, each also as
 * rediss...:// with TLS.
 *
 * A plain address parses as standalone; a cluster behind it is detected by asking the
 * server (rds_addr_detect_cluster in rds_cluster.c), as Centrifugo does. */
#include "broker/rds.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker/rds_internal.h"
#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/time.h"

#define DEFAULT_PORT               6379
#define DEFAULT_CONNECT_TIMEOUT_MS 1000
#define DEFAULT_IO_TIMEOUT_MS      4000

static int fail(rt_buf_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(rt_buf_t *err, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        rt_buf_vprintf(err, fmt, ap);
        va_end(ap);
    }
    return RT_EINVAL;
}

static void set_str(char **field, rt_str_t s)
{
    rt_free(*field);
    *field = rt_str_dup(s);
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes s into a new heap string. Returns NULL on a malformed escape or an
 * escaped NUL (which could not survive as a C string). */
static char *pct_decode(rt_str_t s)
{
    char *out = rt_malloc(s.n + 1);
    size_t o = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] != '%') {
            out[o++] = s.p[i];
            continue;
        }
        int hi = i + 2 < s.n ? hex_val(s.p[i + 1]) : -1;
        int lo = hi >= 0 ? hex_val(s.p[i + 2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0)) {
            rt_free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

static int set_decoded(char **field, rt_str_t s, const char *what, rt_buf_t *err)
{
    char *v = pct_decode(s);
    if (v == NULL)
        return fail(err, "redis address: bad percent-encoding in %s", what);
    rt_free(*field);
    *field = v;
    return 0;
}

static void strv_push(char ***v, size_t *n, char *item)
{
    *v = rt_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = item;
}

/* "host:port", bracketing IPv6 literals so the text splits again unambiguously. */
static char *seed_format(const char *host, int port)
{
    rt_buf_t b = RT_BUF_INIT;
    if (strchr(host, ':') != NULL)
        rt_buf_printf(&b, "[%s]:%d", host, port);
    else
        rt_buf_printf(&b, "%s:%d", host, port);
    char *out = rt_str_dup(rt_str_from((const char *)b.p, b.len));
    rt_buf_cleanup(&b);
    return out;
}

/* Parses a decimal integer in [min, max] spanning all of s. */
static bool parse_int(rt_str_t s, long min, long max, long *out)
{
    if (s.n == 0 || s.n > 10)
        return false;
    long v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        v = v * 10 + (s.p[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int parse_db(rt_str_t s, rds_addr_t *out, rt_buf_t *err)
{
    long v;
    if (!parse_int(s, 0, INT_MAX, &v))
        return fail(err, "redis address: bad db \"%.*s\" (want a number >= 0)", RT_STR_ARG(s));
    out->db = (int)v;
    return 0;
}

static int parse_host_port(rt_str_t s, rds_addr_t *out, rt_buf_t *err)
{
    rt_str_t host = s, port = RT_STR_NULL;
    bool has_port = false;
    if (s.n > 0 && s.p[0] == '[') {
        const char *close = memchr(s.p, ']', s.n);
        if (close == NULL)
            return fail(err, "redis address: unterminated '[' in \"%.*s\"", RT_STR_ARG(s));
        host = rt_str_from(s.p + 1, (size_t)(close - s.p - 1));
        rt_str_t rest = rt_str_from(close + 1, s.n - (size_t)(close + 1 - s.p));
        if (rest.n > 0) {
            if (rest.p[0] != ':')
                return fail(err, "redis address: junk after ']' in \"%.*s\"", RT_STR_ARG(s));
            port = rt_str_from(rest.p + 1, rest.n - 1);
            has_port = true;
        }
    } else {
        const char *colon = memchr(s.p, ':', s.n);
        if (colon != NULL) {
            if (memchr(colon + 1, ':', s.n - (size_t)(colon + 1 - s.p)) != NULL)
                return fail(err, "redis address: IPv6 hosts need brackets: \"[%.*s]\"",
                            RT_STR_ARG(s));
            host = rt_str_from(s.p, (size_t)(colon - s.p));
            port = rt_str_from(colon + 1, s.n - (size_t)(colon + 1 - s.p));
            has_port = true;
        }
    }
    if (host.n == 0)
        return fail(err, "redis address: missing host in \"%.*s\"", RT_STR_ARG(s));
    for (size_t i = 0; i < host.n; i++) {
        unsigned char c = (unsigned char)host.p[i];
        if (c <= ' ' || c == '/' || c == '?' || c == '@' || c == '#' || c == '%' || c >= 0x7f)
            return fail(err, "redis address: bad host \"%.*s\"", RT_STR_ARG(host));
    }
    long p = DEFAULT_PORT;
    if (has_port && !parse_int(port, 1, 65535, &p))
        return fail(err, "redis address: bad port \"%.*s\" (want 1-65535)", RT_STR_ARG(port));
    set_str(&out->host, host);
    out->port = (int)p;
    return 0;
}

/* user[:password], percent-encoded. */
static int parse_userinfo(rt_str_t s, rds_addr_t *out, rt_buf_t *err)
{
    const char *colon = memchr(s.p, ':', s.n);
    rt_str_t user = colon ? rt_str_from(s.p, (size_t)(colon - s.p)) : s;
    int rc = set_decoded(&out->user, user, "user", err);
    if (rc == 0 && colon != NULL)
        rc = set_decoded(&out->password, rt_str_from(colon + 1, s.n - (size_t)(colon + 1 - s.p)),
                         "password", err);
    return rc;
}

static int parse_timeout(rt_str_t v, const char *name, int64_t *field, rt_buf_t *err)
{
    char *s = pct_decode(v);
    int64_t ms = 0;
    int rc = s != NULL ? rt_parse_duration_ms(s, &ms) : RT_EINVAL;
    rt_free(s);
    if (rc != 0 || ms <= 0)
        return fail(err, "redis address: bad %s \"%.*s\" (want a positive duration like \"1s\")",
                    name, RT_STR_ARG(v));
    *field = ms;
    return 0;
}

/* Go's strconv.ParseBool, which Centrifugo applies to these options. */
static int parse_bool_opt(rt_str_t k, rt_str_t v, bool *out, rt_buf_t *err)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (rt_str_eq_c(v, yes[i])) {
            *out = true;
            return 0;
        }
        if (rt_str_eq_c(v, no[i])) {
            *out = false;
            return 0;
        }
    }
    return fail(err, "redis address: bad %.*s \"%.*s\" (want true or false)", RT_STR_ARG(k),
                RT_STR_ARG(v));
}

/* Query options that only make sense for one mode name it in the error. */
static int mode_only(rt_str_t k, rds_mode_t want, const rds_addr_t *out, rt_buf_t *err)
{
    if (out->mode == want)
        return 0;
    return fail(err, "redis address: option \"%.*s\" is only for %s URLs", RT_STR_ARG(k),
                want == RDS_MODE_CLUSTER ? "redis+cluster://" : "redis+sentinel://");
}

static int parse_seed(rt_str_t v, rds_addr_t *out, rt_buf_t *err)
{
    char *text = pct_decode(v);
    if (text == NULL)
        return fail(err, "redis address: bad percent-encoding in addr");
    rds_addr_t tmp = {.host = NULL};
    int rc = parse_host_port(rt_str_c(text), &tmp, err);
    if (rc == 0)
        strv_push(&out->seeds, &out->nseeds, seed_format(tmp.host, tmp.port));
    rt_free(tmp.host);
    rt_free(text);
    return rc;
}

static int parse_query(rt_str_t q, rds_addr_t *out, rt_buf_t *err)
{
    while (q.n > 0) {
        const char *amp = memchr(q.p, '&', q.n);
        rt_str_t kv = amp ? rt_str_from(q.p, (size_t)(amp - q.p)) : q;
        q = amp ? rt_str_from(amp + 1, q.n - kv.n - 1) : RT_STR_NULL;
        if (kv.n == 0)
            continue;
        const char *eq = memchr(kv.p, '=', kv.n);
        rt_str_t k = eq ? rt_str_from(kv.p, (size_t)(eq - kv.p)) : kv;
        rt_str_t v = eq ? rt_str_from(eq + 1, kv.n - k.n - 1) : RT_STR_NULL;
        int rc = 0;
        if (rt_str_eq_c(k, "db")) {
            rc = parse_db(v, out, err);
        } else if (rt_str_eq_c(k, "connect_timeout") || rt_str_eq_c(k, "dial_timeout")) {
            rc = parse_timeout(v, "connect_timeout", &out->connect_timeout_ms, err);
        } else if (rt_str_eq_c(k, "io_timeout")) {
            rc = parse_timeout(v, "io_timeout", &out->io_timeout_ms, err);
        } else if (rt_str_eq_c(k, "tls_enabled")) {
            rc = parse_bool_opt(k, v, &out->tls.enabled, err);
        } else if (rt_str_eq_c(k, "sentinel_tls_enabled")) {
            /* Accepted (and ignored) outside Sentinel mode, as the reference does. */
            rc = parse_bool_opt(k, v, &out->sentinel_tls.enabled, err);
        } else if (rt_str_eq_c(k, "force_resp2")) {
            /* Accepted for config compatibility: hiredis 0.14 only speaks RESP2 anyway. */
        } else if (rt_str_eq_c(k, "replica_client_enabled")) {
            /* Replicas serve only Centrifugo PRO features; nothing here reads from them. */
        } else if (rt_str_eq_c(k, "addr")) {
            if (out->mode == RDS_MODE_STANDALONE)
                rc = fail(err, "redis address: option \"addr\" is only for redis+cluster:// and "
                               "redis+sentinel:// URLs");
            else
                rc = parse_seed(v, out, err);
        } else if (rt_str_eq_c(k, "sentinel_master_name")) {
            if ((rc = mode_only(k, RDS_MODE_SENTINEL, out, err)) == 0)
                rc = set_decoded(&out->sentinel_master, v, "sentinel_master_name", err);
        } else if (rt_str_eq_c(k, "sentinel_user")) {
            if ((rc = mode_only(k, RDS_MODE_SENTINEL, out, err)) == 0)
                rc = set_decoded(&out->sentinel_user, v, "sentinel_user", err);
        } else if (rt_str_eq_c(k, "sentinel_password")) {
            if ((rc = mode_only(k, RDS_MODE_SENTINEL, out, err)) == 0)
                rc = set_decoded(&out->sentinel_password, v, "sentinel_password", err);
        } else {
            rc = fail(err, "redis address: unsupported option \"%.*s\"", RT_STR_ARG(k));
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Splits "authority[/path][?query]" style text. */
static void split_query(rt_str_t *s, rt_str_t *query)
{
    const char *qm = memchr(s->p, '?', s->n);
    *query = RT_STR_NULL;
    if (qm != NULL) {
        *query = rt_str_from(qm + 1, s->n - (size_t)(qm + 1 - s->p));
        s->n = (size_t)(qm - s->p);
    }
}

/* Splits "[userinfo@]rest" of an authority that ends at the first '/'. */
static int split_userinfo(rt_str_t *s, rds_addr_t *out, rt_buf_t *err)
{
    const char *slash = memchr(s->p, '/', s->n);
    size_t auth_n = slash ? (size_t)(slash - s->p) : s->n;
    const char *at = NULL;
    for (size_t i = 0; i < auth_n; i++) {
        if (s->p[i] == '@')
            at = s->p + i;
    }
    if (at == NULL)
        return 0;
    int rc = parse_userinfo(rt_str_from(s->p, (size_t)(at - s->p)), out, err);
    size_t skip = (size_t)(at + 1 - s->p);
    *s = rt_str_from(s->p + skip, s->n - skip);
    return rc;
}

/* Cluster and Sentinel: the URL's host:port is the first seed, addr=... add more. */
static int finish_seeds(rds_addr_t *out, rt_buf_t *err)
{
    char *first = seed_format(out->host, out->port);
    strv_push(&out->seeds, &out->nseeds, NULL);
    memmove(out->seeds + 1, out->seeds, (out->nseeds - 1) * sizeof(*out->seeds));
    out->seeds[0] = first;
    if (out->mode == RDS_MODE_CLUSTER && out->db != 0)
        return fail(err, "redis address: Redis Cluster has only db 0 (got %d)", out->db);
    if (out->mode == RDS_MODE_SENTINEL && out->sentinel_master[0] == '\0')
        return fail(err, "redis address: redis+sentinel:// needs sentinel_master_name");
    return 0;
}

static int parse_tcp_url(rt_str_t s, rds_addr_t *out, rt_buf_t *err)
{
    rt_str_t query;
    split_query(&s, &query);
    int rc = split_userinfo(&s, out, err);
    if (rc != 0)
        return rc;
    const char *slash = memchr(s.p, '/', s.n);
    rt_str_t hostport = slash ? rt_str_from(s.p, (size_t)(slash - s.p)) : s;
    if ((rc = parse_host_port(hostport, out, err)) != 0)
        return rc;
    if (slash != NULL) {
        rt_str_t path = rt_str_from(slash + 1, s.n - hostport.n - 1);
        if (path.n > 0 && (rc = parse_db(path, out, err)) != 0)
            return rc;
    }
    if ((rc = parse_query(query, out, err)) != 0)
        return rc;
    return out->mode == RDS_MODE_STANDALONE ? 0 : finish_seeds(out, err);
}

static int parse_unix_url(rt_str_t s, rds_addr_t *out, rt_buf_t *err)
{
    rt_str_t query;
    split_query(&s, &query);
    int rc = split_userinfo(&s, out, err);
    if (rc != 0)
        return rc;
    if (s.n < 2 || s.p[0] != '/')
        return fail(err, "redis address: unix:// needs an absolute socket path");
    if ((rc = set_decoded(&out->unix_path, s, "socket path", err)) != 0)
        return rc;
    if ((rc = parse_query(query, out, err)) != 0)
        return rc;
    if (out->tls.enabled)
        return fail(err, "redis address: TLS is not supported over unix:// sockets");
    return 0;
}

static void addr_defaults(rds_addr_t *a)
{
    a->mode = RDS_MODE_STANDALONE;
    a->seeds = NULL;
    a->nseeds = 0;
    a->sentinel_master = rt_strdup("");
    a->sentinel_user = rt_strdup("");
    a->sentinel_password = rt_strdup("");
    a->host = rt_strdup("");
    a->port = DEFAULT_PORT;
    a->unix_path = rt_strdup("");
    a->user = rt_strdup("");
    a->password = rt_strdup("");
    a->db = 0;
    a->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    a->io_timeout_ms = DEFAULT_IO_TIMEOUT_MS;
    rds_tls_init(&a->tls);
    rds_tls_init(&a->sentinel_tls);
}

static bool scheme_is(rt_str_t scheme, const char *name)
{
    return rt_str_case_eq(scheme, rt_str_c(name));
}

int rds_addr_parse(const char *url, rds_addr_t *out, rt_buf_t *err)
{
    addr_defaults(out);
    rt_str_t s = rt_str_c(url);
    int rc;
    if (s.n == 0)
        return fail(err, "redis address: empty");
    const char *sep = strstr(url, "://");
    if (sep == NULL) {
        if (memchr(s.p, '/', s.n) || memchr(s.p, '?', s.n) || memchr(s.p, '@', s.n))
            rc = fail(err, "redis address: \"%s\" is neither host:port nor a URL", url);
        else
            rc = parse_host_port(s, out, err);
    } else {
        rt_str_t scheme = rt_str_from(url, (size_t)(sep - url));
        rt_str_t rest = rt_str_c(sep + 3);
        /* The query may still turn TLS on (tls_enabled=true) or off again. */
        out->tls.enabled = scheme_is(scheme, "rediss") || scheme_is(scheme, "rediss+cluster") ||
                           scheme_is(scheme, "rediss+sentinel");
        if (scheme_is(scheme, "redis") || scheme_is(scheme, "tcp") || scheme_is(scheme, "rediss")) {
            rc = parse_tcp_url(rest, out, err);
        } else if (scheme_is(scheme, "unix")) {
            rc = parse_unix_url(rest, out, err);
        } else if (scheme_is(scheme, "redis+cluster") || scheme_is(scheme, "rediss+cluster")) {
            out->mode = RDS_MODE_CLUSTER;
            rc = parse_tcp_url(rest, out, err);
        } else if (scheme_is(scheme, "redis+sentinel") || scheme_is(scheme, "rediss+sentinel")) {
            out->mode = RDS_MODE_SENTINEL;
            rc = parse_tcp_url(rest, out, err);
        } else {
            rc = fail(err, "redis address: unknown scheme \"%.*s\"", RT_STR_ARG(scheme));
        }
    }
    if (rc != 0) {
        rds_addr_cleanup(out);
        addr_defaults(out);
    }
    return rc;
}

int rds_addr_from_seeds(const char *list, rds_mode_t mode, rds_addr_t *out, rt_buf_t *err)
{
    RT_ASSERT(mode == RDS_MODE_CLUSTER || mode == RDS_MODE_SENTINEL);
    addr_defaults(out);
    out->mode = mode;
    const char *what = mode == RDS_MODE_CLUSTER ? "Redis Cluster" : "Redis Sentinel";
    int rc = 0;
    rt_str_t rest = rt_str_c(list != NULL ? list : "");
    do {
        const char *comma = memchr(rest.p, ',', rest.n);
        rt_str_t item = comma ? rt_str_from(rest.p, (size_t)(comma - rest.p)) : rest;
        rest = comma ? rt_str_from(comma + 1, rest.n - item.n - 1) : RT_STR_NULL;
        while (item.n > 0 && item.p[0] == ' ')
            item = rt_str_from(item.p + 1, item.n - 1);
        while (item.n > 0 && item.p[item.n - 1] == ' ')
            item.n--;
        bool has_port =
            item.n > 0 && item.p[item.n - 1] != ']' && memchr(item.p, ':', item.n) != NULL;
        if (!has_port) {
            rc = fail(err, "redis address: malformed %s address \"%.*s\" (want host:port)", what,
                      RT_STR_ARG(item));
            break;
        }
        rds_addr_t tmp = {.host = NULL};
        rc = parse_host_port(item, &tmp, err);
        if (rc == 0)
            strv_push(&out->seeds, &out->nseeds, seed_format(tmp.host, tmp.port));
        if (rc == 0 && out->nseeds == 1) {
            rt_free(out->host);
            out->host = tmp.host;
            out->port = tmp.port;
        } else {
            rt_free(tmp.host);
        }
    } while (rc == 0 && rest.p != NULL);
    if (rc != 0) {
        rds_addr_cleanup(out);
        addr_defaults(out);
    }
    return rc;
}

void rds_addr_cleanup(rds_addr_t *a)
{
    for (size_t i = 0; i < a->nseeds; i++)
        rt_free(a->seeds[i]);
    rt_free(a->seeds);
    a->seeds = NULL;
    a->nseeds = 0;
    rt_free(a->sentinel_master);
    rt_free(a->sentinel_user);
    rt_free(a->sentinel_password);
    a->sentinel_master = a->sentinel_user = a->sentinel_password = NULL;
    rt_free(a->host);
    rt_free(a->unix_path);
    rt_free(a->user);
    rt_free(a->password);
    a->host = a->unix_path = a->user = a->password = NULL;
    rds_tls_cleanup(&a->tls);
    rds_tls_cleanup(&a->sentinel_tls);
}

static char *dup_or_empty(const char *s)
{
    return rt_strdup(s != NULL ? s : "");
}

void rds_tls_init(rds_tls_t *t)
{
    t->enabled = false;
    t->insecure_skip_verify = false;
    t->server_name = rt_strdup("");
    t->ca_pem = rt_strdup("");
    t->ca_file = rt_strdup("");
    t->cert_pem = rt_strdup("");
    t->cert_file = rt_strdup("");
    t->key_pem = rt_strdup("");
    t->key_file = rt_strdup("");
}

void rds_tls_copy(rds_tls_t *dst, const rds_tls_t *src)
{
    dst->enabled = src->enabled;
    dst->insecure_skip_verify = src->insecure_skip_verify;
    dst->server_name = dup_or_empty(src->server_name);
    dst->ca_pem = dup_or_empty(src->ca_pem);
    dst->ca_file = dup_or_empty(src->ca_file);
    dst->cert_pem = dup_or_empty(src->cert_pem);
    dst->cert_file = dup_or_empty(src->cert_file);
    dst->key_pem = dup_or_empty(src->key_pem);
    dst->key_file = dup_or_empty(src->key_file);
}

void rds_tls_cleanup(rds_tls_t *t)
{
    char **fields[] = {&t->server_name, &t->ca_pem,  &t->ca_file, &t->cert_pem,
                       &t->cert_file,   &t->key_pem, &t->key_file};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        rt_free(*fields[i]);
        *fields[i] = NULL;
    }
    t->enabled = false;
    t->insecure_skip_verify = false;
}

void rds__addr_copy(rds_addr_t *dst, const rds_addr_t *src)
{
    *dst = *src;
    dst->seeds = NULL;
    dst->nseeds = 0;
    for (size_t i = 0; i < src->nseeds; i++)
        strv_push(&dst->seeds, &dst->nseeds, rt_strdup(src->seeds[i]));
    dst->sentinel_master = dup_or_empty(src->sentinel_master);
    dst->sentinel_user = dup_or_empty(src->sentinel_user);
    dst->sentinel_password = dup_or_empty(src->sentinel_password);
    dst->host = dup_or_empty(src->host);
    dst->unix_path = dup_or_empty(src->unix_path);
    dst->user = dup_or_empty(src->user);
    dst->password = dup_or_empty(src->password);
    rds_tls_copy(&dst->tls, &src->tls);
    rds_tls_copy(&dst->sentinel_tls, &src->sentinel_tls);
}

int rds_addr_seed_split(const char *seed, char **host, int *port)
{
    rds_addr_t tmp = {.host = NULL};
    int rc = parse_host_port(rt_str_c(seed), &tmp, NULL);
    *host = rc == 0 ? tmp.host : NULL;
    *port = rc == 0 ? tmp.port : 0;
    if (rc != 0)
        rt_free(tmp.host);
    return rc;
}

void rds_addr_derive(rds_addr_t *out, const rds_addr_t *base, const char *host, int port)
{
    rds__addr_copy(out, base);
    for (size_t i = 0; i < out->nseeds; i++)
        rt_free(out->seeds[i]);
    rt_free(out->seeds);
    out->seeds = NULL;
    out->nseeds = 0;
    out->mode = RDS_MODE_STANDALONE;
    rt_free(out->host);
    out->host = rt_strdup(host);
    out->port = port;
    rt_free(out->unix_path);
    out->unix_path = rt_strdup("");
}

const char *rds_addr_name(const rds_addr_t *a)
{
    static _Thread_local char buf[512];
    if (a->mode == RDS_MODE_SENTINEL)
        snprintf(buf, sizeof(buf), "sentinel:%s", a->sentinel_master ? a->sentinel_master : "");
    else if (a->unix_path != NULL && a->unix_path[0] != '\0')
        snprintf(buf, sizeof(buf), "%s", a->unix_path);
    else if (a->host != NULL && strchr(a->host, ':') != NULL)
        snprintf(buf, sizeof(buf), "[%s]:%d", a->host, a->port);
    else
        snprintf(buf, sizeof(buf), "%s:%d", a->host ? a->host : "", a->port);
    return buf;
}

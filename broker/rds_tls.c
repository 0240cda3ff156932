/* The TLS relay (rds_tls.h). One relay serves one target; each accepted Unix connection
 * becomes a "pipe": CONNECTING (non-blocking TCP connect), HANDSHAKE (SSL_connect), OPEN
 * (pumping). Everything runs on the owner's loop; nothing calls back into the owner, so
 * the owner may free the relay from any of its own callbacks. */
#include "broker/rds_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/log.h"

#define LISTEN_BACKLOG 16

typedef enum pipe_state {
    PIPE_CONNECTING, /* TCP connect in progress; waiting for writability */
    PIPE_HANDSHAKE,  /* SSL_connect in progress */
    PIPE_OPEN,       /* relaying */
} pipe_state_t;

typedef struct relay_pipe relay_pipe_t;

struct relay_pipe {
    rds_tls_relay_t *relay; /* borrowed: the owner, outlives the pipe */
    relay_pipe_t *prev;     /* relay->pipes list */
    relay_pipe_t *next;
    int ufd;      /* accepted Unix socket (hiredis' side); owned */
    int tfd;      /* TCP socket to the server; owned, -1 before the dial */
    SSL *ssl;     /* owned; NULL before the handshake starts */
    bool ssl_bad; /* a fatal TLS error happened: no SSL_shutdown */
    pipe_state_t state;
    bool u_eof;                      /* hiredis closed its side */
    bool t_eof;                      /* the server closed (close_notify or EOF) */
    int r_want;                      /* what the last SSL_read waits for: 0, EV_READ or EV_WRITE */
    int w_want;                      /* the same for the last SSL_write */
    int u_events;                    /* events u_io watches (0: stopped) */
    int t_events;                    /* events t_io watches */
    ev_io u_io;                      /* on ufd */
    ev_io t_io;                      /* on tfd */
    ev_timer deadline;               /* connect + handshake, stopped once OPEN */
    uint8_t up[RDS_TLS_BUF_BYTES];   /* hiredis -> server: up[up_off..up_len) pending */
    size_t up_len, up_off;           /* up_len 0: empty */
    uint8_t down[RDS_TLS_BUF_BYTES]; /* server -> hiredis: down[down_off..down_len) */
    size_t down_len, down_off;
};

struct rds_tls_relay {
    struct ev_loop *loop; /* borrowed */
    SSL_CTX *ctx;         /* owned */
    char *host;           /* owned; dialled */
    int port;
    char *verify_name;        /* owned; server_name, or host when that is "" */
    bool name_is_ip;          /* verify_name is an IP literal: IP SAN check, no SNI */
    bool verify;              /* !insecure_skip_verify */
    double connect_timeout_s; /* per pipe: TCP connect + TLS handshake */
    char dir[80];             /* private directory (mkdtemp, 0700); "" once removed */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* dir/redis.sock */
    int lfd;                                                /* listening socket; owned */
    ev_io accept_io;
    relay_pipe_t *pipes; /* owned: every live pipe */
    char error[256];     /* the last failure, "" when taken */
};

/* ---- TLS context --------------------------------------------------------------------- */

/* The most readable text of the first queued OpenSSL error ("" when none); clears the
 * queue so that no stale error is blamed later. */
static void ssl_error_text(char *out, size_t n)
{
    unsigned long e = ERR_get_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (reason != NULL)
        snprintf(out, n, "%s", reason);
    else if (e != 0)
        ERR_error_string_n(e, out, n);
    else
        snprintf(out, n, "unknown error");
    ERR_clear_error();
}

static int ctx_fail(rt_buf_t *err, const char *what)
{
    char why[200];
    ssl_error_text(why, sizeof(why));
    if (err != NULL)
        rt_buf_printf(err, "redis tls: %s: %s", what, why);
    return RT_EINVAL;
}

static bool is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Every certificate of pem (PEM text) into the context's trust store. */
static int add_ca_pem(SSL_CTX *ctx, const char *pem, rt_buf_t *err)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    RT_ASSERT(b != NULL);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int count = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, x) == 1)
            count++;
        X509_free(x);
    }
    BIO_free(b);
    ERR_clear_error(); /* the read loop always ends with a "no start line" error */
    if (count == 0) {
        if (err != NULL)
            rt_buf_printf(err, "redis tls: server CA: no PEM certificate in the text");
        return RT_EINVAL;
    }
    return 0;
}

/* The client certificate chain (first = leaf) from PEM text. */
static int use_cert_pem(SSL_CTX *ctx, const char *pem, rt_buf_t *err)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    RT_ASSERT(b != NULL);
    X509 *leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
    int rc = 0;
    if (leaf == NULL || SSL_CTX_use_certificate(ctx, leaf) != 1) {
        rc = ctx_fail(err, "client certificate");
    } else {
        X509 *extra;
        /* add0 takes ownership of each chain certificate. */
        while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
            if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
                X509_free(extra);
                rc = ctx_fail(err, "client certificate chain");
                break;
            }
        }
        ERR_clear_error();
    }
    X509_free(leaf);
    BIO_free(b);
    return rc;
}

static int use_key_pem(SSL_CTX *ctx, const char *pem, rt_buf_t *err)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    RT_ASSERT(b != NULL);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    int rc = 0;
    if (key == NULL || SSL_CTX_use_PrivateKey(ctx, key) != 1)
        rc = ctx_fail(err, "client key");
    EVP_PKEY_free(key);
    BIO_free(b);
    return rc;
}

static int load_trust(SSL_CTX *ctx, const rds_tls_t *tls, rt_buf_t *err)
{
    if (is_set(tls->ca_pem))
        return add_ca_pem(ctx, tls->ca_pem, err);
    if (is_set(tls->ca_file)) {
        if (SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL) != 1)
            return ctx_fail(err, "server CA file");
        return 0;
    }
    if (SSL_CTX_set_default_verify_paths(ctx) != 1)
        return ctx_fail(err, "system CA store");
    return 0;
}

static int load_client_cert(SSL_CTX *ctx, const rds_tls_t *tls, rt_buf_t *err)
{
    bool has_cert = is_set(tls->cert_pem) || is_set(tls->cert_file);
    bool has_key = is_set(tls->key_pem) || is_set(tls->key_file);
    if (!has_cert && !has_key)
        return 0;
    if (has_cert != has_key) {
        if (err != NULL)
            rt_buf_printf(err, "redis tls: a client certificate needs both cert_pem and key_pem");
        return RT_EINVAL;
    }
    int rc;
    if (is_set(tls->cert_pem))
        rc = use_cert_pem(ctx, tls->cert_pem, err);
    else if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1)
        rc = ctx_fail(err, "client certificate file");
    else
        rc = 0;
    if (rc != 0)
        return rc;
    if (is_set(tls->key_pem))
        rc = use_key_pem(ctx, tls->key_pem, err);
    else if (SSL_CTX_use_PrivateKey_file(ctx, tls->key_file, SSL_FILETYPE_PEM) != 1)
        rc = ctx_fail(err, "client key file");
    if (rc == 0 && SSL_CTX_check_private_key(ctx) != 1)
        rc = ctx_fail(err, "client key does not match the certificate");
    return rc;
}

static int ctx_new(const rds_tls_t *tls, SSL_CTX **out, rt_buf_t *err)
{
    *out = NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return ctx_fail(err, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Partial writes: a large pipelined batch goes out as the socket accepts it. Redis
     * (and a killed server) may close without close_notify; RESP framing already tells a
     * cut-off reply, so EOF is an ordinary close here. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(ctx, tls->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    int rc = tls->insecure_skip_verify ? 0 : load_trust(ctx, tls, err);
    if (rc == 0)
        rc = load_client_cert(ctx, tls, err);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int rds_tls_check(const rds_tls_t *tls, rt_buf_t *err)
{
    SSL_CTX *ctx;
    int rc = ctx_new(tls, &ctx, err);
    SSL_CTX_free(ctx);
    return rc;
}

/* ---- pipes --------------------------------------------------------------------------- */

static void relay_error(rds_tls_relay_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void relay_error(rds_tls_relay_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    RT_LOG_DEBUG("redis tls relay failed addr=%s:%d reason=\"%s\"", r->host, r->port, r->error);
}

static void io_want(struct ev_loop *loop, ev_io *w, int *cur, int events)
{
    if (*cur == events)
        return;
    ev_io_stop(loop, w);
    *cur = events;
    if (events == 0)
        return;
    ev_io_set(w, w->fd, events);
    ev_io_start(loop, w);
}

static void pipe_close(relay_pipe_t *p)
{
    rds_tls_relay_t *r = p->relay;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        r->pipes = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    ev_io_stop(r->loop, &p->u_io);
    ev_io_stop(r->loop, &p->t_io);
    ev_timer_stop(r->loop, &p->deadline);
    if (p->ssl != NULL) {
        /* Best effort close_notify; the socket is non-blocking and closed right after. */
        if (p->state == PIPE_OPEN && !p->ssl_bad)
            SSL_shutdown(p->ssl);
        SSL_free(p->ssl);
        ERR_clear_error();
    }
    if (p->tfd >= 0)
        close(p->tfd);
    close(p->ufd);
    rt_free(p);
}

/* A TLS call failed for a reason other than WANT_*: records why. */
static void pipe_ssl_error(relay_pipe_t *p, int ssl_err, const char *what)
{
    rds_tls_relay_t *r = p->relay;
    char why[200];
    long vr = p->ssl != NULL ? SSL_get_verify_result(p->ssl) : X509_V_OK;
    if (ssl_err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(why, sizeof(why), "%s", errno != 0 ? strerror(errno) : "connection closed");
    } else if (vr != X509_V_OK && p->state == PIPE_HANDSHAKE) {
        snprintf(why, sizeof(why), "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    } else {
        ssl_error_text(why, sizeof(why));
    }
    ERR_clear_error();
    p->ssl_bad = true;
    relay_error(r, "TLS %s %s:%d: %s", what, r->host, r->port, why);
}

/* 1: progress, 0: blocked (want set), -1: failed (error recorded). */
static int ssl_result(relay_pipe_t *p, int n, int *want, const char *what)
{
    int e = SSL_get_error(p->ssl, n);
    if (e == SSL_ERROR_WANT_READ) {
        *want = EV_READ;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        *want = EV_WRITE;
        return 0;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        p->t_eof = true;
        return 1;
    }
    pipe_ssl_error(p, e, what);
    return -1;
}

/* hiredis -> up. */
static int fill_up(relay_pipe_t *p)
{
    if (p->u_eof || p->up_len > 0)
        return 0;
    ssize_t n = read(p->ufd, p->up, sizeof(p->up));
    if (n > 0) {
        p->up_len = (size_t)n;
        p->up_off = 0;
        return 1;
    }
    if (n == 0) {
        p->u_eof = true;
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    relay_error(p->relay, "relay read: %s", strerror(errno));
    return -1;
}

/* up -> server. */
static int flush_up(relay_pipe_t *p)
{
    p->w_want = 0;
    if (p->up_off == p->up_len)
        return 0;
    ERR_clear_error();
    /* A retry after WANT_* passes the same bytes, as OpenSSL requires. */
    int n = SSL_write(p->ssl, p->up + p->up_off, (int)(p->up_len - p->up_off));
    if (n > 0) {
        p->up_off += (size_t)n;
        if (p->up_off == p->up_len)
            p->up_off = p->up_len = 0;
        return 1;
    }
    return ssl_result(p, n, &p->w_want, "write to");
}

/* server -> down. */
static int fill_down(relay_pipe_t *p)
{
    p->r_want = 0;
    if (p->t_eof || p->down_len > 0)
        return 0;
    ERR_clear_error();
    int n = SSL_read(p->ssl, p->down, (int)sizeof(p->down));
    if (n > 0) {
        p->down_len = (size_t)n;
        p->down_off = 0;
        return 1;
    }
    return ssl_result(p, n, &p->r_want, "read from");
}

/* down -> hiredis. */
static int flush_down(relay_pipe_t *p)
{
    if (p->down_off == p->down_len)
        return 0;
    ssize_t n = send(p->ufd, p->down + p->down_off, p->down_len - p->down_off, MSG_NOSIGNAL);
    if (n > 0) {
        p->down_off += (size_t)n;
        if (p->down_off == p->down_len)
            p->down_off = p->down_len = 0;
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    /* hiredis went away while we had bytes for it: an ordinary close, nothing to report. */
    p->u_eof = true;
    return 1;
}

/* Moves whatever can move, then watches exactly what unblocks the rest. */
static void pump(relay_pipe_t *p)
{
    rds_tls_relay_t *r = p->relay;
    for (;;) {
        int a = fill_up(p);
        int b = a < 0 ? -1 : flush_up(p);
        int c = b < 0 ? -1 : fill_down(p);
        int d = c < 0 ? -1 : flush_down(p);
        if (a < 0 || b < 0 || c < 0 || d < 0) {
            pipe_close(p);
            return;
        }
        if (a + b + c + d == 0)
            break;
    }
    /* hiredis gone: nothing left to deliver. Server gone: deliver what it sent, then
     * close so that hiredis sees the disconnect. */
    if (p->u_eof || (p->t_eof && p->down_len == 0)) {
        pipe_close(p);
        return;
    }
    int u_ev = (p->up_len == 0 ? EV_READ : 0) | (p->down_len > 0 ? EV_WRITE : 0);
    io_want(r->loop, &p->u_io, &p->u_events, u_ev);
    io_want(r->loop, &p->t_io, &p->t_events, p->r_want | p->w_want);
}

static void handshake(relay_pipe_t *p)
{
    rds_tls_relay_t *r = p->relay;
    ERR_clear_error();
    int n = SSL_connect(p->ssl);
    if (n == 1) {
        p->state = PIPE_OPEN;
        ev_timer_stop(r->loop, &p->deadline);
        RT_LOG_DEBUG("redis tls relay connected addr=%s:%d version=%s", r->host, r->port,
                     SSL_get_version(p->ssl));
        pump(p);
        return;
    }
    int want = 0;
    if (ssl_result(p, n, &want, "handshake with") < 0 || want == 0) {
        if (want == 0 && !p->ssl_bad)
            relay_error(r, "TLS handshake with %s:%d: connection closed", r->host, r->port);
        pipe_close(p);
        return;
    }
    io_want(r->loop, &p->t_io, &p->t_events, want);
}

static int start_tls(relay_pipe_t *p)
{
    rds_tls_relay_t *r = p->relay;
    p->ssl = SSL_new(r->ctx);
    if (p->ssl == NULL || SSL_set_fd(p->ssl, p->tfd) != 1) {
        char why[200];
        ssl_error_text(why, sizeof(why));
        relay_error(r, "TLS setup for %s:%d: %s", r->host, r->port, why);
        return -1;
    }
    bool ok = true;
    if (!r->name_is_ip)
        ok = SSL_set_tlsext_host_name(p->ssl, r->verify_name) == 1;
    if (ok && r->verify) {
        if (r->name_is_ip)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p->ssl), r->verify_name) == 1;
        else
            ok = SSL_set1_host(p->ssl, r->verify_name) == 1;
    }
    if (!ok) {
        char why[200];
        ssl_error_text(why, sizeof(why));
        relay_error(r, "TLS server name \"%s\": %s", r->verify_name, why);
        return -1;
    }
    p->state = PIPE_HANDSHAKE;
    handshake(p);
    return 0;
}

static void on_connected(relay_pipe_t *p)
{
    rds_tls_relay_t *r = p->relay;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(p->tfd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        soerr = errno;
    if (soerr != 0) {
        relay_error(r, "connect %s:%d: %s", r->host, r->port, strerror(soerr));
        pipe_close(p);
        return;
    }
    int one = 1;
    setsockopt(p->tfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (start_tls(p) != 0)
        pipe_close(p);
}

static void on_t_io(struct ev_loop *loop, ev_io *w, int revents)
{
    relay_pipe_t *p = w->data;
    switch (p->state) {
    case PIPE_CONNECTING:
        on_connected(p);
        break;
    case PIPE_HANDSHAKE:
        handshake(p);
        break;
    case PIPE_OPEN:
        pump(p);
        break;
    }
}

static void on_u_io(struct ev_loop *loop, ev_io *w, int revents)
{
    relay_pipe_t *p = w->data;
    RT_DASSERT(p->state == PIPE_OPEN);
    pump(p);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    relay_pipe_t *p = w->data;
    rds_tls_relay_t *r = p->relay;
    relay_error(r, "%s %s:%d: timed out after %.0f ms",
                p->state == PIPE_CONNECTING ? "connect" : "TLS handshake with", r->host, r->port,
                r->connect_timeout_s * 1000.0);
    pipe_close(p);
}

/* Starts a non-blocking connect to the target; returns the fd or -1 (error recorded). */
static int dial(rds_tls_relay_t *r)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    int gai = getaddrinfo(r->host, port, &hints, &res);
    if (gai != 0) {
        relay_error(r, "resolve %s: %s", r->host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, last_errno = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        relay_error(r, "connect %s:%d: %s", r->host, r->port, strerror(last_errno));
    return fd;
}

static void pipe_start(rds_tls_relay_t *r, int ufd)
{
    int tfd = dial(r);
    if (tfd < 0) {
        close(ufd); /* hiredis sees EOF; the owner reads the error */
        return;
    }
    relay_pipe_t *p = RT_NEW(relay_pipe_t);
    p->relay = r;
    p->ufd = ufd;
    p->tfd = tfd;
    p->state = PIPE_CONNECTING;
    p->next = r->pipes;
    if (r->pipes != NULL)
        r->pipes->prev = p;
    r->pipes = p;
    ev_io_init(&p->u_io, on_u_io, ufd, EV_READ);
    p->u_io.data = p;
    ev_io_init(&p->t_io, on_t_io, tfd, EV_WRITE);
    p->t_io.data = p;
    ev_timer_init(&p->deadline, on_deadline, r->connect_timeout_s, 0.0);
    p->deadline.data = p;
    ev_timer_start(r->loop, &p->deadline);
    /* Writable = connected (or failed: SO_ERROR says which). hiredis' bytes wait in the
     * Unix socket until the handshake is done. */
    io_want(r->loop, &p->t_io, &p->t_events, EV_WRITE);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    rds_tls_relay_t *r = w->data;
    for (;;) {
        int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                RT_LOG_WARN("redis tls relay accept failed path=%s error=\"%s\"", r->path,
                            strerror(errno));
            return;
        }
        pipe_start(r, fd);
    }
}

/* ---- the relay ----------------------------------------------------------------------- */

static bool is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* The private directory and the listening socket in it. */
static int listen_private(rds_tls_relay_t *r, rt_buf_t *err)
{
    const char *tmp = getenv("TMPDIR");
    /* sun_path is short: a long TMPDIR falls back to /tmp. */
    if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(r->dir, sizeof(r->dir), "%s/rotor-tls.XXXXXX", tmp);
    if (mkdtemp(r->dir) == NULL) {
        if (err != NULL)
            rt_buf_printf(err, "redis tls: cannot create a directory in %s: %s", tmp,
                          strerror(errno));
        r->dir[0] = '\0';
        return RT_EIO;
    }
    /* mkdtemp already uses 0700; say it anyway, the whole design rests on it. */
    chmod(r->dir, 0700);
    snprintf(r->path, sizeof(r->path), "%s/redis.sock", r->dir);
    struct sockaddr_un sa = {0};
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r->path);
    r->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(r->lfd, LISTEN_BACKLOG) != 0) {
        if (err != NULL)
            rt_buf_printf(err, "redis tls: cannot listen on %s: %s", r->path, strerror(errno));
        return RT_EIO;
    }
    return 0;
}

int rds_tls_relay_new(struct ev_loop *loop, const rds_tls_t *tls, const char *host, int port,
                      int64_t connect_timeout_ms, rds_tls_relay_t **out, rt_buf_t *err)
{
    *out = NULL;
    rds_tls_relay_t *r = RT_NEW(rds_tls_relay_t);
    r->loop = loop;
    r->lfd = -1;
    r->host = rt_strdup(host);
    r->port = port;
    r->verify_name = rt_strdup(is_set(tls->server_name) ? tls->server_name : host);
    r->name_is_ip = is_ip_literal(r->verify_name);
    r->verify = !tls->insecure_skip_verify;
    r->connect_timeout_s = (double)(connect_timeout_ms > 0 ? connect_timeout_ms : 1000) / 1000.0;
    int rc = ctx_new(tls, &r->ctx, err);
    if (rc == 0)
        rc = listen_private(r, err);
    if (rc != 0) {
        rds_tls_relay_free(r);
        return rc;
    }
    ev_io_init(&r->accept_io, on_accept, r->lfd, EV_READ);
    r->accept_io.data = r;
    ev_io_start(loop, &r->accept_io);
    *out = r;
    return 0;
}

void rds_tls_relay_free(rds_tls_relay_t *r)
{
    if (r == NULL)
        return;
    while (r->pipes != NULL)
        pipe_close(r->pipes);
    ev_io_stop(r->loop, &r->accept_io);
    if (r->lfd >= 0)
        close(r->lfd);
    if (r->dir[0] != '\0') {
        unlink(r->path);
        rmdir(r->dir);
    }
    SSL_CTX_free(r->ctx);
    rt_free(r->host);
    rt_free(r->verify_name);
    rt_free(r);
}

const char *rds_tls_relay_path(const rds_tls_relay_t *r)
{
    return r->path;
}

bool rds_tls_relay_take_error(rds_tls_relay_t *r, char *out, size_t n)
{
    bool had = r->error[0] != '\0';
    snprintf(out, n, "%s", r->error);
    r->error[0] = '\0';
    return had;
}

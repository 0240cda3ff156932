/* Helpers for transport tests: a real libev loop, socketpair clients, response parsing. */
#ifndef RT_TESTS_TR_TEST_H
#define RT_TESTS_TR_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "node/base/buf.h"
#include "transports/http_internal.h"
#include "transports/loop.h"

typedef struct tt_env {
    struct ev_loop *loop;
    tr_loop_t tl;
} tt_env_t;

typedef struct tt_client {
    int fd;
    rt_buf_t in; /* everything received so far */
    bool eof;
} tt_client_t;

static inline void tt_env_init(tt_env_t *e, const tr_limits_t *lim)
{
    e->loop = ev_loop_new(EVFLAG_AUTO);
    tr_loop_init(&e->tl, e->loop, lim);
}

static inline void tt_env_cleanup(tt_env_t *e)
{
    tr_loop_cleanup(&e->tl);
    ev_loop_destroy(e->loop);
}

static inline double tt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connected client whose other end is served by srv. */
static inline void tt_client_open(tt_client_t *cl, tr_http_server_t *srv)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    cl->fd = sv[0];
    cl->in = RT_BUF_INIT;
    cl->eof = false;
    tr__http_server_adopt(srv, sv[1], "test");
}

static inline void tt_client_close(tt_client_t *cl)
{
    if (cl->fd >= 0)
        close(cl->fd);
    cl->fd = -1;
    rt_buf_cleanup(&cl->in);
}

static inline void tt_client_read(tt_client_t *cl)
{
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = read(cl->fd, buf, sizeof(buf));
        if (n > 0) {
            rt_buf_append(&cl->in, buf, (size_t)n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            cl->eof = true;
        return;
    }
}

static inline void tt_write(tt_client_t *cl, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(cl->fd, b, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            abort();
        }
        b += w;
        n -= (size_t)w;
    }
}

static inline void tt_write_str(tt_client_t *cl, const char *s)
{
    tt_write(cl, s, strlen(s));
}

/* Runs the loop (and reads cl, if given) until cond(arg) or timeout_s. */
static inline bool tt_run_until(tt_env_t *e, tt_client_t *cl, bool (*cond)(void *), void *arg,
                                double timeout_s)
{
    double end = tt_now() + timeout_s;
    for (;;) {
        ev_run(e->loop, EVRUN_NOWAIT);
        if (cl)
            tt_client_read(cl);
        if (cond && cond(arg))
            return true;
        if (tt_now() > end)
            return false;
        usleep(200);
    }
}

static inline void tt_spin(tt_env_t *e, tt_client_t *cl, int n)
{
    for (int i = 0; i < n; i++) {
        ev_run(e->loop, EVRUN_NOWAIT);
        if (cl)
            tt_client_read(cl);
    }
}

static inline bool tt_cond_eof(void *arg)
{
    return ((tt_client_t *)arg)->eof;
}

/* One parsed HTTP response. */
typedef struct tt_resp {
    int status;
    char head[4096]; /* NUL-terminated status line + headers */
    char body[70000];
    size_t body_len;
} tt_resp_t;

/* Parses the response starting at *off in in; advances *off. False if incomplete. */
static inline bool tt_parse_resp(const rt_buf_t *in, size_t *off, tt_resp_t *r)
{
    const char *p = (const char *)in->p + *off;
    size_t n = in->len - *off;
    const char *end = NULL;
    for (size_t i = 0; i + 3 < n; i++) {
        if (memcmp(p + i, "\r\n\r\n", 4) == 0) {
            end = p + i + 4;
            break;
        }
    }
    if (end == NULL)
        return false;
    size_t hl = (size_t)(end - p);
    if (hl >= sizeof(r->head))
        abort();
    memcpy(r->head, p, hl);
    r->head[hl] = '\0';
    r->status = atoi(r->head + 9);
    size_t clen = 0;
    const char *cl = strstr(r->head, "Content-Length: ");
    if (cl)
        clen = (size_t)strtoul(cl + 16, NULL, 10);
    if (n - hl < clen)
        return false;
    memcpy(r->body, end, clen);
    r->body[clen] = '\0';
    r->body_len = clen;
    *off += hl + clen;
    return true;
}

#endif

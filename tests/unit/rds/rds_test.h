/* Shared by the rds unit tests: loop driving and reply capture. */
#ifndef RT_TESTS_UNIT_RDS_TEST_H
#define RT_TESTS_UNIT_RDS_TEST_H

#include <ev.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "broker/rds.h"
#include "node/base/err.h"
#include "node/base/time.h"

static inline void rds_test_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs the loop until cond holds or ms pass; a 5 ms ticker keeps iterations coming. */
#define RUN_UNTIL(loop, cond, ms)                                                                  \
    do {                                                                                           \
        int64_t dl_ = rt_mono_ms() + (ms);                                                         \
        ev_timer tk_;                                                                              \
        ev_timer_init(&tk_, rds_test_tick, 0.005, 0.005);                                          \
        ev_timer_start((loop), &tk_);                                                              \
        while (!(cond) && rt_mono_ms() < dl_)                                                      \
            ev_run((loop), EVRUN_ONCE);                                                            \
        ev_timer_stop((loop), &tk_);                                                               \
    } while (0)

typedef struct rds_test_res {
    int calls;
    int status;
    int type;
    long long integer;
    size_t len;
    char str[512];
} rds_test_res_t;

static inline void rds_test_on_reply(int status, const redisReply *r, void *ud)
{
    rds_test_res_t *x = ud;
    x->calls++;
    x->status = status;
    x->type = r ? r->type : -1;
    x->integer = r ? r->integer : 0;
    x->len = 0;
    x->str[0] = '\0';
    if (r != NULL && r->str != NULL) {
        x->len = r->len;
        size_t n = r->len < sizeof(x->str) - 1 ? r->len : sizeof(x->str) - 1;
        memcpy(x->str, r->str, n);
        x->str[n] = '\0';
    }
}

/* Sends a command of NUL-terminated arguments (NULL ends the list). */
static inline int rds_test_cmd(rds_client_t *c, rds_test_res_t *res, const char *first, ...)
{
    const char *argv[16];
    size_t lens[16];
    int argc = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && argc < 16; a = va_arg(ap, const char *)) {
        argv[argc] = a;
        lens[argc] = strlen(a);
        argc++;
    }
    va_end(ap);
    memset(res, 0, sizeof(*res));
    return rds_client_command(c, rds_test_on_reply, res, argc, argv, lens);
}

typedef struct rds_test_state {
    int ups;
    int downs;
    bool up;
    bool bad_transition; /* a repeated up or down */
} rds_test_state_t;

static inline void rds_test_on_state(bool up, void *ud)
{
    rds_test_state_t *s = ud;
    if (up == s->up)
        s->bad_transition = true;
    s->up = up;
    if (up)
        s->ups++;
    else
        s->downs++;
}

static inline void rds_test_addr(rds_addr_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void rds_test_addr(rds_addr_t *a, const char *fmt, ...)
{
    char url[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(url, sizeof(url), fmt, ap);
    va_end(ap);
    rt_buf_t err = RT_BUF_INIT;
    int rc = rds_addr_parse(url, a, &err);
    if (rc != 0)
        fprintf(stderr, "bad test url %s: %.*s\n", url, (int)err.len, (const char *)err.p);
    rt_buf_cleanup(&err);
}

#endif

#include "transports/loop.h"

#include <string.h>

#include "node/base/log.h"
#include "transports/conn_internal.h"

/* Free read buffers kept per worker; the rest go back to malloc. */
#define READ_POOL_MAX_FREE 64

void tr_limits_default(tr_limits_t *l)
{
    l->read_buf_bytes = 16384;
    l->max_header_bytes = 16384;
    l->max_body_bytes = 65536;
    l->max_queue_bytes = 1048576;
    l->http_idle_timeout_s = 30;
    l->write_timeout_s = 1;
    l->upgraded_nodelay = true;
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    tr__loop_flush(w->data);
}

void tr_loop_init(tr_loop_t *tl, struct ev_loop *loop, const tr_limits_t *limits)
{
    memset(tl, 0, sizeof(*tl));
    tl->loop = loop;
    if (limits)
        tl->limits = *limits;
    else
        tr_limits_default(&tl->limits);
    /* The pool needs room for its free-list link; the HTTP parser needs a few bytes. */
    if (tl->limits.read_buf_bytes < 64)
        tl->limits.read_buf_bytes = 64;
    rt_pool_init(&tl->read_pool, tl->limits.read_buf_bytes, READ_POOL_MAX_FREE);
    ev_prepare_init(&tl->flush_watcher, on_prepare);
    tl->flush_watcher.data = tl;
    ev_prepare_start(loop, &tl->flush_watcher);
    /* The flush pass alone must not keep ev_run() from returning. */
    ev_unref(loop);
}

void tr_loop_cleanup(tr_loop_t *tl)
{
    tr__loop_flush(tl);
    ev_ref(tl->loop);
    ev_prepare_stop(tl->loop, &tl->flush_watcher);
    if (tl->read_pool.in_use > 0)
        RT_LOG_WARN("transport loop cleanup with connections open buffers=%zu",
                    tl->read_pool.in_use);
    rt_pool_cleanup(&tl->read_pool);
}

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
    l->flush_holds = 4;
}

static void on_hold_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    ev_idle_stop(loop, w); /* it only kept the last pass from sleeping */
}

static void on_hold_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    /* Only wakes the loop: the prepare pass after it flushes. */
}

static void arm_hold_timer(tr_loop_t *tl, ev_tstamp after)
{
    ev_timer_stop(tl->loop, &tl->hold_timer);
    ev_timer_set(&tl->hold_timer, after, 0.);
    ev_timer_start(tl->loop, &tl->hold_timer);
}

/* Before the loop sleeps. When this pass dispatched requests, more output for the same
 * connections usually follows shortly (a publish's fan-out runs once the broker answers; a
 * pipelined backlog yields one publication per pass), so the output waits, at most
 * limits.flush_holds passes in a row:
 *  - after a pass that dispatched requests, the loop polls again at once (hold_idle);
 *  - after one that did not, it may sleep while requests are still in flight (a Redis
 *    round trip), up to TR_FLUSH_HOLD_MAX_S after the last dispatching pass (hold_timer).
 * Saturated, every subscriber then gets several frames per write instead of one segment per
 * frame. With no backlog the pass that writes a fan-out dispatched nothing and nothing is
 * held before it, so the flush is immediate. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    tr_loop_t *tl = w->data;
    bool requests = tl->dispatched > 0;
    tl->dispatched = 0;
    if (tl->dirty != NULL && tl->holds < tl->limits.flush_holds) {
        /* The loop's clock stopped when this pass began, and a fan-out pass can be long. */
        ev_now_update(loop);
        ev_tstamp now = ev_now(loop);
        if (requests) {
            tl->holds++;
            tl->hold_since = now;
            ev_idle_start(loop, &tl->hold_idle);
            arm_hold_timer(tl, TR_FLUSH_HOLD_MAX_S);
            return;
        }
        ev_tstamp left = tl->hold_since + TR_FLUSH_HOLD_MAX_S - now;
        if (tl->holds > 0 && tl->in_flight > 0 && left > 0) {
            tl->holds++;
            arm_hold_timer(tl, left); /* the loop may sleep, not past it */
            return;
        }
    }
    tl->holds = 0;
    ev_timer_stop(loop, &tl->hold_timer);
    tr__loop_flush(tl);
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
    ev_idle_init(&tl->hold_idle, on_hold_idle);
    tl->hold_idle.data = tl;
    ev_init(&tl->hold_timer, on_hold_timer);
    tl->hold_timer.data = tl;
}

void tr_loop_cleanup(tr_loop_t *tl)
{
    tr__loop_flush(tl);
    ev_idle_stop(tl->loop, &tl->hold_idle);
    ev_timer_stop(tl->loop, &tl->hold_timer);
    ev_ref(tl->loop);
    ev_prepare_stop(tl->loop, &tl->flush_watcher);
    if (tl->read_pool.in_use > 0)
        RT_LOG_WARN("transport loop cleanup with connections open buffers=%zu",
                    tl->read_pool.in_use);
    rt_pool_cleanup(&tl->read_pool);
}

#include "transports/conn_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/log.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* Bytes one connection may write per loop iteration, so one fast reader with a deep
 * queue cannot starve the others. */
#define FLUSH_BUDGET_BYTES (256u * 1024u)
/* After shutting down our write side, how long to wait for the peer's EOF. Closing with
 * unread input would send RST and could destroy the response still in flight. */
#define LINGER_S 2.0

static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);
static void on_wtimer(struct ev_loop *loop, ev_timer *w, int revents);

tr_conn_t *tr__conn_new(tr_loop_t *tl, int fd, const char *remote, const tr_conn_ops_t *ops,
                        void *proto)
{
    tr_conn_t *c = RT_NEW(tr_conn_t);
    c->tl = tl;
    c->fd = fd;
    c->ops = ops;
    c->proto = proto;
    snprintf(c->remote, sizeof(c->remote), "%s", remote ? remote : "");
    ev_io_init(&c->rio, on_read, fd, EV_READ);
    c->rio.data = c;
    ev_io_init(&c->wio, on_write, fd, EV_WRITE);
    c->wio.data = c;
    ev_init(&c->wtimer, on_wtimer);
    c->wtimer.data = c;
    ev_io_start(tl->loop, &c->rio);
    tl->stats.conns_open++;
    tl->stats.conns_accepted++;
    return c;
}

static void release_rbuf(tr_conn_t *c)
{
    rt_pool_put(&c->tl->read_pool, c->rbuf);
    c->rbuf = NULL;
    c->roff = c->rlen = 0;
}

static void mark_dirty(tr_conn_t *c)
{
    /* While EV_WRITE is armed the socket is full: its callback marks c dirty again. */
    if (c->dirty || ev_is_active(&c->wio))
        return;
    c->dirty = true;
    c->dirty_next = c->tl->dirty;
    c->tl->dirty = c;
}

static void start_write_timer(tr_conn_t *c)
{
    if (c->write_timeout_s <= 0 || c->lingering)
        return;
    c->wtimer.repeat = c->write_timeout_s;
    ev_timer_again(c->tl->loop, &c->wtimer);
}

void tr__conn_enqueue(tr_conn_t *c, rt_bytes_t *b)
{
    if (c->dropped || c->finishing || b->len == 0)
        return;
    if (c->qlen == c->qcap) {
        size_t ncap = c->qcap ? c->qcap * 2 : 4;
        tr_out_t *nq = rt_malloc(ncap * sizeof(*nq));
        for (size_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        rt_free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = (tr_out_t){rt_bytes_ref(b), 0};
    c->qlen++;
    c->qbytes += b->len;
    mark_dirty(c);
}

void tr__conn_enqueue_copy(tr_conn_t *c, const void *p, size_t n)
{
    rt_bytes_t *b = rt_bytes_copy(p, n);
    tr__conn_enqueue(c, b);
    rt_bytes_unref(b);
}

static void queue_pop(tr_conn_t *c)
{
    tr_out_t *o = &c->q[c->qhead];
    rt_bytes_unref(o->b);
    o->b = NULL;
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
}

void tr__conn_discard_output(tr_conn_t *c)
{
    size_t keep = 0;
    if (c->qlen > 0 && c->q[c->qhead].off > 0)
        keep = 1;
    while (c->qlen > keep) {
        /* Pop from the tail: the head may be the partly written entry we keep. */
        size_t last = (c->qhead + c->qlen - 1) % c->qcap;
        c->qbytes -= c->q[last].b->len;
        rt_bytes_unref(c->q[last].b);
        c->q[last].b = NULL;
        c->qlen--;
    }
}

static void start_linger(tr_conn_t *c)
{
    if (c->lingering)
        return;
    c->lingering = true;
    if (c->peer_eof) {
        tr__conn_drop(c, TR_CONN_LOCAL);
        return;
    }
    if (shutdown(c->fd, SHUT_WR) != 0) {
        tr__conn_drop(c, TR_CONN_LOCAL);
        return;
    }
    if (!ev_is_active(&c->rio))
        ev_io_start(c->tl->loop, &c->rio);
    ev_timer_stop(c->tl->loop, &c->wtimer);
    ev_timer_set(&c->wtimer, LINGER_S, 0.);
    ev_timer_start(c->tl->loop, &c->wtimer);
}

void tr__conn_finish(tr_conn_t *c)
{
    if (c->dropped || c->finishing)
        return;
    c->finishing = true;
    /* Input is no longer parsed; hold no read buffer for it. */
    release_rbuf(c);
    if (c->qlen == 0)
        start_linger(c);
}

void tr__conn_drop(tr_conn_t *c, int reason)
{
    if (c->dropped)
        return;
    tr_loop_t *tl = c->tl;
    c->dropped = true;
    ev_io_stop(tl->loop, &c->rio);
    ev_io_stop(tl->loop, &c->wio);
    ev_timer_stop(tl->loop, &c->wtimer);
    close(c->fd);
    c->fd = -1;
    while (c->qlen > 0)
        queue_pop(c);
    c->qbytes = 0;
    release_rbuf(c);
    tl->stats.conns_open--;
    c->closed_next = tl->closed;
    tl->closed = c;
    c->ops->on_drop(c, reason);
}

void tr__conn_kick(tr_conn_t *c)
{
    if (c->dropped || c->finishing)
        return;
    if (!ev_is_active(&c->rio))
        ev_io_start(c->tl->loop, &c->rio);
    if (c->rlen > c->roff)
        ev_feed_event(c->tl->loop, &c->rio, EV_CUSTOM);
}

/* Reads and throws away input while finishing, to see the peer's EOF. */
static void discard_input(tr_conn_t *c)
{
    uint8_t junk[4096];
    for (int i = 0; i < 4; i++) {
        ssize_t n = read(c->fd, junk, sizeof(junk));
        if (n > 0) {
            c->tl->stats.bytes_in += (uint64_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        /* EOF or error: nothing more will come. */
        c->peer_eof = true;
        ev_io_stop(c->tl->loop, &c->rio);
        if (c->lingering || c->qlen == 0 || n < 0)
            tr__conn_drop(c, TR_CONN_LOCAL);
        return;
    }
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    tr_conn_t *c = w->data;
    tr_loop_t *tl = c->tl;
    size_t cap = tl->limits.read_buf_bytes;
    bool eof = false;

    if (c->finishing) {
        discard_input(c);
        return;
    }
    if (c->rbuf == NULL)
        c->rbuf = rt_pool_get(&tl->read_pool);
    if (c->roff == c->rlen) {
        c->roff = c->rlen = 0;
    } else if (c->rlen == cap && c->roff > 0) {
        memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
        c->rlen -= c->roff;
        c->roff = 0;
    }
    if ((revents & EV_READ) && c->rlen < cap) {
        ssize_t n = read(c->fd, c->rbuf + c->rlen, cap - c->rlen);
        if (n > 0) {
            c->rlen += (size_t)n;
            tl->stats.bytes_in += (uint64_t)n;
        } else if (n == 0) {
            eof = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            RT_LOG_DEBUG("read failed remote=%s err=%s", c->remote, strerror(errno));
            tr__conn_drop(c, TR_CONN_ERROR);
            return;
        }
    }
    if (c->roff < c->rlen) {
        c->in_read = true;
        c->ops->on_input(c);
        c->in_read = false;
        if (c->dropped)
            return;
    }
    if (eof) {
        c->peer_eof = true;
        /* A half-closed peer still gets what we already owe it. */
        if (c->qlen > 0 && !c->finishing) {
            ev_io_stop(loop, &c->rio);
            tr__conn_finish(c);
        } else if (c->finishing) {
            ev_io_stop(loop, &c->rio);
        } else {
            tr__conn_drop(c, TR_CONN_EOF);
        }
        return;
    }
    if (c->finishing)
        return;
    if (c->roff == c->rlen) {
        release_rbuf(c);
    } else if (c->rlen == cap && c->roff == 0) {
        /* Full and the protocol consumes nothing (a response is pending): stop reading
         * until tr__conn_kick(). */
        ev_io_stop(loop, &c->rio);
    }
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    tr_conn_t *c = w->data;
    ev_io_stop(loop, &c->wio);
    mark_dirty(c);
}

static void on_wtimer(struct ev_loop *loop, ev_timer *w, int revents)
{
    tr_conn_t *c = w->data;
    if (c->lingering) {
        tr__conn_drop(c, TR_CONN_LOCAL);
        return;
    }
    RT_LOG_DEBUG("write timeout remote=%s queued=%zu", c->remote, c->qbytes);
    tr__conn_drop(c, TR_CONN_WRITE_TIMEOUT);
}

static void conn_flush(tr_conn_t *c)
{
    tr_loop_t *tl = c->tl;
    struct iovec iov[IOV_MAX];
    int n = 0;
    size_t total = 0;

    if (c->dropped || c->qlen == 0)
        return;
    for (size_t i = 0; i < c->qlen && n < IOV_MAX && total < FLUSH_BUDGET_BYTES; i++) {
        tr_out_t *o = &c->q[(c->qhead + i) % c->qcap];
        size_t len = o->b->len - o->off;
        if (len > FLUSH_BUDGET_BYTES - total)
            len = FLUSH_BUDGET_BYTES - total;
        iov[n].iov_base = (void *)(o->b->data + o->off);
        iov[n].iov_len = len;
        n++;
        total += len;
    }
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t wr = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    tl->stats.writes++;
    if (wr < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            RT_LOG_DEBUG("write failed remote=%s err=%s", c->remote, strerror(errno));
            tr__conn_drop(c, TR_CONN_ERROR);
            return;
        }
        wr = 0;
    }
    size_t left = (size_t)wr;
    tl->stats.bytes_out += left;
    c->qbytes -= left;
    while (left > 0) {
        tr_out_t *o = &c->q[c->qhead];
        size_t rest = o->b->len - o->off;
        if (left < rest) {
            o->off += left;
            break;
        }
        left -= rest;
        tl->stats.frames_out++;
        queue_pop(c);
    }
    /* The write timer runs only while output is stuck: a flush that empties the queue (the
     * common case) costs no timer work. It restarts whenever bytes move. */
    if (c->qlen == 0) {
        if (!c->lingering && ev_is_active(&c->wtimer))
            ev_timer_stop(tl->loop, &c->wtimer);
        if (c->finishing)
            start_linger(c);
        return;
    }
    if (wr > 0 || !ev_is_active(&c->wtimer))
        start_write_timer(c);
    ev_io_start(tl->loop, &c->wio);
}

void tr__conn_write_now(tr_conn_t *c)
{
    conn_flush(c);
}

void tr__loop_flush(tr_loop_t *tl)
{
    /* Dropped connections may still sit in the dirty list; free them only once it is
     * empty. Callbacks run by a flush (on_drop) may dirty or drop others: loop. */
    while (tl->dirty || tl->closed) {
        tr_conn_t *c;
        while ((c = tl->dirty) != NULL) {
            tl->dirty = c->dirty_next;
            c->dirty_next = NULL;
            c->dirty = false;
            conn_flush(c);
        }
        while ((c = tl->closed) != NULL && tl->dirty == NULL) {
            tl->closed = c->closed_next;
            c->ops->on_free(c);
            rt_free(c->q);
            rt_free(c);
        }
    }
}

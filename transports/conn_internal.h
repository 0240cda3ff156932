/* One TCP connection of a worker: fd, read buffer, output queue, write timeout and the
 * graceful close ("finish"). A protocol (HTTP, WebSocket) sits on top through tr_conn_ops_t.
 * Internal to transports/; touched only by the worker thread that owns tl. */
#ifndef RT_TRANSPORTS_CONN_INTERNAL_H
#define RT_TRANSPORTS_CONN_INTERNAL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/bytes.h"
#include "transports/loop.h"

/* Why a connection was dropped (tr_conn_ops_t.on_drop). */
enum {
    TR_CONN_EOF = 1,           /* peer closed its side */
    TR_CONN_ERROR = 2,         /* read or write failed */
    TR_CONN_WRITE_TIMEOUT = 3, /* queued output made no progress for write_timeout_s */
    TR_CONN_TIMEOUT = 4,       /* protocol timer (idle, close wait) */
    TR_CONN_LOCAL = 5,         /* our graceful finish completed, or an explicit local drop */
};

typedef struct tr_conn_ops {
    /* Unconsumed input at c->rbuf[c->roff .. c->rlen). Consume by advancing c->roff.
     * May enqueue, finish or drop c. */
    void (*on_input)(tr_conn_t *c);
    /* c was dropped: fd closed, watchers stopped, queue released. Runs once; c stays
     * allocated until the before-sleep pass. Must not drop or free c. */
    void (*on_drop)(tr_conn_t *c, int reason);
    /* Frees c->proto; runs in the before-sleep pass, after on_drop. */
    void (*on_free)(tr_conn_t *c);
} tr_conn_ops_t;

typedef struct tr_out {
    rt_bytes_t *b; /* owned reference */
    size_t off;    /* bytes of b already written */
} tr_out_t;

struct tr_conn {
    tr_loop_t *tl; /* borrowed; outlives c */
    int fd;        /* owned; -1 once dropped */
    ev_io rio;
    ev_io wio;                /* active only while output remains after a flush */
    ev_timer wtimer;          /* write stall while output is queued; linger while finishing */
    uint8_t *rbuf;            /* owned tl->read_pool block, NULL while no partial input */
    size_t roff;              /* first unconsumed byte in rbuf */
    size_t rlen;              /* bytes in rbuf; roff <= rlen <= tl->limits.read_buf_bytes */
    tr_out_t *q;              /* owned ring of qcap entries */
    size_t qhead;             /* index of the oldest entry */
    size_t qlen;              /* entries in use */
    size_t qcap;              /* entries allocated */
    size_t qbytes;            /* unwritten bytes in the queue */
    double write_timeout_s;   /* 0 = none */
    const tr_conn_ops_t *ops; /* borrowed static table */
    void *proto;              /* protocol state, owned through ops->on_free */
    tr_conn_t *dirty_next;    /* link in tl->dirty while dirty */
    tr_conn_t *closed_next;   /* link in tl->closed once dropped */
    bool dirty;
    bool dropped;
    bool finishing;  /* close once the queue drains; input is discarded */
    bool lingering;  /* write side shut down, waiting for the peer's EOF */
    bool peer_eof;   /* the peer shut down its write side */
    bool in_read;    /* inside the read callback (kick needs no event then) */
    char remote[64]; /* "ip:port", "unix" for socketpairs */
};

/* Wraps an accepted non-blocking fd (takes ownership) and starts reading. remote: NULL or
 * text copied into c->remote. */
tr_conn_t *tr__conn_new(tr_loop_t *tl, int fd, const char *remote, const tr_conn_ops_t *ops,
                        void *proto);
/* Appends b (takes a reference) to the output queue and marks c dirty. No-op once c is
 * dropped or finishing. */
void tr__conn_enqueue(tr_conn_t *c, rt_bytes_t *b);
/* Same with a copy of p[0..n). */
void tr__conn_enqueue_copy(tr_conn_t *c, const void *p, size_t n);
/* Drops every queued entry not yet started; a partly written entry stays so the stream
 * remains well-formed. */
void tr__conn_discard_output(tr_conn_t *c);
/* Graceful close: flush the queue, shut down the write side, read and discard until the
 * peer's EOF (bounded), then drop with TR_CONN_LOCAL. Idempotent. */
void tr__conn_finish(tr_conn_t *c);
/* Writes what c has queued now, as far as the socket takes it, without waiting (for a
 * close when the loop may not run again). */
void tr__conn_write_now(tr_conn_t *c);
/* Immediate close: stops watchers, closes the fd, releases queue and read buffer, runs
 * ops->on_drop(reason) and queues c for the before-sleep free. Idempotent. */
void tr__conn_drop(tr_conn_t *c, int reason);
/* Makes the protocol see buffered input again soon (after it stopped consuming, e.g. an
 * HTTP request that was answered asynchronously). Never calls on_input synchronously. */
void tr__conn_kick(tr_conn_t *c);

/* Before-sleep pass: flush dirty connections, free dropped ones. */
void tr__loop_flush(tr_loop_t *tl);

#endif

/* HTTP/1.1 streaming responses on top of tr_conn_t (see stream.h). */
#include "transports/stream.h"

#include <stdio.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "transports/conn_internal.h"
#include "transports/http_internal.h"

struct tr_stream {
    tr_conn_t *conn; /* borrowed: the connection owns us through on_free */
    tr_stream_handler_t h;
    void *ud;
    bool ending; /* tr_stream_end() called */
    bool closed; /* on_close ran */
};

static void stream_on_input(tr_conn_t *c)
{
    /* Nothing is expected after the request: discard (a pipelined request would have to
     * wait for the end of an endless body anyway). */
    c->roff = c->rlen;
}

static void stream_on_drop(tr_conn_t *c, int reason)
{
    tr_stream_t *st = c->proto;
    st->closed = true;
    int code = TR_STREAM_CLOSED_PEER;
    if (st->ending && reason == TR_CONN_LOCAL)
        code = TR_STREAM_CLOSED_LOCAL;
    else if (reason == TR_CONN_WRITE_TIMEOUT)
        code = TR_STREAM_CLOSED_WRITE_TIMEOUT;
    st->h.on_close(st, code, st->ud);
}

static void stream_on_free(tr_conn_t *c)
{
    rt_free(c->proto);
}

static const tr_conn_ops_t stream_ops = {
    .on_input = stream_on_input,
    .on_drop = stream_on_drop,
    .on_free = stream_on_free,
};

int tr_stream_start(tr_http_req_t *req, int status, const char *extra_headers,
                    const tr_stream_handler_t *h, void *ud, tr_stream_t **out)
{
    if (tr__http_req_version(req) != 11) {
        tr_http_respond_error(req, 505, "streaming needs HTTP/1.1");
        return RT_EUNAVAIL;
    }
    rt_buf_t head = RT_BUF_INIT;
    rt_buf_printf(&head, "HTTP/1.1 %d %s\r\n", status, tr__http_status_text(status));
    if (extra_headers)
        rt_buf_append_cstr(&head, extra_headers);
    rt_buf_append_cstr(&head, "Transfer-Encoding: chunked\r\n\r\n");
    rt_bytes_t *bytes = rt_buf_to_bytes(&head);
    rt_buf_cleanup(&head);

    tr_stream_t *st = RT_NEW(tr_stream_t);
    st->h = *h;
    st->ud = ud;
    tr_conn_t *c = tr__http_req_upgrade(req, bytes, &stream_ops, st);
    rt_bytes_unref(bytes);
    if (c == NULL) {
        rt_free(st);
        return RT_ECLOSED;
    }
    st->conn = c;
    *out = st;
    return 0;
}

int tr_stream_send(tr_stream_t *st, rt_bytes_t *chunk)
{
    tr_conn_t *c = st->conn;
    if (st->ending || st->closed || c->dropped || c->finishing)
        return RT_ECLOSED;
    if (c->qbytes + chunk->len > c->tl->limits.max_queue_bytes)
        return RT_ELIMIT;
    tr__conn_enqueue(c, chunk);
    return 0;
}

void tr_stream_end(tr_stream_t *st, bool discard)
{
    if (st->ending || st->closed)
        return;
    st->ending = true;
    tr_conn_t *c = st->conn;
    if (discard)
        tr__conn_discard_output(c);
    tr__conn_enqueue_copy(c, "0\r\n\r\n", 5);
    tr__conn_finish(c);
}

size_t tr_stream_queued_bytes(const tr_stream_t *st)
{
    return st->conn->qbytes;
}

const char *tr_stream_remote(const tr_stream_t *st)
{
    return st->conn->remote;
}

/* ---- chunks ---- */

size_t tr_stream_chunk_head(char *out, size_t payload_len)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = hex[payload_len & 15];
        payload_len >>= 4;
    } while (payload_len);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n++] = '\r';
    out[n++] = '\n';
    return n;
}

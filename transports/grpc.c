/* gRPC server-streaming calls over HTTP/2 (nghttp2, server side, prior knowledge).
 *
 * Layers: tr_conn_t owns the socket, the read buffer and the output queue; grpc_conn_t is
 * its protocol state and owns the nghttp2 session; each client stream we track is a
 * tr_grpc_call_t owned by its grpc_conn_t (list gc->calls) and freed when nghttp2 closes the
 * stream or the connection drops.
 *
 * Input: the whole unconsumed read buffer goes to nghttp2_session_mem_recv(); the request
 * message is assembled per call from DATA chunks, bounded by max_recv_message_bytes before
 * anything is allocated for it.
 *
 * Output: nghttp2_session_send() with a send callback that gathers control frames into
 * gc->wbuf, and NGHTTP2_DATA_FLAG_NO_COPY DATA whose send_data_callback queues the frame
 * header and then a reference to the shared message when the frame carries it whole.
 * Sessions are sent from the input handler (after mem_recv) and from a per-server pass
 * that runs before the loop sleeps: an ev_prepare at top priority, so it runs ahead of the
 * transport loop's flush in the same iteration; work scheduled after it in that iteration
 * (e.g. from a connection dropped by the flush) starts a zero timer instead, so nothing
 * waits for an unrelated wakeup. tr_grpc_send() and tr_grpc_finish() only queue and
 * schedule, so handler callbacks never run inside them.
 *
 * Memory per idle connection: tr_conn_t, grpc_conn_t and the nghttp2 session (its HPACK
 * deflate table is disabled: our response headers are a few bytes). A call holds its path
 * and request bytes only until on_call returns. */
#include "transports/grpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "transports/conn_internal.h"
#include "transports/listener_internal.h"

#define MAX_CONCURRENT_STREAMS 100
/* A longer :path cannot name a method we serve; the stream is reset. */
#define MAX_PATH_BYTES 1024

typedef struct grpc_conn grpc_conn_t;

enum {
    CALL_RECV = 0,      /* request headers or message arriving; not with the handler */
    CALL_REJECTED = 1,  /* we answered with an error status; never with the handler */
    CALL_OPEN = 2,      /* with the handler */
    CALL_FINISHING = 3, /* tr_grpc_finish() ran: trailers follow the queued messages */
    CALL_CLOSED = 4,    /* on_close ran (or is never owed) */
};

struct tr_grpc_call {
    grpc_conn_t *gc;             /* borrowed: the connection owns the call */
    tr_grpc_call_t *prev, *next; /* in gc->calls */
    int32_t stream_id;
    int state;
    bool dispatched;    /* on_call ran: on_close is owed exactly once */
    bool method_post;   /* :method was POST */
    bool grpc_ct;       /* content-type is application/grpc[+...|;...] */
    bool headers_sent;  /* response HEADERS with a data provider submitted */
    bool data_deferred; /* the data provider returned DEFERRED: resume on new output */
    char *path;         /* owned ":path", NUL-terminated; NULL after dispatch */
    rt_buf_t req;       /* owned request bytes, prefix included; released after dispatch */
    size_t req_need;    /* prefix + declared length, known once 5 bytes arrived; 0 before */
    /* Messages not yet framed into DATA: ring of qcap owned references. */
    rt_bytes_t **q;
    size_t qhead, qlen, qcap;
    size_t head_off; /* bytes of q[qhead] already framed */
    size_t qbytes;   /* unframed bytes in q */
    size_t reserved; /* bytes the read callback promised to the next send_data_callback */
    int status;      /* grpc-status for the trailers */
    char *message;   /* owned percent-encoded grpc-message, or NULL */
    void *ud;        /* borrowed, for on_close */
};

struct grpc_conn {
    tr_conn_t *conn;                      /* borrowed: the connection owns us through on_free */
    tr_grpc_server_t *srv;                /* borrowed; NULL once the server is freed */
    grpc_conn_t *prev, *next;             /* in srv->conns */
    grpc_conn_t *dirty_prev, *dirty_next; /* in srv->dirty while dirty */
    nghttp2_session *session;             /* owned; deleted in on_free */
    tr_grpc_call_t *calls;                /* owned: every stream we track */
    rt_buf_t wbuf;                        /* frames gathered during one nghttp2_session_send */
    ev_timer preface_timer;               /* until the client's first frame */
    bool dirty;
    bool dead; /* dropped or detached: nghttp2 is not called again */
};

struct tr_grpc_server {
    tr_loop_t *tl; /* borrowed */
    tr_grpc_handler_t h;
    tr_grpc_opts_t opts;
    tr__listener_t listener;
    ev_prepare pass_w;      /* send pass before sleep, EV_MAXPRI */
    ev_timer kick_w;        /* zero timer for work scheduled after this iteration's pass */
    unsigned int pass_iter; /* ev_iteration() when pass_w last ran */
    bool in_pass;
    bool stopped;
    grpc_conn_t *conns;             /* live connections, not owned */
    grpc_conn_t *dirty;             /* connections whose session has output to produce */
    nghttp2_session_callbacks *cbs; /* owned; copied into each session */
    nghttp2_option *option;         /* owned; copied into each session */
};

static void grpc_on_input(tr_conn_t *c);
static void grpc_on_drop(tr_conn_t *c, int reason);
static void grpc_on_free(tr_conn_t *c);

static const tr_conn_ops_t grpc_ops = {
    .on_input = grpc_on_input,
    .on_drop = grpc_on_drop,
    .on_free = grpc_on_free,
};

/* ---- messages ---- */

void tr_grpc_msg_head(uint8_t *p, size_t len)
{
    RT_ASSERT(len <= UINT32_MAX);
    p[0] = 0; /* not compressed */
    p[1] = (uint8_t)(len >> 24);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 8);
    p[4] = (uint8_t)len;
}

rt_bytes_t *tr_grpc_msg_new(const void *payload, size_t len)
{
    rt_bytes_t *b = rt_bytes_new(TR_GRPC_MSG_HEAD_BYTES + len);
    uint8_t *p = rt_bytes_mut(b);
    tr_grpc_msg_head(p, len);
    if (len > 0)
        memcpy(p + TR_GRPC_MSG_HEAD_BYTES, payload, len);
    return b;
}

rt_shared_t *tr_grpc_msg_new_shared(const void *payload, size_t len)
{
    rt_shared_t *s = rt_shared_new(TR_GRPC_MSG_HEAD_BYTES + len);
    tr_grpc_msg_head(s->data, len);
    if (len > 0)
        memcpy(s->data + TR_GRPC_MSG_HEAD_BYTES, payload, len);
    return s;
}

void tr_grpc_opts_default(tr_grpc_opts_t *opts)
{
    opts->max_recv_message_bytes = 65536;
}

/* ---- header helpers ---- */

#define NV_LIT(name, value)                                                                        \
    {                                                                                              \
        (uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, sizeof(value) - 1,                \
            NGHTTP2_NV_FLAG_NONE                                                                   \
    }

static nghttp2_nv nv_make(const char *name, const char *value)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                        NGHTTP2_NV_FLAG_NONE};
}

/* gRPC's grpc-message encoding: bytes outside printable ASCII, and '%', become %XX. */
static char *percent_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    rt_buf_t b = RT_BUF_INIT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '%') {
            uint8_t esc[3] = {'%', (uint8_t)hex[*p >> 4], (uint8_t)hex[*p & 15]};
            rt_buf_append(&b, esc, sizeof(esc));
        } else {
            rt_buf_append_byte(&b, *p);
        }
    }
    char *out = rt_strndup((const char *)b.p, b.len);
    rt_buf_cleanup(&b);
    return out;
}

/* application/grpc, optionally followed by "+codec" or ";params". */
static bool is_grpc_content_type(const uint8_t *v, size_t n)
{
    static const char want[] = "application/grpc";
    size_t wn = sizeof(want) - 1;
    if (n < wn || strncasecmp((const char *)v, want, wn) != 0)
        return false;
    return n == wn || v[wn] == '+' || v[wn] == ';';
}

/* ---- calls ---- */

static void call_unlink(tr_grpc_call_t *call)
{
    grpc_conn_t *gc = call->gc;
    if (call->prev)
        call->prev->next = call->next;
    else
        gc->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

static void queue_clear(tr_grpc_call_t *call)
{
    while (call->qlen > 0) {
        rt_bytes_unref(call->q[call->qhead]);
        call->qhead = (call->qhead + 1) % call->qcap;
        call->qlen--;
    }
    call->qbytes = 0;
    call->head_off = 0;
}

static void call_free(tr_grpc_call_t *call)
{
    queue_clear(call);
    rt_free(call->q);
    rt_free(call->path);
    rt_free(call->message);
    rt_buf_cleanup(&call->req);
    rt_free(call);
}

/* Runs on_close if it is owed; the call stays allocated. */
static void call_close(tr_grpc_call_t *call)
{
    bool owed = call->dispatched && call->state != CALL_CLOSED;
    call->state = CALL_CLOSED;
    queue_clear(call);
    if (owed && call->gc->srv != NULL)
        call->gc->srv->h.on_close(call, call->ud);
}

static void queue_push(tr_grpc_call_t *call, rt_bytes_t *msg)
{
    if (call->qlen == call->qcap) {
        size_t ncap = call->qcap ? call->qcap * 2 : 4;
        rt_bytes_t **nq = rt_malloc(ncap * sizeof(*nq));
        for (size_t i = 0; i < call->qlen; i++)
            nq[i] = call->q[(call->qhead + i) % call->qcap];
        rt_free(call->q);
        call->q = nq;
        call->qcap = ncap;
        call->qhead = 0;
    }
    call->q[(call->qhead + call->qlen) % call->qcap] = rt_bytes_ref(msg);
    call->qlen++;
    call->qbytes += msg->len;
}

static void queue_advance(tr_grpc_call_t *call, size_t n)
{
    rt_bytes_t *head = call->q[call->qhead];
    call->head_off += n;
    call->qbytes -= n;
    if (call->head_off == head->len) {
        rt_bytes_unref(head);
        call->qhead = (call->qhead + 1) % call->qcap;
        call->qlen--;
        call->head_off = 0;
    }
}

/* ---- send scheduling ---- */

static void dirty_unlink(grpc_conn_t *gc)
{
    if (!gc->dirty)
        return;
    if (gc->dirty_prev)
        gc->dirty_prev->dirty_next = gc->dirty_next;
    else
        gc->srv->dirty = gc->dirty_next;
    if (gc->dirty_next)
        gc->dirty_next->dirty_prev = gc->dirty_prev;
    gc->dirty_prev = gc->dirty_next = NULL;
    gc->dirty = false;
}

static bool conn_writable(const grpc_conn_t *gc)
{
    return !gc->dead && !gc->conn->dropped && !gc->conn->finishing;
}

/* The session has something to send: have the pass produce it before the loop sleeps. */
static void schedule_send(grpc_conn_t *gc)
{
    tr_grpc_server_t *srv = gc->srv;
    if (srv == NULL || !conn_writable(gc))
        return;
    if (!gc->dirty) {
        gc->dirty = true;
        gc->dirty_prev = NULL;
        gc->dirty_next = srv->dirty;
        if (srv->dirty)
            srv->dirty->dirty_prev = gc;
        srv->dirty = gc;
    }
    /* This iteration's pass already ran and the loop is about to poll: run another one
     * right after the poll instead of whenever the next event comes. */
    if (!srv->in_pass && srv->pass_iter == ev_iteration(srv->tl->loop) &&
        !ev_is_active(&srv->kick_w)) {
        ev_timer_set(&srv->kick_w, 0., 0.);
        ev_timer_start(srv->tl->loop, &srv->kick_w);
    }
}

static void flush_wbuf(grpc_conn_t *gc)
{
    if (gc->wbuf.len == 0)
        return;
    tr__conn_enqueue_copy(gc->conn, gc->wbuf.p, gc->wbuf.len);
    rt_buf_reset(&gc->wbuf);
}

/* Lets nghttp2 produce everything it may send now into the connection's queue. Closes the
 * connection when the session is done (GOAWAY exchanged and no streams, or a fatal
 * protocol error). Never called from inside an nghttp2 callback. */
static void session_flush(grpc_conn_t *gc)
{
    if (gc->dirty)
        dirty_unlink(gc);
    if (!conn_writable(gc))
        return;
    int rv = nghttp2_session_send(gc->session);
    flush_wbuf(gc);
    rt_buf_cleanup(&gc->wbuf); /* an idle connection keeps no output buffer */
    if (gc->dead || gc->conn->dropped)
        return;
    if (rv != 0) {
        RT_LOG_DEBUG("grpc session send failed remote=%s err=%s", gc->conn->remote,
                     nghttp2_strerror(rv));
        tr__conn_drop(gc->conn, TR_CONN_ERROR);
        return;
    }
    if (!nghttp2_session_want_read(gc->session) && !nghttp2_session_want_write(gc->session))
        tr__conn_finish(gc->conn);
}

static void run_pass(tr_grpc_server_t *srv)
{
    srv->in_pass = true;
    while (srv->dirty != NULL)
        session_flush(srv->dirty); /* unlinks it */
    srv->in_pass = false;
}

static void on_pass(struct ev_loop *loop, ev_prepare *w, int revents)
{
    tr_grpc_server_t *srv = w->data;
    run_pass(srv);
    srv->pass_iter = ev_iteration(loop);
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    run_pass(w->data);
}

/* ---- responses ---- */

/* Trailer fields of call (grpc-status, grpc-message) into nv; returns how many. */
static size_t trailer_nv(const tr_grpc_call_t *call, nghttp2_nv *nv, char *status_buf,
                         size_t status_len)
{
    snprintf(status_buf, status_len, "%d", call->status);
    size_t n = 0;
    nv[n++] = nv_make("grpc-status", status_buf);
    if (call->message != NULL && call->message[0] != '\0')
        nv[n++] = nv_make("grpc-message", call->message);
    return n;
}

/* A response of one HEADERS frame with END_STREAM: HTTP status, content-type and the
 * trailer fields ("trailers-only" in gRPC terms). */
static void submit_trailers_only(tr_grpc_call_t *call, int http_status)
{
    char hs[8], gs[16];
    nghttp2_nv nv[4];
    snprintf(hs, sizeof(hs), "%d", http_status);
    nv[0] = nv_make(":status", hs);
    nv[1] = (nghttp2_nv)NV_LIT("content-type", "application/grpc");
    size_t n = 2 + trailer_nv(call, nv + 2, gs, sizeof(gs));
    int rv = nghttp2_submit_headers(call->gc->session, NGHTTP2_FLAG_END_STREAM, call->stream_id,
                                    NULL, nv, n, NULL);
    if (rv != 0)
        RT_LOG_DEBUG("grpc response not submitted stream=%d err=%s", (int)call->stream_id,
                     nghttp2_strerror(rv));
    schedule_send(call->gc);
}

static void set_status(tr_grpc_call_t *call, int status, const char *message)
{
    call->status = status;
    rt_free(call->message);
    call->message = message ? percent_encode(message) : NULL;
}

/* Answers a call that never reaches the handler. */
static void reject(tr_grpc_call_t *call, int http_status, int status, const char *message)
{
    RT_LOG_DEBUG("grpc call rejected remote=%s stream=%d status=%d message=%s",
                 call->gc->conn->remote, (int)call->stream_id, status, message);
    call->state = CALL_REJECTED;
    rt_buf_cleanup(&call->req);
    set_status(call, status, message);
    submit_trailers_only(call, http_status);
}

static ssize_t data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    tr_grpc_call_t *call = source->ptr;
    grpc_conn_t *gc = user_data;
    if (gc->dead)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (call->qlen > 0) {
        /* One message (or the part the window allows) per frame: the frame then maps to
         * the shared bytes, which send_data_callback queues without a copy. */
        size_t rest = call->q[call->qhead]->len - call->head_off;
        size_t n = rest < length ? rest : length;
        call->reserved = n;
        *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
        return (ssize_t)n;
    }
    if (call->state == CALL_FINISHING) {
        char gs[16];
        nghttp2_nv nv[2];
        size_t n = trailer_nv(call, nv, gs, sizeof(gs));
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        int rv = nghttp2_submit_trailer(session, stream_id, nv, n);
        if (rv != 0) {
            RT_LOG_DEBUG("grpc trailers not submitted stream=%d err=%s", (int)stream_id,
                         nghttp2_strerror(rv));
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        return 0;
    }
    call->data_deferred = true;
    return NGHTTP2_ERR_DEFERRED;
}

/* New output or the finish for a call whose data provider may be parked. */
static void resume_data(tr_grpc_call_t *call)
{
    if (call->data_deferred) {
        call->data_deferred = false;
        (void)nghttp2_session_resume_data(call->gc->session, call->stream_id);
    }
    schedule_send(call->gc);
}

static int submit_response(tr_grpc_call_t *call)
{
    nghttp2_nv nv[2] = {NV_LIT(":status", "200"), NV_LIT("content-type", "application/grpc")};
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = data_read};
    int rv = nghttp2_submit_response(call->gc->session, call->stream_id, nv, 2, &prd);
    if (rv != 0) {
        RT_LOG_DEBUG("grpc response not submitted stream=%d err=%s", (int)call->stream_id,
                     nghttp2_strerror(rv));
        return RT_ECLOSED;
    }
    call->headers_sent = true;
    return 0;
}

/* ---- public call API ---- */

void tr_grpc_call_set_ud(tr_grpc_call_t *call, void *call_ud)
{
    call->ud = call_ud;
}

size_t tr_grpc_queued_bytes(const tr_grpc_call_t *call)
{
    return call->qbytes + call->gc->conn->qbytes;
}

const char *tr_grpc_remote(const tr_grpc_call_t *call)
{
    return call->gc->conn->remote;
}

int tr_grpc_send(tr_grpc_call_t *call, rt_bytes_t *msg)
{
    grpc_conn_t *gc = call->gc;
    if (call->state != CALL_OPEN || !conn_writable(gc))
        return RT_ECLOSED;
    if (msg->len == 0)
        return 0; /* not a framed message; nothing would go out */
    if (tr_grpc_queued_bytes(call) + msg->len > gc->conn->tl->limits.max_queue_bytes)
        return RT_ELIMIT;
    if (!call->headers_sent) {
        int rc = submit_response(call);
        if (rc != 0)
            return rc;
    }
    queue_push(call, msg);
    resume_data(call);
    return 0;
}

void tr_grpc_finish(tr_grpc_call_t *call, int status, const char *message)
{
    if (call->state != CALL_OPEN || !conn_writable(call->gc))
        return;
    call->state = CALL_FINISHING;
    set_status(call, status, message);
    if (!call->headers_sent)
        submit_trailers_only(call, 200);
    else
        resume_data(call);
}

/* ---- nghttp2 callbacks ---- */

static ssize_t cb_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                       void *user_data)
{
    grpc_conn_t *gc = user_data;
    rt_buf_append(&gc->wbuf, data, length);
    return (ssize_t)length;
}

static int cb_send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *user_data)
{
    grpc_conn_t *gc = user_data;
    tr_grpc_call_t *call = source->ptr;
    RT_ASSERT(frame->data.padlen == 0 && length == call->reserved && call->qlen > 0);
    call->reserved = 0;
    rt_buf_append(&gc->wbuf, framehd, 9);
    rt_bytes_t *head = call->q[call->qhead];
    if (call->head_off == 0 && length == head->len) {
        flush_wbuf(gc);
        tr__conn_enqueue(gc->conn, head);
    } else {
        rt_buf_append(&gc->wbuf, head->data + call->head_off, length);
    }
    queue_advance(call, length);
    return 0;
}

static tr_grpc_call_t *stream_call(nghttp2_session *session, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(session, stream_id);
}

static int cb_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    grpc_conn_t *gc = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    tr_grpc_call_t *call = RT_NEW(tr_grpc_call_t);
    call->gc = gc;
    call->stream_id = frame->hd.stream_id;
    call->next = gc->calls;
    if (gc->calls)
        gc->calls->prev = call;
    gc->calls = call;
    nghttp2_session_set_stream_user_data(session, call->stream_id, call);
    return 0;
}

static int cb_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    tr_grpc_call_t *call = stream_call(session, frame->hd.stream_id);
    if (call == NULL || call->state != CALL_RECV)
        return 0;
    rt_str_t n = rt_str_from((const char *)name, namelen);
    if (rt_str_eq_c(n, ":path")) {
        if (valuelen > MAX_PATH_BYTES || call->path != NULL)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
        call->path = rt_strndup((const char *)value, valuelen);
    } else if (rt_str_eq_c(n, ":method")) {
        call->method_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (rt_str_eq_c(n, "content-type")) {
        call->grpc_ct = is_grpc_content_type(value, valuelen);
    }
    return 0;
}

static void dispatch(tr_grpc_call_t *call)
{
    grpc_conn_t *gc = call->gc;
    if (gc->srv == NULL) {
        reject(call, 200, TR_GRPC_UNAVAILABLE, "server shutting down");
        return;
    }
    call->state = CALL_OPEN;
    call->dispatched = true;
    rt_buf_t req = call->req;
    char *path = call->path;
    call->req = RT_BUF_INIT;
    call->path = NULL;
    gc->srv->h.on_call(call, rt_str_c(path), req.p + TR_GRPC_MSG_HEAD_BYTES,
                       req.len - TR_GRPC_MSG_HEAD_BYTES, gc->srv->h.ud);
    rt_buf_cleanup(&req);
    rt_free(path);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks the 5-byte prefix once it is complete; false if the call was rejected. */
static bool check_prefix(tr_grpc_call_t *call)
{
    const uint8_t *p = call->req.p;
    size_t max = call->gc->srv ? call->gc->srv->opts.max_recv_message_bytes : 0;
    uint32_t declared = be32(p + 1);
    if (p[0] != 0) {
        /* We announce no grpc-accept-encoding, so a conforming client never compresses. */
        reject(call, 200, TR_GRPC_UNIMPLEMENTED, "grpc: compressed messages are not supported");
        return false;
    }
    if (declared > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "grpc: received message larger than max (%u vs. %zu)",
                 (unsigned)declared, max);
        reject(call, 200, TR_GRPC_RESOURCE_EXHAUSTED, msg);
        return false;
    }
    call->req_need = TR_GRPC_MSG_HEAD_BYTES + (size_t)declared;
    rt_buf_reserve(&call->req, call->req_need - call->req.len);
    return true;
}

static int cb_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    tr_grpc_call_t *call = stream_call(session, stream_id);
    /* Bytes after the first message of a server-streaming call are ignored. */
    while (call != NULL && call->state == CALL_RECV && len > 0) {
        size_t need = call->req_need ? call->req_need : TR_GRPC_MSG_HEAD_BYTES;
        size_t take = need - call->req.len;
        if (take > len)
            take = len;
        rt_buf_append(&call->req, data, take);
        data += take;
        len -= take;
        if (call->req.len < need)
            break;
        if (call->req_need == 0) {
            if (!check_prefix(call))
                break;
            if (call->req.len < call->req_need)
                continue;
        }
        dispatch(call);
    }
    return 0;
}

/* End of the request headers: checks the call as gRPC servers do. */
static void request_headers_done(tr_grpc_call_t *call)
{
    if (!call->method_post)
        reject(call, 405, TR_GRPC_INTERNAL, "grpc: method must be POST");
    else if (!call->grpc_ct)
        reject(call, 415, TR_GRPC_INVALID_ARGUMENT, "grpc: invalid gRPC request content-type");
    else if (call->path == NULL)
        reject(call, 200, TR_GRPC_UNIMPLEMENTED, "grpc: missing :path");
}

static int cb_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    grpc_conn_t *gc = user_data;
    if (ev_is_active(&gc->preface_timer))
        ev_timer_stop(gc->conn->tl->loop, &gc->preface_timer);
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    tr_grpc_call_t *call = stream_call(session, frame->hd.stream_id);
    if (call == NULL)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        call->state == CALL_RECV)
        request_headers_done(call);
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && call->state == CALL_RECV)
        reject(call, 200, TR_GRPC_INTERNAL, "grpc: client sent no complete request message");
    return 0;
}

static int cb_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    /* Our final HEADERS went out. A client that has not half-closed would keep the stream
     * (and the call) open: reset it with NO_ERROR as gRPC servers do. */
    if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0)
        (void)nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                        NGHTTP2_NO_ERROR);
    return 0;
}

static int cb_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    grpc_conn_t *gc = user_data;
    tr_grpc_call_t *call = stream_call(session, stream_id);
    if (call == NULL || gc->dead)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    call_unlink(call);
    call_close(call);
    call_free(call);
    return 0;
}

static void *mem_malloc(size_t size, void *ud)
{
    return rt_malloc(size);
}

static void mem_free(void *ptr, void *ud)
{
    rt_free(ptr);
}

static void *mem_calloc(size_t n, size_t size, void *ud)
{
    return rt_calloc(n, size);
}

static void *mem_realloc(void *ptr, size_t size, void *ud)
{
    return rt_realloc(ptr, size);
}

/* ---- connections ---- */

static void grpc_on_input(tr_conn_t *c)
{
    grpc_conn_t *gc = c->proto;
    ssize_t rv = nghttp2_session_mem_recv(gc->session, c->rbuf + c->roff, c->rlen - c->roff);
    if (c->dropped)
        return;
    if (rv < 0) {
        /* Fatal (bad preface, flooding): nghttp2 wants the connection closed at once. */
        RT_LOG_DEBUG("grpc input rejected remote=%s err=%s", c->remote, nghttp2_strerror((int)rv));
        tr__conn_drop(c, TR_CONN_ERROR);
        return;
    }
    c->roff += (size_t)rv;
    session_flush(gc);
}

static void conn_unlink(grpc_conn_t *gc)
{
    tr_grpc_server_t *srv = gc->srv;
    if (srv == NULL)
        return;
    dirty_unlink(gc);
    if (gc->prev)
        gc->prev->next = gc->next;
    else
        srv->conns = gc->next;
    if (gc->next)
        gc->next->prev = gc->prev;
    gc->prev = gc->next = NULL;
}

/* Stops using nghttp2 for gc and closes every call (on_close for dispatched ones). */
static void conn_detach(grpc_conn_t *gc)
{
    gc->dead = true;
    ev_timer_stop(gc->conn->tl->loop, &gc->preface_timer);
    tr_grpc_call_t *call;
    while ((call = gc->calls) != NULL) {
        call_unlink(call);
        call_close(call);
        call_free(call);
    }
}

static void grpc_on_drop(tr_conn_t *c, int reason)
{
    grpc_conn_t *gc = c->proto;
    conn_detach(gc);
    conn_unlink(gc);
    gc->srv = NULL;
}

static void grpc_on_free(tr_conn_t *c)
{
    grpc_conn_t *gc = c->proto;
    nghttp2_session_del(gc->session);
    rt_buf_cleanup(&gc->wbuf);
    rt_free(gc);
}

static void on_preface_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    grpc_conn_t *gc = w->data;
    RT_LOG_DEBUG("grpc preface timeout remote=%s", gc->conn->remote);
    tr__conn_drop(gc->conn, TR_CONN_TIMEOUT);
}

void tr__grpc_server_adopt(tr_grpc_server_t *srv, int fd, const char *remote)
{
    static nghttp2_mem mem = {NULL, mem_malloc, mem_free, mem_calloc, mem_realloc};
    grpc_conn_t *gc = RT_NEW(grpc_conn_t);
    gc->srv = srv;
    int rv = nghttp2_session_server_new3(&gc->session, srv->cbs, gc, srv->option, &mem);
    RT_ASSERT(rv == 0); /* fails only without memory, and rt_malloc aborts first */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)srv->tl->limits.max_header_bytes},
    };
    rv = nghttp2_submit_settings(gc->session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    RT_ASSERT(rv == 0);
    gc->conn = tr__conn_new(srv->tl, fd, remote, &grpc_ops, gc);
    gc->conn->write_timeout_s = srv->tl->limits.write_timeout_s;
    ev_timer_init(&gc->preface_timer, on_preface_timeout, srv->tl->limits.http_idle_timeout_s, 0.);
    gc->preface_timer.data = gc;
    if (srv->tl->limits.http_idle_timeout_s > 0)
        ev_timer_start(srv->tl->loop, &gc->preface_timer);
    gc->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = gc;
    srv->conns = gc;
    if (srv->stopped)
        (void)nghttp2_submit_goaway(gc->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    schedule_send(gc); /* our SETTINGS go out without waiting for the client */
}

/* ---- server ---- */

static void on_accept(void *ud, int fd, const char *remote)
{
    tr__grpc_server_adopt(ud, fd, remote);
}

/* The callback table every session of the server copies. */
static nghttp2_session_callbacks *callbacks_new(void)
{
    nghttp2_session_callbacks *cbs;
    int rv = nghttp2_session_callbacks_new(&cbs);
    RT_ASSERT(rv == 0);
    nghttp2_session_callbacks_set_send_callback(cbs, cb_send);
    nghttp2_session_callbacks_set_send_data_callback(cbs, cb_send_data);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, cb_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
    return cbs;
}

tr_grpc_server_t *tr__grpc_server_new(tr_loop_t *tl, const tr_grpc_opts_t *opts,
                                      const tr_grpc_handler_t *h)
{
    tr_grpc_server_t *srv = RT_NEW(tr_grpc_server_t);
    srv->tl = tl;
    srv->h = *h;
    if (opts)
        srv->opts = *opts;
    else
        tr_grpc_opts_default(&srv->opts);
    tr__listener_init(&srv->listener, tl, on_accept, srv);
    srv->pass_iter = ev_iteration(tl->loop) - 1;
    ev_init(&srv->kick_w, on_kick);
    srv->kick_w.data = srv;
    /* Top priority: runs before the transport loop's flush in the same iteration. */
    ev_prepare_init(&srv->pass_w, on_pass);
    ev_set_priority(&srv->pass_w, EV_MAXPRI);
    srv->pass_w.data = srv;
    ev_prepare_start(tl->loop, &srv->pass_w);
    ev_unref(tl->loop); /* the pass alone must not keep ev_run() from returning */
    srv->cbs = callbacks_new();
    int rv = nghttp2_option_new(&srv->option);
    RT_ASSERT(rv == 0);
    /* Our response headers are a handful of bytes: no HPACK table memory per connection. */
    nghttp2_option_set_max_deflate_dynamic_table_size(srv->option, 0);
    return srv;
}

int tr_grpc_listen(tr_loop_t *tl, const char *addr, int port, const tr_grpc_opts_t *opts,
                   const tr_grpc_handler_t *h, tr_grpc_server_t **out)
{
    tr_grpc_server_t *srv = tr__grpc_server_new(tl, opts, h);
    if (tr__listener_open(&srv->listener, addr, port, "grpc") != 0) {
        tr_grpc_server_free(srv);
        return RT_EIO;
    }
    *out = srv;
    return 0;
}

int tr__grpc_server_port(const tr_grpc_server_t *srv)
{
    return tr__listener_port(&srv->listener);
}

void tr_grpc_server_stop(tr_grpc_server_t *srv)
{
    tr__listener_close(&srv->listener);
    if (srv->stopped)
        return;
    srv->stopped = true;
    for (grpc_conn_t *gc = srv->conns; gc != NULL; gc = gc->next) {
        if (!conn_writable(gc))
            continue;
        int32_t last = nghttp2_session_get_last_proc_stream_id(gc->session);
        (void)nghttp2_submit_goaway(gc->session, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL,
                                    0);
        schedule_send(gc);
    }
}

void tr_grpc_server_free(tr_grpc_server_t *srv)
{
    if (srv == NULL)
        return;
    tr_grpc_server_stop(srv);
    grpc_conn_t *gc;
    while ((gc = srv->conns) != NULL) {
        session_flush(gc); /* the GOAWAY and whatever else is ready */
        conn_unlink(gc);
        conn_detach(gc); /* runs on_close: srv is still set */
        gc->srv = NULL;
        /* The loop may not run again (a worker shutting down): write the GOAWAY now and
         * close instead of lingering for the peer's EOF, so that the flush below frees the
         * connection and its nghttp2 session. */
        tr__conn_write_now(gc->conn);
        tr__conn_drop(gc->conn, TR_CONN_LOCAL);
    }
    tr__loop_flush(srv->tl);
    ev_timer_stop(srv->tl->loop, &srv->kick_w);
    ev_ref(srv->tl->loop);
    ev_prepare_stop(srv->tl->loop, &srv->pass_w);
    nghttp2_session_callbacks_del(srv->cbs);
    nghttp2_option_del(srv->option);
    rt_free(srv);
}

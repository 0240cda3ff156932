/* WebSocket connections.
 *
 * Input: wslay's event API, fed from the pooled read buffer by wsl_recv(). Next to it a
 * small frame tracker reads the same bytes: it hands wslay at most one frame segment per
 * call (header, then payload), so when a message arrives the tracker knows whether it
 * started as text, and after each read it knows whether wslay holds a partial frame or
 * message. Text opcodes are rewritten to binary in the copy wslay receives, so UTF-8
 * checking follows opts.check_utf8 (wslay would always check).
 *
 * Memory: a wslay context costs 9440 bytes of heap (measured with mallinfo2; two 4 KB
 * buffers: input in the frame context, fragmented output in the event context). It exists
 * only while the connection is mid-frame, mid-message, closing or has wslay output
 * pending; otherwise it is freed and re-created on the next input (one malloc/free pair
 * per burst of input). An idle open connection holds tr_conn_t (336 bytes), tr_ws_t
 * (~170 bytes) and its output ring (64 bytes for the first 4 slots): about 600 bytes with
 * malloc overhead, and no read buffer. */
#include "transports/ws.h"

#include <string.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/b64.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/base/utf8.h"
#include "transports/conn_internal.h"
#include "transports/http_internal.h"
#include "transports/ws_internal.h"

/* After our close frame, how long the peer has to answer with its own. */
#define CLOSE_WAIT_S     5.0
#define MAX_REASON_BYTES 123
#define WS_GUID          "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum {
    WS_OPEN = 0,
    WS_CLOSING = 1, /* close frame queued, waiting for the peer's */
    WS_DONE = 2,    /* both close frames exchanged, TCP finishing */
    WS_DEAD = 3,    /* on_close ran */
};

struct tr_ws {
    tr_conn_t *conn; /* borrowed: the connection owns us through on_free */
    tr_ws_handler_t h;
    void *ud; /* borrowed, passed to callbacks */
    size_t max_message_bytes;
    bool check_utf8;
    wslay_event_context_ptr wctx; /* owned; NULL while idle */
    rt_buf_t *wout;               /* borrowed, set during wslay_send() only */
    /* Frame tracker over the bytes handed to wslay. */
    uint8_t hdr[14];
    uint8_t hdr_have;        /* header bytes seen of the current frame */
    uint8_t hdr_need;        /* full header length, known once hdr_have >= 2 */
    uint64_t payload_left;   /* payload bytes of the current frame not yet seen */
    bool in_msg;             /* a fragmented data message is unfinished */
    bool msg_text;           /* the current data message started with a text frame */
    bool peer_close_seen;    /* a close frame header went by */
    bool peer_close_invalid; /* the peer's close frame had a 1-byte payload */
    bool in_recv;            /* inside wslay_event_recv(): close handling waits for its return */
    int state;
    int close_code; /* for on_close once not WS_OPEN */
    ev_timer close_timer;
};

static void ws_on_input(tr_conn_t *c);
static void ws_on_drop(tr_conn_t *c, int reason);
static void ws_on_free(tr_conn_t *c);

static const tr_conn_ops_t ws_ops = {
    .on_input = ws_on_input,
    .on_drop = ws_on_drop,
    .on_free = ws_on_free,
};

/* ---- frames ---- */

size_t tr_ws_frame_header_len(size_t payload_len)
{
    if (payload_len < 126)
        return 2;
    if (payload_len <= 0xffff)
        return 4;
    return 10;
}

void tr_ws_frame_header_write(uint8_t *out, int opcode, size_t payload_len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
    } else if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
    } else {
        out[1] = 127;
        uint64_t n = payload_len;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(n >> (56 - 8 * i));
    }
}

rt_bytes_t *tr_ws_frame_new(int opcode, const void *payload, size_t len)
{
    size_t hl = tr_ws_frame_header_len(len);
    rt_bytes_t *b = rt_bytes_new(hl + len);
    uint8_t *p = rt_bytes_mut(b);
    tr_ws_frame_header_write(p, opcode, len);
    if (len > 0)
        memcpy(p + hl, payload, len);
    return b;
}

rt_shared_t *tr_ws_frame_new_shared(int opcode, const void *payload, size_t len)
{
    size_t hl = tr_ws_frame_header_len(len);
    rt_shared_t *s = rt_shared_new(hl + len);
    tr_ws_frame_header_write(s->data, opcode, len);
    if (len > 0)
        memcpy(s->data + hl, payload, len);
    return s;
}

/* ---- frame tracker ---- */

/* Bytes the tracker lets wslay take next: the rest of the current header or payload. */
static size_t track_next(const tr_ws_t *ws, size_t avail)
{
    uint64_t want;
    if (ws->payload_left > 0)
        want = ws->payload_left;
    else if (ws->hdr_have < 2)
        want = 2u - ws->hdr_have;
    else
        want = (uint64_t)ws->hdr_need - ws->hdr_have;
    return want < avail ? (size_t)want : avail;
}

static void track_header_done(tr_ws_t *ws)
{
    bool fin = ws->hdr[0] & 0x80;
    int op = ws->hdr[0] & 0x0f;
    uint64_t len = ws->hdr[1] & 0x7f;
    if (len == 126) {
        len = ((uint64_t)ws->hdr[2] << 8) | ws->hdr[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | ws->hdr[2 + i];
    }
    if (op == TR_WS_OP_TEXT || op == TR_WS_OP_BINARY) {
        ws->msg_text = op == TR_WS_OP_TEXT;
        ws->in_msg = !fin;
    } else if (op == 0 && fin) {
        ws->in_msg = false;
    } else if (op == TR_WS_OP_CLOSE) {
        ws->peer_close_seen = true;
        ws->peer_close_invalid = len == 1; /* a status code is 2 bytes or absent */
    }
    ws->payload_left = len;
    ws->hdr_have = 0;
}

/* p[0..n) is one track_next() segment; a text opcode is rewritten to binary in place. */
static void track(tr_ws_t *ws, uint8_t *p, size_t n)
{
    if (ws->payload_left > 0) {
        ws->payload_left -= n;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (ws->hdr_have == 0 && (b & 0x0f) == TR_WS_OP_TEXT)
            p[i] = (uint8_t)((b & 0xf0) | TR_WS_OP_BINARY);
        ws->hdr[ws->hdr_have++] = b;
        if (ws->hdr_have == 2) {
            uint8_t l7 = ws->hdr[1] & 0x7f;
            ws->hdr_need = (uint8_t)(2 + ((ws->hdr[1] & 0x80) ? 4 : 0) +
                                     (l7 == 126   ? 2
                                      : l7 == 127 ? 8
                                                  : 0));
        }
        if (ws->hdr_have >= 2 && ws->hdr_have == ws->hdr_need)
            track_header_done(ws);
    }
}

static bool track_at_boundary(const tr_ws_t *ws)
{
    return ws->hdr_have == 0 && ws->payload_left == 0;
}

/* ---- wslay glue ---- */

static ssize_t wsl_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                        void *user_data)
{
    tr_ws_t *ws = user_data;
    tr_conn_t *c = ws->conn;
    size_t n = track_next(ws, c->rlen - c->roff);
    if (n > len)
        n = len;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, c->rbuf + c->roff, n);
    track(ws, buf, n);
    c->roff += n;
    return (ssize_t)n;
}

static ssize_t wsl_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                        void *user_data)
{
    tr_ws_t *ws = user_data;
    if (ws->wout == NULL) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    /* On some frame-level violations (oversized or fragmented control frames, a 1-byte
     * close payload, a length with the top bit set) wslay fails the connection with an
     * empty close frame. RFC 6455 §7.4.1 asks for 1002, and clients show the code, so an
     * empty close we did not ask for becomes 1002. */
    static const uint8_t empty_close[2] = {0x88, 0x00};
    if (len == 2 && memcmp(data, empty_close, 2) == 0 &&
        (!ws->peer_close_seen || ws->peer_close_invalid) && ws->close_code != TR_WS_CLOSED_LOCAL) {
        static const uint8_t proto_close[4] = {0x88, 0x02, 0x03, 0xea};
        rt_buf_append(ws->wout, proto_close, sizeof(proto_close));
        ws->close_code = TR_WS_CLOSED_PROTOCOL;
        return (ssize_t)len;
    }
    rt_buf_append(ws->wout, data, len);
    return (ssize_t)len;
}

static void start_close_timer(tr_ws_t *ws)
{
    if (ev_is_active(&ws->close_timer))
        return;
    ev_timer_set(&ws->close_timer, CLOSE_WAIT_S, 0.);
    ev_timer_start(ws->conn->tl->loop, &ws->close_timer);
}

/* Closes with code from inside a wslay callback or outside; cb_code is for on_close. */
static void begin_close(tr_ws_t *ws, int code, const uint8_t *reason, size_t reason_len,
                        int cb_code);
static void wslay_flush(tr_ws_t *ws);

static void wsl_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                       void *user_data)
{
    tr_ws_t *ws = user_data;
    if (ws->state != WS_OPEN)
        return;
    if (arg->opcode == TR_WS_OP_BINARY) {
        bool text = ws->msg_text;
        if (text && ws->check_utf8 && !rt_utf8_valid(arg->msg, arg->msg_length)) {
            RT_LOG_DEBUG("ws text message not UTF-8 remote=%s", ws->conn->remote);
            begin_close(ws, TR_WS_CLOSED_BAD_UTF8, NULL, 0, TR_WS_CLOSED_BAD_UTF8);
            return;
        }
        ws->h.on_message(ws, arg->msg, arg->msg_length, !text, ws->ud);
    } else if (arg->opcode == TR_WS_OP_PING) {
        /* wslay queued the pong before this callback; send it now so it keeps its place
         * ahead of replies to later messages. Sending touches only wslay's output side. */
        wslay_flush(ws);
    } else if (arg->opcode == TR_WS_OP_PONG) {
        if (ws->h.on_pong)
            ws->h.on_pong(ws, ws->ud);
    }
}

static const struct wslay_event_callbacks wsl_callbacks = {
    .recv_callback = wsl_recv,
    .send_callback = wsl_send,
    .on_msg_recv_callback = wsl_on_msg,
};

static bool ensure_ctx(tr_ws_t *ws)
{
    if (ws->wctx)
        return true;
    if (wslay_event_context_server_init(&ws->wctx, &wsl_callbacks, ws) != 0) {
        ws->wctx = NULL;
        RT_LOG_ERROR("wslay context allocation failed");
        return false;
    }
    wslay_event_config_set_max_recv_msg_length(ws->wctx, ws->max_message_bytes);
    return true;
}

/* Moves whatever wslay wants to send (pongs, close frames) into our queue. */
static void wslay_flush(tr_ws_t *ws)
{
    if (ws->wctx == NULL || !wslay_event_want_write(ws->wctx))
        return;
    rt_buf_t out = RT_BUF_INIT;
    ws->wout = &out;
    (void)wslay_event_send(ws->wctx); /* our callback never fails */
    ws->wout = NULL;
    if (out.len > 0)
        tr__conn_enqueue_copy(ws->conn, out.p, out.len);
    rt_buf_cleanup(&out);
}

/* After wslay ran: push its output and follow the close handshake. */
static void after_wslay(tr_ws_t *ws)
{
    wslay_event_context_ptr ctx = ws->wctx;
    if (ctx == NULL || ws->state == WS_DEAD || ws->in_recv)
        return;
    wslay_flush(ws);
    bool sent = wslay_event_get_close_sent(ctx);
    bool received = wslay_event_get_close_received(ctx) || ws->peer_close_seen;
    if (ws->state == WS_OPEN && sent) {
        /* wslay closed on its own: the peer's close, an oversized message (1009) or a
         * protocol error (1002). */
        ws->state = WS_CLOSING;
        if (wslay_event_get_close_received(ctx))
            ws->close_code = wslay_event_get_status_code_received(ctx);
        else
            ws->close_code = wslay_event_get_status_code_sent(ctx);
        start_close_timer(ws);
    }
    if (ws->state == WS_CLOSING && sent && received) {
        ws->state = WS_DONE;
        ev_timer_stop(ws->conn->tl->loop, &ws->close_timer);
        tr__conn_finish(ws->conn);
    }
}

static void begin_close(tr_ws_t *ws, int code, const uint8_t *reason, size_t reason_len,
                        int cb_code)
{
    if (ws->state != WS_OPEN || !ensure_ctx(ws))
        return;
    ws->state = WS_CLOSING;
    ws->close_code = cb_code;
    int r = wslay_event_queue_close(ws->wctx, (uint16_t)code, reason, reason_len);
    if (r == WSLAY_ERR_INVALID_ARGUMENT)
        r = wslay_event_queue_close(ws->wctx, 0, NULL, 0);
    if (r != 0)
        RT_LOG_DEBUG("ws close not queued remote=%s err=%d", ws->conn->remote, r);
    start_close_timer(ws);
    after_wslay(ws);
}

/* Input while wslay no longer reads (it closed): watch for the peer's close frame. */
static void discard_until_close(tr_ws_t *ws)
{
    tr_conn_t *c = ws->conn;
    while (c->roff < c->rlen && !ws->peer_close_seen) {
        size_t n = track_next(ws, c->rlen - c->roff);
        track(ws, c->rbuf + c->roff, n);
        c->roff += n;
    }
    c->roff = c->rlen;
}

static void maybe_release_ctx(tr_ws_t *ws)
{
    tr_conn_t *c = ws->conn;
    if (ws->wctx == NULL || ws->state != WS_OPEN || c->roff != c->rlen || !track_at_boundary(ws) ||
        ws->in_msg || wslay_event_get_queued_msg_count(ws->wctx) > 0)
        return;
    wslay_event_context_free(ws->wctx);
    ws->wctx = NULL;
}

static void ws_on_input(tr_conn_t *c)
{
    tr_ws_t *ws = c->proto;
    while (c->roff < c->rlen && !c->dropped && !c->finishing) {
        bool reading = ws->wctx ? wslay_event_get_read_enabled(ws->wctx) : ws->state == WS_OPEN;
        if (!reading && ws->state == WS_OPEN) {
            /* wslay stopped reading without a close we saw go out: treat as a protocol
             * error rather than spin on input it will not take. */
            ws->state = WS_CLOSING;
            ws->close_code = TR_WS_CLOSED_PROTOCOL;
            start_close_timer(ws);
        }
        if (!reading) {
            discard_until_close(ws);
        } else {
            if (!ensure_ctx(ws)) {
                tr__conn_drop(c, TR_CONN_ERROR);
                return;
            }
            ws->in_recv = true;
            int r = wslay_event_recv(ws->wctx);
            ws->in_recv = false;
            if (r == WSLAY_ERR_CALLBACK_FAILURE) {
                /* A frame-level violation; wslay queued a close frame. */
                RT_LOG_DEBUG("ws protocol error remote=%s", c->remote);
                if (ws->state == WS_OPEN) {
                    ws->state = WS_CLOSING;
                    ws->close_code = TR_WS_CLOSED_PROTOCOL;
                    start_close_timer(ws);
                }
            } else if (r != 0) {
                tr__conn_drop(c, TR_CONN_ERROR);
                return;
            }
        }
        after_wslay(ws);
    }
    maybe_release_ctx(ws);
}

static void on_close_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    tr_ws_t *ws = w->data;
    RT_LOG_DEBUG("ws close wait over remote=%s", ws->conn->remote);
    tr__conn_drop(ws->conn, TR_CONN_TIMEOUT);
}

static void ws_on_drop(tr_conn_t *c, int reason)
{
    tr_ws_t *ws = c->proto;
    ev_timer_stop(c->tl->loop, &ws->close_timer);
    int code = ws->close_code;
    if (ws->state == WS_OPEN)
        code = reason == TR_CONN_WRITE_TIMEOUT ? TR_WS_CLOSED_WRITE_TIMEOUT : TR_WS_CLOSED_ABNORMAL;
    ws->state = WS_DEAD;
    ws->h.on_close(ws, code, ws->ud);
}

static void ws_on_free(tr_conn_t *c)
{
    tr_ws_t *ws = c->proto;
    if (ws->wctx)
        wslay_event_context_free(ws->wctx);
    rt_free(ws);
}

/* ---- public API ---- */

int tr_ws_send(tr_ws_t *ws, rt_bytes_t *frame)
{
    tr_conn_t *c = ws->conn;
    if (ws->state != WS_OPEN || c->dropped || c->finishing)
        return RT_ECLOSED;
    if (c->qbytes + frame->len > c->tl->limits.max_queue_bytes)
        return RT_ELIMIT;
    tr__conn_enqueue(c, frame);
    return 0;
}

void tr_ws_close(tr_ws_t *ws, int code, rt_str_t reason, bool discard)
{
    if (ws->state != WS_OPEN)
        return;
    size_t n = reason.n;
    if (n > MAX_REASON_BYTES) {
        n = MAX_REASON_BYTES;
        /* Do not cut a UTF-8 sequence: back up to the start of the one that is split. */
        while (n > 0 && ((uint8_t)reason.p[n] & 0xc0) == 0x80)
            n--;
    }
    if (discard)
        tr__conn_discard_output(ws->conn);
    begin_close(ws, code, (const uint8_t *)reason.p, n, TR_WS_CLOSED_LOCAL);
}

void tr_ws_ping(tr_ws_t *ws)
{
    if (ws->state != WS_OPEN)
        return;
    rt_bytes_t *f = tr_ws_frame_new(TR_WS_OP_PING, NULL, 0);
    tr__conn_enqueue(ws->conn, f);
    rt_bytes_unref(f);
}

size_t tr_ws_queued_bytes(const tr_ws_t *ws)
{
    return ws->conn->qbytes;
}

const char *tr_ws_remote(const tr_ws_t *ws)
{
    return ws->conn->remote;
}

/* ---- handshake ---- */

static rt_str_t trim(rt_str_t s)
{
    while (s.n > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    return s;
}

/* Case-insensitive token in a comma-separated header value. */
static bool has_token(rt_str_t v, const char *token)
{
    rt_str_t want = rt_str_c(token);
    while (v.p != NULL && v.n > 0) {
        const char *comma = memchr(v.p, ',', v.n);
        size_t len = comma ? (size_t)(comma - v.p) : v.n;
        if (rt_str_case_eq(trim(rt_str_from(v.p, len)), want))
            return true;
        if (comma == NULL)
            break;
        v = rt_str_from(comma + 1, v.n - len - 1);
    }
    return false;
}

bool tr_ws_is_upgrade(const tr_http_req_t *req)
{
    return rt_str_eq_c(tr_http_req_method(req), "GET") &&
           has_token(tr_http_req_header(req, "Upgrade"), "websocket");
}

rt_str_t tr_ws_offered_protocols(const tr_http_req_t *req)
{
    return tr_http_req_header(req, "Sec-WebSocket-Protocol");
}

static const char *check_handshake(const tr_http_req_t *req, bool *bad_version)
{
    *bad_version = false;
    if (!rt_str_eq_c(tr_http_req_method(req), "GET"))
        return "websocket: method not GET";
    if (tr__http_req_version(req) < 11)
        return "websocket: HTTP/1.1 required";
    if (!has_token(tr_http_req_header(req, "Connection"), "upgrade"))
        return "websocket: 'upgrade' token not found in 'Connection' header";
    if (!has_token(tr_http_req_header(req, "Upgrade"), "websocket"))
        return "websocket: 'websocket' token not found in 'Upgrade' header";
    if (!rt_str_eq_c(trim(tr_http_req_header(req, "Sec-WebSocket-Version")), "13")) {
        *bad_version = true;
        return "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header";
    }
    rt_str_t key = trim(tr_http_req_header(req, "Sec-WebSocket-Key"));
    rt_buf_t raw = RT_BUF_INIT;
    bool ok = key.n > 0 && rt_b64_decode(&raw, key.p, key.n, false) == 0 && raw.len == 16;
    rt_buf_cleanup(&raw);
    if (!ok)
        return "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be "
               "Base64 encoded value of 16-byte in length";
    return NULL;
}

static void accept_key(rt_str_t key, rt_buf_t *out)
{
    rt_buf_t in = RT_BUF_INIT;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    rt_buf_append_str(&in, key);
    rt_buf_append_cstr(&in, WS_GUID);
    int ok = EVP_Digest(in.p, in.len, md, &md_len, EVP_sha1(), NULL);
    RT_ASSERT(ok == 1);
    rt_buf_cleanup(&in);
    rt_b64_encode(out, md, md_len, false, true);
}

int tr_ws_upgrade(tr_http_req_t *req, const tr_ws_opts_t *opts, const tr_ws_handler_t *h, void *ud,
                  tr_ws_t **out)
{
    bool bad_version;
    const char *err = check_handshake(req, &bad_version);
    if (err) {
        rt_buf_t body = RT_BUF_INIT;
        rt_buf_append_cstr(&body, "{\"error\":\"");
        rt_buf_append_cstr(&body, err);
        rt_buf_append_cstr(&body, "\"}");
        tr_http_respond(req, 400, "application/json", rt_buf_str(&body),
                        bad_version ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        rt_buf_cleanup(&body);
        return RT_EPROTO;
    }
    rt_buf_t head = RT_BUF_INIT;
    rt_buf_append_cstr(&head, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    accept_key(trim(tr_http_req_header(req, "Sec-WebSocket-Key")), &head);
    rt_buf_append_cstr(&head, "\r\n");
    if (opts->subprotocol && opts->subprotocol[0])
        rt_buf_printf(&head, "Sec-WebSocket-Protocol: %s\r\n", opts->subprotocol);
    rt_buf_append_cstr(&head, "\r\n");
    rt_bytes_t *bytes = rt_buf_to_bytes(&head);
    rt_buf_cleanup(&head);

    tr_ws_t *ws = RT_NEW(tr_ws_t);
    ws->h = *h;
    ws->ud = ud;
    ws->max_message_bytes = opts->max_message_bytes ? opts->max_message_bytes : 65536;
    ws->check_utf8 = opts->check_utf8;
    ev_init(&ws->close_timer, on_close_timer);
    ws->close_timer.data = ws;
    tr_conn_t *c = tr__http_req_upgrade(req, bytes, &ws_ops, ws);
    rt_bytes_unref(bytes);
    if (c == NULL) {
        rt_free(ws);
        return RT_ECLOSED;
    }
    ws->conn = c;
    *out = ws;
    return 0;
}

bool tr__ws_has_parser(const tr_ws_t *ws)
{
    return ws->wctx != NULL;
}

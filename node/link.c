/* A session's transport: the one place that knows which transport object a client talks
 * through (WebSocket, HTTP stream, gRPC call) and how each signals a disconnect
 * (PROTOCOL.md §6.4). Worker thread only. */
#include <string.h>

#include "node/base/err.h"
#include "node/codes.h"
#include "node/node_internal.h"

int node_link_send(node_client_t *c, rt_bytes_t *frame)
{
    if (c->tr == NULL)
        return RT_ECLOSED;
    if (node_wire_websocket(c->wire))
        return tr_ws_send(c->tr, frame);
    if (c->wire == NODE_WIRE_UNI_GRPC)
        return tr_grpc_send(c->tr, frame);
    return tr_stream_send(c->tr, frame);
}

/* The disconnect push as the last message (every transport but bidirectional WebSocket,
 * which uses the close frame). */
static void send_disconnect_push(node_client_t *c, int code, const char *reason)
{
    rt_buf_t *b = &c->w->scratch;
    rt_buf_reset(b);
    c->codec->push_disconnect(b, code, reason);
    rt_bytes_t *frame = node_wire_frame(c->wire, rt_buf_str(b));
    node_link_send(c, frame);
    rt_bytes_unref(frame);
}

void node_link_close(node_client_t *c, int code, const char *reason, bool discard)
{
    if (c->tr == NULL)
        return;
    bool push = c->wire != NODE_WIRE_WS_JSON && c->wire != NODE_WIRE_WS_PB && !discard && code > 0;
    if (push)
        send_disconnect_push(c, code, reason);
    if (node_wire_websocket(c->wire))
        tr_ws_close(c->tr, code, rt_str_c(reason), discard);
    else if (c->wire == NODE_WIRE_UNI_GRPC)
        tr_grpc_finish(c->tr, 0, NULL);
    else
        tr_stream_end(c->tr, discard);
}

void node_link_native_ping(node_client_t *c)
{
    if (c->tr && node_wire_websocket(c->wire))
        tr_ws_ping(c->tr);
}

size_t node_link_queued_bytes(const node_client_t *c)
{
    if (c->tr == NULL)
        return 0;
    if (node_wire_websocket(c->wire))
        return tr_ws_queued_bytes(c->tr);
    if (c->wire == NODE_WIRE_UNI_GRPC)
        return tr_grpc_queued_bytes(c->tr);
    return tr_stream_queued_bytes(c->tr);
}

const char *node_link_remote(const node_client_t *c)
{
    if (c->tr == NULL)
        return "-";
    if (node_wire_websocket(c->wire))
        return tr_ws_remote(c->tr);
    if (c->wire == NODE_WIRE_UNI_GRPC)
        return tr_grpc_remote(c->tr);
    return tr_stream_remote(c->tr);
}

/* ---- transport callbacks ---- */

static void on_ws_close(tr_ws_t *ws, int code, void *ud)
{
    (void)ws;
    (void)code;
    node_client_on_link_closed(ud);
}

static void on_ws_message(tr_ws_t *ws, const uint8_t *data, size_t len, bool binary, void *ud)
{
    (void)ws;
    (void)binary; /* the reference does not check the opcode (PROTOCOL.md §10.2) */
    node_client_on_frame(ud, data, len);
}

static void on_ws_pong(tr_ws_t *ws, void *ud)
{
    (void)ws;
    node_client_on_native_pong(ud);
}

const tr_ws_handler_t node_link_ws_handler = {
    .on_message = on_ws_message,
    .on_pong = on_ws_pong,
    .on_close = on_ws_close,
};

static void on_stream_close(tr_stream_t *st, int code, void *ud)
{
    (void)st;
    (void)code;
    node_client_on_link_closed(ud);
}

const tr_stream_handler_t node_link_stream_handler = {
    .on_close = on_stream_close,
};

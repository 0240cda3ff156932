/* Framing of encoded messages per wire form (see wire.h). */
#include "node/wire.h"

#include <string.h>

#include "node/base/assert.h"
#include "node/proto.h"
#include "node/proto_pb.h"
#include "transports/grpc.h"
#include "transports/stream.h"
#include "transports/ws.h"

bool node_wire_protobuf(node_wire_t w)
{
    return w == NODE_WIRE_WS_PB || w == NODE_WIRE_STREAM_PB || w == NODE_WIRE_UNI_GRPC;
}

bool node_wire_unidirectional(node_wire_t w)
{
    return w >= NODE_WIRE_UNI_WS;
}

bool node_wire_websocket(node_wire_t w)
{
    return w == NODE_WIRE_WS_JSON || w == NODE_WIRE_WS_PB || w == NODE_WIRE_UNI_WS;
}

bool node_wire_http_stream(node_wire_t w)
{
    return w == NODE_WIRE_STREAM_JSON || w == NODE_WIRE_STREAM_PB || w == NODE_WIRE_SSE ||
           w == NODE_WIRE_UNI_SSE || w == NODE_WIRE_UNI_STREAM;
}

bool node_wire_emulated(node_wire_t w)
{
    return w == NODE_WIRE_STREAM_JSON || w == NODE_WIRE_STREAM_PB || w == NODE_WIRE_SSE;
}

const char *node_wire_name(node_wire_t w)
{
    static const char *const names[NODE_WIRE_COUNT] = {
        "websocket",     "websocket", "http_stream",     "http_stream", "sse",
        "uni_websocket", "uni_sse",   "uni_http_stream", "uni_grpc",
    };
    return (unsigned)w < NODE_WIRE_COUNT ? names[w] : "?";
}

/* ---- bare pushes ---- */

static bool json_is_push(rt_str_t msg)
{
    return msg.n >= 9 && memcmp(msg.p, "{\"push\":", 8) == 0;
}

static rt_str_t payload_of(node_wire_t w, rt_str_t msg)
{
    if (!node_wire_unidirectional(w))
        return msg;
    if (w == NODE_WIRE_UNI_GRPC)
        return msg.n ? node_pb_push_bare(msg) : msg; /* empty: the ping */
    return json_is_push(msg) ? node_json_push_bare(msg) : msg;
}

/* ---- assembly ---- */

enum { MAX_PARTS = 3 };

typedef struct frame_plan {
    rt_str_t parts[MAX_PARTS];
    size_t nparts;
    size_t payload; /* sum of parts */
    int ws_opcode;  /* 0: not a WebSocket frame */
    bool chunked;   /* HTTP chunk framing around the parts */
    bool grpc;      /* 5-byte gRPC message prefix */
    uint8_t varint[10];
} frame_plan_t;

static void add(frame_plan_t *p, rt_str_t s)
{
    RT_ASSERT(p->nparts < MAX_PARTS);
    p->parts[p->nparts++] = s;
    p->payload += s.n;
}

static void plan(frame_plan_t *p, node_wire_t w, rt_str_t msg)
{
    memset(p, 0, sizeof(*p));
    rt_str_t body = payload_of(w, msg);
    rt_str_t varint = rt_str_from((const char *)p->varint, 0);
    if (w == NODE_WIRE_WS_PB || w == NODE_WIRE_STREAM_PB)
        varint.n = node_pb_varint_write(p->varint, body.n);
    switch (w) {
    case NODE_WIRE_WS_JSON:
    case NODE_WIRE_UNI_WS:
        p->ws_opcode = TR_WS_OP_TEXT;
        add(p, body);
        break;
    case NODE_WIRE_WS_PB:
        p->ws_opcode = TR_WS_OP_BINARY;
        add(p, varint);
        add(p, body);
        break;
    case NODE_WIRE_STREAM_JSON:
    case NODE_WIRE_UNI_STREAM:
        p->chunked = true;
        add(p, body);
        add(p, rt_str_c("\n"));
        break;
    case NODE_WIRE_STREAM_PB:
        p->chunked = true;
        add(p, varint);
        add(p, body);
        break;
    case NODE_WIRE_SSE:
    case NODE_WIRE_UNI_SSE:
        p->chunked = true;
        add(p, rt_str_c("data: "));
        add(p, body);
        add(p, rt_str_c("\n\n"));
        break;
    case NODE_WIRE_UNI_GRPC:
        p->grpc = true;
        add(p, body);
        break;
    case NODE_WIRE_COUNT:
        RT_ASSERT(!"bad wire");
    }
}

/* Total frame length; writes the header into head (up to 24 bytes) and its length. */
static size_t frame_len(const frame_plan_t *p, uint8_t *head, size_t *head_len)
{
    if (p->ws_opcode) {
        *head_len = tr_ws_frame_header_len(p->payload);
        tr_ws_frame_header_write(head, p->ws_opcode, p->payload);
        return *head_len + p->payload;
    }
    if (p->grpc) {
        tr_grpc_msg_head(head, p->payload);
        *head_len = TR_GRPC_MSG_HEAD_BYTES;
        return TR_GRPC_MSG_HEAD_BYTES + p->payload;
    }
    RT_ASSERT(p->chunked);
    *head_len = tr_stream_chunk_head((char *)head, p->payload);
    return *head_len + p->payload + 2;
}

static void frame_write(const frame_plan_t *p, uint8_t *out, const uint8_t *head, size_t head_len)
{
    memcpy(out, head, head_len);
    size_t off = head_len;
    for (size_t i = 0; i < p->nparts; i++) {
        if (p->parts[i].n)
            memcpy(out + off, p->parts[i].p, p->parts[i].n);
        off += p->parts[i].n;
    }
    if (p->chunked)
        memcpy(out + off, "\r\n", 2);
}

rt_bytes_t *node_wire_frame(node_wire_t w, rt_str_t msg)
{
    frame_plan_t p;
    plan(&p, w, msg);
    uint8_t head[24];
    size_t head_len;
    size_t n = frame_len(&p, head, &head_len);
    rt_bytes_t *b = rt_bytes_new(n);
    frame_write(&p, rt_bytes_mut(b), head, head_len);
    return b;
}

rt_shared_t *node_wire_frame_shared(node_wire_t w, rt_str_t msg)
{
    frame_plan_t p;
    plan(&p, w, msg);
    uint8_t head[24];
    size_t head_len;
    size_t n = frame_len(&p, head, &head_len);
    rt_shared_t *s = rt_shared_new(n);
    frame_write(&p, s->data, head, head_len);
    return s;
}

/* Wire forms: how one encoded protocol message travels on each transport (PROTOCOL.md §1.4,
 * §10). A message is what a codec produced (node/codec.h): a Reply, or a Reply holding a
 * Push. Framing it for a wire is the only per-transport step, so a publication is encoded
 * once per wire form and the frame is shared by every subscriber on that form. */
#ifndef RT_NODE_WIRE_H
#define RT_NODE_WIRE_H

#include <stdbool.h>

#include "node/base/bytes.h"
#include "node/base/str.h"

typedef enum node_wire {
    NODE_WIRE_WS_JSON,     /* bidirectional WebSocket, text frame per message */
    NODE_WIRE_WS_PB,       /* bidirectional WebSocket, binary frame, varint-delimited */
    NODE_WIRE_STREAM_JSON, /* HTTP-streaming: message + "\n" per chunk */
    NODE_WIRE_STREAM_PB,   /* HTTP-streaming: varint-delimited messages */
    NODE_WIRE_SSE,         /* SSE: "data: " message "\n\n" */
    NODE_WIRE_UNI_WS,      /* unidirectional WebSocket: bare Push, text frame */
    NODE_WIRE_UNI_SSE,     /* unidirectional SSE: "data: " bare Push "\n\n" */
    NODE_WIRE_UNI_STREAM,  /* unidirectional HTTP-streaming: bare Push + "\n" */
    NODE_WIRE_UNI_GRPC,    /* unidirectional gRPC: gRPC message of a bare Push */
    NODE_WIRE_COUNT,
} node_wire_t;

bool node_wire_protobuf(node_wire_t w);
bool node_wire_unidirectional(node_wire_t w);
bool node_wire_websocket(node_wire_t w);
bool node_wire_http_stream(node_wire_t w); /* a chunked HTTP/1.1 response (tr_stream) */
/* Session-addressed through /emulation (HTTP-streaming, SSE). */
bool node_wire_emulated(node_wire_t w);
/* A short name for logs and metrics ("websocket", "uni_sse", ...). */
const char *node_wire_name(node_wire_t w);

/* The frame carrying msg on wire w (one reference). On unidirectional wires a push message
 * is sent as its bare Push; other messages (the empty ping) go as they are. */
rt_bytes_t *node_wire_frame(node_wire_t w, rt_str_t msg);
/* Same, cross-thread buffer (frames cached in a publication). */
rt_shared_t *node_wire_frame_shared(node_wire_t w, rt_str_t msg);

#endif

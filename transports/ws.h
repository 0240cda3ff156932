/* WebSocket (RFC 6455) server side. wslay parses input frames, answers pings and runs the
 * close handshake; output is our own queue of pre-encoded frames, so one frame can be
 * shared by every subscriber (server frames are unmasked).
 *
 * Memory: an idle connection holds no read buffer and no assembly buffer; both come from
 * per-worker pools while bytes arrive. */
#ifndef RT_TRANSPORTS_WS_H
#define RT_TRANSPORTS_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/bytes.h"
#include "node/base/str.h"
#include "transports/http.h"

typedef struct tr_ws tr_ws_t;

enum {
    TR_WS_OP_TEXT = 1,
    TR_WS_OP_BINARY = 2,
    TR_WS_OP_CLOSE = 8,
    TR_WS_OP_PING = 9,
    TR_WS_OP_PONG = 10,
};

/* Codes given to on_close besides the peer's close code. */
enum {
    TR_WS_CLOSED_ABNORMAL = 1006,    /* TCP dropped without close frame */
    TR_WS_CLOSED_TOO_BIG = 1009,     /* we closed: message over the limit */
    TR_WS_CLOSED_PROTOCOL = 1002,    /* we closed: frame-level protocol error */
    TR_WS_CLOSED_BAD_UTF8 = 1007,    /* we closed: text message not UTF-8 */
    TR_WS_CLOSED_WRITE_TIMEOUT = -1, /* output did not drain within write_timeout */
    TR_WS_CLOSED_LOCAL = -2,         /* the close we started with tr_ws_close() finished */
};

typedef struct tr_ws_handler {
    /* One complete message; data borrowed for the call. The handler may call tr_ws_close()
     * or tr_ws_send() from here. */
    void (*on_message)(tr_ws_t *ws, const uint8_t *data, size_t len, bool binary, void *ud);
    /* Native pong received (optional, may be NULL). */
    void (*on_pong)(tr_ws_t *ws, void *ud);
    /* The connection is finished; ws is invalid after this returns. Runs exactly once. */
    void (*on_close)(tr_ws_t *ws, int code, void *ud);
} tr_ws_handler_t;

typedef struct tr_ws_opts {
    size_t max_message_bytes; /* bigger incoming message => close 1009 [65536] */
    const char *subprotocol;  /* echoed in Sec-WebSocket-Protocol, or NULL */
    bool check_utf8;          /* close 1007 on a text message that is not UTF-8 */
} tr_ws_opts_t;

/* True if req asks for a WebSocket upgrade (GET with Upgrade: websocket). */
bool tr_ws_is_upgrade(const tr_http_req_t *req);
/* Offered subprotocols header (Sec-WebSocket-Protocol), RT_STR_NULL if none. */
rt_str_t tr_ws_offered_protocols(const tr_http_req_t *req);
/* Completes the handshake: validates the request (else answers 400 with a JSON body and
 * returns RT_EPROTO), writes 101, and turns the connection into a WebSocket. req is
 * consumed in both cases. h and opts are copied; ud is passed to every callback. */
int tr_ws_upgrade(tr_http_req_t *req, const tr_ws_opts_t *opts, const tr_ws_handler_t *h, void *ud,
                  tr_ws_t **out);

/* Queues a pre-encoded frame (from tr_ws_frame_*) and takes a reference. Returns 0,
 * RT_ELIMIT if the queue would exceed the loop's max_queue_bytes (nothing queued; the
 * caller disconnects the slow client), or RT_ECLOSED once closing. */
int tr_ws_send(tr_ws_t *ws, rt_bytes_t *frame);
/* Starts the close handshake with code and reason (<= 123 bytes, truncated). discard:
 * drop queued output first (slow clients); otherwise the close frame follows it. Waits up
 * to 5 s for the peer's close, then drops TCP and runs on_close(TR_WS_CLOSED_LOCAL).
 * Idempotent. */
void tr_ws_close(tr_ws_t *ws, int code, rt_str_t reason, bool discard);
/* Sends a native ping frame. */
void tr_ws_ping(tr_ws_t *ws);
size_t tr_ws_queued_bytes(const tr_ws_t *ws);
const char *tr_ws_remote(const tr_ws_t *ws);

/* Frame building. Server frames are unmasked: header (2, 4 or 10 bytes) + payload. */
size_t tr_ws_frame_header_len(size_t payload_len);
/* Writes the header for a final frame of opcode into out (tr_ws_frame_header_len bytes). */
void tr_ws_frame_header_write(uint8_t *out, int opcode, size_t payload_len);
/* One allocation holding the whole frame. One reference. */
rt_bytes_t *tr_ws_frame_new(int opcode, const void *payload, size_t len);
/* Same, cross-thread buffer (for frames cached in a publication). */
rt_shared_t *tr_ws_frame_new_shared(int opcode, const void *payload, size_t len);

#endif

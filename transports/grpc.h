/* Minimal gRPC server on nghttp2: HTTP/2 cleartext with prior knowledge (what grpc-js uses
 * with createInsecure), server-streaming calls only. The client sends one request message
 * and half-closes; the server streams messages and ends with trailers. No gRPC library:
 * a message is 1 byte compressed flag + 4 bytes big-endian length + payload.
 *
 * Output: messages are pre-framed refcounted bytes (tr_grpc_msg_new*), so one encoding is
 * shared by every call it goes to. A DATA frame that carries a whole message is written
 * without copying it (NGHTTP2_DATA_FLAG_NO_COPY: the 9-byte frame header is queued, then a
 * reference to the message); a message the peer's flow-control window or frame size splits
 * is copied piecewise. nghttp2 output is produced in a pass before the loop sleeps, never
 * inside tr_grpc_send() or tr_grpc_finish(), so callbacks never run from inside them.
 *
 * Everything here runs on the worker thread that owns tl. */
#ifndef RT_TRANSPORTS_GRPC_H
#define RT_TRANSPORTS_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "node/base/bytes.h"
#include "node/base/str.h"
#include "transports/loop.h"

typedef struct tr_grpc_server tr_grpc_server_t;
typedef struct tr_grpc_call tr_grpc_call_t;

/* gRPC status codes used by this module and its callers. */
enum {
    TR_GRPC_OK = 0,
    TR_GRPC_CANCELLED = 1,
    TR_GRPC_UNKNOWN = 2,
    TR_GRPC_INVALID_ARGUMENT = 3,
    TR_GRPC_RESOURCE_EXHAUSTED = 8,
    TR_GRPC_UNIMPLEMENTED = 12,
    TR_GRPC_INTERNAL = 13,
    TR_GRPC_UNAVAILABLE = 14,
};

typedef struct tr_grpc_opts {
    size_t max_recv_message_bytes; /* request message limit [65536] => RESOURCE_EXHAUSTED (8) */
} tr_grpc_opts_t;

typedef struct tr_grpc_handler {
    /* A call whose request message is complete (the first complete message arrived; a
     * client that half-closes without one gets INTERNAL and never reaches here).
     * path: ":path" ("/pkg.Service/Method"); msg: the request payload (gRPC prefix
     * removed). Both are borrowed for the duration of this callback only. The handler
     * either keeps the call (tr_grpc_call_set_ud, then tr_grpc_send ... tr_grpc_finish) or
     * finishes it at once with a status (e.g. 12 UNIMPLEMENTED for an unknown path, 3
     * INVALID_ARGUMENT). A compressed request message is refused with UNIMPLEMENTED before
     * this callback. */
    void (*on_call)(tr_grpc_call_t *call, rt_str_t path, const uint8_t *msg, size_t len, void *ud);
    /* The call is over: its trailers were handed to the connection's output queue, the
     * client cancelled it (RST_STREAM), or the connection dropped (EOF, error, write
     * timeout, server free). call_ud is what tr_grpc_call_set_ud stored. call is invalid
     * after this returns. Runs exactly once per call handed to on_call, never from inside
     * tr_grpc_send() or tr_grpc_finish(). The handler may send on or finish other calls. */
    void (*on_close)(tr_grpc_call_t *call, void *call_ud);
    void *ud; /* borrowed, passed to on_call */
} tr_grpc_handler_t;

/* Fills defaults (values in brackets above). */
void tr_grpc_opts_default(tr_grpc_opts_t *opts);

/* Binds addr:port (addr "" or NULL = all interfaces; port 0 = any) with SO_REUSEPORT so
 * every worker can have its own listener, and starts accepting on tl. opts (NULL =
 * defaults) and h are copied. Connections use tl's limits: write_timeout_s for stalled
 * output, max_queue_bytes for tr_grpc_send(), http_idle_timeout_s for a connection that
 * does not complete the HTTP/2 preface. Returns 0 and *out, or RT_EIO (logged). */
int tr_grpc_listen(tr_loop_t *tl, const char *addr, int port, const tr_grpc_opts_t *opts,
                   const tr_grpc_handler_t *h, tr_grpc_server_t **out);
/* Stops accepting, closes the listening socket and sends GOAWAY on every connection: open
 * calls go on, new calls are refused, and each connection closes once its calls are over.
 * Idempotent. */
void tr_grpc_server_stop(tr_grpc_server_t *srv);
/* Stops (if not yet) and frees srv: every remaining connection gets GOAWAY, its open calls
 * get on_close (now, from inside this function) and it is closed after its queued output
 * is flushed (bounded by the linger time). NULL is a no-op. */
void tr_grpc_server_free(tr_grpc_server_t *srv);

/* For tests: port of the listening socket (after tr_grpc_listen with port 0), -1 if none. */
int tr__grpc_server_port(const tr_grpc_server_t *srv);
/* For tests and the fuzz target: a server without a listening socket; free with
 * tr_grpc_server_free(). opts and h as for tr_grpc_listen(). */
tr_grpc_server_t *tr__grpc_server_new(tr_loop_t *tl, const tr_grpc_opts_t *opts,
                                      const tr_grpc_handler_t *h);
/* Serves an already connected non-blocking socket; takes ownership of fd. remote: NULL or
 * text for tr_grpc_remote(). */
void tr__grpc_server_adopt(tr_grpc_server_t *srv, int fd, const char *remote);

/* Stores the handler's pointer for on_close (borrowed by the call). */
void tr_grpc_call_set_ud(tr_grpc_call_t *call, void *call_ud);
/* Queues one pre-framed gRPC message (from tr_grpc_msg_new*) as DATA on the call's stream;
 * takes a reference (the same bytes may be queued on many calls). The first send also
 * sends the response headers (:status 200, content-type application/grpc). Returns 0;
 * RT_ELIMIT when tr_grpc_queued_bytes(call) + msg->len would exceed the loop's
 * max_queue_bytes (nothing queued; the caller finishes or drops the slow reader);
 * RT_ECLOSED once the call is finishing, cancelled or its connection is closing. */
int tr_grpc_send(tr_grpc_call_t *call, rt_bytes_t *msg);
/* Ends the call after its queued messages: trailers grpc-status (0 = OK) and grpc-message
 * (message may be NULL; percent-encoded as gRPC requires; copied). A call that sent nothing
 * gets a trailers-only response. If the client had not half-closed, the stream is then
 * reset with NO_ERROR, as gRPC servers do. Idempotent; no-op once the call is cancelled.
 * on_close follows from the loop once the trailers are queued. */
void tr_grpc_finish(tr_grpc_call_t *call, int status, const char *message);
/* Bytes queued on the call and not yet framed (its stream waits for flow-control window)
 * plus its connection's unwritten output, which the call's streams share. */
size_t tr_grpc_queued_bytes(const tr_grpc_call_t *call);
/* Peer address as text ("127.0.0.1:5342"); valid while the call is. */
const char *tr_grpc_remote(const tr_grpc_call_t *call);

/* Writes the 5-byte gRPC message prefix (not compressed, big-endian length) for a payload of
 * len bytes (below 4 GiB) into p. */
#define TR_GRPC_MSG_HEAD_BYTES 5
void tr_grpc_msg_head(uint8_t *p, size_t len);
/* Prefix + payload in one allocation. One reference. len must be below 4 GiB. */
rt_bytes_t *tr_grpc_msg_new(const void *payload, size_t len);
/* Same as a cross-thread buffer (for encodings cached in a publication); a worker wraps it
 * with rt_bytes_view() before tr_grpc_send(). */
rt_shared_t *tr_grpc_msg_new_shared(const void *payload, size_t len);

#endif

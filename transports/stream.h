/* HTTP/1.1 streaming responses: a request answered with a chunked body that stays open and
 * carries server-to-client messages (HTTP-streaming, SSE, and their unidirectional forms).
 *
 * Like WebSocket output, the queue takes pre-encoded chunks that may be shared by every
 * subscriber: the chunk framing ("<hex>\r\n" ... "\r\n") depends only on the payload, so a
 * publication's chunk is built once and referenced by every stream. Input after the request
 * is read and discarded; the peer closing its side ends the stream. */
#ifndef RT_TRANSPORTS_STREAM_H
#define RT_TRANSPORTS_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "node/base/bytes.h"
#include "node/base/str.h"
#include "transports/http.h"

typedef struct tr_stream tr_stream_t;

/* Codes given to on_close. */
enum {
    TR_STREAM_CLOSED_PEER = 1,          /* the peer went away (EOF, reset, read error) */
    TR_STREAM_CLOSED_WRITE_TIMEOUT = 2, /* output did not drain within write_timeout */
    TR_STREAM_CLOSED_LOCAL = 3,         /* tr_stream_end() finished */
};

typedef struct tr_stream_handler {
    /* The stream is finished; st is invalid after this returns. Runs exactly once, never
     * from inside tr_stream_start(). */
    void (*on_close)(tr_stream_t *st, int code, void *ud);
} tr_stream_handler_t;

/* Answers req with `status`, `extra_headers` (NULL or complete "Name: v\r\n" lines) and
 * Transfer-Encoding: chunked, then keeps the connection as a stream. req is consumed.
 * Returns 0, RT_EUNAVAIL when req is not HTTP/1.1 (answered 505 with a JSON body: chunked
 * streaming needs 1.1), or RT_ECLOSED when the connection is already gone. */
int tr_stream_start(tr_http_req_t *req, int status, const char *extra_headers,
                    const tr_stream_handler_t *h, void *ud, tr_stream_t **out);
/* Queues one complete chunk (head, payload, CRLF; see tr_stream_chunk_head) and takes a
 * reference. 0, RT_ELIMIT when the queue
 * would exceed the loop's max_queue_bytes (nothing queued; the caller disconnects the slow
 * reader), RT_ECLOSED once ending. */
int tr_stream_send(tr_stream_t *st, rt_bytes_t *chunk);
/* Ends the body (last chunk) after the queued output — or instead of it when discard —
 * then closes the connection; on_close(TR_STREAM_CLOSED_LOCAL) follows. Idempotent. */
void tr_stream_end(tr_stream_t *st, bool discard);
size_t tr_stream_queued_bytes(const tr_stream_t *st);
const char *tr_stream_remote(const tr_stream_t *st);

/* Chunk framing: a chunk is head + payload + "\r\n". Writes the head ("<hex>\r\n", at most
 * TR_STREAM_CHUNK_HEAD_MAX bytes) for a payload of payload_len > 0 bytes (an empty chunk
 * would end the body) and returns its length. */
#define TR_STREAM_CHUNK_HEAD_MAX 20
size_t tr_stream_chunk_head(char *out, size_t payload_len);

#endif

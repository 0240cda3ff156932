/* Tiny blocking test client for integration tests: raw TCP to 127.0.0.1, HTTP/1.1
 * request/response, RFC 6455 client side (masked writer, frame reader, close parsing) and
 * Centrifugo JSON helpers. It exists to send what an SDK never sends (hostile frames,
 * golden bytes), so every writer takes raw parameters and validates nothing.
 *
 * Single-threaded; every call blocks at most its timeout_ms. All functions return 0 or a
 * negative RT_E* code: RT_ETIMEOUT (nothing in time), RT_ECLOSED (peer closed or reset the
 * connection; errno-free EOF), RT_EPROTO (the peer sent something unparsable), RT_EIO
 * (a system call failed). */
#ifndef RT_TESTS_TESTCLI_H
#define RT_TESTS_TESTCLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/buf.h"
#include "node/base/str.h"

/* One TCP connection. in holds received bytes not yet consumed by a reader; readers
 * consume from its front, so pipelined responses and coalesced frames are never lost. */
typedef struct rt_tc_conn {
    int fd;         /* owned; -1 when closed */
    rt_buf_t in;    /* owned; received, unconsumed bytes */
    bool eof;       /* peer sent FIN (or RST: reset is true as well) */
    bool reset;     /* last read or write failed with ECONNRESET/EPIPE */
    rt_buf_t msgs;  /* owned; Centrifugo lines of the last frame not yet returned */
    bool pong;      /* rt_tc_cf_next answers server pings {} with a pong {} */
    int close_code; /* code of the close frame rt_tc_cf_next met, 0 before */
} rt_tc_conn_t;

/* Connects to 127.0.0.1:port. rcvbuf_bytes > 0 sets SO_RCVBUF before connecting (a small
 * window makes a "slow reader"). Returns 0 or RT_EIO. c needs rt_tc_close() either way. */
int rt_tc_connect(rt_tc_conn_t *c, int port, int rcvbuf_bytes);
/* Closes the socket (if open) and frees the buffers. Idempotent. */
void rt_tc_close(rt_tc_conn_t *c);
/* Writes all n bytes (MSG_NOSIGNAL). Returns 0, RT_ECLOSED (EPIPE/ECONNRESET: c->reset
 * set) or RT_ETIMEOUT if the peer stopped reading for timeout_ms. */
int rt_tc_send(rt_tc_conn_t *c, const void *p, size_t n, int timeout_ms);
int rt_tc_send_cstr(rt_tc_conn_t *c, const char *s);
/* Reads what is available into c->in, waiting up to timeout_ms for at least one byte.
 * Returns 0, RT_ETIMEOUT, or RT_ECLOSED (EOF or reset; c->eof set). */
int rt_tc_fill(rt_tc_conn_t *c, int timeout_ms);
/* Reads and discards until EOF/reset. Returns 0 once closed, RT_ETIMEOUT if still open. */
int rt_tc_wait_eof(rt_tc_conn_t *c, int timeout_ms);
/* Sends n bytes in chunks while watching for input: stops early (returning 0) as soon as
 * the peer answers or closes, because a server may reject a request before reading its
 * body and then reset the connection. *sent receives the bytes written. */
int rt_tc_send_until_reply(rt_tc_conn_t *c, const void *p, size_t n, size_t *sent, int timeout_ms);

/* ---- HTTP/1.1 ---- */

typedef struct rt_tc_http_resp {
    int status;       /* e.g. 200 */
    rt_buf_t headers; /* owned; raw header lines after the status line, "\r\n" separated */
    rt_buf_t body;    /* owned; de-chunked body */
    bool conn_close;  /* response said Connection: close or was delimited by EOF */
} rt_tc_http_resp_t;

void rt_tc_http_resp_init(rt_tc_http_resp_t *r);
void rt_tc_http_resp_cleanup(rt_tc_http_resp_t *r);
/* Header value by case-insensitive name, borrowed from r; RT_STR_NULL if absent. */
rt_str_t rt_tc_http_header(const rt_tc_http_resp_t *r, const char *name);
/* Reads one complete response from c (Content-Length, chunked, or until EOF). r is reset
 * first. A 1xx/204/304 response has no body. Returns 0, RT_ETIMEOUT,
 * RT_ECLOSED (closed before a complete response), RT_EPROTO. */
int rt_tc_http_read(rt_tc_conn_t *c, rt_tc_http_resp_t *r, int timeout_ms);
/* Writes "METHOD path HTTP/1.1" with Host, Content-Length (when body != NULL), the
 * extra_headers lines (NULL or complete "Name: v\r\n" lines) and body. */
int rt_tc_http_send(rt_tc_conn_t *c, const char *method, const char *path,
                    const char *extra_headers, const void *body, size_t body_len);
/* One request on a fresh connection, then closes it. */
int rt_tc_http_once(int port, const char *method, const char *path, const char *extra_headers,
                    const void *body, size_t body_len, rt_tc_http_resp_t *r);

/* ---- WebSocket (client side) ---- */

enum {
    RT_TC_WS_CONT = 0,
    RT_TC_WS_TEXT = 1,
    RT_TC_WS_BINARY = 2,
    RT_TC_WS_CLOSE = 8,
    RT_TC_WS_PING = 9,
    RT_TC_WS_PONG = 10,
    RT_TC_WS_NO_STATUS = 1005, /* close frame without a status code */
};

typedef struct rt_tc_ws_frame {
    bool fin;
    uint8_t rsv;      /* RSV1..3 bits as sent (0x70 mask of byte 0) */
    int opcode;       /* RT_TC_WS_* */
    bool masked;      /* server frames must not be masked; payload is unmasked anyway */
    rt_buf_t payload; /* owned */
    int close_code;   /* close frames: status code, or RT_TC_WS_NO_STATUS */
    rt_str_t reason;  /* close frames: borrowed from payload */
} rt_tc_ws_frame_t;

void rt_tc_ws_frame_init(rt_tc_ws_frame_t *f);
void rt_tc_ws_frame_cleanup(rt_tc_ws_frame_t *f);

/* Sends the upgrade request for target (path + optional query) with extra_headers and reads
 * the response into resp (may be NULL). Returns 0 when the server answered 101 with the
 * correct Sec-WebSocket-Accept, RT_EPROTO for any other answer. */
int rt_tc_ws_handshake(rt_tc_conn_t *c, const char *target, const char *extra_headers,
                       rt_tc_http_resp_t *resp);
/* rt_tc_connect + rt_tc_ws_handshake on /connection/websocket. */
int rt_tc_ws_open(rt_tc_conn_t *c, int port);
/* Writes one frame. opcode may carry RSV bits (0x40 = RSV1): byte 0 is
 * (fin ? 0x80 : 0) | (opcode & 0x7f). mask selects a masked frame (random key), as a client
 * must send. */
int rt_tc_ws_send_frame(rt_tc_conn_t *c, bool fin, int opcode, const void *p, size_t n, bool mask);
/* Appends the frame rt_tc_ws_send_frame would write to out (unmasked frames are what a
 * server sends, for fakes). */
void rt_tc_ws_frame_encode(rt_buf_t *out, bool fin, int opcode, const void *p, size_t n, bool mask);
/* Writes raw header bytes that announce len (any 64-bit value) with a mask bit, then the
 * 4-byte mask key; no payload. For hostile length headers. */
int rt_tc_ws_send_header(rt_tc_conn_t *c, int opcode, uint64_t len);
/* A final masked text frame. */
int rt_tc_ws_send_text(rt_tc_conn_t *c, const char *s);
/* A masked close frame with code and reason. */
int rt_tc_ws_send_close(rt_tc_conn_t *c, int code, const char *reason);
/* Reads exactly one frame (data or control). Returns 0, RT_ETIMEOUT, RT_ECLOSED,
 * RT_EPROTO (length over 64 MiB). */
int rt_tc_ws_read_frame(rt_tc_conn_t *c, rt_tc_ws_frame_t *f, int timeout_ms);
/* Reads frames until a close frame, discarding data frames (and answering nothing).
 * Returns 0 with *code and reason (NUL-terminated copy, may be NULL) filled, or
 * RT_ECLOSED (*code = 1006) if TCP ended without one, or RT_ETIMEOUT. */
int rt_tc_ws_wait_close(rt_tc_conn_t *c, int *code, rt_buf_t *reason, int timeout_ms);

/* ---- Centrifugo JSON protocol ---- */

/* Next protocol message: the next "\n"-separated line of the received text frames (a frame
 * may carry several). Server pings ({}) are skipped and, when c->pong, answered with {}.
 * Control frames: pings answered with pongs, a close frame ends with RT_ECLOSED.
 * line receives a copy (reset first). */
int rt_tc_cf_next(rt_tc_conn_t *c, rt_buf_t *line, int timeout_ms);
/* Sends {"connect":{"token":"<token>","name":"c"},"id":<id>} and reads one message into
 * reply. Returns 0 if it starts with {"id":<id>,"connect":{, else RT_EPROTO (reply kept). */
int rt_tc_cf_connect(rt_tc_conn_t *c, uint32_t id, const char *token, rt_buf_t *reply);
/* Sends {"subscribe":{"channel":"<ch>"},"id":<id>} and expects {"id":<id>,"subscribe":{...}}. */
int rt_tc_cf_subscribe(rt_tc_conn_t *c, uint32_t id, const char *channel, rt_buf_t *reply);
/* Extracts the "client" value of a connect reply into out (NUL-terminated). RT_EPROTO if
 * absent. */
int rt_tc_cf_client_id(rt_str_t reply, rt_buf_t *out);
/* True if s is a lower-case 8-4-4-4-12 hex UUID. */
bool rt_tc_is_uuid(rt_str_t s);

/* POST /api/publish with X-API-Key: api_key and body {"channel":"<ch>","data":<data_json>}
 * (data_json inserted verbatim). On a keep-alive connection when api != NULL, else on a
 * fresh one. r receives the response. */
int rt_tc_api_publish(rt_tc_conn_t *api, int port, const char *api_key, const char *channel,
                      const char *data_json, rt_tc_http_resp_t *r);

/* HS256 JWT for claims_json (raw JSON object) signed with secret, appended to out with a
 * trailing NUL not counted in out->len. */
void rt_tc_jwt_hs256(rt_buf_t *out, const char *secret, const char *claims_json);

/* Monotonic milliseconds. */
int64_t rt_tc_now_ms(void);
void rt_tc_sleep_ms(int ms);

#endif

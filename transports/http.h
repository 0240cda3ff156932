/* HTTP/1.1 server on llhttp: keep-alive, pipelining (one request handled at a time, in
 * order), limits on header and body size, JSON error bodies.
 *
 * Requests are handed to the handler complete (headers and body). The handler answers
 * now or later with tr_http_respond(); until then the connection parses no further
 * request. Garbage input gets a 400 with a JSON body and closes that connection only. */
#ifndef RT_TRANSPORTS_HTTP_H
#define RT_TRANSPORTS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "node/base/buf.h"
#include "node/base/str.h"
#include "transports/loop.h"

typedef struct tr_http_req tr_http_req_t;
typedef struct tr_http_server tr_http_server_t;

typedef struct tr_http_handler {
    /* A complete request. req stays valid until tr_http_respond() (or an upgrade) consumes
     * it, or until the abort callback set with tr_http_req_on_abort() runs. */
    void (*on_request)(tr_http_req_t *req, void *ud);
    void *ud;
} tr_http_handler_t;

/* Binds addr:port (addr "" or NULL = all interfaces) with SO_REUSEPORT so every worker can
 * have its own listener, and starts accepting on tl. Returns 0 or RT_EIO (logged). */
int tr_http_listen(tr_loop_t *tl, const char *addr, int port, const tr_http_handler_t *h,
                   tr_http_server_t **out);
/* Stops accepting and closes the listening socket; open connections stay. */
void tr_http_server_stop(tr_http_server_t *srv);
/* Frees the server (after stop). Closes its idle keep-alive connections. */
void tr_http_server_free(tr_http_server_t *srv);

/* Request accessors; slices are borrowed from the request. */
rt_str_t tr_http_req_method(const tr_http_req_t *req);
rt_str_t tr_http_req_path(const tr_http_req_t *req);  /* without the query */
rt_str_t tr_http_req_query(const tr_http_req_t *req); /* after '?', may be empty */
rt_str_t tr_http_req_body(const tr_http_req_t *req);
/* Header value by case-insensitive name; RT_STR_NULL (p == NULL) if absent. */
rt_str_t tr_http_req_header(const tr_http_req_t *req, const char *name);
/* URL-decoded query parameter appended to out. Returns 0, or RT_ENOTFOUND. */
int tr_http_req_query_param(const tr_http_req_t *req, const char *name, rt_buf_t *out);
/* Peer address as text ("127.0.0.1:5342"). */
const char *tr_http_req_remote(const tr_http_req_t *req);

/* For async handlers: fn runs (once) if the connection dies before the response; req is
 * invalid after that. */
void tr_http_req_on_abort(tr_http_req_t *req, void (*fn)(void *ud), void *ud);

/* Answers req and consumes it. extra_headers: NULL or complete lines ("Name: v\r\n").
 * content_type NULL = no Content-Type. Closes the connection afterwards when the request
 * asked for it (or keep-alive is off). */
void tr_http_respond(tr_http_req_t *req, int status, const char *content_type, rt_str_t body,
                     const char *extra_headers);
/* Answers with {"error":"<message>"} as application/json. */
void tr_http_respond_error(tr_http_req_t *req, int status, const char *message);

#endif

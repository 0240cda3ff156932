/* HTTP internals shared with ws.c, the unit tests and the fuzz target. */
#ifndef RT_TRANSPORTS_HTTP_INTERNAL_H
#define RT_TRANSPORTS_HTTP_INTERNAL_H

#include "node/base/bytes.h"
#include "transports/conn_internal.h"
#include "transports/http.h"

/* A server without a listening socket; connections come from tr__http_server_adopt().
 * Free with tr_http_server_free() (stop is a no-op for it). h is copied. */
tr_http_server_t *tr__http_server_new(tr_loop_t *tl, const tr_http_handler_t *h);
/* Serves an already connected non-blocking socket; takes ownership of fd. remote: NULL or
 * text for tr_http_req_remote(). */
void tr__http_server_adopt(tr_http_server_t *srv, int fd, const char *remote);
/* Port a listening server is bound to (useful after tr_http_listen() with port 0). */
int tr__http_server_port(const tr_http_server_t *srv);

/* Turns req's connection over to another protocol: head (the 101 response, a reference is
 * taken) is queued, req is consumed, HTTP parsing stops for good and ops/proto take over
 * the connection (buffered input after the request is handed to ops->on_input from the
 * loop, never synchronously). Returns the connection, or NULL if req's connection is
 * already gone (req is consumed either way). */
tr_conn_t *tr__http_req_upgrade(tr_http_req_t *req, rt_bytes_t *head, const tr_conn_ops_t *ops,
                                void *proto);
/* Reason phrase of an HTTP status ("Status" when unknown). */
const char *tr__http_status_text(int status);
/* HTTP version of req as major * 10 + minor (11 for HTTP/1.1). */
int tr__http_req_version(const tr_http_req_t *req);

#endif

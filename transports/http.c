#include "transports/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "transports/conn_internal.h"
#include "transports/http_internal.h"
#include "transports/listener_internal.h"

/* Header lines per request; beyond this => 431 like an oversized head. */
#define MAX_HEADERS 128

typedef struct http_conn http_conn_t;

typedef struct http_hdr {
    size_t name_off, name_len; /* in req->head */
    size_t val_off, val_len;
} http_hdr_t;

struct tr_http_req {
    http_conn_t *hc;  /* borrowed; NULL once the connection died (orphaned request) */
    rt_buf_t head;    /* owned: url, then header names and values back to back */
    size_t url_len;   /* url is head.p[0 .. url_len) */
    http_hdr_t *hdrs; /* owned array of hdr_cap */
    size_t nhdrs;
    size_t hdr_cap;
    rt_buf_t body; /* owned, decoded (chunked encoding removed) */
    int method;    /* llhttp_method_t */
    int version;   /* major * 10 + minor */
    bool keep_alive;
    bool upgrade;
    bool in_value; /* the last header callback was a value */
    void (*abort_fn)(void *ud);
    void *abort_ud;
};

struct http_conn {
    tr_conn_t *conn;          /* borrowed: the connection owns us through on_free */
    tr_http_server_t *srv;    /* borrowed; NULL once the server is freed */
    http_conn_t *prev, *next; /* in srv->conns */
    llhttp_t parser;
    tr_http_req_t *req; /* owned: being parsed, or dispatched and unanswered */
    ev_timer idle;      /* idle keep-alive / slow request limit */
    int err_status;     /* set by a callback that rejects the request (413, 431) */
    bool dispatched;    /* req is with the handler */
    bool in_process;    /* inside http_on_input: respond() must not re-enter it */
    bool upgraded;      /* handed to another protocol; free when in_process ends */
    bool no_more;       /* parse no further requests */
};

struct tr_http_server {
    tr_loop_t *tl; /* borrowed */
    tr_http_handler_t h;
    tr__listener_t listener;
    http_conn_t *conns; /* live HTTP connections (not upgraded), not owned */
};

static void undispatch(http_conn_t *hc, tr_conn_t *c);
static int cb_message_begin(llhttp_t *p);
static int cb_url(llhttp_t *p, const char *at, size_t len);
static int cb_header_field(llhttp_t *p, const char *at, size_t len);
static int cb_header_value(llhttp_t *p, const char *at, size_t len);
static int cb_headers_complete(llhttp_t *p);
static int cb_body(llhttp_t *p, const char *at, size_t len);
static int cb_message_complete(llhttp_t *p);

static const llhttp_settings_t parser_settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

static void http_on_input(tr_conn_t *c);
static void http_on_drop(tr_conn_t *c, int reason);
static void http_on_free(tr_conn_t *c);

static const tr_conn_ops_t http_ops = {
    .on_input = http_on_input,
    .on_drop = http_on_drop,
    .on_free = http_on_free,
};

/* ---- requests ---- */

static void req_free(tr_http_req_t *req)
{
    if (req == NULL)
        return;
    rt_buf_cleanup(&req->head);
    rt_buf_cleanup(&req->body);
    rt_free(req->hdrs);
    rt_free(req);
}

static rt_str_t head_slice(const tr_http_req_t *req, size_t off, size_t len)
{
    return rt_str_from((const char *)req->head.p + off, len);
}

rt_str_t tr_http_req_method(const tr_http_req_t *req)
{
    return rt_str_c(llhttp_method_name((llhttp_method_t)req->method));
}

static rt_str_t req_url(const tr_http_req_t *req)
{
    return head_slice(req, 0, req->url_len);
}

rt_str_t tr_http_req_path(const tr_http_req_t *req)
{
    rt_str_t url = req_url(req);
    const char *q = url.n ? memchr(url.p, '?', url.n) : NULL;
    return q ? rt_str_from(url.p, (size_t)(q - url.p)) : url;
}

rt_str_t tr_http_req_query(const tr_http_req_t *req)
{
    rt_str_t url = req_url(req);
    const char *q = url.n ? memchr(url.p, '?', url.n) : NULL;
    if (q == NULL)
        return rt_str_from(url.p + url.n, 0);
    return rt_str_from(q + 1, url.n - (size_t)(q + 1 - url.p));
}

rt_str_t tr_http_req_body(const tr_http_req_t *req)
{
    return rt_buf_str(&req->body);
}

rt_str_t tr_http_req_header(const tr_http_req_t *req, const char *name)
{
    rt_str_t want = rt_str_c(name);
    for (size_t i = 0; i < req->nhdrs; i++) {
        const http_hdr_t *h = &req->hdrs[i];
        if (rt_str_case_eq(head_slice(req, h->name_off, h->name_len), want))
            return head_slice(req, h->val_off, h->val_len);
    }
    return RT_STR_NULL;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Form decoding: '+' is a space, %XX a byte; a malformed escape stays literal. */
static void url_decode(rt_buf_t *out, rt_str_t s)
{
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == '+') {
            rt_buf_append_byte(out, ' ');
        } else if (c == '%' && i + 2 < s.n && hex_val(s.p[i + 1]) >= 0 &&
                   hex_val(s.p[i + 2]) >= 0) {
            rt_buf_append_byte(out, (uint8_t)(hex_val(s.p[i + 1]) * 16 + hex_val(s.p[i + 2])));
            i += 2;
        } else {
            rt_buf_append_byte(out, (uint8_t)c);
        }
    }
}

int tr_http_req_query_param(const tr_http_req_t *req, const char *name, rt_buf_t *out)
{
    rt_str_t q = tr_http_req_query(req);
    rt_buf_t key = RT_BUF_INIT;
    int rc = RT_ENOTFOUND;
    size_t i = 0;
    while (i <= q.n && q.n > 0) {
        const char *amp = memchr(q.p + i, '&', q.n - i);
        size_t end = amp ? (size_t)(amp - q.p) : q.n;
        rt_str_t pair = rt_str_from(q.p + i, end - i);
        const char *eq = pair.n ? memchr(pair.p, '=', pair.n) : NULL;
        rt_str_t k = eq ? rt_str_from(pair.p, (size_t)(eq - pair.p)) : pair;
        rt_str_t v = eq ? rt_str_from(eq + 1, pair.n - k.n - 1) : rt_str_from(pair.p, 0);
        rt_buf_reset(&key);
        url_decode(&key, k);
        if (pair.n > 0 && rt_str_eq_c(rt_buf_str(&key), name)) {
            url_decode(out, v);
            rc = 0;
            break;
        }
        i = end + 1;
    }
    rt_buf_cleanup(&key);
    return rc;
}

const char *tr_http_req_remote(const tr_http_req_t *req)
{
    return req->hc ? req->hc->conn->remote : "";
}

void tr_http_req_on_abort(tr_http_req_t *req, void (*fn)(void *ud), void *ud)
{
    req->abort_fn = fn;
    req->abort_ud = ud;
}

int tr__http_req_version(const tr_http_req_t *req)
{
    return req->version;
}

/* ---- responses ---- */

const char *tr__http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Status";
    }
}

static void json_error_body(rt_buf_t *b, const char *message)
{
    rt_buf_append_cstr(b, "{\"error\":\"");
    for (const char *p = message; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') {
            rt_buf_append_byte(b, '\\');
            rt_buf_append_byte(b, ch);
        } else if (ch < 0x20) {
            rt_buf_printf(b, "\\u%04x", ch);
        } else {
            rt_buf_append_byte(b, ch);
        }
    }
    rt_buf_append_cstr(b, "\"}");
}

/* Queues a whole response on c. */
static void write_response(tr_conn_t *c, int status, const char *content_type, rt_str_t body,
                           const char *extra_headers, bool keep_alive, bool head_only)
{
    rt_buf_t b = RT_BUF_INIT;
    bool no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
    rt_buf_reserve(&b, 128 + body.n);
    rt_buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, tr__http_status_text(status));
    if (content_type)
        rt_buf_printf(&b, "Content-Type: %s\r\n", content_type);
    if (!no_body)
        rt_buf_printf(&b, "Content-Length: %zu\r\n", body.n);
    if (extra_headers)
        rt_buf_append_cstr(&b, extra_headers);
    rt_buf_append_cstr(&b,
                       keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
    if (!no_body && !head_only)
        rt_buf_append_str(&b, body);
    rt_bytes_t *bytes = rt_buf_to_bytes(&b);
    rt_buf_cleanup(&b);
    tr__conn_enqueue(c, bytes);
    rt_bytes_unref(bytes);
}

static void idle_restart(http_conn_t *hc)
{
    double t = hc->conn->tl->limits.http_idle_timeout_s;
    if (t <= 0)
        return;
    hc->idle.repeat = t;
    ev_timer_again(hc->conn->tl->loop, &hc->idle);
}

void tr_http_respond(tr_http_req_t *req, int status, const char *content_type, rt_str_t body,
                     const char *extra_headers)
{
    http_conn_t *hc = req->hc;
    if (hc == NULL) {
        /* The connection died while the handler worked and no abort callback took the
         * request back: nobody is listening, just release it. */
        req_free(req);
        return;
    }
    RT_ASSERT(hc->req == req && hc->dispatched);
    tr_conn_t *c = hc->conn;
    bool keep = req->keep_alive && !req->upgrade && !hc->no_more && hc->srv != NULL;
    write_response(c, status, content_type, body, extra_headers, keep, req->method == HTTP_HEAD);
    hc->req = NULL;
    undispatch(hc, c);
    req_free(req);
    if (!keep) {
        hc->no_more = true;
        tr__conn_finish(c);
        return;
    }
    idle_restart(hc);
    if (!hc->in_process)
        tr__conn_kick(c);
}

void tr_http_respond_error(tr_http_req_t *req, int status, const char *message)
{
    rt_buf_t b = RT_BUF_INIT;
    json_error_body(&b, message);
    tr_http_respond(req, status, "application/json", rt_buf_str(&b), NULL);
    rt_buf_cleanup(&b);
}

/* A request we reject ourselves (malformed or over a limit): answer and close. */
static void fail_request(http_conn_t *hc, int status)
{
    const char *msg = status == 413   ? "request body too large"
                      : status == 431 ? "request header too large"
                      : status == 503 ? "server shutting down"
                                      : "bad request";
    rt_buf_t b = RT_BUF_INIT;
    json_error_body(&b, msg);
    RT_LOG_DEBUG("rejecting request remote=%s status=%d", hc->conn->remote, status);
    write_response(hc->conn, status, "application/json", rt_buf_str(&b), NULL, false, false);
    rt_buf_cleanup(&b);
    req_free(hc->req);
    hc->req = NULL;
    hc->no_more = true;
    tr__conn_finish(hc->conn);
}

/* ---- parser callbacks ---- */

static bool head_too_big(http_conn_t *hc)
{
    const tr_http_req_t *req = hc->req;
    /* 4 bytes per line for ": " and CRLF the callbacks do not report. */
    size_t bytes = req->head.len + 4 * req->nhdrs;
    if (bytes > hc->conn->tl->limits.max_header_bytes || req->nhdrs > MAX_HEADERS) {
        hc->err_status = 431;
        return true;
    }
    return false;
}

static int cb_message_begin(llhttp_t *p)
{
    http_conn_t *hc = p->data;
    RT_ASSERT(hc->req == NULL);
    hc->req = RT_NEW(tr_http_req_t);
    hc->req->hc = hc;
    hc->err_status = 0;
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *hc = p->data;
    rt_buf_append(&hc->req->head, at, len);
    hc->req->url_len += len;
    return head_too_big(hc) ? -1 : 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *hc = p->data;
    tr_http_req_t *req = hc->req;
    if (req->nhdrs == 0 || req->in_value) {
        if (req->nhdrs == req->hdr_cap) {
            req->hdr_cap = req->hdr_cap ? req->hdr_cap * 2 : 8;
            req->hdrs = rt_realloc(req->hdrs, req->hdr_cap * sizeof(*req->hdrs));
        }
        req->hdrs[req->nhdrs++] = (http_hdr_t){req->head.len, 0, req->head.len, 0};
        req->in_value = false;
    }
    rt_buf_append(&req->head, at, len);
    req->hdrs[req->nhdrs - 1].name_len += len;
    return head_too_big(hc) ? -1 : 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *hc = p->data;
    tr_http_req_t *req = hc->req;
    if (req->nhdrs == 0)
        return -1;
    http_hdr_t *h = &req->hdrs[req->nhdrs - 1];
    if (!req->in_value) {
        h->val_off = req->head.len;
        req->in_value = true;
    }
    rt_buf_append(&req->head, at, len);
    h->val_len += len;
    return head_too_big(hc) ? -1 : 0;
}

static int cb_headers_complete(llhttp_t *p)
{
    http_conn_t *hc = p->data;
    tr_http_req_t *req = hc->req;
    req->method = p->method;
    req->version = p->http_major * 10 + p->http_minor;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > hc->conn->tl->limits.max_body_bytes) {
        hc->err_status = 413;
        return -1;
    }
    bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
    if (has_body && req->version >= 11 &&
        rt_str_case_eq(tr_http_req_header(req, "Expect"), RT_STR("100-continue")))
        tr__conn_enqueue_copy(hc->conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *hc = p->data;
    if (hc->req->body.len + len > hc->conn->tl->limits.max_body_bytes) {
        hc->err_status = 413;
        return -1;
    }
    rt_buf_append(&hc->req->body, at, len);
    return 0;
}

static int cb_message_complete(llhttp_t *p)
{
    http_conn_t *hc = p->data;
    hc->req->keep_alive = llhttp_should_keep_alive(p);
    hc->req->upgrade = p->upgrade;
    /* One request at a time: stop here until it is answered. */
    return HPE_PAUSED;
}

/* ---- connection ---- */

/* hc's request leaves the handler (answered, upgraded or dropped). */
static void undispatch(http_conn_t *hc, tr_conn_t *c)
{
    hc->dispatched = false;
    c->tl->in_flight--;
}

static void dispatch(http_conn_t *hc)
{
    hc->dispatched = true;
    hc->conn->tl->dispatched++;
    hc->conn->tl->in_flight++;
    ev_timer_stop(hc->conn->tl->loop, &hc->idle);
    if (hc->req->upgrade)
        hc->no_more = true;
    hc->srv->h.on_request(hc->req, hc->srv->h.ud);
}

static void http_on_input(tr_conn_t *c)
{
    http_conn_t *hc = c->proto;
    if (hc->in_process)
        return;
    hc->in_process = true;
    while (!hc->upgraded && !c->dropped && !c->finishing && !hc->dispatched && !hc->no_more &&
           c->roff < c->rlen) {
        const char *data = (const char *)c->rbuf + c->roff;
        size_t len = c->rlen - c->roff;
        llhttp_errno_t err = llhttp_execute(&hc->parser, data, len);
        if (err == HPE_OK) {
            c->roff = c->rlen;
        } else if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            c->roff += (size_t)(llhttp_get_error_pos(&hc->parser) - data);
            if (err == HPE_PAUSED)
                llhttp_resume(&hc->parser);
            if (hc->srv == NULL) {
                fail_request(hc, 503);
                break;
            }
            dispatch(hc);
        } else {
            fail_request(hc, hc->err_status ? hc->err_status : 400);
        }
    }
    hc->in_process = false;
    if (hc->upgraded)
        rt_free(hc);
}

static void unlink_conn(http_conn_t *hc)
{
    if (hc->srv == NULL)
        return;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        hc->srv->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    hc->prev = hc->next = NULL;
    hc->srv = NULL;
}

static void http_on_drop(tr_conn_t *c, int reason)
{
    http_conn_t *hc = c->proto;
    ev_timer_stop(c->tl->loop, &hc->idle);
    unlink_conn(hc);
    tr_http_req_t *req = hc->req;
    hc->req = NULL;
    if (req == NULL)
        return;
    if (!hc->dispatched) {
        req_free(req);
        return;
    }
    undispatch(hc, c);
    req->hc = NULL;
    if (req->abort_fn) {
        req->abort_fn(req->abort_ud);
        req_free(req);
    }
}

static void http_on_free(tr_conn_t *c)
{
    rt_free(c->proto);
}

static void on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
    http_conn_t *hc = w->data;
    RT_LOG_DEBUG("http idle timeout remote=%s", hc->conn->remote);
    tr__conn_drop(hc->conn, TR_CONN_TIMEOUT);
}

void tr__http_server_adopt(tr_http_server_t *srv, int fd, const char *remote)
{
    http_conn_t *hc = RT_NEW(http_conn_t);
    hc->srv = srv;
    llhttp_init(&hc->parser, HTTP_REQUEST, &parser_settings);
    hc->parser.data = hc;
    hc->conn = tr__conn_new(srv->tl, fd, remote, &http_ops, hc);
    hc->conn->write_timeout_s = srv->tl->limits.http_idle_timeout_s;
    ev_init(&hc->idle, on_idle);
    hc->idle.data = hc;
    idle_restart(hc);
    hc->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = hc;
    srv->conns = hc;
}

tr_conn_t *tr__http_req_upgrade(tr_http_req_t *req, rt_bytes_t *head, const tr_conn_ops_t *ops,
                                void *proto)
{
    http_conn_t *hc = req->hc;
    if (hc == NULL) {
        req_free(req);
        return NULL;
    }
    RT_ASSERT(hc->req == req && hc->dispatched);
    tr_conn_t *c = hc->conn;
    tr__conn_enqueue(c, head);
    ev_timer_stop(c->tl->loop, &hc->idle);
    unlink_conn(hc);
    hc->req = NULL;
    undispatch(hc, c);
    req_free(req);
    c->ops = ops;
    c->proto = proto;
    c->write_timeout_s = c->tl->limits.write_timeout_s;
    if (!c->tl->limits.upgraded_nodelay && c->fd >= 0) {
        /* Every accepted socket starts with TCP_NODELAY (requests and responses); a client
         * connection may hand small pushes to Nagle instead. */
        int zero = 0;
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &zero, sizeof(zero));
    }
    hc->upgraded = true;
    hc->conn = NULL;
    if (!hc->in_process)
        rt_free(hc);
    tr__conn_kick(c);
    return c;
}

/* ---- server ---- */

static void on_accept(void *ud, int fd, const char *remote)
{
    tr__http_server_adopt(ud, fd, remote);
}

tr_http_server_t *tr__http_server_new(tr_loop_t *tl, const tr_http_handler_t *h)
{
    tr_http_server_t *srv = RT_NEW(tr_http_server_t);
    srv->tl = tl;
    srv->h = *h;
    tr__listener_init(&srv->listener, tl, on_accept, srv);
    return srv;
}

int tr_http_listen(tr_loop_t *tl, const char *addr, int port, const tr_http_handler_t *h,
                   tr_http_server_t **out)
{
    tr_http_server_t *srv = tr__http_server_new(tl, h);
    if (tr__listener_open(&srv->listener, addr, port, "http") != 0) {
        tr_http_server_free(srv);
        return RT_EIO;
    }
    *out = srv;
    return 0;
}

int tr__http_server_port(const tr_http_server_t *srv)
{
    return tr__listener_port(&srv->listener);
}

void tr_http_server_stop(tr_http_server_t *srv)
{
    tr__listener_close(&srv->listener);
}

void tr_http_server_free(tr_http_server_t *srv)
{
    if (srv == NULL)
        return;
    tr_http_server_stop(srv);
    while (srv->conns) {
        http_conn_t *hc = srv->conns;
        if (hc->dispatched) {
            /* The handler still owns a request: let it answer, then close. */
            hc->no_more = true;
            unlink_conn(hc);
        } else {
            tr__conn_drop(hc->conn, TR_CONN_LOCAL); /* unlinks hc */
        }
    }
    rt_free(srv);
}

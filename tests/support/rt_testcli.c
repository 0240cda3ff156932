#include "tests/support/rt_testcli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "node/base/b64.h"
#include "node/base/err.h"
#include "node/base/rand.h"
#include "node/base/time.h"

#define DEFAULT_SEND_TIMEOUT_MS 3000
#define READ_CHUNK              65536
/* A test server never legitimately sends more than this in one frame. */
#define MAX_FRAME_BYTES ((uint64_t)64 << 20)
#define WS_GUID         "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int64_t rt_tc_now_ms(void)
{
    return rt_mono_ms();
}

void rt_tc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - rt_tc_now_ms();
    return left > 0 ? (int)left : 0;
}

int rt_tc_connect(rt_tc_conn_t *c, int port, int rcvbuf_bytes)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->pong = true;
    rt_buf_init(&c->in);
    rt_buf_init(&c->msgs);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return RT_EIO;
    if (rcvbuf_bytes > 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof(rcvbuf_bytes)) != 0) {
        close(fd);
        return RT_EIO;
    }
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return RT_EIO;
    }
    int one = 1;
    /* Hostile tests send headers and payloads in separate writes; Nagle would merge them
     * unpredictably and hide ordering bugs. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        close(fd);
        return RT_EIO;
    }
    c->fd = fd;
    return 0;
}

void rt_tc_close(rt_tc_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    rt_buf_cleanup(&c->in);
    rt_buf_cleanup(&c->msgs);
}

int rt_tc_send(rt_tc_conn_t *c, const void *p, size_t n, int timeout_ms)
{
    const uint8_t *b = p;
    int64_t deadline = rt_tc_now_ms() + timeout_ms;

    if (c->fd < 0 || c->reset)
        return RT_ECLOSED;
    while (n > 0) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {c->fd, POLLOUT, 0};
            int left = remaining_ms(deadline);
            if (left == 0)
                return RT_ETIMEOUT;
            if (poll(&pfd, 1, left) < 0 && errno != EINTR)
                return RT_EIO;
            continue;
        }
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            c->reset = true;
            return RT_ECLOSED;
        }
        return RT_EIO;
    }
    return 0;
}

int rt_tc_send_cstr(rt_tc_conn_t *c, const char *s)
{
    return rt_tc_send(c, s, strlen(s), DEFAULT_SEND_TIMEOUT_MS);
}

/* One recv() into c->in; 1 = got bytes, 0 = would block, RT_ECLOSED. */
static int read_some(rt_tc_conn_t *c)
{
    for (;;) {
        rt_buf_reserve(&c->in, READ_CHUNK);
        ssize_t r = recv(c->fd, c->in.p + c->in.len, READ_CHUNK, 0);
        if (r > 0) {
            c->in.len += (size_t)r;
            return 1;
        }
        if (r == 0) {
            c->eof = true;
            return RT_ECLOSED;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        c->eof = true;
        c->reset = true;
        return RT_ECLOSED;
    }
}

int rt_tc_fill(rt_tc_conn_t *c, int timeout_ms)
{
    int64_t deadline = rt_tc_now_ms() + timeout_ms;

    if (c->fd < 0 || c->eof)
        return RT_ECLOSED;
    for (;;) {
        int rc = read_some(c);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int left = remaining_ms(deadline);
        if (left == 0)
            return RT_ETIMEOUT;
        if (poll(&pfd, 1, left) < 0 && errno != EINTR)
            return RT_EIO;
    }
}

int rt_tc_wait_eof(rt_tc_conn_t *c, int timeout_ms)
{
    int64_t deadline = rt_tc_now_ms() + timeout_ms;

    for (;;) {
        rt_buf_reset(&c->in);
        int rc = rt_tc_fill(c, remaining_ms(deadline));
        if (rc == RT_ECLOSED)
            return 0;
        if (rc != 0)
            return rc;
    }
}

int rt_tc_send_until_reply(rt_tc_conn_t *c, const void *p, size_t n, size_t *sent, int timeout_ms)
{
    const uint8_t *b = p;
    int64_t deadline = rt_tc_now_ms() + timeout_ms;

    *sent = 0;
    while (*sent < n) {
        struct pollfd pfd = {c->fd, POLLIN | POLLOUT, 0};
        int left = remaining_ms(deadline);
        if (left == 0)
            return RT_ETIMEOUT;
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno != EINTR)
            return RT_EIO;
        if (pr <= 0)
            continue;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
            return 0;
        size_t chunk = n - *sent < 16384 ? n - *sent : 16384;
        ssize_t w = send(c->fd, b + *sent, chunk, MSG_NOSIGNAL);
        if (w > 0) {
            *sent += (size_t)w;
        } else if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            c->reset = true;
            return 0;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return RT_EIO;
        }
    }
    return 0;
}

/* ---- HTTP ---- */

void rt_tc_http_resp_init(rt_tc_http_resp_t *r)
{
    memset(r, 0, sizeof(*r));
    rt_buf_init(&r->headers);
    rt_buf_init(&r->body);
}

void rt_tc_http_resp_cleanup(rt_tc_http_resp_t *r)
{
    rt_buf_cleanup(&r->headers);
    rt_buf_cleanup(&r->body);
}

rt_str_t rt_tc_http_header(const rt_tc_http_resp_t *r, const char *name)
{
    const char *p = (const char *)r->headers.p;
    const char *end = p + r->headers.len;
    size_t nl = strlen(name);

    while (p != NULL && p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (eol == NULL)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon != NULL && (size_t)(colon - p) == nl &&
            rt_str_case_eq(rt_str_from(p, nl), rt_str_c(name))) {
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            return rt_str_from(v, (size_t)(ve - v));
        }
        p = eol + 2;
    }
    return RT_STR_NULL;
}

static bool header_has_token(rt_str_t v, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i + tl <= v.n; i++) {
        if (rt_str_case_eq(rt_str_from(v.p + i, tl), rt_str_c(token)))
            return true;
    }
    return false;
}

/* Parses a chunked body starting at p; 1 = complete (*used bytes, body appended),
 * 0 = need more, RT_EPROTO. */
static int parse_chunked(const char *p, size_t n, size_t *used, rt_buf_t *body)
{
    size_t off = 0;
    rt_buf_reset(body);
    for (;;) {
        const char *eol = memmem(p + off, n - off, "\r\n", 2);
        if (eol == NULL)
            return 0;
        size_t size = 0;
        const char *q = p + off;
        int digits = 0;
        for (; q < eol && *q != ';'; q++, digits++) {
            int d;
            if (*q >= '0' && *q <= '9')
                d = *q - '0';
            else if (*q >= 'a' && *q <= 'f')
                d = *q - 'a' + 10;
            else if (*q >= 'A' && *q <= 'F')
                d = *q - 'A' + 10;
            else
                return RT_EPROTO;
            if (size > (SIZE_MAX >> 4))
                return RT_EPROTO;
            size = size * 16 + (size_t)d;
        }
        if (digits == 0)
            return RT_EPROTO;
        off = (size_t)(eol - p) + 2;
        if (size == 0) {
            /* Trailers end with an empty line. */
            const char *fin = memmem(p + off - 2, n - off + 2, "\r\n\r\n", 4);
            if (fin == NULL)
                return 0;
            *used = (size_t)(fin - p) + 4;
            return 1;
        }
        if (n - off < size + 2)
            return 0;
        rt_buf_append(body, p + off, size);
        off += size + 2;
    }
}

int rt_tc_http_read(rt_tc_conn_t *c, rt_tc_http_resp_t *r, int timeout_ms)
{
    int64_t deadline = rt_tc_now_ms() + timeout_ms;
    const char *hend;

    rt_buf_reset(&r->headers);
    rt_buf_reset(&r->body);
    r->status = 0;
    r->conn_close = false;
    for (;;) {
        hend = c->in.len ? memmem(c->in.p, c->in.len, "\r\n\r\n", 4) : NULL;
        if (hend != NULL)
            break;
        int rc = rt_tc_fill(c, remaining_ms(deadline));
        if (rc != 0)
            return rc;
    }
    const char *base = (const char *)c->in.p;
    size_t head_len = (size_t)(hend - base) + 4;
    /* c->in is not NUL-terminated: sscanf would run past the response into whatever the
     * heap holds (it crashed under TSan's allocator). Scan a terminated copy. */
    char status_line[64];
    size_t sl_len = head_len < sizeof(status_line) ? head_len : sizeof(status_line) - 1;
    memcpy(status_line, base, sl_len);
    status_line[sl_len] = '\0';
    int major, minor, status;
    if (sscanf(status_line, "HTTP/%d.%d %3d", &major, &minor, &status) != 3)
        return RT_EPROTO;
    r->status = status;
    const char *first_eol = memmem(base, head_len, "\r\n", 2);
    size_t hstart = (size_t)(first_eol - base) + 2;
    if (hstart < head_len - 2)
        rt_buf_append(&r->headers, base + hstart, head_len - 2 - hstart);

    rt_str_t conn = rt_tc_http_header(r, "Connection");
    r->conn_close = conn.p != NULL && header_has_token(conn, "close");
    if (major == 1 && minor == 0 && !(conn.p != NULL && header_has_token(conn, "keep-alive")))
        r->conn_close = true;

    if ((status >= 100 && status < 200) || status == 204 || status == 304) {
        rt_buf_consume(&c->in, head_len);
        return 0;
    }
    rt_str_t te = rt_tc_http_header(r, "Transfer-Encoding");
    rt_str_t cl = rt_tc_http_header(r, "Content-Length");
    if (te.p != NULL && header_has_token(te, "chunked")) {
        for (;;) {
            size_t used = 0;
            int pc = parse_chunked((const char *)c->in.p + head_len, c->in.len - head_len, &used,
                                   &r->body);
            if (pc < 0)
                return pc;
            if (pc == 1) {
                rt_buf_consume(&c->in, head_len + used);
                return 0;
            }
            int rc = rt_tc_fill(c, remaining_ms(deadline));
            if (rc != 0)
                return rc;
        }
    }
    if (cl.p != NULL) {
        char tmp[32];
        if (cl.n == 0 || cl.n >= sizeof(tmp))
            return RT_EPROTO;
        memcpy(tmp, cl.p, cl.n);
        tmp[cl.n] = '\0';
        char *endp;
        unsigned long long len = strtoull(tmp, &endp, 10);
        if (*endp != '\0' || len > MAX_FRAME_BYTES)
            return RT_EPROTO;
        while (c->in.len - head_len < len) {
            int rc = rt_tc_fill(c, remaining_ms(deadline));
            if (rc != 0)
                return rc;
        }
        rt_buf_append(&r->body, c->in.p + head_len, (size_t)len);
        rt_buf_consume(&c->in, head_len + (size_t)len);
        return 0;
    }
    /* Neither length nor chunking: the body runs to EOF. */
    for (;;) {
        int rc = rt_tc_fill(c, remaining_ms(deadline));
        if (rc == RT_ECLOSED)
            break;
        if (rc != 0)
            return rc;
    }
    rt_buf_append(&r->body, c->in.p + head_len, c->in.len - head_len);
    rt_buf_reset(&c->in);
    r->conn_close = true;
    return 0;
}

int rt_tc_http_send(rt_tc_conn_t *c, const char *method, const char *path,
                    const char *extra_headers, const void *body, size_t body_len)
{
    rt_buf_t req = RT_BUF_INIT;
    rt_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, path);
    if (body != NULL)
        rt_buf_printf(&req, "Content-Length: %zu\r\n", body_len);
    if (extra_headers != NULL)
        rt_buf_append_cstr(&req, extra_headers);
    rt_buf_append_cstr(&req, "\r\n");
    if (body != NULL)
        rt_buf_append(&req, body, body_len);
    int rc = rt_tc_send(c, req.p, req.len, DEFAULT_SEND_TIMEOUT_MS);
    rt_buf_cleanup(&req);
    return rc;
}

int rt_tc_http_once(int port, const char *method, const char *path, const char *extra_headers,
                    const void *body, size_t body_len, rt_tc_http_resp_t *r)
{
    rt_tc_conn_t c;
    int rc = rt_tc_connect(&c, port, 0);
    if (rc == 0)
        rc = rt_tc_http_send(&c, method, path, extra_headers, body, body_len);
    if (rc == 0)
        rc = rt_tc_http_read(&c, r, DEFAULT_SEND_TIMEOUT_MS);
    rt_tc_close(&c);
    return rc;
}

/* ---- WebSocket ---- */

void rt_tc_ws_frame_init(rt_tc_ws_frame_t *f)
{
    memset(f, 0, sizeof(*f));
    rt_buf_init(&f->payload);
}

void rt_tc_ws_frame_cleanup(rt_tc_ws_frame_t *f)
{
    rt_buf_cleanup(&f->payload);
}

static void ws_accept_for(const char *key, rt_buf_t *out)
{
    rt_buf_t in = RT_BUF_INIT;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    rt_buf_append_cstr(&in, key);
    rt_buf_append_cstr(&in, WS_GUID);
    if (EVP_Digest(in.p, in.len, md, &md_len, EVP_sha1(), NULL) != 1)
        md_len = 0;
    rt_b64_encode(out, md, md_len, false, true);
    rt_buf_cleanup(&in);
}

int rt_tc_ws_handshake(rt_tc_conn_t *c, const char *target, const char *extra_headers,
                       rt_tc_http_resp_t *resp)
{
    uint8_t nonce[16];
    rt_buf_t key = RT_BUF_INIT;
    rt_buf_t hdrs = RT_BUF_INIT;
    rt_buf_t accept = RT_BUF_INIT;
    rt_tc_http_resp_t local;
    rt_tc_http_resp_t *r = resp;
    int rc;

    if (r == NULL) {
        rt_tc_http_resp_init(&local);
        r = &local;
    }
    rt_random_fill(nonce, sizeof(nonce));
    rt_b64_encode(&key, nonce, sizeof(nonce), false, true);
    rt_buf_append_byte(&key, 0);
    rt_buf_printf(&hdrs,
                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n%s",
                  (const char *)key.p, extra_headers ? extra_headers : "");
    rt_buf_append_byte(&hdrs, 0);
    rc = rt_tc_http_send(c, "GET", target, (const char *)hdrs.p, NULL, 0);
    if (rc == 0)
        rc = rt_tc_http_read(c, r, DEFAULT_SEND_TIMEOUT_MS);
    if (rc == 0) {
        ws_accept_for((const char *)key.p, &accept);
        rt_str_t got = rt_tc_http_header(r, "Sec-WebSocket-Accept");
        if (r->status != 101 || !rt_str_eq(got, rt_buf_str(&accept)))
            rc = RT_EPROTO;
    }
    if (r == &local)
        rt_tc_http_resp_cleanup(&local);
    rt_buf_cleanup(&key);
    rt_buf_cleanup(&hdrs);
    rt_buf_cleanup(&accept);
    return rc;
}

int rt_tc_ws_open(rt_tc_conn_t *c, int port)
{
    int rc = rt_tc_connect(c, port, 0);
    if (rc != 0)
        return rc;
    return rt_tc_ws_handshake(c, "/connection/websocket", NULL, NULL);
}

static size_t put_header(uint8_t *h, uint8_t b0, bool mask, uint64_t n)
{
    size_t hl = 2;
    uint8_t m = mask ? 0x80 : 0;

    h[0] = b0;
    if (n < 126) {
        h[1] = m | (uint8_t)n;
    } else if (n <= 0xffff) {
        h[1] = m | 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = m | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)(n >> (56 - 8 * i));
        hl = 10;
    }
    return hl;
}

void rt_tc_ws_frame_encode(rt_buf_t *out, bool fin, int opcode, const void *p, size_t n, bool mask)
{
    uint8_t h[14];

    size_t hl = put_header(h, (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x7f)), mask, n);
    rt_buf_append(out, h, hl);
    if (mask) {
        uint8_t key[4];
        rt_random_fill(key, sizeof(key));
        rt_buf_append(out, key, sizeof(key));
        size_t start = out->len;
        rt_buf_append(out, p, n);
        for (size_t i = 0; i < n; i++)
            out->p[start + i] ^= key[i & 3];
    } else {
        rt_buf_append(out, p, n);
    }
}

int rt_tc_ws_send_frame(rt_tc_conn_t *c, bool fin, int opcode, const void *p, size_t n, bool mask)
{
    rt_buf_t f = RT_BUF_INIT;

    rt_tc_ws_frame_encode(&f, fin, opcode, p, n, mask);
    int rc = rt_tc_send(c, f.p, f.len, DEFAULT_SEND_TIMEOUT_MS);
    rt_buf_cleanup(&f);
    return rc;
}

int rt_tc_ws_send_header(rt_tc_conn_t *c, int opcode, uint64_t len)
{
    uint8_t h[14];

    h[0] = (uint8_t)(0x80 | (opcode & 0x7f));
    h[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    rt_random_fill(h + 10, 4);
    return rt_tc_send(c, h, sizeof(h), DEFAULT_SEND_TIMEOUT_MS);
}

int rt_tc_ws_send_text(rt_tc_conn_t *c, const char *s)
{
    return rt_tc_ws_send_frame(c, true, RT_TC_WS_TEXT, s, strlen(s), true);
}

int rt_tc_ws_send_close(rt_tc_conn_t *c, int code, const char *reason)
{
    uint8_t p[125];
    size_t rl = reason ? strlen(reason) : 0;

    if (rl > sizeof(p) - 2)
        rl = sizeof(p) - 2;
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (rl > 0)
        memcpy(p + 2, reason, rl);
    return rt_tc_ws_send_frame(c, true, RT_TC_WS_CLOSE, p, rl + 2, true);
}

/* 1 = one frame parsed and consumed, 0 = need more bytes, RT_EPROTO. */
static int parse_frame(rt_tc_conn_t *c, rt_tc_ws_frame_t *f)
{
    const uint8_t *b = c->in.p;
    size_t n = c->in.len;

    if (n < 2)
        return 0;
    bool masked = (b[1] & 0x80) != 0;
    uint64_t len = b[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = ((uint64_t)b[2] << 8) | b[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | b[2 + i];
        hl = 10;
    }
    if (len > MAX_FRAME_BYTES)
        return RT_EPROTO;
    size_t ml = masked ? 4 : 0;
    if (n < hl + ml + len)
        return 0;

    f->fin = (b[0] & 0x80) != 0;
    f->rsv = b[0] & 0x70;
    f->opcode = b[0] & 0x0f;
    f->masked = masked;
    rt_buf_reset(&f->payload);
    rt_buf_append(&f->payload, b + hl + ml, (size_t)len);
    if (masked) {
        for (size_t i = 0; i < len; i++)
            f->payload.p[i] ^= b[hl + (i & 3)];
    }
    f->close_code = 0;
    f->reason = RT_STR_NULL;
    if (f->opcode == RT_TC_WS_CLOSE) {
        if (len >= 2) {
            f->close_code = (f->payload.p[0] << 8) | f->payload.p[1];
            f->reason = rt_str_from((const char *)f->payload.p + 2, (size_t)len - 2);
        } else {
            f->close_code = RT_TC_WS_NO_STATUS;
            f->reason = rt_str_from("", 0);
        }
    }
    rt_buf_consume(&c->in, hl + ml + (size_t)len);
    return 1;
}

int rt_tc_ws_read_frame(rt_tc_conn_t *c, rt_tc_ws_frame_t *f, int timeout_ms)
{
    int64_t deadline = rt_tc_now_ms() + timeout_ms;

    for (;;) {
        int pc = parse_frame(c, f);
        if (pc != 0)
            return pc < 0 ? pc : 0;
        int rc = rt_tc_fill(c, remaining_ms(deadline));
        if (rc != 0)
            return rc;
    }
}

int rt_tc_ws_wait_close(rt_tc_conn_t *c, int *code, rt_buf_t *reason, int timeout_ms)
{
    int64_t deadline = rt_tc_now_ms() + timeout_ms;
    rt_tc_ws_frame_t f;
    int rc;

    rt_tc_ws_frame_init(&f);
    *code = 0;
    for (;;) {
        rc = rt_tc_ws_read_frame(c, &f, remaining_ms(deadline));
        if (rc != 0)
            break;
        if (f.opcode == RT_TC_WS_CLOSE) {
            *code = f.close_code;
            if (reason != NULL) {
                rt_buf_reset(reason);
                rt_buf_append_str(reason, f.reason);
                rt_buf_append_byte(reason, 0);
                reason->len--;
            }
            break;
        }
    }
    if (rc == RT_ECLOSED)
        *code = 1006;
    rt_tc_ws_frame_cleanup(&f);
    return rc;
}

/* ---- Centrifugo JSON ---- */

/* Pops the next non-empty line of c->msgs into line; false if none is buffered. */
static bool pop_line(rt_tc_conn_t *c, rt_buf_t *line)
{
    while (c->msgs.len > 0) {
        const uint8_t *nl = memchr(c->msgs.p, '\n', c->msgs.len);
        size_t n = (size_t)(nl - c->msgs.p);
        rt_buf_reset(line);
        rt_buf_append(line, c->msgs.p, n);
        rt_buf_consume(&c->msgs, n + 1);
        if (n > 0) {
            rt_buf_append_byte(line, 0);
            line->len--;
            return true;
        }
    }
    return false;
}

int rt_tc_cf_next(rt_tc_conn_t *c, rt_buf_t *line, int timeout_ms)
{
    int64_t deadline = rt_tc_now_ms() + timeout_ms;
    rt_tc_ws_frame_t f;
    rt_buf_t msg = RT_BUF_INIT;
    bool assembling = false;
    int rc = 0;

    rt_tc_ws_frame_init(&f);
    for (;;) {
        if (!assembling && pop_line(c, line)) {
            if (line->len == 2 && memcmp(line->p, "{}", 2) == 0) {
                if (c->pong)
                    (void)rt_tc_ws_send_text(c, "{}");
                continue;
            }
            break;
        }
        rc = rt_tc_ws_read_frame(c, &f, remaining_ms(deadline));
        if (rc != 0)
            break;
        if (f.opcode == RT_TC_WS_PING) {
            (void)rt_tc_ws_send_frame(c, true, RT_TC_WS_PONG, f.payload.p, f.payload.len, true);
            continue;
        }
        if (f.opcode == RT_TC_WS_PONG)
            continue;
        if (f.opcode == RT_TC_WS_CLOSE) {
            c->close_code = f.close_code;
            rc = RT_ECLOSED;
            break;
        }
        rt_buf_append(&msg, f.payload.p, f.payload.len);
        assembling = !f.fin;
        if (f.fin) {
            /* Each frame's last line ends here, so a line never spans two frames. */
            rt_buf_append(&c->msgs, msg.p, msg.len);
            rt_buf_append_byte(&c->msgs, '\n');
            rt_buf_reset(&msg);
        }
    }
    rt_buf_cleanup(&msg);
    rt_tc_ws_frame_cleanup(&f);
    return rc;
}

int rt_tc_cf_connect(rt_tc_conn_t *c, uint32_t id, const char *token, rt_buf_t *reply)
{
    rt_buf_t cmd = RT_BUF_INIT;
    char prefix[64];

    rt_buf_printf(&cmd, "{\"connect\":{\"token\":\"%s\",\"name\":\"c\"},\"id\":%u}", token, id);
    rt_buf_append_byte(&cmd, 0);
    int rc = rt_tc_ws_send_text(c, (const char *)cmd.p);
    rt_buf_cleanup(&cmd);
    if (rc == 0)
        rc = rt_tc_cf_next(c, reply, DEFAULT_SEND_TIMEOUT_MS);
    snprintf(prefix, sizeof(prefix), "{\"id\":%u,\"connect\":{", id);
    if (rc == 0 && !rt_str_starts_with(rt_buf_str(reply), rt_str_c(prefix)))
        rc = RT_EPROTO;
    return rc;
}

int rt_tc_cf_subscribe(rt_tc_conn_t *c, uint32_t id, const char *channel, rt_buf_t *reply)
{
    rt_buf_t cmd = RT_BUF_INIT;
    char prefix[64];

    rt_buf_printf(&cmd, "{\"subscribe\":{\"channel\":\"%s\"},\"id\":%u}", channel, id);
    rt_buf_append_byte(&cmd, 0);
    int rc = rt_tc_ws_send_text(c, (const char *)cmd.p);
    rt_buf_cleanup(&cmd);
    if (rc == 0)
        rc = rt_tc_cf_next(c, reply, DEFAULT_SEND_TIMEOUT_MS);
    snprintf(prefix, sizeof(prefix), "{\"id\":%u,\"subscribe\":{", id);
    if (rc == 0 && !rt_str_starts_with(rt_buf_str(reply), rt_str_c(prefix)))
        rc = RT_EPROTO;
    return rc;
}

int rt_tc_cf_client_id(rt_str_t reply, rt_buf_t *out)
{
    static const char key[] = "\"client\":\"";
    const char *p = reply.n ? memmem(reply.p, reply.n, key, sizeof(key) - 1) : NULL;

    if (p == NULL)
        return RT_EPROTO;
    p += sizeof(key) - 1;
    const char *q = memchr(p, '"', (size_t)(reply.p + reply.n - p));
    if (q == NULL)
        return RT_EPROTO;
    rt_buf_reset(out);
    rt_buf_append(out, p, (size_t)(q - p));
    rt_buf_append_byte(out, 0);
    out->len--;
    return 0;
}

bool rt_tc_is_uuid(rt_str_t s)
{
    if (s.n != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        char ch = s.p[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return false;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return false;
        }
    }
    return true;
}

int rt_tc_api_publish(rt_tc_conn_t *api, int port, const char *api_key, const char *channel,
                      const char *data_json, rt_tc_http_resp_t *r)
{
    rt_buf_t body = RT_BUF_INIT;
    char hdr[256];
    int rc;

    rt_buf_printf(&body, "{\"channel\":\"%s\",\"data\":%s}", channel, data_json);
    snprintf(hdr, sizeof(hdr), "X-API-Key: %s\r\nContent-Type: application/json\r\n", api_key);
    if (api != NULL) {
        rc = rt_tc_http_send(api, "POST", "/api/publish", hdr, body.p, body.len);
        if (rc == 0)
            rc = rt_tc_http_read(api, r, DEFAULT_SEND_TIMEOUT_MS);
    } else {
        rc = rt_tc_http_once(port, "POST", "/api/publish", hdr, body.p, body.len, r);
    }
    rt_buf_cleanup(&body);
    return rc;
}

void rt_tc_jwt_hs256(rt_buf_t *out, const char *secret, const char *claims_json)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t start = out->len;

    rt_b64_encode(out, header, sizeof(header) - 1, true, false);
    rt_buf_append_byte(out, '.');
    rt_b64_encode(out, claims_json, strlen(claims_json), true, false);
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), out->p + start, out->len - start, mac,
             &mac_len) == NULL)
        mac_len = 0;
    rt_buf_append_byte(out, '.');
    rt_b64_encode(out, mac, mac_len, true, false);
    rt_buf_append_byte(out, 0);
    out->len--;
}

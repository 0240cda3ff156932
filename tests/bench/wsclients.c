/* bench_wsclients: opens N idle WebSocket connections to a rotor (or any Centrifugo v2 JSON
 * protocol server), connects and subscribes each one, answers application pings, holds them
 * for a while and exits by itself. Used by idle_rss.sh to measure memory per idle connection.
 *
 * Standalone on purpose (no rotor libraries, no OpenSSL): `cc -O2 -o wsclients wsclients.c`.
 *
 * Per connection: TCP connect -> HTTP upgrade (fixed Sec-WebSocket-Key, the RFC 6455 sample,
 * so the expected Sec-WebSocket-Accept is a constant) -> masked text frame
 * {"connect":{...},"id":1} -> on its reply {"subscribe":{"channel":"bench:<i % C>"},"id":2}
 * -> on its reply the connection counts as subscribed. Server pings ("{}" lines) get "{}"
 * back, native WebSocket pings get a pong.
 *
 * stdout: one progress line per second, "READY subscribed=N elapsed=S" once every connection
 * is subscribed, and a final "DONE ..." summary. Exit status 0 only if all N connections got
 * subscribed and none was lost before the end of the hold. */
/* memmem, accept4-style SOCK_* flags; CMake builds define it already. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS  15000
#define MAX_HOLD_S 120
#define MAX_RATE   20000
#define WS_KEY     "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT  "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define MAX_FRAME  (1u << 20) /* a bigger server frame is treated as a protocol error */

typedef enum conn_state {
    ST_IDLE = 0,   /* not started yet */
    ST_CONNECTING, /* TCP connect in progress */
    ST_UPGRADING,  /* upgrade request sent, waiting for the 101 */
    ST_CONNECT_SENT,
    ST_SUBSCRIBE_SENT,
    ST_SUBSCRIBED,
    ST_CLOSED, /* failed or closed by the server; never reopened */
} conn_state_t;

typedef struct conn {
    int fd; /* owned, -1 when not open */
    conn_state_t state;
    unsigned char *rx; /* owned, heap; bytes received and not parsed yet */
    size_t rx_len, rx_cap;
    unsigned char *tx; /* owned, heap; bytes not written yet (socket buffer full) */
    size_t tx_len, tx_cap;
    unsigned char *msg; /* owned, heap; payload of a fragmented message being assembled */
    size_t msg_len, msg_cap;
    bool want_out; /* EPOLLOUT registered */
} conn_t;

typedef struct opts {
    const char *host;
    int port;
    int n;
    int hold_s;
    int rate;
    int channels;
    const char *token; /* NULL: insecure mode, connect without token */
} opts_t;

/* All run state; one instance lives in main(). */
typedef struct bench {
    int ep;
    conn_t *conns; /* owned, array of opts.n */
    opts_t o;
    struct sockaddr_in addr;
    /* counters */
    int started, open, subscribed, closed;
    long pings, native_pings;
    int failed_tcp, failed_upgrade, reply_errors, server_closes, peer_resets;
    int notes_printed;
    uint32_t mask_state; /* xorshift32 state for frame masks */
} bench_t;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note(bench_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Only the first few problems are printed: a mass failure would otherwise flood stdout. */
static void note(bench_t *b, const char *fmt, ...)
{
    if (b->notes_printed >= 20)
        return;
    b->notes_printed++;
    va_list ap;
    va_start(ap, fmt);
    fputs("wsclients: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "wsclients: out of memory\n");
        exit(2);
    }
    return q;
}

static void reserve(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 512;
    while (c < need)
        c *= 2;
    *buf = xrealloc(*buf, c);
    *cap = c;
}

static void conn_close(bench_t *b, conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also drops it from the epoll set */
        c->fd = -1;
    }
    if (c->state == ST_CONNECT_SENT || c->state == ST_SUBSCRIBE_SENT || c->state == ST_SUBSCRIBED)
        b->open--;
    if (c->state == ST_SUBSCRIBED)
        b->subscribed--;
    c->state = ST_CLOSED;
    b->closed++;
    free(c->rx);
    free(c->tx);
    free(c->msg);
    c->rx = c->tx = c->msg = NULL;
    c->rx_len = c->rx_cap = c->tx_len = c->tx_cap = c->msg_len = c->msg_cap = 0;
}

static void set_out(bench_t *b, conn_t *c, bool on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u),
                             .data.u32 = (uint32_t)(c - b->conns)};
    if (epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        note(b, "epoll_ctl: %s", strerror(errno));
        conn_close(b, c);
        return;
    }
    c->want_out = on;
}

/* Writes what the socket takes; the rest waits in tx for EPOLLOUT. */
static void flush_tx(bench_t *b, conn_t *c)
{
    size_t off = 0;
    while (off < c->tx_len) {
        ssize_t w = send(c->fd, c->tx + off, c->tx_len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        b->peer_resets++;
        note(b, "conn %d: send: %s", (int)(c - b->conns), strerror(errno));
        conn_close(b, c);
        return;
    }
    memmove(c->tx, c->tx + off, c->tx_len - off);
    c->tx_len -= off;
    set_out(b, c, c->tx_len > 0);
}

static void queue_raw(conn_t *c, const void *data, size_t len)
{
    reserve(&c->tx, &c->tx_cap, c->tx_len + len);
    memcpy(c->tx + c->tx_len, data, len);
    c->tx_len += len;
}

static uint32_t xorshift32(bench_t *b)
{
    uint32_t s = b->mask_state;
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    b->mask_state = s;
    return s;
}

/* Client frames must be masked (RFC 6455 §5.3). */
static void queue_frame(bench_t *b, conn_t *c, unsigned opcode, const void *payload, size_t len)
{
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = (unsigned char)(0x80u | opcode);
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80u | len);
    } else if (len <= 0xffff) {
        hdr[h++] = 0x80u | 126u;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80u | 127u;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    uint32_t m = xorshift32(b);
    unsigned char mask[4] = {(unsigned char)(m >> 24), (unsigned char)(m >> 16),
                             (unsigned char)(m >> 8), (unsigned char)m};
    memcpy(hdr + h, mask, 4);
    h += 4;
    queue_raw(c, hdr, h);
    reserve(&c->tx, &c->tx_cap, c->tx_len + len);
    const unsigned char *p = payload;
    for (size_t i = 0; i < len; i++)
        c->tx[c->tx_len + i] = p[i] ^ mask[i & 3];
    c->tx_len += len;
}

static void send_text(bench_t *b, conn_t *c, const char *s)
{
    queue_frame(b, c, 0x1, s, strlen(s));
}

static void start_conn(bench_t *b, int i)
{
    conn_t *c = &b->conns[i];
    b->started++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        note(b, "socket: %s", strerror(errno));
        b->failed_tcp++;
        conn_close(b, c);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&b->addr, sizeof b->addr) != 0 && errno != EINPROGRESS) {
        note(b, "connect: %s", strerror(errno));
        b->failed_tcp++;
        conn_close(b, c);
        return;
    }
    c->state = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
    if (epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        note(b, "epoll_ctl add: %s", strerror(errno));
        b->failed_tcp++;
        conn_close(b, c);
        return;
    }
    c->want_out = true;
}

static void on_connected(bench_t *b, conn_t *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) {
        note(b, "conn %d: connect: %s", (int)(c - b->conns), strerror(err));
        b->failed_tcp++;
        conn_close(b, c);
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /connection/websocket HTTP/1.1\r\n"
                     "Host: %s:%d\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     b->o.host, b->o.port);
    c->state = ST_UPGRADING;
    queue_raw(c, req, (size_t)n);
    flush_tx(b, c);
}

/* Reply with id `id` in a JSON line: `"id":1,` or `"id":1}` (rotor and Centrifugo put id
 * first, but any position is accepted). */
static bool has_id(const char *line, size_t len, int id)
{
    char pat[16];
    int pl = snprintf(pat, sizeof pat, "\"id\":%d", id);
    const char *end = line + len;
    for (const char *p = line; p + pl < end; p++) {
        p = memmem(p, (size_t)(end - p), pat, (size_t)pl);
        if (!p || p + pl >= end)
            return false;
        if (p[pl] == ',' || p[pl] == '}')
            return true;
    }
    return false;
}

static void on_line(bench_t *b, conn_t *c, const char *line, size_t len)
{
    int idx = (int)(c - b->conns);
    if (len == 2 && line[0] == '{' && line[1] == '}') {
        b->pings++;
        send_text(b, c, "{}");
        return;
    }
    bool is_err = memmem(line, len, "\"error\":", 8) != NULL;
    if (c->state == ST_CONNECT_SENT && has_id(line, len, 1)) {
        if (is_err) {
            b->reply_errors++;
            note(b, "conn %d: connect failed: %.*s", idx, (int)len, line);
            conn_close(b, c);
            return;
        }
        char cmd[128];
        snprintf(cmd, sizeof cmd, "{\"subscribe\":{\"channel\":\"bench:%d\"},\"id\":2}",
                 idx % b->o.channels);
        send_text(b, c, cmd);
        c->state = ST_SUBSCRIBE_SENT;
        return;
    }
    if (c->state == ST_SUBSCRIBE_SENT && has_id(line, len, 2)) {
        if (is_err) {
            b->reply_errors++;
            note(b, "conn %d: subscribe failed: %.*s", idx, (int)len, line);
            conn_close(b, c);
            return;
        }
        c->state = ST_SUBSCRIBED;
        b->subscribed++;
        return;
    }
    /* Pushes (publications, disconnect pushes) are not expected on an idle bench. */
    if (memmem(line, len, "\"disconnect\":", 13))
        note(b, "conn %d: disconnect push: %.*s", idx, (int)len, line);
}

/* The JSON protocol batches replies as newline-separated lines in one frame. */
static void on_text(bench_t *b, conn_t *c, const unsigned char *p, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len && c->state != ST_CLOSED; i++) {
        if (i == len || p[i] == '\n') {
            if (i > start)
                on_line(b, c, (const char *)p + start, i - start);
            start = i + 1;
        }
    }
}

/* Parses every complete frame in rx. Returns false when the connection was closed. */
static bool parse_frames(bench_t *b, conn_t *c)
{
    size_t off = 0;
    while (c->state != ST_CLOSED) {
        size_t avail = c->rx_len - off;
        const unsigned char *h = c->rx + off;
        if (avail < 2)
            break;
        bool fin = h[0] & 0x80u;
        unsigned op = h[0] & 0x0fu;
        bool masked = h[1] & 0x80u;
        uint64_t plen = h[1] & 0x7fu;
        size_t hl = 2;
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | h[2 + i];
            hl = 10;
        }
        if (masked || plen > MAX_FRAME) {
            note(b, "conn %d: bad server frame (masked=%d len=%llu)", (int)(c - b->conns), masked,
                 (unsigned long long)plen);
            conn_close(b, c);
            return false;
        }
        if (avail < hl + plen)
            break;
        const unsigned char *pl = h + hl;
        size_t n = (size_t)plen;
        off += hl + n;
        switch (op) {
        case 0x0: /* continuation */
        case 0x1: /* text */
        case 0x2: /* binary */
            if (fin && c->msg_len == 0 && op != 0x0) {
                on_text(b, c, pl, n);
            } else {
                reserve(&c->msg, &c->msg_cap, c->msg_len + n);
                memcpy(c->msg + c->msg_len, pl, n);
                c->msg_len += n;
                if (fin) {
                    on_text(b, c, c->msg, c->msg_len);
                    if (c->state != ST_CLOSED)
                        c->msg_len = 0;
                }
            }
            break;
        case 0x8: { /* close */
            unsigned code = n >= 2 ? ((unsigned)pl[0] << 8) | pl[1] : 0;
            b->server_closes++;
            note(b, "conn %d: server closed: code=%u reason=%.*s", (int)(c - b->conns), code,
                 n > 2 ? (int)(n - 2) : 0, n > 2 ? (const char *)pl + 2 : "");
            conn_close(b, c);
            return false;
        }
        case 0x9: /* ping */
            b->native_pings++;
            queue_frame(b, c, 0xA, pl, n);
            break;
        default: /* pong or reserved: nothing to do */
            break;
        }
    }
    if (c->state == ST_CLOSED)
        return false;
    memmove(c->rx, c->rx + off, c->rx_len - off);
    c->rx_len -= off;
    return true;
}

/* Handles the 101 response; bytes after it are the first frames. */
static bool parse_upgrade(bench_t *b, conn_t *c)
{
    unsigned char *end = memmem(c->rx, c->rx_len, "\r\n\r\n", 4);
    if (!end) {
        if (c->rx_len > 8192) {
            b->failed_upgrade++;
            note(b, "conn %d: upgrade response too long", (int)(c - b->conns));
            conn_close(b, c);
            return false;
        }
        return true;
    }
    size_t hlen = (size_t)(end - c->rx) + 4;
    bool ok = c->rx_len >= 12 && memcmp(c->rx, "HTTP/1.1 101", 12) == 0 &&
              memmem(c->rx, hlen, WS_ACCEPT, strlen(WS_ACCEPT)) != NULL;
    if (!ok) {
        b->failed_upgrade++;
        const unsigned char *eol = memmem(c->rx, hlen, "\r\n", 2);
        note(b, "conn %d: upgrade refused: %.*s", (int)(c - b->conns), (int)(eol ? eol - c->rx : 0),
             (const char *)c->rx);
        conn_close(b, c);
        return false;
    }
    memmove(c->rx, c->rx + hlen, c->rx_len - hlen);
    c->rx_len -= hlen;
    b->open++;
    c->state = ST_CONNECT_SENT;
    if (b->o.token) {
        size_t cap = strlen(b->o.token) + 64;
        char *cmd = xrealloc(NULL, cap);
        snprintf(cmd, cap, "{\"connect\":{\"token\":\"%s\"},\"id\":1}", b->o.token);
        send_text(b, c, cmd);
        free(cmd);
    } else {
        send_text(b, c, "{\"connect\":{},\"id\":1}");
    }
    return true;
}

static void on_readable(bench_t *b, conn_t *c)
{
    for (;;) {
        reserve(&c->rx, &c->rx_cap, c->rx_len + 4096);
        ssize_t r = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);
        if (r > 0) {
            c->rx_len += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (c->state == ST_UPGRADING)
            b->failed_upgrade++;
        else
            b->peer_resets++;
        note(b, "conn %d: %s in state %d", (int)(c - b->conns), r == 0 ? "EOF" : strerror(errno),
             (int)c->state);
        conn_close(b, c);
        return;
    }
    if (c->state == ST_UPGRADING && !parse_upgrade(b, c))
        return;
    if (c->state != ST_UPGRADING && !parse_frames(b, c))
        return;
    /* An idle connection keeps no read buffer: that is the point of the benchmark's client
     * side too, 15000 x 4 KiB would blur the client's own numbers. */
    if (c->rx_len == 0 && c->rx_cap > 0) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
    if (c->tx_len > 0)
        flush_tx(b, c);
}

static void on_event(bench_t *b, conn_t *c, uint32_t events)
{
    if (c->state == ST_CONNECTING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        on_connected(b, c);
        if (c->state == ST_CLOSED)
            return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        on_readable(b, c);
        if (c->state == ST_CLOSED)
            return;
    }
    if ((events & EPOLLOUT) && c->tx_len > 0)
        flush_tx(b, c);
    else if ((events & EPOLLOUT) && c->state != ST_CONNECTING)
        set_out(b, c, false);
}

static void progress(const bench_t *b, const char *tag, double t0)
{
    printf("%s t=%.1fs started=%d open=%d subscribed=%d closed=%d pings=%ld native_pings=%ld "
           "failed_tcp=%d failed_upgrade=%d reply_errors=%d server_closes=%d resets=%d\n",
           tag, now_s() - t0, b->started, b->open, b->subscribed, b->closed, b->pings,
           b->native_pings, b->failed_tcp, b->failed_upgrade, b->reply_errors, b->server_closes,
           b->peer_resets);
    fflush(stdout);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_wsclients -p PORT [-a ADDR] [-n N] [-t HOLD_S] [-r RATE] [-c CHANNELS] "
            "[-j JWT]\n"
            "  -a ADDR      IPv4 address [127.0.0.1]\n"
            "  -n N         connections, 1..%d [1000]\n"
            "  -t HOLD_S    seconds to hold them once all are subscribed, 0..%d [30]\n"
            "  -r RATE      new connections per second, 1..%d [2000]\n"
            "  -c CHANNELS  subscribe connection i to bench:<i %% CHANNELS> [100]\n"
            "  -j JWT       connection token (default: none, needs client.insecure)\n",
            MAX_CONNS, MAX_HOLD_S, MAX_RATE);
    exit(2);
}

static int int_arg(const char *s, int lo, int hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        usage();
    return (int)v;
}

static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)need + 16) {
        fprintf(stderr, "wsclients: open files limit %llu is too low for %d connections\n",
                (unsigned long long)rl.rlim_cur, need);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    bench_t bench = {.mask_state = 2463534242u};
    bench_t *b = &bench;
    b->o = (opts_t){.host = "127.0.0.1", .n = 1000, .hold_s = 30, .rate = 2000, .channels = 100};
    int opt;
    while ((opt = getopt(argc, argv, "a:p:n:t:r:c:j:")) != -1) {
        switch (opt) {
        case 'a':
            b->o.host = optarg;
            break;
        case 'p':
            b->o.port = int_arg(optarg, 1, 65535);
            break;
        case 'n':
            b->o.n = int_arg(optarg, 1, MAX_CONNS);
            break;
        case 't':
            b->o.hold_s = int_arg(optarg, 0, MAX_HOLD_S);
            break;
        case 'r':
            b->o.rate = int_arg(optarg, 1, MAX_RATE);
            break;
        case 'c':
            b->o.channels = int_arg(optarg, 1, 1000000);
            break;
        case 'j':
            b->o.token = optarg;
            break;
        default:
            usage();
        }
    }
    if (b->o.port == 0 || optind != argc)
        usage();
    b->addr.sin_family = AF_INET;
    b->addr.sin_port = htons((uint16_t)b->o.port);
    if (inet_pton(AF_INET, b->o.host, &b->addr.sin_addr) != 1)
        usage();
    raise_nofile(b->o.n);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    setvbuf(stdout, NULL, _IOLBF, 0);

    b->conns = calloc((size_t)b->o.n, sizeof *b->conns);
    if (!b->conns)
        return 2;
    for (int i = 0; i < b->o.n; i++)
        b->conns[i].fd = -1;
    b->ep = epoll_create1(EPOLL_CLOEXEC);
    if (b->ep < 0) {
        perror("epoll_create1");
        return 2;
    }

    double t0 = now_s();
    double next_progress = t0 + 1.0;
    /* Setup gets the time pacing needs plus a generous margin, then the run is a failure. */
    double setup_deadline = t0 + (double)b->o.n / b->o.rate + 30.0;
    double ready_at = 0, hold_until = 0;
    struct epoll_event evs[256];
    while (!g_stop) {
        double now = now_s();
        int due = (int)((now - t0) * b->o.rate) + 1;
        while (b->started < b->o.n && b->started < due)
            start_conn(b, b->started);
        if (ready_at == 0 && b->subscribed == b->o.n) {
            ready_at = now;
            hold_until = now + b->o.hold_s;
            printf("READY subscribed=%d elapsed=%.2fs\n", b->subscribed, now - t0);
        }
        if (ready_at == 0 && b->started == b->o.n && b->closed > 0 &&
            b->subscribed + b->closed == b->o.n) {
            progress(b, "FAILED", t0);
            break;
        }
        if (ready_at == 0 && now > setup_deadline) {
            progress(b, "TIMEOUT", t0);
            break;
        }
        if (ready_at > 0 && now >= hold_until)
            break;
        if (now >= next_progress) {
            progress(b, ready_at > 0 ? "hold" : "setup", t0);
            next_progress += 1.0;
        }
        int n = epoll_wait(b->ep, evs, 256, 10);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = &b->conns[evs[i].data.u32];
            if (c->state != ST_CLOSED && c->fd >= 0)
                on_event(b, c, evs[i].events);
        }
    }
    bool ok = ready_at > 0 && b->subscribed == b->o.n;
    progress(b, ok ? "DONE ok" : "DONE failed", t0);
    for (int i = 0; i < b->o.n; i++) {
        if (b->conns[i].fd >= 0)
            close(b->conns[i].fd);
        free(b->conns[i].rx);
        free(b->conns[i].tx);
        free(b->conns[i].msg);
    }
    free(b->conns);
    close(b->ep);
    return ok ? 0 : 1;
}

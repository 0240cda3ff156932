/* bench_loadgen: the load generator of the rotor-vs-Nchan benchmark suite (run_all.sh).
 *
 * One process, one thread, one epoll loop (pin it to its own core with taskset). It opens
 * subscriber WebSocket connections at a bounded rate, each bound to a rotating 127.0.0.x
 * source address before connect() (IP_BIND_ADDRESS_NO_PORT), so the number of connections is
 * limited by file descriptors only, and optionally publishes over HTTP/1.1 keep-alive at a
 * fixed rate while it measures.
 *
 * Subscriber wires (-w):
 *   json   rotor's JSON protocol: {"connect":{},"id":1} then {"subscribe":{...},"id":2}
 *   pb     rotor's Protobuf protocol (subprotocol centrifuge-protobuf, delimited Commands)
 *   nchan  plain WebSocket subscription by URL (/sub/<channel>), nothing sent after the 101
 * Application pings (an empty Reply) are answered with a pong; native pings with a pong frame.
 *
 * Publisher (-R): POST /api/publish with X-API-Key (rotor) or POST /pub/<channel> (nchan), one
 * request in flight per keep-alive connection. The payload is {"ts":<µs>,"seq":<n>} with the
 * CLOCK_REALTIME send time. Latency = kernel receive timestamp of the segment that carried the
 * frame (SO_TIMESTAMPNS) minus that ts, so the generator's own queueing is not in it.
 *
 * Measurement: once every steady subscriber is subscribed ("ready"), the server's RSS and CPU
 * time are read from /proc/<pid> (-P), publishing runs for -d seconds, then -D seconds of drain,
 * then the end sample. Loss is exact: per channel the generator counts acknowledged
 * publications, per steady subscriber it counts deliveries and checks that seq only grows.
 *
 * Other modes: -L churn (extra connections that subscribe, live -L ms, close and are replaced,
 * paced by -r), -y recovery (rotor JSON only: subscribe, disconnect all, publish -M per channel,
 * reconnect all at once with recover), -T trivial sender (a built-in WebSocket server that
 * broadcasts frames, to measure how many deliveries/s this generator absorbs).
 *
 * stdout: progress lines on stderr, one "KEY=VALUE" line per figure at the end on stdout.
 * Exit 0 when every steady subscriber got subscribed and stayed. Standalone C, no rotor
 * libraries: `cc -O2 -o loadgen loadgen.c`. */
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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS    19500
#define MAX_PUBCONNS 64
#define MAX_CHANNELS 100000
#define MAX_PIDS     8
#define WS_KEY       "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define MAX_FRAME    (4u << 20)
#define RXBUF        65536
#define LAT_BUCKETS  30000 /* 10 µs wide up to 100 ms, then 1 ms wide up to 20.1 s */
#define EPOCH_MAX    40
#define MAX_RUN_S    600
#define MAX_SOURCES  250
#define MAX_INFLIGHT 64 /* pipelined publish requests per keep-alive connection */

typedef enum wire { WIRE_JSON, WIRE_PB, WIRE_NCHAN } wire_t;

typedef enum state {
    ST_IDLE = 0,   /* waiting for its turn to connect */
    ST_CONNECTING, /* TCP connect in flight */
    ST_UPGRADING,  /* upgrade sent (subscriber) */
    ST_CONNECT_SENT,
    ST_SUBSCRIBE_SENT,
    ST_SUBSCRIBED,
    ST_PUB_IDLE, /* publisher: keep-alive connection, pipelined requests in flight */
    ST_CLOSED,
} state_t;

typedef enum role { ROLE_SUB, ROLE_CHURN, ROLE_PUB, ROLE_SRV } role_t;

typedef struct conn {
    int fd; /* owned, -1 when closed */
    role_t role;
    state_t state;
    int channel;       /* index into the channel table */
    unsigned char *rx; /* owned; unparsed bytes left from an earlier read */
    size_t rx_len, rx_cap;
    unsigned char *tx; /* owned; bytes the socket did not take yet */
    size_t tx_len, tx_cap;
    bool want_out;
    long delivered;        /* publications received */
    long last_seq;         /* highest seq seen on this connection (steady subscribers) */
    double close_at;       /* churn: monotonic time to close, 0 = not scheduled */
    char epoch[EPOCH_MAX]; /* recovery: stream position from the first subscribe reply */
    unsigned long long offset;
    bool recovering; /* recovery: the next subscribe asks for recovery */
    int inflight;    /* publisher: requests sent and not answered yet */
    int *pub_fifo;   /* publisher, owned: channels of the requests in flight, in order */
} conn_t;

typedef struct opts {
    const char *host;
    int port;
    wire_t wire;
    int n;    /* steady subscribers */
    int rate; /* connects per second */
    int channels;
    const char *prefix;
    int pub_rate; /* publications per second, 0 = none */
    int pub_conns;
    bool pub_random; /* random channel (else round robin) */
    const char *api_key;
    double dur_s;   /* publishing time */
    double drain_s; /* time after the last publication before the end sample */
    double hold_s;  /* idle hold when there is no publisher */
    int pids[MAX_PIDS], npids;
    int aux_pids[MAX_PIDS], naux;
    int sources;  /* 127.0.0.2 .. 127.0.0.(1+sources) */
    int churn_ms; /* churn connection lifetime, 0 = no churn */
    int churn_n;  /* churn slots */
    bool recovery;
    int recover_m;           /* recovery: publications per channel while disconnected */
    bool trivial;            /* -T: trivial sender mode */
    int trivial_fanout_rate; /* -T: frames per second to every connection */
} opts_t;

typedef struct proc_sample {
    double cpu_s;  /* user_s + sys_s */
    double user_s; /* utime: the server's own code */
    double sys_s;  /* stime: the kernel working for it (on loopback, also the receiver's half
                    * of TCP, run in the sender's context) */
    long rss_kib;
} proc_sample_t;

typedef struct gen {
    int ep;
    opts_t o;
    struct sockaddr_in addr;
    conn_t *conns; /* owned: [0, n) steady, [n, n+churn_n) churn, then publishers */
    int nconns;
    long *ch_ok;    /* owned: acknowledged publications per channel */
    long *ch_seq;   /* owned: last seq sent per channel */
    char **ch_name; /* owned */
    /* counters */
    int subscribed, started, connect_fail, upgrade_fail, server_closes, resets, reply_errors;
    long churn_cycles, churn_subscribed;
    long pings, pub_sent, pub_ok, pub_err, deliveries, dup, late_pubs;
    long recovered_pubs, recovered_ok, recovered_subs;
    unsigned long lat[LAT_BUCKETS];
    long lat_n;
    double lat_max_us;
    int notes;
    uint32_t rnd;
    int next_source;
    int pending_ch; /* channel of the next publication, chosen but not sent yet; -1 = none */
    bool measuring;
} gen_t;

static volatile sig_atomic_t g_stop;
static unsigned char g_rx[RXBUF];

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void note(gen_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Only the first problems are printed: a mass failure would flood stderr. */
static void note(gen_t *g, const char *fmt, ...)
{
    if (g->notes >= 20)
        return;
    g->notes++;
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    return q;
}

static void reserve(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    *buf = xrealloc(*buf, c);
    *cap = c;
}

static uint32_t rnd32(gen_t *g)
{
    uint32_t s = g->rnd;
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    g->rnd = s;
    return s;
}

/* --- /proc sampling */

static bool read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return true;
}

/* utime + stime of every thread of pid, and VmRSS. */
static proc_sample_t sample_pid(int pid)
{
    proc_sample_t s = {0};
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (read_file(path, buf, sizeof buf)) {
        char *p = strrchr(buf, ')'); /* comm may contain spaces */
        unsigned long ut = 0, st = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
            double tck = (double)sysconf(_SC_CLK_TCK);
            s.user_s = (double)ut / tck;
            s.sys_s = (double)st / tck;
            s.cpu_s = s.user_s + s.sys_s;
        }
    }
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (read_file(path, buf, sizeof buf)) {
        char *p = strstr(buf, "VmRSS:");
        if (p)
            s.rss_kib = strtol(p + 6, NULL, 10);
    }
    return s;
}

static proc_sample_t sample_pids(const int *pids, int n)
{
    proc_sample_t t = {0};
    for (int i = 0; i < n; i++) {
        proc_sample_t s = sample_pid(pids[i]);
        t.cpu_s += s.cpu_s;
        t.user_s += s.user_s;
        t.sys_s += s.sys_s;
        t.rss_kib += s.rss_kib;
    }
    return t;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* --- latency histogram */

static void lat_add(gen_t *g, double us)
{
    if (us < 0)
        us = 0;
    size_t i = us < 100000 ? (size_t)(us / 10) : 10000 + (size_t)((us - 100000) / 1000);
    if (i >= LAT_BUCKETS)
        i = LAT_BUCKETS - 1;
    g->lat[i]++;
    g->lat_n++;
    if (us > g->lat_max_us)
        g->lat_max_us = us;
}

static double lat_pct(const gen_t *g, double q)
{
    if (g->lat_n == 0)
        return 0;
    long want = (long)(q * (double)g->lat_n);
    long seen = 0;
    for (size_t i = 0; i < LAT_BUCKETS; i++) {
        seen += (long)g->lat[i];
        if (seen > want)
            return i < 10000 ? (double)(i * 10 + 5) : 100000.0 + (double)(i - 10000) * 1000 + 500;
    }
    return g->lat_max_us;
}

/* --- connections */

static void conn_close(gen_t *g, conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == ST_SUBSCRIBED && c->role == ROLE_SUB)
        g->subscribed--;
    c->state = ST_CLOSED;
    free(c->rx);
    free(c->tx);
    c->rx = c->tx = NULL;
    c->rx_len = c->rx_cap = c->tx_len = c->tx_cap = 0;
    c->want_out = false;
}

static void set_out(gen_t *g, conn_t *c, bool on)
{
    if (c->want_out == on || c->fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u),
                             .data.u32 = (uint32_t)(c - g->conns)};
    if (epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        note(g, "epoll_ctl: %s", strerror(errno));
        conn_close(g, c);
        return;
    }
    c->want_out = on;
}

static void flush_tx(gen_t *g, conn_t *c)
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
        g->resets++;
        note(g, "conn %d: send: %s", (int)(c - g->conns), strerror(errno));
        conn_close(g, c);
        return;
    }
    memmove(c->tx, c->tx + off, c->tx_len - off);
    c->tx_len -= off;
    set_out(g, c, c->tx_len > 0);
}

static void queue_raw(conn_t *c, const void *data, size_t len)
{
    reserve(&c->tx, &c->tx_cap, c->tx_len + len);
    memcpy(c->tx + c->tx_len, data, len);
    c->tx_len += len;
}

/* Client frames are masked (RFC 6455 §5.3); a server frame (-T) is not. */
static void queue_frame(gen_t *g, conn_t *c, unsigned opcode, const void *payload, size_t len,
                        bool masked)
{
    unsigned char hdr[14];
    size_t h = 0;
    unsigned mbit = masked ? 0x80u : 0;
    hdr[h++] = (unsigned char)(0x80u | opcode);
    if (len < 126) {
        hdr[h++] = (unsigned char)(mbit | len);
    } else if (len <= 0xffff) {
        hdr[h++] = (unsigned char)(mbit | 126u);
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = (unsigned char)(mbit | 127u);
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    unsigned char mask[4] = {0, 0, 0, 0};
    if (masked) {
        uint32_t m = rnd32(g);
        memcpy(mask, &m, 4);
        memcpy(hdr + h, mask, 4);
        h += 4;
    }
    queue_raw(c, hdr, h);
    reserve(&c->tx, &c->tx_cap, c->tx_len + len);
    const unsigned char *p = payload;
    for (size_t i = 0; i < len; i++)
        c->tx[c->tx_len + i] = p[i] ^ mask[i & 3];
    c->tx_len += len;
}

static void bind_source(gen_t *g, int fd)
{
    if (g->o.sources <= 0)
        return;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(g->next_source % g->o.sources));
    g->next_source++;
    int one = 1;
    /* Port chosen at connect() per 4-tuple, so each source address has a full port range. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0)
        note(g, "bind source: %s", strerror(errno));
}

static void start_conn(gen_t *g, conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        note(g, "socket: %s", strerror(errno));
        g->connect_fail++;
        conn_close(g, c);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->role != ROLE_PUB)
        setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    bind_source(g, c->fd);
    if (connect(c->fd, (struct sockaddr *)&g->addr, sizeof g->addr) != 0 && errno != EINPROGRESS) {
        note(g, "connect: %s", strerror(errno));
        g->connect_fail++;
        conn_close(g, c);
        return;
    }
    c->state = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(c - g->conns)};
    if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        note(g, "epoll_ctl add: %s", strerror(errno));
        g->connect_fail++;
        conn_close(g, c);
        return;
    }
    c->want_out = true;
}

static void send_upgrade(gen_t *g, conn_t *c)
{
    char req[768];
    int n;
    if (g->o.wire == WIRE_NCHAN)
        n = snprintf(req, sizeof req,
                     "GET /sub/%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     g->ch_name[c->channel], g->o.host, g->o.port);
    else
        n = snprintf(req, sizeof req,
                     "GET /connection/websocket HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     g->o.host, g->o.port,
                     g->o.wire == WIRE_PB ? "Sec-WebSocket-Protocol: centrifuge-protobuf\r\n" : "");
    c->state = ST_UPGRADING;
    queue_raw(c, req, (size_t)n);
    flush_tx(g, c);
}

static void on_connected(gen_t *g, conn_t *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) {
        note(g, "conn %d: connect: %s", (int)(c - g->conns), strerror(err));
        g->connect_fail++;
        conn_close(g, c);
        return;
    }
    if (c->role == ROLE_PUB) {
        c->state = ST_PUB_IDLE;
        set_out(g, c, false);
        return;
    }
    send_upgrade(g, c);
}

/* --- protobuf helpers (just enough of the wire format) */

static size_t pb_put_varint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/* Returns bytes consumed, 0 on truncated/overlong input. */
static size_t pb_get_varint(const unsigned char *p, size_t len, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

static void send_pb_command(gen_t *g, conn_t *c, const unsigned char *cmd, size_t len)
{
    unsigned char buf[1024];
    size_t h = pb_put_varint(buf, len);
    memcpy(buf + h, cmd, len);
    queue_frame(g, c, 0x2, buf, h + len, true);
}

static void send_connect(gen_t *g, conn_t *c)
{
    if (g->o.wire == WIRE_PB) {
        static const unsigned char cmd[] = {0x08, 0x01, 0x22, 0x00}; /* id 1, connect {} */
        send_pb_command(g, c, cmd, sizeof cmd);
    } else {
        static const char cmd[] = "{\"connect\":{},\"id\":1}";
        queue_frame(g, c, 0x1, cmd, sizeof cmd - 1, true);
    }
    c->state = ST_CONNECT_SENT;
}

static void send_subscribe(gen_t *g, conn_t *c)
{
    const char *ch = g->ch_name[c->channel];
    if (g->o.wire == WIRE_PB) {
        unsigned char sub[600], cmd[700];
        size_t cl = strlen(ch), s = 0, m = 0;
        sub[s++] = 0x0a; /* SubscribeRequest.channel */
        s += pb_put_varint(sub + s, cl);
        memcpy(sub + s, ch, cl);
        s += cl;
        cmd[m++] = 0x08; /* Command.id = 2 */
        cmd[m++] = 0x02;
        cmd[m++] = 0x2a; /* Command.subscribe */
        m += pb_put_varint(cmd + m, s);
        memcpy(cmd + m, sub, s);
        m += s;
        send_pb_command(g, c, cmd, m);
    } else {
        char cmd[512];
        int n;
        if (c->recovering)
            n = snprintf(cmd, sizeof cmd,
                         "{\"subscribe\":{\"channel\":\"%s\",\"recoverable\":true,\"recover\":true,"
                         "\"epoch\":\"%s\",\"offset\":%llu},\"id\":2}",
                         ch, c->epoch, c->offset);
        else if (g->o.recovery)
            n = snprintf(cmd, sizeof cmd,
                         "{\"subscribe\":{\"channel\":\"%s\",\"recoverable\":true},\"id\":2}", ch);
        else
            n = snprintf(cmd, sizeof cmd, "{\"subscribe\":{\"channel\":\"%s\"},\"id\":2}", ch);
        queue_frame(g, c, 0x1, cmd, (size_t)n, true);
    }
    c->state = ST_SUBSCRIBE_SENT;
}

static void mark_subscribed(gen_t *g, conn_t *c)
{
    c->state = ST_SUBSCRIBED;
    if (c->role == ROLE_SUB) {
        g->subscribed++;
    } else {
        g->churn_subscribed++;
        c->close_at = mono_s() + g->o.churn_ms / 1000.0;
    }
}

/* --- deliveries */

/* Every publication payload is {"ts":<µs>,"seq":<n>}, carried verbatim by all three wires (a
 * Protobuf Publication.data holds the JSON bytes), so one scan finds every delivery in a
 * frame, batched or not. */
static void scan_deliveries(gen_t *g, conn_t *c, const unsigned char *p, size_t len, double rx_us)
{
    const unsigned char *end = p + len;
    while (p < end) {
        const unsigned char *q = memmem(p, (size_t)(end - p), "\"ts\":", 5);
        if (!q)
            break;
        q += 5;
        char *e;
        long long ts = strtoll((const char *)q, &e, 10);
        const unsigned char *s = memmem(e, (size_t)(end - (const unsigned char *)e), "\"seq\":", 6);
        long seq = s ? strtol((const char *)s + 6, NULL, 10) : 0;
        p = (const unsigned char *)e;
        c->delivered++;
        if (c->role != ROLE_SUB)
            continue;
        g->deliveries++;
        if (seq <= c->last_seq)
            g->dup++;
        else
            c->last_seq = seq;
        if (g->measuring && rx_us > 0)
            lat_add(g, rx_us - (double)ts);
    }
}

static int count_str(const unsigned char *p, size_t len, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    const unsigned char *end = p + len;
    while (p < end) {
        const unsigned char *q = memmem(p, (size_t)(end - p), needle, nl);
        if (!q)
            break;
        n++;
        p = q + nl;
    }
    return n;
}

static bool json_has_id(const char *line, size_t len, int id)
{
    char pat[16];
    int pl = snprintf(pat, sizeof pat, "\"id\":%d", id);
    const char *end = line + len;
    for (const char *p = line; p + pl < end;) {
        p = memmem(p, (size_t)(end - p), pat, (size_t)pl);
        if (!p || p + pl >= end)
            return false;
        if (p[pl] == ',' || p[pl] == '}')
            return true;
        p += pl;
    }
    return false;
}

static void remember_position(conn_t *c, const char *line, size_t len)
{
    const char *e = memmem(line, len, "\"epoch\":\"", 9);
    if (e) {
        e += 9;
        size_t i = 0;
        while (e + i < line + len && e[i] != '"' && i + 1 < EPOCH_MAX) {
            c->epoch[i] = e[i];
            i++;
        }
        c->epoch[i] = '\0';
    }
    const char *o = memmem(line, len, "\"offset\":", 9);
    c->offset = o ? strtoull(o + 9, NULL, 10) : 0;
}

static void on_subscribe_reply(gen_t *g, conn_t *c, const unsigned char *p, size_t len)
{
    if (c->recovering) {
        int got = count_str(p, len, "\"ts\":");
        g->recovered_pubs += got;
        g->recovered_subs++;
        if (memmem(p, len, "\"recovered\":true", 16) && got == g->o.recover_m)
            g->recovered_ok++;
        c->recovering = false;
    } else if (g->o.recovery) {
        remember_position(c, (const char *)p, len);
    }
    mark_subscribed(g, c);
}

static void on_json_line(gen_t *g, conn_t *c, const unsigned char *line, size_t len, double rx_us)
{
    if (len == 2 && line[0] == '{' && line[1] == '}') {
        g->pings++;
        queue_frame(g, c, 0x1, "{}", 2, true);
        return;
    }
    if (len > 8 && memcmp(line, "{\"push\":", 8) == 0) {
        scan_deliveries(g, c, line, len, rx_us);
        return;
    }
    bool is_err = memmem(line, len, "\"error\":", 8) != NULL;
    if (c->state == ST_CONNECT_SENT && json_has_id((const char *)line, len, 1)) {
        if (is_err) {
            g->reply_errors++;
            note(g, "connect failed: %.*s", (int)len, line);
            conn_close(g, c);
            return;
        }
        send_subscribe(g, c);
        return;
    }
    if (c->state == ST_SUBSCRIBE_SENT && json_has_id((const char *)line, len, 2)) {
        if (is_err) {
            g->reply_errors++;
            note(g, "subscribe failed: %.*s", (int)len, line);
            conn_close(g, c);
            return;
        }
        on_subscribe_reply(g, c, line, len);
    }
}

/* One protobuf Reply: id#1, error#2, push#4; an empty Reply is a ping. */
static void on_pb_reply(gen_t *g, conn_t *c, const unsigned char *p, size_t len, double rx_us)
{
    if (len == 0) {
        static const unsigned char pong[] = {0x00};
        g->pings++;
        queue_frame(g, c, 0x2, pong, 1, true);
        return;
    }
    uint64_t id = 0;
    bool err = false, push = false;
    size_t off = 0;
    while (off < len) {
        uint64_t key, v;
        size_t k = pb_get_varint(p + off, len - off, &key);
        if (!k)
            break;
        off += k;
        unsigned wt = (unsigned)(key & 7);
        if (wt == 0) {
            k = pb_get_varint(p + off, len - off, &v);
            if (!k)
                break;
            off += k;
            if ((key >> 3) == 1)
                id = v;
        } else if (wt == 2) {
            k = pb_get_varint(p + off, len - off, &v);
            if (!k || v > len - off - k)
                break;
            off += k + (size_t)v;
            if ((key >> 3) == 2)
                err = true;
            if ((key >> 3) == 4)
                push = true;
        } else {
            break; /* no fixed-width fields at the top level of a Reply */
        }
    }
    if (push) {
        scan_deliveries(g, c, p, len, rx_us);
        return;
    }
    if (err && (id == 1 || id == 2)) {
        g->reply_errors++;
        note(g, "pb reply %llu is an error", (unsigned long long)id);
        conn_close(g, c);
        return;
    }
    if (id == 1 && c->state == ST_CONNECT_SENT)
        send_subscribe(g, c);
    else if (id == 2 && c->state == ST_SUBSCRIBE_SENT)
        mark_subscribed(g, c);
}

static void on_message(gen_t *g, conn_t *c, const unsigned char *p, size_t len, double rx_us)
{
    if (g->o.wire == WIRE_NCHAN) {
        scan_deliveries(g, c, p, len, rx_us);
        return;
    }
    if (g->o.wire == WIRE_PB) {
        size_t off = 0;
        while (off < len && c->state != ST_CLOSED) {
            uint64_t ml;
            size_t k = pb_get_varint(p + off, len - off, &ml);
            if (!k || ml > len - off - k) {
                note(g, "bad protobuf frame");
                conn_close(g, c);
                return;
            }
            on_pb_reply(g, c, p + off + k, (size_t)ml, rx_us);
            off += k + (size_t)ml;
        }
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len && c->state != ST_CLOSED; i++) {
        if (i == len || p[i] == '\n') {
            if (i > start)
                on_json_line(g, c, p + start, i - start, rx_us);
            start = i + 1;
        }
    }
}

/* Parses complete frames in [p, p+len). Returns bytes consumed, or -1 if c was closed.
 * Fragmented messages are not expected from either server and are treated as an error. */
static long parse_frames(gen_t *g, conn_t *c, const unsigned char *p, size_t len, double rx_us)
{
    size_t off = 0;
    while (c->state != ST_CLOSED) {
        size_t avail = len - off;
        const unsigned char *h = p + off;
        if (avail < 2)
            break;
        bool fin = h[0] & 0x80u;
        unsigned op = h[0] & 0x0fu;
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
        if ((h[1] & 0x80u) || plen > MAX_FRAME || (!fin && op < 8)) {
            note(g, "conn %d: unexpected frame (op=%u fin=%d len=%llu)", (int)(c - g->conns), op,
                 fin, (unsigned long long)plen);
            conn_close(g, c);
            return -1;
        }
        if (avail < hl + plen)
            break;
        const unsigned char *pl = h + hl;
        size_t n = (size_t)plen;
        off += hl + n;
        switch (op) {
        case 0x1:
        case 0x2:
            on_message(g, c, pl, n, rx_us);
            break;
        case 0x8:
            g->server_closes++;
            note(g, "conn %d: server closed: code=%u %.*s", (int)(c - g->conns),
                 n >= 2 ? ((unsigned)pl[0] << 8) | pl[1] : 0, n > 2 ? (int)(n - 2) : 0,
                 n > 2 ? (const char *)pl + 2 : "");
            conn_close(g, c);
            return -1;
        case 0x9:
            queue_frame(g, c, 0xA, pl, n, true);
            break;
        default:
            break;
        }
    }
    return c->state == ST_CLOSED ? -1 : (long)off;
}

/* Returns header length when a full 101 is in [p, p+len), 0 if incomplete, -1 on refusal. */
static long parse_upgrade(gen_t *g, conn_t *c, const unsigned char *p, size_t len)
{
    const unsigned char *end = memmem(p, len, "\r\n\r\n", 4);
    if (!end)
        return len > 8192 ? -1 : 0;
    size_t hl = (size_t)(end - p) + 4;
    if (len < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0 ||
        !memmem(p, hl, WS_ACCEPT, strlen(WS_ACCEPT))) {
        const unsigned char *eol = memmem(p, hl, "\r\n", 2);
        note(g, "conn %d: upgrade refused: %.*s", (int)(c - g->conns), (int)(eol ? eol - p : 0),
             (const char *)p);
        return -1;
    }
    return (long)hl;
}

/* --- publisher */

static void on_pub_response(gen_t *g, conn_t *c, int status, const unsigned char *body, size_t blen)
{
    bool ok = status >= 200 && status < 300 && !memmem(body, blen, "\"error\"", 7);
    if (ok) {
        g->pub_ok++;
        g->ch_ok[c->pub_fifo[0]]++;
    } else {
        g->pub_err++;
        note(g, "publish: status %d %.*s", status, (int)(blen > 200 ? 200 : blen), body);
    }
    c->inflight--;
    memmove(c->pub_fifo, c->pub_fifo + 1, (size_t)c->inflight * sizeof *c->pub_fifo);
}

/* Parses complete HTTP responses (Content-Length or an empty body). Returns bytes used or -1. */
static long parse_http(gen_t *g, conn_t *c, const unsigned char *p, size_t len)
{
    size_t off = 0;
    for (;;) {
        const unsigned char *h = p + off;
        size_t avail = len - off;
        const unsigned char *end = memmem(h, avail, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t hl = (size_t)(end - h) + 4;
        int status = 0;
        if (avail >= 12)
            status = atoi((const char *)h + 9);
        size_t cl = 0;
        const unsigned char *clh = memmem(h, hl, "\r\nContent-Length:", 17);
        if (!clh)
            clh = memmem(h, hl, "\r\ncontent-length:", 17);
        if (clh)
            cl = strtoul((const char *)clh + 17, NULL, 10);
        else if (memmem(h, hl, "chunked", 7)) {
            note(g, "publisher: chunked responses are not supported");
            conn_close(g, c);
            return -1;
        }
        if (avail < hl + cl)
            break;
        if (c->inflight > 0)
            on_pub_response(g, c, status, h + hl, cl);
        off += hl + cl;
    }
    return (long)off;
}

/* Channel ch is always published on connection ch % K, pipelined: HTTP/1.1 answers in order
 * and both servers handle a connection's requests in order, so each channel's publications
 * stay ordered and a subscriber that sees a seq go backwards has a real duplicate or
 * reordering. */
static void publish_one(gen_t *g, conn_t *c, int ch)
{
    long seq = ++g->ch_seq[ch];
    char body[256], req[1024];
    int bl = snprintf(body, sizeof body, "{\"ts\":%lld,\"seq\":%ld}", real_us(), seq);
    int n;
    if (g->o.wire == WIRE_NCHAN) {
        n = snprintf(req, sizeof req,
                     "POST /pub/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     g->ch_name[ch], g->o.host, bl, body);
    } else {
        char api[384];
        int al =
            snprintf(api, sizeof api, "{\"channel\":\"%s\",\"data\":%s}", g->ch_name[ch], body);
        n = snprintf(req, sizeof req,
                     "POST /api/publish HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     g->o.host, g->o.api_key ? g->o.api_key : "", al, api);
    }
    c->pub_fifo[c->inflight++] = ch;
    g->pub_sent++;
    queue_raw(c, req, (size_t)n);
    flush_tx(g, c);
}

static int next_channel(gen_t *g)
{
    if (g->pending_ch < 0)
        g->pending_ch = g->o.pub_random ? (int)(rnd32(g) % (uint32_t)g->o.channels)
                                        : (int)(g->pub_sent % g->o.channels);
    return g->pending_ch;
}

/* Sends the publications due by now while their connection is idle; the rest wait (their
 * ts is taken when they are sent, so waiting does not show up as latency). */
static void publish_due(gen_t *g, double t_start, double now, long limit)
{
    long due = (long)((now - t_start) * g->o.pub_rate) + 1;
    if (due > limit)
        due = limit;
    int first = g->o.n + g->o.churn_n;
    while (g->pub_sent < due) {
        int ch = next_channel(g);
        conn_t *c = &g->conns[first + ch % g->o.pub_conns];
        if (c->state != ST_PUB_IDLE || c->inflight >= MAX_INFLIGHT)
            break;
        g->pending_ch = -1;
        publish_one(g, c, ch);
    }
    if (due - g->pub_sent > g->late_pubs)
        g->late_pubs = due - g->pub_sent;
}

/* --- reading */

static void handle_bytes(gen_t *g, conn_t *c, const unsigned char *p, size_t len, double rx_us)
{
    long used;
    if (c->role == ROLE_PUB) {
        used = parse_http(g, c, p, len);
    } else if (c->state == ST_UPGRADING) {
        long hl = parse_upgrade(g, c, p, len);
        if (hl < 0) {
            g->upgrade_fail++;
            conn_close(g, c);
            return;
        }
        used = hl;
        if (hl > 0) {
            if (g->o.wire == WIRE_NCHAN)
                mark_subscribed(g, c);
            else
                send_connect(g, c);
            long more = parse_frames(g, c, p + hl, len - (size_t)hl, rx_us);
            used = more < 0 ? -1 : hl + more;
        }
    } else {
        used = parse_frames(g, c, p, len, rx_us);
    }
    if (used < 0 || c->state == ST_CLOSED)
        return;
    size_t rest = len - (size_t)used;
    if (p == c->rx) {
        memmove(c->rx, c->rx + used, rest);
        c->rx_len = rest;
    } else if (rest > 0) {
        reserve(&c->rx, &c->rx_cap, rest);
        memcpy(c->rx, p + used, rest);
        c->rx_len = rest;
    }
    if (c->rx_len == 0 && c->rx_cap > 0) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
    if (c->tx_len > 0)
        flush_tx(g, c);
}

/* One recvmsg per readiness event: level-triggered epoll reports the rest. */
static void on_readable(gen_t *g, conn_t *c)
{
    char cbuf[CMSG_SPACE(sizeof(struct timespec)) * 2];
    struct iovec iov = {.iov_base = g_rx, .iov_len = RXBUF};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (c->role != ROLE_PUB) {
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
    }
    ssize_t r = recvmsg(c->fd, &mh, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (r <= 0) {
        g->resets++;
        note(g, "conn %d: %s in state %d", (int)(c - g->conns), r == 0 ? "EOF" : strerror(errno),
             (int)c->state);
        conn_close(g, c);
        return;
    }
    double rx_us = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            rx_us = (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
        }
    }
    if (c->rx_len == 0) {
        handle_bytes(g, c, g_rx, (size_t)r, rx_us);
    } else {
        reserve(&c->rx, &c->rx_cap, c->rx_len + (size_t)r);
        memcpy(c->rx + c->rx_len, g_rx, (size_t)r);
        c->rx_len += (size_t)r;
        handle_bytes(g, c, c->rx, c->rx_len, rx_us);
    }
}

static void on_event(gen_t *g, conn_t *c, uint32_t events)
{
    if (c->state == ST_CONNECTING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        on_connected(g, c);
        if (c->state == ST_CLOSED)
            return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        on_readable(g, c);
        if (c->state == ST_CLOSED)
            return;
    }
    if ((events & EPOLLOUT) && c->tx_len > 0)
        flush_tx(g, c);
    else if ((events & EPOLLOUT) && c->state != ST_CONNECTING)
        set_out(g, c, false);
}

static int poll_once(gen_t *g, int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(g->ep, evs, 512, timeout_ms);
    if (n < 0 && errno != EINTR) {
        perror("epoll_wait");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        conn_t *c = &g->conns[evs[i].data.u32];
        if (c->state != ST_CLOSED && c->fd >= 0)
            on_event(g, c, evs[i].events);
    }
    return 0;
}

/* --- churn: closes expired churn connections and reopens closed slots, paced by rate */

static void churn_tick(gen_t *g, double now, double *next_start)
{
    for (int i = g->o.n; i < g->o.n + g->o.churn_n; i++) {
        conn_t *c = &g->conns[i];
        if (c->state == ST_SUBSCRIBED && c->close_at > 0 && now >= c->close_at) {
            conn_close(g, c);
            g->churn_cycles++;
        }
    }
    double step = 1.0 / g->o.rate;
    for (int i = g->o.n; i < g->o.n + g->o.churn_n && *next_start <= now; i++) {
        conn_t *c = &g->conns[i];
        if (c->state != ST_CLOSED && c->state != ST_IDLE)
            continue;
        c->close_at = 0;
        c->channel = (int)(rnd32(g) % (uint32_t)g->o.channels);
        start_conn(g, c);
        g->started++;
        *next_start += step;
    }
    if (*next_start < now - 0.1) /* no free slot: do not bank the time */
        *next_start = now - 0.1;
}

/* --- trivial sender (-T): measures what this generator absorbs */

static int run_trivial(gen_t *g)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&g->addr, sizeof g->addr) != 0 || listen(lfd, 4096) != 0) {
        perror("trivial: bind/listen");
        return 2;
    }
    int cap = MAX_CONNS;
    int *fds = calloc((size_t)cap, sizeof *fds);
    int nfds = 0, up = 0;
    static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: " WS_ACCEPT "\r\n\r\n";
    fprintf(stderr, "trivial: listening on %s:%d, %d frames/s to every connection\n", g->o.host,
            g->o.port, g->o.trivial_fanout_rate);
    double t0 = mono_s(), last_report = t0;
    long frames = 0, seq = 0, sent_bytes = 0;
    while (!g_stop) {
        int a;
        while (nfds < cap && (a = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
            setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            fds[nfds++] = a;
        }
        /* Upgrade: read whatever the client sent and answer once; good enough for the
         * generator's nchan wire, which sends one request and then nothing. */
        for (int i = up; i < nfds; i++) {
            char buf[2048];
            ssize_t r = recv(fds[i], buf, sizeof buf, 0);
            if (r > 0 && memmem(buf, (size_t)r, "\r\n\r\n", 4)) {
                if (send(fds[i], resp, sizeof resp - 1, MSG_NOSIGNAL) < 0)
                    perror("trivial: send");
                int t = fds[up];
                fds[up] = fds[i];
                fds[i] = t;
                up++;
            }
        }
        double now = mono_s();
        long due = (long)((now - t0) * g->o.trivial_fanout_rate);
        while (seq < due && up > 0) {
            char body[96];
            unsigned char frame[128];
            int bl = snprintf(body, sizeof body, "{\"ts\":%lld,\"seq\":%ld}", real_us(), ++seq);
            frame[0] = 0x81;
            frame[1] = (unsigned char)bl;
            memcpy(frame + 2, body, (size_t)bl);
            for (int i = 0; i < up; i++) {
                ssize_t w = send(fds[i], frame, (size_t)bl + 2, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w == bl + 2) {
                    frames++;
                    sent_bytes += w;
                }
            }
        }
        if (now - last_report >= 1.0) {
            fprintf(stderr, "trivial: t=%.0fs conns=%d upgraded=%d frames=%ld\n", now - t0, nfds,
                    up, frames);
            last_report = now;
        }
        usleep(500);
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    free(fds);
    close(lfd);
    printf("trivial_frames=%ld\ntrivial_bytes=%ld\n", frames, sent_bytes);
    return 0;
}

/* --- main phases */

static void progress(gen_t *g, const char *tag, double t0)
{
    fprintf(stderr,
            "%s t=%.1fs started=%d subscribed=%d/%d churn_cycles=%ld pub_sent=%ld pub_ok=%ld "
            "deliveries=%ld connect_fail=%d upgrade_fail=%d server_closes=%d resets=%d\n",
            tag, mono_s() - t0, g->started, g->subscribed, g->o.n, g->churn_cycles, g->pub_sent,
            g->pub_ok, g->deliveries, g->connect_fail, g->upgrade_fail, g->server_closes,
            g->resets);
}

/* Opens steady subscribers paced at -r until all are subscribed, or fails by deadline. */
static bool open_subscribers(gen_t *g, double t0, double deadline)
{
    double next_progress = mono_s() + 1;
    int next = 0;
    double start = mono_s();
    while (!g_stop) {
        double now = mono_s();
        long due = (long)((now - start) * g->o.rate) + 1;
        while (next < g->o.n && next < due) {
            conn_t *c = &g->conns[next++];
            if (c->state == ST_IDLE || c->state == ST_CLOSED) {
                start_conn(g, c);
                g->started++;
            }
        }
        if (g->subscribed == g->o.n)
            return true;
        if (now > deadline) {
            progress(g, "TIMEOUT", t0);
            return false;
        }
        if (now >= next_progress) {
            progress(g, "setup", t0);
            next_progress += 1;
        }
        if (poll_once(g, 5) != 0)
            return false;
    }
    return false;
}

static void open_publishers(gen_t *g, double deadline)
{
    int first = g->o.n + g->o.churn_n;
    for (int i = 0; i < g->o.pub_conns; i++)
        start_conn(g, &g->conns[first + i]);
    while (!g_stop && mono_s() < deadline) {
        int ready = 0;
        for (int i = 0; i < g->o.pub_conns; i++)
            ready += g->conns[first + i].state == ST_PUB_IDLE;
        if (ready == g->o.pub_conns)
            return;
        poll_once(g, 5);
    }
}

static bool pubs_idle(gen_t *g)
{
    int first = g->o.n + g->o.churn_n;
    for (int i = 0; i < g->o.pub_conns; i++)
        if (g->conns[first + i].inflight > 0)
            return false;
    return true;
}

static long expected_deliveries(gen_t *g)
{
    long e = 0;
    for (int i = 0; i < g->o.n; i++)
        e += g->ch_ok[g->conns[i].channel];
    return e;
}

/* Publishes `total` publications at pub_rate (or for dur_s when total < 0), keeps churn going,
 * then drains. */
static void run_load(gen_t *g, double t0, long total)
{
    double start = mono_s(), next_progress = start + 1, churn_next = start;
    double pub_end = total < 0 ? start + g->o.dur_s : start + MAX_RUN_S;
    long limit = total < 0 ? (long)(g->o.dur_s * g->o.pub_rate) : total;
    while (!g_stop) {
        double now = mono_s();
        if (now >= pub_end || g->pub_sent >= limit)
            break;
        if (g->o.pub_rate > 0)
            publish_due(g, start, now, limit);
        if (g->o.churn_n > 0)
            churn_tick(g, now, &churn_next);
        if (now >= next_progress) {
            progress(g, "load", t0);
            next_progress += 1;
        }
        poll_once(g, 1);
    }
    /* Drain: until every expected delivery arrived, or nothing arrived for a second, or
     * drain_s passed (publisher answers may extend it by up to 5 s). */
    double now = mono_s(), drain_end = now + g->o.drain_s, last_progress = now;
    long last_deliveries = g->deliveries, expected = expected_deliveries(g);
    while (!g_stop) {
        now = mono_s();
        if (g->deliveries != last_deliveries) {
            last_deliveries = g->deliveries;
            last_progress = now;
        }
        bool pubs_done = pubs_idle(g);
        if (pubs_done)
            expected = expected_deliveries(g);
        if (pubs_done && !g->o.recovery && g->o.churn_n == 0 &&
            (g->deliveries >= expected || now - last_progress > 1.0))
            break;
        if (now >= drain_end && (pubs_done || now >= drain_end + 5))
            break;
        if (g->o.churn_n > 0)
            churn_tick(g, now, &churn_next);
        poll_once(g, 5);
    }
}

static void hold_idle(gen_t *g, double t0, double secs)
{
    double end = mono_s() + secs, next_progress = mono_s() + 1;
    while (!g_stop && mono_s() < end) {
        if (mono_s() >= next_progress) {
            progress(g, "hold", t0);
            next_progress += 1;
        }
        poll_once(g, 20);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_loadgen -p PORT [options]\n"
            "  -a ADDR   server IPv4 [127.0.0.1]        -w WIRE  json|pb|nchan [json]\n"
            "  -n N      steady subscribers 0..%d       -r RATE  connects/s [2000]\n"
            "  -c CH     channels (sub i -> CH i%%CH) [1] -x PFX   channel prefix [bench:]\n"
            "  -R RATE   publications/s [0]             -k K     publisher connections [4]\n"
            "  -Z        random channel per publication (default round robin)\n"
            "  -K KEY    rotor X-API-Key                -d S     publishing seconds [10]\n"
            "  -D S      drain seconds [2]              -t S     idle hold without -R [5]\n"
            "  -P PIDS   server pids (comma list)       -Q PIDS  auxiliary pids (redis)\n"
            "  -s N      rotate N source addresses 127.0.0.2.. [8]\n"
            "  -L MS -N SLOTS  churn: SLOTS extra connections living MS each, paced by -r\n"
            "  -y -M M   recovery: reconnect all with recover after M pubs per channel\n"
            "  -T FPS    trivial sender: listen on ADDR:PORT, FPS frames/s to each connection\n",
            MAX_CONNS);
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

static double dbl_arg(const char *s, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        usage();
    return v;
}

static int pid_list(const char *s, int *out)
{
    int n = 0;
    char *dup = strdup(s), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t && n < MAX_PIDS; t = strtok_r(NULL, ",", &save))
        out[n++] = int_arg(t, 1, 1 << 30);
    free(dup);
    return n;
}

static void parse_opts(gen_t *g, int argc, char **argv)
{
    opts_t *o = &g->o;
    *o = (opts_t){.host = "127.0.0.1",
                  .rate = 2000,
                  .channels = 1,
                  .prefix = "bench:",
                  .pub_conns = 4,
                  .dur_s = 10,
                  .drain_s = 2,
                  .hold_s = 5,
                  .sources = 8,
                  .recover_m = 100};
    int opt;
    while ((opt = getopt(argc, argv, "a:p:w:n:r:c:x:R:k:ZK:d:D:t:P:Q:s:L:N:yM:T:")) != -1) {
        switch (opt) {
        case 'a':
            o->host = optarg;
            break;
        case 'p':
            o->port = int_arg(optarg, 1, 65535);
            break;
        case 'w':
            if (strcmp(optarg, "json") == 0)
                o->wire = WIRE_JSON;
            else if (strcmp(optarg, "pb") == 0)
                o->wire = WIRE_PB;
            else if (strcmp(optarg, "nchan") == 0)
                o->wire = WIRE_NCHAN;
            else
                usage();
            break;
        case 'n':
            o->n = int_arg(optarg, 0, MAX_CONNS);
            break;
        case 'r':
            o->rate = int_arg(optarg, 1, 100000);
            break;
        case 'c':
            o->channels = int_arg(optarg, 1, MAX_CHANNELS);
            break;
        case 'x':
            o->prefix = optarg;
            break;
        case 'R':
            o->pub_rate = int_arg(optarg, 0, 100000);
            break;
        case 'k':
            o->pub_conns = int_arg(optarg, 1, MAX_PUBCONNS);
            break;
        case 'Z':
            o->pub_random = true;
            break;
        case 'K':
            o->api_key = optarg;
            break;
        case 'd':
            o->dur_s = dbl_arg(optarg, 0, MAX_RUN_S);
            break;
        case 'D':
            o->drain_s = dbl_arg(optarg, 0, 60);
            break;
        case 't':
            o->hold_s = dbl_arg(optarg, 0, MAX_RUN_S);
            break;
        case 'P':
            o->npids = pid_list(optarg, o->pids);
            break;
        case 'Q':
            o->naux = pid_list(optarg, o->aux_pids);
            break;
        case 's':
            o->sources = int_arg(optarg, 0, MAX_SOURCES);
            break;
        case 'L':
            o->churn_ms = int_arg(optarg, 1, 600000);
            break;
        case 'N':
            o->churn_n = int_arg(optarg, 0, MAX_CONNS);
            break;
        case 'y':
            o->recovery = true;
            break;
        case 'M':
            o->recover_m = int_arg(optarg, 1, 10000);
            break;
        case 'T':
            o->trivial = true;
            o->trivial_fanout_rate = int_arg(optarg, 1, 100000);
            break;
        default:
            usage();
        }
    }
    if (o->port == 0 || optind != argc || o->n + o->churn_n > MAX_CONNS)
        usage();
    if ((o->churn_n > 0) != (o->churn_ms > 0))
        usage();
    if (o->recovery && o->wire != WIRE_JSON) {
        fprintf(stderr, "loadgen: -y works with -w json only\n");
        exit(2);
    }
}

static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)need + 32) {
        fprintf(stderr, "loadgen: open files limit %llu is too low for %d connections\n",
                (unsigned long long)rl.rlim_cur, need);
        exit(2);
    }
}

static void setup(gen_t *g)
{
    g->addr.sin_family = AF_INET;
    g->addr.sin_port = htons((uint16_t)g->o.port);
    if (inet_pton(AF_INET, g->o.host, &g->addr.sin_addr) != 1)
        usage();
    g->nconns = g->o.n + g->o.churn_n + g->o.pub_conns;
    raise_nofile(g->nconns);
    g->conns = calloc((size_t)g->nconns, sizeof *g->conns);
    g->ch_ok = calloc((size_t)g->o.channels, sizeof *g->ch_ok);
    g->ch_seq = calloc((size_t)g->o.channels, sizeof *g->ch_seq);
    g->ch_name = calloc((size_t)g->o.channels, sizeof *g->ch_name);
    if (!g->conns || !g->ch_ok || !g->ch_seq || !g->ch_name)
        exit(2);
    for (int i = 0; i < g->o.channels; i++) {
        size_t l = strlen(g->o.prefix) + 12;
        g->ch_name[i] = xrealloc(NULL, l);
        snprintf(g->ch_name[i], l, "%s%d", g->o.prefix, i);
    }
    for (int i = 0; i < g->nconns; i++) {
        conn_t *c = &g->conns[i];
        c->fd = -1;
        c->role = i < g->o.n ? ROLE_SUB : i < g->o.n + g->o.churn_n ? ROLE_CHURN : ROLE_PUB;
        c->channel = i % g->o.channels;
        if (c->role == ROLE_PUB)
            c->pub_fifo = xrealloc(NULL, MAX_INFLIGHT * sizeof *c->pub_fifo);
    }
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    if (g->ep < 0) {
        perror("epoll_create1");
        exit(2);
    }
}

/* Recovery: all steady subscribers are subscribed with a position; close them, publish M per
 * channel, reopen them all at once with recover, and time it. */
static double run_recovery(gen_t *g, double t0, proc_sample_t *cpu0)
{
    for (int i = 0; i < g->o.n; i++)
        conn_close(g, &g->conns[i]);
    g->subscribed = 0;
    hold_idle(g, t0, 1.0); /* let the server see every close */
    double d = g->o.drain_s;
    g->o.drain_s = 0.5;
    run_load(g, t0, (long)g->o.channels * g->o.recover_m);
    g->o.drain_s = d;
    for (int i = 0; i < g->o.n; i++) {
        conn_t *c = &g->conns[i];
        c->recovering = true;
        c->state = ST_IDLE;
    }
    g->started = 0;
    *cpu0 = sample_pids(g->o.pids, g->o.npids);
    double start = mono_s();
    bool ok = open_subscribers(g, t0, start + 60);
    double secs = mono_s() - start;
    if (!ok)
        fprintf(stderr, "loadgen: recovery did not complete\n");
    return secs;
}

int main(int argc, char **argv)
{
    static gen_t gen;
    gen_t *g = &gen;
    g->rnd = 2463534242u;
    g->pending_ch = -1;
    parse_opts(g, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    setup(g);
    if (g->o.trivial)
        return run_trivial(g);

    double t0 = mono_s();
    proc_sample_t base = sample_pids(g->o.pids, g->o.npids);
    bool ok = open_subscribers(g, t0, t0 + (double)g->o.n / g->o.rate + 60);
    double setup_s = mono_s() - t0;
    if (ok)
        fprintf(stderr, "READY subscribed=%d in %.2fs\n", g->subscribed, setup_s);
    if (ok && g->o.pub_rate > 0)
        open_publishers(g, mono_s() + 5);
    hold_idle(g, t0, 1.0); /* let the server settle before the loaded sample */

    proc_sample_t ready = sample_pids(g->o.pids, g->o.npids);
    proc_sample_t aux0 = sample_pids(g->o.aux_pids, g->o.naux);
    double self0 = self_cpu_s();
    double w0 = mono_s();
    double recovery_s = 0;
    proc_sample_t rec_cpu0 = {0};
    g->measuring = true;
    long deliveries0 = g->deliveries;
    if (!ok) {
        /* nothing to measure */
    } else if (g->o.recovery) {
        recovery_s = run_recovery(g, t0, &rec_cpu0);
        ok = g->subscribed == g->o.n;
    } else if (g->o.pub_rate > 0) {
        run_load(g, t0, -1);
    } else {
        hold_idle(g, t0, g->o.hold_s);
    }
    double window_s = mono_s() - w0;
    proc_sample_t end = sample_pids(g->o.pids, g->o.npids);
    proc_sample_t aux1 = sample_pids(g->o.aux_pids, g->o.naux);
    double self_s = self_cpu_s() - self0;
    progress(g, "end", t0);

    long expected = g->o.recovery ? 0 : expected_deliveries(g);
    long got = g->deliveries - deliveries0;
    int stayed = g->subscribed;
    double srv_cpu = end.cpu_s - ready.cpu_s;
    printf("wire=%s\n", g->o.wire == WIRE_JSON ? "json" : g->o.wire == WIRE_PB ? "pb" : "nchan");
    printf("subs=%d\nsubscribed=%d\nsetup_s=%.2f\n", g->o.n, stayed, setup_s);
    printf("connect_fail=%d\nupgrade_fail=%d\nserver_closes=%d\nresets=%d\nreply_errors=%d\n",
           g->connect_fail, g->upgrade_fail, g->server_closes, g->resets, g->reply_errors);
    printf("window_s=%.2f\n", window_s);
    printf("rss_base_kib=%ld\nrss_ready_kib=%ld\nrss_end_kib=%ld\n", base.rss_kib, ready.rss_kib,
           end.rss_kib);
    if (g->o.n > 0)
        printf("rss_per_conn_b=%.0f\n", (double)(ready.rss_kib - base.rss_kib) * 1024.0 / g->o.n);
    printf("srv_cpu_s=%.3f\naux_cpu_s=%.3f\nself_cpu_s=%.3f\n", srv_cpu, aux1.cpu_s - aux0.cpu_s,
           self_s);
    printf("pub_sent=%ld\npub_ok=%ld\npub_err=%ld\npub_late_max=%ld\n", g->pub_sent, g->pub_ok,
           g->pub_err, g->late_pubs);
    printf("deliveries=%ld\nexpected=%ld\nlost=%ld\ndup=%ld\n", got, expected,
           expected > got ? expected - got : 0, g->dup);
    printf("deliv_per_s=%.0f\n", window_s > 0 ? (double)got / window_s : 0);
    printf("srv_user_s=%.3f\nsrv_sys_s=%.3f\n", end.user_s - ready.user_s, end.sys_s - ready.sys_s);
    if (got > 0) {
        printf("cpu_per_M_deliv_s=%.3f\n", srv_cpu / (double)got * 1e6);
        printf("user_per_M_deliv_s=%.3f\nsys_per_M_deliv_s=%.3f\n",
               (end.user_s - ready.user_s) / (double)got * 1e6,
               (end.sys_s - ready.sys_s) / (double)got * 1e6);
    }
    if (g->pub_ok > 0)
        printf("cpu_per_pub_us=%.2f\n", srv_cpu / (double)g->pub_ok * 1e6);
    printf("lat_n=%ld\nlat_p50_us=%.0f\nlat_p99_us=%.0f\nlat_p999_us=%.0f\nlat_max_us=%.0f\n",
           g->lat_n, lat_pct(g, 0.50), lat_pct(g, 0.99), lat_pct(g, 0.999), g->lat_max_us);
    if (g->o.churn_n > 0)
        printf("churn_cycles=%ld\nchurn_per_s=%.0f\n", g->churn_cycles,
               window_s > 0 ? g->churn_cycles / window_s : 0);
    if (g->o.recovery) {
        printf("recovery_s=%.3f\nrecovered_subs=%ld\nrecovered_ok=%ld\nrecovered_pubs=%ld\n"
               "recovered_expected=%ld\nrecovery_cpu_s=%.3f\n",
               recovery_s, g->recovered_subs, g->recovered_ok, g->recovered_pubs,
               (long)g->o.n * g->o.recover_m, end.cpu_s - rec_cpu0.cpu_s);
        ok = ok && g->recovered_ok == g->o.n;
    }
    printf("ok=%d\n", ok && stayed == g->o.n ? 1 : 0);
    for (int i = 0; i < g->nconns; i++) {
        if (g->conns[i].fd >= 0)
            close(g->conns[i].fd);
        free(g->conns[i].rx);
        free(g->conns[i].tx);
        free(g->conns[i].pub_fifo);
    }
    for (int i = 0; i < g->o.channels; i++)
        free(g->ch_name[i]);
    free(g->ch_name);
    free(g->ch_ok);
    free(g->ch_seq);
    free(g->conns);
    close(g->ep);
    return ok && stayed == g->o.n ? 0 : 1;
}

/* Arbitrary bytes after a valid WebSocket handshake, into one server connection over a
 * socketpair with a real loop. First byte: bit 0 check_utf8, bit 1 tiny limits, bit 2 the
 * handler closes on a message starting with 'C' (discarding output when bit 3), bit 4 the
 * server pings after every message. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "node/base/err.h"
#include "transports/http_internal.h"
#include "transports/loop.h"
#include "transports/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char handshake[] = "GET /connection/websocket HTTP/1.1\r\nHost: x\r\n"
                                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Version: 13\r\n\r\n";

typedef struct fz {
    tr_loop_t tl;
    uint8_t flags;
    tr_ws_opts_t opts;
    int closes;
} fz_t;

static void on_message(tr_ws_t *ws, const uint8_t *d, size_t n, bool binary, void *ud)
{
    fz_t *x = ud;
    if ((x->flags & 4) && n > 0 && d[0] == 'C') {
        tr_ws_close(ws, 3000 + (int)(n % 1000), rt_str_from((const char *)d, n), x->flags & 8);
        return;
    }
    rt_bytes_t *f = tr_ws_frame_new(binary ? TR_WS_OP_BINARY : TR_WS_OP_TEXT, d, n);
    if (tr_ws_send(ws, f) == RT_ELIMIT)
        tr_ws_close(ws, 3008, RT_STR("slow"), true);
    rt_bytes_unref(f);
    if (x->flags & 16)
        tr_ws_ping(ws);
}

static void on_pong(tr_ws_t *ws, void *ud)
{
}

static void on_close(tr_ws_t *ws, int code, void *ud)
{
    ((fz_t *)ud)->closes++;
}

static void on_request(tr_http_req_t *req, void *ud)
{
    fz_t *x = ud;
    tr_ws_handler_t h = {on_message, on_pong, on_close};
    tr_ws_t *ws;
    (void)tr_ws_upgrade(req, &x->opts, &h, x, &ws);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ev_loop *loop;
    if (size < 1 || size > 65536)
        return 0;
    if (loop == NULL)
        loop = ev_loop_new(EVFLAG_AUTO);
    fz_t x = {.flags = data[0]};
    x.opts.check_utf8 = x.flags & 1;
    x.opts.max_message_bytes = (x.flags & 2) ? 100 : 65536;
    tr_limits_t lim;
    tr_limits_default(&lim);
    if (x.flags & 2) {
        lim.read_buf_bytes = 64;
        lim.max_queue_bytes = 512;
    }
    tr_loop_init(&x.tl, loop, &lim);
    tr_http_handler_t h = {on_request, &x};
    tr_http_server_t *srv = tr__http_server_new(&x.tl, &h);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    tr__http_server_adopt(srv, sv[1], "fuzz");
    if (write(sv[0], handshake, sizeof(handshake) - 1) != (ssize_t)(sizeof(handshake) - 1))
        return 0;
    size_t off = 1;
    uint8_t junk[65536];
    for (int i = 0; i < 5000 && x.tl.stats.conns_open > 0; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        while (read(sv[0], junk, sizeof(junk)) > 0)
            ;
        if (i > 0 && off < size) {
            ssize_t w = send(sv[0], data + off, size - off, MSG_NOSIGNAL); /* EPIPE, not SIGPIPE */
            if (w > 0)
                off += (size_t)w;
            if (off == size)
                shutdown(sv[0], SHUT_WR);
        } else if (i > 0 && off == size && size == 1) {
            shutdown(sv[0], SHUT_WR);
            off++;
        }
    }
    close(sv[0]);
    for (int i = 0; i < 10 && x.tl.stats.conns_open > 0; i++)
        ev_run(loop, EVRUN_NOWAIT);
    tr_http_server_free(srv);
    ev_run(loop, EVRUN_NOWAIT);
    tr_loop_cleanup(&x.tl);
    return 0;
}

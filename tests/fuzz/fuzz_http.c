/* Arbitrary bytes from a client into one HTTP server connection over a socketpair with a
 * real loop. First byte: bit 0 answers asynchronously (one loop iteration later), bit 1
 * uses tiny limits and read buffers. Upgrade requests become echoing WebSockets. */
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

typedef struct fz {
    tr_loop_t tl;
    bool async;
    tr_http_req_t *held;
    int open_ws;
} fz_t;

static void on_abort(void *ud)
{
    ((fz_t *)ud)->held = NULL;
}

static void ws_message(tr_ws_t *ws, const uint8_t *d, size_t n, bool binary, void *ud)
{
    rt_bytes_t *f = tr_ws_frame_new(binary ? TR_WS_OP_BINARY : TR_WS_OP_TEXT, d, n);
    if (tr_ws_send(ws, f) == RT_ELIMIT)
        tr_ws_close(ws, 3008, RT_STR("slow"), true);
    rt_bytes_unref(f);
}

static void ws_closed(tr_ws_t *ws, int code, void *ud)
{
    ((fz_t *)ud)->open_ws--;
}

static void answer(fz_t *x, tr_http_req_t *req)
{
    if (tr_ws_is_upgrade(req)) {
        tr_ws_opts_t opts = {.max_message_bytes = 4096, .subprotocol = "json", .check_utf8 = true};
        tr_ws_handler_t h = {ws_message, NULL, ws_closed};
        tr_ws_t *ws;
        if (tr_ws_upgrade(req, &opts, &h, x, &ws) == 0)
            x->open_ws++;
        return;
    }
    rt_buf_t v = RT_BUF_INIT;
    (void)tr_http_req_query_param(req, "a", &v);
    (void)tr_http_req_header(req, "Host");
    rt_buf_cleanup(&v);
    tr_http_respond(req, 200, "text/plain", tr_http_req_body(req), NULL);
}

static void on_request(tr_http_req_t *req, void *ud)
{
    fz_t *x = ud;
    if (x->async) {
        x->held = req;
        tr_http_req_on_abort(req, on_abort, x);
        return;
    }
    answer(x, req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ev_loop *loop;
    if (size < 1 || size > 65536)
        return 0;
    if (loop == NULL)
        loop = ev_loop_new(EVFLAG_AUTO);
    fz_t x = {.async = data[0] & 1};
    tr_limits_t lim;
    tr_limits_default(&lim);
    if (data[0] & 2) {
        lim.read_buf_bytes = 64;
        lim.max_header_bytes = 256;
        lim.max_body_bytes = 128;
        lim.max_queue_bytes = 4096;
    }
    tr_loop_init(&x.tl, loop, &lim);
    tr_http_handler_t h = {on_request, &x};
    tr_http_server_t *srv = tr__http_server_new(&x.tl, &h);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    tr__http_server_adopt(srv, sv[1], "fuzz");
    size_t off = 1;
    uint8_t junk[65536];
    for (int i = 0; i < 5000 && x.tl.stats.conns_open > 0; i++) {
        if (off < size) {
            ssize_t w = send(sv[0], data + off, size - off, MSG_NOSIGNAL); /* EPIPE, not SIGPIPE */
            if (w > 0)
                off += (size_t)w;
            if (off == size)
                shutdown(sv[0], SHUT_WR);
        }
        ev_run(loop, EVRUN_NOWAIT);
        while (read(sv[0], junk, sizeof(junk)) > 0)
            ;
        if (x.held) {
            tr_http_req_t *req = x.held;
            x.held = NULL;
            tr_http_req_on_abort(req, NULL, NULL);
            answer(&x, req);
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

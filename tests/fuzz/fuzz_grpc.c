/* Arbitrary bytes as HTTP/2 client input (preface included) into one gRPC server connection
 * over a socketpair with a real loop. First byte: bits 0-1 what on_call does (0 keep the
 * call open, 1 finish at once with UNIMPLEMENTED, 2 send three messages and finish, 3 send
 * one message, finish on the next loop turn), bit 2 tiny limits (64-byte read buffer,
 * 512-byte queue, 16-byte request limit), bit 3 stop the server halfway through the input,
 * bit 4 the client half stops reading (output piles up). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "node/base/assert.h"
#include "node/base/err.h"
#include "transports/grpc.h"
#include "transports/loop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPEN 128

typedef struct fz {
    uint8_t flags;
    tr_grpc_call_t *open[MAX_OPEN]; /* calls to finish on the next turn (mode 3) */
    int nopen;
    int calls;
    int closes;
} fz_t;

static void send_text(tr_grpc_call_t *call, const char *s)
{
    rt_bytes_t *b = tr_grpc_msg_new(s, strlen(s));
    if (tr_grpc_send(call, b) == RT_ELIMIT)
        tr_grpc_finish(call, TR_GRPC_RESOURCE_EXHAUSTED, "slow");
    rt_bytes_unref(b);
}

static void on_call(tr_grpc_call_t *call, rt_str_t path, const uint8_t *msg, size_t len, void *ud)
{
    fz_t *x = ud;
    x->calls++;
    tr_grpc_call_set_ud(call, x);
    switch (x->flags & 3) {
    case 1:
        tr_grpc_finish(call, TR_GRPC_UNIMPLEMENTED, "unknown \x01 path %");
        break;
    case 2:
        send_text(call, "one");
        send_text(call, "two");
        send_text(call, "three");
        tr_grpc_finish(call, TR_GRPC_OK, NULL);
        break;
    case 3:
        send_text(call, "later");
        if (x->nopen < MAX_OPEN)
            x->open[x->nopen++] = call;
        break;
    default:
        break;
    }
}

static void on_close(tr_grpc_call_t *call, void *call_ud)
{
    fz_t *x = call_ud;
    x->closes++;
    for (int i = 0; i < x->nopen; i++)
        if (x->open[i] == call)
            x->open[i] = NULL;
}

static void finish_open(fz_t *x)
{
    for (int i = 0; i < x->nopen; i++) {
        if (x->open[i])
            tr_grpc_finish(x->open[i], TR_GRPC_OK, "done");
        x->open[i] = NULL;
    }
    x->nopen = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ev_loop *loop;
    if (size < 1 || size > 65536)
        return 0;
    if (loop == NULL)
        loop = ev_loop_new(EVFLAG_AUTO);
    fz_t x = {.flags = data[0]};
    tr_limits_t lim;
    tr_limits_default(&lim);
    tr_grpc_opts_t opts;
    tr_grpc_opts_default(&opts);
    if (x.flags & 4) {
        lim.read_buf_bytes = 64;
        lim.max_queue_bytes = 512;
        opts.max_recv_message_bytes = 16;
    }
    tr_loop_t tl;
    tr_loop_init(&tl, loop, &lim);
    tr_grpc_handler_t h = {on_call, on_close, &x};
    tr_grpc_server_t *srv = tr__grpc_server_new(&tl, &opts, &h);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    tr__grpc_server_adopt(srv, sv[1], "fuzz");
    size_t off = 1;
    bool stopped = false;
    uint8_t junk[65536];
    for (int i = 0; i < 5000 && tl.stats.conns_open > 0; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        finish_open(&x);
        if (!(x.flags & 16))
            while (read(sv[0], junk, sizeof(junk)) > 0)
                ;
        if ((x.flags & 8) && !stopped && off >= 1 + (size - 1) / 2) {
            tr_grpc_server_stop(srv);
            stopped = true;
        }
        if (off < size) {
            ssize_t w = send(sv[0], data + off, size - off, MSG_NOSIGNAL); /* EPIPE, not SIGPIPE */
            if (w > 0)
                off += (size_t)w;
            if (off == size)
                shutdown(sv[0], SHUT_WR);
        } else if (off == size) {
            shutdown(sv[0], SHUT_WR);
            off++;
        }
    }
    close(sv[0]);
    for (int i = 0; i < 10 && tl.stats.conns_open > 0; i++)
        ev_run(loop, EVRUN_NOWAIT);
    tr_grpc_server_free(srv);
    for (int i = 0; i < 10 && tl.stats.conns_open > 0; i++)
        ev_run(loop, EVRUN_NOWAIT);
    /* Every call handed to the handler was closed exactly once. */
    RT_ASSERT(x.closes == x.calls);
    tr_loop_cleanup(&tl);
    return 0;
}

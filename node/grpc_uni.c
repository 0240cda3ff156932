/* Unidirectional gRPC (PROTOCOL.md §10.8): each worker serves
 * CentrifugoUniStream/Consume on the uni_grpc port (SO_REUSEPORT like the HTTP listener).
 * A call's ConnectRequest starts a session on NODE_WIRE_UNI_GRPC; its pushes are the
 * client-protocol Push bytes as gRPC messages. Worker thread only. */
#include <stdio.h>

#include "node/base/log.h"
#include "node/codes.h"
#include "node/node_internal.h"
#include "node/ratelimit.h"

#define CONSUME_PATH "/centrifugal.centrifugo.unistream.CentrifugoUniStream/Consume"

static void on_call(tr_grpc_call_t *call, rt_str_t path, const uint8_t *msg, size_t len, void *ud)
{
    node_worker_t *w = ud;
    if (!rt_str_eq_c(path, CONSUME_PATH)) {
        tr_grpc_finish(call, TR_GRPC_UNIMPLEMENTED, "unknown method");
        return;
    }
    if (node_connection_limit_reached(w)) {
        tr_grpc_finish(call, TR_GRPC_UNAVAILABLE, "connection limit reached");
        return;
    }
    if (node_connection_rate_limited(w)) {
        tr_grpc_finish(call, TR_GRPC_UNAVAILABLE, "connection rate limit reached");
        return;
    }
    node_pb_reader_t r;
    node_pb_reader_init(&r, NULL, 0);
    node_cmd_t cmd;
    if (node_pb_decode_connect_request(&r, msg, len, &cmd) != 0) {
        node_pb_reader_cleanup(&r);
        tr_grpc_finish(call, TR_GRPC_INVALID_ARGUMENT, "malformed connect request");
        return;
    }
    node_client_t *c = node_client_new(w, NODE_WIRE_UNI_GRPC);
    c->tr = call;
    tr_grpc_call_set_ud(call, c);
    snprintf(c->session, sizeof(c->session), "%s", c->uuid);
    atomic_fetch_add_explicit(&w->node->metrics.connections_accepted[c->wire], 1,
                              memory_order_relaxed);
    if (atomic_load(&w->node->draining))
        node_client_disconnect(c, NODE_DISCONNECT_SHUTDOWN, NULL);
    else
        node_client_uni_connect(c, &cmd);
    node_pb_reader_cleanup(&r);
}

static void on_close(tr_grpc_call_t *call, void *call_ud)
{
    (void)call;
    if (call_ud)
        node_client_on_link_closed(call_ud);
}

int node_grpc_uni_listen(node_worker_t *w)
{
    const node_config_t *cfg = w->node->cfg;
    tr_grpc_opts_t opts;
    tr_grpc_opts_default(&opts);
    opts.max_recv_message_bytes = (size_t)cfg->uni_grpc_max_message;
    tr_grpc_handler_t h = {.on_call = on_call, .on_close = on_close, .ud = w};
    return tr_grpc_listen(&w->tl, cfg->uni_grpc_address, cfg->uni_grpc_port, &opts, &h, &w->grpc);
}

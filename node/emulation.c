/* The client-to-server half of emulated sessions (PROTOCOL.md §10.3): an /emulation frame
 * goes to the worker holding the session on this node, or through the control channel to
 * the node that holds it, so no sticky sessions are needed behind a load balancer.
 * Worker thread, except node_worker_deliver_emulation (any thread). */
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "node/node_internal.h"

/* Answers req with status (204: no body; else {"error":message}) and, for an allowed Origin,
 * the CORS headers the preflight promised (§10.9): without them the browser reports every
 * emulation POST of a cross-origin page as failed. */
static void respond(const node_config_t *cfg, tr_http_req_t *req, int status, const char *message)
{
    rt_buf_t h = RT_BUF_INIT, body = RT_BUF_INIT;
    node_cors_headers(cfg, req, &h);
    rt_buf_append_byte(&h, '\0');
    if (message != NULL) {
        rt_buf_append_cstr(&body, "{\"error\":");
        rt_json_write_string(&body, rt_str_c(message));
        rt_buf_append_byte(&body, '}');
    }
    tr_http_respond(req, status, message ? "application/json" : NULL, rt_buf_str(&body),
                    (const char *)h.p);
    rt_buf_cleanup(&h);
    rt_buf_cleanup(&body);
}

/* ---- delivery to the owning worker ---- */

typedef struct emulation_mail {
    rt_mail_t mail;
    size_t session_len;
    size_t data_len;
    char bytes[]; /* session, then data */
} emulation_mail_t;

static void on_emulation_mail(rt_mail_t *m, void *ctx)
{
    node_worker_t *w = ctx;
    emulation_mail_t *em = (emulation_mail_t *)m;
    node_client_t *c = node_map_get(&w->sessions, rt_str_from(em->bytes, em->session_len));
    /* A session that is gone (or never was) drops the frame silently, as the reference. */
    if (c != NULL)
        node_client_on_frame(c, (const uint8_t *)em->bytes + em->session_len, em->data_len);
    rt_free(em);
}

void node_worker_deliver_emulation(node_worker_t *w, rt_str_t session, rt_str_t data)
{
    emulation_mail_t *em = rt_malloc(sizeof(*em) + session.n + data.n);
    em->mail.fn = on_emulation_mail;
    em->session_len = session.n;
    em->data_len = data.n;
    memcpy(em->bytes, session.p, session.n);
    if (data.n)
        memcpy(em->bytes + session.n, data.p, data.n);
    rt_mailbox_post(&w->mailbox, &em->mail);
}

/* ---- requests for another node ---- */

/* An /emulation request waiting for the engine to forward its frame. */
typedef struct http_wait {
    uint64_t id;
    node_worker_t *w;
    tr_http_req_t *req;
} http_wait_t;

static void on_wait_abort(void *ud)
{
    http_wait_t *hw = ud;
    node_map_del_id(&hw->w->waits, hw->id);
    rt_free(hw);
}

static void forward_done(node_worker_t *w, node_op_t *op)
{
    http_wait_t *hw = node_map_del_id(&w->waits, op->ref_id);
    if (hw == NULL)
        return; /* the client went away */
    tr_http_req_on_abort(hw->req, NULL, NULL);
    const node_config_t *cfg = w->node->cfg;
    if (op->status == 0)
        respond(cfg, hw->req, 204, NULL);
    else if (op->status == RT_ENOTFOUND)
        respond(cfg, hw->req, 404, "unknown node");
    else
        respond(cfg, hw->req, 500, "emulation routing failed");
    rt_free(hw);
}

void node_emulation_route(node_worker_t *w, tr_http_req_t *req, rt_str_t node, rt_str_t session,
                          rt_str_t data)
{
    if (node.n == 0 || rt_str_eq_c(node, w->node->uid)) {
        int k = node_session_worker(session, w->node->nworkers);
        if (k >= 0)
            node_worker_deliver_emulation(w->node->workers[k], session, data);
        respond(w->node->cfg, req, 204, NULL);
        return;
    }
    if (node.n >= sizeof(((node_op_t *)0)->remote_uid)) {
        respond(w->node->cfg, req, 404, "unknown node");
        return;
    }
    http_wait_t *hw = RT_NEW(http_wait_t);
    hw->id = node_worker_next_id(w);
    hw->w = w;
    hw->req = req;
    node_map_put_id(&w->waits, hw->id, hw);
    tr_http_req_on_abort(req, on_wait_abort, hw);
    node_op_t *op = node_op_new(NODE_OP_EMULATION, w, forward_done);
    op->ref_id = hw->id;
    memcpy(op->remote_uid, node.p, node.n);
    op->remote_uid[node.n] = '\0';
    op->channel = node_op_copy(op, session);
    op->emu_data = node_op_copy(op, data);
    node_worker_post(w, op);
}

/* Server HTTP API (SERVER.md §1): POST {prefix}/{method}, batch, and the legacy multi-command
 * POST {prefix}. Runs on the worker that received the request; broker/presence work goes to
 * the engine as ops and the response is written when every op of the request is done.
 *
 * A request is a list of commands (one for /api/<method>, many for batch and legacy); a
 * command is a list of units (one, or one per channel for broadcast). Each unit ends with
 * an error code or a result object. Ops find their request by id (it may be aborted by
 * then) and their unit by (command, unit) packed into cmd_id. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/b64.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "node/base/log.h"
#include "node/base/time.h"
#include "node/codes.h"
#include "node/consumer.h"
#include "node/control.h"
#include "node/node_internal.h"

#define API_MAX_UNITS 65535

typedef enum api_kind {
    API_SINGLE, /* /api/<method> */
    API_BATCH,  /* /api/batch */
    API_LEGACY, /* /api */
    API_EXEC,   /* node_api_exec (consumers): no HTTP request, the result goes to exec_done */
} api_kind_t;

typedef struct api_unit {
    bool done;
    int code;            /* 0 = success */
    const char *message; /* static; NULL = table text */
    rt_buf_t result;     /* result object JSON when code == 0 */
} api_unit_t;

typedef struct api_cmd {
    const char *method; /* static method name, NULL = unknown */
    bool composite;     /* broadcast: units are per-channel responses */
    int code;           /* command-level error (before any unit) */
    api_unit_t *units;  /* owned */
    size_t nunits;
    bool has_legacy_id;
    uint32_t legacy_id;
} api_cmd_t;

struct node_api_req {
    uint64_t id;
    node_worker_t *w;   /* borrowed */
    tr_http_req_t *req; /* NULL once aborted */
    api_kind_t kind;
    bool transport_mode; /* X-Centrifugo-Error-Mode: transport / http_api.error_mode */
    int pending;         /* units not done yet (+1 while building) */
    api_cmd_t *cmds;     /* owned */
    size_t ncmds;
    void (*exec_done)(void *ud, int code); /* API_EXEC */
    void *exec_ud;
};

static const node_config_t *cfg_of(const node_api_req_t *ar)
{
    return ar->w->node->cfg;
}

/* ---------------------------------------------------------------------------------------
 * Responses.
 */

static void write_error_obj(rt_buf_t *b, int code, const char *message)
{
    rt_buf_printf(b, "{\"code\":%d,\"message\":", code);
    rt_json_write_string(b, rt_str_c(message ? message : node_error_message(code)));
    rt_buf_append_byte(b, '}');
}

/* {"error":{...}} or {"result":{...}} of one unit; field = "result" or method name. */
static void write_unit(rt_buf_t *b, const api_unit_t *u, const char *result_field)
{
    if (u->code) {
        rt_buf_append_cstr(b, "{\"error\":");
        write_error_obj(b, u->code, u->message);
        rt_buf_append_byte(b, '}');
        return;
    }
    rt_buf_printf(b, "{\"%s\":", result_field);
    if (u->result.len)
        rt_buf_append(b, u->result.p, u->result.len);
    else
        rt_buf_append_cstr(b, "{}");
    rt_buf_append_byte(b, '}');
}

/* The result object of a command (broadcast composes its units). */
static void write_cmd_result(rt_buf_t *b, const api_cmd_t *c)
{
    if (!c->composite) {
        if (c->nunits && c->units[0].result.len)
            rt_buf_append(b, c->units[0].result.p, c->units[0].result.len);
        else
            rt_buf_append_cstr(b, "{}");
        return;
    }
    rt_buf_append_cstr(b, "{\"responses\":[");
    for (size_t i = 0; i < c->nunits; i++) {
        if (i)
            rt_buf_append_byte(b, ',');
        write_unit(b, &c->units[i], "result");
    }
    rt_buf_append_cstr(b, "]}");
}

static int cmd_code(const api_cmd_t *c, const char **message)
{
    *message = NULL;
    if (c->code)
        return c->code;
    if (!c->composite && c->nunits && c->units[0].code) {
        *message = c->units[0].message;
        return c->units[0].code;
    }
    return 0;
}

static int transport_status(int code)
{
    switch (code) {
    case NODE_ERR_UNKNOWN_CHANNEL:
    case NODE_ERR_METHOD_NOT_FOUND:
        return 404;
    case NODE_ERR_BAD_REQUEST:
    case NODE_ERR_NOT_AVAILABLE:
        return 400;
    case NODE_ERR_UNRECOVERABLE_POSITION:
        return 416;
    default:
        return 500;
    }
}

static void api_req_free(node_api_req_t *ar)
{
    for (size_t i = 0; i < ar->ncmds; i++) {
        for (size_t j = 0; j < ar->cmds[i].nunits; j++)
            rt_buf_cleanup(&ar->cmds[i].units[j].result);
        rt_free(ar->cmds[i].units);
    }
    rt_free(ar->cmds);
    node_map_del_id(&ar->w->api_reqs, ar->id);
    rt_free(ar);
}

/* API_EXEC: the command's code; broadcast is retryable as a whole if any channel is. */
static void respond_exec(node_api_req_t *ar)
{
    const api_cmd_t *c = &ar->cmds[0];
    const char *msg;
    int code = cmd_code(c, &msg);
    for (size_t i = 0; code == 0 && c->composite && i < c->nunits; i++)
        code = c->units[i].code;
    for (size_t i = 0; c->composite && i < c->nunits; i++) {
        if (c->units[i].code == NODE_ERR_INTERNAL)
            code = NODE_ERR_INTERNAL;
    }
    ar->exec_done(ar->exec_ud, code);
    api_req_free(ar);
}

static void respond(node_api_req_t *ar)
{
    if (ar->kind == API_EXEC) {
        respond_exec(ar);
        return;
    }
    rt_buf_t b = RT_BUF_INIT;
    int status = 200;
    if (ar->kind == API_SINGLE) {
        api_cmd_t *c = &ar->cmds[0];
        const char *msg;
        int code = cmd_code(c, &msg);
        if (code && ar->transport_mode) {
            status = transport_status(code);
            write_error_obj(&b, code, msg);
        } else if (code) {
            rt_buf_append_cstr(&b, "{\"error\":");
            write_error_obj(&b, code, msg);
            rt_buf_append_byte(&b, '}');
        } else {
            rt_buf_append_cstr(&b, "{\"result\":");
            write_cmd_result(&b, c);
            rt_buf_append_byte(&b, '}');
        }
    } else if (ar->kind == API_BATCH) {
        rt_buf_append_cstr(&b, "{\"replies\":[");
        for (size_t i = 0; i < ar->ncmds; i++) {
            api_cmd_t *c = &ar->cmds[i];
            if (i)
                rt_buf_append_byte(&b, ',');
            const char *msg;
            int code = cmd_code(c, &msg);
            if (code) {
                rt_buf_append_cstr(&b, "{\"error\":");
                write_error_obj(&b, code, msg);
                rt_buf_append_byte(&b, '}');
            } else {
                rt_buf_printf(&b, "{\"%s\":", c->method);
                write_cmd_result(&b, c);
                rt_buf_append_byte(&b, '}');
            }
        }
        rt_buf_append_cstr(&b, "]}");
    } else {
        for (size_t i = 0; i < ar->ncmds; i++) {
            api_cmd_t *c = &ar->cmds[i];
            if (i)
                rt_buf_append_byte(&b, '\n');
            rt_buf_append_byte(&b, '{');
            bool comma = false;
            if (c->has_legacy_id && c->legacy_id) {
                rt_buf_printf(&b, "\"id\":%u", c->legacy_id);
                comma = true;
            }
            const char *msg;
            int code = cmd_code(c, &msg);
            if (comma)
                rt_buf_append_byte(&b, ',');
            if (code) {
                rt_buf_append_cstr(&b, "\"error\":");
                write_error_obj(&b, code, msg);
            } else {
                rt_buf_append_cstr(&b, "\"result\":");
                write_cmd_result(&b, c);
            }
            rt_buf_append_byte(&b, '}');
        }
    }
    atomic_fetch_add_explicit(&ar->w->node->metrics.api_commands, ar->ncmds, memory_order_relaxed);
    if (ar->req)
        tr_http_respond(ar->req, status, "application/json", rt_buf_str(&b), NULL);
    rt_buf_cleanup(&b);
    api_req_free(ar);
}

static void unit_done(node_api_req_t *ar, api_unit_t *u)
{
    u->done = true;
    if (u->code)
        atomic_fetch_add_explicit(&ar->w->node->metrics.api_errors, 1, memory_order_relaxed);
    if (--ar->pending == 0)
        respond(ar);
}

static void unit_fail(node_api_req_t *ar, api_unit_t *u, int code)
{
    u->code = code;
    unit_done(ar, u);
}

static void on_abort(void *ud)
{
    node_api_req_t *ar = ud;
    ar->req = NULL; /* ops still in flight finish into nothing */
}

/* ---------------------------------------------------------------------------------------
 * Ops.
 */

static api_unit_t *op_unit(node_worker_t *w, const node_op_t *op, node_api_req_t **out)
{
    node_api_req_t *ar = node_map_get_id(&w->api_reqs, op->ref_id);
    if (ar == NULL)
        return NULL;
    size_t ci = op->cmd_id >> 16, ui = op->cmd_id & 0xffff;
    if (ci >= ar->ncmds || ui >= ar->cmds[ci].nunits)
        return NULL;
    *out = ar;
    return &ar->cmds[ci].units[ui];
}

static node_op_t *unit_op(node_api_req_t *ar, size_t ci, size_t ui, node_op_kind_t kind,
                          node_op_done_fn done)
{
    node_op_t *op = node_op_new(kind, ar->w, done);
    op->ref_id = ar->id;
    op->cmd_id = (uint32_t)((ci << 16) | ui);
    return op;
}

static void op_status_done(node_worker_t *w, node_op_t *op)
{
    node_api_req_t *ar;
    api_unit_t *u = op_unit(w, op, &ar);
    if (u == NULL)
        return;
    if (op->status != 0)
        u->code = NODE_ERR_INTERNAL;
    unit_done(ar, u);
}

static void publish_done(node_worker_t *w, node_op_t *op)
{
    node_api_req_t *ar;
    api_unit_t *u = op_unit(w, op, &ar);
    if (u == NULL)
        return;
    if (op->status != 0) {
        unit_fail(ar, u, NODE_ERR_INTERNAL);
        return;
    }
    if (op->offset > 0 || op->epoch[0]) {
        rt_buf_printf(&u->result, "{\"offset\":%llu,\"epoch\":", (unsigned long long)op->offset);
        rt_json_write_string(&u->result, rt_str_c(op->epoch));
        rt_buf_append_byte(&u->result, '}');
    }
    unit_done(ar, u);
}

static void presence_done(node_worker_t *w, node_op_t *op)
{
    node_api_req_t *ar;
    api_unit_t *u = op_unit(w, op, &ar);
    if (u == NULL)
        return;
    if (op->status != 0) {
        unit_fail(ar, u, NODE_ERR_INTERNAL);
        return;
    }
    rt_buf_t *b = &u->result;
    if (op->kind == NODE_OP_PRESENCE_STATS) {
        rt_buf_printf(b, "{\"num_clients\":%u,\"num_users\":%u}", op->num_clients, op->num_users);
    } else {
        rt_buf_append_cstr(b, "{\"presence\":{");
        for (size_t i = 0; i < op->nentries; i++) {
            if (i)
                rt_buf_append_byte(b, ',');
            rt_json_write_string(b, op->entries[i].client);
            rt_buf_append_byte(b, ':');
            if (node_json_write_client_info(b, &op->entries[i]) != 0) {
                rt_buf_reset(b);
                unit_fail(ar, u, NODE_ERR_INTERNAL);
                return;
            }
        }
        rt_buf_append_cstr(b, "}}");
    }
    unit_done(ar, u);
}

static void history_done(node_worker_t *w, node_op_t *op)
{
    node_api_req_t *ar;
    api_unit_t *u = op_unit(w, op, &ar);
    if (u == NULL)
        return;
    if (op->status != 0) {
        unit_fail(ar, u, NODE_ERR_INTERNAL);
        return;
    }
    if (op->hist.since_epoch.n && !rt_str_eq(op->hist.since_epoch, rt_str_c(op->epoch))) {
        unit_fail(ar, u, NODE_ERR_UNRECOVERABLE_POSITION);
        return;
    }
    rt_buf_t *b = &u->result;
    rt_buf_append_cstr(b, "{\"publications\":[");
    for (size_t i = 0; i < op->npubs; i++) {
        if (i)
            rt_buf_append_byte(b, ',');
        node_json_write_pub(b, op->pubs[i], true);
    }
    rt_buf_append_cstr(b, "],\"epoch\":");
    rt_json_write_string(b, rt_str_c(op->epoch));
    rt_buf_printf(b, ",\"offset\":%llu}", (unsigned long long)op->offset);
    unit_done(ar, u);
}

static void survey_done(node_worker_t *w, node_op_t *op)
{
    node_api_req_t *ar;
    api_unit_t *u = op_unit(w, op, &ar);
    if (u == NULL)
        return;
    if (op->status != 0 || op->survey == NULL) {
        unit_fail(ar, u, NODE_ERR_INTERNAL);
        return;
    }
    rt_buf_t *b = &u->result;
    node_survey_result_t *s = op->survey;
    if (op->want_channels) {
        rt_buf_append_cstr(b, "{\"channels\":{");
        bool first = true;
        for (node_map_iter_t it = node_map_iter(&s->channels); node_map_next(&it);) {
            if (!first)
                rt_buf_append_byte(b, ',');
            first = false;
            rt_json_write_string(b, it.entry->key);
            rt_buf_printf(b, ":{\"num_clients\":%lu}",
                          (unsigned long)((uintptr_t)it.entry->val - 1));
        }
        rt_buf_append_cstr(b, "}}");
    } else {
        node_t *node = w->node;
        int64_t uptime = (rt_time_ms() - node->start_ms) / 1000;
        rt_buf_append_cstr(b, "{\"nodes\":[{\"uid\":");
        rt_json_write_string(b, rt_str_c(node->uid));
        rt_buf_append_cstr(b, ",\"name\":");
        rt_json_write_string(b, rt_str_c(node->cfg->node_name));
        rt_buf_append_cstr(b, ",\"version\":");
        rt_json_write_string(b, rt_str_c(NODE_VERSION_TEXT));
        rt_buf_printf(b,
                      ",\"num_clients\":%u,\"num_users\":%zu,\"num_channels\":%llu,\"num_subs\":%u",
                      s->num_clients, s->users.count,
                      (unsigned long long)atomic_load(&node->engine->num_channels), s->num_subs);
        if (uptime > 0)
            rt_buf_printf(b, ",\"uptime\":%lld", (long long)uptime);
        rt_buf_append_byte(b, '}');
        for (size_t i = 0; i < op->nnodes; i++) {
            const node_info_t *n = &op->nodes[i];
            rt_buf_append_cstr(b, ",{\"uid\":");
            rt_json_write_string(b, rt_str_c(n->uid));
            rt_buf_append_cstr(b, ",\"name\":");
            rt_json_write_string(b, rt_str_c(n->name));
            rt_buf_append_cstr(b, ",\"version\":");
            rt_json_write_string(b, rt_str_c(n->version));
            rt_buf_printf(b,
                          ",\"num_clients\":%u,\"num_users\":%u,\"num_channels\":%u,"
                          "\"num_subs\":%u",
                          n->num_clients, n->num_users, n->num_channels, n->num_subs);
            if (n->uptime_s > 0)
                rt_buf_printf(b, ",\"uptime\":%lld", (long long)n->uptime_s);
            rt_buf_append_byte(b, '}');
        }
        rt_buf_append_cstr(b, "]}");
    }
    unit_done(ar, u);
}

/* ---------------------------------------------------------------------------------------
 * Parameter helpers. Each returns 0 or NODE_ERR_BAD_REQUEST for a wrongly typed field.
 */

static int get_str(const rt_json_t *params, const char *key, rt_buf_t *out)
{
    const rt_json_t *v = rt_json_get(params, key);
    if (v == NULL || v->type == RT_JSON_NULL)
        return 0;
    return rt_json_get_string(v, out) == 0 ? 0 : NODE_ERR_BAD_REQUEST;
}

static int get_bool(const rt_json_t *params, const char *key, bool *out)
{
    const rt_json_t *v = rt_json_get(params, key);
    *out = false;
    if (v == NULL || v->type == RT_JSON_NULL)
        return 0;
    return rt_json_get_bool(v, out) == 0 ? 0 : NODE_ERR_BAD_REQUEST;
}

static int get_i64(const rt_json_t *params, const char *key, int64_t *out)
{
    const rt_json_t *v = rt_json_get(params, key);
    *out = 0;
    if (v == NULL || v->type == RT_JSON_NULL)
        return 0;
    return rt_json_get_int64(v, out) == 0 ? 0 : NODE_ERR_BAD_REQUEST;
}

/* Raw JSON `data`-like field, or base64 sibling (wins when non-empty). */
static int get_payload(const rt_json_t *params, const char *key, const char *b64key, rt_buf_t *out,
                       bool *binary)
{
    *binary = false;
    rt_buf_t b64 = RT_BUF_INIT;
    int rc = get_str(params, b64key, &b64);
    if (rc == 0 && b64.len) {
        if (rt_b64_decode(out, (const char *)b64.p, b64.len, false) != 0)
            rc = NODE_ERR_BAD_REQUEST;
        *binary = true;
        rt_buf_cleanup(&b64);
        return rc;
    }
    rt_buf_cleanup(&b64);
    if (rc)
        return rc;
    const rt_json_t *v = rt_json_get(params, key);
    if (v && v->type != RT_JSON_NULL)
        rt_buf_append(out, v->raw.p, v->raw.n);
    return 0;
}

static const node_ns_opts_t *resolve(node_api_req_t *ar, rt_str_t ch)
{
    return node_config_resolve(cfg_of(ar), ch.p, ch.n, NULL, NULL);
}

static int get_override(const rt_json_t *params, node_jwt_override_t *ov)
{
    const rt_json_t *o = rt_json_get(params, "override");
    if (o == NULL || o->type == RT_JSON_NULL)
        return 0;
    if (o->type != RT_JSON_OBJECT)
        return NODE_ERR_BAD_REQUEST;
    static const char *const keys[] = {"presence", "join_leave", "force_push_join_leave",
                                       "force_recovery", "force_positioning"};
    node_jwt_bool_t *dst[] = {&ov->presence, &ov->join_leave, &ov->force_push_join_leave,
                              &ov->force_recovery, &ov->force_positioning};
    for (int i = 0; i < 5; i++) {
        const rt_json_t *bv = rt_json_get(o, keys[i]);
        if (bv == NULL || bv->type == RT_JSON_NULL)
            continue;
        bool val;
        if (bv->type != RT_JSON_OBJECT || get_bool(bv, "value", &val) != 0)
            return NODE_ERR_BAD_REQUEST;
        *dst[i] = val ? NODE_JWT_TRUE : NODE_JWT_FALSE;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Methods. Each fills ar->cmds[ci] (its units) and either finishes units now or posts ops.
 */

typedef void (*api_method_fn)(node_api_req_t *ar, size_t ci, const rt_json_t *params);

static void alloc_units(api_cmd_t *c, size_t n)
{
    c->units = rt_calloc(n ? n : 1, sizeof(*c->units));
    c->nunits = n;
}

/* Publishes params' payload to channel ch into unit ui. */
static void publish_unit(node_api_req_t *ar, size_t ci, size_t ui, rt_str_t ch,
                         const rt_json_t *params, rt_str_t data, bool binary)
{
    api_unit_t *u = &ar->cmds[ci].units[ui];
    if (ch.n == 0) {
        unit_fail(ar, u, NODE_ERR_BAD_REQUEST);
        return;
    }
    const node_ns_opts_t *ns = resolve(ar, ch);
    if (ns == NULL) {
        unit_fail(ar, u, NODE_ERR_UNKNOWN_CHANNEL);
        return;
    }
    if (!node_data_format_ok(ns, data, binary)) {
        unit_fail(ar, u, NODE_ERR_BAD_REQUEST);
        return;
    }
    bool skip_history = false, delta = false;
    rt_buf_t idem = RT_BUF_INIT, vep = RT_BUF_INIT;
    int64_t version = 0;
    int rc = get_bool(params, "skip_history", &skip_history);
    rc = rc ? rc : get_bool(params, "delta", &delta);
    rc = rc ? rc : get_str(params, "idempotency_key", &idem);
    rc = rc ? rc : get_str(params, "version_epoch", &vep);
    rc = rc ? rc : get_i64(params, "version", &version);
    const rt_json_t *tags = rt_json_get(params, "tags");
    if (rc == 0 && tags && tags->type != RT_JSON_NULL && tags->type != RT_JSON_OBJECT)
        rc = NODE_ERR_BAD_REQUEST;
    if (rc) {
        rt_buf_cleanup(&idem);
        rt_buf_cleanup(&vep);
        unit_fail(ar, u, rc);
        return;
    }
    node_op_t *op = unit_op(ar, ci, ui, NODE_OP_PUBLISH, publish_done);
    op->pub.fields.channel = node_op_copy(op, ch);
    op->pub.fields.data = node_op_copy(op, data);
    op->pub.fields.data_binary = binary;
    op->pub.fields.delta = delta || ns->delta_publish;
    if (!skip_history) {
        op->pub.opts.history_size = ns->history_size;
        op->pub.opts.history_ttl_ms = ns->history_ttl_ms;
    }
    op->pub.opts.history_meta_ttl_ms = ns->history_meta_ttl_ms;
    op->pub.opts.idempotency_key = node_op_copy(op, rt_buf_str(&idem));
    op->pub.opts.version = version > 0 ? (uint64_t)version : 0;
    op->pub.opts.version_epoch = node_op_copy(op, rt_buf_str(&vep));
    rt_buf_cleanup(&idem);
    rt_buf_cleanup(&vep);
    if (tags && tags->type == RT_JSON_OBJECT && tags->count) {
        broker_tag_t *t = rt_calloc(tags->count, sizeof(*t));
        size_t n = 0;
        rt_buf_t tmp = RT_BUF_INIT;
        for (const rt_json_t *m = tags->child; m; m = m->next) {
            rt_buf_reset(&tmp);
            rt_json_get_key(m, &tmp);
            t[n].key = node_op_copy(op, rt_buf_str(&tmp));
            rt_buf_reset(&tmp);
            if (rt_json_get_string(m, &tmp) != 0) {
                rt_buf_cleanup(&tmp);
                rt_free(t);
                node_op_free(op);
                unit_fail(ar, u, NODE_ERR_BAD_REQUEST);
                return;
            }
            t[n].value = node_op_copy(op, rt_buf_str(&tmp));
            n++;
        }
        rt_buf_cleanup(&tmp);
        /* The tag array itself must live as long as the op: copy it in as a blob. */
        rt_str_t blob = node_op_copy(op, rt_str_from((const char *)t, n * sizeof(*t)));
        rt_free(t);
        op->pub.fields.tags = (const broker_tag_t *)(const void *)blob.p;
        op->pub.fields.ntags = n;
    }
    node_worker_post(ar->w, op);
}

static void m_publish(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    alloc_units(&ar->cmds[ci], 1);
    ar->pending += 1;
    rt_buf_t ch = RT_BUF_INIT, data = RT_BUF_INIT;
    bool binary;
    int rc = get_str(params, "channel", &ch);
    rc = rc ? rc : get_payload(params, "data", "b64data", &data, &binary);
    if (rc)
        unit_fail(ar, &ar->cmds[ci].units[0], rc);
    else
        publish_unit(ar, ci, 0, rt_buf_str(&ch), params, rt_buf_str(&data), binary);
    rt_buf_cleanup(&ch);
    rt_buf_cleanup(&data);
}

static void m_broadcast(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    api_cmd_t *c = &ar->cmds[ci];
    const rt_json_t *chans = rt_json_get(params, "channels");
    rt_buf_t data = RT_BUF_INIT;
    bool binary;
    if (chans == NULL || chans->type != RT_JSON_ARRAY || chans->count == 0 ||
        chans->count > API_MAX_UNITS ||
        get_payload(params, "data", "b64data", &data, &binary) != 0) {
        rt_buf_cleanup(&data);
        c->code = NODE_ERR_BAD_REQUEST;
        return;
    }
    c->composite = true;
    alloc_units(c, chans->count);
    ar->pending += (int)chans->count;
    size_t i = 0;
    rt_buf_t ch = RT_BUF_INIT;
    for (const rt_json_t *e = chans->child; e; e = e->next, i++) {
        rt_buf_reset(&ch);
        if (rt_json_get_string(e, &ch) != 0) {
            unit_fail(ar, &c->units[i], NODE_ERR_BAD_REQUEST);
            continue;
        }
        publish_unit(ar, ci, i, rt_buf_str(&ch), params, rt_buf_str(&data), binary);
    }
    rt_buf_cleanup(&ch);
    rt_buf_cleanup(&data);
}

/* Common part of presence, presence_stats, history, history_remove: channel checks. */
static const node_ns_opts_t *channel_unit(node_api_req_t *ar, size_t ci, const rt_json_t *params,
                                          rt_buf_t *ch)
{
    alloc_units(&ar->cmds[ci], 1);
    ar->pending += 1;
    api_unit_t *u = &ar->cmds[ci].units[0];
    if (get_str(params, "channel", ch) != 0 || ch->len == 0) {
        unit_fail(ar, u, NODE_ERR_BAD_REQUEST);
        return NULL;
    }
    const node_ns_opts_t *ns = resolve(ar, rt_buf_str(ch));
    if (ns == NULL) {
        unit_fail(ar, u, NODE_ERR_UNKNOWN_CHANNEL);
        return NULL;
    }
    return ns;
}

static void m_presence_common(node_api_req_t *ar, size_t ci, const rt_json_t *params, bool stats)
{
    rt_buf_t ch = RT_BUF_INIT;
    const node_ns_opts_t *ns = channel_unit(ar, ci, params, &ch);
    if (ns && !ns->presence) {
        unit_fail(ar, &ar->cmds[ci].units[0], NODE_ERR_NOT_AVAILABLE);
    } else if (ns) {
        node_op_t *op = unit_op(ar, ci, 0, stats ? NODE_OP_PRESENCE_STATS : NODE_OP_PRESENCE_GET,
                                presence_done);
        op->channel = node_op_copy(op, rt_buf_str(&ch));
        node_worker_post(ar->w, op);
    }
    rt_buf_cleanup(&ch);
}

static void m_presence(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    m_presence_common(ar, ci, params, false);
}

static void m_presence_stats(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    m_presence_common(ar, ci, params, true);
}

static void m_history(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    rt_buf_t ch = RT_BUF_INIT;
    const node_ns_opts_t *ns = channel_unit(ar, ci, params, &ch);
    api_unit_t *u = &ar->cmds[ci].units[0];
    if (ns == NULL)
        goto out;
    if (ns->history_size <= 0 || ns->history_ttl_ms <= 0) {
        unit_fail(ar, u, NODE_ERR_NOT_AVAILABLE);
        goto out;
    }
    int64_t limit = 0;
    bool reverse = false;
    int rc = get_i64(params, "limit", &limit);
    rc = rc ? rc : get_bool(params, "reverse", &reverse);
    const rt_json_t *since = rt_json_get(params, "since");
    bool has_since = since && since->type == RT_JSON_OBJECT;
    int64_t since_offset = 0;
    rt_buf_t since_epoch = RT_BUF_INIT;
    if (rc == 0 && since && since->type != RT_JSON_NULL && !has_since)
        rc = NODE_ERR_BAD_REQUEST;
    if (rc == 0 && has_since) {
        rc = get_i64(since, "offset", &since_offset);
        rc = rc ? rc : get_str(since, "epoch", &since_epoch);
        if (rc == 0 && since_offset < 0)
            rc = NODE_ERR_BAD_REQUEST;
    }
    /* Decision SERVER.md §7.4: reverse from offset 0 is a bad request. */
    if (rc == 0 && reverse && has_since && since_offset == 0)
        rc = NODE_ERR_BAD_REQUEST;
    if (rc) {
        rt_buf_cleanup(&since_epoch);
        unit_fail(ar, u, rc);
        goto out;
    }
    node_op_t *op = unit_op(ar, ci, 0, NODE_OP_HISTORY, history_done);
    op->hist.channel = node_op_copy(op, rt_buf_str(&ch));
    op->hist.has_since = has_since;
    op->hist.since_offset = (uint64_t)since_offset;
    op->hist.since_epoch = node_op_copy(op, rt_buf_str(&since_epoch));
    op->hist.limit = limit;
    op->hist.reverse = reverse;
    op->hist.history_size = ns->history_size;
    op->hist.history_ttl_ms = ns->history_ttl_ms;
    op->hist.history_meta_ttl_ms = ns->history_meta_ttl_ms;
    rt_buf_cleanup(&since_epoch);
    node_worker_post(ar->w, op);
out:
    rt_buf_cleanup(&ch);
}

static void m_history_remove(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    rt_buf_t ch = RT_BUF_INIT;
    const node_ns_opts_t *ns = channel_unit(ar, ci, params, &ch);
    if (ns && (ns->history_size <= 0 || ns->history_ttl_ms <= 0)) {
        unit_fail(ar, &ar->cmds[ci].units[0], NODE_ERR_NOT_AVAILABLE);
    } else if (ns) {
        node_op_t *op = unit_op(ar, ci, 0, NODE_OP_HISTORY_REMOVE, op_status_done);
        op->channel = node_op_copy(op, rt_buf_str(&ch));
        node_worker_post(ar->w, op);
    }
    rt_buf_cleanup(&ch);
}

/* subscribe / unsubscribe / disconnect / refresh: a control command for every worker. */
static void control_method(node_api_req_t *ar, size_t ci, const rt_json_t *params,
                           node_control_kind_t kind)
{
    alloc_units(&ar->cmds[ci], 1);
    ar->pending += 1;
    api_unit_t *u = &ar->cmds[ci].units[0];
    node_control_t *ctl = node_control_new(kind);
    rt_buf_t user = RT_BUF_INIT, client = RT_BUF_INIT, session = RT_BUF_INIT, ch = RT_BUF_INIT;
    int rc = get_str(params, "user", &user);
    rc = rc ? rc : get_str(params, "client", &client);
    rc = rc ? rc : get_str(params, "session", &session);
    rc = rc ? rc : get_str(params, "channel", &ch);
#define TAKE(field, buf)                                                                           \
    do {                                                                                           \
        rt_free(ctl->field);                                                                       \
        ctl->field = rt_str_dup(rt_buf_str(&(buf)));                                               \
    } while (0)
    TAKE(user, user);
    TAKE(client, client);
    TAKE(session, session);
    TAKE(channel, ch);
    if (rc == 0 && kind == NODE_CONTROL_SUBSCRIBE) {
        bool binary;
        if (ch.len == 0)
            rc = NODE_ERR_BAD_REQUEST;
        else if (resolve(ar, rt_buf_str(&ch)) == NULL)
            rc = NODE_ERR_UNKNOWN_CHANNEL;
        rc = rc ? rc : get_payload(params, "info", "b64info", &ctl->info, &binary);
        rc = rc ? rc : get_payload(params, "data", "b64data", &ctl->data, &binary);
        rc = rc ? rc : get_i64(params, "expire_at", &ctl->expire_at);
        rc = rc ? rc : get_override(params, &ctl->override);
        const rt_json_t *since = rt_json_get(params, "recover_since");
        if (rc == 0 && since && since->type == RT_JSON_OBJECT) {
            int64_t off = 0;
            rt_buf_t ep = RT_BUF_INIT;
            rc = get_i64(since, "offset", &off);
            rc = rc ? rc : get_str(since, "epoch", &ep);
            ctl->has_recover_since = true;
            ctl->recover_offset = off > 0 ? (uint64_t)off : 0;
            snprintf(ctl->recover_epoch, sizeof(ctl->recover_epoch), "%.*s", (int)ep.len,
                     ep.p ? (const char *)ep.p : "");
            rt_buf_cleanup(&ep);
        }
    } else if (rc == 0 && kind == NODE_CONTROL_UNSUBSCRIBE) {
        if (ch.len && resolve(ar, rt_buf_str(&ch)) == NULL)
            rc = NODE_ERR_UNKNOWN_CHANNEL;
    } else if (rc == 0 && kind == NODE_CONTROL_DISCONNECT) {
        const rt_json_t *d = rt_json_get(params, "disconnect");
        if (d && d->type == RT_JSON_OBJECT) {
            int64_t code = 0;
            rt_buf_t reason = RT_BUF_INIT;
            rc = get_i64(d, "code", &code);
            rc = rc ? rc : get_str(d, "reason", &reason);
            if (rc == 0 && (code < 0 || code > 65535))
                rc = NODE_ERR_BAD_REQUEST;
            ctl->code = (int)code;
            TAKE(reason, reason);
            rt_buf_cleanup(&reason);
        }
        const rt_json_t *wl = rt_json_get(params, "whitelist");
        if (rc == 0 && wl && wl->type == RT_JSON_ARRAY) {
            ctl->whitelist = rt_calloc(wl->count + 1, sizeof(char *));
            size_t i = 0;
            for (const rt_json_t *e = wl->child; e; e = e->next) {
                char *s;
                if (rt_json_get_string_dup(e, &s) == 0)
                    ctl->whitelist[i++] = s;
            }
        }
    } else if (rc == 0 && kind == NODE_CONTROL_REFRESH) {
        bool binary;
        rc = get_bool(params, "expired", &ctl->expired);
        const rt_json_t *ea = rt_json_get(params, "expire_at");
        ctl->has_expire_at = ea && ea->type != RT_JSON_NULL;
        rc = rc ? rc : get_i64(params, "expire_at", &ctl->expire_at);
        const rt_json_t *info = rt_json_get(params, "info");
        ctl->has_info = info && info->type != RT_JSON_NULL;
        rc = rc ? rc : get_payload(params, "info", "b64info", &ctl->info, &binary);
    }
#undef TAKE
    rt_buf_cleanup(&user);
    rt_buf_cleanup(&client);
    rt_buf_cleanup(&session);
    rt_buf_cleanup(&ch);
    if (rc) {
        node_control_unref(ctl);
        unit_fail(ar, u, rc);
        return;
    }
    node_op_t *op = unit_op(ar, ci, 0, NODE_OP_CONTROL, op_status_done);
    op->control = ctl;
    node_worker_post(ar->w, op);
}

static void m_subscribe(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    control_method(ar, ci, params, NODE_CONTROL_SUBSCRIBE);
}

static void m_unsubscribe(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    control_method(ar, ci, params, NODE_CONTROL_UNSUBSCRIBE);
}

static void m_disconnect(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    control_method(ar, ci, params, NODE_CONTROL_DISCONNECT);
}

static void m_refresh(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    control_method(ar, ci, params, NODE_CONTROL_REFRESH);
}

static void survey_method(node_api_req_t *ar, size_t ci, const rt_json_t *params, bool channels)
{
    alloc_units(&ar->cmds[ci], 1);
    ar->pending += 1;
    rt_buf_t pattern = RT_BUF_INIT;
    if (channels && get_str(params, "pattern", &pattern) != 0) {
        unit_fail(ar, &ar->cmds[ci].units[0], NODE_ERR_BAD_REQUEST);
        return;
    }
    node_op_t *op = unit_op(ar, ci, 0, NODE_OP_SURVEY, survey_done);
    op->want_channels = channels;
    snprintf(op->pattern, sizeof(op->pattern), "%.*s", (int)pattern.len,
             pattern.p ? (const char *)pattern.p : "");
    rt_buf_cleanup(&pattern);
    node_worker_post(ar->w, op);
}

static void m_channels(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    survey_method(ar, ci, params, true);
}

static void m_info(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    survey_method(ar, ci, params, false);
}

static void m_rpc(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    alloc_units(&ar->cmds[ci], 1);
    ar->pending += 1;
    rt_buf_t method = RT_BUF_INIT;
    int rc = get_str(params, "method", &method);
    /* No RPC extensions are registered (as in Centrifugo OSS). */
    unit_fail(ar, &ar->cmds[ci].units[0],
              rc                ? rc
              : method.len == 0 ? NODE_ERR_BAD_REQUEST
                                : NODE_ERR_METHOD_NOT_FOUND);
    rt_buf_cleanup(&method);
}

typedef struct api_method {
    const char *name;
    api_method_fn fn;
    int legacy_number; /* enum number of the legacy API, -1 = none */
} api_method_t;

static void m_batch(node_api_req_t *ar, size_t ci, const rt_json_t *params);

static const api_method_t methods[] = {
    {"publish", m_publish, 0},
    {"broadcast", m_broadcast, 1},
    {"unsubscribe", m_unsubscribe, 2},
    {"disconnect", m_disconnect, 3},
    {"presence", m_presence, 4},
    {"presence_stats", m_presence_stats, 5},
    {"history", m_history, 6},
    {"history_remove", m_history_remove, 7},
    {"channels", m_channels, 8},
    {"info", m_info, 9},
    {"rpc", m_rpc, 10},
    {"subscribe", m_subscribe, 11},
    {"refresh", m_refresh, 12},
    {"batch", m_batch, -1},
};

static const api_method_t *find_method(rt_str_t name, bool case_insensitive)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        rt_str_t m = rt_str_c(methods[i].name);
        if (case_insensitive ? rt_str_case_eq(m, name) : rt_str_eq(m, name))
            return &methods[i];
    }
    return NULL;
}

/* Runs one command. params must be an object (else 107). */
static void run_cmd(node_api_req_t *ar, size_t ci, const api_method_t *m, const rt_json_t *params)
{
    api_cmd_t *c = &ar->cmds[ci];
    c->method = m ? m->name : NULL;
    if (m == NULL) {
        c->code = NODE_ERR_METHOD_NOT_FOUND;
        return;
    }
    if (params == NULL || params->type != RT_JSON_OBJECT) {
        c->code = NODE_ERR_BAD_REQUEST;
        return;
    }
    m->fn(ar, ci, params);
}

static void m_batch(node_api_req_t *ar, size_t ci, const rt_json_t *params)
{
    (void)ci;
    /* Only reachable as the top-level method: the request becomes a batch. */
    const rt_json_t *cmds = rt_json_get(params, "commands");
    if (cmds == NULL || cmds->type != RT_JSON_ARRAY || cmds->count > API_MAX_UNITS) {
        ar->cmds[0].code = NODE_ERR_BAD_REQUEST;
        return;
    }
    rt_free(ar->cmds);
    ar->kind = API_BATCH;
    ar->ncmds = cmds->count;
    ar->cmds = rt_calloc(cmds->count ? cmds->count : 1, sizeof(*ar->cmds));
    size_t i = 0;
    for (const rt_json_t *e = cmds->child; e; e = e->next, i++) {
        if (e->type == RT_JSON_NULL || e->type != RT_JSON_OBJECT) {
            ar->cmds[i].code = NODE_ERR_BAD_REQUEST;
            continue;
        }
        const api_method_t *m = NULL;
        const rt_json_t *p = NULL;
        for (const rt_json_t *k = e->child; k; k = k->next) {
            rt_buf_t key = RT_BUF_INIT;
            rt_json_get_key(k, &key);
            const api_method_t *cand = find_method(rt_buf_str(&key), false);
            rt_buf_cleanup(&key);
            if (cand && cand->fn != m_batch && k->type != RT_JSON_NULL) {
                m = cand;
                p = k;
            }
        }
        run_cmd(ar, i, m, p);
    }
}

/* ---------------------------------------------------------------------------------------
 * Entry points.
 */

static bool key_eq(rt_str_t given, const char *key)
{
    size_t n = strlen(key);
    /* Constant time for equal lengths; the key length itself is not secret. */
    return given.n == n && n > 0 && CRYPTO_memcmp(given.p, key, n) == 0;
}

static bool authorized(node_worker_t *w, tr_http_req_t *req)
{
    const node_config_t *cfg = w->node->cfg;
    if (cfg->http_api_insecure)
        return true;
    if (cfg->http_api_key[0] == '\0')
        return false;
    rt_str_t h = tr_http_req_header(req, "X-API-Key");
    if (h.p)
        return key_eq(h, cfg->http_api_key);
    rt_str_t a = tr_http_req_header(req, "Authorization");
    if (a.p) {
        size_t i = 0;
        while (i < a.n && a.p[i] != ' ' && a.p[i] != '\t')
            i++;
        size_t j = i;
        while (j < a.n && (a.p[j] == ' ' || a.p[j] == '\t'))
            j++;
        size_t k = j;
        while (k < a.n && a.p[k] != ' ' && a.p[k] != '\t')
            k++;
        bool only_two = k == a.n || (k < a.n && j > i && a.p[k] == ' ' && k == a.n);
        if (only_two && rt_str_case_eq(rt_str_from(a.p, i), RT_STR("apikey")) &&
            key_eq(rt_str_from(a.p + j, k - j), cfg->http_api_key))
            return true;
    }
    if (tr_http_req_query(req).n) {
        rt_buf_t v = RT_BUF_INIT;
        bool ok = tr_http_req_query_param(req, "api_key", &v) == 0 &&
                  key_eq(rt_buf_str(&v), cfg->http_api_key);
        rt_buf_cleanup(&v);
        return ok;
    }
    return false;
}

/* Checks method and auth; answers and returns NULL when the request is refused. */
static node_api_req_t *api_begin(node_worker_t *w, tr_http_req_t *req, api_kind_t kind)
{
    if (!rt_str_eq_c(tr_http_req_method(req), "POST")) {
        tr_http_respond(req, 405, "application/json", RT_STR("{\"error\":\"method not allowed\"}"),
                        "Allow: POST\r\n");
        return NULL;
    }
    if (!authorized(w, req)) {
        if (w->node->cfg->http_api_key[0] == '\0' && !w->node->cfg->http_api_insecure)
            RT_LOG_ERROR(
                "API request refused: http_api.key is empty (set it or http_api.insecure)");
        /* Empty body, as Centrifugo (SERVER.md §1.2). */
        tr_http_respond(req, 401, NULL, RT_STR(""), NULL);
        return NULL;
    }
    node_api_req_t *ar = RT_NEW(node_api_req_t);
    ar->id = node_worker_next_id(w);
    ar->w = w;
    ar->req = req;
    ar->kind = kind;
    ar->pending = 1; /* guard while building */
    rt_str_t mode = tr_http_req_header(req, "X-Centrifugo-Error-Mode");
    ar->transport_mode = w->node->cfg->http_api_error_mode_transport ||
                         (mode.p && rt_str_case_eq(mode, RT_STR("transport")));
    node_map_put_id(&w->api_reqs, ar->id, ar);
    tr_http_req_on_abort(req, on_abort, ar);
    return ar;
}

static void api_finish_building(node_api_req_t *ar)
{
    if (--ar->pending == 0)
        respond(ar);
}

void node_api_handle(node_worker_t *w, tr_http_req_t *req, rt_str_t method)
{
    const api_method_t *m = find_method(method, false);
    if (m == NULL) {
        tr_http_respond_error(req, 404, "method not found");
        return;
    }
    node_api_req_t *ar = api_begin(w, req, API_SINGLE);
    if (ar == NULL)
        return;
    rt_str_t body = tr_http_req_body(req);
    rt_json_doc_t doc;
    if (rt_json_parse(&doc, body.p, body.n, 0) != 0 || doc.root->type != RT_JSON_OBJECT) {
        rt_json_doc_cleanup(&doc);
        node_map_del_id(&w->api_reqs, ar->id);
        rt_free(ar);
        tr_http_respond_error(req, 400, "bad request");
        return;
    }
    ar->ncmds = 1;
    ar->cmds = rt_calloc(1, sizeof(*ar->cmds));
    run_cmd(ar, 0, m, doc.root);
    rt_json_doc_cleanup(&doc);
    api_finish_building(ar);
}

/* End of the JSON object starting at p[i] ('{'), or 0 if unterminated. */
static size_t object_end(const char *p, size_t n, size_t i)
{
    int depth = 0;
    bool in_str = false;
    for (; i < n; i++) {
        char ch = p[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"')
            in_str = true;
        else if (ch == '{' || ch == '[')
            depth++;
        else if (ch == '}' || ch == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return 0;
}

void node_api_handle_legacy(node_worker_t *w, tr_http_req_t *req)
{
    if (atomic_load(&w->node->draining)) {
        tr_http_respond_error(req, 503, "shutting down");
        return;
    }
    node_api_req_t *ar = api_begin(w, req, API_LEGACY);
    if (ar == NULL)
        return;
    rt_str_t body = tr_http_req_body(req);
    /* First pass: split and validate the stream of objects, so a malformed body is a 400
     * before anything runs. */
    size_t count = 0, cap = 8;
    rt_json_doc_t *docs = rt_malloc(cap * sizeof(*docs));
    size_t i = 0;
    bool bad = false;
    while (i < body.n) {
        char ch = body.p[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            i++;
            continue;
        }
        size_t end = ch == '{' ? object_end(body.p, body.n, i) : 0;
        if (end == 0 || count >= API_MAX_UNITS) {
            bad = true;
            break;
        }
        if (count == cap) {
            cap *= 2;
            docs = rt_realloc(docs, cap * sizeof(*docs));
        }
        if (rt_json_parse(&docs[count], body.p + i, end - i, 0) != 0) {
            rt_json_doc_cleanup(&docs[count]);
            bad = true;
            break;
        }
        count++;
        i = end;
    }
    if (bad || count == 0) {
        for (size_t k = 0; k < count; k++)
            rt_json_doc_cleanup(&docs[k]);
        rt_free(docs);
        node_map_del_id(&w->api_reqs, ar->id);
        rt_free(ar);
        tr_http_respond_error(req, 400, "bad request");
        return;
    }
    ar->ncmds = count;
    ar->cmds = rt_calloc(count, sizeof(*ar->cmds));
    for (size_t k = 0; k < count; k++) {
        const rt_json_t *obj = docs[k].root;
        api_cmd_t *c = &ar->cmds[k];
        uint64_t id = 0;
        const rt_json_t *idv = rt_json_get(obj, "id");
        if (idv && rt_json_get_uint64(idv, &id) == 0 && id <= UINT32_MAX) {
            c->has_legacy_id = true;
            c->legacy_id = (uint32_t)id;
        }
        const rt_json_t *mv = rt_json_get(obj, "method");
        const api_method_t *m = NULL;
        if (mv == NULL || mv->type == RT_JSON_NULL) {
            m = &methods[0];
        } else if (mv->type == RT_JSON_STRING) {
            rt_buf_t name = RT_BUF_INIT;
            rt_json_get_string(mv, &name);
            m = find_method(rt_buf_str(&name), true);
            rt_buf_cleanup(&name);
        } else {
            int64_t num;
            if (rt_json_get_int64(mv, &num) == 0) {
                for (size_t j = 0; j < sizeof(methods) / sizeof(methods[0]); j++) {
                    if (methods[j].legacy_number == num)
                        m = &methods[j];
                }
            }
        }
        if (m && m->fn == m_batch)
            m = NULL;
        const rt_json_t *params = rt_json_get(obj, "params");
        if (m && (params == NULL || params->type == RT_JSON_NULL)) {
            c->method = m->name;
            c->code = NODE_ERR_BAD_REQUEST;
            continue;
        }
        run_cmd(ar, k, m, params);
    }
    for (size_t k = 0; k < count; k++)
        rt_json_doc_cleanup(&docs[k]);
    rt_free(docs);
    api_finish_building(ar);
}

void node_api_exec(node_worker_t *w, rt_str_t method, rt_str_t payload,
                   void (*done)(void *ud, int code), void *ud)
{
    const api_method_t *m = find_method(method, false);
    if (m == NULL || m->fn == m_batch) {
        done(ud, NODE_ERR_METHOD_NOT_FOUND);
        return;
    }
    rt_json_doc_t doc;
    if (rt_json_parse(&doc, payload.p, payload.n, 0) != 0 || doc.root->type != RT_JSON_OBJECT) {
        rt_json_doc_cleanup(&doc);
        done(ud, NODE_ERR_BAD_REQUEST);
        return;
    }
    node_api_req_t *ar = RT_NEW(node_api_req_t);
    ar->id = node_worker_next_id(w);
    ar->w = w;
    ar->kind = API_EXEC;
    ar->pending = 1; /* guard while building */
    ar->exec_done = done;
    ar->exec_ud = ud;
    node_map_put_id(&w->api_reqs, ar->id, ar);
    ar->ncmds = 1;
    ar->cmds = rt_calloc(1, sizeof(*ar->cmds));
    run_cmd(ar, 0, m, doc.root);
    rt_json_doc_cleanup(&doc);
    api_finish_building(ar);
}

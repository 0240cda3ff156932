/* The node's side of the cluster (SERVER.md §3.10), on the engine thread: node
 * announcements and the registry behind `info`, cross-node commands, surveys across nodes
 * for `channels`, readiness sampling and position re-checks after a broker reconnect. With
 * the memory broker there are no other nodes and all of this stays local. */
#include <stdio.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/base/time.h"
#include "node/control.h"
#include "node/node_internal.h"

#define HEARTBEAT_S     3.0 /* announcement period */
#define NODE_EXPIRE_S   7.0 /* a node not heard from for this long is gone */
#define REMOTE_SURVEY_S 3.0 /* wait at most this long for other nodes' answers */
#define READY_SAMPLE_S  0.25

typedef struct eng_node {
    node_info_t info; /* info.uid is the map key */
    double last_seen; /* ev_now */
} eng_node_t;

/* A `channels` call waiting for the other nodes. */
typedef struct eng_rsurvey {
    uint64_t id;
    node_engine_t *e;
    node_op_t *op; /* owned until answered */
    size_t waiting;
    ev_timer timer;
} eng_rsurvey_t;

static void publish(node_engine_t *e, const char *target_uid, node_ctl_msg_t *m)
{
    snprintf(m->uid, sizeof(m->uid), "%s", e->node->uid);
    rt_buf_t b = RT_BUF_INIT;
    node_ctl_encode(&b, m);
    int rc =
        broker_control_publish(e->broker, rt_str_c(target_uid ? target_uid : ""), rt_buf_str(&b));
    if (rc != 0)
        RT_LOG_DEBUG("control publish failed type=%d err=%s", m->type, rt_strerror(rc));
    rt_buf_cleanup(&b);
}

/* ---- own node info ---- */

static void fill_info(node_engine_t *e, const node_op_t *op, node_info_t *info)
{
    node_t *node = e->node;
    memset(info, 0, sizeof(*info));
    snprintf(info->uid, sizeof(info->uid), "%s", node->uid);
    snprintf(info->name, sizeof(info->name), "%s", node->cfg->node_name);
    snprintf(info->version, sizeof(info->version), "%s", NODE_VERSION_TEXT);
    if (op->survey) {
        info->num_clients = op->survey->num_clients;
        info->num_users = (uint32_t)op->survey->users.count;
        info->num_subs = op->survey->num_subs;
    }
    info->num_channels = (uint32_t)atomic_load(&e->num_channels);
    info->uptime_s = (rt_time_ms() - node->start_ms) / 1000;
}

static void announce_done(node_engine_t *e, node_op_t *op)
{
    node_ctl_msg_t m;
    node_ctl_msg_init(&m);
    m.type = NODE_CTL_NODE;
    fill_info(e, op, &m.node);
    publish(e, op->remote_uid[0] ? op->remote_uid : NULL, &m);
    node_ctl_msg_cleanup(&m);
}

/* Counts come from a survey of the local workers, then go to target ("" = everyone). */
static void announce(node_engine_t *e, const char *target_uid)
{
    node_op_t *op = node_op_new(NODE_OP_SURVEY, NULL, NULL);
    op->engine_done = announce_done;
    snprintf(op->remote_uid, sizeof(op->remote_uid), "%s", target_uid ? target_uid : "");
    node_engine_post(e, op);
}

static void drop_node(node_engine_t *e, eng_node_t *n)
{
    node_map_del(&e->registry, rt_str_c(n->info.uid));
    /* A remote survey waiting for this node would otherwise wait for its timeout. */
    rt_free(n);
}

static void on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents)
{
    node_engine_t *e = t->data;
    announce(e, NULL);
    double now = ev_now(loop);
    for (;;) {
        eng_node_t *stale = NULL;
        for (node_map_iter_t it = node_map_iter(&e->registry); node_map_next(&it);) {
            eng_node_t *n = it.entry->val;
            if (now - n->last_seen > NODE_EXPIRE_S) {
                stale = n;
                break;
            }
        }
        if (stale == NULL)
            break;
        RT_LOG_INFO("node gone uid=%s name=%s", stale->info.uid, stale->info.name);
        drop_node(e, stale);
    }
}

static void on_ready_sample(struct ev_loop *loop, ev_timer *t, int revents)
{
    node_engine_t *e = t->data;
    const char *reason = NULL;
    bool ok = broker_ready(e->broker, &reason);
    atomic_store(&e->broker_reason, ok ? NULL : reason);
    int was = atomic_exchange(&e->broker_ok, ok ? 1 : 0);
    if (was != (ok ? 1 : 0)) {
        if (ok) {
            RT_LOG_INFO("broker ready");
            /* A re-check issued when PUB/SUB came back may have failed while the command
             * connection was still down: check again now that everything is up. */
            node_cluster_on_resubscribed(e);
        } else
            RT_LOG_WARN("broker not ready: %s", reason ? reason : "unavailable");
    }
}

/* ---- surveys ---- */

static void rsurvey_finish(eng_rsurvey_t *rs)
{
    node_engine_t *e = rs->e;
    ev_timer_stop(e->loop, &rs->timer);
    node_map_del_id(&e->remote_surveys, rs->id);
    node_op_t *op = rs->op;
    rt_free(rs);
    node_engine_answer(e, op);
}

static void on_rsurvey_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    eng_rsurvey_t *rs = t->data;
    RT_LOG_WARN("survey timed out waiting for %zu node(s)", rs->waiting);
    rsurvey_finish(rs);
}

static void survey_reply_done(node_engine_t *e, node_op_t *op)
{
    node_ctl_msg_t m;
    node_ctl_msg_init(&m);
    m.type = NODE_CTL_SURVEY_RESP;
    m.survey_id = op->remote_id;
    if (op->survey)
        node_ctl_encode_channels(&m.survey_data, &op->survey->channels);
    else
        m.survey_code = 1;
    publish(e, op->remote_uid, &m);
    node_ctl_msg_cleanup(&m);
}

void node_cluster_local_survey_done(node_engine_t *e, node_op_t *op)
{
    if (!op->want_channels) {
        /* info: the other live nodes from the registry. */
        size_t n = e->registry.count, i = 0;
        op->nodes = n ? rt_calloc(n, sizeof(*op->nodes)) : NULL;
        for (node_map_iter_t it = node_map_iter(&e->registry); node_map_next(&it);)
            op->nodes[i++] = ((eng_node_t *)it.entry->val)->info;
        op->nnodes = i;
        node_engine_answer(e, op);
        return;
    }
    if (e->registry.count == 0 || op->engine_done) {
        node_engine_answer(e, op);
        return;
    }
    eng_rsurvey_t *rs = RT_NEW(eng_rsurvey_t);
    rs->id = ++e->next_survey_id;
    rs->e = e;
    rs->op = op;
    rs->waiting = e->registry.count;
    node_map_put_id(&e->remote_surveys, rs->id, rs);
    ev_timer_init(&rs->timer, on_rsurvey_timeout, REMOTE_SURVEY_S, 0);
    rs->timer.data = rs;
    ev_timer_start(e->loop, &rs->timer);
    node_ctl_msg_t m;
    node_ctl_msg_init(&m);
    m.type = NODE_CTL_SURVEY_REQ;
    m.survey_id = rs->id;
    snprintf(m.survey_op, sizeof(m.survey_op), "channels");
    rt_buf_append_cstr(&m.survey_data, op->pattern);
    publish(e, NULL, &m);
    node_ctl_msg_cleanup(&m);
}

/* ---- incoming control ---- */

static void on_node(node_engine_t *e, const node_ctl_msg_t *m)
{
    eng_node_t *n = node_map_get(&e->registry, rt_str_c(m->uid));
    bool is_new = n == NULL;
    if (is_new) {
        n = RT_NEW(eng_node_t);
        RT_LOG_INFO("node joined uid=%s name=%s", m->uid, m->node.name);
    } else {
        node_map_del(&e->registry, rt_str_c(n->info.uid));
    }
    n->info = m->node;
    snprintf(n->info.uid, sizeof(n->info.uid), "%s", m->uid);
    n->last_seen = ev_now(e->loop);
    node_map_put(&e->registry, rt_str_c(n->info.uid), n);
    /* A new node learns about us at once instead of after a heartbeat period. */
    if (is_new)
        announce(e, m->uid);
}

static void on_survey_request(node_engine_t *e, const node_ctl_msg_t *m)
{
    node_op_t *op = node_op_new(NODE_OP_SURVEY, NULL, NULL);
    op->engine_done = survey_reply_done;
    op->want_channels = true;
    op->remote_id = m->survey_id;
    snprintf(op->remote_uid, sizeof(op->remote_uid), "%s", m->uid);
    snprintf(op->pattern, sizeof(op->pattern), "%.*s", (int)m->survey_data.len,
             m->survey_data.p ? (const char *)m->survey_data.p : "");
    if (strcmp(m->survey_op, "channels") != 0) {
        node_op_free(op);
        node_ctl_msg_t r;
        node_ctl_msg_init(&r);
        r.type = NODE_CTL_SURVEY_RESP;
        r.survey_id = m->survey_id;
        r.survey_code = 3; /* unknown op */
        publish(e, m->uid, &r);
        node_ctl_msg_cleanup(&r);
        return;
    }
    node_engine_post(e, op);
}

static void on_survey_response(node_engine_t *e, const node_ctl_msg_t *m)
{
    eng_rsurvey_t *rs = node_map_get_id(&e->remote_surveys, m->survey_id);
    if (rs == NULL)
        return; /* timed out already */
    if (m->survey_code == 0 && rs->op->survey)
        node_ctl_decode_channels(m->survey_data.p, m->survey_data.len, rs->op->survey);
    if (--rs->waiting == 0)
        rsurvey_finish(rs);
}

void node_cluster_on_control(void *ud, rt_str_t data)
{
    node_engine_t *e = ud;
    node_ctl_msg_t m;
    if (node_ctl_decode((const uint8_t *)data.p, data.n, &m) != 0) {
        RT_LOG_DEBUG("malformed control message len=%zu", data.n);
        node_ctl_msg_cleanup(&m);
        return;
    }
    if (strcmp(m.uid, e->node->uid) == 0)
        goto out; /* our own broadcast */
    switch (m.type) {
    case NODE_CTL_NODE:
        on_node(e, &m);
        break;
    case NODE_CTL_SHUTDOWN: {
        eng_node_t *n = node_map_get(&e->registry, rt_str_c(m.uid));
        if (n) {
            RT_LOG_INFO("node left uid=%s name=%s", n->info.uid, n->info.name);
            drop_node(e, n);
        }
        break;
    }
    case NODE_CTL_COMMAND:
        for (int i = 0; i < e->node->nworkers; i++)
            node_worker_deliver_control(e->node->workers[i], m.control);
        break;
    case NODE_CTL_SURVEY_REQ:
        on_survey_request(e, &m);
        break;
    case NODE_CTL_SURVEY_RESP:
        on_survey_response(e, &m);
        break;
    case NODE_CTL_EMULATION: {
        int k = node_session_worker(rt_str_c(m.session), e->node->nworkers);
        if (k >= 0)
            node_worker_deliver_emulation(e->node->workers[k], rt_str_c(m.session),
                                          rt_buf_str(&m.survey_data));
        break;
    }
    }
out:
    node_control_unref(m.control);
    node_ctl_msg_cleanup(&m);
}

int node_cluster_emulation(node_engine_t *e, node_op_t *op)
{
    if (node_map_get(&e->registry, rt_str_c(op->remote_uid)) == NULL)
        return RT_ENOTFOUND;
    node_ctl_msg_t m;
    node_ctl_msg_init(&m);
    m.type = NODE_CTL_EMULATION;
    snprintf(m.uid, sizeof(m.uid), "%s", e->node->uid);
    snprintf(m.session, sizeof(m.session), "%.*s", (int)op->channel.n, op->channel.p);
    rt_buf_append(&m.survey_data, op->emu_data.p, op->emu_data.n);
    rt_buf_t b = RT_BUF_INIT;
    node_ctl_encode(&b, &m);
    int rc = broker_control_publish(e->broker, rt_str_c(op->remote_uid), rt_buf_str(&b));
    rt_buf_cleanup(&b);
    node_ctl_msg_cleanup(&m);
    if (rc == 0)
        atomic_fetch_add_explicit(&e->node->metrics.emulation_forwarded, 1, memory_order_relaxed);
    return rc;
}

void node_cluster_publish_command(node_engine_t *e, node_control_t *c)
{
    node_ctl_msg_t m;
    node_ctl_msg_init(&m);
    m.type = NODE_CTL_COMMAND;
    m.control = c;
    publish(e, NULL, &m);
    node_ctl_msg_cleanup(&m);
}

void node_cluster_on_resubscribed(void *ud)
{
    node_engine_t *e = ud;
    RT_LOG_INFO("re-checking stream positions of positioned subscriptions");
    for (int i = 0; i < e->node->nworkers; i++)
        node_worker_recheck_positions(e->node->workers[i]);
}

void node_cluster_start(node_engine_t *e)
{
    node_map_init(&e->registry);
    node_map_init(&e->remote_surveys);
    atomic_init(&e->broker_ok, 1);
    ev_timer_init(&e->heartbeat, on_heartbeat, 0.05, HEARTBEAT_S);
    e->heartbeat.data = e;
    ev_timer_start(e->loop, &e->heartbeat);
    ev_timer_init(&e->ready_timer, on_ready_sample, 0, READY_SAMPLE_S);
    e->ready_timer.data = e;
    ev_timer_start(e->loop, &e->ready_timer);
}

void node_cluster_shutdown(node_engine_t *e)
{
    node_ctl_msg_t m;
    node_ctl_msg_init(&m);
    m.type = NODE_CTL_SHUTDOWN;
    publish(e, NULL, &m);
    node_ctl_msg_cleanup(&m);
}

void node_cluster_stop(node_engine_t *e)
{
    ev_timer_stop(e->loop, &e->heartbeat);
    ev_timer_stop(e->loop, &e->ready_timer);
    for (;;) {
        node_map_iter_t it = node_map_iter(&e->remote_surveys);
        if (!node_map_next(&it))
            break;
        rsurvey_finish(it.entry->val);
    }
    node_map_cleanup(&e->remote_surveys);
    for (node_map_iter_t it = node_map_iter(&e->registry); node_map_next(&it);)
        rt_free(it.entry->val);
    node_map_cleanup(&e->registry);
}

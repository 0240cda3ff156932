/* Node lifecycle: start-up (verifiers, engine, workers, signals), graceful shutdown
 * (SERVER.md §6.1 and §7.9): /ready turns 503 at once, after shutdown.drain_delay the
 * listeners close and every client is disconnected with 3001 (reconnect), the process
 * exits when the workers are empty or at shutdown.timeout. A second signal exits at once. */
#include "node/server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker/rds.h"
#include "node/base/alloc.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/base/rand.h"
#include "node/base/time.h"
#include "node/node_internal.h"

typedef struct server {
    node_t node;
    struct ev_loop *loop;
    ev_signal sigterm, sigint;
    ev_timer drain_timer;
    ev_timer deadline;
    ev_timer reap; /* polls for workers that finished */
    int signals;
    bool *joined; /* per worker: its thread has ended and was joined */
} server_t;

static void on_reap(struct ev_loop *loop, ev_timer *t, int revents)
{
    server_t *s = t->data;
    /* A worker is done when it has no connection left (node_worker_try_join). Workers
     * are freed only after the engine, which may still post to their mailboxes. */
    int done = 0;
    for (int i = 0; i < s->node.nworkers; i++) {
        if (!s->joined[i] && node_worker_try_join(s->node.workers[i]))
            s->joined[i] = true;
        done += s->joined[i];
    }
    if (done == s->node.nworkers) {
        /* Apply what the workers posted last (presence removals, leaves). */
        rt_mailbox_drain(&s->node.engine->mailbox);
        RT_LOG_INFO("shutdown complete");
        ev_break(loop, EVBREAK_ALL);
    }
}

static void on_drain(struct ev_loop *loop, ev_timer *t, int revents)
{
    server_t *s = t->data;
    RT_LOG_INFO("closing listeners and disconnecting clients");
    /* Peers drop us from their registries now rather than after the expiry; the loop
     * keeps running, so the message is written. */
    node_cluster_shutdown(s->node.engine);
    for (int i = 0; i < s->node.nworkers; i++)
        node_worker_request_stop(s->node.workers[i]);
    ev_timer_init(&s->reap, on_reap, 0.05, 0.05);
    s->reap.data = s;
    ev_timer_start(loop, &s->reap);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    RT_LOG_ERROR("shutdown timeout reached, exiting");
    _exit(1);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    server_t *s = w->data;
    if (++s->signals > 1) {
        RT_LOG_WARN("second signal, exiting now");
        _exit(1);
    }
    const node_config_t *cfg = s->node.cfg;
    RT_LOG_INFO("signal %d: shutting down (drain %lldms, timeout %lldms)", w->signum,
                (long long)cfg->shutdown_drain_delay_ms, (long long)cfg->shutdown_timeout_ms);
    atomic_store(&s->node.draining, 1);
    ev_timer_init(&s->deadline, on_deadline, (double)cfg->shutdown_timeout_ms / 1000.0, 0);
    ev_timer_start(loop, &s->deadline);
    ev_timer_init(&s->drain_timer, on_drain, (double)cfg->shutdown_drain_delay_ms / 1000.0, 0);
    s->drain_timer.data = s;
    ev_timer_start(loop, &s->drain_timer);
}

/* Raises the open-files limit to the hard limit: every connection is a descriptor. */
/* " redis_shards=host:port,..." for the start-up line: where each shard lives, never its
 * credentials. Empty for the memory engine. */
static void redis_shard_names(const node_config_t *cfg, rt_buf_t *out)
{
    if (strcmp(cfg->engine_type, "redis") != 0)
        return;
    rt_buf_append_cstr(out, " redis_shards=");
    for (size_t i = 0; i < cfg->redis_addresses_count; i++) {
        rds_addr_t a;
        rt_buf_t err = RT_BUF_INIT;
        if (i)
            rt_buf_append_byte(out, ',');
        if (rds_addr_parse(cfg->redis_addresses[i], &a, &err) == 0)
            rt_buf_append_cstr(out, rds_addr_name(&a));
        else
            rt_buf_append_cstr(out, "?");
        rds_addr_cleanup(&a);
        rt_buf_cleanup(&err);
    }
    rt_buf_append_byte(out, '\0');
}

static rlim_t raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            RT_LOG_WARN("could not raise the open files limit");
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < 65536)
        RT_LOG_WARN("open files limit is %llu: at most about that many connections",
                    (unsigned long long)rl.rlim_cur);
    return rl.rlim_cur;
}

static bool has_token_key(const node_token_config_t *t)
{
    return t->hmac_secret_key[0] || t->rsa_public_key[0] || t->ecdsa_public_key[0];
}

int node_server_run(const node_config_t *cfg)
{
    signal(SIGPIPE, SIG_IGN);
    rt_log_set_level(cfg->log_level);
    /* A running node logs to stdout, one JSON object per line unless a person watches a
     * terminal (what container runtimes and log shippers expect, as with Centrifugo);
     * command-line tools keep stdout for their output and log to stderr. */
    rt_log_set_fd(STDOUT_FILENO);
    if (!isatty(STDOUT_FILENO))
        rt_log_set_json(true);

    server_t *s = RT_NEW(server_t);
    node_t *node = &s->node;
    node->cfg = cfg;
    rt_uuid4(node->uid);
    node->start_ms = rt_time_ms();
    rt_buf_t err = RT_BUF_INIT;
    int rc = node_jwt_verifier_new(&cfg->token, cfg->insecure_skip_token_signature_verify,
                                   &node->verifier, &err);
    if (rc == 0 && cfg->subscription_token_enabled)
        rc = node_jwt_verifier_new(&cfg->subscription_token,
                                   cfg->insecure_skip_token_signature_verify, &node->sub_verifier,
                                   &err);
    if (rc != 0) {
        RT_LOG_ERROR("client.token: %.*s", (int)err.len, err.p ? (const char *)err.p : "");
        rt_buf_cleanup(&err);
        rt_free(s);
        return 1;
    }
    rt_buf_cleanup(&err);
    if (node->sub_verifier == NULL)
        node->sub_verifier = node->verifier;

    s->loop = EV_DEFAULT;
    node->nworkers = cfg->workers > 0 ? cfg->workers : 1;
    if (node->nworkers > NODE_MAX_WORKERS)
        node->nworkers = NODE_MAX_WORKERS;
    node->workers = rt_calloc((size_t)node->nworkers, sizeof(*node->workers));
    s->joined = rt_calloc((size_t)node->nworkers, sizeof(*s->joined));
    node->engine = node_engine_new(node, s->loop);
    rt_mailbox_set_owner(&node->engine->mailbox); /* this thread runs s->loop */
    /* A single worker shares the engine's loop (see node_worker_t.shares_loop). */
    for (int i = 0; i < node->nworkers; i++)
        node->workers[i] = node_worker_new(node, i, node->nworkers == 1 ? s->loop : NULL);
    rlim_t nofile = raise_nofile();
    /* Signal watchers before the listeners: a SIGTERM that arrives as soon as /health
     * answers must start a drain, not kill the process with the default action. */
    ev_signal_init(&s->sigterm, on_signal, SIGTERM);
    ev_signal_init(&s->sigint, on_signal, SIGINT);
    s->sigterm.data = s->sigint.data = s;
    ev_signal_start(s->loop, &s->sigterm);
    ev_signal_start(s->loop, &s->sigint);
    for (int i = 0; i < node->nworkers; i++) {
        if (node_worker_start(node->workers[i]) != 0) {
            RT_LOG_ERROR("cannot listen on %s:%d", cfg->http_address[0] ? cfg->http_address : "*",
                         cfg->http_port);
            _exit(1); /* started workers hold threads; nothing to flush yet */
        }
    }

    rt_buf_t shards = RT_BUF_INIT;
    redis_shard_names(cfg, &shards);
    RT_LOG_INFO("rotor %s started pid=%d uid=%s name=%s workers=%d engine=%s%s address=%s port=%d "
                "nofile=%llu",
                RT_VERSION, (int)getpid(), node->uid, cfg->node_name, node->nworkers,
                cfg->engine_type, shards.len ? (const char *)shards.p : "",
                cfg->http_address[0] ? cfg->http_address : "*", cfg->http_port,
                (unsigned long long)nofile);
    rt_buf_cleanup(&shards);
    if (!has_token_key(&cfg->token) && !cfg->client_insecure &&
        !cfg->allow_anonymous_connect_without_token)
        RT_LOG_WARN("no client.token key configured: clients cannot connect. Run `rotor "
                    "genconfig` to create config.json with a secret, then `rotor gentoken -u "
                    "<user>` for a token");
    if (!cfg->http_api_key[0] && !cfg->http_api_insecure)
        RT_LOG_WARN("no http_api.key configured: the server API refuses every request");

    ev_run(s->loop, 0);

    int nworkers = node->nworkers;
    for (int i = 0; i < nworkers; i++) {
        if (!s->joined[i])
            node_worker_join(node->workers[i]);
    }
    node_engine_free(node->engine); /* sets nworkers to 0 so late answers are freed */
    for (int i = 0; i < nworkers; i++)
        node_worker_free(node->workers[i]);
    if (node->sub_verifier != node->verifier)
        node_jwt_verifier_free(node->sub_verifier);
    node_jwt_verifier_free(node->verifier);
    rt_free(node->workers);
    rt_free(s->joined);
    ev_timer_stop(s->loop, &s->deadline);
    rt_free(s);
    return 0;
}

/* /metrics in the Prometheus text format, under Centrifugo's metric names so existing
 * dashboards work (SERVER.md §5.1). Node-wide counts come from a survey of every worker
 * (exact unique users and channels); the node count from the engine's registry; counters are
 * relaxed atomics. What only a worker's own thread may read (its clients by transport, their
 * queued bytes) is gathered by a mail that visits every worker in turn before the survey. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "node/base/alloc.h"
#include "node/base/assert.h"
#include "node/base/log.h"
#include "node/codes.h"
#include "node/consumer.h"
#include "node/node_internal.h"

static const int disconnect_codes[15] = {3001, 3004, 3005, 3006, 3008, 3009, 3010, 3011,
                                         3012, 3500, 3501, 3502, 3503, 3504, 3507};

void node_metrics_count_disconnect(node_t *node, int code)
{
    int slot = 15; /* other */
    for (int i = 0; i < 15; i++) {
        if (disconnect_codes[i] == code)
            slot = i;
    }
    atomic_fetch_add_explicit(&node->metrics.disconnects[slot], 1, memory_order_relaxed);
}

/* Centrifugo's transport label values; several wire forms share one (JSON and Protobuf). */
#define NTRANSPORTS 7
static const char *const transport_names[NTRANSPORTS] = {
    "websocket", "sse", "http_stream", "uni_websocket", "uni_sse", "uni_http_stream", "uni_grpc",
};

/* Travels worker 0 -> 1 -> ... -> nworkers-1, then back to origin. Whoever holds the mail
 * owns it; it owns no pointer, so a mailbox freeing it unrun at shutdown leaks nothing. */
typedef struct gather_mail {
    rt_mail_t mail;
    node_worker_t *origin;                   /* borrowed: the worker answering the scrape */
    uint64_t req_id;                         /* the metrics_req_t in origin->api_reqs */
    int next;                                /* index of the next worker to visit */
    uint32_t clients[NODE_WIRE_COUNT];       /* live (not closing) sessions by wire form */
    uint64_t queued_bytes[NODE_MAX_WORKERS]; /* bytes queued to clients, by worker index */
} gather_mail_t;

typedef struct metrics_req {
    uint64_t id;
    tr_http_req_t *req;    /* NULL once aborted */
    gather_mail_t *gather; /* owned once the gather came back; NULL before */
} metrics_req_t;

static void on_abort(void *ud)
{
    ((metrics_req_t *)ud)->req = NULL;
}

/* Process facts from /proc: memory-backed, so reading it does not block the loop. */
static long read_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (d == NULL)
        return 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n > 2 ? n - 3 : 0; /* ., .. and the directory's own fd */
}

static void gauge(rt_buf_t *b, const char *name, const char *help, unsigned long long v)
{
    rt_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name, v);
}

static void counter_head(rt_buf_t *b, const char *name, const char *help)
{
    rt_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
}

static unsigned long long load(_Atomic uint64_t *v)
{
    return (unsigned long long)atomic_load_explicit(v, memory_order_relaxed);
}

/* A per-wire counter summed over the wire forms of one transport. */
static unsigned long long transport_sum(_Atomic uint64_t *by_wire, const char *transport)
{
    unsigned long long n = 0;
    for (int wire = 0; wire < NODE_WIRE_COUNT; wire++) {
        if (strcmp(node_wire_name((node_wire_t)wire), transport) == 0)
            n += load(&by_wire[wire]);
    }
    return n;
}

static uint32_t transport_clients(const gather_mail_t *g, const char *transport)
{
    uint32_t n = 0;
    for (int wire = 0; wire < NODE_WIRE_COUNT; wire++) {
        if (strcmp(node_wire_name((node_wire_t)wire), transport) == 0)
            n += g->clients[wire];
    }
    return n;
}

/* nnodes: the other live nodes in the engine's registry. */
static void render(node_worker_t *w, rt_buf_t *b, const node_survey_result_t *s, size_t nnodes,
                   const gather_mail_t *g)
{
    node_t *node = w->node;
    node_metrics_t *m = &node->metrics;
    gauge(b, "centrifugo_node_num_clients", "Number of clients connected.", s->num_clients);
    gauge(b, "centrifugo_node_num_users", "Number of unique users connected.", s->users.count);
    gauge(b, "centrifugo_node_num_subscriptions", "Number of subscriptions.", s->num_subs);
    gauge(b, "centrifugo_node_num_channels", "Number of channels with one or more subscribers.",
          (unsigned long long)atomic_load(&node->engine->num_channels));
    gauge(b, "centrifugo_node_num_nodes", "Number of nodes in the cluster.",
          (unsigned long long)nnodes + 1);
    rt_buf_printf(b,
                  "# HELP centrifugo_node_build Node build info.\n# TYPE centrifugo_node_build "
                  "gauge\ncentrifugo_node_build{version=\"%s\"} 1\n",
                  RT_VERSION);
    counter_head(b, "centrifugo_node_messages_sent_count", "Number of messages sent to broker.");
    rt_buf_printf(
        b,
        "centrifugo_node_messages_sent_count{channel_namespace=\"\",type=\"publication\"} "
        "%llu\n",
        load(&m->publications));
    counter_head(b, "centrifugo_client_connections_accepted", "Number of accepted connections.");
    for (int t = 0; t < NTRANSPORTS; t++) {
        rt_buf_printf(b,
                      "centrifugo_client_connections_accepted{accept_protocol=\"%s\",client_name="
                      "\"\",client_version=\"\",transport=\"%s\"} %llu\n",
                      strcmp(transport_names[t], "uni_grpc") == 0 ? "h2" : "h1", transport_names[t],
                      transport_sum(m->connections_accepted, transport_names[t]));
    }
    rt_buf_printf(b, "# HELP centrifugo_client_connections_inflight Number of inflight client "
                     "connections.\n# TYPE centrifugo_client_connections_inflight gauge\n");
    for (int t = 0; t < NTRANSPORTS; t++) {
        rt_buf_printf(b,
                      "centrifugo_client_connections_inflight{accept_protocol=\"%s\",client_name="
                      "\"\",client_version=\"\",transport=\"%s\"} %u\n",
                      strcmp(transport_names[t], "uni_grpc") == 0 ? "h2" : "h1", transport_names[t],
                      transport_clients(g, transport_names[t]));
    }
    counter_head(b, "centrifugo_client_num_server_disconnects",
                 "Number of server initiated disconnects.");
    for (int i = 0; i < 16; i++) {
        unsigned long long v = load(&m->disconnects[i]);
        if (v == 0)
            continue;
        if (i < 15)
            rt_buf_printf(b, "centrifugo_client_num_server_disconnects{code=\"%d\"} %llu\n",
                          disconnect_codes[i], v);
        else
            rt_buf_printf(b, "centrifugo_client_num_server_disconnects{code=\"other\"} %llu\n", v);
    }
    counter_head(b, "centrifugo_client_num_reply_errors",
                 "Number of errors in replies sent to clients.");
    rt_buf_printf(
        b,
        "centrifugo_client_num_reply_errors{channel_namespace=\"\",code=\"\",method=\"\"} %llu\n",
        load(&m->reply_errors));
    counter_head(b, "centrifugo_client_recover", "Count of recover operations.");
    rt_buf_printf(b,
                  "centrifugo_client_recover{channel_namespace=\"\",has_recovered_publications="
                  "\"\",recovered=\"yes\"} %llu\n",
                  load(&m->recover_ok));
    rt_buf_printf(b,
                  "centrifugo_client_recover{channel_namespace=\"\",has_recovered_publications="
                  "\"\",recovered=\"no\"} %llu\n",
                  load(&m->recover_fail));
    counter_head(b, "centrifugo_transport_messages_sent",
                 "Number of messages sent to client connections over specific transport.");
    for (int t = 0; t < NTRANSPORTS; t++)
        rt_buf_printf(b,
                      "centrifugo_transport_messages_sent{channel_namespace=\"\",frame_type=\"\","
                      "transport=\"%s\"} %llu\n",
                      transport_names[t], transport_sum(m->messages_sent, transport_names[t]));
    counter_head(b, "centrifugo_transport_messages_received",
                 "Number of messages received from client connections over specific transport.");
    for (int t = 0; t < NTRANSPORTS; t++)
        rt_buf_printf(b,
                      "centrifugo_transport_messages_received{channel_namespace=\"\",frame_type="
                      "\"\",transport=\"%s\"} %llu\n",
                      transport_names[t], transport_sum(m->messages_received, transport_names[t]));
    counter_head(b, "centrifugo_api_command_errors_total", "Number of errors in API commands.");
    rt_buf_printf(
        b, "centrifugo_api_command_errors_total{error=\"\",method=\"\",protocol=\"http\"} %llu\n",
        load(&m->api_errors));
    node_consumers_render_metrics(node->engine->consumers, b);
    counter_head(b, "rotor_api_commands_total", "Number of server API commands executed.");
    rt_buf_printf(b, "rotor_api_commands_total{protocol=\"http\"} %llu\n", load(&m->api_commands));
    counter_head(b, "rotor_publication_encodes_total",
                 "Publications encoded for a wire form (once per publication and form).");
    rt_buf_printf(b, "rotor_publication_encodes_total %llu\n",
                  (unsigned long long)node_hub_encode_count());
    counter_head(b, "rotor_emulation_forwarded_total",
                 "Emulation requests forwarded to the node holding their session.");
    rt_buf_printf(b, "rotor_emulation_forwarded_total %llu\n", load(&m->emulation_forwarded));
    rt_buf_printf(b, "# HELP rotor_worker_client_queue_bytes Bytes queued to clients, per "
                     "worker.\n# TYPE rotor_worker_client_queue_bytes gauge\n");
    for (int i = 0; i < node->nworkers; i++)
        rt_buf_printf(b, "rotor_worker_client_queue_bytes{worker=\"%d\"} %llu\n", i,
                      (unsigned long long)g->queued_bytes[i]);
    gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.",
          (unsigned long long)read_rss_bytes());
    gauge(b, "process_open_fds", "Number of open file descriptors.",
          (unsigned long long)count_fds());
}

static void survey_done(node_worker_t *w, node_op_t *op)
{
    metrics_req_t *mr = node_map_del_id(&w->api_reqs, op->ref_id);
    if (mr == NULL)
        return;
    if (mr->req) {
        rt_buf_t b = RT_BUF_INIT;
        if (op->status == 0 && op->survey)
            render(w, &b, op->survey, op->nnodes, mr->gather);
        tr_http_respond(mr->req, op->status == 0 ? 200 : 500, "text/plain; version=0.0.4",
                        rt_buf_str(&b), NULL);
        rt_buf_cleanup(&b);
    }
    rt_free(mr->gather);
    rt_free(mr);
}

/* On origin's thread: every worker has added its part. */
static void on_gather_done(rt_mail_t *mail, void *ctx)
{
    node_worker_t *w = ctx;
    gather_mail_t *g = (gather_mail_t *)mail;
    metrics_req_t *mr = node_map_get_id(&w->api_reqs, g->req_id);
    RT_ASSERT(mr != NULL && mr->gather == NULL); /* only survey_done removes it */
    mr->gather = g;
    node_op_t *op = node_op_new(NODE_OP_SURVEY, w, survey_done);
    op->ref_id = mr->id;
    node_worker_post(w, op);
}

/* On the visited worker's thread: its clients are only safe to read here. */
static void on_gather(rt_mail_t *mail, void *ctx)
{
    node_worker_t *w = ctx;
    gather_mail_t *g = (gather_mail_t *)mail;
    uint64_t queued = 0;
    for (node_client_t *c = w->client_list; c; c = c->next) {
        queued += node_link_queued_bytes(c);
        if (c->state != NODE_CLIENT_CLOSING && (unsigned)c->wire < NODE_WIRE_COUNT)
            g->clients[c->wire]++;
    }
    g->queued_bytes[w->index] = queued;
    node_t *node = w->node;
    if (++g->next < node->nworkers) {
        rt_mailbox_post(&node->workers[g->next]->mailbox, &g->mail);
        return;
    }
    g->mail.fn = on_gather_done;
    rt_mailbox_post(&g->origin->mailbox, &g->mail);
}

void node_metrics_render(node_worker_t *w, tr_http_req_t *req)
{
    metrics_req_t *mr = RT_NEW(metrics_req_t);
    mr->id = node_worker_next_id(w);
    mr->req = req;
    /* The request map holds API requests and these; both are freed by their own code and
     * only looked up by their own completion callbacks. */
    node_map_put_id(&w->api_reqs, mr->id, mr);
    tr_http_req_on_abort(req, on_abort, mr);
    gather_mail_t *g = RT_NEW(gather_mail_t);
    g->mail.fn = on_gather;
    g->origin = w;
    g->req_id = mr->id;
    rt_mailbox_post(&w->node->workers[0]->mailbox, &g->mail);
}

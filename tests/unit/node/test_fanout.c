/* The fan-out path (DESIGN.md): one publication delivered to 1,000 WebSocket subscribers
 * of one worker is encoded once, and the fan-out allocates nothing per subscriber. Real
 * sockets on loopback, a real worker and engine loop driven from this thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/base/alloc.h"
#include "node/config.h"
#include "node/node_internal.h"

int run_fanout(void);

#define NSUBS 1000

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* A masked client text frame (payload < 126 bytes). */
static size_t client_frame(uint8_t *out, const char *payload)
{
    size_t n = strlen(payload);
    static const uint8_t mask[4] = {1, 2, 3, 4};
    out[0] = 0x81;
    out[1] = (uint8_t)(0x80 | n);
    memcpy(out + 2, mask, 4);
    for (size_t i = 0; i < n; i++)
        out[6 + i] = (uint8_t)payload[i] ^ mask[i % 4];
    return 6 + n;
}

static int connect_client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    static const char hs[] = "GET /connection/websocket HTTP/1.1\r\nHost: x\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\n\r\n";
    uint8_t buf[512];
    memcpy(buf, hs, sizeof(hs) - 1);
    size_t n = sizeof(hs) - 1;
    n += client_frame(buf + n,
                      "{\"connect\":{},\"id\":1}\n{\"subscribe\":{\"channel\":\"news\"},\"id\":2}");
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void drain(int fd, uint8_t *last, size_t *last_len)
{
    uint8_t buf[8192];
    for (;;) {
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got <= 0)
            return;
        if (last) {
            memcpy(last, buf, (size_t)got);
            *last_len = (size_t)got;
        }
    }
}

static void pump(struct ev_loop *engine, node_worker_t *w)
{
    for (int i = 0; i < 4; i++) {
        ev_run(w->loop, EVRUN_NOWAIT);
        ev_run(engine, EVRUN_NOWAIT);
    }
}

static size_t subscribed_count(node_worker_t *w)
{
    node_hub_chan_t *ch = node_map_get(&w->hub, RT_STR("news"));
    size_t n = 0;
    for (node_sub_t *s = ch ? ch->subs : NULL; s; s = s->chan_next)
        n += s->state == NODE_SUB_SUBSCRIBED;
    return n;
}

static void test_fanout_encodes_once_no_per_subscriber_alloc(void **state)
{
    (void)state;
    static node_config_t cfg;
    node_config_defaults(&cfg);
    cfg.client_insecure = true;
    cfg.http_port = free_port();
    rt_free(cfg.http_address);
    cfg.http_address = rt_strdup("127.0.0.1");
    static node_t node;
    memset(&node, 0, sizeof(node));
    node.cfg = &cfg;
    node.nworkers = 1;
    node_worker_t *workers[1];
    node.workers = workers;
    struct ev_loop *engine_loop = ev_loop_new(EVFLAG_AUTO);
    node.engine = node_engine_new(&node, engine_loop);
    workers[0] = node_worker_new(&node, 0, NULL);
    node_worker_t *w = workers[0];
    assert_int_equal(node_worker_listen(w), 0);
    rt_buf_t err = RT_BUF_INIT;
    assert_int_equal(node_jwt_verifier_new(&cfg.token, false, &node.verifier, &err), 0);
    node.sub_verifier = node.verifier;

    static int fds[NSUBS];
    for (int i = 0; i < NSUBS; i++) {
        fds[i] = connect_client(cfg.http_port);
        if (i % 50 == 49)
            pump(engine_loop, w);
    }
    for (int round = 0; round < 2000 && subscribed_count(w) < NSUBS; round++)
        pump(engine_loop, w);
    assert_int_equal(subscribed_count(w), NSUBS);
    for (int i = 0; i < NSUBS; i++)
        drain(fds[i], NULL, NULL);

    broker_pub_fields_t f = {.channel = RT_STR("news"), .data = RT_STR("{\"x\":1.10}")};
    broker_pub_t *pub = broker_pub_new(&f);
    uint64_t encodes = node_hub_encode_count();
    uint64_t allocs = rt_alloc_count();
    node_hub_fanout(w, pub);
    uint64_t fanout_allocs = rt_alloc_count() - allocs;
    /* One encode, and a constant number of allocations (the encode buffer, the shared
     * frame, the worker's view), however many subscribers. */
    assert_int_equal(node_hub_encode_count() - encodes, 1);
    assert_true(fanout_allocs <= 6);

    /* A second fan-out of the same publication (another worker would do this) reuses the
     * cached frame: no encode at all. */
    node_hub_fanout(w, pub);
    assert_int_equal(node_hub_encode_count() - encodes, 1);

    pump(engine_loop, w);
    usleep(20000);
    static const char expect[] =
        "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"x\":1.10}}}}";
    for (int i = 0; i < NSUBS; i++) {
        uint8_t buf[8192];
        size_t n = 0;
        drain(fds[i], buf, &n);
        /* Two identical frames: 2-byte header + payload each. */
        size_t one = 2 + sizeof(expect) - 1;
        assert_int_equal(n, 2 * one);
        assert_memory_equal(buf + 2, expect, sizeof(expect) - 1);
        assert_memory_equal(buf + one + 2, expect, sizeof(expect) - 1);
    }
    broker_pub_unref(pub);
    rt_buf_cleanup(&err);
    for (int i = 0; i < NSUBS; i++)
        close(fds[i]);
    for (int round = 0; round < 200 && w->nclients > 0; round++)
        pump(engine_loop, w);
    assert_int_equal(w->nclients, 0);
    tr_http_server_stop(w->http);
    pump(engine_loop, w);
    node_engine_free(node.engine);
    node_worker_free(w);
    node_jwt_verifier_free(node.verifier);
    ev_loop_destroy(engine_loop);
    node_config_cleanup(&cfg);
}

int run_fanout(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fanout_encodes_once_no_per_subscriber_alloc),
    };
    return cmocka_run_group_tests_name("fanout", tests, NULL, NULL);
}

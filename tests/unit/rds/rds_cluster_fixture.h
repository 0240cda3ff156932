/* A throwaway 3-master Redis Cluster for unit tests (test_rds_cluster.c, the broker's and
 * presence's cluster cases): redis-server processes on free loopback ports with explicit
 * bus ports (port + 10000 may not exist), joined by `redis-cli --cluster create`, ready
 * once every node reports cluster_state:ok. Blocking; call it outside the loop under test.
 * Self-contained (libc + hiredis) so every test binary can include it. */
#ifndef RT_TESTS_UNIT_RDS_CLUSTER_FIXTURE_H
#define RT_TESTS_UNIT_RDS_CLUSTER_FIXTURE_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define RCL_NODES 3

typedef struct rcl {
    pid_t pid[RCL_NODES]; /* 0 when stopped */
    int port[RCL_NODES];
    char dir[RCL_NODES][64]; /* mkdtemp, removed by rcl_stop */
} rcl_t;

static inline bool rcl_installed(void)
{
    return access("/usr/bin/redis-server", X_OK) == 0 && access("/usr/bin/redis-cli", X_OK) == 0;
}

static inline int rcl_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &n) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* A free port not in used[0..n): two binds in a row may hand out the same one. */
static inline int rcl_unique_port(const int *used, int n)
{
    for (int tries = 0; tries < 100; tries++) {
        int p = rcl_free_port();
        bool dup = p <= 0;
        for (int i = 0; i < n && !dup; i++)
            dup = used[i] == p;
        if (!dup)
            return p;
    }
    return -1;
}

static inline void rcl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A reply to one command on a fresh blocking connection to port (free it), or NULL. */
static inline redisReply *rcl_cmd(int port, const char *fmt, ...)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static inline pid_t rcl_spawn(char *const *argv)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* A crashed test must not leave servers behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static inline bool rcl_answers(int port)
{
    redisReply *r = rcl_cmd(port, "PING");
    bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok;
}

static inline bool rcl_state_ok(int port)
{
    redisReply *r = rcl_cmd(port, "CLUSTER INFO");
    bool ok = r != NULL && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
    freeReplyObject(r);
    return ok;
}

static inline void rcl_stop(rcl_t *c)
{
    for (int i = 0; i < RCL_NODES; i++) {
        if (c->pid[i] > 0) {
            kill(c->pid[i], SIGKILL);
            waitpid(c->pid[i], NULL, 0);
            c->pid[i] = 0;
        }
        if (c->dir[i][0] != '\0') {
            char cmd[128];
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir[i]);
            if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", c->dir[i]);
            c->dir[i][0] = '\0';
        }
    }
}

/* Starts the servers, creates the cluster and waits (up to 20 s) for cluster_state:ok
 * everywhere. Returns 0, or -1 with everything stopped. */
static inline int rcl_start(rcl_t *c)
{
    memset(c, 0, sizeof(*c));
    int used[2 * RCL_NODES];
    for (int i = 0; i < 2 * RCL_NODES; i++)
        used[i] = rcl_unique_port(used, i);
    for (int i = 0; i < RCL_NODES; i++) {
        snprintf(c->dir[i], sizeof(c->dir[i]), "/tmp/rt_rcl_XXXXXX");
        if (mkdtemp(c->dir[i]) == NULL) {
            c->dir[i][0] = '\0';
            rcl_stop(c);
            return -1;
        }
        c->port[i] = used[i];
        char port[16], bus[16];
        snprintf(port, sizeof(port), "%d", c->port[i]);
        snprintf(bus, sizeof(bus), "%d", used[RCL_NODES + i]);
        char *argv[] = {"/usr/bin/redis-server",
                        "--port",
                        port,
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-port",
                        bus,
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--daemonize",
                        "no",
                        "--dir",
                        c->dir[i],
                        NULL};
        c->pid[i] = rcl_spawn(argv);
    }
    for (int i = 0; i < RCL_NODES; i++) {
        int tries = 0;
        while (!rcl_answers(c->port[i]) && tries++ < 500)
            rcl_sleep_ms(10);
        if (tries >= 500) {
            fprintf(stderr, "rcl: redis-server on port %d did not answer\n", c->port[i]);
            rcl_stop(c);
            return -1;
        }
    }
    char addr[RCL_NODES][32];
    char *argv[8 + RCL_NODES] = {"/usr/bin/redis-cli", "--cluster", "create"};
    int n = 3;
    for (int i = 0; i < RCL_NODES; i++) {
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", c->port[i]);
        argv[n++] = addr[i];
    }
    argv[n++] = "--cluster-replicas";
    argv[n++] = "0";
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    int status = -1;
    pid_t cli = rcl_spawn(argv);
    if (cli > 0)
        waitpid(cli, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rcl: redis-cli --cluster create failed (status %d)\n", status);
        rcl_stop(c);
        return -1;
    }
    for (int tries = 0; tries < 2000; tries++) {
        bool ok = true;
        for (int i = 0; i < RCL_NODES && ok; i++)
            ok = rcl_state_ok(c->port[i]);
        if (ok)
            return 0;
        rcl_sleep_ms(10);
    }
    fprintf(stderr, "rcl: cluster_state did not become ok\n");
    rcl_stop(c);
    return -1;
}

/* Port of the master that serves slot (from node 0's CLUSTER SLOTS), or -1. */
static inline int rcl_slot_port(const rcl_t *c, unsigned slot)
{
    redisReply *r = rcl_cmd(c->port[0], "CLUSTER SLOTS");
    int port = -1;
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if ((unsigned)e->element[0]->integer <= slot && slot <= (unsigned)e->element[1]->integer)
            port = (int)e->element[2]->element[1]->integer;
    }
    freeReplyObject(r);
    return port;
}

/* FLUSHALL on every master. */
static inline void rcl_flush(const rcl_t *c)
{
    for (int i = 0; i < RCL_NODES; i++)
        freeReplyObject(rcl_cmd(c->port[i], "FLUSHALL"));
}

/* "redis+cluster://127.0.0.1:P1?addr=127.0.0.1:P2&addr=127.0.0.1:P3" into out. */
static inline void rcl_url(const rcl_t *c, char *out, size_t n)
{
    snprintf(out, n, "redis+cluster://127.0.0.1:%d?addr=127.0.0.1:%d&addr=127.0.0.1:%d", c->port[0],
             c->port[1], c->port[2]);
}

#endif

#include "tests/support/rt_redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node/base/alloc.h"
#include "node/base/err.h"
#include "node/base/time.h"
#include "tests/support/rt_testproc.h"

#define READY_TIMEOUT_MS 5000
#define STOP_GRACE_MS    5000
#define IO_TIMEOUT_MS    5000

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int connect_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un sa = {0};
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof(sa.sun_path)) {
        close(fd);
        return -1;
    }
    memcpy(sa.sun_path, path, n + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A TLS server's port speaks no plaintext: talk to it over its unix socket. */
static int connect_server(const rt_redis_t *r)
{
    return r->tls ? connect_unix(r->sock) : connect_port(r->port);
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool send_command(int fd, int argc, const char **argv)
{
    char head[32];
    int n = snprintf(head, sizeof(head), "*%d\r\n", argc);
    if (!write_all(fd, head, (size_t)n))
        return false;
    for (int i = 0; i < argc; i++) {
        size_t len = strlen(argv[i]);
        n = snprintf(head, sizeof(head), "$%zu\r\n", len);
        if (!write_all(fd, head, (size_t)n) || !write_all(fd, argv[i], len) ||
            !write_all(fd, "\r\n", 2))
            return false;
    }
    return true;
}

/* Reads one reply into a heap buffer; returns its payload as described in the header. */
static int read_reply(int fd, char *out, size_t outn)
{
    size_t cap = 4096, len = 0;
    char *buf = rt_malloc(cap);
    int64_t deadline = rt_mono_ms() + IO_TIMEOUT_MS;
    int result = -1;
    for (;;) {
        char *crlf = len > 0 ? memmem(buf, len, "\r\n", 2) : NULL;
        if (crlf != NULL) {
            size_t line = (size_t)(crlf - buf);
            const char *body = buf + 1;
            size_t body_n = line - 1;
            bool done = true;
            if (buf[0] == '$') {
                long bn = strtol(buf + 1, NULL, 10);
                if (bn < 0) {
                    body_n = 0;
                } else if (len >= line + 2 + (size_t)bn + 2) {
                    body = buf + line + 2;
                    body_n = (size_t)bn;
                } else {
                    done = false;
                }
            } else if (buf[0] == '-' || buf[0] == '*') {
                body = buf;
                body_n = line;
            }
            if (done) {
                size_t c = body_n < outn - 1 ? body_n : outn - 1;
                memcpy(out, body, c);
                out[c] = '\0';
                result = (int)body_n;
                break;
            }
        }
        if (len == cap) {
            cap *= 2;
            buf = rt_realloc(buf, cap);
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int64_t left = deadline - rt_mono_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    rt_free(buf);
    return result;
}

int rt_redis_cmd(const rt_redis_t *r, char *out, size_t outn, int argc, const char **argv)
{
    int fd = connect_server(r);
    if (fd < 0)
        return -1;
    int rc = 0;
    char scratch[256];
    if (r->password[0] != '\0') {
        const char *auth[2] = {"AUTH", r->password};
        if (!send_command(fd, 2, auth) || read_reply(fd, scratch, sizeof(scratch)) < 0)
            rc = -1;
    }
    if (rc == 0)
        rc = send_command(fd, argc, argv) ? read_reply(fd, out, outn) : -1;
    close(fd);
    return rc;
}

/* PING until anything answers: "+PONG", or "-NOAUTH" from a password-protected server. */
static bool answers(const rt_redis_t *r)
{
    int fd = connect_server(r);
    if (fd < 0)
        return false;
    char out[64];
    const char *ping[1] = {"PING"};
    bool ok = send_command(fd, 1, ping) && read_reply(fd, out, sizeof(out)) >= 0;
    close(fd);
    return ok;
}

static void print_log_tail(const rt_redis_t *r)
{
    FILE *f = fopen(r->log, "r");
    if (f == NULL)
        return;
    char buf[2000];
    if (fseek(f, -(long)sizeof(buf) + 1, SEEK_END) != 0)
        rewind(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "--- %s ---\n%s\n", r->log, buf);
}

static void reap(rt_redis_t *r, int grace_ms)
{
    if (r->pid <= 0)
        return;
    int64_t deadline = rt_mono_ms() + grace_ms;
    int status;
    for (;;) {
        pid_t w = waitpid(r->pid, &status, WNOHANG);
        if (w == r->pid || (w < 0 && errno != EINTR))
            break;
        if (rt_mono_ms() >= deadline) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, &status, 0);
            break;
        }
        sleep_ms(5);
    }
    r->pid = 0;
}

static int spawn(rt_redis_t *r)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    const char *argv[40 + RT_REDIS_MAX_ARGS] = {
        "redis-server",
        "--port",
        r->tls ? "0" : port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        r->dir,
        "--unixsocket",
        r->sock,
        "--unixsocketperm",
        "700",
        "--enable-debug-command",
        "yes",
    };
    size_t n = 0;
    while (argv[n] != NULL)
        n++;
    if (r->tls) {
        const char *tls_args[] = {"--tls-port",         port,
                                  "--tls-cert-file",    r->tls_cert,
                                  "--tls-key-file",     r->tls_key,
                                  "--tls-ca-cert-file", r->tls_ca,
                                  "--tls-auth-clients", r->tls_auth_clients ? "yes" : "no"};
        for (size_t i = 0; i < sizeof(tls_args) / sizeof(tls_args[0]); i++)
            argv[n++] = tls_args[i];
    }
    for (size_t i = 0; r->args[i] != NULL; i++)
        argv[n++] = r->args[i];
    argv[n] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return RT_EIO;
    if (pid == 0) {
        /* A crashed test must not leave servers behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    int64_t deadline = rt_mono_ms() + READY_TIMEOUT_MS;
    while (rt_mono_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = 0;
            fprintf(stderr, "rt_redis: redis-server exited (status %d)\n", status);
            print_log_tail(r);
            return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? RT_ENOTFOUND : RT_EIO;
        }
        if (answers(r))
            return 0;
        sleep_ms(10);
    }
    fprintf(stderr, "rt_redis: redis-server on port %d did not answer\n", r->port);
    print_log_tail(r);
    kill(pid, SIGKILL);
    reap(r, 0);
    return RT_ETIMEOUT;
}

static int start(rt_redis_t *r, const char *const *extra_args);

int rt_redis_start(rt_redis_t *r, const char *const *extra_args)
{
    memset(r, 0, sizeof(*r));
    return start(r, extra_args);
}

int rt_redis_start_tls(rt_redis_t *r, const rt_redis_tls_t *tls, bool auth_clients,
                       const char *const *extra_args)
{
    memset(r, 0, sizeof(*r));
    r->tls = true;
    r->tls_auth_clients = auth_clients;
    snprintf(r->tls_cert, sizeof(r->tls_cert), "%s", tls->server_cert);
    snprintf(r->tls_key, sizeof(r->tls_key), "%s", tls->server_key);
    snprintf(r->tls_ca, sizeof(r->tls_ca), "%s", tls->ca);
    return start(r, extra_args);
}

static int start(rt_redis_t *r, const char *const *extra_args)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(r->dir, sizeof(r->dir), "%s/rt_redis.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(r->dir) == NULL) {
        r->dir[0] = '\0';
        return RT_EIO;
    }
    snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
    snprintf(r->log, sizeof(r->log), "%s/redis.log", r->dir);
    for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
        if (i + 1 >= RT_REDIS_MAX_ARGS)
            break;
        r->args[i] = rt_strdup(extra_args[i]);
        if (i > 0 && strcmp(extra_args[i - 1], "--requirepass") == 0)
            snprintf(r->password, sizeof(r->password), "%s", extra_args[i]);
    }
    r->port = rt_tp_free_port();
    int rc = r->port > 0 ? spawn(r) : RT_EIO;
    if (rc != 0)
        rt_redis_stop(r);
    return rc;
}

void rt_redis_kill(rt_redis_t *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        reap(r, STOP_GRACE_MS);
    }
}

int rt_redis_restart(rt_redis_t *r)
{
    rt_redis_kill(r);
    return spawn(r);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

void rt_redis_stop(rt_redis_t *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        reap(r, STOP_GRACE_MS);
    }
    if (r->dir[0] != '\0') {
        nftw(r->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        r->dir[0] = '\0';
    }
    for (size_t i = 0; i < RT_REDIS_MAX_ARGS; i++) {
        rt_free(r->args[i]);
        r->args[i] = NULL;
    }
}

/* ---- TLS material ---------------------------------------------------------------------- */

/* Runs argv (NULL-terminated) with stdout and stderr into log; returns its exit status,
 * 127 when it could not be run. */
static int run_quiet(const char *log, const char *const *argv)
{
    pid_t pid = fork();
    if (pid < 0)
        return 127;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 126;
}

/* A P-256 key and certificate: self-signed when ca is NULL (a CA), else signed by ca. */
static int make_cert(const char *log, const char *cert, const char *key, const char *subject,
                     const char *san, const char *ca, const char *ca_key)
{
    char san_ext[128] = "";
    if (san != NULL)
        snprintf(san_ext, sizeof(san_ext), "subjectAltName=%s", san);
    const char *argv[32] = {
        "openssl", "req",     "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes",  "-keyout", key,     "-out",    cert, "-days",    "2",
        "-subj",   subject};
    size_t n = 0;
    while (argv[n] != NULL)
        n++;
    if (ca != NULL) {
        const char *more[] = {"-addext", "basicConstraints=critical,CA:FALSE", "-CA", ca, "-CAkey",
                              ca_key};
        for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
            argv[n++] = more[i];
    }
    if (san != NULL) {
        argv[n++] = "-addext";
        argv[n++] = san_ext;
    }
    argv[n] = NULL;
    int st = run_quiet(log, argv);
    return st == 0 ? 0 : st == 127 ? RT_ENOTFOUND : RT_EIO;
}

int rt_redis_tls_make(rt_redis_tls_t *t)
{
    memset(t, 0, sizeof(*t));
    const char *tmp = getenv("TMPDIR");
    snprintf(t->dir, sizeof(t->dir), "%s/rt_tls.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(t->dir) == NULL) {
        t->dir[0] = '\0';
        return RT_EIO;
    }
    char log[300];
    snprintf(log, sizeof(log), "%s/openssl.log", t->dir);
    snprintf(t->ca, sizeof(t->ca), "%s/ca.crt", t->dir);
    snprintf(t->ca_key, sizeof(t->ca_key), "%s/ca.key", t->dir);
    snprintf(t->server_cert, sizeof(t->server_cert), "%s/server.crt", t->dir);
    snprintf(t->server_key, sizeof(t->server_key), "%s/server.key", t->dir);
    snprintf(t->client_cert, sizeof(t->client_cert), "%s/client.crt", t->dir);
    snprintf(t->client_key, sizeof(t->client_key), "%s/client.key", t->dir);
    snprintf(t->other_ca, sizeof(t->other_ca), "%s/other_ca.crt", t->dir);
    char other_key[300];
    snprintf(other_key, sizeof(other_key), "%s/other_ca.key", t->dir);
    int rc = make_cert(log, t->ca, t->ca_key, "/CN=rotor-test-ca", NULL, NULL, NULL);
    if (rc == 0)
        rc = make_cert(log, t->server_cert, t->server_key, "/CN=localhost",
                       "IP:127.0.0.1,DNS:localhost", t->ca, t->ca_key);
    if (rc == 0)
        rc = make_cert(log, t->client_cert, t->client_key, "/CN=rotor-test-client", NULL, t->ca,
                       t->ca_key);
    if (rc == 0)
        rc = make_cert(log, t->other_ca, other_key, "/CN=rotor-other-ca", NULL, NULL, NULL);
    if (rc != 0) {
        fprintf(stderr, "rt_redis: openssl failed (%s), see %s\n", rt_strerror(rc), log);
        char *text = rt_redis_read_file(log);
        if (text != NULL)
            fprintf(stderr, "%s\n", text);
        rt_free(text);
        rt_redis_tls_cleanup(t);
    }
    return rc;
}

void rt_redis_tls_cleanup(rt_redis_tls_t *t)
{
    if (t->dir[0] != '\0') {
        nftw(t->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        t->dir[0] = '\0';
    }
}

char *rt_redis_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = rt_malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = rt_realloc(buf, cap);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

#include "tests/support/rt_testproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "node/base/err.h"
#include "tests/support/rt_testcli.h"

#define STOP_GRACE_MS 5000
#define LOG_TAIL      4000

int rt_tp_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {0};
    socklen_t len = sizeof(sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return RT_EIO;
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : RT_EIO;
    if (fclose(f) != 0)
        rc = RT_EIO;
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

void rt_tp_remove_dir(rt_tp_server_t *s)
{
    if (s->dir[0] != '\0')
        (void)nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}

void rt_tp_log_tail(const rt_tp_server_t *s, rt_buf_t *out, size_t max_bytes)
{
    FILE *f = fopen(s->log, "r");
    if (f == NULL)
        return;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        long from = size > (long)max_bytes ? size - (long)max_bytes : 0;
        if (size >= 0 && fseek(f, from, SEEK_SET) == 0) {
            char chunk[4096];
            size_t n;
            while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                rt_buf_append(out, chunk, n);
        }
    }
    fclose(f);
}

bool rt_tp_alive(rt_tp_server_t *s)
{
    if (s->pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == 0)
        return true;
    if (r == s->pid)
        s->exit_status = st;
    s->pid = 0;
    return false;
}

const char *rt_tp_describe(const rt_tp_server_t *s, char *out, size_t n)
{
    if (s->pid > 0)
        snprintf(out, n, "running");
    else if (s->exit_status == -1)
        snprintf(out, n, "not started");
    else if (WIFEXITED(s->exit_status))
        snprintf(out, n, "exited %d", WEXITSTATUS(s->exit_status));
    else if (WIFSIGNALED(s->exit_status))
        snprintf(out, n, "killed by signal %d (%s)", WTERMSIG(s->exit_status),
                 strsignal(WTERMSIG(s->exit_status)));
    else
        snprintf(out, n, "status 0x%x", (unsigned)s->exit_status);
    return out;
}

static void report_failure(rt_tp_server_t *s, const char *why)
{
    char desc[128];
    rt_buf_t tail = RT_BUF_INIT;

    rt_tp_log_tail(s, &tail, LOG_TAIL);
    fprintf(stderr, "rt_tp_start: %s (rotor %s, port %d)\n--- rotor log tail ---\n%.*s\n---\n", why,
            rt_tp_describe(s, desc, sizeof(desc)), s->port, (int)tail.len,
            tail.p ? (const char *)tail.p : "");
    rt_buf_cleanup(&tail);
}

static bool health_ok(int port)
{
    rt_tc_http_resp_t r;
    rt_tc_http_resp_init(&r);
    int rc = rt_tc_http_once(port, "GET", "/health", NULL, NULL, 0, &r);
    bool ok = rc == 0 && r.status == 200;
    rt_tc_http_resp_cleanup(&r);
    return ok;
}

int rt_tp_start(rt_tp_server_t *s, const char *binary, const char *config_members,
                int ready_timeout_ms)
{
    struct stat st;
    rt_buf_t cfg = RT_BUF_INIT;
    char exe[PATH_MAX];
    int rc;

    memset(s, 0, sizeof(*s));
    s->exit_status = -1;
    if (binary == NULL || stat(binary, &st) != 0 || !S_ISREG(st.st_mode) ||
        access(binary, X_OK) != 0) {
        fprintf(stderr, "rt_tp_start: rotor binary '%s' is missing or not executable\n",
                binary ? binary : "(null)");
        return RT_ENOTFOUND;
    }
    /* The child runs in the temp directory, so a relative path would not resolve. */
    if (realpath(binary, exe) == NULL) {
        fprintf(stderr, "rt_tp_start: realpath %s: %s\n", binary, strerror(errno));
        return RT_ENOTFOUND;
    }
    snprintf(s->dir, sizeof(s->dir), "/tmp/rotor-chost-XXXXXX");
    if (mkdtemp(s->dir) == NULL) {
        s->dir[0] = '\0';
        fprintf(stderr, "rt_tp_start: mkdtemp: %s\n", strerror(errno));
        return RT_EIO;
    }
    snprintf(s->config, sizeof(s->config), "%s/config.json", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/rotor.log", s->dir);
    s->port = rt_tp_free_port();
    rt_buf_printf(&cfg, "{\"http_server\":{\"address\":\"127.0.0.1\",\"port\":%d}%s%s}\n", s->port,
                  config_members && config_members[0] ? "," : "",
                  config_members ? config_members : "");
    rt_buf_append_byte(&cfg, 0);
    rc = s->port > 0 ? write_file(s->config, (const char *)cfg.p) : RT_EIO;
    rt_buf_cleanup(&cfg);
    if (rc != 0) {
        fprintf(stderr, "rt_tp_start: cannot write %s or find a port\n", s->config);
        rt_tp_remove_dir(s);
        return rc;
    }

    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "rt_tp_start: fork: %s\n", strerror(errno));
        rt_tp_remove_dir(s);
        return RT_EIO;
    }
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            (void)dup2(fd, 1);
            (void)dup2(fd, 2);
        }
        if (chdir(s->dir) != 0)
            _exit(126);
        execl(exe, exe, "--config", s->config, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    s->pid = pid;

    int64_t deadline = rt_tc_now_ms() + ready_timeout_ms;
    for (;;) {
        if (!rt_tp_alive(s)) {
            report_failure(s, "rotor exited before /health answered 200");
            rt_tp_remove_dir(s);
            return RT_ECLOSED;
        }
        if (health_ok(s->port))
            return 0;
        if (rt_tc_now_ms() >= deadline) {
            report_failure(s, "/health did not answer 200 in time");
            (void)rt_tp_stop(s, false);
            return RT_ETIMEOUT;
        }
        rt_tc_sleep_ms(50);
    }
}

int rt_tp_stop(rt_tp_server_t *s, bool keep_dir)
{
    int rc = RT_EIO;

    if (s->pid > 0 && rt_tp_alive(s)) {
        (void)kill(s->pid, SIGTERM);
        int64_t deadline = rt_tc_now_ms() + STOP_GRACE_MS;
        while (rt_tp_alive(s) && rt_tc_now_ms() < deadline)
            rt_tc_sleep_ms(20);
        if (s->pid > 0) {
            fprintf(stderr, "rt_tp_stop: rotor ignored SIGTERM for %d ms; SIGKILL\n",
                    STOP_GRACE_MS);
            (void)kill(s->pid, SIGKILL);
            (void)waitpid(s->pid, &s->exit_status, 0);
            s->pid = 0;
        } else if (WIFEXITED(s->exit_status) && WEXITSTATUS(s->exit_status) == 0) {
            rc = 0;
        }
    }
    if (!keep_dir)
        rt_tp_remove_dir(s);
    return rc;
}

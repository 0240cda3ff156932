/* Runs the rotor binary for integration tests: a temp directory with config.json, a free
 * loopback port, readiness polled through GET /health, stop with SIGTERM then SIGKILL. */
#ifndef RT_TESTS_TESTPROC_H
#define RT_TESTS_TESTPROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "node/base/buf.h"

typedef struct rt_tp_server {
    pid_t pid;        /* child process; 0 when not running */
    int port;         /* http_server.port (loopback) */
    int exit_status;  /* waitpid() status once reaped, -1 before */
    char dir[256];    /* temp directory (mkdtemp), removed by rt_tp_stop */
    char config[300]; /* dir/config.json */
    char log[300];    /* dir/rotor.log: the child's stdout + stderr */
} rt_tp_server_t;

/* Returns a port that was free on 127.0.0.1 a moment ago (bind to 0), or -1. */
int rt_tp_free_port(void);

/* Starts binary with "--config dir/config.json". config_members: the members of the
 * top-level JSON object without braces (e.g. "\"health\":{\"enabled\":true}"); the helper
 * prepends http_server.address/port, so the caller must not set http_server. Waits up to
 * ready_timeout_ms for /health to answer 200. Returns 0; RT_ENOTFOUND if binary is not an
 * executable file; RT_ECLOSED if the child exited first; RT_ETIMEOUT. On failure the
 * reason and the log tail go to stderr and everything is cleaned up. */
int rt_tp_start(rt_tp_server_t *s, const char *binary, const char *config_members,
                int ready_timeout_ms);
/* True while the child runs; reaps it (recording exit_status) when it has exited. */
bool rt_tp_alive(rt_tp_server_t *s);
/* Describes how the child ended ("exited 0", "killed by signal 11", "running"). */
const char *rt_tp_describe(const rt_tp_server_t *s, char *out, size_t n);
/* SIGTERM, up to 5 s, then SIGKILL; reaps; removes the temp directory unless keep_dir.
 * Returns 0 if the child exited by itself with status 0 after SIGTERM, RT_EIO otherwise
 * (crashed before, killed, or non-zero exit). Idempotent. */
int rt_tp_stop(rt_tp_server_t *s, bool keep_dir);
/* Removes the temp directory (after rt_tp_stop with keep_dir). Idempotent. */
void rt_tp_remove_dir(rt_tp_server_t *s);
/* Appends the last max_bytes of the log to out. */
void rt_tp_log_tail(const rt_tp_server_t *s, rt_buf_t *out, size_t max_bytes);

#endif

/* A throwaway redis-server for tests: free loopback port plus a unix socket in a temp
 * directory, no persistence, readiness polled with PING; kill and restart on the same port
 * to exercise reconnects. Blocking; call it outside the loop under test. */
#ifndef RT_TESTS_REDIS_H
#define RT_TESTS_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define RT_REDIS_MAX_ARGS 16

typedef struct rt_redis {
    pid_t pid;                     /* the server; 0 while not running */
    int port;                      /* loopback TCP port, kept across restarts */
    char dir[256];                 /* temp directory (mkdtemp), removed by rt_redis_stop */
    char sock[300];                /* dir/redis.sock */
    char log[300];                 /* dir/redis.log: the server's stdout + stderr */
    char *args[RT_REDIS_MAX_ARGS]; /* owned copies of the extra arguments, NULL-terminated */
    char password[128];            /* from a "--requirepass" extra argument, for rt_redis_cmd */
    bool tls;                      /* port speaks TLS only (rt_redis_start_tls); readiness
                                      checks and rt_redis_cmd use the plaintext unix socket */
    bool tls_auth_clients;         /* the server demands a client certificate */
    char tls_cert[300];            /* server certificate, key and CA files, kept for restarts */
    char tls_key[300];
    char tls_ca[300];
} rt_redis_t;

/* TLS material for test servers, made with the openssl CLI in a new temp directory: a CA,
 * a server certificate for IP 127.0.0.1 and DNS localhost signed by it, a client
 * certificate signed by it (mTLS), and an unrelated CA (for "wrong CA" cases). Every field
 * but dir is a PEM file in dir. Throwaway keys: never commit them. */
typedef struct rt_redis_tls {
    char dir[256];
    char ca[300];
    char ca_key[300];
    char server_cert[300];
    char server_key[300];
    char client_cert[300];
    char client_key[300];
    char other_ca[300];
} rt_redis_tls_t;

/* Returns 0, RT_ENOTFOUND (no openssl binary) or RT_EIO (directory removed again). */
int rt_redis_tls_make(rt_redis_tls_t *t);
/* Removes the directory. Idempotent. */
void rt_redis_tls_cleanup(rt_redis_tls_t *t);
/* The whole file as a NUL-terminated heap string (rt_free), or NULL. */
char *rt_redis_read_file(const char *path);

/* Starts redis-server with extra_args (NULL-terminated, may be NULL; e.g. "--requirepass",
 * "secret") and waits up to 5 s for it to answer. Returns 0; RT_ENOTFOUND when there is no
 * redis-server; RT_ETIMEOUT or RT_EIO (log tail on stderr, everything cleaned up). */
int rt_redis_start(rt_redis_t *r, const char *const *extra_args);
/* The same with TLS only on r->port (`--port 0 --tls-port`) using tls's server certificate
 * and CA; auth_clients: `--tls-auth-clients yes` (client certificates signed by tls->ca
 * required), else `no`. The unix socket stays plaintext. Restarts keep TLS. */
int rt_redis_start_tls(rt_redis_t *r, const rt_redis_tls_t *tls, bool auth_clients,
                       const char *const *extra_args);
/* SIGKILL and reap; port, directory and arguments stay for rt_redis_restart(). */
void rt_redis_kill(rt_redis_t *r);
/* Starts the server again on the same port and socket. Returns as rt_redis_start. */
int rt_redis_restart(rt_redis_t *r);
/* SIGTERM (up to 5 s) then SIGKILL, removes the directory, frees the arguments. Idempotent. */
void rt_redis_stop(rt_redis_t *r);
/* Runs one command on a fresh blocking connection (AUTH first when a password is known)
 * and copies the reply into out (NUL-terminated, truncated to outn - 1): a simple string,
 * error ("-ERR ...") or integer line without its type byte for status and integer replies,
 * the bulk string's bytes, or the first line of anything else. Returns the reply length
 * before truncation, or -1 on I/O failure. */
int rt_redis_cmd(const rt_redis_t *r, char *out, size_t outn, int argc, const char **argv);

#endif

/* An in-process TLS relay for Redis connections (engine loop; library rt_rds).
 *
 * hiredis 0.14 (Debian 12) has no TLS and its async API cannot adopt an existing fd, so
 * a TLS address is reached through a relay: it listens on a Unix socket inside a private
 * directory (mkdtemp, mode 0700, so no other local user can connect through it), hiredis
 * connects there with redisAsyncConnectUnix, and for each accepted connection the relay
 * dials the real host:port (non-blocking TCP), runs the TLS client handshake and then
 * copies bytes both ways through bounded buffers. Either side closing, or any error,
 * closes both sides; hiredis then sees an ordinary disconnect, so AUTH, SELECT, timeouts,
 * reconnects and PUB/SUB above it are unchanged.
 *
 * The handshake verifies the server certificate against tls->ca_pem / ca_file (or the
 * system store) and the name tls->server_name (or the host dialled; an IP literal is
 * matched against IP SANs and sent without SNI), unless insecure_skip_verify. A client
 * certificate (mTLS) is presented when cert and key are set. TLS 1.2 is the minimum.
 *
 * Blocking work: rds_tls_relay_new reads *_file settings and creates the directory and
 * socket; each accepted connection resolves host with getaddrinfo, as hiredis itself
 * does for TCP addresses. */
#ifndef RT_BROKER_RDS_TLS_H
#define RT_BROKER_RDS_TLS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/rds.h"
#include "node/base/buf.h"

typedef struct rds_tls_relay rds_tls_relay_t;

/* Largest bytes buffered per direction per connection; a full buffer stops reading the
 * other side (backpressure) until it drains. */
#define RDS_TLS_BUF_BYTES (64 * 1024)

/* Creates a relay on loop towards host:port (copied) with the settings tls (read during
 * the call, not kept; tls->enabled is not looked at). connect_timeout_ms bounds each
 * connection's TCP connect plus TLS handshake (<= 0: 1000). Returns 0 with *out set, or
 * RT_EINVAL (unusable PEM, file or key mismatch: a message in err, *out NULL) or RT_EIO
 * (no directory or socket: message in err). Engine loop thread only. */
int rds_tls_relay_new(struct ev_loop *loop, const rds_tls_t *tls, const char *host, int port,
                      int64_t connect_timeout_ms, rds_tls_relay_t **out, rt_buf_t *err);
/* Closes every relayed connection (both sides), the listening socket, and removes the
 * socket file and its directory. NULL is a no-op. Never call it from inside a relay
 * callback (the relay has none towards its owner). */
void rds_tls_relay_free(rds_tls_relay_t *r);
/* The Unix socket path to connect to (borrowed; valid until rds_tls_relay_free). */
const char *rds_tls_relay_path(const rds_tls_relay_t *r);
/* Copies the reason the last relayed connection failed ("TLS handshake with h:p: ...",
 * "connect h:p: ...") into out (NUL-terminated, truncated) and forgets it. Returns false
 * (out = "") when nothing failed since the last call. The owner uses it to explain why
 * its hiredis connection was closed. */
bool rds_tls_relay_take_error(rds_tls_relay_t *r, char *out, size_t n);

/* Builds the TLS context for tls once, without a relay, to report bad settings early (at
 * config load). Returns 0, or RT_EINVAL with a message in err. */
int rds_tls_check(const rds_tls_t *tls, rt_buf_t *err);

#endif

/* A listening TCP socket of a worker loop, shared by the HTTP and gRPC servers: numeric
 * address (or every interface, IPv6 taking IPv4 too), SO_REUSEPORT so every worker has its
 * own, batched non-blocking accepts with TCP_NODELAY, and a pause when the process runs out
 * of descriptors. Internal to transports/. */
#ifndef RT_TRANSPORTS_LISTENER_INTERNAL_H
#define RT_TRANSPORTS_LISTENER_INTERNAL_H

#include <ev.h>
#include <stddef.h>
#include <sys/socket.h>

#include "transports/loop.h"

/* An accepted non-blocking socket (ownership passes) with its peer as text. */
typedef void (*tr__accept_fn)(void *ud, int fd, const char *remote);

typedef struct tr__listener {
    tr_loop_t *tl; /* borrowed */
    int fd;        /* owned listening socket, -1 if none */
    ev_io accept_w;
    ev_timer retry_w;
    tr__accept_fn on_accept;
    void *ud;
} tr__listener_t;

void tr__listener_init(tr__listener_t *l, tr_loop_t *tl, tr__accept_fn on_accept, void *ud);
/* Binds addr:port ("" or NULL = every interface) and starts accepting. 0 or RT_EIO (logged
 * with `what`, e.g. "http"). */
int tr__listener_open(tr__listener_t *l, const char *addr, int port, const char *what);
/* Stops accepting and closes the socket. Idempotent. */
void tr__listener_close(tr__listener_t *l);
/* The bound port, -1 when closed. */
int tr__listener_port(const tr__listener_t *l);
/* "ip:port" (or "[v6]:port", "unix") of sa into out. */
void tr__format_addr(const struct sockaddr *sa, char *out, size_t n);

#endif

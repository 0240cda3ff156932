/* Listening sockets (see listener_internal.h). */
#include "transports/listener_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node/base/err.h"
#include "node/base/log.h"

/* Accepts per listener wakeup, so a connection storm cannot starve established traffic. */
#define ACCEPT_BATCH 64
/* Pause after accept() runs out of descriptors or memory before trying again. */
#define ACCEPT_RETRY_S 0.1

void tr__format_addr(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, sizeof(ip));
            snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(in6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
            snprintf(out, n, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
        }
    } else {
        snprintf(out, n, "unix");
    }
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    tr__listener_t *l = w->data;
    for (int i = 0; i < ACCEPT_BATCH && l->fd >= 0; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                RT_LOG_WARN("accept failed, pausing err=%s", strerror(errno));
                ev_io_stop(loop, &l->accept_w);
                ev_timer_set(&l->retry_w, ACCEPT_RETRY_S, 0.);
                ev_timer_start(loop, &l->retry_w);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                RT_LOG_WARN("accept failed err=%s", strerror(errno));
            }
            return;
        }
        int one = 1;
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        char remote[64];
        tr__format_addr((struct sockaddr *)&ss, remote, sizeof(remote));
        l->on_accept(l->ud, fd, remote);
    }
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    tr__listener_t *l = w->data;
    if (l->fd >= 0)
        ev_io_start(loop, &l->accept_w);
}

void tr__listener_init(tr__listener_t *l, tr_loop_t *tl, tr__accept_fn on_accept_fn, void *ud)
{
    memset(l, 0, sizeof(*l));
    l->tl = tl;
    l->fd = -1;
    l->on_accept = on_accept_fn;
    l->ud = ud;
    ev_init(&l->accept_w, on_accept);
    l->accept_w.data = l;
    ev_init(&l->retry_w, on_accept_retry);
    l->retry_w.data = l;
}

/* Fills ss for addr:port; "" or NULL is every interface (an IPv6 socket taking IPv4 too). */
static int parse_addr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (addr == NULL || addr[0] == '\0') {
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_any;
        in6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*in6);
    } else if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *sl = sizeof(*in);
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*in6);
    } else {
        return RT_EINVAL;
    }
    return 0;
}

static int open_socket(const char *addr, int port, const char *what)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_addr(addr, port, &ss, &sl) != 0) {
        RT_LOG_ERROR("%s listen address is not numeric addr=%s", what, addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && ss.ss_family == AF_INET6 && (addr == NULL || addr[0] == '\0')) {
        /* No IPv6 on this host: all IPv4 interfaces instead. */
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof(ss));
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_ANY);
        in->sin_port = htons((uint16_t)port);
        sl = sizeof(*in);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        RT_LOG_ERROR("%s socket failed err=%s", what, strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        (ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) != 0)) {
        RT_LOG_ERROR("%s setsockopt failed err=%s", what, strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 1024) != 0) {
        RT_LOG_ERROR("%s bind/listen failed addr=%s port=%d err=%s", what, addr ? addr : "", port,
                     strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int tr__listener_open(tr__listener_t *l, const char *addr, int port, const char *what)
{
    int fd = open_socket(addr, port, what);
    if (fd < 0)
        return RT_EIO;
    l->fd = fd;
    ev_io_set(&l->accept_w, fd, EV_READ);
    ev_io_start(l->tl->loop, &l->accept_w);
    return 0;
}

void tr__listener_close(tr__listener_t *l)
{
    ev_io_stop(l->tl->loop, &l->accept_w);
    ev_timer_stop(l->tl->loop, &l->retry_w);
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}

int tr__listener_port(const tr__listener_t *l)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (l->fd < 0 || getsockname(l->fd, (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

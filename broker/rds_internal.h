/* Shared by rds_*.c only: address copies, re-entrancy guards and the connection "link"
 * (connect, connect timeout, AUTH/SELECT/PING handshake, reconnect with backoff, master
 * discovery through Sentinel) that both the command client and the PUB/SUB connection sit
 * on. */
#ifndef RT_BROKER_RDS_INTERNAL_H
#define RT_BROKER_RDS_INTERNAL_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>

#include "broker/rds.h"

/* Deep copy of src into dst (dst is overwritten, not cleaned up first). */
void rds__addr_copy(rds_addr_t *dst, const rds_addr_t *src);

/* Most elements one multi-bulk reply may announce. hiredis 0.14 allocates the element array
 * as soon as it reads the header, so a broken or hostile server sending "*467440094" would
 * have it calloc gigabytes before any element arrived. 16 Mi (128 MiB of pointers) is far
 * above any reply rotor asks for: history is bounded by history_size, presence by the
 * clients of one channel. */
#define RDS_MAX_REPLY_ELEMENTS (1 << 24)

/* Makes r refuse a multi-bulk header above RDS_MAX_REPLY_ELEMENTS: the reader fails with a
 * protocol error (hiredis reports it as out of memory) and the link drops and reconnects.
 * Every connection rds makes gets it; the fuzz target (fuzz_redis_reply) too. */
void rds__reader_bound(redisReader *r);

/* A user callback may free the object that called it. Every dispatch pushes a guard on the
 * object's stack first; the free function marks every guard on the stack dead, and the
 * dispatcher returns without touching the object when its guard died. */
typedef struct rds__guard {
    bool dead;
    struct rds__guard *prev; /* borrowed: the enclosing dispatch's guard, or NULL */
} rds__guard_t;

/* g lives on the dispatcher's stack and is popped before that frame returns, which gcc's
 * -Wdangling-pointer cannot see. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
static inline void rds__guard_push(rds__guard_t **top, rds__guard_t *g)
{
    g->dead = false;
    g->prev = *top;
    *top = g;
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif

/* Returns true if the object is still alive (and pops g), false if it was freed. */
static inline bool rds__guard_pop(rds__guard_t **top, rds__guard_t *g)
{
    if (g->dead)
        return false;
    *top = g->prev;
    return true;
}

static inline void rds__guard_kill(rds__guard_t *top)
{
    for (; top != NULL; top = top->prev)
        top->dead = true;
}

typedef struct rds__link rds__link_t;
/* One hiredis context and its lifetime record; private to rds_link.c. hiredis keeps it as
 * privdata of every callback, so it outlives the link's interest in the context. */
typedef struct rds__conn rds__conn_t;

typedef struct rds__link_ops {
    /* The handshake finished: rds__link_send() works now. May free the owner. */
    void (*on_up)(rds__link_t *l);
    /* A connection that had been up is gone (status: RT_ECLOSED, or what the owner passed
     * to rds__link_drop). Reconnecting is already scheduled. May free the owner. */
    void (*on_down)(rds__link_t *l, int status);
    /* A reply (never NULL) to a command sent with rds__link_send(), or a PUB/SUB push,
     * borrowed for the call. May free the owner. */
    void (*on_reply)(rds__link_t *l, redisReply *r);
} rds__link_ops_t;

/* While a Sentinel-mode link is up it asks the Sentinels this often whether the master
 * moved (centrifuge master re-checks every 5 s rather than trusting +switch-master). */
#define RDS_SENTINEL_RECHECK_MS 5000

struct rds__link {
    struct ev_loop *loop;       /* borrowed */
    rds_addr_t addr;            /* owned copy; mode STANDALONE or SENTINEL (a CLUSTER address
                                   is dialled as its first seed) */
    char name[320];             /* for logs: "host:port", plus the master name in Sentinel
                                   mode */
    const char *kind;           /* static: "command" or "pubsub", for logs */
    const rds__link_ops_t *ops; /* borrowed, static */
    redisAsyncContext *ac;      /* owned by hiredis; NULL while waiting to reconnect */
    rds__conn_t *conn;          /* the current connection's record; NULL with ac */
    bool up;                    /* handshake done and not lost since */
    int handshake_left;         /* handshake replies still expected */
    unsigned attempts;          /* failed attempts since the last up, for the backoff */
    bool warned;                /* a failure of this streak was logged at WARN */
    int64_t backoff_min_ms;
    int64_t backoff_max_ms;
    ev_timer setup_timer; /* connect, then handshake deadline */
    ev_timer retry_timer; /* backoff before the next attempt */

    /* Sentinel mode: before every attempt the Sentinels are asked in turn (starting with
     * the one that answered last) for the master's address; the master must then say
     * ROLE master during the handshake. */
    char *master_host;        /* owned; the master last reported, NULL before any answer */
    int master_port;          /* with master_host */
    size_t sentinel_next;     /* index into addr.seeds of the Sentinel to ask first */
    redisAsyncContext *sq_ac; /* owned by hiredis; the query's Sentinel connection, or NULL */
    rds__conn_t *sq_conn;     /* its record; NULL with sq_ac */
    bool sq_active;           /* a query is running (sq_ac may be NULL between Sentinels) */
    bool sq_recheck;          /* the query checks a link that is up (else it precedes a
                                 connect attempt) */
    size_t sq_tries;          /* Sentinels tried by this query */
    int sq_left;              /* replies still expected from the current Sentinel */
    char sq_error[160];       /* the last Sentinel failure of this query, for the log */
    ev_timer sq_timer;        /* the current Sentinel's connect, then reply deadline */
    ev_timer recheck_timer;   /* while up: RDS_SENTINEL_RECHECK_MS */
};

/* Starts connecting right away (failures are retried with backoff, never reported). */
void rds__link_init(rds__link_t *l, struct ev_loop *loop, const rds_addr_t *addr,
                    const rds__link_ops_t *ops, const char *kind, int64_t backoff_min_ms,
                    int64_t backoff_max_ms);
/* Drops the connection without calling ops; hiredis callbacks still to come are ignored. */
void rds__link_cleanup(rds__link_t *l);
/* The owner found the connection dead (a timeout): tears it down, schedules a reconnect
 * and calls on_down(status) if it was up. Safe inside on_reply. */
void rds__link_drop(rds__link_t *l, int status);
/* Queues a command on the current connection (written on the next loop write event);
 * its reply comes to on_reply in order. Returns 0 or RT_ECLOSED (not up). */
int rds__link_send(rds__link_t *l, int argc, const char **argv, const size_t *argvlen);

#endif

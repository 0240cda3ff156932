/* Thread-to-thread mail: a multi-producer, single-consumer queue woken by ev_async.
 *
 * A mail is any struct that embeds rt_mail_t as its first member. Posting transfers
 * ownership of the mail to the receiving thread; its fn runs there, once, and must free
 * the mail (or keep it). Mails from one producer are delivered in posting order. */
#ifndef RT_BASE_MAILBOX_H
#define RT_BASE_MAILBOX_H

#include <ev.h>
#include <pthread.h>

typedef struct rt_mail rt_mail_t;
/* ctx is the mailbox's ctx (the receiving worker or engine). */
typedef void (*rt_mail_fn)(rt_mail_t *mail, void *ctx);

struct rt_mail {
    rt_mail_t *next; /* queue link, owned by the mailbox while queued */
    rt_mail_fn fn;   /* runs on the receiving loop */
};

typedef struct rt_mailbox {
    pthread_mutex_t mu;
    rt_mail_t *head; /* guarded by mu */
    rt_mail_t *tail; /* guarded by mu */
    ev_async wake;   /* the only part touched by producers besides the queue */
    struct ev_loop *loop;
    void *ctx;
    pthread_t owner; /* the receiving thread, once rt_mailbox_set_owner() named it */
    int has_owner;
} rt_mailbox_t;

/* Prepares the mailbox for the receiving loop; ctx is passed to every mail's fn. */
void rt_mailbox_init(rt_mailbox_t *mb, struct ev_loop *loop, void *ctx);
/* Names the thread that runs the receiving loop (call it from that thread). A post from that
 * same thread then marks the watcher pending directly instead of writing the loop's
 * eventfd: a worker that shares the engine's loop hands ops over without a syscall. */
void rt_mailbox_set_owner(rt_mailbox_t *mb);
/* Attach/detach the wake watcher (receiving thread only). */
void rt_mailbox_start(rt_mailbox_t *mb);
void rt_mailbox_stop(rt_mailbox_t *mb);
/* Any thread. Takes ownership of mail; mail->fn must be set. */
void rt_mailbox_post(rt_mailbox_t *mb, rt_mail_t *mail);
/* Receiving thread: runs every queued mail now. Returns how many ran. */
int rt_mailbox_drain(rt_mailbox_t *mb);
/* Frees queued mails without running them (destroy fn may be NULL = rt_free). */
void rt_mailbox_cleanup(rt_mailbox_t *mb, void (*destroy)(rt_mail_t *mail));

#endif

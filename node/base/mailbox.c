#include "node/base/mailbox.h"

#include "node/base/alloc.h"
#include "node/base/assert.h"

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_mailbox_drain(w->data);
}

void rt_mailbox_init(rt_mailbox_t *mb, struct ev_loop *loop, void *ctx)
{
    pthread_mutex_init(&mb->mu, NULL);
    mb->head = mb->tail = NULL;
    mb->loop = loop;
    mb->ctx = ctx;
    ev_async_init(&mb->wake, on_wake);
    mb->wake.data = mb;
}

void rt_mailbox_set_owner(rt_mailbox_t *mb)
{
    mb->owner = pthread_self();
    mb->has_owner = 1;
}

void rt_mailbox_start(rt_mailbox_t *mb)
{
    ev_async_start(mb->loop, &mb->wake);
}

void rt_mailbox_stop(rt_mailbox_t *mb)
{
    ev_async_stop(mb->loop, &mb->wake);
}

void rt_mailbox_post(rt_mailbox_t *mb, rt_mail_t *mail)
{
    RT_DASSERT(mail->fn != NULL);
    mail->next = NULL;
    pthread_mutex_lock(&mb->mu);
    if (mb->tail)
        mb->tail->next = mail;
    else
        mb->head = mail;
    mb->tail = mail;
    pthread_mutex_unlock(&mb->mu);
    /* has_owner and owner are written before the receiving loop runs and never again. */
    if (mb->has_owner && pthread_equal(mb->owner, pthread_self()))
        ev_feed_event(mb->loop, &mb->wake, EV_ASYNC);
    else
        ev_async_send(mb->loop, &mb->wake);
}

int rt_mailbox_drain(rt_mailbox_t *mb)
{
    pthread_mutex_lock(&mb->mu);
    rt_mail_t *m = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->mu);
    int n = 0;
    while (m) {
        rt_mail_t *next = m->next;
        m->fn(m, mb->ctx);
        m = next;
        n++;
    }
    return n;
}

void rt_mailbox_cleanup(rt_mailbox_t *mb, void (*destroy)(rt_mail_t *mail))
{
    pthread_mutex_lock(&mb->mu);
    rt_mail_t *m = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->mu);
    while (m) {
        rt_mail_t *next = m->next;
        if (destroy)
            destroy(m);
        else
            rt_free(m);
        m = next;
    }
    pthread_mutex_destroy(&mb->mu);
}

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ev.h>

#include "node/base/alloc.h"
#include "node/base/mailbox.h"

#define PRODUCERS          2
#define MAILS_PER_PRODUCER 10000

typedef struct test_mail {
    rt_mail_t base; /* first member: the mailbox links and runs it */
    int producer;
    int seq;
} test_mail_t;

typedef struct sink {
    struct ev_loop *loop;
    int next[PRODUCERS]; /* next expected seq per producer */
    int total;
    int out_of_order;
    bool timed_out;
} sink_t;

typedef struct producer {
    rt_mailbox_t *mb;
    int id;
} producer_t;

static void on_mail(rt_mail_t *mail, void *ctx)
{
    sink_t *s = ctx;
    test_mail_t *m = (test_mail_t *)mail;
    if (m->seq != s->next[m->producer])
        s->out_of_order++;
    s->next[m->producer] = m->seq + 1;
    s->total++;
    rt_free(m);
    if (s->total == PRODUCERS * MAILS_PER_PRODUCER)
        ev_break(s->loop, EVBREAK_ALL);
}

static void *produce(void *arg)
{
    producer_t *p = arg;
    for (int i = 0; i < MAILS_PER_PRODUCER; i++) {
        test_mail_t *m = rt_malloc(sizeof(*m));
        m->base.fn = on_mail;
        m->producer = p->id;
        m->seq = i;
        rt_mailbox_post(p->mb, &m->base);
    }
    return NULL;
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    sink_t *s = w->data;
    s->timed_out = true;
    ev_break(loop, EVBREAK_ALL);
}

static void test_two_producers_one_loop(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    sink_t sink = {.loop = loop};
    rt_mailbox_t mb;
    rt_mailbox_init(&mb, loop, &sink);
    rt_mailbox_start(&mb);
    ev_timer guard;
    ev_timer_init(&guard, on_timeout, 30.0, 0.0);
    guard.data = &sink;
    ev_timer_start(loop, &guard);

    producer_t prod[PRODUCERS];
    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        prod[i] = (producer_t){&mb, i};
        assert_int_equal(pthread_create(&t[i], NULL, produce, &prod[i]), 0);
    }
    ev_run(loop, 0);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);

    assert_false(sink.timed_out);
    assert_int_equal(sink.total, PRODUCERS * MAILS_PER_PRODUCER);
    assert_int_equal(sink.out_of_order, 0);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(sink.next[i], MAILS_PER_PRODUCER);
    assert_int_equal(rt_mailbox_drain(&mb), 0);

    ev_timer_stop(loop, &guard);
    rt_mailbox_stop(&mb);
    rt_mailbox_cleanup(&mb, NULL);
    ev_loop_destroy(loop);
}

static int destroyed;

static void count_destroy(rt_mail_t *mail)
{
    destroyed++;
    rt_free(mail);
}

static void test_drain_and_cleanup(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    sink_t sink = {.loop = loop};
    rt_mailbox_t mb;
    rt_mailbox_init(&mb, loop, &sink);
    for (int i = 0; i < 3; i++) {
        test_mail_t *m = rt_malloc(sizeof(*m));
        m->base.fn = on_mail;
        m->producer = 0;
        m->seq = i;
        rt_mailbox_post(&mb, &m->base);
    }
    assert_int_equal(rt_mailbox_drain(&mb), 3);
    assert_int_equal(sink.total, 3);
    assert_int_equal(sink.out_of_order, 0);
    assert_int_equal(rt_mailbox_drain(&mb), 0);

    /* Mails still queued at shutdown are destroyed, not run. */
    for (int i = 0; i < 4; i++) {
        test_mail_t *m = rt_malloc(sizeof(*m));
        m->base.fn = on_mail;
        m->producer = 1;
        m->seq = 100 + i;
        rt_mailbox_post(&mb, &m->base);
    }
    destroyed = 0;
    rt_mailbox_cleanup(&mb, count_destroy);
    assert_int_equal(destroyed, 4);
    assert_int_equal(sink.total, 3);
    ev_loop_destroy(loop);
}

int run_mailbox(void);
int run_mailbox(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_producers_one_loop),
        cmocka_unit_test(test_drain_and_cleanup),
    };
    return cmocka_run_group_tests_name("mailbox", tests, NULL, NULL);
}

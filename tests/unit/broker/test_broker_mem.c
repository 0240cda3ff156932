#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "broker/broker_mem.h"
#include "node/base/err.h"

#define MAXREC 64

/* What the sink saw, in order. */
typedef struct sink_rec {
    int npubs;
    broker_pub_t *pubs[MAXREC]; /* owned references */
    int njoins, nleaves;
    char last_join[64]; /* "channel|user|client|conn_info|chan_info" */
    char last_leave[64];
} sink_rec_t;

typedef struct fix {
    struct ev_loop *loop;
    broker_t *b;
    sink_rec_t sink;
    int64_t read_meta_ttl_ms; /* history_meta_ttl_ms of history() reads */
} fix_t;

/* One callback's outcome. */
typedef struct res {
    int calls;
    int status;
    uint64_t offset;
    char epoch[16];
    bool suppressed;
    size_t n;
    uint64_t offsets[MAXREC];
    int sink_pubs_at_cb; /* sink deliveries seen when the callback ran */
    fix_t *fix;
} res_t;

static void format_info(char *out, size_t cap, rt_str_t ch, const rt_client_info_t *i)
{
    snprintf(out, cap, RT_STR_FMT "|" RT_STR_FMT "|" RT_STR_FMT "|" RT_STR_FMT "|" RT_STR_FMT,
             RT_STR_ARG(ch), RT_STR_ARG(i->user), RT_STR_ARG(i->client), RT_STR_ARG(i->conn_info),
             RT_STR_ARG(i->chan_info));
}

static void sink_pub(void *ud, broker_pub_t *pub)
{
    sink_rec_t *s = ud;
    assert_true(s->npubs < MAXREC);
    s->pubs[s->npubs++] = broker_pub_ref(pub);
}

static void sink_join(void *ud, rt_str_t channel, const rt_client_info_t *info)
{
    sink_rec_t *s = ud;
    s->njoins++;
    format_info(s->last_join, sizeof(s->last_join), channel, info);
}

static void sink_leave(void *ud, rt_str_t channel, const rt_client_info_t *info)
{
    sink_rec_t *s = ud;
    s->nleaves++;
    format_info(s->last_leave, sizeof(s->last_leave), channel, info);
}

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    f->loop = ev_loop_new(EVFLAG_AUTO);
    broker_sink_t sink = {
        .on_publication = sink_pub, .on_join = sink_join, .on_leave = sink_leave, .ud = &f->sink};
    f->b = broker_mem_new(f->loop, &sink);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    broker_destroy(f->b);
    for (int i = 0; i < f->sink.npubs; i++)
        broker_pub_unref(f->sink.pubs[i]);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static void run(fix_t *f)
{
    /* Returns once nothing but the broker's unreferenced sweep timer is left. */
    ev_run(f->loop, 0);
}

static void on_wait(struct ev_loop *loop, ev_timer *w, int revents)
{
}

static void wait_ms(fix_t *f, int ms)
{
    ev_timer t;
    ev_timer_init(&t, on_wait, ms / 1000.0, 0.);
    ev_timer_start(f->loop, &t);
    ev_run(f->loop, 0);
}

static void publish_cb(int status, const broker_pos_t *pos, bool suppressed, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    assert_non_null(pos);
    r->offset = pos->offset;
    snprintf(r->epoch, sizeof(r->epoch), RT_STR_FMT, RT_STR_ARG(pos->epoch));
    r->suppressed = suppressed;
    if (r->fix)
        r->sink_pubs_at_cb = r->fix->sink.npubs;
}

static void history_cb(int status, broker_pub_t *const *pubs, size_t n, const broker_pos_t *top,
                       void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    assert_non_null(top);
    r->offset = top->offset;
    snprintf(r->epoch, sizeof(r->epoch), RT_STR_FMT, RT_STR_ARG(top->epoch));
    r->n = n;
    for (size_t i = 0; i < n && i < MAXREC; i++)
        r->offsets[i] = pubs[i]->offset;
}

static void done_cb(int status, void *ud)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
}

static broker_publish_opts_t hist_opts(int64_t size, int64_t ttl_ms, int64_t meta_ttl_ms)
{
    return (broker_publish_opts_t){
        .history_size = size, .history_ttl_ms = ttl_ms, .history_meta_ttl_ms = meta_ttl_ms};
}

/* Publishes and runs the loop until the callback ran. */
static res_t pub_opts(fix_t *f, const char *ch, const char *data, broker_publish_opts_t opts)
{
    res_t r = {.fix = f};
    broker_publish_req_t req = {.fields = {.channel = rt_str_c(ch), .data = rt_str_c(data)},
                                .opts = opts};
    assert_int_equal(broker_publish(f->b, &req, publish_cb, &r), 0);
    assert_int_equal(r.calls, 0);
    run(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    return r;
}

static res_t pub_hist(fix_t *f, const char *ch, const char *data)
{
    return pub_opts(f, ch, data, hist_opts(100, 60000, 0));
}

static res_t history(fix_t *f, const char *ch, bool has_since, uint64_t since, int64_t limit,
                     bool reverse)
{
    res_t r = {0};
    broker_history_req_t req = {.channel = rt_str_c(ch),
                                .has_since = has_since,
                                .since_offset = since,
                                .limit = limit,
                                .reverse = reverse,
                                .history_ttl_ms = 60000,
                                .history_size = 100,
                                .history_meta_ttl_ms = f->read_meta_ttl_ms};
    assert_int_equal(broker_history(f->b, &req, history_cb, &r), 0);
    assert_int_equal(r.calls, 0);
    run(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    return r;
}

static void expect_offsets(const res_t *r, size_t n, const uint64_t *want)
{
    assert_int_equal(r->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(r->offsets[i], want[i]);
}

#define EXPECT(r, ...)                                                                             \
    do {                                                                                           \
        const uint64_t want_[] = {__VA_ARGS__};                                                    \
        expect_offsets(&(r), sizeof(want_) / sizeof(want_[0]), want_);                             \
    } while (0)

/* ---- tests ---- */

static void test_offsets_and_epoch(void **state)
{
    fix_t *f = *state;
    char epoch[16] = "";
    for (uint64_t i = 1; i <= 5; i++) {
        res_t r = pub_hist(f, "ch", "{}");
        assert_int_equal(r.offset, i);
        assert_false(r.suppressed);
        assert_int_equal(strlen(r.epoch), 8);
        if (i == 1)
            strcpy(epoch, r.epoch);
        assert_string_equal(r.epoch, epoch);
        /* The sink got the publication before the callback ran. */
        assert_int_equal(r.sink_pubs_at_cb, (int)i);
    }
    assert_int_equal(f->sink.npubs, 5);
    for (int i = 0; i < 5; i++) {
        broker_pub_t *p = f->sink.pubs[i];
        assert_int_equal(p->offset, (uint64_t)i + 1);
        assert_true(rt_str_eq_c(p->epoch, epoch));
        assert_true(rt_str_eq_c(p->channel, "ch"));
        assert_true(p->time_ms > 0);
    }
    /* Another channel has its own stream. */
    res_t o = pub_hist(f, "other", "{}");
    assert_int_equal(o.offset, 1);
}

static void test_publish_without_history(void **state)
{
    fix_t *f = *state;
    res_t r = pub_opts(f, "ch", "{\"x\":1}", (broker_publish_opts_t){0});
    assert_int_equal(r.offset, 0);
    assert_string_equal(r.epoch, "");
    assert_false(r.suppressed);
    assert_int_equal(f->sink.npubs, 1);
    assert_int_equal(f->sink.pubs[0]->offset, 0);
    assert_int_equal(f->sink.pubs[0]->epoch.n, 0);
    assert_true(rt_str_eq_c(f->sink.pubs[0]->data, "{\"x\":1}"));
    /* size without ttl (or the reverse) is no history either. */
    r = pub_opts(f, "ch", "{}", hist_opts(10, 0, 0));
    assert_int_equal(r.offset, 0);
    r = pub_opts(f, "ch", "{}", hist_opts(0, 1000, 0));
    assert_int_equal(r.offset, 0);
    /* No state is kept for channels without history. */
    broker_mem_stats_t st;
    broker_mem_stats(f->b, &st);
    assert_int_equal(st.channels, 0);
}

static void test_publish_copies_request(void **state)
{
    fix_t *f = *state;
    char ch[] = "chan", data[] = "{\"v\":\"abc\"}", user[] = "u", client[] = "c";
    char tk[] = "tk", tv[] = "tv";
    rt_client_info_t info = {rt_str_c(user), rt_str_c(client), RT_STR("{}"), RT_STR_NULL};
    broker_tag_t tag = {rt_str_c(tk), rt_str_c(tv)};
    broker_publish_req_t req = {.fields = {.channel = rt_str_c(ch),
                                           .data = rt_str_c(data),
                                           .info = &info,
                                           .tags = &tag,
                                           .ntags = 1,
                                           .delta = true,
                                           .offset = 999,
                                           .epoch = RT_STR("bogus"),
                                           .time_ms = 1},
                                .opts = hist_opts(10, 10000, 0)};
    res_t r = {0};
    assert_int_equal(broker_publish(f->b, &req, publish_cb, &r), 0);
    memset(ch, 'x', 4);
    memset(data, 'x', sizeof(data) - 1);
    memset(user, 'x', 1);
    memset(tk, 'x', 2);
    run(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(f->sink.npubs, 1);
    broker_pub_t *p = f->sink.pubs[0];
    assert_true(rt_str_eq_c(p->channel, "chan"));
    assert_true(rt_str_eq_c(p->data, "{\"v\":\"abc\"}"));
    assert_true(p->has_info);
    assert_true(rt_str_eq_c(p->info.user, "u"));
    assert_int_equal(p->ntags, 1);
    assert_true(rt_str_eq_c(p->tags[0].key, "tk"));
    assert_true(p->delta);
    /* The broker assigns position and time. */
    assert_int_equal(p->offset, 1);
    assert_true(rt_str_eq_c(p->epoch, r.epoch));
    assert_true(p->time_ms > 1000000000000LL);
}

static void fill(fix_t *f, const char *ch, int n)
{
    for (int i = 0; i < n; i++)
        pub_hist(f, ch, "{}");
}

static void test_history_table(void **state)
{
    fix_t *f = *state;
    fill(f, "ch", 10);
    char epoch[16];
    res_t r = history(f, "ch", false, 0, -1, false); /* absent, forward */
    EXPECT(r, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
    assert_int_equal(r.offset, 10);
    strcpy(epoch, r.epoch);
    r = history(f, "ch", false, 0, -1, true); /* absent, reverse */
    EXPECT(r, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
    r = history(f, "ch", true, 5, -1, false); /* offset N, forward: > N ascending */
    EXPECT(r, 6, 7, 8, 9, 10);
    r = history(f, "ch", true, 10, -1, false); /* N = top: empty */
    assert_int_equal(r.n, 0);
    assert_int_equal(r.offset, 10);
    r = history(f, "ch", true, 0, -1, false);
    EXPECT(r, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
    r = history(f, "ch", true, 5, -1, true); /* offset N, reverse: < N descending */
    EXPECT(r, 4, 3, 2, 1);
    r = history(f, "ch", true, 1, -1, true);
    assert_int_equal(r.n, 0);
    r = history(f, "ch", true, 0, -1, true); /* N = 0 reverse: the node rejects; nothing */
    assert_int_equal(r.n, 0);
    r = history(f, "ch", true, 11, -1, true); /* beyond the top */
    EXPECT(r, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
    r = history(f, "ch", true, 1000, -1, false);
    assert_int_equal(r.n, 0);
    assert_string_equal(r.epoch, epoch);
    assert_int_equal(r.offset, 10);
}

static void test_history_limit(void **state)
{
    fix_t *f = *state;
    fill(f, "ch", 10);
    res_t r = history(f, "ch", false, 0, 0, false); /* 0: only the top */
    assert_int_equal(r.n, 0);
    assert_int_equal(r.offset, 10);
    assert_int_equal(strlen(r.epoch), 8);
    r = history(f, "ch", true, 3, 0, true);
    assert_int_equal(r.n, 0);
    r = history(f, "ch", false, 0, 3, false);
    EXPECT(r, 1, 2, 3);
    r = history(f, "ch", false, 0, 3, true);
    EXPECT(r, 10, 9, 8);
    r = history(f, "ch", true, 5, 2, false);
    EXPECT(r, 6, 7);
    r = history(f, "ch", true, 5, 2, true);
    EXPECT(r, 4, 3);
    r = history(f, "ch", true, 8, 50, false);
    EXPECT(r, 9, 10);
    r = history(f, "ch", false, 0, -5, true); /* any negative: all */
    assert_int_equal(r.n, 10);
}

static void test_history_size_trim(void **state)
{
    fix_t *f = *state;
    for (int i = 0; i < 7; i++)
        pub_opts(f, "ch", "{}", hist_opts(3, 60000, 0));
    res_t r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 5, 6, 7);
    assert_int_equal(r.offset, 7);
    r = history(f, "ch", true, 1, -1, false); /* the gap is not an error: what is left */
    EXPECT(r, 5, 6, 7);
    r = history(f, "ch", true, 6, -1, true);
    EXPECT(r, 5);
    /* A smaller size keeps the newest. */
    pub_opts(f, "ch", "{}", hist_opts(2, 60000, 0));
    r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 7, 8);
    /* A larger size grows the window from now on. */
    for (int i = 0; i < 5; i++)
        pub_opts(f, "ch", "{}", hist_opts(50, 60000, 0));
    r = history(f, "ch", false, 0, -1, true);
    EXPECT(r, 13, 12, 11, 10, 9, 8, 7);
}

static void test_history_ttl_expiry(void **state)
{
    fix_t *f = *state;
    pub_opts(f, "ch", "{}", hist_opts(10, 150, 0));
    pub_opts(f, "ch", "{}", hist_opts(10, 150, 0));
    pub_opts(f, "ch", "{}", hist_opts(10, 60000, 0));
    wait_ms(f, 200);
    res_t first = pub_opts(f, "ch", "{}", hist_opts(10, 150, 0));
    assert_int_equal(first.offset, 4);
    res_t r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 3, 4);
    assert_int_equal(r.offset, 4);
    wait_ms(f, 200);
    /* Expired entries are skipped even when newer ones survive. */
    r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 3);
    r = history(f, "ch", true, 0, 5, false);
    EXPECT(r, 3);
    /* Epoch and top survive the expiry of the publications. */
    assert_string_equal(r.epoch, first.epoch);
    assert_int_equal(r.offset, 4);
}

static void test_meta_ttl_new_epoch(void **state)
{
    fix_t *f = *state;
    f->read_meta_ttl_ms = 200;
    res_t a = pub_opts(f, "ch", "{}", hist_opts(10, 50, 200));
    wait_ms(f, 100);
    res_t b = pub_opts(f, "ch", "{}", hist_opts(10, 50, 200)); /* activity extends the meta */
    assert_int_equal(b.offset, 2);
    assert_string_equal(b.epoch, a.epoch);
    wait_ms(f, 100);
    res_t r = history(f, "ch", false, 0, 0, false); /* reads extend it too */
    assert_int_equal(r.offset, 2);
    assert_string_equal(r.epoch, a.epoch);
    wait_ms(f, 300);
    res_t c = pub_opts(f, "ch", "{}", hist_opts(10, 50, 200));
    assert_int_equal(c.offset, 1);
    assert_int_equal(strlen(c.epoch), 8);
    assert_string_not_equal(c.epoch, a.epoch);
    r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 1);

    /* A read of an expired stream also starts a new epoch at offset 0. */
    wait_ms(f, 300);
    r = history(f, "ch", false, 0, -1, false);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.offset, 0);
    assert_string_not_equal(r.epoch, c.epoch);

    /* A read without a meta TTL leaves the lifetime alone (Redis: no EXPIRE). */
    res_t d = pub_opts(f, "other", "{}", hist_opts(10, 50, 200));
    f->read_meta_ttl_ms = 0;
    wait_ms(f, 100);
    r = history(f, "other", false, 0, 0, false);
    assert_string_equal(r.epoch, d.epoch);
    wait_ms(f, 150);
    r = history(f, "other", false, 0, 0, false);
    assert_string_not_equal(r.epoch, d.epoch);
    assert_int_equal(r.offset, 0);
}

static void test_history_creates_meta(void **state)
{
    fix_t *f = *state;
    res_t r = history(f, "fresh", false, 0, -1, false);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.offset, 0);
    assert_int_equal(strlen(r.epoch), 8);
    res_t again = history(f, "fresh", true, 0, 10, false);
    assert_string_equal(again.epoch, r.epoch);
    res_t p = pub_hist(f, "fresh", "{}");
    assert_int_equal(p.offset, 1);
    assert_string_equal(p.epoch, r.epoch);
}

static void test_idempotency(void **state)
{
    fix_t *f = *state;
    broker_publish_opts_t o = hist_opts(10, 60000, 0);
    o.idempotency_key = RT_STR("key-1");
    res_t a = pub_opts(f, "ch", "{\"n\":1}", o);
    assert_int_equal(a.offset, 1);
    assert_false(a.suppressed);
    pub_hist(f, "ch", "{}");
    res_t dup = pub_opts(f, "ch", "{\"n\":2}", o);
    assert_true(dup.suppressed);
    assert_int_equal(dup.offset, 1);
    assert_string_equal(dup.epoch, a.epoch);
    assert_int_equal(f->sink.npubs, 2); /* not delivered twice */
    res_t r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 1, 2);

    /* Keys are per channel. */
    res_t other = pub_opts(f, "ch2", "{}", o);
    assert_false(other.suppressed);
    assert_int_equal(other.offset, 1);
    /* A channel name that is a prefix of another cannot collide through the key. */
    broker_publish_opts_t o2 = hist_opts(10, 60000, 0);
    o2.idempotency_key = RT_STR("2key-1");
    res_t tricky = pub_opts(f, "ch", "{}", o2);
    assert_false(tricky.suppressed);

    /* Without history: the duplicate is dropped, position empty. */
    broker_publish_opts_t nh = {.idempotency_key = RT_STR("k")};
    int before = f->sink.npubs;
    res_t x = pub_opts(f, "nohist", "{}", nh);
    assert_false(x.suppressed);
    res_t y = pub_opts(f, "nohist", "{}", nh);
    assert_true(y.suppressed);
    assert_int_equal(y.offset, 0);
    assert_string_equal(y.epoch, "");
    assert_int_equal(f->sink.npubs, before + 1);
    broker_mem_stats_t st;
    broker_mem_stats(f->b, &st);
    assert_int_equal(st.idempotency_keys, 4);
}

static res_t pub_version(fix_t *f, uint64_t version, const char *version_epoch)
{
    broker_publish_opts_t o = hist_opts(10, 60000, 0);
    o.version = version;
    o.version_epoch = rt_str_c(version_epoch);
    return pub_opts(f, "ch", "{}", o);
}

static void test_version_suppression(void **state)
{
    fix_t *f = *state;
    res_t r = pub_version(f, 5, "");
    assert_false(r.suppressed);
    assert_int_equal(r.offset, 1);
    r = pub_version(f, 5, "");
    assert_true(r.suppressed);
    assert_int_equal(r.offset, 1); /* the current top */
    r = pub_version(f, 4, "");
    assert_true(r.suppressed);
    r = pub_version(f, 6, "");
    assert_false(r.suppressed);
    assert_int_equal(r.offset, 2);
    pub_hist(f, "ch", "{}"); /* version 0: not versioned, always accepted */
    r = pub_version(f, 6, "");
    assert_true(r.suppressed);
    assert_int_equal(r.offset, 3);
    r = pub_version(f, 1, "e2"); /* a different epoch always accepts */
    assert_false(r.suppressed);
    assert_int_equal(r.offset, 4);
    r = pub_version(f, 1, "e2");
    assert_true(r.suppressed);
    r = pub_version(f, 1, ""); /* empty shares the stored scope (as the Redis script) */
    assert_true(r.suppressed);
    r = pub_version(f, 2, "e2");
    assert_false(r.suppressed);
    assert_int_equal(r.offset, 5);
    assert_int_equal(f->sink.npubs, 5);

    /* Without history, versions are ignored. */
    broker_publish_opts_t o = {.version = 1};
    assert_false(pub_opts(f, "nohist", "{}", o).suppressed);
    assert_false(pub_opts(f, "nohist", "{}", o).suppressed);
    assert_int_equal(f->sink.npubs, 7);
}

static void test_history_remove_keeps_top(void **state)
{
    fix_t *f = *state;
    fill(f, "ch", 3);
    res_t before = history(f, "ch", false, 0, -1, false);
    res_t d = {0};
    assert_int_equal(broker_history_remove(f->b, RT_STR("ch"), done_cb, &d), 0);
    assert_int_equal(d.calls, 0);
    run(f);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    res_t r = history(f, "ch", false, 0, -1, false);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.offset, 3);
    assert_string_equal(r.epoch, before.epoch);
    res_t p = pub_hist(f, "ch", "{}");
    assert_int_equal(p.offset, 4);
    assert_string_equal(p.epoch, before.epoch);
    r = history(f, "ch", false, 0, -1, false);
    EXPECT(r, 4);
    /* Removing unknown history is fine. */
    d.calls = 0;
    assert_int_equal(broker_history_remove(f->b, RT_STR("nothing"), done_cb, &d), 0);
    run(f);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
}

static void test_never_synchronous(void **state)
{
    fix_t *f = *state;
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")},
                                .opts = hist_opts(10, 60000, 0)};
    broker_publish_req_t plain = {.fields = {.channel = RT_STR("p"), .data = RT_STR("{}")}};
    broker_history_req_t hreq = {.channel = RT_STR("ch"), .limit = -1};
    rt_client_info_t info = {RT_STR("u"), RT_STR("c"), RT_STR_NULL, RT_STR_NULL};
    res_t p1 = {0}, p2 = {0}, h = {0}, d = {0};

    assert_int_equal(broker_publish(f->b, &req, publish_cb, &p1), 0);
    assert_int_equal(broker_publish(f->b, &plain, publish_cb, &p2), 0);
    assert_int_equal(broker_history(f->b, &hreq, history_cb, &h), 0);
    assert_int_equal(broker_history_remove(f->b, RT_STR("x"), done_cb, &d), 0);
    assert_int_equal(broker_publish_join(f->b, RT_STR("ch"), &info), 0);
    assert_int_equal(broker_publish_leave(f->b, RT_STR("ch"), &info), 0);
    assert_int_equal(p1.calls + p2.calls + h.calls + d.calls, 0);
    assert_int_equal(f->sink.npubs + f->sink.njoins + f->sink.nleaves, 0);
    run(f);
    assert_int_equal(p1.calls, 1);
    assert_int_equal(p2.calls, 1);
    assert_int_equal(h.calls, 1);
    assert_int_equal(d.calls, 1);
    assert_int_equal(f->sink.npubs, 2);
    assert_int_equal(f->sink.njoins, 1);
    assert_int_equal(f->sink.nleaves, 1);
    /* The read issued right after the publish already sees it. */
    EXPECT(h, 1);
}

static void test_bad_requests(void **state)
{
    fix_t *f = *state;
    res_t r = {0};
    broker_publish_req_t req = {.fields = {.data = RT_STR("{}")}};
    assert_int_equal(broker_publish(f->b, &req, publish_cb, &r), RT_EINVAL);
    broker_history_req_t h = {.limit = -1};
    assert_int_equal(broker_history(f->b, &h, history_cb, &r), RT_EINVAL);
    assert_int_equal(broker_history_remove(f->b, RT_STR_NULL, done_cb, &r), RT_EINVAL);
    run(f);
    assert_int_equal(r.calls, 0);
    const char *reason = "x";
    assert_true(broker_ready(f->b, &reason));
    assert_null(reason);
    assert_true(broker_ready(f->b, NULL));
}

/* Chained publish from inside a callback: runs on a later iteration, still ordered. */
typedef struct chain {
    fix_t *f;
    int depth;
    int calls;
    bool in_publish;
} chain_t;

static void chain_cb(int status, const broker_pos_t *pos, bool suppressed, void *ud)
{
    chain_t *c = ud;
    assert_false(c->in_publish);
    assert_int_equal(status, 0);
    c->calls++;
    assert_int_equal(pos->offset, (uint64_t)c->calls);
    if (c->calls < c->depth) {
        broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")},
                                    .opts = hist_opts(10, 60000, 0)};
        c->in_publish = true;
        assert_int_equal(broker_publish(c->f->b, &req, chain_cb, c), 0);
        c->in_publish = false;
    }
}

static void test_publish_from_callback(void **state)
{
    fix_t *f = *state;
    chain_t c = {f, 5, 0, false};
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")},
                                .opts = hist_opts(10, 60000, 0)};
    assert_int_equal(broker_publish(f->b, &req, chain_cb, &c), 0);
    run(f);
    assert_int_equal(c.calls, 5);
    assert_int_equal(f->sink.npubs, 5);
}

static void test_sink_order_across_channels(void **state)
{
    fix_t *f = *state;
    res_t r[6] = {{0}};
    const char *chans[6] = {"a", "b", "a", "c", "b", "a"};
    for (int i = 0; i < 6; i++) {
        char data[8];
        snprintf(data, sizeof(data), "%d", i);
        broker_publish_req_t req = {
            .fields = {.channel = rt_str_c(chans[i]), .data = rt_str_c(data)},
            .opts = i % 2 ? (broker_publish_opts_t){0} : hist_opts(10, 60000, 0)};
        assert_int_equal(broker_publish(f->b, &req, publish_cb, &r[i]), 0);
    }
    run(f);
    assert_int_equal(f->sink.npubs, 6);
    for (int i = 0; i < 6; i++) {
        char data[8];
        snprintf(data, sizeof(data), "%d", i);
        assert_true(rt_str_eq_c(f->sink.pubs[i]->data, data));
        assert_int_equal(r[i].calls, 1);
    }
    assert_int_equal(r[0].offset, 1); /* even publishes keep history */
    assert_int_equal(r[2].offset, 2);
    assert_int_equal(r[4].offset, 1);
    assert_int_equal(r[5].offset, 0);
}

static void test_join_leave(void **state)
{
    fix_t *f = *state;
    char user[] = "u1", client[] = "c1", ci[] = "{\"a\":1}";
    rt_client_info_t info = {rt_str_c(user), rt_str_c(client), rt_str_c(ci), RT_STR("[]")};
    assert_int_equal(broker_publish_join(f->b, RT_STR("room"), &info), 0);
    memset(user, 'x', 2);
    memset(client, 'x', 2);
    memset(ci, 'x', sizeof(ci) - 1);
    info.client = RT_STR("c2");
    info.user = RT_STR("u2");
    info.conn_info = RT_STR_NULL;
    assert_int_equal(broker_publish_leave(f->b, RT_STR("room2"), &info), 0);
    run(f);
    assert_int_equal(f->sink.njoins, 1);
    assert_int_equal(f->sink.nleaves, 1);
    assert_string_equal(f->sink.last_join, "room|u1|c1|{\"a\":1}|[]");
    assert_string_equal(f->sink.last_leave, "room2|u2|c2||[]");
    assert_int_equal(f->sink.npubs, 0);
    assert_int_equal(broker_publish_join(f->b, RT_STR("room"), NULL), RT_EINVAL);
}

static void test_subscribe_stats(void **state)
{
    fix_t *f = *state;
    broker_mem_stats_t st;
    assert_int_equal(broker_subscribe(f->b, RT_STR("a")), 0);
    assert_int_equal(broker_subscribe(f->b, RT_STR("a")), 0);
    assert_int_equal(broker_subscribe(f->b, RT_STR("b")), 0);
    broker_mem_stats(f->b, &st);
    assert_int_equal(st.subscribed, 2);
    assert_int_equal(st.channels, 2);
    /* Every channel reaches the sink, subscribed or not. */
    pub_opts(f, "zzz", "{}", (broker_publish_opts_t){0});
    assert_int_equal(f->sink.npubs, 1);
    pub_hist(f, "b", "{}");
    assert_int_equal(broker_unsubscribe(f->b, RT_STR("a")), 0);
    assert_int_equal(broker_unsubscribe(f->b, RT_STR("a")), 0);
    assert_int_equal(broker_unsubscribe(f->b, RT_STR("never")), 0);
    broker_mem_stats(f->b, &st);
    assert_int_equal(st.subscribed, 1);
    assert_int_equal(st.channels, 1); /* "a" freed at once; "b" keeps its stream */
    assert_int_equal(broker_unsubscribe(f->b, RT_STR("b")), 0);
    broker_mem_stats(f->b, &st);
    assert_int_equal(st.subscribed, 0);
    assert_int_equal(st.channels, 1);
    res_t r = history(f, "b", false, 0, -1, false);
    EXPECT(r, 1);
}

static void test_sweep_frees_idle(void **state)
{
    fix_t *f = *state;
    pub_opts(f, "x", "{}", hist_opts(10, 50, 100));
    pub_opts(f, "y", "{}", hist_opts(10, 50, 0)); /* meta never expires */
    broker_mem_stats_t st;
    broker_mem_stats(f->b, &st);
    assert_int_equal(st.channels, 2);
    wait_ms(f, 1300); /* the sweep runs every second */
    broker_mem_stats(f->b, &st);
    assert_int_equal(st.channels, 1);
    res_t r = history(f, "y", false, 0, -1, false);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.offset, 1);
}

/* ---- destroy ---- */

static void test_destroy_cancels_pending(void **state)
{
    fix_t *f = *state;
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")},
                                .opts = hist_opts(10, 60000, 0)};
    broker_history_req_t hreq = {.channel = RT_STR("ch"), .limit = -1};
    rt_client_info_t info = {RT_STR("u"), RT_STR("c"), RT_STR_NULL, RT_STR_NULL};
    res_t p = {0}, h = {0}, d = {0};
    assert_int_equal(broker_publish(f->b, &req, publish_cb, &p), 0);
    assert_int_equal(broker_history(f->b, &hreq, history_cb, &h), 0);
    assert_int_equal(broker_history_remove(f->b, RT_STR("ch"), done_cb, &d), 0);
    assert_int_equal(broker_publish_join(f->b, RT_STR("ch"), &info), 0);
    broker_destroy(f->b);
    f->b = NULL;
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.status, RT_ECANCELED);
    assert_false(p.suppressed);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.status, RT_ECANCELED);
    assert_int_equal(h.n, 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, RT_ECANCELED);
    assert_int_equal(f->sink.npubs + f->sink.njoins, 0);
    /* Nothing is left on the loop: no late callback, and ev_run returns at once. */
    ev_run(f->loop, 0);
    assert_int_equal(p.calls + h.calls + d.calls, 3);
}

typedef struct killer {
    fix_t *f;
    int calls;
    int statuses[4];
    int reissue_status;
} killer_t;

static void killer_cb(int status, const broker_pos_t *pos, bool suppressed, void *ud)
{
    killer_t *k = ud;
    k->statuses[k->calls++] = status;
    if (k->calls == 1) {
        broker_destroy(k->f->b);
        k->f->b = NULL;
    }
}

static void killer_hist_cb(int status, broker_pub_t *const *pubs, size_t n, const broker_pos_t *top,
                           void *ud)
{
    killer_t *k = ud;
    k->statuses[k->calls++] = status;
}

static void test_destroy_from_callback(void **state)
{
    fix_t *f = *state;
    killer_t k = {f, 0, {0}, 0};
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")},
                                .opts = hist_opts(10, 60000, 0)};
    broker_history_req_t hreq = {.channel = RT_STR("ch"), .limit = -1};
    assert_int_equal(broker_publish(f->b, &req, killer_cb, &k), 0);
    assert_int_equal(broker_publish(f->b, &req, killer_cb, &k), 0);
    assert_int_equal(broker_history(f->b, &hreq, killer_hist_cb, &k), 0);
    run(f);
    assert_int_equal(k.calls, 3);
    assert_int_equal(k.statuses[0], 0);
    assert_int_equal(k.statuses[1], RT_ECANCELED);
    assert_int_equal(k.statuses[2], RT_ECANCELED);
    assert_int_equal(f->sink.npubs, 1); /* the second was never delivered */
}

static void reissue_cb(int status, const broker_pos_t *pos, bool suppressed, void *ud)
{
    killer_t *k = ud;
    k->statuses[k->calls++] = status;
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")}};
    k->reissue_status = broker_publish(k->f->b, &req, reissue_cb, k);
}

static void test_request_during_destroy(void **state)
{
    fix_t *f = *state;
    killer_t k = {f, 0, {0}, 0};
    broker_publish_req_t req = {.fields = {.channel = RT_STR("ch"), .data = RT_STR("{}")}};
    assert_int_equal(broker_publish(f->b, &req, reissue_cb, &k), 0);
    broker_destroy(f->b);
    f->b = NULL;
    assert_int_equal(k.calls, 1);
    assert_int_equal(k.statuses[0], RT_ECANCELED);
    assert_int_equal(k.reissue_status, RT_ECLOSED);
}

int run_broker_mem(void); /* called by the generated unit_main.c */
int run_broker_mem(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offsets_and_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_without_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_copies_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_size_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_ttl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_ttl_new_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_creates_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_suppression, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_remove_keeps_top, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_synchronous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_order_across_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_frees_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_cancels_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_during_destroy, setup, teardown),
    };
    return cmocka_run_group_tests_name("broker_mem", tests, NULL, NULL);
}

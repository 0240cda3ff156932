/* JSON parser: parse, walk every node through every getter, and check the invariants the
 * protocol code relies on (raw spans inside the input, decoded strings valid UTF-8, written
 * strings and raw values re-parse). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "node/base/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *in_lo;
static const char *in_hi;

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_string(rt_str_t s)
{
    check(rt_utf8_valid(s.p, s.n));
    rt_buf_t w = RT_BUF_INIT;
    rt_json_write_string(&w, s);
    rt_json_doc_t d;
    check(rt_json_parse(&d, (const char *)w.p, w.len, 0) == 0);
    check(d.root->type == RT_JSON_STRING);
    rt_buf_t back = RT_BUF_INIT;
    check(rt_json_get_string(d.root, &back) == 0);
    check(rt_str_eq(rt_buf_str(&back), s));
    rt_buf_cleanup(&back);
    rt_json_doc_cleanup(&d);
    rt_buf_cleanup(&w);
}

static void walk(const rt_json_t *parent, const rt_json_t *v)
{
    check(v->raw.p >= in_lo && v->raw.p + v->raw.n <= in_hi && v->raw.n > 0);
    check(rt_json_valid(v->raw.p, v->raw.n));

    bool b;
    int64_t i64;
    uint64_t u64;
    double d;
    int rc = rt_json_get_bool(v, &b);
    check(rc == 0 ? (v->type == RT_JSON_TRUE) == b : rc == RT_EINVAL);
    rc = rt_json_get_int64(v, &i64);
    check(rc == 0 || rc == RT_EINVAL);
    if (rc == 0)
        check(memchr(v->raw.p, '.', v->raw.n) == NULL);
    rc = rt_json_get_uint64(v, &u64);
    check(rc == 0 || rc == RT_EINVAL);
    if (rc == 0)
        check(v->raw.p[0] != '-');
    rc = rt_json_get_double(v, &d);
    check(rc == 0 || rc == RT_EINVAL);
    check((rc == 0) <= (v->type == RT_JSON_NUMBER));

    rt_buf_t s = RT_BUF_INIT;
    rc = rt_json_get_string(v, &s);
    check((rc == 0) == (v->type == RT_JSON_STRING));
    if (rc == 0) {
        check_string(rt_buf_str(&s));
        rt_str_t slice;
        int src = rt_json_string_slice(v, &slice);
        check(src == 0 || src == RT_EAGAIN);
        if (src == 0)
            check(rt_str_eq(slice, rt_buf_str(&s)));
        char *dup = NULL;
        check(rt_json_get_string_dup(v, &dup) == 0);
        check(strlen(dup) <= s.len && (s.len == 0 || memcmp(dup, s.p, strlen(dup)) == 0));
        rt_free(dup);
    }
    rt_buf_cleanup(&s);

    if (parent != NULL && parent->type == RT_JSON_OBJECT) {
        rt_buf_t k = RT_BUF_INIT;
        rt_json_get_key(v, &k);
        check(rt_json_key_eq(v, rt_buf_str(&k)));
        check_string(rt_buf_str(&k));
        if (k.len == 0 || memchr(k.p, '\0', k.len) == NULL) {
            rt_buf_append_byte(&k, '\0');
            rt_str_t key = rt_str_from((const char *)k.p, k.len - 1);
            const rt_json_t *m = rt_json_get(parent, (const char *)k.p);
            check(m != NULL && rt_json_key_eq(m, key));
            for (const rt_json_t *x = m->next; x != NULL; x = x->next)
                check(!rt_json_key_eq(x, key)); /* the last duplicate wins */
        }
        rt_buf_cleanup(&k);
    } else {
        check(v->key.p == NULL);
    }

    size_t count = 0;
    for (const rt_json_t *c = v->child; c != NULL; c = c->next) {
        walk(v, c);
        count++;
    }
    check(count == v->count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    in_lo = p;
    in_hi = p + size;

    rt_json_doc_t doc;
    int rc = rt_json_parse(&doc, p, size, 0);
    check(rc == 0 || rc == RT_EINVAL || rc == RT_ELIMIT);
    check(rt_json_valid(p, size) == (rc == 0));
    check((rc == 0) == (doc.root != NULL));

    rt_json_doc_t shallow;
    int src = rt_json_parse(&shallow, p, size, 2);
    if (rc == 0)
        check(src == 0 || src == RT_ELIMIT);
    rt_json_doc_cleanup(&shallow);

    if (rc == 0) {
        check(doc.root->raw.n <= size);
        walk(NULL, doc.root);
        rt_buf_t w = RT_BUF_INIT;
        rt_json_write_raw(&w, doc.root->raw);
        check(memchr(w.p, '\n', w.len) == NULL && memchr(w.p, '\r', w.len) == NULL);
        check(rt_json_valid((const char *)w.p, w.len));
        rt_buf_cleanup(&w);
    }
    rt_json_doc_cleanup(&doc);
    return 0;
}

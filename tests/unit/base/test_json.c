#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/json.h"

/* A string literal with its exact length (embedded NULs count). */
typedef struct lit {
    const char *p;
    size_t n;
} lit_t;
#define L(s)                                                                                       \
    {                                                                                              \
        (s), sizeof(s) - 1                                                                         \
    }

static const lit_t valid_docs[] = {
    L("0"),
    L("-0"),
    L("1"),
    L("-1"),
    L("0.5"),
    L("-0.0"),
    L("1e5"),
    L("1E+5"),
    L("1e-5"),
    L("1.5e010"),
    L("0e0"),
    L("-0E-0"),
    L("123456789012345678901234567890"),
    L(" 1 "),
    L("\t\n\r 1\t\n\r "),
    L("\"\""),
    L("\"a\""),
    L("\" \""),
    L("\"\\u0000\""),
    L("\"\\ud83d\\ude00\""),
    L("\"\\uD834\\uDD1E\""),
    L("\"\\uDBFF\\uDFFF\""),
    L("\"\\uFFFF\""),
    L("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""),
    L("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""),
    L("\"\xf4\x8f\xbf\xbf\""),
    L("\"\xe2\x80\xa8\xe2\x80\xa9\""),
    L("\"\x7f\""),
    L("\"a\\u00e9b\""),
    L("true"),
    L("false"),
    L("null"),
    L("[]"),
    L("{}"),
    L("[[]]"),
    L("[{}]"),
    L("[ ]"),
    L("{ }"),
    L("{\"\":0}"),
    L("{\"a\":[1,{\"b\":null}]}"),
    L("[1,2,3]"),
    L("[ 1 , 2 ]"),
    L("[true,false,null]"),
    L("{\"a\":1,\"a\":2}"),
    L("{\"a\\nb\":\"c\"}"),
    L("[\"\\u0061\",-12.5e+3,{\"x\":{}}]"),
    L("{\"method\":1,\"id\":2,\"params\":{\"channel\":\"news\",\"data\":{\"a\":1.10}}}"),
};

static const lit_t invalid_docs[] = {
    L(""),
    L(" "),
    L("\t\r\n"),
    L("["),
    L("]"),
    L("{"),
    L("}"),
    L("[1,]"),
    L("[,1]"),
    L("[1,,2]"),
    L("[1 2]"),
    L("[,]"),
    L("{,}"),
    L("{\"a\":1,}"),
    L("{\"a\"}"),
    L("{\"a\" 1}"),
    L("{\"a\"::1}"),
    L("{:1}"),
    L("{1:1}"),
    L("{null:1}"),
    L("{a:1}"),
    L("{'a':1}"),
    L("['a']"),
    L("{\"a\":1 \"b\":2}"),
    L("{\"a\":1}}"),
    L("[[]"),
    L("[]]"),
    L("[}"),
    L("{]"),
    L("[\"a\",]"),
    L("01"),
    L("00"),
    L("[01]"),
    L("[-01]"),
    L("-"),
    L("[-]"),
    L("[- 1]"),
    L("+1"),
    L("[+1]"),
    L(".5"),
    L("[.5]"),
    L("1."),
    L("[1.]"),
    L("[1.e5]"),
    L("1e"),
    L("1e+"),
    L("1E-"),
    L("1ee2"),
    L("1e1.5"),
    L("0.0.0"),
    L("0x10"),
    L("NaN"),
    L("[Infinity]"),
    L("[-Infinity]"),
    L("tru"),
    L("True"),
    L("nul"),
    L("nulll"),
    L("falsee"),
    L("[truefalse]"),
    L("\"abc"),
    L("\""),
    L("\"\\"),
    L("\"\\\""),
    L("\"\\x00\""),
    L("\"\\'\""),
    L("\"\\a\""),
    L("\"\\U0041\""),
    L("\"\\u\""),
    L("\"\\u00\""),
    L("\"\\u123\""),
    L("\"\\u00G0\""),
    L("\"\\u-123\""),
    L("\"\\ud800\""),
    L("\"\\udc00\""),
    L("\"\\udfff\\ud800\""),
    L("\"\\ud800\\u0041\""),
    L("\"\\ud800\\ud800\""),
    L("\"\\ud800x\""),
    L("\"\\ud800\\\""),
    L("\"\\ud800\\n\""),
    L("\"\\ud800\\udc0\""),
    L("\"\t\""),
    L("\"\n\""),
    L("\"\x01\""),
    L("\"\x1f\""),
    L("\"a\x00b\""),
    L("\"\xff\""),
    L("\"\x80\""),
    L("\"\xc0\xaf\""),
    L("\"\xc1\xbf\""),
    L("\"\xe0\x80\xaf\""),
    L("\"\xed\xa0\x80\""),
    L("\"\xed\xbf\xbf\""),
    L("\"\xf0\x80\x80\xaf\""),
    L("\"\xf4\x90\x80\x80\""),
    L("\"\xf5\x80\x80\x80\""),
    L("\"\xe2\x82\""),
    L("\"\xc3\""),
    L("\"\xf0\x9f\x98\""),
    L("[1]x"),
    L("[1] [2]"),
    L("1 2"),
    L("{}{}"),
    L("/* c */ 1"),
    L("[1]//"),
    L("# 1"),
    L("\xef\xbb\xbf[1]"),
    L("[\f1]"),
    L("[\v1]"),
    L("\xc2\xa0[1]"),
    L("[1\x00]"),
    L("[1]\x00"),
    L("\x00"),
    L("'a'"),
    L("[\"\\uD834\\uDD1E\" , ]"),
    L("{\"a\":}"),
    L("{\"a\":1,\"b\"}"),
    L("[\"a\":1]"),
    L("\xe9"),
};

/* Canonical dump of a tree, to compare parses of the same bytes in different buffers. */
static void dump(rt_buf_t *out, const rt_json_t *v)
{
    rt_buf_printf(out, "%d:", (int)v->type);
    if (v->key.p != NULL) {
        rt_buf_append_byte(out, 'k');
        rt_json_get_key(v, out);
        rt_buf_append_byte(out, '=');
    }
    if (v->child == NULL) {
        rt_buf_append_str(out, v->raw);
    } else {
        rt_buf_append_byte(out, '(');
        for (const rt_json_t *c = v->child; c != NULL; c = c->next)
            dump(out, c);
        rt_buf_append_byte(out, ')');
    }
    rt_buf_printf(out, "#%zu;", v->count);
}

/* Parses a heap copy of exactly n bytes so ASan catches any read past the end. */
static int parse_copy(const char *p, size_t n, rt_buf_t *tree)
{
    char *copy = rt_memdup(p, n);
    rt_json_doc_t doc;
    int rc = rt_json_parse(&doc, copy, n, 0);
    assert_int_equal(rt_json_valid(copy, n), rc == 0);
    if (rc == 0) {
        assert_non_null(doc.root);
        if (tree != NULL)
            dump(tree, doc.root);
    } else {
        assert_null(doc.root);
    }
    rt_json_doc_cleanup(&doc);
    rt_free(copy);
    return rc;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void test_valid_corpus(void **state)
{
    for (size_t i = 0; i < sizeof(valid_docs) / sizeof(valid_docs[0]); i++) {
        const lit_t *d = &valid_docs[i];
        rt_buf_t whole = RT_BUF_INIT;
        if (parse_copy(d->p, d->n, &whole) != 0)
            fail_msg("valid doc %zu rejected: %.*s", i, (int)d->n, d->p);

        /* The same bytes assembled from two pieces parse to the same tree. */
        for (size_t k = 0; k <= d->n; k++) {
            char *joined = rt_malloc(d->n);
            memcpy(joined, d->p, k);
            memcpy(joined + k, d->p + k, d->n - k);
            rt_buf_t split = RT_BUF_INIT;
            assert_int_equal(parse_copy(joined, d->n, &split), 0);
            assert_true(rt_str_eq(rt_buf_str(&split), rt_buf_str(&whole)));
            rt_buf_cleanup(&split);
            rt_free(joined);
        }

        /* Every prefix (fed as if the bytes arrived one at a time) is judged consistently:
         * a value that is not a bare number is incomplete until its last significant
         * byte, so no strict prefix of it may parse. */
        size_t last = d->n;
        while (last > 0 && is_ws(d->p[last - 1]))
            last--;
        size_t first = 0;
        while (first < d->n && is_ws(d->p[first]))
            first++;
        bool number = d->p[first] == '-' || (d->p[first] >= '0' && d->p[first] <= '9');
        for (size_t k = 1; k < d->n; k++) {
            int rc = parse_copy(d->p, k, NULL);
            assert_true(rc == 0 || rc == RT_EINVAL);
            if (!number && k < last && rc == 0)
                fail_msg("prefix %zu of doc %zu parsed", k, i);
            if (k >= last)
                assert_int_equal(rc, 0);
        }
        rt_buf_cleanup(&whole);
    }
}

static void test_invalid_corpus(void **state)
{
    for (size_t i = 0; i < sizeof(invalid_docs) / sizeof(invalid_docs[0]); i++) {
        const lit_t *d = &invalid_docs[i];
        int rc = d->n == 0 ? 0 : parse_copy(d->p, d->n, NULL);
        if (d->n == 0) {
            rt_json_doc_t doc;
            rc = rt_json_parse(&doc, d->p, 0, 0);
            assert_null(doc.root);
            rt_json_doc_cleanup(&doc);
        }
        if (rc != RT_EINVAL)
            fail_msg("invalid doc %zu: rc %d: %.*s", i, rc, (int)d->n, d->p);
    }
    assert_false(rt_json_valid(NULL, 0));
    rt_json_doc_t doc;
    assert_int_equal(rt_json_parse(&doc, NULL, 0, 0), RT_EINVAL);
    rt_json_doc_cleanup(&doc);
    rt_json_doc_cleanup(&doc); /* cleanup is idempotent */
}

/* Every single byte as string content: only the RFC's unescaped set is accepted. */
static void test_string_bytes(void **state)
{
    for (int c = 0; c < 256; c++) {
        char doc[3] = {'"', (char)c, '"'};
        bool want = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
        assert_int_equal(rt_json_valid(doc, 3), want);
        char ws[3] = {(char)c, '1', (char)c};
        bool want_ws =
            c == ' ' || c == '\t' || c == '\n' || c == '\r' || (c >= '1' && c <= '9') || c == '"';
        assert_int_equal(rt_json_valid(ws, 3), want_ws);
    }
    for (int c = 0; c < 128; c++) {
        char esc[4] = {'"', '\\', (char)c, '"'};
        bool want = c != 0 && strchr("\"\\/bfnrt", c) != NULL;
        assert_int_equal(rt_json_valid(esc, 4), want);
    }
}

/* Special bytes at every offset of a long string: the 8-byte scan must stop at each. */
static void test_string_word_boundaries(void **state)
{
    static const struct {
        const char *ins;
        bool valid;
    } cases[] = {
        {"\"", false},
        {"\\", false},
        {"\x01", false},
        {"\x1f", false},
        {"\x7f", true},
        {"\xc3\xa9", true},
        {"\xc3", false},
        {"\xe2\x82\xac", true},
        {"\xed\xa0\x80", false},
        {"\\n", true},
        {"\\u00e9", true},
        {"\\ud800", false},
        {"\xf0\x9f\x98\x80", true},
        {"\xff", false},
        {" ", true},
    };
    char doc[64];
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t k = strlen(cases[c].ins);
        for (size_t off = 0; off <= 24; off++) {
            size_t n = 0;
            doc[n++] = '"';
            memset(doc + n, 'a', off);
            n += off;
            memcpy(doc + n, cases[c].ins, k);
            n += k;
            memset(doc + n, 'x', 20); /* not an escape letter */
            n += 20;
            doc[n++] = '"';
            if (parse_copy(doc, n, NULL) != (cases[c].valid ? 0 : RT_EINVAL))
                fail_msg("case %zu at offset %zu", c, off);
        }
    }
}

static rt_json_t *parse_ok(rt_json_doc_t *doc, const char *s)
{
    int rc = rt_json_parse(doc, s, strlen(s), 0);
    if (rc != 0)
        fail_msg("parse failed (%d): %s", rc, s);
    return doc->root;
}

static void test_raw_preserved(void **state)
{
    rt_json_doc_t doc;
    const char *s = "{\"a\":1.10,\"b\":1180591620717411303424}";
    rt_json_t *root = parse_ok(&doc, s);
    assert_int_equal(root->type, RT_JSON_OBJECT);
    assert_int_equal(root->count, 2);
    assert_true(rt_str_eq(root->raw, rt_str_c(s)));
    rt_json_t *a = rt_json_get(root, "a");
    rt_json_t *b = rt_json_get(root, "b");
    assert_int_equal(a->type, RT_JSON_NUMBER);
    assert_true(rt_str_eq_c(a->raw, "1.10"));
    assert_true(rt_str_eq_c(b->raw, "1180591620717411303424"));
    assert_true(rt_str_eq_c(a->key, "a"));
    assert_ptr_equal(a->next, b);
    assert_null(b->next);
    rt_json_doc_cleanup(&doc);

    s = " \r\n{ \"x\" : [ 1 , \"y\\n\" ,{ } ] ,\"z\":{\"q\":[]} }\t";
    root = parse_ok(&doc, s);
    assert_true(rt_str_eq_c(root->raw, "{ \"x\" : [ 1 , \"y\\n\" ,{ } ] ,\"z\":{\"q\":[]} }"));
    rt_json_t *x = rt_json_get(root, "x");
    assert_true(rt_str_eq_c(x->raw, "[ 1 , \"y\\n\" ,{ } ]"));
    assert_int_equal(x->count, 3);
    assert_true(rt_str_eq_c(x->child->raw, "1"));
    assert_null(x->child->key.p);
    assert_true(rt_str_eq_c(x->child->next->raw, "\"y\\n\""));
    assert_true(rt_str_eq_c(x->child->next->next->raw, "{ }"));
    assert_int_equal(x->child->next->next->count, 0);
    assert_null(x->child->next->next->child);
    rt_json_t *z = rt_json_get(root, "z");
    assert_true(rt_str_eq_c(z->raw, "{\"q\":[]}"));
    assert_true(rt_str_eq_c(rt_json_get(z, "q")->raw, "[]"));
    rt_buf_t w = RT_BUF_INIT;
    rt_json_write_raw(&w, root->raw);
    assert_true(rt_str_eq_c(rt_buf_str(&w), "{ \"x\" : [ 1 , \"y\\n\" ,{ } ] ,\"z\":{\"q\":[]} }"));
    rt_buf_cleanup(&w);
    rt_json_doc_cleanup(&doc);

    /* Fuzzer find: an element after a closed object inherited the object's last key. */
    root = parse_ok(&doc, "[{\"a\":{\"b\":1}},2,{\"c\":3}]");
    assert_null(root->child->key.p);
    assert_null(root->child->next->key.p);
    assert_false(root->child->next->key_escaped);
    assert_null(root->child->next->next->key.p);
    assert_true(rt_str_eq_c(root->child->child->key, "a"));
    rt_json_doc_cleanup(&doc);

    root = parse_ok(&doc, "\"s\"");
    assert_true(rt_str_eq_c(root->raw, "\"s\""));
    rt_json_doc_cleanup(&doc);
}

static void test_duplicate_and_escaped_keys(void **state)
{
    rt_json_doc_t doc;
    rt_json_t *root = parse_ok(&doc, "{\"a\":1,\"b\":2,\"a\":3}");
    assert_int_equal(root->count, 3);
    assert_true(rt_str_eq_c(rt_json_get(root, "a")->raw, "3"));
    assert_null(rt_json_get(root, "c"));
    assert_null(rt_json_get(root, ""));
    assert_null(rt_json_get(NULL, "a"));
    assert_null(rt_json_get(root->child, "a")); /* not an object */
    rt_json_doc_cleanup(&doc);

    root = parse_ok(&doc, "{\"a\":1,\"\\u0061\":2,\"\\u00e9t\\u00E9\":3,\"q\\\"\\\\\\/\":4,"
                          "\"\\ud83d\\ude00\":5,\"ab\\u0063\":6,\"\":7,\"\\u0000x\":8}");
    assert_true(rt_str_eq_c(rt_json_get(root, "a")->raw, "2"));
    assert_true(root->child->next->key_escaped);
    assert_false(root->child->key_escaped);
    assert_true(rt_str_eq_c(rt_json_get(root, "\xc3\xa9t\xc3\xa9")->raw, "3"));
    assert_true(rt_str_eq_c(rt_json_get(root, "q\"\\/")->raw, "4"));
    assert_true(rt_str_eq_c(rt_json_get(root, "\xf0\x9f\x98\x80")->raw, "5"));
    assert_true(rt_str_eq_c(rt_json_get(root, "abc")->raw, "6"));
    assert_null(rt_json_get(root, "ab"));
    assert_null(rt_json_get(root, "abcd"));
    assert_true(rt_str_eq_c(rt_json_get(root, "")->raw, "7"));

    rt_json_t *nul = rt_json_get(root, "");
    assert_non_null(nul);
    rt_json_t *m8 = nul->next;
    assert_true(rt_json_key_eq(m8, rt_str_from("\0x", 2)));
    assert_false(rt_json_key_eq(m8, RT_STR("x")));
    assert_false(rt_json_key_eq(NULL, RT_STR("x")));

    rt_buf_t k = RT_BUF_INIT;
    rt_json_get_key(root->child->next->next, &k);
    assert_true(rt_str_eq_c(rt_buf_str(&k), "\xc3\xa9t\xc3\xa9"));
    rt_buf_reset(&k);
    rt_json_get_key(root->child, &k);
    assert_true(rt_str_eq_c(rt_buf_str(&k), "a"));
    rt_buf_reset(&k);
    rt_json_get_key(root, &k); /* not a member: nothing appended */
    assert_int_equal(k.len, 0);
    rt_buf_cleanup(&k);
    rt_json_doc_cleanup(&doc);
}

static char *nested(size_t depth, char open, char close)
{
    char *s = rt_malloc(2 * depth + 1);
    for (size_t i = 0; i < depth; i++) {
        s[i] = open;
        s[2 * depth - i] = close;
    }
    s[depth] = '1';
    return s;
}

static void test_depth_limit(void **state)
{
    rt_json_doc_t doc;
    for (size_t depth = 60; depth <= 70; depth++) {
        char *s = nested(depth, '[', ']');
        int rc = rt_json_parse(&doc, s, 2 * depth + 1, 0);
        assert_int_equal(rc, depth <= RT_JSON_MAX_DEPTH ? 0 : RT_ELIMIT);
        assert_int_equal(rt_json_valid(s, 2 * depth + 1), depth <= RT_JSON_MAX_DEPTH);
        rt_json_doc_cleanup(&doc);
        rt_free(s);
    }
    /* Deeper limits use a heap stack, never the C stack. */
    char *s = nested(100000, '[', ']');
    assert_int_equal(rt_json_parse(&doc, s, 200001, 100000), 0);
    rt_json_doc_cleanup(&doc);
    assert_int_equal(rt_json_parse(&doc, s, 200001, 99999), RT_ELIMIT);
    assert_null(doc.root);
    rt_json_doc_cleanup(&doc);
    rt_free(s);

    assert_int_equal(rt_json_parse(&doc, "[1]", 3, 1), 0);
    rt_json_doc_cleanup(&doc);
    assert_int_equal(rt_json_parse(&doc, "[[]]", 4, 1), RT_ELIMIT);
    rt_json_doc_cleanup(&doc);
    assert_int_equal(rt_json_parse(&doc, "{\"a\":{\"b\":1}}", 13, 1), RT_ELIMIT);
    rt_json_doc_cleanup(&doc);
    assert_int_equal(rt_json_parse(&doc, "{\"a\":{\"b\":1}}", 13, 2), 0);
    rt_json_doc_cleanup(&doc);
    assert_int_equal(rt_json_parse(&doc, "1", 1, 1), 0);
    rt_json_doc_cleanup(&doc);
}

static void test_arena(void **state)
{
    rt_json_doc_t doc;
    const char *s = "{\"id\":1,\"subscribe\":{\"channel\":\"chat:index\",\"recover\":true}}";
    uint64_t before = rt_alloc_count();
    parse_ok(&doc, s);
    assert_int_equal(rt_alloc_count() - before, 1);
    before = rt_alloc_count();
    assert_true(rt_json_valid(s, strlen(s)));
    assert_int_equal(rt_alloc_count() - before, 0);
    rt_json_doc_cleanup(&doc);

    /* 100k nodes: a few chunk allocations, and every node is linked. */
    rt_buf_t b = RT_BUF_INIT;
    rt_buf_append_byte(&b, '[');
    for (int i = 0; i < 100000; i++)
        rt_buf_append_cstr(&b, i ? ",0" : "0");
    rt_buf_append_byte(&b, ']');
    before = rt_alloc_count();
    assert_int_equal(rt_json_parse(&doc, (const char *)b.p, b.len, 0), 0);
    assert_true(rt_alloc_count() - before < 40);
    assert_int_equal(doc.root->count, 100000);
    size_t n = 0;
    for (const rt_json_t *c = doc.root->child; c != NULL; c = c->next) {
        assert_true(rt_str_eq_c(c->raw, "0"));
        n++;
    }
    assert_int_equal(n, 100000);
    rt_json_doc_cleanup(&doc);
    rt_buf_cleanup(&b);
}

static void test_getters(void **state)
{
    rt_json_doc_t doc;
    rt_json_t *root =
        parse_ok(&doc, "{\"t\":true,\"f\":false,\"n\":null,\"i\":-42,\"max\":9223372036854775807,"
                       "\"min\":-9223372036854775808,\"over\":9223372036854775808,"
                       "\"under\":-9223372036854775809,\"umax\":18446744073709551615,"
                       "\"uover\":18446744073709551616,\"frac\":1.5,\"one\":1.0,\"exp\":1e3,"
                       "\"negz\":-0,\"d\":-2.5e-3,\"huge\":1e400,\"s\":\"x\",\"zero\":0}");
    bool b = false;
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;

    assert_int_equal(rt_json_get_bool(rt_json_get(root, "t"), &b), 0);
    assert_true(b);
    assert_int_equal(rt_json_get_bool(rt_json_get(root, "f"), &b), 0);
    assert_false(b);
    assert_int_equal(rt_json_get_bool(rt_json_get(root, "n"), &b), RT_EINVAL);
    assert_int_equal(rt_json_get_bool(rt_json_get(root, "s"), &b), RT_EINVAL);
    assert_int_equal(rt_json_get_bool(rt_json_get(root, "none"), &b), RT_ENOTFOUND);

    assert_int_equal(rt_json_get_int64(rt_json_get(root, "i"), &i), 0);
    assert_int_equal(i, -42);
    assert_int_equal(rt_json_get_int64(rt_json_get(root, "max"), &i), 0);
    assert_true(i == INT64_MAX);
    assert_int_equal(rt_json_get_int64(rt_json_get(root, "min"), &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(rt_json_get_int64(rt_json_get(root, "negz"), &i), 0);
    assert_int_equal(i, 0);
    assert_int_equal(rt_json_get_int64(rt_json_get(root, "zero"), &i), 0);
    assert_int_equal(i, 0);
    const char *bad_int[] = {"over", "under", "frac", "one", "exp", "d", "s", "t", "n"};
    for (size_t k = 0; k < sizeof(bad_int) / sizeof(bad_int[0]); k++)
        assert_int_equal(rt_json_get_int64(rt_json_get(root, bad_int[k]), &i), RT_EINVAL);
    assert_int_equal(rt_json_get_int64(NULL, &i), RT_ENOTFOUND);

    assert_int_equal(rt_json_get_uint64(rt_json_get(root, "umax"), &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(rt_json_get_uint64(rt_json_get(root, "over"), &u), 0);
    assert_true(u == 9223372036854775808ULL);
    const char *bad_uint[] = {"uover", "i", "negz", "frac", "exp", "s"};
    for (size_t k = 0; k < sizeof(bad_uint) / sizeof(bad_uint[0]); k++)
        assert_int_equal(rt_json_get_uint64(rt_json_get(root, bad_uint[k]), &u), RT_EINVAL);
    assert_int_equal(rt_json_get_uint64(NULL, &u), RT_ENOTFOUND);

    assert_int_equal(rt_json_get_double(rt_json_get(root, "frac"), &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(rt_json_get_double(rt_json_get(root, "d"), &d), 0);
    assert_true(d == -2.5e-3);
    assert_int_equal(rt_json_get_double(rt_json_get(root, "exp"), &d), 0);
    assert_true(d == 1000);
    assert_int_equal(rt_json_get_double(rt_json_get(root, "umax"), &d), 0);
    assert_true(d == 18446744073709551615.0);
    assert_int_equal(rt_json_get_double(rt_json_get(root, "huge"), &d), RT_EINVAL);
    assert_int_equal(rt_json_get_double(rt_json_get(root, "s"), &d), RT_EINVAL);
    assert_int_equal(rt_json_get_double(NULL, &d), RT_ENOTFOUND);
    rt_json_doc_cleanup(&doc);

    /* A number longer than the getter's stack buffer. */
    rt_buf_t big = RT_BUF_INIT;
    rt_buf_append_cstr(&big, "0.");
    for (int k = 0; k < 200; k++)
        rt_buf_append_byte(&big, '5');
    assert_int_equal(rt_json_parse(&doc, (const char *)big.p, big.len, 0), 0);
    assert_int_equal(rt_json_get_double(doc.root, &d), 0);
    assert_true(d > 0.555 && d < 0.556);
    rt_json_doc_cleanup(&doc);
    rt_buf_cleanup(&big);
}

static void test_strings(void **state)
{
    rt_json_doc_t doc;
    rt_json_t *root = parse_ok(&doc, "[\"plain \xc3\xa9\",\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\","
                                     "\"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\uDBFF\\uDFFF\","
                                     "\"\\u0000z\",\"\",1]");
    rt_json_t *plain = root->child;
    rt_json_t *esc = plain->next;
    rt_json_t *uni = esc->next;
    rt_json_t *nul = uni->next;
    rt_json_t *empty = nul->next;
    rt_json_t *num = empty->next;
    rt_buf_t b = RT_BUF_INIT;
    rt_str_t slice;

    assert_int_equal(rt_json_string_slice(plain, &slice), 0);
    assert_true(rt_str_eq_c(slice, "plain \xc3\xa9"));
    assert_true(slice.p == plain->raw.p + 1); /* borrowed from the input */
    assert_int_equal(rt_json_string_slice(esc, &slice), RT_EAGAIN);
    assert_int_equal(rt_json_string_slice(empty, &slice), 0);
    assert_int_equal(slice.n, 0);
    assert_int_equal(rt_json_string_slice(num, &slice), RT_EINVAL);
    assert_int_equal(rt_json_string_slice(NULL, &slice), RT_ENOTFOUND);

    rt_buf_append_cstr(&b, ">");
    assert_int_equal(rt_json_get_string(esc, &b), 0);
    assert_true(rt_str_eq_c(rt_buf_str(&b), ">a\"b\\c/d\b\f\n\r\t")); /* appends */
    rt_buf_reset(&b);
    assert_int_equal(rt_json_get_string(uni, &b), 0);
    assert_true(
        rt_str_eq_c(rt_buf_str(&b), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"));
    rt_buf_reset(&b);
    assert_int_equal(rt_json_get_string(nul, &b), 0);
    assert_true(rt_str_eq(rt_buf_str(&b), rt_str_from("\0z", 2)));
    rt_buf_reset(&b);
    assert_int_equal(rt_json_get_string(num, &b), RT_EINVAL);
    assert_int_equal(rt_json_get_string(NULL, &b), RT_ENOTFOUND);
    rt_buf_cleanup(&b);

    char *s = NULL;
    assert_int_equal(rt_json_get_string_dup(esc, &s), 0);
    assert_string_equal(s, "a\"b\\c/d\b\f\n\r\t");
    rt_free(s);
    assert_int_equal(rt_json_get_string_dup(empty, &s), 0);
    assert_string_equal(s, "");
    rt_free(s);
    s = NULL;
    assert_int_equal(rt_json_get_string_dup(num, &s), RT_EINVAL);
    assert_int_equal(rt_json_get_string_dup(NULL, &s), RT_ENOTFOUND);
    assert_null(s);
    rt_json_doc_cleanup(&doc);
}

static void expect_write(const char *in, size_t n, const char *want)
{
    rt_buf_t b = RT_BUF_INIT;
    rt_buf_append_cstr(&b, "x");
    rt_json_write_string(&b, rt_str_from(in, n));
    if (!rt_str_eq(rt_str_from((const char *)b.p + 1, b.len - 1), rt_str_c(want)))
        fail_msg("wrote %.*s, want %s", (int)b.len - 1, b.p + 1, want);
    assert_true(rt_json_valid((const char *)b.p + 1, b.len - 1));
    rt_buf_cleanup(&b);
}

static void test_write_string(void **state)
{
    expect_write("", 0, "\"\"");
    expect_write("hello", 5, "\"hello\"");
    expect_write("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
    expect_write("\n\r\t", 3, "\"\\n\\r\\t\"");
    expect_write("\x01\x1f\b\f\x7f", 5, "\"\\u0001\\u001f\\u0008\\u000c\x7f\"");
    expect_write("\0", 1, "\"\\u0000\"");
    expect_write("<a href=\"x\">&</a>", 17,
                 "\"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\u003c/a\\u003e\"");
    expect_write("\xe2\x80\xa8x\xe2\x80\xa9", 7, "\"\\u2028x\\u2029\"");
    expect_write("\xe2\x80\xa7\xe2\x80\xaa", 6, "\"\xe2\x80\xa7\xe2\x80\xaa\"");
    expect_write("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
                 "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    /* Invalid UTF-8 (a contract violation) still yields valid JSON. */
    expect_write("a\xff"
                 "b\xc3",
                 4, "\"a\\ufffdb\\ufffd\"");
    expect_write("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
    expect_write("\xe2\x80", 2, "\"\\ufffd\\ufffd\"");

    /* Round trip of every byte value that is valid UTF-8 on its own. */
    char all[128];
    for (int c = 0; c < 128; c++)
        all[c] = (char)c;
    rt_buf_t b = RT_BUF_INIT;
    rt_json_write_string(&b, rt_str_from(all, sizeof(all)));
    rt_json_doc_t doc;
    assert_int_equal(rt_json_parse(&doc, (const char *)b.p, b.len, 0), 0);
    rt_buf_t back = RT_BUF_INIT;
    assert_int_equal(rt_json_get_string(doc.root, &back), 0);
    assert_true(rt_str_eq(rt_buf_str(&back), rt_str_from(all, sizeof(all))));
    rt_buf_cleanup(&back);
    rt_json_doc_cleanup(&doc);
    rt_buf_cleanup(&b);
}

static void test_write_raw(void **state)
{
    rt_buf_t b = RT_BUF_INIT;
    const char *in = "{\r\n  \"a\": [1,\n2],\r\r\n\"b\":\"x\\ny\"\n}\n";
    assert_true(rt_json_valid(in, strlen(in)));
    rt_json_write_raw(&b, rt_str_c(in));
    assert_true(rt_str_eq_c(rt_buf_str(&b), "{  \"a\": [1,2],\"b\":\"x\\ny\"}"));
    assert_true(rt_json_valid((const char *)b.p, b.len));
    rt_buf_reset(&b);
    rt_json_write_raw(&b, RT_STR("\r\n"));
    assert_int_equal(b.len, 0);
    rt_json_write_raw(&b, RT_STR("[1]"));
    rt_json_write_raw(&b, RT_STR_NULL);
    assert_true(rt_str_eq_c(rt_buf_str(&b), "[1]"));
    rt_buf_cleanup(&b);
}

int run_json(void);
int run_json(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_corpus),  cmocka_unit_test(test_invalid_corpus),
        cmocka_unit_test(test_string_bytes),  cmocka_unit_test(test_string_word_boundaries),
        cmocka_unit_test(test_raw_preserved), cmocka_unit_test(test_duplicate_and_escaped_keys),
        cmocka_unit_test(test_depth_limit),   cmocka_unit_test(test_arena),
        cmocka_unit_test(test_getters),       cmocka_unit_test(test_strings),
        cmocka_unit_test(test_write_string),  cmocka_unit_test(test_write_raw),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}

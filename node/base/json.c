#include "node/base/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/err.h"
#include "node/base/utf8.h"

/* Nodes come from a chain of chunks owned by the document: one allocation for a typical
 * command, and pointers stay stable because chunks never move. */
typedef struct chunk chunk_t;
struct chunk {
    chunk_t *next; /* owned: the previous (older) chunk */
    size_t used;   /* nodes handed out */
    size_t cap;    /* nodes in this chunk */
    rt_json_t nodes[];
};

#define CHUNK_MIN_NODES 8
#define CHUNK_MAX_NODES 4096

#define ONES 0x0101010101010101ULL /* a byte value times ONES fills every lane of a word */

/* One open container while parsing. */
typedef struct frame {
    rt_json_t *node; /* the container; a scratch node when only validating */
    rt_json_t *last; /* its last child so far, NULL before the first */
    bool object;
} frame_t;

typedef struct parser {
    const char *p;   /* borrowed: the input */
    const char *end; /* one past the last input byte */
    chunk_t *arena;  /* owned until handed to the document; NULL when only validating */
    rt_json_t scratch;
} parser_t;

/* Byte classes for the hot loops. */
enum { C_WS = 1, C_STR_PLAIN = 2 };

static const unsigned char byte_class[256] = {
    [' '] = C_WS | C_STR_PLAIN,
    ['\t'] = C_WS,
    ['\n'] = C_WS,
    ['\r'] = C_WS,
#define P4(c)  [c] = C_STR_PLAIN, [c + 1] = C_STR_PLAIN, [c + 2] = C_STR_PLAIN, [c + 3] = C_STR_PLAIN
#define P16(c) P4(c), P4(c + 4), P4(c + 8), P4(c + 12)
    /* 0x21..0x7f except '"' (0x22) and '\\' (0x5c) */
    [0x21] = C_STR_PLAIN,
    [0x23] = C_STR_PLAIN,
    P4(0x24),
    P4(0x28),
    P4(0x2c),
    P16(0x30),
    P16(0x40),
    P4(0x50),
    P4(0x54),
    P4(0x58) /* 0x58..0x5b */,
    [0x5d] = C_STR_PLAIN,
    [0x5e] = C_STR_PLAIN,
    [0x5f] = C_STR_PLAIN,
    P16(0x60),
    P16(0x70),
#undef P16
#undef P4
};

static void arena_free(chunk_t *c)
{
    while (c != NULL) {
        chunk_t *next = c->next;
        rt_free(c);
        c = next;
    }
}

static chunk_t *chunk_new(size_t cap, chunk_t *next)
{
    chunk_t *c = rt_malloc(sizeof(*c) + cap * sizeof(rt_json_t));
    c->next = next;
    c->used = 0;
    c->cap = cap;
    return c;
}

static rt_json_t *node_new(parser_t *ps, rt_json_type_t type, const char *start)
{
    rt_json_t *v;
    if (ps->arena == NULL) {
        v = &ps->scratch;
    } else {
        if (ps->arena->used == ps->arena->cap) {
            size_t cap = ps->arena->cap * 2;
            ps->arena = chunk_new(cap > CHUNK_MAX_NODES ? CHUNK_MAX_NODES : cap, ps->arena);
        }
        v = &ps->arena->nodes[ps->arena->used++];
    }
    v->type = type;
    v->raw.p = start;
    v->raw.n = 0;
    v->key = RT_STR_NULL;
    v->key_escaped = false;
    v->next = NULL;
    v->child = NULL;
    v->count = 0;
    return v;
}

static inline void skip_ws(parser_t *ps)
{
    while (ps->p < ps->end && (byte_class[(unsigned char)*ps->p] & C_WS))
        ps->p++;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at p (caller checked the length); -1 if any is not hex. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Validates the escape after a backslash at ps->p. A high surrogate must be followed by an
 * escaped low surrogate, and a lone low surrogate is an error: the decoded string must be
 * valid UTF-8, which a lone surrogate cannot become. */
static int scan_escape(parser_t *ps)
{
    const char *p = ps->p + 1;
    if (p >= ps->end)
        return RT_EINVAL;
    switch (*p) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        ps->p = p + 1;
        return 0;
    case 'u':
        break;
    default:
        return RT_EINVAL;
    }
    if (ps->end - p < 5)
        return RT_EINVAL;
    long u = hex4(p + 1);
    if (u < 0 || (u >= 0xdc00 && u <= 0xdfff))
        return RT_EINVAL;
    p += 5;
    if (u >= 0xd800 && u <= 0xdbff) {
        if (ps->end - p < 6 || p[0] != '\\' || p[1] != 'u')
            return RT_EINVAL;
        long lo = hex4(p + 2);
        if (lo < 0xdc00 || lo > 0xdfff)
            return RT_EINVAL;
        p += 6;
    }
    ps->p = p;
    return 0;
}

/* Scans a string starting at its opening quote; leaves ps->p after the closing quote. */
static int scan_string(parser_t *ps, bool *escaped)
{
    const char *p = ps->p + 1;
    const char *end = ps->end;
    bool esc = false;

    for (;;) {
        /* Eight bytes at a time while none is '"', '\\', a control or non-ASCII. Later
         * lanes may flag falsely through borrows, but only after a lane that truly
         * matched, so an all-clear word is exact. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            uint64_t quote = w ^ (ONES * '"');
            uint64_t bslash = w ^ (ONES * '\\');
            uint64_t stop = (w - ONES * 0x20) | (quote - ONES) | (bslash - ONES);
            stop &= ~w; /* also keeps non-ASCII bytes (high bit set) out of the clear case */
            if (((stop | w) & (ONES * 0x80)) != 0)
                break;
            p += 8;
        }
        while (p < end && (byte_class[(unsigned char)*p] & C_STR_PLAIN))
            p++;
        if (p >= end)
            return RT_EINVAL;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c == '\\') {
            ps->p = p;
            int rc = scan_escape(ps);
            if (rc != 0)
                return rc;
            p = ps->p;
            esc = true;
        } else if (c >= 0x80) {
            /* A multi-byte sequence never contains an ASCII byte, so validating each
             * maximal non-ASCII run is the same as validating the whole string. */
            const char *run = p;
            while (p < end && (unsigned char)*p >= 0x80)
                p++;
            if (!rt_utf8_valid(run, (size_t)(p - run)))
                return RT_EINVAL;
        } else {
            return RT_EINVAL; /* raw control character */
        }
    }
    ps->p = p + 1;
    *escaped = esc;
    return 0;
}

static inline bool is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* RFC 8259 §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int scan_number(parser_t *ps)
{
    const char *p = ps->p;
    const char *end = ps->end;

    if (*p == '-')
        p++;
    if (!is_digit(p, end))
        return RT_EINVAL;
    if (*p == '0') {
        p++;
    } else {
        while (is_digit(p, end))
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (!is_digit(p, end))
            return RT_EINVAL;
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return RT_EINVAL;
        while (is_digit(p, end))
            p++;
    }
    ps->p = p;
    return 0;
}

static int scan_literal(parser_t *ps, const char *lit, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
        return RT_EINVAL;
    ps->p += n;
    return 0;
}

/* Reads `"key" ws : ws` into *key (bytes between the quotes). */
static int scan_key(parser_t *ps, rt_str_t *key, bool *escaped)
{
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '"')
        return RT_EINVAL;
    const char *start = ps->p + 1;
    int rc = scan_string(ps, escaped);
    if (rc != 0)
        return rc;
    *key = rt_str_from(start, (size_t)(ps->p - 1 - start));
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':')
        return RT_EINVAL;
    ps->p++;
    return 0;
}

/* Iterative, so the depth limit bounds an explicit stack rather than the C stack. */
static int parse_doc(parser_t *ps, frame_t *stack, size_t max_depth, rt_json_t **root)
{
    size_t depth = 0;
    rt_str_t key = RT_STR_NULL;
    bool key_escaped = false;
    int rc;

    for (;;) {
        /* A value is expected at ps->p (after whitespace). */
        skip_ws(ps);
        if (ps->p >= ps->end)
            return RT_EINVAL;
        const char *start = ps->p;
        rt_json_t *v;
        switch (*start) {
        case '{':
        case '[':
            if (depth >= max_depth)
                return RT_ELIMIT;
            v = node_new(ps, *start == '{' ? RT_JSON_OBJECT : RT_JSON_ARRAY, start);
            break;
        case '"':
            v = node_new(ps, RT_JSON_STRING, start);
            break;
        case 't':
            v = node_new(ps, RT_JSON_TRUE, start);
            break;
        case 'f':
            v = node_new(ps, RT_JSON_FALSE, start);
            break;
        case 'n':
            v = node_new(ps, RT_JSON_NULL, start);
            break;
        default:
            v = node_new(ps, RT_JSON_NUMBER, start);
            break;
        }
        v->key = key;
        v->key_escaped = key_escaped;
        if (depth == 0) {
            *root = v;
        } else {
            frame_t *top = &stack[depth - 1];
            if (top->last != NULL)
                top->last->next = v;
            else
                top->node->child = v;
            top->last = v;
            top->node->count++;
        }

        switch (v->type) {
        case RT_JSON_OBJECT:
        case RT_JSON_ARRAY: {
            bool object = v->type == RT_JSON_OBJECT;
            ps->p++;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) {
                ps->p++;
                v->raw.n = (size_t)(ps->p - start);
                rc = 0;
                break;
            }
            frame_t *f = &stack[depth++];
            f->node = v;
            f->last = NULL;
            f->object = object;
            if (object) {
                if ((rc = scan_key(ps, &key, &key_escaped)) != 0)
                    return rc;
            } else {
                key = RT_STR_NULL;
                key_escaped = false;
            }
            continue;
        }
        case RT_JSON_STRING: {
            bool unused;
            rc = scan_string(ps, &unused);
            break;
        }
        case RT_JSON_TRUE:
            rc = scan_literal(ps, "true", 4);
            break;
        case RT_JSON_FALSE:
            rc = scan_literal(ps, "false", 5);
            break;
        case RT_JSON_NULL:
            rc = scan_literal(ps, "null", 4);
            break;
        case RT_JSON_NUMBER:
            rc = scan_number(ps);
            break;
        }
        if (rc != 0)
            return rc;
        if (v->raw.n == 0)
            v->raw.n = (size_t)(ps->p - start);

        /* After a complete value: a separator, the end of containers, or the end. */
        for (;;) {
            skip_ws(ps);
            if (depth == 0)
                return ps->p == ps->end ? 0 : RT_EINVAL;
            if (ps->p >= ps->end)
                return RT_EINVAL;
            frame_t *top = &stack[depth - 1];
            char c = *ps->p;
            if (c == ',') {
                ps->p++;
                if (top->object) {
                    if ((rc = scan_key(ps, &key, &key_escaped)) != 0)
                        return rc;
                } else {
                    /* the key of a member just closed must not stick to the element */
                    key = RT_STR_NULL;
                    key_escaped = false;
                }
                break;
            }
            if (c != (top->object ? '}' : ']'))
                return RT_EINVAL;
            ps->p++;
            top->node->raw.n = (size_t)(ps->p - top->node->raw.p);
            depth--;
        }
    }
}

static int parse(const char *p, size_t n, size_t max_depth, bool build, rt_json_doc_t *doc)
{
    frame_t local[RT_JSON_MAX_DEPTH];
    frame_t *stack = local;
    rt_json_t *root = NULL;

    if (n == 0)
        return RT_EINVAL; /* also keeps p == NULL out of the pointer arithmetic below */
    parser_t ps = {.p = p, .end = p + n, .arena = NULL};

    if (max_depth == 0)
        max_depth = RT_JSON_MAX_DEPTH;
    if (max_depth > RT_JSON_MAX_DEPTH)
        stack = rt_malloc(max_depth * sizeof(*stack));
    if (build) {
        /* Every value costs at least two input bytes but the last, and typical commands
         * are mostly strings: n/8 nodes covers them in one allocation. */
        size_t cap = n / 8 + CHUNK_MIN_NODES;
        ps.arena = chunk_new(cap > CHUNK_MAX_NODES ? CHUNK_MAX_NODES : cap, NULL);
    }
    int rc = parse_doc(&ps, stack, max_depth, &root);
    if (stack != local)
        rt_free(stack);
    if (build) {
        if (rc == 0) {
            doc->root = root;
            doc->arena = ps.arena;
        } else {
            arena_free(ps.arena);
        }
    }
    return rc;
}

int rt_json_parse(rt_json_doc_t *doc, const char *p, size_t n, size_t max_depth)
{
    doc->root = NULL;
    doc->arena = NULL;
    return parse(p, n, max_depth, true, doc);
}

void rt_json_doc_cleanup(rt_json_doc_t *doc)
{
    arena_free(doc->arena);
    doc->arena = NULL;
    doc->root = NULL;
}

bool rt_json_valid(const char *p, size_t n)
{
    return parse(p, n, 0, false, NULL) == 0;
}

/* Decodes one character of validated string content at *pp into out (1..4 bytes) and
 * advances *pp. Input is trusted: the parser already checked every escape. */
static size_t decode_char(const char **pp, uint8_t out[4])
{
    const char *p = *pp;
    if (*p != '\\') {
        out[0] = (uint8_t)*p;
        *pp = p + 1;
        return 1;
    }
    char e = p[1];
    *pp = p + 2;
    switch (e) {
    case 'b':
        out[0] = '\b';
        return 1;
    case 'f':
        out[0] = '\f';
        return 1;
    case 'n':
        out[0] = '\n';
        return 1;
    case 'r':
        out[0] = '\r';
        return 1;
    case 't':
        out[0] = '\t';
        return 1;
    case 'u':
        break;
    default: /* '"', '\\', '/' */
        out[0] = (uint8_t)e;
        return 1;
    }
    unsigned long u = (unsigned long)hex4(p + 2);
    *pp = p + 6;
    if (u >= 0xd800 && u <= 0xdbff) {
        unsigned long lo = (unsigned long)hex4(p + 8);
        u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        *pp = p + 12;
    }
    if (u < 0x80) {
        out[0] = (uint8_t)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (uint8_t)(0xc0 | u >> 6);
        out[1] = (uint8_t)(0x80 | (u & 0x3f));
        return 2;
    }
    if (u < 0x10000) {
        out[0] = (uint8_t)(0xe0 | u >> 12);
        out[1] = (uint8_t)(0x80 | ((u >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (u & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | u >> 18);
    out[1] = (uint8_t)(0x80 | ((u >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((u >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (u & 0x3f));
    return 4;
}

static void unescape(rt_buf_t *out, rt_str_t s)
{
    const char *p = s.p;
    const char *end = s.p + s.n;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        if (bs == NULL) {
            rt_buf_append(out, p, (size_t)(end - p));
            return;
        }
        rt_buf_append(out, p, (size_t)(bs - p));
        p = bs;
        uint8_t tmp[4];
        size_t k = decode_char(&p, tmp);
        rt_buf_append(out, tmp, k);
    }
}

bool rt_json_key_eq(const rt_json_t *member, rt_str_t key)
{
    if (member == NULL || member->key.p == NULL)
        return false;
    if (!member->key_escaped)
        return rt_str_eq(member->key, key);
    const char *p = member->key.p;
    const char *end = p + member->key.n;
    size_t i = 0;
    while (p < end) {
        uint8_t tmp[4];
        size_t k = decode_char(&p, tmp);
        if (key.n - i < k || memcmp(key.p + i, tmp, k) != 0)
            return false;
        i += k;
    }
    return i == key.n;
}

rt_json_t *rt_json_get(const rt_json_t *obj, const char *key)
{
    if (obj == NULL || obj->type != RT_JSON_OBJECT)
        return NULL;
    rt_str_t k = rt_str_c(key);
    rt_json_t *found = NULL;
    for (rt_json_t *m = obj->child; m != NULL; m = m->next) {
        if (rt_json_key_eq(m, k))
            found = m;
    }
    return found;
}

int rt_json_get_bool(const rt_json_t *v, bool *out)
{
    if (v == NULL)
        return RT_ENOTFOUND;
    if (v->type != RT_JSON_TRUE && v->type != RT_JSON_FALSE)
        return RT_EINVAL;
    *out = v->type == RT_JSON_TRUE;
    return 0;
}

/* Magnitude of an integral number's digits (no fraction, no exponent), saturating check
 * against limit. Returns 0 or RT_EINVAL. */
static int parse_magnitude(const char *p, const char *end, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    if (p == end)
        return RT_EINVAL;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return RT_EINVAL;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (limit - d) / 10)
            return RT_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int rt_json_get_int64(const rt_json_t *v, int64_t *out)
{
    if (v == NULL)
        return RT_ENOTFOUND;
    if (v->type != RT_JSON_NUMBER)
        return RT_EINVAL;
    const char *p = v->raw.p;
    const char *end = p + v->raw.n;
    bool neg = p < end && *p == '-';
    if (neg)
        p++;
    uint64_t m;
    int rc = parse_magnitude(p, end, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &m);
    if (rc != 0)
        return rc;
    /* Negating in unsigned arithmetic keeps INT64_MIN well defined. */
    *out = neg ? (int64_t)(0 - m) : (int64_t)m;
    return 0;
}

int rt_json_get_uint64(const rt_json_t *v, uint64_t *out)
{
    if (v == NULL)
        return RT_ENOTFOUND;
    if (v->type != RT_JSON_NUMBER)
        return RT_EINVAL;
    return parse_magnitude(v->raw.p, v->raw.p + v->raw.n, UINT64_MAX, out);
}

int rt_json_get_double(const rt_json_t *v, double *out)
{
    if (v == NULL)
        return RT_ENOTFOUND;
    if (v->type != RT_JSON_NUMBER)
        return RT_EINVAL;
    /* strtod needs a terminator and the raw bytes are a slice of a larger input. */
    char local[64];
    char *s = v->raw.n < sizeof(local) ? local : rt_malloc(v->raw.n + 1);
    memcpy(s, v->raw.p, v->raw.n);
    s[v->raw.n] = '\0';
    char *end;
    double d = strtod(s, &end);
    bool ok = end == s + v->raw.n && !isinf(d);
    if (s != local)
        rt_free(s);
    if (!ok)
        return RT_EINVAL;
    *out = d;
    return 0;
}

/* Content of a string value, between the quotes. */
static rt_str_t string_body(const rt_json_t *v)
{
    return rt_str_from(v->raw.p + 1, v->raw.n - 2);
}

int rt_json_get_string(const rt_json_t *v, rt_buf_t *out)
{
    if (v == NULL)
        return RT_ENOTFOUND;
    if (v->type != RT_JSON_STRING)
        return RT_EINVAL;
    unescape(out, string_body(v));
    return 0;
}

int rt_json_get_string_dup(const rt_json_t *v, char **out)
{
    if (v == NULL)
        return RT_ENOTFOUND;
    if (v->type != RT_JSON_STRING)
        return RT_EINVAL;
    rt_buf_t b = RT_BUF_INIT;
    unescape(&b, string_body(v));
    rt_buf_append_byte(&b, '\0');
    *out = (char *)b.p; /* the caller owns the buffer's allocation now */
    return 0;
}

void rt_json_get_key(const rt_json_t *member, rt_buf_t *out)
{
    if (member == NULL || member->key.p == NULL)
        return;
    if (member->key_escaped)
        unescape(out, member->key);
    else
        rt_buf_append_str(out, member->key);
}

int rt_json_string_slice(const rt_json_t *v, rt_str_t *out)
{
    if (v == NULL)
        return RT_ENOTFOUND;
    if (v->type != RT_JSON_STRING)
        return RT_EINVAL;
    rt_str_t body = string_body(v);
    if (memchr(body.p, '\\', body.n) != NULL)
        return RT_EAGAIN;
    *out = body;
    return 0;
}

static const char hex_digits[] = "0123456789abcdef";

/* Bytes that need more than a copy: '"', '\\', controls, '<', '>', '&', and every
 * non-ASCII lead (checked for U+2028/U+2029 and validity). */
static bool needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80;
}

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    size_t k = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
    if ((size_t)(end - p) < k || !rt_utf8_valid(p, k))
        return 0;
    return k;
}

void rt_json_write_string(rt_buf_t *b, rt_str_t s)
{
    if (s.n == 0) {
        rt_buf_append(b, "\"\"", 2); /* s.p may be NULL: no pointer arithmetic on it */
        return;
    }
    const unsigned char *p = (const unsigned char *)s.p;
    const unsigned char *end = p + s.n;
    const unsigned char *run = p;

    rt_buf_reserve(b, s.n + 2);
    rt_buf_append_byte(b, '"');
    while (p < end) {
        unsigned char c = *p;
        if (!needs_escape(c)) {
            p++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq(p, end);
            if (k == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
                rt_buf_append(b, run, (size_t)(p - run));
                rt_buf_append(b, p[2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
                p += 3;
                run = p;
            } else if (k == 0) {
                /* Invalid input would make invalid JSON; substitute U+FFFD like Go. */
                rt_buf_append(b, run, (size_t)(p - run));
                rt_buf_append(b, "\\ufffd", 6);
                p++;
                run = p;
            } else {
                p += k;
            }
            continue;
        }
        rt_buf_append(b, run, (size_t)(p - run));
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t k = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex_digits[c >> 4];
            esc[5] = hex_digits[c & 0xf];
            k = 6;
            break;
        }
        rt_buf_append(b, esc, k);
        p++;
        run = p;
    }
    rt_buf_append(b, run, (size_t)(p - run));
    rt_buf_append_byte(b, '"');
}

void rt_json_write_raw(rt_buf_t *b, rt_str_t raw)
{
    if (raw.n == 0)
        return;
    const char *p = raw.p;
    const char *end = raw.p + raw.n;

    rt_buf_reserve(b, raw.n);
    while (p < end) {
        const char *q = p;
        while (q < end && *q != '\r' && *q != '\n')
            q++;
        rt_buf_append(b, p, (size_t)(q - p));
        while (q < end && (*q == '\r' || *q == '\n'))
            q++;
        p = q;
    }
}

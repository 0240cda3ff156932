/* Strict RFC 8259 JSON: a validating parser that builds a small tree of spans into the
 * input, and writer helpers.
 *
 * Every value keeps `raw`, the exact bytes it had in the input, so user payloads (`data`,
 * `info`) are forwarded byte for byte and never parsed-and-reprinted (1.10 stays 1.10,
 * 2^70 stays exact). The tree borrows the input: keep the input alive while using it. */
#ifndef RT_BASE_JSON_H
#define RT_BASE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/buf.h"
#include "node/base/str.h"

typedef enum rt_json_type {
    RT_JSON_NULL,
    RT_JSON_FALSE,
    RT_JSON_TRUE,
    RT_JSON_NUMBER,
    RT_JSON_STRING,
    RT_JSON_ARRAY,
    RT_JSON_OBJECT,
} rt_json_type_t;

typedef struct rt_json rt_json_t;
struct rt_json {
    rt_json_type_t type;
    rt_str_t raw;     /* exact input bytes of the value (strings include their quotes) */
    rt_str_t key;     /* member of an object: key bytes between the quotes, still escaped */
    bool key_escaped; /* key contains a backslash escape */
    rt_json_t *next;  /* next element or member of the parent */
    rt_json_t *child; /* first element or member (arrays, objects) */
    size_t count;     /* number of elements or members */
};

/* A parsed document: every node lives in one arena owned by the document. */
typedef struct rt_json_doc {
    rt_json_t *root; /* NULL until a successful parse */
    void *arena;     /* owned; internal */
} rt_json_doc_t;

#define RT_JSON_MAX_DEPTH 64

/* Parses p[0..n) as exactly one JSON value surrounded by optional whitespace. Strict:
 * UTF-8 checked, no control characters in strings, RFC number grammar, no trailing
 * commas, no comments, nesting at most max_depth (0 = RT_JSON_MAX_DEPTH).
 * Returns 0, or RT_EINVAL for invalid JSON or RT_ELIMIT for too deep nesting; on error
 * doc->root is NULL and nothing needs freeing besides rt_json_doc_cleanup (always safe). */
int rt_json_parse(rt_json_doc_t *doc, const char *p, size_t n, size_t max_depth);
void rt_json_doc_cleanup(rt_json_doc_t *doc);
/* true if p[0..n) is exactly one valid JSON value (same rules as rt_json_parse). */
bool rt_json_valid(const char *p, size_t n);

/* Object member lookup by unescaped key; the last duplicate wins (as in Go's
 * encoding/json). NULL if obj is not an object or has no such key. */
rt_json_t *rt_json_get(const rt_json_t *obj, const char *key);
/* Key equality for a member, handling escaped keys. */
bool rt_json_key_eq(const rt_json_t *member, rt_str_t key);

/* Typed readers. Each returns 0, or RT_EINVAL when the value has another type or does not
 * fit. A NULL value returns RT_ENOTFOUND so callers can treat "absent" separately. */
int rt_json_get_bool(const rt_json_t *v, bool *out);
int rt_json_get_int64(const rt_json_t *v, int64_t *out);   /* integral numbers only */
int rt_json_get_uint64(const rt_json_t *v, uint64_t *out); /* integral, >= 0 */
int rt_json_get_double(const rt_json_t *v, double *out);
/* Unescapes a string value and appends it to out (no NUL added). */
int rt_json_get_string(const rt_json_t *v, rt_buf_t *out);
/* Unescaped string as a new NUL-terminated heap string (free with rt_free). */
int rt_json_get_string_dup(const rt_json_t *v, char **out);
/* Unescapes the member's key and appends it to out. */
void rt_json_get_key(const rt_json_t *member, rt_buf_t *out);
/* Fast path: a string value without escapes is returned as a borrowed slice into the
 * input (without quotes). Returns RT_EAGAIN when it has escapes (use rt_json_get_string). */
int rt_json_string_slice(const rt_json_t *v, rt_str_t *out);

/* Writers. */
/* Appends s as a quoted JSON string; escapes ", \, control characters, and <, >, &,
 * U+2028, U+2029 like the reference server. s must be valid UTF-8. */
void rt_json_write_string(rt_buf_t *b, rt_str_t s);
/* Appends a raw JSON value (already validated) dropping raw CR and LF bytes, which can only
 * be insignificant whitespace in valid JSON (PROTOCOL.md §1.2). */
void rt_json_write_raw(rt_buf_t *b, rt_str_t raw);

#endif

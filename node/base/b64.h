/* Base64, standard (RFC 4648 §4) and URL-safe (§5) alphabets. */
#ifndef RT_BASE_B64_H
#define RT_BASE_B64_H

#include <stdbool.h>
#include <stddef.h>

#include "node/base/buf.h"

/* Appends the encoding of p[0..n) to out. url: URL-safe alphabet; pad: add '=' padding. */
void rt_b64_encode(rt_buf_t *out, const void *p, size_t n, bool url, bool pad);
/* Appends the decoded bytes to out. Standard alphabet requires correct padding (as Go's
 * base64.StdEncoding); URL alphabet accepts input with or without padding (JWT uses none).
 * Returns 0 or RT_EINVAL (out may hold partial output then). */
int rt_b64_decode(rt_buf_t *out, const char *p, size_t n, bool url);

#endif

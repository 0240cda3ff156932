/* UTF-8 validation (RFC 3629: no overlongs, no surrogates, max U+10FFFF). */
#ifndef RT_BASE_UTF8_H
#define RT_BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

bool rt_utf8_valid(const void *p, size_t n);
/* True if every byte is 0x01..0x7f (printable ASCII channel-name check helper excluded). */
bool rt_ascii_only(const void *p, size_t n);

#endif

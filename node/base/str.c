#include "node/base/str.h"

#include "node/base/alloc.h"

bool rt_str_case_eq(rt_str_t a, rt_str_t b)
{
    if (a.n != b.n)
        return false;
    for (size_t i = 0; i < a.n; i++) {
        unsigned char x = (unsigned char)a.p[i], y = (unsigned char)b.p[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

char *rt_str_dup(rt_str_t s)
{
    return rt_strndup(s.p, s.n);
}

unsigned long rt_str_hash(rt_str_t s)
{
    unsigned long h = 1469598103934665603UL;
    for (size_t i = 0; i < s.n; i++) {
        h ^= (unsigned char)s.p[i];
        h *= 1099511628211UL;
    }
    return h;
}

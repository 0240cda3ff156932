#include "node/base/err.h"

const char *rt_strerror(int err)
{
    switch (err) {
    case RT_OK:
        return "ok";
    case RT_EAGAIN:
        return "try again";
    case RT_EINVAL:
        return "invalid argument";
    case RT_EPROTO:
        return "protocol error";
    case RT_ELIMIT:
        return "limit exceeded";
    case RT_ECLOSED:
        return "closed";
    case RT_ETIMEOUT:
        return "timed out";
    case RT_ECANCELED:
        return "cancelled";
    case RT_EREDIS:
        return "redis error";
    case RT_ENOTFOUND:
        return "not found";
    case RT_EEXIST:
        return "already exists";
    case RT_EIO:
        return "i/o error";
    case RT_EPERM:
        return "not permitted";
    case RT_EEXPIRED:
        return "expired";
    case RT_EUNAVAIL:
        return "not available";
    default:
        return "unknown error";
    }
}

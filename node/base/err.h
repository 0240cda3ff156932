/* Error codes shared by every module: 0 is success, failures are negative. */
#ifndef RT_BASE_ERR_H
#define RT_BASE_ERR_H

enum {
    RT_OK = 0,
    RT_EAGAIN = -1,    /* try again later (would block, not ready yet) */
    RT_EINVAL = -2,    /* invalid argument or value */
    RT_EPROTO = -3,    /* peer violated a protocol */
    RT_ELIMIT = -4,    /* a configured limit was exceeded */
    RT_ECLOSED = -5,   /* the object or peer is closed */
    RT_ETIMEOUT = -6,  /* an operation timed out */
    RT_ECANCELED = -7, /* operation cancelled (shutdown) */
    RT_EREDIS = -8,    /* Redis failure */
    RT_ENOTFOUND = -9, /* no such object */
    RT_EEXIST = -10,   /* already exists */
    RT_EIO = -11,      /* system call failure, see errno in the log */
    RT_EPERM = -12,    /* not permitted */
    RT_EEXPIRED = -13, /* token or object expired */
    RT_EUNAVAIL = -14, /* feature not available */
};

/* Returns a static, printable description of an RT_E* code. */
const char *rt_strerror(int err);

#endif

/* ClientInfo of the protocol (PROTOCOL.md): who a connection is, as carried by client-side
 * publications, join/leave events and presence entries. A plain value type with no
 * behaviour, here because every module passes it around (node/ encodes it for clients, the
 * brokers attach it to publications, presence stores it) and node/base is the one library
 * they all share. Its Redis encoding lives in broker/rds_info.h. */
#ifndef RT_BASE_CLIENT_INFO_H
#define RT_BASE_CLIENT_INFO_H

#include "node/base/str.h"

/* All slices borrowed from whoever owns the struct. */
typedef struct rt_client_info {
    rt_str_t user;
    rt_str_t client;
    rt_str_t conn_info; /* raw JSON or binary bytes; empty = absent */
    rt_str_t chan_info; /* raw JSON or binary bytes; empty = absent */
} rt_client_info_t;

#endif

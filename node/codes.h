/* The single table of Centrifugo protocol codes (PROTOCOL.md §6): error replies, unsubscribe
 * push codes and disconnect codes, with their wire texts. Pure functions, any thread. */
#ifndef RT_NODE_CODES_H
#define RT_NODE_CODES_H

#include <stdbool.h>

/* Reply.error codes (§6.1). */
enum {
    NODE_ERR_INTERNAL = 100,
    NODE_ERR_UNAUTHORIZED = 101,
    NODE_ERR_UNKNOWN_CHANNEL = 102,
    NODE_ERR_PERMISSION_DENIED = 103,
    NODE_ERR_METHOD_NOT_FOUND = 104,
    NODE_ERR_ALREADY_SUBSCRIBED = 105,
    NODE_ERR_LIMIT_EXCEEDED = 106,
    NODE_ERR_BAD_REQUEST = 107,
    NODE_ERR_NOT_AVAILABLE = 108,
    NODE_ERR_TOKEN_EXPIRED = 109,
    NODE_ERR_EXPIRED = 110,
    NODE_ERR_TOO_MANY_REQUESTS = 111,
    NODE_ERR_UNRECOVERABLE_POSITION = 112,
};

/* Static message of an error code ("internal server error" for 100, ...). Codes outside the
 * table (application codes 400-1999 from a proxy) return "" (the caller brings its own). */
const char *node_error_message(int code);
/* True for the codes the reference marks temporary (100, 111). */
bool node_error_temporary(int code);

/* Disconnect codes (§6.3). 3000-3499 reconnect, 3500-3999 terminal. */
enum {
    NODE_DISCONNECT_CONNECTION_CLOSED = 3000, /* internal marker, never on the wire */
    NODE_DISCONNECT_SHUTDOWN = 3001,
    NODE_DISCONNECT_INTERNAL = 3004,
    NODE_DISCONNECT_EXPIRED = 3005,
    NODE_DISCONNECT_SUB_EXPIRED = 3006,
    NODE_DISCONNECT_SLOW = 3008,
    NODE_DISCONNECT_WRITE_ERROR = 3009,
    NODE_DISCONNECT_INSUFFICIENT_STATE = 3010,
    NODE_DISCONNECT_FORCE_RECONNECT = 3011,
    NODE_DISCONNECT_NO_PONG = 3012,
    NODE_DISCONNECT_TOO_MANY_REQUESTS = 3013,
    NODE_DISCONNECT_STATE_INVALIDATED = 3014,
    NODE_DISCONNECT_INVALID_TOKEN = 3500,
    NODE_DISCONNECT_BAD_REQUEST = 3501,
    NODE_DISCONNECT_STALE = 3502,
    NODE_DISCONNECT_FORCE_DISCONNECT = 3503,
    NODE_DISCONNECT_CONNECTION_LIMIT = 3504,
    NODE_DISCONNECT_CHANNEL_LIMIT = 3505,
    NODE_DISCONNECT_INAPPROPRIATE_PROTOCOL = 3506,
    NODE_DISCONNECT_PERMISSION_DENIED = 3507,
    NODE_DISCONNECT_NOT_AVAILABLE = 3508,
    NODE_DISCONNECT_TOO_MANY_ERRORS = 3509,
};

/* Static plain-text reason of a disconnect code ("shutdown" for 3001, ...); "" for codes
 * outside the table (application codes 4000-4999 carry their own reason). */
const char *node_disconnect_reason(int code);
/* False for the terminal ranges 3500-3999 and 4500-4999, true otherwise (the client
 * reconnects). */
bool node_disconnect_reconnect(int code);
/* Unidirectional transports cannot carry an error reply to connect, so the reference maps it
 * to a disconnect code (§6.3): 109, 110 -> 3005; 111 -> 3013; 103 -> 3507; else 3004. */
int node_disconnect_from_error(int error_code);

/* Unsubscribe push codes (§6.2). < 2500 terminal, >= 2500 the client resubscribes. */
enum {
    NODE_UNSUB_SERVER = 2000,
    NODE_UNSUB_INSUFFICIENT = 2500,
    NODE_UNSUB_EXPIRED = 2501,
    NODE_UNSUB_INVALIDATED = 2502,
};

/* Static reason of an unsubscribe code ("server unsubscribe" for 2000, ...); "" outside the
 * table. */
const char *node_unsubscribe_reason(int code);

#endif

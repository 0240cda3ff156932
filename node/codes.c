#include "node/codes.h"

#include <stddef.h>

typedef struct code_text {
    int code;
    const char *text;
} code_text_t;

static const code_text_t errors[] = {
    {NODE_ERR_INTERNAL, "internal server error"},
    {NODE_ERR_UNAUTHORIZED, "unauthorized"},
    {NODE_ERR_UNKNOWN_CHANNEL, "unknown channel"},
    {NODE_ERR_PERMISSION_DENIED, "permission denied"},
    {NODE_ERR_METHOD_NOT_FOUND, "method not found"},
    {NODE_ERR_ALREADY_SUBSCRIBED, "already subscribed"},
    {NODE_ERR_LIMIT_EXCEEDED, "limit exceeded"},
    {NODE_ERR_BAD_REQUEST, "bad request"},
    {NODE_ERR_NOT_AVAILABLE, "not available"},
    {NODE_ERR_TOKEN_EXPIRED, "token expired"},
    {NODE_ERR_EXPIRED, "expired"},
    {NODE_ERR_TOO_MANY_REQUESTS, "too many requests"},
    {NODE_ERR_UNRECOVERABLE_POSITION, "unrecoverable position"},
};

static const code_text_t disconnects[] = {
    {NODE_DISCONNECT_CONNECTION_CLOSED, "connection closed"},
    {NODE_DISCONNECT_SHUTDOWN, "shutdown"},
    {NODE_DISCONNECT_INTERNAL, "internal server error"},
    {NODE_DISCONNECT_EXPIRED, "connection expired"},
    {NODE_DISCONNECT_SUB_EXPIRED, "subscription expired"},
    {NODE_DISCONNECT_SLOW, "slow"},
    {NODE_DISCONNECT_WRITE_ERROR, "write error"},
    {NODE_DISCONNECT_INSUFFICIENT_STATE, "insufficient state"},
    {NODE_DISCONNECT_FORCE_RECONNECT, "force reconnect"},
    {NODE_DISCONNECT_NO_PONG, "no pong"},
    {NODE_DISCONNECT_TOO_MANY_REQUESTS, "too many requests"},
    {NODE_DISCONNECT_STATE_INVALIDATED, "state invalidated"},
    {NODE_DISCONNECT_INVALID_TOKEN, "invalid token"},
    {NODE_DISCONNECT_BAD_REQUEST, "bad request"},
    {NODE_DISCONNECT_STALE, "stale"},
    {NODE_DISCONNECT_FORCE_DISCONNECT, "force disconnect"},
    {NODE_DISCONNECT_CONNECTION_LIMIT, "connection limit"},
    {NODE_DISCONNECT_CHANNEL_LIMIT, "channel limit"},
    {NODE_DISCONNECT_INAPPROPRIATE_PROTOCOL, "inappropriate protocol"},
    {NODE_DISCONNECT_PERMISSION_DENIED, "permission denied"},
    {NODE_DISCONNECT_NOT_AVAILABLE, "not available"},
    {NODE_DISCONNECT_TOO_MANY_ERRORS, "too many errors"},
};

static const code_text_t unsubscribes[] = {
    {NODE_UNSUB_SERVER, "server unsubscribe"},
    {NODE_UNSUB_INSUFFICIENT, "insufficient state"},
    {NODE_UNSUB_EXPIRED, "subscription expired"},
    {NODE_UNSUB_INVALIDATED, "state invalidated"},
};

static const char *lookup(const code_text_t *t, size_t n, int code)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].code == code)
            return t[i].text;
    }
    return "";
}

const char *node_error_message(int code)
{
    return lookup(errors, sizeof(errors) / sizeof(errors[0]), code);
}

bool node_error_temporary(int code)
{
    return code == NODE_ERR_INTERNAL || code == NODE_ERR_TOO_MANY_REQUESTS;
}

const char *node_disconnect_reason(int code)
{
    return lookup(disconnects, sizeof(disconnects) / sizeof(disconnects[0]), code);
}

bool node_disconnect_reconnect(int code)
{
    if (code >= 3500 && code <= 3999)
        return false;
    if (code >= 4500 && code <= 4999)
        return false;
    return true;
}

int node_disconnect_from_error(int error_code)
{
    switch (error_code) {
    case NODE_ERR_TOKEN_EXPIRED:
    case NODE_ERR_EXPIRED:
        return NODE_DISCONNECT_EXPIRED;
    case NODE_ERR_TOO_MANY_REQUESTS:
        return NODE_DISCONNECT_TOO_MANY_REQUESTS;
    case NODE_ERR_PERMISSION_DENIED:
        return NODE_DISCONNECT_PERMISSION_DENIED;
    default:
        return NODE_DISCONNECT_INTERNAL;
    }
}

const char *node_unsubscribe_reason(int code)
{
    return lookup(unsubscribes, sizeof(unsubscribes) / sizeof(unsubscribes[0]), code);
}

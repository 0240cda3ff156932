/* WebSocket internals for unit tests. */
#ifndef RT_TRANSPORTS_WS_INTERNAL_H
#define RT_TRANSPORTS_WS_INTERNAL_H

#include <stdbool.h>

#include "transports/ws.h"

/* True while ws holds a wslay context (mid-frame, mid-message, closing, output pending). */
bool tr__ws_has_parser(const tr_ws_t *ws);

#endif

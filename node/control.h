/* Node-to-node control messages (SERVER.md §3.10), MessagePack encoded: a map
 * {"uid": sender, "<kind>": {fields}} with the field names of Centrifugo's controlpb, so
 * the shape is recognisable in redis-cli MONITOR. Moved between nodes by the broker's
 * control channel; encoded and decoded on the engine thread. */
#ifndef RT_NODE_CONTROL_H
#define RT_NODE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/base/buf.h"
#include "node/base/str.h"
#include "node/node_internal.h"

typedef enum node_ctl_type {
    NODE_CTL_NODE = 1,    /* heartbeat with counts */
    NODE_CTL_SHUTDOWN,    /* sender leaves: drop it from the registry now */
    NODE_CTL_COMMAND,     /* subscribe/unsubscribe/disconnect/refresh by user */
    NODE_CTL_SURVEY_REQ,  /* survey request: op + data */
    NODE_CTL_SURVEY_RESP, /* survey response: code + data */
    NODE_CTL_EMULATION,   /* an /emulation frame for a session of the receiving node */
} node_ctl_type_t;

/* What a node tells the others about itself. */
typedef struct node_info {
    char uid[37];
    char name[128];
    char version[64];
    uint32_t num_clients;
    uint32_t num_users;
    uint32_t num_channels;
    uint32_t num_subs;
    int64_t uptime_s;
} node_info_t;

typedef struct node_ctl_msg {
    node_ctl_type_t type;
    char uid[37];            /* sender */
    node_info_t node;        /* NODE */
    node_control_t *control; /* COMMAND: owned reference after decode, borrowed for encode */
    uint64_t survey_id;      /* SURVEY_* */
    char survey_op[32];      /* SURVEY_REQ: "channels" */
    int survey_code;         /* SURVEY_RESP: 0 ok, 1 internal, 2 invalid request, 3 unknown op */
    rt_buf_t survey_data;    /* SURVEY_*: owned bytes (request: pattern; response: channels);
                              * EMULATION: the command frame */
    char session[64];        /* EMULATION */
} node_ctl_msg_t;

void node_ctl_msg_init(node_ctl_msg_t *m);
void node_ctl_msg_cleanup(node_ctl_msg_t *m);
/* Appends the encoding of m to out. */
void node_ctl_encode(rt_buf_t *out, const node_ctl_msg_t *m);
/* Decodes p[0..n) (borrowed) into m (initialised by the call; clean it up in every case).
 * Returns 0, or RT_EINVAL for anything malformed (a hostile Redis must not crash a node). */
int node_ctl_decode(const uint8_t *p, size_t n, node_ctl_msg_t *m);

/* Channels survey payload: a map channel -> num_clients. */
void node_ctl_encode_channels(rt_buf_t *out, const node_map_t *channels);
/* Adds the decoded map into r->channels (summing). RT_EINVAL if malformed. */
int node_ctl_decode_channels(const uint8_t *p, size_t n, node_survey_result_t *r);

#endif

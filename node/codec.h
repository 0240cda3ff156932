/* The client protocol's two encodings behind one table, so sessions do not care which one
 * their transport speaks (PROTOCOL.md §1.5). Each entry has the contract of the JSON
 * function of the same name in node/proto.h; Protobuf versions never fail on binary
 * payloads. A command reader walks one incoming frame in either encoding. */
#ifndef RT_NODE_CODEC_H
#define RT_NODE_CODEC_H

#include <stdbool.h>

#include "node/proto.h"
#include "node/proto_pb.h"
#include "node/wire.h"

typedef struct node_codec {
    bool protobuf;
    void (*reply_error)(rt_buf_t *b, uint32_t id, int code, const char *message, bool temporary);
    void (*reply_empty)(rt_buf_t *b, uint32_t id, const char *result_field);
    int (*reply_connect)(rt_buf_t *b, uint32_t id, const node_connect_result_t *r);
    int (*reply_subscribe)(rt_buf_t *b, uint32_t id, const node_sub_result_t *r);
    int (*reply_presence)(rt_buf_t *b, uint32_t id, const rt_client_info_t *e, size_t n);
    void (*reply_presence_stats)(rt_buf_t *b, uint32_t id, uint32_t clients, uint32_t users);
    int (*reply_history)(rt_buf_t *b, uint32_t id, broker_pub_t *const *pubs, size_t n,
                         rt_str_t epoch, uint64_t offset);
    void (*reply_refresh)(rt_buf_t *b, uint32_t id, const char *field, bool expires, uint32_t ttl);
    void (*ping)(rt_buf_t *b);
    int (*push_pub)(rt_buf_t *b, const broker_pub_t *pub);
    int (*push_join)(rt_buf_t *b, rt_str_t channel, const rt_client_info_t *info, bool leave);
    void (*push_unsubscribe)(rt_buf_t *b, rt_str_t channel, int code, const char *reason);
    int (*push_subscribe)(rt_buf_t *b, rt_str_t channel, const node_sub_result_t *r);
    void (*push_disconnect)(rt_buf_t *b, int code, const char *reason);
    void (*push_refresh)(rt_buf_t *b, bool expires, uint32_t ttl);
    int (*push_connect)(rt_buf_t *b, const node_connect_result_t *r);
} node_codec_t;

extern const node_codec_t node_codec_json;
extern const node_codec_t node_codec_pb;
/* The codec a wire form speaks. */
const node_codec_t *node_codec_of_wire(node_wire_t wire);

/* Commands of one frame, in the frame's encoding. */
typedef struct node_cmd_reader {
    bool protobuf;
    union {
        node_json_reader_t json;
        node_pb_reader_t pb;
    } u;
} node_cmd_reader_t;

void node_cmd_reader_init(node_cmd_reader_t *r, bool protobuf, const uint8_t *frame, size_t len);
/* As node_json_reader_next(). */
int node_cmd_reader_next(node_cmd_reader_t *r, node_cmd_t *cmd);
/* Offset in the frame where the commands not yet returned start. */
size_t node_cmd_reader_pos(const node_cmd_reader_t *r);
void node_cmd_reader_cleanup(node_cmd_reader_t *r);

#endif

/* The codec tables and the frame reader over both encodings (see codec.h). */
#include "node/codec.h"

const node_codec_t node_codec_json = {
    .protobuf = false,
    .reply_error = node_json_reply_error,
    .reply_empty = node_json_reply_empty,
    .reply_connect = node_json_reply_connect,
    .reply_subscribe = node_json_reply_subscribe,
    .reply_presence = node_json_reply_presence,
    .reply_presence_stats = node_json_reply_presence_stats,
    .reply_history = node_json_reply_history,
    .reply_refresh = node_json_reply_refresh,
    .ping = node_json_ping,
    .push_pub = node_json_push_pub,
    .push_join = node_json_push_join,
    .push_unsubscribe = node_json_push_unsubscribe,
    .push_subscribe = node_json_push_subscribe,
    .push_disconnect = node_json_push_disconnect,
    .push_refresh = node_json_push_refresh,
    .push_connect = node_json_push_connect,
};

const node_codec_t node_codec_pb = {
    .protobuf = true,
    .reply_error = node_pb_reply_error,
    .reply_empty = node_pb_reply_empty,
    .reply_connect = node_pb_reply_connect,
    .reply_subscribe = node_pb_reply_subscribe,
    .reply_presence = node_pb_reply_presence,
    .reply_presence_stats = node_pb_reply_presence_stats,
    .reply_history = node_pb_reply_history,
    .reply_refresh = node_pb_reply_refresh,
    .ping = node_pb_ping,
    .push_pub = node_pb_push_pub,
    .push_join = node_pb_push_join,
    .push_unsubscribe = node_pb_push_unsubscribe,
    .push_subscribe = node_pb_push_subscribe,
    .push_disconnect = node_pb_push_disconnect,
    .push_refresh = node_pb_push_refresh,
    .push_connect = node_pb_push_connect,
};

const node_codec_t *node_codec_of_wire(node_wire_t wire)
{
    return node_wire_protobuf(wire) ? &node_codec_pb : &node_codec_json;
}

void node_cmd_reader_init(node_cmd_reader_t *r, bool protobuf, const uint8_t *frame, size_t len)
{
    r->protobuf = protobuf;
    if (protobuf)
        node_pb_reader_init(&r->u.pb, frame, len);
    else
        node_json_reader_init(&r->u.json, frame, len);
}

int node_cmd_reader_next(node_cmd_reader_t *r, node_cmd_t *cmd)
{
    return r->protobuf ? node_pb_reader_next(&r->u.pb, cmd)
                       : node_json_reader_next(&r->u.json, cmd);
}

size_t node_cmd_reader_pos(const node_cmd_reader_t *r)
{
    return r->protobuf ? r->u.pb.pos : r->u.json.pos;
}

void node_cmd_reader_cleanup(node_cmd_reader_t *r)
{
    if (r->protobuf)
        node_pb_reader_cleanup(&r->u.pb);
    else
        node_json_reader_cleanup(&r->u.json);
}

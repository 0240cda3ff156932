/* Emulation and unidirectional request bodies: the JSON /emulation envelope, the Protobuf
 * EmulationRequest, and the bare JSON ConnectRequest of uni transports. Whatever decodes
 * must hand out slices inside the input (Protobuf) and a frame the command reader can walk
 * without crashing. */
#include <stdint.h>
#include <stdlib.h>

#include "node/codec.h"
#include "node/node_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_frame(bool protobuf, rt_str_t frame)
{
    node_cmd_reader_t r;
    node_cmd_reader_init(&r, protobuf, (const uint8_t *)frame.p, frame.n);
    node_cmd_t cmd;
    for (int i = 0; i < 64 && node_cmd_reader_next(&r, &cmd) == 1; i++) {
    }
    node_cmd_reader_cleanup(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_str_t in = rt_str_from((const char *)data, size);

    rt_buf_t node = RT_BUF_INIT, session = RT_BUF_INIT, frame = RT_BUF_INIT;
    if (node_emulation_decode_json(in, &node, &session, &frame) == 0)
        walk_frame(false, rt_buf_str(&frame));
    rt_buf_cleanup(&node);
    rt_buf_cleanup(&session);
    rt_buf_cleanup(&frame);

    rt_str_t n, s, d;
    if (node_pb_decode_emulation(data, size, &n, &s, &d) == 0) {
        const char *lo = (const char *)data, *hi = lo + size;
        if ((n.n && (n.p < lo || n.p + n.n > hi)) || (s.n && (s.p < lo || s.p + s.n > hi)) ||
            (d.n && (d.p < lo || d.p + d.n > hi)))
            abort();
        walk_frame(true, d);
    }

    node_json_reader_t jr;
    node_json_reader_init(&jr, NULL, 0);
    node_cmd_t cmd;
    if (node_json_decode_connect_request(&jr, data, size, &cmd) == 0 &&
        cmd.type != NODE_CMD_CONNECT)
        abort();
    node_json_reader_cleanup(&jr);
    return 0;
}

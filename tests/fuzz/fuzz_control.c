/* Control messages arrive from Redis (SERVER.md §3.10): a hostile or corrupted Redis must
 * not crash a node. Decodes arbitrary bytes as a control message and as a channels survey
 * payload; a decoded message is encoded again and must decode to the same type. */
#include <stddef.h>
#include <stdint.h>

#include "node/base/assert.h"
#include "node/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    node_ctl_msg_t m;
    if (node_ctl_decode(data, size, &m) == 0) {
        rt_buf_t b = RT_BUF_INIT;
        node_ctl_encode(&b, &m);
        node_ctl_msg_t again;
        RT_ASSERT(node_ctl_decode(b.p, b.len, &again) == 0);
        RT_ASSERT(again.type == m.type);
        node_control_unref(again.control);
        node_ctl_msg_cleanup(&again);
        rt_buf_cleanup(&b);
    }
    node_control_unref(m.control);
    node_ctl_msg_cleanup(&m);

    node_survey_result_t r;
    node_survey_result_init(&r);
    (void)node_ctl_decode_channels(data, size, &r);
    node_survey_result_cleanup(&r);
    return 0;
}

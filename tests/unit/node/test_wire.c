/* Wire forms (node/wire.h): the exact bytes each transport puts around one message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "node/proto.h"
#include "node/proto_pb.h"
#include "node/wire.h"

static void expect_frame(node_wire_t w, rt_str_t msg, const void *want, size_t want_len)
{
    rt_bytes_t *b = node_wire_frame(w, msg);
    assert_int_equal(b->len, want_len);
    assert_memory_equal(b->data, want, want_len);
    rt_bytes_unref(b);
    rt_shared_t *s = node_wire_frame_shared(w, msg);
    assert_int_equal(s->len, want_len);
    assert_memory_equal(s->data, want, want_len);
    rt_shared_unref(s);
}

#define LIT(s) s, sizeof(s) - 1

static void test_json_forms(void **state)
{
    rt_str_t push = rt_str_c("{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":1}}}");
    /* Bidirectional WebSocket: one text frame with the message as it is. */
    expect_frame(NODE_WIRE_WS_JSON, push,
                 LIT("\x81\x29{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":1}}}"));
    /* HTTP-streaming: a chunk holding the message and a newline. */
    expect_frame(NODE_WIRE_STREAM_JSON, push,
                 LIT("2a\r\n{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":1}}}\n\r\n"));
    /* SSE: a chunk holding one event. */
    expect_frame(NODE_WIRE_SSE, push,
                 LIT("31\r\ndata: {\"push\":{\"channel\":\"c\",\"pub\":{\"data\":1}}}\n\n\r\n"));
    /* Unidirectional forms carry the bare Push. */
    expect_frame(NODE_WIRE_UNI_WS, push, LIT("\x81\x20{\"channel\":\"c\",\"pub\":{\"data\":1}}"));
    expect_frame(NODE_WIRE_UNI_STREAM, push,
                 LIT("21\r\n{\"channel\":\"c\",\"pub\":{\"data\":1}}\n\r\n"));
    expect_frame(NODE_WIRE_UNI_SSE, push,
                 LIT("28\r\ndata: {\"channel\":\"c\",\"pub\":{\"data\":1}}\n\n\r\n"));
    /* A ping ({}) is not a push: it goes as it is everywhere. */
    expect_frame(NODE_WIRE_UNI_STREAM, rt_str_c("{}"), LIT("3\r\n{}\n\r\n"));
    expect_frame(NODE_WIRE_SSE, rt_str_c("{}"), LIT("a\r\ndata: {}\n\n\r\n"));
}

static void test_protobuf_forms(void **state)
{
    /* Reply{id:2, subscribe:{}} = 08 02 32 00 (PROTOCOL.md §1.4). */
    rt_str_t reply = rt_str_from("\x08\x02\x32\x00", 4);
    expect_frame(NODE_WIRE_WS_PB, reply, LIT("\x82\x05\x04\x08\x02\x32\x00"));
    expect_frame(NODE_WIRE_STREAM_PB, reply, LIT("5\r\n\x04\x08\x02\x32\x00\r\n"));
    /* The ping: an empty message, i.e. the single byte 00 once delimited. */
    expect_frame(NODE_WIRE_WS_PB, RT_STR_NULL, LIT("\x82\x01\x00"));
    expect_frame(NODE_WIRE_STREAM_PB, RT_STR_NULL, LIT("1\r\n\x00\r\n"));
    /* gRPC: 5-byte prefix + the bare Push of Reply{push: P}. */
    rt_buf_t b = RT_BUF_INIT;
    node_pb_push_message(&b, rt_str_c("hi"));
    rt_str_t bare = node_pb_push_bare(rt_buf_str(&b));
    rt_bytes_t *f = node_wire_frame(NODE_WIRE_UNI_GRPC, rt_buf_str(&b));
    assert_int_equal(f->len, 5 + bare.n);
    assert_int_equal(f->data[0], 0);
    assert_int_equal(f->data[4], bare.n);
    assert_memory_equal(f->data + 5, bare.p, bare.n);
    rt_bytes_unref(f);
    rt_buf_cleanup(&b);
    expect_frame(NODE_WIRE_UNI_GRPC, RT_STR_NULL, LIT("\x00\x00\x00\x00\x00"));
}

static void test_properties(void **state)
{
    assert_true(node_wire_protobuf(NODE_WIRE_WS_PB));
    assert_true(node_wire_protobuf(NODE_WIRE_UNI_GRPC));
    assert_false(node_wire_protobuf(NODE_WIRE_SSE));
    assert_true(node_wire_emulated(NODE_WIRE_SSE));
    assert_false(node_wire_emulated(NODE_WIRE_UNI_SSE));
    assert_true(node_wire_unidirectional(NODE_WIRE_UNI_WS));
    assert_false(node_wire_unidirectional(NODE_WIRE_STREAM_PB));
    assert_string_equal(node_wire_name(NODE_WIRE_UNI_GRPC), "uni_grpc");
}

int run_wire(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_forms),
        cmocka_unit_test(test_protobuf_forms),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}

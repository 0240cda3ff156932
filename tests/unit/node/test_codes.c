/* The protocol code table (PROTOCOL.md §6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node/codes.h"

static void test_error_messages(void **state)
{
    static const struct {
        int code;
        const char *message;
        bool temporary;
    } want[] = {
        {100, "internal server error", true},
        {101, "unauthorized", false},
        {102, "unknown channel", false},
        {103, "permission denied", false},
        {104, "method not found", false},
        {105, "already subscribed", false},
        {106, "limit exceeded", false},
        {107, "bad request", false},
        {108, "not available", false},
        {109, "token expired", false},
        {110, "expired", false},
        {111, "too many requests", true},
        {112, "unrecoverable position", false},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_string_equal(node_error_message(want[i].code), want[i].message);
        assert_int_equal(node_error_temporary(want[i].code), want[i].temporary);
    }
    assert_string_equal(node_error_message(400), "");
    assert_string_equal(node_error_message(0), "");
    assert_false(node_error_temporary(400));
}

static void test_disconnect_reasons(void **state)
{
    static const struct {
        int code;
        const char *reason;
    } want[] = {
        {3001, "shutdown"},
        {3004, "internal server error"},
        {3005, "connection expired"},
        {3006, "subscription expired"},
        {3008, "slow"},
        {3009, "write error"},
        {3010, "insufficient state"},
        {3011, "force reconnect"},
        {3012, "no pong"},
        {3013, "too many requests"},
        {3014, "state invalidated"},
        {3500, "invalid token"},
        {3501, "bad request"},
        {3502, "stale"},
        {3503, "force disconnect"},
        {3504, "connection limit"},
        {3505, "channel limit"},
        {3506, "inappropriate protocol"},
        {3507, "permission denied"},
        {3508, "not available"},
        {3509, "too many errors"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_string_equal(node_disconnect_reason(want[i].code), want[i].reason);
        assert_int_equal(node_disconnect_reconnect(want[i].code), want[i].code < 3500);
    }
    assert_string_equal(node_disconnect_reason(4000), "");
    assert_true(node_disconnect_reconnect(4000));
    assert_true(node_disconnect_reconnect(4499));
    assert_false(node_disconnect_reconnect(4500));
    assert_false(node_disconnect_reconnect(4999));
    assert_true(node_disconnect_reconnect(5000));
    assert_false(node_disconnect_reconnect(3999));
}

static void test_disconnect_from_error(void **state)
{
    assert_int_equal(node_disconnect_from_error(NODE_ERR_TOKEN_EXPIRED), NODE_DISCONNECT_EXPIRED);
    assert_int_equal(node_disconnect_from_error(NODE_ERR_EXPIRED), NODE_DISCONNECT_EXPIRED);
    assert_int_equal(node_disconnect_from_error(NODE_ERR_TOO_MANY_REQUESTS),
                     NODE_DISCONNECT_TOO_MANY_REQUESTS);
    assert_int_equal(node_disconnect_from_error(NODE_ERR_PERMISSION_DENIED),
                     NODE_DISCONNECT_PERMISSION_DENIED);
    assert_int_equal(node_disconnect_from_error(NODE_ERR_UNKNOWN_CHANNEL),
                     NODE_DISCONNECT_INTERNAL);
    assert_int_equal(node_disconnect_from_error(NODE_ERR_INTERNAL), NODE_DISCONNECT_INTERNAL);
    assert_int_equal(node_disconnect_from_error(400), NODE_DISCONNECT_INTERNAL);
}

static void test_unsubscribe_reasons(void **state)
{
    assert_string_equal(node_unsubscribe_reason(NODE_UNSUB_SERVER), "server unsubscribe");
    assert_string_equal(node_unsubscribe_reason(NODE_UNSUB_INSUFFICIENT), "insufficient state");
    assert_string_equal(node_unsubscribe_reason(NODE_UNSUB_EXPIRED), "subscription expired");
    assert_string_equal(node_unsubscribe_reason(NODE_UNSUB_INVALIDATED), "state invalidated");
    assert_string_equal(node_unsubscribe_reason(2600), "");
}

int run_codes(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_disconnect_reasons),
        cmocka_unit_test(test_disconnect_from_error),
        cmocka_unit_test(test_unsubscribe_reasons),
    };
    return cmocka_run_group_tests_name("codes", tests, NULL, NULL);
}

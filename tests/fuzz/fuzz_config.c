/* Configuration loader: arbitrary bytes as the config file (first byte even) or as the
 * CENTRIFUGO_CHANNEL_NAMESPACES variable (first byte odd). On success, every namespace is
 * exercised through resolution and the channel-name helpers. Never crashes, never leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/base/alloc.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void exercise(const node_config_t *cfg, rt_str_t channel)
{
    const char *rest;
    size_t rest_len;
    const node_ns_opts_t *ns = node_config_resolve(cfg, channel.p, channel.n, &rest, &rest_len);
    check(rest >= channel.p && rest + rest_len <= channel.p + channel.n);
    (void)node_channel_is_private(cfg, channel);
    if (ns == NULL)
        return;
    (void)node_channel_is_user_limited(cfg, ns, channel);
    (void)node_channel_user_allowed(cfg, ns, channel, RT_STR("42"));
    int rc = node_channel_validate_name(cfg, ns, channel, rt_str_from(rest, rest_len));
    check(rc == 0 || rc == RT_EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_log_set_level(RT_LOG_NONE);
    if (size == 0)
        return 0;
    bool as_env = data[0] & 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;

    node_config_t cfg;
    rt_buf_t err = RT_BUF_INIT;
    int rc;
    if (as_env) {
        static const char prefix[] = "CENTRIFUGO_CHANNEL_NAMESPACES=";
        char *var = rt_malloc(sizeof(prefix) + n);
        memcpy(var, prefix, sizeof(prefix) - 1);
        memcpy(var + sizeof(prefix) - 1, p, n);
        var[sizeof(prefix) - 1 + n] = '\0';
        char *envp[] = {var, "CENTRIFUGO_CHANNEL_NAMESPACES_AB_PRESENCE=1", NULL};
        rc = node_config_load_buffer(&cfg, NULL, NULL, 0, envp, NULL, 0, &err);
        rt_free(var);
    } else {
        char *envp[] = {NULL};
        rc = node_config_load_buffer(&cfg, "fuzz.json", p, n, envp, NULL, 0, &err);
    }
    check(rc == 0 || rc == RT_EINVAL);
    check(rc == 0 || err.len > 0);
    if (rc == 0) {
        check(cfg.node_name != NULL && cfg.engine_type != NULL && cfg.allowed_origins != NULL);
        for (size_t i = 0; i < cfg.namespaces_count; i++) {
            rt_buf_t ch = RT_BUF_INIT;
            rt_buf_printf(&ch, "$%s:rest#42,7", cfg.namespaces[i].name);
            exercise(&cfg, rt_buf_str(&ch));
            rt_buf_cleanup(&ch);
        }
        exercise(&cfg, rt_str_from(p, n));
    }
    node_config_cleanup(&cfg);
    rt_buf_cleanup(&err);
    return 0;
}

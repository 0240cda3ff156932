/* JWT verification on hostile input. Byte 0 selects the mode: even = the rest is a compact
 * token, verified as-is (mostly exercising format and header handling, and everything
 * after it with skip-verify); odd = the rest is a payload, signed HS256 with the fuzz
 * secret, so claim parsing also runs behind a real signature check. Every input goes
 * through connect and subscribe verification on each verifier. */
#include <stddef.h>
#include <stdint.h>

#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/log.h"
#include "node/jwt.h"

#define FUZZ_SECRET "fuzz-secret"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Created once and kept for the process lifetime (still reachable, not a leak). */
static node_jwt_verifier_t *verifiers[3];

static node_token_config_t cfg_empty(void)
{
    return (node_token_config_t){
        .hmac_secret_key = "",
        .hmac_previous_secret_key = "",
        .rsa_public_key = "",
        .ecdsa_public_key = "",
        .audience = "",
        .audience_regex = "",
        .issuer = "",
        .issuer_regex = "",
        .user_id_claim = "",
    };
}

static void init_verifiers(void)
{
    if (verifiers[0] != NULL)
        return;
    rt_log_set_level(RT_LOG_NONE);
    node_token_config_t hs = cfg_empty();
    hs.hmac_secret_key = FUZZ_SECRET;
    hs.hmac_previous_secret_key = "old";
    node_token_config_t skip = cfg_empty();
    node_token_config_t checks = cfg_empty();
    checks.audience = "a";
    checks.audience_regex = "^(a|b)+$";
    checks.issuer_regex = "i.*";
    checks.user_id_claim = "uid";
    if (node_jwt_verifier_new(&hs, false, &verifiers[0], NULL) != 0 ||
        node_jwt_verifier_new(&skip, true, &verifiers[1], NULL) != 0 ||
        node_jwt_verifier_new(&checks, true, &verifiers[2], NULL) != 0)
        __builtin_trap();
}

static void check(const node_jwt_verifier_t *v, rt_str_t tok)
{
    node_jwt_claims_t c;
    int rc = node_jwt_verify_connect(v, tok, 1700000000, &c);
    if (rc != 0 && rc != RT_EINVAL && rc != RT_EEXPIRED)
        __builtin_trap();
    if (rc == 0 && c.subs != NULL) {
        for (const rt_json_t *m = c.subs->child; m != NULL; m = m->next) {
            node_jwt_sub_opts_t o;
            /* verify_connect already validated every member. */
            if (node_jwt_sub_opts_parse(m, &o) != 0)
                __builtin_trap();
            node_jwt_sub_opts_cleanup(&o);
        }
    }
    node_jwt_claims_cleanup(&c);
    rc = node_jwt_verify_subscribe(v, tok, 1700000000, &c);
    if (rc != 0 && rc != RT_EINVAL && rc != RT_EEXPIRED)
        __builtin_trap();
    if (rc == 0 && c.channel.n == 0)
        __builtin_trap();
    node_jwt_claims_cleanup(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_verifiers();
    if (size == 0)
        return 0;
    rt_str_t rest = rt_str_from((const char *)data + 1, size - 1);
    rt_buf_t tok = RT_BUF_INIT;
    if (data[0] & 1) {
        if (node_jwt_sign("HS256", RT_STR(FUZZ_SECRET), rest, &tok) != 0)
            __builtin_trap();
        rest = rt_buf_str(&tok);
    }
    for (size_t i = 0; i < sizeof(verifiers) / sizeof(verifiers[0]); i++)
        check(verifiers[i], rest);
    rt_buf_cleanup(&tok);
    return 0;
}

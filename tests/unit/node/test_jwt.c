#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "node/base/alloc.h"
#include "node/base/b64.h"
#include "node/base/buf.h"
#include "node/base/err.h"
#include "node/base/json.h"
#include "node/jwt.h"

#define NOW      1700000000LL
#define SECRET   "secret-key-for-tests"
#define SECRET_2 "previous-secret-key"

/* Keys generated once per run (RSA 2048 and the three NIST curves, plus secp256k1 which the
 * verifier must refuse). PEM strings, owned by the group state. */
typedef struct keys {
    char *rsa_priv, *rsa_pub;
    char *rsa2_priv, *rsa2_pub;   /* a second, unrelated RSA key */
    char *ec_priv[3], *ec_pub[3]; /* P-256, P-384, P-521 */
    char *k1_pub;                 /* secp256k1 */
} keys_t;

static keys_t K;

static char *bio_string(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *s = rt_strndup(data, (size_t)n);
    BIO_free(bio);
    return s;
}

static void pem_pair(EVP_PKEY *pkey, char **priv, char **pub)
{
    assert_non_null(pkey);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL), 1);
    *priv = bio_string(b);
    b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, pkey), 1);
    *pub = bio_string(b);
    EVP_PKEY_free(pkey);
}

static int setup_keys(void **state)
{
    pem_pair(EVP_RSA_gen(2048), &K.rsa_priv, &K.rsa_pub);
    pem_pair(EVP_RSA_gen(2048), &K.rsa2_priv, &K.rsa2_pub);
    pem_pair(EVP_EC_gen("P-256"), &K.ec_priv[0], &K.ec_pub[0]);
    pem_pair(EVP_EC_gen("P-384"), &K.ec_priv[1], &K.ec_pub[1]);
    pem_pair(EVP_EC_gen("P-521"), &K.ec_priv[2], &K.ec_pub[2]);
    char *k1_priv;
    pem_pair(EVP_EC_gen("secp256k1"), &k1_priv, &K.k1_pub);
    rt_free(k1_priv);
    return 0;
}

static int teardown_keys(void **state)
{
    rt_free(K.rsa_priv);
    rt_free(K.rsa_pub);
    rt_free(K.rsa2_priv);
    rt_free(K.rsa2_pub);
    for (int i = 0; i < 3; i++) {
        rt_free(K.ec_priv[i]);
        rt_free(K.ec_pub[i]);
    }
    rt_free(K.k1_pub);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------- */

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

static node_jwt_verifier_t *verifier(const node_token_config_t *cfg, bool skip)
{
    node_jwt_verifier_t *v = NULL;
    rt_buf_t err = RT_BUF_INIT;
    int rc = node_jwt_verifier_new(cfg, skip, &v, &err);
    if (rc != 0)
        fail_msg("verifier_new: %.*s", (int)err.len, (const char *)err.p);
    rt_buf_cleanup(&err);
    return v;
}

static node_jwt_verifier_t *hmac_verifier(void)
{
    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    return verifier(&cfg, false);
}

/* Signs payload and returns the token as a NUL-terminated heap string. */
static char *sign(const char *alg, const char *key, const char *payload)
{
    rt_buf_t out = RT_BUF_INIT;
    assert_int_equal(node_jwt_sign(alg, rt_str_c(key), rt_str_c(payload), &out), 0);
    rt_buf_append_byte(&out, '\0');
    return (char *)out.p;
}

static char *sign_hdr(const char *header, const char *alg, const char *key, const char *payload)
{
    rt_buf_t out = RT_BUF_INIT;
    assert_int_equal(
        node_jwt_sign_header(rt_str_c(header), alg, rt_str_c(key), rt_str_c(payload), &out), 0);
    rt_buf_append_byte(&out, '\0');
    return (char *)out.p;
}

/* Token from literal segments: b64url(header) "." b64url(payload) "." sig_b64 verbatim. */
static char *raw_token(const char *header, const char *payload, const char *sig_b64)
{
    rt_buf_t out = RT_BUF_INIT;
    rt_b64_encode(&out, header, strlen(header), true, false);
    rt_buf_append_byte(&out, '.');
    rt_b64_encode(&out, payload, strlen(payload), true, false);
    rt_buf_append_byte(&out, '.');
    rt_buf_append_cstr(&out, sig_b64);
    rt_buf_append_byte(&out, '\0');
    return (char *)out.p;
}

static int vconn(const node_jwt_verifier_t *v, const char *tok)
{
    node_jwt_claims_t c;
    int rc = node_jwt_verify_connect(v, rt_str_c(tok), NOW, &c);
    node_jwt_claims_cleanup(&c);
    return rc;
}

static int vsub(const node_jwt_verifier_t *v, const char *tok)
{
    node_jwt_claims_t c;
    int rc = node_jwt_verify_subscribe(v, rt_str_c(tok), NOW, &c);
    node_jwt_claims_cleanup(&c);
    return rc;
}

/* Signs payload with HS256/SECRET and verifies it as a connection token. */
static int hs_conn(const node_jwt_verifier_t *v, const char *payload)
{
    char *tok = sign("HS256", SECRET, payload);
    int rc = vconn(v, tok);
    rt_free(tok);
    return rc;
}

static int hs_sub(const node_jwt_verifier_t *v, const char *payload)
{
    char *tok = sign("HS256", SECRET, payload);
    int rc = vsub(v, tok);
    rt_free(tok);
    return rc;
}

static void assert_str(rt_str_t s, const char *want)
{
    if (!rt_str_eq_c(s, want))
        fail_msg("got '%.*s' want '%s'", (int)s.n, s.p ? s.p : "", want);
}

/* ---- algorithms ---------------------------------------------------------------------- */

static void check_alg(const char *alg, const char *priv, node_token_config_t *cfg)
{
    node_jwt_verifier_t *v = verifier(cfg, false);
    char *tok = sign(alg, priv, "{\"sub\":\"42\",\"exp\":1800000000}");
    node_jwt_claims_t c;
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(tok), NOW, &c), 0);
    assert_str(c.user, "42");
    assert_true(c.has_exp);
    assert_int_equal(c.exp, 1800000000);
    assert_int_equal(c.expire_s, 1800000000);
    node_jwt_claims_cleanup(&c);
    /* The same token also works as a subscription token body check (channel missing). */
    assert_int_equal(vsub(v, tok), RT_EINVAL);
    rt_free(tok);
    node_jwt_verifier_free(v);
}

static void test_every_alg(void **state)
{
    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    check_alg("HS256", SECRET, &cfg);
    check_alg("HS384", SECRET, &cfg);
    check_alg("HS512", SECRET, &cfg);

    cfg = cfg_empty();
    cfg.rsa_public_key = K.rsa_pub;
    check_alg("RS256", K.rsa_priv, &cfg);
    check_alg("RS384", K.rsa_priv, &cfg);
    check_alg("RS512", K.rsa_priv, &cfg);

    const char *es[3] = {"ES256", "ES384", "ES512"};
    for (int i = 0; i < 3; i++) {
        cfg = cfg_empty();
        cfg.ecdsa_public_key = K.ec_pub[i];
        check_alg(es[i], K.ec_priv[i], &cfg);
    }

    /* All three key types configured at once: each family uses its own key. */
    cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    cfg.rsa_public_key = K.rsa_pub;
    cfg.ecdsa_public_key = K.ec_pub[0];
    check_alg("HS512", SECRET, &cfg);
    check_alg("RS256", K.rsa_priv, &cfg);
    check_alg("ES256", K.ec_priv[0], &cfg);
}

static void test_wrong_keys(void **state)
{
    const char *payload = "{\"sub\":\"42\"}";
    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    cfg.rsa_public_key = K.rsa_pub;
    cfg.ecdsa_public_key = K.ec_pub[0];
    node_jwt_verifier_t *v = verifier(&cfg, false);

    char *t = sign("HS256", "other secret", payload);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    t = sign("RS256", K.rsa2_priv, payload);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    /* ES384 needs a P-384 key; the configured key is P-256. */
    t = sign("ES384", K.ec_priv[1], payload);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    /* Header claims ES256 but the signature is a valid ES384 one from another key size. */
    t = sign_hdr("{\"alg\":\"ES256\"}", "ES384", K.ec_priv[1], payload);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    /* Header says HS256, signed with HS512 under the right secret. */
    t = sign_hdr("{\"alg\":\"HS256\"}", "HS512", SECRET, payload);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    /* Header says RS256, signed RS512. */
    t = sign_hdr("{\"alg\":\"RS256\"}", "RS512", K.rsa_priv, payload);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    node_jwt_verifier_free(v);
}

static void test_alg_without_key(void **state)
{
    const char *payload = "{\"sub\":\"42\"}";
    node_jwt_verifier_t *hs = hmac_verifier();
    char *t = sign("RS256", K.rsa_priv, payload);
    assert_int_equal(vconn(hs, t), RT_EINVAL);
    rt_free(t);
    t = sign("ES256", K.ec_priv[0], payload);
    assert_int_equal(vconn(hs, t), RT_EINVAL);
    rt_free(t);
    node_jwt_verifier_free(hs);

    node_token_config_t cfg = cfg_empty();
    cfg.rsa_public_key = K.rsa_pub;
    node_jwt_verifier_t *rs = verifier(&cfg, false);
    t = sign("ES256", K.ec_priv[0], payload);
    assert_int_equal(vconn(rs, t), RT_EINVAL);
    rt_free(t);
    t = sign("HS256", SECRET, payload);
    assert_int_equal(vconn(rs, t), RT_EINVAL);
    rt_free(t);
    node_jwt_verifier_free(rs);

    /* No key at all: nothing verifies. */
    cfg = cfg_empty();
    node_jwt_verifier_t *none = verifier(&cfg, false);
    t = sign("HS256", SECRET, payload);
    assert_int_equal(vconn(none, t), RT_EINVAL);
    rt_free(t);
    node_jwt_verifier_free(none);
}

static void test_alg_none_and_unknown(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    const char *payload = "{\"sub\":\"42\"}";

    char *t = sign("none", "", payload);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    /* "none" header carrying a valid HS256 MAC is still "none". */
    t = sign_hdr("{\"alg\":\"none\"}", "HS256", SECRET, payload);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    const char *bad_algs[] = {"{\"alg\":\"None\"}",  "{\"alg\":\"NONE\"}",  "{\"alg\":\"hs256\"}",
                              "{\"alg\":\"PS256\"}", "{\"alg\":\"EdDSA\"}", "{\"alg\":\"HS999\"}",
                              "{\"alg\":\"\"}",      "{\"alg\":256}",       "{\"typ\":\"JWT\"}",
                              "{\"alg\":null}"};
    for (size_t i = 0; i < sizeof(bad_algs) / sizeof(bad_algs[0]); i++) {
        t = sign_hdr(bad_algs[i], "HS256", SECRET, payload);
        assert_int_equal(vconn(v, t), RT_EINVAL);
        rt_free(t);
    }
    /* An escaped but equal alg name is the same name. */
    t = sign_hdr("{\"alg\":\"HS\\u0032\\u0035\\u0036\",\"kid\":\"x\"}", "HS256", SECRET, payload);
    assert_int_equal(vconn(v, t), 0);
    rt_free(t);
    assert_int_equal(node_jwt_sign("XS256", rt_str_c(SECRET), rt_str_c(payload), &(rt_buf_t){0}),
                     RT_EINVAL);
    node_jwt_verifier_free(v);
}

/* An HS256 token whose "secret" is the RSA public key PEM: the classic confusion attack
 * against libraries that let the header pick the algorithm. */
static void test_alg_confusion(void **state)
{
    const char *payload = "{\"sub\":\"admin\"}";
    char *t = sign("HS256", K.rsa_pub, payload);

    node_token_config_t cfg = cfg_empty();
    cfg.rsa_public_key = K.rsa_pub;
    node_jwt_verifier_t *v = verifier(&cfg, false);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    node_jwt_verifier_free(v);

    /* Also with an (unrelated) HMAC secret configured next to the RSA key. */
    cfg.hmac_secret_key = SECRET;
    v = verifier(&cfg, false);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    node_jwt_verifier_free(v);
    rt_free(t);

    /* Same with the ECDSA public key. */
    t = sign("HS384", K.ec_pub[0], payload);
    cfg = cfg_empty();
    cfg.ecdsa_public_key = K.ec_pub[0];
    v = verifier(&cfg, false);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    node_jwt_verifier_free(v);
    rt_free(t);
}

static void test_previous_hmac_key(void **state)
{
    const char *payload = "{\"sub\":\"42\"}";
    char *cur = sign("HS256", SECRET, payload);
    char *prev = sign("HS384", SECRET_2, payload);
    char *other = sign("HS256", "nope", payload);

    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    cfg.hmac_previous_secret_key = SECRET_2;
    node_jwt_verifier_t *v = verifier(&cfg, false);
    assert_int_equal(vconn(v, cur), 0);
    assert_int_equal(vconn(v, prev), 0);
    assert_int_equal(vconn(v, other), RT_EINVAL);
    node_jwt_verifier_free(v);

    cfg.hmac_previous_secret_key_valid_until = NOW + 1;
    v = verifier(&cfg, false);
    assert_int_equal(vconn(v, prev), 0);
    node_jwt_verifier_free(v);

    cfg.hmac_previous_secret_key_valid_until = NOW;
    v = verifier(&cfg, false);
    assert_int_equal(vconn(v, prev), RT_EINVAL);
    assert_int_equal(vconn(v, cur), 0);
    node_jwt_verifier_free(v);

    /* Only the previous key configured (current empty). */
    cfg = cfg_empty();
    cfg.hmac_previous_secret_key = SECRET_2;
    v = verifier(&cfg, false);
    assert_int_equal(vconn(v, prev), 0);
    assert_int_equal(vconn(v, cur), RT_EINVAL);
    node_jwt_verifier_free(v);

    rt_free(cur);
    rt_free(prev);
    rt_free(other);
}

static void test_skip_verify(void **state)
{
    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    cfg.audience = "rotor";
    node_jwt_verifier_t *v = verifier(&cfg, true);

    char *t = sign("HS256", "anything", "{\"sub\":\"u\",\"aud\":\"rotor\"}");
    node_jwt_claims_t c;
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_str(c.user, "u");
    node_jwt_claims_cleanup(&c);
    rt_free(t);

    t = sign("none", "", "{\"sub\":\"u\",\"aud\":\"rotor\"}");
    assert_int_equal(vconn(v, t), 0);
    rt_free(t);
    t = raw_token("{\"alg\":\"whatever\"}", "{\"aud\":\"rotor\"}", "c2ln");
    assert_int_equal(vconn(v, t), 0);
    rt_free(t);

    /* Claims are still honoured. */
    t = sign("none", "", "{\"sub\":\"u\",\"aud\":\"other\"}");
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    t = sign("none", "", "{\"sub\":\"u\",\"aud\":\"rotor\",\"exp\":1}");
    assert_int_equal(vconn(v, t), RT_EEXPIRED);
    rt_free(t);
    t = sign("none", "", "{\"sub\":5,\"aud\":\"rotor\"}");
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    /* Format is still checked. */
    t = raw_token("{\"alg\":\"HS256\"}", "{\"aud\":\"rotor\"}", "!!");
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    t = raw_token("not json", "{\"aud\":\"rotor\"}", "");
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    node_jwt_verifier_free(v);

    /* Skip-verify without any key configured. */
    cfg = cfg_empty();
    v = verifier(&cfg, true);
    t = sign("HS256", "x", "{\"sub\":\"u\"}");
    assert_int_equal(vconn(v, t), 0);
    rt_free(t);
    node_jwt_verifier_free(v);
}

/* ---- aud / iss ----------------------------------------------------------------------- */

static void test_aud_iss(void **state)
{
    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    cfg.audience = "rotor";
    cfg.issuer = "auth.example";
    node_jwt_verifier_t *v = verifier(&cfg, false);
    assert_int_equal(hs_conn(v, "{\"aud\":\"rotor\",\"iss\":\"auth.example\"}"), 0);
    assert_int_equal(hs_conn(v, "{\"aud\":[\"x\",\"rotor\"],\"iss\":\"auth.example\"}"), 0);
    assert_int_equal(hs_conn(v, "{\"aud\":\"ro\\u0074or\",\"iss\":\"auth.example\"}"), 0);
    assert_int_equal(hs_conn(v, "{\"aud\":\"rotorx\",\"iss\":\"auth.example\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":[],\"iss\":\"auth.example\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":[\"x\"],\"iss\":\"auth.example\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"iss\":\"auth.example\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":\"rotor\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":\"rotor\",\"iss\":\"evil\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":\"rotor\",\"iss\":[\"auth.example\"]}"), RT_EINVAL);
    /* Invalid wins over expired. */
    assert_int_equal(hs_conn(v, "{\"aud\":\"bad\",\"iss\":\"auth.example\",\"exp\":1}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":\"rotor\",\"iss\":\"auth.example\",\"exp\":1}"),
                     RT_EEXPIRED);
    node_jwt_verifier_free(v);

    /* Unconfigured aud/iss are not checked, but must still have the right types. */
    v = hmac_verifier();
    assert_int_equal(hs_conn(v, "{\"aud\":\"anything\",\"iss\":\"anyone\"}"), 0);
    assert_int_equal(hs_conn(v, "{\"aud\":[\"a\",\"b\"]}"), 0);
    assert_int_equal(hs_conn(v, "{\"aud\":5}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":[\"a\",5]}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"iss\":true}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":null,\"iss\":null}"), 0);
    node_jwt_verifier_free(v);
}

static void test_aud_iss_regex(void **state)
{
    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    cfg.audience_regex = "^rotor-(prod|dev)$";
    cfg.issuer_regex = "^https://[a-z]+\\.example\\.com$";
    node_jwt_verifier_t *v = verifier(&cfg, false);
    const char *iss = "\"iss\":\"https://auth.example.com\"";
    char p[256];
    snprintf(p, sizeof(p), "{\"aud\":\"rotor-prod\",%s}", iss);
    assert_int_equal(hs_conn(v, p), 0);
    snprintf(p, sizeof(p), "{\"aud\":[\"zzz\",\"rotor-dev\"],%s}", iss);
    assert_int_equal(hs_conn(v, p), 0);
    snprintf(p, sizeof(p), "{\"aud\":\"rotor-test\",%s}", iss);
    assert_int_equal(hs_conn(v, p), RT_EINVAL);
    snprintf(p, sizeof(p), "{\"aud\":\"xrotor-prod\",%s}", iss);
    assert_int_equal(hs_conn(v, p), RT_EINVAL);
    /* An embedded NUL cannot cut the string short for regexec. */
    snprintf(p, sizeof(p), "{\"aud\":\"rotor-prod\\u0000x\",%s}", iss);
    assert_int_equal(hs_conn(v, p), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":\"rotor-prod\",\"iss\":\"https://auth.example.org\"}"),
                     RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":\"rotor-prod\"}"), RT_EINVAL);
    node_jwt_verifier_free(v);
}

/* ---- time ---------------------------------------------------------------------------- */

static void test_exp_nbf(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    char p[128];
    snprintf(p, sizeof(p), "{\"exp\":%lld}", NOW + 1);
    assert_int_equal(hs_conn(v, p), 0);
    snprintf(p, sizeof(p), "{\"exp\":%lld}", NOW);
    assert_int_equal(hs_conn(v, p), RT_EEXPIRED);
    snprintf(p, sizeof(p), "{\"exp\":%lld}", NOW - 100);
    assert_int_equal(hs_conn(v, p), RT_EEXPIRED);
    snprintf(p, sizeof(p), "{\"exp\":%lld.5}", NOW);
    assert_int_equal(hs_conn(v, p), 0);
    snprintf(p, sizeof(p), "{\"exp\":1.7e9}");
    assert_int_equal(hs_conn(v, p), RT_EEXPIRED);
    snprintf(p, sizeof(p), "{\"exp\":2e9}");
    assert_int_equal(hs_conn(v, p), 0);
    snprintf(p, sizeof(p), "{\"nbf\":%lld}", NOW);
    assert_int_equal(hs_conn(v, p), 0);
    snprintf(p, sizeof(p), "{\"nbf\":%lld}", NOW + 1);
    assert_int_equal(hs_conn(v, p), RT_EEXPIRED);
    snprintf(p, sizeof(p), "{\"nbf\":%lld,\"exp\":%lld}", NOW - 10, NOW + 10);
    assert_int_equal(hs_conn(v, p), 0);
    assert_int_equal(hs_conn(v, "{\"exp\":\"1800000000\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"nbf\":true}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"iat\":\"x\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"exp\":1e300}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"exp\":null}"), 0);
    assert_int_equal(hs_sub(v, "{\"channel\":\"a\",\"exp\":1}"), RT_EEXPIRED);
    assert_int_equal(hs_sub(v, "{\"channel\":\"a\",\"nbf\":9999999999}"), RT_EEXPIRED);

    /* A badly signed expired token is invalid, not expired. */
    char *t = sign("HS256", "wrong", "{\"exp\":1}");
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    /* So is an expired connection token carrying a channel claim. */
    assert_int_equal(hs_conn(v, "{\"exp\":1,\"channel\":\"x\"}"), RT_EINVAL);
    /* And an expired subscription token without channel. */
    assert_int_equal(hs_sub(v, "{\"exp\":1}"), RT_EINVAL);
    node_jwt_verifier_free(v);
}

static void test_expire_at(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    node_jwt_claims_t c;
    char *t = sign("HS256", SECRET, "{\"exp\":1800000000,\"expire_at\":1900000000}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_true(c.has_expire_at);
    assert_int_equal(c.expire_at, 1900000000);
    assert_int_equal(c.expire_s, 1900000000);
    node_jwt_claims_cleanup(&c);
    rt_free(t);

    t = sign("HS256", SECRET, "{\"exp\":1800000000,\"expire_at\":0}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_int_equal(c.expire_s, 0);
    node_jwt_claims_cleanup(&c);
    rt_free(t);

    t = sign("HS256", SECRET, "{}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_false(c.has_exp);
    assert_false(c.has_expire_at);
    assert_int_equal(c.expire_s, 0);
    assert_str(c.user, "");
    assert_null(c.info.p);
    assert_null(c.channels);
    assert_null(c.subs);
    assert_null(c.meta);
    node_jwt_claims_cleanup(&c);
    rt_free(t);

    /* exp still validates the token when expire_at is in the future. */
    assert_int_equal(hs_conn(v, "{\"exp\":5,\"expire_at\":1900000000}"), RT_EEXPIRED);
    assert_int_equal(hs_conn(v, "{\"expire_at\":1.5}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"expire_at\":\"1\"}"), RT_EINVAL);
    node_jwt_verifier_free(v);
}

/* ---- format -------------------------------------------------------------------------- */

static void test_malformed(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    char *good = sign("HS256", SECRET, "{\"sub\":\"42\"}");
    assert_int_equal(vconn(v, good), 0);

    const char *bad[] = {
        "",
        ".",
        "..",
        "abc",
        "abc.def",
        "abc.def.ghi.jkl",
        "eyJhbGciOiJIUzI1NiJ9..c2ln",
        ".eyJzdWIiOiI0MiJ9.c2ln",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vconn(v, bad[i]), RT_EINVAL);

    /* Two segments of a real token; four segments. */
    char *dot = strrchr(good, '.');
    rt_buf_t b = RT_BUF_INIT;
    rt_buf_append(&b, good, (size_t)(dot - good));
    node_jwt_claims_t c;
    assert_int_equal(node_jwt_verify_connect(v, rt_buf_str(&b), NOW, &c), RT_EINVAL);
    node_jwt_claims_cleanup(&c);
    rt_buf_reset(&b);
    rt_buf_append_cstr(&b, good);
    rt_buf_append_cstr(&b, ".x");
    assert_int_equal(node_jwt_verify_connect(v, rt_buf_str(&b), NOW, &c), RT_EINVAL);
    node_jwt_claims_cleanup(&c);

    /* Padding, standard-alphabet characters and whitespace are not base64url. */
    rt_buf_reset(&b);
    rt_buf_append_cstr(&b, good);
    rt_buf_append_cstr(&b, "=");
    assert_int_equal(node_jwt_verify_connect(v, rt_buf_str(&b), NOW, &c), RT_EINVAL);
    node_jwt_claims_cleanup(&c);
    const char *inject[] = {"+", "/", " ", "\n", "=", "*"};
    for (size_t i = 0; i < sizeof(inject) / sizeof(inject[0]); i++) {
        rt_buf_reset(&b);
        rt_buf_append(&b, good, 4);
        rt_buf_append_cstr(&b, inject[i]);
        rt_buf_append_cstr(&b, good + 5);
        assert_int_equal(node_jwt_verify_connect(v, rt_buf_str(&b), NOW, &c), RT_EINVAL);
        node_jwt_claims_cleanup(&c);
    }
    rt_buf_cleanup(&b);

    /* Segment lengths that base64 cannot produce (length % 4 == 1). */
    char *t = raw_token("{\"alg\":\"HS256\"}", "{}", "AAAAA");
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);

    /* Header that is not a JSON object, payload that is not a JSON object. */
    const char *bad_headers[] = {"not json", "[\"HS256\"]", "\"HS256\"", "{\"alg\":\"HS256\"",
                                 "{\"alg\":\"HS256\",}"};
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        t = sign_hdr(bad_headers[i], "HS256", SECRET, "{}");
        assert_int_equal(vconn(v, t), RT_EINVAL);
        rt_free(t);
    }
    const char *bad_payloads[] = {"",           "[]",   "\"s\"",           "1", "null", "{",
                                  "{\"a\":1,}", "{} x", "{\"a\":\"\xff\"}"};
    for (size_t i = 0; i < sizeof(bad_payloads) / sizeof(bad_payloads[0]); i++) {
        t = sign("HS256", SECRET, bad_payloads[i]);
        assert_int_equal(vconn(v, t), RT_EINVAL);
        rt_free(t);
    }

    /* Every prefix of a valid token, and the token with any one byte replaced by a
     * character outside base64url, is invalid. */
    size_t n = strlen(good);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(node_jwt_verify_connect(v, rt_str_from(good, i), NOW, &c), RT_EINVAL);
        node_jwt_claims_cleanup(&c);
        char *m = rt_strdup(good);
        m[i] = m[i] == '.' ? 'A' : '*';
        assert_int_equal(vconn(v, m), RT_EINVAL);
        rt_free(m);
    }
    rt_free(good);
    node_jwt_verifier_free(v);
}

static void test_size_limit(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    /* Largest payload whose token still fits, then one that does not. */
    rt_buf_t p = RT_BUF_INIT;
    rt_buf_append_cstr(&p, "{\"info\":\"");
    while (p.len < 48000)
        rt_buf_append_byte(&p, 'a');
    rt_buf_append_cstr(&p, "\"}");
    rt_buf_append_byte(&p, '\0');
    char *t = sign("HS256", SECRET, (const char *)p.p);
    assert_true(strlen(t) <= NODE_JWT_MAX_TOKEN_BYTES);
    assert_int_equal(vconn(v, t), 0);
    rt_free(t);

    rt_buf_reset(&p);
    rt_buf_append_cstr(&p, "{\"info\":\"");
    while (p.len < 50000)
        rt_buf_append_byte(&p, 'a');
    rt_buf_append_cstr(&p, "\"}");
    rt_buf_append_byte(&p, '\0');
    t = sign("HS256", SECRET, (const char *)p.p);
    assert_true(strlen(t) > NODE_JWT_MAX_TOKEN_BYTES);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    rt_buf_cleanup(&p);

    /* Deep nesting is rejected by the JSON parser, not by the stack. */
    rt_buf_t deep = RT_BUF_INIT;
    rt_buf_append_cstr(&deep, "{\"info\":");
    for (int i = 0; i < 200; i++)
        rt_buf_append_byte(&deep, '[');
    for (int i = 0; i < 200; i++)
        rt_buf_append_byte(&deep, ']');
    rt_buf_append_cstr(&deep, "}");
    rt_buf_append_byte(&deep, '\0');
    assert_int_equal(hs_conn(v, (const char *)deep.p), RT_EINVAL);
    rt_buf_cleanup(&deep);
    node_jwt_verifier_free(v);
}

/* ---- claims -------------------------------------------------------------------------- */

static void test_sub_and_user_claim(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    node_jwt_claims_t c;
    assert_int_equal(hs_conn(v, "{\"sub\":42}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"sub\":[\"42\"]}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"sub\":null}"), 0);
    assert_int_equal(hs_conn(v, "{\"jti\":1}"), RT_EINVAL);

    char *t = sign("HS256", SECRET, "{\"sub\":\"a\\\"b\\u00e9\"}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_str(c.user, "a\"b\xc3\xa9");
    node_jwt_claims_cleanup(&c);
    rt_free(t);

    /* Duplicate keys: the last one wins (Go encoding/json). */
    t = sign("HS256", SECRET, "{\"sub\":\"first\",\"sub\":\"last\"}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_str(c.user, "last");
    node_jwt_claims_cleanup(&c);
    rt_free(t);
    node_jwt_verifier_free(v);

    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    cfg.user_id_claim = "user_id";
    v = verifier(&cfg, false);
    t = sign("HS256", SECRET, "{\"sub\":\"s\",\"user_id\":\"u1\"}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_str(c.user, "u1");
    node_jwt_claims_cleanup(&c);
    rt_free(t);
    t = sign("HS256", SECRET, "{\"sub\":\"s\"}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_str(c.user, "");
    node_jwt_claims_cleanup(&c);
    rt_free(t);
    assert_int_equal(hs_conn(v, "{\"user_id\":7}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"user_id\":\"u\",\"sub\":7}"), RT_EINVAL);
    node_jwt_verifier_free(v);
}

static void test_info_raw_bytes(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    node_jwt_claims_t c;
    const char *info = "{\"n\":1.10,\"big\":1180591620717411303424,\"s\":\"\\u00e9\\/\"}";
    rt_buf_t p = RT_BUF_INIT;
    rt_buf_printf(&p, "{\"sub\":\"1\",\"info\":%s,\"meta\":{ \"m\" : [1.0, 2e5] }}", info);
    rt_buf_append_byte(&p, '\0');
    char *t = sign("HS256", SECRET, (const char *)p.p);
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_str(c.info, info);
    assert_false(c.info_binary);
    assert_non_null(c.meta);
    assert_str(c.meta->raw, "{ \"m\" : [1.0, 2e5] }");
    node_jwt_claims_cleanup(&c);
    rt_free(t);
    rt_buf_cleanup(&p);

    /* Any JSON type is accepted for info. */
    t = sign("HS256", SECRET, "{\"info\":\"text\"}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_str(c.info, "\"text\"");
    node_jwt_claims_cleanup(&c);
    rt_free(t);
    node_jwt_verifier_free(v);
}

static void test_b64info(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    node_jwt_claims_t c;
    /* Standard alphabet ('+', '/'), padding, and a JSON-escaped slash "\/". */
    char *t = sign("HS256", SECRET, "{\"info\":{\"x\":1},\"b64info\":\"+/8A\\/w==\"}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_true(c.info_binary);
    assert_int_equal(c.info.n, 4);
    assert_memory_equal(c.info.p, "\xfb\xff\x00\xff", 4);
    node_jwt_claims_cleanup(&c);
    rt_free(t);

    /* Empty b64info means "not set": info is used. */
    t = sign("HS256", SECRET, "{\"info\":{\"x\":1},\"b64info\":\"\"}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_false(c.info_binary);
    assert_str(c.info, "{\"x\":1}");
    node_jwt_claims_cleanup(&c);
    rt_free(t);

    assert_int_equal(hs_conn(v, "{\"b64info\":\"not base64!\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"b64info\":\"AAA\"}"), RT_EINVAL);  /* no padding */
    assert_int_equal(hs_conn(v, "{\"b64info\":\"AA-_\"}"), RT_EINVAL); /* URL alphabet */
    assert_int_equal(hs_conn(v, "{\"b64info\":123}"), RT_EINVAL);
    node_jwt_verifier_free(v);
}

static void test_connect_claims(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    node_jwt_claims_t c;
    char *t = sign("HS256", SECRET,
                   "{\"sub\":\"1\",\"channels\":[\"news\",\"chat:1\"],\"subs\":{\"ns:a\":"
                   "{\"info\":[1.50],\"b64data\":\"aGk=\",\"override\":{\"presence\":{\"value\":"
                   "true},\"join_leave\":{\"value\":false},\"force_recovery\":{}}},\"b\":null}}");
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_non_null(c.channels);
    assert_int_equal(c.channels->type, RT_JSON_ARRAY);
    assert_int_equal(c.channels->count, 2);
    assert_str(c.channels->child->raw, "\"news\"");
    assert_non_null(c.subs);
    assert_int_equal(c.subs->count, 2);
    const rt_json_t *m = c.subs->child;
    assert_str(m->key, "ns:a");
    node_jwt_sub_opts_t o;
    assert_int_equal(node_jwt_sub_opts_parse(m, &o), 0);
    assert_str(o.info, "[1.50]");
    assert_false(o.info_binary);
    assert_str(o.data, "hi");
    assert_true(o.data_binary);
    assert_int_equal(o.override.presence, NODE_JWT_TRUE);
    assert_int_equal(o.override.join_leave, NODE_JWT_FALSE);
    assert_int_equal(o.override.force_recovery, NODE_JWT_FALSE);
    assert_int_equal(o.override.force_positioning, NODE_JWT_UNSET);
    assert_int_equal(o.override.force_push_join_leave, NODE_JWT_UNSET);
    node_jwt_sub_opts_cleanup(&o);
    assert_int_equal(node_jwt_sub_opts_parse(m->next, &o), 0); /* null options */
    assert_null(o.info.p);
    assert_int_equal(o.override.presence, NODE_JWT_UNSET);
    node_jwt_sub_opts_cleanup(&o);
    node_jwt_claims_cleanup(&c);
    rt_free(t);

    /* Connection tokens must not carry a channel. */
    assert_int_equal(hs_conn(v, "{\"channel\":\"news\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"channel\":5}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"channel\":\"\"}"), 0);
    /* Types. */
    assert_int_equal(hs_conn(v, "{\"channels\":\"news\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"channels\":[\"a\",1]}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"subs\":[]}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"subs\":{\"a\":1}}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"subs\":{\"a\":{\"b64info\":\"%%%\"}}}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"subs\":{\"a\":{\"b64data\":\"%%%\"}}}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"subs\":{\"a\":{\"override\":{\"presence\":true}}}}"),
                     RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"subs\":{\"a\":{\"override\":{\"presence\":{\"value\":1}}}}}"),
                     RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"subs\":{\"a\":{\"override\":[]}}}"), RT_EINVAL);
    /* Unknown claims and unknown override fields are ignored. */
    assert_int_equal(hs_conn(v, "{\"x\":{\"y\":[]},\"subs\":{\"a\":{\"override\":{\"z\":1}}}}"), 0);
    assert_int_equal(node_jwt_sub_opts_parse(NULL, &o), 0);
    node_jwt_sub_opts_cleanup(&o);
    node_jwt_verifier_free(v);
}

static void test_subscribe_claims(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    node_jwt_claims_t c;
    char *t = sign("HS256", SECRET,
                   "{\"sub\":\"42\",\"channel\":\"$ns:ch\\u0041\",\"client\":\"cid\","
                   "\"info\":{\"a\":1.10},\"data\":{\"d\":[1,2]},\"exp\":1800000000,"
                   "\"override\":{\"force_positioning\":{\"value\":true}}}");
    assert_int_equal(node_jwt_verify_subscribe(v, rt_str_c(t), NOW, &c), 0);
    assert_str(c.user, "42");
    assert_str(c.channel, "$ns:chA");
    assert_str(c.client, "cid");
    assert_str(c.info, "{\"a\":1.10}");
    assert_str(c.data, "{\"d\":[1,2]}");
    assert_false(c.data_binary);
    assert_true(c.has_override);
    assert_int_equal(c.override.force_positioning, NODE_JWT_TRUE);
    assert_int_equal(c.override.presence, NODE_JWT_UNSET);
    assert_int_equal(c.expire_s, 1800000000);
    node_jwt_claims_cleanup(&c);
    node_jwt_claims_cleanup(&c); /* twice is harmless */
    rt_free(t);

    t = sign("HS256", SECRET, "{\"channel\":\"c\",\"data\":1,\"b64data\":\"AQID\"}");
    assert_int_equal(node_jwt_verify_subscribe(v, rt_str_c(t), NOW, &c), 0);
    assert_true(c.data_binary);
    assert_memory_equal(c.data.p, "\x01\x02\x03", 3);
    assert_false(c.has_override);
    assert_str(c.client, "");
    node_jwt_claims_cleanup(&c);
    rt_free(t);

    assert_int_equal(hs_sub(v, "{\"sub\":\"42\"}"), RT_EINVAL);
    assert_int_equal(hs_sub(v, "{\"channel\":\"\"}"), RT_EINVAL);
    assert_int_equal(hs_sub(v, "{\"channel\":null}"), RT_EINVAL);
    assert_int_equal(hs_sub(v, "{\"channel\":1}"), RT_EINVAL);
    assert_int_equal(hs_sub(v, "{\"channel\":\"c\",\"client\":1}"), RT_EINVAL);
    assert_int_equal(hs_sub(v, "{\"channel\":\"c\",\"b64data\":\"@@@@\"}"), RT_EINVAL);
    assert_int_equal(hs_sub(v, "{\"channel\":\"c\",\"b64info\":\"@@@@\"}"), RT_EINVAL);
    assert_int_equal(hs_sub(v, "{\"channel\":\"c\",\"override\":5}"), RT_EINVAL);
    assert_int_equal(hs_sub(v, "{\"channel\":\"c\",\"sub\":5}"), RT_EINVAL);
    node_jwt_verifier_free(v);
}

/* ---- hostile tokens (issue 7) -------------------------------------------------------- */

/* The token with its signature segment replaced by b64url(sig). */
static char *with_signature(const char *tok, const void *sig, size_t n)
{
    const char *dot = strrchr(tok, '.');
    rt_buf_t out = RT_BUF_INIT;
    rt_buf_append(&out, tok, (size_t)(dot - tok + 1));
    rt_b64_encode(&out, sig, n, true, false);
    rt_buf_append_byte(&out, '\0');
    return (char *)out.p;
}

/* The decoded signature of tok. */
static void signature_of(const char *tok, rt_buf_t *out)
{
    const char *dot = strrchr(tok, '.');
    assert_int_equal(rt_b64_decode(out, dot + 1, strlen(dot + 1), true), 0);
}

/* A MAC or signature that is a prefix of, or longer than, the right one is not the right
 * one; neither is an all-zero one of the right length. */
static void test_signature_lengths(void **state)
{
    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    cfg.rsa_public_key = K.rsa_pub;
    cfg.ecdsa_public_key = K.ec_pub[0];
    node_jwt_verifier_t *v = verifier(&cfg, false);
    const char *algs[] = {"HS256", "RS256", "ES256"};
    const char *keys[] = {SECRET, K.rsa_priv, K.ec_priv[0]};
    for (int a = 0; a < 3; a++) {
        char *good = sign(algs[a], keys[a], "{\"sub\":\"42\"}");
        assert_int_equal(vconn(v, good), 0);
        rt_buf_t sig = RT_BUF_INIT;
        signature_of(good, &sig);
        size_t lens[] = {0, 1, sig.len / 2, sig.len - 1};
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            char *t = with_signature(good, sig.p, lens[i]);
            assert_int_equal(vconn(v, t), RT_EINVAL);
            rt_free(t);
        }
        rt_buf_t longer = RT_BUF_INIT;
        rt_buf_append(&longer, sig.p, sig.len);
        rt_buf_append_byte(&longer, 0);
        char *t = with_signature(good, longer.p, longer.len);
        assert_int_equal(vconn(v, t), RT_EINVAL);
        rt_free(t);
        memset(longer.p, 0, sig.len);
        t = with_signature(good, longer.p, sig.len);
        assert_int_equal(vconn(v, t), RT_EINVAL);
        rt_free(t);
        rt_buf_cleanup(&longer);
        rt_buf_cleanup(&sig);
        rt_free(good);
    }
    node_jwt_verifier_free(v);
}

/* JWS ECDSA signatures are raw r||s (RFC 7518 §3.4); the DER form OpenSSL produces is not
 * one, even though it verifies the same values. */
static void test_ecdsa_der_signature_refused(void **state)
{
    node_token_config_t cfg = cfg_empty();
    cfg.ecdsa_public_key = K.ec_pub[0];
    node_jwt_verifier_t *v = verifier(&cfg, false);
    char *good = sign("ES256", K.ec_priv[0], "{\"sub\":\"42\"}");
    rt_buf_t raw = RT_BUF_INIT;
    signature_of(good, &raw);
    assert_int_equal(raw.len, 64);
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn((const unsigned char *)raw.p, 32, NULL);
    BIGNUM *s = BN_bin2bn((const unsigned char *)raw.p + 32, 32, NULL);
    assert_int_equal(ECDSA_SIG_set0(es, r, s), 1);
    unsigned char *der = NULL;
    int n = i2d_ECDSA_SIG(es, &der);
    assert_true(n > 0);
    char *t = with_signature(good, der, (size_t)n);
    assert_int_equal(vconn(v, t), RT_EINVAL);
    rt_free(t);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    rt_buf_cleanup(&raw);
    rt_free(good);
    node_jwt_verifier_free(v);
}

/* The confusion attack with every form of the public key an attacker might try as the HMAC
 * secret (PEM as configured, without its final newline, DER), with and without an HMAC
 * secret configured next to the RSA key. */
static void test_alg_confusion_key_forms(void **state)
{
    BIO *in = BIO_new_mem_buf(K.rsa_pub, -1);
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL);
    BIO_free(in);
    assert_non_null(pkey);
    unsigned char *der = NULL;
    int der_n = i2d_PUBKEY(pkey, &der);
    assert_true(der_n > 0);
    EVP_PKEY_free(pkey);
    char *pem_trimmed = rt_strdup(K.rsa_pub);
    pem_trimmed[strlen(pem_trimmed) - 1] = '\0';
    const char *payload = "{\"sub\":\"admin\"}";

    for (int with_hmac = 0; with_hmac < 2; with_hmac++) {
        node_token_config_t cfg = cfg_empty();
        cfg.rsa_public_key = K.rsa_pub;
        if (with_hmac)
            cfg.hmac_secret_key = SECRET;
        node_jwt_verifier_t *v = verifier(&cfg, false);
        const char *algs[] = {"HS256", "HS384", "HS512"};
        for (int a = 0; a < 3; a++) {
            rt_buf_t out = RT_BUF_INIT;
            assert_int_equal(node_jwt_sign(algs[a], rt_str_from((const char *)der, (size_t)der_n),
                                           rt_str_c(payload), &out),
                             0);
            assert_int_equal(
                node_jwt_verify_connect(v, rt_buf_str(&out), NOW, &(node_jwt_claims_t){0}),
                RT_EINVAL);
            rt_buf_cleanup(&out);
            char *t = sign(algs[a], pem_trimmed, payload);
            assert_int_equal(vconn(v, t), RT_EINVAL);
            rt_free(t);
            t = sign(algs[a], K.rsa_pub, payload);
            assert_int_equal(vconn(v, t), RT_EINVAL);
            rt_free(t);
            /* An RS256 header over an HMAC made with the public key. */
            t = sign_hdr("{\"alg\":\"RS256\"}", algs[a], K.rsa_pub, payload);
            assert_int_equal(vconn(v, t), RT_EINVAL);
            rt_free(t);
        }
        node_jwt_verifier_free(v);
    }
    OPENSSL_free(der);
    rt_free(pem_trimmed);
}

/* Repeated names: the last copy wins everywhere, in the header as in the claims (Go's
 * decoder, which Centrifugo uses, does the same; RFC 7519 §4 allows it). What matters is
 * that the alg we check and the alg we verify with are one and the same, and that every
 * claim check sees the copy the caller gets. */
static void test_duplicate_names(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    const char *payload = "{\"sub\":\"42\"}";
    struct {
        const char *header;
        int want;
    } hdr[] = {
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", RT_EINVAL},
        {"{\"alg\":\"HS256\",\"\\u0061lg\":\"none\"}", RT_EINVAL},
        {"{\"alg\":\"HS512\",\"alg\":\"HS256\"}", 0}, /* signed with HS256: the last one */
        {"{\"alg\":\"HS256\",\"alg\":\"HS512\"}", RT_EINVAL},
        {"{\"alg\":\"none\",\"alg\":\"HS256\"}", 0},
    };
    for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++) {
        char *t = sign_hdr(hdr[i].header, "HS256", SECRET, payload);
        if (vconn(v, t) != hdr[i].want)
            fail_msg("header %s: want %d", hdr[i].header, hdr[i].want);
        rt_free(t);
    }

    char p[160];
    snprintf(p, sizeof(p), "{\"exp\":1800000000,\"exp\":%lld}", NOW - 1);
    assert_int_equal(hs_conn(v, p), RT_EEXPIRED);
    snprintf(p, sizeof(p), "{\"exp\":%lld,\"exp\":1800000000}", NOW - 1);
    assert_int_equal(hs_conn(v, p), 0);
    snprintf(p, sizeof(p), "{\"nbf\":1,\"nbf\":%lld}", NOW + 60);
    assert_int_equal(hs_conn(v, p), RT_EEXPIRED);
    /* A wrongly typed last copy is a wrongly typed claim. */
    assert_int_equal(hs_conn(v, "{\"sub\":\"alice\",\"sub\":5}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"sub\":\"alice\",\"s\\u0075b\":null}"), 0);

    node_jwt_claims_t c;
    char *t = sign("HS256", SECRET,
                   "{\"channel\":\"a\",\"sub\":\"u\",\"channel\":\"b\","
                   "\"client\":\"c1\",\"client\":\"c2\"}");
    assert_int_equal(node_jwt_verify_subscribe(v, rt_str_c(t), NOW, &c), 0);
    assert_str(c.channel, "b");
    assert_str(c.client, "c2");
    node_jwt_claims_cleanup(&c);
    rt_free(t);
    /* A connection token cannot hide a channel claim behind a null copy, nor the reverse. */
    assert_int_equal(hs_conn(v, "{\"channel\":null,\"channel\":\"x\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"channel\":\"x\",\"channel\":null}"), 0);
    node_jwt_verifier_free(v);

    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    cfg.audience = "rotor";
    v = verifier(&cfg, false);
    assert_int_equal(hs_conn(v, "{\"aud\":\"rotor\",\"aud\":\"evil\"}"), RT_EINVAL);
    assert_int_equal(hs_conn(v, "{\"aud\":\"evil\",\"aud\":\"rotor\"}"), 0);
    node_jwt_verifier_free(v);
}

/* Far beyond the size limit is refused before decoding; a payload of many small claims
 * within the limit is handled. */
static void test_huge_tokens(void **state)
{
    node_jwt_verifier_t *v = hmac_verifier();
    rt_buf_t b = RT_BUF_INIT;
    while (b.len < (4u << 20))
        rt_buf_append_cstr(&b, "eyJhbGciOiJIUzI1NiJ9");
    node_jwt_claims_t c;
    assert_int_equal(node_jwt_verify_connect(v, rt_buf_str(&b), NOW, &c), RT_EINVAL);
    node_jwt_claims_cleanup(&c);
    rt_buf_reset(&b);
    /* Three huge segments with the dots in place. */
    for (int seg = 0; seg < 3; seg++) {
        for (int i = 0; i < 100000; i++)
            rt_buf_append_byte(&b, 'A');
        if (seg < 2)
            rt_buf_append_byte(&b, '.');
    }
    assert_int_equal(node_jwt_verify_connect(v, rt_buf_str(&b), NOW, &c), RT_EINVAL);
    node_jwt_claims_cleanup(&c);
    rt_buf_reset(&b);

    rt_buf_append_byte(&b, '{');
    for (int i = 0; i < 3000; i++)
        rt_buf_printf(&b, "\"k%d\":%d,", i, i);
    rt_buf_append_cstr(&b, "\"sub\":\"42\"}");
    rt_buf_append_byte(&b, '\0');
    char *t = sign("HS256", SECRET, (const char *)b.p);
    assert_true(strlen(t) <= NODE_JWT_MAX_TOKEN_BYTES);
    assert_int_equal(node_jwt_verify_connect(v, rt_str_c(t), NOW, &c), 0);
    assert_str(c.user, "42");
    node_jwt_claims_cleanup(&c);
    rt_free(t);
    rt_buf_cleanup(&b);
    node_jwt_verifier_free(v);
}

/* ---- verifier construction ----------------------------------------------------------- */

static char *pkcs1_public_pem(const char *spki_pem)
{
    BIO *in = BIO_new_mem_buf(spki_pem, -1);
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL);
    BIO_free(in);
    assert_non_null(pkey);
    OSSL_ENCODER_CTX *ectx =
        OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific", NULL);
    assert_non_null(ectx);
    BIO *out = BIO_new(BIO_s_mem());
    assert_int_equal(OSSL_ENCODER_to_bio(ectx, out), 1);
    OSSL_ENCODER_CTX_free(ectx);
    EVP_PKEY_free(pkey);
    return bio_string(out);
}

static char *self_signed_cert_pem(const char *priv_pem)
{
    BIO *in = BIO_new_mem_buf(priv_pem, -1);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
    BIO_free(in);
    assert_non_null(pkey);
    X509 *x = X509_new();
    assert_int_equal(X509_set_version(x, 2), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"rotor", -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_int_equal(X509_set_pubkey(x, pkey), 1);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    BIO *out = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(out, x), 1);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return bio_string(out);
}

static void test_verifier_new_errors(void **state)
{
    node_jwt_verifier_t *v = (node_jwt_verifier_t *)0x1;
    rt_buf_t err = RT_BUF_INIT;
    node_token_config_t cfg = cfg_empty();

    cfg.rsa_public_key = "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n";
    assert_int_equal(node_jwt_verifier_new(&cfg, false, &v, &err), RT_EINVAL);
    assert_null(v);
    assert_true(err.len > 0);
    rt_buf_reset(&err);

    cfg = cfg_empty();
    cfg.rsa_public_key = K.ec_pub[0];
    assert_int_equal(node_jwt_verifier_new(&cfg, false, &v, &err), RT_EINVAL);
    rt_buf_reset(&err);

    cfg = cfg_empty();
    cfg.ecdsa_public_key = K.rsa_pub;
    assert_int_equal(node_jwt_verifier_new(&cfg, false, &v, &err), RT_EINVAL);
    rt_buf_reset(&err);

    cfg = cfg_empty();
    cfg.ecdsa_public_key = K.k1_pub;
    assert_int_equal(node_jwt_verifier_new(&cfg, false, &v, &err), RT_EINVAL);
    rt_buf_reset(&err);

    cfg = cfg_empty();
    cfg.audience_regex = "(unclosed";
    assert_int_equal(node_jwt_verifier_new(&cfg, false, &v, NULL), RT_EINVAL);
    cfg = cfg_empty();
    cfg.issuer_regex = "[";
    assert_int_equal(node_jwt_verifier_new(&cfg, false, &v, &err), RT_EINVAL);
    rt_buf_cleanup(&err);

    /* A private key is not a public key. */
    cfg = cfg_empty();
    cfg.rsa_public_key = K.rsa_priv;
    assert_int_equal(node_jwt_verifier_new(&cfg, false, &v, NULL), RT_EINVAL);

    /* PKCS#1 "RSA PUBLIC KEY" and a certificate are accepted besides SubjectPublicKeyInfo. */
    char *pkcs1 = pkcs1_public_pem(K.rsa_pub);
    char *cert = self_signed_cert_pem(K.ec_priv[2]);
    assert_non_null(strstr(pkcs1, "BEGIN RSA PUBLIC KEY"));
    cfg = cfg_empty();
    cfg.rsa_public_key = pkcs1;
    cfg.ecdsa_public_key = cert;
    assert_int_equal(node_jwt_verifier_new(&cfg, false, &v, NULL), 0);
    char *t = sign("RS256", K.rsa_priv, "{}");
    assert_int_equal(vconn(v, t), 0);
    rt_free(t);
    t = sign("ES512", K.ec_priv[2], "{}");
    assert_int_equal(vconn(v, t), 0);
    rt_free(t);
    node_jwt_verifier_free(v);
    rt_free(pkcs1);
    rt_free(cert);
    node_jwt_verifier_free(NULL);
}

static void test_sign_errors(void **state)
{
    rt_buf_t out = RT_BUF_INIT;
    rt_str_t p = RT_STR("{}");
    assert_int_equal(node_jwt_sign("HS256", RT_STR(""), p, &out), RT_EINVAL);
    assert_int_equal(node_jwt_sign("RS256", rt_str_c(K.ec_priv[0]), p, &out), RT_EINVAL);
    assert_int_equal(node_jwt_sign("RS256", rt_str_c(K.rsa_pub), p, &out), RT_EINVAL);
    assert_int_equal(node_jwt_sign("ES256", rt_str_c(K.ec_priv[1]), p, &out), RT_EINVAL);
    assert_int_equal(node_jwt_sign("ES512", rt_str_c(K.rsa_priv), p, &out), RT_EINVAL);
    assert_int_equal(node_jwt_sign("RS256", RT_STR("garbage"), p, &out), RT_EINVAL);
    assert_int_equal(out.len, 0);
    /* The signed payload is byte-exact. */
    assert_int_equal(node_jwt_sign("HS256", RT_STR(SECRET), RT_STR("{ \"n\" : 1.10 }"), &out), 0);
    rt_buf_append_byte(&out, '\0');
    const char *tok = (const char *)out.p;
    const char *p1 = strchr(tok, '.') + 1;
    const char *p2 = strchr(p1, '.');
    rt_buf_t dec = RT_BUF_INIT;
    assert_int_equal(rt_b64_decode(&dec, p1, (size_t)(p2 - p1), true), 0);
    assert_str(rt_buf_str(&dec), "{ \"n\" : 1.10 }");
    /* HS256 signature is 32 bytes = 43 base64url characters, no padding. */
    assert_int_equal(strlen(p2 + 1), 43);
    rt_buf_cleanup(&dec);
    rt_buf_cleanup(&out);
}

/* ---- threads ------------------------------------------------------------------------- */

typedef struct thread_arg {
    const node_jwt_verifier_t *v;
    const char *toks[3];
    int failures;
} thread_arg_t;

static void *verify_loop(void *p)
{
    thread_arg_t *a = p;
    for (int i = 0; i < 200; i++) {
        if (vconn(a->v, a->toks[i % 3]) != 0)
            a->failures++;
    }
    return NULL;
}

static void test_concurrent_verify(void **state)
{
    node_token_config_t cfg = cfg_empty();
    cfg.hmac_secret_key = SECRET;
    cfg.rsa_public_key = K.rsa_pub;
    cfg.ecdsa_public_key = K.ec_pub[0];
    cfg.audience_regex = "^a$";
    node_jwt_verifier_t *v = verifier(&cfg, false);
    const char *payload = "{\"aud\":\"a\"}";
    char *t0 = sign("HS256", SECRET, payload);
    char *t1 = sign("RS256", K.rsa_priv, payload);
    char *t2 = sign("ES256", K.ec_priv[0], payload);
    thread_arg_t args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg_t){v, {t0, t1, t2}, 0};
        assert_int_equal(pthread_create(&th[i], NULL, verify_loop, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    rt_free(t0);
    rt_free(t1);
    rt_free(t2);
    node_jwt_verifier_free(v);
}

int run_jwt(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_alg),
        cmocka_unit_test(test_wrong_keys),
        cmocka_unit_test(test_alg_without_key),
        cmocka_unit_test(test_alg_none_and_unknown),
        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_previous_hmac_key),
        cmocka_unit_test(test_skip_verify),
        cmocka_unit_test(test_aud_iss),
        cmocka_unit_test(test_aud_iss_regex),
        cmocka_unit_test(test_exp_nbf),
        cmocka_unit_test(test_expire_at),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_sub_and_user_claim),
        cmocka_unit_test(test_info_raw_bytes),
        cmocka_unit_test(test_b64info),
        cmocka_unit_test(test_connect_claims),
        cmocka_unit_test(test_subscribe_claims),
        cmocka_unit_test(test_verifier_new_errors),
        cmocka_unit_test(test_sign_errors),
        cmocka_unit_test(test_concurrent_verify),
        cmocka_unit_test(test_signature_lengths),
        cmocka_unit_test(test_ecdsa_der_signature_refused),
        cmocka_unit_test(test_alg_confusion_key_forms),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_huge_tokens),
    };
    return cmocka_run_group_tests_name("jwt", tests, setup_keys, teardown_keys);
}

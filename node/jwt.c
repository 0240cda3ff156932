#include "node/jwt.h"

#include <math.h>
#include <regex.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "node/base/alloc.h"
#include "node/base/b64.h"
#include "node/base/err.h"
#include "node/base/log.h"

typedef enum alg_family {
    FAMILY_NONE,
    FAMILY_HS,
    FAMILY_RS,
    FAMILY_ES,
} alg_family_t;

typedef struct alg_info {
    const char *name;
    alg_family_t family;
    const EVP_MD *(*md)(void);
    int curve_nid;       /* ES: the only curve this alg may use */
    size_t es_coord_len; /* ES: bytes of r and of s in the JWS signature (RFC 7518 §3.4) */
} alg_info_t;

static const alg_info_t algs[] = {
    {"HS256", FAMILY_HS, EVP_sha256, NID_undef, 0},
    {"HS384", FAMILY_HS, EVP_sha384, NID_undef, 0},
    {"HS512", FAMILY_HS, EVP_sha512, NID_undef, 0},
    {"RS256", FAMILY_RS, EVP_sha256, NID_undef, 0},
    {"RS384", FAMILY_RS, EVP_sha384, NID_undef, 0},
    {"RS512", FAMILY_RS, EVP_sha512, NID_undef, 0},
    {"ES256", FAMILY_ES, EVP_sha256, NID_X9_62_prime256v1, 32},
    {"ES384", FAMILY_ES, EVP_sha384, NID_secp384r1, 48},
    {"ES512", FAMILY_ES, EVP_sha512, NID_secp521r1, 66},
};

static const alg_info_t alg_none = {"none", FAMILY_NONE, NULL, NID_undef, 0};

struct node_jwt_verifier {
    bool skip_verify;
    rt_buf_t hmac;                   /* owned secret bytes; len 0 = not configured */
    rt_buf_t hmac_prev;              /* owned; len 0 = not configured */
    int64_t hmac_prev_valid_until_s; /* Unix s; 0 = no deadline */
    EVP_PKEY *rsa;                   /* owned RSA public key, or NULL */
    EVP_PKEY *ec;                    /* owned EC public key, or NULL */
    int ec_curve_nid;                /* curve of ec */
    char *audience;                  /* owned, NULL = unchecked */
    char *issuer;                    /* owned, NULL = unchecked */
    bool has_aud_re;
    bool has_iss_re;
    regex_t aud_re;   /* compiled audience_regex when has_aud_re */
    regex_t iss_re;   /* compiled issuer_regex when has_iss_re */
    char *user_claim; /* owned claim name holding the user id ("sub" by default) */
};

/* Peer-caused: logged at DEBUG only, never with token bytes. */
static int reject(const char *why)
{
    RT_LOG_DEBUG("jwt rejected reason=\"%s\"", why);
    return RT_EINVAL;
}

static const alg_info_t *alg_lookup(rt_str_t name)
{
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        if (rt_str_eq_c(name, algs[i].name))
            return &algs[i];
    }
    if (rt_str_eq_c(name, "none"))
        return &alg_none;
    return NULL;
}

/* ---- keys ---------------------------------------------------------------------------- */

static bool is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Never prompts on a terminal for an encrypted PEM: there is no passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *ud)
{
    return 0;
}

static int pkey_curve_nid(EVP_PKEY *pkey)
{
    char name[64];
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name),
                                       &len) != 1)
        return NID_undef;
    return OBJ_txt2nid(name);
}

static bool curve_supported(int nid)
{
    return nid == NID_X9_62_prime256v1 || nid == NID_secp384r1 || nid == NID_secp521r1;
}

/* SubjectPublicKeyInfo ("PUBLIC KEY"), PKCS#1 ("RSA PUBLIC KEY") or a certificate. */
static EVP_PKEY *load_public_pem(const char *pem)
{
    EVP_PKEY *pkey = NULL;
    const unsigned char *data = (const unsigned char *)pem;
    size_t len = strlen(pem);
    OSSL_DECODER_CTX *dctx =
        OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL, EVP_PKEY_PUBLIC_KEY, NULL, NULL);
    if (dctx != NULL) {
        if (OSSL_DECODER_from_data(dctx, &data, &len) != 1)
            pkey = NULL;
        OSSL_DECODER_CTX_free(dctx);
    }
    if (pkey == NULL) {
        BIO *bio = BIO_new_mem_buf(pem, -1);
        if (bio != NULL) {
            X509 *cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
            if (cert != NULL) {
                pkey = X509_get_pubkey(cert);
                X509_free(cert);
            }
            BIO_free(bio);
        }
    }
    ERR_clear_error();
    return pkey;
}

static int compile_regex(regex_t *re, const char *pattern, const char *what, rt_buf_t *err)
{
    int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof(msg));
        if (err != NULL)
            rt_buf_printf(err, "%s: invalid regex: %s", what, msg);
        return RT_EINVAL;
    }
    return 0;
}

int node_jwt_verifier_new(const node_token_config_t *cfg, bool skip_verify,
                          node_jwt_verifier_t **out, rt_buf_t *err)
{
    node_jwt_verifier_t *v = RT_NEW(node_jwt_verifier_t);
    v->skip_verify = skip_verify;
    v->ec_curve_nid = NID_undef;
    *out = NULL;

    if (is_set(cfg->hmac_secret_key))
        rt_buf_append_cstr(&v->hmac, cfg->hmac_secret_key);
    if (is_set(cfg->hmac_previous_secret_key))
        rt_buf_append_cstr(&v->hmac_prev, cfg->hmac_previous_secret_key);
    v->hmac_prev_valid_until_s = cfg->hmac_previous_secret_key_valid_until;

    if (is_set(cfg->rsa_public_key)) {
        v->rsa = load_public_pem(cfg->rsa_public_key);
        if (v->rsa == NULL || !EVP_PKEY_is_a(v->rsa, "RSA")) {
            if (err != NULL)
                rt_buf_append_cstr(err, "rsa_public_key: not a PEM RSA public key");
            goto fail;
        }
    }
    if (is_set(cfg->ecdsa_public_key)) {
        v->ec = load_public_pem(cfg->ecdsa_public_key);
        if (v->ec == NULL || !EVP_PKEY_is_a(v->ec, "EC")) {
            if (err != NULL)
                rt_buf_append_cstr(err, "ecdsa_public_key: not a PEM ECDSA public key");
            goto fail;
        }
        v->ec_curve_nid = pkey_curve_nid(v->ec);
        if (!curve_supported(v->ec_curve_nid)) {
            if (err != NULL)
                rt_buf_append_cstr(err, "ecdsa_public_key: curve is not P-256, P-384 or P-521");
            goto fail;
        }
    }
    if (is_set(cfg->audience))
        v->audience = rt_strdup(cfg->audience);
    if (is_set(cfg->issuer))
        v->issuer = rt_strdup(cfg->issuer);
    if (is_set(cfg->audience_regex)) {
        if (compile_regex(&v->aud_re, cfg->audience_regex, "audience_regex", err) != 0)
            goto fail;
        v->has_aud_re = true;
    }
    if (is_set(cfg->issuer_regex)) {
        if (compile_regex(&v->iss_re, cfg->issuer_regex, "issuer_regex", err) != 0)
            goto fail;
        v->has_iss_re = true;
    }
    v->user_claim = rt_strdup(is_set(cfg->user_id_claim) ? cfg->user_id_claim : "sub");
    *out = v;
    return 0;

fail:
    node_jwt_verifier_free(v);
    return RT_EINVAL;
}

void node_jwt_verifier_free(node_jwt_verifier_t *v)
{
    if (v == NULL)
        return;
    /* Secrets do not linger in freed heap memory. */
    if (v->hmac.p != NULL)
        OPENSSL_cleanse(v->hmac.p, v->hmac.cap);
    if (v->hmac_prev.p != NULL)
        OPENSSL_cleanse(v->hmac_prev.p, v->hmac_prev.cap);
    rt_buf_cleanup(&v->hmac);
    rt_buf_cleanup(&v->hmac_prev);
    EVP_PKEY_free(v->rsa);
    EVP_PKEY_free(v->ec);
    rt_free(v->audience);
    rt_free(v->issuer);
    if (v->has_aud_re)
        regfree(&v->aud_re);
    if (v->has_iss_re)
        regfree(&v->iss_re);
    rt_free(v->user_claim);
    rt_free(v);
}

/* ---- signatures ---------------------------------------------------------------------- */

static bool hmac_ok(const alg_info_t *a, const rt_buf_t *key, rt_str_t msg, rt_str_t sig)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(a->md(), key->p, (int)key->len, (const unsigned char *)msg.p, msg.n, mac, &len) ==
        NULL) {
        ERR_clear_error();
        return false;
    }
    return sig.n == len && CRYPTO_memcmp(mac, sig.p, len) == 0;
}

/* EVP verification of sig (DER for ECDSA, raw for RSA PKCS#1 v1.5) over msg. */
static bool evp_verify(const alg_info_t *a, EVP_PKEY *pkey, rt_str_t msg, const unsigned char *sig,
                       size_t sig_len)
{
    bool ok = false;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        goto out;
    if (EVP_DigestVerifyInit(ctx, &pctx, a->md(), NULL, pkey) != 1)
        goto out;
    if (a->family == FAMILY_RS && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        goto out;
    ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)msg.p, msg.n) == 1;
out:
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* JWS ECDSA signatures are r || s, each zero-padded to the curve size; OpenSSL wants DER. */
static bool es_ok(const alg_info_t *a, EVP_PKEY *pkey, rt_str_t msg, rt_str_t sig)
{
    if (sig.n != 2 * a->es_coord_len)
        return false;
    const unsigned char *raw = (const unsigned char *)sig.p;
    BIGNUM *r = BN_bin2bn(raw, (int)a->es_coord_len, NULL);
    BIGNUM *s = BN_bin2bn(raw + a->es_coord_len, (int)a->es_coord_len, NULL);
    ECDSA_SIG *es = ECDSA_SIG_new();
    unsigned char *der = NULL;
    bool ok = false;
    if (r == NULL || s == NULL || es == NULL) {
        BN_free(r);
        BN_free(s);
        goto out;
    }
    ECDSA_SIG_set0(es, r, s); /* es owns r and s now */
    int der_len = i2d_ECDSA_SIG(es, &der);
    if (der_len > 0)
        ok = evp_verify(a, pkey, msg, der, (size_t)der_len);
out:
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    ERR_clear_error();
    return ok;
}

/* The header alg alone picks the key; a family without a configured key never reaches
 * OpenSSL, which is what defeats algorithm confusion (an HS token keyed with the RSA PEM). */
static bool signature_ok(const node_jwt_verifier_t *v, const alg_info_t *a, rt_str_t msg,
                         rt_str_t sig, int64_t now_s)
{
    switch (a->family) {
    case FAMILY_HS:
        if (v->hmac.len > 0 && hmac_ok(a, &v->hmac, msg, sig))
            return true;
        if (v->hmac_prev.len > 0 &&
            (v->hmac_prev_valid_until_s == 0 || now_s < v->hmac_prev_valid_until_s))
            return hmac_ok(a, &v->hmac_prev, msg, sig);
        return false;
    case FAMILY_RS:
        return v->rsa != NULL && evp_verify(a, v->rsa, msg, (const unsigned char *)sig.p, sig.n);
    case FAMILY_ES:
        return v->ec != NULL && v->ec_curve_nid == a->curve_nid && es_ok(a, v->ec, msg, sig);
    case FAMILY_NONE:
        return false;
    }
    return false;
}

/* ---- compact serialization ----------------------------------------------------------- */

/* JWS segments are unpadded base64url (RFC 7515 §2). */
static int b64url_segment(rt_buf_t *out, rt_str_t seg)
{
    if (memchr(seg.p, '=', seg.n) != NULL)
        return RT_EINVAL;
    return rt_b64_decode(out, seg.p, seg.n, true);
}

/* Splits, decodes and (unless skip_verify) authenticates the token; on success the
 * payload is parsed into c->doc and its root is an object. */
static int decode_token(const node_jwt_verifier_t *v, rt_str_t token, int64_t now_s,
                        node_jwt_claims_t *c)
{
    if (token.n == 0 || token.n > NODE_JWT_MAX_TOKEN_BYTES)
        return reject("size");
    const char *d1 = memchr(token.p, '.', token.n);
    if (d1 == NULL)
        return reject("format");
    const char *end = token.p + token.n;
    const char *d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
        return reject("format");
    rt_str_t h = rt_str_from(token.p, (size_t)(d1 - token.p));
    rt_str_t p = rt_str_from(d1 + 1, (size_t)(d2 - d1 - 1));
    rt_str_t s = rt_str_from(d2 + 1, (size_t)(end - d2 - 1));
    if (h.n == 0 || p.n == 0)
        return reject("format");

    int rc = RT_EINVAL;
    rt_buf_t hbuf = RT_BUF_INIT;
    rt_buf_t sbuf = RT_BUF_INIT;
    rt_buf_t algbuf = RT_BUF_INIT;
    rt_json_doc_t hdoc = {0};
    if (b64url_segment(&hbuf, h) != 0 || b64url_segment(&sbuf, s) != 0) {
        rc = reject("base64url");
        goto out;
    }
    if (rt_json_parse(&hdoc, (const char *)hbuf.p, hbuf.len, 0) != 0 ||
        hdoc.root->type != RT_JSON_OBJECT) {
        rc = reject("header json");
        goto out;
    }
    if (rt_json_get_string(rt_json_get(hdoc.root, "alg"), &algbuf) != 0) {
        rc = reject("header alg");
        goto out;
    }
    if (!v->skip_verify) {
        const alg_info_t *a = alg_lookup(rt_buf_str(&algbuf));
        if (a == NULL || a->family == FAMILY_NONE) {
            rc = reject("alg");
            goto out;
        }
        rt_str_t signing_input = rt_str_from(token.p, h.n + 1 + p.n);
        if (!signature_ok(v, a, signing_input, rt_buf_str(&sbuf), now_s)) {
            rc = reject("signature");
            goto out;
        }
    }
    if (b64url_segment(&c->payload, p) != 0) {
        rc = reject("base64url");
        goto out;
    }
    if (rt_json_parse(&c->doc, (const char *)c->payload.p, c->payload.len, 0) != 0 ||
        c->doc.root->type != RT_JSON_OBJECT) {
        rc = reject("payload json");
        goto out;
    }
    rc = 0;
out:
    rt_json_doc_cleanup(&hdoc);
    rt_buf_cleanup(&hbuf);
    rt_buf_cleanup(&sbuf);
    rt_buf_cleanup(&algbuf);
    return rc;
}

/* ---- claims -------------------------------------------------------------------------- */

/* A claim, with JSON null folded into "absent". */
static const rt_json_t *claim(const rt_json_t *obj, const char *name)
{
    const rt_json_t *j = rt_json_get(obj, name);
    return j != NULL && j->type == RT_JSON_NULL ? NULL : j;
}

/* Unescaped string claim into *out (borrowing j's bytes or buf). Absent leaves *out. */
static int string_value(const rt_json_t *j, rt_buf_t *buf, rt_str_t *out)
{
    if (j == NULL)
        return 0;
    if (j->type != RT_JSON_STRING)
        return RT_EINVAL;
    int rc = rt_json_string_slice(j, out);
    if (rc == RT_EAGAIN) {
        rt_buf_reset(buf);
        rt_json_get_string(j, buf);
        *out = rt_buf_str(buf);
        if (out->p == NULL)
            *out = RT_STR("");
        rc = 0;
    }
    return rc;
}

/* NumericDate: any finite JSON number of seconds, fraction truncated. */
static int numeric_date(const rt_json_t *j, bool *has, double *exact, int64_t *out)
{
    if (j == NULL)
        return 0;
    if (j->type != RT_JSON_NUMBER)
        return RT_EINVAL;
    int64_t i;
    double d;
    if (rt_json_get_int64(j, &i) == 0) {
        d = (double)i;
    } else {
        /* 2^62 s is far beyond any date and keeps the int64 conversion defined. */
        if (rt_json_get_double(j, &d) != 0 || !(fabs(d) < 4611686018427387904.0))
            return RT_EINVAL;
        i = (int64_t)d;
    }
    *has = true;
    *exact = d;
    *out = i;
    return 0;
}

/* `info`/`b64info` style pair: raw JSON bytes, or decoded standard base64 (non-empty
 * b64 wins, as in the reference server). */
static int raw_or_b64(const rt_json_t *obj, const char *raw_name, const char *b64_name,
                      rt_buf_t *buf, rt_str_t *out, bool *binary)
{
    const rt_json_t *raw = claim(obj, raw_name);
    const rt_json_t *b64 = claim(obj, b64_name);
    *out = RT_STR_NULL;
    *binary = false;
    if (b64 != NULL) {
        if (b64->type != RT_JSON_STRING)
            return RT_EINVAL;
        rt_buf_t txt = RT_BUF_INIT;
        rt_json_get_string(b64, &txt);
        int rc = 0;
        if (txt.len > 0) {
            rt_buf_reset(buf);
            rc = rt_b64_decode(buf, (const char *)txt.p, txt.len, false);
            if (rc == 0) {
                *out = rt_buf_str(buf);
                *binary = true;
            }
        }
        rt_buf_cleanup(&txt);
        if (rc != 0 || *binary)
            return rc;
    }
    if (raw != NULL)
        *out = raw->raw;
    return 0;
}

static int bool_value(const rt_json_t *obj, const char *name, node_jwt_bool_t *out)
{
    const rt_json_t *bv = claim(obj, name);
    *out = NODE_JWT_UNSET;
    if (bv == NULL)
        return 0;
    if (bv->type != RT_JSON_OBJECT)
        return RT_EINVAL;
    const rt_json_t *val = claim(bv, "value");
    bool b = false; /* {"value" absent} is Go's zero BoolValue */
    if (val != NULL && rt_json_get_bool(val, &b) != 0)
        return RT_EINVAL;
    *out = b ? NODE_JWT_TRUE : NODE_JWT_FALSE;
    return 0;
}

static int override_parse(const rt_json_t *j, node_jwt_override_t *o)
{
    *o = (node_jwt_override_t){NODE_JWT_UNSET, NODE_JWT_UNSET, NODE_JWT_UNSET, NODE_JWT_UNSET,
                               NODE_JWT_UNSET};
    if (j == NULL)
        return 0;
    if (j->type != RT_JSON_OBJECT)
        return RT_EINVAL;
    if (bool_value(j, "presence", &o->presence) != 0 ||
        bool_value(j, "join_leave", &o->join_leave) != 0 ||
        bool_value(j, "force_push_join_leave", &o->force_push_join_leave) != 0 ||
        bool_value(j, "force_recovery", &o->force_recovery) != 0 ||
        bool_value(j, "force_positioning", &o->force_positioning) != 0)
        return RT_EINVAL;
    return 0;
}

int node_jwt_sub_opts_parse(const rt_json_t *opts, node_jwt_sub_opts_t *out)
{
    memset(out, 0, sizeof(*out));
    override_parse(NULL, &out->override);
    if (opts == NULL || opts->type == RT_JSON_NULL)
        return 0;
    if (opts->type != RT_JSON_OBJECT)
        return RT_EINVAL;
    if (raw_or_b64(opts, "info", "b64info", &out->info_buf, &out->info, &out->info_binary) != 0 ||
        raw_or_b64(opts, "data", "b64data", &out->data_buf, &out->data, &out->data_binary) != 0 ||
        override_parse(claim(opts, "override"), &out->override) != 0)
        return RT_EINVAL;
    return 0;
}

void node_jwt_sub_opts_cleanup(node_jwt_sub_opts_t *o)
{
    rt_buf_cleanup(&o->info_buf);
    rt_buf_cleanup(&o->data_buf);
}

static bool matches(const regex_t *re, rt_str_t s)
{
    /* regexec needs a C string; an embedded NUL could only hide the tail from it. */
    if (memchr(s.p, '\0', s.n) != NULL)
        return false;
    char *z = rt_str_dup(s);
    bool ok = regexec(re, z, 0, NULL, 0) == 0;
    rt_free(z);
    return ok;
}

static bool aud_value_ok(const node_jwt_verifier_t *v, const rt_json_t *s, bool *exact_hit,
                         bool *re_hit)
{
    rt_buf_t b = RT_BUF_INIT;
    rt_str_t str;
    bool ok = string_value(s, &b, &str) == 0;
    if (ok) {
        if (v->audience != NULL && rt_str_eq_c(str, v->audience))
            *exact_hit = true;
        if (v->has_aud_re && matches(&v->aud_re, str))
            *re_hit = true;
    }
    rt_buf_cleanup(&b);
    return ok;
}

/* `aud` must be a string or an array of strings whether or not it is checked, as the
 * reference server fails to decode anything else. */
static int check_aud(const node_jwt_verifier_t *v, const rt_json_t *aud)
{
    bool exact_hit = false, re_hit = false;
    if (aud != NULL) {
        if (aud->type == RT_JSON_STRING) {
            aud_value_ok(v, aud, &exact_hit, &re_hit);
        } else if (aud->type == RT_JSON_ARRAY) {
            for (const rt_json_t *e = aud->child; e != NULL; e = e->next) {
                if (e->type != RT_JSON_STRING)
                    return reject("aud type");
                aud_value_ok(v, e, &exact_hit, &re_hit);
            }
        } else {
            return reject("aud type");
        }
    }
    if (v->audience != NULL && !exact_hit)
        return reject("aud");
    if (v->has_aud_re && !re_hit)
        return reject("aud regex");
    return 0;
}

static int check_iss(const node_jwt_verifier_t *v, const rt_json_t *iss)
{
    rt_buf_t b = RT_BUF_INIT;
    rt_str_t str = RT_STR_NULL;
    int rc = string_value(iss, &b, &str);
    if (rc != 0)
        rc = reject("iss type");
    else if (v->issuer != NULL && (iss == NULL || !rt_str_eq_c(str, v->issuer)))
        rc = reject("iss");
    else if (v->has_iss_re && (iss == NULL || !matches(&v->iss_re, str)))
        rc = reject("iss regex");
    rt_buf_cleanup(&b);
    return rc;
}

typedef enum token_kind {
    KIND_CONNECT,
    KIND_SUBSCRIBE,
} token_kind_t;

static int verify(const node_jwt_verifier_t *v, token_kind_t kind, rt_str_t token, int64_t now_s,
                  node_jwt_claims_t *c)
{
    memset(c, 0, sizeof(*c));
    override_parse(NULL, &c->override);
    c->user = RT_STR("");
    c->client = RT_STR("");

    int rc = decode_token(v, token, now_s, c);
    if (rc != 0)
        return rc;
    const rt_json_t *root = c->doc.root;

    /* Claim types first: the reference server rejects a payload it cannot decode into its
     * claims struct before looking at any value. */
    bool has_nbf = false, has_iat = false;
    double exp_exact = 0, nbf_exact = 0, iat_exact = 0;
    int64_t nbf = 0, iat = 0;
    rt_str_t unused;
    rt_buf_t scratch = RT_BUF_INIT;
    if (string_value(claim(root, "sub"), &scratch, &unused) != 0 ||
        string_value(claim(root, "jti"), &scratch, &unused) != 0) {
        rt_buf_cleanup(&scratch);
        return reject("claim type");
    }
    rt_buf_cleanup(&scratch);
    if (string_value(claim(root, v->user_claim), &c->user_buf, &c->user) != 0)
        return reject("user claim type");
    if (numeric_date(claim(root, "exp"), &c->has_exp, &exp_exact, &c->exp) != 0 ||
        numeric_date(claim(root, "nbf"), &has_nbf, &nbf_exact, &nbf) != 0 ||
        numeric_date(claim(root, "iat"), &has_iat, &iat_exact, &iat) != 0)
        return reject("date type");
    const rt_json_t *expire_at = claim(root, "expire_at");
    if (expire_at != NULL) {
        if (rt_json_get_int64(expire_at, &c->expire_at) != 0)
            return reject("expire_at type");
        c->has_expire_at = true;
    }
    if (raw_or_b64(root, "info", "b64info", &c->info_buf, &c->info, &c->info_binary) != 0)
        return reject("info/b64info");
    const rt_json_t *channel = claim(root, "channel");
    if (string_value(channel, &c->channel_buf, &c->channel) != 0)
        return reject("channel type");

    if (kind == KIND_CONNECT) {
        c->channels = claim(root, "channels");
        if (c->channels != NULL) {
            if (c->channels->type != RT_JSON_ARRAY)
                return reject("channels type");
            for (const rt_json_t *e = c->channels->child; e != NULL; e = e->next) {
                if (e->type != RT_JSON_STRING)
                    return reject("channels type");
            }
        }
        c->subs = claim(root, "subs");
        if (c->subs != NULL) {
            if (c->subs->type != RT_JSON_OBJECT)
                return reject("subs type");
            for (const rt_json_t *m = c->subs->child; m != NULL; m = m->next) {
                node_jwt_sub_opts_t o;
                int orc = node_jwt_sub_opts_parse(m, &o);
                node_jwt_sub_opts_cleanup(&o);
                if (orc != 0)
                    return reject("subs options");
            }
        }
        c->meta = claim(root, "meta");
    } else {
        if (string_value(claim(root, "client"), &c->client_buf, &c->client) != 0)
            return reject("client type");
        if (raw_or_b64(root, "data", "b64data", &c->data_buf, &c->data, &c->data_binary) != 0)
            return reject("data/b64data");
        const rt_json_t *ov = claim(root, "override");
        c->has_override = ov != NULL;
        if (override_parse(ov, &c->override) != 0)
            return reject("override");
    }

    rc = check_aud(v, claim(root, "aud"));
    if (rc == 0)
        rc = check_iss(v, claim(root, "iss"));
    if (rc != 0)
        return rc;

    if (kind == KIND_CONNECT && c->channel.n > 0)
        return reject("channel claim in connection token");
    if (kind == KIND_SUBSCRIBE && c->channel.n == 0)
        return reject("no channel claim");

    if (c->has_exp && !(exp_exact > (double)now_s)) {
        RT_LOG_DEBUG("jwt expired exp=%lld now=%lld", (long long)c->exp, (long long)now_s);
        return RT_EEXPIRED;
    }
    if (has_nbf && nbf_exact > (double)now_s) {
        RT_LOG_DEBUG("jwt not yet valid nbf=%lld now=%lld", (long long)nbf, (long long)now_s);
        return RT_EEXPIRED;
    }
    c->expire_s = c->has_expire_at ? c->expire_at : c->has_exp ? c->exp : 0;
    return 0;
}

int node_jwt_verify_connect(const node_jwt_verifier_t *v, rt_str_t token, int64_t now_s,
                            node_jwt_claims_t *out)
{
    return verify(v, KIND_CONNECT, token, now_s, out);
}

int node_jwt_verify_subscribe(const node_jwt_verifier_t *v, rt_str_t token, int64_t now_s,
                              node_jwt_claims_t *out)
{
    return verify(v, KIND_SUBSCRIBE, token, now_s, out);
}

void node_jwt_claims_cleanup(node_jwt_claims_t *c)
{
    rt_json_doc_cleanup(&c->doc);
    rt_buf_cleanup(&c->payload);
    rt_buf_cleanup(&c->user_buf);
    rt_buf_cleanup(&c->channel_buf);
    rt_buf_cleanup(&c->client_buf);
    rt_buf_cleanup(&c->info_buf);
    rt_buf_cleanup(&c->data_buf);
    c->channels = NULL;
    c->subs = NULL;
    c->meta = NULL;
    c->user = RT_STR("");
    c->client = RT_STR("");
    c->channel = RT_STR_NULL;
    c->info = RT_STR_NULL;
    c->data = RT_STR_NULL;
}

/* ---- signing ------------------------------------------------------------------------- */

static EVP_PKEY *load_private_pem(rt_str_t pem)
{
    if (pem.n == 0 || pem.n > INT32_MAX)
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem.p, (int)pem.n);
    if (bio == NULL)
        return NULL;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

/* Appends the raw JWS signature of msg to sig. */
static int evp_sign(const alg_info_t *a, EVP_PKEY *pkey, rt_str_t msg, rt_buf_t *sig)
{
    int rc = RT_EINVAL;
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    ECDSA_SIG *es = NULL;
    size_t len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestSignInit(ctx, &pctx, a->md(), NULL, pkey) != 1)
        goto out;
    if (a->family == FAMILY_RS && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        goto out;
    if (EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)msg.p, msg.n) != 1)
        goto out;
    der = rt_malloc(len);
    if (EVP_DigestSign(ctx, der, &len, (const unsigned char *)msg.p, msg.n) != 1)
        goto out;
    if (a->family == FAMILY_RS) {
        rt_buf_append(sig, der, len);
        rc = 0;
        goto out;
    }
    const unsigned char *q = der;
    es = d2i_ECDSA_SIG(NULL, &q, (long)len);
    if (es == NULL)
        goto out;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(es, &r, &s);
    rt_buf_reserve(sig, 2 * a->es_coord_len);
    if (BN_bn2binpad(r, sig->p + sig->len, (int)a->es_coord_len) < 0 ||
        BN_bn2binpad(s, sig->p + sig->len + a->es_coord_len, (int)a->es_coord_len) < 0)
        goto out;
    sig->len += 2 * a->es_coord_len;
    rc = 0;
out:
    ECDSA_SIG_free(es);
    rt_free(der);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int node_jwt_sign_header(rt_str_t header_json, const char *alg, rt_str_t key, rt_str_t payload_json,
                         rt_buf_t *out)
{
    const alg_info_t *a = alg_lookup(rt_str_c(alg));
    if (a == NULL)
        return RT_EINVAL;

    rt_buf_t tok = RT_BUF_INIT;
    rt_buf_t sig = RT_BUF_INIT;
    EVP_PKEY *pkey = NULL;
    int rc = RT_EINVAL;
    rt_b64_encode(&tok, header_json.p, header_json.n, true, false);
    rt_buf_append_byte(&tok, '.');
    rt_b64_encode(&tok, payload_json.p, payload_json.n, true, false);
    rt_str_t msg = rt_buf_str(&tok);

    switch (a->family) {
    case FAMILY_NONE:
        rc = 0;
        break;
    case FAMILY_HS: {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (key.n > 0 && key.n <= INT32_MAX &&
            HMAC(a->md(), key.p, (int)key.n, (const unsigned char *)msg.p, msg.n, mac, &len) !=
                NULL) {
            rt_buf_append(&sig, mac, len);
            rc = 0;
        }
        ERR_clear_error();
        break;
    }
    case FAMILY_RS:
        pkey = load_private_pem(key);
        if (pkey != NULL && EVP_PKEY_is_a(pkey, "RSA"))
            rc = evp_sign(a, pkey, msg, &sig);
        break;
    case FAMILY_ES:
        pkey = load_private_pem(key);
        if (pkey != NULL && EVP_PKEY_is_a(pkey, "EC") && pkey_curve_nid(pkey) == a->curve_nid)
            rc = evp_sign(a, pkey, msg, &sig);
        break;
    }
    if (rc == 0) {
        rt_buf_append_str(out, msg);
        rt_buf_append_byte(out, '.');
        rt_b64_encode(out, sig.p, sig.len, true, false);
    }
    EVP_PKEY_free(pkey);
    rt_buf_cleanup(&tok);
    rt_buf_cleanup(&sig);
    return rc;
}

int node_jwt_sign(const char *alg, rt_str_t key, rt_str_t payload_json, rt_buf_t *out)
{
    if (alg_lookup(rt_str_c(alg)) == NULL)
        return RT_EINVAL;
    rt_buf_t header = RT_BUF_INIT;
    rt_buf_printf(&header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    int rc = node_jwt_sign_header(rt_buf_str(&header), alg, key, payload_json, out);
    rt_buf_cleanup(&header);
    return rc;
}

/* Connection and subscription JWT verification (PROTOCOL.md §7.1, §7.2) and signing.
 *
 * Compact JWS only (three base64url segments). The header and the claims are parsed with
 * our JSON parser, so `info`, `data`, `meta` and `subs` reach the caller as the exact bytes
 * of the token payload (1.10 stays 1.10, 2^70 stays exact). Signatures are checked with
 * OpenSSL EVP: libjwt's jwt_decode() parses claims with jansson, which rejects valid
 * payloads (integers beyond 64 bits) and would let the token header pick the algorithm;
 * here the header `alg` selects exactly one configured key before any crypto runs.
 *
 * Accepted algorithms: HS256/384/512 with an HMAC secret (the current one, then the
 * previous one while now_s < hmac_previous_secret_key_valid_until, or always when that is
 * 0), RS256/384/512 with an RSA public key, ES256/384/512 with an ECDSA public key on the
 * matching curve (P-256/P-384/P-521). Anything else, `none` included, or an algorithm
 * without a configured key is invalid. With skip_verify the signature is not checked at
 * all (any alg), but format and claims are.
 *
 * Check order, first failure wins: size and format -> signature -> claim types ->
 * aud/iss -> (connect: non-empty `channel` = invalid; subscribe: empty or missing
 * `channel` = invalid) -> exp/nbf (no leeway). A badly signed expired token is invalid.
 *
 * A JSON `null` claim is treated as absent. Every returned rt_str_t and rt_json_t pointer
 * borrows from the node_jwt_claims_t it came from. */
#ifndef RT_NODE_JWT_H
#define RT_NODE_JWT_H

#include <stdbool.h>
#include <stdint.h>

#include "node/base/buf.h"
#include "node/base/json.h"
#include "node/base/str.h"
#include "node/config.h"

/* Longer tokens are invalid without being decoded. */
#define NODE_JWT_MAX_TOKEN_BYTES 65536

/* Immutable after node_jwt_verifier_new(); may be used from any number of threads at once. */
typedef struct node_jwt_verifier node_jwt_verifier_t;

/* Builds a verifier from cfg (borrowed for the call; everything needed is copied, regexes
 * compiled). skip_verify = client.insecure_skip_token_signature_verify.
 * Returns 0 and *out (owned by the caller, free with node_jwt_verifier_free), or RT_EINVAL
 * with a message appended to err (may be NULL) for an unreadable PEM key, a key of the
 * wrong type (RSA key in ecdsa_public_key, curve other than P-256/384/521) or an invalid
 * audience_regex / issuer_regex. Empty strings mean "not configured". */
int node_jwt_verifier_new(const node_token_config_t *cfg, bool skip_verify,
                          node_jwt_verifier_t **out, rt_buf_t *err);
/* NULL is a no-op. */
void node_jwt_verifier_free(node_jwt_verifier_t *v);

/* Tri-state BoolValue override ({"value":bool}) of subs options and subscription tokens. */
typedef enum node_jwt_bool {
    NODE_JWT_UNSET = -1,
    NODE_JWT_FALSE = 0,
    NODE_JWT_TRUE = 1,
} node_jwt_bool_t;

typedef struct node_jwt_override {
    node_jwt_bool_t presence;
    node_jwt_bool_t join_leave;
    node_jwt_bool_t force_push_join_leave;
    node_jwt_bool_t force_recovery;
    node_jwt_bool_t force_positioning;
} node_jwt_override_t;

/* Claims of a verified token. Owns the decoded payload; every slice and node below points
 * into payload or into one of the *_buf fields, so they live until
 * node_jwt_claims_cleanup(). Strings are unescaped bytes (not NUL-terminated). */
typedef struct node_jwt_claims {
    rt_buf_t payload;  /* owned: decoded payload JSON (a JSON object) */
    rt_json_doc_t doc; /* owned: parse tree over payload */

    rt_str_t user;             /* `sub` (or user_id_claim); "" when absent = anonymous */
    bool has_exp;              /* `exp` present */
    int64_t exp;               /* Unix s (fraction truncated) */
    bool has_expire_at;        /* `expire_at` present */
    int64_t expire_at;         /* Unix s; 0 = never expires */
    int64_t expire_s;          /* effective expiration: expire_at if present, else exp, else 0;
                                  0 = never expires */
    rt_str_t info;             /* raw JSON of `info`, or decoded `b64info` bytes (b64info wins);
                                  {NULL, 0} when neither is set */
    bool info_binary;          /* info came from b64info */
    const rt_json_t *channels; /* connect: `channels`, an array of strings, or NULL */
    const rt_json_t *subs;     /* connect: `subs`, an object channel -> options (each an
                                  object, validated with node_jwt_sub_opts_parse), or NULL */
    const rt_json_t *meta;     /* connect: raw `meta` node, or NULL */

    rt_str_t channel;             /* subscribe: `channel`, never empty after a successful verify */
    rt_str_t client;              /* subscribe: legacy `client` claim, "" when absent */
    rt_str_t data;                /* subscribe: raw JSON of `data`, or decoded `b64data` (wins);
                                     {NULL, 0} when neither is set */
    bool data_binary;             /* data came from b64data */
    bool has_override;            /* subscribe: `override` present */
    node_jwt_override_t override; /* subscribe: parsed `override` (all UNSET if absent) */

    /* owned storage behind the slices above when unescaping or base64 was needed */
    rt_buf_t user_buf;
    rt_buf_t channel_buf;
    rt_buf_t client_buf;
    rt_buf_t info_buf;
    rt_buf_t data_buf;
} node_jwt_claims_t;

/* Verifies a connection token (PROTOCOL.md §7.1) at time now_s (Unix seconds).
 * token is borrowed for the call; *out is initialised by the call in every case and must
 * be released with node_jwt_claims_cleanup() whatever the result.
 * Returns 0; RT_EINVAL for anything invalid (format, size, signature, algorithm, claim
 * types, bad base64 in b64info or in subs options, aud/iss mismatch, `channel` claim) —
 * the caller disconnects with 3500; RT_EEXPIRED when exp is not in the future or nbf is
 * in the future — the caller answers error 109. Namespace checks of channels/subs are the
 * caller's. Thread-safe. */
int node_jwt_verify_connect(const node_jwt_verifier_t *v, rt_str_t token, int64_t now_s,
                            node_jwt_claims_t *out);
/* Verifies a subscription token (PROTOCOL.md §7.2), same contract. A missing or empty
 * `channel` claim is RT_EINVAL (error 103 at subscribe). Comparing channel, user and client
 * with the connection is the caller's (mismatch = 3500). */
int node_jwt_verify_subscribe(const node_jwt_verifier_t *v, rt_str_t token, int64_t now_s,
                              node_jwt_claims_t *out);
/* Releases what a verify call stored in c; safe on a zeroed struct and twice. */
void node_jwt_claims_cleanup(node_jwt_claims_t *c);

/* One channel's options from connection-token `subs` (a value of claims->subs). */
typedef struct node_jwt_sub_opts {
    rt_str_t info; /* raw JSON `info` or decoded `b64info` (wins); {NULL,0} if unset */
    bool info_binary;
    rt_str_t data; /* raw JSON `data` or decoded `b64data` (wins); {NULL,0} if unset */
    bool data_binary;
    node_jwt_override_t override;
    rt_buf_t info_buf; /* owned storage for decoded b64info */
    rt_buf_t data_buf; /* owned storage for decoded b64data */
} node_jwt_sub_opts_t;

/* Parses one `subs` member value (borrowed; slices in *out borrow from it or from *out's
 * buffers). *out is initialised in every case; release with node_jwt_sub_opts_cleanup().
 * Returns 0, or RT_EINVAL for a non-object, wrongly typed field or bad base64 (already
 * rejected by node_jwt_verify_connect, so never on a verified token). */
int node_jwt_sub_opts_parse(const rt_json_t *opts, node_jwt_sub_opts_t *out);
void node_jwt_sub_opts_cleanup(node_jwt_sub_opts_t *o);

/* Signs payload_json (bytes used exactly as given, borrowed) with header
 * {"alg":"<alg>","typ":"JWT"} and appends the compact token to out.
 * alg: "HS256".."HS512" (key = non-empty secret bytes), "RS256".."RS512" (key = PEM RSA private
 * key), "ES256".."ES512" (key = PEM EC private key on the matching curve), or "none"
 * (key ignored, empty signature; only useful against skip-verify).
 * Returns 0, or RT_EINVAL for an unknown alg, an unreadable or mismatched key (out is
 * unchanged then). For gentoken/gensubtoken and tests. */
int node_jwt_sign(const char *alg, rt_str_t key, rt_str_t payload_json, rt_buf_t *out);
/* As node_jwt_sign with the header bytes given verbatim (borrowed), so tests can forge
 * headers (kid, a different alg than the one used to sign, non-JSON). */
int node_jwt_sign_header(rt_str_t header_json, const char *alg, rt_str_t key, rt_str_t payload_json,
                         rt_buf_t *out);

#endif

/*
 * server/form.h — pure decoders for what arrives in an HTTP request:
 * application/x-www-form-urlencoded text (URL query strings and POST form
 * bodies: `+` is a space, %XX a byte), base64 for Basic auth, and the
 * credentials a request may carry. No allocation except where stated; no
 * global state; every input byte sequence is accepted without crashing.
 */
#ifndef MK_FORM_H
#define MK_FORM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes form-encoded s[0..n) into out (room for n + 1 bytes; the result
 * is never longer than the input) and NUL-terminates it. A `%` not followed
 * by two hex digits is kept literally, as Go's lenient decoders do not, but
 * InfluxDB's clients never send one. Returns the decoded length (which may
 * contain NUL bytes from %00).
 */
size_t mk_form_decode(const char *s, size_t n, char *out);

/* Called once per `key=value` pair of a form; key and value are decoded,
 * NUL-terminated and valid only during the call. A pair without `=` has an
 * empty value. Return non-zero to stop. */
typedef int (*mk_form_fn)(void *ctx, const char *key, size_t klen, const char *val, size_t vlen);

/* Splits s[0..n) at `&` (and `;` is NOT a separator, as in Go >= 1.17) and
 * calls fn for each non-empty pair in order. Returns 0, -1 when out of
 * memory, or fn's non-zero value. */
int mk_form_parse(const char *s, size_t n, mk_form_fn fn, void *ctx);

/* Decodes standard base64 (with or without padding) s[0..n) into out (room
 * for n * 3 / 4 + 3 bytes), NUL-terminated; returns the length or -1 when s
 * is not base64. */
long mk_form_b64_decode(const char *s, size_t n, char *out);

/* Credentials found in one request. Pointers into the caller's storage. */
typedef enum mk_cred_kind {
    MK_CRED_NONE = 0,
    MK_CRED_BASIC,  /* Authorization: Basic base64(user:password) */
    MK_CRED_TOKEN,  /* Authorization: Token <x> or Bearer <x> */
    MK_CRED_PARAM   /* u= / p= URL parameters */
} mk_cred_kind;

/*
 * From an Authorization header value (may be NULL) and the u/p parameters
 * (may be NULL), picks the key to check: Bearer/Token <x> gives x (for
 * InfluxDB 1.x's `Token user:password` the part after the colon); Basic
 * gives the password, or the user name when the password is empty; u/p
 * give p, or u when p is empty. Writes the key into key (room for cap
 * bytes, NUL-terminated) and returns its kind, MK_CRED_NONE when there is
 * no key (an empty Basic `Og==` counts as none) or it does not fit.
 */
mk_cred_kind mk_form_credentials(const char *authorization, const char *u, const char *p, char *key,
                                 size_t cap);

#endif

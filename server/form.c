/*
 * server/form.c — form decoding, base64 and credential extraction (see
 * form.h). Everything is bounded by the input length; fuzzed by
 * tests/fuzz/fuzz_server_form.c.
 */
#include "form.h"

#include <stdlib.h>
#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t mk_form_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            out[o++] = ' ';
        } else if (c == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
                   hexval((unsigned char)s[i + 2]) >= 0) {
            out[o++] = (char)(hexval((unsigned char)s[i + 1]) << 4 | hexval((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return o;
}

int mk_form_parse(const char *s, size_t n, mk_form_fn fn, void *ctx)
{
    char *buf = malloc(n + 2);
    int rc = 0;
    if (!buf) return -1;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '&') j++;
        if (j > i) {
            size_t eq = i;
            while (eq < j && s[eq] != '=') eq++;
            /* key and value decoded side by side in buf: key, NUL, value, NUL */
            size_t klen = mk_form_decode(s + i, eq - i, buf);
            char *val = buf + klen + 1;
            size_t vlen = eq < j ? mk_form_decode(s + eq + 1, j - eq - 1, val) : (val[0] = '\0', 0);
            if ((rc = fn(ctx, buf, klen, val, vlen)) != 0) goto out;
        }
        i = j + 1;
    }
out:
    free(buf);
    return rc;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

long mk_form_b64_decode(const char *s, size_t n, char *out)
{
    while (n > 0 && s[n - 1] == '=') n--;
    if (n % 4 == 1) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits & 0xff);
        }
    }
    out[o] = '\0';
    return (long)o;
}

static int copy_key(const char *p, size_t n, char *key, size_t cap)
{
    if (n == 0 || n + 1 > cap) return 0;
    memcpy(key, p, n);
    key[n] = '\0';
    return 1;
}

/* Case-insensitive "scheme " prefix; returns the rest with spaces skipped. */
static const char *scheme(const char *h, const char *name)
{
    size_t n = strlen(name);
    if (strncasecmp(h, name, n) != 0 || h[n] != ' ') return NULL;
    h += n;
    while (*h == ' ') h++;
    return h;
}

mk_cred_kind mk_form_credentials(const char *authorization, const char *u, const char *p, char *key,
                                 size_t cap)
{
    const char *v;
    if (authorization) {
        if ((v = scheme(authorization, "Bearer")) || (v = scheme(authorization, "Token"))) {
            size_t n = strlen(v);
            while (n > 0 && v[n - 1] == ' ') n--;
            /* InfluxDB 1.x sends `Token user:password`; a bare key has no colon. */
            const char *colon = memchr(v, ':', n);
            if (colon) {
                size_t plen = n - (size_t)(colon + 1 - v);
                if (plen > 0) return copy_key(colon + 1, plen, key, cap) ? MK_CRED_TOKEN : MK_CRED_NONE;
                return copy_key(v, (size_t)(colon - v), key, cap) ? MK_CRED_TOKEN : MK_CRED_NONE;
            }
            return copy_key(v, n, key, cap) ? MK_CRED_TOKEN : MK_CRED_NONE;
        }
        if ((v = scheme(authorization, "Basic"))) {
            size_t n = strlen(v);
            while (n > 0 && v[n - 1] == ' ') n--;
            if (n > 4096) return MK_CRED_NONE;
            char dec[4096 / 4 * 3 + 4];
            long dn = mk_form_b64_decode(v, n, dec);
            if (dn < 0) return MK_CRED_NONE;
            const char *colon = memchr(dec, ':', (size_t)dn);
            if (!colon) return copy_key(dec, (size_t)dn, key, cap) ? MK_CRED_BASIC : MK_CRED_NONE;
            size_t plen = (size_t)dn - (size_t)(colon + 1 - dec);
            if (plen > 0) return copy_key(colon + 1, plen, key, cap) ? MK_CRED_BASIC : MK_CRED_NONE;
            return copy_key(dec, (size_t)(colon - dec), key, cap) ? MK_CRED_BASIC : MK_CRED_NONE;
        }
    }
    if (p && *p) return copy_key(p, strlen(p), key, cap) ? MK_CRED_PARAM : MK_CRED_NONE;
    if (u && *u) return copy_key(u, strlen(u), key, cap) ? MK_CRED_PARAM : MK_CRED_NONE;
    return MK_CRED_NONE;
}

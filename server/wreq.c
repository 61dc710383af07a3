/*
 * server/wreq.c — /write helpers (see wreq.h).
 */
#include "wreq.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

int mk_wreq_precision(const char *s, mk_precision *p, int64_t *mult)
{
    *mult = 1;
    if (!s || !*s || strcmp(s, "n") == 0 || strcmp(s, "ns") == 0) *p = MK_PRECISION_NS;
    else if (strcmp(s, "u") == 0 || strcmp(s, "us") == 0 || strcmp(s, "\xc2\xb5") == 0) *p = MK_PRECISION_US;
    else if (strcmp(s, "ms") == 0) *p = MK_PRECISION_MS;
    else if (strcmp(s, "s") == 0) *p = MK_PRECISION_S;
    else if (strcmp(s, "m") == 0) { *p = MK_PRECISION_S; *mult = 60; }
    else if (strcmp(s, "h") == 0) { *p = MK_PRECISION_S; *mult = 3600; }
    else return -1;
    return 0;
}

mk_err mk_wreq_scale_ts(const char *in, size_t n, int64_t mult, mk_buf *out)
{
    if (mult == 1) return mk_buf_append(out, in, n);
    mk_err rc = mk_buf_reserve(out, n + n / 8 + 64);
    if (rc) return rc;
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(in + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - in) : n; /* line is in[i..end) */
        size_t e = end;
        if (e > i && in[e - 1] == '\r') e--;
        while (e > i && (in[e - 1] == ' ' || in[e - 1] == '\t')) e--;
        size_t s = e;
        while (s > i && ((in[s - 1] >= '0' && in[s - 1] <= '9') || in[s - 1] == '-')) s--;
        int is_ts = s < e && s > i && in[s - 1] == ' ' && e - s <= 20 && in[i] != '#';
        int64_t v = 0;
        if (is_ts) {
            size_t k = s;
            int neg = 0;
            if (in[k] == '-') { neg = 1; k++; }
            if (k == e) is_ts = 0;
            for (; is_ts && k < e; k++) {
                if (in[k] < '0' || in[k] > '9' || v > (INT64_MAX - 9) / 10) { is_ts = 0; break; }
                v = v * 10 + (in[k] - '0');
            }
            if (neg) v = -v;
            if (is_ts && (v > INT64_MAX / mult || v < INT64_MIN / mult)) is_ts = 0;
        }
        if (is_ts) {
            char num[32];
            int len = snprintf(num, sizeof num, "%lld", (long long)(v * mult));
            if ((rc = mk_buf_append(out, in + i, s - i)) ||
                (rc = mk_buf_append(out, num, (size_t)len)) ||
                (rc = mk_buf_append(out, in + e, end - e)))
                return rc;
        } else if ((rc = mk_buf_append(out, in + i, end - i))) {
            return rc;
        }
        if (nl && (rc = mk_buf_append(out, "\n", 1))) return rc;
        i = end + 1;
    }
    return MK_OK;
}

int mk_wreq_gunzip(const void *in, size_t n, size_t max_out, mk_buf *out, char *err, size_t err_cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* 15 + 32: accept gzip or zlib headers, detected automatically */
    if (inflateInit2(&zs, 15 + 32) != Z_OK) {
        snprintf(err, err_cap, "gzip: cannot initialise zlib");
        return -1;
    }
    int rc = 0;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
    size_t left = n - zs.avail_in;
    for (;;) {
        if (mk_buf_reserve(out, 65536) != MK_OK) {
            snprintf(err, err_cap, "gzip: out of memory");
            rc = -1;
            break;
        }
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)(out->cap - out->len);
        uInt before = zs.avail_out;
        int z = inflate(&zs, Z_NO_FLUSH);
        out->len += before - zs.avail_out;
        if (out->len > max_out) {
            rc = -2;
            break;
        }
        if (z == Z_STREAM_END) {
            /* concatenated gzip members are legal: continue with the next one */
            if (zs.avail_in == 0 && left == 0) break;
            if (inflateReset(&zs) != Z_OK) { rc = -1; break; }
            continue;
        }
        if (z == Z_BUF_ERROR && zs.avail_in == 0) {
            if (left == 0) {
                snprintf(err, err_cap, "gzip: unexpected end of compressed body");
                rc = -1;
                break;
            }
        } else if (z != Z_OK) {
            snprintf(err, err_cap, "gzip: %s", zs.msg ? zs.msg : "invalid compressed body");
            rc = -1;
            break;
        }
        if (zs.avail_in == 0 && left > 0) {
            zs.avail_in = (uInt)(left > UINT32_MAX ? UINT32_MAX : left);
            left -= zs.avail_in;
        }
    }
    inflateEnd(&zs);
    return rc;
}

void mk_wreq_errs_init(mk_wreq_errs *e, const char *text, size_t len, size_t max_listed)
{
    memset(e, 0, sizeof *e);
    e->text = text;
    e->len = len;
    e->max_listed = max_listed;
    e->cur_line = 1;
}

static void add(mk_wreq_errs *e, const char *p, size_t n)
{
    if (mk_buf_append(&e->msg, p, n) != MK_OK) e->is_oom = 1;
}

void mk_wreq_on_error(void *ctx, uint64_t line, uint32_t column, const char *reason)
{
    mk_wreq_errs *e = ctx;
    e->n_errors++;
    if (e->n_errors > e->max_listed) return;
    /* Errors come in line order; move the cursor forward to the line start
     * (restart from the top if a caller ever reports out of order). */
    if (line < e->cur_line) {
        e->cur_line = 1;
        e->cur_off = 0;
    }
    while (e->cur_line < line && e->cur_off < e->len) {
        const char *nl = memchr(e->text + e->cur_off, '\n', e->len - e->cur_off);
        if (!nl) { e->cur_off = e->len; break; }
        e->cur_off = (size_t)(nl - e->text) + 1;
        e->cur_line++;
    }
    size_t s = e->cur_off;
    const char *nl = s < e->len ? memchr(e->text + s, '\n', e->len - s) : NULL;
    size_t end = nl ? (size_t)(nl - e->text) : e->len;
    if (end > s && e->text[end - 1] == '\r') end--;
    size_t show = end - s > 256 ? 256 : end - s;
    if (e->msg.len) add(e, "\n", 1);
    add(e, "unable to parse '", 17);
    add(e, e->text + s, show);
    if (show < end - s) add(e, "...", 3);
    char tail[512];
    int n = snprintf(tail, sizeof tail, "': %s (line %llu, column %u)", reason,
                     (unsigned long long)line, column);
    add(e, tail, (size_t)n < sizeof tail ? (size_t)n : sizeof tail - 1);
}

const char *mk_wreq_errs_text(mk_wreq_errs *e)
{
    if (e->n_errors > e->max_listed) {
        char more[64];
        int n = snprintf(more, sizeof more, "\n... and %llu more errors",
                         (unsigned long long)(e->n_errors - e->max_listed));
        add(e, more, (size_t)n);
    }
    if (mk_buf_append(&e->msg, "", 1) != MK_OK) return "(out of memory)";
    e->msg.len--; /* keep the NUL out of the length */
    return (const char *)e->msg.data;
}

void mk_wreq_errs_free(mk_wreq_errs *e) { mk_buf_free(&e->msg); }

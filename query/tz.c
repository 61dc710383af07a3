/*
 * query/tz.c — a minimal TZif reader (RFC 8536): the transition times and
 * the UTC offset of each local time type, nothing else (no leap seconds, no
 * abbreviations). Version 2+ files are read from their 64-bit section.
 *
 * Invariant: trans[] ascending, idx[i] < n_types for every i.
 */
#include "tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct mk_tz {
    int64_t *trans;   /* transition instants, seconds */
    uint8_t *idx;     /* local time type after each transition */
    size_t n_trans;
    int32_t *offs;    /* UTC offset of each type, seconds */
    size_t n_types;
    int32_t off_before; /* offset before the first transition */
};

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static int64_t be64(const uint8_t *p) { return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4)); }

void mk_tz_free(mk_tz *tz)
{
    if (!tz) return;
    free(tz->trans);
    free(tz->idx);
    free(tz->offs);
    free(tz);
}

mk_err mk_tz_load(const char *name, mk_tz **out, mk_diag *diag)
{
    *out = NULL;
    if (!name || !*name || name[0] == '/' || strstr(name, "..") || strlen(name) > 200)
        return mk_diag_set(diag, MK_EINVAL, "unknown time zone %s", name ? name : "");
    char path[300];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) return mk_diag_set(diag, MK_ENOTFOUND, "unknown time zone %s (no file %s)", name, path);
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    mk_err rc = MK_OK;
    mk_tz *tz = NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            if (cap > (1u << 22)) { rc = mk_diag_set(diag, MK_ECORRUPT, "%s: too large for a zone file", path); goto out; }
            uint8_t *p = realloc(buf, cap);
            if (!p) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory"); goto out; }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (!got) break;
        n += got;
    }
    const uint8_t *p = buf;
    size_t left = n;
    int is_v2 = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (left < 44 || memcmp(p, "TZif", 4) != 0) { rc = MK_CORRUPT(diag, path, (size_t)(p - buf), "not a TZif file"); goto out; }
        is_v2 = p[4] >= '2';
        uint32_t isut = be32(p + 20), isstd = be32(p + 24), leap = be32(p + 28), timecnt = be32(p + 32),
                 typecnt = be32(p + 36), charcnt = be32(p + 40);
        size_t tsz = pass ? 8 : 4;
        uint64_t body = (uint64_t)timecnt * tsz + timecnt + (uint64_t)typecnt * 6 + charcnt +
                        (uint64_t)leap * (tsz + 4) + isstd + isut;
        if (body > left - 44 || typecnt == 0 || typecnt > 256) { rc = MK_CORRUPT(diag, path, (size_t)(p - buf), "truncated TZif data"); goto out; }
        if (pass == 0 && is_v2) { p += 44 + body; left -= 44 + body; continue; }
        tz = calloc(1, sizeof *tz);
        if (!tz) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory"); goto out; }
        tz->trans = malloc((timecnt ? timecnt : 1) * sizeof *tz->trans);
        tz->idx = malloc(timecnt ? timecnt : 1);
        tz->offs = malloc(typecnt * sizeof *tz->offs);
        if (!tz->trans || !tz->idx || !tz->offs) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory"); goto out; }
        const uint8_t *q = p + 44;
        for (uint32_t i = 0; i < timecnt; i++) tz->trans[i] = tsz == 8 ? be64(q + 8 * i) : (int32_t)be32(q + 4 * i);
        q += (size_t)timecnt * tsz;
        for (uint32_t i = 0; i < timecnt; i++) {
            if (q[i] >= typecnt) { rc = MK_CORRUPT(diag, path, (size_t)(q + i - buf), "bad time type index"); goto out; }
            tz->idx[i] = q[i];
        }
        q += timecnt;
        for (uint32_t i = 0; i < typecnt; i++) tz->offs[i] = (int32_t)be32(q + 6 * i);
        tz->n_trans = timecnt;
        tz->n_types = typecnt;
        tz->off_before = tz->offs[0];
        for (uint32_t i = 0; i < typecnt; i++)
            if (!q[6 * i + 4]) { tz->off_before = tz->offs[i]; break; } /* first standard-time type */
        for (uint32_t i = 1; i < timecnt; i++)
            if (tz->trans[i] < tz->trans[i - 1]) { rc = MK_CORRUPT(diag, path, 44, "transitions out of order"); goto out; }
        break;
    }
    *out = tz;
    tz = NULL;
out:
    mk_tz_free(tz);
    free(buf);
    fclose(f);
    return rc;
}

int32_t mk_tz_offset_s(const mk_tz *tz, int64_t t_s)
{
    if (!tz->n_trans || t_s < tz->trans[0]) return tz->off_before;
    size_t lo = 0, hi = tz->n_trans; /* last transition <= t_s */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t_s) lo = mid; else hi = mid;
    }
    return tz->offs[tz->idx[lo]];
}

/*
 * detect/cron.c — cron schedules and TZif time zones (see cron.h).
 *
 * TZif (RFC 8536): header "TZif", version, 15 reserved bytes, six big-endian
 * u32 counts (isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt), then
 * the version-1 data block with 32-bit times; version 2 and later repeat
 * header and data with 64-bit times and end with "\n<POSIX TZ>\n". We read
 * the 64-bit block when there is one. Invariant of a loaded zone: trans[]
 * ascending, every idx[i] < n_types, n_types >= 1.
 *
 * Finding the next run: for each local calendar day from the day of `after`
 * on, every scheduled wall-clock minute of the day is turned into UTC
 * instants (0 in a spring-forward gap, 2 in an autumn overlap, else 1) by
 * trying the offsets in force a day before and a day after; the smallest
 * instant after `after` over two neighbouring days wins (two, because an
 * overlap can reorder wall time and real time near midnight).
 */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define TZ_MAX_TRANS 100000
#define TZ_MAX_TYPES 256

typedef struct posix_rule {
    int kind;      /* 'M' (month.week.day), 'J' (Julian 1..365, no Feb 29), 'D' (0..365) */
    int month, week, wday, day;
    int32_t time_s; /* local wall time of the change, may be negative or > 24 h */
} posix_rule;

struct mk_cron_tz {
    int64_t *trans;    /* transition instants, UTC seconds */
    uint8_t *idx;      /* type in force from trans[i] on */
    size_t n_trans;
    int32_t *offs;     /* utoff of each type */
    uint8_t *is_dst;
    size_t n_types;
    int32_t before_off; /* before the first transition */
    int has_rule;       /* footer (or whole zone) given as a POSIX rule */
    int32_t std_off, dst_off;
    int has_dst;
    posix_rule start, end;
};

/* ---- calendar ---------------------------------------------------------- */

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t dd = doy - (153 * mp + 2) / 5 + 1;
    int64_t mm = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (mm <= 2));
    *m = (int)mm;
    *d = (int)dd;
}

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}
static int weekday_of_days(int64_t days) { return (int)(((days % 7) + 11) % 7); } /* 1970-01-01 was a Thursday (4) */

/* ---- POSIX TZ rules ---------------------------------------------------- */

/* Local seconds since the epoch at which rule r takes effect in year y. */
static int64_t rule_local_s(const posix_rule *r, int y)
{
    int64_t day;
    if (r->kind == 'M') {
        int64_t first = mk_days_from_civil(y, r->month, 1);
        int wd1 = weekday_of_days(first);
        int d = 1 + (r->wday - wd1 + 7) % 7 + 7 * (r->week - 1);
        if (r->week == 5)
            while (d > days_in_month(y, r->month)) d -= 7;
        day = first + d - 1;
    } else if (r->kind == 'J') {
        int n = r->day; /* 1..365, Feb 29 never counted */
        if (is_leap(y) && n >= 60) n++;
        day = mk_days_from_civil(y, 1, 1) + n - 1;
    } else {
        day = mk_days_from_civil(y, 1, 1) + r->day;
    }
    return day * 86400 + r->time_s;
}

static int32_t rule_offset(const mk_cron_tz *tz, int64_t utc_s)
{
    if (!tz->has_dst) return tz->std_off;
    int y, m, d;
    civil_from_days(mk_floordiv(utc_s + tz->std_off, 86400), &y, &m, &d);
    int64_t start = rule_local_s(&tz->start, y) - tz->std_off; /* the change happens in standard time */
    int64_t end = rule_local_s(&tz->end, y) - tz->dst_off;
    int is_dst = start < end ? (utc_s >= start && utc_s < end) : !(utc_s >= end && utc_s < start);
    return is_dst ? tz->dst_off : tz->std_off;
}

/* [+-]hh[:mm[:ss]] into seconds; advances *p. -1 on error. */
static int parse_hms(const char **p, int32_t *out, int allow_sign)
{
    const char *s = *p;
    int sign = 1;
    if (allow_sign && (*s == '+' || *s == '-')) { sign = *s == '-' ? -1 : 1; s++; }
    if (!isdigit((unsigned char)*s)) return -1;
    int32_t v[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        if (k > 0) {
            if (*s != ':') break;
            s++;
        }
        if (!isdigit((unsigned char)*s)) return -1;
        int n = 0, digits = 0;
        while (isdigit((unsigned char)*s) && digits < 3) { n = n * 10 + (*s - '0'); s++; digits++; }
        v[k] = n;
    }
    if (v[0] > 167 || v[1] > 59 || v[2] > 59) return -1;
    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
    *p = s;
    return 0;
}

static int parse_name(const char **p)
{
    const char *s = *p;
    if (*s == '<') {
        s++;
        while (*s && *s != '>') s++;
        if (*s != '>') return -1;
        s++;
    } else {
        int n = 0;
        while (isalpha((unsigned char)*s)) { s++; n++; }
        if (n < 3) return -1;
    }
    *p = s;
    return 0;
}

static int parse_rule(const char **p, posix_rule *r)
{
    const char *s = *p;
    memset(r, 0, sizeof *r);
    r->time_s = 7200;
    char *end;
    if (*s == 'M') {
        r->kind = 'M';
        s++;
        long mo = strtol(s, &end, 10);
        if (end == s || *end != '.') return -1;
        s = end + 1;
        long wk = strtol(s, &end, 10);
        if (end == s || *end != '.') return -1;
        s = end + 1;
        long wd = strtol(s, &end, 10);
        if (end == s) return -1;
        s = end;
        if (mo < 1 || mo > 12 || wk < 1 || wk > 5 || wd < 0 || wd > 6) return -1;
        r->month = (int)mo; r->week = (int)wk; r->wday = (int)wd;
    } else {
        r->kind = 'D';
        if (*s == 'J') { r->kind = 'J'; s++; }
        long n = strtol(s, &end, 10);
        if (end == s) return -1;
        s = end;
        if (r->kind == 'J' ? (n < 1 || n > 365) : (n < 0 || n > 365)) return -1;
        r->day = (int)n;
    }
    if (*s == '/') {
        s++;
        if (parse_hms(&s, &r->time_s, 1)) return -1;
    }
    *p = s;
    return 0;
}

/* Fills the rule part of tz from spec. */
static int parse_posix(const char *spec, mk_cron_tz *tz)
{
    const char *s = spec;
    int32_t off;
    if (parse_name(&s) || parse_hms(&s, &off, 1)) return -1;
    tz->has_rule = 1;
    tz->std_off = -off; /* POSIX counts west of Greenwich as positive */
    tz->dst_off = tz->std_off + 3600;
    tz->has_dst = 0;
    if (!*s) return 0;
    if (parse_name(&s)) return -1;
    tz->has_dst = 1;
    if (*s && *s != ',') {
        if (parse_hms(&s, &off, 1)) return -1;
        tz->dst_off = -off;
    }
    if (*s != ',') return -1; /* no rules: we do not guess the US defaults */
    s++;
    if (parse_rule(&s, &tz->start) || *s != ',') return -1;
    s++;
    if (parse_rule(&s, &tz->end) || *s) return -1;
    return 0;
}

/* ---- TZif -------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

void mk_cron_tz_free(mk_cron_tz *tz)
{
    if (!tz) return;
    free(tz->trans);
    free(tz->idx);
    free(tz->offs);
    free(tz->is_dst);
    free(tz);
}

mk_err mk_cron_tz_posix(const char *spec, mk_cron_tz **out, mk_diag *diag)
{
    *out = NULL;
    mk_cron_tz *tz = calloc(1, sizeof *tz);
    if (!tz) return mk_diag_set(diag, MK_ENOMEM, "no memory for a time zone");
    if (parse_posix(spec, tz)) {
        mk_cron_tz_free(tz);
        return mk_diag_set(diag, MK_EPARSE, "time zone rule '%s' is not a POSIX TZ string we read", spec);
    }
    *out = tz;
    return MK_OK;
}

mk_err mk_cron_tz_parse(const uint8_t *data, size_t n, const char *name, mk_cron_tz **out, mk_diag *diag)
{
    mk_err err = MK_OK;
    *out = NULL;
    mk_cron_tz *tz = calloc(1, sizeof *tz);
    if (!tz) return mk_diag_set(diag, MK_ENOMEM, "no memory for a time zone");
    const char *why = NULL;
    size_t off = 0;
    int version = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (n - off < 44 || memcmp(data + off, "TZif", 4) != 0) { why = "no TZif header"; goto bad; }
        version = data[off + 4] ? data[off + 4] - '0' : 1;
        uint32_t isut = be32(data + off + 20), isstd = be32(data + off + 24), leap = be32(data + off + 28);
        uint32_t timecnt = be32(data + off + 32), typecnt = be32(data + off + 36), charcnt = be32(data + off + 40);
        if (timecnt > TZ_MAX_TRANS || typecnt == 0 || typecnt > TZ_MAX_TYPES || charcnt > 65536 || leap > 65536 ||
            isut > typecnt || isstd > typecnt) { why = "counts out of range"; goto bad; }
        size_t tsz = pass == 0 ? 4 : 8;
        size_t body = timecnt * tsz + timecnt + typecnt * 6 + charcnt + leap * (tsz + 4) + isstd + isut;
        off += 44;
        if (n - off < body) { why = "data block cut short"; goto bad; }
        if (pass == 0 && version >= 2) { off += body; continue; }
        const uint8_t *p = data + off;
        tz->n_trans = timecnt;
        tz->n_types = typecnt;
        tz->trans = calloc(timecnt ? timecnt : 1, sizeof *tz->trans);
        tz->idx = calloc(timecnt ? timecnt : 1, 1);
        tz->offs = calloc(typecnt, sizeof *tz->offs);
        tz->is_dst = calloc(typecnt, 1);
        if (!tz->trans || !tz->idx || !tz->offs || !tz->is_dst) { err = mk_diag_set(diag, MK_ENOMEM, "no memory for a time zone"); goto out; }
        for (uint32_t i = 0; i < timecnt; i++) {
            tz->trans[i] = tsz == 4 ? (int64_t)(int32_t)be32(p + i * 4) : (int64_t)be64(p + i * 8);
            if (i && tz->trans[i] <= tz->trans[i - 1]) { why = "transitions not ascending"; goto bad; }
        }
        p += timecnt * tsz;
        for (uint32_t i = 0; i < timecnt; i++) {
            tz->idx[i] = p[i];
            if (p[i] >= typecnt) { why = "transition type out of range"; goto bad; }
        }
        p += timecnt;
        for (uint32_t i = 0; i < typecnt; i++) {
            int32_t o = (int32_t)be32(p + i * 6);
            if (o < -25 * 3600 || o > 26 * 3600) { why = "offset out of range"; goto bad; }
            tz->offs[i] = o;
            tz->is_dst[i] = p[i * 6 + 4];
        }
        p += typecnt * 6;
        off += body;
        break;
    }
    /* Before the first transition: the first standard-time type (RFC 8536 3.2). */
    tz->before_off = tz->offs[0];
    for (size_t i = 0; i < tz->n_types; i++)
        if (!tz->is_dst[i]) { tz->before_off = tz->offs[i]; break; }
    if (version >= 2 && off < n && data[off] == '\n') {
        size_t e = off + 1;
        while (e < n && data[e] != '\n') e++;
        if (e < n && e - off - 1 > 0 && e - off - 1 < 128) {
            char spec[128];
            memcpy(spec, data + off + 1, e - off - 1);
            spec[e - off - 1] = 0;
            mk_cron_tz tmp = {0};
            if (parse_posix(spec, &tmp) == 0) {
                tz->has_rule = 1;
                tz->std_off = tmp.std_off;
                tz->dst_off = tmp.dst_off;
                tz->has_dst = tmp.has_dst;
                tz->start = tmp.start;
                tz->end = tmp.end;
            }
        }
    }
    goto out;
bad:
    err = mk_diag_set(diag, MK_EPARSE, "time zone %s: not a valid TZif file (%s)", name ? name : "?", why);
out:
    if (err) mk_cron_tz_free(tz);
    else *out = tz;
    return err;
}

mk_err mk_cron_tz_load(const char *name, mk_cron_tz **out, mk_diag *diag)
{
    *out = NULL;
    if (!name || !*name || name[0] == '/' || strstr(name, "..") || strlen(name) > 200)
        return mk_diag_set(diag, MK_EINVAL, "time zone name '%s' is not a zone name such as Europe/Berlin", name ? name : "");
    if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0 || strcmp(name, "GMT") == 0)
        return mk_cron_tz_posix("UTC0", out, diag);
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir) dir = "/usr/share/zoneinfo";
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return mk_diag_set(diag, MK_ENOTFOUND, "unknown time zone '%s' (%s: %s)", name, path, strerror(errno));
    uint8_t *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    if (!buf) return mk_diag_set(diag, MK_ENOMEM, "no memory reading time zone %s", name);
    mk_err err = mk_cron_tz_parse(buf, n, name, out, diag);
    free(buf);
    return err;
}

int32_t mk_cron_tz_offset_s(const mk_cron_tz *tz, int64_t utc_s)
{
    if (!tz) return 0;
    if (tz->n_trans == 0) return tz->has_rule ? rule_offset(tz, utc_s) : tz->before_off;
    if (utc_s < tz->trans[0]) return tz->before_off;
    if (utc_s >= tz->trans[tz->n_trans - 1] && tz->has_rule) return rule_offset(tz, utc_s);
    size_t lo = 0, hi = tz->n_trans; /* last transition <= utc_s */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= utc_s) lo = mid;
        else hi = mid;
    }
    return tz->offs[tz->idx[lo]];
}

/* ---- cron expressions -------------------------------------------------- */

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* A number or a name at *p. */
static int field_value(const char **p, int field, long *v)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long n = 0;
        int digits = 0;
        while (isdigit((unsigned char)*s) && digits < 4) { n = n * 10 + (*s - '0'); s++; digits++; }
        *v = n;
        *p = s;
        return 0;
    }
    if ((field == 3 || field == 4) && isalpha((unsigned char)s[0]) && isalpha((unsigned char)s[1]) &&
        isalpha((unsigned char)s[2])) {
        const char *const *names = field == 3 ? month_names : day_names;
        int count = field == 3 ? 12 : 7;
        for (int i = 0; i < count; i++)
            if (tolower((unsigned char)s[0]) == names[i][0] && tolower((unsigned char)s[1]) == names[i][1] &&
                tolower((unsigned char)s[2]) == names[i][2]) {
                *v = field == 3 ? i + 1 : i;
                *p = s + 3;
                return 0;
            }
    }
    return -1;
}

mk_err mk_cron_parse(const char *expr, mk_cron *out, mk_diag *diag)
{
    static const char *const field_names[] = {"minute", "hour", "day-of-month", "month", "day-of-week"};
    static const int lo_of[] = {0, 0, 1, 1, 0}, hi_of[] = {59, 23, 31, 12, 7};
    memset(out, 0, sizeof *out);
    if (!expr) return mk_diag_set(diag, MK_EPARSE, "empty cron schedule");
    const char *macro = NULL;
    if (expr[0] == '@') {
        if (!strcmp(expr, "@hourly")) macro = "0 * * * *";
        else if (!strcmp(expr, "@daily") || !strcmp(expr, "@midnight")) macro = "0 0 * * *";
        else if (!strcmp(expr, "@weekly")) macro = "0 0 * * 0";
        else if (!strcmp(expr, "@monthly")) macro = "0 0 1 * *";
        else if (!strcmp(expr, "@yearly") || !strcmp(expr, "@annually")) macro = "0 0 1 1 *";
        else return mk_diag_set(diag, MK_EPARSE, "cron schedule '%s': unknown macro (column 1)", expr);
    }
    const char *s = macro ? macro : expr;
    const char *start = s;
    uint64_t masks[5] = {0};
    for (int f = 0; f < 5; f++) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) return mk_diag_set(diag, MK_EPARSE, "cron schedule '%s': %s field missing (5 fields needed)", expr, field_names[f]);
        const char *fstart = s;
        for (;;) {
            long a, b, step = 1;
            const char *item = s;
            if (*s == '*') {
                a = lo_of[f];
                b = hi_of[f] == 7 ? 6 : hi_of[f];
                s++;
            } else {
                if (field_value(&s, f, &a)) goto bad;
                b = a;
                if (*s == '-') {
                    s++;
                    if (field_value(&s, f, &b)) goto bad;
                }
            }
            if (*s == '/') {
                s++;
                if (!isdigit((unsigned char)*s)) goto bad;
                step = 0;
                while (isdigit((unsigned char)*s) && step < 1000) { step = step * 10 + (*s - '0'); s++; }
                if (step < 1) goto bad;
                if (*item != '*' && b == a && item[0] != '*') b = hi_of[f] == 7 ? 6 : hi_of[f]; /* "5/15" = 5-max/15 */
            }
            if (a < lo_of[f] || b > hi_of[f] || a > b) {
                return mk_diag_set(diag, MK_EPARSE, "cron schedule '%s': %s value out of range %d-%d at column %d", expr,
                                   field_names[f], lo_of[f], hi_of[f], (int)(item - start) + 1);
            }
            for (long v = a; v <= b; v += step) masks[f] |= 1ull << (f == 4 && v == 7 ? 0 : v);
            if (*s == ',') { s++; continue; }
            break;
        bad:
            return mk_diag_set(diag, MK_EPARSE, "cron schedule '%s': bad %s field at column %d", expr, field_names[f],
                               (int)(s - start) + 1);
        }
        if (*s && *s != ' ' && *s != '\t')
            return mk_diag_set(diag, MK_EPARSE, "cron schedule '%s': unexpected '%c' in the %s field at column %d", expr,
                               *s, field_names[f], (int)(s - start) + 1);
        if (f == 0) out->is_wildcard = *fstart == '*';
        if (f == 1) out->is_wildcard |= *fstart == '*';
        if (f == 2) out->is_dom_star = *fstart == '*';
        if (f == 4) out->is_dow_star = *fstart == '*';
    }
    while (*s == ' ' || *s == '\t') s++;
    if (*s) return mk_diag_set(diag, MK_EPARSE, "cron schedule '%s': more than 5 fields (column %d)", expr, (int)(s - start) + 1);
    out->minutes = masks[0];
    out->hours = (uint32_t)masks[1];
    out->days = (uint32_t)masks[2];
    out->months = (uint16_t)masks[3];
    out->weekdays = (uint8_t)masks[4];
    return MK_OK;
}

static int day_matches(const mk_cron *c, int64_t days)
{
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    if (!(c->months >> m & 1)) return 0;
    int dom = (int)(c->days >> d & 1), dow = c->weekdays >> weekday_of_days(days) & 1;
    if (c->is_dom_star && c->is_dow_star) return 1;
    if (c->is_dom_star) return dow;
    if (c->is_dow_star) return dom;
    return dom || dow;
}

/* The first UTC second whose offset differs from offset(lo), in (lo, hi]. */
static int64_t find_change(const mk_cron_tz *tz, int64_t lo, int64_t hi)
{
    int32_t o = mk_cron_tz_offset_s(tz, lo);
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (mk_cron_tz_offset_s(tz, mid) == o) lo = mid;
        else hi = mid;
    }
    return hi;
}

/* Smallest run instant (UTC s) > after_s among the wall minutes of local day
 * `days`; INT64_MAX if none. */
static int64_t day_best(const mk_cron *c, const mk_cron_tz *tz, int64_t days, int64_t after_s)
{
    int64_t best = INT64_MAX;
    if (!day_matches(c, days)) return best;
    for (int h = 0; h < 24; h++) {
        if (!(c->hours >> h & 1)) continue;
        for (int mi = 0; mi < 60; mi++) {
            if (!(c->minutes >> mi & 1)) continue;
            int64_t wall = days * 86400 + h * 3600 + mi * 60;
            int32_t oa = mk_cron_tz_offset_s(tz, wall - 86400), ob = mk_cron_tz_offset_s(tz, wall + 86400);
            int64_t ua = wall - oa, ub = wall - ob;
            int is_a = mk_cron_tz_offset_s(tz, ua) == oa, is_b = oa != ob && mk_cron_tz_offset_s(tz, ub) == ob;
            int64_t cand[2];
            int nc = 0;
            if (is_a && is_b) { /* repeated wall time: first one, or both for wildcard jobs */
                int64_t first = ua < ub ? ua : ub, second = ua < ub ? ub : ua;
                cand[nc++] = first;
                if (c->is_wildcard) cand[nc++] = second;
            } else if (is_a) {
                cand[nc++] = ua;
            } else if (is_b) {
                cand[nc++] = ub;
            } else if (!c->is_wildcard) { /* skipped wall time: run when the clocks jump */
                int64_t lo = ua < ub ? ua : ub, hi = ua < ub ? ub : ua;
                cand[nc++] = find_change(tz, lo, hi);
            }
            for (int k = 0; k < nc; k++)
                if (cand[k] > after_s && cand[k] < best) best = cand[k];
        }
    }
    return best;
}

int64_t mk_cron_next_ms(const mk_cron *c, const mk_cron_tz *tz, int64_t after_ms)
{
    int64_t after_s = mk_floordiv(after_ms, 1000);
    /* A run at exactly after_s + 0 ms would not be strictly after when
     * after_ms has a fraction: compare in ms at the end. */
    int64_t day0 = mk_floordiv(after_s + mk_cron_tz_offset_s(tz, after_s), 86400) - 1;
    for (int64_t d = day0; d < day0 + 366 * 5 + 2; d++) {
        int64_t best = day_best(c, tz, d, after_s);
        int64_t next = day_best(c, tz, d + 1, after_s);
        if (next < best) best = next;
        if (best != INT64_MAX) {
            if (best * 1000 > after_ms) return best * 1000;
        }
    }
    return -1;
}

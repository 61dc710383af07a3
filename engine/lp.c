/*
 * engine/lp.c — InfluxDB 1.x line protocol parser (interface in lp.h).
 *
 * Job: turn a buffer of line protocol into one mk_lp_line per good line and
 * one mk_lp_error per bad line, fast enough that bulk import is limited by
 * storage, not by parsing (target: >= 4 M fleet lines/s on one core).
 *
 * Grammar of one line (after optional leading spaces/tabs):
 *
 *   measurement ( ',' tagkey '=' tagvalue )* SP+ fieldkey '=' value
 *       ( ',' fieldkey '=' value )* ( WS+ timestamp )? WS*
 *
 *   SP = ' ' (the only separator after measurement and tags, as in InfluxDB:
 *   a tab there is an ordinary byte of the name); WS = ' ' or '\t' (accepted
 *   wherever extra whitespace is skipped: before the field set, between
 *   fields and timestamp, at the end of the line).
 *
 * Escaping follows InfluxDB 1.x (models/points.go), which is a "previous
 * byte" rule rather than a pairwise one:
 *   - a backslash immediately before a special byte escapes it: the byte is
 *     part of the name and the backslash is dropped. Special bytes are
 *     ',' and ' ' in a measurement; ',' '=' and ' ' in tag keys, tag values
 *     and field keys;
 *   - every other backslash is literal, including the first of "\\": so
 *     `a\\,b` is the name `a\,b` and `a\\ b` is `a\ b` (InfluxDB's own
 *     test cases). A consequence: a name cannot end in a backslash.
 *   - in double-quoted string values `\"` is '"' and `\\` is '\'; any other
 *     backslash is literal. A backslash right before a line break (LF or
 *     CRLF) continues the string on the next physical line; the backslash is
 *     dropped and the line break kept. An unescaped line break inside a
 *     string ends the line, which is then reported as an unterminated string
 *     (InfluxDB 1.x would instead accept a raw newline inside quotes).
 *
 * Values: floats as strtod reads them minus hex/inf/nan and a leading '+'
 * (InfluxDB rejects those too); out-of-range floats (overflow to inf) are
 * errors. `12i` int64, `12u` uint64 (no minus), range-checked; booleans
 * t T true True TRUE f F false False FALSE; "strings".
 *
 * Duplicates: a repeated tag key is an error (as InfluxDB). A repeated field
 * key is not: the last occurrence wins (InfluxDB builds a map), so each
 * yielded line has distinct field keys, in the order of their last
 * occurrence.
 *
 * Line numbers and columns are physical: a string continued over an escaped
 * newline makes its line span several numbers; mk_lp_line.line_no is the
 * first. Columns are byte offsets in the physical line + 1; an error "at the
 * end of the line" points one past its last byte (before any \r).
 *
 * Memory: tags, fields and the permutation used to sort them live in arrays
 * owned by the parser, grown by doubling and reused, so steady-state parsing
 * does no allocation. Strings without escapes point into the input; escaped
 * ones are unescaped into "scratch" chunks that never move while a line is
 * being built (a new chunk is chained instead of realloc'ing), and are all
 * recycled at the next mk_lp_next.
 *
 * Floats: exact decimal strings of <= 19 significant digits with a small
 * exponent are converted by Clinger's fast path (the integer mantissa and
 * the power of ten are both exact doubles, so one IEEE multiply or divide
 * gives the correctly rounded result, which is what strtod returns). Every
 * other float goes to strtod_l in the "C" locale, so the result is always
 * bit-identical to strtod's (tested on random decimals).
 */
#include "lp.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- byte classes ------------------------------------------------------ */

enum {
    C_MEAS = 1,   /* stops a measurement scan: ',' ' ' '\\' */
    C_KEY = 2,    /* stops a tag key/value or field key scan: ',' '=' ' ' '\\' */
    C_VEND = 4,   /* ends a non-string field value: ',' ' ' '\t' */
    C_STR = 8,    /* stops a string scan: '"' '\\' */
    C_WS = 16,    /* skippable whitespace: ' ' '\t' */
    E_MEAS = 32,  /* escapable in a measurement: ',' ' ' */
    E_KEY = 64    /* escapable in tag keys/values, field keys: ',' '=' ' ' */
};

static const uint8_t k_cls[256] = {
    [','] = C_MEAS | C_KEY | C_VEND | E_MEAS | E_KEY,
    [' '] = C_MEAS | C_KEY | C_VEND | C_WS | E_MEAS | E_KEY,
    ['='] = C_KEY | E_KEY,
    ['\\'] = C_MEAS | C_KEY | C_STR,
    ['\t'] = C_VEND | C_WS,
    ['"'] = C_STR,
};

#define CLS(c) (k_cls[(uint8_t)(c)])

/* ---- parser state ------------------------------------------------------ */

/* A tag while its line is parsed: the column is kept for the duplicate-key
 * error, which is only known after sorting. */
typedef struct tagent {
    mk_lp_tag t;
    uint32_t column;
} tagent;

/* Unescaped-string storage. Chunks never move: a line that needs more than
 * the current chunk gets a new one chained in front, so pointers already
 * handed out for this line stay valid. */
typedef struct scratch {
    struct scratch *prev;
    size_t cap;
    size_t used;
    char data[];
} scratch;

struct mk_lp_parser {
    const char *buf;
    size_t len;
    size_t pos;             /* offset of the next line to parse */
    mk_precision precision;
    uint64_t line_no;       /* number of the physical line starting at pos */

    /* The physical line being parsed (moves on over an escaped newline). */
    const char *ln_start;   /* its first byte */
    const char *le;         /* end of its content: before "\n" or "\r\n" */
    const char *line0;      /* first byte of the logical line (length limit) */
    size_t next;            /* offset just past its '\n' (or len) */
    uint64_t cur_line;      /* its number */

    tagent *tg;             /* tags as parsed */
    mk_lp_tag *tags;        /* tags sorted, as yielded */
    uint32_t tg_cap;        /* capacity of tg and tags */
    mk_lp_field *fields;
    uint32_t f_cap;
    uint32_t *idx;          /* sort permutation + merge scratch: 2 * cap */
    size_t idx_cap;
    scratch *scr;
    char *num;              /* NUL-terminated copy of a number for strtod_l */
    size_t num_cap;
    locale_t c_loc;         /* "C" locale, so '.' is the decimal point */
};

/* ---- small helpers ----------------------------------------------------- */

static uint32_t column_of(const mk_lp_parser *p, const char *at)
{
    size_t off = (size_t)(at - p->ln_start);
    return off >= UINT32_MAX ? UINT32_MAX : (uint32_t)off + 1;
}

/* Writes a printable, length-limited rendering of s[0..n) into out: control
 * bytes become '?', long tokens are cut (on a UTF-8 boundary) with "...". */
static const char *show(char *out, size_t cap, const char *s, size_t n)
{
    size_t max = cap - 4, k = n;
    int cut = 0;
    if (k > max) {
        k = max;
        while (k > 0 && ((uint8_t)s[k] & 0xc0) == 0x80) k--;
        cut = 1;
    }
    for (size_t i = 0; i < k; i++) {
        uint8_t c = (uint8_t)s[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cut) memcpy(out + k, "...", 3), k += 3;
    out[k] = '\0';
    return out;
}

enum { SHOW = 34 }; /* room for a shown token: 30 bytes + "..." + NUL */

static int fail(mk_lp_parser *p, mk_lp_error *err, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(mk_lp_parser *p, mk_lp_error *err, const char *at, const char *fmt, ...)
{
    va_list ap;
    err->line = p->cur_line;
    err->column = column_of(p, at);
    va_start(ap, fmt);
    vsnprintf(err->reason, sizeof err->reason, fmt, ap);
    va_end(ap);
    return MK_LP_ERROR;
}

static inline int str_cmp(mk_lp_str a, mk_lp_str b)
{
    /* Keys usually differ in their first byte: decide without memcmp. */
    if (a.len && b.len && a.p[0] != b.p[0]) return (uint8_t)a.p[0] - (uint8_t)b.p[0];
    uint32_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c) return c;
    return (a.len > b.len) - (a.len < b.len);
}

static inline int str_eq(mk_lp_str a, mk_lp_str b)
{
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* Grows *arr (elements of size elem) so it holds at least need; doubling. */
static int grow(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap) return 0;
    uint64_t n = *cap ? *cap : 8;
    while (n < need) n *= 2;
    if (n > UINT32_MAX) n = UINT32_MAX;
    void *q = realloc(*arr, (size_t)n * elem);
    if (!q) return -1;
    *arr = q;
    *cap = (uint32_t)n;
    return 0;
}

static char *scratch_alloc(mk_lp_parser *p, size_t n)
{
    scratch *c = p->scr;
    if (c && c->cap - c->used >= n) {
        char *r = c->data + c->used;
        c->used += n;
        return r;
    }
    size_t cap = c ? c->cap * 2 : 4096;
    if (cap < n) cap = n;
    scratch *nc = malloc(sizeof *nc + cap);
    if (!nc) return NULL;
    nc->cap = cap;
    nc->used = n;
    nc->prev = NULL;
    if (c) {
        if (c->used) {
            nc->prev = c; /* still referenced by this line: keep it */
        } else {
            nc->prev = c->prev;
            free(c);
        }
    }
    p->scr = nc;
    return nc->data;
}

/* Start of a line: everything in scratch is dead; keep the newest (largest)
 * chunk for reuse. */
static void scratch_reset(mk_lp_parser *p)
{
    scratch *c = p->scr;
    if (!c) return;
    scratch *q = c->prev;
    while (q) {
        scratch *prev = q->prev;
        free(q);
        q = prev;
    }
    c->prev = NULL;
    c->used = 0;
}

/* ---- names ------------------------------------------------------------- */

#if defined(__SSE2__)
/* Bit i set when s[i] (i < 16) is a stop byte of class stop (C_MEAS or
 * C_KEY): 16 bytes in a few instructions, where names are long enough. */
static inline unsigned stop_mask16(const char *s, unsigned stop)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(',')), _mm_cmpeq_epi8(v, _mm_set1_epi8(' ')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
    if (stop == C_KEY) m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('=')));
    return (unsigned)_mm_movemask_epi8(m);
}
#endif

/* Scans a name from s to its first unescaped stop byte (class `stop`; esc =
 * the bytes a backslash escapes here). Sets *has_esc when an escape needs
 * removing; a literal backslash does not (the raw bytes are the name). With
 * SSE2 (every x86-64) 16 bytes are looked at per step while that many
 * are left. */
static inline const char *scan_name(const char *s, const char *e, unsigned stop, unsigned esc,
                                    int *has_esc)
{
    for (;;) {
#if defined(__SSE2__)
        if (stop == C_MEAS || stop == C_KEY) {
            while (e - s >= 16) {
                unsigned mk = stop_mask16(s, stop);
                if (mk) {
                    s += __builtin_ctz(mk);
                    goto hit;
                }
                s += 16;
            }
        }
#endif
        while (e - s >= 4) {
            if (CLS(s[0]) & stop) goto hit;
            if (CLS(s[1]) & stop) { s += 1; goto hit; }
            if (CLS(s[2]) & stop) { s += 2; goto hit; }
            if (CLS(s[3]) & stop) { s += 3; goto hit; }
            s += 4;
        }
        while (s < e && !(CLS(*s) & stop)) s++;
        if (s == e) return s;
    hit:
        if (*s != '\\') return s;
        if (s + 1 < e && (CLS(s[1]) & esc)) {
            *has_esc = 1;
            s += 2;
        } else {
            s++; /* literal backslash; the next byte is judged on its own */
        }
    }
}

static int unescape_name(mk_lp_parser *p, const char *s, const char *e, unsigned esc,
                         mk_lp_str *out);

/* Makes out the name raw[0..n): the raw bytes when there is nothing to
 * unescape (the common case, kept inline), else an unescaped copy. */
static inline int make_name(mk_lp_parser *p, const char *s, const char *e, int has_esc,
                            unsigned esc, mk_lp_str *out)
{
    if (!has_esc) {
        out->p = s;
        out->len = (uint32_t)(e - s);
        return 0;
    }
    return unescape_name(p, s, e, esc, out);
}

static int unescape_name(mk_lp_parser *p, const char *s, const char *e, unsigned esc,
                         mk_lp_str *out)
{
    char *d = scratch_alloc(p, (size_t)(e - s));
    if (!d) return -1;
    char *o = d;
    while (s < e) {
        if (*s == '\\' && s + 1 < e && (CLS(s[1]) & esc)) {
            *o++ = s[1];
            s += 2;
        } else {
            *o++ = *s++;
        }
    }
    out->p = d;
    out->len = (uint32_t)(o - d);
    return 0;
}

/* ---- numbers ----------------------------------------------------------- */

/* Eight ASCII digits at once (SWAR), on little-endian machines: the first
 * byte in memory is the low byte of the word, i.e. the most significant
 * digit. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MK_LP_SWAR 1
#else
#define MK_LP_SWAR 0
#endif

/* Are all 8 bytes of w in '0'..'9'? (0x30..0x39: adding 0x46 carries into
 * the top bit exactly for bytes >= 0x3a; subtracting 0x30 borrows into it
 * for bytes < 0x30; bytes >= 0x80 have it set already.) */
static inline int swar_is_8digits(uint64_t w)
{
    return (((w + 0x4646464646464646ull) | (w - 0x3030303030303030ull)) & 0x8080808080808080ull) == 0;
}

/* The value of 8 digits (swar_is_8digits(w)): pairs, then quads, then the
 * two halves, each step one multiply-add of the lanes. */
static inline uint64_t swar_8digits(uint64_t w)
{
    w -= 0x3030303030303030ull;
    w = (w * 10 + (w >> 8)) & 0x00ff00ff00ff00ffull;        /* 2-digit lanes */
    w = (w * 100 + (w >> 16)) & 0x0000ffff0000ffffull;      /* 4-digit lanes */
    return (w * 10000 + (w >> 32)) & 0xffffffffull;         /* 8 digits */
}

static const double k_pow10[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static const uint64_t k_pow10_u[] = {
    1ull,           10ull,           100ull,           1000ull,           10000ull,
    100000ull,      1000000ull,      10000000ull,      100000000ull,      1000000000ull,
    10000000000ull, 100000000000ull, 1000000000000ull, 10000000000000ull, 100000000000000ull,
    1000000000000000ull, 10000000000000000ull,
};

/* Clinger's fast path is exact only when every double operation rounds once
 * to double (no x87 extended precision). */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define MK_LP_FAST_FLOAT 1
#else
#define MK_LP_FAST_FLOAT 0
#endif

/* The decimal m * 10^e10 as a double when it can be done exactly with one
 * rounding; returns 0 when the caller must use strtod. */
static int fast_double(uint64_t m, int64_t e10, double *out)
{
    if (!MK_LP_FAST_FLOAT) return 0;
    if (m == 0) { *out = 0.0; return 1; }
    if (m > (1ull << 53)) return 0;
    if (e10 >= 0 && e10 <= 22) { *out = (double)m * k_pow10[e10]; return 1; }
    if (e10 < 0 && e10 >= -22) { *out = (double)m / k_pow10[-e10]; return 1; }
    if (e10 > 22 && e10 <= 22 + 16) {
        /* 123e30 = 123000000e22: move zeros into the mantissa while it stays
         * exact (<= 2^53), then one multiply. */
        uint64_t k = k_pow10_u[e10 - 22];
        if (m > (1ull << 53) / k) return 0;
        *out = (double)(m * k) * 1e22;
        return 1;
    }
    return 0;
}

static int slow_double(mk_lp_parser *p, const char *s, size_t n, double *out)
{
    if (n + 1 > p->num_cap) {
        size_t cap = p->num_cap ? p->num_cap : 64;
        while (cap < n + 1) cap *= 2;
        char *q = realloc(p->num, cap);
        if (!q) return -1;
        p->num = q;
        p->num_cap = cap;
    }
    memcpy(p->num, s, n);
    p->num[n] = '\0';
    char *end = NULL;
    *out = p->c_loc ? strtod_l(p->num, &end, p->c_loc) : strtod(p->num, &end);
    return end == p->num + n ? 0 : -2;
}

/* Parses the number at s (a digit, '-' or '.') for field f; returns the
 * end or NULL after filling err. */
static const char *parse_number(mk_lp_parser *p, const char *s, const char *e, mk_lp_field *f,
                                mk_lp_error *err, int *rc)
{
    char t1[SHOW], t2[SHOW];
    const char *q = s;
    int neg = 0;
    if (*q == '-') { neg = 1; q++; }
    const char *d0 = q;
    uint64_t m = 0;      /* first 19 significant digits */
    int nd = 0;          /* significant digits in m */
    int trunc = 0;       /* more significant digits than m holds */
    int64_t dexp = 0;    /* decimal exponent of m from the point */

    while (q < e && (unsigned)(*q - '0') < 10) {
        if (nd < 19) {
            m = m * 10 + (unsigned)(*q - '0');
            nd += m != 0;
        } else {
            trunc = 1;
        }
        q++;
    }
    const char *int_end = q;
    int has_dot = 0, has_exp = 0;
    if (q < e && *q == '.') {
        has_dot = 1;
        q++;
        while (q < e && (unsigned)(*q - '0') < 10) {
            if (nd < 19) {
                m = m * 10 + (unsigned)(*q - '0');
                nd += m != 0;
                dexp--;
            } else {
                trunc = 1;
            }
            q++;
        }
    }
    size_t n_digits = (size_t)(q - d0) - (size_t)has_dot;
    int64_t ex = 0;
    if (n_digits > 0 && q < e && (*q == 'e' || *q == 'E')) {
        has_exp = 1;
        q++;
        int eneg = 0;
        if (q < e && (*q == '+' || *q == '-')) { eneg = *q == '-'; q++; }
        const char *ed = q;
        while (q < e && (unsigned)(*q - '0') < 10) {
            if (ex < 1000000) ex = ex * 10 + (*q - '0');
            q++;
        }
        if (q == ed) n_digits = 0; /* "1e" / "1e+": no exponent digits */
        if (eneg) ex = -ex;
    }
    int suffix = 0;
    if (q < e && (*q == 'i' || *q == 'u')) suffix = *q++;

    /* The value ends at ',', ' ', '\t' or the end of the line. */
    const char *te = q;
    while (te < e && !(CLS(*te) & C_VEND)) te++;
    if (n_digits == 0 || te != q || (suffix && (has_dot || has_exp))) {
        *rc = fail(p, err, s, "invalid number '%s' for field '%s'", show(t1, SHOW, s, te - s),
                   show(t2, SHOW, f->key.p, f->key.len));
        return NULL;
    }

    if (suffix) {
        uint64_t v = m;
        int over = 0;
        if (trunc || nd == 19) {
            /* Exact parse with overflow check (uint64 max has 20 digits). */
            v = 0;
            for (const char *c = d0; c < int_end; c++) {
                unsigned dg = (unsigned)(*c - '0');
                if (v > (UINT64_MAX - dg) / 10) { over = 1; break; }
                v = v * 10 + dg;
            }
        }
        if (suffix == 'i') {
            uint64_t lim = neg ? (1ull << 63) : (1ull << 63) - 1;
            if (over || v > lim) {
                *rc = fail(p, err, s, "integer %s for field '%s' is out of the int64 range",
                           show(t1, SHOW, s, q - s), show(t2, SHOW, f->key.p, f->key.len));
                return NULL;
            }
            f->type = MK_LP_INT;
            f->i = !neg ? (int64_t)v : v == (1ull << 63) ? INT64_MIN : -(int64_t)v;
            f->value = (double)f->i;
        } else {
            if (neg) {
                *rc = fail(p, err, s, "unsigned %s for field '%s' is negative",
                           show(t1, SHOW, s, q - s), show(t2, SHOW, f->key.p, f->key.len));
                return NULL;
            }
            if (over) {
                *rc = fail(p, err, s, "unsigned %s for field '%s' is out of the uint64 range",
                           show(t1, SHOW, s, q - s), show(t2, SHOW, f->key.p, f->key.len));
                return NULL;
            }
            f->type = MK_LP_UINT;
            f->u = v;
            f->value = (double)v;
        }
        return q;
    }

    double v;
    if (trunc || !fast_double(m, dexp + ex, &v)) {
        int r = slow_double(p, s, (size_t)(q - s), &v);
        if (r == -1) {
            *rc = fail(p, err, s, "out of memory");
            return NULL;
        }
        if (r != 0 || isinf(v) || isnan(v)) {
            *rc = fail(p, err, s, "float %s for field '%s' is out of range",
                       show(t1, SHOW, s, q - s), show(t2, SHOW, f->key.p, f->key.len));
            return NULL;
        }
        /* strtod already applied the sign. */
    } else if (neg) {
        v = -v;
    }
    f->type = MK_LP_FLOAT;
    f->value = v;
    return q;
}

/* ---- strings ----------------------------------------------------------- */

/* Moves the current line on to the next physical line (a string continued
 * by an escaped newline). Returns 0 if there is none. */
static int next_physical_line(mk_lp_parser *p)
{
    const char *end = p->buf + p->len;
    const char *nl = p->buf + p->next - 1;
    if (p->next == 0 || p->next > p->len || *nl != '\n') return 0; /* no newline: end of input */
    const char *s = nl + 1;
    const char *nl2 = memchr(s, '\n', (size_t)(end - s));
    p->ln_start = s;
    p->le = nl2 ? nl2 : end;
    p->next = nl2 ? (size_t)(nl2 + 1 - p->buf) : p->len;
    if (p->le > s && p->le[-1] == '\r') p->le--;
    p->cur_line++;
    return 1;
}

/* Parses the quoted string at s (s[0] == '"'); may advance p->le over
 * escaped newlines. */
static const char *parse_string(mk_lp_parser *p, const char *s, mk_lp_field *f, mk_lp_error *err,
                                int *rc)
{
    char t1[SHOW], t2[SHOW];
    const char *open = s;
    uint64_t open_line = p->cur_line;
    const char *open_ln = p->ln_start;
    const char *q = s + 1;
    int has_esc = 0;
    for (;;) {
        const char *e = p->le;
        while (q < e && !(CLS(*q) & C_STR)) q++;
        if (q < e && *q == '"') break;
        if (q < e && q + 1 < e) {
            if (q[1] == '"' || q[1] == '\\') has_esc = 1;
            q += 2;
            continue;
        }
        if (q < e && q + 1 == e && next_physical_line(p)) {
            /* Backslash before the line break: the string goes on. */
            if ((uint64_t)(p->le - p->line0) >= UINT32_MAX) {
                *rc = fail(p, err, p->ln_start, "line is longer than 4 GiB");
                return NULL;
            }
            has_esc = 1;
            q = p->ln_start;
            continue;
        }
        /* End of the line with the quote still open: report it where it
         * opened (the current line stays where the scan stopped, so the
         * parser resumes after it). */
        uint64_t cur = p->cur_line;
        const char *cur_ln = p->ln_start;
        p->cur_line = open_line;
        p->ln_start = open_ln;
        *rc = fail(p, err, open, "unterminated string for field '%s'",
                   show(t1, SHOW, f->key.p, f->key.len));
        p->cur_line = cur;
        p->ln_start = cur_ln;
        return NULL;
    }
    /* q is at the closing quote. */
    const char *b = s + 1;
    f->type = MK_LP_STRING;
    f->value = 0.0;
    if (!has_esc) {
        f->str.p = b;
        f->str.len = (uint32_t)(q - b);
    } else {
        char *d = scratch_alloc(p, (size_t)(q - b));
        if (!d) {
            *rc = fail(p, err, open, "out of memory");
            return NULL;
        }
        char *o = d;
        const char *c = b;
        while (c < q) {
            if (*c == '\\' && c + 1 < q) {
                if (c[1] == '"' || c[1] == '\\' || c[1] == '\n') {
                    *o++ = c[1];
                    c += 2;
                    continue;
                }
                if (c[1] == '\r' && c + 2 < q && c[2] == '\n') {
                    c++; /* escaped CRLF: drop the backslash, keep "\r\n" */
                    continue;
                }
            }
            *o++ = *c++;
        }
        f->str.p = d;
        f->str.len = (uint32_t)(o - d);
    }
    q++;
    if (q < p->le && !(CLS(*q) & C_VEND)) {
        *rc = fail(p, err, q, "unexpected '%s' after the string value of field '%s'",
                   show(t1, SHOW, q, 1), show(t2, SHOW, f->key.p, f->key.len));
        return NULL;
    }
    return q;
}

/* ---- booleans ---------------------------------------------------------- */

static int parse_bool(const char *s, size_t n, double *v)
{
    switch (n) {
    case 1:
        if (*s == 't' || *s == 'T') { *v = 1.0; return 1; }
        if (*s == 'f' || *s == 'F') { *v = 0.0; return 1; }
        return 0;
    case 4:
        if (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4)) {
            *v = 1.0;
            return 1;
        }
        return 0;
    case 5:
        if (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5)) {
            *v = 0.0;
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

/* ---- sorting ----------------------------------------------------------- */

typedef int (*idx_cmp)(const mk_lp_parser *p, uint32_t a, uint32_t b);

static int cmp_tag(const mk_lp_parser *p, uint32_t a, uint32_t b)
{
    return str_cmp(p->tg[a].t.key, p->tg[b].t.key);
}

static int cmp_field(const mk_lp_parser *p, uint32_t a, uint32_t b)
{
    return str_cmp(p->fields[a].key, p->fields[b].key);
}

/* Stable sort of a[0..n) (insertion sort for short runs, merge above):
 * equal keys keep their input order, so duplicates sit together with the
 * later occurrence last. */
static void sort_idx(const mk_lp_parser *p, uint32_t *a, uint32_t *tmp, uint32_t n, idx_cmp cmp)
{
    if (n <= 16) {
        for (uint32_t i = 1; i < n; i++) {
            uint32_t x = a[i], j = i;
            while (j > 0 && cmp(p, a[j - 1], x) > 0) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
        return;
    }
    uint32_t h = n / 2;
    sort_idx(p, a, tmp, h, cmp);
    sort_idx(p, a + h, tmp, n - h, cmp);
    if (cmp(p, a[h - 1], a[h]) <= 0) return;
    memcpy(tmp, a, (size_t)h * sizeof *a);
    uint32_t i = 0, j = h, k = 0;
    while (i < h && j < n) a[k++] = cmp(p, a[j], tmp[i]) < 0 ? a[j++] : tmp[i++];
    while (i < h) a[k++] = tmp[i++];
}

static int reserve_idx(mk_lp_parser *p, uint32_t n)
{
    if ((size_t)n * 2 <= p->idx_cap) return 0;
    size_t cap = p->idx_cap ? p->idx_cap : 32;
    while (cap < (size_t)n * 2) cap *= 2;
    uint32_t *q = realloc(p->idx, cap * sizeof *q);
    if (!q) return -1;
    p->idx = q;
    p->idx_cap = cap;
    return 0;
}

/* Sorts the parsed tags into p->tags; a repeated key is an error, reported
 * at its later occurrence. */
static int sort_tags(mk_lp_parser *p, uint32_t n, mk_lp_error *err)
{
    char t1[SHOW];
    /* Tags usually arrive sorted (writers sort them, as InfluxDB advises):
     * one pass of n - 1 comparisons then, and no permutation. */
    uint32_t i = 1;
    while (i < n && str_cmp(p->tg[i - 1].t.key, p->tg[i].t.key) < 0) i++;
    if (i == n) {
        for (i = 0; i < n; i++) p->tags[i] = p->tg[i].t;
        return 0;
    }
    if (reserve_idx(p, n)) return fail(p, err, p->ln_start, "out of memory");
    uint32_t *a = p->idx;
    for (i = 0; i < n; i++) a[i] = i;
    sort_idx(p, a, a + n, n, cmp_tag);
    for (i = 0; i < n; i++) {
        if (i > 0 && str_eq(p->tg[a[i - 1]].t.key, p->tg[a[i]].t.key)) {
            const tagent *d = &p->tg[a[i]];
            /* The column is of the physical line the tags are on, which is
             * still the current one (tags precede any string value). */
            err->line = p->cur_line;
            err->column = d->column;
            snprintf(err->reason, sizeof err->reason, "duplicate tag key '%s'",
                     show(t1, SHOW, d->t.key.p, d->t.key.len));
            return MK_LP_ERROR;
        }
        p->tags[i] = p->tg[a[i]].t;
    }
    return 0;
}

/* Drops every field whose key occurs again later in the line (last wins). */
static int dedup_fields(mk_lp_parser *p, uint32_t n, uint32_t *out_n, mk_lp_error *err)
{
    mk_lp_field *f = p->fields;
    uint32_t w = 0;
    /* Equal keys have equal (length, first byte), so equal bits below: when
     * no two fields share a bit there is no duplicate (the usual line), and
     * the pairwise comparison is skipped. */
    uint64_t seen = 0;
    int is_clash = 0;
    for (uint32_t i = 0; i < n && !is_clash; i++) {
        mk_lp_str k = f[i].key;
        uint64_t bit = 1ull << ((k.len + (k.len ? (uint8_t)k.p[0] : 0u) * 7u) & 63u);
        is_clash = (seen & bit) != 0;
        seen |= bit;
    }
    if (!is_clash) {
        *out_n = n;
        return 0;
    }
    if (n <= 16) {
        for (uint32_t i = 0; i < n; i++) {
            int dup = 0;
            for (uint32_t j = i + 1; j < n && !dup; j++) dup = str_eq(f[i].key, f[j].key);
            if (!dup) {
                if (w != i) f[w] = f[i];
                w++;
            }
        }
        *out_n = w;
        return 0;
    }
    /* Many fields: sort a permutation by key (stable, so the last occurrence
     * of a key ends its run) and mark the others with column 0, which no
     * real field has. */
    if (reserve_idx(p, n)) return fail(p, err, p->ln_start, "out of memory");
    uint32_t *a = p->idx;
    for (uint32_t i = 0; i < n; i++) a[i] = i;
    sort_idx(p, a, a + n, n, cmp_field);
    for (uint32_t i = 0; i + 1 < n; i++)
        if (str_eq(f[a[i]].key, f[a[i + 1]].key)) f[a[i]].column = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (f[i].column == 0) continue; /* real columns are >= 1 */
        if (w != i) f[w] = f[i];
        w++;
    }
    *out_n = w;
    return 0;
}

/* ---- one line ---------------------------------------------------------- */

static int oom(mk_lp_parser *p, mk_lp_error *err, const char *at)
{
    return fail(p, err, at, "out of memory");
}

/* Parses the logical line whose first non-blank byte is s. */
static int parse_line(mk_lp_parser *p, const char *s, mk_lp_line *line, mk_lp_error *err)
{
    char t1[SHOW], t2[SHOW];
    const char *e = p->le;
    int rc = MK_LP_ERROR;
    uint64_t first_line = p->cur_line;

    /* measurement */
    const char *ms = s;
    int has_esc = 0;
    if (*s == ',') return fail(p, err, s, "missing measurement name before ','");
    s = scan_name(s, e, C_MEAS, E_MEAS, &has_esc);
    if (make_name(p, ms, s, has_esc, E_MEAS, &line->measurement)) return oom(p, err, ms);

    /* tags */
    uint32_t nt = 0;
    while (s < e && *s == ',') {
        s++;
        const char *ks = s;
        has_esc = 0;
        s = scan_name(s, e, C_KEY, E_KEY, &has_esc);
        if (s == ks) {
            if (s < e && *s == '=') return fail(p, err, s, "empty tag key");
            return fail(p, err, s, "missing tag key after ','");
        }
        if (nt == p->tg_cap) {
            uint32_t cap = p->tg_cap;
            if (grow((void **)&p->tg, &cap, nt + 1, sizeof *p->tg)) return oom(p, err, ks);
            cap = p->tg_cap;
            if (grow((void **)&p->tags, &cap, nt + 1, sizeof *p->tags)) return oom(p, err, ks);
            p->tg_cap = cap;
        }
        tagent *t = &p->tg[nt];
        t->column = column_of(p, ks);
        if (make_name(p, ks, s, has_esc, E_KEY, &t->t.key)) return oom(p, err, ks);
        if (s == e || *s != '=')
            return fail(p, err, s, "missing '=' after tag key '%s'",
                        show(t1, SHOW, t->t.key.p, t->t.key.len));
        s++;
        const char *vs = s;
        has_esc = 0;
        s = scan_name(s, e, C_KEY, E_KEY, &has_esc);
        if (s == vs)
            return fail(p, err, s, "missing value for tag '%s'",
                        show(t1, SHOW, t->t.key.p, t->t.key.len));
        if (s < e && *s == '=')
            return fail(p, err, s, "unescaped '=' in the value of tag '%s'",
                        show(t1, SHOW, t->t.key.p, t->t.key.len));
        if (make_name(p, vs, s, has_esc, E_KEY, &t->t.value)) return oom(p, err, vs);
        nt++;
    }
    line->series_raw.p = ms;
    line->series_raw.len = (uint32_t)(s - ms);
    if (nt > 0 && (rc = sort_tags(p, nt, err)) != 0) return rc;

    /* field set: s is at ' ' or the end of the line */
    if (s == e) return fail(p, err, s, "missing field set");
    while (s < e && (CLS(*s) & C_WS)) s++;
    if (s == e) return fail(p, err, s, "missing field set");

    uint32_t nf = 0;
    for (;;) {
        const char *ks = s;
        has_esc = 0;
        s = scan_name(s, e, C_KEY, E_KEY, &has_esc);
        if (s == ks) {
            if (s < e && *s == '=') return fail(p, err, s, "empty field key");
            return fail(p, err, s, "missing field key after ','");
        }
        if (nf == p->f_cap && grow((void **)&p->fields, &p->f_cap, nf + 1, sizeof *p->fields))
            return oom(p, err, ks);
        mk_lp_field *f = &p->fields[nf];
        f->column = column_of(p, ks);
        if (make_name(p, ks, s, has_esc, E_KEY, &f->key)) return oom(p, err, ks);
        if (s == e || *s != '=')
            return fail(p, err, s, "missing '=' after field key '%s'",
                        show(t1, SHOW, f->key.p, f->key.len));
        s++;
        f->i = 0;
        f->u = 0;
        f->str.p = NULL;
        f->str.len = 0;
        if (s == e || (CLS(*s) & C_VEND))
            return fail(p, err, s, "missing value for field '%s'",
                        show(t1, SHOW, f->key.p, f->key.len));
        uint8_t c = (uint8_t)*s;
        if ((unsigned)(c - '0') < 10 || c == '-' || c == '.') {
            s = parse_number(p, s, e, f, err, &rc);
            if (!s) return rc;
        } else if (c == '"') {
            s = parse_string(p, s, f, err, &rc);
            if (!s) return rc;
            e = p->le; /* an escaped newline may have moved the line end */
        } else {
            const char *vs = s;
            while (s < e && !(CLS(*s) & C_VEND)) s++;
            if (!parse_bool(vs, (size_t)(s - vs), &f->value))
                return fail(p, err, vs,
                            "invalid field value '%s' for field '%s': expected a number, "
                            "boolean or quoted string",
                            show(t1, SHOW, vs, (size_t)(s - vs)),
                            show(t2, SHOW, f->key.p, f->key.len));
            f->type = MK_LP_BOOL;
        }
        nf++;
        if (s < e && *s == ',') {
            s++;
            continue;
        }
        break;
    }

    /* timestamp */
    while (s < e && (CLS(*s) & C_WS)) s++;
    line->has_ts = 0;
    line->ts_ms = 0;
    if (s < e) {
        const char *ts = s;
        int neg = 0;
        if (*s == '-') { neg = 1; s++; }
        const char *d0 = s;
        uint64_t v = 0;
        int over = 0;
        /* 18 digits cannot pass 2^63 (10^18 - 1 < 2^63): no check there. */
        const char *e18 = e - s > 18 ? s + 18 : e;
#if MK_LP_SWAR
        if (e - s >= 8) {
            uint64_t w8;
            memcpy(&w8, s, 8);
            if (swar_is_8digits(w8)) {
                v = swar_8digits(w8);
                s += 8;
            }
        }
#endif
        while (s < e18 && (unsigned)(*s - '0') < 10) {
            v = v * 10 + (unsigned)(*s - '0');
            s++;
        }
        while (s < e && (unsigned)(*s - '0') < 10) {
            unsigned dg = (unsigned)(*s - '0');
            if (v > ((1ull << 63) - dg) / 10) over = 1;
            else v = v * 10 + dg;
            s++;
        }
        const char *te = s;
        while (te < e && !(CLS(*te) & C_WS)) te++;
        if (s == d0 || te != s)
            return fail(p, err, ts, "invalid timestamp '%s': expected an integer",
                        show(t1, SHOW, ts, (size_t)(te - ts)));
        if (over || (!neg && v > (uint64_t)INT64_MAX))
            return fail(p, err, ts, "timestamp %s is out of the int64 range",
                        show(t1, SHOW, ts, (size_t)(te - ts)));
        int64_t t = !neg ? (int64_t)v : v == (1ull << 63) ? INT64_MIN : -(int64_t)v;
        switch (p->precision) {
        case MK_PRECISION_NS: t = mk_floordiv(t, 1000000); break;
        case MK_PRECISION_US: t = mk_floordiv(t, 1000); break;
        case MK_PRECISION_MS: break;
        case MK_PRECISION_S:
            if (t > INT64_MAX / 1000 || t < INT64_MIN / 1000)
                return fail(p, err, ts, "timestamp %s s is out of range in milliseconds",
                            show(t1, SHOW, ts, (size_t)(te - ts)));
            t *= 1000;
            break;
        }
        while (s < e && (CLS(*s) & C_WS)) s++;
        if (s < e)
            return fail(p, err, s, "unexpected '%s' after the timestamp",
                        show(t1, SHOW, s, (size_t)(e - s)));
        line->has_ts = 1;
        line->ts_ms = t;
    }

    if (nf > 1 && (rc = dedup_fields(p, nf, &nf, err)) != 0) return rc;
    line->tags = p->tags;
    line->n_tags = nt;
    line->fields = p->fields;
    line->n_fields = nf;
    line->line_no = first_line;
    return MK_LP_LINE;
}

/* ---- API --------------------------------------------------------------- */

mk_err mk_lp_parser_new(const char *buf, size_t len, mk_precision precision,
                        uint64_t first_line_no, mk_lp_parser **out)
{
    if (!out) return MK_EINVAL;
    *out = NULL;
    if ((!buf && len) || (unsigned)precision > MK_PRECISION_S) return MK_EINVAL;
    mk_lp_parser *p = calloc(1, sizeof *p);
    if (!p) return MK_ENOMEM;
    p->buf = buf ? buf : "";
    p->len = len;
    p->precision = precision;
    p->line_no = first_line_no;
    /* Without the C locale strtod_l is replaced by strtod, which is only
     * wrong under a locale whose decimal point is not '.'. */
    p->c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    *out = p;
    return MK_OK;
}

void mk_lp_parser_free(mk_lp_parser *p)
{
    if (!p) return;
    scratch_reset(p);
    free(p->scr);
    free(p->tg);
    free(p->tags);
    free(p->fields);
    free(p->idx);
    free(p->num);
    if (p->c_loc) freelocale(p->c_loc);
    free(p);
}

int mk_lp_next(mk_lp_parser *p, mk_lp_line *line, mk_lp_error *err)
{
    if (!p || !line || !err) return MK_LP_END;
    scratch_reset(p);
    const char *end = p->buf + p->len;
    while (p->pos < p->len) {
        const char *s = p->buf + p->pos;
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        p->ln_start = p->line0 = s;
        p->le = nl ? nl : end;
        p->next = nl ? (size_t)(nl + 1 - p->buf) : p->len;
        if (p->le > s && p->le[-1] == '\r') p->le--;
        p->cur_line = p->line_no;

        while (s < p->le && (CLS(*s) & C_WS)) s++;
        if (s == p->le || *s == '#') { /* blank or comment */
            p->pos = p->next;
            p->line_no++;
            continue;
        }
        int r;
        if ((uint64_t)(p->le - p->ln_start) >= UINT32_MAX)
            r = fail(p, err, p->ln_start, "line is longer than 4 GiB");
        else
            r = parse_line(p, s, line, err);
        /* Resume after the physical line where parsing stopped. */
        p->pos = p->next;
        p->line_no = p->cur_line + 1;
        return r;
    }
    return MK_LP_END;
}

size_t mk_lp_offset(const mk_lp_parser *p)
{
    return p ? p->pos : 0;
}

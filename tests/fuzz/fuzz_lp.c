/*
 * tests/fuzz/fuzz_lp.c — libFuzzer target for the line-protocol parser.
 *
 * For arbitrary bytes, with each of the four precisions:
 *  - invariants: every error's line and column lie inside the input and its
 *    reason is a non-empty string; every line has a measurement and at least
 *    one field; tags are sorted and distinct; field keys are distinct; every
 *    string lies inside the input or wholly outside it (scratch) and is
 *    readable (hashed, so ASan sees every byte); offsets only move forward;
 *  - round trip: each good line is written back with a canonical writer
 *    (InfluxDB escaping, tags sorted, ms timestamps) and parsed again; the
 *    result must be the same line;
 *  - determinism: a second parse of the same input gives the same digest.
 * A failed check aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp.h"
#include "util.h"

#define CHECK(c)                                                                 \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "fuzz_lp: check failed: %s (%s:%d)\n", #c, __FILE__, \
                    __LINE__);                                                   \
            abort();                                                             \
        }                                                                        \
    } while (0)

typedef struct ctx {
    const uint8_t *data;
    size_t size;
    size_t *line_start; /* offset of each physical line */
    size_t *line_end;   /* offset of its '\n' (or size) */
    size_t n_phys;
} ctx;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    return mk_hash64(p, n) ^ (h * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
}

static uint64_t mix_u(uint64_t h, uint64_t v) { return mix(h, &v, sizeof v); }

/* The string is inside the input or does not overlap it at all. */
static uint64_t check_str(const ctx *c, uint64_t h, mk_lp_str s)
{
    const char *b = (const char *)c->data, *e = b + c->size;
    if (s.len == 0) return mix_u(h, 0);
    CHECK(s.p != NULL);
    if (s.p >= b && s.p < e) CHECK(s.p + s.len <= e);
    else CHECK(s.p + s.len <= b || s.p >= e);
    h = mix_u(h, s.len);
    return mix(h, s.p, s.len);
}

static int str_cmp(mk_lp_str a, mk_lp_str b)
{
    uint32_t n = a.len < b.len ? a.len : b.len;
    int r = n ? memcmp(a.p, b.p, n) : 0;
    return r ? r : (a.len > b.len) - (a.len < b.len);
}

/* ---- canonical writer ---------------------------------------------------- */

typedef struct obuf {
    char *p;
    size_t len, cap;
} obuf;

static void put(obuf *o, const void *s, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n) cap *= 2;
        o->p = realloc(o->p, cap);
        CHECK(o->p);
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_esc(obuf *o, mk_lp_str s, const char *specials)
{
    for (uint32_t i = 0; i < s.len; i++) {
        if (s.p[i] && strchr(specials, s.p[i])) put(o, "\\", 1);
        put(o, &s.p[i], 1);
    }
}

/* Writes l as canonical line protocol; returns 0 when l holds something the
 * syntax cannot express in that position (a first field key starting with
 * a tab: leading whitespace of the field set is skipped). */
static int write_line(obuf *o, const mk_lp_line *l)
{
    char tmp[64];
    if (l->fields[0].key.len && l->fields[0].key.p[0] == '\t') return 0;
    o->len = 0;
    put_esc(o, l->measurement, ", ");
    for (uint32_t i = 0; i < l->n_tags; i++) {
        put(o, ",", 1);
        put_esc(o, l->tags[i].key, ",= ");
        put(o, "=", 1);
        put_esc(o, l->tags[i].value, ",= ");
    }
    put(o, " ", 1);
    for (uint32_t i = 0; i < l->n_fields; i++) {
        const mk_lp_field *f = &l->fields[i];
        if (i) put(o, ",", 1);
        put_esc(o, f->key, ",= ");
        put(o, "=", 1);
        int n = 0;
        switch (f->type) {
        case MK_LP_FLOAT: n = snprintf(tmp, sizeof tmp, "%.17g", f->value); break;
        case MK_LP_INT: n = snprintf(tmp, sizeof tmp, "%lldi", (long long)f->i); break;
        case MK_LP_UINT: n = snprintf(tmp, sizeof tmp, "%lluu", (unsigned long long)f->u); break;
        case MK_LP_BOOL: n = snprintf(tmp, sizeof tmp, "%s", f->value != 0 ? "t" : "f"); break;
        case MK_LP_STRING:
            put(o, "\"", 1);
            for (uint32_t k = 0; k < f->str.len; k++) {
                char ch = f->str.p[k];
                if (ch == '"' || ch == '\\' || ch == '\n') put(o, "\\", 1);
                put(o, &ch, 1);
            }
            put(o, "\"", 1);
            break;
        }
        put(o, tmp, (size_t)n);
    }
    if (l->has_ts) {
        int n = snprintf(tmp, sizeof tmp, " %lld", (long long)l->ts_ms);
        put(o, tmp, (size_t)n);
    }
    put(o, "\n", 1);
    return 1;
}

static void round_trip(const mk_lp_line *a, obuf *o)
{
    if (!write_line(o, a)) return;
    mk_lp_parser *p = NULL;
    CHECK(mk_lp_parser_new(o->p, o->len, MK_PRECISION_MS, 1, &p) == MK_OK);
    mk_lp_line b;
    mk_lp_error err;
    int k = mk_lp_next(p, &b, &err);
    if (k != MK_LP_LINE) {
        fprintf(stderr, "fuzz_lp: round trip failed: %llu:%u %s\n%.*s",
                (unsigned long long)err.line, err.column, err.reason, (int)o->len, o->p);
        abort();
    }
    CHECK(str_cmp(a->measurement, b.measurement) == 0);
    CHECK(a->n_tags == b.n_tags);
    for (uint32_t i = 0; i < a->n_tags; i++) {
        CHECK(str_cmp(a->tags[i].key, b.tags[i].key) == 0);
        CHECK(str_cmp(a->tags[i].value, b.tags[i].value) == 0);
    }
    CHECK(a->n_fields == b.n_fields);
    for (uint32_t i = 0; i < a->n_fields; i++) {
        const mk_lp_field *x = &a->fields[i], *y = &b.fields[i];
        CHECK(str_cmp(x->key, y->key) == 0);
        CHECK(x->type == y->type);
        CHECK(mk_f64_bits(x->value) == mk_f64_bits(y->value));
        CHECK(x->i == y->i && x->u == y->u);
        if (x->type == MK_LP_STRING) CHECK(str_cmp(x->str, y->str) == 0);
    }
    CHECK(a->has_ts == b.has_ts);
    if (a->has_ts) CHECK(a->ts_ms == b.ts_ms);
    CHECK(mk_lp_next(p, &b, &err) == MK_LP_END);
    mk_lp_parser_free(p);
}

/* ---- one pass ------------------------------------------------------------ */

static uint64_t parse_all(const ctx *c, mk_precision prec, int do_round_trip, obuf *o)
{
    mk_lp_parser *p = NULL;
    CHECK(mk_lp_parser_new((const char *)c->data, c->size, prec, 1, &p) == MK_OK);
    uint64_t h = prec;
    size_t last_off = 0;
    uint64_t last_line = 0;
    mk_lp_line l;
    mk_lp_error err;
    int k;
    while ((k = mk_lp_next(p, &l, &err)) != MK_LP_END) {
        CHECK(k == MK_LP_LINE || k == MK_LP_ERROR);
        size_t off = mk_lp_offset(p);
        CHECK(off > last_off && off <= c->size);
        last_off = off;
        h = mix_u(h, (uint64_t)k);
        h = mix_u(h, off);
        if (k == MK_LP_ERROR) {
            CHECK(err.line >= 1 && err.line <= c->n_phys);
            CHECK(err.line >= last_line);
            last_line = err.line;
            size_t ll = c->line_end[err.line - 1] - c->line_start[err.line - 1];
            CHECK(err.column >= 1 && err.column <= ll + 1);
            size_t rn = strnlen(err.reason, sizeof err.reason);
            CHECK(rn > 0 && rn < sizeof err.reason);
            h = mix(h, err.reason, rn);
            h = mix_u(h, err.line);
            h = mix_u(h, err.column);
            continue;
        }
        CHECK(l.line_no >= 1 && l.line_no <= c->n_phys);
        CHECK(l.line_no >= last_line);
        last_line = l.line_no;
        CHECK(l.measurement.len >= 1);
        h = check_str(c, h, l.measurement);
        h = check_str(c, h, l.series_raw);
        CHECK(l.series_raw.len >= 1);
        CHECK(l.series_raw.p >= (const char *)c->data &&
              l.series_raw.p + l.series_raw.len <= (const char *)c->data + c->size);
        for (uint32_t i = 0; i < l.n_tags; i++) {
            CHECK(l.tags[i].key.len >= 1 && l.tags[i].value.len >= 1);
            if (i) CHECK(str_cmp(l.tags[i - 1].key, l.tags[i].key) < 0);
            h = check_str(c, h, l.tags[i].key);
            h = check_str(c, h, l.tags[i].value);
        }
        CHECK(l.n_fields >= 1);
        for (uint32_t i = 0; i < l.n_fields; i++) {
            const mk_lp_field *f = &l.fields[i];
            CHECK(f->key.len >= 1 && f->column >= 1);
            for (uint32_t j = 0; j < i; j++) CHECK(str_cmp(l.fields[j].key, f->key) != 0);
            h = check_str(c, h, f->key);
            h = mix_u(h, (uint64_t)f->type);
            h = mix_u(h, mk_f64_bits(f->value));
            switch (f->type) {
            case MK_LP_FLOAT: CHECK(f->value - f->value == 0); break; /* finite */
            case MK_LP_INT: CHECK(f->value == (double)f->i); h = mix_u(h, (uint64_t)f->i); break;
            case MK_LP_UINT: CHECK(f->value == (double)f->u); h = mix_u(h, f->u); break;
            case MK_LP_BOOL: CHECK(f->value == 0.0 || f->value == 1.0); break;
            case MK_LP_STRING: h = check_str(c, h, f->str); break;
            default: CHECK(0);
            }
        }
        h = mix_u(h, (uint64_t)l.has_ts);
        if (l.has_ts) h = mix_u(h, (uint64_t)l.ts_ms);
        h = mix_u(h, l.line_no);
        if (do_round_trip) round_trip(&l, o);
    }
    CHECK(mk_lp_offset(p) == c->size);
    CHECK(mk_lp_next(p, &l, &err) == MK_LP_END);
    mk_lp_parser_free(p);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctx c = {data, size, NULL, NULL, 0};
    size_t n = 1;
    for (size_t i = 0; i < size; i++) n += data[i] == '\n';
    c.line_start = malloc(n * sizeof *c.line_start);
    c.line_end = malloc(n * sizeof *c.line_end);
    CHECK(c.line_start && c.line_end);
    size_t s = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || data[i] == '\n') {
            c.line_start[c.n_phys] = s;
            c.line_end[c.n_phys] = i;
            c.n_phys++;
            s = i + 1;
        }
    }
    obuf o = {0};
    for (int prec = MK_PRECISION_NS; prec <= MK_PRECISION_S; prec++) {
        uint64_t h1 = parse_all(&c, (mk_precision)prec, prec == MK_PRECISION_NS, &o);
        uint64_t h2 = parse_all(&c, (mk_precision)prec, 0, &o);
        CHECK(h1 == h2);
    }
    free(o.p);
    free(c.line_start);
    free(c.line_end);
    return 0;
}

/*
 * query/exec.c — the InfluxQL planner and executor: runs the statements of a
 * parsed query over an mk_db and builds the answer tree (result.h), with the
 * semantics of InfluxDB 1.x.
 *
 * A SELECT goes through these stages:
 *
 *   plan      expand wildcards, name columns (alias > function/variable name,
 *             `_1` suffixes for duplicates), find aggregate calls ("slots"),
 *             the time range, GROUP BY time buckets and tag keys;
 *   resolve   per measurement and field, the series ids satisfying the tag
 *             part of WHERE (tag postings; set operations for OR and regex),
 *             grouped into tag sets and output groups;
 *   read      fast path (decomposable aggregates, no field condition): per
 *             series, chunk summaries lying inside one bucket are merged
 *             without decoding, other chunks are decoded and folded into
 *             their buckets in one forward pass; series are cut into a FIXED
 *             number of parts (independent of the thread count), parts run on
 *             n_threads threads and are merged in part order, so every result
 *             is bit-for-bit the same whatever the thread count.
 *             direct tier path (count/sum/mean/min/max/spread over GROUP BY
 *             time in multiples of a rollup tier's width): tier buckets
 *             folded into per-bucket count/sum/min/max and written straight
 *             into the answer rows (see "direct tier path" below);
 *             general path: per tag set, the needed fields are decoded and
 *             joined on time into rows; the field condition is evaluated per
 *             row; rows feed the aggregates or become raw output rows;
 *   finalize  per group and bucket the column values, fill, transformations
 *             (derivative, difference, moving_average, cumulative_sum), ORDER,
 *             LIMIT/OFFSET, SLIMIT/SOFFSET.
 *
 * Null inside the executor is NaN (stored samples are never NaN: line
 * protocol cannot write one, and NaN samples are skipped when read).
 *
 * Times: the answer carries ns; storage is ms. A WHERE range is kept as
 * inclusive ns bounds [lo, hi] and read as ms [ceil(lo), floor(hi) + 1).
 * Aggregates without GROUP BY time report time = lo (0 without a lower
 * bound); a lone selector (first last min max percentile) reports its
 * point's time. GROUP BY time buckets start at floor((t - offset) / iv) * iv
 * + offset (in the tz('...') zone's local time when given, as InfluxDB's
 * Window()) and cover the bucket of lo through the bucket of hi; without a
 * lower bound lo is the oldest matching sample, without an upper bound hi is
 * now(). count() on an empty bucket under fill(null) is 0, as InfluxDB.
 * Ties: min/max keep the earliest point, first/last the larger value (as
 * InfluxDB's reducers). Under ORDER BY time DESC, fill(previous) and the
 * transformations run in output order, as InfluxDB's iterators do.
 * distinct(), top() and bottom() give several rows per bucket and must be
 * the only column; top/bottom rows carry their points' times.
 *
 * Caps: max_series is checked on the resolved series before any read;
 * max_points on buckets x groups x columns before reading (aggregates), on
 * chunk-summary counts before decoding (raw queries over more than 4 tag
 * sets) and on the rows as they are built; values kept for median() and
 * friends count against it too. The timeout is checked between series.
 *
 * COMPARE d1, d2, ... (Meerkat extension; needs GROUP BY time and an
 * aggregate in every column, no transformations). For each bucket
 * [s, s + iv) and each column c the answer holds, after c itself:
 *   c_<d>        the same expression computed over the data of
 *                [s - d, s + iv - d) (the WHERE time range shifted back by
 *                d, the same tag condition and fill);
 *   c_ratio_<d>  c / c_<d>, null when either is null or c_<d> == 0;
 * one pair per duration, in the order written; <d> is the duration as
 * written in the query ("7d" gives mean_7d, "1w" gives mean_1w).
 *
 * EXPLAIN prints the plan; EXPLAIN ANALYZE runs the statement and adds read
 * counters and stage times. Both answer one series, column "QUERY PLAN".
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "exec_int.h"
#include "parser.h"
#include "rollup.h"
#include "util.h"

/* ---- functions ------------------------------------------------------------ */

enum {
    F_NONE = 0,
    F_COUNT, F_SUM, F_MEAN, F_MIN, F_MAX, F_FIRST, F_LAST, F_SPREAD, /* decomposable */
    F_STDDEV, F_MEDIAN, F_MODE, F_PERCENTILE, F_DISTINCT, F_COUNT_DISTINCT, F_TOP, F_BOTTOM, F_INTEGRAL,
    T_DERIV, T_NNDERIV, T_DIFF, T_NNDIFF, T_MAVG, T_CUMSUM,
};

static const struct { const char *name; int fn; } k_fns[] = {
    {"count", F_COUNT}, {"sum", F_SUM}, {"mean", F_MEAN}, {"min", F_MIN}, {"max", F_MAX},
    {"first", F_FIRST}, {"last", F_LAST}, {"spread", F_SPREAD}, {"stddev", F_STDDEV},
    {"median", F_MEDIAN}, {"mode", F_MODE}, {"percentile", F_PERCENTILE}, {"distinct", F_DISTINCT},
    {"integral", F_INTEGRAL}, {"top", F_TOP}, {"bottom", F_BOTTOM}, {"derivative", T_DERIV}, {"non_negative_derivative", T_NNDERIV},
    {"difference", T_DIFF}, {"non_negative_difference", T_NNDIFF}, {"moving_average", T_MAVG},
    {"cumulative_sum", T_CUMSUM},
};

static int fn_of(const char *name)
{
    for (size_t i = 0; i < sizeof k_fns / sizeof k_fns[0]; i++)
        if (strcmp(k_fns[i].name, name) == 0) return k_fns[i].fn;
    return F_NONE;
}
static int is_tr_fn(int f) { return f >= T_DERIV; }
static int is_decomposable(int f) { return f >= F_COUNT && f <= F_SPREAD; }
static int is_selector(int f) { return f == F_MIN || f == F_MAX || f == F_FIRST || f == F_LAST || f == F_PERCENTILE; }

/* ---- plan ----------------------------------------------------------------- */

typedef struct slot {
    const mk_ast *call;
    int fn;
    const char *field;
    uint32_t fidx;   /* index into plan.fields */
    double arg;      /* percentile N */
    int64_t unit_ns; /* integral unit */
} slot;

typedef struct xcol {
    const char *name;
    const mk_ast *expr;  /* the whole column expression */
    int tfn;             /* transformation at the top, or F_NONE */
    int post_op;         /* T(...) op k or k op T(...): MK_QTOK_ADD/SUB/MUL/DIV, 0 = none */
    int is_post_left;    /* k op T(...) */
    double post_k;
    const mk_ast *inner; /* transformation's argument */
    int64_t unit_ns;     /* derivative unit */
    int64_t mavg_n;
    int is_int;          /* count(): integers */
    int has_field;       /* raw: refers to a field */
} xcol;

typedef struct tagset {
    mk_xseries s;          /* measurement and tags (field unused) */
    uint32_t meas;         /* index into plan.meas */
    uint32_t group;
    uint64_t *fid;         /* [n_fields] series id per needed field, 0 = none */
    const mk_qseries *qs;  /* subquery source, else NULL */
} tagset;

typedef struct group {
    const char *meas;
    const char **tv;       /* values of plan.gkeys[meas] */
    uint32_t n_tags;
    const char **tk;
} group;

typedef struct agg {
    uint64_t n;
    double sum, min, max, first, last;
    int64_t tmin, tmax, tfirst, tlast; /* ns */
    double *vv;                        /* collected values (general path) */
    int64_t *vt;
    size_t nv, cap;
} agg;

typedef struct fstat {
    uint64_t n_series;
    mk_read_stats rd;
} fstat;

typedef struct plan {
    const mk_ast_select *sel;
    xcol *cols;
    uint32_t n_cols;
    slot *slots;
    uint32_t n_slots;
    const char **fields; /* fields to read */
    uint32_t n_fields;
    fstat *fst;          /* [n_fields] */
    int is_agg, has_transform, is_selector_time, has_distinct, has_integral;
    int64_t lo, hi;
    int has_lo, has_hi;
    int has_iv;
    int64_t iv, off;
    mk_tz *tz;
    /* GROUP BY tags */
    const char **gkeys_x; /* explicit keys as written */
    uint32_t n_gkeys_x;
    const char **gregex;
    uint32_t n_gregex;
    int is_gall;
    /* sources */
    const char **meas;
    uint32_t n_meas;
    const char ***gkeys; /* per measurement: the resolved, sorted group keys */
    uint32_t *n_gkeys;
    mk_qresult *sub;     /* subquery answer, or NULL */
    const mk_ast *cond;
    int has_fcond;
    const char **cfields; /* fields the condition needs */
    uint32_t n_cfields;
    tagset *ts;
    size_t n_ts;
    group *groups;
    uint32_t n_groups;
    /* buckets */
    int64_t *bstart; /* [nb + 1]; bstart[nb] is the end; NULL while is_uniform and not made (make_buckets) */
    int is_uniform;  /* bucket b starts at b0 + b * iv, for b <= nb (no zone, clear of the end of time) */
    int64_t b0;
    size_t nb;
    int is_empty;    /* nothing to read (no data, or lo > hi) */
    int is_nothing;  /* the select list expanded to no column: empty answer */
    mk_iter *it;     /* reused over series by the general path (reset per series) */
    mk_sum_iter *si; /* reused by data_min */
} plan;

/* ---- small helpers -------------------------------------------------------- */

static const mk_ast *unparen(const mk_ast *e)
{
    while (e && e->kind == MK_AST_PAREN) e = e->u.bin.rhs;
    return e;
}

static void *xalloc(mk_xctx *c, size_t n)
{
    return mk_arena_alloc(c->a, n ? n : 1);
}

static const char *xstrdup(mk_xctx *c, const char *s)
{
    return mk_arena_strndup(c->a, s, strlen(s));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Sorted, distinct copy of v[0..n) in place; returns the new count. */
static size_t uniq_strs(const char **v, size_t n)
{
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_str);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i], v[k - 1]) != 0) v[k++] = v[i];
    return k;
}

static double now_ms_f(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void plan_line(mk_xctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void plan_line(mk_xctx *c, const char *fmt, ...)
{
    if (!c->is_explain) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    (void)mk_buf_append(&c->plan, line, (size_t)n);
    (void)mk_buf_append(&c->plan, "\n", 1);
}

/* The duration in its largest exact unit: 1d, 90m, 1500ms. */
static void fmt_dur(char *buf, size_t cap, int64_t ns)
{
    static const struct { int64_t ns; const char *u; } units[] = {
        {86400000000000ll, "d"}, {3600000000000ll, "h"}, {60000000000ll, "m"}, {1000000000ll, "s"},
        {1000000ll, "ms"}, {1000ll, "u"}, {1, "ns"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ns % units[i].ns == 0) {
            snprintf(buf, cap, "%" PRId64 "%s", ns / units[i].ns, units[i].u);
            return;
        }
}

/* A COMPARE duration as written in the query ("7d" stays "7d", "1w" stays
 * "1w"); the canonical form when the text is not at hand. */
static void dur_text(const mk_xctx *c, const mk_ast *d, char *buf, size_t cap)
{
    if (c->src && d->off < c->src_len) {
        mk_qlex lx;
        mk_qlex_init(&lx, c->src + d->off, c->src_len - d->off);
        mk_qtok t = mk_qlex_next(&lx);
        int64_t ns;
        if (t.kind == MK_QTOK_DURATION && t.off == 0 && t.len < cap &&
            mk_qlex_duration(c->src + d->off, t, &ns) == MK_OK && ns == d->u.i64) {
            memcpy(buf, c->src + d->off, t.len);
            buf[t.len] = 0;
            return;
        }
    }
    fmt_dur(buf, cap, d->u.i64);
}

static void fmt_time(char *buf, size_t cap, int64_t ns)
{
    if (ns <= MK_X_MIN_TIME_NS) { snprintf(buf, cap, "-inf"); return; }
    if (ns >= MK_X_MAX_TIME_NS) { snprintf(buf, cap, "+inf"); return; }
    time_t s = (time_t)mk_floordiv(ns, 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    int64_t frac = ns - (int64_t)s * 1000000000;
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%09" PRId64 "Z", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* ---- column names (InfluxQL Field.Name and ColumnNames) ------------------- */

static void expr_name(const mk_ast *e, mk_buf *out)
{
    e = unparen(e);
    if (!e) return;
    if (e->kind == MK_AST_VARREF || e->kind == MK_AST_CALL) {
        const char *n = e->kind == MK_AST_VARREF ? e->u.var.name : e->u.call.name;
        if (out->len) (void)mk_buf_append(out, "_", 1);
        (void)mk_buf_append(out, n, strlen(n));
        return;
    }
    if (e->kind == MK_AST_BINARY) {
        expr_name(e->u.bin.lhs, out);
        expr_name(e->u.bin.rhs, out);
    } else if (e->kind == MK_AST_UNARY) {
        expr_name(e->u.bin.rhs, out);
    }
}

static mk_err name_columns(mk_xctx *c, plan *p, const char **aliases)
{
    /* aliases first, then generated names; conflicts get _1, _2 ... */
    const char **names = xalloc(c, (p->n_cols + 1) * sizeof *names);
    uint32_t *counts = xalloc(c, (p->n_cols + 1) * sizeof *counts);
    uint32_t n_names = 0;
    if (!names || !counts) return mk_x_fail(c, "out of memory");
    for (uint32_t i = 0; i < p->n_cols; i++)
        if (aliases[i]) {
            p->cols[i].name = aliases[i];
            names[n_names] = aliases[i];
            counts[n_names++] = 1;
        }
    for (uint32_t i = 0; i < p->n_cols; i++) {
        if (aliases[i]) continue;
        const char *name = p->cols[i].name; /* set to the generated name by the caller */
        uint32_t k;
        for (k = 0; k < n_names && strcmp(names[k], name) != 0; k++) {}
        if (k < n_names) {
            uint32_t cnt = counts[k];
            for (;;) {
                char buf[600];
                snprintf(buf, sizeof buf, "%s_%u", name, cnt);
                uint32_t j;
                for (j = 0; j < n_names && strcmp(names[j], buf) != 0; j++) {}
                if (j == n_names) {
                    counts[k] = cnt + 1;
                    name = xstrdup(c, buf);
                    if (!name) return mk_x_fail(c, "out of memory");
                    break;
                }
                cnt++;
            }
        }
        uint32_t j;
        for (j = 0; j < n_names && strcmp(names[j], name) != 0; j++) {}
        if (j < n_names) counts[j]++;
        else { names[n_names] = name; counts[n_names++] = 1; }
        p->cols[i].name = name;
    }
    return MK_OK;
}

/* ---- catalogue of a measurement (wildcards, GROUP BY *) ------------------- */

typedef struct mcat {
    const char **fields, **tags;
    size_t n_fields, n_tags;
} mcat;

static mk_err meas_catalog(mk_xctx *c, const char *meas, mcat *out)
{
    memset(out, 0, sizeof *out);
    mk_xseries *all;
    size_t n;
    mk_err rc = mk_x_series_all(c, meas, &all, &n);
    if (rc) return rc;
    size_t nt = 0;
    for (size_t i = 0; i < n; i++) nt += all[i].n_tags;
    out->fields = xalloc(c, n * sizeof *out->fields);
    out->tags = xalloc(c, nt * sizeof *out->tags);
    if (!out->fields || !out->tags) return mk_x_fail(c, "out of memory");
    for (size_t i = 0; i < n; i++) {
        out->fields[out->n_fields++] = all[i].field;
        for (uint32_t k = 0; k < all[i].n_tags; k++) out->tags[out->n_tags++] = all[i].tk[k];
    }
    out->n_fields = uniq_strs(out->fields, out->n_fields);
    out->n_tags = uniq_strs(out->tags, out->n_tags);
    return MK_OK;
}

/* ---- planning --------------------------------------------------------------- */

static mk_ast *new_node(mk_xctx *c, mk_ast_kind k, uint32_t off)
{
    mk_ast *n = xalloc(c, sizeof *n);
    if (n) { n->kind = k; n->off = off; n->height = 1; }
    return n;
}

/* Fields named in FROM measurements (union, sorted) and their tag keys. */
static mk_err sources_catalog(mk_xctx *c, plan *p, mcat *out)
{
    memset(out, 0, sizeof *out);
    size_t cf = 0, ct = 0;
    mcat *cats = xalloc(c, (p->n_meas + 1) * sizeof *cats);
    if (!cats) return mk_x_fail(c, "out of memory");
    if (p->sub) {
        const mk_qstmt *st = mk_qresult_stmt(p->sub, 0);
        for (uint32_t i = 0; st && i < st->n_series; i++) { cf += st->series[i].n_cols; ct += st->series[i].n_tags; }
        out->fields = xalloc(c, cf * sizeof *out->fields);
        out->tags = xalloc(c, ct * sizeof *out->tags);
        if (!out->fields || !out->tags) return mk_x_fail(c, "out of memory");
        for (uint32_t i = 0; st && i < st->n_series; i++) {
            const mk_qseries *q = &st->series[i];
            for (uint32_t k = 0; k < q->n_cols; k++)
                if (strcmp(q->columns[k], "time") != 0) out->fields[out->n_fields++] = q->columns[k];
            for (uint32_t k = 0; k < q->n_tags; k++) out->tags[out->n_tags++] = q->tag_keys[k];
        }
    } else {
        for (uint32_t m = 0; m < p->n_meas; m++) {
            mk_err rc = meas_catalog(c, p->meas[m], &cats[m]);
            if (rc) return rc;
            cf += cats[m].n_fields;
            ct += cats[m].n_tags;
        }
        out->fields = xalloc(c, cf * sizeof *out->fields);
        out->tags = xalloc(c, ct * sizeof *out->tags);
        if (!out->fields || !out->tags) return mk_x_fail(c, "out of memory");
        for (uint32_t m = 0; m < p->n_meas; m++) {
            for (size_t k = 0; k < cats[m].n_fields; k++) out->fields[out->n_fields++] = cats[m].fields[k];
            for (size_t k = 0; k < cats[m].n_tags; k++) out->tags[out->n_tags++] = cats[m].tags[k];
        }
    }
    out->n_fields = uniq_strs(out->fields, out->n_fields);
    out->n_tags = uniq_strs(out->tags, out->n_tags);
    return MK_OK;
}

static int is_group_key(const plan *p, const char *k)
{
    for (uint32_t i = 0; i < p->n_gkeys_x; i++)
        if (strcmp(p->gkeys_x[i], k) == 0) return 1;
    return p->is_gall;
}

static int64_t dur_arg(const mk_ast *e, int64_t dflt)
{
    e = unparen(e);
    if (e && e->kind == MK_AST_DURATION && e->u.i64 > 0) return e->u.i64;
    return dflt;
}

static double num_arg(const mk_ast *e, int *ok)
{
    e = unparen(e);
    *ok = 1;
    if (e && e->kind == MK_AST_INTEGER) return (double)e->u.i64;
    if (e && e->kind == MK_AST_NUMBER) return e->u.f64;
    *ok = 0;
    return 0;
}

static int add_field(mk_xctx *c, plan *p, const char *f, uint32_t cap)
{
    for (uint32_t i = 0; i < p->n_fields; i++)
        if (strcmp(p->fields[i], f) == 0) return (int)i;
    if (p->n_fields >= cap) return -1;
    (void)c;
    p->fields[p->n_fields] = f;
    return (int)p->n_fields++;
}

/* Finds aggregate calls in e and makes slots of them. */
static mk_err find_slots(mk_xctx *c, plan *p, const mk_ast *e, uint32_t cap_slots, uint32_t cap_fields)
{
    e = unparen(e);
    if (!e) return MK_OK;
    if (e->kind == MK_AST_BINARY) {
        mk_err rc = find_slots(c, p, e->u.bin.lhs, cap_slots, cap_fields);
        return rc ? rc : find_slots(c, p, e->u.bin.rhs, cap_slots, cap_fields);
    }
    if (e->kind == MK_AST_UNARY) return find_slots(c, p, e->u.bin.rhs, cap_slots, cap_fields);
    if (e->kind != MK_AST_CALL) return MK_OK;
    int fn = fn_of(e->u.call.name);
    if (fn == F_NONE) return mk_x_fail(c, "undefined function %s()", e->u.call.name);
    if (is_tr_fn(fn)) return mk_x_fail(c, "%s() must be the outermost function of a field", e->u.call.name);
    const mk_ast *arg = unparen(e->u.call.args);
    if (!arg) return mk_x_fail(c, "invalid number of arguments for %s, expected at least 1, got 0", e->u.call.name);
    if (arg->kind == MK_AST_CALL) {
        const mk_ast *ia = unparen(arg->u.call.args);
        if (fn != F_COUNT || fn_of(arg->u.call.name) != F_DISTINCT || !ia || ia->kind != MK_AST_VARREF || e->u.call.n_args != 1 ||
            arg->u.call.n_args != 1)
            return mk_x_fail(c, "expected field argument in %s()", e->u.call.name);
        fn = F_COUNT_DISTINCT;
        arg = ia;
    }
    if (arg->kind != MK_AST_VARREF) return mk_x_fail(c, "expected field argument in %s()", e->u.call.name);
    if (p->n_slots >= cap_slots) return mk_x_fail(c, "too many function calls");
    slot *s = &p->slots[p->n_slots];
    memset(s, 0, sizeof *s);
    s->call = e;
    s->fn = fn;
    s->field = arg->u.var.name;
    int fi = add_field(c, p, s->field, cap_fields);
    if (fi < 0) return mk_x_fail(c, "too many fields");
    s->fidx = (uint32_t)fi;
    uint32_t want = fn == F_PERCENTILE ? 2 : fn == F_INTEGRAL ? 1 : 1;
    if (fn == F_TOP || fn == F_BOTTOM) {
        int ok;
        if (e->u.call.n_args == 3) return mk_x_fail(c, "%s() with a tag argument is not supported", e->u.call.name);
        if (e->u.call.n_args != 2) return mk_x_fail(c, "invalid number of arguments for %s, expected 2, got %u", e->u.call.name, e->u.call.n_args);
        const mk_ast *na = unparen(arg->next);
        s->arg = num_arg(na, &ok);
        if (!ok || !na || na->kind != MK_AST_INTEGER || s->arg < 1)
            return mk_x_fail(c, "expected integer as last argument in %s(), found %s", e->u.call.name, "a non-positive or non-integer value");
    } else if (fn == F_PERCENTILE) {
        int ok;
        if (e->u.call.n_args != 2) return mk_x_fail(c, "invalid number of arguments for percentile, expected 2, got %u", e->u.call.n_args);
        s->arg = num_arg(arg->next, &ok);
        if (!ok) return mk_x_fail(c, "expected float argument in percentile()");
    } else if (fn == F_INTEGRAL) {
        if (e->u.call.n_args > 2) return mk_x_fail(c, "invalid number of arguments for integral, expected at most 2, got %u", e->u.call.n_args);
        s->unit_ns = e->u.call.n_args == 2 ? dur_arg(arg->next, 0) : 1000000000ll;
        if (s->unit_ns <= 0) return mk_x_fail(c, "second argument to integral must be a duration");
    } else if (e->u.call.n_args != want) {
        return mk_x_fail(c, "invalid number of arguments for %s, expected %u, got %u", e->u.call.name, want, e->u.call.n_args);
    }
    if (fn == F_COUNT_DISTINCT) {
        p->n_slots++;
        return MK_OK;
    }
    if (fn == F_DISTINCT || fn == F_TOP || fn == F_BOTTOM) p->has_distinct = 1; /* rows per bucket */
    if (fn == F_INTEGRAL) p->has_integral = 1;
    p->n_slots++;
    return MK_OK;
}

static int expr_refs_field(const mk_ast *e)
{
    e = unparen(e);
    if (!e) return 0;
    if (e->kind == MK_AST_VARREF) return e->u.var.cast != MK_AST_CAST_TAG;
    if (e->kind == MK_AST_BINARY) return expr_refs_field(e->u.bin.lhs) || expr_refs_field(e->u.bin.rhs);
    if (e->kind == MK_AST_UNARY) return expr_refs_field(e->u.bin.rhs);
    if (e->kind == MK_AST_CALL) return 1;
    return 0;
}

/* Whether e names a field of one of the sources (tags do not make a raw row). */
static int expr_refs_real_field(mk_xctx *c, const plan *p, const mk_ast *e)
{
    e = unparen(e);
    if (!e) return 0;
    if (e->kind == MK_AST_BINARY) return expr_refs_real_field(c, p, e->u.bin.lhs) || expr_refs_real_field(c, p, e->u.bin.rhs);
    if (e->kind == MK_AST_UNARY) return expr_refs_real_field(c, p, e->u.bin.rhs);
    if (e->kind != MK_AST_VARREF || e->u.var.cast == MK_AST_CAST_TAG) return 0;
    if (e->u.var.cast == MK_AST_CAST_FIELD) return 1;
    if (p->sub) {
        const mk_qstmt *st = mk_qresult_stmt(p->sub, 0);
        for (uint32_t i = 0; st && i < st->n_series; i++)
            for (uint32_t k = 0; k < st->series[i].n_cols; k++)
                if (strcmp(st->series[i].columns[k], e->u.var.name) == 0) return 1;
        return 0;
    }
    for (uint32_t m = 0; m < p->n_meas; m++)
        if (mk_x_is_field(c, p->meas[m], e->u.var.name)) return 1;
    return 0;
}

static uint32_t count_nodes(const mk_ast *e)
{
    if (!e) return 0;
    uint32_t n = 1;
    switch (e->kind) {
    case MK_AST_BINARY: n += count_nodes(e->u.bin.lhs) + count_nodes(e->u.bin.rhs); break;
    case MK_AST_UNARY:
    case MK_AST_PAREN: n += count_nodes(e->u.bin.rhs); break;
    case MK_AST_CALL:
        for (const mk_ast *a = e->u.call.args; a; a = a->next) n += count_nodes(a);
        break;
    default: break;
    }
    return n;
}

static int expr_has_call(const mk_ast *e)
{
    e = unparen(e);
    if (!e) return 0;
    if (e->kind == MK_AST_CALL) return 1;
    if (e->kind == MK_AST_BINARY) return expr_has_call(e->u.bin.lhs) || expr_has_call(e->u.bin.rhs);
    if (e->kind == MK_AST_UNARY) return expr_has_call(e->u.bin.rhs);
    return 0;
}

/* Raw mode: field names referenced by an expression (tags are resolved later). */
static void raw_refs(mk_xctx *c, plan *p, const mk_ast *e, uint32_t cap)
{
    e = unparen(e);
    if (!e) return;
    if (e->kind == MK_AST_VARREF && e->u.var.cast != MK_AST_CAST_TAG && strcasecmp(e->u.var.name, "time") != 0)
        (void)add_field(c, p, e->u.var.name, cap);
    else if (e->kind == MK_AST_BINARY) { raw_refs(c, p, e->u.bin.lhs, cap); raw_refs(c, p, e->u.bin.rhs, cap); }
    else if (e->kind == MK_AST_UNARY) raw_refs(c, p, e->u.bin.rhs, cap);
}

/* The select list after wildcard expansion: exprs[] and aliases[]. */
static mk_err expand_fields(mk_xctx *c, plan *p, const mk_ast ***exprs_out, const char ***aliases_out, uint32_t *n_out)
{
    const mk_ast_select *sel = p->sel;
    int needs_cat = 0;
    for (const mk_ast *f = sel->fields; f; f = f->next) {
        const mk_ast *e = unparen(f->u.field.expr);
        if (e->kind == MK_AST_WILDCARD || e->kind == MK_AST_REGEX) needs_cat = 1;
        if (e->kind == MK_AST_CALL && e->u.call.args) {
            const mk_ast *a = unparen(e->u.call.args);
            if (a->kind == MK_AST_WILDCARD || a->kind == MK_AST_REGEX) needs_cat = 1;
            if (a->kind == MK_AST_CALL && a->u.call.args) {
                const mk_ast *aa = unparen(a->u.call.args);
                if (aa->kind == MK_AST_WILDCARD || aa->kind == MK_AST_REGEX) needs_cat = 1;
            }
        }
    }
    mcat cat = {0};
    if (needs_cat) {
        mk_err rc = sources_catalog(c, p, &cat);
        if (rc) return rc;
    }
    size_t cap = sel->n_fields + (cat.n_fields + cat.n_tags + 1) * sel->n_fields;
    const mk_ast **ex = xalloc(c, cap * sizeof *ex);
    const char **al = xalloc(c, cap * sizeof *al);
    if (!ex || !al) return mk_x_fail(c, "out of memory");
    uint32_t n = 0;
    for (const mk_ast *f = sel->fields; f; f = f->next) {
        const mk_ast *e = unparen(f->u.field.expr);
        if (e->kind == MK_AST_WILDCARD || e->kind == MK_AST_REGEX) {
            /* fields and tags (not grouped by), merged in name order */
            const char **names = xalloc(c, (cat.n_fields + cat.n_tags) * sizeof *names);
            int *is_tag = xalloc(c, (cat.n_fields + cat.n_tags) * sizeof *is_tag);
            if (!names || !is_tag) return mk_x_fail(c, "out of memory");
            size_t i = 0, j = 0, k = 0;
            int want_tags = e->kind == MK_AST_REGEX || e->u.var.cast != MK_AST_CAST_FIELD;
            int want_fields = e->kind == MK_AST_REGEX || e->u.var.cast != MK_AST_CAST_TAG;
            while (i < cat.n_fields || j < cat.n_tags) {
                int take_f = j >= cat.n_tags || (i < cat.n_fields && strcmp(cat.fields[i], cat.tags[j]) <= 0);
                const char *nm = take_f ? cat.fields[i++] : cat.tags[j++];
                if (take_f ? !want_fields : (!want_tags || is_group_key(p, nm))) continue;
                if (e->kind == MK_AST_REGEX) {
                    int m;
                    mk_err rc = mk_x_regex_match(c, e->u.str.s, nm, &m);
                    if (rc) return rc;
                    if (!m) continue;
                }
                names[k] = nm;
                is_tag[k++] = !take_f;
            }
            for (size_t q = 0; q < k; q++) {
                mk_ast *v = new_node(c, MK_AST_VARREF, e->off);
                if (!v) return mk_x_fail(c, "out of memory");
                v->u.var.name = names[q];
                v->u.var.cast = is_tag[q] ? MK_AST_CAST_TAG : MK_AST_CAST_FIELD;
                ex[n] = v;
                al[n++] = NULL;
            }
            continue;
        }
        /* fn(*) / fn(/re/) and transform(fn(*)) */
        const mk_ast *call = e->kind == MK_AST_CALL ? e : NULL;
        const mk_ast *wc = NULL, *inner = NULL;
        if (call && call->u.call.args) {
            const mk_ast *a = unparen(call->u.call.args);
            if (a->kind == MK_AST_WILDCARD || a->kind == MK_AST_REGEX) wc = a;
            else if (a->kind == MK_AST_CALL && a->u.call.args) {
                const mk_ast *aa = unparen(a->u.call.args);
                if (aa->kind == MK_AST_WILDCARD || aa->kind == MK_AST_REGEX) { wc = aa; inner = a; }
            }
        }
        if (!wc) {
            if (e->kind == MK_AST_VARREF && strcasecmp(e->u.var.name, "time") == 0) continue; /* always first anyway */
            ex[n] = f->u.field.expr;
            al[n++] = f->u.field.alias;
            continue;
        }
        for (size_t q = 0; q < cat.n_fields; q++) {
            if (wc->kind == MK_AST_REGEX) {
                int m;
                mk_err rc = mk_x_regex_match(c, wc->u.str.s, cat.fields[q], &m);
                if (rc) return rc;
                if (!m) continue;
            }
            mk_ast *v = new_node(c, MK_AST_VARREF, wc->off);
            if (!v) return mk_x_fail(c, "out of memory");
            v->u.var.name = cat.fields[q];
            /* copy the call chain with the varref in place of the wildcard */
            const mk_ast *src = inner ? inner : call;
            mk_ast *cp = new_node(c, MK_AST_CALL, src->off);
            if (!cp) return mk_x_fail(c, "out of memory");
            cp->u.call = src->u.call;
            v->next = src->u.call.args->next; /* keep the other arguments */
            cp->u.call.args = v;
            mk_ast *top = cp;
            if (inner) {
                top = new_node(c, MK_AST_CALL, call->off);
                if (!top) return mk_x_fail(c, "out of memory");
                top->u.call = call->u.call;
                cp->next = call->u.call.args->next;
                top->u.call.args = cp;
            }
            char buf[600];
            snprintf(buf, sizeof buf, "%s_%s", call->u.call.name, cat.fields[q]);
            ex[n] = top;
            al[n++] = f->u.field.alias ? f->u.field.alias : xstrdup(c, buf);
            if (!al[n - 1]) return mk_x_fail(c, "out of memory");
        }
    }
    *exprs_out = ex;
    *aliases_out = al;
    *n_out = n;
    return MK_OK;
}

static mk_err run_select_into(mk_xctx *c, const mk_ast_select *sel, int64_t inh_lo, int64_t inh_hi, int has_inh,
                              mk_qresult **out);

static mk_err plan_select(mk_xctx *c, plan *p, const mk_ast_select *sel, int64_t inh_lo, int64_t inh_hi, int has_inh)
{
    memset(p, 0, sizeof *p);
    p->sel = sel;
    p->cond = sel->cond;
    mk_err rc;
    /* time range first: a subquery inherits it */
    if ((rc = mk_x_time_range(c, sel->cond, &p->lo, &p->hi, &p->has_lo, &p->has_hi))) return rc;
    if (has_inh) {
        if (!p->has_lo && inh_lo != MK_X_MIN_TIME_NS) { p->lo = inh_lo; p->has_lo = 1; }
        if (!p->has_hi && inh_hi != MK_X_MAX_TIME_NS) { p->hi = inh_hi; p->has_hi = 1; }
    }
    /* GROUP BY */
    uint32_t nd = 0;
    for (const mk_ast *d = sel->dims; d; d = d->next) nd++;
    p->gkeys_x = xalloc(c, (nd + 1) * sizeof *p->gkeys_x);
    p->gregex = xalloc(c, (nd + 1) * sizeof *p->gregex);
    if (!p->gkeys_x || !p->gregex) return mk_x_fail(c, "out of memory");
    for (const mk_ast *d = sel->dims; d; d = d->next) {
        const mk_ast *e = unparen(d);
        if (e->kind == MK_AST_CALL && strcmp(e->u.call.name, "time") == 0) {
            if (p->has_iv) return mk_x_fail(c, "multiple time dimensions");
            const mk_ast *a = unparen(e->u.call.args);
            if (!a || a->kind != MK_AST_DURATION || a->u.i64 <= 0) return mk_x_fail(c, "time dimension must have a positive duration argument");
            p->has_iv = 1;
            p->iv = a->u.i64;
            if (e->u.call.n_args > 1) {
                const mk_ast *o = unparen(a->next);
                int64_t off;
                if (o && o->kind == MK_AST_DURATION) off = o->u.i64;
                else if (o && o->kind == MK_AST_UNARY && o->u.bin.op == MK_QTOK_SUB && unparen(o->u.bin.rhs)->kind == MK_AST_DURATION)
                    off = -unparen(o->u.bin.rhs)->u.i64;
                else return mk_x_fail(c, "time dimension offset must be a duration");
                off %= p->iv;
                if (off < 0) off += p->iv;
                p->off = off;
            }
        } else if (e->kind == MK_AST_VARREF) {
            p->gkeys_x[p->n_gkeys_x++] = e->u.var.name;
        } else if (e->kind == MK_AST_REGEX) {
            p->gregex[p->n_gregex++] = e->u.str.s;
        } else if (e->kind == MK_AST_WILDCARD) {
            p->is_gall = 1;
        } else {
            return mk_x_fail(c, "only time() calls allowed in dimensions");
        }
    }
    if (sel->tz) {
        mk_diag d = {0};
        if (mk_tz_load(sel->tz, &p->tz, &d) != MK_OK) return mk_x_fail(c, "unable to find time zone %s: %s", sel->tz, d.msg);
    }
    /* sources */
    const mk_ast *s0 = sel->sources;
    if (s0->kind == MK_AST_SUBQUERY) {
        if (sel->n_sources != 1) return mk_x_fail(c, "a subquery must be the only source");
        if ((rc = run_select_into(c, &s0->u.sub.select->u.sel, p->lo, p->hi, p->has_lo || p->has_hi, &p->sub))) return rc;
        const mk_qstmt *st = mk_qresult_stmt(p->sub, 0);
        if (st && st->error) return mk_x_fail(c, "%s", st->error);
        p->meas = xalloc(c, ((st ? st->n_series : 0) + 1) * sizeof *p->meas);
        if (!p->meas) return mk_x_fail(c, "out of memory");
        for (uint32_t i = 0; st && i < st->n_series; i++) p->meas[p->n_meas++] = st->series[i].name ? st->series[i].name : "";
        p->n_meas = (uint32_t)uniq_strs(p->meas, p->n_meas);
    } else {
        const char **all = NULL;
        size_t n_all = 0;
        int has_regex = 0;
        for (const mk_ast *s = sel->sources; s; s = s->next) {
            if (s->kind != MK_AST_MEASUREMENT) return mk_x_fail(c, "a subquery must be the only source");
            if (s->u.meas.regex) has_regex = 1;
        }
        if (has_regex && (rc = mk_x_measurements(c, &all, &n_all))) return rc;
        p->meas = xalloc(c, (sel->n_sources + n_all) * sizeof *p->meas);
        if (!p->meas) return mk_x_fail(c, "out of memory");
        for (const mk_ast *s = sel->sources; s; s = s->next) {
            if (s->u.meas.name) { p->meas[p->n_meas++] = s->u.meas.name; continue; }
            for (size_t i = 0; i < n_all; i++) {
                int m;
                if ((rc = mk_x_regex_match(c, s->u.meas.regex->u.str.s, all[i], &m))) return rc;
                if (m) p->meas[p->n_meas++] = all[i];
            }
        }
        p->n_meas = (uint32_t)uniq_strs(p->meas, p->n_meas);
    }
    /* columns */
    const mk_ast **ex = NULL;
    const char **al = NULL;
    uint32_t n = 0;
    if ((rc = expand_fields(c, p, &ex, &al, &n))) return rc;
    if (n == 0) {
        /* a wildcard over measurements that do not exist: an empty answer */
        for (const mk_ast *f = sel->fields; f; f = f->next) {
            const mk_ast *e = unparen(f->u.field.expr);
            if (e->kind == MK_AST_WILDCARD || e->kind == MK_AST_REGEX || e->kind == MK_AST_CALL) { p->is_nothing = 1; return MK_OK; }
        }
        return mk_x_fail(c, "statement must have at least one field in select clause");
    }
    p->n_cols = n;
    p->cols = xalloc(c, n * sizeof *p->cols);
    uint32_t n_nodes = 0;
    for (uint32_t i = 0; i < n; i++) n_nodes += count_nodes(ex[i]);
    uint32_t cap_fields = n_nodes + 64 + 64, cap_slots = n_nodes + 16; /* every node a call or field at most; +64 condition fields */
    p->fields = xalloc(c, cap_fields * sizeof *p->fields);
    p->slots = xalloc(c, cap_slots * sizeof *p->slots);
    if (!p->cols || !p->fields || !p->slots) return mk_x_fail(c, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        xcol *col = &p->cols[i];
        col->expr = ex[i];
        const mk_ast *e = unparen(ex[i]);
        mk_buf nb = {0};
        expr_name(e, &nb);
        (void)mk_buf_append(&nb, "", 1);
        col->name = xstrdup(c, nb.data ? (const char *)nb.data : "");
        mk_buf_free(&nb);
        if (!col->name) return mk_x_fail(c, "out of memory");
        /* Grafana's "math" step after a transformation: derivative(mean(x), 1s) * 8 */
        if (e->kind == MK_AST_BINARY && (e->u.bin.op == MK_QTOK_ADD || e->u.bin.op == MK_QTOK_SUB ||
                                         e->u.bin.op == MK_QTOK_MUL || e->u.bin.op == MK_QTOK_DIV)) {
            const mk_ast *l = unparen(e->u.bin.lhs), *r = unparen(e->u.bin.rhs);
            int lt = l->kind == MK_AST_CALL && is_tr_fn(fn_of(l->u.call.name));
            int rt = r->kind == MK_AST_CALL && is_tr_fn(fn_of(r->u.call.name));
            const mk_ast *k = lt ? r : l;
            int ok = 0;
            double kv = (lt != rt) ? num_arg(k, &ok) : 0;
            if (ok) {
                col->post_op = e->u.bin.op;
                col->is_post_left = rt;
                col->post_k = kv;
                e = lt ? l : r;
            }
        }
        if (e->kind == MK_AST_CALL && is_tr_fn(fn_of(e->u.call.name))) {
            col->tfn = fn_of(e->u.call.name);
            col->inner = e->u.call.args;
            p->has_transform = 1;
            if (!col->inner) return mk_x_fail(c, "invalid number of arguments for %s, expected at least 1, got 0", e->u.call.name);
            if (col->tfn == T_MAVG) {
                int ok;
                if (e->u.call.n_args != 2) return mk_x_fail(c, "invalid number of arguments for moving_average, expected 2, got %u", e->u.call.n_args);
                double nn = num_arg(col->inner->next, &ok);
                if (!ok || nn < 1 || nn != floor(nn)) return mk_x_fail(c, "moving_average window must be an integer greater than or equal to 1");
                col->mavg_n = (int64_t)nn;
            } else if (col->tfn == T_DERIV || col->tfn == T_NNDERIV) {
                if (e->u.call.n_args > 2) return mk_x_fail(c, "invalid number of arguments for %s, expected at most 2, got %u", e->u.call.name, e->u.call.n_args);
                col->unit_ns = e->u.call.n_args == 2 ? dur_arg(col->inner->next, -1) : 0;
                if (col->unit_ns < 0) return mk_x_fail(c, "second argument to %s must be a duration", e->u.call.name);
            } else if (e->u.call.n_args != 1) {
                return mk_x_fail(c, "invalid number of arguments for %s, expected 1, got %u", e->u.call.name, e->u.call.n_args);
            }
        }
        const mk_ast *body = col->tfn ? col->inner : e;
        if (expr_has_call(body)) p->is_agg = 1;
        const mk_ast *b = unparen(body);
        col->is_int = b->kind == MK_AST_CALL && fn_of(b->u.call.name) == F_COUNT && !col->tfn;
    }
    if ((rc = name_columns(c, p, al))) return rc;
    for (uint32_t i = 0; i < n; i++) {
        xcol *col = &p->cols[i];
        const mk_ast *body = col->tfn ? col->inner : col->expr;
        if (p->is_agg) {
            /* every field must sit inside an aggregate */
            const mk_ast *b = unparen(body);
            int ok = expr_has_call(b);
            if (ok && b->kind == MK_AST_BINARY) {
                /* a bare field next to a call is mixing too */
                const mk_ast *stack[64];
                int sp = 0;
                stack[sp++] = b;
                while (sp && ok) {
                    const mk_ast *x = unparen(stack[--sp]);
                    if (x->kind == MK_AST_VARREF) ok = 0;
                    else if ((x->kind == MK_AST_BINARY) && sp < 62) { stack[sp++] = x->u.bin.lhs; stack[sp++] = x->u.bin.rhs; }
                    else if (x->kind == MK_AST_UNARY && sp < 63) stack[sp++] = x->u.bin.rhs;
                }
            }
            if (!ok) return mk_x_fail(c, "mixing aggregate and non-aggregate queries is not supported");
            if ((rc = find_slots(c, p, body, cap_slots, cap_fields))) return rc;
        } else {
            if (expr_has_call(body)) return mk_x_fail(c, "undefined function in a raw query");
            col->has_field = expr_refs_real_field(c, p, body);
            raw_refs(c, p, body, cap_fields);
        }
    }
    if (!p->is_agg && p->has_iv) return mk_x_fail(c, "GROUP BY requires at least one aggregate function");
    if (!p->is_agg && sel->n_compare) return mk_x_fail(c, "COMPARE requires an aggregate function");
    if (sel->n_compare && !p->has_iv) return mk_x_fail(c, "COMPARE requires GROUP BY time()");
    if (sel->n_compare && p->has_transform) return mk_x_fail(c, "COMPARE cannot be combined with transformations");
    if (p->has_distinct && (p->n_cols != 1 || p->n_slots != 1 || unparen(p->cols[0].expr)->kind != MK_AST_CALL)) {
        const char *fn = "distinct";
        for (uint32_t i = 0; i < p->n_slots; i++)
            if (p->slots[i].fn == F_DISTINCT || p->slots[i].fn == F_TOP || p->slots[i].fn == F_BOTTOM) fn = p->slots[i].call->u.call.name;
        return mk_x_fail(c, "aggregate function %s() cannot be combined with other functions or fields", fn);
    }
    if (!p->is_agg) {
        int any = 0, any_var = 0;
        for (uint32_t i = 0; i < n; i++) {
            any |= p->cols[i].has_field;
            any_var |= expr_refs_field(p->cols[i].tfn ? p->cols[i].inner : p->cols[i].expr);
        }
        if (!any && !any_var) return mk_x_fail(c, "statement must have at least one field in select clause");
        if (!any) { p->is_nothing = 1; return MK_OK; } /* no such field (or tags only): nothing to return */
    }
    /* the field condition */
    if (p->cond) {
        const char *names[64];
        size_t nn = 0;
        if (p->sub) {
            p->has_fcond = 1;
            mcat cat;
            if ((rc = sources_catalog(c, p, &cat))) return rc;
            for (size_t i = 0; i < cat.n_fields; i++) {
                /* the inner columns the condition mentions */
                const mk_ast *stack[256];
                int sp = 0, found = 0;
                stack[sp++] = p->cond;
                while (sp && !found) {
                    const mk_ast *x = unparen(stack[--sp]);
                    if (!x) continue;
                    if (x->kind == MK_AST_VARREF && strcmp(x->u.var.name, cat.fields[i]) == 0) found = 1;
                    else if (x->kind == MK_AST_BINARY && sp < 254) { stack[sp++] = x->u.bin.lhs; stack[sp++] = x->u.bin.rhs; }
                    else if ((x->kind == MK_AST_UNARY) && sp < 255) stack[sp++] = x->u.bin.rhs;
                }
                if (found && nn < 64) names[nn++] = cat.fields[i];
            }
        } else {
            for (uint32_t m = 0; m < p->n_meas; m++) mk_x_cond_fields(c, p->meas[m], p->cond, names, 64, &nn);
            p->has_fcond = nn > 0;
        }
        p->cfields = xalloc(c, (nn + 1) * sizeof *p->cfields);
        if (!p->cfields) return mk_x_fail(c, "out of memory");
        for (size_t i = 0; i < nn; i++) {
            p->cfields[p->n_cfields++] = names[i];
            if (add_field(c, p, names[i], cap_fields) < 0) return mk_x_fail(c, "too many fields");
        }
    }
    p->fst = xalloc(c, (p->n_fields + 1) * sizeof *p->fst);
    if (!p->fst) return mk_x_fail(c, "out of memory");
    /* a lone selector reports its point's time */
    if (p->is_agg && !p->has_iv && p->n_slots == 1 && is_selector(p->slots[0].fn)) p->is_selector_time = 1;
    return MK_OK;
}

/* ---- resolving series into tag sets and groups ------------------------------ */

typedef struct entry {
    uint64_t id;
    uint32_t meas, fidx;
    mk_xseries s;
} entry;

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->meas != y->meas) return x->meas < y->meas ? -1 : 1;
    int r = strcmp(x->s.tskey, y->s.tskey);
    if (r) return r;
    return x->fidx < y->fidx ? -1 : x->fidx > y->fidx;
}

static int cmp_tagset(const void *a, const void *b, void *ctx)
{
    const plan *p = ctx;
    const tagset *x = a, *y = b;
    if (x->meas != y->meas) return x->meas < y->meas ? -1 : 1;
    for (uint32_t k = 0; k < p->n_gkeys[x->meas]; k++) {
        int r = strcmp(mk_x_tag(&x->s, p->gkeys[x->meas][k]), mk_x_tag(&y->s, p->gkeys[x->meas][k]));
        if (r) return r;
    }
    return strcmp(x->s.tskey, y->s.tskey);
}

static mk_err resolve(mk_xctx *c, plan *p)
{
    mk_err rc;
    if (p->sub) {
        const mk_qstmt *st = mk_qresult_stmt(p->sub, 0);
        size_t n = st ? st->n_series : 0;
        p->ts = xalloc(c, n * sizeof *p->ts);
        if (!p->ts) return mk_x_fail(c, "out of memory");
        for (size_t i = 0; i < n; i++) {
            const mk_qseries *q = &st->series[i];
            tagset *t = &p->ts[p->n_ts++];
            memset(t, 0, sizeof *t);
            t->qs = q;
            t->s.meas = q->name ? q->name : "";
            t->s.n_tags = q->n_tags;
            t->s.tk = (const char **)q->tag_keys;
            t->s.tv = (const char **)q->tag_values;
            mk_buf kb = {0};
            (void)mk_buf_append(&kb, t->s.meas, strlen(t->s.meas));
            for (uint32_t k = 0; k < q->n_tags; k++) {
                (void)mk_buf_append(&kb, ",", 1);
                (void)mk_buf_append(&kb, q->tag_keys[k], strlen(q->tag_keys[k]));
                (void)mk_buf_append(&kb, "=", 1);
                (void)mk_buf_append(&kb, q->tag_values[k], strlen(q->tag_values[k]));
            }
            t->s.tskey = mk_arena_strndup(c->a, kb.data ? (const char *)kb.data : "", kb.len);
            mk_buf_free(&kb);
            if (!t->s.tskey) return mk_x_fail(c, "out of memory");
            for (uint32_t m = 0; m < p->n_meas; m++)
                if (strcmp(p->meas[m], t->s.meas) == 0) t->meas = m;
        }
        c->st.n_series += n;
    } else {
        /* every (measurement, field) series passing the tag condition */
        entry *ents = NULL;
        size_t n_ents = 0, cap_ents = 0;
        for (uint32_t m = 0; m < p->n_meas; m++)
            for (uint32_t f = 0; f < p->n_fields; f++) {
                uint64_t *ids;
                size_t n;
                if ((rc = mk_x_cond_ids(c, p->meas[m], p->cond, p->fields[f], &ids, &n))) { free(ents); return rc; }
                p->fst[f].n_series += n;
                if (n_ents + n > c->max_series) {
                    free(ents);
                    return mk_x_fail(c, "max-select-series limit exceeded: the statement touches more than %" PRIu64
                                     " series (raise max_series / the max-select-series setting, or narrow the WHERE clause)",
                                     c->max_series);
                }
                if (n_ents + n > cap_ents) {
                    size_t cap = cap_ents ? cap_ents : 64;
                    while (cap < n_ents + n) cap *= 2;
                    entry *e = realloc(ents, cap * sizeof *e);
                    if (!e) { free(ents); return mk_x_fail(c, "out of memory"); }
                    ents = e;
                    cap_ents = cap;
                }
                for (size_t i = 0; i < n; i++) ents[n_ents++] = (entry){ids[i], m, f, {0}};
            }
        c->st.n_series += n_ents;
        for (size_t i = 0; i < n_ents; i++)
            if ((rc = mk_x_series_load(c, ents[i].id, &ents[i].s))) { free(ents); return rc; }
        if (n_ents) qsort(ents, n_ents, sizeof *ents, cmp_entry);
        p->ts = xalloc(c, n_ents * sizeof *p->ts);
        if (!p->ts) { free(ents); return mk_x_fail(c, "out of memory"); }
        for (size_t i = 0; i < n_ents; i++) {
            tagset *t;
            if (i && ents[i].meas == ents[i - 1].meas && strcmp(ents[i].s.tskey, ents[i - 1].s.tskey) == 0) {
                t = &p->ts[p->n_ts - 1];
            } else {
                t = &p->ts[p->n_ts++];
                memset(t, 0, sizeof *t);
                t->s = ents[i].s;
                t->meas = ents[i].meas;
                t->fid = xalloc(c, p->n_fields * sizeof *t->fid);
                if (!t->fid) { free(ents); return mk_x_fail(c, "out of memory"); }
            }
            t->fid[ents[i].fidx] = ents[i].id;
        }
        free(ents);
    }
    /* group keys per measurement */
    p->gkeys = xalloc(c, (p->n_meas + 1) * sizeof *p->gkeys);
    p->n_gkeys = xalloc(c, (p->n_meas + 1) * sizeof *p->n_gkeys);
    if (!p->gkeys || !p->n_gkeys) return mk_x_fail(c, "out of memory");
    for (uint32_t m = 0; m < p->n_meas; m++) {
        size_t cap = p->n_gkeys_x;
        for (size_t i = 0; i < p->n_ts; i++)
            if (p->ts[i].meas == m) cap += p->ts[i].s.n_tags;
        const char **k = xalloc(c, (cap + 1) * sizeof *k);
        if (!k) return mk_x_fail(c, "out of memory");
        size_t nk = 0;
        for (uint32_t i = 0; i < p->n_gkeys_x; i++) k[nk++] = p->gkeys_x[i];
        if ((p->is_gall || p->n_gregex) && !p->sub) {
            /* every tag key of the measurement, as InfluxDB (series without it group under "") */
            mcat cat;
            if ((rc = meas_catalog(c, p->meas[m], &cat))) return rc;
            const char **k2 = xalloc(c, (p->n_gkeys_x + cat.n_tags + 1) * sizeof *k2);
            if (!k2) return mk_x_fail(c, "out of memory");
            memcpy(k2, k, nk * sizeof *k);
            k = k2;
            for (size_t j = 0; j < cat.n_tags; j++) {
                int take = p->is_gall;
                for (uint32_t r = 0; !take && r < p->n_gregex; r++)
                    if ((rc = mk_x_regex_match(c, p->gregex[r], cat.tags[j], &take))) return rc;
                if (take) k[nk++] = cat.tags[j];
            }
        } else if (p->is_gall || p->n_gregex)
            for (size_t i = 0; i < p->n_ts; i++) {
                if (p->ts[i].meas != m) continue;
                for (uint32_t j = 0; j < p->ts[i].s.n_tags; j++) {
                    int take = p->is_gall;
                    for (uint32_t r = 0; !take && r < p->n_gregex; r++)
                        if ((rc = mk_x_regex_match(c, p->gregex[r], p->ts[i].s.tk[j], &take))) return rc;
                    if (take) k[nk++] = p->ts[i].s.tk[j];
                }
            }
        p->gkeys[m] = k;
        p->n_gkeys[m] = (uint32_t)uniq_strs(k, nk);
    }
    if (p->n_ts > 1) qsort_r(p->ts, p->n_ts, sizeof *p->ts, cmp_tagset, p);
    p->groups = xalloc(c, p->n_ts * sizeof *p->groups);
    if (!p->groups) return mk_x_fail(c, "out of memory");
    for (size_t i = 0; i < p->n_ts; i++) {
        tagset *t = &p->ts[i];
        int is_same = 0;
        if (i && p->ts[i - 1].meas == t->meas) {
            is_same = 1;
            for (uint32_t k = 0; k < p->n_gkeys[t->meas] && is_same; k++)
                is_same = strcmp(mk_x_tag(&p->ts[i - 1].s, p->gkeys[t->meas][k]), mk_x_tag(&t->s, p->gkeys[t->meas][k])) == 0;
        }
        if (!is_same) {
            group *g = &p->groups[p->n_groups++];
            g->meas = p->meas[t->meas];
            g->n_tags = p->n_gkeys[t->meas];
            g->tk = p->gkeys[t->meas];
            g->tv = xalloc(c, (g->n_tags + 1) * sizeof *g->tv);
            if (!g->tv) return mk_x_fail(c, "out of memory");
            for (uint32_t k = 0; k < g->n_tags; k++) g->tv[k] = mk_x_tag(&t->s, g->tk[k]);
        }
        t->group = p->n_groups - 1;
    }
    return MK_OK;
}

/* ---- buckets -------------------------------------------------------------- */

/* InfluxDB's Window(): the start of the bucket holding t. */
static int64_t win_start(const plan *p, int64_t t)
{
    t -= p->off;
    int64_t zone = p->tz ? (int64_t)mk_tz_offset_s(p->tz, mk_floordiv(t, 1000000000)) * 1000000000 : 0;
    int64_t dt = (int64_t)(((__int128)t + zone) % p->iv);
    if (dt < 0) dt += p->iv;
    int64_t start = (t < MK_X_MIN_TIME_NS + dt) ? MK_X_MIN_TIME_NS : t - dt;
    start += p->off;
    if (p->tz) {
        int64_t so = (int64_t)mk_tz_offset_s(p->tz, mk_floordiv(start, 1000000000)) * 1000000000;
        int64_t o = zone - so;
        if (o != 0 && (o < 0 ? -o : o) < p->iv) start += o;
    }
    return start;
}

/* The starts of uniform buckets (p->is_uniform), when they were left out. */
static mk_err fill_bstart(mk_xctx *c, plan *p)
{
    if (p->bstart) return MK_OK;
    p->bstart = xalloc(c, (p->nb + 1) * sizeof *p->bstart);
    if (!p->bstart) return mk_x_fail(c, "out of memory");
    for (size_t i = 0; i <= p->nb; i++) p->bstart[i] = p->b0 + (int64_t)i * p->iv;
    return MK_OK;
}

/* is_lazy: uniform buckets are only counted (p->is_uniform, p->b0, p->nb),
 * their starts made by fill_bstart when a path needs them (the direct tier
 * path does not: a year of hourly starts was 70 KiB to zero and fill). */
static mk_err make_buckets(mk_xctx *c, plan *p, uint64_t n_cols, int is_lazy)
{
    if (!p->has_iv) {
        p->nb = 1;
        p->bstart = xalloc(c, 2 * sizeof *p->bstart);
        if (!p->bstart) return mk_x_fail(c, "out of memory");
        p->bstart[0] = p->lo;
        p->bstart[1] = INT64_MAX;
        return MK_OK;
    }
    int64_t b0 = win_start(p, p->lo), bl = win_start(p, p->hi);
    uint64_t n_est = (uint64_t)((__int128)(bl - b0) / p->iv) + 1;
    uint64_t groups = p->n_groups ? p->n_groups : 1;
    if (n_est > c->max_points || (__int128)n_est * groups * (n_cols + 1) > (__int128)c->max_points * (p->sel->fill == MK_AST_FILL_NONE ? 4 : 1))
        return mk_x_fail(c, "max-select-point limit exceeded: %" PRIu64 " buckets x %" PRIu64 " series x %" PRIu64
                         " columns is over the cap of %" PRIu64 " values (raise max_points / the max-select-point setting, "
                         "or use a larger GROUP BY time interval or a shorter time range)",
                         n_est, groups, n_cols + 1, c->max_points);
    size_t nb = 0;
    int64_t s = b0;
    p->is_uniform = 0;
    if (!p->tz && b0 > MK_X_MIN_TIME_NS && b0 <= p->hi) {
        /* Without a zone the starts are b0 + i * iv: the loop below would
         * give exactly these when its last step stays clear of the end of
         * time (it was a tenth of a 365-day hourly query from the 1 h tier). */
        uint64_t n = (uint64_t)(((__int128)p->hi - b0) / p->iv) + 1;
        if (n > n_est + 1) n = n_est + 1;
        __int128 end = (__int128)b0 + (__int128)n * p->iv;
        if (end <= MK_X_MAX_TIME_NS - 3600000000000ll) {
            p->is_uniform = 1;
            p->b0 = b0;
            p->nb = (size_t)n;
            p->bstart = NULL;
            return is_lazy ? MK_OK : fill_bstart(c, p);
        }
    }
    p->bstart = xalloc(c, (n_est + 3) * sizeof *p->bstart);
    if (!p->bstart) return mk_x_fail(c, "out of memory");
    while (s <= p->hi && nb < n_est + 1) {
        p->bstart[nb++] = s;
        int64_t nxt_t, nx;
        if (__builtin_add_overflow(s, p->iv, &nxt_t) || nxt_t > MK_X_MAX_TIME_NS - 3600000000000ll) { s = INT64_MAX; break; }
        /* Without a zone, s + iv is the next start (s is aligned): the
         * 128-bit modulo of win_start was a tenth of a 365-day hourly query
         * read from the 1 h tier (callgrind). */
        if (!p->tz && s > MK_X_MIN_TIME_NS) { /* (a clamped first start is not aligned) */
            s = nxt_t;
            continue;
        }
        nx = win_start(p, nxt_t);
        if (nx <= s) nx = win_start(p, nxt_t + 3600000000000ll);
        if (nx <= s) break;
        s = nx;
    }
    p->nb = nb;
    p->bstart[nb] = s > p->bstart[nb ? nb - 1 : 0] ? s : INT64_MAX;
    return MK_OK;
}

/* Index of the bucket holding t (bstart[0] <= t < bstart[nb]). */
static size_t bucket_of(const plan *p, int64_t t)
{
    size_t lo = 0, hi = p->nb;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->bstart[mid] <= t) lo = mid; else hi = mid;
    }
    return lo;
}

/* a - b clamped to the time range (COMPARE shifts, WHERE bounds). */
static inline int64_t sat_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) return b > 0 ? MK_X_MIN_TIME_NS : MK_X_MAX_TIME_NS;
    return r < MK_X_MIN_TIME_NS ? MK_X_MIN_TIME_NS : r > MK_X_MAX_TIME_NS ? MK_X_MAX_TIME_NS : r;
}

/* Stored ms to ns, saturating (stored times past 2262 cannot be shown in ns). */
static inline int64_t ms_ns(int64_t ms)
{
    return ms > INT64_MAX / 1000000 ? MK_X_MAX_TIME_NS : ms < INT64_MIN / 1000000 ? MK_X_MIN_TIME_NS : ms * 1000000;
}

static int64_t ms_ceil(int64_t ns) { return ns <= MK_X_MIN_TIME_NS ? INT64_MIN / 2 : -mk_floordiv(-ns, 1000000); }
static int64_t ms_end(int64_t ns) { return ns >= MK_X_MAX_TIME_NS ? INT64_MAX / 2 : mk_floordiv(ns, 1000000) + 1; }

/* ---- aggregate states ------------------------------------------------------ */

static void agg_point(agg *a, int64_t t, double v)
{
    if (a->n == 0) {
        a->min = a->max = a->first = a->last = v;
        a->tmin = a->tmax = a->tfirst = a->tlast = t;
    } else {
        if (v < a->min || (v == a->min && t < a->tmin)) { a->min = v; a->tmin = t; }
        if (v > a->max || (v == a->max && t < a->tmax)) { a->max = v; a->tmax = t; }
        /* ties on time: the larger value wins, as InfluxDB's first/last reducers */
        if (t < a->tfirst || (t == a->tfirst && v > a->first)) { a->first = v; a->tfirst = t; }
        if (t > a->tlast || (t == a->tlast && v > a->last)) { a->last = v; a->tlast = t; }
    }
    a->n++;
    a->sum += v;
}

static void agg_merge(agg *a, const agg *b)
{
    if (!b->n) return;
    if (!a->n) {
        double *vv = a->vv;
        int64_t *vt = a->vt;
        size_t nv = a->nv, cap = a->cap;
        *a = *b;
        a->vv = vv; a->vt = vt; a->nv = nv; a->cap = cap;
        return;
    }
    /* a NaN min/max (a summary of NaN samples only) is no value: never
     * kept over a number, replaced by the first number */
    if (b->min < a->min || (b->min == a->min && b->tmin < a->tmin) || (isnan(a->min) && !isnan(b->min))) { a->min = b->min; a->tmin = b->tmin; }
    if (b->max > a->max || (b->max == a->max && b->tmax < a->tmax) || (isnan(a->max) && !isnan(b->max))) { a->max = b->max; a->tmax = b->tmax; }
    if (b->tfirst < a->tfirst || (b->tfirst == a->tfirst && b->first > a->first)) { a->first = b->first; a->tfirst = b->tfirst; }
    if (b->tlast > a->tlast || (b->tlast == a->tlast && b->last > a->last)) { a->last = b->last; a->tlast = b->tlast; }
    a->n += b->n;
    a->sum += b->sum;
}

static int agg_collect(agg *a, int64_t t, double v)
{
    if (a->nv == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        double *vv = realloc(a->vv, cap * sizeof *vv);
        if (!vv) return -1;
        a->vv = vv;
        int64_t *vt = realloc(a->vt, cap * sizeof *vt);
        if (!vt) return -1;
        a->vt = vt;
        a->cap = cap;
    }
    a->vv[a->nv] = v;
    a->vt[a->nv++] = t;
    return 0;
}

static void aggs_free(agg *st, size_t n)
{
    if (!st) return;
    for (size_t i = 0; i < n; i++) { free(st[i].vv); free(st[i].vt); }
    free(st);
}

/* ---- fast path: decomposable aggregates from summaries and decoded chunks ---- */

#define N_PARTS 16 /* fixed: results must not depend on the thread count */

/* A chunk spanning several buckets whose decoding max()/min() put off: it
 * is decoded only if some bucket it spans may still change (see run_fast). */
typedef struct pend {
    double key;          /* the chunk's max (F_MAX) or -min (F_MIN): larger first */
    int64_t first_ms, last_ms;
    uint64_t id;
    uint32_t group;
} pend;

typedef struct part {
    size_t t0, t1;      /* tag sets [t0, t1) */
    uint32_t g0, g1;    /* groups [g0, g1] */
    agg *st;            /* [(g1 - g0 + 1) * nb] */
    pend *pd;           /* put-off chunks (pruned path) */
    size_t n_pd, cap_pd;
    mk_read_stats rd;
    mk_err rc;
    char err[512];
} part;

typedef struct fast_run {
    mk_xctx *c;
    const plan *p;
    const slot *s;
    int64_t shift;
    int use_sum;
    int64_t roll_step;  /* > 0: whole tier buckets of this width come from a rollup tier */
    int is_prune;       /* max()/min() over several buckets: put off spanning chunks */
    int64_t from_ms, to_ms;
    int64_t *bend_ms; /* [nb]: first stored ms past each bucket, shift applied */
    part *parts;
    size_t n_parts;
    atomic_size_t next;
    atomic_int is_stop;
} fast_run;

/* Folds samples (ascending) into the buckets of base. bend_ms[b] is the
 * first ms timestamp past bucket b (shift applied), so the loop compares
 * stored timestamps directly. need_t: keep min/max point times (a lone
 * selector), which needs the per-point path. */
/* What a fold must compute for a slot (the rest of the state is left 0). */
enum { NEED_SUM = 1, NEED_MIN = 2, NEED_MAX = 4 };

static int slot_needs(int fn)
{
    switch (fn) {
    case F_COUNT: case F_FIRST: case F_LAST: return 0;
    case F_SUM: case F_MEAN: return NEED_SUM;
    case F_MIN: return NEED_MIN;
    case F_MAX: return NEED_MAX;
    case F_SPREAD: return NEED_MIN | NEED_MAX;
    default: return NEED_SUM | NEED_MIN | NEED_MAX;
    }
}

/* Sum / min / max of v[0..n) (n >= 1) with four accumulators; NaN in v
 * makes *sum NaN when NEED_SUM, which the caller checks. */
static inline void run_stats(const double *v, size_t n, int need, double *sum, double *mn, double *mx)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    double a0 = v[0], a1 = v[0], a2 = v[0], a3 = v[0];
    double b0 = v[0], b1 = v[0], b2 = v[0], b3 = v[0];
    size_t k = 0;
    if (need & NEED_SUM) {
        for (; k + 4 <= n; k += 4) { s0 += v[k]; s1 += v[k + 1]; s2 += v[k + 2]; s3 += v[k + 3]; }
        for (; k < n; k++) s0 += v[k];
        *sum = (s0 + s1) + (s2 + s3);
    }
    if (need & NEED_MIN) {
        for (k = 0; k + 4 <= n; k += 4) {
            a0 = v[k] < a0 ? v[k] : a0; a1 = v[k + 1] < a1 ? v[k + 1] : a1;
            a2 = v[k + 2] < a2 ? v[k + 2] : a2; a3 = v[k + 3] < a3 ? v[k + 3] : a3;
        }
        for (; k < n; k++) a0 = v[k] < a0 ? v[k] : a0;
        a0 = a1 < a0 ? a1 : a0; a2 = a3 < a2 ? a3 : a2;
        *mn = a2 < a0 ? a2 : a0;
    }
    if (need & NEED_MAX) {
        for (k = 0; k + 4 <= n; k += 4) {
            b0 = v[k] > b0 ? v[k] : b0; b1 = v[k + 1] > b1 ? v[k + 1] : b1;
            b2 = v[k + 2] > b2 ? v[k + 2] : b2; b3 = v[k + 3] > b3 ? v[k + 3] : b3;
        }
        for (; k < n; k++) b0 = v[k] > b0 ? v[k] : b0;
        b0 = b1 > b0 ? b1 : b0; b2 = b3 > b2 ? b3 : b2;
        *mx = b2 > b0 ? b2 : b0;
    }
}

static void fold(const plan *p, agg *base, const int64_t *bend_ms, int need_t, int need, const int64_t *ts,
                 const double *vals, size_t n)
{
    if (!n) return;
    size_t nb = p->nb;
    size_t lo = 0, hi = nb - 1; /* first bucket whose end is past ts[0] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bend_ms[mid] > ts[0]) hi = mid; else lo = mid + 1;
    }
    size_t b = lo;
    size_t i = 0;
    while (i < n) {
        while (b + 1 < nb && ts[i] >= bend_ms[b]) b++;
        int64_t bend = bend_ms[b];
        size_t j;
        if (ts[n - 1] < bend) j = n;
        else { /* first sample at or past bend: binary search in (i, n) */
            size_t lo2 = i, hi2 = n - 1;
            while (lo2 < hi2) {
                size_t mid = lo2 + (hi2 - lo2) / 2;
                if (ts[mid] >= bend) hi2 = mid; else lo2 = mid + 1;
            }
            j = lo2;
        }
        if (j == i) { i++; continue; } /* past the last bucket: not with clipped ranges */
        agg *a = &base[b];
        if (need_t) {
            for (size_t k = i; k < j; k++)
                if (!isnan(vals[k])) agg_point(a, ms_ns(ts[k]), vals[k]);
            i = j;
            continue;
        }
        double sum = 0, mn = vals[i], mx = vals[i];
        run_stats(vals + i, j - i, need | NEED_SUM, &sum, &mn, &mx); /* the sum also detects NaN */
        agg x = {0};
        if (isnan(sum)) { /* NaN samples: the careful way */
            for (size_t k = i; k < j; k++)
                if (!isnan(vals[k])) agg_point(&x, ms_ns(ts[k]), vals[k]);
        } else {
            x.n = j - i;
            x.sum = sum;
            x.min = mn; x.tmin = ms_ns(ts[i]);
            x.max = mx; x.tmax = ms_ns(ts[i]);
            x.first = vals[i]; x.tfirst = ms_ns(ts[i]);
            x.last = vals[j - 1]; x.tlast = ms_ns(ts[j - 1]);
        }
        agg_merge(a, &x);
        i = j;
    }
}

typedef struct witers {
    mk_sum_iter *si;
    mk_iter *it;
    mk_bucket_iter *bi;
} witers;

/*
 * The rollup tier width slot function fn may be read from: the widest tier
 * whose width divides the GROUP BY interval and offset (so every tier
 * bucket lies inside one query bucket), for functions a bucket's count,
 * sum, min, max, first and last answer without the points' times (first()
 * and last() under GROUP BY time show the bucket's time, and the earliest
 * tier bucket's first value is the query bucket's, when the group has one
 * series); 0 = raw samples.
 * *why says which (for EXPLAIN).
 */
static int64_t rollup_step(const mk_xctx *c, const plan *p, int fn, int64_t shift, const char **why)
{
    *why = "raw (the only tier that can answer: ";
    if (c->tier_mode == MK_QUERY_TIER_RAW) { *why = "raw (the only tier: raw forced)"; return 0; }
    if (!(fn == F_COUNT || fn == F_SUM || fn == F_MEAN || fn == F_MIN || fn == F_MAX || fn == F_SPREAD || fn == F_FIRST ||
          fn == F_LAST) ||
        p->is_selector_time) {
        *why = "raw (the only tier that can answer this function)";
        return 0;
    }
    if ((fn == F_FIRST || fn == F_LAST) && p->n_groups != p->n_ts) {
        /* several series in a group: the first point is the earliest of
         * all, and tier buckets do not keep their points' times */
        *why = "raw (the only tier that can answer first/last over several series in a group)";
        return 0;
    }
    if (!p->has_iv || p->tz || p->iv % 1000000 || p->off % 1000000) {
        *why = "raw (the only tier that can answer: no GROUP BY time in whole ms, or a time zone)";
        return 0;
    }
    int64_t steps[MK_MAX_ROLLUP_TIERS];
    size_t n = mk_db_rollup_steps(c->db, steps, MK_MAX_ROLLUP_TIERS);
    int64_t iv = p->iv / 1000000, off = p->off / 1000000;
    for (size_t i = n; i-- > 0;) {
        if (iv % steps[i] == 0 && (off % steps[i] + steps[i]) % steps[i] == 0) {
            /* A tier with nothing in the range (the current week is not
             * rolled up) would only turn every bucket into a raw decode and
             * give up max()/min() chunk pruning. */
            int64_t lo = p->lo <= MK_X_MIN_TIME_NS ? INT64_MIN / 2 : sat_sub(p->lo, shift) / 1000000;
            int64_t hi = p->hi >= MK_X_MAX_TIME_NS ? INT64_MAX / 2 : sat_sub(p->hi, shift) / 1000000 + 1;
            if (!mk_db_tier_has_data(c->db, steps[i], lo, hi)) {
                *why = "raw (no rollup block covers the range yet)";
                return 0;
            }
            *why = "rollup";
            return steps[i];
        }
    }
    *why = "raw (the only tier that can answer: no rollup tier width divides the interval)";
    return 0;
}

static void add_stats(mk_read_stats *to, const mk_read_stats *a, const mk_read_stats *b)
{
    to->n_chunks_decoded += a->n_chunks_decoded - b->n_chunks_decoded;
    to->n_samples_decoded += a->n_samples_decoded - b->n_samples_decoded;
    to->n_bytes_read += a->n_bytes_read - b->n_bytes_read;
}

static int pend_push(part *pt, const pend *q)
{
    if (pt->n_pd == pt->cap_pd) {
        size_t cap = pt->cap_pd ? pt->cap_pd * 2 : 64;
        pend *v = realloc(pt->pd, cap * sizeof *v);
        if (!v) return -1;
        pt->pd = v;
        pt->cap_pd = cap;
    }
    pt->pd[pt->n_pd++] = *q;
    return 0;
}

/* The tier buckets of [from_ms, to_ms) (whole tier buckets) into base. */
static void fast_rollup(fast_run *r, part *pt, witers *w, uint64_t id, agg *base, int64_t from_ms, int64_t to_ms)
{
    const plan *p = r->p;
    mk_diag d = {0};
    mk_read_stats before, after;
    if (w->bi) pt->rc = mk_bucket_iter_reset(w->bi, r->c->db, id, r->roll_step, from_ms, to_ms, &d);
    else pt->rc = mk_db_iter_buckets(r->c->db, id, r->roll_step, from_ms, to_ms, &w->bi, &d);
    if (pt->rc) goto fail;
    int need = slot_needs(r->s->fn);
    mk_bucket_iter_fields(w->bi, MK_BUCKET_COUNT | (need & NEED_SUM ? MK_BUCKET_SUM : 0) | (need & NEED_MIN ? MK_BUCKET_MIN : 0) |
                                     (need & NEED_MAX ? MK_BUCKET_MAX : 0) | (r->s->fn == F_FIRST ? MK_BUCKET_FIRST : 0) |
                                     (r->s->fn == F_LAST ? MK_BUCKET_LAST : 0));
    mk_bucket_iter_stats(w->bi, &before);
    size_t b = 0;
    for (;;) {
        const mk_bucket *k;
        size_t n;
        if ((pt->rc = mk_bucket_iter_next(w->bi, &k, &n, &d))) break;
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            if (!k[i].count) continue;
            while (b + 1 < p->nb && k[i].start_ms >= r->bend_ms[b]) b++;
            agg x = {0};
            x.n = k[i].count;
            x.sum = k[i].sum;
            x.min = k[i].min; x.tmin = ms_ns(k[i].start_ms);
            x.max = k[i].max; x.tmax = ms_ns(k[i].start_ms);
            x.first = k[i].first; x.tfirst = ms_ns(k[i].start_ms);
            x.last = k[i].last; x.tlast = ms_ns(k[i].start_ms + r->roll_step - 1);
            agg_merge(&base[b], &x);
        }
    }
    mk_bucket_iter_stats(w->bi, &after);
    pt->rd.n_chunks_summary += after.n_chunks_summary - before.n_chunks_summary;
    add_stats(&pt->rd, &after, &before);
fail:
    if (pt->rc) snprintf(pt->err, sizeof pt->err, "%s", d.msg[0] ? d.msg : mk_strerror(pt->rc));
}

static void fast_range(fast_run *r, part *pt, witers *w, uint64_t id, agg *base, uint32_t group, int64_t from_ms,
                       int64_t to_ms);

static void fast_series(fast_run *r, part *pt, witers *w, uint64_t id, agg *base, uint32_t group)
{
    if (r->roll_step > 0) {
        /* whole tier buckets from the tier, partial ones at the edges raw */
        int64_t st = r->roll_step;
        int64_t a = r->from_ms > INT64_MIN + st ? -mk_floordiv(-r->from_ms, st) * st : r->from_ms;
        int64_t z = r->to_ms < INT64_MAX ? mk_floordiv(r->to_ms, st) * st : r->to_ms;
        if (r->from_ms <= INT64_MIN / 2 || r->to_ms == INT64_MAX || a >= z) {
            fast_range(r, pt, w, id, base, group, r->from_ms, r->to_ms);
            return;
        }
        if (r->from_ms < a) fast_range(r, pt, w, id, base, group, r->from_ms, a);
        if (!pt->rc) fast_rollup(r, pt, w, id, base, a, z);
        if (!pt->rc && z < r->to_ms) fast_range(r, pt, w, id, base, group, z, r->to_ms);
        return;
    }
    fast_range(r, pt, w, id, base, group, r->from_ms, r->to_ms);
}

static void fast_range(fast_run *r, part *pt, witers *w, uint64_t id, agg *base, uint32_t group, int64_t from_ms,
                       int64_t to_ms)
{
    const plan *p = r->p;
    mk_diag d = {0};
    int need_t = p->is_selector_time;
    mk_read_stats before, after;
    if (r->use_sum) {
        if (w->si) pt->rc = mk_sum_iter_reset(w->si, r->c->db, id, from_ms, to_ms, &d);
        else pt->rc = mk_db_iter_summaries(r->c->db, id, from_ms, to_ms, &w->si, &d);
        if (pt->rc) goto fail;
        mk_sum_iter_stats(w->si, &before);
        for (;;) {
            const mk_chunk_summary *s;
            int is_dec, has;
            if ((pt->rc = mk_sum_iter_next(w->si, &s, &is_dec, &has, &d))) break;
            if (!has) break;
            size_t b = 0;
            while (b + 1 < p->nb && s->first_ts_ms >= r->bend_ms[b]) b++;
            if (s->last_ts_ms < r->bend_ms[b]) {
                /* the whole chunk lies in bucket b: its summary is enough */
                if (!s->count) continue;
                agg x = {0};
                x.n = s->count;
                x.sum = s->sum;
                x.min = s->min; x.tmin = ms_ns(s->first_ts_ms);
                x.max = s->max; x.tmax = ms_ns(s->first_ts_ms);
                x.first = s->first; x.tfirst = ms_ns(s->first_ts_ms);
                x.last = s->last; x.tlast = ms_ns(s->last_ts_ms);
                agg_merge(&base[b], &x);
                if (!is_dec) pt->rd.n_chunks_summary++;
                continue;
            }
            if (r->is_prune && !is_dec && s->count) {
                pend q = {r->s->fn == F_MAX ? s->max : -s->min, s->first_ts_ms, s->last_ts_ms, id, group};
                if (pend_push(pt, &q)) {
                    pt->rc = mk_diag_set(&d, MK_ENOMEM, "out of memory");
                    break;
                }
                continue;
            }
            const int64_t *ts;
            const double *vals;
            size_t n;
            if ((pt->rc = mk_sum_iter_samples(w->si, &ts, &vals, &n, &d))) break;
            fold(p, base, r->bend_ms, need_t, slot_needs(r->s->fn), ts, vals, n);
        }
        mk_sum_iter_stats(w->si, &after);
    } else {
        if (w->it) pt->rc = mk_iter_reset(w->it, r->c->db, id, from_ms, to_ms, &d);
        else pt->rc = mk_db_iter(r->c->db, id, from_ms, to_ms, &w->it, &d);
        if (pt->rc) goto fail;
        mk_iter_stats(w->it, &before);
        for (;;) {
            const int64_t *ts;
            const double *vals;
            size_t n;
            if ((pt->rc = mk_iter_next(w->it, &ts, &vals, &n, &d))) break;
            if (!n) break;
            fold(p, base, r->bend_ms, need_t, slot_needs(r->s->fn), ts, vals, n);
        }
        mk_iter_stats(w->it, &after);
    }
    add_stats(&pt->rd, &after, &before);
fail:
    if (pt->rc) snprintf(pt->err, sizeof pt->err, "%s", d.msg[0] ? d.msg : mk_strerror(pt->rc));
}

static void *fast_worker(void *arg)
{
    fast_run *r = arg;
    witers w = {NULL, NULL, NULL};
    for (;;) {
        size_t k = atomic_fetch_add(&r->next, 1);
        if (k >= r->n_parts || atomic_load(&r->is_stop)) break;
        part *pt = &r->parts[k];
        for (size_t t = pt->t0; t < pt->t1 && !pt->rc; t++) {
            const tagset *ts = &r->p->ts[t];
            uint64_t id = ts->fid[r->s->fidx];
            if (!id) continue;
            if (r->c->deadline_ms != INT64_MAX && mk_x_mono_ms() > r->c->deadline_ms) {
                pt->rc = MK_ELIMIT;
                snprintf(pt->err, sizeof pt->err, "query timeout after %lld ms", (long long)r->c->timeout_ms);
                break;
            }
            fast_series(r, pt, &w, id, pt->st + (size_t)(ts->group - pt->g0) * r->p->nb, ts->group);
        }
        if (pt->rc) atomic_store(&r->is_stop, 1);
    }
    mk_sum_iter_free(w.si);
    mk_iter_free(w.it);
    mk_bucket_iter_free(w.bi);
    return NULL;
}

static int cmp_pend(const void *a, const void *b)
{
    const pend *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->first_ms > y->first_ms) - (x->first_ms < y->first_ms);
}

/*
 * The chunks max()/min() put off, most extreme first: a chunk is decoded
 * only if one of the buckets it spans is still empty or less extreme than
 * the chunk's own max (min). Otherwise nothing in it can change the answer,
 * so its summary alone settles it (an exact zone-map pruning; the result
 * does not depend on the order, only the work does). Over many series
 * sharing buckets (max across a fleet) most chunks are never decoded.
 */
typedef struct pend_run {
    mk_xctx *c;
    const plan *p;
    uint32_t si;
    const fast_run *r;
    agg *st;
    const pend *all;
    size_t n;
    atomic_size_t next;     /* the next chunk to look at, most extreme first */
    pthread_mutex_t mu;     /* guards st's states of slot si and the fields below */
    uint64_t n_pruned;
    mk_read_stats rd;
    mk_err rc;
    char err[512];
} pend_run;

static void *pend_worker(void *arg)
{
    pend_run *pr = arg;
    const plan *p = pr->p;
    const slot *s = &p->slots[pr->si];
    agg *scratch = calloc(p->nb, sizeof *scratch);
    mk_iter *it = NULL;
    mk_err rc = MK_OK;
    mk_diag d = {0};
    uint64_t n_pruned = 0;
    if (!scratch) { rc = mk_diag_set(&d, MK_ENOMEM, "out of memory"); goto out; }
    for (;;) {
        size_t i = atomic_fetch_add(&pr->next, 1);
        if (i >= pr->n) break;
        const pend *q = &pr->all[i];
        size_t b0 = 0, b1;
        while (b0 + 1 < p->nb && q->first_ms >= pr->r->bend_ms[b0]) b0++;
        for (b1 = b0; b1 + 1 < p->nb && q->last_ms >= pr->r->bend_ms[b1];) b1++;
        int is_settled = 1;
        pthread_mutex_lock(&pr->mu);
        int is_stop = pr->rc != MK_OK;
        for (size_t b = b0; b <= b1 && is_settled; b++) {
            const agg *a = &pr->st[((size_t)q->group * p->nb + b) * p->n_slots + pr->si];
            is_settled = a->n && (s->fn == F_MAX ? a->max >= q->key : -a->min >= q->key);
        }
        pthread_mutex_unlock(&pr->mu);
        if (is_stop) break;
        if (is_settled) { n_pruned++; continue; }
        if (pr->c->deadline_ms != INT64_MAX && mk_x_mono_ms() > pr->c->deadline_ms) {
            rc = mk_diag_set(&d, MK_ELIMIT, "query timeout after %lld ms", (long long)pr->c->timeout_ms);
            break;
        }
        int64_t from = q->first_ms > pr->r->from_ms ? q->first_ms : pr->r->from_ms;
        int64_t to = q->last_ms < pr->r->to_ms - 1 ? q->last_ms + 1 : pr->r->to_ms;
        rc = it ? mk_iter_reset(it, pr->c->db, q->id, from, to, &d) : mk_db_iter(pr->c->db, q->id, from, to, &it, &d);
        if (rc) break;
        for (;;) {
            const int64_t *ts;
            const double *vals;
            size_t m;
            if ((rc = mk_iter_next(it, &ts, &vals, &m, &d))) break;
            if (!m) break;
            fold(p, scratch, pr->r->bend_ms, 0, slot_needs(s->fn), ts, vals, m);
        }
        if (rc) break;
        pthread_mutex_lock(&pr->mu);
        for (size_t b = b0; b <= b1; b++)
            agg_merge(&pr->st[((size_t)q->group * p->nb + b) * p->n_slots + pr->si], &scratch[b]);
        pthread_mutex_unlock(&pr->mu);
        for (size_t b = b0; b <= b1; b++) scratch[b] = (agg){0};
    }
out:;
    mk_read_stats rd = {0};
    if (it) mk_iter_stats(it, &rd);
    pthread_mutex_lock(&pr->mu);
    pr->n_pruned += n_pruned;
    pr->rd.n_chunks_decoded += rd.n_chunks_decoded;
    pr->rd.n_samples_decoded += rd.n_samples_decoded;
    pr->rd.n_bytes_read += rd.n_bytes_read;
    if (rc && !pr->rc) {
        pr->rc = rc;
        snprintf(pr->err, sizeof pr->err, "%s", d.msg[0] ? d.msg : mk_strerror(rc));
    }
    pthread_mutex_unlock(&pr->mu);
    mk_iter_free(it);
    free(scratch);
    return NULL;
}

/*
 * The chunks max()/min() put off, most extreme first: a chunk is decoded
 * only if one of the buckets it spans is still empty or less extreme than
 * the chunk's own max (min). Otherwise nothing in it can change the answer,
 * so its summary alone settles it (exact zone-map pruning: max and min do
 * not depend on the order chunks are folded in, only the work does). Over
 * many series sharing buckets (max across a fleet) most chunks are never
 * decoded. The chunks left are decoded on every thread.
 */
static mk_err run_pending(mk_xctx *c, plan *p, uint32_t si, fast_run *r, part *parts, size_t n_parts, agg *st)
{
    size_t n = 0;
    for (size_t k = 0; k < n_parts; k++) n += parts[k].n_pd;
    if (!n) return MK_OK;
    pend *all = malloc(n * sizeof *all);
    if (!all) return mk_x_fail(c, "out of memory");
    n = 0;
    for (size_t k = 0; k < n_parts; k++) {
        if (parts[k].n_pd) memcpy(all + n, parts[k].pd, parts[k].n_pd * sizeof *all); /* (pd is NULL when empty) */
        n += parts[k].n_pd;
    }
    qsort(all, n, sizeof *all, cmp_pend);
    pend_run pr;
    memset(&pr, 0, sizeof pr);
    pr.c = c; pr.p = p; pr.si = si; pr.r = r; pr.st = st; pr.all = all; pr.n = n;
    atomic_init(&pr.next, 0);
    pthread_mutex_init(&pr.mu, NULL);
    pthread_t thr[8];
    int n_started = 0;
    for (int i = 1; i < c->n_threads && i < 8 && (size_t)i < n; i++)
        if (pthread_create(&thr[n_started], NULL, pend_worker, &pr) == 0) n_started++;
    pend_worker(&pr);
    for (int i = 0; i < n_started; i++) pthread_join(thr[i], NULL);
    pthread_mutex_destroy(&pr.mu);
    free(all);
    const slot *s = &p->slots[si];
    p->fst[s->fidx].rd.n_chunks_summary += pr.n_pruned;
    p->fst[s->fidx].rd.n_chunks_decoded += pr.rd.n_chunks_decoded;
    p->fst[s->fidx].rd.n_samples_decoded += pr.rd.n_samples_decoded;
    p->fst[s->fidx].rd.n_bytes_read += pr.rd.n_bytes_read;
    if (pr.rc) return mk_x_fail(c, "%s", pr.err);
    return MK_OK;
}

/* Computes slot s into st[(g * nb + b) * n_slots + si] for every group and bucket. */
static mk_err run_fast(mk_xctx *c, plan *p, uint32_t si, int64_t shift, agg *st)
{
    const slot *s = &p->slots[si];
    fast_run r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.p = p;
    r.s = s;
    r.shift = shift;
    /* a lone min()/max() needs its point's time, which summaries do not keep */
    r.use_sum = !c->no_summaries && !(p->is_selector_time && (s->fn == F_MIN || s->fn == F_MAX));
    const char *why;
    r.roll_step = rollup_step(c, p, s->fn, shift, &why);
    /* (put-off chunks are re-read by their time span, which the tier part
     * of a split range must not be: no pruning with a tier) */
    r.is_prune = r.use_sum && !r.roll_step && !p->is_selector_time && p->nb > 1 && (s->fn == F_MIN || s->fn == F_MAX);
    int64_t lo = sat_sub(p->lo, shift), hi = p->hi >= MK_X_MAX_TIME_NS ? p->hi : sat_sub(p->hi, shift);
    if (p->lo <= MK_X_MIN_TIME_NS) lo = p->lo;
    r.from_ms = ms_ceil(lo);
    r.to_ms = ms_end(hi);
    size_t n_ts = p->n_ts, n_parts = n_ts < N_PARTS ? n_ts : N_PARTS;
    if (!n_parts) return MK_OK;
    int64_t bend[1];
    r.bend_ms = p->nb > 1 ? malloc(p->nb * sizeof *r.bend_ms) : bend;
    if (!r.bend_ms) return mk_x_fail(c, "out of memory");
    for (size_t b = 0; b < p->nb; b++) {
        int64_t e = p->bstart[b + 1];
        r.bend_ms[b] = e >= MK_X_MAX_TIME_NS ? INT64_MAX : -mk_floordiv(-sat_sub(e, shift), 1000000); /* ceil */
    }
    part parts[N_PARTS];
    memset(parts, 0, sizeof parts);
    mk_err rc = MK_OK;
    /* One part and one slot: the part's states have st's layout, so the
     * part folds straight into st when st is still empty there (merging
     * into an empty state copies it: the same bits), sparing a large
     * zeroed allocation and a merge pass per query. */
    int is_direct = n_parts == 1 && p->n_slots == 1;
    if (is_direct) {
        size_t g0 = p->ts[0].group, n = (size_t)(p->ts[n_ts - 1].group - g0 + 1) * p->nb;
        for (size_t i = 0; i < n && is_direct; i++) is_direct = st[g0 * p->nb + i].n == 0;
    }
    for (size_t k = 0; k < n_parts; k++) {
        parts[k].t0 = n_ts * k / n_parts;
        parts[k].t1 = n_ts * (k + 1) / n_parts;
        parts[k].g0 = p->ts[parts[k].t0].group;
        parts[k].g1 = p->ts[parts[k].t1 - 1].group;
        size_t n = (size_t)(parts[k].g1 - parts[k].g0 + 1) * p->nb;
        parts[k].st = is_direct ? st + (size_t)parts[k].g0 * p->nb : calloc(n, sizeof(agg));
        if (!parts[k].st) { rc = mk_x_fail(c, "out of memory for %zu aggregate states", n); goto out; }
    }
    r.parts = parts;
    r.n_parts = n_parts;
    int n_thr = c->n_threads < (int)n_parts ? c->n_threads : (int)n_parts;
    pthread_t thr[8];
    int n_started = 0;
    for (int i = 1; i < n_thr && i < 8; i++)
        if (pthread_create(&thr[n_started], NULL, fast_worker, &r) == 0) n_started++;
    fast_worker(&r);
    for (int i = 0; i < n_started; i++) pthread_join(thr[i], NULL);
    for (size_t k = 0; k < n_parts; k++) {
        p->fst[s->fidx].rd.n_chunks_summary += parts[k].rd.n_chunks_summary;
        p->fst[s->fidx].rd.n_chunks_decoded += parts[k].rd.n_chunks_decoded;
        p->fst[s->fidx].rd.n_samples_decoded += parts[k].rd.n_samples_decoded;
        p->fst[s->fidx].rd.n_bytes_read += parts[k].rd.n_bytes_read;
    }
    for (size_t k = 0; k < n_parts; k++)
        if (parts[k].rc) { rc = mk_x_fail(c, "%s", parts[k].err); goto out; }
    /* merge in part order */
    for (size_t k = 0; k < n_parts && !is_direct; k++)
        for (uint32_t g = parts[k].g0; g <= parts[k].g1; g++)
            for (size_t b = 0; b < p->nb; b++)
                agg_merge(&st[((size_t)g * p->nb + b) * p->n_slots + si],
                          &parts[k].st[(size_t)(g - parts[k].g0) * p->nb + b]);
    if (r.is_prune) rc = run_pending(c, p, si, &r, parts, n_parts, st);
out:
    for (size_t k = 0; k < n_parts; k++) {
        if (!is_direct) free(parts[k].st);
        free(parts[k].pd);
    }
    if (r.bend_ms != bend) free(r.bend_ms);
    return rc;
}

/* ---- direct tier path: rollup buckets folded straight into the answer ------- */

/*
 * When every column is one of count/sum/mean/min/max/spread over a GROUP BY
 * time whose width and offset are whole multiples of a rollup tier's width
 * (no time zone, no COMPARE, no transformation), each tier bucket lies in
 * one answer bucket, and the answer needs per group, bucket and field only
 * count, sum, min and max. This path keeps exactly that (32 bytes, not an
 * agg of 112), folds the tier's buckets and the raw samples of the partial
 * tier buckets at the range's edges into it, and writes the answer rows
 * straight into the result: no per-row slot evaluation, expression walk or
 * row copy (fill(previous) and fill(linear) go through the column arrays
 * apply_fill works on). Buckets are uniform without a zone, so a bucket's
 * end is a running sum, not a table. Series are cut into the same fixed
 * parts as run_fast (merged in part order), so answers do not depend on the
 * thread count. Everything else goes through run_fast and emit_agg_group;
 * both give the same answers (tests/unit/test_rollup_query.c compares them,
 * and both with raw samples).
 */

int mk_x_tier_direct_off;

static void apply_fill(const plan *p, double *vals, const uint8_t *empty, const int64_t *times, size_t nb, uint32_t C);
static double fill_number(const plan *p);

typedef struct tstate {
    uint64_t n;           /* samples (tier buckets' counts); without TNEED_COUNT only n > 0 means */
    double sum, min, max; /* NaN min/max: none yet (a tier bucket of NaN samples only) */
} tstate;

typedef struct tpart {
    size_t t0, t1;       /* tag sets [t0, t1) */
    uint32_t g0, g1;     /* groups [g0, g1] */
    tstate *st;          /* [((g - g0) * nb + b) * n_fields + f] */
    mk_read_stats *rd;   /* [n_fields] */
    mk_err rc;
    char err[512];
} tpart;

typedef struct tier_run {
    mk_xctx *c;
    const plan *p;
    int64_t step;        /* the tier's bucket width, ms */
    const int *need;     /* [n_fields] NEED_* of the slots over the field | TNEED_READ; 0: not read */
    int64_t from_ms, to_ms; /* the range read */
    int64_t a_ms, z_ms;  /* [a, z): the whole tier buckets inside it (a < z) */
    int64_t b0_ms, iv_ms; /* answer bucket b is [b0 + b * iv, b0 + (b + 1) * iv) */
    size_t *n_zeroed;    /* non-NULL (tier_inplace, one field): states from *n_zeroed on are not
                          * zeroed yet; they are as they are first reached (in ascending order) */
    tpart *parts;
    size_t n_parts;
    atomic_size_t next;
    atomic_int is_stop;
} tier_run;

/* need bits beyond NEED_*: the field is read; its count is shown (count(),
 * mean()). Without TNEED_COUNT a state's n only tells whether it has data. */
enum { TNEED_READ = 8, TNEED_COUNT = 16 };

/* Zeroes st[*n_zeroed..b] when tier_inplace left them for later: one pass
 * over the answer's memory fewer. */
static inline void tier_touch(const tier_run *r, tstate *st, size_t b)
{
    if (r->n_zeroed && *r->n_zeroed <= b) {
        size_t z = *r->n_zeroed;
        while (z <= b) st[z++] = (tstate){0}; /* (mostly one: buckets come in order) */
        *r->n_zeroed = z;
    }
}

static inline void tstate_add(tstate *s, int need, uint64_t n, double sum, double mn, double mx)
{
    if (!s->n) {
        s->n = n;
        s->sum = sum;
        s->min = mn;
        s->max = mx;
        return;
    }
    s->n += n;
    if (need & NEED_SUM) s->sum += sum;
    if ((need & NEED_MIN) && (mn < s->min || isnan(s->min))) s->min = mn;
    if ((need & NEED_MAX) && (mx > s->max || isnan(s->max))) s->max = mx;
}

/* Raw samples of [from_ms, to_ms) (a partial tier bucket at an edge of the
 * range) into st: NaN samples are skipped, as by fold(). */
static mk_err tier_edge(tier_run *r, mk_iter **it, uint64_t id, tstate *st, uint32_t f, int64_t from_ms, int64_t to_ms,
                        mk_read_stats *rd, mk_diag *d)
{
    const plan *p = r->p;
    uint32_t F = p->n_fields;
    int need = r->need[f];
    mk_err rc = *it ? mk_iter_reset(*it, r->c->db, id, from_ms, to_ms, d) : mk_db_iter(r->c->db, id, from_ms, to_ms, it, d);
    if (rc) return rc;
    mk_read_stats before, after;
    mk_iter_stats(*it, &before);
    size_t nb = p->nb;
    int64_t iv = r->iv_ms;
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t n;
        if ((rc = mk_iter_next(*it, &ts, &v, &n, d))) return rc;
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            if (isnan(v[i])) continue;
            int64_t k = mk_floordiv(ts[i] - r->b0_ms, iv);
            size_t b = k < 0 ? 0 : (uint64_t)k >= nb ? nb - 1 : (size_t)k; /* (the range lies inside the buckets) */
            tier_touch(r, st, b);
            tstate_add(&st[b * F + f], need, 1, v[i], v[i], v[i]);
        }
    }
    mk_iter_stats(*it, &after);
    add_stats(rd, &after, &before);
    return MK_OK;
}

/* One series (field f) into st (its group's states). */
static mk_err tier_series(tier_run *r, mk_bucket_iter **bi, mk_iter **it, uint64_t id, tstate *st, uint32_t f,
                          mk_read_stats *rd, mk_diag *d)
{
    const plan *p = r->p;
    uint32_t F = p->n_fields;
    int need = r->need[f];
    mk_err rc;
    if (r->from_ms < r->a_ms && (rc = tier_edge(r, it, id, st, f, r->from_ms, r->a_ms, rd, d))) return rc;
    rc = *bi ? mk_bucket_iter_reset(*bi, r->c->db, id, r->step, r->a_ms, r->z_ms, d)
             : mk_db_iter_buckets(r->c->db, id, r->step, r->a_ms, r->z_ms, bi, d);
    if (rc) return rc;
    /* the count only for count() and mean(): for the others a bucket's
     * count only tells it has data (mk_bucket_iter_fields_only) */
    mk_bucket_iter_fields_only(*bi, (need & TNEED_COUNT ? MK_BUCKET_COUNT : 0) | (need & NEED_SUM ? MK_BUCKET_SUM : 0) |
                                        (need & NEED_MIN ? MK_BUCKET_MIN : 0) | (need & NEED_MAX ? MK_BUCKET_MAX : 0));
    mk_read_stats before, after;
    mk_bucket_iter_stats(*bi, &before);
    /* tier buckets come in ascending order from a_ms, inside bucket 0 or later */
    size_t b = 0, nb = p->nb;
    int64_t iv = r->iv_ms, bend = r->b0_ms + iv;
    tstate *x = st + f;
    size_t z = r->n_zeroed ? *r->n_zeroed : SIZE_MAX; /* tier_touch's count, kept here while folding */
    for (;;) {
        const mk_bucket *k;
        size_t n;
        if ((rc = mk_bucket_iter_next(*bi, &k, &n, d))) break;
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            if (!k[i].count) continue;
            while (k[i].start_ms >= bend && b + 1 < nb) { b++; bend += iv; x += F; }
            if (z <= b) {
                /* the bucket's first data (tier_inplace: its state is not
                 * zeroed yet, nor any before it since the last) */
                while (z < b) st[z++] = (tstate){0};
                z = b + 1;
                *x = (tstate){k[i].count, k[i].sum, k[i].min, k[i].max};
                continue;
            }
            tstate_add(x, need, k[i].count, k[i].sum, k[i].min, k[i].max);
        }
    }
    if (r->n_zeroed) *r->n_zeroed = z;
    if (rc) return rc;
    mk_bucket_iter_stats(*bi, &after);
    rd->n_chunks_summary += after.n_chunks_summary - before.n_chunks_summary;
    add_stats(rd, &after, &before);
    if (r->z_ms < r->to_ms && (rc = tier_edge(r, it, id, st, f, r->z_ms, r->to_ms, rd, d))) return rc;
    return MK_OK;
}

/* A thread of run_tier_direct: st = its own states of the one group when
 * the answer does not depend on the order series are folded in (see
 * there), else NULL (each part has its states). */
typedef struct tworker {
    tier_run *r;
    tstate *st;
} tworker;

static void *tier_worker(void *arg)
{
    tworker *wk = arg;
    tier_run *r = wk->r;
    const plan *p = r->p;
    mk_bucket_iter *bi = NULL;
    mk_iter *it = NULL;
    for (;;) {
        size_t k = atomic_fetch_add(&r->next, 1);
        if (k >= r->n_parts || atomic_load(&r->is_stop)) break;
        tpart *pt = &r->parts[k];
        mk_diag d = {0};
        for (size_t t = pt->t0; t < pt->t1 && !pt->rc; t++) {
            const tagset *ts = &p->ts[t];
            if (r->c->deadline_ms != INT64_MAX && mk_x_mono_ms() > r->c->deadline_ms) {
                pt->rc = MK_ELIMIT;
                snprintf(pt->err, sizeof pt->err, "query timeout after %lld ms", (long long)r->c->timeout_ms);
                break;
            }
            tstate *gst = wk->st ? wk->st : pt->st + (size_t)(ts->group - pt->g0) * p->nb * p->n_fields;
            for (uint32_t f = 0; f < p->n_fields && !pt->rc; f++) {
                if (!r->need[f] || !ts->fid[f]) continue;
                if ((pt->rc = tier_series(r, &bi, &it, ts->fid[f], gst, f, &pt->rd[f], &d)))
                    snprintf(pt->err, sizeof pt->err, "%s", d.msg[0] ? d.msg : mk_strerror(pt->rc));
            }
        }
        if (pt->rc) atomic_store(&r->is_stop, 1);
    }
    mk_bucket_iter_free(bi);
    mk_iter_free(it);
    return NULL;
}

/* The tier width the direct path reads, or 0 when the statement is not
 * one it answers (see above). Needs the buckets (make_buckets). */
static int64_t tier_direct_step(mk_xctx *c, const plan *p, uint32_t n_runs)
{
    if (mk_x_tier_direct_off || n_runs != 1 || !p->is_agg || !p->has_iv || p->tz || p->sub || p->has_fcond ||
        p->has_transform || p->has_distinct || p->has_integral || p->is_selector_time || !p->n_slots || !p->nb)
        return 0;
    for (uint32_t s = 0; s < p->n_slots; s++) {
        int fn = p->slots[s].fn;
        if (!(fn == F_COUNT || fn == F_SUM || fn == F_MEAN || fn == F_MIN || fn == F_MAX || fn == F_SPREAD)) return 0;
    }
    for (uint32_t k = 0; k < p->n_cols; k++) {
        const mk_ast *e = unparen(p->cols[k].expr);
        int is_slot = 0;
        for (uint32_t s = 0; s < p->n_slots && !is_slot; s++) is_slot = p->slots[s].call == e;
        if (p->cols[k].tfn != F_NONE || !is_slot) return 0;
    }
    for (size_t t = 0; t < p->n_ts; t++)
        if (p->ts[t].qs) return 0;
    /* uniform buckets (no zone; clear of both ends of time) in whole ms */
    if (p->lo <= MK_X_MIN_TIME_NS || p->hi >= MK_X_MAX_TIME_NS || !p->is_uniform || p->b0 % 1000000 || p->iv % 1000000)
        return 0;
    const char *why;
    int64_t step = rollup_step(c, p, p->slots[0].fn, 0, &why);
    /* no whole tier bucket in the range: nothing to gain */
    if (step > 0 && -mk_floordiv(-ms_ceil(p->lo), step) * step >= mk_floordiv(ms_end(p->hi), step) * step) return 0;
    return step;
}

static inline double tier_value(int fn, const tstate *x)
{
    switch (fn) {
    case F_COUNT: return (double)x->n;
    case F_SUM: return x->sum;
    case F_MEAN: return x->sum / (double)x->n;
    case F_MIN: return x->min;
    case F_MAX: return x->max;
    default: return x->max - x->min; /* F_SPREAD */
    }
}

static inline void put_qv(mk_qv *q, double v, int is_int)
{
    if (isnan(v)) { q->type = MK_QV_NULL; q->u.i = 0; }
    else if (is_int && fabs(v) < 9e18 && (double)(int64_t)v == v) { q->type = MK_QV_INT; q->u.i = (int64_t)v; }
    else { q->type = MK_QV_FLOAT; q->u.f = v; }
}

/* MK_OK when n_values more fit the answer under max_points; else the
 * statement's error, set. */
static mk_err answer_room(mk_xctx *c, uint64_t n_values)
{
    if (mk_qres_n_values(c->r) + n_values <= c->max_points) return MK_OK;
    return mk_x_fail(c, "max-select-point limit exceeded: the answer would hold more than %" PRIu64
                     " values (raise max_points / the max-select-point setting, or narrow the time range, add LIMIT, or aggregate)",
                     c->max_points);
}

/* As emit_series: SLIMIT/SOFFSET, OFFSET/LIMIT and the max_points cap over
 * n_rows rows of group g; *row = where to write *cnt rows (after skipping
 * *off), NULL when none are to be written. */
static mk_err tier_rows(mk_xctx *c, plan *p, uint32_t g, size_t n_rows, uint64_t *n_emitted, size_t *off, size_t *cnt, mk_qv **row)
{
    const mk_ast_select *sel = p->sel;
    uint32_t C = p->n_cols;
    *row = NULL;
    if (!n_rows) return MK_OK;
    uint64_t sk = (*n_emitted)++;
    if (sel->soffset.is_set && sk < (uint64_t)sel->soffset.n) return MK_OK;
    if (sel->slimit.is_set && sel->slimit.n > 0 &&
        sk >= (uint64_t)(sel->soffset.is_set ? sel->soffset.n : 0) + (uint64_t)sel->slimit.n)
        return MK_OK;
    *off = sel->offset.is_set ? (size_t)sel->offset.n : 0;
    if (*off >= n_rows) return MK_OK;
    *cnt = n_rows - *off;
    if (sel->limit.is_set && sel->limit.n > 0 && (uint64_t)sel->limit.n < *cnt) *cnt = (size_t)sel->limit.n;
    if (!*cnt) return MK_OK;
    mk_err rc = answer_room(c, (uint64_t)*cnt * (C + 1));
    if (rc) return rc;
    const group *gr = &p->groups[g];
    const char **names = xalloc(c, (C + 1) * sizeof *names);
    if (!names) return mk_x_fail(c, "out of memory");
    names[0] = "time";
    for (uint32_t k = 0; k < C; k++) names[k + 1] = p->cols[k].name;
    uint32_t idx;
    if (mk_qres_add_series(c->r, gr->meas, gr->n_tags, gr->tk, gr->tv, C + 1, names, &idx) ||
        mk_qres_add_rows(c->r, idx, *cnt, row))
        return mk_x_fail(c, "out of memory");
    return MK_OK;
}

/* Group g's answer under fill(previous) or fill(linear): column arrays,
 * apply_fill, then the rows. */
static mk_err tier_emit_filled(mk_xctx *c, plan *p, uint32_t g, const tstate *gst, const uint32_t *col_slot, uint64_t *n_emitted)
{
    uint32_t C = p->n_cols, F = p->n_fields;
    size_t nb = p->nb;
    mk_err rc = MK_OK;
    double *vals = malloc(nb * C * sizeof *vals);
    uint8_t *empty = malloc(nb * C);
    int64_t *times = malloc(nb * sizeof *times);
    if (!vals || !empty || !times) { rc = mk_x_fail(c, "out of memory"); goto out; }
    int is_desc = p->sel->is_desc;
    for (size_t o = 0; o < nb; o++) { /* o: output order */
        size_t b = is_desc ? nb - 1 - o : o;
        times[o] = p->b0 + (int64_t)b * p->iv;
        for (uint32_t k = 0; k < C; k++) {
            const slot *s = &p->slots[col_slot[k]];
            const tstate *x = &gst[b * F + s->fidx];
            empty[o * C + k] = x->n == 0;
            vals[o * C + k] = x->n ? tier_value(s->fn, x) : NAN;
        }
    }
    apply_fill(p, vals, empty, times, nb, C);
    size_t off = 0, cnt = 0;
    mk_qv *row;
    if ((rc = tier_rows(c, p, g, nb, n_emitted, &off, &cnt, &row)) || !row) goto out;
    for (size_t o = off; o < off + cnt; o++, row += C + 1) {
        row[0].type = MK_QV_TIME;
        row[0].u.i = times[o];
        for (uint32_t k = 0; k < C; k++) put_qv(&row[k + 1], vals[o * C + k], p->cols[k].is_int);
    }
out:
    free(vals);
    free(empty);
    free(times);
    return rc;
}

/* A column of the direct path: its function, the field whose states it
 * reads, whether it shows integers, and what it shows when empty (count()
 * 0, the others null, or the fill(number)). */
typedef struct tcol {
    int fn;
    uint32_t f;
    int is_int;
    double empty_v;
} tcol;

/* cnt rows of one column (function fn, a constant once inlined) from the
 * states x0[b * F], buckets in output order from the first. */
static inline __attribute__((always_inline)) void tier_rows_1(mk_qv *q, const tstate *x0, size_t F, int64_t b0, int64_t iv,
                                                              size_t nb, size_t cnt, int is_desc, int fn, int is_int,
                                                              double empty_v)
{
    for (size_t o = 0; o < cnt; o++, q += 2) {
        size_t b = is_desc ? nb - 1 - o : o;
        const tstate *x = x0 + b * F;
        q[0].type = MK_QV_TIME;
        q[0].u.i = b0 + (int64_t)b * iv;
        put_qv(&q[1], x->n ? tier_value(fn, x) : empty_v, is_int);
    }
}

/* Writes group g's answer from its states gst[b * n_fields + f]. */
static mk_err tier_emit_group(mk_xctx *c, plan *p, uint32_t g, const tstate *gst, const uint32_t *col_slot,
                              const tcol *tc, uint64_t *n_emitted)
{
    uint32_t C = p->n_cols, F = p->n_fields;
    size_t nb = p->nb;
    mk_ast_fill fill = p->sel->fill;
    int is_none = fill == MK_AST_FILL_NONE;
    /* rows: every bucket, or under fill(none) those where a column has
     * data; none at all: the group has no series */
    size_t n_data = 0;
    for (size_t b = 0; b < nb && (is_none || !n_data); b++) {
        const tstate *x = gst + b * F;
        int has = 0;
        for (uint32_t k = 0; k < C && !has; k++) has = x[tc[k].f].n != 0;
        n_data += has;
    }
    if (!n_data) return MK_OK;
    if (fill == MK_AST_FILL_PREVIOUS || fill == MK_AST_FILL_LINEAR) return tier_emit_filled(c, p, g, gst, col_slot, n_emitted);
    double t0 = now_ms_f();
    size_t off = 0, cnt = 0;
    mk_qv *row;
    mk_err rc = tier_rows(c, p, g, is_none ? n_data : nb, n_emitted, &off, &cnt, &row);
    if (rc || !row) return rc;
    int is_desc = p->sel->is_desc;
    size_t skip = off, left = cnt;
    int64_t b0 = p->b0, iv = p->iv;
    if (C == 1 && !is_none && !off) {
        /* one column, every bucket from the first: a loop per function */
        const tcol *t = &tc[0];
        const tstate *x0 = gst + t->f;
        switch (t->fn) {
        case F_COUNT: tier_rows_1(row, x0, F, b0, iv, nb, cnt, is_desc, F_COUNT, t->is_int, t->empty_v); break;
        case F_SUM: tier_rows_1(row, x0, F, b0, iv, nb, cnt, is_desc, F_SUM, 0, t->empty_v); break;
        case F_MEAN: tier_rows_1(row, x0, F, b0, iv, nb, cnt, is_desc, F_MEAN, 0, t->empty_v); break;
        case F_MIN: tier_rows_1(row, x0, F, b0, iv, nb, cnt, is_desc, F_MIN, 0, t->empty_v); break;
        case F_MAX: tier_rows_1(row, x0, F, b0, iv, nb, cnt, is_desc, F_MAX, 0, t->empty_v); break;
        default: tier_rows_1(row, x0, F, b0, iv, nb, cnt, is_desc, F_SPREAD, 0, t->empty_v); break;
        }
        left = 0;
    }
    for (size_t o = 0; o < nb && left; o++) {
        size_t b = is_desc ? nb - 1 - o : o;
        const tstate *x = gst + b * F;
        if (is_none) {
            int has = 0;
            for (uint32_t k = 0; k < C && !has; k++) has = x[tc[k].f].n != 0;
            if (!has) continue;
        }
        if (skip) { skip--; continue; }
        row[0].type = MK_QV_TIME;
        row[0].u.i = b0 + (int64_t)b * iv;
        for (uint32_t k = 0; k < C; k++) {
            const tstate *y = &x[tc[k].f];
            put_qv(&row[k + 1], y->n ? tier_value(tc[k].fn, y) : tc[k].empty_v, tc[k].is_int);
        }
        row += C + 1;
        left--;
    }
    c->st.out_ms += now_ms_f() - t0;
    return MK_OK;
}

/*
 * One series, one column, every bucket from the first (fill null, or a
 * number; no DESC, LIMIT, OFFSET, SLIMIT, SOFFSET): the states live in the
 * answer's own rows (a state is as large as a row of time and value) and
 * each becomes its row in place. A year's hourly mean then touches one
 * fresh array, not two: on this project's VMs a page fault costs tens of
 * microseconds, more than folding the page's 128 buckets.
 */
/* Turns the states in q[0..2 nb) (state b in rows b's two values) into
 * the rows, function fn a constant once inlined. */
static inline __attribute__((always_inline)) void tier_inplace_rows(mk_qv *q, size_t nb, int64_t b0, int64_t iv, int fn,
                                                                    int is_int, double empty_v)
{
    for (size_t b = 0; b < nb; b++, q += 2) {
        tstate x;
        memcpy(&x, q, sizeof x); /* (read before its bytes become the row) */
        q[0].type = MK_QV_TIME;
        q[0].u.i = b0 + (int64_t)b * iv;
        put_qv(&q[1], x.n ? tier_value(fn, &x) : empty_v, is_int);
    }
}

static mk_err tier_inplace(mk_xctx *c, plan *p, tier_run *r, const tcol *tc, uint64_t *n_emitted)
{
    size_t nb = p->nb;
    mk_err rc = answer_room(c, (uint64_t)nb * 2);
    if (rc) return rc;
    const group *gr = &p->groups[0];
    const char *names[2] = {"time", p->cols[0].name};
    uint32_t idx;
    mk_qv *row;
    if (mk_qres_add_series(c->r, gr->meas, gr->n_tags, gr->tk, gr->tv, 2, names, &idx) || mk_qres_add_rows(c->r, idx, nb, &row))
        return mk_x_fail(c, "out of memory");
    tstate *st = (tstate *)(void *)row; /* st[b] is row b's two values */
    size_t n_zeroed = 0;
    r->n_zeroed = &n_zeroed; /* (one field: st[b] is bucket b's state) */
    double t1 = now_ms_f();
    mk_bucket_iter *bi = NULL;
    mk_iter *it = NULL;
    mk_diag d = {0};
    mk_read_stats rd = {0};
    uint64_t id = p->ts[0].fid[0];
    if (id) rc = tier_series(r, &bi, &it, id, st, 0, &rd, &d);
    r->n_zeroed = NULL;
    if (!rc) memset(st + n_zeroed, 0, (nb - n_zeroed) * sizeof *st);
    mk_bucket_iter_free(bi);
    mk_iter_free(it);
    p->fst[0].rd.n_chunks_summary += rd.n_chunks_summary;
    p->fst[0].rd.n_chunks_decoded += rd.n_chunks_decoded;
    p->fst[0].rd.n_samples_decoded += rd.n_samples_decoded;
    p->fst[0].rd.n_bytes_read += rd.n_bytes_read;
    if (rc) {
        mk_qres_drop_last_series(c->r);
        return mk_x_fail(c, "%s", d.msg[0] ? d.msg : mk_strerror(rc));
    }
    double t2 = now_ms_f();
    c->st.read_ms += t2 - t1;
    size_t b = 0;
    while (b < nb && !st[b].n) b++;
    if (b == nb) return mk_qres_drop_last_series(c->r) ? mk_x_fail(c, "out of memory") : MK_OK; /* no data: no series */
    (*n_emitted)++;
    const tcol *t = &tc[0];
    switch (t->fn) { /* a loop per function (tier_inplace_rows) */
    case F_COUNT: tier_inplace_rows(row, nb, p->b0, p->iv, F_COUNT, t->is_int, t->empty_v); break;
    case F_SUM: tier_inplace_rows(row, nb, p->b0, p->iv, F_SUM, 0, t->empty_v); break;
    case F_MEAN: tier_inplace_rows(row, nb, p->b0, p->iv, F_MEAN, 0, t->empty_v); break;
    case F_MIN: tier_inplace_rows(row, nb, p->b0, p->iv, F_MIN, 0, t->empty_v); break;
    case F_MAX: tier_inplace_rows(row, nb, p->b0, p->iv, F_MAX, 0, t->empty_v); break;
    default: tier_inplace_rows(row, nb, p->b0, p->iv, F_SPREAD, 0, t->empty_v); break;
    }
    c->st.agg_ms += now_ms_f() - t2;
    return MK_OK;
}

/* Reads every tag set from the tier of width step and writes the answer. */
static mk_err run_tier_direct(mk_xctx *c, plan *p, int64_t step, uint64_t *n_emitted)
{
    uint32_t F = p->n_fields, C = p->n_cols;
    size_t nb = p->nb, n_ts = p->n_ts;
    size_t n_parts = n_ts < N_PARTS ? n_ts : N_PARTS;
    mk_err rc = MK_OK;
    tier_run r;
    memset(&r, 0, sizeof r);
    tpart parts[N_PARTS];
    memset(parts, 0, sizeof parts);
    tstate *st = NULL;
    tworker wk[8]; /* (before any goto out: out frees their states) */
    for (int i = 0; i < 8; i++) wk[i] = (tworker){&r, NULL};
    int *need = calloc(F ? F : 1, sizeof *need);
    uint32_t *col_slot = malloc((C ? C : 1) * sizeof *col_slot);
    tcol *tc = malloc((C ? C : 1) * sizeof *tc);
    if (!need || !col_slot || !tc) { rc = mk_x_fail(c, "out of memory"); goto out; }
    if (!n_parts) goto out;
    for (uint32_t s = 0; s < p->n_slots; s++) {
        int fn = p->slots[s].fn;
        need[p->slots[s].fidx] |= slot_needs(fn) | TNEED_READ | (fn == F_COUNT || fn == F_MEAN ? TNEED_COUNT : 0);
    }
    double num = p->sel->fill == MK_AST_FILL_NUMBER ? fill_number(p) : NAN;
    for (uint32_t k = 0; k < C; k++) {
        const mk_ast *e = unparen(p->cols[k].expr);
        for (uint32_t s = 0; s < p->n_slots; s++)
            if (p->slots[s].call == e) { col_slot[k] = s; break; }
        const slot *sl = &p->slots[col_slot[k]];
        int is_int = p->cols[k].is_int;
        tc[k] = (tcol){sl->fn, sl->fidx, is_int, p->sel->fill == MK_AST_FILL_NUMBER ? num : is_int ? 0 : NAN};
    }
    r.c = c;
    r.p = p;
    r.step = step;
    r.need = need;
    r.from_ms = ms_ceil(p->lo);
    r.to_ms = ms_end(p->hi);
    r.a_ms = -mk_floordiv(-r.from_ms, step) * step;
    r.z_ms = mk_floordiv(r.to_ms, step) * step;
    r.b0_ms = p->b0 / 1000000;
    r.iv_ms = p->iv / 1000000;
    {
        const mk_ast_select *sel = p->sel;
        if (sizeof(tstate) == 2 * sizeof(mk_qv) && n_ts == 1 && F == 1 && C == 1 && !sel->is_desc &&
            (sel->fill == MK_AST_FILL_DEFAULT || sel->fill == MK_AST_FILL_NULL || sel->fill == MK_AST_FILL_NUMBER) &&
            !sel->offset.is_set && !sel->limit.is_set && !sel->slimit.is_set && !sel->soffset.is_set) {
            rc = tier_inplace(c, p, &r, tc, n_emitted);
            goto out;
        }
    }
    /* One part: its states are the answer's (no merge). One group and no
     * sum (count, min, max are exact in any order): a state array per
     * thread, not per part (a fleet-wide max() over 16 parts zeroed and
     * merged 16 arrays of every bucket). Otherwise a state array per part,
     * merged in part order: sums do not depend on the thread count. */
    size_t per_g = nb * F;
    int is_any_order = n_parts > 1 && p->n_groups == 1;
    for (uint32_t f = 0; f < F; f++) is_any_order &= !(need[f] & NEED_SUM);
    int n_thr = c->n_threads < (int)n_parts ? c->n_threads : (int)n_parts;
    if (n_thr < 1) n_thr = 1;
    if (n_thr > 8) n_thr = 8;
    if (is_any_order) {
        for (int i = 0; i < n_thr; i++)
            if (!(wk[i].st = calloc(per_g, sizeof *wk[i].st))) { rc = mk_x_fail(c, "out of memory for %zu states", per_g); goto out; }
    } else if (n_parts > 1 && !(st = calloc((size_t)p->n_groups * per_g, sizeof *st))) {
        rc = mk_x_fail(c, "out of memory for %zu states", (size_t)p->n_groups * per_g);
        goto out;
    }
    for (size_t k = 0; k < n_parts; k++) {
        tpart *pt = &parts[k];
        pt->t0 = n_ts * k / n_parts;
        pt->t1 = n_ts * (k + 1) / n_parts;
        pt->g0 = p->ts[pt->t0].group;
        pt->g1 = p->ts[pt->t1 - 1].group;
        pt->rd = calloc(F ? F : 1, sizeof *pt->rd);
        if (!pt->rd) { rc = mk_x_fail(c, "out of memory"); goto out; }
        if (is_any_order) continue;
        pt->st = calloc((size_t)(pt->g1 - pt->g0 + 1) * per_g, sizeof *pt->st);
        if (!pt->st) { rc = mk_x_fail(c, "out of memory for %zu states", (size_t)(pt->g1 - pt->g0 + 1) * per_g); goto out; }
    }
    r.parts = parts;
    r.n_parts = n_parts;
    atomic_init(&r.next, 0);
    atomic_init(&r.is_stop, 0);
    double t1 = now_ms_f();
    pthread_t thr[8];
    int n_started = 0;
    for (int i = 1; i < n_thr; i++)
        if (pthread_create(&thr[n_started], NULL, tier_worker, &wk[n_started + 1]) == 0) n_started++;
    tier_worker(&wk[0]);
    for (int i = 0; i < n_started; i++) pthread_join(thr[i], NULL);
    for (size_t k = 0; k < n_parts; k++)
        for (uint32_t f = 0; f < F; f++) {
            p->fst[f].rd.n_chunks_summary += parts[k].rd[f].n_chunks_summary;
            p->fst[f].rd.n_chunks_decoded += parts[k].rd[f].n_chunks_decoded;
            p->fst[f].rd.n_samples_decoded += parts[k].rd[f].n_samples_decoded;
            p->fst[f].rd.n_bytes_read += parts[k].rd[f].n_bytes_read;
        }
    for (size_t k = 0; k < n_parts; k++)
        if (parts[k].rc) { rc = mk_x_fail(c, "%s", parts[k].err); goto out; }
    if (is_any_order) {
        st = wk[0].st;
        wk[0].st = NULL;
        for (int i = 1; i <= n_started; i++)
            for (size_t j = 0; j < per_g; j++)
                if (wk[i].st[j].n) tstate_add(&st[j], need[j % F], wk[i].st[j].n, wk[i].st[j].sum, wk[i].st[j].min, wk[i].st[j].max);
    } else if (n_parts == 1) {
        st = parts[0].st; /* g0 == 0: tag sets are sorted by group, from group 0 */
        parts[0].st = NULL;
    } else {
        /* merge in part order */
        for (size_t k = 0; k < n_parts; k++) {
            const tstate *src = parts[k].st;
            tstate *dst = st + (size_t)parts[k].g0 * per_g;
            size_t n = (size_t)(parts[k].g1 - parts[k].g0 + 1) * per_g;
            for (size_t i = 0; i < n; i++)
                if (src[i].n) tstate_add(&dst[i], need[i % F], src[i].n, src[i].sum, src[i].min, src[i].max);
        }
    }
    double t2 = now_ms_f();
    c->st.read_ms += t2 - t1;
    for (uint32_t g = 0; g < p->n_groups; g++) {
        if ((rc = tier_emit_group(c, p, g, st + (size_t)g * per_g, col_slot, tc, n_emitted))) goto out;
        if ((g & 255) == 0 && (rc = mk_x_check_deadline(c))) goto out;
    }
    c->st.agg_ms += now_ms_f() - t2;
out:
    free(st);
    for (int i = 0; i < 8; i++) free(wk[i].st);
    for (size_t k = 0; k < n_parts; k++) {
        free(parts[k].st);
        free(parts[k].rd);
    }
    free(need);
    free(col_slot);
    free(tc);
    return rc;
}

/* ---- general path: per tag set, fields joined on time ---------------------- */

typedef struct pts {
    int64_t *t; /* ns */
    double *v;
    size_t n, cap;
} pts;

static int pts_push(pts *a, int64_t t, double v)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        int64_t *nt = realloc(a->t, cap * sizeof *nt);
        if (!nt) return -1;
        a->t = nt;
        double *nv = realloc(a->v, cap * sizeof *nv);
        if (!nv) return -1;
        a->v = nv;
        a->cap = cap;
    }
    a->t[a->n] = t;
    a->v[a->n++] = v;
    return 0;
}

/* Loads field f of tag set t over [lo, hi] (ns, inclusive) into a. */
static mk_err load_field(mk_xctx *c, plan *p, const tagset *t, uint32_t f, int64_t lo, int64_t hi, pts *a)
{
    a->n = 0;
    if (t->qs) {
        const mk_qseries *q = t->qs;
        uint32_t ci = UINT32_MAX, ti = UINT32_MAX;
        for (uint32_t k = 0; k < q->n_cols; k++) {
            if (strcmp(q->columns[k], "time") == 0) ti = k;
            else if (strcmp(q->columns[k], p->fields[f]) == 0 && ci == UINT32_MAX) ci = k;
        }
        if (ci == UINT32_MAX) return MK_OK;
        for (uint64_t r = 0; r < q->n_rows; r++) {
            const mk_qv *row = q->values + r * q->n_cols;
            int64_t tt = ti == UINT32_MAX ? 0 : row[ti].u.i;
            if (tt < lo || tt > hi) continue;
            double v;
            if (row[ci].type == MK_QV_FLOAT) v = row[ci].u.f;
            else if (row[ci].type == MK_QV_INT || row[ci].type == MK_QV_BOOL) v = (double)row[ci].u.i;
            else continue;
            if (a->n && tt < a->t[a->n - 1]) continue; /* keep time order */
            if (pts_push(a, tt, v)) return mk_x_fail(c, "out of memory");
        }
        return MK_OK;
    }
    uint64_t id = t->fid[f];
    if (!id) return MK_OK;
    mk_diag d = {0};
    mk_err rc = p->it ? mk_iter_reset(p->it, c->db, id, ms_ceil(lo), ms_end(hi), &d)
                      : mk_db_iter(c->db, id, ms_ceil(lo), ms_end(hi), &p->it, &d);
    if (rc) return mk_x_fail(c, "%s", d.msg);
    mk_iter *it = p->it;
    mk_read_stats st0;
    mk_iter_stats(it, &st0);
    for (;;) {
        const int64_t *ts;
        const double *vals;
        size_t n;
        if ((rc = mk_iter_next(it, &ts, &vals, &n, &d))) { rc = mk_x_fail(c, "%s", d.msg); break; }
        if (!n) break;
        if ((uint64_t)(a->n + n) > c->max_points * 4 + 1000000) {
            rc = mk_x_fail(c, "max-select-point limit exceeded: more than %" PRIu64 " samples of one series to read "
                           "(raise max_points / the max-select-point setting, or narrow the time range)", c->max_points * 4 + 1000000);
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (!isnan(vals[i]) && pts_push(a, ms_ns(ts[i]), vals[i])) { rc = mk_x_fail(c, "out of memory"); break; }
        if (rc) break;
    }
    mk_read_stats st;
    mk_iter_stats(it, &st);
    p->fst[f].rd.n_chunks_decoded += st.n_chunks_decoded - st0.n_chunks_decoded;
    p->fst[f].rd.n_samples_decoded += st.n_samples_decoded - st0.n_samples_decoded;
    p->fst[f].rd.n_bytes_read += st.n_bytes_read - st0.n_bytes_read;
    return rc;
}

static int slot_needs_values(int fn) { return fn >= F_STDDEV && fn <= F_INTEGRAL; }

/* Raw rows of the group being built. */
typedef struct rawbuf {
    int64_t *t;
    mk_qv *v;   /* [n * n_cols] */
    size_t n, cap;
} rawbuf;

/* Value of a raw column expression over a row. */
static mk_qv raw_eval(mk_xctx *c, const plan *p, const mk_ast *e, const tagset *t, const double *fv)
{
    mk_qv r = {MK_QV_NULL, {0}};
    e = unparen(e);
    if (!e) return r;
    switch (e->kind) {
    case MK_AST_INTEGER: r.type = MK_QV_FLOAT; r.u.f = (double)e->u.i64; return r;
    case MK_AST_NUMBER: r.type = MK_QV_FLOAT; r.u.f = e->u.f64; return r;
    case MK_AST_STRING: r.type = MK_QV_STRING; r.u.s = e->u.str.s; return r;
    case MK_AST_PARAM: {
        const mk_qv *v = mk_x_param(c, e->u.str.s);
        if (v) r = *v;
        if (r.type == MK_QV_INT) { r.type = MK_QV_FLOAT; r.u.f = (double)r.u.i; }
        return r;
    }
    case MK_AST_VARREF:
        if (e->u.var.cast != MK_AST_CAST_TAG)
            for (uint32_t f = 0; f < p->n_fields; f++)
                if (strcmp(p->fields[f], e->u.var.name) == 0) {
                    if (!isnan(fv[f])) { r.type = MK_QV_FLOAT; r.u.f = fv[f]; return r; }
                    break; /* no value here: maybe a tag of that name */
                }
        if (e->u.var.cast == MK_AST_CAST_FIELD) return r;
        for (uint32_t k = 0; k < t->s.n_tags; k++)
            if (strcmp(t->s.tk[k], e->u.var.name) == 0) { r.type = MK_QV_STRING; r.u.s = t->s.tv[k]; return r; }
        return r;
    case MK_AST_UNARY: {
        mk_qv v = raw_eval(c, p, e->u.bin.rhs, t, fv);
        if (v.type == MK_QV_FLOAT && e->u.bin.op == MK_QTOK_SUB) v.u.f = -v.u.f;
        return v.type == MK_QV_FLOAT ? v : r;
    }
    case MK_AST_BINARY: {
        mk_qv a = raw_eval(c, p, e->u.bin.lhs, t, fv), b = raw_eval(c, p, e->u.bin.rhs, t, fv);
        if (a.type != MK_QV_FLOAT || b.type != MK_QV_FLOAT) return r;
        r.type = MK_QV_FLOAT;
        switch (e->u.bin.op) {
        case MK_QTOK_ADD: r.u.f = a.u.f + b.u.f; break;
        case MK_QTOK_SUB: r.u.f = a.u.f - b.u.f; break;
        case MK_QTOK_MUL: r.u.f = a.u.f * b.u.f; break;
        case MK_QTOK_DIV: r.u.f = b.u.f == 0 ? 0 : a.u.f / b.u.f; break;
        case MK_QTOK_MOD: if (b.u.f == 0) r.type = MK_QV_NULL; else r.u.f = fmod(a.u.f, b.u.f); break;
        default: r.type = MK_QV_NULL; break;
        }
        return r;
    }
    default: return r;
    }
}

static mk_err emit_raw_group(mk_xctx *c, plan *p, uint32_t g, rawbuf *rb, uint64_t *n_emitted);

/* Runs every tag set: aggregates into st (agg mode), or raw rows, emitted
 * group by group (raw mode). */
static mk_err run_general(mk_xctx *c, plan *p, int64_t shift, agg *st, uint64_t *n_emitted)
{
    mk_err rc = MK_OK;
    uint32_t nf = p->n_fields;
    pts *a = calloc(nf ? nf : 1, sizeof *a);
    size_t *ix = calloc(nf ? nf : 1, sizeof *ix);
    double *fv = calloc(nf ? nf : 1, sizeof *fv);
    rawbuf rb = {0};
    if (!a || !ix || !fv) { rc = mk_x_fail(c, "out of memory"); goto out; }
    int64_t lo = p->lo <= MK_X_MIN_TIME_NS ? p->lo : sat_sub(p->lo, shift);
    int64_t hi = p->hi >= MK_X_MAX_TIME_NS ? p->hi : sat_sub(p->hi, shift);
    uint64_t n_collected = 0; /* samples kept for median, percentile ... (bounded by max_points) */
    for (size_t ti = 0; ti < p->n_ts; ti++) {
        const tagset *t = &p->ts[ti];
        if ((rc = mk_x_check_deadline(c))) goto out;
        for (uint32_t f = 0; f < nf; f++) {
            if ((rc = load_field(c, p, t, f, lo, hi, &a[f]))) goto out;
            ix[f] = 0;
        }
        size_t b = 0;
        for (;;) {
            int64_t tmin = INT64_MAX;
            for (uint32_t f = 0; f < nf; f++)
                if (ix[f] < a[f].n && a[f].t[ix[f]] < tmin) tmin = a[f].t[ix[f]];
            if (tmin == INT64_MAX) break;
            for (uint32_t f = 0; f < nf; f++) {
                if (ix[f] < a[f].n && a[f].t[ix[f]] == tmin) fv[f] = a[f].v[ix[f]++];
                else fv[f] = NAN;
            }
            if (p->has_fcond) {
                mk_xrow row = {&t->s, p->fields, fv, nf};
                if (!mk_x_cond_eval(c, p->cond, &row)) continue;
            }
            if (st) {
                int64_t tb = tmin + shift;
                while (b + 1 < p->nb && tb >= p->bstart[b + 1]) b++;
                if (tb < p->bstart[b]) b = bucket_of(p, tb);
                for (uint32_t s = 0; s < p->n_slots; s++) {
                    double v = fv[p->slots[s].fidx];
                    if (isnan(v)) continue;
                    agg *ag = &st[((size_t)t->group * p->nb + b) * p->n_slots + s];
                    agg_point(ag, tmin, v);
                    if (!slot_needs_values(p->slots[s].fn)) continue;
                    if (++n_collected > c->max_points) {
                        rc = mk_x_fail(c, "max-select-point limit exceeded: %s() needs more than %" PRIu64
                                       " samples in memory (raise max_points / the max-select-point setting, or narrow the time range)",
                                       p->slots[s].call->u.call.name, c->max_points);
                        goto out;
                    }
                    if (agg_collect(ag, tmin, v)) { rc = mk_x_fail(c, "out of memory"); goto out; }
                }
                continue;
            }
            /* raw row */
            mk_qv vals[256];
            uint32_t nc = p->n_cols;
            int has_any = 0;
            for (uint32_t k = 0; k < nc && k < 256; k++) {
                const xcol *col = &p->cols[k];
                vals[k] = raw_eval(c, p, col->tfn ? col->inner : col->expr, t, fv);
                if (col->has_field && vals[k].type != MK_QV_NULL) has_any = 1;
            }
            if (!has_any) continue;
            if (rb.n == rb.cap) {
                size_t cap = rb.cap ? rb.cap * 2 : 256;
                int64_t *nt = realloc(rb.t, cap * sizeof *nt);
                if (!nt) { rc = mk_x_fail(c, "out of memory"); goto out; }
                rb.t = nt;
                mk_qv *nv = realloc(rb.v, cap * nc * sizeof *nv);
                if (!nv) { rc = mk_x_fail(c, "out of memory"); goto out; }
                rb.v = nv;
                rb.cap = cap;
            }
            if ((rc = answer_room(c, (rb.n + 1) * (uint64_t)(nc + 1)))) goto out;
            rb.t[rb.n] = tmin;
            memcpy(rb.v + rb.n * nc, vals, nc * sizeof *vals);
            rb.n++;
        }
        if (!st && (ti + 1 == p->n_ts || p->ts[ti + 1].group != t->group)) {
            if ((rc = emit_raw_group(c, p, t->group, &rb, n_emitted))) goto out;
            rb.n = 0;
        }
    }
out:
    for (uint32_t f = 0; a && f < nf; f++) { free(a[f].t); free(a[f].v); }
    free(a);
    free(ix);
    free(fv);
    free(rb.t);
    free(rb.v);
    return rc;
}

/* ---- transformations ------------------------------------------------------- */

/* Rewrites v[0..n) (rows in time order, NaN = null) into the output of the
 * transformation: NaN where it has no value. */
/* The arithmetic written around a transformation, on its non-null results. */
static void apply_post(const xcol *col, double *v, size_t n)
{
    if (!col->post_op) return;
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i])) continue;
        double a = col->is_post_left ? col->post_k : v[i], b = col->is_post_left ? v[i] : col->post_k;
        switch (col->post_op) {
        case MK_QTOK_ADD: v[i] = a + b; break;
        case MK_QTOK_SUB: v[i] = a - b; break;
        case MK_QTOK_MUL: v[i] = a * b; break;
        default: v[i] = b == 0 ? 0 : a / b; break; /* InfluxQL: division by zero is 0 */
        }
    }
}

static mk_err apply_transform(mk_xctx *c, const xcol *col, int64_t unit_ns, const int64_t *t, double *v, size_t n)
{
    int has_prev = 0;
    int64_t pt = 0;
    double pv = 0, sum = 0;
    double *win = NULL;
    size_t wn = 0, wpos = 0;
    if (col->tfn == T_MAVG) {
        if ((uint64_t)col->mavg_n > n) { /* a window longer than the points never fills */
            for (size_t i = 0; i < n; i++) v[i] = NAN;
            return MK_OK;
        }
        win = calloc((size_t)col->mavg_n, sizeof *win);
        if (!win) return mk_x_fail(c, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        double x = v[i];
        if (isnan(x)) continue;
        double out = NAN;
        switch (col->tfn) {
        case T_DERIV:
        case T_NNDERIV:
            if (has_prev && t[i] != pt) {
                out = (x - pv) / ((double)(t[i] - pt) / (double)unit_ns);
                if (col->tfn == T_NNDERIV && out < 0) out = NAN;
            }
            break;
        case T_DIFF:
        case T_NNDIFF:
            if (has_prev) {
                out = x - pv;
                if (col->tfn == T_NNDIFF && out < 0) out = NAN;
            }
            break;
        case T_MAVG:
            win[wpos] = x;
            wpos = (wpos + 1) % (size_t)col->mavg_n;
            if (wn < (size_t)col->mavg_n) wn++;
            if (wn == (size_t)col->mavg_n) {
                double s = 0;
                for (size_t k = 0; k < wn; k++) s += win[(wpos + k) % wn];
                out = s / (double)wn;
            }
            break;
        case T_CUMSUM:
            sum += x;
            out = sum;
            break;
        default: break;
        }
        has_prev = 1;
        pt = t[i];
        pv = x;
        v[i] = out;
    }
    free(win);
    return MK_OK;
}

/* ---- emitting series ---------------------------------------------------------- */

/* Rows t[]/vals[] are already in output order (ORDER BY applied). */
static mk_err emit_series(mk_xctx *c, plan *p, uint32_t g, const char *const *cols, uint32_t n_cols,
                          const int64_t *t, const mk_qv *vals, size_t n_rows, uint64_t *n_emitted)
{
    const mk_ast_select *sel = p->sel;
    if (!n_rows) return MK_OK;
    uint64_t k = (*n_emitted)++;
    if (sel->soffset.is_set && k < (uint64_t)sel->soffset.n) return MK_OK;
    if (sel->slimit.is_set && sel->slimit.n > 0 &&
        k >= (uint64_t)(sel->soffset.is_set ? sel->soffset.n : 0) + (uint64_t)sel->slimit.n)
        return MK_OK;
    /* rows after OFFSET and LIMIT, in the requested order */
    size_t off = sel->offset.is_set ? (size_t)sel->offset.n : 0;
    if (off >= n_rows) return MK_OK;
    size_t cnt = n_rows - off;
    if (sel->limit.is_set && sel->limit.n > 0 && (uint64_t)sel->limit.n < cnt) cnt = (size_t)sel->limit.n; /* LIMIT 0: none */
    if (!cnt) return MK_OK;
    mk_err rc = answer_room(c, (uint64_t)cnt * (n_cols + 1));
    if (rc) return rc;
    double t0 = now_ms_f();
    const group *gr = &p->groups[g];
    const char **names = xalloc(c, (n_cols + 1) * sizeof *names);
    if (!names) return mk_x_fail(c, "out of memory");
    names[0] = "time";
    for (uint32_t i = 0; i < n_cols; i++) names[i + 1] = cols[i];
    uint32_t idx;
    rc = mk_qres_add_series(c->r, gr->meas, gr->n_tags, gr->tk, gr->tv, n_cols + 1, names, &idx);
    if (rc) return mk_x_fail(c, "out of memory");
    mk_qv *row = malloc((n_cols + 1) * sizeof *row);
    if (!row) return mk_x_fail(c, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        size_t r = off + i;
        row[0].type = MK_QV_TIME;
        row[0].u.i = t[r];
        memcpy(row + 1, vals + r * n_cols, n_cols * sizeof *row);
        if ((rc = mk_qres_add_row(c->r, idx, row))) { rc = mk_x_fail(c, "out of memory"); break; }
    }
    free(row);
    c->st.out_ms += now_ms_f() - t0;
    return rc;
}

typedef struct rsort { int64_t t; size_t i; } rsort;
static int cmp_rsort(const void *a, const void *b)
{
    const rsort *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static mk_err emit_raw_group(mk_xctx *c, plan *p, uint32_t g, rawbuf *rb, uint64_t *n_emitted)
{
    uint32_t nc = p->n_cols;
    size_t n = rb->n;
    if (!n) return MK_OK;
    mk_err rc = MK_OK;
    int is_sorted = 1;
    for (size_t i = 1; i < n && is_sorted; i++) is_sorted = rb->t[i - 1] <= rb->t[i];
    int64_t *t = rb->t;
    mk_qv *v = rb->v;
    int64_t *t2 = NULL;
    mk_qv *v2 = NULL;
    rsort *o = NULL;
    double *col = NULL;
    const char **names = NULL;
    if (!is_sorted) {
        o = malloc(n * sizeof *o);
        t2 = malloc(n * sizeof *t2);
        v2 = malloc(n * nc * sizeof *v2);
        if (!o || !t2 || !v2) { rc = mk_x_fail(c, "out of memory"); goto out; }
        for (size_t i = 0; i < n; i++) o[i] = (rsort){rb->t[i], i};
        qsort(o, n, sizeof *o, cmp_rsort);
        for (size_t i = 0; i < n; i++) {
            t2[i] = o[i].t;
            memcpy(v2 + i * nc, rb->v + o[i].i * nc, nc * sizeof *v2);
        }
        t = t2;
        v = v2;
    }
    if (p->sel->is_desc) /* output order first: transformations run in it, as InfluxDB's */
        for (size_t i = 0, j = n ? n - 1 : 0; i < j; i++, j--) {
            int64_t tt = t[i];
            t[i] = t[j];
            t[j] = tt;
            for (uint32_t k = 0; k < nc; k++) {
                mk_qv x = v[i * nc + k];
                v[i * nc + k] = v[j * nc + k];
                v[j * nc + k] = x;
            }
        }
    if (p->has_transform) {
        col = malloc(n * sizeof *col);
        if (!col) { rc = mk_x_fail(c, "out of memory"); goto out; }
        for (uint32_t k = 0; k < nc; k++) {
            const xcol *xc = &p->cols[k];
            if (!xc->tfn) continue;
            for (size_t i = 0; i < n; i++) col[i] = v[i * nc + k].type == MK_QV_FLOAT ? v[i * nc + k].u.f : NAN;
            if ((rc = apply_transform(c, xc, xc->unit_ns ? xc->unit_ns : 1000000000ll, t, col, n))) goto out;
            apply_post(xc, col, n);
            for (size_t i = 0; i < n; i++) {
                v[i * nc + k].type = isnan(col[i]) ? MK_QV_NULL : MK_QV_FLOAT;
                v[i * nc + k].u.f = col[i];
            }
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            int keep = 0;
            for (uint32_t k = 0; k < nc; k++)
                if (p->cols[k].tfn && v[i * nc + k].type != MK_QV_NULL) keep = 1;
            if (!keep) continue;
            t[m] = t[i];
            memmove(v + m * nc, v + i * nc, nc * sizeof *v);
            m++;
        }
        n = m;
    }
    names = malloc(nc * sizeof *names);
    if (!names) { rc = mk_x_fail(c, "out of memory"); goto out; }
    for (uint32_t k = 0; k < nc; k++) names[k] = p->cols[k].name;
    rc = emit_series(c, p, g, names, nc, t, v, n, n_emitted);
out:
    free(names);
    free(col);
    free(o);
    free(t2);
    free(v2);
    return rc;
}

/* ---- aggregate values ---------------------------------------------------------- */

typedef struct tv { double v; int64_t t; } tv;

/* Doubles as unsigned keys that sort in numeric order (NaN never stored). */
static inline uint64_t dkey(double d)
{
    uint64_t u = mk_f64_bits(d == 0 ? 0.0 : d); /* -0 sorts with 0 */
    return (u >> 63) ? ~u : u | (1ull << 63);
}

/* Sorts v ascending: LSD radix over 11-bit digits (O(n)); small arrays by
 * insertion. Returns -1 when out of memory (v is then unsorted). */
static int sort_dbl(double *v, size_t n)
{
    if (n < 64) {
        for (size_t i = 1; i < n; i++) {
            double x = v[i];
            size_t j = i;
            while (j > 0 && v[j - 1] > x) { v[j] = v[j - 1]; j--; }
            v[j] = x;
        }
        return 0;
    }
    uint64_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    if (!a || !b) { free(a); free(b); return -1; }
    for (size_t i = 0; i < n; i++) a[i] = dkey(v[i]);
    size_t cnt[2048];
    for (int shift = 0; shift < 64; shift += 11) {
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < n; i++) cnt[(a[i] >> shift) & 2047]++;
        if (cnt[(a[0] >> shift) & 2047] == n) continue; /* all share this digit */
        size_t sum = 0;
        for (size_t k = 0; k < 2048; k++) { size_t c = cnt[k]; cnt[k] = sum; sum += c; }
        for (size_t i = 0; i < n; i++) b[cnt[(a[i] >> shift) & 2047]++] = a[i];
        uint64_t *t = a; a = b; b = t;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t u = a[i];
        v[i] = mk_bits_f64((u >> 63) ? u & ~(1ull << 63) : ~u);
    }
    free(a);
    free(b);
    return 0;
}

static int cmp_tv_vt(const void *a, const void *b)
{
    const tv *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->t < y->t ? -1 : x->t > y->t;
}

static int cmp_tv_tv(const void *a, const void *b)
{
    const tv *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return x->v < y->v ? -1 : x->v > y->v;
}

static int tv_less(const tv *x, const tv *y) { return x->v < y->v || (x->v == y->v && x->t < y->t); }

/* Puts the k-th smallest (by value, then time) of x[0..n) at x[k] (quickselect, O(n) expected). */
static void select_tv(tv *x, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ n;
    while (lo < hi) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t pi = lo + (size_t)((seed >> 33) % (hi - lo + 1));
        tv piv = x[pi];
        x[pi] = x[hi];
        x[hi] = piv;
        size_t st = lo;
        for (size_t i = lo; i < hi; i++)
            if (tv_less(&x[i], &piv)) { tv t = x[i]; x[i] = x[st]; x[st] = t; st++; }
        x[hi] = x[st];
        x[st] = piv;
        if (st == k) return;
        if (st < k) lo = st + 1; else hi = st - 1;
    }
}

/* Value of slot s over state a (NaN when empty); *t gets a selector's point time. */
static double slot_value(const slot *s, agg *a, int64_t *t)
{
    *t = INT64_MIN;
    if (!a->n) return NAN;
    switch (s->fn) {
    case F_COUNT: return (double)a->n;
    case F_SUM: return a->sum;
    case F_MEAN: return a->sum / (double)a->n;
    case F_MIN: *t = a->tmin; return a->min;
    case F_MAX: *t = a->tmax; return a->max;
    case F_FIRST: *t = a->tfirst; return a->first;
    case F_LAST: *t = a->tlast; return a->last;
    case F_SPREAD: return a->max - a->min;
    case F_STDDEV: {
        if (a->nv < 2) return NAN;
        double m = 0;
        for (size_t i = 0; i < a->nv; i++) m += a->vv[i];
        m /= (double)a->nv;
        double ss = 0;
        for (size_t i = 0; i < a->nv; i++) ss += (a->vv[i] - m) * (a->vv[i] - m);
        return sqrt(ss / (double)(a->nv - 1));
    }
    case F_MEDIAN: {
        if (sort_dbl(a->vv, a->nv)) return NAN; /* vt is not needed any more */
        size_t n = a->nv;
        if (n % 2) return a->vv[n / 2];
        return a->vv[n / 2 - 1] + (a->vv[n / 2] - a->vv[n / 2 - 1]) / 2;
    }
    case F_MODE: {
        if (sort_dbl(a->vv, a->nv)) return NAN;
        double best = a->vv[0];
        size_t best_n = 0;
        for (size_t i = 0; i < a->nv;) {
            size_t j = i;
            while (j < a->nv && a->vv[j] == a->vv[i]) j++;
            if (j - i > best_n) { best_n = j - i; best = a->vv[i]; }
            i = j;
        }
        return best;
    }
    case F_COUNT_DISTINCT: {
        if (sort_dbl(a->vv, a->nv)) return NAN;
        size_t k = 0;
        for (size_t i = 0; i < a->nv; i++) k += !i || a->vv[i] != a->vv[i - 1];
        return (double)k;
    }
    case F_PERCENTILE: {
        size_t n = a->nv;
        tv *x = malloc(n * sizeof *x);
        if (!x) return NAN;
        for (size_t i = 0; i < n; i++) x[i] = (tv){a->vv[i], a->vt[i]};
        int64_t i = (int64_t)floor((double)n * s->arg / 100.0 + 0.5) - 1;
        double r = NAN;
        if (i >= 0 && i < (int64_t)n) {
            select_tv(x, n, (size_t)i);
            r = x[i].v;
            *t = x[i].t;
        }
        free(x);
        return r;
    }
    default: return NAN;
    }
}

/* Column value from slot values (NaN = null). */
static double agg_eval(mk_xctx *c, const plan *p, const mk_ast *e, const double *sv)
{
    e = unparen(e);
    if (!e) return NAN;
    switch (e->kind) {
    case MK_AST_INTEGER: return (double)e->u.i64;
    case MK_AST_NUMBER: return e->u.f64;
    case MK_AST_PARAM: {
        const mk_qv *v = mk_x_param(c, e->u.str.s);
        if (v && v->type == MK_QV_FLOAT) return v->u.f;
        if (v && v->type == MK_QV_INT) return (double)v->u.i;
        return NAN;
    }
    case MK_AST_CALL:
        for (uint32_t s = 0; s < p->n_slots; s++)
            if (p->slots[s].call == e) return sv[s];
        return NAN;
    case MK_AST_UNARY: {
        double v = agg_eval(c, p, e->u.bin.rhs, sv);
        return e->u.bin.op == MK_QTOK_SUB ? -v : v;
    }
    case MK_AST_BINARY: {
        double a = agg_eval(c, p, e->u.bin.lhs, sv), b = agg_eval(c, p, e->u.bin.rhs, sv);
        if (isnan(a) || isnan(b)) return NAN;
        switch (e->u.bin.op) {
        case MK_QTOK_ADD: return a + b;
        case MK_QTOK_SUB: return a - b;
        case MK_QTOK_MUL: return a * b;
        case MK_QTOK_DIV: return b == 0 ? 0 : a / b;
        case MK_QTOK_MOD: return b == 0 ? NAN : fmod(a, b);
        default: return NAN;
        }
    }
    default: return NAN;
    }
}

/* Whether a column's slots all lack data in a bucket. */
static int col_empty(const plan *p, const mk_ast *e, const agg *row_st, const double *sv)
{
    e = unparen(e);
    if (!e) return 1;
    if (e->kind == MK_AST_CALL) {
        for (uint32_t s = 0; s < p->n_slots; s++)
            if (p->slots[s].call == e) return p->slots[s].fn == F_INTEGRAL ? isnan(sv[s]) : row_st[s].n == 0;
        return 1;
    }
    if (e->kind == MK_AST_BINARY) return col_empty(p, e->u.bin.lhs, row_st, sv) && col_empty(p, e->u.bin.rhs, row_st, sv);
    if (e->kind == MK_AST_UNARY) return col_empty(p, e->u.bin.rhs, row_st, sv);
    return 1;
}

/* integral() of slot s over group g, per bucket (InfluxDB's reducer: trapezoids,
 * interpolated at bucket edges). out[b] = NaN for buckets with no output. */
static void integral_group(const plan *p, const slot *s, agg *gst, uint32_t si, double *out)
{
    int has_prev = 0;
    int64_t pt = 0, ws = 0, we = 0;
    double pv = 0, sum = 0;
    size_t wb = 0;
    for (size_t b = 0; b < p->nb; b++) out[b] = NAN;
    for (size_t b = 0; b < p->nb; b++) {
        agg *a = &gst[b * p->n_slots + si];
        if (!a->nv) continue;
        tv *x = malloc(a->nv * sizeof *x);
        if (!x) continue;
        for (size_t i = 0; i < a->nv; i++) x[i] = (tv){a->vv[i], a->vt[i]};
        /* by time: tag sets were folded one after another */
        for (size_t i = 1; i < a->nv; i++) {
            tv k = x[i];
            size_t j = i;
            while (j > 0 && x[j - 1].t > k.t) { x[j] = x[j - 1]; j--; }
            x[j] = k;
        }
        for (size_t i = 0; i < a->nv; i++) {
            int64_t t = x[i].t;
            double v = x[i].v;
            if (!has_prev) {
                has_prev = 1; pt = t; pv = v;
                wb = b; ws = p->bstart[b]; we = p->has_iv ? p->bstart[b + 1] : INT64_MAX;
                continue;
            }
            if (t == pt) { pv = v; continue; }
            if (p->has_iv && t >= we) {
                if (pt != we) {
                    double val = pv + (v - pv) * ((double)(we - pt) / (double)(t - pt));
                    sum += 0.5 * (val + pv) * ((double)(we - pt) / (double)s->unit_ns);
                    pv = val;
                    pt = we;
                }
                out[wb] = sum;
                sum = 0;
                wb = b; ws = p->bstart[b]; we = p->bstart[b + 1];
            }
            sum += 0.5 * (v + pv) * ((double)(t - pt) / (double)s->unit_ns);
            pt = t;
            pv = v;
        }
        free(x);
    }
    (void)ws;
    if (has_prev) out[wb] = sum;
}

/* ---- aggregate answers ----------------------------------------------------- */

static double fill_number(const plan *p)
{
    const mk_ast *v = unparen(p->sel->fill_value);
    if (!v) return 0;
    if (v->kind == MK_AST_INTEGER) return (double)v->u.i64;
    if (v->kind == MK_AST_NUMBER) return v->u.f64;
    if (v->kind == MK_AST_UNARY && unparen(v->u.bin.rhs)) {
        const mk_ast *x = unparen(v->u.bin.rhs);
        double d = x->kind == MK_AST_INTEGER ? (double)x->u.i64 : x->u.f64;
        return v->u.bin.op == MK_QTOK_SUB ? -d : d;
    }
    return 0;
}

/* Column values of run r over every bucket of group g: vals[b * nc + k],
 * empty[b * nc + k]; times[b] for the main run. Returns whether any slot had data. */
static mk_err group_values(mk_xctx *c, plan *p, uint32_t g, agg *st, double *vals, uint8_t *empty, int64_t *times,
                           int *has_data)
{
    uint32_t S = p->n_slots, C = p->n_cols;
    size_t nb = p->nb;
    agg *gst = st + (size_t)g * nb * S;
    double *sv = malloc((S + 1) * sizeof *sv);
    double *ig = NULL;
    *has_data = 0;
    if (!sv) return mk_x_fail(c, "out of memory");
    if (p->has_integral) {
        ig = malloc(S * nb * sizeof *ig);
        if (!ig) { free(sv); return mk_x_fail(c, "out of memory"); }
        for (uint32_t s = 0; s < S; s++)
            if (p->slots[s].fn == F_INTEGRAL) integral_group(p, &p->slots[s], gst, s, ig + (size_t)s * nb);
    }
    for (size_t b = 0; b < nb; b++) {
        int64_t sel_t = INT64_MIN;
        for (uint32_t s = 0; s < S; s++) {
            int64_t t;
            agg *a = &gst[b * S + s];
            if (p->slots[s].fn == F_INTEGRAL) { sv[s] = ig[(size_t)s * nb + b]; if (!isnan(sv[s])) *has_data = 1; }
            else sv[s] = slot_value(&p->slots[s], a, &t), sel_t = t;
            if (a->n) *has_data = 1;
        }
        for (uint32_t k = 0; k < C; k++) {
            const xcol *col = &p->cols[k];
            const mk_ast *body = col->tfn ? col->inner : col->expr;
            vals[b * C + k] = agg_eval(c, p, body, sv);
            empty[b * C + k] = (uint8_t)col_empty(p, body, &gst[b * S], sv);
        }
        if (times) {
            if (p->has_iv) times[b] = p->bstart[b];
            else if (p->is_selector_time && sel_t != INT64_MIN) times[b] = sel_t;
            else times[b] = p->has_lo ? p->lo : 0;
        }
    }
    free(ig);
    free(sv);
    return MK_OK;
}

static void apply_fill(const plan *p, double *vals, const uint8_t *empty, const int64_t *times, size_t nb, uint32_t C)
{
    mk_ast_fill f = p->sel->fill;
    double num = fill_number(p);
    for (uint32_t k = 0; k < C; k++) {
        int is_int = p->cols[k].is_int;
        for (size_t b = 0; b < nb; b++) {
            if (!empty[b * C + k]) continue;
            double *v = &vals[b * C + k];
            switch (f) {
            case MK_AST_FILL_DEFAULT:
            case MK_AST_FILL_NULL: *v = is_int ? 0 : NAN; break;
            case MK_AST_FILL_NUMBER: *v = num; break;
            case MK_AST_FILL_PREVIOUS: *v = b ? vals[(b - 1) * C + k] : NAN; break;
            case MK_AST_FILL_LINEAR: {
                *v = NAN;
                size_t a = b, z = b;
                while (a > 0 && empty[(a - 1) * C + k]) a--;
                while (z < nb && empty[z * C + k]) z++;
                if (a == 0 || z >= nb) break;
                double va = vals[(a - 1) * C + k], vz = vals[z * C + k];
                if (isnan(va) || isnan(vz)) break;
                int64_t ta = times[a - 1], tz = times[z], tb = times[b];
                *v = va + (vz - va) * ((double)(tb - ta) / (double)(tz - ta));
                break;
            }
            default: break;
            }
        }
    }
}

static mk_err emit_agg_group(mk_xctx *c, plan *p, uint32_t g, agg **runs, uint32_t n_runs, uint64_t *n_emitted)
{
    uint32_t C = p->n_cols;
    size_t nb = p->nb;
    mk_err rc = MK_OK;
    double *vals = malloc(n_runs * nb * C * sizeof *vals);
    uint8_t *empty = malloc(n_runs * nb * C);
    int64_t *times = malloc(nb * sizeof *times);
    uint32_t n_out = C * (1 + 2 * (n_runs - 1));
    mk_qv *ov = NULL;
    int64_t *ot = NULL;
    const char **names = NULL;
    if (!vals || !empty || !times) { rc = mk_x_fail(c, "out of memory"); goto out; }
    int has_data = 0;
    for (uint32_t r = 0; r < n_runs; r++) {
        int hd;
        if ((rc = group_values(c, p, g, runs[r], vals + r * nb * C, empty + r * nb * C, r ? NULL : times, &hd))) goto out;
        if (!r) has_data = hd;
    }
    if (!has_data) goto out;
    if (p->has_distinct && (p->slots[0].fn == F_TOP || p->slots[0].fn == F_BOTTOM)) {
        /* the N largest (smallest) values of each bucket at their own times, in time order */
        int is_top = p->slots[0].fn == F_TOP;
        size_t nmax = (size_t)p->slots[0].arg;
        agg *gst = runs[0] + (size_t)g * nb * p->n_slots;
        size_t cap = 0;
        for (size_t b = 0; b < nb; b++) cap += gst[b].nv < nmax ? gst[b].nv : nmax;
        ov = malloc((cap + 1) * sizeof *ov);
        ot = malloc((cap + 1) * sizeof *ot);
        if (!ov || !ot) { rc = mk_x_fail(c, "out of memory"); goto out; }
        size_t n = 0;
        for (size_t b = 0; b < nb; b++) {
            agg *a = &gst[b];
            if (!a->nv) continue;
            tv *x = malloc(a->nv * sizeof *x);
            if (!x) { rc = mk_x_fail(c, "out of memory"); goto out; }
            for (size_t i = 0; i < a->nv; i++) x[i] = (tv){is_top ? -a->vv[i] : a->vv[i], a->vt[i]};
            qsort(x, a->nv, sizeof *x, cmp_tv_vt); /* best first; ties: earlier first */
            size_t k = a->nv < nmax ? a->nv : nmax;
            qsort(x, k, sizeof *x, cmp_tv_tv); /* the kept ones by time */
            for (size_t i = 0; i < k; i++) {
                ot[n] = x[i].t;
                ov[n].type = MK_QV_FLOAT;
                ov[n++].u.f = is_top ? -x[i].v : x[i].v;
            }
            free(x);
        }
        if (p->sel->is_desc)
            for (size_t i = 0, j = n ? n - 1 : 0; i < j; i++, j--) {
                int64_t tt = ot[i]; ot[i] = ot[j]; ot[j] = tt;
                mk_qv q = ov[i]; ov[i] = ov[j]; ov[j] = q;
            }
        const char *nm = p->cols[0].name;
        rc = emit_series(c, p, g, &nm, 1, ot, ov, n, n_emitted);
        goto out;
    }
    if (p->has_distinct) {
        /* one row per distinct value, per bucket */
        agg *gst = runs[0] + (size_t)g * nb * p->n_slots;
        size_t cap = 0;
        for (size_t b = 0; b < nb; b++) cap += gst[b].nv ? gst[b].nv : 1;
        ov = malloc(cap * sizeof *ov);
        ot = malloc(cap * sizeof *ot);
        if (!ov || !ot) { rc = mk_x_fail(c, "out of memory"); goto out; }
        size_t n = 0;
        for (size_t bo = 0; bo < nb; bo++) {
            size_t b = p->sel->is_desc ? nb - 1 - bo : bo;
            agg *a = &gst[b];
            if (!a->nv) {
                if (!p->has_iv || p->sel->fill == MK_AST_FILL_NONE) continue;
                ot[n] = times[b];
                ov[n].type = MK_QV_NULL;
                if (p->sel->fill == MK_AST_FILL_NUMBER) { ov[n].type = MK_QV_FLOAT; ov[n].u.f = fill_number(p); }
                n++;
                continue;
            }
            if (sort_dbl(a->vv, a->nv)) { rc = mk_x_fail(c, "out of memory"); goto out; }
            for (size_t i = 0; i < a->nv; i++) {
                if (i && a->vv[i] == a->vv[i - 1]) continue;
                ot[n] = times[b];
                ov[n].type = MK_QV_FLOAT;
                ov[n++].u.f = a->vv[i];
            }
        }
        const char *nm = p->cols[0].name;
        rc = emit_series(c, p, g, &nm, 1, ot, ov, n, n_emitted);
        goto out;
    }
    if (p->sel->is_desc) { /* output order first: fill and transformations run in it */
        for (size_t i = 0, j = nb - 1; i < j; i++, j--) {
            int64_t tt = times[i];
            times[i] = times[j];
            times[j] = tt;
            for (uint32_t r = 0; r < n_runs; r++)
                for (uint32_t k = 0; k < C; k++) {
                    size_t a = r * nb * C + i * C + k, z = r * nb * C + j * C + k;
                    double x = vals[a];
                    vals[a] = vals[z];
                    vals[z] = x;
                    uint8_t e = empty[a];
                    empty[a] = empty[z];
                    empty[z] = e;
                }
        }
    }
    if (p->has_iv)
        for (uint32_t r = 0; r < n_runs; r++) apply_fill(p, vals + r * nb * C, empty + r * nb * C, times, nb, C);
    /* rows kept: fill(none) drops buckets where every column is empty */
    uint8_t *keep = malloc(nb ? nb : 1);
    if (!keep) { rc = mk_x_fail(c, "out of memory"); goto out; }
    for (size_t b = 0; b < nb; b++) {
        int all_empty = 1;
        for (uint32_t k = 0; k < C; k++) all_empty &= empty[b * C + k];
        keep[b] = p->has_iv ? !(p->sel->fill == MK_AST_FILL_NONE && all_empty) : !all_empty;
    }
    if (p->has_transform) {
        double *col = malloc(nb * sizeof *col);
        int64_t *ct = malloc(nb * sizeof *ct);
        size_t *map = malloc(nb * sizeof *map);
        if (!col || !ct || !map) { free(col); free(ct); free(map); free(keep); rc = mk_x_fail(c, "out of memory"); goto out; }
        for (uint32_t k = 0; k < C; k++) {
            const xcol *xc = &p->cols[k];
            if (!xc->tfn) continue;
            size_t m = 0;
            for (size_t b = 0; b < nb; b++)
                if (keep[b]) { col[m] = vals[b * C + k]; ct[m] = times[b]; map[m++] = b; }
            int64_t unit = xc->unit_ns ? xc->unit_ns : (p->has_iv ? p->iv : 1000000000ll);
            if ((rc = apply_transform(c, xc, unit, ct, col, m))) break;
            apply_post(xc, col, m);
            for (size_t i = 0; i < m; i++) vals[map[i] * C + k] = col[i];
        }
        for (size_t b = 0; b < nb; b++) {
            if (!keep[b]) continue;
            int any = 0;
            for (uint32_t k = 0; k < C; k++)
                if (p->cols[k].tfn && !isnan(vals[b * C + k])) any = 1;
            keep[b] = (uint8_t)any;
        }
        free(col);
        free(ct);
        free(map);
        if (rc) { free(keep); goto out; }
    }
    size_t n_rows = 0;
    for (size_t b = 0; b < nb; b++) n_rows += keep[b];
    ov = malloc((n_rows ? n_rows : 1) * n_out * sizeof *ov);
    ot = malloc((n_rows ? n_rows : 1) * sizeof *ot);
    names = xalloc(c, n_out * sizeof *names);
    if (!ov || !ot || !names) { free(keep); rc = mk_x_fail(c, "out of memory"); goto out; }
    size_t r = 0;
    for (size_t b = 0; b < nb; b++) {
        if (!keep[b]) continue;
        ot[r] = times[b];
        mk_qv *row = ov + r * n_out;
        uint32_t o = 0;
        for (uint32_t k = 0; k < C; k++) {
            for (uint32_t run = 0; run < n_runs; run++) {
                double v = vals[run * nb * C + b * C + k];
                mk_qv q = {MK_QV_NULL, {0}};
                if (!isnan(v)) {
                    if (p->cols[k].is_int && v == floor(v) && fabs(v) < 9e18) { q.type = MK_QV_INT; q.u.i = (int64_t)v; }
                    else { q.type = MK_QV_FLOAT; q.u.f = v; }
                }
                row[o++] = q;
                if (run) {
                    double now = vals[b * C + k];
                    mk_qv ratio = {MK_QV_NULL, {0}};
                    if (!isnan(now) && !isnan(v) && v != 0) { ratio.type = MK_QV_FLOAT; ratio.u.f = now / v; }
                    row[o++] = ratio;
                }
            }
        }
        r++;
    }
    free(keep);
    {
        uint32_t o = 0;
        const mk_ast *d = p->sel->compare;
        for (uint32_t k = 0; k < C; k++) {
            names[o++] = p->cols[k].name;
            d = p->sel->compare;
            for (uint32_t run = 1; run < n_runs; run++, d = d->next) {
                char ds[64], buf[700];
                dur_text(c, d, ds, sizeof ds);
                snprintf(buf, sizeof buf, "%s_%s", p->cols[k].name, ds);
                names[o++] = xstrdup(c, buf);
                snprintf(buf, sizeof buf, "%s_ratio_%s", p->cols[k].name, ds);
                names[o++] = xstrdup(c, buf);
                if (!names[o - 1] || !names[o - 2]) { rc = mk_x_fail(c, "out of memory"); goto out; }
            }
        }
    }
    rc = emit_series(c, p, g, names, n_out, ot, ov, n_rows, n_emitted);
out:
    free(vals);
    free(empty);
    free(times);
    free(ov);
    free(ot);
    return rc;
}

/* ---- running a SELECT --------------------------------------------------------- */

/* Oldest sample time (ns) among the tag sets' slot fields up to hi. */
static mk_err data_min(mk_xctx *c, plan *p, int64_t *min_ns, int *has)
{
    *has = 0;
    *min_ns = INT64_MAX;
    for (size_t i = 0; i < p->n_ts; i++) {
        const tagset *t = &p->ts[i];
        if (t->qs) {
            const mk_qseries *q = t->qs;
            for (uint32_t k = 0; k < q->n_cols; k++) {
                if (strcmp(q->columns[k], "time") != 0) continue;
                for (uint64_t r = 0; r < q->n_rows; r++) {
                    int64_t tt = q->values[r * q->n_cols + k].u.i;
                    if (tt <= p->hi && tt < *min_ns) { *min_ns = tt; *has = 1; }
                }
            }
            continue;
        }
        for (uint32_t f = 0; f < p->n_fields; f++) {
            if (!t->fid[f]) continue;
            mk_diag d = {0};
            if ((p->si ? mk_sum_iter_reset(p->si, c->db, t->fid[f], INT64_MIN / 2, ms_end(p->hi), &d)
                       : mk_db_iter_summaries(c->db, t->fid[f], INT64_MIN / 2, ms_end(p->hi), &p->si, &d)) != MK_OK)
                return mk_x_fail(c, "%s", d.msg);
            mk_sum_iter *it = p->si;
            const mk_chunk_summary *s;
            int is_dec, h = 0;
            mk_err rc = mk_sum_iter_next(it, &s, &is_dec, &h, &d);
            if (!rc && h && ms_ns(s->first_ts_ms) < *min_ns) { *min_ns = ms_ns(s->first_ts_ms); *has = 1; }
            if (rc) return mk_x_fail(c, "%s", d.msg);
        }
    }
    return MK_OK;
}

static mk_err exec_select(mk_xctx *c, const mk_ast_select *sel, int64_t inh_lo, int64_t inh_hi, int has_inh)
{
    double t0 = now_ms_f();
    plan p;
    agg **runs = NULL;
    uint32_t n_runs = 1 + sel->n_compare;
    size_t n_states = 0;
    uint64_t n_emitted = 0;
    mk_err rc = plan_select(c, &p, sel, inh_lo, inh_hi, has_inh);
    if (rc || p.is_nothing) goto out;
    if (!p.is_agg && p.n_cols > 256) { rc = mk_x_fail(c, "too many columns in a raw query (at most 256)"); goto out; }
    if ((rc = resolve(c, &p))) goto out;
    if ((rc = mk_x_check_deadline(c))) goto out;
    if (p.has_iv) {
        if (!p.has_hi) { p.hi = c->now_ns; p.has_hi = 1; }
        if (!p.has_lo) {
            int has;
            int64_t mn;
            if ((rc = data_min(c, &p, &mn, &has))) goto out;
            if (!has) p.is_empty = 1;
            else p.lo = mn;
        }
    }
    if (p.lo > p.hi || !p.n_ts) p.is_empty = 1;
    if (!p.is_empty && (rc = make_buckets(c, &p, p.n_cols * (1 + 2 * sel->n_compare), 1))) goto out;
    int is_fast = p.is_agg && !p.has_fcond && !p.sub;
    for (uint32_t s = 0; s < p.n_slots; s++) is_fast &= is_decomposable(p.slots[s].fn);
    int64_t tier_step = is_fast && !p.is_empty ? tier_direct_step(c, &p, n_runs) : 0;
    /* every other path reads the starts */
    if (!p.is_empty && !tier_step && (rc = fill_bstart(c, &p))) goto out;
    c->st.plan_ms += now_ms_f() - t0;
    c->st.path = !p.is_agg ? "raw rows: decode and join fields per tag set"
               : tier_step ? "aggregate: rollup buckets folded straight into the answer columns (raw samples at partial edges)"
               : is_fast ? (c->no_summaries ? "aggregate: decode every chunk, fold into buckets (summaries disabled)"
                                            : "aggregate: chunk summaries where a chunk lies in one bucket, else decode and fold")
                         : "aggregate: decode and join fields per tag set, then reduce";
    if (c->is_explain) {
        char a[64], b[64];
        fmt_time(a, sizeof a, p.lo);
        fmt_time(b, sizeof b, p.hi);
        for (uint32_t k = 0; k < p.n_slots; k++) {
            const char *why;
            int64_t st = is_fast ? rollup_step(c, &p, p.slots[k].fn, 0, &why) : 0;
            if (!is_fast) why = "raw (the only tier that can answer: not a decomposable aggregate)";
            if (st) {
                char w[64];
                fmt_dur(w, sizeof w, st * 1000000);
                plan_line(c, "tier: rollup %s for whole %s buckets of the range, raw samples at partial edges and where the tier lags the data", w, w);
            } else {
                plan_line(c, "tier: %s", why);
            }
            break; /* the slots of one statement share interval and path */
        }
        if (!p.n_slots) plan_line(c, "tier: raw (the only tier that can answer raw rows)");
        plan_line(c, "path: %s", c->st.path);
        plan_line(c, "time range: %s .. %s (inclusive)%s", a, b, p.is_empty ? " - nothing to read" : "");
        if (p.has_iv) {
            char iv[64];
            fmt_dur(iv, sizeof iv, p.iv);
            plan_line(c, "buckets: %zu of %s%s%s", p.is_empty ? 0 : p.nb, iv, sel->tz ? " in " : "", sel->tz ? sel->tz : "");
        }
        for (uint32_t m = 0; m < p.n_meas; m++) plan_line(c, "measurement: %s", p.meas[m]);
        plan_line(c, "series matched: %" PRIu64 " in %zu tag sets, %u output groups", c->st.n_series, p.n_ts, p.n_groups);
        plan_line(c, "threads: %d over at most %d fixed parts", is_fast ? c->n_threads : 1, is_fast ? N_PARTS : 1);
    }
    if (c->is_explain && !c->is_analyze) goto out;
    double t1 = now_ms_f();
    if (p.is_empty) goto stats;
    if (!p.is_agg && !p.has_fcond && !p.sub && !sel->limit.is_set && p.n_ts > 4) {
        /* count the rows from chunk summaries first: refuse before decoding much */
        uint64_t rows = 0;
        for (size_t i = 0; i < p.n_ts && !rc; i++) {
            uint64_t most = 0;
            for (uint32_t f = 0; f < p.n_fields && !rc; f++) {
                if (!p.ts[i].fid[f]) continue;
                mk_diag d = {0};
                rc = p.si ? mk_sum_iter_reset(p.si, c->db, p.ts[i].fid[f], ms_ceil(p.lo), ms_end(p.hi), &d)
                          : mk_db_iter_summaries(c->db, p.ts[i].fid[f], ms_ceil(p.lo), ms_end(p.hi), &p.si, &d);
                uint64_t cnt = 0;
                for (;;) {
                    const mk_chunk_summary *sm;
                    int is_dec, has = 0;
                    if (rc || (rc = mk_sum_iter_next(p.si, &sm, &is_dec, &has, &d)) || !has) break;
                    cnt += sm->count;
                }
                if (rc) rc = mk_x_fail(c, "%s", d.msg);
                if (cnt > most) most = cnt;
            }
            rows += most;
        }
        if (rc) goto out;
        if (rows * (p.n_cols + 1) > c->max_points) {
            rc = mk_x_fail(c, "max-select-point limit exceeded: the answer would hold %" PRIu64 " rows x %u columns, over the cap of %" PRIu64
                           " values (raise max_points / the max-select-point setting, or narrow the time range, add LIMIT, or aggregate)",
                           rows, p.n_cols + 1, c->max_points);
            goto out;
        }
    }
    if (!p.is_agg) {
        rc = run_general(c, &p, 0, NULL, &n_emitted);
        c->st.read_ms += now_ms_f() - t1;
        if (rc) goto out;
        goto stats;
    }
    n_states = (size_t)p.n_groups * p.nb * p.n_slots;
    if (n_states > (size_t)1 << 26) {
        rc = mk_x_fail(c, "max-select-point limit exceeded: %zu aggregate states needed (raise max_points, "
                       "or use a larger GROUP BY time interval or a shorter time range)", n_states);
        goto out;
    }
    if (tier_step > 0) {
        rc = run_tier_direct(c, &p, tier_step, &n_emitted);
        if (rc) goto out;
        goto stats;
    }
    runs = calloc(n_runs, sizeof *runs);
    if (!runs) { rc = mk_x_fail(c, "out of memory"); goto out; }
    const mk_ast *cd = sel->compare;
    for (uint32_t r = 0; r < n_runs; r++) {
        int64_t shift = r ? cd->u.i64 : 0;
        if (r) cd = cd->next;
        runs[r] = calloc(n_states ? n_states : 1, sizeof(agg));
        if (!runs[r]) { rc = mk_x_fail(c, "out of memory for %zu aggregate states", n_states); goto out; }
        if (is_fast) {
            for (uint32_t s = 0; s < p.n_slots && !rc; s++) rc = run_fast(c, &p, s, shift, runs[r]);
        } else {
            rc = run_general(c, &p, shift, runs[r], NULL);
        }
        if (rc) goto out;
    }
    double t2 = now_ms_f();
    c->st.read_ms += t2 - t1;
    for (uint32_t g = 0; g < p.n_groups; g++) {
        if ((rc = emit_agg_group(c, &p, g, runs, n_runs, &n_emitted))) goto out;
        if ((g & 255) == 0 && (rc = mk_x_check_deadline(c))) goto out;
    }
    c->st.agg_ms += now_ms_f() - t2;
stats:
    if (c->is_explain) {
        for (uint32_t f = 0; f < p.n_fields; f++) {
            const fstat *fs = &p.fst[f];
            plan_line(c, "field %s: %" PRIu64 " series, chunks from summaries %" PRIu64 ", chunks decoded %" PRIu64
                      ", samples decoded %" PRIu64 ", bytes read %" PRIu64,
                      p.fields[f], fs->n_series, fs->rd.n_chunks_summary, fs->rd.n_chunks_decoded,
                      fs->rd.n_samples_decoded, fs->rd.n_bytes_read);
            c->st.rd.n_chunks_summary += fs->rd.n_chunks_summary;
            c->st.rd.n_chunks_decoded += fs->rd.n_chunks_decoded;
            c->st.rd.n_samples_decoded += fs->rd.n_samples_decoded;
            c->st.rd.n_bytes_read += fs->rd.n_bytes_read;
        }
    }
out:
    if (runs) {
        for (uint32_t r = 0; r < n_runs; r++) aggs_free(runs[r], n_states);
        free(runs);
    }
    mk_qresult_free(p.sub);
    mk_tz_free(p.tz);
    mk_iter_free(p.it);
    mk_sum_iter_free(p.si);
    return rc;
}

static mk_err run_select_into(mk_xctx *c, const mk_ast_select *sel, int64_t inh_lo, int64_t inh_hi, int has_inh,
                              mk_qresult **out)
{
    *out = NULL;
    mk_qresult *r = NULL, *saved = c->r;
    int saved_explain = c->is_explain;
    if (mk_qres_new(&r) || mk_qres_begin_stmt(r, 0)) { mk_qresult_free(r); return mk_x_fail(c, "out of memory"); }
    c->r = r;
    c->is_explain = 0;
    mk_err rc = exec_select(c, sel, inh_lo, inh_hi, has_inh);
    c->r = saved;
    c->is_explain = saved_explain;
    if (rc) { mk_qresult_free(r); return rc; }
    *out = r;
    return MK_OK;
}

/* ---- EXPLAIN -------------------------------------------------------------------- */

static mk_err exec_explain(mk_xctx *c, const mk_ast *ex)
{
    const mk_ast *stmt = ex->u.explain.stmt;
    c->is_explain = 1;
    c->is_analyze = ex->u.explain.is_analyze;
    mk_buf sb = {0};
    if (mk_ast_print(&sb, stmt) == MK_OK && mk_buf_append(&sb, "", 1) == MK_OK) plan_line(c, "statement: %s", (const char *)sb.data);
    mk_buf_free(&sb);
    mk_err rc;
    if (stmt->kind != MK_AST_SELECT) {
        plan_line(c, "plan: metadata statement, answered from the series index");
        rc = MK_OK;
    } else if (c->is_analyze) {
        mk_qresult *scratch = NULL;
        /* run for real into a scratch answer; only the plan is returned */
        mk_qresult *saved = c->r;
        if (mk_qres_new(&scratch) || mk_qres_begin_stmt(scratch, 0)) { mk_qresult_free(scratch); return mk_x_fail(c, "out of memory"); }
        c->r = scratch;
        rc = exec_select(c, &stmt->u.sel, MK_X_MIN_TIME_NS, MK_X_MAX_TIME_NS, 0);
        c->r = saved;
        if (!rc) {
            uint64_t nv = mk_qres_n_values(scratch);
            const mk_qstmt *st = mk_qresult_stmt(scratch, 0);
            plan_line(c, "answer: %u series, %" PRIu64 " values", st ? st->n_series : 0, nv);
            plan_line(c, "totals: chunks from summaries %" PRIu64 ", chunks decoded %" PRIu64 ", samples decoded %" PRIu64
                      ", bytes read %" PRIu64,
                      c->st.rd.n_chunks_summary, c->st.rd.n_chunks_decoded, c->st.rd.n_samples_decoded, c->st.rd.n_bytes_read);
            plan_line(c, "time plan: %.3f ms", c->st.plan_ms);
            plan_line(c, "time read+fold: %.3f ms (raw queries: includes building the answer)", c->st.read_ms);
            plan_line(c, "time aggregate+fill: %.3f ms (includes building the answer)", c->st.agg_ms);
            plan_line(c, "time output build: %.3f ms (answer rows written into the result, part of the stage above)", c->st.out_ms);
        }
        mk_qresult_free(scratch);
    } else {
        rc = exec_select(c, &stmt->u.sel, MK_X_MIN_TIME_NS, MK_X_MAX_TIME_NS, 0);
        if (!rc) plan_line(c, "time plan: %.3f ms", c->st.plan_ms);
    }
    if (rc) return rc;
    static const char *const col[] = {"QUERY PLAN"};
    uint32_t idx;
    if (mk_qres_add_series(c->r, NULL, 0, NULL, NULL, 1, col, &idx)) return mk_x_fail(c, "out of memory");
    const char *s = (const char *)c->plan.data;
    size_t n = c->plan.len;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '\n') j++;
        char *line = mk_arena_strndup(c->a, s + i, j - i);
        if (!line) return mk_x_fail(c, "out of memory");
        mk_qv v = {MK_QV_STRING, {.s = line}};
        if (mk_qres_add_row(c->r, idx, &v)) return mk_x_fail(c, "out of memory");
        i = j + 1;
    }
    return MK_OK;
}

/* ---- the entry point ------------------------------------------------------------ */

/* The database a statement names: ON db, a "db".. prefix of its first
 * source, else the request's. */
static mk_err check_db(mk_xctx *c, const mk_ast *st)
{
    if (st->kind == MK_AST_EXPLAIN) st = st->u.explain.stmt;
    const char *db = c->o->db;
    const mk_ast *src = NULL;
    if (st->kind == MK_AST_SHOW) {
        if (st->u.show.what == MK_AST_SHOW_DATABASES) return MK_OK;
        if (st->u.show.on_db) db = st->u.show.on_db;
        src = st->u.show.sources;
    } else if (st->kind == MK_AST_SELECT) {
        src = st->u.sel.sources;
    }
    if (src && src->kind == MK_AST_MEASUREMENT && src->u.meas.db && *src->u.meas.db) db = src->u.meas.db;
    if (src && src->kind == MK_AST_SUBQUERY) return check_db(c, src->u.sub.select);
    if (!db || !*db) return mk_x_fail(c, "database name required");
    for (size_t i = 0; i < c->o->n_databases; i++)
        if (strcmp(c->o->databases[i], db) == 0) return MK_OK;
    return mk_x_fail(c, "database not found: %s", db);
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n > 8 ? 8 : (int)n;
}

mk_err mk_query_exec(mk_db *db, const char *text, size_t len, const mk_query_opts *opts, mk_qresult **out,
                     mk_diag *diag)
{
    static const mk_query_opts k_default = {0};
    if (!out) return mk_diag_set(diag, MK_EINVAL, "mk_query_exec: NULL out");
    *out = NULL;
    if (!db || (!text && len)) return mk_diag_set(diag, MK_EINVAL, "mk_query_exec: NULL argument");
    const mk_query_opts *o = opts ? opts : &k_default;
    mk_ast_query *q = NULL;
    mk_err e = mk_qparse(text ? text : "", len, &q, diag);
    if (e != MK_OK) return e;
    mk_qresult *r = NULL;
    if ((e = mk_qres_new(&r)) != MK_OK) { mk_diag_set(diag, e, "no memory for the answer"); goto done; }
    mk_xctx c;
    memset(&c, 0, sizeof c);
    c.db = db;
    c.o = o;
    c.src = text;
    c.src_len = len;
    c.r = r;
    if (o->now_ns) c.now_ns = o->now_ns;
    else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        c.now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    c.timeout_ms = o->timeout_ms ? o->timeout_ms : MK_QUERY_DEFAULT_TIMEOUT_MS;
    c.deadline_ms = c.timeout_ms < 0 ? INT64_MAX : mk_x_mono_ms() + c.timeout_ms;
    c.max_points = o->max_points ? o->max_points : MK_QUERY_DEFAULT_MAX_POINTS;
    c.max_series = o->max_series ? o->max_series : MK_QUERY_DEFAULT_MAX_SERIES;
    c.n_threads = o->n_threads > 0 ? (o->n_threads > 8 ? 8 : o->n_threads) : default_threads();
    c.no_summaries = o->no_summaries;
    c.tier_mode = o->tier_mode;
    uint32_t i = 0;
    const mk_ast *st = q->stmts;
    for (; st && i < q->n_stmts; st = st->next, i++) {
        if ((e = mk_qres_begin_stmt(r, i)) != MK_OK) break;
        if ((e = mk_arena_new(&c.a)) != MK_OK) break;
        memset(&c.st, 0, sizeof c.st);
        c.err[0] = 0;
        c.plan.len = 0;
        c.is_explain = c.is_analyze = 0;
        mk_err rc = o->is_db_checked ? check_db(&c, st) : MK_OK;
        if (rc == MK_OK) switch (st->kind) {
        case MK_AST_SELECT: rc = exec_select(&c, &st->u.sel, MK_X_MIN_TIME_NS, MK_X_MAX_TIME_NS, 0); break;
        case MK_AST_SHOW: rc = mk_x_show(&c, &st->u.show); break;
        case MK_AST_EXPLAIN: rc = exec_explain(&c, st); break;
        default: rc = mk_x_fail(&c, "unsupported statement"); break;
        }
        if (rc == MK_OK && c.deadline_ms != INT64_MAX && mk_x_mono_ms() > c.deadline_ms)
            rc = mk_x_fail(&c, "query timeout after %lld ms", (long long)c.timeout_ms);
        mk_x_rx_free(c.rx);
        c.rx = NULL;
        if (rc != MK_OK) {
            e = mk_qres_stmt_error(r, "%s", c.err[0] ? c.err : mk_strerror(rc));
            mk_arena_free(c.a);
            c.a = NULL;
            break; /* as InfluxDB: later statements are not run */
        }
        mk_arena_free(c.a);
        c.a = NULL;
    }
    mk_buf_free(&c.plan);
    if (e != MK_OK) {
        mk_diag_set(diag, e, "no memory for the answer");
        goto done;
    }
    *out = r;
    r = NULL;
done:
    mk_qresult_free(r);
    mk_ast_query_free(q);
    return e;
}

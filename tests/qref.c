/*
 * tests/qref.c — brute-force InfluxQL reference for test_query_diff (see
 * qref.h). Deliberately naive: every query rescans every row of every
 * tagset of the measurement, sorts whole buckets, and follows InfluxDB 1.x
 * reducer code paths literally (tie rules, the median and percentile
 * formulas, fill iterator order), so a difference from the executor points
 * at the executor or at a documented CHOICE below, never at an
 * optimisation shared by both.
 *
 * Semantics implemented (InfluxDB 1.x unless marked CHOICE):
 * - WHERE time bounds are inclusive ns bounds (time > x is x + 1 ns).
 * - Tags absent from a series read as "" (=, !=, =~, !~ and GROUP BY).
 * - A field comparison on a row where the field is absent is false.
 * - Raw SELECT: one row per (series, timestamp) where the condition holds
 *   and at least one selected value is non-null; series of a group merged
 *   by time. CHOICE: rows of different series with the same time are
 *   unordered (the test compares them as a set).
 * - Aggregates without GROUP BY time: one row; its time is the point's time
 *   when the query has exactly one call and it is a selector (first, last,
 *   min, max, percentile), else the lower time bound, or 0 when there is
 *   none. distinct() gives one row per distinct value, all at that time.
 * - GROUP BY time(I, O): bucket of t starts at t - ((t - O) mod I); buckets
 *   run from the bucket of the lower bound up to the last one starting at or
 *   before the upper bound; each row's time is its bucket start, selectors
 *   included.
 * - fill: null (default) gives null for an empty bucket except count, which
 *   gives 0 (InfluxDB's NewFillIterator turns fill(null) into fill(0) for
 *   count); none drops rows whose every column is empty; a number fills it;
 *   previous takes the value of the previous row *in output order* (so under
 *   ORDER BY time DESC the later bucket, as InfluxDB's fill iterator does);
 *   linear interpolates between the neighbouring non-empty rows with
 *   InfluxDB's linearFloat (slope * (t - t_prev) / I + v_prev), null at the
 *   ends. Each column is filled on its own.
 * - A series (group) appears only if it has at least one point in the time
 *   range after the WHERE clause: fill never invents a whole series.
 * - count: integer. sum/mean: sum in time order / count. median: middle of
 *   the sorted values, even count lo + (hi - lo) / 2 (InfluxDB's
 *   FloatMedianReduceSlice). mode: most frequent value; CHOICE (per the
 *   brief): ties go to the smallest value — InfluxDB's docs say "earliest
 *   timestamp" but its FloatModeReduceSlice depends on an unstable sort.
 *   spread: max - min. stddev: sample (n - 1), two-pass as InfluxDB; one
 *   point gives a null that is a value (fill does not replace it).
 *   min/max: ties go to the earliest time; first/last: ties in time go to
 *   the larger value (InfluxDB's Float{Min,Max,First,Last}Reduce).
 *   percentile(f, p): i = floor(n * p / 100 + 0.5) - 1 over the values
 *   sorted ascending (nearest rank, InfluxDB's
 *   NewFloatPercentileReduceSliceFunc); i < 0 gives an empty bucket; CHOICE:
 *   equal values are ordered by time for the selected point's time.
 * - COMPARE d (Meerkat's extension, per the brief): beside the column X of
 *   the single aggregate come X_<d> = the same aggregate over the bucket
 *   shifted back by d and X_ratio_<d> = X / X_<d>, null when either is null
 *   or X_<d> is 0. CHOICE: an empty shifted bucket reads as an empty bucket
 *   of the query itself: 0 for count under fill(null), else null (COMPARE is
 *   generated with fill(null) or fill(none) only); X_<d> is named after the
 *   duration as written (1w stays "1w"), as the parser prints it.
 * - Column names: the alias, else the function name (count(distinct()) is
 *   "count"), else the field name; a repeated name gets _1, _2, ...
 * - Series ordered by their GROUP BY tag values (keys sorted, bytewise);
 *   GROUP BY * means every tag key of the measurement. LIMIT/OFFSET apply to
 *   the rows of each series after ordering and fill; SLIMIT/SOFFSET to the
 *   list of non-empty series (CHOICE: InfluxDB may count series that have
 *   no data in the range).
 */
#include "qref.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "qref: out of memory\n");
        abort();
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xrealloc(NULL, n);
    memcpy(p, s, n);
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- the data -------------------------------------------------------- */

int qref_db_add_meas(qref_db *db, const char *name, const char *const *fields, size_t n_fields,
                     const char *const *keys, size_t n_keys)
{
    qref_meas *m = &db->meas[db->n_meas];
    m->name = xstrdup(name);
    m->n_fields = n_fields;
    for (size_t i = 0; i < n_fields; i++) m->fields[i] = xstrdup(fields[i]);
    m->n_keys = n_keys;
    for (size_t i = 0; i < n_keys; i++) m->keys[i] = xstrdup(keys[i]);
    qsort(m->keys, n_keys, sizeof m->keys[0], cmp_str);
    return (int)db->n_meas++;
}

int qref_db_add_tagset(qref_db *db, int meas, const char *const *keys, const char *const *vals,
                       size_t n)
{
    if (db->n_tagsets == db->cap_tagsets) {
        db->cap_tagsets = db->cap_tagsets ? 2 * db->cap_tagsets : 16;
        db->tagsets = xrealloc(db->tagsets, db->cap_tagsets * sizeof *db->tagsets);
    }
    qref_tagset *t = &db->tagsets[db->n_tagsets];
    memset(t, 0, sizeof *t);
    t->meas = meas;
    t->n_tags = n;
    for (size_t i = 0; i < n; i++) {
        t->keys[i] = xstrdup(keys[i]);
        t->vals[i] = xstrdup(vals[i]);
    }
    /* insertion sort by key, values alongside */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(t->keys[j - 1], t->keys[j]) > 0; j--) {
            char *k = t->keys[j], *v = t->vals[j];
            t->keys[j] = t->keys[j - 1];
            t->vals[j] = t->vals[j - 1];
            t->keys[j - 1] = k;
            t->vals[j - 1] = v;
        }
    return (int)db->n_tagsets++;
}

void qref_db_add(qref_db *db, int tagset, int field, int64_t ts_ms, double v)
{
    if (db->n_writes == db->cap_writes) {
        db->cap_writes = db->cap_writes ? 2 * db->cap_writes : 4096;
        db->writes = xrealloc(db->writes, db->cap_writes * sizeof *db->writes);
    }
    db->writes[db->n_writes] =
        (qref_write){(uint32_t)tagset, (uint32_t)field, ts_ms, v, (uint64_t)db->n_writes};
    db->n_writes++;
}

static int cmp_write(const void *a, const void *b)
{
    const qref_write *x = a, *y = b;
    if (x->tagset != y->tagset) return x->tagset < y->tagset ? -1 : 1;
    if (x->ts_ms != y->ts_ms) return x->ts_ms < y->ts_ms ? -1 : 1;
    if (x->field != y->field) return x->field < y->field ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void qref_db_finish(qref_db *db)
{
    qsort(db->writes, db->n_writes, sizeof *db->writes, cmp_write);
    size_t i = 0;
    while (i < db->n_writes) {
        uint32_t ts_i = db->writes[i].tagset;
        size_t j = i;
        while (j < db->n_writes && db->writes[j].tagset == ts_i) j++;
        qref_tagset *t = &db->tagsets[ts_i];
        size_t cap = j - i;
        t->ts_ms = xrealloc(NULL, cap * sizeof *t->ts_ms);
        for (int f = 0; f < QREF_MAX_FIELDS; f++) {
            t->val[f] = xrealloc(NULL, cap * sizeof(double));
            t->has[f] = xrealloc(NULL, cap);
            memset(t->has[f], 0, cap);
        }
        size_t n = 0;
        for (size_t k = i; k < j; k++) {
            const qref_write *w = &db->writes[k];
            if (!n || t->ts_ms[n - 1] != w->ts_ms) {
                t->ts_ms[n] = w->ts_ms;
                n++;
            }
            /* sorted by seq within (ts, field): the last assignment wins */
            t->val[w->field][n - 1] = w->v;
            t->has[w->field][n - 1] = 1;
        }
        t->n_rows = n;
        i = j;
    }
}

void qref_db_free(qref_db *db)
{
    for (size_t i = 0; i < db->n_meas; i++) {
        free(db->meas[i].name);
        for (size_t f = 0; f < db->meas[i].n_fields; f++) free(db->meas[i].fields[f]);
        for (size_t k = 0; k < db->meas[i].n_keys; k++) free(db->meas[i].keys[k]);
    }
    for (size_t i = 0; i < db->n_tagsets; i++) {
        qref_tagset *t = &db->tagsets[i];
        for (size_t k = 0; k < t->n_tags; k++) {
            free(t->keys[k]);
            free(t->vals[k]);
        }
        free(t->ts_ms);
        for (int f = 0; f < QREF_MAX_FIELDS; f++) {
            free(t->val[f]);
            free(t->has[f]);
        }
    }
    free(db->tagsets);
    free(db->writes);
    memset(db, 0, sizeof *db);
}

/* ---- conditions ------------------------------------------------------ */

static const char *tag_of(const qref_tagset *t, const char *key)
{
    for (size_t i = 0; i < t->n_tags; i++)
        if (!strcmp(t->keys[i], key)) return t->vals[i];
    return "";
}

static int eval_tag_cond(qref_cond *c, const qref_tagset *t)
{
    switch (c->kind) {
    case QC_AND: return eval_tag_cond(c->l, t) && eval_tag_cond(c->r, t);
    case QC_OR: return eval_tag_cond(c->l, t) || eval_tag_cond(c->r, t);
    case QC_TAG_EQ: return !strcmp(tag_of(t, c->key), c->val);
    case QC_TAG_NE: return strcmp(tag_of(t, c->key), c->val) != 0;
    case QC_TAG_RE:
    case QC_TAG_NRE: {
        if (!c->is_re_ready) {
            if (regcomp(&c->re, c->val, REG_EXTENDED | REG_NOSUB)) {
                fprintf(stderr, "qref: bad regex /%s/\n", c->val);
                abort();
            }
            c->is_re_ready = 1;
        }
        int m = regexec(&c->re, tag_of(t, c->key), 0, NULL, 0) == 0;
        return c->kind == QC_TAG_RE ? m : !m;
    }
    default: abort();
    }
}

static int eval_field_cond(const qref_cond *c, const qref_tagset *t, size_t row)
{
    switch (c->kind) {
    case QC_AND: return eval_field_cond(c->l, t, row) && eval_field_cond(c->r, t, row);
    case QC_OR: return eval_field_cond(c->l, t, row) || eval_field_cond(c->r, t, row);
    case QC_FIELD: {
        if (!t->has[c->field][row]) return 0;
        double v = t->val[c->field][row];
        switch (c->cmp) {
        case QCMP_EQ: return v == c->k;
        case QCMP_NE: return v != c->k;
        case QCMP_LT: return v < c->k;
        case QCMP_LE: return v <= c->k;
        case QCMP_GT: return v > c->k;
        case QCMP_GE: return v >= c->k;
        }
        return 0;
    }
    default: abort();
    }
}

/* ---- reducers -------------------------------------------------------- */

typedef struct pt {
    int64_t ts_ms;
    double v;
    int64_t bucket; /* bucket index, or -1 */
} pt;

typedef struct ptvec {
    pt *p;
    size_t n, cap;
} ptvec;

static void pv_push(ptvec *v, int64_t ts_ms, double x, int64_t bucket)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->p = xrealloc(v->p, v->cap * sizeof *v->p);
    }
    v->p[v->n++] = (pt){ts_ms, x, bucket};
}

static int cmp_pt_time(const void *a, const void *b)
{
    const pt *x = a, *y = b;
    if (x->bucket != y->bucket) return x->bucket < y->bucket ? -1 : 1;
    if (x->ts_ms != y->ts_ms) return x->ts_ms < y->ts_ms ? -1 : 1;
    return x->v < y->v ? -1 : x->v > y->v;
}

static int cmp_pt_value(const void *a, const void *b)
{
    const pt *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->ts_ms < y->ts_ms ? -1 : x->ts_ms > y->ts_ms;
}

/* qsort that accepts an empty (maybe NULL) array. */
static void sort_n(void *p, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1) qsort(p, n, size, cmp);
}

enum { ST_EMPTY = 0, ST_VALUE = 1, ST_NULLV = 2 }; /* ST_NULLV: a null that is a value */

typedef struct aggval {
    int status;
    double v;
    double scale;
    int is_exact;
    int64_t sel_ts_ms; /* selectors: the chosen point's time */
} aggval;

static int is_selector(qref_func f)
{
    return f == QF_MIN || f == QF_MAX || f == QF_FIRST || f == QF_LAST || f == QF_PERCENTILE;
}

static int func_is_exact(qref_func f)
{
    return !(f == QF_SUM || f == QF_MEAN || f == QF_STDDEV || f == QF_SPREAD);
}

/* Reduces p[0..n) (time-sorted, may be reordered) with func. */
static aggval reduce(qref_func func, double pct, pt *p, size_t n)
{
    aggval a = {ST_EMPTY, 0, 0, func_is_exact(func), 0};
    if (func == QF_COUNT || (func == QF_COUNT_DISTINCT && n == 0)) {
        a.status = ST_VALUE;
        a.v = (double)n;
        return a;
    }
    if (n == 0) return a;
    double maxabs = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(p[i].v) > maxabs) maxabs = fabs(p[i].v);
    a.status = ST_VALUE;
    a.scale = maxabs;
    switch (func) {
    case QF_SUM:
    case QF_MEAN: {
        double s = 0, sa = 0;
        for (size_t i = 0; i < n; i++) {
            s += p[i].v;
            sa += fabs(p[i].v);
        }
        a.v = func == QF_SUM ? s : s / (double)n;
        a.scale = func == QF_SUM ? sa : maxabs;
        break;
    }
    case QF_STDDEV: {
        if (n < 2) {
            a.status = ST_NULLV;
            break;
        }
        double mean = 0;
        for (size_t i = 0; i < n; i++) mean += (p[i].v - mean) / (double)(i + 1);
        double var = 0;
        for (size_t i = 0; i < n; i++) var += (p[i].v - mean) * (p[i].v - mean);
        a.v = sqrt(var / (double)(n - 1));
        break;
    }
    case QF_SPREAD: {
        double mn = p[0].v, mx = p[0].v;
        for (size_t i = 1; i < n; i++) {
            if (p[i].v < mn) mn = p[i].v;
            if (p[i].v > mx) mx = p[i].v;
        }
        a.v = mx - mn;
        break;
    }
    case QF_MIN:
    case QF_MAX: {
        size_t b = 0;
        for (size_t i = 1; i < n; i++) {
            int better = func == QF_MIN ? p[i].v < p[b].v : p[i].v > p[b].v;
            if (better || (p[i].v == p[b].v && p[i].ts_ms < p[b].ts_ms)) b = i;
        }
        a.v = p[b].v;
        a.sel_ts_ms = p[b].ts_ms;
        break;
    }
    case QF_FIRST:
    case QF_LAST: {
        size_t b = 0;
        for (size_t i = 1; i < n; i++) {
            int better = func == QF_FIRST ? p[i].ts_ms < p[b].ts_ms : p[i].ts_ms > p[b].ts_ms;
            if (better || (p[i].ts_ms == p[b].ts_ms && p[i].v > p[b].v)) b = i;
        }
        a.v = p[b].v;
        a.sel_ts_ms = p[b].ts_ms;
        break;
    }
    case QF_MEDIAN: {
        qsort(p, n, sizeof *p, cmp_pt_value);
        if (n % 2 == 0) {
            double lo = p[n / 2 - 1].v, hi = p[n / 2].v;
            a.v = lo + (hi - lo) / 2;
        } else {
            a.v = p[n / 2].v;
        }
        break;
    }
    case QF_MODE: {
        qsort(p, n, sizeof *p, cmp_pt_value);
        size_t best = 0, best_n = 0;
        for (size_t i = 0; i < n;) {
            size_t j = i;
            while (j < n && p[j].v == p[i].v) j++;
            if (j - i > best_n) { /* strictly more: ties keep the smaller value */
                best_n = j - i;
                best = i;
            }
            i = j;
        }
        a.v = p[best].v;
        break;
    }
    case QF_PERCENTILE: {
        qsort(p, n, sizeof *p, cmp_pt_value);
        long i = (long)floor((double)n * pct / 100.0 + 0.5) - 1;
        if (i < 0 || (size_t)i >= n) {
            a.status = ST_EMPTY;
            break;
        }
        a.v = p[i].v;
        a.sel_ts_ms = p[i].ts_ms;
        break;
    }
    case QF_COUNT_DISTINCT: {
        qsort(p, n, sizeof *p, cmp_pt_value);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (i == 0 || p[i].v != p[i - 1].v) k++;
        a.v = (double)k;
        break;
    }
    default: abort();
    }
    return a;
}

/* ---- building the answer -------------------------------------------- */

static qref_cell *add_row(qref_series *s)
{
    if (s->n_rows == s->cap_rows) {
        s->cap_rows = s->cap_rows ? 2 * s->cap_rows : 64;
        s->cells = xrealloc(s->cells, s->cap_rows * s->n_cols * sizeof *s->cells);
    }
    qref_cell *r = &s->cells[s->n_rows * s->n_cols];
    memset(r, 0, s->n_cols * sizeof *r);
    s->n_rows++;
    return r;
}

static qref_cell time_cell(int64_t ns) { return (qref_cell){0, 1, 1, ns, 0, 0}; }
static qref_cell null_cell(void) { return (qref_cell){1, 0, 1, 0, 0, 0}; }
static qref_cell val_cell(double v, int is_exact, double scale)
{
    return (qref_cell){0, 0, (uint8_t)is_exact, 0, v, scale};
}
static qref_cell agg_cell(const aggval *a)
{
    return a->status == ST_VALUE ? val_cell(a->v, a->is_exact, a->scale) : null_cell();
}

static const char *func_name(qref_func f)
{
    switch (f) {
    case QF_COUNT: case QF_COUNT_DISTINCT: return "count";
    case QF_SUM: return "sum";
    case QF_MEAN: return "mean";
    case QF_MEDIAN: return "median";
    case QF_MODE: return "mode";
    case QF_SPREAD: return "spread";
    case QF_STDDEV: return "stddev";
    case QF_MIN: return "min";
    case QF_MAX: return "max";
    case QF_FIRST: return "first";
    case QF_LAST: return "last";
    case QF_PERCENTILE: return "percentile";
    case QF_DISTINCT: return "distinct";
    default: return "?";
    }
}

static void set_columns(const qref_db *db, const qref_query *q, qref_series *s)
{
    size_t n = 1 + q->n_items + 2 * q->n_compare;
    s->n_cols = n;
    s->cols = xrealloc(NULL, n * sizeof *s->cols);
    s->cols[0] = xstrdup("time");
    char buf[256];
    for (size_t i = 0; i < q->n_items; i++) {
        const qref_item *it = &q->items[i];
        const char *base = it->alias ? it->alias
                           : it->func == QF_NONE ? db->meas[q->meas].fields[it->field]
                                                 : func_name(it->func);
        snprintf(buf, sizeof buf, "%s", base);
        for (int k = 1;; k++) {
            int used = 0;
            for (size_t j = 0; j < 1 + i; j++)
                if (!strcmp(s->cols[j], buf)) used = 1;
            if (!used) break;
            snprintf(buf, sizeof buf, "%s_%d", base, k);
        }
        s->cols[1 + i] = xstrdup(buf);
    }
    for (size_t d = 0; d < q->n_compare; d++) {
        snprintf(buf, sizeof buf, "%s_%s", s->cols[1], q->compare_lbl[d]);
        s->cols[1 + q->n_items + 2 * d] = xstrdup(buf);
        snprintf(buf, sizeof buf, "%s_ratio_%s", s->cols[1], q->compare_lbl[d]);
        s->cols[1 + q->n_items + 2 * d + 1] = xstrdup(buf);
    }
}

static void series_free(qref_series *s)
{
    for (size_t i = 0; i < s->n_cols; i++) free(s->cols[i]);
    free(s->cols);
    free(s->cells);
    memset(s, 0, sizeof *s);
}

void qref_result_free(qref_result *r)
{
    for (size_t i = 0; i < r->n_series; i++) series_free(&r->series[i]);
    free(r->series);
    memset(r, 0, sizeof *r);
}

/* ---- groups ---------------------------------------------------------- */

typedef struct group {
    const char *vals[QREF_MAX_TAGS];
    size_t n_members;
    int members[64];
} group;

static size_t g_nkeys; /* for cmp_group only (qsort has no context) */
static int cmp_group(const void *a, const void *b)
{
    const group *x = a, *y = b;
    for (size_t i = 0; i < g_nkeys; i++) {
        int c = strcmp(x->vals[i], y->vals[i]);
        if (c) return c;
    }
    return 0;
}

static int64_t floor_mod(int64_t a, int64_t m)
{
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

static int in_range(const qref_query *q, int64_t ns)
{
    return (!q->has_lo || ns >= q->lo_ns) && (!q->has_hi || ns <= q->hi_ns);
}

/* First row of t with ts_ms * 1e6 >= ns (binary search; rows are sorted). */
static size_t first_row_at(const qref_tagset *t, int64_t ns)
{
    size_t lo = 0, hi = t->n_rows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->ts_ms[mid] * 1000000 < ns) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Raw value of item it at row of t; returns 0 when null. */
static int raw_value(const qref_item *it, const qref_tagset *t, size_t row, double *out,
                     int *is_exact)
{
    if (!t->has[it->field][row]) return 0;
    double a = t->val[it->field][row], b;
    *is_exact = 1;
    if (it->op == QA_NONE) {
        *out = a;
        return 1;
    }
    if (it->field2 >= 0) {
        if (!t->has[it->field2][row]) return 0;
        b = t->val[it->field2][row];
    } else {
        b = it->konst;
    }
    *out = it->op == QA_ADD ? a + b : it->op == QA_SUB ? a - b : a * b;
    *is_exact = 0;
    return 1;
}

typedef struct rawrow {
    int64_t ts_ms;
    size_t cell0; /* index into a cell pool */
} rawrow;

static int cmp_rawrow(const void *a, const void *b)
{
    const rawrow *x = a, *y = b;
    if (x->ts_ms != y->ts_ms) return x->ts_ms < y->ts_ms ? -1 : 1;
    return x->cell0 < y->cell0 ? -1 : x->cell0 > y->cell0;
}

/* Applies ORDER/LIMIT/OFFSET already done; decides whether s is kept. */
static void limit_rows(const qref_query *q, qref_series *s)
{
    size_t off = (size_t)q->offset;
    if (off > s->n_rows) off = s->n_rows;
    size_t n = s->n_rows - off;
    if (q->limit && (size_t)q->limit < n) n = (size_t)q->limit;
    if (off) memmove(s->cells, s->cells + off * s->n_cols, n * s->n_cols * sizeof *s->cells);
    s->n_rows = n;
}

static void eval_raw(const qref_db *db, const qref_query *q, const group *g, qref_series *s)
{
    size_t ni = q->n_items;
    rawrow *rows = NULL;
    qref_cell *pool = NULL;
    size_t n_rows = 0, cap = 0;
    for (size_t m = 0; m < g->n_members; m++) {
        const qref_tagset *t = &db->tagsets[g->members[m]];
        for (size_t r = q->has_lo ? first_row_at(t, q->lo_ns) : 0; r < t->n_rows; r++) {
            int64_t ns = t->ts_ms[r] * 1000000;
            if (q->has_hi && ns > q->hi_ns) break;
            if (!in_range(q, ns)) continue;
            if (q->field_where && !eval_field_cond(q->field_where, t, r)) continue;
            qref_cell cells[QREF_MAX_ITEMS];
            int any = 0;
            for (size_t i = 0; i < ni; i++) {
                double v;
                int ex;
                if (raw_value(&q->items[i], t, r, &v, &ex)) {
                    cells[i] = val_cell(v, ex, fabs(v));
                    any = 1;
                } else {
                    cells[i] = null_cell();
                }
            }
            if (!any) continue;
            if (n_rows == cap) {
                cap = cap ? 2 * cap : 256;
                rows = xrealloc(rows, cap * sizeof *rows);
                pool = xrealloc(pool, cap * ni * sizeof *pool);
            }
            rows[n_rows] = (rawrow){t->ts_ms[r], n_rows * ni};
            memcpy(&pool[n_rows * ni], cells, ni * sizeof *cells);
            n_rows++;
        }
    }
    sort_n(rows, n_rows, sizeof *rows, cmp_rawrow);
    for (size_t k = 0; k < n_rows; k++) {
        const rawrow *rr = &rows[q->is_desc ? n_rows - 1 - k : k];
        qref_cell *c = add_row(s);
        c[0] = time_cell(rr->ts_ms * 1000000);
        memcpy(&c[1], &pool[rr->cell0], ni * sizeof *c);
    }
    free(rows);
    free(pool);
    limit_rows(q, s);
}

/* Points of item it over group g, with time in [from_ns, to_ns] and the
 * WHERE clause; bucket index set when I > 0 (relative to start_ns). */
static void collect(const qref_db *db, const qref_query *q, const group *g, int field,
                    int64_t shift_ns, int64_t start_ns, int64_t n_buckets, ptvec *out)
{
    for (size_t m = 0; m < g->n_members; m++) {
        const qref_tagset *t = &db->tagsets[g->members[m]];
        /* start at the first row that can count (an optimisation only: the
         * checks below decide) */
        int64_t from_ns = q->interval_ns ? start_ns - shift_ns : q->has_lo ? q->lo_ns : INT64_MIN;
        for (size_t r = from_ns == INT64_MIN ? 0 : first_row_at(t, from_ns); r < t->n_rows; r++) {
            if (!t->has[field][r]) continue;
            int64_t ns = t->ts_ms[r] * 1000000 + shift_ns;
            if (q->interval_ns && ns >= start_ns + n_buckets * q->interval_ns) break;
            int64_t b = -1;
            if (q->interval_ns) {
                if (ns < start_ns) continue;
                b = (ns - start_ns) / q->interval_ns;
                if (b >= n_buckets) continue;
                if (!shift_ns && !in_range(q, ns)) continue;
            } else if (!in_range(q, ns)) {
                continue;
            }
            if (q->field_where && !eval_field_cond(q->field_where, t, r)) continue;
            pv_push(out, t->ts_ms[r], t->val[field][r], b);
        }
    }
    sort_n(out->p, out->n, sizeof *out->p, cmp_pt_time);
}

static void eval_agg_all(const qref_db *db, const qref_query *q, const group *g, qref_series *s)
{
    aggval av[QREF_MAX_ITEMS];
    int any = 0;
    int64_t t_ns = q->has_lo ? q->lo_ns : 0;
    if (q->n_items == 1 && q->items[0].func == QF_DISTINCT) {
        ptvec v = {0};
        collect(db, q, g, q->items[0].field, 0, 0, 0, &v);
        sort_n(v.p, v.n, sizeof *v.p, cmp_pt_value);
        for (size_t i = 0; i < v.n; i++) {
            if (i && v.p[i].v == v.p[i - 1].v) continue;
            qref_cell *c = add_row(s);
            c[0] = time_cell(t_ns);
            c[1] = val_cell(v.p[i].v, 1, 0);
        }
        free(v.p);
        return;
    }
    for (size_t i = 0; i < q->n_items; i++) {
        ptvec v = {0};
        collect(db, q, g, q->items[i].field, 0, 0, 0, &v);
        if (v.n) any = 1;
        av[i] = reduce(q->items[i].func, q->items[i].pct, v.p, v.n);
        free(v.p);
    }
    if (!any) return;
    if (q->n_items == 1 && is_selector(q->items[0].func) && av[0].status == ST_VALUE)
        t_ns = av[0].sel_ts_ms * 1000000;
    qref_cell *c = add_row(s);
    c[0] = time_cell(t_ns);
    for (size_t i = 0; i < q->n_items; i++) c[1 + i] = agg_cell(&av[i]);
}

/* Fills column values col[0..n) (bucket order) in output order. */
static void fill_column(const qref_query *q, aggval *col, int64_t n, int64_t start_ns)
{
    int64_t I = q->interval_ns;
    for (int64_t k = 0; k < n; k++) {
        int64_t b = q->is_desc ? n - 1 - k : k;
        if (col[b].status != ST_EMPTY) continue;
        switch (q->fill) {
        case QFILL_NULL:
        case QFILL_NONE: break;
        case QFILL_NUMBER:
            col[b] = (aggval){ST_VALUE, q->fill_v, 0, 1, 0};
            col[b].status = 3; /* filled: counts as a value, not as a real point */
            break;
        case QFILL_PREVIOUS: {
            /* the previous row in output order that was not filled */
            for (int64_t j = k - 1; j >= 0; j--) {
                int64_t pb = q->is_desc ? n - 1 - j : j;
                if (col[pb].status == ST_VALUE || col[pb].status == ST_NULLV) {
                    if (col[pb].status == ST_VALUE) {
                        col[b] = col[pb];
                        col[b].status = 4; /* filled from previous */
                    } else {
                        col[b].status = 5; /* explicit null */
                    }
                    break;
                }
            }
            break;
        }
        case QFILL_LINEAR: {
            int64_t pj = -1, nj = -1;
            for (int64_t j = k - 1; j >= 0; j--) {
                int64_t pb = q->is_desc ? n - 1 - j : j;
                if (col[pb].status == ST_VALUE || col[pb].status == ST_NULLV) {
                    pj = j;
                    break;
                }
            }
            for (int64_t j = k + 1; j < n; j++) {
                int64_t nb = q->is_desc ? n - 1 - j : j;
                if (col[nb].status == ST_VALUE || col[nb].status == ST_NULLV) {
                    nj = j;
                    break;
                }
            }
            if (pj < 0 || nj < 0) break;
            int64_t pb = q->is_desc ? n - 1 - pj : pj, nb = q->is_desc ? n - 1 - nj : nj;
            if (col[pb].status != ST_VALUE) {
                col[b].status = 5;
                break;
            }
            int64_t wt = (start_ns + b * I) / I, pt_ = (start_ns + pb * I) / I,
                    nt = (start_ns + nb * I) / I;
            double pv = col[pb].v, nv = col[nb].status == ST_VALUE ? col[nb].v : 0;
            double m = (nv - pv) / (double)(nt - pt_);
            double x = (double)(wt - pt_);
            double sc = fmax(fmax(fabs(pv), fabs(nv)), fmax(col[pb].scale, col[nb].scale));
            col[b] = (aggval){6, m * x + pv, sc, 0, 0};
            break;
        }
        }
    }
    /* The fill-made statuses (3..6) were kept distinct above so that
     * previous/linear looked only at real rows; InfluxDB's fill iterator
     * does the same (prev is the last point read from its input). */
    for (int64_t b = 0; b < n; b++) {
        if (col[b].status == 3 || col[b].status == 4 || col[b].status == 6) col[b].status = ST_VALUE;
        else if (col[b].status == 5) col[b].status = ST_NULLV;
    }
}

static void eval_agg_time(const qref_db *db, const qref_query *q, const group *g, qref_series *s)
{
    int64_t I = q->interval_ns;
    int64_t start = q->lo_ns - floor_mod(q->lo_ns - q->offset_ns, I);
    int64_t n = (q->hi_ns - start) / I + 1;
    size_t ni = q->n_items;
    aggval *cols[QREF_MAX_ITEMS];
    aggval *cmp_cols[2] = {NULL, NULL};
    int any = 0;

    if (ni == 1 && q->items[0].func == QF_DISTINCT) {
        /* Only generated with fill(none): one row per distinct value of each bucket. */
        ptvec v = {0};
        collect(db, q, g, q->items[0].field, 0, start, n, &v);
        for (int64_t k = 0; k < n; k++) {
            int64_t b = q->is_desc ? n - 1 - k : k;
            size_t i0 = 0;
            while (i0 < v.n && v.p[i0].bucket != b) i0++;
            size_t i1 = i0;
            while (i1 < v.n && v.p[i1].bucket == b) i1++;
            if (i1 == i0) continue;
            sort_n(v.p + i0, i1 - i0, sizeof *v.p, cmp_pt_value);
            for (size_t i = i0; i < i1; i++) {
                if (i > i0 && v.p[i].v == v.p[i - 1].v) continue;
                qref_cell *c = add_row(s);
                c[0] = time_cell(start + b * I);
                c[1] = val_cell(v.p[i].v, 1, 0);
            }
            sort_n(v.p + i0, i1 - i0, sizeof *v.p, cmp_pt_time);
        }
        free(v.p);
        limit_rows(q, s);
        return;
    }

    for (size_t i = 0; i < ni; i++) {
        cols[i] = xrealloc(NULL, (size_t)n * sizeof(aggval));
        ptvec v = {0};
        collect(db, q, g, q->items[i].field, 0, start, n, &v);
        if (v.n) any = 1;
        size_t p0 = 0;
        for (int64_t b = 0; b < n; b++) {
            size_t p1 = p0;
            while (p1 < v.n && v.p[p1].bucket == b) p1++;
            if (p1 == p0 && q->items[i].func != QF_COUNT && q->items[i].func != QF_COUNT_DISTINCT) {
                cols[i][b] = (aggval){ST_EMPTY, 0, 0, 1, 0};
            } else if (p1 == p0) {
                /* count of an empty bucket: 0 under fill(null), else empty */
                cols[i][b] = (aggval){q->fill == QFILL_NULL ? ST_VALUE : ST_EMPTY, 0, 0, 1, 0};
            } else {
                cols[i][b] = reduce(q->items[i].func, q->items[i].pct, v.p + p0, p1 - p0);
            }
            p0 = p1;
        }
        free(v.p);
    }
    for (size_t d = 0; d < q->n_compare; d++) {
        cmp_cols[d] = xrealloc(NULL, (size_t)n * sizeof(aggval));
        ptvec v = {0};
        collect(db, q, g, q->items[0].field, q->compare_ns[d], start, n, &v);
        size_t p0 = 0;
        for (int64_t b = 0; b < n; b++) {
            size_t p1 = p0;
            while (p1 < v.n && v.p[p1].bucket == b) p1++;
            if (p1 == p0) /* an empty shifted bucket reads as an empty bucket of the query */
                cmp_cols[d][b] = (aggval){(q->items[0].func == QF_COUNT || q->items[0].func == QF_COUNT_DISTINCT) &&
                                                  q->fill == QFILL_NULL
                                              ? ST_VALUE
                                              : ST_EMPTY,
                                          0, 0, 1, 0};
            else
                cmp_cols[d][b] = reduce(q->items[0].func, q->items[0].pct, v.p + p0, p1 - p0);
            p0 = p1;
        }
        free(v.p);
    }
    if (any) {
        for (size_t i = 0; i < ni; i++) fill_column(q, cols[i], n, start);
        for (int64_t k = 0; k < n; k++) {
            int64_t b = q->is_desc ? n - 1 - k : k;
            int all_empty = 1;
            for (size_t i = 0; i < ni; i++)
                if (cols[i][b].status != ST_EMPTY) all_empty = 0;
            if (all_empty && q->fill == QFILL_NONE) continue;
            qref_cell *c = add_row(s);
            c[0] = time_cell(start + b * I);
            for (size_t i = 0; i < ni; i++) c[1 + i] = agg_cell(&cols[i][b]);
            for (size_t d = 0; d < q->n_compare; d++) {
                const aggval *now = &cols[0][b], *then = &cmp_cols[d][b];
                c[1 + ni + 2 * d] = agg_cell(then);
                if (now->status == ST_VALUE && then->status == ST_VALUE && then->v != 0) {
                    double r = now->v / then->v;
                    double sc = fabs(r) * (1 + (now->is_exact ? 0 : now->scale / fmax(fabs(now->v), 1e-300)) +
                                           (then->is_exact ? 0 : then->scale / fmax(fabs(then->v), 1e-300)));
                    c[1 + ni + 2 * d + 1] = val_cell(r, 0, sc);
                } else {
                    c[1 + ni + 2 * d + 1] = null_cell();
                }
            }
        }
    }
    for (size_t i = 0; i < ni; i++) free(cols[i]);
    for (size_t d = 0; d < q->n_compare; d++) free(cmp_cols[d]);
    limit_rows(q, s);
}

int qref_eval(const qref_db *db, qref_query *q, qref_result *out)
{
    memset(out, 0, sizeof *out);
    const qref_meas *meas = &db->meas[q->meas];
    const char *keys[QREF_MAX_TAGS];
    size_t nk = 0;
    if (q->is_group_all) {
        for (size_t i = 0; i < meas->n_keys; i++) keys[nk++] = meas->keys[i];
    } else {
        for (size_t i = 0; i < q->n_gkeys; i++) keys[nk++] = q->gkeys[i];
        qsort(keys, nk, sizeof keys[0], cmp_str);
    }
    if (q->interval_ns && (!q->has_lo || !q->has_hi)) return -1;
    if (q->interval_ns && (q->hi_ns - q->lo_ns) / q->interval_ns > 200000) return -1;

    group *groups = NULL;
    size_t n_groups = 0;
    for (size_t i = 0; i < db->n_tagsets; i++) {
        const qref_tagset *t = &db->tagsets[i];
        if (t->meas != q->meas) continue;
        if (q->tag_where && !eval_tag_cond(q->tag_where, t)) continue;
        group g;
        memset(&g, 0, sizeof g);
        for (size_t k = 0; k < nk; k++) g.vals[k] = tag_of(t, keys[k]);
        size_t j;
        g_nkeys = nk;
        for (j = 0; j < n_groups; j++)
            if (!cmp_group(&groups[j], &g)) break;
        if (j == n_groups) {
            groups = xrealloc(groups, (n_groups + 1) * sizeof *groups);
            groups[n_groups++] = g;
        }
        if (groups[j].n_members == 64) abort();
        groups[j].members[groups[j].n_members++] = (int)i;
    }
    g_nkeys = nk;
    if (n_groups) qsort(groups, n_groups, sizeof *groups, cmp_group);

    int is_raw = q->items[0].func == QF_NONE;
    out->series = xrealloc(NULL, (n_groups ? n_groups : 1) * sizeof *out->series);
    for (size_t j = 0; j < n_groups; j++) {
        qref_series *s = &out->series[out->n_series];
        memset(s, 0, sizeof *s);
        s->name = meas->name;
        s->n_tags = nk;
        for (size_t k = 0; k < nk; k++) {
            s->keys[k] = keys[k];
            s->vals[k] = groups[j].vals[k];
        }
        set_columns(db, q, s);
        if (is_raw) eval_raw(db, q, &groups[j], s);
        else if (q->interval_ns) eval_agg_time(db, q, &groups[j], s);
        else eval_agg_all(db, q, &groups[j], s);
        if (s->n_rows) out->n_series++;
        else series_free(s);
    }
    free(groups);
    /* SOFFSET / SLIMIT over the non-empty series */
    size_t off = (size_t)q->soffset;
    if (off > out->n_series) off = out->n_series;
    for (size_t i = 0; i < off; i++) series_free(&out->series[i]);
    memmove(out->series, out->series + off, (out->n_series - off) * sizeof *out->series);
    out->n_series -= off;
    if (q->slimit && (size_t)q->slimit < out->n_series) {
        for (size_t i = (size_t)q->slimit; i < out->n_series; i++) series_free(&out->series[i]);
        out->n_series = (size_t)q->slimit;
    }
    return 0;
}

/*
 * tests/unit/test_query_diff.c — differential test of the InfluxQL executor
 * (mk_query_exec) against the brute-force reference in tests/qref.c.
 *
 * Data: two measurements (svc: qps, p95_ms, err; db: conns, lat), tags
 * service / instance / region (some series lack region), two days of
 * irregular samples per series (~26 s apart, some gaps of 10-90 min),
 * integers, 1-3 digit decimals, negatives, values near 1e12, a field with
 * few distinct values (for mode/distinct). Written in three phases over a
 * 1 h block span: ordered-ish writes (adjacent swaps, duplicates) then
 * mk_db_flush; rewrites and backfill into sealed hours plus newer data then
 * flush; newest data and more rewrites left in the head. The reference
 * keeps every write and applies last-write-wins itself. Chunks before the
 * backfilled hours overlap nothing, so aggregates over wide buckets (and
 * without GROUP BY time) can be answered from chunk summaries; the setup
 * prints how many chunks of one series could be.
 *
 * Queries: QDIFF_N_QUERIES random statements from a fixed seed (printed),
 * built as qref_query structs, printed as InfluxQL, run four ways
 * (no_summaries 0/1 x n_threads 1/2); every answer must equal the
 * reference: same statement count, no error, same series (name, tags),
 * same columns, same rows. Times and selector-like values (count, min, max,
 * first, last, mode, median, percentile, distinct, raw fields) must match
 * exactly; sum, mean, stddev, spread, arithmetic, linear fill and COMPARE
 * ratios within a relative 1e-9 (of the larger of the two values and the
 * magnitude the rounding error scales with, e.g. sum of |x| for sum()).
 * Rows with equal times inside one series are compared as a set (their
 * order is unspecified in InfluxQL: raw rows of several series, distinct
 * values).
 *
 * Environment: MK_QDIFF_QUERIES overrides the number of queries,
 * MK_QDIFF_SEED the query seed, MK_QDIFF_VERBOSE=1 prints every query,
 * MK_QDIFF_MAX_REPORTS the number of mismatches printed (default 25),
 * MK_QDIFF_DUMP=dir writes the data and the expected answers there (to
 * check the reference itself with another implementation).
 */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meerkat/meerkat.h"
#include "meerkat/query.h"
#include "qref.h"

#define DATA_SEED 0x51d2a7c3e9f00d01ull
#define QUERY_SEED 0x7a11b0a7d1ff0002ull
#define QDIFF_N_QUERIES 400
#define MAX_REPORTS 25

#define T0_MS INT64_C(1795824000000) /* 2026-11-28T00:00:00Z */
#define SPAN_MS (INT64_C(2) * 86400000)
#define MS INT64_C(1000000) /* ns per ms */
#define SEC (1000 * MS)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* ---- the data -------------------------------------------------------- */

typedef struct tagdef {
    int meas;
    const char *service, *instance, *region; /* region NULL = absent */
} tagdef;

static const char *const k_svc_fields[] = {"qps", "p95_ms", "err"};
static const char *const k_db_fields[] = {"conns", "lat"};
static const char *const k_keys[] = {"instance", "region", "service"};
static const char *const k_meas_names[] = {"svc", "db"};

static const tagdef k_tagsets[] = {
    {0, "api", "i-0", "eu"},   {0, "api", "i-1", "us"},   {0, "api", "i-2", NULL},
    {0, "web", "i-0", "eu"},   {0, "web", "i-1", NULL},   {0, "worker", "i-0", "us"},
    {0, "worker", "i-1", "eu"}, {1, "api", "i-0", NULL},  {1, "api", "i-1", "eu"},
    {1, "web", "i-0", NULL},   {1, "worker", "i-1", "us"},
};
#define N_TAGSETS (sizeof k_tagsets / sizeof k_tagsets[0])

/* One line of line protocol to write: field texts, NULL = field absent. */
typedef struct line {
    int tagset;
    int64_t ts_ms;
    char vals[3][32];
    uint8_t has[3];
} line;

typedef struct linevec {
    line *v;
    size_t n, cap;
} linevec;

static void lv_push(linevec *lv, const line *l)
{
    if (lv->n == lv->cap) {
        lv->cap = lv->cap ? 2 * lv->cap : 4096;
        lv->v = realloc(lv->v, lv->cap * sizeof *lv->v);
        assert_non_null(lv->v);
    }
    lv->v[lv->n++] = *l;
}

static size_t n_fields_of(int meas) { return meas == 0 ? 3 : 2; }

static void gen_value(mk_rng *r, int meas, int f, char *out, size_t cap)
{
    uint64_t u = mk_rng_below(r, 1000);
    if (meas == 0 && f == 0) { /* qps: integers, some with the i suffix */
        snprintf(out, cap, "%" PRIu64 "%s", mk_rng_below(r, 5000), u < 500 ? "i" : "");
    } else if (meas == 0 && f == 1) { /* p95_ms: 1-3 decimals, some negative */
        int d = 1 + (int)mk_rng_below(r, 3);
        uint64_t k = mk_rng_below(r, 200000);
        static const uint64_t p10[] = {1, 10, 100, 1000};
        snprintf(out, cap, "%s%" PRIu64 ".%0*" PRIu64, u < 80 ? "-" : "", k / p10[d], d, k % p10[d]);
    } else if (meas == 0 && f == 2) { /* err: few distinct values */
        static const char *const e[] = {"0", "1", "2", "0.5", "-1", "3", "0", "0", "1", "0.25"};
        snprintf(out, cap, "%s", e[mk_rng_below(r, 10)]);
    } else if (meas == 1 && f == 0) { /* conns: large and negative integers */
        if (u < 300) snprintf(out, cap, "%" PRIu64, (uint64_t)1000000000000 + mk_rng_below(r, 100000));
        else if (u < 400) snprintf(out, cap, "-%" PRIu64, mk_rng_below(r, 50));
        else snprintf(out, cap, "%" PRIu64 "i", mk_rng_below(r, 300));
    } else { /* lat: decimals */
        snprintf(out, cap, "%" PRIu64 ".%02" PRIu64, mk_rng_below(r, 1000), mk_rng_below(r, 100));
    }
}

static void gen_line(mk_rng *r, int tagset, int64_t ts_ms, line *l)
{
    memset(l, 0, sizeof *l);
    l->tagset = tagset;
    l->ts_ms = ts_ms;
    int meas = k_tagsets[tagset].meas;
    size_t nf = n_fields_of(meas);
    int any = 0;
    for (size_t f = 0; f < nf; f++) {
        l->has[f] = mk_rng_below(r, 10) != 0;
        any |= l->has[f];
    }
    if (!any) l->has[mk_rng_below(r, nf)] = 1;
    for (size_t f = 0; f < nf; f++)
        if (l->has[f]) gen_value(r, meas, (int)f, l->vals[f], sizeof l->vals[f]);
}

static void format_line(mk_sbuf *b, const line *l)
{
    const tagdef *t = &k_tagsets[l->tagset];
    mk_sb_printf(b, "%s,instance=%s", k_meas_names[t->meas], t->instance);
    if (t->region) mk_sb_printf(b, ",region=%s", t->region);
    mk_sb_printf(b, ",service=%s ", t->service);
    const char *const *fields = t->meas == 0 ? k_svc_fields : k_db_fields;
    int first = 1;
    for (size_t f = 0; f < n_fields_of(t->meas); f++) {
        if (!l->has[f]) continue;
        mk_sb_printf(b, "%s%s=%s", first ? "" : ",", fields[f], l->vals[f]);
        first = 0;
    }
    mk_sb_printf(b, " %" PRId64 "\n", l->ts_ms);
}

/* Writes lines in order to db and records them in the reference. */
static void write_lines(mk_db *db, qref_db *ref, const int *ref_tagset, const line *ls, size_t n)
{
    mk_sbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        format_line(&b, &ls[i]);
        for (size_t f = 0; f < 3; f++) {
            if (!ls[i].has[f]) continue;
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%s", ls[i].vals[f]);
            size_t len = strlen(tmp);
            if (len && tmp[len - 1] == 'i') tmp[len - 1] = 0;
            qref_db_add(ref, ref_tagset[ls[i].tagset], (int)f, ls[i].ts_ms, strtod(tmp, NULL));
        }
        if (b.n > (1u << 20) || i + 1 == n) {
            mk_write_stats st = {0};
            mk_diag d = {0};
            mk_err rc = mk_db_write_lp(db, b.p, b.n, MK_PRECISION_MS, 0, &st, NULL, NULL, &d);
            if (rc) fail_msg("write_lp: %s", d.msg);
            assert_int_equal(st.n_samples_rejected, 0);
            mk_sb_free(&b);
            memset(&b, 0, sizeof b);
        }
    }
    mk_sb_free(&b);
}

static int cmp_line_time(const void *a, const void *b)
{
    const line *x = a, *y = b;
    if (x->ts_ms != y->ts_ms) return x->ts_ms < y->ts_ms ? -1 : 1;
    return x->tagset - y->tagset;
}

typedef struct fixture {
    char *dir;
    mk_db *db;
    qref_db ref;
    uint64_t n_samples;
} fixture;

static void build_data(fixture *fx)
{
    mk_rng r = {DATA_SEED};
    printf("test_query_diff: data seed 0x%016" PRIx64 "\n", (uint64_t)DATA_SEED);
    int meas_idx[2];
    meas_idx[0] = qref_db_add_meas(&fx->ref, "svc", k_svc_fields, 3, k_keys, 3);
    meas_idx[1] = qref_db_add_meas(&fx->ref, "db", k_db_fields, 2, k_keys, 3);
    int ref_tagset[N_TAGSETS];
    for (size_t i = 0; i < N_TAGSETS; i++) {
        const tagdef *t = &k_tagsets[i];
        const char *keys[3] = {"service", "instance", "region"};
        const char *vals[3] = {t->service, t->instance, t->region};
        ref_tagset[i] = qref_db_add_tagset(&fx->ref, meas_idx[t->meas], keys, vals, t->region ? 3 : 2);
    }

    /* The schedule: every tagset's lines over two days. */
    linevec all = {0};
    for (size_t ti = 0; ti < N_TAGSETS; ti++) {
        int64_t t = T0_MS + (int64_t)mk_rng_below(&r, 20000);
        while (t < T0_MS + SPAN_MS) {
            line l;
            gen_line(&r, (int)ti, t, &l);
            lv_push(&all, &l);
            if (mk_rng_below(&r, 1000) < 1) t += 600000 + (int64_t)mk_rng_below(&r, 4800000);
            else t += 1000 * (1 + (int64_t)mk_rng_below(&r, 50)) + (int64_t)mk_rng_below(&r, 1000);
        }
    }
    /* Interleave tagsets by time (the schedule is per tagset). */
    qsort(all.v, all.n, sizeof *all.v, cmp_line_time);

    int64_t cut1 = T0_MS + 30 * 3600000ll, cut2 = T0_MS + 40 * 3600000ll;
    linevec ph[3] = {{0}, {0}, {0}};
    for (size_t i = 0; i < all.n; i++) {
        line *l = &all.v[i];
        int p = l->ts_ms < cut1 ? 0 : l->ts_ms < cut2 ? 1 : 2;
        lv_push(&ph[p], l);
        /* a duplicate with new values, later in the same phase */
        if (mk_rng_below(&r, 100) < 2) {
            line d;
            gen_line(&r, l->tagset, l->ts_ms, &d);
            lv_push(&ph[p], &d);
        }
    }
    /* Out of order inside a phase: swap some neighbours. */
    for (int p = 0; p < 3; p++)
        for (size_t i = 1; i < ph[p].n; i++)
            if (mk_rng_below(&r, 100) < 5) {
                line tmp = ph[p].v[i];
                ph[p].v[i] = ph[p].v[i - 1];
                ph[p].v[i - 1] = tmp;
            }
    /* Rewrites and backfill into the last sealed hours (27-30 h in phase 1,
     * 38-40 h in phase 2, which stays in the head). A later chunk spans from
     * its oldest sample to its newest, so it overlaps every sealed chunk in
     * between: keeping the backfill near the boundary leaves the hours
     * before 27 h in chunks that nothing overlaps, which the executor may
     * answer from their stored summaries. */
    for (int p = 1; p < 3; p++) {
        int64_t hi = p == 1 ? cut1 : cut2;
        int64_t hours[4];
        for (int h = 0; h < 4; h++)
            hours[h] = hi - 3600000 * (1 + (int64_t)mk_rng_below(&r, p == 1 ? 3 : 2));
        for (int k = 0; k < 600; k++) {
            line l;
            int64_t ts = hours[k % 4] + (int64_t)mk_rng_below(&r, 3600000);
            if (k % 3 != 0) { /* rewrite the existing line at or after ts */
                size_t lo = 0, hi_i = all.n;
                while (lo < hi_i) {
                    size_t mid = lo + (hi_i - lo) / 2;
                    if (all.v[mid].ts_ms < ts) lo = mid + 1;
                    else hi_i = mid;
                }
                if (lo == all.n || all.v[lo].ts_ms >= hi) continue;
                gen_line(&r, all.v[lo].tagset, all.v[lo].ts_ms, &l);
            } else { /* backfill a new (probably) timestamp */
                gen_line(&r, (int)mk_rng_below(&r, N_TAGSETS), ts, &l);
            }
            /* insert at a random place of the phase */
            lv_push(&ph[p], &l);
            size_t at = mk_rng_below(&r, ph[p].n);
            line tmp = ph[p].v[at];
            ph[p].v[at] = ph[p].v[ph[p].n - 1];
            ph[p].v[ph[p].n - 1] = tmp;
        }
    }
    for (int p = 0; p < 3; p++) {
        write_lines(fx->db, &fx->ref, ref_tagset, ph[p].v, ph[p].n);
        fx->n_samples += ph[p].n;
        if (p < 2) {
            mk_diag d = {0};
            if (mk_db_flush(fx->db, &d)) fail_msg("flush: %s", d.msg);
        }
        free(ph[p].v);
    }
    free(all.v);
    qref_db_finish(&fx->ref);
    mk_db_stats st = {0};
    mk_db_stats_get(fx->db, &st);
    /* How many chunks could answer from their stored summary (the pushdown
     * the no_summaries runs switch off): all chunks of one series. */
    uint64_t id = 0, n_sum = 0, n_stored = 0;
    mk_tag tags[3] = {{"instance", "i-0"}, {"region", "eu"}, {"service", "api"}};
    mk_diag d = {0};
    if (mk_db_series(fx->db, "svc", tags, 3, "qps", &id, &d)) fail_msg("series: %s", d.msg);
    mk_sum_iter *it = NULL;
    if (mk_db_iter_summaries(fx->db, id, T0_MS - 86400000, T0_MS + 3 * 86400000, &it, &d)) fail_msg("summaries: %s", d.msg);
    for (;;) {
        const mk_chunk_summary *cs;
        int is_decoded = 0, has = 0;
        if (mk_sum_iter_next(it, &cs, &is_decoded, &has, &d)) fail_msg("summaries: %s", d.msg);
        if (!has) break;
        n_sum++;
        n_stored += !is_decoded;
        if (getenv("MK_QDIFF_VERBOSE"))
            printf("  summary %" PRId64 "..%" PRId64 " n=%u decoded=%d\n", cs->first_ts_ms - T0_MS,
                   cs->last_ts_ms - T0_MS, cs->count, is_decoded);
    }
    mk_sum_iter_free(it);
    printf("test_query_diff: %" PRIu64 " lines written, %" PRIu64 " series, %" PRIu64
           " blocks, %" PRIu64 " samples in the head; svc,api,i-0,eu qps: %" PRIu64
           " chunk summaries, %" PRIu64 " answerable without decoding\n",
           fx->n_samples, st.n_series, st.n_blocks, st.n_head_samples, n_sum, n_stored);
}

/* ---- query generation ------------------------------------------------ */

/* Everything a generated query owns: its cond nodes and strings. */
typedef struct genq {
    qref_query q;
    qref_cond conds[16];
    size_t n_conds;
    char strs[8][64];
    size_t n_strs;
    mk_sbuf text;
    int kind; /* 0 raw, 1 aggregate, 2 GROUP BY time, 3 COMPARE */
} genq;

static qref_cond *new_cond(genq *g)
{
    assert_true(g->n_conds < 16);
    qref_cond *c = &g->conds[g->n_conds++];
    memset(c, 0, sizeof *c);
    return c;
}

static const char *pick(mk_rng *r, const char *const *v, size_t n) { return v[mk_rng_below(r, n)]; }
#define PICK(r, arr) pick(r, arr, sizeof arr / sizeof arr[0])

static qref_cond *gen_tag_leaf(mk_rng *r, genq *g)
{
    static const char *const svc_v[] = {"api", "web", "worker", "nope"};
    static const char *const inst_v[] = {"i-0", "i-1", "i-2"};
    static const char *const reg_v[] = {"eu", "us", ""};
    static const char *const svc_re[] = {"^a", "^(api|web)$", "er", "^w", "x"};
    static const char *const inst_re[] = {"^i-[01]$", "2$", "i-", "^i-1"};
    static const char *const reg_re[] = {"^$", "eu", "^(eu|us)$", "u"};
    qref_cond *c = new_cond(g);
    int key = (int)mk_rng_below(r, 3);
    c->key = k_keys[key];
    int op = (int)mk_rng_below(r, 4);
    c->kind = op == 0 ? QC_TAG_EQ : op == 1 ? QC_TAG_NE : op == 2 ? QC_TAG_RE : QC_TAG_NRE;
    if (op < 2)
        c->val = key == 0 ? PICK(r, inst_v) : key == 1 ? PICK(r, reg_v) : PICK(r, svc_v);
    else
        c->val = key == 0 ? PICK(r, inst_re) : key == 1 ? PICK(r, reg_re) : PICK(r, svc_re);
    return c;
}

static qref_cond *gen_tag_tree(mk_rng *r, genq *g, int depth)
{
    if (depth == 0 || mk_rng_below(r, 3) == 0) return gen_tag_leaf(r, g);
    qref_cond *c = new_cond(g);
    c->kind = mk_rng_below(r, 2) ? QC_AND : QC_OR;
    c->l = gen_tag_tree(r, g, depth - 1);
    c->r = gen_tag_tree(r, g, depth - 1);
    return c;
}

static void print_cond(mk_sbuf *b, const qref_cond *c, const qref_db *ref, int meas)
{
    static const char *const cmp_s[] = {"=", "!=", "<", "<=", ">", ">="};
    switch (c->kind) {
    case QC_AND:
    case QC_OR:
        mk_sb_printf(b, "(");
        print_cond(b, c->l, ref, meas);
        mk_sb_printf(b, c->kind == QC_AND ? " AND " : " OR ");
        print_cond(b, c->r, ref, meas);
        mk_sb_printf(b, ")");
        break;
    case QC_TAG_EQ: mk_sb_printf(b, "%s = '%s'", c->key, c->val); break;
    case QC_TAG_NE: mk_sb_printf(b, "%s != '%s'", c->key, c->val); break;
    case QC_TAG_RE: mk_sb_printf(b, "%s =~ /%s/", c->key, c->val); break;
    case QC_TAG_NRE: mk_sb_printf(b, "%s !~ /%s/", c->key, c->val); break;
    case QC_FIELD:
        mk_sb_printf(b, "%s %s %.15g", ref->meas[meas].fields[c->field], cmp_s[c->cmp], c->k);
        break;
    }
}

static qref_cond *gen_field_leaf(mk_rng *r, genq *g, int meas)
{
    static const char *const k_svc[3][4] = {
        {"100", "2500", "4000.5", "0"}, {"0", "50.25", "-10", "1000"}, {"0", "1", "0.5", "-1"}};
    static const char *const k_db[2][4] = {{"0", "100", "1000000000000", "-3"}, {"10.5", "500", "0", "999.99"}};
    qref_cond *c = new_cond(g);
    c->kind = QC_FIELD;
    c->field = (int)mk_rng_below(r, n_fields_of(meas));
    c->cmp = (qref_cmp)mk_rng_below(r, 6);
    const char *k = meas == 0 ? k_svc[c->field][mk_rng_below(r, 4)] : k_db[c->field][mk_rng_below(r, 4)];
    c->k = strtod(k, NULL);
    return c;
}

/* A time literal for ns (ms-aligned): RFC 3339, or an integer with a unit. */
static void print_time(mk_sbuf *b, mk_rng *r, int64_t ns)
{
    int64_t ms = ns / MS;
    uint64_t form = mk_rng_below(r, 5);
    if (form == 0 || form == 1) {
        time_t s = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        char buf[64];
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        if (ms % 1000) mk_sb_printf(b, "'%s.%03dZ'", buf, (int)(ms % 1000));
        else mk_sb_printf(b, "'%s%s'", buf, form == 1 ? ".000Z" : "Z");
    } else if (form == 2) {
        mk_sb_printf(b, "%" PRId64 "ms", ms);
    } else if (form == 3 && ms % 1000 == 0) {
        mk_sb_printf(b, "%" PRId64 "s", ms / 1000);
    } else if (form == 3) {
        mk_sb_printf(b, "%" PRId64 "u", ms * 1000);
    } else {
        mk_sb_printf(b, "%" PRId64, ns);
    }
}

typedef struct dur {
    int64_t ns;
    const char *text;
} dur;

static const dur k_intervals[] = {
    {SEC, "1s"},     {10 * SEC, "10s"}, {30 * SEC, "30s"},   {MIN, "1m"},     {5 * MIN, "5m"},
    {7 * MIN, "7m"}, {15 * MIN, "15m"}, {HOUR, "1h"},        {90 * MIN, "90m"}, {3 * HOUR, "3h"},
    {DAY, "1d"},     {2 * DAY, "2d"},   {HOUR, "60m"},       {20 * MIN, "20m"},
    {6 * HOUR, "6h"}, {12 * HOUR, "12h"}, /* wider than a chunk: answered from summaries */
};
static const dur k_offsets[] = {{SEC, "1s"}, {30 * SEC, "30s"}, {MIN, "1m"}, {15 * MIN, "15m"},
                                {HOUR, "1h"}, {2 * HOUR, "2h"}, {7 * MIN, "7m"}};
static const dur k_compares[] = {{DAY, "1d"}, {HOUR, "1h"}, {2 * HOUR, "2h"}, {30 * MIN, "30m"}, {7 * DAY, "1w"}};

static int64_t rand_ms_between(mk_rng *r, int64_t lo_ms, int64_t hi_ms, int align_ms)
{
    int64_t v = lo_ms + (int64_t)mk_rng_below(r, (uint64_t)(hi_ms - lo_ms));
    if (align_ms > 1) v -= v % align_ms;
    return v;
}

/* Fills the SELECT list. allow_more: distinct() and stddev() may be drawn
 * (not with fill(linear): stddev's one-point null is a value InfluxDB's
 * linear fill would read as 0; not with COMPARE). */
static void gen_items(mk_rng *r, genq *g, int meas, int is_raw, int allow_more)
{
    qref_query *q = &g->q;
    size_t nf = n_fields_of(meas);
    static const char *const aliases[] = {"a", "b", "v", "x_y"};
    if (is_raw) {
        uint64_t shape = mk_rng_below(r, 10);
        if (shape < 2) { /* field op field, with both fields too */
            int f1 = (int)mk_rng_below(r, nf), f2 = (int)((f1 + 1 + mk_rng_below(r, nf - 1)) % nf);
            q->n_items = 3;
            q->items[0] = (qref_item){.func = QF_NONE, .field = f1, .field2 = -1};
            q->items[1] = (qref_item){.func = QF_NONE, .field = f2, .field2 = -1};
            q->items[2] = (qref_item){.func = QF_NONE, .field = f1, .field2 = f2,
                                      .op = (qref_arith)(1 + mk_rng_below(r, 3)), .alias = "expr"};
            return;
        }
        q->n_items = 1 + mk_rng_below(r, 3);
        for (size_t i = 0; i < q->n_items; i++) {
            qref_item *it = &q->items[i];
            *it = (qref_item){.func = QF_NONE, .field = (int)mk_rng_below(r, nf), .field2 = -1};
            if (shape < 4 && i == q->n_items - 1) {
                static const double ks[] = {2, 0.5, -1, 1000, 0.1};
                it->op = (qref_arith)(1 + mk_rng_below(r, 3));
                it->konst = ks[mk_rng_below(r, 5)];
                it->alias = "calc";
            } else if (mk_rng_below(r, 6) == 0) {
                it->alias = aliases[i];
            }
        }
        return;
    }
    static const qref_func funcs[] = {QF_COUNT, QF_SUM,  QF_MEAN,  QF_MEDIAN, QF_MODE,
                                      QF_SPREAD, QF_STDDEV, QF_MIN, QF_MAX,    QF_FIRST,
                                      QF_LAST,  QF_PERCENTILE, QF_COUNT_DISTINCT};
    static const double pcts[] = {50, 75, 90, 95, 99, 99.9, 100, 62.5};
    uint64_t shape = mk_rng_below(r, 10);
    if (shape == 0 && allow_more) { /* distinct() alone */
        q->n_items = 1;
        q->items[0] = (qref_item){.func = QF_DISTINCT, .field = meas == 0 ? 2 : (int)mk_rng_below(r, nf),
                                  .field2 = -1};
        return;
    }
    q->n_items = shape < 6 ? 1 : 1 + mk_rng_below(r, 3);
    int same_field = mk_rng_below(r, 2) == 0;
    int f0 = (int)mk_rng_below(r, nf);
    for (size_t i = 0; i < q->n_items; i++) {
        qref_item *it = &q->items[i];
        *it = (qref_item){.field = same_field ? f0 : (int)mk_rng_below(r, nf), .field2 = -1};
        do {
            it->func = funcs[mk_rng_below(r, sizeof funcs / sizeof funcs[0])];
        } while (it->func == QF_STDDEV && !allow_more);
        if (it->func == QF_PERCENTILE) it->pct = pcts[mk_rng_below(r, 8)];
        if (mk_rng_below(r, 8) == 0) it->alias = aliases[i];
        if (i > 0 && mk_rng_below(r, 3) == 0) { /* a repeated function: mean, mean_1 */
            it->func = q->items[0].func;
            it->pct = q->items[0].pct;
            it->alias = NULL;
        }
    }
}

static const char *func_text(qref_func f)
{
    switch (f) {
    case QF_COUNT: return "count";
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
    case QF_COUNT_DISTINCT: return "count";
    default: return "?";
    }
}

static void print_query(genq *g, mk_rng *r, const qref_db *ref, const char *lo_op, int64_t lo_x,
                        const char *hi_op, int64_t hi_x, const dur *iv, const dur *off,
                        const char *fill_text, const dur *cmp, size_t n_cmp)
{
    qref_query *q = &g->q;
    mk_sbuf *b = &g->text;
    const qref_meas *m = &ref->meas[q->meas];
    static const char *const op_s[] = {"", " + ", " - ", " * "};
    mk_sb_printf(b, "SELECT ");
    for (size_t i = 0; i < q->n_items; i++) {
        const qref_item *it = &q->items[i];
        if (i) mk_sb_printf(b, ", ");
        if (it->func == QF_NONE) {
            mk_sb_printf(b, "%s", m->fields[it->field]);
            if (it->op != QA_NONE) {
                if (it->field2 >= 0) mk_sb_printf(b, "%s%s", op_s[it->op], m->fields[it->field2]);
                else mk_sb_printf(b, "%s%g", op_s[it->op], it->konst);
            }
        } else if (it->func == QF_COUNT_DISTINCT) {
            mk_sb_printf(b, "count(distinct(%s))", m->fields[it->field]);
        } else if (it->func == QF_PERCENTILE) {
            mk_sb_printf(b, "percentile(%s, %g)", m->fields[it->field], it->pct);
        } else {
            mk_sb_printf(b, "%s(%s)", func_text(it->func), m->fields[it->field]);
        }
        if (it->alias) mk_sb_printf(b, " AS %s", it->alias);
    }
    mk_sb_printf(b, " FROM %s", m->name);
    int n_where = 0;
    if (q->tag_where) {
        mk_sb_printf(b, " WHERE ");
        print_cond(b, q->tag_where, ref, q->meas);
        n_where++;
    }
    if (q->field_where) {
        mk_sb_printf(b, n_where++ ? " AND " : " WHERE ");
        print_cond(b, q->field_where, ref, q->meas);
    }
    if (lo_op) {
        mk_sb_printf(b, n_where++ ? " AND time %s " : " WHERE time %s ", lo_op);
        print_time(b, r, lo_x);
    }
    if (hi_op) {
        mk_sb_printf(b, n_where++ ? " AND time %s " : " WHERE time %s ", hi_op);
        print_time(b, r, hi_x);
    }
    int n_dims = 0;
    if (iv) {
        mk_sb_printf(b, " GROUP BY time(%s", iv->text);
        if (off) mk_sb_printf(b, ", %s", off->text);
        mk_sb_printf(b, ")");
        n_dims++;
    }
    if (q->is_group_all) {
        mk_sb_printf(b, n_dims++ ? ", *" : " GROUP BY *");
    } else {
        for (size_t i = 0; i < q->n_gkeys; i++) mk_sb_printf(b, n_dims++ ? ", %s" : " GROUP BY %s", q->gkeys[i]);
    }
    if (fill_text) mk_sb_printf(b, " fill(%s)", fill_text);
    for (size_t i = 0; i < n_cmp; i++) mk_sb_printf(b, i ? ", %s" : " COMPARE %s", cmp[i].text);
    if (q->is_desc) mk_sb_printf(b, " ORDER BY time DESC");
    if (q->limit) mk_sb_printf(b, " LIMIT %" PRId64, q->limit);
    if (q->offset) mk_sb_printf(b, " OFFSET %" PRId64, q->offset);
    if (q->slimit) mk_sb_printf(b, " SLIMIT %" PRId64, q->slimit);
    if (q->soffset) mk_sb_printf(b, " SOFFSET %" PRId64, q->soffset);
}

static void gen_query(mk_rng *r, const qref_db *ref, genq *g)
{
    memset(g, 0, sizeof *g);
    qref_query *q = &g->q;
    q->meas = mk_rng_below(r, 4) == 0 ? 1 : 0;
    uint64_t k = mk_rng_below(r, 100);
    g->kind = k < 20 ? 0 : k < 45 ? 1 : k < 92 ? 2 : 3;
    int is_time = g->kind >= 2;

    /* fill first: linear and stddev are not mixed (stddev's one-point null) */
    const char *fill_text = NULL;
    static const char *const fill_nums[] = {"0", "-1", "2.5", "100"};
    if (g->kind == 2) {
        uint64_t f = mk_rng_below(r, 100);
        if (f < 40) q->fill = QFILL_NULL;
        else if (f < 50) q->fill = QFILL_NULL, fill_text = "null";
        else if (f < 65) q->fill = QFILL_NONE, fill_text = "none";
        else if (f < 77) q->fill = QFILL_PREVIOUS, fill_text = "previous";
        else if (f < 87) q->fill = QFILL_LINEAR, fill_text = "linear";
        else {
            q->fill = QFILL_NUMBER;
            fill_text = fill_nums[mk_rng_below(r, 4)];
            q->fill_v = strtod(fill_text, NULL);
        }
    } else if (g->kind == 3 && mk_rng_below(r, 3) == 0) {
        q->fill = QFILL_NONE, fill_text = "none";
    }
    gen_items(r, g, q->meas, g->kind == 0, q->fill != QFILL_LINEAR && g->kind != 3);
    if (g->kind == 3) q->n_items = 1;
    if (is_time && q->items[0].func == QF_DISTINCT) q->fill = QFILL_NONE, fill_text = "none";

    if (mk_rng_below(r, 10) < 6) q->tag_where = gen_tag_tree(r, g, 2);
    if (mk_rng_below(r, 4) == 0) {
        q->field_where = gen_field_leaf(r, g, q->meas);
        if (mk_rng_below(r, 3) == 0) {
            qref_cond *c = new_cond(g);
            c->kind = mk_rng_below(r, 2) ? QC_AND : QC_OR;
            c->l = q->field_where;
            c->r = gen_field_leaf(r, g, q->meas);
            q->field_where = c;
        }
    }
    /* GROUP BY tags */
    uint64_t gb = mk_rng_below(r, 100);
    if (gb < 25) {
        q->is_group_all = 1;
    } else if (gb < 60) {
        q->n_gkeys = 1 + mk_rng_below(r, 2);
        int k0 = (int)mk_rng_below(r, 3);
        q->gkeys[0] = k_keys[k0];
        if (q->n_gkeys == 2) q->gkeys[1] = k_keys[(k0 + 1 + mk_rng_below(r, 2)) % 3];
    }

    /* time range */
    const char *lo_op = NULL, *hi_op = NULL;
    int64_t lo_x = 0, hi_x = 0;
    const dur *iv = NULL, *off = NULL;
    dur cmp[2];
    size_t n_cmp = 0;
    int64_t data_lo = T0_MS - 3600000, data_hi = T0_MS + SPAN_MS + 3600000;
    if (g->kind == 0) {
        int64_t span = 60000 + (int64_t)mk_rng_below(r, 3 * 3600000);
        lo_x = rand_ms_between(r, data_lo, data_hi - span, mk_rng_below(r, 2) ? 1000 : 1) * MS;
        hi_x = lo_x + span * MS;
        lo_op = mk_rng_below(r, 2) ? ">=" : ">";
        hi_op = mk_rng_below(r, 2) ? "<" : "<=";
        if (mk_rng_below(r, 10) == 0) hi_op = NULL, hi_x = 0, lo_x = (T0_MS + SPAN_MS - 1800000) * MS;
    } else if (g->kind == 1) {
        uint64_t b = mk_rng_below(r, 10);
        int64_t span = 600000 + (int64_t)mk_rng_below(r, (uint64_t)SPAN_MS);
        lo_x = rand_ms_between(r, data_lo, data_hi - span, mk_rng_below(r, 2) ? 60000 : 1) * MS;
        hi_x = lo_x + span * MS;
        if (b >= 2) lo_op = mk_rng_below(r, 2) ? ">=" : ">";
        if (b >= 4 || b == 1) hi_op = mk_rng_below(r, 2) ? "<" : "<=";
    } else if (g->kind == 2) {
        iv = &k_intervals[mk_rng_below(r, sizeof k_intervals / sizeof k_intervals[0])];
        if (mk_rng_below(r, 4) == 0) {
            off = &k_offsets[mk_rng_below(r, sizeof k_offsets / sizeof k_offsets[0])];
            if (off->ns >= iv->ns) off = NULL;
        }
        int64_t max_b = 1200;
        int64_t span_ns = iv->ns * (1 + (int64_t)mk_rng_below(r, (uint64_t)max_b));
        if (span_ns > (SPAN_MS + 2 * 3600000) * MS) span_ns = (SPAN_MS + 2 * 3600000) * MS;
        span_ns += (int64_t)mk_rng_below(r, (uint64_t)iv->ns) / MS * MS;
        int64_t span_ms = span_ns / MS;
        if (span_ms > SPAN_MS + 3 * 3600000) span_ms = SPAN_MS + 3 * 3600000;
        int64_t top = data_hi - span_ms;
        if (top <= data_lo) top = data_lo + 1;
        lo_x = rand_ms_between(r, data_lo, top, mk_rng_below(r, 2) ? 1000 : 1) * MS;
        hi_x = lo_x + span_ms * MS;
        lo_op = mk_rng_below(r, 3) ? ">=" : ">";
        hi_op = mk_rng_below(r, 2) ? "<" : "<=";
    } else {
        static const dur civ[] = {{5 * MIN, "5m"}, {15 * MIN, "15m"}, {HOUR, "1h"}, {3 * HOUR, "3h"}};
        iv = &civ[mk_rng_below(r, 4)];
        cmp[0] = k_compares[mk_rng_below(r, 5)];
        n_cmp = 1;
        if (mk_rng_below(r, 4) == 0) {
            cmp[1] = k_compares[mk_rng_below(r, 5)];
            if (cmp[1].ns != cmp[0].ns) n_cmp = 2;
        }
        /* aligned range: whole buckets only (no partial-bucket question) */
        int64_t nb = 1 + (int64_t)mk_rng_below(r, 48);
        int64_t lo_ms = rand_ms_between(r, T0_MS + 20 * 3600000, T0_MS + 47 * 3600000, 1);
        lo_x = (lo_ms * MS) / iv->ns * iv->ns;
        hi_x = lo_x + nb * iv->ns;
        lo_op = ">=";
        hi_op = "<";
    }
    q->has_lo = lo_op != NULL;
    q->has_hi = hi_op != NULL;
    q->lo_ns = lo_op && !strcmp(lo_op, ">") ? lo_x + 1 : lo_x;
    q->hi_ns = hi_op && !strcmp(hi_op, "<") ? hi_x - 1 : hi_x;
    if (iv) {
        q->interval_ns = iv->ns;
        q->offset_ns = off ? off->ns : 0;
    }
    for (size_t i = 0; i < n_cmp; i++) {
        q->compare_ns[i] = cmp[i].ns;
        q->compare_lbl[i] = cmp[i].text;
    }
    q->n_compare = n_cmp;

    /* ORDER, LIMIT, OFFSET, SLIMIT, SOFFSET */
    if ((g->kind == 0 || g->kind == 2 || g->kind == 3) && mk_rng_below(r, 5) == 0) q->is_desc = 1;
    int has_distinct = q->items[0].func == QF_DISTINCT;
    if (g->kind == 2 || g->kind == 3 || (g->kind == 0 && q->is_group_all)) {
        if (!has_distinct && mk_rng_below(r, 4) == 0) q->limit = 1 + (int64_t)mk_rng_below(r, 20);
        if (!has_distinct && mk_rng_below(r, 6) == 0) q->offset = 1 + (int64_t)mk_rng_below(r, 10);
    }
    if ((q->is_group_all || q->n_gkeys) && mk_rng_below(r, 7) == 0) {
        if (mk_rng_below(r, 2)) q->slimit = 1 + (int64_t)mk_rng_below(r, 3);
        else q->soffset = 1 + (int64_t)mk_rng_below(r, 3);
    }
    print_query(g, r, ref, lo_op, lo_x, hi_op, hi_x, iv, off, fill_text, cmp, n_cmp);
}

/* ---- comparison ------------------------------------------------------ */

static void fmt_cell(mk_sbuf *b, const qref_cell *c)
{
    if (c->is_null) mk_sb_printf(b, "null");
    else if (c->is_time) mk_sb_printf(b, "t=%" PRId64, c->t);
    else mk_sb_printf(b, "%.17g", c->v);
}

static void fmt_qv(mk_sbuf *b, const mk_qv *v)
{
    switch (v->type) {
    case MK_QV_NULL: mk_sb_printf(b, "null"); break;
    case MK_QV_FLOAT: mk_sb_printf(b, "%.17g", v->u.f); break;
    case MK_QV_INT: mk_sb_printf(b, "%" PRId64 "i", v->u.i); break;
    case MK_QV_BOOL: mk_sb_printf(b, "%s", v->u.i ? "true" : "false"); break;
    case MK_QV_STRING: mk_sb_printf(b, "'%s'", v->u.s); break;
    case MK_QV_TIME: mk_sb_printf(b, "t=%" PRId64, v->u.i); break;
    }
}

static int cell_matches(const qref_cell *e, const mk_qv *a)
{
    if (e->is_null) return a->type == MK_QV_NULL;
    if (e->is_time) return a->type == MK_QV_TIME && a->u.i == e->t;
    double x;
    if (a->type == MK_QV_FLOAT) x = a->u.f;
    else if (a->type == MK_QV_INT) x = (double)a->u.i;
    else return 0;
    if (e->is_exact) return x == e->v;
    double tol = 1e-9 * fmax(fmax(fabs(x), fabs(e->v)), e->scale);
    return fabs(x - e->v) <= tol;
}

/* Sort keys for rows with equal times (compared as sets). */
static int cmp_cells(const qref_cell *a, const qref_cell *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].is_null != b[i].is_null) return a[i].is_null ? -1 : 1;
        double x = a[i].is_time ? (double)a[i].t : a[i].v, y = b[i].is_time ? (double)b[i].t : b[i].v;
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}
static double qv_num(const mk_qv *v)
{
    return v->type == MK_QV_FLOAT ? v->u.f : (v->type == MK_QV_INT || v->type == MK_QV_TIME) ? (double)v->u.i : 0;
}
static int cmp_qvs(const mk_qv *a, const mk_qv *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int an = a[i].type == MK_QV_NULL, bn = b[i].type == MK_QV_NULL;
        if (an != bn) return an ? -1 : 1;
        double x = qv_num(&a[i]), y = qv_num(&b[i]);
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

/* Sorts each run of rows with the same first cell (time) by value. */
static void canon_expected(qref_series *s)
{
    size_t nc = s->n_cols;
    for (size_t i = 0; i < s->n_rows;) {
        size_t j = i + 1;
        while (j < s->n_rows && s->cells[j * nc].t == s->cells[i * nc].t) j++;
        for (size_t a = i + 1; a < j; a++) /* insertion sort: runs are short */
            for (size_t c = a; c > i && cmp_cells(&s->cells[c * nc], &s->cells[(c - 1) * nc], nc) < 0; c--) {
                qref_cell tmp[QREF_MAX_ITEMS * 3 + 1];
                memcpy(tmp, &s->cells[c * nc], nc * sizeof *tmp);
                memcpy(&s->cells[c * nc], &s->cells[(c - 1) * nc], nc * sizeof *tmp);
                memcpy(&s->cells[(c - 1) * nc], tmp, nc * sizeof *tmp);
            }
        i = j;
    }
}

static mk_qv *canon_actual(const mk_qseries *s)
{
    size_t nc = s->n_cols;
    mk_qv *v = malloc((s->n_rows ? s->n_rows : 1) * (nc ? nc : 1) * sizeof *v);
    assert_non_null(v);
    if (s->n_rows) memcpy(v, s->values, s->n_rows * nc * sizeof *v);
    if (!nc) return v;
    for (size_t i = 0; i < s->n_rows;) {
        size_t j = i + 1;
        while (j < s->n_rows && v[j * nc].type == v[i * nc].type && v[j * nc].u.i == v[i * nc].u.i) j++;
        for (size_t a = i + 1; a < j; a++)
            for (size_t c = a; c > i && cmp_qvs(&v[c * nc], &v[(c - 1) * nc], nc) < 0; c--) {
                mk_qv tmp[16];
                if (nc > 16) break;
                memcpy(tmp, &v[c * nc], nc * sizeof *tmp);
                memcpy(&v[c * nc], &v[(c - 1) * nc], nc * sizeof *tmp);
                memcpy(&v[(c - 1) * nc], tmp, nc * sizeof *tmp);
            }
        i = j;
    }
    return v;
}

static void fmt_tags_exp(mk_sbuf *b, const qref_series *s)
{
    mk_sb_printf(b, "%s{", s->name);
    for (size_t i = 0; i < s->n_tags; i++) mk_sb_printf(b, "%s%s=%s", i ? "," : "", s->keys[i], s->vals[i]);
    mk_sb_printf(b, "}");
}
static void fmt_tags_act(mk_sbuf *b, const mk_qseries *s)
{
    mk_sb_printf(b, "%s{", s->name ? s->name : "(null)");
    for (uint32_t i = 0; i < s->n_tags; i++) mk_sb_printf(b, "%s%s=%s", i ? "," : "", s->tag_keys[i], s->tag_values[i]);
    mk_sb_printf(b, "}");
}
static void fmt_row_exp(mk_sbuf *b, const qref_series *s, size_t r)
{
    mk_sb_printf(b, "[");
    for (size_t c = 0; c < s->n_cols; c++) {
        if (c) mk_sb_printf(b, ", ");
        fmt_cell(b, &s->cells[r * s->n_cols + c]);
    }
    mk_sb_printf(b, "]");
}
static void fmt_row_act(mk_sbuf *b, const mk_qv *v, size_t nc, size_t r)
{
    mk_sb_printf(b, "[");
    for (size_t c = 0; c < nc; c++) {
        if (c) mk_sb_printf(b, ", ");
        fmt_qv(b, &v[r * nc + c]);
    }
    mk_sb_printf(b, "]");
}

/* Compares; on a difference writes what differs into why and returns 1. */
static int compare(const qref_result *exp, const mk_qresult *res, mk_sbuf *why)
{
    if (mk_qresult_n_stmts(res) != 1) {
        mk_sb_printf(why, "statements: want 1, got %u", mk_qresult_n_stmts(res));
        return 1;
    }
    const mk_qstmt *st = mk_qresult_stmt(res, 0);
    if (st->error) {
        mk_sb_printf(why, "statement error: %s", st->error);
        return 1;
    }
    size_t n = exp->n_series < st->n_series ? exp->n_series : st->n_series;
    for (size_t i = 0; i < n; i++) {
        const qref_series *e = &exp->series[i];
        const mk_qseries *a = &st->series[i];
        int same_id = a->name && !strcmp(a->name, e->name) && a->n_tags == e->n_tags;
        for (size_t k = 0; same_id && k < e->n_tags; k++)
            same_id = !strcmp(a->tag_keys[k], e->keys[k]) && !strcmp(a->tag_values[k], e->vals[k]);
        if (!same_id) {
            mk_sb_printf(why, "series %zu: want ", i);
            fmt_tags_exp(why, e);
            mk_sb_printf(why, ", got ");
            fmt_tags_act(why, a);
            return 1;
        }
        int same_cols = a->n_cols == e->n_cols;
        for (size_t c = 0; same_cols && c < e->n_cols; c++) same_cols = !strcmp(a->columns[c], e->cols[c]);
        if (!same_cols) {
            mk_sb_printf(why, "series %zu columns: want [", i);
            for (size_t c = 0; c < e->n_cols; c++) mk_sb_printf(why, "%s%s", c ? "," : "", e->cols[c]);
            mk_sb_printf(why, "], got [");
            for (size_t c = 0; c < a->n_cols; c++) mk_sb_printf(why, "%s%s", c ? "," : "", a->columns[c]);
            mk_sb_printf(why, "]");
            return 1;
        }
        mk_qv *av = canon_actual(a);
        size_t nr = e->n_rows < a->n_rows ? e->n_rows : (size_t)a->n_rows;
        for (size_t r = 0; r <= nr; r++) {
            int differs = 0;
            if (r == nr) {
                if (e->n_rows == a->n_rows) break;
                differs = 1;
            } else {
                for (size_t c = 0; c < e->n_cols; c++)
                    if (!cell_matches(&e->cells[r * e->n_cols + c], &av[r * e->n_cols + c])) differs = 1;
            }
            if (differs) {
                mk_sb_printf(why, "series %zu ", i);
                fmt_tags_exp(why, e);
                mk_sb_printf(why, " rows want %zu got %" PRIu64 "; first difference at row %zu:\n    want ",
                             e->n_rows, a->n_rows, r);
                if (r < e->n_rows) fmt_row_exp(why, e, r);
                else mk_sb_printf(why, "(no row)");
                mk_sb_printf(why, "\n    got  ");
                if (r < a->n_rows) fmt_row_act(why, av, e->n_cols, r);
                else mk_sb_printf(why, "(no row)");
                free(av);
                return 1;
            }
        }
        free(av);
    }
    if (exp->n_series != st->n_series) {
        mk_sb_printf(why, "series: want %zu, got %u", exp->n_series, st->n_series);
        if (exp->n_series > n) {
            mk_sb_printf(why, "; first missing ");
            fmt_tags_exp(why, &exp->series[n]);
        } else {
            mk_sb_printf(why, "; first extra ");
            fmt_tags_act(why, &st->series[n]);
        }
        return 1;
    }
    return 0;
}

/* ---- the test -------------------------------------------------------- */

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->dir = mk_test_dir("query_diff");
    mk_options o;
    mk_options_init(&o);
    o.block_span_ms = 3600000; /* 1 h blocks: queries cross block boundaries */
    o.fsync = MK_FSYNC_OFF;
    mk_diag d = {0};
    if (mk_db_open(fx->dir, &o, &fx->db, &d)) fail_msg("open: %s", d.msg);
    build_data(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    mk_db_close(fx->db, NULL);
    mk_test_rmrf(fx->dir);
    free(fx->dir);
    qref_db_free(&fx->ref);
    free(fx);
    return 0;
}

static void test_reference_sanity(void **state)
{
    /* The reference itself on a hand-checked case: a tiny db in memory. */
    (void)state;
    qref_db db = {0};
    const char *f[] = {"v"};
    const char *k[] = {"h"};
    int m = qref_db_add_meas(&db, "m", f, 1, k, 1);
    const char *va[] = {"a"};
    int t = qref_db_add_tagset(&db, m, k, va, 1);
    /* values at 0, 10, 20, 30 s; 20 s written twice (last wins: 4) */
    qref_db_add(&db, t, 0, 0, 1);
    qref_db_add(&db, t, 0, 10000, 3);
    qref_db_add(&db, t, 0, 20000, 100);
    qref_db_add(&db, t, 0, 30000, 3);
    qref_db_add(&db, t, 0, 20000, 4);
    qref_db_finish(&db);
    qref_query q = {0};
    q.meas = m;
    q.n_items = 4;
    q.items[0] = (qref_item){.func = QF_MEDIAN, .field2 = -1};
    q.items[1] = (qref_item){.func = QF_MODE, .field2 = -1};
    q.items[2] = (qref_item){.func = QF_PERCENTILE, .pct = 50, .field2 = -1};
    q.items[3] = (qref_item){.func = QF_MEDIAN, .field2 = -1};
    qref_result res;
    assert_int_equal(qref_eval(&db, &q, &res), 0);
    assert_int_equal(res.n_series, 1);
    assert_string_equal(res.series[0].cols[4], "median_1");
    const qref_cell *c = res.series[0].cells;
    assert_int_equal(c[0].t, 0);
    assert_true(c[1].v == 3);  /* median of 1 3 3 4 */
    assert_true(c[2].v == 3);  /* mode */
    assert_true(c[3].v == 3);  /* nearest rank: floor(4*0.5+0.5)-1 = 1 -> 3 */
    qref_result_free(&res);
    /* GROUP BY time(20s) fill(linear) over [0, 60s): buckets 0, 20, 40 -> mean 2, 3.5, null */
    memset(&q, 0, sizeof q);
    q.meas = m;
    q.n_items = 2;
    q.items[0] = (qref_item){.func = QF_MEAN, .field2 = -1};
    q.items[1] = (qref_item){.func = QF_COUNT, .field2 = -1};
    q.has_lo = q.has_hi = 1;
    q.lo_ns = 0;
    q.hi_ns = 80 * SEC - 1;
    q.interval_ns = 20 * SEC;
    q.fill = QFILL_NULL;
    assert_int_equal(qref_eval(&db, &q, &res), 0);
    assert_int_equal(res.series[0].n_rows, 4);
    c = res.series[0].cells;
    assert_true(c[1].v == 2 && c[2].v == 2);
    assert_true(c[4].v == 3.5 && c[5].v == 2);
    assert_true(c[7].is_null && c[8].v == 0); /* count of an empty bucket is 0 */
    qref_result_free(&res);
    qref_db_free(&db);
}

/* ---- MK_QDIFF_DUMP: the data, queries and expected answers as text ---
 * For checking the reference itself with another implementation
 * (a throw-away script); not used by the test's verdict. */

static void dump_cond(FILE *f, const qref_cond *c)
{
    if (!c) {
        fprintf(f, "null");
        return;
    }
    static const char *const kinds[] = {"and", "or", "eq", "ne", "re", "nre", "field"};
    fprintf(f, "{\"k\":\"%s\"", kinds[c->kind]);
    if (c->kind == QC_AND || c->kind == QC_OR) {
        fprintf(f, ",\"l\":");
        dump_cond(f, c->l);
        fprintf(f, ",\"r\":");
        dump_cond(f, c->r);
    } else if (c->kind == QC_FIELD) {
        fprintf(f, ",\"field\":%d,\"cmp\":%d,\"v\":%.17g", c->field, (int)c->cmp, c->k);
    } else {
        fprintf(f, ",\"key\":\"%s\",\"val\":\"%s\"", c->key, c->val);
    }
    fprintf(f, "}");
}

static void dump_query(FILE *f, const genq *g, const qref_result *exp)
{
    const qref_query *q = &g->q;
    fprintf(f, "{\"text\":\"");
    for (const char *c = mk_sb_str(&g->text); *c; c++) fprintf(f, *c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
    fprintf(f, "\",\"kind\":%d,\"meas\":%d,\"items\":[", g->kind, q->meas);
    for (size_t i = 0; i < q->n_items; i++) {
        const qref_item *it = &q->items[i];
        fprintf(f, "%s{\"func\":%d,\"field\":%d,\"pct\":%.17g,\"op\":%d,\"field2\":%d,\"konst\":%.17g}",
                i ? "," : "", (int)it->func, it->field, it->pct, (int)it->op, it->field2, it->konst);
    }
    fprintf(f, "],\"tag_where\":");
    dump_cond(f, q->tag_where);
    fprintf(f, ",\"field_where\":");
    dump_cond(f, q->field_where);
    fprintf(f, ",\"has_lo\":%d,\"has_hi\":%d,\"lo\":%" PRId64 ",\"hi\":%" PRId64 ",\"interval\":%" PRId64
               ",\"offset\":%" PRId64 ",\"group_all\":%d,\"gkeys\":[",
            q->has_lo, q->has_hi, q->lo_ns, q->hi_ns, q->interval_ns, q->offset_ns, q->is_group_all);
    for (size_t i = 0; i < q->n_gkeys; i++) fprintf(f, "%s\"%s\"", i ? "," : "", q->gkeys[i]);
    fprintf(f, "],\"fill\":%d,\"fill_v\":%.17g,\"compare\":[", q->fill, q->fill_v);
    for (size_t i = 0; i < q->n_compare; i++) fprintf(f, "%s%" PRId64, i ? "," : "", q->compare_ns[i]);
    fprintf(f, "],\"desc\":%d,\"limit\":%" PRId64 ",\"offset_rows\":%" PRId64 ",\"slimit\":%" PRId64
               ",\"soffset\":%" PRId64 ",\"expected\":[",
            q->is_desc, q->limit, q->offset, q->slimit, q->soffset);
    for (size_t s = 0; s < exp->n_series; s++) {
        const qref_series *e = &exp->series[s];
        fprintf(f, "%s{\"name\":\"%s\",\"tags\":[", s ? "," : "", e->name);
        for (size_t k = 0; k < e->n_tags; k++) fprintf(f, "%s[\"%s\",\"%s\"]", k ? "," : "", e->keys[k], e->vals[k]);
        fprintf(f, "],\"cols\":[");
        for (size_t c = 0; c < e->n_cols; c++) fprintf(f, "%s\"%s\"", c ? "," : "", e->cols[c]);
        fprintf(f, "],\"rows\":[");
        for (size_t r = 0; r < e->n_rows; r++) {
            fprintf(f, "%s[", r ? "," : "");
            for (size_t c = 0; c < e->n_cols; c++) {
                const qref_cell *x = &e->cells[r * e->n_cols + c];
                if (c) fprintf(f, ",");
                if (x->is_null) fprintf(f, "null");
                else if (x->is_time) fprintf(f, "%" PRId64, x->t);
                else fprintf(f, "%.17g", x->v);
            }
            fprintf(f, "]");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
}

static void dump_data(const char *dir, const qref_db *db)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data.csv", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < db->n_tagsets; i++) {
        const qref_tagset *t = &db->tagsets[i];
        for (size_t r = 0; r < t->n_rows; r++)
            for (size_t fi = 0; fi < db->meas[t->meas].n_fields; fi++)
                if (t->has[fi][r]) fprintf(f, "%zu,%zu,%" PRId64 ",%.17g\n", i, fi, t->ts_ms[r], t->val[fi][r]);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/writes.csv", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < db->n_writes; i++) {
        const qref_write *w = &db->writes[i];
        fprintf(f, "%u,%u,%" PRId64 ",%.17g,%" PRIu64 "\n", w->tagset, w->field, w->ts_ms, w->v, w->seq);
    }
    fclose(f);
}

static void test_differential(void **state)
{
    fixture *fx = *state;
    uint64_t seed = QUERY_SEED;
    size_t n_queries = QDIFF_N_QUERIES;
    const char *env = getenv("MK_QDIFF_SEED");
    if (env) seed = strtoull(env, NULL, 0);
    env = getenv("MK_QDIFF_QUERIES");
    if (env) n_queries = (size_t)strtoull(env, NULL, 0);
    int is_verbose = getenv("MK_QDIFF_VERBOSE") != NULL;
    size_t max_reports = MAX_REPORTS;
    env = getenv("MK_QDIFF_MAX_REPORTS");
    if (env) max_reports = (size_t)strtoull(env, NULL, 0);
    const char *dump_dir = getenv("MK_QDIFF_DUMP");
    FILE *dump = NULL;
    if (dump_dir) {
        char path[4096];
        dump_data(dump_dir, &fx->ref);
        snprintf(path, sizeof path, "%s/queries.jsonl", dump_dir);
        dump = fopen(path, "w");
        assert_non_null(dump);
    }
    printf("test_query_diff: query seed 0x%016" PRIx64 ", %zu queries x 4 runs\n", seed, n_queries);
    mk_rng r = {seed};
    size_t n_failed = 0, n_reports = 0, n_rows_checked = 0, n_kind[4] = {0}, n_fail_kind[4] = {0};
    static const struct {
        int no_summaries, n_threads;
    } runs[4] = {{0, 1}, {1, 1}, {0, 2}, {1, 2}};
    int64_t t_start = mk_test_mono_ms(), ms_ref = 0, ms_exec = 0;
    for (size_t qi = 0; qi < n_queries; qi++) {
        genq *g = calloc(1, sizeof *g);
        assert_non_null(g);
        gen_query(&r, &fx->ref, g);
        const char *text = mk_sb_str(&g->text);
        if (is_verbose) printf("  [%zu] %s\n", qi, text);
        qref_result exp;
        int64_t t_ref = mk_test_mono_ms();
        if (qref_eval(&fx->ref, &g->q, &exp)) fail_msg("reference refused query %zu: %s", qi, text);
        ms_ref += mk_test_mono_ms() - t_ref;
        for (size_t s = 0; s < exp.n_series; s++) {
            canon_expected(&exp.series[s]);
            n_rows_checked += exp.series[s].n_rows;
        }
        n_kind[g->kind]++;
        if (dump) dump_query(dump, g, &exp);
        int failed = 0;
        for (int k = 0; k < 4 && !failed; k++) {
            mk_query_opts o = {.db = "meerkat", .now_ns = (T0_MS + 3 * 86400000ll) * MS,
                               .no_summaries = runs[k].no_summaries, .n_threads = runs[k].n_threads};
            mk_qresult *res = NULL;
            mk_diag d = {0};
            mk_sbuf why = {0};
            int64_t t_exec = mk_test_mono_ms();
            mk_err rc = mk_query_exec(fx->db, text, strlen(text), &o, &res, &d);
            ms_exec += mk_test_mono_ms() - t_exec;
            if (rc) mk_sb_printf(&why, "mk_query_exec failed: %s (%s)", mk_err_name(rc), d.msg);
            else failed = compare(&exp, res, &why);
            if (rc) failed = 1;
            if (failed) {
                n_failed++;
                n_fail_kind[g->kind]++;
                if (n_reports++ < max_reports)
                    printf("MISMATCH seed 0x%016" PRIx64 " query %zu (no_summaries=%d n_threads=%d):\n  %s\n  %s\n",
                           seed, qi, runs[k].no_summaries, runs[k].n_threads, text, mk_sb_str(&why));
            }
            mk_sb_free(&why);
            mk_qresult_free(res);
        }
        qref_result_free(&exp);
        mk_sb_free(&g->text);
        for (size_t c = 0; c < g->n_conds; c++)
            if (g->conds[c].is_re_ready) regfree(&g->conds[c].re);
        free(g);
    }
    if (dump) fclose(dump);
    printf("test_query_diff: %zu queries (raw %zu, aggregate %zu, GROUP BY time %zu, COMPARE %zu), "
           "%zu expected rows, %zu failed (raw %zu, aggregate %zu, GROUP BY time %zu, COMPARE %zu), %" PRId64
           " ms (reference %" PRId64 " ms, executor %" PRId64 " ms)\n",
           n_queries, n_kind[0], n_kind[1], n_kind[2], n_kind[3], n_rows_checked, n_failed, n_fail_kind[0],
           n_fail_kind[1], n_fail_kind[2], n_fail_kind[3], mk_test_mono_ms() - t_start, ms_ref, ms_exec);
    if (n_failed) fail_msg("%zu of %zu queries differ from the reference (seed 0x%016" PRIx64 ")", n_failed,
                           n_queries, seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_sanity),
        cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

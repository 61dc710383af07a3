/*
 * tests/unit/test_rollup_query.c — the query planner reading rollup tiers.
 * The reference is the same query forced onto raw samples
 * (tier_mode = MK_QUERY_TIER_RAW, the path the other query tests check
 * against brute force): with values that are multiples of 1/4 every sum is
 * exact in any order, so both answers must be byte for byte the same (CSV,
 * ms epochs). Covered: aligned and unaligned ranges (raw edges), GROUP BY
 * tags, intervals wider than a rollup window, late data written after the
 * tiers were built (not yet rolled up, then rolled up), and EXPLAIN naming
 * the tier.
 */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meerkat/meerkat.h"
#include "meerkat/query.h"

static mk_err sink(void *ctx, const char *p, size_t n)
{
    mk_sb_add(ctx, p, n);
    return MK_OK;
}

static char *run(mk_db *db, const char *q, int tier_mode)
{
    mk_query_opts o = {0};
    o.now_ns = 1000000000000000LL;
    o.tier_mode = tier_mode;
    o.n_threads = 2;
    mk_qresult *r = NULL;
    mk_diag d = {0};
    if (mk_query_exec(db, q, strlen(q), &o, &r, &d)) fail_msg("%s: %s", q, d.msg);
    mk_sbuf b = {0};
    mk_qout_opts oo = {MK_QFMT_CSV, "ms", 0, 0};
    if (mk_qresult_write(r, &oo, sink, &b, &d)) fail_msg("write: %s", d.msg);
    mk_qresult_free(r);
    char *s = strdup(mk_sb_str(&b));
    mk_sb_free(&b);
    return s;
}

static void same_both_ways(mk_db *db, const char *q)
{
    char *a = run(db, q, MK_QUERY_TIER_AUTO), *b = run(db, q, MK_QUERY_TIER_RAW);
    if (strcmp(a, b) != 0) fail_msg("%s:\nauto:\n%s\nraw:\n%s", q, a, b);
    if (strlen(a) < 40) fail_msg("%s: suspiciously short answer: %s", q, a);
    free(a);
    free(b);
}

static const char *queries[] = {
    "SELECT count(v), sum(v), min(v), max(v), mean(v), spread(v) FROM cpu WHERE time >= 4000ms AND time < 60000ms GROUP BY time(1000ms)",
    "SELECT count(v), max(v), mean(v) FROM cpu WHERE time >= 1234ms AND time < 61111ms GROUP BY time(1000ms), host",
    "SELECT sum(v), min(v) FROM cpu WHERE time >= 0ms AND time < 64000ms GROUP BY time(10000ms) fill(none)",
    "SELECT max(v) FROM cpu WHERE host = 'h1' AND time >= 500ms AND time < 70000ms GROUP BY time(100ms) fill(none)",
    "SELECT mean(v) FROM cpu WHERE time >= 2000ms AND time < 50000ms GROUP BY time(3000ms, 1000ms)",
};

static void check_all(mk_db *db)
{
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) same_both_ways(db, queries[i]);
}

static void test_planner(void **state)
{
    (void)state;
    char *dir = mk_test_dir("rollup_query");
    mk_options o;
    mk_options_init(&o);
    o.fsync = MK_FSYNC_OFF;
    o.block_span_ms = 1000;
    o.seal_gap_ms = -1;
    o.is_compaction_off = 1;
    o.compact_ranges_ms[0] = 4000;
    o.compact_ranges_ms[1] = 16000;
    o.rollup_steps_ms[0] = 100;
    o.rollup_min_density = 1; /* every series: the reference has all buckets */
    o.rollup_steps_ms[1] = 500;
    mk_db *db = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, &o, &db, &d), MK_OK);
    uint64_t ids[3];
    for (int h = 0; h < 3; h++) {
        char name[8];
        snprintf(name, sizeof name, "h%d", h);
        mk_tag t = {"host", name};
        assert_int_equal(mk_db_series(db, "cpu", &t, 1, "v", &ids[h], &d), MK_OK);
    }
    mk_rng g = {77};
    print_message("test_rollup_query: seed 77\n");
    for (int64_t t = 0; t < 64000; t += 7) {
        mk_point p = {ids[mk_rng_below(&g, 3)], t, (double)mk_rng_below(&g, 4000) / 4 - 300};
        assert_int_equal(mk_db_write(db, &p, 1, &d), MK_OK);
        if (t % 4000 < 7) assert_int_equal(mk_db_flush(db, &d), MK_OK);
    }
    assert_int_equal(mk_db_flush(db, &d), MK_OK);
    check_all(db); /* no tier built yet: the bucket iterator answers from raw */
    {
        char *e = run(db, "EXPLAIN SELECT mean(v) FROM cpu WHERE time >= 0ms AND time < 8000ms GROUP BY time(1000ms)", 0);
        if (!strstr(e, "tier: raw (no rollup block covers the range yet)")) fail_msg("EXPLAIN before any tier:\n%s", e);
        free(e);
    }
    assert_int_equal(mk_db_compact(db, NULL, &d), MK_OK);
    check_all(db);
    char *s = run(db, "EXPLAIN SELECT mean(v) FROM cpu WHERE time >= 0ms AND time < 8000ms GROUP BY time(1000ms)", 0);
    if (!strstr(s, "tier: rollup 500ms")) fail_msg("EXPLAIN does not name the tier:\n%s", s);
    free(s);
    s = run(db, "EXPLAIN SELECT mean(v) FROM cpu WHERE time >= 0ms AND time < 8000ms GROUP BY time(1000ms)", MK_QUERY_TIER_RAW);
    if (!strstr(s, "tier: raw")) fail_msg("EXPLAIN with raw forced:\n%s", s);
    free(s);
    s = run(db, "EXPLAIN SELECT median(v) FROM cpu WHERE time >= 0ms AND time < 8000ms GROUP BY time(1000ms)", 0);
    if (!strstr(s, "tier: raw")) fail_msg("EXPLAIN median:\n%s", s);
    free(s);
    /* the tier was really read: EXPLAIN ANALYZE counts chunks from summaries */
    s = run(db, "EXPLAIN ANALYZE SELECT count(v) FROM cpu WHERE time >= 0ms AND time < 64000ms GROUP BY time(1000ms)", 0);
    if (!strstr(s, "chunks from summaries") || strstr(s, "chunks from summaries 0,")) fail_msg("no tier chunks read:\n%s", s);
    free(s);
    /* late data over rolled-up windows: answered right before and after the
     * tiers catch up */
    for (int k = 0; k < 500; k++) {
        mk_point p = {ids[mk_rng_below(&g, 3)], (int64_t)mk_rng_below(&g, 64000), (double)mk_rng_below(&g, 4000) / 4};
        assert_int_equal(mk_db_write(db, &p, 1, &d), MK_OK);
    }
    check_all(db); /* in the head */
    assert_int_equal(mk_db_flush(db, &d), MK_OK);
    check_all(db); /* sealed, tiers stale */
    assert_int_equal(mk_db_compact(db, NULL, &d), MK_OK);
    check_all(db); /* rebuilt */
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

/* The default density rule: with raw data kept forever, a series sampled
 * fewer than 16 times per tier bucket gets no buckets in that tier (they
 * would cost more than its samples); its queries are answered from raw, the
 * same as raw forced, while a dense series is read from the tier. */
static void test_sparse(void **state)
{
    (void)state;
    char *dir = mk_test_dir("rollup_sparse");
    mk_options o;
    mk_options_init(&o);
    o.fsync = MK_FSYNC_OFF;
    o.block_span_ms = 1000;
    o.seal_gap_ms = -1;
    o.is_compaction_off = 1;
    o.compact_ranges_ms[0] = 4000;
    o.compact_ranges_ms[1] = 16000;
    o.rollup_steps_ms[0] = 100;
    o.rollup_steps_ms[1] = 500;
    mk_db *db = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, &o, &db, &d), MK_OK);
    uint64_t dense, sparse;
    mk_tag td = {"host", "dense"}, ts = {"host", "sparse"};
    assert_int_equal(mk_db_series(db, "cpu", &td, 1, "v", &dense, &d), MK_OK);
    assert_int_equal(mk_db_series(db, "cpu", &ts, 1, "v", &sparse, &d), MK_OK);
    for (int64_t t = 0; t < 32000; t += 5) {
        mk_point p = {dense, t, (double)(t % 97) / 4};
        assert_int_equal(mk_db_write(db, &p, 1, &d), MK_OK);
        if (t % 50 == 0) { /* 2 per 100 ms bucket, 10 per 500 ms bucket: under 16 */
            mk_point q = {sparse, t, (double)(t % 89) / 4};
            assert_int_equal(mk_db_write(db, &q, 1, &d), MK_OK);
        }
    }
    assert_int_equal(mk_db_flush(db, &d), MK_OK);
    assert_int_equal(mk_db_compact(db, NULL, &d), MK_OK);
    same_both_ways(db, "SELECT count(v), sum(v), min(v), max(v), mean(v) FROM cpu WHERE time >= 0ms AND time < 32000ms GROUP BY time(500ms), host");
    same_both_ways(db, "SELECT max(v) FROM cpu WHERE host = 'sparse' AND time >= 0ms AND time < 32000ms GROUP BY time(100ms)");
    char *s = run(db, "EXPLAIN ANALYZE SELECT count(v) FROM cpu WHERE host = 'dense' AND time >= 0ms AND time < 32000ms GROUP BY time(500ms)", 0);
    if (!strstr(s, "chunks from summaries") || strstr(s, "chunks from summaries 0,")) fail_msg("dense: no tier chunks read:\n%s", s);
    free(s);
    s = run(db, "EXPLAIN ANALYZE SELECT count(v) FROM cpu WHERE host = 'sparse' AND time >= 0ms AND time < 32000ms GROUP BY time(500ms)", 0);
    if (!strstr(s, "chunks from summaries 0,")) fail_msg("sparse: read from a tier it should not have:\n%s", s);
    free(s);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_planner), cmocka_unit_test(test_sparse)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

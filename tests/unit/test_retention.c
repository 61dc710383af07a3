/*
 * tests/unit/test_retention.c — retention with a fake clock (mk_faultenv's
 * fake_now_ms). Blocks are made with known time ranges (one window each);
 * the expected survivors are computed independently from the policy's
 * definition (a block goes iff now > max_ts + retention; size: oldest max_ts
 * first, the newest block kept) and compared with the block files left and
 * with every sample read back (the reference's samples of kept windows).
 * Across: an age boundary exactly at a block's max_ts, a clock set back, a
 * sample timestamped far in the future, a clock jump forward, the size
 * cap, a dry run, retention after compaction, and the background thread.
 */
#include "testutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block.h"
#include "meerkat/meerkat.h"
#include "retention.h"

#define SPAN 1000
#define N_WIN 12
#define PER_WIN 50

typedef struct fx {
    char *dir;
    mk_faultenv fe;
    mk_options o;
    mk_db *db;
    uint64_t id;
} fx;

static void fx_open(fx *f)
{
    mk_diag d = {0};
    if (mk_db_open(f->dir, &f->o, &f->db, &d)) fail_msg("open: %s", d.msg);
    mk_tag t = {"host", "a"};
    assert_int_equal(mk_db_series(f->db, "m", &t, 1, "v", &f->id, &d), MK_OK);
}

static void fx_init(fx *f, const char *name)
{
    memset(f, 0, sizeof *f);
    f->dir = mk_test_dir(name);
    mk_faultenv_init(&f->fe);
    f->fe.fake_now_ms = 1000000;
    mk_options_init(&f->o);
    f->o.env = &f->fe.env;
    f->o.fsync = MK_FSYNC_OFF;
    f->o.block_span_ms = SPAN;
    f->o.seal_gap_ms = -1;
    f->o.is_compaction_off = 1;
    fx_open(f);
    /* window w holds ts w*SPAN + 10*i, i < PER_WIN: one block per window */
    mk_diag d = {0};
    for (int w = 0; w < N_WIN; w++) {
        for (int i = 0; i < PER_WIN; i++) {
            mk_point p = {f->id, (int64_t)w * SPAN + 10 * i, w * 1000.0 + i};
            assert_int_equal(mk_db_write(f->db, &p, 1, &d), MK_OK);
        }
        assert_int_equal(mk_db_flush(f->db, &d), MK_OK);
    }
}

static void fx_done(fx *f)
{
    mk_diag d = {0};
    if (f->db) assert_int_equal(mk_db_close(f->db, &d), MK_OK);
    mk_test_rmrf(f->dir);
    free(f->dir);
}

/* Which windows still read back whole (1) or not at all (0); a partial
 * window fails the test. */
static void read_windows(fx *f, int *kept)
{
    int n[N_WIN] = {0};
    mk_iter *it = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_iter(f->db, f->id, INT64_MIN, INT64_MAX, &it, &d), MK_OK);
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t m;
        assert_int_equal(mk_iter_next(it, &ts, &v, &m, &d), MK_OK);
        if (!m) break;
        for (size_t i = 0; i < m; i++) {
            if (ts[i] >= (int64_t)N_WIN * SPAN) continue; /* the future sample */
            int w = (int)(ts[i] / SPAN);
            assert_true(w >= 0 && w < N_WIN);
            assert_true(v[i] == w * 1000.0 + (double)((ts[i] % SPAN) / 10));
            n[w]++;
        }
    }
    mk_iter_free(it);
    for (int w = 0; w < N_WIN; w++) {
        if (n[w] != 0 && n[w] != PER_WIN) fail_msg("window %d partly there (%d samples)", w, n[w]);
        kept[w] = n[w] == PER_WIN;
    }
}

static size_t count_blocks(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/blocks", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strlen(e->d_name) == 20 && strcmp(e->d_name + 16, ".mkb") == 0;
    closedir(d);
    return n;
}

static uint64_t n_drop_cb;
static void on_drop(void *ctx, const mk_retention_drop *d)
{
    (void)ctx;
    (void)d;
    n_drop_cb++;
}

/* Expected by definition: window w (max_ts w*SPAN + 490) goes iff
 * now > max_ts + ret. */
static void expect_age(const int *kept, int64_t now, int64_t ret)
{
    for (int w = 0; w < N_WIN; w++) {
        int64_t max_ts = (int64_t)w * SPAN + 10 * (PER_WIN - 1);
        int want = !(now > max_ts + ret);
        if (kept[w] != want) fail_msg("now %" PRId64 " ret %" PRId64 ": window %d kept %d, want %d", now, ret, w, kept[w], want);
    }
}

static void test_age_and_clock(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "ret_age");
    int kept[N_WIN];
    mk_diag d = {0};
    uint64_t n = 0;
    /* no policy: nothing goes, even with the clock far ahead */
    f.fe.fake_now_ms = INT64_MAX / 2;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_int_equal(n, 0);
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);

    f.o.retention_raw_ms = 5000;
    fx_open(&f);
    /* a sample far in the future (in the head) expires nothing */
    mk_point fut = {f.id, 1000000000000LL, 1};
    assert_int_equal(mk_db_write(f.db, &fut, 1, &d), MK_OK);
    f.fe.fake_now_ms = 3000; /* every block is younger than 5 s */
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_int_equal(n, 0);
    /* exactly at a boundary: window 3's max_ts is 3490; 3490 + 5000 = 8490 */
    f.fe.fake_now_ms = 8490;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    read_windows(&f, kept);
    expect_age(kept, 8490, 5000);
    assert_int_equal(n, 3);
    f.fe.fake_now_ms = 8491;
    n_drop_cb = 0;
    /* a dry run reports and changes nothing */
    assert_int_equal(mk_db_retention(f.db, 1, on_drop, NULL, &n, &d), MK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(n_drop_cb, 1);
    read_windows(&f, kept);
    expect_age(kept, 8490, 5000);
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    read_windows(&f, kept);
    expect_age(kept, 8491, 5000);
    /* the clock set back: nothing more goes */
    f.fe.fake_now_ms = 100;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_int_equal(n, 0);
    read_windows(&f, kept);
    expect_age(kept, 8491, 5000);
    /* forward again by a little: exactly the policy */
    f.fe.fake_now_ms = 11000;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    read_windows(&f, kept);
    expect_age(kept, 11000, 5000);
    /* the future sample is still there, and the block files match */
    assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
    mk_db_stats st;
    mk_db_stats_get(f.db, &st);
    assert_int_equal(count_blocks(f.dir), st.n_blocks);
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    /* after a reopen too */
    fx_open(&f);
    read_windows(&f, kept);
    expect_age(kept, 11000, 5000);
    fx_done(&f);
}

static void test_size_cap(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "ret_size");
    mk_diag d = {0};
    /* sizes of the blocks, oldest window first (they hold one window each) */
    char path[4096];
    uint64_t sz[N_WIN] = {0}, total = 0;
    {
        snprintf(path, sizeof path, "%s/blocks", f.dir);
        DIR *dd = opendir(path);
        struct dirent *e;
        while ((e = readdir(dd))) {
            if (strlen(e->d_name) != 20) continue;
            char p2[8192];
            snprintf(p2, sizeof p2, "%s/%s", path, e->d_name);
            mk_block *b = NULL;
            assert_int_equal(mk_block_open(mk_env_default(), p2, &b, &d), MK_OK);
            int w = (int)(mk_block_min_ts(b) / SPAN);
            sz[w] = mk_block_file_bytes(b);
            total += sz[w];
            mk_block_close(b);
        }
        closedir(dd);
    }
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    uint64_t cap = total - sz[0] - sz[1] - sz[2] / 2; /* windows 0, 1, 2 must go */
    f.o.retention_max_bytes = cap;
    fx_open(&f);
    uint64_t n = 0;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_int_equal(n, 3);
    int kept[N_WIN];
    read_windows(&f, kept);
    for (int w = 0; w < N_WIN; w++) assert_int_equal(kept[w], w >= 3);
    /* a cap below the newest block keeps the newest */
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    f.o.retention_max_bytes = 1;
    fx_open(&f);
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    read_windows(&f, kept);
    for (int w = 0; w < N_WIN; w++) assert_int_equal(kept[w], w == N_WIN - 1);
    fx_done(&f);
}

/* After compaction merged windows into one block, that block goes only
 * when its newest sample is past the policy. */
static void test_after_compaction(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "ret_compact");
    mk_diag d = {0};
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    f.o.compact_ranges_ms[0] = 4 * SPAN; /* windows 0-3, 4-7, 8-11 */
    f.o.retention_raw_ms = 2000;
    fx_open(&f);
    assert_int_equal(mk_db_compact(f.db, NULL, &d), MK_OK);
    mk_db_stats st;
    mk_db_stats_get(f.db, &st);
    assert_int_equal(st.n_blocks, 3);
    /* window 2's max_ts + 2000 passed, window 3's not: the 0-3 block stays */
    f.fe.fake_now_ms = 3 * SPAN + 490 + 2000;
    uint64_t n = 0;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_int_equal(n, 0);
    f.fe.fake_now_ms++;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_int_equal(n, 1);
    int kept[N_WIN];
    read_windows(&f, kept);
    for (int w = 0; w < N_WIN; w++) assert_int_equal(kept[w], w >= 4);
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    f.db = NULL;
    assert_int_equal(count_blocks(f.dir), 2);
    fx_done(&f);
}

/* The background thread applies the policy on its own. */
static void test_thread(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "ret_thread");
    mk_diag d = {0};
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    f.o.is_compaction_off = 0;
    f.o.compact_interval_ms = 5;
    f.o.compact_ranges_ms[0] = 64 * SPAN; /* no window finishes: no merge */
    f.o.retention_raw_ms = 5000;
    f.fe.fake_now_ms = 9000;
    fx_open(&f);
    int kept[N_WIN];
    int64_t t0 = mk_test_mono_ms();
    for (;;) {
        read_windows(&f, kept);
        if (!kept[3]) break;
        if (mk_test_mono_ms() - t0 > 10000) fail_msg("the thread did not apply retention within 10 s");
        usleep(5000);
    }
    expect_age(kept, 9000, 5000);
    fx_done(&f);
}

/* The planner alone, on known layouts. */
static void test_plan(void **state)
{
    (void)state;
    mk_compact_blk v[] = {{1, 0, 99, 10}, {2, 100, 199, 10}, {3, 200, 299, 10}, {4, 50, 120, 10}};
    char why[4];
    assert_int_equal(mk_retention_plan(v, 4, 150, 50, 0, why), 1); /* 99 + 50 < 150 */
    assert_int_equal(why[0], 'a');
    assert_int_equal(mk_retention_plan(v, 4, 149, 50, 0, why), 0);
    /* 4's max 120 + 50 < 171 */
    assert_int_equal(mk_retention_plan(v, 4, 171, 50, 0, why), 2);
    assert_int_equal(why[3], 'a');
    /* size: 40 bytes, cap 25: the two oldest by max_ts go (1 then 4) */
    assert_int_equal(mk_retention_plan(v, 4, 0, 0, 25, why), 2);
    assert_int_equal(why[0], 's');
    assert_int_equal(why[3], 's');
    assert_int_equal(why[1], 0);
    /* overflow-safe: max_ts near the end of time */
    mk_compact_blk w[] = {{1, 0, INT64_MAX - 5, 1}};
    assert_int_equal(mk_retention_plan(w, 1, INT64_MAX, 100, 0, why), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_age_and_clock),
        cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_after_compaction),
        cmocka_unit_test(test_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

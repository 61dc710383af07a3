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
    f->o.is_rollup_off = 1; /* raw retention alone (test_rollup_first: with tiers) */
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
static void read_windows_from(fx *f, int *kept, int from_w);
static void read_windows(fx *f, int *kept) { read_windows_from(f, kept, 0); }

/* As read_windows, for windows from_w.. only. */
static void read_windows_from(fx *f, int *kept, int from_w)
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
            if (ts[i] < (int64_t)from_w * SPAN) continue;
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
    assert_int_equal(mk_retention_plan(v, 4, 150, 50, 0, NULL, why), 1); /* 99 + 50 < 150 */
    assert_int_equal(why[0], 'a');
    assert_int_equal(mk_retention_plan(v, 4, 149, 50, 0, NULL, why), 0);
    /* 4's max 120 + 50 < 171, but 4 (seq 4) overlaps 2 (seq 2, max 199),
     * which stays: 4 waits for it (issue 4: dropping 4 first would show
     * 2's overwritten values again) */
    assert_int_equal(mk_retention_plan(v, 4, 171, 50, 0, NULL, why), 1);
    assert_int_equal(why[3], 0);
    /* 2's max 199 + 50 < 250: 2 and 4 go together */
    assert_int_equal(mk_retention_plan(v, 4, 250, 50, 0, NULL, why), 3);
    assert_int_equal(why[1], 'a');
    assert_int_equal(why[3], 'a');
    /* pinned (not rolled up yet): 1 stays, and so does 4, which overlaps
     * it with a higher seq; 2 goes */
    const char pin[4] = {1, 0, 0, 0};
    assert_int_equal(mk_retention_plan(v, 4, 250, 50, 0, pin, why), 1);
    assert_int_equal(why[1], 'a');
    assert_int_equal(why[3], 0);
    assert_int_equal(mk_retention_plan(v, 4, 0, 0, 15, pin, why), 1); /* size: only 2 can go */
    assert_int_equal(why[1], 's');
    /* order of v does not matter; a chain: 7 (seq 7) over 6 over 5 */
    mk_compact_blk c[] = {{7, 40, 45, 1}, {5, 0, 100, 1}, {6, 30, 50, 1}};
    assert_int_equal(mk_retention_plan(c, 3, 120, 60, 0, NULL, why), 0);  /* 6, 7 past, 5 not */
    assert_int_equal(mk_retention_plan(c, 3, 161, 60, 0, NULL, why), 3);
    /* a lower seq overlapping a higher one that stays goes alone */
    mk_compact_blk e[] = {{1, 0, 10, 1}, {2, 5, 100, 1}};
    assert_int_equal(mk_retention_plan(e, 2, 80, 60, 0, NULL, why), 1);
    assert_int_equal(why[0], 'a');
    /* size: 40 bytes, cap 25: the oldest by max_ts goes (1); 4 (max 120)
     * overwrote part of 2 (seq 2 < 4, overlapping): it may not go while 2
     * stays, so 2 goes next (3 holds the newest data) */
    assert_int_equal(mk_retention_plan(v, 4, 0, 0, 25, NULL, why), 2);
    assert_int_equal(why[0], 's');
    assert_int_equal(why[1], 's');
    assert_int_equal(why[3], 0);
    /* cap 15: then 4, free now */
    assert_int_equal(mk_retention_plan(v, 4, 0, 0, 15, NULL, why), 3);
    assert_int_equal(why[3], 's');
    assert_int_equal(why[2], 0);
    /* overflow-safe: max_ts near the end of time */
    mk_compact_blk w[] = {{1, 0, INT64_MAX - 5, 1}};
    assert_int_equal(mk_retention_plan(w, 1, INT64_MAX, 100, 0, NULL, why), 0);
}

/* Issue 4: a backfill block (seq 13, ts 0..200) overwrote values of
 * window 0's block (seq 1, ts 0..490). By age it is past the policy first,
 * by size it is the oldest max_ts: either way dropping it alone showed
 * window 0's old values again. */
static void check_window0(fx *f, int is_old_part, int is_new_part)
{
    mk_iter *it = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_iter(f->db, f->id, 0, SPAN, &it, &d), MK_OK);
    int n_old = 0, n_new = 0;
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t m;
        assert_int_equal(mk_iter_next(it, &ts, &v, &m, &d), MK_OK);
        if (!m) break;
        for (size_t i = 0; i < m; i++) {
            int k = (int)(ts[i] / 10);
            if (ts[i] <= 200) {
                if (v[i] != 0.5 + k) fail_msg("ts %" PRId64 ": %g, an overwritten value", ts[i], v[i]);
                n_new++;
            } else {
                assert_true(v[i] == (double)k);
                n_old++;
            }
        }
    }
    mk_iter_free(it);
    assert_int_equal(n_new, is_new_part ? 21 : 0);
    assert_int_equal(n_old, is_old_part ? PER_WIN - 21 : 0);
}

static void backfill_window0(fx *f)
{
    mk_diag d = {0};
    for (int i = 0; i <= 20; i++) {
        mk_point p = {f->id, 10 * i, 0.5 + i};
        assert_int_equal(mk_db_write(f->db, &p, 1, &d), MK_OK);
    }
    assert_int_equal(mk_db_flush(f->db, &d), MK_OK);
}

static void test_issue4_backfill_age(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "ret_bf_age");
    mk_diag d = {0};
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    f.o.retention_raw_ms = 5000;
    fx_open(&f);
    backfill_window0(&f);
    check_window0(&f, 1, 1);
    uint64_t n = 0;
    f.fe.fake_now_ms = 200 + 5000 + 1; /* the backfill block is past the policy */
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_int_equal(n, 0);
    check_window0(&f, 1, 1);
    f.fe.fake_now_ms = 490 + 5000 + 1; /* now window 0's block too: both go */
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_int_equal(n, 2);
    check_window0(&f, 0, 0);
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    fx_open(&f);
    check_window0(&f, 0, 0);
    fx_done(&f);
}

static void test_issue4_backfill_size(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "ret_bf_size");
    backfill_window0(&f);
    mk_db_stats st;
    mk_db_stats_get(f.db, &st);
    assert_int_equal(st.n_blocks, N_WIN + 1);
    mk_diag d = {0};
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    /* sizes by seq: 1..12 the windows, 13 the backfill */
    uint64_t sz[N_WIN + 2] = {0}, total = 0;
    char path[4096];
    for (int s = 1; s <= N_WIN + 1; s++) {
        snprintf(path, sizeof path, "%s/blocks/%016x.mkb", f.dir, s);
        mk_block *b = NULL;
        assert_int_equal(mk_block_open(mk_env_default(), path, &b, &d), MK_OK);
        sz[s] = mk_block_file_bytes(b);
        total += sz[s];
        mk_block_close(b);
    }
    /* room for all but the backfill block. The oldest max_ts is the
     * backfill's, but window 0's block (older seq) must go first; if that
     * frees enough, the backfill stays, else it goes next. */
    print_message("  window 0's block %" PRIu64 " bytes, the backfill's %" PRIu64 "\n", sz[1], sz[N_WIN + 1]);
    int is_one = sz[1] >= sz[N_WIN + 1];
    f.o.retention_max_bytes = total - sz[N_WIN + 1];
    fx_open(&f);
    uint64_t n = 0;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_int_equal(n, is_one ? 1 : 2);
    check_window0(&f, 0, is_one);
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    f.db = NULL;
    snprintf(path, sizeof path, "%s/blocks/%016x.mkb", f.dir, 1);
    assert_int_equal(access(path, F_OK), -1); /* unlinked at once */
    fx_open(&f);
    check_window0(&f, 0, is_one);
    int kept[N_WIN]; /* windows 1.. are whole */
    read_windows_from(&f, kept, 1);
    for (int w = 1; w < N_WIN; w++) assert_int_equal(kept[w], 1);
    fx_done(&f);
}

/* A sample far in the future (a microsecond timestamp taken for ms:
 * ~1.7e15, year 55000) after today's, in the same in-order head chunk:
 * sealing it used to visit every window between (hours; db.c seal plan),
 * now only the samples' own. It is sealed, read back, and expires
 * nothing. */
static void test_far_future_sample(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "ret_far_future");
    mk_diag d = {0};
    const int64_t far = 1700000000000000LL;
    mk_point p[2] = {{f.id, (int64_t)N_WIN * SPAN + 5, 1}, {f.id, far, 2}};
    assert_int_equal(mk_db_write(f.db, p, 2, &d), MK_OK);
    assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
    assert_int_equal(mk_db_close(f.db, &d), MK_OK);
    f.o.retention_raw_ms = 5000;
    fx_open(&f);
    f.fe.fake_now_ms = 8491; /* windows 0-3 are past the policy */
    uint64_t n = 0;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    int kept[N_WIN];
    read_windows(&f, kept);
    expect_age(kept, 8491, 5000);
    mk_iter *it = NULL;
    assert_int_equal(mk_db_iter(f.db, f.id, (int64_t)N_WIN * SPAN, INT64_MAX, &it, &d), MK_OK);
    int64_t gt[3];
    double gv[3];
    size_t k = 0;
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t m;
        assert_int_equal(mk_iter_next(it, &ts, &v, &m, &d), MK_OK);
        if (!m) break;
        for (size_t i = 0; i < m && k < 3; i++, k++) { gt[k] = ts[i]; gv[k] = v[i]; }
    }
    mk_iter_free(it);
    assert_int_equal(k, 2);
    assert_true(gt[0] == (int64_t)N_WIN * SPAN + 5 && gv[0] == 1 && gt[1] == far && gv[1] == 2);
    fx_done(&f);
}

/* Rollups first: raw data past the policy stays until its rollup window
 * is in every tier (tiers are built for finished windows only; dropping
 * raw before would lose it from every tier). Rollup window 4 s (the
 * compaction range), one tier of 1 s buckets. */
static void test_rollup_first(void **state)
{
    (void)state;
    fx f;
    memset(&f, 0, sizeof f);
    f.dir = mk_test_dir("ret_rollup_first");
    mk_faultenv_init(&f.fe);
    f.fe.fake_now_ms = 1000000; /* every block is past 2 s */
    mk_options_init(&f.o);
    f.o.env = &f.fe.env;
    f.o.fsync = MK_FSYNC_OFF;
    f.o.block_span_ms = SPAN;
    f.o.seal_gap_ms = -1;
    f.o.is_compaction_off = 1;
    f.o.compact_ranges_ms[0] = 4 * SPAN;
    f.o.rollup_steps_ms[0] = 1000;
    f.o.rollup_min_density = 1;
    f.o.retention_raw_ms = 2000;
    fx_open(&f);
    mk_diag d = {0};
    for (int w = 0; w < N_WIN; w++) {
        for (int i = 0; i < PER_WIN; i++) {
            mk_point p = {f.id, (int64_t)w * SPAN + 10 * i, w * 1000.0 + i};
            assert_int_equal(mk_db_write(f.db, &p, 1, &d), MK_OK);
        }
        assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
        if (w == 7) assert_int_equal(mk_db_compact(f.db, NULL, &d), MK_OK); /* rolls up windows 0-7 */
    }
    uint64_t n = 0;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    int kept[N_WIN];
    read_windows(&f, kept);
    for (int w = 0; w < N_WIN; w++) assert_int_equal(kept[w], w >= 8); /* 8-11: not rolled up yet */
    assert_int_equal(mk_db_compact(f.db, NULL, &d), MK_OK);
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n, &d), MK_OK);
    assert_true(n >= 1);
    read_windows(&f, kept);
    for (int w = 0; w < N_WIN; w++) assert_int_equal(kept[w], 0);
    /* and every window is in the tier: 1 s buckets of 50 samples, sums
     * by brute force */
    mk_bucket_iter *bi = NULL;
    assert_int_equal(mk_db_iter_buckets(f.db, f.id, 1000, 0, (int64_t)N_WIN * SPAN, &bi, &d), MK_OK);
    int n_b = 0;
    for (;;) {
        const mk_bucket *b;
        size_t k;
        assert_int_equal(mk_bucket_iter_next(bi, &b, &k, &d), MK_OK);
        if (!k) break;
        for (size_t i = 0; i < k; i++, n_b++) {
            int w = (int)(b[i].start_ms / SPAN);
            double sum = 0;
            for (int j = 0; j < PER_WIN; j++) sum += w * 1000.0 + j;
            assert_int_equal(b[i].start_ms, (int64_t)n_b * SPAN);
            assert_int_equal(b[i].count, PER_WIN);
            assert_true(b[i].sum == sum);
        }
    }
    mk_bucket_iter_free(bi);
    assert_int_equal(n_b, N_WIN);
    fx_done(&f);
}

/* ---- against a brute-force reference --------------------------------
 * Random in-order writes, backfills overwriting old timestamps, far-future
 * samples, flushes, forced compactions, and retention runs with a clock
 * that moves forward, jumps, and is set back. After each run, every
 * sample read back must be the last value written at its timestamp (never
 * an overwritten one), every last-written sample whose timestamp is within
 * the policy at the latest clock any run saw (ts + ret >= that clock) must
 * be there, and a run with the clock set back must change nothing. With a
 * size cap instead: never an overwritten value, and the newest sample
 * stays. */
typedef struct wr { int64_t ts; double v; uint64_t order; int s; } wr;

static int cmp_wr(const void *a, const void *b)
{
    const wr *x = a, *y = b;
    if (x->s != y->s) return x->s - y->s;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

typedef struct got { int64_t ts; double v; } got;

/* Reads series s whole into *g (malloc'ed); returns the count. */
static size_t read_all(mk_db *db, uint64_t id, got **g)
{
    size_t n = 0, cap = 1024;
    *g = malloc(cap * sizeof **g);
    mk_iter *it = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_iter(db, id, INT64_MIN, INT64_MAX, &it, &d), MK_OK);
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t m;
        assert_int_equal(mk_iter_next(it, &ts, &v, &m, &d), MK_OK);
        if (!m) break;
        for (size_t i = 0; i < m; i++) {
            if (n == cap) *g = realloc(*g, (cap *= 2) * sizeof **g);
            (*g)[n++] = (got){ts[i], v[i]};
        }
    }
    mk_iter_free(it);
    return n;
}

static void run_reference(uint64_t seed, int is_size)
{
    print_message("test_retention reference: seed %" PRIu64 " size cap %d\n", seed, is_size);
    mk_rng g = {seed};
    const int64_t ret = 3000;
    char name[64];
    snprintf(name, sizeof name, "ret_ref_%d", is_size);
    char *dir = mk_test_dir(name);
    mk_faultenv fe;
    mk_faultenv_init(&fe);
    fe.fake_now_ms = 1;
    mk_options o;
    mk_options_init(&o);
    o.env = &fe.env;
    o.fsync = MK_FSYNC_OFF;
    o.block_span_ms = SPAN;
    o.seal_gap_ms = -1;
    o.is_compaction_off = 1;
    o.is_rollup_off = 1;
    o.compact_ranges_ms[0] = 4 * SPAN;
    if (is_size) o.retention_max_bytes = 3000;
    else o.retention_raw_ms = ret;
    mk_db *db = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, &o, &db, &d), MK_OK);
    uint64_t ids[2];
    for (int s = 0; s < 2; s++) {
        mk_tag t = {"host", s ? "b" : "a"};
        assert_int_equal(mk_db_series(db, "m", &t, 1, "v", &ids[s], &d), MK_OK);
    }
    wr *w = NULL;
    size_t n_w = 0, cap_w = 0;
    uint64_t order = 0;
    int64_t data_now = 0, max_clock = INT64_MIN;
    int n_runs = 0, n_kept_past = 0, n_past = 0;
    for (int step = 0; step < 300; step++) {
        int op = (int)mk_rng_below(&g, 20);
        mk_point p[32];
        size_t n = 1 + mk_rng_below(&g, 32);
        for (size_t i = 0; i < n; i++) {
            int s = (int)mk_rng_below(&g, 2);
            int64_t ts;
            if (op < 12) ts = (data_now += 1 + (int64_t)mk_rng_below(&g, 30));
            else if (op < 18) ts = (int64_t)mk_rng_below(&g, (uint64_t)data_now + 1) / 10 * 10; /* backfill */
            else ts = data_now + 1000000000LL + (int64_t)mk_rng_below(&g, 1000) * 10; /* the future */
            double v = (double)(order + 1);
            p[i] = (mk_point){ids[s], ts, v};
            if (n_w == cap_w) w = realloc(w, (cap_w = cap_w ? 2 * cap_w : 1024) * sizeof *w);
            w[n_w++] = (wr){ts, v, order++, s};
        }
        assert_int_equal(mk_db_write(db, p, n, &d), MK_OK);
        if (mk_rng_below(&g, 4) == 0) assert_int_equal(mk_db_flush(db, &d), MK_OK);
        if (mk_rng_below(&g, 25) == 0) assert_int_equal(mk_db_compact(db, NULL, &d), MK_OK);
        if (mk_rng_below(&g, 5) != 0) continue;
        /* the clock: around the data's time, sometimes a jump ahead,
         * sometimes set back */
        int64_t clock = data_now + (int64_t)mk_rng_below(&g, 2 * ret);
        int k = (int)mk_rng_below(&g, 10);
        if (k == 0) clock += 20 * ret;
        if (k == 1 && max_clock > INT64_MIN) clock = max_clock - (int64_t)mk_rng_below(&g, 4 * ret) - 1;
        fe.fake_now_ms = clock;
        size_t n_before[2] = {0};
        got *bef[2] = {NULL, NULL};
        for (int s = 0; s < 2; s++) n_before[s] = read_all(db, ids[s], &bef[s]);
        uint64_t n_drop = 0;
        assert_int_equal(mk_db_retention(db, 0, NULL, NULL, &n_drop, &d), MK_OK);
        if (clock > max_clock) max_clock = clock;
        n_runs++;
        /* the reference: last write per (series, ts) */
        qsort(w, n_w, sizeof *w, cmp_wr);
        n_kept_past = n_past = 0;
        for (int s = 0; s < 2; s++) {
            got *gv = NULL;
            size_t n_g = read_all(db, ids[s], &gv);
            /* what this run took was past the policy by this run's clock
             * (so a clock set back or a future sample takes nothing more) */
            for (size_t a = 0, b = 0; !is_size && a < n_before[s]; a++) {
                while (b < n_g && gv[b].ts < bef[s][a].ts) b++;
                if (b < n_g && gv[b].ts == bef[s][a].ts) continue;
                if (!(bef[s][a].ts + ret < clock))
                    fail_msg("seed %" PRIu64 " step %d: series %d ts %" PRId64 " dropped at clock %" PRId64 " (within the policy)", seed, step, s, bef[s][a].ts, clock);
            }
            size_t j = 0;
            int64_t newest_ts = INT64_MIN;
            for (size_t i = 0; i < n_w; i++) {
                if (w[i].s != s || (i + 1 < n_w && w[i + 1].s == s && w[i + 1].ts == w[i].ts)) continue;
                /* w[i] is the last write of (s, ts) */
                while (j < n_g && gv[j].ts < w[i].ts) {
                    fail_msg("seed %" PRIu64 " step %d: series %d: ts %" PRId64 " read but never written", seed, step, s, gv[j].ts);
                }
                int is_there = j < n_g && gv[j].ts == w[i].ts;
                if (is_there && gv[j].v != w[i].v)
                    fail_msg("seed %" PRIu64 " step %d: series %d ts %" PRId64 ": %g, an overwritten value (last write %g)", seed, step, s, w[i].ts, gv[j].v, w[i].v);
                if (!is_size && !is_there && w[i].ts > INT64_MIN + ret && w[i].ts + ret >= max_clock)
                    fail_msg("seed %" PRIu64 " step %d: series %d ts %" PRId64 " within the policy (clock %" PRId64 ") is gone", seed, step, s, w[i].ts, max_clock);
                if (!is_size && w[i].ts + ret < max_clock) { n_past++; n_kept_past += is_there; }
                if (is_there) j++;
                newest_ts = w[i].ts;
                (void)newest_ts;
            }
            if (j != n_g) fail_msg("seed %" PRIu64 " step %d: series %d: %zu samples read that were never written", seed, step, s, n_g - j);
            free(gv);
            free(bef[s]);
        }
        /* size cap: the newest sample written (of either series) stays */
        if (is_size) {
            int64_t mx = INT64_MIN;
            int ms = 0;
            for (size_t i = 0; i < n_w; i++) if (w[i].ts > mx) { mx = w[i].ts; ms = w[i].s; }
            got *gv = NULL;
            size_t n_g = read_all(db, ids[ms], &gv);
            assert_true(n_g > 0 && gv[n_g - 1].ts == mx);
            free(gv);
        }
    }
    print_message("  %d retention runs, %zu writes; at the last, %d of %d samples past the policy still there (whole blocks)\n",
                  n_runs, n_w, n_kept_past, n_past);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
    free(w);
}

static void test_reference(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) run_reference(seed, 0);
    for (uint64_t seed = 11; seed <= 12; seed++) run_reference(seed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_age_and_clock),
        cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_after_compaction),
        cmocka_unit_test(test_thread),
        cmocka_unit_test(test_issue4_backfill_age),
        cmocka_unit_test(test_issue4_backfill_size),
        cmocka_unit_test(test_far_future_sample),
        cmocka_unit_test(test_rollup_first),
        cmocka_unit_test(test_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

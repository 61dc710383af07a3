/*
 * tests/unit/test_compact.c — compaction checked against a brute-force
 * reference: every written sample kept in a plain array (series, ts, value,
 * write order); the expected content of a series is the last write of each
 * timestamp. Random sequences of in-order, out-of-order and backfill writes
 * (with overwrites of existing timestamps, so that block seq order matters),
 * flushes, forced and background compactions and reopens; after each step
 * every series read back must equal the reference, bit for bit, and the
 * summaries must count each sample once.
 *
 * Also: the planner's choices on known layouts, readers that keep a
 * snapshot across a compaction, a replaced block left behind (as by a
 * crash between rename and unlink) that open removes, and that merged
 * blocks end up with fewer, longer chunks.
 */
#include "testutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "block.h"
#include "compact.h"
#include "meerkat/meerkat.h"

#define N_SERIES 6
#define SPAN_MS 1000

typedef struct rs {
    int s;
    int64_t ts;
    double v;
    uint64_t order;
} rs;

typedef struct ref {
    rs *v;
    size_t n, cap;
    uint64_t next;
} ref;

static void ref_add(ref *r, int s, int64_t ts, double v)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4096;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        assert_non_null(r->v);
    }
    r->v[r->n++] = (rs){s, ts, v, r->next++};
}

static int cmp_rs(const void *a, const void *b)
{
    const rs *x = a, *y = b;
    if (x->s != y->s) return x->s - y->s;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Expected samples of series s: sorted, last write of each ts. */
static size_t ref_expect(ref *r, int s, int64_t *ts, double *v)
{
    qsort(r->v, r->n, sizeof *r->v, cmp_rs);
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i].s != s) continue;
        if (k && ts[k - 1] == r->v[i].ts) { v[k - 1] = r->v[i].v; continue; }
        ts[k] = r->v[i].ts;
        v[k++] = r->v[i].v;
    }
    return k;
}

typedef struct fx {
    char *dir;
    mk_db *db;
    uint64_t ids[N_SERIES];
    mk_options o;
} fx;

/* f over a new test directory named name: blocks of span_ms, no fsync, no
 * seal by gap, no background thread (the caller opens it). */
static void fx_init(fx *f, const char *name, int64_t span_ms)
{
    *f = (fx){0};
    f->dir = mk_test_dir(name);
    mk_options_init(&f->o);
    f->o.fsync = MK_FSYNC_OFF;
    f->o.block_span_ms = span_ms;
    f->o.seal_gap_ms = -1;
    f->o.is_compaction_off = 1;
}

static void fx_open(fx *f)
{
    mk_diag d = {0};
    mk_err rc = mk_db_open(f->dir, &f->o, &f->db, &d);
    if (rc) fail_msg("open: %s", d.msg);
    for (int i = 0; i < N_SERIES; i++) {
        char host[16];
        snprintf(host, sizeof host, "h%d", i);
        mk_tag t = {"host", host};
        assert_int_equal(mk_db_series(f->db, "cpu", &t, 1, "v", &f->ids[i], &d), MK_OK);
    }
}

static void fx_close(fx *f)
{
    mk_diag d = {0};
    mk_err rc = mk_db_close(f->db, &d);
    if (rc) fail_msg("close: %s", d.msg);
    f->db = NULL;
}

static void check_all(fx *f, ref *r, const char *when, uint64_t seed)
{
    size_t cap = r->n + 1;
    int64_t *ts = malloc(cap * sizeof *ts);
    double *v = malloc(cap * sizeof *v);
    assert_true(ts && v);
    for (int s = 0; s < N_SERIES; s++) {
        size_t n = ref_expect(r, s, ts, v), k = 0;
        mk_iter *it = NULL;
        mk_diag d = {0};
        assert_int_equal(mk_db_iter(f->db, f->ids[s], INT64_MIN, INT64_MAX, &it, &d), MK_OK);
        for (;;) {
            const int64_t *gt;
            const double *gv;
            size_t m;
            mk_err rc = mk_iter_next(it, &gt, &gv, &m, &d);
            if (rc) fail_msg("seed %" PRIu64 " %s: read: %s", seed, when, d.msg);
            if (!m) break;
            for (size_t i = 0; i < m; i++, k++) {
                if (k >= n || gt[i] != ts[k] || memcmp(&gv[i], &v[k], 8) != 0) {
                    for (size_t j = 0; j < r->n; j++)
                        if (r->v[j].s == s && (r->v[j].ts == gt[i] || (k < n && r->v[j].ts == ts[k])))
                            print_message("  history: ts %" PRId64 " = %g (write %" PRIu64 ")\n", r->v[j].ts, r->v[j].v, r->v[j].order);
                    fail_msg("seed %" PRIu64 " %s: series %d sample %zu: got (%" PRId64 ", %g) want (%" PRId64 ", %g)",
                             seed, when, s, k, gt[i], gv[i], k < n ? ts[k] : -1, k < n ? v[k] : -1.0);
                }
            }
        }
        if (k != n) fail_msg("seed %" PRIu64 " %s: series %d: %zu samples, want %zu", seed, when, s, k, n);
        mk_iter_free(it);
        /* summaries over a middle range count each sample once */
        int64_t from = n ? ts[n / 3] : 0, to = n ? ts[n - 1 - n / 4] + 1 : 1;
        uint64_t want = 0, got = 0;
        for (size_t i = 0; i < n; i++) want += ts[i] >= from && ts[i] < to;
        mk_sum_iter *si = NULL;
        assert_int_equal(mk_db_iter_summaries(f->db, f->ids[s], from, to, &si, &d), MK_OK);
        for (;;) {
            const mk_chunk_summary *cs;
            int dec, has;
            assert_int_equal(mk_sum_iter_next(si, &cs, &dec, &has, &d), MK_OK);
            if (!has) break;
            got += cs->count;
        }
        mk_sum_iter_free(si);
        if (got != want) fail_msg("seed %" PRIu64 " %s: series %d: summaries count %" PRIu64 ", want %" PRIu64, seed, when, s, got, want);
    }
    free(ts);
    free(v);
}

static size_t count_files(const char *dir, const char *suffix)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/blocks", dir);
    DIR *d = opendir(path);
    if (!d) return 0;
    size_t n = 0, ls = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += l > ls && strcmp(e->d_name + l - ls, suffix) == 0;
    }
    closedir(d);
    return n;
}

static void write_batch(fx *f, ref *r, mk_rng *g, int64_t *now_ts)
{
    mk_point p[64];
    size_t n = 1 + mk_rng_below(g, 64);
    int kind = (int)mk_rng_below(g, 10); /* 0-5 in order, 6-7 recent ooo, 8 backfill, 9 overwrite */
    for (size_t i = 0; i < n; i++) {
        int s = (int)mk_rng_below(g, N_SERIES);
        int64_t ts;
        if (kind <= 5) ts = (*now_ts += 1 + (int64_t)mk_rng_below(g, 40));
        else if (kind <= 7) ts = *now_ts - (int64_t)mk_rng_below(g, 3 * SPAN_MS);
        else if (kind == 8) ts = (int64_t)mk_rng_below(g, (uint64_t)*now_ts + 1) / 10 * 10;
        else ts = *now_ts - (int64_t)mk_rng_below(g, (uint64_t)*now_ts + 1) / 10 * 10;
        /* a coarse grid for late writes: they hit existing timestamps */
        if (kind > 5) ts -= ts % 10;
        double v = (double)(int64_t)mk_rng_below(g, 100000) / 100;
        if (mk_rng_below(g, 200) == 0) v = NAN;
        p[i] = (mk_point){f->ids[s], ts, v};
        ref_add(r, s, ts, v);
    }
    mk_diag d = {0};
    if (mk_db_write(f->db, p, n, &d)) fail_msg("write: %s", d.msg);
}

static void run_random(uint64_t seed, int is_thread)
{
    print_message("test_compact: seed %" PRIu64 " thread %d\n", seed, is_thread);
    mk_rng g = {seed};
    fx f = {0};
    f.dir = mk_test_dir("compact");
    mk_options_init(&f.o);
    f.o.fsync = MK_FSYNC_OFF;
    f.o.block_span_ms = SPAN_MS;
    f.o.seal_gap_ms = -1;
    f.o.compact_ranges_ms[0] = 4 * SPAN_MS;
    f.o.compact_ranges_ms[1] = 16 * SPAN_MS;
    f.o.is_compaction_off = !is_thread;
    f.o.compact_interval_ms = 5;
    fx_open(&f);
    ref r = {0};
    int64_t now_ts = 100000;
    char when[64];
    mk_compact_stats st = {0};
    for (int step = 0; step < 300; step++) {
        write_batch(&f, &r, &g, &now_ts);
        int op = (int)mk_rng_below(&g, 40);
        mk_diag d = {0};
        if (op == 0 || op == 1) {
            if (mk_db_flush(f.db, &d)) fail_msg("flush: %s", d.msg);
        } else if (op == 2 || op == 3) {
            if (mk_db_compact(f.db, &st, &d)) fail_msg("seed %" PRIu64 ": compact: %s", seed, d.msg);
            snprintf(when, sizeof when, "step %d after compact", step);
            check_all(&f, &r, when, seed);
        } else if (op == 4) {
            fx_close(&f);
            fx_open(&f);
            snprintf(when, sizeof when, "step %d after reopen", step);
            check_all(&f, &r, when, seed);
            /* replaced blocks are gone from the directory too (without
             * the thread, which may be between publishing and unlinking) */
            mk_db_stats ds;
            mk_db_stats_get(f.db, &ds);
            if (!is_thread) assert_int_equal(count_files(f.dir, ".mkb"), ds.n_blocks);
        }
    }
    mk_diag d = {0};
    assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
    mk_db_stats before;
    mk_db_stats_get(f.db, &before);
    if (mk_db_compact(f.db, &st, &d)) fail_msg("compact: %s", d.msg);
    mk_db_stats after;
    mk_db_stats_get(f.db, &after);
    check_all(&f, &r, "end", seed);
    print_message("  blocks %" PRIu64 " -> %" PRIu64 ", %" PRIu64 " merges, %" PRIu64 " blocks in, %" PRIu64 " chunks copied\n",
                  before.n_blocks, after.n_blocks, st.n_merges, st.n_blocks_in, st.n_chunks_copied);
    assert_true(st.n_merges > 0);
    /* a forced run leaves at most one block per top-level window start */
    assert_true(after.n_blocks <= before.n_blocks);
    fx_close(&f);
    fx_open(&f);
    check_all(&f, &r, "end, reopened", seed);
    assert_int_equal(count_files(f.dir, ".tmp"), 0);
    fx_close(&f);
    mk_test_rmrf(f.dir);
    free(f.dir);
    free(r.v);
}

static void test_random_forced(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) run_random(seed, 0);
}

static void test_random_background(void **state)
{
    (void)state;
    run_random(101, 1);
}

/* Planner on known layouts. ranges 4, 16 (span 1). */
static void test_plan(void **state)
{
    (void)state;
    const int64_t ranges[] = {4, 16};
    size_t g[130];
    /* four span blocks of window [0,4), finished: not the top level's
     * window [0,16) (unfinished at 10) but the 4-window */
    mk_compact_blk a[] = {{1, 0, 0, 1}, {2, 1, 1, 1}, {3, 2, 2, 1}, {4, 3, 3, 1}, {5, 4, 4, 1}};
    size_t n = mk_compact_plan(a, 5, 1, ranges, 2, 10, g);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) assert_true(a[g[i]].seq <= 4);
    /* nothing finished */
    assert_int_equal(mk_compact_plan(a, 5, 1, ranges, 2, 3, g), 0);
    /* top window finished: all five at once */
    assert_int_equal(mk_compact_plan(a, 5, 1, ranges, 2, 16, g), 5);
    /* a lone block per window: nothing */
    mk_compact_blk b[] = {{1, 0, 3, 1}, {2, 4, 7, 1}};
    assert_int_equal(mk_compact_plan(b, 2, 1, ranges + 0, 1, 100, g), 0);
    /* a later block overlapping the window from outside joins the group
     * (its seq is above the group's: merging without it would invert order) */
    mk_compact_blk c[] = {{1, 0, 1, 1}, {2, 2, 3, 1}, {3, 3, 5, 1}};
    n = mk_compact_plan(c, 3, 1, ranges, 2, 8, g);
    assert_int_equal(n, 3);
    /* an older straddler (lower seq) need not join */
    mk_compact_blk e[] = {{5, 0, 1, 1}, {6, 2, 3, 1}, {3, 3, 5, 1}};
    n = mk_compact_plan(e, 3, 1, ranges, 2, 8, g);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) assert_true(e[g[i]].seq >= 5);
    /* the ranges: invalid ones are left out, defaults when none given */
    mk_options o;
    mk_options_init(&o);
    int64_t out[MK_MAX_COMPACT_LEVELS];
    assert_int_equal(mk_compact_ranges(&o, out), 2);
    assert_int_equal(out[0], 86400000);
    assert_int_equal(out[1], 7 * 86400000LL);
    o.compact_ranges_ms[0] = 3 * 3600 * 1000; /* not a multiple of 2 h */
    o.compact_ranges_ms[1] = 8 * 3600 * 1000;
    o.compact_ranges_ms[2] = 12 * 3600 * 1000; /* not a multiple of 8 h */
    o.compact_ranges_ms[3] = 24 * 3600 * 1000;
    assert_int_equal(mk_compact_ranges(&o, out), 2);
    assert_int_equal(out[0], 8 * 3600 * 1000);
    assert_int_equal(out[1], 24 * 3600 * 1000);
}

/* An iterator made before a compaction reads its snapshot to the end after
 * the replaced files are gone from the directory. */
static void test_reader_during_compaction(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "compact_reader", SPAN_MS);
    f.o.compact_ranges_ms[0] = 8 * SPAN_MS;
    fx_open(&f);
    ref r = {0};
    mk_diag d = {0};
    for (int64_t t = 0; t < 8 * SPAN_MS; t += 10) {
        mk_point p = {f.ids[0], t, (double)t};
        ref_add(&r, 0, t, (double)t);
        assert_int_equal(mk_db_write(f.db, &p, 1, &d), MK_OK);
        if (t % SPAN_MS == SPAN_MS - 10) assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
    }
    mk_db_stats st;
    mk_db_stats_get(f.db, &st);
    assert_true(st.n_blocks >= 4);
    mk_iter *it = NULL;
    assert_int_equal(mk_db_iter(f.db, f.ids[0], 0, INT64_MAX, &it, &d), MK_OK);
    mk_compact_stats cs = {0};
    assert_int_equal(mk_db_compact(f.db, &cs, &d), MK_OK);
    assert_int_equal(cs.n_merges, 1);
    mk_db_stats_get(f.db, &st);
    assert_int_equal(st.n_blocks, 1);
    int64_t want = 0;
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t n;
        assert_int_equal(mk_iter_next(it, &ts, &v, &n, &d), MK_OK);
        if (!n) break;
        for (size_t i = 0; i < n; i++, want += 10) {
            assert_int_equal(ts[i], want);
            assert_true(v[i] == (double)want);
        }
    }
    assert_int_equal(want, 8 * SPAN_MS);
    mk_iter_free(it);
    /* the old files went with the last reader */
    assert_int_equal(count_files(f.dir, ".mkb"), 1);
    /* merged chunks are longer: 800 samples in one chunk, not eight */
    check_all(&f, &r, "after", 0);
    fx_close(&f);
    mk_test_rmrf(f.dir);
    free(f.dir);
    free(r.v);
}

/* A replaced block whose file survived (crash between the merged block's
 * rename and the unlink) is removed at open and never read twice. */
static void test_leftover_replaced(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "compact_leftover", SPAN_MS);
    f.o.compact_ranges_ms[0] = 4 * SPAN_MS;
    fx_open(&f);
    ref r = {0};
    mk_diag d = {0};
    for (int64_t t = 0; t < 4 * SPAN_MS; t += 100) {
        mk_point p = {f.ids[1], t, (double)t / 3};
        ref_add(&r, 1, t, (double)t / 3);
        assert_int_equal(mk_db_write(f.db, &p, 1, &d), MK_OK);
        if (t % SPAN_MS == SPAN_MS - 100) assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
    }
    fx_close(&f);
    /* keep copies of the small blocks */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/keep && cp %s/blocks/*.mkb %s/keep/", f.dir, f.dir, f.dir);
    assert_int_equal(system(cmd), 0);
    fx_open(&f);
    mk_compact_stats cs = {0};
    assert_int_equal(mk_db_compact(f.db, &cs, &d), MK_OK);
    assert_int_equal(cs.n_merges, 1);
    fx_close(&f);
    assert_int_equal(count_files(f.dir, ".mkb"), 1);
    /* put them back, plus a stale .tmp, as a crash would leave them */
    /* (-n: the merged block took over one name; the rename was atomic) */
    snprintf(cmd, sizeof cmd, "cp -n %s/keep/*.mkb %s/blocks/ && echo x > %s/blocks/00000000000000ff.mkb.tmp", f.dir, f.dir, f.dir);
    assert_int_equal(system(cmd), 0);
    fx_open(&f);
    check_all(&f, &r, "leftovers", 0);
    fx_close(&f);
    assert_int_equal(count_files(f.dir, ".mkb"), 1);
    assert_int_equal(count_files(f.dir, ".tmp"), 0);
    mk_test_rmrf(f.dir);
    free(f.dir);
    free(r.v);
}

/* ---- pacing ------------------------------------------------------------
 * An env whose clock only sleeps move (so the fake seconds count exactly
 * the time pacing waited), and that logs every byte written to a block
 * file with the fake time it was written at. The reference is independent
 * of the pacer: bytes come from the file system (the input blocks' sizes)
 * and from pwrite calls. */

#define PACE_T0_MS 1000000000LL
#define PACE_MAX_S 4096

static struct {
    mk_env env;
    int64_t now_ms;                  /* __atomic */
    pthread_mutex_t mu;
    char is_block_fd[4096];
    char is_rollup_fd[4096];
    uint64_t written_in_s[PACE_MAX_S]; /* bytes written to blocks, by fake second */
    uint64_t n_written;
    uint64_t rollup_written_in_s[PACE_MAX_S]; /* to rollup blocks */
    uint64_t n_rollup_written;
} pe;

static int64_t pe_now(mk_env *e) { (void)e; return __atomic_load_n(&pe.now_ms, __ATOMIC_SEQ_CST); }
static void pe_sleep(mk_env *e, int64_t ms) { (void)e; __atomic_add_fetch(&pe.now_ms, ms, __ATOMIC_SEQ_CST); }
static int pe_open(mk_env *e, const char *path, int flags, int mode)
{
    (void)e;
    int fd = mk_env_default()->open(mk_env_default(), path, flags, mode);
    if (fd >= 0 && fd < 4096) {
        pthread_mutex_lock(&pe.mu);
        pe.is_block_fd[fd] = strstr(path, "/blocks/") != NULL;
        pe.is_rollup_fd[fd] = strstr(path, "/rollup/") != NULL;
        pthread_mutex_unlock(&pe.mu);
    }
    return fd;
}
static ssize_t pe_pwrite(mk_env *e, int fd, const void *b, size_t n, off_t off)
{
    (void)e;
    ssize_t w = mk_env_default()->pwrite(mk_env_default(), fd, b, n, off);
    pthread_mutex_lock(&pe.mu);
    if (w > 0 && fd >= 0 && fd < 4096 && pe.is_block_fd[fd]) {
        int64_t s = (pe_now(NULL) - PACE_T0_MS) / 1000;
        assert_true(s >= 0 && s < PACE_MAX_S);
        pe.written_in_s[s] += (uint64_t)w;
        pe.n_written += (uint64_t)w;
    }
    if (w > 0 && fd >= 0 && fd < 4096 && pe.is_rollup_fd[fd]) {
        int64_t s = (pe_now(NULL) - PACE_T0_MS) / 1000;
        assert_true(s >= 0 && s < PACE_MAX_S);
        pe.rollup_written_in_s[s] += (uint64_t)w;
        pe.n_rollup_written += (uint64_t)w;
    }
    pthread_mutex_unlock(&pe.mu);
    return w;
}

/* pe afresh: the default env with its clock, sleep, open and pwrite. */
static void pe_start(void)
{
    memset(&pe, 0, sizeof pe);
    pthread_mutex_init(&pe.mu, NULL);
    pe.env = *mk_env_default();
    pe.env.open = pe_open;
    pe.env.pwrite = pe_pwrite;
    pe.env.now_ms = pe_now;
    pe.env.sleep_ms = pe_sleep;
    pe.now_ms = PACE_T0_MS;
}

/* Bytes of the block files of dir; *last gets the size of the newest
 * (highest seq) one. */
static uint64_t dir_mkb_bytes(const char *dir, uint64_t *last)
{
    char last_name[256] = "";
    char path[4096];
    snprintf(path, sizeof path, "%s/blocks", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".mkb") != 0) continue;
        char p2[8192];
        snprintf(p2, sizeof p2, "%s/%s", path, e->d_name);
        FILE *f = fopen(p2, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        n += (uint64_t)ftell(f);
        if (strcmp(e->d_name, last_name) > 0) {
            snprintf(last_name, sizeof last_name, "%s", e->d_name);
            *last = (uint64_t)ftell(f);
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* A copy of f's (closed) directory in a new test directory named name,
 * compacted there unpaced: *cs and *st after (the reference of a paced
 * run). The caller frees the name. */
static char *compacted_copy(const fx *f, const char *name, mk_compact_stats *cs, mk_db_stats *st)
{
    char *dir2 = mk_test_dir(name);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -r %s/. %s/", f->dir, dir2);
    assert_int_equal(system(cmd), 0);
    fx f2 = *f;
    f2.dir = dir2;
    fx_open(&f2);
    mk_diag d = {0};
    assert_int_equal(mk_db_compact(f2.db, cs, &d), MK_OK);
    mk_db_stats_get(f2.db, st);
    fx_close(&f2);
    return dir2;
}

/* The background thread at 128 KiB/s: the bytes it reads and writes per
 * fake second stay within the pace (plus the bucket's burst and the write
 * buffer's lag), the whole run takes as long as the pace says, it
 * finishes, and the blocks are byte for byte those of an unpaced run. */
static void test_paced_thread(void **state)
{
    (void)state;
    const uint64_t rate = 128 << 10, burst = rate / 8;
    const int n_win = 16, per = SPAN_MS; /* one sample per ms */
    uint64_t seed = 7;
    print_message("test_paced_thread: seed %" PRIu64 "\n", seed);
    mk_rng g = {seed};
    fx f;
    fx_init(&f, "compact_pace", SPAN_MS);
    f.o.is_rollup_off = 1;
    f.o.compact_ranges_ms[0] = 4 * SPAN_MS; /* one level: each block is read once */
    fx_open(&f);
    ref r = {0};
    mk_diag d = {0};
    /* two blocks per window (a second, later one overwriting some values),
     * random values: chunks that do not compress to nothing. Then one
     * block in window n_win: at open, windows up to its start count as
     * finished (the thread merges only those; the forced run finds
     * nothing to merge in the last one either) */
    for (int w = 0; w <= n_win; w++) {
        for (int pass = 0; pass < (w < n_win ? 2 : 1); pass++) {
            for (int s = 0; s < N_SERIES; s++)
                for (int i = pass; i < per; i += 1 + pass * 6) {
                    int64_t ts = (int64_t)w * SPAN_MS + i;
                    double v = (double)mk_rng_below(&g, 1u << 30) / 1024;
                    mk_point p = {f.ids[s], ts, v};
                    ref_add(&r, s, ts, v);
                    assert_int_equal(mk_db_write(f.db, &p, 1, &d), MK_OK);
                }
            assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
        }
    }
    fx_close(&f);
    uint64_t n_last = 0, n_in = dir_mkb_bytes(f.dir, &n_last);
    n_in -= n_last; /* the last window's block is never read */
    /* the reference: the same directory compacted unpaced */
    mk_compact_stats cs = {0};
    mk_db_stats ref_st;
    char *dir2 = compacted_copy(&f, "compact_pace_ref", &cs, &ref_st);
    assert_int_equal(cs.n_merges, n_win / 4);
    assert_int_equal(cs.n_blocks_in, 2 * n_win);
    char cmd[8192];

    /* paced, by the background thread */
    pe_start();
    f.o.env = &pe.env;
    f.o.is_compaction_off = 0;
    f.o.compact_interval_ms = 5;
    f.o.compact_max_bytes_per_s = rate;
    fx_open(&f);
    int64_t t0 = mk_test_mono_ms();
    for (;;) {
        mk_db_stats st;
        mk_db_stats_get(f.db, &st);
        if (st.n_blocks == ref_st.n_blocks) break;
        if (mk_test_mono_ms() - t0 > 30000) fail_msg("the paced thread did not finish within 30 s");
        usleep(2000);
    }
    fx_close(&f); /* the thread's last unlinks are done once it is joined */
    int64_t elapsed_ms = pe_now(NULL) - PACE_T0_MS;
    uint64_t total = n_in + pe.n_written;
    print_message("  %" PRIu64 " bytes read + %" PRIu64 " written in %" PRId64 " fake ms: %.0f bytes/s (limit %" PRIu64 ")\n",
                  n_in, pe.n_written, elapsed_ms, (double)total * 1000 / (double)elapsed_ms, rate);
    /* as long as the pace says, give or take one burst and the rounding of
     * sleeps to whole ms */
    assert_true((double)total <= (double)rate * (double)elapsed_ms / 1000 + (double)burst);
    assert_true((double)total >= (double)rate * (double)(elapsed_ms - 50) / 1000 - (double)burst);
    /* and evenly: no fake second writes much more than the pace (a chunk
     * of at most 8192 samples and the 64 KiB write buffer may lag) */
    for (int64_t s = 0; s <= elapsed_ms / 1000 && s < PACE_MAX_S; s++)
        if (pe.written_in_s[s] > rate + burst + (96u << 10) + (64u << 10))
            fail_msg("fake second %" PRId64 ": %" PRIu64 " bytes written", s, pe.written_in_s[s]);
    /* the same blocks as unpaced, byte for byte */
    snprintf(cmd, sizeof cmd, "diff -r %s/blocks %s/blocks", f.dir, dir2);
    assert_int_equal(system(cmd), 0);
    f.o.env = NULL;
    fx_open(&f);
    check_all(&f, &r, "paced", seed);
    fx_close(&f);
    pthread_mutex_destroy(&pe.mu);
    mk_test_rmrf(dir2);
    free(dir2);
    mk_test_rmrf(f.dir);
    free(f.dir);
    free(r.v);
}

/* Rollup building is paced too (mk_db_compact at a sync pace of 64 KiB/s,
 * one raw block per window: nothing to merge, so every byte charged is
 * the rollups'): it takes at least the fake time its written bytes need
 * at the pace and at most what those plus every raw block byte need; no
 * fake second writes much more than the pace; the tiers are byte for
 * byte those of an unpaced run. */
static void test_paced_rollups(void **state)
{
    (void)state;
    const uint64_t rate = 64 << 10, burst = rate / 8;
    const int n_win = 12, win = 4 * SPAN_MS;
    uint64_t seed = 11;
    print_message("test_paced_rollups: seed %" PRIu64 "\n", seed);
    mk_rng g = {seed};
    fx f;
    fx_init(&f, "compact_pace_rollup", win);
    f.o.compact_ranges_ms[0] = win;
    f.o.rollup_steps_ms[0] = 10;
    f.o.rollup_steps_ms[1] = 100;
    f.o.rollup_min_density = 1;
    fx_open(&f);
    mk_diag d = {0};
    for (int w = 0; w <= n_win; w++) {
        for (int s = 0; s < N_SERIES; s++)
            for (int i = 0; i < win; i++) {
                mk_point p = {f.ids[s], (int64_t)w * win + i, (double)mk_rng_below(&g, 1u << 30) / 1024};
                assert_int_equal(mk_db_write(f.db, &p, 1, &d), MK_OK);
            }
        assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
    }
    fx_close(&f);
    uint64_t n_last = 0, n_raw = dir_mkb_bytes(f.dir, &n_last);
    /* the reference: unpaced */
    mk_compact_stats cs = {0};
    mk_db_stats ref_st;
    char *dir2 = compacted_copy(&f, "compact_pace_rollup_ref", &cs, &ref_st);
    assert_int_equal(cs.n_merges, 0);
    char cmd[8192];

    pe_start();
    f.o.env = &pe.env;
    f.o.compact_sync_max_bytes_per_s = rate;
    fx_open(&f);
    memset(&cs, 0, sizeof cs);
    assert_int_equal(mk_db_compact(f.db, &cs, &d), MK_OK);
    assert_int_equal(cs.n_merges, 0);
    fx_close(&f);
    int64_t elapsed_ms = pe_now(NULL) - PACE_T0_MS;
    print_message("  %" PRIu64 " rollup bytes written (raw blocks %" PRIu64 " bytes) in %" PRId64 " fake ms at %" PRIu64 " bytes/s\n",
                  pe.n_rollup_written, n_raw, elapsed_ms, rate);
    assert_true(pe.n_rollup_written > 4 * rate);
    /* at least the written bytes' time; at most that of written + read */
    assert_true((double)pe.n_rollup_written <= (double)rate * (double)elapsed_ms / 1000 + (double)burst);
    assert_true((double)(pe.n_rollup_written + n_raw) >= (double)rate * (double)(elapsed_ms - 50) / 1000 - (double)burst);
    for (int64_t s = 0; s <= elapsed_ms / 1000 && s < PACE_MAX_S; s++)
        if (pe.rollup_written_in_s[s] > rate + burst + (96u << 10) + (64u << 10))
            fail_msg("fake second %" PRId64 ": %" PRIu64 " rollup bytes written", s, pe.rollup_written_in_s[s]);
    snprintf(cmd, sizeof cmd, "diff -r %s/rollup %s/rollup", f.dir, dir2);
    assert_int_equal(system(cmd), 0);
    pthread_mutex_destroy(&pe.mu);
    mk_test_rmrf(dir2);
    free(dir2);
    mk_test_rmrf(f.dir);
    free(f.dir);
}

/* A flush (mk_db_compact) during a paced merge does not wait at the pace:
 * the thread crawls at 100 bytes/s (a clock that stands still, sleeps of
 * 0.2 ms that earn their nominal length), which would take minutes for
 * this data; mk_db_compact then lifts the pace, and everything merges. */
static uint64_t n_crawl_sleeps;
static void crawl_sleep(mk_env *e, int64_t ms)
{
    (void)e;
    (void)ms;
    __atomic_add_fetch(&n_crawl_sleeps, 1, __ATOMIC_SEQ_CST);
    usleep(200);
}
static int64_t frozen_now(mk_env *e) { (void)e; return PACE_T0_MS; }

static void test_paced_thread_yields(void **state)
{
    (void)state;
    fx f;
    fx_init(&f, "compact_yield", SPAN_MS);
    f.o.is_rollup_off = 1;
    f.o.compact_ranges_ms[0] = 4 * SPAN_MS;
    fx_open(&f);
    ref r = {0};
    mk_diag d = {0};
    mk_rng g = {11};
    for (int w = 0; w <= 8; w++) {
        for (int s = 0; s < N_SERIES; s++)
            for (int i = 0; i < SPAN_MS; i += 2) {
                double v = (double)mk_rng_below(&g, 1u << 20);
                mk_point p = {f.ids[s], (int64_t)w * SPAN_MS + i, v};
                ref_add(&r, s, p.ts_ms, v);
                assert_int_equal(mk_db_write(f.db, &p, 1, &d), MK_OK);
            }
        assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
    }
    fx_close(&f);
    static mk_env env;
    env = *mk_env_default();
    env.now_ms = frozen_now;
    env.sleep_ms = crawl_sleep;
    f.o.env = &env;
    f.o.is_compaction_off = 0;
    f.o.compact_interval_ms = 5;
    f.o.compact_max_bytes_per_s = 100;
    n_crawl_sleeps = 0;
    fx_open(&f);
    while (__atomic_load_n(&n_crawl_sleeps, __ATOMIC_SEQ_CST) < 50) usleep(1000); /* mid-merge */
    mk_compact_stats cs = {0};
    assert_int_equal(mk_db_compact(f.db, &cs, &d), MK_OK);
    mk_db_stats st;
    mk_db_stats_get(f.db, &st);
    print_message("  %" PRIu64 " pacing sleeps before the flush got through; %" PRIu64 " blocks left\n",
                  __atomic_load_n(&n_crawl_sleeps, __ATOMIC_SEQ_CST), st.n_blocks);
    assert_int_equal(st.n_blocks, 3); /* windows 0-3, 4-7, and 8 alone */
    check_all(&f, &r, "after the flush", 11);
    fx_close(&f);
    mk_test_rmrf(f.dir);
    free(f.dir);
    free(r.v);
}

/* The token bucket alone: n charges take as long as the pace says, with
 * a frozen clock (sleeps earn their time) as with a moving one. */
static void test_pacer(void **state)
{
    (void)state;
    fx f = {0};
    f.dir = mk_test_dir("compact_pacer");
    pe_start();
    mk_options_init(&f.o);
    f.o.env = &pe.env;
    f.o.is_compaction_off = 1;
    fx_open(&f);
    mk_pacer p;
    mk_pacer_init(&p, f.db, 1000, 0); /* 1000 bytes/s, burst 4096 */
    for (int i = 0; i < 100; i++) mk_pacer_charge(&p, 100); /* 10000 bytes */
    int64_t el = pe_now(NULL) - PACE_T0_MS;
    print_message("  10000 bytes at 1000/s: %" PRId64 " fake ms\n", el);
    assert_true(el >= 10000 - 4096 - 10 && el <= 10000 + 100);
    /* unpaced: no sleep */
    mk_pacer_init(&p, f.db, 0, 0);
    mk_pacer_charge(&p, 1 << 30);
    assert_int_equal(pe_now(NULL) - PACE_T0_MS, el);
    /* a clock set back far: charges still finish (each sleep earns its
     * length), at the pace */
    mk_pacer_init(&p, f.db, 1000, 0);
    pe.now_ms = PACE_T0_MS - 1000000;
    mk_pacer_charge(&p, 2000);
    assert_true(p.n_sleeps > 0);
    assert_true(pe_now(NULL) - (PACE_T0_MS - 1000000) >= 1990);
    fx_close(&f);
    pthread_mutex_destroy(&pe.mu);
    mk_test_rmrf(f.dir);
    free(f.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pacer),
        cmocka_unit_test(test_paced_thread),
        cmocka_unit_test(test_paced_rollups),
        cmocka_unit_test(test_paced_thread_yields),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_reader_during_compaction),
        cmocka_unit_test(test_leftover_replaced),
        cmocka_unit_test(test_random_forced),
        cmocka_unit_test(test_random_background),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

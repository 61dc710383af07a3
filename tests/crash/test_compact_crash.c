/*
 * tests/crash/test_compact_crash.c — SIGKILL during compaction and
 * retention.
 *
 * The parent builds a data directory of many small blocks once: windows of
 * SPAN ms, one block each, every series with a sample every 10 ms, plus
 * late overwrites of later windows sealed as overlapping blocks (so seq
 * order matters when merging). The reference is a plain array of expected
 * values per (series, slot). Each round a child opens a copy (fresh, or the
 * previous round's crashed state every other round), runs compaction to
 * completion and retention (fake clock: windows below K are past the
 * policy), in either order, and is SIGKILLed after a random delay. A
 * backfill also overwrote slots of the expired windows (issue 4: dropping
 * its block before theirs showed the overwritten values again). The
 * parent then reopens and checks against the reference:
 *  - windows >= K: every sample there exactly once with its latest value;
 *  - windows < K (retention may have dropped them): per window all,
 *    nothing, or only backfilled samples, and what is there exact;
 *  - no block file left that the open set does not use, no .tmp;
 *  - 500 ms buckets of the kept windows (from the rollup tier where it is
 *    up to date, else raw) equal the reference's;
 *  - `meerkat verify` exits 0 (when MK_BIN is set);
 *  - compaction then runs to completion from the crashed state and the
 *    same checks hold.
 * MK_CRASH_ROUNDS (default 30): rounds go on until that many children
 * were killed mid-run (kills spread over 90 % of a full run's time); the
 * seed (fixed, MK_CRASH_SEED to change) is printed.
 */
#include "testutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "meerkat/meerkat.h"

#define N_SERIES 6
#define SPAN 1000
#define SLOTS 100 /* per window, every 10 ms */
#define N_WIN 112
#define K 32      /* windows below K are past the retention policy */
#define RET_MS 100000

static double ref[N_SERIES][N_WIN * SLOTS];
static unsigned char is_backfilled[N_SERIES][N_WIN * SLOTS]; /* overwritten in windows < K */
static uint64_t n_tier_chunks; /* bucket chunks read from rollup tiers */

static void quiet(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (level == MK_LOG_ERROR) fprintf(stderr, "meerkat: error: %s\n", msg);
}

static mk_options options(mk_faultenv *fe)
{
    mk_options o;
    mk_options_init(&o);
    o.fsync = MK_FSYNC_OFF;
    o.block_span_ms = SPAN;
    o.seal_gap_ms = -1;
    o.is_compaction_off = 1;
    o.compact_ranges_ms[0] = 4 * SPAN;
    o.compact_ranges_ms[1] = 16 * SPAN;
    o.retention_raw_ms = RET_MS;
    o.rollup_steps_ms[0] = 100;
    o.rollup_min_density = 1; /* every series: the reference has all buckets */
    o.rollup_steps_ms[1] = 500;
    o.log = quiet;
    mk_faultenv_init(fe);
    fe->fake_now_ms = (int64_t)K * SPAN - 10 + RET_MS + 1; /* window K-1's max_ts + RET + 1 */
    o.env = &fe->env;
    return o;
}

static void ids_of(mk_db *db, uint64_t *ids)
{
    for (int s = 0; s < N_SERIES; s++) {
        char h[16];
        snprintf(h, sizeof h, "h%d", s);
        mk_tag t = {"host", h};
        mk_diag d = {0};
        if (mk_db_series(db, "cc", &t, 1, "v", &ids[s], &d)) fail_msg("series: %s", d.msg);
    }
}

static void build(const char *dir, mk_rng *g)
{
    mk_faultenv fe;
    mk_options o = options(&fe);
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(dir, &o, &db, &d)) fail_msg("open: %s", d.msg);
    uint64_t ids[N_SERIES];
    ids_of(db, ids);
    mk_point p[N_SERIES * SLOTS];
    for (int w = 0; w < N_WIN; w++) {
        size_t n = 0;
        for (int i = 0; i < SLOTS; i++)
            for (int s = 0; s < N_SERIES; s++) {
                double v = (double)mk_rng_below(g, 100000) / 10;
                ref[s][w * SLOTS + i] = v;
                p[n++] = (mk_point){ids[s], (int64_t)w * SPAN + 10 * i, v};
            }
        if (mk_db_write(db, p, n, &d)) fail_msg("write: %s", d.msg);
        if (mk_db_flush(db, &d)) fail_msg("flush: %s", d.msg);
        /* once, a backfill overwriting random slots of the expired windows:
         * a block overlapping theirs with a higher seq, past the policy
         * too; retention must drop it only with (or after) them */
        if (w == K + 3) {
            n = 0;
            for (int k = 0; k < 400; k++) {
                int s = (int)mk_rng_below(g, N_SERIES);
                int slot = (int)mk_rng_below(g, (uint64_t)K * SLOTS - SLOTS); /* not window K-1: it sets the clock */
                double v = -1 - (double)mk_rng_below(g, 100000);
                ref[s][slot] = v;
                is_backfilled[s][slot] = 1;
                p[n++] = (mk_point){ids[s], (int64_t)slot * 10, v};
            }
            if (mk_db_write(db, p, n, &d)) fail_msg("write: %s", d.msg);
            if (mk_db_flush(db, &d)) fail_msg("flush: %s", d.msg);
        }
        /* now and then, overwrite random earlier slots of windows >= K */
        if (w > K && w % 5 == 0) {
            n = 0;
            for (int k = 0; k < 300; k++) {
                int s = (int)mk_rng_below(g, N_SERIES);
                int slot = K * SLOTS + (int)mk_rng_below(g, (uint64_t)(w - K) * SLOTS);
                double v = -(double)mk_rng_below(g, 100000);
                ref[s][slot] = v;
                p[n++] = (mk_point){ids[s], (int64_t)slot * 10, v};
            }
            if (mk_db_write(db, p, n, &d)) fail_msg("write: %s", d.msg);
            if (mk_db_flush(db, &d)) fail_msg("flush: %s", d.msg);
        }
    }
    if (mk_db_close(db, &d)) fail_msg("close: %s", d.msg);
}

static size_t count_suffix(const char *dir, const char *suffix)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/blocks", dir);
    DIR *dd = opendir(path);
    if (!dd) return 0;
    size_t n = 0, ls = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(dd))) {
        size_t l = strlen(e->d_name);
        n += l > ls && strcmp(e->d_name + l - ls, suffix) == 0;
    }
    closedir(dd);
    return n;
}

static void check(const char *dir, int round, const char *when)
{
    mk_faultenv fe;
    mk_options o = options(&fe);
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(dir, &o, &db, &d)) fail_msg("round %d %s: reopen: %s", round, when, d.msg);
    uint64_t ids[N_SERIES];
    ids_of(db, ids);
    static unsigned char seen[N_SERIES][N_WIN * SLOTS];
    memset(seen, 0, sizeof seen);
    for (int s = 0; s < N_SERIES; s++) {
        mk_iter *it = NULL;
        if (mk_db_iter(db, ids[s], INT64_MIN, INT64_MAX, &it, &d)) fail_msg("iter: %s", d.msg);
        for (;;) {
            const int64_t *ts;
            const double *v;
            size_t n;
            if (mk_iter_next(it, &ts, &v, &n, &d)) fail_msg("round %d %s: read: %s", round, when, d.msg);
            if (!n) break;
            for (size_t i = 0; i < n; i++) {
                if (ts[i] < 0 || ts[i] % 10 || ts[i] / 10 >= N_WIN * SLOTS) fail_msg("round %d %s: invented ts %" PRId64, round, when, ts[i]);
                int slot = (int)(ts[i] / 10);
                if (seen[s][slot]++) fail_msg("round %d %s: ts %" PRId64 " twice", round, when, ts[i]);
                if (v[i] != ref[s][slot])
                    fail_msg("round %d %s: series %d ts %" PRId64 ": %g, want %g", round, when, s, ts[i], v[i], ref[s][slot]);
            }
        }
        mk_iter_free(it);
    }
    for (int w = 0; w < N_WIN; w++) {
        int n = 0, n_not_bf = 0;
        for (int s = 0; s < N_SERIES; s++)
            for (int i = 0; i < SLOTS; i++) {
                n += seen[s][w * SLOTS + i];
                n_not_bf += seen[s][w * SLOTS + i] && !is_backfilled[s][w * SLOTS + i];
            }
        if (w >= K && n != N_SERIES * SLOTS) fail_msg("round %d %s: window %d has %d of %d samples", round, when, w, n, N_SERIES * SLOTS);
        /* an expired window: whole, gone, or (its own block dropped first,
         * the backfill's not yet) only backfilled samples, never the values
         * they overwrote (checked above) */
        if (w < K && n != 0 && n != N_SERIES * SLOTS && n_not_bf != 0)
            fail_msg("round %d %s: expired window %d partly there (%d)", round, when, w, n);
    }
    /* rollups (tier or raw, whichever is up to date) of the kept windows:
     * 500 ms buckets equal the reference's */
    mk_bucket_iter *bi = NULL;
    for (int s = 0; s < N_SERIES; s++) {
        mk_err rc = bi ? mk_bucket_iter_reset(bi, db, ids[s], 500, (int64_t)K * SPAN, INT64_MAX, &d)
                       : mk_db_iter_buckets(db, ids[s], 500, (int64_t)K * SPAN, INT64_MAX, &bi, &d);
        if (rc) fail_msg("buckets: %s", d.msg);
        int64_t next = (int64_t)K * SPAN;
        for (;;) {
            const mk_bucket *b;
            size_t n;
            if (mk_bucket_iter_next(bi, &b, &n, &d)) fail_msg("round %d %s: buckets: %s", round, when, d.msg);
            if (!n) break;
            for (size_t i = 0; i < n; i++) {
                if (b[i].start_ms != next) fail_msg("round %d %s: bucket %" PRId64 ", want %" PRId64, round, when, b[i].start_ms, next);
                double sum = 0, mn = INFINITY, mx = -INFINITY;
                int slot0 = (int)(next / 10);
                for (int k = 0; k < 50; k++) {
                    double v = ref[s][slot0 + k];
                    sum += v;
                    if (v < mn) mn = v;
                    if (v > mx) mx = v;
                }
                if (b[i].count != 50 || b[i].min != mn || b[i].max != mx || b[i].first != ref[s][slot0] ||
                    b[i].last != ref[s][slot0 + 49] || fabs(b[i].sum - sum) > 1e-9 * fabs(sum) + 1e-9)
                    fail_msg("round %d %s: series %d bucket %" PRId64 ": n %" PRIu64 " sum %g min %g max %g; want 50 %g %g %g",
                             round, when, s, next, b[i].count, b[i].sum, b[i].min, b[i].max, sum, mn, mx);
                next += 500;
            }
        }
        if (next != (int64_t)N_WIN * SPAN) fail_msg("round %d %s: buckets end at %" PRId64, round, when, next);
    }
    mk_read_stats rs;
    mk_bucket_iter_stats(bi, &rs);
    n_tier_chunks += rs.n_chunks_summary;
    mk_bucket_iter_free(bi);
    mk_db_stats st;
    mk_db_stats_get(db, &st);
    if (mk_db_close(db, &d)) fail_msg("close: %s", d.msg);
    size_t n_files = count_suffix(dir, ".mkb");
    if (n_files != st.n_blocks) fail_msg("round %d %s: %zu block files, %" PRIu64 " blocks in use", round, when, n_files, st.n_blocks);
    if (count_suffix(dir, ".tmp")) fail_msg("round %d %s: .tmp left", round, when);
    const char *bin = getenv("MK_BIN");
    if (bin && access(bin, X_OK) == 0) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "%s verify --data %s >/dev/null 2>&1", bin, dir);
        int rc = system(cmd);
        if (rc != 0) fail_msg("round %d %s: meerkat verify exited %d", round, when, rc);
    }
}

static void child(const char *dir, int is_retention_first, int fd)
{
    mk_faultenv fe;
    mk_options o = options(&fe);
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(dir, &o, &db, &d)) _exit(3);
    if (write(fd, "o", 1) != 1) _exit(3);
    if (is_retention_first && mk_db_retention(db, 0, NULL, NULL, NULL, &d)) _exit(4);
    if (mk_db_compact(db, NULL, &d)) _exit(5);
    if (!is_retention_first && mk_db_retention(db, 0, NULL, NULL, NULL, &d)) _exit(4);
    if (mk_db_close(db, &d)) _exit(6);
    _exit(0);
}

/* Runs one child to the end or to a kill after delay_us; returns its
 * duration in us when not killed. */
static int64_t run_child(const char *dir, int is_retention_first, int64_t delay_us, int *was_killed)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child(dir, is_retention_first, fds[1]);
    }
    close(fds[1]);
    char c;
    if (read(fds[0], &c, 1) != 1) fail_msg("child failed to open");
    close(fds[0]);
    int64_t t0 = mk_test_mono_ms();
    if (delay_us >= 0) {
        usleep((useconds_t)delay_us);
        kill(pid, SIGKILL);
    }
    int st;
    waitpid(pid, &st, 0);
    *was_killed = WIFSIGNALED(st);
    if (!*was_killed && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) fail_msg("child exited with %d", WEXITSTATUS(st));
    return (mk_test_mono_ms() - t0) * 1000;
}

static void test_kill_compaction(void **state)
{
    (void)state;
    uint64_t seed = 20261202;
    const char *e = getenv("MK_CRASH_SEED");
    if (e) seed = strtoull(e, NULL, 10);
    int rounds = getenv("MK_CRASH_ROUNDS") ? atoi(getenv("MK_CRASH_ROUNDS")) : 30;
    print_message("test_compact_crash: seed %" PRIu64 ", %d rounds\n", seed, rounds);
    mk_rng g = {seed};
    char *root = mk_test_dir("compact_crash");
    char pristine[4096], work[4096], cmd[16384];
    snprintf(pristine, sizeof pristine, "%s/pristine", root);
    snprintf(work, sizeof work, "%s/work", root);
    build(pristine, &g);
    check(pristine, -1, "built");
    /* how long a whole run takes, to spread the kills over it */
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -a %s %s", work, pristine, work);
    assert_int_equal(system(cmd), 0);
    int was_killed;
    int64_t full_us = run_child(work, 0, -1, &was_killed);
    check(work, 0, "full run");
    print_message("  a full compaction + retention run takes %" PRId64 " us\n", full_us);
    if (full_us < 1000) full_us = 1000;
    int n_killed = 0;
    int round = 1;
    for (; (round <= rounds || n_killed < rounds) && round <= 3 * rounds; round++) {
        if (round % 2 == 1) assert_int_equal(system(cmd), 0); /* else: continue from the crash */
        int64_t delay = (int64_t)mk_rng_below(&g, (uint64_t)full_us * 9 / 10);
        run_child(work, (int)mk_rng_below(&g, 2), delay, &was_killed);
        n_killed += was_killed;
        check(work, round, "after kill");
        if (round % 6 == 0) {
            /* finishing from a crashed state */
            run_child(work, 0, -1, &was_killed);
            check(work, round, "finished after kill");
        }
    }
    print_message("  %d of %d children were killed mid-run; %" PRIu64 " rollup chunks read in checks\n", n_killed, round - 1, n_tier_chunks);
    assert_true(n_tier_chunks > 0);
    assert_true(n_killed >= rounds);
    mk_test_rmrf(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_compaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

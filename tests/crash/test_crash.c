/*
 * tests/crash/test_crash.c — SIGKILL a writer at random moments.
 *
 * A child opens the database with fsync=always and writes numbered batches
 * through the public API, reporting each batch number on a pipe once
 * mk_db_write has acknowledged it. The parent kills it with SIGKILL after a
 * random delay, reopens the directory and checks against what it was told:
 *  - every acknowledged batch is present, every sample with its exact value;
 *  - the batch in flight is present entirely or not at all;
 *  - nothing else is there: no sample was invented or duplicated.
 * Batches are deterministic functions of their number (series, timestamps,
 * values), so the parent can recompute any of them. Some batches land in
 * the past (backfill), the block span is small and the memory limit tiny,
 * so kills also hit sealing, block writes and WAL truncation.
 *
 * MK_CRASH_ROUNDS (default 60) kills per run; the seed is printed.
 */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "meerkat/meerkat.h"

#define N_SERIES 16
#define BATCH 64
#define MAX_BATCHES 100000

static const int64_t base_ms = 1700000000000;

static void batch_sample(uint64_t b, int i, int *series, int64_t *ts, double *v)
{
    mk_rng r = {b * 1000003 + (uint64_t)i};
    *series = (int)mk_rng_below(&r, N_SERIES);
    if (b % 7 == 3) /* backfill: hours in the past, in already sealed windows */
        *ts = base_ms - (int64_t)(b % 50 + 1) * 3600000 + (int64_t)b * 7 + i * 13;
    else
        *ts = base_ms + (int64_t)b * 10000 + i * 100 + *series;
    *v = (double)(mk_rng_below(&r, 1000000)) / 100.0;
}

static void make_ids(mk_db *db, uint64_t *ids)
{
    for (int s = 0; s < N_SERIES; s++) {
        char inst[16];
        snprintf(inst, sizeof inst, "i-%d", s);
        mk_tag tags[] = {{"instance", inst}};
        mk_diag d = {0};
        if (mk_db_series(db, "crash", tags, 1, "v", &ids[s], &d)) {
            fprintf(stderr, "series: %s\n", d.msg);
            exit(3);
        }
    }
}

static mk_options options(void)
{
    mk_options o;
    mk_options_init(&o);
    o.fsync = MK_FSYNC_ALWAYS;
    o.block_span_ms = 600000; /* 10 min of data time: frequent seals */
    o.memory_limit_bytes = 64 * 1024;
    return o;
}

static void child(const char *dir, uint64_t first, int fd)
{
    mk_options o = options();
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(dir, &o, &db, &d)) {
        fprintf(stderr, "child open: %s\n", d.msg);
        _exit(3);
    }
    uint64_t ids[N_SERIES];
    make_ids(db, ids);
    uint64_t ready = UINT64_MAX; /* tells the parent to start its clock */
    if (write(fd, &ready, sizeof ready) != sizeof ready) _exit(3);
    for (uint64_t b = first; b < MAX_BATCHES; b++) {
        mk_point pts[BATCH];
        for (int i = 0; i < BATCH; i++) {
            int s;
            batch_sample(b, i, &s, &pts[i].ts_ms, &pts[i].value);
            pts[i].series_id = ids[s];
        }
        if (mk_db_write(db, pts, BATCH, &d)) {
            fprintf(stderr, "child write: %s\n", d.msg);
            _exit(3);
        }
        if (write(fd, &b, sizeof b) != sizeof b) _exit(3);
    }
    _exit(0);
}

/* Per series, the expected (ts -> value) of a set of batches, sorted. */
typedef struct exp_s {
    int64_t ts;
    double v;
    uint64_t batch;
} exp_s;

static int cmp_exp(const void *a, const void *b)
{
    const exp_s *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->batch < y->batch ? -1 : x->batch > y->batch;
}

int main(void)
{
    const char *rounds_env = getenv("MK_CRASH_ROUNDS");
    int rounds = rounds_env ? atoi(rounds_env) : 60;
    uint64_t seed = 0xc0ffee;
    printf("crash test: %d rounds, seed %" PRIx64 "\n", rounds, seed);
    mk_rng rng = {seed};
    char *dir = mk_test_dir("crash");
    if (!dir) return 1;

    uint8_t *present = calloc(MAX_BATCHES, 1); /* batches known to be in the db */
    uint64_t next = 0;
    int failures = 0;
    for (int round = 0; round < rounds && !failures; round++) {
        int p[2];
        if (pipe(p)) return 1;
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            close(p[0]);
            child(dir, next, p[1]);
        }
        close(p[1]);
        /* Kill only once the child is writing, so kills land in writes and
         * seals rather than in start-up (up to 60 s for it to open). */
        struct pollfd pf = {p[0], POLLIN, 0};
        uint64_t b;
        if (poll(&pf, 1, 60000) != 1 || read(p[0], &b, sizeof b) != sizeof b || b != UINT64_MAX) {
            fprintf(stderr, "round %d: child did not start\n", round);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            failures++;
            break;
        }
        struct timespec delay = {0, (long)(5 + mk_rng_below(&rng, 120)) * 1000000L};
        nanosleep(&delay, NULL);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        if (!WIFSIGNALED(st)) {
            fprintf(stderr, "round %d: child exited with %d before the kill\n", round, WEXITSTATUS(st));
            failures++;
            break;
        }
        uint64_t last_acked = next, n_acked = 0;
        while (read(p[0], &b, sizeof b) == sizeof b) {
            present[b] = 1;
            last_acked = b;
            n_acked++;
        }
        close(p[0]);
        uint64_t in_flight = n_acked ? last_acked + 1 : next;

        /* Reopen and compare. */
        mk_options o = options();
        mk_db *db = NULL;
        mk_diag d = {0};
        if (mk_db_open(dir, &o, &db, &d)) {
            fprintf(stderr, "round %d: reopen failed: %s\n", round, d.msg);
            failures++;
            break;
        }
        uint64_t ids[N_SERIES];
        make_ids(db, ids);
        /* Decide the in-flight batch: look for its first sample. */
        int s0;
        int64_t t0;
        double v0;
        batch_sample(in_flight, 0, &s0, &t0, &v0);
        int found = 0;
        mk_iter *it = NULL;
        if (mk_db_iter(db, ids[s0], t0, t0 + 1, &it, &d) == MK_OK) {
            const int64_t *ts;
            const double *v;
            size_t n;
            if (mk_iter_next(it, &ts, &v, &n, &d) == MK_OK && n == 1) found = 1;
        }
        mk_iter_free(it);
        if (found) present[in_flight] = 1;
        uint64_t top = in_flight + 1;

        for (int s = 0; s < N_SERIES && !failures; s++) {
            size_t cap = (size_t)top * BATCH + 1, ne = 0;
            exp_s *e = malloc(cap * sizeof *e);
            for (uint64_t bb = 0; bb < top; bb++) {
                if (!present[bb]) continue;
                for (int i = 0; i < BATCH; i++) {
                    int ss;
                    int64_t ts;
                    double v;
                    batch_sample(bb, i, &ss, &ts, &v);
                    if (ss == s) e[ne++] = (exp_s){ts, v, bb};
                }
            }
            qsort(e, ne, sizeof *e, cmp_exp);
            size_t m = 0; /* later batch wins on equal ts */
            for (size_t i = 0; i < ne; i++) {
                if (m && e[m - 1].ts == e[i].ts) e[m - 1] = e[i];
                else e[m++] = e[i];
            }
            if (mk_db_iter(db, ids[s], INT64_MIN, INT64_MAX, &it, &d)) { failures++; free(e); break; }
            size_t k = 0;
            for (;;) {
                const int64_t *ts;
                const double *v;
                size_t n;
                if (mk_iter_next(it, &ts, &v, &n, &d)) {
                    fprintf(stderr, "round %d: read error: %s\n", round, d.msg);
                    failures++;
                    break;
                }
                if (!n) break;
                for (size_t i = 0; i < n; i++, k++) {
                    if (k >= m || ts[i] != e[k].ts || v[i] != e[k].v) {
                        fprintf(stderr, "round %d series %d sample %zu: got (%" PRId64 ", %g), want %s(%" PRId64 ", %g) [batch %" PRIu64 "]\n",
                                round, s, k, ts[i], v[i], k >= m ? "nothing " : "", k < m ? e[k].ts : 0, k < m ? e[k].v : 0.0,
                                k < m ? e[k].batch : 0);
                        failures++;
                        break;
                    }
                }
                if (failures) break;
            }
            if (!failures && k != m) {
                fprintf(stderr, "round %d series %d: %zu samples, want %zu (acknowledged data missing)\n", round, s, k, m);
                failures++;
            }
            mk_iter_free(it);
            free(e);
        }
        if (mk_db_close(db, &d)) {
            fprintf(stderr, "round %d: close: %s\n", round, d.msg);
            failures++;
        }
        printf("round %2d: %" PRIu64 " batches acknowledged, in-flight batch %" PRIu64 " %s\n", round, n_acked, in_flight,
               found ? "landed" : "absent");
        next = top;
    }
    mk_test_rmrf(dir);
    free(dir);
    free(present);
    return failures ? 1 : 0;
}

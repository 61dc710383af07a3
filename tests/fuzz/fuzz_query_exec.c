/*
 * tests/fuzz/fuzz_query_exec.c — the InfluxQL executor under libFuzzer.
 *
 * The input is a query text, parsed and run (mk_query_exec) over a small
 * fixed database made once per process: two measurements, a few tag sets,
 * samples in sealed blocks and in the head. Properties:
 *   - never crashes, never leaks (libFuzzer + ASan), finishes (caps: 20,000
 *     values, 1,000 series, 2 s);
 *   - determinism: the answer with n_threads 1 and with 2 is the same
 *     (compared value by value, NaN-aware; EXPLAIN text, which holds
 *     timings, excepted), as the executor promises.
 * A broken property calls abort().
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meerkat/db.h"
#include "meerkat/query.h"

static mk_db *g_db;

static void make_db(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/mk-fuzz-query-exec-%d", (int)getpid());
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) abort();
    mk_diag d = {0};
    if (mk_db_open(dir, NULL, &g_db, &d) != MK_OK) abort();
    char lp[64 * 1024];
    size_t n = 0;
    static const char *hosts[] = {"a", "b", "c"};
    static const char *regs[] = {"eu", "us"};
    for (int i = 0; i < 120; i++) {
        n += (size_t)snprintf(lp + n, sizeof lp - n, "cpu,host=%s,region=%s usage=%d.5,idle=%d %d\n", hosts[i % 3],
                              regs[(i / 3) % 2], (i * 37) % 100, (i * 11) % 50, i * 15);
    }
    if (mk_db_write_lp(g_db, lp, n, MK_PRECISION_S, 0, NULL, NULL, NULL, &d) != MK_OK) abort();
    if (mk_db_flush(g_db, &d) != MK_OK) abort();
    n = 0;
    for (int i = 0; i < 40; i++) n += (size_t)snprintf(lp + n, sizeof lp - n, "mem,host=%s free=%d %d\n", hosts[i % 3], 1000 - i * 7, 1000 + i * 20);
    n += (size_t)snprintf(lp + n, sizeof lp - n, "cpu,host=a,region=eu usage=1 5\n"); /* out of order, over a block */
    if (mk_db_write_lp(g_db, lp, n, MK_PRECISION_S, 0, NULL, NULL, NULL, &d) != MK_OK) abort();
}

static int same_v(const mk_qv *a, const mk_qv *b)
{
    if (a->type != b->type) return 0;
    switch (a->type) {
    case MK_QV_NULL: return 1;
    case MK_QV_FLOAT: return (isnan(a->u.f) && isnan(b->u.f)) || a->u.f == b->u.f;
    case MK_QV_STRING: return strcmp(a->u.s, b->u.s) == 0;
    default: return a->u.i == b->u.i;
    }
}

static int same(const mk_qresult *x, const mk_qresult *y)
{
    if (mk_qresult_n_stmts(x) != mk_qresult_n_stmts(y)) return 0;
    for (uint32_t i = 0; i < mk_qresult_n_stmts(x); i++) {
        const mk_qstmt *a = mk_qresult_stmt(x, i), *b = mk_qresult_stmt(y, i);
        if (!a->error != !b->error || a->n_series != b->n_series) return 0;
        if (a->error) {
            /* a timeout may strike one run and not the other */
            if (strstr(a->error, "timeout") || strstr(b->error, "timeout")) continue;
            if (strcmp(a->error, b->error) != 0) return 0;
            continue;
        }
        for (uint32_t s = 0; s < a->n_series; s++) {
            const mk_qseries *p = &a->series[s], *q = &b->series[s];
            if (p->n_cols == 1 && strcmp(p->columns[0], "QUERY PLAN") == 0) continue; /* has timings */
            if (p->n_rows != q->n_rows || p->n_cols != q->n_cols) return 0;
            for (uint64_t k = 0; k < p->n_rows * p->n_cols; k++)
                if (!same_v(&p->values[k], &q->values[k])) return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_db) make_db();
    if (size > 4096) return 0;
    mk_query_opts o = {.now_ns = 3000000000000ll, .max_points = 20000, .max_series = 1000, .timeout_ms = 2000, .n_threads = 1};
    mk_qresult *r1 = NULL, *r2 = NULL;
    mk_diag d = {0};
    mk_err e1 = mk_query_exec(g_db, (const char *)data, size, &o, &r1, &d);
    o.n_threads = 2;
    o.no_summaries = size & 1;
    mk_err e2 = mk_query_exec(g_db, (const char *)data, size, &o, &r2, &d);
    if (e1 != e2) abort();
    if (e1 == MK_OK && !same(r1, r2)) {
        /* no_summaries may change float sums in their last bits: compare only with it off */
        if (!o.no_summaries) abort();
    }
    mk_qresult_free(r1);
    mk_qresult_free(r2);
    return 0;
}

/*
 * tests/integration/test_server_load.c — a bounded load test of `meerkat
 * serve` ($MK_BIN) on loopback: 4 writer threads post 50 batches of 1,000
 * lines each over keep-alive connections while 2 reader threads run
 * /query (a plain count and a GROUP BY time count) until the writers are
 * done. A sampler thread reads the server's VmRSS from /proc/<pid>/status.
 *
 * References: the number of samples the writers generated (every line has
 * one field and a distinct series/timestamp, so nothing is merged), the
 * documented status codes (204 for a write, 200 for a query) and a generous
 * memory bound. No timing is asserted (speed belongs in bench/).
 */
#include "testutil.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_server_util.h"

#define SEED 20261204u
#define T0_S 1764547200LL /* 2025-12-01T00:00:00Z */

enum {
    N_WRITERS = 4,
    N_BATCHES = 50,
    N_LINES = 1000,
    N_SERIES_PER_WRITER = 20, /* line i goes to series i % 20 */
    N_READERS = 2,
    N_SAMPLES = N_WRITERS * N_BATCHES * N_LINES,
};
#define RSS_BOUND_KIB (512L * 1024L) /* generous: 200,000 samples are a few MiB */

/* count(v) over the whole data (each series gets one point per second from T0) */
#define Q_COUNT "/query?db=load&q=SELECT+count%28v%29+FROM+m"
/* count per minute over the data's span: 50 * 1000 / 20 = 2,500 s */
#define Q_GROUP                                                                                                   \
    "/query?db=load&q=SELECT+count%28v%29+FROM+m+WHERE+time+%3E%3D+1764547200s+AND+time+%3C+1764549700s+GROUP+" \
    "BY+time%281m%29"

typedef struct shared {
    unsigned port;
    pid_t pid;
    atomic_int n_writers_done;
    atomic_int is_failed;
    char fail_msg[512];          /* first failure, written under fail_lock */
    pthread_mutex_t fail_lock;
    atomic_long n_queries;
    atomic_long peak_rss_kib;
} shared;

typedef struct worker {
    shared *sh;
    int id;
} worker;

static void record_failure(shared *sh, const char *what, int status, const char *body)
{
    pthread_mutex_lock(&sh->fail_lock);
    if (!atomic_load(&sh->is_failed))
        snprintf(sh->fail_msg, sizeof sh->fail_msg, "%s: status %d body %.300s", what, status, body ? body : "");
    atomic_store(&sh->is_failed, 1);
    pthread_mutex_unlock(&sh->fail_lock);
}

static void *writer_main(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    mk_rng rng = {SEED + (uint64_t)w->id};
    mk_httpc c;
    mk_httpc_init(&c, "127.0.0.1", sh->port);
    mk_sbuf body = {0};
    for (int b = 0; b < N_BATCHES && !atomic_load(&sh->is_failed); b++) {
        body.n = 0;
        for (int i = 0; i < N_LINES; i++) {
            /* series (w, i % 20), time T0 + (b * 50 + i / 20) s: distinct per series */
            long long ts_s = T0_S + (long long)b * (N_LINES / N_SERIES_PER_WRITER) + i / N_SERIES_PER_WRITER;
            mk_sb_printf(&body, "m,w=w%d,s=s%d v=%.17g %lld\n", w->id, i % N_SERIES_PER_WRITER,
                         (double)(int64_t)mk_rng_below(&rng, 1000000) / 8.0, ts_s);
        }
        mk_httpc_resp r;
        if (mk_httpc_request(&c, "POST", "/write?db=load&precision=s", NULL, mk_sb_str(&body), body.n, &r) != 0) {
            record_failure(sh, "write: no answer", -1, NULL);
            break;
        }
        if (r.status != 204) record_failure(sh, "write", r.status, r.body);
        mk_httpc_resp_free(&r);
    }
    mk_sb_free(&body);
    mk_httpc_close(&c);
    atomic_fetch_add(&sh->n_writers_done, 1);
    return NULL;
}

/* A 200 answer that is JSON with a "results" array and no "error" anywhere. */
static int is_good_answer(const mk_httpc_resp *r)
{
    if (r->status != 200 || strstr(r->body, "\"error\"")) return 0;
    json_error_t jerr;
    json_t *root = json_loads(r->body, 0, &jerr);
    int ok = json_is_array(json_object_get(root, "results"));
    json_decref(root);
    return ok;
}

static void *reader_main(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    mk_httpc c;
    mk_httpc_init(&c, "127.0.0.1", sh->port);
    for (int k = 0; atomic_load(&sh->n_writers_done) < N_WRITERS && !atomic_load(&sh->is_failed); k++) {
        const char *target = (k + w->id) % 2 ? Q_GROUP : Q_COUNT;
        mk_httpc_resp r;
        if (mk_httpc_request(&c, "GET", target, NULL, NULL, 0, &r) != 0) {
            record_failure(sh, "query: no answer", -1, NULL);
            break;
        }
        if (!is_good_answer(&r)) record_failure(sh, target, r.status, r.body);
        mk_httpc_resp_free(&r);
        atomic_fetch_add(&sh->n_queries, 1);
    }
    mk_httpc_close(&c);
    return NULL;
}

/* VmRSS of pid in KiB, or -1. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static void note_rss(shared *sh)
{
    long v = rss_kib(sh->pid);
    long peak = atomic_load(&sh->peak_rss_kib);
    while (v > peak && !atomic_compare_exchange_weak(&sh->peak_rss_kib, &peak, v)) {
    }
}

static void *sampler_main(void *arg)
{
    shared *sh = arg;
    while (atomic_load(&sh->n_writers_done) < N_WRITERS) {
        note_rss(sh);
        srv_sleep_ms(20);
    }
    note_rss(sh);
    return NULL;
}

/* count from {"results":[{"series":[{"values":[[t, n]]}]}]}, or -1. */
static long long answer_count(const char *body)
{
    json_error_t jerr;
    json_t *root = json_loads(body, 0, &jerr);
    json_t *series = json_object_get(json_array_get(json_object_get(root, "results"), 0), "series");
    json_t *values = json_object_get(json_array_get(series, 0), "values");
    json_t *n = json_array_get(json_array_get(values, 0), 1);
    long long out = json_is_number(n) && json_array_size(values) == 1 && json_array_size(series) == 1
                        ? (long long)json_number_value(n)
                        : -1;
    json_decref(root);
    return out;
}

/* Sum of the counts of all rows of the first series (GROUP BY time answer), or -1. */
static long long answer_sum(const char *body, size_t *n_rows)
{
    json_error_t jerr;
    json_t *root = json_loads(body, 0, &jerr);
    json_t *series = json_object_get(json_array_get(json_object_get(root, "results"), 0), "series");
    json_t *values = json_object_get(json_array_get(series, 0), "values");
    long long sum = json_is_array(values) ? 0 : -1;
    *n_rows = json_array_size(values);
    for (size_t i = 0; i < *n_rows && sum >= 0; i++) {
        json_t *n = json_array_get(json_array_get(values, i), 1);
        if (json_is_number(n)) sum += (long long)json_number_value(n);
        else if (!json_is_null(n)) sum = -1; /* an empty interval is null */
    }
    json_decref(root);
    return sum;
}

static void test_concurrent_writes_and_queries(void **state)
{
    (void)state;
    printf("seed %u; %d writers x %d batches x %d lines, %d readers\n", SEED, N_WRITERS, N_BATCHES, N_LINES,
           N_READERS);
    char *dir = mk_test_dir("srv-load");
    mk_test_rmrf(dir); /* `serve` creates it */
    srv s;
    if (srv_start(&s, dir, NULL, NULL) != 0) {
        char *log = srv_read_file(s.log_path);
        print_error("server did not start; log:\n%s\n", log);
        free(log);
        fail();
    }
    static shared sh; /* every thread is joined before this function returns */
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.fail_lock, NULL);
    sh.port = s.port;
    sh.pid = s.pid;
    int64_t t0_ms = mk_test_mono_ms();
    pthread_t wt[N_WRITERS], rt[N_READERS], st;
    worker ww[N_WRITERS], rw[N_READERS];
    assert_int_equal(pthread_create(&st, NULL, sampler_main, &sh), 0);
    for (int i = 0; i < N_WRITERS; i++) {
        ww[i] = (worker){&sh, i};
        assert_int_equal(pthread_create(&wt[i], NULL, writer_main, &ww[i]), 0);
    }
    for (int i = 0; i < N_READERS; i++) {
        rw[i] = (worker){&sh, i};
        assert_int_equal(pthread_create(&rt[i], NULL, reader_main, &rw[i]), 0);
    }
    for (int i = 0; i < N_WRITERS; i++) pthread_join(wt[i], NULL);
    for (int i = 0; i < N_READERS; i++) pthread_join(rt[i], NULL);
    pthread_join(st, NULL);
    int64_t dt_ms = mk_test_mono_ms() - t0_ms;
    printf("load phase %" PRId64 " ms, %ld queries, peak VmRSS %ld KiB (bound %ld KiB)\n", dt_ms,
           atomic_load(&sh.n_queries), atomic_load(&sh.peak_rss_kib), RSS_BOUND_KIB);
    if (atomic_load(&sh.is_failed)) {
        print_error("%s\n", sh.fail_msg);
        fail();
    }
    assert_true(atomic_load(&sh.n_queries) > 0);
    assert_true(atomic_load(&sh.peak_rss_kib) > 0);
    assert_true(atomic_load(&sh.peak_rss_kib) < RSS_BOUND_KIB);

    /* every sample written is counted, exactly */
    mk_httpc c;
    mk_httpc_init(&c, "127.0.0.1", s.port);
    mk_httpc_resp r;
    assert_int_equal(mk_httpc_request(&c, "GET", Q_COUNT, NULL, NULL, 0, &r), 0);
    if (r.status != 200 || answer_count(r.body) != N_SAMPLES) {
        print_error("count: status %d body %.400s; want %d\n", r.status, r.body, N_SAMPLES);
        mk_httpc_resp_free(&r);
        fail();
    }
    mk_httpc_resp_free(&r);
    /* and per minute: 2,500 s span in 42 one-minute intervals, summing to the total */
    assert_int_equal(mk_httpc_request(&c, "GET", Q_GROUP, NULL, NULL, 0, &r), 0);
    size_t n_rows = 0;
    long long sum = r.status == 200 ? answer_sum(r.body, &n_rows) : -1;
    if (sum != N_SAMPLES || n_rows != 42) {
        print_error("group by: status %d sum %lld rows %zu body %.400s; want sum %d in 42 rows\n", r.status, sum,
                    n_rows, r.body, N_SAMPLES);
        mk_httpc_resp_free(&r);
        fail();
    }
    mk_httpc_resp_free(&r);
    note_rss(&sh);
    printf("count %d ok; final peak VmRSS %ld KiB\n", N_SAMPLES, atomic_load(&sh.peak_rss_kib));
    assert_true(atomic_load(&sh.peak_rss_kib) < RSS_BOUND_KIB);
    mk_httpc_close(&c);

    int stop_st = srv_stop(&s, SIGTERM, 30000);
    char *log = srv_read_file(s.log_path);
    if (stop_st != 0 || strstr(log, "runtime error") || strstr(log, "AddressSanitizer")) {
        print_error("server exit status %d; log:\n%s\n", stop_st, log);
        free(log);
        fail();
    }
    free(log);
    unlink(s.log_path);
    mk_test_rmrf(dir);
    free(dir);
    pthread_mutex_destroy(&sh.fail_lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_writes_and_queries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

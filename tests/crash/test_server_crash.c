/*
 * tests/crash/test_server_crash.c — SIGKILL `meerkat serve` ($MK_BIN) while
 * a loader posts line-protocol batches, restart it over the same data
 * directory, repeat; afterwards every sample whose batch was acknowledged
 * with 204 must be there, with its value.
 *
 * Each sample k (counted over the whole test) is `crash v=k <T0 + k>` in
 * seconds, so the reference is arithmetic: the acknowledged ranges of k the
 * loader recorded. Unacknowledged samples may or may not have survived, but
 * any that did must carry their own value. Kill times come from a fixed,
 * printed seed. The default fsync policy (interval) is used: a SIGKILL
 * loses nothing the kernel already has, so an acknowledged write must
 * survive the process dying at any point.
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../integration/test_server_util.h"
#include "meerkat/meerkat.h"

#define SEED 20261203u
#define ROUNDS 20
#define BATCH_LINES 1000
#define T0_S 1764547200LL

typedef struct killer {
    pid_t pid;
    int delay_ms;
} killer;

static void *kill_later(void *arg)
{
    killer *k = arg;
    srv_sleep_ms(k->delay_ms);
    kill(k->pid, SIGKILL);
    return NULL;
}

typedef struct range {
    uint64_t from, to; /* acknowledged samples [from, to) */
} range;

static void test_kill_and_restart(void **state)
{
    (void)state;
    char *dir = mk_test_dir("srv-crash");
    mk_test_rmrf(dir);
    mk_rng rng = {SEED};
    printf("seed %u, %d rounds\n", SEED, ROUNDS);
    range *acked = calloc(100000, sizeof *acked);
    size_t n_acked = 0;
    uint64_t next_k = 0;
    char *body = malloc(BATCH_LINES * 64);
    int64_t t_start = mk_test_mono_ms();
    uint64_t n_requests = 0, n_failed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        srv s;
        if (srv_start(&s, dir, NULL, NULL) != 0) {
            char *log = srv_read_file(s.log_path);
            print_error("round %d: server did not start:\n%s\n", round, log);
            free(log);
            fail();
        }
        killer k = {.pid = s.pid, .delay_ms = 20 + (int)mk_rng_below(&rng, 280)};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, kill_later, &k), 0);
        mk_httpc c;
        mk_httpc_init(&c, "127.0.0.1", s.port);
        c.timeout_ms = 10000;
        for (;;) {
            size_t o = 0;
            uint64_t from = next_k;
            for (int i = 0; i < BATCH_LINES; i++, next_k++)
                o += (size_t)sprintf(body + o, "crash v=%" PRIu64 " %lld\n", next_k, T0_S + (long long)next_k);
            mk_httpc_resp r;
            n_requests++;
            /* one attempt per batch: a retry could make an unacknowledged
             * batch look acknowledged to a later server */
            int rc = mk_httpc_request(&c, "POST", "/write?db=crash&precision=s", NULL, body, o, &r);
            if (rc == 0 && r.status == 204) {
                acked[n_acked++] = (range){from, next_k};
            } else {
                n_failed++;
                mk_httpc_resp_free(&r);
                break;
            }
            mk_httpc_resp_free(&r);
            if (n_acked == 100000) break;
        }
        mk_httpc_close(&c);
        pthread_join(th, NULL);
        int st = srv_stop(&s, SIGKILL, 10000);
        assert_true(st == 128 + SIGKILL);
    }
    printf("%" PRIu64 " requests, %zu acknowledged, %" PRIu64 " cut by the kill, %" PRIu64 " samples sent, %.1f s\n",
           n_requests, n_acked, n_failed, next_k, (double)(mk_test_mono_ms() - t_start) / 1000.0);

    /* Read everything back through the engine (opening replays the WAL). */
    int64_t t_read = mk_test_mono_ms();
    mk_db *db = NULL;
    mk_diag d = {0};
    mk_options o;
    mk_options_init(&o);
    o.is_read_only = 1;
    if (mk_db_open(dir, &o, &db, &d) != MK_OK) {
        print_error("open: %s\n", d.msg);
        fail();
    }
    uint64_t id;
    uint8_t *present = calloc(next_k + 1, 1);
    if (mk_db_series(db, "crash", NULL, 0, "v", &id, &d) == MK_OK) {
        mk_iter *it = NULL;
        assert_int_equal(mk_db_iter(db, id, INT64_MIN, INT64_MAX, &it, &d), MK_OK);
        const int64_t *ts;
        const double *vals;
        size_t n;
        while (mk_iter_next(it, &ts, &vals, &n, &d) == MK_OK && n > 0)
            for (size_t i = 0; i < n; i++) {
                uint64_t v = (uint64_t)vals[i];
                if (vals[i] < 0 || v >= next_k || (double)v != vals[i] || ts[i] != (T0_S + (int64_t)v) * 1000) {
                    print_error("sample with a wrong value or time: %" PRId64 " %.17g\n", ts[i], vals[i]);
                    fail();
                }
                present[v] = 1;
            }
        mk_iter_free(it);
    }
    mk_db_close(db, NULL);
    printf("read back in %.1f s\n", (double)(mk_test_mono_ms() - t_read) / 1000.0);
    uint64_t n_checked = 0;
    for (size_t i = 0; i < n_acked; i++)
        for (uint64_t k = acked[i].from; k < acked[i].to; k++, n_checked++)
            if (!present[k]) {
                print_error("acknowledged sample %" PRIu64 " is missing\n", k);
                fail();
            }
    printf("all %" PRIu64 " acknowledged samples present\n", n_checked);
    free(present);
    free(body);
    free(acked);
    char p[4200];
    snprintf(p, sizeof p, "%s.serve.log", dir);
    unlink(p);
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill_and_restart)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

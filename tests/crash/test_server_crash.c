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
 *
 * Incidents too: a threshold rule watches `alarm,round=R v=1`. In every
 * other round the loader first writes that round's alarm and waits until
 * /api/incidents shows its incident FIRING (then the kill comes at a random
 * moment of the load); in the others the alarm goes in and the kill may land
 * while the incident is being written. After the last round a normal start
 * must list every incident seen FIRING, under the same id, still open
 * (the alarm stays within the rule's window), and the notification outbox
 * must hold a record for each (meerkat_notifications_pending; no channels).
 */
#include "testutil.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <time.h>
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

#define RULES                                                                                    \
    "rules:\n"                                                                                    \
    "  - {name: crash-alarm, kind: threshold, measurement: alarm, expr: v > 0.5, reduce: last,\n" \
    "     window: 1h, interval: 1s, failures: 1, severity: critical}\n"

/* GET target; the parsed JSON body of a 200, or NULL. */
static json_t *get_json(unsigned port, const char *target)
{
    mk_httpc c;
    mk_httpc_resp r;
    mk_httpc_init(&c, "127.0.0.1", port);
    c.timeout_ms = 5000;
    json_t *js = NULL;
    if (mk_httpc_request(&c, "GET", target, NULL, NULL, 0, &r) == 0 && r.status == 200)
        js = json_loadb(r.body, r.body_len, 0, NULL);
    mk_httpc_resp_free(&r);
    mk_httpc_close(&c);
    return js;
}

/* Id of round's crash-alarm incident when /api/incidents shows it in state
 * (NULL = any), else 0. */
static json_int_t incident_of(unsigned port, int round, const char *state)
{
    char target[128];
    snprintf(target, sizeof target, "/api/incidents?rule=crash-alarm&label.round=%d", round);
    json_t *js = get_json(port, target);
    json_t *arr = json_object_get(js, "incidents");
    json_int_t id = 0;
    if (json_array_size(arr) == 1) {
        json_t *inc = json_array_get(arr, 0);
        const char *st = json_string_value(json_object_get(inc, "state"));
        if (!state || (st && strcmp(st, state) == 0)) id = json_integer_value(json_object_get(inc, "id"));
    } else if (json_array_size(arr) > 1) {
        print_error("round %d has %zu incidents (one open incident per series)\n", round, json_array_size(arr));
        id = -1;
    }
    json_decref(js);
    return id;
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
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s.yaml", dir);
    FILE *cf = fopen(cfg, "w");
    assert_non_null(cf);
    fputs(RULES, cf);
    fclose(cf);
    json_int_t fired[ROUNDS] = {0}; /* incident id seen FIRING in round r, 0 = none */
    int64_t t_start = mk_test_mono_ms();
    uint64_t n_requests = 0, n_failed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        srv s;
        if (srv_start(&s, dir, cfg, NULL) != 0) {
            char *log = srv_read_file(s.log_path);
            print_error("round %d: server did not start:\n%s\n", round, log);
            free(log);
            fail();
        }
        mk_httpc c;
        mk_httpc_init(&c, "127.0.0.1", s.port);
        c.timeout_ms = 10000;
        {
            char line[96];
            int n = snprintf(line, sizeof line, "alarm,round=%d v=1 %lld\n", round, (long long)time(NULL));
            mk_httpc_resp r;
            assert_int_equal(mk_httpc_request(&c, "POST", "/write?db=crash&precision=s", NULL, line, (size_t)n, &r), 0);
            assert_int_equal(r.status, 204);
            mk_httpc_resp_free(&r);
        }
        if (round % 2 == 0) {
            for (int i = 0; i < 1000 && !fired[round]; i++) { /* the rule runs each second */
                fired[round] = incident_of(s.port, round, "firing");
                if (!fired[round]) srv_sleep_ms(10);
            }
            if (fired[round] <= 0) {
                print_error("round %d: the alarm's incident did not fire within 10 s\n", round);
                fail();
            }
        }
        killer k = {.pid = s.pid, .delay_ms = 20 + (int)mk_rng_below(&rng, 280)};
        if (round % 2) k.delay_ms += 800; /* around the evaluation that opens the incident */
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, kill_later, &k), 0);
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

    /* Every incident seen FIRING before a kill is still there, same id,
     * still firing; the others opened or not, but at most once. */
    {
        srv s;
        if (srv_start(&s, dir, cfg, NULL) != 0) {
            char *log = srv_read_file(s.log_path);
            print_error("final start failed:\n%s\n", log);
            free(log);
            fail();
        }
        int n_fired = 0;
        for (int r = 0; r < ROUNDS; r++) {
            json_int_t id = incident_of(s.port, r, NULL);
            assert_true(id >= 0);
            if (!fired[r]) continue;
            n_fired++;
            if (id != fired[r] || incident_of(s.port, r, "firing") != fired[r]) {
                print_error("round %d: incident %" JSON_INTEGER_FORMAT " was firing before the kill; now %" JSON_INTEGER_FORMAT "\n",
                            r, fired[r], id);
                fail();
            }
        }
        /* a FIRING incident wrote its notification to the outbox in the same
         * record; this config has no channels, so every record is still pending */
        mk_httpc c;
        mk_httpc_resp resp;
        mk_httpc_init(&c, "127.0.0.1", s.port);
        assert_int_equal(mk_httpc_request(&c, "GET", "/metrics", NULL, NULL, 0, &resp), 0);
        const char *pm = strstr(resp.body, "\nmeerkat_notifications_pending ");
        assert_non_null(pm);
        long pending = strtol(pm + strlen("\nmeerkat_notifications_pending "), NULL, 10);
        mk_httpc_resp_free(&resp);
        mk_httpc_close(&c);
        printf("%d incidents seen firing before a kill, all present after %d kills; outbox %ld pending\n", n_fired,
               ROUNDS, pending);
        assert_true(pending >= n_fired);
        assert_int_equal(srv_stop(&s, SIGTERM, 20000), 0);
    }

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
    unlink(cfg);
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill_and_restart)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

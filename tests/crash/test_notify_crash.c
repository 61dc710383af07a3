/*
 * tests/crash/test_notify_crash.c — notifications survive SIGKILL. The real
 * `meerkat serve` is killed 24 times: each round makes a new incident fire
 * (series id=N over a threshold), then kills the server after a short
 * seeded delay, while notifications are in flight or pending, and with the
 * receiver down (connections closed unanswered) every other round. After a
 * last clean start with the receiver up, every incident's notification
 * must have arrived at least once, and every copy of one alert must carry
 * the same fingerprint (so receivers can drop duplicates). Reference: the
 * list of incidents the test made fire, and what the receiver recorded.
 */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify/nsrv.h"

#define ROUNDS 24
#define SEED 4242u

static void test_notify_crash(void **st)
{
    (void)st;
    printf("seed %u\n", SEED);
    uint32_t rng = SEED;
    nsrv x;
    assert_int_equal(ns_start(&x, "notify-crash", 1,
                              "rules:\n"
                              "  - {name: crash, kind: threshold, measurement: m, field: v, expr: \"v > 10\", interval: 10s}\n"
                              "channels:\n"
                              "  - {name: hook, kind: webhook, url: 'http://127.0.0.1:%A/hook', timeout: 1s,\n"
                              "     max_attempts: 1000, backoff: 50ms, max_backoff: 300ms}\n"
                              "routes:\n"
                              "  - {channels: [hook], group_by: [id], group_wait: 0s, group_interval: 1s}\n"),
                     0);
    for (int round = 0; round < ROUNDS; round++) {
        recv_set(&x.r[0], 0, 200, round % 2); /* odd rounds: receiver down */
        char lp[128];
        snprintf(lp, sizeof lp, "m,id=%d v=50 %lld\n", round, (long long)ns_wall_ms());
        if (ns_write(&x, lp) != 204) {
            ns_fail_log(&x, "write refused");
            fail();
        }
        rng = rng * 1103515245u + 12345u;
        srv_sleep_ms((int)((rng >> 16) % 300));
        assert_int_equal(srv_stop(&x.s, SIGKILL, 5000), 128 + SIGKILL);
        assert_int_equal(ns_restart(&x), 0);
    }
    recv_set(&x.r[0], 0, 200, 0);
    /* every incident's notification arrives */
    int64_t until = ns_wall_ms() + 30000;
    int seen[ROUNDS];
    char fps[ROUNDS][17];
    for (;;) {
        memset(seen, 0, sizeof seen);
        memset(fps, 0, sizeof fps);
        size_t n = recv_count(&x.r[0], NULL);
        for (size_t i = 0; i < n; i++) {
            char *b = recv_body(&x.r[0], NULL, i);
            json_t *o = json_loads(b, 0, NULL);
            free(b);
            json_t *al = json_object_get(o, "alerts");
            for (size_t k = 0; k < json_array_size(al); k++) {
                json_t *a = json_array_get(al, k);
                const char *id = json_string_value(json_object_get(json_object_get(a, "labels"), "id"));
                const char *fp = json_string_value(json_object_get(a, "fingerprint"));
                int r = id ? atoi(id) : -1;
                assert_true(r >= 0 && r < ROUNDS && fp && strlen(fp) == 16);
                if (seen[r]) assert_string_equal(fps[r], fp); /* duplicates: same fingerprint */
                else memcpy(fps[r], fp, 17);
                seen[r]++;
            }
            json_decref(o);
        }
        int all = 1;
        for (int r = 0; r < ROUNDS; r++) all &= seen[r] > 0;
        if (all) break;
        if (ns_wall_ms() > until) {
            for (int r = 0; r < ROUNDS; r++)
                if (!seen[r]) fprintf(stderr, "incident of id=%d never notified\n", r);
            ns_fail_log(&x, "notifications lost");
            fail();
        }
        srv_sleep_ms(100);
    }
    size_t n_dup = 0;
    for (int r = 0; r < ROUNDS; r++) n_dup += (size_t)seen[r] - 1;
    printf("%d incidents notified, %zu duplicate deliveries (same fingerprints)\n", ROUNDS, n_dup);
    /* the outbox drains */
    int is_empty = 0;
    for (int i = 0; i < 100 && !is_empty; i++) {
        mk_httpc c;
        mk_httpc_resp r;
        mk_httpc_init(&c, "127.0.0.1", x.s.port);
        if (mk_httpc_request(&c, "GET", "/metrics", NULL, NULL, 0, &r) == 0) {
            is_empty = strstr(r.body, "meerkat_notifications_pending 0\n") != NULL;
            mk_httpc_resp_free(&r);
        }
        mk_httpc_close(&c);
        if (!is_empty) srv_sleep_ms(100);
    }
    assert_true(is_empty);
    assert_int_equal(ns_stop(&x, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_notify_crash)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

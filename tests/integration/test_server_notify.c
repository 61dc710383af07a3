/*
 * tests/integration/test_server_notify.c — notifications from the real
 * `meerkat serve` ($MK_BIN) to loopback receivers written in C
 * (tests/notify/recv.h): the Alertmanager-webhook and Kener shapes checked
 * against the schemas in tests/notify/, a resolve; grouping, inhibition by
 * a DOWN heartbeat and a silence from /api/silences; a failing receiver
 * retried then the fallback channel; escalation; the command action with a
 * timeout and no shell interpretation of incident fields; `meerkat notify
 * test`.
 *
 * References: what the receivers got over HTTP, the schemas, the values
 * the test wrote against the thresholds it set; no timing assertions
 * beyond ordering (the escalation comes no earlier than its after:). Every
 * wait is bounded.
 */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "notify/nsrv.h"
#include "notify/schema.h"

static char g_tests[1024]; /* tests/ */

static json_t *body_json(nsrv *x, size_t r, const char *path, size_t i)
{
    char *b = recv_body(&x->r[r], path, i);
    json_t *o = b ? json_loads(b, 0, NULL) : NULL;
    if (b && !o) fprintf(stderr, "not JSON: %s\n", b);
    free(b);
    return o;
}

static const char *jstr(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

#define NEED(cond, x, what)                                                                                            \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            ns_fail_log((x), (what));                                                                                  \
            fail_msg("%s", (what));                                                                                    \
        }                                                                                                              \
    } while (0)

static void test_shapes_and_resolve(void **st)
{
    (void)st;
    nsrv x;
    assert_int_equal(ns_start(&x, "notify-shapes", 1,
                              "rules:\n"
                              "  - {name: api-latency, kind: threshold, measurement: svc, field: p95_ms, expr: \"p95_ms > 100\",\n"
                              "     interval: 10s, severity: critical, annotations: {summary: \"p95 is high\"}}\n"
                              "channels:\n"
                              "  - {name: am, kind: webhook, url: 'http://127.0.0.1:%A/am'}\n"
                              "  - {name: kener, kind: kener, url: 'http://127.0.0.1:%A/kener'}\n"
                              "routes:\n"
                              "  - {channels: [am, kener], group_by: [alertname], group_wait: 0s, group_interval: 1s}\n"),
                     0);
    char lp[256];
    snprintf(lp, sizeof lp, "svc,service=api p95_ms=412 %lld\n", (long long)ns_wall_ms());
    assert_int_equal(ns_write(&x, lp), 204);
    NEED(ns_wait_recv(&x, 0, "/am", 1, 10000) == 0, &x, "no webhook");
    NEED(ns_wait_recv(&x, 0, "/kener", 1, 10000) == 0, &x, "no kener alert");
    json_t *am = body_json(&x, 0, "/am", 0), *kn = body_json(&x, 0, "/kener", 0);
    assert_int_equal(schema_check_file(g_tests, "notify/am_webhook_v4.schema.json", am), 0);
    assert_int_equal(schema_check_file(g_tests, "notify/kener_alert.schema.json", kn), 0);
    assert_string_equal(jstr(am, "status"), "firing");
    assert_string_equal(jstr(am, "receiver"), "am");
    json_t *a0 = json_array_get(json_object_get(am, "alerts"), 0);
    assert_string_equal(jstr(json_object_get(a0, "labels"), "alertname"), "api-latency");
    assert_string_equal(jstr(json_object_get(a0, "labels"), "service"), "api");
    assert_string_equal(jstr(json_object_get(a0, "labels"), "severity"), "critical");
    assert_string_equal(jstr(json_object_get(a0, "annotations"), "summary"), "p95 is high");
    assert_string_equal(jstr(kn, "status"), "TRIGGERED");
    assert_string_equal(jstr(kn, "severity"), "critical");
    assert_true(json_real_value(json_object_get(json_object_get(kn, "details"), "current_value")) == 412.0);
    assert_true(json_real_value(json_object_get(json_object_get(kn, "details"), "threshold")) == 100.0);
    char fp[17];
    snprintf(fp, sizeof fp, "%s", jstr(a0, "fingerprint"));
    json_decref(am);
    json_decref(kn);
    /* back to normal: the resolve arrives, same fingerprint */
    snprintf(lp, sizeof lp, "svc,service=api p95_ms=20 %lld\n", (long long)ns_wall_ms());
    assert_int_equal(ns_write(&x, lp), 204);
    NEED(ns_wait_recv(&x, 0, "/am", 2, 10000) == 0, &x, "no resolve");
    NEED(ns_wait_recv(&x, 0, "/kener", 2, 10000) == 0, &x, "no kener resolve");
    am = body_json(&x, 0, "/am", 1);
    kn = body_json(&x, 0, "/kener", 1);
    assert_int_equal(schema_check_file(g_tests, "notify/am_webhook_v4.schema.json", am), 0);
    assert_string_equal(jstr(am, "status"), "resolved");
    a0 = json_array_get(json_object_get(am, "alerts"), 0);
    assert_string_equal(jstr(a0, "fingerprint"), fp);
    assert_string_not_equal(jstr(a0, "endsAt"), "0001-01-01T00:00:00Z");
    assert_string_equal(jstr(kn, "status"), "RESOLVED");
    json_decref(am);
    json_decref(kn);
    /* the delivery log and the channel list */
    json_t *lg = ns_log(&x, "channel=am&status=ok");
    assert_int_equal(json_array_size(lg), 2);
    assert_string_equal(jstr(json_array_get(lg, 0), "fingerprints"), fp);
    json_decref(lg);
    /* filtered by incident (the only one is 1; 2 does not exist) */
    lg = ns_log(&x, "incident=1");
    assert_int_equal(json_array_size(lg), 4); /* am and kener, firing and resolved */
    json_decref(lg);
    lg = ns_log(&x, "incident=2");
    assert_int_equal(json_array_size(lg), 0);
    json_decref(lg);
    assert_int_equal(ns_call(&x, "GET", "/api/notifications?incident=x", NULL, NULL), 400);
    /* the log survives a restart */
    assert_int_equal(srv_stop(&x.s, SIGTERM, 30000), 0);
    assert_int_equal(ns_restart(&x), 0);
    lg = ns_log(&x, "channel=am&status=ok");
    assert_int_equal(json_array_size(lg), 2);
    json_decref(lg);
    json_t *ch = NULL;
    assert_int_equal(ns_call(&x, "GET", "/api/channels", NULL, &ch), 200);
    assert_int_equal(json_array_size(json_object_get(ch, "channels")), 2);
    assert_string_equal(jstr(json_array_get(json_object_get(ch, "channels"), 1), "kind"), "kener");
    json_decref(ch);
    assert_int_equal(ns_stop(&x, 1), 0);
}

static void test_grouping_inhibition_silence(void **st)
{
    (void)st;
    nsrv x;
    assert_int_equal(ns_start(&x, "notify-group", 1,
                              "monitors:\n"
                              "  - {name: web, kind: kuma, token: tokweb}\n"
                              "rules:\n"
                              "  - {name: web-up, kind: heartbeat, measurement: heartbeat, tags: {monitor: web},\n"
                              "     period: 1s, grace: 1s, failures: 1, interval: 1s, labels: {service: api}}\n"
                              "  - {name: lat, kind: threshold, measurement: svc, field: p95_ms, expr: \"p95_ms > 100\", interval: 10s}\n"
                              "channels:\n"
                              "  - {name: hook, kind: webhook, url: 'http://127.0.0.1:%A/hook'}\n"
                              "routes:\n"
                              "  - {channels: [hook], group_by: [alertname], group_wait: 1s, group_interval: 1s}\n"
                              "inhibit_rules:\n"
                              "  - {source_match: {alertname: web-up}, target_match: {alertname: lat}, equal: [service]}\n"),
                     0);
    assert_int_equal(ns_call(&x, "GET", "/api/push/tokweb?status=up&msg=OK", NULL, NULL), 200);
    /* the monitor goes DOWN (no beat for period + grace) and is notified */
    NEED(ns_wait_recv(&x, 0, NULL, 1, 15000) == 0, &x, "no heartbeat notification");
    json_t *hb = body_json(&x, 0, NULL, 0);
    assert_string_equal(jstr(json_object_get(hb, "commonLabels"), "alertname"), "web-up");
    json_decref(hb);
    /* silence service=cache */
    char body[300];
    snprintf(body, sizeof body, "{\"matchers\":[\"service=cache\"],\"ends_at\":%lld,\"comment\":\"t\",\"created_by\":\"t\"}",
             (long long)(ns_wall_ms() / 1000 + 3600));
    assert_int_equal(ns_call(&x, "POST", "/api/silences", body, NULL), 200);
    /* four services at once: api is inhibited (its heartbeat is DOWN),
     * cache silenced, web and db grouped into one message */
    char lp[512];
    long long t = (long long)ns_wall_ms();
    snprintf(lp, sizeof lp,
             "svc,service=api p95_ms=500 %lld\nsvc,service=web p95_ms=500 %lld\nsvc,service=db p95_ms=500 %lld\n"
             "svc,service=cache p95_ms=500 %lld\n",
             t, t, t, t);
    assert_int_equal(ns_write(&x, lp), 204);
    NEED(ns_wait_recv(&x, 0, NULL, 2, 10000) == 0, &x, "no grouped message");
    srv_sleep_ms(2500); /* a second message would come within group_interval */
    size_t n = recv_count(&x.r[0], NULL);
    size_t n_lat_msgs = 0;
    for (size_t i = 1; i < n; i++) {
        json_t *o = body_json(&x, 0, NULL, i);
        const char *an = jstr(json_object_get(o, "commonLabels"), "alertname");
        if (an && !strcmp(an, "lat")) {
            n_lat_msgs++;
            json_t *al = json_object_get(o, "alerts");
            assert_int_equal(json_array_size(al), 2);
            for (size_t k = 0; k < 2; k++) {
                const char *svc = jstr(json_object_get(json_array_get(al, k), "labels"), "service");
                assert_true(!strcmp(svc, "web") || !strcmp(svc, "db"));
            }
        }
        json_decref(o);
    }
    assert_int_equal(n_lat_msgs, 1);
    json_t *e = ns_wait_log(&x, "-", "inhibited", 5000);
    NEED(e != NULL, &x, "no inhibited entry");
    json_decref(e);
    e = ns_wait_log(&x, "-", "silenced", 5000);
    NEED(e != NULL, &x, "no silenced entry");
    json_decref(e);
    /* the metrics count them */
    mk_httpc c;
    mk_httpc_resp r;
    mk_httpc_init(&c, "127.0.0.1", x.s.port);
    assert_int_equal(mk_httpc_request(&c, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_non_null(strstr(r.body, "meerkat_notifications_suppressed_total{reason=\"inhibited\"} 1"));
    assert_non_null(strstr(r.body, "meerkat_notifications_suppressed_total{reason=\"silenced\"} 1"));
    assert_non_null(strstr(r.body, "meerkat_notifications_failed_total{channel=\"hook\"} 0"));
    mk_httpc_resp_free(&r);
    mk_httpc_close(&c);
    assert_int_equal(ns_stop(&x, 1), 0);
}

/* A maintenance window of the status page (status_page.maintenance) over
 * monitor db silences db's heartbeat incident; web's, outside any window,
 * is delivered. */
static void test_maintenance_silences(void **st)
{
    (void)st;
    nsrv x;
    char cfg[2048];
    time_t now = time(NULL);
    char from[32], to[32];
    time_t a = now - 3600, b = now + 3600;
    strftime(from, sizeof from, "%Y-%m-%dT%H:%M:%SZ", gmtime(&a));
    strftime(to, sizeof to, "%Y-%m-%dT%H:%M:%SZ", gmtime(&b));
    snprintf(cfg, sizeof cfg,
             "monitors:\n"
             "  - {name: web, kind: kuma, token: tokweb}\n"
             "  - {name: db, kind: kuma, token: tokdb}\n"
             "rules:\n"
             "  - {name: up, kind: heartbeat, measurement: heartbeat, period: 1s, grace: 1s, failures: 1, interval: 1s}\n"
             "channels:\n"
             "  - {name: hook, kind: webhook, url: 'http://127.0.0.1:%%A/hook'}\n"
             "routes:\n"
             "  - {channels: [hook], group_by: [monitor], group_wait: 0s, group_interval: 1s}\n"
             "status_page:\n"
             "  maintenance:\n"
             "    - {name: DB upgrade, start: %s, end: %s, monitors: [db]}\n",
             from, to);
    assert_int_equal(ns_start(&x, "notify-maint", 1, cfg), 0);
    assert_int_equal(ns_call(&x, "GET", "/api/push/tokweb?status=up&msg=OK", NULL, NULL), 200);
    assert_int_equal(ns_call(&x, "GET", "/api/push/tokdb?status=up&msg=OK", NULL, NULL), 200);
    /* both go DOWN; only web is sent, db is logged as silenced */
    NEED(ns_wait_recv(&x, 0, NULL, 1, 15000) == 0, &x, "no heartbeat notification");
    json_t *e = ns_wait_log(&x, "-", "silenced", 10000);
    NEED(e != NULL, &x, "no silenced entry for the monitor in maintenance");
    json_decref(e);
    srv_sleep_ms(1500);
    size_t n = recv_count(&x.r[0], NULL);
    for (size_t i = 0; i < n; i++) {
        json_t *o = body_json(&x, 0, NULL, i);
        const char *m = jstr(json_object_get(o, "commonLabels"), "monitor");
        assert_non_null(m);
        assert_string_equal(m, "web");
        json_decref(o);
    }
    assert_int_equal(ns_stop(&x, 1), 0);
}

static void test_retry_fallback_escalation(void **st)
{
    (void)st;
    nsrv x;
    assert_int_equal(ns_start(&x, "notify-fallback", 3,
                              "rules:\n"
                              "  - {name: down, kind: threshold, measurement: svc, field: up, expr: \"up < 1\", interval: 10s,\n"
                              "     severity: critical}\n"
                              "channels:\n"
                              "  - {name: primary, kind: webhook, url: 'http://127.0.0.1:%A/p', max_attempts: 3, backoff: 100ms}\n"
                              "  - {name: backup, kind: webhook, url: 'http://127.0.0.1:%B/b'}\n"
                              "  - {name: boss, kind: webhook, url: 'http://127.0.0.1:%C/c'}\n"
                              "routes:\n"
                              "  - {channels: [primary], fallback: [backup], group_wait: 0s, repeat_interval: 0s,\n"
                              "     escalate: [{after: 2s, channels: [boss]}]}\n"),
                     0);
    recv_set(&x.r[0], 1000, 200, 0); /* primary answers 500, always */
    int64_t t0 = ns_wall_ms();
    char lp[128];
    snprintf(lp, sizeof lp, "svc,service=api up=0 %lld\n", (long long)t0);
    assert_int_equal(ns_write(&x, lp), 204);
    NEED(ns_wait_recv(&x, 1, "/b", 1, 15000) == 0, &x, "the fallback got nothing");
    assert_int_equal(recv_count(&x.r[0], "/p"), 3); /* three attempts on primary first */
    json_t *lg = ns_log(&x, "channel=primary");
    /* newest first: fallback, failed, failed */
    assert_int_equal(json_array_size(lg), 3);
    assert_string_equal(jstr(json_array_get(lg, 0), "status"), "fallback");
    assert_string_equal(jstr(json_array_get(lg, 1), "status"), "failed");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(lg, 1), "code")), 500);
    json_decref(lg);
    /* still firing after 2 s: the next tier */
    NEED(ns_wait_recv(&x, 2, "/c", 1, 15000) == 0, &x, "no escalation");
    json_t *inc = NULL;
    assert_int_equal(ns_call(&x, "GET", "/api/incidents?rule=down", NULL, &inc), 200);
    json_decref(inc);
    pthread_mutex_lock(&x.r[2].mu);
    double esc_s = x.r[2].reqs[0].t_s;
    pthread_mutex_unlock(&x.r[2].mu);
    assert_true(esc_s * 1000 >= (double)t0 + 2000);
    json_t *e = ns_wait_log(&x, "boss", "ok", 5000);
    NEED(e != NULL, &x, "no boss entry");
    assert_string_equal(jstr(e, "why"), "escalation");
    json_decref(e);
    /* nothing left in the outbox */
    mk_httpc c;
    mk_httpc_resp r;
    mk_httpc_init(&c, "127.0.0.1", x.s.port);
    assert_int_equal(mk_httpc_request(&c, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_non_null(strstr(r.body, "meerkat_notifications_pending 0"));
    mk_httpc_resp_free(&r);
    mk_httpc_close(&c);
    assert_int_equal(ns_stop(&x, 1), 0);
}

static void test_command_timeout_no_shell(void **st)
{
    (void)st;
    nsrv x;
    char *dir = mk_test_dir("notify-cmd-mark");
    mk_test_rmrf(dir);
    mkdir(dir, 0755);
    char cfg[2000], pwned[1200];
    snprintf(pwned, sizeof pwned, "%s/pwned", dir);
    snprintf(cfg, sizeof cfg,
             "rules:\n"
             "  - {name: cpu, kind: threshold, measurement: host, field: load, expr: \"load > 5\", interval: 10s}\n"
             "channels:\n"
             "  - {name: hang, kind: command, argv: [/bin/sleep, '100'], timeout: 1s, max_attempts: 1}\n"
             "  - {name: echo, kind: command, argv: [/bin/sh, -c, 'printf \"%%s|%%s\" \"$MEERKAT_LABEL_SERVICE\" \"$MEERKAT_RULE\"']}\n"
             "routes:\n"
             "  - {channels: [hang, echo], group_wait: 0s}\n");
    assert_int_equal(ns_start(&x, "notify-cmd", 0, cfg), 0);
    /* a tag value that a shell would run: $(touch DIR/pwned) */
    char lp[1500];
    snprintf(lp, sizeof lp, "host,service=$(touch\\ %s) load=9 %lld\n", pwned, (long long)ns_wall_ms());
    assert_int_equal(ns_write(&x, lp), 204);
    json_t *e = ns_wait_log(&x, "echo", "ok", 10000);
    NEED(e != NULL, &x, "the echo command did not run");
    char want[1400];
    snprintf(want, sizeof want, "$(touch %s)|cpu", pwned);
    assert_string_equal(jstr(e, "output"), want);
    json_decref(e);
    e = ns_wait_log(&x, "hang", "gave_up", 10000);
    NEED(e != NULL, &x, "the hanging command was not recorded");
    assert_non_null(strstr(jstr(e, "error"), "killed (SIGKILL) after the 1000 ms timeout"));
    json_decref(e);
    struct stat sb;
    assert_int_not_equal(stat(pwned, &sb), 0); /* nothing was interpreted */
    assert_int_equal(ns_stop(&x, 1), 0);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_cli_notify_test(void **st)
{
    (void)st;
    recv_srv r;
    assert_int_equal(recv_start(&r, 0), 0);
    char *dir = mk_test_dir("notify-cli");
    char path[1200], cfg[600];
    snprintf(path, sizeof path, "%s.yaml", dir);
    snprintf(cfg, sizeof cfg,
             "channels:\n  - {name: t, kind: template, url: 'http://127.0.0.1:%u/sms', escape: url,\n"
             "     body: 'to=123&msg={{alertname}}+{{status}}&s={{summary}}'}\n  - {name: dead, kind: webhook, url: 'http://127.0.0.1:1/x', timeout: 1s}\n",
             r.port);
    FILE *f = fopen(path, "w");
    fputs(cfg, f);
    fclose(f);
    int status = 0;
    const char *args[] = {"notify", "test", "--config", path, "t", NULL};
    char *out = srv_run(args, &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "sent, status 200"));
    free(out);
    assert_int_equal(recv_count(&r, "/sms"), 1);
    char *b = recv_body(&r, "/sms", 0);
    assert_string_equal(b, "to=123&msg=meerkat-test+firing&s=Test%20notification%20from%20meerkat%20notify%20test");
    free(b);
    const char *args2[] = {"notify", "test", "--config", path, "dead", NULL};
    out = srv_run(args2, &status);
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "FAILED"));
    free(out);
    const char *args3[] = {"notify", "test", "--config", path, "nope", NULL};
    out = srv_run(args3, &status);
    assert_int_equal(status, 2);
    free(out);
    /* `meerkat config check` names the line of each bad entry */
    f = fopen(path, "w");
    fputs("channels:\n  - {name: a, kind: webhook, url: 'http://x'}\n  - {name: b, kind: sms}\n"
          "routes:\n  - {channels: [a, c]}\n",
          f);
    fclose(f);
    const char *args4[] = {"config", "check", path, NULL};
    out = srv_run(args4, &status);
    assert_int_equal(status, 1);
    char want[1400];
    /* columns counted by hand: "  - {name: b, kind: sms}" -> sms at 21;
     * "  - {channels: [a, c]}" -> the list at 16 */
    snprintf(want, sizeof want, "%s:3:21: kind: 'sms' is not one of", path);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof want, "%s:5:16: channels: no channel named 'c'", path);
    assert_non_null(strstr(out, want));
    free(out);
    unlink(path);
    free(dir);
    recv_stop(&r);
}

int main(void)
{
    snprintf(g_tests, sizeof g_tests, "%s", __FILE__);
    for (int i = 0; i < 2; i++) {
        char *p = strrchr(g_tests, '/');
        if (p) *p = 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_and_resolve),
        cmocka_unit_test(test_grouping_inhibition_silence),
        cmocka_unit_test(test_maintenance_silences),
        cmocka_unit_test(test_retry_fallback_escalation),
        cmocka_unit_test(test_command_timeout_no_shell),
        cmocka_unit_test(test_cli_notify_test),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

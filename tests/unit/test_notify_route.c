/*
 * tests/unit/test_notify_route.c — the notifier's pipeline under a fake
 * clock: routing, grouping (group_wait / group_interval), inhibition,
 * silences, retries with backoff then fallback, escalation, the outbox
 * acknowledgement, the backoff schedule's bounds, config errors.
 *
 * Outbox records are made by the real incident store (in memory); the
 * channels are webhooks to loopback receivers written in
 * tests/notify/recv.h, so what is checked is what arrived over HTTP. The
 * clock is an mk_env whose now_ms the test sets; mk_notify_run_once runs
 * the pipeline synchronously. Expected answers are worked out by hand
 * from the configuration (times, counts), never from notify/'s code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "incident.h"
#include "notify.h"
#include "notify/recv.h"

#define T0 1764547200000LL /* 2025-12-01T00:00:00Z */

static int64_t g_now;
static int64_t fake_now(mk_env *e)
{
    (void)e;
    return g_now;
}
static mk_env g_env;

typedef struct fx {
    mk_inc_store *store;
    mk_notify *n;
    recv_srv a, b, c;
    int silence_rule_x; /* the fake silence source: silences rule "x" */
} fx;

static int silenced(void *ctx, const char *rule, const mk_label *l, size_t nl, int64_t now)
{
    (void)l;
    (void)nl;
    (void)now;
    fx *f = ctx;
    return f->silence_rule_x && !strcmp(rule, "x");
}

/* (Re)opens the notifier over f->store with yaml (%A %B %C replaced by the
 * three receivers' ports). */
static void fx_notifier(fx *f, const char *yaml)
{
    char text[8192];
    size_t k = 0;
    for (const char *p = yaml; *p && k + 8 < sizeof text; p++) {
        if (p[0] == '%' && (p[1] == 'A' || p[1] == 'B' || p[1] == 'C')) {
            unsigned port = p[1] == 'A' ? f->a.port : p[1] == 'B' ? f->b.port : f->c.port;
            k += (size_t)snprintf(text + k, sizeof text - k, "%u", port);
            p++;
        } else {
            text[k++] = *p;
        }
    }
    text[k] = 0;
    mk_notify_config c;
    char *errs = NULL;
    int bad = mk_notify_config_parse_text(&c, text, k, &errs);
    if (bad) fail_msg("config: %s", errs);
    free(errs);
    mk_diag d = {0};
    mk_notify_opts o = {0};
    o.env = &g_env;
    o.is_silenced = silenced;
    o.silence_ctx = f;
    o.seed = 7;
    if (mk_notify_open(f->store, &c, &o, &f->n, &d) != MK_OK) fail_msg("open: %s", d.msg);
}

static void fx_open(fx *f, const char *yaml)
{
    memset(f, 0, sizeof f[0]);
    g_env = *mk_env_default();
    g_env.now_ms = fake_now;
    g_now = T0;
    assert_int_equal(recv_start(&f->a, 0), 0);
    assert_int_equal(recv_start(&f->b, 0), 0);
    assert_int_equal(recv_start(&f->c, 0), 0);
    mk_diag d = {0};
    assert_int_equal(mk_inc_store_open(NULL, NULL, NULL, &f->store, &d), MK_OK);
    fx_notifier(f, yaml);
}

static void fx_close(fx *f)
{
    mk_notify_close(f->n);
    mk_inc_store_close(f->store, NULL);
    recv_stop(&f->a);
    recv_stop(&f->b);
    recv_stop(&f->c);
}

/* One evaluation making (rule, service) fire or clear at g_now. */
static void step(fx *f, const char *rule, const char *service, mk_severity sev, int is_bad)
{
    mk_inc_policy p = {0};
    p.failures = 1;
    p.successes = 1;
    mk_inc_obs o = {is_bad, !is_bad, sev, is_bad ? 500 : 10, 100, is_bad ? "high" : "fine"};
    mk_label l[1] = {{"service", (char *)service}};
    uint64_t sid = 0;
    for (const char *s = service; *s; s++) sid = sid * 131 + (unsigned char)*s;
    for (const char *s = rule; *s; s++) sid = sid * 131 + (unsigned char)*s;
    mk_diag d = {0};
    mk_inc_step_result r;
    assert_int_equal(mk_inc_step(f->store, rule, sid, &p, &o, l, 1, NULL, 0, g_now, &r, &d), MK_OK);
}

static size_t outbox_pending(fx *f)
{
    size_t n = 0;
    mk_inc_store_stats(f->store, NULL, &n, NULL);
    return n;
}

static size_t n_alerts_in(recv_srv *r, size_t i)
{
    char *b = recv_body(r, NULL, i);
    json_t *o = b ? json_loads(b, 0, NULL) : NULL;
    size_t n = json_array_size(json_object_get(o, "alerts"));
    json_decref(o);
    free(b);
    return n;
}

static void test_routing(void **st)
{
    (void)st;
    fx f;
    fx_open(&f, "channels:\n"
                "  - {name: a, kind: webhook, url: 'http://127.0.0.1:%A/a'}\n"
                "  - {name: b, kind: webhook, url: 'http://127.0.0.1:%B/b'}\n"
                "  - {name: c, kind: webhook, url: 'http://127.0.0.1:%C/c'}\n"
                "routes:\n"
                "  - {match: {severity: critical}, channels: [c], group_wait: 0s, continue: true}\n"
                "  - {match: {service: api}, channels: [a], group_wait: 0s}\n"
                "  - {match: {alertname: '!never'}, channels: [b], group_wait: 0s}\n");
    step(&f, "lat", "api", MK_SEV_CRITICAL, 1); /* c (continue), then a */
    step(&f, "lat", "web", MK_SEV_WARNING, 1);  /* b */
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 1);
    assert_int_equal(recv_count(&f.b, NULL), 1);
    assert_int_equal(recv_count(&f.c, NULL), 1);
    assert_int_equal(outbox_pending(&f), 0);
    fx_close(&f);
}

/* Regex matchers, anchored over the whole value as Alertmanager's =~. */
static void test_regex_routing(void **st)
{
    (void)st;
    fx f;
    fx_open(&f, "channels:\n"
                "  - {name: a, kind: webhook, url: 'http://127.0.0.1:%A/a'}\n"
                "  - {name: b, kind: webhook, url: 'http://127.0.0.1:%B/b'}\n"
                "  - {name: c, kind: webhook, url: 'http://127.0.0.1:%C/c'}\n"
                "routes:\n"
                "  - {match: {service: '~api|web.*'}, channels: [a], group_by: [service], group_wait: 0s}\n"
                "  - {match: {service: '!~db.*'}, channels: [b], group_by: [service], group_wait: 0s}\n"
                "  - {channels: [c], group_by: [service], group_wait: 0s}\n");
    step(&f, "lat", "api", MK_SEV_WARNING, 1);     /* a */
    step(&f, "lat", "webshop", MK_SEV_WARNING, 1); /* a */
    step(&f, "lat", "xapi", MK_SEV_WARNING, 1);    /* not anchored-equal to api: b */
    step(&f, "lat", "db-main", MK_SEV_WARNING, 1); /* c */
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 2);
    assert_int_equal(recv_count(&f.b, NULL), 1);
    assert_int_equal(recv_count(&f.c, NULL), 1);
    char *b = recv_body(&f.c, NULL, 0);
    assert_non_null(strstr(b, "\"service\":\"db-main\""));
    free(b);
    fx_close(&f);
}

static void test_grouping(void **st)
{
    (void)st;
    fx f;
    fx_open(&f, "channels: [{name: a, kind: webhook, url: 'http://127.0.0.1:%A/a'}]\n"
                "routes:\n"
                "  - {channels: [a], group_by: [alertname], group_wait: 10s, group_interval: 1m, repeat_interval: 0s}\n");
    step(&f, "lat", "s1", MK_SEV_WARNING, 1);
    mk_notify_run_once(f.n);
    g_now += 1000;
    step(&f, "lat", "s2", MK_SEV_WARNING, 1);
    mk_notify_run_once(f.n);
    g_now += 1000;
    step(&f, "lat", "s3", MK_SEV_WARNING, 1);
    mk_notify_run_once(f.n);
    g_now = T0 + 9999;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 0); /* still within group_wait */
    assert_int_equal(outbox_pending(&f), 3);
    g_now = T0 + 10000;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 1); /* one message, three alerts */
    assert_int_equal(n_alerts_in(&f.a, 0), 3);
    assert_int_equal(outbox_pending(&f), 0);
    /* a change at +12 s waits for group_interval after the flush (+70 s) */
    g_now = T0 + 12000;
    step(&f, "lat", "s1", MK_SEV_WARNING, 0);
    mk_notify_run_once(f.n);
    g_now = T0 + 69999;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 1);
    g_now = T0 + 70000;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 2);
    char *b = recv_body(&f.a, NULL, 1);
    json_t *o = json_loads(b, 0, NULL);
    /* the resolve plus the two still firing, as Alertmanager sends */
    assert_int_equal(json_array_size(json_object_get(o, "alerts")), 3);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "firing");
    json_decref(o);
    free(b);
    fx_close(&f);
}

static void test_inhibition_and_silence(void **st)
{
    (void)st;
    fx f;
    fx_open(&f, "channels: [{name: a, kind: webhook, url: 'http://127.0.0.1:%A/a'}]\n"
                "routes: [{channels: [a], group_by: [alertname, service], group_wait: 1s}]\n"
                "inhibit_rules:\n"
                "  - {source_match: {alertname: hb, severity: critical}, target_match: {alertname: lat}, equal: [service]}\n");
    f.silence_rule_x = 1;
    step(&f, "hb", "api", MK_SEV_CRITICAL, 1);  /* api is DOWN */
    step(&f, "lat", "api", MK_SEV_WARNING, 1);  /* inhibited */
    step(&f, "lat", "web", MK_SEV_WARNING, 1);  /* other service: sent */
    step(&f, "x", "web", MK_SEV_WARNING, 1);    /* silenced */
    mk_notify_run_once(f.n); /* group_wait runs from when the notifier sees them */
    assert_int_equal(recv_count(&f.a, NULL), 0);
    g_now += 1000;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 2); /* hb/api and lat/web */
    for (size_t i = 0; i < 2; i++) {
        char *b = recv_body(&f.a, NULL, i);
        assert_null(strstr(b, "\"alertname\":\"x\""));
        assert_true(!strstr(b, "\"alertname\":\"lat\"") || strstr(b, "\"service\":\"web\""));
        free(b);
    }
    assert_int_equal(outbox_pending(&f), 0); /* suppressed records leave the outbox too */
    json_t *lg = mk_notify_log_json(f.n, 0, NULL, "inhibited", 0);
    assert_int_equal(json_array_size(json_object_get(lg, "notifications")), 1);
    json_decref(lg);
    lg = mk_notify_log_json(f.n, 0, NULL, "silenced", 0);
    assert_int_equal(json_array_size(json_object_get(lg, "notifications")), 1);
    json_decref(lg);
    mk_notify_stats s;
    mk_notify_get_stats(f.n, &s);
    assert_int_equal(s.n_inhibited, 1);
    assert_int_equal(s.n_silenced, 1);
    fx_close(&f);
}

static void test_retry_then_fallback(void **st)
{
    (void)st;
    fx f;
    fx_open(&f, "channels:\n"
                "  - {name: a, kind: webhook, url: 'http://127.0.0.1:%A/a', max_attempts: 3, backoff: 10s, max_backoff: 1m}\n"
                "  - {name: b, kind: webhook, url: 'http://127.0.0.1:%B/b'}\n"
                "routes: [{channels: [a], fallback: [b], group_wait: 0s}]\n");
    recv_set(&f.a, 1000, 200, 0); /* a always answers 500 */
    step(&f, "lat", "api", MK_SEV_WARNING, 1);
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 1); /* the receiver saw it, and answered 500 */
    json_t *lg = mk_notify_log_json(f.n, 0, "a", "failed", 0);
    assert_int_equal(json_array_size(json_object_get(lg, "notifications")), 1);
    json_decref(lg);
    /* attempt 2 comes after a backoff in [5 s, 10 s]; attempt 3 after [10 s, 20 s] */
    g_now += 4999;
    mk_notify_run_once(f.n);
    lg = mk_notify_log_json(f.n, 0, "a", NULL, 0);
    assert_int_equal(json_array_size(json_object_get(lg, "notifications")), 1);
    json_decref(lg);
    g_now += 5001;
    mk_notify_run_once(f.n);
    g_now += 20000;
    mk_notify_run_once(f.n); /* third failure: handed to b */
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.b, NULL), 1);
    lg = mk_notify_log_json(f.n, 0, "a", "fallback", 0);
    assert_int_equal(json_array_size(json_object_get(lg, "notifications")), 1);
    json_decref(lg);
    assert_int_equal(outbox_pending(&f), 0);
    fx_close(&f);
}

static void test_give_up_keeps_order(void **st)
{
    (void)st;
    fx f;
    fx_open(&f, "channels: [{name: a, kind: webhook, url: 'http://127.0.0.1:%A/a', max_attempts: 2, backoff: 1s}]\n"
                "routes: [{channels: [a], group_wait: 0s}]\n");
    recv_set(&f.a, 1000, 200, 0);
    step(&f, "lat", "api", MK_SEV_WARNING, 1);
    mk_notify_run_once(f.n);
    assert_int_equal(outbox_pending(&f), 1); /* not confirmed: stays */
    g_now += 2000;
    mk_notify_run_once(f.n);
    json_t *lg = mk_notify_log_json(f.n, 0, "a", "gave_up", 0);
    assert_int_equal(json_array_size(json_object_get(lg, "notifications")), 1);
    json_decref(lg);
    assert_int_equal(outbox_pending(&f), 0); /* gave up, logged, released */
    fx_close(&f);
}

static void test_escalation(void **st)
{
    (void)st;
    fx f;
    fx_open(&f, "channels:\n"
                "  - {name: a, kind: webhook, url: 'http://127.0.0.1:%A/a'}\n"
                "  - {name: c, kind: webhook, url: 'http://127.0.0.1:%C/c'}\n"
                "routes: [{channels: [a], group_wait: 0s, repeat_interval: 0s, escalate: [{after: 5m, channels: [c]}]}]\n");
    step(&f, "hb", "api", MK_SEV_CRITICAL, 1);
    step(&f, "lat", "web", MK_SEV_WARNING, 1); /* warnings never escalate */
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 1);
    g_now = T0 + 299999;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.c, NULL), 0);
    g_now = T0 + 300000;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.c, NULL), 1);
    char *b = recv_body(&f.c, NULL, 0);
    assert_non_null(strstr(b, "\"alertname\":\"hb\""));
    free(b);
    g_now = T0 + 400000;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.c, NULL), 1); /* once per tier */
    /* the resolve reaches the tier too */
    step(&f, "hb", "api", MK_SEV_CRITICAL, 0);
    mk_notify_run_once(f.n);
    g_now += 300000; /* group_interval (5 m default) */
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.c, NULL), 2);
    fx_close(&f);
}

static void test_repeat(void **st)
{
    (void)st;
    fx f;
    fx_open(&f, "channels: [{name: a, kind: webhook, url: 'http://127.0.0.1:%A/a'}]\n"
                "routes: [{channels: [a], group_wait: 0s, repeat_interval: 1h}]\n");
    step(&f, "lat", "api", MK_SEV_WARNING, 1);
    mk_notify_run_once(f.n);
    g_now += 3599999;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 1);
    g_now += 1;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 2);
    /* the repeat carries the same fingerprint */
    char *b0 = recv_body(&f.a, NULL, 0), *b1 = recv_body(&f.a, NULL, 1);
    json_t *o0 = json_loads(b0, 0, NULL), *o1 = json_loads(b1, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(o0, "alerts"), 0), "fingerprint")),
                        json_string_value(json_object_get(json_array_get(json_object_get(o1, "alerts"), 0), "fingerprint")));
    json_decref(o0);
    json_decref(o1);
    free(b0);
    free(b1);
    fx_close(&f);
}

/* A restart of the notifier (records already delivered) keeps repeating
 * and escalating the incidents still firing. */
static void test_restart_keeps_firing(void **st)
{
    (void)st;
    fx f;
    const char *y = "channels:\n"
                    "  - {name: a, kind: webhook, url: 'http://127.0.0.1:%A/a'}\n"
                    "  - {name: c, kind: webhook, url: 'http://127.0.0.1:%C/c'}\n"
                    "routes: [{channels: [a], group_wait: 0s, repeat_interval: 1h, escalate: [{after: 10m, channels: [c]}]}]\n";
    fx_open(&f, y);
    step(&f, "hb", "api", MK_SEV_CRITICAL, 1);
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 1);
    assert_int_equal(outbox_pending(&f), 0);
    mk_notify_close(f.n);
    g_now += 1000;
    fx_notifier(&f, y);
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 1); /* nothing re-sent at start: it was delivered */
    g_now = T0 + 600000;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.c, NULL), 1); /* escalation still happens */
    g_now = T0 + 1000 + 3600000;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 2); /* and the repeat */
    fx_close(&f);
}

static void test_rate_limit(void **st)
{
    (void)st;
    fx f;
    fx_open(&f, "channels: [{name: a, kind: webhook, url: 'http://127.0.0.1:%A/a', rate_limit: {count: 2, per: 1m}}]\n"
                "routes: [{channels: [a], group_by: [service], group_wait: 0s}]\n");
    for (int i = 0; i < 5; i++) {
        char s[8];
        snprintf(s, sizeof s, "s%d", i);
        step(&f, "lat", s, MK_SEV_WARNING, 1);
    }
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 2); /* five groups, two tokens */
    g_now += 30001;                              /* one token back (30 s, +1 ms of rounding) */
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 3);
    g_now += 60000;
    mk_notify_run_once(f.n);
    assert_int_equal(recv_count(&f.a, NULL), 5); /* delayed, never dropped */
    assert_int_equal(outbox_pending(&f), 0);
    fx_close(&f);
}

static void test_backoff_bounds(void **st)
{
    (void)st;
    uint64_t rng = 12345;
    for (uint32_t attempt = 1; attempt <= 40; attempt++)
        for (int k = 0; k < 200; k++) {
            int64_t d = 1000;
            for (uint32_t i = 1; i < attempt; i++) d = d * 2 > 300000 ? 300000 : d * 2;
            int64_t b = mk_notify_backoff_ms(1000, 300000, attempt, &rng);
            if (b < d / 2 || b > d) fail_msg("attempt %u: %lld not in [%lld, %lld]", attempt, (long long)b,
                                             (long long)(d / 2), (long long)d);
        }
}

static void test_config_errors(void **st)
{
    (void)st;
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"channels:\n  - {name: a, kind: pager}\n", "2:21: kind: 'pager'"},
        {"channels:\n  - {name: a, kind: webhook}\n", "2:5: channel a: url is required"},
        {"channels: [{name: a, kind: webhook, url: 'http://x'}]\nroutes:\n  - {channels: [zz]}\n", "no channel named 'zz'"},
        {"routes:\n  - {channels: [a], group_wait: soon}\n", "2:33: group_wait: expected a duration"},
        {"channels:\n  - name: c\n    kind: command\n    argv: [rm, -rf]\n", "4:11: argv: the program must be an absolute path"},
        {"channels: [{name: a, kind: template, url: 'http://x', body: '{{oops'}]\n", "template: 1:1:"},
        {"inhibit_rules:\n  - {equal: [service]}\n", "2:5: inhibit rule: source_match and target_match"},
        {"routes:\n  - {match: {service: '~(api'}, channels: [a]}\n", "2:23: match: the regex of 'service' does not compile"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mk_notify_config c;
        char *errs = NULL;
        int bad = mk_notify_config_parse_text(&c, cases[i].yaml, strlen(cases[i].yaml), &errs);
        if (!bad || !errs || !strstr(errs, cases[i].want))
            fail_msg("case %zu: got '%s', want '%s'", i, errs ? errs : "(none)", cases[i].want);
        free(errs);
        mk_notify_config_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing),      cmocka_unit_test(test_regex_routing), cmocka_unit_test(test_grouping),
        cmocka_unit_test(test_inhibition_and_silence), cmocka_unit_test(test_retry_then_fallback),
        cmocka_unit_test(test_give_up_keeps_order), cmocka_unit_test(test_escalation),
        cmocka_unit_test(test_repeat),       cmocka_unit_test(test_restart_keeps_firing),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_backoff_bounds), cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

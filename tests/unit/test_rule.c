/*
 * tests/unit/test_rule.c — rules: YAML parsing and its errors, templates,
 * and the evaluation engine over data written through the storage engine
 * (detect/rule.c), with heartbeats driven by explicit evaluation times.
 *
 * Expected values are worked out by hand in the comments beside each test
 * (means, standard deviations, ratios, and when each evaluation falls).
 */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meerkat/db.h"
#include "rule.h"

#define SEC 1000LL
#define MIN 60000LL
#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */

/* ---- YAML -------------------------------------------------------------- */

static mk_err parse(const char *y, mk_rule_set *rs, mk_diag *d)
{
    memset(d, 0, sizeof *d);
    return mk_rule_parse_yaml(y, strlen(y), "alerts.yaml", rs, d);
}

static void expect_error(const char *y, const char *want)
{
    mk_rule_set rs;
    mk_diag d;
    mk_err err = parse(y, &rs, &d);
    if (err != MK_EPARSE || !strstr(d.msg, want))
        fail_msg("want error containing \"%s\", got %s: %s", want, mk_err_name(err), d.msg);
    assert_int_equal(rs.n, 0);
}

static void test_yaml_ok(void **state)
{
    (void)state;
    const char *y =
        "server:\n"
        "  listen: 127.0.0.1:8086\n"
        "rules:\n"
        "  - name: api-errors\n"
        "    kind: threshold\n"
        "    measurement: http\n"
        "    tags: {service: api, env: \"!dev\"}\n"
        "    expr: error_rate > 0.05\n"
        "    clear: error_rate < 0.04\n"
        "    reduce: mean\n"
        "    window: 5m\n"
        "    interval: 30s\n"
        "    for: 2m\n"
        "    failures: 3\n"
        "    successes: 2\n"
        "    cooldown: 10m\n"
        "    repeat: 1h\n"
        "    flap: {window: 10, high: 40, low: 20}\n"
        "    severity: critical\n"
        "    labels: {team: web}\n"
        "    annotations:\n"
        "      summary: \"{{ $labels.service }} error rate {{ $value }} > {{ $threshold }}\"\n"
        "  - name: cron-backup\n"
        "    kind: heartbeat\n"
        "    measurement: heartbeat\n"
        "    tags: {monitor: backup}\n"
        "    cron: \"0 3 * * *\"\n"
        "    tz: Europe/Berlin\n"
        "    grace: 30m\n";
    mk_rule_set rs;
    mk_diag d;
    mk_err err = parse(y, &rs, &d);
    if (err) fail_msg("%s", d.msg);
    assert_int_equal(rs.n, 2);
    mk_rule *r = &rs.rules[0];
    assert_string_equal(r->name, "api-errors");
    assert_int_equal(r->kind, MK_RULE_THRESHOLD);
    assert_string_equal(r->field, "error_rate");
    assert_int_equal(r->n_tags, 2);
    assert_string_equal(r->tags[1].key, "env");
    assert_string_equal(r->tags[1].value, "dev");
    assert_true(r->tags[1].is_negated);
    assert_int_equal(r->fire.op, MK_CMP_GT);
    assert_true(r->fire.value == 0.05);
    assert_int_equal(r->clear.op, MK_CMP_LT);
    assert_int_equal(r->reduce, MK_REDUCE_MEAN);
    assert_int_equal(r->window_ms, 5 * MIN);
    assert_int_equal(r->interval_ms, 30 * SEC);
    assert_int_equal(r->policy.for_ms, 2 * MIN);
    assert_int_equal(r->policy.failures, 3);
    assert_int_equal(r->policy.successes, 2);
    assert_int_equal(r->policy.cooldown_ms, 10 * MIN);
    assert_int_equal(r->policy.repeat_ms, 60 * MIN);
    assert_int_equal(r->policy.flap_window, 10);
    assert_true(r->policy.flap_high_pct == 40);
    assert_int_equal(r->severity, MK_SEV_CRITICAL);
    assert_string_equal(r->labels[0].value, "web");
    assert_int_equal(r->line, 4);
    assert_int_equal(r->column, 5);
    r = &rs.rules[1];
    assert_int_equal(r->kind, MK_RULE_HEARTBEAT);
    assert_string_equal(r->field, "status");
    assert_non_null(r->tz);
    assert_int_equal(r->grace_ms, 30 * MIN);
    assert_int_equal(r->severity, MK_SEV_CRITICAL);
    assert_int_equal(r->interval_ms, 60 * SEC);
    mk_rule_set_free(&rs);
    /* No rules key, and an empty file: no rules, no error. */
    assert_int_equal(parse("server: {}\n", &rs, &d), MK_OK);
    assert_int_equal(rs.n, 0);
    assert_int_equal(parse("", &rs, &d), MK_OK);
    /* JSON is YAML: the API's rule bodies parse too. */
    mk_rule one;
    const char *j = "{\"kind\":\"threshold\",\"measurement\":\"svc\",\"field\":\"qps\",\"expr\":\"< 10\"}";
    assert_int_equal(mk_rule_parse_one(j, strlen(j), "low-qps", &one, &d), MK_OK);
    assert_string_equal(one.name, "low-qps");
    assert_int_equal(one.fire.op, MK_CMP_LT);
    assert_true(one.policy.is_low_bad);
    mk_rule_clear(&one);
}

static void test_yaml_errors(void **state)
{
    (void)state;
    const char *head = "rules:\n  - name: r\n    kind: threshold\n    measurement: m\n";
    char y[1024];
    snprintf(y, sizeof y, "%s    expr: v > 1\n    fro: 5m\n", head);
    expect_error(y, "alerts.yaml:6:5: unknown key 'fro' in a rule");
    snprintf(y, sizeof y, "%s    expr: v > 1\n    for: 5 minutes\n", head);
    expect_error(y, "alerts.yaml:6:10: for must be a duration");
    snprintf(y, sizeof y, "%s    expr: v >> 1\n", head);
    expect_error(y, "alerts.yaml:5:11: expr: expected a number at column 4");
    snprintf(y, sizeof y, "%s    expr: v = 1\n", head);
    expect_error(y, "alerts.yaml:5:11: expr: expected a comparison");
    snprintf(y, sizeof y, "%s", head);
    expect_error(y, "alerts.yaml:2:5: rule 'r': threshold rule needs expr");
    snprintf(y, sizeof y, "%s    expr: v > 1000\n    clear: v < 1100\n", head);
    expect_error(y, "clear condition overlaps the fire condition");
    snprintf(y, sizeof y, "%s    expr: v > 1\n    annotations:\n      s: \"{{ $valu }}\"\n", head);
    expect_error(y, "alerts.yaml:7:10: annotations.s: template column 1: unknown placeholder");
    snprintf(y, sizeof y, "%s    expr: v > 1\n    failures: 0\n", head);
    expect_error(y, "alerts.yaml:6:15: failures must be a whole number from 1");
    snprintf(y, sizeof y, "%s    expr: v > 1\n    severity: page\n", head);
    expect_error(y, "alerts.yaml:6:15: severity must be warning or critical");
    expect_error("rules:\n  - name: r\n    kind: magic\n", "alerts.yaml:3:11: unknown kind 'magic'");
    expect_error("rules:\n  - name: a\n    kind: heartbeat\n    measurement: hb\n    period: 1m\n"
                 "  - name: a\n    kind: heartbeat\n    measurement: hb\n    period: 1m\n",
                 "alerts.yaml:6:5: rule name 'a' is already used at line 2");
    expect_error("rules:\n  - name: h\n    kind: heartbeat\n    measurement: hb\n    cron: \"61 * * * *\"\n",
                 "minute value out of range");
    expect_error("rules:\n  - name: h\n    kind: heartbeat\n    measurement: hb\n    cron: \"* * * * *\"\n    tz: Nowhere/Land\n",
                 "unknown time zone 'Nowhere/Land'");
    expect_error("rules:\n  - name: h\n    kind: heartbeat\n    measurement: hb\n", "needs period");
    expect_error("rules:\n  - name: \"bad name\"\n    kind: heartbeat\n    measurement: hb\n    period: 1m\n",
                 "name may hold only");
    expect_error("rules: 5\n", "alerts.yaml:1:8: rules must be a list");
    expect_error("rules:\n  - name: r\n    kind: \"threshold\n", "alerts.yaml:4:1: YAML syntax error");
    expect_error("rules:\n  - [1, 2]\n", "alerts.yaml:2:5: a rule must be a mapping");
}

static void test_templates(void **state)
{
    (void)state;
    mk_label l[] = {{"service", "api"}, {"env", "prod"}};
    mk_rule_tmpl_ctx c = {"api-latency", 412.5, 100, MK_SEV_CRITICAL, "too slow", l, 2};
    char *s = NULL;
    assert_int_equal(mk_rule_render("{{ $labels.service }} p95 {{$value}}ms > {{ $threshold }} ({{ $severity }}, "
                                    "{{ $rule }}: {{ $reason }}){{ $labels.missing }}!",
                                    &c, &s, NULL),
                     MK_OK);
    assert_string_equal(s, "api p95 412.5ms > 100 (critical, api-latency: too slow)!");
    free(s);
    mk_diag d = {0};
    assert_int_equal(mk_rule_render("x {{ $value", &c, &s, &d), MK_EPARSE);
    assert_non_null(strstr(d.msg, "column 3: '{{' without a closing '}}'"));
    assert_int_equal(mk_rule_render("ab{{ $labels }}", &c, &s, &d), MK_EPARSE);
    assert_non_null(strstr(d.msg, "column 3: unknown placeholder"));
    assert_int_equal(mk_rule_render("no placeholders", NULL, NULL, &d), MK_OK);
    c.value = 1.0 / 3;
    assert_int_equal(mk_rule_render("{{ $value }}", &c, &s, NULL), MK_OK);
    assert_string_equal(s, "0.333333");
    free(s);
}

/* ---- evaluation over the engine ------------------------------------------ */

typedef struct fixture {
    char *dir;
    mk_db *db;
    mk_rule_engine *eng;
} fixture;

static void fx_open(fixture *f, const char *name)
{
    f->dir = mk_test_dir(name);
    assert_non_null(f->dir);
    mk_options o;
    mk_options_init(&o);
    o.fsync = MK_FSYNC_OFF;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(f->dir, &o, &f->db, &d), MK_OK);
    f->eng = NULL;
}

static void fx_engine(fixture *f, const char *yaml, mk_rule_engine_opts *opts)
{
    mk_rule_set rs;
    mk_diag d = {0};
    mk_err err = mk_rule_parse_yaml(yaml, strlen(yaml), "test.yaml", &rs, &d);
    if (err) fail_msg("%s", d.msg);
    char inc[4200];
    snprintf(inc, sizeof inc, "%s/incidents", f->dir);
    mk_rule_engine_opts o = opts ? *opts : (mk_rule_engine_opts){0};
    o.incident_dir = inc;
    err = mk_rule_engine_open(f->db, &rs, &o, &f->eng, &d);
    if (err) fail_msg("%s", d.msg);
    mk_rule_set_free(&rs);
}

static void fx_close(fixture *f)
{
    assert_int_equal(mk_rule_engine_close(f->eng, NULL), MK_OK);
    assert_int_equal(mk_db_close(f->db, NULL), MK_OK);
    mk_test_rmrf(f->dir);
    free(f->dir);
}

static uint64_t series(fixture *f, const char *m, const char *tk, const char *tv, const char *field)
{
    mk_tag t = {tk, tv};
    uint64_t id;
    assert_int_equal(mk_db_series(f->db, m, tk ? &t : NULL, tk ? 1 : 0, field, &id, NULL), MK_OK);
    return id;
}

static void put(fixture *f, uint64_t id, int64_t ts, double v)
{
    mk_point p = {id, ts, v};
    assert_int_equal(mk_db_write(f->db, &p, 1, NULL), MK_OK);
}

static mk_rule_eval_stats eval(fixture *f, int64_t now)
{
    mk_rule_eval_stats st;
    mk_diag d = {0};
    mk_err err = mk_rule_engine_evaluate(f->eng, now, &st, &d);
    if (err) fail_msg("evaluate: %s", d.msg);
    return st;
}

static size_t incidents(fixture *f, mk_incident **l)
{
    size_t n;
    assert_int_equal(mk_inc_list(mk_rule_engine_store(f->eng), NULL, l, &n, NULL), MK_OK);
    return n;
}

static size_t outbox(fixture *f, mk_outbox_rec **r)
{
    size_t n;
    assert_int_equal(mk_inc_outbox_pending(mk_rule_engine_store(f->eng), 0, r, &n, NULL), MK_OK);
    return n;
}

/* api's error rate is 0.01, then 0.10 for ts in [5 min, 8 min), then 0.01;
 * web stays at 0.01. Samples every 10 s. Rule: mean over 1 min > 0.05,
 * failures 2, evaluated each minute m over (m-1, m]:
 *   m=5: five samples of 0.01 and one (at 300 s) of 0.10: mean 0.025 -> ok
 *   m=6: all 0.10 -> PENDING;  m=7: -> FIRING
 *   m=8: five 0.10 and one 0.01 (at 480 s): 0.085 -> still bad
 *   m=9: all 0.01 -> RESOLVED (successes 1). */
static void test_threshold(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, "rule-threshold");
    uint64_t api = series(&f, "http", "service", "api", "error_rate");
    uint64_t web = series(&f, "http", "service", "web", "error_rate");
    for (int64_t t = 0; t <= 12 * MIN; t += 10 * SEC) {
        put(&f, api, T0 + t, t >= 5 * MIN && t < 8 * MIN ? 0.10 : 0.01);
        put(&f, web, T0 + t, 0.01);
    }
    fx_engine(&f,
              "rules:\n"
              "  - name: api-errors\n"
              "    kind: threshold\n"
              "    measurement: http\n"
              "    expr: error_rate > 0.05\n"
              "    reduce: mean\n"
              "    window: 1m\n"
              "    interval: 1m\n"
              "    failures: 2\n"
              "    labels: {team: web}\n"
              "    annotations: {summary: \"{{ $labels.service }} errors {{ $value }} over {{ $threshold }}\"}\n",
              NULL);
    mk_inc_store *s = mk_rule_engine_store(f.eng);
    mk_inc_state want[] = {MK_INC_OK, MK_INC_OK, MK_INC_OK, MK_INC_OK, MK_INC_OK, MK_INC_OK,
                           MK_INC_PENDING, MK_INC_FIRING, MK_INC_FIRING, MK_INC_RESOLVED, MK_INC_OK};
    for (int m = 1; m <= 10; m++) {
        mk_rule_eval_stats st = eval(&f, T0 + m * MIN);
        assert_int_equal(st.n_rules_run, 1);
        assert_int_equal(st.n_series, 2);
        assert_int_equal(mk_inc_machine_state(s, "api-errors", api), want[m]);
        assert_int_equal(mk_inc_machine_state(s, "api-errors", web), MK_INC_OK);
    }
    /* Not due again within the same minute. */
    assert_int_equal(eval(&f, T0 + 10 * MIN + 30 * SEC).n_rules_run, 0);
    mk_incident *l;
    assert_int_equal(incidents(&f, &l), 1);
    assert_int_equal(l[0].series_id, api);
    assert_int_equal(l[0].start_ms, T0 + 6 * MIN);
    assert_int_equal(l[0].fired_ms, T0 + 7 * MIN);
    assert_int_equal(l[0].end_ms, T0 + 9 * MIN);
    assert_true(fabs(l[0].peak - 0.10) < 1e-12);
    assert_string_equal(l[0].reason, "error_rate 0.1 > 0.05"); /* texts are those of the last notification */
    assert_int_equal(l[0].n_labels, 2);
    assert_string_equal(l[0].labels[0].key, "service");
    assert_string_equal(l[0].labels[0].value, "api");
    assert_string_equal(l[0].labels[1].key, "team");
    assert_string_equal(l[0].annotations[0].value, "api errors 0.1 over 0.05");
    mk_incidents_free(l, 1);
    mk_outbox_rec *ob;
    assert_int_equal(outbox(&f, &ob), 2);
    assert_int_equal(ob[0].event, MK_EV_FIRING);
    assert_string_equal(ob[0].annotations[0].value, "api errors 0.1 over 0.05");
    assert_int_equal(ob[1].event, MK_EV_RESOLVED);
    mk_inc_outbox_free(ob, 2);
    fx_close(&f);
}

/* Hysteresis: fire above 1000, clear below 900; one sample a minute.
 *   values 800 1100 950 920 850 950 -> OK FIRING FIRING FIRING RESOLVED OK */
static void test_threshold_hysteresis(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, "rule-hyst");
    uint64_t id = series(&f, "svc", "service", "api", "p95_ms");
    double v[] = {800, 1100, 950, 920, 850, 950};
    for (int m = 1; m <= 6; m++) put(&f, id, T0 + m * MIN, v[m - 1]);
    fx_engine(&f, "rules:\n  - name: slow\n    kind: threshold\n    measurement: svc\n    expr: p95_ms > 1000\n"
                  "    clear: p95_ms < 900\n", NULL);
    mk_inc_state want[] = {MK_INC_OK, MK_INC_FIRING, MK_INC_FIRING, MK_INC_FIRING, MK_INC_RESOLVED, MK_INC_OK};
    for (int m = 1; m <= 6; m++) {
        eval(&f, T0 + m * MIN);
        assert_int_equal(mk_inc_machine_state(mk_rule_engine_store(f.eng), "slow", id), want[m - 1]);
    }
    /* qps < 10 over the same engine: a low-is-bad rule whose peak is the minimum. */
    uint64_t q = series(&f, "svc", "service", "api", "qps");
    double qv[] = {50, 8, 3, 6, 40};
    for (int m = 7; m <= 11; m++) put(&f, q, T0 + m * MIN, qv[m - 7]);
    mk_rule r;
    const char *j = "{kind: threshold, measurement: svc, field: qps, expr: \"< 10\"}";
    assert_int_equal(mk_rule_parse_one(j, strlen(j), "low-qps", &r, NULL), MK_OK);
    assert_int_equal(mk_rule_engine_put_rule(f.eng, &r, NULL), MK_OK);
    mk_rule_clear(&r);
    for (int m = 7; m <= 11; m++) eval(&f, T0 + m * MIN);
    mk_incident *l;
    mk_inc_filter flt = {0};
    flt.rule = "low-qps";
    size_t n;
    assert_int_equal(mk_inc_list(mk_rule_engine_store(f.eng), &flt, &l, &n, NULL), MK_OK);
    assert_int_equal(n, 1);
    assert_true(l[0].peak == 3);
    assert_int_equal(l[0].end_ms, T0 + 11 * MIN);
    mk_incidents_free(l, n);
    fx_close(&f);
}

/* Dynamic: samples at minutes 1..60 alternate 100 (odd) and 110 (even):
 * mean 105, population sd 5. At 61 min the value 130 lies 25 = 5 sd above:
 * beyond k = 3 -> bad, threshold 105 + 15 = 120. At 62 min 112 is 1.4 sd
 * (the history has moved by one sample: minutes 2..61 = 29 x 100, 30 x 110
 * and 130; mean 105.5, sd sqrt(sumsq/n - mean^2) = 5.9...) -> clear. */
static void test_dynamic(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, "rule-dynamic");
    uint64_t id = series(&f, "svc", NULL, NULL, "p95_ms");
    for (int m = 1; m <= 60; m++) put(&f, id, T0 + m * MIN, m % 2 ? 100 : 110);
    put(&f, id, T0 + 61 * MIN, 130);
    put(&f, id, T0 + 62 * MIN, 112);
    fx_engine(&f, "rules:\n  - name: dyn\n    kind: dynamic\n    measurement: svc\n    field: p95_ms\n    k: 3\n"
                  "    window: 1m\n    history: 1h\n", NULL);
    eval(&f, T0 + 61 * MIN);
    mk_incident *l;
    assert_int_equal(incidents(&f, &l), 1);
    assert_int_equal(l[0].state, MK_INC_FIRING);
    assert_true(l[0].value == 130);
    assert_true(fabs(l[0].threshold - 120) < 1e-9);
    assert_string_equal(l[0].reason, "p95_ms 130 is 5.0 sd above the mean 105 of the preceding 1h (sd 5)");
    mk_incidents_free(l, 1);
    eval(&f, T0 + 62 * MIN);
    assert_int_equal(mk_inc_machine_state(mk_rule_engine_store(f.eng), "dyn", id), MK_INC_RESOLVED);
    fx_close(&f);
}

/* Seasonal: this hour's samples alternate 400 and 424 (mean 412), the same
 * hour a week ago 100 and 116 (mean 108): ratio 3.81 >= 2 -> fires with the
 * reason text of the issue. */
static int n_baseline_calls;
static mk_err fixed_baseline(void *ctx, mk_db *db, uint64_t id, int64_t from, int64_t to, double *mean, uint64_t *n,
                             mk_diag *diag)
{
    (void)db; (void)id; (void)diag;
    n_baseline_calls++;
    assert_int_equal(to - from, 3600 * SEC);
    assert_int_equal(to, *(int64_t *)ctx - 7 * 86400 * SEC + 1);
    *mean = 206;
    *n = 60;
    return MK_OK;
}

static void test_seasonal(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, "rule-seasonal");
    uint64_t id = series(&f, "svc", "service", "api", "p95_ms");
    int64_t now = T0 + 8 * 86400 * SEC;
    for (int k = 0; k < 60; k++) {
        put(&f, id, now - 7 * 86400 * SEC - k * MIN, k % 2 ? 116 : 100);
        put(&f, id, now - k * MIN, k % 2 ? 424 : 400);
    }
    const char *y = "rules:\n  - name: weekly\n    kind: seasonal\n    measurement: svc\n    field: p95_ms\n"
                    "    baseline: 7d\n    ratio: 2\n    direction: above\n    window: 1h\n    interval: 1m\n";
    fx_engine(&f, y, NULL);
    eval(&f, now);
    mk_incident *l;
    assert_int_equal(incidents(&f, &l), 1);
    assert_int_equal(l[0].state, MK_INC_FIRING);
    assert_string_equal(l[0].reason, "p95_ms 412 is 3.8x the same hour last week (108)");
    assert_true(fabs(l[0].threshold - 216) < 1e-9);
    mk_incidents_free(l, 1);
    assert_int_equal(mk_rule_engine_close(f.eng, NULL), MK_OK);
    /* A provider callback supplies the baseline instead: 412 / 206 = 2.0 -> fires. */
    char inc[4200];
    snprintf(inc, sizeof inc, "%s/incidents", f.dir);
    mk_test_rmrf(inc);
    mk_rule_engine_opts o = {0};
    o.baseline = fixed_baseline;
    o.baseline_ctx = &now;
    fx_engine(&f, y, &o);
    eval(&f, now);
    assert_int_equal(n_baseline_calls, 1);
    assert_int_equal(incidents(&f, &l), 1);
    assert_string_equal(l[0].reason, "p95_ms 412 is 2x the same hour last week (206)");
    mk_incidents_free(l, 1);
    fx_close(&f);
}

/* Issue 4: seasonal baselines through the rollup tiers. Raw data is kept
 * 2 d (fake clock at now = T0 + 10.5 d). Week 1 [T0, T0 + 7 d) has a
 * sample every minute at :30 s, rolled up, then its raw blocks dropped by
 * retention; from T0 + 7 d on, samples on the minute marks (an outlier
 * 5000 exactly 1 d 1 h before now, 1 ms before the daily rule's window),
 * the last hour at 10000 so both rules fire and the incidents carry
 * threshold = 2 x baseline.
 *  - weekly (baseline 7d): no raw data is left in its baseline window; the
 *    baseline comes from the 5 min tier and equals the brute-force mean of
 *    the samples written there within 1e-6 (the window is 1 ms off the
 *    bucket edges: the edge buckets weigh (5 min - 1 ms) / 5 min and
 *    1 ms / 5 min);
 *  - daily (baseline 1d): within raw, read from raw exactly (a bucket
 *    would take the outlier in). */
static double bf_mean(const int64_t *ts, const double *v, size_t n, int64_t from, int64_t to, size_t *cnt)
{
    double s = 0;
    *cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (ts[i] >= from && ts[i] < to) { s += v[i]; (*cnt)++; }
    return *cnt ? s / (double)*cnt : NAN;
}

static void test_seasonal_tiers(void **state)
{
    (void)state;
    const int64_t DAY = 86400 * SEC, HOUR = 3600 * SEC, now = T0 + 10 * DAY + 12 * HOUR;
    fixture f;
    f.dir = mk_test_dir("rule-tiers");
    mk_faultenv fe;
    f.db = mk_test_open_at(f.dir, &fe, now, 2 * DAY);
    mk_diag d = {0};
    f.eng = NULL;
    uint64_t id = series(&f, "svc", "service", "api", "p95_ms");
    size_t cap = (size_t)(11 * 1440), n = 0;
    int64_t *ts = malloc(cap * sizeof *ts);
    double *v = malloc(cap * sizeof *v);
    mk_point *p = malloc(cap * sizeof *p);
    assert_true(ts && v && p);
    for (int64_t k = 0; k < 7 * 1440; k++, n++) {
        ts[n] = T0 + k * MIN + 30 * SEC;
        v[n] = 100 + (double)((k * 7919) % 101);
    }
    for (int64_t t = T0 + 7 * DAY; t <= now; t += MIN, n++) {
        ts[n] = t;
        v[n] = t == now - DAY - HOUR ? 5000 : t > now - HOUR ? 10000 : 100 + (double)((t / MIN) % 13);
    }
    /* written day by day, as they would arrive (one bulk write would be
     * sealed into a few long blocks reaching into the days still kept) */
    for (size_t i = 0, i0 = 0; i <= n; i++) {
        if (i < n && (i == i0 || (ts[i] - T0) / DAY == (ts[i0] - T0) / DAY)) {
            p[i - i0] = (mk_point){id, ts[i], v[i]};
            continue;
        }
        assert_int_equal(mk_db_write(f.db, p, i - i0, &d), MK_OK);
        assert_int_equal(mk_db_flush(f.db, &d), MK_OK);
        if (i < n) p[0] = (mk_point){id, ts[i], v[i]};
        i0 = i;
    }
    assert_int_equal(mk_db_compact(f.db, NULL, &d), MK_OK); /* builds the tiers */
    uint64_t n_drop = 0;
    assert_int_equal(mk_db_retention(f.db, 0, NULL, NULL, &n_drop, &d), MK_OK);
    assert_true(n_drop >= 1);
    /* the weekly rule's baseline window has no raw samples left */
    int64_t wfrom = now + 1 - HOUR - 7 * DAY, wto = now + 1 - 7 * DAY;
    mk_iter *it = NULL;
    assert_int_equal(mk_db_iter(f.db, id, wfrom, wto, &it, &d), MK_OK);
    const int64_t *gt;
    const double *gv;
    size_t m;
    assert_int_equal(mk_iter_next(it, &gt, &gv, &m, &d), MK_OK);
    assert_int_equal(m, 0);
    mk_iter_free(it);

    const char *y = "rules:\n"
                    "  - {name: weekly, kind: seasonal, measurement: svc, field: p95_ms, baseline: 7d, ratio: 2,"
                    " direction: above, window: 1h, interval: 1m}\n"
                    "  - {name: daily, kind: seasonal, measurement: svc, field: p95_ms, baseline: 1d, ratio: 2,"
                    " direction: above, window: 1h, interval: 1m}\n";
    fx_engine(&f, y, NULL);
    eval(&f, now);
    mk_incident *l;
    size_t n_inc = incidents(&f, &l);
    assert_int_equal(n_inc, 2);
    size_t cw, cd;
    double want_w = bf_mean(ts, v, n, wfrom, wto, &cw);
    double want_d = bf_mean(ts, v, n, now + 1 - HOUR - DAY, now + 1 - DAY, &cd);
    assert_int_equal(cw, 60);
    assert_int_equal(cd, 60);
    int seen = 0;
    for (size_t i = 0; i < n_inc; i++) {
        double base = l[i].threshold / 2;
        print_message("  %s: baseline %.9g, brute force %.9g\n", l[i].rule, base,
                      strcmp(l[i].rule, "weekly") == 0 ? want_w : want_d);
        if (strcmp(l[i].rule, "weekly") == 0) {
            assert_true(fabs(base - want_w) <= 1e-6 * want_w);
            seen |= 1;
        } else {
            assert_string_equal(l[i].rule, "daily");
            assert_true(base == want_d);
            seen |= 2;
        }
    }
    assert_int_equal(seen, 3);
    mk_incidents_free(l, n_inc);
    free(ts);
    free(v);
    free(p);
    fx_close(&f);
}

/* Anomaly: the score comes from a callback (the detector). Scores
 * 0.2 0.95 0.7 0.4 with above 0.9 and clear_below 0.5:
 * OK, FIRING, FIRING (between), RESOLVED. */
static double scripted[] = {0.2, 0.95, 0.7, 0.4};
static int score_fn(void *ctx, const mk_rule *r, uint64_t id, int64_t now, double *score)
{
    (void)r; (void)id;
    int *i = ctx;
    (void)now;
    *score = scripted[(*i)++];
    return 1;
}

static void test_anomaly(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, "rule-anomaly");
    uint64_t id = series(&f, "svc", NULL, NULL, "p95_ms");
    put(&f, id, T0, 1);
    int i = 0;
    mk_rule_engine_opts o = {0};
    o.score = score_fn;
    o.score_ctx = &i;
    fx_engine(&f, "rules:\n  - {name: anom, kind: anomaly, measurement: svc, field: p95_ms, above: 0.9, clear_below: 0.5}\n", &o);
    mk_inc_state want[] = {MK_INC_OK, MK_INC_FIRING, MK_INC_FIRING, MK_INC_RESOLVED};
    for (int m = 0; m < 4; m++) {
        eval(&f, T0 + m * MIN);
        assert_int_equal(mk_inc_machine_state(mk_rule_engine_store(f.eng), "anom", id), want[m]);
    }
    mk_incident *l;
    assert_int_equal(incidents(&f, &l), 1);
    assert_true(l[0].peak == 0.95);
    mk_incidents_free(l, 1);
    fx_close(&f);
}

/* Heartbeats every 60 s at 0..600 s; period 60 s, grace 30 s, failures 2,
 * evaluated every 30 s. Next beat due at 660 s; late > 30 s from 720 s on:
 * 720 PENDING, 750 FIRING. A beat at 800 s resolves it at 810 s. */
static void test_heartbeat_stops_and_resumes(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, "rule-hb");
    uint64_t id = series(&f, "heartbeat", "monitor", "api", "status");
    for (int64_t t = 0; t <= 600; t += 60) put(&f, id, T0 + t * SEC, 1);
    /* The engine's clock is a fake one: evaluation times come from it, as
     * the server's loop does (evaluate at mk_rule_engine_now). */
    mk_faultenv fe;
    mk_faultenv_init(&fe);
    mk_rule_engine_opts o = {0};
    o.env = &fe.env;
    fx_engine(&f, "rules:\n  - name: api-up\n    kind: heartbeat\n    measurement: heartbeat\n    tags: {monitor: api}\n"
                  "    period: 60s\n    grace: 30s\n    failures: 2\n    interval: 30s\n", &o);
    mk_inc_store *s = mk_rule_engine_store(f.eng);
    for (int64_t t = 630; t <= 780; t += 30) {
        fe.fake_now_ms = T0 + t * SEC;
        eval(&f, mk_rule_engine_now(f.eng));
        mk_inc_state w = t < 720 ? MK_INC_OK : t < 750 ? MK_INC_PENDING : MK_INC_FIRING;
        if (mk_inc_machine_state(s, "api-up", id) != w) fail_msg("at %" PRId64 " s: state %d, want %d", t, mk_inc_machine_state(s, "api-up", id), w);
    }
    put(&f, id, T0 + 800 * SEC, 1);
    fe.fake_now_ms = T0 + 810 * SEC;
    eval(&f, mk_rule_engine_now(f.eng));
    assert_int_equal(mk_inc_machine_state(s, "api-up", id), MK_INC_RESOLVED);
    mk_incident *l;
    assert_int_equal(incidents(&f, &l), 1);
    assert_int_equal(l[0].fired_ms, T0 + 750 * SEC);
    assert_int_equal(l[0].end_ms, T0 + 810 * SEC);
    assert_int_equal(l[0].severity, MK_SEV_CRITICAL);
    assert_string_equal(l[0].reason, "no heartbeat for 2m30s: expected every 1m, grace 30s");
    mk_incidents_free(l, 1);
    fx_close(&f);
}

/* Kener-style delays: DEGRADED after 60 s late, DOWN after 180 s late.
 * Beats to 600 s, due 660 s: 750 s (90 s late) DEGRADED = FIRING warning;
 * 870 s (210 s late) DOWN = ESCALATED to critical; a beat at 900 s resolves.
 * A beat carrying status DOWN (0) fires at the next evaluation. */
static void test_heartbeat_degraded_then_down(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, "rule-hb2");
    uint64_t id = series(&f, "heartbeat", "monitor", "db", "status");
    for (int64_t t = 0; t <= 600; t += 60) put(&f, id, T0 + t * SEC, 1);
    fx_engine(&f, "rules:\n  - name: db-up\n    kind: heartbeat\n    measurement: heartbeat\n    tags: {monitor: db}\n"
                  "    period: 60s\n    degraded_after: 60s\n    down_after: 180s\n    interval: 30s\n", NULL);
    mk_inc_store *s = mk_rule_engine_store(f.eng);
    for (int64_t t = 630; t <= 870; t += 30) {
        eval(&f, T0 + t * SEC);
        if (t == 780) { /* the monitors view: degraded, last beat at 600 s */
            mk_rule_monitor *mo;
            size_t nm;
            assert_int_equal(mk_rule_engine_monitors(f.eng, T0 + t * SEC, &mo, &nm, NULL), MK_OK);
            assert_int_equal(nm, 1);
            assert_int_equal(mo[0].series_id, id);
            assert_true(mo[0].has_beat);
            assert_int_equal(mo[0].last_beat_ms, T0 + 600 * SEC);
            assert_true(mo[0].last_status == 1);
            assert_int_equal(mo[0].level, 1);
            assert_int_equal(mo[0].state, MK_INC_FIRING);
            assert_string_equal(mo[0].labels[0].value, "db");
            mk_rule_monitors_free(mo, nm);
        }
    }
    put(&f, id, T0 + 900 * SEC, 1);
    eval(&f, T0 + 900 * SEC);
    assert_int_equal(mk_inc_machine_state(s, "db-up", id), MK_INC_RESOLVED);
    mk_outbox_rec *ob;
    size_t n = outbox(&f, &ob);
    assert_int_equal(n, 3);
    assert_int_equal(ob[0].event, MK_EV_FIRING);
    assert_int_equal(ob[0].severity, MK_SEV_WARNING);
    assert_int_equal(ob[0].event_ms, T0 + 750 * SEC);
    assert_int_equal(ob[1].event, MK_EV_ESCALATED);
    assert_int_equal(ob[1].severity, MK_SEV_CRITICAL);
    assert_int_equal(ob[1].event_ms, T0 + 870 * SEC);
    assert_int_equal(ob[2].event, MK_EV_RESOLVED);
    mk_inc_outbox_free(ob, n);
    /* status DOWN pushed at 920 s: fires at 930 s although beats are on time. */
    put(&f, id, T0 + 920 * SEC, 0);
    eval(&f, T0 + 930 * SEC);
    mk_incident *l;
    n = incidents(&f, &l);
    assert_int_equal(n, 2);
    assert_int_equal(l[0].state, MK_INC_FIRING);
    assert_string_equal(l[0].reason, "status DOWN reported 10s ago");
    mk_incidents_free(l, n);
    fx_close(&f);
}

/* A monitor never heard from fires period + grace after the rule's first
 * evaluation, under the series id its first beat will have; the first beat
 * (here through on_sample, then stored) resolves that same incident. */
static void test_heartbeat_never_seen(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, "rule-hb3");
    fx_engine(&f, "rules:\n  - name: job\n    kind: heartbeat\n    measurement: heartbeat\n    tags: {monitor: nightly}\n"
                  "    period: 60s\n    interval: 30s\n", NULL);
    for (int64_t t = 1000; t <= 1090; t += 30) eval(&f, T0 + t * SEC); /* due 1060 (+0 grace): late at 1090 */
    mk_incident *l;
    assert_int_equal(incidents(&f, &l), 1);
    assert_int_equal(l[0].fired_ms, T0 + 1090 * SEC);
    assert_string_equal(l[0].labels[0].key, "monitor");
    assert_string_equal(l[0].labels[0].value, "nightly");
    assert_non_null(strstr(l[0].reason, "(none stored)"));
    uint64_t vid = l[0].series_id;
    mk_incidents_free(l, 1);
    uint64_t id = series(&f, "heartbeat", "monitor", "nightly", "status");
    assert_int_equal(id, vid);
    mk_rule_engine_on_sample(f.eng, id, T0 + 1100 * SEC, 1); /* not in the database yet: the hook alone */
    eval(&f, T0 + 1110 * SEC);
    assert_int_equal(mk_inc_machine_state(mk_rule_engine_store(f.eng), "job", id), MK_INC_RESOLVED);
    fx_close(&f);
}

/* By cron in Europe/Berlin: "0 3 * * *" with 10 min grace. A run at 03:00
 * CET on 2026-03-28 (02:00 UTC) pings; the next run is the spring-forward
 * night, where 03:00 CEST = 01:00 UTC. Late by > 10 min from 01:10 UTC on
 * 29 March: the 01:11 evaluation fires (interval 1 min). */
static void test_heartbeat_cron(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, "rule-hb4");
    uint64_t id = series(&f, "heartbeat", "monitor", "backup", "status");
    int64_t ping = 1774663200000LL; /* 2026-03-28T02:00:00Z */
    put(&f, id, ping + 20 * SEC, 1);
    fx_engine(&f, "rules:\n  - name: backup\n    kind: heartbeat\n    measurement: heartbeat\n    tags: {monitor: backup}\n"
                  "    cron: \"0 3 * * *\"\n    tz: Europe/Berlin\n    grace: 10m\n", NULL);
    int64_t due = 1774746000000LL; /* 2026-03-29T01:00:00Z */
    for (int64_t t = due - 5 * MIN; t <= due + 11 * MIN; t += MIN) {
        eval(&f, t);
        mk_inc_state w = t <= due + 10 * MIN ? MK_INC_OK : MK_INC_FIRING;
        assert_int_equal(mk_inc_machine_state(mk_rule_engine_store(f.eng), "backup", id), w);
    }
    fx_close(&f);
}

/* Rules replaced at runtime are validated; a clean restart keeps incidents. */
static void test_put_delete_restart(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, "rule-put");
    uint64_t id = series(&f, "svc", NULL, NULL, "qps");
    put(&f, id, T0, 5);
    put(&f, id, T0 + MIN, 5);
    fx_engine(&f, "", NULL);
    mk_rule bad = {0};
    bad.name = "broken";
    bad.kind = MK_RULE_THRESHOLD;
    bad.measurement = "svc";
    bad.field = "qps";
    mk_diag d = {0};
    assert_int_equal(mk_rule_engine_put_rule(f.eng, &bad, &d), MK_EINVAL);
    assert_non_null(strstr(d.msg, "threshold rule needs expr"));
    mk_rule r;
    const char *j = "{kind: threshold, measurement: svc, field: qps, expr: \"< 10\"}";
    assert_int_equal(mk_rule_parse_one(j, strlen(j), "low", &r, NULL), MK_OK);
    assert_int_equal(mk_rule_engine_put_rule(f.eng, &r, NULL), MK_OK);
    eval(&f, T0);
    assert_int_equal(mk_inc_machine_state(mk_rule_engine_store(f.eng), "low", id), MK_INC_FIRING);
    /* Replace with a limit the value passes: the same machine resolves. */
    r.fire.value = 1;
    assert_int_equal(mk_rule_engine_put_rule(f.eng, &r, NULL), MK_OK);
    mk_rule_set rs;
    assert_int_equal(mk_rule_engine_rules(f.eng, &rs, NULL), MK_OK);
    assert_int_equal(rs.n, 1);
    assert_true(rs.rules[0].fire.value == 1);
    mk_rule_set_free(&rs);
    /* Restart the engine before evaluating: the FIRING incident survives. */
    assert_int_equal(mk_rule_engine_close(f.eng, NULL), MK_OK);
    fx_engine(&f, "", NULL);
    assert_int_equal(mk_rule_engine_put_rule(f.eng, &r, NULL), MK_OK);
    mk_rule_clear(&r);
    assert_int_equal(mk_inc_machine_state(mk_rule_engine_store(f.eng), "low", id), MK_INC_FIRING);
    eval(&f, T0 + MIN);
    assert_int_equal(mk_inc_machine_state(mk_rule_engine_store(f.eng), "low", id), MK_INC_RESOLVED);
    mk_incident inc;
    assert_int_equal(mk_inc_get(mk_rule_engine_store(f.eng), 1, &inc, NULL), MK_OK);
    assert_int_equal(inc.end_ms, T0 + MIN);
    mk_incident_clear(&inc);
    assert_int_equal(mk_inc_get(mk_rule_engine_store(f.eng), 2, &inc, &d), MK_ENOTFOUND);
    assert_int_equal(mk_rule_engine_delete_rule(f.eng, "low", NULL), MK_OK);
    assert_int_equal(mk_rule_engine_delete_rule(f.eng, "low", &d), MK_ENOTFOUND);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_ok),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_threshold_hysteresis),
        cmocka_unit_test(test_dynamic),
        cmocka_unit_test(test_seasonal),
        cmocka_unit_test(test_seasonal_tiers),
        cmocka_unit_test(test_anomaly),
        cmocka_unit_test(test_heartbeat_stops_and_resumes),
        cmocka_unit_test(test_heartbeat_degraded_then_down),
        cmocka_unit_test(test_heartbeat_never_seen),
        cmocka_unit_test(test_heartbeat_cron),
        cmocka_unit_test(test_put_delete_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

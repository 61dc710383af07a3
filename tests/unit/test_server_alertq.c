/*
 * tests/unit/test_server_alertq.c — times, silences and incident filters of
 * the alert APIs (server/alertq.c). Epoch values were computed with
 * Python's datetime (an independent implementation); matcher semantics are
 * Alertmanager's as documented (anchored regexes, an absent label is "").
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alertq.h"

static void test_time(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(mk_alertq_parse_time("2026-12-02T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 1796169600000LL);
    assert_int_equal(mk_alertq_parse_time("2026-12-02T00:00:00.250+01:00", &ms), 0);
    assert_int_equal(ms, 1796166000250LL);
    assert_int_equal(mk_alertq_parse_time("2024-02-29T23:59:59-05:30", &ms), 0);
    assert_int_equal(ms, 1709270999000LL);
    assert_int_equal(mk_alertq_parse_time("2026-12-02T00:00:00.123456789z", &ms), 0);
    assert_int_equal(ms, 1796169600123LL);
    assert_int_equal(mk_alertq_parse_time("1764633600.5", &ms), 0);
    assert_int_equal(ms, 1764633600500LL);
    const char *bad[] = {"", "abc", "2026-13-01T00:00:00Z", "2026-12-02 00:00:00Z", "2026-12-02T00:00:00",
                         "2026-12-02T00:00:00.Z", "2026-12-02T00:00:00+0100", "2026-12-02T24:00:00Z",
                         "2026-12-02T00:00:00Zjunk", "1e20", "12abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (mk_alertq_parse_time(bad[i], &ms) == 0) fail_msg("'%s' parsed as %lld", bad[i], (long long)ms);
    }
    json_t *j = mk_alertq_time_json(1796169600250LL);
    assert_string_equal(json_string_value(j), "2026-12-02T00:00:00.250Z");
    json_decref(j);
    j = mk_alertq_time_json(-1);
    assert_string_equal(json_string_value(j), "1969-12-31T23:59:59.999Z");
    json_decref(j);
    j = mk_alertq_time_json(0);
    assert_true(json_is_null(j));
    json_decref(j);
}

static int parse_sil(const char *text, mk_alertq_silence *s, char *err, size_t cap)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    assert_non_null(o);
    int rc = mk_alertq_silence_from_json(o, 0, 1796169600000LL, s, err, cap);
    json_decref(o);
    return rc;
}

static void test_silence_match(void **state)
{
    (void)state;
    mk_alertq_silence s;
    char err[400];
    assert_int_equal(parse_sil("{\"matchers\":[\"service=api\",\"env!=dev\",\"instance=~web-[0-9]+\",\"zone!~eu-.*\"],"
                               "\"ends_at\":\"2027-01-01T00:00:00Z\"}", &s, err, sizeof err), 0);
    assert_int_equal(s.n_m, 4);
    assert_int_equal(s.starts_ms, 1796169600000LL); /* default: now */
    mk_label l[] = {{"service", "api"}, {"env", "prod"}, {"instance", "web-12"}, {"zone", "us-1"}};
    assert_int_equal(mk_alertq_silence_matches(&s, "r", l, 4), 1);
    assert_int_equal(mk_alertq_silence_matches(&s, "r", l, 3), 1); /* zone absent: "" !~ eu-.* */
    mk_label l2[] = {{"service", "api"}, {"instance", "xweb-12"}};
    assert_int_equal(mk_alertq_silence_matches(&s, "r", l2, 2), 0); /* anchored */
    mk_label l3[] = {{"service", "api"}, {"instance", "web-1"}, {"env", "dev"}};
    assert_int_equal(mk_alertq_silence_matches(&s, "r", l3, 3), 0);
    mk_label l4[] = {{"instance", "web-1"}};
    assert_int_equal(mk_alertq_silence_matches(&s, "r", l4, 1), 0); /* service absent */
    mk_label l5[] = {{"service", "api"}, {"instance", "web-1"}, {"zone", "eu-west"}};
    assert_int_equal(mk_alertq_silence_matches(&s, "r", l5, 3), 0);
    assert_string_equal(mk_alertq_silence_state(&s, 1796169600000LL - 1), "pending");
    assert_string_equal(mk_alertq_silence_state(&s, 1796169600000LL), "active");
    assert_string_equal(mk_alertq_silence_state(&s, 1798761600000LL), "expired");
    mk_alertq_silence_clear(&s);
    /* the rule name answers to rule and alertname, unless a label has the name */
    assert_int_equal(parse_sil("{\"matchers\":[\"rule=~cpu.*\",\"alertname=cpu-hot\"],\"ends_at\":1900000000}", &s, err,
                               sizeof err), 0);
    assert_int_equal(mk_alertq_silence_matches(&s, "cpu-hot", NULL, 0), 1);
    assert_int_equal(mk_alertq_silence_matches(&s, "mem-hot", NULL, 0), 0);
    mk_label lr[] = {{"rule", "other"}};
    assert_int_equal(mk_alertq_silence_matches(&s, "cpu-hot", lr, 1), 0);
    mk_alertq_silence_clear(&s);
    /* Alertmanager's object form */
    assert_int_equal(parse_sil("{\"matchers\":[{\"name\":\"a\",\"value\":\"x|y\",\"isRegex\":true,\"isEqual\":false}],"
                               "\"ends_at\":1900000000}", &s, err, sizeof err), 0);
    mk_label la[] = {{"a", "y"}}, lb[] = {{"a", "xy"}};
    assert_int_equal(mk_alertq_silence_matches(&s, "r", la, 1), 0);
    assert_int_equal(mk_alertq_silence_matches(&s, "r", lb, 1), 1);
    mk_alertq_silence_clear(&s);
}

static void test_silence_errors(void **state)
{
    (void)state;
    mk_alertq_silence s;
    char err[400];
    struct {
        const char *body, *want;
    } bad[] = {
        {"[]", "JSON object"},
        {"{\"ends_at\":1900000000}", "matchers"},
        {"{\"matchers\":[],\"ends_at\":1900000000}", "matchers"},
        {"{\"matchers\":[\"=v\"],\"ends_at\":1900000000}", "label name"},
        {"{\"matchers\":[\"kv\"],\"ends_at\":1900000000}", "NAME=VALUE"},
        {"{\"matchers\":[7],\"ends_at\":1900000000}", "matchers[0]"},
        {"{\"matchers\":[\"a=~(\"],\"ends_at\":1900000000}", "bad regular expression"},
        {"{\"matchers\":[\"a=~)(\"],\"ends_at\":1900000000}", "bad regular expression"},
        {"{\"matchers\":[\"a=~x+++\"],\"ends_at\":1900000000}", "too long or complex"},
        {"{\"matchers\":[\"a=~(x{9}){9}\"],\"ends_at\":1900000000}", "too long or complex"},
        {"{\"matchers\":[\"a=b\"]}", "ends_at is required"},
        {"{\"matchers\":[\"a=b\"],\"ends_at\":\"tomorrow\"}", "ends_at is required"},
        {"{\"matchers\":[\"a=b\"],\"starts_at\":\"x\",\"ends_at\":1900000000}", "starts_at"},
        {"{\"matchers\":[\"a=b\"],\"starts_at\":1900000001,\"ends_at\":1900000000}", "after starts_at"},
        {"{\"matchers\":[\"a=b\"],\"starts_at\":1600000000,\"ends_at\":1700000000}", "in the past"},
        {"{\"matchers\":[\"a=b\"],\"ends_at\":1900000000,\"comment\":5}", "strings"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        if (parse_sil(bad[i].body, &s, err, sizeof err) == 0) fail_msg("accepted %s", bad[i].body);
        if (!strstr(err, bad[i].want)) fail_msg("%s: '%s' lacks '%s'", bad[i].body, err, bad[i].want);
    }
    /* bracket expressions may hold repetition characters */
    assert_int_equal(parse_sil("{\"matchers\":[\"a=~[+*]+\"],\"ends_at\":1900000000}", &s, err, sizeof err), 0);
    mk_label l[] = {{"a", "+*+"}};
    assert_int_equal(mk_alertq_silence_matches(&s, "r", l, 1), 1);
    mk_alertq_silence_clear(&s);
}

static void test_filter(void **state)
{
    (void)state;
    mk_alertq_filter f;
    char err[300];
    mk_alerts_arg a1[] = {{"state", "open,resolved"}, {"rule", "r1"}, {"label.monitor", "web"},
                          {"labels", "a=1,b=x=y"}, {"from", "2026-12-02T00:00:00Z"}, {"to", "1796169700"},
                          {"limit", "7"}};
    assert_int_equal(mk_alertq_filter_parse(a1, 7, &f, err, sizeof err), 0);
    assert_int_equal(f.f.state_mask, (1u << MK_INC_PENDING) | (1u << MK_INC_FIRING) | (1u << MK_INC_RESOLVED));
    assert_string_equal(f.f.rule, "r1");
    assert_int_equal(f.f.n_match, 3);
    assert_string_equal(f.f.match[0].key, "monitor");
    assert_string_equal(f.f.match[0].value, "web");
    assert_string_equal(f.f.match[2].key, "b");
    assert_string_equal(f.f.match[2].value, "x=y");
    assert_int_equal(f.f.from_ms, 1796169600000LL);
    assert_int_equal(f.f.to_ms, 1796169700000LL);
    assert_int_equal(f.f.limit, 7);
    mk_alertq_filter_free(&f);
    assert_int_equal(mk_alertq_filter_parse(NULL, 0, &f, err, sizeof err), 0);
    assert_int_equal(f.f.limit, MK_ALERTQ_DEFAULT_LIMIT);
    assert_int_equal(f.f.state_mask, 0);
    mk_alertq_filter_free(&f);
    mk_alerts_arg bad[][1] = {{{"state", "ok"}}, {{"labels", "novalue"}}, {{"labels", "=v"}}, {{"limit", "0"}},
                              {{"limit", "10001"}}, {{"limit", "5x"}}, {{"from", "yesterday"}}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        int rc = mk_alertq_filter_parse(bad[i], 1, &f, err, sizeof err);
        mk_alertq_filter_free(&f);
        if (rc != -1 || !err[0]) fail_msg("%s=%s: rc %d", bad[i][0].key, bad[i][0].val, rc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_silence_match),
        cmocka_unit_test(test_silence_errors),
        cmocka_unit_test(test_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

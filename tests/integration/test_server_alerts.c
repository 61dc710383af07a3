/*
 * tests/integration/test_server_alerts.c — the alert APIs of the real
 * `meerkat serve` ($MK_BIN) on a free loopback port: incidents opened by a
 * heartbeat rule and by a threshold rule, a rule changed through
 * PUT /api/rules and applied without restart, persistence of rule changes
 * and silences across restarts, and the error paths.
 *
 * References are independent of the server: the test's own clock (an
 * incident may not fire before the last beat + period + grace it saw
 * pushed), the values it wrote against the thresholds it set, line:column
 * counted by hand in the bodies it sends, and the HTTP status codes the
 * API documents. Every wait is a bounded poll (<= 15 s).
 */
#include "testutil.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "test_server_util.h"

typedef struct ctx {
    char *dir;
    char cfg[4200];
    srv s;
    mk_httpc c;
} ctx;

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void fail_with_log(ctx *x, const char *what)
{
    char *log = srv_read_file(x->s.log_path);
    print_error("%s; server log:\n%s\n", what, log);
    free(log);
    fail();
}

/* Starts (or restarts, keeping dir) the server with the config in x->cfg. */
static void boot(ctx *x)
{
    if (srv_start(&x->s, x->dir, x->cfg, NULL) != 0) fail_with_log(x, "server did not start");
    mk_httpc_init(&x->c, "127.0.0.1", x->s.port);
}

static void start(ctx *x, const char *name, const char *cfg_text)
{
    x->dir = mk_test_dir(name);
    mk_test_rmrf(x->dir);
    snprintf(x->cfg, sizeof x->cfg, "%s.yaml", x->dir);
    write_file(x->cfg, cfg_text);
    boot(x);
}

static void stop(ctx *x)
{
    mk_httpc_close(&x->c);
    int st = srv_stop(&x->s, SIGTERM, 30000);
    char *log = srv_read_file(x->s.log_path);
    if (st != 0 || strstr(log, "runtime error") || strstr(log, "AddressSanitizer") ||
        strstr(log, "evaluation failed")) {
        print_error("server exit status %d; log:\n%s\n", st, log);
        free(log);
        fail();
    }
    assert_non_null(strstr(log, "msg=\"stopped\""));
    free(log);
}

static void cleanup(ctx *x)
{
    mk_test_rmrf(x->dir);
    char p[4200];
    snprintf(p, sizeof p, "%s.serve.log", x->dir);
    unlink(p);
    unlink(x->cfg);
    free(x->dir);
}

/* One request; the answer's body parsed as JSON into *js when js != NULL
 * (NULL when the body is empty). Returns the status. */
static int call(ctx *x, const char *method, const char *target, const char *key, const char *body, json_t **js,
                char **raw)
{
    char hdr[256] = "";
    if (key) snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", key);
    mk_httpc_resp r;
    if (mk_httpc_request(&x->c, method, target, key ? hdr : NULL, body, body ? strlen(body) : 0, &r) != 0) {
        print_error("%s %s: no answer\n", method, target);
        fail();
    }
    if (js) {
        json_error_t je;
        *js = r.body_len ? json_loadb(r.body, r.body_len, 0, &je) : NULL;
        if (r.body_len && !*js) {
            print_error("%s %s: answer is not JSON: %s\n", method, target, r.body);
            fail();
        }
    }
    if (raw) *raw = strdup(r.body ? r.body : "");
    int st = r.status;
    mk_httpc_resp_free(&r);
    return st;
}

static void expect_status(ctx *x, const char *method, const char *target, const char *key, const char *body,
                          int status, const char *want_in)
{
    char *raw = NULL;
    int st = call(x, method, target, key, body, NULL, &raw);
    if (st != status || (want_in && !strstr(raw, want_in))) {
        print_error("%s %s: got %d %s; want %d containing '%s'\n", method, target, st, raw, status,
                    want_in ? want_in : "");
        free(raw);
        fail();
    }
    free(raw);
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Polls GET target until its incident list holds one whose state is want
 * (and whose id is want_id unless 0); returns a new reference to it. */
static json_t *wait_incident(ctx *x, const char *target, const char *key, const char *want, json_int_t want_id,
                             int timeout_ms)
{
    int64_t until = wall_ms() + timeout_ms;
    do {
        json_t *js = NULL;
        assert_int_equal(call(x, "GET", target, key, NULL, &js, NULL), 200);
        json_t *arr = json_object_get(js, "incidents");
        assert_true(json_is_array(arr));
        size_t i;
        json_t *it;
        json_array_foreach(arr, i, it)
        {
            const char *st = jstr(it, "state");
            if (st && strcmp(st, want) == 0 &&
                (!want_id || json_integer_value(json_object_get(it, "id")) == want_id)) {
                json_incref(it);
                json_decref(js);
                return it;
            }
        }
        json_decref(js);
        srv_sleep_ms(100);
    } while (wall_ms() < until);
    char msg[300];
    snprintf(msg, sizeof msg, "no %s incident at %s within %d ms", want, target, timeout_ms);
    fail_with_log(x, msg);
    return NULL;
}

/* Parses an RFC 3339 "....Z" time with milliseconds, as the API writes it. */
static int64_t iso_ms(const char *s)
{
    assert_non_null(s);
    struct tm tm = {0};
    int ms = 0;
    assert_int_equal(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                            &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ---- tests ---------------------------------------------------------------- */

/* A Kuma monitor pushing, then silent: the heartbeat rule (period 2 s,
 * grace 1 s, failures 1) fires no earlier than 3 s after the last beat
 * seen; a new beat resolves it. A silence on monitor=web marks it. */
static void test_heartbeat_incident(void **state)
{
    (void)state;
    ctx x = {0};
    start(&x, "alerts-hb",
          "monitors:\n"
          "  - {name: web, kind: kuma, token: tokweb}\n"
          "rules:\n"
          "  - {name: web-up, kind: heartbeat, measurement: heartbeat, tags: {monitor: web},\n"
          "     period: 2s, grace: 1s, failures: 1, interval: 1s,\n"
          "     annotations: {summary: \"{{ $labels.monitor }} is down\"}}\n");
    int64_t last_push_ms = 0;
    for (int i = 0; i < 3; i++) {
        last_push_ms = wall_ms();
        expect_status(&x, "GET", "/api/push/tokweb?status=up&msg=OK&ping=12", NULL, NULL, 200, "\"ok\":true");
        srv_sleep_ms(300);
    }
    /* a silence for this monitor, and one for another that must not match */
    char body[512];
    snprintf(body, sizeof body,
             "{\"matchers\":[\"monitor=web\",\"rule=~web-.*\"],\"ends_at\":%" PRId64 ",\"comment\":\"deploy\","
             "\"created_by\":\"test\"}",
             (int64_t)time(NULL) + 3600);
    expect_status(&x, "POST", "/api/silences", NULL, body, 200, "\"id\":1");
    json_t *inc = wait_incident(&x, "/api/incidents?rule=web-up", NULL, "firing", 0, 15000);
    assert_string_equal(jstr(inc, "rule"), "web-up");
    assert_string_equal(jstr(json_object_get(inc, "labels"), "monitor"), "web");
    assert_string_equal(jstr(json_object_get(inc, "annotations"), "summary"), "web is down");
    assert_string_equal(jstr(inc, "severity"), "critical");
    const char *reason = jstr(inc, "reason");
    assert_true(reason && strstr(reason, "no heartbeat"));
    /* late only once period + grace have passed since the last beat */
    int64_t fired = iso_ms(jstr(inc, "fired_at"));
    if (fired <= last_push_ms + 3000) {
        print_error("fired at %" PRId64 ", last push at %" PRId64 ": less than period + grace\n", fired, last_push_ms);
        fail();
    }
    assert_true(json_is_null(json_object_get(inc, "ended_at")));
    assert_true(json_is_true(json_object_get(inc, "silenced")));
    json_int_t id = json_integer_value(json_object_get(inc, "id"));
    assert_true(id > 0);
    json_decref(inc);
    /* /api/monitors shows what the rule judges */
    json_t *mons = NULL;
    assert_int_equal(call(&x, "GET", "/api/monitors", NULL, NULL, &mons, NULL), 200);
    json_t *mon = json_array_get(json_object_get(mons, "monitors"), 0);
    assert_string_equal(jstr(mon, "name"), "web");
    json_t *ma = json_array_get(json_object_get(mon, "alerts"), 0);
    assert_string_equal(jstr(ma, "rule"), "web-up");
    assert_string_equal(jstr(ma, "state"), "firing");
    assert_string_equal(jstr(ma, "level"), "down");
    json_decref(mons);
    /* the gauge counts it */
    char *raw = NULL;
    assert_int_equal(call(&x, "GET", "/metrics", NULL, NULL, NULL, &raw), 200);
    assert_non_null(strstr(raw, "meerkat_incidents_open{severity=\"critical\"} 1\n"));
    free(raw);
    /* a beat resolves it: same incident, now resolved, with an end */
    expect_status(&x, "GET", "/api/push/tokweb?status=up", NULL, NULL, 200, NULL);
    char target[96];
    snprintf(target, sizeof target, "/api/incidents?state=resolved&label.monitor=web");
    inc = wait_incident(&x, target, NULL, "resolved", id, 15000);
    assert_false(json_is_null(json_object_get(inc, "ended_at")));
    assert_true(iso_ms(jstr(inc, "ended_at")) >= fired);
    json_decref(inc);
    json_t *one = NULL;
    snprintf(target, sizeof target, "/api/incidents/%" JSON_INTEGER_FORMAT, id);
    assert_int_equal(call(&x, "GET", target, NULL, NULL, &one, NULL), 200);
    assert_string_equal(jstr(one, "state"), "resolved");
    assert_false(json_is_true(json_object_get(one, "silenced"))); /* only open incidents are silenced */
    json_decref(one);
    assert_int_equal(call(&x, "GET", "/metrics", NULL, NULL, NULL, &raw), 200);
    assert_non_null(strstr(raw, "meerkat_incidents_open{severity=\"critical\"} 0\n"));
    free(raw);
    stop(&x);
    cleanup(&x);
}

/* A threshold rule over written data; PUT raises the threshold above the
 * written value: the open incident resolves at the next evaluations and no
 * new one opens; the change survives a restart; DELETE survives one too. */
static void test_threshold_put_restart(void **state)
{
    (void)state;
    ctx x = {0};
    start(&x, "alerts-thr",
          "api_keys:\n"
          "  - {key: adm1n, role: admin}\n"
          "  - {key: wr1te, role: write}\n"
          "  - {key: r3ad, role: read}\n"
          "rules:\n"
          "  - {name: cpu-hot, kind: threshold, measurement: cpu, expr: \"usage > 90\", interval: 1s, window: 5m}\n"
          "  - {name: other, kind: threshold, measurement: mem, expr: \"used > 1\", interval: 1s}\n");
    char lp[256];
    snprintf(lp, sizeof lp, "cpu,host=a usage=95 %" PRId64 "\ncpu,host=b usage=50 %" PRId64 "\n", wall_ms(), wall_ms());
    expect_status(&x, "POST", "/write?db=app&precision=ms", "wr1te", lp, 204, NULL);
    json_t *inc = wait_incident(&x, "/api/incidents?rule=cpu-hot", "r3ad", "firing", 0, 15000);
    assert_string_equal(jstr(json_object_get(inc, "labels"), "host"), "a");
    assert_true(json_real_value(json_object_get(inc, "value")) == 95.0);
    assert_true(json_real_value(json_object_get(inc, "threshold")) == 90.0);
    json_int_t id = json_integer_value(json_object_get(inc, "id"));
    json_decref(inc);
    /* host b (50) never fails */
    json_t *js = NULL;
    assert_int_equal(call(&x, "GET", "/api/incidents?labels=host=b", "r3ad", NULL, &js, NULL), 200);
    assert_int_equal(json_array_size(json_object_get(js, "incidents")), 0);
    json_decref(js);

    /* raise the threshold: 95 is no longer over it */
    const char *rule99 = "{\"kind\": \"threshold\", \"measurement\": \"cpu\", \"expr\": \"usage > 99\", "
                         "\"interval\": \"1s\", \"window\": \"5m\"}";
    expect_status(&x, "PUT", "/api/rules/cpu-hot", "wr1te", rule99, 403, "admin");
    expect_status(&x, "PUT", "/api/rules/cpu-hot", NULL, rule99, 401, NULL);
    expect_status(&x, "PUT", "/api/rules/cpu-hot", "adm1n", rule99, 200, "usage > 99");
    expect_status(&x, "GET", "/api/rules/cpu-hot", "r3ad", NULL, 200, "\"expr\":\"usage > 99\"");
    inc = wait_incident(&x, "/api/incidents?rule=cpu-hot", "r3ad", "resolved", id, 15000);
    json_decref(inc);
    srv_sleep_ms(2100); /* two more evaluations: still nothing open for cpu-hot */
    assert_int_equal(call(&x, "GET", "/api/incidents?rule=cpu-hot&state=pending,firing", "r3ad", NULL, &js, NULL), 200);
    assert_int_equal(json_array_size(json_object_get(js, "incidents")), 0);
    json_decref(js);
    assert_int_equal(call(&x, "GET", "/api/incidents?rule=cpu-hot", "r3ad", NULL, &js, NULL), 200);
    assert_int_equal(json_array_size(json_object_get(js, "incidents")), 1);
    json_decref(js);

    /* restart: the PUT rule is still the one in force, and the incident is kept */
    stop(&x);
    boot(&x);
    assert_int_equal(call(&x, "GET", "/api/rules", "r3ad", NULL, &js, NULL), 200);
    json_t *rules = json_object_get(js, "rules");
    int n_found = 0;
    size_t i;
    json_t *it;
    json_array_foreach(rules, i, it)
    {
        if (strcmp(jstr(it, "name"), "cpu-hot") == 0) {
            n_found++;
            assert_string_equal(jstr(it, "expr"), "usage > 99");
            assert_string_equal(jstr(it, "source"), "api");
        }
    }
    assert_int_equal(n_found, 1);
    assert_int_equal(json_array_size(rules), 2);
    json_decref(js);
    char target[64];
    snprintf(target, sizeof target, "/api/incidents/%" JSON_INTEGER_FORMAT, id);
    expect_status(&x, "GET", target, "r3ad", NULL, 200, "\"state\":\"resolved\"");

    /* delete: gone now, 404 the second time, and still gone after a restart */
    expect_status(&x, "DELETE", "/api/rules/cpu-hot", "wr1te", NULL, 403, NULL);
    expect_status(&x, "DELETE", "/api/rules/cpu-hot", "adm1n", NULL, 204, NULL);
    expect_status(&x, "DELETE", "/api/rules/cpu-hot", "adm1n", NULL, 404, "no rule named cpu-hot");
    expect_status(&x, "GET", "/api/rules/cpu-hot", "r3ad", NULL, 404, NULL);
    stop(&x);
    boot(&x);
    expect_status(&x, "GET", "/api/rules/cpu-hot", "r3ad", NULL, 404, NULL);
    expect_status(&x, "GET", "/api/rules/other", "r3ad", NULL, 200, "\"expr\":\"used > 1\"");
    /* PUT brings a deleted config rule back (YAML body this time) */
    expect_status(&x, "PUT", "/api/rules/cpu-hot", "adm1n",
                  "kind: threshold\nmeasurement: cpu\nexpr: usage > 97\ninterval: 1s\n", 200, "usage > 97");
    stop(&x);
    boot(&x);
    expect_status(&x, "GET", "/api/rules/cpu-hot", "r3ad", NULL, 200, "\"expr\":\"usage > 97\"");
    stop(&x);
    cleanup(&x);
}

/* Error paths, silences round trip and persistence, and `config check`
 * naming the line:column of a bad rule. */
static void test_errors_and_silences(void **state)
{
    (void)state;
    ctx x = {0};
    start(&x, "alerts-err",
          "api_keys:\n"
          "  - {key: adm1n, role: admin}\n"
          "  - {key: wr1te, role: write}\n"
          "  - {key: r3ad, role: read}\n");
    /* bad rules: line:column counted in the bodies */
    expect_status(&x, "PUT", "/api/rules/x", "adm1n", "kind: threshold\nmeasurement: cpu\nexpr: usage >> 99\n", 400,
                  "<rule>:3:7: expr: expected a number");
    expect_status(&x, "PUT", "/api/rules/x", "adm1n", "{\"kind\": \"threshold\",\n \"measurement\": \"cpu\", \"exp\": \"a > 1\"}",
                  400, "<rule>:2:24: unknown key 'exp'");
    expect_status(&x, "PUT", "/api/rules/x", "adm1n", "kind: [", 400, "YAML syntax error");
    expect_status(&x, "PUT", "/api/rules/x", "adm1n", NULL, 400, NULL);
    expect_status(&x, "PUT", "/api/rules/bad%20name", "adm1n", "kind: threshold\n", 400, "rule names");
    expect_status(&x, "GET", "/api/rules", "r3ad", NULL, 200, "{\"rules\":[]}");
    /* auth */
    expect_status(&x, "GET", "/api/incidents", NULL, NULL, 401, NULL);
    expect_status(&x, "GET", "/api/rules", NULL, NULL, 401, NULL);
    expect_status(&x, "GET", "/api/silences", NULL, NULL, 401, NULL);
    expect_status(&x, "POST", "/api/silences", "r3ad", "{}", 403, "write role");
    expect_status(&x, "GET", "/api/incidents", "r3ad", NULL, 200, "{\"incidents\":[]}");
    /* unknown incidents, bad filters */
    expect_status(&x, "GET", "/api/incidents/999", "r3ad", NULL, 404, "{\"error\":\"no incident 999\"}");
    expect_status(&x, "GET", "/api/incidents/abc", "r3ad", NULL, 404, "\"error\"");
    expect_status(&x, "GET", "/api/incidents?state=burning", "r3ad", NULL, 400, "state");
    expect_status(&x, "GET", "/api/incidents?from=yesterday", "r3ad", NULL, 400, "from/to");
    expect_status(&x, "GET", "/api/incidents?limit=0", "r3ad", NULL, 400, "limit");
    expect_status(&x, "GET", "/api/incidents?from=2026-01-01T00:00:00Z&to=1893456000&limit=5", "r3ad", NULL, 200, NULL);
    expect_status(&x, "PATCH", "/api/incidents", "r3ad", NULL, 405, NULL);

    /* silences */
    int64_t now_s = (int64_t)time(NULL);
    char body[512];
    snprintf(body, sizeof body, "{\"matchers\":[\"service=api\",\"env!=dev\",\"instance=~web-[0-9]+\"],"
                                "\"starts_at\":%" PRId64 ",\"ends_at\":\"2099-01-01T00:00:00Z\","
                                "\"comment\":\"migration\",\"created_by\":\"ops\"}", now_s);
    expect_status(&x, "POST", "/api/silences", "wr1te", body, 200, "{\"id\":1}");
    expect_status(&x, "POST", "/api/silences", "wr1te",
                  "{\"matchers\":[{\"name\":\"job\",\"value\":\"backup\",\"isRegex\":false}],"
                  "\"ends_at\":\"2099-01-01T00:00:00+01:00\"}", 200, "{\"id\":2}");
    expect_status(&x, "POST", "/api/silences", "wr1te", "{\"matchers\":[\"novalue\"],\"ends_at\":\"2099-01-01T00:00:00Z\"}",
                  400, "matcher 'novalue'");
    expect_status(&x, "POST", "/api/silences", "wr1te", "{\"matchers\":[\"a=~(\"],\"ends_at\":\"2099-01-01T00:00:00Z\"}",
                  400, "bad regular expression");
    expect_status(&x, "POST", "/api/silences", "wr1te", "{\"matchers\":[\"a=b\"],\"ends_at\":\"2001-01-01T00:00:00Z\"}",
                  400, "ends_at");
    expect_status(&x, "POST", "/api/silences", "wr1te", "{\"matchers\":[\"a=b\"]}", 400, "ends_at is required");
    expect_status(&x, "POST", "/api/silences", "wr1te", "{\"matchers\":[]", 400, "invalid JSON");
    json_t *js = NULL;
    assert_int_equal(call(&x, "GET", "/api/silences", "r3ad", NULL, &js, NULL), 200);
    json_t *arr = json_object_get(js, "silences");
    assert_int_equal(json_array_size(arr), 2);
    json_t *s1 = json_array_get(arr, 0);
    assert_int_equal(json_integer_value(json_object_get(s1, "id")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(s1, "matchers_text"), 1)), "env!=dev");
    assert_string_equal(json_string_value(json_array_get(json_object_get(s1, "matchers_text"), 2)), "instance=~web-[0-9]+");
    json_t *m2 = json_array_get(json_object_get(s1, "matchers"), 2);
    assert_string_equal(jstr(m2, "name"), "instance");
    assert_string_equal(jstr(m2, "value"), "web-[0-9]+");
    assert_true(json_is_true(json_object_get(m2, "isRegex")) && json_is_true(json_object_get(m2, "isEqual")));
    assert_string_equal(jstr(s1, "comment"), "migration");
    assert_string_equal(jstr(s1, "created_by"), "ops");
    assert_string_equal(jstr(s1, "state"), "active");
    assert_string_equal(jstr(s1, "ends_at"), "2099-01-01T00:00:00.000Z");
    assert_int_equal(iso_ms(jstr(s1, "starts_at")), now_s * 1000);
    /* +01:00 is an hour earlier in UTC */
    assert_string_equal(jstr(json_array_get(arr, 1), "ends_at"), "2098-12-31T23:00:00.000Z");
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(arr, 1), "matchers_text"), 0)),
                        "job=backup");
    json_decref(js);
    stop(&x);
    boot(&x);
    expect_status(&x, "GET", "/api/silences/1", "r3ad", NULL, 200, "\"comment\":\"migration\"");
    expect_status(&x, "DELETE", "/api/silences/1", "r3ad", NULL, 403, NULL);
    expect_status(&x, "DELETE", "/api/silences/1", "wr1te", NULL, 204, NULL);
    expect_status(&x, "DELETE", "/api/silences/1", "wr1te", NULL, 404, "no silence 1");
    expect_status(&x, "DELETE", "/api/silences/x", "wr1te", NULL, 404, NULL);
    /* ids are not reused after a restart */
    expect_status(&x, "POST", "/api/silences", "wr1te", "{\"matchers\":[\"a=b\"],\"ends_at\":4070908800}", 200,
                  "{\"id\":3}");
    stop(&x);
    boot(&x);
    assert_int_equal(call(&x, "GET", "/api/silences", "r3ad", NULL, &js, NULL), 200);
    arr = json_object_get(js, "silences");
    assert_int_equal(json_array_size(arr), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "id")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 1), "id")), 3);
    json_decref(js);
    stop(&x);

    /* config check names the line:column of a bad rule (the rule's mapping
     * starts at line 3, column 5; its expr value at line 4, column 11) */
    write_file(x.cfg, "listen: 127.0.0.1:9999\nrules:\n  - name: r1\n    expr: \"qps <\"\n    kind: threshold\n"
                      "    measurement: m\n");
    const char *args[] = {"config", "check", x.cfg, NULL};
    int st;
    char *out = srv_run(args, &st);
    assert_int_equal(st, 1);
    char want[4400];
    snprintf(want, sizeof want, "%s:4:11: expr: expected a number", x.cfg);
    if (!strstr(out, want)) {
        print_error("config check said:\n%s\nwant: %s\n", out, want);
        fail();
    }
    free(out);
    write_file(x.cfg, "rules:\n  - {name: r1, kind: threshold, measurement: m, expr: \"v > 1\"}\n");
    out = srv_run(args, &st);
    assert_int_equal(st, 0);
    assert_string_equal(out, "ok\n");
    free(out);
    cleanup(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeat_incident),
        cmocka_unit_test(test_threshold_put_restart),
        cmocka_unit_test(test_errors_and_silences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

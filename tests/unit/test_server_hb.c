/*
 * tests/unit/test_server_hb.c — heartbeat routing and bodies
 * (server/hb.c) and the /write helpers (server/wreq.c), against answers
 * worked out by hand from WIRE.md (Kener 3 validation, Uptime Kuma push
 * parameters, Healthchecks.io URL forms) and zlib as the gzip reference.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "hb.h"
#include "wreq.h"

static void test_route(void **state)
{
    (void)state;
    mk_hb_route r;
    assert_int_equal(mk_hb_route_parse("/api/status", &r), 1);
    assert_int_equal(r.kind, MK_HB_KENER);
    assert_int_equal(mk_hb_route_parse("/api/push/AbC-12_x", &r), 1);
    assert_int_equal(r.kind, MK_HB_KUMA);
    assert_string_equal(r.token, "AbC-12_x");
    assert_int_equal(mk_hb_route_parse("/api/push/", &r), -1);
    assert_int_equal(mk_hb_route_parse("/api/push/a b", &r), -1);
    assert_int_equal(mk_hb_route_parse("/hc/u-1", &r), 1);
    assert_true(r.kind == MK_HB_HC && r.action == MK_HC_SUCCESS && strcmp(r.token, "u-1") == 0);
    assert_int_equal(mk_hb_route_parse("/hc/u-1/start", &r), 1);
    assert_int_equal(r.action, MK_HC_START);
    assert_int_equal(mk_hb_route_parse("/hc/u-1/fail", &r), 1);
    assert_int_equal(r.action, MK_HC_FAIL);
    assert_int_equal(mk_hb_route_parse("/hc/u-1/log", &r), 1);
    assert_int_equal(r.action, MK_HC_LOG);
    assert_int_equal(mk_hb_route_parse("/hc/u-1/0", &r), 1);
    assert_int_equal(r.action, MK_HC_SUCCESS);
    assert_int_equal(mk_hb_route_parse("/hc/u-1/255", &r), 1);
    assert_true(r.action == MK_HC_FAIL && r.exit_status == 255);
    assert_int_equal(mk_hb_route_parse("/hc/u-1/256", &r), -1);
    assert_int_equal(mk_hb_route_parse("/hc/u-1/1x", &r), -1);
    assert_int_equal(mk_hb_route_parse("/hc/u-1/start/x", &r), -1);
    assert_int_equal(mk_hb_route_parse("/hc/", &r), -1);
    assert_int_equal(mk_hb_route_parse("/query", &r), 0);
    assert_int_equal(mk_hb_route_parse("/api/heartbeat/my-tag:s3c", &r), 1);
    assert_true(r.kind == MK_HB_KENER_BEAT && strcmp(r.token, "my-tag") == 0 && strcmp(r.secret, "s3c") == 0);
    assert_int_equal(mk_hb_route_parse("/ext/heartbeat/my-tag/s3c", &r), 1);
    assert_true(r.kind == MK_HB_KENER_BEAT && strcmp(r.token, "my-tag") == 0 && strcmp(r.secret, "s3c") == 0);
    assert_int_equal(mk_hb_route_parse("/api/heartbeat/nocolon", &r), -1);
    assert_int_equal(r.kind, MK_HB_KENER_BEAT);
    assert_int_equal(mk_hb_route_parse("/api/heartbeat/:s", &r), -1);
    assert_int_equal(mk_hb_route_parse("/ext/heartbeat/t/", &r), -1);
    char longtok[200] = "/api/push/";
    memset(longtok + 10, 'a', 129);
    assert_int_equal(mk_hb_route_parse(longtok, &r), -1);
}

static void test_kuma(void **state)
{
    (void)state;
    double st, ping;
    char err[128];
    assert_int_equal(mk_hb_kuma_params(NULL, NULL, &st, &ping, err, sizeof err), 0);
    assert_true(st == MK_HB_UP && isnan(ping));
    assert_int_equal(mk_hb_kuma_params("down", "12.5", &st, &ping, err, sizeof err), 0);
    assert_true(st == MK_HB_DOWN && ping == 12.5);
    /* anything but "up" is down, as Kuma does */
    assert_int_equal(mk_hb_kuma_params("UP", "", &st, &ping, err, sizeof err), 0);
    assert_true(st == MK_HB_DOWN);
    assert_int_equal(mk_hb_kuma_params("up", "-1", &st, &ping, err, sizeof err), -1);
    assert_int_equal(mk_hb_kuma_params("up", "1e12", &st, &ping, err, sizeof err), -1);
    assert_int_equal(mk_hb_kuma_params("up", "12ms", &st, &ping, err, sizeof err), -1);
}

static void test_kener(void **state)
{
    (void)state;
    mk_hb_kener k;
    char err[256];
    const int64_t now = 1764547230; /* 30 s into a minute */
#define KP(body) mk_hb_kener_parse(body, strlen(body), now, &k, err, sizeof err)
    assert_int_equal(KP("{\"status\":\"UP\",\"latency\":100,\"tag\":\"api\"}"), 0);
    assert_true(k.status == MK_HB_UP && k.latency == 100 && k.ts_s == 1764547200 && strcmp(k.tag, "api") == 0);
    assert_int_equal(KP("{\"status\":\"DEGRADED\",\"latency\":1.5,\"timestampInSeconds\":1764540059,\"tag\":\"t\"}"), 0);
    assert_true(k.status == MK_HB_DEGRADED && k.ts_s == 1764540000);
    assert_int_equal(KP("{\"status\":\"DOWN\",\"latency\":0,\"tag\":\"t\",\"extra\":1}"), 0);
    assert_true(k.status == MK_HB_DOWN);
    const struct { const char *body, *err; } bad[] = {
        {"{", "invalid JSON body"},
        {"[]", "JSON object"},
        {"{\"latency\":1,\"tag\":\"t\"}", "status missing"},
        {"{\"status\":\"up\",\"latency\":1,\"tag\":\"t\"}", "UP, DOWN or DEGRADED"},
        {"{\"status\":\"UP\",\"tag\":\"t\"}", "latency"},
        {"{\"status\":\"UP\",\"latency\":\"5\",\"tag\":\"t\"}", "latency"},
        {"{\"status\":\"UP\",\"latency\":1,\"timestampInSeconds\":\"x\",\"tag\":\"t\"}", "not a number"},
        {"{\"status\":\"UP\",\"latency\":1,\"timestampInSeconds\":1764547290,\"tag\":\"t\"}", "in future"},
        {"{\"status\":\"UP\",\"latency\":1,\"timestampInSeconds\":1756000000,\"tag\":\"t\"}", "older than 90"},
        {"{\"status\":\"UP\",\"latency\":1}", "tag missing"},
        {"{\"status\":\"UP\",\"latency\":1,\"tag\":\"t\",\"tag\":\"u\"}", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(KP(bad[i].body), -1);
        if (!strstr(err, bad[i].err)) {
            print_error("%s: got '%s', want '%s'\n", bad[i].body, err, bad[i].err);
            fail();
        }
    }
#undef KP
}

static void test_precision_and_scale(void **state)
{
    (void)state;
    mk_precision p;
    int64_t m;
    assert_int_equal(mk_wreq_precision(NULL, &p, &m), 0);
    assert_true(p == MK_PRECISION_NS && m == 1);
    assert_int_equal(mk_wreq_precision("n", &p, &m), 0);
    assert_true(p == MK_PRECISION_NS);
    assert_int_equal(mk_wreq_precision("u", &p, &m), 0);
    assert_true(p == MK_PRECISION_US);
    assert_int_equal(mk_wreq_precision("ms", &p, &m), 0);
    assert_true(p == MK_PRECISION_MS);
    assert_int_equal(mk_wreq_precision("m", &p, &m), 0);
    assert_true(p == MK_PRECISION_S && m == 60);
    assert_int_equal(mk_wreq_precision("h", &p, &m), 0);
    assert_true(p == MK_PRECISION_S && m == 3600);
    assert_int_equal(mk_wreq_precision("d", &p, &m), -1);
    const char *in = "a v=1 10\nb,t=x v=2i -2\r\nc v=3\n# c 5\nd s=\"x 7\"\nd v=1 99999999999999999999\n\ne v=1 4";
    const char *want = "a v=1 600\nb,t=x v=2i -120\r\nc v=3\n# c 5\nd s=\"x 7\"\nd v=1 99999999999999999999\n\ne v=1 240";
    mk_buf out = {0};
    assert_int_equal(mk_wreq_scale_ts(in, strlen(in), 60, &out), MK_OK);
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    mk_buf_free(&out);
}

static void test_gunzip(void **state)
{
    (void)state;
    char text[5000];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + i % 26);
    unsigned char gz[8000];
    z_stream zs = {0};
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)text;
    zs.avail_in = sizeof text;
    zs.next_out = gz;
    zs.avail_out = sizeof gz;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t n = sizeof gz - zs.avail_out;
    deflateEnd(&zs);
    mk_buf out = {0};
    char err[128];
    assert_int_equal(mk_wreq_gunzip(gz, n, 1 << 20, &out, err, sizeof err), 0);
    assert_int_equal(out.len, sizeof text);
    assert_memory_equal(out.data, text, sizeof text);
    out.len = 0;
    assert_int_equal(mk_wreq_gunzip(gz, n, 100, &out, err, sizeof err), -2);
    out.len = 0;
    assert_int_equal(mk_wreq_gunzip(gz, n - 5, 1 << 20, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "gzip"));
    out.len = 0;
    assert_int_equal(mk_wreq_gunzip("plain text", 10, 1 << 20, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "gzip"));
    mk_buf_free(&out);
}

static void test_error_text(void **state)
{
    (void)state;
    const char *body = "ok v=1\nbad one\r\nok v=2\nworse\n";
    mk_wreq_errs e;
    mk_wreq_errs_init(&e, body, strlen(body), 1);
    mk_wreq_on_error(&e, 2, 5, "missing field");
    mk_wreq_on_error(&e, 4, 1, "nope");
    mk_wreq_on_error(&e, 4, 2, "nope again");
    assert_string_equal(mk_wreq_errs_text(&e),
                        "unable to parse 'bad one': missing field (line 2, column 5)\n... and 2 more errors");
    mk_wreq_errs_free(&e);
    mk_wreq_errs_init(&e, body, strlen(body), 10);
    mk_wreq_on_error(&e, 4, 1, "x");
    mk_wreq_on_error(&e, 2, 1, "y"); /* out of order still finds the line */
    mk_wreq_on_error(&e, 9, 1, "z"); /* past the end: quoted empty */
    assert_string_equal(mk_wreq_errs_text(&e), "unable to parse 'worse': x (line 4, column 1)\n"
                                                "unable to parse 'bad one': y (line 2, column 1)\n"
                                                "unable to parse '': z (line 9, column 1)");
    mk_wreq_errs_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_route), cmocka_unit_test(test_kuma),
                                       cmocka_unit_test(test_kener), cmocka_unit_test(test_precision_and_scale),
                                       cmocka_unit_test(test_gunzip), cmocka_unit_test(test_error_text)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

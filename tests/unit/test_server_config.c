/*
 * tests/unit/test_server_config.c — the YAML configuration (server/config.c):
 * a full valid file read field by field, every kind of error with its
 * hand-counted line:column, listen addresses and key roles (the digest of
 * "abc" is FIPS 180-4's example).
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_valid(void **state)
{
    (void)state;
    const char *y = "listen: 0.0.0.0:9000\n"
                    "data_dir: /var/lib/mk\n"
                    "fsync: always\n"
                    "fsync_interval_ms: 250\n"
                    "api_keys:\n"
                    "  - plainkey\n"
                    "  - sha256:" ABC "\n"
                    "  - {key: r, role: read, name: grafana}\n"
                    "limits:\n"
                    "  max_body_bytes: 8MiB\n"
                    "  max_connections: 32\n"
                    "  request_timeout_s: 5\n"
                    "  max_inflight_write_bytes: 1GB\n"
                    "query: {max_points: 1000, max_series: 10, timeout_ms: 2000}\n"
                    "monitors:\n"
                    "  - {name: web, kind: kuma, token: abc}\n"
                    "  - name: job\n"
                    "    kind: healthchecks\n"
                    "    uuid: 1234-5678\n"
                    "    grace_s: 60\n"
                    "retention: {raw: 30d, rollup_5m: 1y, rollup_1h: forever, max_bytes: 50GiB}\n"
                    "rules: []\n"
                    "channels: [{name: x, kind: webhook, url: 'http://127.0.0.1:9/x'}]\n";
    mk_config c;
    char *errs = NULL;
    assert_int_equal(mk_config_init(&c), 0);
    int n = mk_config_parse(&c, y, strlen(y), &errs);
    if (n) print_error("%s", errs);
    assert_int_equal(n, 0);
    assert_string_equal(c.listen, "0.0.0.0:9000");
    assert_string_equal(c.data_dir, "/var/lib/mk");
    assert_int_equal(c.fsync, MK_FSYNC_ALWAYS);
    assert_int_equal(c.fsync_interval_ms, 250);
    assert_int_equal(c.n_keys, 3);
    assert_int_equal(c.max_body_bytes, 8u << 20);
    assert_int_equal(c.max_connections, 32);
    assert_int_equal(c.request_timeout_s, 5);
    assert_int_equal(c.max_inflight_write_bytes, 1000000000ull);
    assert_int_equal(c.query_max_points, 1000);
    assert_int_equal(c.query_max_series, 10);
    assert_int_equal(c.query_timeout_ms, 2000);
    assert_int_equal(c.n_monitors, 2);
    assert_string_equal(c.monitors[1].name, "job");
    assert_int_equal(c.monitors[1].kind, MK_MON_HC);
    assert_string_equal(c.monitors[1].token, "1234-5678");
    assert_true(c.has_retention && c.has_rules && c.has_channels);
    assert_int_equal(c.retention_raw_ms, 30LL * 86400000);
    assert_int_equal(c.retention_5m_ms, 365LL * 86400000);
    assert_int_equal(c.retention_1h_ms, 0);
    assert_int_equal(c.retention_max_bytes, 50ull << 30);
    assert_int_equal(c.yaml_len, strlen(y)); /* kept for the modules that read their own section */
    assert_string_equal(c.yaml_text, y);
    assert_int_equal(mk_config_key_role(&c, "plainkey", 8), MK_ROLE_ADMIN);
    assert_int_equal(mk_config_key_role(&c, "abc", 3), MK_ROLE_ADMIN);
    assert_int_equal(mk_config_key_role(&c, "r", 1), MK_ROLE_READ);
    assert_int_equal(mk_config_key_role(&c, "plainke", 7), 0);
    assert_int_equal(mk_config_key_role(&c, "", 0), 0);
    free(errs);
    mk_config_free(&c);
}

/* retention.compaction_max_rate: bytes/s with the byte suffixes, or
 * "unlimited"; absent = 0 (the engine's default); 0 is refused. */
static void test_compaction_max_rate(void **state)
{
    (void)state;
    static const struct { const char *y; uint64_t want; int n_err; } c[] = {
        {"retention: {raw: 30d}\n", 0, 0},
        {"retention: {compaction_max_rate: 32MiB}\n", 32ull << 20, 0},
        {"retention: {compaction_max_rate: 1000000}\n", 1000000, 0},
        {"retention: {compaction_max_rate: unlimited}\n", UINT64_MAX, 0},
        {"retention: {compaction_max_rate: 0}\n", 0, 1},
        {"retention: {compaction_max_rate: fast}\n", 0, 1},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        mk_config cfg;
        char *errs = NULL;
        assert_int_equal(mk_config_init(&cfg), 0);
        int n = mk_config_parse(&cfg, c[i].y, strlen(c[i].y), &errs);
        if (n != c[i].n_err) print_error("case %zu: %d errors: %s\n", i, n, errs ? errs : "");
        assert_int_equal(n, c[i].n_err);
        if (!c[i].n_err) assert_true(cfg.compaction_max_rate == c[i].want);
        else assert_non_null(strstr(errs, "retention.compaction_max_rate"));
        free(errs);
        mk_config_free(&cfg);
    }
}

static void test_errors(void **state)
{
    (void)state;
    const char *y = "listen: nowhere\n"                       /* 1:9 */
                    "fsync: sometimes\n"                      /* 2:8 */
                    "colour: blue\n"                          /* 3:1 */
                    "limits:\n"
                    "  max_body_bytes: -5\n"                  /* 5:19 */
                    "  max_connections: [1]\n"                /* 6:20 */
                    "  speed: 3\n"                            /* 7:3 */
                    "api_keys:\n"
                    "  - sha256:abcd\n"                       /* 9:5 */
                    "  - {key: k, role: owner}\n"             /* 10:20 */
                    "monitors:\n"
                    "  - {name: a, kind: pager, token: t}\n"  /* 12:21 */
                    "  - {name: b, kind: kuma}\n"             /* 13:5 */
                    "  - {name: c, kind: kuma, token: \"x y\"}\n" /* 14:34 */
                    "query: {timeout_ms: 0}\n"                /* 15:21 */
                    "retention: {raw: 30 days, rollup_1h: -1d, keep: 1y}\n"; /* 16:18, 16:38, 16:43 */
    mk_config c;
    char *errs = NULL;
    assert_int_equal(mk_config_init(&c), 0);
    int n = mk_config_parse(&c, y, strlen(y), &errs);
    const char *want[] = {"1:9: listen: 'nowhere' is not HOST:PORT",
                          "2:8: fsync: 'sometimes' is not always, interval or off",
                          "3:1: unknown key 'colour'",
                          "5:19: limits.max_body_bytes: '-5' is not a byte count",
                          "6:20: limits.max_connections: expected a single value, found a list",
                          "7:3: limits: unknown key 'speed'",
                          "9:5: api_keys: 'sha256:abcd...' is not a key",
                          "10:20: api_keys.role: 'owner' is not read, write or admin",
                          "12:21: monitors.kind: 'pager' is not kuma, healthchecks or kener",
                          "13:5: monitors: entry without 'token', 'uuid' or 'tag'",
                          "14:34: monitors.token: 'x y' must be",
                          "15:21: query.timeout_ms: 0 is out of range",
                          "16:18: retention.raw: '30 days' is not a duration",
                          "16:38: retention.rollup_1h: '-1d' is not a duration",
                          "16:43: retention: unknown key 'keep'"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(errs, want[i])) {
            print_error("missing '%s' in:\n%s", want[i], errs);
            fail();
        }
    assert_int_equal(n, (int)(sizeof want / sizeof want[0]));
    /* defaults kept where values were bad */
    assert_string_equal(c.listen, MK_CFG_DEFAULT_LISTEN);
    assert_int_equal(c.max_body_bytes, MK_CFG_DEFAULT_MAX_BODY_BYTES);
    free(errs);
    mk_config_free(&c);

    /* YAML syntax errors and a non-mapping root */
    assert_int_equal(mk_config_init(&c), 0);
    n = mk_config_parse(&c, "a: [1, 2\n", 9, &errs);
    assert_int_equal(n, 1);
    assert_non_null(strstr(errs, "invalid YAML"));
    free(errs);
    n = mk_config_parse(&c, "- 1\n- 2\n", 8, &errs);
    assert_int_equal(n, 1);
    assert_non_null(strstr(errs, "1:1: the configuration must be a mapping"));
    free(errs);
    n = mk_config_parse(&c, "", 0, &errs);
    assert_int_equal(n, 0);
    free(errs);
    mk_config_free(&c);
}

/* Both TLS paths or neither; a lone one is an error at its own line:column. */
static void test_tls(void **state)
{
    (void)state;
    mk_config c;
    char *errs = NULL;
    assert_int_equal(mk_config_init(&c), 0);
    assert_null(c.tls_cert_file); /* default: plain HTTP */
    const char *both = "listen: 127.0.0.1:8443\n"
                       "tls_cert_file: /etc/mk/cert.pem\n"
                       "tls_key_file: /etc/mk/key.pem\n";
    int n = mk_config_parse(&c, both, strlen(both), &errs);
    if (n) print_error("%s", errs);
    assert_int_equal(n, 0);
    assert_string_equal(c.tls_cert_file, "/etc/mk/cert.pem");
    assert_string_equal(c.tls_key_file, "/etc/mk/key.pem");
    free(errs);
    mk_config_free(&c);

    struct { const char *yaml, *want; } bad[] = {
        {"fsync: off\ntls_cert_file: /c.pem\n", "2:1: tls_cert_file is set but tls_key_file is not"},
        {"tls_key_file: /k.pem\nfsync: off\n", "1:1: tls_key_file is set but tls_cert_file is not"},
        {"  tls_key_file: /k.pem\n", "1:3: tls_key_file is set but tls_cert_file is not"},
        {"tls_cert_file: ''\ntls_key_file: /k.pem\n", "1:16: tls_cert_file: must not be empty"},
        {"tls_cert_file: [a]\ntls_key_file: /k.pem\n", "1:16: tls_cert_file: expected a single value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mk_config_init(&c), 0);
        n = mk_config_parse(&c, bad[i].yaml, strlen(bad[i].yaml), &errs);
        if (n == 0 || !errs || !strstr(errs, bad[i].want)) {
            print_error("case %zu: missing '%s' in:\n%s", i, bad[i].want, errs ? errs : "(none)");
            fail();
        }
        free(errs);
        mk_config_free(&c);
    }
}

static void test_listen(void **state)
{
    (void)state;
    char h[64];
    unsigned p;
    assert_int_equal(mk_config_parse_listen("127.0.0.1:8086", h, sizeof h, &p), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(p, 8086);
    assert_int_equal(mk_config_parse_listen("[::1]:0", h, sizeof h, &p), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(p, 0);
    assert_int_equal(mk_config_parse_listen(":9", h, sizeof h, &p), 0);
    assert_string_equal(h, "");
    assert_int_equal(mk_config_parse_listen("::1:80", h, sizeof h, &p), -1);
    assert_int_equal(mk_config_parse_listen("host:65536", h, sizeof h, &p), -1);
    assert_int_equal(mk_config_parse_listen("host:", h, sizeof h, &p), -1);
    assert_int_equal(mk_config_parse_listen("host", h, sizeof h, &p), -1);
    assert_true(mk_config_is_loopback("127.0.0.1") && mk_config_is_loopback("::1") &&
                mk_config_is_loopback("localhost"));
    assert_false(mk_config_is_loopback("0.0.0.0") || mk_config_is_loopback("") ||
                 mk_config_is_loopback("10.0.0.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_valid), cmocka_unit_test(test_errors),
                                       cmocka_unit_test(test_listen), cmocka_unit_test(test_tls),
                                       cmocka_unit_test(test_compaction_max_rate)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

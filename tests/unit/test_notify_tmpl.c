/*
 * tests/unit/test_notify_tmpl.c — notify/'s templates and payloads.
 *
 * References: JSON escaping is checked by decoding the rendered text with
 * jansson (an independent parser) and comparing with the original bytes;
 * URL escaping against hand-computed RFC 3986 answers; error positions
 * against hand-counted line:column; payload shapes against the JSON
 * schemas in tests/notify/ (written from the Alertmanager and Kener docs),
 * field by field. Seed printed.
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

#include "notify.h"
#include "notify/schema.h"
#include "send.h"
#include "tmpl.h"

#define SEED 20261202u

static char g_dir[1024]; /* tests/ */

static void set_dir(void)
{
    snprintf(g_dir, sizeof g_dir, "%s", __FILE__);
    char *p = strrchr(g_dir, '/');
    if (p) *p = 0; /* tests/unit */
    p = strrchr(g_dir, '/');
    if (p) *p = 0; /* tests */
}

static uint64_t rng = SEED;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* One alert record with the given label value. */
static void make_rec(mk_outbox_rec *r, mk_label *labels, size_t nl, mk_label *anns, size_t na, int is_resolved)
{
    memset(r, 0, sizeof *r);
    r->seq = 7;
    r->incident_id = 42;
    r->rule = "api-latency";
    r->labels = labels;
    r->n_labels = nl;
    r->annotations = anns;
    r->n_annotations = na;
    r->event = is_resolved ? MK_EV_RESOLVED : MK_EV_FIRING;
    r->state = is_resolved ? MK_INC_RESOLVED : MK_INC_FIRING;
    r->severity = MK_SEV_CRITICAL;
    r->start_ms = 1764547200000;
    r->fired_ms = 1764547260000;
    r->end_ms = is_resolved ? 1764547320000 : 0;
    r->event_ms = r->end_ms ? r->end_ms : r->fired_ms;
    r->value = 412.5;
    r->threshold = 100;
    r->peak = 500;
    r->reason = "p95_ms 412.5 > 100";
}

static void test_json_escape_roundtrip(void **st)
{
    (void)st;
    printf("seed %u\n", SEED);
    mk_notify_channel ch;
    memset(&ch, 0, sizeof ch);
    ch.name = "t";
    for (int it = 0; it < 2000; it++) {
        char val[64];
        size_t n = rnd() % 40;
        for (size_t i = 0; i < n; i++) {
            uint32_t k = rnd() % 10;
            /* ASCII including every control character, quotes, backslashes,
             * and a valid 2-byte UTF-8 sequence */
            if (k == 0 && i + 1 < n) {
                val[i++] = (char)0xC3;
                val[i] = (char)0xA9;
            } else {
                val[i] = (char)(1 + rnd() % 127);
            }
        }
        val[n] = 0;
        mk_label l[1] = {{"x", val}};
        mk_outbox_rec r;
        make_rec(&r, l, 1, NULL, 0, 0);
        mk_notify_alert_view av = {&r, "0123456789abcdef", 1};
        mk_notify_msg_view m = {&ch, "{}", NULL, 0, &av, 1, 0, 0};
        mk_buf out = {0};
        char err[200];
        assert_int_equal(mk_notify_render(&m, "{\"v\": \"{{labels.x}}\", \"n\": \"{{ alertname }}\"}", MK_NOTIFY_ESC_JSON,
                                          &out, err, sizeof err),
                         0);
        json_error_t je;
        json_t *o = json_loadb((const char *)out.data, out.len, 0, &je);
        if (!o) fail_msg("iteration %d: not JSON: %s (%.*s)", it, je.text, (int)out.len, (const char *)out.data);
        assert_string_equal(json_string_value(json_object_get(o, "v")), val);
        assert_string_equal(json_string_value(json_object_get(o, "n")), "api-latency");
        json_decref(o);
        mk_buf_free(&out);
    }
}

static void test_url_escape_known(void **st)
{
    (void)st;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a b&c=d/\xC3\xA9", "a%20b%26c%3Dd%2F%C3%A9"},
        {"AZaz09-._~", "AZaz09-._~"},
        {"$(touch /tmp/x)", "%24%28touch%20%2Ftmp%2Fx%29"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mk_buf b = {0};
        assert_int_equal(mk_notify_escape_append(&b, cases[i].in, strlen(cases[i].in), MK_NOTIFY_ESC_URL), 0);
        mk_buf_append(&b, "", 1);
        assert_string_equal((const char *)b.data, cases[i].out);
        mk_buf_free(&b);
    }
}

static void test_template_errors(void **st)
{
    (void)st;
    static const struct {
        const char *t, *want;
    } cases[] = {
        {"ab\n  {{x", "2:3:"},
        {"{{}}", "1:1:"},
        {"x {{a b}}", "1:3:"},
        {"line1\nline2\n\tz {{ ok }} {{bad!}}", "3:13:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mk_buf b = {0};
        char err[200] = "";
        assert_int_equal(mk_notify_tmpl_render(cases[i].t, strlen(cases[i].t), MK_NOTIFY_ESC_NONE, NULL, NULL, &b, err,
                                               sizeof err),
                         -1);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("template %zu: error '%s', want prefix '%s'", i, err, cases[i].want);
        mk_buf_free(&b);
    }
    /* an unknown name is an error when rendering a message */
    mk_notify_channel ch;
    memset(&ch, 0, sizeof ch);
    ch.name = "t";
    mk_outbox_rec r;
    make_rec(&r, NULL, 0, NULL, 0, 0);
    mk_notify_alert_view av = {&r, "0123456789abcdef", 1};
    mk_notify_msg_view m = {&ch, "{}", NULL, 0, &av, 1, 0, 0};
    mk_buf b = {0};
    char err[200];
    assert_int_equal(mk_notify_render(&m, "a {{nope}}", MK_NOTIFY_ESC_NONE, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown placeholder {{nope}}"));
    mk_buf_free(&b);
}

/* Every shipped template renders, with hostile label values, to valid JSON
 * (or a form body whose fields decode back). */
static void test_shipped_templates(void **st)
{
    (void)st;
    static const char *const files[] = {"slack.json", "discord.json", "teams.json", "telegram.json"};
    mk_label l[3] = {{"service", "a\"b\\c\n$(touch /tmp/x)"}, {"telegram_chat_id", "-100123"},
                     {"oncall_phone", "+33 6 12 34 56 78"}};
    mk_label a[1] = {{"summary", "p95 \"high\"\t<b>"}};
    mk_outbox_rec r;
    make_rec(&r, l, 3, a, 1, 0);
    mk_notify_channel ch;
    memset(&ch, 0, sizeof ch);
    ch.name = "chat";
    mk_notify_alert_view av = {&r, "0123456789abcdef", 1};
    mk_notify_msg_view m = {&ch, "{}", NULL, 0, &av, 1, 0, 0};
    for (size_t i = 0; i < 5; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/../contrib/notify-templates/%s", g_dir, i < 4 ? files[i] : "sms-gateway.form");
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        char t[8192];
        size_t n = fread(t, 1, sizeof t - 1, f);
        fclose(f);
        t[n] = 0;
        mk_buf out = {0};
        char err[200];
        assert_int_equal(mk_notify_render(&m, t, i < 4 ? MK_NOTIFY_ESC_JSON : MK_NOTIFY_ESC_URL, &out, err, sizeof err), 0);
        if (i < 4) {
            json_error_t je;
            json_t *o = json_loadb((const char *)out.data, out.len, 0, &je);
            if (!o) fail_msg("%s: %s", files[i], je.text);
            char *s = json_dumps(o, 0);
            assert_non_null(strstr(s, "$(touch /tmp/x)")); /* the value survived, as data */
            free(s);
            json_decref(o);
        } else {
            mk_buf_append(&out, "", 1);
            assert_non_null(strstr((const char *)out.data, "to=%2B33%206%2012%2034%2056%2078&"));
        }
        mk_buf_free(&out);
    }
}

static void test_webhook_payload_schema(void **st)
{
    (void)st;
    mk_label l1[2] = {{"service", "api"}, {"instance", "i-1"}}, l2[2] = {{"service", "api"}, {"instance", "i-2"}};
    mk_label a1[1] = {{"summary", "slow"}};
    mk_outbox_rec r[2];
    make_rec(&r[0], l1, 2, a1, 1, 0);
    make_rec(&r[1], l2, 2, a1, 1, 1);
    mk_notify_channel ch;
    memset(&ch, 0, sizeof ch);
    ch.name = "am-hook";
    ch.external_url = "http://meerkat:8086";
    mk_notify_alert_view av[2] = {{&r[0], "0000000000000001", 1}, {&r[1], "0000000000000002", 1}};
    mk_label gl[1] = {{"service", "api"}};
    mk_notify_msg_view m = {&ch, "{}/0:{service=\"api\"}", gl, 1, av, 2, 1764547400000, 0};
    json_t *p = mk_notify_payload_webhook(&m);
    assert_int_equal(schema_check_file(g_dir, "notify/am_webhook_v4.schema.json", p), 0);
    /* field by field, known answers */
    assert_string_equal(json_string_value(json_object_get(p, "status")), "firing");
    assert_string_equal(json_string_value(json_object_get(p, "receiver")), "am-hook");
    json_t *cl = json_object_get(p, "commonLabels");
    assert_string_equal(json_string_value(json_object_get(cl, "service")), "api");
    assert_null(json_object_get(cl, "instance")); /* differs between the two */
    json_t *al = json_object_get(p, "alerts");
    assert_int_equal(json_array_size(al), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(al, 0), "startsAt")), "2025-12-01T00:01:00.000Z");
    assert_string_equal(json_string_value(json_object_get(json_array_get(al, 0), "endsAt")), "0001-01-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(json_array_get(al, 1), "status")), "resolved");
    assert_string_equal(json_string_value(json_object_get(json_array_get(al, 1), "endsAt")), "2025-12-01T00:02:00.000Z");
    assert_string_equal(json_string_value(json_object_get(json_array_get(al, 0), "generatorURL")),
                        "http://meerkat:8086/api/incidents/42");
    json_decref(p);

    json_t *k = mk_notify_payload_kener(&m, 1);
    assert_int_equal(schema_check_file(g_dir, "notify/kener_alert.schema.json", k), 0);
    assert_string_equal(json_string_value(json_object_get(k, "status")), "RESOLVED");
    assert_string_equal(json_string_value(json_object_get(k, "id")), "api-latency-42");
    assert_true(json_real_value(json_object_get(json_object_get(k, "details"), "current_value")) == 412.5);
    json_decref(k);

    json_t *am = mk_notify_payload_am_alerts(&m);
    assert_int_equal(schema_check_file(g_dir, "notify/am_api_alerts.schema.json", am), 0);
    /* firing: valid for 4 resends (default 60 s) from now */
    assert_string_equal(json_string_value(json_object_get(json_array_get(am, 0), "endsAt")), "2025-12-01T00:07:20.000Z");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(am, 0), "labels"), "alertname")),
                        "api-latency");
    json_decref(am);
}

static void test_email_message(void **st)
{
    (void)st;
    mk_label l[1] = {{"service", "api\r\nBcc: evil@x"}};
    mk_outbox_rec r;
    make_rec(&r, l, 1, NULL, 0, 0);
    mk_notify_channel ch;
    memset(&ch, 0, sizeof ch);
    ch.name = "mail";
    ch.from = "meerkat@example.org";
    char *to[2] = {"ops@example.org", NULL};
    ch.to = to;
    ch.n_to = 1;
    ch.subject = "[{{status_upper}}] {{labels.service}}";
    mk_notify_alert_view av = {&r, "00000000000000ab", 1};
    mk_notify_msg_view m = {&ch, "{}", NULL, 0, &av, 1, 1764547400000, 0};
    mk_buf b = {0};
    char err[200];
    assert_int_equal(mk_notify_email_message(&m, &b, err, sizeof err), 0);
    mk_buf_append(&b, "", 1);
    const char *s = (const char *)b.data;
    assert_non_null(strstr(s, "Subject: [FIRING] api  Bcc: evil@x\r\n")); /* no header injection */
    const char *head_end = strstr(s, "\r\n\r\n");
    assert_non_null(head_end);
    const char *bcc = strstr(s, "\r\nBcc:");
    assert_true(!bcc || bcc > head_end); /* in the headers only as part of the subject */
    assert_non_null(strstr(s, "Content-Type: multipart/alternative; boundary=\"mk-00000000000000ab\""));
    assert_non_null(strstr(s, "Content-Type: text/plain"));
    assert_non_null(strstr(s, "Content-Type: text/html"));
    assert_non_null(strstr(s, "X-Meerkat-Fingerprint: 00000000000000ab"));
    mk_buf_free(&b);
}

static void test_fingerprint(void **st)
{
    (void)st;
    mk_label a[2] = {{"a", "1"}, {"b", "2"}}, b[2] = {{"b", "2"}, {"a", "1"}}, c[2] = {{"a", "12"}, {"b", ""}};
    assert_true(mk_notify_fingerprint("r", a, 2) == mk_notify_fingerprint("r", b, 2)); /* order-free */
    assert_true(mk_notify_fingerprint("r", a, 2) != mk_notify_fingerprint("r", c, 2)); /* no concatenation clash */
    assert_true(mk_notify_fingerprint("r", a, 2) != mk_notify_fingerprint("s", a, 2));
}

int main(void)
{
    set_dir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escape_roundtrip), cmocka_unit_test(test_url_escape_known),
        cmocka_unit_test(test_template_errors),       cmocka_unit_test(test_shipped_templates),
        cmocka_unit_test(test_webhook_payload_schema), cmocka_unit_test(test_email_message),
        cmocka_unit_test(test_fingerprint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tests/unit/test_server_form.c — form decoding, base64 and credentials
 * (server/form.c) against hand-written answers: Go's url.Values.Encode
 * output as Grafana sends it, RFC 4648 §10 base64 vectors, and InfluxDB's
 * documented credential forms.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

static void test_decode(void **state)
{
    (void)state;
    char out[256];
    const struct { const char *in, *want; } c[] = {
        {"SELECT+mean%28%22usage_idle%22%29+FROM+%22cpu%22", "SELECT mean(\"usage_idle\") FROM \"cpu\""},
        {"a%3D~b", "a=~b"},
        {"100%", "100%"},       /* dangling % kept */
        {"%zz%4", "%zz%4"},     /* not hex: kept */
        {"%0A%0a", "\n\n"},
        {"", ""},
        {"caf%C3%A9", "caf\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        size_t n = mk_form_decode(c[i].in, strlen(c[i].in), out);
        assert_int_equal(n, strlen(c[i].want));
        assert_string_equal(out, c[i].want);
    }
}

static int collect(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    char *acc = ctx;
    char line[256];
    snprintf(line, sizeof line, "[%.*s=%.*s]", (int)kl, k, (int)vl, v);
    strcat(acc, line);
    return 0;
}

static int stop_at_second(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    (void)k; (void)kl; (void)v; (void)vl;
    return ++*(int *)ctx == 2 ? 7 : 0;
}

static void test_parse(void **state)
{
    (void)state;
    char acc[1024] = "";
    const char *qs = "db=telegraf&epoch=ms&q=SHOW+measurements&&novalue&=x&rp=a%26b;c";
    assert_int_equal(mk_form_parse(qs, strlen(qs), collect, acc), 0);
    assert_string_equal(acc, "[db=telegraf][epoch=ms][q=SHOW measurements][novalue=][=x][rp=a&b;c]");
    int n = 0;
    assert_int_equal(mk_form_parse("a=1&b=2&c=3", 11, stop_at_second, &n), 7);
}

static void test_base64(void **state)
{
    (void)state;
    const struct { const char *in, *want; } c[] = {{"", ""}, {"Zg==", "f"}, {"Zm8=", "fo"}, {"Zm9v", "foo"},
                                                   {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"}, {"Zm9vYmFy", "foobar"},
                                                   {"Zm9vYmE", "fooba"}};
    char out[64];
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        assert_int_equal(mk_form_b64_decode(c[i].in, strlen(c[i].in), out), (long)strlen(c[i].want));
        assert_string_equal(out, c[i].want);
    }
    assert_int_equal(mk_form_b64_decode("Z", 1, out), -1);
    assert_int_equal(mk_form_b64_decode("Zm9*", 4, out), -1);
}

static void test_credentials(void **state)
{
    (void)state;
    char key[64];
    assert_int_equal(mk_form_credentials("Bearer k1", NULL, NULL, key, sizeof key), MK_CRED_TOKEN);
    assert_string_equal(key, "k1");
    assert_int_equal(mk_form_credentials("bearer   k2  ", NULL, NULL, key, sizeof key), MK_CRED_TOKEN);
    assert_string_equal(key, "k2");
    assert_int_equal(mk_form_credentials("Token admin:s3cret", NULL, NULL, key, sizeof key), MK_CRED_TOKEN);
    assert_string_equal(key, "s3cret");
    /* Basic base64("user:pass") */
    assert_int_equal(mk_form_credentials("Basic dXNlcjpwYXNz", NULL, NULL, key, sizeof key), MK_CRED_BASIC);
    assert_string_equal(key, "pass");
    /* Basic base64("onlykey:") : user name used when the password is empty */
    assert_int_equal(mk_form_credentials("Basic b25seWtleTo=", NULL, NULL, key, sizeof key), MK_CRED_BASIC);
    assert_string_equal(key, "onlykey");
    /* Grafana's empty Basic Og== (":") is no credential */
    assert_int_equal(mk_form_credentials("Basic Og==", NULL, NULL, key, sizeof key), MK_CRED_NONE);
    assert_int_equal(mk_form_credentials("Basic !!!", NULL, NULL, key, sizeof key), MK_CRED_NONE);
    assert_int_equal(mk_form_credentials(NULL, "u", "p", key, sizeof key), MK_CRED_PARAM);
    assert_string_equal(key, "p");
    assert_int_equal(mk_form_credentials(NULL, "u", "", key, sizeof key), MK_CRED_PARAM);
    assert_string_equal(key, "u");
    assert_int_equal(mk_form_credentials(NULL, NULL, NULL, key, sizeof key), MK_CRED_NONE);
    assert_int_equal(mk_form_credentials("Digest x", NULL, NULL, key, sizeof key), MK_CRED_NONE);
    char tiny[4];
    assert_int_equal(mk_form_credentials("Bearer toolongkey", NULL, NULL, tiny, sizeof tiny), MK_CRED_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_decode), cmocka_unit_test(test_parse),
                                       cmocka_unit_test(test_base64), cmocka_unit_test(test_credentials)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

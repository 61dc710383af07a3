/*
 * tests/unit/test_query_lexer.c — the InfluxQL tokenizer (query/lexer.c).
 *
 * Known answers written by hand: token kinds with byte offsets and
 * lengths, keywords in any case, every operator, literal values (integers,
 * floats against strtod, durations in ns worked out by hand), unquoting,
 * regexes rescanned from '/', comments, lexical errors, and line:column.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lexer.h"

typedef struct want_tok {
    mk_qtok_kind kind;
    uint32_t off, len;
} want_tok;

static void check_tokens(const char *src, const want_tok *want, size_t n)
{
    mk_qlex lx;
    mk_qlex_init(&lx, src, strlen(src));
    for (size_t i = 0; i < n; i++) {
        mk_qtok t = mk_qlex_next(&lx);
        if (t.kind != want[i].kind || t.off != want[i].off || t.len != want[i].len)
            fail_msg("%s: token %zu: got (%s %u %u), want (%s %u %u)", src, i, mk_qlex_kind_name(t.kind), t.off, t.len,
                     mk_qlex_kind_name(want[i].kind), want[i].off, want[i].len);
    }
}

static void test_tokens(void **state)
{
    (void)state;
    static const want_tok w1[] = {
        {MK_QTOK_SELECT, 0, 6},   {MK_QTOK_IDENT, 7, 4},    {MK_QTOK_LPAREN, 11, 1}, {MK_QTOK_QIDENT, 12, 3},
        {MK_QTOK_RPAREN, 15, 1},  {MK_QTOK_DOUBLECOLON, 16, 2}, {MK_QTOK_IDENT, 18, 5}, {MK_QTOK_FROM, 24, 4},
        {MK_QTOK_IDENT, 29, 1},   {MK_QTOK_WHERE, 31, 5},   {MK_QTOK_IDENT, 37, 4},  {MK_QTOK_GTE, 42, 2},
        {MK_QTOK_IDENT, 45, 3},   {MK_QTOK_LPAREN, 48, 1},  {MK_QTOK_RPAREN, 49, 1}, {MK_QTOK_SUB, 51, 1},
        {MK_QTOK_DURATION, 53, 5}, {MK_QTOK_AND, 59, 3},    {MK_QTOK_IDENT, 63, 1},  {MK_QTOK_EQ, 65, 1},
        {MK_QTOK_STRING, 67, 6},  {MK_QTOK_SEMICOLON, 73, 1}, {MK_QTOK_EOF, 74, 0},  {MK_QTOK_EOF, 74, 0},
    };
    check_tokens("SELECT mean(\"v\")::float FROM m wHeRe time >= now() - 1h30m and h = 'a\\'s';", w1,
                 sizeof w1 / sizeof w1[0]);
    static const want_tok w2[] = {
        {MK_QTOK_EQ, 0, 1},       {MK_QTOK_NEQ, 1, 2},      {MK_QTOK_NEQ, 3, 2},     {MK_QTOK_LT, 5, 1},
        {MK_QTOK_LTE, 6, 2},      {MK_QTOK_GT, 8, 1},       {MK_QTOK_GTE, 9, 2},     {MK_QTOK_EQREGEX, 11, 2},
        {MK_QTOK_NEQREGEX, 13, 2}, {MK_QTOK_ADD, 15, 1},    {MK_QTOK_SUB, 16, 1},    {MK_QTOK_MUL, 18, 1},
        {MK_QTOK_DIV, 19, 1},     {MK_QTOK_MOD, 20, 1},     {MK_QTOK_BITAND, 21, 1}, {MK_QTOK_BITOR, 22, 1},
        {MK_QTOK_BITXOR, 23, 1},  {MK_QTOK_LPAREN, 24, 1},  {MK_QTOK_RPAREN, 25, 1}, {MK_QTOK_COMMA, 26, 1},
        {MK_QTOK_DOT, 27, 1},     {MK_QTOK_DOUBLECOLON, 28, 2}, {MK_QTOK_SEMICOLON, 30, 1}, {MK_QTOK_PARAM, 31, 5},
        {MK_QTOK_EOF, 36, 0},
    };
    check_tokens("=!=<><<=>>==~!~+- */%&|^(),.::;$p_1x", w2, sizeof w2 / sizeof w2[0]);
    /* Numbers, durations, comments. */
    static const want_tok w3[] = {
        {MK_QTOK_INTEGER, 0, 2},  {MK_QTOK_NUMBER, 3, 4},  {MK_QTOK_NUMBER, 8, 3},   {MK_QTOK_NUMBER, 12, 6},
        {MK_QTOK_NUMBER, 19, 2},  {MK_QTOK_DURATION, 22, 4}, {MK_QTOK_DURATION, 27, 4}, {MK_QTOK_IDENT, 50, 1},
        {MK_QTOK_DURATION, 52, 5}, {MK_QTOK_INTEGER, 58, 1}, {MK_QTOK_DOT, 59, 1},   {MK_QTOK_EOF, 60, 0},
    };
    check_tokens("10 1.25 1e3 2.5E-3 .5 10ms 5\xc2\xb5s -- to end\n/* x */ a 1d12h 1.", w3, sizeof w3 / sizeof w3[0]);
}

static void test_keywords(void **state)
{
    (void)state;
    assert_int_equal(mk_qlex_keyword("select", 6), MK_QTOK_SELECT);
    assert_int_equal(mk_qlex_keyword("SeLeCt", 6), MK_QTOK_SELECT);
    assert_int_equal(mk_qlex_keyword("MEASUREMENTS", 12), MK_QTOK_MEASUREMENTS);
    assert_int_equal(mk_qlex_keyword("measurement", 11), MK_QTOK_MEASUREMENT);
    assert_int_equal(mk_qlex_keyword("selec", 5), MK_QTOK_IDENT);
    assert_int_equal(mk_qlex_keyword("selects", 7), MK_QTOK_IDENT);
    /* Recognised by position, not reserved: */
    assert_int_equal(mk_qlex_keyword("fill", 4), MK_QTOK_IDENT);
    assert_int_equal(mk_qlex_keyword("time", 4), MK_QTOK_IDENT);
    assert_int_equal(mk_qlex_keyword("tz", 2), MK_QTOK_IDENT);
    assert_int_equal(mk_qlex_keyword("compare", 7), MK_QTOK_IDENT);
    for (int k = MK_QTOK_KW_FIRST; k <= MK_QTOK_KW_LAST; k++) {
        const char *w = mk_qlex_kind_name((mk_qtok_kind)k);
        assert_int_equal(mk_qlex_keyword(w, strlen(w)), k);
    }
    assert_string_equal(mk_qlex_kind_name(MK_QTOK_EQREGEX), "=~");
    assert_string_equal(mk_qlex_kind_name((mk_qtok_kind)9999), "token");
}

static void test_values(void **state)
{
    (void)state;
    static const struct { const char *text; int64_t ns; } durs[] = {
        {"1ns", 1},           {"1u", 1000},        {"1us", 1000},        {"1\xc2\xb5", 1000},
        {"1\xc2\xb5s", 1000}, {"1ms", 1000000},    {"1s", 1000000000},   {"1m", 60000000000LL},
        {"1h", 3600000000000LL}, {"1d", 86400000000000LL}, {"1w", 604800000000000LL},
        {"1h30m", 5400000000000LL}, {"2w3d", 1468800000000000LL}, {"10ms5ns", 10000005},
        {"9223372036854775807ns", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
        mk_qlex lx;
        mk_qlex_init(&lx, durs[i].text, strlen(durs[i].text));
        mk_qtok t = mk_qlex_next(&lx);
        int64_t ns = -1;
        if (t.kind != MK_QTOK_DURATION || t.len != strlen(durs[i].text)) fail_msg("%s: not one duration", durs[i].text);
        assert_int_equal(mk_qlex_duration(durs[i].text, t, &ns), MK_OK);
        if (ns != durs[i].ns) fail_msg("%s: %lld, want %lld", durs[i].text, (long long)ns, (long long)durs[i].ns);
    }
    static const char *const overflow[] = {"9223372036854775808ns", "15251w", "106752d", "9223372036854775807ns1ns"};
    for (size_t i = 0; i < sizeof overflow / sizeof overflow[0]; i++) {
        mk_qlex lx;
        mk_qlex_init(&lx, overflow[i], strlen(overflow[i]));
        mk_qtok t = mk_qlex_next(&lx);
        int64_t ns;
        assert_int_equal(t.kind, MK_QTOK_DURATION);
        assert_int_equal(mk_qlex_duration(overflow[i], t, &ns), MK_ERANGE);
    }
    /* 15251w = 9.2238e18 ns overflows; 15250w = 9.2232e18 ns fits. */
    const char *ok = "15250w";
    mk_qtok t15 = {MK_QTOK_DURATION, 0, 6};
    int64_t ns;
    assert_int_equal(mk_qlex_duration(ok, t15, &ns), MK_OK);
    assert_int_equal(ns, 15250LL * 604800000000000LL);

    const char *ints = "9223372036854775807 9223372036854775808";
    mk_qtok a = {MK_QTOK_INTEGER, 0, 19}, b = {MK_QTOK_INTEGER, 20, 19};
    int64_t v;
    assert_int_equal(mk_qlex_integer(ints, a, &v), MK_OK);
    assert_int_equal(v, INT64_MAX);
    assert_int_equal(mk_qlex_integer(ints, b, &v), MK_ERANGE);
    static const char *const floats[] = {"1.25", "1e3", "2.5E-3", ".5", "3.141592653589793", "1e308"};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        mk_qtok t = {MK_QTOK_NUMBER, 0, (uint32_t)strlen(floats[i])};
        double d;
        assert_int_equal(mk_qlex_number(floats[i], t, &d), MK_OK);
        assert_true(d == strtod(floats[i], NULL));
    }
    mk_qtok big = {MK_QTOK_NUMBER, 0, 5};
    double d;
    assert_int_equal(mk_qlex_number("1e999", big, &d), MK_ERANGE);
}

static void test_unquote_and_regex(void **state)
{
    (void)state;
    char out[64];
    const char *s = "'it\\'s \\\\ \\n \\\"' \"a \\\"b\\\"\" x =~ /a\\/b\\\\/ /c\\.d/";
    mk_qlex lx;
    mk_qlex_init(&lx, s, strlen(s));
    mk_qtok t = mk_qlex_next(&lx);
    assert_int_equal(t.kind, MK_QTOK_STRING);
    assert_int_equal(mk_qlex_unquote(s, t, out), 10);
    assert_string_equal(out, "it's \\ \n \"");
    t = mk_qlex_next(&lx);
    assert_int_equal(t.kind, MK_QTOK_QIDENT);
    mk_qlex_unquote(s, t, out);
    assert_string_equal(out, "a \"b\"");
    assert_int_equal(mk_qlex_next(&lx).kind, MK_QTOK_IDENT);
    assert_int_equal(mk_qlex_next(&lx).kind, MK_QTOK_EQREGEX);
    t = mk_qlex_next(&lx);
    assert_int_equal(t.kind, MK_QTOK_DIV);
    t = mk_qlex_rescan_regex(&lx, t);
    assert_int_equal(t.kind, MK_QTOK_REGEX);
    assert_int_equal(t.len, 8); /* /a\/b\\/ : the escaped pair \\ does not escape the closing slash */
    mk_qlex_unquote(s, t, out);
    assert_string_equal(out, "a/b\\\\");
    t = mk_qlex_rescan_regex(&lx, mk_qlex_next(&lx));
    assert_int_equal(t.kind, MK_QTOK_REGEX);
    mk_qlex_unquote(s, t, out);
    assert_string_equal(out, "c\\.d");
    assert_int_equal(mk_qlex_next(&lx).kind, MK_QTOK_EOF);
    /* Unterminated regexes. */
    const char *bad = "/abc";
    mk_qlex_init(&lx, bad, strlen(bad));
    t = mk_qlex_rescan_regex(&lx, mk_qlex_next(&lx));
    assert_int_equal(t.kind, MK_QTOK_ILLEGAL);
    assert_int_equal(lx.err, MK_QLEX_UNTERM_REGEX);
    const char *bad2 = "/ab\nc/";
    mk_qlex_init(&lx, bad2, strlen(bad2));
    t = mk_qlex_rescan_regex(&lx, mk_qlex_next(&lx));
    assert_int_equal(t.kind, MK_QTOK_ILLEGAL);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct { const char *src; mk_qlex_err err; uint32_t off, len; } cases[] = {
        {"a @", MK_QLEX_BAD_CHAR, 2, 1},         {"a : b", MK_QLEX_BAD_CHAR, 2, 1},
        {"'abc", MK_QLEX_UNTERM_STRING, 0, 4},   {"'ab\nc'", MK_QLEX_UNTERM_STRING, 0, 3},
        {"\"abc", MK_QLEX_UNTERM_IDENT, 0, 4},   {"x /* y", MK_QLEX_UNTERM_COMMENT, 2, 4},
        {"'a\\tb'", MK_QLEX_BAD_ESCAPE, 0, 4},   {"1y", MK_QLEX_BAD_DURATION, 0, 2},
        {"5mean", MK_QLEX_BAD_DURATION, 0, 5},   {"1h5", MK_QLEX_BAD_DURATION, 0, 3},
        {"1.5h", MK_QLEX_BAD_DURATION, 0, 4},    {"1e+", MK_QLEX_BAD_NUMBER, 0, 3},
        {"$ x", MK_QLEX_BAD_PARAM, 0, 1},        {"a ! b", MK_QLEX_BAD_CHAR, 2, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mk_qlex lx;
        mk_qlex_init(&lx, cases[i].src, strlen(cases[i].src));
        mk_qtok t;
        do t = mk_qlex_next(&lx);
        while (t.kind != MK_QTOK_ILLEGAL && t.kind != MK_QTOK_EOF);
        if (t.kind != MK_QTOK_ILLEGAL || lx.err != cases[i].err || t.off != cases[i].off || t.len != cases[i].len)
            fail_msg("%s: got %s err %d at %u+%u", cases[i].src, mk_qlex_kind_name(t.kind), lx.err, t.off, t.len);
        /* The lexer stays put after an error. */
        mk_qtok again = mk_qlex_next(&lx);
        assert_int_equal(again.kind, MK_QTOK_ILLEGAL);
        assert_string_not_equal(mk_qlex_err_str(lx.err), "lexical error");
    }
}

static void test_linecol(void **state)
{
    (void)state;
    const char *s = "ab\nc\xc3\xa9" "d\n\nx";
    uint32_t l, c;
    mk_qlex_linecol(s, strlen(s), 0, &l, &c);
    assert_true(l == 1 && c == 1);
    mk_qlex_linecol(s, strlen(s), 2, &l, &c);
    assert_true(l == 1 && c == 3);
    mk_qlex_linecol(s, strlen(s), 3, &l, &c);
    assert_true(l == 2 && c == 1);
    mk_qlex_linecol(s, strlen(s), 6, &l, &c); /* 'd' after the two-byte é */
    assert_true(l == 2 && c == 3);
    mk_qlex_linecol(s, strlen(s), 9, &l, &c);
    assert_true(l == 4 && c == 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_unquote_and_regex),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_linecol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

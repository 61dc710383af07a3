/*
 * tests/unit/test_query_errors.c — error messages of the InfluxQL parser
 * (mk_qparse, query/parser.h) for malformed queries, beyond the 71 cases of
 * test_query_parser.c: COMPARE, tz(), fill(), SHOW variants, subqueries,
 * regexes, casts, durations, string escapes and positions over several
 * lines (\n, \r\n, tabs, multi-byte characters, a second statement).
 *
 * Each expected message was written by hand in the parser's documented
 * format ("error at L:C: expected X, found 'Y'"), with the line and column
 * of the offending token counted independently of the parser (1-based,
 * columns in characters, \r\n one line break); "found" names the token the
 * user has to change.
 */
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "parser.h"

struct err_case {
    const char *in;
    const char *want;
};

static const struct err_case k_cases[] = {
    {"SELECT mean(v) FROM m GROUP BY time(1h) COMPARE 1d,, 7d",
     "error at 1:52: expected duration after ',', found ','"},
    {"SELECT mean(v) FROM m GROUP BY time(1h) COMPARE 'x'",
     "error at 1:49: expected duration after COMPARE, found ''x''"},
    {"SELECT mean(v) FROM m GROUP BY time(1h) ORDER BY time DESC COMPARE 1d",
     "error at 1:60: expected ';' or EOF, found 'COMPARE'"},
    {"SELECT v FROM m tz(1)",
     "error at 1:20: expected time zone string in tz(), found '1'"},
    {"SELECT v FROM m GROUP BY time(1h) fill(linear, 1)",
     "error at 1:46: expected ')' after fill option, found ','"},
    {"SELECT v FROM m GROUP BY time(1h) fill()",
     "error at 1:40: expected null, none, previous, linear or a number in fill(), found ')'"},
    {"SELECT v FROM m GROUP BY time(1h) fill('0')",
     "error at 1:40: expected null, none, previous, linear or a number in fill(), found ''0''"},
    {"SHOW MEASUREMENTS WITH MEASUREMENT =~ 'cpu'",
     "error at 1:39: expected regex after '=~', found ''cpu''"},
    {"SHOW SERIES FROM",
     "error at 1:17: expected identifier after FROM, found EOF"},
    {"SHOW FIELD KEYS ON",
     "error at 1:19: expected database name after ON, found EOF"},
    {"SHOW RETENTION POLICIES ON db LIMIT 1",
     "error at 1:31: expected ';' or EOF, found 'LIMIT'"},
    {"SHOW DATABASES WHERE x = 1",
     "error at 1:16: expected ';' or EOF, found 'WHERE'"},
    {"SHOW TAG KEYS FROM m WITH KEY = host",
     "error at 1:22: expected ';' or EOF, found 'WITH'"},
    {"SELECT mean(v) FROM (SELECT v FROM m WHERE) GROUP BY time(1h)",
     "error at 1:43: expected expression after WHERE, found ')'"},
    {"SELECT v FROM (SELECT v FROM m) AS x",
     "error at 1:33: expected ';' or EOF, found 'AS'"},
    {"SELECT v FROM m, (SELECT",
     "error at 1:25: expected expression after SELECT, found EOF"},
    {"SELECT v FROM m WHERE host =~ /a/ AND region =~",
     "error at 1:48: expected regex after '=~', found EOF"},
    {"SELECT v FROM /cpu",
     "error at 1:15: expected identifier after FROM, found unterminated regex '/cpu'"},
    {"SELECT v FROM m GROUP BY /a",
     "error at 1:26: expected regex in GROUP BY, found unterminated regex '/a'"},
    {"SELECT v:: FROM m",
     "error at 1:12: expected float, integer, string, boolean, field or tag after '::', found 'FROM'"},
    {"SELECT v FROM m WHERE t::tags = 'a'",
     "error at 1:26: expected float, integer, string, boolean, field or tag after '::', found 'tags'"},
    {"SELECT v FROM m GROUP BY time(1h, x)",
     "error at 1:35: expected duration offset in time(), found 'x'"},
    {"SELECT v FROM m WHERE time > now() - 1d2",
     "error at 1:38: expected expression after '-', found invalid duration '1d2'"},
    {"SELECT v FROM m WHERE host = 'a\\x41'",
     "error at 1:30: expected expression after '=', found bad escape sequence ''a\\x'"},
    {"SELECT mean(v)\nFROM m\nGROUP BY time(1h)\nfill(sideways)",
     "error at 4:6: expected null, none, previous, linear or a number in fill(), found 'sideways'"},
    {"SELECT v\r\nFROM m\r\nWHERE x =",
     "error at 3:10: expected expression after '=', found EOF"},
    {"SELECT v FROM m\n\tWHERE x ==",
     "error at 2:11: expected expression after '=', found '='"},
    {"SELECT v FROM m;\nSHOW TAG KEYS FROM",
     "error at 2:19: expected identifier after FROM, found EOF"},
    {"SELECT \"\xc3\xa9""\" FROM m WHERE \"\xc3\xa9""\" = '\xc3\xbc""' AND",
     "error at 1:38: expected expression after AND, found EOF"},
    {"SELECT v FROM m GROUP BY time(1h)\n  COMPARE 1d,\n  2x",
     "error at 3:3: expected duration after ',', found invalid duration '2x'"},
    {"SELECT v FROM m tz('UTC'",
     "error at 1:25: expected ')' after tz argument, found EOF"},
    {"SELECT v FROM m GROUP BY time(1h",
     "error at 1:33: expected ')' after time() arguments, found EOF"},
    {"SELECT v FROM m GROUP BY time(1h, 1m, 2m)",
     "error at 1:37: expected ')' after time() arguments, found ','"},
    {"SELECT v FROM m GROUP BY time(-1h)",
     "error at 1:31: expected duration in time(), found '-'"},
    {"SELECT v FROM m GROUP BY time(1h) COMPARE -1d",
     "error at 1:43: expected duration after COMPARE, found '-'"},
    {"SELECT v FROM m GROUP BY time(1h) COMPARE 1d 7d",
     "error at 1:46: expected ';' or EOF, found '7d'"},
    {"SELECT v FROM m GROUP BY time(1h) tz('UTC') COMPARE 1d",
     "error at 1:45: expected ';' or EOF, found 'COMPARE'"},
    {"SELECT v FROM m GROUP BY time(1h) fill(--1)",
     "error at 1:44: expected null, none, previous, linear or a number in fill(), found EOF"},
    {"SELECT v FROM m GROUP BY time(1h) fill(1e999)",
     "error at 1:40: expected finite number, found '1e999'"},
    {"SHOW TAG VALUES WITH KEY IN ()",
     "error at 1:30: expected tag key in IN list, found ')'"},
    {"SHOW TAG VALUES WITH KEY =",
     "error at 1:27: expected tag key after '=', found EOF"},
    {"SHOW SERIES WHERE",
     "error at 1:18: expected expression after WHERE, found EOF"},
    {"SELECT v FROM (SELECT v FROM (SELECT",
     "error at 1:37: expected expression after SELECT, found EOF"},
    {"SELECT \"a\\q\" FROM m",
     "error at 1:8: expected expression after SELECT, found bad escape sequence '\"a\\q'"},
    {"SELECT v FROM \"m",
     "error at 1:15: expected identifier after FROM, found unterminated quoted identifier '\"m'"},
    {"SELECT v FROM m WHERE time > now() - 1.5h",
     "error at 1:38: expected expression after '-', found invalid duration '1.5h'"},
    {"SELECT v FROM m WHERE time > '2026-02-30T00:00:00Z'",
     "error at 1:30: expected RFC 3339 time ('2006-01-02T15:04:05Z') in time comparison, found ''2026-02-30T00:00:00Z''"},
    /* 0d is a duration; what is wrong is that it is not positive. */
    {"SELECT v FROM m GROUP BY time(1h) COMPARE 0d",
     "error at 1:43: expected positive duration after COMPARE, found '0d'"},
};

static void test_error_messages(void **state)
{
    (void)state;
    size_t n = sizeof k_cases / sizeof k_cases[0], n_bad = 0;
    assert_true(n >= 20);
    for (size_t i = 0; i < n; i++) {
        mk_diag d = {0};
        mk_ast_query *q = (mk_ast_query *)(uintptr_t)1;
        mk_err rc = mk_qparse(k_cases[i].in, strlen(k_cases[i].in), &q, &d);
        if (rc != MK_EPARSE || q != NULL || strcmp(d.msg, k_cases[i].want)) {
            printf("case %zu: %s\n  want: %s\n  got:  %s (rc %d)\n", i, k_cases[i].in, k_cases[i].want,
                   rc == MK_EPARSE ? d.msg : "(no parse error)", (int)rc);
            if (rc == MK_OK) mk_ast_query_free(q);
            n_bad++;
        }
    }
    if (n_bad) fail_msg("%zu of %zu error messages differ", n_bad, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

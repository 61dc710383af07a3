/*
 * tests/unit/test_query_output.c — the answer writers (query/output.c).
 *
 * Results are built by hand with the builder (query/result.h) and written;
 * the output is compared byte for byte with known-good text: InfluxDB's
 * documented /query responses (docs.influxdata.com, "Query data with the
 * InfluxDB API": the mymeas examples, epoch=s, chunked=true&chunk_size=1,
 * errors), InfluxDB's own response-writer tests for CSV
 * (services/httpd/response_writer_test.go), and hand-derived answers for
 * what Go's encoding/json, strconv and text/tabwriter print (escapes,
 * MarshalIndent, the float forms, RFC3339Nano, tabwriter padding).
 *
 * Floats are also checked as a property against brute force: every
 * written float reads back (strtod) as the identical double, and is no
 * longer than the first of %.1e..%.17e that reads back, with the same
 * digits when as long. And random answers (every value type, strings of
 * valid and invalid UTF-8, control and HTML characters) are written plain,
 * pretty and chunked and read back with jansson: the same tree, strings as
 * Go would decode them, times as gmtime_r formats them, chunk pieces and
 * partial flags as query.Emitter makes them. Seeds printed; MK_TEST_SEED
 * overrides them.
 */
#include "testutil.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "meerkat/query.h"
#include "result.h"
#include "util.h"

#define DEFAULT_SEED 20261202u

/* ---- building results ----------------------------------------------------- */

static mk_qv QN(void) { return (mk_qv){.type = MK_QV_NULL}; }
static mk_qv QF(double f) { return (mk_qv){.type = MK_QV_FLOAT, .u.f = f}; }
static mk_qv QI(int64_t i) { return (mk_qv){.type = MK_QV_INT, .u.i = i}; }
static mk_qv QB(int b) { return (mk_qv){.type = MK_QV_BOOL, .u.i = b}; }
static mk_qv QS(const char *s) { return (mk_qv){.type = MK_QV_STRING, .u.s = s}; }
static mk_qv QT(int64_t ns) { return (mk_qv){.type = MK_QV_TIME, .u.i = ns}; }

static mk_qresult *res(void)
{
    mk_qresult *r = NULL;
    assert_int_equal(mk_qres_new(&r), MK_OK);
    return r;
}

static void stmt(mk_qresult *r, uint32_t id) { assert_int_equal(mk_qres_begin_stmt(r, id), MK_OK); }

static void stmt_err(mk_qresult *r, uint32_t id, const char *msg)
{
    stmt(r, id);
    assert_int_equal(mk_qres_stmt_error(r, "%s", msg), MK_OK);
}

/* tags "k=v,k2=v2" (or NULL), cols "time,v" (or "" for none) */
static uint32_t series(mk_qresult *r, const char *name, const char *tags, const char *cols)
{
    char tbuf[512], cbuf[512];
    const char *tk[16], *tv[16], *cn[16];
    uint32_t nt = 0, nc = 0;
    if (tags) {
        snprintf(tbuf, sizeof tbuf, "%s", tags);
        for (char *s = strtok(tbuf, ","); s; s = strtok(NULL, ",")) {
            char *eq = strchr(s, '=');
            *eq = 0;
            tk[nt] = s;
            tv[nt++] = eq + 1;
        }
    }
    snprintf(cbuf, sizeof cbuf, "%s", cols);
    for (char *s = strtok(cbuf, ","); s; s = strtok(NULL, ",")) cn[nc++] = s;
    uint32_t idx;
    assert_int_equal(mk_qres_add_series(r, name, nt, tk, tv, nc, cn, &idx), MK_OK);
    return idx;
}

static void row(mk_qresult *r, uint32_t idx, const mk_qv *v) { assert_int_equal(mk_qres_add_row(r, idx, v), MK_OK); }
#define ROW(r, idx, ...) row((r), (idx), (const mk_qv[]){__VA_ARGS__})

/* ---- writing -------------------------------------------------------------- */

typedef struct sink {
    mk_sbuf out;
    size_t max_piece, n_pieces;
    size_t fail_after; /* fail the call after this many pieces; 0 = never */
} sink;

static mk_err sink_fn(void *ctx, const char *p, size_t n)
{
    sink *s = ctx;
    assert_true(n > 0);
    if (s->fail_after && s->n_pieces == s->fail_after) return MK_ENOSPC;
    s->n_pieces++;
    if (n > s->max_piece) s->max_piece = n;
    mk_sb_add(&s->out, p, n);
    return MK_OK;
}

/* The writer's output as a malloc'ed string. */
static char *write_out(const mk_qresult *r, mk_qfmt fmt, const char *epoch, int is_pretty, uint64_t chunk)
{
    sink s = {0};
    mk_qout_opts o = {.format = fmt, .epoch = epoch, .is_pretty = is_pretty, .chunk_size = chunk};
    mk_diag d = {0};
    assert_int_equal(mk_qresult_write(r, &o, sink_fn, &s, &d), MK_OK);
    assert_true(s.max_piece <= 65536);
    char *p = strdup(mk_sb_str(&s.out));
    mk_sb_free(&s.out);
    return p;
}

static void expect(const mk_qresult *r, mk_qfmt fmt, const char *epoch, int is_pretty, uint64_t chunk,
                   const char *want)
{
    char *got = write_out(r, fmt, epoch, is_pretty, chunk);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "format %d epoch %s pretty %d chunk %" PRIu64 "\n---- want:\n%s\n---- got:\n%s\n", (int)fmt,
                epoch ? epoch : "(rfc3339)", is_pretty, chunk, want, got);
        fail_msg("writer output differs");
    }
    free(got);
}

#define JSON(r, want) expect((r), MK_QFMT_JSON, NULL, 0, 0, (want))

/* ---- JSON: InfluxDB's documented answers ---------------------------------- */

#define T_1618 1488327378000000000LL /* 2017-03-01T00:16:18Z */
#define T_1718 1488327438000000000LL /* 2017-03-01T00:17:18Z */

static void mymeas(mk_qresult *r)
{
    uint32_t s = series(r, "mymeas", NULL, "time,myfield,mytag1,mytag2");
    ROW(r, s, QT(T_1618), QF(33.1), QN(), QN());
    ROW(r, s, QT(T_1718), QF(12.4), QS("12"), QS("14"));
}

static void test_json_docs_examples(void **state)
{
    (void)state;
    mk_qresult *r = res();
    stmt(r, 0);
    mymeas(r);
    JSON(r, "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"mymeas\",\"columns\":[\"time\",\"myfield\","
            "\"mytag1\",\"mytag2\"],\"values\":[[\"2017-03-01T00:16:18Z\",33.1,null,null],"
            "[\"2017-03-01T00:17:18Z\",12.4,\"12\",\"14\"]]}]}]}\n");
    /* epoch=s */
    expect(r, MK_QFMT_JSON, "s", 0, 0,
           "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"mymeas\",\"columns\":[\"time\",\"myfield\","
           "\"mytag1\",\"mytag2\"],\"values\":[[1488327378,33.1,null,null],[1488327438,12.4,\"12\",\"14\"]]}]}]}\n");
    /* chunked=true&chunk_size=1 */
    expect(r, MK_QFMT_JSON, NULL, 0, 1,
           "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"mymeas\",\"columns\":[\"time\",\"myfield\","
           "\"mytag1\",\"mytag2\"],\"values\":[[\"2017-03-01T00:16:18Z\",33.1,null,null]],\"partial\":true}],"
           "\"partial\":true}]}\n"
           "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"mymeas\",\"columns\":[\"time\",\"myfield\","
           "\"mytag1\",\"mytag2\"],\"values\":[[\"2017-03-01T00:17:18Z\",12.4,\"12\",\"14\"]]}]}]}\n");
    /* two statements: SELECT * ...; SELECT count(myfield) ... */
    stmt(r, 1);
    uint32_t s = series(r, "mymeas", NULL, "time,count");
    ROW(r, s, QT(0), QI(2));
    JSON(r, "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"mymeas\",\"columns\":[\"time\",\"myfield\","
            "\"mytag1\",\"mytag2\"],\"values\":[[\"2017-03-01T00:16:18Z\",33.1,null,null],"
            "[\"2017-03-01T00:17:18Z\",12.4,\"12\",\"14\"]]}]},{\"statement_id\":1,\"series\":[{\"name\":"
            "\"mymeas\",\"columns\":[\"time\",\"count\"],\"values\":[[\"1970-01-01T00:00:00Z\",2]]}]}]}\n");
    mk_qresult_free(r);

    r = res();
    stmt_err(r, 0, "database not found: mydb1");
    JSON(r, "{\"results\":[{\"statement_id\":0,\"error\":\"database not found: mydb1\"}]}\n");
    mk_qresult_free(r);

    sink k = {0};
    assert_int_equal(mk_qerror_write_json("error parsing query: found EOF, expected FROM at line 1, char 9", sink_fn, &k),
                     MK_OK);
    assert_string_equal(mk_sb_str(&k.out), "{\"error\":\"error parsing query: found EOF, expected FROM at line 1, char 9\"}\n");
    mk_sb_free(&k.out);
    k = (sink){0};
    assert_int_equal(mk_qerror_write_json("a \"b\"\\c\n<x>", sink_fn, &k), MK_OK);
    assert_string_equal(mk_sb_str(&k.out), "{\"error\":\"a \\\"b\\\"\\\\c\\n\\u003cx\\u003e\"}\n");
    mk_sb_free(&k.out);
}

static void test_json_shapes(void **state)
{
    (void)state;
    mk_qresult *r = res();
    JSON(r, "{}\n"); /* no statements: Results is omitempty */
    stmt(r, 0);
    uint32_t s = series(r, NULL, "host=a,region=us", "time,v");
    ROW(r, s, QT(0), QN());
    series(r, "", NULL, "time,v"); /* empty name: left out, as Go's omitempty does; no rows: no "values" */
    series(r, "nocols", NULL, "");
    stmt(r, 1); /* succeeded, nothing to show */
    stmt_err(r, 2, "boom");
    stmt(r, 3);
    s = series(r, "databases", NULL, "name");
    ROW(r, s, QS("db0"));
    ROW(r, s, QS("_internal"));
    JSON(r, "{\"results\":[{\"statement_id\":0,\"series\":[{\"tags\":{\"host\":\"a\",\"region\":\"us\"},"
            "\"columns\":[\"time\",\"v\"],\"values\":[[\"1970-01-01T00:00:00Z\",null]]},{\"columns\":[\"time\",\"v\"]},"
            "{\"name\":\"nocols\"}]},{\"statement_id\":1},{\"statement_id\":2,\"error\":\"boom\"},"
            "{\"statement_id\":3,\"series\":[{\"name\":\"databases\",\"columns\":[\"name\"],\"values\":[[\"db0\"],"
            "[\"_internal\"]]}]}]}\n");
    mk_qresult_free(r);

    /* every value type */
    r = res();
    stmt(r, 7);
    s = series(r, "m", NULL, "time,f,i,b,s,n");
    ROW(r, s, QT(1700000000500000000LL), QF(-2.5), QI(INT64_MIN), QB(1), QS(""), QN());
    ROW(r, s, QT(1700000000000000000LL), QF(0), QI(INT64_MAX), QB(0), QS("x"), QN());
    JSON(r, "{\"results\":[{\"statement_id\":7,\"series\":[{\"name\":\"m\",\"columns\":[\"time\",\"f\",\"i\",\"b\",\"s\","
            "\"n\"],\"values\":[[\"2023-11-14T22:13:20.5Z\",-2.5,-9223372036854775808,true,\"\",null],"
            "[\"2023-11-14T22:13:20Z\",0,9223372036854775807,false,\"x\",null]]}]}]}\n");
    mk_qresult_free(r);
}

/* ---- times ---------------------------------------------------------------- */

static char *one_value(mk_qv v, mk_qfmt fmt, const char *epoch)
{
    mk_qresult *r = res();
    stmt(r, 0);
    uint32_t s = series(r, NULL, NULL, "v");
    row(r, s, &v);
    char *out = write_out(r, fmt, epoch, 0, 0);
    mk_qresult_free(r);
    /* JSON: ...,"values":[[X]]}]}]} ; CSV: name,tags,v\n,,X\n */
    char *x;
    if (fmt == MK_QFMT_JSON) {
        x = strstr(out, "\"values\":[[");
        assert_non_null(x);
        x += 11;
        char *end = x + strlen(x) - strlen("]]}]}]}\n");
        assert_string_equal(end, "]]}]}]}\n");
        *end = 0;
    } else {
        x = strstr(out, "\n,,");
        assert_non_null(x);
        x += 3;
        x[strlen(x) - 1] = 0;
    }
    char *ret = strdup(x);
    free(out);
    return ret;
}

static void expect_val(mk_qv v, mk_qfmt fmt, const char *epoch, const char *want)
{
    char *got = one_value(v, fmt, epoch);
    if (strcmp(got, want)) fail_msg("format %d epoch %s: want %s, got %s", (int)fmt, epoch ? epoch : "-", want, got);
    free(got);
}

static void test_times(void **state)
{
    (void)state;
    static const struct {
        int64_t ns;
        const char *rfc;
    } rfc[] = {
        {0, "\"1970-01-01T00:00:00Z\""},
        {1, "\"1970-01-01T00:00:00.000000001Z\""},
        {-1, "\"1969-12-31T23:59:59.999999999Z\""},
        {1700000000500000000LL, "\"2023-11-14T22:13:20.5Z\""},
        {1700000000120000000LL, "\"2023-11-14T22:13:20.12Z\""},
        {1700000000000001000LL, "\"2023-11-14T22:13:20.000001Z\""},
        {1709208000000000000LL, "\"2024-02-29T12:00:00Z\""},        /* leap day */
        {951782400000000000LL, "\"2000-02-29T00:00:00Z\""},         /* leap day of a year % 400 */
        {-2208988800000000000LL, "\"1900-01-01T00:00:00Z\""},        /* not a leap year */
        {-1500000000LL, "\"1969-12-31T23:59:58.5Z\""},
        {INT64_MIN, "\"1677-09-21T00:12:43.145224192Z\""},
        {INT64_MAX, "\"2262-04-11T23:47:16.854775807Z\""},
    };
    for (size_t i = 0; i < sizeof rfc / sizeof rfc[0]; i++) {
        expect_val(QT(rfc[i].ns), MK_QFMT_JSON, NULL, rfc[i].rfc);
        expect_val(QT(rfc[i].ns), MK_QFMT_JSON, "", rfc[i].rfc);
    }
    /* epoch units: ns / unit with Go's truncating division (handler.go
     * convertToEpoch), so -1.5 s is -1 s and -1.5 h is -1 h */
    static const struct {
        const char *epoch;
        const char *want[4];
    } ep[] = {
        {"ns", {"-1500000000", "0", "1700000000123456789", "-5400000000000"}},
        {"n", {"-1500000000", "0", "1700000000123456789", "-5400000000000"}},
        {"rfc3339", {"-1500000000", "0", "1700000000123456789", "-5400000000000"}}, /* unknown: ns, as InfluxDB */
        {"u", {"-1500000", "0", "1700000000123456", "-5400000000"}},
        {"us", {"-1500000", "0", "1700000000123456", "-5400000000"}},
        {"\xc2\xb5", {"-1500000", "0", "1700000000123456", "-5400000000"}},
        {"ms", {"-1500", "0", "1700000000123", "-5400000"}},
        {"s", {"-1", "0", "1700000000", "-5400"}},
        {"m", {"0", "0", "28333333", "-90"}},
        {"h", {"0", "0", "472222", "-1"}},
    };
    static const int64_t ts[4] = {-1500000000LL, 0, 1700000000123456789LL, -5400000000000LL};
    for (size_t i = 0; i < sizeof ep / sizeof ep[0]; i++)
        for (int j = 0; j < 4; j++) {
            expect_val(QT(ts[j]), MK_QFMT_JSON, ep[i].epoch, ep[i].want[j]);
            expect_val(QT(ts[j]), MK_QFMT_CSV, ep[i].epoch, ep[i].want[j]);
        }
    /* CSV without an epoch: integer ns (time.Time.UnixNano) */
    expect_val(QT(-1), MK_QFMT_CSV, NULL, "-1");
    expect_val(QT(INT64_MIN), MK_QFMT_CSV, NULL, "-9223372036854775808");
}

/* ---- floats --------------------------------------------------------------- */

static void test_float_forms(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *json, *csv;
    } t[] = {
        {0.1, "0.1", "0.1"},
        {1, "1", "1"},
        {1.5, "1.5", "1.5"},
        {-2.25, "-2.25", "-2.25"},
        {100, "100", "100"},
        {0.0, "0", "0"},
        {-0.0, "-0", "-0"},
        {1e21, "1e+21", "1000000000000000000000"},
        {1e20, "100000000000000000000", "100000000000000000000"},
        {123456789012345680000.0, "123456789012345680000", "123456789012345680000"},
        {1e-7, "1e-7", "0.0000001"},
        {1e-6, "0.000001", "0.000001"},
        {1.5e-10, "1.5e-10", "0.00000000015"},
        {1.2345e-300, "1.2345e-300", NULL},
        {5e-324, "5e-324", NULL},
        {-5e-324, "-5e-324", NULL},
        {2.2250738585072014e-308, "2.2250738585072014e-308", NULL},
        {1.7976931348623157e308, "1.7976931348623157e+308", NULL},
        {9007199254740992.0, "9007199254740992", "9007199254740992"},
        {9007199254740993.0, "9007199254740992", "9007199254740992"}, /* rounds to 2^53 when compiled */
        {1152921504606846976.0, "1152921504606847000", "1152921504606847000"}, /* 2^60: shortest digits, zeros */
        {41.833333333333336, "41.833333333333336", "41.833333333333336"},
        {0.3, "0.3", "0.3"},
        {0.1 + 0.2, "0.30000000000000004", "0.30000000000000004"},
        {1.0 / 3, "0.3333333333333333", "0.3333333333333333"},
        {2.0 / 3, "0.6666666666666666", "0.6666666666666666"},
        {123456.789, "123456.789", "123456.789"},
        {1e22, "1e+22", "10000000000000000000000"},
        {1e23, "1e+23", "100000000000000000000000"},
        {4.35, "4.35", "4.35"},
        {0.000123, "0.000123", "0.000123"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        expect_val(QF(t[i].v), MK_QFMT_JSON, NULL, t[i].json);
        if (t[i].csv) expect_val(QF(t[i].v), MK_QFMT_CSV, NULL, t[i].csv);
    }
    char tiny[400] = "0.";
    memset(tiny + 2, '0', 323);
    strcpy(tiny + 325, "5"); /* 5e-324 = 0.(323 zeros)5 */
    expect_val(QF(5e-324), MK_QFMT_CSV, NULL, tiny);
    char *big = one_value(QF(1.7976931348623157e308), MK_QFMT_CSV, NULL);
    assert_int_equal(strlen(big), 309);
    assert_memory_equal(big, "17976931348623157", 17);
    for (size_t i = 17; i < 309; i++) assert_int_equal(big[i], '0');
    free(big);
    /* Go's encoding/json cannot encode them; we write null. CSV: strconv's text. */
    expect_val(QF(NAN), MK_QFMT_JSON, NULL, "null");
    expect_val(QF(INFINITY), MK_QFMT_JSON, NULL, "null");
    expect_val(QF(-INFINITY), MK_QFMT_JSON, NULL, "null");
    expect_val(QF(NAN), MK_QFMT_CSV, NULL, "NaN");
    expect_val(QF(INFINITY), MK_QFMT_CSV, NULL, "+Inf");
    expect_val(QF(-INFINITY), MK_QFMT_CSV, NULL, "-Inf");
}

/* Significant digits and decimal exponent of a number's text:
 * value = 0.D * 10^E, D without leading or trailing zeros. */
static void normalize(const char *s, char *digits, int *exp10)
{
    int n = 0, dp = 0, seen_dot = 0, seen_nonzero = 0;
    if (*s == '-' || *s == '+') s++;
    for (; *s && *s != 'e' && *s != 'E'; s++) {
        if (*s == '.') {
            seen_dot = 1;
            continue;
        }
        if (!seen_nonzero && *s == '0') {
            if (seen_dot) dp--;
            continue;
        }
        seen_nonzero = 1;
        digits[n++] = *s;
        if (!seen_dot) dp++;
    }
    if (*s) dp += atoi(s + 1);
    while (n > 0 && digits[n - 1] == '0') n--;
    digits[n] = 0;
    *exp10 = dp;
}

/* ours: the writer's text for v. Checks it reads back as v and is the
 * shortest (brute force: the first %.Ne that reads back), with the same
 * digits as the nearest of that length when as long. */
static void check_float(double v, const char *ours, int brute)
{
    double back = strtod(ours, NULL);
    if (memcmp(&back, &v, sizeof v) != 0) fail_msg("%.17g written as %s reads back as %.17g", v, ours, back);
    if (!brute) return;
    char b[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(b, sizeof b, "%.*e", p - 1, v);
        if (strtod(b, NULL) == v) break;
    }
    char d1[512], d2[512];
    int e1, e2;
    normalize(ours, d1, &e1);
    normalize(b, d2, &e2);
    if (strlen(d1) > strlen(d2)) fail_msg("%.17g written as %s, but %s is shorter", v, ours, b);
    /* %.Ne is the nearest N-digit decimal; for powers of two (lopsided
     * interval) a shorter one may exist above it, so only equal lengths
     * must agree */
    if (strlen(d1) == strlen(d2) && (strcmp(d1, d2) || e1 != e2))
        fail_msg("%.17g written as %s, the nearest shortest is %s", v, ours, b);
}

/* Writes vals as one JSON column and CSV column and checks each. */
static void check_floats(const double *vals, size_t n, int brute_every)
{
    for (int is_csv = 0; is_csv < 2; is_csv++) {
        mk_qresult *r = res();
        stmt(r, 0);
        uint32_t s = series(r, NULL, NULL, "v");
        for (size_t i = 0; i < n; i++) ROW(r, s, QF(vals[i]));
        char *out = write_out(r, is_csv ? MK_QFMT_CSV : MK_QFMT_JSON, NULL, 0, 0);
        mk_qresult_free(r);
        char *p = is_csv ? strstr(out, "\n,,") + 1 : strstr(out, "\"values\":[") + 10;
        for (size_t i = 0; i < n; i++) {
            char text[512];
            size_t k = 0;
            if (is_csv) {
                assert_memory_equal(p, ",,", 2);
                p += 2;
                while (*p != '\n') text[k++] = *p++;
                p++;
            } else {
                assert_int_equal(*p, '[');
                p++;
                while (*p != ']') text[k++] = *p++;
                p += 2; /* "]," or "]]" */
                assert_null(strchr(text, 'E'));
            }
            text[k] = 0;
            if (is_csv) assert_null(strchr(text, 'e')); /* 'f' form only */
            check_float(vals[i], text, brute_every && i % (size_t)brute_every == 0);
        }
        free(out);
    }
}

static void test_float_property(void **state)
{
    (void)state;
    uint64_t seed = DEFAULT_SEED;
    const char *env = getenv("MK_TEST_SEED");
    if (env) seed = strtoull(env, NULL, 0);
    printf("test_float_property seed %" PRIu64 " (MK_TEST_SEED overrides)\n", seed);
    mk_rng rng = {seed};
    enum { N = 100000 };
    double *v = malloc(N * sizeof *v);
    size_t n = 0;
    /* random bit patterns: every exponent equally likely */
    while (n < N) {
        double d;
        uint64_t bits = mk_rng_next(&rng);
        memcpy(&d, &bits, sizeof d);
        if (isfinite(d)) v[n++] = d;
    }
    check_floats(v, n, 5);
    /* values like the ones metrics have: few decimals, means, rates */
    n = 0;
    for (int i = 0; i < 20000; i++) {
        double base = (double)mk_rng_below(&rng, 1000000);
        int scale = (int)mk_rng_below(&rng, 8);
        v[n++] = base / pow(10, scale);
        v[n++] = base / (double)(1 + mk_rng_below(&rng, 1000));
        v[n++] = mk_rng_unit(&rng) * pow(10, (double)mk_rng_below(&rng, 40) - 20);
    }
    check_floats(v, n, 1);
    /* the edges: smallest subnormals, every power of two, neighbours of
     * powers of ten, the largest doubles */
    n = 0;
    for (uint64_t c = 1; c <= 3000; c++) v[n++] = mk_bits_f64(c);
    for (uint64_t c = 0; c < 2000; c++) v[n++] = mk_bits_f64((1ull << 52) - 1000 + c); /* around DBL_MIN */
    for (int e = -1074; e <= 1023; e++) v[n++] = ldexp(1, e);
    for (int e = -300; e <= 300; e++) {
        double p = pow(10, e);
        v[n++] = p;
        v[n++] = nextafter(p, 0);
        v[n++] = nextafter(p, INFINITY);
    }
    v[n++] = DBL_MAX;
    v[n++] = nextafter(DBL_MAX, 0);
    v[n++] = DBL_MIN;
    v[n++] = -DBL_MIN;
    assert_true(n <= N);
    check_floats(v, n, 1);
    free(v);
}

/* ---- strings -------------------------------------------------------------- */

static void test_json_strings(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } t[] = {
        {"plain", "\"plain\""},
        {"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe4\xb8\xad", "\"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe4\xb8\xad\""},
        {"q\"b\\s/", "\"q\\\"b\\\\s/\""},
        {"\n\r\t", "\"\\n\\r\\t\""},
        {"\x01\x08\x0c\x1f\x7f", "\"\\u0001\\u0008\\u000c\\u001f\x7f\""},
        {"<a href='x'>&amp;</a>", "\"\\u003ca href='x'\\u003e\\u0026amp;\\u003c/a\\u003e\""},
        {"\xe2\x80\xa8\xe2\x80\xa9", "\"\\u2028\\u2029\""},
        {"a\xff" "b", "\"a\\ufffdb\""},
        {"\xc3(", "\"\\ufffd(\""},               /* lead byte without continuation */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},      /* overlong '/' */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* past U+10FFFF */
        {"\xe2\x82", "\"\\ufffd\\ufffd\""},       /* truncated at the end */
        {"\xf0\x9f\x98", "\"\\ufffd\\ufffd\\ufffd\""},
        {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""}, /* U+10FFFF itself */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) expect_val(QS(t[i].in), MK_QFMT_JSON, NULL, t[i].want);
    /* names, tags and columns are escaped the same way */
    mk_qresult *r = res();
    stmt(r, 0);
    uint32_t s = series(r, "m\"<", "k\n=v\x01", "time,c\\");
    ROW(r, s, QT(0), QI(1));
    JSON(r, "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"m\\\"\\u003c\",\"tags\":{\"k\\n\":\"v\\u0001\"},"
            "\"columns\":[\"time\",\"c\\\\\"],\"values\":[[\"1970-01-01T00:00:00Z\",1]]}]}]}\n");
    mk_qresult_free(r);
    /* a string longer than the output buffer, with escapes across the
     * buffer's edges */
    size_t n = 200000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = i % 7 == 0 ? '"' : 'a' + (char)(i % 26);
    big[n] = 0;
    char *got = one_value(QS(big), MK_QFMT_JSON, NULL);
    size_t k = 0;
    assert_int_equal(got[k++], '"');
    for (size_t i = 0; i < n; i++) {
        if (big[i] == '"') assert_int_equal(got[k++], '\\');
        assert_int_equal(got[k++], big[i]);
    }
    assert_string_equal(got + k, "\"");
    free(got);
    free(big);
}

/* ---- chunked and pretty --------------------------------------------------- */

static void test_json_chunked(void **state)
{
    (void)state;
    mk_qresult *r = res();
    stmt(r, 0);
    uint32_t a = series(r, "cpu", "host=a", "time,v");
    for (int i = 0; i < 5; i++) ROW(r, a, QT(i), QI(i));
    uint32_t b = series(r, "cpu", "host=b", "time,v");
    for (int i = 0; i < 2; i++) ROW(r, b, QT(10 + i), QI(10 + i));
    stmt(r, 1);
    stmt_err(r, 2, "boom");
    stmt(r, 3);
    uint32_t c = series(r, "mem", NULL, "time,v");
    for (int i = 0; i < 2; i++) ROW(r, c, QT(i), QF(0.5));
    /* chunk_size 2: cpu,host=a splits 2+2+1 (partial series twice), the
     * result stays partial while host=b follows; host=b is exactly one
     * chunk and the last of statement 0; mem is exactly one chunk */
#define A "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"cpu\",\"tags\":{\"host\":\"a\"},\"columns\":[\"time\",\"v\"],\"values\":"
#define B "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"cpu\",\"tags\":{\"host\":\"b\"},\"columns\":[\"time\",\"v\"],\"values\":"
    const char *want2 =
        A "[[0,0],[1,1]],\"partial\":true}],\"partial\":true}]}\n"
        A "[[2,2],[3,3]],\"partial\":true}],\"partial\":true}]}\n"
        A "[[4,4]]}],\"partial\":true}]}\n"
        B "[[10,10],[11,11]]}]}]}\n"
        "{\"results\":[{\"statement_id\":1}]}\n"
        "{\"results\":[{\"statement_id\":2,\"error\":\"boom\"}]}\n"
        "{\"results\":[{\"statement_id\":3,\"series\":[{\"name\":\"mem\",\"columns\":[\"time\",\"v\"],\"values\":[[0,0.5],[1,0.5]]}]}]}\n";
    expect(r, MK_QFMT_JSON, "ns", 0, 2, want2);
    /* chunk_size 1: every row its own document */
    const char *want1 =
        A "[[0,0]],\"partial\":true}],\"partial\":true}]}\n"
        A "[[1,1]],\"partial\":true}],\"partial\":true}]}\n"
        A "[[2,2]],\"partial\":true}],\"partial\":true}]}\n"
        A "[[3,3]],\"partial\":true}],\"partial\":true}]}\n"
        A "[[4,4]]}],\"partial\":true}]}\n"
        B "[[10,10]],\"partial\":true}],\"partial\":true}]}\n"
        B "[[11,11]]}]}]}\n"
        "{\"results\":[{\"statement_id\":1}]}\n"
        "{\"results\":[{\"statement_id\":2,\"error\":\"boom\"}]}\n"
        "{\"results\":[{\"statement_id\":3,\"series\":[{\"name\":\"mem\",\"columns\":[\"time\",\"v\"],\"values\":[[0,0.5]],\"partial\":true}],\"partial\":true}]}\n"
        "{\"results\":[{\"statement_id\":3,\"series\":[{\"name\":\"mem\",\"columns\":[\"time\",\"v\"],\"values\":[[1,0.5]]}]}]}\n";
    expect(r, MK_QFMT_JSON, "ns", 0, 1, want1);
    /* a chunk larger than every series: one document per series */
    const char *want9 =
        A "[[0,0],[1,1],[2,2],[3,3],[4,4]]}],\"partial\":true}]}\n"
        B "[[10,10],[11,11]]}]}]}\n"
        "{\"results\":[{\"statement_id\":1}]}\n"
        "{\"results\":[{\"statement_id\":2,\"error\":\"boom\"}]}\n"
        "{\"results\":[{\"statement_id\":3,\"series\":[{\"name\":\"mem\",\"columns\":[\"time\",\"v\"],\"values\":[[0,0.5],[1,0.5]]}]}]}\n";
    expect(r, MK_QFMT_JSON, "ns", 0, 5, want9);
    expect(r, MK_QFMT_JSON, "ns", 0, 1000000, want9);
#undef A
#undef B
    mk_qresult_free(r);
}

static void test_json_pretty(void **state)
{
    (void)state;
    mk_qresult *r = res();
    JSON(r, "{}\n");
    expect(r, MK_QFMT_JSON, NULL, 1, 0, "{}\n");
    stmt(r, 0);
    uint32_t s = series(r, "cpu", "host=a", "time,value");
    ROW(r, s, QT(10), QF(2.5));
    ROW(r, s, QT(20), QN());
    series(r, NULL, NULL, ""); /* every key left out: {} */
    stmt(r, 1);
    stmt_err(r, 2, "x");
    /* json.MarshalIndent(resp, "", "    ") */
    expect(r, MK_QFMT_JSON, NULL, 1, 0,
           "{\n"
           "    \"results\": [\n"
           "        {\n"
           "            \"statement_id\": 0,\n"
           "            \"series\": [\n"
           "                {\n"
           "                    \"name\": \"cpu\",\n"
           "                    \"tags\": {\n"
           "                        \"host\": \"a\"\n"
           "                    },\n"
           "                    \"columns\": [\n"
           "                        \"time\",\n"
           "                        \"value\"\n"
           "                    ],\n"
           "                    \"values\": [\n"
           "                        [\n"
           "                            \"1970-01-01T00:00:00.00000001Z\",\n"
           "                            2.5\n"
           "                        ],\n"
           "                        [\n"
           "                            \"1970-01-01T00:00:00.00000002Z\",\n"
           "                            null\n"
           "                        ]\n"
           "                    ]\n"
           "                },\n"
           "                {}\n"
           "            ]\n"
           "        },\n"
           "        {\n"
           "            \"statement_id\": 1\n"
           "        },\n"
           "        {\n"
           "            \"statement_id\": 2,\n"
           "            \"error\": \"x\"\n"
           "        }\n"
           "    ]\n"
           "}\n");
    mk_qresult_free(r);
    /* pretty and chunked: each document indented, partial flags included */
    r = res();
    stmt(r, 0);
    s = series(r, "m", NULL, "v");
    ROW(r, s, QB(1));
    ROW(r, s, QB(0));
    expect(r, MK_QFMT_JSON, NULL, 1, 1,
           "{\n    \"results\": [\n        {\n            \"statement_id\": 0,\n            \"series\": [\n"
           "                {\n                    \"name\": \"m\",\n                    \"columns\": [\n"
           "                        \"v\"\n                    ],\n                    \"values\": [\n"
           "                        [\n                            true\n                        ]\n"
           "                    ],\n                    \"partial\": true\n                }\n            ],\n"
           "            \"partial\": true\n        }\n    ]\n}\n"
           "{\n    \"results\": [\n        {\n            \"statement_id\": 0,\n            \"series\": [\n"
           "                {\n                    \"name\": \"m\",\n                    \"columns\": [\n"
           "                        \"v\"\n                    ],\n                    \"values\": [\n"
           "                        [\n                            false\n                        ]\n"
           "                    ]\n                }\n            ]\n        }\n    ]\n}\n");
    mk_qresult_free(r);
}

/* ---- CSV ------------------------------------------------------------------ */

static void test_csv(void **state)
{
    (void)state;
    /* InfluxDB's TestResponseWriter_CSV (without its uint64 row) */
    mk_qresult *r = res();
    stmt(r, 0);
    uint32_t s = series(r, "cpu", "host=server01,region=uswest", "time,value");
    ROW(r, s, QT(10), QF(2.5));
    ROW(r, s, QT(20), QI(5));
    ROW(r, s, QT(30), QN());
    ROW(r, s, QT(40), QS("foobar"));
    ROW(r, s, QT(50), QB(1));
    ROW(r, s, QT(60), QB(0));
    expect(r, MK_QFMT_CSV, NULL, 0, 0,
           "name,tags,time,value\n"
           "cpu,\"host=server01,region=uswest\",10,2.5\n"
           "cpu,\"host=server01,region=uswest\",20,5\n"
           "cpu,\"host=server01,region=uswest\",30,\n"
           "cpu,\"host=server01,region=uswest\",40,foobar\n"
           "cpu,\"host=server01,region=uswest\",50,true\n"
           "cpu,\"host=server01,region=uswest\",60,false\n");
    mk_qresult_free(r);

    /* TestResponseWriter_CSV_DifferentColumns */
    r = res();
    stmt(r, 0);
    s = series(r, "network", NULL, "hostname");
    ROW(r, s, QS("localhost"));
    s = series(r, "runtime", NULL, "GOARCH,GOMAXPROCS,GOOS,version");
    ROW(r, s, QS("amd64"), QI(8), QS("darwin"), QS("go1.10.6"));
    expect(r, MK_QFMT_CSV, NULL, 0, 0,
           "name,tags,hostname\nnetwork,,localhost\n\n"
           "name,tags,GOARCH,GOMAXPROCS,GOOS,version\nruntime,,amd64,8,darwin,go1.10.6\n");
    mk_qresult_free(r);

    /* statements: a blank line and a new header between them; series of
     * one statement with the same columns share the header; an empty
     * statement writes nothing; a failed one `error` and its message */
    r = res();
    stmt(r, 0);
    s = series(r, "cpu", "host=a", "time,v");
    ROW(r, s, QT(1), QF(1e21));
    s = series(r, "cpu", "host=b", "time,v");
    ROW(r, s, QT(2), QF(-0.5));
    stmt(r, 1);
    stmt_err(r, 2, "bad, \"very\" bad");
    stmt(r, 3);
    s = series(r, "m", "k=a b,c=d\\e,x==y", "time,s");
    ROW(r, s, QT(3), QS("a,b"));
    ROW(r, s, QT(4), QS("say \"hi\""));
    ROW(r, s, QT(5), QS("two\nlines"));
    ROW(r, s, QT(6), QS(" lead"));
    ROW(r, s, QT(7), QS("\\."));
    ROW(r, s, QT(8), QS("\xc2\xa0nbsp"));
    ROW(r, s, QT(9), QS("cr\r"));
    ROW(r, s, QT(10), QS("tail "));
    ROW(r, s, QT(11), QS(""));
    expect(r, MK_QFMT_CSV, "s", 0, 0,
           "name,tags,time,v\n"
           "cpu,host=a,0,1000000000000000000000\n"
           "cpu,host=b,0,-0.5\n"
           "\n"
           "error\n"
           "\"bad, \"\"very\"\" bad\"\n"
           "\n"
           "name,tags,time,s\n"
           "m,\"k=a\\ b,c=d\\e,x=\\=y\",0,\"a,b\"\n"
           "m,\"k=a\\ b,c=d\\e,x=\\=y\",0,\"say \"\"hi\"\"\"\n"
           "m,\"k=a\\ b,c=d\\e,x=\\=y\",0,\"two\nlines\"\n"
           "m,\"k=a\\ b,c=d\\e,x=\\=y\",0,\" lead\"\n"
           "m,\"k=a\\ b,c=d\\e,x=\\=y\",0,\"\\.\"\n"
           "m,\"k=a\\ b,c=d\\e,x=\\=y\",0,\"\xc2\xa0nbsp\"\n"
           "m,\"k=a\\ b,c=d\\e,x=\\=y\",0,\"cr\r\"\n"
           "m,\"k=a\\ b,c=d\\e,x=\\=y\",0,tail \n"
           "m,\"k=a\\ b,c=d\\e,x=\\=y\",0,\n");
    mk_qresult_free(r);
    r = res();
    expect(r, MK_QFMT_CSV, NULL, 0, 0, "");
    mk_qresult_free(r);
}

/* ---- table ---------------------------------------------------------------- */

static void test_table(void **state)
{
    (void)state;
    mk_qresult *r = res();
    stmt(r, 0);
    uint32_t s = series(r, "cpu", "host=a,region=us", "time,value,label");
    ROW(r, s, QT(10), QF(2.5), QS("x"));
    ROW(r, s, QT(20), QF(100.125), QN());
    ROW(r, s, QT(30), QF(NAN), QS("caf\xc3\xa9\tbar"));
    s = series(r, NULL, NULL, "name");
    ROW(r, s, QS("db0"));
    stmt(r, 1);
    stmt_err(r, 2, "boom");
    stmt(r, 3);
    s = series(r, "m", NULL, "time,n\xc3\xa9w");
    ROW(r, s, QT(1700000000500000000LL), QI(-7));
    ROW(r, s, QT(1700000000000000000LL), QB(1));
    /* text/tabwriter(minwidth 0, padding 1): every column but the last as
     * wide as its widest cell (runes) plus one; dashes as long as the
     * name in bytes */
    expect(r, MK_QFMT_TABLE, "ns", 0, 0,
           "name: cpu\n"
           "tags: host=a, region=us\n"
           "time value   label\n"
           "---- -----   -----\n"
           "10   2.5     x\n"
           "20   100.125 \n"
           "30           caf\xc3\xa9\\tbar\n"
           "\n"
           "name\n"
           "----\n"
           "db0\n"
           "\n"
           "ERR: boom\n"
           "\n"
           "name: m\n"
           "time                n\xc3\xa9w\n"
           "----                ----\n"
           "1700000000500000000 -7\n"
           "1700000000000000000 true\n");
    /* RFC 3339 times when no epoch is given */
    mk_qresult_free(r);
    r = res();
    stmt(r, 0);
    s = series(r, "m", NULL, "time,v,w");
    ROW(r, s, QT(1700000000500000000LL), QI(1), QI(2));
    ROW(r, s, QT(1700000000000000000LL), QI(100), QI(3));
    expect(r, MK_QFMT_TABLE, NULL, 0, 0,
           "name: m\n"
           "time                   v   w\n"
           "----                   -   -\n"
           "2023-11-14T22:13:20.5Z 1   2\n"
           "2023-11-14T22:13:20Z   100 3\n");
    mk_qresult_free(r);
}

/* ---- streaming ------------------------------------------------------------ */

static void test_streaming(void **state)
{
    (void)state;
    mk_qresult *r = res();
    stmt(r, 0);
    uint32_t s = series(r, "m", NULL, "time,v,s");
    for (int i = 0; i < 50000; i++) ROW(r, s, QT((int64_t)i * 1000000000), QF(i / 7.0), QS("some text"));
    for (int fmt = 0; fmt < 3; fmt++) {
        for (int pretty = 0; pretty < 2; pretty++) {
            sink k = {0};
            mk_qout_opts o = {.format = (mk_qfmt)fmt, .is_pretty = pretty, .chunk_size = pretty ? 1000 : 0};
            assert_int_equal(mk_qresult_write(r, &o, sink_fn, &k, NULL), MK_OK);
            assert_true(k.max_piece <= 65536);
            assert_true(k.n_pieces >= k.out.n / 65536);
            assert_true(k.out.n > 1000000);
            mk_sb_free(&k.out);
            /* a failing output stops the writing and its code comes back */
            k = (sink){.fail_after = 3};
            mk_diag d = {0};
            assert_int_equal(mk_qresult_write(r, &o, sink_fn, &k, &d), MK_ENOSPC);
            assert_int_equal(d.code, MK_ENOSPC);
            assert_int_equal(k.n_pieces, 3);
            mk_sb_free(&k.out);
        }
    }
    sink k = {0};
    mk_qout_opts bad = {.format = (mk_qfmt)99};
    assert_int_equal(mk_qresult_write(r, &bad, sink_fn, &k, NULL), MK_EINVAL);
    assert_int_equal(mk_qresult_write(NULL, &bad, sink_fn, &k, NULL), MK_EINVAL);
    mk_qresult_free(r);
}

/* ---- random answers, read back with jansson ------------------------------- */

/* The string encoding/json decodes back from what Go writes for s: valid
 * UTF-8 unchanged, each byte of an invalid sequence as U+FFFD. Written
 * independently of output.c: decode the code point, then reject overlongs,
 * surrogates and values past U+10FFFF. */
static void go_sanitize(const char *s, mk_sbuf *out)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = p[0], n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
        int ok = n > 0;
        for (unsigned i = 1; ok && i < n; i++) {
            if ((p[i] & 0xC0) != 0x80) ok = 0;
            else cp = cp << 6 | (p[i] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (ok && (cp < min_cp[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)) ok = 0;
        if (ok) {
            mk_sb_add(out, (const char *)p, n);
            p += n;
        } else {
            mk_sb_add(out, "\xef\xbf\xbd", 3);
            p++;
        }
    }
}

static void expect_json_str(const json_t *j, const char *s)
{
    assert_true(json_is_string(j));
    mk_sbuf want = {0};
    go_sanitize(s ? s : "", &want);
    assert_int_equal(json_string_length(j), want.n);
    assert_memory_equal(json_string_value(j), mk_sb_str(&want), want.n);
    mk_sb_free(&want);
}

/* RFC 3339 with a trimmed fraction, from gmtime_r: the reference for times. */
static void rfc3339_ref(int64_t ns, char *buf)
{
    int64_t s = ns / 1000000000, f = ns % 1000000000;
    if (f < 0) {
        f += 1000000000;
        s--;
    }
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, 64, "%Y-%m-%dT%H:%M:%S", &tm);
    if (f) {
        n += (size_t)sprintf(buf + n, ".%09" PRId64, f);
        while (buf[n - 1] == '0') n--;
    }
    strcpy(buf + n, "Z");
}

static void rand_str(mk_rng *g, char *buf, size_t cap)
{
    static const char *const pieces[] = {"a", "Z", " ", ",", "=", "\"", "\\", "<", ">", "&", "\n", "\t", "\x01", "\x1f",
                                         "\x7f", "\xc3\xa9", "\xe2\x9c\x93", "\xf0\x9f\x98\x80", "\xe2\x80\xa8",
                                         "\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80", "\x80"};
    size_t n = 0, len = mk_rng_below(g, 12);
    for (size_t i = 0; i < len; i++) {
        const char *p = pieces[mk_rng_below(g, sizeof pieces / sizeof pieces[0])];
        size_t k = strlen(p);
        if (n + k + 1 > cap) break;
        memcpy(buf + n, p, k);
        n += k;
    }
    buf[n] = 0;
}

static mk_qv rand_value(mk_rng *g, char *sbuf)
{
    uint64_t bits = mk_rng_next(g);
    switch (mk_rng_below(g, 7)) {
    case 0: return QN();
    case 1: return QF(mk_bits_f64(bits));
    case 2: return QF((double)(int64_t)(bits % 2000001) / 1000 - 1000);
    case 3: return QI((int64_t)bits);
    case 4: return QB((int)(bits & 1));
    case 5: rand_str(g, sbuf, 64); return QS(sbuf);
    default: return QT((int64_t)bits);
    }
}

static mk_qresult *rand_result(mk_rng *g)
{
    mk_qresult *r = res();
    uint32_t n_stmts = (uint32_t)mk_rng_below(g, 4);
    for (uint32_t i = 0; i < n_stmts; i++) {
        uint64_t kind = mk_rng_below(g, 6);
        char sbuf[8][64];
        if (kind == 0) {
            rand_str(g, sbuf[0], sizeof sbuf[0]);
            stmt(r, i);
            assert_int_equal(mk_qres_stmt_error(r, "%s", sbuf[0]), MK_OK);
            continue;
        }
        stmt(r, i);
        uint32_t n_series = kind == 1 ? 0 : (uint32_t)mk_rng_below(g, 4);
        for (uint32_t si = 0; si < n_series; si++) {
            const char *tk[3], *tv[3], *cn[5];
            uint32_t nt = (uint32_t)mk_rng_below(g, 3), nc = 1 + (uint32_t)mk_rng_below(g, 4);
            char tags[6][64], cols[5][64], name[64];
            rand_str(g, name, sizeof name);
            for (uint32_t t = 0; t < nt; t++) {
                snprintf(tags[2 * t], 64, "k%u", t); /* sorted, distinct keys */
                rand_str(g, tags[2 * t + 1], 64);
                tk[t] = tags[2 * t];
                tv[t] = tags[2 * t + 1];
            }
            for (uint32_t c = 0; c < nc; c++) {
                rand_str(g, cols[c], 64);
                cn[c] = cols[c];
            }
            uint32_t idx;
            assert_int_equal(mk_qres_add_series(r, mk_rng_below(g, 4) ? name : NULL, nt, tk, tv, nc, cn, &idx), MK_OK);
            uint64_t n_rows = mk_rng_below(g, 3) ? mk_rng_below(g, 12) : 0;
            for (uint64_t row_i = 0; row_i < n_rows; row_i++) {
                mk_qv v[5];
                for (uint32_t c = 0; c < nc; c++) v[c] = rand_value(g, sbuf[c]);
                row(r, idx, v);
            }
        }
    }
    return r;
}

/* Checks one models.Row object against rows [r0, r1) of s. */
static void check_series_json(const json_t *j, const mk_qseries *s, uint64_t r0, uint64_t r1, int is_partial,
                              const char *epoch)
{
    assert_true(json_is_object(j));
    size_t n_keys = 0;
    const json_t *name = json_object_get(j, "name");
    if (s->name && *s->name) {
        expect_json_str(name, s->name);
        n_keys++;
    } else {
        assert_null(name);
    }
    const json_t *tags = json_object_get(j, "tags");
    if (s->n_tags) {
        assert_int_equal(json_object_size(tags), s->n_tags);
        for (uint32_t t = 0; t < s->n_tags; t++) expect_json_str(json_object_get(tags, s->tag_keys[t]), s->tag_values[t]);
        n_keys++;
    } else {
        assert_null(tags);
    }
    const json_t *cols = json_object_get(j, "columns");
    assert_int_equal(json_array_size(cols), s->n_cols);
    for (uint32_t c = 0; c < s->n_cols; c++) expect_json_str(json_array_get(cols, c), s->columns[c]);
    n_keys++;
    const json_t *vals = json_object_get(j, "values");
    if (r1 > r0) {
        n_keys++;
        assert_int_equal(json_array_size(vals), r1 - r0);
        for (uint64_t rr = r0; rr < r1; rr++) {
            const json_t *jr = json_array_get(vals, rr - r0);
            assert_int_equal(json_array_size(jr), s->n_cols);
            for (uint32_t c = 0; c < s->n_cols; c++) {
                const mk_qv *v = &s->values[rr * s->n_cols + c];
                const json_t *x = json_array_get(jr, c);
                char tb[64];
                switch (v->type) {
                case MK_QV_FLOAT:
                    if (!isfinite(v->u.f)) assert_true(json_is_null(x));
                    else assert_true(json_is_real(x) && json_real_value(x) == v->u.f);
                    break;
                case MK_QV_INT: assert_true(json_is_real(x) && json_real_value(x) == (double)v->u.i); break;
                case MK_QV_BOOL: assert_true(v->u.i ? json_is_true(x) : json_is_false(x)); break;
                case MK_QV_STRING: expect_json_str(x, v->u.s); break;
                case MK_QV_TIME:
                    if (!epoch) {
                        rfc3339_ref(v->u.i, tb);
                        expect_json_str(x, tb);
                    } else {
                        assert_true(json_is_real(x) && json_real_value(x) == (double)(v->u.i / 1000000));
                    }
                    break;
                default: assert_true(json_is_null(x)); break;
                }
            }
        }
    } else {
        assert_null(vals);
    }
    if (is_partial) {
        assert_true(json_is_true(json_object_get(j, "partial")));
        n_keys++;
    }
    assert_int_equal(json_object_size(j), n_keys);
}

static json_t *parse(const char *text, size_t len)
{
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &e);
    if (!j) fail_msg("output is not JSON (%s at %d:%d): %.*s", e.text, e.line, e.column, (int)(len > 2000 ? 2000 : len), text);
    return j;
}

static void test_json_random_roundtrip(void **state)
{
    (void)state;
    uint64_t seed = DEFAULT_SEED + 1;
    const char *env = getenv("MK_TEST_SEED");
    if (env) seed = strtoull(env, NULL, 0) + 1;
    printf("test_json_random_roundtrip seed %" PRIu64 "\n", seed);
    mk_rng g = {seed};
    for (int iter = 0; iter < 300; iter++) {
        mk_qresult *r = rand_result(&g);
        const char *epoch = iter % 2 ? "ms" : NULL;
        char *compact = write_out(r, MK_QFMT_JSON, epoch, 0, 0);
        char *pretty = write_out(r, MK_QFMT_JSON, epoch, 1, 0);
        size_t n = strlen(compact);
        assert_true(n > 0 && compact[n - 1] == '\n');
        assert_null(memchr(compact, '\n', n - 1)); /* one line */
        json_t *jc = parse(compact, n), *jp = parse(pretty, strlen(pretty));
        assert_true(json_equal(jc, jp));
        uint32_t n_stmts = mk_qresult_n_stmts(r);
        const json_t *results = json_object_get(jc, "results");
        assert_int_equal(json_object_size(jc), n_stmts ? 1 : 0);
        assert_int_equal(json_array_size(results), n_stmts);
        for (uint32_t i = 0; i < n_stmts; i++) {
            const mk_qstmt *st = mk_qresult_stmt(r, i);
            const json_t *js = json_array_get(results, i);
            assert_true(json_real_value(json_object_get(js, "statement_id")) == st->statement_id);
            const json_t *series = json_object_get(js, "series");
            if (st->error) {
                expect_json_str(json_object_get(js, "error"), st->error);
                assert_null(series);
                assert_int_equal(json_object_size(js), 2);
                continue;
            }
            assert_int_equal(json_object_size(js), st->n_series ? 2 : 1);
            assert_int_equal(json_array_size(series), st->n_series);
            for (uint32_t si = 0; si < st->n_series; si++)
                check_series_json(json_array_get(series, si), &st->series[si], 0, st->series[si].n_rows, 0, epoch);
        }
        json_decref(jc);
        json_decref(jp);
        free(pretty);
        /* chunked: one document per line; pieces of exactly chunk_size
         * rows but the last of each series; flags as query.Emitter sets them */
        uint64_t chunk = 1 + mk_rng_below(&g, 5);
        char *chunked = write_out(r, MK_QFMT_JSON, epoch, 0, chunk);
        char *line = chunked;
        for (uint32_t i = 0; i < n_stmts; i++) {
            const mk_qstmt *st = mk_qresult_stmt(r, i);
            uint32_t n_docs_series = st->error || st->n_series == 0 ? 0 : st->n_series;
            for (uint32_t si = 0; si == 0 || si < n_docs_series; si++) {
                const mk_qseries *s = n_docs_series ? &st->series[si] : NULL;
                uint64_t r0 = 0;
                do {
                    char *nl = strchr(line, '\n');
                    assert_non_null(nl);
                    json_t *d = parse(line, (size_t)(nl - line));
                    line = nl + 1;
                    const json_t *res1 = json_object_get(d, "results");
                    assert_int_equal(json_array_size(res1), 1);
                    const json_t *js = json_array_get(res1, 0);
                    assert_true(json_real_value(json_object_get(js, "statement_id")) == st->statement_id);
                    if (!s) {
                        if (st->error) expect_json_str(json_object_get(js, "error"), st->error);
                        assert_int_equal(json_object_size(js), st->error ? 2 : 1);
                        json_decref(d);
                        break;
                    }
                    uint64_t r1 = s->n_rows - r0 > chunk ? r0 + chunk : s->n_rows;
                    int is_sp = r1 < s->n_rows, is_rp = is_sp || si + 1 < st->n_series;
                    const json_t *ser = json_object_get(js, "series");
                    assert_int_equal(json_array_size(ser), 1);
                    check_series_json(json_array_get(ser, 0), s, r0, r1, is_sp, epoch);
                    assert_int_equal(json_is_true(json_object_get(js, "partial")), is_rp);
                    assert_int_equal(json_object_size(js), 2 + is_rp);
                    json_decref(d);
                    r0 = r1;
                } while (r0 < s->n_rows);
            }
        }
        assert_string_equal(line, ""); /* nothing more */
        free(chunked);
        free(compact);
        mk_qresult_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_docs_examples),
        cmocka_unit_test(test_json_shapes),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_float_forms),
        cmocka_unit_test(test_float_property),
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_json_chunked),
        cmocka_unit_test(test_json_pretty),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_json_random_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

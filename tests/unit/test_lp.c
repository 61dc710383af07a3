/*
 * tests/unit/test_lp.c — the line-protocol parser (engine/lp.c).
 *
 * Known answers come from InfluxDB 1.x's documented examples and its own
 * parser tests (models/points_test.go); every error kind is checked with
 * its exact line and column. Two randomized checks use fixed, printed
 * seeds: floats against strtod bit for bit, and a round trip through an
 * independent writer in this file.
 *
 * Each parse is rendered as text, one item per line:
 *   L<line> M[measurement] T[key][value]... F[key]=<type>:<value>... TS=<ms>
 *   E<line>:<column> <reason>
 * with bytes below 0x20 shown as <xx>.
 */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp.h"
#include "util.h"

/* ---- rendering --------------------------------------------------------- */

typedef struct sb {
    char *p;
    size_t len, cap;
} sb;

static void sb_put(sb *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof tmp);
    sb_put(b, tmp, (size_t)n);
}

static void sb_str(sb *b, mk_lp_str s)
{
    for (uint32_t i = 0; i < s.len; i++) {
        uint8_t c = (uint8_t)s.p[i];
        if (c < 0x20) sb_printf(b, "<%02x>", c);
        else sb_put(b, &c, 1);
    }
}

/* Shortest of %.15g/%.16g/%.17g that reads back as the same double. */
static void sb_double(sb *b, double v)
{
    char tmp[64];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v || prec == 17) break;
    }
    sb_put(b, tmp, strlen(tmp));
}

static int g_show_cols; /* render field columns as F[key@col] */

static void render_line(sb *b, const mk_lp_line *l)
{
    sb_printf(b, "L%" PRIu64 " M[", l->line_no);
    sb_str(b, l->measurement);
    sb_put(b, "]", 1);
    for (uint32_t i = 0; i < l->n_tags; i++) {
        sb_put(b, " T[", 3);
        sb_str(b, l->tags[i].key);
        sb_put(b, "][", 2);
        sb_str(b, l->tags[i].value);
        sb_put(b, "]", 1);
    }
    for (uint32_t i = 0; i < l->n_fields; i++) {
        const mk_lp_field *f = &l->fields[i];
        sb_put(b, " F[", 3);
        sb_str(b, f->key);
        if (g_show_cols) sb_printf(b, "@%u", f->column);
        sb_put(b, "]=", 2);
        switch (f->type) {
        case MK_LP_FLOAT: sb_put(b, "f:", 2); sb_double(b, f->value); break;
        case MK_LP_INT:
            sb_printf(b, "i:%" PRId64, f->i);
            assert_true(f->value == (double)f->i);
            break;
        case MK_LP_UINT:
            sb_printf(b, "u:%" PRIu64, f->u);
            assert_true(f->value == (double)f->u);
            break;
        case MK_LP_BOOL: sb_printf(b, "b:%d", (int)f->value); break;
        case MK_LP_STRING:
            sb_put(b, "s[", 2);
            sb_str(b, f->str);
            sb_put(b, "]", 1);
            break;
        default: fail_msg("bad type %d", (int)f->type);
        }
    }
    if (l->has_ts) sb_printf(b, " TS=%" PRId64, l->ts_ms);
    sb_put(b, "\n", 1);
}

/* Parses text[0..len) and renders everything the parser yields. */
static char *run_n(const char *text, size_t len, mk_precision prec)
{
    mk_lp_parser *p = NULL;
    assert_int_equal(mk_lp_parser_new(text, len, prec, 1, &p), MK_OK);
    sb b = {0};
    sb_put(&b, "", 0);
    mk_lp_line line;
    mk_lp_error err;
    int k;
    size_t last_off = 0;
    while ((k = mk_lp_next(p, &line, &err)) != MK_LP_END) {
        if (k == MK_LP_LINE) render_line(&b, &line);
        else sb_printf(&b, "E%" PRIu64 ":%u %s\n", err.line, err.column, err.reason);
        assert_true(mk_lp_offset(p) > last_off);
        last_off = mk_lp_offset(p);
    }
    assert_int_equal(mk_lp_offset(p), len);
    assert_int_equal(mk_lp_next(p, &line, &err), MK_LP_END); /* stays at the end */
    mk_lp_parser_free(p);
    return b.p;
}

static char *run(const char *text) { return run_n(text, strlen(text), MK_PRECISION_NS); }

/* One input, one expected rendering (the trailing "\n" is added). */
#define CHECK(text, want)                                                                   \
    do {                                                                                    \
        char *got_ = run(text);                                                             \
        char want_[1024];                                                                   \
        snprintf(want_, sizeof want_, "%s\n", (want));                                      \
        if (strcmp(got_, want_) != 0)                                                       \
            fail_msg("input: %s\n got: %s want: %s", (text), got_, want_);                  \
        free(got_);                                                                         \
    } while (0)

#define CHECK_RAW(text, want)                                                               \
    do {                                                                                    \
        char *got_ = run(text);                                                             \
        if (strcmp(got_, (want)) != 0) fail_msg("input: %s\n got: %s want: %s", (text), got_, (want)); \
        free(got_);                                                                         \
    } while (0)

#define CHECK_PREC(text, prec, want)                                                        \
    do {                                                                                    \
        char *got_ = run_n((text), strlen(text), (prec));                                   \
        char want_[1024];                                                                   \
        snprintf(want_, sizeof want_, "%s\n", (want));                                      \
        if (strcmp(got_, want_) != 0)                                                       \
            fail_msg("input: %s (precision %d)\n got: %s want: %s", (text), (int)(prec), got_, want_); \
        free(got_);                                                                         \
    } while (0)

/* ---- known answers: syntax --------------------------------------------- */

static void test_basic(void **state)
{
    (void)state;
    CHECK("cpu value=1", "L1 M[cpu] F[value]=f:1");
    CHECK("cpu,host=serverA,region=us-west value=1.0 1000000000",
          "L1 M[cpu] T[host][serverA] T[region][us-west] F[value]=f:1 TS=1000");
    CHECK_PREC("svc,instance=i-0,service=checkout qps=523,p95_ms=87.34,error_rate=0.0012,heartbeat=1 1763600400",
               MK_PRECISION_S,
               "L1 M[svc] T[instance][i-0] T[service][checkout] F[qps]=f:523 F[p95_ms]=f:87.34 "
               "F[error_rate]=f:0.0012 F[heartbeat]=f:1 TS=1763600400000");
    /* Documented examples (InfluxDB 1.x line protocol reference). */
    CHECK("weather,location=us-midwest temperature=82 1465839830100400200",
          "L1 M[weather] T[location][us-midwest] F[temperature]=f:82 TS=1465839830100");
    CHECK("weather,location=us-midwest temperature=82,bug_concentration=98 1465839830100400200",
          "L1 M[weather] T[location][us-midwest] F[temperature]=f:82 F[bug_concentration]=f:98 TS=1465839830100");
    CHECK("weather,location=us-midwest,season=summer temperature=82",
          "L1 M[weather] T[location][us-midwest] T[season][summer] F[temperature]=f:82");
    CHECK("weather temperature=82 1465839830100400200", "L1 M[weather] F[temperature]=f:82 TS=1465839830100");
    CHECK("weather,location=us-midwest temperature=\"too warm\" 1465839830100400200",
          "L1 M[weather] T[location][us-midwest] F[temperature]=s[too warm] TS=1465839830100");
    /* Measurement may contain '=' and quotes; tags may be quoted bytes. */
    CHECK("cpu=load,region=east value=1.0", "L1 M[cpu=load] T[region][east] F[value]=f:1");
    CHECK("\"cpu\",\"host\"=\"serverA\" value=1.0 1000000000",
          "L1 M[\"cpu\"] T[\"host\"][\"serverA\"] F[value]=f:1 TS=1000");
    CHECK("cpu,host=serverA,region=us-east value=\"wè\" 1000000000",
          "L1 M[cpu] T[host][serverA] T[region][us-east] F[value]=s[wè] TS=1000");
}

static void test_escapes(void **state)
{
    (void)state;
    /* Cases of InfluxDB's TestParsePointWithStringWithEquals & co. */
    CHECK("foo\\,bar value=1i", "L1 M[foo,bar] F[value]=i:1");
    CHECK("cpu\\,main,regions=east value=1.0", "L1 M[cpu,main] T[regions][east] F[value]=f:1");
    CHECK("cpu\\ load,region=east value=1.0", "L1 M[cpu load] T[region][east] F[value]=f:1");
    CHECK("cpu\\=load,region=east value=1.0", "L1 M[cpu\\=load] T[region][east] F[value]=f:1");
    CHECK("cpu,region\\,zone=east value=1.0", "L1 M[cpu] T[region,zone][east] F[value]=f:1");
    CHECK("cpu,region\\ zone=east value=1.0", "L1 M[cpu] T[region zone][east] F[value]=f:1");
    CHECK("cpu,reg\\\\=ion=east value=1.0", "L1 M[cpu] T[reg\\=ion][east] F[value]=f:1");
    CHECK("cpu,\\ =east value=1.0", "L1 M[cpu] T[ ][east] F[value]=f:1");
    CHECK("cpu,regions=east\\,west value=1.0", "L1 M[cpu] T[regions][east,west] F[value]=f:1");
    CHECK("cpu,regions=\\\\ east value=1.0", "L1 M[cpu] T[regions][\\ east] F[value]=f:1");
    CHECK("cpu,regions=eas\\\\ t value=1.0", "L1 M[cpu] T[regions][eas\\ t] F[value]=f:1");
    CHECK("cpu,regions=east\\\\  value=1.0", "L1 M[cpu] T[regions][east\\ ] F[value]=f:1");
    CHECK("cpu,regions=east\\ west value=1.0", "L1 M[cpu] T[regions][east west] F[value]=f:1");
    CHECK("cpu,regions=east value\\,ms=1.0", "L1 M[cpu] T[regions][east] F[value,ms]=f:1");
    CHECK("cpu,regions=east value\\ ms=1.0", "L1 M[cpu] T[regions][east] F[value ms]=f:1");
    CHECK("cpu,regions=eas\\t value=1.0", "L1 M[cpu] T[regions][eas\\t] F[value]=f:1");
    CHECK("cpu,regions=\\\\,\\,\\=east value=1.0", "L1 M[cpu] T[regions][\\,,=east] F[value]=f:1");
    CHECK("cpu \\a=1i", "L1 M[cpu] F[\\a]=i:1");
    CHECK("cpu=load,equals\\=foo=tag\\=value value=1i", "L1 M[cpu=load] T[equals=foo][tag=value] F[value]=i:1");
    CHECK("cpu va\\=lue=1", "L1 M[cpu] F[va=lue]=f:1");
    /* Measurement: only ',' and ' ' are escapes; a backslash before a
     * backslash is literal, and the second one still escapes what follows
     * (the "previous byte" rule). */
    CHECK("a\\\\,b=c f=1", "L1 M[a\\,b=c] F[f]=f:1");
    CHECK("a\\\\\\ b f=1", "L1 M[a\\\\ b] F[f]=f:1");
    CHECK("\\ m f=1", "L1 M[ m] F[f]=f:1");
    CHECK("m\\ f=1", "E1:7 missing field set");
    /* An escaped space does not end a tag value: here the value runs on
     * into "v f" and then meets an unescaped '='. */
    CHECK("m,t=v\\ f=1", "E1:9 unescaped '=' in the value of tag 't'");
    /* A backslash at the end of a line is literal. */
    CHECK("m,t=v\\", "E1:7 missing field set");
    /* Quotes in keys are ordinary bytes. */
    CHECK("m \"k\"=1", "L1 M[m] F[\"k\"]=f:1");
    CHECK("m k\\\"=1", "L1 M[m] F[k\\\"]=f:1");
}

static void test_strings(void **state)
{
    (void)state;
    CHECK("m s=\"\"", "L1 M[m] F[s]=s[]");
    CHECK("m s=\"a b,c=d\"", "L1 M[m] F[s]=s[a b,c=d]");
    CHECK("cpu,host=serverA,region=us-east str=\"foo \\\" bar\" 1000000000",
          "L1 M[cpu] T[host][serverA] T[region][us-east] F[str]=s[foo \" bar] TS=1000");
    CHECK("cpu value=\"test\\\\\\\"\" 1000000000", "L1 M[cpu] F[value]=s[test\\\"] TS=1000");
    CHECK("cpu value=\"test\\\\\" 1000000000", "L1 M[cpu] F[value]=s[test\\] TS=1000");
    CHECK("cpu value=\"test\\\"\" 1000000000", "L1 M[cpu] F[value]=s[test\"] TS=1000");
    CHECK("cpu str=\"foo\\,bar\" 1000000000", "L1 M[cpu] F[str]=s[foo\\,bar] TS=1000");
    CHECK("cpu str=\"foo\\\\\",str2=\"bar\" 1000000000", "L1 M[cpu] F[str]=s[foo\\] F[str2]=s[bar] TS=1000");
    CHECK("cpu value=\"{Hello\\\"{,}\\\" World}\" 1000000000", "L1 M[cpu] F[value]=s[{Hello\"{,}\" World}] TS=1000");
    CHECK("cpu value=\"{Hello\\\"{\\,}\\\" World}\" 1000000000", "L1 M[cpu] F[value]=s[{Hello\"{\\,}\" World}] TS=1000");
    CHECK("cpu str=\"foo=bar\",value=1.0 1000000000", "L1 M[cpu] F[str]=s[foo=bar] F[value]=f:1 TS=1000");
    CHECK("m s=\"a\\tb\\nc\"", "L1 M[m] F[s]=s[a\\tb\\nc]");
    /* Escaped newline: the backslash goes, the line break stays; line and
     * column numbers are physical. */
    CHECK_RAW("m s=\"a\\\nb\",g=1i 5\nn f=2\n",
              "L1 M[m] F[s]=s[a<0a>b] F[g]=i:1 TS=0\nL3 M[n] F[f]=f:2\n");
    CHECK_RAW("m s=\"a\\\r\nb\" 5\r\nn f=2\r\n", "L1 M[m] F[s]=s[a<0d><0a>b] TS=0\nL3 M[n] F[f]=f:2\n");
    CHECK_RAW("m s=\"a\\\n\\\nb\"\nn f=2", "L1 M[m] F[s]=s[a<0a><0a>b]\nL4 M[n] F[f]=f:2\n");
    CHECK_RAW("m s=\"a\\\nbc\",g=zz\nn f=1\n",
              "E2:7 invalid field value 'zz' for field 'g': expected a number, boolean or quoted string\n"
              "L3 M[n] F[f]=f:1\n");
    /* A raw newline ends the line: unterminated string, reported where the
     * quote opened; the next line is parsed normally. */
    CHECK_RAW("m s=\"a\nb\" f=1\nn f=2\n",
              "E1:5 unterminated string for field 's'\nL2 M[b\"] F[f]=f:1\n"
              "L3 M[n] F[f]=f:2\n");
    CHECK("m s=\"abc", "E1:5 unterminated string for field 's'");
    CHECK("m s=\"abc\\\"", "E1:5 unterminated string for field 's'");
    CHECK("m s=\"abc\\", "E1:5 unterminated string for field 's'");
    CHECK_RAW("m s=\"abc\\\n", "E1:5 unterminated string for field 's'\n");
    CHECK("m s=\"abc\"x", "E1:10 unexpected 'x' after the string value of field 's'");
    CHECK("m s=\"abc\"\"", "E1:10 unexpected '\"' after the string value of field 's'");
    /* A quote inside a non-string value is just a bad value. */
    CHECK("m f=1\"", "E1:5 invalid number '1\"' for field 'f'");
}

static void test_integers(void **state)
{
    (void)state;
    CHECK("m v=0i,w=-0i,x=1i,y=-1i", "L1 M[m] F[v]=i:0 F[w]=i:0 F[x]=i:1 F[y]=i:-1");
    CHECK("m v=9223372036854775807i", "L1 M[m] F[v]=i:9223372036854775807");
    CHECK("m v=-9223372036854775808i", "L1 M[m] F[v]=i:-9223372036854775808");
    CHECK("m v=0009223372036854775807i", "L1 M[m] F[v]=i:9223372036854775807");
    CHECK("m v=-0009223372036854775808i", "L1 M[m] F[v]=i:-9223372036854775808");
    CHECK("m v=6632243i 1000000000", "L1 M[m] F[v]=i:6632243 TS=1000");
    CHECK("m v=9223372036854775808i",
          "E1:5 integer 9223372036854775808i for field 'v' is out of the int64 range");
    CHECK("m v=-9223372036854775809i",
          "E1:5 integer -9223372036854775809i for field 'v' is out of the int64 range");
    CHECK("m v=99999999999999999999999i",
          "E1:5 integer 99999999999999999999999i for field 'v' is out of the int64 range");
    CHECK("m v=0u,w=18446744073709551615u,x=00018446744073709551615u",
          "L1 M[m] F[v]=u:0 F[w]=u:18446744073709551615 F[x]=u:18446744073709551615");
    CHECK("m v=18446744073709551616u",
          "E1:5 unsigned 18446744073709551616u for field 'v' is out of the uint64 range");
    CHECK("m v=-1u", "E1:5 unsigned -1u for field 'v' is negative");
    CHECK("m v=-0u", "E1:5 unsigned -0u for field 'v' is negative");
    CHECK("m v=--1u", "E1:5 invalid number '--1u' for field 'v'");
    CHECK("m v=1.0i", "E1:5 invalid number '1.0i' for field 'v'");
    CHECK("m v=1e3i", "E1:5 invalid number '1e3i' for field 'v'");
    CHECK("m v=9ie10", "E1:5 invalid number '9ie10' for field 'v'");
    CHECK("m v=9e10i", "E1:5 invalid number '9e10i' for field 'v'");
    CHECK("m v=1ii", "E1:5 invalid number '1ii' for field 'v'");
    CHECK("m v=1iu", "E1:5 invalid number '1iu' for field 'v'");
    CHECK("m v=i", "E1:5 invalid field value 'i' for field 'v': expected a number, boolean or quoted string");
    CHECK("m v=-i", "E1:5 invalid number '-i' for field 'v'");
}

static void test_floats(void **state)
{
    (void)state;
    CHECK("m v=1,w=-1.0,x=.1,y=1.,z=-.5", "L1 M[m] F[v]=f:1 F[w]=f:-1 F[x]=f:0.1 F[y]=f:1 F[z]=f:-0.5");
    CHECK("m a=1.0e4,b=1e4,c=1.0E4,d=1E4,e=1.0e-4,f=-1.0e-4,g=6.632243e+06,h=1.e5",
          "L1 M[m] F[a]=f:10000 F[b]=f:10000 F[c]=f:10000 F[d]=f:10000 F[e]=f:0.0001 "
          "F[f]=f:-0.0001 F[g]=f:6632243 F[h]=f:100000");
    CHECK("m v=-0.64 1000000000", "L1 M[m] F[v]=f:-0.64 TS=1000");
    CHECK("m v=-0", "L1 M[m] F[v]=f:-0");
    CHECK("m v=007.50", "L1 M[m] F[v]=f:7.5");
    CHECK("m v=1.7976931348623157e308", "L1 M[m] F[v]=f:1.7976931348623157e+308");
    CHECK("m v=4.9406564584124654e-324", "L1 M[m] F[v]=f:4.94065645841247e-324");
    CHECK("m v=1e-400", "L1 M[m] F[v]=f:0");
    CHECK("m v=123456789012345678901234567890", "L1 M[m] F[v]=f:1.2345678901234568e+29");
    CHECK("m v=0.1000000000000000055511151231257827021181583404541015625", "L1 M[m] F[v]=f:0.1");
    CHECK("m v=1e400", "E1:5 float 1e400 for field 'v' is out of range");
    CHECK("m v=-1e400", "E1:5 float -1e400 for field 'v' is out of range");
    CHECK("m v=.1a", "E1:5 invalid number '.1a' for field 'v'");
    CHECK("m v=0.-1", "E1:5 invalid number '0.-1' for field 'v'");
    CHECK("m v=-", "E1:5 invalid number '-' for field 'v'");
    CHECK("m v=.", "E1:5 invalid number '.' for field 'v'");
    CHECK("m v=-.", "E1:5 invalid number '-.' for field 'v'");
    CHECK("m v=1.1.1", "E1:5 invalid number '1.1.1' for field 'v'");
    CHECK("m v=1e", "E1:5 invalid number '1e' for field 'v'");
    CHECK("m v=1e+", "E1:5 invalid number '1e+' for field 'v'");
    CHECK("m v=1e5.5", "E1:5 invalid number '1e5.5' for field 'v'");
    CHECK("m v=0x10", "E1:5 invalid number '0x10' for field 'v'");
    CHECK("m v=1_000", "E1:5 invalid number '1_000' for field 'v'");
    CHECK("m v=-inf", "E1:5 invalid number '-inf' for field 'v'");
    CHECK("m v=+1", "E1:5 invalid field value '+1' for field 'v': expected a number, boolean or quoted string");
    CHECK("m v=NaN", "E1:5 invalid field value 'NaN' for field 'v': expected a number, boolean or quoted string");
    CHECK("m v=nan", "E1:5 invalid field value 'nan' for field 'v': expected a number, boolean or quoted string");
    CHECK("m v=inf", "E1:5 invalid field value 'inf' for field 'v': expected a number, boolean or quoted string");
    CHECK("m v=Infinity", "E1:5 invalid field value 'Infinity' for field 'v': expected a number, boolean or quoted string");
}

static void test_booleans(void **state)
{
    (void)state;
    CHECK("cpu,host=serverA,region=us-east true=true,t=t,T=T,TRUE=TRUE,True=True,false=false,f=f,F=F,FALSE=FALSE,False=False 1000000000",
          "L1 M[cpu] T[host][serverA] T[region][us-east] F[true]=b:1 F[t]=b:1 F[T]=b:1 F[TRUE]=b:1 "
          "F[True]=b:1 F[false]=b:0 F[f]=b:0 F[F]=b:0 F[FALSE]=b:0 F[False]=b:0 TS=1000");
    CHECK("m b=tru", "E1:5 invalid field value 'tru' for field 'b': expected a number, boolean or quoted string");
    CHECK("m b=TRue", "E1:5 invalid field value 'TRue' for field 'b': expected a number, boolean or quoted string");
    CHECK("m b=falsey", "E1:5 invalid field value 'falsey' for field 'b': expected a number, boolean or quoted string");
    CHECK("m b=yes", "E1:5 invalid field value 'yes' for field 'b': expected a number, boolean or quoted string");
    CHECK("m b=t\"", "E1:5 invalid field value 't\"' for field 'b': expected a number, boolean or quoted string");
}

static void test_timestamps(void **state)
{
    (void)state;
    /* ns/us round down towards minus infinity. */
    CHECK_PREC("m f=1 0", MK_PRECISION_NS, "L1 M[m] F[f]=f:1 TS=0");
    CHECK_PREC("m f=1 999999", MK_PRECISION_NS, "L1 M[m] F[f]=f:1 TS=0");
    CHECK_PREC("m f=1 1000000", MK_PRECISION_NS, "L1 M[m] F[f]=f:1 TS=1");
    CHECK_PREC("m f=1 -1", MK_PRECISION_NS, "L1 M[m] F[f]=f:1 TS=-1");
    CHECK_PREC("m f=1 -1000000", MK_PRECISION_NS, "L1 M[m] F[f]=f:1 TS=-1");
    CHECK_PREC("m f=1 -1000001", MK_PRECISION_NS, "L1 M[m] F[f]=f:1 TS=-2");
    CHECK_PREC("m f=1 9223372036854775807", MK_PRECISION_NS, "L1 M[m] F[f]=f:1 TS=9223372036854");
    CHECK_PREC("m f=1 -9223372036854775808", MK_PRECISION_NS, "L1 M[m] F[f]=f:1 TS=-9223372036855");
    CHECK_PREC("m f=1 -9223372036854775806", MK_PRECISION_NS, "L1 M[m] F[f]=f:1 TS=-9223372036855");
    CHECK_PREC("m f=1 1999", MK_PRECISION_US, "L1 M[m] F[f]=f:1 TS=1");
    CHECK_PREC("m f=1 -1", MK_PRECISION_US, "L1 M[m] F[f]=f:1 TS=-1");
    CHECK_PREC("m f=1 -1000", MK_PRECISION_US, "L1 M[m] F[f]=f:1 TS=-1");
    CHECK_PREC("m f=1 -1001", MK_PRECISION_US, "L1 M[m] F[f]=f:1 TS=-2");
    CHECK_PREC("m f=1 -1001", MK_PRECISION_MS, "L1 M[m] F[f]=f:1 TS=-1001");
    CHECK_PREC("m f=1 9223372036854775807", MK_PRECISION_MS, "L1 M[m] F[f]=f:1 TS=9223372036854775807");
    CHECK_PREC("m f=1 -9223372036854775808", MK_PRECISION_MS, "L1 M[m] F[f]=f:1 TS=-9223372036854775808");
    CHECK_PREC("m f=1 -3", MK_PRECISION_S, "L1 M[m] F[f]=f:1 TS=-3000");
    CHECK_PREC("m f=1 9223372036854775", MK_PRECISION_S, "L1 M[m] F[f]=f:1 TS=9223372036854775000");
    CHECK_PREC("m f=1 -9223372036854775", MK_PRECISION_S, "L1 M[m] F[f]=f:1 TS=-9223372036854775000");
    CHECK_PREC("m f=1 9223372036854776", MK_PRECISION_S,
               "E1:7 timestamp 9223372036854776 s is out of range in milliseconds");
    CHECK_PREC("m f=1 -9223372036854776", MK_PRECISION_S,
               "E1:7 timestamp -9223372036854776 s is out of range in milliseconds");
    CHECK("m f=1 9223372036854775808", "E1:7 timestamp 9223372036854775808 is out of the int64 range");
    CHECK("m f=1 -9223372036854775809", "E1:7 timestamp -9223372036854775809 is out of the int64 range");
    CHECK("m f=1 123456789012345678901234567890", "E1:7 timestamp 123456789012345678901234567890 is out of the int64 range");
    CHECK("m f=1 0001000000", "L1 M[m] F[f]=f:1 TS=1");
    CHECK("m f=1 -0", "L1 M[m] F[f]=f:1 TS=0");
    CHECK("m f=1 abc", "E1:7 invalid timestamp 'abc': expected an integer");
    CHECK("m f=1 12a", "E1:7 invalid timestamp '12a': expected an integer");
    CHECK("m f=1 1.5", "E1:7 invalid timestamp '1.5': expected an integer");
    CHECK("m f=1 1e9", "E1:7 invalid timestamp '1e9': expected an integer");
    CHECK("m f=1 +5", "E1:7 invalid timestamp '+5': expected an integer");
    CHECK("m f=1 -", "E1:7 invalid timestamp '-': expected an integer");
    CHECK("m f=1 0\\", "E1:7 invalid timestamp '0\\': expected an integer"); /* InfluxDB's TrailingSlash */
    CHECK("m f=1 1 2", "E1:9 unexpected '2' after the timestamp");
    CHECK("m f=1 1 junk here", "E1:9 unexpected 'junk here' after the timestamp");
    /* Whitespace: several spaces/tabs before the timestamp and after it. */
    CHECK("m f=1  \t 5 \t ", "L1 M[m] F[f]=f:1 TS=0");
    CHECK_PREC("m f=1  \t 5 \t ", MK_PRECISION_MS, "L1 M[m] F[f]=f:1 TS=5");
}

/* Random timestamps of 1..26 digits (the 8-digit and 18/19-digit edges of
 * the parser's fast paths), signed or not, with leading zeros, sometimes a
 * stray byte inside: each line against a reference that decides the int64
 * range by comparing digit strings and reads the value with strtoull. */
static void test_timestamps_random(void **state)
{
    (void)state;
    const uint64_t seed = 0x7157a3f5ull;
    const int n = 200000;
    printf("test_timestamps_random: seed %#llx, %d lines\n", (unsigned long long)seed, n);
    mk_rng r = {seed};
    sb in = {0};
    char (*txt)[40] = malloc((size_t)n * sizeof *txt);
    assert_non_null(txt);
    for (int i = 0; i < n; i++) {
        size_t k = 0;
        if (mk_rng_below(&r, 3) == 0) txt[i][k++] = '-';
        int nz = mk_rng_below(&r, 5) == 0 ? (int)mk_rng_below(&r, 12) : 0;
        int nd = 1 + (int)mk_rng_below(&r, mk_rng_below(&r, 2) ? 20 : 26);
        for (int j = 0; j < nz && k < 38; j++) txt[i][k++] = '0';
        for (int j = 0; j < nd && k < 38; j++) txt[i][k++] = (char)('0' + mk_rng_below(&r, 10));
        if (mk_rng_below(&r, 10) == 0 && k > 1) { /* a non-digit somewhere after the sign */
            static const char bad[] = "a/:.e+-\\x";
            txt[i][1 + mk_rng_below(&r, k - 1)] = bad[mk_rng_below(&r, sizeof bad - 1)];
        }
        if (mk_rng_below(&r, 50) == 0) { /* exactly the int64 edges */
            const char *edge = mk_rng_below(&r, 2) ? "9223372036854775807" : "9223372036854775808";
            k = 0;
            if (mk_rng_below(&r, 2)) txt[i][k++] = '-';
            memcpy(txt[i] + k, edge, 19);
            k += 19;
        }
        txt[i][k] = '\0';
        sb_put(&in, "m f=1 ", 6);
        sb_put(&in, txt[i], k);
        sb_put(&in, "\n", 1);
    }
    mk_lp_parser *p = NULL;
    assert_int_equal(mk_lp_parser_new(in.p, in.len, MK_PRECISION_MS, 1, &p), MK_OK);
    int n_ok = 0, n_range = 0, n_invalid = 0;
    for (int i = 0; i < n; i++) {
        mk_lp_line l;
        mk_lp_error e;
        int got = mk_lp_next(p, &l, &e);
        const char *t = txt[i];
        int neg = t[0] == '-';
        const char *d = t + neg;
        int is_digits = *d != '\0';
        for (const char *c = d; *c; c++) is_digits &= *c >= '0' && *c <= '9';
        if (!is_digits) {
            if (got != MK_LP_ERROR || !strstr(e.reason, "invalid timestamp"))
                fail_msg("'%s': expected an invalid timestamp, got %d", t, got);
            n_invalid++;
            continue;
        }
        while (d[0] == '0' && d[1]) d++; /* leading zeros */
        size_t nd = strlen(d);
        const char *lim = neg ? "9223372036854775808" : "9223372036854775807";
        int is_over = nd > 19 || (nd == 19 && strcmp(d, lim) > 0);
        if (is_over) {
            if (got != MK_LP_ERROR || !strstr(e.reason, "out of the int64 range"))
                fail_msg("'%s': expected an out-of-range error, got %d", t, got);
            n_range++;
            continue;
        }
        if (got != MK_LP_LINE) fail_msg("'%s': %s", t, e.reason);
        unsigned long long u = strtoull(d, NULL, 10);
        int64_t want = !neg ? (int64_t)u : u == (1ull << 63) ? INT64_MIN : -(int64_t)u;
        assert_true(l.has_ts);
        if (l.ts_ms != want) fail_msg("'%s': got %lld want %lld", t, (long long)l.ts_ms, (long long)want);
        n_ok++;
    }
    printf("test_timestamps_random: %d parsed, %d out of range, %d invalid\n", n_ok, n_range, n_invalid);
    assert_true(n_ok > n / 2 && n_range > 1000 && n_invalid > 1000);
    mk_lp_parser_free(p);
    free(txt);
    free(in.p);
}

static void test_lines_and_whitespace(void **state)
{
    (void)state;
    CHECK_RAW("", "");
    CHECK_RAW("\n\n\r\n  \t \n", "");
    CHECK_RAW("# comment\n   # indented comment, f=1\n\t#x\n", "");
    CHECK_RAW("#\nm f=1\n", "L2 M[m] F[f]=f:1\n");
    CHECK_RAW("m f=1", "L1 M[m] F[f]=f:1\n");                 /* no trailing newline */
    CHECK_RAW("m f=1\r\nn f=2\r\n", "L1 M[m] F[f]=f:1\nL2 M[n] F[f]=f:2\n");
    CHECK_RAW("m f=1\r", "L1 M[m] F[f]=f:1\n");               /* CR at the very end */
    CHECK_RAW("m f=1 5\r\n", "L1 M[m] F[f]=f:1 TS=0\n");
    CHECK_RAW("m,t=v f=\"x\"\r\n", "L1 M[m] T[t][v] F[f]=s[x]\n");
    CHECK_RAW("   m f=1   \n\t\tn f=2\t\n", "L1 M[m] F[f]=f:1\nL2 M[n] F[f]=f:2\n");
    CHECK_RAW("m   \t f=1\n", "L1 M[m] F[f]=f:1\n");           /* extra whitespace before fields */
    CHECK_RAW("m f=1\tg=2\n", "E1:7 invalid timestamp 'g=2': expected an integer\n");
    /* A tab right after the measurement is part of its name (InfluxDB). */
    CHECK_RAW("m\tf=1\n", "E1:6 missing field set\n");
    /* A CR inside a line is an ordinary byte. */
    CHECK_RAW("m\r f=1\n", "L1 M[m<0d>] F[f]=f:1\n");
    /* Line numbers count every physical line. */
    CHECK_RAW("\n# c\n\nm f=1\n\n", "L4 M[m] F[f]=f:1\n");
}

static void test_duplicates(void **state)
{
    (void)state;
    /* Tags come out sorted; a repeated tag key is an error at its second
     * occurrence; a repeated field key: the last one wins. */
    CHECK("m,z=1,a=2,m=3 f=1", "L1 M[m] T[a][2] T[m][3] T[z][1] F[f]=f:1");
    CHECK("m,b=1,ab=2,a=3,B=4 f=1", "L1 M[m] T[B][4] T[a][3] T[ab][2] T[b][1] F[f]=f:1");
    CHECK("m,b=1,a=2,b=3 f=1", "E1:11 duplicate tag key 'b'");
    CHECK("m,a=1,a=1 f=1", "E1:7 duplicate tag key 'a'");
    CHECK("m,a\\ =1,a\\ =2 f=1", "E1:9 duplicate tag key 'a '");
    CHECK("m f=1,g=2,f=3", "L1 M[m] F[g]=f:2 F[f]=f:3");
    CHECK("m f=1,f=\"s\",f=2i,g=t,f=4u", "L1 M[m] F[g]=b:1 F[f]=u:4");
    g_show_cols = 1;
    CHECK("m f=1,g=2,f=3", "L1 M[m] F[g@7]=f:2 F[f@11]=f:3");
    g_show_cols = 0;

    /* Many tags and fields (the merge-sort paths). */
    sb in = {0}, want = {0};
    sb_put(&in, "m", 1);
    sb_put(&want, "L1 M[m]", 7);
    for (int i = 39; i >= 0; i--) sb_printf(&in, ",k%02d=v%d", i, i);
    for (int i = 0; i < 40; i++) sb_printf(&want, " T[k%02d][v%d]", i, i);
    sb_put(&in, " ", 1);
    for (int i = 0; i < 60; i++) sb_printf(&in, "%sf%d=%d", i ? "," : "", i % 25, i);
    for (int i = 60 - 25; i < 60; i++) sb_printf(&want, " F[f%d]=f:%d", i % 25, i);
    char *got = run(in.p);
    sb_put(&want, "\n", 1);
    assert_string_equal(got, want.p);
    free(got);

    /* A duplicate among many tags. */
    in.len = 0;
    sb_put(&in, "m", 1);
    for (int i = 0; i < 40; i++) sb_printf(&in, ",k%02d=v", 39 - i);
    size_t col = in.len + 2;
    sb_printf(&in, ",k17=x f=1");
    got = run(in.p);
    char exp[128];
    snprintf(exp, sizeof exp, "E1:%zu duplicate tag key 'k17'\n", col);
    assert_string_equal(got, exp);
    free(got);
    free(in.p);
    free(want.p);
}

/* Every error kind, with its exact line and column. */
static void test_errors(void **state)
{
    (void)state;
    CHECK("cpu", "E1:4 missing field set");
    CHECK("cpu ", "E1:5 missing field set");
    CHECK("cpu,host=a", "E1:11 missing field set");
    CHECK("cpu,host=a   ", "E1:14 missing field set");
    CHECK(",host=a f=1", "E1:1 missing measurement name before ','");
    CHECK("  ,host=a f=1", "E1:3 missing measurement name before ','");
    CHECK("cpu,=a f=1", "E1:5 empty tag key");
    CHECK("cpu, f=1", "E1:5 missing tag key after ','");
    CHECK("cpu,,a=b f=1", "E1:5 missing tag key after ','");
    CHECK("cpu,host=a, f=1", "E1:12 missing tag key after ','");
    CHECK("cpu,host f=1", "E1:9 missing '=' after tag key 'host'");
    CHECK("cpu,host,a=b f=1", "E1:9 missing '=' after tag key 'host'");
    CHECK("cpu,host", "E1:9 missing '=' after tag key 'host'");
    CHECK("cpu,host= f=1", "E1:10 missing value for tag 'host'");
    CHECK("cpu,host=,a=b f=1", "E1:10 missing value for tag 'host'");
    CHECK("cpu,host=", "E1:10 missing value for tag 'host'");
    CHECK("cpu,host=a=b f=1", "E1:11 unescaped '=' in the value of tag 'host'");
    CHECK("cpu =1", "E1:5 empty field key");
    CHECK("cpu f=1,=2", "E1:9 empty field key");
    CHECK("cpu f=1,", "E1:9 missing field key after ','");
    CHECK("cpu f=1, g=2", "E1:9 missing field key after ','");
    CHECK("cpu f", "E1:6 missing '=' after field key 'f'");
    CHECK("cpu f 1", "E1:6 missing '=' after field key 'f'");
    CHECK("cpu f=1,g", "E1:10 missing '=' after field key 'g'");
    CHECK("cpu f=1,g,h=2", "E1:10 missing '=' after field key 'g'");
    CHECK("cpu f=", "E1:7 missing value for field 'f'");
    CHECK("cpu f= 1", "E1:7 missing value for field 'f'");
    CHECK("cpu f=,g=1", "E1:7 missing value for field 'f'");
    CHECK("cpu,host=server01,region=us-west 1434055562000000000i", "E1:54 missing '=' after field key '1434055562000000000i'");
    CHECK("m f=\"blah\"=123,r 1531703600000000000", "E1:11 unexpected '=' after the string value of field 'f'");
    CHECK("svc,service=checkout qps=abc", "E1:26 invalid field value 'abc' for field 'qps': expected a number, boolean or quoted string");
    /* Long tokens are cut in the reason, which always fits. */
    CHECK("m f=tttttttttttttttttttttttttttttttttttttttttttttttttttt",
          "E1:5 invalid field value 'tttttttttttttttttttttttttttttt...' for field 'f': expected a number, boolean or quoted string");
    /* Control bytes are shown as '?'. */
    CHECK("m f=a\001b", "E1:5 invalid field value 'a?b' for field 'f': expected a number, boolean or quoted string");
}

/* The brief's example: several bad lines in a batch; every good line still
 * comes out, each error names its line and column. */
static void test_mixed_batch(void **state)
{
    (void)state;
    const char *in =
        "svc,service=api qps=1,p95_ms=2 1763600400\n"      /* 1 good */
        "bad\n"                                             /* 2 */
        "\n"                                                /* 3 blank */
        "svc,service=db qps=abc 1763600400\n"               /* 4 */
        "# comment\n"                                       /* 5 */
        "svc,service=db qps=3 1763600410\r\n"               /* 6 good, CRLF */
        "svc,service=db,service=x qps=3\n"                  /* 7 dup tag */
        "svc,service=db qps=\"open\n"                       /* 8 unterminated */
        "svc,service=db qps=4i 1763600420 junk\n"           /* 9 junk */
        "svc,service=db heartbeat=true 1763600430";         /* 10 good, no newline */
    char *got = run_n(in, strlen(in), MK_PRECISION_S);
    const char *want =
        "L1 M[svc] T[service][api] F[qps]=f:1 F[p95_ms]=f:2 TS=1763600400000\n"
        "E2:4 missing field set\n"
        "E4:20 invalid field value 'abc' for field 'qps': expected a number, boolean or quoted string\n"
        "L6 M[svc] T[service][db] F[qps]=f:3 TS=1763600410000\n"
        "E7:16 duplicate tag key 'service'\n"
        "E8:20 unterminated string for field 'qps'\n"
        "E9:34 unexpected 'junk' after the timestamp\n"
        "L10 M[svc] T[service][db] F[heartbeat]=b:1 TS=1763600430000\n";
    assert_string_equal(got, want);
    free(got);
}

/* Zero copy: names and strings without escapes point into the input;
 * series_raw is the raw key. */
static void test_zero_copy(void **state)
{
    (void)state;
    const char *in = "svc,service=a\\ b,instance=i-0 qps=1,s=\"x\",e\\,k=\"y\\\"z\" 5\n";
    mk_lp_parser *p = NULL;
    assert_int_equal(mk_lp_parser_new(in, strlen(in), MK_PRECISION_MS, 7, &p), MK_OK);
    mk_lp_line l;
    mk_lp_error err;
    assert_int_equal(mk_lp_next(p, &l, &err), MK_LP_LINE);
    assert_int_equal(l.line_no, 7);
    const char *end = in + strlen(in);
#define INSIDE(s) ((s).p >= in && (s).p + (s).len <= end)
    assert_true(INSIDE(l.measurement));
    assert_int_equal(l.series_raw.p - in, 0);
    assert_int_equal(l.series_raw.len, strlen("svc,service=a\\ b,instance=i-0"));
    assert_int_equal(l.n_tags, 2);
    assert_true(INSIDE(l.tags[0].key) && INSIDE(l.tags[0].value)); /* instance=i-0 */
    assert_true(INSIDE(l.tags[1].key) && !INSIDE(l.tags[1].value));
    assert_memory_equal(l.tags[1].value.p, "a b", 3);
    assert_int_equal(l.n_fields, 3);
    assert_true(INSIDE(l.fields[0].key));
    assert_true(INSIDE(l.fields[1].str));
    assert_true(!INSIDE(l.fields[2].key) && !INSIDE(l.fields[2].str));
    assert_memory_equal(l.fields[2].key.p, "e,k", 3);
    assert_memory_equal(l.fields[2].str.p, "y\"z", 3);
    assert_int_equal(l.fields[0].column, 31);
    assert_int_equal(mk_lp_offset(p), strlen(in));
    assert_int_equal(mk_lp_next(p, &l, &err), MK_LP_END);
#undef INSIDE
    mk_lp_parser_free(p);
}

static void test_api(void **state)
{
    (void)state;
    mk_lp_parser *p = (mk_lp_parser *)1;
    assert_int_equal(mk_lp_parser_new(NULL, 5, MK_PRECISION_NS, 1, &p), MK_EINVAL);
    assert_null(p);
    assert_int_equal(mk_lp_parser_new("x", 1, (mk_precision)9, 1, &p), MK_EINVAL);
    assert_int_equal(mk_lp_parser_new("x", 1, MK_PRECISION_NS, 1, NULL), MK_EINVAL);
    assert_int_equal(mk_lp_parser_new(NULL, 0, MK_PRECISION_NS, 1, &p), MK_OK);
    mk_lp_line l;
    mk_lp_error e;
    assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_END);
    mk_lp_parser_free(p);
    mk_lp_parser_free(NULL);

    /* first_line_no numbers the lines; the offset moves line by line. */
    const char *in = "a f=1\nb\nc f=2\n";
    assert_int_equal(mk_lp_parser_new(in, strlen(in), MK_PRECISION_NS, 100, &p), MK_OK);
    assert_int_equal(mk_lp_offset(p), 0);
    assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_LINE);
    assert_int_equal(l.line_no, 100);
    assert_int_equal(mk_lp_offset(p), 6);
    assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_ERROR);
    assert_int_equal(e.line, 101);
    assert_int_equal(e.column, 2);
    assert_int_equal(mk_lp_offset(p), 8);
    assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_LINE);
    assert_int_equal(l.line_no, 102);
    assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_END);
    mk_lp_parser_free(p);

    /* The parser never reads past len (the byte after is poison). */
    char buf[16];
    memcpy(buf, "m f=12", 6);
    buf[6] = '3';
    assert_int_equal(mk_lp_parser_new(buf, 6, MK_PRECISION_NS, 1, &p), MK_OK);
    assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_LINE);
    assert_true(l.fields[0].value == 12.0);
    mk_lp_parser_free(p);
}

/* ---- floats bit-exact against strtod ----------------------------------- */

static size_t gen_decimal(mk_rng *r, char *out)
{
    size_t n = 0;
    if (mk_rng_below(r, 2)) out[n++] = '-';
    int kind = (int)mk_rng_below(r, 10);
    int nd;
    if (kind < 6) nd = 1 + (int)mk_rng_below(r, 17);        /* fast-path sizes */
    else if (kind < 8) nd = 1 + (int)mk_rng_below(r, 20);   /* around the 2^53 / 19-digit edges */
    else nd = 1 + (int)mk_rng_below(r, 40);                 /* long mantissas */
    int lead0 = mk_rng_below(r, 8) == 0 ? (int)mk_rng_below(r, 4) : 0;
    for (int i = 0; i < lead0; i++) out[n++] = '0';
    int point = mk_rng_below(r, 3) ? (int)mk_rng_below(r, (uint64_t)nd + 1) : -1;
    for (int i = 0; i < nd; i++) {
        if (i == point) out[n++] = '.';
        int trailing0 = mk_rng_below(r, 6) == 0;
        out[n++] = (char)('0' + (trailing0 ? 0 : mk_rng_below(r, 10)));
    }
    if (point == nd) out[n++] = '.';
    if (mk_rng_below(r, 3) == 0) {
        out[n++] = mk_rng_below(r, 2) ? 'e' : 'E';
        int64_t ex;
        uint64_t k = mk_rng_below(r, 10);
        if (k < 6) ex = (int64_t)mk_rng_below(r, 61) - 30;
        else if (k < 9) ex = (int64_t)mk_rng_below(r, 701) - 350;
        else ex = (int64_t)mk_rng_below(r, 20001) - 10000;
        int sign = (int)mk_rng_below(r, 3);
        if (ex < 0) out[n++] = '-';
        else if (sign == 0) out[n++] = '+';
        n += (size_t)sprintf(out + n, "%lld", (long long)(ex < 0 ? -ex : ex));
    }
    out[n] = '\0';
    return n;
}

static void test_float_vs_strtod(void **state)
{
    (void)state;
    const uint64_t seed = 0x5eed1f10a7ull;
    const int n = 300000;
    printf("test_float_vs_strtod: seed %#llx, %d decimals\n", (unsigned long long)seed, n);
    mk_rng r = {seed};
    sb in = {0};
    char (*dec)[80] = malloc((size_t)n * sizeof *dec);
    assert_non_null(dec);
    for (int i = 0; i < n; i++) {
        size_t k = gen_decimal(&r, dec[i]);
        /* Every 7th as an exact double printed with %.17g: the values the
         * round trip relies on. */
        if (i % 7 == 0) {
            double d;
            do d = mk_bits_f64(mk_rng_next(&r)); while (!isfinite(d));
            k = (size_t)snprintf(dec[i], sizeof dec[i], "%.17g", d);
        }
        sb_put(&in, "m v=", 4);
        sb_put(&in, dec[i], k);
        sb_put(&in, "\n", 1);
    }
    mk_lp_parser *p = NULL;
    assert_int_equal(mk_lp_parser_new(in.p, in.len, MK_PRECISION_NS, 1, &p), MK_OK);
    mk_lp_line l;
    mk_lp_error e;
    int n_inf = 0, n_bad = 0;
    for (int i = 0; i < n; i++) {
        int k = mk_lp_next(p, &l, &e);
        double want = strtod(dec[i], NULL);
        if (isinf(want)) {
            if (k != MK_LP_ERROR || !strstr(e.reason, "out of range"))
                fail_msg("%s: expected an out-of-range error", dec[i]);
            n_inf++;
            continue;
        }
        if (k != MK_LP_LINE) fail_msg("%s: %s", dec[i], e.reason);
        assert_int_equal(l.line_no, (uint64_t)i + 1);
        assert_int_equal(l.fields[0].type, MK_LP_FLOAT);
        if (mk_f64_bits(l.fields[0].value) != mk_f64_bits(want)) {
            n_bad++;
            if (n_bad < 10)
                print_error("%s: got %a want %a\n", dec[i], l.fields[0].value, want);
        }
    }
    assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_END);
    printf("test_float_vs_strtod: %d compared, %d overflowed, %d differ\n", n - n_inf, n_inf, n_bad);
    assert_int_equal(n_bad, 0);
    mk_lp_parser_free(p);
    free(dec);
    free(in.p);
}

/* ---- randomized round trip through an independent writer --------------- */

enum { MAXN = 24, MAXT = 8, MAXF = 8 };

typedef struct rname {
    char b[MAXN * 3];
    size_t n;
} rname;

typedef struct rfield {
    rname key;
    int type;
    double f;
    int64_t i;
    uint64_t u;
    int b;
    char s[200];
    size_t sn;
} rfield;

typedef struct rline {
    rname meas;
    rname tk[MAXT], tv[MAXT];
    int nt;
    rfield f[MAXF];
    int nf;
    int has_ts;
    int64_t ts_ms;
    uint64_t line_no;
} rline;

/* Units names are built from: plain bytes, every byte with a meaning in
 * line protocol, whitespace, control and multi-byte UTF-8. */
static const char *const k_units[] = {
    "a", "b", "z", "Q", "0", "9", "_", "-", ".", ":", "/", ",", "=", " ", "\\", "\"", "#", "\t",
    "\r", "\x01", "\xc3\xa9", "\xe2\x82\xac", "i", "u", "t", "e",
};

static void gen_name(mk_rng *r, rname *nm, int is_meas, int is_field_key)
{
    for (;;) {
        nm->n = 0;
        int len = 1 + (int)mk_rng_below(r, mk_rng_below(r, 4) ? 8 : MAXN);
        for (int i = 0; i < len; i++) {
            /* mostly plain letters, like real names */
            const char *u = mk_rng_below(r, 3) ? k_units[mk_rng_below(r, 4)]
                                               : k_units[mk_rng_below(r, sizeof k_units / sizeof *k_units)];
            size_t k = strlen(u);
            memcpy(nm->b + nm->n, u, k);
            nm->n += k;
        }
        /* Unrepresentable in InfluxDB's escaping: a name ending in a
         * backslash; a measurement starting with '#' (a comment) or with
         * a tab, and a field key starting with a tab (leading whitespace). */
        if (nm->b[nm->n - 1] == '\\') continue;
        if (is_meas && (nm->b[0] == '#' || nm->b[0] == '\t')) continue;
        if (is_field_key && nm->b[0] == '\t') continue;
        return;
    }
}

static int rname_cmp(const rname *a, const rname *b)
{
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->b, b->b, n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

static int rname_in(const rname *set, int n, const rname *x)
{
    for (int i = 0; i < n; i++)
        if (rname_cmp(&set[i], x) == 0) return 1;
    return 0;
}

/* The independent writer: escape every special byte with a backslash. */
static void put_escaped(sb *b, const rname *nm, const char *specials)
{
    for (size_t i = 0; i < nm->n; i++) {
        if (nm->b[i] && strchr(specials, nm->b[i])) sb_put(b, "\\", 1);
        sb_put(b, &nm->b[i], 1);
    }
}

static int64_t floor_div_ref(int64_t a, int64_t b)
{
    /* Reference for mk_floordiv, written differently: via the remainder. */
    int64_t r = a % b;
    return (a - r) / b - (r < 0 ? 1 : 0);
}

static const char *const k_bools[] = {"t", "T", "true", "True", "TRUE",
                                      "f", "F", "false", "False", "FALSE"};

static void put_ws(mk_rng *r, sb *b, int at_least_one_space)
{
    if (at_least_one_space) sb_put(b, " ", 1);
    int n = mk_rng_below(r, 4) == 0 ? (int)mk_rng_below(r, 3) : 0;
    for (int i = 0; i < n; i++) sb_put(b, mk_rng_below(r, 2) ? " " : "\t", 1);
}

static int64_t gen_i64(mk_rng *r)
{
    switch (mk_rng_below(r, 5)) {
    case 0: return (int64_t)mk_rng_below(r, 1000) - 500;
    case 1: return mk_rng_below(r, 2) ? INT64_MAX - (int64_t)mk_rng_below(r, 3)
                                      : INT64_MIN + (int64_t)mk_rng_below(r, 3);
    default: return (int64_t)mk_rng_next(r);
    }
}

/* Generates one random line into L and writes it to out with the
 * independent writer; *line_no is the physical line it starts on and is
 * moved past it. */
static void gen_line(mk_rng *r, rline *L, mk_precision prec, sb *out, uint64_t *line_no)
{
    /* Blank and comment lines before it now and then. */
    while (mk_rng_below(r, 8) == 0) {
        static const char *const skip[] = {"\n", " \t\n", "# a comment, x=1\n", "  #c\r\n", "\r\n"};
        const char *k = skip[mk_rng_below(r, 5)];
        sb_put(out, k, strlen(k));
        (*line_no)++;
    }
    L->line_no = *line_no;
    gen_name(r, &L->meas, 1, 0);
    L->nt = (int)mk_rng_below(r, MAXT + 1);
    for (int i = 0; i < L->nt; i++) {
        do gen_name(r, &L->tk[i], 0, 0); while (rname_in(L->tk, i, &L->tk[i]));
        gen_name(r, &L->tv[i], 0, 0);
    }
    L->nf = 1 + (int)mk_rng_below(r, MAXF);
    for (int i = 0; i < L->nf; i++) {
        rfield *f = &L->f[i];
        int dup;
        do {
            gen_name(r, &f->key, 0, 1);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= rname_cmp(&L->f[j].key, &f->key) == 0;
        } while (dup);
        f->type = (int)mk_rng_below(r, 5);
    }

    if (mk_rng_below(r, 4) == 0) put_ws(r, out, 1); /* leading whitespace */
    put_escaped(out, &L->meas, ", ");
    for (int i = 0; i < L->nt; i++) {
        sb_put(out, ",", 1);
        put_escaped(out, &L->tk[i], ",= ");
        sb_put(out, "=", 1);
        put_escaped(out, &L->tv[i], ",= ");
    }
    put_ws(r, out, 1);
    char tmp[64];
    for (int i = 0; i < L->nf; i++) {
        rfield *f = &L->f[i];
        if (i) sb_put(out, ",", 1);
        put_escaped(out, &f->key, ",= ");
        sb_put(out, "=", 1);
        switch (f->type) {
        case MK_LP_FLOAT:
            if (mk_rng_below(r, 2)) {
                /* any finite double, printed exactly */
                double d;
                do d = mk_bits_f64(mk_rng_next(r)); while (!isfinite(d));
                snprintf(tmp, sizeof tmp, "%.17g", d);
                if (mk_rng_below(r, 2))
                    for (char *c = tmp; *c; c++)
                        if (*c == 'e') *c = 'E';
            } else {
                /* a gauge-like decimal: 87.34, -0.0012, 523 */
                int dec = (int)mk_rng_below(r, 5);
                int n = snprintf(tmp, sizeof tmp, "%s%llu", mk_rng_below(r, 2) ? "-" : "",
                                 (unsigned long long)mk_rng_below(r, 100000));
                if (dec) {
                    tmp[n++] = '.';
                    for (int k = 0; k < dec; k++) tmp[n++] = (char)('0' + mk_rng_below(r, 10));
                    tmp[n] = '\0';
                }
            }
            f->f = strtod(tmp, NULL); /* bit-exact agreement is tested above */
            sb_put(out, tmp, strlen(tmp));
            break;
        case MK_LP_INT:
            f->i = gen_i64(r);
            sb_printf(out, "%" PRId64 "i", f->i);
            break;
        case MK_LP_UINT:
            f->u = mk_rng_below(r, 2) ? mk_rng_below(r, 1000) : mk_rng_next(r);
            if (mk_rng_below(r, 10) == 0) f->u = UINT64_MAX;
            sb_printf(out, "%" PRIu64 "u", f->u);
            break;
        case MK_LP_BOOL: {
            int k = (int)mk_rng_below(r, 10);
            f->b = k < 5;
            sb_put(out, k_bools[k], strlen(k_bools[k]));
            break;
        }
        default: {
            static const char *const su[] = {"a", "b", " ", ",", "=", "\"", "\\", "\n", "\r",
                                             "\t", "x", "\xc3\xa9", "#", "i", "\\\""};
            int len = (int)mk_rng_below(r, mk_rng_below(r, 8) ? 12 : 60);
            f->sn = 0;
            for (int k = 0; k < len; k++) {
                const char *u = su[mk_rng_below(r, sizeof su / sizeof *su)];
                memcpy(f->s + f->sn, u, strlen(u));
                f->sn += strlen(u);
            }
            /* '"' and '\' are escaped; a line break is continued with a
             * backslash. */
            sb_put(out, "\"", 1);
            for (size_t k = 0; k < f->sn; k++) {
                char c = f->s[k];
                if (c == '"' || c == '\\' || c == '\n') sb_put(out, "\\", 1);
                if (c == '\n') (*line_no)++;
                sb_put(out, &c, 1);
            }
            sb_put(out, "\"", 1);
        }
        }
    }
    L->has_ts = mk_rng_below(r, 5) != 0;
    if (L->has_ts) {
        int64_t ts;
        if (prec == MK_PRECISION_S) {
            uint64_t span = 2 * (uint64_t)(INT64_MAX / 1000) + 1;
            ts = mk_rng_below(r, 2) ? 1763600400 + (int64_t)mk_rng_below(r, 100000) - 50000
                                    : (int64_t)mk_rng_below(r, span) - INT64_MAX / 1000;
        } else {
            ts = mk_rng_below(r, 2) ? (int64_t)mk_rng_below(r, 4000000) - 2000000 : gen_i64(r);
        }
        switch (prec) {
        case MK_PRECISION_NS: L->ts_ms = floor_div_ref(ts, 1000000); break;
        case MK_PRECISION_US: L->ts_ms = floor_div_ref(ts, 1000); break;
        case MK_PRECISION_MS: L->ts_ms = ts; break;
        case MK_PRECISION_S: L->ts_ms = ts * 1000; break;
        }
        put_ws(r, out, 1);
        sb_printf(out, "%" PRId64, ts);
    }
    if (mk_rng_below(r, 6) == 0) put_ws(r, out, 1); /* trailing whitespace */
    if (mk_rng_below(r, 4) == 0) sb_put(out, "\r\n", 2);
    else sb_put(out, "\n", 1);
    (*line_no)++;
}

static int in_buf(const sb *in, mk_lp_str s)
{
    return s.p >= in->p && s.p + s.len <= in->p + in->len;
}

static void expect_name(const sb *in, mk_lp_str got, const rname *want, const char *specials,
                        const char *what, uint64_t line_no)
{
    if (got.len != want->n || memcmp(got.p, want->b, want->n) != 0)
        fail_msg("line %llu: %s differs (got %u bytes, want %zu)", (unsigned long long)line_no,
                 what, got.len, want->n);
    int plain = 1;
    for (size_t i = 0; i < want->n; i++)
        if (want->b[i] && strchr(specials, want->b[i])) plain = 0;
    if (plain && !in_buf(in, got))
        fail_msg("line %llu: %s has no escapes but was copied", (unsigned long long)line_no, what);
}

static int cmp_tagpair(const void *a, const void *b)
{
    return rname_cmp((const rname *)a, (const rname *)b);
}

static void test_round_trip(void **state)
{
    (void)state;
    const uint64_t seed = 20251201;
    const int n_lines = 12000;
    printf("test_round_trip: seed %llu, %d lines x 4 precisions\n", (unsigned long long)seed, n_lines);
    mk_rng r = {seed};
    rline *want = calloc((size_t)n_lines, sizeof *want);
    assert_non_null(want);
    for (int prec = MK_PRECISION_NS; prec <= MK_PRECISION_S; prec++) {
        sb in = {0};
        uint64_t line_no = 1;
        for (int i = 0; i < n_lines; i++) gen_line(&r, &want[i], (mk_precision)prec, &in, &line_no);
        /* Half the batches end without a final newline. */
        if (prec % 2 && in.len && in.p[in.len - 1] == '\n') {
            in.len--;
            if (in.len && in.p[in.len - 1] == '\r') in.len--;
        }
        mk_lp_parser *p = NULL;
        assert_int_equal(mk_lp_parser_new(in.p, in.len, (mk_precision)prec, 1, &p), MK_OK);
        mk_lp_line l;
        mk_lp_error e;
        for (int i = 0; i < n_lines; i++) {
            const rline *w = &want[i];
            int k = mk_lp_next(p, &l, &e);
            if (k != MK_LP_LINE)
                fail_msg("precision %d, line %llu: got %d (%llu:%u %s)", prec,
                         (unsigned long long)w->line_no, k, (unsigned long long)e.line, e.column,
                         k == MK_LP_ERROR ? e.reason : "");
            assert_int_equal(l.line_no, w->line_no);
            expect_name(&in, l.measurement, &w->meas, ", ", "measurement", w->line_no);
            /* Tags: sorted by key bytewise. */
            rname sorted[MAXT][2];
            for (int t = 0; t < w->nt; t++) {
                sorted[t][0] = w->tk[t];
                sorted[t][1] = w->tv[t];
            }
            qsort(sorted, (size_t)w->nt, sizeof sorted[0], cmp_tagpair);
            assert_int_equal(l.n_tags, w->nt);
            for (int t = 0; t < w->nt; t++) {
                expect_name(&in, l.tags[t].key, &sorted[t][0], ",= ", "tag key", w->line_no);
                expect_name(&in, l.tags[t].value, &sorted[t][1], ",= ", "tag value", w->line_no);
            }
            assert_int_equal(l.n_fields, w->nf);
            for (int t = 0; t < w->nf; t++) {
                const rfield *wf = &w->f[t];
                const mk_lp_field *f = &l.fields[t];
                expect_name(&in, f->key, &wf->key, ",= ", "field key", w->line_no);
                assert_int_equal(f->type, wf->type);
                switch (wf->type) {
                case MK_LP_FLOAT: assert_true(mk_f64_bits(f->value) == mk_f64_bits(wf->f)); break;
                case MK_LP_INT: assert_true(f->i == wf->i); break;
                case MK_LP_UINT: assert_true(f->u == wf->u); break;
                case MK_LP_BOOL: assert_true(f->value == (wf->b ? 1.0 : 0.0)); break;
                default:
                    assert_int_equal(f->str.len, wf->sn);
                    assert_memory_equal(f->str.p, wf->s, wf->sn);
                }
            }
            assert_int_equal(l.has_ts, w->has_ts);
            if (w->has_ts) assert_true(l.ts_ms == w->ts_ms);
            /* series_raw is the raw key: it starts at the measurement's raw
             * bytes and ends where the field set starts. */
            assert_true(in_buf(&in, l.series_raw));
        }
        assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_END);
        mk_lp_parser_free(p);
        free(in.p);
    }
    free(want);
}

/* Strings and names longer than the first scratch chunk, many per line:
 * every one must still be intact when the line is yielded. */
static void test_big_scratch(void **state)
{
    (void)state;
    sb in = {0};
    sb_put(&in, "m\\ x", 4);
    for (int t = 0; t < 20; t++) {
        sb_printf(&in, ",k%02d\\ =", t);
        for (int i = 0; i < 700; i++) sb_put(&in, "\\,", 2);
    }
    sb_put(&in, " ", 1);
    for (int t = 0; t < 20; t++) {
        sb_printf(&in, "%sf%02d=\"", t ? "," : "", t);
        for (int i = 0; i < 900 + t; i++) sb_put(&in, "\\\"", 2);
        sb_put(&in, "\"", 1);
    }
    sb_put(&in, "\nn f=1\n", 7);
    mk_lp_parser *p = NULL;
    assert_int_equal(mk_lp_parser_new(in.p, in.len, MK_PRECISION_NS, 1, &p), MK_OK);
    mk_lp_line l;
    mk_lp_error e;
    assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_LINE);
    assert_int_equal(l.n_tags, 20);
    assert_int_equal(l.n_fields, 20);
    for (int t = 0; t < 20; t++) {
        assert_int_equal(l.tags[t].key.len, 4);
        assert_int_equal(l.tags[t].value.len, 700);
        for (int i = 0; i < 700; i++) assert_int_equal(l.tags[t].value.p[i], ',');
        assert_int_equal(l.fields[t].str.len, 900 + t);
        for (int i = 0; i < 900 + t; i++) assert_int_equal(l.fields[t].str.p[i], '"');
    }
    assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_LINE);
    assert_int_equal(mk_lp_next(p, &l, &e), MK_LP_END);
    mk_lp_parser_free(p);
    free(in.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_lines_and_whitespace),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_zero_copy),
        cmocka_unit_test(test_api),
        cmocka_unit_test(test_float_vs_strtod),
        cmocka_unit_test(test_timestamps_random),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_big_scratch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

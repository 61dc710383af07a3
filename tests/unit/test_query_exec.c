/*
 * tests/unit/test_query_exec.c — known-answer tests of the InfluxQL
 * executor (query/exec.c, exec_cond.c, exec_show.c, tz.c).
 *
 * A small database is written through line protocol; each query's answer is
 * rendered into a compact text form and compared with an answer worked out
 * by hand from the data below (comments show the arithmetic). Every query is
 * also run with n_threads 1 and 2 and with summaries on and off, and the
 * four renderings must agree.
 *
 * Rendering: per statement "S<i>:" then per series
 *   " <name>{k=v,...}[col,...]" and rows " (v,v,...)"; times are printed in
 * seconds when whole ("60s"), else ns; floats with %.10g, ints with a
 * trailing 'i', null as "-"; an error as " error: <msg>".
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meerkat/db.h"
#include "meerkat/query.h"

/*
 * Data (time in seconds):
 *   cpu,host=a,region=eu  usage: 0:1  10:3  20:5  60:2      idle: 0:10 10:9 60:7
 *   cpu,host=b,region=us  usage: 0:10 30:20 70:30           idle: 0:1  70:2
 *   mem,host=a            free:  0:100 65:50
 * cpu is flushed into blocks before mem is written, so both the summary
 * path and the head are exercised.
 */
static const char k_lp[] =
    "cpu,host=a,region=eu usage=1,idle=10 0\n"
    "cpu,host=a,region=eu usage=3,idle=9 10\n"
    "cpu,host=a,region=eu usage=5 20\n"
    "cpu,host=a,region=eu usage=2,idle=7 60\n"
    "cpu,host=b,region=us usage=10,idle=1 0\n"
    "cpu,host=b,region=us usage=20 30\n"
    "cpu,host=b,region=us usage=30,idle=2 70\n";
static const char k_lp_head[] =
    "mem,host=a free=100 0\n"
    "mem,host=a free=50 65\n";

typedef struct fixture {
    char *dir;
    mk_db *db;
} fixture;

static int setup_db(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = mk_test_dir("query_exec");
    mk_diag d = {0};
    assert_int_equal(mk_db_open(f->dir, NULL, &f->db, &d), MK_OK);
    assert_int_equal(mk_db_write_lp(f->db, k_lp, strlen(k_lp), MK_PRECISION_S, 0, NULL, NULL, NULL, &d), MK_OK);
    /* cpu lives in sealed blocks (chunk summaries), mem in the head */
    assert_int_equal(mk_db_flush(f->db, &d), MK_OK);
    assert_int_equal(mk_db_write_lp(f->db, k_lp_head, strlen(k_lp_head), MK_PRECISION_S, 0, NULL, NULL, NULL, &d), MK_OK);
    *state = f;
    return 0;
}

static int teardown_db(void **state)
{
    fixture *f = *state;
    mk_db_close(f->db, NULL);
    mk_test_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void render_v(mk_sbuf *b, const mk_qv *v)
{
    switch (v->type) {
    case MK_QV_NULL: mk_sb_printf(b, "-"); break;
    case MK_QV_FLOAT: mk_sb_printf(b, "%.10g", v->u.f); break;
    case MK_QV_INT: mk_sb_printf(b, "%lldi", (long long)v->u.i); break;
    case MK_QV_BOOL: mk_sb_printf(b, "%s", v->u.i ? "true" : "false"); break;
    case MK_QV_STRING: mk_sb_printf(b, "%s", v->u.s); break;
    case MK_QV_TIME:
        if (v->u.i % 1000000000 == 0) mk_sb_printf(b, "%llds", (long long)(v->u.i / 1000000000));
        else mk_sb_printf(b, "%lldns", (long long)v->u.i);
        break;
    }
}

static char *render(const mk_qresult *r)
{
    mk_sbuf b = {0};
    for (uint32_t i = 0; i < mk_qresult_n_stmts(r); i++) {
        const mk_qstmt *st = mk_qresult_stmt(r, i);
        mk_sb_printf(&b, "%sS%u:", i ? " " : "", st->statement_id);
        if (st->error) { mk_sb_printf(&b, " error: %s", st->error); continue; }
        for (uint32_t s = 0; s < st->n_series; s++) {
            const mk_qseries *q = &st->series[s];
            mk_sb_printf(&b, " %s", q->name ? q->name : "");
            if (q->n_tags) {
                mk_sb_printf(&b, "{");
                for (uint32_t t = 0; t < q->n_tags; t++) mk_sb_printf(&b, "%s%s=%s", t ? "," : "", q->tag_keys[t], q->tag_values[t]);
                mk_sb_printf(&b, "}");
            }
            mk_sb_printf(&b, "[");
            for (uint32_t c = 0; c < q->n_cols; c++) mk_sb_printf(&b, "%s%s", c ? "," : "", q->columns[c]);
            mk_sb_printf(&b, "]");
            for (uint64_t row = 0; row < q->n_rows; row++) {
                mk_sb_printf(&b, " (");
                for (uint32_t c = 0; c < q->n_cols; c++) {
                    if (c) mk_sb_printf(&b, ",");
                    render_v(&b, &q->values[row * q->n_cols + c]);
                }
                mk_sb_printf(&b, ")");
            }
        }
    }
    char *s = strdup(mk_sb_str(&b));
    mk_sb_free(&b);
    return s;
}

#define NOW_NS 1000000000000ll /* 1000 s after the epoch */

static char *run_opts(mk_db *db, const char *q, const mk_query_opts *o0)
{
    mk_query_opts o = o0 ? *o0 : (mk_query_opts){0};
    if (!o.now_ns) o.now_ns = NOW_NS;
    mk_qresult *r = NULL;
    mk_diag d = {0};
    mk_err e = mk_query_exec(db, q, strlen(q), &o, &r, &d);
    if (e != MK_OK) {
        char *s = malloc(strlen(d.msg) + 32);
        sprintf(s, "EXEC %s: %s", mk_err_name(e), d.msg);
        return s;
    }
    char *s = render(r);
    mk_qresult_free(r);
    return s;
}

/* Runs q four ways (threads 1/2, summaries on/off); all must agree. */
static char *run(mk_db *db, const char *q)
{
    char *first = NULL;
    for (int t = 1; t <= 2; t++)
        for (int ns = 0; ns <= 1; ns++) {
            static const mk_query_param prm[] = {{"p", {MK_QV_FLOAT, {.f = 60}}}};
            mk_query_opts o = {.n_threads = t, .no_summaries = ns, .params = prm, .n_params = 1};
            char *s = run_opts(db, q, &o);
            if (!first) first = s;
            else {
                if (strcmp(first, s) != 0) fail_msg("query %s differs with n_threads=%d no_summaries=%d:\n%s\nvs\n%s", q, t, ns, first, s);
                free(s);
            }
        }
    return first;
}

#define CHECK(db, q, want)                                                            \
    do {                                                                              \
        char *got_ = run((db), (q));                                                  \
        if (strcmp(got_, (want)) != 0) fail_msg("query: %s\n got: %s\nwant: %s", (q), got_, (want)); \
        free(got_);                                                                   \
    } while (0)

typedef struct kcase {
    const char *q;
    const char *want;
} kcase;

/* Answers worked out by hand from the data at the top of the file. */
static const kcase k_cases[] = {
    /* raw rows: ties in time ordered by tag set */
    {"SELECT usage FROM cpu",
     "S0: cpu[time,usage] (0s,1) (0s,10) (10s,3) (20s,5) (30s,20) (60s,2) (70s,30)"},
    /* * = fields and tags (not grouped by), in name order */
    {"SELECT * FROM cpu",
     "S0: cpu[time,host,idle,region,usage] (0s,a,10,eu,1) (0s,b,1,us,10) (10s,a,9,eu,3) (20s,a,-,eu,5) (30s,b,-,us,20) (60s,a,7,eu,2) (70s,b,2,us,30)"},
    {"SELECT * FROM cpu GROUP BY host",
     "S0: cpu{host=a}[time,idle,region,usage] (0s,10,eu,1) (10s,9,eu,3) (20s,-,eu,5) (60s,7,eu,2) cpu{host=b}[time,idle,region,usage] (0s,1,us,10) (30s,-,us,20) (70s,2,us,30)"},
    /* 71 / 7; no time range: time 0 */
    {"SELECT mean(usage) FROM cpu", "S0: cpu[time,mean] (0s,10.14285714)"},
    /* a: (1+3+5+2)/4, b: (10+20+30)/3 */
    {"SELECT mean(usage) FROM cpu GROUP BY host",
     "S0: cpu{host=a}[time,mean] (0s,2.75) cpu{host=b}[time,mean] (0s,20)"},
    {"SELECT mean(usage) FROM cpu GROUP BY /os/",
     "S0: cpu{host=a}[time,mean] (0s,2.75) cpu{host=b}[time,mean] (0s,20)"},
    /* sorted 1 2 3 5 10 20 30: median 5, mode 1 (all once: the smallest), sample stddev sqrt(718.857/6);
     * first: 1 and 10 both at 0s, the larger value wins the tie (InfluxDB's reducer) */
    {"SELECT count(usage), sum(usage), min(usage), max(usage), first(usage), last(usage), spread(usage), stddev(usage), median(usage), mode(usage) FROM cpu",
     "S0: cpu[time,count,sum,min,max,first,last,spread,stddev,median,mode] (0s,7i,71,1,30,10,30,29,10.94575369,5,1)"},
    {"SELECT first(usage) FROM cpu", "S0: cpu[time,first] (0s,10)"},
    /* a tag next to a field; tags alone make no rows */
    {"SELECT usage, host FROM cpu WHERE idle > 8", "S0: cpu[time,usage,host] (0s,1,a) (10s,3,a)"},
    {"SELECT host FROM cpu", "S0:"},
    /* top/bottom: the N largest/smallest at their own times, in time order */
    {"SELECT top(usage, 2) FROM cpu", "S0: cpu[time,top] (30s,20) (70s,30)"},
    {"SELECT bottom(usage, 3) FROM cpu", "S0: cpu[time,bottom] (0s,1) (10s,3) (60s,2)"},
    {"SELECT top(usage, 1) FROM cpu WHERE time >= 0s AND time < 60s GROUP BY time(30s)", "S0: cpu[time,top] (0s,10) (30s,20)"},
    {"SELECT top(usage, 2), mean(usage) FROM cpu", "S0: error: aggregate function top() cannot be combined with other functions or fields"},
    /* COMPARE columns are named after the durations as written; [60,90): 2 and 30; [0,30): 4 points */
    {"SELECT count(usage) FROM cpu WHERE time >= 60s AND time < 90s GROUP BY time(30s) COMPARE 1m, 60s",
     "S0: cpu[time,count,count_1m,count_ratio_1m,count_60s,count_ratio_60s] (60s,2i,4i,0.5,4i,0.5)"},
    /* Grafana's shapes: quoted names, rp prefix, lower-case and, ms epochs */
    {"SELECT mean(\"usage\") FROM \"autogen\".\"cpu\" WHERE (\"host\" =~ /^a$/) AND time >= 0ms and time <= 59999ms GROUP BY time(30s), \"host\" fill(null)",
     "S0: cpu{host=a}[time,mean] (0s,3) (30s,-)"},
    /* means 4.75 20 16: (20 - 4.75) / 30 s; the drop to 16 is negative */
    {"SELECT non_negative_derivative(mean(\"usage\"), 1s) FROM \"cpu\" WHERE time >= 0s and time < 90s GROUP BY time(30s) fill(none)",
     "S0: cpu[time,non_negative_derivative] (30s,0.5083333333)"},
    /* distinct values 1 2 3 5 10 20 30 (a) ... count(distinct()) is an integer named count */
    {"SELECT count(distinct(idle)) FROM cpu", "S0: cpu[time,count] (0s,5i)"},
    {"SELECT mean(usage) + mean(idle), mean(usage) / 0 FROM cpu WHERE host = 'a'",
     "S0: cpu[time,mean_mean,mean] (0s,11.41666667,0)"},
    /* DESC: fill(previous) takes the value of the row before in output order */
    {"SELECT mean(usage) FROM cpu WHERE host = 'a' AND time >= 0s AND time < 120s GROUP BY time(30s) fill(previous) ORDER BY time DESC",
     "S0: cpu[time,mean] (90s,-) (60s,2) (30s,2) (0s,3)"},
    {"SELECT time, usage FROM cpu WHERE host = 'b'", "S0: cpu[time,usage] (0s,10) (30s,20) (70s,30)"},
    /* a lone selector carries its point's time */
    {"SELECT max(usage) FROM cpu", "S0: cpu[time,max] (70s,30)"},
    {"SELECT max(usage) * 2 FROM cpu", "S0: cpu[time,max] (70s,60)"},
    /* floor(7 * 0.5 + 0.5) - 1 = 3 -> 5 at 20s */
    {"SELECT percentile(usage, 50) FROM cpu", "S0: cpu[time,percentile] (20s,5)"},
    /* aggregate with a lower bound: time = the bound */
    {"SELECT sum(usage) FROM cpu WHERE time > 10s", "S0: cpu[time,sum] (10000000001ns,57)"},
    /* with GROUP BY time a selector reports the bucket start */
    {"SELECT max(usage) FROM cpu WHERE time >= 0s AND time < 60s GROUP BY time(30s)",
     "S0: cpu[time,max] (0s,10) (30s,20)"},
    /* [0,30): 1 3 5 10; [30,60): 20; [60,90): 2 30 */
    {"SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 80s GROUP BY time(30s)",
     "S0: cpu[time,mean] (0s,4.75) (30s,20) (60s,16)"},
    {"SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 120s GROUP BY time(30s) fill(none)",
     "S0: cpu[time,mean] (0s,4.75) (30s,20) (60s,16)"},
    {"SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 120s GROUP BY time(30s), host fill(null)",
     "S0: cpu{host=a}[time,mean] (0s,3) (30s,-) (60s,2) (90s,-) cpu{host=b}[time,mean] (0s,10) (30s,20) (60s,30) (90s,-)"},
    /* linear: host a's empty 30s bucket between 3 (0s) and 2 (60s) */
    {"SELECT mean(usage) FROM cpu WHERE host = 'a' AND time >= 0s AND time < 90s GROUP BY time(30s) fill(linear)",
     "S0: cpu[time,mean] (0s,3) (30s,2.5) (60s,2)"},
    /* no lower bound: buckets from the oldest sample to now() (1000 s) */
    {"SELECT count(free) FROM mem GROUP BY time(5m)",
     "S0: mem[time,count] (0s,2i) (300s,0i) (600s,0i) (900s,0i)"},
    /* Europe/Paris was UTC+1 in January 1970: days start at 23:00 UTC */
    {"SELECT count(free) FROM mem WHERE time >= '1970-01-01T00:00:00Z' AND time < '1970-01-03T00:00:00Z' GROUP BY time(1d) tz('Europe/Paris')",
     "S0: mem[time,count] (-3600s,2i) (82800s,0i) (169200s,0i)"},
    /* (3-1)/10s, (5-3)/10s, (2-5)/40s */
    {"SELECT derivative(usage) FROM cpu WHERE host='a'",
     "S0: cpu[time,derivative] (10s,0.2) (20s,0.2) (60s,-0.075)"},
    {"SELECT distinct(usage) FROM cpu",
     "S0: cpu[time,distinct] (0s,1) (0s,2) (0s,3) (0s,5) (0s,10) (0s,20) (0s,30)"},
    /* trapezoids 20 + 40 + 140 (value-seconds) */
    {"SELECT integral(usage) FROM cpu WHERE host='a'", "S0: cpu[time,integral] (0s,200)"},
    /* inner means 4.75 20 16 (buckets 0 30 60): the outer max is 20 at 30s */
    {"SELECT max(m) FROM (SELECT mean(usage) AS m FROM cpu WHERE time >= 0s AND time < 80s GROUP BY time(30s))",
     "S0: cpu[time,max] (30s,20)"},
    {"SELECT mean(m) FROM (SELECT max(usage) AS m FROM cpu GROUP BY host)",
     "S0: cpu[time,mean] (0s,17.5)"},
    {"SELECT m FROM (SELECT mean(usage) AS m FROM cpu GROUP BY host) WHERE host = 'b'",
     "S0: cpu[time,m] (0s,20)"},
    {"SHOW MEASUREMENTS; SHOW TAG KEYS; SHOW TAG VALUES WITH KEY = \"host\"; SHOW FIELD KEYS; SHOW SERIES; SHOW RETENTION POLICIES; SHOW DATABASES",
     "S0: measurements[name] (cpu) (mem) S1: cpu[tagKey] (host) (region) mem[tagKey] (host) S2: cpu[key,value] (host,a) (host,b) mem[key,value] (host,a) S3: cpu[fieldKey,fieldType] (idle,float) (usage,float) mem[fieldKey,fieldType] (free,float) S4: [key] (cpu,host=a,region=eu) (cpu,host=b,region=us) (mem,host=a) S5: [name,duration,shardGroupDuration,replicaN,default] (autogen,0s,168h0m0s,1i,true) S6: databases[name] (meerkat)"},
    {"SHOW MEASUREMENTS LIMIT 1 OFFSET 1", "S0: measurements[name] (mem)"},
    /* Grafana's metadata queries (GRAFANA-INFLUXQL.md 3.3) */
    {"SHOW TAG VALUES FROM \"cpu\" WITH KEY = \"region\" WHERE \"host\"::tag = 'a'", "S0: cpu[key,value] (region,eu)"},
    {"SHOW MEASUREMENTS WITH MEASUREMENT =~ /(?i)cp/ WHERE \"host\"::tag =~ /^(a|b)$/ LIMIT 100", "S0: measurements[name] (cpu)"},
    {"SHOW FIELD KEYS FROM \"autogen\".\"cpu\"", "S0: cpu[fieldKey,fieldType] (idle,float) (usage,float)"},
    {"SHOW TAG KEYS FROM \"autogen\"./^c/", "S0: cpu[tagKey] (host) (region)"},
    {"SHOW TAG VALUES WITH KEY = \"host\" WHERE time > now() - 6h and time <= now()",
     "S0: cpu[key,value] (host,a) (host,b) mem[key,value] (host,a)"},
    {"SHOW TAG KEYS", "S0: cpu[tagKey] (host) (region) mem[tagKey] (host)"},
    {"SHOW FIELD KEYS", "S0: cpu[fieldKey,fieldType] (idle,float) (usage,float) mem[fieldKey,fieldType] (free,float)"},
    /* a statement error stops the statements after it */
    {"SHOW MEASUREMENTS; SELECT x FROM cpu GROUP BY time(1m); SHOW DATABASES",
     "S0: measurements[name] (cpu) (mem) S1: error: GROUP BY requires at least one aggregate function"},
    {"SELECT mean(usage) FROM cpu WHERE time > now() - 1h OR host = 'a'",
     "S0: error: invalid condition: time comparisons cannot be combined with OR"},
    {"SELECT usage FROM cpu WHERE time >= 10s AND time < 60s",
     "S0: cpu[time,usage] (10s,3) (20s,5) (30s,20)"},
    {"SELECT usage FROM cpu WHERE time > 10s AND time <= 60s",
     "S0: cpu[time,usage] (20s,5) (30s,20) (60s,2)"},
    {"SELECT usage FROM cpu WHERE time >= 10000ms AND time <= '1970-01-01T00:01:00Z'",
     "S0: cpu[time,usage] (10s,3) (20s,5) (30s,20) (60s,2)"},
    {"SELECT usage FROM cpu WHERE time >= 10000000000 AND time <= 20000000000",
     "S0: cpu[time,usage] (10s,3) (20s,5)"},
    {"SELECT usage FROM cpu WHERE time > now() - 990s",
     "S0: cpu[time,usage] (20s,5) (30s,20) (60s,2) (70s,30)"},
    {"SELECT usage, idle FROM cpu WHERE host = 'a'",
     "S0: cpu[time,usage,idle] (0s,1,10) (10s,3,9) (20s,5,-) (60s,2,7)"},
    {"SELECT usage FROM cpu WHERE usage > 3 AND usage <= 20",
     "S0: cpu[time,usage] (0s,10) (20s,5) (30s,20)"},
    {"SELECT usage FROM cpu WHERE idle > 5 OR host = 'b'",
     "S0: cpu[time,usage] (0s,1) (0s,10) (10s,3) (30s,20) (60s,2) (70s,30)"},
    {"SELECT usage FROM cpu WHERE host =~ /^(b|c)$/",
     "S0: cpu[time,usage] (0s,10) (30s,20) (70s,30)"},
    {"SELECT usage FROM cpu WHERE host !~ /b/",
     "S0: cpu[time,usage] (0s,1) (10s,3) (20s,5) (60s,2)"},
    {"SELECT usage FROM cpu WHERE host != 'a' OR region = 'eu' ORDER BY time DESC LIMIT 3",
     "S0: cpu[time,usage] (70s,30) (60s,2) (30s,20)"},
    {"SELECT usage * 2 + 1, usage + idle AS s FROM cpu WHERE host='a'",
     "S0: cpu[time,usage,s] (0s,3,11) (10s,7,12) (20s,11,-) (60s,5,9)"},
    {"SELECT usage FROM cpu GROUP BY host LIMIT 2 OFFSET 1",
     "S0: cpu{host=a}[time,usage] (10s,3) (20s,5) cpu{host=b}[time,usage] (30s,20) (70s,30)"},
    {"SELECT usage FROM cpu GROUP BY * SLIMIT 1 SOFFSET 1",
     "S0: cpu{host=b,region=us}[time,usage] (0s,10) (30s,20) (70s,30)"},
    {"SELECT mean(usage), mean(idle), mean(usage) FROM cpu GROUP BY region",
     "S0: cpu{region=eu}[time,mean,mean_1,mean_2] (0s,2.75,8.666666667,2.75) cpu{region=us}[time,mean,mean_1,mean_2] (0s,20,1.5,20)"},
    {"SELECT mean(usage) FROM /c.u/, mem GROUP BY host",
     "S0: cpu{host=a}[time,mean] (0s,2.75) cpu{host=b}[time,mean] (0s,20)"},
    {"SELECT mean(*) FROM cpu",
     "S0: cpu[time,mean_idle,mean_usage] (0s,5.8,10.14285714)"},
    {"SELECT count(usage) FROM cpu WHERE time >= 0s AND time < 120s GROUP BY time(30s)",
     "S0: cpu[time,count] (0s,4i) (30s,1i) (60s,2i) (90s,0i)"},
    {"SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 120s GROUP BY time(30s) fill(previous)",
     "S0: cpu[time,mean] (0s,4.75) (30s,20) (60s,16) (90s,16)"},
    {"SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 150s GROUP BY time(30s) fill(linear)",
     "S0: cpu[time,mean] (0s,4.75) (30s,20) (60s,16) (90s,-) (120s,-)"},
    {"SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 120s GROUP BY time(30s) fill(-1)",
     "S0: cpu[time,mean] (0s,4.75) (30s,20) (60s,16) (90s,-1)"},
    {"SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 120s GROUP BY time(30s, 10s)",
     "S0: cpu[time,mean] (-20s,5.5) (10s,9.333333333) (40s,2) (70s,30) (100s,-)"},
    {"SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 120s GROUP BY time(30s) ORDER BY time DESC LIMIT 2",
     "S0: cpu[time,mean] (90s,-) (60s,16)"},
    {"SELECT first(usage), last(usage) FROM cpu GROUP BY host",
     "S0: cpu{host=a}[time,first,last] (0s,1,2) cpu{host=b}[time,first,last] (0s,10,30)"},
    {"SELECT min(usage) FROM cpu WHERE host='b'",
     "S0: cpu[time,min] (0s,10)"},
    {"SELECT difference(usage), cumulative_sum(usage), moving_average(usage, 2) FROM cpu WHERE host='a'",
     "S0: cpu[time,difference,cumulative_sum,moving_average] (0s,-,1,-) (10s,2,4,2) (20s,2,9,4) (60s,-3,11,3.5)"},
    /* a window longer than the points never fills (and must not be allocated: fuzz_query_exec) */
    {"SELECT moving_average(usage, 3555555555) FROM cpu WHERE host='a'", "S0:"},
    {"SELECT non_negative_derivative(usage, 1m) FROM cpu WHERE host='a'",
     "S0: cpu[time,non_negative_derivative] (10s,12) (20s,12)"},
    {"SELECT derivative(mean(usage)) FROM cpu WHERE time >= 0s AND time < 90s GROUP BY time(30s)",
     "S0: cpu[time,derivative] (30s,15.25) (60s,-4)"},
    {"SELECT integral(usage, 1m) FROM cpu WHERE host='a' AND time >= 0s AND time < 60s GROUP BY time(30s)",
     "S0: cpu[time,integral] (0s,1) (30s,-)"},
    {"SELECT percentile(usage, 90), percentile(usage, 0) FROM cpu",
     "S0: cpu[time,percentile,percentile_1] (0s,20,-)"},
    {"SELECT mean(usage) FROM cpu WHERE usage > 2",
     "S0: cpu[time,mean] (0s,13.6)"},
    {"SELECT mean(usage) FROM cpu WHERE time >= 60s AND time < 120s GROUP BY time(30s) COMPARE 1m",
     "S0: cpu[time,mean,mean_1m,mean_ratio_1m] (60s,16,4.75,3.368421053) (90s,-,20,-)"},
    {"SELECT free FROM mem WHERE $p < free",
     "S0: mem[time,free] (0s,100)"},
    {"SELECT mean(usage) FROM nosuch",
     "S0:"},
    {"SELECT nosuch FROM cpu",
     "S0:"},
    {"SELECT mean(usage), usage FROM cpu",
     "S0: error: mixing aggregate and non-aggregate queries is not supported"},
    {"SELECT bogus(usage) FROM cpu; SELECT usage FROM cpu",
     "S0: error: undefined function bogus()"},
    {"SHOW MEASUREMENTS WITH MEASUREMENT =~ /(?i)^C/ LIMIT 5",
     "S0: measurements[name] (cpu)"},
    {"SHOW MEASUREMENTS WHERE \"region\"::tag = 'eu'",
     "S0: measurements[name] (cpu)"},
    {"SHOW TAG KEYS FROM \"cpu\" WHERE time > now() - 12h",
     "S0: cpu[tagKey] (host) (region)"},
    {"SHOW TAG VALUES FROM \"cpu\" WITH KEY = \"host\" WHERE \"region\"::tag = 'us' OR \"region\"::tag = 'eu'",
     "S0: cpu[key,value] (host,a) (host,b)"},
    {"SHOW TAG VALUES FROM cpu WITH KEY IN (\"host\", \"region\")",
     "S0: cpu[key,value] (host,a) (host,b) (region,eu) (region,us)"},
    {"SHOW TAG VALUES WITH KEY =~ /reg/",
     "S0: cpu[key,value] (region,eu) (region,us)"},
    {"SHOW FIELD KEYS FROM /^m/",
     "S0: mem[fieldKey,fieldType] (free,float)"},
    {"SHOW SERIES FROM cpu WHERE host = 'b'",
     "S0: [key] (cpu,host=b,region=us)"},
    {"SHOW RETENTION POLICIES on \"telegraf\"",
     "S0: [name,duration,shardGroupDuration,replicaN,default] (autogen,0s,168h0m0s,1i,true)"},
    {"SELECT usage FROM telegraf.autogen.cpu WHERE host='b'",
     "S0: cpu[time,usage] (0s,10) (30s,20) (70s,30)"},
};

static void test_known_answers(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) CHECK(f->db, k_cases[i].q, k_cases[i].want);
}

static void test_show_databases_opts(void **state)
{
    fixture *f = *state;
    static const char *const dbs[] = {"_internal", "bench"};
    mk_query_opts o = {.databases = dbs, .n_databases = 2};
    char *s = run_opts(f->db, "SHOW DATABASES", &o);
    assert_string_equal(s, "S0: databases[name] (_internal) (bench)");
    free(s);
    mk_query_opts o2 = {.db = "telegraf"};
    s = run_opts(f->db, "SHOW DATABASES", &o2);
    assert_string_equal(s, "S0: databases[name] (telegraf)");
    free(s);
}

static void test_parse_error(void **state)
{
    fixture *f = *state;
    mk_qresult *r = (mk_qresult *)1;
    mk_diag d = {0};
    const char *q = "SELECT FROM";
    assert_int_equal(mk_query_exec(f->db, q, strlen(q), NULL, &r, &d), MK_EPARSE);
    assert_null(r);
    assert_non_null(strstr(d.msg, "error at 1:"));
}

static void test_caps(void **state)
{
    fixture *f = *state;
    /* 7 rows x (time + usage) = 14 values */
    mk_query_opts o = {.max_points = 13};
    char *s = run_opts(f->db, "SELECT usage FROM cpu", &o);
    assert_non_null(strstr(s, "error: max-select-point limit exceeded"));
    assert_non_null(strstr(s, "max_points"));
    free(s);
    o.max_points = 14;
    s = run_opts(f->db, "SELECT usage FROM cpu", &o);
    assert_null(strstr(s, "error"));
    free(s);
    /* 4 buckets x (time + mean): over a cap of 7 before anything is read */
    o.max_points = 7;
    s = run_opts(f->db, "SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 120s GROUP BY time(30s)", &o);
    assert_non_null(strstr(s, "error: max-select-point limit exceeded"));
    free(s);
    /* median keeps its 7 samples in memory: over a cap of 6 */
    o.max_points = 6;
    s = run_opts(f->db, "SELECT median(usage) FROM cpu", &o);
    assert_non_null(strstr(s, "error: max-select-point limit exceeded: median() needs more than 6 samples in memory"));
    free(s);
    /* two usage series */
    mk_query_opts o2 = {.max_series = 1};
    s = run_opts(f->db, "SELECT mean(usage) FROM cpu", &o2);
    assert_non_null(strstr(s, "error: max-select-series limit exceeded"));
    assert_non_null(strstr(s, "max_series"));
    free(s);
    o2.max_series = 2;
    s = run_opts(f->db, "SELECT mean(usage) FROM cpu", &o2);
    assert_string_equal(s, "S0: cpu[time,mean] (0s,10.14285714)");
    free(s);
}

/* Six tag sets of 10 points: a raw select is refused from chunk summaries,
 * before decoding, when 60 rows x (time + v) = 120 values exceed the cap. */
static void test_raw_precount(void **state)
{
    (void)state;
    char *dir = mk_test_dir("query_exec_precount");
    mk_db *db;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, NULL, &db, &d), MK_OK);
    char lp[4096];
    size_t n = 0;
    for (int k = 0; k < 6; k++)
        for (int i = 0; i < 10; i++) n += (size_t)snprintf(lp + n, sizeof lp - n, "m,k=%d v=%d %d\n", k, i, i);
    assert_int_equal(mk_db_write_lp(db, lp, n, MK_PRECISION_S, 0, NULL, NULL, NULL, &d), MK_OK);
    assert_int_equal(mk_db_flush(db, &d), MK_OK);
    mk_query_opts o = {.max_points = 119};
    char *s = run_opts(db, "SELECT v FROM m", &o);
    assert_string_equal(s, "S0: error: max-select-point limit exceeded: the answer would hold 60 rows x 2 columns, over the cap of 119 "
                           "values (raise max_points / the max-select-point setting, or narrow the time range, add LIMIT, or aggregate)");
    free(s);
    o.max_points = 120;
    s = run_opts(db, "SELECT count(v) FROM (SELECT v FROM m)", &o);
    assert_string_equal(s, "S0: m[time,count] (0s,60i)");
    free(s);
    /* LIMIT 0 is no limit, as in InfluxQL */
    s = run_opts(db, "SELECT v FROM m WHERE k = '3' LIMIT 0 OFFSET 8", &o);
    assert_string_equal(s, "S0: m[time,v] (8s,8) (9s,9)");
    free(s);
    mk_db_close(db, NULL);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_explain(void **state)
{
    fixture *f = *state;
    char *s = run_opts(f->db, "EXPLAIN SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 120s GROUP BY time(30s)", NULL);
    assert_non_null(strstr(s, "S0: [QUERY PLAN] (statement: SELECT mean(usage) FROM cpu"));
    assert_non_null(strstr(s, "(tier: raw (the only tier"));
    assert_non_null(strstr(s, "(series matched: 2 in 2 tag sets, 1 output groups)"));
    assert_non_null(strstr(s, "(buckets: 4 of 30s)"));
    assert_null(strstr(s, "chunks decoded"));
    free(s);
    s = run_opts(f->db, "EXPLAIN ANALYZE SELECT mean(usage) FROM cpu WHERE time >= 0s AND time < 120s GROUP BY time(30s)", NULL);
    assert_non_null(strstr(s, "(field usage: 2 series, chunks from summaries"));
    assert_non_null(strstr(s, "samples decoded"));
    assert_non_null(strstr(s, "(answer: 1 series, 8 values)"));
    assert_non_null(strstr(s, "(time plan: "));
    assert_non_null(strstr(s, "(time read+fold: "));
    free(s);
    /* every chunk read without decoding: count over all time */
    mk_query_opts o = {.no_summaries = 0};
    s = run_opts(f->db, "EXPLAIN ANALYZE SELECT count(usage) FROM cpu", &o);
    assert_non_null(strstr(s, "chunks from summaries 2, chunks decoded 0, samples decoded 0"));
    free(s);
    o.no_summaries = 1;
    s = run_opts(f->db, "EXPLAIN ANALYZE SELECT count(usage) FROM cpu", &o);
    assert_non_null(strstr(s, "chunks from summaries 0, chunks decoded 2, samples decoded 7"));
    free(s);
}

/* A query that reads 300,000 samples cannot finish within 1 ms. */
static void test_timeout(void **state)
{
    (void)state;
    char *dir = mk_test_dir("query_exec_timeout");
    mk_db *db;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, NULL, &db, &d), MK_OK);
    size_t cap = 300000 * 40, n = 0;
    char *lp = malloc(cap);
    for (int i = 0; i < 300000; i++) n += (size_t)snprintf(lp + n, cap - n, "t,k=v x=%d %d\n", i % 977, i);
    assert_int_equal(mk_db_write_lp(db, lp, n, MK_PRECISION_S, 0, NULL, NULL, NULL, &d), MK_OK);
    free(lp);
    mk_query_opts o = {.timeout_ms = 1};
    char *s = run_opts(db, "SELECT median(x) FROM t; SELECT count(x) FROM t", &o);
    assert_string_equal(s, "S0: error: query timeout after 1 ms");
    free(s);
    o.timeout_ms = -1;
    s = run_opts(db, "SELECT count(x) FROM t", &o);
    assert_string_equal(s, "S0: t[time,count] (0s,300000i)");
    free(s);
    mk_db_close(db, NULL);
    mk_test_rmrf(dir);
    free(dir);
}

/* Europe/Paris went to summer time on 2023-03-26 at 01:00 UTC: that local
 * day started at 2023-03-25T23:00Z and lasted 23 h, the next started at
 * 2023-03-26T22:00Z. Points (s): 1679787000 = 25T23:30Z, 1679866200 =
 * 26T21:30Z (same local day), 1679869800 = 26T22:30Z (next day). */
static void test_tz_dst(void **state)
{
    (void)state;
    char *dir = mk_test_dir("query_exec_tz");
    mk_db *db;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, NULL, &db, &d), MK_OK);
    const char *lp = "dst v=1 1679787000\ndst v=2 1679866200\ndst v=4 1679869800\n";
    assert_int_equal(mk_db_write_lp(db, lp, strlen(lp), MK_PRECISION_S, 0, NULL, NULL, NULL, &d), MK_OK);
    CHECK(db, "SELECT sum(v) FROM dst WHERE time >= '2023-03-25T23:00:00Z' AND time < '2023-03-27T22:00:00Z' GROUP BY time(1d) tz('Europe/Paris')",
          "S0: dst[time,sum] (1679785200s,3) (1679868000s,4)");
    /* in UTC the days split at midnight: 25th: 1, 26th: 2 + 4 */
    CHECK(db, "SELECT sum(v) FROM dst WHERE time >= '2023-03-25T00:00:00Z' AND time < '2023-03-27T00:00:00Z' GROUP BY time(1d)",
          "S0: dst[time,sum] (1679702400s,1) (1679788800s,6)");
    CHECK(db, "SELECT sum(v) FROM dst GROUP BY time(1d) tz('Nowhere/Atlantis')",
          "S0: error: unable to find time zone Nowhere/Atlantis: unknown time zone Nowhere/Atlantis (no file /usr/share/zoneinfo/Nowhere/Atlantis)");
    mk_db_close(db, NULL);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_empty_db(void **state)
{
    (void)state;
    char *dir = mk_test_dir("query_exec_empty");
    mk_db *db;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, NULL, &db, &d), MK_OK);
    char *s = run(db, "SELECT * FROM cpu; SELECT mean(x) FROM cpu GROUP BY time(1m); SHOW MEASUREMENTS; SHOW TAG KEYS; SHOW SERIES; SHOW FIELD KEYS");
    assert_string_equal(s, "S0: S1: S2: S3: S4: S5:");
    free(s);
    mk_db_close(db, NULL);
    mk_test_rmrf(dir);
    free(dir);
}

/* A damaged chunk is a statement error naming the file, never a crash. */
static void test_damaged_db(void **state)
{
    (void)state;
    char *dir = mk_test_dir("query_exec_damaged");
    mk_db *db;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, NULL, &db, &d), MK_OK);
    size_t cap = 2000 * 40, n = 0;
    char *lp = malloc(cap);
    for (int i = 0; i < 2000; i++) n += (size_t)snprintf(lp + n, cap - n, "t,k=v x=%d.25 %d\n", (i * 7919) % 1000, i * 10);
    assert_int_equal(mk_db_write_lp(db, lp, n, MK_PRECISION_S, 0, NULL, NULL, NULL, &d), MK_OK);
    free(lp);
    assert_int_equal(mk_db_flush(db, &d), MK_OK);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    /* flip bytes in the middle of every block file */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "for f in '%s'/blocks/*; do sz=$(stat -c %%s \"$f\"); "
             "printf '\\377\\377\\377\\377\\377\\377\\377\\377' | dd of=\"$f\" bs=1 seek=$((sz/3)) conv=notrunc status=none; done", dir);
    assert_int_equal(system(cmd), 0);
    if (mk_db_open(dir, NULL, &db, &d) != MK_OK) { /* refusing to open is fine too */
        mk_test_rmrf(dir);
        free(dir);
        return;
    }
    char *s = run_opts(db, "SELECT sum(x) FROM t; SELECT x FROM t; SELECT median(x) FROM t GROUP BY time(1h)", NULL);
    /* summaries may still answer sum(); decoding the bad chunk must fail, and stop S2 */
    assert_non_null(strstr(s, "S1: error: "));
    assert_non_null(strstr(s, "corrupt"));
    assert_null(strstr(s, "S2:"));
    free(s);
    mk_db_close(db, NULL);
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_known_answers, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_show_databases_opts, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_parse_error, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_caps, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_explain, setup_db, teardown_db),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_tz_dst),
        cmocka_unit_test(test_raw_precount),
        cmocka_unit_test(test_empty_db),
        cmocka_unit_test(test_damaged_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

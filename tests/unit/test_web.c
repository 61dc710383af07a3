/*
 * tests/unit/test_web.c — the status page's server side (server/web.c):
 *  - the 90 daily cells of a monitor, computed by mk_web_status_json over a
 *    real database (sealed chunks answered from summaries, chunks straddling
 *    midnight decoded, the in-memory head) against a brute-force pass over
 *    the generated beats;
 *  - DOWN time per day from overlapping incidents against a
 *    minute-by-minute count;
 *  - the `status_page:` section through mk_config_parse: a valid one, each
 *    error with its hand-counted line:column, maintenance and public flags;
 *  - public mode hides what is not public;
 *  - badges: well-formed SVG with the texts escaped.
 * Seeds are fixed and printed.
 */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "meerkat/db.h"
#include "web.h"

#define DAY MK_WEB_DAY_MS

/* A fixed "now": 2025-12-02T13:20:00Z. */
static const int64_t NOW_MS = 1764681600000LL;

static void test_days_vs_brute_force(void **state)
{
    (void)state;
    const uint64_t seed = 20261202;
    print_message("seed %" PRIu64 "\n", seed);
    mk_rng rng = {seed};
    char *dir = mk_test_dir("web_days");
    mk_db *db = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, NULL, &db, &d), MK_OK);

    int64_t first_day = NOW_MS - NOW_MS % DAY - (MK_WEB_DAYS - 1) * DAY;
    /* beats every 7 minutes from 95 days ago (some before the window), with
     * gaps of whole days, degraded and down stretches */
    enum { MAXB = 95 * 24 * 60 / 7 + 10 };
    int64_t *ts = malloc(MAXB * sizeof *ts);
    double *st = malloc(MAXB * sizeof *st);
    size_t n = 0;
    mk_sbuf lp = {0};
    for (int64_t t = first_day - 5 * DAY + 123456; t < NOW_MS; t += 7 * 60000) {
        int64_t day = (t - first_day) / DAY;
        if (day == 10 || day == 11 || day == 40) continue; /* no data those days */
        double s = 1;
        uint64_t r = mk_rng_below(&rng, 1000);
        if (r < 3) s = 0;
        else if (r < 8) s = 0.5;
        if (day == 88 && (t % DAY) > 3 * 3600000 && (t % DAY) < 5 * 3600000) s = 0; /* an outage */
        ts[n] = t;
        st[n] = s;
        n++;
        mk_sb_printf(&lp, "heartbeat,monitor=api status=%g %" PRId64 "\n", s, t);
    }
    assert_int_equal(mk_db_write_lp(db, mk_sb_str(&lp), strlen(mk_sb_str(&lp)), MK_PRECISION_MS, NOW_MS, NULL,
                                    NULL, NULL, &d),
                     MK_OK);
    mk_sb_free(&lp);
    assert_int_equal(mk_db_flush(db, &d), MK_OK);
    /* and a few more beats in the head (unsealed) */
    lp = (mk_sbuf){0};
    mk_sb_printf(&lp, "heartbeat,monitor=api status=0.5 %" PRId64 "\n", NOW_MS - 1000);
    ts[n] = NOW_MS - 1000;
    st[n++] = 0.5;
    assert_int_equal(mk_db_write_lp(db, mk_sb_str(&lp), strlen(mk_sb_str(&lp)), MK_PRECISION_MS, NOW_MS, NULL,
                                    NULL, NULL, &d),
                     MK_OK);
    mk_sb_free(&lp);

    mk_config cfg;
    assert_int_equal(mk_config_init(&cfg), 0);
    const char *y = "monitors:\n  - {name: api, kind: kuma, token: t1}\n";
    char *errs = NULL;
    assert_int_equal(mk_config_parse(&cfg, y, strlen(y), &errs), 0);
    json_t *doc = mk_web_status_json(db, &cfg, NULL, 0, NOW_MS);
    assert_non_null(doc);
    json_t *m = json_array_get(json_object_get(doc, "monitors"), 0);
    assert_non_null(m);
    assert_int_equal(json_integer_value(json_object_get(doc, "first_day_ms")), first_day);
    const char *days = json_string_value(json_object_get(m, "days"));
    json_t *up = json_object_get(m, "uptime");
    assert_int_equal(strlen(days), MK_WEB_DAYS);
    /* brute force: per day, worst status and share of beats > 0 */
    for (int k = 0; k < MK_WEB_DAYS; k++) {
        int64_t a = first_day + k * DAY, b = a + DAY;
        size_t cnt = 0, nup = 0;
        double worst = 2;
        for (size_t i = 0; i < n; i++)
            if (ts[i] >= a && ts[i] < b) {
                cnt++;
                nup += st[i] > 0;
                if (st[i] < worst) worst = st[i];
            }
        char want = !cnt ? 'N' : worst == 0 ? 'D' : worst < 1 ? 'G' : 'U';
        if (days[k] != want) fail_msg("day %d: got %c want %c", k, days[k], want);
        json_t *u = json_array_get(up, (size_t)k);
        if (!cnt) {
            assert_true(json_is_null(u));
        } else {
            double w = 100.0 * (double)nup / (double)cnt;
            assert_true(fabs(json_number_value(u) - w) < 0.001);
        }
    }
    assert_int_equal(days[10], 'N');
    assert_int_equal(days[88], 'D');
    assert_string_equal(json_string_value(json_object_get(m, "state")), "DEGRADED"); /* last beat 0.5 */
    json_decref(doc);
    mk_config_free(&cfg);
    free(ts);
    free(st);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

/* DOWN incident time per day: union of random overlapping spans against a
 * minute-by-minute count; days touched and the worst level likewise. */
static void test_incident_days(void **state)
{
    (void)state;
    const uint64_t seed = 77;
    print_message("seed %" PRIu64 "\n", seed);
    mk_rng rng = {seed};
    const int64_t first = 1756771200000LL; /* a UTC midnight */
    const int64_t MIN = 60000;
    for (int round = 0; round < 20; round++) {
        mk_web_day days[MK_WEB_DAYS];
        mk_web_days_init(days);
        enum { NS = 12 };
        int64_t s[NS], e[NS];
        for (int i = 0; i < NS; i++) {
            s[i] = first - 2 * DAY + (int64_t)mk_rng_below(&rng, (MK_WEB_DAYS + 3) * 1440) * MIN;
            e[i] = s[i] + (int64_t)(1 + mk_rng_below(&rng, 3 * 1440)) * MIN;
        }
        /* sorted by start, as web.c feeds them */
        for (int i = 0; i < NS; i++)
            for (int j = i + 1; j < NS; j++)
                if (s[j] < s[i]) {
                    int64_t t = s[i]; s[i] = s[j]; s[j] = t;
                    t = e[i]; e[i] = e[j]; e[j] = t;
                }
        int64_t covered = INT64_MIN;
        for (int i = 0; i < NS; i++) mk_web_days_add_incident(days, first, s[i], e[i], 2, &covered);
        for (int k = 0; k < MK_WEB_DAYS; k++) {
            int64_t a = first + k * DAY, b = a + DAY;
            int touched = 0;
            for (int i = 0; i < NS; i++) touched += s[i] < b && e[i] > a;
            assert_int_equal(days[k].n_incidents, touched);
            int64_t down = 0; /* minutes covered by any span */
            for (int64_t t = a; t < b; t += MIN) {
                int in = 0;
                for (int i = 0; i < NS; i++) in |= t >= s[i] && t < e[i];
                down += in ? MIN : 0;
            }
            assert_int_equal(days[k].down_ms, down);
            assert_int_equal(mk_web_day_state(&days[k]), touched ? MK_WEB_DOWN : MK_WEB_NODATA);
        }
    }
    /* uptime: beats and down time combine */
    mk_web_day one;
    memset(&one, 0, sizeof one);
    one.n_beats = 10;
    one.n_up = 9;
    one.worst = 0;
    one.down_ms = DAY / 4;
    assert_true(fabs(mk_web_day_uptime(&one, DAY) - 100.0 * 0.9 * 0.75) < 1e-9);
    assert_int_equal(mk_web_day_state(&one), MK_WEB_DOWN);
}

static int parse(mk_config *c, const char *y, char **errs)
{
    assert_int_equal(mk_config_init(c), 0);
    return mk_config_parse(c, y, strlen(y), errs);
}

static void test_config(void **state)
{
    (void)state;
    const char *y = "monitors:\n"
                    "  - {name: api, kind: kuma, token: t1}\n"
                    "  - {name: db, kind: kuma, token: t2}\n"
                    "status_page:\n"
                    "  title: Acme status\n"
                    "  public: [api, web]\n"
                    "  groups:\n"
                    "    - {name: Core, monitors: [api, db], services: [web]}\n"
                    "  services:\n"
                    "    - {name: web, measurement: svc, tags: {service: web}, p95: p95_ms}\n"
                    "  maintenance:\n"
                    "    - name: db upgrade\n"
                    "      start: 2025-12-02T10:00:00Z\n"
                    "      end: 2025-12-02T12:00:00Z\n"
                    "      monitors: [db]\n";
    mk_config c;
    char *errs = NULL;
    int n = parse(&c, y, &errs);
    if (n) print_error("%s", errs);
    assert_int_equal(n, 0);
    assert_non_null(c.status_page);
    const int64_t t10 = 1764669600000LL; /* 2025-12-02T10:00:00Z */
    assert_true(mk_web_in_maintenance(c.status_page, "db", t10));
    assert_true(mk_web_in_maintenance(c.status_page, "db", t10 + 7199999));
    assert_false(mk_web_in_maintenance(c.status_page, "db", t10 + 7200000)); /* end excluded */
    assert_false(mk_web_in_maintenance(c.status_page, "db", t10 - 1));
    assert_false(mk_web_in_maintenance(c.status_page, "api", t10 + 1));
    assert_false(mk_web_in_maintenance(NULL, "db", t10 + 1));
    assert_true(mk_web_is_public(c.status_page, "api"));
    assert_true(mk_web_is_public(c.status_page, "web"));
    assert_false(mk_web_is_public(c.status_page, "db"));
    mk_config_free(&c);
    free(errs);

    /* errors, each at its hand-counted line:column */
    const char *bad = "status_page:\n"                                     /* 1 */
                      "  title: [x]\n"                                     /* 2: col 10 */
                      "  colour: red\n"                                    /* 3: col 3 */
                      "  maintenance:\n"                                   /* 4 */
                      "    - {name: m, start: yesterday, end: 1764669600}\n" /* 5: col 24 */
                      "    - {name: m2, start: 1764669600, end: 1764669000}\n" /* 6: col 7 */
                      "  services:\n"                                      /* 7 */
                      "    - {name: s}\n"                                  /* 8: col 7 */
                      "  public: maybe\n"                                  /* 9: col 11 */
                      "  groups: [{name: G, services: [nope]}]\n";         /* 10: col 12 */
    errs = NULL;
    n = parse(&c, bad, &errs);
    print_message("%s", errs ? errs : "");
    assert_int_equal(n, 7);
    assert_non_null(strstr(errs, "10:12: status_page.groups: 'G' names service 'nope'"));
    assert_non_null(strstr(errs, "2:10: status_page.title"));
    assert_non_null(strstr(errs, "3:3: status_page: unknown key 'colour'"));
    assert_non_null(strstr(errs, "5:24: status_page.maintenance.start: 'yesterday'"));
    assert_non_null(strstr(errs, "6:7: status_page.maintenance: 'm2' ends before it starts"));
    assert_non_null(strstr(errs, "8:7: status_page.services: entry needs 'name' and 'measurement'"));
    assert_non_null(strstr(errs, "9:11: status_page.public"));
    mk_config_free(&c);
    free(errs);
}

static void test_public_mode(void **state)
{
    (void)state;
    char *dir = mk_test_dir("web_public");
    mk_db *db = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, NULL, &db, &d), MK_OK);
    const char *y = "monitors:\n"
                    "  - {name: pub, kind: kuma, token: t1}\n"
                    "  - {name: secret-db, kind: kuma, token: t2}\n"
                    "status_page:\n"
                    "  public: [pub]\n"
                    "  groups: [{name: G, monitors: [pub, secret-db]}, {name: Hidden, monitors: [secret-db]}]\n"
                    "  maintenance: [{name: w, start: 1764669600, end: 1764673200, monitors: [secret-db]}]\n";
    mk_config c;
    char *errs = NULL;
    assert_int_equal(parse(&c, y, &errs), 0);
    for (int is_pub = 0; is_pub <= 1; is_pub++) {
        json_t *doc = mk_web_status_json(db, &c, NULL, is_pub, NOW_MS);
        char *txt = json_dumps(doc, JSON_COMPACT);
        assert_non_null(strstr(txt, "\"pub\""));
        if (is_pub) {
            assert_null(strstr(txt, "secret-db"));
            assert_null(strstr(txt, "Hidden"));
            assert_int_equal(json_array_size(json_object_get(doc, "monitors")), 1);
        } else {
            assert_non_null(strstr(txt, "secret-db"));
            assert_int_equal(json_array_size(json_object_get(doc, "monitors")), 2);
            json_t *m = json_array_get(json_object_get(doc, "monitors"), 0);
            assert_string_equal(json_string_value(json_object_get(m, "state")), "NO DATA");
            assert_string_equal(json_string_value(json_object_get(m, "days")),
                                "NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN");
        }
        free(txt);
        json_decref(doc);
    }
    mk_config_free(&c);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_badge(void **state)
{
    (void)state;
    char *s = mk_web_badge_svg("uptime 30d", "99.95%", "#2e7d32");
    assert_non_null(s);
    assert_true(strncmp(s, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) == 0);
    assert_non_null(strstr(s, "<title>uptime 30d: 99.95%</title>"));
    assert_non_null(strstr(s, "fill=\"#2e7d32\""));
    assert_non_null(strstr(s, "</svg>"));
    free(s);
    s = mk_web_badge_svg("a<b>&\"c'", "x", "#555555");
    assert_non_null(strstr(s, "a&lt;b&gt;&amp;&quot;c&#39;"));
    assert_null(strstr(s, "a<b"));
    /* the width grows with the text */
    int w1, w2;
    char *s2 = mk_web_badge_svg("a<b>&\"c'", "a much longer message", "#555555");
    assert_int_equal(sscanf(strstr(s, "width=\""), "width=\"%d", &w1), 1);
    assert_int_equal(sscanf(strstr(s2, "width=\""), "width=\"%d", &w2), 1);
    assert_true(w2 > w1 + 50);
    free(s);
    free(s2);
    assert_string_equal(mk_web_state_name(MK_WEB_NODATA), "NO DATA");
    assert_string_equal(mk_web_state_name(MK_WEB_DOWN), "DOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days_vs_brute_force), cmocka_unit_test(test_incident_days),
        cmocka_unit_test(test_config), cmocka_unit_test(test_public_mode), cmocka_unit_test(test_badge)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tests/unit/test_cron.c — cron schedules and time zones (detect/cron.c).
 *
 * References: UTC instants worked out by hand from the published Europe/
 * Berlin rules (2026: clocks go forward at 01:00 UTC on 29 March, back at
 * 01:00 UTC on 25 October), converted with libc's timegm; and libc's own
 * localtime_r with TZ=Europe/Berlin as a brute-force reference for offsets
 * and for wildcard schedules (which run by real time).
 */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"

static int64_t utc_ms(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return (int64_t)timegm(&tm) * 1000;
}

static mk_cron cron(const char *s)
{
    mk_cron c;
    mk_diag d = {0};
    mk_err err = mk_cron_parse(s, &c, &d);
    if (err) fprintf(stderr, "%s\n", d.msg);
    assert_int_equal(err, MK_OK);
    return c;
}

static mk_cron_tz *berlin(void)
{
    mk_cron_tz *tz = NULL;
    mk_diag d = {0};
    mk_err err = mk_cron_tz_load("Europe/Berlin", &tz, &d);
    if (err) fprintf(stderr, "%s\n", d.msg);
    assert_int_equal(err, MK_OK);
    return tz;
}

static void test_utc_basics(void **state)
{
    (void)state;
    mk_cron c = cron("*/5 * * * *");
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 5, 1, 12, 3) + 10000), utc_ms(2026, 5, 1, 12, 5));
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 5, 1, 12, 5)), utc_ms(2026, 5, 1, 12, 10));
    c = cron("@daily");
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 12, 31, 23, 59)), utc_ms(2027, 1, 1, 0, 0));
    c = cron("0 0 1 1 *");
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 1, 1, 0, 0)), utc_ms(2027, 1, 1, 0, 0));
    c = cron("0 0 29 2 *"); /* next leap day */
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 3, 1, 0, 0)), utc_ms(2028, 2, 29, 0, 0));
    c = cron("0 0 30 2 *");
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 3, 1, 0, 0)), -1);
    /* Day of month OR day of week when both are restricted: 13th or Friday.
     * 2026-02-06 is a Friday, 2026-02-13 a Friday too, 2026-03-13 a Friday. */
    c = cron("0 0 13 * 5");
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 2, 1, 0, 0)), utc_ms(2026, 2, 6, 0, 0));
    c = cron("0 0 10 * mon"); /* 2026-02-02 is a Monday */
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 2, 1, 0, 0)), utc_ms(2026, 2, 2, 0, 0));
    c = cron("15,45 8-9 * jan-mar sun"); /* 2026-01-04 is a Sunday */
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 1, 1, 0, 0)), utc_ms(2026, 1, 4, 8, 15));
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 1, 4, 9, 45)), utc_ms(2026, 1, 11, 8, 15));
    c = cron("0 0 * * 7"); /* 7 is Sunday too */
    assert_int_equal(mk_cron_next_ms(&c, NULL, utc_ms(2026, 1, 1, 0, 0)), utc_ms(2026, 1, 4, 0, 0));
}

static void test_parse_errors(void **state)
{
    (void)state;
    mk_cron c;
    mk_diag d = {0};
    assert_int_equal(mk_cron_parse("61 * * * *", &c, &d), MK_EPARSE);
    assert_non_null(strstr(d.msg, "minute value out of range 0-59 at column 1"));
    assert_int_equal(mk_cron_parse("* * *", &c, &d), MK_EPARSE);
    assert_non_null(strstr(d.msg, "month field missing"));
    assert_int_equal(mk_cron_parse("* * * * * *", &c, &d), MK_EPARSE);
    assert_non_null(strstr(d.msg, "more than 5 fields (column 11)"));
    assert_int_equal(mk_cron_parse("*/0 * * * *", &c, &d), MK_EPARSE);
    assert_int_equal(mk_cron_parse("0 0 * foo *", &c, &d), MK_EPARSE);
    assert_non_null(strstr(d.msg, "month field at column 7"));
    assert_int_equal(mk_cron_parse("@sometimes", &c, &d), MK_EPARSE);
    assert_int_equal(mk_cron_parse("5-1 * * * *", &c, &d), MK_EPARSE);
    mk_cron_tz *tz = NULL;
    assert_int_equal(mk_cron_tz_load("Mars/Olympus_Mons", &tz, &d), MK_ENOTFOUND);
    assert_int_equal(mk_cron_tz_load("../etc/passwd", &tz, &d), MK_EINVAL);
    assert_null(tz);
}

/* Spring forward, Berlin 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC. */
static void test_dst_spring_forward(void **state)
{
    (void)state;
    mk_cron_tz *tz = berlin();
    /* Fixed-time job in the skipped hour: runs once, at the jump. */
    mk_cron c = cron("30 2 * * *");
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 3, 27, 12, 0)), utc_ms(2026, 3, 28, 1, 30)); /* CET */
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 3, 28, 12, 0)), utc_ms(2026, 3, 29, 1, 0));  /* the jump */
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 3, 29, 1, 0)), utc_ms(2026, 3, 30, 0, 30));  /* CEST */
    /* A fixed job outside the gap just moves one hour in UTC. */
    c = cron("0 9 * * 1-5"); /* Fri 27 March -> Mon 30 March */
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 3, 27, 10, 0)), utc_ms(2026, 3, 30, 7, 0));
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 3, 26, 10, 0)), utc_ms(2026, 3, 27, 8, 0));
    /* Wildcard job: the skipped minutes do not exist; real time goes on. */
    c = cron("*/30 * * * *");
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 3, 29, 0, 30)), utc_ms(2026, 3, 29, 1, 0));
    c = cron("15 * * * *");
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 3, 29, 0, 15)), utc_ms(2026, 3, 29, 1, 15)); /* 03:15 CEST */
    mk_cron_tz_free(tz);
}

/* Fall back, Berlin 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC. */
static void test_dst_fall_back(void **state)
{
    (void)state;
    mk_cron_tz *tz = berlin();
    mk_cron c = cron("30 2 * * *"); /* fixed: only the first 02:30 */
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 10, 24, 12, 0)), utc_ms(2026, 10, 25, 0, 30));
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 10, 25, 0, 30)), utc_ms(2026, 10, 26, 1, 30));
    c = cron("*/30 * * * *"); /* wildcard: both 02:00 and both 02:30 */
    int64_t want[] = {utc_ms(2026, 10, 25, 0, 30), utc_ms(2026, 10, 25, 1, 0), utc_ms(2026, 10, 25, 1, 30),
                      utc_ms(2026, 10, 25, 2, 0)};
    int64_t t = utc_ms(2026, 10, 25, 0, 0);
    for (int i = 0; i < 4; i++) {
        t = mk_cron_next_ms(&c, tz, t);
        assert_int_equal(t, want[i]);
    }
    c = cron("0 12 * * *"); /* midday: 10:00 UTC in summer, 11:00 UTC after */
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 10, 24, 12, 0)), utc_ms(2026, 10, 25, 11, 0));
    assert_int_equal(mk_cron_next_ms(&c, tz, utc_ms(2026, 10, 23, 12, 0)), utc_ms(2026, 10, 24, 10, 0));
    mk_cron_tz_free(tz);
}

/* Offsets against libc over 1970..2069 (past the file's last transition,
 * where the footer rule takes over), every 5 hours and 7 minutes. */
static void test_offsets_match_libc(void **state)
{
    (void)state;
    mk_cron_tz *tz = berlin();
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    int64_t n = 0;
    for (int64_t t = 0; t < 3155760000LL; t += 5 * 3600 + 7 * 60) {
        time_t tt = (time_t)t;
        struct tm tm;
        localtime_r(&tt, &tm);
        if (mk_cron_tz_offset_s(tz, t) != (int32_t)tm.tm_gmtoff)
            fail_msg("offset at %" PRId64 ": ours %d, libc %ld", t, mk_cron_tz_offset_s(tz, t), tm.tm_gmtoff);
        n++;
    }
    assert_true(n > 100000);
    /* The POSIX rule alone gives the same answers from 2000 on. */
    mk_cron_tz *rule = NULL;
    assert_int_equal(mk_cron_tz_posix("CET-1CEST,M3.5.0,M10.5.0/3", &rule, NULL), MK_OK);
    for (int64_t t = 946684800; t < 3155760000LL; t += 3 * 3600 + 11 * 60)
        assert_int_equal(mk_cron_tz_offset_s(rule, t), mk_cron_tz_offset_s(tz, t));
    mk_cron_tz_free(rule);
    mk_cron_tz_free(tz);
}

/* Wildcard schedules run by real time: the next run is the first UTC minute
 * after `after` whose Berlin wall clock (libc) matches the fields. Checked
 * at fixed-seed random times around both 2026 changes and elsewhere. */
static void test_wildcard_vs_brute_force(void **state)
{
    (void)state;
    mk_cron_tz *tz = berlin();
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    const char *exprs[] = {"*/7 * * * *", "* 2 * * *", "*/20 1-3 * * 0", "5 * 29 3 *"};
    int n_check = 0;
    mk_rng rng = {20261025};
    printf("seed 20261025\n");
    int64_t bases[] = {utc_ms(2026, 3, 28, 20, 0), utc_ms(2026, 10, 24, 20, 0), utc_ms(2026, 6, 1, 0, 0)};
    for (size_t e = 0; e < 4; e++) {
        mk_cron c = cron(exprs[e]);
        for (int k = 0; k < 60; k++) {
            int64_t after = bases[k % 3] + (int64_t)mk_rng_below(&rng, 10 * 3600) * 1000;
            int64_t got = mk_cron_next_ms(&c, tz, after);
            /* brute force */
            int64_t m = (after / 60000 + 1) * 60000, want = -1;
            for (int i = 0; i < 400 * 24 * 60 && want < 0; i++, m += 60000) {
                time_t tt = (time_t)(m / 1000);
                struct tm tm;
                localtime_r(&tt, &tm);
                if ((c.minutes >> tm.tm_min & 1) && (c.hours >> tm.tm_hour & 1) && (c.months >> (tm.tm_mon + 1) & 1) &&
                    (c.is_dom_star || (c.days >> tm.tm_mday & 1)) && (c.is_dow_star || (c.weekdays >> tm.tm_wday & 1)))
                    want = m;
            }
            if (got != want) fail_msg("%s after %" PRId64 ": got %" PRId64 ", want %" PRId64, exprs[e], after, got, want);
            n_check++;
        }
    }
    assert_int_equal(n_check, 240);
    mk_cron_tz_free(tz);
}

/* TZif parsing refuses damaged input with a reason. */
static void test_tzif_damage(void **state)
{
    (void)state;
    mk_cron_tz *tz = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_cron_tz_parse((const uint8_t *)"TZif2", 5, "x", &tz, &d), MK_EPARSE);
    assert_null(tz);
    FILE *f = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
    assert_non_null(f);
    uint8_t buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t cut = 0; cut < n; cut += 7) { /* every prefix parses or fails cleanly */
        mk_err err = mk_cron_tz_parse(buf, cut, "Europe/Berlin", &tz, &d);
        if (!err) mk_cron_tz_free(tz);
        tz = NULL;
    }
    assert_int_equal(mk_cron_tz_parse(buf, n, "Europe/Berlin", &tz, &d), MK_OK);
    mk_cron_tz_free(tz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utc_basics),          cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_dst_spring_forward),  cmocka_unit_test(test_dst_fall_back),
        cmocka_unit_test(test_offsets_match_libc),  cmocka_unit_test(test_wildcard_vs_brute_force),
        cmocka_unit_test(test_tzif_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

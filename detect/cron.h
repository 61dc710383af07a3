/*
 * detect/cron.h — cron schedules in a time zone, for heartbeat rules that
 * expect a ping "by a cron schedule" as Healthchecks.io does.
 *
 * Time zones are read from the system's TZif files (/usr/share/zoneinfo, or
 * $TZDIR) by our own parser, not through localtime_r: that needs the global
 * TZ variable, which is shared by every thread of the server. Past the last
 * transition in the file, the POSIX TZ rule in its footer is used.
 *
 * Schedule syntax: five fields "minute hour day-of-month month day-of-week"
 * with *, lists (1,5), ranges (1-5), steps (*\/15, 0-30/10), month and day
 * names (jan, mon), 0 or 7 for Sunday; or @hourly, @daily (@midnight),
 * @weekly, @monthly, @yearly (@annually). When both day fields are
 * restricted a day matching either one matches (as in Vixie cron).
 *
 * Daylight saving time follows Debian cron (and Healthchecks' cronsim):
 *  - a fixed-time job (neither minute nor hour field starts with '*') whose
 *    time falls in the hour skipped in spring runs once, at the instant the
 *    clocks jump; in the hour repeated in autumn it runs once, the first time;
 *  - a wildcard job runs by real time: skipped minutes do not exist, repeated
 *    minutes run twice.
 */
#ifndef MK_CRON_H
#define MK_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/error.h"

typedef struct mk_cron {
    uint64_t minutes;   /* bit m: minute m (0..59) */
    uint32_t hours;     /* bit h (0..23) */
    uint32_t days;      /* bit d (1..31) */
    uint16_t months;    /* bit m (1..12) */
    uint8_t weekdays;   /* bit d (0 = Sunday .. 6) */
    int is_dom_star;    /* day-of-month field was '*' */
    int is_dow_star;
    int is_wildcard;    /* minute or hour field starts with '*' (DST rule above) */
} mk_cron;

/* Parses expr; MK_EPARSE with the field and column in diag. */
mk_err mk_cron_parse(const char *expr, mk_cron *out, mk_diag *diag);

typedef struct mk_cron_tz mk_cron_tz;

/* Loads zone `name` ("Europe/Berlin", "UTC") from $TZDIR or
 * /usr/share/zoneinfo. Free with mk_cron_tz_free. MK_ENOTFOUND for an
 * unknown zone, MK_EPARSE for a file that is not TZif. */
mk_err mk_cron_tz_load(const char *name, mk_cron_tz **out, mk_diag *diag);

/* Parses TZif bytes (data borrowed for the call only). */
mk_err mk_cron_tz_parse(const uint8_t *data, size_t n, const char *name, mk_cron_tz **out,
                        mk_diag *diag);

/* Parses a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3". */
mk_err mk_cron_tz_posix(const char *spec, mk_cron_tz **out, mk_diag *diag);

void mk_cron_tz_free(mk_cron_tz *tz);

/* Seconds east of UTC in force at utc_s; tz NULL = UTC. */
int32_t mk_cron_tz_offset_s(const mk_cron_tz *tz, int64_t utc_s);

/* The first scheduled instant strictly after after_ms (UTC ms, whole
 * minutes), or -1 if there is none in the next 5 years (e.g. "0 0 30 2 *"). */
int64_t mk_cron_next_ms(const mk_cron *c, const mk_cron_tz *tz, int64_t after_ms);

#endif

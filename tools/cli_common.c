/* tools/cli_common.c — helpers shared by the sub-commands (cli.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/util.h"
#include "tools/cli.h"

void mk_cli_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "meerkat: %s: %s\n", level == MK_LOG_ERROR ? "error" : level == MK_LOG_WARN ? "warning" : "info", msg);
}

int mk_cli_parse_precision(const char *s, mk_precision *p)
{
    if (strcmp(s, "s") == 0) *p = MK_PRECISION_S;
    else if (strcmp(s, "ms") == 0) *p = MK_PRECISION_MS;
    else if (strcmp(s, "us") == 0 || strcmp(s, "u") == 0) *p = MK_PRECISION_US;
    else if (strcmp(s, "ns") == 0 || strcmp(s, "n") == 0) *p = MK_PRECISION_NS;
    else return -1;
    return 0;
}


int mk_cli_parse_time(const char *s, int64_t *ms)
{
    if (!s || !*s) return -1;
    int y, mo, d, h, mi, se, n = 0;
    if (strlen(s) >= 19 && s[4] == '-' &&
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) == 6) {
        const char *p = s + n;
        int64_t frac_ms = 0;
        if (*p == '.') {
            p++;
            int digits = 0;
            while (isdigit((unsigned char)*p)) {
                if (digits < 3) frac_ms = frac_ms * 10 + (*p - '0');
                digits++;
                p++;
            }
            for (; digits < 3; digits++) frac_ms *= 10;
        }
        int64_t off_s = 0;
        if (*p == 'Z' || *p == 'z') p++;
        else if (*p == '+' || *p == '-') {
            int oh, om;
            if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2) return -1;
            off_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
            p += 6;
        } else return -1;
        if (*p) return -1;
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return -1;
        int64_t secs = mk_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off_s;
        *ms = secs * 1000 + frac_ms;
        return 0;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s) return -1;
    int64_t mul = 1, div = 1;
    if (!*end || strcmp(end, "ms") == 0) {}
    else if (strcmp(end, "s") == 0) mul = 1000;
    else if (strcmp(end, "us") == 0) div = 1000;
    else if (strcmp(end, "ns") == 0) div = 1000000;
    else return -1;
    if (mul > 1 && (v > INT64_MAX / mul || v < INT64_MIN / mul)) return -1;
    int64_t t = (int64_t)v * mul;
    *ms = t / div - ((t % div != 0) && (t < 0)); /* rounds down */
    return 0;
}

struct mk_db *mk_cli_open_read_only(const char *cmd, const char *dir)
{
    mk_options o;
    mk_options_init(&o);
    o.is_read_only = 1;
    o.log = mk_cli_log;
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(dir, &o, &db, &d)) {
        fprintf(stderr, "meerkat %s: cannot open %s: %s\n", cmd, dir, d.msg);
        return NULL;
    }
    return db;
}

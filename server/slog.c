/*
 * server/slog.c — structured logging (see slog.h).
 */
#include "slog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *level_name(int level)
{
    return level == MK_SLOG_ERROR ? "error" : level == MK_SLOG_WARN ? "warn" : "info";
}

/* Appends v to buf at *o (cap bytes), quoted when needed. */
static void put_value(char *buf, size_t cap, size_t *o, const char *v)
{
    int needs_quote = *v == '\0' || strpbrk(v, " \"=\t\n\\") != NULL;
    if (needs_quote && *o < cap) buf[(*o)++] = '"';
    for (; *v && *o + 3 < cap; v++) {
        if (*v == '"' || *v == '\\') {
            buf[(*o)++] = '\\';
            buf[(*o)++] = *v;
        } else if (*v == '\n') {
            buf[(*o)++] = '\\';
            buf[(*o)++] = 'n';
        } else {
            buf[(*o)++] = *v;
        }
    }
    if (needs_quote && *o < cap) buf[(*o)++] = '"';
}

void mk_slog(int level, const char *msg, ...)
{
    char buf[4096];
    size_t cap = sizeof buf - 2, o = 0;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    o += (size_t)snprintf(buf, cap, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=",
                          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec, ts.tv_nsec / 1000000, level_name(level));
    buf[o++] = '"';
    for (const char *m = msg; *m && o + 3 < cap; m++) {
        if (*m == '"' || *m == '\\') buf[o++] = '\\';
        buf[o++] = *m == '\n' ? ' ' : *m;
    }
    buf[o++] = '"';
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        if (!v) break;
        if (o + strlen(k) + 4 >= cap) break;
        buf[o++] = ' ';
        memcpy(buf + o, k, strlen(k));
        o += strlen(k);
        buf[o++] = '=';
        put_value(buf, cap, &o, v);
    }
    va_end(ap);
    buf[o++] = '\n';
    ssize_t w = write(2, buf, o);
    (void)w;
}

void mk_slog_engine(void *ctx, int level, const char *msg)
{
    (void)ctx;
    mk_slog(level, msg, "component", "engine", (const char *)NULL);
}

/*
 * server/slog.h — structured log lines on stderr, one per event:
 *   ts=2026-12-01T23:10:00.123Z level=info msg="listening" addr=127.0.0.1:8086
 * Values with spaces, quotes or `=` are quoted with \" and \\ escaped, so
 * every line splits unambiguously into key=value pairs. Thread-safe: one
 * write(2) per line.
 */
#ifndef MK_SLOG_H
#define MK_SLOG_H

enum { MK_SLOG_ERROR = 0, MK_SLOG_WARN = 1, MK_SLOG_INFO = 2 };

/*
 * Logs msg with pairs given as alternating key, value strings ending with
 * NULL: mk_slog(MK_SLOG_INFO, "listening", "addr", a, NULL). A NULL value
 * for a key ends the list too.
 */
void mk_slog(int level, const char *msg, ...) __attribute__((sentinel));

/* An mk_options.log sink for the engine's own warnings. */
void mk_slog_engine(void *ctx, int level, const char *msg);

#endif

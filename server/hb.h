/*
 * server/hb.h — the pure parts of the heartbeat APIs: which heartbeat a URL
 * path names, Uptime Kuma's push parameters and Kener's JSON body. No I/O,
 * no global state; fuzzed by tests/fuzz/fuzz_server_hb.c.
 *
 * A heartbeat is stored as the sample `heartbeat,monitor=<name>
 * status=<1|0.5|0>[,latency_ms=<x>][,duration_ms=<x>]` (see server.c).
 */
#ifndef MK_HB_H
#define MK_HB_H

#include <stddef.h>
#include <stdint.h>

typedef enum mk_hb_kind {
    MK_HB_NONE = 0,
    MK_HB_KUMA,   /* /api/push/<token> */
    MK_HB_HC,     /* /hc/<uuid>[/start|/fail|/log|/<exit status>] */
    MK_HB_KENER,  /* /api/status */
    MK_HB_KENER_BEAT /* Kener heartbeat monitor: /api/heartbeat/<tag>:<secret> (v3),
                        /ext/heartbeat/<tag>/<secret> (v4) */
} mk_hb_kind;

typedef enum mk_hc_action {
    MK_HC_SUCCESS = 0, /* /hc/<uuid> or exit status 0 */
    MK_HC_START,
    MK_HC_FAIL,        /* /fail or a non-zero exit status */
    MK_HC_LOG
} mk_hc_action;

enum { MK_HB_TOKEN_MAX = 128 };

typedef struct mk_hb_route {
    mk_hb_kind kind;
    char token[MK_HB_TOKEN_MAX + 1]; /* Kuma token, Healthchecks uuid or Kener tag */
    char secret[MK_HB_TOKEN_MAX + 1]; /* Kener heartbeat secret */
    mk_hc_action action;
    int exit_status;                 /* MK_HC_*: 0 or the /<n> given (0..255) */
} mk_hb_route;

/*
 * Classifies a request path (already stripped of its query string). Returns
 * 1 and fills *r when it names a heartbeat API, 0 when it does not, and -1
 * when it is under a heartbeat prefix but malformed (bad token characters,
 * exit status out of 0..255, extra segments): the caller answers 404 as the
 * originals do for unknown checks.
 */
int mk_hb_route_parse(const char *path, mk_hb_route *r);

/* Status values stored in the `status` field. */
#define MK_HB_UP 1.0
#define MK_HB_DEGRADED 0.5
#define MK_HB_DOWN 0.0

/*
 * Uptime Kuma push parameters (each may be NULL): status "up" is up and
 * anything else down (default up); ping is optional milliseconds in
 * 0..1e11. On success returns 0 with *status and *ping_ms (NaN when absent);
 * -1 with a Kuma-style message in err otherwise.
 */
int mk_hb_kuma_params(const char *status, const char *ping, double *status_out, double *ping_ms,
                      char *err, size_t err_cap);

typedef struct mk_hb_kener {
    double status;      /* MK_HB_UP, _DEGRADED or _DOWN */
    double latency;     /* as sent (Kener's UI treats it as milliseconds) */
    int64_t ts_s;       /* timestampInSeconds snapped to its minute, or now's minute */
    char tag[MK_HB_TOKEN_MAX + 1];
} mk_hb_kener;

/*
 * Parses Kener's POST /api/status body {"status","latency",
 * "timestampInSeconds","tag"} as Kener 3 validates it: now_s is the current
 * time; a timestamp in the future or more than 90 days old is refused.
 * Returns 0, or -1 with Kener's error text in err.
 */
int mk_hb_kener_parse(const char *body, size_t n, int64_t now_s, mk_hb_kener *out, char *err,
                      size_t err_cap);

#endif

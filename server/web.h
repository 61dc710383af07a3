/*
 * server/web.h — the status page and dashboards served by `meerkat serve`:
 * the front-end files built from web/ and embedded at build time
 * (web_assets.c, generated), the JSON they read that no other route gives
 * (GET /api/status-page), SVG badges for READMEs, and the `status_page:`
 * configuration section (title, groups, services, public entries,
 * maintenance windows).
 *
 * Routes (all GET or HEAD; everything else is left to server.c):
 *   /, /index.html, /assets/<file>     embedded files: Content-Type, strong
 *                                      ETag (If-None-Match → 304), gzip when
 *                                      the client accepts it, Cache-Control
 *   /api/status-page                   monitors and services with their state
 *                                      now and 90 daily cells, open and recent
 *                                      incidents, maintenance windows, groups
 *   /api/anomaly?service=S&from=MS&to=MS&step=5m
 *                                      the anomaly detector's score of each
 *                                      chart bucket of service S (qps, p95,
 *                                      errors), for the service view's band
 *   /badge/<monitor>/status.svg        "status | up" badge
 *   /badge/<monitor>/uptime.svg        "uptime 30d | 99.95%" badge
 * (`/api/status` is Kener's heartbeat API, so the page's JSON lives at
 * /api/status-page.)
 *
 * Public read-only mode: when API keys are configured, a request without a
 * valid key sees only the monitors and services the section marks public
 * (and only incidents about them); the page and its assets are always open.
 *
 * Daily cells (UTC days): a monitor's day is the worst of its beats' status
 * that day and of the heartbeat-rule incidents overlapping it (a critical
 * one counts as DOWN, a warning as DEGRADED); its uptime is the share of
 * beats that were UP or DEGRADED (as Kener counts), times the share of the
 * day not covered by DOWN incidents. A day with neither beats nor incidents
 * is NO DATA.
 *
 * Thread rules: every function may be called from any thread; the parsed
 * configuration is immutable once parsing returned, except for a one-second
 * cache of the /api/status-page documents kept in it (under its own mutex).
 */
#ifndef MK_WEB_H
#define MK_WEB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "meerkat/db.h"

struct MHD_Connection;
struct mk_config;
struct mk_alerts;

/* The parsed `status_page:` section. Opaque; free with mk_web_config_free. */
typedef struct mk_web_config mk_web_config;

/*
 * Parses the `status_page:` node n of document d. On return *out is the
 * parsed section (owned by the caller, even when there were problems: the
 * entries that were valid) and *errs a malloc'ed "LINE:COL: message\n" per
 * problem (NULL when none; caller frees). Returns the number of problems.
 */
int mk_web_config_parse(yaml_document_t *d, const yaml_node_t *n, mk_web_config **out, char **errs);
void mk_web_config_free(mk_web_config *wc); /* accepts NULL */

/*
 * 1 when a maintenance window of wc names monitor (or names no monitors,
 * i.e. covers everything) and holds now_ms (start <= now < end). wc may be
 * NULL (no section: 0). For the alert sender, so maintenance silences
 * notifications.
 */
int mk_web_in_maintenance(const mk_web_config *wc, const char *monitor, int64_t now_ms);

/* 1 when an anonymous visitor (keys configured, none presented) may see
 * entry `name`, a monitor or a service: the section's `public: true` or a
 * `public` list naming it. Without a section (wc NULL) nothing is public. */
int mk_web_is_public(const mk_web_config *wc, const char *name);

/* ---- pure parts, tested by tests/unit/test_web.c --------------------- */

enum { MK_WEB_DAYS = 90 };
#define MK_WEB_DAY_MS 86400000LL

/* States, best to worst, as the page shows them. */
typedef enum mk_web_state {
    MK_WEB_NODATA = 0,
    MK_WEB_UP = 1,
    MK_WEB_DEGRADED = 2,
    MK_WEB_DOWN = 3
} mk_web_state;

const char *mk_web_state_name(mk_web_state s); /* "UP", "DEGRADED", "DOWN", "NO DATA" */

/* One UTC day of a monitor. */
typedef struct mk_web_day {
    uint32_t n_beats, n_up;   /* beats that day; UP or DEGRADED ones */
    double worst;             /* lowest status seen (1, 0.5, 0); 2 = no beat */
    int64_t down_ms;          /* time covered by DOWN incidents (union) */
    int n_incidents;          /* incidents overlapping the day */
    int incident_level;       /* worst incident: 0 none, 1 degraded, 2 down */
} mk_web_day;

/*
 * Accumulates the heartbeat samples ts_ms[i], status[i] (any order) into
 * days[0..MK_WEB_DAYS), day k covering [first_day_ms + k*DAY, +DAY);
 * samples outside are ignored. days must be zeroed with worst = 2 first
 * (mk_web_days_init).
 */
void mk_web_days_init(mk_web_day *days);
void mk_web_days_add_beats(mk_web_day *days, int64_t first_day_ms, const int64_t *ts_ms,
                           const double *status, size_t n);
/* Adds an incident spanning [start_ms, end_ms) (end_ms = now for an open
 * one) at level 1 (degraded) or 2 (down): every day it touches counts it;
 * DOWN spans add to down_ms as a union with the earlier ones, so callers
 * add spans in ascending start order and keep *covered_to (start it at
 * INT64_MIN) between calls. */
void mk_web_days_add_incident(mk_web_day *days, int64_t first_day_ms, int64_t start_ms, int64_t end_ms,
                              int level, int64_t *covered_to);
/* A day's state and uptime in percent (NaN when NO DATA). day_len_ms is the
 * part of the day that has passed (DAY for past days). */
mk_web_state mk_web_day_state(const mk_web_day *d);
double mk_web_day_uptime(const mk_web_day *d, int64_t day_len_ms);

/*
 * Renders a two-part badge ("label | message") as SVG into a malloc'ed,
 * NUL-terminated string (NULL on OOM). colour is "#rrggbb"; both texts are
 * XML-escaped and also put in the <title> and aria-label.
 */
char *mk_web_badge_svg(const char *label, const char *message, const char *colour);

/* ---- serving -------------------------------------------------------- */

/* Whether an Accept-Encoding header value (NULL = absent) accepts gzip:
 * "gzip"/"x-gzip" with q > 0, else "*" with q > 0 (RFC 9110 12.5.3). */
int mk_web_accepts_gzip(const char *accept_encoding);

/*
 * Serves the request when its path is one of the routes above and the
 * method is GET or HEAD: queues exactly one response on c, stores its
 * status in *code and returns 1 (then *result is what the access handler
 * returns). Returns 0 and queues nothing for any other request. uri is the
 * raw request target (with its query string); db, cfg and alerts are
 * borrowed (alerts may be NULL).
 */
int mk_web_handle(struct MHD_Connection *c, mk_db *db, const struct mk_config *cfg,
                  struct mk_alerts *alerts, const char *method, const char *uri, int *code, int *result);

/*
 * The /api/status-page document (owned by the caller; NULL on OOM).
 * is_public_only: filter to what wc marks public. now_ms: the current time.
 */
json_t *mk_web_status_json(mk_db *db, const struct mk_config *cfg, struct mk_alerts *alerts,
                           int is_public_only, int64_t now_ms);

/* The embedded files (web_assets.c, generated from web/dist at build time,
 * or an empty table when the UI was not built). */
typedef struct mk_web_asset {
    const char *path;          /* "/index.html", "/assets/app.js" */
    const char *content_type;
    const unsigned char *gz;   /* gzip-compressed bytes */
    size_t n_gz;
    size_t n_raw;              /* size once inflated */
    const char *etag;          /* "\"<hash>\"" of the raw bytes */
} mk_web_asset;
extern const mk_web_asset mk_web_assets[];
extern const size_t mk_web_n_assets;

#endif

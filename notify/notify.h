/*
 * notify/notify.h — notification delivery: channels, routes, grouping,
 * inhibition, retries, fallback, escalation and the delivery log, draining
 * the incident store's durable outbox (detect/incident.h).
 *
 * Pipeline (one record of the outbox, seq S, fingerprint F):
 *
 *   outbox --ingest--> alert(S,F) --route--> group(route, group_by values)
 *        |                                     |  group_wait / group_interval
 *        |                                     v
 *        |        silenced? inhibited? --> dropped from the message (logged)
 *        |                                     v
 *        |                 message(group, channel) --send--> ok | failed
 *        |                     failed: backoff (exp. + jitter), after
 *        |                     max_attempts the route's next fallback channel,
 *        |                     after the last one "gave_up" (logged)
 *        +--<-- mk_inc_outbox_delivered(S) when every message carrying S is
 *               done (ok or gave up) for every route S matched
 *
 * Invariants: a record leaves the outbox only after every routed channel
 * confirmed it or gave up, so a crash re-sends what was not confirmed
 * (duplicates carry the same fingerprint). The fingerprint is a hash of the
 * rule name and the sorted labels: stable across re-sends and restarts.
 * Repeats (repeat_interval, and the alertmanager channel's resend) and
 * escalation tiers are sent from the in-memory set of firing alerts; they
 * never hold a record in the outbox.
 *
 * Time comes from an mk_env (env->now_ms), so tests drive grouping,
 * backoff and escalation with a fake clock through mk_notify_run_once.
 *
 * Thread rules: every function may be called from any thread, except
 * mk_notify_run_once (only with n_workers = 0, from one thread).
 */
#ifndef MK_NOTIFY_H
#define MK_NOTIFY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "incident.h"
#include "meerkat/error.h"
#include "util.h"

/* ---- configuration (parsed from the YAML sections channels:, routes:,
 * inhibit_rules:, see notify/ncfg.c) ---------------------------------------- */

typedef enum mk_notify_kind {
    MK_NOTIFY_WEBHOOK = 1,      /* Alertmanager webhook payload, version 4 */
    MK_NOTIFY_KENER = 2,        /* one Kener-shaped alert per POST */
    MK_NOTIFY_TEMPLATE = 3,     /* method, headers, body from a template */
    MK_NOTIFY_EMAIL = 4,        /* SMTP through libcurl */
    MK_NOTIFY_COMMAND = 5,      /* argv run without a shell, per alert */
    MK_NOTIFY_ALERTMANAGER = 6  /* POST /api/v2/alerts as Prometheus does */
} mk_notify_kind;

const char *mk_notify_kind_name(mk_notify_kind k); /* "webhook", ... */

typedef enum mk_notify_escape { MK_NOTIFY_ESC_JSON = 0, MK_NOTIFY_ESC_URL = 1, MK_NOTIFY_ESC_NONE = 2 } mk_notify_escape;

typedef struct mk_notify_kv {
    char *key;   /* owned */
    char *value; /* owned */
} mk_notify_kv;

typedef struct mk_notify_channel {
    char *name;                  /* owned; unique */
    mk_notify_kind kind;
    char *url;                   /* owned; webhook, kener, template (a template itself), alertmanager base URL */
    char *method;                /* owned; template: "POST" by default */
    mk_notify_kv *headers;       /* owned; values are templates for kind template */
    size_t n_headers;
    char *body;                  /* owned; template body (from body: or template_file:) */
    mk_notify_escape escape;     /* template: how placeholders are escaped in the body */
    int64_t timeout_ms;          /* per attempt (HTTP, SMTP, command) */
    uint32_t max_attempts;       /* consecutive failures before fallback / give up */
    int64_t backoff_ms, max_backoff_ms;
    uint32_t rate_count;         /* at most rate_count messages per rate_per_ms; 0 = no limit */
    int64_t rate_per_ms;
    /* email */
    char *smtp_url;              /* owned: smtp://host:port or smtps:// */
    int is_starttls;             /* require STARTTLS on smtp:// */
    int is_insecure;             /* skip certificate checks (tests, self-signed) */
    char *username, *password;   /* owned; NULL = no AUTH */
    char *from;                  /* owned */
    char **to;                   /* owned array of owned */
    size_t n_to;
    char *subject;               /* owned template; NULL = default */
    /* command */
    char **argv;                 /* owned array of owned, argv[argc] = NULL */
    size_t argc;
    size_t max_output_bytes;     /* output kept per run */
    /* alertmanager */
    int64_t resend_ms;           /* re-send firing alerts this often */
    char *external_url;          /* owned; generatorURL / externalURL base; NULL = none */
} mk_notify_channel;

typedef struct mk_notify_matcher {
    char *key;                   /* owned; "alertname"/"rule" and "severity" match those */
    char *value;                 /* owned: the value, or the regex without its "~" */
    int is_negated;              /* written "!value" (or "!~regex") */
    void *re;                    /* owned pcre2_code (anchored, whole value) when written "~regex"; else NULL */
} mk_notify_matcher;

typedef struct mk_notify_tier {
    int64_t after_ms;            /* a critical alert firing this long reaches the tier */
    size_t *channels;            /* owned; indexes into mk_notify_config.channels */
    size_t n_channels;
} mk_notify_tier;

typedef struct mk_notify_route {
    mk_notify_matcher *match;    /* owned; all must hold (empty = everything) */
    size_t n_match;
    size_t *channels, n_channels;   /* owned; every one gets each message */
    size_t *fallback, n_fallback;   /* owned; tried in order when a channel gives up */
    mk_notify_tier *tiers;          /* owned; escalation, ascending after_ms */
    size_t n_tiers;
    char **group_by;             /* owned; labels; "..." = every label */
    size_t n_group_by;
    int64_t group_wait_ms, group_interval_ms, repeat_interval_ms;
    int is_continue;             /* also try the following routes */
} mk_notify_route;

typedef struct mk_notify_inhibit {
    mk_notify_matcher *source, *target; /* owned */
    size_t n_source, n_target;
    char **equal;                /* owned; labels that must be equal on both */
    size_t n_equal;
} mk_notify_inhibit;

typedef struct mk_notify_config {
    mk_notify_channel *channels;
    size_t n_channels;
    mk_notify_route *routes;     /* none = one catch-all route to every channel */
    size_t n_routes;
    mk_notify_inhibit *inhibits;
    size_t n_inhibits;
} mk_notify_config;

void mk_notify_config_free(mk_notify_config *c);

/* Error sink of the section parser: line and column are 1-based. */
typedef void (*mk_notify_err_fn)(void *ctx, size_t line, size_t col, const char *msg);

/*
 * Parses one top-level section (name: "channels", "routes" or
 * "inhibit_rules"; node: its value; doc: a libyaml yaml_document_t, passed
 * as void * so this header needs no yaml.h) into c. Every problem goes to
 * err and is counted in the return value; a bad entry is left out. Routes
 * name channels: parse "channels" first, or the names are unknown.
 */
int mk_notify_config_section(mk_notify_config *c, void *doc, const void *node, const char *name,
                             mk_notify_err_fn err, void *err_ctx);

/* Parses the three sections out of a whole YAML config text (the others are
 * ignored). 0 = valid; else problems counted, *errs (malloc'ed,
 * "LINE:COL: message\n" each) says which. c is filled either way. */
int mk_notify_config_parse_text(mk_notify_config *c, const char *text, size_t n, char **errs);

/* Index of the channel named name, or -1. */
long mk_notify_config_channel(const mk_notify_config *c, const char *name);

/* ---- alerts as the notifier sees them ------------------------------------- */

/* Stable fingerprint of an alert: 64-bit hash of rule and sorted labels. */
uint64_t mk_notify_fingerprint(const char *rule, const mk_label *labels, size_t n_labels);

/* Value of label key for a record ("alertname"/"rule" = the rule, "severity"
 * = its severity when not a label); NULL if absent. Borrowed. */
const char *mk_notify_label(const mk_outbox_rec *r, const char *key);

/* 1 when every matcher holds for r ("v" equal, "!v" not equal or absent,
 * "~re" whole-value regex match, "!~re" no match; absent labels are ""
 * for regexes). */
int mk_notify_matches(const mk_notify_matcher *m, size_t n, const mk_outbox_rec *r);

/* Backoff before attempt attempt+1 after attempt failures (attempt >= 1):
 * d = min(max_ms, base_ms * 2^(attempt-1)), result uniformly in [d/2, d]
 * from the xorshift state *rng. */
int64_t mk_notify_backoff_ms(int64_t base_ms, int64_t max_ms, uint32_t attempt, uint64_t *rng);

/* ---- the notifier ------------------------------------------------------------ */

typedef struct mk_notify mk_notify;

/* Silence check (server: mk_alerts_is_silenced): 1 = silenced now. */
typedef int (*mk_notify_silence_fn)(void *ctx, const char *rule, const mk_label *labels, size_t n_labels,
                                    int64_t now_ms);

typedef struct mk_notify_opts {
    mk_env *env;                 /* the clock; NULL = OS; borrowed */
    const char *log_dir;         /* delivery log directory (DATA/notifications); NULL = memory only */
    size_t n_workers;            /* delivery threads; 0 = none: the caller drives mk_notify_run_once */
    size_t log_keep;             /* delivery log entries kept in memory; 0 = 10000 */
    mk_notify_silence_fn is_silenced;
    void *silence_ctx;
    uint64_t seed;               /* jitter; 0 = from the clock */
} mk_notify_opts;

/*
 * Starts delivering the outbox of store (borrowed; must outlive the
 * notifier) with config cfg (moved: *cfg is zeroed and owned by the
 * notifier). Close with mk_notify_close.
 */
mk_err mk_notify_open(mk_inc_store *store, mk_notify_config *cfg, const mk_notify_opts *opts, mk_notify **out,
                      mk_diag *diag);

/* Stops the workers (an attempt in flight finishes or times out), frees.
 * Records not delivered stay in the outbox. Accepts NULL. */
void mk_notify_close(mk_notify *n);

/* New outbox records were written: wake a worker at once. */
void mk_notify_kick(mk_notify *n);

/* Without workers: ingests the outbox, flushes due groups and performs
 * every due attempt now (synchronously). Returns the attempts made. */
size_t mk_notify_run_once(mk_notify *n);

/* GET /api/channels: {"channels": [{name, kind, ...}]} (no secrets). */
json_t *mk_notify_channels_json(mk_notify *n);

/* GET /api/notifications filtered by incident id (0 = any), channel and
 * status (NULL = any); newest first, at most limit (0 = 1000). */
json_t *mk_notify_log_json(mk_notify *n, uint64_t incident_id, const char *channel, const char *status,
                           size_t limit);

/* Appends meerkat_notifications_* counters to a Prometheus exposition. */
void mk_notify_metrics(mk_notify *n, mk_buf *b);

typedef struct mk_notify_stats {
    uint64_t n_sent, n_failed, n_gave_up, n_silenced, n_inhibited, n_delivered_records;
    size_t n_pending_messages;
} mk_notify_stats;
void mk_notify_get_stats(mk_notify *n, mk_notify_stats *st);

/*
 * Sends one test message through channel ch of cfg (borrowed) now, once,
 * without the outbox: status (HTTP code or exit status, 0 for SMTP) and a
 * short description in err/out. Returns 0 when the channel accepted it.
 */
int mk_notify_test(const mk_notify_config *cfg, size_t ch, int *status, char *err, size_t err_cap);

#endif

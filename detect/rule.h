/*
 * detect/rule.h — alert rules: their definition, the YAML `rules:` list
 * they are read from, annotation templates, and the evaluation engine that
 * runs them over the database and feeds the incident state machines
 * (detect/incident.h).
 *
 * Kinds (README "Alert rules" has the YAML of each):
 *   threshold  a reduced value over the window against a limit: "error_rate > 0.05"
 *   dynamic    the value outside mean +- k sigma of the preceding history window
 *   seasonal   the ratio of the value to the same window 1 d or 7 d earlier
 *   anomaly    a detector's score in [0, 1] above a level (score via callback)
 *   heartbeat  no sample (or status DEGRADED / DOWN) within period + grace, or
 *              by a cron schedule in a time zone; DEGRADED and DOWN after
 *              separate delays
 *
 * Templates in annotations: {{ $value }}, {{ $threshold }}, {{ $labels.KEY }},
 * {{ $rule }}, {{ $severity }}, {{ $reason }} (spaces inside the braces are
 * optional). Numbers print with up to 6 significant digits. An unknown
 * placeholder is a configuration error; a label the series lacks renders
 * as the empty string.
 *
 * Thread rules: mk_rule_* functions on distinct rules are independent; the
 * engine serialises its calls with a mutex and may be used from any thread.
 */
#ifndef MK_RULE_H
#define MK_RULE_H

#include <stddef.h>
#include <stdint.h>

#include "cron.h"
#include "env.h"
#include "incident.h"
#include "meerkat/db.h"

typedef enum mk_rule_kind {
    MK_RULE_THRESHOLD = 1,
    MK_RULE_DYNAMIC = 2,
    MK_RULE_SEASONAL = 3,
    MK_RULE_ANOMALY = 4,
    MK_RULE_HEARTBEAT = 5
} mk_rule_kind;

typedef enum mk_rule_cmp { MK_CMP_NONE = 0, MK_CMP_GT, MK_CMP_GE, MK_CMP_LT, MK_CMP_LE } mk_rule_cmp;

typedef enum mk_rule_reduce {
    MK_REDUCE_LAST = 0, MK_REDUCE_MEAN, MK_REDUCE_MAX, MK_REDUCE_MIN, MK_REDUCE_SUM, MK_REDUCE_COUNT
} mk_rule_reduce;

typedef struct mk_rule_tag {
    char *key;
    char *value;
    int is_negated; /* YAML value "!v": tag differs from v or is absent */
} mk_rule_tag;

typedef struct mk_rule_cond {
    mk_rule_cmp op; /* MK_CMP_NONE = not set */
    double value;
} mk_rule_cond;

/* One rule. Every pointer is owned by the rule (mk_rule_clear frees). */
typedef struct mk_rule {
    char *name;
    mk_rule_kind kind;
    char *measurement;
    char *field;             /* heartbeat default "status" */
    mk_rule_tag *tags;
    size_t n_tags;
    int64_t interval_ms;     /* evaluation period; default 60 s */
    int64_t window_ms;       /* values reduced over (now - window, now]; default = interval */
    mk_rule_reduce reduce;   /* default last (threshold), mean (dynamic, seasonal) */
    mk_rule_cond fire;       /* threshold: the condition that fires */
    mk_rule_cond clear;      /* threshold: the clear condition; NONE = "fire does not hold" */
    double k, clear_k;       /* dynamic: fire beyond k sigma, clear within clear_k sigma */
    int64_t history_ms;      /* dynamic: baseline window before the current one; default 1 h */
    int64_t season_ms;       /* seasonal: 1 d or 7 d (any duration allowed) */
    double ratio, clear_ratio; /* seasonal: fire at ratio (or 1/ratio below), clear inside clear_ratio */
    int direction;           /* seasonal: +1 above, -1 below, 0 both */
    double score_above, score_clear; /* anomaly */
    int64_t period_ms, grace_ms;     /* heartbeat: expected every period, grace before DOWN */
    int64_t degraded_after_ms, down_after_ms; /* heartbeat: Kener-style delays; 0 = unused */
    char *cron_expr;         /* heartbeat by schedule; NULL = by period */
    char *tz_name;           /* time zone of cron_expr; NULL = UTC */
    mk_cron cron;
    mk_cron_tz *tz;          /* loaded from tz_name */
    mk_inc_policy policy;    /* for, failures, successes, cooldown, repeat, flapping */
    mk_severity severity;    /* default warning (heartbeat: DOWN is critical) */
    mk_label *labels;        /* added to every incident */
    size_t n_labels;
    mk_label *annotations;   /* templates */
    size_t n_annotations;
    int line, column;        /* where it was defined (1-based), 0 if not from YAML */
} mk_rule;

typedef struct mk_rule_set {
    mk_rule *rules;
    size_t n;
} mk_rule_set;

const char *mk_rule_kind_name(mk_rule_kind k);

/*
 * Parses the `rules:` list of a YAML config file (other top-level keys are
 * left to their owners and ignored here; no `rules:` key = no rules).
 * file names the text in messages. On MK_EPARSE diag reads
 * "FILE:LINE:COLUMN: what is wrong". *out is empty on failure; free with
 * mk_rule_set_free.
 */
mk_err mk_rule_parse_yaml(const char *text, size_t len, const char *file, mk_rule_set *out,
                          mk_diag *diag);

/* Parses one rule given as a YAML (or JSON) mapping, e.g. the body of
 * PUT /api/rules/<name>; name_or_null overrides/supplies its name. */
mk_err mk_rule_parse_one(const char *text, size_t len, const char *name_or_null, mk_rule *out,
                         mk_diag *diag);

/* Checks a rule built in code the way the parser checks parsed ones, and
 * loads its time zone / cron schedule when they are still missing. */
mk_err mk_rule_validate(mk_rule *r, mk_diag *diag);

/* Deep copy of src into *dst. */
mk_err mk_rule_copy(const mk_rule *src, mk_rule *dst, mk_diag *diag);
void mk_rule_clear(mk_rule *r);
void mk_rule_set_free(mk_rule_set *s);

/* What a template can refer to. */
typedef struct mk_rule_tmpl_ctx {
    const char *rule;
    double value, threshold;
    mk_severity severity;
    const char *reason;
    const mk_label *labels;
    size_t n_labels;
} mk_rule_tmpl_ctx;

/* Renders tmpl into a malloc'ed string *out (caller frees). MK_EPARSE names
 * the column of a bad or unknown placeholder. ctx NULL only checks. */
mk_err mk_rule_render(const char *tmpl, const mk_rule_tmpl_ctx *ctx, char **out, mk_diag *diag);

/* ---- the evaluation engine ----------------------------------------------- */

typedef struct mk_rule_engine mk_rule_engine;

/* Anomaly score of series_id at now_ms in [0, 1]: returns 1 and *score,
 * 0 when there is no score (warm-up, no data), negative on error. */
typedef int (*mk_rule_score_fn)(void *ctx, const mk_rule *rule, uint64_t series_id, int64_t now_ms,
                                double *score);

/* Seasonal baseline: mean of series_id over [from_ms, to_ms) and the sample
 * count (*n = 0: no baseline). The default reads mk_db_iter_summaries. */
typedef mk_err (*mk_rule_baseline_fn)(void *ctx, mk_db *db, uint64_t series_id, int64_t from_ms,
                                      int64_t to_ms, double *mean, uint64_t *n, mk_diag *diag);

typedef struct mk_rule_engine_opts {
    mk_env *env;                 /* the clock (fake in tests); NULL = OS; borrowed */
    const char *incident_dir;    /* the incident log directory; NULL = memory only */
    mk_inc_store_opts store;
    mk_rule_score_fn score;      /* NULL: anomaly rules see no score */
    void *score_ctx;
    mk_rule_baseline_fn baseline; /* NULL: the engine's summaries reader */
    void *baseline_ctx;
    void (*log)(void *ctx, int level, const char *msg); /* NULL = stderr */
    void *log_ctx;
} mk_rule_engine_opts;

/*
 * Makes an engine over db (borrowed; must outlive the engine) with a copy of
 * rules (may be NULL), opening the incident store. Close with
 * mk_rule_engine_close.
 */
mk_err mk_rule_engine_open(mk_db *db, const mk_rule_set *rules, const mk_rule_engine_opts *opts,
                           mk_rule_engine **out, mk_diag *diag);
mk_err mk_rule_engine_close(mk_rule_engine *e, mk_diag *diag);

typedef struct mk_rule_eval_stats {
    uint64_t n_rules_run;     /* rules that were due */
    uint64_t n_series;        /* (rule, series) evaluations */
    uint64_t n_transitions;
    uint64_t n_notifications;
    uint64_t n_errors;        /* rules that failed (diag has the first) */
} mk_rule_eval_stats;

/*
 * Runs every rule that is due at now_ms (each rule every interval_ms, on
 * multiples of its interval) over every series its selector matches. A rule
 * that fails is counted and reported, the others still run; the first
 * error is returned. stats may be NULL.
 */
mk_err mk_rule_engine_evaluate(mk_rule_engine *e, int64_t now_ms, mk_rule_eval_stats *stats,
                               mk_diag *diag);

/* now_ms from the engine's clock. */
int64_t mk_rule_engine_now(mk_rule_engine *e);

/* Tells heartbeat rules of a sample just written (the server calls it on
 * every heartbeat). Taken into account at the next evaluation. Never waits
 * for a running evaluation (its own mutex). */
void mk_rule_engine_on_sample(mk_rule_engine *e, uint64_t series_id, int64_t ts_ms, double value);

/* One heartbeat monitor as a heartbeat rule sees it now (GET /api/monitors). */
typedef struct mk_rule_monitor {
    char *rule;
    uint64_t series_id;      /* the id its first beat will have, if none yet */
    mk_label *labels;        /* series tags, then the rule's labels */
    size_t n_labels;
    int has_beat;            /* a beat was found (stored, or via on_sample) */
    int64_t last_beat_ms;    /* 0 without one */
    double last_status;      /* value of the last beat: 1 UP, 0.5 DEGRADED, 0 DOWN */
    int level;               /* as judged now: 0 up, 1 degraded, 2 down */
    mk_inc_state state;      /* its state machine */
    char *reason;            /* "heartbeat 12s ago", "no heartbeat for 3m: ..." */
} mk_rule_monitor;

/* Every series of every heartbeat rule, judged at now_ms without changing
 * any state. *out is malloc'ed: free with mk_rule_monitors_free. */
mk_err mk_rule_engine_monitors(mk_rule_engine *e, int64_t now_ms, mk_rule_monitor **out, size_t *n,
                               mk_diag *diag);
void mk_rule_monitors_free(mk_rule_monitor *a, size_t n);

/* Adds a rule, or replaces the one with the same name, after validating it
 * (a copy is kept). The machines of a replaced rule keep their state. */
mk_err mk_rule_engine_put_rule(mk_rule_engine *e, const mk_rule *r, mk_diag *diag);

/* Removes rule `name`; MK_ENOTFOUND if there is none. Its open incidents
 * stay listed as they are. */
mk_err mk_rule_engine_delete_rule(mk_rule_engine *e, const char *name, mk_diag *diag);

/* Copy of the current rules (free with mk_rule_set_free). */
mk_err mk_rule_engine_rules(mk_rule_engine *e, mk_rule_set *out, mk_diag *diag);

/* The incident store (owned by the engine): mk_inc_list, mk_inc_get and the
 * outbox calls of incident.h. */
mk_inc_store *mk_rule_engine_store(mk_rule_engine *e);

/* Makes every rule over measurement (heartbeat rules excepted) due at the
 * next mk_rule_engine_evaluate, so a write is judged at once rather than at
 * the rule's next multiple of its interval (server: mk_alerts_kick).
 * Returns how many rules were marked. */
size_t mk_rule_engine_mark_due(mk_rule_engine *e, const char *measurement);

#endif

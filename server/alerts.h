/*
 * server/alerts.h — the server's alerting: the rule engine (detect/rule.h)
 * running over the served database, its evaluation thread, and the HTTP
 * APIs on top of it: /api/incidents, /api/rules, /api/silences.
 *
 * State on disk, all under the data directory:
 *   DATA/incidents/        incident log and notification outbox (detect/ilog.h)
 *   DATA/rules.d/N.yaml    rule N as last PUT through the API (the request
 *                          body, YAML or JSON); overrides the config's rule N
 *   DATA/rules.d/N.deleted rule N of the config was DELETEd through the API
 *   DATA/silences.json     every silence not expired for more than a day,
 *                          rewritten atomically on each change
 * At start-up the config's rules are taken first, then rules.d is applied
 * (overrides and tombstones), so a restart keeps every API change.
 *
 * Evaluation: one thread calls mk_rule_engine_evaluate(now) just after
 * every whole second; the engine runs each rule that is due (every rule on
 * multiples of its own interval, at least 1 s). Heartbeats reach the engine
 * at once through mk_alerts_on_beat.
 *
 * A write can wake evaluation early: mk_alerts_kick (called by the write
 * path) makes the rules over the written measurements due and evaluates
 * them at once (at most every KICK_GAP_MS), so a threshold crossing is
 * judged within milliseconds, not at the next whole second.
 *
 * Silences do not stop incidents from opening: a matching incident is
 * listed with "silenced": true. Notification delivery (notify/) skips
 * alerts that are silenced (mk_alerts_is_silenced) when it sends.
 *
 * Thread rules: every function may be called from any thread.
 */
#ifndef MK_ALERTS_H
#define MK_ALERTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "alertq.h"
#include "incident.h"
#include "meerkat/db.h"
#include "rule.h"
#include "util.h"

typedef struct mk_alerts mk_alerts;

/*
 * Opens the engine over db (borrowed, must outlive the alerts) with
 * config_rules (copied; may be NULL) and the API changes kept in data_dir,
 * loads the silences and starts the evaluation thread. Close with
 * mk_alerts_close before the database.
 */
mk_err mk_alerts_open(mk_db *db, const char *data_dir, const mk_rule_set *config_rules, mk_alerts **out,
                      mk_diag *diag);

/* Stops the evaluation thread (waiting for a running evaluation), closes
 * the engine (compacting the incident log) and frees. Accepts NULL. */
void mk_alerts_close(mk_alerts *a);

/* A heartbeat was just stored as the sample (ts_ms, status) of the series
 * `heartbeat,monitor=<name> status`, whose id is status_series_id: tells the
 * heartbeat rules. */
void mk_alerts_on_beat(mk_alerts *a, uint64_t status_series_id, int64_t ts_ms, double status);

/*
 * Serves one request under /api/incidents, /api/rules or /api/silences
 * (path: decoded, without the query string). Returns the HTTP status and
 * in *out the JSON body to send (NULL: no body, e.g. 204); errors are
 * {"error": "..."}. Authorisation is the caller's job.
 */
int mk_alerts_handle(mk_alerts *a, const char *method, const char *path, const mk_alerts_arg *args,
                     size_t n_args, const char *body, size_t n_body, json_t **out);

/* Every series of every heartbeat rule as judged now (mk_rule_engine_monitors):
 * free with mk_rule_monitors_free. */
mk_err mk_alerts_monitors(mk_alerts *a, int64_t now_ms, mk_rule_monitor **out, size_t *n, mk_diag *diag);

/* Appends the alerting gauges to a Prometheus text exposition. */
void mk_alerts_metrics(mk_alerts *a, mk_buf *b);

/* 1 when an active silence matches the labels (with the rule name also
 * matchable as `rule` or `alertname`) at now_ms. */
int mk_alerts_is_silenced(mk_alerts *a, const char *rule, const mk_label *labels, size_t n_labels,
                          int64_t now_ms);

/* The incident store (for the notifier): owned by the alerts; valid until
 * mk_alerts_close. */
mk_inc_store *mk_alerts_store(mk_alerts *a);

/* fn(ctx) is called from the evaluation thread after each evaluation that
 * wrote outbox records (the notifier's mk_notify_kick). NULL unsets it.
 * Set it before records may appear, and unset before ctx goes away. */
void mk_alerts_set_outbox_hook(mk_alerts *a, void (*fn)(void *ctx), void *ctx);

/* Line protocol text[0..n) was just stored: the rules over its
 * measurements are evaluated now rather than at their next interval
 * boundary. Cheap (a scan of the line starts); never waits for an
 * evaluation. NULL a is fine. */
void mk_alerts_kick(mk_alerts *a, const char *text, size_t n);

#endif

/*
 * server/alertq.h — the pure parts of the alert APIs (server/alerts.c):
 * times as the API reads and writes them, silences and their label
 * matchers, and the filter of GET /api/incidents. No I/O, no global state;
 * fuzzed by tests/fuzz/fuzz_server_alerts.c.
 */
#ifndef MK_ALERTQ_H
#define MK_ALERTQ_H

#include <jansson.h>
#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "incident.h"

/* A query-string argument (borrowed strings). */
typedef struct mk_alerts_arg {
    const char *key;
    const char *val;
} mk_alerts_arg;

/* "2026-12-02T00:00:00Z", "...T00:00:00.250+01:00" (fractions past the
 * millisecond are dropped), or epoch seconds ("1764633600", "1764633600.5").
 * Returns 0 and *ms, or -1 when malformed. */
int mk_alertq_parse_time(const char *s, int64_t *ms);

/* RFC 3339 UTC with milliseconds ("2026-12-02T00:00:00.000Z"); JSON null
 * for 0 (= not set). */
json_t *mk_alertq_time_json(int64_t ms);

typedef struct mk_alertq_matcher {
    char *name, *value; /* owned */
    int is_negated;     /* != or !~ */
    int is_regex;       /* =~ or !~: POSIX extended, anchored at both ends */
    regex_t re;         /* compiled when is_regex */
} mk_alertq_matcher;

typedef struct mk_alertq_silence {
    uint64_t id;
    mk_alertq_matcher *m; /* owned, n_m >= 1 */
    size_t n_m;
    int64_t starts_ms, ends_ms, created_ms;
    char *comment, *created_by; /* owned, never NULL once parsed */
} mk_alertq_silence;

/*
 * A silence from JSON: a POST body ({"matchers": ["k=v", "k!=v", "k=~re",
 * "k!~re" or {name, value, isRegex, isEqual}], "starts_at", "ends_at",
 * "comment", "created_by"}) or, when is_stored, an entry of silences.json
 * (with "id" and "created_at"). now_ms is the default start and, for a new
 * silence, the earliest end. Returns 0 and *s (free with
 * mk_alertq_silence_clear), or -1 with a message in err.
 */
int mk_alertq_silence_from_json(json_t *o, int is_stored, int64_t now_ms, mk_alertq_silence *s, char *err,
                                size_t cap);
void mk_alertq_silence_clear(mk_alertq_silence *s);

/* The silence as the API lists it (and silences.json stores it). */
json_t *mk_alertq_silence_json(const mk_alertq_silence *s, int64_t now_ms);

/* "pending", "active" or "expired" at now_ms. */
const char *mk_alertq_silence_state(const mk_alertq_silence *s, int64_t now_ms);

/* 1 when every matcher holds for the labels (the rule name also answers
 * to `rule` and `alertname`; an absent label is ""). Ignores the times. */
int mk_alertq_silence_matches(const mk_alertq_silence *s, const char *rule, const mk_label *l, size_t n);

#define MK_ALERTQ_DEFAULT_LIMIT 500
#define MK_ALERTQ_MAX_LIMIT 10000

/* GET /api/incidents's filter: f borrows from match (owned) and args. */
typedef struct mk_alertq_filter {
    mk_inc_filter f;
    mk_label *match;
    size_t n_match;
} mk_alertq_filter;

/*
 * Reads state=, rule=, label.K=V, labels=k=v,..., from=, to=, limit= from
 * args (which must outlive out). Returns 0; -1 with a message in err for a
 * bad value (HTTP 400); -2 when out of memory. Free with
 * mk_alertq_filter_free in every case.
 */
int mk_alertq_filter_parse(const mk_alerts_arg *args, size_t n_args, mk_alertq_filter *out, char *err, size_t cap);
void mk_alertq_filter_free(mk_alertq_filter *f);

#endif

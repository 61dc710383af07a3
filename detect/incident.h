/*
 * detect/incident.h — incidents, the per-(rule, series) state machine that
 * makes them, and the durable notification outbox.
 *
 * The store holds one state machine per (rule name, series id), every open
 * and recently resolved incident, and the outbox of notifications not yet
 * confirmed as delivered. Every change that must survive a crash (a state
 * transition, an outbox record, a delivery mark) is appended to the
 * incident log (detect/ilog.h) and fsynced before the call returns; opening
 * the store replays the log. The state machine is drawn in incident.c.
 *
 * Thread rules: every function may be called from any thread; the store
 * serialises them with its own mutex (the server's evaluation loop and the
 * notification workers share one store).
 */
#ifndef MK_INCIDENT_H
#define MK_INCIDENT_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "meerkat/error.h"

typedef enum mk_inc_state {
    MK_INC_OK = 0,       /* no incident (a machine's resting state) */
    MK_INC_PENDING = 1,  /* failing, not yet for long enough to fire */
    MK_INC_FIRING = 2,   /* incident open and notified */
    MK_INC_RESOLVED = 3  /* incident closed; the machine returns to OK next */
} mk_inc_state;

typedef enum mk_severity { MK_SEV_WARNING = 1, MK_SEV_CRITICAL = 2 } mk_severity;

/* Why an outbox record was written. */
typedef enum mk_inc_event {
    MK_EV_FIRING = 1,    /* the incident started firing */
    MK_EV_REPEAT = 2,    /* still firing, repeat interval passed */
    MK_EV_ESCALATED = 3, /* still firing, severity went up (DEGRADED -> DOWN) */
    MK_EV_RESOLVED = 4,  /* the incident resolved */
    MK_EV_FLAPPING = 5   /* the series started flapping (incident held open) */
} mk_inc_event;

const char *mk_inc_state_name(mk_inc_state s);    /* "ok", "pending", ... */
const char *mk_severity_name(mk_severity s);      /* "warning", "critical" */
const char *mk_inc_event_name(mk_inc_event e);    /* "firing", "repeat", ... */

typedef struct mk_label {
    char *key;
    char *value;
} mk_label;

/* Frees n labels and the array (NULL is fine). */
void mk_labels_free(mk_label *l, size_t n);
/* Deep copy of n labels into a new array (*out NULL when n is 0); -1 when
 * out of memory, with nothing left allocated. */
int mk_labels_dup(const mk_label *src, size_t n, mk_label **out);

/* A copy of an incident handed to the caller; free with mk_incident_clear
 * (one) or mk_incidents_free (an array from mk_inc_list). */
typedef struct mk_incident {
    uint64_t id;               /* 1, 2, ... in creation order; never reused */
    char *rule;
    uint64_t series_id;
    mk_label *labels;          /* series tags, then the rule's labels */
    size_t n_labels;
    mk_label *annotations;     /* rendered templates */
    size_t n_annotations;
    mk_inc_state state;        /* PENDING, FIRING or RESOLVED */
    mk_severity severity;
    int64_t start_ms;          /* first failing evaluation */
    int64_t fired_ms;          /* went FIRING; 0 if not yet */
    int64_t end_ms;            /* resolved; 0 while open */
    int64_t updated_ms;        /* last evaluation that changed it */
    double value;              /* last value (or score) seen while failing */
    double peak;               /* worst value (or score) seen */
    double threshold;
    char *reason;              /* "p95_ms 412 is 3.8x the same hour last week (108)" */
    int is_flapping;
} mk_incident;

void mk_incident_clear(mk_incident *inc);
void mk_incidents_free(mk_incident *a, size_t n);

/* One pending notification (a copy; free with mk_inc_outbox_free). */
typedef struct mk_outbox_rec {
    uint64_t seq;              /* 1, 2, ... never reused: the delivery key */
    uint64_t incident_id;
    char *rule;
    mk_label *labels;
    size_t n_labels;
    mk_label *annotations;
    size_t n_annotations;
    mk_inc_event event;
    mk_inc_state state;        /* the incident's state when written */
    mk_severity severity;
    int64_t start_ms, fired_ms, end_ms;
    int64_t event_ms;          /* when the record was written (evaluation time) */
    double value, peak, threshold;
    char *reason;
    uint32_t attempts;         /* delivery attempts so far (mk_inc_outbox_attempt) */
    int64_t last_attempt_ms;
} mk_outbox_rec;

void mk_inc_outbox_free(mk_outbox_rec *a, size_t n);

/* How one rule drives its machines (filled by the rule from its config). */
typedef struct mk_inc_policy {
    int64_t for_ms;          /* failing at least this long before FIRING */
    uint32_t failures;       /* and at least this many consecutive failing evaluations (>= 1) */
    uint32_t successes;      /* consecutive healthy evaluations to resolve (>= 1) */
    int64_t cooldown_ms;     /* after a resolve, no new FIRING for this long (waits in PENDING) */
    int64_t repeat_ms;       /* re-notify a FIRING incident this often; 0 = never */
    uint32_t flap_window;    /* evaluations in the flap history, 0 = off, 3..64 */
    double flap_high_pct;    /* flapping starts at >= this state-change percentage */
    double flap_low_pct;     /* and stops below this one */
    int is_low_bad;          /* the peak is the lowest value (qps < 10), not the highest */
} mk_inc_policy;

/* One evaluation of one (rule, series). */
typedef struct mk_inc_obs {
    int is_bad;              /* the fire condition holds */
    int is_clear;            /* the clear condition holds; neither = the hysteresis band */
    mk_severity severity;    /* severity this observation deserves */
    double value;
    double threshold;
    const char *reason;      /* borrowed; may be NULL */
} mk_inc_obs;

/* What mk_inc_step did. */
typedef struct mk_inc_step_result {
    mk_inc_state from, to;
    uint64_t incident_id;    /* the incident involved, 0 if none */
    int n_notified;          /* outbox records written (0 or 1) */
    uint64_t outbox_seq;     /* the record's sequence number when n_notified */
} mk_inc_step_result;

typedef struct mk_inc_store mk_inc_store;

typedef struct mk_inc_store_opts {
    uint64_t compact_bytes;    /* rewrite the log past this size; 0 = 4 MiB */
    size_t max_resolved;       /* resolved incidents kept; 0 = 10000 */
    void (*log)(void *ctx, int level, const char *msg); /* warnings; NULL = stderr */
    void *log_ctx;
} mk_inc_store_opts;

/*
 * Opens the store whose log lives in dir (created if needed; normally
 * <data dir>/incidents), replaying it. dir NULL = a store in memory only
 * (backfill by `meerkat detect`). env NULL = the OS; borrowed, must outlive
 * the store. opts may be NULL. Close with mk_inc_store_close.
 */
mk_err mk_inc_store_open(mk_env *env, const char *dir, const mk_inc_store_opts *opts,
                         mk_inc_store **out, mk_diag *diag);

/* Writes a compact snapshot (so counters and flap history survive a clean
 * restart exactly) and frees. Accepts NULL. The store is freed even when
 * the snapshot fails (the log before it is still valid). */
mk_err mk_inc_store_close(mk_inc_store *s, mk_diag *diag);

/*
 * Feeds one evaluation of (rule, series_id) into its machine at now_ms.
 * labels / annotations (borrowed, copied when an incident is created or a
 * notification written) describe the series and are rendered by the rule.
 * If the step changes durable state, it is in the log when this returns;
 * on an I/O error the in-memory state is rolled back and the error returned,
 * so the next evaluation tries again. res may be NULL.
 */
mk_err mk_inc_step(mk_inc_store *s, const char *rule, uint64_t series_id, const mk_inc_policy *p,
                   const mk_inc_obs *obs, const mk_label *labels, size_t n_labels,
                   const mk_label *annotations, size_t n_annotations, int64_t now_ms,
                   mk_inc_step_result *res, mk_diag *diag);

/* State of the machine of (rule, series_id): MK_INC_OK if it has none. */
mk_inc_state mk_inc_machine_state(mk_inc_store *s, const char *rule, uint64_t series_id);

/* Filter of mk_inc_list. Zero-initialised = everything. */
typedef struct mk_inc_filter {
    unsigned state_mask;       /* bit (1 << mk_inc_state); 0 = any */
    const char *rule;          /* NULL = any */
    const mk_label *match;     /* every pair must be among the labels */
    size_t n_match;
    int64_t from_ms, to_ms;    /* overlapping [from, to): 0 = unbounded */
    size_t limit;              /* 0 = no limit */
} mk_inc_filter;

/* Copies of matching incidents, newest first, in *out (free with
 * mk_incidents_free). */
mk_err mk_inc_list(mk_inc_store *s, const mk_inc_filter *f, mk_incident **out, size_t *n,
                   mk_diag *diag);

/* Copy of incident id in *out (free with mk_incident_clear); MK_ENOTFOUND. */
mk_err mk_inc_get(mk_inc_store *s, uint64_t id, mk_incident *out, mk_diag *diag);

/* Copies of up to max (0 = all) pending outbox records, oldest first. */
mk_err mk_inc_outbox_pending(mk_inc_store *s, size_t max, mk_outbox_rec **out, size_t *n,
                             mk_diag *diag);

/* Durably counts one delivery attempt of record seq. MK_ENOTFOUND if it is
 * not pending. */
mk_err mk_inc_outbox_attempt(mk_inc_store *s, uint64_t seq, int64_t now_ms, mk_diag *diag);

/* Durably marks record seq delivered: it leaves the outbox. MK_ENOTFOUND if
 * it is not pending (already delivered, or never written). */
mk_err mk_inc_outbox_delivered(mk_inc_store *s, uint64_t seq, mk_diag *diag);

/* Between begin and end, changes are appended without their own fsync and
 * end fsyncs once (a rule evaluation that opens 5,000 incidents paid 5,000
 * fsyncs, 30 s). Outbox records written in a batch are handed out by
 * mk_inc_outbox_pending only after that fsync. Nests; end returns the fsync's
 * error (the records then wait for the next successful end). */
void mk_inc_store_batch_begin(mk_inc_store *s);
mk_err mk_inc_store_batch_end(mk_inc_store *s, mk_diag *diag);

/* Forces a compaction now (tests, admin). No-op for a memory-only store. */
mk_err mk_inc_store_compact(mk_inc_store *s, mk_diag *diag);

/* Counts for /metrics and tests; any pointer may be NULL. */
void mk_inc_store_stats(mk_inc_store *s, size_t *n_open, size_t *n_pending_outbox,
                        uint64_t *log_bytes);

#endif

/*
 * detect/incident.c — the incident state machine, the store of incidents and
 * the notification outbox (see incident.h).
 *
 * One machine per (rule, series). Each evaluation is one observation: bad
 * (the fire condition holds), clear (the clear condition holds) or neither
 * (between the two: the hysteresis band, "above 1000 fires, below 900
 * clears").
 *
 *                    bad: incident created (start = now)
 *        +------+ ------------------------------------------> +---------+
 *   +--->|  OK  |                                             | PENDING |<--+ bad, but n_fail < failures,
 *   |    +------+ <------------------------------------------ +---------+---+ or now - start < for, or
 *   |       ^        not bad: incident cancelled (dropped)        |           in cooldown after the last
 *   |       |                                                     |           resolve
 *   |       | next evaluation                                     | bad, n_fail >= failures and
 *   |       | (any outcome is judged from OK)                     | now - start >= for and cooldown over:
 *   |  +----------+                                               v  notify FIRING
 *   |  | RESOLVED |<------------------------------------------+--------+
 *   |  +----------+  n_ok >= successes consecutive clear      | FIRING |<--+ bad: peak updated; notify REPEAT
 *   |                evaluations, not flapping:               +--------+---+ every repeat interval, ESCALATED
 *   |                notify RESOLVED (end = now)                  ^  |       when the severity rises; the
 *   |                                                             |  |       band resets n_ok
 *   +---- flapping starts in OK or PENDING: incident opened ------+  |
 *         straight in FIRING, notify FLAPPING                        +-- flapping: held open, no REPEAT
 *
 * Flap detection (Nagios' method): the last flap_window outcomes (bad or
 * not) are kept as bits; the percentage of state changes between
 * neighbours, weighted linearly from 0.8 (oldest) to 1.2 (newest), is
 * compared with flap_high_pct (start) and flap_low_pct (stop), once the
 * history is full. A flapping series holds one incident open in FIRING with
 * one FLAPPING notification, instead of a fire/resolve pair per change;
 * when flapping stops the machine continues from FIRING as usual.
 *
 * Deduplication: while a machine is PENDING or FIRING every bad
 * observation updates its one open incident; a new incident is created only
 * from OK. Ids and outbox sequence numbers are never reused (the counters
 * are logged in every snapshot).
 *
 * Durability. Every step that changes durable state (a transition, an
 * outbox record, flapping starting or stopping) appends ONE log record
 * holding every item it changed (machine, incident, outbox record), so a
 * crash keeps all of a transition or none of it. The in-memory change is
 * made only after the append succeeded. Counters that change at every
 * evaluation (n_fail, n_ok, flap history, peak, value) are logged with the
 * next transition and in the snapshot written at close and compaction:
 * after a crash (not a clean close) a PENDING machine resumes with the
 * counters of its last logged transition — it may take up to `failures`
 * more evaluations to fire, never fewer.
 *
 * Item layout inside a log record: kind u8 | len u32 | body[len]; bodies in
 * engine/FORMAT.md ("Incident log").
 *
 * Compaction: when the log passes compact_bytes and is at least twice the
 * size of the last snapshot, it is rewritten as one snapshot (counters,
 * every machine, every retained incident, every pending outbox record).
 * Resolved incidents beyond max_resolved (oldest first) are forgotten then.
 */
#include "incident.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ilog.h"
#include "util.h"

enum {
    ITEM_INCIDENT = 1,
    ITEM_MACHINE = 2,
    ITEM_OUTBOX = 3,
    ITEM_ATTEMPT = 4,
    ITEM_DELIVERED = 5,
    ITEM_COUNTERS = 6
};

#define DEFAULT_COMPACT_BYTES (4ull << 20)
#define DEFAULT_MAX_RESOLVED 10000
#define MAX_STR_BYTES (1u << 20)
#define MAX_LABELS 4096

typedef struct inc_machine {
    char *rule;
    uint64_t series_id;
    mk_inc_state state;
    uint32_t n_fail, n_ok;
    int64_t pending_since_ms;
    int64_t resolved_ms;     /* last resolve, for cooldown; 0 = never */
    int64_t last_notify_ms;
    uint64_t hist;           /* bit i = outcome i evaluations ago (1 = bad) */
    uint32_t n_hist;
    int is_flapping;
    uint64_t incident_id;    /* open incident (PENDING/FIRING), 0 = none */
} inc_machine;

struct mk_inc_store {
    pthread_mutex_t mu;
    mk_env *env;
    mk_ilog *log; /* NULL = memory only */
    uint64_t compact_bytes;
    size_t max_resolved;
    uint64_t snapshot_bytes;
    void (*logf)(void *ctx, int level, const char *msg);
    void *log_ctx;

    uint64_t next_id, next_seq;
    mk_incident *incs; /* sorted by id */
    size_t n_incs, cap_incs;
    inc_machine *machines;
    size_t n_machines, cap_machines;
    uint32_t *slots; /* open addressing: index + 1 into machines, 0 = empty */
    size_t n_slots;  /* power of two */
    mk_outbox_rec *outbox; /* sorted by seq */
    size_t n_outbox, cap_outbox;
    /* Batches (mk_inc_store_batch_begin/end): appends skip their fsync and
     * one fsync at the end covers them. Outbox records above durable_seq are
     * not handed out yet, so nothing is notified before it is durable. */
    unsigned batch_depth;
    int is_unsynced;
    uint64_t durable_seq; /* every outbox record with seq <= this is fsynced */
};

const char *mk_inc_state_name(mk_inc_state s)
{
    switch (s) {
    case MK_INC_OK: return "ok";
    case MK_INC_PENDING: return "pending";
    case MK_INC_FIRING: return "firing";
    case MK_INC_RESOLVED: return "resolved";
    }
    return "unknown";
}

const char *mk_severity_name(mk_severity s) { return s == MK_SEV_CRITICAL ? "critical" : "warning"; }

const char *mk_inc_event_name(mk_inc_event e)
{
    switch (e) {
    case MK_EV_FIRING: return "firing";
    case MK_EV_REPEAT: return "repeat";
    case MK_EV_ESCALATED: return "escalated";
    case MK_EV_RESOLVED: return "resolved";
    case MK_EV_FLAPPING: return "flapping";
    }
    return "unknown";
}

/* ---- copies ------------------------------------------------------------ */

static char *xstrdup(const char *s)
{
    if (!s) s = "";
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

void mk_labels_free(mk_label *l, size_t n)
{
    for (size_t i = 0; i < n; i++) { free(l[i].key); free(l[i].value); }
    free(l);
}

int mk_labels_dup(const mk_label *src, size_t n, mk_label **out)
{
    *out = NULL;
    if (!n) return 0;
    mk_label *l = calloc(n, sizeof *l);
    if (!l) return -1;
    for (size_t i = 0; i < n; i++) {
        l[i].key = xstrdup(src[i].key);
        l[i].value = xstrdup(src[i].value);
        if (!l[i].key || !l[i].value) { mk_labels_free(l, n); return -1; }
    }
    *out = l;
    return 0;
}

void mk_incident_clear(mk_incident *inc)
{
    if (!inc) return;
    free(inc->rule);
    mk_labels_free(inc->labels, inc->n_labels);
    mk_labels_free(inc->annotations, inc->n_annotations);
    free(inc->reason);
    memset(inc, 0, sizeof *inc);
}

void mk_incidents_free(mk_incident *a, size_t n)
{
    for (size_t i = 0; i < n; i++) mk_incident_clear(&a[i]);
    free(a);
}

static int incident_dup(const mk_incident *src, mk_incident *dst)
{
    *dst = *src;
    dst->rule = xstrdup(src->rule);
    dst->reason = xstrdup(src->reason);
    dst->labels = dst->annotations = NULL;
    dst->n_labels = dst->n_annotations = 0;
    if (!dst->rule || !dst->reason || mk_labels_dup(src->labels, src->n_labels, &dst->labels) ||
        mk_labels_dup(src->annotations, src->n_annotations, &dst->annotations)) {
        mk_incident_clear(dst);
        return -1;
    }
    dst->n_labels = src->n_labels;
    dst->n_annotations = src->n_annotations;
    return 0;
}

static void outbox_clear(mk_outbox_rec *r)
{
    free(r->rule);
    mk_labels_free(r->labels, r->n_labels);
    mk_labels_free(r->annotations, r->n_annotations);
    free(r->reason);
    memset(r, 0, sizeof *r);
}

void mk_inc_outbox_free(mk_outbox_rec *a, size_t n)
{
    for (size_t i = 0; i < n; i++) outbox_clear(&a[i]);
    free(a);
}

static int outbox_dup(const mk_outbox_rec *src, mk_outbox_rec *dst)
{
    *dst = *src;
    dst->rule = xstrdup(src->rule);
    dst->reason = xstrdup(src->reason);
    dst->labels = dst->annotations = NULL;
    dst->n_labels = dst->n_annotations = 0;
    if (!dst->rule || !dst->reason || mk_labels_dup(src->labels, src->n_labels, &dst->labels) ||
        mk_labels_dup(src->annotations, src->n_annotations, &dst->annotations)) {
        outbox_clear(dst);
        return -1;
    }
    dst->n_labels = src->n_labels;
    dst->n_annotations = src->n_annotations;
    return 0;
}

/* ---- encoding ---------------------------------------------------------- */

typedef struct enc {
    mk_buf b;
    int is_oom;
} enc;

static void put(enc *e, const void *p, size_t n)
{
    if (!e->is_oom && mk_buf_append(&e->b, p, n)) e->is_oom = 1;
}
static void put_u8(enc *e, uint8_t v) { put(e, &v, 1); }
static void put_u32(enc *e, uint32_t v) { uint8_t b[4]; mk_put_u32(b, v); put(e, b, 4); }
static void put_u64(enc *e, uint64_t v) { uint8_t b[8]; mk_put_u64(b, v); put(e, b, 8); }
static void put_i64(enc *e, int64_t v) { put_u64(e, (uint64_t)v); }
static void put_f64(enc *e, double v) { put_u64(e, mk_f64_bits(v)); }
static void put_str(enc *e, const char *s)
{
    if (!s) s = "";
    size_t n = strlen(s);
    if (n > MAX_STR_BYTES) n = MAX_STR_BYTES;
    put_u32(e, (uint32_t)n);
    put(e, s, n);
}
static void put_labels(enc *e, const mk_label *l, size_t n)
{
    put_u32(e, (uint32_t)n);
    for (size_t i = 0; i < n; i++) { put_str(e, l[i].key); put_str(e, l[i].value); }
}

/* Starts an item; returns the offset of its length field for item_end. */
static size_t item_begin(enc *e, uint8_t kind)
{
    put_u8(e, kind);
    size_t at = e->b.len;
    put_u32(e, 0);
    return at;
}
static void item_end(enc *e, size_t at)
{
    if (!e->is_oom) mk_put_u32(e->b.data + at, (uint32_t)(e->b.len - at - 4));
}

static void enc_incident(enc *e, const mk_incident *x)
{
    size_t at = item_begin(e, ITEM_INCIDENT);
    put_u64(e, x->id);
    put_str(e, x->rule);
    put_u64(e, x->series_id);
    put_labels(e, x->labels, x->n_labels);
    put_labels(e, x->annotations, x->n_annotations);
    put_u8(e, (uint8_t)x->state);
    put_u8(e, (uint8_t)x->severity);
    put_i64(e, x->start_ms);
    put_i64(e, x->fired_ms);
    put_i64(e, x->end_ms);
    put_i64(e, x->updated_ms);
    put_f64(e, x->value);
    put_f64(e, x->peak);
    put_f64(e, x->threshold);
    put_str(e, x->reason);
    put_u8(e, (uint8_t)x->is_flapping);
    item_end(e, at);
}

static void enc_machine(enc *e, const inc_machine *m)
{
    size_t at = item_begin(e, ITEM_MACHINE);
    put_str(e, m->rule);
    put_u64(e, m->series_id);
    put_u8(e, (uint8_t)m->state);
    put_u32(e, m->n_fail);
    put_u32(e, m->n_ok);
    put_i64(e, m->pending_since_ms);
    put_i64(e, m->resolved_ms);
    put_i64(e, m->last_notify_ms);
    put_u64(e, m->hist);
    put_u32(e, m->n_hist);
    put_u8(e, (uint8_t)m->is_flapping);
    put_u64(e, m->incident_id);
    item_end(e, at);
}

static void enc_outbox(enc *e, const mk_outbox_rec *r)
{
    size_t at = item_begin(e, ITEM_OUTBOX);
    put_u64(e, r->seq);
    put_u64(e, r->incident_id);
    put_str(e, r->rule);
    put_labels(e, r->labels, r->n_labels);
    put_labels(e, r->annotations, r->n_annotations);
    put_u8(e, (uint8_t)r->event);
    put_u8(e, (uint8_t)r->state);
    put_u8(e, (uint8_t)r->severity);
    put_i64(e, r->start_ms);
    put_i64(e, r->fired_ms);
    put_i64(e, r->end_ms);
    put_i64(e, r->event_ms);
    put_f64(e, r->value);
    put_f64(e, r->peak);
    put_f64(e, r->threshold);
    put_str(e, r->reason);
    put_u32(e, r->attempts);
    put_i64(e, r->last_attempt_ms);
    item_end(e, at);
}

static void enc_counters(enc *e, uint64_t next_id, uint64_t next_seq)
{
    size_t at = item_begin(e, ITEM_COUNTERS);
    put_u64(e, next_id);
    put_u64(e, next_seq);
    item_end(e, at);
}

/* ---- decoding (bytes from disk: every read is bounds-checked) ----------- */

typedef struct dec {
    const uint8_t *p;
    size_t n, off;
    const char *why; /* first problem, NULL = fine */
} dec;

static int need(dec *d, size_t k)
{
    if (d->why) return 0;
    if (d->n - d->off < k) { d->why = "item body ends early"; return 0; }
    return 1;
}
static uint8_t get_u8(dec *d) { if (!need(d, 1)) return 0; return d->p[d->off++]; }
static uint32_t get_u32(dec *d) { if (!need(d, 4)) return 0; uint32_t v = mk_get_u32(d->p + d->off); d->off += 4; return v; }
static uint64_t get_u64(dec *d) { if (!need(d, 8)) return 0; uint64_t v = mk_get_u64(d->p + d->off); d->off += 8; return v; }
static int64_t get_i64(dec *d) { return (int64_t)get_u64(d); }
static double get_f64(dec *d) { return mk_bits_f64(get_u64(d)); }
static char *get_str(dec *d)
{
    uint32_t n = get_u32(d);
    if (d->why) return NULL;
    if (n > MAX_STR_BYTES) { d->why = "string longer than the limit"; return NULL; }
    if (!need(d, n)) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) { d->why = "out of memory"; return NULL; }
    memcpy(s, d->p + d->off, n);
    s[n] = 0;
    d->off += n;
    return s;
}
static mk_label *get_labels(dec *d, size_t *n_out)
{
    *n_out = 0;
    uint32_t n = get_u32(d);
    if (d->why || n == 0) return NULL;
    if (n > MAX_LABELS || (size_t)n * 8 > d->n - d->off) { d->why = "label count out of range"; return NULL; }
    mk_label *l = calloc(n, sizeof *l);
    if (!l) { d->why = "out of memory"; return NULL; }
    for (uint32_t i = 0; i < n; i++) {
        l[i].key = get_str(d);
        l[i].value = get_str(d);
        if (d->why) { mk_labels_free(l, n); return NULL; }
    }
    *n_out = n;
    return l;
}
static int valid_state(int s) { return s >= MK_INC_OK && s <= MK_INC_RESOLVED; }
static int valid_sev(int s) { return s == MK_SEV_WARNING || s == MK_SEV_CRITICAL; }

static void dec_incident(dec *d, mk_incident *x)
{
    memset(x, 0, sizeof *x);
    x->id = get_u64(d);
    x->rule = get_str(d);
    x->series_id = get_u64(d);
    x->labels = get_labels(d, &x->n_labels);
    x->annotations = get_labels(d, &x->n_annotations);
    x->state = (mk_inc_state)get_u8(d);
    x->severity = (mk_severity)get_u8(d);
    x->start_ms = get_i64(d);
    x->fired_ms = get_i64(d);
    x->end_ms = get_i64(d);
    x->updated_ms = get_i64(d);
    x->value = get_f64(d);
    x->peak = get_f64(d);
    x->threshold = get_f64(d);
    x->reason = get_str(d);
    x->is_flapping = get_u8(d) != 0;
    if (!d->why && (!valid_state((int)x->state) || !valid_sev((int)x->severity) || x->id == 0))
        d->why = "incident item with an invalid state, severity or id";
}

static void dec_machine(dec *d, inc_machine *m)
{
    memset(m, 0, sizeof *m);
    m->rule = get_str(d);
    m->series_id = get_u64(d);
    m->state = (mk_inc_state)get_u8(d);
    m->n_fail = get_u32(d);
    m->n_ok = get_u32(d);
    m->pending_since_ms = get_i64(d);
    m->resolved_ms = get_i64(d);
    m->last_notify_ms = get_i64(d);
    m->hist = get_u64(d);
    m->n_hist = get_u32(d);
    m->is_flapping = get_u8(d) != 0;
    m->incident_id = get_u64(d);
    if (!d->why && !valid_state((int)m->state)) d->why = "machine item with an invalid state";
}

static void dec_outbox(dec *d, mk_outbox_rec *r)
{
    memset(r, 0, sizeof *r);
    r->seq = get_u64(d);
    r->incident_id = get_u64(d);
    r->rule = get_str(d);
    r->labels = get_labels(d, &r->n_labels);
    r->annotations = get_labels(d, &r->n_annotations);
    r->event = (mk_inc_event)get_u8(d);
    r->state = (mk_inc_state)get_u8(d);
    r->severity = (mk_severity)get_u8(d);
    r->start_ms = get_i64(d);
    r->fired_ms = get_i64(d);
    r->end_ms = get_i64(d);
    r->event_ms = get_i64(d);
    r->value = get_f64(d);
    r->peak = get_f64(d);
    r->threshold = get_f64(d);
    r->reason = get_str(d);
    r->attempts = get_u32(d);
    r->last_attempt_ms = get_i64(d);
    if (!d->why && (r->seq == 0 || r->event < MK_EV_FIRING || r->event > MK_EV_FLAPPING ||
                    !valid_state((int)r->state) || !valid_sev((int)r->severity)))
        d->why = "outbox item with an invalid sequence number, event, state or severity";
}

/* ---- tables ------------------------------------------------------------ */

static uint64_t machine_hash(const char *rule, uint64_t series_id)
{
    return mk_hash64(rule, strlen(rule)) ^ (series_id * 0x9e3779b97f4a7c15ull);
}

static inc_machine *machine_find(mk_inc_store *s, const char *rule, uint64_t series_id)
{
    if (!s->n_slots) return NULL;
    size_t mask = s->n_slots - 1;
    for (size_t i = machine_hash(rule, series_id) & mask;; i = (i + 1) & mask) {
        uint32_t v = s->slots[i];
        if (!v) return NULL;
        inc_machine *m = &s->machines[v - 1];
        if (m->series_id == series_id && strcmp(m->rule, rule) == 0) return m;
    }
}

static int slots_rebuild(mk_inc_store *s, size_t n_slots)
{
    uint32_t *sl = calloc(n_slots, sizeof *sl);
    if (!sl) return -1;
    for (size_t k = 0; k < s->n_machines; k++) {
        size_t i = machine_hash(s->machines[k].rule, s->machines[k].series_id) & (n_slots - 1);
        while (sl[i]) i = (i + 1) & (n_slots - 1);
        sl[i] = (uint32_t)(k + 1);
    }
    free(s->slots);
    s->slots = sl;
    s->n_slots = n_slots;
    return 0;
}

/* Inserts a machine (taking ownership of m->rule). */
static int machine_insert(mk_inc_store *s, const inc_machine *m)
{
    if (s->n_machines == s->cap_machines) {
        size_t nc = s->cap_machines ? s->cap_machines * 2 : 64;
        inc_machine *p = realloc(s->machines, nc * sizeof *p);
        if (!p) return -1;
        s->machines = p;
        s->cap_machines = nc;
    }
    if ((s->n_machines + 1) * 2 > s->n_slots && slots_rebuild(s, s->n_slots ? s->n_slots * 2 : 128)) return -1;
    s->machines[s->n_machines++] = *m;
    size_t mask = s->n_slots - 1;
    size_t i = machine_hash(m->rule, m->series_id) & mask;
    while (s->slots[i]) i = (i + 1) & mask;
    s->slots[i] = (uint32_t)s->n_machines;
    return 0;
}

/* Position of incident id, or where it would go. */
static size_t inc_pos(const mk_inc_store *s, uint64_t id, int *found)
{
    size_t lo = 0, hi = s->n_incs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->incs[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    *found = lo < s->n_incs && s->incs[lo].id == id;
    return lo;
}

static mk_incident *inc_find(mk_inc_store *s, uint64_t id)
{
    int found;
    size_t i = inc_pos(s, id, &found);
    return found ? &s->incs[i] : NULL;
}

/* Puts x (ownership taken) in place of incident x->id, or inserts it;
 * state OK removes it (a cancelled PENDING incident). */
static int inc_put(mk_inc_store *s, mk_incident *x)
{
    int found;
    size_t i = inc_pos(s, x->id, &found);
    if (found) {
        mk_incident_clear(&s->incs[i]);
        if (x->state == MK_INC_OK) {
            memmove(&s->incs[i], &s->incs[i + 1], (s->n_incs - i - 1) * sizeof *s->incs);
            s->n_incs--;
            mk_incident_clear(x);
        } else {
            s->incs[i] = *x;
        }
        return 0;
    }
    if (x->state == MK_INC_OK) { mk_incident_clear(x); return 0; }
    if (s->n_incs == s->cap_incs) {
        size_t nc = s->cap_incs ? s->cap_incs * 2 : 64;
        mk_incident *p = realloc(s->incs, nc * sizeof *p);
        if (!p) return -1;
        s->incs = p;
        s->cap_incs = nc;
    }
    memmove(&s->incs[i + 1], &s->incs[i], (s->n_incs - i) * sizeof *s->incs);
    s->incs[i] = *x;
    s->n_incs++;
    return 0;
}

static size_t outbox_pos(const mk_inc_store *s, uint64_t seq, int *found)
{
    size_t lo = 0, hi = s->n_outbox;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->outbox[mid].seq < seq) lo = mid + 1;
        else hi = mid;
    }
    *found = lo < s->n_outbox && s->outbox[lo].seq == seq;
    return lo;
}

/* Inserts r (ownership taken); a duplicate seq replaces the old copy. */
static int outbox_put(mk_inc_store *s, mk_outbox_rec *r)
{
    int found;
    size_t i = outbox_pos(s, r->seq, &found);
    if (found) { outbox_clear(&s->outbox[i]); s->outbox[i] = *r; return 0; }
    if (s->n_outbox == s->cap_outbox) {
        size_t nc = s->cap_outbox ? s->cap_outbox * 2 : 64;
        mk_outbox_rec *p = realloc(s->outbox, nc * sizeof *p);
        if (!p) return -1;
        s->outbox = p;
        s->cap_outbox = nc;
    }
    memmove(&s->outbox[i + 1], &s->outbox[i], (s->n_outbox - i) * sizeof *s->outbox);
    s->outbox[i] = *r;
    s->n_outbox++;
    return 0;
}

static void outbox_remove(mk_inc_store *s, uint64_t seq)
{
    int found;
    size_t i = outbox_pos(s, seq, &found);
    if (!found) return;
    outbox_clear(&s->outbox[i]);
    memmove(&s->outbox[i], &s->outbox[i + 1], (s->n_outbox - i - 1) * sizeof *s->outbox);
    s->n_outbox--;
}

/* Forgets the oldest resolved incidents beyond max_resolved (memory only;
 * the next compaction drops them from the log). */
static void trim_resolved(mk_inc_store *s)
{
    size_t n_res = 0;
    for (size_t i = 0; i < s->n_incs; i++) n_res += s->incs[i].state == MK_INC_RESOLVED;
    if (n_res <= s->max_resolved) return;
    size_t drop = n_res - s->max_resolved, w = 0;
    for (size_t i = 0; i < s->n_incs; i++) {
        if (drop && s->incs[i].state == MK_INC_RESOLVED) { mk_incident_clear(&s->incs[i]); drop--; continue; }
        s->incs[w++] = s->incs[i];
    }
    s->n_incs = w;
}

/* ---- replay ------------------------------------------------------------ */

typedef struct replay_ctx {
    mk_inc_store *s;
    mk_diag *diag;
} replay_ctx;

static int apply_record(void *vctx, const uint8_t *p, size_t n, uint64_t off)
{
    replay_ctx *rc = vctx;
    mk_inc_store *s = rc->s;
    size_t at = 0;
    while (at < n) {
        if (n - at < 5) return MK_CORRUPT(rc->diag, "incident log", off, "item header cut short");
        uint8_t kind = p[at];
        uint32_t len = mk_get_u32(p + at + 1);
        if (len > n - at - 5) return MK_CORRUPT(rc->diag, "incident log", off, "item runs past its record");
        dec d = {p + at + 5, len, 0, NULL};
        switch (kind) {
        case ITEM_INCIDENT: {
            mk_incident x;
            dec_incident(&d, &x);
            if (d.why) { mk_incident_clear(&x); break; }
            if (x.id >= s->next_id) s->next_id = x.id + 1;
            if (inc_put(s, &x)) { mk_incident_clear(&x); return mk_diag_set(rc->diag, MK_ENOMEM, "no memory replaying incidents"); }
            break;
        }
        case ITEM_MACHINE: {
            inc_machine m;
            dec_machine(&d, &m);
            if (d.why) { free(m.rule); break; }
            inc_machine *old = machine_find(s, m.rule, m.series_id);
            if (old) {
                free(old->rule);
                *old = m;
            } else if (machine_insert(s, &m)) {
                free(m.rule);
                return mk_diag_set(rc->diag, MK_ENOMEM, "no memory replaying machines");
            }
            break;
        }
        case ITEM_OUTBOX: {
            mk_outbox_rec r;
            dec_outbox(&d, &r);
            if (d.why) { outbox_clear(&r); break; }
            if (r.seq >= s->next_seq) s->next_seq = r.seq + 1;
            if (outbox_put(s, &r)) { outbox_clear(&r); return mk_diag_set(rc->diag, MK_ENOMEM, "no memory replaying the outbox"); }
            break;
        }
        case ITEM_ATTEMPT: {
            uint64_t seq = get_u64(&d);
            uint32_t attempts = get_u32(&d);
            int64_t last = get_i64(&d);
            int found;
            size_t i = outbox_pos(s, seq, &found);
            if (!d.why && found) { s->outbox[i].attempts = attempts; s->outbox[i].last_attempt_ms = last; }
            break;
        }
        case ITEM_DELIVERED: {
            uint64_t seq = get_u64(&d);
            if (!d.why) outbox_remove(s, seq);
            break;
        }
        case ITEM_COUNTERS: {
            uint64_t id = get_u64(&d), seq = get_u64(&d);
            if (!d.why) {
                if (id > s->next_id) s->next_id = id;
                if (seq > s->next_seq) s->next_seq = seq;
            }
            break;
        }
        default:
            d.why = "unknown item kind";
        }
        if (d.why) {
            char why[160];
            snprintf(why, sizeof why, "item of kind %u at byte %zu of the record: %s", (unsigned)kind, at, d.why);
            return MK_CORRUPT(rc->diag, "incident log", off, why);
        }
        at += 5 + (size_t)len;
    }
    return 0;
}

/* ---- open, close, compaction ------------------------------------------- */

static void store_free(mk_inc_store *s)
{
    mk_ilog_close(s->log);
    mk_incidents_free(s->incs, s->n_incs);
    for (size_t i = 0; i < s->n_machines; i++) free(s->machines[i].rule);
    free(s->machines);
    free(s->slots);
    mk_inc_outbox_free(s->outbox, s->n_outbox);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The whole state as framed log records: counters, machines, incidents and
 * pending outbox records, a bounded number of items per record. */
static mk_err snapshot(mk_inc_store *s, mk_buf *out)
{
    enc e = {{0}, 0};
    mk_err err = MK_OK;
    enc_counters(&e, s->next_id, s->next_seq);
    size_t n_items = 1;
#define FLUSH_IF_BIG()                                                                   \
    do {                                                                                 \
        if (e.is_oom) { err = MK_ENOMEM; goto out; }                                     \
        if (++n_items >= 256 || e.b.len >= (256u << 10)) {                               \
            if ((err = mk_ilog_frame(out, e.b.data, e.b.len))) goto out;                 \
            e.b.len = 0;                                                                 \
            n_items = 0;                                                                 \
        }                                                                                \
    } while (0)
    for (size_t i = 0; i < s->n_machines; i++) { enc_machine(&e, &s->machines[i]); FLUSH_IF_BIG(); }
    for (size_t i = 0; i < s->n_incs; i++) { enc_incident(&e, &s->incs[i]); FLUSH_IF_BIG(); }
    for (size_t i = 0; i < s->n_outbox; i++) { enc_outbox(&e, &s->outbox[i]); FLUSH_IF_BIG(); }
#undef FLUSH_IF_BIG
    if (e.is_oom) { err = MK_ENOMEM; goto out; }
    if (e.b.len) err = mk_ilog_frame(out, e.b.data, e.b.len);
out:
    mk_buf_free(&e.b);
    return err;
}

static mk_err compact_locked(mk_inc_store *s, mk_diag *diag)
{
    if (!s->log) return MK_OK;
    trim_resolved(s);
    mk_buf recs = {0};
    mk_err err = snapshot(s, &recs);
    if (err) { err = mk_diag_set(diag, err, "no memory for the incident log snapshot"); goto out; }
    if ((err = mk_ilog_rewrite(s->log, &recs, diag))) goto out;
    s->snapshot_bytes = mk_ilog_bytes(s->log);
out:
    mk_buf_free(&recs);
    return err;
}

mk_err mk_inc_store_open(mk_env *env, const char *dir, const mk_inc_store_opts *opts,
                         mk_inc_store **out, mk_diag *diag)
{
    mk_err err = MK_OK;
    *out = NULL;
    mk_inc_store *s = calloc(1, sizeof *s);
    if (!s) return mk_diag_set(diag, MK_ENOMEM, "no memory for the incident store");
    pthread_mutex_init(&s->mu, NULL);
    s->env = env ? env : mk_env_default();
    s->compact_bytes = opts && opts->compact_bytes ? opts->compact_bytes : DEFAULT_COMPACT_BYTES;
    s->max_resolved = opts && opts->max_resolved ? opts->max_resolved : DEFAULT_MAX_RESOLVED;
    s->logf = opts ? opts->log : NULL;
    s->log_ctx = opts ? opts->log_ctx : NULL;
    s->next_id = 1;
    s->next_seq = 1;
    if (dir) {
        replay_ctx rc = {s, diag};
        if ((err = mk_ilog_open(s->env, dir, s->logf, s->log_ctx, apply_record, &rc, &s->log, diag))) goto out;
        s->snapshot_bytes = mk_ilog_bytes(s->log);
    }
    s->durable_seq = s->next_seq - 1; /* what was replayed is on disk */
out:
    if (err) store_free(s);
    else *out = s;
    return err;
}

mk_err mk_inc_store_close(mk_inc_store *s, mk_diag *diag)
{
    if (!s) return MK_OK;
    pthread_mutex_lock(&s->mu);
    mk_err err = compact_locked(s, diag);
    pthread_mutex_unlock(&s->mu);
    store_free(s);
    return err;
}

mk_err mk_inc_store_compact(mk_inc_store *s, mk_diag *diag)
{
    pthread_mutex_lock(&s->mu);
    mk_err err = compact_locked(s, diag);
    pthread_mutex_unlock(&s->mu);
    return err;
}

/* Appends e's items as one record (nothing to do for a memory-only store).
 * The caller runs maybe_compact_locked once the change is applied in memory,
 * so a snapshot always includes it. */
static mk_err commit_locked(mk_inc_store *s, enc *e, mk_diag *diag)
{
    if (e->is_oom) return mk_diag_set(diag, MK_ENOMEM, "no memory encoding an incident log record");
    if (!s->log) return MK_OK;
    if (s->batch_depth) {
        mk_err err = mk_ilog_append_nosync(s->log, e->b.data, e->b.len, diag);
        if (!err) s->is_unsynced = 1;
        return err;
    }
    return mk_ilog_append(s->log, e->b.data, e->b.len, diag);
}

/* After a commit outside a batch, or a batch's fsync: all is durable. */
static void mark_durable_locked(mk_inc_store *s)
{
    if (!s->batch_depth || !s->is_unsynced) s->durable_seq = s->next_seq - 1;
}

void mk_inc_store_batch_begin(mk_inc_store *s)
{
    pthread_mutex_lock(&s->mu);
    s->batch_depth++;
    pthread_mutex_unlock(&s->mu);
}

mk_err mk_inc_store_batch_end(mk_inc_store *s, mk_diag *diag)
{
    mk_err err = MK_OK;
    pthread_mutex_lock(&s->mu);
    if (s->batch_depth && --s->batch_depth == 0 && s->is_unsynced) {
        /* On failure the records stay unsynced and unannounced; the next
         * batch's fsync tries again (the process still has them). */
        if (!(err = mk_ilog_sync(s->log, diag))) {
            s->is_unsynced = 0;
            mark_durable_locked(s);
        } else {
            s->batch_depth = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return err;
}

static void maybe_compact_locked(mk_inc_store *s)
{
    if (!s->log) return;
    uint64_t sz = mk_ilog_bytes(s->log);
    if (sz < s->compact_bytes || sz < 2 * s->snapshot_bytes) return;
    mk_diag d = {0};
    if (compact_locked(s, &d)) {
        char msg[700];
        snprintf(msg, sizeof msg, "incident log compaction failed (will retry): %s", d.msg);
        if (s->logf) s->logf(s->log_ctx, 1, msg);
        else fprintf(stderr, "meerkat: warning: %s\n", msg);
        s->snapshot_bytes = sz; /* retry only after it doubles again */
    }
}

/* ---- the state machine ------------------------------------------------- */

/* Nagios' weighted percentage of state changes over the last n outcomes
 * (bit 0 = newest). */
static double flap_pct(uint64_t hist, uint32_t n)
{
    if (n < 2) return 0;
    double sum = 0;
    /* Transition j (1..n-1) is between outcome ages n-j and n-j-1, oldest
     * first; its weight rises from 0.8 to 1.2. */
    for (uint32_t j = 1; j < n; j++) {
        uint32_t older = n - j, newer = n - j - 1;
        int changed = (int)((hist >> older) & 1) != (int)((hist >> newer) & 1);
        double w = n > 2 ? 0.8 + 0.4 * (double)(j - 1) / (double)(n - 2) : 1.0;
        if (changed) sum += w;
    }
    return 100.0 * sum / (double)(n - 1);
}

static void set_obs(mk_incident *x, const mk_inc_obs *o, const mk_inc_policy *p, int64_t now_ms)
{
    x->value = o->value;
    int is_worse = p->is_low_bad ? o->value < x->peak : o->value > x->peak;
    if (is_worse || x->peak != x->peak) x->peak = o->value;
    x->threshold = o->threshold;
    x->updated_ms = now_ms;
}

/* Replaces the strings of x that come from the observation; -1 on OOM. */
static int set_texts(mk_incident *x, const mk_inc_obs *o, const mk_label *ann, size_t n_ann)
{
    char *r = xstrdup(o->reason);
    mk_label *a = NULL;
    if (!r || mk_labels_dup(ann, n_ann, &a)) { free(r); return -1; }
    free(x->reason);
    x->reason = r;
    mk_labels_free(x->annotations, x->n_annotations);
    x->annotations = a;
    x->n_annotations = n_ann;
    return 0;
}

mk_err mk_inc_step(mk_inc_store *s, const char *rule, uint64_t series_id, const mk_inc_policy *p,
                   const mk_inc_obs *obs, const mk_label *labels, size_t n_labels,
                   const mk_label *annotations, size_t n_annotations, int64_t now_ms,
                   mk_inc_step_result *res, mk_diag *diag)
{
    mk_err err = MK_OK;
    enc e = {{0}, 0};
    mk_incident inc = {0};
    int has_inc = 0, is_new_machine = 0;
    mk_outbox_rec ob = {0};
    mk_inc_event ev = 0;
    char *rule_copy = NULL;
    pthread_mutex_lock(&s->mu);

    inc_machine *mp = machine_find(s, rule, series_id);
    inc_machine m;
    if (mp) {
        m = *mp;
    } else {
        memset(&m, 0, sizeof m);
        rule_copy = xstrdup(rule);
        if (!rule_copy) { err = mk_diag_set(diag, MK_ENOMEM, "no memory for a rule state machine"); goto out; }
        m.rule = rule_copy;
        m.series_id = series_id;
        is_new_machine = 1;
    }
    if (m.incident_id) {
        mk_incident *cur = inc_find(s, m.incident_id);
        if (cur) {
            if (incident_dup(cur, &inc)) { err = mk_diag_set(diag, MK_ENOMEM, "no memory copying an incident"); goto out; }
            has_inc = 1;
        } else {
            m.incident_id = 0; /* forgotten (trimmed); start afresh */
            if (m.state == MK_INC_PENDING || m.state == MK_INC_FIRING) m.state = MK_INC_OK;
        }
    }
    mk_inc_state from = m.state;
    int is_bad = obs->is_bad != 0;
    int is_clear = !is_bad && obs->is_clear;
    uint32_t nmax = p->flap_window > 64 ? 64 : p->flap_window;
    int was_flapping = m.is_flapping, flap_started = 0;
    int need_log = 0;

    /* Flap history and detection. */
    m.hist = (m.hist << 1) | (uint64_t)is_bad;
    if (m.n_hist < 64) m.n_hist++;
    if (nmax >= 3 && m.n_hist >= nmax) {
        double pct = flap_pct(m.hist, nmax);
        if (!m.is_flapping && pct >= p->flap_high_pct) { m.is_flapping = 1; flap_started = 1; }
        else if (m.is_flapping && pct < p->flap_low_pct) m.is_flapping = 0;
    } else if (nmax < 3) {
        m.is_flapping = 0;
    }
    if (m.is_flapping != was_flapping) need_log = 1;

    if (m.state == MK_INC_RESOLVED) m.state = MK_INC_OK;
    switch (m.state) {
    case MK_INC_OK:
        if (!is_bad) break;
        memset(&inc, 0, sizeof inc);
        has_inc = 1;
        inc.id = s->next_id;
        inc.rule = xstrdup(rule);
        inc.series_id = series_id;
        inc.state = MK_INC_PENDING;
        inc.severity = obs->severity == MK_SEV_CRITICAL ? MK_SEV_CRITICAL : MK_SEV_WARNING;
        inc.start_ms = now_ms;
        inc.peak = obs->value;
        if (!inc.rule || mk_labels_dup(labels, n_labels, &inc.labels) || set_texts(&inc, obs, annotations, n_annotations)) {
            err = mk_diag_set(diag, MK_ENOMEM, "no memory for a new incident");
            goto out;
        }
        inc.n_labels = n_labels;
        set_obs(&inc, obs, p, now_ms);
        m.state = MK_INC_PENDING;
        m.n_fail = 1;
        m.n_ok = 0;
        m.pending_since_ms = now_ms;
        m.incident_id = inc.id;
        need_log = 1;
        break;
    case MK_INC_PENDING:
        if (is_bad) {
            m.n_fail++;
            set_obs(&inc, obs, p, now_ms);
            if (obs->severity > inc.severity) inc.severity = obs->severity;
            if (set_texts(&inc, obs, annotations, n_annotations)) { err = mk_diag_set(diag, MK_ENOMEM, "no memory"); goto out; }
        } else {
            inc.state = MK_INC_OK; /* cancelled: dropped on commit and replay */
            inc.updated_ms = now_ms;
            m.state = MK_INC_OK;
            m.n_fail = 0;
            m.incident_id = 0;
            need_log = 1;
        }
        break;
    case MK_INC_FIRING:
        if (is_bad) {
            m.n_ok = 0;
            set_obs(&inc, obs, p, now_ms);
            if (obs->severity > inc.severity) {
                inc.severity = obs->severity;
                if (set_texts(&inc, obs, annotations, n_annotations)) { err = mk_diag_set(diag, MK_ENOMEM, "no memory"); goto out; }
                ev = MK_EV_ESCALATED;
            } else if (p->repeat_ms > 0 && !m.is_flapping && now_ms - m.last_notify_ms >= p->repeat_ms) {
                if (set_texts(&inc, obs, annotations, n_annotations)) { err = mk_diag_set(diag, MK_ENOMEM, "no memory"); goto out; }
                ev = MK_EV_REPEAT;
            }
        } else if (is_clear) {
            m.n_ok++;
            m.n_fail = 0;
            if (m.n_ok >= (p->successes ? p->successes : 1) && !m.is_flapping) {
                inc.state = MK_INC_RESOLVED;
                inc.end_ms = now_ms;
                inc.updated_ms = now_ms;
                m.state = MK_INC_RESOLVED;
                m.resolved_ms = now_ms;
                m.incident_id = 0;
                m.n_ok = 0;
                ev = MK_EV_RESOLVED;
            }
        } else {
            m.n_ok = 0;
        }
        break;
    case MK_INC_RESOLVED:
        break;
    }
    if (m.state == MK_INC_PENDING && is_bad && m.n_fail >= (p->failures ? p->failures : 1) &&
        now_ms - m.pending_since_ms >= p->for_ms && (m.resolved_ms == 0 || now_ms - m.resolved_ms >= p->cooldown_ms)) {
        m.state = MK_INC_FIRING;
        m.n_ok = 0;
        inc.state = MK_INC_FIRING;
        inc.fired_ms = now_ms;
        ev = MK_EV_FIRING;
    }
    if (flap_started && m.state != MK_INC_FIRING) {
        /* A PENDING incident (or one cancelled by this very step) is kept
         * and opened; from OK an incident is made for the flapping itself. */
        if (!has_inc) {
            has_inc = 1;
            inc.id = s->next_id;
            inc.rule = xstrdup(rule);
            inc.series_id = series_id;
            inc.severity = obs->severity == MK_SEV_CRITICAL ? MK_SEV_CRITICAL : MK_SEV_WARNING;
            inc.start_ms = now_ms;
            inc.peak = obs->value;
            if (!inc.rule || mk_labels_dup(labels, n_labels, &inc.labels) || set_texts(&inc, obs, annotations, n_annotations)) {
                err = mk_diag_set(diag, MK_ENOMEM, "no memory for a new incident");
                goto out;
            }
            inc.n_labels = n_labels;
            set_obs(&inc, obs, p, now_ms);
            m.pending_since_ms = now_ms;
        }
        m.incident_id = inc.id;
        m.state = MK_INC_FIRING;
        m.n_ok = 0;
        inc.state = MK_INC_FIRING;
        inc.fired_ms = now_ms;
    }
    if (flap_started && has_inc && inc.state == MK_INC_FIRING) {
        char why[200];
        snprintf(why, sizeof why, "flapping: state changed in %.0f%% of the last %u evaluations (%s)",
                 flap_pct(m.hist, nmax), nmax, obs->reason ? obs->reason : "");
        char *r = xstrdup(why);
        if (!r) { err = mk_diag_set(diag, MK_ENOMEM, "no memory"); goto out; }
        free(inc.reason);
        inc.reason = r;
        ev = MK_EV_FLAPPING;
    }
    if (has_inc && inc.state != MK_INC_OK) inc.is_flapping = m.is_flapping;
    if (m.state != from || ev) need_log = 1;

    if (ev) {
        m.last_notify_ms = now_ms;
        ob.seq = s->next_seq;
        ob.incident_id = inc.id;
        ob.rule = inc.rule;
        ob.labels = inc.labels;
        ob.n_labels = inc.n_labels;
        ob.annotations = inc.annotations;
        ob.n_annotations = inc.n_annotations;
        ob.event = ev;
        ob.state = inc.state;
        ob.severity = inc.severity;
        ob.start_ms = inc.start_ms;
        ob.fired_ms = inc.fired_ms;
        ob.end_ms = inc.end_ms;
        ob.event_ms = now_ms;
        ob.value = inc.value;
        ob.peak = inc.peak;
        ob.threshold = inc.threshold;
        ob.reason = inc.reason;
    }
    if (need_log) {
        enc_machine(&e, &m);
        if (has_inc) enc_incident(&e, &inc);
        if (ev) enc_outbox(&e, &ob);
        if ((err = commit_locked(s, &e, diag))) goto out;
    }
    /* Durable (or nothing to log): apply in memory. A failure from here on
     * leaves the log ahead of memory, never behind: a restart recovers. */
    if (has_inc) {
        if (inc.id == s->next_id) s->next_id++;
        if (ev) {
            mk_outbox_rec copy;
            if (outbox_dup(&ob, &copy) || outbox_put(s, &copy)) {
                err = mk_diag_set(diag, MK_EINTERNAL, "no memory adding to the outbox (it is in the log; a restart recovers it)");
                goto out;
            }
            s->next_seq++;
        }
        mark_durable_locked(s);
        if (inc_put(s, &inc)) { err = mk_diag_set(diag, MK_ENOMEM, "no memory storing an incident"); goto out; }
        has_inc = 0; /* owned by the table now */
        if (ev == MK_EV_RESOLVED) trim_resolved(s);
    }
    if (is_new_machine) {
        if (machine_insert(s, &m)) { err = mk_diag_set(diag, MK_ENOMEM, "no memory for a rule state machine"); goto out; }
        rule_copy = NULL;
    } else {
        *mp = m;
    }
    if (res) {
        res->from = from;
        res->to = m.state;
        res->incident_id = m.incident_id ? m.incident_id : inc.id;
        res->n_notified = ev ? 1 : 0;
        res->outbox_seq = ev ? ob.seq : 0;
    }
    if (need_log) maybe_compact_locked(s);
out:
    if (res && err) memset(res, 0, sizeof *res);
    if (has_inc) mk_incident_clear(&inc);
    free(rule_copy);
    mk_buf_free(&e.b);
    pthread_mutex_unlock(&s->mu);
    return err;
}

mk_inc_state mk_inc_machine_state(mk_inc_store *s, const char *rule, uint64_t series_id)
{
    pthread_mutex_lock(&s->mu);
    inc_machine *m = machine_find(s, rule, series_id);
    mk_inc_state st = m ? m->state : MK_INC_OK;
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* ---- queries ----------------------------------------------------------- */

static int has_label(const mk_incident *x, const mk_label *l)
{
    for (size_t i = 0; i < x->n_labels; i++)
        if (strcmp(x->labels[i].key, l->key) == 0 && strcmp(x->labels[i].value, l->value) == 0) return 1;
    return 0;
}

static int matches(const mk_incident *x, const mk_inc_filter *f)
{
    if (!f) return 1;
    if (f->state_mask && !(f->state_mask & (1u << x->state))) return 0;
    if (f->rule && strcmp(f->rule, x->rule) != 0) return 0;
    for (size_t i = 0; i < f->n_match; i++)
        if (!has_label(x, &f->match[i])) return 0;
    if (f->to_ms && x->start_ms >= f->to_ms) return 0;
    if (f->from_ms && x->end_ms && x->end_ms < f->from_ms) return 0;
    return 1;
}

mk_err mk_inc_list(mk_inc_store *s, const mk_inc_filter *f, mk_incident **out, size_t *n,
                   mk_diag *diag)
{
    mk_err err = MK_OK;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    size_t cap = 0;
    for (size_t k = s->n_incs; k-- > 0;) {
        if (!matches(&s->incs[k], f)) continue;
        if (f && f->limit && *n >= f->limit) break;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            mk_incident *p = realloc(*out, nc * sizeof *p);
            if (!p) { err = mk_diag_set(diag, MK_ENOMEM, "no memory listing incidents"); goto out; }
            *out = p;
            cap = nc;
        }
        if (incident_dup(&s->incs[k], &(*out)[*n])) { err = mk_diag_set(diag, MK_ENOMEM, "no memory listing incidents"); goto out; }
        (*n)++;
    }
out:
    pthread_mutex_unlock(&s->mu);
    if (err) { mk_incidents_free(*out, *n); *out = NULL; *n = 0; }
    return err;
}

mk_err mk_inc_get(mk_inc_store *s, uint64_t id, mk_incident *out, mk_diag *diag)
{
    mk_err err = MK_OK;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    mk_incident *x = inc_find(s, id);
    if (!x) err = mk_diag_set(diag, MK_ENOTFOUND, "incident %" PRIu64 " not found", id);
    else if (incident_dup(x, out)) err = mk_diag_set(diag, MK_ENOMEM, "no memory copying incident %" PRIu64, id);
    pthread_mutex_unlock(&s->mu);
    return err;
}

mk_err mk_inc_outbox_pending(mk_inc_store *s, size_t max, mk_outbox_rec **out, size_t *n,
                             mk_diag *diag)
{
    mk_err err = MK_OK;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    size_t k = 0; /* sorted by seq: the durable ones come first */
    while (k < s->n_outbox && s->outbox[k].seq <= s->durable_seq) k++;
    if (max && k > max) k = max;
    if (k) {
        *out = calloc(k, sizeof **out);
        if (!*out) { err = mk_diag_set(diag, MK_ENOMEM, "no memory copying the outbox"); goto out; }
        for (size_t i = 0; i < k; i++) {
            if (outbox_dup(&s->outbox[i], &(*out)[i])) { err = mk_diag_set(diag, MK_ENOMEM, "no memory copying the outbox"); goto out; }
            (*n)++;
        }
    }
out:
    pthread_mutex_unlock(&s->mu);
    if (err) { mk_inc_outbox_free(*out, *n); *out = NULL; *n = 0; }
    return err;
}

mk_err mk_inc_outbox_attempt(mk_inc_store *s, uint64_t seq, int64_t now_ms, mk_diag *diag)
{
    mk_err err = MK_OK;
    enc e = {{0}, 0};
    pthread_mutex_lock(&s->mu);
    int found;
    size_t i = outbox_pos(s, seq, &found);
    if (!found) { err = mk_diag_set(diag, MK_ENOTFOUND, "outbox record %" PRIu64 " is not pending", seq); goto out; }
    size_t at = item_begin(&e, ITEM_ATTEMPT);
    put_u64(&e, seq);
    put_u32(&e, s->outbox[i].attempts + 1);
    put_i64(&e, now_ms);
    item_end(&e, at);
    if ((err = commit_locked(s, &e, diag))) goto out;
    s->outbox[i].attempts++;
    s->outbox[i].last_attempt_ms = now_ms;
    maybe_compact_locked(s);
out:
    mk_buf_free(&e.b);
    pthread_mutex_unlock(&s->mu);
    return err;
}

mk_err mk_inc_outbox_delivered(mk_inc_store *s, uint64_t seq, mk_diag *diag)
{
    mk_err err = MK_OK;
    enc e = {{0}, 0};
    pthread_mutex_lock(&s->mu);
    int found;
    outbox_pos(s, seq, &found);
    if (!found) { err = mk_diag_set(diag, MK_ENOTFOUND, "outbox record %" PRIu64 " is not pending", seq); goto out; }
    size_t at = item_begin(&e, ITEM_DELIVERED);
    put_u64(&e, seq);
    item_end(&e, at);
    if ((err = commit_locked(s, &e, diag))) goto out;
    outbox_remove(s, seq);
    maybe_compact_locked(s);
out:
    mk_buf_free(&e.b);
    pthread_mutex_unlock(&s->mu);
    return err;
}

void mk_inc_store_stats(mk_inc_store *s, size_t *n_open, size_t *n_pending_outbox, uint64_t *log_bytes)
{
    pthread_mutex_lock(&s->mu);
    if (n_open) {
        size_t k = 0;
        for (size_t i = 0; i < s->n_incs; i++) k += s->incs[i].state == MK_INC_FIRING;
        *n_open = k;
    }
    if (n_pending_outbox) *n_pending_outbox = s->n_outbox;
    if (log_bytes) *log_bytes = mk_ilog_bytes(s->log);
    pthread_mutex_unlock(&s->mu);
}

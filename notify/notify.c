/*
 * notify/notify.c — the notifier: outbox ingest, routing, grouping,
 * inhibition, silences, delivery with backoff/fallback/escalation/rate
 * limits, the delivery log (see notify.h for the pipeline).
 *
 * Locks: one mutex (mu) guards everything here; it is never held while a
 * message is sent (workers copy what they need into a view and let go).
 * mu may be held while the incident store's own mutex is taken (outbox
 * calls), never the reverse: the store never calls back.
 *
 * Reference counts: an alert (one outbox record) is held by the group
 * pending lists, the messages and the active sets; it is freed when the
 * last holder lets go. n_outstanding counts what still has to happen before
 * its record may leave the outbox: one per matched route not yet flushed,
 * plus one per counted message not yet finished. At 0 the record is marked
 * delivered.
 *
 * Group timing (Alertmanager's): the first flush of a group happens
 * group_wait after its first alert; later changes wait for group_interval
 * after the previous flush. A message holds the changed alerts (is_new)
 * and the group's other firing alerts. Channels that were sent to get the
 * group's firing alerts again every repeat_interval (alertmanager
 * channels: every resend). A tier of escalation is reached when a critical
 * alert of the group has been firing for the tier's after; its channels
 * then get the firing alerts, and later the resolves, of the group.
 */
#include "notify.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "send.h"
#include "tmpl.h"

#define DEFAULT_LOG_KEEP 10000
#define LOG_FILE_MAX_BYTES (4u << 20)
#define SCAN_EVERY_MS 1000
#define MAX_PENDING_SCAN 100000

const char *mk_notify_kind_name(mk_notify_kind k)
{
    switch (k) {
    case MK_NOTIFY_WEBHOOK: return "webhook";
    case MK_NOTIFY_KENER: return "kener";
    case MK_NOTIFY_TEMPLATE: return "template";
    case MK_NOTIFY_EMAIL: return "email";
    case MK_NOTIFY_COMMAND: return "command";
    case MK_NOTIFY_ALERTMANAGER: return "alertmanager";
    }
    return "?";
}

/* ---- pure helpers ------------------------------------------------------------ */

static int cmp_label_ptr(const void *x, const void *y)
{
    const mk_label *a = *(const mk_label *const *)x, *b = *(const mk_label *const *)y;
    int c = strcmp(a->key, b->key);
    return c ? c : strcmp(a->value, b->value);
}

uint64_t mk_notify_fingerprint(const char *rule, const mk_label *labels, size_t n_labels)
{
    const mk_label *small[64];
    const mk_label **p = n_labels <= 64 ? small : malloc(n_labels * sizeof *p);
    mk_buf b = {0};
    if (!p) return 0;
    for (size_t i = 0; i < n_labels; i++) p[i] = &labels[i];
    qsort(p, n_labels, sizeof *p, cmp_label_ptr);
    /* each string with its NUL: no two label sets give the same bytes */
    mk_buf_append(&b, rule, strlen(rule) + 1);
    for (size_t i = 0; i < n_labels; i++) {
        mk_buf_append(&b, p[i]->key, strlen(p[i]->key) + 1);
        mk_buf_append(&b, p[i]->value, strlen(p[i]->value) + 1);
    }
    uint64_t h = mk_hash64(b.data, b.len);
    mk_buf_free(&b);
    if (p != small) free(p);
    return h;
}

const char *mk_notify_label(const mk_outbox_rec *r, const char *key)
{
    for (size_t i = 0; i < r->n_labels; i++)
        if (!strcmp(r->labels[i].key, key)) return r->labels[i].value;
    if (!strcmp(key, "alertname") || !strcmp(key, "rule")) return r->rule;
    if (!strcmp(key, "severity")) return mk_severity_name(r->severity);
    return NULL;
}

int mk_notify_matches(const mk_notify_matcher *m, size_t n, const mk_outbox_rec *r)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = mk_notify_label(r, m[i].key);
        int eq;
        if (m[i].re) {
            /* an absent label matches as "", as in Alertmanager */
            pcre2_match_data *md = pcre2_match_data_create_from_pattern(m[i].re, NULL);
            eq = md && pcre2_match(m[i].re, (PCRE2_SPTR)(v ? v : ""), PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) >= 0;
            pcre2_match_data_free(md);
        } else {
            eq = v && !strcmp(v, m[i].value);
        }
        if (eq == m[i].is_negated) return 0;
    }
    return 1;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

int64_t mk_notify_backoff_ms(int64_t base_ms, int64_t max_ms, uint32_t attempt, uint64_t *rng)
{
    if (attempt < 1) attempt = 1;
    int64_t d = base_ms < 1 ? 1 : base_ms;
    for (uint32_t i = 1; i < attempt && d < max_ms; i++) d *= 2;
    if (d > max_ms) d = max_ms;
    if (d < 1) d = 1;
    int64_t half = d / 2;
    return half + (int64_t)(xorshift(rng) % (uint64_t)(d - half + 1));
}

/* ---- state ------------------------------------------------------------------- */

typedef struct alert {
    mk_outbox_rec rec;     /* owned copy */
    uint64_t fp;
    char fp_hex[17];
    int n_outstanding;
    int n_refs;
    int is_acked;
} alert;

typedef struct group {
    size_t route;
    char *key;             /* owned */
    mk_label *labels;      /* owned: the group_by values */
    size_t n_labels;
    alert **pending;       /* changes waiting for the next flush */
    size_t n_pending, cap_pending;
    alert **active;        /* firing: the latest record per fingerprint */
    size_t n_active, cap_active;
    int64_t first_pending_ms;
    int64_t last_flush_ms; /* 0 = never */
    int has_sent;          /* flushed once, or seeded from before a restart: repeats and escalation run */
    int64_t *slot_last_ms; /* per slot (route channels, then every tier's), last send; 0 = never */
    size_t n_slots;
    int *tier_reached;
} group;

typedef struct msg {
    group *g;
    size_t channel;
    size_t fallback_pos;   /* next index into the route's fallback list */
    alert **alerts;        /* held */
    int *is_new;
    size_t n;
    int is_counted;        /* finishing it counts for the records' delivery */
    const char *why;       /* "notify", "repeat", "escalation" (static) */
    uint32_t n_failures;   /* consecutive, on the current channel */
    uint32_t attempt;      /* attempts so far, all channels */
    int64_t next_try_ms;
    int is_inflight;
} msg;

typedef struct logent {
    int64_t ts_ms;
    char *channel, *status, *error, *fingerprints, *why, *output;
    uint64_t *incidents;
    size_t n_incidents;
    int code;
    uint32_t attempt;
    size_t n_alerts;
} logent;

typedef struct chan_state {
    double tokens;
    int64_t tokens_ms;
    uint64_t n_sent, n_failed, n_gave_up;
    int last_code;
    int64_t last_ms;
    char last_error[256];
} chan_state;

struct mk_notify {
    mk_inc_store *store;   /* borrowed */
    mk_notify_config cfg;  /* owned */
    mk_env *env;           /* borrowed */
    mk_notify_silence_fn is_silenced;
    void *silence_ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int is_stopping, is_kicked;
    pthread_t *threads;
    size_t n_threads;
    uint64_t max_seq;
    int64_t last_scan_ms;
    group **groups;
    size_t n_groups, cap_groups;
    msg **msgs;
    size_t n_msgs, cap_msgs;
    chan_state *chans;
    logent *log;           /* ring */
    size_t log_cap, log_n, log_head; /* head = index of the oldest */
    char *log_dir, *log_path, *log_path_old;
    FILE *log_file;
    uint64_t log_file_bytes;
    uint64_t rng;
    mk_notify_stats st;
};

static int64_t now_of(mk_notify *n) { return n->env->now_ms(n->env); }

static void alert_unref(alert *a)
{
    if (a && --a->n_refs == 0) {
        free(a->rec.rule);
        mk_labels_free(a->rec.labels, a->rec.n_labels);
        mk_labels_free(a->rec.annotations, a->rec.n_annotations);
        free(a->rec.reason);
        free(a);
    }
}

static int push_ptr(void ***arr, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        void **q = realloc(*arr, nc * sizeof *q);
        if (!q) return -1;
        *arr = q;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

static int is_firing_event(mk_inc_event e) { return e != MK_EV_RESOLVED; }

/* ---- delivery log ----------------------------------------------------------------- */

static void logent_clear(logent *e)
{
    free(e->channel);
    free(e->status);
    free(e->error);
    free(e->fingerprints);
    free(e->why);
    free(e->output);
    free(e->incidents);
    memset(e, 0, sizeof *e);
}

static json_t *logent_json(const logent *e)
{
    char t[40];
    mk_notify_time(e->ts_ms, t, sizeof t);
    json_t *inc = json_array();
    for (size_t i = 0; inc && i < e->n_incidents; i++) json_array_append_new(inc, json_integer((json_int_t)e->incidents[i]));
    json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:i,s:s,s:s,s:o,s:i,s:i,s:s}", "ts_ms", (json_int_t)e->ts_ms, "time", t,
                          "channel", e->channel ? e->channel : "", "status", e->status ? e->status : "", "code",
                          e->code, "error", e->error ? e->error : "", "fingerprints",
                          e->fingerprints ? e->fingerprints : "", "incidents", inc, "attempt", (int)e->attempt,
                          "n_alerts", (int)e->n_alerts, "why", e->why ? e->why : "");
    if (o && e->output && e->output[0]) json_object_set_new(o, "output", json_string(e->output));
    return o;
}

static void log_push(mk_notify *n, logent *e)
{
    if (n->log_n == n->log_cap) {
        logent_clear(&n->log[n->log_head]);
        n->log[n->log_head] = *e;
        n->log_head = (n->log_head + 1) % n->log_cap;
    } else {
        n->log[(n->log_head + n->log_n) % n->log_cap] = *e;
        n->log_n++;
    }
}

static char *xstrdup(const char *s) { return strdup(s ? s : ""); }

/* Appends one entry to the file (rotating at LOG_FILE_MAX_BYTES). No
 * fsync: the file is a record for people; the outbox is what guarantees
 * delivery. */
static void log_write(mk_notify *n, const logent *e)
{
    if (!n->log_path) return;
    if (n->log_file && n->log_file_bytes > LOG_FILE_MAX_BYTES) {
        fclose(n->log_file);
        n->log_file = NULL;
        rename(n->log_path, n->log_path_old);
    }
    if (!n->log_file) {
        n->log_file = fopen(n->log_path, "ae");
        struct stat stt;
        n->log_file_bytes = n->log_file && stat(n->log_path, &stt) == 0 ? (uint64_t)stt.st_size : 0;
    }
    if (!n->log_file) return;
    json_t *o = logent_json(e);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s) {
        int k = fprintf(n->log_file, "%s\n", s);
        if (k > 0) n->log_file_bytes += (uint64_t)k;
        fflush(n->log_file);
    }
    free(s);
}

static void log_add(mk_notify *n, int64_t now, const char *channel, const char *status, int code, const char *err,
                    alert *const *alerts, const int *is_new, size_t n_alerts, uint32_t attempt, const char *why,
                    const char *output)
{
    logent e;
    memset(&e, 0, sizeof e);
    e.ts_ms = now;
    e.channel = xstrdup(channel);
    e.status = xstrdup(status);
    e.error = xstrdup(err);
    e.why = xstrdup(why);
    e.output = output && output[0] ? strdup(output) : NULL;
    e.code = code;
    e.attempt = attempt;
    e.n_alerts = n_alerts;
    mk_buf fps = {0};
    e.incidents = n_alerts ? calloc(n_alerts, sizeof *e.incidents) : NULL;
    for (size_t i = 0; i < n_alerts; i++) {
        if (is_new && !is_new[i]) continue;
        if (fps.len) mk_buf_append(&fps, ",", 1);
        mk_buf_append(&fps, alerts[i]->fp_hex, 16);
        if (e.incidents) e.incidents[e.n_incidents++] = alerts[i]->rec.incident_id;
    }
    mk_buf_append(&fps, "", 1);
    e.fingerprints = (char *)fps.data;
    log_write(n, &e);
    log_push(n, &e);
}

/* Loads the entries of one file (JSON lines) into the ring. */
static void log_load_file(mk_notify *n, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    while ((k = getline(&line, &cap, f)) > 0) {
        json_t *o = json_loadb(line, (size_t)k, 0, NULL);
        if (!json_is_object(o)) { /* a torn last line after a crash: skipped */
            json_decref(o);
            continue;
        }
        logent e;
        memset(&e, 0, sizeof e);
        e.ts_ms = (int64_t)json_integer_value(json_object_get(o, "ts_ms"));
        e.channel = xstrdup(json_string_value(json_object_get(o, "channel")));
        e.status = xstrdup(json_string_value(json_object_get(o, "status")));
        e.error = xstrdup(json_string_value(json_object_get(o, "error")));
        e.fingerprints = xstrdup(json_string_value(json_object_get(o, "fingerprints")));
        e.why = xstrdup(json_string_value(json_object_get(o, "why")));
        const char *out = json_string_value(json_object_get(o, "output"));
        e.output = out ? strdup(out) : NULL;
        e.code = (int)json_integer_value(json_object_get(o, "code"));
        e.attempt = (uint32_t)json_integer_value(json_object_get(o, "attempt"));
        e.n_alerts = (size_t)json_integer_value(json_object_get(o, "n_alerts"));
        json_t *inc = json_object_get(o, "incidents");
        size_t ni = json_array_size(inc);
        e.incidents = ni ? calloc(ni, sizeof *e.incidents) : NULL;
        for (size_t i = 0; e.incidents && i < ni; i++)
            e.incidents[e.n_incidents++] = (uint64_t)json_integer_value(json_array_get(inc, i));
        json_decref(o);
        log_push(n, &e);
    }
    free(line);
    fclose(f);
}

/* ---- ingest and routing --------------------------------------------------------- */

static mk_label *group_labels_of(const mk_notify_route *rt, const mk_outbox_rec *r, size_t *n_out)
{
    int is_all = 0;
    for (size_t i = 0; i < rt->n_group_by; i++) is_all |= !strcmp(rt->group_by[i], "...");
    size_t n = is_all ? r->n_labels + 1 : rt->n_group_by;
    mk_label *l = calloc(n ? n : 1, sizeof *l);
    if (!l) return NULL;
    if (is_all) {
        l[0].key = strdup("alertname");
        l[0].value = strdup(r->rule);
        for (size_t i = 0; i < r->n_labels; i++) {
            l[i + 1].key = strdup(r->labels[i].key);
            l[i + 1].value = strdup(r->labels[i].value);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            const char *v = mk_notify_label(r, rt->group_by[i]);
            l[i].key = strdup(rt->group_by[i]);
            l[i].value = strdup(v ? v : "");
        }
    }
    *n_out = n;
    return l;
}

static group *group_get(mk_notify *n, size_t route, const mk_outbox_rec *r)
{
    const mk_notify_route *rt = &n->cfg.routes[route];
    size_t nl = 0;
    mk_label *l = group_labels_of(rt, r, &nl);
    if (!l) return NULL;
    mk_buf k = {0};
    char head[64];
    int hk = snprintf(head, sizeof head, "{}/%zu:{", route);
    mk_buf_append(&k, head, (size_t)hk);
    for (size_t i = 0; i < nl; i++) {
        if (i) mk_buf_append(&k, ", ", 2);
        mk_buf_append(&k, l[i].key ? l[i].key : "", l[i].key ? strlen(l[i].key) : 0);
        mk_buf_append(&k, "=\"", 2);
        const char *v = l[i].value ? l[i].value : "";
        mk_notify_escape_append(&k, v, strlen(v), MK_NOTIFY_ESC_JSON);
        mk_buf_append(&k, "\"", 1);
    }
    mk_buf_append(&k, "}", 2);
    for (size_t i = 0; i < n->n_groups; i++)
        if (n->groups[i]->route == route && !strcmp(n->groups[i]->key, (const char *)k.data)) {
            mk_buf_free(&k);
            mk_labels_free(l, nl);
            return n->groups[i];
        }
    group *g = calloc(1, sizeof *g);
    size_t n_slots = rt->n_channels;
    for (size_t i = 0; i < rt->n_tiers; i++) n_slots += rt->tiers[i].n_channels;
    if (g) {
        g->slot_last_ms = calloc(n_slots ? n_slots : 1, sizeof *g->slot_last_ms);
        g->tier_reached = calloc(rt->n_tiers ? rt->n_tiers : 1, sizeof *g->tier_reached);
    }
    if (!g || !g->slot_last_ms || !g->tier_reached ||
        push_ptr((void ***)&n->groups, &n->n_groups, &n->cap_groups, g) != 0) {
        if (g) {
            free(g->slot_last_ms);
            free(g->tier_reached);
        }
        free(g);
        mk_buf_free(&k);
        mk_labels_free(l, nl);
        return NULL;
    }
    g->route = route;
    g->key = (char *)k.data;
    g->labels = l;
    g->n_labels = nl;
    g->n_slots = n_slots;
    return g;
}

static void ack(mk_notify *n, alert *a)
{
    if (a->is_acked || a->n_outstanding > 0) return;
    a->is_acked = 1;
    mk_diag d = {0};
    mk_err err = mk_inc_outbox_delivered(n->store, a->rec.seq, &d);
    if (err && err != MK_ENOTFOUND)
        fprintf(stderr, "meerkat notify: cannot mark outbox record %" PRIu64 " delivered: %s\n", a->rec.seq, d.msg);
    n->st.n_delivered_records++;
}

static void active_update(group *g, alert *a)
{
    for (size_t i = 0; i < g->n_active; i++)
        if (g->active[i]->fp == a->fp) {
            alert_unref(g->active[i]);
            if (is_firing_event(a->rec.event)) {
                a->n_refs++;
                g->active[i] = a;
            } else {
                g->active[i] = g->active[--g->n_active];
            }
            return;
        }
    if (is_firing_event(a->rec.event) && push_ptr((void ***)&g->active, &g->n_active, &g->cap_active, a) == 0)
        a->n_refs++;
}

static void ingest_one(mk_notify *n, const mk_outbox_rec *r, int64_t now)
{
    alert *a = calloc(1, sizeof *a);
    if (!a) return;
    a->rec = *r; /* takes the record's allocations */
    a->fp = mk_notify_fingerprint(r->rule, r->labels, r->n_labels);
    snprintf(a->fp_hex, sizeof a->fp_hex, "%016" PRIx64, a->fp);
    a->n_refs = 1; /* ours until the end of this function */
    for (size_t i = 0; i < n->cfg.n_routes; i++) {
        const mk_notify_route *rt = &n->cfg.routes[i];
        if (!mk_notify_matches(rt->match, rt->n_match, r)) continue;
        group *g = group_get(n, i, r);
        if (g && push_ptr((void ***)&g->pending, &g->n_pending, &g->cap_pending, a) == 0) {
            if (g->n_pending == 1) g->first_pending_ms = now;
            a->n_refs++;
            a->n_outstanding++;
            active_update(g, a);
        }
        if (!rt->is_continue) break;
    }
    if (a->n_outstanding == 0) {
        alert *one = a;
        log_add(n, now, "-", "unrouted", 0, "no route matches", &one, NULL, 1, 0, "notify", NULL);
        ack(n, a);
    }
    alert_unref(a);
}

static void ingest(mk_notify *n, int64_t now)
{
    mk_outbox_rec *recs = NULL;
    size_t nr = 0;
    mk_diag d = {0};
    n->last_scan_ms = now;
    if (mk_inc_outbox_pending(n->store, MAX_PENDING_SCAN, &recs, &nr, &d) != MK_OK) return;
    for (size_t i = 0; i < nr; i++) {
        if (recs[i].seq <= n->max_seq) continue;
        n->max_seq = recs[i].seq;
        ingest_one(n, &recs[i], now);
        memset(&recs[i], 0, sizeof recs[i]); /* moved */
    }
    mk_inc_outbox_free(recs, nr);
}

/* Firing incidents from before a restart whose records already left the
 * outbox: put back into their groups' active sets, as if just sent, so
 * repeats, alertmanager re-sends and escalation go on. They hold no
 * outbox record (is_acked). */
static void seed_active(mk_notify *n, int64_t now)
{
    mk_inc_filter f;
    memset(&f, 0, sizeof f);
    f.state_mask = 1u << MK_INC_FIRING;
    mk_incident *l = NULL;
    size_t nl = 0;
    if (mk_inc_list(n->store, &f, &l, &nl, NULL) != MK_OK) return;
    for (size_t i = 0; i < nl; i++) {
        alert *a = calloc(1, sizeof *a);
        if (!a) break;
        mk_outbox_rec *r = &a->rec;
        mk_incident *inc = &l[i];
        r->incident_id = inc->id;
        r->rule = inc->rule;
        r->labels = inc->labels;
        r->n_labels = inc->n_labels;
        r->annotations = inc->annotations;
        r->n_annotations = inc->n_annotations;
        r->reason = inc->reason;
        inc->rule = NULL;
        inc->labels = inc->annotations = NULL;
        inc->n_labels = inc->n_annotations = 0;
        inc->reason = NULL;
        r->event = MK_EV_FIRING;
        r->state = MK_INC_FIRING;
        r->severity = inc->severity;
        r->start_ms = inc->start_ms;
        r->fired_ms = inc->fired_ms;
        r->event_ms = inc->updated_ms;
        r->value = inc->value;
        r->peak = inc->peak;
        r->threshold = inc->threshold;
        a->fp = mk_notify_fingerprint(r->rule ? r->rule : "", r->labels, r->n_labels);
        snprintf(a->fp_hex, sizeof a->fp_hex, "%016" PRIx64, a->fp);
        a->n_refs = 1;
        a->is_acked = 1;
        for (size_t k = 0; r->rule && k < n->cfg.n_routes; k++) {
            const mk_notify_route *rt = &n->cfg.routes[k];
            if (!mk_notify_matches(rt->match, rt->n_match, r)) continue;
            group *g = group_get(n, k, r);
            if (g) {
                active_update(g, a);
                g->has_sent = 1;
                for (size_t s2 = 0; s2 < rt->n_channels && s2 < g->n_slots; s2++)
                    if (!g->slot_last_ms[s2]) g->slot_last_ms[s2] = now;
            }
            if (!rt->is_continue) break;
        }
        alert_unref(a);
    }
    mk_incidents_free(l, nl);
}

/* ---- suppression ------------------------------------------------------------------ */

static int is_inhibited(mk_notify *n, const alert *t)
{
    for (size_t h = 0; h < n->cfg.n_inhibits; h++) {
        const mk_notify_inhibit *ih = &n->cfg.inhibits[h];
        if (!mk_notify_matches(ih->target, ih->n_target, &t->rec)) continue;
        for (size_t gi = 0; gi < n->n_groups; gi++) {
            group *g = n->groups[gi];
            for (size_t i = 0; i < g->n_active; i++) {
                const alert *s = g->active[i];
                if (s->fp == t->fp || !mk_notify_matches(ih->source, ih->n_source, &s->rec)) continue;
                int eq = 1;
                for (size_t k = 0; k < ih->n_equal && eq; k++) {
                    const char *a = mk_notify_label(&s->rec, ih->equal[k]), *b = mk_notify_label(&t->rec, ih->equal[k]);
                    eq = (!a && !b) || (a && b && !strcmp(a, b));
                }
                if (eq) return 1;
            }
        }
    }
    return 0;
}

/* "silenced", "inhibited" or NULL. Resolves pass unless silenced. */
static const char *suppressed(mk_notify *n, const alert *a, int64_t now)
{
    if (n->is_silenced && n->is_silenced(n->silence_ctx, a->rec.rule, a->rec.labels, a->rec.n_labels, now))
        return "silenced";
    if (is_firing_event(a->rec.event) && is_inhibited(n, a)) return "inhibited";
    return NULL;
}

/* ---- messages ------------------------------------------------------------------------ */

static void msg_free(msg *m)
{
    for (size_t i = 0; i < m->n; i++) alert_unref(m->alerts[i]);
    free(m->alerts);
    free(m->is_new);
    free(m);
}

/* A message to channel ch of group g with the alerts in list (each held
 * anew). counted: finishing it counts for the is_new alerts' records. */
static msg *msg_new(mk_notify *n, group *g, size_t ch, alert **list, const int *is_new, size_t k, int is_counted,
                    const char *why, int64_t now)
{
    msg *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->alerts = malloc(k * sizeof *m->alerts);
    m->is_new = malloc(k * sizeof *m->is_new);
    if (!m->alerts || !m->is_new || push_ptr((void ***)&n->msgs, &n->n_msgs, &n->cap_msgs, m) != 0) {
        free(m->alerts);
        free(m->is_new);
        free(m);
        return NULL;
    }
    for (size_t i = 0; i < k; i++) {
        m->alerts[i] = list[i];
        m->is_new[i] = is_new[i];
        list[i]->n_refs++;
        if (is_counted && is_new[i]) list[i]->n_outstanding++;
    }
    m->n = k;
    m->g = g;
    m->channel = ch;
    m->is_counted = is_counted;
    m->why = why;
    m->next_try_ms = now;
    return m;
}

static void msg_finish(mk_notify *n, msg *m)
{
    for (size_t i = 0; i < n->n_msgs; i++)
        if (n->msgs[i] == m) {
            n->msgs[i] = n->msgs[--n->n_msgs];
            break;
        }
    if (m->is_counted)
        for (size_t i = 0; i < m->n; i++)
            if (m->is_new[i]) {
                m->alerts[i]->n_outstanding--;
                ack(n, m->alerts[i]);
            }
    msg_free(m);
}

/* The group's firing alerts not suppressed, after the `k` already in list
 * (which are not repeated). Grows list/is_new. */
static size_t add_active(mk_notify *n, group *g, alert ***list, int **is_new, size_t k, int64_t now)
{
    for (size_t i = 0; i < g->n_active; i++) {
        alert *a = g->active[i];
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++) dup = (*list)[j]->fp == a->fp;
        if (dup || suppressed(n, a, now)) continue;
        alert **nl = realloc(*list, (k + 1) * sizeof **list);
        if (!nl) break;
        *list = nl;
        int *ni = realloc(*is_new, (k + 1) * sizeof **is_new);
        if (!ni) break;
        *is_new = ni;
        (*list)[k] = a;
        (*is_new)[k] = 0;
        k++;
    }
    return k;
}

/* Slot s of g's route: its channel index. */
static size_t slot_channel(const mk_notify_route *rt, size_t s, size_t *tier)
{
    if (s < rt->n_channels) {
        *tier = SIZE_MAX;
        return rt->channels[s];
    }
    s -= rt->n_channels;
    for (size_t t = 0; t < rt->n_tiers; t++) {
        if (s < rt->tiers[t].n_channels) {
            *tier = t;
            return rt->tiers[t].channels[s];
        }
        s -= rt->tiers[t].n_channels;
    }
    *tier = SIZE_MAX;
    return 0;
}

static int has_msg_for(mk_notify *n, const group *g, size_t ch)
{
    for (size_t i = 0; i < n->n_msgs; i++)
        if (n->msgs[i]->g == g && n->msgs[i]->channel == ch && !n->msgs[i]->is_counted) return 1;
    return 0;
}

static void flush_group(mk_notify *n, group *g, int64_t now)
{
    const mk_notify_route *rt = &n->cfg.routes[g->route];
    size_t np = g->n_pending ? g->n_pending : 1;
    alert **list = malloc(np * sizeof *list);
    int *is_new = malloc(np * sizeof *is_new);
    int *fate = calloc(np, sizeof *fate); /* 0 sent, 1 suppressed, 2 superseded */
    size_t k = 0;
    if (!list || !is_new || !fate) {
        free(list);
        free(is_new);
        free(fate);
        return;
    }
    for (size_t i = 0; i < g->n_pending; i++) {
        alert *a = g->pending[i];
        const char *why = suppressed(n, a, now);
        if (why) {
            log_add(n, now, "-", why, 0, "", &a, NULL, 1, 0, "notify", NULL);
            if (!strcmp(why, "silenced")) n->st.n_silenced++;
            else n->st.n_inhibited++;
            fate[i] = 1;
            continue;
        }
        /* a newer record of the same alert in this flush supersedes the
         * older (firing then resolved within group_wait: only the resolve
         * is sent); the older record is done with this flush */
        size_t j = 0;
        while (j < k && list[j]->fp != a->fp) j++;
        if (j < k) {
            for (size_t q = 0; q < i; q++)
                if (g->pending[q] == list[j]) fate[q] = 2;
            list[j] = a;
        } else {
            list[k] = a;
            is_new[k++] = 1;
        }
    }
    size_t k_new = k;
    if (k_new) {
        k = add_active(n, g, &list, &is_new, k, now);
        for (size_t s = 0; s < g->n_slots; s++) {
            size_t tier;
            size_t ch = slot_channel(rt, s, &tier);
            if (tier != SIZE_MAX && !g->tier_reached[tier]) continue;
            msg_new(n, g, ch, list, is_new, k, 1, "notify", now);
            g->slot_last_ms[s] = now;
        }
    }
    /* every pending record's route share is done now; the messages made
     * above hold their own counts */
    for (size_t i = 0; i < g->n_pending; i++) {
        alert *a = g->pending[i];
        if (fate[i] == 2) log_add(n, now, "-", "superseded", 0, "a newer record of the alert was sent", &a, NULL, 1, 0,
                                  "notify", NULL);
        a->n_outstanding--;
        ack(n, a);
        alert_unref(a);
    }
    g->n_pending = 0;
    g->last_flush_ms = now;
    g->has_sent = 1;
    free(list);
    free(is_new);
    free(fate);
}

/* Repeats and escalation of one group. */
static void tick_group(mk_notify *n, group *g, int64_t now)
{
    const mk_notify_route *rt = &n->cfg.routes[g->route];
    if (!g->n_active || !g->has_sent) return;
    /* escalation */
    for (size_t t = 0; t < rt->n_tiers; t++) {
        if (g->tier_reached[t]) continue;
        int due = 0;
        for (size_t i = 0; i < g->n_active && !due; i++) {
            const alert *a = g->active[i];
            int64_t since = a->rec.fired_ms ? a->rec.fired_ms : a->rec.start_ms;
            due = a->rec.severity == MK_SEV_CRITICAL && now - since >= rt->tiers[t].after_ms && !suppressed(n, a, now);
        }
        if (!due) continue;
        g->tier_reached[t] = 1;
        alert **list = NULL;
        int *is_new = NULL;
        size_t k = add_active(n, g, &list, &is_new, 0, now);
        for (size_t i = 0; i < k; i++) is_new[i] = 1; /* new to this tier (commands run) */
        size_t s0 = rt->n_channels;
        for (size_t u = 0; u < t; u++) s0 += rt->tiers[u].n_channels;
        for (size_t c = 0; c < rt->tiers[t].n_channels; c++) {
            if (k) msg_new(n, g, rt->tiers[t].channels[c], list, is_new, k, 0, "escalation", now);
            g->slot_last_ms[s0 + c] = now;
        }
        free(list);
        free(is_new);
    }
    /* repeats */
    for (size_t s = 0; s < g->n_slots; s++) {
        size_t tier;
        size_t ch = slot_channel(rt, s, &tier);
        if (tier != SIZE_MAX && !g->tier_reached[tier]) continue;
        const mk_notify_channel *c = &n->cfg.channels[ch];
        /* kener alerts and commands act on changes only: never repeated */
        if (c->kind == MK_NOTIFY_KENER || c->kind == MK_NOTIFY_COMMAND) continue;
        int64_t every = c->kind == MK_NOTIFY_ALERTMANAGER ? c->resend_ms : rt->repeat_interval_ms;
        if (every <= 0 || !g->slot_last_ms[s] || now - g->slot_last_ms[s] < every || has_msg_for(n, g, ch)) continue;
        alert **list = NULL;
        int *is_new = NULL;
        size_t k = add_active(n, g, &list, &is_new, 0, now);
        if (k) msg_new(n, g, ch, list, is_new, k, 0, "repeat", now);
        g->slot_last_ms[s] = now;
        free(list);
        free(is_new);
    }
}

/* Flushes due groups, runs repeats/escalation; returns the next time
 * something falls due (INT64_MAX: nothing scheduled). */
static int64_t process_groups(mk_notify *n, int64_t now)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < n->n_groups; i++) {
        group *g = n->groups[i];
        const mk_notify_route *rt = &n->cfg.routes[g->route];
        if (g->n_pending) {
            int64_t due = g->first_pending_ms + rt->group_wait_ms;
            if (g->last_flush_ms && g->last_flush_ms + rt->group_interval_ms > due)
                due = g->last_flush_ms + rt->group_interval_ms;
            if (now >= due) flush_group(n, g, now);
            else if (due < next) next = due;
        }
        tick_group(n, g, now);
        if (g->n_active && g->has_sent) {
            /* next repeat or escalation check: at most a second away */
            if (now + 1000 < next) next = now + 1000;
        }
    }
    return next;
}

/* Takes a token of channel ch's rate limit; 0 = none now (*wait_until set). */
static int take_token(mk_notify *n, size_t ch, int64_t now, int64_t *wait_until)
{
    const mk_notify_channel *c = &n->cfg.channels[ch];
    chan_state *s = &n->chans[ch];
    if (!c->rate_count) return 1;
    double per_ms = (double)c->rate_count / (double)c->rate_per_ms;
    if (s->tokens_ms == 0) {
        s->tokens = c->rate_count;
        s->tokens_ms = now;
    }
    s->tokens += (double)(now - s->tokens_ms) * per_ms;
    if (s->tokens > c->rate_count) s->tokens = c->rate_count;
    s->tokens_ms = now;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        return 1;
    }
    *wait_until = now + (int64_t)((1.0 - s->tokens) / per_ms) + 1;
    return 0;
}

static msg *pick(mk_notify *n, int64_t now, int64_t *next)
{
    for (size_t i = 0; i < n->n_msgs; i++) {
        msg *m = n->msgs[i];
        if (m->is_inflight) continue;
        if (m->next_try_ms > now) {
            if (m->next_try_ms < *next) *next = m->next_try_ms;
            continue;
        }
        int64_t wait = 0;
        if (!take_token(n, m->channel, now, &wait)) {
            m->next_try_ms = wait;
            if (wait < *next) *next = wait;
            continue;
        }
        return m;
    }
    return NULL;
}

/* Sends m (mu held on entry and exit; released during the send). */
static void attempt(mk_notify *n, msg *m, int is_locked_send)
{
    m->is_inflight = 1;
    m->attempt++;
    mk_notify_alert_view *av = calloc(m->n ? m->n : 1, sizeof *av);
    mk_notify_result res;
    memset(&res, 0, sizeof res);
    const mk_notify_channel *ch = &n->cfg.channels[m->channel];
    int rc = -1;
    if (av) {
        for (size_t i = 0; i < m->n; i++) {
            av[i].rec = &m->alerts[i]->rec;
            memcpy(av[i].fp_hex, m->alerts[i]->fp_hex, sizeof av[i].fp_hex);
            av[i].is_new = m->is_new[i];
        }
        mk_notify_msg_view v = {ch, m->g->key, m->g->labels, m->g->n_labels, av, m->n, now_of(n), 0};
        /* alerts, group and config stay put while unlocked: the message
         * holds the alerts, groups are never freed before close, and close
         * waits for the workers */
        if (!is_locked_send) pthread_mutex_unlock(&n->mu);
        rc = mk_notify_send(&v, &res);
        if (!is_locked_send) pthread_mutex_lock(&n->mu);
    } else {
        snprintf(res.err, sizeof res.err, "out of memory");
    }
    free(av);
    int64_t now = now_of(n);
    m->is_inflight = 0;
    chan_state *cs = &n->chans[m->channel];
    cs->last_code = res.status;
    cs->last_ms = now;
    snprintf(cs->last_error, sizeof cs->last_error, "%s", res.err);
    if (rc == 0) {
        cs->n_sent++;
        n->st.n_sent++;
        log_add(n, now, ch->name, "ok", res.status, "", m->alerts, m->is_new, m->n, m->attempt, m->why, res.output);
        msg_finish(n, m);
        return;
    }
    cs->n_failed++;
    n->st.n_failed++;
    m->n_failures++;
    const mk_notify_route *rt = &n->cfg.routes[m->g->route];
    if (m->n_failures < ch->max_attempts) {
        m->next_try_ms = now + mk_notify_backoff_ms(ch->backoff_ms, ch->max_backoff_ms, m->n_failures, &n->rng);
        log_add(n, now, ch->name, "failed", res.status, res.err, m->alerts, m->is_new, m->n, m->attempt, m->why,
                res.output);
        return;
    }
    if (m->fallback_pos < rt->n_fallback) {
        size_t to = rt->fallback[m->fallback_pos++];
        char why[300];
        snprintf(why, sizeof why, "%s; %u failures in a row: handed to %s", res.err, m->n_failures,
                 n->cfg.channels[to].name);
        log_add(n, now, ch->name, "fallback", res.status, why, m->alerts, m->is_new, m->n, m->attempt, m->why,
                res.output);
        m->channel = to;
        m->n_failures = 0;
        m->next_try_ms = now;
        return;
    }
    cs->n_gave_up++;
    n->st.n_gave_up++;
    char why[300];
    snprintf(why, sizeof why, "%s; gave up after %u attempts", res.err, m->attempt);
    log_add(n, now, ch->name, "gave_up", res.status, why, m->alerts, m->is_new, m->n, m->attempt, m->why, res.output);
    msg_finish(n, m);
}

/* ---- workers -------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    mk_notify *n = arg;
    pthread_mutex_lock(&n->mu);
    while (!n->is_stopping) {
        int64_t now = now_of(n);
        if (n->is_kicked || now - n->last_scan_ms >= SCAN_EVERY_MS) {
            n->is_kicked = 0;
            ingest(n, now);
        }
        int64_t next = process_groups(n, now);
        msg *m = pick(n, now, &next);
        if (m) {
            attempt(n, m, 0);
            continue;
        }
        if (n->is_kicked || n->is_stopping) continue;
        int64_t until = n->last_scan_ms + SCAN_EVERY_MS;
        if (next < until) until = next;
        int64_t wait = until - now;
        if (wait < 1) wait = 1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (wait % 1000) * 1000000;
        ts.tv_sec += wait / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&n->cv, &n->mu, &ts);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

size_t mk_notify_run_once(mk_notify *n)
{
    size_t k = 0;
    pthread_mutex_lock(&n->mu);
    int64_t now = now_of(n);
    ingest(n, now);
    n->is_kicked = 0;
    process_groups(n, now);
    for (;;) {
        int64_t next = INT64_MAX;
        msg *m = pick(n, now, &next);
        if (!m) break;
        attempt(n, m, 1);
        k++;
    }
    pthread_mutex_unlock(&n->mu);
    return k;
}

void mk_notify_kick(mk_notify *n)
{
    if (!n) return;
    pthread_mutex_lock(&n->mu);
    n->is_kicked = 1;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

/* ---- open / close ------------------------------------------------------------------------ */

static int64_t os_now(mk_env *e)
{
    (void)e;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

mk_err mk_notify_open(mk_inc_store *store, mk_notify_config *cfg, const mk_notify_opts *opts, mk_notify **out,
                      mk_diag *diag)
{
    mk_notify_opts o;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    *out = NULL;
    mk_err err = MK_OK;
    mk_notify *n = calloc(1, sizeof *n);
    if (!n) return mk_diag_set(diag, MK_ENOMEM, "out of memory");
    n->store = store;
    n->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    n->env = o.env ? o.env : mk_env_default();
    if (!n->env->now_ms) n->env = mk_env_default();
    (void)os_now;
    n->is_silenced = o.is_silenced;
    n->silence_ctx = o.silence_ctx;
    n->rng = o.seed ? o.seed : (uint64_t)now_of(n) * 0x9E3779B97F4A7C15ull + 1;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    n->log_cap = o.log_keep ? o.log_keep : DEFAULT_LOG_KEEP;
    n->log = calloc(n->log_cap, sizeof *n->log);
    n->chans = calloc(n->cfg.n_channels ? n->cfg.n_channels : 1, sizeof *n->chans);
    if (!n->log || !n->chans) {
        err = mk_diag_set(diag, MK_ENOMEM, "out of memory");
        goto out;
    }
    /* no routes: one catch-all route to every channel */
    if (!n->cfg.n_routes && n->cfg.n_channels) {
        n->cfg.routes = calloc(1, sizeof *n->cfg.routes);
        size_t *chs = calloc(n->cfg.n_channels, sizeof *chs);
        char **gb = calloc(1, sizeof *gb);
        if (!n->cfg.routes || !chs || !gb || !(gb[0] = strdup("alertname"))) {
            free(chs);
            free(gb);
            err = mk_diag_set(diag, MK_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n->cfg.n_channels; i++) chs[i] = i;
        mk_notify_route *r = &n->cfg.routes[0];
        r->channels = chs;
        r->n_channels = n->cfg.n_channels;
        r->group_by = gb;
        r->n_group_by = 1;
        r->group_wait_ms = 30000;
        r->group_interval_ms = 300000;
        r->repeat_interval_ms = 4 * 3600000;
        n->cfg.n_routes = 1;
    }
    if (o.log_dir) {
        size_t k = strlen(o.log_dir) + 32;
        n->log_dir = strdup(o.log_dir);
        n->log_path = malloc(k);
        n->log_path_old = malloc(k);
        if (!n->log_dir || !n->log_path || !n->log_path_old) {
            err = mk_diag_set(diag, MK_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(n->log_path, k, "%s/deliveries.jsonl", o.log_dir);
        snprintf(n->log_path_old, k, "%s/deliveries.jsonl.1", o.log_dir);
        if (mkdir(o.log_dir, 0755) != 0 && errno != EEXIST) {
            err = mk_diag_set(diag, MK_EIO, "cannot create %s: %s", o.log_dir, strerror(errno));
            goto out;
        }
        log_load_file(n, n->log_path_old);
        log_load_file(n, n->log_path);
    }
    seed_active(n, now_of(n));
    if (o.n_workers) {
        n->threads = calloc(o.n_workers, sizeof *n->threads);
        if (!n->threads) {
            err = mk_diag_set(diag, MK_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < o.n_workers; i++) {
            if (pthread_create(&n->threads[i], NULL, worker_main, n) != 0) {
                err = mk_diag_set(diag, MK_EIO, "cannot start a notification worker");
                goto out;
            }
            n->n_threads++;
        }
    }
    *out = n;
    n = NULL;
out:
    mk_notify_close(n);
    return err;
}

void mk_notify_close(mk_notify *n)
{
    if (!n) return;
    pthread_mutex_lock(&n->mu);
    n->is_stopping = 1;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < n->n_threads; i++) pthread_join(n->threads[i], NULL);
    free(n->threads);
    for (size_t i = 0; i < n->n_msgs; i++) msg_free(n->msgs[i]);
    free(n->msgs);
    for (size_t i = 0; i < n->n_groups; i++) {
        group *g = n->groups[i];
        for (size_t k = 0; k < g->n_pending; k++) alert_unref(g->pending[k]);
        for (size_t k = 0; k < g->n_active; k++) alert_unref(g->active[k]);
        free(g->pending);
        free(g->active);
        free(g->key);
        mk_labels_free(g->labels, g->n_labels);
        free(g->slot_last_ms);
        free(g->tier_reached);
        free(g);
    }
    free(n->groups);
    for (size_t i = 0; i < n->log_n; i++) logent_clear(&n->log[(n->log_head + i) % n->log_cap]);
    free(n->log);
    free(n->chans);
    if (n->log_file) fclose(n->log_file);
    free(n->log_dir);
    free(n->log_path);
    free(n->log_path_old);
    mk_notify_config_free(&n->cfg);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

/* ---- reporting -------------------------------------------------------------------------- */

json_t *mk_notify_channels_json(mk_notify *n)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; arr && i < n->cfg.n_channels; i++) {
        const mk_notify_channel *c = &n->cfg.channels[i];
        const chan_state *s = &n->chans[i];
        json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:i,s:s}", "name", c->name, "kind", mk_notify_kind_name(c->kind),
                              "sent", (json_int_t)s->n_sent, "failed", (json_int_t)s->n_failed, "gave_up",
                              (json_int_t)s->n_gave_up, "last_code", s->last_code, "last_error", s->last_error);
        if (!o) continue;
        if (c->kind == MK_NOTIFY_EMAIL) {
            json_object_set_new(o, "smtp_url", json_string(c->smtp_url));
            json_object_set_new(o, "starttls", json_boolean(c->is_starttls));
        } else if (c->kind == MK_NOTIFY_COMMAND) {
            json_object_set_new(o, "program", json_string(c->argv[0]));
        } else if (c->kind != MK_NOTIFY_TEMPLATE) {
            /* template URLs may hold tokens (Telegram, Slack): not listed */
            json_object_set_new(o, "url", json_string(c->url));
        }
        if (c->rate_count)
            json_object_set_new(o, "rate_limit", json_pack("{s:i,s:I}", "count", (int)c->rate_count, "per_ms",
                                                           (json_int_t)c->rate_per_ms));
        json_object_set_new(o, "max_attempts", json_integer(c->max_attempts));
        json_array_append_new(arr, o);
    }
    json_t *routes = json_array();
    for (size_t i = 0; routes && i < n->cfg.n_routes; i++) {
        const mk_notify_route *r = &n->cfg.routes[i];
        json_t *chs = json_array(), *fb = json_array();
        for (size_t k = 0; k < r->n_channels; k++) json_array_append_new(chs, json_string(n->cfg.channels[r->channels[k]].name));
        for (size_t k = 0; k < r->n_fallback; k++) json_array_append_new(fb, json_string(n->cfg.channels[r->fallback[k]].name));
        json_array_append_new(routes, json_pack("{s:o,s:o,s:I,s:I,s:I,s:b}", "channels", chs, "fallback", fb,
                                                "group_wait_ms", (json_int_t)r->group_wait_ms, "group_interval_ms",
                                                (json_int_t)r->group_interval_ms, "repeat_interval_ms",
                                                (json_int_t)r->repeat_interval_ms, "continue", r->is_continue));
    }
    pthread_mutex_unlock(&n->mu);
    return json_pack("{s:o,s:o}", "channels", arr, "routes", routes);
}

json_t *mk_notify_log_json(mk_notify *n, uint64_t incident_id, const char *channel, const char *status, size_t limit)
{
    json_t *arr = json_array();
    if (!limit) limit = 1000;
    pthread_mutex_lock(&n->mu);
    for (size_t i = n->log_n; arr && i-- > 0 && json_array_size(arr) < limit;) {
        const logent *e = &n->log[(n->log_head + i) % n->log_cap];
        if (channel && strcmp(e->channel, channel)) continue;
        if (status && strcmp(e->status, status)) continue;
        if (incident_id) {
            int hit = 0;
            for (size_t k = 0; k < e->n_incidents && !hit; k++) hit = e->incidents[k] == incident_id;
            if (!hit) continue;
        }
        json_array_append_new(arr, logent_json(e));
    }
    pthread_mutex_unlock(&n->mu);
    return json_pack("{s:o}", "notifications", arr);
}

void mk_notify_get_stats(mk_notify *n, mk_notify_stats *st)
{
    pthread_mutex_lock(&n->mu);
    *st = n->st;
    st->n_pending_messages = n->n_msgs;
    pthread_mutex_unlock(&n->mu);
}

void mk_notify_metrics(mk_notify *n, mk_buf *b)
{
    if (!n) return;
    char t[1200];
    int k;
    pthread_mutex_lock(&n->mu);
    static const char *const head =
        "# HELP meerkat_notifications_sent_total Messages a channel accepted.\n"
        "# TYPE meerkat_notifications_sent_total counter\n";
    mk_buf_append(b, head, strlen(head));
    for (size_t i = 0; i < n->cfg.n_channels; i++) {
        k = snprintf(t, sizeof t, "meerkat_notifications_sent_total{channel=\"%s\"} %" PRIu64 "\n",
                     n->cfg.channels[i].name, n->chans[i].n_sent);
        mk_buf_append(b, t, (size_t)k);
    }
    static const char *const h2 = "# HELP meerkat_notifications_failed_total Failed delivery attempts.\n"
                                  "# TYPE meerkat_notifications_failed_total counter\n";
    mk_buf_append(b, h2, strlen(h2));
    for (size_t i = 0; i < n->cfg.n_channels; i++) {
        k = snprintf(t, sizeof t, "meerkat_notifications_failed_total{channel=\"%s\"} %" PRIu64 "\n",
                     n->cfg.channels[i].name, n->chans[i].n_failed);
        mk_buf_append(b, t, (size_t)k);
    }
    k = snprintf(t, sizeof t,
                 "# HELP meerkat_notifications_gave_up_total Messages dropped after the last retry and fallback.\n"
                 "# TYPE meerkat_notifications_gave_up_total counter\nmeerkat_notifications_gave_up_total %" PRIu64 "\n"
                 "# HELP meerkat_notifications_suppressed_total Alerts not sent: silenced or inhibited.\n"
                 "# TYPE meerkat_notifications_suppressed_total counter\n"
                 "meerkat_notifications_suppressed_total{reason=\"silenced\"} %" PRIu64 "\n"
                 "meerkat_notifications_suppressed_total{reason=\"inhibited\"} %" PRIu64 "\n"
                 "# HELP meerkat_notification_messages_queued Messages waiting to be sent or retried.\n"
                 "# TYPE meerkat_notification_messages_queued gauge\nmeerkat_notification_messages_queued %zu\n",
                 n->st.n_gave_up, n->st.n_silenced, n->st.n_inhibited, n->n_msgs);
    mk_buf_append(b, t, (size_t)k);
    pthread_mutex_unlock(&n->mu);
}

int mk_notify_test(const mk_notify_config *cfg, size_t ch, int *status, char *err, size_t err_cap)
{
    mk_label labels[2] = {{"service", "meerkat-test"}, {"instance", "notify-test"}};
    mk_label anns[1] = {{"summary", "Test notification from meerkat notify test"}};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    mk_outbox_rec r;
    memset(&r, 0, sizeof r);
    r.seq = 0;
    r.incident_id = 0;
    r.rule = "meerkat-test";
    r.labels = labels;
    r.n_labels = 2;
    r.annotations = anns;
    r.n_annotations = 1;
    r.event = MK_EV_FIRING;
    r.state = MK_INC_FIRING;
    r.severity = MK_SEV_WARNING;
    r.start_ms = r.fired_ms = r.event_ms = now;
    r.value = 1;
    r.threshold = 0;
    r.reason = "test";
    mk_notify_alert_view av;
    memset(&av, 0, sizeof av);
    av.rec = &r;
    av.is_new = 1;
    snprintf(av.fp_hex, sizeof av.fp_hex, "%016" PRIx64, mk_notify_fingerprint(r.rule, labels, 2));
    mk_notify_msg_view v = {&cfg->channels[ch], "{}:{alertname=\"meerkat-test\"}", NULL, 0, &av, 1, now, 1};
    mk_notify_result res;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = mk_notify_send(&v, &res);
    *status = res.status;
    snprintf(err, err_cap, "%s", rc == 0 ? (res.output[0] ? res.output : "") : res.err);
    return rc;
}

/*
 * server/alerts.c — rule engine, evaluation thread and the alert APIs (see
 * alerts.h).
 *
 * Locks: rules_mu serialises PUT/DELETE of rules (file, then engine) so the
 * files in rules.d and the engine agree; sil_mu guards the silences and
 * their file. The engine and its incident store have their own mutexes.
 * rules_mu is held while the engine's mutex is taken (PUT, DELETE); no
 * other lock nests. The pure parts (times, silences, filters) are alertq.c.
 */
#include "alerts.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alertq.h"
#include "env.h"
#include "score_adapter.h"
#include "slog.h"

#define SILENCE_KEEP_MS 86400000LL /* expired silences stay listed this long */
#define MAX_SILENCES 10000
#define KICK_GAP_MS 50   /* kicked evaluations at most this often */
#define MAX_KICKED 64    /* distinct measurements remembered between two evaluations */
struct mk_alerts {
    mk_db *db;               /* borrowed */
    char *data_dir;          /* owned */
    char *rules_dir;         /* owned: DATA/rules.d */
    mk_rule_engine *eng;
    mk_score_adapter score;  /* used only under the engine's mutex */
    mk_rule_set config_rules; /* copy of the config's rules (for tombstones) */
    pthread_mutex_t rules_mu;
    pthread_mutex_t sil_mu;
    mk_alertq_silence *sil;
    size_t n_sil, cap_sil;
    uint64_t next_sil_id;
    pthread_t thread;
    int has_thread;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    int is_stopping;         /* under stop_mu */
    char last_err[256];      /* evaluation thread only: last error logged */
    /* kicks (under stop_mu): measurements written since the last evaluation */
    char *kicked[MAX_KICKED];
    size_t n_kicked;
    int64_t last_kick_eval_ms;
    /* measurements of the non-heartbeat rules (under meas_mu): what a
     * write is checked against */
    pthread_mutex_t meas_mu;
    char **meas;
    size_t n_meas;
    void (*on_outbox)(void *ctx); /* under stop_mu */
    void *on_outbox_ctx;
};

/* ---- small helpers ------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *err_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *err_json(const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_pack("{s:s}", "error", msg);
}

static json_t *num_json(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int is_name_ok(const char *s)
{
    if (!*s || strlen(s) > 200) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static char *path_join(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

static int file_exists(const char *dir, const char *name, const char *suffix)
{
    char *p = path_join(dir, name, suffix);
    struct stat st;
    int ok = p && stat(p, &st) == 0;
    free(p);
    return ok;
}

static void unlink_in(const char *dir, const char *name, const char *suffix)
{
    char *p = path_join(dir, name, suffix);
    if (p) unlink(p);
    free(p);
}

/* ---- rules as JSON -------------------------------------------------------- */

static const char *cmp_text(mk_rule_cmp op)
{
    return op == MK_CMP_GT ? ">" : op == MK_CMP_GE ? ">=" : op == MK_CMP_LT ? "<" : op == MK_CMP_LE ? "<=" : "?";
}

/* Durations as the YAML accepts them ("90000ms"), so a GET answer can be PUT back. */
static json_t *dur_json(int64_t ms)
{
    char b[32];
    if (ms % 1000 == 0) snprintf(b, sizeof b, "%" PRId64 "s", ms / 1000);
    else snprintf(b, sizeof b, "%" PRId64 "ms", ms);
    return json_string(b);
}

static json_t *labels_json(const mk_label *l, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++) json_object_set_new(o, l[i].key, json_string(l[i].value));
    return o;
}

/* One rule in the keys of its YAML form (readable back by mk_rule_parse_one). */
static json_t *rule_json(const mk_rule *r, const char *source)
{
    static const char *const reduces[] = {"last", "mean", "max", "min", "sum", "count"};
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "kind", json_string(mk_rule_kind_name(r->kind)));
    json_object_set_new(o, "measurement", json_string(r->measurement));
    json_object_set_new(o, "field", json_string(r->field));
    if (r->n_tags) {
        json_t *t = json_object();
        for (size_t i = 0; t && i < r->n_tags; i++) {
            char *v = malloc(strlen(r->tags[i].value) + 2);
            if (!v) continue;
            sprintf(v, "%s%s", r->tags[i].is_negated ? "!" : "", r->tags[i].value);
            json_object_set_new(t, r->tags[i].key, json_string(v));
            free(v);
        }
        json_object_set_new(o, "tags", t);
    }
    char b[128];
    if (r->kind == MK_RULE_THRESHOLD) {
        snprintf(b, sizeof b, "%s %s %.17g", r->field, cmp_text(r->fire.op), r->fire.value);
        json_object_set_new(o, "expr", json_string(b));
        if (r->clear.op != MK_CMP_NONE) {
            snprintf(b, sizeof b, "%s %s %.17g", r->field, cmp_text(r->clear.op), r->clear.value);
            json_object_set_new(o, "clear", json_string(b));
        }
    }
    if (r->kind != MK_RULE_HEARTBEAT && r->kind != MK_RULE_ANOMALY && (unsigned)r->reduce < 6)
        json_object_set_new(o, "reduce", json_string(reduces[r->reduce]));
    json_object_set_new(o, "interval", dur_json(r->interval_ms));
    json_object_set_new(o, "window", dur_json(r->window_ms));
    switch (r->kind) {
    case MK_RULE_DYNAMIC:
        json_object_set_new(o, "k", json_real(r->k));
        json_object_set_new(o, "clear_k", json_real(r->clear_k));
        json_object_set_new(o, "history", dur_json(r->history_ms));
        break;
    case MK_RULE_SEASONAL:
        json_object_set_new(o, "baseline", dur_json(r->season_ms));
        json_object_set_new(o, "ratio", json_real(r->ratio));
        json_object_set_new(o, "clear_ratio", json_real(r->clear_ratio));
        json_object_set_new(o, "direction", json_string(r->direction > 0 ? "above" : r->direction < 0 ? "below" : "both"));
        break;
    case MK_RULE_ANOMALY:
        json_object_set_new(o, "above", json_real(r->score_above));
        json_object_set_new(o, "clear_below", json_real(r->score_clear));
        break;
    case MK_RULE_HEARTBEAT:
        if (r->cron_expr) json_object_set_new(o, "cron", json_string(r->cron_expr));
        if (r->tz_name) json_object_set_new(o, "tz", json_string(r->tz_name));
        if (r->period_ms) json_object_set_new(o, "period", dur_json(r->period_ms));
        if (r->grace_ms) json_object_set_new(o, "grace", dur_json(r->grace_ms));
        if (r->degraded_after_ms) json_object_set_new(o, "degraded_after", dur_json(r->degraded_after_ms));
        if (r->down_after_ms) json_object_set_new(o, "down_after", dur_json(r->down_after_ms));
        break;
    default: break;
    }
    const mk_inc_policy *p = &r->policy;
    if (p->for_ms) json_object_set_new(o, "for", dur_json(p->for_ms));
    json_object_set_new(o, "failures", json_integer(p->failures));
    json_object_set_new(o, "successes", json_integer(p->successes));
    if (p->cooldown_ms) json_object_set_new(o, "cooldown", dur_json(p->cooldown_ms));
    if (p->repeat_ms) json_object_set_new(o, "repeat", dur_json(p->repeat_ms));
    if (p->flap_window)
        json_object_set_new(o, "flap", json_pack("{s:i,s:f,s:f}", "window", (int)p->flap_window, "high",
                                                 p->flap_high_pct, "low", p->flap_low_pct));
    json_object_set_new(o, "severity", json_string(mk_severity_name(r->severity)));
    if (r->n_labels) json_object_set_new(o, "labels", labels_json(r->labels, r->n_labels));
    if (r->n_annotations) json_object_set_new(o, "annotations", labels_json(r->annotations, r->n_annotations));
    /* not rule keys: where it comes from (a PUT answer may still be re-PUT
     * after dropping it) */
    if (source) json_object_set_new(o, "source", json_string(source));
    return o;
}


/* Room for one more silence; -1 on OOM (the list is untouched). */
static int grow_sil(mk_alerts *a)
{
    if (a->n_sil < a->cap_sil) return 0;
    size_t nc = a->cap_sil ? a->cap_sil * 2 : 16;
    mk_alertq_silence *p = realloc(a->sil, nc * sizeof *p);
    if (!p) return -1;
    a->sil = p;
    a->cap_sil = nc;
    return 0;
}

/* Drops silences expired for more than SILENCE_KEEP_MS. Under sil_mu. */
static void silences_prune(mk_alerts *a, int64_t now)
{
    size_t w = 0;
    for (size_t i = 0; i < a->n_sil; i++) {
        if (a->sil[i].ends_ms + SILENCE_KEEP_MS < now) mk_alertq_silence_clear(&a->sil[i]);
        else a->sil[w++] = a->sil[i];
    }
    a->n_sil = w;
}

/* Rewrites DATA/silences.json atomically. Under sil_mu. */
static mk_err silences_save(mk_alerts *a, int64_t now, mk_diag *diag)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < a->n_sil; i++) json_array_append_new(arr, mk_alertq_silence_json(&a->sil[i], now));
    json_t *root = json_pack("{s:I,s:o}", "next_id", (json_int_t)a->next_sil_id, "silences", arr);
    char *txt = root ? json_dumps(root, JSON_INDENT(1)) : NULL;
    json_decref(root);
    if (!txt) return mk_diag_set(diag, MK_ENOMEM, "out of memory writing silences");
    mk_err err = mk_env_write_file_atomic(mk_env_default(), a->data_dir, "silences.json", txt, strlen(txt), diag);
    free(txt);
    return err;
}

static void silences_load(mk_alerts *a)
{
    char *path = path_join(a->data_dir, "silences", ".json");
    uint8_t *data = NULL;
    size_t n = 0;
    mk_diag d = {0};
    a->next_sil_id = 1;
    if (!path) return;
    mk_err err = mk_env_read_file(mk_env_default(), path, &data, &n, &d);
    if (err) {
        if (err != MK_ENOTFOUND)
            mk_slog(MK_SLOG_ERROR, "cannot read silences", "file", path, "error", d.msg, (const char *)NULL);
        free(path);
        return;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)data, n, 0, &je);
    free(data);
    json_t *arr = root ? json_object_get(root, "silences") : NULL;
    if (!json_is_array(arr)) {
        mk_slog(MK_SLOG_ERROR, "silences file is not valid: ignored", "file", path, "error",
                root ? "no silences list" : je.text, (const char *)NULL);
        json_decref(root);
        free(path);
        return;
    }
    json_t *nid = json_object_get(root, "next_id");
    if (json_is_integer(nid) && json_integer_value(nid) > 0) a->next_sil_id = (uint64_t)json_integer_value(nid);
    size_t i;
    json_t *it;
    int64_t now = now_ms();
    json_array_foreach(arr, i, it)
    {
        mk_alertq_silence s;
        char err2[300];
        if (grow_sil(a) != 0) break;
        if (mk_alertq_silence_from_json(it, 1, now, &s, err2, sizeof err2)) {
            mk_slog(MK_SLOG_WARN, "stored silence skipped", "file", path, "error", err2, (const char *)NULL);
            continue;
        }
        if (s.id >= a->next_sil_id) a->next_sil_id = s.id + 1;
        a->sil[a->n_sil++] = s;
    }
    json_decref(root);
    free(path);
}

int mk_alerts_is_silenced(mk_alerts *a, const char *rule, const mk_label *labels, size_t n_labels, int64_t now)
{
    int hit = 0;
    pthread_mutex_lock(&a->sil_mu);
    for (size_t i = 0; i < a->n_sil && !hit; i++)
        hit = now >= a->sil[i].starts_ms && now < a->sil[i].ends_ms && mk_alertq_silence_matches(&a->sil[i], rule, labels, n_labels);
    pthread_mutex_unlock(&a->sil_mu);
    return hit;
}

/* ---- the evaluation thread ---------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *eval_main(void *arg)
{
    mk_alerts *a = arg;
    pthread_mutex_lock(&a->stop_mu);
    while (!a->is_stopping) {
        /* wake 20 ms past the next whole second: rules run on multiples of
         * their interval, so this is when the next ones fall due; a kick
         * (a write to a rule's measurement) wakes it sooner */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        ts.tv_nsec = 20 * 1000 * 1000;
        int is_kick = 0;
        while (!a->is_stopping) {
            if (a->n_kicked && mono_ms() - a->last_kick_eval_ms >= KICK_GAP_MS) {
                is_kick = 1;
                break;
            }
            struct timespec w = ts;
            if (a->n_kicked) { /* wait out the gap only */
                clock_gettime(CLOCK_REALTIME, &w);
                w.tv_nsec += KICK_GAP_MS * 1000000L;
                if (w.tv_nsec >= 1000000000L) {
                    w.tv_sec++;
                    w.tv_nsec -= 1000000000L;
                }
                if (w.tv_sec > ts.tv_sec || (w.tv_sec == ts.tv_sec && w.tv_nsec > ts.tv_nsec)) w = ts;
            }
            if (pthread_cond_timedwait(&a->stop_cv, &a->stop_mu, &w) == ETIMEDOUT && !a->n_kicked) break;
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            if (now.tv_sec > ts.tv_sec || (now.tv_sec == ts.tv_sec && now.tv_nsec >= ts.tv_nsec)) break;
        }
        if (a->is_stopping) break;
        char *kicked[MAX_KICKED];
        size_t n_kicked = a->n_kicked;
        memcpy(kicked, a->kicked, n_kicked * sizeof *kicked);
        a->n_kicked = 0;
        if (n_kicked) a->last_kick_eval_ms = mono_ms();
        pthread_mutex_unlock(&a->stop_mu);
        (void)is_kick;
        for (size_t i = 0; i < n_kicked; i++) {
            mk_rule_engine_mark_due(a->eng, kicked[i]);
            free(kicked[i]);
        }
        mk_diag d = {0};
        mk_rule_eval_stats st = {0};
        if (mk_rule_engine_evaluate(a->eng, now_ms(), &st, &d) != MK_OK) {
            /* one line per distinct problem, not one per second */
            if (strncmp(a->last_err, d.msg, sizeof a->last_err - 1) != 0) {
                mk_slog(MK_SLOG_ERROR, "rule evaluation failed", "error", d.msg, (const char *)NULL);
                snprintf(a->last_err, sizeof a->last_err, "%.255s", d.msg);
            }
        } else {
            a->last_err[0] = 0;
        }
        pthread_mutex_lock(&a->stop_mu);
        if (st.n_notifications && a->on_outbox) a->on_outbox(a->on_outbox_ctx);
    }
    pthread_mutex_unlock(&a->stop_mu);
    return NULL;
}

/* Re-reads the measurements the non-heartbeat rules watch. */
static void meas_refresh(mk_alerts *a)
{
    mk_rule_set set;
    if (mk_rule_engine_rules(a->eng, &set, NULL) != MK_OK) return;
    char **m = calloc(set.n ? set.n : 1, sizeof *m);
    size_t k = 0;
    for (size_t i = 0; m && i < set.n; i++) {
        if (set.rules[i].kind == MK_RULE_HEARTBEAT || !set.rules[i].measurement) continue;
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++) dup = !strcmp(m[j], set.rules[i].measurement);
        if (!dup && (m[k] = strdup(set.rules[i].measurement))) k++;
    }
    mk_rule_set_free(&set);
    if (!m) return;
    pthread_mutex_lock(&a->meas_mu);
    for (size_t i = 0; i < a->n_meas; i++) free(a->meas[i]);
    free(a->meas);
    a->meas = m;
    a->n_meas = k;
    pthread_mutex_unlock(&a->meas_mu);
}

mk_inc_store *mk_alerts_store(mk_alerts *a) { return mk_rule_engine_store(a->eng); }

void mk_alerts_set_outbox_hook(mk_alerts *a, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&a->stop_mu);
    a->on_outbox = fn;
    a->on_outbox_ctx = ctx;
    pthread_mutex_unlock(&a->stop_mu);
}

/* Line protocol measurement at the start of p[0..n): unescaped into out
 * (cap bytes); 0 when none (blank, comment, too long). */
static size_t lp_measurement(const char *p, size_t n, char *out, size_t cap)
{
    size_t i = 0, k = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
    if (i >= n || p[i] == '#') return 0;
    for (; i < n && p[i] != ',' && p[i] != ' ' && p[i] != '\n'; i++) {
        if (p[i] == '\\' && i + 1 < n && p[i + 1] != '\n') i++;
        if (k + 1 >= cap) return 0;
        out[k++] = p[i];
    }
    out[k] = 0;
    return k;
}

void mk_alerts_kick(mk_alerts *a, const char *text, size_t n)
{
    if (!a || !text) return;
    char cur[256], prev[256] = "";
    const char *hit[MAX_KICKED];
    size_t n_hit = 0;
    pthread_mutex_lock(&a->meas_mu);
    if (a->n_meas) {
        for (size_t off = 0; off < n;) {
            const char *nl = memchr(text + off, '\n', n - off);
            size_t len = nl ? (size_t)(nl - (text + off)) : n - off;
            if (lp_measurement(text + off, len, cur, sizeof cur) && strcmp(cur, prev) != 0) {
                memcpy(prev, cur, sizeof cur);
                for (size_t i = 0; i < a->n_meas && n_hit < MAX_KICKED; i++)
                    if (!strcmp(a->meas[i], cur)) {
                        int dup = 0;
                        for (size_t j = 0; j < n_hit && !dup; j++) dup = hit[j] == a->meas[i];
                        if (!dup) hit[n_hit++] = a->meas[i];
                    }
            }
            off += len + 1;
        }
    }
    if (!n_hit) {
        pthread_mutex_unlock(&a->meas_mu);
        return;
    }
    pthread_mutex_lock(&a->stop_mu);
    for (size_t i = 0; i < n_hit; i++) {
        int dup = 0;
        for (size_t j = 0; j < a->n_kicked && !dup; j++) dup = !strcmp(a->kicked[j], hit[i]);
        if (!dup && a->n_kicked < MAX_KICKED) {
            char *c = strdup(hit[i]);
            if (c) a->kicked[a->n_kicked++] = c;
        }
    }
    pthread_cond_signal(&a->stop_cv);
    pthread_mutex_unlock(&a->stop_mu);
    pthread_mutex_unlock(&a->meas_mu);
}

/* ---- open / close ----------------------------------------------------------- */

static void engine_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    mk_slog(level <= 0 ? MK_SLOG_ERROR : level == 1 ? MK_SLOG_WARN : MK_SLOG_INFO, msg, "component", "rules",
            (const char *)NULL);
}

/* Replaces (or appends) rule r in set s, taking ownership of *r. */
static int set_put(mk_rule_set *s, mk_rule *r)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->rules[i].name, r->name) == 0) {
            mk_rule_clear(&s->rules[i]);
            s->rules[i] = *r;
            return 0;
        }
    mk_rule *p = realloc(s->rules, (s->n + 1) * sizeof *p);
    if (!p) return -1;
    s->rules = p;
    s->rules[s->n++] = *r;
    return 0;
}

static void set_delete(mk_rule_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->rules[i].name, name) == 0) {
            mk_rule_clear(&s->rules[i]);
            memmove(&s->rules[i], &s->rules[i + 1], (s->n - i - 1) * sizeof *s->rules);
            s->n--;
            return;
        }
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

/* Applies rules.d to set: N.yaml overrides, N.deleted removes. Files that
 * do not parse are reported and skipped (the config's rule stays). */
static void apply_rules_dir(mk_alerts *a, mk_rule_set *set)
{
    DIR *dir = opendir(a->rules_dir);
    if (!dir) return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **p = realloc(names, nc * sizeof *p);
            if (!p) break;
            names = p;
            cap = nc;
        }
        if ((names[n] = strdup(e->d_name))) n++;
    }
    closedir(dir);
    qsort(names, n, sizeof *names, cmp_str); /* a stable order for the rule list */
    for (size_t i = 0; i < n; i++) {
        char *nm = names[i];
        size_t len = strlen(nm);
        if (len > 8 && strcmp(nm + len - 8, ".deleted") == 0) {
            nm[len - 8] = 0;
            set_delete(set, nm);
            continue;
        }
        if (len <= 5 || strcmp(nm + len - 5, ".yaml") != 0) continue;
        nm[len - 5] = 0;
        char *path = path_join(a->rules_dir, nm, ".yaml");
        uint8_t *data = NULL;
        size_t dn = 0;
        mk_diag d = {0};
        mk_rule r;
        if (!path || !is_name_ok(nm) || mk_env_read_file(mk_env_default(), path, &data, &dn, &d) != MK_OK ||
            mk_rule_parse_one((const char *)data, dn, nm, &r, &d) != MK_OK) {
            mk_slog(MK_SLOG_ERROR, "rule file skipped", "file", path ? path : nm, "error", d.msg, (const char *)NULL);
        } else if (set_put(set, &r) != 0) {
            mk_rule_clear(&r);
        }
        free(data);
        free(path);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

mk_err mk_alerts_open(mk_db *db, const char *data_dir, const mk_rule_set *config_rules, mk_alerts **out,
                      mk_diag *diag)
{
    *out = NULL;
    mk_err err = MK_OK;
    mk_rule_set set = {0};
    char *inc_dir = NULL;
    mk_alerts *a = calloc(1, sizeof *a);
    if (!a) return mk_diag_set(diag, MK_ENOMEM, "out of memory");
    a->db = db;
    pthread_mutex_init(&a->rules_mu, NULL);
    pthread_mutex_init(&a->sil_mu, NULL);
    pthread_mutex_init(&a->stop_mu, NULL);
    pthread_mutex_init(&a->meas_mu, NULL);
    pthread_cond_init(&a->stop_cv, NULL);
    mk_score_adapter_init(&a->score, db);
    a->data_dir = strdup(data_dir);
    a->rules_dir = path_join(data_dir, "rules.d", "");
    inc_dir = path_join(data_dir, "incidents", "");
    if (!a->data_dir || !a->rules_dir || !inc_dir) {
        err = mk_diag_set(diag, MK_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; config_rules && i < config_rules->n; i++) {
        mk_rule r, r2;
        if ((err = mk_rule_copy(&config_rules->rules[i], &r, diag))) goto out;
        if ((err = mk_rule_copy(&config_rules->rules[i], &r2, diag))) {
            mk_rule_clear(&r);
            goto out;
        }
        if (set_put(&set, &r) || set_put(&a->config_rules, &r2)) {
            err = mk_diag_set(diag, MK_ENOMEM, "out of memory");
            goto out;
        }
    }
    apply_rules_dir(a, &set);
    for (size_t i = 0; i < set.n; i++)
        if (set.rules[i].window_ms > a->score.keep_ms) a->score.keep_ms = set.rules[i].window_ms;
    mk_rule_engine_opts eo = {0};
    eo.incident_dir = inc_dir;
    eo.score = mk_score_adapter_fn;
    eo.score_ctx = &a->score;
    eo.log = engine_log;
    if ((err = mk_rule_engine_open(db, &set, &eo, &a->eng, diag))) goto out;
    silences_load(a);
    meas_refresh(a);
    if (pthread_create(&a->thread, NULL, eval_main, a) != 0) {
        err = mk_diag_set(diag, MK_EIO, "cannot start the rule evaluation thread");
        goto out;
    }
    a->has_thread = 1;
    char nr[32];
    snprintf(nr, sizeof nr, "%zu", set.n);
    mk_slog(MK_SLOG_INFO, "rules loaded", "rules", nr, (const char *)NULL);
    *out = a;
    a = NULL;
out:
    mk_rule_set_free(&set);
    free(inc_dir);
    mk_alerts_close(a);
    return err;
}

void mk_alerts_close(mk_alerts *a)
{
    if (!a) return;
    if (a->has_thread) {
        pthread_mutex_lock(&a->stop_mu);
        a->is_stopping = 1;
        pthread_cond_signal(&a->stop_cv);
        pthread_mutex_unlock(&a->stop_mu);
        pthread_join(a->thread, NULL);
    }
    mk_diag d = {0};
    if (a->eng && mk_rule_engine_close(a->eng, &d) != MK_OK)
        mk_slog(MK_SLOG_ERROR, "closing the incident log failed", "error", d.msg, (const char *)NULL);
    mk_score_adapter_free(&a->score);
    mk_rule_set_free(&a->config_rules);
    for (size_t i = 0; i < a->n_sil; i++) mk_alertq_silence_clear(&a->sil[i]);
    free(a->sil);
    pthread_mutex_destroy(&a->rules_mu);
    pthread_mutex_destroy(&a->sil_mu);
    pthread_mutex_destroy(&a->stop_mu);
    pthread_cond_destroy(&a->stop_cv);
    for (size_t i = 0; i < a->n_kicked; i++) free(a->kicked[i]);
    for (size_t i = 0; i < a->n_meas; i++) free(a->meas[i]);
    free(a->meas);
    pthread_mutex_destroy(&a->meas_mu);
    free(a->data_dir);
    free(a->rules_dir);
    free(a);
}

void mk_alerts_on_beat(mk_alerts *a, uint64_t status_series_id, int64_t ts_ms, double status)
{
    if (a) mk_rule_engine_on_sample(a->eng, status_series_id, ts_ms, status);
}

/* ---- /api/incidents --------------------------------------------------------- */

static json_t *incident_json(mk_alerts *a, const mk_incident *inc, int64_t now)
{
    json_t *o = json_object();
    if (!o) return NULL;
    char sid[24];
    snprintf(sid, sizeof sid, "%016" PRIx64, inc->series_id);
    json_object_set_new(o, "id", json_integer((json_int_t)inc->id));
    json_object_set_new(o, "rule", json_string(inc->rule));
    json_object_set_new(o, "state", json_string(mk_inc_state_name(inc->state)));
    json_object_set_new(o, "severity", json_string(mk_severity_name(inc->severity)));
    json_object_set_new(o, "labels", labels_json(inc->labels, inc->n_labels));
    json_object_set_new(o, "annotations", labels_json(inc->annotations, inc->n_annotations));
    json_object_set_new(o, "started_at", mk_alertq_time_json(inc->start_ms));
    json_object_set_new(o, "fired_at", mk_alertq_time_json(inc->fired_ms));
    json_object_set_new(o, "ended_at", mk_alertq_time_json(inc->end_ms));
    json_object_set_new(o, "updated_at", mk_alertq_time_json(inc->updated_ms));
    json_object_set_new(o, "peak", num_json(inc->peak));
    json_object_set_new(o, "value", num_json(inc->value));
    json_object_set_new(o, "threshold", num_json(inc->threshold));
    json_object_set_new(o, "reason", json_string(inc->reason ? inc->reason : ""));
    json_object_set_new(o, "flapping", json_boolean(inc->is_flapping));
    json_object_set_new(o, "silenced",
                        json_boolean(inc->state != MK_INC_RESOLVED &&
                                     mk_alerts_is_silenced(a, inc->rule, inc->labels, inc->n_labels, now)));
    json_object_set_new(o, "series_id", json_string(sid));
    return o;
}

static int h_incidents(mk_alerts *a, const char *method, const char *rest, const mk_alerts_arg *args, size_t n_args,
                       json_t **out)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        *out = err_json("use GET");
        return 405;
    }
    mk_inc_store *st = mk_rule_engine_store(a->eng);
    int64_t now = now_ms();
    mk_diag d = {0};
    if (*rest) {
        char *end;
        errno = 0;
        unsigned long long id = strtoull(rest, &end, 10);
        if (*end || errno || !id || *rest == '-' || *rest == '+') {
            *out = err_json("no incident %.100s: ids are positive integers", rest);
            return 404;
        }
        mk_incident inc;
        mk_err err = mk_inc_get(st, (uint64_t)id, &inc, &d);
        if (err == MK_ENOTFOUND) {
            *out = err_json("no incident %llu", id);
            return 404;
        }
        if (err) {
            *out = err_json("%s", d.msg);
            return 500;
        }
        *out = incident_json(a, &inc, now);
        mk_incident_clear(&inc);
        return 200;
    }
    mk_alertq_filter qf;
    char msg[300];
    int rc = mk_alertq_filter_parse(args, n_args, &qf, msg, sizeof msg);
    if (rc) {
        mk_alertq_filter_free(&qf);
        *out = rc == -1 ? err_json("%s", msg) : err_json("out of memory");
        return rc == -1 ? 400 : 500;
    }
    mk_incident *l = NULL;
    size_t n = 0;
    mk_err err = mk_inc_list(st, &qf.f, &l, &n, &d);
    mk_alertq_filter_free(&qf);
    if (err != MK_OK) {
        *out = err_json("%s", d.msg);
        return 500;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) json_array_append_new(arr, incident_json(a, &l[i], now));
    mk_incidents_free(l, n);
    *out = json_pack("{s:o}", "incidents", arr);
    return 200;
}

/* ---- /api/rules ----------------------------------------------------------- */

static const char *rule_source(mk_alerts *a, const char *name)
{
    return file_exists(a->rules_dir, name, ".yaml") ? "api" : "config";
}

static int config_has_rule(const mk_alerts *a, const char *name)
{
    for (size_t i = 0; i < a->config_rules.n; i++)
        if (strcmp(a->config_rules.rules[i].name, name) == 0) return 1;
    return 0;
}

static mk_err ensure_rules_dir(mk_alerts *a, mk_diag *diag)
{
    if (mkdir(a->rules_dir, 0755) != 0 && errno != EEXIST)
        return mk_diag_set(diag, MK_EIO, "cannot create %s: %s", a->rules_dir, strerror(errno));
    return MK_OK;
}

static int h_rules(mk_alerts *a, const char *method, const char *name, const char *body, size_t n_body, json_t **out)
{
    mk_diag d = {0};
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (!*name) {
        if (!is_get) {
            *out = err_json("use GET /api/rules, or PUT/DELETE /api/rules/NAME");
            return 405;
        }
        mk_rule_set set;
        if (mk_rule_engine_rules(a->eng, &set, &d) != MK_OK) {
            *out = err_json("%s", d.msg);
            return 500;
        }
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < set.n; i++)
            json_array_append_new(arr, rule_json(&set.rules[i], rule_source(a, set.rules[i].name)));
        mk_rule_set_free(&set);
        *out = json_pack("{s:o}", "rules", arr);
        return 200;
    }
    if (!is_name_ok(name)) {
        *out = err_json("rule names hold only letters, digits, '_', '-' and '.' (got '%.100s')", name);
        return is_get || strcmp(method, "DELETE") == 0 ? 404 : 400;
    }
    if (is_get) {
        mk_rule_set set;
        if (mk_rule_engine_rules(a->eng, &set, &d) != MK_OK) {
            *out = err_json("%s", d.msg);
            return 500;
        }
        int code = 404;
        for (size_t i = 0; i < set.n; i++)
            if (strcmp(set.rules[i].name, name) == 0) {
                *out = rule_json(&set.rules[i], rule_source(a, name));
                code = 200;
            }
        mk_rule_set_free(&set);
        if (code == 404) *out = err_json("no rule named %s", name);
        return code;
    }
    if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
        mk_rule r;
        if (!n_body) {
            *out = err_json("the body must be one rule in YAML or JSON, e.g. {\"kind\": \"threshold\", ...}");
            return 400;
        }
        if (mk_rule_parse_one(body, n_body, name, &r, &d) != MK_OK) {
            *out = err_json("%s", d.msg);
            return d.code == MK_ENOMEM ? 500 : 400;
        }
        int code = 200;
        pthread_mutex_lock(&a->rules_mu);
        /* the file first: a rule applied but not persisted would vanish at
         * the next restart without anyone being told */
        char *fname = path_join("", name, ".yaml"); /* "/N.yaml" */
        if (!fname || ensure_rules_dir(a, &d) != MK_OK ||
            mk_env_write_file_atomic(mk_env_default(), a->rules_dir, fname + 1, body, n_body, &d) != MK_OK) {
            *out = err_json("cannot persist the rule: %s", d.msg[0] ? d.msg : "out of memory");
            code = 500;
        } else if (mk_rule_engine_put_rule(a->eng, &r, &d) != MK_OK) {
            unlink_in(a->rules_dir, name, ".yaml");
            *out = err_json("%s", d.msg);
            code = d.code == MK_ENOMEM ? 500 : 400;
        } else {
            unlink_in(a->rules_dir, name, ".deleted");
            meas_refresh(a);
            *out = rule_json(&r, "api");
            mk_slog(MK_SLOG_INFO, "rule put", "rule", name, (const char *)NULL);
        }
        pthread_mutex_unlock(&a->rules_mu);
        free(fname);
        mk_rule_clear(&r);
        return code;
    }
    if (strcmp(method, "DELETE") == 0) {
        int code = 204;
        pthread_mutex_lock(&a->rules_mu);
        mk_err err = mk_rule_engine_delete_rule(a->eng, name, &d);
        if (err == MK_ENOTFOUND) {
            *out = err_json("no rule named %s", name);
            code = 404;
        } else if (err) {
            *out = err_json("%s", d.msg);
            code = 500;
        } else {
            unlink_in(a->rules_dir, name, ".yaml");
            meas_refresh(a);
            /* a rule of the config file needs a tombstone, or it would come
             * back at the next start */
            char *fname = path_join("", name, ".deleted");
            if (config_has_rule(a, name) &&
                (!fname || ensure_rules_dir(a, &d) != MK_OK ||
                 mk_env_write_file_atomic(mk_env_default(), a->rules_dir, fname + 1, "", 0, &d) != MK_OK)) {
                *out = err_json("rule removed now, but it will come back at the next start: %s", d.msg);
                code = 500;
            }
            free(fname);
            mk_slog(MK_SLOG_INFO, "rule deleted", "rule", name, (const char *)NULL);
        }
        pthread_mutex_unlock(&a->rules_mu);
        return code;
    }
    *out = err_json("use GET, PUT or DELETE");
    return 405;
}

/* ---- /api/silences ---------------------------------------------------------- */

static int h_silences(mk_alerts *a, const char *method, const char *rest, const char *body, size_t n_body, json_t **out)
{
    int64_t now = now_ms();
    mk_diag d = {0};
    int code = 200;
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    uint64_t id = 0;
    if (*rest) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(rest, &end, 10);
        if (*end || errno || !v || *rest == '-' || *rest == '+') {
            *out = err_json("no silence %.100s: ids are positive integers", rest);
            return 404;
        }
        id = (uint64_t)v;
    }
    pthread_mutex_lock(&a->sil_mu);
    if (is_get && !id) {
        silences_prune(a, now);
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < a->n_sil; i++) json_array_append_new(arr, mk_alertq_silence_json(&a->sil[i], now));
        *out = json_pack("{s:o}", "silences", arr);
    } else if (is_get) {
        code = 404;
        for (size_t i = 0; i < a->n_sil; i++)
            if (a->sil[i].id == id) {
                *out = mk_alertq_silence_json(&a->sil[i], now);
                code = 200;
            }
        if (code == 404) *out = err_json("no silence %" PRIu64, id);
    } else if (strcmp(method, "POST") == 0 && !id) {
        json_error_t je;
        json_t *root = json_loadb(body ? body : "", n_body, JSON_REJECT_DUPLICATES, &je);
        mk_alertq_silence s;
        char err[400];
        if (!root) {
            *out = err_json("invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
            code = 400;
        } else if (mk_alertq_silence_from_json(root, 0, now, &s, err, sizeof err) != 0) {
            *out = err_json("%s", err);
            code = 400;
        } else {
            silences_prune(a, now);
            if (a->n_sil >= MAX_SILENCES) {
                *out = err_json("too many silences (%d)", MAX_SILENCES);
                code = 400;
                mk_alertq_silence_clear(&s);
            } else if (grow_sil(a) != 0) {
                mk_alertq_silence_clear(&s);
                *out = err_json("out of memory");
                code = 500;
            } else {
                s.id = a->next_sil_id++;
                a->sil[a->n_sil++] = s;
                if (silences_save(a, now, &d) != MK_OK) {
                    mk_alertq_silence_clear(&a->sil[--a->n_sil]);
                    a->next_sil_id--;
                    *out = err_json("cannot persist the silence: %s", d.msg);
                    code = 500;
                } else {
                    *out = json_pack("{s:I}", "id", (json_int_t)s.id);
                    mk_slog(MK_SLOG_INFO, "silence created", (const char *)NULL);
                }
            }
        }
        json_decref(root);
    } else if (strcmp(method, "DELETE") == 0 && id) {
        code = 404;
        for (size_t i = 0; i < a->n_sil; i++)
            if (a->sil[i].id == id) {
                mk_alertq_silence s = a->sil[i];
                memmove(&a->sil[i], &a->sil[i + 1], (a->n_sil - i - 1) * sizeof *a->sil);
                a->n_sil--;
                if (silences_save(a, now, &d) != MK_OK) {
                    /* put it back: the file still has it */
                    memmove(&a->sil[i + 1], &a->sil[i], (a->n_sil - i) * sizeof *a->sil);
                    a->sil[i] = s;
                    a->n_sil++;
                    *out = err_json("cannot persist the deletion: %s", d.msg);
                    code = 500;
                } else {
                    mk_alertq_silence_clear(&s);
                    code = 204;
                }
                break;
            }
        if (code == 404) *out = err_json("no silence %" PRIu64, id);
    } else {
        *out = err_json("use GET or POST /api/silences, GET or DELETE /api/silences/ID");
        code = 405;
    }
    pthread_mutex_unlock(&a->sil_mu);
    return code;
}

/* ---- entry points -------------------------------------------------------- */

static const char *after_prefix(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0) return NULL;
    if (path[n] == 0) return path + n;
    if (path[n] == '/') return path + n + 1;
    return NULL;
}

int mk_alerts_handle(mk_alerts *a, const char *method, const char *path, const mk_alerts_arg *args, size_t n_args,
                     const char *body, size_t n_body, json_t **out)
{
    *out = NULL;
    char p[1024];
    size_t n = strlen(path);
    if (n >= sizeof p) {
        *out = err_json("path too long");
        return 404;
    }
    memcpy(p, path, n + 1);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    const char *rest;
    if ((rest = after_prefix(p, "/api/incidents"))) return h_incidents(a, method, rest, args, n_args, out);
    if ((rest = after_prefix(p, "/api/rules"))) return h_rules(a, method, rest, body, n_body, out);
    if ((rest = after_prefix(p, "/api/silences"))) return h_silences(a, method, rest, body, n_body, out);
    *out = err_json("not found");
    return 404;
}

mk_err mk_alerts_monitors(mk_alerts *a, int64_t now, mk_rule_monitor **out, size_t *n, mk_diag *diag)
{
    return mk_rule_engine_monitors(a->eng, now, out, n, diag);
}

void mk_alerts_metrics(mk_alerts *a, mk_buf *b)
{
    size_t n_warn = 0, n_crit = 0, n_pending = 0;
    mk_inc_filter f;
    memset(&f, 0, sizeof f);
    f.state_mask = (1u << MK_INC_FIRING) | (1u << MK_INC_PENDING);
    mk_incident *l = NULL;
    size_t n = 0;
    if (mk_inc_list(mk_rule_engine_store(a->eng), &f, &l, &n, NULL) == MK_OK) {
        for (size_t i = 0; i < n; i++) {
            if (l[i].state == MK_INC_PENDING) n_pending++;
            else if (l[i].severity == MK_SEV_CRITICAL) n_crit++;
            else n_warn++;
        }
        mk_incidents_free(l, n);
    }
    size_t n_outbox = 0;
    mk_inc_store_stats(mk_rule_engine_store(a->eng), NULL, &n_outbox, NULL);
    char t[1024];
    int k = snprintf(t, sizeof t,
                     "# HELP meerkat_incidents_open Incidents firing now, by severity.\n"
                     "# TYPE meerkat_incidents_open gauge\n"
                     "meerkat_incidents_open{severity=\"warning\"} %zu\n"
                     "meerkat_incidents_open{severity=\"critical\"} %zu\n"
                     "# HELP meerkat_incidents_pending Incidents failing but not yet firing.\n"
                     "# TYPE meerkat_incidents_pending gauge\nmeerkat_incidents_pending %zu\n"
                     "# HELP meerkat_notifications_pending Notification records waiting in the outbox.\n"
                     "# TYPE meerkat_notifications_pending gauge\nmeerkat_notifications_pending %zu\n",
                     n_warn, n_crit, n_pending, n_outbox);
    if (k > 0) mk_buf_append(b, t, (size_t)k < sizeof t ? (size_t)k : sizeof t - 1);
}

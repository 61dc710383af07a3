/*
 * server/web.c — status page, dashboards' JSON, badges and the
 * `status_page:` section (see web.h).
 *
 * Invariants: mk_web_handle queues exactly one response when it returns 1
 * and none when it returns 0; an anonymous request (keys configured, none
 * or a wrong one presented) never sees a monitor, service or incident that
 * the section does not mark public; the embedded files are never copied
 * except when a client cannot take gzip (then inflated once per request).
 */
#include "web.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "alertq.h"
#include "alerts.h"
#include "config.h"
#include "detector.h"
#include "form.h"
#include "util.h"

/* ---- configuration ---------------------------------------------------- */

typedef struct strlist {
    char **v; /* owned strings */
    size_t n;
} strlist;

typedef struct web_group {
    char *name;
    strlist monitors, services;
    size_t line, col; /* where the entry is, for errors found after the whole section is read */
} web_group;

typedef struct web_service {
    char *name, *measurement;
    strlist tag_keys, tag_values;
    char *qps, *p95, *errors; /* field names */
} web_service;

typedef struct web_maint {
    char *name, *description;
    int64_t start_ms, end_ms;
    strlist monitors; /* empty = everything */
} web_maint;

/* The rendered /api/status-page documents (slot 0: full view, 1: public
 * view) are kept for MK_WEB_CACHE_MS: a public page polled by many
 * visitors every few seconds costs one computation a second, not one per
 * poll. This cache is the only part of the section that changes after
 * parsing; cache_mu guards it. */
#define MK_WEB_CACHE_MS 1000

struct mk_web_config {
    pthread_mutex_t cache_mu;
    char *cache_text[2];     /* owned JSON text, NULL = none */
    int64_t cache_at_ms[2];  /* when it was computed */
    char *title, *description;
    int is_all_public;
    strlist public_names;
    web_group *groups;
    size_t n_groups;
    web_service *services;
    size_t n_services;
    web_maint *maint;
    size_t n_maint;
};

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int strlist_add(strlist *l, const char *s)
{
    char *d = strdup(s);
    char **nv = d ? realloc(l->v, (l->n + 1) * sizeof *nv) : NULL;
    if (!nv) {
        free(d);
        return -1;
    }
    l->v = nv;
    l->v[l->n++] = d;
    return 0;
}

static int strlist_has(const strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0) return 1;
    return 0;
}

void mk_web_config_free(mk_web_config *wc)
{
    if (!wc) return;
    pthread_mutex_destroy(&wc->cache_mu);
    free(wc->cache_text[0]);
    free(wc->cache_text[1]);
    free(wc->title);
    free(wc->description);
    strlist_free(&wc->public_names);
    for (size_t i = 0; i < wc->n_groups; i++) {
        free(wc->groups[i].name);
        strlist_free(&wc->groups[i].monitors);
        strlist_free(&wc->groups[i].services);
    }
    free(wc->groups);
    for (size_t i = 0; i < wc->n_services; i++) {
        web_service *s = &wc->services[i];
        free(s->name);
        free(s->measurement);
        strlist_free(&s->tag_keys);
        strlist_free(&s->tag_values);
        free(s->qps);
        free(s->p95);
        free(s->errors);
    }
    free(wc->services);
    for (size_t i = 0; i < wc->n_maint; i++) {
        free(wc->maint[i].name);
        free(wc->maint[i].description);
        strlist_free(&wc->maint[i].monitors);
    }
    free(wc->maint);
    free(wc);
}

typedef struct perrs {
    mk_buf b;
    int count;
} perrs;

__attribute__((format(printf, 3, 4))) static void perr(perrs *e, const yaml_node_t *at, const char *fmt, ...)
{
    char msg[400];
    int off = snprintf(msg, sizeof msg, "%zu:%zu: status_page", at->start_mark.line + 1,
                       at->start_mark.column + 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + off, sizeof msg - (size_t)off, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    e->count++;
    (void)(mk_buf_append(&e->b, msg, strlen(msg)) || mk_buf_append(&e->b, "\n", 1));
}

static const char *ysc(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* A non-empty scalar, copied into *dst (replacing it). */
static int y_str(perrs *e, const yaml_node_t *n, const char *what, char **dst)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0) {
        perr(e, n, "%s: expected a non-empty value", what);
        return -1;
    }
    char *s = strdup(ysc(n));
    if (!s) return -1;
    free(*dst);
    *dst = s;
    return 0;
}

/* A list of names (a single name is taken as a list of one). */
static void y_names(perrs *e, yaml_document_t *d, const yaml_node_t *n, const char *what, strlist *out)
{
    if (n->type == YAML_SCALAR_NODE && n->data.scalar.length) {
        strlist_add(out, ysc(n));
        return;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        perr(e, n, "%s: expected a list of names", what);
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *v = yaml_document_get_node(d, *it);
        if (!v) continue;
        if (v->type != YAML_SCALAR_NODE || v->data.scalar.length == 0) {
            perr(e, v, "%s: each entry must be a name", what);
            continue;
        }
        strlist_add(out, ysc(v));
    }
}

static int is_true(const char *s)
{
    return strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0;
}
static int is_false(const char *s)
{
    return strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0;
}

/* Walks the pairs of mapping n; calls fn for each (key name, value). */
#define FOR_PAIRS(d, n, kname, vn)                                                                   \
    for (yaml_node_pair_t *p_ = (n)->data.mapping.pairs.start; p_ < (n)->data.mapping.pairs.top; p_++) \
        for (const yaml_node_t *kn_ = yaml_document_get_node(d, p_->key), *vn = yaml_document_get_node(d, p_->value); \
             kn_ && vn; kn_ = NULL)                                                                 \
            for (const char *kname = kn_->type == YAML_SCALAR_NODE ? ysc(kn_) : ""; kname; kname = NULL)

static void parse_public_flag(perrs *e, const yaml_node_t *v, mk_web_config *wc, const char *name)
{
    if (v->type != YAML_SCALAR_NODE || (!is_true(ysc(v)) && !is_false(ysc(v)))) {
        perr(e, v, ": public: expected true or false");
        return;
    }
    if (is_true(ysc(v)) && !strlist_has(&wc->public_names, name)) strlist_add(&wc->public_names, name);
}

static void parse_groups(perrs *e, yaml_document_t *d, const yaml_node_t *n, mk_web_config *wc)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        perr(e, n, ".groups: expected a list of {name, monitors, services}");
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *g = yaml_document_get_node(d, *it);
        if (!g) continue;
        if (g->type != YAML_MAPPING_NODE) {
            perr(e, g, ".groups: each entry is a mapping {name, monitors, services}");
            continue;
        }
        web_group grp = {0};
        grp.line = g->start_mark.line + 1;
        grp.col = g->start_mark.column + 1;
        FOR_PAIRS(d, g, k, v)
        {
            if (strcmp(k, "name") == 0) y_str(e, v, ".groups.name", &grp.name);
            else if (strcmp(k, "monitors") == 0) y_names(e, d, v, ".groups.monitors", &grp.monitors);
            else if (strcmp(k, "services") == 0) y_names(e, d, v, ".groups.services", &grp.services);
            else perr(e, kn_, ".groups: unknown key '%s' (known: name, monitors, services)", k);
        }
        web_group *ng = grp.name ? realloc(wc->groups, (wc->n_groups + 1) * sizeof *ng) : NULL;
        if (!ng) {
            if (!grp.name) perr(e, g, ".groups: entry without 'name'");
            free(grp.name);
            strlist_free(&grp.monitors);
            strlist_free(&grp.services);
            continue;
        }
        wc->groups = ng;
        wc->groups[wc->n_groups++] = grp;
    }
}

static void parse_services(perrs *e, yaml_document_t *d, const yaml_node_t *n, mk_web_config *wc)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        perr(e, n, ".services: expected a list of {name, measurement, tags, qps, p95, errors, public}");
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *m = yaml_document_get_node(d, *it);
        if (!m) continue;
        if (m->type != YAML_MAPPING_NODE) {
            perr(e, m, ".services: each entry is a mapping {name, measurement, tags, ...}");
            continue;
        }
        web_service s = {0};
        const yaml_node_t *pub = NULL;
        int ok = 1;
        FOR_PAIRS(d, m, k, v)
        {
            if (strcmp(k, "name") == 0) ok &= y_str(e, v, ".services.name", &s.name) == 0;
            else if (strcmp(k, "measurement") == 0) ok &= y_str(e, v, ".services.measurement", &s.measurement) == 0;
            else if (strcmp(k, "qps") == 0) ok &= y_str(e, v, ".services.qps", &s.qps) == 0;
            else if (strcmp(k, "p95") == 0) ok &= y_str(e, v, ".services.p95", &s.p95) == 0;
            else if (strcmp(k, "errors") == 0) ok &= y_str(e, v, ".services.errors", &s.errors) == 0;
            else if (strcmp(k, "public") == 0) pub = v;
            else if (strcmp(k, "tags") == 0) {
                if (v->type != YAML_MAPPING_NODE) {
                    perr(e, v, ".services.tags: expected a mapping {tag: value}");
                    ok = 0;
                    continue;
                }
                FOR_PAIRS(d, v, tk, tv)
                {
                    if (!*tk || tv->type != YAML_SCALAR_NODE) {
                        perr(e, tv, ".services.tags: each tag is name: value");
                        ok = 0;
                        continue;
                    }
                    strlist_add(&s.tag_keys, tk);
                    strlist_add(&s.tag_values, ysc(tv));
                }
            } else {
                perr(e, kn_, ".services: unknown key '%s' (known: name, measurement, tags, qps, p95, errors, public)", k);
                ok = 0;
            }
        }
        if (!s.name || !s.measurement) {
            perr(e, m, ".services: entry needs 'name' and 'measurement'");
            ok = 0;
        }
        for (size_t i = 0; ok && i < wc->n_services; i++)
            if (strcmp(wc->services[i].name, s.name) == 0) {
                perr(e, m, ".services: duplicate name '%s'", s.name);
                ok = 0;
            }
        web_service *ns = ok ? realloc(wc->services, (wc->n_services + 1) * sizeof *ns) : NULL;
        if (ok && ns) {
            /* defaults: the field names the README's examples use */
            if (!s.qps) s.qps = strdup("qps");
            if (!s.p95) s.p95 = strdup("p95_ms");
            if (!s.errors) s.errors = strdup("error_rate");
        }
        if (!ns || !s.qps || !s.p95 || !s.errors) {
            free(s.name);
            free(s.measurement);
            strlist_free(&s.tag_keys);
            strlist_free(&s.tag_values);
            free(s.qps);
            free(s.p95);
            free(s.errors);
            if (ns) wc->services = ns;
            continue;
        }
        wc->services = ns;
        wc->services[wc->n_services++] = s;
        if (pub) parse_public_flag(e, pub, wc, s.name);
    }
}

static void parse_maint(perrs *e, yaml_document_t *d, const yaml_node_t *n, mk_web_config *wc)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        perr(e, n, ".maintenance: expected a list of {name, start, end, monitors}");
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *m = yaml_document_get_node(d, *it);
        if (!m) continue;
        if (m->type != YAML_MAPPING_NODE) {
            perr(e, m, ".maintenance: each entry is a mapping {name, start, end, monitors}");
            continue;
        }
        web_maint w = {0};
        int ok = 1, has_start = 0, has_end = 0;
        FOR_PAIRS(d, m, k, v)
        {
            if (strcmp(k, "name") == 0) ok &= y_str(e, v, ".maintenance.name", &w.name) == 0;
            else if (strcmp(k, "description") == 0) ok &= y_str(e, v, ".maintenance.description", &w.description) == 0;
            else if (strcmp(k, "monitors") == 0) y_names(e, d, v, ".maintenance.monitors", &w.monitors);
            else if (strcmp(k, "start") == 0 || strcmp(k, "end") == 0) {
                int64_t ms;
                if (v->type != YAML_SCALAR_NODE || mk_alertq_parse_time(ysc(v), &ms) != 0) {
                    perr(e, v, ".maintenance.%s: '%s' is not an RFC 3339 time or epoch seconds", k,
                         v->type == YAML_SCALAR_NODE ? ysc(v) : "");
                    ok = 0;
                    continue;
                }
                if (k[0] == 's') w.start_ms = ms, has_start = 1;
                else w.end_ms = ms, has_end = 1;
            } else {
                perr(e, kn_, ".maintenance: unknown key '%s' (known: name, description, start, end, monitors)", k);
                ok = 0;
            }
        }
        if (ok && (!w.name || !has_start || !has_end)) {
            perr(e, m, ".maintenance: entry needs 'name', 'start' and 'end'");
            ok = 0;
        }
        if (ok && w.end_ms <= w.start_ms) {
            perr(e, m, ".maintenance: '%s' ends before it starts", w.name);
            ok = 0;
        }
        web_maint *nm = ok ? realloc(wc->maint, (wc->n_maint + 1) * sizeof *nm) : NULL;
        if (!nm) {
            free(w.name);
            free(w.description);
            strlist_free(&w.monitors);
            continue;
        }
        wc->maint = nm;
        wc->maint[wc->n_maint++] = w;
    }
}

int mk_web_config_parse(yaml_document_t *d, const yaml_node_t *n, mk_web_config **out, char **errs)
{
    perrs e = {0};
    mk_web_config *wc = calloc(1, sizeof *wc);
    *out = wc;
    *errs = NULL;
    if (!wc) {
        perr(&e, n, ": out of memory");
        goto out;
    }
    pthread_mutex_init(&wc->cache_mu, NULL);
    if (n->type != YAML_MAPPING_NODE) {
        perr(&e, n, ": expected a mapping {title, public, groups, services, maintenance}");
        goto out;
    }
    FOR_PAIRS(d, n, k, v)
    {
        if (strcmp(k, "title") == 0) y_str(&e, v, ".title", &wc->title);
        else if (strcmp(k, "description") == 0) y_str(&e, v, ".description", &wc->description);
        else if (strcmp(k, "public") == 0) {
            if (v->type == YAML_SCALAR_NODE && (is_true(ysc(v)) || is_false(ysc(v))))
                wc->is_all_public = is_true(ysc(v));
            else if (v->type == YAML_SEQUENCE_NODE) y_names(&e, d, v, ".public", &wc->public_names);
            else perr(&e, v, ".public: expected true, false or a list of monitor and service names");
        } else if (strcmp(k, "groups") == 0) parse_groups(&e, d, v, wc);
        else if (strcmp(k, "services") == 0) parse_services(&e, d, v, wc);
        else if (strcmp(k, "maintenance") == 0) parse_maint(&e, d, v, wc);
        else perr(&e, kn_, ": unknown key '%s' (known: title, description, public, groups, services, maintenance)", k);
    }
    /* a group may name monitors the server hears of in any way, but its
     * services must be defined here (they say which series to read) */
    for (size_t g = 0; g < wc->n_groups; g++)
        for (size_t i = 0; i < wc->groups[g].services.n; i++) {
            size_t k;
            for (k = 0; k < wc->n_services; k++)
                if (strcmp(wc->services[k].name, wc->groups[g].services.v[i]) == 0) break;
            if (k == wc->n_services) {
                char msg[400];
                snprintf(msg, sizeof msg, "%zu:%zu: status_page.groups: '%.100s' names service '%.100s', which "
                         "status_page.services does not define\n", wc->groups[g].line, wc->groups[g].col,
                         wc->groups[g].name, wc->groups[g].services.v[i]);
                for (char *p = msg; *p && p[1]; p++)
                    if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
                e.count++;
                mk_buf_append(&e.b, msg, strlen(msg));
            }
        }
out:
    if (e.count && mk_buf_append(&e.b, "", 1) == MK_OK) *errs = (char *)e.b.data;
    else mk_buf_free(&e.b);
    return e.count;
}

int mk_web_in_maintenance(const mk_web_config *wc, const char *monitor, int64_t now_ms)
{
    if (!wc) return 0;
    for (size_t i = 0; i < wc->n_maint; i++) {
        const web_maint *w = &wc->maint[i];
        if (now_ms >= w->start_ms && now_ms < w->end_ms &&
            (w->monitors.n == 0 || strlist_has(&w->monitors, monitor)))
            return 1;
    }
    return 0;
}

int mk_web_is_public(const mk_web_config *wc, const char *name)
{
    return wc && (wc->is_all_public || strlist_has(&wc->public_names, name));
}

/* ---- daily cells ------------------------------------------------------ */

const char *mk_web_state_name(mk_web_state s)
{
    switch (s) {
    case MK_WEB_UP: return "UP";
    case MK_WEB_DEGRADED: return "DEGRADED";
    case MK_WEB_DOWN: return "DOWN";
    default: return "NO DATA";
    }
}

void mk_web_days_init(mk_web_day *days)
{
    memset(days, 0, MK_WEB_DAYS * sizeof *days);
    for (int i = 0; i < MK_WEB_DAYS; i++) days[i].worst = 2;
}

static int day_of(int64_t first_day_ms, int64_t ts_ms)
{
    if (ts_ms < first_day_ms) return -1;
    int64_t k = (ts_ms - first_day_ms) / MK_WEB_DAY_MS;
    return k < MK_WEB_DAYS ? (int)k : -1;
}

void mk_web_days_add_beats(mk_web_day *days, int64_t first_day_ms, const int64_t *ts_ms, const double *status,
                           size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int k = day_of(first_day_ms, ts_ms[i]);
        if (k < 0 || isnan(status[i])) continue;
        days[k].n_beats++;
        if (status[i] > 0) days[k].n_up++;
        if (status[i] < days[k].worst) days[k].worst = status[i];
    }
}

/* n beats of one day at once, all up (min > 0) or all down (max <= 0). */
static void days_add_bulk(mk_web_day *days, int k, uint32_t n, double min)
{
    days[k].n_beats += n;
    if (min > 0) days[k].n_up += n;
    if (min < days[k].worst) days[k].worst = min;
}

/* DOWN time per day: the union of spans (sorted by start) clipped to days. */
static void days_add_down(mk_web_day *days, int64_t first_day_ms, int64_t start_ms, int64_t end_ms,
                          int64_t *covered_to)
{
    if (start_ms < *covered_to) start_ms = *covered_to;
    if (end_ms <= start_ms) return;
    *covered_to = end_ms;
    int64_t t = start_ms < first_day_ms ? first_day_ms : start_ms;
    while (t < end_ms) {
        int k = day_of(first_day_ms, t);
        if (k < 0) break;
        int64_t day_end = first_day_ms + (int64_t)(k + 1) * MK_WEB_DAY_MS;
        int64_t e = end_ms < day_end ? end_ms : day_end;
        days[k].down_ms += e - t;
        t = e;
    }
}

void mk_web_days_add_incident(mk_web_day *days, int64_t first_day_ms, int64_t start_ms, int64_t end_ms,
                              int level, int64_t *covered_to)
{
    if (end_ms <= start_ms) end_ms = start_ms + 1; /* an instant still marks its day */
    int64_t lo = start_ms < first_day_ms ? first_day_ms : start_ms;
    int64_t hi = first_day_ms + (int64_t)MK_WEB_DAYS * MK_WEB_DAY_MS;
    if (end_ms < hi) hi = end_ms;
    for (int64_t t = lo - (lo - first_day_ms) % MK_WEB_DAY_MS; t < hi; t += MK_WEB_DAY_MS) {
        int k = day_of(first_day_ms, t);
        if (k < 0) break;
        days[k].n_incidents++;
        if (level > days[k].incident_level) days[k].incident_level = level;
    }
    if (level == 2) days_add_down(days, first_day_ms, start_ms, end_ms, covered_to);
}

mk_web_state mk_web_day_state(const mk_web_day *d)
{
    int lvl = d->incident_level;
    if (d->n_beats) {
        int b = d->worst <= 0 ? 2 : d->worst < 1 ? 1 : 0;
        if (b > lvl) lvl = b;
    } else if (!d->n_incidents) {
        return MK_WEB_NODATA;
    }
    return lvl == 2 ? MK_WEB_DOWN : lvl == 1 ? MK_WEB_DEGRADED : MK_WEB_UP;
}

double mk_web_day_uptime(const mk_web_day *d, int64_t day_len_ms)
{
    if (!d->n_beats && !d->n_incidents) return NAN;
    double beats = d->n_beats ? (double)d->n_up / d->n_beats : 1.0;
    double covered = day_len_ms > 0 ? (double)d->down_ms / (double)day_len_ms : 0;
    if (covered > 1) covered = 1;
    return 100.0 * beats * (1.0 - covered);
}


/* ---- badges ----------------------------------------------------------- */

static void xml_escape(mk_buf *b, const char *s)
{
    for (; *s; s++) {
        const char *r = NULL;
        switch (*s) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&quot;"; break;
        case '\'': r = "&#39;"; break;
        default: break;
        }
        if (r) mk_buf_append(b, r, strlen(r));
        else if ((unsigned char)*s >= 0x20) mk_buf_append(b, s, 1);
    }
}

/* Width of text in 11 px Verdana, roughly: wide letters count more. Exact
 * metrics would need the font; an estimate keeps the text inside its box. */
static int text_px(const char *s)
{
    int w = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c & 0xC0) == 0x80) continue; /* UTF-8 continuation */
        w += strchr("iljtf.:,;|!' ", c) ? 4 : strchr("mwMW%@", c) ? 11 : isupper(c) ? 8 : 7;
    }
    return w;
}

__attribute__((format(printf, 2, 3))) static void bprintf(mk_buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) mk_buf_append(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

char *mk_web_badge_svg(const char *label, const char *message, const char *colour)
{
    mk_buf b = {0};
    int lw = text_px(label) + 10, mw = text_px(message) + 10, w = lw + mw;
    bprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"20\" role=\"img\" aria-label=\"", w);
    xml_escape(&b, label);
    bprintf(&b, ": ");
    xml_escape(&b, message);
    bprintf(&b, "\"><title>");
    xml_escape(&b, label);
    bprintf(&b, ": ");
    xml_escape(&b, message);
    bprintf(&b, "</title><rect width=\"%d\" height=\"20\" rx=\"3\" fill=\"#555\"/>"
                "<rect x=\"%d\" width=\"%d\" height=\"20\" rx=\"3\" fill=\"%s\"/>"
                "<rect x=\"%d\" width=\"4\" height=\"20\" fill=\"%s\"/>"
                "<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\">"
                "<text x=\"%d\" y=\"14\">",
            w, lw, mw, colour, lw, colour, lw / 2);
    xml_escape(&b, label);
    bprintf(&b, "</text><text x=\"%d\" y=\"14\">", lw + mw / 2);
    xml_escape(&b, message);
    bprintf(&b, "</text></g></svg>\n");
    if (mk_buf_append(&b, "", 1) != MK_OK) {
        mk_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

/* ---- the status document ------------------------------------------------ */

static int64_t utc_day_start(int64_t ms) { return ms - ((ms % MK_WEB_DAY_MS) + MK_WEB_DAY_MS) % MK_WEB_DAY_MS; }

/* Reads one series over [from, to): beats into days (or, when
 * is_presence, every sample as an UP "beat"), and its last sample. */
static void scan_series(mk_db *db, uint64_t id, int64_t first_day_ms, int64_t to_ms, int is_presence,
                        mk_web_day *days, int64_t *last_ts, double *last_val)
{
    mk_sum_iter *it = NULL;
    if (mk_db_iter_summaries(db, id, first_day_ms, to_ms, &it, NULL) != MK_OK) return;
    const mk_chunk_summary *s;
    int is_dec, has;
    while (mk_sum_iter_next(it, &s, &is_dec, &has, NULL) == MK_OK && has) {
        if (!s->count) continue;
        if (s->last_ts_ms >= *last_ts) {
            *last_ts = s->last_ts_ms;
            *last_val = s->last;
        }
        int k0 = day_of(first_day_ms, s->first_ts_ms), k1 = day_of(first_day_ms, s->last_ts_ms);
        if (k0 >= 0 && k0 == k1 && (is_presence || s->min > 0 || s->max <= 0) && !isnan(s->min)) {
            days_add_bulk(days, k0, s->count, is_presence ? 1.0 : s->min);
            continue;
        }
        const int64_t *ts;
        const double *v;
        size_t n;
        if (mk_sum_iter_samples(it, &ts, &v, &n, NULL) != MK_OK) continue;
        if (is_presence) {
            for (size_t i = 0; i < n; i++) {
                int k = day_of(first_day_ms, ts[i]);
                if (k >= 0) days_add_bulk(days, k, 1, 1.0);
            }
        } else {
            mk_web_days_add_beats(days, first_day_ms, ts, v, n);
        }
    }
    mk_sum_iter_free(it);
}

typedef struct inc_view {
    json_t *j;            /* borrowed from the incidents array */
    int64_t start_ms, end_ms; /* fired (or started) .. ended (0 = open) */
    int level;            /* 1 warning, 2 critical */
    int is_firing_seen;   /* reached FIRING */
    const char *monitor;  /* labels.monitor, or NULL */
} inc_view;

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int64_t jtime(json_t *o, const char *k)
{
    const char *s = jstr(o, k);
    int64_t ms;
    return s && mk_alertq_parse_time(s, &ms) == 0 ? ms : 0;
}

/* Does the incident's label set contain every tag of service s? */
static int inc_is_service(json_t *labels, const web_service *s)
{
    if (!s->tag_keys.n) return 0;
    for (size_t i = 0; i < s->tag_keys.n; i++) {
        json_t *v = json_object_get(labels, s->tag_keys.v[i]);
        if (!json_is_string(v) || strcmp(json_string_value(v), s->tag_values.v[i]) != 0) return 0;
    }
    return 1;
}

static int cmp_inc_start(const void *a, const void *b)
{
    const inc_view *x = a, *y = b;
    return (x->start_ms > y->start_ms) - (x->start_ms < y->start_ms);
}

/* Days string code of a state. */
static char state_code(mk_web_state s) { return s == MK_WEB_UP ? 'U' : s == MK_WEB_DEGRADED ? 'G' : s == MK_WEB_DOWN ? 'D' : 'N'; }

/* Fills a monitor's or service's "days", "uptime", "uptime_30d", "uptime_90d"
 * from days plus the incidents attributed to it (subject). */
static void put_days(json_t *o, mk_web_day *days, inc_view *inc, size_t n_inc, const char *subject,
                     int64_t first_day_ms, int64_t now_ms)
{
    int64_t covered_to = INT64_MIN;
    for (size_t i = 0; i < n_inc; i++) {
        json_t *subj = json_object_get(inc[i].j, "subject");
        if (!inc[i].is_firing_seen || !json_is_string(subj) || strcmp(json_string_value(subj), subject) != 0)
            continue;
        int64_t end = inc[i].end_ms ? inc[i].end_ms : now_ms;
        mk_web_days_add_incident(days, first_day_ms, inc[i].start_ms, end, inc[i].level, &covered_to);
    }
    char code[MK_WEB_DAYS + 1];
    json_t *up = json_array(), *nin = json_array();
    double sum30 = 0, sum90 = 0;
    int n30 = 0, n90 = 0;
    for (int k = 0; k < MK_WEB_DAYS; k++) {
        int64_t day_start = first_day_ms + (int64_t)k * MK_WEB_DAY_MS;
        int64_t len = now_ms - day_start < MK_WEB_DAY_MS ? now_ms - day_start : MK_WEB_DAY_MS;
        code[k] = state_code(mk_web_day_state(&days[k]));
        double u = mk_web_day_uptime(&days[k], len);
        json_array_append_new(up, isnan(u) ? json_null() : json_real(round(u * 1000) / 1000));
        json_array_append_new(nin, json_integer(days[k].n_incidents));
        if (!isnan(u)) {
            sum90 += u, n90++;
            if (k >= MK_WEB_DAYS - 30) sum30 += u, n30++;
        }
    }
    code[MK_WEB_DAYS] = '\0';
    json_object_set_new(o, "days", json_string(code));
    json_object_set_new(o, "uptime", up);
    json_object_set_new(o, "day_incidents", nin);
    json_object_set_new(o, "uptime_30d", n30 ? json_real(round(sum30 / n30 * 1000) / 1000) : json_null());
    json_object_set_new(o, "uptime_90d", n90 ? json_real(round(sum90 / n90 * 1000) / 1000) : json_null());
}

/* Names of the monitors to show: the config's, then any a group names. */
static void monitor_names(const mk_config *cfg, const mk_web_config *wc, strlist *out)
{
    for (size_t i = 0; i < cfg->n_monitors; i++)
        if (!strlist_has(out, cfg->monitors[i].name)) strlist_add(out, cfg->monitors[i].name);
    for (size_t g = 0; wc && g < wc->n_groups; g++)
        for (size_t i = 0; i < wc->groups[g].monitors.n; i++)
            if (!strlist_has(out, wc->groups[g].monitors.v[i])) strlist_add(out, wc->groups[g].monitors.v[i]);
}

static const char *label_of(const mk_rule_monitor *m, const char *key)
{
    for (size_t i = 0; i < m->n_labels; i++)
        if (strcmp(m->labels[i].key, key) == 0) return m->labels[i].value;
    return NULL;
}

json_t *mk_web_status_json(mk_db *db, const mk_config *cfg, mk_alerts *alerts, int is_public_only, int64_t now_ms)
{
    const mk_web_config *wc = cfg->status_page;
    int64_t first_day_ms = utc_day_start(now_ms) - (int64_t)(MK_WEB_DAYS - 1) * MK_WEB_DAY_MS;
    json_t *root = json_object(), *mons = json_array(), *svcs = json_array(), *open = json_array(),
           *recent = json_array(), *groups = json_array(), *maint = json_array();
    json_t *incs = NULL;
    inc_view *iv = NULL;
    size_t n_iv = 0;
    strlist names = {0};
    mk_rule_monitor *hm = NULL;
    size_t n_hm = 0;
    mk_web_day *days = malloc(MK_WEB_DAYS * sizeof *days);
    if (!root || !mons || !svcs || !open || !recent || !groups || !maint || !days) goto fail;
#define VISIBLE(name) (!is_public_only || mk_web_is_public(wc, (name)))

    /* incidents over the 90 days, attributed to a monitor or a service */
    if (alerts) {
        char from[32];
        snprintf(from, sizeof from, "%" PRId64, first_day_ms / 1000);
        mk_alerts_arg args[] = {{"from", from}, {"limit", "10000"}};
        int code = mk_alerts_handle(alerts, "GET", "/api/incidents", args, 2, NULL, 0, &incs);
        if (code != 200) {
            json_decref(incs);
            incs = NULL;
        }
        if (mk_alerts_monitors(alerts, now_ms, &hm, &n_hm, NULL) != MK_OK) hm = NULL, n_hm = 0;
    }
    json_t *arr = incs ? json_object_get(incs, "incidents") : NULL;
    size_t n_arr = json_array_size(arr);
    iv = n_arr ? calloc(n_arr, sizeof *iv) : NULL;
    for (size_t i = 0; iv && i < n_arr; i++) {
        json_t *j = json_array_get(arr, i);
        json_t *labels = json_object_get(j, "labels");
        const char *subject = NULL, *kind = NULL;
        json_t *mv = json_object_get(labels, "monitor");
        if (json_is_string(mv)) subject = json_string_value(mv), kind = "monitor";
        for (size_t s = 0; !subject && wc && s < wc->n_services; s++)
            if (inc_is_service(labels, &wc->services[s])) subject = wc->services[s].name, kind = "service";
        if (!subject || !VISIBLE(subject)) continue; /* not shown on the page */
        json_object_set_new(j, "subject", json_string(subject));
        json_object_set_new(j, "subject_kind", json_string(kind));
        inc_view *v = &iv[n_iv++];
        v->j = j;
        v->monitor = subject;
        int64_t fired = jtime(j, "fired_at");
        v->is_firing_seen = fired != 0;
        v->start_ms = fired ? fired : jtime(j, "started_at");
        v->end_ms = jtime(j, "ended_at");
        const char *sev = jstr(j, "severity");
        v->level = sev && strcmp(sev, "critical") == 0 ? 2 : 1;
        const char *st = jstr(j, "state");
        int is_open = st && (strcmp(st, "firing") == 0 || strcmp(st, "pending") == 0);
        if (is_open) json_array_append(open, j);
        else if (v->is_firing_seen) json_array_append(recent, j); /* pending that cleared: not an outage */
    }
    if (n_iv) qsort(iv, n_iv, sizeof *iv, cmp_inc_start);
    while (json_array_size(recent) > 50) json_array_remove(recent, json_array_size(recent) - 1);

    /* monitors */
    monitor_names(cfg, wc, &names);
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i];
        if (!VISIBLE(name)) continue;
        mk_web_days_init(days);
        int64_t last_ts = INT64_MIN;
        double last_val = NAN;
        mk_matcher mt = {.key = "monitor", .value = name, .is_negated = 0};
        uint64_t *ids = NULL;
        size_t n_ids = 0;
        if (mk_db_find_series(db, "heartbeat", &mt, 1, "status", &ids, &n_ids, NULL) == MK_OK)
            for (size_t j = 0; j < n_ids; j++)
                scan_series(db, ids[j], first_day_ms, now_ms + 1, 0, days, &last_ts, &last_val);
        free(ids);
        json_t *o = json_pack("{s:s}", "name", name);
        if (!o) continue;
        const char *kind = "";
        for (size_t c = 0; c < cfg->n_monitors; c++)
            if (strcmp(cfg->monitors[c].name, name) == 0)
                kind = cfg->monitors[c].kind == MK_MON_KUMA ? "kuma" : cfg->monitors[c].kind == MK_MON_HC ? "healthchecks" : "kener";
        json_object_set_new(o, "kind", json_string(kind));
        /* state now: the heartbeat rules' judgement, else the last beat */
        int level = -1;
        const char *reason = NULL;
        for (size_t h = 0; h < n_hm; h++) {
            const char *m = label_of(&hm[h], "monitor");
            if (!m || strcmp(m, name) != 0) continue;
            if (!hm[h].has_beat && last_ts == INT64_MIN && hm[h].level == 0) continue;
            if (hm[h].level > level) {
                level = hm[h].level;
                reason = hm[h].reason;
            }
        }
        mk_web_state st;
        if (level >= 0) st = level == 2 ? MK_WEB_DOWN : level == 1 ? MK_WEB_DEGRADED : MK_WEB_UP;
        else if (last_ts == INT64_MIN || isnan(last_val)) st = MK_WEB_NODATA;
        else st = last_val >= 1 ? MK_WEB_UP : last_val > 0 ? MK_WEB_DEGRADED : MK_WEB_DOWN;
        json_object_set_new(o, "state", json_string(mk_web_state_name(st)));
        json_object_set_new(o, "reason", json_string(reason ? reason : ""));
        json_object_set_new(o, "last_beat_ms", last_ts == INT64_MIN ? json_null() : json_integer(last_ts));
        json_object_set_new(o, "in_maintenance", json_boolean(mk_web_in_maintenance(wc, name, now_ms)));
        json_object_set_new(o, "public", json_boolean(mk_web_is_public(wc, name)));
        put_days(o, days, iv, n_iv, name, first_day_ms, now_ms);
        json_array_append_new(mons, o);
    }

    /* services */
    for (size_t s = 0; wc && s < wc->n_services; s++) {
        const web_service *sv = &wc->services[s];
        if (!VISIBLE(sv->name)) continue;
        mk_web_days_init(days);
        int64_t last_ts = INT64_MIN;
        double last_val = NAN;
        mk_matcher *mt = sv->tag_keys.n ? calloc(sv->tag_keys.n, sizeof *mt) : NULL;
        for (size_t t = 0; mt && t < sv->tag_keys.n; t++)
            mt[t] = (mk_matcher){.key = sv->tag_keys.v[t], .value = sv->tag_values.v[t], .is_negated = 0};
        uint64_t *ids = NULL;
        size_t n_ids = 0;
        if ((mt || !sv->tag_keys.n) &&
            mk_db_find_series(db, sv->measurement, mt, sv->tag_keys.n, sv->qps, &ids, &n_ids, NULL) == MK_OK)
            for (size_t j = 0; j < n_ids; j++)
                scan_series(db, ids[j], first_day_ms, now_ms + 1, 1, days, &last_ts, &last_val);
        free(ids);
        free(mt);
        json_t *tags = json_object();
        for (size_t t = 0; t < sv->tag_keys.n; t++)
            json_object_set_new(tags, sv->tag_keys.v[t], json_string(sv->tag_values.v[t]));
        json_t *o = json_pack("{s:s,s:s,s:o,s:{s:s,s:s,s:s}}", "name", sv->name, "measurement", sv->measurement,
                              "tags", tags ? tags : json_object(), "fields", "qps", sv->qps, "p95", sv->p95,
                              "errors", sv->errors);
        if (!o) continue;
        int level = 0;
        const char *reason = "";
        for (size_t i = 0; i < json_array_size(open); i++) {
            json_t *j = json_array_get(open, i);
            const char *subj = jstr(j, "subject"), *st = jstr(j, "state"), *sev = jstr(j, "severity");
            if (!subj || strcmp(subj, sv->name) != 0 || !st || strcmp(st, "firing") != 0) continue;
            int l = sev && strcmp(sev, "critical") == 0 ? 2 : 1;
            if (l > level) level = l, reason = jstr(j, "reason") ? jstr(j, "reason") : "";
        }
        mk_web_state st = level == 2 ? MK_WEB_DOWN : level == 1 ? MK_WEB_DEGRADED
                        : last_ts != INT64_MIN && now_ms - last_ts < 15 * 60000 ? MK_WEB_UP : MK_WEB_NODATA;
        json_object_set_new(o, "state", json_string(mk_web_state_name(st)));
        json_object_set_new(o, "reason", json_string(reason));
        json_object_set_new(o, "last_sample_ms", last_ts == INT64_MIN ? json_null() : json_integer(last_ts));
        json_object_set_new(o, "public", json_boolean(mk_web_is_public(wc, sv->name)));
        put_days(o, days, iv, n_iv, sv->name, first_day_ms, now_ms);
        json_array_append_new(svcs, o);
    }

    /* groups (only what the visitor may see) and maintenance windows */
    for (size_t g = 0; wc && g < wc->n_groups; g++) {
        json_t *gm = json_array(), *gs = json_array();
        for (size_t i = 0; i < wc->groups[g].monitors.n; i++)
            if (VISIBLE(wc->groups[g].monitors.v[i])) json_array_append_new(gm, json_string(wc->groups[g].monitors.v[i]));
        for (size_t i = 0; i < wc->groups[g].services.n; i++)
            if (VISIBLE(wc->groups[g].services.v[i])) json_array_append_new(gs, json_string(wc->groups[g].services.v[i]));
        if (json_array_size(gm) + json_array_size(gs) == 0 && is_public_only) {
            json_decref(gm);
            json_decref(gs);
            continue;
        }
        json_array_append_new(groups, json_pack("{s:s,s:o,s:o}", "name", wc->groups[g].name, "monitors", gm,
                                                "services", gs));
    }
    for (size_t i = 0; wc && i < wc->n_maint; i++) {
        const web_maint *w = &wc->maint[i];
        if (w->end_ms < now_ms - 7 * MK_WEB_DAY_MS) continue; /* long past */
        json_t *ms = json_array();
        int is_visible = w->monitors.n == 0;
        for (size_t k = 0; k < w->monitors.n; k++)
            if (VISIBLE(w->monitors.v[k])) {
                json_array_append_new(ms, json_string(w->monitors.v[k]));
                is_visible = 1;
            }
        if (!is_visible) {
            json_decref(ms);
            continue;
        }
        json_array_append_new(maint, json_pack("{s:s,s:s,s:o,s:o,s:o,s:b}", "name", w->name, "description",
                                               w->description ? w->description : "", "start",
                                               mk_alertq_time_json(w->start_ms), "end", mk_alertq_time_json(w->end_ms),
                                               "monitors", ms, "active", now_ms >= w->start_ms && now_ms < w->end_ms));
    }
#undef VISIBLE
    json_object_set_new(root, "title", json_string(wc && wc->title ? wc->title : "Status"));
    json_object_set_new(root, "description", json_string(wc && wc->description ? wc->description : ""));
    json_object_set_new(root, "now_ms", json_integer(now_ms));
    json_object_set_new(root, "first_day_ms", json_integer(first_day_ms));
    json_object_set_new(root, "is_public_view", json_boolean(is_public_only));
    json_object_set_new(root, "has_alerts", json_boolean(alerts != NULL));
    json_object_set_new(root, "monitors", mons);
    json_object_set_new(root, "services", svcs);
    json_object_set_new(root, "groups", groups);
    json_object_set_new(root, "maintenance", maint);
    json_object_set_new(root, "open_incidents", open);
    json_object_set_new(root, "recent_incidents", recent);
    free(iv);
    json_decref(incs);
    free(days);
    strlist_free(&names);
    mk_rule_monitors_free(hm, n_hm);
    return root;
fail:
    json_decref(root);
    json_decref(mons);
    json_decref(svcs);
    json_decref(open);
    json_decref(recent);
    json_decref(groups);
    json_decref(maint);
    free(days);
    return NULL;
}

/* ---- serving ------------------------------------------------------------ */

static enum MHD_Result send_resp(struct MHD_Connection *c, int status, const char *ctype, const void *body, size_t n,
                                 enum MHD_ResponseMemoryMode mode, const char *cache, const char *etag, int is_gzip,
                                 int *code)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)(uintptr_t)body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free((void *)(uintptr_t)body);
        *code = 500;
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(r, "Content-Type", ctype);
    if (cache) MHD_add_response_header(r, "Cache-Control", cache);
    if (etag) MHD_add_response_header(r, "ETag", etag);
    if (is_gzip) MHD_add_response_header(r, "Content-Encoding", "gzip");
    MHD_add_response_header(r, "Vary", "Accept-Encoding, Authorization");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (ctype && strncmp(ctype, "text/html", 9) == 0) {
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                "frame-ancestors 'none'");
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    }
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    *code = status;
    return rc;
}

/* gzip of p[0..n) (level 1: the status document is ~200 KB with 200
 * monitors and shrinks ~10x); NULL when it does not pay or on failure. */
static unsigned char *gzip_buf(const char *p, size_t n, size_t *out_n)
{
    if (n < 1024) return NULL;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    size_t cap = deflateBound(&z, (uLong)n);
    unsigned char *out = malloc(cap);
    int ok = out != NULL;
    if (ok) {
        z.next_in = (unsigned char *)(uintptr_t)p;
        z.avail_in = (uInt)n;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        ok = deflate(&z, Z_FINISH) == Z_STREAM_END;
    }
    *out_n = z.total_out;
    deflateEnd(&z);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

static enum MHD_Result send_json_text(struct MHD_Connection *c, int status, char *txt, int *code);

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *o, int *code)
{
    char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(8)) : NULL;
    json_decref(o);
    return send_json_text(c, status, txt, code);
}

/* Sends txt (malloc'ed JSON text, taken over; NULL = out of memory),
 * gzip-compressed when the client accepts it. */
static enum MHD_Result send_json_text(struct MHD_Connection *c, int status, char *txt, int *code)
{
    if (!txt)
        return send_resp(c, 500, "application/json", "{\"error\":\"out of memory\"}\n", 25, MHD_RESPMEM_PERSISTENT,
                         "no-store", NULL, 0, code);
    size_t n = strlen(txt), n_gz = 0;
    unsigned char *gz = mk_web_accepts_gzip(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Encoding"))
                            ? gzip_buf(txt, n, &n_gz) : NULL;
    if (gz) {
        free(txt);
        return send_resp(c, status, "application/json", gz, n_gz, MHD_RESPMEM_MUST_FREE, "no-store", NULL, 1, code);
    }
    return send_resp(c, status, "application/json", txt, n, MHD_RESPMEM_MUST_FREE, "no-store", NULL, 0, code);
}

/* Does the Accept-Encoding header allow gzip? "gzip" or "x-gzip" with a
 * q-value above 0 says yes, with q=0 no; otherwise "*" with q > 0 decides. */
int mk_web_accepts_gzip(const char *ae)
{
    int star = 0;
    for (const char *p = ae; p && *p;) {
        size_t n = strcspn(p, ",");
        const char *e = p + n;
        while (p < e && (*p == ' ' || *p == '\t')) p++;
        size_t tl = strcspn(p, ";, \t");
        if (p + tl > e) tl = (size_t)(e - p);
        double q = 1;
        const char *sc = memchr(p, ';', (size_t)(e - p));
        for (const char *x = sc; x && x < e; x = memchr(x + 1, ';', (size_t)(e - x - 1))) {
            const char *v = x + 1;
            while (v < e && (*v == ' ' || *v == '\t')) v++;
            if (v + 1 < e && (v[0] == 'q' || v[0] == 'Q') && v[1] == '=') q = strtod(v + 2, NULL);
        }
        if ((tl == 4 && strncasecmp(p, "gzip", 4) == 0) || (tl == 6 && strncasecmp(p, "x-gzip", 6) == 0))
            return q > 0;
        if (tl == 1 && *p == '*') star = q > 0;
        p = *e ? e + 1 : e;
    }
    return star;
}

/* Does If-None-Match list etag (or "*")? Weak comparison, as RFC 9110 asks for
 * If-None-Match. */
static int etag_matches(const char *inm, const char *etag)
{
    return inm && (strchr(inm, '*') || strstr(inm, etag)); /* W/"x" contains "x" */
}

static const char *const not_built_html =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Meerkat</title></head>"
    "<body><h1>Meerkat</h1><p>The web UI was not built into this binary (built with -DMK_WEB=OFF or "
    "without npm). The APIs work: see <a href=\"/api/status-page\">/api/status-page</a>.</p></body></html>\n";

static enum MHD_Result serve_asset(struct MHD_Connection *c, const char *path, int *code)
{
    if (strcmp(path, "/") == 0) path = "/index.html";
    const mk_web_asset *a = NULL;
    for (size_t i = 0; i < mk_web_n_assets; i++)
        if (strcmp(mk_web_assets[i].path, path) == 0) a = &mk_web_assets[i];
    if (!a) {
        if (strcmp(path, "/index.html") == 0)
            return send_resp(c, 200, "text/html; charset=utf-8", not_built_html, strlen(not_built_html),
                             MHD_RESPMEM_PERSISTENT, "no-cache", NULL, 0, code);
        return send_resp(c, 404, "text/plain; charset=utf-8", "not found\n", 10, MHD_RESPMEM_PERSISTENT, "no-store",
                         NULL, 0, code);
    }
    /* index.html names the hashed asset files: always revalidated; the
     * assets themselves never change under their name. */
    const char *cache = strncmp(path, "/assets/", 8) == 0 ? "public, max-age=31536000, immutable" : "no-cache";
    if (etag_matches(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match"), a->etag))
        return send_resp(c, 304, NULL, "", 0, MHD_RESPMEM_PERSISTENT, cache, a->etag, 0, code);
    if (mk_web_accepts_gzip(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Encoding")))
        return send_resp(c, 200, a->content_type, a->gz, a->n_gz, MHD_RESPMEM_PERSISTENT, cache, a->etag, 1, code);
    /* a client without gzip: inflate this once for it */
    unsigned char *raw = malloc(a->n_raw ? a->n_raw : 1);
    z_stream z;
    memset(&z, 0, sizeof z);
    int ok = raw && inflateInit2(&z, 16 + MAX_WBITS) == Z_OK;
    if (ok) {
        z.next_in = (unsigned char *)(uintptr_t)a->gz;
        z.avail_in = (uInt)a->n_gz;
        z.next_out = raw;
        z.avail_out = (uInt)a->n_raw;
        ok = inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == a->n_raw;
        inflateEnd(&z);
    }
    if (!ok) {
        free(raw);
        return send_resp(c, 500, "text/plain; charset=utf-8", "cannot inflate\n", 15, MHD_RESPMEM_PERSISTENT,
                         "no-store", NULL, 0, code);
    }
    return send_resp(c, 200, a->content_type, raw, a->n_raw, MHD_RESPMEM_MUST_FREE, cache, a->etag, 0, code);
}

/* %XX-decodes src[0..n) into dst (cap bytes); -1 when too long, malformed
 * or holding a NUL. */
static int url_decode(const char *src, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = src[i];
        if (ch == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)src[i + 1]) || !isxdigit((unsigned char)src[i + 2]))
                return -1;
            char hex[3] = {src[i + 1], src[i + 2], 0};
            ch = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (ch == '\0' || o + 1 >= cap) return -1;
        dst[o++] = ch;
    }
    dst[o] = '\0';
    return 0;
}

static int is_known_monitor(const mk_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_monitors; i++)
        if (strcmp(cfg->monitors[i].name, name) == 0) return 1;
    const mk_web_config *wc = cfg->status_page;
    for (size_t g = 0; wc && g < wc->n_groups; g++)
        if (strlist_has(&wc->groups[g].monitors, name)) return 1;
    return 0;
}

static enum MHD_Result serve_badge(struct MHD_Connection *c, mk_db *db, const mk_config *cfg, mk_alerts *alerts,
                                   int is_public_only, const char *rest, int *code)
{
    const char *slash = strrchr(rest, '/');
    char name[256];
    if (!slash || url_decode(rest, (size_t)(slash - rest), name, sizeof name) != 0 || !name[0])
        return send_resp(c, 404, "text/plain; charset=utf-8", "no such badge\n", 14, MHD_RESPMEM_PERSISTENT,
                         "no-store", NULL, 0, code);
    int is_uptime = strcmp(slash, "/uptime.svg") == 0;
    if ((!is_uptime && strcmp(slash, "/status.svg") != 0) || !is_known_monitor(cfg, name) ||
        (is_public_only && !mk_web_is_public(cfg->status_page, name)))
        return send_resp(c, 404, "text/plain; charset=utf-8", "no such badge\n", 14, MHD_RESPMEM_PERSISTENT,
                         "no-store", NULL, 0, code);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_t *doc = mk_web_status_json(db, cfg, alerts, 0, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    json_t *mons = doc ? json_object_get(doc, "monitors") : NULL, *m = NULL;
    for (size_t i = 0; i < json_array_size(mons); i++)
        if (strcmp(jstr(json_array_get(mons, i), "name"), name) == 0) m = json_array_get(mons, i);
    char msg[64];
    const char *colour = "#9f9f9f", *label = is_uptime ? "uptime 30d" : name;
    if (!m) {
        snprintf(msg, sizeof msg, "no data");
    } else if (is_uptime) {
        json_t *u = json_object_get(m, "uptime_30d");
        double v = json_is_number(u) ? json_number_value(u) : NAN;
        if (isnan(v)) snprintf(msg, sizeof msg, "no data");
        else snprintf(msg, sizeof msg, "%.2f%%", v);
        colour = isnan(v) ? colour : v >= 99.9 ? "#2e7d32" : v >= 99 ? "#689f38" : v >= 95 ? "#b26a00" : "#c62828";
    } else {
        const char *st = jstr(m, "state");
        snprintf(msg, sizeof msg, "%s", st ? st : "NO DATA");
        for (char *p = msg; *p; p++) *p = (char)tolower((unsigned char)*p);
        colour = !st ? colour : strcmp(st, "UP") == 0 ? "#2e7d32" : strcmp(st, "DEGRADED") == 0 ? "#b26a00"
               : strcmp(st, "DOWN") == 0 ? "#c62828" : colour;
    }
    char *svg = mk_web_badge_svg(label, msg, colour);
    json_decref(doc);
    if (!svg) return send_json(c, 500, json_pack("{s:s}", "error", "out of memory"), code);
    return send_resp(c, 200, "image/svg+xml; charset=utf-8", svg, strlen(svg), MHD_RESPMEM_MUST_FREE,
                     "no-cache, max-age=60", NULL, 0, code);
}

/* ---- /api/anomaly: the detector's score per chart bucket ------------------ */

/* "10s", "5m", "2h", "1d" -> ms; 0 when malformed or out of 1 s .. 30 d. */
static int64_t parse_step_ms(const char *s)
{
    char *end = NULL;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || v <= 0 || v > 1000000) return 0;
    int64_t unit = strcmp(end, "s") == 0 ? 1000 : strcmp(end, "m") == 0 ? 60000 : strcmp(end, "h") == 0 ? 3600000
                 : strcmp(end, "d") == 0 ? MK_WEB_DAY_MS : 0;
    int64_t ms = (int64_t)v * unit;
    return ms >= 1000 && ms <= 30 * MK_WEB_DAY_MS ? ms : 0;
}

static const char *uri_arg(const char *uri, const char *key, char *buf, size_t cap)
{
    const char *q = strchr(uri, '?');
    size_t kl = strlen(key);
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        size_t n = strcspn(p, "&");
        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            char raw[512];
            size_t vl = n - kl - 1;
            if (vl >= sizeof raw) return NULL;
            memcpy(raw, p + kl + 1, vl);
            for (size_t i = 0; i < vl; i++)
                if (raw[i] == '+') raw[i] = ' ';
            return url_decode(raw, vl, buf, cap) == 0 ? buf : NULL;
        }
        p += n + (p[n] == '&');
    }
    return NULL;
}

static void bucket_score(mk_det *det, int64_t b, double mean, int64_t b0, int64_t step_ms, double *score, size_t n_b)
{
    double sc = 0;
    if (mk_det_step(det, b, mean, NULL, NULL, &sc, NULL, NULL) != MK_OK || b < b0) return;
    size_t k = (size_t)((b - b0) / step_ms);
    if (k < n_b && (isnan(score[k]) || sc > score[k])) score[k] = sc;
}

/*
 * Scores one series the way the charts show it: the mean of each step-wide
 * bucket (aligned as GROUP BY time) is fed to a fresh detector, starting
 * enough buckets before from_ms to pass the warm-up; the score of every
 * bucket in [from, to) is max-merged into score[] (NaN = no bucket yet).
 * Bucket means, not raw samples: a year at one sample a second would be
 * 31 M detector steps; a chart has a few hundred buckets.
 */
static void score_series(mk_db *db, uint64_t id, const mk_det_params *par, int64_t from_ms, int64_t to_ms,
                         int64_t step_ms, double *score, size_t n_b)
{
    int64_t lead = 200 * step_ms;
    int64_t b0 = from_ms - ((from_ms % step_ms) + step_ms) % step_ms; /* first bucket shown */
    mk_det *det = NULL;
    mk_iter *it = NULL;
    if (mk_det_new(par, &det, NULL) != MK_OK) return;
    if (mk_db_iter(db, id, b0 - lead, to_ms, &it, NULL) != MK_OK) {
        mk_det_free(det);
        return;
    }
    int64_t cur = INT64_MIN;
    double sum = 0;
    size_t cnt = 0;
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t n = 0;
        mk_err rc = mk_iter_next(it, &ts, &v, &n, NULL);
        if (rc == MK_ECORRUPT) continue; /* the damaged chunk is skipped by the next call */
        if (rc != MK_OK || n == 0) break;
        for (size_t i = 0; i < n; i++) {
            int64_t b = ts[i] - ((ts[i] % step_ms) + step_ms) % step_ms;
            if (b != cur && cnt) {
                bucket_score(det, cur, sum / (double)cnt, b0, step_ms, score, n_b);
                sum = 0;
                cnt = 0;
            }
            cur = b;
            if (isfinite(v[i])) sum += v[i], cnt++;
        }
    }
    if (cnt) bucket_score(det, cur, sum / (double)cnt, b0, step_ms, score, n_b);
    mk_iter_free(it);
    mk_det_free(det);
}

static enum MHD_Result serve_anomaly(struct MHD_Connection *c, mk_db *db, const mk_config *cfg, int is_public_only,
                                     const char *uri, int *code)
{
    char name[256], fb[32], tb[32], sb[32];
    const char *svc_name = uri_arg(uri, "service", name, sizeof name);
    const char *fs = uri_arg(uri, "from", fb, sizeof fb), *ts = uri_arg(uri, "to", tb, sizeof tb);
    int64_t step_ms = parse_step_ms(uri_arg(uri, "step", sb, sizeof sb));
    const mk_web_config *wc = cfg->status_page;
    const web_service *sv = NULL;
    for (size_t i = 0; svc_name && wc && i < wc->n_services; i++)
        if (strcmp(wc->services[i].name, svc_name) == 0) sv = &wc->services[i];
    if (!sv || (is_public_only && !mk_web_is_public(wc, sv->name)))
        return send_json(c, 404, json_pack("{s:s}", "error", "no such service"), code);
    int64_t from_ms = fs ? strtoll(fs, NULL, 10) : 0, to_ms = ts ? strtoll(ts, NULL, 10) : 0;
    if (!step_ms || to_ms <= from_ms || (to_ms - from_ms) / step_ms > 5000)
        return send_json(c, 400, json_pack("{s:s}", "error", "need from and to (ms) and step (10s, 5m, 2h, 1d), at most 5000 buckets"),
                         code);
    int64_t b0 = from_ms - ((from_ms % step_ms) + step_ms) % step_ms;
    size_t n_b = (size_t)((to_ms - b0 + step_ms - 1) / step_ms);
    mk_det_params par;
    mk_det_params_init(&par);
    json_t *root = json_object();
    const char *keys[3] = {"qps", "p95", "errors"}, *fields[3] = {sv->qps, sv->p95, sv->errors};
    double *score = malloc(n_b * sizeof *score);
    mk_matcher *mt = sv->tag_keys.n ? calloc(sv->tag_keys.n, sizeof *mt) : NULL;
    if (!root || !score || (sv->tag_keys.n && !mt)) {
        free(score);
        free(mt);
        json_decref(root);
        return send_json(c, 500, json_pack("{s:s}", "error", "out of memory"), code);
    }
    for (size_t t = 0; t < sv->tag_keys.n; t++)
        mt[t] = (mk_matcher){.key = sv->tag_keys.v[t], .value = sv->tag_values.v[t], .is_negated = 0};
    for (int f = 0; f < 3; f++) {
        for (size_t k = 0; k < n_b; k++) score[k] = NAN;
        uint64_t *ids = NULL;
        size_t n_ids = 0;
        if (mk_db_find_series(db, sv->measurement, mt, sv->tag_keys.n, fields[f], &ids, &n_ids, NULL) == MK_OK)
            for (size_t j = 0; j < n_ids; j++) score_series(db, ids[j], &par, from_ms, to_ms, step_ms, score, n_b);
        free(ids);
        json_t *tarr = json_array(), *varr = json_array();
        for (size_t k = 0; k < n_b; k++) {
            if (isnan(score[k])) continue;
            json_array_append_new(tarr, json_integer(b0 + (int64_t)k * step_ms));
            json_array_append_new(varr, json_real(round(score[k] * 1000) / 1000));
        }
        json_object_set_new(root, keys[f], json_pack("{s:o,s:o}", "times", tarr, "values", varr));
    }
    free(score);
    free(mt);
    return send_json(c, 200, root, code);
}

/* Whether the visitor is limited to what the section marks public: keys
 * configured and no valid key presented. A wrong key is not an error here:
 * the page stays readable as its public view. */
static int public_only(struct MHD_Connection *c, const mk_config *cfg)
{
    if (cfg->n_keys == 0) return 0;
    char key[1024];
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (mk_form_credentials(auth, NULL, NULL, key, sizeof key) == MK_CRED_NONE) return 1;
    return mk_config_key_role(cfg, key, strlen(key)) == 0;
}

int mk_web_handle(struct MHD_Connection *c, mk_db *db, const mk_config *cfg, mk_alerts *alerts, const char *method,
                  const char *uri, int *code, int *result)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return 0;
    char path[1024];
    size_t n = strcspn(uri, "?#");
    if (n >= sizeof path) return 0;
    memcpy(path, uri, n);
    path[n] = '\0';
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0 || strncmp(path, "/assets/", 8) == 0) {
        *result = serve_asset(c, path, code);
        return 1;
    }
    if (strcmp(path, "/api/status-page") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        int is_pub = public_only(c, cfg);
        mk_web_config *wc = cfg->status_page;
        char *txt = NULL;
        if (wc) {
            pthread_mutex_lock(&wc->cache_mu);
            if (wc->cache_text[is_pub] && now - wc->cache_at_ms[is_pub] >= 0 && now - wc->cache_at_ms[is_pub] < MK_WEB_CACHE_MS)
                txt = strdup(wc->cache_text[is_pub]);
            pthread_mutex_unlock(&wc->cache_mu);
        }
        if (!txt) {
            json_t *doc = mk_web_status_json(db, cfg, alerts, is_pub, now);
            txt = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(8)) : NULL;
            json_decref(doc);
            char *keep = txt && wc ? strdup(txt) : NULL;
            if (keep) {
                pthread_mutex_lock(&wc->cache_mu);
                free(wc->cache_text[is_pub]);
                wc->cache_text[is_pub] = keep;
                wc->cache_at_ms[is_pub] = now;
                pthread_mutex_unlock(&wc->cache_mu);
            }
        }
        *result = send_json_text(c, 200, txt, code);
        return 1;
    }
    if (strcmp(path, "/api/anomaly") == 0) {
        *result = serve_anomaly(c, db, cfg, public_only(c, cfg), uri, code);
        return 1;
    }
    if (strncmp(path, "/badge/", 7) == 0) {
        *result = serve_badge(c, db, cfg, alerts, public_only(c, cfg), path + 7, code);
        return 1;
    }
    return 0;
}

/*
 * detect/rule.c — rule definitions, their YAML form, templates and the
 * evaluation engine (see rule.h).
 *
 * Parsing uses libyaml's document API: the whole file becomes a node tree
 * whose marks give the line and column of every key and value, so each
 * error names where it is (libyaml counts from 0; we print from 1). Every
 * key of a rule is checked: an unknown key is an error, not silently
 * ignored, because a misspelt `for:` would otherwise alert at once.
 *
 * Evaluation reads the engine only through mk_db_find_series and
 * mk_db_iter_summaries: per-chunk summaries (count, sum, sum of squares,
 * min, max, first, last) answer every reduction a rule needs without
 * decoding samples, except at window edges where the engine decodes for us.
 * A seasonal baseline whose raw data is past the raw retention comes from
 * the finest rollup tier still covering it (mk_db_finest_tier,
 * mk_db_iter_buckets; default_baseline).
 *
 * Invariant of the engine: rules[i].name are distinct; next_due_ms of a rule
 * is a multiple of its interval.
 */
#include "rule.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "index.h" /* mk_index_key_build: the id a monitor's first beat will get */
#include "lp.h"
#include "util.h"

#define DEFAULT_INTERVAL_MS 60000
#define MAX_SERIES_KEY 4096

const char *mk_rule_kind_name(mk_rule_kind k)
{
    switch (k) {
    case MK_RULE_THRESHOLD: return "threshold";
    case MK_RULE_DYNAMIC: return "dynamic";
    case MK_RULE_SEASONAL: return "seasonal";
    case MK_RULE_ANOMALY: return "anomaly";
    case MK_RULE_HEARTBEAT: return "heartbeat";
    }
    return "unknown";
}

static char *xstrdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

void mk_rule_clear(mk_rule *r)
{
    if (!r) return;
    free(r->name);
    free(r->measurement);
    free(r->field);
    for (size_t i = 0; i < r->n_tags; i++) { free(r->tags[i].key); free(r->tags[i].value); }
    free(r->tags);
    free(r->cron_expr);
    free(r->tz_name);
    mk_cron_tz_free(r->tz);
    mk_labels_free(r->labels, r->n_labels);
    mk_labels_free(r->annotations, r->n_annotations);
    memset(r, 0, sizeof *r);
}

void mk_rule_set_free(mk_rule_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) mk_rule_clear(&s->rules[i]);
    free(s->rules);
    s->rules = NULL;
    s->n = 0;
}

mk_err mk_rule_copy(const mk_rule *src, mk_rule *dst, mk_diag *diag)
{
    *dst = *src;
    dst->name = xstrdup(src->name);
    dst->measurement = xstrdup(src->measurement);
    dst->field = xstrdup(src->field);
    dst->cron_expr = xstrdup(src->cron_expr);
    dst->tz_name = xstrdup(src->tz_name);
    dst->tz = NULL;
    dst->tags = NULL;
    dst->n_tags = 0;
    dst->labels = dst->annotations = NULL;
    dst->n_labels = dst->n_annotations = 0;
    int is_oom = (src->name && !dst->name) || (src->measurement && !dst->measurement) || (src->field && !dst->field) ||
                 (src->cron_expr && !dst->cron_expr) || (src->tz_name && !dst->tz_name);
    if (!is_oom && src->n_tags) {
        dst->tags = calloc(src->n_tags, sizeof *dst->tags);
        if (!dst->tags) is_oom = 1;
        for (size_t i = 0; !is_oom && i < src->n_tags; i++) {
            dst->tags[i].key = xstrdup(src->tags[i].key);
            dst->tags[i].value = xstrdup(src->tags[i].value);
            dst->tags[i].is_negated = src->tags[i].is_negated;
            dst->n_tags = i + 1;
            if (!dst->tags[i].key || !dst->tags[i].value) is_oom = 1;
        }
    }
    if (!is_oom && mk_labels_dup(src->labels, src->n_labels, &dst->labels)) is_oom = 1;
    if (!is_oom) dst->n_labels = src->n_labels;
    if (!is_oom && mk_labels_dup(src->annotations, src->n_annotations, &dst->annotations)) is_oom = 1;
    if (!is_oom) dst->n_annotations = src->n_annotations;
    if (is_oom) {
        mk_rule_clear(dst);
        return mk_diag_set(diag, MK_ENOMEM, "no memory copying rule %s", src->name ? src->name : "?");
    }
    if (src->tz_name) {
        mk_err err = mk_cron_tz_load(src->tz_name, &dst->tz, diag);
        if (err) { mk_rule_clear(dst); return err; }
    }
    return MK_OK;
}

/* ---- templates --------------------------------------------------------- */

static void fmt_num(char *out, size_t cap, double v)
{
    if (v != v) snprintf(out, cap, "NaN");
    else snprintf(out, cap, "%.6g", v);
}

mk_err mk_rule_render(const char *tmpl, const mk_rule_tmpl_ctx *ctx, char **out, mk_diag *diag)
{
    mk_buf b = {0};
    mk_err err = MK_OK;
    if (out) *out = NULL;
    const char *s = tmpl ? tmpl : "";
    while (*s) {
        const char *open = strstr(s, "{{");
        if (!open) { if (mk_buf_append(&b, s, strlen(s))) goto oom; break; }
        if (mk_buf_append(&b, s, (size_t)(open - s))) goto oom;
        const char *close = strstr(open + 2, "}}");
        if (!close) {
            err = mk_diag_set(diag, MK_EPARSE, "template column %d: '{{' without a closing '}}'", (int)(open - tmpl) + 1);
            goto out;
        }
        const char *a = open + 2, *z = close;
        while (a < z && (*a == ' ' || *a == '\t')) a++;
        while (z > a && (z[-1] == ' ' || z[-1] == '\t')) z--;
        size_t n = (size_t)(z - a);
        char num[64];
        const char *val = NULL;
        if (n == 6 && !memcmp(a, "$value", 6)) { if (ctx) fmt_num(num, sizeof num, ctx->value); val = num; }
        else if (n == 10 && !memcmp(a, "$threshold", 10)) { if (ctx) fmt_num(num, sizeof num, ctx->threshold); val = num; }
        else if (n == 5 && !memcmp(a, "$rule", 5)) val = ctx && ctx->rule ? ctx->rule : "";
        else if (n == 9 && !memcmp(a, "$severity", 9)) val = ctx ? mk_severity_name(ctx->severity) : "";
        else if (n == 7 && !memcmp(a, "$reason", 7)) val = ctx && ctx->reason ? ctx->reason : "";
        else if (n > 8 && !memcmp(a, "$labels.", 8)) {
            val = "";
            for (size_t i = 0; ctx && i < ctx->n_labels; i++)
                if (strlen(ctx->labels[i].key) == n - 8 && !memcmp(ctx->labels[i].key, a + 8, n - 8)) {
                    val = ctx->labels[i].value;
                    break;
                }
        } else {
            err = mk_diag_set(diag, MK_EPARSE,
                              "template column %d: unknown placeholder '{{%.*s}}' (known: $value, $threshold, "
                              "$labels.NAME, $rule, $severity, $reason)",
                              (int)(open - tmpl) + 1, (int)(close - open - 2), open + 2);
            goto out;
        }
        if (!ctx) val = "";
        if (mk_buf_append(&b, val, strlen(val))) goto oom;
        s = close + 2;
    }
    if (mk_buf_append(&b, "", 1)) goto oom;
    if (out) { *out = (char *)b.data; b.data = NULL; }
    goto out;
oom:
    err = mk_diag_set(diag, MK_ENOMEM, "no memory rendering a template");
out:
    mk_buf_free(&b);
    return err;
}

/* ---- YAML -------------------------------------------------------------- */

typedef struct pctx {
    yaml_document_t *doc;
    const char *file;
    mk_diag *diag;
} pctx;

static mk_err perr(pctx *c, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static mk_err perr(pctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mk_diag_set(c->diag, MK_EPARSE, "%s:%zu:%zu: %s", c->file, n ? n->start_mark.line + 1 : 0,
                       n ? n->start_mark.column + 1 : 0, msg);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static mk_err get_str(pctx *c, const yaml_node_t *n, const char *what, char **out)
{
    const char *s = scalar(n);
    if (!s) return perr(c, n, "%s must be a string", what);
    free(*out);
    *out = xstrdup(s);
    if (!*out) return mk_diag_set(c->diag, MK_ENOMEM, "no memory");
    return MK_OK;
}

static mk_err get_num(pctx *c, const yaml_node_t *n, const char *what, double *out)
{
    const char *s = scalar(n);
    char *end;
    if (!s || !*s) return perr(c, n, "%s must be a number", what);
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v)) return perr(c, n, "%s must be a number, not '%s'", what, s);
    *out = v;
    return MK_OK;
}

static mk_err get_count(pctx *c, const yaml_node_t *n, const char *what, uint32_t lo, uint32_t hi, uint32_t *out)
{
    double v;
    mk_err err = get_num(c, n, what, &v);
    if (err) return err;
    if (v != floor(v) || v < lo || v > hi) return perr(c, n, "%s must be a whole number from %u to %u", what, lo, hi);
    *out = (uint32_t)v;
    return MK_OK;
}

/* "90s", "5m", "1h30m", "7d", "1w", "250ms"; a bare number is seconds.
 * At most 100 years, so every later sum of durations and times fits. */
#define MAX_DURATION_MS (100 * 366 * 86400000.0)
static int parse_duration(const char *s, int64_t *out)
{
    if (!s || !*s) return -1;
    double total = 0;
    const char *p = s;
    char *end;
    double v = strtod(p, &end);
    if (end != p && !*end) {
        if (!(v >= 0 && v * 1000 <= MAX_DURATION_MS)) return -1;
        *out = (int64_t)(v * 1000);
        return 0;
    }
    while (*p) {
        if (*p == '+' || *p == '-' || *p == ' ') return -1;
        v = strtod(p, &end);
        if (end == p || !(v >= 0 && v <= MAX_DURATION_MS)) return -1;
        p = end;
        int64_t unit;
        if (!strncmp(p, "ms", 2)) { unit = 1; p += 2; }
        else if (*p == 's') { unit = 1000; p++; }
        else if (*p == 'm') { unit = 60000; p++; }
        else if (*p == 'h') { unit = 3600000; p++; }
        else if (*p == 'd') { unit = 86400000; p++; }
        else if (*p == 'w') { unit = 7 * 86400000LL; p++; }
        else return -1;
        total += v * (double)unit;
        if (total > MAX_DURATION_MS) return -1;
    }
    *out = (int64_t)total;
    return 0;
}

static mk_err get_dur(pctx *c, const yaml_node_t *n, const char *what, int64_t *out)
{
    const char *s = scalar(n);
    if (!s || parse_duration(s, out))
        return perr(c, n, "%s must be a duration such as 30s, 5m, 1h, 7d (got '%s')", what, s ? s : "non-scalar");
    return MK_OK;
}

/* "[field] OP number": fills cond and *field (if named). */
static mk_err get_cond(pctx *c, const yaml_node_t *n, const char *what, mk_rule_cond *cond, char **field)
{
    const char *s = scalar(n);
    if (!s) return perr(c, n, "%s must be a string such as \"error_rate > 0.05\"", what);
    const char *p = s;
    while (*p == ' ') p++;
    const char *name = p;
    while (*p && *p != ' ' && *p != '>' && *p != '<') p++;
    size_t name_len = (size_t)(p - name);
    while (*p == ' ') p++;
    mk_rule_cmp op = MK_CMP_NONE;
    if (p[0] == '>' && p[1] == '=') { op = MK_CMP_GE; p += 2; }
    else if (p[0] == '<' && p[1] == '=') { op = MK_CMP_LE; p += 2; }
    else if (p[0] == '>') { op = MK_CMP_GT; p++; }
    else if (p[0] == '<') { op = MK_CMP_LT; p++; }
    if (op == MK_CMP_NONE)
        return perr(c, n, "%s: expected a comparison (>, >=, <, <=) at column %d of \"%s\"", what, (int)(p - s) + 1, s);
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    while (*end == ' ') end++;
    if (end == p || *end || errno || !isfinite(v))
        return perr(c, n, "%s: expected a number at column %d of \"%s\"", what, (int)(p - s) + 1, s);
    cond->op = op;
    cond->value = v;
    if (name_len && field) {
        char *f = malloc(name_len + 1);
        if (!f) return mk_diag_set(c->diag, MK_ENOMEM, "no memory");
        memcpy(f, name, name_len);
        f[name_len] = 0;
        if (*field && strcmp(*field, f) != 0) {
            mk_err err = perr(c, n, "%s names field '%s' but the rule's field is '%s'", what, f, *field);
            free(f);
            return err;
        }
        free(*field);
        *field = f;
    }
    return MK_OK;
}

/* A mapping of string to string into labels. */
static mk_err get_labels(pctx *c, const yaml_node_t *n, const char *what, mk_label **out, size_t *n_out, int is_template)
{
    if (n->type != YAML_MAPPING_NODE) return perr(c, n, "%s must be a mapping of names to strings", what);
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    mk_labels_free(*out, *n_out);
    *out = NULL;
    *n_out = 0;
    if (!cnt) return MK_OK;
    mk_label *l = calloc(cnt, sizeof *l);
    if (!l) return mk_diag_set(c->diag, MK_ENOMEM, "no memory");
    *out = l;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key), *v = yaml_document_get_node(c->doc, pr->value);
        if (!scalar(k) || !*scalar(k)) return perr(c, k, "%s: names must be non-empty strings", what);
        if (!scalar(v)) return perr(c, v, "%s.%s must be a string", what, scalar(k));
        if (is_template) {
            mk_diag d = {0};
            if (mk_rule_render(scalar(v), NULL, NULL, &d)) return perr(c, v, "%s.%s: %s", what, scalar(k), d.msg);
        }
        l[*n_out].key = xstrdup(scalar(k));
        l[*n_out].value = xstrdup(scalar(v));
        (*n_out)++;
        if (!l[*n_out - 1].key || !l[*n_out - 1].value) return mk_diag_set(c->diag, MK_ENOMEM, "no memory");
    }
    return MK_OK;
}

static mk_err get_tags(pctx *c, const yaml_node_t *n, mk_rule *r)
{
    if (n->type != YAML_MAPPING_NODE) return perr(c, n, "tags must be a mapping of tag names to values (\"!v\" negates)");
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    r->tags = cnt ? calloc(cnt, sizeof *r->tags) : NULL;
    if (cnt && !r->tags) return mk_diag_set(c->diag, MK_ENOMEM, "no memory");
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key), *v = yaml_document_get_node(c->doc, pr->value);
        if (!scalar(k) || !*scalar(k)) return perr(c, k, "tag names must be non-empty strings");
        if (!scalar(v)) return perr(c, v, "tag %s must have a string value", scalar(k));
        const char *val = scalar(v);
        mk_rule_tag *t = &r->tags[r->n_tags++];
        t->is_negated = val[0] == '!';
        t->key = xstrdup(scalar(k));
        t->value = xstrdup(val + t->is_negated);
        if (!t->key || !t->value) return mk_diag_set(c->diag, MK_ENOMEM, "no memory");
    }
    return MK_OK;
}

static int cond_holds(mk_rule_cond c, double v)
{
    switch (c.op) {
    case MK_CMP_GT: return v > c.value;
    case MK_CMP_GE: return v >= c.value;
    case MK_CMP_LT: return v < c.value;
    case MK_CMP_LE: return v <= c.value;
    case MK_CMP_NONE: return 0;
    }
    return 0;
}

/* snprintf where cutting a long message short is intended. */
static void msgf(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msgf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, cap, fmt, ap);
    va_end(ap);
}

/* Semantic checks shared by the parser (node != NULL gives the position)
 * and mk_rule_validate. */
static mk_err check_rule(pctx *c, const yaml_node_t *node, mk_rule *r)
{
    mk_diag *diag = c->diag;
    char where[300];
    if (node) snprintf(where, sizeof where, "%s:%zu:%zu: rule '%s'", c->file, node->start_mark.line + 1,
                       node->start_mark.column + 1, r->name ? r->name : "?");
    else snprintf(where, sizeof where, "rule '%s'", r->name ? r->name : "?");
#define FAIL(...) do { char m_[300]; msgf(m_, sizeof m_, __VA_ARGS__); \
        return mk_diag_set(diag, node ? MK_EPARSE : MK_EINVAL, "%s: %s", where, m_); } while (0)
    if (!r->name || !*r->name) FAIL("has no name");
    for (const char *p = r->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
            FAIL("name may hold only letters, digits, '_', '-' and '.'");
    if (!r->kind) FAIL("has no kind (threshold, dynamic, seasonal, anomaly or heartbeat)");
    if (!r->measurement || !*r->measurement) FAIL("has no measurement");
    if (r->kind != MK_RULE_HEARTBEAT && (r->cron_expr || r->tz_name || r->period_ms || r->grace_ms ||
                                         r->degraded_after_ms || r->down_after_ms))
        FAIL("period, grace, cron, tz, degraded_after and down_after apply only to heartbeat rules");
    if (r->kind == MK_RULE_THRESHOLD && r->fire.op == MK_CMP_NONE)
        FAIL("threshold rule needs expr, e.g. \"error_rate > 0.05\"");
    if (r->kind == MK_RULE_HEARTBEAT && !r->field) {
        r->field = xstrdup("status");
        if (!r->field) return mk_diag_set(diag, MK_ENOMEM, "no memory");
    }
    if (!r->field || !*r->field) FAIL("has no field");
    if (r->interval_ms <= 0) r->interval_ms = DEFAULT_INTERVAL_MS;
    if (r->interval_ms < 1000) FAIL("interval must be at least 1s");
    if (r->window_ms <= 0) r->window_ms = r->interval_ms;
    if (!r->policy.failures) r->policy.failures = 1;
    if (!r->policy.successes) r->policy.successes = 1;
    if (r->policy.flap_window) {
        if (r->policy.flap_window < 3 || r->policy.flap_window > 64) FAIL("flap.window must be from 3 to 64");
        if (!r->policy.flap_high_pct) r->policy.flap_high_pct = 50;
        if (!r->policy.flap_low_pct) r->policy.flap_low_pct = 25;
        if (r->policy.flap_low_pct > r->policy.flap_high_pct) FAIL("flap.low must not exceed flap.high");
    }
    if (!r->severity) r->severity = r->kind == MK_RULE_HEARTBEAT ? MK_SEV_CRITICAL : MK_SEV_WARNING;
    switch (r->kind) {
    case MK_RULE_THRESHOLD:
        if (r->fire.op == MK_CMP_NONE) FAIL("threshold rule needs expr, e.g. \"error_rate > 0.05\"");
        if (r->clear.op != MK_CMP_NONE) {
            /* The two conditions may not hold together: probe around both limits. */
            double probes[] = {r->fire.value, r->clear.value, (r->fire.value + r->clear.value) / 2,
                               nextafter(r->fire.value, INFINITY), nextafter(r->fire.value, -INFINITY),
                               nextafter(r->clear.value, INFINITY), nextafter(r->clear.value, -INFINITY), -1e300, 1e300};
            for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
                if (cond_holds(r->fire, probes[i]) && cond_holds(r->clear, probes[i]))
                    FAIL("clear condition overlaps the fire condition (at %g)", probes[i]);
        }
        r->policy.is_low_bad = r->fire.op == MK_CMP_LT || r->fire.op == MK_CMP_LE;
        break;
    case MK_RULE_DYNAMIC:
        if (!(r->k > 0)) FAIL("dynamic rule needs k > 0 (how many standard deviations)");
        if (!(r->clear_k > 0)) r->clear_k = r->k;
        if (r->clear_k > r->k) FAIL("clear_k must not exceed k");
        if (r->history_ms <= 0) r->history_ms = 3600000;
        if (r->reduce == MK_REDUCE_LAST) r->reduce = MK_REDUCE_MEAN;
        break;
    case MK_RULE_SEASONAL:
        if (r->season_ms <= 0) FAIL("seasonal rule needs baseline: 1d or 7d");
        if (!(r->ratio > 1)) FAIL("seasonal rule needs ratio > 1 (e.g. 2 = twice or half the baseline)");
        if (!(r->clear_ratio > 0)) r->clear_ratio = r->ratio;
        if (r->clear_ratio < 1 || r->clear_ratio > r->ratio) FAIL("clear_ratio must lie between 1 and ratio");
        r->policy.is_low_bad = r->direction < 0;
        break;
    case MK_RULE_ANOMALY:
        if (!(r->score_above > 0 && r->score_above <= 1)) FAIL("anomaly rule needs above: a score level in (0, 1]");
        if (!(r->score_clear > 0)) r->score_clear = r->score_above;
        if (r->score_clear > r->score_above) FAIL("clear_below must not exceed above");
        break;
    case MK_RULE_HEARTBEAT:
        if (r->cron_expr) {
            mk_diag d = {0};
            if (mk_cron_parse(r->cron_expr, &r->cron, &d)) FAIL("%s", d.msg);
            if (r->period_ms) FAIL("give either period or cron, not both");
        } else if (r->period_ms <= 0) {
            FAIL("heartbeat rule needs period (e.g. 60s) or cron (e.g. \"*/5 * * * *\")");
        }
        if (r->tz_name && !r->cron_expr) FAIL("tz applies only to cron schedules");
        if (r->tz_name && !r->tz) {
            mk_diag d = {0};
            if (mk_cron_tz_load(r->tz_name, &r->tz, &d)) FAIL("%s", d.msg);
        }
        if (r->down_after_ms && r->degraded_after_ms && r->degraded_after_ms > r->down_after_ms)
            FAIL("degraded_after must not exceed down_after");
        break;
    default:
        FAIL("unknown kind");
    }
    for (size_t i = 0; i < r->n_annotations; i++) {
        mk_diag d = {0};
        if (mk_rule_render(r->annotations[i].value, NULL, NULL, &d)) FAIL("annotation %s: %s", r->annotations[i].key, d.msg);
    }
#undef FAIL
    return MK_OK;
}

mk_err mk_rule_validate(mk_rule *r, mk_diag *diag)
{
    pctx c = {NULL, "", diag};
    return check_rule(&c, NULL, r);
}

static mk_err parse_flap(pctx *c, const yaml_node_t *n, mk_rule *r)
{
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = scalar(n);
        if (!strcmp(s, "true") || !strcmp(s, "on") || !strcmp(s, "yes")) { r->policy.flap_window = 21; return MK_OK; }
        if (!strcmp(s, "false") || !strcmp(s, "off") || !strcmp(s, "no")) { r->policy.flap_window = 0; return MK_OK; }
        return perr(c, n, "flap must be true, false or a mapping with window, high, low");
    }
    if (n->type != YAML_MAPPING_NODE) return perr(c, n, "flap must be true, false or a mapping with window, high, low");
    r->policy.flap_window = 21;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key), *v = yaml_document_get_node(c->doc, pr->value);
        const char *key = scalar(k);
        mk_err err;
        if (!key) return perr(c, k, "flap keys must be strings");
        if (!strcmp(key, "window")) err = get_count(c, v, "flap.window", 3, 64, &r->policy.flap_window);
        else if (!strcmp(key, "high")) err = get_num(c, v, "flap.high", &r->policy.flap_high_pct);
        else if (!strcmp(key, "low")) err = get_num(c, v, "flap.low", &r->policy.flap_low_pct);
        else return perr(c, k, "unknown key '%s' in flap (window, high, low)", key);
        if (err) return err;
    }
    return MK_OK;
}

static mk_err parse_rule_node(pctx *c, const yaml_node_t *n, const char *name_override, mk_rule *r)
{
    mk_err err = MK_OK;
    memset(r, 0, sizeof *r);
    if (n->type != YAML_MAPPING_NODE) return perr(c, n, "a rule must be a mapping (name:, kind:, ...)");
    r->line = (int)n->start_mark.line + 1;
    r->column = (int)n->start_mark.column + 1;
    const yaml_node_t *expr_node = NULL, *clear_node = NULL;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key), *v = yaml_document_get_node(c->doc, pr->value);
        const char *key = scalar(k);
        if (!key) { err = perr(c, k, "rule keys must be strings"); goto out; }
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < pr; q++) {
            const char *prev = scalar(yaml_document_get_node(c->doc, q->key));
            if (prev && !strcmp(prev, key)) { err = perr(c, k, "key '%s' given twice in a rule", key); goto out; }
        }
        double num;
        if (!strcmp(key, "name")) err = get_str(c, v, "name", &r->name);
        else if (!strcmp(key, "kind")) {
            const char *s = scalar(v);
            if (!s) { err = perr(c, v, "kind must be a string"); goto out; }
            if (!strcmp(s, "threshold")) r->kind = MK_RULE_THRESHOLD;
            else if (!strcmp(s, "dynamic")) r->kind = MK_RULE_DYNAMIC;
            else if (!strcmp(s, "seasonal")) r->kind = MK_RULE_SEASONAL;
            else if (!strcmp(s, "anomaly")) r->kind = MK_RULE_ANOMALY;
            else if (!strcmp(s, "heartbeat")) r->kind = MK_RULE_HEARTBEAT;
            else err = perr(c, v, "unknown kind '%s' (threshold, dynamic, seasonal, anomaly, heartbeat)", s);
        }
        else if (!strcmp(key, "measurement")) err = get_str(c, v, "measurement", &r->measurement);
        else if (!strcmp(key, "field")) err = get_str(c, v, "field", &r->field);
        else if (!strcmp(key, "tags")) err = get_tags(c, v, r);
        else if (!strcmp(key, "expr")) expr_node = v;
        else if (!strcmp(key, "clear")) clear_node = v;
        else if (!strcmp(key, "reduce")) {
            const char *s = scalar(v);
            static const char *const names[] = {"last", "mean", "max", "min", "sum", "count"};
            int found = 0;
            for (int i = 0; s && i < 6; i++)
                if (!strcmp(s, names[i])) { r->reduce = (mk_rule_reduce)i; found = 1; }
            if (!found) err = perr(c, v, "reduce must be one of last, mean, max, min, sum, count");
        }
        else if (!strcmp(key, "interval")) err = get_dur(c, v, "interval", &r->interval_ms);
        else if (!strcmp(key, "window")) err = get_dur(c, v, "window", &r->window_ms);
        else if (!strcmp(key, "for")) err = get_dur(c, v, "for", &r->policy.for_ms);
        else if (!strcmp(key, "failures")) err = get_count(c, v, "failures", 1, 1000000, &r->policy.failures);
        else if (!strcmp(key, "successes")) err = get_count(c, v, "successes", 1, 1000000, &r->policy.successes);
        else if (!strcmp(key, "cooldown")) err = get_dur(c, v, "cooldown", &r->policy.cooldown_ms);
        else if (!strcmp(key, "repeat")) err = get_dur(c, v, "repeat", &r->policy.repeat_ms);
        else if (!strcmp(key, "flap")) err = parse_flap(c, v, r);
        else if (!strcmp(key, "severity")) {
            const char *s = scalar(v);
            if (s && !strcmp(s, "warning")) r->severity = MK_SEV_WARNING;
            else if (s && !strcmp(s, "critical")) r->severity = MK_SEV_CRITICAL;
            else err = perr(c, v, "severity must be warning or critical");
        }
        else if (!strcmp(key, "labels")) err = get_labels(c, v, "labels", &r->labels, &r->n_labels, 0);
        else if (!strcmp(key, "annotations")) err = get_labels(c, v, "annotations", &r->annotations, &r->n_annotations, 1);
        else if (!strcmp(key, "k")) err = get_num(c, v, "k", &r->k);
        else if (!strcmp(key, "clear_k")) err = get_num(c, v, "clear_k", &r->clear_k);
        else if (!strcmp(key, "history")) err = get_dur(c, v, "history", &r->history_ms);
        else if (!strcmp(key, "baseline")) err = get_dur(c, v, "baseline", &r->season_ms);
        else if (!strcmp(key, "ratio")) err = get_num(c, v, "ratio", &r->ratio);
        else if (!strcmp(key, "clear_ratio")) err = get_num(c, v, "clear_ratio", &r->clear_ratio);
        else if (!strcmp(key, "direction")) {
            const char *s = scalar(v);
            if (s && !strcmp(s, "above")) r->direction = 1;
            else if (s && !strcmp(s, "below")) r->direction = -1;
            else if (s && !strcmp(s, "both")) r->direction = 0;
            else err = perr(c, v, "direction must be above, below or both");
        }
        else if (!strcmp(key, "above")) err = get_num(c, v, "above", &r->score_above);
        else if (!strcmp(key, "clear_below")) err = get_num(c, v, "clear_below", &num), r->score_clear = err ? 0 : num;
        else if (!strcmp(key, "period")) err = get_dur(c, v, "period", &r->period_ms);
        else if (!strcmp(key, "grace")) err = get_dur(c, v, "grace", &r->grace_ms);
        else if (!strcmp(key, "cron")) err = get_str(c, v, "cron", &r->cron_expr);
        else if (!strcmp(key, "tz")) err = get_str(c, v, "tz", &r->tz_name);
        else if (!strcmp(key, "degraded_after")) err = get_dur(c, v, "degraded_after", &r->degraded_after_ms);
        else if (!strcmp(key, "down_after")) err = get_dur(c, v, "down_after", &r->down_after_ms);
        else err = perr(c, k, "unknown key '%s' in a rule", key);
        if (err) goto out;
    }
    if (name_override) {
        free(r->name);
        r->name = xstrdup(name_override);
        if (!r->name) { err = mk_diag_set(c->diag, MK_ENOMEM, "no memory"); goto out; }
    }
    if (expr_node) {
        if (r->kind != MK_RULE_THRESHOLD) { err = perr(c, expr_node, "expr applies only to threshold rules"); goto out; }
        if ((err = get_cond(c, expr_node, "expr", &r->fire, &r->field))) goto out;
    }
    if (clear_node) {
        if (r->kind != MK_RULE_THRESHOLD) { err = perr(c, clear_node, "clear applies only to threshold rules (dynamic: clear_k, seasonal: clear_ratio, anomaly: clear_below)"); goto out; }
        if ((err = get_cond(c, clear_node, "clear", &r->clear, &r->field))) goto out;
    }
    err = check_rule(c, n, r);
out:
    if (err) mk_rule_clear(r);
    return err;
}

/* Loads text into doc; MK_EPARSE with libyaml's position on a syntax error. */
static mk_err load_doc(const char *text, size_t len, const char *file, yaml_document_t *doc, int *has_doc, mk_diag *diag)
{
    yaml_parser_t parser;
    *has_doc = 0;
    if (!yaml_parser_initialize(&parser)) return mk_diag_set(diag, MK_ENOMEM, "no memory for the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    mk_err err = MK_OK;
    if (!yaml_parser_load(&parser, doc)) {
        err = mk_diag_set(diag, MK_EPARSE, "%s:%zu:%zu: YAML syntax error: %s%s%s", file, parser.problem_mark.line + 1,
                          parser.problem_mark.column + 1, parser.problem ? parser.problem : "unknown",
                          parser.context ? " " : "", parser.context ? parser.context : "");
    } else {
        *has_doc = 1;
    }
    yaml_parser_delete(&parser);
    return err;
}

mk_err mk_rule_parse_yaml(const char *text, size_t len, const char *file, mk_rule_set *out, mk_diag *diag)
{
    yaml_document_t doc;
    int has_doc = 0;
    mk_err err = MK_OK;
    out->rules = NULL;
    out->n = 0;
    if (!file) file = "<config>";
    if ((err = load_doc(text, len, file, &doc, &has_doc, diag))) goto out;
    pctx c = {&doc, file, diag};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) goto out; /* empty file: no rules */
    if (root->type != YAML_MAPPING_NODE) { err = perr(&c, root, "the config must be a mapping with a rules: key"); goto out; }
    yaml_node_t *list = NULL;
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        if (scalar(k) && !strcmp(scalar(k), "rules")) list = yaml_document_get_node(&doc, pr->value);
    }
    if (!list) goto out;
    if (list->type == YAML_SCALAR_NODE && !*scalar(list)) goto out; /* "rules:" with nothing */
    if (list->type != YAML_SEQUENCE_NODE) { err = perr(&c, list, "rules must be a list of rules (- name: ...)"); goto out; }
    size_t cnt = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (!cnt) goto out;
    out->rules = calloc(cnt, sizeof *out->rules);
    if (!out->rules) { err = mk_diag_set(diag, MK_ENOMEM, "no memory for rules"); goto out; }
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top; it++) {
        yaml_node_t *rn = yaml_document_get_node(&doc, *it);
        if ((err = parse_rule_node(&c, rn, NULL, &out->rules[out->n]))) goto out;
        out->n++;
        for (size_t j = 0; j + 1 < out->n; j++)
            if (!strcmp(out->rules[j].name, out->rules[out->n - 1].name)) {
                err = perr(&c, rn, "rule name '%s' is already used at line %d", out->rules[j].name, out->rules[j].line);
                goto out;
            }
    }
out:
    if (has_doc) yaml_document_delete(&doc);
    if (err) mk_rule_set_free(out);
    return err;
}

mk_err mk_rule_parse_one(const char *text, size_t len, const char *name_or_null, mk_rule *out, mk_diag *diag)
{
    yaml_document_t doc;
    int has_doc = 0;
    memset(out, 0, sizeof *out);
    mk_err err = load_doc(text, len, "<rule>", &doc, &has_doc, diag);
    if (err) goto out;
    pctx c = {&doc, "<rule>", diag};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) { err = mk_diag_set(diag, MK_EPARSE, "<rule>:1:1: empty rule"); goto out; }
    err = parse_rule_node(&c, root, name_or_null, out);
out:
    if (has_doc) yaml_document_delete(&doc);
    return err;
}

/* ---- the evaluation engine --------------------------------------------- */

typedef struct rule_slot {
    mk_rule rule;
    int64_t next_due_ms; /* a multiple of interval; 0 = at the first call */
    int64_t added_ms;    /* first evaluation: "last beat" of a monitor never heard from */
} rule_slot;

typedef struct beat {
    uint64_t series_id; /* 0 = empty slot */
    int64_t ts_ms;
    double value;
} beat;

struct mk_rule_engine {
    pthread_mutex_t mu;
    mk_db *db;
    mk_env *env;
    mk_inc_store *store;
    rule_slot *rules;
    size_t n_rules, cap_rules;
    mk_rule_score_fn score;
    void *score_ctx;
    mk_rule_baseline_fn baseline;
    void *baseline_ctx;
    /* The last beat per series from mk_rule_engine_on_sample, under its own
     * mutex so the ingest path never waits for a whole evaluation. Open
     * addressing by series id; n_beat_slots a power of two. */
    pthread_mutex_t beat_mu;
    beat *beats;
    size_t n_beats, n_beat_slots;
};

/* What a heartbeat evaluation saw (for mk_rule_engine_monitors). */
typedef struct hb_info {
    int has_beat;
    int64_t last_ts_ms;
    double last_value;
    int level; /* 0 up, 1 degraded, 2 down */
} hb_info;

/* Totals of the summaries of one series over [from, to). */
typedef struct agg {
    uint64_t n;
    double sum, sumsq, min, max, last;
    int64_t last_ts_ms;
} agg;

static mk_err read_agg(mk_db *db, uint64_t id, int64_t from_ms, int64_t to_ms, agg *a, mk_diag *diag)
{
    memset(a, 0, sizeof *a);
    a->min = INFINITY;
    a->max = -INFINITY;
    mk_sum_iter *it = NULL;
    mk_diag d = {0};
    mk_err err = mk_db_iter_summaries(db, id, from_ms, to_ms, &it, &d);
    if (err == MK_ENOTFOUND) return MK_OK; /* a monitor not heard from yet: no data */
    if (err) {
        if (diag) *diag = d;
        return err;
    }
    for (;;) {
        const mk_chunk_summary *s;
        int is_decoded, has;
        if ((err = mk_sum_iter_next(it, &s, &is_decoded, &has, diag))) break;
        if (!has) break;
        if (!s->count) continue;
        a->n += s->count;
        a->sum += s->sum;
        a->sumsq += s->sumsq;
        if (s->min < a->min) a->min = s->min;
        if (s->max > a->max) a->max = s->max;
        if (s->last_ts_ms >= a->last_ts_ms || a->n == s->count) { a->last = s->last; a->last_ts_ms = s->last_ts_ms; }
    }
    mk_sum_iter_free(it);
    return err;
}

static double reduce(const agg *a, mk_rule_reduce r)
{
    switch (r) {
    case MK_REDUCE_LAST: return a->last;
    case MK_REDUCE_MEAN: return a->sum / (double)a->n;
    case MK_REDUCE_MAX: return a->max;
    case MK_REDUCE_MIN: return a->min;
    case MK_REDUCE_SUM: return a->sum;
    case MK_REDUCE_COUNT: return (double)a->n;
    }
    return a->last;
}

/*
 * The mean over [from_ms, to_ms) one season back: raw summaries while raw
 * data is kept for the window (mk_db_finest_tier: by the retention policy),
 * else the finest rollup tier that still covers it (a 7 d baseline with
 * raw data kept 1 d). When raw should be there but has nothing (dropped by
 * the size cap, or never written there) a tier with blocks there answers.
 */
static mk_err default_baseline(void *ctx, mk_db *db, uint64_t id, int64_t from_ms, int64_t to_ms, double *mean,
                               uint64_t *n, mk_diag *diag)
{
    (void)ctx;
    *n = 0;
    *mean = 0;
    int64_t step_ms = 0;
    mk_diag d = {0};
    mk_err err = mk_db_finest_tier(db, id, from_ms, to_ms, &step_ms, &d);
    if (err == MK_ENOTFOUND) return MK_OK; /* a monitor not heard from yet: no data */
    if (err) {
        if (diag) *diag = d;
        return err;
    }
    int is_whole_only = 0;
    if (step_ms == 0) {
        agg a;
        if ((err = read_agg(db, id, from_ms, to_ms, &a, diag))) return err;
        if (a.n) {
            *n = a.n;
            *mean = a.sum / (double)a.n;
            return MK_OK;
        }
        if (!(step_ms = mk_db_finest_tier_with_data(db, from_ms, to_ms))) return MK_OK;
        is_whole_only = 1;
    }
    double wn, sum;
    /* rule windows are (now - w, now] and rarely fall on bucket edges: an
     * edge bucket weighs as the share of it the window covers */
    if ((err = mk_db_bucket_totals(db, id, step_ms, from_ms, to_ms, is_whole_only, &wn, &sum, NULL, diag)))
        return err;
    if (!(wn > 0)) return MK_OK;
    *n = wn < 1 ? 1 : (uint64_t)llround(wn);
    *mean = sum / wn;
    return MK_OK;
}

/* Unescapes line-protocol text [p, end) into a new string. */
static char *unescape(const char *p, const char *end)
{
    char *s = malloc((size_t)(end - p) + 1), *w = s;
    if (!s) return NULL;
    while (p < end) {
        if (*p == '\\' && p + 1 < end) p++;
        *w++ = *p++;
    }
    *w = 0;
    return s;
}

/* The tags of a canonical key "measurement,k=v,... field" as labels. */
static int key_labels(const char *key, mk_label **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    const char *p = key;
    while (*p && *p != ',' && *p != ' ') p += (*p == '\\' && p[1]) ? 2 : 1;
    size_t cap = 0;
    while (*p == ',') {
        p++;
        const char *k = p;
        while (*p && *p != '=') p += (*p == '\\' && p[1]) ? 2 : 1;
        const char *ke = p;
        if (*p != '=') break;
        p++;
        const char *v = p;
        while (*p && *p != ',' && *p != ' ') p += (*p == '\\' && p[1]) ? 2 : 1;
        if (*n_out == cap) {
            size_t nc = cap ? cap * 2 : 4;
            mk_label *l = realloc(*out, nc * sizeof *l);
            if (!l) goto oom;
            *out = l;
            cap = nc;
        }
        (*out)[*n_out].key = unescape(k, ke);
        (*out)[*n_out].value = unescape(v, p);
        (*n_out)++;
        if (!(*out)[*n_out - 1].key || !(*out)[*n_out - 1].value) goto oom;
    }
    return 0;
oom:
    mk_labels_free(*out, *n_out);
    *out = NULL;
    *n_out = 0;
    return -1;
}

/* Series labels followed by the rule's labels (a rule label replaces a tag
 * of the same name). */
static int build_labels(mk_rule_engine *e, const mk_rule *r, uint64_t series_id, mk_label **out, size_t *n)
{
    char key[MAX_SERIES_KEY];
    size_t len;
    mk_label *l = NULL;
    size_t nl = 0;
    if (mk_db_series_key(e->db, series_id, key, sizeof key, &len, NULL) == MK_OK) {
        if (key_labels(key, &l, &nl)) return -1;
    } else { /* a monitor never heard from: its equality matchers */
        l = r->n_tags ? calloc(r->n_tags, sizeof *l) : NULL;
        for (size_t i = 0; l && i < r->n_tags; i++) {
            if (r->tags[i].is_negated) continue;
            l[nl].key = xstrdup(r->tags[i].key);
            l[nl].value = xstrdup(r->tags[i].value);
            nl++;
            if (!l[nl - 1].key || !l[nl - 1].value) { mk_labels_free(l, nl); return -1; }
        }
        if (r->n_tags && !l) return -1;
    }
    mk_label *m = realloc(l, (nl + r->n_labels + 1) * sizeof *m);
    if (!m) { mk_labels_free(l, nl); return -1; }
    l = m;
    for (size_t i = 0; i < r->n_labels; i++) {
        size_t j = 0;
        while (j < nl && strcmp(l[j].key, r->labels[i].key) != 0) j++;
        char *k = xstrdup(r->labels[i].key), *v = xstrdup(r->labels[i].value);
        if (!k || !v) { free(k); free(v); mk_labels_free(l, nl); return -1; }
        if (j < nl) { free(l[j].key); free(l[j].value); }
        else nl++;
        l[j].key = k;
        l[j].value = v;
    }
    *out = l;
    *n = nl;
    return 0;
}

/* The series id a selector with only equality matchers would have: lets a
 * heartbeat rule watch a monitor before its first beat, under the same id
 * the first beat will create. 0 if the selector is not of that form. */
static uint64_t virtual_series(const mk_rule *r)
{
    mk_lp_tag tags[32];
    if (r->n_tags > 32) return 0;
    for (size_t i = 0; i < r->n_tags; i++) {
        if (r->tags[i].is_negated) return 0;
        tags[i].key = (mk_lp_str){r->tags[i].key, (uint32_t)strlen(r->tags[i].key)};
        tags[i].value = (mk_lp_str){r->tags[i].value, (uint32_t)strlen(r->tags[i].value)};
    }
    for (size_t i = 1; i < r->n_tags; i++) /* insertion sort by key */
        for (size_t j = i; j > 0 && strcmp(tags[j - 1].key.p, tags[j].key.p) > 0; j--) {
            mk_lp_tag t = tags[j];
            tags[j] = tags[j - 1];
            tags[j - 1] = t;
        }
    mk_buf b = {0};
    uint64_t id = 0;
    if (mk_index_key_build(&b, (mk_lp_str){r->measurement, (uint32_t)strlen(r->measurement)}, tags,
                           (uint32_t)r->n_tags, (mk_lp_str){r->field, (uint32_t)strlen(r->field)}) == MK_OK)
        id = mk_hash64(b.data, b.len);
    mk_buf_free(&b);
    return id;
}

static beat *beat_find(mk_rule_engine *e, uint64_t id, int is_create)
{
    if (!id) return NULL;
    if (is_create && (e->n_beats + 1) * 2 > e->n_beat_slots) {
        size_t ns = e->n_beat_slots ? e->n_beat_slots * 2 : 256;
        if (ns > (1u << 22)) return NULL; /* bounded: the database still answers */
        beat *nb = calloc(ns, sizeof *nb);
        if (!nb) return NULL;
        for (size_t i = 0; i < e->n_beat_slots; i++) {
            if (!e->beats[i].series_id) continue;
            size_t j = (size_t)(e->beats[i].series_id * 0x9e3779b97f4a7c15ull) & (ns - 1);
            while (nb[j].series_id) j = (j + 1) & (ns - 1);
            nb[j] = e->beats[i];
        }
        free(e->beats);
        e->beats = nb;
        e->n_beat_slots = ns;
    }
    if (!e->n_beat_slots) return NULL;
    size_t mask = e->n_beat_slots - 1;
    for (size_t j = (size_t)(id * 0x9e3779b97f4a7c15ull) & mask;; j = (j + 1) & mask) {
        if (e->beats[j].series_id == id) return &e->beats[j];
        if (!e->beats[j].series_id) {
            if (!is_create) return NULL;
            e->beats[j].series_id = id;
            e->beats[j].ts_ms = INT64_MIN;
            e->n_beats++;
            return &e->beats[j];
        }
    }
}

/* 150000 -> "2m30s", 3600000 -> "1h", 250 -> "250ms". */
static void fmt_dur(char *out, size_t cap, int64_t ms)
{
    static const struct { int64_t ms; const char *unit; } units[] = {
        {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    size_t at = 0;
    out[0] = 0;
    if (ms <= 0) { msgf(out, cap, "0s"); return; }
    for (size_t i = 0; i < sizeof units / sizeof units[0] && at + 1 < cap; i++) {
        if (ms < units[i].ms) continue;
        int64_t k = ms / units[i].ms;
        ms -= k * units[i].ms;
        int n = snprintf(out + at, cap - at, "%" PRId64 "%s", k, units[i].unit);
        if (n < 0) break;
        at += (size_t)n;
    }
}

static const char *cmp_text(mk_rule_cmp op)
{
    return op == MK_CMP_GT ? ">" : op == MK_CMP_GE ? ">=" : op == MK_CMP_LT ? "<" : op == MK_CMP_LE ? "<=" : "?";
}

/* Computes the observation of rule r on series id at now. *has = 0: no data,
 * nothing to tell the machine. */
static mk_err observe(mk_rule_engine *e, rule_slot *slot, uint64_t id, int64_t now_ms, mk_inc_obs *o, char *reason,
                      size_t reason_cap, int *has, hb_info *hb, mk_diag *diag)
{
    const mk_rule *r = &slot->rule;
    mk_err err = MK_OK;
    agg a;
    char v1[32], v2[32], v3[32], d1[32], d2[32];
    *has = 0;
    memset(o, 0, sizeof *o);
    o->severity = r->severity;
    o->reason = reason;
    reason[0] = 0;
    int64_t to = now_ms + 1, from = now_ms + 1 - r->window_ms; /* (now - window, now] */
    switch (r->kind) {
    case MK_RULE_THRESHOLD: {
        if ((err = read_agg(e->db, id, from, to, &a, diag))) return err;
        if (!a.n) return MK_OK;
        double v = reduce(&a, r->reduce);
        o->value = v;
        o->threshold = r->fire.value;
        o->is_bad = cond_holds(r->fire, v);
        o->is_clear = r->clear.op == MK_CMP_NONE ? !o->is_bad : cond_holds(r->clear, v);
        fmt_num(v1, sizeof v1, v);
        fmt_num(v2, sizeof v2, r->fire.value);
        msgf(reason, reason_cap, "%s %s %s %s", r->field, v1, o->is_bad ? cmp_text(r->fire.op) : "vs", v2);
        *has = 1;
        break;
    }
    case MK_RULE_DYNAMIC: {
        agg h;
        if ((err = read_agg(e->db, id, from, to, &a, diag))) return err;
        if (!a.n) return MK_OK;
        if ((err = read_agg(e->db, id, from - r->history_ms, from, &h, diag))) return err;
        if (h.n < 2) return MK_OK;
        double v = reduce(&a, r->reduce), mean = h.sum / (double)h.n;
        double var = h.sumsq / (double)h.n - mean * mean;
        double sd = var > 0 ? sqrt(var) : 0;
        double dev = fabs(v - mean);
        o->value = v;
        o->threshold = v >= mean ? mean + r->k * sd : mean - r->k * sd;
        o->is_bad = dev > r->k * sd;
        o->is_clear = dev <= r->clear_k * sd;
        fmt_num(v1, sizeof v1, v);
        fmt_num(v2, sizeof v2, mean);
        fmt_num(v3, sizeof v3, sd);
        fmt_dur(d1, sizeof d1, r->history_ms);
        if (sd > 0)
            msgf(reason, reason_cap, "%s %s is %.1f sd %s the mean %s of the preceding %s (sd %s)", r->field, v1,
                     dev / sd, v >= mean ? "above" : "below", v2, d1, v3);
        else
            msgf(reason, reason_cap, "%s %s differs from the constant %s of the preceding %s", r->field, v1, v2, d1);
        *has = 1;
        break;
    }
    case MK_RULE_SEASONAL: {
        if ((err = read_agg(e->db, id, from, to, &a, diag))) return err;
        if (!a.n) return MK_OK;
        double base;
        uint64_t nb;
        if ((err = e->baseline(e->baseline_ctx, e->db, id, from - r->season_ms, to - r->season_ms, &base, &nb, diag)))
            return err;
        if (!nb || !(base > 0)) return MK_OK; /* no baseline: a ratio means nothing */
        double v = a.sum / (double)a.n, ratio = v / base;
        int is_up = ratio >= r->ratio, is_down = ratio <= 1 / r->ratio;
        int is_up_clear = ratio < r->clear_ratio, is_down_clear = ratio > 1 / r->clear_ratio;
        o->value = v;
        if (r->direction > 0) { o->is_bad = is_up; o->is_clear = is_up_clear; o->threshold = base * r->ratio; }
        else if (r->direction < 0) { o->is_bad = is_down; o->is_clear = is_down_clear; o->threshold = base / r->ratio; }
        else {
            o->is_bad = is_up || is_down;
            o->is_clear = is_up_clear && is_down_clear;
            o->threshold = ratio >= 1 ? base * r->ratio : base / r->ratio;
        }
        fmt_num(v1, sizeof v1, v);
        fmt_num(v2, sizeof v2, base);
        const char *when = r->season_ms == 86400000 ? "yesterday" : r->season_ms == 7 * 86400000LL ? "last week" : NULL;
        fmt_dur(d1, sizeof d1, r->season_ms);
        msgf(d2, sizeof d2, "%s earlier", d1);
        msgf(reason, reason_cap, "%s %s is %.2gx the same %s %s (%s)", r->field, v1, ratio,
                 r->window_ms >= 3600000 ? "hour" : "time", when ? when : d2, v2);
        *has = 1;
        break;
    }
    case MK_RULE_ANOMALY: {
        if (!e->score) return MK_OK;
        double sc = 0;
        int rc = e->score(e->score_ctx, r, id, now_ms, &sc);
        if (rc < 0) return mk_diag_set(diag, MK_EINTERNAL, "rule %s: the anomaly detector failed on series %016" PRIx64, r->name, id);
        if (rc == 0 || sc != sc) return MK_OK;
        o->value = sc;
        o->threshold = r->score_above;
        o->is_bad = sc >= r->score_above;
        o->is_clear = sc < r->score_clear;
        fmt_num(v1, sizeof v1, sc);
        fmt_num(v2, sizeof v2, r->score_above);
        msgf(reason, reason_cap, "%s anomaly score %s (alert at %s)", r->field, v1, v2);
        *has = 1;
        break;
    }
    case MK_RULE_HEARTBEAT: {
        int64_t down_ms = r->down_after_ms ? r->down_after_ms : r->grace_ms;
        int64_t span = (r->cron_expr ? 8 * 86400000LL : r->period_ms) + down_ms + r->degraded_after_ms;
        /* The last beat: usually within a couple of periods; when beats
         * have stopped, look further back (8x each time, up to 64 days) so
         * "no heartbeat for ..." counts from the real last beat. */
        int64_t back = 2 * span + r->interval_ms;
        for (;;) {
            if ((err = read_agg(e->db, id, now_ms + 1 - back, now_ms + 1, &a, diag))) return err;
            if (a.n || back >= 64 * 86400000LL) break;
            back *= 8;
        }
        int has_beat = a.n > 0;
        int64_t last_ts = a.last_ts_ms;
        double last_v = a.last;
        pthread_mutex_lock(&e->beat_mu);
        beat *b = beat_find(e, id, 0);
        if (b && b->ts_ms != INT64_MIN && b->ts_ms <= now_ms && (!has_beat || b->ts_ms >= last_ts)) {
            has_beat = 1;
            last_ts = b->ts_ms;
            last_v = b->value;
        }
        pthread_mutex_unlock(&e->beat_mu);
        int64_t ref = has_beat ? last_ts : slot->added_ms;
        int64_t due = r->cron_expr ? mk_cron_next_ms(&r->cron, r->tz, ref) : ref + r->period_ms;
        if (due < 0) return MK_OK;
        int64_t late = now_ms - due;
        int level = late > down_ms ? 2 : (r->degraded_after_ms && late > r->degraded_after_ms) ? 1 : 0;
        int status = !has_beat ? 0 : last_v <= 0.25 ? 2 : last_v < 0.75 ? 1 : 0;
        fmt_dur(d1, sizeof d1, now_ms - ref >= 0 ? ((now_ms - ref) / 1000) * 1000 : 0);
        if (status > level) {
            level = status;
            msgf(reason, reason_cap, "status %s reported %s ago", status == 2 ? "DOWN" : "DEGRADED", d1);
        } else if (level) {
            fmt_dur(d2, sizeof d2, down_ms);
            if (r->cron_expr)
                msgf(reason, reason_cap, "no heartbeat for %s%s: expected by \"%s\" (%s), grace %s", d1,
                         has_beat ? "" : " (none stored)", r->cron_expr, r->tz_name ? r->tz_name : "UTC", d2);
            else {
                fmt_dur(v3, sizeof v3, r->period_ms);
                msgf(reason, reason_cap, "no heartbeat for %s%s: expected every %s, grace %s", d1,
                         has_beat ? "" : " (none stored)", v3, d2);
            }
        } else {
            msgf(reason, reason_cap, "heartbeat %s ago", d1);
        }
        o->value = (double)(now_ms - ref) / 1000.0;
        o->threshold = (double)(due - ref + down_ms) / 1000.0;
        o->is_bad = level > 0;
        o->is_clear = level == 0;
        o->severity = level == 2 ? r->severity : MK_SEV_WARNING;
        if (hb) *hb = (hb_info){has_beat, has_beat ? last_ts : 0, has_beat ? last_v : 0, level};
        *has = 1;
        break;
    }
    }
    return MK_OK;
}

static mk_err eval_series(mk_rule_engine *e, rule_slot *slot, uint64_t id, int64_t now_ms, mk_rule_eval_stats *st,
                          mk_diag *diag)
{
    const mk_rule *r = &slot->rule;
    mk_inc_obs o;
    char reason[512];
    int has;
    mk_label *labels = NULL, *ann = NULL;
    size_t n_labels = 0, n_ann = 0;
    mk_err err = observe(e, slot, id, now_ms, &o, reason, sizeof reason, &has, NULL, diag);
    if (err || !has) return err;
    st->n_series++;
    /* Labels and annotations only matter when an incident may be made or
     * notified: skip the work for the healthy majority. */
    if (o.is_bad || mk_inc_machine_state(e->store, r->name, id) != MK_INC_OK) {
        if (build_labels(e, r, id, &labels, &n_labels)) { err = mk_diag_set(diag, MK_ENOMEM, "no memory for labels"); goto out; }
        if (r->n_annotations) {
            ann = calloc(r->n_annotations, sizeof *ann);
            if (!ann) { err = mk_diag_set(diag, MK_ENOMEM, "no memory for annotations"); goto out; }
            mk_rule_tmpl_ctx tc = {r->name, o.value, o.threshold, o.severity, reason, labels, n_labels};
            for (; n_ann < r->n_annotations; n_ann++) {
                ann[n_ann].key = xstrdup(r->annotations[n_ann].key);
                if (!ann[n_ann].key) { err = mk_diag_set(diag, MK_ENOMEM, "no memory"); goto out; }
                if ((err = mk_rule_render(r->annotations[n_ann].value, &tc, &ann[n_ann].value, diag))) { n_ann++; goto out; }
            }
        }
    }
    mk_inc_step_result res;
    if ((err = mk_inc_step(e->store, r->name, id, &r->policy, &o, labels, n_labels, ann, n_ann, now_ms, &res, diag))) goto out;
    if (res.from != res.to) st->n_transitions++;
    st->n_notifications += (uint64_t)res.n_notified;
out:
    mk_labels_free(labels, n_labels);
    mk_labels_free(ann, n_ann);
    return err;
}

static mk_err eval_rule(mk_rule_engine *e, rule_slot *slot, int64_t now_ms, mk_rule_eval_stats *st, mk_diag *diag)
{
    const mk_rule *r = &slot->rule;
    mk_matcher *m = r->n_tags ? calloc(r->n_tags, sizeof *m) : NULL;
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    mk_err err = MK_OK;
    if (r->n_tags && !m) return mk_diag_set(diag, MK_ENOMEM, "no memory");
    for (size_t i = 0; i < r->n_tags; i++) m[i] = (mk_matcher){r->tags[i].key, r->tags[i].value, r->tags[i].is_negated};
    if ((err = mk_db_find_series(e->db, r->measurement, m, r->n_tags, r->field, &ids, &n_ids, diag))) goto out;
    if (!slot->added_ms) slot->added_ms = now_ms;
    if (r->kind == MK_RULE_HEARTBEAT && n_ids == 0) {
        uint64_t vid = virtual_series(r);
        if (vid) err = eval_series(e, slot, vid, now_ms, st, diag);
        goto out;
    }
    for (size_t i = 0; i < n_ids && !err; i++) err = eval_series(e, slot, ids[i], now_ms, st, diag);
out:
    free(ids);
    free(m);
    return err;
}

mk_err mk_rule_engine_evaluate(mk_rule_engine *e, int64_t now_ms, mk_rule_eval_stats *stats, mk_diag *diag)
{
    mk_rule_eval_stats st = {0};
    mk_err first = MK_OK;
    pthread_mutex_lock(&e->mu);
    mk_inc_store_batch_begin(e->store); /* one fsync for the whole evaluation */
    for (size_t i = 0; i < e->n_rules; i++) {
        rule_slot *slot = &e->rules[i];
        if (now_ms < slot->next_due_ms) continue;
        slot->next_due_ms = mk_floordiv(now_ms, slot->rule.interval_ms) * slot->rule.interval_ms + slot->rule.interval_ms;
        st.n_rules_run++;
        mk_diag d = {0};
        mk_err err = eval_rule(e, slot, now_ms, &st, &d);
        if (err) {
            st.n_errors++;
            if (!first) {
                first = err;
                mk_diag_set(diag, err, "rule %s: %s", slot->rule.name, d.msg);
            }
        }
    }
    mk_diag d = {0};
    mk_err err = mk_inc_store_batch_end(e->store, &d);
    if (err) {
        st.n_errors++;
        if (!first) {
            first = err;
            mk_diag_set(diag, err, "incident log: %s", d.msg);
        }
    }
    pthread_mutex_unlock(&e->mu);
    if (stats) *stats = st;
    return first;
}

int64_t mk_rule_engine_now(mk_rule_engine *e) { return e->env->now_ms(e->env); }

void mk_rule_engine_on_sample(mk_rule_engine *e, uint64_t series_id, int64_t ts_ms, double value)
{
    pthread_mutex_lock(&e->beat_mu);
    beat *b = beat_find(e, series_id, 1);
    if (b && ts_ms >= b->ts_ms) {
        b->ts_ms = ts_ms;
        b->value = value;
    }
    pthread_mutex_unlock(&e->beat_mu);
}

void mk_rule_monitors_free(mk_rule_monitor *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].rule);
        mk_labels_free(a[i].labels, a[i].n_labels);
        free(a[i].reason);
    }
    free(a);
}

mk_err mk_rule_engine_monitors(mk_rule_engine *e, int64_t now_ms, mk_rule_monitor **out, size_t *n_out, mk_diag *diag)
{
    mk_err err = MK_OK;
    mk_rule_monitor *a = NULL;
    size_t n = 0, cap = 0;
    *out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_rules && !err; i++) {
        rule_slot *slot = &e->rules[i];
        const mk_rule *r = &slot->rule;
        if (r->kind != MK_RULE_HEARTBEAT) continue;
        mk_matcher m[64];
        if (r->n_tags > 64) continue;
        for (size_t k = 0; k < r->n_tags; k++) m[k] = (mk_matcher){r->tags[k].key, r->tags[k].value, r->tags[k].is_negated};
        uint64_t *ids = NULL, vid = 0;
        size_t n_ids = 0;
        if ((err = mk_db_find_series(e->db, r->measurement, m, r->n_tags, r->field, &ids, &n_ids, diag))) break;
        if (!n_ids && (vid = virtual_series(r)) != 0) { free(ids); ids = &vid; n_ids = 1; }
        for (size_t k = 0; k < n_ids && !err; k++) {
            mk_inc_obs o;
            char reason[512];
            int has = 0;
            hb_info hb = {0};
            int64_t saved_added = slot->added_ms;
            if (!slot->added_ms) slot->added_ms = now_ms;
            err = observe(e, slot, ids[k], now_ms, &o, reason, sizeof reason, &has, &hb, diag);
            slot->added_ms = saved_added;
            if (err || !has) continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                mk_rule_monitor *p = realloc(a, nc * sizeof *p);
                if (!p) { err = mk_diag_set(diag, MK_ENOMEM, "no memory listing monitors"); break; }
                a = p;
                cap = nc;
            }
            mk_rule_monitor *mo = &a[n];
            memset(mo, 0, sizeof *mo);
            mo->rule = xstrdup(r->name);
            mo->series_id = ids[k];
            mo->has_beat = hb.has_beat;
            mo->last_beat_ms = hb.last_ts_ms;
            mo->last_status = hb.last_value;
            mo->level = hb.level;
            mo->state = mk_inc_machine_state(e->store, r->name, ids[k]);
            mo->reason = xstrdup(reason);
            n++;
            if (!mo->rule || !mo->reason || build_labels(e, r, ids[k], &mo->labels, &mo->n_labels))
                err = mk_diag_set(diag, MK_ENOMEM, "no memory listing monitors");
        }
        if (ids != &vid) free(ids);
    }
    pthread_mutex_unlock(&e->mu);
    if (err) { mk_rule_monitors_free(a, n); return err; }
    *out = a;
    *n_out = n;
    return MK_OK;
}

static mk_err add_rule_locked(mk_rule_engine *e, const mk_rule *r, mk_diag *diag)
{
    mk_rule copy;
    mk_err err = mk_rule_copy(r, &copy, diag);
    if (err) return err;
    if ((err = mk_rule_validate(&copy, diag))) { mk_rule_clear(&copy); return err; }
    for (size_t i = 0; i < e->n_rules; i++)
        if (!strcmp(e->rules[i].rule.name, copy.name)) {
            mk_rule_clear(&e->rules[i].rule);
            e->rules[i].rule = copy;
            e->rules[i].next_due_ms = 0;
            return MK_OK;
        }
    if (e->n_rules == e->cap_rules) {
        size_t nc = e->cap_rules ? e->cap_rules * 2 : 16;
        rule_slot *p = realloc(e->rules, nc * sizeof *p);
        if (!p) { mk_rule_clear(&copy); return mk_diag_set(diag, MK_ENOMEM, "no memory for rules"); }
        e->rules = p;
        e->cap_rules = nc;
    }
    e->rules[e->n_rules++] = (rule_slot){copy, 0, 0};
    return MK_OK;
}

mk_err mk_rule_engine_put_rule(mk_rule_engine *e, const mk_rule *r, mk_diag *diag)
{
    pthread_mutex_lock(&e->mu);
    mk_err err = add_rule_locked(e, r, diag);
    pthread_mutex_unlock(&e->mu);
    return err;
}

mk_err mk_rule_engine_delete_rule(mk_rule_engine *e, const char *name, mk_diag *diag)
{
    mk_err err = mk_diag_set(diag, MK_ENOTFOUND, "no rule named %s", name);
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_rules; i++)
        if (!strcmp(e->rules[i].rule.name, name)) {
            mk_rule_clear(&e->rules[i].rule);
            memmove(&e->rules[i], &e->rules[i + 1], (e->n_rules - i - 1) * sizeof *e->rules);
            e->n_rules--;
            err = MK_OK;
            if (diag) diag->code = MK_OK;
            break;
        }
    pthread_mutex_unlock(&e->mu);
    return err;
}

mk_err mk_rule_engine_rules(mk_rule_engine *e, mk_rule_set *out, mk_diag *diag)
{
    mk_err err = MK_OK;
    out->rules = NULL;
    out->n = 0;
    pthread_mutex_lock(&e->mu);
    if (e->n_rules) {
        out->rules = calloc(e->n_rules, sizeof *out->rules);
        if (!out->rules) { err = mk_diag_set(diag, MK_ENOMEM, "no memory"); goto out; }
        for (size_t i = 0; i < e->n_rules; i++) {
            if ((err = mk_rule_copy(&e->rules[i].rule, &out->rules[i], diag))) goto out;
            out->n++;
        }
    }
out:
    pthread_mutex_unlock(&e->mu);
    if (err) mk_rule_set_free(out);
    return err;
}

mk_inc_store *mk_rule_engine_store(mk_rule_engine *e) { return e->store; }

size_t mk_rule_engine_mark_due(mk_rule_engine *e, const char *measurement)
{
    size_t k = 0;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_rules; i++)
        if (e->rules[i].rule.kind != MK_RULE_HEARTBEAT && !strcmp(e->rules[i].rule.measurement, measurement)) {
            e->rules[i].next_due_ms = 0;
            k++;
        }
    pthread_mutex_unlock(&e->mu);
    return k;
}

mk_err mk_rule_engine_open(mk_db *db, const mk_rule_set *rules, const mk_rule_engine_opts *opts,
                           mk_rule_engine **out, mk_diag *diag)
{
    mk_err err = MK_OK;
    *out = NULL;
    mk_rule_engine *e = calloc(1, sizeof *e);
    if (!e) return mk_diag_set(diag, MK_ENOMEM, "no memory for the rule engine");
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->beat_mu, NULL);
    e->db = db;
    e->env = opts && opts->env ? opts->env : mk_env_default();
    e->score = opts ? opts->score : NULL;
    e->score_ctx = opts ? opts->score_ctx : NULL;
    e->baseline = opts && opts->baseline ? opts->baseline : default_baseline;
    e->baseline_ctx = opts ? opts->baseline_ctx : NULL;
    mk_inc_store_opts so = opts ? opts->store : (mk_inc_store_opts){0};
    if (opts && !so.log) { so.log = opts->log; so.log_ctx = opts->log_ctx; }
    if ((err = mk_inc_store_open(e->env, opts ? opts->incident_dir : NULL, &so, &e->store, diag))) goto out;
    for (size_t i = 0; rules && i < rules->n; i++)
        if ((err = add_rule_locked(e, &rules->rules[i], diag))) goto out;
out:
    if (err) {
        mk_rule_engine_close(e, NULL);
        return err;
    }
    *out = e;
    return MK_OK;
}

mk_err mk_rule_engine_close(mk_rule_engine *e, mk_diag *diag)
{
    if (!e) return MK_OK;
    mk_err err = mk_inc_store_close(e->store, diag);
    for (size_t i = 0; i < e->n_rules; i++) mk_rule_clear(&e->rules[i].rule);
    free(e->rules);
    free(e->beats);
    pthread_mutex_destroy(&e->beat_mu);
    pthread_mutex_destroy(&e->mu);
    free(e);
    return err;
}

/*
 * server/alertq.c — times, silences and the incident filter of the alert
 * APIs (see alertq.h).
 */
#include "alertq.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* RFC 3339 with milliseconds, UTC; json null for 0 (= not set). */
json_t *mk_alertq_time_json(int64_t ms)
{
    if (!ms) return json_null();
    time_t sec = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)sec * 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char iso[64];
    snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return json_string(iso);
}


/* "2026-12-02T00:00:00Z", "...T00:00:00.250+01:00", or epoch seconds
 * ("1764633600", "1764633600.5"). Returns 0 and *ms, -1 when malformed. */
int mk_alertq_parse_time(const char *s, int64_t *ms)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s && !*end && !errno && isfinite(v) && fabs(v) < 1e13) {
        *ms = (int64_t)llround(v * 1000.0);
        return 0;
    }
    int Y, M, D, h, m, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 19) return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -1;
    const char *p = s + n;
    int64_t frac_ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        int64_t scale = 100;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3) frac_ms += (*p - '0') * scale;
            scale /= 10;
            digits++;
            p++;
        }
        if (!digits) return -1;
    }
    int off_s = 0;
    if (*p == 'Z' || *p == 'z') p++;
    else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59) return -1;
        off_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else return -1;
    if (*p) return -1;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - off_s) * 1000 + frac_ms;
    return 0;
}

/* ---- silences ------------------------------------------------------------ */

static void matchers_free(mk_alertq_matcher *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        free(m[i].value);
        if (m[i].is_regex) regfree(&m[i].re);
    }
    free(m);
}

void mk_alertq_silence_clear(mk_alertq_silence *s)
{
    matchers_free(s->m, s->n_m);
    free(s->comment);
    free(s->created_by);
    memset(s, 0, sizeof *s);
}

/* Fills m from name, op and value; -1 with err on a bad regex or name. */
/* glibc builds its automaton by copying repeated parts: stacked or bounded
 * repetitions ("a+++", "(a{99}){99}") cost memory exponentially. Outside
 * bracket expressions: at most 32 repetition operators, one {m,n}, none
 * applied straight to another; at most 256 bytes. Conservative (a rare
 * harmless pattern is refused), cheap, and keeps a silence from costing the
 * server more than a label comparison. */
static int regex_is_cheap(const char *re)
{
    size_t n_rep = 0, n_brace = 0;
    int prev_rep = 0;
    if (strlen(re) > 256) return 0;
    for (const char *p = re; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            prev_rep = 0;
            continue;
        }
        if (*p == '[') { /* skip to the closing ']' ("[]a]" and "[^]a]" hold a literal ']') */
            p++;
            if (*p == '^') p++;
            if (*p == ']') p++;
            while (*p && *p != ']') p++;
            if (!*p) return 1; /* unterminated: regcomp reports it */
            prev_rep = 0;
            continue;
        }
        int is_rep = *p == '*' || *p == '+' || *p == '?' || *p == '{';
        if (is_rep) {
            if (prev_rep || ++n_rep > 32) return 0;
            if (*p == '{') {
                if (++n_brace > 1) return 0;
                while (*p && *p != '}') p++;
                if (!*p) return 1;
            }
        }
        prev_rep = is_rep;
    }
    return 1;
}

static int matcher_make(mk_alertq_matcher *m, const char *name, size_t name_len, int is_negated, int is_regex,
                        const char *value, char *err, size_t cap)
{
    memset(m, 0, sizeof *m);
    if (!name_len) {
        snprintf(err, cap, "matcher without a label name");
        return -1;
    }
    m->name = strndup(name, name_len);
    m->value = strdup(value);
    m->is_negated = is_negated;
    if (!m->name || !m->value) {
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    if (is_regex) {
        /* glibc compiles bounded repetitions by copying: "(a{99}){99}" alone
         * is ten thousand states. One bound and a short pattern keep a
         * silence from costing the server more than a label comparison. */
        if (!regex_is_cheap(value)) {
            snprintf(err, cap, "matcher %.*s: regular expression too long or complex (at most 256 bytes, 32 "
                               "repetitions, one {m,n}, no repetition of a repetition)", (int)name_len, name);
            goto fail;
        }
        /* alone first: an unbalanced ')' must not close the anchoring group */
        int rc0 = regcomp(&m->re, value, REG_EXTENDED | REG_NOSUB);
        if (rc0 == 0) regfree(&m->re);
        size_t n = strlen(value) + 5;
        char *pat = malloc(n);
        if (!pat) {
            snprintf(err, cap, "out of memory");
            goto fail;
        }
        snprintf(pat, n, "^(%s)$", value);
        int rc = rc0 ? rc0 : regcomp(&m->re, pat, REG_EXTENDED | REG_NOSUB);
        free(pat);
        if (rc) {
            char why[128];
            regerror(rc, &m->re, why, sizeof why);
            snprintf(err, cap, "matcher %.*s: bad regular expression '%.100s': %s", (int)name_len, name, value, why);
            goto fail;
        }
        m->is_regex = 1;
    }
    return 0;
fail:
    free(m->name);
    free(m->value);
    memset(m, 0, sizeof *m);
    return -1;
}

/* "k=v", "k!=v", "k=~re", "k!~re". */
static int matcher_parse(mk_alertq_matcher *m, const char *s, char *err, size_t cap)
{
    size_t k = strcspn(s, "=!");
    const char *p = s + k;
    int neg = 0, re = 0;
    if (p[0] == '=' && p[1] == '~') { re = 1; p += 2; }
    else if (p[0] == '!' && p[1] == '~') { neg = re = 1; p += 2; }
    else if (p[0] == '!' && p[1] == '=') { neg = 1; p += 2; }
    else if (p[0] == '=') p++;
    else {
        snprintf(err, cap, "matcher '%.100s': expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX", s);
        return -1;
    }
    size_t nl = k;
    while (nl && s[nl - 1] == ' ') nl--;
    return matcher_make(m, s, nl, neg, re, p, err, cap);
}

static const char *label_value(const char *rule, const mk_label *l, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].key, key) == 0) return l[i].value;
    if (strcmp(key, "rule") == 0 || strcmp(key, "alertname") == 0) return rule;
    return NULL;
}

int mk_alertq_silence_matches(const mk_alertq_silence *s, const char *rule, const mk_label *l, size_t n)
{
    for (size_t i = 0; i < s->n_m; i++) {
        const mk_alertq_matcher *m = &s->m[i];
        const char *v = label_value(rule, l, n, m->name);
        if (!v) v = ""; /* an absent label matches as the empty string (Alertmanager) */
        int hit = m->is_regex ? regexec(&m->re, v, 0, NULL, 0) == 0 : strcmp(v, m->value) == 0;
        if (hit == m->is_negated) return 0;
    }
    return s->n_m > 0;
}

const char *mk_alertq_silence_state(const mk_alertq_silence *s, int64_t now)
{
    return now < s->starts_ms ? "pending" : now < s->ends_ms ? "active" : "expired";
}

json_t *mk_alertq_silence_json(const mk_alertq_silence *s, int64_t now)
{
    /* matchers as Alertmanager's objects (unambiguous whatever the name and
     * value hold: silences.json is read back from them), and as text */
    json_t *ms = json_array(), *txt = json_array();
    for (size_t i = 0; ms && txt && i < s->n_m; i++) {
        const mk_alertq_matcher *m = &s->m[i];
        json_array_append_new(ms, json_pack("{s:s,s:s,s:b,s:b}", "name", m->name, "value", m->value, "isRegex",
                                            m->is_regex, "isEqual", !m->is_negated));
        size_t n = strlen(m->name) + strlen(m->value) + 3;
        char *t = malloc(n);
        if (!t) continue;
        snprintf(t, n, "%s%s%s", m->name, m->is_regex ? (m->is_negated ? "!~" : "=~") : (m->is_negated ? "!=" : "="),
                 m->value);
        json_array_append_new(txt, json_string(t));
        free(t);
    }
    return json_pack("{s:I,s:o,s:o,s:o,s:o,s:o,s:s,s:s,s:s}", "id", (json_int_t)s->id, "matchers", ms, "matchers_text",
                     txt, "starts_at", mk_alertq_time_json(s->starts_ms), "ends_at", mk_alertq_time_json(s->ends_ms),
                     "created_at", mk_alertq_time_json(s->created_ms), "comment", s->comment ? s->comment : "",
                     "created_by", s->created_by ? s->created_by : "", "state", mk_alertq_silence_state(s, now));
}

/* A time given as RFC 3339 text or epoch seconds (a JSON number). */
static int json_time(json_t *v, int64_t *ms)
{
    if (json_is_string(v)) return mk_alertq_parse_time(json_string_value(v), ms);
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (!isfinite(d) || fabs(d) >= 1e13) return -1;
        *ms = (int64_t)llround(d * 1000.0);
        return 0;
    }
    return -1;
}

/* A silence from JSON (a POST body, or an entry of silences.json when
 * is_stored). Fills *s; -1 with err. */
int mk_alertq_silence_from_json(json_t *o, int is_stored, int64_t now, mk_alertq_silence *s, char *err, size_t cap)
{
    memset(s, 0, sizeof *s);
    if (!json_is_object(o)) {
        snprintf(err, cap, "a silence must be a JSON object");
        return -1;
    }
    json_t *ms = json_object_get(o, "matchers");
    if (!json_is_array(ms) || json_array_size(ms) == 0) {
        snprintf(err, cap, "matchers must be a non-empty list, e.g. [\"monitor=web\", \"severity=~warning|critical\"]");
        return -1;
    }
    if (json_array_size(ms) > 64) {
        snprintf(err, cap, "at most 64 matchers");
        return -1;
    }
    s->m = calloc(json_array_size(ms), sizeof *s->m);
    if (!s->m) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    size_t i;
    json_t *it;
    json_array_foreach(ms, i, it)
    {
        int rc;
        if (json_is_string(it)) {
            rc = matcher_parse(&s->m[s->n_m], json_string_value(it), err, cap);
        } else if (json_is_object(it) && json_is_string(json_object_get(it, "name")) &&
                   json_is_string(json_object_get(it, "value"))) {
            /* Alertmanager's form: {name, value, isRegex, isEqual} */
            json_t *eq = json_object_get(it, "isEqual");
            const char *nm = json_string_value(json_object_get(it, "name"));
            rc = matcher_make(&s->m[s->n_m], nm, strlen(nm), eq && json_is_false(eq),
                              json_is_true(json_object_get(it, "isRegex")), json_string_value(json_object_get(it, "value")),
                              err, cap);
        } else {
            snprintf(err, cap, "matchers[%zu]: a string such as \"monitor=web\" or {\"name\":..,\"value\":..}", i);
            rc = -1;
        }
        if (rc) goto fail;
        s->n_m++;
    }
    json_t *st = json_object_get(o, "starts_at"), *en = json_object_get(o, "ends_at");
    s->starts_ms = now;
    if (st && !json_is_null(st) && json_time(st, &s->starts_ms)) {
        snprintf(err, cap, "starts_at: RFC 3339 time or epoch seconds expected");
        goto fail;
    }
    if (!en || json_time(en, &s->ends_ms)) {
        snprintf(err, cap, "ends_at is required: RFC 3339 time or epoch seconds");
        goto fail;
    }
    if (s->ends_ms <= s->starts_ms) {
        snprintf(err, cap, "ends_at must be after starts_at");
        goto fail;
    }
    if (!is_stored && s->ends_ms <= now) {
        snprintf(err, cap, "ends_at is in the past");
        goto fail;
    }
    json_t *c = json_object_get(o, "comment"), *by = json_object_get(o, "created_by");
    if ((c && !json_is_string(c) && !json_is_null(c)) || (by && !json_is_string(by) && !json_is_null(by))) {
        snprintf(err, cap, "comment and created_by must be strings");
        goto fail;
    }
    s->comment = strdup(json_is_string(c) ? json_string_value(c) : "");
    s->created_by = strdup(json_is_string(by) ? json_string_value(by) : "");
    s->created_ms = now;
    if (is_stored) {
        json_t *id = json_object_get(o, "id");
        int64_t cr;
        if (!json_is_integer(id) || json_integer_value(id) <= 0) {
            snprintf(err, cap, "stored silence without an id");
            goto fail;
        }
        s->id = (uint64_t)json_integer_value(id);
        if (json_time(json_object_get(o, "created_at"), &cr) == 0) s->created_ms = cr;
    }
    if (!s->comment || !s->created_by) {
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    return 0;
fail:
    mk_alertq_silence_clear(s);
    return -1;
}

/* ---- the incident filter --------------------------------------------------- */

static const char *arg_get(const mk_alerts_arg *args, size_t n, const char *key)
{
    for (size_t i = n; i-- > 0;)
        if (strcmp(args[i].key, key) == 0) return args[i].val;
    return NULL;
}

static int add_match(mk_alertq_filter *f, const char *k, size_t kn, const char *v, size_t vn)
{
    mk_label *p = realloc(f->match, (f->n_match + 1) * sizeof *p);
    if (!p) return -2;
    f->match = p;
    p[f->n_match].key = strndup(k, kn);
    p[f->n_match].value = strndup(v, vn);
    f->n_match++;
    return p[f->n_match - 1].key && p[f->n_match - 1].value ? 0 : -2;
}

int mk_alertq_filter_parse(const mk_alerts_arg *args, size_t n_args, mk_alertq_filter *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    mk_inc_filter *f = &out->f;
    int rc;
    const char *s = arg_get(args, n_args, "state");
    if (s && *s) {
        for (const char *p = s; *p;) {
            size_t k = strcspn(p, ",");
            if (k == 7 && !strncmp(p, "pending", 7)) f->state_mask |= 1u << MK_INC_PENDING;
            else if (k == 6 && !strncmp(p, "firing", 6)) f->state_mask |= 1u << MK_INC_FIRING;
            else if (k == 8 && !strncmp(p, "resolved", 8)) f->state_mask |= 1u << MK_INC_RESOLVED;
            else if (k == 4 && !strncmp(p, "open", 4)) f->state_mask |= (1u << MK_INC_PENDING) | (1u << MK_INC_FIRING);
            else {
                snprintf(err, cap, "state: '%.*s' is not pending, firing, resolved or open", (int)(k > 50 ? 50 : k), p);
                return -1;
            }
            p += k + (p[k] == ',');
        }
    }
    f->rule = arg_get(args, n_args, "rule");
    if (f->rule && !*f->rule) f->rule = NULL;
    for (size_t i = 0; i < n_args; i++) {
        if (strncmp(args[i].key, "label.", 6) == 0 && args[i].key[6]) {
            if ((rc = add_match(out, args[i].key + 6, strlen(args[i].key + 6), args[i].val, strlen(args[i].val)))) return rc;
        } else if (strcmp(args[i].key, "labels") == 0) {
            for (const char *p = args[i].val; *p;) {
                size_t k = strcspn(p, ",");
                const char *eq = memchr(p, '=', k);
                if (!eq || eq == p) {
                    snprintf(err, cap, "labels: '%.*s' is not NAME=VALUE", (int)(k > 100 ? 100 : k), p);
                    return -1;
                }
                if ((rc = add_match(out, p, (size_t)(eq - p), eq + 1, (size_t)(p + k - eq - 1)))) return rc;
                p += k + (p[k] == ',');
            }
        }
    }
    f->match = out->match;
    f->n_match = out->n_match;
    const char *from = arg_get(args, n_args, "from"), *to = arg_get(args, n_args, "to");
    if ((from && *from && mk_alertq_parse_time(from, &f->from_ms)) || (to && *to && mk_alertq_parse_time(to, &f->to_ms))) {
        snprintf(err, cap, "from/to: RFC 3339 time (2026-12-02T00:00:00Z) or epoch seconds expected");
        return -1;
    }
    const char *lim = arg_get(args, n_args, "limit");
    f->limit = MK_ALERTQ_DEFAULT_LIMIT;
    if (lim && *lim) {
        char *end;
        errno = 0;
        long v = strtol(lim, &end, 10);
        if (*end || errno || v < 1 || v > MK_ALERTQ_MAX_LIMIT) {
            snprintf(err, cap, "limit must be a whole number from 1 to %d", MK_ALERTQ_MAX_LIMIT);
            return -1;
        }
        f->limit = (size_t)v;
    }
    return 0;
}

void mk_alertq_filter_free(mk_alertq_filter *f)
{
    for (size_t i = 0; i < f->n_match; i++) {
        free(f->match[i].key);
        free(f->match[i].value);
    }
    free(f->match);
    memset(f, 0, sizeof *f);
}

/*
 * notify/ncfg.c — the channels:, routes: and inhibit_rules: sections of the
 * YAML config (notify.h). Walks libyaml document nodes, so every problem
 * names the line and column of the entry at fault; parsing goes on after a
 * problem so one run reports all of them. Routes and tiers name channels,
 * resolved to indexes as they are read: the channels section is parsed
 * first (mk_notify_config_parse_text and server/config.c both do), so the
 * sections may come in any order in the file.
 *
 * Invariant after a successful finish: every channel index in routes and
 * tiers is < n_channels, channel names are distinct, and every template
 * (URL, headers, body, subject) parses.
 */
#include <errno.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "notify.h"
#include "tmpl.h"

#define MAX_ITEMS 10000 /* channels, routes, matchers...: a config is not a database */

typedef struct ctx {
    mk_notify_config *c;
    yaml_document_t *doc;
    mk_notify_err_fn err;
    void *err_ctx;
    int count;
} ctx;

static __attribute__((format(printf, 3, 4))) void fail(ctx *x, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    x->count++;
    if (x->err) x->err(x->err_ctx, n ? n->start_mark.line + 1 : 0, n ? n->start_mark.column + 1 : 0, msg);
}

static yaml_node_t *node(ctx *x, int id) { return yaml_document_get_node(x->doc, id); }
static const char *sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static char *str_of(ctx *x, const yaml_node_t *n, const char *key)
{
    if (n->type != YAML_SCALAR_NODE) {
        fail(x, n, "%s: expected a single value", key);
        return NULL;
    }
    char *s = strdup(sval(n));
    if (!s) fail(x, n, "out of memory");
    return s;
}

/* "250ms", "10s", "5m", "4h", "1d", "0"; 0 on success. */
static int parse_dur(const char *s, int64_t *out)
{
    if (!*s) return -1;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || v > 1e12) return -1;
    int64_t mul;
    if (strcmp(end, "ms") == 0) mul = 1;
    else if (strcmp(end, "s") == 0) mul = 1000;
    else if (strcmp(end, "m") == 0) mul = 60000;
    else if (strcmp(end, "h") == 0) mul = 3600000;
    else if (strcmp(end, "d") == 0) mul = 86400000;
    else return -1;
    double ms = v * (double)mul;
    if (ms > 1e15) return -1;
    *out = (int64_t)ms;
    return 0;
}

static int dur_of(ctx *x, const yaml_node_t *n, const char *key, int64_t *out)
{
    if (n->type != YAML_SCALAR_NODE || parse_dur(sval(n), out) != 0) {
        fail(x, n, "%s: expected a duration such as 500ms, 30s, 5m, 4h", key);
        return -1;
    }
    return 0;
}

static int u32_of(ctx *x, const yaml_node_t *n, const char *key, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    if (n->type == YAML_SCALAR_NODE) {
        errno = 0;
        unsigned long v = strtoul(sval(n), &end, 10);
        if (!errno && end != sval(n) && !*end && sval(n)[0] != '-' && v >= lo && v <= hi) {
            *out = (uint32_t)v;
            return 0;
        }
    }
    fail(x, n, "%s: expected a whole number from %u to %u", key, lo, hi);
    return -1;
}

static int bool_of(ctx *x, const yaml_node_t *n, const char *key, int *out)
{
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = sval(n);
        if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) return *out = 1, 0;
        if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")) return *out = 0, 0;
    }
    fail(x, n, "%s: expected true or false", key);
    return -1;
}

/* A list of strings (a single scalar counts as a list of one). */
static int strs_of(ctx *x, const yaml_node_t *n, const char *key, char ***out, size_t *n_out)
{
    char **a = NULL;
    size_t k = 0;
    if (n->type == YAML_SCALAR_NODE) {
        a = calloc(2, sizeof *a);
        if (!a || !(a[0] = strdup(sval(n)))) {
            free(a);
            fail(x, n, "out of memory");
            return -1;
        }
        *out = a;
        *n_out = 1;
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        fail(x, n, "%s: expected a list", key);
        return -1;
    }
    size_t total = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (total > MAX_ITEMS) {
        fail(x, n, "%s: too many items", key);
        return -1;
    }
    a = calloc(total + 1, sizeof *a);
    if (!a) {
        fail(x, n, "out of memory");
        return -1;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *v = node(x, *it);
        if (!v) continue;
        if (v->type != YAML_SCALAR_NODE) {
            fail(x, v, "%s: every item must be a single value", key);
            continue;
        }
        if (!(a[k] = strdup(sval(v)))) {
            fail(x, v, "out of memory");
            continue;
        }
        k++;
    }
    *out = a;
    *n_out = k;
    return 0;
}

static void strs_free(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++) free(a[i]);
    free(a);
}

static void matchers_free(mk_notify_matcher *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].key);
        free(m[i].value);
        pcre2_code_free(m[i].re);
    }
    free(m);
}

/* {label: value, other: "!value"} */
static int matchers_of(ctx *x, const yaml_node_t *n, const char *key, mk_notify_matcher **out, size_t *n_out)
{
    if (n->type != YAML_MAPPING_NODE) {
        fail(x, n, "%s: expected a mapping of label: value", key);
        return -1;
    }
    size_t total = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start), k = 0;
    mk_notify_matcher *m = calloc(total ? total : 1, sizeof *m);
    if (!m) {
        fail(x, n, "out of memory");
        return -1;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(x, p->key), *vn = node(x, p->value);
        if (!kn || !vn) continue;
        if (kn->type != YAML_SCALAR_NODE || vn->type != YAML_SCALAR_NODE) {
            fail(x, kn, "%s: each entry is label: value", key);
            continue;
        }
        const char *v = sval(vn);
        int neg = v[0] == '!';
        int is_re = v[neg] == '~';
        pcre2_code *re = NULL;
        if (is_re) {
            /* anchored at both ends, as Alertmanager's =~ */
            size_t len = strlen(v + neg + 1);
            char *pat = malloc(len + 8);
            int ec = 0;
            PCRE2_SIZE eo = 0;
            if (pat) {
                snprintf(pat, len + 8, "^(?:%s)$", v + neg + 1);
                re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo,
                                   NULL);
            }
            free(pat);
            if (!re) {
                PCRE2_UCHAR msg[200] = "out of memory";
                if (ec) pcre2_get_error_message(ec, msg, sizeof msg);
                fail(x, vn, "%s: the regex of '%s' does not compile: %s", key, sval(kn), (const char *)msg);
                continue;
            }
        }
        m[k].key = strdup(sval(kn));
        m[k].value = strdup(v + neg + is_re);
        m[k].is_negated = neg;
        m[k].re = re;
        if (!m[k].key || !m[k].value) {
            free(m[k].key);
            free(m[k].value);
            pcre2_code_free(re);
            fail(x, kn, "out of memory");
            continue;
        }
        k++;
    }
    *out = m;
    *n_out = k;
    return 0;
}

/* ---- channel name lists ------------------------------------------------------ */

static int chan_list_of(ctx *x, const yaml_node_t *n, const char *key, size_t **idx, size_t *n_idx)
{
    char **names = NULL;
    size_t k = 0;
    if (strs_of(x, n, key, &names, &k) != 0) return -1;
    size_t *a = calloc(k ? k : 1, sizeof *a);
    if (!a) {
        strs_free(names, k);
        fail(x, n, "out of memory");
        return -1;
    }
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        long ci = mk_notify_config_channel(x->c, names[i]);
        if (ci < 0) {
            fail(x, n, "%s: no channel named '%s'", key,
                 names[i]);
            continue;
        }
        a[w++] = (size_t)ci;
    }
    strs_free(names, k);
    *idx = a;
    *n_idx = w;
    return 0;
}

/* ---- channels -------------------------------------------------------------- */

static void channel_clear(mk_notify_channel *ch)
{
    free(ch->name);
    free(ch->url);
    free(ch->method);
    for (size_t i = 0; i < ch->n_headers; i++) {
        free(ch->headers[i].key);
        free(ch->headers[i].value);
    }
    free(ch->headers);
    free(ch->body);
    free(ch->smtp_url);
    free(ch->username);
    free(ch->password);
    free(ch->from);
    strs_free(ch->to, ch->n_to);
    free(ch->subject);
    strs_free(ch->argv, ch->argc);
    free(ch->external_url);
    memset(ch, 0, sizeof *ch);
}

static char *read_small_file(const char *path, char *why, size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) { /* no FIFOs or devices: reading them could block */
        snprintf(why, cap, "%s: not a regular file", path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, cap, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t got = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    int is_big = buf && got == (1 << 20) - 1 && fgetc(f) != EOF;
    fclose(f);
    if (!buf || is_big) {
        free(buf);
        snprintf(why, cap, "%s: %s", path, buf ? "larger than 1 MiB" : "out of memory");
        return NULL;
    }
    buf[got] = 0;
    return buf;
}

static void check_tmpl(ctx *x, const yaml_node_t *n, const char *key, const char *t)
{
    mk_buf b = {0};
    char why[300];
    if (t && mk_notify_tmpl_render(t, strlen(t), MK_NOTIFY_ESC_NONE, NULL, NULL, &b, why, sizeof why) == -1)
        fail(x, n, "%s: template: %s", key, why);
    mk_buf_free(&b);
}

static void parse_channel(ctx *x, const yaml_node_t *n)
{
    mk_notify_channel ch;
    memset(&ch, 0, sizeof ch);
    ch.timeout_ms = 10000;
    ch.max_attempts = 5;
    ch.backoff_ms = 1000;
    ch.max_backoff_ms = 300000;
    ch.resend_ms = 60000;
    ch.max_output_bytes = 4096;
    const yaml_node_t *kind_node = n, *body_node = n;
    if (n->type != YAML_MAPPING_NODE) {
        fail(x, n, "channels: each channel is a mapping (name:, kind:, ...)");
        return;
    }
    int bad = x->count;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(x, p->key), *v = node(x, p->value);
        if (!kn || !v || kn->type != YAML_SCALAR_NODE) continue;
        const char *k = sval(kn);
        if (!strcmp(k, "name")) {
            free(ch.name);
            ch.name = str_of(x, v, k);
        } else if (!strcmp(k, "kind")) {
            kind_node = v;
            const char *s = v->type == YAML_SCALAR_NODE ? sval(v) : "";
            ch.kind = !strcmp(s, "webhook") ? MK_NOTIFY_WEBHOOK
                      : !strcmp(s, "kener") ? MK_NOTIFY_KENER
                      : !strcmp(s, "template") ? MK_NOTIFY_TEMPLATE
                      : !strcmp(s, "email") ? MK_NOTIFY_EMAIL
                      : !strcmp(s, "command") ? MK_NOTIFY_COMMAND
                      : !strcmp(s, "alertmanager") ? MK_NOTIFY_ALERTMANAGER : 0;
            if (!ch.kind)
                fail(x, v, "kind: '%s' is not one of webhook, kener, template, email, command, alertmanager", s);
        } else if (!strcmp(k, "url")) {
            free(ch.url);
            ch.url = str_of(x, v, k);
        } else if (!strcmp(k, "method")) {
            free(ch.method);
            ch.method = str_of(x, v, k);
            if (ch.method && strcmp(ch.method, "POST") && strcmp(ch.method, "PUT") && strcmp(ch.method, "GET") &&
                strcmp(ch.method, "PATCH"))
                fail(x, v, "method: use POST, PUT, PATCH or GET");
        } else if (!strcmp(k, "headers")) {
            if (v->type != YAML_MAPPING_NODE) {
                fail(x, v, "headers: expected a mapping of Name: value");
                continue;
            }
            size_t total = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start), nh = 0;
            mk_notify_kv *h = calloc(total ? total : 1, sizeof *h);
            if (!h) {
                fail(x, v, "out of memory");
                continue;
            }
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
                yaml_node_t *hk = node(x, q->key), *hv = node(x, q->value);
                if (!hk || !hv || hk->type != YAML_SCALAR_NODE || hv->type != YAML_SCALAR_NODE) {
                    fail(x, hk ? hk : v, "headers: each entry is Name: value");
                    continue;
                }
                if (!hk->data.scalar.length || strpbrk(sval(hk), ":\r\n ") || strpbrk(sval(hv), "\r\n")) {
                    fail(x, hk, "headers: names are not empty and hold no ':', spaces or line breaks; values no line breaks");
                    continue;
                }
                check_tmpl(x, hv, "headers", sval(hv));
                h[nh].key = strdup(sval(hk));
                h[nh].value = strdup(sval(hv));
                if (!h[nh].key || !h[nh].value) {
                    free(h[nh].key);
                    free(h[nh].value);
                    h[nh].key = h[nh].value = NULL;
                    fail(x, hk, "out of memory");
                    continue;
                }
                nh++;
            }
            for (size_t i = 0; i < ch.n_headers; i++) {
                free(ch.headers[i].key);
                free(ch.headers[i].value);
            }
            free(ch.headers);
            ch.headers = h;
            ch.n_headers = nh;
        } else if (!strcmp(k, "body")) {
            body_node = v;
            free(ch.body);
            ch.body = str_of(x, v, k);
        } else if (!strcmp(k, "template_file")) {
            body_node = v;
            char why[300];
            if (v->type != YAML_SCALAR_NODE) {
                fail(x, v, "template_file: expected a path");
                continue;
            }
            free(ch.body);
            ch.body = read_small_file(sval(v), why, sizeof why);
            if (!ch.body) fail(x, v, "template_file: %s", why);
        } else if (!strcmp(k, "escape")) {
            const char *s = v->type == YAML_SCALAR_NODE ? sval(v) : "";
            if (!strcmp(s, "json")) ch.escape = MK_NOTIFY_ESC_JSON;
            else if (!strcmp(s, "url") || !strcmp(s, "form")) ch.escape = MK_NOTIFY_ESC_URL;
            else if (!strcmp(s, "none")) ch.escape = MK_NOTIFY_ESC_NONE;
            else fail(x, v, "escape: use json, url (form) or none");
        } else if (!strcmp(k, "timeout")) {
            dur_of(x, v, k, &ch.timeout_ms);
            if (ch.timeout_ms < 1) fail(x, v, "timeout: must be positive");
        } else if (!strcmp(k, "max_attempts")) {
            u32_of(x, v, k, 1, 1000, &ch.max_attempts);
        } else if (!strcmp(k, "backoff")) {
            dur_of(x, v, k, &ch.backoff_ms);
        } else if (!strcmp(k, "max_backoff")) {
            dur_of(x, v, k, &ch.max_backoff_ms);
        } else if (!strcmp(k, "rate_limit")) {
            if (v->type != YAML_MAPPING_NODE) {
                fail(x, v, "rate_limit: expected {count: N, per: DURATION}");
                continue;
            }
            ch.rate_per_ms = 60000;
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
                yaml_node_t *rk = node(x, q->key), *rv = node(x, q->value);
                if (!rk || !rv || rk->type != YAML_SCALAR_NODE) continue;
                if (!strcmp(sval(rk), "count")) u32_of(x, rv, "rate_limit.count", 1, 1000000, &ch.rate_count);
                else if (!strcmp(sval(rk), "per")) dur_of(x, rv, "rate_limit.per", &ch.rate_per_ms);
                else fail(x, rk, "rate_limit: unknown key '%s' (known: count, per)", sval(rk));
            }
            if (ch.rate_per_ms < 1) fail(x, v, "rate_limit.per: must be positive");
        } else if (!strcmp(k, "smtp_url")) {
            free(ch.smtp_url);
            ch.smtp_url = str_of(x, v, k);
            if (ch.smtp_url && strncmp(ch.smtp_url, "smtp://", 7) && strncmp(ch.smtp_url, "smtps://", 8))
                fail(x, v, "smtp_url: expected smtp://HOST:PORT or smtps://HOST:PORT");
        } else if (!strcmp(k, "starttls")) {
            bool_of(x, v, k, &ch.is_starttls);
        } else if (!strcmp(k, "insecure_skip_verify")) {
            bool_of(x, v, k, &ch.is_insecure);
        } else if (!strcmp(k, "username")) {
            free(ch.username);
            ch.username = str_of(x, v, k);
        } else if (!strcmp(k, "password")) {
            free(ch.password);
            ch.password = str_of(x, v, k);
        } else if (!strcmp(k, "from")) {
            free(ch.from);
            ch.from = str_of(x, v, k);
        } else if (!strcmp(k, "to")) {
            strs_free(ch.to, ch.n_to);
            ch.to = NULL;
            ch.n_to = 0;
            strs_of(x, v, k, &ch.to, &ch.n_to);
        } else if (!strcmp(k, "subject")) {
            free(ch.subject);
            ch.subject = str_of(x, v, k);
            check_tmpl(x, v, k, ch.subject);
        } else if (!strcmp(k, "argv")) {
            strs_free(ch.argv, ch.argc);
            ch.argv = NULL;
            ch.argc = 0;
            if (strs_of(x, v, k, &ch.argv, &ch.argc) == 0 && ch.argc && ch.argv[0][0] != '/')
                fail(x, v, "argv: the program must be an absolute path (no shell, no PATH search)");
        } else if (!strcmp(k, "max_output")) {
            uint32_t m;
            if (u32_of(x, v, k, 0, 1u << 20, &m) == 0) ch.max_output_bytes = m;
        } else if (!strcmp(k, "resend")) {
            dur_of(x, v, k, &ch.resend_ms);
            if (ch.resend_ms < 1000) fail(x, v, "resend: at least 1s");
        } else if (!strcmp(k, "external_url")) {
            free(ch.external_url);
            ch.external_url = str_of(x, v, k);
        } else {
            fail(x, kn, "channel: unknown key '%s' (known: name, kind, url, method, headers, body, template_file, "
                        "escape, timeout, max_attempts, backoff, max_backoff, rate_limit, smtp_url, starttls, "
                        "insecure_skip_verify, username, password, from, to, subject, argv, max_output, resend, "
                        "external_url)", k);
        }
    }
    if (!ch.name) fail(x, n, "channel: name is required");
    else if (mk_notify_config_channel(x->c, ch.name) >= 0) fail(x, n, "channel: the name '%s' is used twice", ch.name);
    if (!ch.kind && kind_node == n) fail(x, n, "channel %s: kind is required", ch.name ? ch.name : "");
    switch (ch.kind) {
    case MK_NOTIFY_WEBHOOK:
    case MK_NOTIFY_KENER:
    case MK_NOTIFY_ALERTMANAGER:
        if (!ch.url) fail(x, n, "channel %s: url is required", ch.name ? ch.name : "");
        else if (strncmp(ch.url, "http://", 7) && strncmp(ch.url, "https://", 8))
            fail(x, n, "channel %s: url must start with http:// or https://", ch.name ? ch.name : "");
        break;
    case MK_NOTIFY_TEMPLATE:
        if (!ch.url) fail(x, n, "channel %s: url is required", ch.name ? ch.name : "");
        else check_tmpl(x, n, "url", ch.url);
        if (!ch.body && body_node == n && (!ch.method || strcmp(ch.method, "GET")))
            fail(x, n, "channel %s: body or template_file is required", ch.name ? ch.name : "");
        check_tmpl(x, body_node, "body", ch.body);
        break;
    case MK_NOTIFY_EMAIL:
        if (!ch.smtp_url || !ch.from || !ch.n_to)
            fail(x, n, "channel %s: smtp_url, from and to are required", ch.name ? ch.name : "");
        break;
    case MK_NOTIFY_COMMAND:
        if (!ch.argc) fail(x, n, "channel %s: argv is required (a list: [/path/to/program, arg, ...])",
                           ch.name ? ch.name : "");
        break;
    default: break;
    }
    if (ch.max_backoff_ms < ch.backoff_ms) ch.max_backoff_ms = ch.backoff_ms;
    if (x->count != bad || x->c->n_channels >= MAX_ITEMS) {
        channel_clear(&ch);
        return;
    }
    mk_notify_channel *a = realloc(x->c->channels, (x->c->n_channels + 1) * sizeof *a);
    if (!a) {
        fail(x, n, "out of memory");
        channel_clear(&ch);
        return;
    }
    x->c->channels = a;
    a[x->c->n_channels++] = ch;
}

/* ---- routes ---------------------------------------------------------------- */

static void route_clear(mk_notify_route *r)
{
    matchers_free(r->match, r->n_match);
    free(r->channels);
    free(r->fallback);
    for (size_t i = 0; i < r->n_tiers; i++) free(r->tiers[i].channels);
    free(r->tiers);
    strs_free(r->group_by, r->n_group_by);
    memset(r, 0, sizeof *r);
}

static void parse_tiers(ctx *x, const yaml_node_t *v, mk_notify_route *r)
{
    if (v->type != YAML_SEQUENCE_NODE) {
        fail(x, v, "escalate: expected a list of {after: DURATION, channels: [...]}");
        return;
    }
    size_t total = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    /* a repeated escalate: key replaces the earlier list (found by fuzz_notify_config) */
    for (size_t i = 0; i < r->n_tiers; i++) free(r->tiers[i].channels);
    free(r->tiers);
    r->n_tiers = 0;
    r->tiers = calloc(total ? total : 1, sizeof *r->tiers);
    if (!r->tiers) return;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *t = node(x, *it);
        if (!t) continue;
        if (t->type != YAML_MAPPING_NODE) {
            fail(x, t, "escalate: each tier is {after: DURATION, channels: [...]}");
            continue;
        }
        mk_notify_tier tier = {0};
        int has_after = 0;
        for (yaml_node_pair_t *p = t->data.mapping.pairs.start; p < t->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = node(x, p->key), *tv = node(x, p->value);
            if (!kn || !tv || kn->type != YAML_SCALAR_NODE) continue;
            if (!strcmp(sval(kn), "after")) has_after = dur_of(x, tv, "escalate.after", &tier.after_ms) == 0;
            else if (!strcmp(sval(kn), "channels")) {
                free(tier.channels);
                chan_list_of(x, tv, "escalate.channels", &tier.channels, &tier.n_channels);
            } else fail(x, kn, "escalate: unknown key '%s' (known: after, channels)", sval(kn));
        }
        if (!has_after || !tier.n_channels) {
            fail(x, t, "escalate: a tier needs after: and channels:");
            free(tier.channels);
            continue;
        }
        if (r->n_tiers && tier.after_ms < r->tiers[r->n_tiers - 1].after_ms) {
            fail(x, t, "escalate: tiers must come in increasing after: order");
            free(tier.channels);
            continue;
        }
        r->tiers[r->n_tiers++] = tier;
    }
}

static void parse_route(ctx *x, const yaml_node_t *n)
{
    mk_notify_route r;
    memset(&r, 0, sizeof r);
    r.group_wait_ms = 30000;
    r.group_interval_ms = 300000;
    r.repeat_interval_ms = 4 * 3600000;
    if (n->type != YAML_MAPPING_NODE) {
        fail(x, n, "routes: each route is a mapping (match:, channels:, ...)");
        return;
    }
    int bad = x->count;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(x, p->key), *v = node(x, p->value);
        if (!kn || !v || kn->type != YAML_SCALAR_NODE) continue;
        const char *k = sval(kn);
        if (!strcmp(k, "match")) {
            matchers_free(r.match, r.n_match);
            r.match = NULL;
            r.n_match = 0;
            matchers_of(x, v, k, &r.match, &r.n_match);
        } else if (!strcmp(k, "channels")) {
            free(r.channels);
            r.channels = NULL;
            chan_list_of(x, v, k, &r.channels, &r.n_channels);
        } else if (!strcmp(k, "fallback")) {
            free(r.fallback);
            r.fallback = NULL;
            chan_list_of(x, v, k, &r.fallback, &r.n_fallback);
        } else if (!strcmp(k, "escalate")) {
            parse_tiers(x, v, &r);
        } else if (!strcmp(k, "group_by")) {
            strs_free(r.group_by, r.n_group_by);
            r.group_by = NULL;
            r.n_group_by = 0;
            strs_of(x, v, k, &r.group_by, &r.n_group_by);
        } else if (!strcmp(k, "group_wait")) {
            dur_of(x, v, k, &r.group_wait_ms);
        } else if (!strcmp(k, "group_interval")) {
            dur_of(x, v, k, &r.group_interval_ms);
        } else if (!strcmp(k, "repeat_interval")) {
            dur_of(x, v, k, &r.repeat_interval_ms);
        } else if (!strcmp(k, "continue")) {
            bool_of(x, v, k, &r.is_continue);
        } else {
            fail(x, kn, "route: unknown key '%s' (known: match, channels, fallback, escalate, group_by, group_wait, "
                        "group_interval, repeat_interval, continue)", k);
        }
    }
    if (!r.n_channels && x->count == bad) fail(x, n, "route: channels is required");
    if (x->count != bad || x->c->n_routes >= MAX_ITEMS) {
        route_clear(&r);
        return;
    }
    mk_notify_route *a = realloc(x->c->routes, (x->c->n_routes + 1) * sizeof *a);
    if (!a) {
        route_clear(&r);
        return;
    }
    x->c->routes = a;
    a[x->c->n_routes++] = r;
}

/* ---- inhibit rules ------------------------------------------------------------ */

static void inhibit_clear(mk_notify_inhibit *h)
{
    matchers_free(h->source, h->n_source);
    matchers_free(h->target, h->n_target);
    strs_free(h->equal, h->n_equal);
    memset(h, 0, sizeof *h);
}

static void parse_inhibit(ctx *x, const yaml_node_t *n)
{
    mk_notify_inhibit h;
    memset(&h, 0, sizeof h);
    if (n->type != YAML_MAPPING_NODE) {
        fail(x, n, "inhibit_rules: each rule is {source_match: {...}, target_match: {...}, equal: [...]}");
        return;
    }
    int bad = x->count;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(x, p->key), *v = node(x, p->value);
        if (!kn || !v || kn->type != YAML_SCALAR_NODE) continue;
        const char *k = sval(kn);
        if (!strcmp(k, "source_match")) {
            matchers_free(h.source, h.n_source);
            h.source = NULL;
            h.n_source = 0;
            matchers_of(x, v, k, &h.source, &h.n_source);
        } else if (!strcmp(k, "target_match")) {
            matchers_free(h.target, h.n_target);
            h.target = NULL;
            h.n_target = 0;
            matchers_of(x, v, k, &h.target, &h.n_target);
        } else if (!strcmp(k, "equal")) {
            strs_free(h.equal, h.n_equal);
            h.equal = NULL;
            h.n_equal = 0;
            strs_of(x, v, k, &h.equal, &h.n_equal);
        } else {
            fail(x, kn, "inhibit rule: unknown key '%s' (known: source_match, target_match, equal)", k);
        }
    }
    if (x->count == bad && (!h.n_source || !h.n_target))
        fail(x, n, "inhibit rule: source_match and target_match are required and must not be empty");
    if (x->count != bad || x->c->n_inhibits >= MAX_ITEMS) {
        inhibit_clear(&h);
        return;
    }
    mk_notify_inhibit *a = realloc(x->c->inhibits, (x->c->n_inhibits + 1) * sizeof *a);
    if (!a) {
        inhibit_clear(&h);
        return;
    }
    x->c->inhibits = a;
    a[x->c->n_inhibits++] = h;
}

/* ---- entry points ------------------------------------------------------------- */

int mk_notify_config_section(mk_notify_config *c, void *doc, const void *vnode, const char *name,
                             mk_notify_err_fn err, void *err_ctx)
{
    ctx x = {c, doc, err, err_ctx, 0};
    const yaml_node_t *n = vnode;
    if (n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0) return 0; /* "channels:" with nothing */
    if (n->type != YAML_SEQUENCE_NODE) {
        fail(&x, n, "%s: expected a list", name);
        return x.count;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *e = node(&x, *it);
        if (!e) continue;
        if (!strcmp(name, "channels")) parse_channel(&x, e);
        else if (!strcmp(name, "routes")) parse_route(&x, e);
        else if (!strcmp(name, "inhibit_rules")) parse_inhibit(&x, e);
    }
    return x.count;
}

long mk_notify_config_channel(const mk_notify_config *c, const char *name)
{
    for (size_t i = 0; i < c->n_channels; i++)
        if (!strcmp(c->channels[i].name, name)) return (long)i;
    return -1;
}

void mk_notify_config_free(mk_notify_config *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_channels; i++) channel_clear(&c->channels[i]);
    free(c->channels);
    for (size_t i = 0; i < c->n_routes; i++) route_clear(&c->routes[i]);
    free(c->routes);
    for (size_t i = 0; i < c->n_inhibits; i++) inhibit_clear(&c->inhibits[i]);
    free(c->inhibits);
    memset(c, 0, sizeof *c);
}

typedef struct errbuf {
    mk_buf b;
} errbuf;

static void collect(void *vctx, size_t line, size_t col, const char *msg)
{
    errbuf *e = vctx;
    char t[700];
    int k = snprintf(t, sizeof t, "%zu:%zu: %s\n", line, col, msg);
    if (k > 0) mk_buf_append(&e->b, t, (size_t)k < sizeof t ? (size_t)k : sizeof t - 1);
}

int mk_notify_config_parse_text(mk_notify_config *c, const char *text, size_t n, char **errs)
{
    errbuf e = {{0}};
    int count = 0;
    yaml_parser_t parser;
    yaml_document_t doc;
    memset(c, 0, sizeof *c);
    *errs = NULL;
    if (!yaml_parser_initialize(&parser)) return 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, n);
    if (!yaml_parser_load(&parser, &doc)) {
        collect(&e, parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                parser.problem ? parser.problem : "invalid YAML");
        yaml_parser_delete(&parser);
        count = 1;
        goto out;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    /* channels first: routes refer to them by name */
    static const char *const order[] = {"channels", "routes", "inhibit_rules"};
    for (int pass = 0; root && root->type == YAML_MAPPING_NODE && pass < 3; pass++)
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(&doc, p->key), *vn = yaml_document_get_node(&doc, p->value);
            if (kn && vn && kn->type == YAML_SCALAR_NODE && !strcmp(sval(kn), order[pass]))
                count += mk_notify_config_section(c, &doc, vn, order[pass], collect, &e);
        }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
out:
    if (e.b.len) {
        mk_buf_append(&e.b, "", 1);
        *errs = (char *)e.b.data;
    } else {
        mk_buf_free(&e.b);
    }
    return count;
}

/*
 * notify/send.c — payloads and transports of one message (see send.h).
 *
 * Commands run without a shell: fork, then execve of the configured argv
 * (an absolute path) in a new process group with a small fixed
 * environment; incident fields travel only as environment values, never
 * as code. The child's stdout and stderr go to one pipe, read up to the
 * channel's max_output bytes (the rest is drained and counted); at the
 * timeout the whole process group gets SIGKILL and the run is recorded as
 * killed.
 */
#include "send.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tmpl.h"

int mk_notify_is_resolved(const mk_outbox_rec *r) { return r->event == MK_EV_RESOLVED; }

void mk_notify_time(int64_t ms, char *out, size_t cap)
{
    if (ms <= 0) {
        snprintf(out, cap, "0001-01-01T00:00:00Z");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static json_t *jtime(int64_t ms)
{
    char b[40];
    mk_notify_time(ms, b, sizeof b);
    return json_string(b);
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static const char *ann(const mk_outbox_rec *r, const char *key)
{
    for (size_t i = 0; i < r->n_annotations; i++)
        if (!strcmp(r->annotations[i].key, key)) return r->annotations[i].value;
    return NULL;
}

static const char *summary_of(const mk_outbox_rec *r)
{
    const char *s = ann(r, "summary");
    if (!s) s = r->reason;
    return s ? s : "";
}

/* labels of an alert as Alertmanager sees them: the series labels plus
 * alertname and severity (when not labels already). */
static json_t *alert_labels(const mk_outbox_rec *r)
{
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "alertname", json_string(r->rule));
    json_object_set_new(o, "severity", json_string(mk_severity_name(r->severity)));
    for (size_t i = 0; i < r->n_labels; i++) json_object_set_new(o, r->labels[i].key, json_string(r->labels[i].value));
    return o;
}

static json_t *alert_annotations(const mk_outbox_rec *r)
{
    json_t *o = json_object();
    if (!o) return NULL;
    for (size_t i = 0; i < r->n_annotations; i++)
        json_object_set_new(o, r->annotations[i].key, json_string(r->annotations[i].value));
    if (!json_object_get(o, "summary") && r->reason) json_object_set_new(o, "summary", json_string(r->reason));
    return o;
}

static char *generator_url(const mk_notify_channel *ch, const mk_outbox_rec *r)
{
    const char *base = ch && ch->external_url ? ch->external_url : "";
    size_t n = strlen(base) + 64;
    char *u = malloc(n);
    if (u) snprintf(u, n, "%s/api/incidents/%" PRIu64, base, r->incident_id);
    return u;
}

/* Common labels/annotations of all alerts of m (those equal everywhere). */
static json_t *common(const mk_notify_msg_view *m, json_t *(*of)(const mk_outbox_rec *))
{
    json_t *c = m->n_alerts ? of(m->alerts[0].rec) : json_object();
    for (size_t i = 1; c && i < m->n_alerts; i++) {
        json_t *o = of(m->alerts[i].rec);
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(c, tmp, k, v)
        {
            json_t *w = o ? json_object_get(o, k) : NULL;
            if (!w || !json_equal(v, w)) json_object_del(c, k);
        }
        json_decref(o);
    }
    return c;
}

static int n_firing(const mk_notify_msg_view *m)
{
    int k = 0;
    for (size_t i = 0; i < m->n_alerts; i++) k += !mk_notify_is_resolved(m->alerts[i].rec);
    return k;
}

json_t *mk_notify_payload_webhook(const mk_notify_msg_view *m)
{
    json_t *alerts = json_array();
    for (size_t i = 0; alerts && i < m->n_alerts; i++) {
        const mk_outbox_rec *r = m->alerts[i].rec;
        char *gen = generator_url(m->ch, r);
        int is_res = mk_notify_is_resolved(r);
        json_array_append_new(alerts, json_pack("{s:s,s:o,s:o,s:o,s:o,s:s,s:s}", "status", is_res ? "resolved" : "firing",
                                                "labels", alert_labels(r), "annotations", alert_annotations(r),
                                                "startsAt", jtime(r->fired_ms ? r->fired_ms : r->start_ms), "endsAt",
                                                jtime(is_res ? r->end_ms : 0), "generatorURL", gen ? gen : "",
                                                "fingerprint", m->alerts[i].fp_hex));
        free(gen);
    }
    json_t *gl = json_object();
    for (size_t i = 0; gl && i < m->n_group_labels; i++)
        json_object_set_new(gl, m->group_labels[i].key, json_string(m->group_labels[i].value));
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:s,s:o,s:i}", "version", "4", "groupKey",
                     m->group_key ? m->group_key : "{}", "status", n_firing(m) ? "firing" : "resolved", "receiver",
                     m->ch->name, "groupLabels", gl, "commonLabels", common(m, alert_labels), "commonAnnotations",
                     common(m, alert_annotations), "externalURL", m->ch->external_url ? m->ch->external_url : "",
                     "alerts", alerts, "truncatedAlerts", 0);
}

json_t *mk_notify_payload_kener(const mk_notify_msg_view *m, size_t i)
{
    const mk_outbox_rec *r = m->alerts[i].rec;
    char id[300];
    snprintf(id, sizeof id, "%s-%" PRIu64, r->rule, r->incident_id);
    json_t *actions = json_array();
    if (m->ch->external_url) {
        char *u = generator_url(m->ch, r);
        if (u) json_array_append_new(actions, json_pack("{s:s,s:s}", "text", "View incident", "url", u));
        free(u);
    }
    const char *metric = ann(r, "metric");
    int is_res = mk_notify_is_resolved(r);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:{s:s,s:o,s:o},s:o,s:s}", "id", id, "alert_name", r->rule,
                     "severity", mk_severity_name(r->severity), "status", is_res ? "RESOLVED" : "TRIGGERED", "source",
                     "Meerkat", "timestamp", jtime(is_res && r->end_ms ? r->end_ms : r->event_ms), "description",
                     summary_of(r), "details", "metric", metric ? metric : r->rule, "current_value", jnum(r->value),
                     "threshold", jnum(r->threshold), "actions", actions, "fingerprint", m->alerts[i].fp_hex);
}

json_t *mk_notify_payload_am_alerts(const mk_notify_msg_view *m)
{
    json_t *a = json_array();
    /* firing alerts stay valid for 4 resend intervals, as Prometheus does
     * (ValidUntil): if Meerkat stops re-sending, Alertmanager resolves them */
    int64_t valid_ms = 4 * (m->ch->resend_ms > 0 ? m->ch->resend_ms : 60000);
    for (size_t i = 0; a && i < m->n_alerts; i++) {
        const mk_outbox_rec *r = m->alerts[i].rec;
        int is_res = mk_notify_is_resolved(r);
        char *gen = generator_url(m->ch, r);
        int64_t ends = is_res ? (r->end_ms ? r->end_ms : m->now_ms) : m->now_ms + valid_ms;
        json_array_append_new(a, json_pack("{s:o,s:o,s:o,s:o,s:s}", "labels", alert_labels(r), "annotations",
                                           alert_annotations(r), "startsAt",
                                           jtime(r->fired_ms ? r->fired_ms : r->start_ms), "endsAt", jtime(ends),
                                           "generatorURL", gen ? gen : ""));
        free(gen);
    }
    return a;
}

/* ---- templates --------------------------------------------------------------- */

typedef struct lk {
    const mk_notify_msg_view *m;
    char num[64];
    char *text; /* owned: lazily built "text" */
    char tbuf[2][40];
} lk;

static void fmt_num(double v, char *out, size_t cap)
{
    if (!isfinite(v)) snprintf(out, cap, "NaN");
    else snprintf(out, cap, "%.6g", v);
}

static const char *build_text(lk *x)
{
    if (x->text) return x->text;
    mk_buf b = {0};
    for (size_t i = 0; i < x->m->n_alerts; i++) {
        const mk_outbox_rec *r = x->m->alerts[i].rec;
        char line[1200], v[32];
        fmt_num(r->value, v, sizeof v);
        int k = snprintf(line, sizeof line, "%s[%s] %s (%s): %s%s", i ? "\n" : "",
                         mk_notify_is_resolved(r) ? "RESOLVED" : "FIRING", r->rule, mk_severity_name(r->severity),
                         summary_of(r), "");
        if (k > 0) mk_buf_append(&b, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
        for (size_t j = 0; j < r->n_labels; j++) {
            k = snprintf(line, sizeof line, "%s%s=%s", j ? ", " : " {", r->labels[j].key, r->labels[j].value);
            if (k > 0) mk_buf_append(&b, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
        }
        if (r->n_labels) mk_buf_append(&b, "}", 1);
        (void)v;
    }
    mk_buf_append(&b, "", 1);
    x->text = (char *)b.data;
    return x->text ? x->text : "";
}

static int name_is(const char *s, size_t n, const char *lit) { return strlen(lit) == n && !memcmp(s, lit, n); }

static const char *lookup(void *vctx, const char *s, size_t n)
{
    lk *x = vctx;
    const mk_notify_msg_view *m = x->m;
    const mk_outbox_rec *r = m->n_alerts ? m->alerts[0].rec : NULL;
    if (name_is(s, n, "status")) return n_firing(m) ? "firing" : "resolved";
    if (name_is(s, n, "status_upper")) return n_firing(m) ? "FIRING" : "RESOLVED";
    if (name_is(s, n, "channel")) return m->ch->name;
    if (name_is(s, n, "group_key")) return m->group_key ? m->group_key : "";
    if (name_is(s, n, "external_url")) return m->ch->external_url ? m->ch->external_url : "";
    if (name_is(s, n, "text")) return build_text(x);
    if (name_is(s, n, "n_alerts")) return snprintf(x->num, sizeof x->num, "%zu", m->n_alerts), x->num;
    if (name_is(s, n, "n_firing")) return snprintf(x->num, sizeof x->num, "%d", n_firing(m)), x->num;
    if (name_is(s, n, "n_resolved"))
        return snprintf(x->num, sizeof x->num, "%d", (int)m->n_alerts - n_firing(m)), x->num;
    int is_alert_var = name_is(s, n, "alertname") || name_is(s, n, "rule") || name_is(s, n, "severity") ||
                       name_is(s, n, "summary") || name_is(s, n, "description") || name_is(s, n, "reason") ||
                       name_is(s, n, "value") || name_is(s, n, "threshold") || name_is(s, n, "peak") ||
                       name_is(s, n, "fingerprint") || name_is(s, n, "starts_at") || name_is(s, n, "ends_at") ||
                       name_is(s, n, "incident_id") || (n > 7 && !memcmp(s, "labels.", 7)) ||
                       (n > 12 && !memcmp(s, "annotations.", 12));
    if (!is_alert_var) return NULL;
    if (!r) return "";
    if (name_is(s, n, "alertname") || name_is(s, n, "rule")) return r->rule;
    if (name_is(s, n, "severity")) return mk_severity_name(r->severity);
    if (name_is(s, n, "summary")) return summary_of(r);
    if (name_is(s, n, "description")) return ann(r, "description") ? ann(r, "description") : summary_of(r);
    if (name_is(s, n, "reason")) return r->reason ? r->reason : "";
    if (name_is(s, n, "value")) return fmt_num(r->value, x->num, sizeof x->num), x->num;
    if (name_is(s, n, "threshold")) return fmt_num(r->threshold, x->num, sizeof x->num), x->num;
    if (name_is(s, n, "peak")) return fmt_num(r->peak, x->num, sizeof x->num), x->num;
    if (name_is(s, n, "fingerprint")) return m->alerts[0].fp_hex;
    if (name_is(s, n, "incident_id")) return snprintf(x->num, sizeof x->num, "%" PRIu64, r->incident_id), x->num;
    if (name_is(s, n, "starts_at"))
        return mk_notify_time(r->fired_ms ? r->fired_ms : r->start_ms, x->tbuf[0], sizeof x->tbuf[0]), x->tbuf[0];
    if (name_is(s, n, "ends_at")) return mk_notify_time(r->end_ms, x->tbuf[1], sizeof x->tbuf[1]), x->tbuf[1];
    if (n > 7 && !memcmp(s, "labels.", 7)) {
        for (size_t i = 0; i < r->n_labels; i++)
            if (strlen(r->labels[i].key) == n - 7 && !memcmp(r->labels[i].key, s + 7, n - 7)) return r->labels[i].value;
        return "";
    }
    for (size_t i = 0; i < r->n_annotations; i++)
        if (strlen(r->annotations[i].key) == n - 12 && !memcmp(r->annotations[i].key, s + 12, n - 12))
            return r->annotations[i].value;
    return "";
}

int mk_notify_render(const mk_notify_msg_view *m, const char *t, mk_notify_escape esc, mk_buf *out, char *err,
                     size_t err_cap)
{
    lk x;
    memset(&x, 0, sizeof x);
    x.m = m;
    int rc = mk_notify_tmpl_render(t, strlen(t), esc, lookup, &x, out, err, err_cap);
    free(x.text);
    if (rc == -2) snprintf(err, err_cap, "out of memory rendering a template");
    return rc ? -1 : 0;
}

/* ---- e-mail -------------------------------------------------------------------- */

static void html_escape(mk_buf *b, const char *s)
{
    for (; *s; s++) {
        const char *e = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : *s == '"' ? "&quot;" : NULL;
        if (e) mk_buf_append(b, e, strlen(e));
        else mk_buf_append(b, s, 1);
    }
}

/* Header values: line breaks from labels would start new headers. */
static void header_safe(mk_buf *b, const char *s)
{
    for (; *s; s++) mk_buf_append(b, (*s == '\r' || *s == '\n') ? " " : s, 1);
}

int mk_notify_email_message(const mk_notify_msg_view *m, mk_buf *out, char *err, size_t err_cap)
{
    const mk_notify_channel *ch = m->ch;
    mk_buf subj = {0};
    const char *st = ch->subject ? ch->subject : "[{{status_upper}}:{{n_alerts}}] {{alertname}} ({{severity}})";
    if (mk_notify_render(m, st, MK_NOTIFY_ESC_NONE, &subj, err, err_cap) != 0) {
        mk_buf_free(&subj);
        return -1;
    }
    mk_buf_append(&subj, "", 1);
    char date[64], line[600];
    time_t now = (time_t)(m->now_ms / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    const char *fp = m->n_alerts ? m->alerts[0].fp_hex : "test";
    uint64_t seq = m->n_alerts ? m->alerts[0].rec->seq : 0;
    mk_buf_append(out, "From: ", 6);
    header_safe(out, ch->from);
    mk_buf_append(out, "\r\nTo: ", 6);
    for (size_t i = 0; i < ch->n_to; i++) {
        if (i) mk_buf_append(out, ", ", 2);
        header_safe(out, ch->to[i]);
    }
    mk_buf_append(out, "\r\nSubject: ", 11);
    header_safe(out, (const char *)subj.data);
    mk_buf_free(&subj);
    int k = snprintf(line, sizeof line,
                     "\r\nDate: %s\r\nMessage-ID: <%s.%" PRIu64 ".%" PRId64 "@meerkat>\r\nX-Meerkat-Fingerprint: %s\r\n"
                     "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"mk-%s\"\r\n\r\n"
                     "--mk-%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
                     date, fp, seq, m->now_ms, fp, fp, fp);
    mk_buf_append(out, line, (size_t)k);
    mk_buf text = {0};
    if (mk_notify_render(m, "{{text}}", MK_NOTIFY_ESC_NONE, &text, err, err_cap) != 0) {
        mk_buf_free(&text);
        return -1;
    }
    mk_buf_append(&text, "", 1);
    /* a line holding only "." would end the SMTP DATA early in some
     * servers' eyes; libcurl dot-stuffs, but keep lines CRLF */
    for (const char *p = (const char *)text.data; *p; p++) {
        if (*p == '\n') mk_buf_append(out, "\r\n", 2);
        else if (*p != '\r') mk_buf_append(out, p, 1);
    }
    k = snprintf(line, sizeof line, "\r\n\r\n--mk-%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n", fp);
    mk_buf_append(out, line, (size_t)k);
    mk_buf_append(out, "<html><body><ul>\r\n", 18);
    for (size_t i = 0; i < m->n_alerts; i++) {
        const mk_outbox_rec *r = m->alerts[i].rec;
        mk_buf_append(out, "<li><b>", 7);
        html_escape(out, mk_notify_is_resolved(r) ? "RESOLVED" : "FIRING");
        mk_buf_append(out, "</b> ", 5);
        html_escape(out, r->rule);
        mk_buf_append(out, ": ", 2);
        html_escape(out, summary_of(r));
        mk_buf_append(out, "</li>\r\n", 7);
    }
    mk_buf_append(out, "</ul></body></html>\r\n", 21);
    k = snprintf(line, sizeof line, "\r\n--mk-%s--\r\n", fp);
    mk_buf_append(out, line, (size_t)k);
    mk_buf_free(&text);
    return 0;
}

/* ---- transports ------------------------------------------------------------------ */

typedef struct rbuf {
    char *p;
    size_t n, cap;
} rbuf;

static size_t on_body(char *d, size_t sz, size_t nm, void *u)
{
    rbuf *b = u;
    size_t n = sz * nm;
    size_t room = b->cap - b->n;
    size_t k = n < room ? n : room;
    memcpy(b->p + b->n, d, k);
    b->n += k;
    return n;
}

static void printable(char *dst, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) dst[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : ' ';
    dst[k] = 0;
}

static int http_send(const mk_notify_channel *ch, const char *method, const char *url, struct curl_slist *hdr,
                     const char *body, size_t n_body, mk_notify_result *res)
{
    CURL *c = curl_easy_init();
    char ebuf[CURL_ERROR_SIZE] = "";
    char resp[512];
    rbuf rb = {resp, 0, sizeof resp};
    if (!c) {
        snprintf(res->err, sizeof res->err, "cannot make a libcurl handle");
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ch->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)ch->timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &rb);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "meerkat-notify/1");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)n_body);
    }
    if (hdr) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    res->status = cc == CURLE_OK ? (int)code : -1;
    printable(res->output, sizeof res->output, resp, rb.n);
    if (cc != CURLE_OK) {
        snprintf(res->err, sizeof res->err, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
        return -1;
    }
    if (code < 200 || code > 299) {
        snprintf(res->err, sizeof res->err, "HTTP %ld: %.200s", code, res->output);
        return -1;
    }
    return 0;
}

static int send_json(const mk_notify_msg_view *m, const char *url, json_t *payload, mk_notify_result *res)
{
    char *txt = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    json_decref(payload);
    if (!txt) {
        snprintf(res->err, sizeof res->err, "out of memory building the payload");
        return -1;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    for (size_t i = 0; i < m->ch->n_headers; i++) {
        char line[1200];
        snprintf(line, sizeof line, "%s: %s", m->ch->headers[i].key, m->ch->headers[i].value);
        h = curl_slist_append(h, line);
    }
    int rc = http_send(m->ch, "POST", url, h, txt, strlen(txt), res);
    curl_slist_free_all(h);
    free(txt);
    return rc;
}

static int send_template(const mk_notify_msg_view *m, mk_notify_result *res)
{
    const mk_notify_channel *ch = m->ch;
    mk_buf url = {0}, body = {0};
    struct curl_slist *h = NULL;
    int rc = -1, has_ct = 0;
    if (mk_notify_render(m, ch->url, MK_NOTIFY_ESC_URL, &url, res->err, sizeof res->err) != 0) goto out;
    mk_buf_append(&url, "", 1);
    if (ch->body && mk_notify_render(m, ch->body, ch->escape, &body, res->err, sizeof res->err) != 0) goto out;
    for (size_t i = 0; i < ch->n_headers; i++) {
        mk_buf v = {0};
        if (mk_notify_render(m, ch->headers[i].value, MK_NOTIFY_ESC_NONE, &v, res->err, sizeof res->err) != 0) {
            mk_buf_free(&v);
            goto out;
        }
        mk_buf line = {0};
        mk_buf_append(&line, ch->headers[i].key, strlen(ch->headers[i].key));
        mk_buf_append(&line, ": ", 2);
        for (size_t k = 0; k < v.len; k++) /* rendered values must not split the header */
            mk_buf_append(&line, (v.data[k] == '\r' || v.data[k] == '\n') ? " " : (const char *)&v.data[k], 1);
        mk_buf_append(&line, "", 1);
        if (!strcasecmp(ch->headers[i].key, "Content-Type")) has_ct = 1;
        h = curl_slist_append(h, (const char *)line.data);
        mk_buf_free(&line);
        mk_buf_free(&v);
    }
    if (!has_ct && ch->body)
        h = curl_slist_append(h, ch->escape == MK_NOTIFY_ESC_URL ? "Content-Type: application/x-www-form-urlencoded"
                                 : ch->escape == MK_NOTIFY_ESC_JSON ? "Content-Type: application/json"
                                                                   : "Content-Type: text/plain; charset=utf-8");
    rc = http_send(ch, ch->method ? ch->method : "POST", (const char *)url.data, h, (const char *)body.data, body.len,
                   res);
out:
    curl_slist_free_all(h);
    mk_buf_free(&url);
    mk_buf_free(&body);
    return rc;
}

typedef struct rd {
    const uint8_t *p;
    size_t n, off;
} rd;

static size_t on_read(char *d, size_t sz, size_t nm, void *u)
{
    rd *r = u;
    size_t k = sz * nm;
    if (k > r->n - r->off) k = r->n - r->off;
    memcpy(d, r->p + r->off, k);
    r->off += k;
    return k;
}

static int send_email(const mk_notify_msg_view *m, mk_notify_result *res)
{
    const mk_notify_channel *ch = m->ch;
    mk_buf msg = {0};
    int rc = -1;
    char ebuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *rcpt = NULL;
    CURL *c = NULL;
    if (mk_notify_email_message(m, &msg, res->err, sizeof res->err) != 0) goto out;
    if (!(c = curl_easy_init())) {
        snprintf(res->err, sizeof res->err, "cannot make a libcurl handle");
        goto out;
    }
    for (size_t i = 0; i < ch->n_to; i++) rcpt = curl_slist_append(rcpt, ch->to[i]);
    rd r = {msg.data, msg.len, 0};
    curl_easy_setopt(c, CURLOPT_URL, ch->smtp_url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ch->timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, ch->from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &r);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (ch->is_starttls) curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (ch->is_insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (ch->username) curl_easy_setopt(c, CURLOPT_USERNAME, ch->username);
    if (ch->password) curl_easy_setopt(c, CURLOPT_PASSWORD, ch->password);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    res->status = (int)code;
    if (cc != CURLE_OK) snprintf(res->err, sizeof res->err, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
    else rc = 0;
out:
    if (c) curl_easy_cleanup(c);
    curl_slist_free_all(rcpt);
    mk_buf_free(&msg);
    return rc;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* MEERKAT_LABEL_<KEY>: the key upper-cased, anything else than [A-Z0-9] as '_'. */
static char *env_pair(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s=%s", name, value);
    return p;
}

static int run_command(const mk_notify_channel *ch, const mk_notify_alert_view *av, const mk_notify_msg_view *m,
                       mk_notify_result *res)
{
    const mk_outbox_rec *r = av->rec;
    char *envp[64 + 16];
    size_t ne = 0;
    char num[64], t1[40];
    /* everything is prepared before fork: the child only calls
     * async-signal-safe functions */
    envp[ne++] = env_pair("PATH", "/usr/local/bin:/usr/bin:/bin");
    envp[ne++] = env_pair("MEERKAT_RULE", r->rule);
    envp[ne++] = env_pair("MEERKAT_STATUS", mk_notify_is_resolved(r) ? "resolved" : "firing");
    envp[ne++] = env_pair("MEERKAT_EVENT", mk_inc_event_name(r->event));
    envp[ne++] = env_pair("MEERKAT_SEVERITY", mk_severity_name(r->severity));
    envp[ne++] = env_pair("MEERKAT_FINGERPRINT", av->fp_hex);
    snprintf(num, sizeof num, "%" PRIu64, r->incident_id);
    envp[ne++] = env_pair("MEERKAT_INCIDENT_ID", num);
    fmt_num(r->value, num, sizeof num);
    envp[ne++] = env_pair("MEERKAT_VALUE", num);
    fmt_num(r->threshold, num, sizeof num);
    envp[ne++] = env_pair("MEERKAT_THRESHOLD", num);
    envp[ne++] = env_pair("MEERKAT_REASON", r->reason ? r->reason : "");
    envp[ne++] = env_pair("MEERKAT_SUMMARY", summary_of(r));
    mk_notify_time(r->fired_ms ? r->fired_ms : r->start_ms, t1, sizeof t1);
    envp[ne++] = env_pair("MEERKAT_STARTS_AT", t1);
    envp[ne++] = env_pair("MEERKAT_CHANNEL", ch->name);
    for (size_t i = 0; i < r->n_labels && ne < 64 + 14; i++) {
        char key[128];
        int k = snprintf(key, sizeof key, "MEERKAT_LABEL_%s", r->labels[i].key);
        for (int j = 14; j < k && j < (int)sizeof key - 1; j++) {
            char c = key[j];
            key[j] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) ? c : '_';
        }
        envp[ne++] = env_pair(key, r->labels[i].value);
    }
    envp[ne] = NULL;
    int rc = -1;
    for (size_t i = 0; i < ne; i++)
        if (!envp[i]) {
            snprintf(res->err, sizeof res->err, "out of memory");
            goto out_env;
        }
    (void)m;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        snprintf(res->err, sizeof res->err, "pipe: %s", strerror(errno));
        goto out_env;
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(res->err, sizeof res->err, "fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        if (devnull >= 0) close(devnull);
        goto out_env;
    }
    if (pid == 0) {
        setpgid(0, 0);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(ch->argv[0], ch->argv, envp);
        static const char msg[] = "execve failed\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    setpgid(pid, pid); /* also from the parent: no race with the kill below */
    close(pfd[1]);
    if (devnull >= 0) close(devnull);
    int64_t deadline = mono_ms() + ch->timeout_ms;
    size_t kept = 0, total = 0;
    char buf[4096];
    int is_killed = 0, is_eof = 0, wst = 0, is_reaped = 0;
    char *outp = calloc(1, ch->max_output_bytes + 1);
    while (!is_reaped) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            is_killed = 1;
            waitpid(pid, &wst, 0);
            is_reaped = 1;
            break;
        }
        if (!is_eof) {
            struct pollfd p = {pfd[0], POLLIN, 0};
            int pr = poll(&p, 1, (int)(left < 50 ? left : 50));
            if (pr > 0) {
                ssize_t k = read(pfd[0], buf, sizeof buf);
                if (k <= 0) is_eof = 1;
                else {
                    size_t room = ch->max_output_bytes - kept;
                    size_t c = (size_t)k < room ? (size_t)k : room;
                    if (outp) memcpy(outp + kept, buf, c);
                    kept += c;
                    total += (size_t)k;
                }
            }
        } else {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        pid_t w = waitpid(pid, &wst, WNOHANG);
        if (w == pid) is_reaped = 1;
    }
    /* a grandchild may still hold the pipe: read what is there, no waiting */
    for (;;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        if (is_eof || poll(&p, 1, 0) <= 0) break;
        ssize_t k = read(pfd[0], buf, sizeof buf);
        if (k <= 0) break;
        size_t room = ch->max_output_bytes - kept;
        size_t c = (size_t)k < room ? (size_t)k : room;
        if (outp) memcpy(outp + kept, buf, c);
        kept += c;
        total += (size_t)k;
    }
    close(pfd[0]);
    if (outp) printable(res->output, sizeof res->output, outp, kept);
    free(outp);
    if (is_killed) {
        res->status = -1;
        snprintf(res->err, sizeof res->err, "killed (SIGKILL) after the %" PRId64 " ms timeout", ch->timeout_ms);
    } else if (WIFEXITED(wst)) {
        res->status = WEXITSTATUS(wst);
        if (res->status == 0) rc = 0;
        else snprintf(res->err, sizeof res->err, "exit status %d", res->status);
    } else if (WIFSIGNALED(wst)) {
        res->status = 128 + WTERMSIG(wst);
        snprintf(res->err, sizeof res->err, "killed by signal %d", WTERMSIG(wst));
    }
    if (total > kept && !res->err[0] && rc != 0) snprintf(res->err, sizeof res->err, "output cut at %zu bytes", kept);
out_env:
    for (size_t i = 0; i < ne; i++) free(envp[i]);
    return rc;
}

int mk_notify_send(const mk_notify_msg_view *m, mk_notify_result *res)
{
    memset(res, 0, sizeof *res);
    res->status = -1;
    const mk_notify_channel *ch = m->ch;
    switch (ch->kind) {
    case MK_NOTIFY_WEBHOOK: return send_json(m, ch->url, mk_notify_payload_webhook(m), res);
    case MK_NOTIFY_KENER: {
        int rc = 0;
        for (size_t i = 0; i < m->n_alerts && rc == 0; i++)
            if (m->alerts[i].is_new || m->is_test) rc = send_json(m, ch->url, mk_notify_payload_kener(m, i), res);
        return rc;
    }
    case MK_NOTIFY_ALERTMANAGER: {
        size_t n = strlen(ch->url) + 32;
        char *u = malloc(n);
        if (!u) return -1;
        size_t k = strlen(ch->url);
        snprintf(u, n, "%.*s/api/v2/alerts", (int)(k && ch->url[k - 1] == '/' ? k - 1 : k), ch->url);
        int rc = send_json(m, u, mk_notify_payload_am_alerts(m), res);
        free(u);
        return rc;
    }
    case MK_NOTIFY_TEMPLATE: return send_template(m, res);
    case MK_NOTIFY_EMAIL: return send_email(m, res);
    case MK_NOTIFY_COMMAND: {
        int rc = 0;
        for (size_t i = 0; i < m->n_alerts && rc == 0; i++)
            if (m->alerts[i].is_new || m->is_test) rc = run_command(ch, &m->alerts[i], m, res);
        return rc;
    }
    }
    snprintf(res->err, sizeof res->err, "unknown channel kind");
    return -1;
}

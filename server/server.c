/*
 * server/server.c — the HTTP server (see server.h).
 *
 * Life of a request, in libmicrohttpd's callbacks:
 *
 *   uri_log      headers seen: allocate the request (mk_req), keep the raw
 *                URI (for our own form decoding: `+` is a space), count it
 *                as active
 *   access #1    *upload_data_size == 0, !is_started: route it; refuse a
 *                declared Content-Length over the limit at once (413) or
 *                over the write back-pressure budget (503)
 *   access #k    body bytes: appended while within max_body_bytes (else
 *                dropped and remembered as too large); write bodies count
 *                against the in-flight write budget while they are held
 *   access last  *upload_data_size == 0 again: run the handler, queue the
 *                response
 *   completed    free the request, give back its budget, count it
 *
 * Invariants: every path queues exactly one response per request; a request
 * never holds more than max_body_bytes of body; the bytes held by all write
 * requests together never exceed max_inflight_write_bytes (beyond it: 503 +
 * Retry-After). A write is answered 204 only after mk_db_write_lp returned,
 * i.e. once the data is durable under the fsync policy.
 */
#include "server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alerts.h"
#include "notify.h"
#include "env.h"
#include "form.h"
#include "hb.h"
#include "meerkat/meerkat.h"
#include "meerkat/query.h"
#include "slog.h"
#include "util.h"
#include "web.h"
#include "wreq.h"

#define MK_INFLUX_VERSION "1.8.10-meerkat"
#define MK_MAX_LISTED_ERRORS 20

/* ---- routes and metrics ------------------------------------------------ */

typedef enum route {
    R_NONE = 0,
    R_PING,
    R_HEALTH,
    R_READY,
    R_METRICS,
    R_WRITE,
    R_WRITE_V2,
    R_QUERY,
    R_FLUSH,
    R_MONITORS,
    R_KENER,
    R_KUMA,
    R_HC,
    R_KENER_BEAT,
    R_INCIDENTS,
    R_RULES,
    R_SILENCES,
    R_CHANNELS,
    R_NOTIFICATIONS,
    R_NOT_FOUND,
    R__COUNT
} route;

static const char *const route_label[R__COUNT] = {
    "none", "/ping", "/healthz", "/ready", "/metrics", "/write", "/api/v2/write", "/query",
    "/api/admin/flush", "/api/monitors", "/api/status", "/api/push", "/hc", "/api/heartbeat", "/api/incidents",
    "/api/rules", "/api/silences", "/api/channels", "/api/notifications", "other"};

/* HTTP codes counted per route; anything else lands in the last slot. */
static const int counted_codes[] = {200, 204, 400, 401, 403, 404, 405, 413, 500, 503, 0};
#define N_CODES (sizeof counted_codes / sizeof counted_codes[0])

static size_t code_slot(int code)
{
    for (size_t i = 0; i + 1 < N_CODES; i++)
        if (counted_codes[i] == code) return i;
    return N_CODES - 1;
}

/* Query latency histogram buckets (seconds), Prometheus style (cumulative on output). */
static const double qbuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_QBUCKETS (sizeof qbuckets / sizeof qbuckets[0])

/* Runtime state of a configured monitor. Guarded by mk_server.mon_mu. */
typedef struct mk_mon {
    const mk_cfg_monitor *cfg; /* borrowed from the config */
    int64_t last_beat_ms;      /* 0 = never */
    double last_status;        /* NaN = never */
    int64_t started_ms;        /* Healthchecks /start not yet followed by an end; 0 = none */
    /* Ids of its heartbeat series (status, latency_ms, duration_ms), looked
     * up on the first beat that needs each so a beat is written by id,
     * without building and parsing a line; 0 = not yet (under mon_mu). */
    uint64_t sid[3];
} mk_mon;

struct mk_server {
    struct MHD_Daemon *d;
    /* HTTPS only: the PEM texts handed to libmicrohttpd (owned, NUL-terminated,
     * NULL without TLS); kept until the daemon is stopped. */
    char *tls_cert_pem, *tls_key_pem;
    mk_db *db;            /* borrowed */
    const mk_config *cfg; /* borrowed */
    mk_alerts *alerts;    /* owned: rule engine, incidents, silences */
    mk_notify *notify;    /* owned: notification delivery; NULL without channels */
    unsigned port;
    atomic_int n_active;  /* requests between uri_log and completed */
    atomic_uint_fast64_t inflight_write_bytes;
    atomic_uint_fast64_t ingest_samples, ingest_rejected;
    atomic_uint_fast64_t http_count[R__COUNT][N_CODES];
    atomic_uint_fast64_t q_bucket[N_QBUCKETS + 1]; /* last = +Inf */
    atomic_uint_fast64_t q_count, q_sum_us;
    pthread_mutex_t mon_mu;
    mk_mon *mons;
    /* The answers of a successful Kuma push and Healthchecks ping, built once
     * and queued on every such request (libmicrohttpd counts references);
     * NULL if building failed, then they are built per request. */
    struct MHD_Response *resp_kuma_ok, *resp_hc_ok;
    size_t n_mons;
    /* Open-addressing table over mons by (kind, token): 10,000 pushing
     * monitors made the linear strcmp scan a fifth of the server's CPU.
     * Slots hold index + 1 (0 = empty); mon_slots is a power of two at
     * least twice n_mons. Built once at start; read without a lock. */
    uint32_t *mon_slot;
    size_t mon_slots;
    /* Database names written to, kept in DATA/databases (one per line).
     * Meerkat has one namespace; the names only make SHOW DATABASES and
     * "database not found" behave as InfluxDB's. Never removed, so the
     * strings stay valid while the server runs. */
    pthread_mutex_t dbs_mu;
    char **dbs;
    size_t n_dbs, cap_dbs;
};

typedef struct kv {
    char *key, *val;
    size_t vlen;
} kv;

typedef struct mk_req {
    mk_server *s;
    char *uri;            /* owned: raw request target */
    char *path;           /* owned: decoded path (alert routes) */
    route r;
    mk_hb_route hb;
    int is_started;
    int is_too_large;
    int is_overloaded;    /* the write budget was exceeded while receiving */
    mk_buf body;
    uint64_t budget_held; /* bytes counted in inflight_write_bytes */
    kv *args;             /* owned: URL args then body form args */
    size_t n_args, cap_args;
    size_t n_url_args;
    int code;             /* the status queued */
} mk_req;

/* ---- small helpers ---------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int add_arg(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
    mk_req *q = ctx;
    if (q->n_args == q->cap_args) {
        size_t cap = q->cap_args ? q->cap_args * 2 : 8;
        kv *na = realloc(q->args, cap * sizeof *na);
        if (!na) return -1;
        q->args = na;
        q->cap_args = cap;
    }
    kv *a = &q->args[q->n_args];
    a->key = malloc(klen + 1);
    a->val = malloc(vlen + 1);
    if (!a->key || !a->val) {
        free(a->key);
        free(a->val);
        return -1;
    }
    memcpy(a->key, key, klen + 1);
    memcpy(a->val, val, vlen + 1);
    a->vlen = vlen;
    q->n_args++;
    return 0;
}

/* Form (body) arguments win over URL arguments, as in Go's r.FormValue. */
static const char *arg(const mk_req *q, const char *key)
{
    for (size_t i = q->n_args; i-- > q->n_url_args;)
        if (strcmp(q->args[i].key, key) == 0) return q->args[i].val;
    for (size_t i = 0; i < q->n_url_args; i++)
        if (strcmp(q->args[i].key, key) == 0) return q->args[i].val;
    return NULL;
}

static int arg_true(const mk_req *q, const char *key)
{
    const char *v = arg(q, key);
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static enum MHD_Result queue(struct MHD_Connection *c, mk_req *q, int code, const char *ctype,
                             const char *body, size_t n, int must_free)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        n, (void *)(uintptr_t)body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        if (must_free) free((void *)(uintptr_t)body);
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "X-Influxdb-Version", MK_INFLUX_VERSION);
    MHD_add_response_header(resp, "X-Influxdb-Build", "OSS");
    if (code == 503) MHD_add_response_header(resp, "Retry-After", "1");
    if (code == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Basic realm=\"meerkat\"");
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)code, resp);
    MHD_destroy_response(resp);
    q->code = code;
    return rc;
}

/* A response with queue()'s headers over a static body, for reuse; NULL
 * without memory. */
static struct MHD_Response *shared_response(const char *ctype, const char *body)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);
    if (!resp) return NULL;
    if (MHD_add_response_header(resp, "Content-Type", ctype) != MHD_YES ||
        MHD_add_response_header(resp, "X-Influxdb-Version", MK_INFLUX_VERSION) != MHD_YES ||
        MHD_add_response_header(resp, "X-Influxdb-Build", "OSS") != MHD_YES) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

/* Queues a shared 200 response, or builds one like it when there is none. */
static enum MHD_Result queue_shared(struct MHD_Connection *c, mk_req *q, struct MHD_Response *resp,
                                    const char *ctype, const char *body)
{
    if (!resp) return queue(c, q, 200, ctype, body, strlen(body), 0);
    q->code = 200;
    return MHD_queue_response(c, 200, resp);
}

static void free_shared_responses(mk_server *s)
{
    if (s->resp_kuma_ok) MHD_destroy_response(s->resp_kuma_ok);
    if (s->resp_hc_ok) MHD_destroy_response(s->resp_hc_ok);
    s->resp_kuma_ok = s->resp_hc_ok = NULL;
}

static const char kuma_ok_body[] = "{\"ok\":true}\n"; /* what json_pack("{s:b}", "ok", 1) gives */
static const char hc_ok_body[] = "OK";
static const char text_ctype[] = "text/plain; charset=utf-8";

/* Queues a JSON object built from key/value pairs ({"error": msg} etc.). */
static enum MHD_Result queue_json(struct MHD_Connection *c, mk_req *q, int code, json_t *obj)
{
    char *txt = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!txt) return queue(c, q, 500, "application/json", "{\"error\":\"out of memory\"}\n", 25, 0);
    size_t n = strlen(txt);
    char *body = malloc(n + 2);
    if (!body) {
        free(txt);
        return MHD_NO;
    }
    memcpy(body, txt, n);
    body[n] = '\n';
    body[n + 1] = '\0';
    free(txt);
    return queue(c, q, code, "application/json", body, n + 1, 1);
}

static enum MHD_Result queue_error(struct MHD_Connection *c, mk_req *q, int code, const char *msg)
{
    if (q->r == R_WRITE_V2) {
        /* InfluxDB 2.x error shape */
        const char *kind = code == 401 ? "unauthorized" : code == 413 ? "request too large"
                          : code == 503 ? "unavailable" : code >= 500 ? "internal error" : "invalid";
        return queue_json(c, q, code, json_pack("{s:s,s:s}", "code", kind, "message", msg));
    }
    return queue_json(c, q, code, json_pack("{s:s}", "error", msg));
}

static enum MHD_Result queue_empty(struct MHD_Connection *c, mk_req *q, int code)
{
    return queue(c, q, code, NULL, "", 0, 0);
}

/* ---- routing ---------------------------------------------------------- */

/* suffix starts with '/', so "/xquery" does not end with "/query". */
static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* InfluxDB paths may sit under a prefix (Grafana: http://host/influx/query):
 * any path ending in /query, /write or /ping counts. */
static route route_of(const char *path, mk_hb_route *hb)
{
    size_t n = strlen(path);
    char p[1024];
    if (n >= sizeof p) return R_NOT_FOUND;
    memcpy(p, path, n + 1);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    if (strcmp(p, "/api/v2/write") == 0) return R_WRITE_V2;
    if (strcmp(p, "/api/admin/flush") == 0) return R_FLUSH;
    if (strcmp(p, "/api/monitors") == 0) return R_MONITORS;
    if (strcmp(p, "/api/incidents") == 0 || strncmp(p, "/api/incidents/", 15) == 0) return R_INCIDENTS;
    if (strcmp(p, "/api/rules") == 0 || strncmp(p, "/api/rules/", 11) == 0) return R_RULES;
    if (strcmp(p, "/api/silences") == 0 || strncmp(p, "/api/silences/", 14) == 0) return R_SILENCES;
    if (strcmp(p, "/api/channels") == 0) return R_CHANNELS;
    if (strcmp(p, "/api/notifications") == 0) return R_NOTIFICATIONS;
    if (strcmp(p, "/healthz") == 0 || strcmp(p, "/health") == 0) return R_HEALTH;
    if (strcmp(p, "/ready") == 0) return R_READY;
    if (strcmp(p, "/metrics") == 0) return R_METRICS;
    int h = mk_hb_route_parse(p, hb);
    if (h > 0 || (h < 0 && hb->kind == MK_HB_KENER_BEAT))
        return hb->kind == MK_HB_KENER ? R_KENER : hb->kind == MK_HB_KUMA ? R_KUMA
             : hb->kind == MK_HB_KENER_BEAT ? R_KENER_BEAT : R_HC;
    if (h < 0) {
        /* malformed heartbeat URL: unknown check as far as the client is concerned */
        hb->kind = strncmp(p, "/hc/", 4) == 0 ? MK_HB_HC : MK_HB_KUMA;
        hb->token[0] = '\0';
        return hb->kind == MK_HB_HC ? R_HC : R_KUMA;
    }
    if (ends_with(p, "/query")) return R_QUERY;
    if (ends_with(p, "/write")) return R_WRITE;
    if (ends_with(p, "/ping")) return R_PING;
    return R_NOT_FOUND;
}

/* Role a route needs when keys are configured; 0 = open. Kuma and
 * Healthchecks pushes carry their own secret (the token / uuid). */
static int role_needed(route r)
{
    switch (r) {
    case R_QUERY:
    case R_MONITORS:
    case R_INCIDENTS:
    case R_RULES:      /* GET; PUT and DELETE need admin (dispatch) */
    case R_SILENCES: return MK_ROLE_READ; /* GET; POST and DELETE need write (dispatch) */
    case R_CHANNELS:
    case R_NOTIFICATIONS: return MK_ROLE_READ;
    case R_WRITE:
    case R_WRITE_V2:
    case R_KENER: return MK_ROLE_WRITE;
    case R_FLUSH: return MK_ROLE_ADMIN;
    default: return 0;
    }
}

/* ---- handlers --------------------------------------------------------- */

static enum MHD_Result h_ping(struct MHD_Connection *c, mk_req *q)
{
    if (arg_true(q, "verbose"))
        return queue_json(c, q, 200, json_pack("{s:s}", "version", MK_INFLUX_VERSION));
    return queue_empty(c, q, 204);
}

static enum MHD_Result h_health(struct MHD_Connection *c, mk_req *q)
{
    return queue_json(c, q, 200,
                      json_pack("{s:s,s:s,s:s,s:s}", "name", "meerkat", "message",
                                "ready for queries and writes", "status", "pass", "version",
                                mk_version()));
}

/* Writes line protocol to the engine and answers as InfluxDB does. */
static enum MHD_Result do_write(struct MHD_Connection *c, mk_req *q, const char *text, size_t len,
                                mk_precision prec)
{
    mk_server *s = q->s;
    mk_wreq_errs errs;
    mk_write_stats st = {0};
    mk_diag diag = {0};
    mk_wreq_errs_init(&errs, text, len, MK_MAX_LISTED_ERRORS);
    /* mk_db_write_lp, not the parallel variant: measured slower here with 2
     * cores, for 5,000-line batches from 2 senders (629k vs 770k samples/s)
     * and for 100,000-line batches from 1 sender (547k vs 679k); see
     * bench/bench_http.c. */
    mk_err rc = mk_db_write_lp(s->db, text, len, prec, now_ms(), &st, mk_wreq_on_error, &errs, &diag);
    atomic_fetch_add(&s->ingest_samples, st.n_samples_accepted);
    atomic_fetch_add(&s->ingest_rejected, st.n_samples_rejected);
    enum MHD_Result ret;
    if (rc != MK_OK) {
        mk_slog(MK_SLOG_ERROR, "write failed", "error", diag.msg, (const char *)NULL);
        ret = queue_error(c, q, rc == MK_ENOSPC ? 507 : 500, diag.msg[0] ? diag.msg : mk_strerror(rc));
    } else if (errs.n_errors > 0) {
        const char *t = mk_wreq_errs_text(&errs);
        size_t n = strlen(t) + 64;
        char *msg = malloc(n);
        if (!msg) {
            ret = queue_error(c, q, 400, "partial write: (out of memory describing the errors)");
        } else {
            if (st.n_samples_accepted > 0)
                snprintf(msg, n, "partial write: %s dropped=%" PRIu64, t, st.n_samples_rejected);
            else
                snprintf(msg, n, "%s", t);
            ret = queue_error(c, q, 400, msg);
            free(msg);
        }
    } else {
        mk_alerts_kick(s->alerts, text, len); /* rules over these measurements: judged now */
        ret = queue_empty(c, q, 204);
    }
    mk_wreq_errs_free(&errs);
    return ret;
}

static int dbs_has(const mk_server *s, const char *name)
{
    for (size_t i = 0; i < s->n_dbs; i++)
        if (strcmp(s->dbs[i], name) == 0) return 1;
    return 0;
}

static int dbs_add(mk_server *s, const char *name)
{
    if (s->n_dbs == s->cap_dbs) {
        size_t cap = s->cap_dbs ? s->cap_dbs * 2 : 8;
        char **v = realloc(s->dbs, cap * sizeof *v);
        if (!v) return -1;
        s->dbs = v;
        s->cap_dbs = cap;
    }
    if (!(s->dbs[s->n_dbs] = strdup(name))) return -1;
    s->n_dbs++;
    return 0;
}

static char *dbs_path(const mk_server *s)
{
    size_t n = strlen(s->cfg->data_dir) + sizeof "/databases";
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/databases", s->cfg->data_dir);
    return p;
}

/* Reads DATA/databases; a missing file is an empty list. */
static void dbs_load(mk_server *s)
{
    char *path = dbs_path(s);
    FILE *f = path ? fopen(path, "r") : NULL;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (*line && !dbs_has(s, line) && dbs_add(s, line) != 0) break;
    }
    if (f) fclose(f);
    free(path);
}

/* Remembers a database name written to (durably, before the write is
 * acknowledged). Returns 0, or -1 with err filled. */
static int dbs_note(mk_server *s, const char *name, char *err, size_t cap)
{
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20) {
            snprintf(err, cap, "invalid database name: control characters are not allowed");
            return -1;
        }
    if (strlen(name) > 255) {
        snprintf(err, cap, "invalid database name: longer than 255 bytes");
        return -1;
    }
    int rc = 0;
    pthread_mutex_lock(&s->dbs_mu);
    if (!dbs_has(s, name)) {
        mk_buf b = {0};
        char *path = dbs_path(s);
        if (dbs_add(s, name) != 0 || !path) rc = -1;
        for (size_t i = 0; rc == 0 && i < s->n_dbs; i++)
            if (mk_buf_append(&b, s->dbs[i], strlen(s->dbs[i])) || mk_buf_append(&b, "\n", 1)) rc = -1;
        mk_diag d = {0};
        if (rc == 0 && mk_env_write_file_atomic(mk_env_default(), s->cfg->data_dir, "databases", b.data, b.len, &d) != MK_OK) {
            free(s->dbs[--s->n_dbs]);
            rc = -1;
        }
        if (rc) snprintf(err, cap, "cannot record the database name in %.150s: %.200s", path ? path : "the data directory", d.msg);
        mk_buf_free(&b);
        free(path);
    }
    pthread_mutex_unlock(&s->dbs_mu);
    return rc;
}

static enum MHD_Result h_write(struct MHD_Connection *c, mk_req *q)
{
    mk_server *s = q->s;
    const char *method_prec = arg(q, "precision");
    char dberr[400];
    if (q->r == R_WRITE) {
        const char *db = arg(q, "db");
        if (!db || !*db) return queue_error(c, q, 400, "database is required");
        if (dbs_note(s, db, dberr, sizeof dberr) != 0) return queue_error(c, q, 400, dberr);
    } else {
        const char *bucket = arg(q, "bucket");
        if (!bucket || !*bucket) return queue_error(c, q, 400, "bucket is required");
        if (dbs_note(s, bucket, dberr, sizeof dberr) != 0) return queue_error(c, q, 400, dberr);
        if (method_prec && (strcmp(method_prec, "m") == 0 || strcmp(method_prec, "h") == 0))
            method_prec = "?"; /* v2 knows ns, us, ms, s only */
    }
    mk_precision prec;
    int64_t mult;
    if (mk_wreq_precision(method_prec, &prec, &mult) != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid precision \"%.100s\" (use n, ns, u, us, ms, s%s)",
                 method_prec, q->r == R_WRITE ? ", m or h" : "");
        return queue_error(c, q, 400, msg);
    }
    const char *text = (const char *)q->body.data;
    size_t len = q->body.len;
    mk_buf inflated = {0}, scaled = {0};
    enum MHD_Result ret;
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    if (enc && (strcasecmp(enc, "gzip") == 0 || strcasecmp(enc, "x-gzip") == 0)) {
        char err[256];
        int g = mk_wreq_gunzip(text, len, s->cfg->max_body_bytes, &inflated, err, sizeof err);
        if (g == -2) {
            char msg[128];
            snprintf(msg, sizeof msg, "request body too large: more than %" PRIu64 " bytes once decompressed",
                     s->cfg->max_body_bytes);
            ret = queue_error(c, q, 413, msg);
            goto out;
        }
        if (g != 0) {
            ret = queue_error(c, q, 400, err);
            goto out;
        }
        text = (const char *)inflated.data;
        len = inflated.len;
    } else if (enc && *enc && strcasecmp(enc, "identity") != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "unsupported Content-Encoding \"%.100s\" (gzip or none)", enc);
        ret = queue_error(c, q, 415, msg);
        goto out;
    }
    if (mult != 1) {
        if (mk_wreq_scale_ts(text ? text : "", len, mult, &scaled) != MK_OK) {
            ret = queue_error(c, q, 500, "out of memory");
            goto out;
        }
        text = (const char *)scaled.data;
        len = scaled.len;
    }
    ret = do_write(c, q, text ? text : "", len, prec);
out:
    mk_buf_free(&inflated);
    mk_buf_free(&scaled);
    return ret;
}

typedef struct outbuf {
    mk_buf b;
} outbuf;

static mk_err out_fn(void *ctx, const char *p, size_t n) { return mk_buf_append(&((outbuf *)ctx)->b, p, n); }

/* Parses the `params` argument ({"name": value, ...}) into opts. */
static int parse_params(const char *txt, json_t **root, mk_query_param **out, size_t *n, char *err,
                        size_t cap)
{
    json_error_t je;
    *root = json_loads(txt, 0, &je);
    if (!*root || !json_is_object(*root)) {
        snprintf(err, cap, "error parsing query parameters: %s", *root ? "not a JSON object" : je.text);
        return -1;
    }
    size_t k = json_object_size(*root), i = 0;
    mk_query_param *p = calloc(k ? k : 1, sizeof *p);
    if (!p) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(*root, key, v)
    {
        p[i].name = key;
        if (json_is_integer(v)) p[i].value = (mk_qv){.type = MK_QV_INT, .u.i = json_integer_value(v)};
        else if (json_is_real(v)) p[i].value = (mk_qv){.type = MK_QV_FLOAT, .u.f = json_real_value(v)};
        else if (json_is_boolean(v)) p[i].value = (mk_qv){.type = MK_QV_BOOL, .u.i = json_is_true(v)};
        else if (json_is_string(v)) p[i].value = (mk_qv){.type = MK_QV_STRING, .u.s = json_string_value(v)};
        else {
            snprintf(err, cap, "error parsing query parameters: $%s must be a number, boolean or string", key);
            free(p);
            return -1;
        }
        i++;
    }
    *out = p;
    *n = i;
    return 0;
}

static enum MHD_Result h_query(struct MHD_Connection *c, mk_req *q)
{
    mk_server *s = q->s;
    const char *text = arg(q, "q");
    if (!text || !*text) return queue_error(c, q, 400, "missing required parameter \"q\"");
    mk_query_opts o;
    memset(&o, 0, sizeof o);
    o.db = arg(q, "db");
    if (o.db && !*o.db) o.db = NULL;
    /* A data directory never written through /write (meerkat import) has
     * no names: then any name is accepted. */
    const char **dbs = NULL;
    pthread_mutex_lock(&s->dbs_mu);
    if (s->n_dbs && (dbs = malloc(s->n_dbs * sizeof *dbs))) {
        memcpy(dbs, s->dbs, s->n_dbs * sizeof *dbs);
        o.databases = dbs;
        o.n_databases = s->n_dbs;
        o.is_db_checked = 1;
    }
    pthread_mutex_unlock(&s->dbs_mu);
    o.max_points = s->cfg->query_max_points;
    o.max_series = s->cfg->query_max_series;
    o.timeout_ms = s->cfg->query_timeout_ms;
    json_t *proot = NULL;
    mk_query_param *params = NULL;
    mk_qresult *res = NULL;
    outbuf ob = {0};
    enum MHD_Result ret;
    const char *ptxt = arg(q, "params");
    if (ptxt && *ptxt) {
        char err[256];
        if (parse_params(ptxt, &proot, &params, &o.n_params, err, sizeof err) != 0) {
            ret = queue_error(c, q, 400, err);
            goto out;
        }
        o.params = params;
    }
    mk_qout_opts fo;
    memset(&fo, 0, sizeof fo);
    fo.format = MK_QFMT_JSON;
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    if (accept && (strstr(accept, "application/csv") || strstr(accept, "text/csv"))) fo.format = MK_QFMT_CSV;
    const char *epoch = arg(q, "epoch");
    if (epoch && *epoch) {
        static const char *const ok[] = {"ns", "n", "u", "us", "\xc2\xb5", "ms", "s", "m", "h"};
        size_t i;
        for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
            if (strcmp(epoch, ok[i]) == 0) break;
        if (i == sizeof ok / sizeof ok[0]) {
            ret = queue_error(c, q, 400, "invalid epoch (use ns, u, ms, s, m or h)");
            goto out;
        }
        fo.epoch = strcmp(epoch, "n") == 0 ? "ns" : strcmp(epoch, "us") == 0 ? "u" : epoch;
    }
    fo.is_pretty = arg_true(q, "pretty");
    if (arg_true(q, "chunked")) {
        const char *cs = arg(q, "chunk_size");
        long v = cs ? strtol(cs, NULL, 10) : 0;
        fo.chunk_size = v > 0 ? (uint64_t)v : 10000;
    }
    mk_diag diag = {0};
    int64_t t0 = mono_us();
    mk_err rc = mk_query_exec(s->db, text, strlen(text), &o, &res, &diag);
    if (rc == MK_OK) rc = mk_qresult_write(res, &fo, out_fn, &ob, &diag);
    int64_t dt_us = mono_us() - t0;
    double dt_s = (double)dt_us / 1e6;
    size_t b = 0;
    while (b < N_QBUCKETS && dt_s > qbuckets[b]) b++;
    atomic_fetch_add(&s->q_bucket[b], 1);
    atomic_fetch_add(&s->q_count, 1);
    atomic_fetch_add(&s->q_sum_us, (uint64_t)(dt_us > 0 ? dt_us : 0));
    if (rc == MK_EPARSE) {
        char msg[600];
        snprintf(msg, sizeof msg, "error parsing query: %s", diag.msg);
        ret = queue_error(c, q, 400, msg);
    } else if (rc != MK_OK) {
        ret = queue_error(c, q, rc == MK_ENOMEM ? 503 : 500, diag.msg[0] ? diag.msg : mk_strerror(rc));
    } else {
        ret = queue(c, q, 200, fo.format == MK_QFMT_CSV ? "application/csv" : "application/json",
                    (const char *)ob.b.data, ob.b.len, 1);
        ob.b.data = NULL; /* handed to libmicrohttpd */
    }
out:
    mk_buf_free(&ob.b);
    mk_qresult_free(res);
    free(params);
    free(dbs);
    json_decref(proot);
    return ret;
}

static enum MHD_Result h_flush(struct MHD_Connection *c, mk_req *q)
{
    mk_diag diag = {0};
    int64_t t0 = mono_us();
    mk_err rc = mk_db_flush(q->s->db, &diag);
    /* then finish rollups and compaction, so the blocks on disk are the
     * final ones (backups, size measurements) */
    if (rc == MK_OK) rc = mk_db_compact(q->s->db, NULL, &diag);
    if (rc != MK_OK) {
        mk_slog(MK_SLOG_ERROR, "flush failed", "error", diag.msg, (const char *)NULL);
        return queue_error(c, q, 500, diag.msg[0] ? diag.msg : mk_strerror(rc));
    }
    char ms[32];
    snprintf(ms, sizeof ms, "%.1f", (double)(mono_us() - t0) / 1000.0);
    mk_slog(MK_SLOG_INFO, "flushed", "duration_ms", ms, (const char *)NULL);
    return queue_empty(c, q, 204);
}

/* ---- heartbeats --------------------------------------------------------- */

static uint64_t mon_hash(mk_monitor_kind kind, const char *token)
{
    return mk_hash64(token, strlen(token)) ^ ((uint64_t)kind * 0x9e3779b97f4a7c15ull);
}

static mk_mon *find_mon(mk_server *s, mk_monitor_kind kind, const char *token)
{
    if (!s->mon_slots) return NULL;
    size_t mask = s->mon_slots - 1;
    for (size_t h = (size_t)mon_hash(kind, token) & mask;; h = (h + 1) & mask) {
        uint32_t k = s->mon_slot[h];
        if (!k) return NULL;
        mk_mon *m = &s->mons[k - 1];
        if (m->cfg->kind == kind && strcmp(m->cfg->token, token) == 0) return m;
    }
}

/* Builds mon_slot; the config refuses duplicate tokens of one kind, and a
 * duplicate would only shadow the later monitor, as the scan did. */
static mk_err index_mons(mk_server *s, mk_diag *diag)
{
    size_t n = 16;
    while (n < 2 * s->n_mons) n <<= 1;
    s->mon_slot = calloc(n, sizeof *s->mon_slot);
    if (!s->mon_slot) return mk_diag_set(diag, MK_ENOMEM, "out of memory");
    s->mon_slots = n;
    for (size_t i = 0; i < s->n_mons; i++) {
        const mk_mon *m = &s->mons[i];
        if (find_mon(s, m->cfg->kind, m->cfg->token)) continue;
        size_t h = (size_t)mon_hash(m->cfg->kind, m->cfg->token) & (n - 1);
        while (s->mon_slot[h]) h = (h + 1) & (n - 1);
        s->mon_slot[h] = (uint32_t)(i + 1);
    }
    return MK_OK;
}

/* The ids of monitor m's heartbeat series fields (0 status, 1 latency_ms,
 * 2 duration_ms) into ids[]; the fields with is_needed[k] are created on
 * first use. One lock in the usual case: every id already known. */
static mk_err beat_series(mk_server *s, mk_mon *m, const int is_needed[3], uint64_t ids[3], mk_diag *diag)
{
    static const char *const field[3] = {"status", "latency_ms", "duration_ms"};
    pthread_mutex_lock(&s->mon_mu);
    memcpy(ids, m->sid, sizeof m->sid);
    pthread_mutex_unlock(&s->mon_mu);
    for (int k = 0; k < 3; k++) {
        if (!is_needed[k] || ids[k]) continue;
        mk_tag tag = {"monitor", m->cfg->name};
        mk_err rc = mk_db_series(s->db, "heartbeat", &tag, 1, field[k], &ids[k], diag);
        if (rc) return rc;
        pthread_mutex_lock(&s->mon_mu);
        m->sid[k] = ids[k];
        pthread_mutex_unlock(&s->mon_mu);
    }
    return MK_OK;
}

/* Stores one heartbeat sample; latency_ms / duration_ms NaN = absent. The
 * samples are those of the line "heartbeat,monitor=<name> status=..,
 * latency_ms=..,duration_ms=.. <ts>", written by series id. */
static mk_err store_beat(mk_server *s, mk_mon *m, int64_t ts_ms, double status, double latency_ms,
                         double duration_ms, mk_diag *diag)
{
    const double v[3] = {status, latency_ms, duration_ms};
    int is_needed[3];
    for (int k = 0; k < 3; k++) {
        if (isinf(v[k])) return mk_diag_set(diag, MK_EINVAL, "heartbeat value is not finite");
        is_needed[k] = !isnan(v[k]);
    }
    uint64_t ids[3];
    mk_err rc = beat_series(s, m, is_needed, ids, diag);
    if (rc) return rc;
    mk_point pts[3];
    size_t n = 0;
    for (int k = 0; k < 3; k++)
        if (is_needed[k]) pts[n++] = (mk_point){ids[k], ts_ms, v[k]};
    rc = mk_db_write(s->db, pts, n, diag);
    if (rc == MK_OK) {
        atomic_fetch_add(&s->ingest_samples, n);
        pthread_mutex_lock(&s->mon_mu);
        if (ts_ms >= m->last_beat_ms) {
            m->last_beat_ms = ts_ms;
            m->last_status = status;
        }
        pthread_mutex_unlock(&s->mon_mu);
        mk_alerts_on_beat(s->alerts, ids[0], ts_ms, status); /* heartbeat rules see it at once */
    }
    return rc;
}

/* Kener 3's GET /api/status?tag=T[&timestamp=S]: the monitor's last status,
 * its uptime over the UTC day of the timestamp (default now; DEGRADED counts
 * as up) as a percent string, and its last beat in seconds. As Kener does,
 * an unknown tag answers HTTP 200 with an error body. */
static enum MHD_Result h_kener_get(struct MHD_Connection *c, mk_req *q)
{
    mk_server *s = q->s;
    const char *tag = arg(q, "tag");
    if (!tag || !*tag) return queue_json(c, q, 400, json_pack("{s:s}", "error", "tag missing"));
    mk_mon *m = strlen(tag) <= MK_HB_TOKEN_MAX ? find_mon(s, MK_MON_KENER, tag) : NULL;
    if (!m) return queue_json(c, q, 200, json_pack("{s:s,s:i}", "error", "no monitor with tag found", "status", 400));
    int64_t at_s = now_ms() / 1000;
    const char *ts = arg(q, "timestamp");
    if (ts && *ts) {
        char *end;
        long long v = strtoll(ts, &end, 10);
        if (*end || v < 0 || v > 253402300799LL)
            return queue_json(c, q, 400, json_pack("{s:s}", "error", "timestamp not a number"));
        at_s = v;
    }
    int64_t day_ms = (at_s - at_s % 86400) * 1000;
    uint64_t n = 0, n_up = 0;
    mk_matcher mt = {.key = "monitor", .value = m->cfg->name, .is_negated = 0};
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    mk_diag d = {0};
    if (mk_db_find_series(s->db, "heartbeat", &mt, 1, "status", &ids, &n_ids, &d) != MK_OK)
        return queue_json(c, q, 500, json_pack("{s:s}", "error", d.msg));
    for (size_t i = 0; i < n_ids; i++) {
        mk_iter *it = NULL;
        if (mk_db_iter(s->db, ids[i], day_ms, day_ms + 86400000, &it, &d) != MK_OK) continue;
        const int64_t *t;
        const double *v;
        size_t k;
        while (mk_iter_next(it, &t, &v, &k, &d) == MK_OK && k > 0)
            for (size_t j = 0; j < k; j++) {
                n++;
                n_up += v[j] > 0;
            }
        mk_iter_free(it);
    }
    free(ids);
    char uptime[32];
    snprintf(uptime, sizeof uptime, "%.2f", n ? 100.0 * (double)n_up / (double)n : 0.0);
    pthread_mutex_lock(&s->mon_mu);
    double st = m->last_status;
    int64_t last_ms = m->last_beat_ms;
    pthread_mutex_unlock(&s->mon_mu);
    const char *name = isnan(st) ? "NO_DATA" : st >= 1 ? "UP" : st > 0 ? "DEGRADED" : "DOWN";
    return queue_json(c, q, 200, json_pack("{s:s,s:s,s:I}", "status", name, "uptime", uptime, "last_updated_at",
                                           (json_int_t)(last_ms / 1000)));
}

static enum MHD_Result h_kener(struct MHD_Connection *c, mk_req *q, const char *method)
{
    if (strcmp(method, "GET") == 0) return h_kener_get(c, q);
    if (strcmp(method, "POST") != 0) return queue_json(c, q, 405, json_pack("{s:s}", "error", "use GET or POST"));
    mk_hb_kener k;
    char err[256];
    if (mk_hb_kener_parse((const char *)q->body.data, q->body.len, now_ms() / 1000, &k, err, sizeof err) != 0)
        return queue_json(c, q, 400, json_pack("{s:s,s:i}", "error", err, "status", 400));
    mk_mon *m = find_mon(q->s, MK_MON_KENER, k.tag);
    if (!m) return queue_json(c, q, 400, json_pack("{s:s,s:i}", "error", "no monitor with tag found", "status", 400));
    mk_diag d = {0};
    if (store_beat(q->s, m, k.ts_s * 1000, k.status, k.latency, NAN, &d) != MK_OK)
        return queue_json(c, q, 500, json_pack("{s:s,s:i}", "error", d.msg, "status", 500));
    char msg[64];
    snprintf(msg, sizeof msg, "success at %lld", (long long)k.ts_s);
    return queue_json(c, q, 200, json_pack("{s:i,s:s}", "status", 200, "message", msg));
}

/* Kener's heartbeat monitor URL: the secret in the path is the credential;
 * each call stores an UP beat with latency 0 at the current minute. */
static enum MHD_Result h_kener_beat(struct MHD_Connection *c, mk_req *q, const char *method)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        return queue_json(c, q, 405, json_pack("{s:s}", "error", "use GET or POST"));
    if (!q->hb.token[0]) return queue_json(c, q, 400, json_pack("{s:s}", "error", "Invalid url"));
    mk_mon *m = find_mon(q->s, MK_MON_KENER, q->hb.token);
    int is_ok = 0;
    if (m && m->cfg->secret) {
        uint8_t a[MK_SHA256_BYTES], b[MK_SHA256_BYTES];
        mk_sha256(q->hb.secret, strlen(q->hb.secret), a);
        mk_sha256(m->cfg->secret, strlen(m->cfg->secret), b);
        is_ok = mk_sha256_equal(a, b);
    }
    if (!is_ok) return queue_json(c, q, 400, json_pack("{s:s}", "error", "Invalid heartbeat url"));
    int64_t t = now_ms();
    mk_diag d = {0};
    if (store_beat(q->s, m, t - t % 60000, MK_HB_UP, 0, NAN, &d) != MK_OK)
        return queue_json(c, q, 500, json_pack("{s:s}", "error", d.msg));
    return queue_json(c, q, 200, json_pack("{s:s}", "status", "OK"));
}

static enum MHD_Result h_kuma(struct MHD_Connection *c, mk_req *q)
{
    mk_mon *m = q->hb.token[0] ? find_mon(q->s, MK_MON_KUMA, q->hb.token) : NULL;
    if (!m) return queue_json(c, q, 404, json_pack("{s:b,s:s}", "ok", 0, "msg", "Monitor not found or not active."));
    double status, ping;
    char err[160];
    if (mk_hb_kuma_params(arg(q, "status"), arg(q, "ping"), &status, &ping, err, sizeof err) != 0)
        return queue_json(c, q, 404, json_pack("{s:b,s:s}", "ok", 0, "msg", err));
    mk_diag d = {0};
    if (store_beat(q->s, m, now_ms(), status, ping, NAN, &d) != MK_OK)
        return queue_json(c, q, 404, json_pack("{s:b,s:s}", "ok", 0, "msg", d.msg));
    return queue_shared(c, q, q->s->resp_kuma_ok, "application/json", kuma_ok_body);
}

static enum MHD_Result h_hc(struct MHD_Connection *c, mk_req *q, const char *method)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 && strcmp(method, "POST") != 0)
        return queue(c, q, 405, "text/plain; charset=utf-8", "Method not allowed", 18, 0);
    mk_server *s = q->s;
    mk_mon *m = q->hb.token[0] ? find_mon(s, MK_MON_HC, q->hb.token) : NULL;
    if (!m) return queue(c, q, 404, "text/plain; charset=utf-8", "not found", 9, 0);
    int64_t t = now_ms();
    double duration = NAN;
    pthread_mutex_lock(&s->mon_mu);
    if (q->hb.action == MK_HC_START) {
        m->started_ms = t;
    } else if (q->hb.action != MK_HC_LOG && m->started_ms) {
        duration = (double)(t - m->started_ms);
        m->started_ms = 0;
    }
    pthread_mutex_unlock(&s->mon_mu);
    if (q->hb.action == MK_HC_SUCCESS || q->hb.action == MK_HC_FAIL) {
        mk_diag d = {0};
        double st = q->hb.action == MK_HC_SUCCESS ? MK_HB_UP : MK_HB_DOWN;
        if (store_beat(s, m, t, st, NAN, duration, &d) != MK_OK)
            return queue(c, q, 500, "text/plain; charset=utf-8", d.msg, strlen(d.msg), 0);
    }
    return queue_shared(c, q, s->resp_hc_ok, text_ctype, hc_ok_body);
}

static const char *status_name(double st)
{
    if (isnan(st)) return NULL;
    return st >= 1 ? "up" : st > 0 ? "degraded" : "down";
}

static const char *kind_name(mk_monitor_kind k)
{
    return k == MK_MON_KUMA ? "kuma" : k == MK_MON_HC ? "healthchecks" : "kener";
}

/* The value of label "monitor" of a heartbeat rule's series ("" if none). */
static const char *hb_monitor(const mk_rule_monitor *m)
{
    for (size_t i = 0; i < m->n_labels; i++)
        if (strcmp(m->labels[i].key, "monitor") == 0) return m->labels[i].value;
    return "";
}

static int cmp_hb_monitor(const void *x, const void *y)
{
    return strcmp(hb_monitor(x), hb_monitor(y));
}

/* "alerts": what each heartbeat rule watching the monitor judges now. */
static json_t *monitor_alerts(const mk_rule_monitor *hm, size_t n_hm, const char *name)
{
    static const char *const levels[] = {"up", "degraded", "down"};
    json_t *arr = json_array();
    size_t lo = 0, hi = n_hm; /* first entry >= name */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(hb_monitor(&hm[mid]), name) < 0) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; arr && i < n_hm && strcmp(hb_monitor(&hm[i]), name) == 0; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "rule", hm[i].rule, "state",
                                             mk_inc_state_name(hm[i].state), "level",
                                             levels[hm[i].level >= 0 && hm[i].level <= 2 ? hm[i].level : 2],
                                             "reason", hm[i].reason ? hm[i].reason : ""));
    return arr;
}

static enum MHD_Result h_monitors(struct MHD_Connection *c, mk_req *q)
{
    mk_server *s = q->s;
    json_t *arr = json_array();
    mk_rule_monitor *hm = NULL;
    size_t n_hm = 0;
    mk_diag d = {0};
    if (mk_alerts_monitors(s->alerts, now_ms(), &hm, &n_hm, &d) != MK_OK) {
        json_decref(arr);
        return queue_error(c, q, 500, d.msg);
    }
    if (n_hm) qsort(hm, n_hm, sizeof *hm, cmp_hb_monitor);
    pthread_mutex_lock(&s->mon_mu);
    for (size_t i = 0; arr && i < s->n_mons; i++) {
        const mk_mon *m = &s->mons[i];
        json_t *o = json_pack("{s:s,s:s}", "name", m->cfg->name, "kind", kind_name(m->cfg->kind));
        if (!o) continue;
        if (m->last_beat_ms) {
            char iso[96];
            time_t sec = (time_t)(m->last_beat_ms / 1000);
            struct tm tm;
            gmtime_r(&sec, &tm);
            snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(m->last_beat_ms % 1000));
            json_object_set_new(o, "last_beat", json_string(iso));
            json_object_set_new(o, "last_beat_ms", json_integer(m->last_beat_ms));
        } else {
            json_object_set_new(o, "last_beat", json_null());
            json_object_set_new(o, "last_beat_ms", json_null());
        }
        const char *sn = status_name(m->last_status);
        json_object_set_new(o, "last_status", sn ? json_string(sn) : json_null());
        json_object_set_new(o, "running", json_boolean(m->started_ms != 0));
        json_object_set_new(o, "alerts", monitor_alerts(hm, n_hm, m->cfg->name));
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&s->mon_mu);
    mk_rule_monitors_free(hm, n_hm);
    return queue_json(c, q, 200, json_pack("{s:o}", "monitors", arr));
}

/* Recovers each monitor's last beat from the stored heartbeat series. */
static void load_last_beats(mk_server *s)
{
    for (size_t i = 0; i < s->n_mons; i++) {
        mk_mon *m = &s->mons[i];
        mk_matcher mt = {.key = "monitor", .value = m->cfg->name, .is_negated = 0};
        uint64_t *ids = NULL;
        size_t n_ids = 0;
        if (mk_db_find_series(s->db, "heartbeat", &mt, 1, "status", &ids, &n_ids, NULL) != MK_OK) continue;
        for (size_t j = 0; j < n_ids; j++) {
            mk_sum_iter *it = NULL;
            if (mk_db_iter_summaries(s->db, ids[j], INT64_MIN, INT64_MAX, &it, NULL) != MK_OK) continue;
            const mk_chunk_summary *sum;
            int is_dec, has;
            while (mk_sum_iter_next(it, &sum, &is_dec, &has, NULL) == MK_OK && has) {
                if (sum->count && sum->last_ts_ms >= m->last_beat_ms) {
                    m->last_beat_ms = sum->last_ts_ms;
                    m->last_status = sum->last;
                }
            }
            mk_sum_iter_free(it);
        }
        free(ids);
    }
}

/* ---- alerts: /api/incidents, /api/rules, /api/silences (alerts.c) -------- */

static enum MHD_Result h_alerts(struct MHD_Connection *c, mk_req *q, const char *method)
{
    mk_alerts_arg *args = q->n_url_args ? calloc(q->n_url_args, sizeof *args) : NULL;
    if (q->n_url_args && !args) return queue_error(c, q, 500, "out of memory");
    for (size_t i = 0; i < q->n_url_args; i++) args[i] = (mk_alerts_arg){q->args[i].key, q->args[i].val};
    json_t *out = NULL;
    int code = mk_alerts_handle(q->s->alerts, method, q->path ? q->path : "/", args, q->n_url_args,
                                (const char *)q->body.data, q->body.len, &out);
    free(args);
    if (!out) return queue_empty(c, q, code);
    return queue_json(c, q, code, out);
}

/* ---- notifications: /api/channels, /api/notifications (notify/) ----------- */

static enum MHD_Result h_notify(struct MHD_Connection *c, mk_req *q, const char *method)
{
    mk_notify *n = q->s->notify;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return queue_error(c, q, 405, "use GET");
    if (q->r == R_CHANNELS)
        return queue_json(c, q, 200, n ? mk_notify_channels_json(n) : json_pack("{s:[],s:[]}", "channels", "routes"));
    const char *inc = arg(q, "incident"), *lim = arg(q, "limit");
    char *end = NULL;
    unsigned long long id = inc ? strtoull(inc, &end, 10) : 0;
    if (inc && (!*inc || *end)) return queue_error(c, q, 400, "incident: expected an incident id");
    unsigned long long limit = lim ? strtoull(lim, &end, 10) : 0;
    if (lim && (!*lim || *end)) return queue_error(c, q, 400, "limit: expected a whole number");
    if (!n) return queue_json(c, q, 200, json_pack("{s:[]}", "notifications"));
    return queue_json(c, q, 200, mk_notify_log_json(n, id, arg(q, "channel"), arg(q, "status"), (size_t)limit));
}

/* Silences as the notifier asks for them: the API's silences, and the
 * status page's maintenance windows for the incident's monitor (or service). */
static int notify_silenced(void *ctx, const char *rule, const mk_label *labels, size_t n_labels, int64_t now)
{
    mk_server *s = ctx;
    if (mk_alerts_is_silenced(s->alerts, rule, labels, n_labels, now)) return 1;
    const mk_web_config *wc = s->cfg->status_page;
    if (!wc) return 0;
    int has_name = 0;
    for (size_t i = 0; i < n_labels; i++)
        if (!strcmp(labels[i].key, "monitor") || !strcmp(labels[i].key, "service")) {
            has_name = 1;
            if (mk_web_in_maintenance(wc, labels[i].value, now)) return 1;
        }
    return !has_name && mk_web_in_maintenance(wc, "", now); /* a window over everything */
}

static void notify_kick(void *ctx) { mk_notify_kick(ctx); }

/* Starts the notifier when the config has channels (parsed again from the
 * kept text; `config check` already reported any problem). */
static mk_err notify_start(mk_server *s, const mk_config *cfg, mk_diag *diag)
{
    if (!cfg->has_channels || !cfg->yaml_text) return MK_OK;
    mk_notify_config nc;
    char *errs = NULL;
    if (mk_notify_config_parse_text(&nc, cfg->yaml_text, cfg->yaml_len, &errs) != 0) {
        mk_err e = mk_diag_set(diag, MK_EINVAL, "notification config: %s", errs ? errs : "invalid");
        free(errs);
        mk_notify_config_free(&nc);
        return e;
    }
    size_t k = strlen(cfg->data_dir) + 32;
    char *dir = malloc(k);
    if (!dir) {
        mk_notify_config_free(&nc);
        return mk_diag_set(diag, MK_ENOMEM, "out of memory");
    }
    snprintf(dir, k, "%s/notifications", cfg->data_dir);
    mk_notify_opts o = {0};
    o.log_dir = dir;
    o.n_workers = 4; /* a hanging command or slow receiver holds one until its timeout */
    o.is_silenced = notify_silenced;
    o.silence_ctx = s;
    mk_err e = mk_notify_open(mk_alerts_store(s->alerts), &nc, &o, &s->notify, diag);
    mk_notify_config_free(&nc);
    free(dir);
    if (e == MK_OK) {
        mk_alerts_set_outbox_hook(s->alerts, notify_kick, s->notify);
        mk_notify_kick(s->notify); /* records left by the last run */
    }
    return e;
}

static void notify_stop(mk_server *s)
{
    if (!s->notify) return;
    mk_alerts_set_outbox_hook(s->alerts, NULL, NULL);
    mk_notify_close(s->notify);
    s->notify = NULL;
}

/* ---- /metrics ------------------------------------------------------------ */

static uint64_t dir_bytes(const char *dir, uint64_t *n_files, const char *suffix)
{
    DIR *d = opendir(dir);
    uint64_t total = 0;
    if (!d) return 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < sl || strcmp(e->d_name + n - sl, suffix) != 0) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISREG(st.st_mode)) {
            total += (uint64_t)st.st_size;
            if (n_files) (*n_files)++;
        }
    }
    closedir(d);
    return total;
}

static void mprintf(mk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mprintf(mk_buf *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) mk_buf_append(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static enum MHD_Result h_metrics(struct MHD_Connection *c, mk_req *q)
{
    mk_server *s = q->s;
    mk_buf b = {0};
    mk_db_stats st = {0};
    mk_db_stats_get(s->db, &st);
    mprintf(&b, "# HELP meerkat_ingest_samples_total Samples stored through the HTTP APIs.\n"
                "# TYPE meerkat_ingest_samples_total counter\nmeerkat_ingest_samples_total %" PRIu64 "\n",
            (uint64_t)atomic_load(&s->ingest_samples));
    mprintf(&b, "# HELP meerkat_ingest_rejected_total Field values refused (bad lines, strings).\n"
                "# TYPE meerkat_ingest_rejected_total counter\nmeerkat_ingest_rejected_total %" PRIu64 "\n",
            (uint64_t)atomic_load(&s->ingest_rejected));
    mprintf(&b, "# HELP meerkat_ingest_requests_total Write requests by HTTP status.\n"
                "# TYPE meerkat_ingest_requests_total counter\n");
    for (size_t k = 0; k < N_CODES; k++) {
        uint64_t v = atomic_load(&s->http_count[R_WRITE][k]) + atomic_load(&s->http_count[R_WRITE_V2][k]);
        char code[16];
        if (counted_codes[k]) snprintf(code, sizeof code, "%d", counted_codes[k]);
        else snprintf(code, sizeof code, "other");
        if (v || counted_codes[k] == 204)
            mprintf(&b, "meerkat_ingest_requests_total{code=\"%s\"} %" PRIu64 "\n", code, v);
    }
    mprintf(&b, "# HELP meerkat_series Series known to the database.\n# TYPE meerkat_series gauge\n"
                "meerkat_series %" PRIu64 "\n", st.n_series);
    mprintf(&b, "# HELP meerkat_wal_bytes Bytes in write-ahead log segments.\n# TYPE meerkat_wal_bytes gauge\n"
                "meerkat_wal_bytes %" PRIu64 "\n", st.wal_bytes);
    mprintf(&b, "# HELP meerkat_head_samples Samples in memory not yet sealed into blocks.\n"
                "# TYPE meerkat_head_samples gauge\nmeerkat_head_samples %" PRIu64 "\n", st.n_head_samples);
    mprintf(&b, "# HELP meerkat_head_bytes Memory held by the head.\n# TYPE meerkat_head_bytes gauge\n"
                "meerkat_head_bytes %" PRIu64 "\n", st.head_bytes);
    mprintf(&b, "# HELP meerkat_blocks Sealed block files.\n# TYPE meerkat_blocks gauge\n"
                "meerkat_blocks %" PRIu64 "\n", st.n_blocks);
    char bdir[4200];
    snprintf(bdir, sizeof bdir, "%s/blocks", s->cfg->data_dir);
    mprintf(&b, "# HELP meerkat_block_bytes Bytes in sealed block files.\n# TYPE meerkat_block_bytes gauge\n"
                "meerkat_block_bytes %" PRIu64 "\n", dir_bytes(bdir, NULL, ".mkb"));
    mprintf(&b, "# HELP meerkat_query_duration_seconds Time to run a query and encode its answer.\n"
                "# TYPE meerkat_query_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < N_QBUCKETS; i++) {
        cum += atomic_load(&s->q_bucket[i]);
        mprintf(&b, "meerkat_query_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", qbuckets[i], cum);
    }
    cum += atomic_load(&s->q_bucket[N_QBUCKETS]);
    mprintf(&b, "meerkat_query_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    mprintf(&b, "meerkat_query_duration_seconds_sum %.6f\nmeerkat_query_duration_seconds_count %" PRIu64 "\n",
            (double)atomic_load(&s->q_sum_us) / 1e6, (uint64_t)atomic_load(&s->q_count));
    mprintf(&b, "# HELP meerkat_http_requests_total HTTP requests by route and status.\n"
                "# TYPE meerkat_http_requests_total counter\n");
    for (int r = 1; r < R__COUNT; r++)
        for (size_t k = 0; k < N_CODES; k++) {
            uint64_t v = atomic_load(&s->http_count[r][k]);
            if (!v) continue;
            char code[16];
            if (counted_codes[k]) snprintf(code, sizeof code, "%d", counted_codes[k]);
            else snprintf(code, sizeof code, "other");
            mprintf(&b, "meerkat_http_requests_total{path=\"%s\",code=\"%s\"} %" PRIu64 "\n", route_label[r],
                    code, v);
        }
    mk_alerts_metrics(s->alerts, &b);
    mk_notify_metrics(s->notify, &b);
    long rss_pages = 0, total_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &total_pages, &rss_pages) != 2) rss_pages = 0;
        fclose(f);
    }
    mprintf(&b, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n",
            (long long)rss_pages * sysconf(_SC_PAGESIZE));
    enum MHD_Result ret = queue(c, q, 200, "text/plain; version=0.0.4; charset=utf-8", (const char *)b.data,
                                b.len, 1);
    return ret;
}

/* ---- libmicrohttpd callbacks --------------------------------------------- */

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)c;
    mk_server *s = cls;
    mk_req *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->s = s;
    q->uri = strdup(uri ? uri : "/");
    atomic_fetch_add(&s->n_active, 1);
    return q;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    mk_server *s = cls;
    mk_req *q = *con_cls;
    if (!q) return;
    if (q->budget_held) atomic_fetch_sub(&s->inflight_write_bytes, q->budget_held);
    if (q->code) atomic_fetch_add(&s->http_count[q->r][code_slot(q->code)], 1);
    if (q->code >= 500 || (q->code >= 400 && q->r != R_HC && q->r != R_KUMA && q->r != R_KENER_BEAT)) {
        char code[8];
        snprintf(code, sizeof code, "%d", q->code);
        mk_slog(q->code >= 500 ? MK_SLOG_WARN : MK_SLOG_INFO, "request failed", "path", route_label[q->r],
                "code", code, (const char *)NULL);
    }
    mk_buf_free(&q->body);
    for (size_t i = 0; i < q->n_args; i++) {
        free(q->args[i].key);
        free(q->args[i].val);
    }
    free(q->args);
    free(q->uri);
    free(q->path);
    free(q);
    *con_cls = NULL;
    atomic_fetch_sub(&s->n_active, 1);
}

static int is_write_route(route r) { return r == R_WRITE || r == R_WRITE_V2; }

/* Bodies of other routes (queries, heartbeats) are small: capping them at
 * 1 MiB keeps max_connections idle clients from holding gigabytes. */
#define MK_SMALL_BODY_BYTES (1u << 20)

static uint64_t body_limit(const mk_req *q)
{
    uint64_t max = q->s->cfg->max_body_bytes;
    return is_write_route(q->r) || max < MK_SMALL_BODY_BYTES ? max : MK_SMALL_BODY_BYTES;
}

/* Takes n more bytes of the write budget; 0 when it would exceed the limit. */
static int take_budget(mk_req *q, uint64_t n)
{
    mk_server *s = q->s;
    uint64_t cur = atomic_fetch_add(&s->inflight_write_bytes, n);
    if (cur + n > s->cfg->max_inflight_write_bytes) {
        atomic_fetch_sub(&s->inflight_write_bytes, n); /* refused: give it back at once */
        return 0;
    }
    q->budget_held += n;
    return 1;
}

static enum MHD_Result on_first(struct MHD_Connection *c, mk_req *q, const char *url, const char *method)
{
    q->is_started = 1;
    q->r = route_of(url, &q->hb);
    if ((q->r == R_INCIDENTS || q->r == R_RULES || q->r == R_SILENCES) && !(q->path = strdup(url)))
        return queue_error(c, q, 500, "out of memory");
    const char *qs = strchr(q->uri, '?');
    if (qs && mk_form_parse(qs + 1, strlen(qs + 1), add_arg, q) != 0)
        return queue_error(c, q, 500, "out of memory");
    q->n_url_args = q->n_args;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        unsigned long long n = strtoull(cl, NULL, 10);
        if (n > body_limit(q)) {
            char msg[128];
            snprintf(msg, sizeof msg, "request body too large: %llu bytes, the limit is %" PRIu64, n,
                     body_limit(q));
            return queue_error(c, q, 413, msg);
        }
        if (is_write_route(q->r) && n > 0 && !take_budget(q, n))
            return queue_error(c, q, 503, "server is busy writing: retry later");
        /* one allocation for the whole body instead of growing it chunk by chunk */
        if (n > 0 && mk_buf_reserve(&q->body, (size_t)n) != MK_OK)
            return queue_error(c, q, 503, "out of memory: retry later");
    }
    (void)method;
    return MHD_YES;
}

static enum MHD_Result on_body(mk_req *q, const char *data, size_t n)
{
    if (q->is_too_large || q->is_overloaded) return MHD_YES;
    if (q->body.len + n > body_limit(q)) {
        q->is_too_large = 1;
        mk_buf_free(&q->body);
        return MHD_YES;
    }
    if (is_write_route(q->r) && q->body.len + n > q->budget_held && !take_budget(q, q->body.len + n - q->budget_held)) {
        q->is_overloaded = 1;
        mk_buf_free(&q->body);
        return MHD_YES;
    }
    if (mk_buf_append(&q->body, data, n) != MK_OK) return MHD_NO;
    return MHD_YES;
}

static int check_auth(struct MHD_Connection *c, mk_req *q, int need)
{
    const mk_config *cfg = q->s->cfg;
    if (!need || cfg->n_keys == 0) return 1;
    char key[1024];
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (mk_form_credentials(auth, arg(q, "u"), arg(q, "p"), key, sizeof key) == MK_CRED_NONE) return 0;
    int role = mk_config_key_role(cfg, key, strlen(key));
    return role == 0 ? 0 : role >= need ? 1 : -1;
}

static enum MHD_Result dispatch(struct MHD_Connection *c, mk_req *q, const char *method)
{
    if (q->is_too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body too large: the limit is %" PRIu64 " bytes", body_limit(q));
        return queue_error(c, q, 413, msg);
    }
    if (q->is_overloaded) return queue_error(c, q, 503, "server is busy writing: retry later");
    /* POST /query with a form body: its fields join the arguments. */
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if ((q->r == R_QUERY || q->r == R_KUMA || q->r == R_PING) && q->body.len && ctype &&
        strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0) {
        if (mk_form_parse((const char *)q->body.data, q->body.len, add_arg, q) != 0)
            return queue_error(c, q, 500, "out of memory");
    }
    int need = role_needed(q->r);
    if (q->r == R_KENER && strcmp(method, "GET") == 0) need = MK_ROLE_READ; /* reading a status */
    if ((q->r == R_RULES || q->r == R_SILENCES) && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        need = q->r == R_RULES ? MK_ROLE_ADMIN : MK_ROLE_WRITE;
    int ok = check_auth(c, q, need);
    if (ok == 0) {
        if (q->r == R_KENER) return queue_json(c, q, 401, json_pack("{s:s}", "error", "invalid token"));
        return queue_error(c, q, 401, "authorization failed");
    }
    if (ok < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "forbidden: this key lacks the %s role", need == MK_ROLE_ADMIN ? "admin" : "write");
        return queue_error(c, q, 403, msg);
    }
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int is_post = strcmp(method, "POST") == 0;
    switch (q->r) {
    case R_PING: return is_get || is_post ? h_ping(c, q) : queue_error(c, q, 405, "use GET or HEAD");
    case R_HEALTH: return is_get ? h_health(c, q) : queue_error(c, q, 405, "use GET");
    case R_READY: return is_get ? queue_json(c, q, 200, json_pack("{s:s}", "status", "ready"))
                                : queue_error(c, q, 405, "use GET");
    case R_METRICS: return is_get ? h_metrics(c, q) : queue_error(c, q, 405, "use GET");
    case R_WRITE:
    case R_WRITE_V2: return is_post || strcmp(method, "PUT") == 0 ? h_write(c, q) : queue_error(c, q, 405, "use POST");
    case R_QUERY: return is_get || is_post ? h_query(c, q) : queue_error(c, q, 405, "use GET or POST");
    case R_FLUSH: return is_post ? h_flush(c, q) : queue_error(c, q, 405, "use POST");
    case R_MONITORS: return is_get ? h_monitors(c, q) : queue_error(c, q, 405, "use GET");
    case R_KENER: return h_kener(c, q, method);
    case R_KUMA: return h_kuma(c, q);
    case R_HC: return h_hc(c, q, method);
    case R_KENER_BEAT: return h_kener_beat(c, q, method);
    case R_INCIDENTS:
    case R_RULES:
    case R_SILENCES: return h_alerts(c, q, method);
    case R_CHANNELS:
    case R_NOTIFICATIONS: return h_notify(c, q, method);
    default: {
        /* status page, its assets, /api/status-page and badges (web.c; own auth: public mode) */
        int web_rc = MHD_NO;
        if (mk_web_handle(c, q->s->db, q->s->cfg, q->s->alerts, method, q->uri, &q->code, &web_rc))
            return (enum MHD_Result)web_rc;
        char msg[300];
        char path[200];
        const char *qm = strchr(q->uri, '?');
        size_t n = qm ? (size_t)(qm - q->uri) : strlen(q->uri);
        snprintf(path, sizeof path, "%.*s", (int)(n > 150 ? 150 : n), q->uri);
        snprintf(msg, sizeof msg, "not found: %s %s", method, path);
        return queue_error(c, q, 404, msg);
    }
    }
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    (void)cls;
    (void)version;
    mk_req *q = *con_cls;
    if (!q) return MHD_NO; /* allocation failed in uri_log */
    if (q->code) {
        /* a response is already queued (early 413/503): swallow the rest */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!q->is_started) {
        enum MHD_Result r = on_first(c, q, url, method);
        if (q->code || r == MHD_NO) return r;
        if (*upload_data_size == 0) return MHD_YES;
    }
    if (*upload_data_size) {
        enum MHD_Result r = on_body(q, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return r;
    }
    return dispatch(c, q, method);
}

/* ---- start and stop ------------------------------------------------------ */

/* libmicrohttpd's own messages (socket errors, limits) as structured lines. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.')) msg[--n] = '\0';
    mk_slog(MK_SLOG_WARN, msg, "component", "http", (const char *)NULL);
}

/* Reads a whole PEM file into *out (malloc'ed, NUL-terminated; caller frees).
 * what names the config key in the error. Files over 1 MiB are refused: a
 * certificate chain or key is a few KiB. */
static mk_err read_pem(const char *path, const char *what, char **out, mk_diag *diag)
{
    mk_err rc = MK_OK;
    char *buf = NULL;
    size_t n = 0;
    const size_t cap = (size_t)1 << 20;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = mk_diag_set(diag, MK_EIO, "%s: cannot read '%s': %s", what, path, strerror(errno));
        goto out;
    }
    buf = malloc(cap + 1);
    if (!buf) {
        rc = mk_diag_set(diag, MK_ENOMEM, "out of memory");
        goto out;
    }
    n = fread(buf, 1, cap + 1, f);
    if (ferror(f)) {
        rc = mk_diag_set(diag, MK_EIO, "%s: cannot read '%s': %s", what, path, strerror(errno));
        goto out;
    }
    if (n > cap || n == 0 || memchr(buf, '\0', n)) {
        rc = mk_diag_set(diag, MK_EINVAL, "%s: '%s' is %s, not a PEM file", what, path,
                         n == 0 ? "empty" : n > cap ? "over 1 MiB" : "binary");
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
out:
    if (f) fclose(f);
    if (buf) {
        memset(buf, 0, n); /* may hold part of a private key */
        free(buf);
    }
    return rc;
}

static void free_secret(char *p)
{
    if (!p) return;
    memset(p, 0, strlen(p));
    free(p);
}

mk_err mk_server_start(mk_db *db, const mk_config *cfg, mk_server **out, mk_diag *diag)
{
    *out = NULL;
    char host[256];
    unsigned port;
    mk_err rc = MK_OK;
    struct addrinfo *ai = NULL;
    mk_server *s = calloc(1, sizeof *s);
    if (!s) return mk_diag_set(diag, MK_ENOMEM, "out of memory");
    s->db = db;
    s->cfg = cfg;
    s->resp_kuma_ok = shared_response("application/json", kuma_ok_body);
    s->resp_hc_ok = shared_response(text_ctype, hc_ok_body);
    pthread_mutex_init(&s->mon_mu, NULL);
    pthread_mutex_init(&s->dbs_mu, NULL);
    dbs_load(s);
    if (mk_config_parse_listen(cfg->listen, host, sizeof host, &port) != 0) {
        rc = mk_diag_set(diag, MK_EINVAL, "listen: '%s' is not HOST:PORT", cfg->listen);
        goto out;
    }
    /* HTTPS: the config parser guarantees both paths or neither. A missing
     * TLS build is refused, never silently served as plain HTTP. */
    const int is_tls = cfg->tls_cert_file != NULL && cfg->tls_key_file != NULL;
    if (is_tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            rc = mk_diag_set(diag, MK_EINVAL,
                             "tls_cert_file/tls_key_file are set but the installed libmicrohttpd "
                             "was built without TLS (GnuTLS) support");
            goto out;
        }
        if ((rc = read_pem(cfg->tls_cert_file, "tls_cert_file", &s->tls_cert_pem, diag)) != MK_OK ||
            (rc = read_pem(cfg->tls_key_file, "tls_key_file", &s->tls_key_pem, diag)) != MK_OK)
            goto out;
    }
    if (cfg->n_monitors) {
        s->mons = calloc(cfg->n_monitors, sizeof *s->mons);
        if (!s->mons) {
            rc = mk_diag_set(diag, MK_ENOMEM, "out of memory");
            goto out;
        }
        s->n_mons = cfg->n_monitors;
        for (size_t i = 0; i < s->n_mons; i++) {
            s->mons[i].cfg = &cfg->monitors[i];
            s->mons[i].last_status = NAN;
        }
        if ((rc = index_mons(s, diag)) != MK_OK) goto out;
        load_last_beats(s);
    }
    if ((rc = mk_alerts_open(db, cfg->data_dir, &cfg->rules, &s->alerts, diag)) != MK_OK) goto out;
    if ((rc = notify_start(s, cfg, diag)) != MK_OK) goto out;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    int g = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &ai);
    if (g != 0 || !ai) {
        rc = mk_diag_set(diag, MK_EINVAL, "listen: cannot resolve '%s': %s", host, gai_strerror(g));
        goto out;
    }
    /* poll(), not select(): select cannot watch a descriptor past
     * FD_SETSIZE (1024), which a busy server reaches. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (is_tls) flags |= MHD_USE_TLS;
    /* Without TLS the two HTTPS options are replaced by no-op MHD_OPTION_ARRAY
     * entries with an empty array, so there is one call for both modes. */
    static const struct MHD_OptionItem no_opts[] = {{MHD_OPTION_END, 0, NULL}};
    /* the logger first: libmicrohttpd logs option problems as it parses them */
    s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, access_cb, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->request_timeout_s,
                            /* libmicrohttpd zeroes a connection's whole pool after
                             * every request: 256 KiB cost a heartbeat more than
                             * its own work (bench_heartbeats). 64 KiB still holds
                             * a 32 KiB request line and headers; bodies stream. */
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 128u,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_log, s,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            is_tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_ARRAY,
                            is_tls ? (const void *)s->tls_cert_pem : (const void *)no_opts,
                            is_tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_ARRAY,
                            is_tls ? (const void *)s->tls_key_pem : (const void *)no_opts,
                            MHD_OPTION_END);
    if (!s->d) {
        rc = mk_diag_set(diag, MK_EIO, "cannot listen on %s (address in use, or not allowed?%s)", cfg->listen,
                         is_tls ? " Or the TLS certificate and key are not a valid PEM pair" : "");
        goto out;
    }
    const union MHD_DaemonInfo *inf = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = inf ? inf->port : port;
    *out = s;
    s = NULL;
out:
    if (ai) freeaddrinfo(ai);
    if (s) {
        notify_stop(s);
        mk_alerts_close(s->alerts);
        pthread_mutex_destroy(&s->mon_mu);
        pthread_mutex_destroy(&s->dbs_mu);
        for (size_t i = 0; i < s->n_dbs; i++) free(s->dbs[i]);
        free(s->dbs);
        free(s->mons);
        free(s->mon_slot);
        free(s->tls_cert_pem);
        free_secret(s->tls_key_pem);
        free_shared_responses(s);
        free(s);
    }
    return rc;
}

unsigned mk_server_port(const mk_server *s) { return s->port; }

void mk_server_stop(mk_server *s, int64_t wait_ms)
{
    if (!s) return;
    MHD_socket lfd = MHD_quiesce_daemon(s->d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    /* Let requests already being served finish (idle keep-alive connections
     * hold no request and are simply closed). */
    for (int64_t waited = 0; atomic_load(&s->n_active) > 0 && waited < wait_ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->d);
    /* no request runs any more: stop evaluating, then close the incident
     * log (before the caller closes the database the engine reads);
     * the notifier first: it reads the incident store */
    notify_stop(s);
    mk_alerts_close(s->alerts);
    pthread_mutex_destroy(&s->mon_mu);
    pthread_mutex_destroy(&s->dbs_mu);
    for (size_t i = 0; i < s->n_dbs; i++) free(s->dbs[i]);
    free(s->dbs);
    free(s->mons);
    free(s->mon_slot);
    free(s->tls_cert_pem);
    free_secret(s->tls_key_pem);
    free_shared_responses(s);
    free(s);
}

/*
 * server/hb.c — heartbeat URL routing and body parsing (see hb.h).
 */
#include "hb.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

/* Copies the segment s[0..n) into out if it is a valid token. */
static int take_token(const char *s, size_t n, char *out)
{
    if (n == 0 || n > MK_HB_TOKEN_MAX) return -1;
    for (size_t i = 0; i < n; i++)
        if (!is_token_char((unsigned char)s[i])) return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int mk_hb_route_parse(const char *path, mk_hb_route *r)
{
    memset(r, 0, sizeof *r);
    if (strcmp(path, "/api/status") == 0 || strcmp(path, "/api/status/") == 0) {
        r->kind = MK_HB_KENER;
        return 1;
    }
    if (strncmp(path, "/api/push/", 10) == 0) {
        const char *t = path + 10;
        size_t n = strlen(t);
        if (n > 0 && t[n - 1] == '/') n--;
        if (take_token(t, n, r->token) != 0) return -1;
        r->kind = MK_HB_KUMA;
        return 1;
    }
    if (strncmp(path, "/api/heartbeat/", 15) == 0 || strncmp(path, "/ext/heartbeat/", 15) == 0) {
        /* v3 joins tag and secret with ':', v4 with '/' */
        const char *t = path + 15;
        const char *sep = strrchr(t, path[1] == 'a' ? ':' : '/');
        r->kind = MK_HB_KENER_BEAT;
        if (!sep || take_token(t, (size_t)(sep - t), r->token) != 0 ||
            take_token(sep + 1, strlen(sep + 1), r->secret) != 0) {
            r->token[0] = r->secret[0] = '\0';
            return -1;
        }
        return 1;
    }
    if (strncmp(path, "/hc/", 4) == 0) {
        const char *t = path + 4;
        const char *slash = strchr(t, '/');
        size_t n = slash ? (size_t)(slash - t) : strlen(t);
        if (take_token(t, n, r->token) != 0) return -1;
        r->kind = MK_HB_HC;
        r->action = MK_HC_SUCCESS;
        if (!slash || slash[1] == '\0') return 1;
        const char *a = slash + 1;
        if (strcmp(a, "start") == 0) {
            r->action = MK_HC_START;
        } else if (strcmp(a, "fail") == 0) {
            r->action = MK_HC_FAIL;
        } else if (strcmp(a, "log") == 0) {
            r->action = MK_HC_LOG;
        } else {
            /* /<exit status>, 0..255, digits only */
            size_t len = strlen(a);
            if (len == 0 || len > 3) return -1;
            int v = 0;
            for (size_t i = 0; i < len; i++) {
                if (a[i] < '0' || a[i] > '9') return -1;
                v = v * 10 + (a[i] - '0');
            }
            if (v > 255) return -1;
            r->exit_status = v;
            r->action = v == 0 ? MK_HC_SUCCESS : MK_HC_FAIL;
        }
        return 1;
    }
    return 0;
}

int mk_hb_kuma_params(const char *status, const char *ping, double *status_out, double *ping_ms,
                      char *err, size_t err_cap)
{
    *status_out = (!status || strcmp(status, "up") == 0) ? MK_HB_UP : MK_HB_DOWN;
    *ping_ms = NAN;
    if (ping && *ping) {
        char *end = NULL;
        double v = strtod(ping, &end);
        if (end == ping || *end != '\0' || !(v >= 0 && v <= 1e11)) {
            snprintf(err, err_cap, "Invalid ping value (must be a number between 0 and 100000000000)");
            return -1;
        }
        *ping_ms = v;
    }
    return 0;
}

int mk_hb_kener_parse(const char *body, size_t n, int64_t now_s, mk_hb_kener *out, char *err,
                      size_t err_cap)
{
    json_error_t je;
    int rc = -1;
    memset(out, 0, sizeof *out);
    json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, err_cap, "invalid JSON body: %s (line %d, column %d)", je.text, je.line,
                 je.column);
        goto out;
    }
    if (!json_is_object(root)) {
        snprintf(err, err_cap, "body must be a JSON object");
        goto out;
    }
    const char *st = json_string_value(json_object_get(root, "status"));
    if (!st) {
        snprintf(err, err_cap, "status missing");
        goto out;
    }
    if (strcmp(st, "UP") == 0) out->status = MK_HB_UP;
    else if (strcmp(st, "DOWN") == 0) out->status = MK_HB_DOWN;
    else if (strcmp(st, "DEGRADED") == 0) out->status = MK_HB_DEGRADED;
    else {
        snprintf(err, err_cap, "status must be UP, DOWN or DEGRADED");
        goto out;
    }
    json_t *lat = json_object_get(root, "latency");
    if (!lat || !json_is_number(lat) || !isfinite(json_number_value(lat))) {
        snprintf(err, err_cap, "latency missing or not a number");
        goto out;
    }
    out->latency = json_number_value(lat);
    int64_t ts = now_s;
    json_t *jts = json_object_get(root, "timestampInSeconds");
    if (jts && !json_is_null(jts)) {
        if (!json_is_number(jts) || !isfinite(json_number_value(jts)) ||
            fabs(json_number_value(jts)) > 1e15) {
            snprintf(err, err_cap, "timestampInSeconds not a number");
            goto out;
        }
        ts = (int64_t)json_number_value(jts);
    }
    /* Kener keeps one row per minute: the timestamp is snapped to its minute. */
    ts -= ((ts % 60) + 60) % 60;
    if (ts > now_s) {
        snprintf(err, err_cap, "timestampInSeconds is in future");
        goto out;
    }
    if (ts < now_s - 90 * 86400) {
        snprintf(err, err_cap, "timestampInSeconds is older than 90days");
        goto out;
    }
    out->ts_s = ts;
    const char *tag = json_string_value(json_object_get(root, "tag"));
    if (!tag || !*tag) {
        snprintf(err, err_cap, "tag missing");
        goto out;
    }
    if (strlen(tag) > MK_HB_TOKEN_MAX) {
        snprintf(err, err_cap, "no monitor with tag found");
        goto out;
    }
    strcpy(out->tag, tag);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

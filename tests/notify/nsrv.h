/*
 * tests/notify/nsrv.h — the real `meerkat serve` with a notification config,
 * for the notification integration, crash and Alertmanager tests
 * (header-only). Config text may hold %A %B %C %D: replaced by the ports of
 * up to four loopback receivers (tests/notify/recv.h), and %T by the test's
 * scratch directory. Waits are bounded polls.
 */
#ifndef MK_TEST_NOTIFY_NSRV_H
#define MK_TEST_NOTIFY_NSRV_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "../integration/test_server_util.h"
#include "recv.h"

typedef struct nsrv {
    char *dir;          /* data dir (owned) */
    char cfg[4200];
    srv s;
    recv_srv r[4];
    size_t n_r;
} nsrv;

static inline int64_t ns_wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static inline void ns_fail_log(nsrv *x, const char *what)
{
    char *log = srv_read_file(x->s.log_path);
    fprintf(stderr, "%s; server log:\n%s\n", what, log);
    free(log);
}

/* Writes the config (placeholders replaced) to x->cfg. */
static inline void ns_write_cfg(nsrv *x, const char *tmpl)
{
    FILE *f = fopen(x->cfg, "w");
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '%' && p[1] >= 'A' && p[1] <= 'D') {
            fprintf(f, "%u", x->r[p[1] - 'A'].port);
            p++;
        } else if (p[0] == '%' && p[1] == 'T') {
            fputs(x->dir, f);
            p++;
        } else {
            fputc(*p, f);
        }
    }
    fclose(f);
}

/* Receivers first (n_recv of them), then the server. 0 on success. */
static inline int ns_start(nsrv *x, const char *name, size_t n_recv, const char *cfg)
{
    memset(x, 0, sizeof *x);
    x->dir = mk_test_dir(name);
    mk_test_rmrf(x->dir);
    snprintf(x->cfg, sizeof x->cfg, "%s.yaml", x->dir);
    for (size_t i = 0; i < n_recv; i++)
        if (recv_start(&x->r[i], 0) != 0) return -1;
    x->n_r = n_recv;
    ns_write_cfg(x, cfg);
    if (srv_start(&x->s, x->dir, x->cfg, NULL) != 0) {
        ns_fail_log(x, "server did not start");
        return -1;
    }
    return 0;
}

static inline int ns_restart(nsrv *x)
{
    if (srv_start(&x->s, x->dir, x->cfg, NULL) != 0) {
        ns_fail_log(x, "server did not restart");
        return -1;
    }
    return 0;
}

/* Stops the server (SIGTERM) and the receivers; returns the exit status. */
static inline int ns_stop(nsrv *x, int is_cleanup)
{
    int st = x->s.pid ? srv_stop(&x->s, SIGTERM, 30000) : 0;
    char *log = srv_read_file(x->s.log_path);
    if (strstr(log, "runtime error") || strstr(log, "AddressSanitizer")) {
        fprintf(stderr, "sanitizer report in the server log:\n%s\n", log);
        st = 99;
    }
    free(log);
    for (size_t i = 0; i < x->n_r; i++) recv_stop(&x->r[i]);
    x->n_r = 0;
    if (is_cleanup) {
        mk_test_rmrf(x->dir);
        char p[4200];
        snprintf(p, sizeof p, "%s.serve.log", x->dir);
        unlink(p);
        unlink(x->cfg);
    }
    free(x->dir);
    x->dir = NULL;
    return st;
}

/* One request; the body parsed as JSON into *js when js is not NULL. */
static inline int ns_call(nsrv *x, const char *method, const char *target, const char *body, json_t **js)
{
    mk_httpc c;
    mk_httpc_resp r;
    mk_httpc_init(&c, "127.0.0.1", x->s.port);
    c.timeout_ms = 10000;
    int st = -1;
    if (mk_httpc_request(&c, method, target, body ? "Content-Type: text/plain\r\n" : NULL, body,
                         body ? strlen(body) : 0, &r) == 0) {
        st = r.status;
        if (js) *js = r.body_len ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
        mk_httpc_resp_free(&r);
    }
    mk_httpc_close(&c);
    return st;
}

/* Writes line protocol (ms timestamps, db "notify"); returns the status. */
static inline int ns_write(nsrv *x, const char *lp)
{
    return ns_call(x, "POST", "/write?db=notify&precision=ms", lp, NULL);
}

/* Waits until receiver i has seen at least n requests to path (NULL = any). */
static inline int ns_wait_recv(nsrv *x, size_t i, const char *path, size_t n, int timeout_ms)
{
    int64_t until = ns_wall_ms() + timeout_ms;
    while (recv_count(&x->r[i], path) < n) {
        if (ns_wall_ms() > until) return -1;
        srv_sleep_ms(20);
    }
    return 0;
}

/* Entries of GET /api/notifications?query (new reference to the array). */
static inline json_t *ns_log(nsrv *x, const char *query)
{
    char t[512];
    snprintf(t, sizeof t, "/api/notifications%s%s", query && *query ? "?" : "", query ? query : "");
    json_t *js = NULL;
    if (ns_call(x, "GET", t, NULL, &js) != 200 || !js) return json_array();
    json_t *a = json_incref(json_object_get(js, "notifications"));
    json_decref(js);
    return a ? a : json_array();
}

/* Waits until the delivery log has an entry with this channel and status. */
static inline json_t *ns_wait_log(nsrv *x, const char *channel, const char *status, int timeout_ms)
{
    char q[300];
    snprintf(q, sizeof q, "channel=%s&status=%s", channel, status);
    int64_t until = ns_wall_ms() + timeout_ms;
    for (;;) {
        json_t *a = ns_log(x, q);
        if (json_array_size(a)) {
            json_t *e = json_incref(json_array_get(a, 0));
            json_decref(a);
            return e;
        }
        json_decref(a);
        if (ns_wall_ms() > until) return NULL;
        srv_sleep_ms(50);
    }
}

#endif

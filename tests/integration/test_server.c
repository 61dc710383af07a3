/*
 * tests/integration/test_server.c — runs the real `meerkat serve` ($MK_BIN)
 * on a free loopback port and talks HTTP to it (server/httpc.c, a tiny
 * HTTP/1.1 client), plus the real `influx` CLI when it is installed.
 *
 * References are independent of the server: points the test generated
 * itself (fixed, printed seed) read back with `meerkat dump` after a
 * SIGTERM shutdown, hand-computed query answers, InfluxDB's documented
 * status codes and messages, and the NIST SHA-256 of "abc" for a hashed key.
 */
#include "testutil.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <zlib.h>

#include "test_server_util.h"

#define SEED 20261202u
#define T0_S 1764547200LL /* 2025-12-01T00:00:00Z */

/* ---- helpers ---------------------------------------------------------- */

typedef struct ctx {
    char *dir;
    char cfg[4200];
    srv s;
    mk_httpc c;
} ctx;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Starts a server over a fresh dir; cfg_text may be NULL (no config). */
static void start(ctx *x, const char *name, const char *cfg_text, const char *env)
{
    x->dir = mk_test_dir(name);
    mk_test_rmrf(x->dir); /* `serve` creates it */
    if (cfg_text) {
        snprintf(x->cfg, sizeof x->cfg, "%s.yaml", x->dir);
        write_file(x->cfg, cfg_text);
    }
    if (srv_start(&x->s, x->dir, cfg_text ? x->cfg : NULL, env) != 0) {
        char *log = srv_read_file(x->s.log_path);
        print_error("server did not start; log:\n%s\n", log);
        free(log);
        fail();
    }
    mk_httpc_init(&x->c, "127.0.0.1", x->s.port);
}

static void stop(ctx *x)
{
    mk_httpc_close(&x->c);
    int st = srv_stop(&x->s, SIGTERM, 30000);
    char *log = srv_read_file(x->s.log_path);
    if (st != 0 || strstr(log, "runtime error") || strstr(log, "AddressSanitizer")) {
        print_error("server exit status %d; log:\n%s\n", st, log);
        free(log);
        fail();
    }
    assert_non_null(strstr(log, "msg=\"stopped\""));
    free(log);
}

static void cleanup(ctx *x)
{
    mk_test_rmrf(x->dir);
    char p[4200];
    snprintf(p, sizeof p, "%s.serve.log", x->dir);
    unlink(p);
    if (x->cfg[0]) unlink(x->cfg);
    free(x->dir);
}

static mk_httpc_resp req(ctx *x, const char *method, const char *target, const char *headers, const char *body,
                         size_t n)
{
    mk_httpc_resp r;
    if (mk_httpc_request(&x->c, method, target, headers, body, n, &r) != 0) {
        print_error("%s %s: no answer\n", method, target);
        fail();
    }
    return r;
}

/* The status code of "GET target" sent over a fresh connection with a
 * plain socket (mk_httpc caps request heads at 8 KiB), or -1. The socket
 * is closed after the status line, so the server may not have read all of
 * a refused request. */
static int raw_get_status(unsigned port, const char *target)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int status = -1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) goto out;
    const char *parts[3] = {"GET ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"};
    for (int i = 0; i < 3; i++)
        for (size_t off = 0, n = strlen(parts[i]); off < n;) {
            ssize_t w = send(fd, parts[i] + off, n - off, MSG_NOSIGNAL);
            if (w <= 0) goto read; /* refused early: the answer may be there */
            off += (size_t)w;
        }
read:;
    char buf[64];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    if (strncmp(buf, "HTTP/1.1 ", 9) == 0) status = atoi(buf + 9);
out:
    if (fd >= 0) close(fd);
    return status;
}

/* Expects status; when want_in is given, the body must contain it. */
static void expect(ctx *x, const char *method, const char *target, const char *headers, const char *body,
                   int status, const char *want_in)
{
    mk_httpc_resp r = req(x, method, target, headers, body, body ? strlen(body) : 0);
    if (r.status != status || (want_in && !strstr(r.body, want_in))) {
        print_error("%s %s: got %d %s; want %d containing '%s'\n", method, target, r.status, r.body, status,
                    want_in ? want_in : "");
        mk_httpc_resp_free(&r);
        fail();
    }
    mk_httpc_resp_free(&r);
}

/* `meerkat dump --data dir selector` parsed into (ts_ms, value) pairs. */
typedef struct pt {
    int64_t ts_ms;
    double v;
} pt;

static size_t dump(const char *dir, const char *selector, pt *out, size_t cap, char **text)
{
    const char *args[] = {"dump", "--data", dir, selector, "--from", "0", NULL};
    int st;
    char *o = srv_run(args, &st);
    assert_int_equal(st, 0);
    size_t n = 0;
    for (char *line = o; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char *sp = strrchr(line, ' ');
        if (sp && n < cap) {
            out[n].ts_ms = strtoll(sp + 1, NULL, 10);
            *sp = '\0';
            char *eq = strrchr(line, '=');
            out[n].v = eq ? strtod(eq + 1, NULL) : NAN;
            *sp = ' ';
            n++;
        }
        if (nl) *nl = '\n';
        line = nl ? nl + 1 : NULL;
    }
    if (text) *text = o;
    else free(o);
    return n;
}

/* ---- tests -------------------------------------------------------------- */

/* Writes generated points in 5,000-line style batches (smaller here), with
 * every precision, then checks every point through `meerkat dump`. */
static void test_write_and_read_back(void **state)
{
    (void)state;
    ctx x = {0};
    start(&x, "srv-write", NULL, NULL);
    mk_rng rng = {SEED};
    printf("seed %u\n", SEED);
    enum { N_HOSTS = 3, N_PTS = 400 };
    static pt want[N_HOSTS][N_PTS];
    mk_sbuf body = {0};
    for (int h = 0; h < N_HOSTS; h++)
        for (int i = 0; i < N_PTS; i++) {
            want[h][i].ts_ms = (T0_S + i * (h == 2 ? 60 : 10)) * 1000; /* h2 is also sent in minutes */
            want[h][i].v = (double)(int64_t)mk_rng_below(&rng, 100000) / 4.0;
        }
    /* batch 1: precision s, hosts 0 and 1 */
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < N_PTS; i++)
            mk_sb_printf(&body, "cpu,host=h%d v=%.17g %lld\n", h, want[h][i].v,
                         (long long)(want[h][i].ts_ms / 1000));
    mk_httpc_resp r = req(&x, "POST", "/write?db=bench&precision=s", NULL, mk_sb_str(&body), body.n);
    assert_int_equal(r.status, 204);
    mk_httpc_resp_free(&r);
    mk_sb_free(&body);
    /* batch 2: host 2 in ns, ms, u and m precision, a quarter each */
    const char *precs[] = {"ns", "ms", "u", "m"};
    const int64_t per_ms[] = {1000000, 1, 1000, 0};
    for (int k = 0; k < 4; k++) {
        for (int i = k * N_PTS / 4; i < (k + 1) * N_PTS / 4; i++) {
            int64_t ts = per_ms[k] ? want[2][i].ts_ms * per_ms[k] : want[2][i].ts_ms / 60000;
            mk_sb_printf(&body, "cpu,host=h2 v=%.17g %lld\n", want[2][i].v, (long long)ts);
        }
        char target[128];
        snprintf(target, sizeof target, "/write?db=bench&precision=%s", precs[k]);
        r = req(&x, "POST", target, NULL, mk_sb_str(&body), body.n);
        assert_int_equal(r.status, 204);
        mk_httpc_resp_free(&r);
        mk_sb_free(&body);
    }
    /* /api/v2/write and a prefix path */
    expect(&x, "POST", "/api/v2/write?org=o&bucket=b&precision=s", NULL, "mem,host=h0 used=5 1764547200\n", 204, NULL);
    expect(&x, "POST", "/influx/write?db=b&precision=s", NULL, "mem,host=h1 used=6 1764547200\n", 204, NULL);
    expect(&x, "POST", "/api/v2/write?org=o&precision=s", NULL, "mem,host=h1 used=6 1764547200\n", 400,
           "bucket is required");
    /* gzip body */
    const char *gz_text = "disk,host=h0 free=42 1764547200\n";
    unsigned char gz[256];
    z_stream zs = {0};
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)gz_text;
    zs.avail_in = (uInt)strlen(gz_text);
    zs.next_out = gz;
    zs.avail_out = sizeof gz;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t gz_len = sizeof gz - zs.avail_out;
    deflateEnd(&zs);
    r = req(&x, "POST", "/write?db=b&precision=s", "Content-Encoding: gzip\r\n", (const char *)gz, gz_len);
    assert_int_equal(r.status, 204);
    mk_httpc_resp_free(&r);
    stop(&x);

    static pt got[N_PTS * 2];
    for (int h = 0; h < N_HOSTS; h++) {
        char sel[64];
        snprintf(sel, sizeof sel, "cpu,host=h%d v", h);
        size_t n = dump(x.dir, sel, got, N_PTS * 2, NULL);
        assert_int_equal(n, N_PTS);
        for (size_t i = 0; i < n; i++) {
            if (got[i].ts_ms != want[h][i].ts_ms || got[i].v != want[h][i].v) {
                print_error("host %d point %zu: got %" PRId64 " %.17g want %" PRId64 " %.17g\n", h, i,
                            got[i].ts_ms, got[i].v, want[h][i].ts_ms, want[h][i].v);
                fail();
            }
        }
    }
    assert_int_equal(dump(x.dir, "mem used", got, 4, NULL), 2);
    assert_int_equal(dump(x.dir, "disk free", got, 4, NULL), 1);
    assert_true(got[0].v == 42 && got[0].ts_ms == T0_S * 1000);
    cleanup(&x);
}

static void test_error_paths(void **state)
{
    (void)state;
    ctx x = {0};
    start(&x, "srv-errors", "limits:\n  max_body_bytes: 4KiB\n  max_inflight_write_bytes: 2KiB\n", NULL);
    /* partly bad body: the good lines are kept, each bad one named with line:column */
    mk_httpc_resp r = req(&x, "POST", "/write?db=b&precision=s", NULL,
                          "ok v=1 1764547200\nbad,t=x\nok v=2 1764547210\nok v==3 1764547220\n", 63);
    assert_int_equal(r.status, 400);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    const char *e = json_string_value(json_object_get(j, "error"));
    assert_non_null(e);
    assert_true(strncmp(e, "partial write: unable to parse 'bad,t=x': ", 42) == 0);
    char v[64];
    assert_non_null(strstr(e, "(line 2, column "));
    assert_non_null(strstr(e, "unable to parse 'ok v==3 1764547220': "));
    assert_non_null(strstr(e, "(line 4, column "));
    assert_non_null(strstr(e, "dropped="));
    json_decref(j);
    mk_httpc_resp_free(&r);
    /* all bad: no "partial write" prefix, as InfluxDB */
    expect(&x, "POST", "/write?db=b", NULL, "garbage\n", 400, "{\"error\":\"unable to parse 'garbage': ");
    /* many bad lines: the list is capped and says how many more */
    mk_sbuf many = {0};
    for (int i = 0; i < 60; i++) mk_sb_printf(&many, "x%d\n", i);
    expect(&x, "POST", "/write?db=b", NULL, mk_sb_str(&many), 400, "... and 40 more errors");
    mk_sb_free(&many);
    expect(&x, "POST", "/write", NULL, "m v=1\n", 400, "{\"error\":\"database is required\"}");
    expect(&x, "POST", "/write?db=b&precision=fortnight", NULL, "m v=1\n", 400, "invalid precision");
    expect(&x, "POST", "/write?db=b", "Content-Encoding: gzip\r\n", "this is not gzip", 400, "gzip");
    /* oversized body: 413 with a JSON error */
    char *big = malloc(8192);
    memset(big, 'a', 8191);
    big[8191] = '\0';
    expect(&x, "POST", "/write?db=b", NULL, big, 413, "{\"error\":\"request body too large");
    free(big);
    /* the connection may have been closed after the early 413: start afresh */
    mk_httpc_close(&x.c);
    mk_httpc_init(&x.c, "127.0.0.1", x.s.port);
    /* back-pressure: a body over the in-flight write budget gets 503 + Retry-After */
    mk_sbuf wide = {0};
    for (int i = 0; i < 150; i++) mk_sb_printf(&wide, "bp v=%d %d\n", i, 1764547200 + i);
    r = req(&x, "POST", "/write?db=b&precision=s", NULL, mk_sb_str(&wide), wide.n);
    assert_true(wide.n > 2048 && wide.n < 4096);
    assert_int_equal(r.status, 503);
    assert_int_equal(mk_httpc_header(&r, "Retry-After", v, sizeof v), 0);
    mk_httpc_resp_free(&r);
    mk_sb_free(&wide);
    mk_httpc_close(&x.c);
    mk_httpc_init(&x.c, "127.0.0.1", x.s.port);
    expect(&x, "GET", "/no/such/thing", NULL, NULL, 404, "{\"error\":\"not found: GET /no/such/thing\"}");
    expect(&x, "GET", "/write?db=b", NULL, NULL, 405, "error");
    expect(&x, "GET", "/query?db=b", NULL, NULL, 400, "{\"error\":\"missing required parameter \\\"q\\\"\"}");
    expect(&x, "GET", "/query?db=b&q=SELEC+x", NULL, NULL, 400, "{\"error\":\"error parsing query: ");
    expect(&x, "GET", "/query?db=b&q=SELECT+v+FROM+m&params=%7Bbad", NULL, NULL, 400, "error parsing query parameters");
    /* /ping as InfluxDB 1.x answers it */
    r = req(&x, "GET", "/ping", NULL, NULL, 0);
    assert_int_equal(r.status, 204);
    assert_int_equal(mk_httpc_header(&r, "X-Influxdb-Version", v, sizeof v), 0);
    assert_int_equal(mk_httpc_header(&r, "X-Influxdb-Build", v, sizeof v), 0);
    assert_string_equal(v, "OSS");
    mk_httpc_resp_free(&r);
    expect(&x, "HEAD", "/ping", NULL, NULL, 204, NULL);
    expect(&x, "GET", "/ping?verbose=true", NULL, NULL, 200, "{\"version\":\"");
    expect(&x, "GET", "/healthz", NULL, NULL, 200, "\"status\":\"pass\"");
    expect(&x, "GET", "/ready", NULL, NULL, 200, "ready");
    /* metrics: HELP/TYPE lines and the counters of what happened above */
    r = req(&x, "GET", "/metrics", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    const char *names[] = {"meerkat_ingest_samples_total", "meerkat_ingest_requests_total", "meerkat_series",
                           "meerkat_wal_bytes", "meerkat_block_bytes", "meerkat_blocks", "meerkat_head_samples",
                           "meerkat_query_duration_seconds", "meerkat_http_requests_total",
                           "process_resident_memory_bytes"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, "# TYPE %s ", names[i]);
        if (!strstr(r.body, h)) {
            print_error("metrics lack %s:\n%s\n", h, r.body);
            fail();
        }
    }
    assert_non_null(strstr(r.body, "meerkat_ingest_samples_total 2\n"));
    assert_non_null(strstr(r.body, "meerkat_ingest_requests_total{code=\"413\"} 1\n"));
    assert_non_null(strstr(r.body, "meerkat_ingest_requests_total{code=\"503\"} 1\n"));
    assert_non_null(strstr(r.body, "meerkat_http_requests_total{path=\"other\",code=\"404\"} 1\n"));
    assert_non_null(strstr(r.body, "meerkat_query_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
    mk_httpc_resp_free(&r);
    /* request lines: 40 KB (a long Grafana query) is served; 70 KB, just
     * over the 64 KiB connection pool, is refused with 414, as the README
     * says, and the server carries on */
    for (int k = 0; k < 2; k++) {
        size_t pad = k ? 70000 : 40000;
        char *url = malloc(pad + 64);
        int n = snprintf(url, pad + 64, "/query?db=b&q=SHOW+DATABASES&pad=");
        memset(url + n, 'x', pad);
        url[n + (int)pad] = '\0';
        assert_int_equal(raw_get_status(x.s.port, url), k ? 414 : 200);
        free(url);
    }
    expect(&x, "GET", "/ping", NULL, NULL, 204, NULL);
    stop(&x);
    pt got[4];
    assert_int_equal(dump(x.dir, "ok v", got, 4, NULL), 2);
    cleanup(&x);
}

/* SHA-256("abc") from FIPS 180-4's examples: the key "abc" stored hashed. */
#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_auth(void **state)
{
    (void)state;
    ctx x = {0};
    start(&x, "srv-auth",
          "api_keys:\n"
          "  - {key: \"sha256:" ABC_SHA256 "\", role: write, name: loader}\n"
          "  - {key: r3ader, role: read}\n",
          "MEERKAT_API_KEYS=adm1n");
    const char *lp = "m v=1 1764547200\n";
    expect(&x, "POST", "/write?db=b&precision=s", NULL, lp, 401, "authorization failed");
    expect(&x, "POST", "/write?db=b&precision=s", "Authorization: Bearer wrong\r\n", lp, 401, NULL);
    expect(&x, "POST", "/write?db=b&precision=s", "Authorization: Bearer abc\r\n", lp, 204, NULL);
    expect(&x, "POST", "/write?db=b&precision=s", "Authorization: Token abc\r\n", lp, 204, NULL);
    expect(&x, "POST", "/write?db=b&precision=s", "Authorization: Token user:abc\r\n", lp, 204, NULL);
    expect(&x, "POST", "/write?db=b&precision=s&u=me&p=abc", NULL, lp, 204, NULL);
    /* Basic me:abc */
    expect(&x, "POST", "/write?db=b&precision=s", "Authorization: Basic bWU6YWJj\r\n", lp, 204, NULL);
    expect(&x, "POST", "/api/v2/write?bucket=b&precision=s", "Authorization: Token abc\r\n", lp, 204, NULL);
    expect(&x, "POST", "/write?db=b&precision=s", "Authorization: Bearer r3ader\r\n", lp, 403, "write role");
    expect(&x, "GET", "/query?db=b&q=SHOW+DATABASES", NULL, NULL, 401, NULL);
    expect(&x, "GET", "/query?db=b&q=SHOW+DATABASES", "Authorization: Bearer r3ader\r\n", NULL, 200, "{\"results\":");
    /* Grafana's empty Basic credentials count as none */
    expect(&x, "GET", "/query?db=b&q=SHOW+DATABASES", "Authorization: Basic Og==\r\n", NULL, 401, NULL);
    expect(&x, "POST", "/api/admin/flush", "Authorization: Bearer abc\r\n", NULL, 403, "admin role");
    expect(&x, "POST", "/api/admin/flush", NULL, NULL, 401, NULL);
    expect(&x, "POST", "/api/admin/flush", "Authorization: Bearer adm1n\r\n", NULL, 204, NULL);
    expect(&x, "GET", "/ping", NULL, NULL, 204, NULL);
    stop(&x);
    cleanup(&x);
}

static void test_heartbeats(void **state)
{
    (void)state;
    ctx x = {0};
    start(&x, "srv-hb",
          "api_keys: [kk]\n"
          "monitors:\n"
          "  - {name: web, kind: kuma, token: tok123}\n"
          "  - {name: backup job, kind: healthchecks, uuid: 5f3c2d1e-0000-4000-8000-000000000001}\n"
          "  - {name: api, kind: kener, tag: api}\n"
          "  - {name: cron, kind: kener, tag: cron, secret: s3cr3t}\n",
          NULL);
    /* Kener */
    const char *auth = "Authorization: Bearer kk\r\nContent-Type: application/json\r\n";
    expect(&x, "POST", "/api/status", NULL, "{\"status\":\"UP\",\"latency\":12,\"tag\":\"api\"}", 401,
           "{\"error\":\"invalid token\"}");
    expect(&x, "POST", "/api/status", "Authorization: Bearer nope\r\n", "{\"status\":\"UP\",\"latency\":12,\"tag\":\"api\"}",
           401, "invalid token");
    int64_t now_s = (int64_t)time(NULL);
    int64_t ts = now_s - 3600;
    char body[256], want[160];
    mk_httpc_resp r0;
    snprintf(body, sizeof body, "{\"status\":\"DEGRADED\",\"latency\":12.5,\"timestampInSeconds\":%lld,\"tag\":\"api\"}",
             (long long)ts);
    snprintf(want, sizeof want, "{\"status\":200,\"message\":\"success at %lld\"}", (long long)(ts - ts % 60));
    expect(&x, "POST", "/api/status", auth, body, 200, want);
    expect(&x, "POST", "/api/status", auth, "{\"status\":\"UP\",", 400, "invalid JSON body");
    expect(&x, "POST", "/api/status", auth, "[1,2]", 400, "JSON object");
    expect(&x, "POST", "/api/status", auth, "{\"latency\":1,\"tag\":\"api\"}", 400, "status missing");
    expect(&x, "POST", "/api/status", auth, "{\"status\":\"SIDEWAYS\",\"latency\":1,\"tag\":\"api\"}", 400, "status");
    expect(&x, "POST", "/api/status", auth, "{\"status\":\"UP\",\"tag\":\"api\"}", 400, "latency");
    expect(&x, "POST", "/api/status", auth, "{\"status\":\"UP\",\"latency\":1,\"tag\":\"nope\"}", 400,
           "no monitor with tag found");
    snprintf(body, sizeof body, "{\"status\":\"UP\",\"latency\":1,\"timestampInSeconds\":%lld,\"tag\":\"api\"}",
             (long long)(now_s + 86400));
    expect(&x, "POST", "/api/status", auth, body, 400, "in future");
    /* Kener's GET: the status and today's uptime (one DEGRADED beat an hour ago, if still today) */
    r0 = req(&x, "GET", "/api/status?tag=api", "Authorization: Bearer kk\r\n", NULL, 0);
    assert_int_equal(r0.status, 200);
    snprintf(want, sizeof want, "{\"status\":\"DEGRADED\",\"uptime\":\"%s\",\"last_updated_at\":%lld}",
             (ts - ts % 86400) == (now_s - now_s % 86400) ? "100.00" : "0.00", (long long)(ts - ts % 60));
    if (strstr(r0.body, want) == NULL) {
        print_error("GET /api/status: %s, want %s\n", r0.body, want);
        fail();
    }
    mk_httpc_resp_free(&r0);
    expect(&x, "GET", "/api/status?tag=nope", "Authorization: Bearer kk\r\n", NULL, 200,
           "{\"error\":\"no monitor with tag found\",\"status\":400}");
    expect(&x, "GET", "/api/status", "Authorization: Bearer kk\r\n", NULL, 400, "{\"error\":\"tag missing\"}");
    expect(&x, "GET", "/api/status?tag=api", NULL, NULL, 401, "invalid token");
    /* Kener heartbeat-monitor URLs (v3 and v4 forms): the secret is the credential */
    expect(&x, "GET", "/api/heartbeat/cron:s3cr3t", NULL, NULL, 200, "{\"status\":\"OK\"}");
    expect(&x, "POST", "/ext/heartbeat/cron/s3cr3t", NULL, NULL, 200, "{\"status\":\"OK\"}");
    expect(&x, "GET", "/api/heartbeat/cron:wrong", NULL, NULL, 400, "{\"error\":\"Invalid heartbeat url\"}");
    expect(&x, "GET", "/api/heartbeat/api:anything", NULL, NULL, 400, "{\"error\":\"Invalid heartbeat url\"}");
    expect(&x, "GET", "/api/heartbeat/cron", NULL, NULL, 400, "{\"error\":\"Invalid url\"}");
    /* Uptime Kuma */
    expect(&x, "GET", "/api/push/tok123?status=up&msg=OK&ping=12.5", NULL, NULL, 200, "{\"ok\":true}");
    srv_sleep_ms(3);
    expect(&x, "POST", "/api/push/tok123?status=down&msg=boom", NULL, NULL, 200, "{\"ok\":true}");
    expect(&x, "GET", "/api/push/unknown?status=up", NULL, NULL, 404,
           "{\"ok\":false,\"msg\":\"Monitor not found or not active.\"}");
    expect(&x, "GET", "/api/push/tok123?ping=-5", NULL, NULL, 404, "\"ok\":false");
    expect(&x, "GET", "/api/push/bad%20token", NULL, NULL, 404, "\"ok\":false");
    /* Healthchecks */
    expect(&x, "GET", "/hc/5f3c2d1e-0000-4000-8000-000000000001/start", NULL, NULL, 200, "OK");
    srv_sleep_ms(60);
    /* beats are stored at millisecond resolution (a later one in the same
     * millisecond replaces the earlier): keep them apart */
    expect(&x, "POST", "/hc/5f3c2d1e-0000-4000-8000-000000000001", NULL, "log text", 200, "OK");
    srv_sleep_ms(3);
    expect(&x, "HEAD", "/hc/5f3c2d1e-0000-4000-8000-000000000001/log", NULL, NULL, 200, NULL);
    expect(&x, "GET", "/hc/5f3c2d1e-0000-4000-8000-000000000001/0", NULL, NULL, 200, "OK");
    srv_sleep_ms(3);
    expect(&x, "GET", "/hc/5f3c2d1e-0000-4000-8000-000000000001/fail", NULL, NULL, 200, "OK");
    expect(&x, "GET", "/hc/00000000-0000-0000-0000-000000000000", NULL, NULL, 404, "not found");
    expect(&x, "GET", "/hc/5f3c2d1e-0000-4000-8000-000000000001/256", NULL, NULL, 404, NULL);
    /* the list */
    mk_httpc_resp r = req(&x, "GET", "/api/monitors", "Authorization: Bearer kk\r\n", NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    json_t *arr = json_object_get(j, "monitors");
    assert_int_equal(json_array_size(arr), 4);
    const char *want_status[] = {"down", "down", "degraded", "up"};
    for (size_t i = 0; i < 4; i++) {
        json_t *m = json_array_get(arr, i);
        const char *st = json_string_value(json_object_get(m, "last_status"));
        if (!st || strcmp(st, want_status[i]) != 0) {
            print_error("monitor %zu: %s\n", i, r.body);
            fail();
        }
    }
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 2), "last_beat_ms")),
                     (ts - ts % 60) * 1000);
    json_decref(j);
    mk_httpc_resp_free(&r);
    stop(&x);
    /* What was stored */
    pt got[8];
    size_t n = dump(x.dir, "heartbeat,monitor=web status", got, 8, NULL);
    assert_int_equal(n, 2);
    assert_true(got[0].v == 1 && got[1].v == 0);
    n = dump(x.dir, "heartbeat,monitor=web latency_ms", got, 8, NULL);
    assert_int_equal(n, 1);
    assert_true(got[0].v == 12.5);
    n = dump(x.dir, "heartbeat,monitor=api status", got, 8, NULL);
    assert_int_equal(n, 1);
    assert_true(got[0].v == 0.5 && got[0].ts_ms == (ts - ts % 60) * 1000);
    n = dump(x.dir, "heartbeat,monitor=cron status", got, 8, NULL);
    assert_true(n >= 1 && n <= 2); /* one beat per minute: two calls may share one */
    assert_true(got[0].v == 1 && got[0].ts_ms % 60000 == 0);
    n = dump(x.dir, "heartbeat,monitor=backup\\ job status", got, 8, NULL);
    assert_int_equal(n, 3); /* success, 0 = success, fail */
    assert_true(got[0].v == 1 && got[1].v == 1 && got[2].v == 0);
    n = dump(x.dir, "heartbeat,monitor=backup\\ job duration_ms", got, 8, NULL);
    assert_int_equal(n, 1); /* start -> success */
    assert_true(got[0].v >= 60 && got[0].v < 60000);

    /* A restart recovers the last beats from the database. */
    assert_int_equal(srv_start(&x.s, x.dir, x.cfg, NULL), 0);
    mk_httpc_init(&x.c, "127.0.0.1", x.s.port);
    r = req(&x, "GET", "/api/monitors", "Authorization: Bearer kk\r\n", NULL, 0);
    assert_non_null(strstr(r.body, "\"last_status\":\"degraded\""));
    mk_httpc_resp_free(&r);
    stop(&x);
    cleanup(&x);
}

/* Query over HTTP: GET, POST form (+ as space), a prefix path, params.
 * The answers are checked against hand-computed InfluxDB JSON once the
 * executor answers; while it reports "not implemented yet" only the
 * envelope is checked. */
static void test_query(void **state)
{
    (void)state;
    ctx x = {0};
    start(&x, "srv-query", NULL, NULL);
    expect(&x, "POST", "/write?db=bench&precision=s", NULL,
           "cpu,host=a v=1 1764547200\ncpu,host=a v=3 1764547260\ncpu,host=b v=10 1764547200\n"
           "cpu,host=a v=5 1764550800\n",
           204, NULL);
    const char *want_mean =
        "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"cpu\",\"columns\":[\"time\",\"mean\"],"
        "\"values\":[[1764547200,2],[1764550800,5]]}]}]}\n";
    const char *q = "SELECT mean(v) FROM cpu WHERE host='a' AND time >= 1764547200s AND time < 1764554400s "
                    "GROUP BY time(1h)";
    char target[1400], form[1024];
    size_t o = 0;
    for (const char *p = q; *p; p++) {
        if (*p == ' ') form[o++] = '+';
        else if (strchr("'()=<>", *p)) o += (size_t)snprintf(form + o, 4, "%%%02X", (unsigned char)*p);
        else form[o++] = *p;
    }
    form[o] = '\0';
    snprintf(target, sizeof target, "/query?db=bench&epoch=s&q=%s", form);
    const char *paths[] = {target, "/influx/query?db=bench&epoch=s"};
    for (int k = 0; k < 2; k++) {
        char body[1100];
        snprintf(body, sizeof body, "q=%s", form);
        mk_httpc_resp r = k == 0 ? req(&x, "GET", paths[0], NULL, NULL, 0)
                                 : req(&x, "POST", paths[1], "Content-Type: application/x-www-form-urlencoded\r\n",
                                       body, strlen(body));
        assert_int_equal(r.status, 200);
        char ct[64];
        assert_int_equal(mk_httpc_header(&r, "Content-Type", ct, sizeof ct), 0);
        assert_string_equal(ct, "application/json");
        if (strstr(r.body, "not implemented") || strcmp(r.body, "{\"results\":[]}\n") == 0)
            printf("note: executor not in yet, answer %s", r.body);
        else
            assert_string_equal(r.body, want_mean);
        mk_httpc_resp_free(&r);
    }
    /* params: $h bound from JSON */
    mk_httpc_resp r = req(&x, "GET",
                          "/query?db=bench&epoch=s&q=SELECT+v+FROM+cpu+WHERE+host%3D%24h+AND+time+%3C+1764547230s"
                          "&params=%7B%22h%22%3A%22b%22%7D",
                          NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    if (!strstr(r.body, "not implemented") && strcmp(r.body, "{\"results\":[]}\n") != 0)
        assert_string_equal(r.body, "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"cpu\",\"columns\":"
                                    "[\"time\",\"v\"],\"values\":[[1764547200,10]]}]}]}\n");
    mk_httpc_resp_free(&r);
    stop(&x);
    cleanup(&x);
}

/* The real influx CLI (Debian influxdb-client) against the server. */
static void test_influx_cli(void **state)
{
    (void)state;
    if (access("/usr/bin/influx", X_OK) != 0) {
        printf("note: /usr/bin/influx not installed, skipped\n");
        return;
    }
    ctx x = {0};
    start(&x, "srv-influx", NULL, NULL);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/influx -host 127.0.0.1 -port %u -database bench -precision s "
             "-execute 'INSERT cpu,host=a v=7 1764547200' 2>&1",
             x.s.port);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    /* an erroneous query: the CLI prints our error and exits 1 */
    snprintf(cmd, sizeof cmd, "/usr/bin/influx -host 127.0.0.1 -port %u -database bench -execute 'SELEC x' 2>&1",
             x.s.port);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    assert_non_null(strstr(out, "ERR: error parsing query: "));
    /* SHOW MEASUREMENTS and a GROUP BY time query: printed as tables once the executor lands */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/influx -host 127.0.0.1 -port %u -database bench -precision s -execute "
             "'SHOW MEASUREMENTS; SELECT mean(v) FROM cpu WHERE time >= 1764547200s AND time < 1764550800s "
             "GROUP BY time(1h)' 2>&1",
             x.s.port);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    st = pclose(p);
    if (strstr(out, "not implemented") || !strstr(out, "name:"))
        printf("note: executor not in yet: %s\n", out);
    else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        assert_non_null(strstr(out, "name: measurements"));
        assert_non_null(strstr(out, "cpu"));
        assert_non_null(strstr(out, "1764547200 7"));
    } else {
        printf("note: influx CLI said (exit %d): %s\n", WEXITSTATUS(st), out);
    }
    stop(&x);
    pt got[2];
    assert_int_equal(dump(x.dir, "cpu,host=a v", got, 2, NULL), 1);
    assert_true(got[0].v == 7 && got[0].ts_ms == T0_S * 1000);
    cleanup(&x);
}

/* SIGTERM while a request is half received: the server stops accepting,
 * finishes that request (204), seals and exits 0; the data is there. */
static void test_graceful_inflight(void **state)
{
    (void)state;
    ctx x = {0};
    start(&x, "srv-graceful", NULL, NULL);
    mk_sbuf body = {0};
    for (int i = 0; i < 2000; i++) mk_sb_printf(&body, "g,host=a v=%d %lld\n", i, T0_S + i);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)x.s.port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char head[256];
    int hl = snprintf(head, sizeof head, "POST /write?db=b&precision=s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
                      body.n);
    assert_int_equal(send(fd, head, (size_t)hl, 0), hl);
    size_t half = body.n / 2;
    assert_int_equal(send(fd, body.p, half, 0), (ssize_t)half);
    srv_sleep_ms(200);
    kill(x.s.pid, SIGTERM);
    srv_sleep_ms(200);
    /* new connections are refused by now */
    mk_httpc c2;
    mk_httpc_resp r;
    mk_httpc_init(&c2, "127.0.0.1", x.s.port);
    c2.timeout_ms = 2000;
    assert_int_not_equal(mk_httpc_request(&c2, "GET", "/ping", NULL, NULL, 0, &r), 0);
    mk_httpc_close(&c2);
    assert_int_equal(send(fd, body.p + half, body.n - half, 0), (ssize_t)(body.n - half));
    char resp[512];
    ssize_t n = recv(fd, resp, sizeof resp - 1, 0);
    assert_true(n > 0);
    resp[n] = '\0';
    assert_true(strncmp(resp, "HTTP/1.1 204", 12) == 0);
    close(fd);
    mk_sb_free(&body);
    stop(&x);
    static pt got[2100];
    assert_int_equal(dump(x.dir, "g v", got, 2100, NULL), 2000);
    for (int i = 0; i < 2000; i++) assert_true(got[i].v == i && got[i].ts_ms == (T0_S + i) * 1000);
    cleanup(&x);
}

/* `meerkat config check`: ok, and line:column of each problem. */
static void test_config_check(void **state)
{
    (void)state;
    char *dir = mk_test_dir("srv-cfg");
    char path[4200];
    snprintf(path, sizeof path, "%s/c.yaml", dir);
    write_file(path, "listen: 127.0.0.1:9999\nfsync: always\nlimits: {max_body_bytes: 1MiB}\n");
    const char *args[] = {"config", "check", path, NULL};
    int st;
    char *out = srv_run(args, &st);
    assert_int_equal(st, 0);
    assert_string_equal(out, "ok\n");
    free(out);
    write_file(path, "listen: 127.0.0.1:9999\nfsink: always\nlimits:\n  max_body_bytes: lots\n"
                     "api_keys: [\"sha256:12\"]\nfsync: sometimes\n");
    out = srv_run(args, &st);
    assert_int_equal(st, 1);
    char want[4400];
    snprintf(want, sizeof want, "%s:2:1: unknown key 'fsink'", path);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof want, "%s:4:19: limits.max_body_bytes: 'lots' is not a byte count", path);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof want, "%s:5:12: api_keys:", path);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof want, "%s:6:8: fsync: 'sometimes' is not always, interval or off", path);
    assert_non_null(strstr(out, want));
    free(out);
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_and_read_back), cmocka_unit_test(test_error_paths),
        cmocka_unit_test(test_auth),                cmocka_unit_test(test_heartbeats),
        cmocka_unit_test(test_query),               cmocka_unit_test(test_influx_cli),
        cmocka_unit_test(test_config_check),        cmocka_unit_test(test_graceful_inflight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

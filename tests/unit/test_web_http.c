/*
 * tests/unit/test_web_http.c — the status page's HTTP side (server/web.c
 * through server.c's dispatch), in process: mk_server on 127.0.0.1 port 0
 * over a temporary database, spoken to with server/httpc.h. Checks, against
 * zlib as the gzip reference and answers worked out by hand:
 *  - `/` (the embedded UI, or the "not built" page with MK_WEB=OFF): HTML,
 *    ETag + If-None-Match → 304, gzip only when accepted, and the gzip body
 *    inflates to the plain body; HEAD; unknown assets 404; POST / is not ours;
 *  - /api/status-page and badges in public mode (keys configured): without a
 *    key only public monitors, with one everything; a private badge is 404;
 *  - Kener's /api/status still answers as before (routes not taken over);
 *  - Accept-Encoding parsing (q-values, x-gzip, *).
 * Runs in well under a second; no external programs.
 */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "config.h"
#include "httpc.h"
#include "meerkat/db.h"
#include "server.h"
#include "web.h"

#define KEY "web-http-test-key"

typedef struct fixture {
    char *dir;
    mk_db *db;
    mk_config cfg;
    mk_server *srv;
    mk_httpc c;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    mk_diag d = {0};
    f->dir = mk_test_dir("web_http");
    assert_int_equal(mk_db_open(f->dir, NULL, &f->db, &d), MK_OK);
    /* a day of beats for both monitors, the last one DOWN for "secret" */
    int64_t now = (int64_t)time(NULL) * 1000;
    mk_sbuf lp = {0};
    for (int i = 0; i < 24; i++) {
        mk_sb_printf(&lp, "heartbeat,monitor=pub status=1 %" PRId64 "\n", now - (int64_t)(24 - i) * 3600000);
        mk_sb_printf(&lp, "heartbeat,monitor=secret status=%d %" PRId64 "\n", i < 23, now - (int64_t)(24 - i) * 3600000);
    }
    assert_int_equal(mk_db_write_lp(f->db, mk_sb_str(&lp), strlen(mk_sb_str(&lp)), MK_PRECISION_MS, now, NULL, NULL,
                                    NULL, &d),
                     MK_OK);
    mk_sb_free(&lp);
    char y[1024];
    snprintf(y, sizeof y,
             "listen: 127.0.0.1:0\n"
             "data_dir: %s\n"
             "api_keys: [" KEY "]\n"
             "monitors:\n"
             "  - {name: pub, kind: kuma, token: t1}\n"
             "  - {name: secret, kind: kener, tag: secret}\n"
             "status_page: {title: Test, public: [pub]}\n",
             f->dir);
    char *errs = NULL;
    assert_int_equal(mk_config_init(&f->cfg), 0);
    int n = mk_config_parse(&f->cfg, y, strlen(y), &errs);
    if (n) print_error("%s", errs);
    assert_int_equal(n, 0);
    free(errs);
    assert_int_equal(mk_server_start(f->db, &f->cfg, &f->srv, &d), MK_OK);
    mk_httpc_init(&f->c, "127.0.0.1", mk_server_port(f->srv));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mk_diag d = {0};
    mk_httpc_close(&f->c);
    mk_server_stop(f->srv, 2000);
    mk_config_free(&f->cfg);
    assert_int_equal(mk_db_close(f->db, &d), MK_OK);
    mk_test_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static mk_httpc_resp get(fixture *f, const char *method, const char *target, const char *headers)
{
    mk_httpc_resp r;
    memset(&r, 0, sizeof r);
    assert_int_equal(mk_httpc_request(&f->c, method, target, headers, NULL, 0, &r), 0);
    return r;
}

/* gzip -d with zlib (the reference): malloc'ed, *n bytes. */
static char *gunzip(const char *p, size_t n, size_t *out_n)
{
    size_t cap = 64 + n * 20;
    char *out = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
    z.next_in = (unsigned char *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = (unsigned char *)out;
    z.avail_out = (uInt)cap;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    *out_n = z.total_out;
    inflateEnd(&z);
    return out;
}

static void test_index(void **state)
{
    fixture *f = *state;
    char v[256], etag[128];
    mk_httpc_resp plain = get(f, "GET", "/", NULL);
    assert_int_equal(plain.status, 200);
    assert_int_equal(mk_httpc_header(&plain, "Content-Type", v, sizeof v), 0);
    assert_non_null(strstr(v, "text/html"));
    assert_true(strstr(plain.body, "<html") != NULL);
    assert_int_not_equal(mk_httpc_header(&plain, "Content-Encoding", v, sizeof v), 0); /* not asked for */
    if (mk_web_n_assets == 0) {
        print_message("built without the UI (MK_WEB=OFF): checking the placeholder page only\n");
        assert_non_null(strstr(plain.body, "not built"));
        mk_httpc_resp_free(&plain);
        return;
    }
    assert_int_equal(mk_httpc_header(&plain, "ETag", etag, sizeof etag), 0);
    assert_int_equal(mk_httpc_header(&plain, "Cache-Control", v, sizeof v), 0);
    assert_string_equal(v, "no-cache");

    mk_httpc_resp gz = get(f, "GET", "/", "Accept-Encoding: br;q=1, gzip;q=0.5\r\n");
    assert_int_equal(gz.status, 200);
    assert_int_equal(mk_httpc_header(&gz, "Content-Encoding", v, sizeof v), 0);
    assert_string_equal(v, "gzip");
    size_t n = 0;
    char *raw = gunzip(gz.body, gz.body_len, &n);
    assert_int_equal(n, plain.body_len);
    assert_memory_equal(raw, plain.body, n);
    free(raw);

    char h[256];
    snprintf(h, sizeof h, "If-None-Match: %s\r\n", etag);
    mk_httpc_resp nm = get(f, "GET", "/", h);
    assert_int_equal(nm.status, 304);
    assert_int_equal(nm.body_len, 0);
    mk_httpc_resp q0 = get(f, "GET", "/index.html", "Accept-Encoding: gzip;q=0, *\r\n");
    assert_int_equal(q0.status, 200);
    assert_int_not_equal(mk_httpc_header(&q0, "Content-Encoding", v, sizeof v), 0);

    /* every asset the page names is served, immutable */
    for (size_t i = 0; i < mk_web_n_assets; i++) {
        if (strncmp(mk_web_assets[i].path, "/assets/", 8) != 0) continue;
        mk_httpc_resp a = get(f, "GET", mk_web_assets[i].path, "Accept-Encoding: gzip\r\n");
        assert_int_equal(a.status, 200);
        assert_int_equal(a.body_len, mk_web_assets[i].n_gz);
        assert_int_equal(mk_httpc_header(&a, "Cache-Control", v, sizeof v), 0);
        assert_non_null(strstr(v, "immutable"));
        mk_httpc_resp_free(&a);
    }
    mk_httpc_resp_free(&plain);
    mk_httpc_resp_free(&gz);
    mk_httpc_resp_free(&nm);
    mk_httpc_resp_free(&q0);
}

static void test_routes(void **state)
{
    fixture *f = *state;
    mk_httpc_resp r = get(f, "GET", "/assets/no-such-file.js", NULL);
    assert_int_equal(r.status, 404);
    mk_httpc_resp_free(&r);
    r = get(f, "HEAD", "/", NULL);
    assert_int_equal(r.status, 200);
    mk_httpc_resp_free(&r);
    r = get(f, "POST", "/", NULL); /* not the UI's: the server's own 404 */
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "not found"));
    mk_httpc_resp_free(&r);
    /* Kener's GET /api/status keeps its meaning (the page's JSON is /api/status-page) */
    r = get(f, "GET", "/api/status", "Authorization: Bearer " KEY "\r\n");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "tag missing"));
    mk_httpc_resp_free(&r);
}

static void test_public_mode(void **state)
{
    fixture *f = *state;
    mk_httpc_resp anon = get(f, "GET", "/api/status-page", NULL);
    assert_int_equal(anon.status, 200);
    assert_non_null(strstr(anon.body, "\"pub\""));
    assert_null(strstr(anon.body, "secret"));
    assert_non_null(strstr(anon.body, "\"is_public_view\":true"));
    mk_httpc_resp wrong = get(f, "GET", "/api/status-page", "Authorization: Bearer nope\r\n");
    assert_null(strstr(wrong.body, "secret")); /* a wrong key is the public view, not an error */
    mk_httpc_resp full = get(f, "GET", "/api/status-page", "Authorization: Bearer " KEY "\r\nAccept-Encoding: gzip\r\n");
    assert_int_equal(full.status, 200);
    size_t n = 0;
    char v[64];
    char *body = mk_httpc_header(&full, "Content-Encoding", v, sizeof v) == 0 ? gunzip(full.body, full.body_len, &n)
                                                                            : strdup(full.body);
    body = realloc(body, n + 1);
    body[n] = '\0';
    assert_non_null(strstr(body, "\"secret\""));
    assert_non_null(strstr(body, "\"state\":\"DOWN\"")); /* secret's last beat was DOWN */
    free(body);

    mk_httpc_resp b = get(f, "GET", "/badge/pub/status.svg", NULL);
    assert_int_equal(b.status, 200);
    assert_int_equal(mk_httpc_header(&b, "Content-Type", v, sizeof v), 0);
    assert_non_null(strstr(v, "image/svg+xml"));
    assert_non_null(strstr(b.body, "<title>pub: up</title>"));
    mk_httpc_resp u = get(f, "GET", "/badge/pub/uptime.svg", NULL);
    assert_non_null(strstr(u.body, "<title>uptime 30d: 100.00%</title>"));
    mk_httpc_resp s = get(f, "GET", "/badge/secret/status.svg", NULL);
    assert_int_equal(s.status, 404);
    mk_httpc_resp sk = get(f, "GET", "/badge/secret/status.svg", "Authorization: Bearer " KEY "\r\n");
    assert_int_equal(sk.status, 200);
    assert_non_null(strstr(sk.body, "secret: down"));
    mk_httpc_resp x = get(f, "GET", "/badge/pub/other.svg", NULL);
    assert_int_equal(x.status, 404);
    mk_httpc_resp_free(&anon);
    mk_httpc_resp_free(&wrong);
    mk_httpc_resp_free(&full);
    mk_httpc_resp_free(&b);
    mk_httpc_resp_free(&u);
    mk_httpc_resp_free(&s);
    mk_httpc_resp_free(&sk);
    mk_httpc_resp_free(&x);
}

static void test_accept_encoding(void **state)
{
    (void)state;
    assert_false(mk_web_accepts_gzip(NULL));
    assert_false(mk_web_accepts_gzip(""));
    assert_true(mk_web_accepts_gzip("gzip"));
    assert_true(mk_web_accepts_gzip("deflate, gzip, br"));
    assert_true(mk_web_accepts_gzip("GZIP;q=0.001"));
    assert_true(mk_web_accepts_gzip("x-gzip"));
    assert_false(mk_web_accepts_gzip("gzip;q=0"));
    assert_false(mk_web_accepts_gzip("gzip; q=0.000, *"));
    assert_false(mk_web_accepts_gzip("deflate, br"));
    assert_false(mk_web_accepts_gzip("gzipx"));
    assert_true(mk_web_accepts_gzip("br, *"));
    assert_false(mk_web_accepts_gzip("br, *;q=0"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_mode, setup, teardown),
        cmocka_unit_test(test_accept_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

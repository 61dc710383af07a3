/*
 * tests/integration/test_server_prometheus.c — a real Prometheus
 * (/usr/bin/prometheus, Debian package; tools/install-deps.sh --test
 * installs it) scrapes `meerkat serve` ($MK_BIN) on loopback.
 *
 * The reference is Prometheus itself: its text-format parser must accept
 * /metrics, and its HTTP query API must report the number of samples this
 * test wrote (counted here, not by the server), up{job="meerkat"} == 1 and
 * a meerkat_query_duration_seconds_bucket series after one /query. A missing
 * prometheus binary fails the test: CI installs it, so a silent skip would
 * hide a broken CI image.
 */
#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "test_server_util.h"

#define PROM_BIN "/usr/bin/prometheus"
#define SEED 20261203u
#define T0_S 1764547200LL /* 2025-12-01T00:00:00Z */
#define WAIT_MS 30000     /* bound on waiting for Prometheus to see a value */

/* A loopback port that was free a moment ago (bind port 0, read, close);
 * the caller retries the start when someone else took it meanwhile. */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Prometheus child: only this pid is ever signalled. */
static pid_t prom_pid;

static void prom_kill_at_exit(void)
{
    if (prom_pid > 0) {
        kill(prom_pid, SIGKILL);
        waitpid(prom_pid, NULL, 0);
        prom_pid = 0;
    }
}

/* SIGTERM, then SIGKILL after timeout_ms; returns 0 when it exited by itself. */
static int prom_stop(int timeout_ms)
{
    if (prom_pid <= 0) return 0;
    kill(prom_pid, SIGTERM);
    int is_killed = 0;
    for (int waited_ms = 0;; waited_ms += 10) {
        if (waitpid(prom_pid, NULL, WNOHANG) == prom_pid) break;
        if (waited_ms >= timeout_ms) {
            kill(prom_pid, SIGKILL);
            waitpid(prom_pid, NULL, 0);
            is_killed = 1;
            break;
        }
        srv_sleep_ms(10);
    }
    prom_pid = 0;
    return is_killed ? -1 : 0;
}

/* Starts prometheus on web_port; 0 once /-/ready answers 200 (≤ 20 s), -1 if
 * it exited (e.g. the port was taken) or never became ready. */
static int prom_start(const char *cfg_path, const char *tsdb_dir, const char *log_path, unsigned web_port)
{
    static int is_registered;
    if (!is_registered) {
        atexit(prom_kill_at_exit);
        is_registered = 1;
    }
    char a_cfg[8400], a_tsdb[8400], a_listen[64];
    snprintf(a_cfg, sizeof a_cfg, "--config.file=%s", cfg_path);
    snprintf(a_tsdb, sizeof a_tsdb, "--storage.tsdb.path=%s", tsdb_dir);
    snprintf(a_listen, sizeof a_listen, "--web.listen-address=127.0.0.1:%u", web_port);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        char *args[] = {PROM_BIN, a_cfg, a_tsdb, a_listen, NULL};
        execv(args[0], args);
        _exit(127);
    }
    prom_pid = pid;
    mk_httpc c;
    mk_httpc_init(&c, "127.0.0.1", web_port);
    c.timeout_ms = 2000;
    int64_t t_end_ms = mk_test_mono_ms() + 20000;
    int rc = -1;
    while (mk_test_mono_ms() < t_end_ms) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            prom_pid = 0;
            break;
        }
        mk_httpc_resp r;
        if (mk_httpc_request(&c, "GET", "/-/ready", NULL, NULL, 0, &r) == 0) {
            int is_ready = r.status == 200;
            mk_httpc_resp_free(&r);
            if (is_ready) {
                rc = 0;
                break;
            }
        }
        srv_sleep_ms(100);
    }
    mk_httpc_close(&c);
    if (rc != 0) prom_stop(5000);
    return rc;
}

/* Runs an instant query against Prometheus; returns the value string of the
 * first vector element (malloc'ed) and the element count, or NULL. */
static char *prom_query(mk_httpc *c, const char *query_enc, size_t *n_elems)
{
    char target[512];
    snprintf(target, sizeof target, "/api/v1/query?query=%s", query_enc);
    *n_elems = 0;
    mk_httpc_resp r;
    if (mk_httpc_request(c, "GET", target, NULL, NULL, 0, &r) != 0) return NULL;
    char *out = NULL;
    json_error_t jerr;
    json_t *root = r.status == 200 ? json_loads(r.body, 0, &jerr) : NULL;
    const char *status = json_string_value(json_object_get(root, "status"));
    json_t *data = json_object_get(root, "data");
    json_t *res = json_object_get(data, "result");
    const char *type = json_string_value(json_object_get(data, "resultType"));
    if (status && strcmp(status, "success") == 0 && type && strcmp(type, "vector") == 0 && json_is_array(res)) {
        *n_elems = json_array_size(res);
        /* element: {"metric":{...},"value":[<unix ts float>,"<value string>"]} */
        json_t *v = json_array_get(json_object_get(json_array_get(res, 0), "value"), 1);
        if (json_is_string(v)) out = strdup(json_string_value(v));
    }
    json_decref(root);
    mk_httpc_resp_free(&r);
    return out;
}

/* Polls query until its first value equals want (bounded by WAIT_MS). */
static void wait_value(mk_httpc *c, const char *query_enc, const char *want)
{
    int64_t t_end_ms = mk_test_mono_ms() + WAIT_MS;
    char *last = NULL;
    size_t n = 0;
    for (;;) {
        free(last);
        last = prom_query(c, query_enc, &n);
        if (last && strcmp(last, want) == 0) break;
        if (mk_test_mono_ms() >= t_end_ms) {
            print_error("prometheus query %s: last value '%s' (%zu elems), want '%s' within %d ms\n", query_enc,
                        last ? last : "(none)", n, want, WAIT_MS);
            free(last);
            fail();
        }
        srv_sleep_ms(200);
    }
    free(last);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_prometheus_scrapes_meerkat(void **state)
{
    (void)state;
    if (access(PROM_BIN, X_OK) != 0) {
        print_error("%s is not installed: this test needs the real Prometheus "
                    "(tools/install-deps.sh --test installs it)\n",
                    PROM_BIN);
        fail();
    }
    printf("seed %u\n", SEED);
    char *dir = mk_test_dir("srv-prom");
    mk_test_rmrf(dir); /* `serve` creates it */
    srv s;
    if (srv_start(&s, dir, NULL, NULL) != 0) {
        char *log = srv_read_file(s.log_path);
        print_error("server did not start; log:\n%s\n", log);
        free(log);
        fail();
    }
    mk_httpc mc;
    mk_httpc_init(&mc, "127.0.0.1", s.port);

    /* N samples: 3 series x 40 points, one field per line, distinct times */
    enum { N_HOSTS = 3, N_PTS = 40, N_SAMPLES = N_HOSTS * N_PTS };
    mk_rng rng = {SEED};
    mk_sbuf body = {0};
    for (int h = 0; h < N_HOSTS; h++)
        for (int i = 0; i < N_PTS; i++)
            mk_sb_printf(&body, "cpu,host=h%d v=%llu %lld\n", h, (unsigned long long)mk_rng_below(&rng, 1000),
                         (long long)(T0_S + i * 10));
    mk_httpc_resp r;
    assert_int_equal(mk_httpc_request(&mc, "POST", "/write?db=prom&precision=s", NULL, mk_sb_str(&body), body.n, &r),
                     0);
    assert_int_equal(r.status, 204);
    mk_httpc_resp_free(&r);
    mk_sb_free(&body);
    /* one query, so the duration histogram has an observation */
    assert_int_equal(mk_httpc_request(&mc, "GET", "/query?db=prom&q=SELECT+count%28v%29+FROM+cpu", NULL, NULL, 0, &r),
                     0);
    assert_int_equal(r.status, 200);
    mk_httpc_resp_free(&r);

    /* Prometheus: config and tsdb under a scratch dir of its own */
    char *pdir = mk_test_dir("srv-prom-prometheus");
    char cfg_path[4200], tsdb_dir[4200], log_path[4200], cfg[512];
    snprintf(cfg_path, sizeof cfg_path, "%s/prometheus.yml", pdir);
    snprintf(tsdb_dir, sizeof tsdb_dir, "%s/tsdb", pdir);
    snprintf(log_path, sizeof log_path, "%s/prometheus.log", pdir);
    snprintf(cfg, sizeof cfg,
             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
             "scrape_configs:\n  - job_name: meerkat\n    metrics_path: /metrics\n"
             "    static_configs:\n      - targets: ['127.0.0.1:%u']\n",
             s.port);
    write_text(cfg_path, cfg);
    unsigned web_port = 0;
    for (int attempt = 0; attempt < 5 && !web_port; attempt++) {
        unsigned p = free_port();
        if (prom_start(cfg_path, tsdb_dir, log_path, p) == 0) web_port = p;
    }
    if (!web_port) {
        char *log = srv_read_file(log_path);
        print_error("prometheus did not become ready; log:\n%s\n", log);
        free(log);
        fail();
    }
    printf("meerkat port %u, prometheus port %u\n", s.port, web_port);

    mk_httpc pc;
    mk_httpc_init(&pc, "127.0.0.1", web_port);
    pc.timeout_ms = 5000;
    char want_n[32];
    snprintf(want_n, sizeof want_n, "%d", N_SAMPLES);
    wait_value(&pc, "meerkat_ingest_samples_total", want_n);
    wait_value(&pc, "up%7Bjob%3D%22meerkat%22%7D", "1");
    /* at least one bucket series (one per le) with our one query counted in +Inf */
    size_t n_buckets = 0;
    char *v = prom_query(&pc, "meerkat_query_duration_seconds_bucket", &n_buckets);
    if (!v || n_buckets == 0) {
        print_error("no meerkat_query_duration_seconds_bucket series in prometheus\n");
        free(v);
        fail();
    }
    free(v);
    wait_value(&pc, "meerkat_query_duration_seconds_bucket%7Ble%3D%22%2BInf%22%7D", "1");
    printf("prometheus saw meerkat_ingest_samples_total=%s, up=1, %zu histogram buckets\n", want_n, n_buckets);
    mk_httpc_close(&pc);

    int p_st = prom_stop(10000);
    if (p_st != 0) printf("note: prometheus needed SIGKILL after 10 s\n");
    mk_httpc_close(&mc);
    int st = srv_stop(&s, SIGTERM, 30000);
    char *log = srv_read_file(s.log_path);
    if (st != 0 || strstr(log, "runtime error") || strstr(log, "AddressSanitizer")) {
        print_error("server exit status %d; log:\n%s\n", st, log);
        free(log);
        fail();
    }
    free(log);
    unlink(s.log_path);
    mk_test_rmrf(dir);
    mk_test_rmrf(pdir);
    free(dir);
    free(pdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prometheus_scrapes_meerkat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

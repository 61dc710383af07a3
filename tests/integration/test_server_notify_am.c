/*
 * tests/integration/test_server_notify_am.c — the alertmanager channel
 * against a real Alertmanager (Debian prometheus-alertmanager,
 * /usr/bin/prometheus-alertmanager; tools/install-deps.sh --test installs
 * it). Alertmanager runs on a free loopback port with a temporary config
 * and storage directory, clustering off; Meerkat pushes to its
 * /api/v2/alerts as Prometheus does, and the test reads Alertmanager's own
 * GET /api/v2/alerts: the alert arrives with its labels, is re-sent while
 * firing, and resolves. Exit 77 (ctest SKIP_RETURN_CODE) only when the
 * binary is absent.
 */
#include "testutil.h"

#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "notify/nsrv.h"

#define AM_BIN "/usr/bin/prometheus-alertmanager"

static pid_t g_am;

static void am_kill(void)
{
    if (g_am > 0) {
        kill(g_am, SIGKILL);
        waitpid(g_am, NULL, 0);
        g_am = 0;
    }
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

static int am_get(unsigned port, const char *target, json_t **js)
{
    mk_httpc c;
    mk_httpc_resp r;
    mk_httpc_init(&c, "127.0.0.1", port);
    c.timeout_ms = 5000;
    int st = -1;
    if (mk_httpc_request(&c, "GET", target, NULL, NULL, 0, &r) == 0) {
        st = r.status;
        if (js) *js = json_loadb(r.body, r.body_len, 0, NULL);
        mk_httpc_resp_free(&r);
    }
    mk_httpc_close(&c);
    return st;
}

/* The alert of rule in Alertmanager's list (new reference) or NULL. */
static json_t *am_find(unsigned port, const char *rule)
{
    json_t *js = NULL;
    if (am_get(port, "/api/v2/alerts", &js) != 200 || !json_is_array(js)) {
        json_decref(js);
        return NULL;
    }
    size_t i;
    json_t *it;
    json_array_foreach(js, i, it)
    {
        const char *an = json_string_value(json_object_get(json_object_get(it, "labels"), "alertname"));
        if (an && !strcmp(an, rule)) {
            json_incref(it);
            json_decref(js);
            return it;
        }
    }
    json_decref(js);
    return NULL;
}

static void test_alertmanager(void **st)
{
    (void)st;
    char *dir = mk_test_dir("notify-am");
    mk_test_rmrf(dir);
    mkdir(dir, 0755);
    char cfg[1200], store[1200], listen[64];
    snprintf(cfg, sizeof cfg, "%s/am.yml", dir);
    snprintf(store, sizeof store, "%s/data", dir);
    FILE *f = fopen(cfg, "w");
    fputs("route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n", f);
    fclose(f);
    unsigned port = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    char a1[1300], a2[1300], a3[100];
    snprintf(a1, sizeof a1, "--config.file=%s", cfg);
    snprintf(a2, sizeof a2, "--storage.path=%s", store);
    snprintf(a3, sizeof a3, "--web.listen-address=%s", listen);
    char logp[1300];
    snprintf(logp, sizeof logp, "%s/am.log", dir);
    atexit(am_kill);
    g_am = fork();
    if (g_am == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(AM_BIN, AM_BIN, a1, a2, a3, "--cluster.listen-address=", (char *)NULL);
        _exit(127);
    }
    int is_ready = 0;
    for (int i = 0; i < 300 && !is_ready; i++) {
        is_ready = am_get(port, "/-/ready", NULL) == 200;
        if (!is_ready) srv_sleep_ms(50);
    }
    if (!is_ready) {
        char *log = srv_read_file(logp);
        fail_msg("alertmanager did not come up:\n%s", log);
    }
    nsrv x;
    char mcfg[1500];
    snprintf(mcfg, sizeof mcfg,
             "rules:\n"
             "  - {name: disk-full, kind: threshold, measurement: disk, field: used_pct, expr: \"used_pct > 90\",\n"
             "     interval: 10s, severity: critical, annotations: {summary: \"disk almost full\"}}\n"
             "channels:\n"
             "  - {name: am, kind: alertmanager, url: 'http://127.0.0.1:%u', resend: 1s,\n"
             "     external_url: 'http://meerkat.test:8086'}\n"
             "routes:\n"
             "  - {channels: [am], group_wait: 0s, group_interval: 1s}\n",
             port);
    assert_int_equal(ns_start(&x, "notify-am-srv", 0, mcfg), 0);
    char lp[200];
    snprintf(lp, sizeof lp, "disk,host=db1,mount=/var used_pct=97 %lld\n", (long long)ns_wall_ms());
    assert_int_equal(ns_write(&x, lp), 204);
    json_t *a = NULL;
    for (int i = 0; i < 200 && !a; i++) {
        a = am_find(port, "disk-full");
        if (!a) srv_sleep_ms(50);
    }
    if (!a) {
        ns_fail_log(&x, "alert never reached Alertmanager");
        fail();
    }
    json_t *l = json_object_get(a, "labels");
    assert_string_equal(json_string_value(json_object_get(l, "host")), "db1");
    assert_string_equal(json_string_value(json_object_get(l, "mount")), "/var");
    assert_string_equal(json_string_value(json_object_get(l, "severity")), "critical");
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "annotations"), "summary")), "disk almost full");
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "status"), "state")), "active");
    const char *gen = json_string_value(json_object_get(a, "generatorURL"));
    assert_non_null(gen);
    assert_int_equal(strncmp(gen, "http://meerkat.test:8086/api/incidents/", 39), 0);
    json_decref(a);
    /* re-sent while firing (resend: 1s): the delivery log shows repeats */
    json_t *e = ns_wait_log(&x, "am", "ok", 5000);
    json_decref(e);
    int64_t until = ns_wall_ms() + 10000;
    size_t n_ok = 0;
    while (ns_wall_ms() < until && n_ok < 3) {
        json_t *lg = ns_log(&x, "channel=am&status=ok");
        n_ok = json_array_size(lg);
        json_decref(lg);
        srv_sleep_ms(200);
    }
    assert_true(n_ok >= 3);
    /* back to normal: Alertmanager marks it resolved (it leaves the list
     * of alerts, or shows an endsAt in the past) */
    snprintf(lp, sizeof lp, "disk,host=db1,mount=/var used_pct=40 %lld\n", (long long)ns_wall_ms());
    assert_int_equal(ns_write(&x, lp), 204);
    int is_resolved = 0;
    for (int i = 0; i < 300 && !is_resolved; i++) {
        a = am_find(port, "disk-full");
        is_resolved = !a;
        json_decref(a);
        if (!is_resolved) srv_sleep_ms(50);
    }
    if (!is_resolved) {
        ns_fail_log(&x, "alert never resolved in Alertmanager");
        fail();
    }
    assert_int_equal(ns_stop(&x, 1), 0);
    am_kill();
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    if (access(AM_BIN, X_OK) != 0) {
        printf("SKIP: %s is absent (Debian package prometheus-alertmanager; tools/install-deps.sh --test)\n", AM_BIN);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_alertmanager)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

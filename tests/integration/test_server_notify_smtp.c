/*
 * tests/integration/test_server_notify_smtp.c — the email channel through a
 * real SMTP server on loopback: Python's aiosmtpd (Debian python3-aiosmtpd;
 * tools/install-deps.sh --test) storing what it receives in a Maildir. A
 * threshold incident of the real `meerkat serve` is mailed; the test reads
 * the stored message: envelope and headers (From, To, Subject,
 * X-Meerkat-Fingerprint, multipart/alternative) and both bodies. A second
 * server offers and requires STARTTLS (a self-signed certificate made with
 * openssl): the starttls channel gets through, a plain one is refused.
 * Exit 77 only when aiosmtpd is absent.
 */
#include "testutil.h"

#include <dirent.h>
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

#define PY "/usr/bin/python3"

static pid_t g_smtp;

static void smtp_kill(void)
{
    if (g_smtp > 0) {
        kill(g_smtp, SIGKILL);
        waitpid(g_smtp, NULL, 0);
        g_smtp = 0;
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

static int can_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* The first message file in maildir/new (malloc'ed text) or NULL. */
static char *first_mail(const char *maildir)
{
    char d[1400];
    snprintf(d, sizeof d, "%s/new", maildir);
    DIR *dh = opendir(d);
    if (!dh) return NULL;
    struct dirent *e;
    char *out = NULL;
    while (!out && (e = readdir(dh))) {
        if (e->d_name[0] == '.') continue;
        char p[1700];
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        out = srv_read_file(p);
    }
    closedir(dh);
    return out;
}

/* Starts aiosmtpd on a free port storing into dir/Maildir; with cert/key,
 * STARTTLS is offered and required (aiosmtpd's default). Returns the port. */
static unsigned smtpd_start(const char *dir, const char *cert, const char *key)
{
    char maildir[1300], logp[1300], listen[64];
    snprintf(maildir, sizeof maildir, "%s/Maildir", dir);
    snprintf(logp, sizeof logp, "%s/smtpd.log", dir);
    unsigned port = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    g_smtp = fork();
    if (g_smtp == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        if (cert)
            execl(PY, PY, "-m", "aiosmtpd", "-n", "-l", listen, "--tlscert", cert, "--tlskey", key, "-c",
                  "aiosmtpd.handlers.Mailbox", maildir, (char *)NULL);
        else
            execl(PY, PY, "-m", "aiosmtpd", "-n", "-l", listen, "-c", "aiosmtpd.handlers.Mailbox", maildir, (char *)NULL);
        _exit(127);
    }
    int is_up = 0;
    for (int i = 0; i < 200 && !is_up; i++) {
        is_up = can_connect(port);
        if (!is_up) srv_sleep_ms(50);
    }
    if (!is_up) fail_msg("aiosmtpd did not come up:\n%s", srv_read_file(logp));
    return port;
}

static void test_email(void **st)
{
    (void)st;
    char *dir = mk_test_dir("notify-smtp");
    mk_test_rmrf(dir);
    mkdir(dir, 0755);
    char maildir[1300];
    snprintf(maildir, sizeof maildir, "%s/Maildir", dir);
    unsigned port = smtpd_start(dir, NULL, NULL);
    nsrv x;
    char cfg[1500];
    snprintf(cfg, sizeof cfg,
             "rules:\n"
             "  - {name: api-errors, kind: threshold, measurement: svc, field: error_rate, expr: \"error_rate > 0.05\",\n"
             "     interval: 10s, severity: critical, annotations: {summary: \"errors <high> & rising\"}}\n"
             "channels:\n"
             "  - {name: mail, kind: email, smtp_url: 'smtp://127.0.0.1:%u', from: meerkat@example.org,\n"
             "     to: [oncall@example.org, lead@example.org], subject: '[{{status_upper}}] {{alertname}} on {{labels.service}}'}\n"
             "routes:\n"
             "  - {channels: [mail], group_wait: 0s}\n",
             port);
    assert_int_equal(ns_start(&x, "notify-smtp-srv", 0, cfg), 0);
    char lp[200];
    snprintf(lp, sizeof lp, "svc,service=checkout error_rate=0.2 %lld\n", (long long)ns_wall_ms());
    assert_int_equal(ns_write(&x, lp), 204);
    json_t *e = ns_wait_log(&x, "mail", "ok", 15000);
    if (!e) {
        json_t *lg = ns_log(&x, "channel=mail");
        char *s = json_dumps(lg, 0);
        ns_fail_log(&x, s);
        fail();
    }
    char fp[32];
    snprintf(fp, sizeof fp, "%s", json_string_value(json_object_get(e, "fingerprints")));
    json_decref(e);
    char *m = NULL;
    for (int i = 0; i < 100 && !m; i++) {
        m = first_mail(maildir);
        if (!m) srv_sleep_ms(50);
    }
    assert_non_null(m);
    char want[200];
    assert_non_null(strstr(m, "From: meerkat@example.org\n"));
    assert_non_null(strstr(m, "To: oncall@example.org, lead@example.org\n"));
    assert_non_null(strstr(m, "Subject: [FIRING] api-errors on checkout\n"));
    snprintf(want, sizeof want, "X-Meerkat-Fingerprint: %s\n", fp);
    assert_non_null(strstr(m, want));
    assert_non_null(strstr(m, "Content-Type: multipart/alternative;"));
    assert_non_null(strstr(m, "Content-Type: text/plain; charset=utf-8"));
    assert_non_null(strstr(m, "Content-Type: text/html; charset=utf-8"));
    /* the envelope, as aiosmtpd records it */
    assert_non_null(strstr(m, "X-MailFrom: meerkat@example.org"));
    assert_non_null(strstr(m, "X-RcptTo: oncall@example.org, lead@example.org"));
    /* bodies: plain as is, HTML escaped */
    assert_non_null(strstr(m, "[FIRING] api-errors (critical): errors <high> & rising"));
    assert_non_null(strstr(m, "errors &lt;high&gt; &amp; rising"));
    free(m);
    assert_int_equal(ns_stop(&x, 1), 0);
    smtp_kill();
    mk_test_rmrf(dir);
    free(dir);
}

/* STARTTLS required by the server: the channel with starttls: true gets
 * through (self-signed certificate, insecure_skip_verify), the same channel
 * without it is refused and the failure is logged. */
static void test_email_starttls(void **st)
{
    (void)st;
    if (system("command -v openssl >/dev/null 2>&1") != 0) skip();
    char *dir = mk_test_dir("notify-smtps");
    mk_test_rmrf(dir);
    mkdir(dir, 0755);
    char cert[1300], key[1300], cmd[3000], maildir[1300];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(maildir, sizeof maildir, "%s/Maildir", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 1 -subj /CN=127.0.0.1 >/dev/null 2>&1",
             key, cert);
    assert_int_equal(system(cmd), 0);
    unsigned port = smtpd_start(dir, cert, key);
    nsrv x;
    char cfg[1500];
    snprintf(cfg, sizeof cfg,
             "rules:\n"
             "  - {name: tls-check, kind: threshold, measurement: svc, field: v, expr: \"v > 1\", interval: 10s}\n"
             "channels:\n"
             "  - {name: tls, kind: email, smtp_url: 'smtp://127.0.0.1:%u', starttls: true, insecure_skip_verify: true,\n"
             "     from: meerkat@example.org, to: [oncall@example.org]}\n"
             "  - {name: plain, kind: email, smtp_url: 'smtp://127.0.0.1:%u', from: meerkat@example.org,\n"
             "     to: [oncall@example.org], max_attempts: 1}\n"
             "routes:\n"
             "  - {channels: [tls, plain], group_wait: 0s}\n",
             port, port);
    assert_int_equal(ns_start(&x, "notify-smtps-srv", 0, cfg), 0);
    char lp[200];
    snprintf(lp, sizeof lp, "svc,service=tls v=5 %lld\n", (long long)ns_wall_ms());
    assert_int_equal(ns_write(&x, lp), 204);
    json_t *e = ns_wait_log(&x, "tls", "ok", 15000);
    if (!e) {
        ns_fail_log(&x, "STARTTLS mail not sent");
        fail();
    }
    json_decref(e);
    e = ns_wait_log(&x, "plain", "gave_up", 15000);
    if (!e) {
        ns_fail_log(&x, "plain SMTP to a STARTTLS-only server was not refused");
        fail();
    }
    json_decref(e);
    char *m = NULL;
    for (int i = 0; i < 100 && !m; i++) {
        m = first_mail(maildir);
        if (!m) srv_sleep_ms(50);
    }
    assert_non_null(m);
    assert_non_null(strstr(m, "Subject: [FIRING:1] tls-check (warning)\n"));
    free(m);
    assert_int_equal(ns_stop(&x, 1), 0);
    smtp_kill();
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    if (access(PY, X_OK) != 0 || system(PY " -c 'import aiosmtpd' 2>/dev/null") != 0) {
        printf("SKIP: %s with aiosmtpd is absent (Debian package python3-aiosmtpd; tools/install-deps.sh --test)\n", PY);
        return 77;
    }
    atexit(smtp_kill);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_email), cmocka_unit_test(test_email_starttls)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

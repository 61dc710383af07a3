/*
 * tests/integration/test_server_tls.c — `meerkat serve` ($MK_BIN) with
 * tls_cert_file/tls_key_file, talked to by the real `curl` command-line tool
 * (an independent TLS client: GnuTLS or OpenSSL underneath, not our code).
 *
 * A fresh self-signed certificate for IP 127.0.0.1 is made at test time with
 * `openssl req` (or GnuTLS's `certtool` when openssl is missing; with
 * neither the test FAILS naming the Debian packages to install). Checks:
 * /ping over HTTPS answers 204, a line-protocol write answers 204 and the
 * value comes back from /query, plain http:// to the TLS port gets no HTTP
 * answer, a client that does not trust the certificate fails verification,
 * the listening line says tls=on, and a missing key file stops start-up
 * with an error naming the file. Loopback only; every curl is bounded by
 * --max-time; only the server PIDs started here are signalled.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_server_util.h"

typedef struct tls_ctx {
    char *dir;          /* owned (mk_test_dir) */
    char cert[1024];    /* PEM certificate */
    char key[1024];     /* PEM private key */
    char cfg[1024];     /* YAML config naming both */
    pid_t pid;
    unsigned port;
    char log_path[1024];
} tls_ctx;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs a shell command, returns its stdout (malloc'ed) and exit status. */
static char *run(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 65536, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t got;
    while (n + 1 < cap && (got = fread(out + n, 1, cap - n - 1, p)) > 0) n += got;
    out[n] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return out;
}

/* Makes a self-signed certificate for 127.0.0.1 in x->cert / x->key. */
static void make_cert(tls_ctx *x)
{
    char cmd[16384];
    int st = 1;
    char *out;
    if (system("command -v openssl >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd,
                 "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 1 "
                 "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>&1",
                 x->key, x->cert);
    } else if (system("command -v certtool >/dev/null 2>&1") == 0) {
        char tmpl[1100];
        snprintf(tmpl, sizeof tmpl, "%s.tmpl", x->dir);
        write_file(tmpl, "cn = 127.0.0.1\nip_address = 127.0.0.1\nexpiration_days = 1\n"
                         "tls_www_server\nsigning_key\nencryption_key\n");
        snprintf(cmd, sizeof cmd,
                 "certtool --generate-privkey --key-type rsa --bits 2048 --outfile '%s' 2>&1 && "
                 "certtool --generate-self-signed --load-privkey '%s' --template '%s' --outfile '%s' 2>&1",
                 x->key, x->key, tmpl, x->cert);
    } else {
        fail_msg("neither `openssl` nor `certtool` is installed: add the Debian package `openssl` "
                 "(or `gnutls-bin`) to tools/install-deps.sh --test");
    }
    out = run(cmd, &st);
    if (st != 0) fail_msg("certificate generation failed (%d):\n%s", st, out);
    free(out);
}

/* curl with a bounded time; args are appended verbatim (already quoted).
 * Returns curl's exit status; *body gets stdout (malloc'ed). */
static int curl(const char *args, char **body)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 5 %s 2>/dev/null", args);
    int st = 0;
    *body = run(cmd, &st);
    return st;
}

/* Starts `meerkat serve --config x->cfg` on 127.0.0.1:0. Returns 0 once
 * /ping answers 204 over HTTPS (port read from the "listening" line),
 * -1 if the server exited (its status in *exit_status) or timed out. */
static int start(tls_ctx *x, int *exit_status)
{
    snprintf(x->log_path, sizeof x->log_path, "%s.serve.log", x->dir);
    unlink(x->log_path);
    x->port = 0;
    const char *bin = srv_bin(); /* exits with a message when MK_BIN is unset */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(x->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        unsetenv("MEERKAT_API_KEYS");
        const char *args[] = {bin, "serve", "--data", x->dir, "--listen", "127.0.0.1:0",
                              "--config", x->cfg, NULL};
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    x->pid = pid;
    srv_track(pid, 0);
    const char *tag = "msg=\"listening\" addr=127.0.0.1:";
    for (int i = 0; i < 300; i++) { /* <= ~15 s, usually well under 1 s */
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            srv_track(0, pid);
            x->pid = 0;
            *exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return -1;
        }
        if (!x->port) {
            char *log = srv_read_file(x->log_path);
            char *hit = strstr(log, tag);
            if (hit) x->port = (unsigned)atoi(hit + strlen(tag));
            free(log);
        }
        if (x->port) {
            char args[8192], *body;
            snprintf(args, sizeof args, "-o /dev/null -w '%%{http_code}' --cacert '%s' https://127.0.0.1:%u/ping",
                     x->cert, x->port);
            int rc = curl(args, &body);
            int ok = rc == 0 && strcmp(body, "204") == 0;
            free(body);
            if (ok) return 0;
        }
        srv_sleep_ms(50);
    }
    return -1;
}

static int stop(tls_ctx *x)
{
    srv s = {.pid = x->pid};
    x->pid = 0;
    return srv_stop(&s, SIGTERM, 10000);
}

static void setup_paths(tls_ctx *x, const char *name)
{
    memset(x, 0, sizeof *x);
    x->dir = mk_test_dir(name);
    mk_test_rmrf(x->dir); /* `serve` creates it */
    snprintf(x->cert, sizeof x->cert, "%s.cert.pem", x->dir);
    snprintf(x->key, sizeof x->key, "%s.key.pem", x->dir);
    snprintf(x->cfg, sizeof x->cfg, "%s.yaml", x->dir);
    char yaml[2200];
    snprintf(yaml, sizeof yaml, "tls_cert_file: '%s'\ntls_key_file: '%s'\n", x->cert, x->key);
    write_file(x->cfg, yaml);
}

static void test_https_roundtrip(void **state)
{
    (void)state;
    tls_ctx x;
    setup_paths(&x, "tls_roundtrip");
    make_cert(&x);
    int st = 0;
    if (start(&x, &st) != 0) {
        char *log = srv_read_file(x.log_path);
        fail_msg("server did not come up over HTTPS (exit %d); log:\n%s", st, log);
    }
    char *log = srv_read_file(x.log_path);
    assert_non_null(strstr(log, " tls=on"));
    free(log);

    char args[8192], *body;
    /* /ping over HTTPS, trusting exactly our certificate */
    snprintf(args, sizeof args, "-o /dev/null -w '%%{http_code}' --cacert '%s' https://127.0.0.1:%u/ping",
             x.cert, x.port);
    assert_int_equal(curl(args, &body), 0);
    assert_string_equal(body, "204");
    free(body);

    /* a write, then the value read back */
    snprintf(args, sizeof args,
             "-o /dev/null -w '%%{http_code}' --cacert '%s' --data-binary 'tlsm,host=a v=42.5 1764547200' "
             "'https://127.0.0.1:%u/write?db=tls&precision=s'",
             x.cert, x.port);
    assert_int_equal(curl(args, &body), 0);
    assert_string_equal(body, "204");
    free(body);
    snprintf(args, sizeof args,
             "--cacert '%s' -G --data-urlencode db=tls --data-urlencode epoch=s "
             "--data-urlencode 'q=SELECT v FROM tlsm' 'https://127.0.0.1:%u/query'",
             x.cert, x.port);
    assert_int_equal(curl(args, &body), 0);
    if (!strstr(body, "[1764547200,42.5]")) fail_msg("query answer lacks [1764547200,42.5]: %s", body);
    free(body);

    /* plain HTTP to the TLS port: no HTTP answer at all */
    snprintf(args, sizeof args, "-o /dev/null -w '%%{http_code}' http://127.0.0.1:%u/ping", x.port);
    int rc = curl(args, &body);
    assert_int_not_equal(rc, 0);
    assert_string_not_equal(body, "204");
    free(body);

    /* a client that does not trust the self-signed certificate: curl's
     * exit 60 is "peer certificate cannot be authenticated" */
    snprintf(args, sizeof args, "-o /dev/null --capath /nonexistent --cacert /dev/null "
                                "https://127.0.0.1:%u/ping", x.port);
    rc = curl(args, &body);
    free(body);
    if (rc != 60 && rc != 77) fail_msg("untrusted client: curl exit %d, expected 60 (or 77)", rc);
    snprintf(args, sizeof args, "-o /dev/null https://127.0.0.1:%u/ping", x.port); /* system CAs */
    rc = curl(args, &body);
    free(body);
    assert_int_equal(rc, 60);

    /* still serving after the failed handshakes */
    snprintf(args, sizeof args, "-o /dev/null -w '%%{http_code}' --cacert '%s' https://127.0.0.1:%u/ping",
             x.cert, x.port);
    assert_int_equal(curl(args, &body), 0);
    assert_string_equal(body, "204");
    free(body);
    assert_int_equal(stop(&x), 0);
    free(x.dir);
}

static void test_missing_key_file(void **state)
{
    (void)state;
    tls_ctx x;
    setup_paths(&x, "tls_missing_key");
    /* the certificate file only has to be readable: the key is looked for next */
    write_file(x.cert, "-----BEGIN CERTIFICATE-----\n");
    unlink(x.key);
    int st = 0;
    if (start(&x, &st) == 0) {
        stop(&x);
        fail_msg("server started without its key file");
    }
    assert_int_not_equal(st, 0);
    char *log = srv_read_file(x.log_path);
    if (!strstr(log, "tls_key_file") || !strstr(log, x.key))
        fail_msg("start-up error does not name tls_key_file and the path:\n%s", log);
    free(log);
    free(x.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_roundtrip),
        cmocka_unit_test(test_missing_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

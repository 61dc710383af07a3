/*
 * tests/integration/test_cli_query.c — `meerkat query`, run as the real
 * binary ($MK_BIN).
 *
 * A four-line line-protocol file is imported with `meerkat import`; every
 * expected answer below was worked out by hand from those four lines as
 * InfluxDB 1.x would answer (its JSON and CSV shapes, time 0 for an
 * aggregate without GROUP BY time(), buckets of GROUP BY time() with
 * fill(null)), never taken from the code under test:
 *
 *   svc,service=api,instance=i-0 p95_ms=41.5,qps=120i  2025-12-01T00:00:00Z
 *   svc,service=api,instance=i-0 p95_ms=40.25,qps=125i 2025-12-01T00:00:10Z
 *   svc,service=api,instance=i-1 p95_ms=52.75,qps=98i  2025-12-01T00:00:00Z
 *   svc,service=web,instance=i-2 p95_ms=10,qps=7i      2025-12-01T00:00:20Z
 *
 * mean(p95_ms) of service=api is 134.5 / 3 = 44.833333333333336 (every
 * partial sum is exact in binary). Also checked: the exit statuses (1 for
 * a failed statement, 2 usage, 3 parse error or no directory), the parse
 * error's message, the query read from a pipe, and that the read-only open
 * works while another process holds the directory's LOCK (as a running
 * server does).
 *
 * Each run is bounded: SIGKILL after RUN_TIMEOUT_MS.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_TIMEOUT_MS 60000

static const char LP[] = "svc,service=api,instance=i-0 p95_ms=41.5,qps=120i 1764547200\n"
                         "svc,service=api,instance=i-0 p95_ms=40.25,qps=125i 1764547210\n"
                         "svc,service=api,instance=i-1 p95_ms=52.75,qps=98i 1764547200\n"
                         "svc,service=web,instance=i-2 p95_ms=10,qps=7i 1764547220\n";

static char *g_dir;  /* scratch directory of this run */
static char *g_data; /* the imported data directory */

typedef struct run {
    int status;
    char *out, *err;
} run;

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    mk_sbuf b = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) mk_sb_add(&b, buf, n);
    fclose(f);
    char *s = strdup(mk_sb_str(&b));
    mk_sb_free(&b);
    return s;
}

/* Runs MK_BIN args... (NULL-terminated) with stdin from `in` (NULL: an
 * empty file, never a terminal); stdout and stderr through files. */
static run mk_run(const char *in, ...)
{
    const char *bin = getenv("MK_BIN");
    if (!bin || !*bin) fail_msg("MK_BIN is not set (run through ctest)");
    const char *argv[32];
    int n = 0;
    argv[n++] = bin;
    va_list ap;
    va_start(ap, in);
    const char *a;
    while ((a = va_arg(ap, const char *))) {
        assert_true(n < 31);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    char pin[4096], pout[4096], perr[4096];
    snprintf(pin, sizeof pin, "%s/stdin", g_dir);
    snprintf(pout, sizeof pout, "%s/stdout", g_dir);
    snprintf(perr, sizeof perr, "%s/stderr", g_dir);
    FILE *f = fopen(pin, "wb");
    assert_non_null(f);
    if (in) fputs(in, f);
    fclose(f);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int i = open(pin, O_RDONLY), o = open(pout, O_WRONLY | O_CREAT | O_TRUNC, 0644),
            e = open(perr, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (i < 0 || o < 0 || e < 0) _exit(126);
        dup2(i, 0);
        dup2(o, 1);
        dup2(e, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    int64_t deadline = mk_test_mono_ms() + RUN_TIMEOUT_MS;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) break;
        assert_int_equal(w, 0);
        if (mk_test_mono_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("meerkat did not finish within %d ms; killed", RUN_TIMEOUT_MS);
        }
        usleep(2000);
    }
    run r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), slurp(pout), slurp(perr)};
    if (WIFSIGNALED(st) || strstr(r.err, "Sanitizer") || strstr(r.err, "runtime error:"))
        fail_msg("meerkat crashed or a sanitizer fired (status %d):\n%s", r.status, r.err);
    return r;
}

static void expect_run(run *r, int status, const char *out)
{
    if (r->status != status || (out && strcmp(r->out, out) != 0)) {
        fprintf(stderr, "---- exit %d (want %d)\n---- stdout:\n%s\n---- want:\n%s\n---- stderr:\n%s\n", r->status,
                status, r->out, out ? out : "(anything)", r->err);
        fail_msg("unexpected result of meerkat query");
    }
}

static int setup(void **state)
{
    (void)state;
    g_dir = mk_test_dir("cli_query");
    size_t n = strlen(g_dir) + 64;
    g_data = malloc(n);
    snprintf(g_data, n, "%s/data", g_dir);
    char lp[4096];
    snprintf(lp, sizeof lp, "%s/in.lp", g_dir);
    FILE *f = fopen(lp, "wb");
    assert_non_null(f);
    fputs(LP, f);
    fclose(f);
    run r = mk_run(NULL, "import", "--data", g_data, "--precision", "s", lp, NULL);
    if (r.status != 0) fail_msg("import failed (%d): %s", r.status, r.err);
    run_free(&r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mk_test_rmrf(g_dir);
    free(g_dir);
    free(g_data);
    return 0;
}

static void test_json_raw(void **state)
{
    (void)state;
    run r = mk_run(NULL, "query", "--data", g_data, "--format", "json", "--epoch", "rfc3339",
                   "SELECT p95_ms FROM svc WHERE instance = 'i-0'", NULL);
    expect_run(&r, 0,
               "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"svc\",\"columns\":[\"time\",\"p95_ms\"],"
               "\"values\":[[\"2025-12-01T00:00:00Z\",41.5],[\"2025-12-01T00:00:10Z\",40.25]]}]}]}\n");
    run_free(&r);
}

static void test_json_group_by(void **state)
{
    (void)state;
    run r = mk_run(NULL, "query", "--data", g_data, "--format", "json", "--epoch", "s",
                   "SELECT mean(p95_ms) FROM svc GROUP BY service", NULL);
    expect_run(&r, 0,
               "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"svc\",\"tags\":{\"service\":\"api\"},"
               "\"columns\":[\"time\",\"mean\"],\"values\":[[0,44.833333333333336]]},{\"name\":\"svc\",\"tags\":"
               "{\"service\":\"web\"},\"columns\":[\"time\",\"mean\"],\"values\":[[0,10]]}]}]}\n");
    run_free(&r);
    r = mk_run(NULL, "query", "--data", g_data, "--format", "json", "--pretty", "--epoch", "ms",
               "SELECT p95_ms FROM svc WHERE instance = 'i-2'", NULL);
    expect_run(&r, 0,
               "{\n    \"results\": [\n        {\n            \"statement_id\": 0,\n            \"series\": [\n"
               "                {\n                    \"name\": \"svc\",\n                    \"columns\": [\n"
               "                        \"time\",\n                        \"p95_ms\"\n                    ],\n"
               "                    \"values\": [\n                        [\n"
               "                            1764547220000,\n                            10\n"
               "                        ]\n                    ]\n                }\n            ]\n        }\n"
               "    ]\n}\n");
    run_free(&r);
}

static void test_csv(void **state)
{
    (void)state;
    run r = mk_run(NULL, "query", "--data", g_data, "--format", "csv",
                   "SELECT max(qps) FROM svc WHERE time >= '2025-12-01T00:00:00Z' AND time < '2025-12-01T00:01:00Z' "
                   "GROUP BY time(30s)",
                   NULL);
    expect_run(&r, 0, "name,tags,time,max\nsvc,,1764547200000000000,125\nsvc,,1764547230000000000,\n");
    run_free(&r);
}

static void test_table(void **state)
{
    (void)state;
    run r = mk_run(NULL, "query", "--data", g_data, "SELECT count(p95_ms) FROM svc GROUP BY instance", NULL);
    expect_run(&r, 0,
               "name: svc\ntags: instance=i-0\ntime count\n---- -----\n0    2\n\n"
               "name: svc\ntags: instance=i-1\ntime count\n---- -----\n0    1\n\n"
               "name: svc\ntags: instance=i-2\ntime count\n---- -----\n0    1\n");
    run_free(&r);
}

static void test_stdin(void **state)
{
    (void)state;
    run r = mk_run("SELECT p95_ms\nFROM svc\nWHERE instance = 'i-2';\n", "query", "--data", g_data, "--format", "json",
                   "--epoch", "ms", NULL);
    expect_run(&r, 0,
               "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"svc\",\"columns\":[\"time\",\"p95_ms\"],"
               "\"values\":[[1764547220000,10]]}]}]}\n");
    run_free(&r);
}

static void test_errors(void **state)
{
    (void)state;
    /* parse error: nothing runs, exit 3, the position in the message */
    run r = mk_run(NULL, "query", "--data", g_data, "SELECT mean(p95_ms) FROM", NULL);
    expect_run(&r, 3, "");
    if (strncmp(r.err, "meerkat query: error at 1:25: ", 30) != 0) fail_msg("parse error message: %s", r.err);
    run_free(&r);
    /* a failed statement: exit 1, its error in the answer and on stderr;
     * the statement before it answered */
    r = mk_run(NULL, "query", "--data", g_data, "--format", "json", "--epoch", "s",
               "SELECT p95_ms FROM svc WHERE instance = 'i-1'; SELECT nosuchfn(p95_ms) FROM svc", NULL);
    expect_run(&r, 1,
               "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"svc\",\"columns\":[\"time\",\"p95_ms\"],"
               "\"values\":[[1764547200,52.75]]}]},{\"statement_id\":1,\"error\":\"undefined function nosuchfn()\"}]}\n");
    assert_non_null(strstr(r.err, "statement 1: undefined function nosuchfn()"));
    run_free(&r);
    r = mk_run(NULL, "query", "--data", g_data, "--format", "table", "SELECT nosuchfn(p95_ms) FROM svc", NULL);
    expect_run(&r, 1, "ERR: undefined function nosuchfn()\n");
    run_free(&r);
    /* usage */
    r = mk_run(NULL, "query", "SELECT 1", NULL);
    expect_run(&r, 2, "");
    run_free(&r);
    r = mk_run(NULL, "query", "--data", g_data, "--format", "xml", "SELECT p95_ms FROM svc", NULL);
    expect_run(&r, 2, "");
    run_free(&r);
    r = mk_run(NULL, "query", "--data", g_data, "--epoch", "fortnights", "SELECT p95_ms FROM svc", NULL);
    expect_run(&r, 2, "");
    run_free(&r);
    /* no such directory */
    char missing[4096];
    snprintf(missing, sizeof missing, "%s/no-such-dir", g_dir);
    r = mk_run(NULL, "query", "--data", missing, "SELECT p95_ms FROM svc", NULL);
    expect_run(&r, 3, "");
    assert_non_null(strstr(r.err, "meerkat query: cannot open"));
    run_free(&r);
    r = mk_run(NULL, "query", "--help", NULL);
    expect_run(&r, 0, NULL);
    assert_non_null(strstr(r.out, "usage: meerkat query"));
    run_free(&r);
}

/* The directory's LOCK held by another process (a running server holds
 * it): a read-only query still runs. */
static void test_beside_a_writer(void **state)
{
    (void)state;
    char lock[4096];
    snprintf(lock, sizeof lock, "%s/LOCK", g_data);
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    run r = mk_run(NULL, "query", "--data", g_data, "--format", "csv", "SELECT p95_ms FROM svc WHERE instance = 'i-2'",
                   NULL);
    expect_run(&r, 0, "name,tags,time,p95_ms\nsvc,,1764547220000000000,10\n");
    run_free(&r);
    /* and a writer cannot get in meanwhile (the lock is real) */
    r = mk_run(NULL, "import", "--data", g_data, "--precision", "s", "-", NULL);
    assert_int_equal(r.status, 3);
    run_free(&r);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_raw),
        cmocka_unit_test(test_json_group_by),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_stdin),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_beside_a_writer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * tests/integration/test_cli_nab.c — `meerkat nab` and `meerkat score`, run
 * as the real binary ($MK_BIN).
 *
 * nab: a made-up corpus in NAB's layout (two categories, one file each, one
 * with an obvious spike; a labels/ and a config/ folder that must be
 * skipped, and a CSV with another header that must be skipped too). The
 * references are the input files themselves: the output must have the
 * layout OUT/<category>/meerkat_<name>.csv, the header
 * timestamp,value,anomaly_score, one row per input row with the timestamp
 * and value text copied, scores in [0, 1], and the spike's row scoring
 * highest in its file.
 *
 * score: a small line-protocol file imported with `meerkat import`; the
 * selector must pick the one series, print one row per sample written (the
 * test's own list of points) and scores in [0, 1]; an unmatched selector
 * exits 1. Each run is bounded (SIGKILL after RUN_TIMEOUT_MS).
 */
#include "testutil.h"

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_TIMEOUT_MS 60000
#define SEED 9001u
#define SPIKE_ROW 700

static const char *mk_bin(void)
{
    const char *b = getenv("MK_BIN");
    if (!b || !*b) fail_msg("MK_BIN is not set (run through ctest)");
    return b;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = 0;
    fclose(f);
    return p;
}

/* Runs MK_BIN with args (NULL-terminated); stdout and stderr go to files in
 * dir, returned malloc'ed in *out / *err. Returns the exit status. */
static int run(const char *dir, char **out, char **err, const char *const *args)
{
    char po[4096], pe[4096];
    snprintf(po, sizeof po, "%s/stdout.txt", dir);
    snprintf(pe, sizeof pe, "%s/stderr.txt", dir);
    const char *argv[32];
    size_t n = 0;
    argv[n++] = mk_bin();
    for (; *args && n < 31; args++) argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fi = open("/dev/null", O_RDONLY);
        if (fo < 0 || fe < 0 || fi < 0) _exit(126);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int64_t deadline = mk_test_mono_ms() + RUN_TIMEOUT_MS;
    int st = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) break;
        assert_int_equal(w, 0);
        if (mk_test_mono_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("meerkat did not finish within %d ms; killed", RUN_TIMEOUT_MS);
        }
        usleep(5000);
    }
    *out = slurp(po);
    *err = slurp(pe);
    assert_non_null(*out);
    assert_non_null(*err);
    if (WIFSIGNALED(st) || strstr(*err, "Sanitizer") || strstr(*err, "runtime error:")) {
        fprintf(stderr, "---- stderr ----\n%s\n", *err);
        fail_msg("meerkat crashed or a sanitizer fired");
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* One NAB file: n rows at 5-minute steps from 2014-04-01 00:00:00, a daily
 * cycle with noise, optionally a spike; returns the text (malloc'ed). */
static char *make_nab_csv(size_t n, int has_spike, mk_rng *rng)
{
    mk_sbuf b = {0};
    mk_sb_printf(&b, "timestamp,value\n");
    for (size_t i = 0; i < n; i++) {
        int64_t min = (int64_t)i * 5;
        int day = 1 + (int)(min / 1440), hh = (int)(min / 60 % 24), mm = (int)(min % 60);
        double v = 50 + 20 * sin(2 * M_PI * (double)i / 288.0) + (mk_rng_unit(rng) - 0.5) * 4;
        if (has_spike && i == SPIKE_ROW) v += 150;
        mk_sb_printf(&b, "2014-04-%02d %02d:%02d:00,%.3f\n", day, hh, mm, v);
    }
    char *s = strdup(mk_sb_str(&b));
    mk_sb_free(&b);
    return s;
}

/* Checks one output file against its input; returns the row of the
 * highest score. */
static size_t check_output(const char *in_text, const char *out_path, size_t n_rows)
{
    char *out = slurp(out_path);
    if (!out) fail_msg("missing output %s", out_path);
    const char *ip = strchr(in_text, '\n') + 1;
    const char *op = out;
    assert_memory_equal(op, "timestamp,value,anomaly_score\n", 30);
    op += 30;
    size_t rows = 0, best_row = 0;
    double best = -1;
    while (*op) {
        const char *ie = strchr(ip, '\n'), *oe = strchr(op, '\n');
        assert_non_null(ie);
        assert_non_null(oe);
        size_t in_len = (size_t)(ie - ip);
        /* "timestamp,value" copied as written, then ",score". */
        assert_memory_equal(op, ip, in_len);
        assert_true(op[in_len] == ',');
        char *end;
        double sc = strtod(op + in_len + 1, &end);
        assert_true(end == oe);
        assert_true(sc >= 0 && sc <= 1);
        if (sc > best) best = sc, best_row = rows;
        rows++;
        ip = ie + 1;
        op = oe + 1;
    }
    assert_int_equal(rows, n_rows);
    free(out);
    return best_row;
}

static void test_nab(void **state)
{
    (void)state;
    mk_rng rng = {SEED};
    printf("seed %u\n", SEED);
    char *dir = mk_test_dir("cli_nab");
    char p[8192], in[2048], outd[2048];
    snprintf(in, sizeof in, "%s/corpus", dir);
    snprintf(outd, sizeof outd, "%s/out", dir);
    const char *sub[] = {"", "/catA", "/catB", "/labels", "/config"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s%s", in, sub[i]);
        assert_int_equal(mkdir(p, 0777), 0);
    }
    char *a = make_nab_csv(1000, 1, &rng);
    char *b = make_nab_csv(800, 0, &rng);
    snprintf(p, sizeof p, "%s/catA/spiky.csv", in);
    write_file(p, a);
    snprintf(p, sizeof p, "%s/catB/calm.csv", in);
    write_file(p, b);
    snprintf(p, sizeof p, "%s/catB/notes.csv", in);
    write_file(p, "kind,service\nx,y\n");
    snprintf(p, sizeof p, "%s/labels/combined_windows.json", in);
    write_file(p, "{}\n");
    snprintf(p, sizeof p, "%s/labels/extra.csv", in);
    write_file(p, "timestamp,value\n2014-04-01 00:00:00,1\n");
    snprintf(p, sizeof p, "%s/config/profiles.json", in);
    write_file(p, "{}\n");

    char *o, *e;
    const char *args[] = {"nab", "--in", in, "--out", outd, "--tmp", dir, NULL};
    int st = run(dir, &o, &e, args);
    if (st != 0) fprintf(stderr, "stdout:\n%s\nstderr:\n%s\n", o, e);
    assert_int_equal(st, 0);
    assert_non_null(strstr(o, "files: 2\n"));
    assert_non_null(strstr(o, "rows: 1800\n"));
    assert_non_null(strstr(e, "notes.csv")); /* skipped, and said so */
    free(o);
    free(e);
    snprintf(p, sizeof p, "%s/catA/meerkat_spiky.csv", outd);
    assert_int_equal(check_output(a, p, 1000), SPIKE_ROW);
    snprintf(p, sizeof p, "%s/catB/meerkat_calm.csv", outd);
    check_output(b, p, 800);
    /* Nothing else was written: no labels/ or config/ results, no notes. */
    snprintf(p, sizeof p, "%s/labels", outd);
    assert_int_not_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/catB/meerkat_notes.csv", outd);
    assert_int_not_equal(access(p, F_OK), 0);

    /* Usage errors. */
    const char *bad[] = {"nab", "--in", in, NULL};
    assert_int_equal(run(dir, &o, &e, bad), 2);
    free(o);
    free(e);
    const char *badp[] = {"nab", "--in", in, "--out", outd, "--param", "nope=1", NULL};
    assert_int_equal(run(dir, &o, &e, badp), 2);
    free(o);
    free(e);
    free(a);
    free(b);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_score(void **state)
{
    (void)state;
    mk_rng rng = {SEED + 1};
    printf("seed %u\n", SEED + 1);
    char *dir = mk_test_dir("cli_score");
    char lp[4096], db[4096];
    snprintf(lp, sizeof lp, "%s/in.lp", dir);
    snprintf(db, sizeof db, "%s/db", dir);
    enum { N = 600 };
    const int64_t t0_s = 1764547200;
    mk_sbuf b = {0};
    for (int i = 0; i < N; i++) {
        double v = 100 + (mk_rng_unit(&rng) - 0.5) * 10 + (i == 400 ? 500 : 0);
        mk_sb_printf(&b, "svc,service=api p95_ms=%.2f,qps=%d %" PRId64 "\n", v, 50 + i % 7,
                     t0_s + i * 60);
        mk_sb_printf(&b, "svc,service=db p95_ms=%.2f %" PRId64 "\n", v * 2, t0_s + i * 60);
    }
    write_file(lp, mk_sb_str(&b));
    mk_sb_free(&b);
    char *o, *e;
    const char *imp[] = {"import", "--data", db, "--precision", "s", lp, NULL};
    assert_int_equal(run(dir, &o, &e, imp), 0);
    free(o);
    free(e);

    const char *sc[] = {"score", "--data", db, "svc,service=api", "p95_ms", NULL};
    int st = run(dir, &o, &e, sc);
    if (st != 0) fprintf(stderr, "stderr:\n%s\n", e);
    assert_int_equal(st, 0);
    /* Header, then N rows ts,value,score with the test's timestamps. */
    assert_memory_equal(o, "ts,value,score\n", 15);
    const char *q = o + 15;
    int rows = 0, best_row = -1;
    double best = -1;
    while (*q) {
        int64_t ts;
        double v, s;
        int used = 0;
        assert_int_equal(sscanf(q, "%" SCNd64 ",%lf,%lf\n%n", &ts, &v, &s, &used), 3);
        assert_true(used > 0);
        assert_true(ts == (t0_s + rows * 60) * 1000);
        assert_true(s >= 0 && s <= 1);
        if (s > best) best = s, best_row = rows;
        rows++;
        q += used;
    }
    assert_int_equal(rows, N);
    assert_int_equal(best_row, 400);
    free(o);
    free(e);
    /* The same selector as one argument, restricted in time. */
    char from[64], to[64];
    snprintf(from, sizeof from, "%" PRId64 "s", t0_s + 100 * 60);
    snprintf(to, sizeof to, "%" PRId64 "s", t0_s + 200 * 60);
    const char *sc2[] = {"score", "--data", db, "--from", from, "--to", to,
                         "svc,service=api p95_ms", NULL};
    assert_int_equal(run(dir, &o, &e, sc2), 0);
    int lines = 0;
    for (const char *c = o; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, 1 + 100);
    free(o);
    free(e);
    /* Negated matcher: every p95_ms but api's -> only db's. */
    const char *sc3[] = {"score", "--data", db, "svc,service!=api p95_ms", NULL};
    assert_int_equal(run(dir, &o, &e, sc3), 0);
    lines = 0;
    for (const char *c = o; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, 1 + N);
    free(o);
    free(e);
    /* No match: exit 1. */
    const char *sc4[] = {"score", "--data", db, "svc,service=nope", NULL};
    assert_int_equal(run(dir, &o, &e, sc4), 1);
    free(o);
    free(e);
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nab),
        cmocka_unit_test(test_score),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

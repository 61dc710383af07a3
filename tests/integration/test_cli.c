/*
 * tests/integration/test_cli.c — runs the real `meerkat` binary ($MK_BIN).
 *
 * Every command is started with fork+exec, its standard input fed from the
 * test, stdout and stderr captured and its exit status checked; each run is
 * bounded (SIGKILL after RUN_TIMEOUT_MS). A run whose stderr shows a
 * sanitizer report fails whatever its status (ASan and UBSan exit 1, which
 * is also "problems found").
 *
 * The data comes from a line-protocol file the test generates from a fixed,
 * printed seed: three measurements with escapes in every position, ints,
 * unsigned, floats in several spellings and every boolean spelling, lines
 * out of order, lines backfilled days back, duplicate timestamps whose later
 * line must win, comments, blank lines, CRLF, malformed lines and string
 * fields. While writing it the test keeps its own list of the points it
 * wrote; that list, sorted with the last write winning, is the independent
 * reference every `dump` is compared with, byte for byte. Series ids (the
 * order `dump` prints series in) are computed here with XXH3-64 of the
 * canonical key as README.md defines it.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "meerkat/meerkat.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define RUN_TIMEOUT_MS 60000
#define DEFAULT_SEED 20261201u
#define T0_S 1764547200 /* 2025-12-01T00:00:00Z */

/* ---- growable string ----------------------------------------------------- */


/* ---- running the binary ----------------------------------------------- */

typedef struct run_result {
    int status; /* exit status; 128 + signal if killed */
    mk_sbuf out, err;
} run_result;

static void run_free(run_result *r)
{
    mk_sb_free(&r->out);
    mk_sb_free(&r->err);
}

typedef struct proc {
    pid_t pid;
    int in_fd, out_fd, err_fd;
} proc;

static const char *mk_bin(void)
{
    const char *b = getenv("MK_BIN");
    if (!b || !*b) fail_msg("MK_BIN is not set (run through ctest)");
    return b;
}

/* Starts MK_BIN with args (NULL-terminated) and pipes on 0, 1 and 2. */
static void spawn(const char *const *args, proc *p)
{
    int in[2], out[2], err[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    const char *argv[64];
    size_t n = 0;
    argv[n++] = mk_bin();
    for (; *args; args++) {
        assert_true(n < 63);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    *p = (proc){pid, in[1], out[0], err[0]};
}


static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Feeds in[0..n_in) (then closes stdin unless keep_stdin), collects output
 * until the process exits; kills it after RUN_TIMEOUT_MS. */
static void communicate(proc *p, const char *in, size_t n_in, int keep_stdin, run_result *r)
{
    size_t fed = 0;
    int64_t deadline = mk_test_mono_ms() + RUN_TIMEOUT_MS;
    if (!in || n_in == 0) {
        if (!keep_stdin) { close(p->in_fd); p->in_fd = -1; }
    }
    int is_out_open = 1, is_err_open = 1;
    while (is_out_open || is_err_open) {
        struct pollfd f[3];
        int nf = 0, i_out = -1, i_err = -1, i_in = -1;
        if (is_out_open) { f[nf] = (struct pollfd){p->out_fd, POLLIN, 0}; i_out = nf++; }
        if (is_err_open) { f[nf] = (struct pollfd){p->err_fd, POLLIN, 0}; i_err = nf++; }
        if (p->in_fd >= 0 && fed < n_in) { f[nf] = (struct pollfd){p->in_fd, POLLOUT, 0}; i_in = nf++; }
        int64_t left = deadline - mk_test_mono_ms();
        if (left <= 0) {
            kill(p->pid, SIGKILL);
            int st;
            waitpid(p->pid, &st, 0);
            fail_msg("meerkat did not finish within %d ms; killed", RUN_TIMEOUT_MS);
        }
        int k = poll(f, (nfds_t)nf, (int)(left > 1000 ? 1000 : left));
        if (k < 0 && errno == EINTR) continue;
        assert_true(k >= 0);
        char buf[65536];
        if (i_out >= 0 && (f[i_out].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t m = read(p->out_fd, buf, sizeof buf);
            if (m > 0) mk_sb_add(&r->out, buf, (size_t)m);
            else if (m == 0 || errno != EINTR) is_out_open = 0;
        }
        if (i_err >= 0 && (f[i_err].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t m = read(p->err_fd, buf, sizeof buf);
            if (m > 0) mk_sb_add(&r->err, buf, (size_t)m);
            else if (m == 0 || errno != EINTR) is_err_open = 0;
        }
        if (i_in >= 0 && (f[i_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
            size_t chunk = n_in - fed > 65536 ? 65536 : n_in - fed;
            ssize_t m = write(p->in_fd, in + fed, chunk);
            if (m > 0) fed += (size_t)m;
            else if (m < 0 && errno != EINTR && errno != EAGAIN) fed = n_in; /* reader gone */
            if (fed == n_in && !keep_stdin) { close(p->in_fd); p->in_fd = -1; }
        }
    }
    if (p->in_fd >= 0) { close(p->in_fd); p->in_fd = -1; }
    close(p->out_fd);
    close(p->err_fd);
    int st = 0;
    for (;;) {
        pid_t w = waitpid(p->pid, &st, WNOHANG);
        if (w == p->pid) break;
        assert_true(w == 0);
        if (mk_test_mono_ms() > deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            fail_msg("meerkat did not exit within %d ms; killed", RUN_TIMEOUT_MS);
        }
        usleep(2000);
    }
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (WIFSIGNALED(st) || strstr(mk_sb_str(&r->err), "Sanitizer") || strstr(mk_sb_str(&r->err), "runtime error:")) {
        fprintf(stderr, "---- stderr of the crashed run ----\n%s\n", mk_sb_str(&r->err));
        fail_msg("meerkat crashed or a sanitizer fired (status %d)", r->status);
    }
}

static void show_run(const char *what, const run_result *r)
{
    fprintf(stderr, "---- %s: exit %d\n---- stdout:\n%.4000s\n---- stderr:\n%.4000s\n", what, r->status,
            mk_sb_str(&r->out), mk_sb_str(&r->err));
}

/* Runs `meerkat args...` (NULL-terminated) with standard input in[0..n_in). */
static int mk_run_in(run_result *r, const char *in, size_t n_in, ...)
{
    const char *args[60];
    size_t n = 0;
    va_list ap;
    va_start(ap, n_in);
    const char *a;
    while ((a = va_arg(ap, const char *))) {
        assert_true(n < 59);
        args[n++] = a;
    }
    va_end(ap);
    args[n] = NULL;
    *r = (run_result){0};
    proc p;
    spawn(args, &p);
    communicate(&p, in, n_in, 0, r);
    return r->status;
}

#define mk_run(r, ...) mk_run_in((r), NULL, 0, __VA_ARGS__, (const char *)NULL)
#define mk_run_stdin(r, in, n, ...) mk_run_in((r), (in), (n), __VA_ARGS__, (const char *)NULL)

static void expect_status(const char *what, const run_result *r, int want)
{
    if (r->status != want) {
        show_run(what, r);
        fail_msg("%s: exit status %d, expected %d", what, r->status, want);
    }
}

static void expect_has(const char *what, const char *text, const char *needle)
{
    if (!strstr(text, needle)) {
        fprintf(stderr, "---- %s:\n%.6000s\n", what, text);
        fail_msg("%s does not contain \"%s\"", what, needle);
    }
}

/* Compares line by line and names the first difference. */
static void expect_same_text(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) == 0) return;
    size_t line = 1;
    const char *g = got, *w = want;
    while (*g && *w) {
        const char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
        size_t gl = ge ? (size_t)(ge - g) : strlen(g), wl = we ? (size_t)(we - w) : strlen(w);
        if (gl != wl || memcmp(g, w, gl) != 0) {
            fail_msg("%s: line %zu differs:\n  got:  %.*s\n  want: %.*s", what, line, (int)gl, g, (int)wl, w);
        }
        g += gl + (ge != NULL);
        w += wl + (we != NULL);
        line++;
    }
    fail_msg("%s: output has %zu bytes, expected %zu; first extra/missing line %zu:\n  got:  %.200s\n  want: %.200s",
             what, strlen(got), strlen(want), line, g, w);
}

/* Value of "name: <u64>" in text, or fails. */
static uint64_t field_u64(const char *text, const char *name)
{
    const char *p = strstr(text, name);
    if (!p) fail_msg("output has no \"%s\":\n%s", name, text);
    return strtoull(p + strlen(name), NULL, 10);
}

static char *write_file(const char *dir, const char *name, const char *data, size_t n)
{
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    return path;
}

static size_t n_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ---- the reference model ---------------------------------------------- */

#define MAX_TAGS 3
typedef struct ser {
    char meas[64];                 /* unescaped */
    char tk[MAX_TAGS][32], tv[MAX_TAGS][32]; /* unescaped, sorted by key */
    int n_tags;
    char field[32];                /* unescaped */
    char prefix[256];              /* canonical "meas,k=v,..." (escaped) */
    char field_esc[64];
    char canon[320];               /* prefix + ' ' + field_esc */
    uint64_t id;
} ser;

typedef struct pt {
    uint32_t s;
    int64_t ts;
    double v;
    uint64_t order;
} pt;

typedef struct model {
    ser *s;
    size_t n_s, cap_s;
    pt *p;
    size_t n_p, cap_p;
    uint64_t n_writes;
} model;

static void esc(char *out, size_t cap, const char *in, const char *specials)
{
    size_t n = 0;
    for (; *in; in++) {
        if (strchr(specials, *in)) { assert_true(n + 1 < cap); out[n++] = '\\'; }
        assert_true(n + 1 < cap);
        out[n++] = *in;
    }
    out[n] = 0;
}

#define ESC_MEAS ", "
#define ESC_TAG ",= "

/* Series (meas, tags in any order, field): finds or adds; returns its index. */
static uint32_t model_series(model *m, const char *meas, const char *const *tk, const char *const *tv, int n_tags,
                             const char *field)
{
    ser s;
    memset(&s, 0, sizeof s);
    snprintf(s.meas, sizeof s.meas, "%s", meas);
    snprintf(s.field, sizeof s.field, "%s", field);
    s.n_tags = n_tags;
    int order[MAX_TAGS];
    for (int i = 0; i < n_tags; i++) order[i] = i;
    for (int i = 1; i < n_tags; i++) /* insertion sort by key, bytewise */
        for (int j = i; j > 0 && strcmp(tk[order[j - 1]], tk[order[j]]) > 0; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    char e[128];
    esc(s.prefix, sizeof s.prefix, meas, ESC_MEAS);
    for (int i = 0; i < n_tags; i++) {
        snprintf(s.tk[i], sizeof s.tk[i], "%s", tk[order[i]]);
        snprintf(s.tv[i], sizeof s.tv[i], "%s", tv[order[i]]);
        strcat(s.prefix, ",");
        esc(e, sizeof e, s.tk[i], ESC_TAG);
        strcat(s.prefix, e);
        strcat(s.prefix, "=");
        esc(e, sizeof e, s.tv[i], ESC_TAG);
        strcat(s.prefix, e);
    }
    esc(s.field_esc, sizeof s.field_esc, field, ESC_TAG);
    snprintf(s.canon, sizeof s.canon, "%s %s", s.prefix, s.field_esc);
    s.id = XXH3_64bits(s.canon, strlen(s.canon));
    for (size_t i = 0; i < m->n_s; i++)
        if (strcmp(m->s[i].canon, s.canon) == 0) return (uint32_t)i;
    if (m->n_s == m->cap_s) {
        m->cap_s = m->cap_s ? m->cap_s * 2 : 64;
        m->s = realloc(m->s, m->cap_s * sizeof *m->s);
        assert_non_null(m->s);
    }
    m->s[m->n_s] = s;
    return (uint32_t)m->n_s++;
}

static void model_add(model *m, uint32_t s, int64_t ts_ms, double v)
{
    if (m->n_p == m->cap_p) {
        m->cap_p = m->cap_p ? m->cap_p * 2 : 4096;
        m->p = realloc(m->p, m->cap_p * sizeof *m->p);
        assert_non_null(m->p);
    }
    m->p[m->n_p++] = (pt){s, ts_ms, v, m->n_writes++};
}

static const model *g_sort_model;
static int cmp_pt(const void *a, const void *b)
{
    const pt *x = a, *y = b;
    uint64_t ix = g_sort_model->s[x->s].id, iy = g_sort_model->s[y->s].id;
    if (ix != iy) return ix < iy ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorted by (series id, ts), one point per (series, ts): the last written.
 * Caller frees. */
static pt *model_resolve(const model *m, size_t *n_out)
{
    pt *v = malloc((m->n_p + 1) * sizeof *v);
    assert_non_null(v);
    memcpy(v, m->p, m->n_p * sizeof *v);
    g_sort_model = m;
    qsort(v, m->n_p, sizeof *v, cmp_pt);
    size_t k = 0;
    for (size_t i = 0; i < m->n_p; i++) {
        if (k && v[k - 1].s == v[i].s && v[k - 1].ts == v[i].ts) { v[k - 1] = v[i]; continue; }
        v[k++] = v[i];
    }
    *n_out = k;
    return v;
}

/* A dump selector, unescaped. */
typedef struct selector {
    const char *text; /* as given on the command line */
    const char *meas;
    const char *tk[MAX_TAGS], *tv[MAX_TAGS];
    int n_tags;
    const char *field; /* NULL = any */
} selector;

static int sel_matches(const selector *q, const ser *s)
{
    if (strcmp(q->meas, s->meas) != 0) return 0;
    if (q->field && strcmp(q->field, s->field) != 0) return 0;
    for (int i = 0; i < q->n_tags; i++) {
        int ok = 0;
        for (int j = 0; j < s->n_tags; j++)
            if (strcmp(q->tk[i], s->tk[j]) == 0 && strcmp(q->tv[i], s->tv[j]) == 0) ok = 1;
        if (!ok) return 0;
    }
    return 1;
}

/* The exact text `meerkat dump` must print for q over [from, to). */
static void expected_dump(const model *m, const selector *q, int64_t from, int64_t to, mk_sbuf *out, size_t *n_lines)
{
    size_t n;
    pt *v = model_resolve(m, &n);
    *n_lines = 0;
    for (size_t i = 0; i < n; i++) {
        const ser *s = &m->s[v[i].s];
        if (v[i].ts < from || v[i].ts >= to || !sel_matches(q, s)) continue;
        mk_sb_printf(out, "%s %s=%.17g %" PRId64 "\n", s->prefix, s->field_esc, v[i].v, v[i].ts);
        (*n_lines)++;
    }
    free(v);
}

/* ---- the generated line-protocol file ----------------------------------- */

/* Malformed lines with their known answers (column and reason). */
static const struct bad_line {
    const char *text;
    unsigned column;
    const char *reason;
} k_bad[] = {
    {"svc,service=api qps 1764547200", 20, "missing '=' after field key 'qps'"},
    {"svc,service=api qps=12x 1764547200", 21, "invalid number '12x' for field 'qps'"},
    {"svc,service qps=1i 1764547200", 12, "missing '=' after tag key 'service'"},
    {",service=api qps=1 1764547200", 1, "missing measurement name"},
    {"svc,service=api qps=1 17645x", 23, "invalid timestamp '17645x'"},
    {"svc,service=api qps=1i,up=maybe 1764547200", 27, "'maybe' for field 'up'"},
    {"svc,service=api,service=web qps=1 1764547200", 17, "duplicate tag key 'service'"},
};
#define N_BAD (sizeof k_bad / sizeof k_bad[0])

/* Lines with a string field: the string is refused (known column), the
 * numeric field of the same line is kept. The line is prefix + " " + rest,
 * with the string field first so its column is fixed. */
static const struct str_line {
    const char *meas;
    const char *tk[2], *tv[2];
    const char *prefix;    /* the line's measurement and tags, as written */
    const char *str_field; /* text of the string field */
    const char *num_field; /* unescaped name of the numeric field */
    unsigned column;
    const char *reason;
} k_str[] = {
    {"svc", {"instance", "service"}, {"i-0", "api"}, "svc,instance=i-0,service=api", "note=\"hello, world\"", "qps", 30,
     "field 'note' has a string value"},
    {"net io", {"dc", "host"}, {"eu-1", "a b"}, "net\\ io,dc=eu-1,host=a\\ b", "msg=\"x \\\"quoted\\\" y\"", "rx", 27,
     "field 'msg' has a string value"},
};
#define N_STR (sizeof k_str / sizeof k_str[0])

enum { K_FLOAT2, K_FLOAT17, K_INT, K_UINT, K_BOOL };

typedef struct meas_def {
    const char *name;
    const char *tag_keys[2];
    const char *tag_vals[2][3]; /* per key, the values drawn from */
    int n_vals[2];
    const char *fields[4];
    int kinds[4];
    int n_fields;
} meas_def;

static const meas_def k_meas[] = {
    {"svc", {"service", "instance"}, {{"api", "checkout", "web front"}, {"i-0", "i-1"}}, {3, 2},
     {"qps", "p95_ms", "error_rate", "up"}, {K_INT, K_FLOAT2, K_FLOAT17, K_BOOL}, 4},
    {"net io", {"host", "dc"}, {{"a b", "c,d", "e=f"}, {"eu-1"}}, {3, 1},
     {"rx", "tx", "drop rate"}, {K_UINT, K_INT, K_FLOAT2}, 3},
    {"disk,sda", {"mount point", NULL}, {{"/var", "/"}}, {2, 0}, {"used=pct", "inodes"}, {K_FLOAT17, K_INT}, 2},
};
#define N_MEAS (sizeof k_meas / sizeof k_meas[0])

static const char *const k_true[] = {"t", "T", "true", "True", "TRUE"};
static const char *const k_false[] = {"f", "F", "false", "False", "FALSE"};

typedef struct bad_at {
    uint64_t line;
    unsigned column;
    const char *reason;
} bad_at;

typedef struct gen {
    mk_sbuf text;
    model m;
    uint64_t line_no;    /* physical lines written */
    uint64_t n_lines;    /* non-blank, non-comment lines */
    uint64_t n_accepted; /* numeric field values */
    uint64_t n_rejected;
    bad_at bad[N_BAD + N_STR];
    size_t n_bad;
    /* previous good lines, for duplicates: measurement, tag choice, ts */
    struct prev { int mi, v0, v1; int64_t ts_s; } *prev;
    size_t n_prev;
} gen;

/* Writes one value of kind k; returns the value it stands for. */
static double gen_value(mk_rng *r, int k, mk_sbuf *line)
{
    char t[64];
    double v = 0;
    switch (k) {
    case K_INT: {
        int64_t i = mk_rng_below(r, 4) == 0 ? (int64_t)mk_rng_below(r, 1ull << 53) - (int64_t)(1ull << 52)
                                             : (int64_t)mk_rng_below(r, 5000);
        snprintf(t, sizeof t, "%" PRId64 "i", i);
        v = (double)i;
        break;
    }
    case K_UINT: {
        uint64_t u = mk_rng_below(r, 3) == 0 ? mk_rng_below(r, 1ull << 53) : mk_rng_below(r, 100000);
        snprintf(t, sizeof t, "%" PRIu64 "u", u);
        v = (double)u;
        break;
    }
    case K_FLOAT2: {
        int which = (int)mk_rng_below(r, 4);
        double x = (double)((int64_t)mk_rng_below(r, 2000000) - 100000) / 100.0;
        if (which == 0) snprintf(t, sizeof t, "%.2f", x);
        else if (which == 1) snprintf(t, sizeof t, "%.3e", x);
        else if (which == 2) snprintf(t, sizeof t, "%d", (int)x); /* a float written as an integer */
        else snprintf(t, sizeof t, "%.1f", x);
        v = strtod(t, NULL);
        break;
    }
    case K_FLOAT17: {
        double x = (mk_rng_unit(r) - 0.25) * pow(10.0, (double)((int)mk_rng_below(r, 12) - 6));
        snprintf(t, sizeof t, "%.17g", x);
        v = strtod(t, NULL);
        break;
    }
    case K_BOOL: {
        int b = (int)mk_rng_below(r, 2);
        snprintf(t, sizeof t, "%s", b ? k_true[mk_rng_below(r, 5)] : k_false[mk_rng_below(r, 5)]);
        v = b;
        break;
    }
    }
    mk_sb_add(line, t, strlen(t));
    return v;
}

static void gen_eol(gen *g, mk_rng *r)
{
    if (mk_rng_below(r, 50) == 0) mk_sb_add(&g->text, "\r\n", 2);
    else mk_sb_add(&g->text, "\n", 1);
    g->line_no++;
}

/* One good line of measurement mi with tag values (v0, v1) at ts_s. */
static void gen_line(gen *g, mk_rng *r, int mi, int v0, int v1, int64_t ts_s)
{
    const meas_def *md = &k_meas[mi];
    const char *tk[2], *tv[2];
    int n_tags = 0;
    tk[n_tags] = md->tag_keys[0];
    tv[n_tags++] = md->tag_vals[0][v0];
    if (md->tag_keys[1]) {
        tk[n_tags] = md->tag_keys[1];
        tv[n_tags++] = md->tag_vals[1][v1];
    }
    char e[128];
    mk_sbuf line = {0};
    esc(e, sizeof e, md->name, ESC_MEAS);
    mk_sb_add(&line, e, strlen(e));
    int first = n_tags == 2 ? (int)mk_rng_below(r, 2) : 0; /* tags in any order */
    for (int i = 0; i < n_tags; i++) {
        int t = (first + i) % n_tags;
        mk_sb_add(&line, ",", 1);
        esc(e, sizeof e, tk[t], ESC_TAG);
        mk_sb_add(&line, e, strlen(e));
        mk_sb_add(&line, "=", 1);
        esc(e, sizeof e, tv[t], ESC_TAG);
        mk_sb_add(&line, e, strlen(e));
    }
    mk_sb_add(&line, " ", 1);
    int use[4], n_use = 0;
    int rot = (int)mk_rng_below(r, (uint64_t)md->n_fields);
    for (int i = 0; i < md->n_fields; i++) {
        int f = (rot + i) % md->n_fields; /* fields in any order */
        if (mk_rng_below(r, 10) < 7) use[n_use++] = f;
    }
    if (!n_use) use[n_use++] = rot;
    for (int i = 0; i < n_use; i++) {
        int f = use[i];
        if (i) mk_sb_add(&line, ",", 1);
        esc(e, sizeof e, md->fields[f], ESC_TAG);
        mk_sb_add(&line, e, strlen(e));
        mk_sb_add(&line, "=", 1);
        double v = gen_value(r, md->kinds[f], &line);
        uint32_t s = model_series(&g->m, md->name, tk, tv, n_tags, md->fields[f]);
        model_add(&g->m, s, ts_s * 1000, v);
        g->n_accepted++;
    }
    mk_sb_printf(&line, " %" PRId64, ts_s);
    mk_sb_add(&g->text, line.p, line.n);
    mk_sb_free(&line);
    g->n_lines++;
    gen_eol(g, r);
}

/* Generates the main file: n good lines, the bad and string lines spread
 * over it, comments and blank lines. */
static void gen_main(gen *g, uint64_t seed, int n)
{
    mk_rng r = {seed};
    memset(g, 0, sizeof *g);
    g->prev = calloc((size_t)n + 1, sizeof *g->prev);
    assert_non_null(g->prev);
    int bad_pos[N_BAD + N_STR];
    for (size_t i = 0; i < N_BAD + N_STR; i++) bad_pos[i] = (int)mk_rng_below(&r, (uint64_t)n);
    mk_sb_printf(&g->text, "# generated by test_cli, seed %" PRIu64 "\n", seed);
    g->line_no++;
    int64_t now_s = T0_S;
    for (int i = 0; i < n; i++) {
        for (size_t b = 0; b < N_BAD + N_STR; b++) {
            if (bad_pos[b] != i) continue;
            g->line_no++; /* the line about to be written */
            if (b < N_BAD) {
                mk_sb_printf(&g->text, "%s\n", k_bad[b].text);
                g->bad[g->n_bad++] = (bad_at){g->line_no, k_bad[b].column, k_bad[b].reason};
                g->n_lines++;
                g->n_rejected++;
            } else {
                const struct str_line *sl = &k_str[b - N_BAD];
                char e[64];
                esc(e, sizeof e, sl->num_field, ESC_TAG);
                mk_sb_printf(&g->text, "%s %s,%s=", sl->prefix, sl->str_field, e);
                const char *tk[2] = {sl->tk[0], sl->tk[1]}, *tv[2] = {sl->tv[0], sl->tv[1]};
                uint32_t s = model_series(&g->m, sl->meas, tk, tv, 2, sl->num_field);
                int kind = strcmp(sl->num_field, "rx") == 0 ? K_UINT : K_INT;
                double v = gen_value(&r, kind, &g->text);
                mk_sb_printf(&g->text, " %" PRId64 "\n", now_s);
                model_add(&g->m, s, now_s * 1000, v);
                g->bad[g->n_bad++] = (bad_at){g->line_no, sl->column, sl->reason};
                g->n_lines++;
                g->n_accepted++;
                g->n_rejected++;
            }
        }
        uint64_t roll = mk_rng_below(&r, 1000);
        if (roll < 10) { mk_sb_add(&g->text, "# a comment, with = and , in it\n", 32); g->line_no++; }
        else if (roll < 20) { mk_sb_add(&g->text, roll & 1 ? "\n" : "   \n", roll & 1 ? 1 : 4); g->line_no++; }
        now_s += 1 + (int64_t)mk_rng_below(&r, 29); /* ~15 s a line: ~33 h over 8000 lines */
        int mi = (int)mk_rng_below(&r, N_MEAS);
        int v0 = (int)mk_rng_below(&r, (uint64_t)k_meas[mi].n_vals[0]);
        int v1 = k_meas[mi].n_vals[1] ? (int)mk_rng_below(&r, (uint64_t)k_meas[mi].n_vals[1]) : 0;
        int64_t ts = now_s;
        roll = mk_rng_below(&r, 100);
        if (roll < 3) ts = now_s - 1 - (int64_t)mk_rng_below(&r, 600);               /* out of order */
        else if (roll < 5) ts = now_s - 86400 * (1 + (int64_t)mk_rng_below(&r, 4))  /* backfill days back */
                                - (int64_t)mk_rng_below(&r, 7200);
        else if (roll < 8 && g->n_prev) { /* the same series and second again: the later line wins */
            const struct prev *p = &g->prev[mk_rng_below(&r, g->n_prev)];
            mi = p->mi;
            v0 = p->v0;
            v1 = p->v1;
            ts = p->ts_s;
        }
        gen_line(g, &r, mi, v0, v1, ts);
        g->prev[g->n_prev++] = (struct prev){mi, v0, v1, ts};
    }
}

/* A clean file in ns precision: sub-ms parts rounded down, negative times,
 * two ns timestamps in one ms (the later wins). */
static void gen_ns(gen *g, uint64_t seed, int n)
{
    mk_rng r = {seed};
    memset(g, 0, sizeof *g);
    const char *tk[1] = {"svc"}, *tv[1] = {"ns"};
    uint32_t s = model_series(&g->m, "hb", tk, tv, 1, "beat");
    static const int64_t fixed[] = {-1, -999999, -1000000, -1000001, 0, 999999, 1000000,
                                    1764547200000000100, 1764547200000000900};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        int64_t ns = fixed[i];
        int64_t ms = ns / 1000000 - (ns % 1000000 < 0); /* rounds down */
        double v = (double)(i + 1);
        mk_sb_printf(&g->text, "hb,svc=ns beat=%gi %" PRId64 "\n", v, ns);
        model_add(&g->m, s, ms, v);
        g->n_lines++;
        g->n_accepted++;
    }
    int64_t ns = (int64_t)T0_S * 1000000000 + 3600 * (int64_t)1000000000;
    for (int i = 0; i < n; i++) {
        ns += (int64_t)mk_rng_below(&r, 5000000000ull);
        double v = (double)mk_rng_below(&r, 1000) / 8.0;
        mk_sb_printf(&g->text, "hb,svc=ns beat=%.17g %" PRId64 "\n", v, ns);
        model_add(&g->m, s, ns / 1000000, v);
        g->n_lines++;
        g->n_accepted++;
    }
}

static void gen_free(gen *g)
{
    mk_sb_free(&g->text);
    free(g->m.s);
    free(g->m.p);
    free(g->prev);
    memset(g, 0, sizeof *g);
}

/* ---- the shared fixture: the main file imported once ------------------ */

#define N_MAIN_LINES 8000

typedef struct fixture {
    int is_ready;
    char *root, *dir, *file;
    gen g;
    run_result import;
} fixture;

static fixture fx;
static mk_sbuf g_big; /* test_import_big_file_error_order's text: freed by teardown_all even if a check fails */
/* The seed of every generated input: DEFAULT_SEED, or $MK_CLI_SEED. */
static uint64_t test_seed(void)
{
    static uint64_t seed;
    static int is_set;
    if (!is_set) {
        const char *env_seed = getenv("MK_CLI_SEED");
        seed = env_seed && *env_seed ? strtoull(env_seed, NULL, 0) : DEFAULT_SEED;
        is_set = 1;
        fprintf(stderr, "test_cli: seed %" PRIu64 " (MK_CLI_SEED overrides)\n", seed);
    }
    return seed;
}

static fixture *main_fixture(void)
{
    if (fx.is_ready) return &fx;
    fx.root = mk_test_dir("cli");
    assert_non_null(fx.root);
    fx.dir = malloc(4200);
    snprintf(fx.dir, 4200, "%s/data", fx.root);
    gen_main(&fx.g, test_seed(), N_MAIN_LINES);
    fx.file = write_file(fx.root, "main.lp", fx.g.text.p, fx.g.text.n);
    mk_run(&fx.import, "import", "--data", fx.dir, "--precision", "s", fx.file);
    fx.is_ready = 1;
    return &fx;
}

static int teardown_all(void **state)
{
    (void)state;
    mk_sb_free(&g_big);
    if (fx.is_ready) {
        mk_test_rmrf(fx.root);
        free(fx.root);
        free(fx.dir);
        free(fx.file);
        gen_free(&fx.g);
        run_free(&fx.import);
    }
    return 0;
}

/* ---- tests: usage -------------------------------------------------------- */

static void test_version_and_help(void **state)
{
    (void)state;
    run_result r;
    mk_run(&r, "--version");
    expect_status("--version", &r, 0);
    char want[64];
    snprintf(want, sizeof want, "meerkat %s\n", MK_VERSION_STRING);
    expect_same_text("--version", mk_sb_str(&r.out), want);
    assert_string_equal(mk_version(), MK_VERSION_STRING);
    run_free(&r);

    mk_run(&r, "--help");
    expect_status("--help", &r, 0);
    for (const char *c = "import\0inspect\0verify\0dump\0--version\0"; *c; c += strlen(c) + 1)
        expect_has("meerkat --help", mk_sb_str(&r.out), c);
    run_free(&r);

    static const struct { const char *cmd; const char *opts[4]; } subs[] = {
        {"import", {"--data", "--precision", "--block-span-ms", "FILE"}},
        {"inspect", {"--data", "--verbose", NULL, NULL}},
        {"verify", {"--data", "offset", NULL, NULL}},
        {"dump", {"--data", "--from", "--to", "SELECTOR"}},
    };
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        mk_run(&r, subs[i].cmd, "--help");
        expect_status(subs[i].cmd, &r, 0);
        expect_has(subs[i].cmd, mk_sb_str(&r.out), "usage: meerkat ");
        expect_has(subs[i].cmd, mk_sb_str(&r.out), subs[i].cmd);
        for (int k = 0; k < 4 && subs[i].opts[k]; k++) expect_has(subs[i].cmd, mk_sb_str(&r.out), subs[i].opts[k]);
        assert_int_equal(r.err.n, 0);
        run_free(&r);
    }
}

static void test_usage_errors(void **state)
{
    (void)state;
    run_result r;
    mk_run(&r, "frobnicate");
    expect_status("unknown command", &r, 2);
    expect_has("stderr", mk_sb_str(&r.err), "unknown command 'frobnicate'");
    assert_int_equal(r.out.n, 0);
    run_free(&r);

    mk_run_in(&r, NULL, 0, (const char *)NULL);
    expect_status("no command", &r, 2);
    expect_has("stderr", mk_sb_str(&r.err), "usage: meerkat");
    run_free(&r);

    static const char *const cmds[] = {"import", "inspect", "verify", "dump"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(cmds[i], "dump") == 0) mk_run(&r, cmds[i], "svc");
        else mk_run(&r, cmds[i]);
        expect_status(cmds[i], &r, 2);
        expect_has(cmds[i], mk_sb_str(&r.err), "--data");
        run_free(&r);
    }

    char *root = mk_test_dir("cli-usage");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/d", root);
    mk_run(&r, "import", "--data", dir, "--precision", "hours", "-");
    expect_status("bad precision", &r, 2);
    expect_has("stderr", mk_sb_str(&r.err), "'hours'");
    run_free(&r);
    mk_run(&r, "dump", "--data", dir, "svc", "--from", "yesterday");
    expect_status("bad --from", &r, 2);
    expect_has("stderr", mk_sb_str(&r.err), "'yesterday'");
    run_free(&r);
    mk_run(&r, "dump", "--data", dir, "svc,service", "--from", "0");
    expect_status("bad selector", &r, 2);
    expect_has("stderr", mk_sb_str(&r.err), "selector");
    run_free(&r);
    mk_run(&r, "dump", "--data", dir);
    expect_status("dump without selector", &r, 2);
    run_free(&r);
    mk_run(&r, "import", "--data", dir, "--no-such-option");
    expect_status("unknown option", &r, 2);
    run_free(&r);
    mk_test_rmrf(root);
    free(root);
}

/* ---- tests: import ------------------------------------------------------ */

static void check_import_report(const char *what, const run_result *r, const char *file, const gen *g)
{
    uint64_t lines = field_u64(mk_sb_str(&r->out), "lines: ");
    uint64_t acc = field_u64(mk_sb_str(&r->out), "samples accepted: ");
    uint64_t rej = field_u64(mk_sb_str(&r->out), "samples rejected: ");
    uint64_t errs = field_u64(mk_sb_str(&r->out), "errors: ");
    if (lines != g->n_lines || acc != g->n_accepted || rej != g->n_rejected || errs != g->n_bad) {
        show_run(what, r);
        fail_msg("%s: lines %" PRIu64 " accepted %" PRIu64 " rejected %" PRIu64 " errors %" PRIu64
                 ", expected %" PRIu64 " %" PRIu64 " %" PRIu64 " %zu",
                 what, lines, acc, rej, errs, g->n_lines, g->n_accepted, g->n_rejected, g->n_bad);
    }
    expect_has(what, mk_sb_str(&r->out), "rate: ");
    /* every bad line reported as FILE:LINE:COLUMN: reason, nothing else */
    size_t n_reported = 0;
    for (const char *p = mk_sb_str(&r->err); (p = strstr(p, file)); p++) n_reported++;
    if (n_reported != g->n_bad) {
        show_run(what, r);
        fail_msg("%s: %zu error lines name %s, expected %zu", what, n_reported, file, g->n_bad);
    }
    for (size_t i = 0; i < g->n_bad; i++) {
        char want[512];
        snprintf(want, sizeof want, "%s:%" PRIu64 ":%u: ", file, g->bad[i].line, g->bad[i].column);
        expect_has(what, mk_sb_str(&r->err), want);
        const char *at = strstr(mk_sb_str(&r->err), want);
        const char *eol = strchr(at, '\n');
        size_t n = eol ? (size_t)(eol - at) : strlen(at);
        char one[600];
        snprintf(one, sizeof one, "%.*s", (int)(n < 599 ? n : 599), at);
        expect_has("the error line", one, g->bad[i].reason);
    }
}

static void test_import_file(void **state)
{
    (void)state;
    fixture *f = main_fixture();
    expect_status("import main.lp", &f->import, 1);
    check_import_report("import main.lp", &f->import, f->file, &f->g);
    fprintf(stderr, "test_cli: main.lp: %" PRIu64 " lines, %" PRIu64 " samples, %zu series\n", f->g.n_lines,
            f->g.n_accepted, f->g.m.n_s);
}

static void test_import_clean_and_precision(void **state)
{
    (void)state;
    char *root = mk_test_dir("cli-ns");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/d", root);
    gen g;
    gen_ns(&g, test_seed() + 1, 500);
    char *file = write_file(root, "ns.lp", g.text.p, g.text.n);
    run_result r;
    mk_run(&r, "import", "--data", dir, "--precision", "ns", file);
    expect_status("clean import", &r, 0);
    check_import_report("clean import", &r, file, &g);
    assert_int_equal(r.err.n, 0);
    run_free(&r);

    /* the default precision is ns too */
    char dir2[4200];
    snprintf(dir2, sizeof dir2, "%s/d2", root);
    mk_run(&r, "import", "--data", dir2, file);
    expect_status("clean import, default precision", &r, 0);
    run_free(&r);

    mk_sbuf want = {0};
    size_t n_want;
    selector q = {"hb", "hb", {0}, {0}, 0, NULL};
    expected_dump(&g.m, &q, INT64_MIN, INT64_MAX, &want, &n_want);
    const char *dirs[] = {dir, dir2};
    for (int i = 0; i < 2; i++) {
        mk_run(&r, "dump", "--data", dirs[i], "hb");
        expect_status("dump hb", &r, 0);
        expect_same_text("dump of the ns import", mk_sb_str(&r.out), mk_sb_str(&want));
        run_free(&r);
    }
    /* known answers of the rounding: -1, -999999 and -1000000 ns are all
     * -1 ms (the last written wins), -1000001 ns is -2 ms, 999999 ns is 0 ms */
    static const char *const known = "hb,svc=ns beat=4 -2\nhb,svc=ns beat=3 -1\nhb,svc=ns beat=6 0\n"
                                     "hb,svc=ns beat=7 1\nhb,svc=ns beat=9 1764547200000\n";
    assert_int_equal(strncmp(mk_sb_str(&want), known, strlen(known)), 0);
    mk_sb_free(&want);
    free(file);
    gen_free(&g);
    mk_test_rmrf(root);
    free(root);
}

static void test_import_stdin(void **state)
{
    (void)state;
    fixture *f = main_fixture();
    char *root = mk_test_dir("cli-stdin");
    char dir[4200], dir2[4200];
    snprintf(dir, sizeof dir, "%s/d", root);
    snprintf(dir2, sizeof dir2, "%s/d2", root);
    run_result r;
    mk_run_stdin(&r, f->g.text.p, f->g.text.n, "import", "--data", dir, "--precision", "s", "-");
    expect_status("import -", &r, 1);
    check_import_report("import -", &r, "<stdin>", &f->g);
    run_free(&r);
    /* no FILE argument reads standard input too */
    mk_run_stdin(&r, f->g.text.p, f->g.text.n, "import", "--data", dir2, "--precision", "s");
    expect_status("import (no file)", &r, 1);
    check_import_report("import (no file)", &r, "<stdin>", &f->g);
    run_free(&r);

    /* the same data as the file import */
    for (size_t mi = 0; mi < N_MEAS; mi++) {
        char sel[64];
        esc(sel, sizeof sel, k_meas[mi].name, ESC_MEAS);
        run_result a, b, c;
        mk_run(&a, "dump", "--data", f->dir, sel);
        mk_run(&b, "dump", "--data", dir, sel);
        mk_run(&c, "dump", "--data", dir2, sel);
        expect_status("dump", &a, 0);
        expect_same_text("stdin import vs file import", mk_sb_str(&b.out), mk_sb_str(&a.out));
        expect_same_text("stdin import vs file import", mk_sb_str(&c.out), mk_sb_str(&a.out));
        run_free(&a);
        run_free(&b);
        run_free(&c);
    }

    /* a line without a timestamp gets the current time */
    int64_t before = wall_ms();
    const char *nots = "nots,k=v x=1.5\n";
    mk_run_stdin(&r, nots, strlen(nots), "import", "--data", dir, "-");
    int64_t after = wall_ms();
    expect_status("import without timestamp", &r, 0);
    run_free(&r);
    mk_run(&r, "dump", "--data", dir, "nots");
    expect_status("dump nots", &r, 0);
    const char *sp = strrchr(mk_sb_str(&r.out), ' ');
    assert_non_null(sp);
    int64_t ts = strtoll(sp + 1, NULL, 10);
    if (ts < before - 1000 || ts > after + 1000)
        fail_msg("a line without a timestamp was stored at %" PRId64 " ms, not the current time (%" PRId64 "..%" PRId64 ")",
                 ts, before, after);
    run_free(&r);
    mk_test_rmrf(root);
    free(root);
}

static void test_import_error_cap(void **state)
{
    (void)state;
    char *root = mk_test_dir("cli-cap");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/d", root);
    mk_sbuf t = {0};
    for (int i = 0; i < 15; i++) mk_sb_printf(&t, "m v=1 %d\nm v 2\n", i + 1);
    char *file = write_file(root, "cap.lp", t.p, t.n);
    run_result r;
    mk_run(&r, "import", "--data", dir, "--precision", "s", file);
    expect_status("import cap.lp", &r, 1);
    assert_int_equal(field_u64(mk_sb_str(&r.out), "lines: "), 30);
    assert_int_equal(field_u64(mk_sb_str(&r.out), "samples accepted: "), 15);
    assert_int_equal(field_u64(mk_sb_str(&r.out), "samples rejected: "), 15);
    size_t n = 0;
    for (const char *p = mk_sb_str(&r.err); (p = strstr(p, file)); p++) n++;
    assert_int_equal(n, 10);
    for (int i = 0; i < 10; i++) {
        char want[4300];
        snprintf(want, sizeof want, "%s:%d:4: ", file, 2 * i + 2);
        expect_has("stderr", mk_sb_str(&r.err), want);
    }
    expect_has("stderr", mk_sb_str(&r.err), "... and 5 more errors");
    run_free(&r);
    mk_sb_free(&t);
    free(file);
    mk_test_rmrf(root);
    free(root);
}

/* A file large enough to be cut into several pieces (parsed by several
 * threads): the errors shown are the first ten of the file, in file order,
 * and a line late in the file wins over an early one with the same
 * timestamp. */
static void test_import_big_file_error_order(void **state)
{
    (void)state;
    char *root = mk_test_dir("cli-big");
    mk_sbuf t = {0};
    const int n_lines = 260000, n_bad = 13, every = n_lines / n_bad;
    uint64_t bad_lines[16];
    int k = 0;
    for (int i = 0; i < n_lines; i++) {
        if (i % every == 7 && k < n_bad) {
            mk_sb_printf(&t, "m,host=h%d v\n", i % 10);
            bad_lines[k++] = (uint64_t)i + 1;
        } else if (i == n_lines - 1) {
            mk_sb_printf(&t, "m,host=h3 v=-1,w=-1.5 %d\n", T0_S + 3); /* overwrites line 4 */
        } else {
            mk_sb_printf(&t, "m,host=h%d v=%di,w=%d.5 %d\n", i % 10, i, i, T0_S + i);
        }
    }
    assert_int_equal(k, n_bad);
    assert_true(t.n > 9u << 20);
    char *file = write_file(root, "big.lp", t.p, t.n);
    g_big = t; /* owned by g_big from here */
    t = (mk_sbuf){0};
    static const char *const threads[] = {"1", "4"};
    for (int th = 0; th < 2; th++) {
        char dir[4200], what[64];
        snprintf(dir, sizeof dir, "%s/d%d", root, th);
        snprintf(what, sizeof what, "import --threads %s big.lp", threads[th]);
        run_result ir, r;
        mk_run(&ir, "import", "--data", dir, "--threads", threads[th], "--precision", "s", file);
        expect_status(what, &ir, 1);
        assert_int_equal(field_u64(mk_sb_str(&ir.out), "lines: "), n_lines);
        assert_int_equal(field_u64(mk_sb_str(&ir.out), "samples accepted: "), 2 * (n_lines - n_bad));
        assert_int_equal(field_u64(mk_sb_str(&ir.out), "samples rejected: "), n_bad);
        mk_run(&r, "dump", "--data", dir, "m,host=h3", "--from", "1764547203s", "--to", "1764547204s");
        /* series print in id order */
        const char *lv = "m,host=h3 v=-1 1764547203000\n", *lw = "m,host=h3 w=-1.5 1764547203000\n";
        int is_v_first = XXH3_64bits("m,host=h3 v", 11) < XXH3_64bits("m,host=h3 w", 11);
        char both[128];
        snprintf(both, sizeof both, "%s%s", is_v_first ? lv : lw, is_v_first ? lw : lv);
        expect_same_text("the last line wins", mk_sb_str(&r.out), both);
        run_free(&r);
        mk_sbuf want = {0};
        for (int i = 0; i < 10; i++)
            mk_sb_printf(&want, "%s:%" PRIu64 ":12: missing '=' after field key 'v'\n", file, bad_lines[i]);
        mk_sb_printf(&want, "... and %d more errors\n", n_bad - 10);
        expect_same_text(what, mk_sb_str(&ir.err), mk_sb_str(&want));
        mk_sb_free(&want);
        run_free(&ir);
    }
    mk_sb_free(&g_big);
    free(file);
    mk_test_rmrf(root);
    free(root);
}

/* A FILE that is not a regular file (/dev/stdin, a FIFO, a shell's
 * <(zcat x.gz)) is read like any other: every line is loaded. */
static void test_import_non_regular_file(void **state)
{
    (void)state;
    char *root = mk_test_dir("cli-devstdin");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/d", root);
    const char *lp = "pipe,k=v x=1 1764547200\npipe,k=v x=2 1764547201\n";
    run_result r;
    mk_run_stdin(&r, lp, strlen(lp), "import", "--data", dir, "--precision", "s", "/dev/stdin");
    expect_status("import /dev/stdin", &r, 0);
    if (field_u64(mk_sb_str(&r.out), "lines: ") != 2) {
        show_run("import /dev/stdin", &r);
        fail_msg("import of /dev/stdin (a pipe) loaded %" PRIu64 " of 2 lines and still exited 0",
                 field_u64(mk_sb_str(&r.out), "lines: "));
    }
    run_free(&r);
    mk_run(&r, "dump", "--data", dir, "pipe");
    expect_same_text("dump pipe", mk_sb_str(&r.out), "pipe,k=v x=1 1764547200000\npipe,k=v x=2 1764547201000\n");
    run_free(&r);
    mk_test_rmrf(root);
    free(root);
}

static void test_import_missing_file(void **state)
{
    (void)state;
    char *root = mk_test_dir("cli-missing");
    char dir[4200], file[4200];
    snprintf(dir, sizeof dir, "%s/d", root);
    snprintf(file, sizeof file, "%s/no-such-file.lp", root);
    run_result r;
    mk_run(&r, "import", "--data", dir, "--precision", "s", file);
    if (r.status == 0) { show_run("import of a missing file", &r); fail_msg("exit status 0"); }
    expect_status("import of a missing file", &r, 3);
    char want[4300];
    snprintf(want, sizeof want, "%s: No such file or directory", file);
    expect_has("stderr", mk_sb_str(&r.err), want);
    /* nothing unrelated (such as a stale message about index.mki) */
    if (strstr(mk_sb_str(&r.err), "index.mki")) { show_run("import of a missing file", &r); fail_msg("misleading message"); }
    run_free(&r);
    mk_test_rmrf(root);
    free(root);
}

/* A second process importing into a directory held by another gets exit 3
 * and "in use" naming the holder. Holder 1: a `meerkat import` reading a
 * pipe the test keeps open. Holder 2: the test process, through the library. */
static void test_import_locked(void **state)
{
    (void)state;
    char *root = mk_test_dir("cli-lock");
    char dir[4200], lock[4300];
    snprintf(dir, sizeof dir, "%s/d", root);
    snprintf(lock, sizeof lock, "%s/LOCK", dir);
    const char *line1 = "held v=1 1764547200\n", *line2 = "other v=2 1764547200\n";

    const char *args[] = {"import", "--data", dir, "--precision", "s", "-", NULL};
    proc holder;
    spawn(args, &holder);
    assert_int_equal(write(holder.in_fd, line1, strlen(line1)), (ssize_t)strlen(line1));
    /* wait until the holder has the lock: it writes its pid into LOCK */
    char want_pid[32];
    snprintf(want_pid, sizeof want_pid, "%d\n", (int)holder.pid);
    int64_t deadline = mk_test_mono_ms() + RUN_TIMEOUT_MS;
    for (;;) {
        char buf[32] = "";
        FILE *lf = fopen(lock, "r");
        if (lf) {
            size_t n = fread(buf, 1, sizeof buf - 1, lf);
            buf[n] = 0;
            fclose(lf);
        }
        if (strcmp(buf, want_pid) == 0) break;
        if (mk_test_mono_ms() > deadline) { kill(holder.pid, SIGKILL); fail_msg("the first import never took the lock"); }
        usleep(5000);
    }
    run_result r;
    mk_run_stdin(&r, line2, strlen(line2), "import", "--data", dir, "--precision", "s", "-");
    expect_status("import into a held directory", &r, 3);
    expect_has("stderr", mk_sb_str(&r.err), "in use");
    char pid_text[48];
    snprintf(pid_text, sizeof pid_text, "pid %d", (int)holder.pid);
    expect_has("stderr", mk_sb_str(&r.err), pid_text);
    run_free(&r);
    /* the holder finishes normally once its input ends */
    run_result hr = {0};
    communicate(&holder, NULL, 0, 0, &hr);
    expect_status("the holding import", &hr, 0);
    assert_int_equal(field_u64(mk_sb_str(&hr.out), "samples accepted: "), 1);
    run_free(&hr);
    mk_run(&r, "dump", "--data", dir, "held");
    expect_same_text("dump held", mk_sb_str(&r.out), "held v=1 1764547200000\n");
    run_free(&r);
    mk_run(&r, "dump", "--data", dir, "other");
    expect_same_text("dump other", mk_sb_str(&r.out), "");
    run_free(&r);

    /* the test process holds it through the library */
    mk_db *db = NULL;
    mk_diag d = {0};
    assert_int_equal(mk_db_open(dir, NULL, &db, &d), MK_OK);
    mk_run_stdin(&r, line2, strlen(line2), "import", "--data", dir, "--precision", "s", "-");
    expect_status("import into a directory open in the library", &r, 3);
    expect_has("stderr", mk_sb_str(&r.err), "in use");
    snprintf(pid_text, sizeof pid_text, "pid %d", (int)getpid());
    expect_has("stderr", mk_sb_str(&r.err), pid_text);
    run_free(&r);
    /* readers do not need the lock */
    mk_run(&r, "dump", "--data", dir, "held");
    expect_status("dump beside a writer", &r, 0);
    expect_same_text("dump held", mk_sb_str(&r.out), "held v=1 1764547200000\n");
    run_free(&r);
    mk_run(&r, "verify", "--data", dir);
    expect_status("verify beside a writer", &r, 0);
    run_free(&r);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    /* released: now it works */
    mk_run_stdin(&r, line2, strlen(line2), "import", "--data", dir, "--precision", "s", "-");
    expect_status("import after the holder closed", &r, 0);
    run_free(&r);
    mk_test_rmrf(root);
    free(root);
}

/* ---- tests: dump ---------------------------------------------------------- */

static void check_dump(const fixture *f, const selector *q, const char *from, int64_t from_ms, const char *to,
                       int64_t to_ms)
{
    mk_sbuf want = {0};
    size_t n_want;
    expected_dump(&f->g.m, q, from_ms, to_ms, &want, &n_want);
    run_result r;
    const char *args[12];
    size_t n = 0;
    args[n++] = "dump";
    args[n++] = "--data";
    args[n++] = f->dir;
    args[n++] = q->text;
    if (from) { args[n++] = "--from"; args[n++] = from; }
    if (to) { args[n++] = "--to"; args[n++] = to; }
    args[n] = NULL;
    r = (run_result){0};
    proc p;
    spawn(args, &p);
    communicate(&p, NULL, 0, 0, &r);
    char what[512];
    snprintf(what, sizeof what, "dump '%s' --from %s --to %s", q->text, from ? from : "-", to ? to : "-");
    expect_status(what, &r, 0);
    expect_same_text(what, mk_sb_str(&r.out), mk_sb_str(&want));
    fprintf(stderr, "test_cli: %s: %zu samples\n", what, n_want);
    int is_any = 0;
    for (size_t i = 0; i < f->g.m.n_s; i++) is_any |= sel_matches(q, &f->g.m.s[i]);
    if (!is_any) expect_has(what, mk_sb_str(&r.err), "no series matches");
    run_free(&r);
    mk_sb_free(&want);
}

static void test_dump_selectors_and_ranges(void **state)
{
    (void)state;
    fixture *f = main_fixture();
    expect_status("import main.lp", &f->import, 1);
    static const selector sels[] = {
        {"svc", "svc", {0}, {0}, 0, NULL},
        {"svc,service=api p95_ms", "svc", {"service"}, {"api"}, 1, "p95_ms"},
        {"svc,service=web\\ front", "svc", {"service"}, {"web front"}, 1, NULL},
        {"svc,instance=i-1,service=checkout up", "svc", {"instance", "service"}, {"i-1", "checkout"}, 2, "up"},
        {"net\\ io", "net io", {0}, {0}, 0, NULL},
        {"net\\ io,host=c\\,d", "net io", {"host"}, {"c,d"}, 1, NULL},
        {"net\\ io,host=e\\=f,dc=eu-1 drop\\ rate", "net io", {"host", "dc"}, {"e=f", "eu-1"}, 2, "drop rate"},
        {"disk\\,sda used\\=pct", "disk,sda", {0}, {0}, 0, "used=pct"},
        {"disk\\,sda,mount\\ point=/", "disk,sda", {"mount point"}, {"/"}, 1, NULL},
    };
    for (size_t i = 0; i < sizeof sels / sizeof sels[0]; i++) check_dump(f, &sels[i], NULL, INT64_MIN, NULL, INT64_MAX);

    /* ranges, in every accepted form; to is exclusive */
    static const struct { const char *from; int64_t from_ms; const char *to; int64_t to_ms; } ranges[] = {
        {"2025-12-01T06:00:00Z", 1764568800000, "1764576000s", 1764576000000},
        {"1764547200000", 1764547200000, "2025-12-01T02:00:00.5+01:00", 1764550800500},
        {"1764561600000000us", 1764561600000, "1764565200000000000ns", 1764565200000},
        {"2025-11-28T12:30:00.250Z", 1764333000250, "2025-11-30T00:00:00-02:00", 1764468000000},
        {NULL, INT64_MIN, "2025-11-29T00:00:00Z", 1764374400000},
        {"2025-12-02T06:00:00Z", 1764655200000, NULL, INT64_MAX},
        {"1764600000s", 1764600000000, "1764600000s", 1764600000000}, /* empty range */
    };
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++)
        for (size_t i = 0; i < sizeof sels / sizeof sels[0]; i += 3)
            check_dump(f, &sels[i], ranges[k].from, ranges[k].from_ms, ranges[k].to, ranges[k].to_ms);
    /* exact range edges: every sample's own timestamp as from and as to */
    size_t n;
    pt *v = model_resolve(&f->g.m, &n);
    mk_rng r = {test_seed() + 7};
    for (int k = 0; k < 4; k++) {
        const pt *a = &v[mk_rng_below(&r, n)];
        const ser *s = &f->g.m.s[a->s];
        selector q = {s->canon, s->meas, {0}, {0}, s->n_tags, s->field};
        for (int t = 0; t < s->n_tags; t++) { q.tk[t] = s->tk[t]; q.tv[t] = s->tv[t]; }
        char from[32], to[32];
        snprintf(from, sizeof from, "%" PRId64, a->ts);
        snprintf(to, sizeof to, "%" PRId64, a->ts + 1);
        check_dump(f, &q, from, a->ts, to, a->ts + 1);
        check_dump(f, &q, NULL, INT64_MIN, from, a->ts);
    }
    free(v);

    selector none = {"nosuch,service=api", "nosuch", {"service"}, {"api"}, 1, NULL};
    check_dump(f, &none, NULL, INT64_MIN, NULL, INT64_MAX);
    selector nofield = {"svc no_such_field", "svc", {0}, {0}, 0, "no_such_field"};
    check_dump(f, &nofield, NULL, INT64_MIN, NULL, INT64_MAX);
}

static void test_dump_round_trip(void **state)
{
    (void)state;
    fixture *f = main_fixture();
    char *root = mk_test_dir("cli-rt");
    char dir2[4200];
    snprintf(dir2, sizeof dir2, "%s/d2", root);
    mk_sbuf all = {0};
    char sels[N_MEAS][64];
    size_t n_lines = 0;
    for (size_t mi = 0; mi < N_MEAS; mi++) {
        esc(sels[mi], sizeof sels[mi], k_meas[mi].name, ESC_MEAS);
        run_result r;
        mk_run(&r, "dump", "--data", f->dir, sels[mi]);
        expect_status("dump", &r, 0);
        mk_sb_add(&all, r.out.p ? r.out.p : "", r.out.n);
        for (size_t i = 0; i < r.out.n; i++) n_lines += r.out.p[i] == '\n';
        run_free(&r);
    }
    size_t n_distinct;
    free(model_resolve(&f->g.m, &n_distinct));
    assert_int_equal(n_lines, n_distinct);
    char *file = write_file(root, "dump.lp", all.p, all.n);
    run_result r;
    mk_run(&r, "import", "--data", dir2, "--precision", "ms", file);
    expect_status("import of the dump", &r, 0);
    assert_int_equal(field_u64(mk_sb_str(&r.out), "lines: "), n_lines);
    assert_int_equal(field_u64(mk_sb_str(&r.out), "samples accepted: "), n_lines);
    run_free(&r);
    mk_sbuf again = {0};
    for (size_t mi = 0; mi < N_MEAS; mi++) {
        mk_run(&r, "dump", "--data", dir2, sels[mi]);
        expect_status("dump of the copy", &r, 0);
        mk_sb_add(&again, r.out.p ? r.out.p : "", r.out.n);
        run_free(&r);
    }
    expect_same_text("dump after the round trip", mk_sb_str(&again), mk_sb_str(&all));
    mk_sb_free(&all);
    mk_sb_free(&again);
    free(file);
    mk_test_rmrf(root);
    free(root);
}

/* ---- tests: inspect and verify ---------------------------------------- */

static void test_inspect(void **state)
{
    (void)state;
    fixture *f = main_fixture();
    run_result r;
    mk_run(&r, "inspect", "--data", f->dir);
    expect_status("inspect", &r, 0);
    size_t n_distinct;
    free(model_resolve(&f->g.m, &n_distinct));
    const char *out = mk_sb_str(&r.out);
    uint64_t n_series = field_u64(out, "series in index.mki: ");
    uint64_t n_blocks = field_u64(out, "blocks: ");
    uint64_t n_samples = field_u64(out, ", samples: ");
    /* import merges sparse windows into few blocks: at least one */
    if (n_series != f->g.m.n_s || n_blocks < 1 || n_samples != n_distinct) {
        show_run("inspect", &r);
        fail_msg("inspect: %" PRIu64 " series, %" PRIu64 " blocks, %" PRIu64 " samples; expected %zu series, "
                 ">= 1 block, %zu samples",
                 n_series, n_blocks, n_samples, f->g.m.n_s, n_distinct);
    }
    expect_has("inspect", out, "bytes/sample");
    expect_has("inspect", out, "wal: 0 segments");
    expect_has("inspect", out, "time range: 2025-11-");
    run_free(&r);
    mk_run(&r, "inspect", "--data", f->dir, "--verbose");
    expect_status("inspect --verbose", &r, 0);
    expect_has("inspect --verbose", mk_sb_str(&r.out), "\n0000000000000001 ");
    expect_has("inspect --verbose", mk_sb_str(&r.out), "B/sample");
    run_free(&r);
}

static void test_verify_clean(void **state)
{
    (void)state;
    fixture *f = main_fixture();
    run_result r;
    mk_run(&r, "verify", "--data", f->dir);
    expect_status("verify", &r, 0);
    expect_has("verify", mk_sb_str(&r.out), "all checksums good");
    if (strstr(mk_sb_str(&r.out), "DAMAGE")) { show_run("verify", &r); fail_msg("verify reports damage on a clean import"); }
    char want[64];
    snprintf(want, sizeof want, ": %zu series, ", f->g.m.n_s);
    expect_has("verify", mk_sb_str(&r.out), want);
    expect_has("verify", mk_sb_str(&r.out), " 0 WAL records");
    run_free(&r);
    /* an import leaves no WAL behind */
    char wal[4300];
    snprintf(wal, sizeof wal, "%s/wal", f->dir);
    struct stat sb;
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(n_dir_entries(wal), 0);
    /* verify of a directory that does not exist */
    char nodir[4300];
    snprintf(nodir, sizeof nodir, "%s/no-such-dir", f->root);
    mk_run(&r, "verify", "--data", nodir);
    expect_status("verify of a missing directory", &r, 3);
    expect_has("stderr", mk_sb_str(&r.err), "no such data directory");
    run_free(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_import_file),
        cmocka_unit_test(test_import_clean_and_precision),
        cmocka_unit_test(test_import_stdin),
        cmocka_unit_test(test_import_error_cap),
        cmocka_unit_test(test_import_big_file_error_order),
        cmocka_unit_test(test_import_non_regular_file),
        cmocka_unit_test(test_import_missing_file),
        cmocka_unit_test(test_import_locked),
        cmocka_unit_test(test_dump_selectors_and_ranges),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_verify_clean),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}

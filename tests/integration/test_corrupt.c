/*
 * tests/integration/test_corrupt.c — damaged data directories (the storage
 * issue's corruption test).
 *
 * One pristine directory is built through the library, in three phases,
 * while the test keeps its own log of every sample written:
 *   A  ten hours of several series written in time order, so blocks are
 *      sealed window by window, then mk_db_flush: one block per 2 h window,
 *      one series dense enough to need two chunks per window;
 *   B  backfill and overwrites into those windows, then mk_db_flush: newer
 *      blocks overlapping the phase A ones;
 *   C  a new series and more overwrites and samples, NOT flushed, then
 *      close: a WAL segment whose records the test parses itself (and
 *      checks against the log).
 * Each damage case runs on a fresh copy (`cp -a`) of that directory: a
 * flipped bit in a chunk payload or its checksum, in a block's index/footer
 * region, in a block header; a truncated block; a flipped bit inside a WAL
 * record or in the segment header; a torn WAL tail (garbage appended, cut
 * mid-record); a deleted, damaged or truncated index.mki. For each,
 * `meerkat verify` ($MK_BIN) must name the file (and the offset where it can
 * know it); the database must still open, read-only and read-write (or, for
 * the index, fail with a message naming the file), log what it left out,
 * and every series must read back exactly what the test's log says
 * survives: the last write wins among the writes not in the damaged part.
 * Invariant the model relies on, checked on the pristine directory: blocks
 * of one phase never overlap in time, so a damaged block or chunk of phase X
 * loses exactly the phase X writes of its range (and series).
 *
 * Positions are drawn from a fixed seed, printed; MK_CORRUPT_SEED overrides.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
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

#include "block.h"
#include "meerkat/meerkat.h"

#define RUN_TIMEOUT_MS 60000
#define SPAN_MS 7200000LL
#define T0_MS 1764547200000LL /* a window boundary: 2025-12-01T00:00:00Z */
#define HOURS(h) ((int64_t)(h) * 3600000LL)

/* ---- small helpers ------------------------------------------------------ */



static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) fail_msg("command failed: %s", cmd);
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) fail_msg("%s: %s", path, strerror(errno));
    return (uint64_t)sb.st_size;
}

static void flip_byte(const char *path, uint64_t off, uint8_t mask)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= mask;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

static void cut_file(const char *path, uint64_t len) { assert_int_equal(truncate(path, (off_t)len), 0); }

static void append_bytes(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)len + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

/* Sorted names in dir ending with suffix. */
static size_t list_names(const char *dir, const char *suffix, char names[][64], size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0, sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= sl || l >= 64 || strcmp(e->d_name + l - sl, suffix) != 0) continue;
        assert_true(n < cap);
        snprintf(names[n++], 64, "%s", e->d_name);
    }
    closedir(d);
    qsort(names, n, 64, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* Runs `meerkat args...` (NULL-terminated); its stdout, then its stderr,
 * into *out (through files in scratch); returns the exit status. Killed after
 * RUN_TIMEOUT_MS; a crash or a sanitizer report fails the test. */
static int run_mk(const char *scratch, mk_sbuf *out, ...)
{
    const char *bin = getenv("MK_BIN");
    if (!bin || !*bin) fail_msg("MK_BIN is not set (run through ctest)");
    const char *argv[16];
    size_t n_args = 0;
    argv[n_args++] = bin;
    va_list ap;
    va_start(ap, out);
    const char *a;
    while ((a = va_arg(ap, const char *))) {
        assert_true(n_args < 15);
        argv[n_args++] = a;
    }
    va_end(ap);
    argv[n_args] = NULL;
    char log[4200], err[4200];
    snprintf(log, sizeof log, "%s/meerkat.out", scratch);
    snprintf(err, sizeof err, "%s/meerkat.err", scratch);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || fe < 0) _exit(126);
        dup2(fd, 1);
        dup2(fe, 2);
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
            fail_msg("meerkat %s did not finish within %d ms; killed", argv[1], RUN_TIMEOUT_MS);
        }
        usleep(2000);
    }
    size_t n;
    uint8_t *p = slurp(log, &n);
    *out = (mk_sbuf){0};
    mk_sb_add(out, (const char *)p, n); /* stdout, then stderr */
    free(p);
    p = slurp(err, &n);
    mk_sb_add(out, (const char *)p, n);
    free(p);
    if (WIFSIGNALED(st) || strstr(mk_sb_str(out), "Sanitizer") || strstr(mk_sb_str(out), "runtime error:")) {
        char msg[4096];
        snprintf(msg, sizeof msg, "%s", mk_sb_str(out));
        mk_sb_free(out);
        fail_msg("meerkat %s crashed or a sanitizer fired:\n%s", argv[1], msg);
    }
    return WEXITSTATUS(st);
}

static int run_verify(const char *dir, const char *scratch, mk_sbuf *out)
{
    return run_mk(scratch, out, "verify", "--data", dir, (const char *)NULL);
}

static void expect_has(const char *what, const char *text, const char *needle)
{
    if (!strstr(text, needle)) fail_msg("%s does not contain \"%s\":\n%.4000s", what, needle, text);
}

/* ---- log capture ---------------------------------------------------------- */

typedef struct logcap {
    pthread_mutex_t mu;
    mk_sbuf text;
    int n_warn, n_err;
} logcap;

static void log_cb(void *ctx, int level, const char *msg)
{
    logcap *lc = ctx;
    pthread_mutex_lock(&lc->mu);
    const char *lv = level == MK_LOG_ERROR ? "error: " : level == MK_LOG_WARN ? "warning: " : "info: ";
    mk_sb_add(&lc->text, lv, strlen(lv));
    mk_sb_add(&lc->text, msg, strlen(msg));
    mk_sb_add(&lc->text, "\n", 1);
    if (level == MK_LOG_WARN) lc->n_warn++;
    if (level == MK_LOG_ERROR) lc->n_err++;
    pthread_mutex_unlock(&lc->mu);
}

static mk_options db_options(logcap *lc)
{
    mk_options o;
    mk_options_init(&o);
    o.fsync = MK_FSYNC_OFF;
    o.block_span_ms = SPAN_MS;
    o.seal_gap_ms = -1; /* a block per window: the damage tests need several */
    o.log = log_cb;
    o.log_ctx = lc;
    return o;
}

/* ---- the reference: every write, in order ------------------------------- */

enum { PH_A = 0, PH_B = 1, PH_C = 2 };

typedef struct wr {
    uint32_t s;
    int64_t ts;
    double v;
    int phase;
    int batch; /* phase C: index of its mk_db_write call */
} wr;

#define N_SERIES 7
static const struct {
    const char *meas, *host, *field;
    int64_t step_ms; /* phase A spacing; 0 = sparse */
} k_series[N_SERIES] = {
    {"cpu", "h0", "usage", 60000}, {"cpu", "h1", "usage", 60000}, {"cpu", "h2", "usage", 45000},
    {"cpu", "h3", "usage", 60000}, {"mem", "h0", "free", 500}, /* 14400 a window: two chunks */
    {"disk", "h1", "used", 0},     {"late", "x", "v", -1},     /* created in phase C */
};

/* A block of the pristine directory. */
typedef struct blk {
    char name[64];
    int phase;
    uint64_t seq, size, index_off;
    int64_t min_ts, max_ts;
    mk_block_chunk *chunks;
    size_t n_chunks;
} blk;

/* A record of the pristine WAL segment. */
typedef struct rec {
    uint64_t off, len; /* whole record: header, payload, checksum */
    uint8_t type;
    int batch; /* SAMPLES: which phase C batch; -1 for others */
} rec;

typedef struct base {
    char *root, *dir;
    uint64_t ids[N_SERIES];
    wr *w;
    size_t n_w, cap_w;
    blk blocks[64];
    size_t n_blocks;
    char wal_name[64];
    uint64_t wal_size;
    rec recs[256];
    size_t n_recs;
    int n_batches_c;
    uint64_t seed;
} base;

static base g;

static void log_write(uint32_t s, int64_t ts, double v, int phase, int batch)
{
    if (g.n_w == g.cap_w) {
        g.cap_w = g.cap_w ? g.cap_w * 2 : 65536;
        g.w = realloc(g.w, g.cap_w * sizeof *g.w);
        assert_non_null(g.w);
    }
    g.w[g.n_w++] = (wr){s, ts, v, phase, batch};
}

static void write_batch(mk_db *db, const mk_point *p, size_t n)
{
    mk_diag d = {0};
    if (mk_db_write(db, p, n, &d)) fail_msg("mk_db_write: %s", d.msg);
}

static int series_of(uint64_t id)
{
    for (int s = 0; s < N_SERIES; s++)
        if (g.ids[s] == id) return s;
    return -1;
}

static void note_blocks(int phase)
{
    char bdir[4200];
    snprintf(bdir, sizeof bdir, "%s/blocks", g.dir);
    char names[64][64];
    size_t n = list_names(bdir, ".mkb", names, 64);
    for (size_t i = 0; i < n; i++) {
        int is_known = 0;
        for (size_t k = 0; k < g.n_blocks; k++) is_known |= strcmp(g.blocks[k].name, names[i]) == 0;
        if (is_known) continue;
        assert_true(g.n_blocks < 64);
        blk *b = &g.blocks[g.n_blocks++];
        memset(b, 0, sizeof *b);
        snprintf(b->name, sizeof b->name, "%s", names[i]);
        b->phase = phase;
    }
    /* a later phase must not have removed an earlier phase's blocks */
    for (size_t k = 0; k < g.n_blocks; k++) {
        int is_there = 0;
        for (size_t i = 0; i < n; i++) is_there |= strcmp(g.blocks[k].name, names[i]) == 0;
        if (!is_there) fail_msg("block %s of phase %d disappeared", g.blocks[k].name, g.blocks[k].phase);
    }
}

/* Opens each block of the pristine directory and keeps its chunk list. */
static void read_block_layouts(void)
{
    for (size_t k = 0; k < g.n_blocks; k++) {
        blk *b = &g.blocks[k];
        char path[4300];
        snprintf(path, sizeof path, "%s/blocks/%s", g.dir, b->name);
        mk_block *mb = NULL;
        mk_diag d = {0};
        if (mk_block_open(mk_env_default(), path, &mb, &d)) fail_msg("mk_block_open: %s", d.msg);
        size_t n;
        const mk_block_chunk *c = mk_block_chunks(mb, &n);
        assert_true(n > 0);
        b->chunks = malloc(n * sizeof *c);
        memcpy(b->chunks, c, n * sizeof *c);
        b->n_chunks = n;
        b->seq = mk_block_seq(mb);
        b->min_ts = mk_block_min_ts(mb);
        b->max_ts = mk_block_max_ts(mb);
        b->size = file_size(path);
        /* payloads lie back to back, each followed by its 8-byte checksum;
         * the index and footer follow the last one */
        uint64_t end = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].offset + c[i].len + 8 > end) end = c[i].offset + c[i].len + 8;
        b->index_off = end;
        assert_true(b->index_off + 84 <= b->size);
        mk_block_close(mb);
    }
    /* blocks of one phase do not overlap in time: a damaged block of phase
     * X loses exactly the phase X writes within its time range */
    for (size_t i = 0; i < g.n_blocks; i++)
        for (size_t k = i + 1; k < g.n_blocks; k++)
            if (g.blocks[i].phase == g.blocks[k].phase && g.blocks[i].min_ts <= g.blocks[k].max_ts &&
                g.blocks[k].min_ts <= g.blocks[i].max_ts)
                fail_msg("blocks %s and %s of phase %d overlap in time", g.blocks[i].name, g.blocks[k].name,
                         g.blocks[i].phase);
}

/* Parses the WAL segment left by phase C (the format of engine/wal.c:
 * 24-byte header; records len u32 | type u8 | payload | xxh3 u64) and checks
 * that its sample records are exactly the phase C batches. */
static void read_wal_layout(void)
{
    char wdir[4200];
    snprintf(wdir, sizeof wdir, "%s/wal", g.dir);
    char names[16][64];
    size_t n = list_names(wdir, ".wal", names, 16);
    char path[4300];
    int n_nonempty = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", wdir, names[i]);
        if (file_size(path) > 24) {
            n_nonempty++;
            snprintf(g.wal_name, sizeof g.wal_name, "%s", names[i]);
        }
    }
    if (n_nonempty != 1) fail_msg("expected one WAL segment with records, found %d of %zu", n_nonempty, n);
    snprintf(path, sizeof path, "%s/%s", wdir, g.wal_name);
    size_t size;
    uint8_t *p = slurp(path, &size);
    g.wal_size = size;
    uint64_t off = 24;
    int batch = 0;
    size_t wi = 0; /* walks the phase C writes */
    while (wi < g.n_w && g.w[wi].phase != PH_C) wi++;
    while (off < size) {
        assert_true(off + 13 <= size);
        uint64_t len = le32(p + off);
        assert_true(off + 13 + len <= size);
        rec *r = &g.recs[g.n_recs++];
        *r = (rec){off, 13 + len, p[off + 4], -1};
        if (r->type == 2) { /* SAMPLES: u32 n, n x (id, ts, value bits) */
            const uint8_t *q = p + off + 5;
            uint32_t k = le32(q);
            assert_int_equal(4 + 24 * (uint64_t)k, len);
            for (uint32_t j = 0; j < k; j++, wi++) {
                assert_true(wi < g.n_w && g.w[wi].batch == batch);
                const uint8_t *e = q + 4 + 24 * (size_t)j;
                uint64_t bits = le64(e + 16);
                double v;
                memcpy(&v, &bits, 8);
                if (series_of(le64(e)) != (int)g.w[wi].s || (int64_t)le64(e + 8) != g.w[wi].ts || v != g.w[wi].v)
                    fail_msg("WAL record at %" PRIu64 ": sample %u is not the one written", off, j);
            }
            r->batch = batch++;
        }
        off += r->len;
        assert_true(g.n_recs < 256);
    }
    assert_int_equal(batch, g.n_batches_c);
    assert_true(wi == g.n_w);
    free(p);
}

static void build_base(void)
{
    const char *env_seed = getenv("MK_CORRUPT_SEED");
    g.seed = env_seed && *env_seed ? strtoull(env_seed, NULL, 0) : 0x5eed0c0bu;
    fprintf(stderr, "test_corrupt: seed %#" PRIx64 " (MK_CORRUPT_SEED overrides)\n", g.seed);
    mk_rng r = {g.seed};
    g.root = mk_test_dir("corrupt");
    assert_non_null(g.root);
    g.dir = malloc(4200);
    snprintf(g.dir, 4200, "%s/base", g.root);
    logcap lc = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};
    mk_options o = db_options(&lc);
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(g.dir, &o, &db, &d)) fail_msg("mk_db_open: %s", d.msg);
    for (int s = 0; s < N_SERIES - 1; s++) {
        mk_tag t[] = {{"host", k_series[s].host}};
        if (mk_db_series(db, k_series[s].meas, t, 1, k_series[s].field, &g.ids[s], &d)) fail_msg("%s", d.msg);
    }

    /* phase A: [T0 - 10 h, T0) in time order, all series interleaved */
    mk_point batch[512];
    size_t nb = 0;
    int64_t next[N_SERIES];
    for (int s = 0; s < N_SERIES; s++) next[s] = T0_MS - HOURS(10);
    for (;;) {
        int best = -1;
        for (int s = 0; s < N_SERIES; s++)
            if (k_series[s].step_ms >= 0 && next[s] < T0_MS && (best < 0 || next[s] < next[best])) best = s;
        if (best < 0) break;
        int64_t ts = next[best];
        double v = (double)(int64_t)mk_rng_below(&r, 100000) / 100.0;
        if (k_series[best].step_ms == 0) {
            next[best] += 420000; /* every 7 min, but only in some windows */
            int64_t win = (ts - (T0_MS - HOURS(10))) / SPAN_MS;
            if (win == 1 || win == 3) continue;
        } else {
            next[best] += k_series[best].step_ms;
        }
        batch[nb++] = (mk_point){g.ids[best], ts, v};
        log_write((uint32_t)best, ts, v, PH_A, -1);
        if (nb == 512) { write_batch(db, batch, nb); nb = 0; }
    }
    if (nb) { write_batch(db, batch, nb); nb = 0; }
    if (mk_db_flush(db, &d)) fail_msg("mk_db_flush: %s", d.msg);
    note_blocks(PH_A);

    /* phase B: backfill and overwrites all over the sealed windows */
    size_t n_a = g.n_w;
    for (int i = 0; i < 600; i++) {
        int64_t ts;
        uint32_t s;
        if (mk_rng_below(&r, 2)) { /* overwrite a phase A sample */
            const wr *a = &g.w[mk_rng_below(&r, n_a)];
            s = a->s;
            ts = a->ts;
        } else { /* a new timestamp */
            s = (uint32_t)mk_rng_below(&r, N_SERIES - 1);
            ts = T0_MS - HOURS(10) + (int64_t)mk_rng_below(&r, (uint64_t)HOURS(10));
        }
        double v = -(double)(int64_t)mk_rng_below(&r, 100000) / 8.0;
        batch[nb++] = (mk_point){g.ids[s], ts, v};
        log_write(s, ts, v, PH_B, -1);
        if (nb == 50) { write_batch(db, batch, nb); nb = 0; }
    }
    if (nb) { write_batch(db, batch, nb); nb = 0; }
    if (mk_db_flush(db, &d)) fail_msg("mk_db_flush: %s", d.msg);
    note_blocks(PH_B);

    /* phase C: a new series (a SERIES record), then batches left in the WAL:
     * overwrites of sealed samples, new samples, the new series */
    mk_tag t[] = {{"host", k_series[N_SERIES - 1].host}};
    if (mk_db_series(db, k_series[N_SERIES - 1].meas, t, 1, k_series[N_SERIES - 1].field, &g.ids[N_SERIES - 1], &d))
        fail_msg("%s", d.msg);
    size_t n_ab = g.n_w;
    g.n_batches_c = 12;
    for (int b = 0; b < g.n_batches_c; b++) {
        int n = 10 + (int)mk_rng_below(&r, 30);
        for (int i = 0; i < n; i++) {
            int64_t ts;
            uint32_t s;
            uint64_t kind = mk_rng_below(&r, 3);
            if (kind == 0) {
                const wr *a = &g.w[mk_rng_below(&r, n_ab)];
                s = a->s;
                ts = a->ts;
            } else if (kind == 1) {
                s = (uint32_t)mk_rng_below(&r, N_SERIES);
                ts = T0_MS - HOURS(10) + (int64_t)mk_rng_below(&r, (uint64_t)HOURS(10));
            } else { /* the head's own window, and a little past T0 */
                s = (uint32_t)mk_rng_below(&r, N_SERIES);
                ts = T0_MS - HOURS(1) + (int64_t)mk_rng_below(&r, (uint64_t)HOURS(1) + 1800000);
            }
            double v = 1e6 + (double)b * 1000 + i;
            batch[nb++] = (mk_point){g.ids[s], ts, v};
            log_write(s, ts, v, PH_C, b);
        }
        write_batch(db, batch, nb);
        nb = 0;
    }
    mk_db_stats st;
    assert_int_equal(mk_db_stats_get(db, &st), MK_OK);
    assert_true(st.n_head_samples > 0);
    if (mk_db_close(db, &d)) fail_msg("mk_db_close: %s", d.msg);
    if (lc.n_warn || lc.n_err) fail_msg("building the base logged problems:\n%s", mk_sb_str(&lc.text));
    mk_sb_free(&lc.text);

    read_block_layouts();
    read_wal_layout();
    int n_a_blocks = 0;
    for (size_t k = 0; k < g.n_blocks; k++) n_a_blocks += g.blocks[k].phase == PH_A;
    fprintf(stderr, "test_corrupt: base: %zu writes, %zu blocks (%d of phase A), WAL %s: %zu records, %" PRIu64 " bytes\n",
            g.n_w, g.n_blocks, n_a_blocks, g.wal_name, g.n_recs, g.wal_size);
    assert_true(n_a_blocks >= 5);
    assert_true(g.n_blocks > (size_t)n_a_blocks);

    /* the pristine directory is sound */
    mk_sbuf out;
    int rc = run_verify(g.dir, g.root, &out);
    if (rc != 0) fail_msg("verify of the pristine directory: exit %d\n%s", rc, mk_sb_str(&out));
    mk_sb_free(&out);
}

static int g_built; /* 0 not yet, 1 done, -1 failed */

static void ensure_base(void)
{
    if (g_built < 0) fail_msg("building the pristine directory failed in an earlier test");
    if (g_built) return;
    g_built = -1;
    build_base();
    g_built = 1;
}

/* ---- damage cases ----------------------------------------------------------- */

/* What a case destroys: writes matching it are not expected back. */
typedef struct loss {
    int kind; /* LOSS_NONE, LOSS_CHUNK, LOSS_BLOCK, LOSS_WAL_FROM */
    int phase;
    int series;
    int64_t lo, hi; /* inclusive time range */
    int from_batch; /* phase C batches >= this are lost */
} loss;
enum { LOSS_NONE, LOSS_CHUNK, LOSS_BLOCK, LOSS_WAL_FROM };

static int is_lost(const loss *l, const wr *w)
{
    switch (l->kind) {
    case LOSS_CHUNK: return w->phase == l->phase && (int)w->s == l->series && w->ts >= l->lo && w->ts <= l->hi;
    case LOSS_BLOCK: return w->phase == l->phase && w->ts >= l->lo && w->ts <= l->hi;
    case LOSS_WAL_FROM: return w->phase == PH_C && w->batch >= l->from_batch;
    default: return 0;
    }
}

typedef struct sample {
    int64_t ts;
    double v;
    size_t order;
} sample;

static int cmp_sample(const void *a, const void *b)
{
    const sample *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* The surviving samples of series s: time order, the last surviving write
 * of each timestamp. Caller frees. */
static sample *expected_series(int s, const loss *l, size_t *n_out)
{
    sample *v = malloc((g.n_w + 1) * sizeof *v);
    assert_non_null(v);
    size_t n = 0;
    for (size_t i = 0; i < g.n_w; i++)
        if ((int)g.w[i].s == s && !is_lost(l, &g.w[i])) v[n++] = (sample){g.w[i].ts, g.w[i].v, i};
    qsort(v, n, sizeof *v, cmp_sample);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && v[k - 1].ts == v[i].ts) { v[k - 1] = v[i]; continue; }
        v[k++] = v[i];
    }
    *n_out = k;
    return v;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static size_t distinct_lost_ts(int s, const loss *l)
{
    int64_t *ts = malloc((g.n_w + 1) * sizeof *ts);
    assert_non_null(ts);
    size_t n = 0;
    for (size_t i = 0; i < g.n_w; i++)
        if ((int)g.w[i].s == s && is_lost(l, &g.w[i])) ts[n++] = g.w[i].ts;
    qsort(ts, n, sizeof *ts, cmp_i64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || ts[k - 1] != ts[i]) ts[k++] = ts[i];
    free(ts);
    return k;
}

/* Reads every series of an open db and compares with the reference.
 * bad_series: the one series expected to meet MK_ECORRUPT once (-1: none);
 * bad_file/bad_off: what its diag must name. */
static void check_reads(mk_db *db, const loss *l, int bad_series, const char *bad_file, uint64_t bad_off,
                        const char *what)
{
    for (int s = 0; s < N_SERIES; s++) {
        size_t n_want;
        sample *want = expected_series(s, l, &n_want);
        mk_iter *it = NULL;
        mk_diag d = {0};
        if (mk_db_iter(db, g.ids[s], INT64_MIN, INT64_MAX, &it, &d)) fail_msg("%s: mk_db_iter: %s", what, d.msg);
        size_t got = 0;
        int n_corrupt = 0;
        for (int guard = 0;; guard++) {
            if (guard > 1000000) fail_msg("%s: series %d: the iterator never ends", what, s);
            const int64_t *ts;
            const double *v;
            size_t n;
            mk_diag id = {0};
            mk_err rc = mk_iter_next(it, &ts, &v, &n, &id);
            if (rc == MK_ECORRUPT) {
                n_corrupt++;
                if (s != bad_series) fail_msg("%s: series %d: unexpected MK_ECORRUPT: %s", what, s, id.msg);
                char off[64];
                snprintf(off, sizeof off, "offset %" PRIu64, bad_off);
                expect_has("the MK_ECORRUPT diag", id.msg, bad_file);
                expect_has("the MK_ECORRUPT diag", id.msg, off);
                if (n_corrupt > 1) fail_msg("%s: series %d: MK_ECORRUPT returned %d times", what, s, n_corrupt);
                continue;
            }
            if (rc) fail_msg("%s: series %d: mk_iter_next: %s: %s", what, s, mk_err_name(rc), id.msg);
            if (n == 0) break;
            for (size_t i = 0; i < n; i++, got++) {
                if (got >= n_want)
                    fail_msg("%s: series %d: extra sample (%" PRId64 ", %.17g) after the %zu expected", what, s, ts[i],
                             v[i], n_want);
                if (ts[i] != want[got].ts || v[i] != want[got].v)
                    fail_msg("%s: series %d: sample %zu is (%" PRId64 ", %.17g), expected (%" PRId64 ", %.17g)", what, s,
                             got, ts[i], v[i], want[got].ts, want[got].v);
            }
        }
        if (got != n_want) fail_msg("%s: series %d: %zu samples read, %zu expected", what, s, got, n_want);
        if (s == bad_series && n_corrupt != 1)
            fail_msg("%s: series %d: MK_ECORRUPT returned %d times, expected once", what, s, n_corrupt);
        mk_iter_free(it);
        free(want);
    }
}

typedef struct casedir {
    char root[4200]; /* scratch of the case */
    char dir[4300];  /* the damaged copy */
} casedir;

static void case_copy(casedir *c, const char *name, int k)
{
    snprintf(c->root, sizeof c->root, "%s/%s-%d", g.root, name, k);
    snprintf(c->dir, sizeof c->dir, "%s/data", c->root);
    sh("rm -rf '%s' && mkdir -p '%s' && cp -a '%s' '%s'", c->root, c->root, g.dir, c->dir);
}

static void case_done(casedir *c) { sh("rm -rf '%s'", c->root); }

/* Opens the damaged copy (read-write unless is_read_only), capturing the log. */
static mk_db *open_damaged(const casedir *c, logcap *lc, const char *what, int is_read_only)
{
    mk_options o = db_options(lc);
    o.is_read_only = is_read_only;
    mk_db *db = NULL;
    mk_diag d = {0};
    mk_err rc = mk_db_open(c->dir, &o, &db, &d);
    if (rc) fail_msg("%s: the damaged database does not open: %s: %s\nlog:\n%s", what, mk_err_name(rc), d.msg,
                     mk_sb_str(&lc->text));
    return db;
}

/* ---- block cases ---------------------------------------------------------- */

static void test_chunk_payload_flip(void **state)
{
    (void)state;
    ensure_base();
    mk_rng r = {g.seed ^ 0xc1};
    for (int k = 0; k < 8; k++) {
        /* alternate phase A and phase B blocks; the first two cases hit the
         * dense series (two chunks a window), the last two the 8-byte
         * checksum that follows a payload rather than the payload */
        int phase = k % 2 ? PH_B : PH_A;
        const blk *b;
        do b = &g.blocks[mk_rng_below(&r, g.n_blocks)]; while (b->phase != phase);
        const mk_block_chunk *c;
        do c = &b->chunks[mk_rng_below(&r, b->n_chunks)]; while (k < 2 && phase == PH_A && series_of(c->series_id) != 4);
        int is_sum = k >= 6;
        uint64_t pos = is_sum ? c->offset + c->len + mk_rng_below(&r, 8) : c->offset + mk_rng_below(&r, c->len);
        uint8_t mask = (uint8_t)(1u << mk_rng_below(&r, 8));
        int s = series_of(c->series_id);
        assert_true(s >= 0);
        char what[256];
        snprintf(what, sizeof what, "chunk flip %d: %s chunk at %" PRIu64 " (%u bytes, series %d, phase %d), %s byte %" PRIu64
                 " ^ %#x", k, b->name, c->offset, c->len, s, b->phase, is_sum ? "checksum" : "payload", pos, mask);
        fprintf(stderr, "test_corrupt: %s\n", what);
        loss l = {LOSS_CHUNK, b->phase, s, c->sum.first_ts_ms, c->sum.last_ts_ms, 0};
        /* the model agrees with the chunk: it holds the phase's writes of
         * its series within its time range, once per timestamp */
        if (distinct_lost_ts(s, &l) != c->sum.count)
            fail_msg("%s: the chunk holds %u samples, the test's log says %zu", what, c->sum.count, distinct_lost_ts(s, &l));

        casedir cd;
        case_copy(&cd, "chunk", k);
        char path[4400];
        snprintf(path, sizeof path, "%s/blocks/%s", cd.dir, b->name);
        flip_byte(path, pos, mask);

        mk_sbuf out;
        int rc = run_verify(cd.dir, cd.root, &out);
        if (rc != 1) fail_msg("%s: verify exit %d, expected 1\n%s", what, rc, mk_sb_str(&out));
        char want[4600];
        snprintf(want, sizeof want, "DAMAGE %s: offset %" PRIu64 ": ", path, c->offset);
        expect_has("verify", mk_sb_str(&out), want);
        mk_sb_free(&out);

        /* `meerkat dump` of the series: exit 1, names the chunk, prints the
         * rest */
        char sel[128];
        snprintf(sel, sizeof sel, "%s,host=%s %s", k_series[s].meas, k_series[s].host, k_series[s].field);
        rc = run_mk(cd.root, &out, "dump", "--data", cd.dir, sel, (const char *)NULL);
        if (rc != 1) fail_msg("%s: dump exit %d, expected 1\n%.2000s", what, rc, mk_sb_str(&out));
        snprintf(want, sizeof want, "offset %" PRIu64, c->offset);
        expect_has("dump", mk_sb_str(&out), path);
        expect_has("dump", mk_sb_str(&out), want);
        size_t n_want, n_lines = 0;
        free(expected_series(s, &l, &n_want));
        char prefix[128];
        snprintf(prefix, sizeof prefix, "%s,host=%s %s=", k_series[s].meas, k_series[s].host, k_series[s].field);
        size_t pl = strlen(prefix);
        for (const char *q = mk_sb_str(&out); *q;) { /* lines starting with prefix (no strstr loop: O(n^2) under ASan) */
            n_lines += strncmp(q, prefix, pl) == 0;
            const char *eol = strchr(q, '\n');
            if (!eol) break;
            q = eol + 1;
        }
        if (n_lines != n_want) fail_msg("%s: dump printed %zu samples, expected %zu", what, n_lines, n_want);
        mk_sb_free(&out);

        for (int is_ro = 1; is_ro >= 0; is_ro--) {
            logcap lc = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};
            mk_db *db = open_damaged(&cd, &lc, what, is_ro);
            check_reads(db, &l, s, path, c->offset, what);
            mk_diag d = {0};
            assert_int_equal(mk_db_close(db, &d), MK_OK);
            mk_sb_free(&lc.text);
        }
        case_done(&cd);
    }
}

/* The whole block is left out: verify names it, the open logs it, every
 * other block serves its data. */
static void check_block_lost(const casedir *cd, const blk *b, const char *path, const char *what, mk_sbuf *fails)
{
    mk_sbuf out;
    int rc = run_verify(cd->dir, cd->root, &out);
    if (rc != 1) fail_msg("%s: verify exit %d, expected 1\n%s", what, rc, mk_sb_str(&out));
    char want[4600];
    snprintf(want, sizeof want, "DAMAGE %s", path);
    expect_has("verify", mk_sb_str(&out), want);
    mk_sb_free(&out);

    logcap lc = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};
    if (fails) { /* collect a failing open instead of stopping */
        mk_options o = db_options(&lc);
        mk_db *probe = NULL;
        mk_diag pd = {0};
        mk_err prc = mk_db_open(cd->dir, &o, &probe, &pd);
        if (prc) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s: the database does not open: %s: %s\n", what, mk_err_name(prc), pd.msg);
            mk_sb_add(fails, msg, strlen(msg));
            mk_sb_free(&lc.text);
            return;
        }
        assert_int_equal(mk_db_close(probe, &pd), MK_OK);
        mk_sb_free(&lc.text);
        lc = (logcap){PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};
    }
    for (int is_ro = 1; is_ro >= 0; is_ro--) {
        mk_db *db = open_damaged(cd, &lc, what, is_ro);
        if (!strstr(mk_sb_str(&lc.text), path))
            fail_msg("%s: the open%s did not log the damaged block; log:\n%s", what, is_ro ? " (read-only)" : "", mk_sb_str(&lc.text));
        loss l = {LOSS_BLOCK, b->phase, -1, b->min_ts, b->max_ts, 0};
        check_reads(db, &l, -1, NULL, 0, what);
        mk_diag d = {0};
        assert_int_equal(mk_db_close(db, &d), MK_OK);
        mk_sb_free(&lc.text);
        lc = (logcap){PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};
    }
    /* the damaged file is left in place for the operator: verify still
     * names it after a read-write open */
    rc = run_verify(cd->dir, cd->root, &out);
    if (rc != 1 || !strstr(mk_sb_str(&out), path)) fail_msg("%s: verify after the open: exit %d\n%s", what, rc, mk_sb_str(&out));
    mk_sb_free(&out);
}

static void test_block_footer_flip(void **state)
{
    (void)state;
    ensure_base();
    mk_rng r = {g.seed ^ 0xf0};
    for (int k = 0; k < 9; k++) {
        const blk *b = &g.blocks[mk_rng_below(&r, g.n_blocks)];
        uint64_t region = b->size - b->index_off;
        /* the first index byte, the footer's last byte (magic), the footer's
         * copy of the format version (84 - 64 = 20 bytes from the end: a
         * flip there must read as damage, not as a newer format), else
         * random */
        uint64_t pos = k == 0 ? b->index_off : k == 1 ? b->size - 1 : k == 2 ? b->size - 20
                                                                            : b->index_off + mk_rng_below(&r, region);
        uint8_t mask = k == 2 ? 0x02 : (uint8_t)(1u << mk_rng_below(&r, 8));
        char what[256];
        snprintf(what, sizeof what, "footer flip %d: %s (phase %d, index at %" PRIu64 " of %" PRIu64 "), byte %" PRIu64 " ^ %#x",
                 k, b->name, b->phase, b->index_off, b->size, pos, mask);
        fprintf(stderr, "test_corrupt: %s\n", what);
        casedir cd;
        case_copy(&cd, "footer", k);
        char path[4400];
        snprintf(path, sizeof path, "%s/blocks/%s", cd.dir, b->name);
        flip_byte(path, pos, mask);
        check_block_lost(&cd, b, path, what, NULL);
        case_done(&cd);
    }
}

/* The 16-byte header: magic, format version, flags, seq. */
static void test_block_header_flip(void **state)
{
    (void)state;
    ensure_base();
    mk_rng r = {g.seed ^ 0x4d};
    static const struct { uint64_t pos; uint8_t mask; const char *field; } k_pos[] = {
        {0, 0x01, "magic"}, {4, 0x02, "version (1 -> 3)"}, {5, 0x80, "version high byte"},
        {6, 0x01, "flags"}, {8, 0x01, "seq"}, {15, 0x40, "seq high byte"},
    };
    mk_sbuf fails = {0};
    for (size_t k = 0; k < sizeof k_pos / sizeof k_pos[0]; k++) {
        const blk *b = &g.blocks[mk_rng_below(&r, g.n_blocks)];
        char what[256];
        snprintf(what, sizeof what, "header flip %zu: %s (phase %d), byte %" PRIu64 " ^ %#x (%s)", k, b->name, b->phase,
                 k_pos[k].pos, k_pos[k].mask, k_pos[k].field);
        fprintf(stderr, "test_corrupt: %s\n", what);
        casedir cd;
        case_copy(&cd, "header", (int)k);
        char path[4400];
        snprintf(path, sizeof path, "%s/blocks/%s", cd.dir, b->name);
        flip_byte(path, k_pos[k].pos, k_pos[k].mask);
        check_block_lost(&cd, b, path, what, &fails);
        case_done(&cd);
    }
    if (fails.n) {
        char msg[8192];
        snprintf(msg, sizeof msg, "%s", mk_sb_str(&fails));
        mk_sb_free(&fails);
        fail_msg("block header damage:\n%s", msg);
    }
}

static void test_block_truncated(void **state)
{
    (void)state;
    ensure_base();
    mk_rng r = {g.seed ^ 0x7c};
    for (int k = 0; k < 6; k++) {
        const blk *b = &g.blocks[mk_rng_below(&r, g.n_blocks)];
        uint64_t len = k == 0 ? b->size - 1 : k == 1 ? b->index_off : k == 2 ? 0 : k == 3 ? 10 : mk_rng_below(&r, b->size);
        char what[256];
        snprintf(what, sizeof what, "truncated block %d: %s (phase %d, %" PRIu64 " bytes) to %" PRIu64, k, b->name, b->phase,
                 b->size, len);
        fprintf(stderr, "test_corrupt: %s\n", what);
        casedir cd;
        case_copy(&cd, "trunc", k);
        char path[4400];
        snprintf(path, sizeof path, "%s/blocks/%s", cd.dir, b->name);
        cut_file(path, len);
        check_block_lost(&cd, b, path, what, NULL);
        case_done(&cd);
    }
}

/* ---- WAL cases -------------------------------------------------------------- */

/* Opens a copy with a damaged WAL: records from the damage on are dropped
 * (from_batch), a warning names the file (and the offset when given);
 * after the open has cut the segment back, verify finds nothing. */
static void check_wal_case(const casedir *cd, const char *wal_path, int from_batch, int64_t warn_off, const char *what)
{
    loss l = {LOSS_WAL_FROM, PH_C, -1, 0, 0, from_batch};
    mk_diag d = {0};
    /* read-only first: the same data, a warning, and the file untouched */
    uint64_t size_before = file_size(wal_path);
    logcap lro = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};
    mk_db *db = open_damaged(cd, &lro, what, 1);
    if (warn_off >= 0 && !strstr(mk_sb_str(&lro.text), wal_path))
        fail_msg("%s: no warning names %s (read-only); log:\n%s", what, wal_path, mk_sb_str(&lro.text));
    check_reads(db, &l, -1, NULL, 0, what);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_sb_free(&lro.text);
    if (file_size(wal_path) != size_before) fail_msg("%s: a read-only open changed %s", what, wal_path);

    logcap lc = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};
    db = open_damaged(cd, &lc, what, 0);
    if (warn_off >= 0) {
        if (!strstr(mk_sb_str(&lc.text), wal_path)) fail_msg("%s: no warning names %s; log:\n%s", what, wal_path, mk_sb_str(&lc.text));
        char off[64];
        snprintf(off, sizeof off, "offset %" PRId64, warn_off);
        expect_has("the log", mk_sb_str(&lc.text), off);
        if (lc.n_warn + lc.n_err == 0) fail_msg("%s: nothing logged", what);
    }
    check_reads(db, &l, -1, NULL, 0, what);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    mk_sb_free(&lc.text);
    /* the open truncated the damaged segment: the directory is sound again */
    mk_sbuf out;
    int rc = run_verify(cd->dir, cd->root, &out);
    if (rc != 0) fail_msg("%s: verify after the recovering open: exit %d\n%s", what, rc, mk_sb_str(&out));
    mk_sb_free(&out);
    /* and a second open replays the same and logs nothing more */
    logcap lc2 = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};
    db = open_damaged(cd, &lc2, what, 0);
    check_reads(db, &l, -1, NULL, 0, what);
    assert_int_equal(mk_db_close(db, &d), MK_OK);
    if (lc2.n_warn || lc2.n_err) fail_msg("%s: the second open still logs:\n%s", what, mk_sb_str(&lc2.text));
    mk_sb_free(&lc2.text);
}

/* First phase C batch at or after record i. */
static int batch_from_record(size_t i)
{
    for (; i < g.n_recs; i++)
        if (g.recs[i].batch >= 0) return g.recs[i].batch;
    return g.n_batches_c;
}

static void test_wal_record_flip(void **state)
{
    (void)state;
    ensure_base();
    mk_rng r = {g.seed ^ 0x3a};
    for (int k = 0; k < 6; k++) {
        /* a record in the middle (not the last: that would be a torn tail);
         * the first case hits the SERIES record */
        size_t i = k == 0 ? 0 : 1 + mk_rng_below(&r, g.n_recs - 2);
        const rec *rc0 = &g.recs[i];
        uint64_t pos = rc0->off + (k == 1 ? rc0->len / 2 : mk_rng_below(&r, rc0->len));
        uint8_t mask = (uint8_t)(1u << mk_rng_below(&r, 8));
        char what[256];
        snprintf(what, sizeof what, "WAL flip %d: record %zu (type %u, at %" PRIu64 ", %" PRIu64 " bytes), byte %" PRIu64 " ^ %#x",
                 k, i, rc0->type, rc0->off, rc0->len, pos, mask);
        fprintf(stderr, "test_corrupt: %s\n", what);
        casedir cd;
        case_copy(&cd, "walflip", k);
        char path[4400];
        snprintf(path, sizeof path, "%s/wal/%s", cd.dir, g.wal_name);
        flip_byte(path, pos, mask);

        mk_sbuf out;
        int st = run_verify(cd.dir, cd.root, &out);
        if (st != 1) fail_msg("%s: verify exit %d, expected 1\n%s", what, st, mk_sb_str(&out));
        expect_has("verify", mk_sb_str(&out), path);
        char off[64];
        snprintf(off, sizeof off, "offset %" PRIu64, rc0->off);
        expect_has("verify", mk_sb_str(&out), off);
        mk_sb_free(&out);

        /* the SERIES record lost: the series is still known from index.mki,
         * but every sample record after it is dropped with it */
        check_wal_case(&cd, path, batch_from_record(i), (int64_t)rc0->off, what);
        case_done(&cd);
    }
}

static void test_wal_torn_tail(void **state)
{
    (void)state;
    ensure_base();
    mk_rng r = {g.seed ^ 0x99};
    const rec *last = &g.recs[g.n_recs - 1];
    for (int k = 0; k < 6; k++) {
        casedir cd;
        case_copy(&cd, "waltail", k);
        char path[4400];
        snprintf(path, sizeof path, "%s/wal/%s", cd.dir, g.wal_name);
        char what[256];
        int from_batch = g.n_batches_c;
        int64_t warn_off = -1;
        if (k < 3) { /* garbage appended: random bytes, zeros, a plausible header */
            uint8_t junk[200];
            size_t n = 1 + mk_rng_below(&r, sizeof junk);
            for (size_t i = 0; i < n; i++) junk[i] = k == 1 ? 0 : (uint8_t)mk_rng_next(&r);
            if (k == 2 && n >= 5) { junk[0] = 8; junk[1] = junk[2] = junk[3] = 0; junk[4] = 2; }
            append_bytes(path, junk, n);
            snprintf(what, sizeof what, "WAL tail %d: %zu garbage bytes appended", k, n);
            warn_off = (int64_t)g.wal_size;
        } else { /* cut inside the last record */
            uint64_t cut = last->off + 1 + mk_rng_below(&r, last->len - 1);
            if (k == 3) cut = last->off + 3; /* inside the length field */
            cut_file(path, cut);
            snprintf(what, sizeof what, "WAL tail %d: cut at %" PRIu64 " inside the last record (%" PRIu64 "+%" PRIu64 ")", k, cut,
                     last->off, last->len);
            from_batch = last->batch;
            warn_off = (int64_t)last->off;
        }
        fprintf(stderr, "test_corrupt: %s\n", what);
        mk_sbuf out;
        int st = run_verify(cd.dir, cd.root, &out);
        if (st != 0 && st != 1) fail_msg("%s: verify exit %d\n%s", what, st, mk_sb_str(&out));
        if (st == 1) expect_has("verify", mk_sb_str(&out), path);
        mk_sb_free(&out);
        check_wal_case(&cd, path, from_batch, warn_off, what);
        case_done(&cd);
    }
    /* cut exactly at a record boundary: nothing torn, the later records are
     * simply not there, no warning needed */
    casedir cd;
    case_copy(&cd, "walcut", 0);
    char path[4400];
    snprintf(path, sizeof path, "%s/wal/%s", cd.dir, g.wal_name);
    cut_file(path, last->off);
    check_wal_case(&cd, path, last->batch, -1, "WAL cut at the last record's start");
    case_done(&cd);
}

/* The segment's 24-byte header (magic, version, reserved, seq, checksum):
 * the segment cannot be trusted, so its records are dropped with a warning
 * naming it; the database opens and serves everything sealed. */
static void test_wal_header_flip(void **state)
{
    (void)state;
    ensure_base();
    static const struct { uint64_t pos; uint8_t mask; const char *field; } k_pos[] = {
        {0, 0x01, "magic"}, {4, 0x02, "version (1 -> 3)"}, {6, 0x01, "reserved"},
        {8, 0x01, "seq"},   {16, 0x10, "checksum"},
    };
    mk_sbuf fails = {0};
    for (size_t k = 0; k < sizeof k_pos / sizeof k_pos[0]; k++) {
        char what[256], msg[1024];
        snprintf(what, sizeof what, "WAL header flip %zu: byte %" PRIu64 " ^ %#x (%s)", k, k_pos[k].pos, k_pos[k].mask,
                 k_pos[k].field);
        fprintf(stderr, "test_corrupt: %s\n", what);
        casedir cd;
        case_copy(&cd, "walhdr", (int)k);
        char path[4400];
        snprintf(path, sizeof path, "%s/wal/%s", cd.dir, g.wal_name);
        flip_byte(path, k_pos[k].pos, k_pos[k].mask);
        mk_sbuf out;
        int st = run_verify(cd.dir, cd.root, &out);
        if (st != 1) fail_msg("%s: verify exit %d, expected 1\n%s", what, st, mk_sb_str(&out));
        expect_has("verify", mk_sb_str(&out), path);
        mk_sb_free(&out);

        logcap lc = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};
        mk_options o = db_options(&lc);
        mk_db *db = NULL;
        mk_diag d = {0};
        mk_err rc = mk_db_open(cd.dir, &o, &db, &d);
        if (rc) {
            snprintf(msg, sizeof msg, "%s: the database does not open: %s: %s\n", what, mk_err_name(rc), d.msg);
            mk_sb_add(&fails, msg, strlen(msg));
        } else {
            if (!strstr(mk_sb_str(&lc.text), path)) fail_msg("%s: no warning names %s; log:\n%s", what, path, mk_sb_str(&lc.text));
            loss l = {LOSS_WAL_FROM, PH_C, -1, 0, 0, 0};
            check_reads(db, &l, -1, NULL, 0, what);
            assert_int_equal(mk_db_close(db, &d), MK_OK);
        }
        mk_sb_free(&lc.text);
        case_done(&cd);
    }
    if (fails.n) {
        char msg[8192];
        snprintf(msg, sizeof msg, "%s", mk_sb_str(&fails));
        mk_sb_free(&fails);
        fail_msg("WAL header damage:\n%s", msg);
    }
}

/* ---- index cases --------------------------------------------------------- */

/* A damaged or missing index.mki: verify names it; the open either fails
 * with a message naming it, or succeeds and says so in the log, and then
 * serves nothing untrue. Problems are collected in *fails (every case runs,
 * so one report shows them all). */
static void check_index_case(const casedir *cd, const char *what, mk_sbuf *fails)
{
    char msg[1024];
    mk_sbuf out;
    int st = run_verify(cd->dir, cd->root, &out);
    fprintf(stderr, "test_corrupt: %s: verify exit %d:\n%s", what, st, mk_sb_str(&out));
    if (st != 1 || !strstr(mk_sb_str(&out), "index.mki")) {
        snprintf(msg, sizeof msg, "%s: verify exit %d%s\n", what, st,
                 strstr(mk_sb_str(&out), "index.mki") ? "" : " and its output does not name index.mki");
        mk_sb_add(fails, msg, strlen(msg));
    }
    mk_sb_free(&out);

    logcap lc = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};
    mk_options o = db_options(&lc);
    mk_db *db = NULL;
    mk_diag d = {0};
    mk_err rc = mk_db_open(cd->dir, &o, &db, &d);
    fprintf(stderr, "test_corrupt: %s: mk_db_open: %s%s%s\n  log: %s\n", what, mk_err_name(rc), rc ? ": " : "",
            rc ? d.msg : "", mk_sb_str(&lc.text));
    if (rc) {
        assert_null(db);
        if (!strstr(d.msg, "index.mki")) {
            snprintf(msg, sizeof msg, "%s: the open failed (%s) without naming index.mki: %s\n", what, mk_err_name(rc), d.msg);
            mk_sb_add(fails, msg, strlen(msg));
        }
    } else {
        /* it opened: the loss of the index must have been said, and what it
         * serves must be true (a series it cannot find is reported, not
         * invented) */
        if (!strstr(mk_sb_str(&lc.text), "index.mki")) {
            snprintf(msg, sizeof msg, "%s: the database opened without a word about index.mki\n", what);
            mk_sb_add(fails, msg, strlen(msg));
        }
        size_t n_missing = 0;
        for (int s = 0; s < N_SERIES; s++) {
            mk_iter *it = NULL;
            mk_diag id = {0};
            mk_err e = mk_db_iter(db, g.ids[s], INT64_MIN, INT64_MAX, &it, &id);
            if (e == MK_ENOTFOUND) { n_missing++; continue; }
            assert_int_equal(e, MK_OK);
            mk_iter_free(it);
        }
        if (n_missing) {
            snprintf(msg, sizeof msg, "%s: the database opened, but %zu of %d series are gone (their blocks are intact)\n", what,
                     n_missing, N_SERIES);
            mk_sb_add(fails, msg, strlen(msg));
        } else {
            loss none = {LOSS_NONE, 0, 0, 0, 0, 0};
            check_reads(db, &none, -1, NULL, 0, what);
        }
        assert_int_equal(mk_db_close(db, &d), MK_OK);
    }
    mk_sb_free(&lc.text);
}

static void test_index_damage(void **state)
{
    (void)state;
    ensure_base();
    mk_rng r = {g.seed ^ 0x1d};
    char src[4300];
    snprintf(src, sizeof src, "%s/index.mki", g.dir);
    uint64_t size = file_size(src);
    mk_sbuf fails = {0};
    for (int k = 0; k < 7; k++) {
        casedir cd;
        case_copy(&cd, "index", k);
        char ix[4400], what[256];
        snprintf(ix, sizeof ix, "%s/index.mki", cd.dir);
        if (k == 0) {
            assert_int_equal(unlink(ix), 0);
            snprintf(what, sizeof what, "index.mki deleted");
        } else if (k == 1) {
            cut_file(ix, size / 2);
            snprintf(what, sizeof what, "index.mki truncated to %" PRIu64 " of %" PRIu64 " bytes", size / 2, size);
        } else if (k == 2) {
            cut_file(ix, 0);
            snprintf(what, sizeof what, "index.mki truncated to 0 bytes");
        } else {
            uint64_t pos = k == 3 ? 0 : k == 4 ? size - 1 : k == 5 ? 4 : mk_rng_below(&r, size);
            uint8_t mask = k == 5 ? 0x02 : (uint8_t)(1u << mk_rng_below(&r, 8));
            flip_byte(ix, pos, mask);
            snprintf(what, sizeof what, "index.mki byte %" PRIu64 " of %" PRIu64 " ^ %#x", pos, size, mask);
        }
        fprintf(stderr, "test_corrupt: %s\n", what);
        check_index_case(&cd, what, &fails);
        case_done(&cd);
    }
    if (fails.n) {
        char msg[8192];
        snprintf(msg, sizeof msg, "%s", mk_sb_str(&fails));
        mk_sb_free(&fails);
        fail_msg("index damage:\n%s", msg);
    }
}

/* ---- main -------------------------------------------------------------- */


static int teardown(void **state)
{
    (void)state;
    for (size_t k = 0; k < g.n_blocks; k++) free(g.blocks[k].chunks);
    if (g.root) mk_test_rmrf(g.root);
    free(g.root);
    free(g.dir);
    free(g.w);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_payload_flip),
        cmocka_unit_test(test_block_footer_flip),
        cmocka_unit_test(test_block_header_flip),
        cmocka_unit_test(test_block_truncated),
        cmocka_unit_test(test_wal_record_flip),
        cmocka_unit_test(test_wal_torn_tail),
        cmocka_unit_test(test_wal_header_flip),
        cmocka_unit_test(test_index_damage),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}

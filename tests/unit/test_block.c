/*
 * tests/unit/test_block.c — block files (engine/block.h).
 *
 * The reference is what the test itself kept: every chunk's series id,
 * summary and payload bytes, written through the writer and compared after
 * reopening, bit for bit. Damage tests flip every byte and cut every length
 * of a small file served from an exact-size heap copy (memenv below), so
 * AddressSanitizer sees any read past the file. Fault tests drive ENOSPC,
 * short writes, failed fsync/rename through mk_faultenv at every step.
 * Seeds are fixed and printed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "block.h"
#include "format.h"
#include "util.h"

/* Format facts the damage tests rely on (FORMAT.md "Block file"). */
#define HDR_BYTES 16
#define FTR_BYTES 84
#define XXH_BYTES 8

/* ---- an mk_env serving one in-memory file, mapped as an exact-size copy -- */

typedef struct memenv {
    mk_env env;
    const uint8_t *data;
    size_t len;
} memenv;

static int m_open(mk_env *e, const char *p, int flags, int mode)
{
    (void)e; (void)p; (void)mode;
    return (flags & (O_WRONLY | O_RDWR | O_CREAT)) ? -EROFS : 1000;
}
static int m_close(mk_env *e, int fd) { (void)e; (void)fd; return 0; }
static ssize_t m_pwrite(mk_env *e, int fd, const void *b, size_t n, off_t o) { (void)e; (void)fd; (void)b; (void)n; (void)o; return -EROFS; }
static ssize_t m_pread(mk_env *e, int fd, void *b, size_t n, off_t o)
{
    memenv *m = (memenv *)e;
    (void)fd;
    if ((size_t)o >= m->len) return 0;
    if (n > m->len - (size_t)o) n = m->len - (size_t)o;
    memcpy(b, m->data + o, n);
    return (ssize_t)n;
}
static int m_fail(mk_env *e, int fd) { (void)e; (void)fd; return -EROFS; }
static int m_ftrunc(mk_env *e, int fd, off_t l) { (void)e; (void)fd; (void)l; return -EROFS; }
static int m_rename(mk_env *e, const char *a, const char *b) { (void)e; (void)a; (void)b; return -EROFS; }
static int m_unlink(mk_env *e, const char *p) { (void)e; (void)p; return -EROFS; }
static int m_mkdir(mk_env *e, const char *p, int m) { (void)e; (void)p; (void)m; return -EROFS; }
static int64_t m_size(mk_env *e, int fd) { (void)fd; return (int64_t)((memenv *)e)->len; }
static int m_mmap(mk_env *e, int fd, size_t n, void **out)
{
    memenv *m = (memenv *)e;
    (void)fd;
    *out = NULL;
    if (!n) return 0;
    if (n > m->len) return -EINVAL;
    void *p = malloc(n); /* exact size: ASan flags any read past the file */
    if (!p) return -ENOMEM;
    memcpy(p, m->data, n);
    *out = p;
    return 0;
}
static int m_munmap(mk_env *e, void *p, size_t n) { (void)e; (void)n; free(p); return 0; }
static int64_t m_now(mk_env *e) { (void)e; return 0; }

static void memenv_init(memenv *m, const uint8_t *data, size_t len)
{
    m->env = (mk_env){m_open, m_close, m_pwrite, m_pread, m_fail, m_ftrunc, m_rename, m_unlink,
                      m_mkdir, m_size, m_mmap, m_munmap, m_now, m, NULL};
    m->data = data;
    m->len = len;
}

/* ---- reference blocks ---------------------------------------------------- */

typedef struct ref_chunk {
    uint64_t id;
    mk_chunk_summary sum;
    uint8_t *payload;
    size_t len;
} ref_chunk;

typedef struct ref_block {
    ref_chunk *c;
    size_t n;
    uint64_t *repl; /* as given to the writer (unsorted, maybe duplicated) */
    size_t n_repl;
} ref_block;

static void ref_free(ref_block *r)
{
    for (size_t i = 0; i < r->n; i++) free(r->c[i].payload);
    free(r->c);
    free(r->repl);
    memset(r, 0, sizeof *r);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double gauss(mk_rng *r)
{
    double u = mk_rng_unit(r), v = mk_rng_unit(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(2.0 * M_PI * v);
}

static double round_to(double v, int nd)
{
    static const double p[] = {1, 10, 100, 1000, 10000};
    return round(v * p[nd]) / p[nd]; /* == strtod of the printed decimal */
}

/* Summary of vals[0..n) the way a codec computes it (NaN out of min..sumsq). */
static void summarise(const double *v, uint32_t n, mk_chunk_summary *s)
{
    s->count = n;
    s->first = v[0];
    s->last = v[n - 1];
    s->min = INFINITY;
    s->max = -INFINITY;
    s->sum = s->sumsq = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (isnan(v[i])) continue;
        if (v[i] < s->min) s->min = v[i];
        if (v[i] > s->max) s->max = v[i];
        s->sum += v[i];
        s->sumsq += v[i] * v[i];
    }
}

static double special(mk_rng *r)
{
    static const double sp[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 5e-324, -5e-324, 2.2250738585072014e-308,
                                1.7976931348623157e308, -1.7976931348623157e308, 9007199254740993.0,
                                1e18, 1e19, 0.1, 0.30000000000000004, 1e-300, -123.456};
    if (mk_rng_below(r, 4) == 0) return mk_bits_f64(mk_rng_next(r)); /* any bits, NaN payloads too */
    return sp[mk_rng_below(r, sizeof sp / sizeof sp[0])];
}

/* Random summary: fleet-like decimals, integers, or anything at all. */
static void random_summary(mk_rng *r, mk_chunk_summary *s, int64_t first_ts, int64_t last_ts)
{
    double v[64];
    uint32_t n = 1 + (uint32_t)mk_rng_below(r, 64);
    int kind = (int)mk_rng_below(r, 5);
    double base = exp(mk_rng_unit(r) * 12 - 4);
    for (uint32_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: v[i] = round_to(base * exp(0.1 * gauss(r)), 2); break;
        case 1: v[i] = (double)(int64_t)(base * 100 + 10 * gauss(r)); break;
        case 2: v[i] = round_to(mk_rng_unit(r) * 0.02, 4); break;
        case 3: v[i] = special(r); break;
        default: v[i] = (mk_rng_unit(r) - 0.5) * base; break;
        }
    }
    summarise(v, n, s);
    if (mk_rng_below(r, 8) == 0) { /* summary fields are opaque doubles too */
        s->min = special(r);
        s->sum = special(r);
        s->sumsq = special(r);
    }
    s->count = (uint32_t)(mk_rng_below(r, 3) == 0 ? 1 + mk_rng_below(r, UINT32_MAX) : n);
    s->first_ts_ms = first_ts;
    s->last_ts_ms = last_ts;
}

/*
 * Random block: n_series random ids (0 and UINT64_MAX sometimes), 1..max_chunks
 * chunks each, payloads of 1..max_len random bytes (occasionally a large
 * one), times anywhere in int64 including the extremes.
 */
static void random_block(mk_rng *r, ref_block *b, size_t n_series, size_t max_chunks, size_t max_len,
                         int allow_big)
{
    memset(b, 0, sizeof *b);
    uint64_t *ids = malloc(n_series * sizeof *ids);
    for (size_t i = 0; i < n_series; i++) {
        uint64_t x = mk_rng_next(r);
        if (mk_rng_below(r, 50) == 0) x = mk_rng_below(r, 2) ? 0 : UINT64_MAX;
        if (mk_rng_below(r, 10) == 0) x >>= mk_rng_below(r, 64);
        ids[i] = x;
    }
    qsort(ids, n_series, sizeof *ids, cmp_u64);
    size_t m = 0;
    for (size_t i = 0; i < n_series; i++) if (!m || ids[m - 1] != ids[i]) ids[m++] = ids[i];
    b->c = calloc(m * max_chunks + 1, sizeof *b->c);
    for (size_t i = 0; i < m; i++) {
        size_t nc = 1 + mk_rng_below(r, max_chunks);
        int64_t t;
        int mode = (int)mk_rng_below(r, 10);
        if (mode == 0) t = INT64_MIN + (int64_t)mk_rng_below(r, 3);
        else if (mode == 1) t = (int64_t)(mk_rng_next(r) >> 1) - (INT64_C(1) << 61);
        else t = INT64_C(1700000000000) + (int64_t)mk_rng_below(r, 7200000);
        for (size_t k = 0; k < nc; k++) {
            uint64_t room = (uint64_t)INT64_MAX - (uint64_t)t;
            if (room < 4) break;
            int64_t first = t, last;
            uint64_t span = mk_rng_below(r, 4) == 0 ? 0 : mk_rng_below(r, 7200000);
            if (mode == 0 && k == nc - 1 && mk_rng_below(r, 2)) span = room; /* up to INT64_MAX */
            if (span > room - 2) span = room - 2;
            uint64_t ul = (uint64_t)first + span; /* <= INT64_MAX - 2 */
            memcpy(&last, &ul, sizeof last);
            ref_chunk *c = &b->c[b->n++];
            c->id = ids[i];
            random_summary(r, &c->sum, first, last);
            c->len = 1 + mk_rng_below(r, max_len);
            if (allow_big && mk_rng_below(r, 40) == 0) c->len = 30000 + mk_rng_below(r, 70000);
            c->payload = malloc(c->len);
            for (size_t j = 0; j < c->len; j++) c->payload[j] = (uint8_t)mk_rng_next(r);
            uint64_t gap = 1 + mk_rng_below(r, 100000);
            if ((uint64_t)INT64_MAX - (uint64_t)last < gap + 4) break;
            t = last + (int64_t)gap;
        }
    }
    free(ids);
    b->n_repl = mk_rng_below(r, 6);
    b->repl = malloc((b->n_repl + 1) * sizeof *b->repl);
    for (size_t i = 0; i < b->n_repl; i++)
        b->repl[i] = mk_rng_below(r, 3) ? mk_rng_below(r, 40) : mk_rng_next(r);
}

static mk_err write_block(mk_env *env, const char *dir, uint64_t seq, const ref_block *b, mk_diag *d)
{
    mk_block_writer *w = NULL;
    mk_err rc = mk_block_writer_open(env, dir, seq, &w, d);
    if (rc) return rc;
    for (size_t i = 0; i < b->n; i++) {
        rc = mk_block_writer_add(w, b->c[i].id, &b->c[i].sum, b->c[i].payload, b->c[i].len, d);
        if (rc) {
            mk_diag d2;
            mk_err rc2 = mk_block_writer_finish(w, &d2); /* sticky: same error, tmp removed */
            assert_int_equal(rc2, rc);
            return rc;
        }
    }
    if (b->n_repl) {
        rc = mk_block_writer_replaces(w, b->repl, b->n_repl, d);
        if (rc) { mk_block_writer_abort(w); return rc; }
    }
    return mk_block_writer_finish(w, d);
}

static void block_path(char *buf, size_t cap, const char *dir, uint64_t seq)
{
    snprintf(buf, cap, "%s/%016" PRIx64 ".mkb", dir, seq);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    uint8_t *p = NULL;
    mk_diag d;
    if (mk_env_read_file(mk_env_default(), path, &p, n, &d)) return NULL;
    return p;
}

static void assert_same_summary(const mk_chunk_summary *a, const mk_chunk_summary *b)
{
    assert_int_equal(a->count, b->count);
    assert_true(a->first_ts_ms == b->first_ts_ms);
    assert_true(a->last_ts_ms == b->last_ts_ms);
    const double x[6] = {a->min, a->max, a->sum, a->sumsq, a->first, a->last};
    const double y[6] = {b->min, b->max, b->sum, b->sumsq, b->first, b->last};
    for (int i = 0; i < 6; i++) {
        if (mk_f64_bits(x[i]) != mk_f64_bits(y[i]))
            fail_msg("summary field %d: %016" PRIx64 " vs %016" PRIx64, i, mk_f64_bits(x[i]), mk_f64_bits(y[i]));
    }
}

/* Everything the test kept must come back from the block, bit for bit. */
static void check_block(const mk_block *blk, const ref_block *b, uint64_t seq, mk_rng *r)
{
    size_t n;
    const mk_block_chunk *ch = mk_block_chunks(blk, &n);
    assert_int_equal(n, b->n);
    assert_true(mk_block_seq(blk) == seq);
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        assert_true(ch[i].series_id == b->c[i].id);
        assert_int_equal(ch[i].len, b->c[i].len);
        assert_same_summary(&ch[i].sum, &b->c[i].sum);
        const uint8_t *p = NULL;
        mk_diag d;
        assert_int_equal(mk_block_payload(blk, &ch[i], &p, &d), MK_OK);
        assert_memory_equal(p, b->c[i].payload, b->c[i].len);
        if (b->c[i].sum.first_ts_ms < lo) lo = b->c[i].sum.first_ts_ms;
        if (b->c[i].sum.last_ts_ms > hi) hi = b->c[i].sum.last_ts_ms;
    }
    assert_true(mk_block_min_ts(blk) == lo);
    assert_true(mk_block_max_ts(blk) == hi);
    /* find: every present id gives exactly its run of chunks */
    for (size_t i = 0; i < b->n;) {
        size_t j = i;
        while (j < b->n && b->c[j].id == b->c[i].id) j++;
        size_t k;
        const mk_block_chunk *f = mk_block_find(blk, b->c[i].id, &k);
        assert_int_equal(k, j - i);
        assert_ptr_equal(f, &ch[i]);
        /* neighbours that are absent */
        uint64_t near[2] = {b->c[i].id - 1, b->c[i].id + 1};
        for (int q = 0; q < 2; q++) {
            int present = 0;
            for (size_t t = 0; t < b->n; t++) present |= b->c[t].id == near[q];
            if (!present) { assert_null(mk_block_find(blk, near[q], &k)); assert_int_equal(k, 0); }
        }
        i = j;
    }
    for (int q = 0; q < 50; q++) {
        uint64_t x = mk_rng_next(r);
        int present = 0;
        for (size_t t = 0; t < b->n; t++) present |= b->c[t].id == x;
        size_t k = 99;
        const mk_block_chunk *f = mk_block_find(blk, x, &k);
        if (!present) { assert_null(f); assert_int_equal(k, 0); }
    }
    /* replaced: sorted, duplicates removed */
    uint64_t *want = malloc((b->n_repl + 1) * sizeof *want);
    memcpy(want, b->repl, b->n_repl * sizeof *want);
    qsort(want, b->n_repl, sizeof *want, cmp_u64);
    size_t m = 0;
    for (size_t i = 0; i < b->n_repl; i++) if (!m || want[m - 1] != want[i]) want[m++] = want[i];
    size_t nr;
    const uint64_t *got = mk_block_replaced(blk, &nr);
    assert_int_equal(nr, m);
    if (m) assert_memory_equal(got, want, m * sizeof *want);
    free(want);
}

static uint64_t g_seed = 0x6d6b626c6f636b31ull; /* "mkblock1" */

/* ---- tests ---------------------------------------------------------------- */

static void test_roundtrip_random(void **state)
{
    (void)state;
    mk_rng r = {g_seed};
    printf("test_roundtrip_random: seed %016" PRIx64 "\n", g_seed);
    char *dir = mk_test_dir("block-roundtrip");
    assert_non_null(dir);
    for (int it = 0; it < 40; it++) {
        ref_block b;
        size_t ns = 1 + mk_rng_below(&r, it < 30 ? 40 : 600);
        random_block(&r, &b, ns, 1 + mk_rng_below(&r, 5), 1 + mk_rng_below(&r, 600), 1);
        uint64_t seq = it == 0 ? UINT64_MAX : mk_rng_next(&r);
        mk_diag d = {0};
        mk_err rc = write_block(NULL, dir, seq, &b, &d);
        if (rc) fail_msg("write: %s", d.msg);
        char path[4200];
        block_path(path, sizeof path, dir, seq);
        mk_block *blk = NULL;
        rc = mk_block_open(NULL, path, &blk, &d);
        if (rc) fail_msg("open: %s", d.msg);
        check_block(blk, &b, seq, &r);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true(mk_block_file_bytes(blk) == (uint64_t)st.st_size);
        assert_string_equal(mk_block_path(blk), path);
        mk_block_close(blk);

        uint64_t nc = 0, nsm = 0, want_ns = 0;
        for (size_t i = 0; i < b.n; i++) want_ns += b.c[i].sum.count;
        rc = mk_block_verify(NULL, path, NULL, NULL, &nc, &nsm, &d);
        if (rc) fail_msg("verify: %s", d.msg);
        assert_true(nc == b.n);
        assert_true(nsm == want_ns);
        /* the same bytes served from an exact-size heap copy */
        size_t len;
        uint8_t *bytes = slurp(path, &len);
        memenv me;
        memenv_init(&me, bytes, len);
        rc = mk_block_open(&me.env, "mem", &blk, &d);
        if (rc) fail_msg("open (mem): %s", d.msg);
        check_block(blk, &b, seq, &r);
        mk_block_close(blk);
        free(bytes);
        unlink(path);
        ref_free(&b);
    }
    mk_test_rmrf(dir);
    free(dir);
}

/* mk_block_find_many over several blocks against a scan of each block's
 * reference chunks: ids present in some blocks and not others, absent
 * ones, the extremes; empty batches. */
static void test_find_many(void **state)
{
    (void)state;
    mk_rng r = {g_seed ^ 0xf1d};
    printf("test_find_many: seed %016" PRIx64 "\n", g_seed ^ 0xf1d);
    char *dir = mk_test_dir("block-find-many");
    assert_non_null(dir);
    enum { NB = 9 };
    ref_block rb[NB];
    mk_block *blk[NB];
    for (int i = 0; i < NB; i++) {
        random_block(&r, &rb[i], 1 + mk_rng_below(&r, i < 3 ? 10 : 400), 1 + mk_rng_below(&r, 4), 1 + mk_rng_below(&r, 200), 0);
        mk_diag d = {0};
        if (write_block(NULL, dir, (uint64_t)i + 1, &rb[i], &d)) fail_msg("write: %s", d.msg);
        char path[4200];
        block_path(path, sizeof path, dir, (uint64_t)i + 1);
        if (mk_block_open(NULL, path, &blk[i], &d)) fail_msg("open: %s", d.msg);
    }
    const mk_block_chunk *c[NB];
    size_t nc[NB];
    mk_block_find_many((const mk_block *const *)blk, 0, 1, c, nc); /* nothing to do */
    size_t n_found = 0, n_absent = 0;
    for (int q = 0; q < 3000; q++) {
        uint64_t id;
        int pick = (int)mk_rng_below(&r, 4);
        if (pick == 0) id = mk_rng_next(&r);
        else if (pick == 1) id = mk_rng_below(&r, 2) ? 0 : UINT64_MAX;
        else { /* an id of some block */
            const ref_block *b = &rb[mk_rng_below(&r, NB)];
            id = b->c[mk_rng_below(&r, b->n)].id;
        }
        size_t from = mk_rng_below(&r, NB), n = mk_rng_below(&r, NB - from + 1);
        mk_block_find_many((const mk_block *const *)blk + from, n, id, c, nc);
        for (size_t i = 0; i < n; i++) {
            const ref_block *b = &rb[from + i];
            size_t before = 0, cnt = 0;
            for (size_t k = 0; k < b->n; k++) {
                before += b->c[k].id < id;
                cnt += b->c[k].id == id;
            }
            size_t all;
            const mk_block_chunk *ch = mk_block_chunks(blk[from + i], &all);
            assert_int_equal(all, b->n);
            assert_int_equal(nc[i], cnt);
            if (!cnt) { assert_null(c[i]); n_absent++; continue; }
            n_found++;
            assert_ptr_equal(c[i], &ch[before]);
            for (size_t k = 0; k < cnt; k++) {
                assert_true(c[i][k].series_id == id);
                assert_int_equal(c[i][k].len, b->c[before + k].len);
                assert_true(c[i][k].sum.first_ts_ms == b->c[before + k].sum.first_ts_ms);
            }
        }
    }
    printf("  %zu finds with chunks, %zu without\n", n_found, n_absent);
    assert_true(n_found > 1000 && n_absent > 1000);
    for (int i = 0; i < NB; i++) {
        mk_block_close(blk[i]);
        ref_free(&rb[i]);
    }
    mk_test_rmrf(dir);
    free(dir);
}

static int dir_has(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name), s = strlen(suffix);
        if (l >= s && strcmp(e->d_name + l - s, suffix) == 0) n++;
    }
    closedir(d);
    return n;
}

static void test_empty_and_abort(void **state)
{
    (void)state;
    char *dir = mk_test_dir("block-empty");
    mk_block_writer *w = NULL;
    mk_diag d;
    assert_int_equal(mk_block_writer_open(NULL, dir, 7, &w, &d), MK_OK);
    uint64_t s = 3;
    assert_int_equal(mk_block_writer_replaces(w, &s, 1, &d), MK_OK);
    assert_int_equal(mk_block_writer_finish(w, &d), MK_OK);
    assert_int_equal(dir_has(dir, ".mkb") + dir_has(dir, ".tmp"), 0);

    assert_int_equal(mk_block_writer_open(NULL, dir, 8, &w, &d), MK_OK);
    mk_chunk_summary sum = {.first_ts_ms = 1, .last_ts_ms = 2, .count = 2};
    uint8_t p[3] = {1, 2, 3};
    assert_int_equal(mk_block_writer_add(w, 1, &sum, p, 3, &d), MK_OK);
    assert_int_equal(dir_has(dir, ".tmp"), 1);
    mk_block_writer_abort(w);
    mk_block_writer_abort(NULL);
    mk_block_close(NULL);
    assert_int_equal(dir_has(dir, ".mkb") + dir_has(dir, ".tmp"), 0);
    mk_test_rmrf(dir);
    free(dir);
}

/* Refused chunks leave the writer as it was. */
static void test_ordering_rules(void **state)
{
    (void)state;
    char *dir = mk_test_dir("block-order");
    mk_block_writer *w = NULL;
    mk_diag d;
    uint8_t p[4] = {9, 8, 7, 6};
    assert_int_equal(mk_block_writer_open(NULL, dir, 1, &w, &d), MK_OK);
    mk_chunk_summary a = {.first_ts_ms = 100, .last_ts_ms = 200, .count = 5, .min = 1, .max = 2};
    assert_int_equal(mk_block_writer_add(w, 50, &a, p, 4, &d), MK_OK);
    mk_chunk_summary s = a;
    assert_int_equal(mk_block_writer_add(w, 49, &s, p, 4, &d), MK_EINVAL); /* id descends */
    assert_non_null(strstr(d.msg, "ascend"));
    s.first_ts_ms = 200; s.last_ts_ms = 300;
    assert_int_equal(mk_block_writer_add(w, 50, &s, p, 4, &d), MK_EINVAL); /* touches */
    s.first_ts_ms = 150;
    assert_int_equal(mk_block_writer_add(w, 50, &s, p, 4, &d), MK_EINVAL); /* overlaps */
    s.first_ts_ms = 50; s.last_ts_ms = 60;
    assert_int_equal(mk_block_writer_add(w, 50, &s, p, 4, &d), MK_EINVAL); /* before */
    s = a; s.count = 0; s.first_ts_ms = 500; s.last_ts_ms = 600;
    assert_int_equal(mk_block_writer_add(w, 51, &s, p, 4, &d), MK_EINVAL); /* count 0 */
    s.count = 1; s.first_ts_ms = 700; s.last_ts_ms = 600;
    assert_int_equal(mk_block_writer_add(w, 51, &s, p, 4, &d), MK_EINVAL); /* first > last */
    s.first_ts_ms = 600;
    assert_int_equal(mk_block_writer_add(w, 51, &s, p, 0, &d), MK_EINVAL);  /* empty payload */
    assert_int_equal(mk_block_writer_add(w, 51, &s, NULL, 4, &d), MK_EINVAL); /* NULL payload */
    assert_int_equal(mk_block_writer_add(w, 51, NULL, p, 4, &d), MK_EINVAL);
    /* still usable */
    s = a; s.first_ts_ms = 201; s.last_ts_ms = 201; s.count = 1;
    assert_int_equal(mk_block_writer_add(w, 50, &s, p, 4, &d), MK_OK);
    assert_int_equal(mk_block_writer_add(w, 51, &a, p, 3, &d), MK_OK);
    assert_int_equal(mk_block_writer_finish(w, &d), MK_OK);
    char path[4200];
    block_path(path, sizeof path, dir, 1);
    mk_block *b = NULL;
    assert_int_equal(mk_block_open(NULL, path, &b, &d), MK_OK);
    size_t n;
    const mk_block_chunk *c = mk_block_find(b, 50, &n);
    assert_int_equal(n, 2);
    assert_true(c[0].sum.last_ts_ms == 200 && c[1].sum.first_ts_ms == 201);
    c = mk_block_find(b, 51, &n);
    assert_int_equal(n, 1);
    assert_int_equal(c[0].len, 3);
    mk_block_close(b);
    mk_test_rmrf(dir);
    free(dir);
}

/* A small block (a few KB) for the damage tests. */
static uint8_t *small_block(const char *tag, size_t *len, ref_block *keep)
{
    mk_rng r = {g_seed ^ 0x5a5a};
    ref_block b;
    random_block(&r, &b, 8, 3, 120, 0);
    char *dir = mk_test_dir(tag);
    mk_diag d;
    if (write_block(NULL, dir, 42, &b, &d)) fail_msg("write: %s", d.msg);
    char path[4200];
    block_path(path, sizeof path, dir, 42);
    uint8_t *bytes = slurp(path, len);
    assert_non_null(bytes);
    mk_test_rmrf(dir);
    free(dir);
    if (keep) *keep = b; else ref_free(&b);
    return bytes;
}

typedef struct reports { int n; uint64_t off[64]; } reports;
static void on_report(void *ctx, const char *path, uint64_t off, const char *why)
{
    reports *r = ctx;
    assert_non_null(path);
    assert_true(why && *why);
    if (r->n < 64) r->off[r->n] = off;
    r->n++;
}

/* Every single-byte change is caught: at open, or by the payload check; and
 * mk_block_verify always catches it. Nothing crashes or reads past the end. */
static void test_every_byte_flip(void **state)
{
    (void)state;
    size_t len;
    uint8_t *orig = small_block("block-flip", &len, NULL);
    uint8_t *buf = malloc(len);
    printf("test_every_byte_flip: %zu-byte block, seed %016" PRIx64 "\n", len, g_seed);
    mk_rng r = {g_seed};
    size_t at_open = 0, at_read = 0, total = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t masks[4] = {0x01, 0x80, 0xff, (uint8_t)(1 + mk_rng_below(&r, 255))};
        for (int k = 0; k < 4; k++) {
            memcpy(buf, orig, len);
            buf[i] ^= masks[k];
            memenv me;
            memenv_init(&me, buf, len);
            mk_block *b = NULL;
            mk_diag d = {0};
            mk_err rc = mk_block_open(&me.env, "flip.mkb", &b, &d);
            int is_caught = 0;
            if (rc) {
                assert_true(rc == MK_ECORRUPT || rc == MK_ENOTOURS || rc == MK_ETOONEW);
                assert_non_null(strstr(d.msg, "flip.mkb"));
                at_open++;
                is_caught = 1;
            } else {
                size_t n;
                const mk_block_chunk *c = mk_block_chunks(b, &n);
                for (size_t j = 0; j < n; j++) {
                    const uint8_t *p;
                    if (mk_block_payload(b, &c[j], &p, &d)) {
                        char want[64];
                        snprintf(want, sizeof want, "offset %" PRIu64, c[j].offset);
                        assert_non_null(strstr(d.msg, want));
                        is_caught = 1;
                    }
                }
                at_read += is_caught;
                mk_block_close(b);
            }
            reports rep = {0};
            rc = mk_block_verify(&me.env, "flip.mkb", on_report, &rep, NULL, NULL, &d);
            if (!is_caught || !rc || rep.n < 1)
                fail_msg("flip of byte %zu by %02x not detected (open/read %d, verify %d)", i, masks[k], is_caught, rc);
            total++;
        }
    }
    printf("  %zu flips: %zu caught at open, %zu by the payload check, all by verify\n", total, at_open, at_read);
    free(buf);
    free(orig);
}

static void test_every_truncation(void **state)
{
    (void)state;
    size_t len;
    uint8_t *orig = small_block("block-trunc", &len, NULL);
    for (size_t l = 0; l < len; l++) {
        uint8_t *buf = malloc(l + 1);
        memcpy(buf, orig, l);
        memenv me;
        memenv_init(&me, buf, l);
        mk_block *b = NULL;
        mk_diag d;
        assert_int_equal(mk_block_open(&me.env, "cut.mkb", &b, &d), MK_ECORRUPT);
        assert_null(b);
        assert_non_null(strstr(d.msg, "cut.mkb"));
        assert_int_equal(mk_block_verify(&me.env, "cut.mkb", NULL, NULL, NULL, NULL, &d), MK_ECORRUPT);
        free(buf);
    }
    /* and a longer file (garbage appended) */
    uint8_t *buf = malloc(len + 5);
    memcpy(buf, orig, len);
    memset(buf + len, 0, 5);
    memenv me;
    memenv_init(&me, buf, len + 5);
    mk_block *b = NULL;
    mk_diag d;
    assert_int_equal(mk_block_open(&me.env, "long.mkb", &b, &d), MK_ECORRUPT);
    free(buf);
    free(orig);
}

static void test_magic_and_version(void **state)
{
    (void)state;
    size_t len;
    uint8_t *orig = small_block("block-magic", &len, NULL);
    uint8_t *buf = malloc(len);
    memenv me;
    mk_block *b = NULL;
    mk_diag d;

    memcpy(buf, orig, len);
    buf[0] = 'X';
    memenv_init(&me, buf, len);
    assert_int_equal(mk_block_open(&me.env, "m.mkb", &b, &d), MK_ENOTOURS);

    /* A newer file: header and the footer's copy agree. */
    memcpy(buf, orig, len);
    mk_put_u16(buf + 4, MK_BLOCK_VERSION + 1);
    mk_put_u16(buf + len - 84 + 64, MK_BLOCK_VERSION + 1);
    assert_int_equal(mk_block_open(&me.env, "m.mkb", &b, &d), MK_ETOONEW);
    assert_non_null(strstr(d.msg, "version"));
    assert_int_equal(mk_block_verify(&me.env, "m.mkb", NULL, NULL, NULL, NULL, &d), MK_ETOONEW);

    /* Only the header's version changed (a bit flip): damage, not "too new",
     * so one bad block never makes the whole database refuse to open. */
    memcpy(buf, orig, len);
    mk_put_u16(buf + 4, MK_BLOCK_VERSION + 1);
    assert_int_equal(mk_block_open(&me.env, "m.mkb", &b, &d), MK_ECORRUPT);
    assert_non_null(strstr(d.msg, "damaged header"));

    const char *text = "svc,host=a qps=1 1700000000\n";
    memenv_init(&me, (const uint8_t *)text, strlen(text));
    assert_int_equal(mk_block_open(&me.env, "t.mkb", &b, &d), MK_ENOTOURS);

    memenv_init(&me, orig, len);
    assert_int_equal(mk_block_open(&me.env, "ok.mkb", &b, &d), MK_OK);
    mk_block_close(b);

    assert_int_equal(mk_block_open(NULL, "/nonexistent/dir/0000000000000001.mkb", &b, &d), MK_ENOTFOUND);
    assert_int_equal(mk_block_verify(NULL, "/nonexistent/x.mkb", NULL, NULL, NULL, NULL, &d), MK_ENOTFOUND);
    free(buf);
    free(orig);
}

/* A chunk's checksum is checked the first time mk_block_payload reads it
 * through the block's own index entry, not after: bytes changed under the
 * open block afterwards pass through that entry, are caught through a
 * caller's copy of it and in a chunk not read before. */
static void test_payload_checked_once(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = small_block("block-checked-once", &len, NULL);
    memenv me;
    memenv_init(&me, buf, len);
    mk_block *b = NULL;
    mk_diag d;
    assert_int_equal(mk_block_open(&me.env, "o.mkb", &b, &d), MK_OK);
    size_t n;
    const mk_block_chunk *c = mk_block_chunks(b, &n);
    assert_true(n >= 3);
    const uint8_t *p1, *p2, *p;
    assert_int_equal(mk_block_payload(b, &c[1], &p1, &d), MK_OK);
    assert_int_equal(mk_block_payload(b, &c[2], &p2, &d), MK_OK); /* located, checked */
    /* the mapping (memenv's heap copy) changed under the open block */
    ((uint8_t *)p1)[0] ^= 0x40;
    ((uint8_t *)p2)[c[2].len - 1] ^= 0x40;
    assert_int_equal(mk_block_payload(b, &c[1], &p, &d), MK_OK);
    assert_ptr_equal(p, p1);
    assert_int_equal(mk_block_payload(b, &c[2], &p, &d), MK_OK);
    mk_block_chunk copy = c[1];
    assert_int_equal(mk_block_payload(b, &copy, &p, &d), MK_ECORRUPT);
    assert_null(p);
    /* a chunk damaged before its first read is caught (the mapping's
     * bytes of c[0], found from c[1]'s) */
    ((uint8_t *)p1 - c[1].offset + c[0].offset)[0] ^= 0x40;
    assert_int_equal(mk_block_payload(b, &c[0], &p, &d), MK_ECORRUPT);
    assert_int_equal(mk_block_payload(b, &c[0], &p, &d), MK_ECORRUPT); /* and stays caught */
    mk_block_close(b);
    free(buf);
}

/* Damaged payloads: mk_block_payload names file and offset; verify reports
 * each bad chunk once, at its offset, and counts everything. */
static void test_payload_damage(void **state)
{
    (void)state;
    size_t len;
    ref_block ref;
    uint8_t *buf = small_block("block-payload", &len, &ref);
    memenv me;
    memenv_init(&me, buf, len);
    mk_block *b = NULL;
    mk_diag d;
    assert_int_equal(mk_block_open(&me.env, "p.mkb", &b, &d), MK_OK);
    size_t n;
    const mk_block_chunk *c = mk_block_chunks(b, &n);
    assert_true(n >= 3);
    uint64_t off1 = c[1].offset, off2 = c[n - 1].offset + c[n - 1].len; /* a payload byte, a checksum byte */
    mk_block_chunk fake = c[0];
    fake.offset = len - 3; /* a caller's bogus chunk: refused, never read */
    const uint8_t *p;
    assert_int_equal(mk_block_payload(b, &fake, &p, &d), MK_EINVAL);
    fake.offset = c[0].offset;
    fake.len = UINT32_MAX;
    assert_int_equal(mk_block_payload(b, &fake, &p, &d), MK_EINVAL);
    mk_block_close(b);

    buf[off1] ^= 0x10;
    buf[off2] ^= 0x01;
    memenv_init(&me, buf, len);
    assert_int_equal(mk_block_open(&me.env, "p.mkb", &b, &d), MK_OK); /* chunks are checked on read */
    c = mk_block_chunks(b, &n);
    assert_int_equal(mk_block_payload(b, &c[1], &p, &d), MK_ECORRUPT);
    assert_null(p);
    char want[80];
    snprintf(want, sizeof want, "p.mkb: corrupt at offset %" PRIu64 ":", off1);
    assert_non_null(strstr(d.msg, want));
    assert_int_equal(mk_block_payload(b, &c[0], &p, &d), MK_OK);
    uint64_t off_last = c[n - 1].offset;
    mk_block_close(b);

    reports rep = {0};
    uint64_t nc = 0, nsm = 0, want_ns = 0;
    for (size_t i = 0; i < ref.n; i++) want_ns += ref.c[i].sum.count;
    assert_int_equal(mk_block_verify(&me.env, "p.mkb", on_report, &rep, &nc, &nsm, &d), MK_ECORRUPT);
    assert_int_equal(rep.n, 2);
    assert_true(rep.off[0] == off1);
    assert_true(rep.off[1] == off_last);
    assert_true(nc == n && nsm == want_ns);
    ref_free(&ref);
    free(buf);
}

/* Lists the dir: exactly the names given (".mkb" files) and nothing else. */
static void assert_dir_is(const char *dir, const char *only)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (strcmp(e->d_name, only)) fail_msg("unexpected file %s in %s", e->d_name, dir);
    }
    closedir(d);
}

typedef struct fault_case {
    int kind;
    int err;
    int is_short;
    int is_sticky;
    const char *step;
    mk_err want;
} fault_case;

/* Every step of writing fails in turn: the error names the step, no new
 * file (final or temporary) is left, and the older block is untouched. */
static void test_fault_injection(void **state)
{
    (void)state;
    mk_rng r = {g_seed ^ 0xfa17};
    ref_block old, nb;
    random_block(&r, &old, 10, 2, 100, 0);
    random_block(&r, &nb, 60, 2, 9000, 0); /* ~550 KB: several buffer flushes */
    char *dir = mk_test_dir("block-fault");
    mk_diag d;
    assert_int_equal(write_block(NULL, dir, 1, &old, &d), MK_OK);
    char old_path[4200], new_path[4200];
    block_path(old_path, sizeof old_path, dir, 1);
    block_path(new_path, sizeof new_path, dir, 2);
    size_t old_len;
    uint8_t *old_bytes = slurp(old_path, &old_len);

    const fault_case cases[] = {
        {MK_FAULT_OPEN, EACCES, 0, 0, "\"create\"", MK_EIO},
        {MK_FAULT_PWRITE, ENOSPC, 0, 0, "\"write\"", MK_ENOSPC},
        {MK_FAULT_PWRITE, ENOSPC, 0, 1, "\"write\"", MK_ENOSPC},
        {MK_FAULT_PWRITE, EIO, 1, 0, "\"write\"", MK_EIO},
        {MK_FAULT_FSYNC, EIO, 0, 0, NULL, MK_EIO}, /* 1st: the file, 2nd: the directory */
        {MK_FAULT_RENAME, EXDEV, 0, 0, "\"rename\"", MK_EIO},
    };
    mk_faultenv fe;
    mk_faultenv_init(&fe);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const fault_case *fc = &cases[ci];
        int n_failures = 0;
        for (uint64_t nth = 1;; nth++) {
            mk_faultenv_reset(&fe);
            mk_faultenv_arm(&fe, fc->kind, nth, fc->err);
            fe.is_short_write = fc->is_short;
            fe.is_sticky = fc->is_sticky;
            memset(&d, 0, sizeof d);
            mk_err rc = write_block(&fe.env, dir, 2, &nb, &d);
            if (!fe.n_failed) { /* past the last call of this kind: it works */
                assert_int_equal(rc, MK_OK);
                assert_int_equal(unlink(new_path), 0);
                break;
            }
            n_failures++;
            if (rc != fc->want) fail_msg("case %zu nth %" PRIu64 ": %s (%s)", ci, nth, mk_err_name(rc), d.msg);
            const char *step = fc->step ? fc->step : nth == 1 ? "\"fsync\"" : "\"fsync directory\"";
            if (!strstr(d.msg, step)) fail_msg("case %zu nth %" PRIu64 ": step %s not in \"%s\"", ci, nth, step, d.msg);
            if (fc->kind == MK_FAULT_FSYNC && nth == 2) assert_non_null(strstr(d.msg, "removed again"));
            assert_dir_is(dir, "0000000000000001.mkb");
            size_t l;
            uint8_t *now = slurp(old_path, &l);
            assert_int_equal(l, old_len);
            assert_memory_equal(now, old_bytes, l);
            free(now);
        }
        printf("test_fault_injection: case %zu (%s): %d failing points\n", ci, fc->step ? fc->step : "fsync", n_failures);
        assert_true(n_failures >= 1);
        if (fc->kind == MK_FAULT_PWRITE) assert_true(n_failures >= 3);
        if (fc->kind == MK_FAULT_FSYNC) assert_int_equal(n_failures, 2);
    }
    mk_block *b = NULL;
    assert_int_equal(mk_block_open(NULL, old_path, &b, &d), MK_OK);
    check_block(b, &old, 1, &r);
    mk_block_close(b);
    free(old_bytes);
    ref_free(&old);
    ref_free(&nb);
    mk_test_rmrf(dir);
    free(dir);
}

/* A .tmp left by a crash is overwritten (truncated) by the next writer of
 * that seq; a writer whose create fails leaves a .tmp it did not create. */
static void test_stale_tmp(void **state)
{
    (void)state;
    mk_rng r = {g_seed ^ 0x7e};
    ref_block b;
    random_block(&r, &b, 6, 2, 80, 0);
    char *dir = mk_test_dir("block-stale");
    char tmp[4200], path[4200];
    snprintf(tmp, sizeof tmp, "%s/%016" PRIx64 ".mkb.tmp", dir, (uint64_t)5);
    block_path(path, sizeof path, dir, 5);
    FILE *f = fopen(tmp, "w");
    for (int i = 0; i < 100000; i++) fputc('g', f); /* longer than the block */
    fclose(f);

    mk_faultenv fe;
    mk_faultenv_init(&fe);
    mk_faultenv_arm(&fe, MK_FAULT_OPEN, 1, EACCES);
    mk_diag d;
    assert_int_equal(write_block(&fe.env, dir, 5, &b, &d), MK_EIO);
    struct stat st;
    assert_int_equal(stat(tmp, &st), 0); /* not ours: left alone */
    assert_int_equal(st.st_size, 100000);

    assert_int_equal(write_block(NULL, dir, 5, &b, &d), MK_OK);
    assert_dir_is(dir, "0000000000000005.mkb");
    mk_block *blk = NULL;
    if (mk_block_open(NULL, path, &blk, &d)) fail_msg("%s", d.msg);
    check_block(blk, &b, 5, &r);
    mk_block_close(blk);
    ref_free(&b);
    mk_test_rmrf(dir);
    free(dir);
}

/* A block never silently overwrites another of the same seq, unless it says
 * it replaces it. */
static void test_exists(void **state)
{
    (void)state;
    mk_rng r = {g_seed ^ 0xe0};
    ref_block a, b;
    random_block(&r, &a, 5, 1, 50, 0);
    random_block(&r, &b, 7, 1, 50, 0);
    b.n_repl = 0; /* a random list might name 9 */
    char *dir = mk_test_dir("block-exists");
    mk_diag d;
    assert_int_equal(write_block(NULL, dir, 9, &a, &d), MK_OK);
    assert_int_equal(write_block(NULL, dir, 9, &b, &d), MK_EEXIST);
    assert_dir_is(dir, "0000000000000009.mkb");
    char path[4200];
    block_path(path, sizeof path, dir, 9);
    mk_block *blk = NULL;
    assert_int_equal(mk_block_open(NULL, path, &blk, &d), MK_OK);
    check_block(blk, &a, 9, &r);
    mk_block_close(blk);

    b.repl = realloc(b.repl, (b.n_repl + 1) * sizeof *b.repl);
    b.repl[b.n_repl++] = 9;
    assert_int_equal(write_block(NULL, dir, 9, &b, &d), MK_OK);
    assert_int_equal(mk_block_open(NULL, path, &blk, &d), MK_OK);
    check_block(blk, &b, 9, &r);
    mk_block_close(blk);
    ref_free(&a);
    ref_free(&b);
    mk_test_rmrf(dir);
    free(dir);
}

/*
 * Index size on fleet-like data: 160 instances x (p95_ms, qps, error_rate,
 * heartbeat), one 2 h chunk of 720 samples at 10 s each, summaries computed
 * as a codec does. Payloads are random bytes of a plausible size (the index
 * does not depend on their content).
 */
static void test_index_size_fleet(void **state)
{
    (void)state;
    mk_rng r = {g_seed ^ 0xf1ee7};
    enum { N_INST = 160, N_SAMPLES = 720 };
    ref_block b = {0};
    b.c = calloc(N_INST * 4, sizeof *b.c);
    b.repl = malloc(sizeof *b.repl);
    double v[N_SAMPLES];
    int64_t t0 = INT64_C(1763600400000);
    for (int i = 0; i < N_INST; i++) {
        double lat = exp(log(8) + mk_rng_unit(&r) * (log(250) - log(8)));
        double rate = exp(log(5) + mk_rng_unit(&r) * (log(1250) - log(5)));
        double perr = exp(log(1e-4) + mk_rng_unit(&r) * (log(4e-3) - log(1e-4)));
        for (int f = 0; f < 4; f++) {
            for (int k = 0; k < N_SAMPLES; k++) {
                double season = 1 + 0.4 * cos(2 * M_PI * k / 8640.0 + i);
                double mean = rate * season * 10;
                double nreq = floor(mean + sqrt(mean) * gauss(&r) + 0.5);
                if (nreq < 0) nreq = 0;
                double sigma = 0.05 + 0.6 / sqrt(nreq + 1);
                switch (f) {
                case 0: v[k] = round_to(lat * (1 + 0.3 * season * season * season) * exp(sigma * gauss(&r)), 2); break;
                case 1: v[k] = floor(nreq / 10 + 0.5); break;
                case 2: {
                    double lam = nreq * perr, e = 0, p = mk_rng_unit(&r), lim = exp(-lam);
                    while (p > lim && e < nreq) { e++; p *= mk_rng_unit(&r); }
                    v[k] = nreq ? round_to(e / nreq, 4) : 0;
                    break;
                }
                default: v[k] = 1; break;
                }
            }
            ref_chunk *c = &b.c[b.n++];
            c->id = mk_rng_next(&r);
            summarise(v, N_SAMPLES, &c->sum);
            c->sum.first_ts_ms = t0;
            c->sum.last_ts_ms = t0 + (N_SAMPLES - 1) * 10000;
            c->len = f == 0 ? 900 : f == 1 ? 500 : f == 2 ? 300 : 12;
            c->payload = malloc(c->len);
            for (size_t j = 0; j < c->len; j++) c->payload[j] = (uint8_t)mk_rng_next(&r);
        }
    }
    /* ids ascending */
    for (size_t i = 1; i < b.n; i++)
        for (size_t j = i; j > 0 && b.c[j - 1].id > b.c[j].id; j--) {
            ref_chunk t = b.c[j]; b.c[j] = b.c[j - 1]; b.c[j - 1] = t;
        }
    char *dir = mk_test_dir("block-size");
    mk_diag d;
    assert_int_equal(write_block(NULL, dir, 1, &b, &d), MK_OK);
    char path[4200];
    block_path(path, sizeof path, dir, 1);
    mk_block *blk = NULL;
    assert_int_equal(mk_block_open(NULL, path, &blk, &d), MK_OK);
    check_block(blk, &b, 1, &r);
    uint64_t payload = 0;
    for (size_t i = 0; i < b.n; i++) payload += b.c[i].len;
    uint64_t file = mk_block_file_bytes(blk);
    uint64_t index = file - HDR_BYTES - FTR_BYTES - payload - XXH_BYTES * b.n;
    double overhead = (double)(file - payload) / (double)(b.n * N_SAMPLES);
    printf("test_index_size_fleet: %zu chunks, index %" PRIu64 " B = %.1f B/chunk; all overhead "
           "(index, checksums, header, footer) %.1f B/chunk = %.4f B/sample\n",
           b.n, index, (double)index / (double)b.n, (double)(file - payload) / (double)b.n, overhead);
    /* Regression guard: a naive index costs ~90 B/chunk. */
    assert_true((double)index / (double)b.n < 24.0);
    mk_block_close(blk);
    ref_free(&b);
    mk_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const char *s = getenv("MK_TEST_SEED");
    if (s && *s) g_seed = strtoull(s, NULL, 0);
    printf("test_block: seed %016" PRIx64 " (set MK_TEST_SEED to change)\n", g_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_find_many),
        cmocka_unit_test(test_payload_checked_once),
        cmocka_unit_test(test_empty_and_abort),
        cmocka_unit_test(test_ordering_rules),
        cmocka_unit_test(test_every_byte_flip),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_magic_and_version),
        cmocka_unit_test(test_payload_damage),
        cmocka_unit_test(test_fault_injection),
        cmocka_unit_test(test_stale_tmp),
        cmocka_unit_test(test_exists),
        cmocka_unit_test(test_index_size_fleet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

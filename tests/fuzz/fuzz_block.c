/*
 * tests/fuzz/fuzz_block.c — the input is a block file.
 *
 * Each input is checked twice: as it is, and with the footer checksum
 * recomputed ("repaired"), so mutations reach the index decoder instead of
 * stopping at the checksum. For each:
 *  - mk_block_open must not crash or read outside the file (the file is
 *    served from an exact-size heap copy, so ASan sees any overread);
 *  - if it opens: the chunk list is sorted, every chunk lies inside the data
 *    section without overlap, mk_block_find agrees with the list, each
 *    payload is read (checksum checked); mk_block_verify fails exactly when
 *    some payload check failed;
 *  - if it does not open, mk_block_verify fails with the same code;
 *  - round trip: a block that opens with all payloads intact is written
 *    again through the writer (into memory) and must read back identical;
 *  - rollup blocks (header flag): each intact payload goes through
 *    mk_rollup_decode, which must refuse or decode within its bounds; the
 *    round trip keeps the flag;
 *  - determinism: a second run gives the same digest.
 *
 * Seeds: run once with MK_FUZZ_SEED_DIR=<corpus dir> to write a few valid
 * blocks there (small ones with a raw index, larger ones with zstd).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "format.h"
#include "rollup.h"
#include "util.h"

#define FTR_BYTES 84
#define HDR_BYTES 16
#define XXH_BYTES 8

/* ---- an mk_env holding one in-memory file (read, or written then read) --- */

typedef struct memenv {
    mk_env env;
    uint8_t *data; /* the file */
    size_t len, cap;
    int is_writable;
} memenv;

static int m_open(mk_env *e, const char *p, int flags, int mode)
{
    memenv *m = (memenv *)e;
    (void)p; (void)mode;
    if (flags & (O_WRONLY | O_RDWR | O_CREAT)) return m->is_writable ? (m->len = 0, 7) : -EROFS;
    if (flags & O_DIRECTORY) return 8;
    if (m->is_writable) return -ENOENT; /* "no block of that name yet" */
    return 9;
}
static int m_ok(mk_env *e, int fd) { (void)e; (void)fd; return 0; }
static ssize_t m_pwrite(mk_env *e, int fd, const void *b, size_t n, off_t o)
{
    memenv *m = (memenv *)e;
    (void)fd;
    size_t end = (size_t)o + n;
    if (end > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < end) cap *= 2;
        uint8_t *p = realloc(m->data, cap);
        if (!p) return -ENOMEM;
        m->data = p;
        m->cap = cap;
    }
    if ((size_t)o > m->len) memset(m->data + m->len, 0, (size_t)o - m->len);
    memcpy(m->data + o, b, n);
    if (end > m->len) m->len = end;
    return (ssize_t)n;
}
static ssize_t m_pread(mk_env *e, int fd, void *b, size_t n, off_t o)
{
    memenv *m = (memenv *)e;
    (void)fd;
    if ((size_t)o >= m->len) return 0;
    if (n > m->len - (size_t)o) n = m->len - (size_t)o;
    memcpy(b, m->data + o, n);
    return (ssize_t)n;
}
static int m_ftrunc(mk_env *e, int fd, off_t l) { (void)e; (void)fd; (void)l; return 0; }
static int m_paths(mk_env *e, const char *a, const char *b) { (void)e; (void)a; (void)b; return 0; }
static int m_path(mk_env *e, const char *a) { (void)e; (void)a; return 0; }
static int m_mkdir(mk_env *e, const char *p, int md) { (void)e; (void)p; (void)md; return 0; }
static int64_t m_size(mk_env *e, int fd) { (void)fd; return (int64_t)((memenv *)e)->len; }
static int m_mmap(mk_env *e, int fd, size_t n, void **out)
{
    memenv *m = (memenv *)e;
    (void)fd;
    *out = NULL;
    if (!n) return 0;
    if (n > m->len) return -EINVAL;
    void *p = malloc(n); /* exact size */
    if (!p) return -ENOMEM;
    memcpy(p, m->data, n);
    *out = p;
    return 0;
}
static int m_munmap(mk_env *e, void *p, size_t n) { (void)e; (void)n; free(p); return 0; }
static int64_t m_now(mk_env *e) { (void)e; return 0; }

static void memenv_init(memenv *m, uint8_t *data, size_t len, int is_writable)
{
    m->env = (mk_env){m_open, m_ok, m_pwrite, m_pread, m_ok, m_ftrunc, m_paths, m_path,
                      m_mkdir, m_size, m_mmap, m_munmap, m_now, m, NULL};
    m->data = data;
    m->len = m->cap = len;
    m->is_writable = is_writable;
}

/* ---- checks ------------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull; }

static void check(int ok, const char *what)
{
    if (!ok) { fprintf(stderr, "fuzz_block: invariant broken: %s\n", what); abort(); }
}

static int same_summary(const mk_chunk_summary *a, const mk_chunk_summary *b)
{
    return a->count == b->count && a->first_ts_ms == b->first_ts_ms && a->last_ts_ms == b->last_ts_ms &&
           mk_f64_bits(a->min) == mk_f64_bits(b->min) && mk_f64_bits(a->max) == mk_f64_bits(b->max) &&
           mk_f64_bits(a->sum) == mk_f64_bits(b->sum) && mk_f64_bits(a->sumsq) == mk_f64_bits(b->sumsq) &&
           mk_f64_bits(a->first) == mk_f64_bits(b->first) && mk_f64_bits(a->last) == mk_f64_bits(b->last);
}

/* Writes b again through the writer into memory and checks it reads back
 * the same. Only for blocks whose payloads are all intact. */
static void round_trip(const mk_block *b)
{
    memenv out;
    memenv_init(&out, NULL, 0, 1);
    mk_block_writer *w = NULL;
    mk_diag d;
    check(mk_block_writer_open_flags(&out.env, "mem", mk_block_seq(b), mk_block_flags(b), &w, &d) == MK_OK, "writer open");
    size_t n, nr;
    const mk_block_chunk *c = mk_block_chunks(b, &n);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p;
        check(mk_block_payload(b, &c[i], &p, &d) == MK_OK, "payload");
        check(mk_block_writer_add(w, c[i].series_id, &c[i].sum, p, c[i].len, &d) == MK_OK, "re-add a chunk read");
    }
    const uint64_t *r = mk_block_replaced(b, &nr);
    check(mk_block_writer_replaces(w, r, nr, &d) == MK_OK, "replaces");
    check(mk_block_writer_finish(w, &d) == MK_OK, "finish");
    memenv in;
    memenv_init(&in, out.data, out.len, 0);
    mk_block *b2 = NULL;
    check(mk_block_open(&in.env, "mem2", &b2, &d) == MK_OK, "reopen the rewritten block");
    size_t n2, nr2;
    const mk_block_chunk *c2 = mk_block_chunks(b2, &n2);
    check(n2 == n, "chunk count");
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p, *p2;
        check(c2[i].series_id == c[i].series_id && c2[i].len == c[i].len, "chunk id/len");
        check(same_summary(&c2[i].sum, &c[i].sum), "summary bits");
        check(mk_block_payload(b, &c[i], &p, &d) == MK_OK && mk_block_payload(b2, &c2[i], &p2, &d) == MK_OK,
              "payloads");
        check(memcmp(p, p2, c[i].len) == 0, "payload bytes");
    }
    const uint64_t *r2 = mk_block_replaced(b2, &nr2);
    check(nr2 == nr && (!nr || memcmp(r, r2, nr * 8) == 0), "replaced");
    check(mk_block_min_ts(b2) == mk_block_min_ts(b) && mk_block_max_ts(b2) == mk_block_max_ts(b), "time range");
    check(mk_block_seq(b2) == mk_block_seq(b), "seq");
    check(mk_block_flags(b2) == mk_block_flags(b), "flags");
    mk_block_close(b2);
    free(out.data);
}

/* Opens, reads and verifies data[0..n); returns a digest of every result. */
static uint64_t run(uint8_t *data, size_t n)
{
    memenv me;
    memenv_init(&me, data, n, 0);
    mk_block *b = NULL;
    mk_diag d = {0};
    mk_err rc = mk_block_open(&me.env, "fuzz.mkb", &b, &d);
    uint64_t h = mix(0, (uint64_t)rc);
    if (rc) {
        check(b == NULL, "no block on failure");
        h = mix(h, mk_hash64(d.msg, strlen(d.msg)));
        mk_diag d2;
        check(mk_block_verify(&me.env, "fuzz.mkb", NULL, NULL, NULL, NULL, &d2) == rc, "verify agrees with open");
        return h;
    }
    size_t nc, nr;
    const mk_block_chunk *c = mk_block_chunks(b, &nc);
    uint64_t end = HDR_BYTES, n_bad = 0, n_samples = 0;
    check(nc >= 1, "a block has chunks");
    for (size_t i = 0; i < nc; i++) {
        check(c[i].offset == end, "chunks contiguous from the header");
        check(c[i].len >= 1 && c[i].offset + c[i].len + XXH_BYTES <= n - FTR_BYTES, "chunk inside the file");
        end = c[i].offset + c[i].len + XXH_BYTES;
        check(c[i].sum.count >= 1 && c[i].sum.first_ts_ms <= c[i].sum.last_ts_ms, "summary sane");
        if (i) {
            check(c[i - 1].series_id < c[i].series_id ||
                  (c[i - 1].series_id == c[i].series_id && c[i - 1].sum.last_ts_ms < c[i].sum.first_ts_ms),
                  "sorted by (id, time)");
        }
        check(c[i].sum.first_ts_ms >= mk_block_min_ts(b) && c[i].sum.last_ts_ms <= mk_block_max_ts(b), "in the block's range");
        size_t k;
        const mk_block_chunk *f = mk_block_find(b, c[i].series_id, &k);
        check(f && f <= &c[i] && &c[i] < f + k, "find covers the chunk");
        const uint8_t *p;
        mk_err pr = mk_block_payload(b, &c[i], &p, &d);
        n_bad += pr != MK_OK;
        h = mix(h, (uint64_t)pr);
        if (pr == MK_OK && (mk_block_flags(b) & MK_BLOCK_FLAG_ROLLUP)) {
            static mk_codec *codec;
            static mk_bucket *bk;
            static int64_t *ts;
            static double *v;
            if (!codec) {
                check(mk_codec_new(&codec) == MK_OK, "codec");
                bk = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *bk);
                ts = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *ts);
                v = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *v);
            }
            uint32_t got = 0;
            mk_err dr = mk_rollup_decode(codec, p, c[i].len, bk, MK_CHUNK_MAX_SAMPLES, &got, ts, v, &d);
            check(dr != MK_OK || (got >= 1 && got <= MK_CHUNK_MAX_SAMPLES), "rollup decode within bounds");
            for (uint32_t j = 1; dr == MK_OK && j < got; j++) check(bk[j - 1].start_ms < bk[j].start_ms, "buckets ascending");
            h = mix(h, (uint64_t)dr ^ got);
        }
        h = mix(h, c[i].series_id);
        h = mix(h, mk_f64_bits(c[i].sum.sum) ^ (uint64_t)c[i].sum.first_ts_ms);
        n_samples += c[i].sum.count;
    }
    size_t k = 1;
    check(mk_block_find(b, c[0].series_id - 1, &k) == NULL || c[0].series_id == 0, "nothing below the first id");
    const uint64_t *r = mk_block_replaced(b, &nr);
    for (size_t i = 1; i < nr; i++) check(r[i - 1] < r[i], "replaced ascending");
    uint64_t vc = 0, vs = 0;
    mk_diag d2;
    mk_err vr = mk_block_verify(&me.env, "fuzz.mkb", NULL, NULL, &vc, &vs, &d2);
    check((vr == MK_OK) == (n_bad == 0), "verify fails exactly when a payload does");
    check(vc == nc && vs == n_samples, "verify counts");
    if (!n_bad) round_trip(b);
    mk_block_close(b);
    return mix(h, n_bad);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    uint64_t h1 = run(copy, size), h2 = run(copy, size);
    check(h1 == h2, "deterministic");
    /* Repaired: footer checksum recomputed over what the footer points at. */
    if (size >= HDR_BYTES + FTR_BYTES) {
        uint8_t *ft = copy + size - FTR_BYTES;
        uint64_t off = mk_get_u64(ft), len = mk_get_u64(ft + 8);
        if (off >= HDR_BYTES && off <= size - FTR_BYTES && len == size - FTR_BYTES - off) {
            mk_put_u64(ft + 72, mk_hash64(copy + off, len + 72));
            h1 = run(copy, size);
            h2 = run(copy, size);
            check(h1 == h2, "deterministic (repaired)");
        }
    }
    free(copy);
    return 0;
}

/* ---- seeds ---------------------------------------------------------------- */

static void write_seed(const char *dir, uint64_t seq, size_t n_series, size_t n_chunks, uint64_t salt)
{
    mk_block_writer *w = NULL;
    mk_diag d;
    char path[4096];
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".mkb", dir, seq);
    mk_env_default()->unlink(mk_env_default(), path); /* rewrite on every run */
    if (mk_block_writer_open(NULL, dir, seq, &w, &d)) { fprintf(stderr, "%s\n", d.msg); return; }
    uint64_t id = salt;
    uint8_t payload[64];
    for (size_t s = 0; s < n_series; s++) {
        id += 1 + (mk_hash64(&id, 8) >> (s % 3 ? 40 : 9)); /* 200 steps stay below 2^64 */
        int64_t t = INT64_C(1763596800000) + (int64_t)(s % 5) * 10000;
        for (size_t k = 0; k < n_chunks; k++) {
            mk_chunk_summary sum = {.first_ts_ms = t, .last_ts_ms = t + 7190000, .count = 720};
            double base = (double)(s % 4 == 0 ? 1 : s % 4 == 1 ? 500 : s % 4 == 2 ? 0.0012 : 80.37);
            sum.min = base;
            sum.max = base * 1.5;
            sum.first = base * 1.25;
            sum.last = s % 7 ? base : -0.0;
            sum.sum = base * 720.37;
            sum.sumsq = base * base * 733.1;
            if (s % 11 == 10) sum.min = NAN;
            for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)(s * 31 + k * 7 + i);
            if (mk_block_writer_add(w, id, &sum, payload, 1 + (s * 13 + k) % sizeof payload, &d)) {
                fprintf(stderr, "%s\n", d.msg);
                mk_block_writer_abort(w);
                return;
            }
            t += 7200000;
        }
    }
    uint64_t repl[3] = {seq - 1, seq + 5, 3};
    mk_block_writer_replaces(w, repl, seq % 3, &d);
    if (mk_block_writer_finish(w, &d)) fprintf(stderr, "%s\n", d.msg);
}

/* A rollup block: real rollup payloads (FORMAT.md, "Rollup blocks"). */
static void write_rollup_seed(const char *dir, uint64_t seq)
{
    mk_block_writer *w = NULL;
    mk_diag d;
    char path[4096];
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".mkb", dir, seq);
    mk_env_default()->unlink(mk_env_default(), path);
    if (mk_block_writer_open_flags(NULL, dir, seq, MK_BLOCK_FLAG_ROLLUP, &w, &d)) { fprintf(stderr, "%s\n", d.msg); return; }
    mk_codec *codec = NULL;
    if (mk_codec_new(&codec)) return;
    mk_buf enc = {0};
    for (uint64_t id = 10; id < 14; id++) {
        mk_bucket b[24];
        for (int i = 0; i < 24; i++)
            b[i] = (mk_bucket){INT64_C(1763596800000) + i * 3600000LL, 360, 36.5 * (double)id * i, 400.25 * i, (double)i, i + 9.5, 1.25, (double)id};
        mk_chunk_summary sum;
        enc.len = 0;
        if (mk_rollup_encode(codec, b, 24, &enc, &sum) || mk_block_writer_add(w, id, &sum, enc.data, enc.len, &d)) break;
    }
    if (mk_block_writer_finish(w, &d)) fprintf(stderr, "%s\n", d.msg);
    mk_buf_free(&enc);
    mk_codec_free(codec);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    const char *dir = getenv("MK_FUZZ_SEED_DIR");
    if (!dir || !*dir) return 0;
    write_seed(dir, 1, 1, 1, 0);
    write_seed(dir, 2, 3, 2, 1);
    write_seed(dir, 3, 8, 1, 2);
    write_seed(dir, 4, 40, 1, 3);
    write_seed(dir, 5, 200, 2, 4);
    write_rollup_seed(dir, 6);
    return 0;
}

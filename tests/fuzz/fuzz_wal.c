/*
 * tests/fuzz/fuzz_wal.c — WAL replay on hostile segment files.
 *
 * The input becomes one to three segment files in a scratch directory, in
 * one of two modes chosen by its first byte:
 *
 *   raw         the bytes are the segment files (optionally behind a valid
 *               header, so the fuzzer gets past the header checksum);
 *   structured  the bytes are (type, len, payload) triples, encoded as valid
 *               records of one segment, then damaged: cut at one offset and
 *               one bit flipped. Oracle: replay yields exactly the records
 *               that end before the first damaged byte.
 *
 * Every input: replay never crashes; read-only replay twice gives the same
 * records (determinism); read-write replay (which truncates) gives the same
 * records again, and so does a read-only replay after it.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "util.h"
#include "wal.h"

#define HDR 24u

static char g_dir[256];

static void quiet_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

/* Replayed records serialised as (seq u64, type u8, len u32, payload). */
static int collect(void *ctx, uint8_t type, const uint8_t *p, size_t len, uint64_t seq)
{
    mk_buf *b = ctx;
    uint8_t h[13];
    mk_put_u64(h, seq);
    h[8] = type;
    mk_put_u32(h + 9, (uint32_t)len);
    if (mk_buf_append(b, h, sizeof h) || mk_buf_append(b, p, len)) return MK_ENOMEM;
    return 0;
}

static void clear_dir(void)
{
    DIR *d = opendir(g_dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", g_dir, de->d_name);
        unlink(p);
    }
    closedir(d);
}

static void write_seg(uint64_t seq, const uint8_t *hdr, const uint8_t *p, size_t n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%016llx.wal", g_dir, (unsigned long long)seq);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (hdr && fwrite(hdr, 1, HDR, f) != HDR) abort();
    if (n && fwrite(p, 1, n, f) != n) abort();
    fclose(f);
}

static void make_header(uint8_t h[HDR], uint64_t seq)
{
    mk_put_u32(h, MK_WAL_MAGIC);
    mk_put_u16(h + 4, MK_WAL_VERSION);
    mk_put_u16(h + 6, 0);
    mk_put_u64(h + 8, seq);
    mk_put_u64(h + 16, mk_hash64(h, 16));
}

/* The real OS but fsync is a no-op: durability is not under test here, and
 * the truncations of read-write replays would otherwise dominate the run. */
static int nosync(mk_env *e, int fd)
{
    (void)e;
    (void)fd;
    return 0;
}

static mk_err run(int is_read_only, mk_buf *out, uint64_t *last)
{
    static mk_env env;
    if (!env.open) {
        env = *mk_env_default();
        env.fsync = nosync;
    }
    mk_wal_opts o = {MK_FSYNC_OFF, 0, 0, quiet_log, NULL};
    mk_diag d;
    out->len = 0;
    return mk_wal_replay(&env, g_dir, &o, is_read_only, collect, out, last, &d);
}

static int same(const mk_buf *a, const mk_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Structured mode: builds a valid segment from the input, damages it, and
 * returns the expected replay (records ending before the damage). */
static void build_structured(const uint8_t *p, size_t n, mk_buf *seg, mk_buf *want, int *is_header_damaged)
{
    uint8_t h[HDR];
    make_header(h, 1);
    seg->len = 0;
    want->len = 0;
    if (mk_buf_append(seg, h, HDR)) abort();
    if (n < 5) return;
    uint16_t cut_sel = mk_get_u16(p), flip_sel = mk_get_u16(p + 2);
    uint8_t ops = p[4];
    p += 5;
    n -= 5;
    /* Record ends, to compute the oracle after damage. */
    size_t ends[512], n_rec = 0;
    uint8_t types[512];
    size_t offs[512], lens[512];
    size_t i = 0;
    while (i + 2 <= n && n_rec < 512) {
        uint8_t type = p[i] ? p[i] : 1;
        size_t len = p[i + 1];
        i += 2;
        if (len > n - i) len = n - i;
        uint8_t rh[5];
        mk_put_u32(rh, (uint32_t)len);
        rh[4] = type;
        size_t start = seg->len;
        if (mk_buf_append(seg, rh, 5) || mk_buf_append(seg, p + i, len)) abort();
        uint8_t sum[8];
        mk_put_u64(sum, mk_hash64(seg->data + start, 5 + len));
        if (mk_buf_append(seg, sum, 8)) abort();
        types[n_rec] = type;
        offs[n_rec] = i;
        lens[n_rec] = len;
        ends[n_rec++] = seg->len;
        i += len;
    }
    size_t damage = seg->len; /* first damaged byte */
    if (ops & 1) {
        size_t cut = cut_sel % (seg->len + 1);
        seg->len = cut;
        damage = cut;
    }
    if ((ops & 2) && seg->len) {
        size_t at = flip_sel % seg->len;
        seg->data[at] ^= (uint8_t)(1u << (ops >> 5));
        if (at < damage) damage = at;
    }
    *is_header_damaged = damage < HDR;
    if (*is_header_damaged) return;
    for (size_t r = 0; r < n_rec && ends[r] <= damage; r++) {
        uint8_t rh[13];
        mk_put_u64(rh, 1);
        rh[8] = types[r];
        mk_put_u32(rh + 9, (uint32_t)lens[r]);
        if (mk_buf_append(want, rh, 13) || mk_buf_append(want, p + offs[r], lens[r])) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/mk-fuzz-wal-XXXXXX");
        if (!mkdtemp(g_dir)) abort();
    }
    clear_dir();
    if (size < 1) return 0;
    uint8_t mode = data[0];
    data++;
    size--;

    mk_buf seg = {0}, want = {0}, a = {0}, b = {0}, c = {0}, e = {0};
    int is_structured = (mode & 0x80) != 0, is_header_damaged = 0;
    if (is_structured) {
        build_structured(data, size, &seg, &want, &is_header_damaged);
        write_seg(1, NULL, seg.data, seg.len);
    } else {
        /* Up to three segments; bit 2 puts a valid header in front of each;
         * bit 3 leaves a hole in the numbering. */
        size_t n_segs = 1 + (mode & 3) % 3;
        size_t pos = 0;
        for (size_t s = 0; s < n_segs; s++) {
            size_t len = size - pos;
            if (s + 1 < n_segs && size - pos >= 2) {
                len = mk_get_u16(data + pos) % (size - pos - 1);
                pos += 2;
            }
            if (len > size - pos) len = size - pos;
            uint64_t seq = s + 1 + ((mode & 8) && s == n_segs - 1 ? 1 : 0);
            uint8_t h[HDR];
            make_header(h, seq);
            write_seg(seq, (mode & 4) ? h : NULL, data + pos, len);
            pos += len;
        }
    }

    uint64_t l1 = 0, l2 = 0, l3 = 0, l4 = 0;
    mk_err r1 = run(1, &a, &l1);
    mk_err r2 = run(1, &b, &l2);
    if (r1 != r2 || l1 != l2 || !same(&a, &b)) abort(); /* determinism */
    if (r1 != MK_OK && r1 != MK_ETOONEW && r1 != MK_ENOMEM) abort();
    mk_err r3 = run(0, &c, &l3);
    if (r3 != r1 || !same(&a, &c)) abort(); /* truncation changes nothing replayed */
    mk_err r4 = run(1, &e, &l4);
    if (r4 != r1 || !same(&a, &e) || l4 != l3) abort();
    if (is_structured) {
        if (is_header_damaged) {
            if (a.len != 0) abort();
        } else if (r1 != MK_OK || !same(&a, &want)) {
            abort(); /* the oracle */
        }
    }
    mk_buf_free(&seg);
    mk_buf_free(&want);
    mk_buf_free(&a);
    mk_buf_free(&b);
    mk_buf_free(&c);
    mk_buf_free(&e);
    return 0;
}

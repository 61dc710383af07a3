/*
 * engine/block.c — immutable block files (block.h). Byte layout: FORMAT.md,
 * "Block file"; in short:
 *
 *   +--------+------------------------------------+---------------+--------+
 *   | header | payload 0 | xxh 0 | payload 1 | ... | index section | footer |
 *   |  16 B  |        data section (chunks)       | (zstd or raw) |  84 B  |
 *   +--------+------------------------------------+---------------+--------+
 *
 * Invariants of every file this code writes or accepts:
 *  - the header (magic, version, flags, seq) is repeated in the footer and
 *    both must agree; the file ends with the magic, so a truncated file never
 *    looks complete;
 *  - the footer's XXH3-64 covers the index section and the footer up to the
 *    checksum (contiguous bytes), so all of index and footer is checked at
 *    open; each payload is followed by the XXH3-64 of its bytes, checked on
 *    every read, so every byte of the file is covered by some check;
 *  - payload offsets are not stored: chunks lie in index order, chunk i
 *    starting where chunk i-1's checksum ends, and the last checksum ends
 *    exactly where the index starts. Overlap is impossible by construction;
 *    bounds are checked once at open, and again (cheaply) on each read;
 *  - series ids strictly ascending; the chunks of one series strictly after
 *    one another in time (first_ts > previous last_ts); count >= 1 and
 *    first_ts <= last_ts in every summary. The writer refuses anything the
 *    reader would reject.
 *
 * The index is small on purpose: at 720 samples per chunk (2 h at 10 s),
 * every index byte per chunk costs 0.0014 B/sample. It is columnar (one
 * varint stream per field, so zstd sees like next to like), times and
 * lengths are deltas, and the six summary doubles are stored as decimal
 * integers (value = m / 10^k, plus an exact correction in ULPs) relative to
 * a prediction from the fields before them; see enc_values().
 */
#include "block.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zstd.h>

#include "format.h"
#include "util.h"

/* ---- layout constants (FORMAT.md "Block file") -------------------------- */

#define HDR_BYTES 16 /* magic u32, version u16, flags u16, seq u64 */
#define XXH_BYTES 8  /* the checksum after each payload */

/* Footer, FTR_BYTES at the very end of the file. */
#define FTR_INDEX_OFF 0  /* u64 file offset of the index section */
#define FTR_INDEX_LEN 8  /* u64 bytes of the index section as stored */
#define FTR_RAW_LEN 16   /* u64 bytes of the index after decompression */
#define FTR_N_CHUNKS 24  /* u64 */
#define FTR_N_REPL 32    /* u64 seqs replaced */
#define FTR_MIN_TS 40    /* i64 smallest first_ts of any chunk */
#define FTR_MAX_TS 48    /* i64 largest last_ts of any chunk */
#define FTR_SEQ 56       /* u64 copy of the header's */
#define FTR_VERSION 64   /* u16 copy of the header's */
#define FTR_FLAGS 66     /* u16 copy of the header's (0 in version 1) */
#define FTR_CODEC 68     /* u8 index codec; 3 reserved zero bytes follow */
#define FTR_CHECKSUM 72  /* u64 XXH3-64 of [index_off, file_size - 12) */
#define FTR_MAGIC 80     /* u32 MK_BLOCK_MAGIC */
#define FTR_BYTES 84

#define IDX_CODEC_RAW 0
#define IDX_CODEC_ZSTD 1

/* Upper bounds that keep a damaged file from making us allocate much. */
#define MAX_REPLACED (1u << 20)
#define MAX_CHUNKS UINT32_MAX
/* Worst case raw index bytes per chunk: series id + chunk count (10 + 10),
 * length 10, count 5, two times 20, six values of tag 1 + (10 + 10). */
#define MAX_RAW_PER_CHUNK 181u

#define WBUF_BYTES (64 * 1024) /* writer buffer: db.c keeps up to 64 writers open */
#define ZSTD_LEVEL_SMALL 19    /* index < 1 MiB: ~20 ms at most */
#define ZSTD_LEVEL_LARGE 9

/* Index streams (FORMAT.md lists them). Per series: SID, SNC. Per chunk:
 * LEN, CNT, TS0, TSN, then for each summary double f: TAG+f, M+f, D+f, RAW.
 * Then REPL. */
enum { F_MIN, F_MAX, F_SUM, F_SUMSQ, F_FIRST, F_LAST, F_COUNT }; /* stream order */
enum {
    ST_SID,            /* series id: first absolute, then delta >= 1 */
    ST_SNC,            /* chunks of the series, >= 1 */
    ST_LEN,            /* payload bytes, >= 1 */
    ST_CNT,            /* samples, >= 1 */
    ST_TS0,            /* first_ts - block min_ts (a series' first chunk) or
                          first_ts - previous last_ts - 1 (later chunks) */
    ST_TSN,            /* last_ts - first_ts */
    ST_TAG,            /* F_COUNT streams of one tag byte per chunk */
    ST_M = ST_TAG + F_COUNT, /* zig-zag (m - prediction) */
    ST_D = ST_M + F_COUNT,   /* zig-zag ULP correction, only if tag has VAL_HAS_D */
    ST_RAW = ST_D + F_COUNT, /* 8-byte little-endian doubles of VAL_RAW values */
    ST_REPL,           /* replaced seqs: first absolute, then delta >= 1 */
    ST_COUNT
};

/* Value tag: 0..VAL_K_MAX = decimal with k digits; | VAL_HAS_D if a ULP
 * correction follows; VAL_RAW = eight raw bytes. Stored XOR'd with
 * tag_expect(). */
#define VAL_K_MAX 18
#define VAL_K_MASK 0x3f
#define VAL_HAS_D 0x40
#define VAL_RAW 0xff

static const double k_p10[VAL_K_MAX + 1] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,
                                            1e7,  1e8,  1e9,  1e10, 1e11, 1e12, 1e13,
                                            1e14, 1e15, 1e16, 1e17, 1e18};

/* ---- small helpers ------------------------------------------------------ */

static int64_t u2i(uint64_t u) { int64_t i; memcpy(&i, &u, 8); return i; }

static unsigned uv_len(uint64_t v)
{
    unsigned n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

/* Doubles mapped to integers in the same order (negative below positive),
 * so "a few ULPs away" is a small integer difference whatever the sign. */
static uint64_t f64_key(double v)
{
    uint64_t u = mk_f64_bits(v);
    return (u >> 63) ? ~u : u | (1ull << 63);
}
static double key_f64(uint64_t k) { return mk_bits_f64((k >> 63) ? k & ~(1ull << 63) : ~k); }

static mk_err put_uv(mk_buf *b, uint64_t v)
{
    mk_err rc = mk_buf_reserve(b, 10);
    if (rc) return rc;
    b->len += mk_put_uvarint(b->data + b->len, v);
    return MK_OK;
}

/* Appends "<dir>/<seq>.mkb<suffix>" as a malloc'ed string. */
static char *block_name(const char *dir, uint64_t seq, const char *suffix)
{
    size_t n = strlen(dir) + 1 + 16 + 4 + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%016" PRIx64 ".mkb%s", dir, seq, suffix);
    return p;
}

static const char *summary_problem(const mk_chunk_summary *s)
{
    if (s->count < 1) return "count is 0";
    if (s->first_ts_ms > s->last_ts_ms) return "first_ts is after last_ts";
    return NULL;
}

/* ---- summary values: decimal coding -------------------------------------- */

/*
 * Each summary double v is stored as one of
 *   decimal: k (0..18), m, d with v == key_f64(f64_key(m / 10^k) + d)
 *   raw:     the eight bytes.
 * Fields go in the order min, max, sum, sumsq, first, last, and each is
 * predicted from the ones before it (val_pred, when they share k): max from
 * min; sum from count * (min + max) / 2; sumsq from sum^2 / count; first and
 * last from the mean sum / count. m is stored as zig-zag (m - pred). The tag
 * is stored XOR'd with the tag expected from the fields before (tag_expect),
 * so on ordinary data every tag stream but min's is all zeros.
 *
 * Decoding is exact on any IEEE-754 host: one int64 -> double conversion and
 * one division, both correctly rounded, then integer arithmetic. All integer
 * arithmetic wraps (uint64), so any stored bytes decode deterministically;
 * a bad prediction only costs bytes.
 */
typedef struct vstate {
    uint32_t count;
    uint8_t tag[F_COUNT];
    uint64_t m[F_COUNT]; /* meaningful when tag != VAL_RAW */
} vstate;

/* Does field f hold a decimal with k digits? */
static int has_k(const vstate *s, int f, int k) { return s->tag[f] != VAL_RAW && (s->tag[f] & VAL_K_MASK) == k; }

static uint64_t val_pred(const vstate *s, int f, int k)
{
    switch (f) {
    case F_MAX:
        return has_k(s, F_MIN, k) ? s->m[F_MIN] : 0;
    case F_SUM: {
        if (!has_k(s, F_MIN, k) || !has_k(s, F_MAX, k)) return 0;
        int64_t a = u2i(s->m[F_MIN]), b = u2i(s->m[F_MAX]);
        int64_t mid = a / 2 + b / 2 + (a % 2 + b % 2) / 2; /* no overflow */
        return (uint64_t)s->count * (uint64_t)mid;
    }
    case F_SUMSQ: {
        if (s->tag[F_SUM] == VAL_RAW || 2 * (s->tag[F_SUM] & VAL_K_MASK) != k || s->count == 0) return 0;
        int64_t a = u2i(s->m[F_SUM]);
        if (a <= -(INT64_C(1) << 31) || a >= (INT64_C(1) << 31)) return 0;
        return (uint64_t)(a * a) / s->count;
    }
    case F_FIRST:
    case F_LAST:
        if (has_k(s, F_SUM, k) && s->count) return (uint64_t)(u2i(s->m[F_SUM]) / (int64_t)s->count);
        return has_k(s, F_MIN, k) ? s->m[F_MIN] : 0;
    default:
        return 0;
    }
}

/* The tag field f most likely has: min's k (sums of decimals with k > 0
 * need a ULP correction; sums of integers are exact), 2k for sumsq. */
static uint8_t tag_expect(const vstate *s, int f)
{
    uint8_t tmin = s->tag[F_MIN], tsum = s->tag[F_SUM];
    int k;
    switch (f) {
    case F_MIN:
        return 0;
    case F_SUM:
        if (tmin == VAL_RAW) return VAL_RAW;
        k = tmin & VAL_K_MASK;
        return (uint8_t)(k | (k ? VAL_HAS_D : 0));
    case F_SUMSQ:
        if (tsum == VAL_RAW) return VAL_RAW;
        k = 2 * (tsum & VAL_K_MASK);
        return (uint8_t)(k > VAL_K_MAX ? 0 : k | (k ? VAL_HAS_D : 0));
    default:
        return tmin == VAL_RAW ? VAL_RAW : (uint8_t)(tmin & VAL_K_MASK);
    }
}

/* One way of writing a value: decimal at some k. */
typedef struct vcand {
    int is_ok;
    uint64_t m;    /* wrapping int64 */
    uint64_t d;    /* ULP correction, wrapping */
    unsigned dlen; /* bytes of the correction, 0 if d == 0 */
} vcand;

/* Decimal candidates of v for every k. */
static void val_cands(double v, vcand c[VAL_K_MAX + 1])
{
    for (int k = 0; k <= VAL_K_MAX; k++) {
        c[k].is_ok = 0;
        if (!isfinite(v)) continue;
        double x = v * k_p10[k];
        if (!(fabs(x) < 0x1p53)) continue; /* m exact as a double, llround defined */
        int64_t m = llround(x);
        double base = (double)m / k_p10[k];
        uint64_t d = f64_key(v) - f64_key(base);
        c[k].is_ok = 1;
        c[k].m = (uint64_t)m;
        c[k].d = d;
        c[k].dlen = d ? uv_len(mk_zigzag(u2i(d))) : 0;
    }
}

/* Bytes of m and d (the tag is counted by the callers). */
static unsigned cand_cost(const vcand *c, uint64_t pred)
{
    return uv_len(mk_zigzag(u2i(c->m - pred))) + c->dlen;
}

static uint8_t cand_tag(const vcand *c, int k) { return (uint8_t)(k | (c->d ? VAL_HAS_D : 0)); }

/* Cheapest k for field f given the fields chosen so far; -1 = raw. A tag
 * that matches tag_expect() is counted as free (its stream is then almost
 * all zeros, which zstd squeezes to nothing), any other tag as one byte. */
static int val_best(const vcand c[VAL_K_MAX + 1], const vstate *s, int f, unsigned *cost)
{
    uint8_t want = tag_expect(s, f);
    int best = -1;
    unsigned bc = 8 + (want != VAL_RAW);
    for (int k = 0; k <= VAL_K_MAX; k++) {
        if (!c[k].is_ok) continue;
        unsigned x = cand_cost(&c[k], val_pred(s, f, k)) + (cand_tag(&c[k], k) != want);
        if (x < bc) { bc = x; best = k; }
    }
    *cost = bc;
    return best;
}

/* Appends field f (decimal candidate c at k, or raw if k < 0) and records it
 * in s for the fields after it. */
static mk_err val_put(mk_buf *st, vstate *s, int f, const vcand *c, int k, double v)
{
    mk_err rc;
    uint8_t tag, x;
    if (k < 0) {
        uint8_t raw[8];
        tag = VAL_RAW;
        x = tag ^ tag_expect(s, f);
        s->tag[f] = tag;
        mk_put_u64(raw, mk_f64_bits(v));
        if ((rc = mk_buf_append(&st[ST_TAG + f], &x, 1))) return rc;
        return mk_buf_append(&st[ST_RAW], raw, 8);
    }
    uint64_t pred = val_pred(s, f, k);
    tag = cand_tag(c, k);
    x = tag ^ tag_expect(s, f);
    s->tag[f] = tag;
    s->m[f] = c->m;
    if ((rc = mk_buf_append(&st[ST_TAG + f], &x, 1))) return rc;
    if ((rc = put_uv(&st[ST_M + f], mk_zigzag(u2i(c->m - pred))))) return rc;
    if (c->d) rc = put_uv(&st[ST_D + f], mk_zigzag(u2i(c->d)));
    return rc;
}

/*
 * Appends the six summary doubles of one chunk to the value streams. min's k
 * is chosen jointly with max/first/last (taken, for the choice, as stored
 * relative to min when they share its k); the others greedily in stream
 * order, each given the choices before it.
 */
static mk_err enc_values(mk_buf *st, const mk_chunk_summary *sum)
{
    double v[F_COUNT];
    v[F_MIN] = sum->min; v[F_MAX] = sum->max; v[F_SUM] = sum->sum;
    v[F_SUMSQ] = sum->sumsq; v[F_FIRST] = sum->first; v[F_LAST] = sum->last;
    static const int near[3] = {F_MAX, F_FIRST, F_LAST};
    vcand c[F_COUNT][VAL_K_MAX + 1];
    vstate s = {.count = sum->count};
    mk_err rc = MK_OK;

    for (int f = 0; f < F_COUNT; f++) val_cands(v[f], c[f]);
    /* Stand-alone cost of max/first/last: min raw, or at another k. */
    unsigned alone[3], cost;
    vstate raw_min = {.count = sum->count, .tag = {VAL_RAW, VAL_RAW, VAL_RAW, VAL_RAW}};
    for (int i = 0; i < 3; i++) {
        val_best(c[near[i]], &raw_min, F_MAX, &alone[i]);
        alone[i] += 1; /* its tag will not be the expected one */
    }
    int kmin = -1;
    unsigned best_total = 9 + alone[0] + alone[1] + alone[2];
    for (int k = 0; k <= VAL_K_MAX; k++) {
        if (!c[F_MIN][k].is_ok) continue;
        unsigned total = 1 + cand_cost(&c[F_MIN][k], 0);
        for (int i = 0; i < 3; i++) {
            const vcand *x = &c[near[i]][k];
            unsigned rel = x->is_ok ? cand_cost(x, c[F_MIN][k].m) + (x->d != 0) : UINT_MAX;
            total += rel < alone[i] ? rel : alone[i];
        }
        if (total < best_total) { best_total = total; kmin = k; }
    }
    rc = val_put(st, &s, F_MIN, kmin >= 0 ? &c[F_MIN][kmin] : NULL, kmin, v[F_MIN]);
    for (int f = F_MIN + 1; f < F_COUNT && !rc; f++) {
        int k = val_best(c[f], &s, f, &cost);
        rc = val_put(st, &s, f, k >= 0 ? &c[f][k] : NULL, k, v[f]);
    }
    return rc;
}

/* ---- writer --------------------------------------------------------------- */

typedef struct wchunk {
    uint64_t series_id;
    uint32_t len;
    mk_chunk_summary sum;
} wchunk;

struct mk_block_writer {
    mk_env *env;
    char *dir, *tmp_path, *final_path;
    uint64_t seq;
    int fd;
    int has_tmp;      /* we created tmp_path and it is still there */
    mk_buf buf;       /* bytes for file offset buf_off onwards, not yet written */
    uint64_t buf_off;
    wchunk *chunks;
    size_t n_chunks, cap_chunks;
    uint64_t *repl;   /* sorted, unique */
    size_t n_repl;
    int64_t min_ts, max_ts;
    uint16_t flags;   /* header flags (MK_BLOCK_FLAG_*) */
    mk_err err;       /* sticky: after an I/O error every call fails with it */
    mk_diag err_diag;
};

/* Records an I/O failure at step (neg = -errno) and makes it sticky. */
static mk_err w_fail(mk_block_writer *w, int neg, const char *step, mk_diag *diag)
{
    w->err = mk_err_from_errno(-neg);
    mk_diag_set(&w->err_diag, w->err, "%s: block write failed at step \"%s\": %s", w->tmp_path,
                step, strerror(-neg));
    if (diag) *diag = w->err_diag;
    return w->err;
}

static mk_err w_flush(mk_block_writer *w, mk_diag *diag)
{
    if (!w->buf.len) return MK_OK;
    int rc = mk_env_pwrite_all(w->env, w->fd, w->buf.data, w->buf.len, (off_t)w->buf_off);
    if (rc) return w_fail(w, rc, "write", diag);
    w->buf_off += w->buf.len;
    w->buf.len = 0;
    return MK_OK;
}

static void w_free(mk_block_writer *w)
{
    mk_buf_free(&w->buf);
    free(w->chunks);
    free(w->repl);
    free(w->dir);
    free(w->tmp_path);
    free(w->final_path);
    free(w);
}

/* Closes and removes the temporary file if we created it (best effort: we
 * are failing already, or dropping an empty block) and frees w. */
static void w_discard(mk_block_writer *w)
{
    if (w->fd >= 0) w->env->close(w->env, w->fd);
    if (w->has_tmp) w->env->unlink(w->env, w->tmp_path);
    w_free(w);
}

mk_err mk_block_writer_open(mk_env *env, const char *blocks_dir, uint64_t seq,
                            mk_block_writer **out, mk_diag *diag)
{
    return mk_block_writer_open_flags(env, blocks_dir, seq, 0, out, diag);
}

mk_err mk_block_writer_open_flags(mk_env *env, const char *blocks_dir, uint64_t seq, uint16_t flags,
                                  mk_block_writer **out, mk_diag *diag)
{
    mk_err rc = MK_OK;
    if (flags & ~(uint16_t)MK_BLOCK_FLAG_ROLLUP) {
        *out = NULL;
        return mk_diag_set(diag, MK_EINVAL, "mk_block_writer_open: unknown flags %#x", flags);
    }
    mk_block_writer *w = NULL;
    if (!out || !blocks_dir) return mk_diag_set(diag, MK_EINVAL, "mk_block_writer_open: NULL argument");
    *out = NULL;
    w = calloc(1, sizeof *w);
    if (!w) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory for a block writer"); goto out; }
    w->env = env ? env : mk_env_default();
    w->fd = -1;
    w->seq = seq;
    w->flags = flags;
    w->min_ts = INT64_MAX;
    w->max_ts = INT64_MIN;
    w->dir = strdup(blocks_dir);
    w->tmp_path = block_name(blocks_dir, seq, ".tmp");
    w->final_path = block_name(blocks_dir, seq, "");
    if (!w->dir || !w->tmp_path || !w->final_path) {
        rc = mk_diag_set(diag, MK_ENOMEM, "no memory for a block writer");
        goto out;
    }
    /* O_TRUNC: a .tmp left by a crash is garbage by definition. */
    int fd = w->env->open(w->env, w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        rc = mk_diag_set(diag, mk_err_from_errno(-fd), "%s: block write failed at step \"create\": %s",
                         w->tmp_path, strerror(-fd));
        goto out;
    }
    w->fd = fd;
    w->has_tmp = 1;
    uint8_t hdr[HDR_BYTES];
    mk_put_u32(hdr, MK_BLOCK_MAGIC);
    mk_put_u16(hdr + 4, MK_BLOCK_VERSION);
    mk_put_u16(hdr + 6, flags);
    mk_put_u64(hdr + 8, seq);
    if (mk_buf_append(&w->buf, hdr, sizeof hdr)) {
        rc = mk_diag_set(diag, MK_ENOMEM, "no memory for a block writer");
        goto out;
    }
    *out = w;
    w = NULL;
out:
    if (w) w_discard(w);
    return rc;
}

mk_err mk_block_writer_add(mk_block_writer *w, uint64_t series_id, const mk_chunk_summary *sum,
                           const uint8_t *payload, size_t len, mk_diag *diag)
{
    if (!w || !sum || (!payload && len)) return mk_diag_set(diag, MK_EINVAL, "mk_block_writer_add: NULL argument");
    if (w->err) { if (diag) *diag = w->err_diag; return w->err; }
    const char *why = summary_problem(sum);
    if (why)
        return mk_diag_set(diag, MK_EINVAL, "block %016" PRIx64 ": chunk of series %016" PRIx64 ": %s",
                           w->seq, series_id, why);
    if (len == 0 || len > UINT32_MAX)
        return mk_diag_set(diag, MK_EINVAL, "block %016" PRIx64 ": chunk of series %016" PRIx64
                           ": payload of %zu bytes (1 .. 2^32-1 allowed)", w->seq, series_id, len);
    if (w->n_chunks) {
        const wchunk *p = &w->chunks[w->n_chunks - 1];
        if (series_id < p->series_id)
            return mk_diag_set(diag, MK_EINVAL, "block %016" PRIx64 ": series %016" PRIx64
                               " after series %016" PRIx64 " (ids must ascend)", w->seq, series_id,
                               p->series_id);
        if (series_id == p->series_id && sum->first_ts_ms <= p->sum.last_ts_ms)
            return mk_diag_set(diag, MK_EINVAL, "block %016" PRIx64 ": series %016" PRIx64
                               ": chunk starting at %" PRId64 " overlaps or precedes the previous one ending at %" PRId64,
                               w->seq, series_id, sum->first_ts_ms, p->sum.last_ts_ms);
    }
    if (w->n_chunks == MAX_CHUNKS)
        return mk_diag_set(diag, MK_ELIMIT, "block %016" PRIx64 ": more than %u chunks", w->seq, MAX_CHUNKS);
    /* Reserve everything first, so a refusal leaves the writer unchanged. */
    if (w->n_chunks == w->cap_chunks) {
        size_t cap = w->cap_chunks ? w->cap_chunks * 2 : 256;
        wchunk *p = realloc(w->chunks, cap * sizeof *p);
        if (!p) return mk_diag_set(diag, MK_ENOMEM, "no memory for the block index");
        w->chunks = p;
        w->cap_chunks = cap;
    }
    int is_direct = len >= WBUF_BYTES / 2; /* big payloads skip the buffer */
    if (mk_buf_reserve(&w->buf, (is_direct ? 0 : len) + XXH_BYTES))
        return mk_diag_set(diag, MK_ENOMEM, "no memory for the block write buffer");

    mk_err rc;
    if (is_direct) {
        if ((rc = w_flush(w, diag))) return rc;
        int e = mk_env_pwrite_all(w->env, w->fd, payload, len, (off_t)w->buf_off);
        if (e) return w_fail(w, e, "write", diag);
        w->buf_off += len;
    } else {
        memcpy(w->buf.data + w->buf.len, payload, len);
        w->buf.len += len;
    }
    mk_put_u64(w->buf.data + w->buf.len, mk_hash64(payload, len));
    w->buf.len += XXH_BYTES;
    w->chunks[w->n_chunks++] = (wchunk){series_id, (uint32_t)len, *sum};
    if (sum->first_ts_ms < w->min_ts) w->min_ts = sum->first_ts_ms;
    if (sum->last_ts_ms > w->max_ts) w->max_ts = sum->last_ts_ms;
    if (w->buf.len >= WBUF_BYTES) return w_flush(w, diag);
    return MK_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

mk_err mk_block_writer_replaces(mk_block_writer *w, const uint64_t *seqs, size_t n, mk_diag *diag)
{
    if (!w || (!seqs && n)) return mk_diag_set(diag, MK_EINVAL, "mk_block_writer_replaces: NULL argument");
    if (w->err) { if (diag) *diag = w->err_diag; return w->err; }
    if (n > MAX_REPLACED || w->n_repl + n > MAX_REPLACED)
        return mk_diag_set(diag, MK_ELIMIT, "block %016" PRIx64 ": more than %u replaced seqs", w->seq, MAX_REPLACED);
    if (!n) return MK_OK;
    uint64_t *p = realloc(w->repl, (w->n_repl + n) * sizeof *p);
    if (!p) return mk_diag_set(diag, MK_ENOMEM, "no memory for the replaced list");
    memcpy(p + w->n_repl, seqs, n * sizeof *p);
    size_t m = w->n_repl + n, k = 0;
    qsort(p, m, sizeof *p, cmp_u64);
    for (size_t i = 0; i < m; i++) if (!k || p[k - 1] != p[i]) p[k++] = p[i];
    w->repl = p;
    w->n_repl = k;
    return MK_OK;
}

/* Builds the raw (uncompressed) index. Chunks are in the order the writer
 * accepted them: ids ascending, times ascending within a series. */
static mk_err index_encode(const mk_block_writer *w, mk_buf *raw)
{
    mk_buf st[ST_COUNT];
    memset(st, 0, sizeof st);
    mk_err rc = MK_OK;
    uint64_t n_series = 0, prev_id = 0;
    int64_t prev_last = 0;
    for (size_t i = 0; i < w->n_chunks && !rc; i++) {
        const wchunk *c = &w->chunks[i];
        int is_new = i == 0 || c->series_id != w->chunks[i - 1].series_id;
        if (is_new) {
            size_t j = i + 1;
            while (j < w->n_chunks && w->chunks[j].series_id == c->series_id) j++;
            rc = put_uv(&st[ST_SID], n_series ? c->series_id - prev_id : c->series_id);
            if (!rc) rc = put_uv(&st[ST_SNC], j - i);
            n_series++;
            prev_id = c->series_id;
        }
        if (!rc) rc = put_uv(&st[ST_LEN], c->len);
        if (!rc) rc = put_uv(&st[ST_CNT], c->sum.count);
        if (!rc) {
            uint64_t d = is_new ? (uint64_t)c->sum.first_ts_ms - (uint64_t)w->min_ts
                                : (uint64_t)c->sum.first_ts_ms - (uint64_t)prev_last - 1;
            rc = put_uv(&st[ST_TS0], d);
        }
        if (!rc) rc = put_uv(&st[ST_TSN], (uint64_t)c->sum.last_ts_ms - (uint64_t)c->sum.first_ts_ms);
        if (!rc) rc = enc_values(st, &c->sum);
        prev_last = c->sum.last_ts_ms;
    }
    for (size_t i = 0; i < w->n_repl && !rc; i++)
        rc = put_uv(&st[ST_REPL], i ? w->repl[i] - w->repl[i - 1] : w->repl[i]);
    if (!rc) rc = put_uv(raw, n_series);
    if (!rc) rc = put_uv(raw, ST_COUNT);
    for (int s = 0; s < ST_COUNT && !rc; s++) rc = put_uv(raw, st[s].len);
    for (int s = 0; s < ST_COUNT && !rc; s++) rc = mk_buf_append(raw, st[s].data, st[s].len);
    for (int s = 0; s < ST_COUNT; s++) mk_buf_free(&st[s]);
    return rc;
}

mk_err mk_block_writer_finish(mk_block_writer *w, mk_diag *diag)
{
    if (!w) return mk_diag_set(diag, MK_EINVAL, "mk_block_writer_finish: NULL writer");
    mk_err rc = MK_OK;
    mk_buf raw = {0};
    int e;
    if (w->err) {
        if (diag) *diag = w->err_diag;
        rc = w->err;
        goto out;
    }
    if (!w->n_chunks) goto out; /* empty: not written, MK_OK, .tmp removed */

    uint64_t index_off = w->buf_off + w->buf.len;
    if ((rc = index_encode(w, &raw))) { mk_diag_set(diag, rc, "no memory for the block index"); goto out; }
    /* Index section + footer go straight into the write buffer. */
    size_t bound = ZSTD_compressBound(raw.len);
    if ((rc = mk_buf_reserve(&w->buf, (bound > raw.len ? bound : raw.len) + FTR_BYTES))) {
        mk_diag_set(diag, rc, "no memory for the block index");
        goto out;
    }
    uint8_t *ix = w->buf.data + w->buf.len;
    int level = raw.len < (1u << 20) ? ZSTD_LEVEL_SMALL : ZSTD_LEVEL_LARGE;
    size_t zlen = ZSTD_compress(ix, bound, raw.data, raw.len, level);
    uint8_t codec = IDX_CODEC_ZSTD;
    if (ZSTD_isError(zlen) || zlen >= raw.len) {
        memcpy(ix, raw.data, raw.len);
        zlen = raw.len;
        codec = IDX_CODEC_RAW;
    }
    uint8_t *ft = ix + zlen;
    memset(ft, 0, FTR_BYTES);
    mk_put_u64(ft + FTR_INDEX_OFF, index_off);
    mk_put_u64(ft + FTR_INDEX_LEN, zlen);
    mk_put_u64(ft + FTR_RAW_LEN, raw.len);
    mk_put_u64(ft + FTR_N_CHUNKS, w->n_chunks);
    mk_put_u64(ft + FTR_N_REPL, w->n_repl);
    mk_put_u64(ft + FTR_MIN_TS, (uint64_t)w->min_ts);
    mk_put_u64(ft + FTR_MAX_TS, (uint64_t)w->max_ts);
    mk_put_u64(ft + FTR_SEQ, w->seq);
    mk_put_u16(ft + FTR_VERSION, MK_BLOCK_VERSION);
    mk_put_u16(ft + FTR_FLAGS, w->flags);
    ft[FTR_CODEC] = codec;
    mk_put_u64(ft + FTR_CHECKSUM, mk_hash64(ix, zlen + FTR_CHECKSUM));
    mk_put_u32(ft + FTR_MAGIC, MK_BLOCK_MAGIC);
    w->buf.len += zlen + FTR_BYTES;

    if ((rc = w_flush(w, diag))) goto out;
    if ((e = w->env->fsync(w->env, w->fd))) { rc = w_fail(w, e, "fsync", diag); goto out; }
    e = w->env->close(w->env, w->fd);
    w->fd = -1;
    if (e) { rc = w_fail(w, e, "close", diag); goto out; }

    /* Blocks are immutable: never rename over an existing one, unless this
     * block declares that it replaces that seq. */
    int efd = w->env->open(w->env, w->final_path, O_RDONLY, 0);
    if (efd >= 0) {
        w->env->close(w->env, efd);
        if (!w->n_repl || !bsearch(&w->seq, w->repl, w->n_repl, sizeof w->seq, cmp_u64)) {
            rc = mk_diag_set(diag, MK_EEXIST, "%s: block write refused at step \"rename\": a block of "
                             "that seq exists and this one does not list it as replaced", w->final_path);
            goto out;
        }
    }
    if ((e = w->env->rename(w->env, w->tmp_path, w->final_path))) {
        rc = w_fail(w, e, "rename", diag);
        goto out;
    }
    w->has_tmp = 0;
    int is_self = w->n_repl && bsearch(&w->seq, w->repl, w->n_repl, sizeof w->seq, cmp_u64);
    if ((e = mk_env_fsync_dir(w->env, w->dir)) && is_self) {
        /* Renamed over the block of its own seq (a merge): removing it now
         * would lose both. Either name survives a crash whole (the old
         * inode is untouched until the rename is durable), so this is a
         * success whose durability comes with the next directory fsync. */
        e = 0;
    }
    if (e) {
        /* The file is complete and fsynced but its name may not survive a
         * crash. We promise "error => no block", so remove it again: after a
         * crash it may reappear, which is harmless (a valid block holding
         * data the caller still has and will write again). */
        int u = w->env->unlink(w->env, w->final_path);
        rc = mk_diag_set(diag, mk_err_from_errno(-e),
                         "%s: block write failed at step \"fsync directory\" (%s) after the rename: %s; "
                         "the block was removed again%s%s",
                         w->final_path, w->dir, strerror(-e), u ? ", but removing it failed too: " : "",
                         u ? strerror(-u) : "");
    }
out:
    mk_buf_free(&raw);
    w_discard(w); /* removes the .tmp unless it was renamed */
    return rc;
}

void mk_block_writer_abort(mk_block_writer *w)
{
    if (w) w_discard(w);
}

/* ---- reader ------------------------------------------------------------- */

typedef struct bseries {
    uint64_t id;
    uint32_t first; /* index into chunks */
    uint32_t n;
} bseries;

struct mk_block {
    mk_env *env;
    char *path;
    const uint8_t *map;
    size_t map_len;
    uint64_t seq;
    int64_t min_ts, max_ts;
    uint64_t data_end; /* = index offset: every payload and checksum lies below */
    mk_block_chunk *chunks;
    size_t n_chunks;
    bseries *series;
    size_t n_series;
    uint64_t *repl;
    size_t n_repl;
    uint16_t flags;
    /* bit i: chunks[i]'s checksum matched since the block was opened
     * (mk_block_payload); the file never changes under an open block */
    _Atomic uint64_t *is_checked;
};

/* Where problems go: open stops at the first, verify reports them all. */
typedef struct checker {
    const char *path;
    mk_diag *diag; /* gets the first problem */
    mk_err first;
    int is_verify;
    void (*report)(void *ctx, const char *path, uint64_t off, const char *why);
    void *ctx;
} checker;

__attribute__((format(printf, 5, 6)))
static mk_err problem_at(checker *ck, mk_err code, uint64_t off, int line, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (ck->report) ck->report(ck->ctx, ck->path, off, why);
    if (!ck->first) {
        ck->first = code;
        if (code == MK_ECORRUPT)
            mk_diag_set(ck->diag, code, "%s: corrupt at offset %" PRIu64 ": %s (detected at %s:%d)",
                        ck->path, off, why, __FILE__, line);
        else
            mk_diag_set(ck->diag, code, "%s: %s", ck->path, why);
    }
    return code;
}
#define PROBLEM(ck, code, off, ...) problem_at((ck), (code), (off), __LINE__, __VA_ARGS__)

typedef struct rstream {
    const uint8_t *p;
    size_t len, pos;
} rstream;

static int rs_uv(rstream *s, uint64_t *v)
{
    size_t n = mk_get_uvarint(s->p + s->pos, s->len - s->pos, v);
    s->pos += n;
    return n ? 0 : -1;
}

static int rs_byte(rstream *s, uint8_t *v)
{
    if (s->pos >= s->len) return -1;
    *v = s->p[s->pos++];
    return 0;
}

/* base + delta as int64; -1 if it passes INT64_MAX. */
static int add_ts(int64_t base, uint64_t delta, int64_t *out)
{
    if (delta > (uint64_t)INT64_MAX - (uint64_t)base) return -1;
    *out = u2i((uint64_t)base + delta);
    return 0;
}

static const char *const k_stream_name[ST_COUNT] = {
    "series ids", "chunks per series", "lengths", "counts", "first times", "time spans",
    "min tags", "max tags", "sum tags", "sumsq tags", "first tags", "last tags",
    "min digits", "max digits", "sum digits", "sumsq digits", "first digits", "last digits",
    "min ulps", "max ulps", "sum ulps", "sumsq ulps", "first ulps", "last ulps",
    "raw values", "replaced seqs"};

static int val_get(rstream *st, vstate *s, int f, double *out)
{
    uint8_t tag;
    if (rs_byte(&st[ST_TAG + f], &tag)) return -1;
    tag ^= tag_expect(s, f);
    if (tag == VAL_RAW) {
        rstream *r = &st[ST_RAW];
        if (r->len - r->pos < 8) return -1;
        *out = mk_bits_f64(mk_get_u64(r->p + r->pos));
        r->pos += 8;
        s->tag[f] = tag;
        return 0;
    }
    int k = tag & VAL_K_MASK;
    if ((tag & ~(VAL_K_MASK | VAL_HAS_D)) || k > VAL_K_MAX) return -1;
    uint64_t mz, dz = 0;
    if (rs_uv(&st[ST_M + f], &mz)) return -1;
    if ((tag & VAL_HAS_D) && rs_uv(&st[ST_D + f], &dz)) return -1;
    uint64_t m = (uint64_t)mk_unzigzag(mz) + val_pred(s, f, k);
    double base = (double)u2i(m) / k_p10[k];
    *out = key_f64(f64_key(base) + (uint64_t)mk_unzigzag(dz));
    s->tag[f] = tag;
    s->m[f] = m;
    return 0;
}

/*
 * Decodes the raw index into b (chunks, series, replaced). Structural damage
 * (a stream too short, trailing bytes, a bad tag) stops decoding; a summary
 * that is not sane is reported and, when verifying, decoding goes on.
 * Corruption is reported at ix_off, the file offset of the index section
 * (the bytes are compressed, so there is no finer file offset).
 */
static mk_err index_decode(mk_block *b, const uint8_t *raw, size_t raw_len, uint64_t n_chunks,
                           uint64_t ix_off, checker *ck)
{
    rstream hd = {raw, raw_len, 0}, st[ST_COUNT];
    uint64_t n_series, n_streams, total = 0;
    mk_err rc = MK_OK;
#define STRUCT_BAD(...) do { rc = PROBLEM(ck, MK_ECORRUPT, ix_off, __VA_ARGS__); goto out; } while (0)
#define SEMANTIC_BAD(...)                                               \
    do {                                                                \
        mk_err e_ = PROBLEM(ck, MK_ECORRUPT, ix_off, __VA_ARGS__);      \
        if (!ck->is_verify) { rc = e_; goto out; }                      \
    } while (0)

    if (rs_uv(&hd, &n_series) || rs_uv(&hd, &n_streams)) STRUCT_BAD("index: header truncated");
    if (n_streams != ST_COUNT) STRUCT_BAD("index: %" PRIu64 " streams, version 1 has %d", n_streams, ST_COUNT);
    if (n_series < 1 || n_series > n_chunks)
        STRUCT_BAD("index: %" PRIu64 " series for %" PRIu64 " chunks", n_series, n_chunks);
    for (int s = 0; s < ST_COUNT; s++) {
        uint64_t n;
        if (rs_uv(&hd, &n)) STRUCT_BAD("index: stream directory truncated");
        st[s].len = (size_t)n;
        if (n > raw_len) STRUCT_BAD("index: stream \"%s\" longer than the index", k_stream_name[s]);
        total += n;
    }
    if (total != raw_len - hd.pos)
        STRUCT_BAD("index: streams hold %" PRIu64 " bytes, the index has %zu after the directory",
                   total, raw_len - hd.pos);
    {
        size_t at = hd.pos;
        for (int s = 0; s < ST_COUNT; s++) { st[s].p = raw + at; st[s].pos = 0; at += st[s].len; }
    }

    b->chunks = calloc((size_t)n_chunks, sizeof *b->chunks);
    b->series = calloc((size_t)n_series, sizeof *b->series);
    if (!b->chunks || !b->series) {
        rc = PROBLEM(ck, MK_ENOMEM, ix_off, "no memory for an index of %" PRIu64 " chunks", n_chunks);
        goto out;
    }
    uint64_t id = 0, off = HDR_BYTES;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    size_t ci = 0;
    for (size_t si = 0; si < n_series; si++) {
        uint64_t d, nc;
        if (rs_uv(&st[ST_SID], &d) || rs_uv(&st[ST_SNC], &nc)) STRUCT_BAD("index: series #%zu truncated", si);
        if (si && (d == 0 || d > UINT64_MAX - id))
            STRUCT_BAD("index: series #%zu: ids not strictly ascending", si);
        id = si ? id + d : d;
        if (nc < 1 || nc > n_chunks - ci)
            STRUCT_BAD("index: series %016" PRIx64 ": %" PRIu64 " chunks, %" PRIu64 " left", id, nc, n_chunks - ci);
        b->series[si] = (bseries){id, (uint32_t)ci, (uint32_t)nc};
        int64_t prev_last = 0;
        for (uint64_t k = 0; k < nc; k++, ci++) {
            mk_block_chunk *c = &b->chunks[ci];
            uint64_t len, cnt, t0, tn;
            if (rs_uv(&st[ST_LEN], &len) || rs_uv(&st[ST_CNT], &cnt) || rs_uv(&st[ST_TS0], &t0) ||
                rs_uv(&st[ST_TSN], &tn))
                STRUCT_BAD("index: chunk #%zu (series %016" PRIx64 ") truncated", ci, id);
            if (len < 1 || len > UINT32_MAX || len > b->data_end - off ||
                XXH_BYTES > b->data_end - off - len)
                STRUCT_BAD("index: chunk #%zu (series %016" PRIx64 "): %" PRIu64 " bytes at offset %"
                           PRIu64 " do not fit before the index at %" PRIu64, ci, id, len, off, b->data_end);
            if (cnt > UINT32_MAX) STRUCT_BAD("index: chunk #%zu: count %" PRIu64 " too large", ci, cnt);
            c->series_id = id;
            c->offset = off;
            c->len = (uint32_t)len;
            off += len + XXH_BYTES;
            c->sum.count = (uint32_t)cnt;
            int64_t base = k ? prev_last : b->min_ts;
            if (k && add_ts(base, 1, &base)) STRUCT_BAD("index: chunk #%zu: time overflows", ci);
            if (add_ts(base, t0, &c->sum.first_ts_ms) || add_ts(c->sum.first_ts_ms, tn, &c->sum.last_ts_ms))
                STRUCT_BAD("index: chunk #%zu (series %016" PRIx64 "): time overflows", ci, id);
            prev_last = c->sum.last_ts_ms;
            vstate vs = {.count = c->sum.count};
            double v[F_COUNT];
            for (int f = 0; f < F_COUNT; f++)
                if (val_get(st, &vs, f, &v[f]))
                    STRUCT_BAD("index: chunk #%zu (series %016" PRIx64 "): summary value %d unreadable", ci, id, f);
            c->sum.min = v[F_MIN];
            c->sum.max = v[F_MAX];
            c->sum.first = v[F_FIRST];
            c->sum.last = v[F_LAST];
            c->sum.sum = v[F_SUM];
            c->sum.sumsq = v[F_SUMSQ];
            /* Times are ordered by construction (deltas are unsigned); what
             * can still be wrong is what the summary itself says. */
            const char *why = summary_problem(&c->sum);
            if (why) SEMANTIC_BAD("index: chunk #%zu (series %016" PRIx64 "): %s", ci, id, why);
            if (c->sum.first_ts_ms < lo) lo = c->sum.first_ts_ms;
            if (c->sum.last_ts_ms > hi) hi = c->sum.last_ts_ms;
        }
    }
    if (ci != n_chunks) STRUCT_BAD("index: lists %zu chunks, the footer says %" PRIu64, ci, n_chunks);
    if (off != b->data_end)
        STRUCT_BAD("index: chunks end at offset %" PRIu64 ", the index starts at %" PRIu64, off, b->data_end);
    if (lo != b->min_ts || hi != b->max_ts)
        SEMANTIC_BAD("footer time range [%" PRId64 ", %" PRId64 "] is not the chunks' [%" PRId64 ", %" PRId64 "]",
                     b->min_ts, b->max_ts, lo, hi);
    if (b->n_repl) {
        b->repl = malloc(b->n_repl * sizeof *b->repl);
        if (!b->repl) { rc = PROBLEM(ck, MK_ENOMEM, ix_off, "no memory for the replaced list"); goto out; }
    }
    for (size_t i = 0; i < b->n_repl; i++) {
        uint64_t d;
        if (rs_uv(&st[ST_REPL], &d)) STRUCT_BAD("index: replaced seqs truncated");
        if (i && (d == 0 || d > UINT64_MAX - b->repl[i - 1])) STRUCT_BAD("index: replaced seqs not ascending");
        b->repl[i] = i ? b->repl[i - 1] + d : d;
    }
    for (int s = 0; s < ST_COUNT; s++)
        if (st[s].pos != st[s].len)
            STRUCT_BAD("index: %zu bytes left over in stream \"%s\"", st[s].len - st[s].pos, k_stream_name[s]);
    b->n_chunks = (size_t)n_chunks;
    b->n_series = (size_t)n_series;
out:
    return rc;
#undef STRUCT_BAD
#undef SEMANTIC_BAD
}

static void block_free(mk_block *b)
{
    if (!b) return;
    if (b->map) b->env->munmap(b->env, (void *)b->map, b->map_len);
    free(b->chunks);
    free(b->series);
    free(b->repl);
    free(b->path);
    free((void *)b->is_checked);
    free(b);
}

/*
 * Maps path and checks header, footer, index checksum and the decoded index.
 * On MK_OK *out is the block; when verifying, problems in summaries may have
 * been reported (ck->first) and the block is still handed out so its chunks
 * can be checked.
 */
static mk_err block_load(mk_env *env, const char *path, checker *ck, mk_block **out)
{
    mk_err rc = MK_OK;
    mk_block *b = NULL;
    uint8_t *raw = NULL;
    int fd = -1;
    *out = NULL;
    if (!env) env = mk_env_default();
    b = calloc(1, sizeof *b);
    if (b) b->path = strdup(path);
    if (!b || !b->path) { rc = PROBLEM(ck, MK_ENOMEM, 0, "no memory to open a block"); goto out; }
    b->env = env;

    fd = env->open(env, path, O_RDONLY, 0);
    if (fd < 0) {
        rc = PROBLEM(ck, fd == -ENOENT ? MK_ENOTFOUND : mk_err_from_errno(-fd), 0, "cannot open: %s", strerror(-fd));
        goto out;
    }
    int64_t size = env->file_size(env, fd);
    if (size < 0) { rc = PROBLEM(ck, mk_err_from_errno((int)-size), 0, "cannot stat: %s", strerror((int)-size)); goto out; }
#if SIZE_MAX < UINT64_MAX
    if ((uint64_t)size > SIZE_MAX) { rc = PROBLEM(ck, MK_ELIMIT, 0, "too large to map"); goto out; }
#endif
    if (size > 0) {
        void *p = NULL;
        int e = env->mmap(env, fd, (size_t)size, &p);
        if (e) { rc = PROBLEM(ck, mk_err_from_errno(-e), 0, "cannot map: %s", strerror(-e)); goto out; }
        b->map = p;
        b->map_len = (size_t)size;
    }
    env->close(env, fd); /* the mapping outlives the descriptor */
    fd = -1;

    const uint8_t *m = b->map;
    uint64_t n = b->map_len;
    if (n < 4) { rc = PROBLEM(ck, MK_ECORRUPT, 0, "file of %" PRIu64 " bytes is shorter than a block header", n); goto out; }
    if (mk_get_u32(m) != MK_BLOCK_MAGIC) { rc = PROBLEM(ck, MK_ENOTOURS, 0, "not a block file (magic %08" PRIx32 ")", mk_get_u32(m)); goto out; }
    if (n < 6) { rc = PROBLEM(ck, MK_ECORRUPT, 4, "truncated in the header"); goto out; }
    uint16_t version = mk_get_u16(m + 4);
    if (version > MK_BLOCK_VERSION) {
        /* A newer writer keeps the footer's last 20 bytes (version copy at
         * FTR_VERSION, magic at the end) where version 1 has them. If that
         * copy disagrees, one bit flip made the header look "too new":
         * that is damage to this block, not a reason to refuse the whole
         * database. */
        if (n >= HDR_BYTES + FTR_BYTES && mk_get_u32(m + n - 4) == MK_BLOCK_MAGIC &&
            mk_get_u16(m + n - FTR_BYTES + FTR_VERSION) == version)
            rc = PROBLEM(ck, MK_ETOONEW, 4, "block format version %u, this build reads up to %u", version, MK_BLOCK_VERSION);
        else
            rc = PROBLEM(ck, MK_ECORRUPT, 4, "header says format version %u but the footer does not agree: damaged header", version);
        goto out;
    }
    if (version == 0) { rc = PROBLEM(ck, MK_ECORRUPT, 4, "block format version 0"); goto out; }
    if (n < HDR_BYTES + FTR_BYTES) {
        rc = PROBLEM(ck, MK_ECORRUPT, n, "truncated: %" PRIu64 " bytes, less than header and footer", n);
        goto out;
    }
    const uint8_t *ft = m + n - FTR_BYTES;
    uint64_t ft_off = n - FTR_BYTES;
    if (mk_get_u32(ft + FTR_MAGIC) != MK_BLOCK_MAGIC) {
        rc = PROBLEM(ck, MK_ECORRUPT, n - 4, "no block magic at the end: truncated or damaged footer");
        goto out;
    }
    uint64_t ix_off = mk_get_u64(ft + FTR_INDEX_OFF), ix_len = mk_get_u64(ft + FTR_INDEX_LEN);
    if (ix_off < HDR_BYTES || ix_off > ft_off || ix_len != ft_off - ix_off) {
        rc = PROBLEM(ck, MK_ECORRUPT, ft_off, "footer: index at %" PRIu64 " of %" PRIu64 " bytes does not end at the footer (%" PRIu64 ")",
                     ix_off, ix_len, ft_off);
        goto out;
    }
    uint64_t sum = mk_hash64(m + ix_off, ix_len + FTR_CHECKSUM);
    if (sum != mk_get_u64(ft + FTR_CHECKSUM)) {
        rc = PROBLEM(ck, MK_ECORRUPT, ix_off, "index/footer checksum mismatch (stored %016" PRIx64 ", computed %016" PRIx64 ")",
                     mk_get_u64(ft + FTR_CHECKSUM), sum);
        goto out;
    }
    /* From here the footer and index are what the writer wrote (or a writer
     * bug): the header must agree with the footer's copy. */
    if (mk_get_u16(ft + FTR_VERSION) != version || mk_get_u16(ft + FTR_FLAGS) != mk_get_u16(m + 6) ||
        mk_get_u64(ft + FTR_SEQ) != mk_get_u64(m + 8)) {
        rc = PROBLEM(ck, MK_ECORRUPT, 4, "header (version %u, flags %u, seq %016" PRIx64 ") does not match the footer (%u, %u, %016" PRIx64 ")",
                     version, mk_get_u16(m + 6), mk_get_u64(m + 8), mk_get_u16(ft + FTR_VERSION),
                     mk_get_u16(ft + FTR_FLAGS), mk_get_u64(ft + FTR_SEQ));
        goto out;
    }
    if ((mk_get_u16(m + 6) & ~(uint16_t)MK_BLOCK_FLAG_ROLLUP) || ft[FTR_CODEC] > IDX_CODEC_ZSTD || ft[FTR_CODEC + 1] || ft[FTR_CODEC + 2] || ft[FTR_CODEC + 3]) {
        rc = PROBLEM(ck, MK_ECORRUPT, ft_off + FTR_FLAGS, "unknown flags, index codec or reserved bytes");
        goto out;
    }
    b->seq = mk_get_u64(m + 8);
    b->flags = mk_get_u16(m + 6);
    b->data_end = ix_off;
    b->min_ts = u2i(mk_get_u64(ft + FTR_MIN_TS));
    b->max_ts = u2i(mk_get_u64(ft + FTR_MAX_TS));
    uint64_t n_chunks = mk_get_u64(ft + FTR_N_CHUNKS), raw_len = mk_get_u64(ft + FTR_RAW_LEN);
    b->n_repl = mk_get_u64(ft + FTR_N_REPL);
    /* Every chunk takes at least 1 + 8 bytes of data section. */
    if (n_chunks < 1 || n_chunks > MAX_CHUNKS || n_chunks > (ix_off - HDR_BYTES) / (1 + XXH_BYTES) ||
        b->n_repl > MAX_REPLACED || b->min_ts > b->max_ts) {
        rc = PROBLEM(ck, MK_ECORRUPT, ft_off, "footer: %" PRIu64 " chunks, %zu replaced, time range [%" PRId64 ", %" PRId64 "] impossible",
                     n_chunks, b->n_repl, b->min_ts, b->max_ts);
        b->n_repl = 0;
        goto out;
    }
    uint64_t raw_max = 16 + 10 * (ST_COUNT + 2) + n_chunks * MAX_RAW_PER_CHUNK + b->n_repl * 10;
    if (raw_len > raw_max || (ft[FTR_CODEC] == IDX_CODEC_RAW && raw_len != ix_len)) {
        rc = PROBLEM(ck, MK_ECORRUPT, ft_off, "footer: index of %" PRIu64 " bytes impossible", raw_len);
        goto out;
    }
    const uint8_t *ix = m + ix_off;
    if (ft[FTR_CODEC] == IDX_CODEC_ZSTD) {
        raw = malloc(raw_len ? (size_t)raw_len : 1);
        if (!raw) { rc = PROBLEM(ck, MK_ENOMEM, ix_off, "no memory for an index of %" PRIu64 " bytes", raw_len); goto out; }
        size_t got = ZSTD_decompress(raw, (size_t)raw_len, ix, (size_t)ix_len);
        if (ZSTD_isError(got) || got != raw_len) {
            rc = PROBLEM(ck, MK_ECORRUPT, ix_off, "index does not decompress to %" PRIu64 " bytes: %s", raw_len,
                         ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
            goto out;
        }
        ix = raw;
    }
    rc = index_decode(b, ix, (size_t)raw_len, n_chunks, ix_off, ck);
    if (rc) goto out;
    if (!(b->is_checked = calloc((b->n_chunks + 63) / 64 + 1, sizeof *b->is_checked))) {
        rc = PROBLEM(ck, MK_ENOMEM, 0, "no memory for %zu chunks", b->n_chunks);
        goto out;
    }
    *out = b;
    b = NULL;
out:
    if (fd >= 0) env->close(env, fd);
    free(raw);
    block_free(b);
    return rc;
}

mk_err mk_block_open(mk_env *env, const char *path, mk_block **out, mk_diag *diag)
{
    if (!out || !path) return mk_diag_set(diag, MK_EINVAL, "mk_block_open: NULL argument");
    checker ck = {path, diag, MK_OK, 0, NULL, NULL};
    return block_load(env, path, &ck, out);
}

void mk_block_close(mk_block *b) { block_free(b); }

uint64_t mk_block_seq(const mk_block *b) { return b->seq; }

void mk_block_drop_pages(const mk_block *b)
{
    /* Only for the OS env's mappings: read-only MAP_SHARED file pages,
     * which come back from the page cache on the next access. Another
     * env's mapping could be anonymous memory, which this would zero. */
    if (b && b->map && b->env->mmap == mk_env_default()->mmap) madvise((void *)b->map, b->map_len, MADV_DONTNEED);
}
uint16_t mk_block_flags(const mk_block *b) { return b->flags; }
int64_t mk_block_min_ts(const mk_block *b) { return b->min_ts; }
int64_t mk_block_max_ts(const mk_block *b) { return b->max_ts; }
uint64_t mk_block_file_bytes(const mk_block *b) { return b->map_len; }
const char *mk_block_path(const mk_block *b) { return b->path; }

const uint64_t *mk_block_replaced(const mk_block *b, size_t *n)
{
    *n = b->n_repl;
    return b->repl;
}

const mk_block_chunk *mk_block_chunks(const mk_block *b, size_t *n)
{
    *n = b->n_chunks;
    return b->chunks;
}

/* mk_block_find's first probe: where series_id would sit if the ids were
 * spread evenly between the first and the last (0 outside them, or in a
 * block of at most 16 series). */
static size_t find_guess(const mk_block *b, uint64_t series_id)
{
    size_t n = b->n_series;
    if (n <= 16) return 0;
    uint64_t a = b->series[0].id, z = b->series[n - 1].id;
    if (series_id <= a || series_id > z) return 0;
    size_t g = 1 + (size_t)((double)(series_id - a - 1) / (double)(z - a) * (double)(n - 2));
    return g > n - 1 ? n - 1 : g;
}

const mk_block_chunk *mk_block_find(const mk_block *b, uint64_t series_id, size_t *n)
{
    /* Invariant: the first series with id >= series_id is in [lo, hi].
     * Ids are hashes, so uniform: one interpolated guess lands about
     * sqrt(n)/2 places off, and galloping from it stays within a few cache
     * lines. Skewed ids (a crafted file) cost at most 2 log2 n probes. */
    size_t lo = 0, hi = b->n_series;
    if (hi > 16) {
        uint64_t a = b->series[0].id, z = b->series[hi - 1].id;
        if (series_id <= a) {
            hi = 0;
        } else if (series_id > z) {
            lo = hi;
        } else { /* a < series_id <= z: g in [1, n - 1] */
            size_t g = find_guess(b, series_id), step = 1;
            if (b->series[g].id < series_id) { /* answer in (g, hi] */
                lo = g + 1;
                while (lo + step < hi && b->series[lo + step - 1].id < series_id) { lo += step; step *= 2; }
                if (lo + step < hi) hi = lo + step;
            } else { /* answer in [lo, g] */
                hi = g;
                while (hi > step && b->series[hi - step].id >= series_id) { hi -= step; step *= 2; }
                if (hi > step) lo = hi - step;
            }
        }
    }
    while (lo < hi) { /* first series with id >= series_id */
        size_t mid = lo + (hi - lo) / 2;
        if (b->series[mid].id < series_id) lo = mid + 1; else hi = mid;
    }
    if (lo == b->n_series || b->series[lo].id != series_id) { *n = 0; return NULL; }
    *n = b->series[lo].n;
    return &b->chunks[b->series[lo].first];
}

void mk_block_find_many(const mk_block *const *b, size_t n, uint64_t series_id, const mk_block_chunk **c, size_t *nc)
{
    /* Each step's loads in all blocks are issued before any is waited
     * for: the blocks' indexes are cold when a query starts, and one
     * find after another waits for each miss in turn. */
    for (size_t i = 0; i < n; i++) __builtin_prefetch(b[i]);
    for (size_t i = 0; i < n; i++)
        if (b[i]->n_series) {
            __builtin_prefetch(&b[i]->series[0]);
            __builtin_prefetch(&b[i]->series[b[i]->n_series - 1]);
        }
    for (size_t i = 0; i < n; i++)
        if (b[i]->n_series) __builtin_prefetch(&b[i]->series[find_guess(b[i], series_id)]);
    for (size_t i = 0; i < n; i++) {
        c[i] = mk_block_find(b[i], series_id, &nc[i]);
        if (nc[i]) __builtin_prefetch(c[i]);
    }
    /* (the first line of each payload only: the rest streams in behind
     * it, and prefetching whole payloads measured no faster) */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < nc[i]; j++)
            if (c[i][j].offset < b[i]->map_len) __builtin_prefetch(b[i]->map + c[i][j].offset);
}

/* Checks one chunk against the mapping and its checksum. */
static mk_err chunk_check(const mk_block *b, const mk_block_chunk *c, checker *ck)
{
    /* c may be a caller's copy: bounds again, never trusting it. */
    if (c->offset < HDR_BYTES || c->offset > b->data_end || c->len > b->data_end - c->offset ||
        XXH_BYTES > b->data_end - c->offset - c->len)
        return PROBLEM(ck, MK_EINVAL, c->offset, "chunk of %" PRIu32 " bytes at offset %" PRIu64 " is not in this block",
                       c->len, c->offset);
    const uint8_t *p = b->map + c->offset;
    uint64_t want = mk_get_u64(p + c->len), got = mk_hash64(p, c->len);
    if (want != got)
        return PROBLEM(ck, MK_ECORRUPT, c->offset, "chunk of series %016" PRIx64 " (%" PRIu32 " bytes): checksum mismatch (stored %016" PRIx64 ", computed %016" PRIx64 ")",
                       c->series_id, c->len, want, got);
    return MK_OK;
}

mk_err mk_block_payload(const mk_block *b, const mk_block_chunk *c, const uint8_t **p, mk_diag *diag)
{
    if (!b || !c || !p) return mk_diag_set(diag, MK_EINVAL, "mk_block_payload: NULL argument");
    checker ck = {b->path, diag, MK_OK, 0, NULL, NULL};
    /* a chunk of b's own index (not a caller's copy) whose checksum
     * matched once is not hashed again: a year's hourly mean from the 1 h
     * tier spent a sixth of its time reading and hashing the five of seven
     * rollup columns it does not decode */
    uintptr_t at = (uintptr_t)c, lo = (uintptr_t)b->chunks;
    size_t i = at >= lo ? (at - lo) / sizeof *c : SIZE_MAX;
    int is_own = i < b->n_chunks && at == lo + i * sizeof *c;
    uint64_t bit = is_own ? (uint64_t)1 << (i % 64) : 0;
    if (is_own && (atomic_load_explicit(&b->is_checked[i / 64], memory_order_relaxed) & bit)) {
        *p = b->map + c->offset;
        return MK_OK;
    }
    mk_err rc = chunk_check(b, c, &ck);
    *p = rc ? NULL : b->map + c->offset;
    if (!rc && is_own) atomic_fetch_or_explicit(&b->is_checked[i / 64], bit, memory_order_relaxed);
    return rc;
}

mk_err mk_block_verify(mk_env *env, const char *path,
                       void (*report)(void *ctx, const char *path, uint64_t off, const char *why),
                       void *ctx, uint64_t *n_chunks, uint64_t *n_samples, mk_diag *diag)
{
    if (n_chunks) *n_chunks = 0;
    if (n_samples) *n_samples = 0;
    if (!path) return mk_diag_set(diag, MK_EINVAL, "mk_block_verify: NULL path");
    checker ck = {path, diag, MK_OK, 1, report, ctx};
    mk_block *b = NULL;
    mk_err rc = block_load(env, path, &ck, &b);
    if (rc) goto out;
    uint64_t ns = 0;
    for (size_t i = 0; i < b->n_chunks; i++) {
        chunk_check(b, &b->chunks[i], &ck);
        ns += b->chunks[i].sum.count;
    }
    if (n_chunks) *n_chunks = b->n_chunks;
    if (n_samples) *n_samples = ns;
    rc = ck.first;
out:
    block_free(b);
    return rc;
}

/*
 * engine/codec.c — chunk codecs for sealed blocks (see codec.h; the byte
 * layout is drawn in engine/FORMAT.md, "Chunk payload").
 *
 * A payload is a tiny header and two columns:
 *
 *   u8 ts_codec | u8 val_codec | uvarint n | uvarint ts_len | ts column | value column
 *
 * Timestamp columns: TS_CONST (first ts + one step) or TS_DOD (first ts,
 * first delta, then delta-of-deltas as an integer stream). Value columns:
 * VAL_CONST (8 bytes), VAL_SCALED (decimal exponent e, every value v turned
 * into the integer k with v == (double)k / 10^e bit for bit, a predictor,
 * residuals as an integer stream, exceptions kept raw), VAL_XOR (Gorilla)
 * and VAL_RAW. Any column may be followed by a whole-column zstd stage
 * (codec id | MK_CODEC_ZSTD_FLAG). Everything is chosen per chunk by size.
 *
 * Integer streams (timestamp dods, scaled residuals) are coded one of three
 * ways, again by size:
 *   ZERO  every value 0;
 *   PACK  fixed-width bit-packing at the true width;
 *   RANS  each value z as a symbol (0 for z == 0, else the high part of
 *         z - 1 above its low k bits, with an escape for large ones) coded
 *         by a static rANS coder whose table travels with the stream, plus
 *         the k low bits packed raw: the low bits of noisy data are close
 *         to uniform, so only the high part carries the distribution's
 *         shape, and the coder spends fractions of a bit on a dominant
 *         symbol (zeros of error counters, repeats of flags).
 * The zstd stage (only tried on columns that are not entropy-coded already)
 * stores a frame without its 4-byte magic number (it is put back before
 * decompressing) and without checksum, content size or dictionary id:
 * the chunk's checksum lives in the block, and the sizes are known.
 *
 * Invariants kept by the encoder, checked by the decoder (which trusts no
 * byte: every read is bounded, every length checked, corrupt input is
 * MK_ECORRUPT with the payload offset where the problem was found):
 *  - 1 <= n <= MK_CHUNK_MAX_SAMPLES and timestamps strictly increase;
 *  - a column ends exactly where the next begins / the payload ends;
 *  - all integer reconstruction is done in wrapping uint64 arithmetic, so
 *    garbage input gives garbage numbers, never undefined behaviour.
 */
#include "codec.h"

#include <math.h>
#include <stdlib.h>
#include <zstd.h>

#include "bits.h"
#include "codec_internal.h"
#include "format.h"

#define NMAX MK_CHUNK_MAX_SAMPLES
#define MAX_DEC_EXP 22 /* 10^22 is the largest power of ten a double holds exactly */
#define K_LIMIT 9007199254740992.0 /* 2^53: |k| <= 2^53 converts to double exactly */
#define ZSTD_MAGIC_LE 0xFD2FB528u
#define PAD 16 /* zeroed bytes after unpacking buffers: 64-bit loads stay inside */
/* rANS (see rans_encode): 12-bit probabilities, 32-bit state in [2^23, 2^31),
 * at most 64 symbols, weight indices 0..63. */
#define RANS_SB 12
#define RANS_TOT (1u << RANS_SB)
#define RANS_L (1u << 23)
#define RANS_MAX_SYM 64
#define RANS_MAX_J 63
#define RANS_TWO_STATES 1024 /* streams this long interleave two coders */
/* Upper bound of a value or timestamp column's size before its zstd stage,
 * so a corrupt "raw length" cannot make us allocate without limit. */
#define COL_RAW_MAX(n) ((size_t)(n) * 48 + 256)

struct mk_codec {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    int zstd_level;
    int has_force;
    mk_codec_force force;
    int is_fast_decode; /* mk_codec_set_fast_decode */
    int last_int_mode; /* encoder: layout of the last integer stream written */
    int ts_int_mode, val_int_mode;
    int64_t *k;      /* scaled integers, NMAX */
    int64_t *khist;  /* encoder: k behind 32 copies of k[0], NMAX + 32 */
    uint64_t *z;     /* an integer stream, NMAX */
    uint64_t *z2;    /* encoder: the low bits of a rANS stream, NMAX */
    uint8_t *e_of;   /* encoder: per-value smallest decimal exponent, NMAX */
    int8_t *ulp;     /* encoder: per-value ulp correction, NMAX */
    uint8_t *pad;    /* a bit-packed area copied to zero padding, NMAX * 8 + PAD */
    uint8_t *rans_sym; /* decoder: symbol of each rANS slot, RANS_TOT */
    uint8_t *sym;      /* encoder: the rANS symbol of each value, NMAX */
    mk_buf col_ts;   /* encoder: the columns being built */
    mk_buf col_val;
    mk_buf alt;      /* encoder: the XOR candidate of a value column */
    mk_buf tmp;      /* encoder: zstd output; rANS bytes */
    mk_buf tmp2;     /* encoder: rANS overflow varints */
    mk_buf zin;      /* decoder: a frame with its magic put back */
    mk_buf inner;    /* decoder: a column after its zstd stage */
};

static const double pow10_tab[MAX_DEC_EXP + 1] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* 10^0 .. 10^18 as integers (scaling k from one exponent to a higher one). */
static const int64_t pow10_int[19] = {
    1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL, 100000000LL,
    1000000000LL, 10000000000LL, 100000000000LL, 1000000000000LL, 10000000000000LL,
    100000000000000LL, 1000000000000000LL, 10000000000000000LL, 100000000000000000LL,
    1000000000000000000LL,
};

/* 2^53 / 10^d: the largest |k| that stays within 2^53 when scaled by 10^d. */
static const int64_t k_lim[19] = {
    9007199254740992LL, 900719925474099LL, 90071992547409LL, 9007199254740LL, 900719925474LL,
    90071992547LL, 9007199254LL, 900719925LL, 90071992LL, 9007199LL, 900719LL, 90071LL, 9007LL,
    900LL, 90LL, 9LL, 0LL, 0LL, 0LL,
};

/* ------------------------------------------------------------------ */
/* Context                                                             */

mk_err mk_codec_new(mk_codec **out)
{
    mk_codec *c = calloc(1, sizeof *c);
    if (!c) return MK_ENOMEM;
    c->zstd_level = MK_CODEC_ZSTD_LEVEL;
    /* zstd contexts are made on first use: readers create a context per
     * iterator and most chunks never reach the zstd stage */
    c->k = malloc(NMAX * sizeof *c->k);
    c->khist = malloc((NMAX + 32) * sizeof *c->khist);
    c->z = malloc(NMAX * sizeof *c->z);
    c->z2 = malloc(NMAX * sizeof *c->z2);
    c->e_of = malloc(NMAX);
    c->ulp = malloc(NMAX);
    c->pad = calloc(1, (size_t)NMAX * 8 + PAD);
    c->rans_sym = malloc(RANS_TOT);
    c->sym = malloc(NMAX);
    if (!c->k || !c->khist || !c->z || !c->z2 || !c->e_of || !c->ulp || !c->pad ||
        !c->rans_sym || !c->sym) {
        mk_codec_free(c);
        return MK_ENOMEM;
    }
    *out = c;
    return MK_OK;
}

void mk_codec_free(mk_codec *c)
{
    if (!c) return;
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
    free(c->k);
    free(c->khist);
    free(c->z);
    free(c->z2);
    free(c->e_of);
    free(c->ulp);
    free(c->pad);
    free(c->rans_sym);
    free(c->sym);
    mk_buf_free(&c->col_ts);
    mk_buf_free(&c->col_val);
    mk_buf_free(&c->alt);
    mk_buf_free(&c->tmp);
    mk_buf_free(&c->tmp2);
    mk_buf_free(&c->zin);
    mk_buf_free(&c->inner);
    free(c);
}

void mk_codec_set_force(mk_codec *c, const mk_codec_force *f)
{
    c->has_force = f != NULL;
    if (f) c->force = *f;
}

void mk_codec_set_zstd_level(mk_codec *c, int level) { c->zstd_level = level; }
void mk_codec_set_fast_decode(mk_codec *c, int is_fast) { c->is_fast_decode = is_fast != 0; }

void mk_codec_last_int_modes(const mk_codec *c, int *ts_mode, int *val_mode)
{
    *ts_mode = c->ts_int_mode;
    *val_mode = c->val_int_mode;
}

static int forced(const mk_codec *c, int v) { return c->has_force && v >= 0; }

/* ------------------------------------------------------------------ */
/* Small writers                                                       */

static mk_err put_u8(mk_buf *b, uint8_t v) { return mk_buf_append(b, &v, 1); }

static mk_err put_uvarint(mk_buf *b, uint64_t v)
{
    mk_err rc = mk_buf_reserve(b, 10);
    if (rc) return rc;
    b->len += mk_put_uvarint(b->data + b->len, v);
    return MK_OK;
}

static size_t uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

/* Packs z[0..m) at width w (1..64) LSB-first, appending ceil(m*w/8) bytes. */
static mk_err pack_bits(mk_buf *b, const uint64_t *z, uint32_t m, unsigned w)
{
    size_t nbytes = (size_t)(((uint64_t)m * w + 7) >> 3);
    mk_err rc = mk_buf_reserve(b, nbytes + PAD);
    if (rc) return rc;
    uint8_t *p = b->data + b->len;
    memset(p, 0, nbytes + PAD);
    uint64_t pos = 0;
    for (uint32_t i = 0; i < m; i++, pos += w) mk_bits_put(p, pos, z[i], w);
    b->len += nbytes;
    return MK_OK;
}

/* zstd-compresses src into dst (replacing its contents) without the frame's
 * magic number. Returns 0 and sets dst->len, or nonzero if zstd failed or
 * the result is not smaller than limit (not worth storing). */
static int zstd_squeeze(mk_codec *c, const uint8_t *src, size_t n, mk_buf *dst, size_t limit)
{
    size_t bound = ZSTD_compressBound(n);
    dst->len = 0;
    if (mk_buf_reserve(dst, bound)) return 1;
    if (!c->cctx && !(c->cctx = ZSTD_createCCtx())) return 1;
    ZSTD_CCtx_reset(c->cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, c->zstd_level);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 0);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_dictIDFlag, 0);
    size_t r = ZSTD_compress2(c->cctx, dst->data, bound, src, n);
    if (ZSTD_isError(r) || r < 4 || mk_get_u32(dst->data) != ZSTD_MAGIC_LE) return 1;
    if (r - 4 >= limit) return 1;
    memmove(dst->data, dst->data + 4, r - 4);
    dst->len = r - 4;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Bounded reader over a payload                                       */

typedef struct rd {
    const uint8_t *p;
    size_t len;
    size_t off;
    size_t base;  /* payload offset of p[0] (or of the zstd column holding it) */
    int is_inner; /* p is a decompressed column: report base, not base + off */
} rd;

/* Payload offset of the read position (the column start inside a zstd
 * stage, where positions are in the decompressed bytes). */
static size_t rd_where(const rd *r) { return r->is_inner ? r->base : r->base + r->off; }

/* A macro, so the diag names the line that found the problem. */
#define rd_corrupt(r, diag, why) MK_CORRUPT((diag), "chunk payload", rd_where(r), (why))

static mk_err rd_u8(rd *r, uint8_t *v, mk_diag *diag)
{
    if (r->off >= r->len) return rd_corrupt(r, diag, "truncated");
    *v = r->p[r->off++];
    return MK_OK;
}

static mk_err rd_uvarint(rd *r, uint64_t *v, mk_diag *diag)
{
    size_t used = mk_get_uvarint(r->p + r->off, r->len - r->off, v);
    if (!used) return rd_corrupt(r, diag, "truncated or overlong varint");
    r->off += used;
    return MK_OK;
}

static mk_err rd_u64(rd *r, uint64_t *v, mk_diag *diag)
{
    if (r->len - r->off < 8) return rd_corrupt(r, diag, "truncated");
    *v = mk_get_u64(r->p + r->off);
    r->off += 8;
    return MK_OK;
}

/* Decompresses a magic-less zstd frame p[0..n) into dst, which must come out
 * exactly want bytes long. */
static mk_err zstd_expand(mk_codec *c, const uint8_t *p, size_t n, uint8_t *dst, size_t want)
{
    c->zin.len = 0;
    if (mk_buf_reserve(&c->zin, n + 4)) return MK_ENOMEM;
    mk_put_u32(c->zin.data, ZSTD_MAGIC_LE);
    if (n) memcpy(c->zin.data + 4, p, n);
    if (!c->dctx && !(c->dctx = ZSTD_createDCtx())) return MK_ENOMEM;
    size_t r = ZSTD_decompressDCtx(c->dctx, dst, want, c->zin.data, n + 4);
    if (ZSTD_isError(r) || r != want) return MK_ECORRUPT;
    return MK_OK;
}

/* ------------------------------------------------------------------ */
/* Integer streams                                                     */

/* Copies p[0..n) into c->pad followed by PAD zero bytes (n <= NMAX * 8). */
static const uint8_t *padded(mk_codec *c, const uint8_t *p, size_t n)
{
    memcpy(c->pad, p, n);
    memset(c->pad + n, 0, PAD);
    return c->pad;
}

/* ------------------------------------------------------------------ */
/* rANS layout of an integer stream                                    */

/*
 * MK_CODEC_INT_RANS codes each z as a symbol plus raw low bits:
 *   z == 0                      symbol 0, no low bits
 *   y = z - 1, h = y >> k:
 *     h < S - 2                 symbol 1 + h,   low k bits of y
 *     otherwise                 symbol S - 1 (escape) + uvarint (h - (S - 2))
 *                               in the overflow area, low k bits of y
 * Symbol 0 makes zero-inflated data (error counters, idle flags) cost a
 * fraction of a bit per zero; the low bits of noisy data are near uniform,
 * so only the high part is entropy-coded. The symbols go through a static
 * 32-bit rANS coder (byte-wise renormalisation, state in [2^23, 2^31),
 * probabilities in 1/4096), whose table is sent as quantised log-weights:
 *
 *   u8 2 | u8 k | table | uvarint rans_len | rans bytes | uvarint ovf_len | ovf | low bits
 *
 * table, a bit stream padded to a byte: 6 bits S - 1 (S = 2..64 symbols),
 * then for each symbol its weight index j (0 = absent, else weight
 * base[(j-1) & 3] << ((j-1) >> 2), base = 16, 19, 23, 27: quarter steps of
 * log2) as an order-0 exp-Golomb code of zigzag(j_s - j_{s-1}), j_{-1} = 0.
 * The weights are normalised to frequencies summing to 4096 by integer
 * arithmetic only (rans_norm), identically in encoder and decoder.
 * rans bytes: the final encoder state (4 bytes, little-endian), then the
 * renormalisation bytes in the order the decoder consumes them. Streams of
 * RANS_TWO_STATES values or more interleave two coders (value i uses state
 * i & 1: two dependency chains overlap in the decoder) and store both final
 * states, state 0 first. A valid stream ends with the state(s) back at 2^23
 * and every byte consumed. The low bits (k per non-zero
 * value, bits.h order) fill the rest of the stream exactly.
 */

static uint64_t rans_weight(unsigned j)
{
    static const uint32_t base[4] = {16, 19, 23, 27};
    return (uint64_t)base[(j - 1) & 3] << ((j - 1) >> 2);
}

/* Weight indices -> frequencies summing to RANS_TOT (0 for absent symbols).
 * Returns 0 if no symbol is present. */
static int rans_norm(const uint8_t *j, unsigned S, uint32_t *f)
{
    uint64_t W = 0;
    for (unsigned s = 0; s < S; s++) W += j[s] ? rans_weight(j[s]) : 0;
    if (!W) return 0;
    uint32_t sum = 0;
    for (unsigned s = 0; s < S; s++) {
        f[s] = 0;
        if (!j[s]) continue;
        uint64_t q = rans_weight(j[s]) * RANS_TOT / W;
        f[s] = q ? (uint32_t)q : 1;
        sum += f[s];
    }
    /* Rounding: take the excess from, or give the shortfall to, the most
     * probable symbol (the first of equals). S <= 64 < RANS_TOT, so a symbol
     * with f > 1 exists while sum > RANS_TOT. */
    while (sum != RANS_TOT) {
        unsigned a = 0;
        for (unsigned s = 1; s < S; s++) if (f[s] > f[a]) a = s;
        if (sum > RANS_TOT) {
            f[a]--;
            sum--;
        } else {
            f[a] += RANS_TOT - sum;
            sum = RANS_TOT;
        }
    }
    return 1;
}

/* Symbol of z for low-bit count k and alphabet size S; *h = the high part. */
static inline unsigned rans_sym(uint64_t z, unsigned k, unsigned S, uint64_t *h)
{
    if (!z) return 0;
    *h = (z - 1) >> k;
    return *h < S - 2 ? 1 + (unsigned)*h : S - 1;
}

/* Estimated bits of the RANS layout at low-bit count k, from the symbol
 * histogram of the taken values (hist[s] for s <= top), how many of them
 * are non-zero and the bits of their overflow varints. */
static double rans_bits(const uint32_t *hist, unsigned top, uint64_t nnz, double extra, unsigned k,
                        uint32_t m, uint32_t taken)
{
    double bits = (double)nnz * k + extra;
    for (unsigned s = 0; s <= top; s++)
        if (hist[s]) bits += (double)hist[s] * log2((double)taken / hist[s]);
    unsigned n_sym = 0;
    for (unsigned s = 0; s <= top; s++) n_sym += hist[s] != 0;
    /* The empirical entropy of a sample underestimates the source's by
     * about (n_sym - 1) / (2 ln 2) bits in all (Miller-Madow): without the
     * correction a subsample favours big alphabets (small k). */
    bits += (n_sym - 1) / (2 * 0.6931471805599453);
    return bits * ((double)m / taken) + 4.0 * (top + 1) + 64; /* + table, state */
}

/* The sampling of the rANS size estimate: long streams take a systematic sample of
 * ~sample values (enough to rank the candidates; scaled back to m). */
static inline uint32_t rans_step(uint32_t m, uint32_t sample) { return m >= 2 * sample ? m / sample : 1; }

/* Estimated bits of the RANS layout at every low-bit count k in lo..hi
 * (hi - lo < 8) into est[k - lo]. The estimate at k: the histogram of the
 * symbols rans_sym gives (alphabet RANS_MAX_SYM) over a systematic sample
 * of the values, its empirical entropy plus the low bits and overflow
 * varints, scaled back to m. One pass over the values for all k: the high
 * parts at lo go into bins, and the bins at k + 1 are the bins at k merged
 * in pairs (h >> (k + 1) == (h >> k) >> 1). Values too large for the bins
 * are priced one by one. (This replaced one pass per k; the histograms and
 * so the doubles are the same: the overflow bits are sums of small
 * integers, exact in any order.) */
#define RANS_NBINS 2048
static void rans_estimate_range(const uint64_t *z, uint32_t m, unsigned lo, unsigned hi, uint32_t sample,
                                double *est)
{
    uint32_t bins[RANS_NBINS];
    uint32_t hist_big[8][RANS_MAX_SYM] = {{0}}; /* the values past the bins */
    double extra_big[8] = {0};
    unsigned nk = hi - lo + 1;
    memset(bins, 0, sizeof bins);
    uint32_t step = rans_step(m, sample), taken = 0, zeros = 0, nb = 0;
    for (uint32_t i = 0; i < m; i += step, taken++) {
        uint64_t v = z[i];
        if (!v) {
            zeros++;
            continue;
        }
        uint64_t h = (v - 1) >> lo;
        if (h < RANS_NBINS) {
            bins[h]++;
            nb = h >= nb ? (uint32_t)h + 1 : nb;
            continue;
        }
        for (unsigned j = 0; j < nk; j++) {
            uint64_t hj = h >> j;
            if (hj < RANS_MAX_SYM - 2) {
                hist_big[j][1 + hj]++;
            } else {
                hist_big[j][RANS_MAX_SYM - 1]++;
                extra_big[j] += 8.0 * (double)uvarint_len(hj - (RANS_MAX_SYM - 2));
            }
        }
    }
    for (unsigned j = 0; j < nk; j++) {
        uint32_t *hist = hist_big[j];
        double extra = extra_big[j];
        hist[0] = zeros;
        uint32_t lim = nb < RANS_MAX_SYM - 2 ? nb : RANS_MAX_SYM - 2;
        for (uint32_t b = 0; b < lim; b++) hist[1 + b] += bins[b];
        for (uint32_t b = RANS_MAX_SYM - 2; b < nb; b++) {
            if (!bins[b]) continue;
            hist[RANS_MAX_SYM - 1] += bins[b];
            extra += 8.0 * (double)bins[b] * (double)uvarint_len(b - (RANS_MAX_SYM - 2));
        }
        unsigned top = RANS_MAX_SYM - 1;
        while (top > 0 && !hist[top]) top--;
        est[j] = rans_bits(hist, top, taken - zeros, extra, lo + j, m, taken);
        /* bins at the next k */
        uint32_t nb2 = (nb + 1) / 2;
        for (uint32_t b = 0; b < nb2; b++) {
            uint32_t a = bins[2 * b], c2 = 2 * b + 1 < nb ? bins[2 * b + 1] : 0;
            bins[b] = a + c2;
        }
        for (uint32_t b = nb2; b < nb; b++) bins[b] = 0;
        nb = nb2;
    }
}

/* Order-0 exp-Golomb code of x (x < 2^31) in the bits.h order: u zero bits,
 * a one, then the low u bits of x + 1, where u = width(x + 1) - 1. */
static void put_expgolomb(mk_bits_w *w, uint64_t x)
{
    unsigned u = mk_bits_width(x + 1) - 1;
    mk_bits_w_put(w, 1ull << u, u + 1);
    mk_bits_w_put(w, (x + 1) & mk_bits_mask(u), u);
}

static uint64_t get_expgolomb(mk_bits_rd *r)
{
    uint64_t w = mk_bits_rd_peek(r);
    unsigned u = w ? (unsigned)__builtin_ctzll(w) : 64;
    if (u > 31) { /* not produced by the encoder */
        r->is_overrun = 1;
        return 0;
    }
    mk_bits_rd_skip(r, u + 1);
    return ((1ull << u) | mk_bits_rd_get(r, u)) - 1;
}

/* Appends the RANS layout of z[0..m) at low-bit count k. */
static mk_err rans_encode(mk_codec *c, const uint64_t *z, uint32_t m, unsigned k, mk_buf *out)
{
    uint32_t hist[RANS_MAX_SYM] = {0};
    uint64_t h = 0;
    unsigned top = 0;
    uint8_t *restrict sym = c->sym; /* each value's symbol, kept for the passes below */
    for (uint32_t i = 0; i < m; i++) {
        unsigned s = rans_sym(z[i], k, RANS_MAX_SYM, &h);
        sym[i] = (uint8_t)s;
        hist[s]++;
        top = s > top ? s : top;
    }
    /* The smallest alphabet that maps every value as the 64-symbol one
     * does: without escapes, symbols 0..top plus an unused escape (so
     * sym[] holds the symbols at S too). */
    unsigned S = top == RANS_MAX_SYM - 1 ? RANS_MAX_SYM : top + 2;
    uint8_t j[RANS_MAX_SYM] = {0};
    for (unsigned s = 0; s < S; s++) {
        if (!hist[s]) continue;
        long q = lround(4.0 * log2((double)hist[s])) + 1;
        j[s] = (uint8_t)(q < 1 ? 1 : q > RANS_MAX_J ? RANS_MAX_J : q);
    }
    uint32_t f[RANS_MAX_SYM], cum[RANS_MAX_SYM + 1];
    rans_norm(j, S, f); /* m >= 1, so some symbol is present */
    cum[0] = 0;
    for (unsigned s = 0; s < S; s++) cum[s + 1] = cum[s] + f[s];

    /* Table. */
    mk_bits_w tw = {0};
    mk_err rc = mk_bits_w_reserve(&tw, 6 + (uint64_t)S * 16);
    if (rc) return rc;
    mk_bits_w_put(&tw, S - 1, 6);
    int prev = 0;
    for (unsigned s = 0; s < S; s++) {
        put_expgolomb(&tw, mk_zigzag((int64_t)j[s] - prev));
        prev = j[s];
    }
    rc = put_u8(out, MK_CODEC_INT_RANS);
    if (!rc) rc = put_u8(out, (uint8_t)k);
    if (!rc) rc = mk_buf_append(out, tw.buf, mk_bits_w_bytes(&tw));
    mk_bits_w_free(&tw);
    if (rc) return rc;

    /* Symbols, coded backwards into c->tmp (at most 2 bytes each + states). */
    mk_buf *rb = &c->tmp;
    rb->len = 0;
    size_t cap = (size_t)m * 2 + 16;
    rc = mk_buf_reserve(rb, cap);
    if (rc) return rc;
    uint8_t *end = rb->data + cap, *p = end;
    uint32_t xs[2] = {RANS_L, RANS_L}; /* value i uses state i & lane */
    uint32_t lane = m >= RANS_TWO_STATES ? 1 : 0;
    for (uint32_t i = m; i-- > 0;) {
        unsigned s = sym[i];
        uint32_t fs = f[s], x = xs[i & lane];
        uint32_t x_max = ((RANS_L >> RANS_SB) << 8) * fs;
        while (x >= x_max) {
            *--p = (uint8_t)x;
            x >>= 8;
        }
        xs[i & lane] = ((x / fs) << RANS_SB) + (x % fs) + cum[s];
    }
    if (lane) {
        p -= 4;
        mk_put_u32(p, xs[1]);
    }
    p -= 4;
    mk_put_u32(p, xs[0]);
    rc = put_uvarint(out, (uint64_t)(end - p));
    if (!rc) rc = mk_buf_append(out, p, (size_t)(end - p));
    if (rc) return rc;

    /* Overflow varints and low bits, in sample order. */
    mk_buf *ovf = &c->tmp2;
    ovf->len = 0;
    uint32_t nnz = 0;
    uint64_t *restrict low = c->z2;
    for (uint32_t i = 0; i < m; i++) {
        unsigned s = sym[i];
        if (!s) continue;
        low[nnz++] = (z[i] - 1) & mk_bits_mask(k);
        if (s == S - 1) {
            h = (z[i] - 1) >> k;
            rc = put_uvarint(ovf, h - (S - 2));
            if (rc) return rc;
        }
    }
    rc = put_uvarint(out, ovf->len);
    if (!rc) rc = mk_buf_append(out, ovf->data, ovf->len);
    if (!rc && k && nnz) rc = pack_bits(out, c->z2, nnz, k);
    return rc;
}

/* Decodes the rest of a RANS stream (after its mode byte and k). */
static mk_err rans_decode(mk_codec *c, rd *r, unsigned k, uint32_t m, uint64_t *z, mk_diag *diag)
{
    mk_bits_rd br;
    mk_bits_rd_init(&br, r->p + r->off, r->len - r->off);
    unsigned S = (unsigned)mk_bits_rd_get(&br, 6) + 1;
    if (S < 2) return rd_corrupt(r, diag, "rANS alphabet too small");
    uint8_t j[RANS_MAX_SYM];
    int64_t prev = 0;
    for (unsigned s = 0; s < S; s++) {
        int64_t v = prev + mk_unzigzag(get_expgolomb(&br));
        if (br.is_overrun) return rd_corrupt(r, diag, "rANS table truncated");
        if (v < 0 || v > RANS_MAX_J) return rd_corrupt(r, diag, "rANS weight out of range");
        j[s] = (uint8_t)v;
        prev = v;
    }
    uint32_t f[RANS_MAX_SYM], cum[RANS_MAX_SYM];
    if (!rans_norm(j, S, f)) return rd_corrupt(r, diag, "rANS table has no symbol");
    uint8_t *sym_of = c->rans_sym;
    uint32_t acc = 0;
    for (unsigned s = 0; s < S; s++) {
        cum[s] = acc;
        memset(sym_of + acc, (int)s, f[s]);
        acc += f[s];
    }
    r->off += (size_t)((br.pos + 7) >> 3);

    uint64_t rlen = 0, ovf_len = 0;
    mk_err rc = rd_uvarint(r, &rlen, diag);
    if (rc) return rc;
    if (rlen > r->len - r->off) return rd_corrupt(r, diag, "rANS bytes past the end");
    const uint8_t *p = r->p + r->off, *pend = p + rlen;
    size_t rans_off = r->off;
    r->off += (size_t)rlen;
    rc = rd_uvarint(r, &ovf_len, diag);
    if (rc) return rc;
    if (ovf_len > r->len - r->off) return rd_corrupt(r, diag, "overflow area past the end");
    const uint8_t *ovf = r->p + r->off;
    size_t ovf_n = (size_t)ovf_len, ovf_at = 0;
    r->off += ovf_n;
    size_t low_n = r->len - r->off;
    if (low_n > (size_t)NMAX * 8) return rd_corrupt(r, diag, "low-bit area too large");
    const uint8_t *low = padded(c, r->p + r->off, low_n);

    /* Two interleaved states (value i uses state i & 1) so that two
     * dependency chains overlap; both read the one byte stream. */
    int has_two = m >= RANS_TWO_STATES;
    if (rlen < (has_two ? 8u : 4u)) return rd_corrupt(r, diag, "rANS bytes too short");
    uint32_t x0 = mk_get_u32(p), x1 = has_two ? mk_get_u32(p + 4) : RANS_L;
    p += has_two ? 8 : 4;
    int is_short = 0;
    uint64_t pos = 0, mask = mk_bits_mask(k), hmax = UINT64_MAX >> k;
#define RANS_STEP(x, i)                                                                        \
    do {                                                                                       \
        uint32_t slot_ = (x) & (RANS_TOT - 1);                                                 \
        unsigned s_ = sym_of[slot_];                                                           \
        (x) = f[s_] * ((x) >> RANS_SB) + slot_ - cum[s_];                                      \
        while ((x) < RANS_L) {                                                                 \
            if (p == pend) { is_short = 1; break; }                                            \
            (x) = ((x) << 8) | *p++;                                                           \
        }                                                                                      \
        if (!s_) {                                                                             \
            z[i] = 0;                                                                          \
            break;                                                                             \
        }                                                                                      \
        uint64_t h_ = s_ - 1;                                                                  \
        if (s_ == S - 1) {                                                                     \
            uint64_t v_ = 0;                                                                   \
            size_t used_ = mk_get_uvarint(ovf + ovf_at, ovf_n - ovf_at, &v_);                  \
            if (!used_) return rd_corrupt(r, diag, "overflow varint truncated");               \
            ovf_at += used_;                                                                   \
            if (v_ > hmax - (S - 2)) return rd_corrupt(r, diag, "overflow value too large");   \
            h_ = (S - 2) + v_;                                                                 \
        }                                                                                      \
        /* pos <= m * 63 bits stays inside c->pad (NMAX * 8 bytes + PAD) */                    \
        uint64_t lo_ = k <= 56 ? (mk_get_u64(low + (pos >> 3)) >> (pos & 7)) & mask            \
                               : mk_bits_get(low, pos, k);                                     \
        uint64_t y_ = (h_ << k) | lo_;                                                         \
        pos += k;                                                                              \
        if (y_ == UINT64_MAX) return rd_corrupt(r, diag, "value out of range");                \
        z[i] = y_ + 1;                                                                         \
    } while (0)
    uint32_t i = 0;
    if (has_two) {
        for (; i + 1 < m; i += 2) {
            RANS_STEP(x0, i);
            RANS_STEP(x1, i + 1);
        }
    }
    for (; i < m; i++) RANS_STEP(x0, i);
#undef RANS_STEP
    if (is_short || x0 != RANS_L || x1 != RANS_L || p != pend) {
        r->off = rans_off;
        return rd_corrupt(r, diag, "rANS stream does not decode");
    }
    if (ovf_at != ovf_n) return rd_corrupt(r, diag, "unused bytes in the overflow area");
    if (((pos + 7) >> 3) != low_n) return rd_corrupt(r, diag, "low-bit area has the wrong size");
    r->off = r->len;
    return MK_OK;
}

/*
 * Appends the integer stream z[0..m) to out (nothing at all for m == 0):
 *   ZERO:  u8 0                                      every value is 0
 *   PACK:  u8 1 | u8 w (1..64) | ceil(m*w/8) bytes   fixed width, bits.h order
 *   RANS:  u8 2 | u8 k (0..63) | ...                 see rans_encode
 * Chosen by size: RANS against PACK (PACK for m < 16, where a table does
 * not pay).
 */
static mk_err int_encode_(mk_codec *c, const uint64_t *z, uint32_t m, mk_buf *out);

/* Appends the integer stream and records its layout in c->last_int_mode. */
static mk_err int_encode(mk_codec *c, const uint64_t *z, uint32_t m, mk_buf *out)
{
    size_t start = out->len;
    mk_err rc = int_encode_(c, z, m, out);
    c->last_int_mode = !rc && out->len > start ? out->data[start] : -1;
    return rc;
}

/* The RANS low-bit count: the best estimate among the few values around
 * the median width of the non-zero values (the optimum sits a little below
 * log2 of the spread, and the cost curve is flat there). wh[b] = how many
 * of the n_wh values looked at (all of z[0..m), or a sample) are b bits
 * wide. *est_bits = the estimated stream size. */
static unsigned rans_pick_k(const uint64_t *z, uint32_t m, const uint32_t *wh, uint32_t n_wh, uint32_t sample,
                            double *est_bits)
{
    uint32_t nz = n_wh - wh[0], acc = 0;
    unsigned wmed = 1;
    for (unsigned b = 1; b <= 64 && nz; b++) {
        acc += wh[b];
        if (acc * 2 >= nz) { wmed = b; break; }
    }
    unsigned lo = wmed > 6 ? wmed - 6 : 0;
    unsigned hi = wmed - 1;
    double best = 0, est[8];
    unsigned k = lo; /* hi - lo <= 5 */
    rans_estimate_range(z, m, lo, hi, sample, est);
    for (unsigned kk = lo; kk <= hi; kk++) {
        double e = est[kk - lo];
        if (kk == lo || e < best) { best = e; k = kk; }
    }
    *est_bits = best;
    return k;
}

/* Estimated bytes of the integer stream z[0..m) as int_encode would write
 * it (the chooser's size model, for comparing predictors), from a sample
 * of ~256 values (enough to rank two predictors: the encode cost of
 * short chunks matters at ingest). */
static double int_estimate_bytes(const uint64_t *z, uint32_t m)
{
    if (m == 0) return 0;
    uint64_t all = 0;
    uint32_t wh[65] = {0};
    for (uint32_t i = 0; i < m; i++) all |= z[i];
    uint32_t step = m >= 512 ? m / 256 : 1, taken = 0;
    for (uint32_t i = 0; i < m; i += step, taken++) wh[mk_bits_width(z[i])]++;
    unsigned w = mk_bits_width(all);
    if (w == 0) return 1;
    double pack = 2 + (double)(((uint64_t)m * w + 7) >> 3);
    if (m < 16) return pack;
    double bits = 0;
    rans_pick_k(z, m, wh, taken, 256, &bits);
    double rans = 2 + bits / 8;
    return rans < pack ? rans : pack;
}

static mk_err int_encode_(mk_codec *c, const uint64_t *z, uint32_t m, mk_buf *out)
{
    if (m == 0) return MK_OK;
    uint64_t all = 0;
    uint32_t wh[65] = {0};
    for (uint32_t i = 0; i < m; i++) {
        all |= z[i];
        wh[mk_bits_width(z[i])]++;
    }
    unsigned w = mk_bits_width(all);
    int mode = forced(c, c->force.int_mode) ? c->force.int_mode : -1;
    if (w == 0 && (mode < 0 || mode == MK_CODEC_INT_ZERO)) return put_u8(out, MK_CODEC_INT_ZERO);
    if (mode == MK_CODEC_INT_ZERO) mode = -1; /* not all zero: choose */
    if (w == 0) w = 1;                        /* PACK/RANS forced on zeros */

    size_t pack_bytes = 2 + (size_t)(((uint64_t)m * w + 7) >> 3);
    if (mode == MK_CODEC_INT_PACK || (mode < 0 && m < 16)) {
        mk_err rc = put_u8(out, MK_CODEC_INT_PACK);
        if (!rc) rc = put_u8(out, (uint8_t)w);
        if (!rc) rc = pack_bits(out, z, m, w);
        return rc;
    }

    /* Low-bit count: forced, or estimated. */
    unsigned k;
    if (forced(c, c->force.int_k)) {
        k = (unsigned)c->force.int_k;
        if (k >= w) k = w - 1;
    } else {
        double est = 0;
        k = rans_pick_k(z, m, wh, m, 1024, &est);
    }

    size_t start = out->len;
    mk_err rc = rans_encode(c, z, m, k, out);
    /* (laid out for decoding speed: rANS only where it saves a fifth) */
    size_t rans_below = c->is_fast_decode ? pack_bytes - pack_bytes / 5 : pack_bytes;
    if (rc || mode == MK_CODEC_INT_RANS || out->len - start < rans_below) return rc;
    out->len = start; /* PACK is smaller */
    rc = put_u8(out, MK_CODEC_INT_PACK);
    if (!rc) rc = put_u8(out, (uint8_t)w);
    if (!rc) rc = pack_bits(out, z, m, w);
    return rc;
}

/* Decodes an integer stream of m values occupying exactly r->p[r->off..len). */
static mk_err int_decode(mk_codec *c, rd *r, uint32_t m, uint64_t *z, mk_diag *diag)
{
    if (m == 0) {
        if (r->off != r->len) return rd_corrupt(r, diag, "bytes after the last column");
        return MK_OK;
    }
    uint8_t mode = 0, w = 0;
    mk_err rc = rd_u8(r, &mode, diag);
    if (rc) return rc;
    if (mode == MK_CODEC_INT_ZERO) {
        if (r->off != r->len) return rd_corrupt(r, diag, "bytes after an all-zero stream");
        memset(z, 0, (size_t)m * sizeof *z);
        return MK_OK;
    }
    if (mode >= MK_CODEC_INT_COUNT) return rd_corrupt(r, diag, "unknown integer stream layout");
    rc = rd_u8(r, &w, diag);
    if (rc) return rc;

    if (mode == MK_CODEC_INT_PACK) {
        if (w < 1 || w > 64) return rd_corrupt(r, diag, "bit width out of range");
        size_t need = (size_t)(((uint64_t)m * w + 7) >> 3);
        if (r->len - r->off != need) return rd_corrupt(r, diag, "packed area has the wrong size");
        const uint8_t *p = padded(c, r->p + r->off, need);
        uint64_t mask = mk_bits_mask(w), pos = 0;
        if (w <= 56) {
            for (uint32_t i = 0; i < m; i++, pos += w)
                z[i] = (mk_get_u64(p + (pos >> 3)) >> (pos & 7)) & mask;
        } else {
            for (uint32_t i = 0; i < m; i++, pos += w) z[i] = mk_bits_get(p, pos, w);
        }
        r->off += need;
        return MK_OK;
    }

    /* MK_CODEC_INT_RANS */
    if (w > 63) return rd_corrupt(r, diag, "low-bit count out of range");
    return rans_decode(c, r, w, m, z, diag);
}

/* ------------------------------------------------------------------ */
/* Timestamp columns                                                   */

/*
 * TS_CONST: uvarint zigzag(ts0) [| uvarint step, if n >= 2]
 * TS_DOD:   uvarint zigzag(ts0) [| uvarint delta1, if n >= 2]
 *           [| integer stream of zigzag(delta_i - delta_{i-1}), i = 2..n-1]
 * Deltas are positive (strictly increasing timestamps) and computed in
 * uint64, so any int64 range is fine.
 */
static mk_err ts_encode(mk_codec *c, const int64_t *ts, uint32_t n, int is_regular, mk_buf *out, uint8_t *id)
{
    uint64_t d1 = n >= 2 ? (uint64_t)ts[1] - (uint64_t)ts[0] : 0;
    int want = forced(c, c->force.ts_codec) ? c->force.ts_codec : -1;
    if (want == MK_CODEC_TS_CONST && !is_regular) return MK_EINVAL;
    if (want != MK_CODEC_TS_CONST && want != MK_CODEC_TS_DOD) want = -1;
    mk_err rc = put_uvarint(out, mk_zigzag(ts[0]));
    if (!rc && n >= 2) rc = put_uvarint(out, d1);
    if (rc) return rc;
    if (want == MK_CODEC_TS_CONST || (want < 0 && is_regular)) {
        *id = MK_CODEC_TS_CONST;
        return MK_OK;
    }
    *id = MK_CODEC_TS_DOD;
    uint64_t prev = d1;
    for (uint32_t i = 2; i < n; i++) {
        uint64_t d = (uint64_t)ts[i] - (uint64_t)ts[i - 1];
        c->z[i - 2] = mk_zigzag((int64_t)(d - prev));
        prev = d;
    }
    return int_encode(c, c->z, n >= 2 ? n - 2 : 0, out);
}

static mk_err ts_decode(mk_codec *c, uint8_t id, rd *r, uint32_t n, int64_t *ts, mk_diag *diag)
{
    uint64_t t0 = 0, d1 = 0;
    mk_err rc = rd_uvarint(r, &t0, diag);
    if (!rc && n >= 2) rc = rd_uvarint(r, &d1, diag);
    if (rc) return rc;
    int64_t first = mk_unzigzag(t0);
    ts[0] = first;
    if (n < 2) {
        if (r->off != r->len) return rd_corrupt(r, diag, "bytes after the timestamps");
        return MK_OK;
    }
    if (id == MK_CODEC_TS_CONST) {
        if (d1 == 0) return rd_corrupt(r, diag, "timestamp step is zero");
        if (r->off != r->len) return rd_corrupt(r, diag, "bytes after the timestamps");
        /* The last timestamp must stay within int64: first + d1*(n-1). */
        uint64_t room = (uint64_t)INT64_MAX - (uint64_t)first; /* first <= INT64_MAX */
        if (d1 > room / (n - 1)) return rd_corrupt(r, diag, "timestamps overflow int64");
        uint64_t t = (uint64_t)first;
        for (uint32_t i = 1; i < n; i++) {
            t += d1;
            ts[i] = (int64_t)t;
        }
        return MK_OK;
    }
    rc = int_decode(c, r, n - 2, c->z, diag);
    if (rc) return rc;
    /* Rebuild in uint64; a wrong step (zero, negative, or past INT64_MAX)
     * shows as a timestamp not above its predecessor. */
    uint64_t t = (uint64_t)first + d1, d = d1;
    int is_bad = (int64_t)t <= first;
    ts[1] = (int64_t)t;
    for (uint32_t i = 2; i < n; i++) {
        d += (uint64_t)mk_unzigzag(c->z[i - 2]);
        uint64_t nt = t + d;
        is_bad |= (int64_t)nt <= (int64_t)t;
        ts[i] = (int64_t)nt;
        t = nt;
    }
    if (is_bad) return rd_corrupt(r, diag, "timestamps do not increase");
    return MK_OK;
}

/* ------------------------------------------------------------------ */
/* Scaled-integer values                                               */

/* Does v equal (double)k / 10^e for an integer k with |k| <= 2^53? */
static inline int dec_fits(double v, unsigned e, int64_t *k)
{
    double s = v * pow10_tab[e];
    if (!(s >= -K_LIMIT && s <= K_LIMIT)) return 0; /* also NaN and Inf */
    int64_t kk = (int64_t)s;                         /* toward zero, then to nearest */
    double frac = s - (double)kk;
    /* |kk| <= 2^53 after rounding: above 2^52 every double is an integer,
     * so there frac is 0 and kk == s. */
    if (frac >= 0.5) kk++;
    else if (frac <= -0.5) kk--;
    double back = e ? (double)kk / pow10_tab[e] : (double)kk;
    if (mk_f64_bits(back) != mk_f64_bits(v)) return 0;
    *k = kk;
    return 1;
}

/* Largest ulp correction stored: binary arithmetic leaves decimals like
 * 41.361999999999995 (41.362 - 1 ulp); a few ulps cover those. */
#define ULP_MAX 15
#define SCALED_HAS_ULP 0x80 /* flag in the predictor byte */

/* Is v within ULP_MAX ulps (same sign) of k / 10^e for the smallest such
 * e <= e_max?
 * Then *e, *k and *d = bits(v) - bits(k / 10^e). For values with no exact
 * decimal form (dec_fits failed at every e). */
static int dec_near(double v, unsigned e_max, unsigned *e, int64_t *k, int64_t *d)
{
    for (unsigned x = 0; x <= e_max; x++) {
        double s = v * pow10_tab[x];
        if (!(s >= -K_LIMIT && s <= K_LIMIT)) return 0; /* NaN, Inf, or too many digits */
        int64_t kk = (int64_t)s;
        double frac = s - (double)kk;
        if (frac >= 0.5) kk++;
        else if (frac <= -0.5) kk--;
        double w = x ? (double)kk / pow10_tab[x] : (double)kk;
        int64_t dd = (int64_t)(mk_f64_bits(v) - mk_f64_bits(w));
        if (dd >= -ULP_MAX && dd <= ULP_MAX) {
            *e = x;
            *k = kk;
            *d = dd;
            return 1;
        }
    }
    return 0;
}

/* Floor((sum + 2^(s-1)) / 2^s) in wrapping uint64 arithmetic: the rounded
 * mean of 2^s values whose sum is sum. Exact while |sum| < 2^62. */
static inline uint64_t mean_round(uint64_t sum, unsigned s)
{
    const uint64_t off = 1ull << 63;
    uint64_t half = s ? 1ull << (s - 1) : 0;
    return ((sum + half + off) >> s) - (off >> s);
}

/* Is pred one of the predictors that store the minimum as base and one
 * residual per value (FOR, ZMEAN*)? */
static inline int pred_has_min_base(unsigned pred)
{
    return pred == MK_CODEC_PRED_FOR || (pred >= MK_CODEC_PRED_ZMEAN2 && pred <= MK_CODEC_PRED_ZMEAN32);
}

/* Residuals of k[0..n) under predictor pred into z; returns m, the stream
 * length, and the base stored in the column (min for FOR and ZMEAN, k[0]
 * otherwise). */
static uint32_t predict(unsigned pred, const int64_t *k, uint32_t n, uint64_t *z, int64_t *base)
{
    if (pred_has_min_base(pred)) {
        int64_t mn = k[0];
        for (uint32_t i = 1; i < n; i++) mn = k[i] < mn ? k[i] : mn;
        *base = mn;
        if (pred == MK_CODEC_PRED_FOR) {
            for (uint32_t i = 0; i < n; i++) z[i] = (uint64_t)k[i] - (uint64_t)mn;
            return n;
        }
        /* ZMEAN: a value at the floor is the residual 0 whatever the
         * prediction (a clipped gauge sits there for long stretches, where a
         * mean would predict above it); the window starts as copies of the
         * floor. |k| <= 2^53, so zigzag(k - p) + 1 cannot wrap. */
        unsigned s = pred - MK_CODEC_PRED_ZMEAN2 + 1; /* window 2^s */
        uint32_t w = 1u << s;
        uint64_t sum = (uint64_t)mn * w;
        for (uint32_t i = 0; i < n; i++) {
            int64_t p = (int64_t)mean_round(sum, s);
            z[i] = k[i] == mn ? 0 : mk_zigzag(k[i] - p) + 1;
            uint64_t old = i >= w ? (uint64_t)k[i - w] : (uint64_t)mn;
            sum += (uint64_t)k[i] - old;
        }
        return n;
    }
    *base = k[0];
    if (pred == MK_CODEC_PRED_PREV) {
        for (uint32_t i = 1; i < n; i++) z[i - 1] = mk_zigzag(k[i] - k[i - 1]);
    } else if (pred == MK_CODEC_PRED_LIN) {
        if (n >= 2) z[0] = mk_zigzag(k[1] - k[0]);
        for (uint32_t i = 2; i < n; i++) z[i - 1] = mk_zigzag(k[i] - (2 * k[i - 1] - k[i - 2]));
    } else {
        unsigned s = pred - MK_CODEC_PRED_MEAN2 + 1; /* window 2^s */
        uint32_t w = 1u << s;
        uint64_t sum = (uint64_t)k[0] * w;
        for (uint32_t i = 1; i < n; i++) {
            int64_t p = (int64_t)mean_round(sum, s);
            z[i - 1] = mk_zigzag(k[i] - p);
            int64_t old = i >= w ? k[i - w] : k[0];
            sum += (uint64_t)k[i] - (uint64_t)old;
        }
    }
    return n - 1;
}

/* One value out: k, and the double k / 10^e (or k itself when e == 0;
 * division, not multiplication by 10^-e, because k / 10^e correctly rounded
 * is exactly the double the encoder checked). */
#define EMIT(i, v)                                                                     \
    do {                                                                               \
        k[i] = (int64_t)(v);                                                           \
        vals[i] = has_div ? (double)(int64_t)(v) / f : (double)(int64_t)(v);           \
    } while (0)

/* Inverse of predict: k[0..n) and vals[0..n) from base and z, in wrapping
 * arithmetic. Inlined twice, with has_div constant, so the loops carry no
 * test of e. */
static inline void unpredict_(unsigned pred, int64_t base, const uint64_t *z, uint32_t n, int64_t *k,
                              double *vals, int has_div, double f)
{
    if (pred == MK_CODEC_PRED_FOR) {
        for (uint32_t i = 0; i < n; i++) EMIT(i, (uint64_t)base + z[i]);
        return;
    }
    if (pred >= MK_CODEC_PRED_ZMEAN2) {
        unsigned s = pred - MK_CODEC_PRED_ZMEAN2 + 1;
        uint32_t w = 1u << s, i = 0;
        uint64_t b = (uint64_t)base, sum = b * w;
        /* z - 1 wraps to UINT64_MAX for z == 0; the select drops that. */
#define ZMEAN_NEXT() (z[i] ? mean_round(sum, s) + (uint64_t)mk_unzigzag(z[i] - 1) : b)
        for (; i < n && i < w; i++) {
            uint64_t v = ZMEAN_NEXT();
            EMIT(i, v);
            sum += v - b;
        }
        for (; i < n; i++) {
            uint64_t v = ZMEAN_NEXT();
            EMIT(i, v);
            sum += v - (uint64_t)k[i - w];
        }
#undef ZMEAN_NEXT
        return;
    }
    uint64_t prev = (uint64_t)base;
    EMIT(0, prev);
    if (pred == MK_CODEC_PRED_PREV) {
        for (uint32_t i = 1; i < n; i++) {
            prev += (uint64_t)mk_unzigzag(z[i - 1]);
            EMIT(i, prev);
        }
    } else if (pred == MK_CODEC_PRED_LIN) {
        uint64_t pp = prev;
        for (uint32_t i = 1; i < n; i++) {
            uint64_t p = i >= 2 ? 2 * prev - pp : prev;
            uint64_t v = p + (uint64_t)mk_unzigzag(z[i - 1]);
            pp = prev;
            prev = v;
            EMIT(i, v);
        }
    } else {
        unsigned s = pred - MK_CODEC_PRED_MEAN2 + 1;
        uint32_t w = 1u << s, i = 1;
        uint64_t sum = (uint64_t)base * w;
        /* The window starts as w copies of the first value. */
        for (; i < n && i < w; i++) {
            uint64_t v = mean_round(sum, s) + (uint64_t)mk_unzigzag(z[i - 1]);
            EMIT(i, v);
            sum += v - (uint64_t)base;
        }
        for (; i < n; i++) {
            uint64_t v = mean_round(sum, s) + (uint64_t)mk_unzigzag(z[i - 1]);
            EMIT(i, v);
            sum += v - (uint64_t)k[i - w];
        }
    }
}
#undef EMIT

static void unpredict(unsigned pred, int64_t base, const uint64_t *z, uint32_t n, int64_t *k, double *vals,
                      unsigned e)
{
    if (e) unpredict_(pred, base, z, n, k, vals, 1, pow10_tab[e]);
    else unpredict_(pred, base, z, n, k, vals, 0, 1.0);
}

/* mk_bits_width(z) for z < 2^63, branch-free: 63 ^ clz(2z + 1) (one bsr)
 * is the index of the top bit of 2z + 1, which is width(z) for every such
 * z, 0 included. The chooser's residuals stay far below: |k| <= 2^53, so
 * every difference it prices is below 2^56. */
static inline unsigned width_small(uint64_t z) { return 63u ^ (unsigned)__builtin_clzll(2 * z + 1); }

/* Adds the proxy costs of the MEAN window 2^(j+1) (into *cm) and, with
 * has_z, of the ZMEAN one (into *cz, priced with the MEAN window, which
 * starts from k[0], not the floor: a proxy, like the rest) over k[1..n).
 * Costs only grow, so once both pass bound (the final cost of another
 * candidate) neither can be the cheapest: the pass stops there, leaving
 * partial costs that still exceed bound. Inlined with j and has_z
 * constant, so every shift is a constant. */
static inline __attribute__((always_inline)) void mean_costs(const int64_t *k, uint32_t n, const int64_t *hist,
                                                             int64_t mn, unsigned j, int has_z, uint64_t bound,
                                                             uint64_t *cm, uint64_t *cz)
{
    const uint32_t w = 2u << j;
    uint64_t sum = (uint64_t)k[0] << (j + 1), c = *cm, c_z = *cz;
    const int64_t *old = hist + 32 - w; /* old[i] leaves the window as k[i] enters */
#define MEAN_STEP(i)                                                                   \
    do {                                                                               \
        int64_t v_ = k[i];                                                             \
        uint64_t z_ = mk_zigzag(v_ - (int64_t)mean_round(sum, j + 1));                 \
        c += width_small(z_);                                                          \
        if (has_z) c_z += v_ == mn ? 0 : width_small(z_ + 1);                          \
        sum += (uint64_t)v_ - (uint64_t)old[i];                                        \
    } while (0)
    for (uint32_t i0 = 1; i0 < n; i0 += 64) {
        uint32_t i1 = n - i0 > 64 ? i0 + 64 : n, i = i0;
        for (; i + 1 < i1; i += 2) { /* two per turn: half the loop overhead */
            MEAN_STEP(i);
            MEAN_STEP(i + 1);
        }
        if (i < i1) MEAN_STEP(i);
        if (c > bound && (!has_z || c_z > bound)) break;
    }
#undef MEAN_STEP
    *cm = c;
    *cz = c_z;
}

/* Every candidate's proxy cost over k[1..n) added into cost (has_z adds the
 * ZMEAN ones; inlined twice with has_z constant). FOR, PREV and LIN are
 * cheap and summed in full first; the mean windows, likeliest winners
 * first, stop early once they cannot be the cheapest (see mean_costs): the
 * costs of the candidates that can win, and so the choice, are exactly
 * those of summing everything. */
static inline __attribute__((always_inline)) void pred_costs(const int64_t *k, uint32_t n, const int64_t *hist,
                                                             int64_t mn, uint64_t *cost, int has_z)
{
    uint64_t c_for = cost[MK_CODEC_PRED_FOR], c_prev = 0, c_lin = 0;
    if (n >= 2) {
        c_for += width_small((uint64_t)k[1] - (uint64_t)mn);
        uint64_t z = mk_zigzag(k[1] - k[0]);
        c_prev += width_small(z);
        c_lin += width_small(z); /* LIN predicts k[0] for k[1] */
    }
    for (uint32_t i = 2; i < n; i++) {
        int64_t v = k[i];
        c_for += width_small((uint64_t)v - (uint64_t)mn);
        c_prev += width_small(mk_zigzag(v - k[i - 1]));
        c_lin += width_small(mk_zigzag(v - (2 * k[i - 1] - k[i - 2])));
    }
    cost[MK_CODEC_PRED_FOR] = c_for;
    cost[MK_CODEC_PRED_PREV] = c_prev;
    cost[MK_CODEC_PRED_LIN] = c_lin;
    uint64_t bound = c_for < c_prev ? c_for : c_prev;
    bound = c_lin < bound ? c_lin : bound;
#define MEAN_WINDOW(j)                                                                           \
    do {                                                                                         \
        uint64_t *cm_ = &cost[MK_CODEC_PRED_MEAN2 + (j)], *cz_ = &cost[MK_CODEC_PRED_ZMEAN2 + (j)]; \
        mean_costs(k, n, hist, mn, (j), has_z, bound, cm_, cz_);                                 \
        bound = *cm_ < bound ? *cm_ : bound;                                                     \
        if (has_z) bound = *cz_ < bound ? *cz_ : bound;                                          \
    } while (0)
    MEAN_WINDOW(2);
    MEAN_WINDOW(1);
    MEAN_WINDOW(3);
    MEAN_WINDOW(0);
    MEAN_WINDOW(4);
#undef MEAN_WINDOW
}

/* The predictor whose residuals have the fewest significant bits in all
 * (a cheap proxy of their coded size), all candidates in one pass. ZMEAN is
 * a candidate only in chunks of ZMEAN_MIN_N values or more (compaction's:
 * a day-long chunk holds the long floor runs that ZMEAN pays for, a 2 h
 * one rarely, and short chunks are encoded at ingest, where the chooser's
 * cost counts) with at least 1/64 of the values at the minimum (otherwise
 * it is MEAN plus a bit). */
#define ZMEAN_MIN_N 2048
static unsigned choose_pred(const int64_t *k, uint32_t n, int64_t *hist)
{
    /* hist[i + 32] = k[i], preceded by 32 copies of k[0]: the window
     * history of every mean predictor without a branch. */
    for (unsigned i = 0; i < 32; i++) hist[i] = k[0];
    memcpy(hist + 32, k, (size_t)n * sizeof *k);
    uint64_t cost[MK_CODEC_PRED_COUNT] = {0};
    int64_t mn = k[0];
    uint32_t n_floor = 1;
    for (uint32_t i = 1; i < n; i++) {
        if (k[i] < mn) n_floor = 0;
        mn = k[i] < mn ? k[i] : mn;
        n_floor += k[i] == mn;
    }
    int has_z = n >= ZMEAN_MIN_N && n_floor >= n / 64;
    cost[MK_CODEC_PRED_FOR] = mk_bits_width((uint64_t)k[0] - (uint64_t)mn);
    if (has_z) {
        for (unsigned p = MK_CODEC_PRED_ZMEAN2; p <= MK_CODEC_PRED_ZMEAN32; p++)
            cost[p] = k[0] == mn ? 0 : mk_bits_width(mk_zigzag(k[0] - mn) + 1);
        pred_costs(k, n, hist, mn, cost, 1);
    } else {
        pred_costs(k, n, hist, mn, cost, 0);
    }
    unsigned best = MK_CODEC_PRED_PREV;
    for (unsigned p = 0; p < (has_z ? MK_CODEC_PRED_COUNT : MK_CODEC_PRED_ZMEAN2); p++)
        if (cost[p] < cost[best]) best = p;
    return best;
}

/*
 * VAL_SCALED column:
 *   u8 e | u8 pred (+ 0x80 = has ulp corrections) | uvarint n_exc
 *   | n_exc x (uvarint gap, u64 raw bits) | uvarint zigzag(base)
 *   | without corrections: integer stream of the residuals
 *   | with corrections: uvarint length of the residual stream | residual
 *     stream | integer stream of zigzag(ulp correction), one per value
 * A value is bits(k / 10^e) + its ulp correction (|correction| <= ULP_MAX),
 * which keeps decimals left a few ulps off by binary arithmetic in this
 * codec instead of making them exceptions.
 * Exceptions (values that are not k / 10^e: NaN, Inf, -0.0, too many
 * digits) are stored raw at their positions (gap = position - previous
 * exception's position - 1, the first counted from -1); their integer slot
 * repeats the previous integer so the predictor is not disturbed.
 * Returns MK_ENOTFOUND when the data is not decimal-like enough to try.
 */
static mk_err scaled_encode(mk_codec *c, const double *vals, uint32_t n, mk_buf *out)
{
    /* Local restrict copies of the scratch arrays: stores through the
     * int8_t/uint8_t ones could otherwise alias anything, and every pointer
     * would be reloaded per value. */
    int64_t *restrict kv = c->k;
    uint8_t *restrict e_of = c->e_of;
    int8_t *restrict ulp = c->ulp;
    int is_forced = forced(c, c->force.val_codec) && c->force.val_codec == MK_CODEC_VAL_SCALED;
    /* Pass 1: each value's smallest exponent, searching from the previous
     * value's (neighbours usually share it): ~2 checks per value. */
    uint32_t hist[MAX_DEC_EXP + 2] = {0}; /* exact; [MAX_DEC_EXP + 1] = not decimal */
    uint32_t hist_near[MAX_DEC_EXP + 1] = {0}; /* within a few ulps */
    uint32_t hist_zero = 0;
    unsigned e_prev = 0;
    int64_t kk = 0;
    for (uint32_t i = 0; i < n; i++) {
        unsigned e = e_prev;
        if (dec_fits(vals[i], e, &kk)) {
            /* Fewer digits: k / 10^e == (k / 10) / 10^(e-1) as real numbers,
             * so a k divisible by 10 fits one exponent lower. Above ~2^50
             * neighbouring integers can share a double, so there a value may
             * fit lower with another k: ask dec_fits then. */
            while (e > 0) {
                if (kk % 10 == 0) kk /= 10;
                else if ((kk > (1LL << 50) || kk < -(1LL << 50)) && dec_fits(vals[i], e - 1, &kk)) ;
                else break;
                e--;
            }
        } else {
            do e++; while (e <= MAX_DEC_EXP && !dec_fits(vals[i], e, &kk));
        }
        ulp[i] = 0;
        /* Not a decimal, or one with many more digits than its neighbour:
         * perhaps a short decimal a few ulps off (41.362 - 1 ulp is also
         * exactly 41361999999999995 / 10^15, but 41362 / 10^3 with a
         * correction of -1 is far cheaper). */
        if (e > MAX_DEC_EXP || e > e_prev + 1) {
            unsigned en;
            int64_t kn, d;
            if (dec_near(vals[i], e - 2, &en, &kn, &d)) {
                ulp[i] = (int8_t)d;
                hist_near[en]++;
                e = en;
                kk = kn;
            }
        }
        e_of[i] = (uint8_t)e;
        kv[i] = kk; /* k at e (meaningless when e > MAX_DEC_EXP) */
        if (!ulp[i]) hist[e]++;
        hist_zero += mk_f64_bits(vals[i]) == 0; /* +0.0 only: -0.0 is an exception */
        if (e <= MAX_DEC_EXP) e_prev = e;
        /* Give up early on data that is plainly not decimal. */
        if (!is_forced && i == 63 && hist[MAX_DEC_EXP + 1] > 16) return MK_ENOTFOUND;
    }
    /* Choose e: each decimal digit costs ~3.3 bits for a non-zero value
     * (zeros are 0 at any e), an ulp correction a few bits, an exception
     * ~80 bits. */
    unsigned e_best = 0;
    double best = 0;
    uint32_t below = 0, near = 0, n_zero = hist_zero;
    for (unsigned e = 0; e <= MAX_DEC_EXP; e++) {
        below += hist[e];
        near += hist_near[e];
        if (!hist[e] && !hist_near[e] && e) continue;
        double cost = (double)(below + near - n_zero) * 3.32 * e + (double)near * 4.0 +
                      (double)(n - below - near) * 80.0;
        if (e == 0 || cost < best) { best = cost; e_best = e; }
    }
    /* Pass 2: the integers and the exceptions. A near value rescales like an
     * exact one: k * 10^d / 10^(e+d) is the same double, so its ulp
     * correction stays. */
    uint32_t n_exc = 0;
    int has_ulp = 0;
    int64_t k_min = INT64_MAX, k_max = INT64_MIN;
    int64_t last = 0;
    int has_last = 0;
    for (uint32_t i = 0; i < n; i++) {
        /* v == k_i / 10^e_i correctly rounded implies v == (k_i * 10^d) /
         * 10^(e_i + d) (the same real quotient), so a value is rescaled
         * without a second check as long as the integer stays <= 2^53. */
        unsigned ei = e_of[i];
        int is_fit = 0;
        if (ei <= e_best) {
            unsigned d = e_best - ei;
            int64_t k0 = kv[i];
            if (d > 18) { /* only 0 stays within 2^53 */
                is_fit = k0 == 0;
                kk = 0;
            } else {
                int64_t f = pow10_int[d], lim = k_lim[d];
                if (k0 <= lim && k0 >= -lim) {
                    kk = k0 * f;
                    is_fit = 1;
                }
            }
        }
        if (is_fit) {
            kv[i] = kk;
            if (!has_last) {
                for (uint32_t j = 0; j < i; j++) kv[j] = kk; /* leading exceptions */
                has_last = 1;
            }
            last = kk;
        } else {
            kv[i] = last;
            e_of[i] = 0xff; /* mark: exception */
            ulp[i] = 0;
            n_exc++;
        }
        has_ulp |= ulp[i] != 0;
        k_min = kv[i] < k_min ? kv[i] : k_min;
        k_max = kv[i] > k_max ? kv[i] : k_max;
    }
    if (!is_forced && n_exc > n / 8) return MK_ENOTFOUND;

    /* Predictor: the cheapest by the size proxy (or the forced one). */
    unsigned pred = MK_CODEC_PRED_PREV;
    int64_t base = 0;
    uint32_t m = 0; /* residuals already in c->z, or 0 */
    if (forced(c, c->force.pred) && c->force.pred < MK_CODEC_PRED_COUNT) {
        pred = (unsigned)c->force.pred;
    } else if (k_min == k_max) {
        pred = MK_CODEC_PRED_FOR; /* constant: an all-zero stream */
    } else if (n > 2) {
        pred = choose_pred(c->k, n, c->khist);
        /* The proxy prices a run at the floor alike under ZMEAN and FOR:
         * between those two, the estimated coded size decides. */
        if (pred >= MK_CODEC_PRED_ZMEAN2) {
            m = predict(pred, c->k, n, c->z, &base); /* kept if it stays the pick */
            uint32_t m2 = predict(MK_CODEC_PRED_FOR, c->k, n, c->z2, &base);
            if (int_estimate_bytes(c->z2, m2) < int_estimate_bytes(c->z, m)) {
                pred = MK_CODEC_PRED_FOR;
                m = 0;
            }
        }
    }
    if (!m) m = predict(pred, c->k, n, c->z, &base);

    mk_err rc = put_u8(out, (uint8_t)e_best);
    if (!rc) rc = put_u8(out, (uint8_t)(pred | (has_ulp ? SCALED_HAS_ULP : 0)));
    if (!rc) rc = put_uvarint(out, n_exc);
    int64_t prev_pos = -1;
    for (uint32_t i = 0; i < n && n_exc && !rc; i++) {
        if (e_of[i] != 0xff) continue;
        rc = put_uvarint(out, (uint64_t)((int64_t)i - prev_pos - 1));
        if (!rc) rc = mk_buf_reserve(out, 8);
        if (!rc) {
            mk_put_u64(out->data + out->len, mk_f64_bits(vals[i]));
            out->len += 8;
        }
        prev_pos = i;
    }
    if (!rc) rc = put_uvarint(out, mk_zigzag(base));
    if (rc) return rc;
    if (!has_ulp) return int_encode(c, c->z, m, out);
    /* Residuals with their length, then the ulp corrections to the end. */
    c->alt.len = 0;
    rc = int_encode(c, c->z, m, &c->alt);
    if (!rc) rc = put_uvarint(out, c->alt.len);
    if (!rc) rc = mk_buf_append(out, c->alt.data, c->alt.len);
    for (uint32_t i = 0; i < n; i++) c->z[i] = mk_zigzag(ulp[i]);
    if (!rc) rc = int_encode(c, c->z, n, out);
    return rc;
}

static mk_err scaled_decode(mk_codec *c, rd *r, uint32_t n, double *vals, mk_diag *diag)
{
    uint8_t e = 0, pred = 0;
    uint64_t n_exc = 0, base = 0;
    mk_err rc = rd_u8(r, &e, diag);
    if (!rc) rc = rd_u8(r, &pred, diag);
    if (rc) return rc;
    int has_ulp = (pred & SCALED_HAS_ULP) != 0;
    pred &= (uint8_t)~SCALED_HAS_ULP;
    if (e > MAX_DEC_EXP) return rd_corrupt(r, diag, "decimal exponent out of range");
    if (pred >= MK_CODEC_PRED_COUNT) return rd_corrupt(r, diag, "unknown predictor");
    rc = rd_uvarint(r, &n_exc, diag);
    if (rc) return rc;
    if (n_exc > n) return rd_corrupt(r, diag, "more exceptions than samples");
    size_t exc_off = r->off; /* exceptions are applied after the values */
    for (uint64_t i = 0; i < n_exc; i++) {
        uint64_t gap = 0, raw = 0;
        rc = rd_uvarint(r, &gap, diag);
        if (!rc) rc = rd_u64(r, &raw, diag);
        if (rc) return rc;
    }
    rc = rd_uvarint(r, &base, diag);
    if (rc) return rc;
    uint32_t m = pred_has_min_base(pred) ? n : n - 1;
    if (!has_ulp) {
        rc = int_decode(c, r, m, c->z, diag);
        if (rc) return rc;
        unpredict(pred, mk_unzigzag(base), c->z, n, c->k, vals, e);
    } else {
        uint64_t res_len = 0;
        rc = rd_uvarint(r, &res_len, diag);
        if (rc) return rc;
        if (res_len > r->len - r->off) return rd_corrupt(r, diag, "residual stream past the end");
        rd sub = *r;
        sub.len = r->off + (size_t)res_len;
        rc = int_decode(c, &sub, m, c->z, diag);
        if (rc) return rc;
        r->off = sub.len;
        unpredict(pred, mk_unzigzag(base), c->z, n, c->k, vals, e);
        rc = int_decode(c, r, n, c->z, diag);
        if (rc) return rc;
        for (uint32_t i = 0; i < n; i++)
            vals[i] = mk_bits_f64(mk_f64_bits(vals[i]) + (uint64_t)mk_unzigzag(c->z[i]));
    }
    rd er = *r;
    er.off = exc_off;
    uint64_t pos = (uint64_t)-1;
    for (uint64_t i = 0; i < n_exc; i++) {
        uint64_t gap = 0, raw = 0;
        rd_uvarint(&er, &gap, diag); /* validated above */
        rd_u64(&er, &raw, diag);
        if (gap >= n || (pos = pos + 1 + gap) >= n) return rd_corrupt(&er, diag, "exception position past the end");
        vals[pos] = mk_bits_f64(raw);
    }
    return MK_OK;
}

/* ------------------------------------------------------------------ */
/* Gorilla XOR values                                                  */

/*
 * VAL_XOR column, a bit stream (bits.h order), padded to a byte:
 *   value 0: 64 bits; value i: '0' (same bits) | '10' + m bits in the
 *   previous window | '11' + 5 bits leading + 6 bits m (64 as 0) + m bits.
 * (The same value coding as the head's xorchunk.c.)
 */
static mk_err xor_encode(const double *vals, uint32_t n, mk_buf *out)
{
    size_t max_bytes = ((size_t)n * 77 + 64) / 8 + PAD;
    mk_err rc = mk_buf_reserve(out, max_bytes);
    if (rc) return rc;
    uint8_t *p = out->data + out->len;
    memset(p, 0, max_bytes);
    uint64_t pos = 0, last = mk_f64_bits(vals[0]);
    unsigned leading = 0xff, trailing = 0;
    mk_bits_put(p, pos, last, 64);
    pos += 64;
    for (uint32_t i = 1; i < n; i++) {
        uint64_t b = mk_f64_bits(vals[i]), x = b ^ last;
        last = b;
        if (!x) {
            pos += 1;
            continue;
        }
        unsigned lead = (unsigned)__builtin_clzll(x), trail = (unsigned)__builtin_ctzll(x);
        if (lead > 31) lead = 31;
        if (lead >= leading && trail >= trailing) {
            mk_bits_put(p, pos, 0x1, 2);
            mk_bits_put(p, pos + 2, x >> trailing, 64 - leading - trailing);
            pos += 2 + 64 - leading - trailing;
        } else {
            unsigned m = 64 - lead - trail;
            mk_bits_put(p, pos, 0x3 | (lead << 2) | ((m & 63) << 7), 13);
            mk_bits_put(p, pos + 13, x >> trail, m);
            pos += 13 + m;
            leading = lead;
            trailing = trail;
        }
    }
    out->len += (size_t)((pos + 7) >> 3);
    return MK_OK;
}

static mk_err xor_decode(rd *r, uint32_t n, double *vals, mk_diag *diag)
{
    mk_bits_rd br;
    mk_bits_rd_init(&br, r->p + r->off, r->len - r->off);
    uint64_t v = mk_bits_rd_get(&br, 64);
    vals[0] = mk_bits_f64(v);
    unsigned leading = 0, trailing = 0;
    int has_window = 0;
    for (uint32_t i = 1; i < n && !br.is_overrun; i++) {
        uint64_t w = mk_bits_rd_peek(&br);
        if (!(w & 1)) {
            mk_bits_rd_skip(&br, 1);
        } else if (!(w & 2)) {
            if (!has_window) return rd_corrupt(r, diag, "XOR window reused before it was set");
            mk_bits_rd_skip(&br, 2);
            v ^= mk_bits_rd_get(&br, 64 - leading - trailing) << trailing;
        } else {
            unsigned lead = (unsigned)((w >> 2) & 31), m = (unsigned)((w >> 7) & 63);
            if (!m) m = 64;
            if (lead + m > 64) return rd_corrupt(r, diag, "XOR window wider than 64 bits");
            leading = lead;
            trailing = 64 - lead - m;
            has_window = 1;
            mk_bits_rd_skip(&br, 13);
            v ^= mk_bits_rd_get(&br, m) << trailing;
        }
        vals[i] = mk_bits_f64(v);
    }
    if (br.is_overrun) return rd_corrupt(r, diag, "XOR stream truncated");
    if ((br.pos + 7) >> 3 != br.len) return rd_corrupt(r, diag, "bytes after the XOR stream");
    r->off = r->len;
    return MK_OK;
}

/* ------------------------------------------------------------------ */
/* Value columns                                                       */

static mk_err val_encode(mk_codec *c, const double *vals, uint32_t n, mk_buf *out, uint8_t *id)
{
    int want = forced(c, c->force.val_codec) ? c->force.val_codec : -1;
    uint64_t b0 = mk_f64_bits(vals[0]);
    int is_const = 1;
    for (uint32_t i = 1; i < n && is_const; i++) is_const = mk_f64_bits(vals[i]) == b0;
    if (want == MK_CODEC_VAL_CONST && !is_const) return MK_EINVAL;
    if (want < 0 && is_const) {
        /* A small decimal constant is cheaper as a scaled column with an
         * all-zero residual stream (~5 bytes) than as 8 raw bytes. */
        size_t start = out->len;
        mk_err rc = scaled_encode(c, vals, n, out);
        if (rc && rc != MK_ENOTFOUND) return rc;
        if (!rc && out->len - start < 8) {
            *id = MK_CODEC_VAL_SCALED;
            return MK_OK;
        }
        out->len = start;
        want = MK_CODEC_VAL_CONST;
    }
    if (want == MK_CODEC_VAL_CONST) {
        mk_err rc = mk_buf_reserve(out, 8);
        if (rc) return rc;
        mk_put_u64(out->data + out->len, b0);
        out->len += 8;
        *id = MK_CODEC_VAL_CONST;
        return MK_OK;
    }
    if (want == MK_CODEC_VAL_RAW || want == MK_CODEC_VAL_XOR || want == MK_CODEC_VAL_SCALED) {
        *id = (uint8_t)want;
        if (want == MK_CODEC_VAL_SCALED) return scaled_encode(c, vals, n, out);
        if (want == MK_CODEC_VAL_XOR) return xor_encode(vals, n, out);
        return mk_buf_append(out, vals, (size_t)n * 8);
    }
    /* Choose by size: scaled first (the usual winner and the fastest to
     * decode); XOR only when scaled is missing or weak. */
    size_t start = out->len;
    size_t best = (size_t)n * 8; /* raw */
    uint8_t best_id = MK_CODEC_VAL_RAW;
    mk_err rc = scaled_encode(c, vals, n, out);
    if (rc && rc != MK_ENOTFOUND) return rc;
    if (!rc && out->len - start < best) {
        best = out->len - start;
        best_id = MK_CODEC_VAL_SCALED;
    }
    if (best > (size_t)n * 2) {
        c->alt.len = 0;
        rc = xor_encode(vals, n, &c->alt);
        if (rc) return rc;
        if (c->alt.len < best) {
            best = c->alt.len;
            best_id = MK_CODEC_VAL_XOR;
            out->len = start;
            rc = mk_buf_append(out, c->alt.data, c->alt.len);
            if (rc) return rc;
        }
    }
    if (best_id == MK_CODEC_VAL_RAW) {
        out->len = start;
        rc = mk_buf_append(out, vals, (size_t)n * 8);
        if (rc) return rc;
    }
    *id = best_id;
    return MK_OK;
}

static mk_err val_decode(mk_codec *c, uint8_t id, rd *r, uint32_t n, double *vals, mk_diag *diag)
{
    switch (id) {
    case MK_CODEC_VAL_CONST: {
        uint64_t b = 0;
        mk_err rc = rd_u64(r, &b, diag);
        if (rc) return rc;
        if (r->off != r->len) return rd_corrupt(r, diag, "bytes after a constant value");
        double v = mk_bits_f64(b);
        for (uint32_t i = 0; i < n; i++) vals[i] = v;
        return MK_OK;
    }
    case MK_CODEC_VAL_RAW:
        if (r->len - r->off != (size_t)n * 8) return rd_corrupt(r, diag, "raw values have the wrong size");
        memcpy(vals, r->p + r->off, (size_t)n * 8);
        r->off = r->len;
        return MK_OK;
    case MK_CODEC_VAL_XOR:
        return xor_decode(r, n, vals, diag);
    case MK_CODEC_VAL_SCALED:
        return scaled_decode(c, r, n, vals, diag);
    default:
        return rd_corrupt(r, diag, "unknown value codec");
    }
}

/* ------------------------------------------------------------------ */
/* Payload                                                             */

/* Optional whole-column zstd stage: "uvarint raw_len | frame" replaces col
 * when smaller (or always, when forced). */
static mk_err maybe_zstd(mk_codec *c, mk_buf *col, uint8_t *id, int is_worth_trying)
{
    int want = c->has_force ? c->force.zstd : c->is_fast_decode ? 0 : -1;
    if (want == 0 || (want < 0 && (col->len < 48 || !is_worth_trying))) return MK_OK;
    size_t limit = want > 0 ? (size_t)-1 : col->len - uvarint_len(col->len);
    if (zstd_squeeze(c, col->data, col->len, &c->tmp, limit)) return MK_OK;
    size_t raw_len = col->len;
    col->len = 0;
    mk_err rc = put_uvarint(col, raw_len);
    if (!rc) rc = mk_buf_append(col, c->tmp.data, c->tmp.len);
    if (!rc) *id |= MK_CODEC_ZSTD_FLAG;
    return rc;
}

mk_err mk_codec_encode(mk_codec *c, const int64_t *ts, const double *vals, uint32_t n, mk_buf *out,
                       mk_chunk_summary *sum)
{
    if (!c || !ts || !vals || !out || n < 1 || n > NMAX) return MK_EINVAL;
    /* Strictly increasing timestamps, and whether every step equals the
     * first (TS_CONST), in one pass. */
    uint64_t d1 = n >= 2 ? (uint64_t)ts[1] - (uint64_t)ts[0] : 0;
    int is_regular = 1;
    for (uint32_t i = 1; i < n; i++) {
        if (ts[i] <= ts[i - 1]) return MK_EINVAL;
        is_regular &= (uint64_t)ts[i] - (uint64_t)ts[i - 1] == d1;
    }
    uint8_t ts_id = 0, val_id = 0;
    c->col_ts.len = 0;
    c->col_val.len = 0;
    c->last_int_mode = -1;
    mk_err rc = ts_encode(c, ts, n, is_regular, &c->col_ts, &ts_id);
    c->ts_int_mode = c->last_int_mode;
    c->last_int_mode = -1;
    if (!rc) rc = val_encode(c, vals, n, &c->col_val, &val_id);
    c->val_int_mode = c->last_int_mode;
    /* A column that ends in an entropy-coded stream rarely gains from zstd:
     * try it only on bit-packed and raw ones (it finds repeats in those). */
    if (!rc) rc = maybe_zstd(c, &c->col_ts, &ts_id, ts_id == MK_CODEC_TS_DOD && c->ts_int_mode == MK_CODEC_INT_PACK);
    if (!rc) rc = maybe_zstd(c, &c->col_val, &val_id,
                             val_id != MK_CODEC_VAL_SCALED || c->val_int_mode == MK_CODEC_INT_PACK);
    if (rc) return rc;
    size_t start = out->len;
    rc = put_u8(out, ts_id);
    if (!rc) rc = put_u8(out, val_id);
    if (!rc) rc = put_uvarint(out, n);
    if (!rc) rc = put_uvarint(out, c->col_ts.len);
    if (!rc) rc = mk_buf_append(out, c->col_ts.data, c->col_ts.len);
    if (!rc) rc = mk_buf_append(out, c->col_val.data, c->col_val.len);
    if (rc) {
        out->len = start;
        return rc;
    }
    if (sum) mk_codec_summarise(ts, vals, n, sum);
    return MK_OK;
}

/* Reads the fixed header; on success r is positioned at the ts column. */
static mk_err read_header(const uint8_t *p, size_t len, rd *r, uint8_t *ts_id, uint8_t *val_id,
                          uint32_t *n, uint64_t *ts_len, mk_diag *diag)
{
    uint64_t n64 = 0;
    *r = (rd){.p = p, .len = len};
    mk_err rc = rd_u8(r, ts_id, diag);
    if (!rc) rc = rd_u8(r, val_id, diag);
    if (!rc) rc = rd_uvarint(r, &n64, diag);
    if (rc) return rc;
    if (n64 < 1 || n64 > NMAX) return rd_corrupt(r, diag, "sample count out of range");
    rc = rd_uvarint(r, ts_len, diag);
    if (rc) return rc;
    if (*ts_len > r->len - r->off) return rd_corrupt(r, diag, "timestamp column past the end");
    *n = (uint32_t)n64;
    return MK_OK;
}

mk_err mk_codec_count(const uint8_t *p, size_t len, uint32_t *n, mk_diag *diag)
{
    rd r;
    uint8_t a, b;
    uint64_t tl;
    if (!p && len) return MK_EINVAL;
    return read_header(p, len, &r, &a, &b, n, &tl, diag);
}

mk_err mk_codec_ids(const uint8_t *p, size_t len, uint8_t *ts_codec, uint8_t *val_codec)
{
    if (!p || len < 2) return MK_ECORRUPT;
    *ts_codec = p[0];
    *val_codec = p[1];
    return MK_OK;
}

/* Positions cr over one column [off, off + len) of the payload, undoing a
 * zstd stage into c->inner when the id says so. */
static mk_err open_column(mk_codec *c, const rd *pr, size_t off, size_t len, uint8_t id,
                          uint32_t n, rd *cr, mk_diag *diag)
{
    *cr = (rd){.p = pr->p + off, .len = len, .base = off};
    if (!(id & MK_CODEC_ZSTD_FLAG)) return MK_OK;
    uint64_t raw_len = 0;
    mk_err rc = rd_uvarint(cr, &raw_len, diag);
    if (rc) return rc;
    if (raw_len > COL_RAW_MAX(n)) return rd_corrupt(cr, diag, "zstd stage size out of range");
    c->inner.len = 0;
    /* inner is shared by both columns: the ts column is decoded before the
     * value column is opened. */
    if (mk_buf_reserve(&c->inner, (size_t)raw_len + 1)) return MK_ENOMEM;
    rc = zstd_expand(c, cr->p + cr->off, len - cr->off, c->inner.data, (size_t)raw_len);
    if (rc == MK_ENOMEM) return rc;
    if (rc) return rd_corrupt(cr, diag, "zstd stage does not decode");
    *cr = (rd){.p = c->inner.data, .len = (size_t)raw_len, .base = off, .is_inner = 1};
    return MK_OK;
}

/* The value column of a payload read by r (its header read), from
 * val_off to the payload's end len; val_id checked known already. */
static mk_err values_decode(mk_codec *c, const rd *r, size_t val_off, size_t len, uint8_t val_id, uint32_t cnt, double *vals,
                            mk_diag *diag)
{
    rd cr;
    mk_err rc = open_column(c, r, val_off, len - val_off, val_id, cnt, &cr, diag);
    if (!rc) rc = val_decode(c, val_id & (uint8_t)~MK_CODEC_ZSTD_FLAG, &cr, cnt, vals, diag);
    if (!rc && cr.off != cr.len) rc = rd_corrupt(&cr, diag, "bytes after the value column");
    return rc;
}

mk_err mk_codec_decode(mk_codec *c, const uint8_t *p, size_t len, int64_t *ts, double *vals,
                       uint32_t cap, uint32_t *n, mk_diag *diag)
{
    rd r, cr;
    uint8_t ts_id = 0, val_id = 0; /* set by read_header; initialised for -O3 -Werror=maybe-uninitialized */
    uint32_t cnt;
    uint64_t ts_len;
    if (!c || (!p && len) || !n) return MK_EINVAL;
    *n = 0;
    mk_err rc = read_header(p, len, &r, &ts_id, &val_id, &cnt, &ts_len, diag);
    if (rc) return rc;
    if (cnt > cap)
        return mk_diag_set(diag, MK_EINVAL, "chunk payload: %u samples do not fit a buffer of %u", cnt, cap);
    uint8_t tsc = ts_id & (uint8_t)~MK_CODEC_ZSTD_FLAG;
    if (tsc != MK_CODEC_TS_DOD && tsc != MK_CODEC_TS_CONST)
        return MK_CORRUPT(diag, "chunk payload", 0, "unknown timestamp codec");
    uint8_t vc = val_id & (uint8_t)~MK_CODEC_ZSTD_FLAG;
    if (vc < MK_CODEC_VAL_XOR || vc > MK_CODEC_VAL_RAW)
        return MK_CORRUPT(diag, "chunk payload", 1, "unknown value codec");
    size_t ts_off = r.off;
    rc = open_column(c, &r, ts_off, (size_t)ts_len, ts_id, cnt, &cr, diag);
    if (!rc) rc = ts_decode(c, tsc, &cr, cnt, ts, diag);
    if (!rc) rc = values_decode(c, &r, ts_off + (size_t)ts_len, len, val_id, cnt, vals, diag);
    if (rc) return rc;
    *n = cnt;
    return MK_OK;
}

mk_err mk_codec_decode_values(mk_codec *c, const uint8_t *p, size_t len, const uint8_t *same_ts, size_t same_len,
                              double *vals, uint32_t cap, uint32_t *n, mk_diag *diag)
{
    rd r, r2;
    uint8_t ts_id = 0, val_id = 0, ts_id2 = 0, val_id2 = 0;
    uint32_t cnt, cnt2;
    uint64_t ts_len, ts_len2;
    if (!c || (!p && len) || !n || (!same_ts && same_len)) return MK_EINVAL;
    *n = 0;
    /* the other payload was decoded: its header reads */
    if (read_header(same_ts, same_len, &r2, &ts_id2, &val_id2, &cnt2, &ts_len2, NULL)) return MK_ENOTFOUND;
    mk_err rc = read_header(p, len, &r, &ts_id, &val_id, &cnt, &ts_len, diag);
    if (rc) return rc;
    /* the same count and timestamp column (its length and bytes): the
     * same timestamps */
    if (ts_id != ts_id2 || cnt != cnt2 || ts_len != ts_len2 || memcmp(p + r.off, same_ts + r2.off, (size_t)ts_len))
        return MK_ENOTFOUND;
    if (cnt > cap)
        return mk_diag_set(diag, MK_EINVAL, "chunk payload: %u samples do not fit a buffer of %u", cnt, cap);
    uint8_t vc = val_id & (uint8_t)~MK_CODEC_ZSTD_FLAG;
    if (vc < MK_CODEC_VAL_XOR || vc > MK_CODEC_VAL_RAW)
        return MK_CORRUPT(diag, "chunk payload", 1, "unknown value codec");
    rc = values_decode(c, &r, r.off + (size_t)ts_len, len, val_id, cnt, vals, diag);
    if (rc) return rc;
    *n = cnt;
    return MK_OK;
}

const char *mk_codec_name(uint8_t id)
{
    switch (id) {
    case MK_CODEC_TS_DOD: return "dod";
    case MK_CODEC_TS_DOD | MK_CODEC_ZSTD_FLAG: return "dod+zstd";
    case MK_CODEC_TS_CONST: return "const-step";
    case MK_CODEC_TS_CONST | MK_CODEC_ZSTD_FLAG: return "const-step+zstd";
    case MK_CODEC_VAL_XOR: return "xor";
    case MK_CODEC_VAL_XOR | MK_CODEC_ZSTD_FLAG: return "xor+zstd";
    case MK_CODEC_VAL_SCALED: return "scaled";
    case MK_CODEC_VAL_SCALED | MK_CODEC_ZSTD_FLAG: return "scaled+zstd";
    case MK_CODEC_VAL_CONST: return "const";
    case MK_CODEC_VAL_CONST | MK_CODEC_ZSTD_FLAG: return "const+zstd";
    case MK_CODEC_VAL_RAW: return "raw";
    case MK_CODEC_VAL_RAW | MK_CODEC_ZSTD_FLAG: return "raw+zstd";
    default: return "unknown";
    }
}

void mk_codec_summarise(const int64_t *ts, const double *vals, uint32_t n, mk_chunk_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    sum->count = n;
    if (!n) return;
    sum->first_ts_ms = ts[0];
    sum->last_ts_ms = ts[n - 1];
    sum->first = vals[0];
    sum->last = vals[n - 1];
    /* NaN is left out; with no other value min and max are NaN (which
     * fmin/fmax then ignore when summaries are merged). */
    /* Fast pass without NaN tests: with no NaN among the values it does
     * exactly what the careful loop below does (same sums in the same
     * order; v < mn ? v : mn keeps mn on ties, -0.0 included, like
     * !(v >= mn)). A NaN value makes the sum NaN, and then (or when
     * inf - inf made it NaN) the careful loop decides. */
    double mn = vals[0], mx = vals[0], s = 0, s2 = 0;
    for (uint32_t i = 0; i < n; i++) {
        double v = vals[i];
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        s += v;
        s2 += v * v;
    }
    if (!isnan(s) && !isnan(s2)) {
        sum->min = mn;
        sum->max = mx;
        sum->sum = s;
        sum->sumsq = s2;
        return;
    }
    mn = NAN, mx = NAN, s = 0, s2 = 0;
    for (uint32_t i = 0; i < n; i++) {
        double v = vals[i];
        if (isnan(v)) continue;
        if (!(v >= mn)) mn = v; /* true when mn is still NaN */
        if (!(v <= mx)) mx = v;
        s += v;
        s2 += v * v;
    }
    sum->min = mn;
    sum->max = mx;
    sum->sum = s;
    sum->sumsq = s2;
}

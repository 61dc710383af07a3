/*
 * engine/bits.h — LSB-first bit streams shared by the head's Gorilla chunk
 * (xorchunk.c) and the block codecs (codec.c).
 *
 * Bit order: bit i of the stream is bit (i & 7) of byte (i >> 3); a field
 * of nb bits written at bit position pos puts its least significant bit at
 * pos. This order lets a reader fetch a whole field with one unaligned
 * little-endian 64-bit load and a shift, and lets prefix codes be tested on
 * the low bits of that load.
 *
 * Three pieces:
 *  - the unchecked mk_bits_put/mk_bits_get for buffers we own, whose caller
 *    guarantees 9 readable (and, for put, zeroed) bytes from (pos >> 3);
 *  - mk_bits_w, a growable writer keeping that guarantee itself;
 *  - mk_bits_rd, a reader over untrusted bytes that never loads outside
 *    [p, p + len): past the end it reads zeros and sets is_overrun, which
 *    the caller turns into MK_ECORRUPT.
 */
#ifndef MK_BITS_H
#define MK_BITS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "util.h"

/* Mask of the low nb bits, nb in 0..64. */
static inline uint64_t mk_bits_mask(unsigned nb)
{
    return nb >= 64 ? ~0ull : ((1ull << nb) - 1);
}

/* Number of bits needed to hold v (0 for v == 0). */
static inline unsigned mk_bits_width(uint64_t v)
{
    return v ? 64u - (unsigned)__builtin_clzll(v) : 0u;
}

/*
 * ORs the low nb bits of v (nb <= 64; v must have no bits at or above nb)
 * into buf at bit position pos. Needs buf[(pos >> 3) .. (pos >> 3) + 8]
 * allocated, and every bit at or after pos zero.
 */
static inline void mk_bits_put(uint8_t *buf, uint64_t pos, uint64_t v, unsigned nb)
{
    uint8_t *p = buf + (pos >> 3);
    unsigned sh = (unsigned)(pos & 7);
    mk_put_u64(p, mk_get_u64(p) | (v << sh));
    /* sh + nb > 64 implies sh >= 1, so the shift below is in range. */
    if (sh + nb > 64) p[8] |= (uint8_t)(v >> (64 - sh));
}

/* Reads nb bits (nb <= 64) at bit position pos. Needs 9 readable bytes from
 * (pos >> 3). */
static inline uint64_t mk_bits_get(const uint8_t *buf, uint64_t pos, unsigned nb)
{
    const uint8_t *p = buf + (pos >> 3);
    unsigned sh = (unsigned)(pos & 7);
    uint64_t w = mk_get_u64(p) >> sh;
    if (sh + nb > 64) w |= (uint64_t)p[8] << (64 - sh);
    return w & mk_bits_mask(nb);
}

/*
 * Growable bit writer for encoders; the bytes it owns past the write
 * position are kept zero, with at least 16 bytes of slack so mk_bits_put is
 * always in bounds. Fields are at most 64 bits.
 */
typedef struct mk_bits_w {
    uint8_t *buf;
    size_t cap;   /* bytes allocated */
    uint64_t pos; /* bits written */
} mk_bits_w;

/* Ensures room for extra_bits more bits (plus slack). MK_ENOMEM on failure. */
static inline mk_err mk_bits_w_reserve(mk_bits_w *w, uint64_t extra_bits)
{
    uint64_t need = ((w->pos + extra_bits + 7) >> 3) + 16;
    if (need <= w->cap) return MK_OK;
    if (need > SIZE_MAX / 2) return MK_ENOMEM;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(w->buf, cap);
    if (!p) return MK_ENOMEM;
    memset(p + w->cap, 0, cap - w->cap);
    w->buf = p;
    w->cap = cap;
    return MK_OK;
}

static inline void mk_bits_w_put(mk_bits_w *w, uint64_t v, unsigned nb)
{
    mk_bits_put(w->buf, w->pos, v, nb);
    w->pos += nb;
}

static inline size_t mk_bits_w_bytes(const mk_bits_w *w) { return (size_t)((w->pos + 7) >> 3); }

static inline void mk_bits_w_free(mk_bits_w *w)
{
    free(w->buf);
    w->buf = NULL;
    w->cap = 0;
    w->pos = 0;
}

/* Bounds-checked reader over untrusted bytes. */
typedef struct mk_bits_rd {
    const uint8_t *p;
    size_t len;      /* bytes */
    uint64_t pos;    /* bits consumed */
    uint64_t n_bits; /* len * 8 */
    int is_overrun;  /* a read went past the end: the stream is corrupt */
} mk_bits_rd;

static inline void mk_bits_rd_init(mk_bits_rd *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
    r->n_bits = (uint64_t)len * 8;
    r->is_overrun = 0;
}

/* Loads 8 bytes at byte offset off, zero-filling past len. */
static inline uint64_t mk_bits_load_safe(const uint8_t *p, size_t len, size_t off)
{
    if (off + 8 <= len) return mk_get_u64(p + off);
    uint8_t tmp[8] = {0};
    if (off < len) memcpy(tmp, p + off, len - off);
    return mk_get_u64(tmp);
}

/* Next 57..64 bits at the read position, without consuming them: at least
 * 57 valid low bits (zeros past the end). */
static inline uint64_t mk_bits_rd_peek(const mk_bits_rd *r)
{
    size_t off = (size_t)(r->pos >> 3);
    return mk_bits_load_safe(r->p, r->len, off) >> (r->pos & 7);
}

/* Consumes nb bits; marks an overrun if that passes the end. */
static inline void mk_bits_rd_skip(mk_bits_rd *r, unsigned nb)
{
    r->pos += nb;
    if (r->pos > r->n_bits) r->is_overrun = 1;
}

/* Reads nb bits (nb <= 64). */
static inline uint64_t mk_bits_rd_get(mk_bits_rd *r, unsigned nb)
{
    uint64_t v;
    if (nb <= 56) {
        v = mk_bits_rd_peek(r) & mk_bits_mask(nb);
    } else {
        uint64_t lo = mk_bits_rd_peek(r) & mk_bits_mask(32);
        r->pos += 32;
        uint64_t hi = mk_bits_rd_peek(r) & mk_bits_mask(nb - 32);
        r->pos -= 32;
        v = lo | (hi << 32);
    }
    mk_bits_rd_skip(r, nb);
    return v;
}

#endif

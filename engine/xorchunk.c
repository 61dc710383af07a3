/*
 * engine/xorchunk.c — the head's growing Gorilla chunk (see xorchunk.h).
 *
 * Stream layout (bits, LSB-first as in bits.h; fields are written low bit
 * first, so a prefix code is read from the low bits of a 64-bit load):
 *
 *   sample 0:  ts     64 bits, two's complement
 *              value  64 bits, the IEEE-754 bit pattern
 *   sample i:  dod    delta-of-delta of the timestamp, computed modulo 2^64
 *                     (delta_i = ts_i - ts_{i-1}, delta_0 = 0), one of
 *                       '0'                      dod == 0            1 bit
 *                       '10'   + 14 bits signed  -2^13 <= dod < 2^13 16 bits
 *                       '110'  + 17 bits signed  -2^16 <= dod < 2^16 20 bits
 *                       '1110' + 20 bits signed  -2^19 <= dod < 2^19 24 bits
 *                       '1111' + 64 bits         anything            68 bits
 *              value  x = bits_i XOR bits_{i-1}, one of
 *                       '0'                      x == 0
 *                       '10'  + m bits           x's meaningful bits fit the
 *                                                previous window (m = 64 -
 *                                                leading - trailing of it)
 *                       '11'  + 5 bits leading (capped at 31) + 6 bits
 *                             m (64 stored as 0) + m bits
 *   (The prefix strings are in reading order: '10' is bit 1 then bit 0.)
 *
 * The full-width timestamp escape carries any dod, so timestamps may jump
 * across the whole int64 range: all timestamp arithmetic is done in uint64
 * (wrapping), which makes encode and decode exact inverses.
 *
 * Invariants of a non-empty mk_xor:
 *  - every bit at or after n_bits in bits[0..cap_bytes) is zero, so
 *    mk_bits_put can OR fields in;
 *  - cap_bytes >= (n_bits >> 3) + XOR_SLACK - XOR_MAX_SAMPLE_BYTES, i.e.
 *    after any append there are still >= 9 bytes past the last written
 *    byte, so the decoder's 9-byte loads stay inside the allocation;
 *  - leading is 0xff before the first XOR window exists, so the first
 *    non-zero XOR always writes a new window.
 */
#include "xorchunk.h"

#include <stdlib.h>

#include "bits.h"

/* A sample takes at most 68 (ts) + 2 + 11 + 64 (value) = 145 bits = 19 bytes. */
#define XOR_MAX_SAMPLE_BYTES 19
/* Room an append demands past the current byte: one worst-case sample plus
 * the 9 bytes a 64-bit load/store at the last byte touches, rounded up. */
#define XOR_SLACK 32
/* First allocation and smallest growth step, in bytes. */
#define XOR_MIN_GROW 32

static mk_err xor_grow(mk_xor *c)
{
    uint64_t need = ((uint64_t)c->n_bits >> 3) + XOR_SLACK;
    if (need <= c->cap_bytes) return MK_OK;
    /* Grow by 25% (at least XOR_MIN_GROW bytes): the chunk lives once per
     * active series, so a doubling policy would waste a third on average. */
    uint64_t step = c->cap_bytes / 4;
    if (step < XOR_MIN_GROW) step = XOR_MIN_GROW;
    uint64_t cap = (uint64_t)c->cap_bytes + step;
    if (cap < need) cap = need;
    if (cap > UINT32_MAX) return MK_ELIMIT;
    uint8_t *p = realloc(c->bits, (size_t)cap);
    if (!p) return MK_ENOMEM;
    memset(p + c->cap_bytes, 0, (size_t)(cap - c->cap_bytes));
    c->bits = p;
    c->cap_bytes = (uint32_t)cap;
    return MK_OK;
}

static inline void xor_put(mk_xor *c, uint64_t v, unsigned nb)
{
    mk_bits_put(c->bits, c->n_bits, v, nb);
    c->n_bits += nb;
}

mk_err mk_xor_append(mk_xor *c, int64_t ts, double v)
{
    uint64_t vb = mk_f64_bits(v);
    if (c->count > 0 && ts <= c->last_ts) return MK_EINVAL;
    /* n_bits is 32-bit: refuse before it could wrap (a 512 MiB chunk). */
    if (c->count == UINT32_MAX || c->n_bits > UINT32_MAX - 8 * XOR_SLACK) return MK_ELIMIT;
    mk_err rc = xor_grow(c);
    if (rc) return rc;

    if (c->count == 0) {
        xor_put(c, (uint64_t)ts, 64);
        xor_put(c, vb, 64);
        c->first_ts = ts;
        c->last_ts = ts;
        c->last_delta = 0;
        c->last_bits = vb;
        c->leading = 0xff;
        c->trailing = 0;
        c->count = 1;
        return MK_OK;
    }

    /* Timestamp. Wrapping uint64 arithmetic: delta may exceed INT64_MAX. */
    uint64_t delta = (uint64_t)ts - (uint64_t)c->last_ts;
    uint64_t dod_u = delta - (uint64_t)c->last_delta;
    int64_t dod = (int64_t)dod_u;
    if (dod == 0) {
        xor_put(c, 0, 1);
    } else if (dod >= -(1 << 13) && dod < (1 << 13)) {
        xor_put(c, 0x1 | ((dod_u & mk_bits_mask(14)) << 2), 16);
    } else if (dod >= -(1 << 16) && dod < (1 << 16)) {
        xor_put(c, 0x3 | ((dod_u & mk_bits_mask(17)) << 3), 20);
    } else if (dod >= -(1 << 19) && dod < (1 << 19)) {
        xor_put(c, 0x7 | ((dod_u & mk_bits_mask(20)) << 4), 24);
    } else {
        xor_put(c, 0xf, 4);
        xor_put(c, dod_u, 64);
    }
    c->last_ts = ts;
    c->last_delta = (int64_t)delta;

    /* Value. */
    uint64_t x = vb ^ c->last_bits;
    c->last_bits = vb;
    if (x == 0) {
        xor_put(c, 0, 1);
    } else {
        unsigned lead = (unsigned)__builtin_clzll(x);
        unsigned trail = (unsigned)__builtin_ctzll(x);
        if (lead > 31) lead = 31; /* 5-bit field; the excess is sent as meaningful bits */
        if (lead >= c->leading && trail >= c->trailing) {
            unsigned m = 64u - c->leading - c->trailing;
            xor_put(c, 0x1, 2);
            xor_put(c, x >> c->trailing, m);
        } else {
            unsigned m = 64u - lead - trail;
            xor_put(c, 0x3 | ((uint64_t)lead << 2) | ((uint64_t)(m & 63) << 7), 13);
            xor_put(c, x >> trail, m);
            c->leading = (uint8_t)lead;
            c->trailing = (uint8_t)trail;
        }
    }
    c->count++;
    return MK_OK;
}

void mk_xor_free(mk_xor *c)
{
    free(c->bits);
    memset(c, 0, sizeof *c);
}

size_t mk_xor_bytes(const mk_xor *c) { return c->cap_bytes; }

/* Sign-extends the low nb bits of v (higher bits of v are ignored). */
static inline int64_t sext(uint64_t v, unsigned nb)
{
    uint64_t m = 1ull << (nb - 1);
    return (int64_t)(((v & mk_bits_mask(nb)) ^ m) - m);
}

void mk_xor_decode(const mk_xor *c, int64_t *ts, double *vals)
{
    if (c->count == 0) return;
    const uint8_t *b = c->bits;
    uint64_t pos = 0;
    uint64_t t = mk_bits_get(b, 0, 64);
    uint64_t vb = mk_bits_get(b, 64, 64);
    pos = 128;
    ts[0] = (int64_t)t;
    vals[0] = mk_bits_f64(vb);
    uint64_t delta = 0;
    unsigned leading = 0, trailing = 0;
    for (uint32_t i = 1; i < c->count; i++) {
        /* At least 57 valid bits: enough for every prefix and the short
         * dod payloads; the 64-bit escape is read separately. */
        uint64_t w = mk_bits_get(b, pos, 57);
        if (!(w & 1)) {
            pos += 1;
        } else if (!(w & 2)) {
            delta += (uint64_t)sext(w >> 2, 14);
            pos += 16;
        } else if (!(w & 4)) {
            delta += (uint64_t)sext(w >> 3, 17);
            pos += 20;
        } else if (!(w & 8)) {
            delta += (uint64_t)sext(w >> 4, 20);
            pos += 24;
        } else {
            delta += mk_bits_get(b, pos + 4, 64);
            pos += 68;
        }
        t += delta;
        ts[i] = (int64_t)t;

        w = mk_bits_get(b, pos, 57);
        if (!(w & 1)) {
            pos += 1;
        } else if (!(w & 2)) {
            unsigned m = 64u - leading - trailing;
            vb ^= mk_bits_get(b, pos + 2, m) << trailing;
            pos += 2 + m;
        } else {
            leading = (unsigned)((w >> 2) & 31);
            unsigned m = (unsigned)((w >> 7) & 63);
            if (m == 0) m = 64;
            trailing = 64u - leading - m;
            vb ^= mk_bits_get(b, pos + 13, m) << trailing;
            pos += 13 + m;
        }
        vals[i] = mk_bits_f64(vb);
    }
}

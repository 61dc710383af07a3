/*
 * engine/xorchunk.h — the head's open chunk: a Gorilla bitstream
 * (delta-of-delta timestamps, XOR'd values; Pelkonen et al., VLDB 2015) that
 * grows one sample at a time. One per active series, so the struct is small
 * and the stream grows in small steps.
 *
 * Invariant: samples are appended with strictly increasing timestamps; the
 * caller routes anything else to the out-of-order path.
 * Thread rules: none inside; the head's lock protects it.
 */
#ifndef MK_XORCHUNK_H
#define MK_XORCHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/error.h"

typedef struct mk_xor {
    uint8_t *bits;         /* malloc'ed stream */
    uint32_t cap_bytes;    /* allocated bytes of bits */
    uint32_t n_bits;       /* bits written */
    uint32_t count;        /* samples appended */
    uint8_t leading, trailing; /* of the last XOR window */
    int64_t first_ts;
    int64_t last_ts;
    int64_t last_delta;
    uint64_t last_bits;    /* bit pattern of the last value */
} mk_xor;

/* Zero-initialised mk_xor is an empty chunk. */
mk_err mk_xor_append(mk_xor *c, int64_t ts, double v); /* ts > last_ts when count > 0 */
void mk_xor_free(mk_xor *c);                            /* back to empty */
size_t mk_xor_bytes(const mk_xor *c);                   /* heap bytes held */

/* Decodes every sample of c into ts[0..c->count), vals[0..c->count). */
void mk_xor_decode(const mk_xor *c, int64_t *ts, double *vals);

#endif

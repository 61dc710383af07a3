/*
 * engine/codec_internal.h — knobs of the chunk codec for tests, the fuzz
 * target and the benchmark. Not part of the engine's interface: nothing in
 * the engine proper includes this.
 *
 * A forced choice makes mk_codec_encode use that codec/transform instead of
 * picking by size, so every path of the decoder can be exercised. Forcing a
 * codec that cannot represent the data (CONST on varying values, TS_CONST
 * on irregular timestamps) makes mk_codec_encode return MK_EINVAL.
 */
#ifndef MK_CODEC_INTERNAL_H
#define MK_CODEC_INTERNAL_H

#include "codec.h"
#include "format.h"

typedef struct mk_codec_force {
    int ts_codec;  /* MK_CODEC_TS_* or -1 = choose */
    int val_codec; /* MK_CODEC_VAL_* or -1 */
    int pred;      /* MK_CODEC_PRED_* (format.h) or -1 (scaled codec only) */
    int int_mode;  /* MK_CODEC_INT_* (format.h) or -1; ZERO falls back when values are not all 0 */
    int int_k;     /* low-bit count of the RANS layout, or -1 */
    int zstd;      /* outer zstd stage: 1 = always, 0 = never, -1 = when smaller */
} mk_codec_force;

/* Sets (f != NULL) or clears (f == NULL) the forced choices of c. */
void mk_codec_set_force(mk_codec *c, const mk_codec_force *f);

/* The integer-stream layouts (MK_CODEC_INT_*, -1: none) of the timestamp
 * and value columns of the last payload c encoded. */
void mk_codec_last_int_modes(const mk_codec *c, int *ts_mode, int *val_mode);

/* zstd level of the whole-column zstd stage (default MK_CODEC_ZSTD_LEVEL). */
void mk_codec_set_zstd_level(mk_codec *c, int level);
#define MK_CODEC_ZSTD_LEVEL 9

#endif

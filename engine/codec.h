/*
 * engine/codec.h — chunk codecs for sealed blocks.
 *
 * A chunk holds 1..MK_CHUNK_MAX_SAMPLES samples of one series with strictly
 * increasing timestamps, as a timestamp column and a value column. Each
 * column's codec is chosen per chunk by encoded size (format.h codec ids),
 * optionally followed by a zstd stage where that pays. Encoding is lossless
 * to the bit: NaN payloads, -0.0, ±Inf and denormals come back identical.
 *
 * Byte layout: engine/FORMAT.md, section "Chunk payload".
 * Thread rules: an mk_codec context is used by one thread at a time.
 */
#ifndef MK_CODEC_H
#define MK_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/db.h"
#include "util.h"

typedef struct mk_codec mk_codec; /* scratch buffers and zstd contexts */

mk_err mk_codec_new(mk_codec **out);
void mk_codec_free(mk_codec *c); /* accepts NULL */

/* is_fast != 0: what c encodes from now on is laid out for decoding speed
 * before size: an integer stream is rANS-coded only where that saves at
 * least a fifth of its bit-packed size (rANS decodes several times slower
 * per value), and no column gets a zstd stage. Rollup tiers are written
 * so: read far more often than written, and small next to the raw data
 * (on the long-history bench the 5 min tier grows 10 %, the 1 h tier 5 %,
 * and the year's hourly mean from the 1 h tier and the 90-day hourly max
 * over 200 series decode in a fifth fewer instructions). Decoding needs no
 * setting: any payload decodes either way. */
void mk_codec_set_fast_decode(mk_codec *c, int is_fast);

/*
 * Encodes ts[0..n), vals[0..n) (1 <= n <= MK_CHUNK_MAX_SAMPLES, ts strictly
 * increasing) as one chunk payload appended to out, and fills *sum (NaN
 * values are left out of min/max/sum/sumsq; first/last are the values at the
 * first/last timestamps whatever they are). MK_EINVAL on bad input.
 */
mk_err mk_codec_encode(mk_codec *c, const int64_t *ts, const double *vals, uint32_t n, mk_buf *out,
                       mk_chunk_summary *sum);

/*
 * Decodes the values of payload p into vals[0..cap) when its timestamps are
 * byte for byte those of payload same_ts (a payload already decoded, whose
 * timestamps the caller has): *n = samples decoded. MK_ENOTFOUND (nothing
 * decoded, nothing set in diag) when the timestamp columns differ in any
 * byte, codec id or count; otherwise as mk_codec_decode. The columns of a
 * rollup chunk share their timestamps: one decode of them does for all.
 */
mk_err mk_codec_decode_values(mk_codec *c, const uint8_t *p, size_t len, const uint8_t *same_ts, size_t same_len,
                              double *vals, uint32_t cap, uint32_t *n, mk_diag *diag);

/* Number of samples a payload holds, read from its header, without decoding;
 * MK_ECORRUPT if the header is unreadable. */
mk_err mk_codec_count(const uint8_t *p, size_t len, uint32_t *n, mk_diag *diag);

/*
 * Decodes a payload into ts[0..cap), vals[0..cap); *n = samples decoded.
 * Never reads outside p[0..len) nor writes past cap, whatever the bytes:
 * malformed input is MK_ECORRUPT with the offset inside the payload.
 */
mk_err mk_codec_decode(mk_codec *c, const uint8_t *p, size_t len, int64_t *ts, double *vals,
                       uint32_t cap, uint32_t *n, mk_diag *diag);

/* Codec ids of a payload's two columns (for `meerkat inspect`). */
mk_err mk_codec_ids(const uint8_t *p, size_t len, uint8_t *ts_codec, uint8_t *val_codec);

/* Human name of a codec id such as "scaled+zstd"; static, never NULL. */
const char *mk_codec_name(uint8_t id);

/* Fills *sum from the samples (the reference the encoder's summary must
 * match; also used by readers that summarise decoded data). */
void mk_codec_summarise(const int64_t *ts, const double *vals, uint32_t n, mk_chunk_summary *sum);

#endif

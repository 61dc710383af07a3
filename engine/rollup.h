/*
 * engine/rollup.h — rollup payloads and bucket arithmetic, shared by
 * rollup.c, `meerkat verify` / `inspect` and the tests.
 *
 * A rollup payload (FORMAT.md, "Rollup blocks") holds n buckets of one
 * series: a version byte (1), a column count (7), then per column a uvarint
 * length and a chunk payload (codec.h) whose timestamps are the bucket
 * starts and whose values are, in order: count, sum, min, max, sumsq,
 * first, last. Every column has the same n and the same timestamps.
 */
#ifndef MK_ROLLUP_H
#define MK_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "meerkat/db.h"

#define MK_ROLLUP_COLS 7
/* Default of mk_options.rollup_min_density (rollup.c, build_window). */
#define MK_ROLLUP_MIN_DENSITY 16

/* Encodes b[0..n) (1 <= n <= MK_CHUNK_MAX_SAMPLES, starts strictly
 * increasing) appended to out; *sum gets the chunk summary the block index
 * stores: first/last bucket start, count = n, and the buckets' totals. */
mk_err mk_rollup_encode(mk_codec *c, const mk_bucket *b, uint32_t n, mk_buf *out, mk_chunk_summary *sum);

/* Decodes a payload into out[0..cap); ts/v are scratch of
 * MK_CHUNK_MAX_SAMPLES. MK_ECORRUPT (never a crash) on malformed bytes. */
mk_err mk_rollup_decode(mk_codec *c, const uint8_t *p, size_t len, mk_bucket *out, uint32_t cap, uint32_t *n,
                        int64_t *ts, double *v, mk_diag *diag);
/* The same, decoding only the columns in fields (MK_BUCKET_*): the others
 * are skipped by their length and left NaN; without MK_BUCKET_COUNT the
 * count column is skipped too and each bucket's count is 1 (a stored
 * bucket holds at least one sample). */
mk_err mk_rollup_decode_some(mk_codec *c, const uint8_t *p, size_t len, unsigned fields, mk_bucket *out,
                             uint32_t cap, uint32_t *n, int64_t *ts, double *v, mk_diag *diag);

/* As mk_bucket_iter_fields (db.h), but the count too is decoded only when
 * fields has MK_BUCKET_COUNT: otherwise a bucket's count is only known to
 * be at least 1 (1 for a tier bucket; buckets combined from several, or
 * made from raw samples, have more). For readers that need a bucket's
 * count only to tell it is not empty, e.g. max(): half the decoding. */
void mk_bucket_iter_fields_only(mk_bucket_iter *it, unsigned fields);

/* Adds one sample to bucket b (b->count == 0: b is fresh, start set by the
 * caller). Samples must come in time order. */
void mk_rollup_bucket_add(mk_bucket *b, double v);
/* Adds bucket x (later in time than everything in b) to b. */
void mk_rollup_bucket_merge(mk_bucket *b, const mk_bucket *x);

#endif

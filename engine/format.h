/*
 * engine/format.h — every on-disk magic number, format version and codec id
 * in one place. The byte layouts are drawn in engine/FORMAT.md.
 *
 * Rules kept by every file kind:
 *  - all integers little-endian;
 *  - a file starts with a 4-byte magic and a u16 format version; a reader
 *    refuses a wrong magic with MK_ENOTOURS and a higher version with
 *    MK_ETOONEW (two different errors: "not ours" vs "too new");
 *  - every record, chunk and footer carries an XXH3-64 checksum
 *    (mk_hash64 in util.h) of the bytes it covers.
 */
#ifndef MK_FORMAT_H
#define MK_FORMAT_H

/* "MKWL": a WAL segment, wal/<16 hex digits>.wal */
#define MK_WAL_MAGIC 0x4c574b4du
#define MK_WAL_VERSION 1

/* "MKBK": a block file, blocks/<16 hex digits>.mkb */
#define MK_BLOCK_MAGIC 0x4b424b4du
#define MK_BLOCK_VERSION 1
/* Block header flag bit 0: a rollup block (FORMAT.md, "Rollup blocks"):
 * each chunk is a run of buckets of one series, its payload a rollup
 * payload (rollup.h), its summary the buckets' totals. Blocks without it
 * hold samples. Other bits must be 0. */
#define MK_BLOCK_FLAG_ROLLUP 0x1

/* "MKIX": the persisted series index, index.mki */
#define MK_INDEX_MAGIC 0x58494b4du
#define MK_INDEX_VERSION 1

/* "MKCP": the checkpoint, checkpoint.mkc: after the last seal, samples in
 * WAL segments below wal_seq with ts below sealed_ms are in blocks. */
#define MK_CHECKPOINT_MAGIC 0x50434b4du
#define MK_CHECKPOINT_VERSION 1

/* "MKIL": the incident log, incidents/incidents.log (detect/ilog.c): rule
 * state machines, incidents and the notification outbox. */
#define MK_ILOG_MAGIC 0x4c494b4du
#define MK_ILOG_VERSION 1
#define MK_ILOG_REC_BATCH 1 /* a record: a batch of items, applied all or none */

/* WAL record types. */
#define MK_WAL_REC_SERIES 1  /* a new series: id + canonical key */
#define MK_WAL_REC_SAMPLES 2 /* a batch of (series id, ts, value) */

/* Chunk column codecs (one byte each, stored in the chunk header; layouts
 * in engine/FORMAT.md, "Chunk payload"). Timestamp codecs 0x0_, value
 * codecs 0x1_; the 0x80 bit on either = the column went through a zstd
 * stage (uvarint raw length + a zstd frame without its magic number).
 * Timestamp and scaled-value columns end in an integer stream whose layout
 * byte (0 = all zero, 1 = bit-packed, 2 = rANS) is part of the column, not
 * a codec id. */
#define MK_CODEC_TS_DOD 0x01      /* first ts, first delta, delta-of-deltas as an integer stream */
#define MK_CODEC_TS_CONST 0x02    /* constant step: first ts + step */
#define MK_CODEC_VAL_XOR 0x11     /* Gorilla XOR bit stream */
#define MK_CODEC_VAL_SCALED 0x12  /* v = k / 10^e: exponent, predictor, exceptions, residual stream */
#define MK_CODEC_VAL_CONST 0x13   /* every value the same bits */
#define MK_CODEC_VAL_RAW 0x14     /* raw 8-byte doubles (fallback) */
#define MK_CODEC_ZSTD_FLAG 0x80

/* Inside a column: the predictor byte of a VAL_SCALED column (the residual
 * of value i is k[i] minus the prediction)... */
#define MK_CODEC_PRED_FOR 0    /* frame of reference: k - min(k) (no zig-zag) */
#define MK_CODEC_PRED_PREV 1   /* k[i-1] */
#define MK_CODEC_PRED_LIN 2    /* 2k[i-1] - k[i-2] */
#define MK_CODEC_PRED_MEAN2 3  /* rounded mean of the last 2, 4, 8, 16, 32 values */
#define MK_CODEC_PRED_MEAN4 4
#define MK_CODEC_PRED_MEAN8 5
#define MK_CODEC_PRED_MEAN16 6
#define MK_CODEC_PRED_MEAN32 7
#define MK_CODEC_PRED_ZMEAN2 8 /* base = min(k): 0 if k == base, else zigzag(k - mean of 2^s) + 1; */
#define MK_CODEC_PRED_ZMEAN4 9 /* window 2, 4, .., 32 starting as copies of base, one residual */
#define MK_CODEC_PRED_ZMEAN8 10 /* per value (clipped gauges: error rates floored at 0) */
#define MK_CODEC_PRED_ZMEAN16 11
#define MK_CODEC_PRED_ZMEAN32 12
#define MK_CODEC_PRED_COUNT 13
/* ...and the layout byte of an integer stream. */
#define MK_CODEC_INT_ZERO 0    /* every value 0: nothing stored */
#define MK_CODEC_INT_PACK 1    /* fixed-width bit-packing */
#define MK_CODEC_INT_RANS 2    /* zero flag + high part rANS-coded, low bits packed */
#define MK_CODEC_INT_COUNT 3

/* At most this many samples in one chunk. */
#define MK_CHUNK_MAX_SAMPLES 8192

#endif

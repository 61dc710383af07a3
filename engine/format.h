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

/* "MKIX": the persisted series index, index.mki */
#define MK_INDEX_MAGIC 0x58494b4du
#define MK_INDEX_VERSION 1

/* WAL record types. */
#define MK_WAL_REC_SERIES 1  /* a new series: id + canonical key */
#define MK_WAL_REC_SAMPLES 2 /* a batch of (series id, ts, value) */

/* Chunk column codecs (one byte each, stored in the chunk header).
 * Timestamp codecs 0x0_, value codecs 0x1_ and up; 0x80 bit = zstd stage. */
#define MK_CODEC_TS_DOD 0x01      /* delta-of-delta, zig-zag, bit-packed */
#define MK_CODEC_TS_CONST 0x02    /* constant step: first ts + step */
#define MK_CODEC_VAL_XOR 0x11     /* Gorilla XOR */
#define MK_CODEC_VAL_SCALED 0x12  /* scaled integer (decimal digits), delta, zig-zag, bit-packed */
#define MK_CODEC_VAL_CONST 0x13   /* every value the same bits */
#define MK_CODEC_VAL_RAW 0x14     /* raw 8-byte doubles (fallback) */
#define MK_CODEC_ZSTD_FLAG 0x80

/* At most this many samples in one chunk. */
#define MK_CHUNK_MAX_SAMPLES 8192

#endif

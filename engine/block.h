/*
 * engine/block.h — immutable block files.
 *
 * A block holds, for a time range, chunks of many series: per series one or
 * more chunk payloads (codec.h) in time order, each with its summary and
 * XXH3-64 checksum, then a chunk index (series id, offset, length, summary),
 * then a footer with its own checksum. Byte layout: engine/FORMAT.md
 * ("Block file"). Files: <data dir>/blocks/<seq as 16 hex digits>.mkb,
 * written as .tmp, fsynced, renamed, directory fsynced. Read through mmap.
 *
 * seq orders blocks: where two blocks hold the same (series, timestamp), the
 * higher seq wins (later writes win). A block may list the seqs of blocks it
 * replaces (compaction): once it exists, those are garbage.
 *
 * Thread rules: a writer is used by one thread. An open mk_block is
 * read-only and may be read from any number of threads.
 */
#ifndef MK_BLOCK_H
#define MK_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "format.h"
#include "meerkat/db.h"

typedef struct mk_block_writer mk_block_writer;

/* Starts blocks_dir/<seq>.mkb.tmp. */
mk_err mk_block_writer_open(mk_env *env, const char *blocks_dir, uint64_t seq,
                            mk_block_writer **out, mk_diag *diag);

/* MK_BLOCK_FLAG_ROLLUP (format.h): a rollup block. */

/* As mk_block_writer_open, with header flags (MK_BLOCK_FLAG_*). */
mk_err mk_block_writer_open_flags(mk_env *env, const char *blocks_dir, uint64_t seq, uint16_t flags,
                                  mk_block_writer **out, mk_diag *diag);

/* Adds one chunk. Series ids must come in ascending order; chunks of one
 * series in ascending, non-overlapping time order. */
mk_err mk_block_writer_add(mk_block_writer *w, uint64_t series_id, const mk_chunk_summary *sum,
                           const uint8_t *payload, size_t len, mk_diag *diag);

/* Records the seqs this block replaces (copied). */
mk_err mk_block_writer_replaces(mk_block_writer *w, const uint64_t *seqs, size_t n,
                                mk_diag *diag);

/* Writes index and footer, fsyncs, renames to the final name, fsyncs the
 * directory, frees w. On any failure the temporary file is removed, no
 * final file exists, w is freed and diag names the step. An empty block (no
 * chunk) is not written and MK_OK is returned. */
mk_err mk_block_writer_finish(mk_block_writer *w, mk_diag *diag);

/* Drops the temporary file and frees w; accepts NULL. */
void mk_block_writer_abort(mk_block_writer *w);

typedef struct mk_block mk_block;

typedef struct mk_block_chunk {
    uint64_t series_id;
    uint64_t offset; /* of the payload in the file */
    uint32_t len;    /* payload bytes */
    mk_chunk_summary sum;
} mk_block_chunk;

/* Maps and checks header and footer (not each chunk: that is done when a
 * chunk is read, and by mk_block_verify). MK_ENOTOURS / MK_ETOONEW /
 * MK_ECORRUPT naming file and offset. */
mk_err mk_block_open(mk_env *env, const char *path, mk_block **out, mk_diag *diag);
void mk_block_close(mk_block *b); /* accepts NULL */

uint64_t mk_block_seq(const mk_block *b);
uint16_t mk_block_flags(const mk_block *b);

/* Lets the OS take back the block's mapped pages now (they are read back
 * on the next access): keeps a process that reads a long history once
 * (rollup building) from holding all of it resident. A hint; any thread. */
void mk_block_drop_pages(const mk_block *b);
int64_t mk_block_min_ts(const mk_block *b);
int64_t mk_block_max_ts(const mk_block *b);
uint64_t mk_block_file_bytes(const mk_block *b);
const char *mk_block_path(const mk_block *b);

/* Seqs this block replaces (borrowed). */
const uint64_t *mk_block_replaced(const mk_block *b, size_t *n);

/* All chunks, sorted by (series id, first ts); borrowed. */
const mk_block_chunk *mk_block_chunks(const mk_block *b, size_t *n);

/* The chunks of one series (binary search); *n = 0 if none; borrowed. */
const mk_block_chunk *mk_block_find(const mk_block *b, uint64_t series_id, size_t *n);

/* mk_block_find in each of b[0..n): c[i], nc[i]; the blocks' index
 * entries and first payload bytes are prefetched in overlapping passes. */
void mk_block_find_many(const mk_block *const *b, size_t n, uint64_t series_id, const mk_block_chunk **c, size_t *nc);

/* The payload of a chunk after checking its checksum: MK_ECORRUPT naming
 * file and offset if it does not match. A chunk of b's own index (a pointer
 * from mk_block_find/_chunks, not a copy) is hashed the first time only:
 * blocks are never written once published, and mk_block_verify (meerkat
 * verify) reads the file afresh. */
mk_err mk_block_payload(const mk_block *b, const mk_block_chunk *c, const uint8_t **p,
                        mk_diag *diag);

/*
 * Checks the header, footer, chunk index and every chunk checksum of the
 * file at path (not whether payloads decode: the caller does that with
 * codec.h); calls report once per problem with file, offset and reason
 * (report may be NULL). Returns MK_OK if the file is sound, otherwise the
 * first error. *n_chunks counts the chunks listed; *n_samples the sum of
 * their summaries' counts (either may be NULL).
 */
mk_err mk_block_verify(mk_env *env, const char *path,
                       void (*report)(void *ctx, const char *path, uint64_t off, const char *why),
                       void *ctx, uint64_t *n_chunks, uint64_t *n_samples, mk_diag *diag);

#endif

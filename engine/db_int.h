/*
 * engine/db_int.h — the database's internal state, shared by db.c (open,
 * write, seal, recovery) and db_read.c (iterators, series look-ups).
 *
 * Layout of a data directory: engine/FORMAT.md, "Data directory".
 *
 * Where a sample lives:
 *
 *   ts < sealed_until_ms ............ blocks, or the series' ooo buffer
 *   ts >= sealed_until_ms ........... the series' in-order chunks (full ones
 *                                     in head files, then the open xor
 *                                     chunk) or its ooo buffer
 *
 * Invariants (all under db->mu):
 *  - the in-order chunks hold strictly increasing timestamps, each >=
 *    sealed_until_ms when it was appended;
 *  - ooo samples are newer writes than any in-order sample with the same
 *    timestamp (an in-order append needs ts > the last in-order ts, an ooo
 *    write ts <= it or ts < sealed_until_ms, and both bounds only grow;
 *    sealing only drops samples below both), so on equal timestamps ooo
 *    wins, and among ooo the later write wins;
 *  - a block with a higher seq wins over a lower one and the head wins over
 *    every block: the head only holds writes newer than any sealed block's.
 */
#ifndef MK_DB_INT_H
#define MK_DB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "block.h"
#include "codec.h"
#include "env.h"
#include "index.h"
#include "meerkat/db.h"
#include "wal.h"
#include "xorchunk.h"

typedef struct mk_tsv {
    int64_t ts;
    double v;
} mk_tsv;

/* A full head chunk moved out of memory into a head file (db->hfiles):
 * mk_xor's bit stream, zero-padded so the decoder may read past its end. */
typedef struct mk_hck {
    int64_t first_ts, last_ts;
    uint32_t file_no; /* index into db->hfiles */
    uint32_t off;     /* byte offset in that file */
    uint32_t n_bytes; /* stream bytes plus padding */
    uint32_t count;   /* samples */
} mk_hck;

/* Head state of one series, indexed by ordinal. Kept small: 100k+ exist.
 * In-order samples: hck[0] < hck[1] < ... < xor (by time, disjoint). */
typedef struct mk_series {
    mk_xor xor;      /* the open chunk: newest in-order samples */
    mk_hck *hck;     /* full chunks, on disk; oldest first */
    uint32_t n_hck, cap_hck;
    mk_tsv *ooo;     /* late samples, in write order */
    uint32_t n_ooo, cap_ooo;
} mk_series;

/* A head file, DIR/head/<n>.hck: scratch space for full head chunks. Not
 * durable and never read at open (the WAL rebuilds the head): only keeps
 * memory per series small. Deleted once no chunk in it is live. */
typedef struct mk_hfile {
    int fd;          /* -1 once deleted */
    uint64_t size;   /* bytes written */
    uint64_t n_live; /* chunks referenced */
} mk_hfile;

/* A sealed block shared by every block set that lists it. */
typedef struct mk_blockref {
    atomic_int refs;
    mk_block *b;
    int is_doomed; /* unlink the file when the last reference goes */
} mk_blockref;

/* Immutable list of blocks ordered by seq; readers hold a reference. */
typedef struct mk_blockset {
    atomic_int refs;
    size_t n;
    mk_blockref *v[]; /* ascending seq */
} mk_blockset;

/* Per WAL segment: the newest sample timestamp it holds, so a segment is
 * dropped once everything in it is sealed. */
typedef struct mk_walseg {
    uint64_t seq;
    int64_t max_ts;
} mk_walseg;

struct mk_db {
    char *dir, *blocks_dir, *wal_dir;
    mk_options opts;
    mk_env *env;
    int lock_fd;

    pthread_mutex_t mu; /* guards everything below */
    mk_index *index;
    mk_series *series; /* [mk_index_count(index)] */
    uint32_t cap_series;
    uint32_t n_index_saved; /* series count in index.mki on disk */

    mk_blockset *blocks;
    uint64_t next_block_seq;
    int64_t sealed_until_ms; /* see the table above */
    int64_t max_ts_ms;       /* newest head timestamp that advances sealing */

    mk_wal *wal;
    uint64_t wal_seq; /* current segment */
    mk_walseg *walsegs;
    size_t n_walsegs, cap_walsegs;
    mk_buf walbuf; /* scratch for WAL payloads */
    mk_wal_ticket last_ticket; /* of the newest record appended */
    uint64_t ckpt_wal_seq;  /* checkpoint: samples in segments below this... */
    int64_t ckpt_sealed_ms; /* ...older than this are sealed already */

    uint64_t n_head_samples;
    size_t head_bytes; /* xor + ooo heap bytes */

    mk_hfile *hfiles; /* head files; the last one is written to */
    uint32_t n_hfiles;
    char *head_dir;

    mk_buf keybuf;   /* scratch for canonical keys */
    int64_t seal_retry_at_ms; /* after a failed seal, wait before the next try */
    int64_t next_seal_ms;     /* windows closing before this wait (see maybe_seal) */
    int is_failed;   /* a WAL or seal failure made memory and disk disagree */
};

void mk_db_log(mk_db *db, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void mk_blockset_unref(mk_blockset *bs);

/* Copies the head samples of series ord with from <= ts < to into *out
 * (sorted, one per timestamp, newest write wins). Caller holds mu. */
mk_err mk_db_head_samples(mk_db *db, uint32_t ord, int64_t from, int64_t to, mk_tsv **out,
                          size_t *n);

#endif

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

    /* Compaction and retention (compact.c, retention.c). compact_mu
     * serialises whole runs (the thread, mk_db_compact, mk_db_retention),
     * so a run's snapshot stays valid: sealing only adds blocks, and only
     * these runs remove any. Lock order: compact_mu before mu. */
    pthread_mutex_t compact_mu;
    pthread_cond_t compact_cv; /* with mu: wakes the thread (seal, close) */
    pthread_t compact_th;
    int has_compact_th;
    int is_compact_stopping;   /* under mu */
    int is_compact_kicked;     /* under mu: a seal added blocks */
    /* Callers of mk_db_compact / mk_db_retention waiting for compact_mu:
     * while any wait, the thread's merge runs unpaced (compact.c). */
    atomic_int n_compact_waiters;

    /* Rollup tiers (rollup.c): steps ascending; each set guarded by mu. */
    struct mk_tier {
        int64_t step_ms;
        char *dir;           /* DIR/rollup/<step_ms> */
        char name[24];       /* "5m", "1h", ... */
        mk_blockset *bs;
    } tiers[MK_MAX_ROLLUP_TIERS];
    size_t n_tiers;
    int64_t rollup_window_ms; /* every rollup block covers one such window */
};

void mk_db_log(mk_db *db, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void mk_blockset_unref(mk_blockset *bs);

/* A reference to an open block (refs = 1); NULL without memory. Takes b. */
mk_blockref *mk_blockref_new(mk_block *b);
void mk_blockref_unref(mk_blockref *r);

/* Replaces db->blocks (caller holds mu): the new set is the old one minus
 * the blocks whose seq is in drop[0..n_drop) (they are doomed: their file is
 * unlinked when the last reader lets go) plus add (may be NULL; the set
 * takes the reference). On MK_ENOMEM nothing changed. */
mk_err mk_db_swap_blocks(mk_db *db, const uint64_t *drop, size_t n_drop, mk_blockref *add);
/* The same on any set (a rollup tier's); caller holds mu. */
mk_err mk_db_swap_set(mk_blockset **set, const uint64_t *drop, size_t n_drop, mk_blockref *add);

/* blocks_dir/<seq>.mkb into buf. */
void mk_db_block_path(const mk_db *db, uint64_t seq, char *buf, size_t cap);

/* compact.c: the background thread (started by mk_db_open for writable
 * dbs unless opts.is_compaction_off; stopped first thing by close). */
mk_err mk_compact_start(mk_db *db, mk_diag *diag);
void mk_compact_stop(mk_db *db);

/* Opens every block of dir with header flags `flags` into *out (open
 * leftovers and replaced blocks removed, as for blocks/). */
mk_err mk_db_open_block_dir(mk_db *db, const char *dir, uint16_t flags, mk_blockset **out, mk_diag *diag);

/* rollup.c: tiers opened at mk_db_open (after the raw blocks), freed at
 * close; mk_rollup_run (compact_mu held) builds what is missing or stale,
 * only windows ending by sealed_until_ms unless forced; pace (compact.h,
 * may be NULL = unpaced) is charged the raw chunk bytes read and the
 * rollup block bytes written. */
mk_err mk_rollup_open(mk_db *db, mk_diag *diag);
void mk_rollup_close(mk_db *db);
struct mk_pacer;
mk_err mk_rollup_run(mk_db *db, int is_forced, struct mk_pacer *pace, mk_diag *diag);

/* retention.c, with compact_mu held. */
mk_err mk_retention_run(mk_db *db, int is_dry_run, void (*cb)(void *ctx, const mk_retention_drop *d),
                        void *ctx, uint64_t *n_dropped, mk_diag *diag);

/* Copies the head samples of series ord with from <= ts < to into *out
 * (sorted, one per timestamp, newest write wins). Caller holds mu. */
mk_err mk_db_head_samples(mk_db *db, uint32_t ord, int64_t from, int64_t to, mk_tsv **out,
                          size_t *n);

#endif

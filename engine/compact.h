/*
 * engine/compact.h — compaction internals shared with retention.c and the
 * unit tests: the planner is a pure function over block descriptions, so
 * tests can check its choices without writing blocks.
 */
#ifndef MK_COMPACT_H
#define MK_COMPACT_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/db.h"

/* What the planner knows of a block. */
typedef struct mk_compact_blk {
    uint64_t seq;
    int64_t lo, hi;   /* min_ts, max_ts */
    uint64_t n_bytes;
} mk_compact_blk;

/* The valid compaction ranges of o (ascending, each a multiple of the block
 * span and of the one before) into out[MK_MAX_COMPACT_LEVELS]; returns how
 * many. All zero in o means the defaults (1 d, 7 d). */
size_t mk_compact_ranges(const mk_options *o, int64_t *out);

/*
 * Chooses the next group to merge among v[0..n): indices into v, written to
 * g (room for 128), returns the count (0 = nothing to do; else >= 2). Only
 * windows ending at or before done_before_ms are considered. The group is
 * closed over overlapping blocks of higher seq (compact.c, top comment).
 */
size_t mk_compact_plan(const mk_compact_blk *v, size_t n, int64_t span_ms, const int64_t *ranges,
                       size_t n_ranges, int64_t done_before_ms, size_t *g);

/* Runs compaction steps until none is left (caller holds compact_mu). With
 * is_forced, unfinished windows are merged too and a close request does
 * not stop it. Adds to *st (may be NULL). */
struct mk_db;
mk_err mk_compact_run(struct mk_db *db, int is_forced, mk_compact_stats *st, mk_diag *diag);

#endif

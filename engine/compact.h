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

/*
 * I/O pacing: a token bucket of bytes. Tokens accrue at bytes_per_s by the
 * env's clock, up to a burst of 1/8 s worth (at least 4 KiB); a charge
 * takes its bytes before the I/O is done and, when that leaves the bucket
 * in debt, sleeps (env->sleep_ms, in slices of at most 100 ms) until the
 * debt is paid. So over any interval of T ms the bytes charged stay within
 * burst + bytes_per_s * T / 1000 + the largest single charge. A sleep
 * always earns its own length in tokens even when the clock did not move
 * (a frozen or set-back clock slows compaction, never stalls it); a clock
 * jump forward earns at most the burst.
 */
struct mk_db;
typedef struct mk_pacer {
    struct mk_db *db;     /* borrowed; its env's clock and sleep */
    uint64_t bytes_per_s; /* 0 = unpaced: charges return at once */
    int is_background;    /* a close request lifts the pace */
    double tokens;        /* bytes; negative = debt */
    int64_t last_ms;      /* env time tokens were last added at */
    uint64_t n_bytes;     /* charged so far */
    uint64_t n_sleeps;    /* sleep slices taken */
} mk_pacer;

void mk_pacer_init(mk_pacer *p, struct mk_db *db, uint64_t bytes_per_s, int is_background);
/* Takes n_bytes from the bucket, first sleeping as long as the pace needs. */
void mk_pacer_charge(mk_pacer *p, uint64_t n_bytes);

/* Runs compaction steps until none is left (caller holds compact_mu). With
 * is_forced, unfinished windows are merged too and a close request does
 * not stop it. pace (may be NULL = unpaced) meters the merges' I/O. Adds
 * to *st (may be NULL). */
mk_err mk_compact_run(struct mk_db *db, int is_forced, mk_pacer *pace, mk_compact_stats *st, mk_diag *diag);

#endif

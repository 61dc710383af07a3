/*
 * engine/retention.c — retention: whole blocks past the policy are dropped.
 *
 * Policy (mk_options): retention_raw_ms, a maximum age of raw blocks, and
 * retention_max_bytes, a cap on the bytes of all block files. Both 0 by
 * default: nothing is ever dropped unless asked.
 *
 * Age is measured with the env's clock, never with the data's timestamps:
 * a block goes only when now > its max_ts + retention_raw_ms. A sample
 * timestamped in the future therefore expires nothing, and a clock set
 * back drops nothing more than before (a block is never rewritten: it
 * stays whole until all of it is past the policy).
 *
 * Size: while the blocks' bytes exceed the cap, the raw block with the
 * oldest max_ts goes; the block holding the newest data always stays.
 *
 * Overwrites: where blocks overlap in time the higher seq wins (a late or
 * backfilled block may hold newer values for timestamps an older block
 * has too). Dropping that newer block while the older one stays would
 * bring the older, overwritten values back. So a block goes (for age or
 * size) only together with or after every lower-seq block whose time range
 * overlaps its own: the dropped set is closed downwards over "overlaps and
 * has a lower seq". For age, a block past the policy whose older
 * overlapping block is not yet past it stays until that one goes (data
 * kept a little longer than the policy, never shown stale); for size, such
 * a block is not a candidate until the older one went. Time ranges are the
 * blocks' (all series), so this may keep more than needed, never less.
 *
 * Rollups first: with rollup tiers, a raw block goes (for age or size)
 * only once every rollup window it touches is in every tier (is_rolled_up):
 * tiers are built for finished windows only (a week by default), so raw
 * data kept 1 d stays until its week is rolled up rather than vanish from
 * every tier.
 *
 * Dropping: lingering files of blocks that the dropped one replaced are
 * unlinked first (else they would come back at the next open), then the
 * blocks leave the set and their files are unlinked in ascending seq
 * (readers keep their mappings). Each step is one unlink, so a crash
 * anywhere leaves every block either whole or gone, and what is gone is
 * closed downwards as above.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compact.h"
#include "db_int.h"
#include "retention.h"

static int cmp_seq_idx(const void *a, const void *b, void *ctx)
{
    const mk_compact_blk *v = ctx;
    uint64_t x = v[*(const size_t *)a].seq, y = v[*(const size_t *)b].seq;
    return x < y ? -1 : x > y;
}

static inline int overlaps(const mk_compact_blk *a, const mk_compact_blk *b)
{
    return a->lo <= b->hi && b->lo <= a->hi;
}

size_t mk_retention_plan(const mk_compact_blk *v, size_t n, int64_t now_ms, int64_t raw_ms,
                         uint64_t max_bytes, const char *is_pinned, char *why)
{
    size_t n_drop = 0;
    for (size_t i = 0; i < n; i++) why[i] = 0;
    size_t *ord = malloc((n + 1) * sizeof *ord);
    uint32_t *n_blockers = calloc(n + 1, sizeof *n_blockers);
    if (!ord || !n_blockers) goto out; /* no memory: drop nothing */
    for (size_t i = 0; i < n; i++) ord[i] = i;
    qsort_r(ord, n, sizeof *ord, cmp_seq_idx, (void *)v);

    /* Age, in seq order: a block past the policy goes only if every
     * older-seq block overlapping it goes too (decided before it). */
    for (size_t a = 0; a < n; a++) {
        size_t i = ord[a];
        if (is_pinned && is_pinned[i]) continue;
        if (!(raw_ms > 0 && v[i].hi <= INT64_MAX - raw_ms && v[i].hi + raw_ms < now_ms)) continue;
        int is_blocked = 0;
        for (size_t b = 0; b < a && !is_blocked; b++) is_blocked = !why[ord[b]] && overlaps(&v[ord[b]], &v[i]);
        if (is_blocked) continue;
        why[i] = 'a';
        n_drop++;
    }
    if (!max_bytes) goto out;

    /* Size: the kept blocks' bytes; n_blockers[i] = kept older-seq blocks
     * overlapping i (i may go only at 0). */
    uint64_t total = 0;
    size_t newest = SIZE_MAX;
    for (size_t a = 0; a < n; a++) {
        size_t i = ord[a];
        if (why[i]) continue;
        total += v[i].n_bytes;
        if (newest == SIZE_MAX || v[i].hi > v[newest].hi || (v[i].hi == v[newest].hi && v[i].seq > v[newest].seq))
            newest = i;
        for (size_t b = 0; b < a; b++) n_blockers[i] += !why[ord[b]] && overlaps(&v[ord[b]], &v[i]);
    }
    while (total > max_bytes) {
        size_t o = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            if (why[i] || i == newest || n_blockers[i] || (is_pinned && is_pinned[i])) continue;
            if (o == SIZE_MAX || v[i].hi < v[o].hi || (v[i].hi == v[o].hi && v[i].seq < v[o].seq)) o = i;
        }
        if (o == SIZE_MAX) break; /* only the newest left, or blocking all others */
        why[o] = 's';
        total -= v[o].n_bytes;
        n_drop++;
        for (size_t i = 0; i < n; i++)
            if (!why[i] && v[i].seq > v[o].seq && overlaps(&v[o], &v[i])) n_blockers[i]--;
    }
out:
    free(ord);
    free(n_blockers);
    return n_drop;
}

/* A rollup tier: blocks whose last bucket ends max_ts + step <= now - ret
 * go (age only; the size cap counts raw blocks' bytes). */
static mk_err tier_run(mk_db *db, size_t t, int64_t now, int is_dry_run,
                       void (*cb)(void *ctx, const mk_retention_drop *d), void *ctx, uint64_t *n_dropped,
                       mk_diag *diag)
{
    int64_t ret = db->opts.retention_rollup_ms[t], step = db->tiers[t].step_ms;
    if (ret <= 0) return MK_OK;
    pthread_mutex_lock(&db->mu);
    mk_blockset *bs = db->tiers[t].bs;
    atomic_fetch_add(&bs->refs, 1);
    pthread_mutex_unlock(&db->mu);
    mk_err rc = MK_OK;
    uint64_t *drop = malloc((bs->n + 1) * sizeof *drop);
    size_t n_drop = 0;
    if (!drop) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory for retention"); goto out; }
    for (size_t i = 0; i < bs->n; i++) {
        const mk_block *b = bs->v[i]->b;
        int64_t newest = mk_block_max_ts(b) > INT64_MAX - step ? INT64_MAX : mk_block_max_ts(b) + step - 1;
        if (!(newest <= INT64_MAX - ret && newest + ret < now)) continue;
        mk_retention_drop d = {mk_block_seq(b), mk_block_min_ts(b), newest, mk_block_file_bytes(b), db->tiers[t].name, "age"};
        if (!is_dry_run) {
            size_t k;
            const uint64_t *r = mk_block_replaced(b, &k);
            for (size_t j = 0; j < k; j++) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%016" PRIx64 ".mkb", db->tiers[t].dir, r[j]);
                db->env->unlink(db->env, path);
            }
        }
        drop[n_drop++] = mk_block_seq(b);
        if (cb) cb(ctx, &d);
    }
    if (!is_dry_run && n_drop) {
        pthread_mutex_lock(&db->mu);
        rc = mk_db_swap_set(&db->tiers[t].bs, drop, n_drop, NULL);
        pthread_mutex_unlock(&db->mu);
        if (rc) { rc = mk_diag_set(diag, rc, "no memory to drop blocks"); goto out; }
    }
    if (n_dropped) *n_dropped += n_drop;
out:
    mk_blockset_unref(bs);
    free(drop);
    return rc;
}

static mk_err raw_run(mk_db *db, int is_dry_run, void (*cb)(void *ctx, const mk_retention_drop *d),
                      void *ctx, uint64_t *n_dropped, mk_diag *diag);

mk_err mk_retention_run(mk_db *db, int is_dry_run, void (*cb)(void *ctx, const mk_retention_drop *d),
                        void *ctx, uint64_t *n_dropped, mk_diag *diag)
{
    uint64_t n = 0;
    mk_err rc = raw_run(db, is_dry_run, cb, ctx, &n, diag);
    int64_t now = db->env->now_ms(db->env);
    for (size_t t = 0; t < db->n_tiers && !rc; t++) {
        uint64_t m = 0;
        rc = tier_run(db, t, now, is_dry_run, cb, ctx, &m, diag);
        n += m;
    }
    if (n_dropped) *n_dropped = n;
    return rc;
}

/*
 * Whether raw block b's data is in every rollup tier already: for each
 * rollup window it touches, each tier has a block for that window with a
 * higher seq (built from a snapshot that held b: rollup.c), or the tier's
 * own retention is past that window. Rollups are built only for finished
 * windows (a week by default), so raw data kept shorter than that stays
 * until its window is rolled up, never lost from every tier.
 */
static int is_rolled_up(const mk_db *db, mk_blockset *const *tsets, const mk_compact_blk *b, int64_t now)
{
    int64_t win = db->rollup_window_ms;
    if (!db->n_tiers || win <= 0) return 1;
    for (int64_t w = mk_floordiv(b->lo, win) * win; w <= b->hi; w += win) {
        for (size_t t = 0; t < db->n_tiers; t++) {
            int64_t ret = db->opts.retention_rollup_ms[t];
            if (ret > 0 && w <= INT64_MAX - win - ret && w + win + ret < now) continue;
            int has = 0;
            for (size_t i = 0; i < tsets[t]->n && !has; i++) {
                const mk_block *tb = tsets[t]->v[i]->b;
                has = mk_floordiv(mk_block_min_ts(tb), win) * win == w && mk_block_seq(tb) > b->seq;
            }
            if (!has) return 0;
        }
        if (w > INT64_MAX - win) break;
    }
    return 1;
}

static mk_err raw_run(mk_db *db, int is_dry_run, void (*cb)(void *ctx, const mk_retention_drop *d),
                      void *ctx, uint64_t *n_dropped, mk_diag *diag)
{
    if (n_dropped) *n_dropped = 0;
    if (db->opts.retention_raw_ms <= 0 && !db->opts.retention_max_bytes) return MK_OK;
    int64_t now = db->env->now_ms(db->env);
    mk_blockset *tsets[MK_MAX_ROLLUP_TIERS] = {0};
    pthread_mutex_lock(&db->mu);
    mk_blockset *bs = db->blocks;
    atomic_fetch_add(&bs->refs, 1);
    for (size_t t = 0; t < db->n_tiers; t++) {
        tsets[t] = db->tiers[t].bs;
        atomic_fetch_add(&tsets[t]->refs, 1);
    }
    pthread_mutex_unlock(&db->mu);
    mk_err rc = MK_OK;
    mk_compact_blk *v = malloc((bs->n + 1) * sizeof *v);
    char *why = malloc(bs->n + 1);
    char *is_pinned = malloc(bs->n + 1);
    uint64_t *drop = malloc((bs->n + 1) * sizeof *drop);
    if (!v || !why || !is_pinned || !drop) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory for retention"); goto out; }
    for (size_t i = 0; i < bs->n; i++) {
        const mk_block *b = bs->v[i]->b;
        v[i] = (mk_compact_blk){mk_block_seq(b), mk_block_min_ts(b), mk_block_max_ts(b), mk_block_file_bytes(b)};
        is_pinned[i] = !is_rolled_up(db, tsets, &v[i], now);
    }
    /* The cap is on the whole directory's blocks: the tiers' bytes count
     * too, but raw blocks go first (raw data may expire before its
     * rollups), so the raw budget is what the tiers leave. */
    uint64_t cap = db->opts.retention_max_bytes;
    if (cap) {
        uint64_t tier_bytes = 0;
        pthread_mutex_lock(&db->mu);
        for (size_t t = 0; t < db->n_tiers; t++)
            for (size_t i = 0; i < db->tiers[t].bs->n; i++) tier_bytes += mk_block_file_bytes(db->tiers[t].bs->v[i]->b);
        pthread_mutex_unlock(&db->mu);
        cap = tier_bytes < cap ? cap - tier_bytes : 1;
    }
    size_t n_plan = mk_retention_plan(v, bs->n, now, db->opts.retention_raw_ms, cap, is_pinned, why);
    size_t n_drop = 0;
    for (size_t i = 0; i < bs->n && n_plan; i++) {
        if (!why[i]) continue;
        mk_retention_drop d = {v[i].seq, v[i].lo, v[i].hi, v[i].n_bytes, "raw", why[i] == 'a' ? "age" : "size"};
        if (!is_dry_run) {
            size_t k;
            const uint64_t *r = mk_block_replaced(bs->v[i]->b, &k);
            for (size_t j = 0; j < k; j++) {
                if (r[j] == v[i].seq) continue; /* its own name (a merged block) */
                char path[4096];
                mk_db_block_path(db, r[j], path, sizeof path);
                db->env->unlink(db->env, path);
            }
        }
        drop[n_drop++] = v[i].seq;
        if (cb) cb(ctx, &d);
    }
    if (!is_dry_run && n_drop) {
        pthread_mutex_lock(&db->mu);
        rc = mk_db_swap_blocks(db, drop, n_drop, NULL);
        pthread_mutex_unlock(&db->mu);
        if (rc) { rc = mk_diag_set(diag, rc, "no memory to drop blocks"); goto out; }
        /* Unlinked now, in ascending seq (drop[] follows the set's order),
         * not when the last reader lets go (it keeps its mapping): a crash
         * part way leaves a prefix of the dropped set gone, which like the
         * set itself never holds a block without the older overlapping
         * ones; a reader's release order could not promise that. */
        for (size_t i = 0; i < n_drop; i++) {
            char path[4096];
            mk_db_block_path(db, drop[i], path, sizeof path);
            db->env->unlink(db->env, path);
        }
        mk_db_log(db, MK_LOG_INFO, "retention: dropped %zu block(s)", n_drop);
    }
    if (n_dropped) *n_dropped = n_drop;
out:
    mk_blockset_unref(bs);
    for (size_t t = 0; t < db->n_tiers; t++) mk_blockset_unref(tsets[t]);
    free(v);
    free(why);
    free(is_pinned);
    free(drop);
    return rc;
}

mk_err mk_db_retention(mk_db *db, int is_dry_run, void (*cb)(void *ctx, const mk_retention_drop *d),
                       void *ctx, uint64_t *n_dropped, mk_diag *diag)
{
    if (!db) return mk_diag_set(diag, MK_EINVAL, "mk_db_retention: NULL db");
    if (!is_dry_run && db->opts.is_read_only) return mk_diag_set(diag, MK_EREADONLY, "%s: opened read-only", db->dir);
    atomic_fetch_add(&db->n_compact_waiters, 1); /* lifts the thread's pace (compact.c) */
    pthread_mutex_lock(&db->compact_mu);
    atomic_fetch_sub(&db->n_compact_waiters, 1);
    mk_err rc = mk_retention_run(db, is_dry_run, cb, ctx, n_dropped, diag);
    pthread_mutex_unlock(&db->compact_mu);
    return rc;
}

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
 * Dropping: lingering files of blocks that the dropped one replaced are
 * unlinked first (else they would come back at the next open), then the
 * block leaves the set and its file is unlinked when the last reader lets
 * go. Each step is one unlink, so a crash anywhere leaves every block
 * either whole or gone.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compact.h"
#include "db_int.h"
#include "retention.h"

size_t mk_retention_plan(const mk_compact_blk *v, size_t n, int64_t now_ms, int64_t raw_ms,
                         uint64_t max_bytes, char *why)
{
    size_t n_drop = 0;
    uint64_t total = 0;
    size_t newest = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        why[i] = 0;
        if (raw_ms > 0 && v[i].hi <= INT64_MAX - raw_ms && v[i].hi + raw_ms < now_ms) {
            why[i] = 'a';
            n_drop++;
            continue;
        }
        total += v[i].n_bytes;
        if (newest == SIZE_MAX || v[i].hi > v[newest].hi || (v[i].hi == v[newest].hi && v[i].seq > v[newest].seq))
            newest = i;
    }
    while (max_bytes && total > max_bytes) {
        size_t o = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            if (why[i] || i == newest) continue;
            if (o == SIZE_MAX || v[i].hi < v[o].hi || (v[i].hi == v[o].hi && v[i].seq < v[o].seq)) o = i;
        }
        if (o == SIZE_MAX) break;
        why[o] = 's';
        total -= v[o].n_bytes;
        n_drop++;
    }
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

static mk_err raw_run(mk_db *db, int is_dry_run, void (*cb)(void *ctx, const mk_retention_drop *d),
                      void *ctx, uint64_t *n_dropped, mk_diag *diag)
{
    if (n_dropped) *n_dropped = 0;
    if (db->opts.retention_raw_ms <= 0 && !db->opts.retention_max_bytes) return MK_OK;
    int64_t now = db->env->now_ms(db->env);
    pthread_mutex_lock(&db->mu);
    mk_blockset *bs = db->blocks;
    atomic_fetch_add(&bs->refs, 1);
    pthread_mutex_unlock(&db->mu);
    mk_err rc = MK_OK;
    mk_compact_blk *v = malloc((bs->n + 1) * sizeof *v);
    char *why = malloc(bs->n + 1);
    uint64_t *drop = malloc((bs->n + 1) * sizeof *drop);
    if (!v || !why || !drop) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory for retention"); goto out; }
    for (size_t i = 0; i < bs->n; i++) {
        const mk_block *b = bs->v[i]->b;
        v[i] = (mk_compact_blk){mk_block_seq(b), mk_block_min_ts(b), mk_block_max_ts(b), mk_block_file_bytes(b)};
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
    size_t n_plan = mk_retention_plan(v, bs->n, now, db->opts.retention_raw_ms, cap, why);
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
        mk_db_log(db, MK_LOG_INFO, "retention: dropped %zu block(s)", n_drop);
    }
    if (n_dropped) *n_dropped = n_drop;
out:
    mk_blockset_unref(bs);
    free(v);
    free(why);
    free(drop);
    return rc;
}

mk_err mk_db_retention(mk_db *db, int is_dry_run, void (*cb)(void *ctx, const mk_retention_drop *d),
                       void *ctx, uint64_t *n_dropped, mk_diag *diag)
{
    if (!db) return mk_diag_set(diag, MK_EINVAL, "mk_db_retention: NULL db");
    if (!is_dry_run && db->opts.is_read_only) return mk_diag_set(diag, MK_EREADONLY, "%s: opened read-only", db->dir);
    pthread_mutex_lock(&db->compact_mu);
    mk_err rc = mk_retention_run(db, is_dry_run, cb, ctx, n_dropped, diag);
    pthread_mutex_unlock(&db->compact_mu);
    return rc;
}

/*
 * engine/rollup.c — rollup tiers: per series buckets (count, sum, min, max,
 * sumsq, first, last) of fixed widths (5 min and 1 h by default), kept in
 * rollup blocks, one block per (tier, rollup window), in
 * DIR/rollup/<step_ms>/<seq>.mkb (FORMAT.md, "Rollup blocks"). The rollup
 * window is the largest compaction range (7 d by default): a 1 h tier
 * chunk then holds a week of one series (168 buckets), so a year is 52
 * chunks to read.
 *
 * Building (mk_rollup_run, in the compaction thread before compaction, and
 * in mk_db_compact): a window gets (re)built when a tier has no block for
 * it, or when a raw block overlapping it may hold data the tier's block has
 * not seen. Seqs say which: a rollup block's seq is taken, under db->mu, in
 * the same critical section as the snapshot it is planned from, so every
 * raw block with a lower seq was there when it was built, and one with a
 * higher seq is newer (a seal's, or a merge that took in such a block: a
 * merged block keeps its group's highest seq, so a merge of older blocks
 * only stays older). The window's samples are read through mk_db_iter (the same
 * last-write-wins view as every reader, the head included), and the new
 * block replaces the old one (listed as replaced: crash-safe as for
 * compaction). A window whose raw data may already be past the raw
 * retention is never rebuilt: its rollups are all that is left.
 *
 * Reading (mk_db_iter_buckets): per rollup window, the tier's block when
 * it is up to date for the series (no newer raw block over the window, no
 * head data in it; or the raw data is past retention), else buckets made
 * from raw samples; then combined into the asked width.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compact.h"
#include "db_int.h"
#include "format.h"
#include "rollup.h"
#include "util.h"

/* ---- buckets and payloads ---------------------------------------------- */

void mk_rollup_bucket_add(mk_bucket *b, double v)
{
    if (b->count == 0) {
        b->first = v;
        b->min = NAN;
        b->max = NAN;
        b->sum = 0;
        b->sumsq = 0;
    }
    b->count++;
    b->last = v;
    if (isnan(v)) return;
    if (!(v >= b->min)) b->min = v; /* true while min is NaN */
    if (!(v <= b->max)) b->max = v;
    b->sum += v;
    b->sumsq += v * v;
}

void mk_rollup_bucket_merge(mk_bucket *b, const mk_bucket *x)
{
    if (x->count == 0) return;
    if (b->count == 0) {
        int64_t start = b->start_ms;
        *b = *x;
        b->start_ms = start;
        return;
    }
    b->count += x->count;
    b->sum += x->sum;
    b->sumsq += x->sumsq;
    if (!isnan(x->min) && !(x->min >= b->min)) b->min = x->min;
    if (!isnan(x->max) && !(x->max <= b->max)) b->max = x->max;
    b->last = x->last;
}

static double col_of(const mk_bucket *b, int k)
{
    switch (k) {
    case 0: return (double)b->count;
    case 1: return b->sum;
    case 2: return b->min;
    case 3: return b->max;
    case 4: return b->sumsq;
    case 5: return b->first;
    default: return b->last;
    }
}

mk_err mk_rollup_encode(mk_codec *c, const mk_bucket *b, uint32_t n, mk_buf *out, mk_chunk_summary *sum)
{
    if (n == 0 || n > MK_CHUNK_MAX_SAMPLES) return MK_EINVAL;
    int64_t *ts = malloc(n * sizeof *ts);
    double *v = malloc(n * sizeof *v);
    mk_buf col = {0};
    mk_err rc = MK_OK;
    if (!ts || !v) { rc = MK_ENOMEM; goto out; }
    /* a tier is read many times for each time it is written, and is
     * small next to the raw data (see mk_codec_set_fast_decode) */
    mk_codec_set_fast_decode(c, 1);
    uint8_t hdr[2] = {1, MK_ROLLUP_COLS};
    if ((rc = mk_buf_append(out, hdr, 2))) goto out;
    for (uint32_t i = 0; i < n; i++) ts[i] = b[i].start_ms;
    for (int k = 0; k < MK_ROLLUP_COLS; k++) {
        for (uint32_t i = 0; i < n; i++) v[i] = col_of(&b[i], k);
        mk_chunk_summary s;
        col.len = 0;
        if ((rc = mk_codec_encode(c, ts, v, n, &col, &s))) goto out;
        uint8_t lb[10];
        size_t ln = mk_put_uvarint(lb, col.len);
        if ((rc = mk_buf_append(out, lb, ln)) || (rc = mk_buf_append(out, col.data, col.len))) goto out;
    }
    mk_bucket t = {0};
    for (uint32_t i = 0; i < n; i++) mk_rollup_bucket_merge(&t, &b[i]);
    memset(sum, 0, sizeof *sum);
    sum->first_ts_ms = b[0].start_ms;
    sum->last_ts_ms = b[n - 1].start_ms;
    sum->count = n;
    sum->min = t.min;
    sum->max = t.max;
    sum->sum = t.sum;
    sum->sumsq = t.sumsq;
    sum->first = t.first;
    sum->last = t.last;
out:
    mk_codec_set_fast_decode(c, 0);
    free(ts);
    free(v);
    mk_buf_free(&col);
    return rc;
}

mk_err mk_rollup_decode(mk_codec *c, const uint8_t *p, size_t len, mk_bucket *out, uint32_t cap, uint32_t *n,
                        int64_t *ts, double *v, mk_diag *diag)
{
    return mk_rollup_decode_some(c, p, len, MK_BUCKET_ALL, out, cap, n, ts, v, diag);
}

mk_err mk_rollup_decode_some(mk_codec *c, const uint8_t *p, size_t len, unsigned fields, mk_bucket *out,
                             uint32_t cap, uint32_t *n, int64_t *ts, double *v, mk_diag *diag)
{
    /* where column k lands in a bucket (column 0, the count, is converted) */
    static const size_t k_off[MK_ROLLUP_COLS] = {0, offsetof(mk_bucket, sum), offsetof(mk_bucket, min), offsetof(mk_bucket, max),
                                                 offsetof(mk_bucket, sumsq), offsetof(mk_bucket, first), offsetof(mk_bucket, last)};
    *n = 0;
    if (len < 2 || p[0] != 1 || p[1] != MK_ROLLUP_COLS)
        return mk_diag_set(diag, MK_ECORRUPT, "rollup payload: bad header");
    if (!(fields & (MK_BUCKET_ALL & ~(unsigned)MK_BUCKET_COUNT))) fields |= MK_BUCKET_COUNT; /* the times come from some column */
    size_t off = 2;
    uint32_t rows = 0;
    int has_rows = 0; /* the first decoded column set rows and the buckets' starts */
    const uint8_t *first = NULL; /* its payload [first_len] */
    size_t first_len = 0;
    for (int k = 0; k < MK_ROLLUP_COLS; k++) {
        uint64_t cl;
        size_t used = mk_get_uvarint(p + off, len - off, &cl);
        if (!used || cl > len - off - used) return mk_diag_set(diag, MK_ECORRUPT, "rollup payload: column %d length at offset %zu", k, off);
        off += used;
        if (!(fields & (1u << k))) {
            /* not asked for: only its bounds were checked (the field
             * stays NaN, the count 1, from the first decoded column) */
            off += (size_t)cl;
            continue;
        }
        uint32_t got = 0;
        mk_err rc = MK_ENOTFOUND;
        if (has_rows) {
            /* the usual case: the same timestamp bytes as the first column */
            rc = mk_codec_decode_values(c, p + off, (size_t)cl, first, first_len, v, MK_CHUNK_MAX_SAMPLES, &got, diag);
            if (rc == MK_OK) {
                if (got != rows) return mk_diag_set(diag, MK_ECORRUPT, "rollup payload: column %d has %u rows, not %u", k, got, rows);
                char *dst = (char *)out + k_off[k];
                for (uint32_t i = 0; i < rows; i++, dst += sizeof *out) memcpy(dst, &v[i], sizeof v[i]);
                off += (size_t)cl;
                continue;
            }
            if (rc != MK_ENOTFOUND) return rc;
        }
        rc = mk_codec_decode(c, p + off, (size_t)cl, ts, v, MK_CHUNK_MAX_SAMPLES, &got, diag);
        if (rc) return rc;
        if (!has_rows) {
            has_rows = 1;
            first = p + off;
            first_len = (size_t)cl;
            rows = got;
            if (rows == 0 || rows > cap) return mk_diag_set(diag, MK_ECORRUPT, "rollup payload: %u buckets (room for %u)", rows, cap);
            if (k == 0) {
                for (uint32_t i = 0; i < rows; i++) {
                    /* a count is a whole number in [1, 2^53] (in that range
                     * the round trip through int64_t is exact for whole
                     * numbers only) */
                    double x = v[i];
                    if (!(x >= 1 && x <= 9007199254740992.0) || (double)(int64_t)x != x)
                        return mk_diag_set(diag, MK_ECORRUPT, "rollup payload: bucket %u has count %g", i, x);
                    out[i] = (mk_bucket){ts[i], (uint64_t)(int64_t)x, NAN, NAN, NAN, NAN, NAN, NAN};
                }
                off += (size_t)cl;
                continue;
            }
            for (uint32_t i = 0; i < rows; i++) out[i] = (mk_bucket){ts[i], 1, NAN, NAN, NAN, NAN, NAN, NAN};
        } else if (got != rows) {
            return mk_diag_set(diag, MK_ECORRUPT, "rollup payload: column %d has %u rows, not %u", k, got, rows);
        }
        /* one pass: copy, and check the times (on a mismatch the copied
         * values are not used) */
        int64_t bad = 0;
        char *dst = (char *)out + k_off[k];
        for (uint32_t i = 0; i < rows; i++, dst += sizeof *out) {
            bad |= ts[i] ^ out[i].start_ms;
            memcpy(dst, &v[i], sizeof v[i]);
        }
        if (bad) {
            uint32_t i = 0;
            while (ts[i] == out[i].start_ms) i++;
            return mk_diag_set(diag, MK_ECORRUPT, "rollup payload: column %d row %u time differs", k, i);
        }
        off += (size_t)cl;
    }
    if (off != len) return mk_diag_set(diag, MK_ECORRUPT, "rollup payload: %zu bytes left over", len - off);
    *n = rows;
    return MK_OK;
}

/* ---- tiers: open, close ------------------------------------------------ */

static void step_name(int64_t step, char *buf, size_t cap)
{
    if (step % 86400000 == 0) snprintf(buf, cap, "%" PRId64 "d", step / 86400000);
    else if (step % 3600000 == 0) snprintf(buf, cap, "%" PRId64 "h", step / 3600000);
    else if (step % 60000 == 0) snprintf(buf, cap, "%" PRId64 "m", step / 60000);
    else if (step % 1000 == 0) snprintf(buf, cap, "%" PRId64 "s", step / 1000);
    else snprintf(buf, cap, "%" PRId64 "ms", step);
}

mk_err mk_rollup_open(mk_db *db, mk_diag *diag)
{
    db->n_tiers = 0;
    if (db->opts.is_rollup_off) return MK_OK;
    int64_t ranges[MK_MAX_COMPACT_LEVELS];
    size_t n_ranges = mk_compact_ranges(&db->opts, ranges);
    /* the rollup window: the largest compaction range, else a day */
    int64_t win = n_ranges ? ranges[n_ranges - 1] : 86400000;
    db->rollup_window_ms = win;
    int64_t steps[MK_MAX_ROLLUP_TIERS];
    size_t n = 0;
    int is_default = 1;
    for (size_t i = 0; i < MK_MAX_ROLLUP_TIERS && db->opts.rollup_steps_ms[i] > 0; i++) {
        is_default = 0;
        int64_t s = db->opts.rollup_steps_ms[i];
        if (win % s != 0 || (n && s <= steps[n - 1])) {
            mk_db_log(db, MK_LOG_WARN, "rollup step %" PRId64 " ms ignored: not ascending or does not divide the rollup window of %" PRId64 " ms", s, win);
            continue;
        }
        steps[n++] = s;
    }
    if (is_default) {
        static const int64_t def[] = {300000, 3600000};
        for (size_t i = 0; i < 2; i++)
            if (win % def[i] == 0) steps[n++] = def[i];
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/rollup", db->dir);
    if (!db->opts.is_read_only) {
        int r = db->env->mkdir(db->env, path, 0755);
        if (r && r != -EEXIST) return mk_diag_set(diag, mk_err_from_errno(-r), "%s: cannot create directory: %s", path, strerror(-r));
    }
    for (size_t i = 0; i < n; i++) {
        struct mk_tier *t = &db->tiers[db->n_tiers];
        memset(t, 0, sizeof *t);
        t->step_ms = steps[i];
        step_name(steps[i], t->name, sizeof t->name);
        size_t len = strlen(db->dir) + 48;
        if (!(t->dir = malloc(len))) return mk_diag_set(diag, MK_ENOMEM, "no memory");
        snprintf(t->dir, len, "%s/rollup/%" PRId64, db->dir, steps[i]);
        db->n_tiers++;
        if (!db->opts.is_read_only) {
            int r = db->env->mkdir(db->env, t->dir, 0755);
            if (r && r != -EEXIST) return mk_diag_set(diag, mk_err_from_errno(-r), "%s: cannot create directory: %s", t->dir, strerror(-r));
        }
        mk_err rc;
        if (access(t->dir, F_OK) == 0) {
            rc = mk_db_open_block_dir(db, t->dir, MK_BLOCK_FLAG_ROLLUP, &t->bs, diag);
        } else {
            t->bs = calloc(1, sizeof *t->bs);
            rc = t->bs ? MK_OK : mk_diag_set(diag, MK_ENOMEM, "no memory");
            if (t->bs) atomic_init(&t->bs->refs, 1);
        }
        if (rc) return rc;
    }
    return MK_OK;
}

void mk_rollup_close(mk_db *db)
{
    for (size_t i = 0; i < db->n_tiers; i++) {
        mk_blockset_unref(db->tiers[i].bs);
        free(db->tiers[i].dir);
    }
    db->n_tiers = 0;
}

size_t mk_db_rollup_steps(mk_db *db, int64_t *steps_ms, size_t cap)
{
    if (!db) return 0;
    for (size_t i = 0; i < db->n_tiers && i < cap; i++) steps_ms[i] = db->tiers[i].step_ms;
    return db->n_tiers;
}

/* ---- freshness --------------------------------------------------------- */

/* Whether raw block b may hold data a rollup block of seq `rseq` has not
 * seen: a merged block keeps the highest seq of its group (compact.c), so
 * a raw block's seq is that of the newest sealed data in it. */
static int is_newer_than(const mk_block *b, uint64_t rseq) { return mk_block_seq(b) > rseq; }

/* The rollup block of window [w, w + win) in set bs (the highest seq), or
 * NULL. Rollup blocks lie inside one window, so min_ts names it. */
static const mk_block *tier_block(const mk_blockset *bs, int64_t w, int64_t win)
{
    const mk_block *best = NULL;
    for (size_t i = 0; i < bs->n; i++) {
        const mk_block *b = bs->v[i]->b;
        if (mk_floordiv(mk_block_min_ts(b), win) * win != w) continue;
        if (!best || mk_block_seq(b) > mk_block_seq(best)) best = b;
    }
    return best;
}

/* Whether raw data of window start w may be past the raw retention. */
static int is_raw_expired(const mk_db *db, int64_t w, int64_t now)
{
    int64_t ret = db->opts.retention_raw_ms;
    return ret > 0 && w < now - ret;
}

/* ---- building ---------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Per tier while building one window. */
typedef struct tbuild {
    mk_block_writer *w;
    uint64_t seq;
    mk_bucket *b;  /* [win / step] buckets of the current series */
    size_t n_b;
    const mk_block *old; /* the block replaced, or NULL */
    uint64_t n_charged;  /* payload bytes charged to the pacer */
} tbuild;

static mk_err flush_series(mk_codec *codec, tbuild *t, uint64_t id, mk_buf *enc, mk_pacer *pace, mk_diag *diag)
{
    for (size_t off = 0; off < t->n_b; off += MK_CHUNK_MAX_SAMPLES) {
        uint32_t m = (uint32_t)(t->n_b - off < MK_CHUNK_MAX_SAMPLES ? t->n_b - off : MK_CHUNK_MAX_SAMPLES);
        mk_chunk_summary sum;
        enc->len = 0;
        mk_err rc = mk_rollup_encode(codec, t->b + off, m, enc, &sum);
        if (rc) return mk_diag_set(diag, rc, "rollup: encoding %u buckets failed", m);
        mk_pacer_charge(pace, enc->len + 8); /* (+ its checksum) */
        t->n_charged += enc->len + 8;
        if ((rc = mk_block_writer_add(t->w, id, &sum, enc->data, enc->len, diag))) return rc;
    }
    t->n_b = 0;
    return MK_OK;
}

/* Builds every tier's block of window [w, w + win) from the db's current
 * view; seqs[i] were taken with the snapshot; olds[i] are the blocks they
 * replace (may be NULL); ids the series with raw chunks in the window. */
static mk_err build_window(mk_db *db, int64_t w, const uint64_t *seqs, const mk_block **olds, const uint64_t *ids,
                           size_t n_ids, mk_pacer *pace, mk_diag *diag)
{
    int64_t win = db->rollup_window_ms;
    tbuild tb[MK_MAX_ROLLUP_TIERS];
    memset(tb, 0, sizeof tb);
    mk_codec *codec = NULL;
    mk_iter *it = NULL;
    mk_buf enc = {0};
    mk_err rc = MK_OK;
    if (mk_codec_new(&codec)) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory for rollups"); goto out; }
    for (size_t t = 0; t < db->n_tiers; t++) {
        tb[t].seq = seqs[t];
        tb[t].old = olds[t];
        tb[t].b = malloc((size_t)(win / db->tiers[t].step_ms + 1) * sizeof *tb[t].b);
        if (!tb[t].b) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory for rollups"); goto out; }
        rc = mk_block_writer_open_flags(db->env, db->tiers[t].dir, seqs[t], MK_BLOCK_FLAG_ROLLUP, &tb[t].w, diag);
        if (rc) goto out;
        if (olds[t]) {
            /* the old block, and anything it still lists */
            size_t k;
            const uint64_t *r = mk_block_replaced(olds[t], &k);
            uint64_t *rep = malloc((k + 1) * sizeof *rep);
            if (!rep) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory for rollups"); goto out; }
            size_t m = 0;
            for (size_t j = 0; j < k; j++) {
                char p[4096];
                snprintf(p, sizeof p, "%s/%016" PRIx64 ".mkb", db->tiers[t].dir, r[j]);
                if (access(p, F_OK) == 0) rep[m++] = r[j];
            }
            rep[m++] = mk_block_seq(olds[t]);
            qsort(rep, m, sizeof *rep, cmp_u64);
            rc = mk_block_writer_replaces(tb[t].w, rep, m, diag);
            free(rep);
            if (rc) goto out;
        }
    }
    /* While raw data is kept forever a tier only speeds reads up, and for
     * a series sampled no more than MK_ROLLUP_MIN_DENSITY times per bucket
     * it would cost more bytes than the raw samples it summarises (NAB's
     * 5-minute series: 10 bytes per 5 min bucket of one sample); readers
     * then use raw data (window_from_tier). With a raw retention the tier
     * will be the only copy, so every series gets it. */
    int is_sparse_ok = db->opts.retention_raw_ms <= 0;
    uint32_t min_density = db->opts.rollup_min_density ? db->opts.rollup_min_density : MK_ROLLUP_MIN_DENSITY;
    for (size_t k = 0; k < n_ids; k++) {
        uint64_t n_samples = 0;
        rc = it ? mk_iter_reset(it, db, ids[k], w, w + win, diag) : mk_db_iter(db, ids[k], w, w + win, &it, diag);
        if (rc == MK_ENOTFOUND) { rc = MK_OK; continue; } /* not in the index: open refused that already */
        if (rc) goto out;
        mk_read_stats rs0, rs1;
        mk_iter_stats(it, &rs0);
        for (;;) {
            const int64_t *ts;
            const double *v;
            size_t n;
            if ((rc = mk_iter_next(it, &ts, &v, &n, diag))) goto out; /* a damaged chunk: no rollup from part of it */
            mk_iter_stats(it, &rs1);
            mk_pacer_charge(pace, rs1.n_bytes_read - rs0.n_bytes_read); /* (after the read: the iterator reads ahead) */
            rs0 = rs1;
            if (!n) break;
            n_samples += n;
            for (size_t t = 0; t < db->n_tiers; t++) {
                tbuild *x = &tb[t];
                int64_t step = db->tiers[t].step_ms;
                for (size_t i = 0; i < n; i++) {
                    int64_t s = mk_floordiv(ts[i], step) * step;
                    if (!x->n_b || x->b[x->n_b - 1].start_ms != s) x->b[x->n_b++] = (mk_bucket){.start_ms = s};
                    mk_rollup_bucket_add(&x->b[x->n_b - 1], v[i]);
                }
            }
        }
        for (size_t t = 0; t < db->n_tiers; t++) {
            if (is_sparse_ok && n_samples < (uint64_t)min_density * tb[t].n_b) {
                tb[t].n_b = 0;
                continue;
            }
            if ((rc = flush_series(codec, &tb[t], ids[k], &enc, pace, diag))) goto out;
        }
    }
    /* durable first, then published, tier by tier */
    for (size_t t = 0; t < db->n_tiers; t++) {
        rc = mk_block_writer_finish(tb[t].w, diag);
        tb[t].w = NULL;
        if (rc) goto out;
        char path[4096];
        snprintf(path, sizeof path, "%s/%016" PRIx64 ".mkb", db->tiers[t].dir, tb[t].seq);
        if (access(path, F_OK) != 0) continue; /* no samples: nothing written, the old block stays */
        mk_block *nb = NULL;
        mk_blockref *ref = NULL;
        rc = mk_block_open(db->env, path, &nb, diag);
        /* the rest of the file: header, index, footer */
        if (!rc && mk_block_file_bytes(nb) > tb[t].n_charged) mk_pacer_charge(pace, mk_block_file_bytes(nb) - tb[t].n_charged);
        if (!rc && !(ref = mk_blockref_new(nb))) {
            mk_block_close(nb);
            rc = mk_diag_set(diag, MK_ENOMEM, "no memory for rollups");
        }
        if (rc) { db->env->unlink(db->env, path); goto out; }
        size_t k = 0;
        const uint64_t *r = mk_block_replaced(nb, &k);
        pthread_mutex_lock(&db->mu);
        rc = mk_db_swap_set(&db->tiers[t].bs, r, k, ref);
        pthread_mutex_unlock(&db->mu);
        if (rc) {
            ref->is_doomed = 0; /* on disk it wins at the next open */
            mk_blockref_unref(ref);
            rc = mk_diag_set(diag, rc, "no memory to publish a rollup block");
            goto out;
        }
        for (size_t j = 0; j < k; j++) {
            if (olds[t] && r[j] == mk_block_seq(olds[t])) continue; /* goes with its last reader */
            char p2[4096];
            snprintf(p2, sizeof p2, "%s/%016" PRIx64 ".mkb", db->tiers[t].dir, r[j]);
            db->env->unlink(db->env, p2);
        }
    }
out:
    for (size_t t = 0; t < db->n_tiers; t++) {
        mk_block_writer_abort(tb[t].w);
        free(tb[t].b);
    }
    mk_iter_free(it);
    mk_codec_free(codec);
    mk_buf_free(&enc);
    return rc;
}

/* Plans and builds one window needing work; *did = 1 if it did. */
static mk_err rollup_step(mk_db *db, int is_forced, mk_pacer *pace, int64_t *cursor, int *did, mk_diag *diag)
{
    *did = 0;
    int64_t win = db->rollup_window_ms;
    int64_t now = db->env->now_ms(db->env);
    mk_err rc = MK_OK;
    int64_t *wins = NULL;
    uint64_t *ids = NULL;
    size_t n_wins = 0, cap_wins = 0, n_ids = 0;
    uint64_t seqs[MK_MAX_ROLLUP_TIERS] = {0};
    const mk_block *olds[MK_MAX_ROLLUP_TIERS] = {0};
    mk_blockset *tsets[MK_MAX_ROLLUP_TIERS] = {0};
    int64_t w = 0;
    int is_found = 0;

    pthread_mutex_lock(&db->mu);
    mk_blockset *bs = db->blocks;
    atomic_fetch_add(&bs->refs, 1);
    for (size_t t = 0; t < db->n_tiers; t++) {
        tsets[t] = db->tiers[t].bs;
        atomic_fetch_add(&tsets[t]->refs, 1);
    }
    /* Only windows over by the clock (and, for the thread, sealed): the
     * current week's raw data answers its queries, and building its tiers
     * early would only be redone as the week fills up. */
    int64_t done_before = is_forced ? now : (db->sealed_until_ms < now ? db->sealed_until_ms : now);
    /* the windows raw blocks touch, from *cursor on (windows before it
     * were looked at in this run) */
    for (size_t i = 0; i < bs->n && !rc; i++) {
        const mk_block *b = bs->v[i]->b;
        int64_t w0 = mk_floordiv(mk_block_min_ts(b), win) * win, w1 = mk_floordiv(mk_block_max_ts(b), win) * win;
        if (w0 < *cursor) w0 = *cursor;
        for (int64_t x = w0; x <= w1; x += win) {
            if (n_wins == cap_wins) {
                cap_wins = cap_wins ? cap_wins * 2 : 64;
                int64_t *p = realloc(wins, cap_wins * sizeof *p);
                if (!p) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory for rollups"); break; }
                wins = p;
            }
            wins[n_wins++] = x;
            if (x > INT64_MAX - win) break;
        }
    }
    if (n_wins) qsort(wins, n_wins, sizeof *wins, cmp_i64);
    for (size_t i = 0; i < n_wins && !rc && !is_found; i++) {
        if (i && wins[i] == wins[i - 1]) continue;
        w = wins[i];
        if (w > INT64_MAX - win || w + win > done_before) break; /* unfinished from here on */
        int is_needed = 0, is_expired = is_raw_expired(db, w, now);
        for (size_t t = 0; t < db->n_tiers; t++) {
            olds[t] = tier_block(tsets[t], w, win);
            if (!olds[t]) { is_needed = 1; continue; }
            if (is_expired) continue;
            for (size_t k = 0; k < bs->n && !is_needed; k++) {
                const mk_block *b = bs->v[k]->b;
                if (mk_block_max_ts(b) < w || mk_block_min_ts(b) >= w + win) continue;
                is_needed = is_newer_than(b, mk_block_seq(olds[t]));
            }
        }
        if (!is_needed) continue;
        /* series with raw chunks in the window */
        for (size_t k = 0; k < bs->n && !rc; k++) {
            const mk_block *b = bs->v[k]->b;
            if (mk_block_max_ts(b) < w || mk_block_min_ts(b) >= w + win) continue;
            size_t nc;
            const mk_block_chunk *c = mk_block_chunks(b, &nc);
            uint64_t *p = realloc(ids, (n_ids + nc + 1) * sizeof *p);
            if (!p) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory for rollups"); break; }
            ids = p;
            for (size_t j = 0; j < nc; j++) {
                if (c[j].sum.last_ts_ms < w || c[j].sum.first_ts_ms >= w + win) continue;
                if (n_ids && ids[n_ids - 1] == c[j].series_id) continue;
                ids[n_ids++] = c[j].series_id;
            }
        }
        if (n_ids == 0) continue; /* the blocks have nothing inside the window */
        is_found = 1;
        for (size_t t = 0; t < db->n_tiers; t++) seqs[t] = db->next_block_seq++;
    }
    pthread_mutex_unlock(&db->mu);
    if (rc || !is_found) {
        if (!rc) *cursor = INT64_MAX;
        goto out;
    }
    qsort(ids, n_ids, sizeof *ids, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (!u || ids[u - 1] != ids[i]) ids[u++] = ids[i];
    n_ids = u;
    rc = build_window(db, w, seqs, olds, ids, n_ids, pace, diag);
    /* the window's raw pages were read once: do not keep them resident */
    for (size_t k = 0; k < bs->n; k++) {
        const mk_block *b = bs->v[k]->b;
        if (mk_block_max_ts(b) >= w && mk_block_min_ts(b) < w + win) mk_block_drop_pages(b);
    }
    if (!rc) {
        *did = 1;
        *cursor = w + win;
    }
out:
    mk_blockset_unref(bs);
    for (size_t t = 0; t < db->n_tiers; t++) mk_blockset_unref(tsets[t]);
    free(wins);
    free(ids);
    return rc;
}

mk_err mk_rollup_run(mk_db *db, int is_forced, mk_pacer *pace, mk_diag *diag)
{
    if (db->n_tiers == 0 || db->opts.is_read_only) return MK_OK;
    mk_err rc = MK_OK;
    int64_t cursor = INT64_MIN;
    for (int did = 1; did && !rc;) {
        pthread_mutex_lock(&db->mu);
        int is_stopping = db->is_compact_stopping && !is_forced;
        pthread_mutex_unlock(&db->mu);
        if (is_stopping) break;
        rc = rollup_step(db, is_forced, pace, &cursor, &did, diag);
    }
    return rc;
}

/* ---- reading ----------------------------------------------------------- */

/* Raw data is read in windows of this size (buckets wider than it are
 * combined across windows). */
static int64_t iter_win(const mk_db *db) { return db->rollup_window_ms > 0 ? db->rollup_window_ms : 86400000; }

/*
 * Decoding scratch of freed bucket iterators (a codec and two sample
 * buffers), kept for the next ones: mk_codec_new zeroes tens of KiB, and a
 * query reading one series of a year from the 1 h tier (52 chunks) spent a
 * tenth of its instructions and most of its page faults there. At most
 * SCRATCH_POOL sets are kept, for the life of the process (a few hundred
 * KiB); each is used by one iterator at a time.
 */
typedef struct dscratch {
    mk_codec *codec;
    int64_t *ts; /* [MK_CHUNK_MAX_SAMPLES] */
    double *v;   /* [MK_CHUNK_MAX_SAMPLES] */
    mk_bucket *in, *out; /* a freed iterator's bucket buffers (may be NULL), for the next */
    size_t cap_in, cap_out;
} dscratch;

#define SCRATCH_POOL 4
static pthread_mutex_t g_scratch_mu = PTHREAD_MUTEX_INITIALIZER;
static dscratch g_scratch[SCRATCH_POOL];
static size_t g_n_scratch;

static void scratch_free(dscratch *s)
{
    mk_codec_free(s->codec);
    free(s->ts);
    free(s->v);
    free(s->in);
    free(s->out);
    *s = (dscratch){0};
}

/* A complete set in *s (taken from the pool or made); MK_ENOMEM. */
static mk_err scratch_get(dscratch *s)
{
    pthread_mutex_lock(&g_scratch_mu);
    int has = g_n_scratch > 0;
    if (has) *s = g_scratch[--g_n_scratch];
    pthread_mutex_unlock(&g_scratch_mu);
    if (has) return MK_OK;
    *s = (dscratch){0};
    if (mk_codec_new(&s->codec) != MK_OK || !(s->ts = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *s->ts)) ||
        !(s->v = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *s->v))) {
        scratch_free(s);
        return MK_ENOMEM;
    }
    return MK_OK;
}

/* Gives a set back (freed when the pool is full); *s is emptied. */
static void scratch_put(dscratch *s)
{
    if (!s->codec) return;
    pthread_mutex_lock(&g_scratch_mu);
    int is_kept = g_n_scratch < SCRATCH_POOL;
    if (is_kept) g_scratch[g_n_scratch++] = *s;
    pthread_mutex_unlock(&g_scratch_mu);
    if (is_kept) *s = (dscratch){0};
    else scratch_free(s);
}

/*
 * A snapshot's blocks by time, for the per-window questions of the bucket
 * iterator (which tier block covers window w, which raw blocks overlap it,
 * where the next data starts), answered by binary search instead of a scan
 * of every block per window (a year's query is 53 windows over 53 raw and
 * 53 tier blocks). Built once per snapshot and kept across resets while the
 * snapshot is the same (the iterator holds a reference to it meanwhile, so
 * the same address is the same set).
 */
typedef struct bspan {
    int64_t lo, hi;     /* mk_block_min_ts / max_ts */
    uint64_t seq;
    const mk_block *b;
} bspan;

typedef struct bindex {
    const mk_blockset *of; /* the snapshot indexed, NULL: none yet */
    bspan *v;              /* [n] by lo, then seq */
    int64_t *hmax;         /* [n]: the largest hi of v[0..i] */
    size_t n, cap;
} bindex;

static int cmp_bspan(const void *a, const void *b)
{
    const bspan *x = a, *y = b;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static mk_err bindex_build(bindex *ix, const mk_blockset *bs)
{
    ix->of = NULL;
    if (bs->n > ix->cap) {
        bspan *v = realloc(ix->v, bs->n * sizeof *v);
        if (!v) return MK_ENOMEM;
        ix->v = v;
        int64_t *h = realloc(ix->hmax, bs->n * sizeof *h);
        if (!h) return MK_ENOMEM;
        ix->hmax = h;
        ix->cap = bs->n;
    }
    for (size_t i = 0; i < bs->n; i++) {
        const mk_block *b = bs->v[i]->b;
        ix->v[i] = (bspan){mk_block_min_ts(b), mk_block_max_ts(b), mk_block_seq(b), b};
    }
    ix->n = bs->n;
    int is_sorted = 1; /* (blocks compacted in time order come sorted already) */
    for (size_t i = 1; i < ix->n && is_sorted; i++) is_sorted = cmp_bspan(&ix->v[i - 1], &ix->v[i]) <= 0;
    if (!is_sorted) qsort(ix->v, ix->n, sizeof *ix->v, cmp_bspan);
    for (size_t i = 0; i < ix->n; i++) ix->hmax[i] = i && ix->hmax[i - 1] > ix->v[i].hi ? ix->hmax[i - 1] : ix->v[i].hi;
    ix->of = bs;
    return MK_OK;
}

/* The first span with lo >= t (n when none). */
static size_t bindex_lower(const bindex *ix, int64_t t)
{
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->v[mid].lo < t) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* The smallest start of a block with data at or after e (a block spanning
 * e gives a start before e); INT64_MAX when none. */
static int64_t bindex_next(const bindex *ix, int64_t e)
{
    size_t i = bindex_lower(ix, e);
    if (i > 0 && ix->hmax[i - 1] >= e) return e - 1; /* something spans e */
    return i < ix->n ? ix->v[i].lo : INT64_MAX;
}

struct mk_bucket_iter {
    mk_db *db;
    uint64_t id;
    int64_t step, base; /* asked width; width read (a tier's, or step when raw) */
    int tier;           /* -1: raw */
    int64_t from, to;   /* widened to whole buckets of step */
    int64_t w;          /* next rollup window to read */
    mk_blockset *bs;    /* raw snapshot */
    mk_blockset *ts;    /* the tier's snapshot */
    int64_t head_lo, head_hi; /* the series' head samples' range (lo > hi: none) */
    mk_iter *raw;
    dscratch dec;       /* decoding scratch (from the pool), when a tier chunk was read */
    mk_bucket *in;      /* buckets of one window at the base width */
    size_t n_in, cap_in;
    mk_bucket cur;      /* the output bucket being combined */
    mk_bucket *out;
    size_t n_out, cap_out;
    mk_read_stats st;
    unsigned fields;    /* MK_BUCKET_* read from tiers */
    int is_done;
    bindex ri, ti;      /* bs and ts by time */
    /* the series' chunks in the tier blocks ti.v[f_lo..f_hi), found in
     * one batch (mk_block_find_many) by the first window read from the
     * tier; f_hi == 0: not yet */
    const mk_block_chunk **fc;
    size_t *fn, f_lo, f_hi, f_cap;
};

static void bucket_iter_release(mk_bucket_iter *it)
{
    mk_blockset_unref(it->bs);
    mk_blockset_unref(it->ts);
    it->bs = it->ts = NULL;
}

mk_err mk_bucket_iter_reset(mk_bucket_iter *it, mk_db *db, uint64_t series_id, int64_t step_ms, int64_t from_ms,
                            int64_t to_ms, mk_diag *diag)
{
    /* the old snapshot is let go after the new one is held, so an index
     * of the same address is of the same snapshot */
    mk_blockset *old_bs = it->bs, *old_ts = it->ts;
    it->bs = it->ts = NULL;
    mk_err rc = MK_OK;
    it->is_done = 1;
    if (step_ms <= 0) { rc = mk_diag_set(diag, MK_EINVAL, "bucket width %" PRId64 " ms", step_ms); goto out; }
    it->db = db;
    it->id = series_id;
    it->step = step_ms;
    it->tier = -1;
    it->base = step_ms;
    int64_t win = iter_win(db);
    for (size_t t = db->n_tiers; t-- > 0;)
        if (step_ms % db->tiers[t].step_ms == 0) { it->tier = (int)t; it->base = db->tiers[t].step_ms; break; }
    it->from = mk_floordiv(from_ms, step_ms) * step_ms;
    it->to = to_ms;
    if (to_ms < INT64_MAX - step_ms) it->to = mk_floordiv(to_ms + step_ms - 1, step_ms) * step_ms;
    it->w = mk_floordiv(it->from, win) * win;
    it->n_in = it->n_out = 0;
    it->cur = (mk_bucket){0};
    it->f_lo = it->f_hi = 0;
    pthread_mutex_lock(&db->mu);
    uint32_t ord;
    if (mk_index_ordinal(db->index, series_id, &ord) != MK_OK) {
        pthread_mutex_unlock(&db->mu);
        rc = mk_diag_set(diag, MK_ENOTFOUND, "no series with id %016" PRIx64, series_id);
        goto out;
    }
    it->bs = db->blocks;
    atomic_fetch_add(&it->bs->refs, 1);
    if (it->tier >= 0) {
        it->ts = db->tiers[it->tier].bs;
        atomic_fetch_add(&it->ts->refs, 1);
    }
    /* where the head has samples of the series: rollups cannot know them */
    const mk_series *s = &db->series[ord];
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    if (s->n_hck) { lo = s->hck[0].first_ts; hi = s->hck[s->n_hck - 1].last_ts; }
    if (s->xor.count) {
        if (s->xor.first_ts < lo) lo = s->xor.first_ts;
        if (s->xor.last_ts > hi) hi = s->xor.last_ts;
    }
    for (uint32_t i = 0; i < s->n_ooo; i++) {
        if (s->ooo[i].ts < lo) lo = s->ooo[i].ts;
        if (s->ooo[i].ts > hi) hi = s->ooo[i].ts;
    }
    it->head_lo = lo;
    it->head_hi = hi;
    pthread_mutex_unlock(&db->mu);
    if ((it->ri.of != it->bs && bindex_build(&it->ri, it->bs)) || (it->ts && it->ti.of != it->ts && bindex_build(&it->ti, it->ts))) {
        rc = mk_diag_set(diag, MK_ENOMEM, "no memory for an iterator");
        goto out;
    }
    it->is_done = it->from >= it->to;
out:
    if (rc) {
        it->is_done = 1;
        bucket_iter_release(it);
    }
    /* an index of a snapshot no longer held is forgotten: another set
     * may come to live at its address */
    if (it->ri.of != it->bs) it->ri.of = NULL;
    if (it->ti.of != it->ts) it->ti.of = NULL;
    mk_blockset_unref(old_bs);
    mk_blockset_unref(old_ts);
    return rc;
}

mk_err mk_db_iter_buckets(mk_db *db, uint64_t series_id, int64_t step_ms, int64_t from_ms, int64_t to_ms,
                          mk_bucket_iter **out, mk_diag *diag)
{
    if (!db || !out) return mk_diag_set(diag, MK_EINVAL, "mk_db_iter_buckets: NULL argument");
    *out = NULL;
    mk_bucket_iter *it = calloc(1, sizeof *it);
    if (!it) return mk_diag_set(diag, MK_ENOMEM, "no memory for an iterator");
    it->fields = MK_BUCKET_ALL;
    mk_err rc = mk_bucket_iter_reset(it, db, series_id, step_ms, from_ms, to_ms, diag);
    if (rc) { mk_bucket_iter_free(it); return rc; }
    *out = it;
    return MK_OK;
}

void mk_bucket_iter_fields(mk_bucket_iter *it, unsigned fields) { it->fields = fields | MK_BUCKET_COUNT; }
void mk_bucket_iter_fields_only(mk_bucket_iter *it, unsigned fields) { it->fields = fields & MK_BUCKET_ALL; }

mk_err mk_db_bucket_totals(mk_db *db, uint64_t series_id, int64_t step_ms, int64_t from_ms, int64_t to_ms,
                           int is_whole_only, double *n, double *sum, double *sumsq, mk_diag *diag)
{
    *n = 0;
    *sum = 0;
    if (sumsq) *sumsq = 0;
    mk_bucket_iter *it = NULL;
    mk_err rc = mk_db_iter_buckets(db, series_id, step_ms, from_ms, to_ms, &it, diag);
    if (rc) return rc;
    mk_bucket_iter_fields(it, MK_BUCKET_COUNT | MK_BUCKET_SUM | (sumsq ? MK_BUCKET_SUMSQ : 0u));
    for (;;) {
        const mk_bucket *b;
        size_t k;
        if ((rc = mk_bucket_iter_next(it, &b, &k, diag)) || k == 0) break;
        for (size_t i = 0; i < k; i++) {
            int64_t lo = b[i].start_ms > from_ms ? b[i].start_ms : from_ms;
            int64_t hi = b[i].start_ms <= INT64_MAX - step_ms ? b[i].start_ms + step_ms : INT64_MAX;
            if (hi > to_ms) hi = to_ms;
            if (hi <= lo || !b[i].count || (is_whole_only && hi - lo < step_ms)) continue;
            double w = (double)(hi - lo) / (double)step_ms;
            *n += w * (double)b[i].count;
            *sum += w * b[i].sum;
            if (sumsq) *sumsq += w * b[i].sumsq;
        }
    }
    mk_bucket_iter_free(it);
    return rc;
}

int64_t mk_db_finest_tier_with_data(mk_db *db, int64_t from_ms, int64_t to_ms)
{
    int64_t steps[MK_MAX_ROLLUP_TIERS];
    size_t n = mk_db_rollup_steps(db, steps, MK_MAX_ROLLUP_TIERS);
    for (size_t t = 0; t < n; t++)
        if (mk_db_tier_has_data(db, steps[t], from_ms, to_ms)) return steps[t];
    return 0;
}

void mk_bucket_iter_free(mk_bucket_iter *it)
{
    if (!it) return;
    bucket_iter_release(it);
    mk_iter_free(it->raw);
    free(it->ri.v);
    free(it->ri.hmax);
    free(it->ti.v);
    free(it->ti.hmax);
    free(it->fc);
    free(it->fn);
    if (it->dec.codec) { /* the bucket buffers go with the set (its own were handed to this iterator) */
        free(it->dec.in);
        free(it->dec.out);
        it->dec.in = it->in;
        it->dec.cap_in = it->cap_in;
        it->dec.out = it->out;
        it->dec.cap_out = it->cap_out;
        it->in = it->out = NULL;
    }
    scratch_put(&it->dec);
    free(it->in);
    free(it->out);
    free(it);
}

void mk_bucket_iter_stats(const mk_bucket_iter *it, mk_read_stats *st)
{
    *st = it->st;
    if (it->raw) {
        mk_read_stats r;
        mk_iter_stats(it->raw, &r);
        st->n_chunks_decoded += r.n_chunks_decoded;
        st->n_samples_decoded += r.n_samples_decoded;
        st->n_bytes_read += r.n_bytes_read;
    }
}

static mk_err in_push(mk_bucket_iter *it, const mk_bucket *b)
{
    if (it->n_in == it->cap_in) {
        size_t cap = it->cap_in ? it->cap_in * 2 : 256;
        mk_bucket *p = realloc(it->in, cap * sizeof *p);
        if (!p) return MK_ENOMEM;
        it->in = p;
        it->cap_in = cap;
    }
    it->in[it->n_in++] = *b;
    return MK_OK;
}

/* Buckets of window [a, b) at the base width, from raw samples. */
static mk_err window_from_raw(mk_bucket_iter *it, int64_t a, int64_t b, mk_diag *diag)
{
    mk_err rc = it->raw ? mk_iter_reset(it->raw, it->db, it->id, a, b, diag) : mk_db_iter(it->db, it->id, a, b, &it->raw, diag);
    if (rc) return rc;
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t n;
        if ((rc = mk_iter_next(it->raw, &ts, &v, &n, diag))) return rc;
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            int64_t s = mk_floordiv(ts[i], it->base) * it->base;
            if (!it->n_in || it->in[it->n_in - 1].start_ms != s) {
                mk_bucket nb = {.start_ms = s};
                if (in_push(it, &nb)) return mk_diag_set(diag, MK_ENOMEM, "no memory");
            }
            mk_rollup_bucket_add(&it->in[it->n_in - 1], v[i]);
        }
    }
    return MK_OK;
}

/* Buckets of window [a, b) from the tier's block, or MK_ENOTFOUND when it
 * cannot answer (no block, or data newer than it). */
static mk_err window_from_tier(mk_bucket_iter *it, int64_t w, int64_t a, int64_t b, mk_diag *diag)
{
    int64_t win = it->db->rollup_window_ms;
    /* the window's tier block (the highest seq: the tier's blocks lie
     * inside one window each, as tier_block() reads them) */
    const mk_block *rb = NULL;
    uint64_t rseq = 0;
    size_t kb = 0, k0 = bindex_lower(&it->ti, w);
    for (size_t k = k0; k < it->ti.n && it->ti.v[k].lo < w + win; k++)
        if (!rb || it->ti.v[k].seq > rseq) { rb = it->ti.v[k].b; rseq = it->ti.v[k].seq; kb = k; }
    if (!rb) return MK_ENOTFOUND;
    if (!it->f_hi) {
        /* the first window from the tier: the series' chunks in every tier
         * block up to the end of the range, in one batch */
        size_t k1 = k0;
        while (k1 < it->ti.n && it->ti.v[k1].lo < it->to) k1++;
        if (k1 - k0 > it->f_cap) {
            const mk_block_chunk **fc = realloc(it->fc, (k1 - k0) * sizeof *fc);
            if (fc) it->fc = fc;
            size_t *fn = fc ? realloc(it->fn, (k1 - k0) * sizeof *fn) : NULL;
            if (fn) { it->fn = fn; it->f_cap = k1 - k0; }
        }
        if (k1 - k0 <= it->f_cap) {
            const mk_block *bl[64];
            for (size_t k = k0; k < k1; k += 64) {
                size_t m = k1 - k < 64 ? k1 - k : 64;
                for (size_t j = 0; j < m; j++) bl[j] = it->ti.v[k + j].b;
                mk_block_find_many(bl, m, it->id, it->fc + (k - k0), it->fn + (k - k0));
            }
            it->f_lo = k0;
            it->f_hi = k1;
        }
    }
    int is_expired = is_raw_expired(it->db, w, it->db->env->now_ms(it->db->env));
    if (!is_expired) {
        if (it->head_lo <= it->head_hi && it->head_lo < w + win && it->head_hi >= w) return MK_ENOTFOUND;
        /* raw blocks over the window: those starting before its end whose
         * end is in it or later (back from the first starting at the end,
         * while some earlier block still reaches w) */
        for (size_t k = bindex_lower(&it->ri, w + win); k-- > 0 && it->ri.hmax[k] >= w;) {
            const bspan *x = &it->ri.v[k];
            if (x->hi < w || x->seq <= rseq) continue;
            /* newer raw block: does it hold this series here? */
            size_t n;
            const mk_block_chunk *c = mk_block_find(x->b, it->id, &n);
            for (size_t j = 0; j < n; j++)
                if (c[j].sum.last_ts_ms >= w && c[j].sum.first_ts_ms < w + win) return MK_ENOTFOUND;
        }
    }
    size_t n;
    const mk_block_chunk *c;
    if (kb >= it->f_lo && kb < it->f_hi) { c = it->fc[kb - it->f_lo]; n = it->fn[kb - it->f_lo]; }
    else c = mk_block_find(rb, it->id, &n);
    if (n == 0 && !is_expired) return MK_ENOTFOUND; /* a sparse series left out: raw answers */
    for (size_t j = 0; j < n; j++) {
        if (c[j].sum.last_ts_ms < a || c[j].sum.first_ts_ms >= b) continue;
        if (!it->dec.codec) {
            if (scratch_get(&it->dec)) return mk_diag_set(diag, MK_ENOMEM, "no memory");
            /* a fresh iterator takes the set's bucket buffers (pages
             * already touched: faults cost more than the buckets here) */
            if (!it->in && it->dec.in) { it->in = it->dec.in; it->cap_in = it->dec.cap_in; it->dec.in = NULL; it->dec.cap_in = 0; }
            if (!it->out && it->dec.out) { it->out = it->dec.out; it->cap_out = it->dec.cap_out; it->dec.out = NULL; it->dec.cap_out = 0; }
        }
        while (it->cap_in < it->n_in + c[j].sum.count) {
            size_t cap = it->cap_in ? it->cap_in * 2 : 256;
            mk_bucket *p = realloc(it->in, cap * sizeof *p);
            if (!p) return mk_diag_set(diag, MK_ENOMEM, "no memory");
            it->in = p;
            it->cap_in = cap;
        }
        const uint8_t *p;
        mk_err rc = mk_block_payload(rb, &c[j], &p, diag);
        uint32_t got = 0;
        if (!rc) rc = mk_rollup_decode_some(it->dec.codec, p, c[j].len, it->fields, it->in + it->n_in,
                                            (uint32_t)(it->cap_in - it->n_in), &got, it->dec.ts, it->dec.v, diag);
        if (rc) {
            char why[sizeof diag->msg];
            snprintf(why, sizeof why, "%s", diag ? diag->msg : "bad rollup chunk");
            return mk_diag_set(diag, rc == MK_ENOTFOUND ? MK_ECORRUPT : rc, "%s: chunk at offset %" PRIu64 ": %s",
                               mk_block_path(rb), c[j].offset, why);
        }
        it->st.n_chunks_summary++;
        it->st.n_bytes_read += c[j].len;
        /* keep the buckets inside [a, b) (all of them, mostly: then
         * nothing moves) */
        const mk_bucket *x = &it->in[it->n_in];
        if (x[0].start_ms >= a && x[got - 1].start_ms < b) {
            it->n_in += got;
            continue;
        }
        size_t k = it->n_in;
        for (uint32_t i = 0; i < got; i++)
            if (x[i].start_ms >= a && x[i].start_ms < b) it->in[k++] = x[i];
        it->n_in = k;
    }
    return MK_OK;
}

static mk_err out_push(mk_bucket_iter *it)
{
    if (it->cur.count == 0) return MK_OK;
    if (it->n_out == it->cap_out) {
        size_t cap = it->cap_out ? it->cap_out * 2 : 64;
        mk_bucket *p = realloc(it->out, cap * sizeof *p);
        if (!p) return MK_ENOMEM;
        it->out = p;
        it->cap_out = cap;
    }
    it->out[it->n_out++] = it->cur;
    it->cur.count = 0;
    return MK_OK;
}

mk_err mk_bucket_iter_next(mk_bucket_iter *it, const mk_bucket **b, size_t *n, mk_diag *diag)
{
    *n = 0;
    *b = NULL;
    it->n_out = 0;
    int64_t win = iter_win(it->db);
    /* at least one window's worth of buckets per call */
    while (!it->is_done && it->n_out == 0) {
        int64_t w = it->w;
        int64_t a = w > it->from ? w : it->from;
        int64_t e = w > INT64_MAX - win ? INT64_MAX : w + win;
        int64_t z = e < it->to ? e : it->to;
        it->n_in = 0;
        mk_err rc = MK_ENOTFOUND;
        if (it->tier >= 0) rc = window_from_tier(it, w, a, z, diag);
        if (rc == MK_ENOTFOUND) {
            it->n_in = 0;
            rc = window_from_raw(it, a, z, diag);
        }
        if (rc) return rc;
        if (it->step == it->base && it->cur.count == 0 && it->n_out == 0) {
            /* each input bucket is an output bucket (ascending, distinct
             * starts, count > 0): hand the window's buffer out as it is */
            mk_bucket *t = it->out;
            size_t tc = it->cap_out;
            it->out = it->in;
            it->cap_out = it->cap_in;
            it->n_out = it->n_in;
            it->in = t;
            it->cap_in = tc;
            it->n_in = 0;
        }
        if (it->step == it->base && it->cur.count == 0) {
            /* each input bucket is an output bucket (ascending, distinct
             * starts): append them without merging one by one */
            if (it->n_out + it->n_in > it->cap_out) {
                size_t cap = it->cap_out ? it->cap_out : 64;
                while (cap < it->n_out + it->n_in) cap *= 2;
                mk_bucket *p = realloc(it->out, cap * sizeof *p);
                if (!p) return mk_diag_set(diag, MK_ENOMEM, "no memory");
                it->out = p;
                it->cap_out = cap;
            }
            for (size_t i = 0; i < it->n_in; i++)
                if (it->in[i].count) it->out[it->n_out++] = it->in[i];
            it->n_in = 0;
        }
        for (size_t i = 0; i < it->n_in; i++) {
            const mk_bucket *x = &it->in[i];
            int64_t s = mk_floordiv(x->start_ms, it->step) * it->step;
            if (it->cur.count && it->cur.start_ms != s && out_push(it)) return mk_diag_set(diag, MK_ENOMEM, "no memory");
            if (it->cur.count == 0) it->cur = (mk_bucket){.start_ms = s};
            mk_rollup_bucket_merge(&it->cur, x);
        }
        if (e >= it->to || e == INT64_MAX) {
            it->is_done = 1;
            if (out_push(it)) return mk_diag_set(diag, MK_ENOMEM, "no memory");
        } else {
            it->w = e;
            /* skip windows with no data at all */
            {
                int64_t next = bindex_next(&it->ri, e);
                if (it->ts) {
                    int64_t t = bindex_next(&it->ti, e);
                    if (t < next) next = t;
                }
                if (it->head_lo <= it->head_hi && it->head_hi >= e && it->head_lo < next) next = it->head_lo;
                if (next > e) {
                    if (next >= it->to) it->w = it->to;
                    else it->w = mk_floordiv(next, win) * win;
                    if (it->w >= it->to) {
                        it->is_done = 1;
                        if (out_push(it)) return mk_diag_set(diag, MK_ENOMEM, "no memory");
                    }
                }
            }
        }
    }
    *b = it->out;
    *n = it->n_out;
    return MK_OK;
}

int mk_db_tier_has_data(mk_db *db, int64_t step_ms, int64_t from_ms, int64_t to_ms)
{
    int has = 0;
    pthread_mutex_lock(&db->mu);
    for (size_t t = 0; t < db->n_tiers && !has; t++) {
        if (db->tiers[t].step_ms != step_ms) continue;
        const mk_blockset *bs = db->tiers[t].bs;
        for (size_t i = 0; i < bs->n && !has; i++)
            has = mk_block_max_ts(bs->v[i]->b) >= from_ms && mk_block_min_ts(bs->v[i]->b) < to_ms;
    }
    pthread_mutex_unlock(&db->mu);
    return has;
}

mk_err mk_db_finest_tier(mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms, int64_t *step_ms,
                         mk_diag *diag)
{
    (void)to_ms;
    if (!db || !step_ms) return mk_diag_set(diag, MK_EINVAL, "mk_db_finest_tier: NULL argument");
    uint32_t ord;
    pthread_mutex_lock(&db->mu);
    mk_err rc = mk_index_ordinal(db->index, series_id, &ord);
    pthread_mutex_unlock(&db->mu);
    if (rc) return mk_diag_set(diag, MK_ENOTFOUND, "no series with id %016" PRIx64, series_id);
    int64_t now = db->env->now_ms(db->env);
    /* reach: the oldest time a tier still holds under its retention */
    int64_t ret = db->opts.retention_raw_ms;
    if (ret <= 0 || from_ms >= now - ret) { *step_ms = 0; return MK_OK; }
    int64_t best_reach = now - ret, best = 0;
    for (size_t t = 0; t < db->n_tiers; t++) {
        int64_t r = db->opts.retention_rollup_ms[t];
        int64_t reach = r > 0 ? now - r : INT64_MIN;
        if (reach <= from_ms) { *step_ms = db->tiers[t].step_ms; return MK_OK; }
        if (reach < best_reach) { best_reach = reach; best = db->tiers[t].step_ms; }
    }
    *step_ms = best;
    return MK_OK;
}

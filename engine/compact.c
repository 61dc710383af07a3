/*
 * engine/compact.c — compaction: small blocks merge into larger ones.
 *
 * Levels: blocks are sealed per block span (2 h); compaction builds blocks
 * of the ranges in opts.compact_ranges_ms (default 1 d, 7 d). A pass looks
 * at the ranges largest first: the blocks that start in one window of the
 * range (and, below the largest range, end in it too) form a group; a
 * group of two or more in a finished window (its end at or before
 * sealed_until_ms, or any window when forced) is merged into one block.
 * So a finished week of 2 h blocks becomes one block directly, while the
 * current week's finished days become day blocks first. A late
 * (out-of-order or backfilled) block lands in the window of its time range
 * and merges with the block already there at the next pass.
 *
 * Seq order must survive a merge: where blocks overlap, the higher seq
 * wins. The merged block takes the highest seq of its group, replacing
 * that block's file by an atomic rename (it lists its own seq as
 * replaced; FORMAT.md). So a group must include every block that overlaps
 * the group's time range and has a seq above the group's lowest (otherwise
 * the merged block would wrongly win over it, or lose to it); the planner
 * closes the group over such blocks (growing its time range) and skips it
 * if it gets too large. Blocks with lower seqs lose to every member
 * anyway, and to the merged block. A block's seq thus stays the seq of the
 * newest sealed data in it, which rollups use to tell stale buckets.
 *
 * Merging streams: per series (ids ascending through all the group's
 * blocks), one cursor per block that has the series, each holding at most
 * one decoded chunk; samples come out in time order, the highest seq
 * winning on equal timestamps (what readers do, db_read.c), and are
 * re-encoded into chunks of about equal size, as long as
 * MK_CHUNK_MAX_SAMPLES allows. A chunk that overlaps nothing and is already
 * long is copied as is. Memory: group size × one chunk (≤ 128 × 128 KiB =
 * 16 MiB) plus the writer's buffer and chunk index; independent of the span.
 *
 * I/O pacing (mk_pacer, compact.h): every chunk payload read from a group
 * block and every chunk written is charged to a token bucket before the
 * I/O, and after a merge the rest of both files (headers, indexes,
 * footers), so a merge costs exactly its input files' bytes plus its
 * output's. The background thread keeps one bucket for its life at
 * opts.compact_max_bytes_per_s (32 MiB/s by default) and sleeps through
 * env->sleep_ms; a close request, or a caller of mk_db_compact or
 * mk_db_retention waiting for the run, lifts the pace so they never wait
 * on it; mk_db_compact paces at opts.compact_sync_max_bytes_per_s (default
 * unpaced). Rollup building (rollup.c) is charged to the same bucket: the
 * raw chunk bytes it reads and the rollup block bytes it writes.
 *
 * Crash safety: the merged block lists the seqs it replaces (its group's,
 * its own among them, plus any older replaced seqs whose files still
 * exist), is made durable (block.c: tmp, fsync, rename over the group's
 * newest block, fsync dir), then published; the other replaced blocks are
 * unlinked when the last reader lets go of them (readers of the renamed-
 * over block keep its old inode mapped). A crash before the rename leaves
 * a .tmp, removed at open, and the old set; after it, open drops (and
 * unlinks) the replaced blocks: the new set.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compact.h"
#include "db_int.h"
#include "format.h"
#include "util.h"

#define MK_COMPACT_MAX_GROUP 128
#define MK_COMPACT_DEFAULT_INTERVAL_MS 60000

/* ---- planning ---------------------------------------------------------- */

size_t mk_compact_ranges(const mk_options *o, int64_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < MK_MAX_COMPACT_LEVELS && o->compact_ranges_ms[i] > 0; i++) {
        int64_t r = o->compact_ranges_ms[i];
        /* keep only ranges that are multiples of the span and of the range
         * before: windows of one level then nest inside the next */
        if (r % o->block_span_ms != 0 || r <= o->block_span_ms) continue;
        if (n && (r <= out[n - 1] || r % out[n - 1] != 0)) continue;
        out[n++] = r;
    }
    if (n == 0 && o->compact_ranges_ms[0] == 0) {
        static const int64_t def[] = {86400000LL, 7 * 86400000LL};
        for (size_t i = 0; i < 2; i++)
            if (def[i] > o->block_span_ms && def[i] % o->block_span_ms == 0) out[n++] = def[i];
    }
    return n;
}

static int cmp_lo(const void *a, const void *b)
{
    const mk_compact_blk *x = *(mk_compact_blk *const *)a, *y = *(mk_compact_blk *const *)b;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Adds to g every block overlapping the group's range with a seq above its
 * lowest, until none is left out. Returns 0, or -1 if it grew past max. */
static int close_group(const mk_compact_blk *v, size_t n, size_t *g, size_t *n_g, size_t max, char *in)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    uint64_t min_seq = UINT64_MAX;
    for (size_t i = 0; i < *n_g; i++) {
        const mk_compact_blk *b = &v[g[i]];
        if (b->lo < lo) lo = b->lo;
        if (b->hi > hi) hi = b->hi;
        if (b->seq < min_seq) min_seq = b->seq;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < n; i++) {
            if (in[i] || v[i].seq < min_seq || v[i].hi < lo || v[i].lo > hi) continue;
            if (*n_g >= max) return -1;
            g[(*n_g)++] = i;
            in[i] = 1;
            if (v[i].lo < lo) lo = v[i].lo;
            if (v[i].hi > hi) hi = v[i].hi;
            changed = 1;
        }
    }
    return 0;
}

size_t mk_compact_plan(const mk_compact_blk *v, size_t n, int64_t span_ms, const int64_t *ranges,
                       size_t n_ranges, int64_t done_before_ms, size_t *g)
{
    (void)span_ms;
    size_t n_g = 0;
    mk_compact_blk **ord = malloc((n + 1) * sizeof *ord);
    char *in = calloc(n + 1, 1);
    if (!ord || !in) goto out;
    for (size_t i = 0; i < n; i++) ord[i] = (mk_compact_blk *)&v[i];
    qsort(ord, n, sizeof *ord, cmp_lo);
    for (size_t lv = n_ranges; lv-- > 0 && !n_g;) {
        int64_t r = ranges[lv];
        int is_top = lv + 1 == n_ranges;
        for (size_t i = 0; i < n && !n_g;) {
            int64_t w = mk_floordiv(ord[i]->lo, r) * r;
            size_t j = i;
            while (j < n && mk_floordiv(ord[j]->lo, r) * r == w) j++;
            /* window [w, w + r): blocks ord[i..j) start in it */
            int is_done = w <= INT64_MAX - r && w + r <= done_before_ms;
            if (is_done) {
                memset(in, 0, n);
                for (size_t k = i; k < j && n_g < MK_COMPACT_MAX_GROUP; k++) {
                    const mk_compact_blk *b = ord[k];
                    if (!is_top && (b->hi >= w + r || w > INT64_MAX - r)) continue; /* does not fit */
                    size_t idx = (size_t)(b - v);
                    g[n_g++] = idx;
                    in[idx] = 1;
                }
                if (n_g >= 2 && close_group(v, n, g, &n_g, MK_COMPACT_MAX_GROUP, in) == 0) break;
                n_g = 0;
            }
            i = j;
        }
    }
out:
    free(ord);
    free(in);
    return n_g;
}

/* ---- pacing ------------------------------------------------------------ */

#define PACE_SLICE_MS 100

void mk_pacer_init(mk_pacer *p, mk_db *db, uint64_t bytes_per_s, int is_background)
{
    memset(p, 0, sizeof *p);
    p->db = db;
    p->bytes_per_s = bytes_per_s;
    p->is_background = is_background;
    p->last_ms = db->env->now_ms(db->env);
    p->tokens = 0; /* no burst at the start: the first bytes already wait */
}

static double pace_burst(const mk_pacer *p)
{
    double b = (double)p->bytes_per_s / 8;
    return b < 4096 ? 4096 : b;
}

/* Adds the tokens earned since last_ms; a sleep of slept_ms earns at least
 * that much even if the clock stood still or went back. */
static void pace_refill(mk_pacer *p, int64_t slept_ms)
{
    mk_env *env = p->db->env;
    int64_t now = env->now_ms(env);
    int64_t adv = now > p->last_ms ? now - p->last_ms : 0;
    if (adv < slept_ms) adv = slept_ms;
    p->last_ms = now;
    double burst = pace_burst(p);
    /* adv may be huge after a clock jump: cap it before multiplying */
    if (adv > 1000 * 1000) adv = 1000 * 1000;
    p->tokens += (double)adv * (double)p->bytes_per_s / 1000.0;
    if (p->tokens > burst) p->tokens = burst;
}

void mk_pacer_charge(mk_pacer *p, uint64_t n_bytes)
{
    if (!p || !p->bytes_per_s || !n_bytes) return;
    p->n_bytes += n_bytes;
    pace_refill(p, 0);
    p->tokens -= (double)n_bytes;
    mk_env *env = p->db->env;
    while (p->tokens < 0 && p->bytes_per_s) {
        if (p->is_background) {
            pthread_mutex_lock(&p->db->mu);
            int is_stopping = p->db->is_compact_stopping;
            pthread_mutex_unlock(&p->db->mu);
            /* closing: finish this merge at full speed, not at the pace */
            if (is_stopping) { p->bytes_per_s = 0; break; }
            /* a caller of mk_db_compact (a flush) or mk_db_retention waits
             * for this run: no point making it wait at the pace; the debt
             * is forgiven */
            if (atomic_load(&p->db->n_compact_waiters) > 0) { p->tokens = 0; break; }
        }
        double need_ms = -p->tokens * 1000.0 / (double)p->bytes_per_s;
        int64_t s = need_ms >= PACE_SLICE_MS ? PACE_SLICE_MS : (int64_t)need_ms + 1;
        if (env->sleep_ms) env->sleep_ms(env, s);
        else mk_env_default()->sleep_ms(mk_env_default(), s);
        p->n_sleeps++;
        pace_refill(p, s);
    }
}

/* ---- merging ----------------------------------------------------------- */

typedef struct cursor {
    const mk_block *b;
    const mk_block_chunk *c; /* this series' chunks in b */
    size_t n_c, i_c;         /* next chunk to decode */
    int64_t *ts;             /* decoded chunk; [MK_CHUNK_MAX_SAMPLES] */
    double *v;
    uint32_t n, pos;         /* pos < n while one is decoded */
} cursor;

static inline int64_t cur_head(const cursor *c)
{
    if (c->pos < c->n) return c->ts[c->pos];
    if (c->i_c < c->n_c) return c->c[c->i_c].sum.first_ts_ms;
    return INT64_MAX;
}

static inline int cur_is_done(const cursor *c) { return c->pos >= c->n && c->i_c >= c->n_c; }

typedef struct merger {
    mk_codec *codec;
    cursor *cur;     /* one per group block, in seq order */
    size_t n_cur;
    int64_t *ots;    /* output chunk being filled */
    double *ov;
    uint32_t on, per;
    mk_buf enc;
    mk_block_writer *w;
    uint64_t id;
    mk_compact_stats st;
    mk_pacer *pace;         /* may be NULL */
    uint64_t n_paced_in;    /* payload bytes read, charged */
    uint64_t n_paced_out;   /* payload (+ checksum) bytes written, charged */
} merger;

/* Each chunk payload is followed by its 8-byte checksum in a block. */
#define CHUNK_CHECKSUM_BYTES 8

static void pace_in(merger *m, uint64_t n)
{
    if (!m->pace) return;
    m->n_paced_in += n;
    mk_pacer_charge(m->pace, n);
}

static void pace_out(merger *m, uint64_t n)
{
    if (!m->pace) return;
    n += CHUNK_CHECKSUM_BYTES;
    m->n_paced_out += n;
    mk_pacer_charge(m->pace, n);
}

static mk_err cur_decode(merger *m, cursor *c, mk_diag *diag)
{
    const mk_block_chunk *ch = &c->c[c->i_c];
    const uint8_t *p;
    pace_in(m, ch->len);
    mk_err rc = mk_block_payload(c->b, ch, &p, diag);
    if (rc) return rc;
    uint32_t got = 0;
    rc = mk_codec_decode(m->codec, p, ch->len, c->ts, c->v, MK_CHUNK_MAX_SAMPLES, &got, diag);
    if (rc || got == 0) {
        char why[sizeof diag->msg];
        snprintf(why, sizeof why, "%s", rc && diag ? diag->msg : "empty chunk");
        return mk_diag_set(diag, rc ? rc : MK_ECORRUPT, "%s: chunk at offset %" PRIu64 ": %s; compaction stopped",
                           mk_block_path(c->b), ch->offset, why);
    }
    c->n = got;
    c->pos = 0;
    c->i_c++;
    return MK_OK;
}

static mk_err out_flush(merger *m, mk_diag *diag)
{
    if (!m->on) return MK_OK;
    mk_chunk_summary sum;
    m->enc.len = 0;
    mk_err rc = mk_codec_encode(m->codec, m->ots, m->ov, m->on, &m->enc, &sum);
    if (rc) return mk_diag_set(diag, rc, "compaction: encoding a chunk of %u samples failed", m->on);
    pace_out(m, m->enc.len);
    rc = mk_block_writer_add(m->w, m->id, &sum, m->enc.data, m->enc.len, diag);
    if (rc) return rc;
    m->st.n_samples_out += m->on;
    m->on = 0;
    return MK_OK;
}

/* Merges one series: every cursor with n_c > 0 is positioned at its first
 * chunk. */
static mk_err merge_series(merger *m, mk_diag *diag)
{
    uint64_t n_est = 0;
    for (size_t i = 0; i < m->n_cur; i++)
        for (size_t k = 0; k < m->cur[i].n_c; k++) n_est += m->cur[i].c[k].sum.count;
    uint64_t n_chunks = (n_est + MK_CHUNK_MAX_SAMPLES - 1) / MK_CHUNK_MAX_SAMPLES;
    m->per = (uint32_t)(n_chunks ? (n_est + n_chunks - 1) / n_chunks : 1);
    m->on = 0;
    mk_err rc = MK_OK;
    for (;;) {
        /* best: smallest head, the highest seq (last cursor) on ties;
         * second: the smallest head of the others */
        size_t best = SIZE_MAX;
        int64_t bh = INT64_MAX, second = INT64_MAX;
        for (size_t i = 0; i < m->n_cur; i++) {
            const cursor *c = &m->cur[i];
            if (cur_is_done(c)) continue;
            int64_t h = cur_head(c);
            if (best == SIZE_MAX || h <= bh) {
                if (best != SIZE_MAX && bh < second) second = bh;
                best = i;
                bh = h;
            } else if (h < second) {
                second = h;
            }
        }
        if (best == SIZE_MAX) break;
        cursor *c = &m->cur[best];
        if (c->pos >= c->n) {
            const mk_block_chunk *ch = &c->c[c->i_c];
            /* a long chunk overlapping nothing is copied as it is */
            if (m->on == 0 && second > ch->sum.last_ts_ms && (uint64_t)ch->sum.count * 4 >= (uint64_t)m->per * 3) {
                const uint8_t *p;
                pace_in(m, ch->len);
                pace_out(m, ch->len);
                if ((rc = mk_block_payload(c->b, ch, &p, diag))) return rc;
                if ((rc = mk_block_writer_add(m->w, m->id, &ch->sum, p, ch->len, diag))) return rc;
                m->st.n_samples_out += ch->sum.count;
                m->st.n_chunks_copied++;
                c->i_c++;
                continue;
            }
            if ((rc = cur_decode(m, c, diag))) return rc;
            continue;
        }
        if (bh == second) {
            /* equal timestamps: best has the highest seq; the others lose */
            for (size_t i = 0; i < best; i++) {
                cursor *o = &m->cur[i];
                if (cur_is_done(o) || cur_head(o) != bh) continue;
                if (o->pos >= o->n && (rc = cur_decode(m, o, diag))) return rc;
                o->pos++;
            }
            m->ots[m->on] = c->ts[c->pos];
            m->ov[m->on++] = c->v[c->pos++];
        } else {
            /* a run of best's samples below every other head */
            while (c->pos < c->n && c->ts[c->pos] < second && m->on < m->per) {
                m->ots[m->on] = c->ts[c->pos];
                m->ov[m->on++] = c->v[c->pos++];
            }
        }
        if (m->on >= m->per && (rc = out_flush(m, diag))) return rc;
    }
    return out_flush(m, diag);
}

/* Writes the merged block of g[0..n) (sorted by seq) as seq `seq`. */
static mk_err merge_blocks(mk_db *db, mk_blockref **g, size_t n, uint64_t seq, const uint64_t *repl,
                           size_t n_repl, mk_pacer *pace, uint64_t *n_paced, mk_compact_stats *st,
                           mk_diag *diag)
{
    merger m = {0};
    m.pace = pace;
    mk_err rc = MK_OK;
    size_t *pos = calloc(n, sizeof *pos);
    m.cur = calloc(n, sizeof *m.cur);
    m.ots = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *m.ots);
    m.ov = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *m.ov);
    if (!pos || !m.cur || !m.ots || !m.ov || mk_codec_new(&m.codec)) {
        rc = mk_diag_set(diag, MK_ENOMEM, "no memory to compact");
        goto out;
    }
    rc = mk_block_writer_open(db->env, db->blocks_dir, seq, &m.w, diag);
    if (rc) goto out;
    if ((rc = mk_block_writer_replaces(m.w, repl, n_repl, diag))) goto out;
    /* decode buffers, one per block: allocated as a block first needs one */
    cursor *bufs = calloc(n, sizeof *bufs);
    if (!bufs) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory to compact"); goto out; }
    for (;;) {
        uint64_t id = UINT64_MAX;
        int any = 0;
        for (size_t i = 0; i < n; i++) {
            size_t nc;
            const mk_block_chunk *c = mk_block_chunks(g[i]->b, &nc);
            if (pos[i] < nc && (!any || c[pos[i]].series_id < id)) { id = c[pos[i]].series_id; any = 1; }
        }
        if (!any) break;
        m.id = id;
        m.n_cur = 0;
        for (size_t i = 0; i < n; i++) {
            size_t nc;
            const mk_block_chunk *c = mk_block_chunks(g[i]->b, &nc);
            size_t k = pos[i];
            while (k < nc && c[k].series_id == id) k++;
            if (k == pos[i]) continue;
            if (!bufs[i].ts) {
                bufs[i].ts = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *bufs[i].ts);
                bufs[i].v = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *bufs[i].v);
                if (!bufs[i].ts || !bufs[i].v) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory to compact"); break; }
            }
            m.cur[m.n_cur++] = (cursor){g[i]->b, c + pos[i], k - pos[i], 0, bufs[i].ts, bufs[i].v, 0, 0};
            pos[i] = k;
        }
        if (rc || (rc = merge_series(&m, diag))) break;
    }
    for (size_t i = 0; i < n; i++) { free(bufs[i].ts); free(bufs[i].v); }
    free(bufs);
    if (rc) goto out;
    rc = mk_block_writer_finish(m.w, diag);
    m.w = NULL;
    *n_paced = m.n_paced_in + m.n_paced_out;
    if (st) {
        st->n_samples_out += m.st.n_samples_out;
        st->n_chunks_copied += m.st.n_chunks_copied;
    }
out:
    mk_block_writer_abort(m.w);
    mk_codec_free(m.codec);
    mk_buf_free(&m.enc);
    free(m.cur);
    free(m.ots);
    free(m.ov);
    free(pos);
    return rc;
}

static int cmp_ref_seq(const void *a, const void *b)
{
    uint64_t x = mk_block_seq((*(mk_blockref *const *)a)->b), y = mk_block_seq((*(mk_blockref *const *)b)->b);
    return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * One compaction step with compact_mu held: plans on a snapshot, merges one
 * group, publishes. *did = 1 if a group was merged.
 */
static mk_err compact_step(mk_db *db, int is_forced, mk_pacer *pace, mk_compact_stats *st, int *did,
                           mk_diag *diag)
{
    *did = 0;
    int64_t ranges[MK_MAX_COMPACT_LEVELS];
    size_t n_ranges = mk_compact_ranges(&db->opts, ranges);
    if (n_ranges == 0) return MK_OK;
    mk_err rc = MK_OK;
    mk_compact_blk *v = NULL;
    size_t *g = malloc((MK_COMPACT_MAX_GROUP + 1) * sizeof *g);
    mk_blockref **grp = malloc((MK_COMPACT_MAX_GROUP + 1) * sizeof *grp);
    uint64_t *repl = NULL, seq = 0;
    mk_blockref *made = NULL;
    size_t n_g = 0;
    /* Snapshot and plan in one critical section: a block sealed after it
     * gets a higher seq than the merged block, and its (newer) samples
     * keep winning. */
    pthread_mutex_lock(&db->mu);
    mk_blockset *bs = db->blocks;
    atomic_fetch_add(&bs->refs, 1);
    int64_t done_before = is_forced ? INT64_MAX : db->sealed_until_ms;
    v = malloc((bs->n + 1) * sizeof *v);
    if (v && g && grp) {
        for (size_t i = 0; i < bs->n; i++) {
            const mk_block *b = bs->v[i]->b;
            v[i] = (mk_compact_blk){mk_block_seq(b), mk_block_min_ts(b), mk_block_max_ts(b), mk_block_file_bytes(b)};
        }
        n_g = mk_compact_plan(v, bs->n, db->opts.block_span_ms, ranges, n_ranges, done_before, g);
        /* The merged block takes the highest seq of its group (and that
         * file's name, atomically): it must win over what the group won
         * over and lose to what beat it; the closure keeps every
         * overlapping block of a higher seq inside the group. So a seq
         * stays "the newest sealed data inside", which rollups rely on. */
        for (size_t i = 0; i < n_g; i++)
            if (v[g[i]].seq > seq) seq = v[g[i]].seq;
    }
    pthread_mutex_unlock(&db->mu);
    if (!v || !g || !grp) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory to compact"); goto out; }
    if (n_g < 2) goto out;
    for (size_t i = 0; i < n_g; i++) grp[i] = bs->v[g[i]];
    qsort(grp, n_g, sizeof *grp, cmp_ref_seq);

    /* replaced: the group, plus older replaced blocks whose files linger
     * (an unlink that failed or did not happen before a crash): once the
     * group's blocks are gone nothing else would keep them out */
    size_t n_repl = 0, cap_repl = n_g;
    for (size_t i = 0; i < n_g; i++) {
        size_t k;
        mk_block_replaced(grp[i]->b, &k);
        cap_repl += k;
    }
    repl = malloc(cap_repl * sizeof *repl);
    if (!repl) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory to compact"); goto out; }
    uint64_t n_bytes_in = 0;
    for (size_t i = 0; i < n_g; i++) {
        repl[n_repl++] = mk_block_seq(grp[i]->b);
        n_bytes_in += mk_block_file_bytes(grp[i]->b);
        size_t k;
        const uint64_t *r = mk_block_replaced(grp[i]->b, &k);
        for (size_t j = 0; j < k; j++) {
            char path[4096];
            mk_db_block_path(db, r[j], path, sizeof path);
            if (access(path, F_OK) == 0) repl[n_repl++] = r[j];
        }
    }
    qsort(repl, n_repl, sizeof *repl, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < n_repl; i++)
        if (!u || repl[u - 1] != repl[i]) repl[u++] = repl[i];
    n_repl = u;

    uint64_t n_paced = 0;
    rc = merge_blocks(db, grp, n_g, seq, repl, n_repl, pace, &n_paced, st, diag);
    if (rc) goto out;

    char path[4096];
    mk_db_block_path(db, seq, path, sizeof path);
    mk_block *nb = NULL;
    rc = mk_block_open(db->env, path, &nb, diag);
    if (!rc && !(made = mk_blockref_new(nb))) {
        mk_block_close(nb);
        rc = mk_diag_set(diag, MK_ENOMEM, "no memory to compact");
    }
    if (rc) {
        /* the merged file is durable but unusable here: remove it, the
         * old blocks stay */
        db->env->unlink(db->env, path);
        goto out;
    }
    uint64_t n_bytes_out = mk_block_file_bytes(nb);
    /* the rest of the I/O (headers, chunk indexes, footers) in one charge:
     * over a merge, exactly the input files' bytes plus the output's */
    if (n_bytes_in + n_bytes_out > n_paced) mk_pacer_charge(pace, n_bytes_in + n_bytes_out - n_paced);
    pthread_mutex_lock(&db->mu);
    rc = mk_db_swap_blocks(db, repl, n_repl, made);
    pthread_mutex_unlock(&db->mu);
    if (rc) {
        /* the block on disk replaces the group: at the next open it wins,
         * with the same contents; here the old set stays readable */
        rc = mk_diag_set(diag, rc, "no memory to publish a merged block");
        goto out;
    }
    made = NULL;
    /* lingering older replaced files: the merged block now lists them */
    for (size_t i = 0; i < n_repl; i++) {
        int is_group = 0;
        for (size_t k = 0; k < n_g && !is_group; k++) is_group = mk_block_seq(grp[k]->b) == repl[i];
        if (is_group) continue;
        char p2[4096];
        mk_db_block_path(db, repl[i], p2, sizeof p2);
        db->env->unlink(db->env, p2);
    }
    *did = 1;
    if (st) {
        st->n_merges++;
        st->n_blocks_in += n_g;
        st->n_bytes_in += n_bytes_in;
        st->n_bytes_out += n_bytes_out;
    }
out:
    if (made) { made->is_doomed = 1; mk_blockref_unref(made); }
    mk_blockset_unref(bs);
    free(v);
    free(g);
    free(grp);
    free(repl);
    return rc;
}

mk_err mk_compact_run(mk_db *db, int is_forced, mk_pacer *pace, mk_compact_stats *st, mk_diag *diag)
{
    mk_err rc = MK_OK;
    for (int did = 1; did && !rc;) {
        pthread_mutex_lock(&db->mu);
        int is_stopping = db->is_compact_stopping && !is_forced;
        pthread_mutex_unlock(&db->mu);
        if (is_stopping) break;
        rc = compact_step(db, is_forced, pace, st, &did, diag);
    }
    return rc;
}

mk_err mk_db_compact(mk_db *db, mk_compact_stats *st, mk_diag *diag)
{
    if (!db) return mk_diag_set(diag, MK_EINVAL, "mk_db_compact: NULL db");
    if (db->opts.is_read_only) return mk_diag_set(diag, MK_EREADONLY, "%s: opened read-only", db->dir);
    atomic_fetch_add(&db->n_compact_waiters, 1);
    pthread_mutex_lock(&db->compact_mu);
    atomic_fetch_sub(&db->n_compact_waiters, 1);
    mk_pacer pace;
    mk_pacer_init(&pace, db, db->opts.compact_sync_max_bytes_per_s, 0);
    mk_err rc = mk_rollup_run(db, 1, &pace, diag);
    if (!rc) rc = mk_compact_run(db, 1, &pace, st, diag);
    pthread_mutex_unlock(&db->compact_mu);
    return rc;
}

/* ---- the background thread --------------------------------------------- */

static void *compact_main(void *arg)
{
    mk_db *db = arg;
    int64_t interval = db->opts.compact_interval_ms > 0 ? db->opts.compact_interval_ms : MK_COMPACT_DEFAULT_INTERVAL_MS;
    /* one bucket for the thread's whole life: runs do not each get a burst */
    mk_pacer pace;
    mk_pacer_init(&pace, db, db->opts.compact_max_bytes_per_s, 1);
    for (;;) {
        pthread_mutex_lock(&db->mu);
        if (!db->is_compact_stopping && !db->is_compact_kicked) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += interval / 1000;
            ts.tv_nsec += (long)(interval % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&db->compact_cv, &db->mu, &ts);
        }
        int is_stopping = db->is_compact_stopping;
        db->is_compact_kicked = 0;
        pthread_mutex_unlock(&db->mu);
        if (is_stopping) break;
        mk_diag d = {0};
        pthread_mutex_lock(&db->compact_mu);
        mk_err rc = mk_rollup_run(db, 0, &pace, &d);
        if (rc) mk_db_log(db, MK_LOG_ERROR, "rollups: %s", d.msg);
        rc = mk_compact_run(db, 0, &pace, NULL, &d);
        if (rc) mk_db_log(db, MK_LOG_ERROR, "compaction: %s", d.msg);
        rc = mk_retention_run(db, 0, NULL, NULL, NULL, &d);
        if (rc) mk_db_log(db, MK_LOG_ERROR, "retention: %s", d.msg);
        pthread_mutex_unlock(&db->compact_mu);
    }
    return NULL;
}

mk_err mk_compact_start(mk_db *db, mk_diag *diag)
{
    db->is_compact_stopping = 0;
    int r = pthread_create(&db->compact_th, NULL, compact_main, db);
    if (r) return mk_diag_set(diag, mk_err_from_errno(r), "cannot start the compaction thread: %s", strerror(r));
    db->has_compact_th = 1;
    return MK_OK;
}

void mk_compact_stop(mk_db *db)
{
    if (!db->has_compact_th) return;
    pthread_mutex_lock(&db->mu);
    db->is_compact_stopping = 1;
    pthread_cond_signal(&db->compact_cv);
    pthread_mutex_unlock(&db->mu);
    pthread_join(db->compact_th, NULL);
    db->has_compact_th = 0;
}

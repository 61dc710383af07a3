/*
 * engine/db.c — the database: open and recover, write, seal the head into
 * blocks, truncate the WAL, close. Reading lives in db_read.c.
 *
 * Write path (mk_db_write, mk_db_write_lp), under db->mu:
 *   1. new series are logged to the WAL (MK_WAL_REC_SERIES) before use;
 *   2. the samples are appended to the WAL (MK_WAL_REC_SAMPLES);
 *   3. they are applied to the head: the series' open xor chunk when in
 *      order and not older than sealed_until_ms, else its ooo buffer;
 *   4. windows that ended half a span before the newest sample, or the whole
 *      head past the memory limit, are sealed.
 * Then, with db->mu released, the writer waits until its WAL record is
 * durable under the policy (writers waiting together share one fsync). A
 * failed append stops before step 3; a failed fsync after it marks the
 * database failed (no more writes until reopened), since memory may then
 * hold what the disk lost.
 *
 * Sealing (seal_head): head samples older than `upto` are planned into
 * blocks (one per block-span window, sparse consecutive windows merged),
 * written by up to 4 threads with series in ascending id order, made
 * durable, published, then trimmed from the head; the index is saved, the
 * WAL cut, the checkpoint written, and segments whose every sample is now
 * sealed deleted. A failure before publishing leaves the head as it was and
 * removes the partial blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <dirent.h>
#include <unistd.h>

#include "db_int.h"
#include "format.h"
#include "lp.h"
#include "util.h"

#define XXH_INLINE_ALL
#include <xxhash.h>


void mk_options_init(mk_options *o)
{
    memset(o, 0, sizeof *o);
    o->fsync = MK_FSYNC_INTERVAL;
    o->fsync_interval_ms = 1000;
    o->block_span_ms = 2 * 3600 * 1000;
    o->memory_limit_bytes = 512u << 20;
    o->has_wal = 1;
    o->compact_max_bytes_per_s = MK_COMPACT_DEFAULT_MAX_BYTES_PER_S;
}

void mk_db_log(mk_db *db, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (db->opts.log)
        db->opts.log(db->opts.log_ctx, level, msg);
    else
        fprintf(stderr, "meerkat: %s: %s\n", level == MK_LOG_ERROR ? "error" : level == MK_LOG_WARN ? "warning" : "info", msg);
}

static void wal_log(void *ctx, int level, const char *msg) { mk_db_log(ctx, level, "%s", msg); }

static int64_t window_of(const mk_db *db, int64_t ts)
{
    return mk_floordiv(ts, db->opts.block_span_ms) * db->opts.block_span_ms;
}

/* ---- block sets -------------------------------------------------------- */

void mk_blockref_unref(mk_blockref *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    if (r->is_doomed) unlink(mk_block_path(r->b));
    mk_block_close(r->b);
    free(r);
}

void mk_blockset_unref(mk_blockset *bs)
{
    if (!bs || atomic_fetch_sub(&bs->refs, 1) != 1) return;
    for (size_t i = 0; i < bs->n; i++) mk_blockref_unref(bs->v[i]);
    free(bs);
}

/* New set = old + add[0..n_add), sorted by seq. Takes ownership of the new
 * refs. */
static mk_err blockset_with(const mk_blockset *old, mk_blockref **add, size_t n_add,
                            mk_blockset **out)
{
    size_t n_old = old ? old->n : 0;
    mk_blockset *bs = malloc(sizeof *bs + (n_old + n_add) * sizeof bs->v[0]);
    if (!bs) return MK_ENOMEM;
    atomic_init(&bs->refs, 1);
    bs->n = 0;
    for (size_t i = 0; i < n_old; i++) {
        atomic_fetch_add(&old->v[i]->refs, 1);
        bs->v[bs->n++] = old->v[i];
    }
    for (size_t i = 0; i < n_add; i++) {
        size_t j = bs->n++;
        uint64_t seq = mk_block_seq(add[i]->b);
        while (j > 0 && mk_block_seq(bs->v[j - 1]->b) > seq) { bs->v[j] = bs->v[j - 1]; j--; }
        bs->v[j] = add[i];
    }
    *out = bs;
    return MK_OK;
}

mk_blockref *mk_blockref_new(mk_block *b)
{
    mk_blockref *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    atomic_init(&r->refs, 1);
    r->b = b;
    return r;
}

mk_err mk_db_swap_blocks(mk_db *db, const uint64_t *drop, size_t n_drop, mk_blockref *add)
{
    return mk_db_swap_set(&db->blocks, drop, n_drop, add);
}

mk_err mk_db_swap_set(mk_blockset **set, const uint64_t *drop, size_t n_drop, mk_blockref *add)
{
    const mk_blockset *old = *set;
    mk_blockset *bs = malloc(sizeof *bs + (old->n + 1) * sizeof bs->v[0]);
    if (!bs) return MK_ENOMEM;
    atomic_init(&bs->refs, 1);
    bs->n = 0;
    for (size_t i = 0; i < old->n; i++) {
        uint64_t seq = mk_block_seq(old->v[i]->b);
        int is_dropped = 0;
        for (size_t k = 0; k < n_drop && !is_dropped; k++) is_dropped = drop[k] == seq;
        if (is_dropped) {
            /* the old set still holds it; its file goes with the last
             * reader, unless the new block took over its name (a merge
             * keeps the highest seq of its group) */
            if (!add || mk_block_seq(add->b) != seq) old->v[i]->is_doomed = 1;
            continue;
        }
        atomic_fetch_add(&old->v[i]->refs, 1);
        bs->v[bs->n++] = old->v[i];
    }
    if (add) {
        size_t j = bs->n++;
        uint64_t seq = mk_block_seq(add->b);
        while (j > 0 && mk_block_seq(bs->v[j - 1]->b) > seq) { bs->v[j] = bs->v[j - 1]; j--; }
        bs->v[j] = add;
    }
    mk_blockset_unref(*set);
    *set = bs;
    return MK_OK;
}

/* ---- head -------------------------------------------------------------- */

static mk_err ensure_series_cap(mk_db *db, uint32_t n)
{
    if (n <= db->cap_series) return MK_OK;
    uint32_t cap = db->cap_series ? db->cap_series : 1024;
    while (cap < n) cap *= 2;
    mk_series *s = realloc(db->series, (size_t)cap * sizeof *s);
    if (!s) return MK_ENOMEM;
    memset(s + db->cap_series, 0, (size_t)(cap - db->cap_series) * sizeof *s);
    db->series = s;
    db->cap_series = cap;
    return MK_OK;
}

static mk_err ooo_push(mk_db *db, mk_series *s, int64_t ts, double v)
{
    if (s->n_ooo == s->cap_ooo) {
        uint32_t cap = s->cap_ooo ? s->cap_ooo * 2 : 8;
        mk_tsv *p = realloc(s->ooo, (size_t)cap * sizeof *p);
        if (!p) return MK_ENOMEM;
        db->head_bytes += (size_t)(cap - s->cap_ooo) * sizeof *p;
        s->ooo = p;
        s->cap_ooo = cap;
    }
    s->ooo[s->n_ooo++] = (mk_tsv){ts, v};
    return MK_OK;
}

/* ---- head files -------------------------------------------------------- */

#define HEAD_CHUNK_SAMPLES 120         /* cut the open chunk at this many */
#define HEAD_FILE_BYTES (64u << 20)    /* start a new head file past this */
#define HEAD_PAD 16                    /* zeros after a stream (decoder reads ahead) */

static void hfile_release(mk_db *db, uint32_t no)
{
    mk_hfile *f = &db->hfiles[no];
    if (--f->n_live || f->fd < 0) return;
    if (no + 1 == db->n_hfiles) {
        /* The file being written to is empty: start it over, giving its
         * space back (after a flush the head holds nothing, and a data
         * directory should not keep megabytes of dead scratch). */
        if (db->env->ftruncate(db->env, f->fd, 0) == 0) f->size = 0;
        return;
    }
    /* empty and no longer written to: give the space back */
    char path[4096];
    snprintf(path, sizeof path, "%s/%u.hck", db->head_dir, no);
    db->env->close(db->env, f->fd);
    db->env->unlink(db->env, path);
    f->fd = -1;
}

/* Writes bytes[0..n) to the current head file. */
static mk_err hfile_put(mk_db *db, const uint8_t *bytes, uint32_t n, uint32_t *no, uint32_t *off)
{
    mk_hfile *f = db->n_hfiles ? &db->hfiles[db->n_hfiles - 1] : NULL;
    if (!f || f->size + n > HEAD_FILE_BYTES) {
        if (f && f->n_live == 0 && f->fd >= 0) { /* nothing in it: reuse */
            f->size = 0;
        } else {
            mk_hfile *p = realloc(db->hfiles, (db->n_hfiles + 1) * sizeof *p);
            if (!p) return MK_ENOMEM;
            db->hfiles = p;
            char path[4096];
            snprintf(path, sizeof path, "%s/%u.hck", db->head_dir, db->n_hfiles);
            int fd = db->env->open(db->env, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) return mk_err_from_errno(-fd);
            db->hfiles[db->n_hfiles++] = (mk_hfile){fd, 0, 0};
            if (f && f->n_live == 0) { f->n_live = 1; hfile_release(db, (uint32_t)(f - db->hfiles)); }
            f = &db->hfiles[db->n_hfiles - 1];
        }
    }
    int rc = mk_env_pwrite_all(db->env, f->fd, bytes, n, (off_t)f->size);
    if (rc) return mk_err_from_errno(-rc);
    *no = (uint32_t)(f - db->hfiles);
    *off = (uint32_t)f->size;
    f->size += n;
    f->n_live++;
    return MK_OK;
}

/* Moves a series' full open chunk to a head file. On failure (a full disk)
 * the chunk simply stays in memory: nothing is lost, memory is only used. */
static void head_cut(mk_db *db, mk_series *s)
{
    mk_xor *x = &s->xor;
    if (db->opts.is_read_only) return; /* the directory may be another process's */
    /* Bulk import (no WAL) seals at a bounded head size anyway: writing
     * chunks out only to read them back at sealing would be wasted I/O. */
    if (!db->opts.has_wal) return;
    uint32_t n = ((x->n_bits + 7) >> 3) + HEAD_PAD, no, off;
    if (n > x->cap_bytes) return; /* the stream keeps >= 9 zero bytes of slack; be safe */
    if (s->n_hck == s->cap_hck) {
        uint32_t cap = s->cap_hck + 4; /* few per series: grow linearly */
        mk_hck *p = realloc(s->hck, cap * sizeof *p);
        if (!p) return;
        db->head_bytes += (cap - s->cap_hck) * sizeof *p;
        s->hck = p;
        s->cap_hck = cap;
    }
    if (hfile_put(db, x->bits, n, &no, &off)) return;
    s->hck[s->n_hck++] = (mk_hck){x->first_ts, x->last_ts, no, off, n, x->count};
    db->head_bytes -= mk_xor_bytes(x);
    mk_xor_free(x);
}

/* Applies one sample to the head. Only fails on out-of-memory. */
static mk_err head_apply(mk_db *db, uint32_t ord, int64_t ts, double v)
{
    mk_series *s = &db->series[ord];
    mk_err rc;
    /* hot path: an in-order sample for the open chunk (cap_bytes read
     * directly: mk_xor_bytes is a call into another unit) */
    if (ts >= db->sealed_until_ms &&
        (s->xor.count ? ts > s->xor.last_ts : (s->n_hck == 0 || ts > s->hck[s->n_hck - 1].last_ts))) {
        uint32_t before = s->xor.cap_bytes;
        rc = mk_xor_append(&s->xor, ts, v);
        db->head_bytes += s->xor.cap_bytes - before;
        if (s->xor.count >= HEAD_CHUNK_SAMPLES && !rc) head_cut(db, s);
    } else {
        rc = ooo_push(db, s, ts, v);
    }
    if (rc) return rc;
    db->n_head_samples++;
    return MK_OK;
}

static int cmp_ooo(const void *a, const void *b)
{
    const mk_tsv *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    /* equal ts: keep write order; the caller sorted indices, see below */
    return 0;
}

/* Sorts v[0..n) by ts keeping write order among equal ts (insertion sort
 * for short runs, merge sort otherwise), then keeps only the last of each
 * timestamp. Returns the new length. */
static size_t sort_dedup(mk_tsv *v, size_t n, mk_tsv *tmp)
{
    size_t k = 1;
    while (k < n && v[k - 1].ts < v[k].ts) k++;
    if (k >= n) return n; /* already sorted and distinct: the usual case */
    /* bottom-up merge sort: stable */
    mk_tsv *a = v, *b = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) b[k++] = cmp_ooo(&a[j], &a[i]) < 0 ? a[j++] : a[i++];
            while (i < mid) b[k++] = a[i++];
            while (j < hi) b[k++] = a[j++];
        }
        mk_tsv *t = a; a = b; b = t;
    }
    if (a != v) memcpy(v, a, n * sizeof *v);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && v[m - 1].ts == v[i].ts) v[m - 1] = v[i];
        else v[m++] = v[i];
    }
    return m;
}

/* Decodes a head file chunk into ts/vs (count entries). */
static mk_err hck_decode(mk_db *db, const mk_hck *h, uint8_t **scratch, size_t *cap, int64_t *ts,
                        double *vs)
{
    if (h->n_bytes > *cap) {
        uint8_t *p = realloc(*scratch, h->n_bytes);
        if (!p) return MK_ENOMEM;
        *scratch = p;
        *cap = h->n_bytes;
    }
    int rc = mk_env_pread_all(db->env, db->hfiles[h->file_no].fd, *scratch, h->n_bytes, h->off);
    if (rc) return mk_err_from_errno(-rc);
    mk_xor x = {0};
    x.bits = *scratch;
    x.cap_bytes = h->n_bytes;
    x.count = h->count;
    mk_xor_decode(&x, ts, vs);
    return MK_OK;
}

mk_err mk_db_head_samples(mk_db *db, uint32_t ord, int64_t from, int64_t to, mk_tsv **out,
                          size_t *n_out)
{
    mk_series *s = &db->series[ord];
    size_t nx = 0, no = s->n_ooo;
    *out = NULL;
    *n_out = 0;
    for (uint32_t c = 0; c < s->n_hck; c++)
        if (s->hck[c].last_ts >= from && s->hck[c].first_ts < to) nx += s->hck[c].count;
    if (s->xor.count && s->xor.last_ts >= from && s->xor.first_ts < to) nx += s->xor.count;
    if (nx + no == 0) return MK_OK;
    int64_t *ts = malloc(nx * sizeof *ts + 1);
    double *vs = malloc(nx * sizeof *vs + 1);
    mk_tsv *all = malloc((nx + no) * sizeof *all + 1);
    mk_tsv *tmp = malloc((no + 1) * sizeof *tmp);
    mk_tsv *res = NULL;
    uint8_t *scratch = NULL;
    size_t scap = 0;
    mk_err rc = MK_OK;
    if (!ts || !vs || !all || !tmp) { rc = MK_ENOMEM; goto out; }
    /* in-order part: the chunks overlapping the range, oldest first */
    size_t got = 0;
    for (uint32_t c = 0; c < s->n_hck; c++) {
        if (s->hck[c].last_ts < from || s->hck[c].first_ts >= to) continue;
        if ((rc = hck_decode(db, &s->hck[c], &scratch, &scap, ts + got, vs + got))) goto out;
        got += s->hck[c].count;
    }
    if (s->xor.count && s->xor.last_ts >= from && s->xor.first_ts < to) {
        mk_xor_decode(&s->xor, ts + got, vs + got);
        got += s->xor.count;
    }
    /* ooo part: sorted, deduplicated (newest wins) */
    size_t mo = 0;
    for (size_t i = 0; i < no; i++)
        if (s->ooo[i].ts >= from && s->ooo[i].ts < to) all[nx + mo++] = s->ooo[i];
    mo = sort_dedup(all + nx, mo, tmp);
    /* merge; ooo wins on equal ts */
    mk_tsv *o = all + nx;
    size_t i = 0, j = 0, k = 0;
    res = malloc((nx + mo) * sizeof *res + 1);
    if (!res) { rc = MK_ENOMEM; goto out; }
    while (i < nx && ts[i] < from) i++;
    while (i < nx || j < mo) {
        if (i < nx && ts[i] >= to) { i = nx; continue; }
        if (j >= mo || (i < nx && ts[i] < o[j].ts)) {
            res[k++] = (mk_tsv){ts[i], vs[i]};
            i++;
        } else {
            if (i < nx && ts[i] == o[j].ts) i++;
            res[k++] = o[j++];
        }
    }
    *out = res;
    *n_out = k;
    res = NULL;
out:
    free(res);
    free(scratch);
    free(ts);
    free(vs);
    free(all);
    free(tmp);
    return rc;
}

/* Drops every head sample of series ord with ts < lim (they are sealed).
 * Chunks wholly at or past lim are kept as they are; only a chunk that
 * straddles lim is decoded and its newer part re-encoded. */
static mk_err head_trim(mk_db *db, uint32_t ord, int64_t lim)
{
    mk_series *s = &db->series[ord];
    mk_err rc = MK_OK;
    int64_t *ts = NULL;
    double *vs = NULL;
    uint8_t *scratch = NULL;
    size_t scap = 0;
    uint32_t m = 0;
    for (uint32_t c = 0; c < s->n_hck; c++) {
        mk_hck h = s->hck[c];
        if (h.first_ts >= lim) { s->hck[m++] = h; continue; }
        if (h.last_ts >= lim) { /* straddles: keep its tail as a new chunk */
            ts = realloc(ts, h.count * sizeof *ts);
            vs = realloc(vs, h.count * sizeof *vs);
            if (!ts || !vs) { rc = MK_ENOMEM; s->hck[m++] = h; continue; }
            if ((rc = hck_decode(db, &h, &scratch, &scap, ts, vs))) { s->hck[m++] = h; continue; }
            mk_xor x = {0};
            uint32_t i = 0;
            while (i < h.count && ts[i] < lim) i++;
            uint32_t kept = h.count - i;
            for (; i < h.count && !rc; i++) rc = mk_xor_append(&x, ts[i], vs[i]);
            uint32_t no, off, n = ((x.n_bits + 7) >> 3) + HEAD_PAD;
            if (!rc && n <= x.cap_bytes && !hfile_put(db, x.bits, n, &no, &off)) {
                s->hck[m++] = (mk_hck){x.first_ts, x.last_ts, no, off, n, x.count};
                db->n_head_samples -= h.count - kept;
                hfile_release(db, h.file_no);
            } else {
                s->hck[m++] = h; /* keep it whole: readers deduplicate */
                if (!rc) rc = MK_EIO;
            }
            mk_xor_free(&x);
            continue;
        }
        db->n_head_samples -= h.count;
        hfile_release(db, h.file_no);
    }
    s->n_hck = m;
    if (s->xor.count && s->xor.first_ts < lim) {
        if (s->xor.last_ts < lim) {
            db->n_head_samples -= s->xor.count;
            db->head_bytes -= mk_xor_bytes(&s->xor);
            mk_xor_free(&s->xor);
        } else {
            uint32_t cnt = s->xor.count;
            int64_t *t2 = malloc(cnt * sizeof *t2);
            double *v2 = malloc(cnt * sizeof *v2);
            mk_xor x = {0};
            mk_err r2 = t2 && v2 ? MK_OK : MK_ENOMEM;
            if (!r2) mk_xor_decode(&s->xor, t2, v2);
            uint32_t i = 0;
            while (!r2 && i < cnt && t2[i] < lim) i++;
            for (uint32_t j = i; !r2 && j < cnt; j++) r2 = mk_xor_append(&x, t2[j], v2[j]);
            if (!r2) {
                db->head_bytes -= mk_xor_bytes(&s->xor);
                mk_xor_free(&s->xor);
                s->xor = x;
                db->head_bytes += mk_xor_bytes(&x);
                db->n_head_samples -= i;
            } else {
                mk_xor_free(&x);
                rc = r2;
            }
            free(t2);
            free(v2);
        }
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n_ooo; i++)
        if (s->ooo[i].ts >= lim) s->ooo[k++] = s->ooo[i];
    db->n_head_samples -= s->n_ooo - k;
    s->n_ooo = k;
    if (k == 0 && s->cap_ooo) {
        db->head_bytes -= (size_t)s->cap_ooo * sizeof(mk_tsv);
        free(s->ooo);
        s->ooo = NULL;
        s->cap_ooo = 0;
    }
    free(ts);
    free(vs);
    free(scratch);
    return rc;
}

/* ---- WAL bookkeeping --------------------------------------------------- */

static void walseg_note(mk_db *db, uint64_t seq, int64_t max_ts)
{
    if (db->n_walsegs && db->walsegs[db->n_walsegs - 1].seq == seq) {
        if (max_ts > db->walsegs[db->n_walsegs - 1].max_ts) db->walsegs[db->n_walsegs - 1].max_ts = max_ts;
        return;
    }
    if (db->n_walsegs == db->cap_walsegs) {
        size_t cap = db->cap_walsegs ? db->cap_walsegs * 2 : 16;
        mk_walseg *p = realloc(db->walsegs, cap * sizeof *p);
        if (!p) return; /* then the segment is simply kept longer */
        db->walsegs = p;
        db->cap_walsegs = cap;
    }
    db->walsegs[db->n_walsegs++] = (mk_walseg){seq, max_ts};
}

static mk_err wal_log_series(mk_db *db, uint64_t id, const char *key, size_t len, mk_diag *diag)
{
    if (!db->wal) return MK_OK;
    db->walbuf.len = 0;
    mk_err rc = mk_buf_reserve(&db->walbuf, 12 + len);
    if (rc) return mk_diag_set(diag, rc, "no memory for a WAL record");
    mk_put_u64(db->walbuf.data, id);
    mk_put_u32(db->walbuf.data + 8, (uint32_t)len);
    memcpy(db->walbuf.data + 12, key, len);
    db->walbuf.len = 12 + len;
    uint64_t seg = 0;
    rc = mk_wal_append(db->wal, MK_WAL_REC_SERIES, db->walbuf.data, db->walbuf.len, &seg, &db->last_ticket, diag);
    if (!rc) walseg_note(db, seg, INT64_MIN);
    return rc;
}

/* SAMPLES payload: u32 n, then n x (u64 id, i64 ts, f64 value). */
static mk_err wal_log_samples(mk_db *db, const uint32_t *ords, const int64_t *ts, const double *v,
                              size_t n, mk_diag *diag)
{
    if (!db->wal || n == 0) return MK_OK;
    db->walbuf.len = 0;
    mk_err rc = mk_buf_reserve(&db->walbuf, 4 + 24 * n);
    if (rc) return mk_diag_set(diag, rc, "no memory for a WAL record of %zu samples", n);
    uint8_t *p = db->walbuf.data;
    mk_put_u32(p, (uint32_t)n);
    p += 4;
    int64_t max_ts = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        mk_put_u64(p, mk_index_id_at(db->index, ords[i]));
        mk_put_u64(p + 8, (uint64_t)ts[i]);
        mk_put_u64(p + 16, mk_f64_bits(v[i]));
        p += 24;
        if (ts[i] > max_ts) max_ts = ts[i];
    }
    db->walbuf.len = 4 + 24 * n;
    uint64_t seg = 0;
    rc = mk_wal_append(db->wal, MK_WAL_REC_SAMPLES, db->walbuf.data, db->walbuf.len, &seg, &db->last_ticket, diag);
    if (!rc) walseg_note(db, seg, max_ts);
    return rc;
}

/* ---- checkpoint ------------------------------------------------------- */

/*
 * DIR/checkpoint.mkc (FORMAT.md, "Checkpoint"): after a seal, samples in WAL
 * segments below wal_seq with ts below sealed_ms are in durable blocks.
 * Replay skips them. Losing the file only costs duplicate (identical)
 * blocks after a restart, never data, so a damaged one is ignored with a
 * warning.
 */
#define CKPT_BYTES 32

static mk_err checkpoint_save(mk_db *db, uint64_t wal_seq, int64_t sealed_ms, mk_diag *diag)
{
    uint8_t b[CKPT_BYTES];
    mk_put_u32(b, MK_CHECKPOINT_MAGIC);
    mk_put_u16(b + 4, MK_CHECKPOINT_VERSION);
    mk_put_u16(b + 6, 0);
    mk_put_u64(b + 8, wal_seq);
    mk_put_u64(b + 16, (uint64_t)sealed_ms);
    mk_put_u64(b + 24, mk_hash64(b, 24));
    mk_err rc = mk_env_write_file_atomic(db->env, db->dir, "checkpoint.mkc", b, sizeof b, diag);
    if (!rc) {
        db->ckpt_wal_seq = wal_seq;
        db->ckpt_sealed_ms = sealed_ms;
    }
    return rc;
}

static void checkpoint_load(mk_db *db)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint.mkc", db->dir);
    uint8_t *b = NULL;
    size_t n = 0;
    mk_diag d = {0};
    mk_err rc = mk_env_read_file(db->env, path, &b, &n, &d);
    if (rc == MK_ENOTFOUND) return;
    if (rc) {
        mk_db_log(db, MK_LOG_WARN, "%s; ignored (replay may re-seal some samples)", d.msg);
    } else if (n >= 6 && mk_get_u32(b) == MK_CHECKPOINT_MAGIC && mk_get_u16(b + 4) > MK_CHECKPOINT_VERSION) {
        /* not an error here, unlike other files: it is only an optimisation */
        mk_db_log(db, MK_LOG_WARN, "%s: checkpoint format version %u is newer than this build reads (%u); ignored (replay may re-seal some samples)",
                  path, (unsigned)mk_get_u16(b + 4), (unsigned)MK_CHECKPOINT_VERSION);
    } else if (n != CKPT_BYTES || mk_get_u32(b) != MK_CHECKPOINT_MAGIC || mk_get_u16(b + 4) != MK_CHECKPOINT_VERSION ||
               mk_get_u64(b + 24) != mk_hash64(b, 24)) {
        mk_db_log(db, MK_LOG_WARN, "%s: damaged checkpoint (size, magic, version or checksum); ignored (replay may re-seal some samples)", path);
    } else {
        db->ckpt_wal_seq = mk_get_u64(b + 8);
        db->ckpt_sealed_ms = (int64_t)mk_get_u64(b + 16);
    }
    free(b);
}

/* ---- sealing ----------------------------------------------------------- */

static int cmp_id_ord(const void *a, const void *b, void *ix)
{
    uint64_t x = mk_index_id_at(ix, *(const uint32_t *)a), y = mk_index_id_at(ix, *(const uint32_t *)b);
    return x < y ? -1 : x > y;
}

void mk_db_block_path(const mk_db *db, uint64_t seq, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%016" PRIx64 ".mkb", db->blocks_dir, seq);
}

/* Encodes samples v[0..n) of one series as chunks into writer w: as few
 * chunks as MK_CHUNK_MAX_SAMPLES allows, of equal size (a 10,000-sample
 * run makes two of 5,000, not 8,192 + 1,808: small chunks compress worse). */
static mk_err seal_chunks(mk_codec *codec, mk_block_writer *w, uint64_t id, const mk_tsv *v, size_t n,
                          int64_t *tsb, double *vb, mk_buf *enc, mk_diag *diag)
{
    size_t n_chunks = (n + MK_CHUNK_MAX_SAMPLES - 1) / MK_CHUNK_MAX_SAMPLES;
    size_t per = n_chunks ? (n + n_chunks - 1) / n_chunks : 0;
    for (size_t off = 0; off < n; off += per) {
        uint32_t m = (uint32_t)(n - off < per ? n - off : per);
        for (uint32_t i = 0; i < m; i++) { tsb[i] = v[off + i].ts; vb[i] = v[off + i].v; }
        mk_chunk_summary sum;
        enc->len = 0;
        mk_err rc = mk_codec_encode(codec, tsb, vb, m, enc, &sum);
        if (rc) return mk_diag_set(diag, rc, "encoding a chunk of %u samples failed", m);
        rc = mk_block_writer_add(w, id, &sum, enc->data, enc->len, diag);
        if (rc) return rc;
    }
    return MK_OK;
}

typedef struct seal_series {
    uint32_t ord;
    int64_t lo, hi; /* oldest and newest head sample below the limit */
} seal_series;

/* One block to write: the head samples in [from, to). */
typedef struct seal_block {
    int64_t from, to;
    uint64_t seq;
    mk_blockref *made; /* the result, opened */
    mk_err rc;
    mk_diag diag;
} seal_block;

typedef struct seal_job {
    mk_db *db;
    const seal_series *ss;
    size_t n_ss;
    int64_t lim;
    seal_block *blocks;
    size_t n_blocks;
    atomic_size_t next;
    atomic_int has_failed;
} seal_job;

/* Writes one block: every series with samples in the block's range, in
 * ascending id order. Runs on worker threads while the sealing thread holds
 * db->mu, so the head is only read here. */
static void seal_one(seal_job *j, seal_block *b, mk_codec *codec, int64_t *tsb, double *vb, mk_buf *enc)
{
    mk_db *db = j->db;
    int64_t to = b->to < j->lim ? b->to : j->lim;
    mk_block_writer *w = NULL;
    mk_err rc = MK_OK;
    for (size_t k = 0; k < j->n_ss && !rc && !atomic_load(&j->has_failed); k++) {
        if (j->ss[k].hi < b->from || j->ss[k].lo >= to) continue;
        mk_tsv *v = NULL;
        size_t n = 0;
        rc = mk_db_head_samples(db, j->ss[k].ord, b->from, to, &v, &n);
        if (rc) { mk_diag_set(&b->diag, rc, "no memory to seal the head"); break; }
        if (n && !w) rc = mk_block_writer_open(db->env, db->blocks_dir, b->seq, &w, &b->diag);
        if (n && !rc) rc = seal_chunks(codec, w, mk_index_id_at(db->index, j->ss[k].ord), v, n, tsb, vb, enc, &b->diag);
        free(v);
    }
    if (w && (rc || atomic_load(&j->has_failed))) {
        mk_block_writer_abort(w);
        w = NULL;
    }
    if (w && !(rc = mk_block_writer_finish(w, &b->diag))) {
        char path[4096];
        mk_db_block_path(db, b->seq, path, sizeof path);
        mk_block *blk = NULL;
        rc = mk_block_open(db->env, path, &blk, &b->diag);
        if (!rc && !(b->made = mk_blockref_new(blk))) {
            mk_block_close(blk);
            rc = mk_diag_set(&b->diag, MK_ENOMEM, "no memory");
        }
        if (rc) unlink(path);
    }
    b->rc = rc;
    if (rc) atomic_store(&j->has_failed, 1);
}

static void *seal_worker(void *arg)
{
    seal_job *j = arg;
    mk_codec *codec = NULL;
    int64_t *tsb = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *tsb);
    double *vb = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *vb);
    mk_buf enc = {0};
    int is_ok = tsb && vb && mk_codec_new(&codec) == MK_OK;
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n_blocks) break;
        seal_block *b = &j->blocks[i];
        if (!is_ok) {
            b->rc = mk_diag_set(&b->diag, MK_ENOMEM, "no memory to seal the head");
            atomic_store(&j->has_failed, 1);
            continue;
        }
        if (atomic_load(&j->has_failed)) continue;
        seal_one(j, b, codec, tsb, vb, &enc);
    }
    mk_codec_free(codec);
    free(tsb);
    free(vb);
    mk_buf_free(&enc);
    return NULL;
}

/* Sample count per window, for planning blocks. */
typedef struct win_count {
    int64_t w;
    double n;
} win_count;

typedef struct win_map {
    win_count *v;
    size_t n, cap; /* open addressing, cap a power of two; w == INT64_MIN free */
} win_map;

static int win_add(win_map *m, int64_t w, double n)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        win_count *v = malloc(cap * sizeof *v);
        if (!v) return -1;
        for (size_t i = 0; i < cap; i++) v[i].w = INT64_MIN;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->v[i].w == INT64_MIN) continue;
            size_t j = (size_t)mk_hash64(&m->v[i].w, 8) & (cap - 1);
            while (v[j].w != INT64_MIN) j = (j + 1) & (cap - 1);
            v[j] = m->v[i];
        }
        free(m->v);
        m->v = v;
        m->cap = cap;
    }
    size_t j = (size_t)mk_hash64(&w, 8) & (m->cap - 1);
    while (m->v[j].w != INT64_MIN && m->v[j].w != w) j = (j + 1) & (m->cap - 1);
    if (m->v[j].w == INT64_MIN) { m->v[j] = (win_count){w, 0}; m->n++; }
    m->v[j].n += n;
    return 0;
}

/* Spreads a chunk's count over the windows its time range covers. */
/* Samples counted per window as runs: timestamps mostly in time order
 * cost one win_add per run, not per sample. */
typedef struct win_run {
    int64_t w; /* the current run's window */
    double n;  /* its samples so far */
} win_run;

static int win_run_add(const mk_db *db, win_map *m, win_run *r, int64_t ts)
{
    int64_t w = window_of(db, ts);
    if (w != r->w) {
        if (r->n && win_add(m, r->w, r->n)) return 1;
        r->w = w;
        r->n = 0;
    }
    r->n++;
    return 0;
}

static int win_run_end(win_map *m, win_run *r)
{
    int fail = r->n ? win_add(m, r->w, r->n) : 0;
    r->n = 0;
    return fail;
}

static int win_add_range(mk_db *db, win_map *m, int64_t first, int64_t last, double count)
{
    int64_t span = db->opts.block_span_ms, w0 = window_of(db, first), w1 = window_of(db, last);
    if (w0 == w1) return win_add(m, w0, count);
    double per_ms = count / ((double)last - (double)first + 1);
    for (int64_t w = w0;; w += span) {
        int64_t a = w > first ? w : first, b = w + span - 1 < last ? w + span - 1 : last;
        if (win_add(m, w, per_ms * ((double)b - (double)a + 1))) return -1;
        if (w >= w1 || w > INT64_MAX - span) break;
    }
    return 0;
}

static int cmp_win(const void *a, const void *b)
{
    int64_t x = ((const win_count *)a)->w, y = ((const win_count *)b)->w;
    return x < y ? -1 : x > y;
}

/* Longest span one block may cover when sparse windows are merged. */
#define MK_SEAL_MAX_SPAN_MS (31LL * 86400 * 1000)

/*
 * Seals every head sample with ts < upto. With is_all, seals the whole head
 * without advancing sealed_until_ms (mk_db_flush, memory pressure).
 *
 * Blocks are time-partitioned by block span, but consecutive windows whose
 * samples are few are merged into one block (up to about
 * MK_CHUNK_MAX_SAMPLES samples per series, and at most
 * MK_SEAL_MAX_SPAN_MS): a year of sparse history is then a dozen blocks of
 * long chunks, not four thousand files of a few samples each. Dense data
 * keeps one window per block. Blocks are written by up to 4 threads.
 */
static mk_err seal_head(mk_db *db, int64_t upto, int is_all, mk_diag *diag)
{
    uint32_t n_series = mk_index_count(db->index);
    int64_t lim = is_all ? INT64_MAX : upto, span = db->opts.block_span_ms;
    mk_err rc = MK_OK;
    seal_series *ss = NULL;
    seal_block *blocks = NULL;
    win_map wm = {0};
    size_t n_ss = 0, n_blocks = 0;
    mk_blockref **made = NULL;
    size_t n_made = 0;

    if (db->n_head_samples == 0) goto wal;
    ss = malloc((size_t)n_series * sizeof *ss + 1);
    if (!ss) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory to seal the head"); goto out; }

    /* Plan: which series have samples below lim, and how many per window. */
    for (uint32_t o = 0; o < n_series; o++) {
        const mk_series *s = &db->series[o];
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        int fail = 0;
        /* In-order chunks far sparser than the windows they span (a sample
         * years ahead after today's: one chunk over every window between)
         * would have their counts spread over all those windows, each
         * visited; count the samples' own windows instead. */
        uint64_t n_spread = 0, n_in = 0;
        for (uint32_t c = 0; c <= s->n_hck; c++) {
            int64_t first = c < s->n_hck ? s->hck[c].first_ts : s->xor.first_ts;
            int64_t last = c < s->n_hck ? s->hck[c].last_ts : s->xor.last_ts;
            uint32_t cnt = c < s->n_hck ? s->hck[c].count : s->xor.count;
            if (!cnt || first >= lim) continue;
            if (last >= lim) last = lim - 1;
            n_spread += ((uint64_t)window_of(db, last) - (uint64_t)window_of(db, first)) / (uint64_t)span + 1;
            n_in += cnt;
        }
        if (n_spread > 2 * n_in + 64) {
            mk_tsv *tv = NULL;
            size_t nt = 0;
            if (mk_db_head_samples(db, o, INT64_MIN, lim, &tv, &nt)) fail = 1;
            win_run run = {INT64_MIN, 0};
            for (size_t i = 0; i < nt && !fail; i++) fail = win_run_add(db, &wm, &run, tv[i].ts);
            if (!fail) fail = win_run_end(&wm, &run);
            if (nt) { lo = tv[0].ts; hi = tv[nt - 1].ts; }
            free(tv);
            if (fail) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory to seal the head"); goto out; }
            if (lo <= hi) ss[n_ss++] = (seal_series){o, lo, hi};
            continue;
        }
        for (uint32_t c = 0; c < s->n_hck && !fail; c++) {
            const mk_hck *h = &s->hck[c];
            if (h->first_ts >= lim) break;
            int64_t last = h->last_ts < lim ? h->last_ts : lim - 1;
            if (h->first_ts < lo) lo = h->first_ts;
            if (last > hi) hi = last;
            fail = win_add_range(db, &wm, h->first_ts, last, h->count);
        }
        if (s->xor.count && s->xor.first_ts < lim && !fail) {
            int64_t last = s->xor.last_ts < lim ? s->xor.last_ts : lim - 1;
            if (s->xor.first_ts < lo) lo = s->xor.first_ts;
            if (last > hi) hi = last;
            fail = win_add_range(db, &wm, s->xor.first_ts, last, s->xor.count);
        }
        /* ooo samples are mostly in time order: count runs per window */
        win_run run = {INT64_MIN, 0};
        for (uint32_t i = 0; i < s->n_ooo && !fail; i++) {
            int64_t t = s->ooo[i].ts;
            if (t >= lim) continue;
            if (t < lo) lo = t;
            if (t > hi) hi = t;
            fail = win_run_add(db, &wm, &run, t);
        }
        if (!fail) fail = win_run_end(&wm, &run);
        if (fail) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory to seal the head"); goto out; }
        if (lo <= hi) ss[n_ss++] = (seal_series){o, lo, hi};
    }
    if (n_ss == 0) goto publish;
    qsort_r(ss, n_ss, sizeof *ss, cmp_id_ord, db->index); /* ord is the first member */

    /* Windows in time order, merged into blocks while sparse. */
    size_t m = 0;
    for (size_t i = 0; i < wm.cap; i++)
        if (wm.v[i].w != INT64_MIN) wm.v[m++] = wm.v[i];
    qsort(wm.v, m, sizeof *wm.v, cmp_win);
    blocks = calloc(m + 1, sizeof *blocks);
    if (!blocks) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory to seal the head"); goto out; }
    double budget = (double)MK_CHUNK_MAX_SAMPLES * (double)n_ss;
    for (size_t i = 0; i < m;) {
        int64_t from = wm.v[i].w;
        double n = wm.v[i].n;
        size_t k = i + 1;
        while (k < m && wm.v[k].w - from < MK_SEAL_MAX_SPAN_MS && n + wm.v[k].n <= budget) n += wm.v[k++].n;
        int64_t to = wm.v[k - 1].w > INT64_MAX - span ? INT64_MAX : wm.v[k - 1].w + span;
        blocks[n_blocks++] = (seal_block){from, to, db->next_block_seq++, NULL, MK_OK, {0, ""}};
        i = k;
    }

    /* Write them, several at a time. */
    seal_job job = {db, ss, n_ss, lim, blocks, n_blocks, 0, 0};
    atomic_init(&job.next, 0);
    atomic_init(&job.has_failed, 0);
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = (int)(n_blocks < 4 ? n_blocks : 4);
    if (n_cpu > 0 && n_threads > n_cpu) n_threads = (int)n_cpu;
    pthread_t th[4];
    int n_started = 0;
    for (int t = 1; t < n_threads; t++)
        if (pthread_create(&th[n_started], NULL, seal_worker, &job) == 0) n_started++;
    seal_worker(&job);
    for (int t = 0; t < n_started; t++) pthread_join(th[t], NULL);
    made = calloc(n_blocks + 1, sizeof *made);
    if (!made) rc = mk_diag_set(diag, MK_ENOMEM, "no memory");
    for (size_t i = 0; i < n_blocks; i++) {
        if (blocks[i].rc && !rc) {
            rc = blocks[i].rc;
            if (diag) *diag = blocks[i].diag;
        }
        if (blocks[i].made && made) made[n_made++] = blocks[i].made;
        else if (blocks[i].made) { blocks[i].made->is_doomed = 1; mk_blockref_unref(blocks[i].made); }
    }
    if (rc) goto out;

publish:;
    /* Durable: publish, then drop the sealed samples from the head. */
    mk_blockset *nbs = NULL;
    rc = blockset_with(db->blocks, made, n_made, &nbs);
    if (rc) { mk_diag_set(diag, rc, "no memory to publish sealed blocks"); goto out; }
    if (n_made) { /* new blocks may complete a compaction window */
        db->is_compact_kicked = 1;
        pthread_cond_signal(&db->compact_cv);
    }
    n_made = 0; /* owned by the set now */
    mk_blockset_unref(db->blocks);
    db->blocks = nbs;
    for (size_t k = 0; k < n_ss; k++) {
        /* The sealed samples are durable; keeping some in memory too only
         * costs memory (readers deduplicate), so this is no seal failure. */
        if (head_trim(db, ss[k].ord, lim))
            mk_db_log(db, MK_LOG_WARN, "could not trim the head after sealing (out of memory or head file I/O); it keeps some sealed samples");
    }
    if (!is_all && upto > db->sealed_until_ms) db->sealed_until_ms = upto;

wal:
    /* Index first: WAL segments hold the only other copy of new series. */
    if (mk_index_count(db->index) != db->n_index_saved) {
        rc = mk_index_save(db->index, db->env, db->dir, diag);
        if (rc) goto out;
        db->n_index_saved = mk_index_count(db->index);
    }
    if (db->wal) {
        uint64_t newseq;
        rc = mk_wal_cut(db->wal, &newseq, diag);
        if (rc) goto out;
        db->wal_seq = newseq;
        /* Every sample of segments < newseq older than `sealed` is in a
         * durable block now. The checkpoint tells replay so, lest a kept
         * segment re-add sealed samples as duplicate blocks. */
        int64_t sealed = db->n_head_samples == 0 ? INT64_MAX : db->sealed_until_ms;
        rc = checkpoint_save(db, newseq, sealed, diag);
        if (rc) goto out;
        uint64_t drop_below = newseq;
        size_t keep_from = 0;
        for (size_t i = 0; i < db->n_walsegs; i++) {
            if (db->walsegs[i].seq >= newseq) break;
            if (db->walsegs[i].max_ts >= sealed) { drop_below = db->walsegs[i].seq; break; }
            keep_from = i + 1;
        }
        rc = mk_wal_remove_before(db->wal, drop_below, diag);
        if (rc) goto out;
        if (keep_from) {
            memmove(db->walsegs, db->walsegs + keep_from, (db->n_walsegs - keep_from) * sizeof *db->walsegs);
            db->n_walsegs -= keep_from;
        }
    }
out:
    for (size_t i = 0; i < n_made; i++) {
        made[i]->is_doomed = 1;
        mk_blockref_unref(made[i]);
    }
    free(made);
    free(blocks);
    free(ss);
    free(wm.v);
    return rc;
}

/* A seal costs about six fsyncs (block, directory, WAL segment, checkpoint),
 * during which writers wait. Data arriving in real time closes a window
 * every block span, but a backfill or a fast load closes many a second:
 * sealing them one by one made the writers spend most of a load waiting
 * for fsyncs. Windows closing within opts.seal_gap_ms of the last seal are
 * sealed together (the memory limit still seals at once), which also gives
 * longer chunks. */
#define MK_SEAL_DEFAULT_GAP_MS 1000

/* Seals what the head no longer needs: windows that ended more than half a
 * span before the newest sample, or everything past the memory limit. */
static mk_err maybe_seal(mk_db *db, mk_diag *diag)
{
    if (db->opts.memory_limit_bytes && db->head_bytes > db->opts.memory_limit_bytes)
        return seal_head(db, 0, 1, diag);
    if (db->max_ts_ms == INT64_MIN) return MK_OK;
    int64_t upto = window_of(db, db->max_ts_ms - db->opts.block_span_ms / 2);
    /* Without a WAL (bulk import) nothing needs sealing early: waiting until
     * the head holds about two full chunks per series lets windows merge
     * into blocks of long chunks, and keeps memory bounded. */
    if (!db->opts.has_wal &&
        db->n_head_samples < 2ull * MK_CHUNK_MAX_SAMPLES * (uint64_t)mk_index_count(db->index))
        return MK_OK;
    if (upto <= db->sealed_until_ms) return MK_OK;
    int64_t now = db->env->now_ms(db->env);
    if (now < db->next_seal_ms) return MK_OK;
    int64_t gap = db->opts.seal_gap_ms ? db->opts.seal_gap_ms : MK_SEAL_DEFAULT_GAP_MS;
    db->next_seal_ms = gap > 0 ? now + gap : INT64_MIN;
    return seal_head(db, upto, 0, diag);
}

/* ---- writing ----------------------------------------------------------- */

/* Writes n samples given by ordinal; caller holds mu. */
static mk_err write_ords(mk_db *db, const uint32_t *ords, const int64_t *ts, const double *v,
                         size_t n, mk_diag *diag)
{
    if (db->is_failed)
        return mk_diag_set(diag, MK_EIO, "%s: an earlier I/O failure left the database unable to take writes; reopen it", db->dir);
    mk_err rc = wal_log_samples(db, ords, ts, v, n, diag);
    if (rc) return rc;
    /* Samples from the far future (a wrong clock) must not seal the
     * present: only timestamps up to a span past now advance sealing. */
    int64_t horizon = db->env->now_ms(db->env) + db->opts.block_span_ms;
    for (size_t i = 0; i < n; i++) {
        rc = head_apply(db, ords[i], ts[i], v[i]);
        if (rc) {
            db->is_failed = 1;
            return mk_diag_set(diag, rc, "out of memory applying a logged write; reopen to replay the WAL");
        }
        if (ts[i] > db->max_ts_ms && ts[i] <= horizon) db->max_ts_ms = ts[i];
    }
    /* The write is durable now, so a failure to seal (a full disk, say) is
     * not the writer's failure: it is logged and retried a little later,
     * while the WAL keeps the data safe. */
    if (db->env->now_ms(db->env) < db->seal_retry_at_ms) return MK_OK;
    mk_diag d2 = {0};
    mk_err src = maybe_seal(db, &d2);
    if (src && !db->wal) { /* no WAL: nothing else holds the data */
        if (diag) *diag = d2;
        return src;
    }
    if (src) {
        mk_db_log(db, MK_LOG_ERROR, "sealing the head failed, retrying in 5 s: %s", d2.msg);
        db->seal_retry_at_ms = db->env->now_ms(db->env) + 5000;
    }
    return MK_OK;
}

/* Called after releasing mu with the ticket of the caller's last WAL
 * record: returns once it is durable under the policy (group commit: the
 * fsync is shared with every writer waiting at the same time). A failure
 * means records already applied in memory were lost from the WAL, so the
 * database takes no more writes until it is reopened and replays what is
 * really on disk. */
static mk_err wal_wait(mk_db *db, mk_wal_ticket t, mk_diag *diag)
{
    if (!db->wal) return MK_OK;
    mk_err rc = mk_wal_wait(db->wal, t, diag);
    if (rc) {
        pthread_mutex_lock(&db->mu);
        db->is_failed = 1;
        pthread_mutex_unlock(&db->mu);
    }
    return rc;
}

/* Looks up or creates the series with canonical key k; logs new ones. */
static mk_err series_by_key(mk_db *db, const char *k, size_t len, uint32_t *ord, mk_diag *diag)
{
    uint64_t id = mk_hash64(k, len);
    if (mk_index_ordinal(db->index, id, ord) == MK_OK) {
        size_t klen;
        const char *have = mk_index_key_at(db->index, *ord, &klen);
        if (klen == len && memcmp(have, k, len) == 0) return MK_OK;
    }
    if (db->opts.is_read_only) return mk_diag_set(diag, MK_EREADONLY, "cannot create series: database is read-only");
    int is_new = 0;
    mk_err rc = mk_index_add(db->index, k, len, &id, ord, &is_new, diag);
    if (rc) return rc;
    rc = ensure_series_cap(db, mk_index_count(db->index));
    if (rc) return mk_diag_set(diag, rc, "no memory for a new series");
    if (is_new) {
        rc = wal_log_series(db, id, k, len, diag);
        if (rc) {
            /* The index has it but the WAL does not; sealing saves the index,
             * so nothing is lost, only an empty series may survive. */
            return rc;
        }
    }
    return MK_OK;
}

static int cmp_tag(const void *a, const void *b)
{
    const mk_lp_tag *x = a, *y = b;
    uint32_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.p, y->key.p, n);
    return c ? c : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

mk_err mk_db_series(mk_db *db, const char *measurement, const mk_tag *tags, size_t n_tags,
                    const char *field, uint64_t *id, mk_diag *diag)
{
    if (!db || !measurement || !*measurement || !field || !*field || (n_tags && !tags) || !id)
        return mk_diag_set(diag, MK_EINVAL, "mk_db_series: measurement and field must be non-empty");
    if (n_tags > 1024) return mk_diag_set(diag, MK_ELIMIT, "mk_db_series: %zu tags, at most 1024", n_tags);
    mk_lp_tag lt[1024];
    for (size_t i = 0; i < n_tags; i++) {
        if (!tags[i].key || !*tags[i].key || !tags[i].value || !*tags[i].value)
            return mk_diag_set(diag, MK_EINVAL, "mk_db_series: tag %zu has an empty key or value", i);
        lt[i].key = (mk_lp_str){tags[i].key, (uint32_t)strlen(tags[i].key)};
        lt[i].value = (mk_lp_str){tags[i].value, (uint32_t)strlen(tags[i].value)};
    }
    qsort(lt, n_tags, sizeof lt[0], cmp_tag);
    for (size_t i = 1; i < n_tags; i++)
        if (cmp_tag(&lt[i - 1], &lt[i]) == 0)
            return mk_diag_set(diag, MK_EINVAL, "mk_db_series: tag key '%s' given twice", lt[i].key.p);
    pthread_mutex_lock(&db->mu);
    db->keybuf.len = 0;
    mk_err rc = mk_index_key_build(&db->keybuf, (mk_lp_str){measurement, (uint32_t)strlen(measurement)}, lt,
                                   (uint32_t)n_tags, (mk_lp_str){field, (uint32_t)strlen(field)});
    uint32_t ord;
    if (!rc) rc = series_by_key(db, (const char *)db->keybuf.data, db->keybuf.len, &ord, diag);
    else mk_diag_set(diag, rc, "no memory for a series key");
    if (!rc) *id = mk_index_id_at(db->index, ord);
    mk_wal_ticket t = db->last_ticket;
    pthread_mutex_unlock(&db->mu);
    if (!rc) rc = wal_wait(db, t, diag);
    return rc;
}

mk_err mk_db_write(mk_db *db, const mk_point *pts, size_t n, mk_diag *diag)
{
    if (!db || (n && !pts)) return mk_diag_set(diag, MK_EINVAL, "mk_db_write: NULL argument");
    if (db->opts.is_read_only) return mk_diag_set(diag, MK_EREADONLY, "%s: opened read-only", db->dir);
    if (n == 0) return MK_OK;
    uint32_t *ords = malloc(n * sizeof *ords);
    int64_t *ts = malloc(n * sizeof *ts);
    double *v = malloc(n * sizeof *v);
    mk_err rc = MK_OK;
    if (!ords || !ts || !v) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory for a batch of %zu points", n); goto out; }
    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < n; i++) {
        if (mk_index_ordinal(db->index, pts[i].series_id, &ords[i]) != MK_OK) {
            rc = mk_diag_set(diag, MK_ENOTFOUND, "point %zu: unknown series id %016" PRIx64 "; nothing of the batch was written", i, pts[i].series_id);
            break;
        }
        ts[i] = pts[i].ts_ms;
        v[i] = pts[i].value;
    }
    if (!rc) rc = write_ords(db, ords, ts, v, n, diag);
    mk_wal_ticket t = db->last_ticket;
    pthread_mutex_unlock(&db->mu);
    if (!rc) rc = wal_wait(db, t, diag);
out:
    free(ords);
    free(ts);
    free(v);
    return rc;
}

/*
 * Line protocol. Parsing happens outside db->mu; only resolving new series
 * and applying a batch take the lock, once per batch, so several threads
 * (an import's readers, HTTP requests) parse in parallel.
 *
 * A per-call cache maps the raw bytes of a line's "measurement,tags" plus a
 * field key to the series ordinal (ordinals never change), so the canonical
 * key is built and hashed only the first time a series is seen in the call.
 * A miss inserts a pending entry, resolved under the lock with the batch.
 */
#define LP_BATCH 16384
#define LP_PENDING 0x80000000u

typedef struct lp_entry {
    uint64_t h;
    uint32_t ord;     /* ordinal, or LP_PENDING | index into newkeys */
    uint32_t off;     /* raw bytes then field bytes, in cache arena */
    uint32_t raw_len, field_len;
} lp_entry;

typedef struct lp_newkey {
    uint32_t entry;   /* slot of its cache entry */
    uint32_t key_off, key_len; /* canonical key in keys arena */
    uint32_t line_no, column;
} lp_newkey;

typedef struct lp_state {
    lp_entry *tab;
    uint32_t cap, n; /* cap a power of two */
    mk_buf arena;    /* raw+field bytes of cached entries */
    mk_buf keys;     /* canonical keys of this batch's new series */
    lp_newkey *nk;
    uint32_t n_nk, cap_nk;
    /* the batch */
    uint32_t *ords;
    int64_t *ts;
    double *v;
    uint32_t n_pts, cap_pts;
    int is_streaming; /* flush at LP_BATCH (one call) or grow (a job) */
    mk_write_stats ws;
    mk_lp_error_fn on_err;
    void *err_ctx;
    int is_deferred;  /* keep errors until the batch is applied (parallel) */
    struct lp_err { uint64_t line; uint32_t col; char *why; } *errs;
    uint32_t n_errs, cap_errs;
} lp_state;

static void lp_state_free(lp_state *st)
{
    if (!st) return;
    for (uint32_t i = 0; i < st->n_errs; i++) free(st->errs[i].why);
    free(st->errs);
    free(st->tab);
    free(st->nk);
    free(st->ords);
    free(st->ts);
    free(st->v);
    mk_buf_free(&st->arena);
    mk_buf_free(&st->keys);
    free(st);
}

/* Reports a rejected line or field. A parallel writer's pieces are parsed
 * out of order, so their errors wait in st->errs and go out in input order
 * when the piece is applied (lp_report_deferred). */
static void lp_report(lp_state *st, uint64_t line, uint32_t col, const char *why)
{
    if (!st->on_err) return;
    if (!st->is_deferred) {
        st->on_err(st->err_ctx, line, col, why);
        return;
    }
    if (st->n_errs == st->cap_errs) {
        uint32_t cap = st->cap_errs ? st->cap_errs * 2 : 16;
        struct lp_err *p = realloc(st->errs, cap * sizeof *p);
        if (!p) { st->on_err(st->err_ctx, line, col, why); return; } /* out of order beats lost */
        st->errs = p;
        st->cap_errs = cap;
    }
    char *w = strdup(why);
    if (!w) { st->on_err(st->err_ctx, line, col, why); return; }
    st->errs[st->n_errs++] = (struct lp_err){line, col, w};
}

static void lp_report_deferred(lp_state *st)
{
    for (uint32_t i = 0; i < st->n_errs; i++) {
        st->on_err(st->err_ctx, st->errs[i].line, st->errs[i].col, st->errs[i].why);
        free(st->errs[i].why);
    }
    st->n_errs = 0;
}

static mk_err lp_grow(lp_state *st)
{
    uint32_t cap = st->cap ? st->cap * 2 : 1024;
    lp_entry *t = calloc(cap, sizeof *t);
    if (!t) return MK_ENOMEM;
    for (uint32_t i = 0; i < st->cap; i++) {
        if (!st->tab[i].raw_len) continue;
        uint32_t j = (uint32_t)st->tab[i].h & (cap - 1);
        while (t[j].raw_len) j = (j + 1) & (cap - 1);
        t[j] = st->tab[i];
        if (st->tab[i].ord & LP_PENDING) st->nk[st->tab[i].ord & ~LP_PENDING].entry = j;
    }
    free(st->tab);
    st->tab = t;
    st->cap = cap;
    return MK_OK;
}

/* Finds or adds the entry of (raw, field); *slot gets its index. */
static mk_err lp_lookup(lp_state *st, mk_lp_str raw, uint64_t hraw, mk_lp_str field, uint32_t *slot,
                        int *is_new)
{
    if ((st->n + 1) * 4 > st->cap * 3) {
        mk_err rc = lp_grow(st);
        if (rc) return rc;
    }
    uint64_t h = XXH3_64bits_withSeed(field.p, field.len, hraw);
    uint32_t j = (uint32_t)h & (st->cap - 1);
    for (;; j = (j + 1) & (st->cap - 1)) {
        lp_entry *e = &st->tab[j];
        if (!e->raw_len) break;
        if (e->h == h && e->raw_len == raw.len && e->field_len == field.len &&
            memcmp(st->arena.data + e->off, raw.p, raw.len) == 0 &&
            memcmp(st->arena.data + e->off + raw.len, field.p, field.len) == 0) {
            *slot = j;
            *is_new = 0;
            return MK_OK;
        }
    }
    uint32_t off = (uint32_t)st->arena.len;
    mk_err rc = mk_buf_append(&st->arena, raw.p, raw.len);
    if (!rc) rc = mk_buf_append(&st->arena, field.p, field.len);
    if (rc) return rc;
    /* raw is never empty (it holds the measurement), so raw_len 0 marks a
     * free slot */
    st->tab[j] = (lp_entry){h, 0, off, raw.len, field.len};
    st->n++;
    *slot = j;
    *is_new = 1;
    return MK_OK;
}

static mk_err lp_reserve_pts(lp_state *st, uint32_t extra)
{
    if (st->n_pts + extra <= st->cap_pts) return MK_OK;
    uint32_t cap = st->cap_pts ? st->cap_pts : 4096;
    while (cap < st->n_pts + extra) cap *= 2;
    uint32_t *o = realloc(st->ords, cap * sizeof *o);
    if (!o) return MK_ENOMEM;
    st->ords = o;
    int64_t *t = realloc(st->ts, cap * sizeof *t);
    if (!t) return MK_ENOMEM;
    st->ts = t;
    double *v = realloc(st->v, cap * sizeof *v);
    if (!v) return MK_ENOMEM;
    st->v = v;
    st->cap_pts = cap;
    return MK_OK;
}

/* Resolves the batch's new series and writes it; takes db->mu. Keys that
 * cannot be added (collision) reject their samples via on_err. */
static mk_err lp_flush_batch(mk_db *db, lp_state *st, mk_diag *diag)
{
    mk_err rc = MK_OK;
    uint32_t m = 0;
    pthread_mutex_lock(&db->mu);
    for (uint32_t i = 0; i < st->n_nk; i++) {
        lp_newkey *k = &st->nk[i];
        uint32_t ord = UINT32_MAX;
        mk_diag d2 = {0};
        rc = series_by_key(db, (const char *)st->keys.data + k->key_off, k->key_len, &ord, &d2);
        if (rc == MK_ECOLLISION || rc == MK_EINVAL) {
            lp_report(st, k->line_no, k->column, d2.msg);
            st->ws.n_errors++;
            ord = UINT32_MAX; /* its samples are dropped below, counted */
            rc = MK_OK;
        } else if (rc) {
            if (diag) *diag = d2;
            goto out;
        }
        st->tab[k->entry].ord = ord;
    }
    /* Pending ordinals now resolved; drop samples of refused series. */
    for (uint32_t i = 0; i < st->n_pts; i++) {
        uint32_t o = st->ords[i];
        if (o & LP_PENDING) o = st->tab[st->nk[o & ~LP_PENDING].entry].ord;
        if (o == UINT32_MAX) { st->ws.n_samples_rejected++; continue; }
        st->ords[m] = o;
        st->ts[m] = st->ts[i];
        st->v[m] = st->v[i];
        m++;
    }
    rc = write_ords(db, st->ords, st->ts, st->v, m, diag);
out:;
    mk_wal_ticket t = db->last_ticket;
    pthread_mutex_unlock(&db->mu);
    if (!rc) rc = wal_wait(db, t, diag);
    if (!rc) st->ws.n_samples_accepted += m;
    st->n_pts = 0;
    st->n_nk = 0;
    st->keys.len = 0;
    return rc;
}

/* Parses every line of p into st; a streaming state writes a batch each
 * LP_BATCH samples, a job keeps everything for a later lp_flush_batch. */
static mk_err lp_parse_all(mk_db *db, lp_state *st, mk_lp_parser *p, int64_t now_ms, mk_diag *diag)
{
    mk_err rc;
    for (;;) {
        mk_lp_line line;
        mk_lp_error err;
        int r = mk_lp_next(p, &line, &err);
        if (r == MK_LP_END) return MK_OK;
        st->ws.n_lines++;
        if (r == MK_LP_ERROR) {
            st->ws.n_errors++;
            st->ws.n_samples_rejected++;
            lp_report(st, err.line, err.column, err.reason);
            continue;
        }
        if (st->is_streaming && st->n_pts + line.n_fields > LP_BATCH) {
            rc = lp_flush_batch(db, st, diag);
            if (rc) return rc;
        }
        if ((rc = lp_reserve_pts(st, line.n_fields))) return mk_diag_set(diag, rc, "no memory for a write batch");
        int64_t ts = line.has_ts ? line.ts_ms : now_ms;
        uint64_t hraw = XXH3_64bits(line.series_raw.p, line.series_raw.len);
        for (uint32_t f = 0; f < line.n_fields; f++) {
            const mk_lp_field *fd = &line.fields[f];
            if (fd->type == MK_LP_STRING) {
                st->ws.n_samples_rejected++;
                st->ws.n_errors++;
                char why[256];
                snprintf(why, sizeof why, "field '%.*s' has a string value; only numeric and boolean fields are stored (the line's other fields are kept)",
                         (int)(fd->key.len > 100 ? 100 : fd->key.len), fd->key.p);
                lp_report(st, line.line_no, fd->column, why);
                continue;
            }
            uint32_t slot;
            int is_new;
            rc = lp_lookup(st, line.series_raw, hraw, fd->key, &slot, &is_new);
            if (rc) return mk_diag_set(diag, rc, "no memory for the series cache");
            if (is_new) {
                if (st->n_nk == st->cap_nk) {
                    uint32_t cap = st->cap_nk ? st->cap_nk * 2 : 256;
                    lp_newkey *q = realloc(st->nk, cap * sizeof *q);
                    if (!q) return mk_diag_set(diag, MK_ENOMEM, "no memory");
                    st->nk = q;
                    st->cap_nk = cap;
                }
                uint32_t off = (uint32_t)st->keys.len;
                rc = mk_index_key_build(&st->keys, line.measurement, line.tags, line.n_tags, fd->key);
                if (rc) return mk_diag_set(diag, rc, "no memory for a series key");
                st->nk[st->n_nk] = (lp_newkey){slot, off, (uint32_t)(st->keys.len - off), (uint32_t)line.line_no, fd->column};
                st->tab[slot].ord = LP_PENDING | st->n_nk++;
            }
            st->ords[st->n_pts] = st->tab[slot].ord;
            st->ts[st->n_pts] = ts;
            st->v[st->n_pts] = fd->value;
            st->n_pts++;
        }
    }
}

static void add_stats(mk_write_stats *a, const mk_write_stats *b)
{
    a->n_lines += b->n_lines;
    a->n_samples_accepted += b->n_samples_accepted;
    a->n_samples_rejected += b->n_samples_rejected;
    a->n_errors += b->n_errors;
}

mk_err mk_db_write_lp(mk_db *db, const char *text, size_t len, mk_precision precision,
                      int64_t now_ms, mk_write_stats *stats, mk_lp_error_fn on_err, void *err_ctx,
                      mk_diag *diag)
{
    if (stats) memset(stats, 0, sizeof *stats);
    if (!db || (len && !text)) return mk_diag_set(diag, MK_EINVAL, "mk_db_write_lp: NULL argument");
    if (db->opts.is_read_only) return mk_diag_set(diag, MK_EREADONLY, "%s: opened read-only", db->dir);
    mk_lp_parser *p = NULL;
    lp_state *st = calloc(1, sizeof *st);
    mk_err rc = MK_OK;
    if (!st) return mk_diag_set(diag, MK_ENOMEM, "no memory for a write batch");
    st->is_streaming = 1;
    st->on_err = on_err;
    st->err_ctx = err_ctx;
    rc = mk_lp_parser_new(text, len, precision, 1, &p);
    if (rc) { mk_diag_set(diag, rc, "no memory for the line-protocol parser"); goto out; }
    rc = lp_parse_all(db, st, p, now_ms, diag);
    if (!rc && (st->n_pts || st->n_nk)) rc = lp_flush_batch(db, st, diag);
out:
    if (stats) *stats = st->ws;
    mk_lp_parser_free(p);
    lp_state_free(st);
    return rc;
}

/*
 * Parallel form: the text is cut at line ends into pieces; worker threads
 * parse pieces side by side, and apply them strictly in input order (a
 * later line must win over an earlier one with the same timestamp), each
 * waiting for its turn while the next piece is being parsed.
 */
#define LP_PIECE_BYTES (4u << 20)

typedef struct lp_par {
    mk_db *db;
    const char *text;
    size_t len;
    mk_precision precision;
    int64_t now_ms;
    pthread_mutex_t mu;      /* guards everything below */
    pthread_cond_t turn;
    size_t cut;              /* offset where the next piece starts */
    uint64_t cut_line;       /* its first line number */
    uint64_t next_piece, next_apply;
    mk_err rc;               /* first failure; stops everyone */
    mk_diag diag;
    mk_write_stats ws;
    mk_lp_error_fn on_err;
    void *err_ctx;
} lp_par;

static void *lp_worker(void *arg)
{
    lp_par *pp = arg;
    /* One state per worker for all its pieces: its arrays are not grown
     * (and page-faulted) afresh per piece, and its series cache stays warm
     * (ordinals never change once resolved). */
    lp_state *st = calloc(1, sizeof *st);
    if (st) {
        st->on_err = pp->on_err;
        st->err_ctx = pp->err_ctx;
    }
    for (;;) {
        pthread_mutex_lock(&pp->mu);
        if (pp->rc || pp->cut >= pp->len) { pthread_mutex_unlock(&pp->mu); break; }
        size_t a = pp->cut, n = pp->len - a;
        if (n > LP_PIECE_BYTES) {
            const char *nl = memchr(pp->text + a + LP_PIECE_BYTES, '\n', n - LP_PIECE_BYTES);
            n = nl ? (size_t)(nl - (pp->text + a)) + 1 : n;
        }
        uint64_t first_line = pp->cut_line, piece = pp->next_piece++;
        pp->cut = a + n;
        /* the next piece's first line number: counted here, under the lock,
         * at memchr speed (a few hundred microseconds per piece) */
        for (const char *q = pp->text + a, *e = q + n; (q = memchr(q, '\n', (size_t)(e - q))); q++) pp->cut_line++;
        pthread_mutex_unlock(&pp->mu);

        mk_lp_parser *p = NULL;
        mk_diag d = {0};
        mk_err rc = st ? MK_OK : MK_ENOMEM;
        if (!rc) {
            memset(&st->ws, 0, sizeof st->ws);
            st->is_deferred = 1;
            rc = mk_lp_parser_new(pp->text + a, n, pp->precision, first_line, &p);
        }
        if (!rc) rc = lp_parse_all(pp->db, st, p, pp->now_ms, &d);
        mk_lp_parser_free(p);
        pthread_mutex_lock(&pp->mu);
        while (pp->next_apply != piece && !pp->rc) pthread_cond_wait(&pp->turn, &pp->mu);
        if (!pp->rc && !rc) {
            pthread_mutex_unlock(&pp->mu);
            /* the turn is ours: errors and writes go out in input order
             * (series refused while applying are reported after the
             * piece's parse errors) */
            lp_report_deferred(st);
            st->is_deferred = 0;
            rc = lp_flush_batch(pp->db, st, &d);
            pthread_mutex_lock(&pp->mu);
        }
        if (st) add_stats(&pp->ws, &st->ws);
        if (rc && !pp->rc) {
            pp->rc = rc;
            pp->diag = d;
            if (!d.msg[0]) mk_diag_set(&pp->diag, rc, "line-protocol write failed");
        }
        pp->next_apply++;
        pthread_cond_broadcast(&pp->turn);
        pthread_mutex_unlock(&pp->mu);
    }
    lp_state_free(st);
    return NULL;
}

mk_err mk_db_write_lp_parallel(mk_db *db, const char *text, size_t len, mk_precision precision,
                               int64_t now_ms, int n_threads, mk_write_stats *stats,
                               mk_lp_error_fn on_err, void *err_ctx, mk_diag *diag)
{
    if (stats) memset(stats, 0, sizeof *stats);
    if (!db || (len && !text)) return mk_diag_set(diag, MK_EINVAL, "mk_db_write_lp_parallel: NULL argument");
    if (db->opts.is_read_only) return mk_diag_set(diag, MK_EREADONLY, "%s: opened read-only", db->dir);
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    lp_par pp;
    memset(&pp, 0, sizeof pp);
    pp.db = db;
    pp.text = text;
    pp.len = len;
    pp.precision = precision;
    pp.now_ms = now_ms;
    pp.cut_line = 1;
    pp.on_err = on_err;
    pp.err_ctx = err_ctx;
    pthread_mutex_init(&pp.mu, NULL);
    pthread_cond_init(&pp.turn, NULL);
    pthread_t th[64];
    int n_started = 0;
    for (int i = 1; i < n_threads; i++) {
        if (pthread_create(&th[n_started], NULL, lp_worker, &pp) != 0) break;
        n_started++;
    }
    lp_worker(&pp); /* the caller's thread works too */
    for (int i = 0; i < n_started; i++) pthread_join(th[i], NULL);
    pthread_cond_destroy(&pp.turn);
    pthread_mutex_destroy(&pp.mu);
    if (stats) *stats = pp.ws;
    if (pp.rc && diag) *diag = pp.diag;
    return pp.rc;
}

/* ---- open / recover / close -------------------------------------------- */

typedef struct replay_ctx {
    mk_db *db;
    mk_diag *diag;
    uint64_t n_records, n_samples, n_unknown;
} replay_ctx;

static int replay_cb(void *ctx, uint8_t type, const uint8_t *p, size_t len, uint64_t seg)
{
    replay_ctx *rc = ctx;
    mk_db *db = rc->db;
    rc->n_records++;
    if (type == MK_WAL_REC_SERIES) {
        if (len < 12 || 12 + (size_t)mk_get_u32(p + 8) != len) {
            mk_db_log(db, MK_LOG_WARN, "WAL segment %" PRIu64 ": series record of %zu bytes is malformed; skipped", seg, len);
            return 0;
        }
        uint32_t ord;
        int is_new;
        uint64_t id;
        mk_diag d = {0};
        mk_err e = mk_index_add(db->index, (const char *)p + 12, len - 12, &id, &ord, &is_new, &d);
        if (e == MK_ENOMEM) { *rc->diag = d; return e; }
        if (e) { mk_db_log(db, MK_LOG_WARN, "WAL segment %" PRIu64 ": %s; series skipped", seg, d.msg); return 0; }
        if (ensure_series_cap(db, mk_index_count(db->index)))
            return mk_diag_set(rc->diag, MK_ENOMEM, "WAL replay: no memory for %u series", mk_index_count(db->index));
        walseg_note(db, seg, INT64_MIN);
        return 0;
    }
    if (type == MK_WAL_REC_SAMPLES) {
        if (len < 4 || 4 + 24 * (size_t)mk_get_u32(p) != len) {
            mk_db_log(db, MK_LOG_WARN, "WAL segment %" PRIu64 ": samples record of %zu bytes is malformed; skipped", seg, len);
            return 0;
        }
        uint32_t n = mk_get_u32(p);
        int64_t max_ts = INT64_MIN;
        int64_t skip_below = seg < db->ckpt_wal_seq ? db->ckpt_sealed_ms : INT64_MIN;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *q = p + 4 + 24 * (size_t)i;
            uint32_t ord;
            if (mk_index_ordinal(db->index, mk_get_u64(q), &ord)) { rc->n_unknown++; continue; }
            int64_t ts = (int64_t)mk_get_u64(q + 8);
            if (ts < skip_below) continue; /* already in a block */
            if (head_apply(db, ord, ts, mk_bits_f64(mk_get_u64(q + 16))))
                return mk_diag_set(rc->diag, MK_ENOMEM, "WAL replay: no memory for the head (%" PRIu64 " samples so far); raise the memory available", rc->n_samples);
            if (ts > max_ts) max_ts = ts;
            if (ts > db->max_ts_ms) db->max_ts_ms = ts;
            rc->n_samples++;
        }
        walseg_note(db, seg, max_ts);
        return 0;
    }
    mk_db_log(db, MK_LOG_WARN, "WAL segment %" PRIu64 ": unknown record type %u; skipped", seg, type);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Opens every block in blocks/, drops leftovers of interrupted writes and
 * blocks that a later block replaces. A damaged block is reported and left
 * out, never deleted, so `meerkat verify` can still name the damage. */
mk_err mk_db_open_block_dir(mk_db *db, const char *dir, uint16_t flags, mk_blockset **out, mk_diag *diag)
{
    DIR *d = opendir(dir);
    if (!d) return mk_diag_set(diag, mk_err_from_errno(errno), "%s: cannot list: %s", dir, strerror(errno));
    mk_blockref **refs = NULL;
    size_t n = 0, cap = 0;
    mk_err rc = MK_OK;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 8 && strcmp(e->d_name + len - 8, ".mkb.tmp") == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (!db->opts.is_read_only) {
                mk_db_log(db, MK_LOG_INFO, "%s: removing an unfinished block left by an interrupted write", path);
                unlink(path);
            }
            continue;
        }
        if (len != 20 || strcmp(e->d_name + 16, ".mkb") != 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        mk_block *b = NULL;
        mk_diag d2 = {0};
        mk_err r = mk_block_open(db->env, path, &b, &d2);
        if (r == MK_ENOMEM) { rc = mk_diag_set(diag, r, "%s", d2.msg); break; }
        if (r == MK_ETOONEW) { rc = mk_diag_set(diag, r, "%s", d2.msg); break; }
        uint64_t seq = strtoull(e->d_name, NULL, 16);
        if (seq >= db->next_block_seq) db->next_block_seq = seq + 1;
        if (r) {
            mk_db_log(db, MK_LOG_ERROR, "%s; block left out (run `meerkat verify`)", d2.msg);
            continue;
        }
        if (mk_block_flags(b) != flags) {
            /* a rollup block among raw ones (or the reverse) would be read
             * as the wrong kind of data */
            mk_db_log(db, MK_LOG_ERROR, "%s: block flags %#x do not belong in %s; block left out", path,
                      mk_block_flags(b), dir);
            mk_block_close(b);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            mk_blockref **p = realloc(refs, cap * sizeof *p);
            if (!p) { mk_block_close(b); rc = mk_diag_set(diag, MK_ENOMEM, "no memory"); break; }
            refs = p;
        }
        refs[n] = mk_blockref_new(b);
        if (!refs[n]) { mk_block_close(b); rc = mk_diag_set(diag, MK_ENOMEM, "no memory"); break; }
        n++;
    }
    closedir(d);
    if (!rc) {
        /* Replaced blocks: collect every replaced seq, drop those blocks. */
        uint64_t *rep = NULL;
        size_t n_rep = 0;
        for (size_t i = 0; i < n; i++) {
            size_t k;
            const uint64_t *r = mk_block_replaced(refs[i]->b, &k);
            if (!k) continue;
            uint64_t *p = realloc(rep, (n_rep + k) * sizeof *p);
            if (!p) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory"); break; }
            rep = p;
            /* a merged block lists its own seq (it took over that file) */
            uint64_t self = mk_block_seq(refs[i]->b);
            for (size_t j = 0; j < k; j++)
                if (r[j] != self) rep[n_rep++] = r[j];
        }
        if (n_rep) qsort(rep, n_rep, sizeof *rep, cmp_u64);
        /* never reuse a seq some block still lists as replaced */
        if (n_rep && rep[n_rep - 1] >= db->next_block_seq) db->next_block_seq = rep[n_rep - 1] + 1;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t s = mk_block_seq(refs[i]->b);
            if (n_rep && bsearch(&s, rep, n_rep, sizeof *rep, cmp_u64)) {
                refs[i]->is_doomed = !db->opts.is_read_only;
                mk_blockref_unref(refs[i]);
                continue;
            }
            refs[m++] = refs[i];
        }
        n = m;
        free(rep);
    }
    if (!rc) {
        rc = blockset_with(NULL, refs, n, out);
        if (rc) mk_diag_set(diag, rc, "no memory");
        else n = 0;
    }
    for (size_t i = 0; i < n; i++) mk_blockref_unref(refs[i]);
    free(refs);
    return rc;
}

/* Deletes every WAL segment (their contents are sealed and indexed). */
static mk_err drop_wal_segments(mk_db *db, mk_diag *diag)
{
    DIR *d = opendir(db->wal_dir);
    if (!d) return MK_OK;
    struct dirent *e;
    char path[4096];
    mk_err rc = MK_OK;
    while ((e = readdir(d)) && !rc) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".wal") != 0) continue;
        snprintf(path, sizeof path, "%s/%s", db->wal_dir, e->d_name);
        int r = db->env->unlink(db->env, path);
        if (r && r != -ENOENT) rc = mk_diag_set(diag, mk_err_from_errno(-r), "%s: cannot remove: %s", path, strerror(-r));
    }
    closedir(d);
    int r = rc ? 0 : mk_env_fsync_dir(db->env, db->wal_dir);
    if (r) rc = mk_diag_set(diag, mk_err_from_errno(-r), "%s: fsync failed: %s", db->wal_dir, strerror(-r));
    return rc;
}

/* Head files left by a crash are scratch: the WAL replay rebuilds them. */
static void clear_head_dir(mk_db *db)
{
    DIR *d = opendir(db->head_dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".hck") != 0) continue;
        snprintf(path, sizeof path, "%s/%s", db->head_dir, e->d_name);
        db->env->unlink(db->env, path);
    }
    closedir(d);
}

static mk_err make_dir(mk_db *db, const char *path, mk_diag *diag)
{
    int r = db->env->mkdir(db->env, path, 0755);
    if (r && r != -EEXIST) return mk_diag_set(diag, mk_err_from_errno(-r), "%s: cannot create directory: %s", path, strerror(-r));
    return MK_OK;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

static mk_err take_lock(mk_db *db, mk_diag *diag)
{
    char *path = path_join(db->dir, "LOCK");
    if (!path) return mk_diag_set(diag, MK_ENOMEM, "no memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    mk_err rc = MK_OK;
    if (fd < 0) { rc = mk_diag_set(diag, mk_err_from_errno(errno), "%s: cannot open lock file: %s", path, strerror(errno)); goto out; }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        if (r > 0) { pid[r] = 0; pid[strcspn(pid, "\n")] = 0; }
        rc = mk_diag_set(diag, MK_ELOCKED, "%s: data directory is in use by another process%s%s%s", db->dir,
                         *pid ? " (pid " : "", pid, *pid ? ")" : "");
        close(fd);
        goto out;
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)len, 0) < 0) { /* the pid is only a hint */ }
    db->lock_fd = fd;
out:
    free(path);
    return rc;
}

mk_err mk_db_open(const char *dir, const mk_options *opts, mk_db **out, mk_diag *diag)
{
    if (!out) return mk_diag_set(diag, MK_EINVAL, "mk_db_open: out is NULL");
    *out = NULL;
    if (!dir || !*dir) return mk_diag_set(diag, MK_EINVAL, "mk_db_open: no directory given");
    mk_db *db = calloc(1, sizeof *db);
    if (!db) return mk_diag_set(diag, MK_ENOMEM, "no memory");
    mk_err rc = MK_OK;
    if (opts) db->opts = *opts;
    else mk_options_init(&db->opts);
    if (db->opts.block_span_ms <= 0) db->opts.block_span_ms = 2 * 3600 * 1000;
    if (db->opts.fsync_interval_ms <= 0) db->opts.fsync_interval_ms = 1000;
    if (!db->opts.memory_limit_bytes) db->opts.memory_limit_bytes = 512u << 20;
    db->env = db->opts.env ? db->opts.env : mk_env_default();
    db->lock_fd = -1;
    db->sealed_until_ms = INT64_MIN;
    db->max_ts_ms = INT64_MIN;
    db->next_block_seq = 1;
    pthread_mutex_init(&db->mu, NULL);
    pthread_mutex_init(&db->compact_mu, NULL);
    pthread_cond_init(&db->compact_cv, NULL);
    db->dir = strdup(dir);
    db->blocks_dir = path_join(dir, "blocks");
    db->wal_dir = path_join(dir, "wal");
    db->head_dir = path_join(dir, "head");
    if (!db->dir || !db->blocks_dir || !db->wal_dir || !db->head_dir) { rc = mk_diag_set(diag, MK_ENOMEM, "no memory"); goto fail; }

    if (!db->opts.is_read_only) {
        if ((rc = make_dir(db, dir, diag))) goto fail;
        if ((rc = take_lock(db, diag))) goto fail;
        if ((rc = make_dir(db, db->blocks_dir, diag))) goto fail;
        if ((rc = make_dir(db, db->wal_dir, diag))) goto fail;
        if ((rc = make_dir(db, db->head_dir, diag))) goto fail;
        clear_head_dir(db);
    } else if (access(dir, F_OK) != 0) {
        rc = mk_diag_set(diag, MK_ENOTFOUND, "%s: no such data directory", dir);
        goto fail;
    }
    if ((rc = mk_index_new(&db->index))) { mk_diag_set(diag, rc, "no memory"); goto fail; }
    {
        mk_diag d2 = {0}; /* a missing index is no error: keep diag clean */
        rc = mk_index_load(db->index, db->env, db->dir, &d2);
        if (rc == MK_ENOTFOUND) rc = MK_OK;
        if (rc) {
            if (diag) *diag = d2;
            goto fail;
        }
    }
    db->n_index_saved = mk_index_count(db->index);
    if ((rc = ensure_series_cap(db, mk_index_count(db->index)))) { mk_diag_set(diag, rc, "no memory"); goto fail; }
    if (access(db->blocks_dir, F_OK) == 0) {
        if ((rc = mk_db_open_block_dir(db, db->blocks_dir, 0, &db->blocks, diag))) goto fail;
        if ((rc = mk_rollup_open(db, diag))) goto fail;
    } else if ((rc = blockset_with(NULL, NULL, 0, &db->blocks))) {
        mk_diag_set(diag, rc, "no memory");
        goto fail;
    }
    /* Samples older than the newest sealed window go to the ooo path, so a
     * replayed or late write never reopens a sealed window's xor chunk. */
    for (size_t i = 0; i < db->blocks->n; i++) {
        int64_t end = window_of(db, mk_block_max_ts(db->blocks->v[i]->b));
        if (end > db->sealed_until_ms) db->sealed_until_ms = end;
    }

    mk_wal_opts wo = {db->opts.fsync, db->opts.fsync_interval_ms, 0, wal_log, db};
    uint64_t last_seq = 0;
    replay_ctx rctx = {db, diag, 0, 0, 0};
    checkpoint_load(db);
    rc = mk_wal_replay(db->env, db->wal_dir, &wo, db->opts.is_read_only, replay_cb, &rctx, &last_seq, diag);
    if (rc) goto fail;
    if (rctx.n_unknown)
        mk_db_log(db, MK_LOG_WARN, "WAL replay: %" PRIu64 " samples of unknown series skipped", rctx.n_unknown);
    /* Blocks name series by id only: a series missing from the index has
     * lost its key for good. Refuse to write over the evidence (saving an
     * index without them) unless read-only. */
    {
        uint64_t n_unknown = 0, example = 0;
        const char *where = NULL;
        for (size_t i = 0; i < db->blocks->n; i++) {
            size_t n;
            const mk_block_chunk *c = mk_block_chunks(db->blocks->v[i]->b, &n);
            uint32_t ord;
            for (size_t k = 0; k < n; k++) {
                if (k && c[k].series_id == c[k - 1].series_id) continue;
                if (mk_index_ordinal(db->index, c[k].series_id, &ord) == MK_OK) continue;
                if (!n_unknown++) { example = c[k].series_id; where = mk_block_path(db->blocks->v[i]->b); }
            }
        }
        if (n_unknown) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s/index.mki: %" PRIu64 " series found in blocks are not in the series index "
                     "(e.g. id %016" PRIx64 " in %s): the index file is missing or damaged, and series keys cannot be "
                     "rebuilt from blocks; restore index.mki from a backup", db->dir, n_unknown, example, where);
            if (!db->opts.is_read_only) { rc = mk_diag_set(diag, MK_ECORRUPT, "%s", msg); goto fail; }
            mk_db_log(db, MK_LOG_ERROR, "%s", msg);
        }
    }
    if (!db->opts.is_read_only && db->opts.has_wal) {
        if ((rc = mk_wal_open(db->env, db->wal_dir, &wo, last_seq + 1, &db->wal, diag))) goto fail;
        db->wal_seq = last_seq + 1;
    }
    if (!db->opts.is_read_only) {
        if (db->opts.has_wal) {
            rc = maybe_seal(db, diag);
        } else if (last_seq) {
            /* Opened without a WAL over a directory that has one (an import
             * into a server's directory): seal what it holds, save the
             * index, then drop the segments, or every later open would
             * replay them again. */
            if (db->n_head_samples) rc = seal_head(db, 0, 1, diag);
            if (!rc && mk_index_count(db->index) != db->n_index_saved) {
                rc = mk_index_save(db->index, db->env, db->dir, diag);
                if (!rc) db->n_index_saved = mk_index_count(db->index);
            }
            if (!rc) rc = drop_wal_segments(db, diag);
        }
        if (rc) goto fail;
        if (!db->opts.is_compaction_off && (rc = mk_compact_start(db, diag))) goto fail;
    }
    *out = db;
    return MK_OK;
fail:
    db->opts.is_read_only = 1; /* close must not seal or write */
    mk_db_close(db, NULL);
    return rc;
}

mk_err mk_db_flush(mk_db *db, mk_diag *diag)
{
    if (!db) return mk_diag_set(diag, MK_EINVAL, "mk_db_flush: NULL db");
    if (db->opts.is_read_only) return mk_diag_set(diag, MK_EREADONLY, "%s: opened read-only", db->dir);
    pthread_mutex_lock(&db->mu);
    mk_err rc = seal_head(db, 0, 1, diag);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

mk_err mk_db_close(mk_db *db, mk_diag *diag)
{
    if (!db) return MK_OK;
    mk_err rc = MK_OK;
    mk_compact_stop(db);
    if (!db->opts.is_read_only && db->index) {
        if (!db->opts.has_wal) {
            rc = seal_head(db, 0, 1, diag);
        } else if (db->wal) {
            rc = mk_wal_sync(db->wal, diag);
        }
        if (!rc && mk_index_count(db->index) != db->n_index_saved) {
            rc = mk_index_save(db->index, db->env, db->dir, diag);
        }
    }
    if (db->wal) {
        mk_err r2 = mk_wal_close(db->wal, rc ? NULL : diag);
        if (!rc) rc = r2;
    }
    if (db->series) {
        uint32_t n = db->index ? mk_index_count(db->index) : 0;
        for (uint32_t i = 0; i < n; i++) {
            mk_xor_free(&db->series[i].xor);
            free(db->series[i].ooo);
            free(db->series[i].hck);
        }
    }
    /* head files are scratch: the WAL rebuilds the head at the next open */
    for (uint32_t i = 0; i < db->n_hfiles; i++) {
        if (db->hfiles[i].fd < 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%u.hck", db->head_dir, i);
        db->env->close(db->env, db->hfiles[i].fd);
        db->env->unlink(db->env, path);
    }
    free(db->hfiles);
    free(db->head_dir);
    free(db->series);
    mk_blockset_unref(db->blocks);
    mk_rollup_close(db);
    mk_index_free(db->index);
    mk_buf_free(&db->walbuf);
    mk_buf_free(&db->keybuf);
    free(db->walsegs);
    if (db->lock_fd >= 0) close(db->lock_fd);
    pthread_mutex_destroy(&db->mu);
    pthread_mutex_destroy(&db->compact_mu);
    pthread_cond_destroy(&db->compact_cv);
    free(db->dir);
    free(db->blocks_dir);
    free(db->wal_dir);
    free(db);
    return rc;
}

mk_err mk_db_stats_get(mk_db *db, mk_db_stats *st)
{
    if (!db || !st) return MK_EINVAL;
    pthread_mutex_lock(&db->mu);
    st->n_series = mk_index_count(db->index);
    st->n_blocks = db->blocks ? db->blocks->n : 0;
    st->n_head_samples = db->n_head_samples;
    st->head_bytes = db->head_bytes + (uint64_t)db->cap_series * sizeof(mk_series);
    st->wal_bytes = db->wal ? mk_wal_bytes(db->wal) : 0;
    pthread_mutex_unlock(&db->mu);
    return MK_OK;
}

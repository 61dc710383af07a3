/*
 * engine/db_read.c — reading: sample and summary iterators over a snapshot
 * (block set reference + a copy of the series' head), series look-ups.
 *
 * A series' data in [from, to) comes from sources: block chunks and the
 * head. Sources are sorted by first timestamp and read in groups: a group is
 * a maximal run of sources whose time ranges overlap. A group of one source
 * is decoded straight into the output (the common case: blocks do not
 * overlap); a larger group is decoded, merged and deduplicated, the source
 * with the higher seq winning on equal timestamps (head > newer block >
 * older block).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_int.h"
#include "format.h"
#include "util.h"

typedef struct src {
    int64_t lo, hi;
    uint64_t seq;       /* UINT64_MAX for the head */
    const mk_block *b;  /* NULL for the head */
    const mk_block_chunk *c;
    int is_bad;         /* failed its checksum: skipped from now on */
} src;

typedef struct reader {
    mk_blockset *bs;
    mk_codec *codec;
    int64_t from, to;
    src *srcs;
    size_t n_srcs, pos;
    mk_tsv *head;
    size_t n_head;
    /* output and scratch */
    int64_t *ts;
    double *vals;
    size_t cap;
    const int64_t *out_ts; /* the last group's samples: into ts/vals or dts/dvals */
    const double *out_vals;
    int64_t *dts;
    double *dvals;
    struct msample { int64_t ts; uint64_t seq; double v; } *merge;
    size_t cap_merge;
    mk_read_stats st; /* counters for EXPLAIN ANALYZE */
} reader;

struct mk_iter {
    reader r;
};

struct mk_sum_iter {
    reader r;
    mk_chunk_summary cur;
    src *last_stored; /* the chunk cur came from when answered from its summary */
    int has_cur;      /* cur is set; else mk_sum_iter_samples has nothing */
    size_t cur_n;     /* samples behind cur when it was decoded */
};

static int cmp_src(const void *a, const void *b)
{
    const src *x = a, *y = b;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void reader_free(reader *r)
{
    if (r->bs) mk_blockset_unref(r->bs);
    mk_codec_free(r->codec);
    free(r->srcs);
    free(r->head);
    free(r->ts);
    free(r->vals);
    free(r->dts);
    free(r->dvals);
    free(r->merge);
}

static mk_err reader_setup(reader *r, mk_db *db, uint64_t id, int64_t from, int64_t to, mk_diag *diag);

static mk_err reader_init(reader *r, mk_db *db, uint64_t id, int64_t from, int64_t to, mk_diag *diag)
{
    memset(r, 0, sizeof *r);
    /* the decoder and its buffers come with the first chunk decoded
     * (decode_src): summary readers answered from stored summaries never
     * need them */
    return reader_setup(r, db, id, from, to, diag);
}

/* Points an allocated reader at (id, [from, to)), keeping its codec and
 * scratch buffers (mk_*_iter_reset: one reader serves many series). */
static mk_err reader_setup(reader *r, mk_db *db, uint64_t id, int64_t from, int64_t to, mk_diag *diag)
{
    mk_blockset_unref(r->bs);
    r->bs = NULL;
    free(r->srcs);
    r->srcs = NULL;
    free(r->head);
    r->head = NULL;
    r->n_head = 0;
    r->n_srcs = 0;
    r->pos = 0;
    r->from = from;
    r->to = to;
    mk_err rc;
    pthread_mutex_lock(&db->mu);
    uint32_t ord;
    if (mk_index_ordinal(db->index, id, &ord) != MK_OK) {
        pthread_mutex_unlock(&db->mu);
        return mk_diag_set(diag, MK_ENOTFOUND, "no series with id %016" PRIx64, id);
    }
    r->bs = db->blocks;
    atomic_fetch_add(&r->bs->refs, 1);
    rc = from < to ? mk_db_head_samples(db, ord, from, to, &r->head, &r->n_head) : MK_OK;
    pthread_mutex_unlock(&db->mu);
    if (rc) return mk_diag_set(diag, rc, "no memory for an iterator");
    if (from >= to) return MK_OK;

    size_t cap = 16;
    r->srcs = malloc(cap * sizeof *r->srcs);
    if (!r->srcs) return mk_diag_set(diag, MK_ENOMEM, "no memory for an iterator");
    for (size_t i = 0; i < r->bs->n; i++) {
        const mk_block *b = r->bs->v[i]->b;
        if (mk_block_max_ts(b) < from || mk_block_min_ts(b) >= to) continue;
        size_t n;
        const mk_block_chunk *c = mk_block_find(b, id, &n);
        for (size_t k = 0; k < n; k++) {
            if (c[k].sum.last_ts_ms < from || c[k].sum.first_ts_ms >= to) continue;
            if (r->n_srcs == cap) {
                cap *= 2;
                src *p = realloc(r->srcs, cap * sizeof *p);
                if (!p) return mk_diag_set(diag, MK_ENOMEM, "no memory for an iterator");
                r->srcs = p;
            }
            r->srcs[r->n_srcs++] = (src){c[k].sum.first_ts_ms, c[k].sum.last_ts_ms, mk_block_seq(b), b, &c[k], 0};
        }
    }
    if (r->n_head) {
        if (r->n_srcs == cap) {
            src *p = realloc(r->srcs, (cap + 1) * sizeof *p);
            if (!p) return mk_diag_set(diag, MK_ENOMEM, "no memory for an iterator");
            r->srcs = p;
        }
        r->srcs[r->n_srcs++] = (src){r->head[0].ts, r->head[r->n_head - 1].ts, UINT64_MAX, NULL, NULL, 0};
    }
    qsort(r->srcs, r->n_srcs, sizeof *r->srcs, cmp_src);
    return MK_OK;
}

static mk_err reserve_out(reader *r, size_t n)
{
    if (n <= r->cap) return MK_OK;
    size_t cap = r->cap ? r->cap : 1024;
    while (cap < n) cap *= 2;
    int64_t *t = realloc(r->ts, cap * sizeof *t);
    if (!t) return MK_ENOMEM;
    r->ts = t;
    double *v = realloc(r->vals, cap * sizeof *v);
    if (!v) return MK_ENOMEM;
    r->vals = v;
    r->cap = cap;
    return MK_OK;
}

/* Decodes source s into r->dts/r->dvals (or points at the head copy). */
static mk_err decode_src(reader *r, src *s, const int64_t **ts, const double **vals, size_t *n,
                         mk_diag *diag)
{
    if (!s->b) {
        mk_err rc = reserve_out(r, r->n_head);
        if (rc) return mk_diag_set(diag, rc, "no memory");
        /* the head copy is an array of pairs; split it into the scratch */
        for (size_t i = 0; i < r->n_head; i++) { r->ts[i] = r->head[i].ts; r->vals[i] = r->head[i].v; }
        r->st.n_chunks_decoded++;
        r->st.n_samples_decoded += r->n_head;
        *ts = r->ts;
        *vals = r->vals;
        *n = r->n_head;
        return MK_OK;
    }
    if (!r->codec) {
        mk_err rc = mk_codec_new(&r->codec);
        if (rc) return mk_diag_set(diag, rc, "no memory for a decoder");
    }
    if (!r->dts && !(r->dts = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *r->dts)))
        return mk_diag_set(diag, MK_ENOMEM, "no memory for a decoder");
    if (!r->dvals && !(r->dvals = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *r->dvals)))
        return mk_diag_set(diag, MK_ENOMEM, "no memory for a decoder");
    const uint8_t *p;
    mk_err rc = mk_block_payload(s->b, s->c, &p, diag);
    if (rc) return rc;
    uint32_t got = 0;
    rc = mk_codec_decode(r->codec, p, s->c->len, r->dts, r->dvals, MK_CHUNK_MAX_SAMPLES, &got, diag);
    if (rc) {
        char why[sizeof diag->msg];
        snprintf(why, sizeof why, "%s", diag ? diag->msg : "undecodable chunk");
        return mk_diag_set(diag, rc, "%s: chunk at offset %" PRIu64 ": %s", mk_block_path(s->b), s->c->offset, why);
    }
    r->st.n_chunks_decoded++;
    r->st.n_samples_decoded += got;
    r->st.n_bytes_read += s->c->len;
    *ts = r->dts;
    *vals = r->dvals;
    *n = got;
    return MK_OK;
}

static int cmp_msample(const void *a, const void *b)
{
    const struct msample *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Reads the next group into r->ts/r->vals (*n samples inside [from, to)).
 * *single is the lone source when the group has one (else NULL). *n == 0
 * and *more == 0 at the end. A bad chunk returns MK_ECORRUPT after marking
 * it; the caller may call again to continue without it.
 */
static mk_err next_group(reader *r, size_t *n, src **single, int *more, mk_diag *diag)
{
    *n = 0;
    *single = NULL;
    while (r->pos < r->n_srcs && r->srcs[r->pos].is_bad) r->pos++;
    if (r->pos >= r->n_srcs) { *more = 0; return MK_OK; }
    *more = 1;
    size_t g0 = r->pos, g1 = r->pos + 1;
    int64_t hi = r->srcs[g0].hi;
    while (g1 < r->n_srcs && r->srcs[g1].lo <= hi) {
        if (r->srcs[g1].hi > hi) hi = r->srcs[g1].hi;
        g1++;
    }
    size_t n_live = 0;
    for (size_t i = g0; i < g1; i++) n_live += !r->srcs[i].is_bad;
    mk_err rc;
    if (n_live == 1) {
        src *s = &r->srcs[g0];
        while (s->is_bad) s++;
        const int64_t *ts;
        const double *vals;
        size_t m;
        rc = decode_src(r, s, &ts, &vals, &m, diag);
        if (rc) { s->is_bad = 1; return rc; }
        r->pos = g1;
        size_t a = 0, b = m;
        if (s->lo < r->from) while (a < b && ts[a] < r->from) a++;
        if (s->hi >= r->to) while (b > a && ts[b - 1] >= r->to) b--;
        /* no copy: the caller reads the decode buffer itself */
        r->out_ts = ts + a;
        r->out_vals = vals + a;
        *n = b - a;
        *single = s;
        return MK_OK;
    }
    /* Overlapping sources: merge, newest seq wins on equal timestamps. */
    size_t nm = 0;
    for (size_t i = g0; i < g1; i++) {
        src *s = &r->srcs[i];
        if (s->is_bad) continue;
        const int64_t *ts;
        const double *vals;
        size_t m;
        rc = decode_src(r, s, &ts, &vals, &m, diag);
        if (rc) { s->is_bad = 1; return rc; }
        if (nm + m > r->cap_merge) {
            size_t cap = r->cap_merge ? r->cap_merge : 4096;
            while (cap < nm + m) cap *= 2;
            struct msample *p = realloc(r->merge, cap * sizeof *p);
            if (!p) return mk_diag_set(diag, MK_ENOMEM, "no memory");
            r->merge = p;
            r->cap_merge = cap;
        }
        for (size_t k = 0; k < m; k++)
            if (ts[k] >= r->from && ts[k] < r->to) r->merge[nm++] = (struct msample){ts[k], s->seq, vals[k]};
    }
    r->pos = g1;
    if (nm) qsort(r->merge, nm, sizeof *r->merge, cmp_msample);
    if ((rc = reserve_out(r, nm))) return mk_diag_set(diag, rc, "no memory");
    size_t k = 0;
    for (size_t i = 0; i < nm; i++) {
        if (k && r->ts[k - 1] == r->merge[i].ts) { r->vals[k - 1] = r->merge[i].v; continue; }
        r->ts[k] = r->merge[i].ts;
        r->vals[k] = r->merge[i].v;
        k++;
    }
    r->out_ts = r->ts;
    r->out_vals = r->vals;
    *n = k;
    return MK_OK;
}

mk_err mk_db_iter(mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms, mk_iter **out,
                  mk_diag *diag)
{
    if (!db || !out) return mk_diag_set(diag, MK_EINVAL, "mk_db_iter: NULL argument");
    *out = NULL;
    mk_iter *it = calloc(1, sizeof *it);
    if (!it) return mk_diag_set(diag, MK_ENOMEM, "no memory for an iterator");
    mk_err rc = reader_init(&it->r, db, series_id, from_ms, to_ms, diag);
    if (rc) { mk_iter_free(it); return rc; }
    *out = it;
    return MK_OK;
}

mk_err mk_iter_next(mk_iter *it, const int64_t **ts, const double **vals, size_t *n, mk_diag *diag)
{
    *n = 0;
    for (;;) {
        size_t m;
        src *single;
        int more;
        mk_err rc = next_group(&it->r, &m, &single, &more, diag);
        if (rc) return rc;
        if (!more) return MK_OK;
        if (m) {
            *ts = it->r.out_ts;
            *vals = it->r.out_vals;
            *n = m;
            return MK_OK;
        }
    }
}

void mk_iter_free(mk_iter *it)
{
    if (!it) return;
    reader_free(&it->r);
    free(it);
}

mk_err mk_db_iter_summaries(mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms,
                            mk_sum_iter **out, mk_diag *diag)
{
    if (!db || !out) return mk_diag_set(diag, MK_EINVAL, "mk_db_iter_summaries: NULL argument");
    *out = NULL;
    mk_sum_iter *it = calloc(1, sizeof *it);
    if (!it) return mk_diag_set(diag, MK_ENOMEM, "no memory for an iterator");
    mk_err rc = reader_init(&it->r, db, series_id, from_ms, to_ms, diag);
    if (rc) { mk_sum_iter_free(it); return rc; }
    *out = it;
    return MK_OK;
}

mk_err mk_sum_iter_next(mk_sum_iter *it, const mk_chunk_summary **s, int *is_decoded, int *has,
                        mk_diag *diag)
{
    reader *r = &it->r;
    *has = 0;
    it->has_cur = 0;
    it->last_stored = NULL;
    for (;;) {
        while (r->pos < r->n_srcs && r->srcs[r->pos].is_bad) r->pos++;
        if (r->pos >= r->n_srcs) return MK_OK;
        /* Fast path: a lone chunk wholly inside the range answers from its
         * stored summary, without touching the payload. */
        src *c = &r->srcs[r->pos];
        int is_lone = r->pos + 1 >= r->n_srcs || r->srcs[r->pos + 1].lo > c->hi;
        if (is_lone && c->b && c->lo >= r->from && c->hi < r->to) {
            r->pos++;
            it->cur = c->c->sum;
            it->last_stored = c;
            it->has_cur = 1;
            r->st.n_chunks_summary++;
            *s = &it->cur;
            *is_decoded = 0;
            *has = 1;
            return MK_OK;
        }
        size_t m;
        src *single;
        int more;
        mk_err rc = next_group(r, &m, &single, &more, diag);
        if (rc) return rc;
        if (!more) return MK_OK;
        if (!m) continue;
        mk_codec_summarise(r->out_ts, r->out_vals, (uint32_t)m, &it->cur);
        it->has_cur = 1;
        it->cur_n = m;
        *s = &it->cur;
        *is_decoded = 1;
        *has = 1;
        return MK_OK;
    }
}

void mk_sum_iter_free(mk_sum_iter *it)
{
    if (!it) return;
    reader_free(&it->r);
    free(it);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

mk_err mk_db_find_series(mk_db *db, const char *measurement, const mk_matcher *m, size_t n_m,
                         const char *field, uint64_t **ids, size_t *n_ids, mk_diag *diag)
{
    if (!db || !ids || !n_ids || (n_m && !m)) return mk_diag_set(diag, MK_EINVAL, "mk_db_find_series: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    uint32_t *ords = NULL;
    size_t n = 0;
    pthread_mutex_lock(&db->mu);
    mk_err rc = mk_index_find(db->index, measurement, m, n_m, field, &ords, &n, diag);
    uint64_t *out = NULL;
    if (!rc && n) {
        out = malloc(n * sizeof *out);
        if (!out) rc = mk_diag_set(diag, MK_ENOMEM, "no memory for %zu series ids", n);
        else for (size_t i = 0; i < n; i++) out[i] = mk_index_id_at(db->index, ords[i]);
    }
    pthread_mutex_unlock(&db->mu);
    free(ords);
    if (rc) { free(out); return rc; }
    if (n) qsort(out, n, sizeof *out, cmp_u64);
    *ids = out;
    *n_ids = n;
    return MK_OK;
}

mk_err mk_db_series_key(mk_db *db, uint64_t id, char *buf, size_t cap, size_t *len, mk_diag *diag)
{
    if (!db) return mk_diag_set(diag, MK_EINVAL, "mk_db_series_key: NULL db");
    pthread_mutex_lock(&db->mu);
    uint32_t ord;
    mk_err rc = mk_index_ordinal(db->index, id, &ord);
    if (rc) {
        pthread_mutex_unlock(&db->mu);
        return mk_diag_set(diag, MK_ENOTFOUND, "no series with id %016" PRIx64, id);
    }
    size_t klen;
    const char *k = mk_index_key_at(db->index, ord, &klen);
    if (buf && cap) {
        size_t c = klen < cap - 1 ? klen : cap - 1;
        memcpy(buf, k, c);
        buf[c] = 0;
    }
    if (len) *len = klen;
    pthread_mutex_unlock(&db->mu);
    return MK_OK;
}

void mk_iter_stats(const mk_iter *it, mk_read_stats *st)
{
    if (st) *st = it ? it->r.st : (mk_read_stats){0};
}

void mk_sum_iter_stats(const mk_sum_iter *it, mk_read_stats *st)
{
    if (st) *st = it ? it->r.st : (mk_read_stats){0};
}

mk_err mk_sum_iter_samples(mk_sum_iter *it, const int64_t **ts, const double **vals, size_t *n,
                           mk_diag *diag)
{
    *n = 0;
    if (!it->has_cur) return mk_diag_set(diag, MK_EINVAL, "mk_sum_iter_samples: no current summary");
    reader *r = &it->r;
    if (!it->last_stored) { /* decoded already: the group is still in out_ts/out_vals */
        *ts = r->out_ts;
        *vals = r->out_vals;
        *n = it->cur_n;
        return MK_OK;
    }
    /* A lone chunk wholly inside the range: its samples need no trimming. */
    size_t m = 0;
    mk_err rc = decode_src(r, it->last_stored, ts, vals, &m, diag);
    if (rc) { it->last_stored->is_bad = 1; return rc; }
    *n = m;
    return MK_OK;
}

mk_err mk_db_measurements(mk_db *db, int (*cb)(void *ctx, const char *name), void *ctx,
                          mk_diag *diag)
{
    if (!db || !cb) return mk_diag_set(diag, MK_EINVAL, "mk_db_measurements: NULL argument");
    pthread_mutex_lock(&db->mu);
    mk_err rc = mk_index_measurements(db->index, cb, ctx);
    pthread_mutex_unlock(&db->mu);
    if (rc) return mk_diag_set(diag, rc, "listing measurements failed");
    return MK_OK;
}

mk_err mk_iter_reset(mk_iter *it, mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms, mk_diag *diag)
{
    if (!it || !db) return mk_diag_set(diag, MK_EINVAL, "mk_iter_reset: NULL argument");
    return reader_setup(&it->r, db, series_id, from_ms, to_ms, diag);
}

mk_err mk_sum_iter_reset(mk_sum_iter *it, mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms,
                         mk_diag *diag)
{
    if (!it || !db) return mk_diag_set(diag, MK_EINVAL, "mk_sum_iter_reset: NULL argument");
    it->has_cur = 0;
    it->last_stored = NULL;
    return reader_setup(&it->r, db, series_id, from_ms, to_ms, diag);
}

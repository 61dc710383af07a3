/*
 * detect/score_adapter.c — anomaly scores for rules from the default
 * detector (see score_adapter.h). Moved out of tools/cli_rules.c so the
 * server evaluates anomaly rules the same way `meerkat detect` does.
 */
#include "score_adapter.h"

#include <stdlib.h>
#include <string.h>

typedef struct scored {
    int64_t ts_ms;
    double score;
} scored;

struct mk_score_series {
    uint64_t series_id;
    mk_det *det;
    mk_det_db_history hist;
    int64_t fed_to_ms;  /* samples with ts < fed_to_ms have been scored */
    scored *recent;     /* scores of the last samples, oldest first */
    size_t n_recent, cap_recent;
};

void mk_score_adapter_init(mk_score_adapter *a, mk_db *db)
{
    memset(a, 0, sizeof *a);
    a->db = db;
    mk_det_params_init(&a->params);
}

void mk_score_adapter_free(mk_score_adapter *a)
{
    for (size_t i = 0; i < a->n; i++) {
        mk_det_free(a->s[i].det);
        mk_det_db_history_free(&a->s[i].hist);
        free(a->s[i].recent);
    }
    free(a->s);
    a->s = NULL;
    a->n = a->cap = 0;
}

int mk_score_adapter_fn(void *vctx, const mk_rule *r, uint64_t id, int64_t now_ms, double *score)
{
    mk_score_adapter *c = vctx;
    mk_score_series *ds = NULL;
    if (r->window_ms > c->keep_ms) c->keep_ms = r->window_ms;
    for (size_t i = 0; i < c->n; i++)
        if (c->s[i].series_id == id) ds = &c->s[i];
    if (!ds) {
        if (c->n == c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 16;
            mk_score_series *p = realloc(c->s, nc * sizeof *p);
            if (!p) return -1;
            c->s = p;
            c->cap = nc;
        }
        ds = &c->s[c->n];
        memset(ds, 0, sizeof *ds);
        ds->series_id = id;
        ds->fed_to_ms = INT64_MIN;
        if (mk_det_new(&c->params, &ds->det, NULL)) return -1;
        mk_det_db_history_init(&ds->hist, c->db, id);
        c->n++;
    }
    mk_iter *it = NULL;
    int64_t from = ds->fed_to_ms == INT64_MIN ? now_ms + 1 - 8 * 86400000LL : ds->fed_to_ms;
    if (mk_db_iter(c->db, id, from, now_ms + 1, &it, NULL)) return -1;
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t n;
        if (mk_iter_next(it, &ts, &v, &n, NULL) || !n) break;
        for (size_t i = 0; i < n; i++) {
            double sc = 0;
            if (mk_det_step(ds->det, ts[i], v[i], mk_det_db_history_fn, &ds->hist, &sc, NULL, NULL)) continue;
            if (ds->n_recent == ds->cap_recent) {
                size_t nc = ds->cap_recent ? ds->cap_recent * 2 : 64;
                scored *p = realloc(ds->recent, nc * sizeof *p);
                if (!p) { mk_iter_free(it); return -1; }
                ds->recent = p;
                ds->cap_recent = nc;
            }
            ds->recent[ds->n_recent++] = (scored){ts[i], sc};
        }
    }
    mk_iter_free(it);
    ds->fed_to_ms = now_ms + 1;
    size_t drop = 0; /* forget scores older than any window */
    while (drop < ds->n_recent && ds->recent[drop].ts_ms <= now_ms - c->keep_ms) drop++;
    memmove(ds->recent, ds->recent + drop, (ds->n_recent - drop) * sizeof *ds->recent);
    ds->n_recent -= drop;
    int has = 0;
    double best = 0;
    for (size_t i = 0; i < ds->n_recent; i++)
        if (ds->recent[i].ts_ms > now_ms - r->window_ms) {
            if (!has || ds->recent[i].score > best) best = ds->recent[i].score;
            has = 1;
        }
    *score = best;
    return has;
}

/*
 * query/exec_show.c — SHOW statements, answered from the series index with
 * InfluxDB 1.x's series names and columns:
 *
 *   DATABASES           "databases"   [name]
 *   MEASUREMENTS        "measurements" [name]
 *   TAG KEYS            <measurement> [tagKey]
 *   TAG VALUES          <measurement> [key, value]
 *   FIELD KEYS          <measurement> [fieldKey, fieldType]   (always "float")
 *   SERIES              (no name)     [key]   (key without the field)
 *   RETENTION POLICIES  (no name)     [name, duration, shardGroupDuration, replicaN, default]
 *
 * Time conditions in WHERE are accepted and ignored (Meerkat keeps no
 * per-series time index); tag conditions select the series considered.
 * LIMIT/OFFSET apply to the rows of each series (to the one list for
 * MEASUREMENTS and SERIES).
 */
#include <stdlib.h>
#include <string.h>

#include "exec_int.h"
#include "util.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static size_t uniq(const char **v, size_t n)
{
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_str);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i], v[k - 1]) != 0) v[k++] = v[i];
    return k;
}

/* Measurements named by FROM (names, regexes), or all; sorted, distinct. */
static mk_err show_meas(mk_xctx *c, const mk_ast *sources, const char ***out, size_t *n)
{
    const char **all = NULL;
    size_t n_all = 0;
    mk_err rc = mk_x_measurements(c, &all, &n_all);
    if (rc) return rc;
    if (!sources) { *out = all; *n = n_all; return MK_OK; }
    size_t cap = n_all + 1;
    for (const mk_ast *s = sources; s; s = s->next) cap++;
    const char **v = mk_arena_alloc(c->a, cap * sizeof *v);
    if (!v) return mk_x_fail(c, "out of memory");
    size_t k = 0;
    for (const mk_ast *s = sources; s; s = s->next) {
        if (s->kind != MK_AST_MEASUREMENT) return mk_x_fail(c, "subqueries are not allowed in SHOW");
        if (s->u.meas.name) {
            for (size_t i = 0; i < n_all; i++)
                if (strcmp(all[i], s->u.meas.name) == 0) { v[k++] = all[i]; break; }
            continue;
        }
        for (size_t i = 0; i < n_all; i++) {
            int m;
            if ((rc = mk_x_regex_match(c, s->u.meas.regex->u.str.s, all[i], &m))) return rc;
            if (m) v[k++] = all[i];
        }
    }
    *out = v;
    *n = uniq(v, k);
    return MK_OK;
}

/* Series of meas passing the tag condition, keys parsed. */
static mk_err show_series(mk_xctx *c, const char *meas, const mk_ast *cond, mk_xseries **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!cond) return mk_x_series_all(c, meas, out, n);
    uint64_t *ids;
    size_t ni;
    mk_err rc = mk_x_cond_ids(c, meas, cond, NULL, &ids, &ni);
    if (rc) return rc;
    mk_xseries *v = mk_arena_alloc(c->a, (ni ? ni : 1) * sizeof *v);
    if (!v) return mk_x_fail(c, "out of memory");
    for (size_t i = 0; i < ni; i++)
        if ((rc = mk_x_series_load(c, ids[i], &v[i]))) return rc;
    *out = v;
    *n = ni;
    return MK_OK;
}

static mk_err add_rows1(mk_xctx *c, const char *name, const char *col, const char **vals, size_t n,
                        const mk_ast_limit *limit, const mk_ast_limit *offset)
{
    size_t off = offset->is_set ? (size_t)offset->n : 0;
    if (off >= n) return MK_OK;
    size_t cnt = n - off;
    if (limit->is_set && limit->n > 0 && (uint64_t)limit->n < cnt) cnt = (size_t)limit->n; /* LIMIT 0: none */
    if (!cnt) return MK_OK;
    uint32_t idx;
    if (mk_qres_add_series(c->r, name, 0, NULL, NULL, 1, &col, &idx)) return mk_x_fail(c, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        mk_qv v = {MK_QV_STRING, {.s = vals[off + i]}};
        if (mk_qres_add_row(c->r, idx, &v)) return mk_x_fail(c, "out of memory");
    }
    return MK_OK;
}

static mk_err key_match(mk_xctx *c, const mk_ast_show *sh, const char *key, int *ok)
{
    *ok = 1;
    switch (sh->with_op) {
    case MK_QTOK_EQ:
    case MK_QTOK_NEQ:
        *ok = (strcmp(key, sh->with->u.var.name) == 0) == (sh->with_op == MK_QTOK_EQ);
        return MK_OK;
    case MK_QTOK_EQREGEX:
    case MK_QTOK_NEQREGEX: {
        int m;
        mk_err rc = mk_x_regex_match(c, sh->with->u.str.s, key, &m);
        if (rc) return rc;
        *ok = m == (sh->with_op == MK_QTOK_EQREGEX);
        return MK_OK;
    }
    case MK_QTOK_IN:
        *ok = 0;
        for (const mk_ast *w = sh->with; w; w = w->next)
            if (w->kind == MK_AST_VARREF && strcmp(w->u.var.name, key) == 0) *ok = 1;
        return MK_OK;
    default: return MK_OK;
    }
}

typedef struct kv { const char *k, *v; } kv;
static int cmp_kv(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    int r = strcmp(x->k, y->k);
    return r ? r : strcmp(x->v, y->v);
}

mk_err mk_x_show(mk_xctx *c, const mk_ast_show *sh)
{
    mk_err rc;
    const char **ms;
    size_t nm;
    switch (sh->what) {
    case MK_AST_SHOW_DATABASES: {
        const char *one[1];
        const char *const *v = c->o->databases;
        size_t n = c->o->n_databases;
        if (!v || !n) { one[0] = c->o->db && *c->o->db ? c->o->db : "meerkat"; v = one; n = 1; }
        static const mk_ast_limit none = {0, 0};
        return add_rows1(c, "databases", "name", (const char **)v, n, &none, &none);
    }
    case MK_AST_SHOW_RETENTION_POLICIES: {
        static const char *const cols[] = {"name", "duration", "shardGroupDuration", "replicaN", "default"};
        uint32_t idx;
        if (mk_qres_add_series(c->r, NULL, 0, NULL, NULL, 5, cols, &idx)) return mk_x_fail(c, "out of memory");
        mk_qv row[5] = {{MK_QV_STRING, {.s = "autogen"}}, {MK_QV_STRING, {.s = "0s"}}, {MK_QV_STRING, {.s = "168h0m0s"}},
                        {MK_QV_INT, {.i = 1}}, {MK_QV_BOOL, {.i = 1}}};
        if (mk_qres_add_row(c->r, idx, row)) return mk_x_fail(c, "out of memory");
        return MK_OK;
    }
    case MK_AST_SHOW_MEASUREMENTS: {
        if ((rc = show_meas(c, NULL, &ms, &nm))) return rc;
        const char **keep = mk_arena_alloc(c->a, (nm + 1) * sizeof *keep);
        if (!keep) return mk_x_fail(c, "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < nm; i++) {
            int ok = 1;
            if (sh->with_op == MK_QTOK_EQ || sh->with_op == MK_QTOK_NEQ) {
                const char *nmv = sh->with->kind == MK_AST_VARREF ? sh->with->u.var.name : sh->with->u.str.s;
                ok = (strcmp(ms[i], nmv) == 0) == (sh->with_op == MK_QTOK_EQ);
            } else if (sh->with_op == MK_QTOK_EQREGEX || sh->with_op == MK_QTOK_NEQREGEX) {
                int m;
                if ((rc = mk_x_regex_match(c, sh->with->u.str.s, ms[i], &m))) return rc;
                ok = m == (sh->with_op == MK_QTOK_EQREGEX);
            }
            if (ok && sh->cond) {
                uint64_t *ids;
                size_t n;
                if ((rc = mk_x_cond_ids(c, ms[i], sh->cond, NULL, &ids, &n))) return rc;
                ok = n > 0;
            }
            if (ok) keep[k++] = ms[i];
        }
        return add_rows1(c, "measurements", "name", keep, k, &sh->limit, &sh->offset);
    }
    case MK_AST_SHOW_TAG_KEYS:
    case MK_AST_SHOW_FIELD_KEYS:
        if ((rc = show_meas(c, sh->sources, &ms, &nm))) return rc;
        for (size_t i = 0; i < nm; i++) {
            mk_xseries *s;
            size_t n;
            if ((rc = show_series(c, ms[i], sh->what == MK_AST_SHOW_TAG_KEYS ? sh->cond : NULL, &s, &n))) return rc;
            size_t cap = 0;
            for (size_t j = 0; j < n; j++) cap += sh->what == MK_AST_SHOW_TAG_KEYS ? s[j].n_tags : 1;
            const char **v = mk_arena_alloc(c->a, (cap + 1) * sizeof *v);
            if (!v) return mk_x_fail(c, "out of memory");
            size_t k = 0;
            for (size_t j = 0; j < n; j++) {
                if (sh->what == MK_AST_SHOW_FIELD_KEYS) v[k++] = s[j].field;
                else for (uint32_t t = 0; t < s[j].n_tags; t++) v[k++] = s[j].tk[t];
            }
            k = uniq(v, k);
            if (sh->what == MK_AST_SHOW_TAG_KEYS) {
                if ((rc = add_rows1(c, ms[i], "tagKey", v, k, &sh->limit, &sh->offset))) return rc;
                continue;
            }
            size_t off = sh->offset.is_set ? (size_t)sh->offset.n : 0;
            if (off >= k) continue;
            size_t cnt = k - off;
            if (sh->limit.is_set && sh->limit.n > 0 && (uint64_t)sh->limit.n < cnt) cnt = (size_t)sh->limit.n; /* LIMIT 0: none */
            if (!cnt) continue;
            static const char *const cols[] = {"fieldKey", "fieldType"};
            uint32_t idx;
            if (mk_qres_add_series(c->r, ms[i], 0, NULL, NULL, 2, cols, &idx)) return mk_x_fail(c, "out of memory");
            for (size_t j = 0; j < cnt; j++) {
                mk_qv row[2] = {{MK_QV_STRING, {.s = v[off + j]}}, {MK_QV_STRING, {.s = "float"}}};
                if (mk_qres_add_row(c->r, idx, row)) return mk_x_fail(c, "out of memory");
            }
        }
        return MK_OK;
    case MK_AST_SHOW_TAG_VALUES:
        if ((rc = show_meas(c, sh->sources, &ms, &nm))) return rc;
        for (size_t i = 0; i < nm; i++) {
            mk_xseries *s;
            size_t n;
            if ((rc = show_series(c, ms[i], sh->cond, &s, &n))) return rc;
            size_t cap = 0;
            for (size_t j = 0; j < n; j++) cap += s[j].n_tags;
            kv *v = malloc((cap + 1) * sizeof *v);
            if (!v) return mk_x_fail(c, "out of memory");
            size_t k = 0;
            for (size_t j = 0; j < n; j++)
                for (uint32_t t = 0; t < s[j].n_tags; t++) {
                    int ok;
                    if ((rc = key_match(c, sh, s[j].tk[t], &ok))) { free(v); return rc; }
                    if (ok) v[k++] = (kv){s[j].tk[t], s[j].tv[t]};
                }
            if (k) qsort(v, k, sizeof *v, cmp_kv);
            size_t u = 0;
            for (size_t j = 0; j < k; j++)
                if (!u || cmp_kv(&v[u - 1], &v[j]) != 0) v[u++] = v[j];
            size_t off = sh->offset.is_set ? (size_t)sh->offset.n : 0;
            size_t cnt = off < u ? u - off : 0;
            if (sh->limit.is_set && sh->limit.n > 0 && (uint64_t)sh->limit.n < cnt) cnt = (size_t)sh->limit.n; /* LIMIT 0: none */
            if (cnt) {
                static const char *const cols[] = {"key", "value"};
                uint32_t idx;
                if (mk_qres_add_series(c->r, ms[i], 0, NULL, NULL, 2, cols, &idx)) { free(v); return mk_x_fail(c, "out of memory"); }
                for (size_t j = 0; j < cnt; j++) {
                    mk_qv row[2] = {{MK_QV_STRING, {.s = v[off + j].k}}, {MK_QV_STRING, {.s = v[off + j].v}}};
                    if (mk_qres_add_row(c->r, idx, row)) { free(v); return mk_x_fail(c, "out of memory"); }
                }
            }
            free(v);
        }
        return MK_OK;
    case MK_AST_SHOW_SERIES: {
        if ((rc = show_meas(c, sh->sources, &ms, &nm))) return rc;
        const char **keys = NULL;
        size_t nk = 0, capk = 0;
        for (size_t i = 0; i < nm; i++) {
            mk_xseries *s;
            size_t n;
            if ((rc = show_series(c, ms[i], sh->cond, &s, &n))) { free(keys); return rc; }
            if (nk + n > capk) {
                size_t cap = capk ? capk : 64;
                while (cap < nk + n) cap *= 2;
                const char **p = realloc(keys, cap * sizeof *p);
                if (!p) { free(keys); return mk_x_fail(c, "out of memory"); }
                keys = p;
                capk = cap;
            }
            for (size_t j = 0; j < n; j++) keys[nk++] = s[j].tskey;
        }
        nk = uniq(keys, nk);
        rc = add_rows1(c, NULL, "key", keys, nk, &sh->limit, &sh->offset);
        free(keys);
        return rc;
    }
    }
    return mk_x_fail(c, "unsupported SHOW statement");
}

/*
 * query/result.c — the answer tree of a query: building and reading it.
 *
 * Strings live in one arena; statement, series and value arrays are grown
 * with realloc and published through the public const views as they are.
 */
#include "result.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

typedef struct res_series {
    mk_qseries pub;
    uint64_t cap_rows;
} res_series;

typedef struct res_stmt {
    mk_qstmt pub;
    res_series *series;   /* pub.series mirrors this array (see publish) */
    uint32_t cap_series;
} res_stmt;

struct mk_qresult {
    mk_arena *arena;
    res_stmt *stmts;
    uint32_t n_stmts, cap_stmts;
    uint64_t n_values;
};

mk_err mk_qres_new(mk_qresult **out)
{
    *out = NULL;
    mk_qresult *r = calloc(1, sizeof *r);
    if (!r) return MK_ENOMEM;
    if (mk_arena_new(&r->arena) != MK_OK) {
        free(r);
        return MK_ENOMEM;
    }
    *out = r;
    return MK_OK;
}

/*
 * Value arrays of freed answers, kept for the next ones. A long-range
 * answer's array is hundreds of KiB of fresh pages each time (a year of
 * hourly rows: 280 KiB), and on the VMs this runs on a page fault costs
 * tens of microseconds: for a year's hourly mean read from the 1 h tier
 * the faults on that array took longer than the whole read. At most
 * VCACHE_N arrays of VCACHE_MIN..VCACHE_MAX bytes are kept (8 MiB in
 * all at worst), for the life of the process; answers of any query, on
 * any thread, take them (best fit).
 */
#define VCACHE_N 2
#define VCACHE_MIN ((size_t)64 << 10)
#define VCACHE_MAX ((size_t)4 << 20)

static pthread_mutex_t g_vc_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    void *p;
    size_t n_bytes;
} g_vc[VCACHE_N];

/* Frees p (n_bytes long), or keeps it for vcache_get. */
static void vcache_put(void *p, size_t n_bytes)
{
    if (!p) return;
    if (n_bytes < VCACHE_MIN || n_bytes > VCACHE_MAX) { free(p); return; }
    void *drop = p;
    pthread_mutex_lock(&g_vc_mu);
    int k = -1; /* an empty slot, else the smallest array if smaller than p */
    for (int i = 0; i < VCACHE_N; i++) {
        if (!g_vc[i].p) { k = i; break; }
        if (g_vc[i].n_bytes < n_bytes && (k < 0 || g_vc[i].n_bytes < g_vc[k].n_bytes)) k = i;
    }
    if (k >= 0) {
        drop = g_vc[k].p;
        g_vc[k].p = p;
        g_vc[k].n_bytes = n_bytes;
    }
    pthread_mutex_unlock(&g_vc_mu);
    free(drop);
}

/* The smallest kept array of at least need bytes (its size in *n_bytes),
 * or NULL. */
static void *vcache_get(size_t need, size_t *n_bytes)
{
    void *p = NULL;
    pthread_mutex_lock(&g_vc_mu);
    int k = -1;
    for (int i = 0; i < VCACHE_N; i++)
        if (g_vc[i].p && g_vc[i].n_bytes >= need && (k < 0 || g_vc[i].n_bytes < g_vc[k].n_bytes)) k = i;
    if (k >= 0) {
        p = g_vc[k].p;
        *n_bytes = g_vc[k].n_bytes;
        g_vc[k].p = NULL;
    }
    pthread_mutex_unlock(&g_vc_mu);
    return p;
}

/* Bytes of a series' value array (as allocated: one spare byte). */
static size_t values_bytes(const res_series *se) { return (size_t)se->cap_rows * se->pub.n_cols * sizeof(mk_qv) + 1; }

/* A series' first value array, for at least need_rows rows: a kept one
 * when there is one, else NULL (the caller allocates). */
static mk_qv *values_from_cache(res_series *se, uint64_t need_rows)
{
    uint32_t nc = se->pub.n_cols;
    if (!nc || se->pub.values) return NULL;
    size_t got = 0;
    mk_qv *p = vcache_get((size_t)need_rows * nc * sizeof(mk_qv) + 1, &got);
    if (!p) return NULL;
    se->pub.values = p;
    se->cap_rows = (got - 1) / (nc * sizeof(mk_qv));
    return p;
}

static void free_stmt_series(res_stmt *s)
{
    for (uint32_t i = 0; i < s->pub.n_series; i++) vcache_put((void *)s->series[i].pub.values, values_bytes(&s->series[i]));
    free(s->series);
    s->series = NULL;
    s->pub.n_series = 0;
    s->cap_series = 0;
}

void mk_qresult_free(mk_qresult *r)
{
    if (!r) return;
    for (uint32_t i = 0; i < r->n_stmts; i++) {
        free_stmt_series(&r->stmts[i]);
        free((void *)r->stmts[i].pub.series);
    }
    free(r->stmts);
    mk_arena_free(r->arena);
    free(r);
}

uint32_t mk_qresult_n_stmts(const mk_qresult *r) { return r ? r->n_stmts : 0; }

const mk_qstmt *mk_qresult_stmt(const mk_qresult *r, uint32_t i)
{
    if (!r || i >= r->n_stmts) return NULL;
    return &r->stmts[i].pub;
}

const char *mk_qres_strdup(mk_qresult *r, const char *s)
{
    if (!s) return NULL;
    return mk_arena_strndup(r->arena, s, strlen(s));
}

mk_err mk_qres_begin_stmt(mk_qresult *r, uint32_t statement_id)
{
    if (r->n_stmts == r->cap_stmts) {
        uint32_t cap = r->cap_stmts ? r->cap_stmts * 2 : 4;
        res_stmt *p = realloc(r->stmts, cap * sizeof *p);
        if (!p) return MK_ENOMEM;
        r->stmts = p;
        r->cap_stmts = cap;
    }
    res_stmt *s = &r->stmts[r->n_stmts++];
    memset(s, 0, sizeof *s);
    s->pub.statement_id = statement_id;
    return MK_OK;
}

/* The public series array mirrors the private one; refreshed on every change
 * so readers never see a stale pointer. */
static mk_err publish(res_stmt *s)
{
    mk_qseries *v = realloc((void *)s->pub.series, (s->pub.n_series ? s->pub.n_series : 1) * sizeof *v);
    if (!v) return MK_ENOMEM;
    for (uint32_t i = 0; i < s->pub.n_series; i++) v[i] = s->series[i].pub;
    s->pub.series = v;
    return MK_OK;
}

mk_err mk_qres_stmt_error(mk_qresult *r, const char *fmt, ...)
{
    if (r->n_stmts == 0) return MK_EINVAL;
    res_stmt *s = &r->stmts[r->n_stmts - 1];
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (uint32_t i = 0; i < s->pub.n_series; i++) r->n_values -= s->series[i].pub.n_rows * s->series[i].pub.n_cols;
    free_stmt_series(s);
    s->pub.error = mk_qres_strdup(r, msg);
    if (!s->pub.error) return MK_ENOMEM;
    return publish(s);
}

static const char *const *dup_strs(mk_qresult *r, uint32_t n, const char *const *src)
{
    if (n == 0) return NULL;
    const char **a = mk_arena_alloc(r->arena, n * sizeof *a);
    if (!a) return NULL;
    for (uint32_t i = 0; i < n; i++) {
        a[i] = mk_qres_strdup(r, src[i] ? src[i] : "");
        if (!a[i]) return NULL;
    }
    return a;
}

mk_err mk_qres_add_series(mk_qresult *r, const char *name, uint32_t n_tags,
                          const char *const *tag_keys, const char *const *tag_values,
                          uint32_t n_cols, const char *const *columns, uint32_t *idx)
{
    if (r->n_stmts == 0) return MK_EINVAL;
    res_stmt *s = &r->stmts[r->n_stmts - 1];
    if (s->pub.n_series == s->cap_series) {
        uint32_t cap = s->cap_series ? s->cap_series * 2 : 4;
        res_series *p = realloc(s->series, cap * sizeof *p);
        if (!p) return MK_ENOMEM;
        s->series = p;
        s->cap_series = cap;
    }
    res_series *ns = &s->series[s->pub.n_series];
    memset(ns, 0, sizeof *ns);
    if (name && !(ns->pub.name = mk_qres_strdup(r, name))) return MK_ENOMEM;
    ns->pub.n_tags = n_tags;
    ns->pub.n_cols = n_cols;
    if (n_tags && (!(ns->pub.tag_keys = dup_strs(r, n_tags, tag_keys)) ||
                   !(ns->pub.tag_values = dup_strs(r, n_tags, tag_values))))
        return MK_ENOMEM;
    if (n_cols && !(ns->pub.columns = dup_strs(r, n_cols, columns))) return MK_ENOMEM;
    *idx = s->pub.n_series++;
    return publish(s);
}

mk_err mk_qres_add_row(mk_qresult *r, uint32_t idx, const mk_qv *row)
{
    if (r->n_stmts == 0) return MK_EINVAL;
    res_stmt *s = &r->stmts[r->n_stmts - 1];
    if (idx >= s->pub.n_series) return MK_EINVAL;
    res_series *se = &s->series[idx];
    uint32_t nc = se->pub.n_cols;
    if (se->pub.n_rows == se->cap_rows && !values_from_cache(se, 16)) {
        uint64_t cap = se->cap_rows ? se->cap_rows * 2 : 16;
        if (nc && cap > SIZE_MAX / sizeof(mk_qv) / nc) return MK_ENOMEM;
        mk_qv *p = realloc((void *)se->pub.values, (size_t)cap * nc * sizeof *p + 1);
        if (!p) return MK_ENOMEM;
        se->pub.values = p;
        se->cap_rows = cap;
    }
    mk_qv *dst = (mk_qv *)se->pub.values + se->pub.n_rows * nc;
    for (uint32_t c = 0; c < nc; c++) {
        dst[c] = row[c];
        if (row[c].type == MK_QV_STRING) {
            dst[c].u.s = mk_qres_strdup(r, row[c].u.s ? row[c].u.s : "");
            if (!dst[c].u.s) return MK_ENOMEM;
        }
    }
    se->pub.n_rows++;
    r->n_values += nc;
    ((mk_qseries *)s->pub.series)[idx] = se->pub; /* new values pointer: refresh the view */
    return MK_OK;
}

mk_err mk_qres_add_rows(mk_qresult *r, uint32_t idx, size_t n_rows, mk_qv **rows)
{
    *rows = NULL;
    if (r->n_stmts == 0) return MK_EINVAL;
    res_stmt *s = &r->stmts[r->n_stmts - 1];
    if (idx >= s->pub.n_series) return MK_EINVAL;
    res_series *se = &s->series[idx];
    uint32_t nc = se->pub.n_cols;
    if (n_rows > SIZE_MAX / sizeof(mk_qv) / (nc ? nc : 1) - se->pub.n_rows) return MK_ENOMEM;
    uint64_t need = se->pub.n_rows + n_rows;
    if (need > se->cap_rows && !values_from_cache(se, need)) {
        /* one allocation of the exact size: the caller knows its row count */
        mk_qv *p = realloc((void *)se->pub.values, (size_t)need * nc * sizeof *p + 1);
        if (!p) return MK_ENOMEM;
        se->pub.values = p;
        se->cap_rows = need;
    }
    *rows = (mk_qv *)se->pub.values + se->pub.n_rows * nc;
    se->pub.n_rows = need;
    r->n_values += (uint64_t)n_rows * nc;
    ((mk_qseries *)s->pub.series)[idx] = se->pub;
    return MK_OK;
}

mk_err mk_qres_drop_last_series(mk_qresult *r)
{
    if (r->n_stmts == 0) return MK_EINVAL;
    res_stmt *s = &r->stmts[r->n_stmts - 1];
    if (!s->pub.n_series) return MK_EINVAL;
    res_series *se = &s->series[s->pub.n_series - 1];
    r->n_values -= se->pub.n_rows * se->pub.n_cols;
    vcache_put((void *)se->pub.values, values_bytes(se)); /* (its strings stay in the arena until the result is freed) */
    memset(se, 0, sizeof *se);
    s->pub.n_series--;
    return publish(s);
}

uint64_t mk_qres_n_values(const mk_qresult *r) { return r->n_values; }

/*
 * query/exec_cond.c — the executor's WHERE handling and catalogue look-ups:
 * series keys split into parts, tag conditions turned into sorted id sets
 * (postings through mk_db_find_series, set operations for OR / regex), the
 * time range of a WHERE clause, per-point evaluation of field conditions,
 * and the statement's PCRE2 regex cache.
 *
 * Invariants: id sets are sorted ascending without duplicates; every string
 * handed out lives in the statement arena (c->a).
 */
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "exec_int.h"
#include "util.h"

mk_err mk_x_fail(mk_xctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return MK_EINVAL;
}

int64_t mk_x_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

mk_err mk_x_check_deadline(mk_xctx *c)
{
    if (c->deadline_ms != INT64_MAX && mk_x_mono_ms() > c->deadline_ms)
        return mk_x_fail(c, "query timeout after %lld ms", (long long)c->timeout_ms);
    return MK_OK;
}

const mk_qv *mk_x_param(mk_xctx *c, const char *name)
{
    for (size_t i = 0; i < c->o->n_params; i++)
        if (c->o->params[i].name && strcmp(c->o->params[i].name, name) == 0) return &c->o->params[i].value;
    return NULL;
}

/* ---- regexes ------------------------------------------------------------ */

typedef struct rx_ent {
    const char *pat;
    pcre2_code *code;
    pcre2_match_data *md;
} rx_ent;

struct rx_cache {
    rx_ent *v;
    size_t n, cap;
};

void mk_x_rx_free(struct rx_cache *rc)
{
    if (!rc) return;
    for (size_t i = 0; i < rc->n; i++) {
        pcre2_match_data_free(rc->v[i].md);
        pcre2_code_free(rc->v[i].code);
    }
    free(rc->v);
    free(rc);
}

mk_err mk_x_regex_match(mk_xctx *c, const char *pat, const char *subj, int *is_match)
{
    *is_match = 0;
    if (!c->rx && !(c->rx = calloc(1, sizeof *c->rx))) return mk_x_fail(c, "out of memory");
    struct rx_cache *rc = c->rx;
    rx_ent *e = NULL;
    for (size_t i = 0; i < rc->n; i++)
        if (rc->v[i].pat == pat || strcmp(rc->v[i].pat, pat) == 0) { e = &rc->v[i]; break; }
    if (!e) {
        if (rc->n == rc->cap) {
            size_t cap = rc->cap ? rc->cap * 2 : 8;
            rx_ent *p = realloc(rc->v, cap * sizeof *p);
            if (!p) return mk_x_fail(c, "out of memory");
            rc->v = p;
            rc->cap = cap;
        }
        int ecode;
        PCRE2_SIZE eoff;
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
                                         &ecode, &eoff, NULL);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ecode, msg, sizeof msg);
            return mk_x_fail(c, "invalid regular expression /%s/ at offset %zu: %s", pat, (size_t)eoff, (char *)msg);
        }
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
        if (!md) {
            pcre2_code_free(code);
            return mk_x_fail(c, "out of memory");
        }
        e = &rc->v[rc->n++];
        e->pat = pat;
        e->code = code;
        e->md = md;
    }
    int m = pcre2_match(e->code, (PCRE2_SPTR)subj, strlen(subj), 0, 0, e->md, NULL);
    if (m >= 0) *is_match = 1;
    else if (m != PCRE2_ERROR_NOMATCH) return mk_x_fail(c, "regular expression /%s/ failed to run (error %d)", e->pat, m);
    return MK_OK;
}

/* ---- series keys -------------------------------------------------------- */

/* Copies key[*pos..) up to an unescaped stop char, removing escapes. */
static char *unesc_part(mk_xctx *c, const char *key, size_t len, size_t *pos, const char *stops)
{
    char *out = mk_arena_alloc(c->a, len - *pos + 1);
    if (!out) return NULL;
    size_t k = 0, i = *pos;
    while (i < len) {
        char ch = key[i];
        if (ch == '\\' && i + 1 < len && (key[i + 1] == ',' || key[i + 1] == '=' || key[i + 1] == ' ')) {
            out[k++] = key[i + 1];
            i += 2;
            continue;
        }
        if (strchr(stops, ch)) break;
        out[k++] = ch;
        i++;
    }
    out[k] = 0;
    *pos = i;
    return out;
}

static mk_err parse_key(mk_xctx *c, uint64_t id, const char *key, size_t len, mk_xseries *s)
{
    memset(s, 0, sizeof *s);
    s->id = id;
    size_t pos = 0;
    if (!(s->meas = unesc_part(c, key, len, &pos, ", "))) return mk_x_fail(c, "out of memory");
    uint32_t cap = 0;
    for (size_t i = pos; i < len; i++) cap += key[i] == '=';
    s->tk = mk_arena_alloc(c->a, (cap + 1) * sizeof *s->tk);
    s->tv = mk_arena_alloc(c->a, (cap + 1) * sizeof *s->tv);
    if (!s->tk || !s->tv) return mk_x_fail(c, "out of memory");
    while (pos < len && key[pos] == ',') {
        pos++;
        const char *k = unesc_part(c, key, len, &pos, "=");
        if (!k || pos >= len) return mk_x_fail(c, "damaged series key %s", key);
        pos++;
        const char *v = unesc_part(c, key, len, &pos, ", ");
        if (!v) return mk_x_fail(c, "out of memory");
        if (s->n_tags < cap) {
            s->tk[s->n_tags] = k;
            s->tv[s->n_tags++] = v;
        }
    }
    s->tskey = mk_arena_strndup(c->a, key, pos);
    if (pos < len && key[pos] == ' ') pos++;
    s->field = unesc_part(c, key, len, &pos, "");
    if (!s->tskey || !s->field) return mk_x_fail(c, "out of memory");
    return MK_OK;
}

mk_err mk_x_series_load(mk_xctx *c, uint64_t id, mk_xseries *out)
{
    char buf[512];
    size_t len = 0;
    mk_diag d = {0};
    mk_err rc = mk_db_series_key(c->db, id, buf, sizeof buf, &len, &d);
    if (rc) return mk_x_fail(c, "%s", d.msg);
    if (len < sizeof buf) return parse_key(c, id, buf, len, out);
    char *big = malloc(len + 1);
    if (!big) return mk_x_fail(c, "out of memory");
    rc = mk_db_series_key(c->db, id, big, len + 1, &len, &d);
    if (!rc) rc = parse_key(c, id, big, len, out);
    else rc = mk_x_fail(c, "%s", d.msg);
    free(big);
    return rc;
}

const char *mk_x_tag(const mk_xseries *s, const char *key)
{
    for (uint32_t i = 0; i < s->n_tags; i++)
        if (strcmp(s->tk[i], key) == 0) return s->tv[i];
    return "";
}

mk_err mk_x_series_all(mk_xctx *c, const char *meas, mk_xseries **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    uint64_t *ids = NULL;
    size_t ni = 0;
    mk_diag d = {0};
    mk_err rc = mk_db_find_series(c->db, meas, NULL, 0, NULL, &ids, &ni, &d);
    if (rc) return mk_x_fail(c, "%s", d.msg);
    mk_xseries *v = mk_arena_alloc(c->a, (ni ? ni : 1) * sizeof *v);
    if (!v) rc = mk_x_fail(c, "out of memory");
    for (size_t i = 0; !rc && i < ni; i++) rc = mk_x_series_load(c, ids[i], &v[i]);
    free(ids);
    if (rc) return rc;
    *out = v;
    *n = ni;
    return MK_OK;
}

typedef struct meas_acc {
    mk_xctx *c;
    const char **v;
    size_t n, cap;
    int is_oom;
} meas_acc;

static int meas_cb(void *ctx, const char *name)
{
    meas_acc *m = ctx;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        const char **p = realloc(m->v, cap * sizeof *p);
        if (!p) { m->is_oom = 1; return 1; }
        m->v = p;
        m->cap = cap;
    }
    if (!(m->v[m->n++] = mk_arena_strndup(m->c->a, name, strlen(name)))) { m->is_oom = 1; return 1; }
    return 0;
}

mk_err mk_x_measurements(mk_xctx *c, const char ***out, size_t *n)
{
    meas_acc m = {c, NULL, 0, 0, 0};
    mk_diag d = {0};
    mk_err rc = mk_db_measurements(c->db, meas_cb, &m, &d);
    if (rc) { free(m.v); return mk_x_fail(c, "%s", d.msg); }
    if (m.is_oom) { free(m.v); return mk_x_fail(c, "out of memory"); }
    const char **v = mk_arena_alloc(c->a, (m.n ? m.n : 1) * sizeof *v);
    if (!v) { free(m.v); return mk_x_fail(c, "out of memory"); }
    if (m.n) memcpy(v, m.v, m.n * sizeof *v);
    free(m.v);
    *out = v;
    *n = m.n;
    return MK_OK;
}

/* ---- identifiers -------------------------------------------------------- */

static const mk_ast *unparen(const mk_ast *e)
{
    while (e && e->kind == MK_AST_PAREN) e = e->u.bin.rhs;
    return e;
}

static int is_time_ref(const mk_ast *e)
{
    e = unparen(e);
    return e && e->kind == MK_AST_VARREF && strcasecmp(e->u.var.name, "time") == 0;
}

int mk_x_is_field(mk_xctx *c, const char *meas, const char *name)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    mk_diag d = {0};
    if (mk_db_find_series(c->db, meas, NULL, 0, name, &ids, &n, &d) != MK_OK) return 0;
    free(ids);
    return n > 0;
}

/* A VARREF that names a field (not a tag) of meas. */
static int ref_is_field(mk_xctx *c, const char *meas, const mk_ast *e)
{
    if (e->u.var.cast == MK_AST_CAST_TAG) return 0;
    if (e->u.var.cast == MK_AST_CAST_FIELD) return 1;
    return mk_x_is_field(c, meas, e->u.var.name);
}

static int is_cmp_op(int op)
{
    return op == MK_QTOK_EQ || op == MK_QTOK_NEQ || op == MK_QTOK_LT || op == MK_QTOK_LTE ||
           op == MK_QTOK_GT || op == MK_QTOK_GTE || op == MK_QTOK_EQREGEX || op == MK_QTOK_NEQREGEX;
}

static int refs_time(const mk_ast *e)
{
    e = unparen(e);
    if (!e) return 0;
    if (is_time_ref(e)) return 1;
    if (e->kind == MK_AST_BINARY) return refs_time(e->u.bin.lhs) || refs_time(e->u.bin.rhs);
    return 0;
}

static void collect_fields(mk_xctx *c, const char *meas, const mk_ast *e, const char **names, size_t cap,
                           size_t *n)
{
    if (!e) return;
    switch (e->kind) {
    case MK_AST_PAREN:
    case MK_AST_UNARY: collect_fields(c, meas, e->u.bin.rhs, names, cap, n); return;
    case MK_AST_BINARY:
        if (is_cmp_op(e->u.bin.op) && (refs_time(e->u.bin.lhs) || refs_time(e->u.bin.rhs))) return;
        collect_fields(c, meas, e->u.bin.lhs, names, cap, n);
        collect_fields(c, meas, e->u.bin.rhs, names, cap, n);
        return;
    case MK_AST_VARREF:
        if (is_time_ref(e) || !ref_is_field(c, meas, e)) return;
        for (size_t i = 0; i < *n; i++)
            if (strcmp(names[i], e->u.var.name) == 0) return;
        if (*n < cap) names[(*n)++] = e->u.var.name;
        return;
    default: return;
    }
}

void mk_x_cond_fields(mk_xctx *c, const char *meas, const mk_ast *cond, const char **names, size_t cap,
                      size_t *n)
{
    collect_fields(c, meas, cond, names, cap, n);
}

int mk_x_cond_has_field(mk_xctx *c, const char *meas, const mk_ast *cond)
{
    const char *names[1];
    size_t n = 0;
    collect_fields(c, meas, cond, names, 1, &n);
    return n > 0;
}

/* ---- time --------------------------------------------------------------- */

mk_err mk_x_time_value(mk_xctx *c, const mk_ast *e, int64_t *ns)
{
    e = unparen(e);
    if (!e) return mk_x_fail(c, "invalid time expression");
    switch (e->kind) {
    case MK_AST_CALL:
        if (strcmp(e->u.call.name, "now") == 0 && e->u.call.n_args == 0) { *ns = c->now_ns; return MK_OK; }
        return mk_x_fail(c, "invalid function %s() in a time condition", e->u.call.name);
    case MK_AST_STRING:
        if (e->u.str.is_time) { *ns = e->u.str.time_ns; return MK_OK; }
        /* fallthrough */
    case MK_AST_DURATION:
    case MK_AST_INTEGER:
        if (mk_ast_time_ns(e, ns) != MK_OK) return mk_x_fail(c, "invalid time literal");
        return MK_OK;
    case MK_AST_NUMBER:
        if (!(e->u.f64 > -9.2e18 && e->u.f64 < 9.2e18)) return mk_x_fail(c, "time literal out of range");
        *ns = (int64_t)e->u.f64;
        return MK_OK;
    case MK_AST_PARAM: {
        const mk_qv *v = mk_x_param(c, e->u.str.s);
        if (!v) return mk_x_fail(c, "missing parameter: $%s", e->u.str.s);
        if (v->type == MK_QV_INT || v->type == MK_QV_TIME) { *ns = v->u.i; return MK_OK; }
        if (v->type == MK_QV_FLOAT) { *ns = (int64_t)v->u.f; return MK_OK; }
        if (v->type == MK_QV_STRING && v->u.s && mk_ast_parse_time_str(v->u.s, strlen(v->u.s), ns) == MK_OK) return MK_OK;
        return mk_x_fail(c, "parameter $%s is not a time", e->u.str.s);
    }
    case MK_AST_UNARY:
        if (e->u.bin.op == MK_QTOK_SUB) {
            mk_err rc = mk_x_time_value(c, e->u.bin.rhs, ns);
            if (!rc) *ns = -*ns;
            return rc;
        }
        return mk_x_time_value(c, e->u.bin.rhs, ns);
    case MK_AST_BINARY: {
        if (e->u.bin.op != MK_QTOK_ADD && e->u.bin.op != MK_QTOK_SUB) return mk_x_fail(c, "invalid time expression");
        int64_t a, b;
        mk_err rc = mk_x_time_value(c, e->u.bin.lhs, &a);
        if (!rc) rc = mk_x_time_value(c, e->u.bin.rhs, &b);
        if (rc) return rc;
        int64_t r;
        if (e->u.bin.op == MK_QTOK_ADD ? __builtin_add_overflow(a, b, &r) : __builtin_sub_overflow(a, b, &r))
            return mk_x_fail(c, "time expression out of range");
        *ns = r;
        return MK_OK;
    }
    default: return mk_x_fail(c, "invalid time expression");
    }
}

static mk_err time_walk(mk_xctx *c, const mk_ast *e, int64_t *lo, int64_t *hi)
{
    e = unparen(e);
    if (!e || e->kind != MK_AST_BINARY) return MK_OK;
    int op = e->u.bin.op;
    if (op == MK_QTOK_AND) {
        mk_err rc = time_walk(c, e->u.bin.lhs, lo, hi);
        return rc ? rc : time_walk(c, e->u.bin.rhs, lo, hi);
    }
    if (op == MK_QTOK_OR) {
        if (refs_time(e->u.bin.lhs) || refs_time(e->u.bin.rhs)) {
            /* only a comparison chain below OR would carry time: refuse, as InfluxDB does */
            const mk_ast *l = unparen(e->u.bin.lhs), *r = unparen(e->u.bin.rhs);
            if ((l && l->kind == MK_AST_BINARY && is_cmp_op(l->u.bin.op) && (is_time_ref(l->u.bin.lhs) || is_time_ref(l->u.bin.rhs))) ||
                (r && r->kind == MK_AST_BINARY && is_cmp_op(r->u.bin.op) && (is_time_ref(r->u.bin.lhs) || is_time_ref(r->u.bin.rhs))))
                return mk_x_fail(c, "invalid condition: time comparisons cannot be combined with OR");
        }
        return MK_OK;
    }
    if (!is_cmp_op(op)) return MK_OK;
    const mk_ast *val;
    if (is_time_ref(e->u.bin.lhs)) val = e->u.bin.rhs;
    else if (is_time_ref(e->u.bin.rhs)) {
        val = e->u.bin.lhs;
        switch (op) { /* mirror: X < time  ==  time > X */
        case MK_QTOK_LT: op = MK_QTOK_GT; break;
        case MK_QTOK_LTE: op = MK_QTOK_GTE; break;
        case MK_QTOK_GT: op = MK_QTOK_LT; break;
        case MK_QTOK_GTE: op = MK_QTOK_LTE; break;
        default: break;
        }
    } else return MK_OK;
    int64_t t;
    mk_err rc = mk_x_time_value(c, val, &t);
    if (rc) return rc;
    switch (op) {
    case MK_QTOK_GT: if (t < MK_X_MAX_TIME_NS) t++; if (t > *lo) *lo = t; break;
    case MK_QTOK_GTE: if (t > *lo) *lo = t; break;
    case MK_QTOK_LT: if (t > MK_X_MIN_TIME_NS) t--; if (t < *hi) *hi = t; break;
    case MK_QTOK_LTE: if (t < *hi) *hi = t; break;
    case MK_QTOK_EQ: if (t > *lo) *lo = t; if (t < *hi) *hi = t; break;
    default: return mk_x_fail(c, "invalid time comparison operator %s", mk_qlex_kind_name(op));
    }
    return MK_OK;
}

mk_err mk_x_time_range(mk_xctx *c, const mk_ast *cond, int64_t *lo_ns, int64_t *hi_ns, int *has_lo, int *has_hi)
{
    int64_t lo = MK_X_MIN_TIME_NS, hi = MK_X_MAX_TIME_NS;
    mk_err rc = time_walk(c, cond, &lo, &hi);
    if (rc) return rc;
    *has_lo = lo != MK_X_MIN_TIME_NS;
    *has_hi = hi != MK_X_MAX_TIME_NS;
    *lo_ns = lo;
    *hi_ns = hi;
    return MK_OK;
}

/* ---- id sets ------------------------------------------------------------ */

typedef struct idset {
    int is_all;
    uint64_t *v; /* malloc'ed */
    size_t n;
} idset;

static void ids_and(idset *a, idset *b)
{
    if (b->is_all) { free(b->v); return; }
    if (a->is_all) { *a = *b; return; }
    size_t i = 0, j = 0, k = 0;
    while (i < a->n && j < b->n) {
        if (a->v[i] < b->v[j]) i++;
        else if (a->v[i] > b->v[j]) j++;
        else { a->v[k++] = a->v[i]; i++; j++; }
    }
    a->n = k;
    free(b->v);
}

static mk_err ids_or(idset *a, idset *b)
{
    if (a->is_all) { free(b->v); return MK_OK; }
    if (b->is_all) { free(a->v); *a = *b; return MK_OK; }
    uint64_t *v = malloc((a->n + b->n + 1) * sizeof *v);
    if (!v) { free(b->v); return MK_ENOMEM; }
    size_t i = 0, j = 0, k = 0;
    while (i < a->n || j < b->n) {
        if (j >= b->n || (i < a->n && a->v[i] < b->v[j])) v[k++] = a->v[i++];
        else if (i >= a->n || b->v[j] < a->v[i]) v[k++] = b->v[j++];
        else { v[k++] = a->v[i]; i++; j++; }
    }
    free(a->v);
    free(b->v);
    a->v = v;
    a->n = k;
    return MK_OK;
}

static const char *str_operand(mk_xctx *c, const mk_ast *e)
{
    e = unparen(e);
    if (!e) return NULL;
    if (e->kind == MK_AST_STRING) return e->u.str.s;
    if (e->kind == MK_AST_PARAM) {
        const mk_qv *v = mk_x_param(c, e->u.str.s);
        if (v && v->type == MK_QV_STRING) return v->u.s;
    }
    return NULL;
}

static mk_err find(mk_xctx *c, const char *meas, const mk_matcher *m, size_t n, const char *field, idset *out)
{
    mk_diag d = {0};
    out->is_all = 0;
    if (mk_db_find_series(c->db, meas, m, n, field, &out->v, &out->n, &d) != MK_OK) return mk_x_fail(c, "%s", d.msg);
    return MK_OK;
}

static mk_err cond_set(mk_xctx *c, const char *meas, const mk_ast *e, idset *out)
{
    memset(out, 0, sizeof *out);
    out->is_all = 1;
    e = unparen(e);
    if (!e || e->kind != MK_AST_BINARY) return MK_OK;
    int op = e->u.bin.op;
    mk_err rc;
    if (op == MK_QTOK_AND || op == MK_QTOK_OR) {
        idset b;
        if ((rc = cond_set(c, meas, e->u.bin.lhs, out))) return rc;
        if ((rc = cond_set(c, meas, e->u.bin.rhs, &b))) { free(out->v); return rc; }
        if (op == MK_QTOK_AND) ids_and(out, &b);
        else if (ids_or(out, &b)) return mk_x_fail(c, "out of memory");
        return MK_OK;
    }
    if (!is_cmp_op(op)) return MK_OK;
    const mk_ast *l = unparen(e->u.bin.lhs), *r = unparen(e->u.bin.rhs);
    const mk_ast *ref = NULL, *val = NULL;
    if (l && l->kind == MK_AST_VARREF) { ref = l; val = r; }
    else if (r && r->kind == MK_AST_VARREF) { ref = r; val = l; }
    if (!ref || is_time_ref(ref) || ref_is_field(c, meas, ref)) return MK_OK;
    const char *key = ref->u.var.name;
    if (op == MK_QTOK_EQ || op == MK_QTOK_NEQ) {
        const char *s = str_operand(c, val);
        if (!s) {
            /* tag compared with a non-string: never true for = (InfluxDB), always for != */
            if (op == MK_QTOK_EQ) { out->is_all = 0; out->n = 0; }
            return MK_OK;
        }
        mk_matcher m = {key, s, op == MK_QTOK_NEQ};
        return find(c, meas, &m, 1, NULL, out);
    }
    if (op == MK_QTOK_EQREGEX || op == MK_QTOK_NEQREGEX) {
        val = unparen(val);
        if (!val || val->kind != MK_AST_REGEX) return mk_x_fail(c, "expected a regular expression after %s", mk_qlex_kind_name(op));
        mk_xseries *all;
        size_t n;
        if ((rc = mk_x_series_all(c, meas, &all, &n))) return rc;
        out->is_all = 0;
        out->v = malloc((n ? n : 1) * sizeof *out->v);
        if (!out->v) return mk_x_fail(c, "out of memory");
        for (size_t i = 0; i < n; i++) {
            int is_m;
            if ((rc = mk_x_regex_match(c, val->u.str.s, mk_x_tag(&all[i], key), &is_m))) { free(out->v); out->v = NULL; return rc; }
            if (is_m == (op == MK_QTOK_EQREGEX)) out->v[out->n++] = all[i].id;
        }
        /* mk_x_series_all is in id order already */
        return MK_OK;
    }
    /* < > on tags: string order, decided per series */
    mk_xseries *all;
    size_t n;
    const char *s = str_operand(c, val);
    out->is_all = 0;
    if (!s) return MK_OK;
    if ((rc = mk_x_series_all(c, meas, &all, &n))) return rc;
    out->v = malloc((n ? n : 1) * sizeof *out->v);
    if (!out->v) return mk_x_fail(c, "out of memory");
    int flip = ref == r;
    for (size_t i = 0; i < n; i++) {
        int cmp = strcmp(mk_x_tag(&all[i], key), s);
        if (flip) cmp = -cmp;
        int ok = op == MK_QTOK_LT ? cmp < 0 : op == MK_QTOK_LTE ? cmp <= 0 : op == MK_QTOK_GT ? cmp > 0 : cmp >= 0;
        if (ok) out->v[out->n++] = all[i].id;
    }
    return MK_OK;
}

/* Collects tag =/!= string matchers of a pure AND chain; 0 if the chain has
 * anything else that restricts series (OR, regex, tag order). */
static int simple_matchers(mk_xctx *c, const char *meas, const mk_ast *e, mk_matcher *m, size_t cap, size_t *n)
{
    e = unparen(e);
    if (!e) return 1;
    if (e->kind != MK_AST_BINARY) return 1;
    int op = e->u.bin.op;
    if (op == MK_QTOK_AND)
        return simple_matchers(c, meas, e->u.bin.lhs, m, cap, n) && simple_matchers(c, meas, e->u.bin.rhs, m, cap, n);
    if (op == MK_QTOK_OR) return !refs_time(e) ? 0 : 0;
    if (!is_cmp_op(op)) return 1;
    const mk_ast *l = unparen(e->u.bin.lhs), *r = unparen(e->u.bin.rhs);
    const mk_ast *ref = NULL, *val = NULL;
    if (l && l->kind == MK_AST_VARREF) { ref = l; val = r; }
    else if (r && r->kind == MK_AST_VARREF) { ref = r; val = l; }
    if (!ref || is_time_ref(ref) || ref_is_field(c, meas, ref)) return 1;
    if (op != MK_QTOK_EQ && op != MK_QTOK_NEQ) return 0;
    const char *s = str_operand(c, val);
    if (!s || *n >= cap) return 0;
    m[(*n)++] = (mk_matcher){ref->u.var.name, s, op == MK_QTOK_NEQ};
    return 1;
}

mk_err mk_x_cond_ids(mk_xctx *c, const char *meas, const mk_ast *cond, const char *field, uint64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    mk_matcher m[32];
    size_t nm = 0;
    idset s;
    mk_err rc;
    if (simple_matchers(c, meas, cond, m, 32, &nm)) {
        if ((rc = find(c, meas, m, nm, field, &s))) return rc;
    } else {
        if ((rc = cond_set(c, meas, cond, &s))) return rc;
        idset f;
        if ((rc = find(c, meas, NULL, 0, field, &f))) { free(s.v); return rc; }
        ids_and(&f, &s);
        s = f;
    }
    uint64_t *v = mk_arena_alloc(c->a, (s.n ? s.n : 1) * sizeof *v);
    if (!v) { free(s.v); return mk_x_fail(c, "out of memory"); }
    if (s.n) memcpy(v, s.v, s.n * sizeof *v);
    free(s.v);
    *ids = v;
    *n = s.n;
    return MK_OK;
}

/* ---- per-point evaluation ------------------------------------------------ */

typedef struct ev {
    int t; /* 0 null, 1 number, 2 string, 3 bool */
    double f;
    const char *s;
} ev;

static ev eval(mk_xctx *c, const mk_ast *e, const mk_xrow *row)
{
    ev r = {0, 0, NULL};
    e = unparen(e);
    if (!e) return r;
    switch (e->kind) {
    case MK_AST_INTEGER: r.t = 1; r.f = (double)e->u.i64; return r;
    case MK_AST_NUMBER: r.t = 1; r.f = e->u.f64; return r;
    case MK_AST_STRING: r.t = 2; r.s = e->u.str.s; return r;
    case MK_AST_BOOL: r.t = 3; r.f = (double)e->u.i64; return r;
    case MK_AST_PARAM: {
        const mk_qv *v = mk_x_param(c, e->u.str.s);
        if (!v) return r;
        if (v->type == MK_QV_FLOAT) { r.t = 1; r.f = v->u.f; }
        else if (v->type == MK_QV_INT) { r.t = 1; r.f = (double)v->u.i; }
        else if (v->type == MK_QV_BOOL) { r.t = 3; r.f = (double)v->u.i; }
        else if (v->type == MK_QV_STRING) { r.t = 2; r.s = v->u.s; }
        return r;
    }
    case MK_AST_VARREF:
        if (e->u.var.cast != MK_AST_CAST_TAG)
            for (size_t i = 0; i < row->n_f; i++)
                if (strcmp(row->fnames[i], e->u.var.name) == 0) {
                    if (!isnan(row->fvals[i])) { r.t = 1; r.f = row->fvals[i]; }
                    return r;
                }
        if (e->u.var.cast == MK_AST_CAST_FIELD || !row->s) return r;
        r.t = 2;
        r.s = mk_x_tag(row->s, e->u.var.name);
        return r;
    case MK_AST_UNARY: {
        ev v = eval(c, e->u.bin.rhs, row);
        if (v.t == 1 && e->u.bin.op == MK_QTOK_SUB) v.f = -v.f;
        return v.t == 1 ? v : r;
    }
    case MK_AST_BINARY: {
        int op = e->u.bin.op;
        if (op == MK_QTOK_AND || op == MK_QTOK_OR) {
            r.t = 3;
            r.f = op == MK_QTOK_AND ? (mk_x_cond_eval(c, e->u.bin.lhs, row) && mk_x_cond_eval(c, e->u.bin.rhs, row))
                                    : (mk_x_cond_eval(c, e->u.bin.lhs, row) || mk_x_cond_eval(c, e->u.bin.rhs, row));
            return r;
        }
        if (is_cmp_op(op)) {
            r.t = 3;
            if (refs_time(e->u.bin.lhs) || refs_time(e->u.bin.rhs)) { r.f = 1; return r; }
            ev a = eval(c, e->u.bin.lhs, row);
            if (op == MK_QTOK_EQREGEX || op == MK_QTOK_NEQREGEX) {
                const mk_ast *re = unparen(e->u.bin.rhs);
                int is_m = 0;
                if (a.t == 2 && re && re->kind == MK_AST_REGEX) mk_x_regex_match(c, re->u.str.s, a.s, &is_m);
                else if (a.t != 2) { r.f = 0; return r; }
                r.f = (op == MK_QTOK_EQREGEX) == is_m;
                return r;
            }
            ev b = eval(c, e->u.bin.rhs, row);
            int cmp;
            if (a.t == 1 && b.t == 1) cmp = a.f < b.f ? -1 : a.f > b.f ? 1 : 0;
            else if (a.t == 2 && b.t == 2) cmp = strcmp(a.s, b.s);
            else if (a.t == 3 && b.t == 3) cmp = (a.f > b.f) - (a.f < b.f);
            else { r.f = 0; return r; } /* null or mixed types: false */
            switch (op) {
            case MK_QTOK_EQ: r.f = cmp == 0; break;
            case MK_QTOK_NEQ: r.f = cmp != 0; break;
            case MK_QTOK_LT: r.f = cmp < 0; break;
            case MK_QTOK_LTE: r.f = cmp <= 0; break;
            case MK_QTOK_GT: r.f = cmp > 0; break;
            default: r.f = cmp >= 0; break;
            }
            return r;
        }
        ev a = eval(c, e->u.bin.lhs, row), b = eval(c, e->u.bin.rhs, row);
        if (a.t != 1 || b.t != 1) return r;
        r.t = 1;
        switch (op) {
        case MK_QTOK_ADD: r.f = a.f + b.f; break;
        case MK_QTOK_SUB: r.f = a.f - b.f; break;
        case MK_QTOK_MUL: r.f = a.f * b.f; break;
        case MK_QTOK_DIV: r.f = b.f == 0 ? 0 : a.f / b.f; break;
        case MK_QTOK_MOD: if (b.f == 0) r.t = 0; else r.f = fmod(a.f, b.f); break;
        default: r.t = 0; break;
        }
        return r;
    }
    default: return r;
    }
}

int mk_x_cond_eval(mk_xctx *c, const mk_ast *cond, const mk_xrow *row)
{
    if (!cond) return 1;
    ev v = eval(c, cond, row);
    if (v.t == 3) return v.f != 0;
    return 0;
}

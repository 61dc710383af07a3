/*
 * query/exec_int.h — what the executor's files share: the per-query context,
 * parsed series keys and small helpers. Internal to query/.
 */
#ifndef MK_QUERY_EXEC_INT_H
#define MK_QUERY_EXEC_INT_H

#include <stdint.h>

#include "arena.h"
#include "ast.h"
#include "meerkat/query.h"
#include "result.h"
#include "tz.h"

/* Counters and stage times of one statement (EXPLAIN ANALYZE). */
typedef struct mk_xstats {
    uint64_t n_series;          /* series touched */
    mk_read_stats rd;           /* summed over every iterator */
    double plan_ms, read_ms, agg_ms, out_ms;
    const char *path;           /* "summaries+decode", "decode" ... */
} mk_xstats;

/* One query's context; statement state is reset per statement. */
typedef struct mk_xctx {
    mk_db *db;
    const mk_query_opts *o;
    const char *src;
    size_t src_len;
    mk_qresult *r;             /* the result being built (statement answers) */
    mk_arena *a;               /* statement arena: everything below lives here */
    int64_t now_ns;
    int64_t deadline_ms;       /* monotonic; INT64_MAX = none */
    int64_t timeout_ms;
    uint64_t max_points, max_series;
    int n_threads;
    int no_summaries;
    int tier_mode;             /* mk_query_opts.tier_mode */
    char err[768];             /* the statement error, when a call fails with MK_EQUERY-like rc */
    mk_xstats st;
    mk_buf plan;               /* EXPLAIN lines, '\n'-separated */
    int is_explain, is_analyze;
    struct rx_cache *rx;       /* compiled regexes of this statement */
} mk_xctx;

/* A series key split into parts (strings in the statement arena). */
typedef struct mk_xseries {
    uint64_t id;
    const char *meas;
    const char *field;
    const char *tskey;         /* measurement + tags, escaped, as in the key */
    uint32_t n_tags;
    const char **tk, **tv;     /* sorted by key */
} mk_xseries;

/* Sets c->err from a printf format; returns MK_EINVAL (a statement error). */
mk_err mk_x_fail(mk_xctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t mk_x_mono_ms(void);
mk_err mk_x_check_deadline(mk_xctx *c);

/* Regex (PCRE2, JIT when available), cached per pattern for the statement;
 * mk_x_rx_free releases the cache (NULL is fine). */
void mk_x_rx_free(struct rx_cache *rc);
mk_err mk_x_regex_match(mk_xctx *c, const char *pattern, const char *subject, int *is_match);

/* Parses the canonical key of id into *out (arena memory). */
mk_err mk_x_series_load(mk_xctx *c, uint64_t id, mk_xseries *out);
/* Every series of measurement meas (NULL = all), keys parsed. */
mk_err mk_x_series_all(mk_xctx *c, const char *meas, mk_xseries **out, size_t *n);
/* Tag value of key in s, or "" when absent. */
const char *mk_x_tag(const mk_xseries *s, const char *key);

/* Distinct measurement names (arena), ascending. */
mk_err mk_x_measurements(mk_xctx *c, const char ***out, size_t *n);

/*
 * Ids of the series of measurement meas with field `field` (NULL = any)
 * satisfying the tag part of cond (time and field comparisons count as
 * true). Sorted ascending, arena memory.
 */
mk_err mk_x_cond_ids(mk_xctx *c, const char *meas, const mk_ast *cond, const char *field,
                     uint64_t **ids, size_t *n);
/* Whether name is a field of measurement meas. */
int mk_x_is_field(mk_xctx *c, const char *meas, const char *name);
/* cond refers to a field (per-point evaluation needed). */
int mk_x_cond_has_field(mk_xctx *c, const char *meas, const mk_ast *cond);

/* Time range in WHERE (AND-ed comparisons with time), inclusive ns bounds. */
mk_err mk_x_time_range(mk_xctx *c, const mk_ast *cond, int64_t *lo_ns, int64_t *hi_ns,
                       int *has_lo, int *has_hi);
/* Value of a time expression (now() - 1h, '2023-...', 1700000000s, ns). */
mk_err mk_x_time_value(mk_xctx *c, const mk_ast *e, int64_t *ns);

/* One row under a per-point condition: its series' tags and the values of
 * the fields loaded for it (NaN = null). */
typedef struct mk_xrow {
    const mk_xseries *s;
    const char *const *fnames;
    const double *fvals;
    size_t n_f;
} mk_xrow;
/* 1 when cond (time comparisons count as true) holds for the row. */
int mk_x_cond_eval(mk_xctx *c, const mk_ast *cond, const mk_xrow *row);
/* Appends to names[] (capacity cap, count *n) each field name cond refers
 * to; names are borrowed from the AST. */
void mk_x_cond_fields(mk_xctx *c, const char *meas, const mk_ast *cond, const char **names,
                      size_t cap, size_t *n);

/* SHOW statements. */
mk_err mk_x_show(mk_xctx *c, const mk_ast_show *sh);

/* Looks up $name in opts->params; NULL when missing. */
const mk_qv *mk_x_param(mk_xctx *c, const char *name);

/* Test hook: 1 turns off the direct tier path of exec.c (rollup buckets
 * folded straight into the answer), so tests can compare it with the
 * general aggregate path over the same tier. Never set outside tests. */
extern int mk_x_tier_direct_off;

#define MK_X_MIN_TIME_NS (INT64_MIN + 2)
#define MK_X_MAX_TIME_NS (INT64_MAX - 2)

#endif

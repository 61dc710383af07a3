/*
 * meerkat/query.h — running InfluxQL over a database, and writing answers.
 *
 *     mk_qresult *r;
 *     mk_query_opts o = {.db = "bench"};
 *     if (mk_query_exec(db, q, strlen(q), &o, &r, &d) == MK_OK) {
 *         mk_qout_opts f = {.format = MK_QFMT_JSON, .epoch = "ms"};
 *         mk_qresult_write(r, &f, write_fn, ctx, &d);
 *         mk_qresult_free(r);
 *     }
 *
 * The answer is a tree shaped like InfluxDB 1.x's /query response: one
 * statement result per statement (an error, or a list of series), each
 * series a name, tags, column names and rows of values. Times are kept as
 * nanoseconds since the Unix epoch (MK_QV_TIME) and turned into RFC 3339 or
 * an epoch unit only when written.
 *
 * Thread safety: mk_query_exec may be called from several threads at once
 * over one mk_db. A result is immutable once returned and may be read from
 * any thread.
 */
#ifndef MEERKAT_QUERY_H
#define MEERKAT_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/db.h"
#include "meerkat/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the answer ------------------------------------------------------- */

typedef enum mk_qv_type {
    MK_QV_NULL = 0,
    MK_QV_FLOAT,  /* u.f */
    MK_QV_INT,    /* u.i */
    MK_QV_BOOL,   /* u.i (0 or 1) */
    MK_QV_STRING, /* u.s, NUL-terminated, owned by the result */
    MK_QV_TIME,   /* u.i, ns since the Unix epoch */
} mk_qv_type;

typedef struct mk_qv {
    mk_qv_type type;
    union {
        double f;
        int64_t i;
        const char *s;
    } u;
} mk_qv;

/* One series of a statement's answer. Everything is owned by the result. */
typedef struct mk_qseries {
    const char *name;             /* measurement, or e.g. "databases"; NULL = none */
    uint32_t n_tags;              /* GROUP BY tags of this series, sorted by key */
    const char *const *tag_keys;
    const char *const *tag_values;
    uint32_t n_cols;
    const char *const *columns;   /* "time" first when the answer has times */
    uint64_t n_rows;
    const mk_qv *values;          /* row-major: row r, column c at [r * n_cols + c] */
} mk_qseries;

/* One statement's answer: an error or a list of series (maybe empty). */
typedef struct mk_qstmt {
    uint32_t statement_id;        /* 0-based position in the query text */
    const char *error;            /* NULL when the statement succeeded */
    uint32_t n_series;
    const mk_qseries *series;
} mk_qstmt;

typedef struct mk_qresult mk_qresult;

uint32_t mk_qresult_n_stmts(const mk_qresult *r);
const mk_qstmt *mk_qresult_stmt(const mk_qresult *r, uint32_t i); /* i < n_stmts */
void mk_qresult_free(mk_qresult *r); /* NULL is fine */

/* ---- running a query -------------------------------------------------- */

#define MK_QUERY_DEFAULT_MAX_POINTS 10000000ull /* values returned by one query */
#define MK_QUERY_DEFAULT_MAX_SERIES 1000000ull  /* series one statement may touch */
#define MK_QUERY_DEFAULT_TIMEOUT_MS 60000

typedef struct mk_query_param {
    const char *name;  /* without the '$' */
    mk_qv value;       /* FLOAT, INT, BOOL or STRING */
} mk_query_param;

enum { MK_QUERY_TIER_AUTO = 0, MK_QUERY_TIER_RAW = 1 };

typedef struct mk_query_opts {
    const char *db;        /* the request's database (db=), may be NULL */
    const char *const *databases; /* what SHOW DATABASES lists; NULL = just db, or "meerkat" */
    size_t n_databases;
    int64_t now_ns;        /* what now() means; 0 = the system clock */
    uint64_t max_points;   /* 0 = MK_QUERY_DEFAULT_MAX_POINTS */
    uint64_t max_series;   /* 0 = MK_QUERY_DEFAULT_MAX_SERIES */
    int64_t timeout_ms;    /* 0 = MK_QUERY_DEFAULT_TIMEOUT_MS, < 0 = none */
    int n_threads;         /* 0 = one per online core, at most 8 */
    const mk_query_param *params; /* values for $name in the query */
    size_t n_params;
    int no_summaries;      /* 1: decode every chunk (benchmarks and tests) */
    int tier_mode;         /* MK_QUERY_TIER_AUTO (0): count/sum/mean/min/max/spread
                              over GROUP BY time(a multiple of a rollup tier's width)
                              read that tier's buckets for the whole buckets of the
                              range (raw samples at partial edges); MK_QUERY_TIER_RAW:
                              raw samples only (benchmarks, comparisons) */
    int is_db_checked;     /* 1: as InfluxDB, a statement's database (db, ON db or a
                              "db".. prefix) must be one of `databases`: else the
                              statement fails "database name required" or
                              "database not found: NAME" (SHOW DATABASES excepted) */
} mk_query_opts;

/*
 * Parses and runs every statement of text[0..len). On success *out holds one
 * mk_qstmt per statement; a statement that fails (unknown function, a cap or
 * the timeout exceeded, a damaged chunk) carries its error there, and, as
 * InfluxDB does, the statements after it are not run. A query that does not
 * parse fails as a whole: MK_EPARSE, diag->msg "error at L:C: ...".
 * opts may be NULL (all defaults). The result is the caller's to free.
 */
mk_err mk_query_exec(mk_db *db, const char *text, size_t len, const mk_query_opts *opts,
                     mk_qresult **out, mk_diag *diag);

/* ---- writing the answer ----------------------------------------------- */

typedef enum mk_qfmt {
    MK_QFMT_JSON = 0, /* InfluxDB 1.x /query JSON */
    MK_QFMT_CSV,      /* InfluxDB 1.x CSV: name,tags,time,... */
    MK_QFMT_TABLE,    /* aligned columns, as the influx CLI prints */
} mk_qfmt;

typedef struct mk_qout_opts {
    mk_qfmt format;
    const char *epoch;   /* NULL: RFC 3339 times; "ns" "u" "µ" "ms" "s" "m" "h": integers */
    int is_pretty;       /* JSON: indented */
    uint64_t chunk_size; /* JSON: 0 = one document; else InfluxDB's chunked output,
                            documents of at most this many rows, one per line */
} mk_qout_opts;

/* Receives output bytes in order; a non-MK_OK return stops the writing. */
typedef mk_err (*mk_qout_fn)(void *ctx, const char *p, size_t n);

mk_err mk_qresult_write(const mk_qresult *r, const mk_qout_opts *o, mk_qout_fn fn, void *ctx,
                        mk_diag *diag);

/* A request-level error as InfluxDB writes it: {"error":"..."} plus a newline. */
mk_err mk_qerror_write_json(const char *msg, mk_qout_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif

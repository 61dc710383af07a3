/*
 * tests/qref.h — a brute-force reference evaluator for the InfluxQL subset
 * that test_query_diff generates. It never parses text and shares no code
 * with query/: the test builds a query as a qref_query struct, prints it as
 * InfluxQL for the real executor, and hands the struct to qref_eval, which
 * answers it from the raw samples the test wrote (last write wins applied
 * here, by qref_db_finish).
 *
 * Semantics follow InfluxDB 1.x (docs.influxdata.com InfluxQL pages and the
 * influxdb query/ package); where neither says, qref.c states its choice in
 * a comment marked "CHOICE:".
 *
 * Invariants: every string a qref_db or qref_result points to is owned by it
 * (qref_db_free / qref_result_free); tags of a tagset are sorted by key; a
 * tagset lists only the tags it has (absent tags read as "").
 */
#ifndef MK_QREF_H
#define MK_QREF_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#define QREF_MAX_TAGS 4
#define QREF_MAX_FIELDS 4
#define QREF_MAX_MEAS 4
#define QREF_MAX_ITEMS 4

/* ---- the data -------------------------------------------------------- */

typedef struct qref_tagset {
    int meas;                              /* index into qref_db.meas */
    size_t n_tags;
    char *keys[QREF_MAX_TAGS];             /* sorted */
    char *vals[QREF_MAX_TAGS];
    /* Rows after last-write-wins: distinct timestamps ascending; field f has
     * a value at row i iff has[f][i]. Filled by qref_db_finish. */
    size_t n_rows;
    int64_t *ts_ms;
    double *val[QREF_MAX_FIELDS];
    uint8_t *has[QREF_MAX_FIELDS];
} qref_tagset;

typedef struct qref_meas {
    char *name;
    size_t n_fields;
    char *fields[QREF_MAX_FIELDS];
    size_t n_keys;                         /* every tag key of the measurement, sorted */
    char *keys[QREF_MAX_TAGS];
} qref_meas;

typedef struct qref_write {
    uint32_t tagset, field;
    int64_t ts_ms;
    double v;
    uint64_t seq;                          /* write order: later wins */
} qref_write;

typedef struct qref_db {
    size_t n_meas;
    qref_meas meas[QREF_MAX_MEAS];
    size_t n_tagsets, cap_tagsets;
    qref_tagset *tagsets;
    size_t n_writes, cap_writes;
    qref_write *writes;
} qref_db;

/* Returns the measurement index (fields and tag keys given, any order). */
int qref_db_add_meas(qref_db *db, const char *name, const char *const *fields, size_t n_fields,
                     const char *const *keys, size_t n_keys);
/* Returns the tagset index; keys/vals any order, n <= QREF_MAX_TAGS. */
int qref_db_add_tagset(qref_db *db, int meas, const char *const *keys, const char *const *vals,
                       size_t n);
/* Records one written sample, in write order. */
void qref_db_add(qref_db *db, int tagset, int field, int64_t ts_ms, double v);
/* Applies last write wins and builds the rows. Call once, after all adds. */
void qref_db_finish(qref_db *db);
void qref_db_free(qref_db *db);

/* ---- the query ------------------------------------------------------- */

typedef enum qref_func {
    QF_NONE = 0, /* a raw field (or arithmetic on fields) */
    QF_COUNT, QF_SUM, QF_MEAN, QF_MEDIAN, QF_MODE, QF_SPREAD, QF_STDDEV,
    QF_MIN, QF_MAX, QF_FIRST, QF_LAST, QF_PERCENTILE, QF_DISTINCT, QF_COUNT_DISTINCT,
} qref_func;

typedef enum qref_arith { QA_NONE = 0, QA_ADD, QA_SUB, QA_MUL } qref_arith;

typedef struct qref_item {
    qref_func func;
    int field;
    double pct;         /* QF_PERCENTILE */
    qref_arith op;      /* raw only: field op (field2 | konst) */
    int field2;         /* -1: use konst */
    double konst;
    const char *alias;  /* NULL = default name; borrowed */
} qref_item;

typedef enum qref_ckind {
    QC_AND, QC_OR, QC_TAG_EQ, QC_TAG_NE, QC_TAG_RE, QC_TAG_NRE, QC_FIELD,
} qref_ckind;

typedef enum qref_cmp { QCMP_EQ, QCMP_NE, QCMP_LT, QCMP_LE, QCMP_GT, QCMP_GE } qref_cmp;

typedef struct qref_cond {
    qref_ckind kind;
    struct qref_cond *l, *r; /* QC_AND, QC_OR */
    const char *key, *val;   /* tag leaves; val is the regex text for RE/NRE (borrowed) */
    regex_t re;              /* compiled by qref_eval on first use */
    int is_re_ready;
    int field;               /* QC_FIELD */
    qref_cmp cmp;
    double k;
} qref_cond;

enum { QFILL_NULL = 0, QFILL_NONE, QFILL_PREVIOUS, QFILL_LINEAR, QFILL_NUMBER };

typedef struct qref_query {
    int meas;
    size_t n_items;
    qref_item items[QREF_MAX_ITEMS];
    qref_cond *tag_where;    /* NULL = none; only tag leaves */
    qref_cond *field_where;  /* NULL = none; only field leaves */
    int has_lo, has_hi;
    int64_t lo_ns, hi_ns;    /* inclusive bounds (time > x means lo = x + 1) */
    int64_t interval_ns;     /* 0: no GROUP BY time */
    int64_t offset_ns;
    int is_group_all;        /* GROUP BY * */
    size_t n_gkeys;
    const char *gkeys[QREF_MAX_TAGS];
    int fill;
    double fill_v;
    size_t n_compare;        /* COMPARE d1[, d2] (needs interval_ns, one item) */
    int64_t compare_ns[2];
    const char *compare_lbl[2];
    int is_desc;
    int64_t limit, offset, slimit, soffset; /* 0 = none */
} qref_query;

/* ---- the answer ------------------------------------------------------ */

typedef struct qref_cell {
    uint8_t is_null;
    uint8_t is_time;   /* t holds ns */
    uint8_t is_exact;  /* compare bit for bit; else within tolerance of scale */
    int64_t t;
    double v;
    double scale;      /* magnitude the rounding error of v is relative to */
} qref_cell;

typedef struct qref_series {
    const char *name;              /* borrowed from the db */
    size_t n_tags;
    const char *keys[QREF_MAX_TAGS];
    const char *vals[QREF_MAX_TAGS];
    size_t n_cols;
    char **cols;                   /* owned */
    size_t n_rows, cap_rows;
    qref_cell *cells;              /* row-major, owned */
} qref_series;

typedef struct qref_result {
    size_t n_series;
    qref_series *series;
} qref_result;

/* Evaluates q over db (finished). Returns 0, or -1 if q is outside the
 * subset (then *out is empty). */
int qref_eval(const qref_db *db, qref_query *q, qref_result *out);
void qref_result_free(qref_result *r);

#endif

/*
 * query/result.h — building an mk_qresult (the executor's side of
 * meerkat/query.h; readers use the accessors there).
 *
 * A result grows statement by statement; within the current statement,
 * series by series (addressed by index, since arrays move as they grow) and
 * row by row. Strings given to the builder are copied into the result. Not
 * thread-safe: one thread builds a result.
 */
#ifndef MK_QUERY_RESULT_H
#define MK_QUERY_RESULT_H

#include "meerkat/query.h"

mk_err mk_qres_new(mk_qresult **out);

/* Starts the next statement's answer. */
mk_err mk_qres_begin_stmt(mk_qresult *r, uint32_t statement_id);

/* Marks the current statement failed with a printf-style message; its
 * series so far are dropped. */
mk_err mk_qres_stmt_error(mk_qresult *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Adds a series to the current statement; *idx receives its index. name may
 * be NULL; tag arrays may be NULL when n_tags is 0. */
mk_err mk_qres_add_series(mk_qresult *r, const char *name, uint32_t n_tags,
                          const char *const *tag_keys, const char *const *tag_values,
                          uint32_t n_cols, const char *const *columns, uint32_t *idx);

/* Appends one row (n_cols values) to series idx of the current statement.
 * STRING values are copied. */
mk_err mk_qres_add_row(mk_qresult *r, uint32_t idx, const mk_qv *row);

/* Appends n_rows rows to series idx of the current statement and points
 * *rows at their n_rows * n_cols values for the caller to fill (borrowed:
 * valid until the next call on r). The caller must store no STRING values
 * there (they would not be copied) and must fill every value. */
mk_err mk_qres_add_rows(mk_qresult *r, uint32_t idx, size_t n_rows, mk_qv **rows);

/* Drops the last series added to the current statement (with its rows). */
mk_err mk_qres_drop_last_series(mk_qresult *r);

/* Values held so far, over all statements (for the max_points cap). */
uint64_t mk_qres_n_values(const mk_qresult *r);

/* Copies a string into the result's memory (NULL when out of memory). */
const char *mk_qres_strdup(mk_qresult *r, const char *s);

#endif

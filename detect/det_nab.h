/*
 * detect/det_nab.h — reading corpora in the Numenta Anomaly Benchmark's
 * layout (DIR/<category>/<name>.csv with a `timestamp,value` header), shared
 * by `meerkat nab` and bench/bench_detect.c.
 *
 * Invariant: row i of a file is sample i; nothing is dropped or reordered.
 * Timestamps are kept as written (for output) and as storage timestamps in
 * ms: the parsed time, raised where needed to 1 ms after the previous row so
 * they strictly increase (a few NAB files repeat a timestamp at a DST change
 * or step back once; the database keeps one value per timestamp, so without
 * this those rows would merge).
 */
#ifndef MK_DET_NAB_H
#define MK_DET_NAB_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/error.h"

typedef struct mk_det_csv {
    size_t n;          /* data rows */
    int64_t *ts_ms;    /* storage timestamps, strictly increasing */
    double *v;         /* values */
    const char **ts_text; /* timestamps as written (point into buf) */
    const char **v_text;  /* values as written (point into buf) */
    char *buf;         /* the file's text, NULs written over separators */
} mk_det_csv;

/* Reads one CSV. MK_ENOTOURS when its header is not `timestamp,value`
 * (a labels or notes file); MK_EPARSE with file and line for a bad row.
 * On success free with mk_det_csv_free (which accepts a zeroed struct). */
mk_err mk_det_csv_read(const char *path, mk_det_csv *out, mk_diag *diag);
void mk_det_csv_free(mk_det_csv *c);

/* Parses "YYYY-MM-DD HH:MM:SS[.fff]" (also with 'T' and a trailing 'Z'),
 * as UTC, into ms since the epoch. Returns 0 on success. */
int mk_det_parse_nab_time(const char *s, int64_t *ms);

/* Lists the data files of a NAB-layout directory as "category/name.csv",
 * sorted; skips the folders `labels` and `config` and hidden entries.
 * *rel is a malloc'ed array of malloc'ed strings; free with
 * mk_det_nab_list_free. */
mk_err mk_det_nab_list(const char *dir, char ***rel, size_t *n, mk_diag *diag);
void mk_det_nab_list_free(char **rel, size_t n);

#endif

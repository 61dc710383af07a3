/*
 * engine/lp.h — InfluxDB 1.x line protocol parser (shared by `meerkat
 * import`, mk_db_write_lp and the HTTP server).
 *
 *   measurement[,tag=value...] field=value[,field=value...] [timestamp]
 *
 * Full syntax: backslash escapes in measurement (`,` and space), tag keys,
 * tag values and field keys (`,` `=` space); double-quoted string field
 * values with `\"` and `\\`; integers `12i`, unsigned `12u`; floats in every
 * form strtod accepts except hex, inf/nan words and a leading '+'; booleans t T true True TRUE
 * f F false False FALSE; optional integer timestamp in the given precision,
 * converted to ms rounding down; `#` comment lines and blank lines; \n or
 * \r\n line ends.
 *
 * The parser walks a buffer line by line. For each good line it yields an
 * mk_lp_line whose strings are unescaped and whose tags are sorted by key;
 * for each bad line an mk_lp_error with 1-based line and column and a reason,
 * then it continues with the next line. String field values are yielded with
 * type MK_LP_STRING (the caller decides to refuse them).
 *
 * Thread rules: a parser is used by one thread. Memory: the strings in a
 * yielded line point into the input buffer or the parser's scratch space and
 * are valid until the next call to mk_lp_next or mk_lp_parser_free.
 */
#ifndef MK_LP_H
#define MK_LP_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/db.h"

typedef struct mk_lp_str {
    const char *p;
    uint32_t len;
} mk_lp_str;

typedef struct mk_lp_tag {
    mk_lp_str key;
    mk_lp_str value;
} mk_lp_tag;

typedef enum mk_lp_type {
    MK_LP_FLOAT = 0,
    MK_LP_INT = 1,    /* 12i; value holds it as a double, i the exact value */
    MK_LP_UINT = 2,   /* 12u; value as double, u exact */
    MK_LP_BOOL = 3,   /* value 1.0 or 0.0 */
    MK_LP_STRING = 4  /* str holds the unescaped string */
} mk_lp_type;

typedef struct mk_lp_field {
    mk_lp_str key;
    mk_lp_type type;
    uint32_t column; /* 1-based column of the field key, for error reports */
    double value;
    int64_t i;
    uint64_t u;
    mk_lp_str str;
} mk_lp_field;

typedef struct mk_lp_line {
    mk_lp_str measurement;
    const mk_lp_tag *tags; /* sorted by key (bytewise), keys distinct */
    uint32_t n_tags;
    const mk_lp_field *fields;
    uint32_t n_fields;
    int has_ts;
    int64_t ts_ms;       /* valid when has_ts */
    uint64_t line_no;    /* 1-based */
    /* The raw bytes of "measurement,tags" exactly as in the input (escapes
     * and tag order untouched): a cheap cache key for the series of a line. */
    mk_lp_str series_raw;
} mk_lp_line;

typedef struct mk_lp_error {
    uint64_t line;   /* 1-based */
    uint32_t column; /* 1-based, byte offset in the line + 1 */
    char reason[160];
} mk_lp_error;

typedef struct mk_lp_parser mk_lp_parser;

/* buf[0..len) must stay valid while the parser is used; first_line_no is the
 * number given to its first line (1 for a whole file). */
mk_err mk_lp_parser_new(const char *buf, size_t len, mk_precision precision,
                        uint64_t first_line_no, mk_lp_parser **out);
void mk_lp_parser_free(mk_lp_parser *p); /* accepts NULL */

/* Result of mk_lp_next. */
enum { MK_LP_END = 0, MK_LP_LINE = 1, MK_LP_ERROR = 2 };

/* Parses the next non-blank, non-comment line: MK_LP_LINE fills *line,
 * MK_LP_ERROR fills *err (the line is skipped), MK_LP_END at the end. */
int mk_lp_next(mk_lp_parser *p, mk_lp_line *line, mk_lp_error *err);

/* Bytes consumed so far (offset of the next line in buf). */
size_t mk_lp_offset(const mk_lp_parser *p);

#endif

/*
 * query/ast.h — the InfluxQL syntax tree.
 *
 * One tagged union, mk_ast, for every node. Lists (fields, sources, GROUP BY
 * dimensions, call arguments, statements) are chained through `next` with a
 * count kept by the owner. Every node records the byte offset of its first
 * token in the source, so later stages (planner, executor) can report
 * errors with line:column through mk_qlex_linecol.
 *
 * Ownership: all nodes and all strings they point to live in the arena of
 * the mk_ast_query that mk_qparse returned; mk_ast_query_free releases them
 * at once. Nodes are never shared between two parents. Strings are
 * decoded (quotes and escapes removed) and NUL-terminated.
 *
 * Time values: durations are kept in nanoseconds; a string literal compared
 * with `time` is checked as a time literal while parsing and carries its
 * instant (is_time, time_ns). mk_ast_time_ns converts any time literal.
 */
#ifndef MK_QUERY_AST_H
#define MK_QUERY_AST_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/error.h"
#include "lexer.h" /* operator kinds in u.bin.op and show.with_op */
#include "util.h"

typedef enum mk_ast_kind {
    /* expressions */
    MK_AST_VARREF,   /* tag, field or time: u.var */
    MK_AST_WILDCARD, /* *, *::field: u.var (name NULL) */
    MK_AST_INTEGER,  /* u.i64 */
    MK_AST_NUMBER,   /* u.f64 */
    MK_AST_STRING,   /* u.str */
    MK_AST_DURATION, /* u.i64 (nanoseconds) */
    MK_AST_REGEX,    /* u.str (pattern, with \/ already turned into /) */
    MK_AST_BOOL,     /* u.i64 (0 or 1) */
    MK_AST_PARAM,    /* $name: u.str (name without $) */
    MK_AST_CALL,     /* u.call */
    MK_AST_BINARY,   /* u.bin */
    MK_AST_UNARY,    /* u.bin (op MK_QTOK_SUB or ADD, rhs only) */
    MK_AST_PAREN,    /* u.bin (rhs only): kept so printing keeps the grouping written */
    /* parts of statements */
    MK_AST_FIELD,       /* u.field: an expression in the SELECT list, maybe AS alias */
    MK_AST_MEASUREMENT, /* u.meas: [db.][rp.](name | /regex/) */
    MK_AST_SUBQUERY,    /* u.sub: FROM (SELECT ...) */
    /* statements */
    MK_AST_SELECT,  /* u.sel */
    MK_AST_SHOW,    /* u.show */
    MK_AST_EXPLAIN, /* u.explain */
} mk_ast_kind;

/* VarRef / wildcard cast: field::float etc. */
typedef enum mk_ast_cast {
    MK_AST_CAST_NONE = 0, MK_AST_CAST_FLOAT, MK_AST_CAST_INTEGER, MK_AST_CAST_STRING,
    MK_AST_CAST_BOOLEAN, MK_AST_CAST_FIELD, MK_AST_CAST_TAG,
} mk_ast_cast;

typedef enum mk_ast_fill {
    MK_AST_FILL_DEFAULT = 0, /* no FILL clause (InfluxQL's default is null) */
    MK_AST_FILL_NULL, MK_AST_FILL_NONE, MK_AST_FILL_PREVIOUS, MK_AST_FILL_LINEAR,
    MK_AST_FILL_NUMBER, /* value in fill_value (an INTEGER or NUMBER node) */
} mk_ast_fill;

typedef enum mk_ast_show_kind {
    MK_AST_SHOW_DATABASES, MK_AST_SHOW_MEASUREMENTS, MK_AST_SHOW_TAG_KEYS,
    MK_AST_SHOW_TAG_VALUES, MK_AST_SHOW_FIELD_KEYS, MK_AST_SHOW_SERIES,
    MK_AST_SHOW_RETENTION_POLICIES,
} mk_ast_show_kind;

typedef struct mk_ast mk_ast;

/* LIMIT-like clause: present or not, and its value (>= 0). */
typedef struct mk_ast_limit {
    int is_set;
    int64_t n;
} mk_ast_limit;

typedef struct mk_ast_select {
    mk_ast *fields;    /* MK_AST_FIELD list, n_fields >= 1 */
    uint32_t n_fields;
    mk_ast *sources;   /* MEASUREMENT / SUBQUERY list, n_sources >= 1 */
    uint32_t n_sources;
    mk_ast *cond;      /* WHERE expression or NULL */
    mk_ast *dims;      /* GROUP BY list: time(...) CALL, VARREF, REGEX, WILDCARD */
    uint32_t n_dims;
    mk_ast_fill fill;
    mk_ast *fill_value; /* MK_AST_FILL_NUMBER only */
    mk_ast *compare;   /* COMPARE list of DURATION nodes (Meerkat extension) */
    uint32_t n_compare;
    int has_order;     /* ORDER BY time ... written */
    int is_desc;
    mk_ast_limit limit, offset, slimit, soffset;
    const char *tz;    /* tz('...') argument or NULL */
} mk_ast_select;

typedef struct mk_ast_show {
    mk_ast_show_kind what;
    const char *on_db;  /* ON db, or NULL */
    mk_ast *sources;    /* FROM list (TAG KEYS, TAG VALUES, FIELD KEYS, SERIES) */
    uint32_t n_sources;
    /* WITH MEASUREMENT op (name | regex) / WITH KEY op (key | regex) / WITH KEY IN (k, ...):
     * with_op is MK_QTOK_EQ, NEQ, EQREGEX, NEQREGEX, IN or EOF (no WITH). */
    int with_op;
    mk_ast *with;       /* VARREF or REGEX nodes; a list for IN */
    uint32_t n_with;
    mk_ast *cond;       /* WHERE or NULL */
    mk_ast_limit limit, offset;
} mk_ast_show;

struct mk_ast {
    mk_ast_kind kind;
    uint32_t off;   /* byte offset of the node's first token in the source */
    uint32_t height; /* 1 for leaves; parents 1 + max child (bounded by the parser) */
    mk_ast *next;   /* next sibling in a list, or NULL */
    union {
        int64_t i64;
        double f64;
        struct { const char *s; int is_time; int64_t time_ns; } str;
        struct { const char *name; mk_ast_cast cast; } var;
        struct { const char *name; mk_ast *args; uint32_t n_args; } call; /* name lower-case */
        struct { int op; mk_ast *lhs, *rhs; } bin; /* op: an MK_QTOK_* operator or AND/OR */
        struct { mk_ast *expr; const char *alias; } field;
        struct { const char *db, *rp, *name; mk_ast *regex; } meas; /* name XOR regex */
        struct { mk_ast *select; } sub;
        mk_ast_select sel;
        mk_ast_show show;
        struct { int is_analyze; mk_ast *stmt; } explain;
    } u;
};

/* The result of one parse: statements, and the arena that owns them. */
typedef struct mk_ast_query {
    mk_ast *stmts;     /* SELECT / SHOW / EXPLAIN list, in source order */
    uint32_t n_stmts;  /* empty statements (";;") are skipped, as InfluxDB does */
    struct mk_arena *arena; /* private */
} mk_ast_query;

/* Frees q and every node and string of it. NULL is fine. */
void mk_ast_query_free(mk_ast_query *q);

/* Appends node (a statement or expression) as canonical InfluxQL to out:
 * keywords upper case, function names lower case, identifiers quoted only
 * when needed, durations in their largest exact unit, one space around
 * binary operators. Parsing the output gives back an equal tree.
 * MK_ENOMEM is the only failure. */
mk_err mk_ast_print(mk_buf *out, const mk_ast *node);

/* Every statement of q printed and joined with "; ". */
mk_err mk_ast_print_query(mk_buf *out, const mk_ast_query *q);

/* The instant a time literal stands for, in ns since the Unix epoch:
 * DURATION (epoch + value, so 1700000000000ms), INTEGER (ns), and STRING
 * in RFC 3339 ('2023-11-14T22:13:20Z', fractional seconds and ±hh:mm
 * offsets allowed) or 'YYYY-MM-DD[ HH:MM:SS[.frac]]' (UTC). MK_EINVAL for
 * anything else, MK_ERANGE when out of the int64 range. */
mk_err mk_ast_time_ns(const mk_ast *lit, int64_t *ns_out);

/* Parses the n bytes at s as a time string (formats as above). */
mk_err mk_ast_parse_time_str(const char *s, size_t n, int64_t *ns_out);

#endif

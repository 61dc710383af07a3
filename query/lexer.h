/*
 * query/lexer.h — the InfluxQL tokenizer.
 *
 * A token is (kind, byte offset, byte length) into the caller's text; the
 * lexer never copies or allocates. Decoding of a token's value (unquoting
 * identifiers and strings, number and duration values) is done by the
 * mk_qlex_* helpers below, on demand.
 *
 * Regex literals: '/' is both division and the start of /regex/. As in
 * InfluxDB's scanner, the context decides, and the context is known only to
 * the parser: mk_qlex_next always returns '/' as MK_QTOK_DIV; where a regex
 * may stand (after =~ and !~, where an operand or a FROM / GROUP BY item is
 * expected) the parser calls mk_qlex_rescan_regex on that DIV token.
 *
 * Invariants: offsets are monotonic; every byte of the input belongs to at
 * most one token; after MK_QTOK_EOF or MK_QTOK_ILLEGAL the lexer keeps
 * returning the same token (no progress past an error).
 */
#ifndef MK_QUERY_LEXER_H
#define MK_QUERY_LEXER_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/error.h"

/* Token kinds. Keep MK_QTOK_KW_FIRST..LAST contiguous: keyword lookup and
 * printing walk that range. */
typedef enum mk_qtok_kind {
    MK_QTOK_EOF = 0,
    MK_QTOK_ILLEGAL,   /* lexical error; mk_qlex.err says why */
    MK_QTOK_IDENT,     /* bare identifier */
    MK_QTOK_QIDENT,    /* "double-quoted identifier" */
    MK_QTOK_STRING,    /* 'single-quoted string' */
    MK_QTOK_INTEGER,   /* 123 */
    MK_QTOK_NUMBER,    /* 1.5, 1e3, 2.5E-3 */
    MK_QTOK_DURATION,  /* 1h, 10ms, 1h30m, 100ns, 5u, 5µs */
    MK_QTOK_REGEX,     /* /.../ (only from mk_qlex_rescan_regex) */
    MK_QTOK_PARAM,     /* $name */
    /* operators */
    MK_QTOK_EQ, MK_QTOK_NEQ, MK_QTOK_LT, MK_QTOK_LTE, MK_QTOK_GT, MK_QTOK_GTE,
    MK_QTOK_EQREGEX, MK_QTOK_NEQREGEX,
    MK_QTOK_ADD, MK_QTOK_SUB, MK_QTOK_MUL, MK_QTOK_DIV, MK_QTOK_MOD,
    MK_QTOK_BITAND, MK_QTOK_BITOR, MK_QTOK_BITXOR,
    MK_QTOK_LPAREN, MK_QTOK_RPAREN, MK_QTOK_COMMA, MK_QTOK_DOT,
    MK_QTOK_DOUBLECOLON, MK_QTOK_SEMICOLON,
    /* keywords (case-insensitive; quote them to use as identifiers) */
    MK_QTOK_KW_FIRST,
    MK_QTOK_ALL = MK_QTOK_KW_FIRST, MK_QTOK_ANALYZE, MK_QTOK_AND, MK_QTOK_AS,
    MK_QTOK_ASC, MK_QTOK_BY, MK_QTOK_DATABASES, MK_QTOK_DESC, MK_QTOK_EXPLAIN,
    MK_QTOK_FALSE, MK_QTOK_FIELD, MK_QTOK_FROM, MK_QTOK_GROUP, MK_QTOK_IN,
    MK_QTOK_KEY, MK_QTOK_KEYS, MK_QTOK_LIMIT, MK_QTOK_MEASUREMENT,
    MK_QTOK_MEASUREMENTS, MK_QTOK_OFFSET, MK_QTOK_ON, MK_QTOK_OR, MK_QTOK_ORDER,
    MK_QTOK_POLICIES, MK_QTOK_RETENTION, MK_QTOK_SELECT, MK_QTOK_SERIES,
    MK_QTOK_SHOW, MK_QTOK_SLIMIT, MK_QTOK_SOFFSET, MK_QTOK_TAG, MK_QTOK_TRUE,
    MK_QTOK_VALUES, MK_QTOK_WHERE, MK_QTOK_WITH,
    MK_QTOK_KW_LAST = MK_QTOK_WITH,
    MK_QTOK__COUNT
} mk_qtok_kind;

typedef struct mk_qtok {
    mk_qtok_kind kind;
    uint32_t off; /* byte offset of the first byte in the source */
    uint32_t len; /* bytes */
} mk_qtok;

/* Why a token is MK_QTOK_ILLEGAL. */
typedef enum mk_qlex_err {
    MK_QLEX_OK = 0,
    MK_QLEX_BAD_CHAR,          /* a byte that starts no token */
    MK_QLEX_UNTERM_STRING,     /* '... without its closing quote (or a newline in it) */
    MK_QLEX_UNTERM_IDENT,      /* "... without its closing quote */
    MK_QLEX_UNTERM_REGEX,      /* /... without its closing slash */
    MK_QLEX_UNTERM_COMMENT,    /* slash-star without star-slash */
    MK_QLEX_BAD_ESCAPE,        /* \x in a string or quoted identifier */
    MK_QLEX_BAD_DURATION,      /* 1y, 5x, 1h5 */
    MK_QLEX_BAD_NUMBER,        /* 1e+ */
    MK_QLEX_BAD_PARAM,         /* $ not followed by a name */
} mk_qlex_err;

/* Lexer state. Zero-initialise with mk_qlex_init; borrows src, which must
 * outlive the lexer and every token taken from it. */
typedef struct mk_qlex {
    const char *src;
    size_t len;
    size_t pos;
    mk_qlex_err err; /* set with a MK_QTOK_ILLEGAL token */
} mk_qlex;

/* Inputs longer than this are refused by the parser (offsets are 32-bit). */
#define MK_QLEX_MAX_INPUT ((size_t)1 << 30)

void mk_qlex_init(mk_qlex *lx, const char *src, size_t len);

/* The next token, skipping whitespace and comments (-- to end of line,
 * slash-star ... star-slash). '/' is always MK_QTOK_DIV here. */
mk_qtok mk_qlex_next(mk_qlex *lx);

/* Re-reads the DIV token div as a regex literal /.../ and continues after
 * it. Returns MK_QTOK_REGEX, or MK_QTOK_ILLEGAL (unterminated). */
mk_qtok mk_qlex_rescan_regex(mk_qlex *lx, mk_qtok div);

/* Static lower-case spelling of an operator or keyword kind ("=~", "select"),
 * or a description of a literal kind ("identifier", "string"). Never NULL. */
const char *mk_qlex_kind_name(mk_qtok_kind kind);

/* Static message for a lexical error ("unterminated string"). */
const char *mk_qlex_err_str(mk_qlex_err err);

/* Keyword kind of the n bytes at s (case-insensitive), or MK_QTOK_IDENT. */
mk_qtok_kind mk_qlex_keyword(const char *s, size_t n);

/* Decodes the text of a QIDENT, STRING or REGEX token into out (at least
 * tok.len + 1 bytes): removes the quotes/slashes and resolves escapes
 * (\\ \" \' \n in quoted text; only \/ in a regex, other escapes stay as
 * written for the regex engine). NUL-terminates; returns the decoded length.
 * The token must have come from a successful scan. */
size_t mk_qlex_unquote(const char *src, mk_qtok tok, char *out);

/* Value of an INTEGER token; MK_ERANGE if it does not fit int64. */
mk_err mk_qlex_integer(const char *src, mk_qtok tok, int64_t *out);

/* Value of a NUMBER token; MK_ERANGE if it overflows to infinity. */
mk_err mk_qlex_number(const char *src, mk_qtok tok, double *out);

/* Value of a DURATION token in nanoseconds (units ns, u/µ/µs, ms, s, m, h,
 * d, w; compound forms such as 1h30m add up); MK_ERANGE on int64 overflow. */
mk_err mk_qlex_duration(const char *src, mk_qtok tok, int64_t *ns_out);

/* 1-based line and column (in UTF-8 characters) of byte offset off. */
void mk_qlex_linecol(const char *src, size_t len, size_t off, uint32_t *line, uint32_t *col);

#endif

/*
 * query/parser.h — InfluxQL recursive-descent parser.
 *
 * Grammar (upper case = keyword, [] optional, {} repeated); statements are
 * separated by ';' and empty statements are skipped:
 *
 *   stmt     = select | show | EXPLAIN [ANALYZE] select
 *   select   = SELECT field {, field} FROM source {, source}
 *              [WHERE expr] [GROUP BY dim {, dim}] [fill(arg)]
 *              [COMPARE duration {, duration}]
 *              [ORDER BY (time [ASC|DESC] | ASC | DESC)]
 *              [LIMIT n] [OFFSET n] [SLIMIT n] [SOFFSET n] [tz('zone')]
 *   field    = expr [AS ident]
 *   source   = [ident .] [ident .] (ident | /regex/) | ( select )     (db..m allowed)
 *   dim      = time(duration [, duration]) | ident[::tag] | /regex/ | *
 *   fill arg = null | none | previous | linear | [-]number
 *   show     = SHOW DATABASES
 *            | SHOW MEASUREMENTS [ON db] [WITH MEASUREMENT (=|=~) (ident|/re/)] [WHERE expr] [LIMIT n] [OFFSET n]
 *            | SHOW TAG KEYS [ON db] [FROM sources] [WHERE expr] [LIMIT n] [OFFSET n]
 *            | SHOW TAG VALUES [ON db] [FROM sources] WITH KEY (op ident | =~ /re/ | !~ /re/ | IN (ident {, ident}))
 *                              [WHERE expr] [LIMIT n] [OFFSET n]
 *            | SHOW FIELD KEYS [ON db] [FROM sources] [LIMIT n] [OFFSET n]
 *            | SHOW SERIES [ON db] [FROM sources] [WHERE expr] [LIMIT n] [OFFSET n]
 *            | SHOW RETENTION POLICIES [ON db]
 *   expr     = binary expressions, loosest first: OR; AND; = != <> < <= > >= =~ !~;
 *              + - | ^; * / % &  (all left-associative), over unary +/- and
 *              primaries: ident[::type], call(args), literals, /regex/, $param,
 *              *, ( expr ).
 *
 * COMPARE (Meerkat's seasonal extension) sits after GROUP BY and fill() and
 * before ORDER BY, the place where it reads as a modifier of the buckets.
 * fill, tz, compare, time and now are not reserved words: they are
 * recognised by position (fill( / tz( / compare <duration>).
 *
 * Errors: mk_qparse fails with MK_EPARSE and diag->msg like
 *   error at 1:27: expected identifier after FROM, found '('
 * (line:column 1-based, columns in characters). Nesting (parentheses,
 * unary operators, calls, subqueries) deeper than MK_QPARSE_MAX_DEPTH and
 * expression trees taller than MK_QPARSE_MAX_HEIGHT are errors, so every
 * later stage can recurse over the tree safely.
 */
#ifndef MK_QUERY_PARSER_H
#define MK_QUERY_PARSER_H

#include <stddef.h>

#include "ast.h"

#define MK_QPARSE_MAX_DEPTH 256
#define MK_QPARSE_MAX_HEIGHT 1024

/* Parses src[0..len) (need not be NUL-terminated; any bytes accepted).
 * On success *out is a new query the caller frees with mk_ast_query_free;
 * it does not borrow src. On failure *out is NULL and diag (may be NULL)
 * says where and why: MK_EPARSE for bad input, MK_ENOMEM, MK_EINVAL for
 * input over MK_QLEX_MAX_INPUT bytes. */
mk_err mk_qparse(const char *src, size_t len, mk_ast_query **out, mk_diag *diag);

#endif

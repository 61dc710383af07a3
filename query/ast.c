/*
 * query/ast.c — freeing, canonical printing and time literals of the AST.
 *
 * The printer is the inverse of the parser: for every tree T the parser
 * produces, parse(print(T)) == T, which the tests and the fuzz target check
 * as the fixed point print(parse(print(T))) == print(T). To keep that true
 * it never writes two '-' in a row (a comment) and quotes any identifier
 * that would otherwise lex differently (keywords, non-ASCII, punctuation).
 */
#include "ast.h"

#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "lexer.h"

void mk_ast_query_free(mk_ast_query *q)
{
    if (!q) return;
    mk_arena_free(q->arena);
    free(q);
}

/* ---- printing ---------------------------------------------------------- */

static mk_err put(mk_buf *b, const char *s) { return mk_buf_append(b, s, strlen(s)); }

static mk_err putf(mk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static mk_err putf(mk_buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) return MK_EINTERNAL;
    return mk_buf_append(b, tmp, (size_t)n);
}

/* s with quote q and backslash escaped, newline as \n, between q's. */
static mk_err put_quoted(mk_buf *b, const char *s, char q)
{
    mk_err rc = mk_buf_append(b, &q, 1);
    for (const char *p = s; !rc && *p; p++) {
        if (*p == q || *p == '\\') rc = mk_buf_append(b, "\\", 1);
        if (!rc) rc = *p == '\n' ? mk_buf_append(b, "\\n", 2) : mk_buf_append(b, p, 1);
    }
    if (!rc) rc = mk_buf_append(b, &q, 1);
    return rc;
}

static int needs_quotes(const char *s)
{
    size_t n = strlen(s);
    if (n == 0) return 1;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_')) return 1;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9')))
            return 1;
    }
    return mk_qlex_keyword(s, n) != MK_QTOK_IDENT;
}

static mk_err put_ident(mk_buf *b, const char *s)
{
    return needs_quotes(s) ? put_quoted(b, s, '"') : put(b, s);
}

/* /pattern/ with every unescaped '/' written \/ (escaped pairs kept). */
static mk_err put_regex(mk_buf *b, const char *s)
{
    mk_err rc = put(b, "/");
    for (const char *p = s; !rc && *p; p++) {
        if (*p == '\\' && p[1]) {
            rc = mk_buf_append(b, p, 2);
            p++;
        } else if (*p == '/') {
            rc = put(b, "\\/");
        } else {
            rc = mk_buf_append(b, p, 1);
        }
    }
    if (!rc) rc = put(b, "/");
    return rc;
}

/* Shortest text strtod reads back to the same double, always with a '.'
 * or exponent so it lexes as a NUMBER, not an INTEGER. */
static mk_err put_number(mk_buf *b, double d)
{
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    if (!strpbrk(tmp, ".eEn")) strcat(tmp, ".0");
    return put(b, tmp);
}

static mk_err put_duration(mk_buf *b, int64_t ns)
{
    static const struct { int64_t ns; const char *unit; } units[] = {
        {604800000000000LL, "w"}, {86400000000000LL, "d"}, {3600000000000LL, "h"},
        {60000000000LL, "m"},     {1000000000LL, "s"},     {1000000LL, "ms"},
        {1000LL, "u"},            {1LL, "ns"},
    };
    if (ns == 0) return put(b, "0s");
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ns % units[i].ns == 0) return putf(b, "%" PRId64 "%s", ns / units[i].ns, units[i].unit);
    return MK_EINTERNAL; /* unreachable: 1ns divides everything */
}

static const char *cast_name(mk_ast_cast c)
{
    switch (c) {
    case MK_AST_CAST_FLOAT: return "float";
    case MK_AST_CAST_INTEGER: return "integer";
    case MK_AST_CAST_STRING: return "string";
    case MK_AST_CAST_BOOLEAN: return "boolean";
    case MK_AST_CAST_FIELD: return "field";
    case MK_AST_CAST_TAG: return "tag";
    case MK_AST_CAST_NONE: break;
    }
    return "";
}

static mk_err put_op(mk_buf *b, int op)
{
    mk_err rc = put(b, " ");
    if (!rc) rc = put(b, mk_qlex_kind_name((mk_qtok_kind)op));
    if (!rc) rc = put(b, " ");
    return rc;
}

static int is_negative_literal(const mk_ast *n)
{
    return ((n->kind == MK_AST_INTEGER || n->kind == MK_AST_DURATION) && n->u.i64 < 0) ||
           (n->kind == MK_AST_NUMBER && signbit(n->u.f64));
}

static mk_err print_node(mk_buf *b, const mk_ast *n);

static mk_err print_list(mk_buf *b, const mk_ast *n, const char *sep)
{
    mk_err rc = MK_OK;
    for (const mk_ast *c = n; c && !rc; c = c->next) {
        if (c != n) rc = put(b, sep);
        if (!rc) rc = print_node(b, c);
    }
    return rc;
}

static mk_err print_limits(mk_buf *b, const char *kw, mk_ast_limit l)
{
    return l.is_set ? putf(b, " %s %" PRId64, kw, l.n) : MK_OK;
}

static mk_err print_select(mk_buf *b, const mk_ast_select *s)
{
    static const char *const fills[] = {"", "null", "none", "previous", "linear", ""};
    mk_err rc = put(b, "SELECT ");
    if (!rc) rc = print_list(b, s->fields, ", ");
    if (!rc) rc = put(b, " FROM ");
    if (!rc) rc = print_list(b, s->sources, ", ");
    if (!rc && s->cond) {
        rc = put(b, " WHERE ");
        if (!rc) rc = print_node(b, s->cond);
    }
    if (!rc && s->dims) {
        rc = put(b, " GROUP BY ");
        if (!rc) rc = print_list(b, s->dims, ", ");
    }
    if (!rc && s->fill != MK_AST_FILL_DEFAULT) {
        rc = put(b, " fill(");
        if (!rc) rc = s->fill == MK_AST_FILL_NUMBER ? print_node(b, s->fill_value) : put(b, fills[s->fill]);
        if (!rc) rc = put(b, ")");
    }
    if (!rc && s->compare) {
        rc = put(b, " COMPARE ");
        if (!rc) rc = print_list(b, s->compare, ", ");
    }
    if (!rc && s->has_order) rc = put(b, s->is_desc ? " ORDER BY time DESC" : " ORDER BY time ASC");
    if (!rc) rc = print_limits(b, "LIMIT", s->limit);
    if (!rc) rc = print_limits(b, "OFFSET", s->offset);
    if (!rc) rc = print_limits(b, "SLIMIT", s->slimit);
    if (!rc) rc = print_limits(b, "SOFFSET", s->soffset);
    if (!rc && s->tz) {
        rc = put(b, " tz(");
        if (!rc) rc = put_quoted(b, s->tz, '\'');
        if (!rc) rc = put(b, ")");
    }
    return rc;
}

static mk_err print_show(mk_buf *b, const mk_ast_show *s)
{
    static const char *const what[] = {
        [MK_AST_SHOW_DATABASES] = "DATABASES",       [MK_AST_SHOW_MEASUREMENTS] = "MEASUREMENTS",
        [MK_AST_SHOW_TAG_KEYS] = "TAG KEYS",         [MK_AST_SHOW_TAG_VALUES] = "TAG VALUES",
        [MK_AST_SHOW_FIELD_KEYS] = "FIELD KEYS",     [MK_AST_SHOW_SERIES] = "SERIES",
        [MK_AST_SHOW_RETENTION_POLICIES] = "RETENTION POLICIES",
    };
    mk_err rc = put(b, "SHOW ");
    if (!rc) rc = put(b, what[s->what]);
    if (!rc && s->on_db) {
        rc = put(b, " ON ");
        if (!rc) rc = put_ident(b, s->on_db);
    }
    if (!rc && s->sources) {
        rc = put(b, " FROM ");
        if (!rc) rc = print_list(b, s->sources, ", ");
    }
    if (!rc && s->with_op != MK_QTOK_EOF) {
        rc = put(b, s->what == MK_AST_SHOW_MEASUREMENTS ? " WITH MEASUREMENT" : " WITH KEY");
        if (!rc && s->with_op == MK_QTOK_IN) {
            rc = put(b, " IN (");
            if (!rc) rc = print_list(b, s->with, ", ");
            if (!rc) rc = put(b, ")");
        } else {
            if (!rc) rc = put_op(b, s->with_op);
            if (!rc) rc = print_node(b, s->with);
        }
    }
    if (!rc && s->cond) {
        rc = put(b, " WHERE ");
        if (!rc) rc = print_node(b, s->cond);
    }
    if (!rc) rc = print_limits(b, "LIMIT", s->limit);
    if (!rc) rc = print_limits(b, "OFFSET", s->offset);
    return rc;
}

static mk_err print_node(mk_buf *b, const mk_ast *n)
{
    mk_err rc = MK_OK;
    switch (n->kind) {
    case MK_AST_VARREF:
    case MK_AST_WILDCARD:
        rc = n->kind == MK_AST_WILDCARD ? put(b, "*") : put_ident(b, n->u.var.name);
        if (!rc && n->u.var.cast != MK_AST_CAST_NONE) {
            rc = put(b, "::");
            if (!rc) rc = put(b, cast_name(n->u.var.cast));
        }
        break;
    case MK_AST_INTEGER: rc = putf(b, "%" PRId64, n->u.i64); break;
    case MK_AST_NUMBER: rc = put_number(b, n->u.f64); break;
    case MK_AST_STRING: rc = put_quoted(b, n->u.str.s, '\''); break;
    case MK_AST_DURATION:
        if (n->u.i64 < 0) {
            rc = put(b, "-");
            if (!rc) rc = put_duration(b, -n->u.i64);
        } else {
            rc = put_duration(b, n->u.i64);
        }
        break;
    case MK_AST_REGEX: rc = put_regex(b, n->u.str.s); break;
    case MK_AST_BOOL: rc = put(b, n->u.i64 ? "TRUE" : "FALSE"); break;
    case MK_AST_PARAM:
        rc = put(b, "$");
        if (!rc) rc = put(b, n->u.str.s);
        break;
    case MK_AST_CALL:
        rc = put(b, n->u.call.name);
        if (!rc) rc = put(b, "(");
        if (!rc) rc = print_list(b, n->u.call.args, ", ");
        if (!rc) rc = put(b, ")");
        break;
    case MK_AST_BINARY:
        rc = print_node(b, n->u.bin.lhs);
        if (!rc) rc = put_op(b, n->u.bin.op);
        if (!rc) rc = print_node(b, n->u.bin.rhs);
        break;
    case MK_AST_UNARY:
        rc = put(b, n->u.bin.op == MK_QTOK_SUB ? "-" : "+");
        /* "- -x", never "--x", which would start a comment */
        if (!rc && (n->u.bin.rhs->kind == MK_AST_UNARY || is_negative_literal(n->u.bin.rhs))) rc = put(b, " ");
        if (!rc) rc = print_node(b, n->u.bin.rhs);
        break;
    case MK_AST_PAREN:
        rc = put(b, "(");
        if (!rc) rc = print_node(b, n->u.bin.rhs);
        if (!rc) rc = put(b, ")");
        break;
    case MK_AST_FIELD:
        rc = print_node(b, n->u.field.expr);
        if (!rc && n->u.field.alias) {
            rc = put(b, " AS ");
            if (!rc) rc = put_ident(b, n->u.field.alias);
        }
        break;
    case MK_AST_MEASUREMENT:
        if (n->u.meas.db) {
            rc = put_ident(b, n->u.meas.db);
            if (!rc) rc = put(b, ".");
        }
        if (!rc && n->u.meas.rp) rc = put_ident(b, n->u.meas.rp);
        if (!rc && (n->u.meas.rp || n->u.meas.db)) rc = put(b, ".");
        if (!rc) rc = n->u.meas.regex ? print_node(b, n->u.meas.regex) : put_ident(b, n->u.meas.name);
        break;
    case MK_AST_SUBQUERY:
        rc = put(b, "(");
        if (!rc) rc = print_node(b, n->u.sub.select);
        if (!rc) rc = put(b, ")");
        break;
    case MK_AST_SELECT: rc = print_select(b, &n->u.sel); break;
    case MK_AST_SHOW: rc = print_show(b, &n->u.show); break;
    case MK_AST_EXPLAIN:
        rc = put(b, n->u.explain.is_analyze ? "EXPLAIN ANALYZE " : "EXPLAIN ");
        if (!rc) rc = print_node(b, n->u.explain.stmt);
        break;
    }
    return rc;
}

mk_err mk_ast_print(mk_buf *out, const mk_ast *node)
{
    return print_node(out, node);
}

mk_err mk_ast_print_query(mk_buf *out, const mk_ast_query *q)
{
    return print_list(out, q->stmts, "; ");
}

/* ---- time literals ----------------------------------------------------- */


/* n decimal digits at *p into *v; 0 if any is not a digit. */
static int digits(const char **p, const char *end, int n, int64_t *v)
{
    int64_t r = 0;
    for (int i = 0; i < n; i++) {
        if (*p >= end || **p < '0' || **p > '9') return 0;
        r = r * 10 + (*(*p)++ - '0');
    }
    *v = r;
    return 1;
}

mk_err mk_ast_parse_time_str(const char *s, size_t n, int64_t *ns_out)
{
    const char *p = s, *end = s + n;
    int64_t y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off_s = 0;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!digits(&p, end, 4, &y) || p >= end || *p++ != '-' || !digits(&p, end, 2, &mo) || p >= end ||
        *p++ != '-' || !digits(&p, end, 2, &d))
        return MK_EINVAL;
    if (mo < 1 || mo > 12 || d < 1) return MK_EINVAL;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) return MK_EINVAL;
    if (p < end) {
        if (*p != 'T' && *p != 't' && *p != ' ') return MK_EINVAL;
        p++;
        if (!digits(&p, end, 2, &h) || p >= end || *p++ != ':' || !digits(&p, end, 2, &mi) || p >= end ||
            *p++ != ':' || !digits(&p, end, 2, &sec))
            return MK_EINVAL;
        if (h > 23 || mi > 59 || sec > 59) return MK_EINVAL;
        if (p < end && *p == '.') {
            p++;
            int nd = 0;
            while (p < end && *p >= '0' && *p <= '9') {
                if (nd == 9) return MK_EINVAL; /* finer than a nanosecond */
                frac = frac * 10 + (*p++ - '0');
                nd++;
            }
            if (nd == 0) return MK_EINVAL;
            while (nd++ < 9) frac *= 10;
        }
        if (p < end && (*p == 'Z' || *p == 'z')) {
            p++;
        } else if (p < end && (*p == '+' || *p == '-')) {
            int sign = *p++ == '-' ? -1 : 1;
            int64_t oh, om;
            if (!digits(&p, end, 2, &oh) || p >= end || *p++ != ':' || !digits(&p, end, 2, &om) || oh > 23 ||
                om > 59)
                return MK_EINVAL;
            off_s = sign * (oh * 3600 + om * 60);
        }
        if (p != end) return MK_EINVAL;
    }
    int64_t secs = mk_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_s;
    /* int64 ns spans 1677-09-21T00:12:43.145224192Z .. 2262-04-11T23:47:16.854775807Z */
    if (secs < INT64_MIN / 1000000000 - 1 || secs > INT64_MAX / 1000000000) return MK_ERANGE;
    if (secs < 0) {
        /* (secs + 1) s plus (frac - 1 s): never overflows before the check */
        int64_t whole = (secs + 1) * 1000000000, part = frac - 1000000000;
        if (whole < INT64_MIN - part) return MK_ERANGE;
        *ns_out = whole + part;
    } else {
        int64_t whole = secs * 1000000000;
        if (whole > INT64_MAX - frac) return MK_ERANGE;
        *ns_out = whole + frac;
    }
    return MK_OK;
}

mk_err mk_ast_time_ns(const mk_ast *lit, int64_t *ns_out)
{
    switch (lit->kind) {
    case MK_AST_DURATION:
    case MK_AST_INTEGER: *ns_out = lit->u.i64; return MK_OK;
    case MK_AST_STRING:
        if (lit->u.str.is_time) {
            *ns_out = lit->u.str.time_ns;
            return MK_OK;
        }
        return mk_ast_parse_time_str(lit->u.str.s, strlen(lit->u.str.s), ns_out);
    default: return MK_EINVAL;
    }
}

/*
 * query/parser.c — InfluxQL recursive-descent parser; grammar in parser.h.
 *
 * One token of lookahead (p->tok). Every parse function either returns a
 * node / MK_OK, or records the first error in p (sticky: later errors never
 * overwrite it) and returns NULL / the error, so callers only propagate.
 * Nodes come from the query's arena, so an error path frees nothing itself;
 * mk_qparse drops the whole arena.
 *
 * Recursion is bounded twice: p->depth counts nested parse calls (parens,
 * unary operators, calls, subqueries) against MK_QPARSE_MAX_DEPTH before
 * they recurse, and every composite node's height is checked against
 * MK_QPARSE_MAX_HEIGHT, because a flat chain like a+a+a+... builds a tall
 * tree without deep parser recursion, and later stages recurse over it.
 */
#include "parser.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "lexer.h"

typedef struct parser {
    mk_qlex lx;
    const char *src;
    size_t len;
    mk_qtok tok;  /* current token */
    mk_qtok prev; /* the token before it (for "after X" in messages) */
    mk_arena *arena;
    mk_diag *diag;
    mk_err rc;    /* first error, sticky */
    int depth;
} parser;

static void advance(parser *p)
{
    p->prev = p->tok;
    p->tok = mk_qlex_next(&p->lx);
}

static int is(const parser *p, mk_qtok_kind k) { return p->tok.kind == k; }

/* Case-insensitive: is the current token the bare identifier w? */
static int is_word(const parser *p, const char *w)
{
    if (p->tok.kind != MK_QTOK_IDENT || strlen(w) != p->tok.len) return 0;
    for (uint32_t i = 0; i < p->tok.len; i++) {
        char c = p->src[p->tok.off + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (c != w[i]) return 0;
    }
    return 1;
}

/* Describes token t for a message: 'text' (escaped, shortened), or EOF. */
static void describe(const parser *p, mk_qtok t, char *out, size_t cap)
{
    size_t n = 0;
    if (t.kind == MK_QTOK_EOF) {
        snprintf(out, cap, "EOF");
        return;
    }
    const char *prefix = "";
    if (t.kind == MK_QTOK_ILLEGAL) prefix = mk_qlex_err_str(p->lx.err);
    n = (size_t)snprintf(out, cap, "%s%s'", prefix, *prefix ? " " : "");
    for (uint32_t i = 0; i < t.len && n + 8 < cap; i++) {
        unsigned char c = (unsigned char)p->src[t.off + i];
        if (i == 40) {
            n += (size_t)snprintf(out + n, cap - n, "...");
            break;
        }
        if (c < 0x20 || c == 0x7f) n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
        else out[n++] = (char)c;
    }
    snprintf(out + n, cap - n, "'");
}

/* Records "error at L:C: <msg>" at offset off (first error only). */
static void fail_at(parser *p, mk_err code, uint32_t off, const char *msg)
{
    if (p->rc) return;
    uint32_t line, col;
    mk_qlex_linecol(p->src, p->len, off, &line, &col);
    p->rc = mk_diag_set(p->diag, code, "error at %" PRIu32 ":%" PRIu32 ": %s", line, col, msg);
}

/* "expected <what>, found <current token>", at the current token. */
static void expected(parser *p, const char *what)
{
    char found[128], msg[400];
    describe(p, p->tok, found, sizeof found);
    snprintf(msg, sizeof msg, "expected %s, found %s", what, found);
    fail_at(p, MK_EPARSE, p->tok.off, msg);
}

static void oom(parser *p) { fail_at(p, MK_ENOMEM, p->tok.off, "out of memory"); }

static int expect(parser *p, mk_qtok_kind k, const char *what)
{
    if (!is(p, k)) {
        expected(p, what);
        return 0;
    }
    advance(p);
    return 1;
}

static mk_ast *node(parser *p, mk_ast_kind kind, uint32_t off)
{
    mk_ast *n = mk_arena_alloc(p->arena, sizeof *n);
    if (!n) {
        oom(p);
        return NULL;
    }
    n->kind = kind;
    n->off = off;
    n->height = 1;
    return n;
}

/* Sets n's height from a child's; an error if the tree gets too tall. */
static int grow(parser *p, mk_ast *n, const mk_ast *child)
{
    if (child && child->height + 1 > n->height) n->height = child->height + 1;
    if (n->height > MK_QPARSE_MAX_HEIGHT) {
        char msg[128];
        snprintf(msg, sizeof msg, "expression too complex (more than %d levels)", MK_QPARSE_MAX_HEIGHT);
        fail_at(p, MK_EPARSE, n->off, msg);
        return 0;
    }
    return 1;
}

/* Enters one level of nesting; an error past MK_QPARSE_MAX_DEPTH. */
static int enter(parser *p)
{
    if (++p->depth > MK_QPARSE_MAX_DEPTH) {
        char what[128];
        snprintf(what, sizeof what, "at most %d levels of nesting", MK_QPARSE_MAX_DEPTH);
        expected(p, what);
        return 0;
    }
    return 1;
}

/* Decoded text of the current IDENT/QIDENT/STRING/REGEX token. */
static char *tok_text(parser *p)
{
    mk_qtok t = p->tok;
    char *s;
    if (t.kind == MK_QTOK_IDENT || t.kind == MK_QTOK_PARAM) {
        uint32_t skip = t.kind == MK_QTOK_PARAM; /* the '$' */
        s = mk_arena_strndup(p->arena, p->src + t.off + skip, t.len - skip);
    } else {
        s = mk_arena_alloc(p->arena, (size_t)t.len + 1);
        if (s) mk_qlex_unquote(p->src, t, s);
    }
    if (!s) oom(p);
    return s;
}

/* An identifier (bare or quoted); what names it for the message. */
static char *ident(parser *p, const char *what)
{
    if (!is(p, MK_QTOK_IDENT) && !is(p, MK_QTOK_QIDENT)) {
        expected(p, what);
        return NULL;
    }
    char *s = tok_text(p);
    if (s) advance(p);
    return s;
}

/* A regex at the current token (which must be the DIV that starts it). */
static mk_ast *regex(parser *p, const char *what)
{
    if (!is(p, MK_QTOK_DIV)) {
        expected(p, what);
        return NULL;
    }
    p->tok = mk_qlex_rescan_regex(&p->lx, p->tok);
    if (is(p, MK_QTOK_ILLEGAL)) {
        expected(p, what);
        return NULL;
    }
    mk_ast *n = node(p, MK_AST_REGEX, p->tok.off);
    if (n && !(n->u.str.s = tok_text(p))) return NULL;
    if (n) advance(p);
    return n;
}

/* A non-negative integer after keyword kw (LIMIT 10). */
static int limit_clause(parser *p, mk_ast_limit *l, const char *kw)
{
    char what[64];
    snprintf(what, sizeof what, "integer after %s", kw);
    advance(p);
    if (!is(p, MK_QTOK_INTEGER) || mk_qlex_integer(p->src, p->tok, &l->n)) {
        expected(p, what);
        return 0;
    }
    l->is_set = 1;
    advance(p);
    return 1;
}

/* ---- expressions ------------------------------------------------------- */

static mk_ast *parse_expr(parser *p);
static mk_ast *parse_select(parser *p);

static int binary_prec(mk_qtok_kind k)
{
    switch (k) {
    case MK_QTOK_OR: return 1;
    case MK_QTOK_AND: return 2;
    case MK_QTOK_EQ: case MK_QTOK_NEQ: case MK_QTOK_EQREGEX: case MK_QTOK_NEQREGEX:
    case MK_QTOK_LT: case MK_QTOK_LTE: case MK_QTOK_GT: case MK_QTOK_GTE: return 4;
    case MK_QTOK_ADD: case MK_QTOK_SUB: case MK_QTOK_BITOR: case MK_QTOK_BITXOR: return 5;
    case MK_QTOK_MUL: case MK_QTOK_DIV: case MK_QTOK_MOD: case MK_QTOK_BITAND: return 6;
    default: return 0;
    }
}

/* ::type after a variable or wildcard. */
static int parse_cast(parser *p, mk_ast *n)
{
    static const struct { const char *w; mk_ast_cast c; } casts[] = {
        {"float", MK_AST_CAST_FLOAT}, {"integer", MK_AST_CAST_INTEGER}, {"string", MK_AST_CAST_STRING},
        {"boolean", MK_AST_CAST_BOOLEAN},
    };
    if (!is(p, MK_QTOK_DOUBLECOLON)) return 1;
    advance(p);
    if (is(p, MK_QTOK_FIELD)) n->u.var.cast = MK_AST_CAST_FIELD;
    else if (is(p, MK_QTOK_TAG)) n->u.var.cast = MK_AST_CAST_TAG;
    for (size_t i = 0; i < sizeof casts / sizeof casts[0] && !n->u.var.cast; i++)
        if (is_word(p, casts[i].w)) n->u.var.cast = casts[i].c;
    if (!n->u.var.cast) {
        expected(p, "float, integer, string, boolean, field or tag after '::'");
        return 0;
    }
    advance(p);
    return 1;
}

/* name( args ) with the name already consumed. */
static mk_ast *parse_call(parser *p, mk_ast *n)
{
    advance(p); /* ( */
    mk_ast **tail = &n->u.call.args;
    if (!is(p, MK_QTOK_RPAREN)) {
        for (;;) {
            mk_ast *a = parse_expr(p);
            if (!a || !grow(p, n, a)) return NULL;
            *tail = a;
            tail = &a->next;
            n->u.call.n_args++;
            if (!is(p, MK_QTOK_COMMA)) break;
            advance(p);
        }
    }
    if (!expect(p, MK_QTOK_RPAREN, "',' or ')' in function call")) return NULL;
    return n;
}

static mk_ast *parse_primary(parser *p)
{
    mk_qtok t = p->tok;
    mk_ast *n = NULL;
    switch (t.kind) {
    case MK_QTOK_IDENT:
    case MK_QTOK_QIDENT: {
        char *name = tok_text(p);
        if (!name) return NULL;
        advance(p);
        if (t.kind == MK_QTOK_IDENT && is(p, MK_QTOK_LPAREN)) {
            if (!(n = node(p, MK_AST_CALL, t.off))) return NULL;
            for (char *c = name; *c; c++)
                if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32); /* function names are case-insensitive */
            n->u.call.name = name;
            return parse_call(p, n);
        }
        if (!(n = node(p, MK_AST_VARREF, t.off))) return NULL;
        n->u.var.name = name;
        return parse_cast(p, n) ? n : NULL;
    }
    case MK_QTOK_MUL:
        if (!(n = node(p, MK_AST_WILDCARD, t.off))) return NULL;
        advance(p);
        return parse_cast(p, n) ? n : NULL;
    case MK_QTOK_DIV: return regex(p, "regex");
    case MK_QTOK_INTEGER:
    case MK_QTOK_DURATION:
        if (!(n = node(p, t.kind == MK_QTOK_INTEGER ? MK_AST_INTEGER : MK_AST_DURATION, t.off))) return NULL;
        if ((t.kind == MK_QTOK_INTEGER ? mk_qlex_integer(p->src, t, &n->u.i64)
                                       : mk_qlex_duration(p->src, t, &n->u.i64)) != MK_OK) {
            expected(p, t.kind == MK_QTOK_INTEGER ? "integer within int64" : "duration within int64 nanoseconds");
            return NULL;
        }
        advance(p);
        return n;
    case MK_QTOK_NUMBER:
        if (!(n = node(p, MK_AST_NUMBER, t.off))) return NULL;
        if (mk_qlex_number(p->src, t, &n->u.f64) != MK_OK) {
            expected(p, "finite number");
            return NULL;
        }
        advance(p);
        return n;
    case MK_QTOK_STRING:
    case MK_QTOK_PARAM:
        if (!(n = node(p, t.kind == MK_QTOK_STRING ? MK_AST_STRING : MK_AST_PARAM, t.off))) return NULL;
        if (!(n->u.str.s = tok_text(p))) return NULL;
        advance(p);
        return n;
    case MK_QTOK_TRUE:
    case MK_QTOK_FALSE:
        if (!(n = node(p, MK_AST_BOOL, t.off))) return NULL;
        n->u.i64 = t.kind == MK_QTOK_TRUE;
        advance(p);
        return n;
    case MK_QTOK_LPAREN: {
        advance(p);
        mk_ast *inner = parse_expr(p);
        if (!inner || !(n = node(p, MK_AST_PAREN, t.off))) return NULL;
        n->u.bin.rhs = inner;
        if (!grow(p, n, inner)) return NULL;
        return expect(p, MK_QTOK_RPAREN, "')'") ? n : NULL;
    }
    default: break;
    }
    if (p->prev.kind == MK_QTOK_EOF && p->prev.len == 0 && p->prev.off == 0 && t.off == 0) {
        expected(p, "expression");
    } else {
        char what[160], prev[80];
        describe(p, p->prev, prev, sizeof prev);
        if (p->prev.kind >= MK_QTOK_KW_FIRST && p->prev.kind <= MK_QTOK_KW_LAST)
            snprintf(prev, sizeof prev, "%s", mk_qlex_kind_name(p->prev.kind));
        snprintf(what, sizeof what, "expression after %s", prev);
        expected(p, what);
    }
    return NULL;
}

static mk_ast *parse_unary(parser *p)
{
    mk_ast *n = NULL;
    if (!enter(p)) return NULL;
    if (is(p, MK_QTOK_SUB) || is(p, MK_QTOK_ADD)) {
        mk_qtok t = p->tok;
        advance(p);
        mk_ast *operand = parse_unary(p);
        if (!operand) goto out;
        /* A sign on a literal is folded into it, as InfluxQL does, so -1 is
         * the integer -1 and prints back as -1. */
        if (operand->kind == MK_AST_INTEGER || operand->kind == MK_AST_DURATION) {
            if (t.kind == MK_QTOK_SUB) operand->u.i64 = -operand->u.i64;
            operand->off = t.off;
            n = operand;
        } else if (operand->kind == MK_AST_NUMBER) {
            if (t.kind == MK_QTOK_SUB) operand->u.f64 = -operand->u.f64;
            operand->off = t.off;
            n = operand;
        } else if ((n = node(p, MK_AST_UNARY, t.off))) {
            n->u.bin.op = t.kind;
            n->u.bin.rhs = operand;
            if (!grow(p, n, operand)) n = NULL;
        }
    } else {
        n = parse_primary(p);
    }
out:
    p->depth--;
    return n;
}

/* The operand of =~ and !~: a regex or a bind parameter. */
static mk_ast *parse_regex_operand(parser *p, mk_qtok_kind op)
{
    if (is(p, MK_QTOK_PARAM)) return parse_primary(p);
    return regex(p, op == MK_QTOK_EQREGEX ? "regex after '=~'" : "regex after '!~'");
}

static int is_time_ref(const mk_ast *n)
{
    return n->kind == MK_AST_VARREF && strlen(n->u.var.name) == 4 &&
           (n->u.var.name[0] | 32) == 't' && (n->u.var.name[1] | 32) == 'i' &&
           (n->u.var.name[2] | 32) == 'm' && (n->u.var.name[3] | 32) == 'e';
}

/* time <op> 'string': the string must be a time literal; record its instant. */
static int check_time_string(parser *p, mk_ast *s)
{
    if (s->kind != MK_AST_STRING) return 1;
    mk_err rc = mk_ast_parse_time_str(s->u.str.s, strlen(s->u.str.s), &s->u.str.time_ns);
    if (rc == MK_OK) {
        s->u.str.is_time = 1;
        return 1;
    }
    /* Point the message at the string token itself. */
    mk_qlex lx;
    mk_qlex_init(&lx, p->src, p->len);
    lx.pos = s->off;
    mk_qtok saved = p->tok;
    p->tok = mk_qlex_next(&lx);
    expected(p, rc == MK_ERANGE ? "time between 1677-09-21 and 2262-04-11"
                                : "RFC 3339 time ('2006-01-02T15:04:05Z') in time comparison");
    p->tok = saved;
    return 0;
}

static mk_ast *parse_binary(parser *p, int min_prec)
{
    mk_ast *lhs = parse_unary(p);
    while (lhs) {
        mk_qtok_kind op = p->tok.kind;
        int prec = binary_prec(op);
        if (!prec || prec < min_prec) break;
        advance(p);
        mk_ast *rhs = (op == MK_QTOK_EQREGEX || op == MK_QTOK_NEQREGEX) ? parse_regex_operand(p, op)
                                                                        : parse_binary(p, prec + 1);
        mk_ast *n = rhs ? node(p, MK_AST_BINARY, lhs->off) : NULL;
        if (!n) return NULL;
        n->u.bin.op = op;
        n->u.bin.lhs = lhs;
        n->u.bin.rhs = rhs;
        if (!grow(p, n, lhs) || !grow(p, n, rhs)) return NULL;
        if (prec == 4 && op != MK_QTOK_EQREGEX && op != MK_QTOK_NEQREGEX) {
            if ((is_time_ref(lhs) && !check_time_string(p, rhs)) || (is_time_ref(rhs) && !check_time_string(p, lhs)))
                return NULL;
        }
        lhs = n;
    }
    return lhs;
}

static mk_ast *parse_expr(parser *p) { return parse_binary(p, 1); }

/* ---- SELECT ------------------------------------------------------------ */

/* [db.][rp.](name | /regex/), or db..name. ctx is the word before it. */
static mk_ast *parse_measurement(parser *p, const char *ctx)
{
    char what[96];
    snprintf(what, sizeof what, "identifier after %s", ctx);
    mk_ast *n = node(p, MK_AST_MEASUREMENT, p->tok.off);
    const char *seg[3] = {NULL, NULL, NULL};
    int nseg = 0;
    if (!n) return NULL;
    for (;;) {
        if (is(p, MK_QTOK_DIV)) {
            if (!(n->u.meas.regex = regex(p, what))) return NULL;
            nseg++;
            break;
        }
        if (!(seg[nseg++] = ident(p, what))) return NULL;
        if (nseg == 3 || !is(p, MK_QTOK_DOT)) break;
        advance(p);
        snprintf(what, sizeof what, "identifier or regex after '.'");
        if (nseg == 1 && is(p, MK_QTOK_DOT)) { /* db..m: the default retention policy */
            advance(p);
            seg[nseg++] = NULL;
        }
    }
    /* The last segment is the measurement; the ones before are db and rp. */
    if (!n->u.meas.regex) n->u.meas.name = seg[--nseg];
    else nseg--;
    if (nseg == 2) {
        n->u.meas.db = seg[0];
        n->u.meas.rp = seg[1];
    } else if (nseg == 1) {
        n->u.meas.rp = seg[0];
    }
    return n;
}

static mk_ast *parse_sources(parser *p, uint32_t *count, int allow_subquery)
{
    mk_ast *head = NULL, **tail = &head;
    const char *ctx = "FROM";
    for (;;) {
        mk_ast *s;
        if (allow_subquery && is(p, MK_QTOK_LPAREN)) {
            s = node(p, MK_AST_SUBQUERY, p->tok.off);
            if (!s) return NULL;
            advance(p);
            if (!is(p, MK_QTOK_SELECT)) {
                expected(p, "SELECT after '(' in FROM");
                return NULL;
            }
            if (!(s->u.sub.select = parse_select(p))) return NULL;
            if (!expect(p, MK_QTOK_RPAREN, "')' after subquery")) return NULL;
        } else if (!(s = parse_measurement(p, ctx))) {
            return NULL;
        }
        *tail = s;
        tail = &s->next;
        (*count)++;
        if (!is(p, MK_QTOK_COMMA)) break;
        advance(p);
        ctx = "','";
    }
    return head;
}

/* time(interval[, offset]) with "time" consumed and '(' current. */
static mk_ast *parse_time_dim(parser *p, mk_qtok name_tok)
{
    mk_ast *n = node(p, MK_AST_CALL, name_tok.off);
    if (!n || !(n->u.call.name = mk_arena_strndup(p->arena, "time", 4))) {
        oom(p);
        return NULL;
    }
    advance(p); /* ( */
    mk_ast **tail = &n->u.call.args;
    for (int i = 0; i < 2; i++) {
        int is_neg = 0;
        mk_qtok start = p->tok;
        if (i == 1 && is(p, MK_QTOK_SUB)) { /* offsets may be negative */
            is_neg = 1;
            advance(p);
        }
        mk_ast *d = node(p, MK_AST_DURATION, start.off);
        if (!d) return NULL;
        if (!is(p, MK_QTOK_DURATION) || mk_qlex_duration(p->src, p->tok, &d->u.i64)) {
            expected(p, i == 0 ? "duration in time()" : "duration offset in time()");
            return NULL;
        }
        if (is_neg) d->u.i64 = -d->u.i64;
        advance(p);
        *tail = d;
        tail = &d->next;
        n->u.call.n_args++;
        n->height = 2;
        if (i == 1 || !is(p, MK_QTOK_COMMA)) break;
        advance(p);
    }
    return expect(p, MK_QTOK_RPAREN, "')' after time() arguments") ? n : NULL;
}

static mk_ast *parse_dims(parser *p, uint32_t *count)
{
    mk_ast *head = NULL, **tail = &head;
    for (;;) {
        mk_ast *d = NULL;
        mk_qtok t = p->tok;
        if (is_word(p, "time")) {
            char *name = tok_text(p); /* kept as written: a tag may be called tIme */
            if (!name) return NULL;
            advance(p);
            if (is(p, MK_QTOK_LPAREN)) {
                d = parse_time_dim(p, t);
            } else if ((d = node(p, MK_AST_VARREF, t.off))) {
                d->u.var.name = name;
                if (!parse_cast(p, d)) d = NULL;
            }
        } else if (is(p, MK_QTOK_IDENT) || is(p, MK_QTOK_QIDENT)) {
            if ((d = node(p, MK_AST_VARREF, t.off)) && (d->u.var.name = ident(p, "tag key")) && !parse_cast(p, d))
                d = NULL;
            else if (d && !d->u.var.name) d = NULL;
        } else if (is(p, MK_QTOK_MUL)) {
            if ((d = node(p, MK_AST_WILDCARD, t.off))) {
                advance(p);
                if (!parse_cast(p, d)) d = NULL;
            }
        } else if (is(p, MK_QTOK_DIV)) {
            d = regex(p, "regex in GROUP BY");
        } else {
            expected(p, t.kind == MK_QTOK_LPAREN ? "time(), tag key, regex or * in GROUP BY" : "time(), tag key, regex or * after GROUP BY");
        }
        if (!d) return NULL;
        *tail = d;
        tail = &d->next;
        (*count)++;
        if (!is(p, MK_QTOK_COMMA)) break;
        advance(p);
    }
    return head;
}

static int parse_fill(parser *p, mk_ast_select *s)
{
    static const struct { const char *w; mk_ast_fill f; } opts[] = {
        {"null", MK_AST_FILL_NULL}, {"none", MK_AST_FILL_NONE},
        {"previous", MK_AST_FILL_PREVIOUS}, {"linear", MK_AST_FILL_LINEAR},
    };
    advance(p); /* fill */
    if (!expect(p, MK_QTOK_LPAREN, "'(' after fill")) return 0;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (is_word(p, opts[i].w)) {
            s->fill = opts[i].f;
            advance(p);
        }
    if (s->fill == MK_AST_FILL_DEFAULT) {
        if (is(p, MK_QTOK_SUB) || is(p, MK_QTOK_INTEGER) || is(p, MK_QTOK_NUMBER)) {
            mk_qtok t = p->tok;
            int is_neg = is(p, MK_QTOK_SUB);
            if (is_neg) advance(p);
            if (!is(p, MK_QTOK_INTEGER) && !is(p, MK_QTOK_NUMBER)) {
                expected(p, "number after '-' in fill()");
                return 0;
            }
            mk_ast *v = parse_primary(p);
            if (!v) return 0;
            if (v->kind == MK_AST_INTEGER && is_neg) v->u.i64 = -v->u.i64;
            if (v->kind == MK_AST_NUMBER && is_neg) v->u.f64 = -v->u.f64;
            v->off = t.off;
            s->fill = MK_AST_FILL_NUMBER;
            s->fill_value = v;
        } else {
            expected(p, "null, none, previous, linear or a number in fill()");
            return 0;
        }
    }
    return expect(p, MK_QTOK_RPAREN, "')' after fill option");
}

static int parse_compare(parser *p, mk_ast_select *s)
{
    mk_ast **tail = &s->compare;
    advance(p); /* compare */
    for (;;) {
        mk_ast *d = node(p, MK_AST_DURATION, p->tok.off);
        if (!d) return 0;
        if (!is(p, MK_QTOK_DURATION) || mk_qlex_duration(p->src, p->tok, &d->u.i64)) {
            expected(p, s->compare ? "duration after ','" : "duration after COMPARE");
            return 0;
        }
        if (d->u.i64 <= 0) { /* a shift of nothing compares a bucket with itself */
            expected(p, s->compare ? "positive duration after ','" : "positive duration after COMPARE");
            return 0;
        }
        advance(p);
        *tail = d;
        tail = &d->next;
        s->n_compare++;
        if (!is(p, MK_QTOK_COMMA)) break;
        advance(p);
    }
    return 1;
}

static int parse_tz(parser *p, mk_ast_select *s)
{
    advance(p); /* tz */
    if (!expect(p, MK_QTOK_LPAREN, "'(' after tz")) return 0;
    if (!is(p, MK_QTOK_STRING)) {
        expected(p, "time zone string in tz()");
        return 0;
    }
    if (!(s->tz = tok_text(p))) return 0;
    advance(p);
    return expect(p, MK_QTOK_RPAREN, "')' after tz argument");
}

static mk_ast *parse_select(parser *p)
{
    mk_ast *n = NULL, **tail;
    mk_ast_select *s;
    if (!enter(p)) return NULL;
    if (!(n = node(p, MK_AST_SELECT, p->tok.off))) goto out;
    s = &n->u.sel;
    advance(p); /* SELECT */
    tail = &s->fields;
    for (;;) {
        mk_ast *f = node(p, MK_AST_FIELD, p->tok.off);
        if (!f || !(f->u.field.expr = parse_expr(p))) goto fail;
        if (is(p, MK_QTOK_AS)) {
            advance(p);
            if (!(f->u.field.alias = ident(p, "identifier after AS"))) goto fail;
        }
        *tail = f;
        tail = &f->next;
        s->n_fields++;
        if (!is(p, MK_QTOK_COMMA)) break;
        advance(p);
    }
    if (!is(p, MK_QTOK_FROM)) {
        expected(p, "FROM");
        goto fail;
    }
    advance(p);
    if (!(s->sources = parse_sources(p, &s->n_sources, 1))) goto fail;
    if (is(p, MK_QTOK_WHERE)) {
        advance(p);
        if (!(s->cond = parse_expr(p))) goto fail;
    }
    if (is(p, MK_QTOK_GROUP)) {
        advance(p);
        if (!expect(p, MK_QTOK_BY, "BY after GROUP")) goto fail;
        if (!(s->dims = parse_dims(p, &s->n_dims))) goto fail;
    }
    if (is_word(p, "fill") && !parse_fill(p, s)) goto fail;
    if (is_word(p, "compare") && !parse_compare(p, s)) goto fail;
    if (is(p, MK_QTOK_ORDER)) {
        advance(p);
        if (!expect(p, MK_QTOK_BY, "BY after ORDER")) goto fail;
        s->has_order = 1;
        if (is_word(p, "time")) advance(p);
        else if (!is(p, MK_QTOK_ASC) && !is(p, MK_QTOK_DESC)) {
            expected(p, "time, ASC or DESC after ORDER BY");
            goto fail;
        }
        if (is(p, MK_QTOK_ASC)) advance(p);
        else if (is(p, MK_QTOK_DESC)) {
            s->is_desc = 1;
            advance(p);
        }
    }
    if (is(p, MK_QTOK_LIMIT) && !limit_clause(p, &s->limit, "LIMIT")) goto fail;
    if (is(p, MK_QTOK_OFFSET) && !limit_clause(p, &s->offset, "OFFSET")) goto fail;
    if (is(p, MK_QTOK_SLIMIT) && !limit_clause(p, &s->slimit, "SLIMIT")) goto fail;
    if (is(p, MK_QTOK_SOFFSET) && !limit_clause(p, &s->soffset, "SOFFSET")) goto fail;
    if (is_word(p, "tz") && !parse_tz(p, s)) goto fail;
    goto out;
fail:
    n = NULL;
out:
    p->depth--;
    return n;
}

/* ---- SHOW -------------------------------------------------------------- */

static int show_tail(parser *p, mk_ast_show *s, int has_from, int has_where)
{
    if (is(p, MK_QTOK_ON)) {
        advance(p);
        if (!(s->on_db = ident(p, "database name after ON"))) return 0;
    }
    if (has_from && is(p, MK_QTOK_FROM)) {
        advance(p);
        if (!(s->sources = parse_sources(p, &s->n_sources, 0))) return 0;
    }
    if (s->what == MK_AST_SHOW_MEASUREMENTS && is(p, MK_QTOK_WITH)) {
        advance(p);
        if (!expect(p, MK_QTOK_MEASUREMENT, "MEASUREMENT after WITH")) return 0;
        if (is(p, MK_QTOK_EQ)) {
            s->with_op = MK_QTOK_EQ;
            advance(p);
            mk_ast *m = node(p, MK_AST_VARREF, p->tok.off);
            if (!m || !(m->u.var.name = ident(p, "measurement name after '='"))) return 0;
            s->with = m;
        } else if (is(p, MK_QTOK_EQREGEX)) {
            s->with_op = MK_QTOK_EQREGEX;
            advance(p);
            if (!(s->with = regex(p, "regex after '=~'"))) return 0;
        } else {
            expected(p, "'=' or '=~' after WITH MEASUREMENT");
            return 0;
        }
        s->n_with = 1;
    }
    if (s->what == MK_AST_SHOW_TAG_VALUES) {
        if (!expect(p, MK_QTOK_WITH, "WITH KEY in SHOW TAG VALUES")) return 0;
        if (!expect(p, MK_QTOK_KEY, "KEY after WITH")) return 0;
        s->with_op = p->tok.kind;
        if (is(p, MK_QTOK_EQ) || is(p, MK_QTOK_NEQ)) {
            advance(p);
            mk_ast *k = node(p, MK_AST_VARREF, p->tok.off);
            if (!k || !(k->u.var.name = ident(p, s->with_op == MK_QTOK_EQ ? "tag key after '='" : "tag key after '!='")))
                return 0;
            s->with = k;
            s->n_with = 1;
        } else if (is(p, MK_QTOK_EQREGEX) || is(p, MK_QTOK_NEQREGEX)) {
            advance(p);
            if (!(s->with = parse_regex_operand(p, (mk_qtok_kind)s->with_op))) return 0;
            s->n_with = 1;
        } else if (is(p, MK_QTOK_IN)) {
            advance(p);
            if (!expect(p, MK_QTOK_LPAREN, "'(' after IN")) return 0;
            mk_ast **tail = &s->with;
            for (;;) {
                mk_ast *k = node(p, MK_AST_VARREF, p->tok.off);
                if (!k || !(k->u.var.name = ident(p, "tag key in IN list"))) return 0;
                *tail = k;
                tail = &k->next;
                s->n_with++;
                if (!is(p, MK_QTOK_COMMA)) break;
                advance(p);
            }
            if (!expect(p, MK_QTOK_RPAREN, "',' or ')' in IN list")) return 0;
        } else {
            expected(p, "'=', '!=', '=~', '!~' or IN after WITH KEY");
            return 0;
        }
    }
    if (has_where && is(p, MK_QTOK_WHERE)) {
        advance(p);
        if (!(s->cond = parse_expr(p))) return 0;
    }
    if (s->what == MK_AST_SHOW_RETENTION_POLICIES || s->what == MK_AST_SHOW_DATABASES) return 1;
    if (is(p, MK_QTOK_LIMIT) && !limit_clause(p, &s->limit, "LIMIT")) return 0;
    if (is(p, MK_QTOK_OFFSET) && !limit_clause(p, &s->offset, "OFFSET")) return 0;
    return 1;
}

static mk_ast *parse_show(parser *p)
{
    mk_ast *n = node(p, MK_AST_SHOW, p->tok.off);
    if (!n) return NULL;
    mk_ast_show *s = &n->u.show;
    s->with_op = MK_QTOK_EOF;
    int has_from = 1, has_where = 1;
    advance(p); /* SHOW */
    switch (p->tok.kind) {
    case MK_QTOK_DATABASES:
        s->what = MK_AST_SHOW_DATABASES;
        advance(p);
        return n;
    case MK_QTOK_MEASUREMENTS: s->what = MK_AST_SHOW_MEASUREMENTS; has_from = 0; break;
    case MK_QTOK_SERIES: s->what = MK_AST_SHOW_SERIES; break;
    case MK_QTOK_TAG:
        advance(p);
        if (is(p, MK_QTOK_KEYS)) s->what = MK_AST_SHOW_TAG_KEYS;
        else if (is(p, MK_QTOK_VALUES)) s->what = MK_AST_SHOW_TAG_VALUES;
        else {
            expected(p, "KEYS or VALUES after SHOW TAG");
            return NULL;
        }
        break;
    case MK_QTOK_FIELD:
        advance(p);
        if (!is(p, MK_QTOK_KEYS)) {
            expected(p, "KEYS after SHOW FIELD");
            return NULL;
        }
        s->what = MK_AST_SHOW_FIELD_KEYS;
        has_where = 0;
        break;
    case MK_QTOK_RETENTION:
        advance(p);
        if (!is(p, MK_QTOK_POLICIES)) {
            expected(p, "POLICIES after SHOW RETENTION");
            return NULL;
        }
        s->what = MK_AST_SHOW_RETENTION_POLICIES;
        has_from = has_where = 0;
        break;
    default:
        expected(p, "DATABASES, MEASUREMENTS, TAG KEYS, TAG VALUES, FIELD KEYS, SERIES or RETENTION POLICIES after SHOW");
        return NULL;
    }
    advance(p);
    return show_tail(p, s, has_from, has_where) ? n : NULL;
}

/* ---- statements -------------------------------------------------------- */

static mk_ast *parse_statement(parser *p)
{
    if (is(p, MK_QTOK_SELECT)) return parse_select(p);
    if (is(p, MK_QTOK_SHOW)) return parse_show(p);
    if (is(p, MK_QTOK_EXPLAIN)) {
        mk_ast *n = node(p, MK_AST_EXPLAIN, p->tok.off);
        if (!n) return NULL;
        advance(p);
        if (is(p, MK_QTOK_ANALYZE)) {
            n->u.explain.is_analyze = 1;
            advance(p);
        }
        if (!is(p, MK_QTOK_SELECT)) {
            expected(p, n->u.explain.is_analyze ? "SELECT after EXPLAIN ANALYZE" : "SELECT or ANALYZE after EXPLAIN");
            return NULL;
        }
        if (!(n->u.explain.stmt = parse_select(p))) return NULL;
        return n;
    }
    expected(p, "SELECT, SHOW or EXPLAIN");
    return NULL;
}

mk_err mk_qparse(const char *src, size_t len, mk_ast_query **out, mk_diag *diag)
{
    parser p;
    mk_ast_query *q = NULL;
    mk_err rc = MK_OK;
    *out = NULL;
    if (len > MK_QLEX_MAX_INPUT) {
        rc = mk_diag_set(diag, MK_EINVAL, "query too long: %zu bytes (limit %zu)", len, MK_QLEX_MAX_INPUT);
        goto out;
    }
    memset(&p, 0, sizeof p);
    p.src = src ? src : "";
    p.len = src ? len : 0;
    p.diag = diag;
    mk_qlex_init(&p.lx, p.src, p.len);
    q = calloc(1, sizeof *q);
    if (!q || mk_arena_new(&q->arena)) {
        rc = mk_diag_set(diag, MK_ENOMEM, "out of memory");
        goto out;
    }
    p.arena = q->arena;
    advance(&p);
    mk_ast **tail = &q->stmts;
    for (;;) {
        while (is(&p, MK_QTOK_SEMICOLON)) advance(&p);
        if (is(&p, MK_QTOK_EOF)) break;
        mk_ast *st = parse_statement(&p);
        if (!st) break;
        *tail = st;
        tail = &st->next;
        q->n_stmts++;
        if (!is(&p, MK_QTOK_SEMICOLON) && !is(&p, MK_QTOK_EOF)) {
            expected(&p, "';' or EOF");
            break;
        }
    }
    if (p.rc) rc = p.rc;
    else if (q->n_stmts == 0) rc = mk_diag_set(diag, MK_EPARSE, "error at 1:1: expected SELECT, SHOW or EXPLAIN, found EOF");
out:
    if (rc) mk_ast_query_free(q);
    else *out = q;
    return rc;
}

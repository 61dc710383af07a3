/*
 * query/lexer.c — the InfluxQL tokenizer; see lexer.h.
 *
 * Hand-written, one pass, no allocation. The grammar of the lexical forms
 * follows InfluxDB 1.x's scanner (influxql/scanner.go) with two deliberate
 * widenings: microseconds may be written u, us, µ or µs, and the keyword
 * list holds only the words Meerkat's grammar uses (fill, tz, compare, time
 * and now are identifiers, recognised by the parser where they matter).
 */
#include "lexer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Spellings of every kind, indexed by mk_qtok_kind. Keywords are upper case
 * here because the printer writes them so. */
static const char *const k_names[MK_QTOK__COUNT] = {
    [MK_QTOK_EOF] = "EOF",           [MK_QTOK_ILLEGAL] = "illegal token",
    [MK_QTOK_IDENT] = "identifier",  [MK_QTOK_QIDENT] = "identifier",
    [MK_QTOK_STRING] = "string",     [MK_QTOK_INTEGER] = "integer",
    [MK_QTOK_NUMBER] = "number",     [MK_QTOK_DURATION] = "duration",
    [MK_QTOK_REGEX] = "regex",       [MK_QTOK_PARAM] = "bind parameter",
    [MK_QTOK_EQ] = "=",              [MK_QTOK_NEQ] = "!=",
    [MK_QTOK_LT] = "<",              [MK_QTOK_LTE] = "<=",
    [MK_QTOK_GT] = ">",              [MK_QTOK_GTE] = ">=",
    [MK_QTOK_EQREGEX] = "=~",        [MK_QTOK_NEQREGEX] = "!~",
    [MK_QTOK_ADD] = "+",             [MK_QTOK_SUB] = "-",
    [MK_QTOK_MUL] = "*",             [MK_QTOK_DIV] = "/",
    [MK_QTOK_MOD] = "%",             [MK_QTOK_BITAND] = "&",
    [MK_QTOK_BITOR] = "|",           [MK_QTOK_BITXOR] = "^",
    [MK_QTOK_LPAREN] = "(",          [MK_QTOK_RPAREN] = ")",
    [MK_QTOK_COMMA] = ",",           [MK_QTOK_DOT] = ".",
    [MK_QTOK_DOUBLECOLON] = "::",    [MK_QTOK_SEMICOLON] = ";",
    [MK_QTOK_ALL] = "ALL",           [MK_QTOK_ANALYZE] = "ANALYZE",
    [MK_QTOK_AND] = "AND",           [MK_QTOK_AS] = "AS",
    [MK_QTOK_ASC] = "ASC",           [MK_QTOK_BY] = "BY",
    [MK_QTOK_DATABASES] = "DATABASES", [MK_QTOK_DESC] = "DESC",
    [MK_QTOK_EXPLAIN] = "EXPLAIN",   [MK_QTOK_FALSE] = "FALSE",
    [MK_QTOK_FIELD] = "FIELD",       [MK_QTOK_FROM] = "FROM",
    [MK_QTOK_GROUP] = "GROUP",       [MK_QTOK_IN] = "IN",
    [MK_QTOK_KEY] = "KEY",           [MK_QTOK_KEYS] = "KEYS",
    [MK_QTOK_LIMIT] = "LIMIT",       [MK_QTOK_MEASUREMENT] = "MEASUREMENT",
    [MK_QTOK_MEASUREMENTS] = "MEASUREMENTS", [MK_QTOK_OFFSET] = "OFFSET",
    [MK_QTOK_ON] = "ON",             [MK_QTOK_OR] = "OR",
    [MK_QTOK_ORDER] = "ORDER",       [MK_QTOK_POLICIES] = "POLICIES",
    [MK_QTOK_RETENTION] = "RETENTION", [MK_QTOK_SELECT] = "SELECT",
    [MK_QTOK_SERIES] = "SERIES",     [MK_QTOK_SHOW] = "SHOW",
    [MK_QTOK_SLIMIT] = "SLIMIT",     [MK_QTOK_SOFFSET] = "SOFFSET",
    [MK_QTOK_TAG] = "TAG",           [MK_QTOK_TRUE] = "TRUE",
    [MK_QTOK_VALUES] = "VALUES",     [MK_QTOK_WHERE] = "WHERE",
    [MK_QTOK_WITH] = "WITH",
};

const char *mk_qlex_kind_name(mk_qtok_kind kind)
{
    if ((unsigned)kind >= MK_QTOK__COUNT || !k_names[kind]) return "token";
    return k_names[kind];
}

const char *mk_qlex_err_str(mk_qlex_err err)
{
    switch (err) {
    case MK_QLEX_OK: return "no error";
    case MK_QLEX_BAD_CHAR: return "unexpected character";
    case MK_QLEX_UNTERM_STRING: return "unterminated string";
    case MK_QLEX_UNTERM_IDENT: return "unterminated quoted identifier";
    case MK_QLEX_UNTERM_REGEX: return "unterminated regex";
    case MK_QLEX_UNTERM_COMMENT: return "unterminated comment";
    case MK_QLEX_BAD_ESCAPE: return "bad escape sequence";
    case MK_QLEX_BAD_DURATION: return "invalid duration";
    case MK_QLEX_BAD_NUMBER: return "invalid number";
    case MK_QLEX_BAD_PARAM: return "invalid bind parameter";
    }
    return "lexical error";
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_ident_start(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80; }
static int is_ident_char(int c) { return is_ident_start(c) || is_digit(c); }
static int to_lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

mk_qtok_kind mk_qlex_keyword(const char *s, size_t n)
{
    /* Linear over ~35 words: statements are short, and this is not the
     * executor's hot path. */
    for (int k = MK_QTOK_KW_FIRST; k <= MK_QTOK_KW_LAST; k++) {
        const char *w = k_names[k];
        size_t i = 0;
        while (i < n && w[i] && to_lower((unsigned char)s[i]) == to_lower((unsigned char)w[i])) i++;
        if (i == n && !w[i]) return (mk_qtok_kind)k;
    }
    return MK_QTOK_IDENT;
}

void mk_qlex_init(mk_qlex *lx, const char *src, size_t len)
{
    lx->src = src;
    lx->len = len;
    lx->pos = 0;
    lx->err = MK_QLEX_OK;
}

static int peek(const mk_qlex *lx, size_t at) { return at < lx->len ? (unsigned char)lx->src[at] : -1; }

static mk_qtok make(mk_qlex *lx, mk_qtok_kind kind, size_t start)
{
    mk_qtok t = {kind, (uint32_t)start, (uint32_t)(lx->pos - start)};
    return t;
}

/* An ILLEGAL token stops the lexer where it is: later calls return it again,
 * so a parser that ignores it cannot loop forever or skip ahead. */
static mk_qtok illegal(mk_qlex *lx, mk_qlex_err why, size_t start)
{
    lx->err = why;
    mk_qtok t = {MK_QTOK_ILLEGAL, (uint32_t)start, (uint32_t)(lx->pos - start)};
    lx->pos = start;
    lx->len = start; /* nothing after an error is ever read */
    return t;
}

/* Length of a duration unit at pos (0 if none): ns, u, us, µ, µs, ms, s, m,
 * h, d, w. µ is U+00B5 in UTF-8 (0xC2 0xB5). */
static size_t unit_len(const mk_qlex *lx, size_t pos)
{
    int c = peek(lx, pos), d = peek(lx, pos + 1);
    if (c == 'n') return d == 's' ? 2 : 0;
    if (c == 'm') return d == 's' ? 2 : 1;
    if (c == 'u') return d == 's' ? 2 : 1;
    if (c == 0xC2 && d == 0xB5) return peek(lx, pos + 2) == 's' ? 3 : 2;
    if (c == 's' || c == 'h' || c == 'd' || c == 'w') return 1;
    return 0;
}

static mk_qtok scan_number(mk_qlex *lx)
{
    size_t start = lx->pos;
    int is_float = 0;
    while (is_digit(peek(lx, lx->pos))) lx->pos++;
    if (peek(lx, lx->pos) == '.' && is_digit(peek(lx, lx->pos + 1))) {
        is_float = 1;
        lx->pos++;
        while (is_digit(peek(lx, lx->pos))) lx->pos++;
    }
    int c = peek(lx, lx->pos);
    if (c == 'e' || c == 'E') {
        size_t p = lx->pos + 1;
        if (peek(lx, p) == '+' || peek(lx, p) == '-') p++;
        if (is_digit(peek(lx, p))) {
            is_float = 1;
            lx->pos = p;
            while (is_digit(peek(lx, lx->pos))) lx->pos++;
        } else if (peek(lx, lx->pos + 1) == '+' || peek(lx, lx->pos + 1) == '-') {
            lx->pos = p;
            return illegal(lx, MK_QLEX_BAD_NUMBER, start);
        }
    }
    c = peek(lx, lx->pos);
    if (is_float) {
        if (c >= 0 && is_ident_char(c)) {
            while (is_ident_char(peek(lx, lx->pos))) lx->pos++;
            return illegal(lx, MK_QLEX_BAD_DURATION, start);
        }
        return make(lx, MK_QTOK_NUMBER, start);
    }
    if (c < 0 || !is_ident_char(c)) return make(lx, MK_QTOK_INTEGER, start);
    /* A duration: (digits unit)+ with no gaps, e.g. 1h30m. */
    for (;;) {
        size_t u = unit_len(lx, lx->pos);
        if (!u) break;
        lx->pos += u;
        if (!is_digit(peek(lx, lx->pos))) break;
        while (is_digit(peek(lx, lx->pos))) lx->pos++;
    }
    c = peek(lx, lx->pos);
    if (is_digit(peek(lx, lx->pos - 1)) || (c >= 0 && is_ident_char(c))) {
        while (is_ident_char(peek(lx, lx->pos))) lx->pos++;
        return illegal(lx, MK_QLEX_BAD_DURATION, start);
    }
    return make(lx, MK_QTOK_DURATION, start);
}

/* '...' or "...": escapes \\ \' \" \n; a raw newline ends it badly. */
static mk_qtok scan_quoted(mk_qlex *lx, int q)
{
    size_t start = lx->pos++;
    mk_qlex_err unterm = q == '\'' ? MK_QLEX_UNTERM_STRING : MK_QLEX_UNTERM_IDENT;
    for (;;) {
        int c = peek(lx, lx->pos);
        if (c < 0 || c == '\n') return illegal(lx, unterm, start);
        if (c == 0) return illegal(lx, MK_QLEX_BAD_CHAR, start); /* names and strings are C strings */
        lx->pos++;
        if (c == q) break;
        if (c == '\\') {
            int e = peek(lx, lx->pos);
            if (e != '\\' && e != '\'' && e != '"' && e != 'n') {
                if (e >= 0 && e != '\n') lx->pos++;
                return illegal(lx, e < 0 ? unterm : MK_QLEX_BAD_ESCAPE, start);
            }
            lx->pos++;
        }
    }
    return make(lx, q == '\'' ? MK_QTOK_STRING : MK_QTOK_QIDENT, start);
}

/* Skips whitespace and comments; 0, or an error kind for an open comment. */
static mk_qlex_err skip_space(mk_qlex *lx, size_t *err_at)
{
    for (;;) {
        int c = peek(lx, lx->pos);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            lx->pos++;
        } else if (c == '-' && peek(lx, lx->pos + 1) == '-') {
            while (peek(lx, lx->pos) >= 0 && peek(lx, lx->pos) != '\n') lx->pos++;
        } else if (c == '/' && peek(lx, lx->pos + 1) == '*') {
            size_t start = lx->pos;
            lx->pos += 2;
            for (;;) {
                if (peek(lx, lx->pos) < 0) {
                    *err_at = start;
                    return MK_QLEX_UNTERM_COMMENT;
                }
                if (peek(lx, lx->pos) == '*' && peek(lx, lx->pos + 1) == '/') {
                    lx->pos += 2;
                    break;
                }
                lx->pos++;
            }
        } else {
            return MK_QLEX_OK;
        }
    }
}

mk_qtok mk_qlex_next(mk_qlex *lx)
{
    if (lx->err) {
        mk_qtok t = {MK_QTOK_ILLEGAL, (uint32_t)lx->pos, 0};
        return t;
    }
    size_t err_at = 0;
    mk_qlex_err e = skip_space(lx, &err_at);
    if (e) return illegal(lx, e, err_at);
    size_t start = lx->pos;
    int c = peek(lx, lx->pos);
    if (c < 0) return make(lx, MK_QTOK_EOF, start);
    if (is_digit(c) || (c == '.' && is_digit(peek(lx, lx->pos + 1)))) return scan_number(lx);
    if (is_ident_start(c)) {
        while (is_ident_char(peek(lx, lx->pos))) lx->pos++;
        return make(lx, mk_qlex_keyword(lx->src + start, lx->pos - start), start);
    }
    if (c == '"' || c == '\'') return scan_quoted(lx, c);
    lx->pos++;
    int d = peek(lx, lx->pos);
    mk_qtok_kind k;
    switch (c) {
    case '=':
        k = MK_QTOK_EQ;
        if (d == '~') { lx->pos++; k = MK_QTOK_EQREGEX; }
        break;
    case '!':
        if (d == '=') { lx->pos++; k = MK_QTOK_NEQ; break; }
        if (d == '~') { lx->pos++; k = MK_QTOK_NEQREGEX; break; }
        return illegal(lx, MK_QLEX_BAD_CHAR, start);
    case '<':
        k = MK_QTOK_LT;
        if (d == '=') { lx->pos++; k = MK_QTOK_LTE; }
        else if (d == '>') { lx->pos++; k = MK_QTOK_NEQ; }
        break;
    case '>':
        k = MK_QTOK_GT;
        if (d == '=') { lx->pos++; k = MK_QTOK_GTE; }
        break;
    case ':':
        if (d != ':') return illegal(lx, MK_QLEX_BAD_CHAR, start);
        lx->pos++;
        k = MK_QTOK_DOUBLECOLON;
        break;
    case '$':
        if (d < 0 || !is_ident_char(d)) return illegal(lx, MK_QLEX_BAD_PARAM, start);
        while (is_ident_char(peek(lx, lx->pos))) lx->pos++;
        k = MK_QTOK_PARAM;
        break;
    case '+': k = MK_QTOK_ADD; break;
    case '-': k = MK_QTOK_SUB; break;
    case '*': k = MK_QTOK_MUL; break;
    case '/': k = MK_QTOK_DIV; break;
    case '%': k = MK_QTOK_MOD; break;
    case '&': k = MK_QTOK_BITAND; break;
    case '|': k = MK_QTOK_BITOR; break;
    case '^': k = MK_QTOK_BITXOR; break;
    case '(': k = MK_QTOK_LPAREN; break;
    case ')': k = MK_QTOK_RPAREN; break;
    case ',': k = MK_QTOK_COMMA; break;
    case '.': k = MK_QTOK_DOT; break;
    case ';': k = MK_QTOK_SEMICOLON; break;
    default: return illegal(lx, MK_QLEX_BAD_CHAR, start);
    }
    return make(lx, k, start);
}

mk_qtok mk_qlex_rescan_regex(mk_qlex *lx, mk_qtok div)
{
    lx->pos = div.off + 1;
    for (;;) {
        int c = peek(lx, lx->pos);
        if (c < 0 || c == '\n') return illegal(lx, MK_QLEX_UNTERM_REGEX, div.off);
        if (c == 0) return illegal(lx, MK_QLEX_BAD_CHAR, div.off);
        lx->pos++;
        if (c == '/') break;
        if (c == '\\') {
            int e = peek(lx, lx->pos);
            if (e < 0 || e == '\n' || e == 0) return illegal(lx, MK_QLEX_UNTERM_REGEX, div.off);
            lx->pos++; /* an escaped pair is one unit: \\ then / still ends it */
        }
    }
    return make(lx, MK_QTOK_REGEX, div.off);
}

size_t mk_qlex_unquote(const char *src, mk_qtok tok, char *out)
{
    const char *p = src + tok.off + 1, *end = src + tok.off + tok.len - 1;
    size_t n = 0;
    if (tok.len < 2) { out[0] = 0; return 0; }
    while (p < end) {
        char c = *p++;
        if (c == '\\' && p < end) {
            char e = *p++;
            if (tok.kind == MK_QTOK_REGEX) {
                if (e != '/') out[n++] = '\\';
                out[n++] = e;
            } else {
                out[n++] = e == 'n' ? '\n' : e;
            }
        } else {
            out[n++] = c;
        }
    }
    out[n] = 0;
    return n;
}

mk_err mk_qlex_integer(const char *src, mk_qtok tok, int64_t *out)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < tok.len; i++) {
        unsigned d = (unsigned)(src[tok.off + i] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10) return MK_ERANGE;
        v = v * 10 + d;
    }
    *out = (int64_t)v;
    return MK_OK;
}

mk_err mk_qlex_number(const char *src, mk_qtok tok, double *out)
{
    char tmp[512];
    mk_err rc = MK_OK;
    char *heap = NULL, *buf = tmp;
    if (tok.len >= sizeof tmp) {
        heap = malloc((size_t)tok.len + 1);
        if (!heap) return MK_ENOMEM;
        buf = heap;
    }
    memcpy(buf, src + tok.off, tok.len);
    buf[tok.len] = 0;
    errno = 0;
    double d = strtod(buf, NULL);
    if (isinf(d)) rc = MK_ERANGE;
    else *out = d;
    free(heap);
    return rc;
}

mk_err mk_qlex_duration(const char *src, mk_qtok tok, int64_t *ns_out)
{
    mk_qlex lx;
    mk_qlex_init(&lx, src + tok.off, tok.len);
    int64_t total = 0;
    while (lx.pos < lx.len) {
        int64_t n = 0;
        while (is_digit(peek(&lx, lx.pos))) {
            int d = peek(&lx, lx.pos++) - '0';
            if (n > (INT64_MAX - d) / 10) return MK_ERANGE;
            n = n * 10 + d;
        }
        size_t u = unit_len(&lx, lx.pos);
        int c = peek(&lx, lx.pos);
        int64_t mul;
        if (c == 'n') mul = 1;
        else if (c == 'u' || c == 0xC2) mul = 1000;
        else if (c == 'm') mul = u == 2 ? 1000000 : 60000000000LL;
        else if (c == 's') mul = 1000000000LL;
        else if (c == 'h') mul = 3600000000000LL;
        else if (c == 'd') mul = 86400000000000LL;
        else mul = 604800000000000LL; /* w */
        lx.pos += u ? u : 1;
        if (n > INT64_MAX / mul) return MK_ERANGE;
        n *= mul;
        if (total > INT64_MAX - n) return MK_ERANGE;
        total += n;
    }
    *ns_out = total;
    return MK_OK;
}

void mk_qlex_linecol(const char *src, size_t len, size_t off, uint32_t *line, uint32_t *col)
{
    uint32_t l = 1, c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        unsigned char b = (unsigned char)src[i];
        if (b == '\n') { l++; c = 1; }
        else if ((b & 0xC0) != 0x80) c++; /* count characters, not UTF-8 continuation bytes */
    }
    *line = l;
    *col = c;
}

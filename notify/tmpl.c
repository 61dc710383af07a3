/*
 * notify/tmpl.c — placeholder templates (see tmpl.h).
 *
 * JSON escaping follows RFC 8259: '"', '\\' and every control character
 * are escaped (\n, \t, ... or \u00XX); bytes >= 0x80 pass through (the
 * values are UTF-8 from the incident store), so the output of a valid JSON
 * template stays valid JSON whatever the labels hold. URL escaping keeps
 * only the RFC 3986 unreserved set and %-encodes every other byte.
 */
#include "tmpl.h"

#include <stdio.h>
#include <string.h>

static int put(mk_buf *b, const char *s, size_t n) { return mk_buf_append(b, s, n) == MK_OK ? 0 : -2; }

int mk_notify_escape_append(mk_buf *out, const char *s, size_t n, mk_notify_escape esc)
{
    static const char hex[] = "0123456789ABCDEF";
    if (esc == MK_NOTIFY_ESC_NONE) return put(out, s, n);
    if (mk_buf_reserve(out, n + 16) != MK_OK) return -2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char t[8];
        size_t k = 0;
        if (esc == MK_NOTIFY_ESC_JSON) {
            if (c == '"' || c == '\\') { t[0] = '\\'; t[1] = (char)c; k = 2; }
            else if (c == '\n') { memcpy(t, "\\n", 2); k = 2; }
            else if (c == '\r') { memcpy(t, "\\r", 2); k = 2; }
            else if (c == '\t') { memcpy(t, "\\t", 2); k = 2; }
            else if (c < 0x20 || c == 0x7f) { snprintf(t, sizeof t, "\\u%04x", c); k = 6; }
            else { t[0] = (char)c; k = 1; }
        } else {
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                c == '_' || c == '~') {
                t[0] = (char)c;
                k = 1;
            } else {
                t[0] = '%';
                t[1] = hex[c >> 4];
                t[2] = hex[c & 15];
                k = 3;
            }
        }
        if (put(out, t, k)) return -2;
    }
    return 0;
}

static void where(const char *tmpl, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (tmpl[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
}

int mk_notify_tmpl_render(const char *tmpl, size_t n, mk_notify_escape esc, mk_notify_tmpl_lookup lookup,
                          void *ctx, mk_buf *out, char *err, size_t err_cap)
{
    size_t i = 0;
    while (i < n) {
        const char *open = NULL;
        for (size_t j = i; j + 1 < n; j++)
            if (tmpl[j] == '{' && tmpl[j + 1] == '{') {
                open = tmpl + j;
                break;
            }
        if (!open) return put(out, tmpl + i, n - i);
        size_t o = (size_t)(open - tmpl);
        if (put(out, tmpl + i, o - i)) return -2;
        size_t a = o + 2, e = a;
        while (e + 1 < n && !(tmpl[e] == '}' && tmpl[e + 1] == '}')) e++;
        size_t line, col;
        if (e + 1 >= n) {
            where(tmpl, o, &line, &col);
            snprintf(err, err_cap, "%zu:%zu: '{{' without a closing '}}'", line, col);
            return -1;
        }
        size_t s = a, t = e;
        while (s < t && (tmpl[s] == ' ' || tmpl[s] == '\t')) s++;
        while (t > s && (tmpl[t - 1] == ' ' || tmpl[t - 1] == '\t')) t--;
        int ok = t > s;
        for (size_t k = s; k < t && ok; k++) ok = is_name_char(tmpl[k]);
        if (!ok) {
            where(tmpl, o, &line, &col);
            snprintf(err, err_cap, "%zu:%zu: a placeholder is {{name}} with a name of letters, digits, '_', '-', '.'",
                     line, col);
            return -1;
        }
        if (lookup) {
            const char *v = lookup(ctx, tmpl + s, t - s);
            if (!v) {
                where(tmpl, o, &line, &col);
                snprintf(err, err_cap, "%zu:%zu: unknown placeholder {{%.*s}}", line, col, (int)(t - s > 64 ? 64 : t - s),
                         tmpl + s);
                return -1;
            }
            if (mk_notify_escape_append(out, v, strlen(v), esc)) return -2;
        }
        i = e + 2;
    }
    return 0;
}

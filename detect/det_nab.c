/*
 * detect/det_nab.c — NAB-layout corpus reading (see det_nab.h).
 */
#include "det_nab.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int mk_det_parse_nab_time(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, se, n = 0;
    while (*s == ' ' || *s == '"') s++;
    if (sscanf(s, "%4d-%2d-%2d%*1[ T]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || h < 0 ||
        mi < 0 || se < 0)
        return -1;
    int64_t frac_ms = 0;
    const char *p = s + n;
    if (*p == '.') {
        int64_t scale = 100;
        p++;
        if (!isdigit((unsigned char)*p)) return -1;
        while (isdigit((unsigned char)*p)) {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (*p == 'Z') p++;
    while (*p == ' ' || *p == '"' || *p == '\r') p++;
    if (*p) return -1;
    int64_t days = mk_days_from_civil(y, mo, d);
    *ms = ((days * 24 + h) * 60 + mi) * 60000LL + se * 1000LL + frac_ms;
    return 0;
}

void mk_det_csv_free(mk_det_csv *c)
{
    if (!c) return;
    free(c->ts_ms);
    free(c->v);
    free(c->ts_text);
    free(c->v_text);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

/* Trims spaces and a trailing CR in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

mk_err mk_det_csv_read(const char *path, mk_det_csv *out, mk_diag *diag)
{
    mk_err rc = MK_OK;
    mk_det_csv c = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return mk_diag_set(diag, mk_err_from_errno(errno), "%s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        rc = mk_diag_set(diag, MK_EIO, "%s: cannot seek: %s", path, strerror(errno));
        goto out;
    }
    long len = ftell(f);
    rewind(f);
    if (len < 0) {
        rc = mk_diag_set(diag, MK_EIO, "%s: cannot size", path);
        goto out;
    }
    c.buf = malloc((size_t)len + 1);
    if (!c.buf) {
        rc = mk_diag_set(diag, MK_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fread(c.buf, 1, (size_t)len, f) != (size_t)len) {
        rc = mk_diag_set(diag, MK_EIO, "%s: short read", path);
        goto out;
    }
    c.buf[len] = 0;
    size_t cap = 1;
    for (long i = 0; i < len; i++) cap += c.buf[i] == '\n';
    c.ts_ms = malloc(cap * sizeof *c.ts_ms);
    c.v = malloc(cap * sizeof *c.v);
    c.ts_text = malloc(cap * sizeof *c.ts_text);
    c.v_text = malloc(cap * sizeof *c.v_text);
    if (!c.ts_ms || !c.v || !c.ts_text || !c.v_text) {
        rc = mk_diag_set(diag, MK_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    char *p = c.buf;
    uint64_t line = 0;
    int is_header = 1;
    while (*p) {
        char *nl = strchr(p, '\n');
        char *next = nl ? nl + 1 : p + strlen(p);
        if (nl) *nl = 0;
        line++;
        char *row = trim(p);
        p = next;
        if (!*row) continue;
        char *comma = strchr(row, ',');
        if (is_header) {
            is_header = 0;
            if (row[0] == '\xef' && row[1] == '\xbb' && row[2] == '\xbf') row += 3;
            if (!comma || strncasecmp(row, "timestamp", (size_t)(comma - row)) != 0 ||
                (size_t)(comma - row) != 9 || strcasecmp(trim(comma + 1), "value") != 0) {
                rc = mk_diag_set(diag, MK_ENOTOURS, "%s: header is not 'timestamp,value'", path);
                goto out;
            }
            continue;
        }
        if (!comma) {
            rc = mk_diag_set(diag, MK_EPARSE, "%s:%llu: expected 'timestamp,value'", path,
                             (unsigned long long)line);
            goto out;
        }
        *comma = 0;
        char *ts = trim(row), *vs = trim(comma + 1);
        int64_t ms;
        if (mk_det_parse_nab_time(ts, &ms)) {
            rc = mk_diag_set(diag, MK_EPARSE, "%s:%llu: bad timestamp '%s'", path,
                             (unsigned long long)line, ts);
            goto out;
        }
        char *end;
        double v = strtod(vs, &end);
        if (end == vs || *end) {
            rc = mk_diag_set(diag, MK_EPARSE, "%s:%llu: value '%s' is not a number", path,
                             (unsigned long long)line, vs);
            goto out;
        }
        if (c.n > 0 && ms <= c.ts_ms[c.n - 1]) ms = c.ts_ms[c.n - 1] + 1;
        c.ts_ms[c.n] = ms;
        c.v[c.n] = v;
        c.ts_text[c.n] = ts;
        c.v_text[c.n] = vs;
        c.n++;
    }
    if (is_header) rc = mk_diag_set(diag, MK_ENOTOURS, "%s: empty file", path);
out:
    fclose(f);
    if (rc) mk_det_csv_free(&c);
    else *out = c;
    return rc;
}

void mk_det_nab_list_free(char **rel, size_t n)
{
    if (!rel) return;
    for (size_t i = 0; i < n; i++) free(rel[i]);
    free(rel);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

mk_err mk_det_nab_list(const char *dir, char ***rel_out, size_t *n_out, mk_diag *diag)
{
    mk_err rc = MK_OK;
    char **rel = NULL;
    size_t n = 0, cap = 0;
    DIR *top = opendir(dir), *sub = NULL;
    char path[4096];
    if (!top) return mk_diag_set(diag, mk_err_from_errno(errno), "%s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(top)) != NULL) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "labels") == 0 ||
            strcmp(de->d_name, "config") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (!is_dir(path)) continue;
        sub = opendir(path);
        if (!sub) {
            rc = mk_diag_set(diag, mk_err_from_errno(errno), "%s: %s", path, strerror(errno));
            goto out;
        }
        struct dirent *fe;
        while ((fe = readdir(sub)) != NULL) {
            size_t l = strlen(fe->d_name);
            if (fe->d_name[0] == '.' || l < 5 || strcmp(fe->d_name + l - 4, ".csv") != 0)
                continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 64;
                char **r2 = realloc(rel, nc * sizeof *rel);
                if (!r2) {
                    rc = mk_diag_set(diag, MK_ENOMEM, "listing %s: out of memory", dir);
                    goto out;
                }
                rel = r2;
                cap = nc;
            }
            size_t need = strlen(de->d_name) + 1 + l + 1;
            rel[n] = malloc(need);
            if (!rel[n]) {
                rc = mk_diag_set(diag, MK_ENOMEM, "listing %s: out of memory", dir);
                goto out;
            }
            snprintf(rel[n], need, "%s/%s", de->d_name, fe->d_name);
            n++;
        }
        closedir(sub);
        sub = NULL;
    }
    if (n) qsort(rel, n, sizeof *rel, cmp_str);
out:
    if (sub) closedir(sub);
    closedir(top);
    if (rc) {
        mk_det_nab_list_free(rel, n);
        return rc;
    }
    *rel_out = rel;
    *n_out = n;
    return MK_OK;
}

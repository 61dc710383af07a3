/*
 * server/config.c — the YAML configuration (see config.h). The whole file
 * is loaded as a libyaml document; the root mapping is walked key by key,
 * every node carries its start mark, so each error names line:column.
 * Parsing never stops at the first problem: all of them are reported.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "notify.h"
#include "web.h"

typedef struct errlist {
    char *p;
    size_t n, cap;
    int count;
} errlist;

__attribute__((format(printf, 3, 4))) static void err_add(errlist *e, const yaml_node_t *node,
                                                          const char *fmt, ...)
{
    char msg[512];
    int off = 0;
    if (node)
        off = snprintf(msg, sizeof msg, "%zu:%zu: ", node->start_mark.line + 1,
                       node->start_mark.column + 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + off, sizeof msg - (size_t)off, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg);
    /* one problem per line: control characters quoted from the file become '?' */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f) msg[i] = '?';
    e->count++;
    if (e->n + len + 2 > e->cap) {
        size_t cap = (e->cap ? e->cap * 2 : 256) + len + 2;
        char *np = realloc(e->p, cap);
        if (!np) return; /* counted, text lost: still reported as invalid */
        e->p = np;
        e->cap = cap;
    }
    memcpy(e->p + e->n, msg, len);
    e->n += len;
    e->p[e->n++] = '\n';
    e->p[e->n] = '\0';
}

int mk_config_init(mk_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = strdup(MK_CFG_DEFAULT_LISTEN);
    cfg->data_dir = strdup(MK_CFG_DEFAULT_DATA_DIR);
    cfg->fsync = MK_FSYNC_INTERVAL;
    cfg->fsync_interval_ms = 1000;
    cfg->max_body_bytes = MK_CFG_DEFAULT_MAX_BODY_BYTES;
    cfg->max_connections = MK_CFG_DEFAULT_MAX_CONNECTIONS;
    cfg->request_timeout_s = MK_CFG_DEFAULT_REQUEST_TIMEOUT_S;
    cfg->max_inflight_write_bytes = MK_CFG_DEFAULT_MAX_INFLIGHT_WRITE_BYTES;
    cfg->query_max_points = 10000000ull;
    cfg->query_max_series = 1000000ull;
    cfg->query_timeout_ms = 60000;
    return cfg->listen && cfg->data_dir ? 0 : -1;
}

void mk_config_free(mk_config *cfg)
{
    if (!cfg) return;
    free(cfg->listen);
    free(cfg->data_dir);
    free(cfg->keys);
    for (size_t i = 0; i < cfg->n_monitors; i++) {
        free(cfg->monitors[i].name);
        free(cfg->monitors[i].token);
        free(cfg->monitors[i].secret);
    }
    free(cfg->monitors);
    free(cfg->yaml_text);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    mk_rule_set_free(&cfg->rules);
    mk_web_config_free(cfg->status_page);
    memset(cfg, 0, sizeof *cfg);
}

int mk_config_add_key(mk_config *cfg, const char *key, size_t n, mk_role role, const char *name)
{
    mk_cfg_key k;
    memset(&k, 0, sizeof k);
    if (n >= 7 && strncmp(key, "sha256:", 7) == 0) {
        if (mk_sha256_from_hex(key + 7, n - 7, k.digest) != 0) return -1;
    } else {
        if (n == 0) return -1;
        mk_sha256(key, n, k.digest);
    }
    k.role = role;
    if (name) snprintf(k.name, sizeof k.name, "%s", name);
    mk_cfg_key *nk = realloc(cfg->keys, (cfg->n_keys + 1) * sizeof *nk);
    if (!nk) return -1;
    cfg->keys = nk;
    cfg->keys[cfg->n_keys++] = k;
    return 0;
}

int mk_config_key_role(const mk_config *cfg, const char *key, size_t n)
{
    uint8_t d[MK_SHA256_BYTES];
    mk_sha256(key, n, d);
    int role = 0;
    for (size_t i = 0; i < cfg->n_keys; i++) {
        int eq = mk_sha256_equal(d, cfg->keys[i].digest);
        /* branch-free select of the highest matching role */
        int r = (int)cfg->keys[i].role;
        int take = eq & (r > role);
        role = take ? r : role;
    }
    return role;
}

int mk_config_parse_listen(const char *s, char *host, size_t cap, unsigned *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        h = s + 1;
        hlen = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return -1;
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen)) return -1; /* bare IPv6 needs brackets */
    }
    if (hlen + 1 > cap) return -1;
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5) return -1;
    unsigned v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > 65535) return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = v;
    return 0;
}

int mk_config_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

/* ---- node helpers ----------------------------------------------------- */

static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static int want_scalar(errlist *e, const yaml_node_t *n, const char *key)
{
    if (n->type == YAML_SCALAR_NODE) return 1;
    err_add(e, n, "%s: expected a single value, found a %s", key,
            n->type == YAML_MAPPING_NODE ? "mapping" : "list");
    return 0;
}

static int set_str(errlist *e, const yaml_node_t *n, const char *key, char **dst)
{
    if (!want_scalar(e, n, key)) return -1;
    if (n->data.scalar.length == 0) {
        err_add(e, n, "%s: must not be empty", key);
        return -1;
    }
    char *s = strdup(scalar(n));
    if (!s) {
        err_add(e, n, "out of memory");
        return -1;
    }
    free(*dst);
    *dst = s;
    return 0;
}

/* Unsigned integer, optionally with a size suffix (KiB, MiB, GiB, KB, MB, GB)
 * when is_bytes. */
static int get_u64(errlist *e, const yaml_node_t *n, const char *key, int is_bytes, uint64_t lo,
                   uint64_t hi, uint64_t *out)
{
    if (!want_scalar(e, n, key)) return -1;
    const char *s = scalar(n);
    char *end = NULL;
    errno = 0;
    if (*s < '0' || *s > '9') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) goto bad;
    uint64_t mul = 1;
    if (*end) {
        if (!is_bytes) goto bad;
        static const struct { const char *sfx; uint64_t mul; } sfx[] = {
            {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30},
            {"KB", 1000ull}, {"MB", 1000000ull}, {"GB", 1000000000ull}, {"B", 1}};
        size_t i;
        for (i = 0; i < sizeof sfx / sizeof sfx[0]; i++)
            if (strcmp(end, sfx[i].sfx) == 0) break;
        if (i == sizeof sfx / sizeof sfx[0]) goto bad;
        mul = sfx[i].mul;
    }
    if (v > UINT64_MAX / mul) goto bad;
    v *= mul;
    if (v < lo || v > hi) {
        err_add(e, n, "%s: %s is out of range %" PRIu64 "..%" PRIu64, key, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
bad:
    err_add(e, n, "%s: '%s' is not %s", key, s,
            is_bytes ? "a byte count (e.g. 1048576 or 64MiB)" : "a non-negative integer");
    return -1;
}

static const yaml_node_t *node(yaml_document_t *d, int id) { return yaml_document_get_node(d, id); }

/* ---- sections --------------------------------------------------------- */

/* A duration for retention: NUMBER followed by ms, s, m, h, d, w or y
 * (365 d); "0" and "forever" mean keep forever (0). */
static int get_duration(errlist *e, const yaml_node_t *n, const char *key, int64_t *out)
{
    if (!want_scalar(e, n, key)) return -1;
    const char *s = scalar(n);
    if (strcmp(s, "forever") == 0 || strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    static const struct { const char *unit; int64_t ms; } u[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
        {"w", 7 * 86400000LL}, {"y", 365 * 86400000LL}};
    size_t i = 0;
    if (end && !errno && v > 0)
        for (; i < sizeof u / sizeof u[0]; i++)
            if (strcmp(end, u[i].unit) == 0) break;
    if (!end || errno || v == 0 || i == sizeof u / sizeof u[0] || v > (unsigned long long)(INT64_MAX / u[i].ms)) {
        err_add(e, n, "%s: '%s' is not a duration (e.g. 30d, 12h, 1y; 0 or forever = keep)", key, s);
        return -1;
    }
    *out = (int64_t)v * u[i].ms;
    return 0;
}

static void parse_retention(errlist *e, mk_config *cfg, yaml_document_t *d, const yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE) {
        err_add(e, n, "retention: expected a mapping {raw: 30d, rollup_5m: 1y, rollup_1h: 5y, max_bytes: 50GiB}");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = node(d, p->key), *vn = node(d, p->value);
        if (!kn || !vn) continue;
        const char *k = kn->type == YAML_SCALAR_NODE ? scalar(kn) : "";
        if (strcmp(k, "raw") == 0) get_duration(e, vn, "retention.raw", &cfg->retention_raw_ms);
        else if (strcmp(k, "rollup_5m") == 0) get_duration(e, vn, "retention.rollup_5m", &cfg->retention_5m_ms);
        else if (strcmp(k, "rollup_1h") == 0) get_duration(e, vn, "retention.rollup_1h", &cfg->retention_1h_ms);
        else if (strcmp(k, "max_bytes") == 0)
            get_u64(e, vn, "retention.max_bytes", 1, 0, UINT64_MAX, &cfg->retention_max_bytes);
        else if (strcmp(k, "compaction_max_rate") == 0) {
            if (vn->type == YAML_SCALAR_NODE && strcmp(scalar(vn), "unlimited") == 0) cfg->compaction_max_rate = UINT64_MAX;
            else get_u64(e, vn, "retention.compaction_max_rate", 1, 1, UINT64_MAX - 1, &cfg->compaction_max_rate);
        } else
            err_add(e, kn, "retention: unknown key '%s' (known: raw, rollup_5m, rollup_1h, max_bytes, compaction_max_rate)", k);
    }
}

static int parse_role(const char *s, mk_role *r)
{
    if (strcmp(s, "read") == 0) *r = MK_ROLE_READ;
    else if (strcmp(s, "write") == 0) *r = MK_ROLE_WRITE;
    else if (strcmp(s, "admin") == 0) *r = MK_ROLE_ADMIN;
    else return -1;
    return 0;
}

static void add_key_checked(errlist *e, mk_config *cfg, const yaml_node_t *at, const char *key,
                            size_t n, mk_role role, const char *name)
{
    if (n == 0) {
        err_add(e, at, "api_keys: empty key");
        return;
    }
    if (mk_config_add_key(cfg, key, n, role, name) != 0)
        err_add(e, at, "api_keys: '%.16s...' is not a key (sha256: needs 64 hex digits)", key);
}

static void parse_keys(errlist *e, mk_config *cfg, yaml_document_t *d, const yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        err_add(e, n, "api_keys: expected a list");
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *k = node(d, *it);
        if (!k) continue;
        if (k->type == YAML_SCALAR_NODE) {
            add_key_checked(e, cfg, k, scalar(k), k->data.scalar.length, MK_ROLE_ADMIN, NULL);
            continue;
        }
        if (k->type != YAML_MAPPING_NODE) {
            err_add(e, k, "api_keys: each entry is a key or a mapping {key, role, name}");
            continue;
        }
        const yaml_node_t *kv = NULL;
        const char *name = NULL;
        mk_role role = MK_ROLE_ADMIN;
        int ok = 1;
        for (yaml_node_pair_t *p = k->data.mapping.pairs.start; p < k->data.mapping.pairs.top; p++) {
            const yaml_node_t *kn = node(d, p->key), *vn = node(d, p->value);
            if (!kn || !vn) continue;
            if (kn->type != YAML_SCALAR_NODE) {
                err_add(e, kn, "api_keys: keys must be names");
                ok = 0;
                continue;
            }
            const char *key = scalar(kn);
            if (strcmp(key, "key") == 0) {
                if (want_scalar(e, vn, "api_keys.key")) kv = vn; else ok = 0;
            } else if (strcmp(key, "role") == 0) {
                if (!want_scalar(e, vn, "api_keys.role") || parse_role(scalar(vn), &role) != 0) {
                    if (vn->type == YAML_SCALAR_NODE)
                        err_add(e, vn, "api_keys.role: '%s' is not read, write or admin", scalar(vn));
                    ok = 0;
                }
            } else if (strcmp(key, "name") == 0) {
                if (want_scalar(e, vn, "api_keys.name")) name = scalar(vn); else ok = 0;
            } else {
                err_add(e, kn, "api_keys: unknown key '%s' (known: key, role, name)", key);
                ok = 0;
            }
        }
        if (!kv) {
            err_add(e, k, "api_keys: entry without 'key'");
            continue;
        }
        if (ok) add_key_checked(e, cfg, kv, scalar(kv), kv->data.scalar.length, role, name);
    }
}

static void parse_fsync(errlist *e, mk_config *cfg, const yaml_node_t *n)
{
    if (!want_scalar(e, n, "fsync")) return;
    const char *s = scalar(n);
    if (strcmp(s, "always") == 0) cfg->fsync = MK_FSYNC_ALWAYS;
    else if (strcmp(s, "interval") == 0) cfg->fsync = MK_FSYNC_INTERVAL;
    else if (strcmp(s, "off") == 0) cfg->fsync = MK_FSYNC_OFF;
    else err_add(e, n, "fsync: '%s' is not always, interval or off", s);
}

typedef struct u64_field {
    const char *name;
    int is_bytes;
    uint64_t lo, hi;
    void *dst;
    int width; /* 8: uint64_t, 4: unsigned, -8: int64_t */
} u64_field;

static void parse_fields(errlist *e, yaml_document_t *d, const yaml_node_t *n, const char *section,
                         const u64_field *f, size_t n_f)
{
    if (n->type != YAML_MAPPING_NODE) {
        err_add(e, n, "%s: expected a mapping", section);
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = node(d, p->key), *vn = node(d, p->value);
        if (!kn || !vn) continue;
        if (kn->type != YAML_SCALAR_NODE) {
            err_add(e, kn, "%s: keys must be names", section);
            continue;
        }
        size_t i;
        for (i = 0; i < n_f; i++)
            if (strcmp(scalar(kn), f[i].name) == 0) break;
        if (i == n_f) {
            char known[256] = "";
            for (size_t j = 0; j < n_f; j++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", j ? ", " : "",
                         f[j].name);
            err_add(e, kn, "%s: unknown key '%s' (known: %s)", section, scalar(kn), known);
            continue;
        }
        char full[96];
        snprintf(full, sizeof full, "%s.%s", section, f[i].name);
        uint64_t v;
        if (get_u64(e, vn, full, f[i].is_bytes, f[i].lo, f[i].hi, &v) != 0) continue;
        if (f[i].width == 8) *(uint64_t *)f[i].dst = v;
        else if (f[i].width == 4) *(unsigned *)f[i].dst = (unsigned)v;
        else *(int64_t *)f[i].dst = (int64_t)v;
    }
}

static int parse_kind(const char *s, mk_monitor_kind *k)
{
    if (strcmp(s, "kuma") == 0 || strcmp(s, "uptime-kuma") == 0) *k = MK_MON_KUMA;
    else if (strcmp(s, "healthchecks") == 0 || strcmp(s, "hc") == 0) *k = MK_MON_HC;
    else if (strcmp(s, "kener") == 0) *k = MK_MON_KENER;
    else return -1;
    return 0;
}

static int is_token(const char *s)
{
    if (!*s || strlen(s) > 128) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static void parse_monitors(errlist *e, mk_config *cfg, yaml_document_t *d, const yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        err_add(e, n, "monitors: expected a list");
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *m = node(d, *it);
        if (!m) continue;
        if (m->type != YAML_MAPPING_NODE) {
            err_add(e, m, "monitors: each entry is a mapping {name, kind, token|uuid|tag}");
            continue;
        }
        const char *name = NULL, *tok = NULL, *secret = NULL;
        const yaml_node_t *tok_node = NULL;
        mk_monitor_kind kind = 0;
        int ok = 1, has_kind_key = 0, has_tok_key = 0; /* present but bad: already reported */
        for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
            const yaml_node_t *kn = node(d, p->key), *vn = node(d, p->value);
            if (!kn || !vn) continue;
            if (kn->type != YAML_SCALAR_NODE) {
                err_add(e, kn, "monitors: keys must be names");
                ok = 0;
                continue;
            }
            const char *key = scalar(kn);
            if (strcmp(key, "name") == 0) {
                if (want_scalar(e, vn, "monitors.name") && vn->data.scalar.length) name = scalar(vn);
                else { if (vn->type == YAML_SCALAR_NODE) err_add(e, vn, "monitors.name: must not be empty"); ok = 0; }
            } else if (strcmp(key, "kind") == 0) {
                has_kind_key = 1;
                if (!want_scalar(e, vn, "monitors.kind") || parse_kind(scalar(vn), &kind) != 0) {
                    if (vn->type == YAML_SCALAR_NODE)
                        err_add(e, vn, "monitors.kind: '%s' is not kuma, healthchecks or kener", scalar(vn));
                    ok = 0;
                }
            } else if (strcmp(key, "token") == 0 || strcmp(key, "uuid") == 0 || strcmp(key, "tag") == 0) {
                has_tok_key = 1;
                if (!want_scalar(e, vn, "monitors.token")) { ok = 0; continue; }
                if (!is_token(scalar(vn))) {
                    err_add(e, vn, "monitors.%s: '%s' must be 1-128 of A-Z a-z 0-9 - _ .", key, scalar(vn));
                    ok = 0;
                    continue;
                }
                tok = scalar(vn);
                tok_node = vn;
            } else if (strcmp(key, "secret") == 0) {
                if (!want_scalar(e, vn, "monitors.secret")) { ok = 0; continue; }
                if (!is_token(scalar(vn))) {
                    err_add(e, vn, "monitors.secret: must be 1-128 of A-Z a-z 0-9 - _ .");
                    ok = 0;
                    continue;
                }
                secret = scalar(vn);
            } else if (strcmp(key, "interval_s") == 0 || strcmp(key, "grace_s") == 0 ||
                       strcmp(key, "description") == 0) {
                /* for the monitor state machine (another issue): accepted, kept in the file */
            } else {
                err_add(e, kn, "monitors: unknown key '%s' (known: name, kind, token, uuid, tag, "
                               "secret, interval_s, grace_s, description)", key);
                ok = 0;
            }
        }
        if (!name) { err_add(e, m, "monitors: entry without 'name'"); ok = 0; }
        if (!kind && !has_kind_key) { err_add(e, m, "monitors: entry without 'kind'"); ok = 0; }
        if (!tok && !has_tok_key) { err_add(e, m, "monitors: entry without 'token', 'uuid' or 'tag'"); ok = 0; }
        if (!ok) continue;
        for (size_t i = 0; i < cfg->n_monitors; i++) {
            if (strcmp(cfg->monitors[i].name, name) == 0) {
                err_add(e, m, "monitors: duplicate name '%s'", name);
                ok = 0;
            } else if (cfg->monitors[i].kind == kind && strcmp(cfg->monitors[i].token, tok) == 0) {
                err_add(e, tok_node, "monitors: '%s' is already used by monitor '%s'", tok,
                        cfg->monitors[i].name);
                ok = 0;
            }
        }
        if (!ok) continue;
        mk_cfg_monitor *nm = realloc(cfg->monitors, (cfg->n_monitors + 1) * sizeof *nm);
        if (!nm) { err_add(e, m, "out of memory"); continue; }
        cfg->monitors = nm;
        nm[cfg->n_monitors].name = strdup(name);
        nm[cfg->n_monitors].token = strdup(tok);
        nm[cfg->n_monitors].kind = kind;
        nm[cfg->n_monitors].secret = secret ? strdup(secret) : NULL;
        if (!nm[cfg->n_monitors].name || !nm[cfg->n_monitors].token || (secret && !nm[cfg->n_monitors].secret)) {
            free(nm[cfg->n_monitors].name);
            free(nm[cfg->n_monitors].token);
            free(nm[cfg->n_monitors].secret);
            err_add(e, m, "out of memory");
            continue;
        }
        cfg->n_monitors++;
    }
}

/* The rules: list through detect/rule.c, which checks every rule and stops
 * at the first problem; its "FILE:LINE:COL: what" becomes our "LINE:COL:
 * what" (the file name is added by whoever prints the list). */
static void parse_rules(errlist *e, mk_config *cfg, const char *text, size_t n)
{
    mk_diag d = {0};
    mk_rule_set_free(&cfg->rules);
    if (mk_rule_parse_yaml(text, n, "", &cfg->rules, &d) != MK_OK)
        err_add(e, NULL, "%s", d.msg[0] == ':' ? d.msg + 1 : d.msg);
}

/* notify/'s section errors join ours as "LINE:COL: ..." lines. */
static void notify_err(void *ctx, size_t line, size_t col, const char *msg)
{
    err_add(ctx, NULL, "%zu:%zu: %s", line, col, msg);
}

int mk_config_parse(mk_config *cfg, const char *text, size_t n, char **errs)
{
    const yaml_node_t *notify_nodes[3] = {NULL, NULL, NULL}; /* channels, routes, inhibit_rules */
    errlist e = {0};
    yaml_parser_t parser;
    yaml_document_t doc;
    int has_doc = 0;
    const yaml_node_t *tls_node = NULL; /* the last tls_*_file key seen, for the pairing error */
    char *keep = malloc(n + 1);
    if (keep) {
        memcpy(keep, text, n);
        keep[n] = '\0';
        free(cfg->yaml_text);
        cfg->yaml_text = keep;
        cfg->yaml_len = n;
    }
    if (!yaml_parser_initialize(&parser)) {
        err_add(&e, NULL, "out of memory");
        goto out;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, n);
    if (!yaml_parser_load(&parser, &doc)) {
        char msg[300];
        snprintf(msg, sizeof msg, "%zu:%zu: invalid YAML: %s%s%s", parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "syntax error",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        err_add(&e, NULL, "%s", msg);
        yaml_parser_delete(&parser);
        goto out;
    }
    has_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) goto done; /* empty file: all defaults */
    if (root->type != YAML_MAPPING_NODE) {
        if (!(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
            err_add(&e, root, "the configuration must be a mapping of sections (listen:, data_dir:, ...)");
        goto done;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = node(&doc, p->key), *vn = node(&doc, p->value);
        if (!kn || !vn) continue;
        if (kn->type != YAML_SCALAR_NODE) {
            err_add(&e, kn, "section names must be plain words");
            continue;
        }
        const char *k = scalar(kn);
        if (strcmp(k, "listen") == 0) {
            char *s = NULL;
            if (set_str(&e, vn, "listen", &s) == 0) {
                char host[256];
                unsigned port;
                if (mk_config_parse_listen(s, host, sizeof host, &port) != 0) {
                    err_add(&e, vn, "listen: '%s' is not HOST:PORT", s);
                    free(s);
                } else {
                    free(cfg->listen);
                    cfg->listen = s;
                }
            }
        } else if (strcmp(k, "data_dir") == 0) {
            set_str(&e, vn, "data_dir", &cfg->data_dir);
        } else if (strcmp(k, "fsync") == 0) {
            parse_fsync(&e, cfg, vn);
        } else if (strcmp(k, "fsync_interval_ms") == 0) {
            uint64_t v;
            if (get_u64(&e, vn, "fsync_interval_ms", 0, 1, 3600000, &v) == 0)
                cfg->fsync_interval_ms = (int64_t)v;
        } else if (strcmp(k, "api_keys") == 0) {
            parse_keys(&e, cfg, &doc, vn);
        } else if (strcmp(k, "limits") == 0) {
            u64_field f[] = {
                {"max_body_bytes", 1, 1024, 1ull << 34, &cfg->max_body_bytes, 8},
                {"max_connections", 0, 1, 100000, &cfg->max_connections, 4},
                {"request_timeout_s", 0, 1, 86400, &cfg->request_timeout_s, 4},
                {"max_inflight_write_bytes", 1, 1024, 1ull << 36, &cfg->max_inflight_write_bytes, 8},
            };
            parse_fields(&e, &doc, vn, "limits", f, sizeof f / sizeof f[0]);
        } else if (strcmp(k, "query") == 0) {
            u64_field f[] = {
                {"max_points", 0, 1, UINT64_MAX, &cfg->query_max_points, 8},
                {"max_series", 0, 1, UINT64_MAX, &cfg->query_max_series, 8},
                {"timeout_ms", 0, 1, 86400000ull, &cfg->query_timeout_ms, -8},
            };
            parse_fields(&e, &doc, vn, "query", f, sizeof f / sizeof f[0]);
        } else if (strcmp(k, "monitors") == 0) {
            parse_monitors(&e, cfg, &doc, vn);
        } else if (strcmp(k, "retention") == 0) {
            cfg->has_retention = 1;
            parse_retention(&e, cfg, &doc, vn);
        } else if (strcmp(k, "rules") == 0) {
            cfg->has_rules = 1;
            parse_rules(&e, cfg, text, n);
        } else if (strcmp(k, "channels") == 0) {
            cfg->has_channels = 1;
            notify_nodes[0] = vn;
        } else if (strcmp(k, "routes") == 0) {
            notify_nodes[1] = vn;
        } else if (strcmp(k, "inhibit_rules") == 0) {
            notify_nodes[2] = vn;
        } else if (strcmp(k, "status_page") == 0) {
            /* server/web.c's section; its "LINE:COL: ..." lines join ours */
            char *werrs = NULL, *save = NULL;
            mk_web_config_free(cfg->status_page);
            if (mk_web_config_parse(&doc, vn, &cfg->status_page, &werrs) && werrs)
                for (char *l = strtok_r(werrs, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                    err_add(&e, NULL, "%s", l);
            free(werrs);
        } else if (strcmp(k, "tls_cert_file") == 0) {
            tls_node = kn;
            set_str(&e, vn, "tls_cert_file", &cfg->tls_cert_file);
        } else if (strcmp(k, "tls_key_file") == 0) {
            tls_node = kn;
            set_str(&e, vn, "tls_key_file", &cfg->tls_key_file);
        } else {
            err_add(&e, kn, "unknown key '%s' (known: listen, data_dir, fsync, fsync_interval_ms, "
                            "api_keys, limits, query, monitors, retention, rules, channels, routes, inhibit_rules, "
                            "tls_cert_file, tls_key_file, status_page)", k);
        }
    }
    /* notify/ checks its sections, channels first (routes name them); the
     * server parses them again from yaml_text when it starts */
    if (notify_nodes[0] || notify_nodes[1] || notify_nodes[2]) {
        static const char *const names[3] = {"channels", "routes", "inhibit_rules"};
        mk_notify_config nc;
        memset(&nc, 0, sizeof nc);
        for (int i = 0; i < 3; i++)
            if (notify_nodes[i]) mk_notify_config_section(&nc, &doc, notify_nodes[i], names[i], notify_err, &e);
        mk_notify_config_free(&nc);
    }
    /* HTTPS needs both halves: a certificate without its key (or the
     * reverse) would only fail later, at start-up, far from the typo. */
    if (!cfg->tls_cert_file != !cfg->tls_key_file)
        err_add(&e, tls_node, "%s is set but %s is not: HTTPS needs both (or neither)",
                cfg->tls_cert_file ? "tls_cert_file" : "tls_key_file",
                cfg->tls_cert_file ? "tls_key_file" : "tls_cert_file");
done:
    if (has_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
out:
    *errs = e.p;
    return e.count;
}

int mk_config_load(mk_config *cfg, const char *path, char **errs)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc;
    if (!f) {
        errlist e = {0};
        err_add(&e, NULL, "%s: cannot open: %s", path, strerror(errno));
        *errs = e.p;
        return e.count;
    }
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb || cap > (64u << 20)) {
                free(nb ? nb : buf);
                fclose(f);
                errlist e = {0};
                err_add(&e, NULL, "%s: too large or out of memory", path);
                *errs = e.p;
                return e.count;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    rc = mk_config_parse(cfg, buf ? buf : "", n, errs);
    free(buf);
    return rc;
}

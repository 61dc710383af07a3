/*
 * server/config.h — `meerkat serve`'s YAML configuration (libyaml document
 * API). Parsing is pure: text in, a filled mk_config and a list of errors
 * out, each naming line:column (1-based) and what is wrong (unknown key,
 * wrong type, bad value). Fuzzed by tests/fuzz/fuzz_server_config.c.
 *
 *   listen: 127.0.0.1:8086
 *   data_dir: /var/lib/meerkat
 *   fsync: interval            # always | interval | off
 *   fsync_interval_ms: 1000
 *   api_keys:
 *     - k3y                    # plain key, role admin
 *     - sha256:<64 hex>        # stored as its SHA-256
 *     - {key: r34d, role: read, name: grafana}
 *   limits: {max_body_bytes: 64MiB, max_connections: 256, request_timeout_s: 60,
 *            max_inflight_write_bytes: 256MiB}
 *   query: {max_points: 10000000, max_series: 1000000, timeout_ms: 60000}
 *   monitors:
 *     - {name: backup, kind: healthchecks, uuid: 5f3c...}
 *     - {name: web, kind: kuma, token: abc}
 *     - {name: api, kind: kener, tag: api, secret: s3cr3t}   # secret: heartbeat URL
 *   rules: [...]               # parsed by detect/rule.c (mk_rule_parse_yaml); errors name line:column
 *   retention: {raw: 30d, rollup_5m: 1y, rollup_1h: 5y, max_bytes: 50GiB}
 *                              # whole blocks past these go; absent/0 = keep forever
 *   channels: / routes: / inhibit_rules:   # notify/ (notify/notify.h), checked here
 *   tls_cert_file: /etc/meerkat/cert.pem   # HTTPS: both or neither (PEM paths)
 *   tls_key_file: /etc/meerkat/key.pem
 *   status_page: {title, public, groups, services, maintenance}   # server/web.c (web.h)
 */
#ifndef MK_CONFIG_H
#define MK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/db.h"
#include "rule.h"
#include "sha256.h"

typedef enum mk_role { MK_ROLE_READ = 1, MK_ROLE_WRITE = 2, MK_ROLE_ADMIN = 3 } mk_role;

typedef struct mk_cfg_key {
    uint8_t digest[MK_SHA256_BYTES]; /* SHA-256 of the key (plain keys are hashed at load) */
    mk_role role;
    char name[64];                   /* for logs; "" when none given */
} mk_cfg_key;

typedef enum mk_monitor_kind { MK_MON_KUMA = 1, MK_MON_HC, MK_MON_KENER } mk_monitor_kind;

typedef struct mk_cfg_monitor {
    char *name;   /* owned */
    mk_monitor_kind kind;
    char *token;  /* owned: Kuma token, Healthchecks uuid or Kener tag */
    char *secret; /* owned, NULL = none: Kener heartbeat-URL secret */
} mk_cfg_monitor;

#define MK_CFG_DEFAULT_LISTEN "127.0.0.1:8086"
#define MK_CFG_DEFAULT_DATA_DIR "./meerkat-data"
#define MK_CFG_DEFAULT_MAX_BODY_BYTES (64ull << 20)
#define MK_CFG_DEFAULT_MAX_CONNECTIONS 256u
#define MK_CFG_DEFAULT_REQUEST_TIMEOUT_S 60u
#define MK_CFG_DEFAULT_MAX_INFLIGHT_WRITE_BYTES (256ull << 20)

typedef struct mk_config {
    char *listen;                 /* owned; "host:port" */
    char *data_dir;               /* owned */
    mk_fsync_policy fsync;
    int64_t fsync_interval_ms;
    mk_cfg_key *keys;             /* owned array */
    size_t n_keys;
    uint64_t max_body_bytes;      /* request bodies, and gzip bodies once inflated */
    unsigned max_connections;
    unsigned request_timeout_s;   /* idle time before a connection is closed */
    uint64_t max_inflight_write_bytes; /* back-pressure: 503 beyond this */
    uint64_t query_max_points, query_max_series;
    int64_t query_timeout_ms;
    mk_cfg_monitor *monitors;     /* owned array */
    size_t n_monitors;
    /* The rules: list, parsed and validated (owned; empty without one). */
    mk_rule_set rules;
    /* HTTPS: PEM file paths, both set or both NULL (owned; the parser
     * rejects a file naming only one). Read by mk_server_start. */
    char *tls_cert_file, *tls_key_file;
    /* The status_page: section, parsed by server/web.c (owned, opaque; NULL
     * without one). */
    struct mk_web_config *status_page;
    /* Sections other parts of Meerkat will act on; only checked to be present
     * and well-formed YAML for now. The whole text is kept (owned,
     * NUL-terminated, NULL when no file was read) for the modules that will
     * read their own section (retention, channels). */
    /* retention: (engine/retention.c), 0 = keep forever (the default) */
    int64_t retention_raw_ms, retention_5m_ms, retention_1h_ms;
    uint64_t retention_max_bytes;
    /* retention.compaction_max_rate, bytes/s of the background compaction:
     * 0 = not set (the engine's default, 32 MiB/s), UINT64_MAX = unlimited */
    uint64_t compaction_max_rate;
    int has_retention, has_rules, has_channels;
    char *yaml_text;
    size_t yaml_len;
} mk_config;

/* Fills cfg with the defaults (allocates the two strings; 0 or -1 on OOM). */
int mk_config_init(mk_config *cfg);
void mk_config_free(mk_config *cfg);

/*
 * Parses YAML text[0..n) over cfg (which holds defaults or earlier values).
 * Every problem is appended to *errs (malloc'ed, "LINE:COL: message\n" per
 * problem; the caller frees it) and counted in the return value; 0 means
 * the file is valid. fname is only used in messages (may be NULL).
 */
int mk_config_parse(mk_config *cfg, const char *text, size_t n, char **errs);

/* Reads and parses a file; a read error counts as one problem in *errs. */
int mk_config_load(mk_config *cfg, const char *path, char **errs);

/* Adds a key given as plain text or "sha256:<hex>" with a role; 0 or -1
 * (bad hex, OOM). Used for MEERKAT_API_KEYS. */
int mk_config_add_key(mk_config *cfg, const char *key, size_t n, mk_role role, const char *name);

/* Splits "host:port" ("[v6]:port", ":port" = all interfaces). host gets
 * room for cap bytes. Returns 0, or -1 when malformed. */
int mk_config_parse_listen(const char *s, char *host, size_t cap, unsigned *port);

/* 1 if host is a loopback name or address (127.0.0.0/8, ::1, localhost). */
int mk_config_is_loopback(const char *host);

/* Finds the role of a key in constant time per configured key: the key is
 * hashed and compared with every entry without early exit. 0 = no match. */
int mk_config_key_role(const mk_config *cfg, const char *key, size_t n);

#endif

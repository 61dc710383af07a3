/*
 * tools/cli_serve.c — `meerkat serve` (the HTTP server in the foreground)
 * and `meerkat config check FILE`.
 *
 * Settings come from, in increasing priority: built-in defaults, the YAML
 * file given with --config, MEERKAT_API_KEYS (comma-separated keys, each
 * plain or sha256:<hex>, role admin; added to the file's keys), and the
 * command-line flags --data and --listen.
 *
 * Shutdown: SIGTERM and SIGINT are blocked in every thread and taken with
 * sigwait() by the main thread, which then stops accepting connections,
 * lets requests in flight finish, seals the head into blocks (mk_db_flush)
 * and closes the database: exit status 0.
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "meerkat/meerkat.h"
#include "server.h"
#include "slog.h"
#include "tools/cli.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: meerkat serve [--config FILE] [--data DIR] [--listen HOST:PORT]\n\n"
            "Runs the HTTP server in the foreground: InfluxDB 1.x /write, /query, /ping,\n"
            "/api/v2/write, heartbeats (/api/status, /api/push/TOKEN, /hc/UUID), /metrics,\n"
            "/healthz, /ready, /api/monitors and POST /api/admin/flush.\n\n"
            "  --config FILE      YAML configuration (`meerkat config check FILE` validates it)\n"
            "  --data DIR         data directory (default %s)\n"
            "  --listen HOST:PORT address to listen on (default %s; port 0 = any free port)\n"
            "  --version          print the version\n\n"
            "Environment: MEERKAT_API_KEYS=k1,k2 adds admin keys (plain or sha256:<hex>).\n"
            "SIGTERM or SIGINT: finish the requests in flight, seal the head, exit 0.\n",
            MK_CFG_DEFAULT_DATA_DIR, MK_CFG_DEFAULT_LISTEN);
}

/* Adds the comma-separated keys of MEERKAT_API_KEYS; returns -1 on a bad one. */
static int env_keys(mk_config *cfg)
{
    const char *v = getenv("MEERKAT_API_KEYS");
    if (!v) return 0;
    while (*v) {
        const char *comma = strchr(v, ',');
        size_t n = comma ? (size_t)(comma - v) : strlen(v);
        while (n > 0 && (v[0] == ' ')) { v++; n--; }
        while (n > 0 && v[n - 1] == ' ') n--;
        if (n > 0 && mk_config_add_key(cfg, v, n, MK_ROLE_ADMIN, "env") != 0) return -1;
        if (!comma) break;
        v = comma + 1;
    }
    return 0;
}

static const char *fsync_name(mk_fsync_policy p)
{
    return p == MK_FSYNC_ALWAYS ? "always" : p == MK_FSYNC_OFF ? "off" : "interval";
}

int mk_cli_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"data", required_argument, 0, 'd'},
                                         {"listen", required_argument, 0, 'l'},
                                         {"version", no_argument, 0, 'V'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *config_path = NULL, *data = NULL, *listen = NULL;
    int c;
    /* Every query allocates a chunk decoder (a few hundred KiB): above
     * glibc's default mmap threshold each one would be a fresh mmap that
     * the kernel zero-fills, which made a one-series query cost 1.5 ms
     * instead of 0.2 ms (bench_query over a reopened database). Keep such
     * blocks on the heap, and keep freed heap for the next query. */
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:d:l:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'd': data = optarg; break;
        case 'l': listen = optarg; break;
        case 'V': printf("meerkat %s\n", mk_version()); return MK_EXIT_OK;
        case 'h': help(stdout); return MK_EXIT_OK;
        default: help(stderr); return MK_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meerkat serve: unexpected argument '%s'\n", argv[optind]);
        help(stderr);
        return MK_EXIT_USAGE;
    }
    int status = MK_EXIT_FATAL;
    mk_config cfg;
    mk_db *db = NULL;
    mk_server *srv = NULL;
    char *errs = NULL;
    if (mk_config_init(&cfg) != 0) {
        fprintf(stderr, "meerkat serve: out of memory\n");
        return MK_EXIT_FATAL;
    }
    if (config_path) {
        int n = mk_config_load(&cfg, config_path, &errs);
        if (n > 0) {
            fprintf(stderr, "meerkat serve: %s: %d problem%s:\n%s", config_path, n, n == 1 ? "" : "s",
                    errs ? errs : "");
            status = MK_EXIT_USAGE;
            goto out;
        }
    }
    if (data) {
        free(cfg.data_dir);
        cfg.data_dir = strdup(data);
    }
    if (listen) {
        char host[256];
        unsigned port;
        if (mk_config_parse_listen(listen, host, sizeof host, &port) != 0) {
            fprintf(stderr, "meerkat serve: --listen '%s' is not HOST:PORT\n", listen);
            status = MK_EXIT_USAGE;
            goto out;
        }
        free(cfg.listen);
        cfg.listen = strdup(listen);
    }
    if (!cfg.data_dir || !cfg.listen) goto out;
    if (env_keys(&cfg) != 0) {
        fprintf(stderr, "meerkat serve: MEERKAT_API_KEYS: a key is malformed (sha256: needs 64 hex digits)\n");
        status = MK_EXIT_USAGE;
        goto out;
    }

    /* Block the stop signals before any thread exists (the engine's fsync
     * thread, libmicrohttpd's threads): only sigwait below receives them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    mk_options o;
    mk_options_init(&o);
    o.fsync = cfg.fsync;
    o.fsync_interval_ms = cfg.fsync_interval_ms;
    o.log = mk_slog_engine;
    o.retention_raw_ms = cfg.retention_raw_ms;
    o.retention_max_bytes = cfg.retention_max_bytes;
    if (cfg.compaction_max_rate) o.compact_max_bytes_per_s = cfg.compaction_max_rate == UINT64_MAX ? 0 : cfg.compaction_max_rate;
    o.retention_rollup_ms[0] = cfg.retention_5m_ms; /* the default tiers: 5 min, 1 h */
    o.retention_rollup_ms[1] = cfg.retention_1h_ms;
    mk_diag diag = {0};
    mk_err rc = mk_db_open(cfg.data_dir, &o, &db, &diag);
    if (rc != MK_OK) {
        mk_slog(MK_SLOG_ERROR, "cannot open the database", "data_dir", cfg.data_dir, "error", diag.msg,
                (const char *)NULL);
        goto out;
    }
    diag = (mk_diag){0};
    rc = mk_server_start(db, &cfg, &srv, &diag);
    if (rc != MK_OK) {
        mk_slog(MK_SLOG_ERROR, "cannot start the HTTP server", "error", diag.msg, (const char *)NULL);
        goto out;
    }
    char host[256], addr[300], nkeys[16], nmon[16];
    unsigned port;
    mk_config_parse_listen(cfg.listen, host, sizeof host, &port);
    snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, mk_server_port(srv));
    snprintf(nkeys, sizeof nkeys, "%zu", cfg.n_keys);
    snprintf(nmon, sizeof nmon, "%zu", cfg.n_monitors);
    mk_slog(MK_SLOG_INFO, "listening", "addr", addr, "data_dir", cfg.data_dir, "fsync", fsync_name(cfg.fsync),
            "api_keys", nkeys, "monitors", nmon, "tls", cfg.tls_cert_file ? "on" : "off",
            "version", mk_version(), (const char *)NULL);
    if (!mk_config_is_loopback(host) && cfg.n_keys == 0) {
        mk_slog(MK_SLOG_WARN, "listening on a non-loopback address WITHOUT API keys: anyone who can reach "
                              "this port can write, query and flush; set api_keys or MEERKAT_API_KEYS",
                "addr", addr, (const char *)NULL);
        fprintf(stderr, "\n*** WARNING: meerkat serve is reachable beyond this machine (%s) and no API "
                        "keys are configured. ***\n\n", addr);
    }

    int sig = 0;
    sigwait(&stop, &sig);
    mk_slog(MK_SLOG_INFO, "shutting down", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", (const char *)NULL);
    mk_server_stop(srv, (int64_t)cfg.request_timeout_s * 1000);
    srv = NULL;
    rc = mk_db_flush(db, &diag);
    if (rc != MK_OK) {
        mk_slog(MK_SLOG_ERROR, "flush at shutdown failed", "error", diag.msg, (const char *)NULL);
        goto out;
    }
    mk_db *d = db;
    db = NULL;
    rc = mk_db_close(d, &diag);
    if (rc != MK_OK) {
        mk_slog(MK_SLOG_ERROR, "close failed", "error", diag.msg, (const char *)NULL);
        goto out;
    }
    mk_slog(MK_SLOG_INFO, "stopped", (const char *)NULL);
    status = MK_EXIT_OK;
out:
    mk_server_stop(srv, 0);
    if (db) mk_db_close(db, NULL);
    free(errs);
    mk_config_free(&cfg);
    return status;
}

int mk_cli_config(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: meerkat config check FILE\n\nValidates a `meerkat serve` configuration: prints "
               "\"ok\" and exits 0,\nor prints FILE:LINE:COLUMN: problem for each problem and exits 1.\n");
        return MK_EXIT_OK;
    }
    if (argc != 3 || strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "usage: meerkat config check FILE\n");
        return MK_EXIT_USAGE;
    }
    mk_config cfg;
    char *errs = NULL;
    if (mk_config_init(&cfg) != 0) return MK_EXIT_FATAL;
    int n = mk_config_load(&cfg, argv[2], &errs);
    if (n == 0) {
        printf("ok\n");
    } else {
        /* prefix each "L:C: msg" line with the file name */
        const char *p = errs ? errs : "";
        while (*p) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            if (len && p[0] >= '0' && p[0] <= '9') printf("%s:%.*s\n", argv[2], (int)len, p);
            else printf("%.*s\n", (int)len, p);
            p += len + (nl ? 1 : 0);
        }
    }
    free(errs);
    mk_config_free(&cfg);
    return n == 0 ? MK_EXIT_OK : MK_EXIT_PROBLEMS;
}

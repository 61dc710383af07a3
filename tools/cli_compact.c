/*
 * tools/cli_compact.c — `meerkat compact`: seal the head and run compaction
 * to completion over a data directory (no server may have it open).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/cli.h"

int mk_cli_compact(int argc, char **argv);
int mk_cli_parse_duration(const char *s, int64_t *ms);

static void help(FILE *f)
{
    fprintf(f, "usage: meerkat compact --data DIR [--ranges LIST] [--max-rate BYTES_PER_S]\n\n"
               "Seals what the WAL holds, then merges blocks until every\n"
               "compaction window holds one block (finished windows or not).\n"
               "The directory must not be open in a running server.\n\n"
               "  --ranges LIST  compaction ranges, ascending, e.g. 1d,7d (the\n"
               "                 default); each a multiple of the one before\n"
               "                 and of the block span (2 h)\n"
               "  --max-rate N   pace compaction's I/O (bytes read + written)\n"
               "                 to N bytes per second; N may end in KiB, MiB,\n"
               "                 GiB (or K, M, G: the same powers of 1024).\n"
               "                 Default: unpaced\n");
}

/* "90", "90ms", "30s", "5m", "2h", "7d", "2w", "1y" (365 d) to ms. */
int mk_cli_parse_duration(const char *s, int64_t *ms)
{
    char *end;
    long long n = strtoll(s, &end, 10);
    if (end == s || n < 0) return -1;
    int64_t unit;
    if (!*end || strcmp(end, "ms") == 0) unit = 1;
    else if (strcmp(end, "s") == 0) unit = 1000;
    else if (strcmp(end, "m") == 0) unit = 60000;
    else if (strcmp(end, "h") == 0) unit = 3600000;
    else if (strcmp(end, "d") == 0) unit = 86400000;
    else if (strcmp(end, "w") == 0) unit = 7 * 86400000LL;
    else if (strcmp(end, "y") == 0) unit = 365 * 86400000LL;
    else return -1;
    if (n > INT64_MAX / unit) return -1;
    *ms = n * unit;
    return 0;
}

/* "1048576", "512KiB", "32MiB", "1G" (powers of 1024) to bytes; 0 on a
 * bad or zero value. */
static uint64_t parse_rate(const char *s)
{
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || *s == '-') return 0;
    unsigned shift = 0;
    if (!*end) shift = 0;
    else if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0) shift = 10;
    else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0) shift = 20;
    else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0) shift = 30;
    else return 0;
    if (n > (UINT64_MAX >> shift)) return 0;
    return (uint64_t)n << shift;
}

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int mk_cli_compact(int argc, char **argv)
{
    const char *dir = NULL, *ranges = NULL;
    uint64_t max_rate = 0;
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"ranges", required_argument, 0, 'r'},
                                         {"max-rate", required_argument, 0, 'R'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:r:R:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'r': ranges = optarg; break;
        case 'R':
            if (!(max_rate = parse_rate(optarg))) {
                fprintf(stderr, "meerkat compact: --max-rate: '%s' is not a positive number of bytes per second\n", optarg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'h': help(stdout); return MK_EXIT_OK;
        default: help(stderr); return MK_EXIT_USAGE;
        }
    }
    if (!dir || optind != argc) {
        fprintf(stderr, "meerkat compact: --data DIR is required\n");
        help(stderr);
        return MK_EXIT_USAGE;
    }
    mk_options o;
    mk_options_init(&o);
    o.is_compaction_off = 1;
    o.compact_sync_max_bytes_per_s = max_rate;
    o.log = mk_cli_log;
    if (ranges) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", ranges);
        size_t n = 0;
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (n == MK_MAX_COMPACT_LEVELS || mk_cli_parse_duration(t, &o.compact_ranges_ms[n]) || !o.compact_ranges_ms[n]) {
                fprintf(stderr, "meerkat compact: --ranges: '%s' is not a list of at most %d durations\n", ranges, MK_MAX_COMPACT_LEVELS);
                return MK_EXIT_USAGE;
            }
            n++;
        }
    }
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(dir, &o, &db, &d)) {
        fprintf(stderr, "meerkat compact: cannot open %s: %s\n", dir, d.msg);
        return MK_EXIT_FATAL;
    }
    mk_db_stats before, after;
    mk_compact_stats st = {0};
    double t0 = mono_s();
    mk_err rc = mk_db_flush(db, &d);
    mk_db_stats_get(db, &before);
    if (!rc) rc = mk_db_compact(db, &st, &d);
    double secs = mono_s() - t0;
    mk_db_stats_get(db, &after);
    if (rc) {
        fprintf(stderr, "meerkat compact: %s\n", d.msg);
        mk_db_close(db, NULL);
        return MK_EXIT_FATAL;
    }
    if (mk_db_close(db, &d)) {
        fprintf(stderr, "meerkat compact: closing %s: %s\n", dir, d.msg);
        return MK_EXIT_FATAL;
    }
    printf("blocks: %" PRIu64 " -> %" PRIu64 " (%" PRIu64 " merges of %" PRIu64 " blocks)\n", before.n_blocks,
           after.n_blocks, st.n_merges, st.n_blocks_in);
    printf("bytes: %" PRIu64 " -> %" PRIu64 "; samples written: %" PRIu64 " (%" PRIu64 " chunks copied as is)\n",
           st.n_bytes_in, st.n_bytes_out, st.n_samples_out, st.n_chunks_copied);
    printf("time: %.2f s (%.1f M samples/s)\n", secs, secs > 0 ? (double)st.n_samples_out / secs / 1e6 : 0.0);
    return MK_EXIT_OK;
}

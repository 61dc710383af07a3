/*
 * tools/cli_retention.c — `meerkat retention`: apply (or with --dry-run,
 * print) a retention policy over a data directory. Time is the system
 * clock; blocks go whole, only when all of their samples are past the
 * policy (engine/retention.c).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/cli.h"

int mk_cli_retention(int argc, char **argv);
int mk_cli_parse_duration(const char *s, int64_t *ms); /* cli_compact.c */

static void help(FILE *f)
{
    fprintf(f, "usage: meerkat retention --data DIR [--raw DURATION] [--max-bytes N] [--dry-run]\n\n"
               "Drops whole blocks past the policy: raw blocks whose newest\n"
               "sample is older than now - DURATION, then, while the blocks\n"
               "take more than N bytes, the oldest ones (the newest block\n"
               "always stays). With --dry-run nothing is deleted: the blocks\n"
               "that would go are printed. Without a policy nothing goes.\n\n"
               "  --raw DURATION  e.g. 30d, 12h, 1y (365 d)\n"
               "  --max-bytes N   e.g. 500000000, 10G, 512M\n"
               "  --dry-run       print only\n");
}

static int parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || *s == '-') return -1;
    uint64_t unit = 1;
    if (*end == 'K' || *end == 'k') unit = 1ull << 10;
    else if (*end == 'M') unit = 1ull << 20;
    else if (*end == 'G') unit = 1ull << 30;
    else if (*end == 'T') unit = 1ull << 40;
    else if (*end) return -1;
    if (*end && end[1]) return -1;
    if (n > UINT64_MAX / unit) return -1;
    *out = n * unit;
    return 0;
}

static void fmt_time(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else snprintf(buf, cap, "%" PRId64 "ms", ms);
}

static void on_drop(void *ctx, const mk_retention_drop *d)
{
    int is_dry = *(int *)ctx;
    char a[64], b[64];
    fmt_time(d->min_ts_ms, a, sizeof a);
    fmt_time(d->max_ts_ms, b, sizeof b);
    printf("%s block %016" PRIx64 " tier %s, %s .. %s, %" PRIu64 " bytes (%s)\n", is_dry ? "would drop" : "dropped",
           d->seq, d->tier, a, b, d->n_bytes, d->reason);
}

int mk_cli_retention(int argc, char **argv)
{
    const char *dir = NULL;
    int is_dry = 0;
    mk_options o;
    mk_options_init(&o);
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"raw", required_argument, 0, 'r'},
                                         {"max-bytes", required_argument, 0, 'b'},
                                         {"dry-run", no_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:r:b:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'r':
            if (mk_cli_parse_duration(optarg, &o.retention_raw_ms)) {
                fprintf(stderr, "meerkat retention: --raw: cannot read '%s' as a duration\n", optarg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'b':
            if (parse_bytes(optarg, &o.retention_max_bytes)) {
                fprintf(stderr, "meerkat retention: --max-bytes: cannot read '%s' as a size\n", optarg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'n': is_dry = 1; break;
        case 'h': help(stdout); return MK_EXIT_OK;
        default: help(stderr); return MK_EXIT_USAGE;
        }
    }
    if (!dir || optind != argc) {
        fprintf(stderr, "meerkat retention: --data DIR is required\n");
        help(stderr);
        return MK_EXIT_USAGE;
    }
    o.is_compaction_off = 1;
    o.is_read_only = is_dry; /* a dry run takes no lock and changes nothing */
    o.log = mk_cli_log;
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(dir, &o, &db, &d)) {
        fprintf(stderr, "meerkat retention: cannot open %s: %s\n", dir, d.msg);
        return MK_EXIT_FATAL;
    }
    uint64_t n = 0;
    mk_err rc = mk_db_retention(db, is_dry, on_drop, &is_dry, &n, &d);
    if (rc) {
        fprintf(stderr, "meerkat retention: %s\n", d.msg);
        mk_db_close(db, NULL);
        return MK_EXIT_FATAL;
    }
    if (mk_db_close(db, &d)) {
        fprintf(stderr, "meerkat retention: closing %s: %s\n", dir, d.msg);
        return MK_EXIT_FATAL;
    }
    printf("%" PRIu64 " block(s) %s\n", n, is_dry ? "would be dropped" : "dropped");
    return MK_EXIT_OK;
}

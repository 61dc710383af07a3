/*
 * tools/cli_dump.c — `meerkat dump`: print samples as line protocol.
 *
 * The selector is line protocol's series part: `measurement[,tag=value...]
 * [field]` with the same backslash escaping. Tags given must all match (a
 * series may have more); no field means every field. Output is one line per
 * sample, `measurement,tags field=value ts` with ts in milliseconds, which
 * `meerkat import --precision ms` loads back.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

static void help(FILE *f)
{
    fprintf(f, "usage: meerkat dump --data DIR SELECTOR [--from TIME] [--to TIME]\n\n"
               "Prints the samples of every series matching SELECTOR with\n"
               "FROM <= time < TO as line protocol with millisecond timestamps.\n\n"
               "  SELECTOR    measurement[,tag=value...][ field], e.g.\n"
               "              'svc,service=checkout p95_ms' or just 'svc'\n"
               "  --from TIME start (default: the beginning of time)\n"
               "  --to TIME   end, exclusive (default: the end of time)\n"
               "              TIME is ms since the epoch, a number with a unit\n"
               "              (1700000000s, ...), or RFC 3339 (2026-11-30T00:00:00Z)\n");
}

/* Splits an escaped token at the first unescaped char in stops; unescapes
 * into out. Returns pointer to the stop char (or the end). */
static const char *token(const char *s, const char *stops, char *out, size_t cap)
{
    size_t n = 0;
    while (*s && !strchr(stops, *s)) {
        if (*s == '\\' && s[1] && strchr(", =\\", s[1])) s++;
        if (n + 1 < cap) out[n++] = *s;
        s++;
    }
    out[n] = 0;
    return s;
}

#define MAX_TAGS 64

int mk_cli_dump(int argc, char **argv)
{
    const char *dir = NULL;
    int64_t from = INT64_MIN, to = INT64_MAX;
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"from", required_argument, 0, 'f'},
                                         {"to", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:f:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'f':
        case 't':
            if (mk_cli_parse_time(optarg, c == 'f' ? &from : &to)) {
                fprintf(stderr, "meerkat dump: --%s: cannot read '%s' as a time\n", c == 'f' ? "from" : "to", optarg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'h': help(stdout); return MK_EXIT_OK;
        default: help(stderr); return MK_EXIT_USAGE;
        }
    }
    if (!dir || optind != argc - 1) {
        fprintf(stderr, "meerkat dump: --data DIR and one SELECTOR are required\n");
        help(stderr);
        return MK_EXIT_USAGE;
    }
    /* parse the selector */
    static char meas[4096], keys[MAX_TAGS][1024], vals[MAX_TAGS][1024], field[1024];
    mk_matcher m[MAX_TAGS];
    size_t n_m = 0;
    const char *s = token(argv[optind], ", ", meas, sizeof meas);
    while (*s == ',') {
        if (n_m == MAX_TAGS) { fprintf(stderr, "meerkat dump: at most %d tags in a selector\n", MAX_TAGS); return MK_EXIT_USAGE; }
        s = token(s + 1, "=, ", keys[n_m], sizeof keys[0]);
        if (*s != '=') { fprintf(stderr, "meerkat dump: selector: expected '=' after tag key '%s'\n", keys[n_m]); return MK_EXIT_USAGE; }
        s = token(s + 1, ", ", vals[n_m], sizeof vals[0]);
        m[n_m] = (mk_matcher){keys[n_m], vals[n_m], 0};
        n_m++;
    }
    field[0] = 0;
    if (*s == ' ') s = token(s + 1, " ", field, sizeof field);
    if (*s || !meas[0]) {
        fprintf(stderr, "meerkat dump: cannot read selector '%s' (expected measurement[,tag=value...][ field])\n", argv[optind]);
        return MK_EXIT_USAGE;
    }

    mk_db *db = mk_cli_open_read_only("dump", dir);
    if (!db) return MK_EXIT_FATAL;
    mk_diag d = {0};
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    int status = MK_EXIT_OK;
    if (mk_db_find_series(db, meas, m, n_m, field[0] ? field : NULL, &ids, &n_ids, &d)) {
        fprintf(stderr, "meerkat dump: %s\n", d.msg);
        mk_db_close(db, NULL);
        return MK_EXIT_FATAL;
    }
    if (n_ids == 0) fprintf(stderr, "meerkat dump: no series matches '%s'\n", argv[optind]);
    static char key[65536];
    for (size_t i = 0; i < n_ids; i++) {
        size_t klen;
        if (mk_db_series_key(db, ids[i], key, sizeof key, &klen, &d)) continue;
        /* canonical key is "prefix field": split at its last unescaped space */
        char *sp = NULL;
        for (char *p = key; *p; p++) {
            if (*p == '\\' && p[1]) { p++; continue; }
            if (*p == ' ') sp = p;
        }
        if (!sp) continue;
        *sp = 0;
        mk_iter *it = NULL;
        if (mk_db_iter(db, ids[i], from, to, &it, &d)) { fprintf(stderr, "meerkat dump: %s\n", d.msg); status = MK_EXIT_FATAL; break; }
        for (;;) {
            const int64_t *ts;
            const double *v;
            size_t n;
            mk_err rc = mk_iter_next(it, &ts, &v, &n, &d);
            if (rc) { fprintf(stderr, "meerkat dump: %s (skipped)\n", d.msg); status = MK_EXIT_PROBLEMS; continue; }
            if (n == 0) break;
            for (size_t k = 0; k < n; k++) printf("%s %s=%.17g %" PRId64 "\n", key, sp + 1, v[k], ts[k]);
        }
        mk_iter_free(it);
    }
    free(ids);
    mk_db_close(db, NULL);
    return status;
}

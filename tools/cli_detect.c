/*
 * tools/cli_detect.c — `meerkat nab` (the default detector over a corpus in
 * NAB's layout, through the production write and read paths) and
 * `meerkat score` (anomaly score per stored sample of selected series).
 *
 * Both score through mk_det_score_series: samples read back from the
 * database with mk_db_iter, seasonal baselines from chunk summaries — the
 * path online detection and backfill share.
 */

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "detect/det_nab.h"
#include "detect/detector.h"
#include "tools/cli.h"
#include "util.h"

#define MAX_PARAMS 64

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* mkdir -p of the directory part of path. */
static int mkdirs_for(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return 0;
}

typedef struct collect {
    const mk_det_csv *csv;
    double *scores;
    size_t n;
    int is_mismatch;
} collect;

static int collect_emit(void *ctx, int64_t ts_ms, double v, double score)
{
    collect *c = ctx;
    (void)v;
    if (c->n >= c->csv->n || c->csv->ts_ms[c->n] != ts_ms) {
        c->is_mismatch = 1;
        return 1;
    }
    c->scores[c->n++] = score;
    return 0;
}

/* Imports one file as series nab,category=..,file=.. value, seals it, scores
 * it back from the database and writes the results CSV. */
static mk_err nab_one(mk_db *db, const char *in_dir, const char *out_dir, const char *rel,
                      const char *det_name, const mk_det_params *params, size_t *n_rows,
                      mk_diag *diag)
{
    mk_err rc = MK_OK;
    mk_det_csv csv = {0};
    collect col = {0};
    FILE *f = NULL;
    char path[4096], cat[1024], name[1024];
    const char *slash = strchr(rel, '/');
    snprintf(cat, sizeof cat, "%.*s", (int)(slash - rel), rel);
    snprintf(name, sizeof name, "%s", slash + 1);
    snprintf(path, sizeof path, "%s/%s", in_dir, rel);
    rc = mk_det_csv_read(path, &csv, diag);
    if (rc) goto out;
    mk_tag tags[2] = {{"category", cat}, {"file", name}};
    uint64_t sid;
    rc = mk_db_series(db, "nab", tags, 2, "value", &sid, diag);
    if (rc) goto out;
    enum { BATCH = 4096 };
    mk_point pts[BATCH];
    for (size_t i = 0; i < csv.n;) {
        size_t k = 0;
        for (; k < BATCH && i < csv.n; k++, i++) pts[k] = (mk_point){sid, csv.ts_ms[i], csv.v[i]};
        rc = mk_db_write(db, pts, k, diag);
        if (rc) goto out;
    }
    rc = mk_db_flush(db, diag);
    if (rc) goto out;
    col.csv = &csv;
    col.scores = malloc((csv.n ? csv.n : 1) * sizeof *col.scores);
    if (!col.scores) {
        rc = mk_diag_set(diag, MK_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    rc = mk_det_score_series(db, sid, INT64_MIN, INT64_MAX, params, collect_emit, &col, diag);
    if (rc) goto out;
    if (col.is_mismatch || col.n != csv.n) {
        rc = mk_diag_set(diag, MK_EINTERNAL,
                         "%s: the database gave back %zu samples of %zu, or other timestamps",
                         path, col.n, csv.n);
        goto out;
    }
    snprintf(path, sizeof path, "%s/%s/%s_%s", out_dir, cat, det_name, name);
    if (mkdirs_for(path) != 0 || !(f = fopen(path, "w"))) {
        rc = mk_diag_set(diag, MK_EIO, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    fputs("timestamp,value,anomaly_score\n", f);
    for (size_t i = 0; i < csv.n; i++)
        fprintf(f, "%s,%s,%.9g\n", csv.ts_text[i], csv.v_text[i], col.scores[i]);
    if (fclose(f) != 0) {
        f = NULL;
        rc = mk_diag_set(diag, MK_EIO, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    f = NULL;
    *n_rows += csv.n;
out:
    if (f) fclose(f);
    free(col.scores);
    mk_det_csv_free(&csv);
    return rc;
}

static void nab_help(FILE *f)
{
    fprintf(f,
            "usage: meerkat nab --in DIR --out DIR [--detector NAME] [--param NAME=VALUE]...\n\n"
            "Runs the default anomaly detector over every DIR/<category>/<name>.csv of a\n"
            "corpus in the Numenta Anomaly Benchmark's layout (columns timestamp,value;\n"
            "the folders labels/ and config/ and CSVs with other headers are skipped).\n"
            "Each file is imported into a temporary database, sealed, read back and\n"
            "scored there; the results go to OUT/<category>/<NAME>_<name>.csv with the\n"
            "columns timestamp,value,anomaly_score (timestamps as in the input).\n\n"
            "  --in DIR          corpus (required)\n"
            "  --out DIR         results (required; created)\n"
            "  --detector NAME   prefix of result files (default meerkat)\n"
            "  --param N=V       override one detector parameter (for experiments)\n"
            "  --tmp DIR         where the temporary database goes (default $TMPDIR or /tmp)\n\n"
            "Exit status: 0 done, 2 usage error, 3 a file could not be read or written.\n");
}

int mk_cli_nab(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *det_name = "meerkat", *tmp = getenv("TMPDIR");
    mk_det_params params;
    mk_det_params_init(&params);
    mk_diag diag = {0};
    static const struct option opts[] = {{"in", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         {"detector", required_argument, 0, 'n'},
                                         {"param", required_argument, 0, 'p'},
                                         {"tmp", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:n:p:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'n': det_name = optarg; break;
        case 't': tmp = optarg; break;
        case 'p':
            if (mk_det_params_parse(&params, optarg, &diag)) {
                fprintf(stderr, "meerkat nab: %s\n", diag.msg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'h': nab_help(stdout); return MK_EXIT_OK;
        default: nab_help(stderr); return MK_EXIT_USAGE;
        }
    }
    if (!in || !out || optind != argc || strchr(det_name, '/')) {
        fprintf(stderr, "meerkat nab: --in DIR and --out DIR are required\n");
        nab_help(stderr);
        return MK_EXIT_USAGE;
    }
    if (!tmp || !*tmp) tmp = "/tmp";
    char **rel = NULL;
    size_t n_rel = 0, n_files = 0, n_rows = 0;
    mk_db *db = NULL;
    int status = MK_EXIT_OK;
    char dbdir[4096];
    int has_dbdir = 0;
    double t0 = now_s();
    mk_err rc = mk_det_nab_list(in, &rel, &n_rel, &diag);
    if (rc) {
        fprintf(stderr, "meerkat nab: %s\n", diag.msg);
        return MK_EXIT_FATAL;
    }
    snprintf(dbdir, sizeof dbdir, "%s/meerkat-nab.XXXXXX", tmp);
    if (!mkdtemp(dbdir)) {
        fprintf(stderr, "meerkat nab: cannot make a temporary directory under %s: %s\n", tmp,
                strerror(errno));
        status = MK_EXIT_FATAL;
        goto done;
    }
    has_dbdir = 1;
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "meerkat nab: cannot make %s: %s\n", out, strerror(errno));
        status = MK_EXIT_FATAL;
        goto done;
    }
    mk_options o;
    mk_options_init(&o);
    o.has_wal = 0;
    o.fsync = MK_FSYNC_OFF;
    o.log = mk_cli_log;
    rc = mk_db_open(dbdir, &o, &db, &diag);
    if (rc) {
        fprintf(stderr, "meerkat nab: cannot open the temporary database %s: %s\n", dbdir,
                diag.msg);
        status = MK_EXIT_FATAL;
        goto done;
    }
    for (size_t i = 0; i < n_rel; i++) {
        diag = (mk_diag){0};
        rc = nab_one(db, in, out, rel[i], det_name, &params, &n_rows, &diag);
        if (rc == MK_ENOTOURS) {
            fprintf(stderr, "meerkat nab: skipped: %s\n", diag.msg);
            continue;
        }
        if (rc) {
            fprintf(stderr, "meerkat nab: %s\n", diag.msg);
            status = MK_EXIT_FATAL;
            goto done;
        }
        n_files++;
    }
    if (n_files == 0) {
        fprintf(stderr, "meerkat nab: no timestamp,value CSV files under %s/<category>/\n", in);
        status = MK_EXIT_FATAL;
        goto done;
    }
    printf("files: %zu\nrows: %zu\nseconds: %.3f\n", n_files, n_rows, now_s() - t0);
done:
    if (db) {
        mk_diag cd = {0};
        if (mk_db_close(db, &cd)) fprintf(stderr, "meerkat nab: closing: %s\n", cd.msg);
    }
    if (has_dbdir) nftw(dbdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    mk_det_nab_list_free(rel, n_rel);
    return status;
}

/* ---- meerkat score --------------------------------------------------- */

static int print_emit(void *ctx, int64_t ts_ms, double v, double score)
{
    (void)ctx;
    printf("%" PRId64 ",%.17g,%.6f\n", ts_ms, v, score);
    return 0;
}

static void score_help(FILE *f)
{
    fprintf(f,
            "usage: meerkat score --data DIR [--from T] [--to T] [--param N=V]... SELECTOR\n\n"
            "Prints ts,value,score (ts in ms) for every sample of each series matching\n"
            "SELECTOR, scored by the default detector exactly as backfill does.\n"
            "SELECTOR is `measurement[,tag=value|,tag!=value...] [field]`, as one\n"
            "argument or two (e.g. 'svc,service=api p95_ms'). With several series each\n"
            "is preceded by a line `# <series key>`.\n\n"
            "  --data DIR   data directory (required, opened read-only)\n"
            "  --from T     first time scored (ms, 10s-style units or RFC 3339); default all\n"
            "  --to T       end of the range (exclusive); default all\n"
            "  --param N=V  override one detector parameter\n\n"
            "Exit status: 0 done, 1 no series matched, 2 usage error, 3 read failure.\n");
}

int mk_cli_score(int argc, char **argv)
{
    const char *dir = NULL;
    int64_t from = INT64_MIN, to = INT64_MAX;
    mk_det_params params;
    mk_det_params_init(&params);
    mk_diag diag = {0};
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"from", required_argument, 0, 'f'},
                                         {"to", required_argument, 0, 't'},
                                         {"param", required_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:f:t:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'f':
        case 't':
            if (mk_cli_parse_time(optarg, c == 'f' ? &from : &to)) {
                fprintf(stderr, "meerkat score: bad time '%s'\n", optarg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'p':
            if (mk_det_params_parse(&params, optarg, &diag)) {
                fprintf(stderr, "meerkat score: %s\n", diag.msg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'h': score_help(stdout); return MK_EXIT_OK;
        default: score_help(stderr); return MK_EXIT_USAGE;
        }
    }
    if (!dir || optind >= argc || argc - optind > 2) {
        fprintf(stderr, "meerkat score: --data DIR and a SELECTOR are required\n");
        score_help(stderr);
        return MK_EXIT_USAGE;
    }
    /* Join the selector's words, then split: head (measurement + matchers)
     * and optional field. */
    char sel[2048];
    if (argc - optind == 2) snprintf(sel, sizeof sel, "%s %s", argv[optind], argv[optind + 1]);
    else snprintf(sel, sizeof sel, "%s", argv[optind]);
    char *field = strchr(sel, ' ');
    if (field) {
        *field++ = 0;
        while (*field == ' ') field++;
        if (!*field || strchr(field, ' ')) {
            fprintf(stderr, "meerkat score: selector '%s': expected one field after a space\n",
                    argv[optind]);
            return MK_EXIT_USAGE;
        }
    }
    mk_matcher m[32];
    size_t n_m = 0;
    char *meas = sel, *p = strchr(sel, ',');
    if (p) *p++ = 0;
    while (p && *p) {
        char *next = strchr(p, ',');
        if (next) *next++ = 0;
        char *eq = strchr(p, '=');
        if (!eq || eq == p || n_m == 32) {
            fprintf(stderr, "meerkat score: bad tag matcher '%s' (want tag=value or tag!=value)\n",
                    p);
            return MK_EXIT_USAGE;
        }
        int is_neg = eq[-1] == '!';
        if (is_neg) eq[-1] = 0;
        *eq = 0;
        m[n_m++] = (mk_matcher){p, eq + 1, is_neg};
        p = next;
    }
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    int status = MK_EXIT_OK;
    mk_err rc;
    mk_db *db = mk_cli_open_read_only("score", dir);
    if (!db) return MK_EXIT_FATAL;
    diag = (mk_diag){0};
    rc = mk_db_find_series(db, *meas ? meas : NULL, m, n_m, field, &ids, &n_ids, &diag);
    if (rc) {
        fprintf(stderr, "meerkat score: %s\n", diag.msg);
        status = MK_EXIT_FATAL;
        goto out;
    }
    if (n_ids == 0) {
        fprintf(stderr, "meerkat score: no series matches '%s'\n", argv[optind]);
        status = MK_EXIT_PROBLEMS;
        goto out;
    }
    printf("ts,value,score\n");
    for (size_t i = 0; i < n_ids; i++) {
        if (n_ids > 1) {
            char key[1024];
            size_t len;
            if (mk_db_series_key(db, ids[i], key, sizeof key, &len, &diag) == MK_OK)
                printf("# %s\n", key);
        }
        rc = mk_det_score_series(db, ids[i], from, to, &params, print_emit, NULL, &diag);
        if (rc) {
            fprintf(stderr, "meerkat score: %s\n", diag.msg);
            status = MK_EXIT_FATAL;
            goto out;
        }
    }
out:
    free(ids);
    mk_diag cd = {0};
    mk_db_close(db, &cd);
    return status;
}

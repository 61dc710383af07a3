/*
 * tools/cli_inspect.c — `meerkat inspect` and `meerkat verify`.
 *
 * Both read the files of a data directory directly (blocks, index, WAL)
 * rather than through an open database, so they work on a directory a
 * server is using, and on a damaged one: verify must be able to name damage
 * that would make an open fail.
 */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/block.h"
#include "engine/codec.h"
#include "engine/format.h"
#include "engine/index.h"
#include "engine/rollup.h"
#include "engine/wal.h"
#include "tools/cli.h"

typedef struct names {
    char **v;
    size_t n;
} names;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names in dir ending with suffix (full paths). */
static int list_dir(const char *dir, const char *suffix, names *out)
{
    out->v = NULL;
    out->n = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    size_t sl = strlen(suffix), cap = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= sl || strcmp(e->d_name + l - sl, suffix) != 0) continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(out->v, cap * sizeof *p);
            if (!p) break;
            out->v = p;
        }
        size_t n = strlen(dir) + l + 2;
        out->v[out->n] = malloc(n);
        if (!out->v[out->n]) break;
        snprintf(out->v[out->n++], n, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (out->n) qsort(out->v, out->n, sizeof *out->v, cmp_str); /* qsort(NULL, 0) is undefined */
    return 0;
}

static void names_free(names *n)
{
    for (size_t i = 0; i < n->n; i++) free(n->v[i]);
    free(n->v);
}

static uint64_t file_bytes(const char *path, int is_allocated)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    return is_allocated ? (uint64_t)sb.st_blocks * 512 : (uint64_t)sb.st_size;
}

static uint64_t dir_bytes(const char *dir, int is_allocated)
{
    uint64_t tot = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0) continue;
        tot += is_allocated ? (uint64_t)sb.st_blocks * 512 : (uint64_t)sb.st_size;
        if (S_ISDIR(sb.st_mode)) tot += dir_bytes(p, is_allocated);
    }
    closedir(d);
    return tot;
}

/* The rollup tier directories DIR/rollup/<step ms> (full paths, sorted by
 * step) with their steps. */
typedef struct tiers {
    char path[8][4400];
    int64_t step[8];
    size_t n;
} tiers;

static void list_tiers(const char *dir, tiers *t)
{
    t->n = 0;
    char root[4096];
    snprintf(root, sizeof root, "%s/rollup", dir);
    DIR *d = opendir(root);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && t->n < 8) {
        char *end;
        long long s = strtoll(e->d_name, &end, 10);
        if (*end || s <= 0 || end == e->d_name) continue;
        size_t i = t->n++;
        while (i > 0 && t->step[i - 1] > s) {
            t->step[i] = t->step[i - 1];
            memcpy(t->path[i], t->path[i - 1], sizeof t->path[i]);
            i--;
        }
        t->step[i] = s;
        snprintf(t->path[i], sizeof t->path[i], "%s/%s", root, e->d_name);
    }
    closedir(d);
}

static void fmt_time(int64_t ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) { snprintf(buf, cap, "%" PRId64, ms); return; }
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int parse_data_arg(int argc, char **argv, const char *cmd, const char **dir, int *is_verbose,
                          void (*help)(FILE *))
{
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"verbose", no_argument, 0, 'v'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    *dir = NULL;
    while ((c = getopt_long(argc, argv, "d:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'd': *dir = optarg; break;
        case 'v': *is_verbose = 1; break;
        case 'h': help(stdout); return MK_EXIT_OK + 100;
        default: help(stderr); return MK_EXIT_USAGE;
        }
    }
    if (!*dir) {
        fprintf(stderr, "meerkat %s: --data DIR is required\n", cmd);
        help(stderr);
        return MK_EXIT_USAGE;
    }
    struct stat sb;
    if (stat(*dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "meerkat %s: %s: no such data directory\n", cmd, *dir);
        return MK_EXIT_FATAL;
    }
    return -1;
}

/* ---- inspect ----------------------------------------------------------- */

static void inspect_help(FILE *f)
{
    fprintf(f, "usage: meerkat inspect --data DIR [--verbose]\n\n"
               "Shows the blocks of DIR (time range, chunks, samples, bytes, bytes per\n"
               "sample), the codecs chosen for their chunks, the series index and the\n"
               "WAL, and bytes per sample of the whole directory. --verbose lists every\n"
               "block. Reads the files directly, so it works beside a running server.\n");
}

typedef struct codec_use {
    uint64_t chunks, samples, bytes;
} codec_use;

static int wal_count_cb(void *ctx, uint8_t type, const uint8_t *p, size_t len, uint64_t seg)
{
    (void)seg;
    uint64_t *c = ctx;
    c[0]++;
    if (type == MK_WAL_REC_SAMPLES && len >= 4) c[1] += mk_get_u32(p);
    return 0;
}

static void quiet_log(void *ctx, int level, const char *msg)
{
    uint64_t *n = ctx;
    (void)level;
    (*n)++;
    fprintf(stderr, "  %s\n", msg);
}

int mk_cli_inspect(int argc, char **argv)
{
    const char *dir;
    int is_verbose = 0;
    int r = parse_data_arg(argc, argv, "inspect", &dir, &is_verbose, inspect_help);
    if (r >= 100) return MK_EXIT_OK;
    if (r >= 0) return r;
    char path[4096];
    mk_env *env = mk_env_default();

    mk_index *ix = NULL;
    mk_diag d = {0};
    uint32_t n_series = 0;
    if (mk_index_new(&ix) == MK_OK) {
        mk_err rc = mk_index_load(ix, env, dir, &d);
        if (rc && rc != MK_ENOTFOUND) printf("index: unreadable: %s\n", d.msg);
        n_series = mk_index_count(ix);
    }
    snprintf(path, sizeof path, "%s/index.mki", dir);
    printf("data directory: %s\n", dir);
    printf("series in index.mki: %u (%" PRIu64 " bytes)\n", n_series, file_bytes(path, 0));
    mk_index_free(ix);

    snprintf(path, sizeof path, "%s/blocks", dir);
    names blocks;
    list_dir(path, ".mkb", &blocks);
    codec_use ts_use[256], val_use[256];
    memset(ts_use, 0, sizeof ts_use);
    memset(val_use, 0, sizeof val_use);
    uint64_t tot_samples = 0, tot_chunks = 0, tot_bytes = 0, payload_bytes = 0;
    int64_t tmin = INT64_MAX, tmax = INT64_MIN;
    if (is_verbose) printf("\n%-18s %-20s %-20s %8s %10s %10s %8s\n", "block", "from", "to", "chunks", "samples", "bytes", "B/sample");
    for (size_t i = 0; i < blocks.n; i++) {
        mk_block *b = NULL;
        if (mk_block_open(env, blocks.v[i], &b, &d)) { printf("%s: unreadable: %s\n", blocks.v[i], d.msg); continue; }
        size_t n;
        const mk_block_chunk *c = mk_block_chunks(b, &n);
        uint64_t samples = 0;
        for (size_t k = 0; k < n; k++) {
            samples += c[k].sum.count;
            payload_bytes += c[k].len;
            const uint8_t *p;
            uint8_t tc, vc;
            if (mk_block_payload(b, &c[k], &p, NULL) == MK_OK && mk_codec_ids(p, c[k].len, &tc, &vc) == MK_OK) {
                ts_use[tc].chunks++;
                ts_use[tc].samples += c[k].sum.count;
                val_use[vc].chunks++;
                val_use[vc].samples += c[k].sum.count;
                val_use[vc].bytes += c[k].len;
            }
        }
        uint64_t bytes = mk_block_file_bytes(b);
        if (mk_block_min_ts(b) < tmin) tmin = mk_block_min_ts(b);
        if (mk_block_max_ts(b) > tmax) tmax = mk_block_max_ts(b);
        if (is_verbose) {
            char f[32], t[32];
            fmt_time(mk_block_min_ts(b), f, sizeof f);
            fmt_time(mk_block_max_ts(b), t, sizeof t);
            const char *base = strrchr(blocks.v[i], '/');
            printf("%-18.16s %-20s %-20s %8zu %10" PRIu64 " %10" PRIu64 " %8.3f\n", base ? base + 1 : blocks.v[i], f, t, n,
                   samples, bytes, samples ? (double)bytes / samples : 0.0);
        }
        tot_samples += samples;
        tot_chunks += n;
        tot_bytes += bytes;
        mk_block_close(b);
    }
    printf("blocks: %zu, chunks: %" PRIu64 ", samples: %" PRIu64 ", bytes: %" PRIu64 " (%.3f bytes/sample; chunk payloads %.3f)\n",
           blocks.n, tot_chunks, tot_samples, tot_bytes, tot_samples ? (double)tot_bytes / tot_samples : 0.0,
           tot_samples ? (double)payload_bytes / tot_samples : 0.0);
    if (tot_samples) {
        char f[32], t[32];
        fmt_time(tmin, f, sizeof f);
        fmt_time(tmax, t, sizeof t);
        printf("time range: %s .. %s\n", f, t);
        printf("codecs (chunks, samples; value codecs with payload bytes/sample):\n");
        for (int k = 0; k < 256; k++)
            if (ts_use[k].chunks)
                printf("  timestamps %-14s %8" PRIu64 " chunks %12" PRIu64 " samples\n", mk_codec_name((uint8_t)k), ts_use[k].chunks, ts_use[k].samples);
        for (int k = 0; k < 256; k++)
            if (val_use[k].chunks)
                printf("  values     %-14s %8" PRIu64 " chunks %12" PRIu64 " samples %8.3f B/sample\n", mk_codec_name((uint8_t)k), val_use[k].chunks,
                       val_use[k].samples, (double)val_use[k].bytes / val_use[k].samples);
    }
    names_free(&blocks);

    /* rollup tiers */
    tiers tr;
    list_tiers(dir, &tr);
    for (size_t t = 0; t < tr.n; t++) {
        names rb;
        list_dir(tr.path[t], ".mkb", &rb);
        uint64_t n_buckets = 0, n_ch = 0, bytes = 0;
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (size_t i = 0; i < rb.n; i++) {
            mk_block *b = NULL;
            if (mk_block_open(env, rb.v[i], &b, &d)) { printf("%s: unreadable: %s\n", rb.v[i], d.msg); continue; }
            size_t n;
            const mk_block_chunk *c = mk_block_chunks(b, &n);
            for (size_t k = 0; k < n; k++) n_buckets += c[k].sum.count;
            n_ch += n;
            bytes += mk_block_file_bytes(b);
            if (mk_block_min_ts(b) < lo) lo = mk_block_min_ts(b);
            if (mk_block_max_ts(b) > hi) hi = mk_block_max_ts(b);
            mk_block_close(b);
        }
        char f[32] = "-", to[32] = "-";
        if (n_buckets) {
            fmt_time(lo, f, sizeof f);
            fmt_time(hi + tr.step[t] - 1, to, sizeof to);
        }
        printf("tier %" PRId64 " ms: %zu blocks, %" PRIu64 " chunks, %" PRIu64 " buckets, %" PRIu64 " bytes (%.2f bytes/bucket; "
               "%.4f bytes per raw sample it stands for at 10 s), %s .. %s\n",
               tr.step[t], rb.n, n_ch, n_buckets, bytes, n_buckets ? (double)bytes / (double)n_buckets : 0.0,
               n_buckets ? (double)bytes / ((double)n_buckets * ((double)tr.step[t] / 10000.0)) : 0.0, f, to);
        names_free(&rb);
    }

    snprintf(path, sizeof path, "%s/wal", dir);
    names segs;
    list_dir(path, ".wal", &segs);
    uint64_t wal_bytes = 0;
    for (size_t i = 0; i < segs.n; i++) wal_bytes += file_bytes(segs.v[i], 0);
    uint64_t counts[2] = {0, 0}, n_warn = 0, last = 0;
    if (segs.n) {
        mk_wal_opts wo = {MK_FSYNC_OFF, 1000, 0, quiet_log, &n_warn};
        mk_wal_replay(env, path, &wo, 1, wal_count_cb, counts, &last, &d);
    }
    printf("wal: %zu segments, %" PRIu64 " bytes, %" PRIu64 " records, %" PRIu64 " samples not yet sealed\n", segs.n, wal_bytes, counts[0], counts[1]);
    names_free(&segs);

    uint64_t all = dir_bytes(dir, 1), all_apparent = dir_bytes(dir, 0);
    uint64_t samples = tot_samples + counts[1];
    printf("whole directory: %" PRIu64 " bytes allocated (%" PRIu64 " apparent), %.3f bytes/sample\n", all, all_apparent,
           samples ? (double)all / samples : 0.0);
    return MK_EXIT_OK;
}

/* ---- verify ------------------------------------------------------------ */

static void verify_help(FILE *f)
{
    fprintf(f, "usage: meerkat verify --data DIR\n\n"
               "Checks every checksum in DIR: block headers, footers, chunk indexes and\n"
               "chunks (each chunk is also decoded and its summary recomputed), the\n"
               "series index and every WAL record. Names the file and byte offset of\n"
               "each problem. Exit status 0 when all is well, 1 when damage was found.\n");
}

typedef struct vstate {
    uint64_t n_problems;
} vstate;

static void report(void *ctx, const char *path, uint64_t off, const char *why)
{
    vstate *v = ctx;
    v->n_problems++;
    printf("DAMAGE %s: offset %" PRIu64 ": %s\n", path, off, why);
}

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static void verify_log(void *ctx, int level, const char *msg)
{
    vstate *v = ctx;
    (void)level;
    /* A torn last record is what a crash mid-write leaves: expected, and
     * cut off at the next open. Damage is a bad record with data after it,
     * or a bad segment. */
    if (strstr(msg, "torn record")) {
        printf("NOTE %s (normal after a crash; the next open truncates it)\n", msg);
        return;
    }
    v->n_problems++;
    printf("DAMAGE %s\n", msg);
}

static void quiet_log_null(void *ctx, int level, const char *msg) { (void)ctx; (void)level; (void)msg; }

/* Adds the series that WAL records define to the index (they are known even
 * if index.mki does not list them yet). */
static int wal_series_cb(void *ctx, uint8_t type, const uint8_t *p, size_t len, uint64_t seg)
{
    (void)seg;
    if (type != MK_WAL_REC_SERIES || len < 12 || 12 + (size_t)mk_get_u32(p + 8) != len) return 0;
    uint64_t id;
    uint32_t ord;
    int is_new;
    mk_index_add(ctx, (const char *)p + 12, len - 12, &id, &ord, &is_new, NULL);
    return 0;
}

static int wal_nop_cb(void *ctx, uint8_t type, const uint8_t *p, size_t len, uint64_t seg)
{
    (void)type; (void)p; (void)len; (void)seg;
    (*(uint64_t *)ctx)++;
    return 0;
}

int mk_cli_verify(int argc, char **argv)
{
    const char *dir;
    int is_verbose = 0;
    int r = parse_data_arg(argc, argv, "verify", &dir, &is_verbose, verify_help);
    if (r >= 100) return MK_EXIT_OK;
    if (r >= 0) return r;
    mk_env *env = mk_env_default();
    vstate vs = {0};
    char path[4096];
    mk_diag d = {0};

    /* index */
    mk_index *ix = NULL;
    uint32_t n_series = 0;
    if (mk_index_new(&ix) != MK_OK) return MK_EXIT_FATAL;
    mk_err rc = mk_index_load(ix, env, dir, &d);
    int is_index_ok = !rc;
    if (rc && rc != MK_ENOTFOUND) { vs.n_problems++; printf("DAMAGE %s\n", d.msg); }
    n_series = mk_index_count(ix);
    /* series the WAL still defines (not yet in index.mki) count as known */
    snprintf(path, sizeof path, "%s/wal", dir);
    {
        uint64_t last = 0;
        mk_wal_opts wo = {MK_FSYNC_OFF, 1000, 0, quiet_log_null, NULL};
        mk_wal_replay(env, path, &wo, 1, wal_series_cb, ix, &last, NULL);
    }
    uint64_t n_unknown = 0;

    /* blocks */
    snprintf(path, sizeof path, "%s/blocks", dir);
    names blocks;
    list_dir(path, ".mkb", &blocks);
    mk_codec *codec = NULL;
    if (mk_codec_new(&codec)) return MK_EXIT_FATAL;
    int64_t *ts = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *ts);
    double *vals = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *vals);
    uint64_t n_chunks = 0, n_samples = 0;
    for (size_t i = 0; i < blocks.n && ts && vals; i++) {
        uint64_t nc = 0, ns = 0;
        rc = mk_block_verify(env, blocks.v[i], report, &vs, &nc, &ns, &d);
        mk_block *b = NULL;
        if (mk_block_open(env, blocks.v[i], &b, &d)) {
            if (!rc) { vs.n_problems++; printf("DAMAGE %s\n", d.msg); }
            continue;
        }
        size_t n;
        const mk_block_chunk *c = mk_block_chunks(b, &n);
        if (mk_block_flags(b) != 0) {
            report(&vs, blocks.v[i], 6, "a rollup block among the raw blocks (left out at open)");
            mk_block_close(b);
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            uint32_t ord;
            if ((k == 0 || c[k].series_id != c[k - 1].series_id) && mk_index_ordinal(ix, c[k].series_id, &ord) != MK_OK) {
                if (!n_unknown++ || is_verbose)
                    printf("DAMAGE %s: offset %" PRIu64 ": series %016" PRIx64 " is not in the series index%s\n", blocks.v[i],
                           c[k].offset, c[k].series_id, is_index_ok ? "" : " (index.mki missing or unreadable)");
                vs.n_problems++;
            }
            const uint8_t *p;
            if (mk_block_payload(b, &c[k], &p, &d)) continue; /* reported by mk_block_verify */
            uint32_t got = 0;
            mk_diag cd = {0};
            if (mk_codec_decode(codec, p, c[k].len, ts, vals, MK_CHUNK_MAX_SAMPLES, &got, &cd)) {
                report(&vs, blocks.v[i], c[k].offset, cd.msg);
                continue;
            }
            mk_chunk_summary s;
            mk_codec_summarise(ts, vals, got, &s);
            const mk_chunk_summary *w = &c[k].sum;
            if (s.count != w->count || s.first_ts_ms != w->first_ts_ms || s.last_ts_ms != w->last_ts_ms ||
                !same_double(s.min, w->min) || !same_double(s.max, w->max) || !same_double(s.first, w->first) ||
                !same_double(s.last, w->last) || !same_double(s.sum, w->sum) || !same_double(s.sumsq, w->sumsq))
                report(&vs, blocks.v[i], c[k].offset, "chunk summary does not match the decoded samples");
            n_chunks++;
            n_samples += got;
        }
        mk_block_close(b);
    }
    /* rollup tiers: the same checks, then each payload decoded as buckets
     * whose starts are multiples of the step and agree with the summary */
    tiers tr;
    list_tiers(dir, &tr);
    mk_bucket *bk = malloc(MK_CHUNK_MAX_SAMPLES * sizeof *bk);
    for (size_t t = 0; t < tr.n && bk && ts && vals; t++) {
        names rb;
        list_dir(tr.path[t], ".mkb", &rb);
        uint64_t n_buckets = 0;
        for (size_t i = 0; i < rb.n; i++) {
            rc = mk_block_verify(env, rb.v[i], report, &vs, NULL, NULL, &d);
            mk_block *b = NULL;
            if (mk_block_open(env, rb.v[i], &b, &d)) {
                if (!rc) { vs.n_problems++; printf("DAMAGE %s\n", d.msg); }
                continue;
            }
            if (mk_block_flags(b) != MK_BLOCK_FLAG_ROLLUP) report(&vs, rb.v[i], 6, "not a rollup block (flags) in a tier directory");
            size_t n;
            const mk_block_chunk *c = mk_block_chunks(b, &n);
            for (size_t k = 0; k < n && mk_block_flags(b) == MK_BLOCK_FLAG_ROLLUP; k++) {
                uint32_t ord;
                if ((k == 0 || c[k].series_id != c[k - 1].series_id) && mk_index_ordinal(ix, c[k].series_id, &ord) != MK_OK) {
                    printf("DAMAGE %s: offset %" PRIu64 ": series %016" PRIx64 " is not in the series index\n", rb.v[i], c[k].offset,
                           c[k].series_id);
                    vs.n_problems++;
                }
                const uint8_t *p;
                if (mk_block_payload(b, &c[k], &p, &d)) continue; /* reported by mk_block_verify */
                uint32_t got = 0;
                mk_diag cd = {0};
                if (mk_rollup_decode(codec, p, c[k].len, bk, MK_CHUNK_MAX_SAMPLES, &got, ts, vals, &cd)) {
                    report(&vs, rb.v[i], c[k].offset, cd.msg);
                    continue;
                }
                int is_bad = got != c[k].sum.count || bk[0].start_ms != c[k].sum.first_ts_ms || bk[got - 1].start_ms != c[k].sum.last_ts_ms;
                for (uint32_t j = 0; j < got && !is_bad; j++)
                    is_bad = bk[j].start_ms % tr.step[t] != 0 || (j && bk[j].start_ms <= bk[j - 1].start_ms);
                if (is_bad) report(&vs, rb.v[i], c[k].offset, "rollup buckets do not match the chunk summary or the tier's width");
                n_buckets += got;
            }
            mk_block_close(b);
        }
        printf("tier %" PRId64 " ms: %zu rollup blocks, %" PRIu64 " buckets checked\n", tr.step[t], rb.n, n_buckets);
        names_free(&rb);
    }
    free(bk);
    free(ts);
    free(vals);
    mk_codec_free(codec);
    mk_index_free(ix);
    if (n_unknown > 1) printf("(%" PRIu64 " series of the blocks are unknown to the index in all; --verbose lists each)\n", n_unknown);

    /* WAL */
    snprintf(path, sizeof path, "%s/wal", dir);
    uint64_t n_records = 0, last = 0;
    mk_wal_opts wo = {MK_FSYNC_OFF, 1000, 0, verify_log, &vs};
    rc = mk_wal_replay(env, path, &wo, 1, wal_nop_cb, &n_records, &last, &d);
    if (rc) { vs.n_problems++; printf("DAMAGE %s\n", d.msg); }

    printf("%s: %u series, %zu blocks, %" PRIu64 " chunks, %" PRIu64 " samples, %" PRIu64 " WAL records: %s\n", dir, n_series,
           blocks.n, n_chunks, n_samples, n_records,
           vs.n_problems ? "DAMAGED" : "all checksums good");
    if (vs.n_problems) printf("%" PRIu64 " problems found\n", vs.n_problems);
    names_free(&blocks);
    return vs.n_problems ? MK_EXIT_PROBLEMS : MK_EXIT_OK;
}

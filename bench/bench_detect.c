/*
 * bench/bench_detect.c — speed of the default anomaly detector, and the
 * fast loop used to tune it (bench/DETECT.md).
 *
 *   bench_detect speed DIR... [--reps N]
 *       Loads every timestamp,value CSV of the NAB-layout corpora DIR... into
 *       memory, then scores all of them with the default parameter set, one
 *       detector per file, seasonal baselines from an in-memory provider
 *       (no I/O in the timed part). Prints the median of N (default 5) runs
 *       in samples/s and the size of one series' state.
 *
 *   bench_detect run DIR OUT.bin [NAME=VALUE]...
 *       Scores every file of corpus DIR with the default parameters changed
 *       by the NAME=VALUE pairs, and writes the scores to OUT.bin:
 *       per file "relpath\n", a uint64 row count, then the doubles.
 *       bench/detect_tune.py reads it and scores it with NAB's method; the
 *       in-memory provider sums exactly as the database provider does, so
 *       these scores equal `meerkat nab`'s.
 *
 *   bench_detect eval DIR1 PREP1 [DIR2 PREP2] -- "VARIANT"...
 *       The tuning loop: for each VARIANT (space-separated NAME=VALUE, ""
 *       for the defaults) scores the corpora and rates the scores with NAB's
 *       method (the threshold sweep of ../shared/tools/nab_score.py, over
 *       the labels PREPn written by bench/detect_tune.py), printing one
 *       Markdown row: variant, then standard / low-FP / low-FN per corpus.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "det_nab.h"
#include "detector.h"

typedef struct corpus {
    char **rel;
    mk_det_csv *files;
    size_t n;
    size_t n_rows;
} corpus;

/* CPU time of this thread: the machine is shared (load average far above
 * its 2 cores), and "samples/s on one core" is samples per CPU second. */
static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int load(const char *dir, corpus *c)
{
    mk_diag diag = {0};
    char **rel = NULL;
    size_t n = 0;
    if (mk_det_nab_list(dir, &rel, &n, &diag)) {
        fprintf(stderr, "bench_detect: %s\n", diag.msg);
        return -1;
    }
    c->files = realloc(c->files, (c->n + n) * sizeof *c->files);
    c->rel = realloc(c->rel, (c->n + n) * sizeof *c->rel);
    if (!c->files || !c->rel) return -1;
    for (size_t i = 0; i < n; i++) {
        mk_det_csv f = {0};
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, rel[i]);
        mk_err rc = mk_det_csv_read(path, &f, &diag);
        if (rc == MK_ENOTOURS) continue;
        if (rc) {
            fprintf(stderr, "bench_detect: %s\n", diag.msg);
            return -1;
        }
        c->rel[c->n] = strdup(rel[i]);
        c->files[c->n++] = f;
        c->n_rows += f.n;
    }
    mk_det_nab_list_free(rel, n);
    return 0;
}

static void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++) {
        mk_det_csv_free(&c->files[i]);
        free(c->rel[i]);
    }
    free(c->files);
    free(c->rel);
    memset(c, 0, sizeof *c);
}

/* Scores file f into out (may be NULL); returns a checksum of the scores. */
static double score_file(const mk_det_params *p, mk_det *d, const mk_det_csv *f, double *out)
{
    mk_det_array_history h = {f->ts_ms, f->v, f->n};
    double sum = 0;
    mk_det_reset(d);
    for (size_t i = 0; i < f->n; i++) {
        double sc;
        mk_det_step(d, f->ts_ms[i], f->v[i], mk_det_array_history_fn, &h, &sc, NULL, NULL);
        sum += sc;
        if (out) out[i] = sc;
    }
    (void)p;
    return sum;
}

/* ---- NAB scoring (a transcription of nab_score.py's sweep) ---------- */

typedef struct prep_file {
    char *rel;
    uint64_t n;
    double probation;
    int32_t *win;
    double *unw;
} prep_file;

typedef struct prep {
    uint64_t n_windows_total, n_files;
    prep_file *f;
} prep;

static int prep_load(const char *path, prep *pp)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint64_t h[2];
    if (fread(h, 8, 2, f) != 2) return -1;
    pp->n_windows_total = h[0];
    pp->n_files = h[1];
    pp->f = calloc(h[1], sizeof *pp->f);
    for (uint64_t i = 0; i < h[1]; i++) {
        char line[4096];
        if (!fgets(line, sizeof line, f)) return -1;
        line[strcspn(line, "\n")] = 0;
        pp->f[i].rel = strdup(line);
        if (fread(&pp->f[i].n, 8, 1, f) != 1 || fread(&pp->f[i].probation, 8, 1, f) != 1)
            return -1;
        uint64_t n = pp->f[i].n;
        pp->f[i].win = malloc(n * 4);
        pp->f[i].unw = malloc(n * 8);
        if (fread(pp->f[i].win, 4, n, f) != n || fread(pp->f[i].unw, 8, n, f) != n) return -1;
    }
    fclose(f);
    return 0;
}

typedef struct row {
    double score, weight;
    int64_t win; /* corpus-wide window index or -1 */
} row;

static void prep_free(prep *pp)
{
    for (uint64_t i = 0; i < pp->n_files; i++) {
        free(pp->f[i].rel);
        free(pp->f[i].win);
        free(pp->f[i].unw);
    }
    free(pp->f);
}

static int cmp_row_desc(const void *a, const void *b)
{
    double x = ((const row *)a)->score, y = ((const row *)b)->score;
    return x > y ? -1 : x < y;
}

/* Best corpus total over thresholds for one profile (tp, fp, fn weights). */
static double sweep_best(const prep *pp, double *const *scores, double tp, double fp, double fn)
{
    const double max_tp = 2.0 / (1.0 + exp(-5.0)) - 1.0;
    size_t n_rows = 0;
    for (uint64_t i = 0; i < pp->n_files; i++) {
        uint64_t start = (uint64_t)ceil(pp->f[i].probation);
        if (pp->f[i].n > start) n_rows += pp->f[i].n - start;
    }
    row *r = malloc((n_rows + 1) * sizeof *r);
    double *win_value = calloc(pp->n_windows_total + 1, sizeof *win_value);
    char *win_seen = calloc(pp->n_windows_total + 1, 1);
    size_t k = 0;
    int64_t base = 0;
    double total = 0;
    for (uint64_t i = 0; i < pp->n_files; i++) {
        const prep_file *pf = &pp->f[i];
        uint64_t start = (uint64_t)ceil(pf->probation);
        int32_t max_w = -1;
        for (uint64_t j = 0; j < pf->n; j++) {
            if (pf->win[j] > max_w) max_w = pf->win[j];
            if (j < start) continue;
            double u = pf->unw[j];
            r[k].score = scores[i][j];
            if (pf->win[j] >= 0) {
                r[k].weight = u * tp / max_tp;
                r[k].win = base + pf->win[j];
                if (!win_seen[r[k].win]) {
                    win_seen[r[k].win] = 1;
                    win_value[r[k].win] = -fn;
                    total -= fn;
                }
            } else {
                r[k].weight = u * fp;
                r[k].win = -1;
            }
            k++;
        }
        base += max_w + 1;
    }
    qsort(r, k, sizeof *r, cmp_row_desc);
    double best = total; /* threshold 1.1: nothing detected */
    double cur = 1.1;
    for (size_t j = 0; j < k; j++) {
        if (r[j].score != cur) {
            if (total > best + 1e-9) best = total;
            cur = r[j].score;
        }
        if (r[j].win < 0) total += r[j].weight;
        else if (r[j].weight > win_value[r[j].win]) {
            total += r[j].weight - win_value[r[j].win];
            win_value[r[j].win] = r[j].weight;
        }
    }
    if (total > best + 1e-9) best = total;
    free(r);
    free(win_value);
    free(win_seen);
    return best;
}

/* Normalised NAB score of the three profiles into out[3]. */
static void nab_rate(const prep *pp, double *const *scores, double *out)
{
    static const double prof[3][3] = {{1, 0.11, 1}, {1, 0.22, 1}, {1, 0.11, 2}};
    double **half = malloc(pp->n_files * sizeof *half);
    for (uint64_t i = 0; i < pp->n_files; i++) {
        half[i] = malloc((pp->f[i].n + 1) * sizeof **half);
        for (uint64_t j = 0; j < pp->f[i].n; j++) half[i][j] = 0.5;
    }
    for (int p = 0; p < 3; p++) {
        double raw = sweep_best(pp, scores, prof[p][0], prof[p][1], prof[p][2]);
        double null = sweep_best(pp, half, prof[p][0], prof[p][1], prof[p][2]);
        double perfect = (double)pp->n_windows_total * prof[p][0];
        out[p] = 100.0 * (raw - null) / (perfect - null);
    }
    for (uint64_t i = 0; i < pp->n_files; i++) free(half[i]);
    free(half);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    mk_det_params p;
    mk_det_params_init(&p);
    corpus c = {0};
    mk_det *d = NULL;
    mk_diag diag = {0};
    if (argc >= 3 && strcmp(argv[1], "speed") == 0) {
        int reps = 5;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
            else if (load(argv[i], &c)) return 1;
        }
        if (reps < 1 || reps > 99) reps = 5;
        if (mk_det_new(&p, &d, &diag)) return 1;
        double rates[99], walls[99], check = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = cpu_s(), w0 = now_s();
            for (size_t i = 0; i < c.n; i++) check += score_file(&p, d, &c.files[i], NULL);
            rates[r] = (double)c.n_rows / (cpu_s() - t0);
            walls[r] = (double)c.n_rows / (now_s() - w0);
        }
        qsort(rates, (size_t)reps, sizeof *rates, cmp_d);
        qsort(walls, (size_t)reps, sizeof *walls, cmp_d);
        printf("files: %zu\nsamples: %zu\nstate_bytes: %zu\n"
               "median_samples_per_cpu_s: %.0f (min %.0f, max %.0f)\n"
               "median_samples_per_wall_s: %.0f (of %d runs; checksum %.6f)\n",
               c.n, c.n_rows, mk_det_state_bytes(), rates[reps / 2], rates[0], rates[reps - 1],
               walls[reps / 2], reps, check);
        mk_det_free(d);
        corpus_free(&c);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "run") == 0) {
        for (int i = 4; i < argc; i++) {
            if (mk_det_params_parse(&p, argv[i], &diag)) {
                fprintf(stderr, "bench_detect: %s\n", diag.msg);
                return 2;
            }
        }
        if (load(argv[2], &c)) return 1;
        if (mk_det_new(&p, &d, &diag)) return 1;
        FILE *f = fopen(argv[3], "wb");
        if (!f) return 1;
        for (size_t i = 0; i < c.n; i++) {
            double *s = malloc((c.files[i].n + 1) * sizeof *s);
            uint64_t n = c.files[i].n;
            score_file(&p, d, &c.files[i], s);
            fprintf(f, "%s\n", c.rel[i]);
            fwrite(&n, sizeof n, 1, f);
            fwrite(s, sizeof *s, n, f);
            free(s);
        }
        fclose(f);
        mk_det_free(d);
        corpus_free(&c);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "eval") == 0) {
        corpus cs[2] = {{0}, {0}};
        prep pp[2];
        int n_c = 0, i = 2;
        for (; i + 1 < argc && strcmp(argv[i], "--") != 0 && n_c < 2; i += 2, n_c++) {
            if (load(argv[i], &cs[n_c]) || prep_load(argv[i + 1], &pp[n_c])) {
                fprintf(stderr, "bench_detect: cannot load %s / %s\n", argv[i], argv[i + 1]);
                return 1;
            }
            if (pp[n_c].n_files != cs[n_c].n) {
                fprintf(stderr, "bench_detect: %s has %zu files, labels %llu\n", argv[i],
                        cs[n_c].n, (unsigned long long)pp[n_c].n_files);
                return 1;
            }
        }
        if (i < argc && strcmp(argv[i], "--") == 0) i++;
        for (; i < argc; i++) {
            mk_det_params_init(&p);
            char buf[4096];
            snprintf(buf, sizeof buf, "%s", argv[i]);
            for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
                if (mk_det_params_parse(&p, tok, &diag)) {
                    fprintf(stderr, "bench_detect: %s\n", diag.msg);
                    return 2;
                }
            }
            if (mk_det_new(&p, &d, &diag)) return 1;
            printf("| %s |", argv[i][0] ? argv[i] : "(defaults)");
            for (int c2 = 0; c2 < n_c; c2++) {
                double **sc = malloc(cs[c2].n * sizeof *sc);
                for (size_t f = 0; f < cs[c2].n; f++) {
                    /* labels and data are both sorted by relpath */
                    if (strcmp(cs[c2].rel[f], pp[c2].f[f].rel) != 0 ||
                        pp[c2].f[f].n != cs[c2].files[f].n) {
                        fprintf(stderr, "bench_detect: %s does not match the labels\n",
                                cs[c2].rel[f]);
                        return 1;
                    }
                    sc[f] = malloc((cs[c2].files[f].n + 1) * sizeof **sc);
                    score_file(&p, d, &cs[c2].files[f], sc[f]);
                }
                double r3[3];
                nab_rate(&pp[c2], sc, r3);
                printf(" %.1f | %.1f | %.1f |", r3[0], r3[1], r3[2]);
                for (size_t f = 0; f < cs[c2].n; f++) free(sc[f]);
                free(sc);
            }
            printf("\n");
            fflush(stdout);
            mk_det_free(d);
            d = NULL;
        }
        for (int c2 = 0; c2 < n_c; c2++) {
            corpus_free(&cs[c2]);
            prep_free(&pp[c2]);
        }
        return 0;
    }
    fprintf(stderr, "usage: bench_detect speed DIR... [--reps N] | run DIR OUT.bin [NAME=VALUE]...\n");
    return 2;
}

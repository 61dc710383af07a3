/*
 * tools/cli_rules.c — `meerkat detect`: backfill alert rules over stored
 * data and print the incidents they would have raised.
 *
 * The rules: list of the config file is evaluated with the same engine the
 * server runs (detect/rule.h), stepping the evaluation time from --from to
 * --to by the smallest rule interval (each rule runs on multiples of its own
 * interval). Incidents are kept in memory only: a backfill never writes the
 * data directory's incident log or outbox, and the database is opened
 * read-only.
 *
 * Anomaly rules get their score from the default detector (detect/
 * detector.h): one detector per series, fed every stored sample up to the
 * evaluation time in order; the rule sees the highest score of the samples
 * inside its window.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rule.h"
#include "score_adapter.h"
#include "tools/cli.h"

static void help(FILE *f)
{
    fprintf(f, "usage: meerkat detect --data DIR --config FILE [--from TIME] [--to TIME]\n\n"
               "Runs the rules: of FILE over the stored data of DIR from FROM to TO,\n"
               "stepping the evaluation time at each rule's interval, and prints every\n"
               "incident the rules would have raised, oldest first. Nothing is written.\n\n"
               "  --data DIR     data directory (opened read-only)\n"
               "  --config FILE  YAML file with a rules: list (see the README)\n"
               "  --from TIME    start (default: TO minus one day)\n"
               "  --to TIME      end (default: now)\n"
               "                 TIME is ms since the epoch, a number with a unit\n"
               "                 (1700000000s, ...), or RFC 3339 (2026-11-30T00:00:00Z)\n\n"
               "Exit status: 0 done (with or without incidents), 1 some evaluations\n"
               "failed (reported), 2 usage or config errors, 3 the data could not be read.\n");
}

static void fmt_time(char *out, size_t cap, int64_t ms)
{
    if (!ms) { snprintf(out, cap, "-"); return; }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the command -------------------------------------------------------- */

int mk_cli_detect(int argc, char **argv)
{
    const char *dir = NULL, *config = NULL;
    int64_t from = INT64_MIN, to = INT64_MIN;
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"config", required_argument, 0, 'c'},
                                         {"from", required_argument, 0, 'f'},
                                         {"to", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:c:f:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'c': config = optarg; break;
        case 'f':
        case 't':
            if (mk_cli_parse_time(optarg, c == 'f' ? &from : &to)) {
                fprintf(stderr, "meerkat detect: --%s: cannot read '%s' as a time\n", c == 'f' ? "from" : "to", optarg);
                return MK_EXIT_USAGE;
            }
            break;
        case 'h': help(stdout); return MK_EXIT_OK;
        default: help(stderr); return MK_EXIT_USAGE;
        }
    }
    if (!dir || !config || optind != argc) {
        fprintf(stderr, "meerkat detect: --data DIR and --config FILE are required\n");
        help(stderr);
        return MK_EXIT_USAGE;
    }
    if (to == INT64_MIN) to = (int64_t)time(NULL) * 1000;
    if (from == INT64_MIN) from = to - 86400000LL;
    if (from > to) {
        fprintf(stderr, "meerkat detect: --from is after --to\n");
        return MK_EXIT_USAGE;
    }

    int rc = MK_EXIT_OK;
    mk_diag d = {0};
    mk_rule_set rs = {0};
    mk_db *db = NULL;
    mk_rule_engine *eng = NULL;
    mk_score_adapter dc = {0};
    mk_incident *l = NULL;
    size_t n = 0;
    FILE *f = fopen(config, "rb");
    if (!f) {
        fprintf(stderr, "meerkat detect: %s: cannot open: %s\n", config, strerror(errno));
        return MK_EXIT_USAGE;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            char *p = realloc(text, cap);
            if (!p) { fclose(f); free(text); fprintf(stderr, "meerkat detect: out of memory\n"); return MK_EXIT_FATAL; }
            text = p;
        }
        size_t k = fread(text + len, 1, cap - len, f);
        if (!k) break;
        len += k;
    }
    fclose(f);
    mk_err err = mk_rule_parse_yaml(text, len, config, &rs, &d);
    free(text);
    if (err) {
        fprintf(stderr, "meerkat detect: %s\n", d.msg);
        return MK_EXIT_USAGE;
    }
    if (!rs.n) {
        fprintf(stderr, "meerkat detect: %s has no rules\n", config);
        rc = MK_EXIT_USAGE;
        goto out;
    }
    if (!(db = mk_cli_open_read_only("detect", dir))) {
        rc = MK_EXIT_FATAL;
        goto out;
    }
    int64_t step = INT64_MAX;
    mk_score_adapter_init(&dc, db);
    for (size_t i = 0; i < rs.n; i++) {
        if (rs.rules[i].interval_ms < step) step = rs.rules[i].interval_ms;
        if (rs.rules[i].window_ms > dc.keep_ms) dc.keep_ms = rs.rules[i].window_ms;
    }
    mk_rule_engine_opts eo = {0};
    eo.score = mk_score_adapter_fn;
    eo.score_ctx = &dc;
    eo.log = mk_cli_log;
    if ((err = mk_rule_engine_open(db, &rs, &eo, &eng, &d))) {
        fprintf(stderr, "meerkat detect: %s\n", d.msg);
        rc = MK_EXIT_USAGE;
        goto out;
    }
    uint64_t n_evals = 0, n_errors = 0;
    int64_t t0 = from % step == 0 ? from : from - (from % step + step) % step + step;
    for (int64_t t = t0; t <= to; t += step) {
        mk_rule_eval_stats st;
        mk_diag ed = {0};
        if (mk_rule_engine_evaluate(eng, t, &st, &ed)) {
            if (n_errors < 10) fprintf(stderr, "meerkat detect: %s\n", ed.msg);
            rc = MK_EXIT_PROBLEMS;
        }
        n_evals += st.n_series;
        n_errors += st.n_errors;
    }
    if ((err = mk_inc_list(mk_rule_engine_store(eng), NULL, &l, &n, &d))) {
        fprintf(stderr, "meerkat detect: %s\n", d.msg);
        rc = MK_EXIT_FATAL;
        goto out;
    }
    printf("%-5s %-20s %-9s %-8s %-20s %-20s %-20s %-10s %s\n", "ID", "RULE", "STATE", "SEVERITY", "START", "FIRED",
           "END", "PEAK", "LABELS / REASON");
    for (size_t i = n; i-- > 0;) { /* mk_inc_list is newest first */
        char s1[32], s2[32], s3[32];
        fmt_time(s1, sizeof s1, l[i].start_ms);
        fmt_time(s2, sizeof s2, l[i].fired_ms);
        fmt_time(s3, sizeof s3, l[i].end_ms);
        printf("%-5" PRIu64 " %-20s %-9s %-8s %-20s %-20s %-20s %-10.6g {", l[i].id, l[i].rule,
               mk_inc_state_name(l[i].state), mk_severity_name(l[i].severity), s1, s2, s3, l[i].peak);
        for (size_t k = 0; k < l[i].n_labels; k++)
            printf("%s%s=%s", k ? "," : "", l[i].labels[k].key, l[i].labels[k].value);
        printf("} %s\n", l[i].reason);
    }
    fflush(stdout);
    size_t n_fired = 0;
    for (size_t i = 0; i < n; i++) n_fired += l[i].fired_ms != 0;
    fprintf(stderr, "meerkat detect: %zu rules, %" PRIu64 " evaluations, %zu incidents (%zu fired), %" PRIu64 " errors\n",
            rs.n, n_evals, n, n_fired, n_errors);
out:
    mk_incidents_free(l, n);
    if (eng) mk_rule_engine_close(eng, NULL);
    mk_score_adapter_free(&dc);
    mk_db_close(db, NULL);
    mk_rule_set_free(&rs);
    return rc;
}

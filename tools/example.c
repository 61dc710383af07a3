/*
 * tools/example.c — Meerkat as an embedded library, in the fewest lines:
 * open a database, write samples two ways, read them back. Uses only the
 * public headers; CI builds and runs it.
 *
 *   cc example.c -I include -L build/engine -lmeerkat -lzstd -lpthread -lm
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "meerkat/meerkat.h"

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "example-data";
    mk_db *db = NULL;
    mk_diag diag = {0};
    mk_options opts;
    mk_options_init(&opts);
    opts.fsync = MK_FSYNC_ALWAYS; /* every write durable before it returns */

    if (mk_db_open(dir, &opts, &db, &diag) != MK_OK) {
        fprintf(stderr, "open %s: %s\n", dir, diag.msg);
        return 1;
    }

    /* 1. Line protocol, as InfluxDB takes it. */
    const char *lp = "svc,service=api,instance=i-0 qps=120,p95_ms=41.5 1700000000\n"
                     "svc,service=api,instance=i-0 qps=125,p95_ms=40.25 1700000010\n";
    mk_write_stats st;
    if (mk_db_write_lp(db, lp, strlen(lp), MK_PRECISION_S, 0, &st, NULL, NULL, &diag) != MK_OK) goto fail;

    /* 2. Through a series id: resolve once, then write many points. */
    mk_tag tags[] = {{"service", "api"}, {"instance", "i-0"}};
    uint64_t id;
    if (mk_db_series(db, "svc", tags, 2, "qps", &id, &diag) != MK_OK) goto fail;
    mk_point pts[] = {{id, 1700000020000, 130}, {id, 1700000030000, 128}};
    if (mk_db_write(db, pts, 2, &diag) != MK_OK) goto fail;

    /* Read qps back: four samples, from both writes. */
    mk_iter *it = NULL;
    if (mk_db_iter(db, id, 0, INT64_MAX, &it, &diag) != MK_OK) goto fail;
    size_t total = 0;
    for (;;) {
        const int64_t *ts;
        const double *v;
        size_t n;
        if (mk_iter_next(it, &ts, &v, &n, &diag) != MK_OK) { mk_iter_free(it); goto fail; }
        if (n == 0) break;
        for (size_t i = 0; i < n; i++) printf("svc qps %" PRId64 " %g\n", ts[i], v[i]);
        total += n;
    }
    mk_iter_free(it);
    if (mk_db_close(db, &diag) != MK_OK) {
        fprintf(stderr, "close: %s\n", diag.msg);
        return 1;
    }
    if (total != 4) {
        fprintf(stderr, "expected 4 samples, read %zu\n", total);
        return 1;
    }
    printf("ok: %zu samples\n", total);
    return 0;
fail:
    fprintf(stderr, "%s: %s\n", mk_err_name(diag.code), diag.msg);
    mk_db_close(db, NULL);
    return 1;
}

/*
 * server/wreq.h — pure helpers of POST /write: the precision parameter,
 * timestamps in minutes or hours, gzip bodies, and InfluxDB's partial-write
 * error text. No I/O and no global state.
 */
#ifndef MK_WREQ_H
#define MK_WREQ_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/db.h"
#include "util.h"

/*
 * Maps InfluxDB's precision parameter (NULL or "" = ns; n ns u us µ ms s m
 * h) to the engine's precision and a multiplier for the units the engine
 * lacks (m -> s x 60, h -> s x 3600; otherwise 1). Returns 0 or -1.
 */
int mk_wreq_precision(const char *s, mk_precision *p, int64_t *mult);

/*
 * Copies line protocol in[0..n) to out, multiplying each line's trailing
 * timestamp (the last space-separated token when it is an integer) by
 * mult. Lines without one are copied unchanged; an overflowing timestamp is
 * left as is so the engine reports it. Returns MK_OK or MK_ENOMEM.
 */
mk_err mk_wreq_scale_ts(const char *in, size_t n, int64_t mult, mk_buf *out);

/*
 * Inflates a gzip (or zlib) stream into out, at most max_out bytes.
 * Returns 0, -1 when the input is not valid gzip (reason in err), -2 when
 * the output would exceed max_out.
 */
int mk_wreq_gunzip(const void *in, size_t n, size_t max_out, mk_buf *out, char *err, size_t err_cap);

/* Collects the engine's per-line errors into InfluxDB's message:
 *   unable to parse '<line>': <reason> (line N, column C)\n...
 * at most max_listed of them, then "... and K more errors". */
typedef struct mk_wreq_errs {
    const char *text;   /* borrowed: the body written, to quote lines from */
    size_t len;
    size_t max_listed;
    uint64_t n_errors;
    mk_buf msg;         /* owned: NUL-terminated message so far */
    /* line-finding cursor: start offset of line cur_line */
    uint64_t cur_line;
    size_t cur_off;
    int is_oom;
} mk_wreq_errs;

void mk_wreq_errs_init(mk_wreq_errs *e, const char *text, size_t len, size_t max_listed);
/* An mk_lp_error_fn: ctx is the mk_wreq_errs. */
void mk_wreq_on_error(void *ctx, uint64_t line, uint32_t column, const char *reason);
/* Finishes and returns the message (owned by e; "" when no errors). */
const char *mk_wreq_errs_text(mk_wreq_errs *e);
void mk_wreq_errs_free(mk_wreq_errs *e);

#endif

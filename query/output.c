/* query/output.c — placeholder until the writers land. */
#include "meerkat/query.h"

mk_err mk_qresult_write(const mk_qresult *r, const mk_qout_opts *o, mk_qout_fn fn, void *ctx,
                        mk_diag *diag)
{
    (void)r; (void)o; (void)diag;
    return fn(ctx, "{\"results\":[]}\n", 15);
}

mk_err mk_qerror_write_json(const char *msg, mk_qout_fn fn, void *ctx)
{
    (void)msg;
    return fn(ctx, "{\"error\":\"\"}\n", 13);
}

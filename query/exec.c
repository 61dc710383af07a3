/* query/exec.c — placeholder until the executor lands. */
#include "meerkat/query.h"
#include "parser.h"
#include "result.h"
#include "util.h"

mk_err mk_query_exec(mk_db *db, const char *text, size_t len, const mk_query_opts *opts,
                     mk_qresult **out, mk_diag *diag)
{
    (void)db;
    (void)opts;
    *out = NULL;
    mk_ast_query *q = NULL;
    mk_err e = mk_qparse(text, len, &q, diag);
    if (e != MK_OK) return e;
    mk_qresult *r = NULL;
    if ((e = mk_qres_new(&r)) != MK_OK) goto done;
    for (uint32_t i = 0; i < q->n_stmts; i++) {
        if ((e = mk_qres_begin_stmt(r, i)) != MK_OK) goto done;
        if ((e = mk_qres_stmt_error(r, "not implemented yet")) != MK_OK) goto done;
        break;
    }
    *out = r;
    r = NULL;
done:
    mk_qresult_free(r);
    mk_ast_query_free(q);
    return e;
}

/* engine/util.c — see util.h. */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Meerkat's file formats are little-endian; big-endian hosts are not supported yet"
#endif

mk_err mk_diag_set(mk_diag *diag, mk_err code, const char *fmt, ...)
{
    if (diag) {
        va_list ap;
        va_start(ap, fmt);
        diag->code = code;
        vsnprintf(diag->msg, sizeof diag->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

mk_err mk_err_from_errno(int e)
{
    if (e == ENOSPC || e == EDQUOT) return MK_ENOSPC;
    if (e == ENOMEM) return MK_ENOMEM;
    return MK_EIO;
}

mk_err mk_buf_reserve(mk_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return MK_OK;
    size_t need = b->len + extra;
    if (need < b->len) return MK_ENOMEM;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap * 2 < cap ? need : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) return MK_ENOMEM;
    b->data = p;
    b->cap = cap;
    return MK_OK;
}

mk_err mk_buf_append(mk_buf *b, const void *p, size_t n)
{
    mk_err rc = mk_buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return MK_OK;
}

void mk_buf_free(mk_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint64_t mk_hash64(const void *p, size_t n) { return XXH3_64bits(p, n); }

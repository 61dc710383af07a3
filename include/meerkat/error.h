/*
 * meerkat/error.h — the one list of error codes.
 *
 * Every code appears once in MK_ERRNO_MAP as (NAME, value, message). The same
 * list makes the enum, mk_err_name() and mk_strerror(). Values never change
 * once released: tests/unit/test_error.c checks them against a committed
 * table. 0 is success. What/where/why of a particular failure goes into an
 * mk_diag the caller passes; the code says only which kind of failure.
 */
#ifndef MEERKAT_ERROR_H
#define MEERKAT_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define MK_ERRNO_MAP(X)                                                         \
    X(OK,         0, "success")                                                \
    X(EINVAL,     1, "invalid argument")                                       \
    X(ENOMEM,     2, "out of memory")                                          \
    X(EIO,        3, "I/O error")                                              \
    X(ENOSPC,     4, "no space left on device")                                \
    X(ECORRUPT,   5, "data is corrupt")                                        \
    X(ENOTOURS,   6, "not a Meerkat file")                                     \
    X(ETOONEW,    7, "file format version is newer than this build reads")     \
    X(ELOCKED,    8, "data directory is in use by another process")            \
    X(ENOTFOUND,  9, "not found")                                              \
    X(ECOLLISION, 10, "series id hash collision between two different keys")   \
    X(EPARSE,     11, "parse error")                                           \
    X(ESTRING,    12, "string field values are not stored")                    \
    X(ERANGE,     13, "value out of range")                                    \
    X(ELIMIT,     14, "limit exceeded")                                        \
    X(EREADONLY,  15, "database is open read-only")                            \
    X(EINTERNAL,  16, "internal error")                                        \
    X(EEXIST,     17, "already exists")

typedef enum mk_err {
#define MK_ERR_ENUM_(name, val, msg) MK_##name = val,
    MK_ERRNO_MAP(MK_ERR_ENUM_)
#undef MK_ERR_ENUM_
    MK__ERR_END
} mk_err;

/* Static English message for err; never NULL ("unknown error" for codes not
 * in the list). */
const char *mk_strerror(int err);

/* Static name such as "MK_ECORRUPT"; never NULL ("MK_UNKNOWN" otherwise). */
const char *mk_err_name(int err);

/*
 * Diagnostic filled by a failing call: the code, and a sentence that says
 * what failed, where (file, offset, line:column) and why. Caller-owned,
 * usually on the stack; every API function that takes one accepts NULL.
 * A successful call leaves it untouched.
 */
typedef struct mk_diag {
    mk_err code;
    char msg[512];
} mk_diag;

#ifdef __cplusplus
}
#endif
#endif

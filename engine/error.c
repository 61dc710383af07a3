/* engine/error.c — names and messages of the one error list (error.h). */
#include "meerkat/meerkat.h"

const char *mk_strerror(int err)
{
    switch (err) {
#define MK_ERR_MSG_(name, val, msg) case val: return msg;
        MK_ERRNO_MAP(MK_ERR_MSG_)
#undef MK_ERR_MSG_
    }
    return "unknown error";
}

const char *mk_err_name(int err)
{
    switch (err) {
#define MK_ERR_NAME_(name, val, msg) case val: return "MK_" #name;
        MK_ERRNO_MAP(MK_ERR_NAME_)
#undef MK_ERR_NAME_
    }
    return "MK_UNKNOWN";
}

const char *mk_version(void) { return MK_VERSION_STRING; }

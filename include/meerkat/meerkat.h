/*
 * meerkat/meerkat.h — umbrella header of the Meerkat embedded library.
 *
 * Include this one header to use the storage engine in-process, as one would
 * SQLite or LMDB. Link with -lmeerkat (CMake target `meerkat_engine`).
 */
#ifndef MEERKAT_H
#define MEERKAT_H

#define MK_VERSION_MAJOR 0
#define MK_VERSION_MINOR 1
#define MK_VERSION_PATCH 0
#define MK_VERSION_NUMBER (MK_VERSION_MAJOR * 10000 + MK_VERSION_MINOR * 100 + MK_VERSION_PATCH)
#define MK_VERSION_STRING "0.1.0"

#include "meerkat/error.h"
#include "meerkat/db.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the library actually linked, as "MAJOR.MINOR.PATCH"; static. */
const char *mk_version(void);

#ifdef __cplusplus
}
#endif
#endif

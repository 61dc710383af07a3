/*
 * query/tz.h — time zones for tz('Area/City'): UTC offsets read from the
 * system's TZif files (/usr/share/zoneinfo), with no libc TZ state, so
 * concurrent queries in different zones never interfere.
 *
 * Times past the last transition in the file keep the last offset (the
 * "fat" files shipped by distributions list transitions up to 2037).
 */
#ifndef MK_QUERY_TZ_H
#define MK_QUERY_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/error.h"

typedef struct mk_tz mk_tz;

/* Loads zone `name` ("Europe/Paris", "UTC"). MK_ENOTFOUND (diag says the
 * file looked for) when the zone file is missing; MK_ECORRUPT when it is not
 * a TZif file; MK_EINVAL for names with ".." or a leading '/'. Free with
 * mk_tz_free (NULL is fine). */
mk_err mk_tz_load(const char *name, mk_tz **out, mk_diag *diag);
void mk_tz_free(mk_tz *tz);

/* UTC offset in seconds in effect at the instant t_s (seconds since epoch). */
int32_t mk_tz_offset_s(const mk_tz *tz, int64_t t_s);

#endif

/*
 * engine/retention.h — the retention planner, a pure function (unit tests
 * check it directly; mk_db_retention applies it).
 */
#ifndef MK_RETENTION_H
#define MK_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "compact.h"

/* Marks in why[i] ('a' age, 's' size, 0 keep) the blocks v[0..n) the policy
 * drops at now_ms (raw_ms 0 = no age limit, max_bytes 0 = no cap); returns
 * how many. */
size_t mk_retention_plan(const mk_compact_blk *v, size_t n, int64_t now_ms, int64_t raw_ms,
                         uint64_t max_bytes, char *why);

#endif

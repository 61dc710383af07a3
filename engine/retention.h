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
 * how many. v may be in any order. A block is dropped only with every
 * lower-seq block overlapping its time range (retention.c: overwrites);
 * a block with is_pinned[i] set (is_pinned may be NULL) is never dropped
 * (retention.c: rollups). Without memory nothing is dropped. */
size_t mk_retention_plan(const mk_compact_blk *v, size_t n, int64_t now_ms, int64_t raw_ms,
                         uint64_t max_bytes, const char *is_pinned, char *why);

#endif

/*
 * detect/score_adapter.h — the anomaly score callback (mk_rule_score_fn of
 * rule.h) backed by the default detector (detector.h), shared by
 * `meerkat detect` (backfill) and `meerkat serve` (live evaluation).
 *
 * One detector per series, fed every stored sample up to the evaluation
 * time in order (the first call of a series starts 8 days back so the
 * detector's seasonal history is there); the rule sees the highest score of
 * the samples inside its window. Scores older than the longest window seen
 * are forgotten.
 *
 * Thread rules: none inside. The rule engine calls the callback under its
 * own mutex, one evaluation at a time, which is all the serialising needed.
 */
#ifndef MK_SCORE_ADAPTER_H
#define MK_SCORE_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "detector.h"
#include "rule.h"

typedef struct mk_score_series mk_score_series;

typedef struct mk_score_adapter {
    mk_db *db;               /* borrowed */
    mk_det_params params;
    mk_score_series *s;      /* owned */
    size_t n, cap;
    int64_t keep_ms;         /* longest rule window seen so far */
} mk_score_adapter;

/* Prepares a over db with the default detector parameters. */
void mk_score_adapter_init(mk_score_adapter *a, mk_db *db);
void mk_score_adapter_free(mk_score_adapter *a);

/* The mk_rule_score_fn: ctx is an mk_score_adapter*. */
int mk_score_adapter_fn(void *ctx, const mk_rule *rule, uint64_t series_id, int64_t now_ms, double *score);

#endif

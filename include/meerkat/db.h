/*
 * meerkat/db.h — the storage engine's public API.
 *
 * A database is a directory. One process at a time opens it (a lock file
 * enforces this). Inside the process any number of threads may write and read
 * at once through the same mk_db: writes are serialised internally, readers
 * see a consistent snapshot taken when their iterator is created.
 *
 * Data model: a series is (measurement, sorted tag set, field); its id is the
 * XXH3-64 of the canonical key (see mk_db_series). A sample is (int64
 * milliseconds since the epoch, double). Writing a sample whose timestamp the
 * series already has replaces the old value ("last write wins").
 */
#ifndef MEERKAT_DB_H
#define MEERKAT_DB_H

#include <stddef.h>
#include <stdint.h>

#include "meerkat/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mk_db mk_db;
struct mk_env; /* I/O environment (engine/env.h); NULL means the real OS. */

typedef enum mk_fsync_policy {
    MK_FSYNC_INTERVAL = 0, /* fsync the WAL every fsync_interval_ms (default) */
    MK_FSYNC_ALWAYS = 1,   /* a write returns only after its WAL record is fsynced */
    MK_FSYNC_OFF = 2       /* never fsync the WAL; the OS decides */
} mk_fsync_policy;

/* Timestamp unit of line-protocol input. Finer-than-ms timestamps are rounded
 * down (towards minus infinity) to whole milliseconds. */
typedef enum mk_precision {
    MK_PRECISION_NS = 0,
    MK_PRECISION_US = 1,
    MK_PRECISION_MS = 2,
    MK_PRECISION_S = 3
} mk_precision;

/* Log levels passed to mk_options.log. */
enum { MK_LOG_ERROR = 0, MK_LOG_WARN = 1, MK_LOG_INFO = 2 };

typedef struct mk_options {
    mk_fsync_policy fsync;       /* default MK_FSYNC_INTERVAL */
    int64_t fsync_interval_ms;   /* default 1000 */
    int64_t block_span_ms;       /* time partition of blocks; default 2 h */
    size_t memory_limit_bytes;   /* head size that forces sealing; 0 = 512 MiB */
    int has_wal;                 /* default 1; 0 for offline bulk import: data
                                    is durable only after mk_db_flush() */
    int is_read_only;            /* open for reading only (inspect, verify) */
    int64_t seal_gap_ms;         /* windows closing within this time of the last
                                    seal wait and are sealed together (a fast
                                    load otherwise pays a seal's fsyncs per
                                    window); 0 = 1000, < 0 = seal each at once */
    struct mk_env *env;          /* borrowed, must outlive the db; NULL = OS */
    /* Log sink for warnings such as a truncated WAL tail; NULL = stderr.
     * Called from any thread; msg is valid only during the call. */
    void (*log)(void *log_ctx, int level, const char *msg);
    void *log_ctx;
} mk_options;

/* Fills opts with the defaults above. */
void mk_options_init(mk_options *opts);

/*
 * Opens (creating if needed) the database in directory `dir`, replays its WAL
 * and hands out the handle in *out. opts may be NULL for the defaults.
 * On failure *out is NULL and diag says why (MK_ELOCKED when another process
 * holds the directory). Close with mk_db_close.
 */
mk_err mk_db_open(const char *dir, const mk_options *opts, mk_db **out, mk_diag *diag);

/*
 * Makes everything written durable (WAL fsync, or sealing when has_wal is 0)
 * and frees the handle. Accepts NULL. No other thread may use db during or
 * after the call.
 */
mk_err mk_db_close(mk_db *db, mk_diag *diag);

/*
 * Seals every sample in memory into durable blocks, persists the series
 * index and deletes the WAL segments that are no longer needed. After it
 * returns MK_OK, nothing written before the call needs WAL replay.
 */
mk_err mk_db_flush(mk_db *db, mk_diag *diag);

typedef struct mk_tag {
    const char *key;   /* borrowed; NUL-terminated */
    const char *value; /* borrowed; NUL-terminated */
} mk_tag;

/*
 * Looks up, creating if needed, the series (measurement, tags, field) and
 * stores its id in *id. Tags may come in any order; keys must be distinct.
 * MK_ECOLLISION if a different key already owns the same hash.
 */
mk_err mk_db_series(mk_db *db, const char *measurement, const mk_tag *tags, size_t n_tags,
                    const char *field, uint64_t *id, mk_diag *diag);

typedef struct mk_point {
    uint64_t series_id; /* from mk_db_series */
    int64_t ts_ms;
    double value;
} mk_point;

/*
 * Appends n points (any series, any order). Returns once they are durable
 * under the fsync policy. MK_ENOTFOUND if a series id is unknown (then
 * nothing of the batch is written).
 */
mk_err mk_db_write(mk_db *db, const mk_point *pts, size_t n, mk_diag *diag);

typedef struct mk_write_stats {
    uint64_t n_lines;            /* non-blank, non-comment lines seen */
    uint64_t n_samples_accepted; /* numeric field values stored */
    uint64_t n_samples_rejected; /* field values refused (strings, bad lines) */
    uint64_t n_errors;           /* error reports made */
} mk_write_stats;

/* Called once per rejected line or field: line and column are 1-based;
 * reason is valid only during the call. */
typedef void (*mk_lp_error_fn)(void *ctx, uint64_t line, uint32_t column, const char *reason);

/*
 * Parses InfluxDB line protocol in text[0..len) and writes its numeric fields.
 * Lines without a timestamp get now_ms. Bad lines and string fields are
 * reported through on_err (may be NULL) and counted in *stats (may be NULL);
 * the valid lines are kept. Returns MK_OK if everything valid was stored,
 * even when some lines were rejected; an I/O error stops the batch.
 */
mk_err mk_db_write_lp(mk_db *db, const char *text, size_t len, mk_precision precision,
                      int64_t now_ms, mk_write_stats *stats, mk_lp_error_fn on_err, void *err_ctx,
                      mk_diag *diag);

/*
 * As mk_db_write_lp, for bulk loads: text is cut at line ends into pieces
 * parsed by n_threads threads (the caller's included) side by side, and
 * applied strictly in input order, so a later line still wins over an
 * earlier one with the same series and timestamp. on_err is called from
 * those threads one at a time and in input order, with line numbers counted
 * from the start of text. text must stay valid and unchanged during the call.
 */
mk_err mk_db_write_lp_parallel(mk_db *db, const char *text, size_t len, mk_precision precision,
                               int64_t now_ms, int n_threads, mk_write_stats *stats,
                               mk_lp_error_fn on_err, void *err_ctx, mk_diag *diag);

/* ---- reading ---------------------------------------------------------- */

typedef struct mk_iter mk_iter;

/*
 * Iterates the samples of one series with from_ms <= ts < to_ms, in time
 * order, duplicates resolved (last write wins). The iterator sees a snapshot
 * taken now; free it with mk_iter_free (accepts NULL).
 */
mk_err mk_db_iter(mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms, mk_iter **out,
                  mk_diag *diag);

/*
 * Next batch: *n samples in ts[] and vals[], both owned by the iterator and
 * valid until the next call or mk_iter_free. *n == 0 means the end. A damaged
 * chunk is reported as MK_ECORRUPT with file and offset; calling again skips it.
 */
mk_err mk_iter_next(mk_iter *it, const int64_t **ts, const double **vals, size_t *n,
                    mk_diag *diag);
void mk_iter_free(mk_iter *it);

typedef struct mk_chunk_summary {
    int64_t first_ts_ms;
    int64_t last_ts_ms;
    uint32_t count;
    double min, max, sum, sumsq; /* NaN samples are left out of min/max/sum/sumsq */
    double first, last;          /* values at first_ts_ms and last_ts_ms */
} mk_chunk_summary;

typedef struct mk_sum_iter mk_sum_iter;

/*
 * Iterates per-chunk summaries of one series over [from_ms, to_ms), in time
 * order, without decoding where possible: a chunk that lies wholly inside the
 * range and overlaps no other data is answered from its stored summary; the
 * rest (range edges, overlapping out-of-order data, the in-memory head) is
 * decoded and summarised. Summaries never overlap in time and count each
 * sample once. Free with mk_sum_iter_free (accepts NULL).
 */
mk_err mk_db_iter_summaries(mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms,
                            mk_sum_iter **out, mk_diag *diag);

/* Next summary in *s (owned by the iterator, valid until the next call);
 * *has = 0 at the end. is_decoded tells whether it was computed from samples. */
mk_err mk_sum_iter_next(mk_sum_iter *it, const mk_chunk_summary **s, int *is_decoded, int *has,
                        mk_diag *diag);
void mk_sum_iter_free(mk_sum_iter *it);

/* Read counters of an iterator so far (for EXPLAIN ANALYZE). */
typedef struct mk_read_stats {
    uint64_t n_chunks_summary;  /* chunks answered from their stored summary */
    uint64_t n_chunks_decoded;  /* chunks (or head copies) decoded */
    uint64_t n_samples_decoded; /* samples those decodes produced */
    uint64_t n_bytes_read;      /* compressed payload bytes decoded */
} mk_read_stats;
void mk_iter_stats(const mk_iter *it, mk_read_stats *st);
void mk_sum_iter_stats(const mk_sum_iter *it, mk_read_stats *st);

/*
 * The samples behind the summary mk_sum_iter_next returned last (decoding
 * the chunk if it was answered from its stored summary). *ts and *vals are
 * owned by the iterator, valid until the next call on it; *n is the
 * summary's count. MK_EINVAL if no summary was returned yet.
 */
mk_err mk_sum_iter_samples(mk_sum_iter *it, const int64_t **ts, const double **vals, size_t *n,
                           mk_diag *diag);

/* Re-points an iterator at another series and range, as if freshly made by
 * mk_db_iter / mk_db_iter_summaries (a new snapshot), keeping its decoder
 * and buffers: cheaper than free + create when reading many series. The
 * read counters keep adding up. On failure the iterator yields nothing
 * until reset again, and must still be freed. */
mk_err mk_iter_reset(mk_iter *it, mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms,
                     mk_diag *diag);
mk_err mk_sum_iter_reset(mk_sum_iter *it, mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms,
                         mk_diag *diag);

/* Calls cb with every measurement name (ascending, distinct) while it
 * returns 0. cb runs under the database lock: it must not call into db. */
mk_err mk_db_measurements(mk_db *db, int (*cb)(void *ctx, const char *name), void *ctx,
                          mk_diag *diag);

/* A tag condition of mk_db_find_series. */
typedef struct mk_matcher {
    const char *key;   /* tag key */
    const char *value; /* tag value */
    int is_negated;    /* 1: series whose tag differs or is absent */
} mk_matcher;

/*
 * Ids of every series of `measurement` (NULL = any) whose tags satisfy all
 * matchers (AND), and whose field is `field` (NULL = any), sorted ascending.
 * Resolved through the tag postings, never by scanning every series when an
 * equality matcher is given. *ids is malloc'ed; the caller frees it.
 */
mk_err mk_db_find_series(mk_db *db, const char *measurement, const mk_matcher *m, size_t n_m,
                         const char *field, uint64_t **ids, size_t *n_ids, mk_diag *diag);

/*
 * Writes the canonical key of series id into buf (NUL-terminated, truncated
 * to cap) and returns its full length, or MK_ENOTFOUND. The key is line
 * protocol's `measurement,k1=v1,k2=v2 field` with tags sorted by key and
 * line-protocol escaping.
 */
mk_err mk_db_series_key(mk_db *db, uint64_t id, char *buf, size_t cap, size_t *len,
                        mk_diag *diag);

/* Counts for inspection; any pointer may be NULL. */
typedef struct mk_db_stats {
    uint64_t n_series;
    uint64_t n_blocks;
    uint64_t n_head_samples;
    uint64_t head_bytes;
    uint64_t wal_bytes;
} mk_db_stats;
mk_err mk_db_stats_get(mk_db *db, mk_db_stats *st);

#ifdef __cplusplus
}
#endif
#endif

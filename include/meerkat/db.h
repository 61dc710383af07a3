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

#define MK_MAX_COMPACT_LEVELS 4
#define MK_COMPACT_DEFAULT_MAX_BYTES_PER_S (32ull << 20)
#define MK_MAX_ROLLUP_TIERS 4

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

    /* ---- compaction (engine/compact.c) ---- */
    int is_compaction_off;       /* 1: no background compaction thread
                                    (mk_db_compact still works); default 0 */
    /* Block ranges compaction builds, ascending, each a multiple of the one
     * before and of block_span_ms; 0-terminated. All 0 = 1 d, 7 d (so
     * 2 h → 1 d → 7 d with the default block span). */
    int64_t compact_ranges_ms[MK_MAX_COMPACT_LEVELS];
    int64_t compact_interval_ms; /* how often the thread looks for work;
                                    0 = 60 s */
    /* Compaction I/O pace in bytes per second: bytes read from the blocks
     * being merged plus bytes written, through a token bucket that holds at
     * most 1/8 s of it (compact.c). 0 = unlimited. The background thread's
     * pace; mk_options_init sets MK_COMPACT_DEFAULT_MAX_BYTES_PER_S
     * (32 MiB/s: a few per cent of an SSD's and about a quarter of a disk's
     * sequential bandwidth, left to the WAL and to queries, yet some 30x what
     * a million series at 10 s take to compact through 2 h -> 1 d -> 7 d). */
    uint64_t compact_max_bytes_per_s;
    /* The same for mk_db_compact (the CLI's `compact --max-rate`, a
     * server's flush); default 0: run to completion at full speed. */
    uint64_t compact_sync_max_bytes_per_s;

    /* ---- retention (engine/retention.c); 0 = keep forever (default) ---- */
    int64_t retention_raw_ms;    /* raw blocks whose newest sample is older
                                    than now − this are dropped whole */
    uint64_t retention_max_bytes; /* cap on the bytes of all block files,
                                    raw and rollup tiers: past it the
                                    oldest raw blocks go */

    /* ---- rollup tiers (engine/rollup.c) ---- */
    int is_rollup_off;           /* 1: no rollup tiers are built or read */
    /* Bucket widths of the tiers, ascending, 0-terminated; each must divide
     * the rollup window (the largest compaction range, 7 d by default) and
     * be a multiple of 1 s. All 0 = 5 min, 1 h. */
    int64_t rollup_steps_ms[MK_MAX_ROLLUP_TIERS];
    /* Per tier (same order), like retention_raw_ms; 0 = keep forever. */
    int64_t retention_rollup_ms[MK_MAX_ROLLUP_TIERS];
    /* While raw data is kept forever (retention_raw_ms 0), a series gets a
     * tier's buckets for a week only with at least this many samples per
     * bucket there (fewer would cost more bytes than the samples; raw data
     * answers instead). 0 = 16; 1 = every series. */
    uint32_t rollup_min_density;
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

/* ---- compaction and retention ------------------------------------------ */

typedef struct mk_compact_stats {
    uint64_t n_merges;        /* merged blocks written */
    uint64_t n_blocks_in;     /* blocks they replaced */
    uint64_t n_samples_out;   /* samples the merged blocks hold */
    uint64_t n_bytes_in;      /* file bytes of the replaced blocks */
    uint64_t n_bytes_out;     /* file bytes of the merged blocks */
    uint64_t n_chunks_copied; /* chunks copied without re-encoding */
} mk_compact_stats;

/*
 * Runs rollups and compaction to completion on the calling thread: every
 * rollup window with data newer than its tiers' blocks is (re)built, then
 * every compaction window (opts.compact_ranges_ms, largest first) holding
 * two or more blocks is merged into one block, finished windows or not.
 * The head is not sealed first (call mk_db_flush for that; the CLI and a
 * server's flush do). Readers keep working; they see the old blocks until
 * their next snapshot. Serialised with the background thread and with
 * mk_db_retention. st may be NULL (counts are added to it).
 */
mk_err mk_db_compact(mk_db *db, mk_compact_stats *st, mk_diag *diag);

/* A block retention drops (or would drop, in a dry run). */
typedef struct mk_retention_drop {
    uint64_t seq;
    int64_t min_ts_ms, max_ts_ms;
    uint64_t n_bytes;
    const char *tier;   /* "raw", or a rollup tier's width ("5m", "1h") */
    const char *reason; /* "age" or "size" */
} mk_retention_drop;

/*
 * Applies the retention policy of opts (retention_raw_ms,
 * retention_max_bytes, retention_rollup_ms) now, by the env's clock (never
 * by the data's timestamps): whole blocks are dropped, never rewritten. A
 * block goes for age only when now > its newest time + retention (for a
 * rollup block, the end of its last bucket), so a clock set back drops
 * nothing more, and a sample timestamped in the future expires nothing.
 * With is_dry_run nothing is deleted. cb (may be NULL) is called once per
 * block dropped; *n_dropped (may be NULL) counts them.
 */
mk_err mk_db_retention(mk_db *db, int is_dry_run, void (*cb)(void *ctx, const mk_retention_drop *d),
                       void *ctx, uint64_t *n_dropped, mk_diag *diag);

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

/* ---- rollup tiers ------------------------------------------------------ */

/* One bucket of a series: the samples with start_ms <= ts < start_ms + step.
 * NaN samples count in count but are left out of min/max/sum/sumsq (as in
 * mk_chunk_summary); first/last are the values at the first/last ts. */
typedef struct mk_bucket {
    int64_t start_ms;
    uint64_t count;
    double sum, sumsq, min, max, first, last;
} mk_bucket;

/* The tiers' bucket widths, ascending, into steps_ms[0..cap); returns how
 * many tiers there are (0 with is_rollup_off). */
size_t mk_db_rollup_steps(mk_db *db, int64_t *steps_ms, size_t cap);

/* 1 when the tier of width step_ms has a block overlapping [from_ms, to_ms)
 * (any series): the planner reads a tier only then. */
int mk_db_tier_has_data(mk_db *db, int64_t step_ms, int64_t from_ms, int64_t to_ms);

/*
 * The finest tier that still holds series_id's data over [from_ms, to_ms)
 * under the retention policy, by the env's clock: *step_ms = 0 for raw
 * samples, else a tier's bucket width. When no tier covers the whole
 * range, the one reaching back furthest.
 */
mk_err mk_db_finest_tier(mk_db *db, uint64_t series_id, int64_t from_ms, int64_t to_ms, int64_t *step_ms,
                         mk_diag *diag);

typedef struct mk_bucket_iter mk_bucket_iter;

/*
 * Iterates series_id's buckets of width step_ms (a multiple of 1 ms; the
 * range is widened to whole buckets, aligned to multiples of step_ms since
 * the epoch), in time order, over a snapshot taken now. Buckets come from
 * the coarsest tier whose width divides step_ms, combined; where that
 * tier's buckets are missing or older than the data (late writes not yet
 * rolled up, the head), from raw samples. Empty buckets are not returned.
 */
mk_err mk_db_iter_buckets(mk_db *db, uint64_t series_id, int64_t step_ms, int64_t from_ms, int64_t to_ms,
                          mk_bucket_iter **out, mk_diag *diag);
/* Next batch: *n buckets, owned by the iterator until the next call; *n == 0
 * at the end. */
mk_err mk_bucket_iter_next(mk_bucket_iter *it, const mk_bucket **b, size_t *n, mk_diag *diag);
/* As mk_iter_reset: another series / range, same buffers, a new snapshot. */
mk_err mk_bucket_iter_reset(mk_bucket_iter *it, mk_db *db, uint64_t series_id, int64_t step_ms, int64_t from_ms,
                            int64_t to_ms, mk_diag *diag);
/* n_chunks_summary counts rollup chunks read; the others raw decoding. */
void mk_bucket_iter_stats(const mk_bucket_iter *it, mk_read_stats *st);

/* The bucket fields a reader needs (MK_BUCKET_*, default all; count is
 * always there): tier columns not asked for are not decoded, and their
 * values in buckets read from a tier are unspecified. Kept across resets. */
enum {
    MK_BUCKET_COUNT = 1 << 0, MK_BUCKET_SUM = 1 << 1, MK_BUCKET_MIN = 1 << 2, MK_BUCKET_MAX = 1 << 3,
    MK_BUCKET_SUMSQ = 1 << 4, MK_BUCKET_FIRST = 1 << 5, MK_BUCKET_LAST = 1 << 6, MK_BUCKET_ALL = 0x7f
};
void mk_bucket_iter_fields(mk_bucket_iter *it, unsigned fields);
void mk_bucket_iter_free(mk_bucket_iter *it);

/*
 * Totals of series_id's buckets of width step_ms (mk_db_iter_buckets) over
 * [from_ms, to_ms), for baselines: a bucket partly inside the range counts
 * by the share of its width inside it (exact when the range falls on bucket
 * edges), or not at all with is_whole_only. NaN samples count in *n but not
 * in the sums. sumsq may be NULL (that column is then not decoded).
 */
mk_err mk_db_bucket_totals(mk_db *db, uint64_t series_id, int64_t step_ms, int64_t from_ms, int64_t to_ms,
                           int is_whole_only, double *n, double *sum, double *sumsq, mk_diag *diag);

/* The finest tier's width with a block overlapping [from_ms, to_ms) (any
 * series; mk_db_tier_has_data), or 0 when no tier has one. */
int64_t mk_db_finest_tier_with_data(mk_db *db, int64_t from_ms, int64_t to_ms);

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

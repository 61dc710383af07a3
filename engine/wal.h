/*
 * engine/wal.h — the write-ahead log.
 *
 * A directory of segment files wal/<seq as 16 hex digits>.wal, each a header
 * then records; byte layout in engine/FORMAT.md ("WAL segment"). Records
 * carry a type byte and an opaque payload, and an XXH3-64 checksum.
 *
 * Durability (mk_wal_opts.fsync):
 *   MK_FSYNC_ALWAYS   mk_wal_commit returns after an fsync that covers the
 *                     record. Group commit: writers that arrive while an
 *                     fsync runs wait for the next one, which covers them all.
 *   MK_FSYNC_INTERVAL a background thread fsyncs every interval_ms;
 *                     mk_wal_commit returns once the record is written.
 *   MK_FSYNC_OFF      never fsynced by us.
 *
 * Thread rules: mk_wal_commit / mk_wal_cut / mk_wal_sync may be called from
 * several threads at once; mk_wal_replay runs before the WAL is opened for
 * writing.
 */
#ifndef MK_WAL_H
#define MK_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "meerkat/db.h"

typedef struct mk_wal mk_wal;

typedef struct mk_wal_opts {
    mk_fsync_policy fsync;
    int64_t fsync_interval_ms;
    uint64_t segment_bytes; /* start a new segment past this size; 0 = 64 MiB */
    void (*log)(void *ctx, int level, const char *msg); /* NULL = stderr */
    void *log_ctx;
} mk_wal_opts;

/*
 * Replays every segment in dir in order, calling cb for each intact record.
 * A torn or corrupted record ends its segment: the segment is truncated at
 * that offset (unless is_read_only) and a warning naming file and offset is
 * logged; later segments are still read (a warning too). cb returning
 * non-zero stops the replay with that value as the mk_err.
 * *last_seq is the highest segment number found (0 if none).
 */
typedef int (*mk_wal_replay_fn)(void *ctx, uint8_t type, const uint8_t *payload, size_t len,
                                uint64_t seg_seq);
mk_err mk_wal_replay(mk_env *env, const char *dir, const mk_wal_opts *opts, int is_read_only,
                     mk_wal_replay_fn cb, void *ctx, uint64_t *last_seq, mk_diag *diag);

/* Opens for appending: creates segment first_seq (normally last_seq + 1). */
mk_err mk_wal_open(mk_env *env, const char *dir, const mk_wal_opts *opts, uint64_t first_seq,
                   mk_wal **out, mk_diag *diag);

/*
 * Appends one record and makes it durable under the policy before
 * returning. *seg_seq (may be NULL) gets the segment it went into. An I/O
 * error (ENOSPC...) is returned and the WAL stays usable: the failed record
 * is cut off the file so later records are not hidden behind a torn one.
 */
mk_err mk_wal_commit(mk_wal *w, uint8_t type, const void *payload, size_t len, uint64_t *seg_seq,
                     mk_diag *diag);

/*
 * mk_wal_commit in two halves, so a caller can append in its own order
 * under its own lock and wait for durability after releasing it (group
 * commit across callers). mk_wal_append writes the record (handed to the OS)
 * and returns a ticket; mk_wal_wait returns once the record is durable under
 * the policy (at once unless MK_FSYNC_ALWAYS), or the error that lost it:
 * after a failed fsync, a record not yet synced is cut off and its wait
 * fails even if the caller had not started waiting.
 */
typedef struct mk_wal_ticket {
    uint64_t lsn;   /* byte position just past the record */
    uint64_t epoch; /* cut-off generation it was written in */
} mk_wal_ticket;
mk_err mk_wal_append(mk_wal *w, uint8_t type, const void *payload, size_t len, uint64_t *seg_seq,
                     mk_wal_ticket *ticket, mk_diag *diag);
mk_err mk_wal_wait(mk_wal *w, mk_wal_ticket ticket, mk_diag *diag);

/* Closes the current segment (fsynced) and starts the next; *new_seq gets its
 * number. Records committed before the call are all in segments < *new_seq. */
mk_err mk_wal_cut(mk_wal *w, uint64_t *new_seq, mk_diag *diag);

/* Deletes every segment with number < seq. Only call once their contents are
 * durable elsewhere. */
mk_err mk_wal_remove_before(mk_wal *w, uint64_t seq, mk_diag *diag);

/* fsyncs now whatever the policy (used by close). */
mk_err mk_wal_sync(mk_wal *w, mk_diag *diag);

/* Total bytes of segment files on disk. */
uint64_t mk_wal_bytes(mk_wal *w);

/* Syncs per policy and frees; accepts NULL. */
mk_err mk_wal_close(mk_wal *w, mk_diag *diag);

#endif

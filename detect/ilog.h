/*
 * detect/ilog.h — the incident log: one append-only file of checksummed
 * records in <data dir>/incidents/incidents.log (byte layout in
 * engine/FORMAT.md, "Incident log").
 *
 * This module knows only frames: a record is an opaque payload that the
 * incident store (detect/incident.c) encodes. Every append is written and
 * fsynced before mk_ilog_append returns, so an acknowledged record survives
 * a process or machine crash. Opening replays every intact record in order;
 * a torn or corrupt tail is cut off (truncated, with a warning naming file
 * and offset), never fatal. Compaction rewrites the whole file from a
 * snapshot: a new file is written under a temporary name, fsynced and renamed
 * over the old one, so a crash leaves either the old or the new file whole.
 *
 * Thread rules: none inside; the incident store serialises every call.
 */
#ifndef MK_ILOG_H
#define MK_ILOG_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "util.h"

typedef struct mk_ilog mk_ilog;

/* Log sink (level as MK_LOG_* in meerkat/db.h); NULL = stderr. */
typedef void (*mk_ilog_log_fn)(void *ctx, int level, const char *msg);

/* Called for every intact record, in file order. payload is valid only
 * during the call; off is the record's file offset (for messages).
 * Returning non-zero stops the replay and is returned as the mk_err. */
typedef int (*mk_ilog_replay_fn)(void *ctx, const uint8_t *payload, size_t len, uint64_t off);

/*
 * Opens (creating if needed) dir/incidents.log; dir is created too. Replays
 * it through cb first. env NULL = the OS. On success *out owns the open file;
 * close with mk_ilog_close. MK_ENOTOURS for a file that is not an incident
 * log, MK_ETOONEW for a newer format version.
 */
mk_err mk_ilog_open(mk_env *env, const char *dir, mk_ilog_log_fn log, void *log_ctx,
                    mk_ilog_replay_fn cb, void *cb_ctx, mk_ilog **out, mk_diag *diag);

/* Appends one record (payload[0..len), len >= 1) and fsyncs. On an I/O
 * error the partial record is cut off again so later appends are not hidden
 * behind it; the caller must treat the record as not written. */
mk_err mk_ilog_append(mk_ilog *l, const void *payload, size_t len, mk_diag *diag);

/* The same without the fsync: the record is in the file (a killed process
 * loses nothing) but survives a machine crash only after mk_ilog_sync. Lets
 * one evaluation that changes thousands of incidents pay one fsync. */
mk_err mk_ilog_append_nosync(mk_ilog *l, const void *payload, size_t len, mk_diag *diag);

/* fsyncs everything appended so far. */
mk_err mk_ilog_sync(mk_ilog *l, mk_diag *diag);

/* Appends one framed record (len, type, payload, checksum) to b, for
 * building the contents of mk_ilog_rewrite. */
mk_err mk_ilog_frame(mk_buf *b, const void *payload, size_t len);

/* Replaces the file with a header and the framed records in recs (made by
 * mk_ilog_frame): temporary file, fsync, rename, fsync of the directory. On
 * failure the old file stays in use, unchanged. */
mk_err mk_ilog_rewrite(mk_ilog *l, const mk_buf *recs, mk_diag *diag);

/* Current file size in bytes. */
uint64_t mk_ilog_bytes(const mk_ilog *l);

/* Closes; accepts NULL. */
void mk_ilog_close(mk_ilog *l);

#endif

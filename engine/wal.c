/*
 * engine/wal.c — the write-ahead log (see wal.h; byte layout in
 * engine/FORMAT.md, "WAL segment").
 *
 * `dir` is the WAL directory itself (the database passes <db>/wal); it holds
 * segment files <seq as 16 lowercase hex digits>.wal and nothing else of
 * ours. A segment is a 24-byte header followed by records:
 *
 *   header  magic u32 | version u16 | reserved u16 (0) | seq u64 | xxh3 u64
 *           (the checksum covers bytes 0..15; seq must match the file name)
 *   record  len u32 | type u8 | payload[len] | xxh3 u64
 *           (the checksum covers len, type and payload; type 0 is never
 *           written, so a zero-filled tail can never parse as a record)
 *
 * A torn tail is found with certainty, not by luck:
 *   - a partial record: fewer than 5 bytes left, or len says the record runs
 *     past the end of the file (a garbage len is caught the same way, so
 *     replay never allocates more than the file holds);
 *   - a zero-filled tail: type byte 0;
 *   - anything else (garbage, a bit flip, bytes of an older record): the
 *     XXH3-64 checksum, which misses with probability 2^-64.
 *
 * Invariants of an open mk_wal (all under mu):
 *   I1  Bytes are written only by the thread holding mu, at the tail
 *       (seg_size) of the current segment, one whole record per pwrite
 *       call sequence: records never interleave.
 *   I2  Offsets are tracked as LSNs: a byte counter over every segment
 *       written by this handle. written_lsn >= synced_lsn; bytes below
 *       synced_lsn are durable (as far as fsync can promise).
 *   I3  Under MK_FSYNC_ALWAYS and MK_FSYNC_INTERVAL a segment is fsynced
 *       before the next one is started, so synced_lsn >= seg_start_lsn + header:
 *       every unsynced byte lies in the current segment.
 *   I4  fd is not closed while is_sync_running (a leader fsyncs it with mu
 *       released); rotation, cut and close wait for the leader first.
 *   I5  Once `failed` is set it never clears: every later commit returns it.
 *       This is the "fsyncgate" rule: after an fsync error the kernel may
 *       have dropped the dirty pages and marked them clean, so a retried
 *       fsync that succeeds proves nothing about the bytes written before.
 *       Only under ALWAYS can the WAL go on after a failed fsync, because
 *       none of the bytes it covered was acknowledged: they are cut off
 *       (truncate back to synced_lsn, fsync) and their committers told.
 *
 * Group commit (MK_FSYNC_ALWAYS). A committer writes its record under mu,
 * notes the LSN just past it, and waits on a stack node in `waiters` until a
 * sync covering that LSN is resolved:
 *
 *                  committer finds no fsync running: becomes the leader,
 *                  target = written_lsn (its own record and all before it)
 *         +------+ ---------------------------------------------> +---------+
 *         | IDLE |        mu is released during the fsync, so     | SYNCING |
 *         +------+        others keep appending and queue up      +---------+
 *            ^  ^                                                  |      |
 *            |  |  fsync ok: synced_lsn = target; waiters with     |      |
 *            |  +--lsn <= target are woken with MK_OK; the rest ---+      |
 *            |     stay queued and one of them becomes the next leader    |
 *            |                                                            |
 *            |     fsync failed: truncate the segment back to synced_lsn  |
 *            +---- and fsync that; every queued waiter (all of them lie --+
 *                  past synced_lsn) is woken with the error. If even the
 *                  truncation fails: FAILED (I5), for good.
 *
 * Under MK_FSYNC_INTERVAL the leader is a background thread, every
 * fsync_interval_ms and only when something was written since the last sync
 * (or mk_wal_sync's caller).
 * There an fsync failure cannot be taken back (the commits were already
 * acknowledged), so it sets FAILED at once.
 *
 * No user-space write buffer: with ALWAYS the fsync dominates and is shared
 * by group commit; with INTERVAL each record must reach the OS (pwrite)
 * before commit returns anyway, so a process crash loses nothing acknowledged.
 *
 * Directory listing uses opendir/readdir directly: mk_env has no such call,
 * and listing is not an operation we inject faults into. Every open, read,
 * write, fsync, truncate and unlink goes through the mk_env.
 */
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format.h"
#include "util.h"

#define WAL_HDR_BYTES 24u       /* segment header */
#define WAL_REC_HEAD 5u         /* len u32 + type u8 */
#define WAL_REC_OVERHEAD 13u    /* head + xxh3 u64 */
#define WAL_MAX_PAYLOAD (1u << 30) /* writer-side limit; readers check against the file size */
#define WAL_DEFAULT_SEGMENT_BYTES (64ull << 20)
#define WAL_DEFAULT_INTERVAL_MS 1000
#define WAL_PATH_MAX 4096
#define WAL_READ_CHUNK (256u << 10)
#define WAL_STACK_REC 4096u     /* records up to this size are encoded on the stack */

/* ---- shared helpers ----------------------------------------------------- */

/* snprintf for messages and paths, where cutting a long message short is
 * intended (a wrapper, so the compiler's truncation warning stays quiet). */
static int fmt_msg(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fmt_msg(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n;
}

typedef void (*wal_log_fn)(void *ctx, int level, const char *msg);

static void wal_log(wal_log_fn log, void *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void wal_log(wal_log_fn log, void *ctx, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log) {
        log(ctx, level, msg);
    } else {
        static const char *names[] = {"error", "warning", "info"};
        fprintf(stderr, "meerkat: %s: %s\n", level >= 0 && level <= 2 ? names[level] : "log", msg);
    }
}

/* dir/<seq>.wal into out; MK_EINVAL if it does not fit. */
static mk_err seg_path(const char *dir, uint64_t seq, char *out, size_t cap, mk_diag *diag)
{
    int n = fmt_msg(out, cap, "%s/%016" PRIx64 ".wal", dir, seq);
    if (n < 0 || (size_t)n >= cap) return mk_diag_set(diag, MK_EINVAL, "%s: WAL directory path too long", dir);
    return MK_OK;
}

/* Parses "<16 lowercase hex>.wal"; 1 and *seq on success, 0 for other names. */
static int parse_seg_name(const char *name, uint64_t *seq)
{
    if (strlen(name) != 20 || strcmp(name + 16, ".wal") != 0) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else return 0;
        v = v << 4 | d;
    }
    *seq = v;
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sorted segment numbers in dir (*seqs malloc'ed, may be NULL when *n is
 * 0). A missing dir is no segments, *is_missing set. */
static mk_err list_segments(const char *dir, uint64_t **seqs, size_t *n, int *is_missing, mk_diag *diag)
{
    *seqs = NULL;
    *n = 0;
    *is_missing = 0;
    mk_err err = MK_OK;
    size_t cap = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) { *is_missing = 1; return MK_OK; }
        return mk_diag_set(diag, mk_err_from_errno(errno), "%s: cannot list WAL directory: %s", dir, strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        if (!parse_seg_name(de->d_name, &seq)) continue;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint64_t *p = realloc(*seqs, nc * sizeof *p);
            if (!p) { err = mk_diag_set(diag, MK_ENOMEM, "%s: no memory listing WAL segments", dir); goto out; }
            *seqs = p;
            cap = nc;
        }
        (*seqs)[(*n)++] = seq;
    }
    if (*n) qsort(*seqs, *n, sizeof **seqs, cmp_u64);
out:
    closedir(d);
    if (err) { free(*seqs); *seqs = NULL; *n = 0; }
    return err;
}

static void encode_header(uint8_t h[WAL_HDR_BYTES], uint64_t seq)
{
    mk_put_u32(h, MK_WAL_MAGIC);
    mk_put_u16(h + 4, MK_WAL_VERSION);
    mk_put_u16(h + 6, 0);
    mk_put_u64(h + 8, seq);
    mk_put_u64(h + 16, mk_hash64(h, 16));
}

/* ---- replay ------------------------------------------------------------- */

/* A read window over one segment, so records are parsed from memory without
 * reading the whole file at once nor one pread per record. */
typedef struct seg_reader {
    mk_env *env;
    int fd;
    uint64_t size; /* file size */
    uint8_t *buf;
    size_t cap;
    uint64_t off; /* file offset of buf[0] */
    size_t len;   /* valid bytes in buf */
} seg_reader;

/* Points *p at bytes [off, off+n) of the file; the caller ensures off + n
 * <= size. Returns 0 or -errno. */
static int reader_get(seg_reader *r, uint64_t off, size_t n, const uint8_t **p)
{
    if (off >= r->off && off + n <= r->off + r->len) { *p = r->buf + (off - r->off); return 0; }
    /* At least a chunk (or the whole file, if smaller), so small records
     * cost one pread per chunk, not one each. */
    size_t cap = r->size < WAL_READ_CHUNK ? (size_t)r->size : WAL_READ_CHUNK;
    if (cap < n) cap = n;
    if (cap > r->cap) {
        uint8_t *b = realloc(r->buf, cap);
        if (!b) return -ENOMEM;
        r->buf = b;
        r->cap = cap;
    }
    uint64_t want = r->size - off;
    if (want > r->cap) want = r->cap;
    r->off = off;
    r->len = 0;
    int rc = mk_env_pread_all(r->env, r->fd, r->buf, (size_t)want, (off_t)off);
    if (rc) return rc;
    r->len = (size_t)want;
    *p = r->buf;
    return 0;
}

/* 1 if bytes [off, size) are all zero, 0 if not, -errno on a read error. */
static int reader_all_zero(seg_reader *r, uint64_t off)
{
    while (off < r->size) {
        uint64_t n = r->size - off;
        if (n > WAL_READ_CHUNK) n = WAL_READ_CHUNK;
        const uint8_t *p;
        int rc = reader_get(r, off, (size_t)n, &p);
        if (rc) return rc;
        for (size_t i = 0; i < n; i++)
            if (p[i]) return 0;
        off += n;
    }
    return 1;
}

typedef struct replay_state {
    mk_env *env;
    const char *dir;
    wal_log_fn log;
    void *log_ctx;
    int is_read_only;
    mk_wal_replay_fn cb;
    void *cb_ctx;
    /* The last damage seen (a dropped tail or a skipped segment), so that
     * intact records found after it are reported as following a gap. */
    int has_damage;
    char damage_file[WAL_PATH_MAX];
    int has_warned_gap;
} replay_state;

static void note_damage(replay_state *st, const char *path)
{
    st->has_damage = 1;
    st->has_warned_gap = 0;
    fmt_msg(st->damage_file, sizeof st->damage_file, "%s", path);
}

/* Outcome of one segment's header check. */
enum { HDR_OK, HDR_SKIP, HDR_STUB };

/* Checks the header of segment seq. HDR_STUB: the file is shorter than a
 * header and what is there is a prefix of the header we would write (or
 * zeros): a segment whose creation was interrupted, holding no records.
 * MK_ETOONEW for our magic with a higher version. */
static mk_err check_header(replay_state *st, seg_reader *r, const char *path, uint64_t seq, int *verdict,
                           mk_diag *diag)
{
    uint8_t want[WAL_HDR_BYTES];
    encode_header(want, seq);
    *verdict = HDR_SKIP;
    const uint8_t *h;
    size_t have = r->size < WAL_HDR_BYTES ? (size_t)r->size : WAL_HDR_BYTES;
    int rc = have ? reader_get(r, 0, have, &h) : 0;
    if (rc) return mk_diag_set(diag, mk_err_from_errno(-rc), "%s: read of segment header failed: %s", path, strerror(-rc));
    if (have < WAL_HDR_BYTES) {
        int is_prefix = 1, is_zero = 1;
        for (size_t i = 0; i < have; i++) {
            if (h[i] != want[i]) is_prefix = 0;
            if (h[i]) is_zero = 0;
        }
        if (is_prefix || is_zero) { *verdict = HDR_STUB; return MK_OK; }
        wal_log(st->log, st->log_ctx, MK_LOG_WARN, "%s: segment of %zu bytes is shorter than a WAL header and not ours; skipped",
                path, have);
        return MK_OK;
    }
    uint32_t magic = mk_get_u32(h);
    uint16_t version = mk_get_u16(h + 4);
    if (magic != MK_WAL_MAGIC) {
        wal_log(st->log, st->log_ctx, MK_LOG_WARN, "%s: not a Meerkat WAL segment (magic 0x%08" PRIx32 "); skipped", path, magic);
        return MK_OK;
    }
    /* Every version keeps this 24-byte header as it is (FORMAT.md), so a
     * "too new" version is believed only when the header checksum holds:
     * otherwise a single flipped bit would refuse the whole database. */
    if (version > MK_WAL_VERSION && mk_get_u64(h + 16) == mk_hash64(h, 16))
        return mk_diag_set(diag, MK_ETOONEW, "%s: WAL format version %u is newer than this build reads (%u)", path,
                           (unsigned)version, (unsigned)MK_WAL_VERSION);
    if (version == 0 || version > MK_WAL_VERSION || mk_get_u64(h + 16) != mk_hash64(h, 16)) {
        wal_log(st->log, st->log_ctx, MK_LOG_WARN, "%s: segment header is corrupt (%s); segment skipped", path,
                version == 0 ? "version 0" : "checksum mismatch");
        return MK_OK;
    }
    if (mk_get_u64(h + 8) != seq) {
        wal_log(st->log, st->log_ctx, MK_LOG_WARN, "%s: segment header says segment %016" PRIx64 ", not the file name's; skipped",
                path, mk_get_u64(h + 8));
        return MK_OK;
    }
    *verdict = HDR_OK;
    return MK_OK;
}

/* Cuts the segment at off, durably. Failure is logged, not fatal: replay is
 * still correct (the damage is found again next time), and a torn tail must
 * never stop the database from opening. */
static void truncate_segment(replay_state *st, const char *path, uint64_t off)
{
    int fd = st->env->open(st->env, path, O_RDWR, 0);
    int rc = fd < 0 ? fd : st->env->ftruncate(st->env, fd, (off_t)off);
    if (!rc) rc = st->env->fsync(st->env, fd);
    if (fd >= 0) st->env->close(st->env, fd);
    if (rc)
        wal_log(st->log, st->log_ctx, MK_LOG_WARN, "%s: could not truncate at offset %" PRIu64 ": %s", path, off,
                strerror(-rc));
}

/* Replays one segment. *has_records tells whether any record came out. */
static mk_err replay_segment(replay_state *st, uint64_t seq, int *is_removed, int *has_records, mk_diag *diag)
{
    char path[WAL_PATH_MAX];
    seg_reader r = {st->env, -1, 0, NULL, 0, 0, 0};
    mk_err err = MK_OK;
    *is_removed = 0;
    *has_records = 0;
    if ((err = seg_path(st->dir, seq, path, sizeof path, diag))) goto out;
    r.fd = st->env->open(st->env, path, O_RDONLY, 0);
    if (r.fd == -ENOENT) goto out; /* raced with a remover: nothing to replay */
    if (r.fd < 0) {
        err = mk_diag_set(diag, mk_err_from_errno(-r.fd), "%s: open failed: %s", path, strerror(-r.fd));
        goto out;
    }
    int64_t sz = st->env->file_size(st->env, r.fd);
    if (sz < 0) {
        err = mk_diag_set(diag, mk_err_from_errno((int)-sz), "%s: stat failed: %s", path, strerror((int)-sz));
        goto out;
    }
    r.size = (uint64_t)sz;

    int verdict;
    if ((err = check_header(st, &r, path, seq, &verdict, diag))) goto out;
    if (verdict == HDR_STUB) {
        if (!st->is_read_only) {
            int rc = st->env->unlink(st->env, path);
            if (!rc) rc = mk_env_fsync_dir(st->env, st->dir);
            if (!rc) *is_removed = 1;
        }
        wal_log(st->log, st->log_ctx, MK_LOG_WARN, "%s: segment of %" PRIu64 " bytes has no complete header (creation was interrupted); %s",
                path, r.size, *is_removed ? "removed" : "ignored");
        goto out;
    }
    if (verdict == HDR_SKIP) { note_damage(st, path); goto out; }

    uint64_t off = WAL_HDR_BYTES;
    const char *why = NULL; /* set when a record fails its checks */
    int is_torn = 1;        /* the bad record reaches the end of the file */
    char whybuf[160];
    while (off < r.size) {
        uint64_t left = r.size - off;
        const uint8_t *p;
        int rc;
        if (left < WAL_REC_HEAD) {
            fmt_msg(whybuf, sizeof whybuf, "partial record header, %" PRIu64 " of %u bytes", left, WAL_REC_HEAD);
            why = whybuf;
            break;
        }
        if ((rc = reader_get(&r, off, WAL_REC_HEAD, &p))) goto read_failed;
        uint64_t len = mk_get_u32(p);
        uint8_t type = p[4];
        if (type == 0) {
            rc = reader_all_zero(&r, off);
            if (rc < 0) goto read_failed;
            why = rc ? "zero-filled tail" : "record type 0";
            is_torn = rc;
            break;
        }
        uint64_t total = WAL_REC_OVERHEAD + len;
        if (total > left) {
            fmt_msg(whybuf, sizeof whybuf, "record of %" PRIu64 " bytes, only %" PRIu64 " left in the file", total, left);
            why = whybuf;
            break;
        }
        if ((rc = reader_get(&r, off, (size_t)total, &p))) goto read_failed;
        if (mk_get_u64(p + WAL_REC_HEAD + len) != mk_hash64(p, WAL_REC_HEAD + (size_t)len)) {
            why = "checksum mismatch";
            is_torn = off + total == r.size;
            break;
        }
        *has_records = 1;
        if (st->has_damage && !st->has_warned_gap) {
            wal_log(st->log, st->log_ctx, MK_LOG_WARN,
                    "%s: intact records follow damaged %s; replaying them, but records between may be lost", path,
                    st->damage_file);
            st->has_warned_gap = 1;
        }
        int cbrc = st->cb(st->cb_ctx, type, p + WAL_REC_HEAD, (size_t)len, seq);
        if (cbrc) { err = (mk_err)cbrc; goto out; } /* the callback says why, in its own diag */
        off += total;
        continue;
    read_failed:
        /* Never truncate on a read error: the bytes may be fine. */
        err = mk_diag_set(diag, mk_err_from_errno(-rc), "%s: read failed at offset %" PRIu64 ": %s", path, off,
                          strerror(-rc));
        goto out;
    }
    if (why) {
        uint64_t dropped = r.size - off;
        wal_log(st->log, st->log_ctx, MK_LOG_WARN, "%s: %s record at offset %" PRIu64 " (%s); %s, %" PRIu64 " bytes dropped",
                path, is_torn ? "torn" : "corrupt", off, why, st->is_read_only ? "read-only, not truncated" : "truncated", dropped);
        if (!st->is_read_only) truncate_segment(st, path, off);
        note_damage(st, path);
    }
out:
    if (r.fd >= 0) st->env->close(st->env, r.fd);
    free(r.buf);
    return err;
}

mk_err mk_wal_replay(mk_env *env, const char *dir, const mk_wal_opts *opts, int is_read_only,
                     mk_wal_replay_fn cb, void *ctx, uint64_t *last_seq, mk_diag *diag)
{
    uint64_t *seqs = NULL;
    size_t n = 0;
    int is_missing;
    mk_err err = MK_OK;
    replay_state *st = NULL;
    uint64_t highest = 0; /* the highest segment left on disk */
    if (last_seq) *last_seq = 0;
    if (!env) env = mk_env_default();
    if (!dir || !cb) return mk_diag_set(diag, MK_EINVAL, "mk_wal_replay: NULL dir or callback");
    if ((err = list_segments(dir, &seqs, &n, &is_missing, diag))) goto out;
    st = calloc(1, sizeof *st);
    if (!st) { err = mk_diag_set(diag, MK_ENOMEM, "%s: no memory for WAL replay", dir); goto out; }
    *st = (replay_state){env, dir, opts ? opts->log : NULL, opts ? opts->log_ctx : NULL, is_read_only, cb, ctx, 0, "", 0};
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && seqs[i] != seqs[i - 1] + 1) {
            char path[WAL_PATH_MAX];
            if ((err = seg_path(dir, seqs[i], path, sizeof path, diag))) goto out;
            wal_log(st->log, st->log_ctx, MK_LOG_WARN, "%s: segments %016" PRIx64 "..%016" PRIx64 " are missing; records in them are lost",
                    path, seqs[i - 1] + 1, seqs[i] - 1);
            note_damage(st, "missing segments");
        }
        int is_removed, has_records;
        err = replay_segment(st, seqs[i], &is_removed, &has_records, diag);
        if (!is_removed) highest = seqs[i];
        if (err) goto out;
    }
out:
    if (last_seq) *last_seq = highest;
    free(st);
    free(seqs);
    return err;
}

/* ---- the writer --------------------------------------------------------- */

/* A committer waiting (MK_FSYNC_ALWAYS) for a sync that covers its record. */
typedef struct wal_waiter {
    uint64_t lsn;       /* just past its record */
    int is_resolved;    /* set, with err, by whoever resolves it; then unlinked */
    mk_err err;
    mk_diag *diag;      /* the committer's; written by the resolver under mu */
    struct wal_waiter *next;
} wal_waiter;

typedef struct wal_closed_seg {
    uint64_t seq;
    uint64_t n_bytes;
} wal_closed_seg;

struct mk_wal {
    mk_env *env;
    char *dir;
    mk_fsync_policy policy;
    int64_t interval_ms;
    uint64_t segment_bytes;
    wal_log_fn log;
    void *log_ctx;

    pthread_mutex_t mu;
    pthread_cond_t cv;    /* sync finished / state changed */
    pthread_cond_t bg_cv; /* wakes the interval thread early (close) */

    /* All below under mu. */
    int fd;                 /* current segment, open O_RDWR */
    uint64_t seq;           /* its number */
    uint64_t seg_size;      /* its length = where the next record goes */
    uint64_t seg_start_lsn; /* LSN of its byte 0 */
    uint64_t written_lsn;   /* I2 */
    uint64_t synced_lsn;    /* I2 */
    int is_sync_running;    /* I4 */
    int is_dir_dirty;       /* a segment was created and the dir not fsynced (OFF) */
    uint64_t unsynced_seq_lo; /* OFF: oldest closed segment that was never fsynced, 0 = none */
    wal_waiter *waiters;
    mk_err failed;          /* I5 */
    char failed_msg[512];
    uint64_t cut_epoch;     /* bumped when unsynced bytes are cut off (ALWAYS) */
    char cut_msg[512];      /* why, for appenders that had not queued yet */
    wal_closed_seg *closed; /* older segments on disk, ascending */
    size_t n_closed, cap_closed;

    pthread_t bg;
    int has_bg;
    int is_stopping;
};

/* Wakes every waiter whose record is covered by a successful sync. */
static void resolve_synced(mk_wal *w)
{
    wal_waiter **pp = &w->waiters;
    while (*pp) {
        wal_waiter *x = *pp;
        if (x->lsn <= w->synced_lsn) {
            x->is_resolved = 1;
            x->err = MK_OK;
            *pp = x->next;
        } else {
            pp = &x->next;
        }
    }
}

/* Fails every queued waiter: their bytes were cut off (or may be lost). */
static void resolve_failed(mk_wal *w, mk_err err, const char *msg)
{
    while (w->waiters) {
        wal_waiter *x = w->waiters;
        x->is_resolved = 1;
        x->err = err;
        mk_diag_set(x->diag, err, "%s", msg);
        w->waiters = x->next;
    }
}

static void set_failed(mk_wal *w, mk_err err, const char *msg)
{
    if (w->failed) return;
    w->failed = err;
    fmt_msg(w->failed_msg, sizeof w->failed_msg, "%s; the WAL refuses further writes until reopened", msg);
    wal_log(w->log, w->log_ctx, MK_LOG_ERROR, "%s", w->failed_msg);
}

static mk_err failed_err(mk_wal *w, mk_diag *diag) { return mk_diag_set(diag, w->failed, "%s", w->failed_msg); }

static const char *cur_path(mk_wal *w, char *buf, size_t cap)
{
    if (seg_path(w->dir, w->seq, buf, cap, NULL)) fmt_msg(buf, cap, "%s/<segment %" PRIu64 ">", w->dir, w->seq);
    return buf;
}

/*
 * An fsync of the current segment failed with -rc. Under
 * ALWAYS every unsynced byte belongs to a committer still waiting (I3), so the
 * segment is cut back to synced_lsn and they all get the error; if that
 * fails, or under any other policy (where unsynced commits were already
 * acknowledged), the WAL is FAILED (I5). Returns the error, diag filled.
 */
static mk_err on_sync_failure(mk_wal *w, int rc, mk_diag *diag)
{
    char path[WAL_PATH_MAX], msg[512];
    mk_err err = mk_err_from_errno(-rc);
    uint64_t good = w->synced_lsn - w->seg_start_lsn;
    fmt_msg(msg, sizeof msg, "%s: fsync failed with %" PRIu64 " unsynced bytes from offset %" PRIu64 ": %s",
             cur_path(w, path, sizeof path), w->written_lsn - w->synced_lsn, good, strerror(-rc));
    if (w->policy == MK_FSYNC_ALWAYS && w->synced_lsn >= w->seg_start_lsn) {
        int r2 = w->env->ftruncate(w->env, w->fd, (off_t)good);
        if (!r2) r2 = w->env->fsync(w->env, w->fd);
        if (r2) {
            char m2[512];
            fmt_msg(m2, sizeof m2, "%.300s; truncating back to offset %" PRIu64 " failed too: %s", msg, good, strerror(-r2));
            set_failed(w, err, m2);
        } else {
            w->written_lsn = w->synced_lsn;
            w->seg_size = good;
            /* Appenders that wrote but have not called mk_wal_wait yet are
             * not queued: the epoch tells them their record is gone. */
            w->cut_epoch++;
            fmt_msg(w->cut_msg, sizeof w->cut_msg, "%.400s; the record was cut off", msg);
            wal_log(w->log, w->log_ctx, MK_LOG_ERROR, "%s; the uncommitted records were cut off", msg);
        }
    } else {
        char m2[512];
        fmt_msg(m2, sizeof m2, "%.400s; records acknowledged since the last sync may be lost", msg);
        set_failed(w, err, m2);
    }
    const char *said = w->failed ? w->failed_msg : msg;
    resolve_failed(w, err, said);
    pthread_cond_broadcast(&w->cv);
    return mk_diag_set(diag, err, "%s", said);
}

/*
 * Makes every byte written so far durable. Called with mu held and no sync
 * running; if drop_lock, mu is released during the fsync so committers can
 * keep appending (they queue for the next leader). Resolves waiters.
 */
static mk_err sync_current(mk_wal *w, int drop_lock, mk_diag *diag)
{
    if (w->synced_lsn == w->written_lsn) { resolve_synced(w); return MK_OK; }
    uint64_t target = w->written_lsn;
    int fd = w->fd;
    w->is_sync_running = 1;
    if (drop_lock) pthread_mutex_unlock(&w->mu);
    int rc = w->env->fsync(w->env, fd);
    if (drop_lock) pthread_mutex_lock(&w->mu);
    w->is_sync_running = 0;
    if (rc) return on_sync_failure(w, rc, diag);
    if (target > w->synced_lsn) w->synced_lsn = target;
    resolve_synced(w);
    pthread_cond_broadcast(&w->cv);
    return MK_OK;
}

/* Writes a fresh segment seq: header, and (unless OFF) fsync of it and of
 * the directory. On failure nothing of it is left behind. */
static mk_err create_segment(mk_wal *w, uint64_t seq, int *out_fd, mk_diag *diag)
{
    char path[WAL_PATH_MAX];
    uint8_t h[WAL_HDR_BYTES];
    const char *step = "create";
    int rc, fd = -1;
    mk_err err = seg_path(w->dir, seq, path, sizeof path, diag);
    if (err) return err;
    fd = w->env->open(w->env, path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd == -EEXIST)
        return mk_diag_set(diag, MK_EEXIST, "%s: WAL segment already exists (open with the replayed last_seq + 1)", path);
    if (fd < 0) { rc = fd; goto fail_nofile; }
    encode_header(h, seq);
    step = "write of header";
    if ((rc = mk_env_pwrite_all(w->env, fd, h, sizeof h, 0))) goto fail;
    if (w->policy != MK_FSYNC_OFF) {
        step = "fsync";
        if ((rc = w->env->fsync(w->env, fd))) goto fail;
        step = "fsync of the directory after creating";
        if ((rc = mk_env_fsync_dir(w->env, w->dir))) goto fail;
    } else {
        w->is_dir_dirty = 1;
    }
    *out_fd = fd;
    return MK_OK;
fail:
    w->env->close(w->env, fd);
    if (w->env->unlink(w->env, path) != 0) {
        /* A stray file would make every later O_EXCL create of this seq fail. */
        char m[512];
        fmt_msg(m, sizeof m, "%s: %s failed (%s) and the half-made segment could not be removed", path, step,
                 strerror(-rc));
        set_failed(w, mk_err_from_errno(-rc), m);
    }
fail_nofile:
    return mk_diag_set(diag, mk_err_from_errno(-rc), "%s: %s failed: %s", path, step, strerror(-rc));
}

/*
 * Closes the current segment and starts seq + 1. Called with mu held and no
 * sync running (I4). The old segment is fsynced first unless the policy is
 * OFF and !force (I3). On failure the current segment stays in use.
 */
static mk_err rotate(mk_wal *w, int force_sync, mk_diag *diag)
{
    mk_err err;
    if (w->policy != MK_FSYNC_OFF || force_sync) {
        if ((err = sync_current(w, 0, diag))) return err;
    }
    if (w->n_closed == w->cap_closed) {
        size_t nc = w->cap_closed ? w->cap_closed * 2 : 16;
        wal_closed_seg *p = realloc(w->closed, nc * sizeof *p);
        if (!p) return mk_diag_set(diag, MK_ENOMEM, "%s: no memory for the segment list", w->dir);
        w->closed = p;
        w->cap_closed = nc;
    }
    int fd;
    if ((err = create_segment(w, w->seq + 1, &fd, diag))) return err;
    if (w->policy == MK_FSYNC_OFF && !force_sync && !w->unsynced_seq_lo) w->unsynced_seq_lo = w->seq;
    w->env->close(w->env, w->fd); /* data is synced (or OFF); a close error says nothing more */
    w->closed[w->n_closed++] = (wal_closed_seg){w->seq, w->seg_size};
    w->fd = fd;
    w->seq++;
    w->seg_start_lsn = w->written_lsn;
    w->seg_size = WAL_HDR_BYTES;
    w->written_lsn += WAL_HDR_BYTES;
    if (w->policy != MK_FSYNC_OFF) w->synced_lsn = w->written_lsn;
    return MK_OK;
}

/* Waits (mu held) until no leader is inside fsync (I4). */
static void wait_sync_idle(mk_wal *w)
{
    while (w->is_sync_running) pthread_cond_wait(&w->cv, &w->mu);
}

static void *interval_main(void *arg)
{
    mk_wal *w = arg;
    pthread_mutex_lock(&w->mu);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!w->is_stopping) {
        next.tv_sec += w->interval_ms / 1000;
        next.tv_nsec += (long)(w->interval_ms % 1000) * 1000000L;
        if (next.tv_nsec >= 1000000000L) { next.tv_sec++; next.tv_nsec -= 1000000000L; }
        while (!w->is_stopping) {
            int rc = pthread_cond_timedwait(&w->bg_cv, &w->mu, &next);
            if (rc == ETIMEDOUT) break;
        }
        if (w->is_stopping) break;
        /* Only when something was written since the last sync; a leader
         * already running (mk_wal_sync) covers us. */
        if (!w->failed && !w->is_sync_running && w->written_lsn > w->synced_lsn) sync_current(w, 1, NULL);
        /* If an fsync took longer than the interval, do not try to catch up. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec)) next = now;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The parent of dir, for fsyncing it after mkdir. */
static void parent_of(const char *dir, char *out, size_t cap)
{
    fmt_msg(out, cap, "%s", dir);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = 0;
    char *s = strrchr(out, '/');
    if (!s) fmt_msg(out, cap, ".");
    else if (s == out) out[1] = 0;
    else *s = 0;
}

/* Frees w's memory and sync objects; the fd must be closed already. */
static void wal_free(mk_wal *w, int has_sync_objs)
{
    if (has_sync_objs) {
        pthread_cond_destroy(&w->bg_cv);
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
    }
    free(w->closed);
    free(w->dir);
    free(w);
}

mk_err mk_wal_open(mk_env *env, const char *dir, const mk_wal_opts *opts, uint64_t first_seq, mk_wal **out,
                   mk_diag *diag)
{
    mk_err err = MK_OK;
    mk_wal *w = NULL;
    uint64_t *seqs = NULL;
    size_t n_seqs = 0;
    int is_missing, has_sync_objs = 0;
    if (out) *out = NULL;
    if (!env) env = mk_env_default();
    if (!dir || !out) return mk_diag_set(diag, MK_EINVAL, "mk_wal_open: NULL dir or out");
    if (first_seq == 0) return mk_diag_set(diag, MK_EINVAL, "%s: WAL segment numbers start at 1", dir);
    if (opts && (opts->fsync < MK_FSYNC_INTERVAL || opts->fsync > MK_FSYNC_OFF))
        return mk_diag_set(diag, MK_EINVAL, "%s: unknown fsync policy %d", dir, (int)opts->fsync);

    w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) { err = mk_diag_set(diag, MK_ENOMEM, "%s: no memory for the WAL", dir); goto out; }
    w->env = env;
    w->fd = -1;
    w->policy = opts ? opts->fsync : MK_FSYNC_INTERVAL;
    w->interval_ms = opts && opts->fsync_interval_ms > 0 ? opts->fsync_interval_ms : WAL_DEFAULT_INTERVAL_MS;
    w->segment_bytes = opts && opts->segment_bytes ? opts->segment_bytes : WAL_DEFAULT_SEGMENT_BYTES;
    w->log = opts ? opts->log : NULL;
    w->log_ctx = opts ? opts->log_ctx : NULL;

    int rc = env->mkdir(env, dir, 0755);
    if (rc && rc != -EEXIST) { err = mk_diag_set(diag, mk_err_from_errno(-rc), "%s: mkdir failed: %s", dir, strerror(-rc)); goto out; }
    if (!rc && w->policy != MK_FSYNC_OFF) {
        char parent[WAL_PATH_MAX];
        parent_of(dir, parent, sizeof parent);
        if ((rc = mk_env_fsync_dir(env, parent))) {
            err = mk_diag_set(diag, mk_err_from_errno(-rc), "%s: fsync of the directory after mkdir failed: %s", parent, strerror(-rc));
            goto out;
        }
    }

    /* Older segments count towards mk_wal_bytes and are what remove_before
     * deletes; a segment at or past first_seq would collide later. */
    if ((err = list_segments(dir, &seqs, &n_seqs, &is_missing, diag))) goto out;
    if (n_seqs && seqs[n_seqs - 1] >= first_seq) {
        err = mk_diag_set(diag, MK_EEXIST, "%s: segment %016" PRIx64 " exists, at or past first_seq %016" PRIx64, dir,
                          seqs[n_seqs - 1], first_seq);
        goto out;
    }
    if (n_seqs) {
        w->closed = calloc(n_seqs, sizeof *w->closed);
        if (!w->closed) { err = mk_diag_set(diag, MK_ENOMEM, "%s: no memory for the segment list", dir); goto out; }
        w->cap_closed = n_seqs;
    }
    for (size_t i = 0; i < n_seqs; i++) {
        char path[WAL_PATH_MAX];
        if ((err = seg_path(dir, seqs[i], path, sizeof path, diag))) goto out;
        int fd = env->open(env, path, O_RDONLY, 0);
        if (fd == -ENOENT) continue;
        if (fd < 0) { err = mk_diag_set(diag, mk_err_from_errno(-fd), "%s: open failed: %s", path, strerror(-fd)); goto out; }
        int64_t sz = env->file_size(env, fd);
        env->close(env, fd);
        w->closed[w->n_closed++] = (wal_closed_seg){seqs[i], sz > 0 ? (uint64_t)sz : 0};
    }

    if (pthread_mutex_init(&w->mu, NULL)) { err = mk_diag_set(diag, MK_ENOMEM, "%s: mutex init failed", dir); goto out; }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int c1 = pthread_cond_init(&w->cv, NULL), c2 = pthread_cond_init(&w->bg_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (c1 || c2) {
        if (!c1) pthread_cond_destroy(&w->cv);
        if (!c2) pthread_cond_destroy(&w->bg_cv);
        pthread_mutex_destroy(&w->mu);
        err = mk_diag_set(diag, MK_ENOMEM, "%s: condition variable init failed", dir);
        goto out;
    }
    has_sync_objs = 1;

    if ((err = create_segment(w, first_seq, &w->fd, diag))) goto out;
    w->seq = first_seq;
    w->seg_size = WAL_HDR_BYTES;
    w->written_lsn = WAL_HDR_BYTES;
    w->synced_lsn = w->policy == MK_FSYNC_OFF ? 0 : WAL_HDR_BYTES;

    if (w->policy == MK_FSYNC_INTERVAL) {
        if (pthread_create(&w->bg, NULL, interval_main, w)) {
            err = mk_diag_set(diag, MK_ENOMEM, "%s: cannot start the WAL sync thread", dir);
            goto out;
        }
        w->has_bg = 1;
    }
    *out = w;
    w = NULL;
out:
    if (w) {
        if (w->fd >= 0) {
            char path[WAL_PATH_MAX];
            w->env->close(w->env, w->fd);
            w->env->unlink(w->env, cur_path(w, path, sizeof path));
        }
        wal_free(w, has_sync_objs);
    }
    free(seqs);
    return err;
}

mk_err mk_wal_append(mk_wal *w, uint8_t type, const void *payload, size_t len, uint64_t *seg_seq,
                     mk_wal_ticket *ticket, mk_diag *diag)
{
    uint8_t stack[WAL_STACK_REC];
    uint8_t *rec = stack;
    mk_err err = MK_OK;
    int is_locked = 0;
    if (!w) return mk_diag_set(diag, MK_EINVAL, "mk_wal_append: NULL wal");
    if (type == 0) return mk_diag_set(diag, MK_EINVAL, "%s: WAL record type 0 is reserved", w->dir);
    if (len > WAL_MAX_PAYLOAD)
        return mk_diag_set(diag, MK_ELIMIT, "%s: WAL record of %zu bytes exceeds the limit of %u", w->dir, len, WAL_MAX_PAYLOAD);
    if (len && !payload) return mk_diag_set(diag, MK_EINVAL, "%s: NULL payload", w->dir);

    /* Encode and checksum outside the lock. */
    size_t total = WAL_REC_OVERHEAD + len;
    if (total > sizeof stack && !(rec = malloc(total))) {
        rec = stack;
        return mk_diag_set(diag, MK_ENOMEM, "%s: no memory for a %zu-byte WAL record", w->dir, total);
    }
    mk_put_u32(rec, (uint32_t)len);
    rec[4] = type;
    if (len) memcpy(rec + WAL_REC_HEAD, payload, len);
    mk_put_u64(rec + WAL_REC_HEAD + len, mk_hash64(rec, WAL_REC_HEAD + len));

    pthread_mutex_lock(&w->mu);
    is_locked = 1;
    for (;;) {
        if (w->failed) { err = failed_err(w, diag); goto out; }
        if (w->seg_size <= WAL_HDR_BYTES || w->seg_size + total <= w->segment_bytes) break;
        if (w->is_sync_running) { pthread_cond_wait(&w->cv, &w->mu); continue; } /* I4 */
        if ((err = rotate(w, 0, diag))) goto out;
    }

    char path[WAL_PATH_MAX];
    uint64_t off = w->seg_size;
    int rc = mk_env_pwrite_all(w->env, w->fd, rec, total, (off_t)off);
    if (rc) {
        /* Cut the partial record off so the next one is not hidden behind it. */
        err = mk_diag_set(diag, mk_err_from_errno(-rc), "%s: write of %zu-byte record at offset %" PRIu64 " failed: %s",
                          cur_path(w, path, sizeof path), total, off, strerror(-rc));
        int r2 = w->env->ftruncate(w->env, w->fd, (off_t)off);
        if (r2) {
            char m[512];
            fmt_msg(m, sizeof m, "%s: write at offset %" PRIu64 " failed (%s) and truncating back failed too: %s", path,
                     off, strerror(-rc), strerror(-r2));
            set_failed(w, err, m);
            mk_diag_set(diag, err, "%s", w->failed_msg);
        }
        goto out;
    }
    w->seg_size += total;
    w->written_lsn += total;
    if (seg_seq) *seg_seq = w->seq;
    if (ticket) *ticket = (mk_wal_ticket){w->written_lsn, w->cut_epoch};
out:
    if (is_locked) pthread_mutex_unlock(&w->mu);
    if (rec != stack) free(rec);
    return err;
}

mk_err mk_wal_wait(mk_wal *w, mk_wal_ticket t, mk_diag *diag)
{
    if (!w) return mk_diag_set(diag, MK_EINVAL, "mk_wal_wait: NULL wal");
    if (w->policy != MK_FSYNC_ALWAYS) return MK_OK; /* written is enough */
    mk_err err = MK_OK;
    pthread_mutex_lock(&w->mu);
    if (t.epoch != w->cut_epoch) {
        err = mk_diag_set(diag, MK_EIO, "%s", w->cut_msg);
    } else if (t.lsn > w->synced_lsn) {
        if (w->failed) {
            err = failed_err(w, diag);
        } else {
            wal_waiter me = {t.lsn, 0, MK_OK, diag, w->waiters};
            w->waiters = &me;
            while (!me.is_resolved) {
                if (!w->is_sync_running) sync_current(w, 1, NULL); /* become the leader */
                else pthread_cond_wait(&w->cv, &w->mu);
            }
            err = me.err; /* the resolver filled diag */
        }
    }
    pthread_mutex_unlock(&w->mu);
    return err;
}

mk_err mk_wal_commit(mk_wal *w, uint8_t type, const void *payload, size_t len, uint64_t *seg_seq, mk_diag *diag)
{
    mk_wal_ticket t;
    mk_err err = mk_wal_append(w, type, payload, len, seg_seq, &t, diag);
    return err ? err : mk_wal_wait(w, t, diag);
}

mk_err mk_wal_cut(mk_wal *w, uint64_t *new_seq, mk_diag *diag)
{
    if (!w) return mk_diag_set(diag, MK_EINVAL, "mk_wal_cut: NULL wal");
    mk_err err;
    pthread_mutex_lock(&w->mu);
    wait_sync_idle(w);
    if (w->failed) err = failed_err(w, diag);
    else err = rotate(w, 1, diag);
    if (!err && new_seq) *new_seq = w->seq;
    pthread_mutex_unlock(&w->mu);
    return err;
}

mk_err mk_wal_remove_before(mk_wal *w, uint64_t seq, mk_diag *diag)
{
    if (!w) return mk_diag_set(diag, MK_EINVAL, "mk_wal_remove_before: NULL wal");
    mk_err err = MK_OK;
    size_t kept = 0, n_removed = 0;
    pthread_mutex_lock(&w->mu);
    /* Never the current segment, whatever seq says. */
    for (size_t i = 0; i < w->n_closed; i++) {
        wal_closed_seg s = w->closed[i];
        if (err || s.seq >= seq || s.seq >= w->seq) { w->closed[kept++] = s; continue; }
        char path[WAL_PATH_MAX];
        err = seg_path(w->dir, s.seq, path, sizeof path, diag);
        int rc = err ? 0 : w->env->unlink(w->env, path);
        if (rc && rc != -ENOENT)
            err = mk_diag_set(diag, mk_err_from_errno(-rc), "%s: unlink failed: %s", path, strerror(-rc));
        if (err) { w->closed[kept++] = s; continue; }
        n_removed++;
    }
    w->n_closed = kept;
    /* Removed segments need no fsync (sync_all skips missing ones anyway). */
    if (!err && w->unsynced_seq_lo && w->unsynced_seq_lo < seq) w->unsynced_seq_lo = seq < w->seq ? seq : 0;
    if (n_removed && w->policy != MK_FSYNC_OFF) {
        int rc = mk_env_fsync_dir(w->env, w->dir);
        if (rc && !err)
            err = mk_diag_set(diag, mk_err_from_errno(-rc), "%s: fsync of the directory after removing segments failed: %s",
                              w->dir, strerror(-rc));
    } else if (n_removed) {
        w->is_dir_dirty = 1;
    }
    pthread_mutex_unlock(&w->mu);
    return err;
}

/* mk_wal_sync with mu held: older never-synced segments (OFF), the current
 * one, then the directory. */
static mk_err sync_all(mk_wal *w, mk_diag *diag)
{
    mk_err err = MK_OK;
    wait_sync_idle(w);
    if (w->failed) return failed_err(w, diag);
    while (w->unsynced_seq_lo && w->unsynced_seq_lo < w->seq) {
        char path[WAL_PATH_MAX];
        if ((err = seg_path(w->dir, w->unsynced_seq_lo, path, sizeof path, diag))) return err;
        int fd = w->env->open(w->env, path, O_RDONLY, 0);
        int rc = fd == -ENOENT ? 0 : fd < 0 ? fd : w->env->fsync(w->env, fd);
        if (fd >= 0) w->env->close(w->env, fd);
        if (rc) {
            char m[512];
            fmt_msg(m, sizeof m, "%s: fsync failed: %s", path, strerror(-rc));
            set_failed(w, mk_err_from_errno(-rc), m);
            return failed_err(w, diag);
        }
        w->unsynced_seq_lo++;
    }
    w->unsynced_seq_lo = 0;
    if ((err = sync_current(w, 1, diag))) return err;
    if (w->is_dir_dirty) {
        int rc = mk_env_fsync_dir(w->env, w->dir);
        if (rc) return mk_diag_set(diag, mk_err_from_errno(-rc), "%s: fsync of the WAL directory failed: %s", w->dir, strerror(-rc));
        w->is_dir_dirty = 0;
    }
    return MK_OK;
}

mk_err mk_wal_sync(mk_wal *w, mk_diag *diag)
{
    if (!w) return mk_diag_set(diag, MK_EINVAL, "mk_wal_sync: NULL wal");
    pthread_mutex_lock(&w->mu);
    mk_err err = sync_all(w, diag);
    pthread_mutex_unlock(&w->mu);
    return err;
}

uint64_t mk_wal_bytes(mk_wal *w)
{
    if (!w) return 0;
    pthread_mutex_lock(&w->mu);
    uint64_t n = w->seg_size;
    for (size_t i = 0; i < w->n_closed; i++) n += w->closed[i].n_bytes;
    pthread_mutex_unlock(&w->mu);
    return n;
}

mk_err mk_wal_close(mk_wal *w, mk_diag *diag)
{
    if (!w) return MK_OK;
    mk_err err = MK_OK;
    if (w->has_bg) {
        pthread_mutex_lock(&w->mu);
        w->is_stopping = 1;
        pthread_cond_broadcast(&w->bg_cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->bg, NULL);
    }
    pthread_mutex_lock(&w->mu);
    wait_sync_idle(w);
    if (w->failed) err = failed_err(w, diag);
    else if (w->policy != MK_FSYNC_OFF) err = sync_all(w, diag);
    pthread_mutex_unlock(&w->mu);
    w->env->close(w->env, w->fd);
    wal_free(w, 1);
    return err;
}

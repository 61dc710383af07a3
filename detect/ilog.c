/*
 * detect/ilog.c — the incident log file (see ilog.h; byte layout in
 * engine/FORMAT.md, "Incident log").
 *
 *   header  magic u32 "MKIL" | version u16 | reserved u16 (0) | generation u64
 *           | xxh3 u64 of bytes 0..15                                (24 bytes)
 *   record  len u32 | type u8 (MK_ILOG_REC_BATCH) | payload[len] | xxh3 u64
 *           (the checksum covers len, type and payload)
 *
 * The generation grows by one at each rewrite (compaction); it is for
 * inspection only.
 *
 * A torn tail is recognised as the WAL does it: fewer bytes left than a
 * record header, a length running past the end of the file, a type byte 0
 * (a zero-filled tail), or a checksum mismatch. Everything from the first
 * bad record on is cut off with a warning: records are appended one at a
 * time and fsynced before the next, so only the last one can be torn, and
 * anything after a corrupt record cannot be trusted to be in order.
 *
 * Invariants of an open mk_ilog: fd is the file at path; size is its length
 * and the offset of the next record; bytes [0, size) are a valid header and
 * whole, checksummed records.
 *
 * The file is read whole at open: compaction keeps it small (the store
 * rewrites it once it passes its size limit), so this costs one read.
 */
#include "ilog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "format.h"
#include "meerkat/db.h"

#define ILOG_HDR_BYTES 24u
#define ILOG_REC_HEAD 5u
#define ILOG_REC_OVERHEAD 13u
#define ILOG_MAX_PAYLOAD (1u << 28)
#define ILOG_NAME "incidents.log"
#define ILOG_PATH_MAX 4096

struct mk_ilog {
    mk_env *env;
    char dir[ILOG_PATH_MAX];
    char path[ILOG_PATH_MAX];
    int fd;
    uint64_t size;
    uint64_t generation;
    mk_ilog_log_fn log;
    void *log_ctx;
};

static void ilog_log(mk_ilog_log_fn log, void *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void ilog_log(mk_ilog_log_fn log, void *ctx, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log) log(ctx, level, msg);
    else fprintf(stderr, "meerkat: %s: %s\n", level == MK_LOG_ERROR ? "error" : level == MK_LOG_WARN ? "warning" : "info", msg);
}

static void encode_header(uint8_t h[ILOG_HDR_BYTES], uint64_t generation)
{
    mk_put_u32(h, MK_ILOG_MAGIC);
    mk_put_u16(h + 4, MK_ILOG_VERSION);
    mk_put_u16(h + 6, 0);
    mk_put_u64(h + 8, generation);
    mk_put_u64(h + 16, mk_hash64(h, 16));
}

mk_err mk_ilog_frame(mk_buf *b, const void *payload, size_t len)
{
    if (len == 0 || len > ILOG_MAX_PAYLOAD) return MK_EINVAL;
    mk_err err = mk_buf_reserve(b, len + ILOG_REC_OVERHEAD);
    if (err) return err;
    uint8_t *p = b->data + b->len;
    mk_put_u32(p, (uint32_t)len);
    p[4] = MK_ILOG_REC_BATCH;
    memcpy(p + ILOG_REC_HEAD, payload, len);
    mk_put_u64(p + ILOG_REC_HEAD + len, mk_hash64(p, ILOG_REC_HEAD + len));
    b->len += len + ILOG_REC_OVERHEAD;
    return MK_OK;
}

/* Cuts the file at off durably; failure is logged (replay finds the damage
 * again next time), and appends then continue at off anyway. */
static int cut_at(mk_ilog *l, uint64_t off)
{
    int rc = l->env->ftruncate(l->env, l->fd, (off_t)off);
    if (!rc) rc = l->env->fsync(l->env, l->fd);
    return rc;
}

/* Replays data[0..n) (the whole file). Sets *good_end to the end of the last
 * intact record. */
static mk_err replay(mk_ilog *l, const uint8_t *data, size_t n, mk_ilog_replay_fn cb, void *cb_ctx,
                     uint64_t *good_end, mk_diag *diag)
{
    size_t off = ILOG_HDR_BYTES;
    const char *why = NULL;
    char whybuf[160];
    while (off < n) {
        size_t left = n - off;
        if (left < ILOG_REC_HEAD) {
            snprintf(whybuf, sizeof whybuf, "partial record header, %zu of %u bytes", left, ILOG_REC_HEAD);
            why = whybuf;
            break;
        }
        uint64_t len = mk_get_u32(data + off);
        uint8_t type = data[off + 4];
        if (type != MK_ILOG_REC_BATCH) {
            why = type == 0 ? "record type 0 (zero-filled tail)" : "unknown record type";
            break;
        }
        if (len == 0 || len + ILOG_REC_OVERHEAD > left) {
            snprintf(whybuf, sizeof whybuf, "record of %" PRIu64 " bytes, only %zu left in the file",
                     len + ILOG_REC_OVERHEAD, left);
            why = whybuf;
            break;
        }
        if (mk_get_u64(data + off + ILOG_REC_HEAD + len) != mk_hash64(data + off, ILOG_REC_HEAD + (size_t)len)) {
            why = "checksum mismatch";
            break;
        }
        if (cb) {
            int rc = cb(cb_ctx, data + off + ILOG_REC_HEAD, (size_t)len, off);
            if (rc) {
                if (diag && diag->code == MK_OK) mk_diag_set(diag, (mk_err)rc, "%s: record at offset %zu refused", l->path, off);
                return (mk_err)rc;
            }
        }
        off += ILOG_REC_OVERHEAD + (size_t)len;
    }
    *good_end = off;
    if (why)
        ilog_log(l->log, l->log_ctx, MK_LOG_WARN,
                 "%s: torn or corrupt record at offset %zu (%s); truncated, %zu bytes dropped", l->path, off, why,
                 n - off);
    return MK_OK;
}

/* Writes a fresh header-only file at path (truncating) and fsyncs it and dir. */
static mk_err create_file(mk_ilog *l, mk_diag *diag)
{
    uint8_t h[ILOG_HDR_BYTES];
    encode_header(h, l->generation);
    int rc = l->env->ftruncate(l->env, l->fd, 0);
    if (!rc) rc = mk_env_pwrite_all(l->env, l->fd, h, sizeof h, 0);
    if (!rc) rc = l->env->fsync(l->env, l->fd);
    if (!rc) rc = mk_env_fsync_dir(l->env, l->dir);
    if (rc) return mk_diag_set(diag, mk_err_from_errno(-rc), "%s: writing the header failed: %s", l->path, strerror(-rc));
    l->size = ILOG_HDR_BYTES;
    return MK_OK;
}

mk_err mk_ilog_open(mk_env *env, const char *dir, mk_ilog_log_fn log, void *log_ctx,
                    mk_ilog_replay_fn cb, void *cb_ctx, mk_ilog **out, mk_diag *diag)
{
    mk_err err = MK_OK;
    uint8_t *data = NULL;
    size_t n = 0;
    *out = NULL;
    if (!env) env = mk_env_default();
    mk_ilog *l = calloc(1, sizeof *l);
    if (!l) return mk_diag_set(diag, MK_ENOMEM, "%s: no memory for the incident log", dir);
    l->env = env;
    l->fd = -1;
    l->log = log;
    l->log_ctx = log_ctx;
    int pn = snprintf(l->dir, sizeof l->dir, "%s", dir);
    int qn = snprintf(l->path, sizeof l->path, "%s/%s", dir, ILOG_NAME);
    if (pn < 0 || qn < 0 || (size_t)qn >= sizeof l->path) {
        err = mk_diag_set(diag, MK_EINVAL, "%s: incident log directory path too long", dir);
        goto out;
    }
    int rc = env->mkdir(env, dir, 0755);
    if (rc && rc != -EEXIST) {
        err = mk_diag_set(diag, mk_err_from_errno(-rc), "%s: cannot create directory: %s", dir, strerror(-rc));
        goto out;
    }
    l->fd = env->open(env, l->path, O_RDWR | O_CREAT, 0644);
    if (l->fd < 0) {
        err = mk_diag_set(diag, mk_err_from_errno(-l->fd), "%s: open failed: %s", l->path, strerror(-l->fd));
        goto out;
    }
    if ((err = mk_env_read_file(env, l->path, &data, &n, diag))) goto out;
    if (n < ILOG_HDR_BYTES) {
        /* Empty, or the creation of the file was cut short: nothing was ever
         * acknowledged in it (the header is fsynced before any record). */
        int is_zero = 1;
        for (size_t i = 0; i < n; i++)
            if (data[i]) is_zero = 0;
        uint8_t want[ILOG_HDR_BYTES];
        encode_header(want, 1);
        if (n > 0 && !is_zero && memcmp(data, want, n) != 0) {
            err = mk_diag_set(diag, MK_ENOTOURS, "%s: %zu bytes that are not an incident log header", l->path, n);
            goto out;
        }
        if (n > 0) ilog_log(log, log_ctx, MK_LOG_WARN, "%s: header of %zu bytes is incomplete (creation was interrupted); rewritten", l->path, n);
        l->generation = 1;
        err = create_file(l, diag);
        goto out;
    }
    if (mk_get_u32(data) != MK_ILOG_MAGIC) {
        err = mk_diag_set(diag, MK_ENOTOURS, "%s: not a Meerkat incident log (magic 0x%08" PRIx32 ")", l->path,
                          mk_get_u32(data));
        goto out;
    }
    if (mk_get_u64(data + 16) != mk_hash64(data, 16)) {
        err = MK_CORRUPT(diag, l->path, 16, "incident log header checksum mismatch");
        goto out;
    }
    if (mk_get_u16(data + 4) > MK_ILOG_VERSION) {
        err = mk_diag_set(diag, MK_ETOONEW, "%s: incident log format version %u is newer than this build reads (%u)",
                          l->path, (unsigned)mk_get_u16(data + 4), (unsigned)MK_ILOG_VERSION);
        goto out;
    }
    if (mk_get_u16(data + 4) == 0) {
        err = MK_CORRUPT(diag, l->path, 4, "incident log format version 0");
        goto out;
    }
    l->generation = mk_get_u64(data + 8);
    uint64_t good_end = ILOG_HDR_BYTES;
    if ((err = replay(l, data, n, cb, cb_ctx, &good_end, diag))) goto out;
    l->size = good_end;
    if (good_end < n) {
        rc = cut_at(l, good_end);
        if (rc) {
            err = mk_diag_set(diag, mk_err_from_errno(-rc), "%s: truncating the torn tail failed: %s", l->path,
                              strerror(-rc));
            goto out;
        }
    }
out:
    free(data);
    if (err) mk_ilog_close(l);
    else *out = l;
    return err;
}

static mk_err append(mk_ilog *l, const void *payload, size_t len, int is_sync, mk_diag *diag)
{
    mk_buf b = {0};
    mk_err err = mk_ilog_frame(&b, payload, len);
    if (err) {
        err = mk_diag_set(diag, err, "%s: record of %zu bytes cannot be framed", l->path, len);
        goto out;
    }
    int rc = mk_env_pwrite_all(l->env, l->fd, b.data, b.len, (off_t)l->size);
    if (!rc && is_sync) rc = l->env->fsync(l->env, l->fd);
    if (rc) {
        /* Cut the partial record off so the next append is not hidden behind
         * it; if even that fails, replay finds it torn and cuts it then. */
        cut_at(l, l->size);
        err = mk_diag_set(diag, mk_err_from_errno(-rc), "%s: append at offset %" PRIu64 " failed: %s", l->path,
                          l->size, strerror(-rc));
        goto out;
    }
    l->size += b.len;
out:
    mk_buf_free(&b);
    return err;
}

mk_err mk_ilog_append(mk_ilog *l, const void *payload, size_t len, mk_diag *diag)
{
    return append(l, payload, len, 1, diag);
}

mk_err mk_ilog_append_nosync(mk_ilog *l, const void *payload, size_t len, mk_diag *diag)
{
    return append(l, payload, len, 0, diag);
}

mk_err mk_ilog_sync(mk_ilog *l, mk_diag *diag)
{
    int rc = l->env->fsync(l->env, l->fd);
    if (rc) return mk_diag_set(diag, mk_err_from_errno(-rc), "%s: fsync failed: %s", l->path, strerror(-rc));
    return MK_OK;
}

mk_err mk_ilog_rewrite(mk_ilog *l, const mk_buf *recs, mk_diag *diag)
{
    char tmp[ILOG_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", l->path);
    uint8_t h[ILOG_HDR_BYTES];
    encode_header(h, l->generation + 1);
    const char *step = "open";
    int fd = l->env->open(l->env, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int rc = fd < 0 ? fd : 0;
    if (!rc) { step = "write"; rc = mk_env_pwrite_all(l->env, fd, h, sizeof h, 0); }
    if (!rc && recs->len) rc = mk_env_pwrite_all(l->env, fd, recs->data, recs->len, ILOG_HDR_BYTES);
    if (!rc) { step = "fsync"; rc = l->env->fsync(l->env, fd); }
    if (!rc) { step = "rename"; rc = l->env->rename(l->env, tmp, l->path); }
    if (rc) {
        if (fd >= 0) l->env->close(l->env, fd);
        l->env->unlink(l->env, tmp);
        return mk_diag_set(diag, mk_err_from_errno(-rc), "%s: compaction %s failed: %s", tmp, step, strerror(-rc));
    }
    /* Renamed: the new file is the log now, whatever happens next. */
    l->env->close(l->env, l->fd);
    l->fd = fd;
    l->size = ILOG_HDR_BYTES + recs->len;
    l->generation++;
    rc = mk_env_fsync_dir(l->env, l->dir);
    if (rc) return mk_diag_set(diag, mk_err_from_errno(-rc), "%s: fsync of the directory failed: %s", l->dir, strerror(-rc));
    return MK_OK;
}

uint64_t mk_ilog_bytes(const mk_ilog *l) { return l ? l->size : 0; }

void mk_ilog_close(mk_ilog *l)
{
    if (!l) return;
    if (l->fd >= 0) l->env->close(l->env, l->fd);
    free(l);
}

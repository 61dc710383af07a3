/*
 * engine/env.h — the I/O environment: the only place the engine calls the OS
 * for files and time (SQLite's VFS, Redis's rio.h). Tests wrap it to inject
 * ENOSPC, short writes, failed fsync/rename and a fake clock.
 *
 * Every file operation returns >= 0 on success and -errno on failure.
 * mk_env_default() is the real OS, shared and stateless.
 */
#ifndef MK_ENV_H
#define MK_ENV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "meerkat/error.h"

typedef struct mk_env mk_env;
struct mk_env {
    int (*open)(mk_env *env, const char *path, int flags, int mode); /* fd or -errno */
    int (*close)(mk_env *env, int fd);
    ssize_t (*pwrite)(mk_env *env, int fd, const void *buf, size_t n, off_t off);
    ssize_t (*pread)(mk_env *env, int fd, void *buf, size_t n, off_t off);
    int (*fsync)(mk_env *env, int fd);
    int (*ftruncate)(mk_env *env, int fd, off_t len);
    int (*rename)(mk_env *env, const char *from, const char *to);
    int (*unlink)(mk_env *env, const char *path);
    int (*mkdir)(mk_env *env, const char *path, int mode);
    int64_t (*file_size)(mk_env *env, int fd); /* bytes or -errno */
    /* Maps fd read-only; *out is NULL for n == 0. Unmap with munmap. */
    int (*mmap)(mk_env *env, int fd, size_t n, void **out);
    int (*munmap)(mk_env *env, void *p, size_t n);
    int64_t (*now_ms)(mk_env *env); /* wall clock, ms since the epoch */
    void *ctx;                      /* for wrappers */
    /* Waits ms milliseconds of this env's clock (compaction pacing; a fake
     * clock just advances). NULL = the OS's nanosleep. */
    void (*sleep_ms)(mk_env *env, int64_t ms);
};

/* The real OS. */
mk_env *mk_env_default(void);

/* Writes all n bytes at off, retrying short writes and EINTR. A short write
 * that makes no progress is reported as ENOSPC. Returns 0 or -errno. */
int mk_env_pwrite_all(mk_env *env, int fd, const void *buf, size_t n, off_t off);

/* Reads exactly n bytes at off; -EIO if the file is shorter. */
int mk_env_pread_all(mk_env *env, int fd, void *buf, size_t n, off_t off);

/* fsyncs a directory so renames and creations in it are durable. */
int mk_env_fsync_dir(mk_env *env, const char *dir);

/*
 * Writes data to dir/name durably: dir/name.tmp is written, fsynced, renamed
 * over dir/name, and dir is fsynced. On failure the temporary file is removed
 * and any old dir/name is untouched; diag names the step that failed.
 */
mk_err mk_env_write_file_atomic(mk_env *env, const char *dir, const char *name, const void *data,
                                size_t n, mk_diag *diag);

/* Reads a whole file into a malloc'ed buffer (*out, *n). MK_ENOTFOUND if it
 * does not exist. */
mk_err mk_env_read_file(mk_env *env, const char *path, uint8_t **out, size_t *n, mk_diag *diag);

#endif

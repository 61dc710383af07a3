/* engine/env.c — the real OS behind mk_env (see env.h). */

#include "env.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static int os_open(mk_env *e, const char *path, int flags, int mode)
{
    (void)e;
    int fd;
    do fd = open(path, flags | O_CLOEXEC, mode); while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}
static int os_close(mk_env *e, int fd) { (void)e; return close(fd) < 0 ? -errno : 0; }
static ssize_t os_pwrite(mk_env *e, int fd, const void *b, size_t n, off_t off)
{
    (void)e;
    ssize_t r = pwrite(fd, b, n, off);
    return r < 0 ? -errno : r;
}
static ssize_t os_pread(mk_env *e, int fd, void *b, size_t n, off_t off)
{
    (void)e;
    ssize_t r = pread(fd, b, n, off);
    return r < 0 ? -errno : r;
}
static int os_fsync(mk_env *e, int fd) { (void)e; return fdatasync(fd) < 0 ? -errno : 0; }
static int os_ftruncate(mk_env *e, int fd, off_t len) { (void)e; return ftruncate(fd, len) < 0 ? -errno : 0; }
static int os_rename(mk_env *e, const char *a, const char *b) { (void)e; return rename(a, b) < 0 ? -errno : 0; }
static int os_unlink(mk_env *e, const char *p) { (void)e; return unlink(p) < 0 ? -errno : 0; }
static int os_mkdir(mk_env *e, const char *p, int mode) { (void)e; return mkdir(p, (mode_t)mode) < 0 ? -errno : 0; }
static int64_t os_file_size(mk_env *e, int fd)
{
    (void)e;
    struct stat st;
    return fstat(fd, &st) < 0 ? -errno : (int64_t)st.st_size;
}
static int os_mmap(mk_env *e, int fd, size_t n, void **out)
{
    (void)e;
    *out = NULL;
    if (n == 0) return 0;
    void *p = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return -errno;
    *out = p;
    return 0;
}
static int os_munmap(mk_env *e, void *p, size_t n)
{
    (void)e;
    if (!p || !n) return 0;
    return munmap(p, n) < 0 ? -errno : 0;
}
static int64_t os_now_ms(mk_env *e)
{
    (void)e;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void os_sleep_ms(mk_env *e, int64_t ms)
{
    (void)e;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static mk_env os_env = {os_open,  os_close,     os_pwrite, os_pread, os_fsync,
                        os_ftruncate, os_rename, os_unlink, os_mkdir, os_file_size,
                        os_mmap,  os_munmap,    os_now_ms, NULL, os_sleep_ms};

mk_env *mk_env_default(void) { return &os_env; }

int mk_env_pwrite_all(mk_env *env, int fd, const void *buf, size_t n, off_t off)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = env->pwrite(env, fd, p, n, off);
        if (w == -EINTR) continue;
        if (w < 0) return (int)w;
        if (w == 0) return -ENOSPC;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

int mk_env_pread_all(mk_env *env, int fd, void *buf, size_t n, off_t off)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = env->pread(env, fd, p, n, off);
        if (r == -EINTR) continue;
        if (r < 0) return (int)r;
        if (r == 0) return -EIO;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

int mk_env_fsync_dir(mk_env *env, const char *dir)
{
    int fd = env->open(env, dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) return fd;
    int rc = env->fsync(env, fd);
    env->close(env, fd);
    return rc;
}

mk_err mk_env_write_file_atomic(mk_env *env, const char *dir, const char *name, const void *data,
                                size_t n, mk_diag *diag)
{
    char tmp[4096], dst[4096];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    const char *step = "create";
    int rc;
    int fd = env->open(env, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { rc = fd; goto fail_nofd; }
    step = "write";
    rc = mk_env_pwrite_all(env, fd, data, n, 0);
    if (rc) goto fail;
    step = "fsync";
    rc = env->fsync(env, fd);
    if (rc) goto fail;
    env->close(env, fd);
    fd = -1;
    step = "rename";
    rc = env->rename(env, tmp, dst);
    if (rc) goto fail;
    step = "fsync directory of";
    rc = mk_env_fsync_dir(env, dir);
    if (rc) return mk_diag_set(diag, mk_err_from_errno(-rc), "%s: %s failed: %s", dst, step, strerror(-rc));
    return MK_OK;
fail:
    if (fd >= 0) env->close(env, fd);
    env->unlink(env, tmp);
fail_nofd:
    return mk_diag_set(diag, mk_err_from_errno(-rc), "%s: %s failed: %s", tmp, step, strerror(-rc));
}

mk_err mk_env_read_file(mk_env *env, const char *path, uint8_t **out, size_t *n, mk_diag *diag)
{
    *out = NULL;
    *n = 0;
    int fd = env->open(env, path, O_RDONLY, 0);
    if (fd == -ENOENT) return mk_diag_set(diag, MK_ENOTFOUND, "%s: does not exist", path);
    if (fd < 0) return mk_diag_set(diag, mk_err_from_errno(-fd), "%s: open failed: %s", path, strerror(-fd));
    int64_t sz = env->file_size(env, fd);
    mk_err err = MK_OK;
    if (sz < 0) { err = mk_diag_set(diag, MK_EIO, "%s: stat failed: %s", path, strerror((int)-sz)); goto out; }
    uint8_t *p = malloc(sz ? (size_t)sz : 1);
    if (!p) { err = mk_diag_set(diag, MK_ENOMEM, "%s: no memory for %lld bytes", path, (long long)sz); goto out; }
    int rc = mk_env_pread_all(env, fd, p, (size_t)sz, 0);
    if (rc) { free(p); err = mk_diag_set(diag, mk_err_from_errno(-rc), "%s: read failed: %s", path, strerror(-rc)); goto out; }
    *out = p;
    *n = (size_t)sz;
out:
    env->close(env, fd);
    return err;
}

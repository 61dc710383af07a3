/* tests/testutil.c — see testutil.h. */

#include "testutil.h"

#include "meerkat/db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *tmp_root(void)
{
    const char *r = getenv("MK_TEST_TMP");
    return r && *r ? r : "/tmp/meerkat-test";
}

void mk_test_rmrf(const char *path)
{
    const char *root = tmp_root();
    if (strncmp(path, root, strlen(root)) != 0) return; /* never outside */
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

char *mk_test_dir(const char *name)
{
    const char *root = tmp_root();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", root);
    if (system(cmd) != 0) return NULL;
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/%s-%d", root, name, (int)getpid());
    mk_test_rmrf(p);
    if (mkdir(p, 0755) != 0) { free(p); return NULL; }
    return p;
}

static int fault(mk_faultenv *fe, int kind)
{
    /* atomic: the env may be used by several threads (group commit tests) */
    uint64_t c = __atomic_add_fetch(&fe->count[kind], 1, __ATOMIC_RELAXED);
    if (!fe->fail_at[kind]) return 0;
    if (c == fe->fail_at[kind] || (fe->is_sticky && c > fe->fail_at[kind])) {
        fe->n_failed++;
        return fe->err[kind] ? fe->err[kind] : EIO;
    }
    return 0;
}

static int f_open(mk_env *e, const char *path, int flags, int mode)
{
    mk_faultenv *fe = (mk_faultenv *)e;
    if ((flags & O_CREAT) || (flags & (O_WRONLY | O_RDWR))) {
        int err = fault(fe, MK_FAULT_OPEN);
        if (err) return -err;
    }
    return mk_env_default()->open(mk_env_default(), path, flags, mode);
}
static int f_close(mk_env *e, int fd) { (void)e; return mk_env_default()->close(mk_env_default(), fd); }
static ssize_t f_pwrite(mk_env *e, int fd, const void *b, size_t n, off_t off)
{
    mk_faultenv *fe = (mk_faultenv *)e;
    int err = fault(fe, MK_FAULT_PWRITE);
    if (err) {
        if (fe->is_short_write && n > 1) {
            ssize_t w = mk_env_default()->pwrite(mk_env_default(), fd, b, n / 2, off);
            if (w < 0) return w;
            return -err; /* half landed, then the error: a torn write */
        }
        return -err;
    }
    return mk_env_default()->pwrite(mk_env_default(), fd, b, n, off);
}
static ssize_t f_pread(mk_env *e, int fd, void *b, size_t n, off_t off) { (void)e; return mk_env_default()->pread(mk_env_default(), fd, b, n, off); }
static int f_fsync(mk_env *e, int fd)
{
    int err = fault((mk_faultenv *)e, MK_FAULT_FSYNC);
    if (err) return -err;
    return mk_env_default()->fsync(mk_env_default(), fd);
}
static int f_ftruncate(mk_env *e, int fd, off_t len)
{
    int err = fault((mk_faultenv *)e, MK_FAULT_FTRUNCATE);
    if (err) return -err;
    return mk_env_default()->ftruncate(mk_env_default(), fd, len);
}
static int f_rename(mk_env *e, const char *a, const char *b)
{
    int err = fault((mk_faultenv *)e, MK_FAULT_RENAME);
    if (err) return -err;
    return mk_env_default()->rename(mk_env_default(), a, b);
}
static int f_unlink(mk_env *e, const char *p) { (void)e; return mk_env_default()->unlink(mk_env_default(), p); }
static int f_mkdir(mk_env *e, const char *p, int m) { (void)e; return mk_env_default()->mkdir(mk_env_default(), p, m); }
static int64_t f_size(mk_env *e, int fd) { (void)e; return mk_env_default()->file_size(mk_env_default(), fd); }
static int f_mmap(mk_env *e, int fd, size_t n, void **o) { (void)e; return mk_env_default()->mmap(mk_env_default(), fd, n, o); }
static int f_munmap(mk_env *e, void *p, size_t n) { (void)e; return mk_env_default()->munmap(mk_env_default(), p, n); }
static int64_t f_now(mk_env *e)
{
    mk_faultenv *fe = (mk_faultenv *)e;
    return fe->fake_now_ms ? fe->fake_now_ms : mk_env_default()->now_ms(mk_env_default());
}

void mk_faultenv_init(mk_faultenv *fe)
{
    memset(fe, 0, sizeof *fe);
    fe->env = (mk_env){f_open, f_close, f_pwrite, f_pread, f_fsync, f_ftruncate, f_rename, f_unlink,
                       f_mkdir, f_size, f_mmap, f_munmap, f_now, fe, NULL};
}

void mk_faultenv_reset(mk_faultenv *fe)
{
    memset(fe->count, 0, sizeof fe->count);
    memset(fe->fail_at, 0, sizeof fe->fail_at);
    memset(fe->err, 0, sizeof fe->err);
    fe->is_short_write = 0;
    fe->is_sticky = 0;
    fe->n_failed = 0;
}

void mk_faultenv_arm(mk_faultenv *fe, int kind, uint64_t nth, int err)
{
    fe->fail_at[kind] = fe->count[kind] + nth;
    fe->err[kind] = err;
}

void mk_sb_add(mk_sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        assert_non_null(p);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void mk_sb_printf(mk_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    char *tmp = malloc((size_t)n + 1);
    assert_non_null(tmp);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    mk_sb_add(b, tmp, (size_t)n);
    free(tmp);
}

const char *mk_sb_str(const mk_sbuf *b) { return b->p ? b->p : ""; }

void mk_sb_free(mk_sbuf *b)
{
    free(b->p);
    *b = (mk_sbuf){0};
}

int64_t mk_test_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

mk_db *mk_test_open_at(const char *dir, mk_faultenv *fe, int64_t now_ms, int64_t retention_raw_ms)
{
    mk_faultenv_init(fe);
    fe->fake_now_ms = now_ms;
    mk_options o;
    mk_options_init(&o);
    o.env = &fe->env;
    o.fsync = MK_FSYNC_OFF;
    o.is_compaction_off = 1;
    o.retention_raw_ms = retention_raw_ms;
    mk_db *db = NULL;
    mk_diag d = {0};
    if (mk_db_open(dir, &o, &db, &d) != MK_OK) fail_msg("open %s: %s", dir, d.msg);
    return db;
}

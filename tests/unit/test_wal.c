/*
 * tests/unit/test_wal.c — the write-ahead log (engine/wal.c).
 *
 * The reference is always the list of records the test itself committed
 * (and whose commit returned MK_OK); replay must give exactly those back.
 * Damage is made with plain POSIX calls on the segment files, never through
 * the WAL. Seeds are fixed and printed.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "format.h"
#include "util.h"
#include "wal.h"

#define HDR 24u     /* segment header bytes (FORMAT.md) */
#define REC_OVH 13u /* len u32 + type u8 + xxh3 u64 */

/* ---- helpers ------------------------------------------------------------ */

typedef struct rec {
    uint8_t type;
    uint32_t len;
    uint8_t *p;
    uint64_t seq; /* segment */
} rec;

typedef struct reclist {
    rec *v;
    size_t n, cap;
} reclist;

static void rl_push(reclist *l, uint8_t type, const void *p, size_t len, uint64_t seq)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    rec *r = &l->v[l->n++];
    r->type = type;
    r->len = (uint32_t)len;
    r->p = malloc(len ? len : 1);
    assert_non_null(r->p);
    if (len) memcpy(r->p, p, len);
    r->seq = seq;
}

static void rl_free(reclist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i].p);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int rec_eq(const rec *a, const rec *b)
{
    return a->type == b->type && a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* Exactly the same records in the same order (segments not compared). */
static void assert_same(const reclist *got, const reclist *want)
{
    if (got->n != want->n) fprintf(stderr, "replayed %zu records, expected %zu\n", got->n, want->n);
    assert_int_equal(got->n, want->n);
    for (size_t i = 0; i < got->n; i++) {
        if (!rec_eq(&got->v[i], &want->v[i])) fprintf(stderr, "record %zu differs\n", i);
        assert_true(rec_eq(&got->v[i], &want->v[i]));
    }
}

static int collect_cb(void *ctx, uint8_t type, const uint8_t *p, size_t len, uint64_t seq)
{
    rl_push(ctx, type, p, len, seq);
    return 0;
}

/* Log capture; thread-safe (the interval thread logs too). */
typedef struct logcap {
    pthread_mutex_t mu;
    char text[16384];
    size_t len;
    int n_warn, n_err;
} logcap;

static void log_cb(void *ctx, int level, const char *msg)
{
    logcap *lc = ctx;
    pthread_mutex_lock(&lc->mu);
    if (level == MK_LOG_WARN) lc->n_warn++;
    if (level == MK_LOG_ERROR) lc->n_err++;
    int n = snprintf(lc->text + lc->len, sizeof lc->text - lc->len, "%s\n", msg);
    if (n > 0) lc->len += (size_t)n < sizeof lc->text - lc->len ? (size_t)n : sizeof lc->text - lc->len - 1;
    pthread_mutex_unlock(&lc->mu);
}

static void lc_reset(logcap *lc)
{
    lc->text[0] = 0;
    lc->len = 0;
    lc->n_warn = lc->n_err = 0;
}

static int lc_has(logcap *lc, const char *s) { return strstr(lc->text, s) != NULL; }

static logcap g_log = {PTHREAD_MUTEX_INITIALIZER, "", 0, 0, 0};

static mk_wal_opts opts_for(mk_fsync_policy p, uint64_t segment_bytes)
{
    mk_wal_opts o = {p, 50, segment_bytes, log_cb, &g_log};
    return o;
}

static void seg_file(const char *wdir, uint64_t seq, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%016" PRIx64 ".wal", wdir, seq);
}

/* Empties a flat scratch directory without forking a shell (the fault and
 * torn-tail loops make hundreds of them). */
static void clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
}

/* rm -r of a scratch tree (at most a few levels, plain files and dirs). */
static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_tree(p);
            else unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/*
 * A scratch directory for the tests that loop hundreds of times over
 * damaged files and injected faults. They test our logic, not the disk, and
 * the build disk's fsync can take milliseconds when it is busy, so they run
 * on tmpfs (/dev/shm) when there is one; MK_WAL_TEST_DISK=1 keeps them on the
 * normal test directory. The group-commit, interval and fsync-counting tests
 * always use the real disk.
 */
static char *scratch_dir(const char *name)
{
    const char *force = getenv("MK_WAL_TEST_DISK");
    struct stat st;
    if ((!force || strcmp(force, "1") != 0) && stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
        access("/dev/shm", W_OK) == 0) {
        char *p = malloc(4096);
        assert_non_null(p);
        snprintf(p, 4096, "/dev/shm/meerkat-test-%s-%d", name, (int)getpid());
        rm_tree(p);
        if (mkdir(p, 0755) == 0) return p;
        free(p);
    }
    char *p = mk_test_dir(name);
    assert_non_null(p);
    return p;
}

static void scratch_free(char *dir)
{
    if (strncmp(dir, "/dev/shm/", 9) == 0) rm_tree(dir);
    else mk_test_rmrf(dir);
    free(dir);
}

static int64_t fsize(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static uint8_t *slurp(const char *path, size_t *n)
{
    int64_t sz = fsize(path);
    assert_true(sz >= 0);
    uint8_t *p = malloc((size_t)sz + 1);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(p, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return p;
}

static void spit(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* A random record: type 1..255, length mostly small, now and then large. */
static void rand_payload(mk_rng *r, uint8_t *buf, size_t *len, uint8_t *type, size_t max)
{
    size_t n = mk_rng_below(r, 10) == 0 ? (size_t)mk_rng_below(r, max + 1) : (size_t)mk_rng_below(r, 200);
    if (n > max) n = max;
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)mk_rng_next(r);
    *len = n;
    *type = (uint8_t)(1 + mk_rng_below(r, 255));
}

static uint64_t seed_of(const char *test, uint64_t seed)
{
    printf("[ %s ] seed %" PRIu64 "\n", test, seed);
    return seed;
}

/* Replays dir into *got; returns the error. */
static mk_err replay(const char *wdir, int is_read_only, reclist *got, uint64_t *last_seq, mk_diag *d)
{
    mk_wal_opts o = opts_for(MK_FSYNC_OFF, 0);
    return mk_wal_replay(NULL, wdir, &o, is_read_only, collect_cb, got, last_seq, d);
}

/* Commits n random records into a fresh WAL in wdir (policy p), keeping them
 * in *want; returns the byte offset of each record's start in starts (if
 * non-NULL; valid for a single segment). */
static void write_records(const char *wdir, mk_fsync_policy p, uint64_t segment_bytes, uint64_t first_seq, mk_rng *r,
                          size_t n, size_t max_len, reclist *want, uint64_t *starts)
{
    mk_wal_opts o = opts_for(p, segment_bytes);
    mk_wal *w;
    mk_diag d = {0};
    assert_int_equal(mk_wal_open(NULL, wdir, &o, first_seq, &w, &d), MK_OK);
    uint8_t *buf = malloc(max_len + 1);
    uint64_t off = HDR;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t type;
        rand_payload(r, buf, &len, &type, max_len);
        uint64_t seq = 0;
        mk_err e = mk_wal_commit(w, type, buf, len, &seq, &d);
        if (e) fprintf(stderr, "commit: %s\n", d.msg);
        assert_int_equal(e, MK_OK);
        rl_push(want, type, buf, len, seq);
        if (starts) starts[i] = off;
        off += REC_OVH + len;
    }
    free(buf);
    assert_int_equal(mk_wal_close(w, &d), MK_OK);
}

/* ---- round trip, rotation ----------------------------------------------- */

static void test_roundtrip(void **state)
{
    (void)state;
    mk_rng r = {seed_of("roundtrip", 0x5eed0001)};
    char *dir = mk_test_dir("wal-roundtrip");
    char wdir[4200];
    snprintf(wdir, sizeof wdir, "%s/wal", dir); /* does not exist yet: open creates it */
    reclist want = {0}, got = {0}, got2 = {0};
    write_records(wdir, MK_FSYNC_OFF, 0, 1, &r, 3000, 70000, &want, NULL);
    uint64_t last = 99;
    mk_diag d = {0};
    lc_reset(&g_log);
    assert_int_equal(replay(wdir, 1, &got, &last, &d), MK_OK);
    assert_int_equal(last, 1);
    assert_same(&got, &want);
    for (size_t i = 0; i < got.n; i++) assert_int_equal(got.v[i].seq, 1);
    assert_int_equal(replay(wdir, 0, &got2, &last, &d), MK_OK);
    assert_same(&got2, &want);
    assert_int_equal(g_log.n_warn, 0);
    rl_free(&want);
    rl_free(&got);
    rl_free(&got2);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_empty_and_missing(void **state)
{
    (void)state;
    char *dir = mk_test_dir("wal-empty");
    char wdir[4200];
    snprintf(wdir, sizeof wdir, "%s/wal", dir);
    reclist got = {0};
    uint64_t last = 7;
    mk_diag d = {0};
    assert_int_equal(replay(wdir, 0, &got, &last, &d), MK_OK); /* missing */
    assert_int_equal(last, 0);
    assert_int_equal(got.n, 0);
    last = 7;
    assert_int_equal(replay(dir, 1, &got, &last, &d), MK_OK); /* empty */
    assert_int_equal(last, 0);
    /* A WAL opened and closed with nothing in it: one header-only segment. */
    mk_wal_opts o = opts_for(MK_FSYNC_ALWAYS, 0);
    mk_wal *w;
    assert_int_equal(mk_wal_open(NULL, wdir, &o, 1, &w, &d), MK_OK);
    assert_int_equal(mk_wal_bytes(w), HDR);
    assert_int_equal(mk_wal_close(w, &d), MK_OK);
    assert_int_equal(replay(wdir, 0, &got, &last, &d), MK_OK);
    assert_int_equal(last, 1);
    assert_int_equal(got.n, 0);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_bad_args(void **state)
{
    (void)state;
    char *dir = mk_test_dir("wal-args");
    mk_wal_opts o = opts_for(MK_FSYNC_OFF, 0);
    mk_wal *w;
    mk_diag d = {0};
    assert_int_equal(mk_wal_open(NULL, dir, &o, 0, &w, &d), MK_EINVAL);
    assert_null(w);
    assert_int_equal(mk_wal_open(NULL, dir, &o, 5, &w, &d), MK_OK);
    assert_int_equal(mk_wal_commit(w, 0, "x", 1, NULL, &d), MK_EINVAL);
    assert_int_equal(mk_wal_commit(w, 1, NULL, 3, NULL, &d), MK_EINVAL);
    assert_int_equal(mk_wal_commit(w, 1, NULL, 0, NULL, &d), MK_OK); /* empty payload is fine */
    assert_int_equal(mk_wal_close(w, &d), MK_OK);
    /* Segment 5 exists: opening at 5 (or below) again must not clobber it. */
    d.msg[0] = 0;
    assert_int_equal(mk_wal_open(NULL, dir, &o, 5, &w, &d), MK_EEXIST);
    assert_non_null(strstr(d.msg, "0000000000000005"));
    assert_int_equal(mk_wal_open(NULL, dir, &o, 3, &w, &d), MK_EEXIST);
    assert_int_equal(mk_wal_close(NULL, &d), MK_OK);
    reclist got = {0};
    uint64_t last;
    assert_int_equal(replay(dir, 1, &got, &last, &d), MK_OK);
    assert_int_equal(last, 5);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.v[0].len, 0);
    rl_free(&got);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_rotation(void **state)
{
    (void)state;
    mk_fsync_policy pol[] = {MK_FSYNC_OFF, MK_FSYNC_INTERVAL, MK_FSYNC_ALWAYS};
    for (int pi = 0; pi < 3; pi++) {
        mk_rng r = {seed_of("rotation", 0x5eed0002 + (uint64_t)pi)};
        char *dir = scratch_dir("wal-rotation");
        reclist want = {0}, got = {0};
        const uint64_t seg_bytes = 4096;
        write_records(dir, pol[pi], seg_bytes, 1, &r, pi == 0 ? 1500 : 150, 6000, &want, NULL);
        uint64_t last;
        mk_diag d = {0};
        lc_reset(&g_log);
        assert_int_equal(replay(dir, 1, &got, &last, &d), MK_OK);
        assert_same(&got, &want);
        assert_int_equal(g_log.n_warn, 0);
        assert_true(last > 5);
        /* The segment each commit reported is the one replay found it in,
         * segments are contiguous, and only a lone big record overflows one. */
        for (size_t i = 0; i < got.n; i++) assert_int_equal(got.v[i].seq, want.v[i].seq);
        for (uint64_t s = 1; s <= last; s++) {
            char p[4300];
            seg_file(dir, s, p, sizeof p);
            int64_t sz = fsize(p);
            assert_true(sz >= (int64_t)HDR);
            size_t n_in = 0;
            for (size_t i = 0; i < got.n; i++) n_in += got.v[i].seq == s;
            if (sz > (int64_t)seg_bytes) assert_int_equal(n_in, 1);
        }
        rl_free(&want);
        rl_free(&got);
        scratch_free(dir);
    }
}

/* ---- torn tails and corruption ------------------------------------------ */

static void test_torn_tail_every_offset(void **state)
{
    (void)state;
    mk_rng r = {seed_of("torn_tail", 0x5eed0003)};
    char *dir = scratch_dir("wal-torn");
    char src[4200];
    snprintf(src, sizeof src, "%s/src", dir);
    reclist want = {0};
    uint64_t starts[12];
    write_records(src, MK_FSYNC_OFF, 0, 1, &r, 12, 150, &want, starts);
    char p[4300];
    seg_file(src, 1, p, sizeof p);
    size_t n_full;
    uint8_t *full = slurp(p, &n_full);
    uint64_t last_start = starts[11];
    assert_int_equal(n_full, last_start + REC_OVH + want.v[11].len);
    reclist prefix = want;
    prefix.n = 11;

    /* Every cut inside the last record, and every cut inside the header. */
    for (size_t cut = 0; cut < n_full; cut++) {
        if (cut >= HDR && cut < last_start) continue;
        char w[4300], seg[4400];
        snprintf(w, sizeof w, "%s/w%zu", dir, cut);
        mkdir(w, 0755);
        seg_file(w, 1, seg, sizeof seg);
        spit(seg, full, cut);
        reclist got = {0};
        uint64_t last;
        mk_diag d = {0};
        lc_reset(&g_log);
        assert_int_equal(replay(w, 0, &got, &last, &d), MK_OK);
        if (cut < HDR) {
            /* An interrupted creation: no records, the stub is removed. */
            assert_int_equal(got.n, 0);
            assert_int_equal(last, 0);
            assert_int_equal(fsize(seg), -1);
            assert_true(lc_has(&g_log, "no complete header"));
        } else {
            assert_same(&got, &prefix);
            assert_int_equal(last, 1);
            assert_int_equal(fsize(seg), (int64_t)last_start);
            if (cut > last_start) {
                char msg[128];
                snprintf(msg, sizeof msg, "0000000000000001.wal: torn record at offset %" PRIu64, last_start);
                if (!lc_has(&g_log, msg)) fprintf(stderr, "cut %zu: log was: %s", cut, g_log.text);
                assert_true(lc_has(&g_log, msg));
                snprintf(msg, sizeof msg, "truncated, %zu bytes dropped", cut - (size_t)last_start);
                assert_true(lc_has(&g_log, msg));
            } else {
                assert_int_equal(g_log.n_warn, 0);
            }
        }
        /* Appending after recovery works and replays behind the survivors. */
        reclist more = {0};
        for (size_t i = 0; i < got.n; i++) rl_push(&more, got.v[i].type, got.v[i].p, got.v[i].len, 0);
        write_records(w, MK_FSYNC_OFF, 0, last + 1, &r, 2, 50, &more, NULL);
        reclist got2 = {0};
        lc_reset(&g_log);
        assert_int_equal(replay(w, 1, &got2, &last, &d), MK_OK);
        assert_same(&got2, &more);
        assert_int_equal(g_log.n_warn, 0);
        rl_free(&got);
        rl_free(&got2);
        rl_free(&more);
        clear_dir(w);
        rmdir(w);
    }
    free(full);
    rl_free(&want);
    scratch_free(dir);
}

static void test_bit_flips(void **state)
{
    (void)state;
    mk_rng r = {seed_of("bit_flips", 0x5eed0004)};
    char *dir = scratch_dir("wal-flips");
    reclist want = {0};
    uint64_t starts[10];
    write_records(dir, MK_FSYNC_OFF, 0, 1, &r, 10, 60, &want, starts);
    char seg[4300];
    seg_file(dir, 1, seg, sizeof seg);
    size_t n_full;
    uint8_t *full = slurp(seg, &n_full);
    const size_t k = 5; /* the damaged record */
    uint64_t from = starts[k], to = starts[k] + REC_OVH + want.v[k].len;
    reclist prefix = want;
    prefix.n = k;
    uint8_t *copy = malloc(n_full);
    for (uint64_t byte = from; byte < to; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, full, n_full);
            copy[byte] ^= (uint8_t)(1u << bit);
            int is_rw = (bit + (int)byte) % 3 == 0; /* a third also read-write */
            spit(seg, copy, n_full);
            reclist got = {0};
            uint64_t last;
            mk_diag d = {0};
            lc_reset(&g_log);
            assert_int_equal(replay(dir, !is_rw, &got, &last, &d), MK_OK);
            assert_same(&got, &prefix);
            char msg[128];
            snprintf(msg, sizeof msg, "record at offset %" PRIu64 " (", from);
            if (!lc_has(&g_log, msg)) fprintf(stderr, "flip %" PRIu64 ".%d: log: %s", byte, bit, g_log.text);
            assert_true(lc_has(&g_log, msg));
            assert_int_equal(fsize(seg), is_rw ? (int64_t)from : (int64_t)n_full);
            rl_free(&got);
        }
    }
    /* Every bit of the header: the segment is skipped as damaged (a flipped
     * version bit too: the header checksum no longer holds, so it is not
     * taken for a newer file). Never a record out of it. */
    for (size_t byte = 0; byte < HDR; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, full, n_full);
            copy[byte] ^= (uint8_t)(1u << bit);
            spit(seg, copy, n_full);
            reclist got = {0};
            uint64_t last;
            mk_diag d = {0};
            lc_reset(&g_log);
            mk_err e = replay(dir, 1, &got, &last, &d);
            assert_int_equal(got.n, 0);
            assert_int_equal(e, MK_OK);
            assert_int_equal(g_log.n_warn, 1);
            assert_true(lc_has(&g_log, "skipped"));
            rl_free(&got);
        }
    }
    free(copy);
    free(full);
    rl_free(&want);
    scratch_free(dir);
}

static void test_garbage_and_zero_tails(void **state)
{
    (void)state;
    mk_rng r = {seed_of("tails", 0x5eed0005)};
    char *dir = scratch_dir("wal-tails");
    reclist want = {0};
    write_records(dir, MK_FSYNC_OFF, 0, 1, &r, 20, 100, &want, NULL);
    char seg[4300];
    seg_file(dir, 1, seg, sizeof seg);
    size_t n_full;
    uint8_t *full = slurp(seg, &n_full);
    const size_t tails[] = {1, 4, 5, 12, 13, 64, 4096, 100000};
    for (int kind = 0; kind < 3; kind++) {
        for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
            size_t n = n_full + tails[t];
            uint8_t *b = calloc(1, n);
            memcpy(b, full, n_full);
            if (kind == 1)
                for (size_t i = n_full; i < n; i++) b[i] = (uint8_t)mk_rng_next(&r);
            if (kind == 2 && tails[t] >= 13) {
                /* Looks like a record: plausible length and type, wrong sum. */
                mk_put_u32(b + n_full, (uint32_t)(tails[t] - 13));
                b[n_full + 4] = 2;
                for (size_t i = n_full + 5; i < n; i++) b[i] = (uint8_t)mk_rng_next(&r);
            }
            spit(seg, b, n);
            reclist got = {0};
            uint64_t last;
            mk_diag d = {0};
            lc_reset(&g_log);
            assert_int_equal(replay(dir, 0, &got, &last, &d), MK_OK);
            assert_same(&got, &want);
            assert_int_equal(fsize(seg), (int64_t)n_full);
            char msg[128];
            snprintf(msg, sizeof msg, "at offset %zu", n_full);
            assert_true(lc_has(&g_log, msg));
            if (kind == 0 && tails[t] >= 5) assert_true(lc_has(&g_log, "zero-filled tail"));
            if (kind == 2 && tails[t] >= 13) assert_true(lc_has(&g_log, "checksum mismatch"));
            rl_free(&got);
            free(b);
        }
    }
    free(full);
    rl_free(&want);
    scratch_free(dir);
}

/* Three segments of records; returns them in want, per segment count in per. */
static void three_segments(const char *dir, mk_rng *r, reclist *want, size_t per[3])
{
    mk_wal_opts o = opts_for(MK_FSYNC_OFF, 0);
    mk_wal *w;
    mk_diag d = {0};
    assert_int_equal(mk_wal_open(NULL, dir, &o, 1, &w, &d), MK_OK);
    for (int s = 0; s < 3; s++) {
        per[s] = 5 + (size_t)s;
        for (size_t i = 0; i < per[s]; i++) {
            uint8_t buf[64];
            size_t len;
            uint8_t type;
            rand_payload(r, buf, &len, &type, sizeof buf);
            uint64_t seq;
            assert_int_equal(mk_wal_commit(w, type, buf, len, &seq, &d), MK_OK);
            assert_int_equal(seq, (uint64_t)s + 1);
            rl_push(want, type, buf, len, seq);
        }
        if (s < 2) {
            uint64_t ns;
            assert_int_equal(mk_wal_cut(w, &ns, &d), MK_OK);
            assert_int_equal(ns, (uint64_t)s + 2);
        }
    }
    assert_int_equal(mk_wal_close(w, &d), MK_OK);
}

static void test_bad_segment_header(void **state)
{
    (void)state;
    mk_rng r = {seed_of("bad_header", 0x5eed0006)};
    for (int kind = 0; kind < 5; kind++) {
        char *dir = scratch_dir("wal-badhdr");
        reclist want = {0}, got = {0};
        size_t per[3];
        three_segments(dir, &r, &want, per);
        char seg[4300];
        seg_file(dir, 2, seg, sizeof seg);
        size_t n;
        uint8_t *b = slurp(seg, &n);
        const char *expect = NULL;
        if (kind == 0) { b[17] ^= 0x40; expect = "segment header is corrupt"; }         /* checksum */
        if (kind == 1) { mk_put_u32(b, 0x12345678); expect = "not a Meerkat WAL segment"; } /* not ours */
        if (kind == 2) { mk_put_u64(b + 8, 9); mk_put_u64(b + 16, mk_hash64(b, 16)); expect = "not the file name"; }
        if (kind == 3) { mk_put_u16(b + 4, MK_WAL_VERSION + 1); mk_put_u64(b + 16, mk_hash64(b, 16)); } /* too new */
        if (kind == 4) { mk_put_u16(b + 4, 0); mk_put_u64(b + 16, mk_hash64(b, 16)); expect = "version 0"; }
        spit(seg, b, n);
        uint64_t last;
        mk_diag d = {0};
        lc_reset(&g_log);
        mk_err e = replay(dir, 0, &got, &last, &d);
        if (kind == 3) {
            assert_int_equal(e, MK_ETOONEW);
            assert_non_null(strstr(d.msg, "0000000000000002.wal"));
            assert_non_null(strstr(d.msg, "version 2"));
        } else {
            assert_int_equal(e, MK_OK);
            assert_int_equal(last, 3);
            reclist exp = {0};
            for (size_t i = 0; i < want.n; i++)
                if (want.v[i].seq != 2) rl_push(&exp, want.v[i].type, want.v[i].p, want.v[i].len, 0);
            assert_same(&got, &exp);
            rl_free(&exp);
            assert_true(lc_has(&g_log, expect));
            assert_true(lc_has(&g_log, "intact records follow damaged"));
            assert_int_equal(fsize(seg), (int64_t)n); /* a skipped segment is left alone */
        }
        free(b);
        rl_free(&want);
        rl_free(&got);
        scratch_free(dir);
    }
}

static void test_missing_segment_and_damaged_middle(void **state)
{
    (void)state;
    mk_rng r = {seed_of("gap", 0x5eed0007)};
    /* A segment deleted from the middle. */
    char *dir = scratch_dir("wal-gap");
    reclist want = {0}, got = {0};
    size_t per[3];
    three_segments(dir, &r, &want, per);
    char seg[4300];
    seg_file(dir, 2, seg, sizeof seg);
    unlink(seg);
    uint64_t last;
    mk_diag d = {0};
    lc_reset(&g_log);
    assert_int_equal(replay(dir, 1, &got, &last, &d), MK_OK);
    assert_int_equal(got.n, per[0] + per[2]);
    assert_true(lc_has(&g_log, "missing"));
    rl_free(&got);
    rl_free(&want);
    scratch_free(dir);
    /* A torn tail in segment 1 of 3: later segments still replay, with a
     * warning that data after a gap was found. */
    dir = scratch_dir("wal-gap2");
    three_segments(dir, &r, &want, per);
    seg_file(dir, 1, seg, sizeof seg);
    int64_t sz = fsize(seg);
    assert_int_equal(truncate(seg, sz - 3), 0);
    lc_reset(&g_log);
    assert_int_equal(replay(dir, 0, &got, &last, &d), MK_OK);
    assert_int_equal(got.n, per[0] - 1 + per[1] + per[2]);
    assert_true(lc_has(&g_log, "torn record"));
    assert_true(lc_has(&g_log, "0000000000000002.wal: intact records follow damaged"));
    rl_free(&got);
    rl_free(&want);
    scratch_free(dir);
}

static int stop_at_3(void *ctx, uint8_t type, const uint8_t *p, size_t len, uint64_t seq)
{
    (void)type; (void)p; (void)len; (void)seq;
    return ++*(int *)ctx == 3 ? MK_ENOMEM : 0;
}

static void test_callback_stops(void **state)
{
    (void)state;
    mk_rng r = {seed_of("cb_stop", 0x5eed0008)};
    char *dir = scratch_dir("wal-cbstop");
    reclist want = {0};
    write_records(dir, MK_FSYNC_OFF, 0, 1, &r, 10, 50, &want, NULL);
    char seg[4300];
    seg_file(dir, 1, seg, sizeof seg);
    int64_t sz = fsize(seg);
    int n = 0;
    mk_wal_opts o = opts_for(MK_FSYNC_OFF, 0);
    mk_diag d = {0};
    uint64_t last;
    assert_int_equal(mk_wal_replay(NULL, dir, &o, 0, stop_at_3, &n, &last, &d), MK_ENOMEM);
    assert_int_equal(n, 3);
    assert_int_equal(fsize(seg), sz); /* nothing truncated */
    rl_free(&want);
    scratch_free(dir);
}

/* ---- cut, remove_before, bytes ------------------------------------------ */

static uint64_t disk_bytes(const char *dir, uint64_t upto)
{
    uint64_t n = 0;
    for (uint64_t s = 1; s <= upto; s++) {
        char p[4300];
        seg_file(dir, s, p, sizeof p);
        int64_t z = fsize(p);
        if (z > 0) n += (uint64_t)z;
    }
    return n;
}

static void test_cut_remove_before(void **state)
{
    (void)state;
    mk_rng r = {seed_of("cut", 0x5eed0009)};
    char *dir = scratch_dir("wal-cut");
    mk_wal_opts o = opts_for(MK_FSYNC_ALWAYS, 0);
    mk_wal *w;
    mk_diag d = {0};
    reclist want = {0};
    assert_int_equal(mk_wal_open(NULL, dir, &o, 1, &w, &d), MK_OK);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 6; i++) {
            uint8_t buf[100];
            size_t len;
            uint8_t type;
            rand_payload(&r, buf, &len, &type, sizeof buf);
            uint64_t seq;
            assert_int_equal(mk_wal_commit(w, type, buf, len, &seq, &d), MK_OK);
            assert_int_equal(seq, (uint64_t)round + 1);
            rl_push(&want, type, buf, len, seq);
        }
        assert_int_equal(mk_wal_bytes(w), disk_bytes(dir, 10));
        if (round < 3) {
            uint64_t ns;
            assert_int_equal(mk_wal_cut(w, &ns, &d), MK_OK);
            assert_int_equal(ns, (uint64_t)round + 2);
        }
    }
    /* Now segments 1..4. Remove 1 and 2. */
    assert_int_equal(mk_wal_remove_before(w, 3, &d), MK_OK);
    char p[4300];
    seg_file(dir, 2, p, sizeof p);
    assert_int_equal(fsize(p), -1);
    seg_file(dir, 3, p, sizeof p);
    assert_true(fsize(p) > 0);
    assert_int_equal(mk_wal_bytes(w), disk_bytes(dir, 10));
    /* Never the current segment, whatever the argument. */
    assert_int_equal(mk_wal_remove_before(w, 1000, &d), MK_OK);
    seg_file(dir, 4, p, sizeof p);
    assert_true(fsize(p) > 0);
    seg_file(dir, 3, p, sizeof p);
    assert_int_equal(fsize(p), -1);
    assert_int_equal(mk_wal_bytes(w), disk_bytes(dir, 10));
    assert_int_equal(mk_wal_close(w, &d), MK_OK);
    reclist got = {0}, exp = {0};
    uint64_t last;
    lc_reset(&g_log);
    assert_int_equal(replay(dir, 1, &got, &last, &d), MK_OK);
    assert_int_equal(last, 4);
    for (size_t i = 0; i < want.n; i++)
        if (want.v[i].seq == 4) rl_push(&exp, want.v[i].type, want.v[i].p, want.v[i].len, 4);
    assert_same(&got, &exp);
    assert_int_equal(g_log.n_warn, 0); /* removing a prefix is no gap */
    /* Reopen: existing segments count in mk_wal_bytes and can be removed. */
    assert_int_equal(mk_wal_open(NULL, dir, &o, last + 1, &w, &d), MK_OK);
    assert_int_equal(mk_wal_bytes(w), disk_bytes(dir, 10));
    assert_int_equal(mk_wal_remove_before(w, 5, &d), MK_OK);
    assert_int_equal(mk_wal_bytes(w), HDR);
    assert_int_equal(mk_wal_close(w, &d), MK_OK);
    rl_free(&got);
    rl_free(&exp);
    rl_free(&want);
    scratch_free(dir);
}

/* ---- a counting env, safe across threads -------------------------------- */

typedef struct countenv {
    mk_env env; /* first */
    _Atomic uint64_t n_fsync, n_pwrite;
    _Atomic int64_t last_fsync_ms; /* monotonic */
    /* Thread-safe faults (mk_faultenv's counters are not): fail the fsync
     * numbered fail_fsync_nth (1-based, 0 = never) with EIO, and make every
     * ftruncate fail while is_ftruncate_failing. */
    _Atomic uint64_t fail_fsync_nth;
    _Atomic int is_ftruncate_failing;
} countenv;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int c_fsync(mk_env *e, int fd)
{
    countenv *c = (countenv *)e;
    int rc = mk_env_default()->fsync(mk_env_default(), fd);
    uint64_t n = ++c->n_fsync;
    c->last_fsync_ms = mono_ms();
    return n == c->fail_fsync_nth ? -EIO : rc;
}
static int c_ftruncate(mk_env *e, int fd, off_t len)
{
    if (((countenv *)e)->is_ftruncate_failing) return -EIO;
    return mk_env_default()->ftruncate(mk_env_default(), fd, len);
}
static ssize_t c_pwrite(mk_env *e, int fd, const void *b, size_t n, off_t off)
{
    ((countenv *)e)->n_pwrite++;
    return mk_env_default()->pwrite(mk_env_default(), fd, b, n, off);
}

static void countenv_init(countenv *c)
{
    memset(c, 0, sizeof *c);
    c->env = *mk_env_default();
    c->env.fsync = c_fsync;
    c->env.pwrite = c_pwrite;
    c->env.ftruncate = c_ftruncate;
    c->env.ctx = c;
}

/* ---- concurrency: group commit ------------------------------------------ */

enum { N_THREADS = 4 };

typedef struct worker {
    mk_wal *w;
    uint32_t id;
    uint32_t n;
    uint64_t seed;
    int n_failed;
    uint8_t *ok; /* n entries, per commit: 1 if it returned MK_OK */
} worker;

static void *worker_main(void *arg)
{
    worker *k = arg;
    mk_rng r = {k->seed};
    uint8_t buf[600];
    for (uint32_t i = 0; i < k->n; i++) {
        size_t len = 8 + (size_t)mk_rng_below(&r, sizeof buf - 8);
        mk_put_u32(buf, k->id);
        mk_put_u32(buf + 4, i);
        for (size_t j = 8; j < len; j++) buf[j] = (uint8_t)(k->id * 31 + i + j);
        mk_diag d = {0};
        mk_err e = mk_wal_commit(k->w, 2, buf, len, NULL, &d);
        if (e) {
            k->n_failed++;
            if (!strstr(d.msg, "fsync failed")) fprintf(stderr, "unexpected commit error: %s\n", d.msg);
        }
        if (k->ok) k->ok[i] = e == MK_OK;
    }
    return NULL;
}

/* Every (thread, index) exactly once, each thread's records in order, and
 * each payload exactly what that thread wrote. */
static void check_concurrent(const reclist *got, uint32_t n_per)
{
    assert_int_equal(got->n, (size_t)N_THREADS * n_per);
    uint32_t next[N_THREADS] = {0};
    for (size_t i = 0; i < got->n; i++) {
        const rec *x = &got->v[i];
        assert_true(x->len >= 8);
        uint32_t id = mk_get_u32(x->p), idx = mk_get_u32(x->p + 4);
        assert_true(id < N_THREADS);
        assert_int_equal(idx, next[id]);
        next[id]++;
        for (size_t j = 8; j < x->len; j++) assert_int_equal(x->p[j], (uint8_t)(id * 31 + idx + j));
    }
}

static void run_concurrent(mk_fsync_policy pol, uint64_t seg_bytes, uint32_t n_per, const char *name)
{
    uint64_t seed = seed_of(name, 0x5eed000a);
    char *dir = mk_test_dir("wal-conc");
    countenv ce;
    countenv_init(&ce);
    mk_wal_opts o = opts_for(pol, seg_bytes);
    mk_wal *w;
    mk_diag d = {0};
    assert_int_equal(mk_wal_open(&ce.env, dir, &o, 1, &w, &d), MK_OK);
    uint64_t f0 = ce.n_fsync;
    pthread_t th[N_THREADS];
    worker k[N_THREADS];
    for (uint32_t i = 0; i < N_THREADS; i++) {
        k[i] = (worker){w, i, n_per, seed + i, 0, NULL};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &k[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    uint64_t n_fsync = ce.n_fsync - f0;
    for (int i = 0; i < N_THREADS; i++) assert_int_equal(k[i].n_failed, 0);
    assert_int_equal(mk_wal_close(w, &d), MK_OK);
    uint64_t n_rec = (uint64_t)N_THREADS * n_per;
    printf("[ %s ] %" PRIu64 " records, %" PRIu64 " fsyncs (%.2f records per fsync)\n", name, n_rec, n_fsync,
           n_fsync ? (double)n_rec / (double)n_fsync : 0.0);
    if (pol == MK_FSYNC_ALWAYS) {
        assert_true(n_fsync >= 1);
        assert_true(n_fsync < n_rec); /* group commit shares fsyncs */
    }
    reclist got = {0};
    uint64_t last;
    lc_reset(&g_log);
    assert_int_equal(replay(dir, 1, &got, &last, &d), MK_OK);
    assert_int_equal(g_log.n_warn, 0);
    check_concurrent(&got, n_per);
    if (seg_bytes) assert_true(last > 3);
    rl_free(&got);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_concurrent_always(void **state)
{
    (void)state;
    run_concurrent(MK_FSYNC_ALWAYS, 0, 150, "concurrent_always");
}

static void test_concurrent_always_rotating(void **state)
{
    (void)state;
    run_concurrent(MK_FSYNC_ALWAYS, 16384, 100, "concurrent_always_rotating");
}

static void test_concurrent_interval_off(void **state)
{
    (void)state;
    run_concurrent(MK_FSYNC_INTERVAL, 32768, 1000, "concurrent_interval");
    run_concurrent(MK_FSYNC_OFF, 32768, 1000, "concurrent_off");
}

/*
 * A failed group fsync with committers queued behind it: each of them gets
 * the error, the unsynced records are cut off, and the WAL goes on. With the
 * truncation failing too, the WAL fails for good. Either way replay gives
 * every record whose commit returned MK_OK, once, in each thread's order.
 */
static void run_concurrent_fsync_failure(int is_ftruncate_failing)
{
    uint64_t seed = seed_of("concurrent_fsync_failure", 0x5eed000b);
    const uint32_t n_per = 80;
    char *dir = mk_test_dir("wal-conc-fail");
    countenv ce;
    countenv_init(&ce);
    mk_wal_opts o = opts_for(MK_FSYNC_ALWAYS, 0);
    mk_wal *w;
    mk_diag d = {0};
    assert_int_equal(mk_wal_open(&ce.env, dir, &o, 1, &w, &d), MK_OK);
    ce.fail_fsync_nth = ce.n_fsync + 25;
    ce.is_ftruncate_failing = is_ftruncate_failing;
    pthread_t th[N_THREADS];
    worker k[N_THREADS];
    uint8_t ok[N_THREADS][120];
    for (uint32_t i = 0; i < N_THREADS; i++) {
        k[i] = (worker){w, i, n_per, seed + i, 0, ok[i]};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &k[i]), 0);
    }
    int n_failed = 0;
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        n_failed += k[i].n_failed;
    }
    mk_err ce_rc = mk_wal_close(w, &d);
    assert_int_equal(ce_rc, is_ftruncate_failing ? MK_EIO : MK_OK);
    printf("[ concurrent_fsync_failure ] ftruncate %s: %d of %u commits failed\n",
           is_ftruncate_failing ? "failing" : "ok", n_failed, N_THREADS * n_per);
    assert_true(n_failed >= 1);
    if (!is_ftruncate_failing) assert_true(n_failed < N_THREADS * 10); /* the WAL went on */
    reclist got = {0};
    uint64_t last;
    assert_int_equal(replay(dir, 1, &got, &last, &d), MK_OK);
    uint8_t seen[N_THREADS][120] = {{0}};
    int32_t prev[N_THREADS] = {-1, -1, -1, -1};
    size_t n_ok = 0;
    for (uint32_t t = 0; t < N_THREADS; t++)
        for (uint32_t i = 0; i < n_per; i++) n_ok += ok[t][i];
    size_t n_failed_present = 0;
    for (size_t i = 0; i < got.n; i++) {
        uint32_t id = mk_get_u32(got.v[i].p), idx = mk_get_u32(got.v[i].p + 4);
        assert_true(id < N_THREADS && idx < n_per);
        assert_false(seen[id][idx]);
        seen[id][idx] = 1;
        assert_true((int32_t)idx > prev[id]);
        prev[id] = (int32_t)idx;
        for (size_t j = 8; j < got.v[i].len; j++) assert_int_equal(got.v[i].p[j], (uint8_t)(id * 31 + idx + j));
        if (!ok[id][idx]) n_failed_present++;
    }
    /* A failed commit is absent, unless the cleanup itself failed (then it
     * may be there, whole). */
    if (!is_ftruncate_failing) assert_int_equal(n_failed_present, 0);
    for (uint32_t t = 0; t < N_THREADS; t++)
        for (uint32_t i = 0; i < n_per; i++)
            if (ok[t][i]) assert_true(seen[t][i]);
    assert_int_equal(got.n, n_ok + n_failed_present);
    rl_free(&got);
    mk_test_rmrf(dir);
    free(dir);
}

static void test_concurrent_fsync_failure(void **state)
{
    (void)state;
    run_concurrent_fsync_failure(0);
    run_concurrent_fsync_failure(1);
}

/* ---- the interval policy ------------------------------------------------ */

static void test_interval_fsyncs(void **state)
{
    (void)state;
    char *dir = mk_test_dir("wal-interval");
    countenv ce;
    countenv_init(&ce);
    mk_wal_opts o = opts_for(MK_FSYNC_INTERVAL, 0);
    o.fsync_interval_ms = 200;
    mk_wal *w;
    mk_diag d = {0};
    assert_int_equal(mk_wal_open(&ce.env, dir, &o, 1, &w, &d), MK_OK);
    uint64_t f0 = ce.n_fsync;
    /* Commit only hands the record to the OS. */
    assert_int_equal(mk_wal_commit(w, 1, "abc", 3, NULL, &d), MK_OK);
    int64_t t0 = mono_ms();
    assert_int_equal(ce.n_fsync, f0);
    /* The background thread fsyncs it within about one interval. */
    while (ce.n_fsync == f0 && mono_ms() - t0 < 5000) usleep(2000);
    int64_t lag = ce.last_fsync_ms - t0;
    printf("[ interval ] fsync %" PRId64 " ms after the commit (interval 200 ms)\n", lag);
    assert_int_equal(ce.n_fsync, f0 + 1);
    assert_true(lag <= 200 + 150);
    /* Nothing written since: no more fsyncs over several intervals. */
    usleep(700 * 1000);
    assert_int_equal(ce.n_fsync, f0 + 1);
    /* A burst of commits is covered by one or two fsyncs, not one each. */
    for (int i = 0; i < 50; i++) assert_int_equal(mk_wal_commit(w, 1, "x", 1, NULL, &d), MK_OK);
    t0 = mono_ms();
    while (ce.n_fsync == f0 + 1 && mono_ms() - t0 < 5000) usleep(2000);
    usleep(50 * 1000);
    assert_true(ce.n_fsync >= f0 + 2 && ce.n_fsync <= f0 + 3);
    assert_int_equal(mk_wal_close(w, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

/* A failed background fsync is never retried-and-pretended: the WAL fails. */
static void test_interval_fsync_failure(void **state)
{
    (void)state;
    char *dir = mk_test_dir("wal-interval-fail");
    mk_faultenv fe;
    mk_faultenv_init(&fe);
    mk_faultenv_arm(&fe, MK_FAULT_FSYNC, 3, EIO); /* open does two: file, dir */
    mk_wal_opts o = opts_for(MK_FSYNC_INTERVAL, 0);
    o.fsync_interval_ms = 20;
    mk_wal *w;
    mk_diag d = {0};
    lc_reset(&g_log);
    assert_int_equal(mk_wal_open(&fe.env, dir, &o, 1, &w, &d), MK_OK);
    assert_int_equal(mk_wal_commit(w, 1, "abc", 3, NULL, &d), MK_OK);
    mk_err e = MK_OK;
    for (int i = 0; i < 500 && !e; i++) {
        usleep(5000);
        e = mk_wal_commit(w, 1, "def", 3, NULL, &d);
    }
    assert_int_equal(e, MK_EIO);
    assert_non_null(strstr(d.msg, "fsync failed"));
    assert_non_null(strstr(d.msg, "0000000000000001.wal"));
    assert_true(g_log.n_err >= 1);
    /* And it stays failed. */
    assert_int_equal(mk_wal_commit(w, 1, "ghi", 3, NULL, &d), MK_EIO);
    assert_int_equal(mk_wal_sync(w, &d), MK_EIO);
    assert_int_equal(mk_wal_close(w, &d), MK_EIO);
    mk_test_rmrf(dir);
    free(dir);
}

/* Under OFF nothing is fsynced by commit or rotation; mk_wal_sync then
 * fsyncs every segment written since, and the directory. */
static void test_off_sync_covers_old_segments(void **state)
{
    (void)state;
    char *dir = mk_test_dir("wal-offsync");
    countenv ce;
    countenv_init(&ce);
    mk_wal_opts o = opts_for(MK_FSYNC_OFF, 1024);
    mk_wal *w;
    mk_diag d = {0};
    assert_int_equal(mk_wal_open(&ce.env, dir, &o, 1, &w, &d), MK_OK);
    uint8_t buf[300] = {0};
    uint64_t seq = 0;
    for (int i = 0; i < 20; i++) assert_int_equal(mk_wal_commit(w, 1, buf, sizeof buf, &seq, &d), MK_OK);
    assert_int_equal(ce.n_fsync, 0);
    assert_true(seq >= 5);
    assert_int_equal(mk_wal_sync(w, &d), MK_OK);
    /* seq segments + the directory */
    assert_int_equal(ce.n_fsync, seq + 1);
    assert_int_equal(mk_wal_sync(w, &d), MK_OK);
    assert_int_equal(ce.n_fsync, seq + 1); /* nothing new */
    assert_int_equal(mk_wal_close(w, &d), MK_OK);
    mk_test_rmrf(dir);
    free(dir);
}

/* ---- fault injection at every step -------------------------------------- */

typedef struct fault_case {
    const char *name;
    mk_fsync_policy pol;
    int kind;           /* first fault */
    int err;
    int is_short_write;
    int is_sticky;
    int also_ftruncate; /* and the truncation that cleans up fails too */
} fault_case;

/* Replayed records must be the OK ones in order; a failed one may appear
 * (whole) only if allowed; nothing else. */
static void check_after_faults(const reclist *got, const reclist *tried, const int *ok, int may_have_failed)
{
    size_t j = 0;
    for (size_t i = 0; i < got->n; i++) {
        while (j < tried->n && !ok[j] && !(may_have_failed && rec_eq(&got->v[i], &tried->v[j]))) j++;
        if (j == tried->n) fprintf(stderr, "replayed record %zu matches nothing committed\n", i);
        assert_true(j < tried->n);
        if (!rec_eq(&got->v[i], &tried->v[j])) fprintf(stderr, "replayed record %zu != attempt %zu\n", i, j);
        assert_true(rec_eq(&got->v[i], &tried->v[j]));
        j++;
    }
    for (; j < tried->n; j++) assert_false(ok[j]); /* no OK record missing at the end */
}

static void run_fault_case(const fault_case *fc, uint64_t seed)
{
    enum { M = 24 };
    /* How many operations of this kind a clean run makes: fault each one. */
    uint64_t n_ops = 0;
    char *dir = scratch_dir("wal-fault");
    for (uint64_t step = 0; step <= n_ops + 1 && step < 400; step++) {
        mk_rng r = {seed};
        clear_dir(dir);
        mk_faultenv fe;
        mk_faultenv_init(&fe);
        if (step > 0) {
            mk_faultenv_arm(&fe, fc->kind, step, fc->err);
            fe.is_short_write = fc->is_short_write;
            fe.is_sticky = fc->is_sticky;
            if (fc->also_ftruncate) mk_faultenv_arm(&fe, MK_FAULT_FTRUNCATE, 1, EIO);
        }
        mk_wal_opts o = opts_for(fc->pol, 700);
        /* The interval thread would race with the test on the (unlocked)
         * fault counters: keep it asleep; close makes the final sync. */
        o.fsync_interval_ms = 3600 * 1000;
        mk_wal *w = NULL;
        mk_diag d = {0};
        reclist tried = {0};
        int ok[M + 4] = {0};
        int n_failed = 0, is_broken = 0;
        lc_reset(&g_log);
        mk_err e = mk_wal_open(&fe.env, dir, &o, 1, &w, &d);
        if (e) {
            assert_true(strlen(d.msg) > 0);
            assert_null(w);
        } else {
            for (int i = 0; i < M; i++) {
                uint8_t buf[160];
                size_t len;
                uint8_t type;
                rand_payload(&r, buf, &len, &type, sizeof buf);
                d.msg[0] = 0;
                e = mk_wal_commit(w, type, buf, len, NULL, &d);
                rl_push(&tried, type, buf, len, 0);
                ok[i] = e == MK_OK;
                if (e) {
                    n_failed++;
                    /* The message says what failed, where and why. */
                    assert_non_null(strstr(d.msg, "failed"));
                    assert_non_null(strstr(d.msg, ".wal"));
                    assert_true(strstr(d.msg, strerror(fc->err)) || strstr(d.msg, "refuses"));
                    if (strstr(d.msg, "refuses")) is_broken = 1;
                } else {
                    /* Once broken, broken for good. */
                    assert_false(is_broken);
                }
                if (fc->is_sticky && n_failed == 4) mk_faultenv_reset(&fe); /* disk freed */
            }
            if (step == 0) {
                assert_int_equal(n_failed, 0);
                n_ops = fe.count[fc->kind];
            } else if (!fc->is_sticky && !fc->also_ftruncate) {
                /* One fault costs at most one commit, and the WAL stays usable. */
                assert_true(n_failed <= 1);
                assert_false(is_broken);
            }
            mk_faultenv_reset(&fe);
            mk_err ce = mk_wal_close(w, &d);
            if (!is_broken) assert_int_equal(ce, MK_OK);
        }
        /* Replay with the fault cleared; then append and replay again. */
        mk_faultenv_reset(&fe);
        reclist got = {0};
        uint64_t last = 0;
        assert_int_equal(mk_wal_replay(&fe.env, dir, &o, 0, collect_cb, &got, &last, &d), MK_OK);
        check_after_faults(&got, &tried, ok, fc->also_ftruncate);
        reclist want2 = {0};
        for (size_t i = 0; i < got.n; i++) rl_push(&want2, got.v[i].type, got.v[i].p, got.v[i].len, 0);
        assert_int_equal(mk_wal_open(&fe.env, dir, &o, last + 1, &w, &d), MK_OK);
        for (int i = 0; i < 3; i++) {
            uint8_t b[3] = {(uint8_t)i, 7, 9};
            assert_int_equal(mk_wal_commit(w, 9, b, sizeof b, NULL, &d), MK_OK);
            rl_push(&want2, 9, b, sizeof b, 0);
        }
        assert_int_equal(mk_wal_close(w, &d), MK_OK);
        reclist got2 = {0};
        assert_int_equal(mk_wal_replay(&fe.env, dir, &o, 1, collect_cb, &got2, &last, &d), MK_OK);
        assert_same(&got2, &want2);
        rl_free(&got);
        rl_free(&got2);
        rl_free(&want2);
        rl_free(&tried);
    }
    scratch_free(dir);
    printf("[ faults ] %s: faulted each of %" PRIu64 " operations\n", fc->name, n_ops);
}

static void test_faults(void **state)
{
    (void)state;
    static const fault_case cases[] = {
        {"pwrite ENOSPC, always", MK_FSYNC_ALWAYS, MK_FAULT_PWRITE, ENOSPC, 0, 0, 0},
        {"pwrite short write EIO, always", MK_FSYNC_ALWAYS, MK_FAULT_PWRITE, EIO, 1, 0, 0},
        {"pwrite ENOSPC, off", MK_FSYNC_OFF, MK_FAULT_PWRITE, ENOSPC, 0, 0, 0},
        {"pwrite short write, interval", MK_FSYNC_INTERVAL, MK_FAULT_PWRITE, ENOSPC, 1, 0, 0},
        {"pwrite ENOSPC sticky, always", MK_FSYNC_ALWAYS, MK_FAULT_PWRITE, ENOSPC, 1, 1, 0},
        {"fsync EIO, always", MK_FSYNC_ALWAYS, MK_FAULT_FSYNC, EIO, 0, 0, 0},
        {"open EIO, always", MK_FSYNC_ALWAYS, MK_FAULT_OPEN, EIO, 0, 0, 0},
        {"open ENOSPC, off", MK_FSYNC_OFF, MK_FAULT_OPEN, ENOSPC, 0, 0, 0},
        {"short write + ftruncate EIO, always", MK_FSYNC_ALWAYS, MK_FAULT_PWRITE, ENOSPC, 1, 0, 1},
        {"fsync EIO + ftruncate EIO, always", MK_FSYNC_ALWAYS, MK_FAULT_FSYNC, EIO, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_fault_case(&cases[i], 0x5eed0100 + i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_empty_and_missing),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_garbage_and_zero_tails),
        cmocka_unit_test(test_bad_segment_header),
        cmocka_unit_test(test_missing_segment_and_damaged_middle),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_cut_remove_before),
        cmocka_unit_test(test_concurrent_always),
        cmocka_unit_test(test_concurrent_always_rotating),
        cmocka_unit_test(test_concurrent_interval_off),
        cmocka_unit_test(test_concurrent_fsync_failure),
        cmocka_unit_test(test_interval_fsyncs),
        cmocka_unit_test(test_interval_fsync_failure),
        cmocka_unit_test(test_off_sync_covers_old_segments),
        cmocka_unit_test(test_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tests/testutil.h — helpers shared by the tests: scratch directories, a
 * fixed-seed random generator and a fault-injecting mk_env.
 */
#ifndef MK_TESTUTIL_H
#define MK_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "env.h"

/* Makes a fresh empty directory for a test under $MK_TEST_TMP (or /tmp) and
 * returns its path (static storage per call site is not needed: malloc'ed,
 * caller frees). The name includes the pid so parallel runs do not clash. */
char *mk_test_dir(const char *name);

/* rm -rf path (only under the test tmp root). */
void mk_test_rmrf(const char *path);

/* splitmix64: deterministic, seedable. Tests print their seed. */
typedef struct mk_rng { uint64_t s; } mk_rng;
static inline uint64_t mk_rng_next(mk_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline double mk_rng_unit(mk_rng *r) { return (double)(mk_rng_next(r) >> 11) * 0x1.0p-53; }
static inline uint64_t mk_rng_below(mk_rng *r, uint64_t n) { return n ? mk_rng_next(r) % n : 0; }

/*
 * Fault-injecting environment wrapping the real OS. Counts operations of
 * each kind; when the count of a kind reaches its fail_at (1-based, 0 =
 * never), that call fails with the given errno (or, for pwrite with
 * short_write set, writes half and reports it). is_sticky keeps failing
 * every later call of that kind too (a full disk stays full).
 */
enum { MK_FAULT_OPEN, MK_FAULT_PWRITE, MK_FAULT_FSYNC, MK_FAULT_RENAME, MK_FAULT_FTRUNCATE,
       MK_FAULT_KINDS };
typedef struct mk_faultenv {
    mk_env env; /* first member: pass &fe->env where an mk_env* is wanted */
    uint64_t count[MK_FAULT_KINDS];
    uint64_t fail_at[MK_FAULT_KINDS];
    int err[MK_FAULT_KINDS];
    int is_short_write;
    int is_sticky;
    uint64_t n_failed;
    int64_t fake_now_ms; /* 0 = real clock */
} mk_faultenv;

void mk_faultenv_init(mk_faultenv *fe);

/* dir opened (asserted) on fe, freshly set up with its clock standing at
 * now_ms: no fsync, no background thread, raw data kept retention_raw_ms
 * (so mk_db_compact builds every tier, and older raw blocks can expire). */
struct mk_db;
struct mk_db *mk_test_open_at(const char *dir, mk_faultenv *fe, int64_t now_ms, int64_t retention_raw_ms);
/* Clears counts and armed faults. */
void mk_faultenv_reset(mk_faultenv *fe);
/* Arms: the nth call (1-based, counted from now) of kind fails with err. */
void mk_faultenv_arm(mk_faultenv *fe, int kind, uint64_t nth, int err);

/* Growable NUL-terminated string for capturing output; zero-initialise,
 * free with mk_sb_free. Allocation failure fails the test. */
typedef struct mk_sbuf {
    char *p;
    size_t n, cap;
} mk_sbuf;
void mk_sb_add(mk_sbuf *b, const char *s, size_t n);
void mk_sb_printf(mk_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *mk_sb_str(const mk_sbuf *b); /* "" when empty, never NULL */
void mk_sb_free(mk_sbuf *b);

/* Monotonic clock in ms, for the time bounds of test loops. */
int64_t mk_test_mono_ms(void);

#endif

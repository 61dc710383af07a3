/*
 * engine/util.h — small shared helpers: growable byte buffer, little-endian
 * loads/stores, varints, and filling an mk_diag.
 *
 * Everything here is header-only or in util.c; every module uses these
 * instead of writing its own.
 */
#ifndef MK_UTIL_H
#define MK_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "meerkat/error.h"

/* Fills diag (if non-NULL) with code and a printf-style message; returns code. */
mk_err mk_diag_set(mk_diag *diag, mk_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Corruption found in bytes read from disk or network: names the file and
 * offset, and the source line that caught it (SQLite's CORRUPT_BKPT). */
#define MK_CORRUPT(diag, file, off, why)                                                   \
    mk_diag_set((diag), MK_ECORRUPT, "%s: corrupt at offset %llu: %s (detected at %s:%d)", \
                (file), (unsigned long long)(off), (why), __FILE__, __LINE__)

/* Maps an errno value (positive) to an mk_err: ENOSPC/EDQUOT -> MK_ENOSPC,
 * ENOMEM -> MK_ENOMEM, anything else -> MK_EIO. */
mk_err mk_err_from_errno(int e);

/* Growable byte buffer. Zero-initialise; free with mk_buf_free. */
typedef struct mk_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} mk_buf;

mk_err mk_buf_reserve(mk_buf *b, size_t extra); /* ensures cap >= len + extra */
mk_err mk_buf_append(mk_buf *b, const void *p, size_t n);
void mk_buf_free(mk_buf *b);

static inline void mk_put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void mk_put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void mk_put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint16_t mk_get_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t mk_get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t mk_get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
/* (The formats are little-endian; the build refuses big-endian hosts.) */

static inline uint64_t mk_f64_bits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static inline double mk_bits_f64(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

static inline uint64_t mk_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t mk_unzigzag(uint64_t u) { return (int64_t)(u >> 1) ^ -(int64_t)(u & 1); }

/* Appends an unsigned LEB128 varint (at most 10 bytes) at p; returns bytes. */
static inline size_t mk_put_uvarint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (uint8_t)(v | 0x80); v >>= 7; }
    p[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint from p[0..len); returns bytes used, 0 if truncated or
 * longer than 10 bytes. */
static inline size_t mk_get_uvarint(const uint8_t *p, size_t len, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) { *v = r; return i + 1; }
    }
    return 0;
}

/* Floor division for converting ns/us/s timestamps (rounds towards -inf). */
static inline int64_t mk_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil): calendar arithmetic with no time zone or libc state. */
static inline int64_t mk_days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* XXH3-64 of p[0..n), the checksum of every record, chunk and footer. */
uint64_t mk_hash64(const void *p, size_t n);

#endif

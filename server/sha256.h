/*
 * server/sha256.h — SHA-256 (FIPS 180-4), written from the standard, for
 * API keys stored as `sha256:<hex>` in the config. Pure functions, no state
 * beyond the caller's context; safe from any thread.
 */
#ifndef MK_SHA256_H
#define MK_SHA256_H

#include <stddef.h>
#include <stdint.h>

enum { MK_SHA256_BYTES = 32 };

typedef struct mk_sha256_ctx {
    uint32_t h[8];
    uint64_t n_bytes;  /* message length so far */
    uint8_t block[64]; /* pending partial block */
    size_t n_block;    /* bytes used in block, < 64 */
} mk_sha256_ctx;

void mk_sha256_init(mk_sha256_ctx *c);
void mk_sha256_update(mk_sha256_ctx *c, const void *p, size_t n);
void mk_sha256_final(mk_sha256_ctx *c, uint8_t out[MK_SHA256_BYTES]);

/* One-shot digest of p[0..n). */
void mk_sha256(const void *p, size_t n, uint8_t out[MK_SHA256_BYTES]);

/* Parses 64 hex digits (either case) into out; returns 0 on success. */
int mk_sha256_from_hex(const char *hex, size_t n, uint8_t out[MK_SHA256_BYTES]);

/* Compares two digests in time independent of where they differ: 1 if equal. */
int mk_sha256_equal(const uint8_t a[MK_SHA256_BYTES], const uint8_t b[MK_SHA256_BYTES]);

#endif

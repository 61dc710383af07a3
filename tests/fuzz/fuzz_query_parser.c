/*
 * tests/fuzz/fuzz_query_parser.c — libFuzzer target for the InfluxQL parser.
 *
 * For any bytes:
 *  - mk_qparse must not crash, leak or read outside the input (the input
 *    is an exact-size heap copy, so ASan sees overreads), and fails only
 *    with MK_EPARSE whose message starts "error at " (or MK_EINVAL for an
 *    input over the size limit);
 *  - determinism: a second parse gives the same result and message;
 *  - round trip: when it parses, print -> parse -> print is a fixed point
 *    (the canonical text must parse, and print back identically).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parser.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_query_parser: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Parses and prints; returns the parse code, *out the canonical text. */
static mk_err parse_print(const char *src, size_t n, mk_buf *out, mk_diag *d)
{
    mk_ast_query *q = NULL;
    mk_err rc = mk_qparse(src, n, &q, d);
    if (rc == MK_OK) {
        CHECK(q && q->n_stmts >= 1);
        CHECK(mk_ast_print_query(out, q) == MK_OK);
    } else {
        CHECK(q == NULL);
    }
    mk_ast_query_free(q);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *src = malloc(size ? size : 1);
    mk_buf a = {0}, b = {0}, c = {0};
    mk_diag d1 = {0}, d2 = {0}, d3 = {0};
    CHECK(src);
    if (size) memcpy(src, data, size);

    mk_err rc = parse_print(src, size, &a, &d1);
    CHECK(rc == MK_OK || rc == MK_EPARSE);
    if (rc) CHECK(strncmp(d1.msg, "error at ", 9) == 0);

    mk_err rc2 = parse_print(src, size, &b, &d2);
    CHECK(rc2 == rc);
    if (rc) CHECK(strcmp(d1.msg, d2.msg) == 0);
    else CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);

    if (rc == MK_OK) {
        mk_err rc3 = parse_print((const char *)a.data, a.len, &c, &d3);
        if (rc3 != MK_OK) fprintf(stderr, "canonical text does not parse: %s\n%.*s\n", d3.msg, (int)a.len, (const char *)a.data);
        CHECK(rc3 == MK_OK);
        if (a.len != c.len || memcmp(a.data, c.data, a.len))
            fprintf(stderr, "not a fixed point:\n%.*s\n%.*s\n", (int)a.len, (const char *)a.data, (int)c.len,
                    (const char *)c.data);
        CHECK(a.len == c.len && memcmp(a.data, c.data, a.len) == 0);
    }
    mk_buf_free(&a);
    mk_buf_free(&b);
    mk_buf_free(&c);
    free(src);
    return 0;
}
